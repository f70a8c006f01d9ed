//! The control socket's clients: accepting, reading bounded request lines, writing
//! answers. A client owes a complete request within [`REQUEST_WITHIN`] of connecting
//! (or of its last answer), else it is dropped: idle connections never lock anyone
//! out, `shutdown` included.

use super::*;
use crate::control::{self, LineBuffer};
use crate::error::ErrorKind;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

/// Clients connected at once; beyond it the longest-idle one is dropped.
const MAX_CLIENTS: usize = 256;
/// How long a connected client may take to send a complete request.
pub(super) const REQUEST_WITHIN: Duration = Duration::from_secs(5);

pub(super) struct Conn {
    stream: UnixStream,
    lines: LineBuffer,
    out: Vec<u8>,
    /// A request is being worked on; further lines wait.
    busy: bool,
    /// The client went away (or must be closed once the output is written).
    closing: bool,
    writable_armed: bool,
    /// Dropped at this time unless a complete request has come (None while busy).
    pub deadline: Option<Instant>,
}

impl Driver {
    pub(super) fn on_accept(&mut self, now: Now) {
        loop {
            let stream = match self.listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Out of descriptors, say: the client waits in the backlog.
                    log(&format!("accept failed: {e}"));
                    return;
                }
            };
            let refusal = match nix::sys::socket::getsockopt(
                &stream,
                nix::sys::socket::sockopt::PeerCredentials,
            ) {
                Ok(cred) if cred.uid() == self.my_uid || cred.uid() == 0 => None,
                Ok(cred) => Some(format!(
                    "uid {} may not control this supervisor (only uid {} and root may)",
                    cred.uid(),
                    self.my_uid
                )),
                Err(e) => Some(format!("cannot read the client's credentials: {e}")),
            };
            if let Some(why) = refusal {
                let mut stream = stream;
                let _ = stream.set_nonblocking(true);
                let e = Error::new(ErrorKind::Runtime, format!("refused: {why}"));
                let _ = stream.write_all(&control::encode_reply(&Reply::error(&e)));
                continue;
            }
            if self.conns.len() >= MAX_CLIENTS {
                self.drop_longest_idle();
            }
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            let id = self.next_conn;
            self.next_conn += 1;
            if self
                .epoll
                .add(
                    stream.as_fd(),
                    EpollEvent::new(EpollFlags::EPOLLIN, CLIENT | id),
                )
                .is_err()
            {
                continue;
            }
            self.conns.insert(
                id,
                Conn {
                    stream,
                    lines: LineBuffer::new(control::MAX_LINE),
                    out: Vec::new(),
                    busy: false,
                    closing: false,
                    writable_armed: false,
                    deadline: Some(now.mono + REQUEST_WITHIN),
                },
            );
        }
    }

    fn drop_longest_idle(&mut self) {
        let oldest = self
            .conns
            .iter()
            .filter(|(_, c)| !c.busy)
            .min_by_key(|(_, c)| c.deadline)
            .map(|(&id, _)| id);
        if let Some(id) = oldest {
            log("too many clients: dropping the longest idle one");
            self.close(id);
        }
    }

    /// Clients that owe a request past their deadline are dropped.
    pub(super) fn drop_idle_clients(&mut self, now: Now) {
        let late: Vec<ClientId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.deadline.is_some_and(|d| d <= now.mono))
            .map(|(&id, _)| id)
            .collect();
        for id in late {
            self.close(id);
        }
    }

    pub(super) fn close(&mut self, id: ClientId) {
        if let Some(conn) = self.conns.remove(&id) {
            let _ = self.epoll.delete(conn.stream.as_fd());
            self.push(Event::ClientGone { client: id });
        }
    }

    pub(super) fn on_client(&mut self, id: ClientId, events: EpollFlags, now: Now) {
        if events.contains(EpollFlags::EPOLLOUT) {
            self.flush_output(id);
        }
        if !events.intersects(EpollFlags::EPOLLIN | EpollFlags::EPOLLHUP | EpollFlags::EPOLLERR) {
            return;
        }
        let mut chunk = [0u8; 16 * 1024];
        // Read what is there (bounded per wake-up, so one client cannot starve others).
        for _ in 0..32 {
            let Some(conn) = self.conns.get_mut(&id) else {
                return;
            };
            if conn.closing {
                return;
            }
            match conn.stream.read(&mut chunk) {
                Ok(0) => {
                    // The client went away; a request it left is still carried out.
                    conn.closing = true;
                    conn.deadline = None;
                    let _ = self.epoll.delete(conn.stream.as_fd());
                    if !conn.busy && conn.out.is_empty() {
                        self.close(id);
                    }
                    return;
                }
                Ok(n) => {
                    if conn.lines.push(&chunk[..n]).is_err() {
                        let e = Error::new(
                            ErrorKind::Config,
                            format!(
                                "bad control message: a line longer than {} bytes",
                                control::MAX_LINE
                            ),
                        );
                        conn.closing = true;
                        self.send(id, &Reply::error(&e));
                        return;
                    }
                    self.serve_lines(id, now);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.close(id);
                    return;
                }
            }
        }
    }

    /// Handle complete request lines, one request at a time per connection.
    fn serve_lines(&mut self, id: ClientId, now: Now) {
        loop {
            let Some(conn) = self.conns.get_mut(&id) else {
                return;
            };
            if conn.busy {
                return;
            }
            let Some(line) = conn.lines.next_line() else {
                return;
            };
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match control::decode_request(&line) {
                Ok(op) => {
                    conn.busy = true;
                    conn.deadline = None;
                    self.on_request(id, op, now);
                }
                Err(e) => self.send(id, &Reply::error(&e)),
            }
        }
    }

    /// The machine's answer to a request.
    pub(super) fn reply(&mut self, id: ClientId, mut reply: Reply, now: Now) {
        if let (Some(text), Reply::Results { warnings, .. }) = (self.swept.take(), &mut reply) {
            warnings.push(text);
        }
        self.send(id, &reply);
        self.serve_lines(id, now);
    }

    pub(super) fn send(&mut self, id: ClientId, reply: &Reply) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        conn.busy = false;
        control::encode_reply_into(reply, &mut conn.out);
        self.flush_output(id);
        if let Some(conn) = self.conns.get_mut(&id)
            && !conn.closing
        {
            conn.deadline = Some(self.clock.mono + REQUEST_WITHIN);
        }
    }

    fn flush_output(&mut self, id: ClientId) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        while !conn.out.is_empty() {
            match conn.stream.write(&conn.out) {
                Ok(0) => break,
                Ok(n) => {
                    conn.out.drain(..n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if !conn.writable_armed {
                        conn.writable_armed = true;
                        let flags = if conn.closing {
                            EpollFlags::EPOLLOUT
                        } else {
                            EpollFlags::EPOLLIN | EpollFlags::EPOLLOUT
                        };
                        let mut ev = EpollEvent::new(flags, CLIENT | id);
                        if self.epoll.modify(conn.stream.as_fd(), &mut ev).is_err() {
                            let _ = self.epoll.add(conn.stream.as_fd(), ev);
                        }
                    }
                    return;
                }
                Err(_) => {
                    self.close(id);
                    return;
                }
            }
        }
        if conn.closing && !conn.busy {
            self.close(id);
            return;
        }
        if conn.writable_armed {
            conn.writable_armed = false;
            let mut ev = EpollEvent::new(EpollFlags::EPOLLIN, CLIENT | id);
            let _ = self.epoll.modify(conn.stream.as_fd(), &mut ev);
        }
    }

    /// Before exiting: give each client its answer (briefly blocking).
    pub(super) fn flush_all_output(&mut self) {
        for conn in self.conns.values_mut() {
            if conn.out.is_empty() {
                continue;
            }
            let _ = conn.stream.set_nonblocking(false);
            let _ = conn.stream.set_write_timeout(Some(Duration::from_secs(1)));
            let _ = conn.stream.write_all(&conn.out);
        }
    }
}

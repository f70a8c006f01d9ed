//! The control socket's clients: accepting, reading bounded request lines, answering,
//! and the views `status` and `wait` answer with.

use super::*;

impl Supervisor {
    pub(super) fn on_accept(&mut self) {
        loop {
            let stream = match self.listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
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
            let refusal = refusal.or_else(|| {
                (self.conns.len() >= MAX_CLIENTS)
                    .then(|| format!("too many clients (at most {MAX_CLIENTS} at once)"))
            });
            if let Some(why) = refusal {
                let mut stream = stream;
                let _ = stream.set_nonblocking(true);
                let e = Error::new(ErrorKind::Runtime, format!("refused: {why}"));
                let _ = stream.write_all(&control::encode_reply(&Reply::error(&e)));
                continue;
            }
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            let id = self.next_id;
            self.next_id += 1;
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
                },
            );
        }
    }

    pub(super) fn close(&mut self, id: u64) {
        if let Some(conn) = self.conns.remove(&id) {
            let _ = self.epoll.delete(conn.stream.as_fd());
        }
    }

    pub(super) fn on_client(&mut self, id: u64, events: EpollFlags) {
        if events.contains(EpollFlags::EPOLLOUT) {
            self.flush_output(id);
        }
        if !events.intersects(EpollFlags::EPOLLIN | EpollFlags::EPOLLHUP | EpollFlags::EPOLLERR) {
            return;
        }
        let mut chunk = [0u8; 64 * 1024];
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
                        self.reply(id, &Reply::error(&e));
                        return;
                    }
                    self.serve_lines(id);
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
    pub(super) fn serve_lines(&mut self, id: u64) {
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
                    self.handle(id, op);
                }
                Err(e) => self.reply(id, &Reply::error(&e)),
            }
        }
    }

    pub(super) fn handle(&mut self, conn: u64, op: Op) {
        let command = |op: Op| {
            Tag::Prepare(Purpose::Command {
                conn: Some(conn),
                op,
            })
        };
        match op.clone() {
            Op::Hello => self.reply(
                conn,
                &Reply::Hello {
                    pid: std::process::id() as i32,
                    version: env!("CARGO_PKG_VERSION").to_string(),
                },
            ),
            Op::Status { services } => {
                let reply = match self.status(&services) {
                    Ok(views) => Reply::Status { services: views },
                    Err(e) => Reply::error(&e),
                };
                self.reply(conn, &reply);
            }
            Op::Wait {
                services,
                timeout_secs,
            } => self.wait(conn, &services, timeout_secs),
            Op::Shutdown => self.begin_shutdown(Some(conn), 0, None),
            _ if self.shutting_down => {
                let e = Error::runtime("the supervisor is shutting down")
                    .with_hint("run the command again once it has exited");
                self.reply(conn, &Reply::error(&e));
            }
            Op::Start { services } => {
                self.spawn_job(command(op), Job::Prepare(Scope::Start(services)))
            }
            Op::Stop { services } => {
                let known = self
                    .services
                    .iter()
                    .filter(|s| s.prepared.is_some())
                    .map(|s| s.name.clone())
                    .collect();
                self.spawn_job(
                    command(op),
                    Job::Prepare(Scope::Stop {
                        names: services,
                        known,
                    }),
                )
            }
            Op::Restart { services } => {
                self.spawn_job(command(op), Job::Prepare(Scope::Named(services)))
            }
            Op::Up => self.spawn_job(command(op), Job::Prepare(Scope::Up)),
            Op::Down => self.spawn_job(command(op), Job::Prepare(Scope::Down)),
        }
    }

    pub(super) fn reply(&mut self, id: u64, reply: &Reply) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        conn.busy = false;
        conn.out.extend_from_slice(&control::encode_reply(reply));
        self.flush_output(id);
        // Lines that arrived meanwhile.
        self.serve_lines(id);
    }

    pub(super) fn flush_output(&mut self, id: u64) {
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

    // ---- status and wait ----

    /// One service as status shows it: from memory, with no file read when its
    /// configuration is known (the process's start time was read when it was watched).
    pub(super) fn view(&self, s: &Service, uptime: Option<f64>) -> ServiceView {
        let age = match (s.pid, s.start_ticks, uptime) {
            (Some(_), Some(ticks), Some(up)) => Some(proc::age(ticks, up).as_secs()),
            _ => None,
        };
        let record = match &s.prepared {
            Some(_) => None,
            None => pidfile::read_record(&self.playpen, &s.name),
        };
        let listening = s
            .armed
            .as_ref()
            .and_then(|a| a.listener.as_ref())
            .and_then(|l| match l {
                Listener::Tcp(l) => l.local_addr().ok(),
                Listener::Udp(u) => u.local_addr().ok(),
            });
        let ports = match (&s.prepared, &record) {
            (Some(p), _) if listening.is_some() => {
                let port = listening.map(|a| a.port()).unwrap_or(0);
                let mut ports = p.ports.clone();
                if !ports.iter().any(|(_, n)| *n == port) {
                    ports.push(("service_port".to_string(), port));
                }
                ports
            }
            _ if s.pid.is_none() => Vec::new(),
            (Some(p), _) => p.ports.clone(),
            (None, Some(r)) => r.ports.clone(),
            (None, None) => Vec::new(),
        };
        let version = match (&s.prepared, record) {
            (Some(p), _) => p.config.id.version.clone(),
            (None, r) => r.and_then(|r| r.version),
        };
        ServiceView {
            name: s.name.clone(),
            state: s.state.word().to_string(),
            pid: s.pid,
            uptime_secs: age,
            restarts: s.restarts,
            last_exit: s.last_exit.clone(),
            ready: s.ready,
            wanted: s.wanted,
            ports,
            version,
            note: s.note.clone(),
            next_run: s
                .armed
                .as_ref()
                .and_then(|a| a.next)
                .map(crate::supervise::cron::local_text),
            last_run: s.last_run.map(crate::supervise::cron::local_text),
            handlers: s
                .settings()
                .filter(|st| !matches!(st.service_type, ServiceType::Init))
                .map(|_| s.children.len() as u32),
        }
    }

    pub(super) fn status(&mut self, names: &[String]) -> Result<Vec<ServiceView>> {
        let uptime = proc::uptime_secs();
        if names.is_empty() {
            return Ok(self.services.iter().map(|s| self.view(s, uptime)).collect());
        }
        let mut catalog = None;
        let mut out = Vec::new();
        for name in names {
            if let Some(&i) = self.index.get(name) {
                out.push(self.view(&self.services[i], uptime));
                continue;
            }
            // Not supervised: known at all? (Files only, no process.)
            let catalog = match &catalog {
                Some(c) => c,
                None => {
                    catalog.insert(crate::playpen::catalog::Catalog::load(&self.playpen, None)?)
                }
            };
            catalog.get(name)?;
            let i = self.service_index(name);
            out.push(self.view(&self.services[i], uptime));
        }
        Ok(out)
    }

    pub(super) fn wait(&mut self, conn: u64, names: &[String], timeout: Option<f64>) {
        if names.is_empty() && !self.launched {
            self.early_waits.push((conn, timeout));
            return;
        }
        let services: Vec<usize> = if names.is_empty() {
            (0..self.services.len())
                .filter(|&i| self.services[i].wanted)
                .collect()
        } else {
            match self.status(names) {
                Ok(_) => names.iter().map(|n| self.index[n]).collect(),
                Err(e) => return self.reply(conn, &Reply::error(&e)),
            }
        };
        let id = self.next_id;
        self.next_id += 1;
        let timeout = Duration::from_secs_f64(timeout.unwrap_or(60.0).clamp(0.0, 1e7));
        let key = (Instant::now() + timeout, id);
        self.timers.insert(key, Due::WaitTimeout(id));
        self.waiters.insert(
            id,
            Waiter {
                conn,
                services,
                timer: Some(key),
            },
        );
        self.check_waiters();
    }

    pub(super) fn check_waiters(&mut self) {
        let done: Vec<u64> = self
            .waiters
            .iter()
            .filter(|(_, w)| w.services.iter().all(|&i| self.services[i].ready))
            .map(|(id, _)| *id)
            .collect();
        for id in done {
            if let Some(w) = self.waiters.remove(&id) {
                self.answer_wait(w);
            }
        }
    }

    pub(super) fn answer_wait(&mut self, w: Waiter) {
        if let Some(key) = w.timer {
            self.timers.remove(&key);
        }
        let (ready, not): (Vec<usize>, Vec<usize>) =
            w.services.iter().partition(|&&i| self.services[i].ready);
        let reply = Reply::Wait {
            ready: ready
                .iter()
                .map(|&i| self.services[i].name.clone())
                .collect(),
            not_ready: not
                .iter()
                .map(|&i| NotReady {
                    service: self.services[i].name.clone(),
                    state: self.services[i].state.word().to_string(),
                })
                .collect(),
        };
        self.reply(w.conn, &reply);
    }
}

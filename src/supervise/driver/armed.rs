//! The descriptors of cron and inetd services: listening sockets, the output every run
//! shares, and the prepared program each run or handler forks and execs.

use super::*;
use crate::config::settings::{InetdSettings, PortSetting, Protocol, ServiceType};
use crate::service::prepare::Prepared;
use crate::supervise::fork::Program;
use std::os::fd::AsRawFd;

/// An inetd service's socket.
pub(super) enum Listener {
    Tcp(std::net::TcpListener),
    Udp(std::net::UdpSocket),
}

impl Listener {
    fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        match self {
            Listener::Tcp(l) => l.as_fd(),
            Listener::Udp(u) => u.as_fd(),
        }
    }
}

/// What an armed service holds.
pub(super) struct ArmedIo {
    listener: Option<Listener>,
    /// Its output, shared by every run and handler.
    output: std::fs::File,
    /// What a run or handler executes (sh -c for cron), prepared once.
    program: Option<Arc<Program>>,
    /// /dev/null, a cron run's stdin.
    null: Option<std::fs::File>,
    /// The listener is in the epoll set.
    listening: bool,
}

impl ArmedIo {
    pub(super) fn bound_port(&self) -> Option<u16> {
        match self.listener.as_ref()? {
            Listener::Tcp(l) => l.local_addr().ok().map(|a| a.port()),
            Listener::Udp(u) => u.local_addr().ok().map(|a| a.port()),
        }
    }
}

impl Driver {
    /// `start` of a cron or inetd service: its output, its program and (inetd) its
    /// socket, bound before the reply so that a client may connect at once.
    pub(super) fn arm(&mut self, i: Sid, prepared: &Arc<Prepared>) -> Result<()> {
        let name = self.machine.services[i].name.clone();
        // While armed, its runs and handlers write into one pipe to the output keeper.
        let output = match &self.keeper {
            Some(k) => k
                .pipe(&name, prepared.settings.log)
                .map(std::fs::File::from),
            None => crate::process::output::open_output(&self.playpen.output_file(&name)),
        }
        .map_err(|e| e.with_service(&name))?;
        // Runs and handlers carry a launch mark of their own kind, so that a later
        // supervisor finds them (and a stop or shutdown ends them).
        let mark = format!("{}{}", RUN_MARK, crate::process::census::new_launch());
        let env = || {
            prepared
                .env
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_os_str()))
                .chain(std::iter::once((
                    crate::process::census::LAUNCH,
                    std::ffi::OsStr::new(mark.as_str()),
                )))
        };
        let path = prepared.env.get("PATH").map(|p| p.as_os_str());
        let mut armed = ArmedIo {
            listener: None,
            output,
            program: None,
            null: std::fs::File::open("/dev/null").ok(),
            listening: false,
        };
        match &prepared.settings.service_type {
            ServiceType::Init | ServiceType::Oneshot => {}
            ServiceType::Cron(c) => {
                armed.program = Some(Arc::new(
                    Program::new(
                        "/bin/sh",
                        ["-c", c.command.as_str()],
                        env(),
                        path,
                        &self.playpen.root,
                        prepared.settings.user.as_ref(),
                    )
                    .map_err(|e| e.with_service(&name))?,
                ));
            }
            ServiceType::Inetd(d) => {
                let listener = self.bind_inetd(&name, d, prepared)?;
                self.epoll
                    .add(
                        listener.fd(),
                        EpollEvent::new(EpollFlags::EPOLLIN, INETD | i as u64),
                    )
                    .map_err(|e| Error::runtime(format!("cannot watch its socket: {e}")))?;
                armed.listening = true;
                armed.listener = Some(listener);
                armed.program = d
                    .command
                    .first()
                    .map(|program| {
                        Program::new(
                            program,
                            d.command[1..].iter().map(String::as_str),
                            env(),
                            path,
                            &self.playpen.root,
                            prepared.settings.user.as_ref(),
                        )
                        .map(Arc::new)
                    })
                    .transpose()
                    .map_err(|e| e.with_service(&name))?;
            }
        }
        self.armed.insert(i, armed);
        Ok(())
    }

    fn bind_inetd(&self, name: &str, d: &InetdSettings, prepared: &Prepared) -> Result<Listener> {
        let (label, port) = match &d.port {
            PortSetting::Number(n) => ("service_port".to_string(), *n),
            PortSetting::Variable(v) => match prepared.ports.iter().find(|(n, _)| n == v) {
                Some((n, p)) => (n.clone(), *p),
                None => {
                    return Err(Error::config(format!(
                        "service_port names {v}, which has no port value"
                    ))
                    .with_service(name));
                }
            },
        };
        let addr = std::net::SocketAddr::new(d.bind, port);
        let proto = match d.protocol {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        };
        let bound = match d.protocol {
            Protocol::Tcp => std::net::TcpListener::bind(addr).map(|l| {
                // Room for a burst of connections while at service_inetd_max (std
                // listens with a small backlog; listen again raises it).
                // SAFETY: listen on a socket we own.
                unsafe { libc::listen(l.as_raw_fd(), 1024) };
                Listener::Tcp(l)
            }),
            Protocol::Udp => std::net::UdpSocket::bind(addr).map(Listener::Udp),
        };
        let listener = bound.map_err(|e| {
            if e.kind() == std::io::ErrorKind::AddrInUse {
                let ports = [(label.clone(), port)];
                let held = crate::process::holders::held_ports(&self.playpen, [(name, &ports[..])]);
                if let Some((_, err)) = held.into_iter().next() {
                    return err.with_service(name);
                }
                Error::runtime(format!(
                    "cannot listen on {proto} {addr}: port {port} is in use"
                ))
                .with_service(name)
                .with_hint(format!(
                    "stop what holds port {port}, or set {label} to a free port"
                ))
            } else {
                Error::runtime(format!("cannot listen on {proto} {addr}: {e}")).with_service(name)
            }
        })?;
        let nonblocking = match &listener {
            Listener::Tcp(l) => l.set_nonblocking(true),
            Listener::Udp(u) => u.set_nonblocking(true),
        };
        nonblocking.map_err(|e| Error::runtime(format!("cannot set up its socket: {e}")))?;
        Ok(listener)
    }

    pub(super) fn disarm(&mut self, i: Sid) {
        if let Some(a) = self.armed.remove(&i)
            && let Some(l) = &a.listener
            && a.listening
        {
            let _ = self.epoll.delete(l.fd());
        }
    }

    pub(super) fn listen(&mut self, i: Sid, on: bool) {
        let Some(a) = self.armed.get_mut(&i) else {
            return;
        };
        let Some(l) = &a.listener else {
            return;
        };
        if on && !a.listening {
            a.listening = self
                .epoll
                .add(
                    l.fd(),
                    EpollEvent::new(EpollFlags::EPOLLIN, INETD | i as u64),
                )
                .is_ok();
        } else if !on && a.listening {
            let _ = self.epoll.delete(l.fd());
            a.listening = false;
        }
    }

    /// Run service_cron_command with sh.
    pub(super) fn spawn_run(&mut self, i: Sid) {
        let Some(a) = self.armed.get(&i) else {
            return;
        };
        let (Some(program), Some(null)) = (&a.program, &a.null) else {
            return;
        };
        let out = a.output.as_raw_fd();
        let event = match program.spawn(null.as_raw_fd(), out, out, &[]) {
            Ok(launch) => {
                let pid = launch.pid;
                self.spawned.insert(pid, launch);
                Event::ChildStarted { service: i, pid }
            }
            Err(e) => Event::ChildFailed {
                service: i,
                error: e.to_string(),
            },
        };
        self.push(event);
    }

    /// Connections wait (tcp: accept up to `room`), or a datagram (udp: hand the socket
    /// to one handler).
    pub(super) fn accept_handlers(&mut self, i: Sid, room: usize) {
        for _ in 0..room {
            let Some(a) = self.armed.get(&i) else {
                return;
            };
            let name = &self.machine.services[i].name;
            let (socket, peer): (OwnedFd, Option<std::net::SocketAddr>) = match &a.listener {
                Some(Listener::Tcp(l)) => match l.accept() {
                    Ok((stream, peer)) => (OwnedFd::from(stream), Some(peer)),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        log(&format!("{name}: accept failed: {e}"));
                        return;
                    }
                },
                Some(Listener::Udp(u)) => match u.try_clone() {
                    Ok(u) => {
                        // The handler reads the socket itself; it must block.
                        let _ = u.set_nonblocking(false);
                        (OwnedFd::from(u), None)
                    }
                    Err(e) => {
                        log(&format!("{name}: cannot hand over its socket: {e}"));
                        return;
                    }
                },
                None => return,
            };
            let Some(program) = &a.program else {
                return;
            };
            let extra: Vec<(&str, String)> = match peer {
                Some(peer) => vec![
                    ("REMOTE_ADDR", peer.ip().to_string()),
                    ("REMOTE_PORT", peer.port().to_string()),
                ],
                None => Vec::new(),
            };
            let fd = socket.as_raw_fd();
            // Our copy of the socket closes when `socket` drops; the handler has its own.
            let event = match program.spawn(fd, fd, a.output.as_raw_fd(), &extra) {
                Ok(launch) => {
                    let pid = launch.pid;
                    self.spawned.insert(pid, launch);
                    Event::ChildStarted { service: i, pid }
                }
                Err(e) => Event::ChildFailed {
                    service: i,
                    error: e.to_string(),
                },
            };
            let udp = peer.is_none();
            self.push(event);
            if udp {
                return;
            }
        }
    }
}

/// The launch mark's prefix of cron runs and inetd handlers.
pub(super) const RUN_MARK: &str = "run:";

//! Cron and inetd services: armed on the supervisor's one timer and its epoll set, and
//! the runs and handlers they start.

use super::*;

impl Supervisor {
    /// `start` of a cron or inetd service: schedule it, or bind its socket (before the
    /// reply, so a client may connect at once).
    pub(super) fn arm(&mut self, i: usize, prepared: &Arc<Prepared>) -> Result<Outcome> {
        if self.services[i].armed.is_some() {
            return Ok(Outcome::AlreadyRunning { pid: None });
        }
        let name = self.services[i].name.clone();
        // While armed, its runs and handlers write into one pipe to the output keeper.
        let output = match &self.keeper {
            Some(k) => k
                .pipe(&name, prepared.settings.log)
                .map(std::fs::File::from),
            None => crate::process::output::open_output(&self.playpen.output_file(&name)),
        }
        .map_err(|e| e.with_service(&name))?;
        let mut armed = Armed {
            schedule: None,
            next: None,
            listener: None,
            listening: false,
            output,
            program: None,
            null: std::fs::File::open("/dev/null").ok(),
        };
        let env = || {
            prepared
                .env
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_os_str()))
        };
        let path = prepared.env.get("PATH").map(|p| p.as_os_str());
        let mut fire_now = false;
        match &prepared.settings.service_type {
            ServiceType::Init => {}
            ServiceType::Cron(c) => {
                armed.schedule = crate::supervise::cron::Schedule::new(&c.schedule);
                fire_now = armed.schedule.is_none();
                armed.program = Some(crate::supervise::fork::Program::new(
                    "/bin/sh",
                    ["-c", c.command.as_str()],
                    env(),
                    path,
                    &self.playpen.root,
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
                armed.program = d.command.first().map(|program| {
                    crate::supervise::fork::Program::new(
                        program,
                        d.command[1..].iter().map(String::as_str),
                        env(),
                        path,
                        &self.playpen.root,
                    )
                });
            }
        }
        let s = &mut self.services[i];
        s.armed = Some(armed);
        s.state = State::Armed;
        s.ready = true;
        s.wanted = true;
        s.note = None;
        self.services[i].run_started = Some(Instant::now());
        log(&format!("{name}: armed"));
        if fire_now {
            // @reboot: once, now.
            self.spawn_run(i);
        }
        self.schedule_cron(i);
        self.check_waiters();
        Ok(Outcome::Started { pid: None })
    }

    pub(super) fn bind_inetd(
        &self,
        name: &str,
        d: &InetdSettings,
        prepared: &Prepared,
    ) -> Result<Listener> {
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
                unsafe { libc::listen(std::os::fd::AsRawFd::as_raw_fd(&l), 1024) };
                Listener::Tcp(l)
            }),
            Protocol::Udp => std::net::UdpSocket::bind(addr).map(Listener::Udp),
        };
        let listener = bound.map_err(|e| {
            if e.kind() == std::io::ErrorKind::AddrInUse {
                let ports = [(label.clone(), port)];
                let held = crate::process::sockets::held_ports(&self.playpen, [(name, &ports[..])]);
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

    /// `stop`: no more fires or connections; end what runs (TERM to each process
    /// group, KILL after service_halt_timeout). Settles once nothing runs.
    pub(super) fn disarm(&mut self, i: usize) {
        self.cancel_timer(i);
        let was_armed = match self.services[i].armed.take() {
            Some(a) => {
                if let Some(l) = &a.listener
                    && a.listening
                {
                    let _ = self.epoll.delete(l.fd());
                }
                log(&format!("{}: disarmed", self.services[i].name));
                true
            }
            None => false,
        };
        if self.services[i].children.is_empty() {
            let s = &mut self.services[i];
            s.state = State::Stopped;
            s.ready = false;
            s.run_started = None;
            if !s.wanted || self.shutting_down {
                let outcome = if was_armed {
                    Outcome::Stopped {
                        pid: None,
                        warning: None,
                    }
                } else {
                    Outcome::AlreadyStopped
                };
                self.settle(i, Ok(outcome));
            }
            return;
        }
        let halt = self.services[i]
            .settings()
            .map(|s| s.halt_timeout)
            .unwrap_or(Duration::from_secs(10));
        let s = &mut self.services[i];
        s.state = State::Stopping;
        s.busy = Some(Busy::Stop);
        self.signal_children(i, Signal::SIGTERM);
        self.set_timer(i, Instant::now() + halt, Due::Kill(i));
    }

    /// The last run or handler of a disarmed service ended.
    pub(super) fn finish_disarm(&mut self, i: usize) {
        self.cancel_timer(i);
        let s = &mut self.services[i];
        s.busy = None;
        s.state = State::Stopped;
        s.ready = false;
        s.run_started = None;
        if s.wanted && !self.shutting_down {
            self.launch_start(i);
        } else {
            self.settle(
                i,
                Ok(Outcome::Stopped {
                    pid: None,
                    warning: None,
                }),
            );
        }
    }

    pub(super) fn signal_children(&self, i: usize, signal: Signal) {
        for &pid in &self.services[i].children {
            let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), signal);
        }
    }

    /// Set the timer for the next fire time after now and after the last minute fired
    /// (so a clock set back never fires a minute twice).
    pub(super) fn schedule_cron(&mut self, i: usize) {
        let now = crate::supervise::cron::wall_now();
        let after = (now.floor() as i64).max(self.services[i].last_fired.unwrap_or(i64::MIN));
        let Some(armed) = self.services[i].armed.as_mut() else {
            return;
        };
        let Some(schedule) = &armed.schedule else {
            return;
        };
        armed.next = schedule.next_after(after);
        if let Some(next) = armed.next {
            // A millisecond late, so that the wall clock has reached it on waking.
            let left = Duration::from_secs_f64((next as f64 - now).max(0.0) + 0.001);
            self.set_timer(i, Instant::now() + left, Due::Cron(i));
        }
    }

    /// The timer for a cron service's next fire time went off.
    pub(super) fn on_cron(&mut self, i: usize) {
        let now = crate::supervise::cron::wall_now().floor() as i64;
        let s = &self.services[i];
        let Some(next) = s.armed.as_ref().and_then(|a| a.next) else {
            return;
        };
        let name = s.name.clone();
        if now < next || s.last_fired.is_some_and(|last| next <= last) {
            // Early by the wall clock (it was set back): look again.
            return self.schedule_cron(i);
        }
        if now - next >= 60 {
            log(&format!(
                "{name}: the run due at {} starts {} s late (the clock was set forward, or the machine slept); runs due in between are not made up",
                crate::supervise::cron::local_text(next),
                now - next
            ));
        }
        self.services[i].last_fired = Some(next);
        if self.services[i].children.is_empty() {
            self.spawn_run(i);
        } else {
            log(&format!(
                "{name}: the run due at {} is skipped: the previous run is still going",
                crate::supervise::cron::local_text(next)
            ));
            self.services[i].note = Some(format!(
                "skipped the run due at {}: the previous run was still going",
                crate::supervise::cron::local_text(next)
            ));
        }
        self.schedule_cron(i);
    }

    /// Run service_cron_command with sh.
    pub(super) fn spawn_run(&mut self, i: usize) {
        use std::os::fd::AsRawFd;
        let s = &self.services[i];
        let Some(a) = s.armed.as_ref() else {
            return;
        };
        let (Some(program), Some(null)) = (&a.program, &a.null) else {
            return;
        };
        let out = a.output.as_raw_fd();
        match program.spawn(null.as_raw_fd(), out, out, &[]) {
            Ok(pid) => {
                self.services[i].last_run = Some(crate::supervise::cron::wall_now() as i64);
                self.watch_child(i, pid);
            }
            Err(e) => {
                log(&format!("{}: cannot run its cron command: {e}", s.name));
                self.services[i].last_exit = Some(format!("failed to start: {e}"));
            }
        }
    }

    pub(super) fn watch_child(&mut self, i: usize, pid: i32) {
        self.services[i].children.insert(pid);
        match proc::pidfd(pid) {
            Some(pidfd) => {
                let token = CHILD | pid as u64;
                if let Err(e) = self
                    .epoll
                    .add(pidfd.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, token))
                {
                    log(&format!("cannot watch pid {pid}: {e}"));
                }
                self.children.insert(pid, Child { service: i, pidfd });
            }
            // Gone and reaped already (it cannot be: it is our child); count it done.
            None => self.child_exited(pid, "exited".into()),
        }
    }

    /// A cron run or handler's pidfd is readable: it exited.
    pub(super) fn on_child(&mut self, pid: i32) {
        let Some(child) = self.children.get(&pid) else {
            return;
        };
        let status = match nix::sys::wait::waitid(
            Id::PIDFd(child.pidfd.as_fd()),
            WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG,
        ) {
            Ok(WaitStatus::StillAlive) => return,
            Ok(status) => describe_wait(status),
            Err(_) => "exited".to_string(),
        };
        self.child_exited(pid, status);
    }

    pub(super) fn child_exited(&mut self, pid: i32, status: String) {
        let i = match self.children.remove(&pid) {
            Some(child) => {
                let _ = self.epoll.delete(child.pidfd.as_fd());
                child.service
            }
            None => match self.services.iter().position(|s| s.children.contains(&pid)) {
                Some(i) => i,
                None => return,
            },
        };
        let s = &mut self.services[i];
        s.children.remove(&pid);
        let settings = s.settings().map(|st| st.service_type.clone());
        if let Some(ServiceType::Cron(_)) = settings {
            log(&format!("{}: cron run (pid {pid}) {status}", s.name));
            s.last_exit = Some(status);
        }
        if s.busy == Some(Busy::Stop) && s.children.is_empty() {
            return self.finish_disarm(i);
        }
        // Below the limit again: accept (tcp) or wait for the next datagram (udp).
        let max = match settings {
            Some(ServiceType::Inetd(d)) if d.protocol == Protocol::Tcp => d.max_handlers as usize,
            Some(ServiceType::Inetd(_)) => 1,
            _ => return,
        };
        let below = s.children.len() < max;
        if let Some(a) = s.armed.as_mut()
            && !a.listening
            && below
            && let Some(l) = &a.listener
        {
            a.listening = self
                .epoll
                .add(
                    l.fd(),
                    EpollEvent::new(EpollFlags::EPOLLIN, INETD | i as u64),
                )
                .is_ok();
        }
    }

    /// An inetd socket is readable: a connection (tcp) or a datagram (udp) waits.
    pub(super) fn on_inetd(&mut self, i: usize) {
        let Some(ServiceType::Inetd(d)) = self.services[i]
            .settings()
            .map(|st| st.service_type.clone())
        else {
            return;
        };
        loop {
            let s = &mut self.services[i];
            let Some(a) = s.armed.as_mut() else {
                return;
            };
            let at_limit = match d.protocol {
                Protocol::Tcp => s.children.len() >= d.max_handlers as usize,
                Protocol::Udp => !s.children.is_empty(),
            };
            if at_limit {
                // The rest wait in the backlog (or the socket's queue) until one ends.
                if a.listening
                    && let Some(l) = &a.listener
                {
                    let _ = self.epoll.delete(l.fd());
                    a.listening = false;
                }
                return;
            }
            let (socket, peer): (OwnedFd, Option<std::net::SocketAddr>) = match &a.listener {
                Some(Listener::Tcp(l)) => match l.accept() {
                    Ok((stream, peer)) => (OwnedFd::from(stream), Some(peer)),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        log(&format!("{}: accept failed: {e}", s.name));
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
                        log(&format!("{}: cannot hand over its socket: {e}", s.name));
                        return;
                    }
                },
                None => return,
            };
            self.spawn_handler(i, socket, peer);
            if d.protocol == Protocol::Udp {
                // Not readable-level-triggered again until the handler has exited.
                if let Some(a) = self.services[i].armed.as_mut()
                    && a.listening
                    && let Some(l) = &a.listener
                {
                    let _ = self.epoll.delete(l.fd());
                    a.listening = false;
                }
                return;
            }
        }
    }

    pub(super) fn spawn_handler(
        &mut self,
        i: usize,
        socket: OwnedFd,
        peer: Option<std::net::SocketAddr>,
    ) {
        use std::os::fd::AsRawFd;
        let s = &self.services[i];
        let Some(a) = s.armed.as_ref() else {
            return;
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
        match program.spawn(fd, fd, a.output.as_raw_fd(), &extra) {
            // Our copy of the socket closes here; the handler has its own.
            Ok(pid) => self.watch_child(i, pid),
            Err(e) => log(&format!("{}: cannot run its handler: {e}", s.name)),
        }
    }
}

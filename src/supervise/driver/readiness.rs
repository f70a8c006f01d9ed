//! The driver's half of readiness that events tell: the sd_notify socket (datagrams
//! attributed to services by their sender's PID) and `service_ready=log:` watches on
//! output files (inotify, read from where the start began).

use super::*;
use crate::config::settings::Ready;
use crate::process::notify::{self, Field, NotifySocket};
use crate::service::prepare::Prepared;

/// A `service_ready=log:` watch.
pub(super) struct LogWatch {
    wd: nix::sys::inotify::WatchDescriptor,
    regex: regex::Regex,
    path: std::path::PathBuf,
    offset: u64,
    /// The end of a line cut by the last read.
    partial: Vec<u8>,
}

/// The notify socket's path in a playpen.
pub(super) fn socket_path(playpen: &Playpen) -> std::path::PathBuf {
    playpen.run_dir().join("servicectl.notify")
}

impl Driver {
    /// What a service's processes get so that they can speak sd_notify: NOTIFY_SOCKET
    /// when it is ready by notify or has a watchdog, and WATCHDOG_USEC.
    pub(super) fn with_notify(&self, prepared: Arc<Prepared>) -> Arc<Prepared> {
        let s = &prepared.settings;
        let Some(socket) = &self.notify else {
            return prepared;
        };
        if s.ready != Ready::Notify && s.watchdog.is_none() {
            return prepared;
        }
        let mut p = (*prepared).clone();
        p.env.insert(
            "NOTIFY_SOCKET".into(),
            socket.path().as_os_str().to_os_string(),
        );
        if let Some(w) = s.watchdog {
            p.env
                .insert("WATCHDOG_USEC".into(), w.as_micros().to_string().into());
        }
        Arc::new(p)
    }

    /// Datagrams on the notify socket: each to the service whose process sent it.
    pub(super) fn on_notify(&mut self) {
        let Some(socket) = &self.notify else {
            return;
        };
        let mut messages = Vec::new();
        while let Some(m) = socket.recv() {
            messages.push(m);
        }
        for m in messages {
            let owner = self
                .watches
                .iter()
                .find_map(|(&i, w)| notify::belongs_to(m.pid, w.pid).then_some((i, Some(w.pid))))
                .or_else(|| {
                    // Not watched yet (it spoke during its start grace): a process of
                    // the service says so in its environment (the census marks).
                    let name = self.service_of_sender(m.pid)?;
                    let i = self.machine.find(&name)?;
                    matches!(
                        self.machine.services[i].phase,
                        crate::supervise::machine::Phase::Starting { .. }
                    )
                    .then_some((i, None))
                });
            let Some((service, main)) = owner else {
                // Not a process of any service: dropped (NotifyAccess=all, not "anyone").
                continue;
            };
            let fields: Vec<Field> = m
                .fields
                .into_iter()
                .filter(|f| match f {
                    Field::MainPid(n) => main.is_some_and(|main| notify::belongs_to(*n, main)),
                    _ => true,
                })
                .collect();
            if !fields.is_empty() {
                self.push(Event::Notify { service, fields });
            }
        }
    }

    /// The service a process of this playpen belongs to, by the marks servicectl put in
    /// its environment (PLAYPEN_ROOT of this playpen, SERVICE_NAME, a launch mark).
    fn service_of_sender(&self, pid: i32) -> Option<String> {
        let mut environ = Vec::new();
        if !crate::process::proc::read_environ(pid, &mut environ) {
            return None;
        }
        let var = |name: &str| crate::process::proc::env_value(&environ, name);
        var(crate::process::census::LAUNCH)?;
        let root = var("PLAYPEN_ROOT")?;
        if !crate::process::census::RootMatcher::new(&self.playpen.root).is_ours(root) {
            return None;
        }
        Some(String::from_utf8_lossy(var("SERVICE_NAME")?).into_owned())
    }

    /// Remember where the output of service `i` ends before its start, for a
    /// `service_ready=log:` check that must only see what this start wrote.
    pub(super) fn note_output_start(&mut self, i: Sid, prepared: &Prepared) {
        if matches!(prepared.settings.ready, Ready::Log(_)) {
            let len = crate::process::output::file_len(&self.playpen.output_file(prepared.name()));
            self.output_starts.insert(i, len);
        }
    }

    pub(super) fn watch_log(&mut self, i: Sid, pattern: &str) {
        use nix::sys::inotify::AddWatchFlags;
        let (Some(inotify), Ok(regex)) = (&self.inotify, regex::Regex::new(pattern)) else {
            return;
        };
        let path = self.playpen.output_file(&self.machine.services[i].name);
        let offset = self.output_starts.remove(&i).unwrap_or(0);
        // The keeper may not have made the file yet (it does on the first line): made
        // here, so that the watch does not race it.
        if let Err(e) = crate::process::output::open_output(&path) {
            log(&format!("{}: {e}", self.machine.services[i].name));
        }
        match inotify.add_watch(&path, AddWatchFlags::IN_MODIFY) {
            Ok(wd) => {
                self.log_watches.insert(
                    i,
                    LogWatch {
                        wd,
                        regex,
                        path,
                        offset,
                        partial: Vec::new(),
                    },
                );
                // What was written before the watch began counts too.
                self.scan_log(i);
            }
            Err(e) => log(&format!(
                "{}: cannot watch {} for its readiness line: {e}",
                self.machine.services[i].name,
                path.display()
            )),
        }
    }

    pub(super) fn unwatch_log(&mut self, i: Sid) {
        if let Some(w) = self.log_watches.remove(&i)
            && let Some(inotify) = &self.inotify
        {
            let _ = inotify.rm_watch(w.wd);
        }
    }

    /// The service of an inotify watch on an output file.
    pub(super) fn log_watch_of(&self, wd: nix::sys::inotify::WatchDescriptor) -> Option<Sid> {
        self.log_watches
            .iter()
            .find(|(_, w)| w.wd == wd)
            .map(|(&i, _)| i)
    }

    /// Read what was appended since the last look; a matching line makes it ready.
    pub(super) fn scan_log(&mut self, i: Sid) {
        use std::io::{Read, Seek, SeekFrom};
        let Some(w) = self.log_watches.get_mut(&i) else {
            return;
        };
        use std::os::unix::fs::OpenOptionsExt;
        let Ok(mut file) = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(&w.path)
        else {
            return;
        };
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        if len < w.offset {
            // Rotated or truncated: read the new file from its start.
            w.offset = 0;
            w.partial.clear();
        }
        if file.seek(SeekFrom::Start(w.offset)).is_err() {
            return;
        }
        let mut added = Vec::new();
        // At most 1 MiB per look: a flood is read over several wake-ups.
        let _ = file.by_ref().take(1 << 20).read_to_end(&mut added);
        w.offset += added.len() as u64;
        let mut text = std::mem::take(&mut w.partial);
        text.extend_from_slice(&added);
        let (lines, rest) = match text.iter().rposition(|&b| b == b'\n') {
            Some(end) => (text[..end].to_vec(), text[end + 1..].to_vec()),
            None => (Vec::new(), text),
        };
        w.partial = rest;
        let matched = String::from_utf8_lossy(&lines)
            .lines()
            .any(|line| w.regex.is_match(line));
        if matched {
            self.unwatch_log(i);
            self.push(Event::LogMatched { service: i });
        }
    }
}

/// Bind the supervisor's notify socket (a failure is logged: notify services then
/// never become ready, and their start says so).
pub(super) fn bind_notify(playpen: &Playpen) -> Option<NotifySocket> {
    match NotifySocket::bind(&socket_path(playpen)) {
        Ok(s) => Some(s),
        Err(e) => {
            log(&format!("{e}"));
            None
        }
    }
}

/// The supervisor itself speaks sd_notify to whoever started it (a systemd unit of
/// `Type=notify`, `servicectl boot enable`): READY=1 once the launch has brought the
/// role up. No libsystemd: one datagram to $NOTIFY_SOCKET (a path, or `@name` in the
/// abstract namespace).
pub(super) fn tell_service_manager(machine: &Machine) {
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let up = machine
        .services
        .iter()
        .filter(|s| s.phase.is_ready())
        .count();
    let message = format!(
        "READY=1\nSTATUS=supervising {} service{}, {up} ready\nMAINPID={}",
        machine.services.len(),
        if machine.services.len() == 1 { "" } else { "s" },
        std::process::id()
    );
    let sent = (|| -> std::io::Result<()> {
        use std::os::linux::net::SocketAddrExt;
        let socket = std::os::unix::net::UnixDatagram::unbound()?;
        let bytes = target.as_encoded_bytes();
        let addr = match bytes.strip_prefix(b"@") {
            Some(name) => std::os::unix::net::SocketAddr::from_abstract_name(name)?,
            None => std::os::unix::net::SocketAddr::from_pathname(std::path::Path::new(&target))?,
        };
        socket.send_to_addr(message.as_bytes(), &addr)?;
        Ok(())
    })();
    if let Err(e) = sent {
        log(&format!(
            "cannot tell the service manager that the playpen is up (NOTIFY_SOCKET={}): {e}",
            target.to_string_lossy()
        ));
    }
}

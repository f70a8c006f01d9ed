//! Starting the program: how it is executed (linkfarm symlink, java), its start
//! record and pidfile, the wait through its grace period for a pidfile or READY=1, and
//! what a start that failed says, with what it left stopped.

use super::*;

/// How the program is executed: through its linkfarm symlink (so `ps` shows the run
/// name), or directly.
pub(super) struct Exec {
    executable: PathBuf,
    arg0: String,
    symlink: Option<PathBuf>,
}

/// Why a start that spawned its process failed; the error is written once we know
/// what the process left behind.
pub(super) enum Failure {
    /// The program ended during the grace period (or before writing its pidfile).
    Exited(ExitStatus),
    /// The program did not write its pidfile in time.
    NoPidfile,
    /// servicectl received this signal while waiting for the pidfile.
    Interrupted(Signal),
    Other(Error),
}

/// Wait (poll(2) on the socket and the program's pidfd) until a process of the service whose
/// main process is `pid` sends READY=1, or `timeout` passes, or the program exits.
pub(super) fn wait_ready_notify(
    socket: &crate::process::notify::NotifySocket,
    pid: i32,
    child: &spawn::Spawned,
    timeout: Duration,
) -> std::result::Result<(), Failure> {
    use crate::process::notify::{Field, belongs_to};
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::AsFd;
    let deadline = std::time::Instant::now() + timeout;
    let exit = crate::process::proc::pidfd(child.pid);
    loop {
        while let Some(m) = socket.recv() {
            if belongs_to(m.pid, pid) && m.fields.contains(&Field::Ready) {
                return Ok(());
            }
        }
        if let Some(status) = child.try_wait() {
            return Err(Failure::Exited(status));
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(Failure::Other(Error::runtime(format!(
                "it did not send READY=1 on $NOTIFY_SOCKET within {:.0} s (service_ready=notify, service_ready_timeout)",
                timeout.as_secs_f64()
            ))
            .with_hint("check that the program speaks sd_notify (for redis: `supervised systemd`), or raise service_ready_timeout")));
        }
        // Wake for a datagram, or when the program exits (its pidfd), or at the deadline.
        let wait = PollTimeout::try_from(left.as_millis().min(i32::MAX as u128) as i32)
            .unwrap_or(PollTimeout::NONE);
        match &exit {
            Some(pidfd) => {
                let mut fds = [
                    PollFd::new(socket.as_fd(), PollFlags::POLLIN),
                    PollFd::new(pidfd.as_fd(), PollFlags::POLLIN),
                ];
                let _ = poll(&mut fds, wait);
            }
            None => {
                let mut fds = [PollFd::new(socket.as_fd(), PollFlags::POLLIN)];
                let _ = poll(&mut fds, wait);
            }
        }
    }
}

/// The generic start: linkfarm symlink, start record (before the spawn: the process is
/// on record before it can outlive servicectl), spawn, pidfile, grace period.
pub(super) fn start_program(
    playpen: &Playpen,
    prepared: &Prepared,
    to: OutputTo,
) -> Result<Option<i32>> {
    let settings = &prepared.settings;
    let name = prepared.name();
    let program = prepared.program(playpen)?;
    let is_java = program.file_name().is_some_and(|f| f == "java");
    let mut env = prepared.env.clone();
    if is_java {
        add_java_classpath(playpen, prepared, &mut env)?;
    }
    let launch = census::new_launch();
    env.insert(census::LAUNCH.to_string(), launch.clone().into());
    // Without a supervisor, a service ready by sd_notify gets a socket of this start's
    // own, and the start waits for its READY=1 (a supervisor gives its own socket).
    let notify = if settings.ready == crate::config::settings::Ready::Notify
        && !env.contains_key("NOTIFY_SOCKET")
    {
        let path = playpen.run_dir().join(format!("{name}.notify"));
        let socket =
            crate::process::notify::NotifySocket::bind(&path).map_err(|e| e.with_service(name))?;
        env.insert("NOTIFY_SOCKET".into(), path.into_os_string());
        Some(socket)
    } else {
        None
    };
    let run_name = run_name(playpen, prepared);
    let exec = if is_java || !settings.symlink {
        Exec {
            executable: program.clone(),
            arg0: program.display().to_string(),
            symlink: None,
        }
    } else {
        let link_name = linkfarm::link_name(&run_name, playpen_tag(&env));
        let link = linkfarm::ensure_link(playpen, &link_name, &program, || {
            owner_of_link(playpen, name, &link_name)
        })
        .map_err(|e| e.with_service(name))?;
        Exec {
            executable: link.clone(),
            arg0: link_name,
            symlink: Some(link),
        }
    };
    let output = playpen.output_file(name);
    let output_start = crate::process::output::file_len(&output);
    let mut record = StartRecord {
        program: Some(program.display().to_string()),
        run_name: Some(run_name),
        symlink: exec.symlink.map(|s| s.display().to_string()),
        launch: Some(launch.clone()),
        starting: Some(Starter::me()),
        leader_is_service: settings.pidfile != PidfileMode::Program,
        ..base_record(playpen, prepared)
    };
    let pipe = match to {
        OutputTo::File => None,
        OutputTo::Pipe(pipes) => match pipes.pipe(name, settings.log) {
            Ok(fd) => Some((pipes, fd)),
            // No pipe to spare (out of descriptors, the keeper gone): the program
            // writes its file itself, unrotated, rather than not start at all.
            Err(e) => {
                eprintln!(
                    "servicectl: {name}: {}; it writes {} itself this time (not rotated)",
                    e.message,
                    output.display()
                );
                None
            }
        },
    };
    pidfile::write_record(playpen, name, &record).map_err(|e| e.with_service(name))?;
    let child = spawn::launch(&Launch {
        executable: &exec.executable,
        // The symlink is what is executed; a failure names the program it points at too.
        program: &program,
        arg0: &exec.arg0,
        args: &settings.flags,
        env: &env,
        cwd: &playpen.root,
        output: match &pipe {
            None => spawn::Output::Append(&output),
            Some((_, fd)) => spawn::Output::Fd(fd.as_fd()),
        },
        user: settings.user.as_ref(),
    });
    // The program holds the write end now; ours must not keep the pipe open.
    let pipes = pipe.map(|(pipes, _)| pipes);
    let child = match child {
        Ok(child) => child,
        Err(e) => {
            let _ = pidfile::clear(playpen, name);
            return Err(e.with_service(name));
        }
    };
    let child_pid = child.pid;
    let guard = KillOnDrop::new(child);
    let pidfile = playpen.pidfile(name);
    let settled: std::result::Result<i32, Failure> = match settings.pidfile {
        PidfileMode::Program => {
            match wait_for_pidfile(&pidfile, Some(guard.child()), settings.pidfile_timeout) {
                Ok(pid) => {
                    record.pid = Some(pid);
                    record.start_ticks = proc::start_ticks(pid);
                    record.starting = None;
                    pidfile::write_record(playpen, name, &record)
                        .map(|()| pid)
                        .map_err(Failure::Other)
                }
                Err(PidfileWait::Exited(status)) => Err(Failure::Exited(status)),
                Err(PidfileWait::TimedOut) => Err(Failure::NoPidfile),
                Err(PidfileWait::Interrupted(sig)) => Err(Failure::Interrupted(sig)),
            }
        }
        mode => {
            let pid = child_pid;
            record.pid = Some(pid);
            record.start_ticks = proc::start_ticks(pid);
            record.starting = None;
            // The pidfile first: with it, even a record still marked `starting` names
            // a process of ours (its environment says so); then the record is complete.
            let recorded = if mode == PidfileMode::None {
                Ok(())
            } else {
                pidfile::write_pid(&pidfile, pid)
            }
            .and_then(|()| pidfile::write_record(playpen, name, &record));
            match recorded {
                Err(e) => Err(Failure::Other(e)),
                Ok(()) => spawn::survive_grace(guard.child(), settings.start_grace)
                    .map(|()| pid)
                    .map_err(Failure::Exited),
            }
        }
    };
    let settled = match (settled, &notify) {
        (Ok(pid), Some(socket)) => {
            wait_ready_notify(socket, pid, guard.child(), settings.depends_timeout).map(|()| pid)
        }
        (settled, _) => settled,
    };
    let failure = match settled {
        Ok(pid) => {
            guard.disarm();
            return Ok(Some(pid));
        }
        Err(failure) => failure,
    };
    // The guard kills the process's group; what it moved to sessions or groups of its
    // own carries the launch mark and goes too. Its files go with it.
    drop(guard);
    let left = tracking::stop_launch(playpen, &launch, settings.halt_timeout);
    let _ = pidfile::clear(playpen, name);
    let daemons: Vec<String> = left
        .iter()
        .filter(|m| m.sid != child_pid)
        .map(|m| m.pid.to_string())
        .collect();
    let stopped_note = if daemons.is_empty() {
        String::new()
    } else {
        format!(
            " (servicectl stopped the {} process{} it left in a session of its own: PID {})",
            daemons.len(),
            if daemons.len() == 1 { "" } else { "es" },
            daemons.join(", ")
        )
    };
    if let Some(pipes) = pipes {
        // What it wrote before it died is in the pipe: into the file, to quote it.
        pipes.flush(name);
    }
    let tail = || crate::process::output::quoted_tail(&output, output_start);
    let see_output = format!("see {} for its full output", output.display());
    let error = match failure {
        Failure::Exited(status) if !daemons.is_empty() && settings.pidfile != PidfileMode::Program => {
            Error::runtime(format!(
                "{} {} right after starting, and it daemonized: set service_makes_own_pidfile=1{stopped_note}{}",
                program.display(),
                hooks::describe_status(status),
                tail()
            ))
            .with_hint("a program that forks into the background must write its PID to $SERVICE_PIDFILE, with service_makes_own_pidfile=1; or run it in the foreground (most daemons have an option for that)")
        }
        Failure::Exited(status) => Error::runtime(format!(
            "{} {} right after starting{stopped_note}{}",
            program.display(),
            hooks::describe_status(status),
            tail()
        ))
        .with_hint(see_output),
        Failure::NoPidfile => Error::runtime(format!(
            "the program did not write a live PID to {} within {:.0} s{stopped_note}",
            pidfile.display(),
            settings.pidfile_timeout.as_secs_f64()
        ))
        .with_hint("service_makes_own_pidfile=1 means the program writes $SERVICE_PIDFILE; check its configuration"),
        Failure::Interrupted(sig) => Error::runtime(format!(
            "servicectl received {} while waiting for {} to write {}; it was stopped",
            sig.as_str(),
            program.display(),
            pidfile.display()
        ))
        .with_hint("start it again when you are ready"),
        Failure::Other(e) => e,
    };
    Err(error.with_service(name))
}

/// argv[0] and the linkfarm name: service_run_name, else the package name, else the
/// service name.
pub(super) fn run_name(playpen: &Playpen, prepared: &Prepared) -> String {
    prepared
        .settings
        .run_name
        .clone()
        .or_else(|| catalog::package_of(playpen, &prepared.config.id))
        .unwrap_or_else(|| prepared.name().to_string())
}

/// The linkfarm symlink a generic start will make, and the program it points at (None:
/// started by a script, or without a symlink).
pub fn planned_link(playpen: &Playpen, prepared: &Prepared) -> Option<(String, PathBuf)> {
    let settings = &prepared.settings;
    if settings.scripts.start.is_some() || !settings.symlink {
        return None;
    }
    let program = prepared.program(playpen).ok()?;
    if program.file_name().is_some_and(|f| f == "java") {
        return None;
    }
    let tag = playpen_tag(&prepared.env);
    Some((
        linkfarm::link_name(&run_name(playpen, prepared), tag),
        program,
    ))
}

/// PLAYPEN_TAG as text (settings refuse a tag that is not UTF-8, or not a name).
pub(super) fn playpen_tag(env: &Env) -> Option<&str> {
    env.get("PLAYPEN_TAG").and_then(|t| t.to_str())
}

/// Which other running service owns this linkfarm name, if any.
pub(super) fn owner_of_link(playpen: &Playpen, service: &str, link_name: &str) -> Option<String> {
    let link = playpen.linkfarm().join(link_name).display().to_string();
    let entries = std::fs::read_dir(playpen.run_dir()).ok()?;
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(other) = file_name.to_str().and_then(|f| f.strip_suffix(".start")) else {
            continue;
        };
        if other == service {
            continue;
        }
        if let Some(record) = pidfile::read_record(playpen, other)
            && record.symlink.as_deref() == Some(link.as_str())
            && pidfile::observe(playpen, other)
                .map(|(o, _)| o.is_running())
                .unwrap_or(false)
        {
            return Some(other.to_string());
        }
    }
    None
}

/// Why [`wait_for_pidfile`] gave up.
pub(super) enum PidfileWait {
    /// The program failed before writing it.
    Exited(ExitStatus),
    TimedOut,
    /// servicectl received a cancelling signal (see `interrupt`).
    Interrupted(Signal),
}

/// Wait until `pidfile` holds a live PID (bounded by `timeout`). With the program as
/// `child`, its failure ends the wait at once. Event-driven: it sleeps in poll(2) until
/// a file of the pidfile's folder is written or renamed into it (inotify), the program
/// exits (its pidfd), a cancelling signal arrives (`interrupt`), or the deadline.
pub(super) fn wait_for_pidfile(
    pidfile: &Path,
    child: Option<&spawn::Spawned>,
    timeout: Duration,
) -> std::result::Result<i32, PidfileWait> {
    use nix::sys::inotify::{AddWatchFlags as F, InitFlags, Inotify};
    let deadline = Instant::now() + timeout;
    let written = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)
        .ok()
        .filter(|i| {
            pidfile.parent().is_some_and(|dir| {
                i.add_watch(dir, F::IN_CLOSE_WRITE | F::IN_MODIFY | F::IN_MOVED_TO)
                    .is_ok()
            })
        });
    let mut child = child;
    let mut exited = child.and_then(|c| proc::pidfd(c.pid));
    loop {
        if let Ok(Some(Ok(pid))) = pidfile::read_pid(pidfile)
            && proc::is_alive(pid)
        {
            return Ok(pid);
        }
        match child.and_then(spawn::Spawned::try_wait) {
            // Daemons fork and their first process exits 0: keep waiting for the file.
            Some(status) if status.success() => {
                child = None;
                exited = None;
            }
            Some(status) => return Err(PidfileWait::Exited(status)),
            None => {}
        }
        if let Some(sig) = interrupt::received() {
            return Err(PidfileWait::Interrupted(sig));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(PidfileWait::TimedOut);
        }
        let Some(inotify) = &written else {
            // No inotify (out of instances): look again in a moment.
            std::thread::sleep(left.min(Duration::from_millis(10)));
            continue;
        };
        let mut fds = vec![nix::poll::PollFd::new(
            inotify.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        for fd in exited
            .as_ref()
            .map(|f| f.as_fd())
            .into_iter()
            .chain(interrupt::wake_fd())
        {
            fds.push(nix::poll::PollFd::new(fd, nix::poll::PollFlags::POLLIN));
        }
        let ms = left.as_millis().min(i32::MAX as u128) as i32;
        // Woken or not, everything is looked at again above; EINTR included.
        let _ = nix::poll::poll(
            &mut fds,
            nix::poll::PollTimeout::try_from(ms).unwrap_or(nix::poll::PollTimeout::MAX),
        );
        while let Ok(events) = inotify.read_events() {
            if events.is_empty() {
                break;
            }
        }
    }
}

pub(super) fn add_java_classpath(
    playpen: &Playpen,
    prepared: &Prepared,
    env: &mut Env,
) -> Result<()> {
    let java = &prepared.settings.java;
    let mut entries: Vec<OsString> = Vec::new();
    for dir in &java.jardirs {
        let dir = playpen.ext().join(dir);
        let mut jars: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(|e| Error::io("read jar directory", &dir, e).with_service(prepared.name()))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "jar"))
            .collect();
        jars.sort();
        entries.extend(jars.into_iter().map(OsString::from));
    }
    for jar in &java.jars {
        entries.push(playpen.ext().join(jar).into());
    }
    if let Some(existing) = env.get("CLASSPATH").filter(|c| !c.is_empty()) {
        entries.push(existing.clone());
    }
    if !entries.is_empty() {
        env.insert("CLASSPATH".into(), entries.join(std::ffi::OsStr::new(":")));
    }
    Ok(())
}

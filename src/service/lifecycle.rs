//! Starting, stopping and restarting one service (pre_start, spawn, pidfile,
//! post_start; pre_stop, TERM, KILL, post_stop). Every operation holds the service's
//! lock; orchestration across services (order, parallelism) is in `ops::graph`.

use crate::config::settings::{LogRotation, PidfileMode, ServiceType, Settings};
use crate::config::{Env, template};
use crate::error::{Error, Result};
use crate::playpen::Playpen;
use crate::playpen::catalog;
use crate::playpen::lock::ServiceLock;
use crate::process::census::{self, Lazy};
use crate::process::interrupt;
use crate::process::linkfarm;
use crate::process::pidfile::{self, Observed, StartRecord, Starter};
use crate::process::proc;
use crate::process::spawn::{self, KillOnDrop, Launch};
use crate::process::tracking::{self, Target};
use crate::service::executable::{self, Via};
use crate::service::hooks::{self, Hook, Runnable};
use crate::service::oneshot;
pub use crate::service::outcome::Outcome;
use crate::service::prepared::Prepared;
use crate::service::program;
use nix::sys::signal::Signal;
use std::ffi::OsString;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant, SystemTime};

/// Where a started program's stdout and stderr go (SPEC §9.4).
///
/// Only the program gets the pipe. Hooks (pre_start …), ping scripts and the
/// `service_start`/`service_restart`/`service_stop` scripts append to the output file
/// themselves in every case: they are short, and their output is quoted from the file
/// the moment they end. After a rename-rotation such a descriptor writes into
/// `NAME.output.1`, which loses nothing. A daemon that a `service_start` script leaves
/// behind keeps the script's descriptor, so its file is not rotated (docs/supervisor.md).
#[derive(Clone, Copy)]
pub enum OutputTo<'a> {
    /// Appended to `var/run/NAME.output` by the program itself: a direct start (no
    /// supervisor, a package manager's hook).
    File,
    /// The write end of a pipe from here: under the supervisor, its output keeper.
    Pipe(&'a dyn Pipes),
}

/// What gives a program a pipe for its output and keeps the other end (the
/// supervisor's output keeper, `supervise::keeper`).
pub trait Pipes: Sync {
    /// A new pipe for `service`; the write end (close-on-exec) is returned.
    fn pipe(&self, service: &str, rotation: LogRotation) -> Result<OwnedFd>;
    /// Return once what `service` wrote into its pipes so far is in its file.
    fn flush(&self, service: &str);
}

/// Checks that need no process: the program and scripts exist, a service without a
/// pidfile has a ping. Cron and inetd services are valid here; only a direct start
/// refuses them ([`needs_supervisor`]).
pub fn validate(playpen: &Playpen, prepared: &Prepared) -> Result<()> {
    let settings = &prepared.settings;
    let name = prepared.name();
    let cwd = &playpen.root;
    let mut program = None;
    match &settings.scripts.start {
        None if settings.program.is_some() => {
            let path = prepared.program(playpen)?;
            executable::check_file(prepared, "service_program", &path, cwd, Via::Spawn)?;
            program = Some(path);
        }
        // No program and no start script: the settings reported it.
        None => {}
        Some(start) => {
            let path = script(playpen, prepared, "service_start", start)?;
            executable::check_file(prepared, "service_start", &path, cwd, Via::Execvp)?;
        }
    }
    for (setting, value) in [
        ("service_stop", &settings.scripts.stop),
        ("service_restart", &settings.scripts.restart),
        ("service_ping", &settings.scripts.ping),
    ] {
        if let Some(value) = value {
            let path = script(playpen, prepared, setting, value)?;
            executable::check_file(prepared, setting, &path, cwd, Via::Execvp)?;
        }
    }
    executable::check_environment(prepared, program.as_deref())?;
    check_watch(playpen, prepared)?;
    if settings.pidfile == PidfileMode::None && ping_runnable(playpen, prepared)?.is_none() {
        return Err(Error::config(format!(
            "service_no_pidfile=1 but there is no ping{}",
            prepared.config.origin_note("service_no_pidfile")
        ))
        .with_service(name)
        .with_hint("a service without a pidfile must provide service_ping (or a .ping script) so its state can be checked"));
    }
    Ok(())
}

/// Each service_watch pattern matches a file now: one that matches nothing is most
/// likely a typo, and would restart nothing.
fn check_watch(playpen: &Playpen, prepared: &Prepared) -> Result<()> {
    for pattern in &prepared.settings.watch.patterns {
        let found = crate::service::watch::Patterns::new(std::slice::from_ref(pattern))
            .map(|p| p.first_match(&playpen.root));
        if let Ok(None) = found {
            return Err(Error::config(format!(
                "service_watch pattern `{pattern}`{} matches no file in {}",
                prepared.config.origin_note("service_watch"),
                playpen.root.display()
            ))
            .with_service(prepared.name())
            .with_hint("patterns are relative to the playpen root, and `*` stays in one folder (`src/**/*.py` crosses folders); fix the pattern or create the file"));
        }
    }
    Ok(())
}

/// Cron and inetd services are run by the supervisor: a direct `start` or
/// `restart` (no supervisor running) refuses them. `check` accepts them (they are valid
/// configuration); the supervisor arms them itself and never calls [`start`] for them.
pub fn needs_supervisor(prepared: &Prepared) -> Result<()> {
    match &prepared.settings.service_type {
        ServiceType::Init | ServiceType::Oneshot => Ok(()),
        kind => Err(Error::config(format!(
            "service_type={} needs the supervisor{}: cron and inetd services are run by `servicectl supervise`",
            kind.name(),
            prepared.config.origin_note("service_type")
        ))
        .with_service(prepared.name())
        .with_hint("start the supervisor (`servicectl supervise --daemon`), then run this again")),
    }
}

/// A script named by a setting (service_start, service_stop, …), resolved like
/// service_program.
fn script(playpen: &Playpen, prepared: &Prepared, setting: &str, value: &str) -> Result<PathBuf> {
    program::resolve_setting(playpen, &prepared.config, setting, value, &prepared.env)
}

/// The ping for a service: the project's `services/$NAME/ping`, else service_ping,
/// else the package's `ping` script. None means: fall back to the status check.
pub fn ping_runnable(playpen: &Playpen, prepared: &Prepared) -> Result<Option<Runnable>> {
    let id = &prepared.config.id;
    for dir in catalog::project_dirs(playpen, id).into_iter().rev() {
        let path = dir.join("ping");
        if path.is_file() {
            return Ok(Some(Runnable::Script(path)));
        }
    }
    if let Some(ping) = &prepared.settings.scripts.ping {
        return Ok(Some(Runnable::Script(script(
            playpen,
            prepared,
            "service_ping",
            ping,
        )?)));
    }
    Ok(catalog::package_script(playpen, id, "ping").map(Runnable::Script))
}

/// The restart script: service_restart, else the package's `.restart` script (as a
/// package's `.pre-start` is the default of service_pre_start).
fn restart_script(playpen: &Playpen, prepared: &Prepared) -> Result<Option<PathBuf>> {
    match &prepared.settings.scripts.restart {
        Some(value) => script(playpen, prepared, "service_restart", value).map(Some),
        None if prepared.config.is_stand_in() => Ok(None),
        None => Ok(catalog::package_script(
            playpen,
            &prepared.config.id,
            "restart",
        )),
    }
}

/// Render the service's config templates (service_config_files) into var/; with
/// service_user, the rendered files are the user's (the service may rewrite them).
pub fn render_configs(playpen: &Playpen, prepared: &Prepared) -> Result<Vec<PathBuf>> {
    let settings = &prepared.settings;
    let rendered = template::render_all(
        playpen,
        &settings.config_files,
        &prepared.env,
        settings.config_style,
    )
    .map_err(|e| e.with_service(prepared.name()))?;
    super::run_as::give(prepared, &rendered)?;
    Ok(rendered)
}

fn run_hook(playpen: &Playpen, prepared: &Prepared, hook: Hook) -> Result<()> {
    // Without its configuration we cannot know which hooks the service wants.
    if prepared.config.is_stand_in() {
        return Ok(());
    }
    hooks::run_hook(
        playpen,
        &prepared.config.id,
        hook.command(&prepared.settings.hooks),
        hook,
        &prepared.env,
        &playpen.output_file(prepared.name()),
        prepared.settings.user.as_ref(),
    )
}

/// Start a service unless it runs already.
pub fn start(playpen: &Playpen, prepared: &Prepared, output: OutputTo) -> Result<Outcome> {
    start_with(playpen, prepared, &Lazy::new(playpen), output)
}

/// [`start`] within a command that shares one census of the playpen's processes
/// across its services (scanned only if one of them needs it).
pub fn start_with(
    playpen: &Playpen,
    prepared: &Prepared,
    census: &Lazy,
    output: OutputTo,
) -> Result<Outcome> {
    needs_supervisor(prepared)?;
    let _lock = ServiceLock::acquire(playpen, prepared.name())?;
    interrupt::check(prepared.name(), "started")?;
    start_locked(playpen, prepared, census, output)
}

/// Observe the service under its lock, after adopting or rolling back what a start that
/// was cut short left (see `tracking`).
fn settle(
    playpen: &Playpen,
    prepared: &Prepared,
    census: &Lazy,
) -> Result<(Observed, Option<StartRecord>)> {
    let name = prepared.name();
    let (observed, record, _) =
        tracking::settle(playpen, name, prepared.settings.halt_timeout, census)
            .map_err(|e| e.with_service(name))?;
    Ok((observed, record))
}

/// The live processes that carry the service's marks (see `census`).
fn marked(census: &Lazy, name: &str) -> Vec<Target> {
    census
        .get()
        .of_service(name)
        .filter(|m| m.is_alive())
        .map(Target::from)
        .collect()
}

fn start_locked(
    playpen: &Playpen,
    prepared: &Prepared,
    census: &Lazy,
    output: OutputTo,
) -> Result<Outcome> {
    let name = prepared.name();
    let (mut observed, _) = settle(playpen, prepared, census)?;
    let oneshot = prepared.settings.service_type == ServiceType::Oneshot;
    if oneshot {
        if let Observed::Running { pid, .. } | Observed::Untracked { pid, .. } = observed {
            // A run whose servicectl died: its exit status is gone; it ends, then runs again.
            oneshot::outlive_orphan(playpen, name, pid)?;
            observed = Observed::Stopped;
        } else if let Some(mark) = oneshot::done(playpen, name) {
            return Ok(mark.outcome());
        }
    }
    match observed {
        Observed::Running { pid, .. } => return Ok(Outcome::AlreadyRunning { pid: Some(pid) }),
        Observed::Untracked { pid, .. } => {
            // Someone removed the pidfile of a process that still runs: put it back.
            if prepared.settings.pidfile != PidfileMode::None {
                pidfile::write_pid(&playpen.pidfile(name), pid)
                    .map_err(|e| e.with_service(name))?;
            }
            return Ok(Outcome::AlreadyRunning { pid: Some(pid) });
        }
        Observed::Unwatched => return Ok(Outcome::AlreadyRunning { pid: None }),
        Observed::Stale { .. } => {
            // What the dead instance left (children in sessions of their own) goes too.
            tracking::terminate(&marked(census, name), prepared.settings.halt_timeout, true);
            pidfile::clear(playpen, name)?
        }
        Observed::Stopped => {}
        Observed::Starting { .. } | Observed::Interrupted { .. } => {
            return Err(Error::runtime(
                "a start that was cut short left a record servicectl could not settle",
            )
            .with_service(name)
            .with_hint(format!(
                "check `servicectl status {name}`, stop what runs of it, remove {}",
                playpen.start_record(name).display()
            )));
        }
    }
    render_configs(playpen, prepared)?;
    super::run_as::give_own_files(playpen, prepared)?;
    run_hook(playpen, prepared, Hook::PreStart)?;
    if oneshot {
        let outcome = oneshot::run(playpen, prepared, base_record(playpen, prepared))?;
        run_hook(playpen, prepared, Hook::PostStart)?;
        return Ok(outcome);
    }
    let pid = match &prepared.settings.scripts.start {
        Some(start) => start_by_script(playpen, prepared, start)?,
        None => start_program(playpen, prepared, output)?,
    };
    if let Err(e) = run_hook(playpen, prepared, Hook::PostStart) {
        return Err(Error::runtime(format!("started, but {}", e.message))
            .with_service(name)
            .with_hint(e.hint.unwrap_or_default()));
    }
    Ok(Outcome::Started { pid })
}

fn base_record(playpen: &Playpen, prepared: &Prepared) -> StartRecord {
    StartRecord {
        root: Some(playpen.root.display().to_string()),
        version: prepared.config.id.version.clone(),
        started_at: SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0),
        ports: prepared.ports.clone(),
        no_pidfile: prepared.settings.pidfile == PidfileMode::None,
        ..StartRecord::default()
    }
}

/// How the program is executed: through its linkfarm symlink (so `ps` shows the run
/// name), or directly.
struct Exec {
    executable: PathBuf,
    arg0: String,
    symlink: Option<PathBuf>,
}

/// Why a start that spawned its process failed; the error is written once we know
/// what the process left behind.
enum Failure {
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
fn wait_ready_notify(
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
fn start_program(playpen: &Playpen, prepared: &Prepared, to: OutputTo) -> Result<Option<i32>> {
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
fn run_name(playpen: &Playpen, prepared: &Prepared) -> String {
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
fn playpen_tag(env: &Env) -> Option<&str> {
    env.get("PLAYPEN_TAG").and_then(|t| t.to_str())
}

/// Which other running service owns this linkfarm name, if any.
fn owner_of_link(playpen: &Playpen, service: &str, link_name: &str) -> Option<String> {
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
enum PidfileWait {
    /// The program failed before writing it.
    Exited(ExitStatus),
    TimedOut,
    /// servicectl received a cancelling signal (see `interrupt`).
    Interrupted(Signal),
}

/// Wait until `pidfile` holds a live PID (bounded by `timeout`). With the program as
/// `child`, its failure ends the wait at once.
fn wait_for_pidfile(
    pidfile: &Path,
    child: Option<&spawn::Spawned>,
    timeout: Duration,
) -> std::result::Result<i32, PidfileWait> {
    let deadline = Instant::now() + timeout;
    let mut child = child;
    loop {
        if let Ok(Some(Ok(pid))) = pidfile::read_pid(pidfile)
            && proc::is_alive(pid)
        {
            return Ok(pid);
        }
        match child.and_then(spawn::Spawned::try_wait) {
            // Daemons fork and their first process exits 0: keep waiting for the file.
            Some(status) if status.success() => child = None,
            Some(status) => return Err(PidfileWait::Exited(status)),
            None => {}
        }
        if let Some(sig) = interrupt::received() {
            return Err(PidfileWait::Interrupted(sig));
        }
        if Instant::now() >= deadline {
            return Err(PidfileWait::TimedOut);
        }
        // The file appears when the program decides; a short sleep is the simple bounded wait.
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Run a service script (service_start, service_stop, service_restart or the
/// package's restart script) to completion with NAME VERSION; a failure quotes its
/// output. With `launch`, what it starts carries that launch mark (see `census`).
fn run_service_script(
    playpen: &Playpen,
    prepared: &Prepared,
    setting: &str,
    path: &Path,
    launch: Option<&str>,
) -> Result<()> {
    let output = playpen.output_file(prepared.name());
    let marked_env;
    let env = match launch {
        Some(launch) => {
            let mut env = prepared.env.clone();
            env.insert(census::LAUNCH.to_string(), launch.into());
            marked_env = env;
            &marked_env
        }
        None => &prepared.env,
    };
    let finished = hooks::run(
        playpen,
        &prepared.config.id,
        &Runnable::Script(path.to_path_buf()),
        env,
        Some(&output),
        None,
        prepared.settings.user.as_ref(),
    )?;
    if !finished.success {
        return Err(Error::runtime(format!(
            "{setting} {} {}:\n{}",
            path.display(),
            finished.status,
            crate::text::indent(
                &crate::text::last_lines(finished.output.trim_end(), 10).join("\n")
            )
        ))
        .with_service(prepared.name())
        .with_hint(format!("see {} for its full output", output.display())));
    }
    Ok(())
}

/// service_start: the script starts the service and (unless service_no_pidfile) writes
/// the pidfile. Like a program, it is on record (a start record with its launch mark)
/// before it runs; when it fails, what it started is stopped.
fn start_by_script(playpen: &Playpen, prepared: &Prepared, start: &str) -> Result<Option<i32>> {
    let settings = &prepared.settings;
    let name = prepared.name();
    let path = script(playpen, prepared, "service_start", start)?;
    let launch = census::new_launch();
    let mut record = StartRecord {
        program: Some(path.display().to_string()),
        launch: Some(launch.clone()),
        starting: Some(Starter::me()),
        ..base_record(playpen, prepared)
    };
    pidfile::write_record(playpen, name, &record).map_err(|e| e.with_service(name))?;
    let roll_back = || {
        tracking::stop_launch(playpen, &launch, settings.halt_timeout);
        let _ = pidfile::clear(playpen, name);
    };
    if let Err(e) = run_service_script(playpen, prepared, "service_start", &path, Some(&launch)) {
        roll_back();
        return Err(e);
    }
    record.starting = None;
    if settings.pidfile == PidfileMode::None {
        pidfile::write_record(playpen, name, &record)?;
        return Ok(None);
    }
    let pidfile = playpen.pidfile(name);
    let pid = match wait_for_pidfile(&pidfile, None, settings.pidfile_timeout) {
        Ok(pid) => pid,
        Err(why) => {
            roll_back();
            let error = match why {
                PidfileWait::Interrupted(sig) => Error::runtime(format!(
                    "servicectl received {} while waiting for service_start {} to write {}; what it started was stopped",
                    sig.as_str(),
                    path.display(),
                    pidfile.display()
                ))
                .with_hint("start it again when you are ready"),
                _ => Error::runtime(format!(
                    "service_start {} finished but {} holds no live PID",
                    path.display(),
                    pidfile.display()
                ))
                .with_hint("the service_start script must write the service's PID to $SERVICE_PIDFILE (or set service_no_pidfile=1)"),
            };
            return Err(error.with_service(name));
        }
    };
    record.pid = Some(pid);
    record.start_ticks = proc::start_ticks(pid);
    pidfile::write_record(playpen, name, &record)?;
    Ok(Some(pid))
}

fn add_java_classpath(playpen: &Playpen, prepared: &Prepared, env: &mut Env) -> Result<()> {
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

/// Stop a service if it runs.
pub fn stop(playpen: &Playpen, prepared: &Prepared) -> Result<Outcome> {
    stop_with(playpen, prepared, &Lazy::new(playpen))
}

/// [`stop`] within a command that shares one census across its services.
pub fn stop_with(playpen: &Playpen, prepared: &Prepared, census: &Lazy) -> Result<Outcome> {
    let _lock = ServiceLock::acquire(playpen, prepared.name())?;
    stop_locked(playpen, prepared, census)
}

/// Stop a service and, under the same lock, do `then` with the start record as it was
/// before the stop (remove-service removes the service's files there): no start can
/// come in between.
pub fn stop_then<T>(
    playpen: &Playpen,
    prepared: &Prepared,
    census: &Lazy,
    then: impl FnOnce(Option<StartRecord>) -> Result<T>,
) -> Result<(Outcome, T)> {
    let _lock = ServiceLock::acquire(playpen, prepared.name())?;
    let record = pidfile::read_record(playpen, prepared.name());
    let outcome = stop_locked(playpen, prepared, census)?;
    Ok((outcome, then(record)?))
}

/// Stop the service's process (its process group) and every process that carries the
/// service's marks: children that moved to a session or process group of their own
/// escape the group signal, not their environment (see `census`).
fn stop_locked(playpen: &Playpen, prepared: &Prepared, census: &Lazy) -> Result<Outcome> {
    let settings = &prepared.settings;
    let name = prepared.name();
    let (observed, _) = settle(playpen, prepared, census)?;
    let halt = settings.halt_timeout;
    // A done one-shot is stopped by forgetting that it is done.
    let was_done = oneshot::clear_done(playpen, name)?;
    if was_done && observed == Observed::Stopped && marked(census, name).is_empty() {
        return Ok(Outcome::Stopped {
            pid: None,
            warning: None,
        });
    }
    let main = match observed {
        Observed::Running { pid, start_ticks } | Observed::Untracked { pid, start_ticks } => {
            Some(Target { pid, start_ticks })
        }
        Observed::Unwatched => None,
        Observed::Stopped
        | Observed::Stale { .. }
        | Observed::Starting { .. }
        | Observed::Interrupted { .. } => {
            if !matches!(observed, Observed::Stopped) {
                pidfile::clear(playpen, name)?;
            }
            let left = marked(census, name);
            if left.is_empty() {
                return Ok(Outcome::AlreadyStopped);
            }
            still_alive(name, &tracking::terminate(&left, halt, true))?;
            let pids: Vec<String> = left.iter().map(|t| t.pid.to_string()).collect();
            return Ok(Outcome::Stopped {
                pid: None,
                warning: Some(format!(
                    "its main process was gone; stopped what it left: PID {}",
                    pids.join(", ")
                )),
            });
        }
    };
    let members: Vec<Target> = marked(census, name)
        .into_iter()
        .filter(|t| Some(t.pid) != main.map(|m| m.pid))
        .collect();
    if main.is_none() && members.is_empty() && settings.scripts.stop.is_none() {
        return Err(Error::config(
            "it runs without a pidfile and has no service_stop script, so servicectl cannot stop it",
        )
        .with_service(name)
        .with_hint("set service_stop to a script that stops it (it gets NAME VERSION)"));
    }
    // A failing hook must not make a service impossible to stop: warn and go on.
    let mut warnings = Vec::new();
    if let Err(e) = run_hook(playpen, prepared, Hook::PreStop) {
        warnings.push(e.message);
    }
    let mut left = Vec::new();
    if let Some(stop) = &settings.scripts.stop {
        let path = script(playpen, prepared, "service_stop", stop)?;
        run_service_script(playpen, prepared, "service_stop", &path, None)?;
        // The script stopped the service: give it the halt timeout to be gone, then
        // what is left of it gets SIGTERM like any service.
        left.extend(tracking::terminate(&Vec::from_iter(main), halt, false));
        left.extend(tracking::terminate(&members, halt, true));
    } else {
        let all: Vec<Target> = main.into_iter().chain(members).collect();
        left = tracking::terminate(&all, halt, true);
    }
    still_alive(name, &left)?;
    pidfile::clear(playpen, name)?;
    if let Err(e) = run_hook(playpen, prepared, Hook::PostStop) {
        warnings.push(e.message);
    }
    Ok(Outcome::Stopped {
        pid: main.map(|m| m.pid),
        warning: (!warnings.is_empty()).then(|| warnings.join("; ")),
    })
}

/// Processes that survived SIGKILL are an error naming them.
fn still_alive(name: &str, left: &[i32]) -> Result<()> {
    if left.is_empty() {
        return Ok(());
    }
    let pids: Vec<String> = left.iter().map(i32::to_string).collect();
    Err(Error::runtime(format!(
        "PID {} {} still alive after SIGKILL",
        pids.join(", "),
        if left.len() == 1 { "is" } else { "are" }
    ))
    .with_service(name)
    .with_hint(
        "it may be stuck in the kernel (uninterruptible I/O); check `ps -o stat,wchan -p PID`",
    ))
}

/// The first file of service_filedep modified since the service started.
fn changed_filedep(
    playpen: &Playpen,
    prepared: &Prepared,
    record: Option<&StartRecord>,
) -> Option<String> {
    let started = SystemTime::UNIX_EPOCH + Duration::from_secs_f64(record?.started_at);
    prepared
        .settings
        .filedep
        .files
        .iter()
        .find(|f| {
            let path = if Path::new(f).is_absolute() {
                PathBuf::from(f)
            } else {
                playpen.root.join(f)
            };
            std::fs::metadata(&path)
                .and_then(|m| m.modified())
                .is_ok_and(|modified| modified > started)
        })
        .cloned()
}

/// The reload of service_hup: render the templates, pre_start (such as `nginx -t`),
/// SIGHUP, post_start. When any step before the signal fails, the rendered files go
/// back to what the running process read last.
fn reload(playpen: &Playpen, prepared: &Prepared, pid: i32) -> Result<Outcome> {
    let name = prepared.name();
    let settings = &prepared.settings;
    let (_, previous) = template::render_all_keeping_previous(
        playpen,
        &settings.config_files,
        &prepared.env,
        settings.config_style,
    )
    .map_err(|e| e.with_service(name))?;
    run_hook(playpen, prepared, Hook::PreStart)?;
    proc::signal_service_only(pid, Signal::SIGHUP).map_err(|e| {
        Error::runtime(format!("cannot send SIGHUP to PID {pid}: {e}"))
            .with_service(name)
            .with_hint(
                "check `servicectl status`; run servicectl as the user that started the service",
            )
    })?;
    // The process has been told to read the new files: they are its files now.
    previous.keep();
    run_hook(playpen, prepared, Hook::PostStart)?;
    Ok(Outcome::Reloaded { pid })
}

/// How a restart goes, decided from what runs and what the settings ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RestartPath {
    /// A service_filedep file changed and service_stop_on_filedep=1: stop, stay stopped.
    StopForFiledep { pid: i32, file: String },
    /// service_hup=1: render, pre_start, SIGHUP, post_start.
    Reload { pid: i32 },
    /// The restart script (service_restart or the package's `.restart`).
    Script(PathBuf),
    /// Stop, wait service_restart_delay, start.
    StopThenStart,
    /// Nothing runs: a restart is a start.
    Start,
}

/// The restart decision on its own: `running` is the PID when the service runs with a
/// pidfile, `unwatched` when it runs without one.
fn restart_path(
    settings: &Settings,
    running: Option<i32>,
    unwatched: bool,
    changed_filedep: Option<String>,
    script: Option<PathBuf>,
) -> RestartPath {
    match running {
        Some(pid) => match (settings.filedep.stop_on_change, changed_filedep) {
            (true, Some(file)) => RestartPath::StopForFiledep { pid, file },
            _ if settings.hup => RestartPath::Reload { pid },
            _ => script.map_or(RestartPath::StopThenStart, RestartPath::Script),
        },
        None if unwatched => RestartPath::StopThenStart,
        None => RestartPath::Start,
    }
}

/// Restart: HUP path if service_hup, else the restart script (service_restart or the
/// package's `.restart`), else stop, wait service_restart_delay, start. A stopped
/// service is simply started.
pub fn restart(playpen: &Playpen, prepared: &Prepared, output: OutputTo) -> Result<Outcome> {
    restart_with(playpen, prepared, &Lazy::new(playpen), output)
}

/// [`restart`] within a command that shares one census across its services.
pub fn restart_with(
    playpen: &Playpen,
    prepared: &Prepared,
    census: &Lazy,
    output: OutputTo,
) -> Result<Outcome> {
    needs_supervisor(prepared)?;
    let settings = &prepared.settings;
    let name = prepared.name();
    let _lock = ServiceLock::acquire(playpen, name)?;
    interrupt::check(name, "restarted")?;
    if settings.service_type == ServiceType::Oneshot {
        // A restart runs the step again, done or not.
        oneshot::clear_done(playpen, name)?;
    }
    let (observed, record) = settle(playpen, prepared, census)?;
    let running = match observed {
        Observed::Running { pid, .. } | Observed::Untracked { pid, .. } => Some(pid),
        _ => None,
    };
    let (changed, script) = match running {
        Some(_) => (
            changed_filedep(playpen, prepared, record.as_ref()),
            restart_script(playpen, prepared)?,
        ),
        None => (None, None),
    };
    let unwatched = matches!(observed, Observed::Unwatched);
    match restart_path(settings, running, unwatched, changed, script) {
        RestartPath::StopForFiledep { pid, file } => {
            // The service must not run on the changed file: stop, and leave it stopped.
            stop_locked(playpen, prepared, census)?;
            Ok(Outcome::StoppedForFiledep { pid, file })
        }
        RestartPath::Reload { pid } => reload(playpen, prepared, pid),
        RestartPath::Script(path) => {
            let launch = census::new_launch();
            run_service_script(playpen, prepared, "service_restart", &path, Some(&launch))?;
            let pid = pidfile::observe(playpen, name)?.0.pid();
            Ok(Outcome::Restarted { pid })
        }
        path @ (RestartPath::StopThenStart | RestartPath::Start) => {
            if path == RestartPath::StopThenStart {
                stop_locked(playpen, prepared, census)?;
                if !settings.restart_delay.is_zero() {
                    std::thread::sleep(settings.restart_delay);
                }
            }
            match start_locked(playpen, prepared, census, output)? {
                Outcome::Started { pid } => Ok(Outcome::Restarted { pid }),
                other => Ok(other),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Origin, ServiceConfig, Value, Vars};
    use crate::playpen::catalog::ServiceId;
    use std::sync::Arc;

    fn settings(f: impl FnOnce(&mut Settings)) -> Settings {
        let mut s = Settings::default();
        f(&mut s);
        s
    }

    #[test]
    fn restart_takes_the_path_the_settings_ask_for() {
        let plain = Settings::default();
        let script = Some(PathBuf::from("/p/ext/services/web-1.0/restart"));
        assert_eq!(
            restart_path(&plain, None, false, None, None),
            RestartPath::Start
        );
        assert_eq!(
            restart_path(&plain, None, true, None, None),
            RestartPath::StopThenStart
        );
        assert_eq!(
            restart_path(&plain, Some(7), false, None, None),
            RestartPath::StopThenStart
        );
        assert_eq!(
            restart_path(&plain, Some(7), false, None, script.clone()),
            RestartPath::Script(script.clone().unwrap())
        );
        let hup = settings(|s| s.hup = true);
        assert_eq!(
            restart_path(&hup, Some(7), false, None, script.clone()),
            RestartPath::Reload { pid: 7 },
            "service_hup wins over the restart script"
        );
        // A changed file stops the service only when it asks for that, even with hup.
        let filedep = settings(|s| {
            s.hup = true;
            s.filedep.stop_on_change = true;
        });
        assert_eq!(
            restart_path(&filedep, Some(7), false, Some("etc/x".into()), None),
            RestartPath::StopForFiledep {
                pid: 7,
                file: "etc/x".into()
            }
        );
        assert_eq!(
            restart_path(&hup, Some(7), false, Some("etc/x".into()), None),
            RestartPath::Reload { pid: 7 }
        );
        // Nothing runs: no reload, no script, a start.
        assert_eq!(
            restart_path(&filedep, None, false, Some("etc/x".into()), script),
            RestartPath::Start
        );
    }

    /// A playpen in a temporary directory with one project-local service.
    fn playpen_with(program: &str) -> (tempfile::TempDir, Playpen, Prepared) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let playpen = Playpen::init(&root, "dev").unwrap();
        std::fs::create_dir_all(root.join("bin")).unwrap();
        let path = root.join("bin/prog");
        std::fs::write(&path, program).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let mut vars = Vars::new();
        vars.insert(
            "PATH".into(),
            Value {
                value: std::env::var_os("PATH").unwrap_or_default(),
                exported: true,
                origin: Origin::Environment,
            },
        );
        vars.insert(
            "PLAYPEN_ROOT".into(),
            Value {
                value: root.clone().into(),
                exported: true,
                origin: Origin::Servicectl,
            },
        );
        let config = ServiceConfig {
            id: ServiceId {
                name: "web".into(),
                version: None,
            },
            fragments: vec![root.join("services/web/config")],
            vars,
        };
        let settings = Settings {
            program: Some("prog".into()),
            start_grace: Duration::from_millis(300),
            ..Settings::default()
        };
        let env = config.environment();
        let prepared = Prepared::new(Arc::new(config), Arc::new(settings), env, Vec::new());
        playpen.ensure_var().unwrap();
        (dir, playpen, prepared)
    }

    #[test]
    fn a_failed_start_leaves_no_process_and_no_record() {
        let (_dir, playpen, prepared) =
            playpen_with("#!/bin/sh\necho \"pid $$\"\necho starting >&2\nexit 3\n");
        let err = start(&playpen, &prepared, OutputTo::File).unwrap_err();
        assert!(
            err.message
                .contains("exited with status 3 right after starting"),
            "{}",
            err.message
        );
        assert!(
            err.message.contains("starting"),
            "the output's tail is quoted: {}",
            err.message
        );
        assert!(!playpen.pidfile("web").exists());
        assert!(!playpen.start_record("web").exists());
        let output = std::fs::read_to_string(playpen.output_file("web")).unwrap();
        let pid: i32 = output
            .lines()
            .next()
            .unwrap()
            .strip_prefix("pid ")
            .unwrap()
            .parse()
            .unwrap();
        assert!(!proc::is_alive(pid));
    }

    #[test]
    fn a_start_then_stop_leaves_records_only_while_it_runs() {
        let (_dir, playpen, prepared) = playpen_with("#!/bin/sh\nexec sleep 1000\n");
        let Outcome::Started { pid: Some(pid) } =
            start(&playpen, &prepared, OutputTo::File).unwrap()
        else {
            panic!("not started");
        };
        assert!(proc::is_alive(pid));
        assert_eq!(
            std::fs::read_to_string(playpen.pidfile("web"))
                .unwrap()
                .trim(),
            pid.to_string()
        );
        assert!(playpen.start_record("web").exists());
        assert_eq!(
            start(&playpen, &prepared, OutputTo::File).unwrap(),
            Outcome::AlreadyRunning { pid: Some(pid) }
        );
        assert!(
            matches!(stop(&playpen, &prepared).unwrap(), Outcome::Stopped { pid: Some(p), .. } if p == pid)
        );
        assert!(!proc::is_alive(pid));
        assert!(!playpen.pidfile("web").exists());
        assert!(!playpen.start_record("web").exists());
        assert_eq!(stop(&playpen, &prepared).unwrap(), Outcome::AlreadyStopped);
    }
}

//! Starting, stopping and restarting one service (§6). Every operation holds the
//! service's lock; orchestration across services (order, parallelism) is in `graph`.

use crate::config::settings::{PidfileMode, ServiceType, Settings};
use crate::config::template;
use crate::error::{Error, Result};
use crate::playpen::Playpen;
use crate::playpen::catalog;
use crate::playpen::lock::ServiceLock;
use crate::process::linkfarm;
use crate::process::pidfile::{self, Observed, StartRecord};
use crate::process::proc;
use crate::process::spawn::{self, KillOnDrop, Launch};
use crate::service::executable::{self, Via};
use crate::service::hooks::{self, Hook, Runnable};
pub use crate::service::outcome::Outcome;
use crate::service::prepared::Prepared;
use crate::service::program;
use nix::sys::signal::Signal;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// Checks that need no process: the program and scripts exist, a service without a
/// pidfile has a ping, the service type is one this command can run.
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
    if settings.pidfile == PidfileMode::None && ping_runnable(playpen, prepared)?.is_none() {
        return Err(Error::config(format!(
            "service_no_pidfile=1 but there is no ping{}",
            prepared.config.origin_note("service_no_pidfile")
        ))
        .with_service(name)
        .with_hint("a service without a pidfile must provide service_ping (or a .ping script) so its state can be checked"));
    }
    match &settings.service_type {
        ServiceType::Init => Ok(()),
        kind => Err(Error::config(format!(
            "service_type={} needs the supervisor{}: cron and inetd services are run by `servicectl supervise`, which this version does not have",
            kind.name(),
            prepared.config.origin_note("service_type")
        ))
        .with_service(name)
        .with_hint("run it as a daemon (service_type=init), or leave it out of playpen_services for now")),
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

/// Render the service's config templates (service_config_files) into var/.
pub fn render_configs(playpen: &Playpen, prepared: &Prepared) -> Result<Vec<PathBuf>> {
    let settings = &prepared.settings;
    template::render_all(
        playpen,
        &settings.config_files,
        &prepared.env,
        settings.config_style,
    )
    .map_err(|e| e.with_service(prepared.name()))
}

fn run_hook(playpen: &Playpen, prepared: &Prepared, hook: Hook) -> Result<()> {
    // Without its configuration we cannot know which hooks the service wants.
    if prepared.config.is_stand_in() {
        return Ok(());
    }
    let hooks = &prepared.settings.hooks;
    let command = match hook {
        Hook::PreStart => &hooks.pre_start,
        Hook::PostStart => &hooks.post_start,
        Hook::PreStop => &hooks.pre_stop,
        Hook::PostStop => &hooks.post_stop,
    };
    hooks::run_hook(
        playpen,
        &prepared.config.id,
        command.as_deref(),
        hook,
        &prepared.env,
        &playpen.output_file(prepared.name()),
    )
}

/// Start a service unless it runs already.
pub fn start(playpen: &Playpen, prepared: &Prepared) -> Result<Outcome> {
    let _lock = ServiceLock::acquire(playpen, prepared.name())?;
    start_locked(playpen, prepared)
}

fn start_locked(playpen: &Playpen, prepared: &Prepared) -> Result<Outcome> {
    let name = prepared.name();
    let (observed, _) = pidfile::observe(playpen, name)?;
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
        Observed::Stale { .. } => pidfile::clear(playpen, name)?,
        Observed::Stopped => {}
    }
    render_configs(playpen, prepared)?;
    run_hook(playpen, prepared, Hook::PreStart)?;
    let pid = match &prepared.settings.scripts.start {
        Some(start) => start_by_script(playpen, prepared, start)?,
        None => start_program(playpen, prepared)?,
    };
    if let Err(e) = run_hook(playpen, prepared, Hook::PostStart) {
        return Err(Error::runtime(format!("started, but {}", e.message))
            .with_service(name)
            .with_hint(e.hint.unwrap_or_default()));
    }
    Ok(Outcome::Started { pid })
}

fn base_record(prepared: &Prepared) -> StartRecord {
    StartRecord {
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

/// The generic start: linkfarm symlink, spawn, pidfile, grace period.
fn start_program(playpen: &Playpen, prepared: &Prepared) -> Result<Option<i32>> {
    let settings = &prepared.settings;
    let name = prepared.name();
    let program = prepared.program(playpen)?;
    let is_java = program.file_name().is_some_and(|f| f == "java");
    let mut env = prepared.env.clone();
    if is_java {
        add_java_classpath(playpen, prepared, &mut env)?;
    }
    let run_name = run_name(playpen, prepared);
    let exec = if is_java || !settings.symlink {
        Exec {
            executable: program.clone(),
            arg0: program.display().to_string(),
            symlink: None,
        }
    } else {
        let link_name = linkfarm::link_name(&run_name, env.get("PLAYPEN_TAG").map(String::as_str));
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
    let child = spawn::launch(&Launch {
        executable: &exec.executable,
        // The symlink is what is executed; a failure names the program it points at too.
        program: &program,
        arg0: &exec.arg0,
        args: &settings.flags,
        env: &env,
        cwd: &playpen.root,
        output: &output,
    })
    .map_err(|e| e.with_service(name))?;
    let guard = KillOnDrop::new(child);
    let failed = |status: std::process::ExitStatus| {
        let tail = crate::process::output::tail_file(&output, output_start, 10);
        let mut message = format!(
            "{} {} right after starting",
            program.display(),
            hooks::describe_status(status)
        );
        if !tail.is_empty() {
            message.push_str(&format!(
                "; last lines of {}:\n{}",
                output.display(),
                crate::text::indent(&tail)
            ));
        }
        Error::runtime(message)
            .with_service(name)
            .with_hint(format!("see {} for its full output", output.display()))
    };
    let mut record = StartRecord {
        program: Some(program.display().to_string()),
        run_name: Some(run_name),
        symlink: exec.symlink.map(|s| s.display().to_string()),
        ..base_record(prepared)
    };
    let pidfile = playpen.pidfile(name);
    let settled = match settings.pidfile {
        PidfileMode::Program => {
            let timeout = settings.pidfile_timeout;
            wait_for_pidfile(&pidfile, Some(guard.child()), timeout)
                .map_err(|status| match status {
                    Some(status) => failed(status),
                    None => Error::runtime(format!(
                        "the program did not write a live PID to {} within {:.0} s",
                        pidfile.display(),
                        timeout.as_secs_f64()
                    ))
                    .with_service(name)
                    .with_hint("service_makes_own_pidfile=1 means the program writes $SERVICE_PIDFILE; check its configuration"),
                })
                .and_then(|pid| {
                    record.pid = Some(pid);
                    record.start_ticks = proc::start_ticks(pid);
                    pidfile::write_record(playpen, name, &record)?;
                    Ok(pid)
                })
        }
        mode => {
            let pid = guard.child().pid;
            record.pid = Some(pid);
            record.start_ticks = proc::start_ticks(pid);
            // Record first so that a concurrent `status` sees the service the moment it exists.
            let recorded = if mode == PidfileMode::None {
                Ok(())
            } else {
                pidfile::write_pid(&pidfile, pid)
            }
            .and_then(|()| pidfile::write_record(playpen, name, &record));
            recorded.and_then(|()| {
                spawn::survive_grace(guard.child(), settings.start_grace)
                    .map(|()| pid)
                    .map_err(failed)
            })
        }
    };
    match settled {
        Ok(pid) => {
            guard.disarm();
            Ok(Some(pid))
        }
        Err(e) => {
            // The guard kills what this start left; its files must go with it.
            drop(guard);
            let _ = pidfile::clear(playpen, name);
            Err(e.with_service(name))
        }
    }
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
    let tag = prepared.env.get("PLAYPEN_TAG").map(String::as_str);
    Some((
        linkfarm::link_name(&run_name(playpen, prepared), tag),
        program,
    ))
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

/// Wait until `pidfile` holds a live PID (bounded by `timeout`). With the program as
/// `child`, its failure ends the wait at once: Err(Some(status)); Err(None) on timeout.
fn wait_for_pidfile(
    pidfile: &Path,
    child: Option<&spawn::Spawned>,
    timeout: Duration,
) -> std::result::Result<i32, Option<std::process::ExitStatus>> {
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
            Some(status) => return Err(Some(status)),
            None => {}
        }
        if Instant::now() >= deadline {
            return Err(None);
        }
        // The file appears when the program decides; a short sleep is the simple bounded wait.
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Run a service script (service_start, service_stop, service_restart or the
/// package's restart script) to completion with NAME VERSION; a failure quotes its
/// output.
fn run_service_script(
    playpen: &Playpen,
    prepared: &Prepared,
    setting: &str,
    path: &Path,
) -> Result<()> {
    let output = playpen.output_file(prepared.name());
    let finished = hooks::run(
        playpen,
        &prepared.config.id,
        &Runnable::Script(path.to_path_buf()),
        &prepared.env,
        Some(&output),
        None,
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
/// the pidfile.
fn start_by_script(playpen: &Playpen, prepared: &Prepared, start: &str) -> Result<Option<i32>> {
    let settings = &prepared.settings;
    let name = prepared.name();
    let path = script(playpen, prepared, "service_start", start)?;
    run_service_script(playpen, prepared, "service_start", &path)?;
    let mut record = StartRecord {
        program: Some(path.display().to_string()),
        ..base_record(prepared)
    };
    if settings.pidfile == PidfileMode::None {
        pidfile::write_record(playpen, name, &record)?;
        return Ok(None);
    }
    let pidfile = playpen.pidfile(name);
    let pid = wait_for_pidfile(&pidfile, None, settings.pidfile_timeout).map_err(|_| {
        Error::runtime(format!(
            "service_start {} finished but {} holds no live PID",
            path.display(),
            pidfile.display()
        ))
        .with_service(name)
        .with_hint("the service_start script must write the service's PID to $SERVICE_PIDFILE (or set service_no_pidfile=1)")
    })?;
    record.pid = Some(pid);
    record.start_ticks = proc::start_ticks(pid);
    pidfile::write_record(playpen, name, &record)?;
    Ok(Some(pid))
}

fn add_java_classpath(
    playpen: &Playpen,
    prepared: &Prepared,
    env: &mut BTreeMap<String, String>,
) -> Result<()> {
    let java = &prepared.settings.java;
    let mut entries: Vec<String> = Vec::new();
    for dir in &java.jardirs {
        let dir = playpen.ext().join(dir);
        let mut jars: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(|e| Error::io("read jar directory", &dir, e).with_service(prepared.name()))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "jar"))
            .collect();
        jars.sort();
        entries.extend(jars.iter().map(|j| j.display().to_string()));
    }
    for jar in &java.jars {
        entries.push(playpen.ext().join(jar).display().to_string());
    }
    if let Some(existing) = env.get("CLASSPATH").filter(|c| !c.is_empty()) {
        entries.push(existing.clone());
    }
    if !entries.is_empty() {
        env.insert("CLASSPATH".into(), entries.join(":"));
    }
    Ok(())
}

/// Stop a service if it runs.
pub fn stop(playpen: &Playpen, prepared: &Prepared) -> Result<Outcome> {
    let _lock = ServiceLock::acquire(playpen, prepared.name())?;
    stop_locked(playpen, prepared)
}

fn stop_locked(playpen: &Playpen, prepared: &Prepared) -> Result<Outcome> {
    let settings = &prepared.settings;
    let name = prepared.name();
    let (observed, _) = pidfile::observe(playpen, name)?;
    let pid = match observed {
        Observed::Stopped => return Ok(Outcome::AlreadyStopped),
        Observed::Stale { .. } => {
            pidfile::clear(playpen, name)?;
            return Ok(Outcome::AlreadyStopped);
        }
        Observed::Running { pid, .. } | Observed::Untracked { pid, .. } => Some(pid),
        Observed::Unwatched => None,
    };
    if pid.is_none() && settings.scripts.stop.is_none() {
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
    let halt = settings.halt_timeout;
    if let Some(stop) = &settings.scripts.stop {
        let path = script(playpen, prepared, "service_stop", stop)?;
        run_service_script(playpen, prepared, "service_stop", &path)?;
        if let Some(pid) = pid {
            terminate(pid, halt, false);
        }
    } else if let Some(pid) = pid {
        terminate(pid, halt, true);
    }
    if let Some(pid) = pid
        && proc::is_alive(pid)
    {
        return Err(Error::runtime(format!("PID {pid} is still alive after SIGKILL"))
            .with_service(name)
            .with_hint("it may be stuck in the kernel (uninterruptible I/O); check `ps -o stat,wchan -p PID`"));
    }
    pidfile::clear(playpen, name)?;
    if let Err(e) = run_hook(playpen, prepared, Hook::PostStop) {
        warnings.push(e.message);
    }
    Ok(Outcome::Stopped {
        pid,
        warning: (!warnings.is_empty()).then(|| warnings.join("; ")),
    })
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

/// SIGTERM (when `term`), wait up to `halt`, then SIGKILL and wait a little more.
fn terminate(pid: i32, halt: Duration, term: bool) {
    if term {
        let _ = proc::signal_service(pid, Signal::SIGTERM);
        // A stopped process only sees SIGTERM once continued.
        let _ = proc::signal_service(pid, Signal::SIGCONT);
    }
    if proc::wait_exit(pid, halt) {
        return;
    }
    let _ = proc::signal_service(pid, Signal::SIGKILL);
    proc::wait_exit(pid, Duration::from_secs(5));
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
pub fn restart(playpen: &Playpen, prepared: &Prepared) -> Result<Outcome> {
    let settings = &prepared.settings;
    let name = prepared.name();
    let _lock = ServiceLock::acquire(playpen, name)?;
    let (observed, record) = pidfile::observe(playpen, name)?;
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
            stop_locked(playpen, prepared)?;
            Ok(Outcome::StoppedForFiledep { pid, file })
        }
        RestartPath::Reload { pid } => reload(playpen, prepared, pid),
        RestartPath::Script(path) => {
            run_service_script(playpen, prepared, "service_restart", &path)?;
            let pid = pidfile::observe(playpen, name)?.0.pid();
            Ok(Outcome::Restarted { pid })
        }
        path @ (RestartPath::StopThenStart | RestartPath::Start) => {
            if path == RestartPath::StopThenStart {
                stop_locked(playpen, prepared)?;
                if !settings.restart_delay.is_zero() {
                    std::thread::sleep(settings.restart_delay);
                }
            }
            match start_locked(playpen, prepared)? {
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
                value: std::env::var("PATH").unwrap_or_default(),
                exported: true,
                origin: Origin::Environment,
            },
        );
        vars.insert(
            "PLAYPEN_ROOT".into(),
            Value {
                value: root.display().to_string(),
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
        let err = start(&playpen, &prepared).unwrap_err();
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
        let Outcome::Started { pid: Some(pid) } = start(&playpen, &prepared).unwrap() else {
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
            start(&playpen, &prepared).unwrap(),
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

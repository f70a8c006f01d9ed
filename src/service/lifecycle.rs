//! Starting, stopping and restarting one service (§6). Every operation holds the
//! service's lock; orchestration across services (order, parallelism) is in `graph`.

use crate::config::ServiceConfig;
use crate::config::template;
use crate::error::{Error, Result};
use crate::playpen::Playpen;
use crate::playpen::catalog;
use crate::playpen::lock::ServiceLock;
use crate::process::linkfarm;
use crate::process::pidfile::{self, Observed, StartRecord};
use crate::process::proc;
use crate::process::spawn::{self, Launch};
use crate::service::hooks::{self, Hook, Runnable};
use crate::service::prepare::Prepared;
pub use crate::service::outcome::Outcome;
use nix::sys::signal::Signal;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// Default time a new process must survive to count as started.
const DEFAULT_START_GRACE: f64 = 0.25;
/// Default time a program that writes its own pidfile gets to write it.
const DEFAULT_PIDFILE_TIMEOUT: f64 = 10.0;
/// Default seconds between SIGTERM and SIGKILL.
const DEFAULT_HALT_TIMEOUT: f64 = 10.0;




/// Checks that need no process: the program exists, required pairs of settings.
pub fn validate(playpen: &Playpen, prepared: &Prepared) -> Result<()> {
    let config = &prepared.config;
    let name = config.name();
    if config.non_empty("service_start").is_none() {
        prepared.program(playpen)?;
    } else {
        script(playpen, config, "service_start", &prepared.env)?;
    }
    for var in ["service_stop", "service_restart", "service_ping"] {
        if config.non_empty(var).is_some() {
            script(playpen, config, var, &prepared.env)?;
        }
    }
    if config.flag("service_no_pidfile", false)
        && config.non_empty("service_start").is_some()
        && config.non_empty("service_stop").is_none()
    {
        return Err(Error::config(format!(
            "service_no_pidfile=1 with service_start needs a service_stop script{}",
            config.origin_note("service_no_pidfile")
        ))
        .with_service(name)
        .with_hint(
            "without a pidfile servicectl cannot know the PID to signal; set service_stop",
        ));
    }
    if config.flag("service_no_pidfile", false)
        && ping_runnable(playpen, config, &prepared.env)?.is_none()
    {
        return Err(Error::config(format!(
            "service_no_pidfile=1 but there is no ping{}",
            config.origin_note("service_no_pidfile")
        ))
        .with_service(name)
        .with_hint("a service without a pidfile must provide service_ping (or a .ping script) so its state can be checked"));
    }
    for var in [
        "service_halt_timeout",
        "service_restart_delay",
        "service_start_grace",
        "service_pidfile_timeout",
    ] {
        config.seconds(var, 0.0)?;
    }
    match config.non_empty("service_type").unwrap_or("init") {
        "init" => Ok(()),
        kind @ ("cron" | "inetd") => Err(Error::config(format!(
            "service_type={kind} is not supported yet{}: cron and inetd services are run by the supervisor (`servicectl supervise`), which this version does not have",
            config.origin_note("service_type")
        ))
        .with_service(name)
        .with_hint("run it as a daemon (service_type=init), or leave it out of playpen_services for now")),
        other => Err(Error::config(format!(
            "service_type={other:?} is not one of init, cron, inetd{}",
            config.origin_note("service_type")
        ))
        .with_service(name)
        .with_hint("set service_type=init (the default)")),
    }
}

/// A script named by a config variable (service_start, service_stop, …), resolved like
/// service_program.
fn script(
    playpen: &Playpen,
    config: &ServiceConfig,
    var: &str,
    env: &BTreeMap<String, String>,
) -> Result<PathBuf> {
    let value = config.non_empty(var).unwrap_or_default();
    crate::service::program::resolve_executable(playpen, value.trim(), env).map_err(|mut e| {
        e.message = format!("{var}: {}{}", e.message, config.origin_note(var));
        e.with_service(config.name())
    })
}

/// The ping for a service: the project's `services/$NAME/ping`, else service_ping,
/// else the package's `ping` script. None means: fall back to the status check.
pub fn ping_runnable(
    playpen: &Playpen,
    config: &ServiceConfig,
    env: &BTreeMap<String, String>,
) -> Result<Option<Runnable>> {
    for dir in catalog::project_dirs(playpen, &config.id).into_iter().rev() {
        let path = dir.join("ping");
        if path.is_file() {
            return Ok(Some(Runnable::Script(path)));
        }
    }
    if config.non_empty("service_ping").is_some() {
        return Ok(Some(Runnable::Script(script(
            playpen,
            config,
            "service_ping",
            env,
        )?)));
    }
    Ok(catalog::package_script(playpen, &config.id, "ping").map(Runnable::Script))
}

/// Render the service's config templates (service_config_files) into var/.
pub fn render_configs(playpen: &Playpen, prepared: &Prepared) -> Result<Vec<PathBuf>> {
    let style = template::Style::from_config(&prepared.config)?;
    let files = prepared.config.list("service_config_files");
    template::render_all(playpen, &files, &prepared.env, style)
        .map_err(|e| e.with_service(prepared.name()))
}

fn run_hook(playpen: &Playpen, prepared: &Prepared, hook: Hook) -> Result<()> {
    // Without its configuration we cannot know which hooks the service wants.
    if prepared.config.is_stand_in() {
        return Ok(());
    }
    hooks::run_hook(
        playpen,
        &prepared.config.id,
        prepared.config.get(hook.variable()),
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
            if !prepared.config.flag("service_no_pidfile", false) {
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
    let pid = if prepared.config.non_empty("service_start").is_some() {
        start_by_script(playpen, prepared)?
    } else {
        start_program(playpen, prepared)?
    };
    run_hook(playpen, prepared, Hook::PostStart).map_err(|mut e| {
        e.message = format!("started, but {}", e.message);
        e
    })?;
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
        no_pidfile: prepared.config.flag("service_no_pidfile", false),
        ..StartRecord::default()
    }
}

/// The generic start: linkfarm symlink, spawn, pidfile, grace period.
fn start_program(playpen: &Playpen, prepared: &Prepared) -> Result<Option<i32>> {
    let config = &prepared.config;
    let name = prepared.name();
    let program = prepared.program(playpen)?;
    let flags = config.get("service_flags").unwrap_or("");
    let args = shell_words::split(flags).map_err(|e| {
        Error::config(format!(
            "service_flags {flags:?} cannot be split: {e}{}",
            config.origin_note("service_flags")
        ))
        .with_service(name)
        .with_hint("balance the quotes in service_flags")
    })?;
    let is_java = program.file_name().is_some_and(|f| f == "java");
    let mut env = prepared.env.clone();
    if is_java {
        add_java_classpath(playpen, config, &mut env)?;
    }
    let run_name = run_name(playpen, config);
    let (executable, arg0, symlink) = if is_java || config.flag("service_no_symlink", false) {
        (program.clone(), program.display().to_string(), None)
    } else {
        let link_name = linkfarm::link_name(&run_name, env.get("PLAYPEN_TAG").map(String::as_str));
        let link = linkfarm::ensure_link(playpen, &link_name, &program, || {
            owner_of_link(playpen, name, &link_name)
        })
        .map_err(|e| e.with_service(name))?;
        (link.clone(), link_name, Some(link))
    };
    let output = playpen.output_file(name);
    let output_start = crate::process::output::file_len(&output);
    // Settings are read before the spawn, so that nothing can fail between the spawn and
    // the pidfile but the process itself.
    let grace = config.seconds("service_start_grace", DEFAULT_START_GRACE)?;
    let pidfile_timeout = config.seconds("service_pidfile_timeout", DEFAULT_PIDFILE_TIMEOUT)?;
    let child = spawn::launch(&Launch {
        executable: &executable,
        arg0: &arg0,
        args: &args,
        env: &env,
        cwd: &playpen.root,
        output: &output,
    })
    .map_err(|mut e| {
        // The symlink is what was executed; name the program it points at too.
        if executable != program {
            e.message = format!("{} (program {})", e.message, program.display());
        }
        e.with_service(name)
    })?;
    let child_pid = child.pid;
    let makes_own = config.flag("service_makes_own_pidfile", false);
    let no_pidfile = config.flag("service_no_pidfile", false);
    let mut record = StartRecord {
        program: Some(program.display().to_string()),
        run_name: Some(run_name),
        symlink: symlink.map(|s| s.display().to_string()),
        ..base_record(prepared)
    };
    let pidfile = playpen.pidfile(name);
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
    let settled = (|| {
        if makes_own {
            let timeout = pidfile_timeout;
            let pid = wait_for_pidfile(&pidfile, Some(&child), timeout).map_err(|status| match status {
            Some(status) => failed(status),
            None => Error::runtime(format!(
                "the program did not write a live PID to {} within {:.0} s",
                pidfile.display(),
                timeout.as_secs_f64()
            ))
            .with_service(name)
            .with_hint("service_makes_own_pidfile=1 means the program writes $SERVICE_PIDFILE; check its configuration"),
        })?;
            record.pid = Some(pid);
            record.start_ticks = proc::start_ticks(pid);
            pidfile::write_record(playpen, name, &record)?;
            return Ok(Some(pid));
        }
        record.pid = Some(child_pid);
        record.start_ticks = proc::start_ticks(child_pid);
        // Record first so that a concurrent `status` sees the service the moment it exists.
        if !no_pidfile {
            pidfile::write_pid(&pidfile, child_pid)?;
        }
        pidfile::write_record(playpen, name, &record)?;
        if let Err(status) = spawn::survive_grace(&child, grace) {
            return Err(failed(status));
        }
        Ok(Some(child_pid))
    })();
    if settled.is_err() {
        // A start that failed must not leave its process behind, untracked: the child
        // leads its own session and process group, so the group goes with it.
        let _ = proc::signal_service(child_pid, Signal::SIGKILL);
        proc::wait_exit(child_pid, Duration::from_secs(2));
        let _ = child.try_wait();
        let _ = pidfile::clear(playpen, name);
    }
    settled.map_err(|e| e.with_service(name))
}

/// argv[0] and the linkfarm name: service_run_name, else the package name, else the
/// service name.
fn run_name(playpen: &Playpen, config: &ServiceConfig) -> String {
    config
        .non_empty("service_run_name")
        .map(str::to_string)
        .or_else(|| catalog::package_of(playpen, &config.id))
        .unwrap_or_else(|| config.name().to_string())
}

/// The linkfarm symlink a generic start will make, and the program it points at (None:
/// started by a script, or without a symlink).
pub fn planned_link(playpen: &Playpen, prepared: &Prepared) -> Option<(String, PathBuf)> {
    let config = &prepared.config;
    if config.non_empty("service_start").is_some() || config.flag("service_no_symlink", false) {
        return None;
    }
    let program = prepared.program(playpen).ok()?;
    if program.file_name().is_some_and(|f| f == "java") {
        return None;
    }
    let tag = prepared.env.get("PLAYPEN_TAG").map(String::as_str);
    Some((
        linkfarm::link_name(&run_name(playpen, config), tag),
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

/// Run the script a config variable names (service_start, service_stop,
/// service_restart) to completion with NAME VERSION; a failure quotes its output.
fn run_service_script(playpen: &Playpen, prepared: &Prepared, var: &str) -> Result<PathBuf> {
    let path = script(playpen, &prepared.config, var, &prepared.env)?;
    let output = playpen.output_file(prepared.name());
    let finished = hooks::run(
        playpen,
        &prepared.config.id,
        &Runnable::Script(path.clone()),
        &prepared.env,
        Some(&output),
        None,
    )?;
    if !finished.success {
        return Err(Error::runtime(format!(
            "{var} {} {}:\n{}",
            path.display(),
            finished.status,
            crate::text::indent(
                &crate::text::last_lines(finished.output.trim_end(), 10).join("\n")
            )
        ))
        .with_service(prepared.name())
        .with_hint(format!("see {} for its full output", output.display())));
    }
    Ok(path)
}

/// service_start: the script starts the service and (unless service_no_pidfile) writes
/// the pidfile.
fn start_by_script(playpen: &Playpen, prepared: &Prepared) -> Result<Option<i32>> {
    let config = &prepared.config;
    let name = prepared.name();
    let path = run_service_script(playpen, prepared, "service_start")?;
    let mut record = StartRecord {
        program: Some(path.display().to_string()),
        ..base_record(prepared)
    };
    if config.flag("service_no_pidfile", false) {
        pidfile::write_record(playpen, name, &record)?;
        return Ok(None);
    }
    let pidfile = playpen.pidfile(name);
    let timeout = config.seconds("service_pidfile_timeout", DEFAULT_PIDFILE_TIMEOUT)?;
    let pid = wait_for_pidfile(&pidfile, None, timeout).map_err(|_| {
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
    config: &ServiceConfig,
    env: &mut BTreeMap<String, String>,
) -> Result<()> {
    let mut entries: Vec<String> = Vec::new();
    for dir in config.list("service_java_jardirs") {
        let dir = playpen.ext().join(dir);
        let mut jars: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(|e| Error::io("read jar directory", &dir, e).with_service(config.name()))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "jar"))
            .collect();
        jars.sort();
        entries.extend(jars.iter().map(|j| j.display().to_string()));
    }
    for jar in config.list("service_java_jars") {
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
    let config = &prepared.config;
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
    if pid.is_none() && config.non_empty("service_stop").is_none() {
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
    let halt = config.seconds("service_halt_timeout", DEFAULT_HALT_TIMEOUT)?;
    if config.non_empty("service_stop").is_some() {
        run_service_script(playpen, prepared, "service_stop")?;
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
    config: &ServiceConfig,
    record: Option<&StartRecord>,
) -> Option<String> {
    let started = SystemTime::UNIX_EPOCH + Duration::from_secs_f64(record?.started_at);
    config.list("service_filedep").into_iter().find(|f| {
        let path = if Path::new(f).is_absolute() {
            PathBuf::from(f)
        } else {
            playpen.root.join(f)
        };
        std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .is_ok_and(|modified| modified > started)
    })
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

/// Restart: HUP path if service_hup, else the service_restart script, else stop, wait
/// service_restart_delay, start. A stopped service is simply started.
pub fn restart(playpen: &Playpen, prepared: &Prepared) -> Result<Outcome> {
    let config = &prepared.config;
    let name = prepared.name();
    let _lock = ServiceLock::acquire(playpen, name)?;
    let (observed, record) = pidfile::observe(playpen, name)?;
    let running_pid = match observed {
        Observed::Running { pid, .. } | Observed::Untracked { pid, .. } => Some(pid),
        _ => None,
    };
    if let Some(pid) = running_pid {
        if config.flag("service_stop_on_filedep", false)
            && let Some(changed) = changed_filedep(playpen, config, record.as_ref())
        {
            // The service must not run on the changed file: stop, and leave it stopped.
            stop_locked(playpen, prepared)?;
            return Ok(Outcome::StoppedForFiledep { pid, file: changed });
        }
        if config.flag("service_hup", false) {
            render_configs(playpen, prepared)?;
            run_hook(playpen, prepared, Hook::PreStart)?;
            proc::signal_service_only(pid, Signal::SIGHUP).map_err(|e| {
                Error::runtime(format!("cannot send SIGHUP to PID {pid}: {e}"))
                    .with_service(name)
                    .with_hint("check `servicectl status`; run servicectl as the user that started the service")
            })?;
            run_hook(playpen, prepared, Hook::PostStart)?;
            return Ok(Outcome::Reloaded { pid });
        }
        if config.non_empty("service_restart").is_some() {
            run_service_script(playpen, prepared, "service_restart")?;
            let pid = pidfile::observe(playpen, name)?.0.pid();
            return Ok(Outcome::Restarted { pid });
        }
    }
    if running_pid.is_some() || matches!(observed, Observed::Unwatched) {
        stop_locked(playpen, prepared)?;
        let delay = config.seconds("service_restart_delay", 0.0)?;
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
    }
    match start_locked(playpen, prepared)? {
        Outcome::Started { pid } => Ok(Outcome::Restarted { pid }),
        other => Ok(other),
    }
}

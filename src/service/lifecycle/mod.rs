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

mod checks;
mod launch;
mod scripts;

use checks::*;
pub use checks::{needs_supervisor, ping_runnable, validate};
pub use launch::planned_link;
use launch::*;
use scripts::*;

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
    start_with(
        playpen,
        prepared,
        &Lazy::shared(playpen, prepared.name()),
        output,
    )
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

/// Stop a service if it runs. For one service of many stopped at once on threads of
/// their own (the supervisor's jobs): the census is shared with them ([`Lazy::shared`]).
pub fn stop(playpen: &Playpen, prepared: &Prepared) -> Result<Outcome> {
    stop_with(playpen, prepared, &Lazy::shared(playpen, prepared.name()))
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
    restart_with(
        playpen,
        prepared,
        &Lazy::shared(playpen, prepared.name()),
        output,
    )
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
mod tests;

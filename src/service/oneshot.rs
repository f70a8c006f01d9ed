//! One-shot services (service_type=oneshot, SPEC §9.8): the program runs once to
//! completion; exit 0 makes the service `done` until it is stopped or restarted.
//!
//! `done` is a file, `var/run/NAME.done`, so that it holds with or without a supervisor
//! and across supervisors: a direct `status` shows it, a second `start` does not run the
//! step again, a new supervisor adopts it. It names the boot it was written in and the
//! playpen it ran for: after a reboot the step runs again, as systemd runs a oneshot
//! unit again at boot, and a copy of the playpen runs it for itself.
//!
//! While the step runs it is on record like any service (start record with its launch
//! mark, pidfile), so `status` shows it running and `stop` ends it. If the servicectl
//! that ran it dies, its exit status dies with it: the next `start` waits for the
//! orphaned run to end and runs the step again (steps are written to be repeatable, as
//! migrations are).

use crate::error::{Error, Result};
use crate::playpen::Playpen;
use crate::playpen::fsutil;
use crate::process::census;
use crate::process::pidfile::{self, StartRecord, Starter};
use crate::process::proc;
use crate::service::hooks;
use crate::service::outcome::Outcome;
use crate::service::prepared::Prepared;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::SystemTime;

/// What `var/run/NAME.done` says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DoneMark {
    /// Unix time the step ended, in seconds.
    pub at: f64,
    /// How it ended (`exited with status 0`).
    pub status: String,
    /// The kernel's boot id then (a mark of an earlier boot is no mark).
    boot: String,
    /// The playpen it ran for (a mark copied with the playpen, `cp -a`, is no mark:
    /// the copy has not run the step).
    #[serde(default)]
    root: String,
}

impl DoneMark {
    /// The outcome of a `start` that found the step done.
    pub fn outcome(&self) -> Outcome {
        Outcome::AlreadyDone {
            status: self.status.clone(),
            at: self.at,
        }
    }
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The done mark of `service`, if it is done in this boot.
pub fn done(playpen: &Playpen, service: &str) -> Option<DoneMark> {
    let bytes = fsutil::read_state(&playpen.done_file(service), fsutil::Links::Refuse)
        .ok()
        .flatten()?;
    let mark: DoneMark = serde_json::from_slice(&bytes).ok()?;
    (mark.boot == boot_id() && Path::new(&mark.root) == playpen.root).then_some(mark)
}

/// Forget that `service` is done (a stop, a new run). True if it was.
pub fn clear_done(playpen: &Playpen, service: &str) -> Result<bool> {
    let path = playpen.done_file(service);
    let was = done(playpen, service).is_some();
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(was),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io("remove", &path, e).with_service(service)),
    }
}

/// Wait for a run left by a servicectl that died to end; its files go with it.
pub fn outlive_orphan(playpen: &Playpen, service: &str, pid: i32) -> Result<()> {
    // The run has no deadline of its own: a step takes what it takes.
    while !proc::wait_exit(pid, std::time::Duration::from_secs(3600)) {}
    pidfile::clear(playpen, service)
}

/// Run the step: its program with its flags, in a session of its own, on record while
/// it runs, its output appended to its output file, waited for. Exit 0 is done;
/// anything else is a failed run, quoting the end of its output.
pub fn run(playpen: &Playpen, prepared: &Prepared, record: StartRecord) -> Result<Outcome> {
    use std::os::unix::process::CommandExt;
    let name = prepared.name();
    clear_done(playpen, name)?;
    let program = prepared.program(playpen)?;
    let output = playpen.output_file(name);
    let output_start = crate::process::output::file_len(&output);
    let sink = crate::process::output::open_output(&output).map_err(|e| e.with_service(name))?;
    let duplicate = |f: &std::fs::File| {
        f.try_clone()
            .map_err(|e| Error::io("duplicate", &output, e).with_service(name))
    };
    let launch = census::new_launch();
    let mut record = StartRecord {
        program: Some(program.display().to_string()),
        launch: Some(launch.clone()),
        starting: Some(Starter::me()),
        leader_is_service: true,
        step: true,
        ..record
    };
    pidfile::write_record(playpen, name, &record).map_err(|e| e.with_service(name))?;
    let mut cmd = std::process::Command::new(&program);
    cmd.args(&prepared.settings.flags)
        .env_clear()
        .envs(&prepared.env)
        .env(census::LAUNCH, &launch)
        .current_dir(&playpen.root)
        .stdin(std::process::Stdio::null())
        .stdout(duplicate(&sink)?)
        .stderr(duplicate(&sink)?);
    let limit = crate::process::limits::for_children();
    let user = prepared.settings.user.clone();
    // SAFETY: setrlimit, setsid and the calls of `assume` are async-signal-safe and
    // touch only memory prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            crate::process::limits::restore_in_child(limit);
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            crate::process::user::assume(user.as_ref())
        });
    }
    let cannot_run = |e: std::io::Error| {
        Error::runtime(format!("cannot run {}: {e}", program.display()))
            .with_service(name)
            .with_hint("check that the program exists and is executable")
    };
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            let _ = pidfile::clear(playpen, name);
            return Err(cannot_run(e));
        }
    };
    let pid = child.id() as i32;
    record.pid = Some(pid);
    record.start_ticks = proc::start_ticks(pid);
    record.starting = None;
    let recorded = pidfile::write_pid(&playpen.pidfile(name), pid)
        .and_then(|()| pidfile::write_record(playpen, name, &record));
    let waited = child.wait();
    pidfile::clear(playpen, name)?;
    recorded.map_err(|e| e.with_service(name))?;
    let status = waited.map_err(cannot_run)?;
    let text = hooks::describe_status(status);
    if status.success() {
        let mark = DoneMark {
            at: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0),
            status: text.clone(),
            boot: boot_id(),
            root: playpen.root.display().to_string(),
        };
        let json = serde_json::to_vec(&mark).expect("marks serialise");
        fsutil::write_runtime(&playpen.done_file(name), &json, Some(0o644))
            .map_err(|e| e.with_service(name))?;
        return Ok(Outcome::Done { status: text });
    }
    Err(Error::runtime(format!(
        "{} {text}{}",
        program.display(),
        crate::process::output::quoted_tail(&output, output_start)
    ))
    .with_service(name)
    .with_hint(format!("see {} for its full output", output.display())))
}

//! Status from pidfiles and start records (no process started, no config evaluated),
//! and ping.

use crate::config::ServiceConfig;
use crate::error::Result;
use crate::playpen::Playpen;
use crate::playpen::lock::ServiceLock;
use crate::process::census::Lazy;
use crate::process::pidfile::{self, Observed, StartRecord};
use crate::process::proc;
use crate::process::sockets;
use crate::process::tracking;
use crate::service::hooks;
use crate::service::lifecycle;
use crate::service::oneshot;
use crate::service::prepared::Prepared;
use crate::text;
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Running,
    Stopped,
    Stale,
    /// Started without a pidfile: only ping can tell.
    Unknown,
    /// Another servicectl is starting it right now.
    Starting,
    /// A one-shot that ran to completion (`service::oneshot`).
    Done,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Running => "running",
            State::Stopped => "stopped",
            State::Stale => "stale",
            State::Unknown => "unknown",
            State::Starting => "starting",
            State::Done => "done",
        }
    }
}

/// One service as `status` shows it, with or without a supervisor: the one status
/// model (and the `--json` form) of both. Without a supervisor `supervised` is None and
/// `listening` says which ports something listens on now; the supervisor's answer has
/// `supervised` and no `listening`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "FlatStatus")]
pub struct ServiceStatus {
    pub service: String,
    /// running, stopped, done; without a supervisor also stale, unknown (no pidfile),
    /// starting (another command starts it); under one also starting, backoff, failed,
    /// stopping, armed, pending, missing.
    pub state: String,
    pub pid: Option<i32>,
    pub uptime_secs: Option<u64>,
    #[serde(default)]
    pub ports: Vec<(String, u16)>,
    /// Those of `ports` that something listens on (TCP) or has bound (UDP) now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listening: Option<Vec<u16>>,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub note: Option<String>,
    #[serde(flatten)]
    pub supervised: Option<Supervised>,
}

/// What only a supervisor knows of a service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Supervised {
    /// Automatic restarts since the service was last started on purpose.
    pub restarts: u32,
    /// How the last run ended: `exited with status 1`, `was killed by signal SIGKILL`.
    pub last_exit: Option<String>,
    /// Its ping passed (or, without a ping, it stayed alive through its start grace).
    pub ready: bool,
    /// The supervisor keeps it running (enabled and started), or keeps it stopped.
    pub wanted: bool,
    /// Cron (state `armed`): the next fire time; cron, and a done one-shot: the last
    /// run (local time, `2026-12-01 10:20:00`); the last run's exit status is
    /// `last_exit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_run: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<String>,
    /// Cron and inetd: processes running now (a cron run, inetd handlers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handlers: Option<u32>,
}

/// [`ServiceStatus`] as it is read: every field at one level. (A flattened field makes
/// serde buffer each object before reading it; this reads a status of 100 services in
/// a third fewer instructions.) `supervised` is there when the supervisor's three
/// fields that are always sent are, as the flattened field was.
#[derive(Deserialize)]
struct FlatStatus {
    service: String,
    state: String,
    pid: Option<i32>,
    uptime_secs: Option<u64>,
    #[serde(default)]
    ports: Vec<(String, u16)>,
    #[serde(default)]
    listening: Option<Vec<u16>>,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    note: Option<String>,
    restarts: Option<u32>,
    last_exit: Option<String>,
    ready: Option<bool>,
    wanted: Option<bool>,
    next_run: Option<String>,
    last_run: Option<String>,
    handlers: Option<u32>,
}

impl From<FlatStatus> for ServiceStatus {
    fn from(f: FlatStatus) -> ServiceStatus {
        let supervised = match (f.restarts, f.ready, f.wanted) {
            (Some(restarts), Some(ready), Some(wanted)) => Some(Supervised {
                restarts,
                last_exit: f.last_exit,
                ready,
                wanted,
                next_run: f.next_run,
                last_run: f.last_run,
                handlers: f.handlers,
            }),
            _ => None,
        };
        ServiceStatus {
            service: f.service,
            state: f.state,
            pid: f.pid,
            uptime_secs: f.uptime_secs,
            ports: f.ports,
            listening: f.listening,
            version: f.version,
            note: f.note,
            supervised,
        }
    }
}

/// How long the processes of a cut-short start that `status` rolls back get after
/// SIGTERM (status evaluates no config, so it does not know service_halt_timeout).
const ROLLBACK_HALT: Duration = Duration::from_secs(3);

/// Observe a service; a start whose servicectl died before its process was on record
/// is settled first (its process adopted, or what it started stopped), under the
/// service's lock, so that status never calls a service stopped while it runs.
fn observe(
    playpen: &Playpen,
    name: &str,
    census: &Lazy,
) -> Result<(Observed, Option<StartRecord>)> {
    let observed = pidfile::observe(playpen, name)?;
    if !matches!(observed.0, Observed::Interrupted { .. }) {
        return Ok(observed);
    }
    let _lock = ServiceLock::acquire(playpen, name)?;
    let (observed, record, _) =
        tracking::settle(playpen, name, ROLLBACK_HALT, census).map_err(|e| e.with_service(name))?;
    Ok((observed, record))
}

/// The status of each named service, from files and /proc only (a scan of /proc only
/// when a start was cut short).
pub fn status(playpen: &Playpen, names: &[String]) -> Result<Vec<ServiceStatus>> {
    let uptime = proc::uptime_secs();
    let census = Lazy::new(playpen);
    let mut statuses: Vec<ServiceStatus> = names
        .iter()
        .map(|name| {
            let (observed, record) = observe(playpen, name, &census)?;
            let ports = record.as_ref().map(|r| r.ports.clone()).unwrap_or_default();
            let version = record.as_ref().and_then(|r| r.version.clone());
            let (state, pid, uptime_secs, note) = match observed {
                Observed::Running { pid, start_ticks } => (
                    State::Running,
                    Some(pid),
                    uptime.map(|u| proc::age(start_ticks, u).as_secs()),
                    None,
                ),
                Observed::Untracked { pid, start_ticks } => (
                    State::Running,
                    Some(pid),
                    uptime.map(|u| proc::age(start_ticks, u).as_secs()),
                    Some(format!(
                        "its pidfile is missing; `servicectl start {name}` writes it again"
                    )),
                ),
                Observed::Stopped => match oneshot::done(playpen, name) {
                    Some(mark) => (
                        State::Done,
                        None,
                        None,
                        Some(format!("{} at {}", mark.status, text::local_time(mark.at))),
                    ),
                    None => (State::Stopped, None, None, None),
                },
                Observed::Stale { pid, reason } => (
                    State::Stale,
                    pid,
                    None,
                    Some(format!("{reason}; `servicectl start {name}` cleans it up")),
                ),
                Observed::Unwatched => (
                    State::Unknown,
                    None,
                    None,
                    Some("no pidfile (service_no_pidfile); `servicectl ping` checks it".into()),
                ),
                Observed::Starting { by } => (
                    State::Starting,
                    None,
                    None,
                    Some(format!("servicectl (PID {by}) is starting it")),
                ),
                // Settled above; only a failure to settle leaves it so.
                Observed::Interrupted { .. } => (
                    State::Stale,
                    None,
                    None,
                    Some(format!(
                        "a start was cut short; `servicectl stop {name}` stops what it left"
                    )),
                ),
            };
            let shown_ports = if state == State::Running {
                ports
            } else {
                Vec::new()
            };
            Ok(ServiceStatus {
                service: name.clone(),
                state: state.as_str().to_string(),
                pid,
                uptime_secs,
                ports: shown_ports,
                listening: Some(Vec::new()),
                version,
                note,
                supervised: None,
            })
        })
        .collect::<Result<_>>()?;
    if statuses.iter().any(|s| !s.ports.is_empty()) {
        let sockets = sockets::Sockets::read();
        for s in &mut statuses {
            s.listening = Some(
                s.ports
                    .iter()
                    .map(|(_, p)| *p)
                    .filter(|p| sockets.is_listening(*p))
                    .collect(),
            );
        }
    }
    Ok(statuses)
}

#[derive(Debug, Clone, Serialize)]
pub struct PingResult {
    #[serde(rename = "service")]
    pub name: String,
    pub ok: bool,
    /// What was run: the script, or "status".
    pub by: String,
    pub detail: String,
}

/// Run the service's ping, or fall back to the status check.
pub fn ping(playpen: &Playpen, prepared: &Prepared, limit: Option<Duration>) -> Result<PingResult> {
    let config: &ServiceConfig = &prepared.config;
    let name = config.name().to_string();
    match lifecycle::ping_runnable(playpen, prepared)? {
        Some(runnable) => {
            let finished = hooks::run(
                playpen,
                &config.id,
                &runnable,
                &prepared.env,
                None,
                limit,
                prepared.settings.user.as_ref(),
            )?;
            let output = finished.output.trim_end();
            Ok(PingResult {
                name,
                ok: finished.success,
                by: runnable.describe(),
                detail: if finished.success {
                    crate::text::tail(output, 1)
                } else {
                    format!(
                        "{}{}",
                        finished.status,
                        if output.is_empty() {
                            String::new()
                        } else {
                            format!(": {}", crate::text::tail(output, 5))
                        }
                    )
                },
            })
        }
        None => {
            let (observed, _) = pidfile::observe(playpen, &name)?;
            let (ok, detail) = match observed {
                Observed::Running { pid, .. } | Observed::Untracked { pid, .. } => {
                    (true, format!("running (pid {pid})"))
                }
                Observed::Stopped => match oneshot::done(playpen, &name) {
                    Some(mark) => (
                        true,
                        format!("done ({} at {})", mark.status, text::local_time(mark.at)),
                    ),
                    None => (false, "not running".to_string()),
                },
                Observed::Stale { reason, .. } => (false, reason),
                Observed::Unwatched => (false, "no pidfile and no ping".to_string()),
                Observed::Starting { .. } => (false, "starting".to_string()),
                Observed::Interrupted { .. } => (false, "a start was cut short".to_string()),
            };
            Ok(PingResult {
                name,
                ok,
                by: "status".into(),
                detail,
            })
        }
    }
}

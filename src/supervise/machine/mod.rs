//! The supervisor's state, and every decision it takes, as one pure state machine.
//!
//! [`Machine::step`] takes the state, one [`Event`] and the time, changes the state and
//! returns the [`Effect`]s to carry out. It does no I/O: it reads no file, no clock and
//! no process, so every transition can be tested as a table of cases without starting
//! a process (`tests.rs`). The driver (`super::driver`) owns the descriptors, turns
//! kernel readiness into events, reads the clock once per wake-up and carries out the
//! effects. Status, `wait` and every reply are read from this state; only `step`
//! writes it.
//!
//! Each service is in one [`Phase`], which carries the data of that phase: a PID only
//! where a process exists, a deadline only where one is pending. docs/supervisor.md
//! has the phases and events as a table.

mod armed;
mod batch;
mod commands;
mod events;
mod live;
mod ready;
mod service;
mod stop;
#[cfg(test)]
mod tests;
mod view;
mod watch;

pub use batch::Verb;
pub use events::{Effect, Event, JobOutput, Work};

use crate::config::settings::Settings;
use crate::control::{Op, Reply};
use crate::error::Error;
use crate::ops::graph::Deps;
use crate::service::lifecycle::Outcome;
use crate::service::prepare::Prepared;
use crate::supervise::jobs::{Prepped, Scope};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A service, by its index in [`Machine::services`] (never reused).
pub type Sid = usize;
pub type JobId = u64;
pub type ClientId = u64;
pub type BatchId = u64;

/// The time of one event: the monotonic clock for deadlines, the wall clock (Unix
/// seconds) for cron schedules. The driver reads both once per wake-up.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    pub mono: Instant,
    pub wall: f64,
}

/// Readiness checks are asked again at growing intervals up to this.
pub const CHECK_PAUSE_MAX: Duration = Duration::from_secs(1);
/// The first pause between two readiness checks.
pub const CHECK_PAUSE_FIRST: Duration = Duration::from_millis(10);
/// After SIGKILL, how long a process may take to be reported gone before the stop is
/// given up as failed.
pub const KILL_GRACE: Duration = Duration::from_secs(5);
/// The halt timeout of a service whose configuration is unknown.
pub const DEFAULT_HALT: Duration = Duration::from_secs(10);
/// The ready timeout of a service whose configuration is unknown.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the service folders must be quiet before a change is acted on.
pub const CATALOG_QUIET: Duration = Duration::from_millis(300);

/// Where one service is.
#[derive(Debug, Clone, PartialEq)]
pub enum Phase {
    /// Not running, nothing under way.
    Stopped,
    /// A start job runs (`restart`: a restart job, which replaces process `pid`).
    /// `notified`: the new process sent READY=1 already (during its start grace).
    Starting {
        job: JobId,
        pid: Option<i32>,
        restart: bool,
        notified: bool,
    },
    /// Its process runs; its readiness check has not passed yet. Gives up at `by`.
    Checking {
        pid: Option<i32>,
        since: Instant,
        by: Instant,
        pause: Duration,
        check: Check,
    },
    /// Its process runs; ready unless `unready` says why not (it said RELOADING=1).
    Running {
        pid: Option<i32>,
        since: Instant,
        unready: Option<String>,
        /// Liveness checks: the health check and the watchdog, where set.
        live: Liveness,
    },
    /// A one-shot ran to completion with status 0 (at `at`, Unix seconds).
    Done { at: i64 },
    /// It exited unasked and is started again at `until`.
    Backoff { until: Instant },
    /// It exited before its configuration was known; decided once it is.
    Undecided { run: Duration },
    /// Out of restarts, or its configuration keeps it from starting.
    Failed,
    /// A stop job runs (hooks, SIGTERM, halt timeout, SIGKILL: the library's stop).
    /// `failed`: it is stopped because it failed (not ready in time, unhealthy), and
    /// what follows is a failed run.
    Stopping {
        job: JobId,
        pid: Option<i32>,
        failed: Option<String>,
    },
    /// Ending by signals alone: cron runs and inetd handlers, or a process whose stop
    /// job failed (no descriptor to spare, no configuration). SIGKILL at `kill_at`.
    Halting {
        pid: Option<i32>,
        kill_at: Instant,
        killed: bool,
        /// Why the stop job could not do it (reported with the outcome).
        why: Option<String>,
        /// It is ended because it failed (watchdog): a failed run follows.
        failed: Option<String>,
    },
    /// A cron or inetd service being armed (its socket bound) by the driver.
    Arming,
    /// A cron service scheduled, an inetd service listening.
    Armed { since: Instant, fire: Option<Fire> },
}

/// The state of a readiness or health check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// This check job runs.
    Running(JobId),
    /// The next one runs then.
    Next(Instant),
    /// An event will tell (READY=1 on the notify socket, a line in its output).
    Awaiting,
}

/// What watches a ready service: its health check and its watchdog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Liveness {
    /// The health check and the failures in a row so far.
    pub health: Option<(Check, u32)>,
    /// WATCHDOG=1 is due by then.
    pub watchdog: Option<Instant>,
}

/// A cron service's next fire time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fire {
    /// When the timer goes off (monotonic).
    pub at: Instant,
    /// The fire time (Unix seconds, wall clock).
    pub wall: i64,
}

impl Phase {
    /// The process it tracks, where there is one.
    pub fn pid(&self) -> Option<i32> {
        match self {
            Phase::Starting { pid, .. }
            | Phase::Checking { pid, .. }
            | Phase::Running { pid, .. }
            | Phase::Stopping { pid, .. }
            | Phase::Halting { pid, .. } => *pid,
            _ => None,
        }
    }

    /// Its process runs (or an adopted service without a pidfile is taken as running).
    pub fn is_up(&self) -> bool {
        matches!(self, Phase::Checking { .. } | Phase::Running { .. })
    }

    /// Work on it is under way; a further command waits for it.
    pub fn is_busy(&self) -> bool {
        matches!(
            self,
            Phase::Starting { .. } | Phase::Stopping { .. } | Phase::Halting { .. } | Phase::Arming
        )
    }

    pub fn is_ready(&self) -> bool {
        matches!(
            self,
            Phase::Running { unready: None, .. } | Phase::Armed { .. } | Phase::Done { .. }
        )
    }

    /// The word status shows.
    pub fn word(&self) -> &'static str {
        match self {
            Phase::Stopped => "stopped",
            Phase::Starting { .. } | Phase::Checking { .. } | Phase::Arming => "starting",
            Phase::Running { .. } => "running",
            Phase::Backoff { .. } | Phase::Undecided { .. } => "backoff",
            Phase::Failed => "failed",
            Phase::Stopping { .. } | Phase::Halting { .. } => "stopping",
            Phase::Armed { .. } => "armed",
            Phase::Done { .. } => "done",
        }
    }

    fn set_pid(&mut self, new: Option<i32>) {
        match self {
            Phase::Starting { pid, .. }
            | Phase::Checking { pid, .. }
            | Phase::Running { pid, .. }
            | Phase::Stopping { pid, .. }
            | Phase::Halting { pid, .. } => *pid = new,
            _ => {}
        }
    }
}

/// One supervised service.
#[derive(Debug, Clone)]
pub struct Service {
    pub name: String,
    /// Its evaluated configuration, once known.
    pub config: Option<Arc<Prepared>>,
    /// A configuration problem that keeps it from starting.
    pub problem: Option<Error>,
    pub phase: Phase,
    /// Kept running (true) or kept stopped.
    pub wanted: bool,
    /// Automatic restarts since it was last started on purpose.
    pub restarts: u32,
    /// Short runs in a row (backoff).
    pub streak: u32,
    pub last_exit: Option<String>,
    pub note: Option<String>,
    /// The kernel start time of the tracked process (for uptime).
    pub start_ticks: Option<u64>,
    /// Batches waiting for it to settle, and what each asked of it.
    pub waiting: Vec<(BatchId, Verb)>,
    /// What the latest start did, reported once it is ready.
    pub outcome: Option<Outcome>,
    /// Its last run ended by an exit of its process: a restart first checks that no
    /// command acting directly stopped it meanwhile.
    pub revive: bool,
    /// Cron runs and inetd handlers running now.
    pub children: BTreeSet<i32>,
    /// Inetd: its listener is in the driver's epoll set.
    pub listening: bool,
    /// Cron: the last fire time (Unix seconds); never fired twice.
    pub last_fired: Option<i64>,
    /// Cron: when the last run started (Unix seconds).
    pub last_run: Option<i64>,
    /// Removed from the playpen and not running: no longer shown.
    pub forgotten: bool,
    /// A watched file changed (service_watch): the restart is due then, naming it.
    pub changed: Option<(Instant, String)>,
    /// Why it was last restarted on a change (status NOTE when no other note).
    pub change_note: Option<String>,
}

impl Service {
    pub fn new(name: &str) -> Service {
        Service {
            name: name.to_string(),
            config: None,
            problem: None,
            phase: Phase::Stopped,
            wanted: false,
            restarts: 0,
            streak: 0,
            last_exit: None,
            note: None,
            start_ticks: None,
            waiting: Vec::new(),
            outcome: None,
            revive: false,
            children: BTreeSet::new(),
            listening: false,
            last_fired: None,
            last_run: None,
            forgotten: false,
            changed: None,
            change_note: None,
        }
    }

    pub fn settings(&self) -> Option<&Settings> {
        self.config.as_ref().map(|p| &*p.settings)
    }

    fn halt_timeout(&self) -> Duration {
        self.settings().map_or(DEFAULT_HALT, |s| s.halt_timeout)
    }

    /// A cron or inetd service (by its known configuration).
    pub fn is_armable(&self) -> bool {
        use crate::config::settings::ServiceType;
        self.settings()
            .is_some_and(|s| matches!(s.service_type, ServiceType::Cron(_) | ServiceType::Inetd(_)))
    }
}

/// What a job is for.
#[derive(Debug, Clone)]
enum JobFor {
    Prepare(Purpose),
    Lifecycle(Sid, Verb),
    Check(Sid),
    Health(Sid),
}

#[derive(Debug, Clone)]
enum Purpose {
    Launch,
    Command {
        client: Option<ClientId>,
        op: Op,
    },
    /// Services were installed or removed: bring up the new ones the role wants.
    Rescan,
}

/// A `wait` request.
#[derive(Debug, Clone)]
struct Waiter {
    client: ClientId,
    services: Vec<Sid>,
    deadline: Instant,
}

/// The whole supervisor's state.
#[derive(Debug)]
pub struct Machine {
    pub services: Vec<Service>,
    index: HashMap<String, Sid>,
    jobs: HashMap<JobId, JobFor>,
    batches: BTreeMap<BatchId, batch::Batch>,
    /// Batches to look at again (a service they wait for settled).
    dirty: Vec<BatchId>,
    waiters: BTreeMap<u64, Waiter>,
    /// `wait` requests that arrived before the launch had decided which services to
    /// bring up.
    early: Vec<(ClientId, Option<f64>)>,
    next_id: u64,
    /// The launch's configuration has been read (or failed to be).
    pub launched: bool,
    /// Adopt only (`--no-start`).
    no_start: bool,
    shutting_down: bool,
    exit: Option<i32>,
    effects: Vec<Effect>,
    /// Services were installed or removed: bring the role up then.
    rescan_at: Option<Instant>,
}

impl Machine {
    pub fn new(no_start: bool) -> Machine {
        Machine {
            services: Vec::new(),
            index: HashMap::new(),
            jobs: HashMap::new(),
            batches: BTreeMap::new(),
            dirty: Vec::new(),
            waiters: BTreeMap::new(),
            early: Vec::new(),
            next_id: 1,
            launched: false,
            no_start,
            shutting_down: false,
            exit: None,
            effects: Vec::new(),
            rescan_at: None,
        }
    }

    /// The launch: read the configuration (the services adopted so far are known).
    pub fn begin(&mut self) -> Vec<Effect> {
        let adopted = self.services.iter().map(|s| s.name.clone()).collect();
        self.job(
            None,
            JobFor::Prepare(Purpose::Launch),
            Work::Prepare(Scope::Launch { adopted }),
        );
        std::mem::take(&mut self.effects)
    }

    /// Take in one event at `now`; the effects to carry out, in order.
    pub fn step(&mut self, event: Event, now: Now) -> Vec<Effect> {
        match event {
            Event::Adopted { name, pid } => self.on_adopted(&name, pid, now),
            Event::AdoptedChild { name, pid } => {
                let i = self.service_index(&name);
                self.log(format!("{name}: adopted its run or handler (pid {pid})"));
                self.services[i].children.insert(pid);
                self.effects.push(Effect::WatchChild { service: i, pid });
            }
            Event::Watched {
                service,
                pid,
                start_ticks,
            } => {
                if self.services[service].phase.pid() == Some(pid) {
                    self.services[service].start_ticks = start_ticks;
                }
            }
            Event::ProcessExited {
                service,
                pid,
                status,
            } => self.on_exit(service, pid, status, now),
            Event::ChildStarted { service, pid } => self.on_child_started(service, pid, now),
            Event::ChildFailed { service, error } => {
                let s = &mut self.services[service];
                s.last_exit = Some(format!("failed to start: {error}"));
                let name = s.name.clone();
                self.log(format!("{name}: cannot run: {error}"));
            }
            Event::ChildExited {
                service,
                pid,
                status,
            } => self.on_child_exited(service, pid, status, now),
            Event::ArmDone { service, result } => self.on_armed(service, result, now),
            Event::InetdReadable { service } => self.on_inetd_readable(service),
            Event::Tick => self.on_tick(now),
            Event::Request { client, op } => self.on_request(client, op, now),
            Event::ClientGone { client } => {
                self.waiters.retain(|_, w| w.client != client);
                self.early.retain(|(c, _)| *c != client);
                for b in self.batches.values_mut() {
                    if b.client == Some(client) {
                        b.client = None;
                    }
                }
            }
            Event::JobDone { job, output } => self.on_job_done(job, output, now),
            Event::ShutdownSignal => self.begin_shutdown(None, 0, None, now),
            Event::UpSignal if !self.shutting_down => {
                self.log("SIGHUP: bringing every service to its desired state".into());
                self.job(
                    None,
                    JobFor::Prepare(Purpose::Command {
                        client: None,
                        op: Op::Up,
                    }),
                    Work::Prepare(Scope::Up),
                );
            }
            Event::UpSignal => {}
            Event::CatalogChanged if !self.shutting_down && self.launched && !self.no_start => {
                // Quiet for a moment first: a package's files arrive in a burst.
                self.rescan_at = Some(now.mono + CATALOG_QUIET);
            }
            Event::CatalogChanged => {}
            Event::FileChanged { service, file } => self.on_file_changed(service, file, now),
            Event::RecordAppeared { name, pid } => self.on_record_appeared(&name, pid, now),
            Event::RecordRemoved { name } => self.on_record_removed(&name),
            Event::Notify { service, fields } => self.on_notify(service, fields, now),
            Event::LogMatched { service } => {
                if matches!(
                    self.services[service].phase,
                    Phase::Checking {
                        check: Check::Awaiting,
                        ..
                    }
                ) {
                    self.mark_ready(service, now);
                }
            }
        }
        self.flush_batches(now);
        self.check_waiters(now);
        if let Some(code) = self.exit.take() {
            self.effects.push(Effect::Exit(code));
        }
        std::mem::take(&mut self.effects)
    }

    /// The earliest deadline of the state (the driver arms its one timer for it).
    pub fn next_deadline(&self) -> Option<Instant> {
        let services = self.services.iter().filter_map(|s| match &s.phase {
            Phase::Backoff { until } => Some(*until),
            Phase::Checking {
                check: Check::Next(at),
                by,
                ..
            } => Some(*at.min(by)),
            Phase::Checking { by, .. } => Some(*by),
            Phase::Running { live, .. } => {
                let health = match live.health {
                    Some((Check::Next(at), _)) => Some(at),
                    _ => None,
                };
                health.into_iter().chain(live.watchdog).min()
            }
            Phase::Halting { kill_at, .. } => Some(*kill_at),
            Phase::Armed {
                fire: Some(fire), ..
            } => Some(fire.at),
            _ => None,
        });
        services
            .chain(self.waiters.values().map(|w| w.deadline))
            .chain(self.rescan_at)
            .chain(self.next_change())
            .min()
    }

    /// Jobs under way (the driver reaps orphans only when none runs).
    pub fn jobs_running(&self) -> usize {
        self.jobs.len()
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down
    }

    pub fn find(&self, name: &str) -> Option<Sid> {
        self.index.get(name).copied()
    }

    fn service_index(&mut self, name: &str) -> Sid {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        self.services.push(Service::new(name));
        let i = self.services.len() - 1;
        self.index.insert(name.to_string(), i);
        i
    }

    fn log(&mut self, message: String) {
        self.effects.push(Effect::Log(message));
    }

    fn reply(&mut self, client: ClientId, reply: Reply) {
        self.effects.push(Effect::Reply { client, reply });
    }

    fn job(&mut self, service: Option<Sid>, purpose: JobFor, work: Work) -> JobId {
        let job = self.next_id;
        self.next_id += 1;
        self.jobs.insert(job, purpose);
        self.effects.push(Effect::Job { job, service, work });
        job
    }

    fn on_job_done(&mut self, job: JobId, output: JobOutput, now: Now) {
        let Some(purpose) = self.jobs.remove(&job) else {
            return;
        };
        match (purpose, output) {
            (JobFor::Prepare(purpose), JobOutput::Prepared(result)) => {
                self.on_prepared(purpose, result, now)
            }
            (JobFor::Prepare(purpose), JobOutput::Lifecycle { result: Err(e), .. }) => {
                self.on_prepared(purpose, Err(e), now)
            }
            (JobFor::Lifecycle(i, verb), JobOutput::Lifecycle { result, has_check }) => {
                self.on_lifecycle(i, job, verb, result, has_check, now)
            }
            (JobFor::Lifecycle(i, verb), _) => self.on_lifecycle(
                i,
                job,
                verb,
                Err(Error::runtime("internal error: unexpected job output")),
                false,
                now,
            ),
            (JobFor::Check(i), JobOutput::Check { ok, detail }) => {
                self.on_check(i, job, ok, detail, now)
            }
            (JobFor::Check(i), JobOutput::Lifecycle { result: Err(e), .. }) => {
                self.on_check(i, job, false, e.to_string(), now)
            }
            (JobFor::Health(i), JobOutput::Check { ok, detail }) => {
                self.on_health(i, job, ok, detail, now)
            }
            (JobFor::Health(i), JobOutput::Lifecycle { result: Err(e), .. }) => {
                self.on_health(i, job, false, e.to_string(), now)
            }
            (purpose, _) => self.log(format!(
                "internal error: unexpected job output for {purpose:?}"
            )),
        }
    }

    fn on_tick(&mut self, now: Now) {
        self.restart_changed(now);
        if self.rescan_at.is_some_and(|at| at <= now.mono) {
            self.rescan_at = None;
            if !self.shutting_down {
                // As sysmgr picks up a service dropped into its directory: the role's
                // enabled services are brought up, a removed one is forgotten.
                self.log(
                    "services were installed or removed: bringing up the new ones the role lists"
                        .into(),
                );
                self.job(
                    None,
                    JobFor::Prepare(Purpose::Rescan),
                    Work::Prepare(Scope::Up),
                );
            }
        }
        for i in 0..self.services.len() {
            match self.services[i].phase.clone() {
                Phase::Backoff { until } if until <= now.mono => {
                    let s = &self.services[i];
                    if s.wanted && !self.shutting_down {
                        let name = s.name.clone();
                        self.log(format!("{name}: restarting"));
                        self.restart_after_exit(i, now);
                    }
                }
                Phase::Checking { by, check, .. }
                    if by <= now.mono && !matches!(check, Check::Running(_)) =>
                {
                    let detail = self.services[i]
                        .note
                        .as_deref()
                        .and_then(|n| n.strip_prefix("not ready yet: "))
                        .unwrap_or("no sign of readiness")
                        .to_string();
                    self.not_ready_in_time(i, detail, now)
                }
                Phase::Checking {
                    check: Check::Next(at),
                    ..
                } if at <= now.mono => self.run_check(i, now),
                Phase::Running { live, .. } => self.on_live_due(i, live, now),
                Phase::Halting { kill_at, .. } if kill_at <= now.mono => self.on_halt_due(i, now),
                Phase::Armed {
                    fire: Some(fire), ..
                } if fire.at <= now.mono => self.on_cron(i, now),
                _ => {}
            }
        }
        let due: Vec<u64> = self
            .waiters
            .iter()
            .filter(|(_, w)| w.deadline <= now.mono)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            if let Some(w) = self.waiters.remove(&id) {
                self.answer_wait(w);
            }
        }
    }
}

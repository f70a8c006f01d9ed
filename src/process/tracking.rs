//! Every process on record, always: what a start that was cut short left is adopted or
//! stopped, and stopping a service stops every process that carries its marks.
//!
//! A start writes its start record *before* the spawn, with `starting` (which servicectl
//! does it) and `launch` (the mark its processes carry, see [`census`]), and completes
//! it once the process is on record. A servicectl killed in between (SIGKILL, a crash)
//! leaves such a record and a process that no pidfile names; the next command that
//! takes the service's lock ([`settle`]) finds the start's processes by their launch
//! mark and adopts the service's process (pidfile and record written) or, when it
//! cannot tell which one is the service, stops them all.
//!
//! [`census`]: crate::process::census

use crate::error::Result;
use crate::playpen::Playpen;
use crate::process::census::{Lazy, Member};
use crate::process::pidfile::{self, Observed, StartRecord};
use crate::process::proc;
use nix::sys::signal::Signal;
use std::time::{Duration, Instant};

/// How long a process gets after SIGKILL to be gone.
const AFTER_KILL: Duration = Duration::from_secs(5);

/// One process to stop: PID and kernel start time (a reused PID is never signalled).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    pub pid: i32,
    pub start_ticks: u64,
}

impl Target {
    fn is_alive(&self) -> bool {
        proc::start_ticks(self.pid) == Some(self.start_ticks)
    }

    /// Its process group when it leads one (services lead theirs; so do children that
    /// moved to a group of their own), else the process alone; never our own group.
    fn signal(&self, sig: Signal) {
        if self.is_alive() {
            let _ = proc::signal_service(self.pid, sig);
        }
    }
}

impl From<&Member> for Target {
    fn from(m: &Member) -> Target {
        Target {
            pid: m.pid,
            start_ticks: m.start_ticks,
        }
    }
}

/// Stop processes together: SIGTERM (when `term`; else they are expected to be on their
/// way out, as after a service_stop script) and SIGCONT, up to `halt` for all of them to
/// exit, then SIGKILL for those left. Returns the PIDs still alive after that.
pub fn terminate(targets: &[Target], halt: Duration, term: bool) -> Vec<i32> {
    let mut targets: Vec<Target> = targets.to_vec();
    targets.sort_by_key(|t| t.pid);
    targets.dedup_by_key(|t| t.pid);
    if term {
        for t in &targets {
            t.signal(Signal::SIGTERM);
            // A stopped process only sees SIGTERM once continued.
            t.signal(Signal::SIGCONT);
        }
    }
    let left = wait_all(&targets, halt);
    if left.is_empty() {
        return Vec::new();
    }
    for t in &left {
        t.signal(Signal::SIGKILL);
    }
    wait_all(&left, AFTER_KILL)
        .into_iter()
        .map(|t| t.pid)
        .collect()
}

/// Wait (pidfds, no polling) until every target has exited or `timeout` passed; the
/// ones still alive.
fn wait_all(targets: &[Target], timeout: Duration) -> Vec<Target> {
    let deadline = Instant::now() + timeout;
    for t in targets {
        if t.is_alive() {
            proc::wait_exit(t.pid, deadline.saturating_duration_since(Instant::now()));
        }
    }
    targets.iter().copied().filter(Target::is_alive).collect()
}

/// Stop every process of one start (a fresh scan: a daemon it forked a moment ago
/// counts). Returns them as they were found.
pub fn stop_launch(playpen: &Playpen, launch: &str, halt: Duration) -> Vec<Member> {
    let census = crate::process::census::Census::scan(playpen);
    let members: Vec<Member> = census.of_launch(launch).cloned().collect();
    let targets: Vec<Target> = members.iter().map(Target::from).collect();
    terminate(&targets, halt, true);
    members
}

/// The live process the service's pidfile names, if it started at or after `since`
/// (Unix time, seconds).
fn written_since(playpen: &Playpen, service: &str, since: f64) -> Option<Target> {
    let Ok(Some(Ok(pid))) = pidfile::read_pid(&playpen.pidfile(service)) else {
        return None;
    };
    let start_ticks = proc::start_ticks(pid)?;
    let age = proc::age(start_ticks, proc::uptime_secs()?).as_secs_f64();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs_f64();
    // Start times are in clock ticks (10 ms): allow for the rounding.
    (now - age >= since - 0.1).then_some(Target { pid, start_ticks })
}

/// What [`settle`] did about a start that was cut short.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovered {
    /// No start was cut short.
    Nothing,
    /// Its process was on record already (the pidfile was written): the record is complete now.
    Completed { pid: i32 },
    /// Its process was found by its launch mark and is on record now.
    Adopted { pid: i32 },
    /// Nothing to adopt: these processes of the start were stopped, its files removed.
    RolledBack { pids: Vec<i32> },
}

/// Observe the service, finishing first what a start that was cut short left: adopt its
/// process, or stop what it started. The caller holds the service's lock, so a record
/// still marked `starting` is nobody's work in progress (its servicectl died, or the
/// record was copied from another playpen), whatever the starter's PID says now.
/// `halt`: how long the processes of a start that is rolled back get after SIGTERM.
pub fn settle(
    playpen: &Playpen,
    service: &str,
    halt: Duration,
    census: &Lazy,
) -> Result<(Observed, Option<StartRecord>, Recovered)> {
    let (observed, record) = pidfile::observe(playpen, service)?;
    let mut record = match record {
        Some(r) if r.starting.is_some() => r,
        record => return Ok((observed, record, Recovered::Nothing)),
    };
    let recovered = match observed {
        Observed::Running { pid, start_ticks } | Observed::Untracked { pid, start_ticks } => {
            // The pidfile (or the program) put it on record; complete the record.
            record.pid = Some(pid);
            record.start_ticks = Some(start_ticks);
            record.starting = None;
            pidfile::write_record(playpen, service, &record)?;
            if matches!(observed, Observed::Untracked { .. }) && !record.no_pidfile {
                pidfile::write_pid(&playpen.pidfile(service), pid)?;
            }
            Recovered::Completed { pid }
        }
        _ => {
            let members: Vec<Member> = match &record.launch {
                Some(launch) => census
                    .get()
                    .of_launch(launch)
                    .filter(|m| m.service == service && m.is_alive())
                    .cloned()
                    .collect(),
                None => Vec::new(),
            };
            let adoptable = if record.leader_is_service {
                // The spawned program leads its own session; the first one started is
                // the service (a daemon it forked into a session of its own came later).
                members
                    .iter()
                    .filter(|m| m.pid == m.sid)
                    .min_by_key(|m| (m.start_ticks, m.pid))
                    .map(Target::from)
            } else {
                // The program wrote its pidfile during this start, but its environment
                // no longer says so (it rewrote it): a live PID there that started
                // after the record was written is the program's.
                written_since(playpen, service, record.started_at)
            };
            match adoptable {
                Some(service_process) => {
                    let pid = service_process.pid;
                    record.pid = Some(pid);
                    record.start_ticks = Some(service_process.start_ticks);
                    record.starting = None;
                    pidfile::write_record(playpen, service, &record)?;
                    if !record.no_pidfile {
                        pidfile::write_pid(&playpen.pidfile(service), pid)?;
                    }
                    Recovered::Adopted { pid }
                }
                None => {
                    let targets: Vec<Target> = members.iter().map(Target::from).collect();
                    terminate(&targets, halt, true);
                    pidfile::clear(playpen, service)?;
                    Recovered::RolledBack {
                        pids: members.iter().map(|m| m.pid).collect(),
                    }
                }
            }
        }
    };
    let (observed, record) = pidfile::observe(playpen, service)?;
    Ok((observed, record, recovered))
}

//! Blocking work, off the event loop: evaluating configs, starting and stopping (which
//! wait for grace periods and halt timeouts), readiness checks. Each job runs on a
//! thread of its own and reports back through a channel, waking the loop with an
//! eventfd, so a slow ping of one service never delays the restart of another.

use super::keeper::Keeper;
use super::machine::{JobId, JobOutput, Work};
use crate::config::session::Session;
use crate::error::{Error, ErrorKind, Result};
use crate::ops::graph::{self, Deps};
use crate::playpen::Playpen;
use crate::service::lifecycle::{self, Outcome, OutputTo};
use crate::service::prepare::{Prepared, Stage, prepare};
use nix::sys::eventfd::EventFd;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::mpsc::Sender;

/// Which services a preparation is for.
#[derive(Debug, Clone)]
pub enum Scope {
    /// The supervisor's launch: the role's enabled services (and what they depend on),
    /// and the services it adopted.
    Launch { adopted: Vec<String> },
    /// `start NAME…` (or the role's): the names and what they depend on.
    Start(Vec<String>),
    /// `restart NAME…`: the names (or the role's).
    Named(Vec<String>),
    /// `stop NAME…`: the names (or the role's, from the role cache while it is valid);
    /// only services whose configuration the supervisor does not hold are evaluated.
    Stop {
        names: Vec<String>,
        known: std::collections::BTreeSet<String>,
    },
    /// `up`: the role's enabled services with their dependencies, and its disabled ones.
    Up,
    /// `down`: every service of the role, enabled or not.
    Down,
}

/// Services evaluated and checked for the supervisor (one sh process for all of them).
#[derive(Debug)]
pub struct Prepped {
    pub prepared: BTreeMap<String, Prepared>,
    /// Each service's problems (evaluation, settings, typed variables, audit).
    pub problems: BTreeMap<String, Error>,
    /// Names that are no service at all.
    pub unknown: BTreeMap<String, Error>,
    /// What the command acts on, in dependency order.
    pub targets: Vec<String>,
    /// `up`: the disabled services, to stop.
    pub disabled: Vec<String>,
    pub deps: Deps,
    pub warnings: Vec<String>,
}

/// Run `work` on a new thread; its output comes back on `tx` with `job`, and `wake`
/// is written so that the event loop looks. `service` names the service it is for
/// (the thread's name, for `ps -L`). Programs that a job starts write into a pipe to
/// `keeper` when there is one (else into their output file themselves).
pub fn spawn(
    playpen: &Playpen,
    keeper: Option<&Keeper>,
    job: JobId,
    service: Option<String>,
    work: Work,
    tx: &Sender<(JobId, JobOutput)>,
    wake: &Arc<EventFd>,
) {
    let playpen = playpen.clone();
    let keeper = keeper.cloned();
    let (tx, failed_tx) = (tx.clone(), tx.clone());
    let (wake, failed_wake) = (Arc::clone(wake), Arc::clone(wake));
    let _ = service;
    let spawned = std::thread::Builder::new()
        .name("servicectl-job".into())
        .stack_size(2 << 20)
        .spawn(move || {
            let output = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                run(&playpen, keeper.as_ref(), work)
            }))
            .unwrap_or_else(|_| JobOutput::Lifecycle {
                result: Err(Error::runtime(
                    "internal error (a supervisor job panicked; please report it)",
                )),
                has_check: false,
            });
            let _ = tx.send((job, output));
            let _ = wake.write(1);
        });
    if let Err(e) = spawned {
        // No thread (out of memory or processes): the loop still hears of the job, as
        // one that failed, so nothing waits for it forever.
        let _ = failed_tx.send((
            job,
            JobOutput::Lifecycle {
                result: Err(Error::runtime(format!("cannot start a worker thread: {e}"))),
                has_check: false,
            },
        ));
        let _ = failed_wake.write(1);
    }
}

fn run(playpen: &Playpen, keeper: Option<&Keeper>, work: Work) -> JobOutput {
    let output = || match keeper {
        Some(k) => OutputTo::Pipe(k),
        None => OutputTo::File,
    };
    let started = |result: Result<Outcome>, p: &Prepared| {
        let has_check = result.is_ok()
            && lifecycle::ping_runnable(playpen, p)
                .ok()
                .flatten()
                .is_some();
        JobOutput::Lifecycle { result, has_check }
    };
    match work {
        Work::Prepare(scope) => JobOutput::Prepared(prepare_scope(playpen, scope)),
        Work::Start(p) => started(lifecycle::start(playpen, &p, output()), &p),
        Work::Revive(p) => started(revive(playpen, &p, output()), &p),
        Work::Restart(p) => started(lifecycle::restart(playpen, &p, output()), &p),
        Work::Stop(p) => JobOutput::Lifecycle {
            result: lifecycle::stop(playpen, &p),
            has_check: false,
        },
        Work::Check(p, limit, pid) => {
            let (ok, detail) = crate::service::readiness::probe(playpen, &p, limit, pid);
            JobOutput::Check { ok, detail }
        }
    }
}

/// Wait for whatever holds the service's lock (a direct stop that killed it holds it
/// until it has removed the files), then start it unless its start record is gone.
fn revive(playpen: &Playpen, prepared: &Prepared, output: OutputTo) -> Result<Outcome> {
    let name = prepared.name();
    drop(crate::playpen::lock::ServiceLock::acquire(playpen, name)?);
    if crate::process::pidfile::read_record(playpen, name).is_none()
        && !playpen.pidfile(name).exists()
    {
        return Ok(Outcome::AlreadyStopped);
    }
    lifecycle::start(playpen, prepared, output)
}

fn prepare_scope(playpen: &Playpen, scope: Scope) -> Result<Prepped> {
    let mut session = Session::open(playpen.clone())?;
    if let Scope::Stop { names, known } = &scope {
        let targets = session.targets_cached(names)?;
        let unknown_config: Vec<String> = targets
            .iter()
            .filter(|n| !known.contains(*n))
            .cloned()
            .collect();
        let preparation = prepare(&mut session, &unknown_config);
        let (prepared, warnings) = preparation.lenient();
        let mut good = BTreeMap::new();
        let mut unknown = BTreeMap::new();
        for (name, p) in prepared {
            match p {
                Ok(p) => {
                    good.insert(name, p);
                }
                Err(e) => {
                    unknown.insert(name, e);
                }
            }
        }
        return Ok(Prepped {
            prepared: good,
            problems: BTreeMap::new(),
            unknown,
            targets,
            disabled: Vec::new(),
            deps: Deps::new(),
            warnings,
        });
    }
    let role_enabled = |session: &mut Session| match session.targets(&[]) {
        Ok(t) => Ok(t),
        Err(e) if e.kind == ErrorKind::NoServicesListed => Ok(Vec::new()),
        Err(e) => Err(e),
    };
    let mut disabled = Vec::new();
    let mut missing = Vec::new();
    let targets = match &scope {
        Scope::Launch { adopted } => {
            let mut names = match session.role_targets_installed() {
                Ok((installed, not_installed)) => {
                    missing = not_installed;
                    session.with_dependencies(&installed)?
                }
                Err(e) if e.kind == ErrorKind::NoServicesListed => Vec::new(),
                Err(e) => {
                    eprintln!("servicectl supervise: {e}");
                    Vec::new()
                }
            };
            for a in adopted {
                if !names.contains(a) {
                    names.push(a.clone());
                }
            }
            names
        }
        Scope::Start(names) => {
            let t = session.targets(names)?;
            session.with_dependencies(&t)?
        }
        Scope::Named(names) => session.targets(names)?,
        Scope::Stop { .. } => unreachable!("handled above"),
        Scope::Up => {
            let enabled = role_enabled(&mut session)?;
            let all = match session.role_services() {
                Ok(all) => all,
                Err(e) if e.kind == ErrorKind::NoServicesListed => Vec::new(),
                Err(e) => return Err(e),
            };
            disabled = all.into_iter().filter(|s| !enabled.contains(s)).collect();
            session.with_dependencies(&enabled)?
        }
        Scope::Down => match session.role_services() {
            Ok(all) => all
                .into_iter()
                .filter(|n| session.catalog.get(n).is_ok())
                .collect(),
            Err(e) if e.kind == ErrorKind::NoServicesListed => Vec::new(),
            Err(e) => return Err(e),
        },
    };
    let mut names = targets.clone();
    names.extend(disabled.iter().cloned());
    let mut preparation = prepare(&mut session, &names);
    preparation.audit(&session);
    let deps = crate::ops::dependency_graph(&preparation.prepared);
    if let Some(cycle) = graph::find_cycle(&deps) {
        let first = cycle[0].clone();
        preparation.add(
            &first,
            Stage::Audit,
            Error::config(format!(
                "dependency cycle in service_depends: {}",
                cycle.join(" → ")
            ))
            .with_service(&first)
            .with_hint("remove one of these dependencies"),
        );
    }
    let problems = preparation.errors(&[
        Stage::Evaluation,
        Stage::Settings,
        Stage::Variables,
        Stage::Audit,
    ]);
    let order: Vec<String> = if graph::find_cycle(&deps).is_none() {
        graph::order(&deps)
    } else {
        names.clone()
    };
    let targets = order
        .into_iter()
        .filter(|n| targets.contains(n))
        .chain(preparation.unknown.keys().cloned())
        .collect();
    let mut unknown = preparation.unknown;
    unknown.extend(missing);
    let mut warnings = preparation.warnings;
    if matches!(scope, Scope::Launch { .. } | Scope::Start(_) | Scope::Up) {
        warnings.extend(crate::ops::playpens::note(&mut session));
    }
    Ok(Prepped {
        prepared: preparation.prepared,
        problems,
        unknown,
        targets,
        disabled,
        deps,
        warnings,
    })
}

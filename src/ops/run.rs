//! `servicectl run [NAME…] -- CMD [ARG…]` (SPEC §12.1): the services a test suite needs,
//! up and ready for the time of one command, then gone again.
//!
//! The role's (or the named) services and what they depend on are started, those not
//! running already; once every one is ready, CMD runs in the foreground (servicectl's
//! terminal, standard input and output, current directory) with the environment
//! `servicectl env` gives plus every typed port of those services (`REDIS_PORT`); then
//! what this run started is stopped, dependants first, and what ran before stays
//! running. The exit code is CMD's (128 + N when signal N ended it); 1 when a service
//! could not be made ready, and then CMD does not run.
//!
//! With a supervisor, starts, the wait and the stops go through it (so its restart
//! policies apply meanwhile and the stop is on purpose); without one, they are the
//! commands' own (the wait asks the services' checks at growing intervals, as `wait`
//! does, since nothing announces readiness without a supervisor).

use crate::config::Env;
use crate::config::session::Session;
use crate::control::{self, Op, Reply};
use crate::error::{Error, ErrorKind, Result};
use crate::ops::{self, Progress, Results};
use crate::process::foreground::{Ended, Foreground};
use crate::process::interrupt;
use crate::service::outcome::Outcome;
use crate::service::prepare::prepare;
use std::ffi::OsString;
use std::time::Duration;

/// What a run did.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// The services this run started (and stopped after), in start order.
    pub started: Vec<String>,
    /// Why a service could not be made ready (CMD was not run then).
    pub failures: Vec<Error>,
    /// How each service this run started was stopped.
    pub stopped: Results<Outcome>,
    /// CMD's exit code (127 or 126 when it could not be started, as a shell says);
    /// None when it did not run (128 + N when signal N cancelled the run before it).
    pub status: Option<i32>,
    /// Started, waited for and stopped through the playpen's supervisor.
    pub supervised: bool,
    pub warnings: Vec<String>,
}

impl RunReport {
    /// The exit code of `run`: CMD's, else 1.
    pub fn exit_code(&self) -> i32 {
        self.status.unwrap_or(1)
    }
}

/// Up, ready, CMD, down (see the module's note). `command` is CMD and its arguments.
pub fn run(
    session: &mut Session,
    names: &[String],
    command: &[OsString],
    progress: Progress,
) -> Result<RunReport> {
    let Some((program, args)) = command.split_first() else {
        return Err(Error::new(ErrorKind::Config, "run: no command after `--`")
            .with_hint("name the command to run: `servicectl run [NAME…] -- CMD [ARG…]`"));
    };
    let targets = session.targets(names)?;
    let all = session.with_dependencies(&targets)?;
    let mut services = match control::connect(&session.playpen.root)? {
        Some(client) => Services::Supervised(client),
        None => Services::Direct,
    };
    let mut report = RunReport {
        started: Vec::new(),
        failures: Vec::new(),
        stopped: Vec::new(),
        status: None,
        supervised: matches!(services, Services::Supervised(_)),
        warnings: Vec::new(),
    };
    // Caught from here on: a signal before CMD runs cancels the run (what was started
    // is stopped), one while it runs goes to CMD, and none cuts the stops short.
    let signals = Foreground::catch()?;
    let (results, warnings) = services.act(session, names, progress, Act::Start)?;
    report.warnings.extend(warnings);
    for (name, result) in results {
        match result {
            Ok(Outcome::Started { .. }) => report.started.push(name),
            Ok(_) => {}
            Err(e) => report.failures.push(e),
        }
    }
    if report.failures.is_empty() {
        let timeout = ready_timeout(session, &all);
        for (name, why) in services.wait(session, &all, timeout)? {
            report.failures.push(
                Error::runtime(format!(
                    "not ready within {:.0} s ({why}), so the command was not run",
                    timeout.as_secs_f64()
                ))
                .with_service(name.as_str())
                .with_hint(format!(
                    "see `servicectl logs {name}` and `servicectl status {name}`"
                )),
            );
        }
    }
    // During the start, ops::start notes SIGINT, SIGTERM and SIGHUP itself.
    if let Some(sig) = interrupt::received().or_else(|| signals.pending())
        && report.failures.is_empty()
    {
        report.failures.push(
            Error::new(
                ErrorKind::NotAttempted,
                format!(
                    "servicectl received {} before the command ran, so it was not run",
                    sig.as_str()
                ),
            )
            .with_hint("what this run had started is stopped"),
        );
        report.status = Some(128 + sig as i32);
    }
    if report.failures.is_empty() {
        let env = environment(session, &all)?;
        match signals.run(program, args, &env) {
            Ok(Ended::Exited(code)) => report.status = Some(code),
            Ok(Ended::NotStarted(e, code)) => {
                report.failures.push(e);
                report.status = Some(code);
            }
            Err(e) => report.failures.push(e),
        }
    }
    if !report.started.is_empty() {
        let (stopped, warnings) = services.act(session, &report.started, progress, Act::Stop)?;
        report.stopped = stopped;
        report.warnings.extend(warnings);
    }
    drop(signals);
    Ok(report)
}

/// The longest service_ready_timeout among the services (30 s by default).
fn ready_timeout(session: &mut Session, names: &[String]) -> Duration {
    names
        .iter()
        .filter_map(|n| session.settings(n).ok())
        .map(|(s, _)| s.depends_timeout)
        .max()
        .unwrap_or(Duration::from_secs(30))
}

/// What CMD sees: servicectl's own environment, the playpen's variables (`servicectl
/// env`), and every typed port of the services.
fn environment(session: &mut Session, names: &[String]) -> Result<Env> {
    let mut env: Env = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v)))
        .collect();
    env.extend(ops::environment(session, None, false)?.0);
    for resolution in prepare(session, names).resolutions {
        for (name, port) in resolution.ports {
            env.insert(name, port.to_string().into());
        }
    }
    Ok(env)
}

#[derive(Clone, Copy)]
enum Act {
    Start,
    Stop,
}

/// Who starts and stops: the playpen's supervisor, or this command.
enum Services {
    Supervised(control::Client),
    Direct,
}

impl Services {
    /// Start or stop through the supervisor, or directly.
    fn act(
        &mut self,
        session: &mut Session,
        names: &[String],
        progress: Progress,
        act: Act,
    ) -> Result<(Results<Outcome>, Vec<String>)> {
        let services = names.to_vec();
        match (self, act) {
            (Services::Direct, Act::Start) => ops::start(session, names, progress),
            (Services::Direct, Act::Stop) => ops::stop(session, names, progress),
            (Services::Supervised(client), Act::Start) => {
                rows(client.call(&Op::Start { services })?)
            }
            (Services::Supervised(client), Act::Stop) => rows(client.call(&Op::Stop { services })?),
        }
    }

    /// The services that are not ready at the timeout, with what their check said.
    fn wait(
        &mut self,
        session: &mut Session,
        names: &[String],
        timeout: Duration,
    ) -> Result<Vec<(String, String)>> {
        match self {
            Services::Direct => {
                Ok(ops::desired::wait(session, names, timeout.as_secs_f64())?.not_ready)
            }
            Services::Supervised(client) => match client.call(&Op::Wait {
                services: names.to_vec(),
                timeout_secs: Some(timeout.as_secs_f64()),
            })? {
                Reply::Wait { not_ready, .. } => Ok(not_ready
                    .into_iter()
                    .map(|n| (n.service, n.state))
                    .collect()),
                other => Err(unexpected(other)),
            },
        }
    }
}

fn rows(reply: Reply) -> Result<(Results<Outcome>, Vec<String>)> {
    match reply {
        Reply::Results { results, warnings } => Ok((
            results.into_iter().map(control::Row::into_result).collect(),
            warnings,
        )),
        other => Err(unexpected(other)),
    }
}

fn unexpected(reply: Reply) -> Error {
    match reply {
        Reply::Error { error } => Error::from(error),
        other => Error::runtime(format!(
            "the supervisor gave an unexpected answer: {other:?}"
        )),
    }
}

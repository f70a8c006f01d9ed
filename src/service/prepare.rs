//! A service made ready to act on: its configuration evaluated, its typed variables
//! resolved, its environment assembled and its program resolved, once per command.
//! Every command prepares its services here; `start` takes the strict view (any problem
//! holds everything back), `stop` and `ping` the lenient one, and `check` reads the
//! problems themselves.

use crate::config::ServiceConfig;
use crate::config::envars;
use crate::config::session::Session;
use crate::error::{Error, ErrorKind, Result};
use crate::playpen::Playpen;
use crate::playpen::marks;
use crate::process::pidfile;
use crate::service::program;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// A service ready to act on: its configuration and the environment its program,
/// hooks and scripts see (exported config variables, resolved typed variables, …).
#[derive(Debug, Clone)]
pub struct Prepared {
    pub config: Arc<ServiceConfig>,
    pub env: BTreeMap<String, String>,
    pub ports: Vec<(String, u16)>,
    /// service_program resolved once (validation, the run-name check and the start all
    /// need it, and a PATH search is a dozen system calls).
    program: std::sync::OnceLock<Result<PathBuf>>,
}

impl Prepared {
    pub fn new(
        config: Arc<ServiceConfig>,
        env: BTreeMap<String, String>,
        ports: Vec<(String, u16)>,
    ) -> Prepared {
        Prepared {
            config,
            env,
            ports,
            program: std::sync::OnceLock::new(),
        }
    }

    pub fn name(&self) -> &str {
        self.config.name()
    }

    /// The program service_program names, resolved as §4 says.
    pub fn program(&self, playpen: &Playpen) -> Result<PathBuf> {
        self.program
            .get_or_init(|| program::resolve_program(playpen, &self.config, &self.env))
            .clone()
    }
}

/// Every service of a command, evaluated and checked once. `start` and `restart` take
/// the strict view, `stop`, `ping` and `print-config` the lenient one, and `check`
/// reads the problems directly.
pub struct Preparation {
    /// Every known service; one whose config failed to evaluate has a stand-in config.
    pub prepared: BTreeMap<String, Prepared>,
    /// Each service's own problem: its config fails to evaluate, or its typed variables
    /// are wrong (port conflicts are added by the strict view).
    pub problems: BTreeMap<String, Error>,
    /// Names that are not services at all.
    pub unknown: BTreeMap<String, Error>,
    pub resolutions: Vec<envars::Resolution>,
    pub warnings: Vec<String>,
}

/// Evaluate every service of `names` (one pipelined batch) and resolve its typed
/// variables.
pub fn prepare(session: &mut Session, names: &[String]) -> Preparation {
    let mut preparation = Preparation {
        prepared: BTreeMap::new(),
        problems: BTreeMap::new(),
        unknown: BTreeMap::new(),
        resolutions: Vec::new(),
        warnings: Vec::new(),
    };
    session.preload(names);
    for name in names {
        let config = match session.config(name) {
            Ok(c) => c,
            Err(e) => match session.id(name) {
                Ok(id) => {
                    preparation.problems.insert(name.clone(), e);
                    std::sync::Arc::new(ServiceConfig::stand_in(id, &session.playpen))
                }
                Err(unknown) => {
                    preparation.unknown.insert(name.clone(), unknown);
                    continue;
                }
            },
        };
        let resolution = envars::resolve(&config);
        preparation
            .warnings
            .extend(resolution.warnings.iter().cloned());
        let mut env = config.environment();
        env.extend(resolution.values.clone());
        let upgraded = marks::is_marked(&session.playpen, name);
        env.insert(
            "SERVICE_UPGRADED".into(),
            if upgraded { "1" } else { "0" }.into(),
        );
        if let Some(err) = resolution.to_error()
            && !config.is_stand_in()
        {
            preparation.problems.insert(name.clone(), err);
        }
        preparation.prepared.insert(
            name.clone(),
            Prepared::new(config, env, resolution.ports.clone()),
        );
        preparation.resolutions.push(resolution);
    }
    preparation
}

impl Preparation {
    /// For acting on running services: a config that fails to evaluate is a warning
    /// (the service is acted on from its pidfile, without hooks); typed-variable
    /// problems do not matter.
    pub fn lenient(self) -> (BTreeMap<String, Result<Prepared>>, Vec<String>) {
        let mut warnings = self.warnings;
        let mut out: BTreeMap<String, Result<Prepared>> =
            self.unknown.into_iter().map(|(n, e)| (n, Err(e))).collect();
        for (name, prepared) in self.prepared {
            if prepared.config.is_stand_in()
                && let Some(e) = self.problems.get(&name)
            {
                warnings.push(format!(
                    "{name}: {}; acting without its configuration (no hooks, default timeouts)",
                    e.message
                ));
            }
            out.insert(name, Ok(prepared));
        }
        (out, warnings)
    }

    /// For starting: every problem of every service, port conflicts included (with the
    /// ports of services already running), and when there is any, nothing goes ahead.
    pub fn strict(self, session: &Session) -> (BTreeMap<String, Result<Prepared>>, Vec<String>) {
        let names: Vec<String> = self.prepared.keys().cloned().collect();
        let mut problems = self.problems;
        for (service, err) in port_problems(session, &names, &self.resolutions) {
            match problems.get_mut(&service) {
                Some(previous) => previous.message.push_str(&format!("\n  {}", err.message)),
                None => {
                    problems.insert(service, err);
                }
            }
        }
        let mut out: BTreeMap<String, Result<Prepared>> =
            self.unknown.into_iter().map(|(n, e)| (n, Err(e))).collect();
        let any_problem = !problems.is_empty() || !out.is_empty();
        for (name, prepared) in self.prepared {
            let result = match problems.remove(&name) {
                Some(err) => Err(err),
                // Nothing starts until every problem is fixed: hold back the good ones too.
                None if any_problem => Err(Error::new(
                    ErrorKind::NotAttempted,
                    "not started: other services have configuration problems (listed above)",
                )
                .with_service(&name)),
                None => Ok(prepared),
            };
            out.insert(name, result);
        }
        (out, self.warnings)
    }
}

/// Ports shared by two of `resolutions`, or with a service already running outside
/// this command (as its start record says, so starting one at a time cannot collide).
pub fn port_problems(
    session: &Session,
    names: &[String],
    resolutions: &[envars::Resolution],
) -> Vec<(String, Error)> {
    let running = running_ports(session, names);
    let mut out = Vec::new();
    for conflict in envars::port_conflicts(resolutions.iter().chain(running.iter())) {
        for user in conflict.users.iter().filter(|u| names.contains(&u.service)) {
            out.push((
                user.service.clone(),
                Error::config(conflict.to_string())
                    .with_service(&user.service)
                    .with_hint("give each service its own port: change the *_PORT or *_OFFSET values in the role or service config"),
            ));
        }
    }
    out
}

/// The ports of running services other than `names`, from their start records (no
/// config evaluated), shaped as resolutions for the conflict check.
fn running_ports(session: &Session, names: &[String]) -> Vec<envars::Resolution> {
    session
        .catalog
        .names()
        .filter(|n| !names.iter().any(|m| m == n))
        .filter_map(|n| {
            let (observed, record) = pidfile::observe(&session.playpen, n).ok()?;
            let record = record.filter(|r| observed.is_running() && !r.ports.is_empty())?;
            Some(envars::Resolution {
                service: n.to_string(),
                ports: record.ports,
                ..Default::default()
            })
        })
        .collect()
}

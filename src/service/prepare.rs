//! A service made ready to act on: its configuration evaluated, its typed variables
//! resolved, its environment assembled and its program resolved, once per command.
//! Every command prepares its services here; `start` takes the strict view (any problem
//! holds everything back), `stop` and `ping` the lenient one, and `check` reads the
//! problems themselves.

use crate::config::ServiceConfig;
use crate::config::envars;
use crate::config::session::Session;
use crate::config::settings::Settings;
use crate::config::template;
use crate::error::{Error, ErrorKind, Result};
use crate::playpen::Playpen;
use crate::playpen::marks;
use crate::process::pidfile;
use crate::service::executable;
use crate::service::lifecycle;
pub use crate::service::prepared::Prepared;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Every service of a command, evaluated and checked once. `start` and `restart` take
/// the strict view, `stop`, `ping` and `print-config` the lenient one, and `check`
/// reads the problems directly.
pub struct Preparation {
    /// Every known service; one whose config failed to evaluate has a stand-in config.
    pub prepared: BTreeMap<String, Prepared>,
    /// Each service's own problems: its config fails to evaluate, a setting or a typed
    /// variable is wrong; [`Preparation::audit`] adds what only a look at the playpen
    /// finds (programs, templates, ports in use, shared run names).
    pub problems: BTreeMap<String, Vec<(Stage, Error)>>,
    /// Names that are not services at all.
    pub unknown: BTreeMap<String, Error>,
    pub resolutions: Vec<envars::Resolution>,
    pub warnings: Vec<String>,
}

/// Where a problem was found; a lenient command acts despite typed-variable and audit
/// problems, but warns that it acts with less than the full config otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The fragments do not evaluate.
    Evaluation,
    /// A setting has a bad value.
    Settings,
    /// A typed variable is missing or invalid.
    Variables,
    /// Found by looking at the playpen: programs, templates, ports, run names.
    Audit,
}

/// Evaluate every service of `names` (one pipelined batch), parse its settings and
/// resolve its typed variables.
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
                    preparation.add(name, Stage::Evaluation, e);
                    Arc::new(ServiceConfig::stand_in(id, &session.playpen))
                }
                Err(unknown) => {
                    preparation.unknown.insert(name.clone(), unknown);
                    continue;
                }
            },
        };
        let settings = match session.settings(name) {
            Ok((settings, problem)) => {
                if let Some(err) = problem {
                    preparation.add(name, Stage::Settings, err);
                }
                settings
            }
            // The config did not evaluate (reported above): nothing is known but defaults.
            Err(_) => Arc::new(Settings::default()),
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
        // Its processes are the user's: their HOME, USER and LOGNAME are too, not
        // those of the root (or whoever) servicectl runs as.
        if let Some(user) = &settings.user {
            env.extend(user.env().map(|(k, v)| (k.to_string(), v)));
        }
        if let Some(err) = resolution.to_error()
            && !config.is_stand_in()
        {
            preparation.add(name, Stage::Variables, err);
        }
        preparation.prepared.insert(
            name.clone(),
            Prepared::new(config, settings, env, resolution.ports.clone()),
        );
        preparation.resolutions.push(resolution);
    }
    preparation
}

impl Preparation {
    /// Record a problem of one service.
    pub fn add(&mut self, name: &str, stage: Stage, err: Error) {
        self.problems
            .entry(name.to_string())
            .or_default()
            .push((stage, err));
    }

    /// Services whose own config evaluated: the ones worth a deeper look (a bad setting
    /// stands at its default, so what else is wrong is still found).
    fn well_formed(&self) -> impl Iterator<Item = &Prepared> {
        self.prepared.values().filter(|p| !p.config.is_stand_in())
    }

    /// Add every problem that `start` would meet before its first process: ports shared
    /// with each other or with running services, programs and scripts that are missing,
    /// templates that do not render, run names shared by different programs.
    pub fn audit(&mut self, session: &Session) {
        let names: Vec<String> = self.prepared.keys().cloned().collect();
        let running = running_records(session, &names);
        let mut found: Vec<(String, Error)> = port_problems(&names, &self.resolutions, &running);
        for p in self.well_formed() {
            if let Err(e) = lifecycle::validate(&session.playpen, p) {
                found.push((p.name().to_string(), e));
            }
            if let Some(e) = ready_port_problem(p) {
                found.push((p.name().to_string(), e));
            }
            if let Err(e) = template::check_all(
                &session.playpen,
                &p.settings.config_files,
                &p.env,
                p.settings.config_style,
            ) {
                found.push((p.name().to_string(), e.with_service(p.name())));
            }
        }
        found.extend(executable::hook_problems(self.well_formed()));
        found.extend(shared_run_names(
            &session.playpen,
            self.well_formed(),
            &running,
        ));
        found.extend(crate::process::holders::held_ports(
            &session.playpen,
            self.well_formed().map(|p| (p.name(), p.ports.as_slice())),
        ));
        for (name, err) in found {
            self.add(&name, Stage::Audit, err);
        }
    }

    /// Each service's problems of the given stages as one error.
    pub fn errors(&self, stages: &[Stage]) -> BTreeMap<String, Error> {
        self.problems
            .iter()
            .filter_map(|(name, problems)| {
                let errors = problems
                    .iter()
                    .filter(|(stage, _)| stages.contains(stage))
                    .map(|(_, e)| e.clone())
                    .collect();
                Error::all(name, errors).map(|e| (name.clone(), e))
            })
            .collect()
    }

    /// For acting on running services: a config that fails to evaluate or has bad
    /// settings is a warning (the service is acted on from its pidfile, with the settings
    /// that could be read); typed-variable problems do not matter.
    pub fn lenient(self) -> (BTreeMap<String, Result<Prepared>>, Vec<String>) {
        let errors = self.errors(&[Stage::Evaluation, Stage::Settings]);
        let mut warnings = self.warnings;
        let mut out: BTreeMap<String, Result<Prepared>> =
            self.unknown.into_iter().map(|(n, e)| (n, Err(e))).collect();
        for (name, prepared) in self.prepared {
            if let Some(e) = errors.get(&name) {
                let what = if prepared.config.is_stand_in() {
                    "acting without its configuration (no hooks, default timeouts)"
                } else {
                    "acting with the defaults of the settings that are wrong"
                };
                warnings.push(format!("{name}: {}; {what}", e.message));
            }
            out.insert(name, Ok(prepared));
        }
        (out, warnings)
    }

    /// For starting: every problem of every service (after [`Preparation::audit`]), and
    /// when there is any, nothing goes ahead.
    pub fn strict(self) -> (BTreeMap<String, Result<Prepared>>, Vec<String>) {
        let mut problems = self.errors(&[
            Stage::Evaluation,
            Stage::Settings,
            Stage::Variables,
            Stage::Audit,
        ]);
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

/// Services whose linkfarm symlinks would share a name but point at different programs
/// (a common run name): they would overwrite each other's symlink, and start refuses to
/// take over one that a running service (of this command or not) uses.
fn shared_run_names<'a>(
    playpen: &Playpen,
    prepared: impl Iterator<Item = &'a Prepared>,
    running: &[(String, pidfile::StartRecord)],
) -> Vec<(String, Error)> {
    // link name → (service, program, outside this command)
    let mut by_link: BTreeMap<String, Vec<(&str, PathBuf, bool)>> = BTreeMap::new();
    for p in prepared {
        if let Some((link, program)) = lifecycle::planned_link(playpen, p) {
            by_link
                .entry(link)
                .or_default()
                .push((p.name(), program, false));
        }
    }
    for (name, record) in running {
        let link = record.symlink.as_deref().map(std::path::Path::new);
        let (Some(link), Some(program)) = (link, &record.program) else {
            continue;
        };
        if link.parent() != Some(playpen.linkfarm().as_path()) {
            continue;
        }
        let link = link.file_name().unwrap_or_default().to_string_lossy();
        if let Some(users) = by_link.get_mut(link.as_ref()) {
            users.push((name, PathBuf::from(program), true));
        }
    }
    let mut bad = Vec::new();
    for (link, users) in by_link {
        if users.iter().all(|(_, p, _)| *p == users[0].1) {
            continue;
        }
        let who: Vec<String> = users
            .iter()
            .map(|(n, p, outside)| {
                let running = if *outside { ", running" } else { "" };
                format!("{n} ({}{running})", p.display())
            })
            .collect();
        for (name, _, outside) in &users {
            if *outside {
                continue;
            }
            bad.push((
                name.to_string(),
                Error::config(format!(
                    "the run name {link:?} is shared by {}, which run different programs",
                    who.join(" and ")
                ))
                .with_service(*name)
                .with_hint("give each its own service_run_name"),
            ));
        }
    }
    bad
}

/// Ports shared by two of `resolutions`, or with a service already running outside
/// this command (as its start record says, so starting one at a time cannot collide).
fn port_problems(
    names: &[String],
    resolutions: &[envars::Resolution],
    running: &[(String, pidfile::StartRecord)],
) -> Vec<(String, Error)> {
    let running = running_ports(running);
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

/// The start records of running services other than `names` (no config evaluated).
fn running_records(session: &Session, names: &[String]) -> Vec<(String, pidfile::StartRecord)> {
    session
        .catalog
        .names()
        .filter(|n| !names.iter().any(|m| m == n))
        .filter_map(|n| {
            let (observed, record) = pidfile::observe(&session.playpen, n).ok()?;
            let record = record.filter(|_| observed.is_running())?;
            Some((n.to_string(), record))
        })
        .collect()
}

/// The ports of running services, from their start records, shaped as resolutions for
/// the conflict check.
fn running_ports(running: &[(String, pidfile::StartRecord)]) -> Vec<envars::Resolution> {
    running
        .iter()
        .filter(|(_, record)| !record.ports.is_empty())
        .map(|(n, record)| envars::Resolution {
            service: n.clone(),
            ports: record.ports.clone(),
            ..Default::default()
        })
        .collect()
}

/// service_ready=tcp[:VAR] and http:VAR/PATH name a typed port of the service.
fn ready_port_problem(p: &Prepared) -> Option<Error> {
    use crate::config::settings::Ready;
    let var = match &p.settings.ready {
        Ready::Tcp(None) if p.ports.is_empty() => {
            return Some(
                Error::config("service_ready=tcp needs a typed port, and the service has none")
                    .with_service(p.name())
                    .with_hint("declare a typed variable of type port (service_required_envars, envar_NAME_type=port), or serve without service_ready=tcp"),
            );
        }
        Ready::Tcp(Some(var)) => var,
        Ready::Http { var, .. } => var,
        _ => return None,
    };
    if p.ports.iter().any(|(name, _)| name == var) {
        return None;
    }
    let known: Vec<&str> = p.ports.iter().map(|(n, _)| n.as_str()).collect();
    Some(
        Error::config(format!(
            "service_ready names {var}, which is not a typed port of the service (its ports: {})",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        ))
        .with_service(p.name())
        .with_hint("name one of its port variables, or declare VAR as a port"),
    )
}

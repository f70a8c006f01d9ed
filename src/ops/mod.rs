//! The commands, as library calls: each takes a session and names, does the work in
//! dependency order, and returns per-service results for `render` to show.

pub mod boot;
pub mod desired;
pub mod edit;
pub mod export;
pub mod graph;
pub mod package;
pub mod playpens;
pub mod ports;
pub mod run;
pub mod upgrade;

use crate::config::envars;
use crate::config::session::Session;
use crate::config::{Env, template};
use crate::error::{Error, ErrorKind, Result};
use crate::playpen::Playpen;
use crate::process::census::Lazy;
use crate::process::interrupt;
use crate::process::pidfile;
use crate::service::lifecycle::{self, Outcome};
use crate::service::prepare::{Preparation, Prepared, Stage, prepare};
use crate::service::status::{self, PingResult, ServiceStatus};
use graph::{Deps, Direction};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// logs: the tail of each service's output file (its name before each line when there
/// are several, as `name` shows it), and with `follow` what is appended, across
/// rotations, until `out` is closed (a closed pipe ends it quietly).
pub fn logs(
    session: &mut Session,
    names: &[String],
    lines: usize,
    follow: bool,
    name: &dyn Fn(&str) -> String,
    out: &mut impl std::io::Write,
) -> Result<()> {
    let targets = session.targets_cached(names)?;
    let files: Vec<(String, std::path::PathBuf)> = targets
        .iter()
        .map(|n| (n.clone(), session.playpen.output_file(n)))
        .collect();
    match crate::process::output::logs(&files, lines, follow, name, out) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Error::io("read", &session.playpen.run_dir(), e))
        }
        _ => Ok(()),
    }
}

/// Whether a start or restart of this process was cut short by SIGTERM, SIGHUP or
/// SIGINT (what had begun was finished; the command must still fail).
pub fn interrupted() -> bool {
    crate::process::interrupt::received().is_some()
}

/// What happens to a service during start, stop, restart, up and down, as it happens
/// (from any thread), for progress output.
#[derive(Debug, Clone, Copy)]
pub enum Step<'a> {
    /// It waits for these (empty: for nothing, it is queued). Sent for every service
    /// before the work begins, with what it waits for in dependency order; sent again
    /// once it has begun when it then waits for a dependency to become ready.
    Waiting(&'a [String]),
    /// The work on it has begun.
    Started,
    /// It is done, well or not.
    Finished(&'a Result<Outcome>),
}

/// Called with each service's name and [`Step`], for progress output.
pub type Progress<'a> = &'a (dyn Fn(&str, Step) + Sync);

/// Tell `progress` what each service of `deps` waits for, before the work begins.
fn announce(progress: Progress, deps: &Deps, direction: Direction) {
    for (name, on) in graph::waits_for(deps, direction) {
        progress(&name, Step::Waiting(&on));
    }
}

/// Per-service results in the order the services were acted on.
pub type Results<T> = Vec<(String, Result<T>)>;

/// The dependency graph of `names`, restricted to them.
pub fn dependency_graph(prepared: &BTreeMap<String, Prepared>) -> Deps {
    prepared
        .iter()
        .map(|(name, p)| {
            let deps = p
                .settings
                .depends
                .iter()
                .filter(|d| prepared.contains_key(*d) && *d != name)
                .cloned()
                .collect();
            (name.clone(), deps)
        })
        .collect()
}

/// A dependency cycle is an error naming the services and the file that declares it.
fn check_cycles(prepared: &BTreeMap<String, Prepared>, deps: &Deps) -> Result<()> {
    let Some(cycle) = graph::find_cycle(deps) else {
        return Ok(());
    };
    let first = &cycle[0];
    let origin = prepared
        .get(first)
        .map(|p| p.config.origin_note("service_depends"))
        .unwrap_or_default();
    Err(Error::config(format!(
        "dependency cycle in service_depends: {}{origin}",
        cycle.join(" → ")
    ))
    .with_service(first)
    .with_hint("remove one of these dependencies"))
}

/// Every service of `names` prepared, with every problem `start` would meet before its
/// first process: what `start` refuses and `check` reports are the same list.
fn audited(session: &mut Session, names: &[String]) -> Preparation {
    let mut preparation = prepare(session, names);
    preparation.audit(session);
    let deps = dependency_graph(&preparation.prepared);
    if let Err(e) = check_cycles(&preparation.prepared, &deps) {
        let name = e.service.clone().unwrap_or_default();
        preparation.add(&name, Stage::Audit, e);
    }
    preparation
}

/// Split prepared results into the good ones and the errors.
fn partition(
    prepared: BTreeMap<String, Result<Prepared>>,
) -> (BTreeMap<String, Prepared>, Results<Outcome>) {
    let mut good = BTreeMap::new();
    let mut bad = Vec::new();
    for (name, result) in prepared {
        match result {
            Ok(p) => {
                good.insert(name, p);
            }
            Err(e) => bad.push((name, Err(e))),
        }
    }
    (good, bad)
}

fn in_order(deps: &Deps, mut results: BTreeMap<String, Result<Outcome>>) -> Results<Outcome> {
    graph::order(deps)
        .into_iter()
        .filter_map(|n| results.remove(&n).map(|r| (n, r)))
        .collect()
}

/// start: the named services (or the role's) and what they depend on, dependencies
/// first and independent services in parallel.
pub fn start(
    session: &mut Session,
    names: &[String],
    progress: Progress,
) -> Result<(Results<Outcome>, Vec<String>)> {
    // SIGTERM, SIGHUP and SIGINT finish what began and start nothing new (run_forward).
    let targets = session.targets(names)?;
    let all = session.with_dependencies(&targets)?;
    let (results, mut warnings) = run_forward(
        session,
        &all,
        progress,
        "started",
        |playpen, good, deps, name, census| {
            let p = &good[name];
            for dep in deps.get(name).into_iter().flatten() {
                progress(name, Step::Waiting(std::slice::from_ref(dep)));
                wait_ready(playpen, &good[dep], p)?;
                progress(name, Step::Started);
            }
            lifecycle::start_with(playpen, p, census, lifecycle::OutputTo::File)
        },
    )?;
    warnings.extend(playpens::note(session));
    Ok((results, warnings))
}

/// restart: each named service (or the role's), dependencies first.
pub fn restart(
    session: &mut Session,
    names: &[String],
    progress: Progress,
) -> Result<(Results<Outcome>, Vec<String>)> {
    let targets = session.targets(names)?;
    run_forward(
        session,
        &targets,
        progress,
        "restarted",
        |playpen, good, _, name, census| {
            lifecycle::restart_with(playpen, &good[name], census, lifecycle::OutputTo::File)
        },
    )
}

/// What start and restart share: strict preparation (nothing runs unless every service
/// is well configured), validation, cycle check, then `action` for each service in
/// dependency order, in parallel where the order allows.
///
/// SIGTERM, SIGHUP and SIGINT do not kill the command half-way (a process spawned and
/// not yet on record would be lost): the starts in flight finish and are recorded,
/// nothing new begins, and the services not started say why (see `interrupt`).
fn run_forward(
    session: &mut Session,
    services: &[String],
    progress: Progress,
    verb: &str,
    action: impl Fn(&Playpen, &BTreeMap<String, Prepared>, &Deps, &str, &Lazy) -> Result<Outcome> + Sync,
) -> Result<(Results<Outcome>, Vec<String>)> {
    let _deferred = interrupt::Deferred::install();
    let (prepared, mut warnings) = audited(session, services).strict();
    let (good, bad) = partition(prepared);
    if !bad.is_empty() {
        return Ok((bad, warnings));
    }
    let deps = dependency_graph(&good);
    session.playpen.ensure_var()?;
    let playpen = session.playpen.clone();
    let census = Lazy::new(&playpen);
    announce(progress, &deps, Direction::Forward);
    let results = graph::run_parallel(
        &deps,
        Direction::Forward,
        |name| {
            progress(name, Step::Started);
            let result = interrupt::check(name, verb)
                .and_then(|()| action(&playpen, &good, &deps, name, &census));
            forget_upgrade(&playpen, name, &result);
            progress(name, Step::Finished(&result));
            result
        },
        |name, failed| {
            let err = Error::new(
                ErrorKind::NotAttempted,
                format!("not {verb} because {failed}, which it depends on, failed"),
            )
            .with_service(name)
            .with_hint(format!(
                "fix {failed} (its error is above), then run this again"
            ));
            progress(name, Step::Finished(&Err(err.clone())));
            err
        },
    );
    let results = in_order(&deps, results);
    if let Some(sig) = interrupt::received()
        && results.iter().all(|(_, r)| r.is_ok())
    {
        warnings.push(format!(
            "servicectl received {} after every service had begun; each was finished and is on record",
            sig.as_str()
        ));
    }
    Ok((results, warnings))
}

/// A fresh process has seen SERVICE_UPGRADED=1: the mark has done its job.
fn forget_upgrade(playpen: &Playpen, name: &str, result: &Result<Outcome>) {
    if matches!(
        result,
        Ok(Outcome::Started { .. } | Outcome::Restarted { .. } | Outcome::Reloaded { .. })
    ) {
        crate::playpen::marks::clear_mark(playpen, name);
    }
}

/// Wait until a dependency answers its ping (or, without a ping, runs).
fn wait_ready(playpen: &Playpen, dep: &Prepared, dependant: &Prepared) -> Result<()> {
    // A one-shot's start returned once it was done (this command started it first).
    if dep.settings.service_type == crate::config::settings::ServiceType::Oneshot {
        return Ok(());
    }
    let timeout = dependant.settings.depends_timeout;
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let result = status::ping(playpen, dep, Some(left.max(Duration::from_millis(100))))?;
        if result.ok {
            return Ok(());
        }
        interrupt::check(dependant.name(), "started")?;
        if Instant::now() >= deadline {
            return Err(Error::runtime(format!(
                "not started: {} did not become ready within {:.0} s ({} said: {})",
                dep.name(),
                timeout.as_secs_f64(),
                result.by,
                result.detail
            ))
            .with_service(dependant.name())
            .with_hint(format!(
                "check `servicectl status {}` and its output file",
                dep.name()
            )));
        }
        // Readiness has no notification without the supervisor: back off gently.
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(500));
    }
}

/// stop: the named services (or the role's), dependants first.
pub fn stop(
    session: &mut Session,
    names: &[String],
    progress: Progress,
) -> Result<(Results<Outcome>, Vec<String>)> {
    let targets = session.targets(names)?;
    // One scan of the playpen's processes for the whole command: stop leaves none of a
    // service's processes behind, also those that no file names.
    let census = Lazy::new(&session.playpen);
    // What is not running (nor a done one-shot) needs no config evaluated to be
    // "already stopped".
    let (active, idle): (Vec<String>, Vec<String>) = targets.into_iter().partition(|name| {
        !matches!(
            pidfile::observe(&session.playpen, name),
            Ok((crate::process::pidfile::Observed::Stopped, _))
        ) || census.get().of_service(name).next().is_some()
            || session.playpen.done_file(name).exists()
    });
    let (prepared, warnings) = prepare(session, &active).lenient();
    let (good, mut bad) = partition(prepared);
    for name in idle {
        let result = Ok(Outcome::AlreadyStopped);
        progress(&name, Step::Finished(&result));
        bad.push((name, result));
    }
    let deps = dependency_graph(&good);
    let acyclic = graph::find_cycle(&deps).is_none();
    // A cycle must not prevent stopping: fall back to stopping everything at once.
    let deps_used: Deps = if acyclic {
        deps.clone()
    } else {
        deps.keys().map(|k| (k.clone(), Vec::new())).collect()
    };
    let playpen = session.playpen.clone();
    announce(progress, &deps_used, Direction::Reverse);
    let results = graph::run_parallel(
        &deps_used,
        Direction::Reverse,
        |name| {
            progress(name, Step::Started);
            let result = lifecycle::stop_with(&playpen, &good[name], &census);
            progress(name, Step::Finished(&result));
            result
        },
        |name, failed| {
            let err = Error::new(
                ErrorKind::NotAttempted,
                format!("not stopped because {failed}, which depends on it, failed to stop"),
            )
            .with_service(name)
            .with_hint(format!("stop {failed} first (its error is above)"));
            progress(name, Step::Finished(&Err(err.clone())));
            err
        },
    );
    let mut ordered = in_order(&deps_used, results);
    ordered.reverse();
    ordered.extend(bad);
    Ok((ordered, warnings))
}

/// status: from files only (no config evaluated when the role cache is fresh).
pub fn status(session: &mut Session, names: &[String]) -> Result<Vec<ServiceStatus>> {
    let targets = session.targets_cached(names)?;
    status::status(&session.playpen, &targets)
}

/// ping every named service (or the role's), in parallel.
pub fn ping(session: &mut Session, names: &[String]) -> Result<(Results<PingResult>, Vec<String>)> {
    let targets = session.targets(names)?;
    let (prepared, warnings) = prepare(session, &targets).lenient();
    let playpen = session.playpen.clone();
    let mut results: Results<PingResult> = Vec::new();
    let mut good = BTreeMap::new();
    for (name, result) in prepared {
        match result {
            Ok(p) => {
                good.insert(name, p);
            }
            Err(e) => results.push((name, Err(e))),
        }
    }
    let independent: Deps = good.keys().map(|k| (k.clone(), Vec::new())).collect();
    let pinged = graph::run_parallel(
        &independent,
        Direction::Forward,
        |name| status::ping(&playpen, &good[name], None),
        |_, _| Error::runtime("unreachable"),
    );
    let mut ordered: Results<PingResult> = targets
        .iter()
        .filter_map(|n| pinged.get(n).map(|r| (n.clone(), r.clone())))
        .collect();
    ordered.extend(results);
    Ok((ordered, warnings))
}

/// One finding of `check`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Finding {
    pub service: String,
    pub ok: bool,
    pub problems: Vec<String>,
    pub warnings: Vec<String>,
}

/// check: everything `start` would verify, without starting or writing anything.
pub fn check(session: &mut Session, names: &[String], all: bool) -> Result<Vec<Finding>> {
    let targets = if all && names.is_empty() {
        session.catalog.names().map(str::to_string).collect()
    } else {
        session.targets(names)?
    };
    let targets = session.with_dependencies(&targets)?;
    let preparation = audited(session, &targets);
    let mut findings: BTreeMap<String, Finding> = targets
        .iter()
        .map(|n| {
            let warnings = preparation
                .warnings
                .iter()
                .filter(|w| w.starts_with(&format!("{n}:")))
                .cloned()
                .collect();
            let problems: Vec<String> = preparation
                .problems
                .get(n)
                .into_iter()
                .flatten()
                .map(|(_, e)| e.detail())
                .chain(preparation.unknown.get(n).map(Error::detail))
                .collect();
            let finding = Finding {
                service: n.clone(),
                ok: problems.is_empty(),
                problems,
                warnings,
            };
            (n.clone(), finding)
        })
        .collect();
    Ok(targets.iter().filter_map(|n| findings.remove(n)).collect())
}

/// print-config: the evaluated configuration of one service with origins.
pub fn print_config(session: &mut Session, name: &str) -> Result<Prepared> {
    session.id(name)?;
    session.config(name)?;
    let (mut prepared, _) = prepare(session, &[name.to_string()]).lenient();
    prepared.remove(name).unwrap_or_else(|| {
        Err(Error::new(ErrorKind::UnknownService, "unknown service").with_service(name))
    })
}

/// What `env` shows: an environment (values are bytes) whose JSON form keeps every value
/// (a string when it is UTF-8, else `{"lossy", "bytes"}`: see config::bytes). It reads
/// as the [`Env`] it holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Environment(pub Env);

impl std::ops::Deref for Environment {
    type Target = Env;
    fn deref(&self) -> &Env {
        &self.0
    }
}

impl serde::Serialize for Environment {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        crate::config::bytes::serialize_env(&self.0, s)
    }
}

/// env: the exported environment of the playpen (with every typed port of the role's
/// services), or of one service.
pub fn environment(
    session: &mut Session,
    service: Option<&str>,
    inherited_too: bool,
) -> Result<Environment> {
    // What servicectl's own environment already holds is noise unless asked for.
    let added = |vars: &crate::config::Vars, name: &str| {
        inherited_too
            || vars
                .get(name)
                .is_none_or(|v| v.origin != crate::config::Origin::Environment)
    };
    match service {
        Some(name) => {
            let prepared = print_config(session, name)?;
            Ok(Environment(
                prepared
                    .env
                    .into_iter()
                    .filter(|(k, _)| added(&prepared.config.vars, k))
                    .collect(),
            ))
        }
        None => {
            let playpen = session.playpen.clone();
            let common = session.shell()?.common()?;
            let mut env: Env = common
                .vars
                .iter()
                .filter(|(k, v)| v.exported && added(&common.vars, k))
                .map(|(k, v)| (k.clone(), v.value.clone()))
                .collect();
            env.extend(crate::config::playpen_environment(&playpen, &common.role));
            // Every typed port of the role's services (SPEC §12.1: what `run` gives its
            // command): a script that sources this reaches them all. A service whose
            // configuration has problems adds what resolved.
            let role = session
                .role_targets_installed()
                .map(|(installed, _)| installed)
                .unwrap_or_default();
            for resolution in crate::service::prepare::prepare(session, &role).resolutions {
                for (name, port) in resolution.ports {
                    if !env.contains_key(&name) {
                        env.insert(name, port.to_string().into());
                    }
                }
            }
            Ok(Environment(env))
        }
    }
}

/// missing-env: one service's unset required variables.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Missing {
    pub service: String,
    pub missing: Vec<envars::VarSpec>,
}

/// The services missing-env looks at: the names, else the role's, else every
/// installed service (a fresh playpen has no playpen_services yet).
pub fn missing_env(session: &mut Session, names: &[String]) -> Result<Vec<Missing>> {
    let targets = match session.targets(names) {
        Ok(t) => t,
        Err(e) if names.is_empty() && e.kind == ErrorKind::NoServicesListed => {
            session.catalog.names().map(str::to_string).collect()
        }
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for name in targets {
        let config = session.config(&name)?;
        let resolution = envars::resolve(&config);
        out.push(Missing {
            service: name,
            missing: resolution.missing,
        });
    }
    Ok(out)
}

/// sub-conf: render the given templates (or the service's service_config_files) with
/// the service's environment, or the playpen's when no service is named.
pub fn sub_conf(
    session: &mut Session,
    service: Option<&str>,
    files: &[String],
) -> Result<Vec<std::path::PathBuf>> {
    let playpen = session.playpen.clone();
    match service {
        Some(name) => {
            let prepared = print_config(session, name)?;
            let resolution_error = envars::resolve(&prepared.config).to_error();
            if let Some(e) = resolution_error {
                return Err(e);
            }
            // A bad setting must not render with its default in its place.
            crate::config::settings::Settings::parse(&prepared.config)?;
            let style = prepared.settings.config_style;
            let files: Vec<String> = if files.is_empty() {
                prepared.settings.config_files.clone()
            } else {
                files.to_vec()
            };
            if files.is_empty() {
                return Err(
                    Error::config("no templates named and service_config_files is empty")
                        .with_service(name)
                        .with_hint(
                            "name the templates: servicectl sub-conf --service NAME etc/FILE",
                        ),
                );
            }
            template::render_all(&playpen, &files, &prepared.env, style)
                .map_err(|e| e.with_service(name))
        }
        None => {
            if files.is_empty() {
                return Err(Error::config("no templates named").with_hint("name the templates (servicectl sub-conf etc/FILE …) or a service (--service NAME)"));
            }
            let env = environment(session, None, true)?;
            template::render_all(&playpen, files, &env, template::Style::Underscores)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::settings::Settings;
    use crate::config::{Origin, ServiceConfig, Value, Vars};
    use crate::playpen::catalog::ServiceId;
    use std::path::PathBuf;
    use std::sync::Arc;

    fn prepared(name: &str, depends: &[&str]) -> (String, Prepared) {
        let mut vars = Vars::new();
        vars.insert(
            "service_depends".into(),
            Value {
                value: depends.join(" ").into(),
                exported: false,
                origin: Origin::File(PathBuf::from(format!("/p/services/{name}/config"))),
            },
        );
        let config = ServiceConfig {
            id: ServiceId {
                name: name.into(),
                version: None,
            },
            fragments: vec![PathBuf::from(format!("/p/services/{name}/config"))],
            vars,
        };
        let settings = Settings {
            depends: depends.iter().map(|d| d.to_string()).collect(),
            ..Settings::default()
        };
        let p = Prepared::new(
            Arc::new(config),
            Arc::new(settings),
            Default::default(),
            Vec::new(),
        );
        (name.to_string(), p)
    }

    #[test]
    fn the_graph_keeps_only_dependencies_being_acted_on() {
        let all: BTreeMap<String, Prepared> = [
            prepared("web", &["db", "cache", "web"]),
            prepared("db", &["elsewhere"]),
            prepared("cache", &["db"]),
        ]
        .into_iter()
        .collect();
        let deps = dependency_graph(&all);
        assert_eq!(
            deps["web"],
            ["db", "cache"],
            "itself and unknown names are left out"
        );
        assert!(deps["db"].is_empty());
        assert_eq!(graph::order(&deps), ["db", "cache", "web"]);
        check_cycles(&all, &deps).unwrap();
    }

    #[test]
    fn a_cycle_names_the_services_and_the_file_that_declares_it() {
        let all: BTreeMap<String, Prepared> = [prepared("a", &["b"]), prepared("b", &["a"])]
            .into_iter()
            .collect();
        let err = check_cycles(&all, &dependency_graph(&all)).unwrap_err();
        assert_eq!(err.service.as_deref(), Some("a"));
        assert!(err.message.contains("a → b → a"), "{}", err.message);
        assert!(
            err.message.contains("/p/services/a/config"),
            "{}",
            err.message
        );
    }
}

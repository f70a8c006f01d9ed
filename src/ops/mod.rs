//! The commands, as library calls: each takes a session and names, does the work in
//! dependency order, and returns per-service results for `report` to show.

pub mod graph;
pub mod package;
pub mod upgrade;

use crate::config::envars;
use crate::config::session::Session;
use crate::config::template;
use crate::error::{Error, ErrorKind, Result};
use crate::playpen::Playpen;
use crate::process::pidfile;
use crate::service::lifecycle::{self, Outcome};
use crate::service::prepare::{Prepared, port_problems, prepare};
use crate::service::status::{self, PingResult, ServiceStatus};
use graph::{Deps, Direction};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Called as each service finishes, for progress output.
pub type Progress<'a> = &'a (dyn Fn(&str, &Result<Outcome>) + Sync);

/// Per-service results in the order the services were acted on.
pub type Results<T> = Vec<(String, Result<T>)>;

/// The dependency graph of `names`, restricted to them.
pub fn dependency_graph(prepared: &BTreeMap<String, Prepared>) -> Deps {
    prepared
        .iter()
        .map(|(name, p)| {
            let deps = p
                .config
                .list("service_depends")
                .into_iter()
                .filter(|d| prepared.contains_key(d) && d != name)
                .collect();
            (name.clone(), deps)
        })
        .collect()
}

/// Services of one command whose linkfarm symlinks would share a name but point at
/// different programs (a common run name): they would overwrite each other's symlink.
fn shared_links(playpen: &Playpen, good: &BTreeMap<String, Prepared>) -> Results<Outcome> {
    let mut by_link: BTreeMap<String, Vec<(&str, std::path::PathBuf)>> = BTreeMap::new();
    for (name, p) in good {
        if let Some((link, program)) = lifecycle::planned_link(playpen, p) {
            by_link.entry(link).or_default().push((name, program));
        }
    }
    let mut bad = Vec::new();
    for (link, users) in by_link {
        let differ = users.iter().any(|(_, p)| *p != users[0].1);
        if !differ {
            continue;
        }
        let who: Vec<String> = users
            .iter()
            .map(|(n, p)| format!("{n} ({})", p.display()))
            .collect();
        for (name, _) in &users {
            bad.push((
                name.to_string(),
                Err(Error::config(format!(
                    "the run name {link:?} is shared by {}, which run different programs",
                    who.join(" and ")
                ))
                .with_service(*name)
                .with_hint("give each its own service_run_name")),
            ));
        }
    }
    bad
}

/// A dependency cycle is an error naming the services and the file that declares it.
fn check_cycles(prepared: &BTreeMap<String, Prepared>, deps: &Deps) -> Result<()> {
    graph::check_cycles(deps).map_err(|mut e| {
        if let Some(p) = e.service.as_ref().and_then(|s| prepared.get(s)) {
            e.message.push_str(&p.config.origin_note("service_depends"));
        }
        e
    })
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
    let targets = session.targets(names)?;
    let all = session.with_dependencies(&targets)?;
    run_forward(
        session,
        &all,
        progress,
        "started",
        |playpen, good, deps, name| {
            let p = &good[name];
            for dep in deps.get(name).into_iter().flatten() {
                wait_ready(playpen, &good[dep], p)?;
            }
            lifecycle::start(playpen, p)
        },
    )
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
        |playpen, good, _, name| lifecycle::restart(playpen, &good[name]),
    )
}

/// What start and restart share: strict preparation (nothing runs unless every service
/// is well configured), validation, cycle check, then `action` for each service in
/// dependency order, in parallel where the order allows.
fn run_forward(
    session: &mut Session,
    services: &[String],
    progress: Progress,
    verb: &str,
    action: impl Fn(&Playpen, &BTreeMap<String, Prepared>, &Deps, &str) -> Result<Outcome> + Sync,
) -> Result<(Results<Outcome>, Vec<String>)> {
    let (prepared, warnings) = prepare(session, services).strict(session);
    let (good, mut bad) = partition(prepared);
    if bad.is_empty() {
        for p in good.values() {
            if let Err(e) = lifecycle::validate(&session.playpen, p) {
                bad.push((p.name().to_string(), Err(e)));
            }
        }
    }
    if bad.is_empty() {
        bad = shared_links(&session.playpen, &good);
    }
    if !bad.is_empty() {
        return Ok((bad, warnings));
    }
    let deps = dependency_graph(&good);
    check_cycles(&good, &deps)?;
    session.playpen.ensure_var()?;
    let playpen = session.playpen.clone();
    let results = graph::run_parallel(
        &deps,
        Direction::Forward,
        |name| {
            let result = action(&playpen, &good, &deps, name);
            forget_upgrade(&playpen, name, &result);
            progress(name, &result);
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
            progress(name, &Err(err.clone()));
            err
        },
    );
    Ok((in_order(&deps, results), warnings))
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
    let timeout = dependant.config.seconds("service_depends_timeout", 30.0)?;
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let result = status::ping(playpen, dep, Some(left.max(Duration::from_millis(100))))?;
        if result.ok {
            return Ok(());
        }
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
    // What is not running needs no config evaluated to be "already stopped".
    let (active, idle): (Vec<String>, Vec<String>) = targets.into_iter().partition(|name| {
        !matches!(
            pidfile::observe(&session.playpen, name),
            Ok((crate::process::pidfile::Observed::Stopped, _))
        )
    });
    let (prepared, warnings) = prepare(session, &active).lenient();
    let (good, mut bad) = partition(prepared);
    for name in idle {
        let result = Ok(Outcome::AlreadyStopped);
        progress(&name, &result);
        bad.push((name, result));
    }
    let deps = dependency_graph(&good);
    let acyclic = graph::check_cycles(&deps).is_ok();
    // A cycle must not prevent stopping: fall back to stopping everything at once.
    let deps_used: Deps = if acyclic {
        deps.clone()
    } else {
        deps.keys().map(|k| (k.clone(), Vec::new())).collect()
    };
    let playpen = session.playpen.clone();
    let results = graph::run_parallel(
        &deps_used,
        Direction::Reverse,
        |name| {
            let result = lifecycle::stop(&playpen, &good[name]);
            progress(name, &result);
            result
        },
        |name, failed| {
            let err = Error::new(
                ErrorKind::NotAttempted,
                format!("not stopped because {failed}, which depends on it, failed to stop"),
            )
            .with_service(name)
            .with_hint(format!("stop {failed} first (its error is above)"));
            progress(name, &Err(err.clone()));
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
    let preparation = prepare(session, &targets);
    let mut findings: BTreeMap<String, Finding> = targets
        .iter()
        .map(|n| {
            let warnings = preparation
                .warnings
                .iter()
                .filter(|w| w.starts_with(&format!("{n}:")))
                .cloned()
                .collect();
            let finding = Finding {
                service: n.clone(),
                ok: true,
                problems: Vec::new(),
                warnings,
            };
            (n.clone(), finding)
        })
        .collect();
    fn problem(findings: &mut BTreeMap<String, Finding>, name: &str, err: &Error) {
        if let Some(f) = findings.get_mut(name) {
            f.ok = false;
            let mut e = err.clone();
            e.service = None;
            f.problems.push(e.to_string());
        }
    }
    for (name, err) in preparation.problems.iter().chain(&preparation.unknown) {
        problem(&mut findings, name, err);
    }
    let names: Vec<String> = preparation.prepared.keys().cloned().collect();
    for (name, err) in port_problems(session, &names, &preparation.resolutions) {
        problem(&mut findings, &name, &err);
    }
    // A config that failed to evaluate was reported above; its stand-in has nothing to validate.
    let good: BTreeMap<String, Prepared> = preparation
        .prepared
        .into_iter()
        .filter(|(_, p)| !p.config.is_stand_in())
        .collect();
    for (name, p) in &good {
        if let Err(e) = lifecycle::validate(&session.playpen, p) {
            problem(&mut findings, name, &e);
        }
        if let Err(e) = check_templates(session, p) {
            problem(&mut findings, name, &e);
        }
    }
    if let Err(e) = check_cycles(&good, &dependency_graph(&good)) {
        let name = e.service.clone().unwrap_or_default();
        problem(&mut findings, &name, &e);
    }
    Ok(targets.iter().filter_map(|n| findings.remove(n)).collect())
}

/// Render every template in memory: finds missing templates and unset placeholders.
fn check_templates(session: &Session, p: &Prepared) -> Result<()> {
    let style = template::Style::from_config(&p.config)?;
    template::check_all(
        &session.playpen,
        &p.config.list("service_config_files"),
        &p.env,
        style,
    )
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

/// env: the exported environment of the playpen, or of one service.
pub fn environment(
    session: &mut Session,
    service: Option<&str>,
    inherited_too: bool,
) -> Result<BTreeMap<String, String>> {
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
            Ok(prepared
                .env
                .into_iter()
                .filter(|(k, _)| added(&prepared.config.vars, k))
                .collect())
        }
        None => {
            let playpen = session.playpen.clone();
            let common = session.shell()?.common()?;
            let mut env: BTreeMap<String, String> = common
                .vars
                .iter()
                .filter(|(k, v)| v.exported && added(&common.vars, k))
                .map(|(k, v)| (k.clone(), v.value.clone()))
                .collect();
            env.extend(crate::config::playpen_environment(&playpen, &common.role));
            Ok(env)
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
            let style = template::Style::from_config(&prepared.config)?;
            let files: Vec<String> = if files.is_empty() {
                prepared.config.list("service_config_files")
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

//! Upgrades: `pre-upgrade PKG…` stops what must not run while PKG changes and
//! records it; `post-upgrade PKG…` starts those again and restarts what must restart.
//! A service that kept running while its package (or one it depends on) changed is
//! marked, so its next start sees SERVICE_UPGRADED=1.

use crate::config::session::Session;
use crate::error::{Error, Result};
use crate::ops;
use crate::playpen::Playpen;
use crate::playpen::fsutil;
use crate::playpen::marks::{clear_mark, is_marked, mark};
use crate::process::pidfile;
use crate::service::lifecycle::Outcome;
use std::path::PathBuf;

/// What an upgrade step did, service by service, filed by each one's [`Outcome`].
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Report {
    pub stopped: Vec<String>,
    pub started: Vec<String>,
    /// Restarted: stopped and started again, or their service_restart script ran.
    pub restarted: Vec<String>,
    /// Kept their process and re-read their configuration on SIGHUP (service_hup=1).
    pub reloaded: Vec<String>,
    /// Left running during the upgrade, marked SERVICE_UPGRADED for their next start.
    pub marked: Vec<String>,
    pub warnings: Vec<String>,
    /// Marked by this pre-upgrade (not marked before): unmarked again by `abort`.
    #[serde(skip)]
    pub newly_marked: Vec<String>,
}

fn record_path(playpen: &Playpen, package: &str) -> PathBuf {
    playpen
        .state_dir()
        .join("upgrade")
        .join(format!("{package}.stopped"))
}

/// How a service relates to the packages being upgraded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Relation {
    Own,
    Dependent,
    None,
}

fn relation(session: &mut Session, service: &str, packages: &[String]) -> Relation {
    let playpen = session.playpen.clone();
    let own_package = session
        .id(service)
        .ok()
        .and_then(|id| crate::playpen::catalog::package_of(&playpen, &id));
    if own_package.as_ref().is_some_and(|p| packages.contains(p)) {
        return Relation::Own;
    }
    let Ok((settings, _)) = session.settings(service) else {
        return Relation::None;
    };
    if settings.packages.iter().any(|p| packages.contains(p)) {
        return Relation::Dependent;
    }
    // Depending on a service of an upgraded package counts too.
    let installed = crate::playpen::catalog::installed_packages(&playpen);
    let upgraded_services: Vec<&String> = packages
        .iter()
        .filter_map(|p| installed.get(p))
        .flat_map(|p| &p.services)
        .collect();
    if settings
        .depends
        .iter()
        .any(|d| upgraded_services.contains(&d))
    {
        Relation::Dependent
    } else {
        Relation::None
    }
}

fn running(playpen: &Playpen, service: &str) -> bool {
    pidfile::observe(playpen, service)
        .map(|(o, _)| o.is_running())
        .unwrap_or(false)
}

/// Package names become file names (the pre-upgrade record): the one name rule first.
fn check_packages(packages: &[String]) -> Result<()> {
    match packages
        .iter()
        .find_map(|p| crate::playpen::names::problem(p).map(|why| (p, why)))
    {
        None => Ok(()),
        Some((package, why)) => Err(Error::config(format!(
            "{} is not a package name ({why})",
            crate::playpen::names::shown(package)
        ))
        .with_hint(
            "name the package as its .services file does: ext/services/PACKAGE-VERSION.services",
        )),
    }
}

pub fn pre_upgrade(session: &mut Session, packages: &[String]) -> Result<Report> {
    check_packages(packages)?;
    let playpen = session.playpen.clone();
    let names: Vec<String> = session.catalog.names().map(str::to_string).collect();
    let mut report = Report::default();
    let mut to_stop = Vec::new();
    for name in &names {
        if !running(&playpen, name) {
            continue;
        }
        let relation = relation(session, name, packages);
        if relation == Relation::None {
            continue;
        }
        // A service whose config fails now is stopped: the safe side of an upgrade.
        let must_stop = session
            .settings(name)
            .map_or(true, |(s, _)| match relation {
                Relation::Own => s.upgrade.stop_before_upgrade,
                _ => s.upgrade.stop_before_dep_upgrade,
            });
        if must_stop {
            to_stop.push(name.clone());
        } else {
            if !is_marked(&playpen, name) {
                report.newly_marked.push(name.clone());
            }
            mark(&playpen, name)?;
            report.marked.push(name.clone());
        }
    }
    let mut failure = None;
    if !to_stop.is_empty() {
        let (results, warnings) = ops::stop(session, &to_stop, &|_, _| {})?;
        report.warnings.extend(warnings);
        failure = report.collect(results).err();
    }
    // Record what was stopped even when something failed to stop, so that post-upgrade
    // brings it back; a second pre-upgrade adds to the record instead of replacing it.
    for package in packages {
        let path = record_path(&playpen, package);
        fsutil::ensure_dir(path.parent().expect("has parent"))?;
        let mut stopped: Vec<String> = fsutil::read_optional(&path)?
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect();
        stopped.extend(report.stopped.iter().cloned());
        stopped.sort();
        stopped.dedup();
        let text: String = stopped.iter().map(|s| format!("{s}\n")).collect();
        fsutil::write_atomic(&path, text.as_bytes(), Some(0o644))?;
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(report),
    }
}

pub fn post_upgrade(session: &mut Session, packages: &[String]) -> Result<Report> {
    check_packages(packages)?;
    let playpen = session.playpen.clone();
    // The package's files changed: look at the playpen afresh.
    *session = Session::open(playpen.clone())?;
    let mut report = Report::default();
    let mut to_start: Vec<String> = Vec::new();
    for package in packages {
        let path = record_path(&playpen, package);
        match fsutil::read_optional(&path)? {
            Some(text) => {
                to_start.extend(text.lines().filter(|l| !l.is_empty()).map(str::to_string));
                let _ = std::fs::remove_file(&path);
            }
            None => report.warnings.push(format!(
                "{package}: no pre-upgrade record ({}); nothing was stopped for it, so nothing is started — only running services that must restart are restarted",
                path.display()
            )),
        }
    }
    to_start.sort();
    to_start.dedup();
    to_start.retain(|s| session.catalog.contains(s));
    let names: Vec<String> = session.catalog.names().map(str::to_string).collect();
    let mut to_restart = Vec::new();
    for name in &names {
        if to_start.contains(name) || !running(&playpen, name) {
            continue;
        }
        if matches!(relation(session, name, packages), Relation::None) {
            continue;
        }
        // It ran through the upgrade: its next start is an upgraded one.
        mark(&playpen, name)?;
        let restart = session
            .settings(name)
            .map_or(true, |(s, _)| s.upgrade.restart_on_dep_upgrade);
        if restart {
            to_restart.push(name.clone());
        } else {
            report.marked.push(name.clone());
        }
    }
    if !to_start.is_empty() {
        let (results, warnings) = ops::start(session, &to_start, &|_, _| {})?;
        report.warnings.extend(warnings);
        report.collect(results)?;
    }
    if !to_restart.is_empty() {
        let (results, warnings) = ops::restart(session, &to_restart, &|_, _| {})?;
        report.warnings.extend(warnings);
        report.collect(results)?;
    }
    Ok(report)
}

/// Undo a pre-upgrade whose upgrade did not happen (the install failed and the previous
/// version is back in place): forget its records and marks, start what it stopped.
pub fn abort(session: &mut Session, packages: &[String], pre: &Report) -> Result<Report> {
    let playpen = session.playpen.clone();
    for package in packages {
        let _ = std::fs::remove_file(record_path(&playpen, package));
    }
    for name in &pre.newly_marked {
        clear_mark(&playpen, name);
    }
    let mut report = Report::default();
    let to_start: Vec<String> = pre
        .stopped
        .iter()
        .filter(|s| session.catalog.contains(s))
        .cloned()
        .collect();
    if !to_start.is_empty() {
        let (results, warnings) = ops::start(session, &to_start, &|_, _| {})?;
        report.warnings.extend(warnings);
        report.collect(results)?;
    }
    Ok(report)
}

impl Report {
    /// File each service under what its outcome says happened to it (a SIGHUP reload is
    /// not a restart); services left as they were are not listed. Every result is
    /// filed before the first error, if any, is returned.
    fn collect(&mut self, results: ops::Results<Outcome>) -> Result<()> {
        let mut first_error: Option<Error> = None;
        for (name, result) in results {
            match result {
                Ok(outcome) => self.file(name, &outcome),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn file(&mut self, name: String, outcome: &Outcome) {
        match outcome {
            Outcome::Started { .. } | Outcome::Done { .. } => self.started.push(name),
            Outcome::Restarted { .. } => self.restarted.push(name),
            Outcome::Reloaded { .. } => self.reloaded.push(name),
            Outcome::Stopped { .. } => self.stopped.push(name),
            Outcome::StoppedForFiledep { .. } => {
                // Stopped, and left stopped on purpose: say why.
                self.warnings.push(format!("{name}: {outcome}"));
                self.stopped.push(name);
            }
            Outcome::AlreadyRunning { .. }
            | Outcome::AlreadyStopped
            | Outcome::AlreadyDone { .. } => {}
        }
    }
}

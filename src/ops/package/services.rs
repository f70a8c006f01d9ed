//! new-service, remove-service and package remove: what a package manager calls from
//! its hooks.

use super::files::uninstall_files;
use crate::config::envars;
use crate::config::session::Session;
use crate::error::{Error, Result};
use crate::playpen::catalog::{self};
use crate::playpen::fsutil;
use crate::playpen::lock::ServiceLock;
use crate::playpen::registry;
use crate::process::census::Lazy;
use crate::process::pidfile::{self, StartRecord};
use crate::service::lifecycle::{self, Outcome};
use std::path::{Component, Path, PathBuf};

/// What new-service found.
#[derive(Debug, Default, serde::Serialize)]
pub struct NewService {
    pub service: String,
    pub newly_registered: bool,
    pub missing: Vec<String>,
    pub missing_script: String,
    pub in_role: bool,
}

/// new-service NAME: validate the config, create var/ directories, register.
pub fn new_service(session: &mut Session, name: &str) -> Result<NewService> {
    let playpen = session.playpen.clone();
    session.id(name)?;
    let config = session.config(name)?;
    let (settings, _) = session.settings(name)?;
    playpen.ensure_var()?;
    for rel in &settings.config_files {
        if let Some(parent) = Path::new(&rel)
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
        {
            let safe = parent
                .components()
                .all(|c| matches!(c, Component::Normal(_)));
            if safe {
                fsutil::ensure_dir(&playpen.var().join(parent))?;
            }
        }
    }
    let resolution = envars::resolve(&config);
    let service_type = settings.service_type.name().to_string();
    let newly_registered = registry::register(
        &playpen,
        registry::Entry {
            name: name.to_string(),
            service_type,
            enabled: true,
            details: Vec::new(),
        },
    )?;
    let in_role = session
        .role_services()
        .map(|s| s.iter().any(|n| n == name))
        .unwrap_or(false);
    Ok(NewService {
        service: name.to_string(),
        newly_registered,
        missing: resolution.missing.iter().map(|m| m.name.clone()).collect(),
        missing_script: if resolution.missing.is_empty() {
            String::new()
        } else {
            envars::missing_script(name, &resolution.missing)
        },
        in_role,
    })
}

/// What remove-service did.
#[derive(Debug, Default, serde::Serialize)]
pub struct Removed {
    pub service: String,
    pub stopped: bool,
    pub unregistered: bool,
    pub removed_files: Vec<PathBuf>,
}

/// remove-service NAME: stop it if running, drop registration, symlink, pidfile and
/// start record. Running it twice is not an error. The stop and the removal of its files
/// are one step under the service's lock: a start in between would have its files
/// removed under it and run off record; now it waits, and its process is on record.
pub fn remove_service(session: &mut Session, name: &str) -> Result<Removed> {
    let playpen = session.playpen.clone();
    let mut report = Removed {
        service: name.to_string(),
        ..Removed::default()
    };
    let census = Lazy::new(&playpen);
    let idle = || {
        matches!(
            pidfile::observe(&playpen, name),
            Ok((pidfile::Observed::Stopped, _))
        ) && census.get().of_service(name).next().is_none()
    };
    // `record`: the start record as it was before the stop (which removes it).
    let remove_files = |report: &mut Removed, record: Option<StartRecord>| -> Result<()> {
        report.unregistered = registry::unregister(&playpen, name)?;
        // The lock file stays: a concurrent servicectl may hold or be waiting on it, and
        // removing it would let two processes lock different files of the same name.
        let mut candidates = vec![playpen.pidfile(name), playpen.start_record(name)];
        // Only this playpen's symlink: a copied playpen's record names the original's.
        if let Some(link) = record
            .and_then(|r| r.symlink)
            .map(PathBuf::from)
            .filter(|l| l.parent() == Some(playpen.linkfarm().as_path()))
        {
            candidates.push(link);
        }
        for path in candidates {
            if std::fs::symlink_metadata(&path).is_ok() {
                std::fs::remove_file(&path)
                    .map_err(|e| Error::io("remove", &path, e).with_service(name))?;
                report.removed_files.push(path);
            }
        }
        Ok(())
    };
    if !session.catalog.contains(name) {
        let _lock = ServiceLock::acquire(&playpen, name)?;
        if let Ok((observed, _)) = pidfile::observe(&playpen, name)
            && let Some(pid) = observed.pid().filter(|_| observed.is_running())
        {
            return Err(Error::runtime(format!(
                "PID {pid} still runs for this service, but its package is gone"
            ))
            .with_service(name)
            .with_hint(format!(
                "stop it by hand (kill {pid}), then run remove-service again"
            )));
        }
        remove_files(&mut report, pidfile::read_record(&playpen, name))?;
        return Ok(report);
    }
    // Nothing of it runs: no config to evaluate (a broken one must not block removal).
    if idle() {
        let _lock = ServiceLock::acquire(&playpen, name)?;
        if idle() {
            remove_files(&mut report, pidfile::read_record(&playpen, name))?;
            return Ok(report);
        }
    }
    let (mut prepared, _) =
        crate::service::prepare::prepare(session, &[name.to_string()]).lenient();
    let prepared = prepared.remove(name).unwrap_or_else(|| {
        Err(
            Error::new(crate::error::ErrorKind::UnknownService, "unknown service")
                .with_service(name),
        )
    })?;
    let (outcome, ()) = lifecycle::stop_then(&playpen, &prepared, &census, |record| {
        remove_files(&mut report, record)
    })?;
    report.stopped = matches!(outcome, Outcome::Stopped { .. });
    Ok(report)
}

/// package remove NAME: remove-service for each service, then the package's files.
pub fn remove(session: &mut Session, name: &str) -> Result<Vec<Removed>> {
    let playpen = session.playpen.clone();
    let installed = catalog::installed_packages(&playpen);
    let Some(catalog::InstalledPackage { version, services }) = installed.get(name).cloned() else {
        return Err(Error::config(format!(
            "package {name} is not installed (no ext/services/{name}-VERSION.services)"
        ))
        .with_hint(format!(
            "installed packages: {}",
            installed.keys().cloned().collect::<Vec<_>>().join(", ")
        )));
    };
    let mut removed = Vec::new();
    for s in &services {
        removed.push(remove_service(session, s)?);
    }
    let id = format!("{name}-{version}");
    uninstall_files(&playpen, &id)?;
    for s in &services {
        let dir = playpen
            .ext()
            .join("services")
            .join(format!("{s}-{version}"));
        let _ = std::fs::remove_dir(&dir);
    }
    let _ = std::fs::remove_file(
        playpen
            .ext()
            .join("services")
            .join(format!("{id}.services")),
    );
    *session = Session::open(playpen)?;
    Ok(removed)
}

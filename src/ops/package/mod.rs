//! Service packages: `package install DIR` does what a package manager would —
//! copy the package into `ext/`, all or nothing — then `new-service` for each service;
//! `package remove NAME` undoes it. `new-service` and `remove-service` are what a real
//! package manager calls from its hooks.

use crate::config::session::Session;
use crate::error::{Error, Result};
use crate::ops::upgrade;
use crate::playpen::catalog::{self, split_package_id, valid_service_name};
use crate::playpen::fsutil;
use crate::playpen::registry;
use crate::process::pidfile::{self};
mod files;
mod services;

pub use services::{NewService, Removed, new_service, remove, remove_service};

use files::{
    Transaction, copy_entry, dirs_under, file_owners, install_files, read_manifest,
    remove_empty_parents,
};
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

/// Per-service scripts a package may carry as `$SERVICE-$VERSION.<kind>`.
const SCRIPT_KINDS: &[&str] = &[
    "pre-start",
    "post-start",
    "pre-stop",
    "post-stop",
    "ping",
    "restart",
];

/// A package directory, inspected.
#[derive(Debug, Clone)]
pub struct Package {
    pub dir: PathBuf,
    pub name: String,
    pub version: String,
    pub services: Vec<String>,
    /// destination relative to ext/ → source (one service's copy of a shared
    /// `$PACKAGE-$VERSION.config` per service: keyed by destination).
    files: BTreeMap<PathBuf, PathBuf>,
}

impl Package {
    pub fn id(&self) -> String {
        format!("{}-{}", self.name, self.version)
    }
}

fn bad_package(dir: &Path, what: String) -> Error {
    Error::config(format!("{}: {what}", dir.display()))
        .with_hint("fix the package directory (its layout is described in docs/packaging.md); nothing was installed")
}

/// Read a package directory and plan where each of its files goes.
pub fn inspect(dir: &Path) -> Result<Package> {
    let dir = std::fs::canonicalize(dir).map_err(|e| {
        Error::io("open package directory", dir, e).with_hint(
            "give the path of a package directory (the one holding PACKAGE-VERSION.services)",
        )
    })?;
    let entries: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| Error::io("read package directory", &dir, e))?
        .flatten()
        .map(|e| e.path())
        .collect();
    let services_files: Vec<&PathBuf> = entries
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "services") && p.is_file())
        .collect();
    let services_file = match services_files.as_slice() {
        [one] => *one,
        [] => {
            return Err(bad_package(
                &dir,
                "not a service package: no $PACKAGE-$VERSION.services file".into(),
            )
            .with_hint(
                "a service package lists its services, one per line, in PACKAGE-VERSION.services",
            ));
        }
        many => {
            return Err(bad_package(
                &dir,
                format!(
                    "several .services files ({}); a package has exactly one",
                    many.iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
    };
    let stem = services_file
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("");
    let text =
        std::fs::read_to_string(services_file).map_err(|e| Error::io("read", services_file, e))?;
    let services = catalog::parse_services_list(&text);
    // PACKAGE-VERSION splits after one of its listed services (`worker-2-1.0` listing
    // worker-2), else before a version its services' own files carry
    // (`duo-a-1.0-2.config`), else at the last `-` followed by a digit (the NAME-VERSION rule of docs/design.md).
    let carries = |service: &str, version: &str| {
        std::iter::once("config")
            .chain(SCRIPT_KINDS.iter().copied())
            .any(|kind| dir.join(format!("{service}-{version}.{kind}")).is_file())
    };
    let (name, version) = split_package_id(stem, &services, carries).ok_or_else(|| {
        bad_package(&dir, format!("{stem}.services is not named PACKAGE-VERSION.services (the version must start with a digit)"))
    })?;
    if !valid_service_name(name) || !valid_service_name(version) {
        return Err(bad_package(
            &dir,
            format!("invalid package name or version in {stem:?}"),
        ));
    }
    if services.is_empty() {
        return Err(bad_package(
            &dir,
            format!("{} lists no services", services_file.display()),
        ));
    }
    let mut files = BTreeMap::new();
    files.insert(
        PathBuf::from(format!("services/{stem}.services")),
        services_file.clone(),
    );
    for service in &services {
        if !valid_service_name(service) {
            return Err(bad_package(
                &dir,
                format!(
                    "{} names {service:?}, which is not a valid service name (letters, digits, - _ . +; no '/' or '..')",
                    services_file.display()
                ),
            ));
        }
        let own = dir.join(format!("{service}-{version}.config"));
        let shared = dir.join(format!("{stem}.config"));
        let config = if own.is_file() {
            own
        } else if shared.is_file() {
            shared
        } else {
            return Err(bad_package(
                &dir,
                format!(
                    "service {service} has no config (neither {} nor {})",
                    own.display(),
                    shared.display()
                ),
            )
            .with_service(service));
        };
        let service_dir = PathBuf::from(format!("services/{service}-{version}"));
        files.insert(service_dir.join("config"), config);
        for kind in SCRIPT_KINDS {
            let script = dir.join(format!("{service}-{version}.{kind}"));
            if script.is_file() {
                files.insert(service_dir.join(kind), script);
            }
        }
    }
    let profile = dir.join(format!("{stem}.profile"));
    if profile.is_file() {
        files.insert(
            PathBuf::from(format!("etc/profile.d/{stem}.profile")),
            profile,
        );
    }
    for entry in &entries {
        let meta = std::fs::symlink_metadata(entry).map_err(|e| Error::io("inspect", entry, e))?;
        if meta.is_dir() {
            collect_tree(&dir, entry, &mut files)?;
        } else if meta.file_type().is_symlink() {
            check_symlink(&dir, entry)?;
        }
    }
    Ok(Package {
        dir,
        name: name.to_string(),
        version: version.to_string(),
        services,
        files,
    })
}

/// Plan a subdirectory (etc/, bin/, share/, …) to the same path under ext/.
fn collect_tree(root: &Path, dir: &Path, files: &mut BTreeMap<PathBuf, PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir)
        .map_err(|e| Error::io("read", dir, e))?
        .flatten()
    {
        let path = entry.path();
        let meta = std::fs::symlink_metadata(&path).map_err(|e| Error::io("inspect", &path, e))?;
        if meta.file_type().is_symlink() {
            check_symlink(root, &path)?;
        } else if meta.is_dir() {
            collect_tree(root, &path, files)?;
            continue;
        } else if !meta.is_file() {
            return Err(bad_package(
                root,
                format!("{} is neither a file nor a directory", path.display()),
            ));
        }
        let rel = path.strip_prefix(root).expect("under root").to_path_buf();
        if let Some(other) = files.get(&rel) {
            return Err(bad_package(
                root,
                format!(
                    "{} and {} would both be installed as ext/{}",
                    other.display(),
                    path.display(),
                    rel.display()
                ),
            ));
        }
        files.insert(rel, path);
    }
    Ok(())
}

/// A symlink in a package must stay inside the package: relative, no escape.
fn check_symlink(root: &Path, link: &Path) -> Result<()> {
    let target = std::fs::read_link(link).map_err(|e| Error::io("read symlink", link, e))?;
    let escape = || {
        bad_package(
            root,
            format!(
                "symlink {} → {} would point outside ext/",
                link.display(),
                target.display()
            ),
        )
        .with_hint("package symlinks must be relative and stay inside the package")
    };
    if target.is_absolute() {
        return Err(escape());
    }
    let mut depth: i64 = link
        .parent()
        .and_then(|p| p.strip_prefix(root).ok())
        .map(|p| p.components().count() as i64)
        .unwrap_or(0);
    for component in target.components() {
        match component {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            _ => {}
        }
        if depth < 0 {
            return Err(escape());
        }
    }
    Ok(())
}

/// What happened during an install, for the report.
#[derive(Debug, Default, serde::Serialize)]
pub struct InstallReport {
    pub package: String,
    pub replaced: Option<String>,
    pub files: usize,
    pub services: Vec<NewService>,
    pub upgrade: Option<upgrade::Report>,
}

/// Install a package directory into the playpen, all or nothing.
pub fn install(session: &mut Session, dir: &Path) -> Result<InstallReport> {
    let package = inspect(dir)?;
    let playpen = session.playpen.clone();
    let installed = catalog::installed_packages(&playpen);
    // Two packages must not provide the same service.
    for (other, catalog::InstalledPackage { version, services }) in &installed {
        if *other == package.name {
            continue;
        }
        if let Some(s) = package.services.iter().find(|s| services.contains(s)) {
            return Err(Error::config(format!(
                "package {} provides service {s}, which package {other}-{version} already provides",
                package.id()
            ))
            .with_service(s)
            .with_hint(format!(
                "remove {other} first (`servicectl package remove {other}`)"
            )));
        }
    }
    let previous = installed
        .get(&package.name)
        .map(|p| format!("{}-{}", package.name, p.version));
    // A service of the same name that runs but is not ours (a project-local service).
    if previous.is_none() {
        for s in &package.services {
            if pidfile::observe(&playpen, s)
                .map(|(o, _)| o.is_running())
                .unwrap_or(false)
            {
                return Err(Error::runtime(format!(
                    "service {s} is running; installing package {} would change it underneath",
                    package.id()
                ))
                .with_service(s)
                .with_hint(format!("stop it first: servicectl stop {s}")));
            }
        }
    }
    let old_files: Vec<PathBuf> = previous
        .as_deref()
        .map(|id| read_manifest(&playpen, id))
        .unwrap_or_default();
    // Destinations must be free, or owned by the version being replaced.
    let owners = file_owners(&playpen);
    for dest in package.files.keys() {
        let full = playpen.ext().join(dest);
        if std::fs::symlink_metadata(&full).is_ok() && !old_files.contains(dest) {
            let owner = owners.get(dest).cloned();
            return Err(Error::config(format!(
                "{} already exists{}; package {} will not overwrite it",
                full.display(),
                owner
                    .map(|o| format!(" (installed by {o})"))
                    .unwrap_or_else(|| " and belongs to no package".into()),
                package.id()
            ))
            .with_hint("remove the conflicting file or package first"));
        }
    }
    fsutil::ensure_dir(&playpen.ext())?;
    let staging = tempfile::Builder::new()
        .prefix(".staging-")
        .tempdir_in(playpen.ext())
        .map_err(|e| Error::io("create a staging directory in", &playpen.ext(), e))?;
    for (dest, src) in &package.files {
        let staged = staging.path().join(dest);
        fsutil::ensure_dir(staged.parent().expect("has parent"))?;
        copy_entry(src, &staged)?;
    }
    // Restored as it was if the install fails (new-service re-registers, and must not
    // drop or change a registration that existed before).
    let registry_before = registry::load(&playpen)?;
    let dirs_before = dirs_under(&playpen.ext());
    let upgrade_report = match &previous {
        Some(_) => Some(upgrade::pre_upgrade(
            session,
            std::slice::from_ref(&package.name),
        )?),
        None => None,
    };
    // From here on: set the previous version aside, move the new one into place and
    // register its services; until committed, the transaction puts everything back.
    let mut transaction = Transaction {
        playpen: playpen.clone(),
        aside: staging.path().join(".previous"),
        moved: Vec::new(),
        saved: Vec::new(),
        registry_before,
        dirs_before,
        committed: false,
    };
    let mut services = Vec::new();
    let result = install_files(
        session,
        &package,
        previous.as_deref(),
        &old_files,
        staging.path(),
        &mut transaction,
    )
    .and_then(|()| {
        // A package whose config does not even evaluate is not installed.
        for s in &package.services {
            services.push(new_service(session, s)?);
        }
        Ok(())
    });
    if let Err(e) = result {
        drop(transaction);
        if let Ok(reopened) = Session::open(playpen.clone()) {
            *session = reopened;
        }
        let not_installed = format!(
            "package {} was not installed (ext/ and the registry are as before)",
            package.id()
        );
        // Nothing changed after all: start again what pre-upgrade stopped.
        let restarted = match &upgrade_report {
            Some(report) => upgrade::abort(session, std::slice::from_ref(&package.name), report)
                .err()
                .map(|again| format!("; the previous version is back in place, but restarting what pre-upgrade stopped failed: {again}")),
            None => None,
        };
        return Err(e.followed_by(format!("{not_installed}{}", restarted.unwrap_or_default())));
    }
    let saved = transaction.commit();
    // The previous version's files are gone for good: drop directories left empty.
    for f in &saved {
        remove_empty_parents(&playpen, &playpen.ext().join(f));
    }
    let upgrade_report = match upgrade_report {
        Some(pre) => {
            let mut post = upgrade::post_upgrade(session, std::slice::from_ref(&package.name))?;
            // One report for the whole upgrade: what pre-upgrade stopped (and anything
            // post-upgrade stopped), and its warnings.
            post.stopped.splice(0..0, pre.stopped);
            post.warnings.splice(0..0, pre.warnings);
            Some(post)
        }
        None => None,
    };
    Ok(InstallReport {
        package: package.id(),
        replaced: previous,
        files: package.files.len(),
        services,
        upgrade: upgrade_report,
    })
}

//! Service packages: `package install DIR` does what a package manager would —
//! copy the package into `ext/`, all or nothing — then `new-service` for each service;
//! `package remove NAME` undoes it. `new-service` and `remove-service` are what a real
//! package manager calls from its hooks.

use crate::config::envars;
use crate::config::session::Session;
use crate::error::{Error, Result};
use crate::ops::upgrade;
use crate::playpen::Playpen;
use crate::playpen::catalog::{self, split_package_id, valid_service_name};
use crate::playpen::fsutil;
use crate::playpen::lock::ServiceLock;
use crate::playpen::registry;
use crate::process::census::Lazy;
use crate::process::pidfile::{self, StartRecord};
use crate::service::lifecycle::{self, Outcome};
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

fn manifest_path(playpen: &Playpen, package_id: &str) -> PathBuf {
    playpen
        .ext()
        .join("services")
        .join(format!("{package_id}.files"))
}

fn read_manifest(playpen: &Playpen, package_id: &str) -> Vec<PathBuf> {
    std::fs::read_to_string(manifest_path(playpen, package_id))
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.is_empty())
        .map(PathBuf::from)
        .collect()
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

/// Set the previous version aside and move the staged package into `ext/`, recording
/// each step in the transaction.
fn install_files(
    session: &mut Session,
    package: &Package,
    previous: Option<&str>,
    old_files: &[PathBuf],
    staging: &Path,
    transaction: &mut Transaction,
) -> Result<()> {
    let playpen = session.playpen.clone();
    if let Some(prev) = previous {
        let mut old = old_files.to_vec();
        old.push(
            manifest_path(&playpen, prev)
                .strip_prefix(playpen.ext())
                .expect("under ext")
                .to_path_buf(),
        );
        for f in old {
            let full = playpen.ext().join(&f);
            if std::fs::symlink_metadata(&full).is_err() {
                continue;
            }
            let target = transaction.aside.join(&f);
            fsutil::ensure_dir(target.parent().expect("has parent"))?;
            std::fs::rename(&full, &target).map_err(|e| Error::io("set aside", &full, e))?;
            transaction.saved.push(f);
        }
    }
    for dest in package.files.keys() {
        let full = playpen.ext().join(dest);
        fsutil::ensure_dir(full.parent().expect("has parent"))?;
        std::fs::rename(staging.join(dest), &full)
            .map_err(|e| Error::io("move into place", &full, e))?;
        transaction.moved.push(full);
    }
    let manifest: String = package
        .files
        .keys()
        .map(|d| format!("{}\n", d.display()))
        .collect();
    let manifest_file = manifest_path(&playpen, &package.id());
    fsutil::write_atomic(&manifest_file, manifest.as_bytes(), Some(0o644))?;
    transaction.moved.push(manifest_file);
    // The catalog changed under the session.
    *session = Session::open(playpen)?;
    Ok(())
}

/// What an install changed in `ext/` and the registry; dropped before `commit`, it puts
/// everything back as it was.
struct Transaction {
    playpen: Playpen,
    /// Where the previous version's files wait (inside the staging directory).
    aside: PathBuf,
    /// Files moved into ext/, in order.
    moved: Vec<PathBuf>,
    /// The previous version's files set aside (relative to ext/).
    saved: Vec<PathBuf>,
    registry_before: Vec<registry::Entry>,
    dirs_before: std::collections::BTreeSet<PathBuf>,
    committed: bool,
}

impl Transaction {
    /// The install stands; returns the previous version's files, gone for good.
    fn commit(mut self) -> Vec<PathBuf> {
        self.committed = true;
        std::mem::take(&mut self.saved)
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        // Best effort, in reverse: the install's own error is what the user must see.
        for path in self.moved.iter().rev() {
            let _ = std::fs::remove_file(path);
            remove_new_empty_parents(path, &self.dirs_before);
        }
        for f in &self.saved {
            let full = self.playpen.ext().join(f);
            let _ = fsutil::ensure_dir(full.parent().expect("has parent"));
            let _ = std::fs::rename(self.aside.join(f), &full);
        }
        let _ = registry::save(&self.playpen, &self.registry_before);
    }
}

/// Every installed file (relative to ext/) → its package.
fn file_owners(playpen: &Playpen) -> BTreeMap<PathBuf, String> {
    let mut owners = BTreeMap::new();
    for (name, p) in catalog::installed_packages(playpen) {
        let id = format!("{name}-{}", p.version);
        for f in read_manifest(playpen, &id) {
            owners.insert(f, id.clone());
        }
    }
    owners
}

fn copy_entry(src: &Path, dest: &Path) -> Result<()> {
    let meta = std::fs::symlink_metadata(src).map_err(|e| Error::io("inspect", src, e))?;
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(src).map_err(|e| Error::io("read symlink", src, e))?;
        std::os::unix::fs::symlink(&target, dest).map_err(|e| Error::io("create symlink", dest, e))
    } else {
        std::fs::copy(src, dest)
            .map(|_| ())
            .map_err(|e| Error::io("copy into", dest, e))
    }
}

/// Remove a package version's files, except those the new version will replace anyway.
fn remove_files(
    playpen: &Playpen,
    package_id: &str,
    files: &[PathBuf],
    keep: Vec<&PathBuf>,
) -> Result<()> {
    for f in files {
        if keep.contains(&f) {
            continue;
        }
        let full = playpen.ext().join(f);
        match std::fs::remove_file(&full) {
            Ok(()) => remove_empty_parents(playpen, &full),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove", &full, e)),
        }
    }
    let _ = std::fs::remove_file(manifest_path(playpen, package_id));
    Ok(())
}

fn uninstall_files(playpen: &Playpen, package_id: &str) -> Result<()> {
    let files = read_manifest(playpen, package_id);
    remove_files(playpen, package_id, &files, Vec::new())
}

/// Every directory under `root` (itself included).
fn dirs_under(root: &Path) -> std::collections::BTreeSet<PathBuf> {
    let mut found = std::collections::BTreeSet::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    todo.push(entry.path());
                }
            }
        }
        found.insert(dir);
    }
    found
}

/// Remove the empty directories above `path` that a failed install created.
fn remove_new_empty_parents(path: &Path, existed: &std::collections::BTreeSet<PathBuf>) {
    let mut dir = path.parent();
    while let Some(d) = dir {
        if existed.contains(d) || std::fs::remove_dir(d).is_err() {
            break;
        }
        dir = d.parent();
    }
}

fn remove_empty_parents(playpen: &Playpen, path: &Path) {
    let ext = playpen.ext();
    let mut dir = path.parent();
    while let Some(d) = dir {
        if d == ext || !d.starts_with(&ext) || std::fs::remove_dir(d).is_err() {
            break;
        }
        dir = d.parent();
    }
}

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

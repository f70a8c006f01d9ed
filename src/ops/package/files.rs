//! The files of a package in ext/: its manifest, a transaction that moves them in (and
//! back on failure), and their removal.

use super::Package;
use crate::config::session::Session;
use crate::error::{Error, Result};
use crate::playpen::Playpen;
use crate::playpen::catalog::{self};
use crate::playpen::fsutil;
use crate::playpen::registry;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub(super) fn manifest_path(playpen: &Playpen, package_id: &str) -> PathBuf {
    playpen
        .ext()
        .join("services")
        .join(format!("{package_id}.files"))
}

pub(super) fn read_manifest(playpen: &Playpen, package_id: &str) -> Vec<PathBuf> {
    std::fs::read_to_string(manifest_path(playpen, package_id))
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.is_empty())
        .map(PathBuf::from)
        .collect()
}

/// Set the previous version aside and move the staged package into `ext/`, recording
/// each step in the transaction.
pub(super) fn install_files(
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
pub(super) struct Transaction {
    pub(super) playpen: Playpen,
    /// Where the previous version's files wait (inside the staging directory).
    pub(super) aside: PathBuf,
    /// Files moved into ext/, in order.
    pub(super) moved: Vec<PathBuf>,
    /// The previous version's files set aside (relative to ext/).
    pub(super) saved: Vec<PathBuf>,
    pub(super) registry_before: Vec<registry::Entry>,
    pub(super) dirs_before: std::collections::BTreeSet<PathBuf>,
    pub(super) committed: bool,
}

impl Transaction {
    /// The install stands; returns the previous version's files, gone for good.
    pub(super) fn commit(mut self) -> Vec<PathBuf> {
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
pub(super) fn file_owners(playpen: &Playpen) -> BTreeMap<PathBuf, String> {
    let mut owners = BTreeMap::new();
    for (name, p) in catalog::installed_packages(playpen) {
        let id = format!("{name}-{}", p.version);
        for f in read_manifest(playpen, &id) {
            owners.insert(f, id.clone());
        }
    }
    owners
}

pub(super) fn copy_entry(src: &Path, dest: &Path) -> Result<()> {
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
pub(super) fn remove_files(
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

pub(super) fn uninstall_files(playpen: &Playpen, package_id: &str) -> Result<()> {
    let files = read_manifest(playpen, package_id);
    remove_files(playpen, package_id, &files, Vec::new())
}

/// Every directory under `root` (itself included).
pub(super) fn dirs_under(root: &Path) -> std::collections::BTreeSet<PathBuf> {
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
pub(super) fn remove_new_empty_parents(path: &Path, existed: &std::collections::BTreeSet<PathBuf>) {
    let mut dir = path.parent();
    while let Some(d) = dir {
        if existed.contains(d) || std::fs::remove_dir(d).is_err() {
            break;
        }
        dir = d.parent();
    }
}

pub(super) fn remove_empty_parents(playpen: &Playpen, path: &Path) {
    let ext = playpen.ext();
    let mut dir = path.parent();
    while let Some(d) = dir {
        if d == ext || !d.starts_with(&ext) || std::fs::remove_dir(d).is_err() {
            break;
        }
        dir = d.parent();
    }
}

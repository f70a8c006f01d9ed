//! Files: the repository's sample packages, copies of packages to derive test packages
//! from, snapshots of trees, modes, times, and readers for what programs write.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The repository (for packages/ and share/).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A sample package directory, e.g. `sample("echo")`.
pub fn sample(rel: &str) -> PathBuf {
    repo().join("packages").join(rel)
}

/// A package directory in a temporary directory, to derive test packages from.
pub struct PkgCopy {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
}

impl PkgCopy {
    /// A copy of a (sample) package.
    pub fn of(src: &Path) -> PkgCopy {
        let copy = PkgCopy::empty(&src.file_name().expect("named").to_string_lossy());
        copy_tree(src, &copy.path);
        copy
    }

    /// An empty package directory named `name`.
    pub fn empty(name: &str) -> PkgCopy {
        let dir = tempfile::Builder::new()
            .prefix("servicectl-pkg-")
            .tempdir()
            .expect("make a temporary directory");
        let path = dir.path().join(name);
        std::fs::create_dir_all(&path).expect("make the package directory");
        PkgCopy { _dir: dir, path }
    }

    /// packages/echo (version 1.0) made version `version`, for upgrade tests: its files
    /// renamed (`echo-VERSION.config` …), `echo-server --version` and its log line,
    /// `share/echo/VERSION` and the comments naming its files say `version`; nothing
    /// else differs.
    pub fn echo_version(version: &str) -> PkgCopy {
        let copy = PkgCopy::empty(&format!("echo-{version}"));
        copy_tree(&sample("echo"), &copy.path);
        copy.rename_prefix("echo-1.0.", &format!("echo-{version}."));
        copy.replace(
            "bin/echo-server",
            "VERSION = \"1.0\"",
            &format!("VERSION = \"{version}\""),
        );
        copy.write("share/echo/VERSION", &format!("{version}\n"));
        for file in ["config", "profile", "ping"] {
            copy.replace(
                &format!("echo-{version}.{file}"),
                "echo-1.0",
                &format!("echo-{version}"),
            );
        }
        copy
    }

    /// Replace every `old` in a file of the package by `new` (`old` must be there).
    pub fn replace(&self, rel: &str, old: &str, new: &str) {
        let path = self.path.join(rel);
        let text = std::fs::read_to_string(&path).expect("read a package file");
        assert!(text.contains(old), "{rel} holds {old:?}");
        std::fs::write(&path, text.replace(old, new)).expect("write a package file");
    }

    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        write_file(&self.path.join(rel), text, None)
    }

    pub fn write_exec(&self, rel: &str, text: &str) -> PathBuf {
        write_file(&self.path.join(rel), text, Some(0o755))
    }

    pub fn append(&self, rel: &str, text: &str) {
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(self.path.join(rel))
            .expect("open for appending");
        file.write_all(text.as_bytes()).expect("append");
    }

    pub fn symlink(&self, rel: &str, target: &str) {
        let path = self.path.join(rel);
        std::fs::create_dir_all(path.parent().expect("has a parent")).expect("make directories");
        std::os::unix::fs::symlink(target, path).expect("make a symlink");
    }

    /// Rename every top-level `OLD…` file to `NEW…` (e.g. a new version's names).
    pub fn rename_prefix(&self, old: &str, new: &str) {
        for entry in std::fs::read_dir(&self.path)
            .expect("read package")
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(rest) = name.strip_prefix(old) {
                std::fs::rename(entry.path(), self.path.join(format!("{new}{rest}")))
                    .expect("rename");
            }
        }
    }
}

/// Write a file, making its directories; with `mode`, set that mode (also when the file
/// existed with another).
pub fn write_file(path: &Path, contents: impl AsRef<[u8]>, mode: Option<u32>) -> PathBuf {
    std::fs::create_dir_all(path.parent().expect("has a parent")).expect("make directories");
    std::fs::write(path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    if let Some(mode) = mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }
    path.to_path_buf()
}

pub fn copy_tree(src: &Path, dest: &Path) {
    std::fs::create_dir_all(dest).expect("make a directory");
    for entry in std::fs::read_dir(src).expect("read a directory").flatten() {
        let from = entry.path();
        let to = dest.join(entry.file_name());
        let meta = std::fs::symlink_metadata(&from).expect("stat");
        if meta.file_type().is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&from).expect("readlink"), &to)
                .expect("symlink");
        } else if meta.is_dir() {
            copy_tree(&from, &to);
        } else {
            std::fs::copy(&from, &to).expect("copy a file");
        }
    }
}

/// relative path → description of everything under `root` (root itself excluded):
/// `dir`, `link:TARGET` or `file:MODE:CONTENTS`.
pub fn snapshot(root: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let rel = path
                .strip_prefix(root)
                .expect("under root")
                .display()
                .to_string();
            let meta = std::fs::symlink_metadata(&path).expect("stat");
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path).expect("readlink");
                out.insert(rel, format!("link:{}", target.display()));
            } else if meta.is_dir() {
                out.insert(rel, "dir".into());
                walk(root, &path, out);
            } else {
                let bytes = std::fs::read(&path).unwrap_or_default();
                out.insert(
                    rel,
                    format!(
                        "file:{:o}:{}",
                        meta.permissions().mode() & 0o7777,
                        String::from_utf8_lossy(&bytes)
                    ),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// The mode bits of a file.
pub fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o7777
}

/// Set a file's modification time.
pub fn set_mtime(path: &Path, when: std::time::SystemTime) {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open for set_modified");
    file.set_modified(when).expect("set the modification time");
}

/// Files in a directory whose names look like leftovers of an atomic write.
pub fn temporaries_in(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    let name = p.file_name().unwrap_or_default().to_string_lossy();
                    name.starts_with(".tmp") || name.ends_with(".tmp")
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Lines of a file (none when it does not exist), for logs written by hooks and scripts.
pub fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Parse `env -0` output (or /proc/PID/environ).
pub fn parse_env0(bytes: &[u8]) -> BTreeMap<String, String> {
    bytes
        .split(|&b| b == 0)
        .filter(|e| !e.is_empty())
        .filter_map(|e| {
            let text = String::from_utf8_lossy(e);
            let (k, v) = text.split_once('=')?;
            Some((k.to_string(), v.to_string()))
        })
        .collect()
}

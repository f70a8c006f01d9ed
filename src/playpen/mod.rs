//! Playpen discovery, its role and cluster, and the paths of everything inside it.

pub mod catalog;
pub mod fsutil;
pub mod lock;
pub mod marks;
pub mod names;
pub mod registry;
pub mod roster;

use crate::error::{Error, ErrorKind, Result};
use std::path::{Path, PathBuf};

/// A role or cluster name (it names a directory under etc/) must follow the one name
/// rule; `source` says where it was set.
fn check_name(what: &str, name: &str, source: &str) -> Result<()> {
    match names::problem(name) {
        None => Ok(()),
        Some(why) => Err(Error::config(format!(
            "the {what} {} (from {source}) is not a {what} name: {why}",
            names::shown(name)
        ))
        .with_hint(names::RULE)),
    }
}

/// What a look into a directory found.
enum Probe {
    Playpen,
    NotPlaypen,
    /// Permission denied on this path (etc/role or ext/services).
    Denied(PathBuf),
}

/// One checkout of a project: its own ports, `var/` and processes.
#[derive(Debug, Clone)]
pub struct Playpen {
    pub root: PathBuf,
}

impl Playpen {
    /// A playpen in a new temporary directory (nothing in it), for unit tests.
    #[cfg(test)]
    pub fn scratch() -> (tempfile::TempDir, Playpen) {
        let dir = tempfile::tempdir().expect("make a temporary directory");
        let playpen = Playpen {
            root: dir.path().to_path_buf(),
        };
        (dir, playpen)
    }

    /// Find the playpen: `--playpen DIR`, else `PLAYPEN_ROOT`, else walk up from the
    /// working directory to the first folder holding `etc/role` or `ext/services`.
    pub fn discover(explicit: Option<&Path>) -> Result<Playpen> {
        if let Some(dir) = explicit {
            return Self::open(dir, "--playpen");
        }
        if let Some(dir) = std::env::var_os("PLAYPEN_ROOT").filter(|d| !d.is_empty()) {
            return Self::open(Path::new(&dir), "PLAYPEN_ROOT");
        }
        let cwd = std::env::current_dir()
            .map_err(|e| Error::io("read", Path::new("the working directory"), e))?;
        let mut denied = None;
        for dir in cwd.ancestors() {
            match Self::probe(dir) {
                Probe::Playpen => {
                    return Ok(Playpen {
                        root: dir.to_path_buf(),
                    });
                }
                Probe::Denied(path) => {
                    denied.get_or_insert(path);
                }
                Probe::NotPlaypen => {}
            }
        }
        if let Some(path) = denied {
            return Err(Self::denied(&path, None));
        }
        Err(Error::new(
            ErrorKind::NoPlaypen,
            format!(
                "not inside a playpen (no etc/role or ext/services in {} or any parent)",
                cwd.display()
            ),
        )
        .with_hint("cd into one, pass --playpen DIR, or create one with `servicectl init DIR`"))
    }

    /// Is `dir` a playpen, not one, or may we not look (permission denied)?
    fn probe(dir: &Path) -> Probe {
        let mut denied = None;
        for (marker, is_kind) in [
            (
                "etc/role",
                std::fs::Metadata::is_file as fn(&std::fs::Metadata) -> bool,
            ),
            ("ext/services", std::fs::Metadata::is_dir),
        ] {
            let path = dir.join(marker);
            match std::fs::metadata(&path) {
                Ok(meta) if is_kind(&meta) => return Probe::Playpen,
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                    denied.get_or_insert(path);
                }
                _ => {}
            }
        }
        match denied {
            Some(path) => Probe::Denied(path),
            None => Probe::NotPlaypen,
        }
    }

    /// We may not look inside what could be a playpen: say so, not "not a playpen".
    /// `source` is what named the directory (`--playpen`, `PLAYPEN_ROOT`), if anything.
    fn denied(path: &Path, source: Option<(&str, &Path)>) -> Error {
        use std::os::unix::fs::MetadataExt;
        // The deepest directory of `path` we can stat is the one that shuts us out.
        let closed = path
            .ancestors()
            .skip(1)
            .find(|d| std::fs::metadata(d).is_ok())
            .unwrap_or(path);
        let owner = std::fs::metadata(closed)
            .map(|m| format!(" (owner uid {}, mode {:04o})", m.uid(), m.mode() & 0o7777))
            .unwrap_or_default();
        let uid = nix::unistd::getuid();
        let named = source
            .map(|(s, dir)| format!("{s} names {}, but ", dir.display()))
            .unwrap_or_default();
        Error::new(
            ErrorKind::NoPlaypen,
            format!(
                "{named}permission denied: cannot read {}: {}{owner} is closed to this user (uid {uid})",
                path.display(),
                closed.display(),
            ),
        )
        .with_hint(format!(
            "run servicectl as a user who may read {} (such as its owner), or have its permissions opened to you",
            closed.display()
        ))
    }

    fn open(dir: &Path, source: &str) -> Result<Playpen> {
        let root = std::path::absolute(dir).map_err(|e| Error::io("resolve", dir, e))?;
        match std::fs::metadata(&root) {
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                return Err(Self::denied(&root, Some((source, &root))));
            }
            Ok(meta) if meta.is_dir() => {}
            _ => {
                return Err(Error::new(
                    ErrorKind::NoPlaypen,
                    format!(
                        "{source} names {}, which is not a directory",
                        root.display()
                    ),
                )
                .with_hint("create a playpen there with `servicectl init DIR`"));
            }
        }
        if let Probe::Denied(path) = Self::probe(&root) {
            return Err(Self::denied(&path, Some((source, &root))));
        }
        if !Self::looks_like_playpen(&root) {
            return Err(Error::new(
                ErrorKind::NoPlaypen,
                format!(
                    "{source} names {}, which is not a playpen (no etc/role or ext/services)",
                    root.display()
                ),
            )
            .with_hint(format!(
                "run `servicectl init {}` to make it one",
                root.display()
            )));
        }
        Ok(Playpen { root })
    }

    fn looks_like_playpen(dir: &Path) -> bool {
        matches!(Self::probe(dir), Probe::Playpen)
    }

    /// Make a new empty playpen in `dir` (which may exist) with role `role`. An existing
    /// playpen is left as it is: its `etc/role` is kept (see [`Playpen::role_on_disk`]),
    /// and only what is missing is added (directories, the role config of its role).
    pub fn init(dir: &Path, role: &str) -> Result<Playpen> {
        Playpen::init_found(dir, role).map(|(playpen, _)| playpen)
    }

    /// Like [`Playpen::init`], and the role of the playpen that was already there (None:
    /// a new playpen was made), so that `init` can say what it found and left alone.
    pub fn init_found(dir: &Path, role: &str) -> Result<(Playpen, Option<String>)> {
        let root = std::path::absolute(dir).map_err(|e| Error::io("resolve", dir, e))?;
        check_name("role", role, "--role")?;
        for sub in [
            "etc",
            "bin",
            "services",
            "ext/services",
            "ext/bin",
            "ext/etc/profile.d",
        ] {
            fsutil::ensure_dir(&root.join(sub))?;
        }
        let role_file = root.join("etc/role");
        let found = Playpen { root: root.clone() }.role_on_disk();
        let role = match &found {
            Some(found) if names::is_valid(found) => found.as_str(),
            _ => role,
        };
        if std::fs::symlink_metadata(&role_file).is_err() {
            fsutil::write_atomic(&role_file, format!("{role}\n").as_bytes(), Some(0o644))?;
        }
        let role_config = root.join("etc/roles").join(role).join("config");
        if !role_config.exists() {
            fsutil::ensure_dir(role_config.parent().expect("has parent"))?;
            let text = "# Role configuration: sourced by sh, every assignment is exported to services.\n\
                        # The services this playpen runs, in any order (dependencies are worked out):\n\
                        playpen_services=\"\"\n\
                        # Every port is PORT_PREFIX + the service's offset; give each playpen its own\n\
                        # (auto: lease a free block of 100 ports for each checkout).\n\
                        #PORT_PREFIX=auto\n";
            fsutil::write_atomic(&role_config, text.as_bytes(), Some(0o644))?;
        }
        let playpen = Playpen { root };
        playpen.ensure_var()?;
        Ok((playpen, found))
    }

    /// The role written in `etc/role` (its first line), whatever PLAYPEN_ROLE says;
    /// None when there is none (or it cannot be read).
    pub fn role_on_disk(&self) -> Option<String> {
        fsutil::read_optional(&self.root.join("etc/role"))
            .ok()
            .flatten()
            .and_then(|t| t.lines().next().map(|l| l.trim().to_string()))
            .filter(|r| !r.is_empty())
    }

    /// The role: `PLAYPEN_ROLE`, else the first line of `etc/role`. It names a
    /// directory (`etc/roles/ROLE/`), so it follows the one name rule.
    pub fn role(&self) -> Result<String> {
        if let Ok(role) = std::env::var("PLAYPEN_ROLE")
            && !role.trim().is_empty()
        {
            let role = role.trim().to_string();
            check_name("role", &role, "PLAYPEN_ROLE")?;
            return Ok(role);
        }
        let path = self.root.join("etc/role");
        match fsutil::read_optional(&path)? {
            Some(text) => {
                let role = text.lines().next().unwrap_or("").trim().to_string();
                if role.is_empty() {
                    Err(
                        Error::config(format!("{} is empty", path.display())).with_hint(
                            "write the playpen's role on its first line, or set PLAYPEN_ROLE",
                        ),
                    )
                } else {
                    check_name("role", &role, &path.display().to_string())?;
                    Ok(role)
                }
            }
            None => Err(
                Error::config(format!("no role: {} does not exist", path.display()))
                    .with_hint("write the playpen's role into etc/role, or set PLAYPEN_ROLE"),
            ),
        }
    }

    /// The cluster, if any: `PLAYPEN_CLUSTER`, else the first line of `etc/cluster`.
    pub fn cluster(&self) -> Result<Option<String>> {
        if let Ok(c) = std::env::var("PLAYPEN_CLUSTER")
            && !c.trim().is_empty()
        {
            let cluster = c.trim().to_string();
            check_name("cluster", &cluster, "PLAYPEN_CLUSTER")?;
            return Ok(Some(cluster));
        }
        let path = self.root.join("etc/cluster");
        let cluster = fsutil::read_optional(&path)?
            .and_then(|t| t.lines().next().map(|l| l.trim().to_string()))
            .filter(|c| !c.is_empty());
        if let Some(cluster) = &cluster {
            check_name("cluster", cluster, &path.display().to_string())?;
        }
        Ok(cluster)
    }

    pub fn role_config(&self, role: &str) -> PathBuf {
        self.root.join("etc/roles").join(role).join("config")
    }

    pub fn cluster_config(&self, cluster: &str) -> PathBuf {
        self.root.join("etc/clusters").join(cluster).join("config")
    }

    pub fn ext(&self) -> PathBuf {
        self.root.join("ext")
    }

    /// LOCAL_VAR.
    pub fn var(&self) -> PathBuf {
        self.root.join("var")
    }

    /// LOCAL_RUNVAR: pidfiles, output files, start records, locks.
    pub fn run_dir(&self) -> PathBuf {
        self.root.join("var/run")
    }

    pub fn linkfarm(&self) -> PathBuf {
        self.root.join("var/linkfarm")
    }

    /// Where servicectl keeps its own state (caches, upgrade records, desired state).
    pub fn state_dir(&self) -> PathBuf {
        self.root.join("var/servicectl")
    }

    pub fn pidfile(&self, service: &str) -> PathBuf {
        self.run_dir().join(format!("{service}.pid"))
    }

    pub fn output_file(&self, service: &str) -> PathBuf {
        self.run_dir().join(format!("{service}.output"))
    }

    /// A one-shot's mark that it ran to completion (`service::oneshot`).
    pub fn done_file(&self, service: &str) -> PathBuf {
        self.run_dir().join(format!("{service}.done"))
    }

    pub fn start_record(&self, service: &str) -> PathBuf {
        self.run_dir().join(format!("{service}.start"))
    }

    /// Held by the playpen's supervisor while it runs; it holds its PID.
    pub fn supervisor_lock(&self) -> PathBuf {
        self.run_dir().join("servicectl.supervise.lock")
    }

    pub fn lock_file(&self, service: &str) -> PathBuf {
        self.run_dir().join(format!("{service}.lock"))
    }

    /// Create `var/`, `var/run/`, `var/linkfarm/` and check we can write there.
    pub fn ensure_var(&self) -> Result<()> {
        for dir in [
            self.var(),
            self.run_dir(),
            self.linkfarm(),
            self.state_dir(),
        ] {
            if std::fs::metadata(&dir).is_ok_and(|m| !m.is_dir()) {
                return Err(Error::new(
                    ErrorKind::Io,
                    format!("{} exists but is not a directory", dir.display()),
                )
                .with_hint(format!(
                    "servicectl keeps pidfiles and output under {}; move that file away",
                    self.var().display()
                )));
            }
            fsutil::ensure_dir(&dir).map_err(|e| {
                if e.hint.is_some() {
                    return e;
                }
                e.with_hint(format!(
                    "servicectl keeps pidfiles and output under {}; make it writable",
                    self.var().display()
                ))
            })?;
        }
        let probe = self.run_dir();
        match nix::unistd::access(&probe, nix::unistd::AccessFlags::W_OK) {
            Ok(()) => {}
            Err(nix::errno::Errno::EROFS) => {
                return Err(Error::new(
                    ErrorKind::Io,
                    format!(
                        "{} is on a read-only file system",
                        probe.display()
                    ),
                )
                .with_hint(
                    "servicectl keeps pidfiles and output there; remount that file system read-write, or use a playpen on a writable one",
                ));
            }
            Err(_) => {
                return Err(Error::new(
                ErrorKind::Io,
                format!("{} is not writable", probe.display()),
            )
            .with_hint(format!(
                "servicectl keeps pidfiles and output there; fix its permissions (chmod u+w {})",
                probe.display()
            )));
            }
        }
        Ok(())
    }
}

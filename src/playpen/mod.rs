//! Playpen discovery, its role and cluster, and the paths of everything inside it (§2).

pub mod catalog;
pub mod fsutil;
pub mod lock;
pub mod marks;
pub mod registry;

use crate::error::{Error, ErrorKind, Result};
use std::path::{Path, PathBuf};

/// One checkout of a project: its own ports, `var/` and processes.
#[derive(Debug, Clone)]
pub struct Playpen {
    pub root: PathBuf,
}

impl Playpen {
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
        for dir in cwd.ancestors() {
            if Self::looks_like_playpen(dir) {
                return Ok(Playpen {
                    root: dir.to_path_buf(),
                });
            }
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

    fn open(dir: &Path, source: &str) -> Result<Playpen> {
        let root = std::path::absolute(dir).map_err(|e| Error::io("resolve", dir, e))?;
        if !root.is_dir() {
            return Err(Error::new(
                ErrorKind::NoPlaypen,
                format!(
                    "{source} names {}, which is not a directory",
                    root.display()
                ),
            )
            .with_hint("create a playpen there with `servicectl init DIR`"));
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
        dir.join("etc/role").is_file() || dir.join("ext/services").is_dir()
    }

    /// Make a new empty playpen in `dir` (which may exist) with role `role`.
    pub fn init(dir: &Path, role: &str) -> Result<Playpen> {
        let root = std::path::absolute(dir).map_err(|e| Error::io("resolve", dir, e))?;
        if !role
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            || role.is_empty()
        {
            return Err(Error::config(format!("invalid role name {role:?}"))
                .with_hint("use letters, digits, '-', '_' or '.'"));
        }
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
        if !role_file.exists() {
            fsutil::write_atomic(&role_file, format!("{role}\n").as_bytes(), Some(0o644))?;
        }
        let role_config = root.join("etc/roles").join(role).join("config");
        if !role_config.exists() {
            fsutil::ensure_dir(role_config.parent().expect("has parent"))?;
            let text = "# Role configuration: sourced by sh, every assignment is exported to services.\n\
                        # The services this playpen runs, in any order (dependencies are worked out):\n\
                        playpen_services=\"\"\n\
                        # Every port is PORT_PREFIX + the service's offset; give each playpen its own.\n\
                        #PORT_PREFIX=8000\n";
            fsutil::write_atomic(&role_config, text.as_bytes(), Some(0o644))?;
        }
        let playpen = Playpen { root };
        playpen.ensure_var()?;
        Ok(playpen)
    }

    /// The role: `PLAYPEN_ROLE`, else the first line of `etc/role`.
    pub fn role(&self) -> Result<String> {
        if let Ok(role) = std::env::var("PLAYPEN_ROLE")
            && !role.trim().is_empty()
        {
            return Ok(role.trim().to_string());
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
            return Ok(Some(c.trim().to_string()));
        }
        Ok(fsutil::read_optional(&self.root.join("etc/cluster"))?
            .and_then(|t| t.lines().next().map(|l| l.trim().to_string()))
            .filter(|c| !c.is_empty()))
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

    pub fn start_record(&self, service: &str) -> PathBuf {
        self.run_dir().join(format!("{service}.start"))
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
        if nix::unistd::access(&probe, nix::unistd::AccessFlags::W_OK).is_err() {
            return Err(Error::new(
                ErrorKind::Io,
                format!("{} is not writable", probe.display()),
            )
            .with_hint(format!(
                "servicectl keeps pidfiles and output there; fix its permissions (chmod u+w {})",
                probe.display()
            )));
        }
        Ok(())
    }
}

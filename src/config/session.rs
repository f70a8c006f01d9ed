//! One command's view of a playpen: its catalog, its config shell (started only when a
//! config must be evaluated), and which services the command acts on (the named ones, else the role's enabled playpen_services).

use crate::config::settings::Settings;
use crate::config::{ConfigShell, ServiceConfig};
use crate::error::{Error, ErrorKind, Result};
use crate::playpen::Playpen;
use crate::playpen::catalog::{Catalog, ServiceId};
use crate::playpen::fsutil;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

pub struct Session {
    pub playpen: Playpen,
    pub catalog: Catalog,
    shell: Option<ConfigShell>,
    configs: BTreeMap<String, Result<Arc<ServiceConfig>>>,
    settings: BTreeMap<String, (Arc<Settings>, Option<Error>)>,
}

/// Services a role lists that are not installed, each with the error naming it.
pub type Missing = Vec<(String, Error)>;

impl Session {
    /// The playpen's catalog. Where the role's playpen_services could change how a
    /// `NAME-VERSION` directory reads (listed names decide an ambiguous split), the
    /// catalog is loaded with them: from the role cache while it is valid (no process),
    /// else by evaluating the role config now (the shell is kept for the command). The
    /// `.services` files decide in every case; a role that does not evaluate is left out.
    pub fn open(playpen: Playpen) -> Result<Session> {
        let catalog = Catalog::load(&playpen, None)?;
        let mut session = Session {
            playpen,
            catalog,
            shell: None,
            configs: BTreeMap::new(),
            settings: BTreeMap::new(),
        };
        if session.catalog.role_sensitive() {
            let cached =
                RoleCache::load(&session.playpen).and_then(|c| c.valid_services(&session.playpen));
            let services = match cached {
                Some(services) => Some(services),
                None => session.evaluate_role_services(),
            };
            if let Some(services) = services {
                session.catalog = Catalog::load(&session.playpen, Some(&services))?;
            }
        }
        Ok(session)
    }

    /// playpen_services evaluated now (and cached), None when the role does not
    /// evaluate or does not set it.
    fn evaluate_role_services(&mut self) -> Option<Vec<String>> {
        let playpen = self.playpen.clone();
        let shell = self.shell().ok()?;
        let role = shell.role().to_string();
        let services = shell.common().ok()?.playpen_services()?;
        RoleCache::store(&playpen, &role, &services);
        Some(services)
    }

    pub fn shell(&mut self) -> Result<&mut ConfigShell> {
        if self.shell.is_none() {
            self.shell = Some(ConfigShell::new(&self.playpen)?);
        }
        Ok(self.shell.as_mut().expect("set above"))
    }

    /// The services a command acts on: the names given (each must be known), else the
    /// role's playpen_services.
    pub fn targets(&mut self, names: &[String]) -> Result<Vec<String>> {
        if !names.is_empty() {
            return self.known(names);
        }
        let services = self.role_services()?;
        self.known(&self.enabled(services)?)
    }

    /// The role's enabled services that are installed, and those it lists that are
    /// not (each with the error naming it): a supervisor brings up the first and names
    /// the second instead of refusing the whole playpen.
    pub fn role_targets_installed(&mut self) -> Result<(Vec<String>, Missing)> {
        let services = self.role_services()?;
        let mut installed = Vec::new();
        let mut missing = Vec::new();
        for name in self.enabled(services)? {
            match self.catalog.get(&name) {
                Ok(_) if !installed.contains(&name) => installed.push(name),
                Ok(_) => {}
                Err(e) => missing.push((name, e)),
            }
        }
        Ok((installed, missing))
    }

    /// Leave out services registered as disabled (`servicectl disable`).
    fn enabled(&self, services: Vec<String>) -> Result<Vec<String>> {
        let disabled = crate::playpen::registry::disabled(&self.playpen)?;
        Ok(services
            .into_iter()
            .filter(|s| !disabled.contains(s))
            .collect())
    }

    /// Like `targets`, but answers from the cached role evaluation when the role's
    /// files have not changed, so that `status` starts no process.
    pub fn targets_cached(&mut self, names: &[String]) -> Result<Vec<String>> {
        if !names.is_empty() {
            return self.known(names);
        }
        if let Some(services) =
            RoleCache::load(&self.playpen).and_then(|c| c.valid_services(&self.playpen))
        {
            return self.known(&self.enabled(services)?);
        }
        self.targets(names)
    }

    fn known(&self, names: &[String]) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for name in names {
            self.catalog.get(name)?;
            if !out.contains(name) {
                out.push(name.clone());
            }
        }
        Ok(out)
    }

    /// playpen_services from the role config (evaluated now, and cached).
    pub fn role_services(&mut self) -> Result<Vec<String>> {
        let playpen = self.playpen.clone();
        let shell = self.shell()?;
        let role = shell.role().to_string();
        let common = shell.common()?;
        let role_config = playpen.role_config(&role);
        let services =
            common.playpen_services().ok_or_else(|| {
                Error::new(ErrorKind::NoServicesListed, format!(
                "role {role:?} lists no services: {} does not set playpen_services",
                role_config.display()
            ))
            .with_hint(format!(
                "add playpen_services=\"NAME …\" to {}, or name the services on the command line",
                role_config.display()
            ))
            })?;
        RoleCache::store(&playpen, &role, &services);
        // The catalog was loaded with another list (a stale cache, or none): reload it.
        if self.catalog.role_sensitive() && self.catalog.role_services() != Some(&services[..]) {
            self.catalog = Catalog::load(&playpen, Some(&services))?;
            self.configs.clear();
        }
        Ok(services)
    }

    /// Evaluate (once) and return a service's configuration.
    pub fn config(&mut self, name: &str) -> Result<Arc<ServiceConfig>> {
        if let Some(result) = self.configs.get(name) {
            return result.clone();
        }
        let result = match self.catalog.get(name).cloned() {
            Ok(id) => self.shell().and_then(|s| s.service(&id)).map(Arc::new),
            Err(e) => Err(e),
        };
        self.configs.insert(name.to_string(), result.clone());
        result
    }

    /// A service's settings, read once from its evaluated configuration. Where a value is
    /// bad, its default stands in; the problem is returned beside it.
    pub fn settings(&mut self, name: &str) -> Result<(Arc<Settings>, Option<Error>)> {
        if let Some(known) = self.settings.get(name) {
            return Ok(known.clone());
        }
        let config = self.config(name)?;
        let (settings, problem) = Settings::read(&config);
        let known = (Arc::new(settings), problem);
        self.settings.insert(name.to_string(), known.clone());
        Ok(known)
    }

    /// Evaluate every named service not evaluated yet, in one pipelined batch.
    pub fn preload(&mut self, names: &[String]) {
        let ids: Vec<ServiceId> = names
            .iter()
            .filter(|n| !self.configs.contains_key(*n))
            .filter_map(|n| self.catalog.get(n).ok().cloned())
            .collect();
        if ids.is_empty() {
            return;
        }
        let results = match self.shell() {
            Ok(shell) => shell.services(&ids),
            Err(e) => ids
                .iter()
                .map(|id| Err(e.clone().with_service(&id.name)))
                .collect(),
        };
        for (id, result) in ids.into_iter().zip(results) {
            self.configs.insert(id.name, result.map(Arc::new));
        }
    }

    pub fn id(&self, name: &str) -> Result<ServiceId> {
        self.catalog.get(name).cloned()
    }

    /// The names plus everything they depend on (service_depends), transitively.
    /// Configs that fail to evaluate are returned as errors alongside.
    pub fn with_dependencies(&mut self, names: &[String]) -> Result<Vec<String>> {
        self.preload(names);
        let mut out: Vec<String> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        // (name, Some((the service that depends on it, where that dependency is set)))
        let mut queue: Vec<(String, Option<(String, String)>)> =
            names.iter().map(|n| (n.clone(), None)).collect();
        while let Some((name, wanted_by)) = queue.pop() {
            if seen.contains(&name) {
                continue;
            }
            if let Err(e) = self.catalog.get(&name) {
                return Err(match wanted_by {
                    Some((by, origin)) => Error::new(
                        ErrorKind::Config,
                        format!("depends on {name:?}, which is not a known service{origin}"),
                    )
                    .with_service(by)
                    .with_hint("install it, or fix service_depends"),
                    None => e,
                });
            }
            seen.insert(name.clone());
            out.push(name.clone());
            if let Ok(config) = self.config(&name)
                && let Ok((settings, _)) = self.settings(&name)
            {
                let origin = config.origin_note("service_depends");
                for dep in settings.depends.iter().cloned() {
                    queue.push((dep, Some((name.clone(), origin.clone()))));
                }
            }
        }
        Ok(out)
    }
}

/// A file's modification time (seconds, nanoseconds) and size; None when missing.
type Stamp = Option<(i64, i64, u64)>;

/// The role's playpen_services as last evaluated, with the state of the files that
/// decided it; valid while none of them changed.
#[derive(Serialize, Deserialize)]
struct RoleCache {
    role: String,
    files: Vec<(PathBuf, Stamp)>,
    services: Vec<String>,
}

impl RoleCache {
    fn path(playpen: &Playpen) -> PathBuf {
        playpen.state_dir().join("role-cache.json")
    }

    /// The files whose change invalidates the cache.
    fn watched(playpen: &Playpen, role: &str) -> Vec<PathBuf> {
        let mut files = vec![
            playpen.root.join("etc/role"),
            playpen.root.join("etc/cluster"),
            playpen.role_config(role),
            playpen.ext().join("etc/profile.d"),
        ];
        if let Ok(Some(cluster)) = playpen.cluster() {
            files.push(playpen.cluster_config(&cluster));
        }
        if let Ok(list) = crate::config::common_files(playpen, role) {
            files.extend(list);
        }
        // The role and cluster configs are listed above even when missing (creating one
        // must invalidate the cache) and again by common_files when present.
        files.sort();
        files.dedup();
        files
    }

    fn stamp(path: &PathBuf) -> Stamp {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path)
            .ok()
            .map(|m| (m.mtime(), m.mtime_nsec(), m.size()))
    }

    fn store(playpen: &Playpen, role: &str, services: &[String]) {
        let cache = RoleCache {
            role: role.to_string(),
            files: Self::watched(playpen, role)
                .into_iter()
                .map(|f| {
                    let stamp = Self::stamp(&f);
                    (f, stamp)
                })
                .collect(),
            services: services.to_vec(),
        };
        // A cache is an optimisation: failing to write it must not fail the command.
        if fsutil::ensure_dir(&playpen.state_dir()).is_ok() {
            let _ = fsutil::write_runtime(
                &Self::path(playpen),
                &serde_json::to_vec(&cache).expect("serialises"),
                None,
            );
        }
    }

    fn load(playpen: &Playpen) -> Option<RoleCache> {
        // A cache that is not a small regular file is no cache (it is replaced, by
        // rename, the next time it is stored).
        let bytes = fsutil::read_state(&Self::path(playpen), fsutil::Links::Refuse).ok()??;
        serde_json::from_slice(&bytes).ok()
    }

    fn valid_services(self, playpen: &Playpen) -> Option<Vec<String>> {
        let role = playpen.role().ok()?;
        if role != self.role {
            return None;
        }
        let now = Self::watched(playpen, &role);
        let then: Vec<&PathBuf> = self.files.iter().map(|(f, _)| f).collect();
        if now.iter().collect::<Vec<_>>() != then {
            return None;
        }
        self.files
            .iter()
            .all(|(f, stamp)| Self::stamp(f) == *stamp)
            .then_some(self.services)
    }
}

//! `servicectl ports`: every typed port of the playpen's services, resolved as `start`
//! would (typed port variables: set, or PORT_PREFIX + offset), with how each was worked out and whether something listens on it now.
//!
//! Resolving a port means evaluating the service's config fragments. So that a shell
//! prompt or a script can ask for the map as often as it likes (as cheaply as `status`),
//! the resolved ports are kept in `var/servicectl/ports-cache.json`, each service's
//! entry valid while none of the files that decide it changed (its candidate fragments,
//! the role and cluster configs, the profiles, `etc/role`, `etc/cluster`), the service's
//! version is the same and servicectl runs in the same environment (PORT_PREFIX may come
//! from there). A fragment that reads other files or commands is re-read only when one
//! of those changes; `check` and `start` always evaluate afresh.

use crate::config::ServiceConfig;
use crate::config::envars::{self, VarType};
use crate::config::session::Session;
use crate::error::{ErrorKind, Result};
use crate::playpen::Playpen;
use crate::playpen::catalog::{self, ServiceId};
use crate::playpen::fsutil;
use crate::process::sockets::{Proto, Sockets};
use crate::service::prepare::prepare;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;

/// How a port was worked out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum How {
    /// The variable itself is set.
    Explicit,
    /// PORT_PREFIX + NAME_OFFSET.
    Offset,
    /// envar_NAME_default.
    Default,
}

/// One typed port of one service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PortEntry {
    pub service: String,
    pub variable: String,
    pub port: u16,
    pub how: How,
    /// `PORT_PREFIX + NGINX_PORT_OFFSET = 20000 + 80`, `set in FILE`, `envar_X_default`.
    pub source: String,
    /// Something listens on it now (TCP) or has it bound (UDP), on any local address.
    #[serde(default)]
    pub listening: bool,
    /// The protocols it is held in ("tcp", "udp"), when listening.
    #[serde(default)]
    pub protocols: Vec<String>,
}

/// The port map, and what is wrong with it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PortMap {
    pub ports: Vec<PortEntry>,
    /// Port variables that do not resolve, and ports used twice.
    pub warnings: Vec<String>,
}

/// The ports of the named services, else of the role's, else (`all`, or a role that
/// lists none) of every installed service.
pub fn ports(session: &mut Session, names: &[String], all: bool) -> Result<PortMap> {
    let targets = if all && names.is_empty() {
        session.catalog.names().map(str::to_string).collect()
    } else {
        match session.targets_cached(names) {
            Ok(t) => t,
            Err(e) if names.is_empty() && e.kind == ErrorKind::NoServicesListed => {
                session.catalog.names().map(str::to_string).collect()
            }
            Err(e) => return Err(e),
        }
    };
    let playpen = session.playpen.clone();
    let mut cache = Cache::load(&playpen);
    let common = common_key(&playpen);
    let mut fresh: BTreeMap<String, Cached> = BTreeMap::new();
    let mut misses = Vec::new();
    for name in &targets {
        let id = session.id(name)?;
        let key = service_key(&playpen, &id, &common);
        match cache.services.remove(name) {
            Some(c) if c.key == key => {
                fresh.insert(name.clone(), c);
            }
            _ => misses.push((name.clone(), key)),
        }
    }
    let misses_were_empty = misses.is_empty();
    if !misses.is_empty() {
        let names: Vec<String> = misses.iter().map(|(n, _)| n.clone()).collect();
        let preparation = prepare(session, &names);
        for (name, key) in misses {
            let Some(prepared) = preparation.prepared.get(&name) else {
                continue;
            };
            let resolution = preparation.resolutions.iter().find(|r| r.service == name);
            let mut problems: Vec<String> = preparation
                .problems
                .get(&name)
                .into_iter()
                .flatten()
                .filter(|(stage, _)| *stage == crate::service::prepare::Stage::Evaluation)
                .map(|(_, e)| format!("{name}: {}", e.message))
                .collect();
            let entries = match resolution {
                Some(r) => {
                    problems.extend(port_problems(&prepared.config, r));
                    entries(&prepared.config, r)
                }
                None => Vec::new(),
            };
            fresh.insert(
                name.clone(),
                Cached {
                    key,
                    entries,
                    problems,
                },
            );
        }
    }
    let mut map = PortMap::default();
    let sockets = Sockets::read();
    for name in &targets {
        let Some(c) = fresh.get(name) else { continue };
        map.warnings.extend(c.problems.iter().cloned());
        for e in &c.entries {
            let mut e = e.clone();
            let mut protocols: Vec<Proto> = sockets.on(e.port).iter().map(|s| s.proto).collect();
            protocols.sort();
            protocols.dedup();
            e.listening = !protocols.is_empty();
            e.protocols = protocols.iter().map(|p| p.name().to_string()).collect();
            map.ports.push(e);
        }
    }
    let mut by_port: BTreeMap<u16, Vec<String>> = BTreeMap::new();
    for e in &map.ports {
        by_port
            .entry(e.port)
            .or_default()
            .push(format!("{} ({})", e.service, e.variable));
    }
    for (port, users) in by_port.into_iter().filter(|(_, u)| u.len() > 1) {
        map.warnings
            .push(format!("port {port} is used by {}", users.join(" and ")));
    }
    let changed = !misses_were_empty;
    cache.services.extend(fresh);
    if changed {
        cache.store(&playpen);
    }
    Ok(map)
}

/// A service's resolved ports, with how each was worked out.
fn entries(config: &ServiceConfig, resolution: &envars::Resolution) -> Vec<PortEntry> {
    resolution
        .ports
        .iter()
        .map(|(variable, port)| {
            let offset = format!("{variable}_OFFSET");
            let (how, source) = if config.non_empty(variable).is_some() {
                let note = config.origin_note(variable);
                let note = note.trim().trim_start_matches('(').trim_end_matches(')');
                (
                    How::Explicit,
                    if note.is_empty() {
                        "set in the environment".to_string()
                    } else {
                        note.to_string()
                    },
                )
            } else if let (Some(prefix), Some(off)) = (
                config.non_empty(envars::PORT_PREFIX),
                config.non_empty(&offset),
            ) {
                let leased = crate::config::lease::leased_in(config);
                (
                    How::Offset,
                    format!(
                        "{}{} + {offset} = {} + {}",
                        envars::PORT_PREFIX,
                        if leased { " (leased)" } else { "" },
                        prefix.trim(),
                        off.trim()
                    ),
                )
            } else {
                (How::Default, format!("envar_{variable}_default"))
            };
            PortEntry {
                service: config.name().to_string(),
                variable: variable.clone(),
                port: *port,
                how,
                source,
                listening: false,
                protocols: Vec::new(),
            }
        })
        .collect()
}

/// Problems of the service's port variables (unset, invalid), as warnings.
fn port_problems(config: &ServiceConfig, resolution: &envars::Resolution) -> Vec<String> {
    let port_vars: Vec<String> = envars::specs(config)
        .into_iter()
        .filter(|s| s.effective_type() == Some(VarType::Port))
        .map(|s| s.name)
        .collect();
    resolution
        .problems
        .iter()
        .filter(|p| p.variable.as_ref().is_some_and(|v| port_vars.contains(v)))
        .map(|p| p.to_string())
        .collect()
}

/// A file's modification time (seconds, nanoseconds) and size; None when missing.
type Stamp = Option<(i64, i64, u64)>;

fn stamp(path: &std::path::Path) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path)
        .ok()
        .map(|m| (m.mtime(), m.mtime_nsec(), m.size()))
}

/// What every service's entry depends on: servicectl's environment and the files every
/// service shares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct CommonKey {
    environment: u64,
    files: Vec<(PathBuf, Stamp)>,
}

fn common_key(playpen: &Playpen) -> CommonKey {
    // Variables a shell changes on its own say nothing about the playpen.
    const VOLATILE: &[&str] = &["_", "PWD", "OLDPWD", "SHLVL"];
    let mut env: Vec<(std::ffi::OsString, std::ffi::OsString)> = std::env::vars_os()
        .filter(|(k, _)| !VOLATILE.iter().any(|v| k == v))
        .collect();
    env.sort();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    env.hash(&mut hasher);
    let mut files = vec![
        playpen.root.join("etc/role"),
        playpen.root.join("etc/cluster"),
        playpen.ext().join("etc/profile.d"),
        crate::config::lease::file(playpen),
    ];
    if let Ok(role) = playpen.role() {
        files.push(playpen.role_config(&role));
        files.extend(crate::config::common_files(playpen, &role).unwrap_or_default());
    }
    if let Ok(Some(cluster)) = playpen.cluster() {
        files.push(playpen.cluster_config(&cluster));
    }
    files.sort();
    files.dedup();
    CommonKey {
        environment: hasher.finish(),
        files: files
            .into_iter()
            .map(|f| {
                let s = stamp(&f);
                (f, s)
            })
            .collect(),
    }
}

/// What one service's entry depends on: the common key, its version and every
/// candidate fragment (a missing one counts: creating it changes the config).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ServiceKey {
    common: CommonKey,
    version: Option<String>,
    fragments: Vec<(PathBuf, Stamp)>,
}

fn service_key(playpen: &Playpen, id: &ServiceId, common: &CommonKey) -> ServiceKey {
    let mut dirs = catalog::project_dirs(playpen, id);
    dirs.extend(catalog::ext_dir(playpen, id));
    let fragments = dirs
        .iter()
        .flat_map(|d| ["config.pre", "config", "config.post"].map(|f| d.join(f)))
        .map(|f| {
            let s = stamp(&f);
            (f, s)
        })
        .collect();
    ServiceKey {
        common: common.clone(),
        version: id.version.clone(),
        fragments,
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Cached {
    key: ServiceKey,
    entries: Vec<PortEntry>,
    problems: Vec<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Cache {
    services: BTreeMap<String, Cached>,
}

impl Cache {
    fn path(playpen: &Playpen) -> PathBuf {
        playpen.state_dir().join("ports-cache.json")
    }

    fn load(playpen: &Playpen) -> Cache {
        std::fs::read(Self::path(playpen))
            .ok()
            .and_then(|raw| serde_json::from_slice(&raw).ok())
            .unwrap_or_default()
    }

    /// A cache is an optimisation: failing to write it must not fail the command.
    fn store(&self, playpen: &Playpen) {
        if fsutil::ensure_dir(&playpen.state_dir()).is_ok() {
            let _ = fsutil::write_runtime(
                &Self::path(playpen),
                &serde_json::to_vec(self).expect("serialises"),
                None,
            );
        }
    }
}

//! A service's configuration (its layered sh fragments) as servicectl holds it: every variable its fragments
//! set, where each came from, and the environment its programs see. Evaluated by
//! [`shell`], typed by [`settings`] and [`envars`], rendered into files by [`template`].

pub mod bytes;
pub mod envars;
pub mod lease;
pub mod problem;
pub mod session;
pub mod settings;
pub mod shell;
pub mod shell_dump;
pub mod template;

pub use bytes::Env;
pub use shell::ConfigShell;

use crate::error::Result;
use crate::playpen::Playpen;
use crate::playpen::catalog::ServiceId;
use serde::Serialize;
use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The environment servicectl was run in.
    Environment,
    /// Set by servicectl itself (SERVICE_NAME, PLAYPEN_ROOT, …).
    Servicectl,
    /// Assigned by this config file.
    File(PathBuf),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Environment => f.write_str("(environment)"),
            Origin::Servicectl => f.write_str("(servicectl)"),
            Origin::File(p) => write!(f, "{}", p.display()),
        }
    }
}

impl Serialize for Origin {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A variable's value (any bytes: see [`bytes`]), whether it is exported, and where it
/// was set.
#[derive(Debug, Clone, Serialize)]
pub struct Value {
    #[serde(serialize_with = "bytes::serialize")]
    pub value: OsString,
    pub exported: bool,
    pub origin: Origin,
}

impl Value {
    /// The value as text, None when it is not UTF-8.
    pub fn text(&self) -> Option<&str> {
        self.value.to_str()
    }
}

pub type Vars = BTreeMap<String, Value>;

/// The layer every service shares: cluster config, role config, profiles.
#[derive(Debug, Clone)]
pub struct CommonConfig {
    pub role: String,
    pub files: Vec<PathBuf>,
    pub vars: Vars,
}

impl CommonConfig {
    /// PORT_PREFIX=auto is what the shared layer (or the environment) says: the playpen
    /// needs a lease.
    pub fn asks_for_lease(&self) -> bool {
        self.vars
            .get(envars::PORT_PREFIX)
            .is_some_and(|v| v.value.as_os_str() == lease::AUTO)
    }

    /// The role's `playpen_services`, None when the role config does not set it.
    pub fn playpen_services(&self) -> Option<Vec<String>> {
        self.vars.get("playpen_services").map(|v| {
            v.value
                .to_string_lossy()
                .split_whitespace()
                .map(str::to_string)
                .collect()
        })
    }
}

/// One service's evaluated configuration.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    pub id: ServiceId,
    pub fragments: Vec<PathBuf>,
    pub vars: Vars,
}

impl ServiceConfig {
    pub fn name(&self) -> &str {
        &self.id.name
    }

    /// What servicectl knows of a service whose config does not evaluate: the
    /// environment it would run in, no settings. Enough to stop it from its pidfile.
    pub fn stand_in(id: ServiceId, playpen: &Playpen) -> ServiceConfig {
        let role = playpen.role().unwrap_or_default();
        let mut vars = Vars::new();
        let mut set = |name: String, value: OsString, origin: Origin| {
            vars.insert(
                name,
                Value {
                    value,
                    exported: true,
                    origin,
                },
            );
        };
        // vars_os: a value that is not UTF-8 is kept as it is (std::env::vars panics on
        // one); a name that is not UTF-8 is no sh variable and is left out.
        for (k, v) in std::env::vars_os() {
            if let Ok(k) = k.into_string() {
                set(k, v, Origin::Environment);
            }
        }
        for (k, v) in playpen_environment(playpen, &role) {
            set(k, v, Origin::Servicectl);
        }
        for (k, v) in [
            ("SERVICE_NAME", id.name.clone().into()),
            (
                "SERVICE_VERSION",
                id.version.clone().unwrap_or_default().into(),
            ),
            ("SERVICE_PIDFILE", playpen.pidfile(&id.name).into()),
            ("SERVICE_OUTPUT_FILE", playpen.output_file(&id.name).into()),
        ] {
            set(k.to_string(), v, Origin::Servicectl);
        }
        ServiceConfig {
            id,
            fragments: Vec::new(),
            vars,
        }
    }

    /// The fragments evaluated, for messages: `a, b, c`.
    pub fn fragment_list(&self) -> String {
        self.fragments
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Made by `stand_in`: no fragment was evaluated.
    pub fn is_stand_in(&self) -> bool {
        self.fragments.is_empty()
    }

    /// The value of a shell variable (exported or not) as text, for settings and other
    /// values servicectl reads: None when unset, or when it is not UTF-8 (config/settings/
    /// reports such a setting; see [`ServiceConfig::not_text`]).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).and_then(Value::text)
    }

    /// The exact value of a shell variable, any bytes; None when unset.
    pub fn get_bytes(&self, name: &str) -> Option<&OsStr> {
        self.vars.get(name).map(|v| v.value.as_os_str())
    }

    /// The value, when it is set but not UTF-8 (so [`ServiceConfig::get`] gives None).
    pub fn not_text(&self, name: &str) -> Option<&OsStr> {
        self.get_bytes(name).filter(|v| v.to_str().is_none())
    }

    /// A set, non-empty value.
    pub fn non_empty(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.trim().is_empty())
    }

    /// A whitespace-separated list.
    pub fn list(&self, name: &str) -> Vec<String> {
        self.get(name)
            .map(|v| v.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default()
    }

    /// Where a value came from, for messages: " (set in FILE)", " (from the environment)",
    /// or nothing (servicectl set it, or it is unset). The one form every message uses.
    pub fn origin_note(&self, name: &str) -> String {
        match self.vars.get(name).map(|v| &v.origin) {
            Some(Origin::File(p)) => format!(" (set in {})", p.display()),
            Some(Origin::Environment) => " (from the environment)".to_string(),
            _ => String::new(),
        }
    }

    /// What the service's program, hooks and scripts see: every exported variable.
    pub fn environment(&self) -> Env {
        self.vars
            .iter()
            .filter(|(_, v)| v.exported)
            .map(|(k, v)| (k.clone(), v.value.clone()))
            .collect()
    }
}

/// The config files every service shares, in sourcing order.
pub fn common_files(playpen: &Playpen, role: &str) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    if let Some(cluster) = playpen.cluster()? {
        let path = playpen.cluster_config(&cluster);
        if path.is_file() {
            files.push(path);
        }
    }
    let role_config = playpen.role_config(role);
    if role_config.is_file() {
        files.push(role_config);
    }
    let mut profiles: Vec<PathBuf> = std::fs::read_dir(playpen.ext().join("etc/profile.d"))
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "profile") && p.is_file())
                .collect()
        })
        .unwrap_or_default();
    profiles.sort();
    files.extend(profiles);
    Ok(files)
}

/// The variables servicectl itself gives every fragment and service.
pub fn playpen_environment(playpen: &Playpen, role: &str) -> Vec<(String, OsString)> {
    let mut env = vec![
        ("PLAYPEN_ROOT".to_string(), playpen.root.clone().into()),
        ("LOCAL_VAR".to_string(), playpen.var().into()),
        ("LOCAL_RUNVAR".to_string(), playpen.run_dir().into()),
        ("PLAYPEN_ROLE".to_string(), role.into()),
    ];
    if let Ok(Some(cluster)) = playpen.cluster() {
        env.push(("PLAYPEN_CLUSTER".to_string(), cluster.into()));
    }
    env
}

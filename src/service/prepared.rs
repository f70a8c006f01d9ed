//! One service ready to act on: what every operation on it reads (its configuration,
//! typed settings, environment, ports) and its program, resolved once.

use crate::config::settings::Settings;
use crate::config::{Env, ServiceConfig};
use crate::error::Result;
use crate::playpen::Playpen;
use crate::process::env::Common;
use crate::service::program;
use std::path::PathBuf;
use std::sync::Arc;

/// A service ready to act on: its configuration, its typed settings, and the
/// environment its program, hooks and scripts see (exported config variables, resolved
/// typed variables, …).
#[derive(Debug, Clone)]
pub struct Prepared {
    pub config: Arc<ServiceConfig>,
    /// The settings as parsed; where a value was bad, its default (the problem is in
    /// the Preparation, and a strict command never acts on it).
    pub settings: Arc<Settings>,
    pub env: Env,
    pub ports: Vec<(String, u16)>,
    /// service_program resolved once (validation, the run-name check and the start all
    /// need it, and a PATH search is a dozen system calls).
    program: std::sync::OnceLock<Result<PathBuf>>,
}

impl Prepared {
    pub fn new(
        config: Arc<ServiceConfig>,
        settings: Arc<Settings>,
        env: Env,
        ports: Vec<(String, u16)>,
    ) -> Prepared {
        Prepared {
            config,
            settings,
            env,
            ports,
            program: std::sync::OnceLock::new(),
        }
    }

    pub fn name(&self) -> &str {
        self.config.name()
    }

    /// What a long-lived holder (the supervisor, one per service) keeps: of the shell's
    /// variables only those the service's files assigned, and of those only where they
    /// were set (their origin names the file in messages), not their values. The
    /// environment's and servicectl's own are in `env` when exported, the settings are
    /// parsed in `settings`, and nothing that acts on a prepared service reads a value
    /// (`service/executable.rs` and the checks only ask a variable's file, through
    /// `origin_note`). Dropping them is most of the memory an evaluated service holds:
    /// a role's `playpen_services`, assigned in its config, names every service, so
    /// keeping its value in each service grew with the square of their number. For the
    /// same reason the environment (which exports it) keeps only what differs from the
    /// one `common` shares among the batch.
    ///
    /// Everything kept is a copy, made by the caller: a preparation runs on a job thread
    /// whose malloc arena it fills with the whole batch's evaluation, and what lived on
    /// there, scattered among the freed memory, kept most of its pages resident (16 MiB
    /// at 1,000 services, for 3 MiB alive). The supervisor copies on its own thread,
    /// every service before freeing any original (see `Machine::on_prepared`).
    pub fn kept(&self, common: &mut Common) -> Prepared {
        let vars = self
            .config
            .vars
            .iter()
            .filter(|(_, v)| matches!(v.origin, crate::config::Origin::File(_)))
            .map(|(k, v)| {
                let value = crate::config::Value {
                    value: std::ffi::OsString::new(),
                    exported: v.exported,
                    origin: v.origin.clone(),
                };
                (k.clone(), value)
            })
            .collect();
        let config = Arc::new(ServiceConfig {
            id: self.config.id.clone(),
            fragments: self.config.fragments.clone(),
            vars,
        });
        let program = std::sync::OnceLock::new();
        if let Some(resolved) = self.program.get() {
            let _ = program.set(resolved.clone());
        }
        Prepared {
            config,
            settings: Arc::new(Settings::clone(&self.settings)),
            env: common.share(&self.env),
            ports: self.ports.clone(),
            program,
        }
    }

    /// The program service_program names, resolved in the playpen's order (see `program`).
    pub fn program(&self, playpen: &Playpen) -> Result<PathBuf> {
        self.program
            .get_or_init(|| {
                program::resolve_program(playpen, &self.config, &self.settings, &self.env)
            })
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Origin, Value, Vars};
    use crate::playpen::catalog::ServiceId;

    #[test]
    fn kept_holds_only_the_variables_files_assigned() {
        let mut vars = Vars::new();
        let mut set = |name: &str, origin: Origin| {
            let value = Value {
                value: "v".into(),
                exported: true,
                origin,
            };
            vars.insert(name.to_string(), value);
        };
        set("HOME", Origin::Environment);
        set("SERVICE_NAME", Origin::Servicectl);
        set(
            "service_program",
            Origin::File("/p/services/web/config".into()),
        );
        let config = ServiceConfig {
            id: ServiceId {
                name: "web".into(),
                version: None,
            },
            fragments: Vec::new(),
            vars,
        };
        let mut env = Env::new();
        env.insert("HOME".into(), "/root".into());
        let p = Prepared::new(Arc::new(config), Arc::default(), env, Vec::new());
        let kept = p.kept(&mut Common::default());
        let names: Vec<&String> = kept.config.vars.keys().collect();
        assert_eq!(names, ["service_program"]);
        assert_eq!(
            kept.config.origin_note("service_program"),
            " (set in /p/services/web/config)"
        );
        assert_eq!(
            kept.env.get("HOME").map(|v| v.as_os_str()),
            Some("/root".as_ref())
        );
        assert_eq!(kept.name(), "web");
    }
}

//! Which executable a service runs: service_program (and the scripts service_start,
//! service_stop, …) resolved in the order of the playpen: `bin/`, `ext/bin/`, a path
//! relative to `ext/`, then an absolute path or a name on PATH.

use crate::config::settings::Settings;
use crate::config::{Env, ServiceConfig};
use crate::error::{Error, Result};
use crate::playpen::Playpen;
use crate::playpen::fsutil;
use std::path::{Path, PathBuf};

/// Resolve `service_program` in this order: `$PLAYPEN_ROOT/bin`, `ext/bin`, a path
/// relative to `ext/`, then an absolute path or a name on PATH.
pub fn resolve_program(
    playpen: &Playpen,
    config: &ServiceConfig,
    settings: &Settings,
    env: &Env,
) -> Result<PathBuf> {
    let program = settings.program.as_deref().ok_or_else(|| {
        Error::config(format!(
            "no service_program is set in {}",
            config.fragment_list()
        ))
        .with_service(config.name())
        .with_hint("set service_program (or service_start) in the service's config")
    })?;
    resolve_setting(playpen, config, "service_program", program, env)
}

/// Resolve the executable a setting names (service_program, service_start, …); an
/// error names the service, the setting and the file that set it.
pub fn resolve_setting(
    playpen: &Playpen,
    config: &ServiceConfig,
    setting: &str,
    value: &str,
    env: &Env,
) -> Result<PathBuf> {
    let context = format!("{setting}{}", config.origin_note(setting));
    resolve_executable(playpen, value.trim(), env, &context)
        .map_err(|e| e.with_service(config.name()))
}

/// Resolve a program name the way service_program is resolved.
/// `context` (such as "service_program (set in FILE)") leads every message.
pub fn resolve_executable(
    playpen: &Playpen,
    program: &str,
    env: &Env,
    context: &str,
) -> Result<PathBuf> {
    let relative = Path::new(program);
    let mut candidates = Vec::new();
    if !relative.is_absolute() {
        if !program.contains('/') {
            candidates.push(playpen.root.join("bin").join(program));
            candidates.push(playpen.ext().join("bin").join(program));
        }
        candidates.push(playpen.ext().join(program));
    } else {
        candidates.push(relative.to_path_buf());
    }
    for candidate in &candidates {
        if candidate.is_file() {
            return if fsutil::is_executable(candidate) {
                Ok(candidate.clone())
            } else {
                Err(Error::config(format!(
                    "{context}: program {} is not executable",
                    candidate.display()
                ))
                .with_hint(format!("chmod +x {}", candidate.display())))
            };
        }
    }
    if !relative.is_absolute() && !program.contains('/') {
        // PATH as bytes: a directory whose name is not UTF-8 is still searched.
        let path = env
            .get("PATH")
            .cloned()
            .or_else(|| std::env::var_os("PATH"))
            .unwrap_or_default();
        if let Ok(found) = which::which_in(program, Some(path), &playpen.root) {
            return Ok(found);
        }
    }
    let mut looked: Vec<String> = candidates.iter().map(|c| c.display().to_string()).collect();
    if !relative.is_absolute() && !program.contains('/') {
        looked.push("PATH".into());
    }
    Err(Error::config(format!(
        "{context}: program {program:?} not found (looked in {})",
        looked.join(", ")
    ))
    .with_hint("install the program, or fix service_program"))
}

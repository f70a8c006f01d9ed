//! The playpen's service registry, `var/servicectl/state`: one line per service,
//! `NAME<TAB>TYPE<TAB>enable|disable<TAB>DETAILS` (§9). `new-service` registers a
//! service (enabled), `remove-service` drops it; a disabled service is left out when a
//! command acts on the role's services.

use crate::error::{Error, Result};
use crate::playpen::Playpen;
use crate::playpen::fsutil;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub service_type: String,
    pub enabled: bool,
    pub details: Vec<String>,
}

fn path(playpen: &Playpen) -> PathBuf {
    playpen.state_dir().join("state")
}

pub fn load(playpen: &Playpen) -> Result<Vec<Entry>> {
    let text = fsutil::read_optional(&path(playpen))?.unwrap_or_default();
    Ok(text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|line| {
            let mut fields = line.split('\t');
            let name = fields.next()?.to_string();
            let service_type = fields.next().unwrap_or("init").to_string();
            let enabled = fields.next().unwrap_or("enable") != "disable";
            Some(Entry {
                name,
                service_type,
                enabled,
                details: fields.map(str::to_string).collect(),
            })
        })
        .collect())
}

/// Replace the whole registry (used to restore it after a failed install).
pub fn save(playpen: &Playpen, entries: &[Entry]) -> Result<()> {
    fsutil::ensure_dir(&playpen.state_dir())?;
    let mut text = String::new();
    for e in entries {
        text.push_str(&e.name);
        text.push('\t');
        text.push_str(&e.service_type);
        text.push('\t');
        text.push_str(if e.enabled { "enable" } else { "disable" });
        for d in &e.details {
            text.push('\t');
            text.push_str(d);
        }
        text.push('\n');
    }
    fsutil::write_atomic(&path(playpen), text.as_bytes(), Some(0o644))
}

/// Add or update a service's line; returns true when it was new.
/// Held while the registry is read, changed and written back, so that concurrent
/// new-service / remove-service calls (a package manager installing in parallel) do
/// not lose each other's lines.
fn lock(playpen: &Playpen) -> Result<std::fs::File> {
    fsutil::ensure_dir(&playpen.state_dir())?;
    let path = playpen.state_dir().join("state.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io("open", &path, e))?;
    file.lock().map_err(|e| Error::io("lock", &path, e))?;
    Ok(file)
}

pub fn register(playpen: &Playpen, entry: Entry) -> Result<bool> {
    let _lock = lock(playpen)?;
    let mut entries = load(playpen)?;
    let new = match entries.iter_mut().find(|e| e.name == entry.name) {
        Some(existing) => {
            // Keep the user's enable/disable choice across re-registration.
            let enabled = existing.enabled;
            *existing = Entry { enabled, ..entry };
            false
        }
        None => {
            entries.push(entry);
            true
        }
    };
    save(playpen, &entries)?;
    Ok(new)
}

/// Drop a service's line; returns true when there was one.
pub fn unregister(playpen: &Playpen, name: &str) -> Result<bool> {
    let _lock = lock(playpen)?;
    let mut entries = load(playpen)?;
    let before = entries.len();
    entries.retain(|e| e.name != name);
    if entries.len() == before {
        return Ok(false);
    }
    save(playpen, &entries)?;
    Ok(true)
}

/// Names registered as disabled.
pub fn disabled(playpen: &Playpen) -> Vec<String> {
    load(playpen)
        .unwrap_or_default()
        .into_iter()
        .filter(|e| !e.enabled)
        .map(|e| e.name)
        .collect()
}

/// enable / disable (§9.5): set the desired state of `names`, adding a line (type
/// `service_type`) for a service not registered yet; one read-change-write under the
/// registry's lock, written atomically. Returns the names whose state changed.
pub fn set_enabled(
    playpen: &Playpen,
    names: &[(String, String)],
    enabled: bool,
) -> Result<Vec<String>> {
    let _lock = lock(playpen)?;
    let mut entries = load(playpen)?;
    let mut changed = Vec::new();
    for (name, service_type) in names {
        match entries.iter_mut().find(|e| &e.name == name) {
            Some(e) if e.enabled == enabled => {}
            Some(e) => {
                e.enabled = enabled;
                changed.push(name.clone());
            }
            None => {
                entries.push(Entry {
                    name: name.clone(),
                    service_type: service_type.clone(),
                    enabled,
                    details: Vec::new(),
                });
                if !enabled {
                    changed.push(name.clone());
                }
            }
        }
    }
    save(playpen, &entries)?;
    Ok(changed)
}

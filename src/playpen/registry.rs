//! The playpen's service registry, `var/servicectl/state`: one line per service,
//! `NAME<TAB>TYPE<TAB>enable|disable<TAB>DETAILS` (the desired state). `new-service` registers a
//! service (enabled), `remove-service` drops it; a disabled service is left out when a
//! command acts on the role's services.
//!
//! A line that is not a registration (a comment, a blank line, anything written by hand
//! or by a newer servicectl that this one cannot read) is kept verbatim, in its place,
//! whenever the file is rewritten; the file is rewritten atomically under a lock.

use crate::error::{Error, Result};
use crate::playpen::Playpen;
use crate::playpen::{fsutil, lock, names};
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub service_type: String,
    pub enabled: bool,
    pub details: Vec<String>,
}

impl Entry {
    /// The line as written to the file (without its newline).
    fn line(&self) -> String {
        let mut text = format!(
            "{}\t{}\t{}",
            self.name,
            self.service_type,
            if self.enabled { "enable" } else { "disable" }
        );
        for d in &self.details {
            text.push('\t');
            text.push_str(d);
        }
        text
    }
}

/// One line of the file: a registration, or anything else, kept as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Line {
    Entry(Entry),
    Other(String),
}

/// A registration is `NAME<TAB>TYPE<TAB>enable|disable[<TAB>DETAIL…]` with a good
/// name (the one name rule) and a type; every other line is not one.
fn parse_line(line: &str) -> Line {
    let mut fields = line.split('\t');
    let (Some(name), Some(service_type), Some(state)) =
        (fields.next(), fields.next(), fields.next())
    else {
        return Line::Other(line.to_string());
    };
    let enabled = match state {
        "enable" => true,
        "disable" => false,
        _ => return Line::Other(line.to_string()),
    };
    if !names::is_valid(name) || service_type.is_empty() {
        return Line::Other(line.to_string());
    }
    Line::Entry(Entry {
        name: name.to_string(),
        service_type: service_type.to_string(),
        enabled,
        details: fields.map(str::to_string).collect(),
    })
}

fn path(playpen: &Playpen) -> PathBuf {
    playpen.state_dir().join("state")
}

fn read_lines(playpen: &Playpen) -> Result<Vec<Line>> {
    let path = path(playpen);
    let bytes = fsutil::read_state(&path, fsutil::Links::Refuse)?.unwrap_or_default();
    let text = String::from_utf8(bytes).map_err(|_| {
        Error::config(format!("{} is not UTF-8 text", path.display())).with_hint(format!(
            "fix or remove it (rm {}); new-service registers each service again",
            path.display()
        ))
    })?;
    Ok(text.lines().map(parse_line).collect())
}

/// The registrations (lines that are not one are left out).
pub fn load(playpen: &Playpen) -> Result<Vec<Entry>> {
    Ok(read_lines(playpen)?
        .into_iter()
        .filter_map(|l| match l {
            Line::Entry(e) => Some(e),
            Line::Other(_) => None,
        })
        .collect())
}

/// Replace the registrations with `entries` (used to restore them after a failed
/// install), under the registry lock. Lines that are not registrations stay.
pub fn save(playpen: &Playpen, entries: &[Entry]) -> Result<()> {
    let _lock = lock(playpen)?;
    save_locked(playpen, entries)
}

/// Write `entries` over the registrations of the file as it is now: each keeps the
/// place of its old line, new ones go at the end, and every line that is not a
/// registration is written back verbatim. The caller holds the lock.
fn save_locked(playpen: &Playpen, entries: &[Entry]) -> Result<()> {
    fsutil::ensure_dir(&playpen.state_dir())?;
    let mut written = vec![false; entries.len()];
    let mut text = String::new();
    for line in read_lines(playpen)? {
        match line {
            Line::Other(other) => text.push_str(&other),
            Line::Entry(old) => {
                let Some(i) = entries
                    .iter()
                    .enumerate()
                    .position(|(i, e)| !written[i] && e.name == old.name)
                else {
                    continue;
                };
                written[i] = true;
                text.push_str(&entries[i].line());
            }
        }
        text.push('\n');
    }
    for (entry, done) in entries.iter().zip(written) {
        if !done {
            text.push_str(&entry.line());
            text.push('\n');
        }
    }
    fsutil::write_atomic(&path(playpen), text.as_bytes(), Some(0o644))
}

/// Held while the registry is read, changed and written back, so that concurrent
/// new-service / remove-service calls (a package manager installing in parallel) do
/// not lose each other's lines.
fn lock(playpen: &Playpen) -> Result<std::fs::File> {
    fsutil::ensure_dir(&playpen.state_dir())?;
    lock::lock_file(&playpen.state_dir().join("state.lock"))
}

/// Add or update a service's line; returns true when it was new.
pub fn register(playpen: &Playpen, entry: Entry) -> Result<bool> {
    names::check_service(&entry.name)?;
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
    save_locked(playpen, &entries)?;
    Ok(new)
}

/// Drop a service's line; returns true when there was one. A name that is not a
/// service name is refused (as an unknown service), before anything is touched.
pub fn unregister(playpen: &Playpen, name: &str) -> Result<bool> {
    names::check_service(name)?;
    let _lock = lock(playpen)?;
    let mut entries = load(playpen)?;
    let before = entries.len();
    entries.retain(|e| e.name != name);
    if entries.len() == before {
        return Ok(false);
    }
    save_locked(playpen, &entries)?;
    Ok(true)
}

/// Names registered as disabled. A registry that cannot be read disables nothing
/// (`new-service` and `remove-service` report it).
/// The services registered as disabled. A registry that cannot be read is an error: it
/// must not make every service count as enabled.
pub fn disabled(playpen: &Playpen) -> Result<Vec<String>> {
    Ok(load(playpen)?
        .into_iter()
        .filter(|e| !e.enabled)
        .map(|e| e.name)
        .collect())
}

/// enable / disable: set the desired state of `names`, adding a line (type
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
    save_locked(playpen, &entries)?;
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn playpen() -> (tempfile::TempDir, Playpen) {
        Playpen::scratch()
    }

    fn entry(name: &str) -> Entry {
        Entry {
            name: name.to_string(),
            service_type: "init".to_string(),
            enabled: true,
            details: Vec::new(),
        }
    }

    #[test]
    fn lines_that_are_not_registrations_stay_verbatim_in_place() {
        let (_dir, pp) = playpen();
        std::fs::create_dir_all(pp.state_dir()).unwrap();
        let before = "# comment\nweb\tinit\tdisable\tx\ngarbage line\n\nodd\tinit\tmaybe\ndb\tinit\tenable\n";
        std::fs::write(path(&pp), before).unwrap();
        assert_eq!(
            load(&pp)
                .unwrap()
                .iter()
                .map(|e| &e.name[..])
                .collect::<Vec<_>>(),
            ["web", "db"]
        );
        assert!(!register(&pp, entry("web")).unwrap());
        assert!(register(&pp, entry("cache")).unwrap());
        assert!(unregister(&pp, "db").unwrap());
        assert_eq!(
            std::fs::read_to_string(path(&pp)).unwrap(),
            "# comment\nweb\tinit\tdisable\ngarbage line\n\nodd\tinit\tmaybe\ncache\tinit\tenable\n"
        );
        assert_eq!(disabled(&pp).unwrap(), ["web"]);
    }
}

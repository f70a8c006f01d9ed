//! The per-user registry of playpens, `$XDG_STATE_HOME/servicectl/playpens` (default
//! `~/.local/state/servicectl/playpens`): one JSON object per line naming a playpen (its
//! canonical path), its PLAYPEN_TAG and PORT_PREFIX as last seen, and whether that prefix
//! is a lease (`PORT_PREFIX=auto`). `init`, `start`, `supervise` and a lease write it;
//! `servicectl playpens` reads it.
//!
//! The leases of every playpen of the user are decided here, so the file is changed only
//! under `playpens.lock` beside it and written by rename: two commands leasing at once
//! read each other's lease. An entry whose directory is gone is dropped when the file is
//! read (it is no longer written back). A file that does not parse is never written
//! over: what it holds may be the only record of other playpens' leases, so every
//! command that needs it stops and says how to set it aside.

use crate::error::{Error, Result};
use crate::playpen::{fsutil, lock};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What the registry knows of one playpen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The playpen's root, canonical.
    pub path: PathBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<u32>,
    /// The prefix was leased (PORT_PREFIX=auto), not set.
    #[serde(default)]
    pub leased: bool,
    /// How many ports from the prefix on the lease holds (its block).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span: Option<u32>,
}

impl Entry {
    pub fn new(path: PathBuf) -> Entry {
        Entry {
            path,
            tag: None,
            prefix: None,
            leased: false,
            span: None,
        }
    }
}

/// Where the registry lives: `$XDG_STATE_HOME/servicectl/`, else
/// `$HOME/.local/state/servicectl/` (an empty or relative XDG_STATE_HOME is ignored, as
/// the XDG base directory specification says).
pub fn dir() -> Result<PathBuf> {
    if let Some(state) = std::env::var_os("XDG_STATE_HOME").map(PathBuf::from)
        && state.is_absolute()
    {
        return Ok(state.join("servicectl"));
    }
    match std::env::var_os("HOME").map(PathBuf::from) {
        Some(home) if home.is_absolute() => Ok(home.join(".local/state/servicectl")),
        _ => Err(Error::config(
            "neither XDG_STATE_HOME nor HOME is set to an absolute path: servicectl has nowhere to keep its registry of playpens",
        )
        .with_hint("set HOME (or XDG_STATE_HOME) to your home directory")),
    }
}

pub fn path() -> Result<PathBuf> {
    Ok(dir()?.join("playpens"))
}

/// The entries of the registry (none when it does not exist yet), those whose
/// directory is gone left out.
pub fn read() -> Result<Vec<Entry>> {
    let path = path()?;
    let entries = parse(&path, fsutil::read_state(&path, fsutil::Links::Refuse)?)?;
    Ok(entries.into_iter().filter(|e| e.path.is_dir()).collect())
}

fn parse(path: &Path, bytes: Option<Vec<u8>>) -> Result<Vec<Entry>> {
    let Some(bytes) = bytes else {
        return Ok(Vec::new());
    };
    let garbage = |line: usize, why: String| {
        let aside = format!("{}.bad", path.display());
        Error::config(format!(
            "the registry of playpens {} cannot be read: line {line}: {why}",
            path.display()
        ))
        .with_hint(format!(
            "nothing was changed; look at it, then set it aside (mv {} {aside}): the next command writes a new one, and each playpen is listed again by its next start",
            path.display()
        ))
    };
    let text = String::from_utf8(bytes).map_err(|_| garbage(1, "not UTF-8 text".into()))?;
    let mut entries: Vec<Entry> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let entry: Entry = serde_json::from_str(line)
            .map_err(|e| garbage(i + 1, format!("not a playpen entry ({e})")))?;
        entries.retain(|e| e.path != entry.path);
        entries.push(entry);
    }
    Ok(entries)
}

fn write(path: &Path, entries: &[Entry]) -> Result<()> {
    let mut text = String::new();
    for e in entries {
        text.push_str(&serde_json::to_string(e).expect("serialises"));
        text.push('\n');
    }
    fsutil::write_atomic(path, text.as_bytes(), Some(0o600)).map_err(|e| unwritable(path, e))
}

fn unwritable(path: &Path, e: Error) -> Error {
    let hint = format!(
        "make {} writable for this user (or point XDG_STATE_HOME elsewhere); nothing was changed",
        path.parent().unwrap_or(path).display()
    );
    Error {
        hint: Some(hint),
        ..e
    }
}

/// The registry held under its lock: `entries` as read (stale ones dropped), to be
/// changed and [`Locked::save`]d; the lock is released when it is dropped.
pub struct Locked {
    _lock: std::fs::File,
    path: PathBuf,
    before: Vec<Entry>,
    pub entries: Vec<Entry>,
}

impl Locked {
    /// Write the entries back, when they changed.
    pub fn save(&mut self) -> Result<()> {
        if self.entries != self.before {
            write(&self.path, &self.entries)?;
            self.before = self.entries.clone();
        }
        Ok(())
    }
}

/// Lock the registry and read it. A file that does not parse is an error, and is
/// never written over.
pub fn lock() -> Result<Locked> {
    let dir = dir()?;
    let path = dir.join("playpens");
    fsutil::ensure_dir(&dir).map_err(|e| unwritable(&path, e))?;
    let lock = lock::lock_file(&dir.join("playpens.lock")).map_err(|e| unwritable(&path, e))?;
    let before = parse(&path, fsutil::read_state(&path, fsutil::Links::Refuse)?)?;
    let entries = before.iter().filter(|e| e.path.is_dir()).cloned().collect();
    Ok(Locked {
        _lock: lock,
        path,
        before,
        entries,
    })
}

/// Read the registry, let `change` edit it, and write it back when it changed, all under
/// the registry's lock; `change`'s answer is returned. Nothing is written when `change`
/// fails.
pub fn update<T>(change: impl FnOnce(&mut Vec<Entry>) -> Result<T>) -> Result<T> {
    let mut locked = lock()?;
    let answer = change(&mut locked.entries)?;
    locked.save()?;
    Ok(answer)
}

/// Record what a command learnt of a playpen (its tag, its prefix when it is set, not
/// leased): read first without the lock, so a command that changes nothing writes
/// nothing. A leased prefix is kept (the lease records itself).
pub fn note(root: &Path, tag: Option<&str>, prefix: Option<u32>) -> Result<()> {
    let path = canonical(root);
    let wanted = |e: &Entry| {
        let prefix_same = if e.leased { true } else { e.prefix == prefix };
        e.tag.as_deref() == tag && prefix_same
    };
    if read()?.iter().any(|e| e.path == path && wanted(e)) {
        return Ok(());
    }
    update(|entries| {
        let entry = match entries.iter_mut().find(|e| e.path == path) {
            Some(e) => e,
            None => {
                entries.push(Entry::new(path.clone()));
                entries.last_mut().expect("pushed")
            }
        };
        entry.tag = tag.map(str::to_string);
        if !entry.leased {
            entry.prefix = prefix;
        }
        Ok(())
    })
}

/// The path the registry knows a playpen by.
pub fn canonical(root: &Path) -> PathBuf {
    std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_later_line_for_the_same_playpen_wins_and_blank_lines_are_skipped() {
        let text = "{\"path\":\"/a\",\"prefix\":20000,\"leased\":true}\n\n{\"path\":\"/a\",\"tag\":\"x\"}\n";
        let entries = parse(Path::new("/r"), Some(text.as_bytes().to_vec())).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].tag.as_deref(), Some("x"));
        assert_eq!(entries[0].prefix, None);
    }

    #[test]
    fn garbage_names_the_file_and_the_line() {
        let err = parse(
            Path::new("/r/playpens"),
            Some(b"{\"path\":\"/a\"}\nnot json\n".to_vec()),
        )
        .unwrap_err();
        assert!(
            err.message.starts_with(
                "the registry of playpens /r/playpens cannot be read: line 2: not a playpen entry"
            ),
            "{}",
            err.message
        );
        assert!(err.hint.unwrap().contains("mv /r/playpens /r/playpens.bad"));
    }
}

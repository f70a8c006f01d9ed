//! `PORT_PREFIX=auto`: a prefix leased for this playpen, so that two checkouts of one
//! project (whose role configs are the same) never share ports.
//!
//! The lease is the lowest multiple of 100 in the range (20000–60000, or
//! `SERVICECTL_PORT_PREFIX_RANGE=FIRST-LAST`) whose block of [`SPAN`] ports no other
//! playpen of the user has leased (the per-user registry, [`roster`]) and on which
//! nothing listens now (the kernel's socket table, read without spawning anything). It
//! is kept in `var/servicectl/port-prefix`, three lines: the prefix, the playpen's path,
//! and its directory's device and inode. A later command of the same playpen reuses it;
//! a copy (`cp -a`, another path and inode) or a moved playpen leases anew.
//!
//! Leases are taken under the registry's lock, and the playpen's own lease is read again
//! under it, so two commands leasing at once (in one playpen or in several) never end
//! with the same block.

use crate::config::envars::PORT_PREFIX;
use crate::config::{Origin, ServiceConfig};
use crate::error::{Error, Result};
use crate::playpen::{Playpen, fsutil, roster};
use crate::process::sockets::Sockets;
use std::ops::RangeInclusive;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The value of PORT_PREFIX that asks for a lease.
pub const AUTO: &str = "auto";
/// Ports a lease holds from its prefix on: every offset below 100 (prefixes are
/// multiples of 100, so blocks never overlap).
pub const SPAN: u32 = 100;
/// Overrides the range leases are taken from (`FIRST-LAST`), for a machine whose ports
/// are parcelled out otherwise, and for tests.
pub const RANGE_ENV: &str = "SERVICECTL_PORT_PREFIX_RANGE";
const DEFAULT_RANGE: RangeInclusive<u32> = 20000..=60000;

/// `var/servicectl/port-prefix`.
pub fn file(playpen: &Playpen) -> PathBuf {
    playpen.state_dir().join("port-prefix")
}

/// The service's PORT_PREFIX is the playpen's lease (the shell put it there).
pub fn leased_in(config: &ServiceConfig) -> bool {
    config.vars.get(PORT_PREFIX).is_some_and(
        |v| matches!(&v.origin, Origin::File(f) if f.ends_with("var/servicectl/port-prefix")),
    )
}

/// The playpen's directory as the lease records it: canonical path, device:inode.
fn identity(playpen: &Playpen) -> Result<(PathBuf, String)> {
    let path = roster::canonical(&playpen.root);
    let meta = std::fs::metadata(&path).map_err(|e| Error::io("inspect", &path, e))?;
    Ok((path, format!("{}:{}", meta.dev(), meta.ino())))
}

/// The playpen's lease, if it holds one: None when there is no lease file, or it was
/// written for another directory (this playpen is a copy of the one that leased it).
pub fn current(playpen: &Playpen) -> Result<Option<u32>> {
    // A var/ (or var/servicectl/) that is no directory holds no lease; what is wrong
    // with it is for the command's own checks to say.
    if !playpen.state_dir().is_dir() {
        return Ok(None);
    }
    let path = file(playpen);
    let Some(bytes) = fsutil::read_state(&path, fsutil::Links::Refuse)? else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(&bytes);
    let mut lines = text.lines();
    let (Some(prefix), Some(owner), Some(inode)) = (lines.next(), lines.next(), lines.next())
    else {
        return Err(bad_file(&path, "it does not hold three lines"));
    };
    let prefix: u32 = prefix
        .trim()
        .parse()
        .map_err(|_| bad_file(&path, &format!("{prefix:?} is not a port prefix")))?;
    let (me, my_inode) = identity(playpen)?;
    Ok((Path::new(owner) == me && inode == my_inode).then_some(prefix))
}

fn bad_file(path: &Path, why: &str) -> Error {
    Error::config(format!(
        "the PORT_PREFIX lease {} cannot be read: {why}",
        path.display()
    ))
    .with_hint(format!(
        "remove it (rm {}): the next command leases a prefix again",
        path.display()
    ))
}

/// The range leases come from.
fn range() -> Result<RangeInclusive<u32>> {
    let Some(raw) = std::env::var_os(RANGE_ENV) else {
        return Ok(DEFAULT_RANGE);
    };
    let text = raw.to_string_lossy();
    let parsed = text.split_once('-').and_then(|(a, b)| {
        let (a, b) = (a.trim().parse::<u32>().ok()?, b.trim().parse::<u32>().ok()?);
        (a <= b && b + SPAN - 1 <= 65535 && a > 0).then_some(a..=b)
    });
    parsed.ok_or_else(|| {
        Error::config(format!(
            "{RANGE_ENV}={text:?} is not a range of port prefixes FIRST-LAST (such as 20000-60000, each block of {SPAN} ports within 1-65535)"
        ))
        .with_hint(format!("fix {RANGE_ENV}, or unset it for 20000-60000"))
    })
}

/// The playpen's lease: the one it holds, else a new one (recorded in the registry and
/// in `var/servicectl/port-prefix`).
pub fn lease(playpen: &Playpen) -> Result<u32> {
    let whose = |e: Error| {
        e.followed_by(format!(
            "so PORT_PREFIX=auto cannot be leased for the playpen {}",
            playpen.root.display()
        ))
    };
    if let Some(prefix) = current(playpen)? {
        return Ok(prefix);
    }
    let range = range()?;
    leased_locked(playpen, &range).map_err(whose)
}

fn leased_locked(playpen: &Playpen, range: &RangeInclusive<u32>) -> Result<u32> {
    let (me, inode) = identity(playpen)?;
    let mut registry = roster::lock()?;
    // Another command of this playpen may have leased while we waited for the lock.
    if let Some(prefix) = current(playpen)? {
        return Ok(prefix);
    }
    let taken: Vec<(u32, u32)> = registry
        .entries
        .iter()
        .filter(|e| e.leased && e.path != me)
        .filter_map(|e| Some((e.prefix?, e.span.unwrap_or(SPAN))))
        .collect();
    let sockets = Sockets::read();
    let first = range.start().div_ceil(100) * 100;
    let (mut busy, mut leased) = (0, 0);
    let mut chosen = None;
    for prefix in (first..=*range.end()).step_by(100) {
        if prefix + SPAN - 1 > 65535 {
            break;
        }
        if taken
            .iter()
            .any(|(p, s)| prefix < p + s && *p < prefix + SPAN)
        {
            leased += 1;
        } else if (prefix..prefix + SPAN).any(|port| sockets.is_listening(port as u16)) {
            busy += 1;
        } else {
            chosen = Some(prefix);
            break;
        }
    }
    let Some(prefix) = chosen else {
        return Err(Error::config(format!(
            "PORT_PREFIX=auto: no free block of {SPAN} ports in {}-{}: {leased} are leased by other playpens and {busy} have something listening",
            range.start(),
            range.end()
        ))
        .with_hint(format!(
            "`servicectl playpens` lists the playpens holding leases: remove those you no longer need (their directories), or set PORT_PREFIX to a number in the role config (or widen {RANGE_ENV})"
        )));
    };
    let entry = match registry.entries.iter_mut().find(|e| e.path == me) {
        Some(e) => e,
        None => {
            registry.entries.push(roster::Entry::new(me.clone()));
            registry.entries.last_mut().expect("pushed")
        }
    };
    entry.prefix = Some(prefix);
    entry.leased = true;
    entry.span = Some(SPAN);
    // The registry first, still under its lock: a lease file that then cannot be
    // written leaves the block recorded for this playpen, which the next command leases
    // again; never a lease that other playpens do not see.
    registry.save()?;
    fsutil::ensure_dir(&playpen.state_dir())?;
    let text = format!("{prefix}\n{}\n{inode}\n", me.display());
    fsutil::write_atomic(&file(playpen), text.as_bytes(), Some(0o644))?;
    Ok(prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn playpen() -> (tempfile::TempDir, Playpen) {
        Playpen::scratch()
    }

    #[test]
    fn a_lease_written_for_another_directory_is_not_this_playpens() {
        let (_a, a) = playpen();
        let (_b, b) = playpen();
        std::fs::create_dir_all(a.state_dir()).unwrap();
        let (path, inode) = identity(&a).unwrap();
        std::fs::write(file(&a), format!("20300\n{}\n{inode}\n", path.display())).unwrap();
        assert_eq!(current(&a).unwrap(), Some(20300));
        std::fs::create_dir_all(b.state_dir()).unwrap();
        std::fs::copy(file(&a), file(&b)).unwrap();
        assert_eq!(current(&b).unwrap(), None);
    }

    #[test]
    fn a_lease_file_that_is_garbage_says_to_remove_it() {
        let (_a, a) = playpen();
        std::fs::create_dir_all(a.state_dir()).unwrap();
        std::fs::write(file(&a), "x\ny\nz\n").unwrap();
        let err = current(&a).unwrap_err();
        assert_eq!(
            err.message,
            format!(
                "the PORT_PREFIX lease {} cannot be read: \"x\" is not a port prefix",
                file(&a).display()
            )
        );
    }
}

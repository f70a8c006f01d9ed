//! `servicectl playpens`: every playpen of the user's registry (SPEC §11) with its
//! PLAYPEN_TAG, its PORT_PREFIX (and whether it is leased), its supervisor, how many of
//! its services run, and which of their ports something listens on.
//!
//! It is read from files and the kernel only, so it can run in a shell prompt: the
//! registry, each playpen's catalog (directory names), pidfiles and start records (the
//! ports a service was started with), the supervisor's lock file and the kernel's
//! socket table (read once for all playpens). No process is spawned and no sh is
//! evaluated; the tag and prefix are those the playpen's last `init`, `start`,
//! `supervise` or lease recorded.

use crate::config::session::Session;
use crate::error::Result;
use crate::playpen::catalog::Catalog;
use crate::playpen::{Playpen, fsutil, roster};
use crate::process::pidfile::{self, Observed};
use crate::process::sockets::Sockets;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// One playpen as `playpens` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct PlaypenRow {
    pub path: PathBuf,
    pub tag: Option<String>,
    pub port_prefix: Option<u32>,
    pub leased: bool,
    /// The PID of its supervisor, when one runs.
    pub supervisor_pid: Option<i32>,
    /// Services that run now (and one-shots that are done: up, as status counts them).
    pub running: usize,
    /// Services installed (`ext/services`) or local (`services/`).
    pub known: usize,
    /// Ports of running services that something listens on now, ascending.
    pub listening: Vec<u16>,
}

/// The registry's playpens, in the order they were registered.
pub fn playpens() -> Result<Vec<PlaypenRow>> {
    let entries = roster::read()?;
    let sockets = Sockets::read();
    Ok(entries
        .into_iter()
        .map(|e| {
            let playpen = Playpen {
                root: e.path.clone(),
            };
            let (running, known, mut listening) = services(&playpen, &sockets);
            listening.sort_unstable();
            listening.dedup();
            PlaypenRow {
                supervisor_pid: supervisor(&playpen),
                path: e.path,
                tag: e.tag,
                port_prefix: e.prefix,
                leased: e.leased,
                running,
                known,
                listening,
            }
        })
        .collect())
}

/// (running, known, ports listening) of a playpen's services. A catalog that cannot be
/// read counts no services: the row still shows the playpen.
fn services(playpen: &Playpen, sockets: &Sockets) -> (usize, usize, Vec<u16>) {
    let Ok(catalog) = Catalog::load(playpen, None) else {
        return (0, 0, Vec::new());
    };
    let (mut running, mut known, mut ports) = (0, 0, Vec::new());
    for name in catalog.names() {
        known += 1;
        let observed = pidfile::observe(playpen, name);
        if matches!(observed, Ok((Observed::Stopped, _)))
            && crate::service::oneshot::done(playpen, name).is_some()
        {
            // A one-shot that ran to completion is up, as status counts it.
            running += 1;
        } else if let Ok((Observed::Running { .. } | Observed::Untracked { .. }, record)) = observed
        {
            running += 1;
            ports.extend(
                record
                    .into_iter()
                    .flat_map(|r| r.ports)
                    .map(|(_, port)| port)
                    .filter(|port| sockets.is_listening(*port)),
            );
        }
    }
    (running, known, ports)
}

/// The PID in the supervisor's lock file, when that process is alive and holds this
/// playpen's lock file open (a copy of a playpen carries the original's lock file,
/// naming the original's supervisor).
fn supervisor(playpen: &Playpen) -> Option<i32> {
    let lock = playpen.supervisor_lock();
    let text = fsutil::read_state(&lock, fsutil::Links::Refuse).ok()??;
    let pid: i32 = String::from_utf8_lossy(&text).trim().parse().ok()?;
    holds_open(pid, &roster::canonical(&lock)).then_some(pid)
}

fn holds_open(pid: i32, path: &Path) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten()
        .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|target| target == path))
}

/// Record the playpen in the per-user registry (`servicectl playpens`) with its
/// PLAYPEN_TAG and PORT_PREFIX as the shared layer sets them; a failure is a warning,
/// never a failed start.
pub fn note(session: &mut Session) -> Option<String> {
    let common = session.shell().ok()?.common().ok()?;
    let text = |name: &str| {
        common
            .vars
            .get(name)
            .and_then(|v| v.text())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let tag = text("PLAYPEN_TAG");
    let prefix = text(crate::config::envars::PORT_PREFIX).and_then(|p| p.parse().ok());
    roster::note(&session.playpen.root, tag, prefix)
        .err()
        .map(|e| e.to_string())
}

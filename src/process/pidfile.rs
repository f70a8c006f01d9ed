//! Pidfiles and start records, and what they say about a service without starting any
//! process or evaluating any config.
//!
//! `var/run/NAME.pid` holds the PID, as every tool expects. `var/run/NAME.start` is
//! servicectl's own record of the start: the process's kernel start time (so a reused
//! PID is recognised), its program, run name and ports, for `status` to report.

use crate::error::{Error, Result};
use crate::playpen::Playpen;
use crate::playpen::{fsutil, names};
use crate::process::proc;
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct StartRecord {
    /// None for services with service_no_pidfile whose start script we did not watch.
    pub pid: Option<i32>,
    /// Kernel start time of `pid`, in clock ticks since boot.
    pub start_ticks: Option<u64>,
    pub version: Option<String>,
    pub program: Option<String>,
    pub run_name: Option<String>,
    /// Unix time of the start, in seconds (with fractions: file changes within the
    /// same second must compare correctly).
    pub started_at: f64,
    #[serde(default)]
    pub ports: Vec<(String, u16)>,
    #[serde(default)]
    pub no_pidfile: bool,
    /// Path of the linkfarm symlink, so that remove-service and collision checks find it.
    #[serde(default)]
    pub symlink: Option<String>,
    /// The launch mark (SERVICECTL_LAUNCH, see `census`) that every process of this start
    /// carries in its environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch: Option<String>,
    /// Set in the record written before the spawn and cleared once the process is on
    /// record: the servicectl doing the start. Such a record without a live process of
    /// the start's is a start that was cut short (see `tracking`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starting: Option<Starter>,
    /// The process servicectl spawns is the service (it leads its session), so a start
    /// that was cut short can adopt it. False when a script or the program itself writes
    /// the pidfile: only that file says which process is the service.
    #[serde(default)]
    pub leader_is_service: bool,
    /// PLAYPEN_ROOT of the playpen that wrote the record. A record of this playpen
    /// (the same path) describes our process; anything else (a copied playpen, a
    /// record of an older servicectl) is checked against the process itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<String>,
    /// The run of a one-shot (`service::oneshot`): a supervisor does not adopt it as a
    /// daemon; the next start waits for it to end.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub step: bool,
}

/// The servicectl process doing a start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Starter {
    pub pid: i32,
    pub start_ticks: u64,
}

impl Starter {
    /// This servicectl.
    pub fn me() -> Starter {
        Starter {
            pid: std::process::id() as i32,
            start_ticks: proc::own_start_ticks(),
        }
    }

    pub fn is_alive(&self) -> bool {
        proc::start_ticks(self.pid) == Some(self.start_ticks)
    }
}

/// The PID in a pidfile: None when there is none, Some(Err(why)) when the file does not
/// hold one, or is not a small regular file (a FIFO, a symlink, a huge file: see
/// [`fsutil::read_state`]), which makes it stale.
pub fn read_pid(path: &Path) -> Result<Option<Result<i32, String>>> {
    let bytes = match fsutil::read_state(path, fsutil::Links::Refuse) {
        Ok(bytes) => bytes,
        Err(e) if e.kind == crate::error::ErrorKind::Config => return Ok(Some(Err(e.message))),
        Err(e) => return Err(e),
    };
    Ok(bytes.map(|bytes| {
        let text = String::from_utf8_lossy(&bytes);
        let first = text.split_whitespace().next().unwrap_or("");
        first.parse::<i32>().ok().filter(|p| *p > 0).ok_or_else(|| {
            format!(
                "{} does not hold a PID (it holds {})",
                path.display(),
                fsutil::excerpt(text.trim(), 40)
            )
        })
    }))
}

pub fn write_pid(path: &Path, pid: i32) -> Result<()> {
    fsutil::write_runtime(path, format!("{pid}\n").as_bytes(), Some(0o644))
}

pub fn read_record(playpen: &Playpen, service: &str) -> Option<StartRecord> {
    read_record_file(playpen, service).ok().flatten()
}

/// The start record: Err(why) when the file is not a small regular file (see
/// [`fsutil::read_state`]); Ok(None) when it is missing or does not parse.
fn read_record_file(playpen: &Playpen, service: &str) -> Result<Option<StartRecord>, String> {
    if !names::is_valid(service) {
        return Ok(None);
    }
    let bytes = fsutil::read_state(&playpen.start_record(service), fsutil::Links::Refuse)
        .map_err(|e| e.message)?;
    Ok(bytes.and_then(|b| serde_json::from_slice(&b).ok()))
}

pub fn write_record(playpen: &Playpen, service: &str, record: &StartRecord) -> Result<()> {
    let json = serde_json::to_vec_pretty(record).expect("records serialise");
    fsutil::write_runtime(&playpen.start_record(service), &json, Some(0o644))
}

/// Remove the pidfile and start record (after a stop, or when stale).
pub fn clear(playpen: &Playpen, service: &str) -> Result<()> {
    for path in [playpen.pidfile(service), playpen.start_record(service)] {
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove", &path, e).with_service(service)),
        }
    }
    Ok(())
}

/// What the files say about a service's process.
#[derive(Debug, Clone, PartialEq)]
pub enum Observed {
    /// Alive and verified to be the process we started.
    Running { pid: i32, start_ticks: u64 },
    /// Alive and verified by the start record, but its pidfile is gone: still ours, and
    /// `start` writes the pidfile again instead of starting a second copy.
    Untracked { pid: i32, start_ticks: u64 },
    /// Started without a pidfile (service_no_pidfile): only ping can tell.
    Unwatched,
    /// No pidfile and no record.
    Stopped,
    /// A pidfile (or record) that no longer describes our process.
    Stale { pid: Option<i32>, reason: String },
    /// Another servicectl (`by`, alive) is starting it and its process is not on record yet.
    Starting { by: i32 },
    /// A start whose servicectl died before its process was on record: what it left is
    /// found by its launch mark and adopted or stopped (`tracking::settle`) by the next
    /// command that takes the service's lock.
    Interrupted { launch: Option<String> },
}

impl Observed {
    pub fn pid(&self) -> Option<i32> {
        match self {
            Observed::Running { pid, .. } | Observed::Untracked { pid, .. } => Some(*pid),
            Observed::Stale { pid, .. } => *pid,
            _ => None,
        }
    }

    /// Something of the service may run (a start that is under way or was cut short
    /// counts: its process may be alive).
    pub fn is_running(&self) -> bool {
        matches!(
            self,
            Observed::Running { .. }
                | Observed::Untracked { .. }
                | Observed::Unwatched
                | Observed::Starting { .. }
                | Observed::Interrupted { .. }
        )
    }
}

/// Read the pidfile and start record and check the PID against the kernel.
pub fn observe(playpen: &Playpen, service: &str) -> Result<(Observed, Option<StartRecord>)> {
    names::check_service(service)?;
    let (observed, record) = observe_files(playpen, service)?;
    // A record written before the spawn whose process is not (yet) on record.
    let observed = match record.as_ref().and_then(|r| r.starting) {
        Some(starter)
            if !matches!(
                observed,
                Observed::Running { .. } | Observed::Untracked { .. }
            ) =>
        {
            if starter.is_alive() {
                Observed::Starting { by: starter.pid }
            } else {
                Observed::Interrupted {
                    launch: record.as_ref().and_then(|r| r.launch.clone()),
                }
            }
        }
        _ => observed,
    };
    Ok((observed, record))
}

fn observe_files(playpen: &Playpen, service: &str) -> Result<(Observed, Option<StartRecord>)> {
    let pidfile = playpen.pidfile(service);
    let (record, bad_record) = match read_record_file(playpen, service) {
        Ok(record) => (record, None),
        Err(reason) => (None, Some(reason)),
    };
    let pid = match read_pid(&pidfile)? {
        Some(Ok(pid)) => pid,
        Some(Err(reason)) => {
            return Ok((Observed::Stale { pid: None, reason }, record));
        }
        None => {
            let observed = match &record {
                None if let Some(reason) = bad_record => Observed::Stale { pid: None, reason },
                Some(r) if r.no_pidfile => match r.pid {
                    Some(pid) => check_identity(playpen, pid, r),
                    None => Observed::Unwatched,
                },
                Some(r) => match r.pid.map(|pid| check_identity(playpen, pid, r)) {
                    Some(Observed::Running { pid, start_ticks }) => {
                        Observed::Untracked { pid, start_ticks }
                    }
                    _ => Observed::Stopped,
                },
                None => Observed::Stopped,
            };
            return Ok((observed, record));
        }
    };
    let observed = match &record {
        Some(r) if r.pid == Some(pid) => check_identity(playpen, pid, r),
        // The program wrote another PID, or we have no record: a live PID is ours if it
        // looks like our program (with a record) or was started for this service of
        // this playpen (without one: its environment says so).
        _ => match proc::start_ticks(pid) {
            Some(ticks)
                if match &record {
                    Some(r) => looks_like(playpen, service, pid, r),
                    None => started_for(playpen, service, pid),
                } =>
            {
                Observed::Running {
                    pid,
                    start_ticks: ticks,
                }
            }
            Some(_) => Observed::Stale {
                pid: Some(pid),
                reason: format!(
                    "PID {pid} in {} belongs to another program ({})",
                    pidfile.display(),
                    proc::argv0(pid).unwrap_or_else(|| "unknown".into())
                ),
            },
            None => Observed::Stale {
                pid: Some(pid),
                reason: format!("PID {pid} in {} is not running", pidfile.display()),
            },
        },
    };
    Ok((observed, record))
}

/// Was process `pid` started for `service` of this playpen? Every process servicectl
/// starts for a service (and every daemon it forks) inherits PLAYPEN_ROOT and
/// SERVICE_NAME; an unrelated process that got a recycled PID does not have them.
fn started_for(playpen: &Playpen, service: &str, pid: i32) -> bool {
    let mut environ = Vec::new();
    proc::read_environ(pid, &mut environ)
        && proc::env_value(&environ, "SERVICE_NAME") == Some(service.as_bytes())
        && proc::env_value(&environ, "PLAYPEN_ROOT").is_some_and(|root| {
            crate::process::census::RootMatcher::new(&playpen.root).is_ours(root)
        })
}

/// Is process `pid` (named in a pidfile the program rewrote) the one the record
/// describes? Its environment says it was started for this service of this playpen, or
/// its title names this playpen's *tagged* linkfarm symlink, as daemons that rewrite
/// their environment keep it in their title (`nginx: master process …/nginx-demo`).
/// An untagged run name, or the executable, proves nothing: every playpen has them; nor
/// does a title naming another playpen's linkfarm (a copied playpen's record names the
/// original's symlink).
fn looks_like(playpen: &Playpen, service: &str, pid: i32, record: &StartRecord) -> bool {
    if started_for(playpen, service, pid) {
        return true;
    }
    let Some(link) = record
        .symlink
        .as_deref()
        .and_then(|l| std::path::Path::new(l).file_name())
        .filter(|link| {
            record
                .run_name
                .as_deref()
                .is_some_and(|run| link.to_str() != Some(run))
        })
    else {
        return false;
    };
    let ours = playpen.linkfarm();
    proc::argv0(pid).is_some_and(|title| {
        title.split_whitespace().any(|word| {
            let word = std::path::Path::new(word);
            word.file_name() == Some(link)
                && (!word.is_absolute() || word.parent() == Some(ours.as_path()))
        })
    })
}

/// The other playpen a live process belongs to, if it says so: PLAYPEN_ROOT in its
/// environment names another directory, or (for a process that cleared or rewrote its
/// environment) its title names another playpen's `var/linkfarm/` symlink. A playpen
/// copied with `cp -a` while it ran has pidfiles and start records describing the
/// original's processes, start times included: this is what tells them apart.
pub fn other_playpen(playpen: &Playpen, pid: i32) -> Option<String> {
    let mut environ = Vec::new();
    let mut roots = crate::process::census::RootMatcher::new(&playpen.root);
    if proc::read_environ(pid, &mut environ)
        && let Some(root) = proc::env_value(&environ, "PLAYPEN_ROOT")
    {
        return (!roots.is_ours(root)).then(|| String::from_utf8_lossy(root).into_owned());
    }
    let raw =
        crate::playpen::fsutil::read_small(std::path::Path::new(&format!("/proc/{pid}/cmdline")))
            .ok()?;
    let title = String::from_utf8_lossy(&raw).replace('\0', " ");
    let by_title = title.split_whitespace().find_map(|word| {
        let (root, _) = word.split_once("/var/linkfarm/")?;
        (!root.is_empty() && !roots.is_ours(root.as_bytes())).then(|| root.to_string())
    });
    // A title that names no linkfarm (`nginx: master process nginx -p …`) leaves the
    // working directory servicectl gave it: the playpen's root, when that is another
    // playpen (one with etc/role or ext/services), the process is that playpen's.
    by_title.or_else(|| {
        let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).ok()?;
        let is_playpen = cwd.join("etc/role").is_file() || cwd.join("ext/services").is_dir();
        (is_playpen && !roots.is_ours(cwd.as_os_str().as_encoded_bytes()))
            .then(|| cwd.display().to_string())
    })
}

fn check_identity(playpen: &Playpen, pid: i32, record: &StartRecord) -> Observed {
    match (proc::start_ticks(pid), record.start_ticks) {
        (None, _) => Observed::Stale {
            pid: Some(pid),
            reason: format!("PID {pid} is not running"),
        },
        (Some(now), Some(then)) if now != then => Observed::Stale {
            pid: Some(pid),
            reason: format!(
                "PID {pid} now belongs to another process ({}); the service died and its PID was reused",
                proc::argv0(pid).unwrap_or_else(|| "unknown".into())
            ),
        },
        // Written here: no need to ask the process.
        (Some(now), _) if record.root.as_deref().map(Path::new) == Some(playpen.root.as_path()) => {
            Observed::Running {
                pid,
                start_ticks: now,
            }
        }
        (Some(now), _) => match other_playpen(playpen, pid) {
            Some(other) => Observed::Stale {
                pid: Some(pid),
                reason: format!(
                    "PID {pid} is a process of the playpen {other}; this playpen's var/run was copied from it"
                ),
            },
            None => Observed::Running {
                pid,
                start_ticks: now,
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Child, Command};

    fn playpen() -> (tempfile::TempDir, Playpen) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let playpen = Playpen::init(&root, "dev").unwrap();
        playpen.ensure_var().unwrap();
        (dir, playpen)
    }

    /// A real process, killed when the test ends however it ends.
    struct Proc(Child);

    impl Proc {
        fn id(&self) -> u32 {
            self.0.id()
        }
    }

    impl Drop for Proc {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn sleeper(env: &[(&str, &std::ffi::OsStr)]) -> Proc {
        let mut cmd = Command::new("sleep");
        cmd.arg("1000")
            .env_remove("PLAYPEN_ROOT")
            .env_remove("SERVICE_NAME")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = Proc(cmd.spawn().unwrap());
        // Until the new image is in place /proc shows an empty command line and
        // environment; a pidfile naming it then is rightly not trusted.
        let pid = child.id() as i32;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while proc::argv0(pid).is_none_or(|a| a.is_empty()) && std::time::Instant::now() < deadline
        {
            std::thread::yield_now();
        }
        child
    }

    /// A real process started for `service` of `playpen` (its environment says so).
    fn service_process(playpen: &Playpen, service: &str) -> Proc {
        sleeper(&[
            ("PLAYPEN_ROOT", playpen.root.as_os_str()),
            ("SERVICE_NAME", std::ffi::OsStr::new(service)),
        ])
    }

    fn record_of(playpen: &Playpen, pid: i32) -> StartRecord {
        StartRecord {
            pid: Some(pid),
            start_ticks: proc::start_ticks(pid),
            root: Some(playpen.root.display().to_string()),
            leader_is_service: true,
            ..StartRecord::default()
        }
    }

    fn stop(child: Proc) {
        drop(child);
    }

    #[test]
    fn no_files_is_stopped() {
        let (_dir, pp) = playpen();
        assert!(matches!(observe(&pp, "web").unwrap().0, Observed::Stopped));
    }

    #[test]
    fn a_recorded_live_process_runs_and_without_its_pidfile_is_untracked() {
        let (_dir, pp) = playpen();
        let child = service_process(&pp, "web");
        let pid = child.id() as i32;
        write_record(&pp, "web", &record_of(&pp, pid)).unwrap();
        write_pid(&pp.pidfile("web"), pid).unwrap();
        assert!(
            matches!(observe(&pp, "web").unwrap().0, Observed::Running { pid: p, .. } if p == pid)
        );
        std::fs::remove_file(pp.pidfile("web")).unwrap();
        assert!(
            matches!(observe(&pp, "web").unwrap().0, Observed::Untracked { pid: p, .. } if p == pid)
        );
        stop(child);
    }

    #[test]
    fn a_dead_or_reused_pid_is_stale() {
        let (_dir, pp) = playpen();
        let child = service_process(&pp, "web");
        let pid = child.id() as i32;
        let mut record = record_of(&pp, pid);
        // The same PID with another kernel start time: a reused PID, never ours.
        record.start_ticks = record.start_ticks.map(|t| t.saturating_sub(1));
        write_record(&pp, "web", &record).unwrap();
        write_pid(&pp.pidfile("web"), pid).unwrap();
        assert!(
            matches!(observe(&pp, "web").unwrap().0, Observed::Stale { pid: Some(p), .. } if p == pid)
        );
        stop(child);
        write_record(
            &pp,
            "web",
            &StartRecord {
                start_ticks: Some(1),
                ..record
            },
        )
        .unwrap();
        let (observed, _) = observe(&pp, "web").unwrap();
        assert!(
            matches!(observed, Observed::Stale { pid: Some(p), .. } if p == pid),
            "{observed:?}"
        );
    }

    #[test]
    fn a_pidfile_without_a_record_is_ours_only_if_its_process_says_so() {
        let (_dir, pp) = playpen();
        let ours = service_process(&pp, "web");
        write_pid(&pp.pidfile("web"), ours.id() as i32).unwrap();
        let seen = observe(&pp, "web").unwrap().0;
        assert!(matches!(seen, Observed::Running { .. }), "{seen:?}");
        // Another service's process, and a process of no playpen at all.
        let other = service_process(&pp, "db");
        write_pid(&pp.pidfile("web"), other.id() as i32).unwrap();
        assert!(matches!(
            observe(&pp, "web").unwrap().0,
            Observed::Stale { .. }
        ));
        let stranger = sleeper(&[]);
        write_pid(&pp.pidfile("web"), stranger.id() as i32).unwrap();
        assert!(matches!(
            observe(&pp, "web").unwrap().0,
            Observed::Stale { .. }
        ));
        stop(ours);
        stop(other);
        stop(stranger);
    }

    #[test]
    fn a_pidfile_that_holds_no_pid_is_stale_naming_the_file() {
        let (_dir, pp) = playpen();
        std::fs::write(pp.pidfile("web"), "not a pid\n").unwrap();
        match observe(&pp, "web").unwrap().0 {
            Observed::Stale { pid: None, reason } => {
                assert!(reason.contains("web.pid"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }
}

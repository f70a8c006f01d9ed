//! At launch: what runs already is taken over, so that a supervisor killed and started
//! again starts nothing twice and orphans nothing.

use super::*;
use crate::process::pidfile::{self, Observed};

impl Driver {
    /// The events of what runs: every service with a live process on record (pidfile
    /// and start record, same kernel start time), and every cron run or inetd handler
    /// an earlier supervisor left (found by its launch mark). Checks an earlier
    /// supervisor left are ended: nobody waits for their answer.
    pub(super) fn adopt(&mut self) -> Vec<Event> {
        let catalog = match crate::playpen::catalog::Catalog::load(&self.playpen, None) {
            Ok(c) => c,
            Err(e) => {
                log(&format!("cannot read the services: {e}"));
                return Vec::new();
            }
        };
        let mut events = Vec::new();
        let names: Vec<String> = catalog.names().map(str::to_string).collect();
        let mut unrecorded: Option<HashMap<String, Vec<i32>>> = None;
        for name in &names {
            let Ok((observed, record)) = pidfile::observe(&self.playpen, name) else {
                continue;
            };
            if record.is_some_and(|r| r.step) {
                // A one-shot's run is no daemon: its start (at launch) waits for it.
                continue;
            }
            let pid = match observed {
                Observed::Running { pid, .. } | Observed::Untracked { pid, .. } => Some(pid),
                Observed::Unwatched => None,
                _ => {
                    let found = unrecorded.get_or_insert_with(|| self.unrecorded_services());
                    match found.get(name).map(Vec::as_slice) {
                        Some(&[pid]) => {
                            self.record_found(name, pid);
                            Some(pid)
                        }
                        _ => continue,
                    }
                }
            };
            events.push(Event::Adopted {
                name: name.clone(),
                pid,
            });
        }
        if !self.after_kill {
            // The last supervisor shut down: it ended every run and check it started.
            return events;
        }
        let census = crate::process::census::Census::scan(&self.playpen);
        for m in census.members() {
            if let Some(mark) = m.launch.strip_prefix(armed::RUN_MARK) {
                // The leader of each run's process group is the run (what it forks
                // goes with it).
                if m.pid == m.pgid && names.contains(&m.service) {
                    let _ = mark;
                    events.push(Event::AdoptedChild {
                        name: m.service.clone(),
                        pid: m.pid,
                    });
                }
            } else if let Some(maker) = m.launch.strip_prefix(crate::service::hooks::CHECK_MARK)
                && !maker_alive(maker)
            {
                log(&format!(
                    "{}: ending a check (pid {}) that an earlier supervisor left",
                    m.service, m.pid
                ));
                let _ =
                    nix::sys::signal::killpg(nix::unistd::Pid::from_raw(m.pgid), Signal::SIGKILL);
            }
        }
        events
    }

    /// Services whose process was started but not yet put on record when the last
    /// supervisor died (between the spawn and the pidfile): session leaders of this
    /// playpen (PLAYPEN_ROOT in their environment) named by a linkfarm symlink, by
    /// SERVICE_NAME. Hooks and scripts lead sessions too, but are not run through the
    /// linkfarm.
    fn unrecorded_services(&self) -> HashMap<String, Vec<i32>> {
        let root = self.playpen.root.display().to_string();
        let linkfarm = self.playpen.linkfarm();
        let mut found: HashMap<String, Vec<i32>> = HashMap::new();
        for pid in proc::session_leaders() {
            if proc::environ_var(pid, "PLAYPEN_ROOT").as_deref() != Some(root.as_str()) {
                continue;
            }
            let Some(service) = proc::environ_var(pid, "SERVICE_NAME") else {
                continue;
            };
            let through_linkfarm = proc::argv0(pid).is_some_and(|a| {
                !a.is_empty() && !a.contains('/') && linkfarm.join(&a).symlink_metadata().is_ok()
            });
            if through_linkfarm {
                found.entry(service).or_default().push(pid);
            }
        }
        found
    }

    /// Put a found process on record, as its start would have.
    fn record_found(&self, name: &str, pid: i32) {
        let record = pidfile::StartRecord {
            pid: Some(pid),
            start_ticks: proc::start_ticks(pid),
            run_name: proc::argv0(pid),
            symlink: proc::argv0(pid)
                .map(|a| self.playpen.linkfarm().join(a).display().to_string()),
            started_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0),
            ..Default::default()
        };
        let written = pidfile::write_pid(&self.playpen.pidfile(name), pid)
            .and_then(|()| pidfile::write_record(&self.playpen, name, &record));
        if let Err(e) = written {
            log(&format!("{name}: cannot put pid {pid} on record: {e}"));
        }
        log(&format!(
            "{name}: found pid {pid}, started but not on record"
        ));
    }
}

/// A launch mark `PID.TICKS.SERIAL`: is the servicectl that made it still running?
fn maker_alive(mark: &str) -> bool {
    let mut parts = mark.split('.');
    let (Some(pid), Some(ticks)) = (parts.next(), parts.next()) else {
        return false;
    };
    match (pid.parse::<i32>(), ticks.parse::<u64>()) {
        (Ok(pid), Ok(ticks)) => proc::start_ticks(pid) == Some(ticks),
        _ => false,
    }
}

//! A ready service stays watched: its health check repeated, its watchdog, and what it
//! says itself over sd_notify (READY, RELOADING, STATUS, MAINPID, WATCHDOG …).

use super::*;
use crate::process::notify::Field;
use nix::sys::signal::Signal;

impl Machine {
    /// A deadline of a ready service's liveness passed.
    pub(super) fn on_live_due(&mut self, i: Sid, live: Liveness, now: Now) {
        let Phase::Running { pid, .. } = self.services[i].phase else {
            return;
        };
        if let Some(due) = live.watchdog
            && due <= now.mono
        {
            let secs = self.services[i]
                .settings()
                .and_then(|s| s.watchdog)
                .map(service::secs_text)
                .unwrap_or_default();
            let reason = format!("watchdog: no WATCHDOG=1 within {secs} s");
            let name = self.services[i].name.clone();
            self.log(format!("{name}: {reason}; killing it (SIGABRT)"));
            self.effects.push(Effect::EndChecks { service: i });
            match pid {
                Some(pid) => self.halt(i, pid, Signal::SIGABRT, None, Some(reason), now),
                None => self.stop_failed(i, reason, now),
            }
            return;
        }
        if let Some((Check::Next(at), failures)) = live.health
            && at <= now.mono
        {
            let Some(config) = self.services[i].config.clone() else {
                return;
            };
            let timeout = config.settings.health.timeout;
            let job = self.job(
                Some(i),
                JobFor::Health(i),
                Work::Check(config, timeout, pid),
            );
            if let Phase::Running { live, .. } = &mut self.services[i].phase {
                live.health = Some((Check::Running(job), failures));
            }
        }
    }

    /// A health check ended.
    pub(super) fn on_health(&mut self, i: Sid, job: JobId, ok: bool, detail: String, now: Now) {
        let Phase::Running { live, .. } = self.services[i].phase else {
            return;
        };
        let Some((Check::Running(j), failures)) = live.health else {
            return;
        };
        if j != job {
            return;
        }
        let Some(health) = self.services[i].settings().map(|s| s.health) else {
            return;
        };
        let failures = if ok { 0 } else { failures + 1 };
        if failures >= health.retries {
            return self.stop_failed(i, format!("unhealthy: {detail}"), now);
        }
        if !ok {
            let name = self.services[i].name.clone();
            self.log(format!(
                "{name}: health check failed ({failures} of {} in a row): {detail}",
                health.retries
            ));
        }
        if let Phase::Running { live, .. } = &mut self.services[i].phase {
            live.health = Some((Check::Next(now.mono + health.interval), failures));
        }
    }

    /// What a process of the service said over sd_notify.
    pub(super) fn on_notify(&mut self, i: Sid, fields: Vec<Field>, now: Now) {
        for field in fields {
            match field {
                Field::Ready => match &mut self.services[i].phase {
                    Phase::Checking { .. } => self.mark_ready(i, now),
                    Phase::Running { unready, .. } => *unready = None,
                    // Said during its start grace, before the start job answered.
                    Phase::Starting { notified, .. } => *notified = true,
                    _ => {}
                },
                Field::Reloading => {
                    if let Phase::Running { unready, .. } = &mut self.services[i].phase {
                        *unready = Some("reloading (it sent RELOADING=1)".into());
                    }
                }
                Field::Stopping => {
                    self.services[i].note = Some("stopping (it sent STOPPING=1)".into())
                }
                Field::Status(text) => self.services[i].note = Some(text),
                Field::Errno(n) => {
                    self.services[i].note = Some(format!(
                        "it reported errno {n} ({})",
                        nix::errno::Errno::from_raw(n).desc()
                    ))
                }
                Field::Watchdog => {
                    let every = self.services[i].settings().and_then(|s| s.watchdog);
                    if let (Phase::Running { live, .. }, Some(every)) =
                        (&mut self.services[i].phase, every)
                    {
                        live.watchdog = Some(now.mono + every);
                    }
                }
                Field::MainPid(pid) => {
                    // The driver checked that it is a process of the service.
                    if self.services[i].phase.is_up() && self.services[i].phase.pid() != Some(pid) {
                        let name = self.services[i].name.clone();
                        self.log(format!(
                            "{name}: its main process is now pid {pid} (MAINPID)"
                        ));
                        self.effects.push(Effect::Unwatch { service: i });
                        self.services[i].phase.set_pid(Some(pid));
                        self.effects.push(Effect::Watch { service: i, pid });
                    }
                }
            }
        }
    }
}

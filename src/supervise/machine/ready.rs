//! Readiness of a started service: its checks (probes run as jobs, notify and log
//! awaited as events), the deadline, and what being ready sets up (liveness).

use super::service::Settled;
use super::service::secs_text;
use super::*;

impl Machine {
    pub(super) fn ready_timeout(&self, i: Sid) -> Duration {
        self.services[i]
            .settings()
            .map_or(DEFAULT_READY_TIMEOUT, |s| s.depends_timeout)
    }

    /// Run the readiness check of service `i` now.
    pub(super) fn run_check(&mut self, i: Sid, now: Now) {
        let Phase::Checking { by, pid, .. } = self.services[i].phase else {
            return;
        };
        let Some(config) = self.services[i].config.clone() else {
            return self.mark_ready(i, now);
        };
        let left = by
            .saturating_duration_since(now.mono)
            .max(Duration::from_millis(100));
        let job = self.job(Some(i), JobFor::Check(i), Work::Check(config, left, pid));
        if let Phase::Checking { check, .. } = &mut self.services[i].phase {
            *check = Check::Running(job);
        }
    }

    pub(super) fn on_check(&mut self, i: Sid, job: JobId, ok: bool, detail: String, now: Now) {
        let Phase::Checking {
            pid,
            since,
            by,
            pause,
            check: Check::Running(j),
        } = self.services[i].phase
        else {
            return;
        };
        if j != job {
            return;
        }
        if ok {
            return self.mark_ready(i, now);
        }
        if now.mono < by {
            self.services[i].note = Some(format!("not ready yet: {detail}"));
            self.services[i].phase = Phase::Checking {
                pid,
                since,
                by,
                pause: (pause * 2).min(CHECK_PAUSE_MAX),
                check: Check::Next(now.mono + pause),
            };
            return;
        }
        // It runs but does not answer: a failed start (dependants are not started).
        self.not_ready_in_time(i, detail, now);
    }

    pub(super) fn mark_ready(&mut self, i: Sid, now: Now) {
        let s = &mut self.services[i];
        let (pid, since) = match s.phase {
            Phase::Checking { pid, since, .. } | Phase::Running { pid, since, .. } => (pid, since),
            _ => return,
        };
        let live = match s.settings() {
            Some(st) => Liveness {
                health: (!st.health.interval.is_zero() && st.ready.is_probe())
                    .then(|| (Check::Next(now.mono + st.health.interval), 0)),
                watchdog: st.watchdog.map(|w| now.mono + w),
            },
            None => Liveness::default(),
        };
        s.phase = Phase::Running {
            pid,
            since,
            unready: None,
            live,
        };
        if s.note
            .as_deref()
            .is_some_and(|n| n.starts_with("not ready"))
        {
            s.note = None;
        }
        let outcome = s.outcome.take().unwrap_or(Outcome::AlreadyRunning { pid });
        self.settle(i, Ok(outcome), Settled::Started);
    }

    /// Its readiness deadline passed: a failed start.
    pub(super) fn not_ready_in_time(&mut self, i: Sid, detail: String, now: Now) {
        let timeout = self.ready_timeout(i);
        let name = self.services[i].name.clone();
        let reason = format!(
            "not ready within {} s (service_ready_timeout): {detail}",
            secs_text(timeout)
        );
        let err = Error::runtime(format!("started, but {reason}"))
            .with_service(&name)
            .with_hint("see its output (`servicectl logs NAME`), or raise service_ready_timeout");
        self.settle(i, Err(err), Settled::Started);
        self.stop_failed(i, reason, now);
    }
}

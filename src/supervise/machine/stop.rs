//! Stopping a service: the library's stop as a job, or signals alone when that cannot
//! run (a halt), and a stop because it failed (a failed run follows).

use super::service::Settled;
use super::*;
use nix::sys::signal::Signal;

impl Machine {
    /// The library's stop of service `i` as a job; `failed`: why it is stopped, when a
    /// failed run follows.
    fn stop_job(
        &mut self,
        i: Sid,
        config: Arc<Prepared>,
        pid: Option<i32>,
        failed: Option<String>,
    ) {
        let job = self.job(
            Some(i),
            JobFor::Lifecycle(i, Verb::Stop),
            Work::Stop(config),
        );
        self.services[i].phase = Phase::Stopping { job, pid, failed };
    }

    pub(super) fn launch_stop(&mut self, i: Sid, now: Now) {
        let s = &mut self.services[i];
        s.wanted = false;
        s.changed = None;
        s.change_note = None;
        match s.phase.clone() {
            // What is under way is followed by a stop (see on_lifecycle, finish_halt).
            p if p.is_busy() => {}
            Phase::Armed { .. } => self.disarm(i, now),
            _ if !s.children.is_empty() || s.is_armable() => self.disarm(i, now),
            Phase::Checking { pid, .. } | Phase::Running { pid, .. } => {
                self.effects.push(Effect::EndChecks { service: i });
                match (s.config.clone(), pid) {
                    (Some(config), pid) => {
                        self.stop_job(i, config, pid, None);
                    }
                    (None, Some(pid)) => self.halt_by_signal(
                        i,
                        pid,
                        Some("its configuration is not known, so no hooks ran".into()),
                        now,
                    ),
                    (None, None) => {
                        self.services[i].phase = Phase::Stopped;
                        self.settle(i, Ok(Outcome::AlreadyStopped), Settled::Stopped);
                    }
                }
            }
            _ => match s.config.clone() {
                // Nothing runs; its files may still need a clean-up (a stale pidfile,
                // a process started directly that the supervisor missed).
                Some(config) => {
                    self.stop_job(i, config, None, None);
                }
                None => {
                    self.services[i].phase = Phase::Stopped;
                    self.settle(i, Ok(Outcome::AlreadyStopped), Settled::Stopped);
                }
            },
        }
    }

    /// End process `pid` by signals alone: SIGTERM to its group now, SIGKILL after the
    /// halt timeout. For when the library's stop cannot run.
    pub(super) fn halt_by_signal(&mut self, i: Sid, pid: i32, why: Option<String>, now: Now) {
        self.halt(i, pid, Signal::SIGTERM, why, None, now);
    }

    /// End process `pid` with `signal` to its group, SIGKILL after the halt timeout;
    /// `failed`: a failed run follows (the watchdog).
    pub(super) fn halt(
        &mut self,
        i: Sid,
        pid: i32,
        signal: Signal,
        why: Option<String>,
        failed: Option<String>,
        now: Now,
    ) {
        let halt = self.services[i].halt_timeout();
        self.effects.push(Effect::SignalGroup { pid, signal });
        self.services[i].phase = Phase::Halting {
            pid: Some(pid),
            kill_at: now.mono + halt,
            killed: false,
            why,
            failed,
        };
    }

    /// The halt timeout is over: SIGKILL what is left; after that, give up.
    pub(super) fn on_halt_due(&mut self, i: Sid, now: Now) {
        let Phase::Halting {
            pid,
            killed,
            why,
            failed,
            ..
        } = self.services[i].phase.clone()
        else {
            return;
        };
        if !killed {
            if let Some(pid) = pid {
                self.effects.push(Effect::SignalGroup {
                    pid,
                    signal: Signal::SIGKILL,
                });
            }
            if !self.services[i].children.is_empty() {
                self.effects.push(Effect::SignalChildren {
                    service: i,
                    signal: Signal::SIGKILL,
                });
            }
            self.services[i].phase = Phase::Halting {
                pid,
                kill_at: now.mono + KILL_GRACE,
                killed: true,
                why,
                failed,
            };
            return;
        }
        let name = self.services[i].name.clone();
        let left: Vec<String> = pid
            .into_iter()
            .chain(self.services[i].children.iter().copied())
            .map(|p| p.to_string())
            .collect();
        let err = Error::runtime(format!(
            "PID {} still there {} s after SIGKILL (a process stuck in the kernel?)",
            left.join(", "),
            KILL_GRACE.as_secs()
        ))
        .with_service(&name)
        .with_hint("look at it with `ps -o pid,stat,wchan -p PID`");
        self.log(err.to_string());
        self.effects.push(Effect::Unwatch { service: i });
        let s = &mut self.services[i];
        s.phase = Phase::Stopped;
        s.note = Some(format!("PID {} did not end after SIGKILL", left.join(", ")));
        self.settle(i, Err(err), Settled::Stopped);
    }

    /// A halt is over: nothing of the service runs any more.
    pub(super) fn finish_halt(&mut self, i: Sid, now: Now) {
        let Phase::Halting { why, failed, .. } = self.services[i].phase.clone() else {
            return;
        };
        let s = &mut self.services[i];
        s.phase = Phase::Stopped;
        s.listening = false;
        if let Some(reason) = failed {
            return self.after_failure_stop(i, reason, now);
        }
        let outcome = Outcome::Stopped {
            pid: None,
            warning: why,
        };
        self.settle(i, Ok(outcome), Settled::Stopped);
        if self.services[i].wanted && !self.shutting_down {
            self.launch(i, false, now);
        }
    }

    /// A service stopped because it failed (not ready in time, unhealthy, silent
    /// watchdog) is handled as a failed run.
    pub(super) fn after_failure_stop(&mut self, i: Sid, reason: String, now: Now) {
        let s = &mut self.services[i];
        s.phase = Phase::Stopped;
        s.last_exit = Some(reason.clone());
        s.note = Some(reason);
        let wanted = s.wanted && !self.shutting_down;
        self.settle(
            i,
            Ok(Outcome::Stopped {
                pid: None,
                warning: None,
            }),
            Settled::Stopped,
        );
        if wanted {
            self.services[i].revive = false;
            self.failed_run(i, Duration::ZERO, now);
        }
    }

    /// Stop service `i` because it failed; a failed run follows.
    pub(super) fn stop_failed(&mut self, i: Sid, reason: String, now: Now) {
        self.log(format!("{}: {reason}", self.services[i].name));
        self.effects.push(Effect::EndChecks { service: i });
        let pid = self.services[i].phase.pid();
        match (self.services[i].config.clone(), pid) {
            (Some(config), pid) => {
                self.stop_job(i, config, pid, Some(reason));
            }
            (None, Some(pid)) => self.halt(i, pid, Signal::SIGTERM, None, Some(reason), now),
            (None, None) => self.after_failure_stop(i, reason, now),
        }
    }

    /// A stop job finished.
    pub(super) fn on_stopped(&mut self, i: Sid, result: Result<Outcome, Error>, now: Now) {
        let name = self.services[i].name.clone();
        let pid = self.services[i].phase.pid();
        if let Phase::Stopping {
            failed: Some(reason),
            ..
        } = self.services[i].phase.clone()
        {
            if pid.is_some() {
                self.effects.push(Effect::Unwatch { service: i });
            }
            if let (Err(e), Some(pid)) = (&result, pid) {
                self.log(format!(
                    "{name}: stop failed ({e}); ending pid {pid} by signals"
                ));
                return self.halt(i, pid, Signal::SIGTERM, None, Some(reason), now);
            }
            return self.after_failure_stop(i, reason, now);
        }
        match result {
            Ok(outcome) => {
                if !matches!(outcome, Outcome::AlreadyStopped) {
                    self.log(format!("{name}: {outcome}"));
                }
                if pid.is_some() {
                    // Its exit event may not have been read yet: it is gone.
                    self.effects.push(Effect::Unwatch { service: i });
                }
                let s = &mut self.services[i];
                s.phase = Phase::Stopped;
                s.note = None;
                s.start_ticks = None;
                self.settle(i, Ok(outcome), Settled::Stopped);
            }
            Err(e) => match pid {
                // The library could not stop it (no descriptor to spare, say): its
                // process is still tracked, so signals alone end it.
                Some(pid) => {
                    self.log(format!(
                        "{name}: stop failed ({e}); ending pid {pid} by signals"
                    ));
                    return self.halt_by_signal(
                        i,
                        pid,
                        Some(format!("its stop failed: {}", e.message)),
                        now,
                    );
                }
                None => {
                    self.log(format!("{name}: stop failed: {e}"));
                    self.services[i].phase = Phase::Stopped;
                    self.settle(i, Err(e), Settled::Stopped);
                }
            },
        }
        if self.services[i].wanted && !self.shutting_down {
            self.launch(i, false, now);
        }
    }
}

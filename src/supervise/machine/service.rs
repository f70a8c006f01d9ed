//! The transitions of one service: adoption, exits, restarts with backoff, starts,
//! stops, restarts, readiness checks, and where each leaves the batches waiting for it.

use super::*;
use crate::config::settings::{Ready, RestartPolicy};
use crate::error::ErrorKind;
use crate::supervise::backoff;

/// How a service settled, for the batches waiting on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Settled {
    /// A start finished: ready, or failed.
    Started,
    /// It is stopped (on purpose, or its start was cut short).
    Stopped,
}

impl Machine {
    pub(super) fn on_adopted(&mut self, name: &str, pid: Option<i32>, now: Now) {
        let i = self.service_index(name);
        let s = &mut self.services[i];
        s.wanted = true;
        s.phase = Phase::Running {
            pid,
            since: now.mono,
            unready: None,
            live: Liveness::default(),
        };
        match pid {
            Some(pid) => {
                self.log(format!("{name}: adopted (pid {pid})"));
                self.effects.push(Effect::Watch { service: i, pid });
            }
            None => {
                self.services[i].note = Some("no pidfile (service_no_pidfile): not watched".into());
                self.log(format!("{name}: adopted (no pidfile: not watched)"));
            }
        }
    }

    /// The tracked process of service `i` exited.
    pub(super) fn on_exit(&mut self, i: Sid, pid: i32, status: String, now: Now) {
        let s = &mut self.services[i];
        if s.phase.pid() != Some(pid) {
            return;
        }
        self.effects.push(Effect::Unwatch { service: i });
        self.effects.push(Effect::EndChecks { service: i });
        let s = &mut self.services[i];
        s.last_exit = Some(status.clone());
        s.start_ticks = None;
        let name = s.name.clone();
        match s.phase.clone() {
            // A stop or restart under way ended it: that is on purpose.
            Phase::Starting { .. } | Phase::Stopping { .. } => s.phase.set_pid(None),
            Phase::Halting { .. } => {
                s.phase.set_pid(None);
                if s.children.is_empty() {
                    self.finish_halt(i, now);
                }
            }
            Phase::Checking { since, .. } | Phase::Running { since, .. } => {
                let run = now.mono.saturating_duration_since(since);
                let stopped = !s.wanted || self.shutting_down;
                if stopped {
                    s.phase = Phase::Stopped;
                }
                self.log(format!("{name}: pid {pid} {status}"));
                if stopped {
                    self.settle(
                        i,
                        Ok(Outcome::Stopped {
                            pid: Some(pid),
                            warning: None,
                        }),
                        Settled::Stopped,
                    );
                    return;
                }
                let err =
                    Error::runtime(format!("it {status} before it was ready")).with_service(&name);
                self.settle(i, Err(err), Settled::Started);
                // A running process ended: if a command acting directly ended it, the
                // next start must find that out.
                self.services[i].revive = true;
                self.failed_run(i, run, now);
            }
            _ => {}
        }
    }

    /// A run ended that nobody asked to end: restart it as its policy says, or mark it
    /// failed (and with service_fail_fast=1, shut the playpen down).
    pub(super) fn failed_run(&mut self, i: Sid, run: Duration, now: Now) {
        let s = &mut self.services[i];
        let Some(settings) = s.config.as_ref().map(|p| Arc::clone(&p.settings)) else {
            if self.launched {
                s.phase = Phase::Failed;
                s.wanted = false;
                s.note = Some("its configuration is not known to the supervisor".into());
            } else {
                // Just after launch: decided once the configuration is read.
                s.phase = Phase::Undecided { run };
            }
            return;
        };
        let allowed = match settings.restart_policy {
            RestartPolicy::Never => false,
            RestartPolicy::Times(n) => s.restarts < n,
            RestartPolicy::Always => true,
        };
        let name = s.name.clone();
        if !allowed {
            s.phase = Phase::Failed;
            s.wanted = false;
            let why = match settings.restart_policy {
                RestartPolicy::Never => "service_restart_policy=none".to_string(),
                _ => format!("out of restarts after {}", s.restarts),
            };
            s.note = Some(format!("failed: {why}"));
            self.log(format!("{name}: failed ({why})"));
            if settings.fail_fast {
                self.log(format!(
                    "{name} failed for good and has service_fail_fast=1: stopping the playpen"
                ));
                self.begin_shutdown(None, 1, Some(name), now);
            }
            return;
        }
        let (delay, streak) = backoff::next_delay(run, s.streak, settings.restart_backoff_max);
        s.streak = streak;
        s.restarts += 1;
        if delay.is_zero() {
            s.phase = Phase::Backoff { until: now.mono };
            self.log(format!("{name}: restarting"));
            self.restart_after_exit(i, now);
        } else {
            s.phase = Phase::Backoff {
                until: now.mono + delay,
            };
            self.log(format!(
                "{name}: restarting in {:.1} s",
                delay.as_secs_f64()
            ));
        }
    }

    /// Start it again after an exit nobody asked for (the job first checks that no
    /// command acting directly stopped it meanwhile).
    pub(super) fn restart_after_exit(&mut self, i: Sid, now: Now) {
        let revive = self.services[i].revive;
        self.launch(i, revive, now);
    }

    pub(super) fn launch(&mut self, i: Sid, revive: bool, _now: Now) {
        let s = &mut self.services[i];
        if s.phase.is_busy() {
            return;
        }
        s.note = None;
        let Some(config) = s.config.clone() else {
            let err = Error::runtime("its configuration is not known to the supervisor")
                .with_service(&s.name)
                .with_hint(format!("run `servicectl start {}`", s.name));
            s.phase = Phase::Failed;
            self.settle(i, Err(err), Settled::Started);
            return;
        };
        if let Some(problem) = s.problem.clone() {
            s.phase = Phase::Failed;
            s.wanted = false;
            s.note = Some(problem.message.clone());
            self.settle(i, Err(problem), Settled::Started);
            return;
        }
        if s.is_armable() {
            s.phase = Phase::Arming;
            self.effects.push(Effect::Arm { service: i, config });
            return;
        }
        let work = if revive {
            Work::Revive(config)
        } else {
            Work::Start(config)
        };
        let job = self.job(Some(i), JobFor::Lifecycle(i, Verb::Start), work);
        self.services[i].phase = Phase::Starting {
            job,
            pid: None,
            restart: false,
            notified: false,
        };
    }

    /// Start (or keep) a service as part of a batch; it settles once ready.
    pub(super) fn request_start(&mut self, i: Sid, now: Now) {
        let s = &mut self.services[i];
        s.wanted = true;
        match s.phase.clone() {
            // On its way, or a stop under way is followed by a start (it is wanted).
            p if p.is_busy() => {}
            Phase::Checking { .. } => {}
            Phase::Running {
                unready: None, pid, ..
            } => self.settle(i, Ok(Outcome::AlreadyRunning { pid }), Settled::Started),
            Phase::Armed { .. } => self.settle(
                i,
                Ok(Outcome::AlreadyRunning { pid: None }),
                Settled::Started,
            ),
            // A done one-shot is not run again until restart (or stop, then start).
            Phase::Done { .. } => {
                let status = s
                    .last_exit
                    .clone()
                    .unwrap_or_else(|| "exited with status 0".into());
                self.settle(i, Ok(Outcome::Done { status }), Settled::Started)
            }
            Phase::Running {
                unready: Some(_),
                pid,
                since,
                ..
            } => {
                // It runs but was not found ready: check again, from now.
                let by = now.mono + self.ready_timeout(i);
                self.services[i].phase = Phase::Checking {
                    pid,
                    since,
                    by,
                    pause: CHECK_PAUSE_FIRST,
                    check: Check::Next(now.mono),
                };
                self.run_check(i, now);
            }
            _ => {
                s.restarts = 0;
                s.streak = 0;
                self.launch(i, false, now);
            }
        }
    }

    pub(super) fn launch_restart(&mut self, i: Sid, now: Now) {
        let s = &mut self.services[i];
        s.wanted = true;
        s.restarts = 0;
        s.streak = 0;
        match s.phase.clone() {
            // A start under way (a restart after a crash, say) is the restart asked
            // for; a stop under way is followed by a start (it is wanted).
            p if p.is_busy() => return,
            _ if s.config.is_none() || s.problem.is_some() => return self.launch(i, false, now),
            Phase::Armed { .. } => return self.disarm(i, now),
            _ if !s.children.is_empty() || s.is_armable() => return self.disarm(i, now),
            _ => {}
        }
        let pid = s.phase.pid();
        if pid.is_some() {
            self.effects.push(Effect::EndChecks { service: i });
        }
        let config = self.services[i].config.clone().expect("checked above");
        let job = self.job(
            Some(i),
            JobFor::Lifecycle(i, Verb::Restart),
            Work::Restart(config),
        );
        self.services[i].phase = Phase::Starting {
            job,
            pid,
            restart: true,
            notified: false,
        };
    }

    /// A start, stop or restart job finished.
    pub(super) fn on_lifecycle(
        &mut self,
        i: Sid,
        job: JobId,
        verb: Verb,
        result: Result<Outcome, Error>,
        has_check: bool,
        now: Now,
    ) {
        let ours = match self.services[i].phase {
            Phase::Starting { job: j, .. } | Phase::Stopping { job: j, .. } => j == job,
            _ => false,
        };
        if !ours {
            let name = self.services[i].name.clone();
            self.log(format!(
                "internal error: {name}: a job ended that it was not waiting for"
            ));
            return;
        }
        let name = self.services[i].name.clone();
        let old_pid = self.services[i].phase.pid();
        let notified = matches!(
            self.services[i].phase,
            Phase::Starting { notified: true, .. }
        );
        if verb == Verb::Stop {
            return self.on_stopped(i, result, now);
        }
        match result {
            Ok(Outcome::AlreadyStopped) => {
                // A revive found the service stopped on purpose by another command.
                self.log(format!("{name}: stopped by another command; not restarted"));
                let s = &mut self.services[i];
                s.phase = Phase::Stopped;
                s.wanted = false;
                self.settle(i, Ok(Outcome::AlreadyStopped), Settled::Stopped);
            }
            Ok(outcome @ Outcome::StoppedForFiledep { .. }) => {
                if old_pid.is_some() {
                    self.effects.push(Effect::Unwatch { service: i });
                }
                let s = &mut self.services[i];
                s.phase = Phase::Stopped;
                s.wanted = false;
                self.settle(i, Ok(outcome), Settled::Started);
            }
            Ok(outcome @ (Outcome::Done { .. } | Outcome::AlreadyDone { .. })) => {
                let s = &mut self.services[i];
                // AlreadyDone: done before this supervisor (or a direct start) saw it.
                let at = match &outcome {
                    Outcome::AlreadyDone { at, .. } => *at,
                    _ => now.wall,
                };
                if let Outcome::Done { status } | Outcome::AlreadyDone { status, .. } = &outcome {
                    s.last_exit = Some(status.clone());
                }
                s.phase = Phase::Done { at: at as i64 };
                s.note = None;
                self.log(format!("{name}: {outcome}"));
                self.settle(i, Ok(outcome), Settled::Started);
            }
            Ok(outcome) => {
                let new_pid = outcome.pid();
                let reloaded = matches!(outcome, Outcome::Reloaded { .. });
                if !matches!(outcome, Outcome::AlreadyRunning { .. }) {
                    self.log(format!("{name}: {outcome}"));
                }
                if new_pid != old_pid {
                    if old_pid.is_some() {
                        self.effects.push(Effect::Unwatch { service: i });
                    }
                    self.services[i].start_ticks = None;
                    if let Some(pid) = new_pid {
                        self.effects.push(Effect::Watch { service: i, pid });
                    }
                }
                let s = &mut self.services[i];
                s.outcome = Some(outcome);
                s.note = None;
                s.phase = Phase::Running {
                    pid: new_pid,
                    since: now.mono,
                    unready: None,
                    live: Liveness::default(),
                };
                if !s.wanted || self.shutting_down {
                    // A stop (or the shutdown) came while it started.
                    return self.launch_stop(i, now);
                }
                let ready = self.services[i]
                    .settings()
                    .map_or(Ready::Ping, |s| s.ready.clone());
                let probe = match &ready {
                    _ if reloaded => return self.mark_ready(i, now),
                    Ready::Ping if !has_check => return self.mark_ready(i, now),
                    Ready::Exit => return self.mark_ready(i, now),
                    Ready::Notify if notified => return self.mark_ready(i, now),
                    Ready::Ping | Ready::Tcp(_) | Ready::Http { .. } => true,
                    Ready::Notify | Ready::Log(_) => false,
                };
                let by = now.mono + self.ready_timeout(i);
                self.services[i].phase = Phase::Checking {
                    pid: new_pid,
                    since: now.mono,
                    by,
                    pause: CHECK_PAUSE_FIRST,
                    check: if probe {
                        Check::Next(now.mono)
                    } else {
                        Check::Awaiting
                    },
                };
                if let Ready::Log(pattern) = ready {
                    self.effects.push(Effect::WatchLog {
                        service: i,
                        pattern,
                    });
                }
                if probe {
                    self.run_check(i, now);
                }
            }
            Err(e) => {
                self.log(e.to_string());
                let s = &mut self.services[i];
                s.note = Some(e.message.clone());
                s.last_exit = Some(format!("failed to start: {}", e.message));
                let oneshot = s.settings().is_some_and(|st| {
                    st.service_type == crate::config::settings::ServiceType::Oneshot
                });
                if oneshot && s.wanted && !self.shutting_down {
                    // A one-shot is retried as its restart policy says; what waits for
                    // it (a start, a dependant) waits for the retries, and hears of the
                    // failure only when none is left.
                    s.revive = false;
                    s.phase = Phase::Stopped;
                    self.failed_run(i, Duration::ZERO, now);
                    if self.services[i].phase == Phase::Failed {
                        self.settle(i, Err(e), Settled::Started);
                    }
                    return;
                }
                self.settle(i, Err(e), Settled::Started);
                let s = &mut self.services[i];
                if let Some(pid) = old_pid {
                    // A failed restart that left the old process running.
                    s.phase = Phase::Running {
                        pid: Some(pid),
                        since: now.mono,
                        unready: None,
                        live: Liveness::default(),
                    };
                    if !s.wanted || self.shutting_down {
                        self.launch_stop(i, now);
                    }
                } else if s.wanted && !self.shutting_down {
                    // Our own start failed (and removed its files): start again.
                    s.revive = false;
                    s.phase = Phase::Stopped;
                    self.failed_run(i, Duration::ZERO, now);
                } else {
                    s.phase = Phase::Stopped;
                    self.settle(i, Ok(Outcome::AlreadyStopped), Settled::Stopped);
                }
            }
        }
    }

    /// The service got where the batches waiting for it wanted it, or failed to.
    pub(super) fn settle(&mut self, i: Sid, result: Result<Outcome, Error>, how: Settled) {
        let s = &mut self.services[i];
        let name = s.name.clone();
        let start_follows = s.wanted && !self.shutting_down;
        let mut keep = Vec::new();
        for (id, verb) in std::mem::take(&mut s.waiting) {
            let result = match (verb, how) {
                (Verb::Stop, Settled::Stopped) => result.clone(),
                // A stop waits for the start under way to end; the stop follows.
                (Verb::Stop, Settled::Started) => {
                    keep.push((id, verb));
                    continue;
                }
                (Verb::Start, Settled::Started) => result.clone(),
                (Verb::Restart, Settled::Started) => result.clone().map(|o| match o {
                    Outcome::Started { pid } => Outcome::Restarted { pid },
                    other => other,
                }),
                (Verb::Start | Verb::Restart, Settled::Stopped) if start_follows => {
                    keep.push((id, verb));
                    continue;
                }
                (Verb::Start | Verb::Restart, Settled::Stopped) => match &result {
                    Err(e) => Err(e.clone()),
                    Ok(_) => Err(Error::new(
                        ErrorKind::Runtime,
                        if self.shutting_down {
                            "its start was cut short: the supervisor is shutting down"
                        } else {
                            "its start was cut short: it was stopped before it was ready"
                        },
                    )
                    .with_service(&name)
                    .with_hint(format!("start it again with `servicectl start {name}`"))),
                },
            };
            if let Some(batch) = self.batches.get_mut(&id) {
                batch.results.entry(name.clone()).or_insert(result);
                self.dirty.push(id);
            }
        }
        self.services[i].waiting = keep;
    }

    /// Stop everything, dependants first, then exit with `code`.
    pub(super) fn begin_shutdown(
        &mut self,
        client: Option<ClientId>,
        code: i32,
        culprit: Option<String>,
        now: Now,
    ) {
        if self.shutting_down {
            if let Some(client) = client {
                // Answered when the shutdown under way is done.
                match self
                    .batches
                    .values_mut()
                    .find(|b| b.exit_after.is_some() && b.client.is_none())
                {
                    Some(b) => b.client = Some(client),
                    None => self.reply(
                        client,
                        Reply::Results {
                            results: Vec::new(),
                            warnings: vec!["the supervisor is shutting down already".into()],
                        },
                    ),
                }
            }
            return;
        }
        self.shutting_down = true;
        match &culprit {
            Some(name) => self.log(format!(
                "shutting down: {name} failed (service_fail_fast=1)"
            )),
            None => self.log("shutting down: stopping every service".into()),
        }
        for s in &mut self.services {
            s.wanted = false;
            if matches!(s.phase, Phase::Backoff { .. } | Phase::Undecided { .. }) {
                s.phase = Phase::Stopped;
            }
        }
        let deps = self.known_deps();
        let order = crate::ops::graph::order(&deps);
        let stops: Vec<String> = order
            .into_iter()
            .filter(|n| {
                let s = &self.services[self.index[n]];
                s.phase.is_up()
                    || s.phase.is_busy()
                    || s.phase.pid().is_some()
                    || matches!(s.phase, Phase::Armed { .. } | Phase::Done { .. })
                    || !s.children.is_empty()
            })
            .collect();
        let mut batch = self.batch(client, &[], &stops, Verb::Stop, &deps);
        batch.exit_after = Some(code);
        if let Some(name) = culprit {
            batch.warnings.push(format!(
                "{name} failed for good and has service_fail_fast=1: the playpen was stopped"
            ));
        }
        self.new_batch(batch);
        let _ = now;
    }
}

/// `30`, `2.5`: seconds as a setting is written.
pub(super) fn secs_text(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs.fract() == 0.0 {
        format!("{secs:.0}")
    } else {
        format!("{secs}")
    }
}

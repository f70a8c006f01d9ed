//! The supervisor's work on one service: adoption, watching its process, what an exit
//! means under its restart policy, starting, stopping and readiness.

use super::*;

impl Supervisor {
    pub(super) fn service_index(&mut self, name: &str) -> usize {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        self.services.push(Service::new(name));
        let i = self.services.len() - 1;
        self.index.insert(name.to_string(), i);
        i
    }

    /// Take over what runs already: every service with a live process on record
    /// (pidfile and start record, same kernel start time), watched by pidfd.
    pub(super) fn adopt(&mut self) -> Vec<String> {
        let catalog = match crate::playpen::catalog::Catalog::load(&self.playpen, None) {
            Ok(c) => c,
            Err(e) => {
                log(&format!("cannot read the services: {e}"));
                return Vec::new();
            }
        };
        let mut adopted = Vec::new();
        let names: Vec<String> = catalog.names().map(str::to_string).collect();
        let mut unrecorded: Option<HashMap<String, Vec<i32>>> = None;
        for name in names {
            let Ok((observed, _)) = pidfile::observe(&self.playpen, &name) else {
                continue;
            };
            let pid = match observed {
                Observed::Running { pid, .. } | Observed::Untracked { pid, .. } => Some(pid),
                Observed::Unwatched => None,
                _ => {
                    let found = unrecorded.get_or_insert_with(|| self.unrecorded_services());
                    match found.get(&name).map(Vec::as_slice) {
                        Some(&[pid]) => {
                            self.record_found(&name, pid);
                            Some(pid)
                        }
                        _ => continue,
                    }
                }
            };
            let i = self.service_index(&name);
            let s = &mut self.services[i];
            s.wanted = true;
            s.state = State::Running;
            s.ready = true;
            s.run_gen += 1;
            s.run_started = Some(Instant::now());
            match pid {
                Some(pid) => {
                    log(&format!("{name}: adopted (pid {pid})"));
                    self.watch(i, pid);
                }
                None => {
                    self.services[i].note =
                        Some("no pidfile (service_no_pidfile): not watched".into());
                    log(&format!("{name}: adopted (no pidfile: not watched)"));
                }
            }
            adopted.push(name);
        }
        adopted
    }

    /// Services whose process was started but not yet put on record when the last
    /// supervisor died (between the spawn and the pidfile): session leaders of this
    /// playpen (PLAYPEN_ROOT in their environment) named by a linkfarm symlink, by
    /// SERVICE_NAME. Hooks and scripts lead sessions too, but are not run through the
    /// linkfarm.
    pub(super) fn unrecorded_services(&self) -> HashMap<String, Vec<i32>> {
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
    pub(super) fn record_found(&self, name: &str, pid: i32) {
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

    /// Watch process `pid` of service `i` with a pidfd.
    pub(super) fn watch(&mut self, i: usize, pid: i32) {
        self.unwatch(i);
        let s = &mut self.services[i];
        s.pid = Some(pid);
        s.start_ticks = proc::start_ticks(pid);
        s.pidfd_gen += 1;
        match proc::pidfd(pid) {
            Some(fd) => {
                let token = pidfd_token(i, s.pidfd_gen);
                if let Err(e) = self
                    .epoll
                    .add(fd.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, token))
                {
                    log(&format!("{}: cannot watch pid {pid}: {e}", s.name));
                }
                s.pidfd = Some(fd);
            }
            None => {
                // Gone already (and reaped by someone else).
                let generation = s.pidfd_gen & 0xffff_ffff;
                self.on_pidfd(i, generation);
            }
        }
    }

    pub(super) fn unwatch(&mut self, i: usize) {
        if let Some(fd) = self.services[i].pidfd.take() {
            let _ = self.epoll.delete(fd.as_fd());
        }
    }

    /// A supervised process exited (its pidfd is readable, or it was gone already).
    pub(super) fn on_pidfd(&mut self, i: usize, generation: u64) {
        let s = &self.services[i];
        if (s.pidfd_gen & 0xffff_ffff) != generation || s.pid.is_none() {
            return;
        }
        let status = match &s.pidfd {
            Some(fd) => match nix::sys::wait::waitid(
                Id::PIDFd(fd.as_fd()),
                WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG,
            ) {
                Ok(WaitStatus::StillAlive) => {
                    // Spurious wake: a pidfd is readable only once the process exits.
                    if s.pid.is_some_and(proc::is_alive) {
                        return;
                    }
                    "exited".to_string()
                }
                Ok(status) => describe_wait(status),
                // Not our child (adopted): its parent reaps it.
                Err(_) => "exited (status unknown: it is not the supervisor's child)".into(),
            },
            None => "exited".to_string(),
        };
        self.on_exit(i, status);
    }

    pub(super) fn on_exit(&mut self, i: usize, status: String) {
        self.unwatch(i);
        let s = &mut self.services[i];
        let pid = s.pid.take();
        let run = s
            .run_started
            .take()
            .map(|t| t.elapsed())
            .unwrap_or_default();
        s.ready = false;
        s.last_exit = Some(status.clone());
        s.run_gen += 1;
        let name = s.name.clone();
        if s.busy.is_some() {
            // A stop or restart under way ended it: that is on purpose.
            return;
        }
        if !s.wanted || self.shutting_down {
            s.state = State::Stopped;
            log(&format!("{name}: pid {} {status}", pid.unwrap_or(0)));
            return;
        }
        log(&format!("{name}: pid {} {status}", pid.unwrap_or(0)));
        let err = Error::runtime(format!("it {status} before it was ready")).with_service(&name);
        self.settle(i, Err(err));
        // A running process ended: if a command acting directly ended it, the next
        // start must find that out (see `revive`).
        self.services[i].revive = true;
        self.failed_run(i, run);
    }

    /// A run ended that nobody asked to end: restart it as its policy says, or mark it
    /// failed (and with service_fail_fast=1, shut the playpen down).
    pub(super) fn failed_run(&mut self, i: usize, run: Duration) {
        let s = &mut self.services[i];
        let Some(settings) = s.prepared.as_ref().map(|p| Arc::clone(&p.settings)) else {
            // Its configuration is not known yet (just after launch): decide later.
            s.undecided = true;
            s.state = State::Backoff;
            return;
        };
        let allowed = match settings.restart_policy {
            RestartPolicy::Never => false,
            RestartPolicy::Times(n) => s.restarts < n,
            RestartPolicy::Always => true,
        };
        let name = s.name.clone();
        if !allowed {
            s.state = State::Failed;
            s.wanted = false;
            let why = match settings.restart_policy {
                RestartPolicy::Never => "service_restart_policy=none".to_string(),
                _ => format!("out of restarts after {}", s.restarts),
            };
            log(&format!("{name}: failed ({why})"));
            s.note = Some(format!("failed: {why}"));
            if settings.fail_fast {
                log(&format!(
                    "{name} failed for good and has service_fail_fast=1: stopping the playpen"
                ));
                self.begin_shutdown(None, 1, Some(name));
            }
            return;
        }
        let (delay, streak) = backoff::next_delay(run, s.streak, settings.restart_backoff_max);
        s.streak = streak;
        s.restarts += 1;
        if delay.is_zero() {
            log(&format!("{name}: restarting"));
            self.restart_after_exit(i);
        } else {
            log(&format!(
                "{name}: restarting in {:.1} s",
                delay.as_secs_f64()
            ));
            self.services[i].state = State::Backoff;
            self.set_timer(i, Instant::now() + delay, Due::Restart(i));
        }
    }

    pub(super) fn set_timer(&mut self, i: usize, at: Instant, due: Due) {
        self.cancel_timer(i);
        let key = (at, self.next_id);
        self.next_id += 1;
        self.timers.insert(key, due);
        self.services[i].timer = Some(key);
    }

    pub(super) fn cancel_timer(&mut self, i: usize) {
        if let Some(key) = self.services[i].timer.take() {
            self.timers.remove(&key);
        }
    }

    pub(super) fn launch_start(&mut self, i: usize) {
        self.launch(i, false);
    }

    /// Start it again after an exit nobody asked for. The job first waits for the
    /// service's lock and finds out whether a command acting directly stopped it
    /// meanwhile (its start record is gone): then it stays stopped.
    pub(super) fn restart_after_exit(&mut self, i: usize) {
        let revive = self.services[i].revive;
        self.launch(i, revive);
    }

    pub(super) fn launch(&mut self, i: usize, revive: bool) {
        let s = &mut self.services[i];
        if s.busy.is_some() {
            return;
        }
        let Some(prepared) = s.prepared.clone() else {
            let err = Error::runtime("its configuration is not known to the supervisor")
                .with_service(&s.name)
                .with_hint(format!("run `servicectl start {}`", s.name));
            s.state = State::Failed;
            self.settle(i, Err(err));
            return;
        };
        if let Some(problem) = s.problem.clone() {
            s.state = State::Failed;
            s.wanted = false;
            s.note = Some(problem.message.clone());
            self.settle(i, Err(problem));
            return;
        }
        if !matches!(prepared.settings.service_type, ServiceType::Init) {
            let result = match self.arm(i, &prepared) {
                Ok(Outcome::Started { pid }) if self.services[i].rearming => {
                    Ok(Outcome::Restarted { pid })
                }
                other => other,
            };
            self.services[i].rearming = false;
            if let Err(e) = &result {
                log(&e.to_string());
                let s = &mut self.services[i];
                s.state = State::Failed;
                s.wanted = false;
                s.note = Some(e.message.clone());
            }
            self.settle(i, result);
            return;
        }
        let s = &mut self.services[i];
        s.busy = Some(Busy::Start);
        s.state = State::Starting;
        self.cancel_timer(i);
        let job = if revive {
            Job::Revive(prepared)
        } else {
            Job::Start(prepared)
        };
        self.spawn_job(Tag::Lifecycle(i, Busy::Start), job);
    }

    pub(super) fn launch_stop(&mut self, i: usize) {
        let s = &mut self.services[i];
        s.wanted = false;
        let timer = s.timer.take();
        if let Some(key) = timer {
            self.timers.remove(&key);
        }
        let s = &mut self.services[i];
        if s.busy.is_some() {
            // The start or restart under way is followed by a stop (see on_lifecycle).
            return;
        }
        let kind = s
            .settings()
            .is_some_and(|st| !matches!(st.service_type, ServiceType::Init));
        if kind || s.armed.is_some() || !s.children.is_empty() {
            return self.disarm(i);
        }
        let running = s.pid.is_some() || (s.state == State::Running && s.pidfd.is_none());
        let prepared = s.prepared.clone();
        match prepared {
            Some(p) if running || matches!(s.state, State::Running | State::Starting) => {
                s.busy = Some(Busy::Stop);
                s.state = State::Stopping;
                self.spawn_job(Tag::Lifecycle(i, Busy::Stop), Job::Stop(p));
            }
            Some(p) => {
                // Nothing runs; the files may still need a clean-up (a stale pidfile).
                s.state = State::Stopped;
                s.busy = Some(Busy::Stop);
                self.spawn_job(Tag::Lifecycle(i, Busy::Stop), Job::Stop(p));
            }
            None if running => {
                let err = Error::runtime(
                    "the supervisor does not know its configuration, so it cannot stop it",
                )
                .with_service(&s.name);
                self.settle(i, Err(err));
            }
            None => {
                s.state = State::Stopped;
                self.settle(i, Ok(Outcome::AlreadyStopped));
            }
        }
    }

    pub(super) fn launch_restart(&mut self, i: usize) {
        let s = &mut self.services[i];
        s.wanted = true;
        s.restarts = 0;
        s.streak = 0;
        if s.busy.is_some() {
            let err = Error::runtime("another operation on it is under way")
                .with_service(&s.name)
                .with_hint("try again in a moment");
            self.settle(i, Err(err));
            return;
        }
        let Some(prepared) = s.prepared.clone() else {
            return self.launch_start(i);
        };
        if let Some(problem) = s.problem.clone() {
            self.settle(i, Err(problem));
            return;
        }
        if !matches!(prepared.settings.service_type, ServiceType::Init) {
            // Disarm (ending what runs), then arm again: `wanted` makes the end of the
            // disarm start it.
            self.services[i].rearming = true;
            self.disarm(i);
            if self.services[i].busy.is_none() {
                self.launch_start(i);
            }
            return;
        }
        s.busy = Some(Busy::Restart);
        s.state = State::Starting;
        self.cancel_timer(i);
        self.spawn_job(Tag::Lifecycle(i, Busy::Restart), Job::Restart(prepared));
    }

    /// A start, stop or restart job finished.
    pub(super) fn on_lifecycle(&mut self, i: usize, busy: Busy, result: Result<Outcome>) {
        self.services[i].busy = None;
        let name = self.services[i].name.clone();
        match (busy, result) {
            (Busy::Stop, result) => {
                let s = &mut self.services[i];
                match &result {
                    Ok(o) => {
                        if !matches!(o, Outcome::AlreadyStopped) {
                            log(&format!("{name}: {o}"));
                        }
                        if s.pid.is_some() {
                            // Its exit event may not have been read yet: it is gone.
                            self.unwatch(i);
                            self.services[i].pid = None;
                        }
                        let s = &mut self.services[i];
                        s.state = State::Stopped;
                        s.ready = false;
                        s.note = None;
                    }
                    Err(e) => log(&format!("{name}: stop failed: {e}")),
                }
                self.settle(i, result);
                if self.services[i].wanted && !self.shutting_down {
                    self.launch_start(i);
                }
            }
            (Busy::Start, Ok(Outcome::AlreadyStopped)) => {
                // A revive found the service stopped on purpose by another command.
                log(&format!(
                    "{name}: stopped by another command; not restarted"
                ));
                let s = &mut self.services[i];
                s.state = State::Stopped;
                s.wanted = false;
                self.settle(i, Ok(Outcome::AlreadyStopped));
            }
            (_, Ok(Outcome::StoppedForFiledep { pid, file })) => {
                let s = &mut self.services[i];
                s.state = State::Stopped;
                s.wanted = false;
                self.unwatch(i);
                self.services[i].pid = None;
                self.settle(i, Ok(Outcome::StoppedForFiledep { pid, file }));
            }
            (_, Ok(outcome)) => {
                let new_pid = outcome.pid();
                let s = &mut self.services[i];
                s.outcome = Some(outcome.clone());
                s.note = None;
                let reloaded = matches!(outcome, Outcome::Reloaded { .. });
                if !matches!(outcome, Outcome::AlreadyRunning { .. }) {
                    log(&format!("{name}: {outcome}"));
                }
                if !reloaded {
                    s.run_gen += 1;
                    s.run_started = Some(Instant::now());
                    s.ready = false;
                }
                s.state = State::Starting;
                match new_pid {
                    Some(pid) if Some(pid) != self.services[i].pid => self.watch(i, pid),
                    Some(_) => {}
                    None => self.unwatch(i),
                }
                if self.services[i].run_started.is_none() && !reloaded {
                    // watch() found it gone at once; on_exit has dealt with it.
                    return;
                }
                if !self.services[i].wanted || self.shutting_down {
                    self.launch_stop(i);
                } else if reloaded {
                    self.mark_ready(i);
                } else {
                    self.begin_readiness(i);
                }
            }
            (_, Err(e)) => {
                log(&format!("{e}"));
                let s = &mut self.services[i];
                s.note = Some(e.message.clone());
                s.last_exit = Some(format!("failed to start: {}", e.message));
                self.settle(i, Err(e));
                let s = &mut self.services[i];
                if s.pid.is_some() {
                    // A failed restart that left the old process running.
                    s.state = State::Running;
                } else if s.wanted && !self.shutting_down {
                    // Our own start failed (and removed its files): just start again.
                    s.revive = false;
                    self.failed_run(i, Duration::ZERO);
                } else {
                    s.state = State::Stopped;
                }
            }
        }
    }

    /// Ready when its ping passes; without a ping, now (the start has waited its grace).
    pub(super) fn begin_readiness(&mut self, i: usize) {
        let s = &mut self.services[i];
        let Some(prepared) = s.prepared.clone() else {
            return self.mark_ready(i);
        };
        match lifecycle::ping_runnable(&self.playpen, &prepared) {
            Ok(Some(_)) => {
                s.ready_by = Some(Instant::now() + prepared.settings.depends_timeout);
                s.ping_pause = Duration::from_millis(10);
                self.ping(i);
            }
            _ => self.mark_ready(i),
        }
    }

    pub(super) fn ping(&mut self, i: usize) {
        let s = &self.services[i];
        let Some(prepared) = s.prepared.clone() else {
            return;
        };
        let left = s
            .ready_by
            .map(|t| t.saturating_duration_since(Instant::now()))
            .unwrap_or(prepared.settings.depends_timeout)
            .max(Duration::from_millis(100));
        let run_gen = s.run_gen;
        self.spawn_job(Tag::Ping(i, run_gen), Job::Ping(prepared, left));
    }

    pub(super) fn on_ping(&mut self, i: usize, run_gen: u64, ok: bool, detail: String) {
        let s = &mut self.services[i];
        if s.run_gen != run_gen || s.ready || s.busy.is_some() {
            return;
        }
        if ok {
            return self.mark_ready(i);
        }
        let now = Instant::now();
        if s.ready_by.is_some_and(|by| now < by) {
            let pause = s.ping_pause;
            s.ping_pause = (pause * 2).min(PING_PAUSE_MAX);
            self.set_timer(i, now + pause, Due::Ping(i, run_gen));
            return;
        }
        // It runs but does not answer: dependants must not wait for ever.
        s.state = State::Running;
        s.note = Some(format!("not ready: its ping fails ({detail})"));
        let err = Error::runtime(format!("started, but its ping still fails: {detail}"))
            .with_service(&s.name);
        log(&format!("{}", err));
        self.settle(i, Err(err));
    }

    pub(super) fn mark_ready(&mut self, i: usize) {
        let s = &mut self.services[i];
        s.ready = true;
        s.state = State::Running;
        s.note = None;
        let outcome = s
            .outcome
            .take()
            .unwrap_or(Outcome::AlreadyRunning { pid: s.pid });
        self.settle(i, Ok(outcome));
        self.check_waiters();
    }

    /// The service got where the batches waiting for it wanted it (or failed to).
    pub(super) fn settle(&mut self, i: usize, result: Result<Outcome>) {
        let name = self.services[i].name.clone();
        for id in std::mem::take(&mut self.services[i].waiting) {
            if let Some(batch) = self.batches.get_mut(&id) {
                batch.results.entry(name.clone()).or_insert(result.clone());
                self.dirty.push(id);
            }
        }
        self.check_waiters();
    }
}

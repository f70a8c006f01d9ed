//! Commands and what a preparation found: requests from clients, the launch, the
//! role brought up, services installed or removed, and commands acting directly.

use super::*;
use crate::process::env::Common;

impl Machine {
    pub(super) fn on_request(&mut self, client: ClientId, op: Op, now: Now) {
        let command = |op: Op| {
            JobFor::Prepare(Purpose::Command {
                client: Some(client),
                op,
            })
        };
        match op.clone() {
            Op::Wait {
                services,
                timeout_secs,
            } => self.wait(client, &services, timeout_secs, now),
            Op::Shutdown => self.begin_shutdown(Some(client), 0, None, now),
            // The driver answers these from `view` (they change nothing).
            Op::Hello | Op::Status { .. } => {}
            _ if self.shutting_down => {
                let e = Error::runtime("the supervisor is shutting down")
                    .with_hint("run the command again once it has exited");
                self.reply(client, Reply::error(&e));
            }
            Op::Start { services } => {
                self.job(None, command(op), Work::Prepare(Scope::Start(services)));
            }
            Op::Stop { services } => {
                let known = self
                    .services
                    .iter()
                    .filter(|s| s.config.is_some())
                    .map(|s| s.name.clone())
                    .collect();
                self.job(
                    None,
                    command(op),
                    Work::Prepare(Scope::Stop {
                        names: services,
                        known,
                    }),
                );
            }
            Op::Restart { services } => {
                self.job(None, command(op), Work::Prepare(Scope::Named(services)));
            }
            Op::Up => {
                self.job(None, command(op), Work::Prepare(Scope::Up));
            }
            Op::Down => {
                self.job(None, command(op), Work::Prepare(Scope::Down));
            }
        }
    }

    /// Take in what a preparation found, then act on the command it was for.
    pub(super) fn on_prepared(
        &mut self,
        purpose: Purpose,
        result: Result<Prepped, Error>,
        now: Now,
    ) {
        let mut prepped = match result {
            Ok(p) => p,
            Err(e) => {
                match purpose {
                    Purpose::Launch => {
                        self.log(format!("cannot read the configuration: {e}"));
                        self.finish_launch(now);
                    }
                    Purpose::Command {
                        client: Some(client),
                        ..
                    } => self.reply(client, Reply::error(&e)),
                    Purpose::Command { client: None, .. } | Purpose::Rescan => {
                        self.log(e.to_string())
                    }
                }
                return;
            }
        };
        let lenient = matches!(
            &purpose,
            Purpose::Command {
                op: Op::Stop { .. },
                ..
            }
        );
        // An armed inetd service holds its port itself: that is no conflict.
        let armed: Vec<String> = prepped
            .problems
            .keys()
            .filter(|n| {
                self.index
                    .get(*n)
                    .is_some_and(|&i| matches!(self.services[i].phase, Phase::Armed { .. }))
            })
            .cloned()
            .collect();
        for name in armed {
            prepped.problems.remove(&name);
        }
        // Services the supervisor did not know as installed before this preparation.
        let new: Vec<String> = prepped
            .prepared
            .keys()
            .filter(|n| {
                self.index.get(*n).is_none_or(|&i| {
                    let s = &self.services[i];
                    s.config.is_none() && !s.phase.is_up() && !s.phase.is_busy()
                })
            })
            .cloned()
            .collect();
        // Every copy is made before any original is freed: a freed original goes to
        // this thread's malloc cache, and the next copy would reuse it, leaving what the
        // supervisor keeps scattered over the job's arena, whose pages it then pins.
        let mut common = Common::default();
        let kept: Vec<(String, Prepared)> = (prepped.prepared.iter())
            .map(|(name, p)| (name.clone(), p.kept(&mut common)))
            .collect();
        prepped.prepared.clear();
        for (name, p) in kept {
            let i = self.service_index(&name);
            let s = &mut self.services[i];
            if !lenient {
                s.problem = prepped.problems.get(&name).cloned();
            }
            s.config = Some(Arc::new(p));
        }
        for w in prepped.warnings.clone() {
            self.log(format!("warning: {w}"));
        }
        let (client, op) = match purpose {
            Purpose::Launch => {
                self.mark_missing(&mut prepped);
                for name in &prepped.targets {
                    if let Some(&i) = self.index.get(name)
                        && self.services[i].config.is_some()
                        && !self.no_start
                    {
                        // Shown as pending from now on (its turn comes), not stopped.
                        self.services[i].wanted = true;
                    }
                }
                self.finish_launch(now);
                if self.no_start || self.shutting_down {
                    self.effects.push(Effect::Launched);
                    return;
                }
                return self.command_batch(None, Op::Up, prepped, true, now);
            }
            Purpose::Command { client, op } => (client, op),
            Purpose::Rescan => {
                // Only what is new: a service stopped on purpose stays stopped.
                self.mark_missing(&mut prepped);
                prepped.targets.retain(|n| new.contains(n));
                prepped.disabled.clear();
                if self.shutting_down || prepped.targets.is_empty() {
                    return;
                }
                (None, Op::Up)
            }
        };
        if matches!(op, Op::Up) {
            self.mark_missing(&mut prepped);
        }
        if self.shutting_down {
            if let Some(client) = client {
                let e = Error::runtime("the supervisor is shutting down");
                self.reply(client, Reply::error(&e));
            }
            return;
        }
        self.command_batch(client, op, prepped, false, now);
    }

    /// The launch has decided: exits seen before the configuration was known are
    /// decided, and requests held back are answered.
    pub(super) fn finish_launch(&mut self, now: Now) {
        self.launched = true;
        for i in 0..self.services.len() {
            if let Phase::Undecided { run } = self.services[i].phase {
                self.services[i].revive = true;
                self.failed_run(i, run, now);
            }
        }
        for (client, timeout) in std::mem::take(&mut self.early) {
            self.wait(client, &[], timeout, now);
        }
    }

    /// Listed by the role but not installed: named in status (`missing`, status exit
    /// 4), the others start. A service the supervisor knew that is gone now (removed
    /// by `remove-service`) and does not run is forgotten.
    pub(super) fn mark_missing(&mut self, prepped: &mut Prepped) {
        let missing: Vec<String> = prepped.unknown.keys().cloned().collect();
        for (name, e) in std::mem::take(&mut prepped.unknown) {
            let i = self.service_index(&name);
            let s = &mut self.services[i];
            if s.phase.is_up() || s.phase.is_busy() {
                continue;
            }
            s.config = None;
            s.wanted = false;
            s.phase = Phase::Failed;
            s.note = Some(format!("not installed: {}", e.message));
            s.problem = Some(e);
        }
        let listed: Vec<String> = prepped
            .targets
            .iter()
            .chain(prepped.disabled.iter())
            .chain(missing.iter())
            .cloned()
            .collect();
        for s in &mut self.services {
            let gone = s
                .problem
                .as_ref()
                .is_some_and(|p| p.kind == crate::error::ErrorKind::UnknownService);
            if gone && !listed.contains(&s.name) && !s.phase.is_up() && !s.phase.is_busy() {
                s.forgotten = true;
            } else if !gone {
                s.forgotten = false;
            }
        }
    }

    pub(super) fn on_record_appeared(&mut self, name: &str, pid: i32, now: Now) {
        let Some(&i) = self.index.get(name) else {
            return;
        };
        let s = &self.services[i];
        if s.phase.is_busy() || s.phase.pid().is_some() || self.shutting_down {
            return;
        }
        self.log(format!(
            "{name}: started by another command (pid {pid}); now supervised"
        ));
        let s = &mut self.services[i];
        s.wanted = true;
        s.note = None;
        s.phase = Phase::Running {
            pid: Some(pid),
            since: now.mono,
            unready: None,
            live: Liveness::default(),
        };
        self.effects.push(Effect::Watch { service: i, pid });
    }

    pub(super) fn on_record_removed(&mut self, name: &str) {
        let Some(&i) = self.index.get(name) else {
            return;
        };
        let s = &self.services[i];
        // Only a service whose process ended and that waits to be restarted: our own
        // starts and stops remove records too.
        if !s.revive || !matches!(s.phase, Phase::Backoff { .. } | Phase::Failed) {
            return;
        }
        self.log(format!("{name}: stopped by another command; not restarted"));
        let s = &mut self.services[i];
        s.wanted = false;
        s.phase = Phase::Stopped;
        s.note = None;
    }
}

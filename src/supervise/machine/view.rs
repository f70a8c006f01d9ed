//! What `status` and `wait` read of the state.

use super::*;
use crate::control::{NotReady, ServiceStatus, Supervised};

impl Machine {
    /// Service `i` as status shows it. `uptime`: the system's uptime (seconds), to turn
    /// the process's kernel start time into an age.
    pub fn view(&self, i: Sid, uptime: Option<f64>) -> ServiceStatus {
        let s = &self.services[i];
        let pid = s.phase.pid();
        let age = match (pid, s.start_ticks, uptime) {
            (Some(_), Some(ticks), Some(up)) => {
                Some(crate::process::proc::age(ticks, up).as_secs())
            }
            _ => None,
        };
        let ports = match &s.config {
            Some(p) if pid.is_some() || matches!(s.phase, Phase::Armed { .. }) => p.ports.clone(),
            _ => Vec::new(),
        };
        let cron = matches!(
            s.settings().map(|st| &st.service_type),
            Some(crate::config::settings::ServiceType::Cron(_))
        );
        let next_run = match s.phase {
            Phase::Armed {
                fire: Some(fire), ..
            } => Some(crate::text::local_time(fire.wall as f64)),
            _ => None,
        };
        ServiceStatus {
            service: s.name.clone(),
            // Wanted and about to start (its turn in the launch or a batch): pending.
            state: if s.phase == Phase::Stopped && s.wanted {
                "pending".to_string()
            } else if s.config.is_none()
                && s.problem
                    .as_ref()
                    .is_some_and(|p| p.kind == crate::error::ErrorKind::UnknownService)
            {
                // Listed by the role, not installed.
                "missing".to_string()
            } else {
                s.phase.word().to_string()
            },
            pid,
            uptime_secs: age,
            ports,
            listening: None,
            version: s.config.as_ref().and_then(|p| p.config.id.version.clone()),
            note: s.note.clone().or_else(|| s.change_note.clone()),
            supervised: Some(Supervised {
                restarts: s.restarts,
                last_exit: s.last_exit.clone(),
                ready: s.phase.is_ready(),
                wanted: s.wanted,
                next_run,
                last_run: match s.phase {
                    Phase::Done { at } => Some(crate::text::local_time(at as f64)),
                    _ if cron => s.last_run.map(|t| crate::text::local_time(t as f64)),
                    _ => None,
                },
                handlers: s.is_armable().then_some(s.children.len() as u32),
            }),
        }
    }

    /// `wait`: answered once every service is ready, or at the timeout. Names were
    /// checked by the driver (they are services of the playpen).
    pub(super) fn wait(
        &mut self,
        client: ClientId,
        names: &[String],
        timeout: Option<f64>,
        now: Now,
    ) {
        if names.is_empty() && !self.launched {
            self.early.push((client, timeout));
            return;
        }
        let services: Vec<Sid> = if names.is_empty() {
            (0..self.services.len())
                .filter(|&i| self.services[i].wanted)
                .collect()
        } else {
            names.iter().map(|n| self.service_index(n)).collect()
        };
        let id = self.next_id;
        self.next_id += 1;
        let timeout = Duration::from_secs_f64(timeout.unwrap_or(60.0).clamp(0.0, 1e7));
        self.waiters.insert(
            id,
            Waiter {
                client,
                services,
                deadline: now.mono + timeout,
            },
        );
    }

    pub(super) fn check_waiters(&mut self, _now: Now) {
        if self.waiters.is_empty() {
            return;
        }
        // Nothing under way could start a service that is stopped and not wanted: the
        // launch has decided, and no command is being prepared or carried out.
        let settled = self.launched
            && self.batches.is_empty()
            && !self.jobs.values().any(|j| matches!(j, JobFor::Prepare(_)));
        let done: Vec<u64> = self
            .waiters
            .iter()
            .filter(|(_, w)| {
                // Answered once nothing more can come: each is ready, or failed, or
                // stopped with nothing under way to start it.
                w.services.iter().all(|&i| {
                    let s = &self.services[i];
                    s.phase.is_ready()
                        || (settled && s.phase == Phase::Failed)
                        || (settled && s.phase == Phase::Stopped && !s.wanted)
                })
            })
            .map(|(id, _)| *id)
            .collect();
        for id in done {
            if let Some(w) = self.waiters.remove(&id) {
                self.answer_wait(w);
            }
        }
    }

    pub(super) fn answer_wait(&mut self, w: Waiter) {
        let (ready, not): (Vec<Sid>, Vec<Sid>) = w
            .services
            .iter()
            .partition(|&&i| self.services[i].phase.is_ready());
        let reply = Reply::Wait {
            ready: ready
                .iter()
                .map(|&i| self.services[i].name.clone())
                .collect(),
            not_ready: not
                .iter()
                .map(|&i| NotReady {
                    service: self.services[i].name.clone(),
                    state: self.services[i].phase.word().to_string(),
                })
                .collect(),
        };
        self.reply(w.client, reply);
    }
}

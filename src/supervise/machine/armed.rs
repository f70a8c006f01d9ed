//! Cron and inetd services: armed (scheduled, listening) rather than running, and the
//! runs and handlers they start, which are processes of the service like any other.

use super::service::Settled;
use super::*;
use crate::config::settings::{Protocol, ServiceType};
use crate::supervise::cron;
use nix::sys::signal::Signal;

impl Machine {
    /// The driver bound the socket (or could not).
    pub(super) fn on_armed(&mut self, i: Sid, result: Result<(), Error>, now: Now) {
        if self.services[i].phase != Phase::Arming {
            return;
        }
        let name = self.services[i].name.clone();
        if let Err(e) = result {
            self.log(e.to_string());
            let s = &mut self.services[i];
            s.phase = Phase::Failed;
            s.wanted = false;
            s.note = Some(e.message.clone());
            self.settle(i, Err(e), Settled::Started);
            return;
        }
        let kind = self.services[i].settings().map(|s| s.service_type.clone());
        let s = &mut self.services[i];
        s.phase = Phase::Armed {
            since: now.mono,
            fire: None,
        };
        s.note = None;
        s.listening = matches!(kind, Some(ServiceType::Inetd(_)));
        self.log(format!("{name}: armed"));
        if let Some(ServiceType::Cron(c)) = &kind
            && cron::Schedule::new(&c.schedule).is_none()
        {
            // @reboot: once, now.
            self.effects.push(Effect::SpawnRun { service: i });
        }
        self.schedule_cron(i, now);
        self.settle(i, Ok(Outcome::Started { pid: None }), Settled::Started);
        if !self.services[i].wanted || self.shutting_down {
            self.launch_stop(i, now);
        }
    }

    /// Set the next fire time after now and after the last minute fired (so a clock
    /// set back never fires a minute twice).
    pub(super) fn schedule_cron(&mut self, i: Sid, now: Now) {
        let Some(ServiceType::Cron(c)) = self.services[i].settings().map(|s| &s.service_type)
        else {
            return;
        };
        let Some(schedule) = cron::Schedule::new(&c.schedule) else {
            return;
        };
        let after = (now.wall.floor() as i64).max(self.services[i].last_fired.unwrap_or(i64::MIN));
        let fire = schedule.next_after(after).map(|next| Fire {
            // A millisecond late, so that the wall clock has reached it on waking.
            at: now.mono + Duration::from_secs_f64((next as f64 - now.wall).max(0.0) + 0.001),
            wall: next,
        });
        if let Phase::Armed { fire: f, .. } = &mut self.services[i].phase {
            *f = fire;
        }
    }

    /// A cron service's next fire time has come.
    pub(super) fn on_cron(&mut self, i: Sid, now: Now) {
        let Phase::Armed {
            fire: Some(fire), ..
        } = self.services[i].phase
        else {
            return;
        };
        let wall = now.wall.floor() as i64;
        let name = self.services[i].name.clone();
        if wall < fire.wall || self.services[i].last_fired.is_some_and(|l| fire.wall <= l) {
            // Early by the wall clock (it was set back): look again.
            return self.schedule_cron(i, now);
        }
        if wall - fire.wall >= 60 {
            self.log(format!(
                "{name}: the run due at {} starts {} s late (the clock was set forward, or the machine slept); runs due in between are not made up",
                crate::text::local_time(fire.wall as f64),
                wall - fire.wall
            ));
        }
        self.services[i].last_fired = Some(fire.wall);
        if self.services[i].children.is_empty() {
            self.effects.push(Effect::SpawnRun { service: i });
        } else {
            let due = crate::text::local_time(fire.wall as f64);
            self.log(format!(
                "{name}: the run due at {due} is skipped: the previous run is still going"
            ));
            self.services[i].note = Some(format!(
                "skipped the run due at {due}: the previous run was still going"
            ));
        }
        self.schedule_cron(i, now);
    }

    /// `stop` of a cron or inetd service: no more fires or connections; what runs is
    /// ended (TERM to each process group, KILL after the halt timeout).
    pub(super) fn disarm(&mut self, i: Sid, now: Now) {
        let was_armed = matches!(self.services[i].phase, Phase::Armed { .. });
        if was_armed {
            self.effects.push(Effect::Disarm { service: i });
            let name = self.services[i].name.clone();
            self.log(format!("{name}: disarmed"));
        }
        let s = &mut self.services[i];
        s.listening = false;
        if s.children.is_empty() {
            s.phase = Phase::Stopped;
            let outcome = if was_armed {
                Outcome::Stopped {
                    pid: None,
                    warning: None,
                }
            } else {
                Outcome::AlreadyStopped
            };
            self.settle(i, Ok(outcome), Settled::Stopped);
            if self.services[i].wanted && !self.shutting_down {
                self.launch(i, false, now);
            }
            return;
        }
        let halt = s.halt_timeout();
        s.phase = Phase::Halting {
            pid: None,
            kill_at: now.mono + halt,
            killed: false,
            why: None,
            failed: None,
        };
        self.effects.push(Effect::SignalChildren {
            service: i,
            signal: Signal::SIGTERM,
        });
    }

    fn handler_limit(&self, i: Sid) -> Option<usize> {
        match self.services[i].settings().map(|s| &s.service_type) {
            Some(ServiceType::Inetd(d)) if d.protocol == Protocol::Tcp => {
                Some(d.max_handlers as usize)
            }
            // One process at a time owns a udp socket.
            Some(ServiceType::Inetd(_)) => Some(1),
            _ => None,
        }
    }

    pub(super) fn on_child_started(&mut self, i: Sid, pid: i32, now: Now) {
        let s = &mut self.services[i];
        s.children.insert(pid);
        if matches!(
            s.settings().map(|s| &s.service_type),
            Some(ServiceType::Cron(_))
        ) {
            s.last_run = Some(now.wall as i64);
        }
        self.effects.push(Effect::WatchChild { service: i, pid });
        if let Some(max) = self.handler_limit(i)
            && self.services[i].children.len() >= max
            && self.services[i].listening
        {
            // The rest wait in the backlog (or the socket's queue) until one ends.
            self.services[i].listening = false;
            self.effects.push(Effect::Listen {
                service: i,
                on: false,
            });
        }
    }

    pub(super) fn on_child_exited(
        &mut self,
        service: Option<Sid>,
        pid: i32,
        status: String,
        now: Now,
    ) {
        let known = service.filter(|&i| {
            self.services
                .get(i)
                .is_some_and(|s| s.children.contains(&pid))
        });
        let Some(i) =
            known.or_else(|| self.services.iter().position(|s| s.children.contains(&pid)))
        else {
            return;
        };
        let s = &mut self.services[i];
        s.children.remove(&pid);
        let name = s.name.clone();
        if matches!(
            s.settings().map(|s| &s.service_type),
            Some(ServiceType::Cron(_))
        ) {
            s.last_exit = Some(status.clone());
            self.log(format!("{name}: cron run (pid {pid}) {status}"));
        }
        let s = &self.services[i];
        match s.phase {
            Phase::Halting { pid: None, .. } if s.children.is_empty() => self.finish_halt(i, now),
            Phase::Armed { .. } if !s.listening => {
                if let Some(max) = self.handler_limit(i)
                    && s.children.len() < max
                {
                    self.services[i].listening = true;
                    self.effects.push(Effect::Listen {
                        service: i,
                        on: true,
                    });
                }
            }
            _ => {}
        }
    }

    /// A connection (tcp) or a datagram (udp) waits on an inetd socket.
    pub(super) fn on_inetd_readable(&mut self, i: Sid) {
        if !matches!(self.services[i].phase, Phase::Armed { .. }) {
            return;
        }
        let Some(max) = self.handler_limit(i) else {
            return;
        };
        let room = max.saturating_sub(self.services[i].children.len());
        if room > 0 {
            self.effects
                .push(Effect::AcceptHandlers { service: i, room });
        } else if self.services[i].listening {
            self.services[i].listening = false;
            self.effects.push(Effect::Listen {
                service: i,
                on: false,
            });
        }
    }
}

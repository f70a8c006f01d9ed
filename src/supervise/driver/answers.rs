//! Requests the driver answers itself, because they only read the state (hello,
//! status), and the checks that come before a request reaches the machine.

use super::*;

impl Driver {
    pub(super) fn answer_status(&mut self, client: ClientId, names: &[String]) {
        let uptime = proc::uptime_secs();
        let mut views = Vec::new();
        let mut catalog = None;
        for name in names {
            if self.machine.find(name).is_some() {
                continue;
            }
            // Not supervised: known at all? (Files only, no process.)
            let catalog = match &catalog {
                Some(c) => c,
                None => match crate::playpen::catalog::Catalog::load(&self.playpen, None) {
                    Ok(c) => catalog.insert(c),
                    Err(e) => return self.send(client, &Reply::error(&e)),
                },
            };
            if let Err(e) = catalog.get(name) {
                return self.send(client, &Reply::error(&e));
            }
        }
        let indices: Vec<Option<Sid>> = if names.is_empty() {
            (0..self.machine.services.len())
                .filter(|&i| !self.machine.services[i].forgotten)
                .map(Some)
                .collect()
        } else {
            names.iter().map(|n| self.machine.find(n)).collect()
        };
        for (k, i) in indices.into_iter().enumerate() {
            let view = match i {
                Some(i) => {
                    let mut view = self.machine.view(i, uptime);
                    self.complete_view(i, &mut view);
                    view
                }
                None => self.unsupervised_view(&names[k]),
            };
            views.push(view);
        }
        self.send(client, &Reply::Status { services: views });
    }

    /// What the machine cannot know: the port an inetd listener is bound to; for a
    /// service whose configuration is not known, its start record.
    pub(super) fn complete_view(&self, i: Sid, view: &mut crate::control::ServiceStatus) {
        if let Some(port) = self.armed.get(&i).and_then(|a| a.bound_port())
            && !view.ports.iter().any(|(_, n)| *n == port)
        {
            view.ports.push(("service_port".to_string(), port));
        }
        if self.machine.services[i].config.is_none()
            && let Some(r) = crate::process::pidfile::read_record(&self.playpen, &view.service)
        {
            if view.pid.is_some() {
                view.ports = r.ports.clone();
            }
            view.version = r.version;
        }
    }

    pub(super) fn unsupervised_view(&self, name: &str) -> crate::control::ServiceStatus {
        crate::control::ServiceStatus {
            service: name.to_string(),
            state: "stopped".into(),
            pid: None,
            uptime_secs: None,
            ports: Vec::new(),
            listening: None,
            version: crate::process::pidfile::read_record(&self.playpen, name)
                .and_then(|r| r.version),
            note: None,
            supervised: Some(crate::control::Supervised {
                restarts: 0,
                last_exit: None,
                ready: false,
                wanted: false,
                next_run: None,
                last_run: None,
                handlers: None,
            }),
        }
    }

    /// A request: answered here when it only reads the state (hello, status), else
    /// handed to the machine.
    pub(super) fn on_request(&mut self, client: ClientId, op: Op, now: Now) {
        match op {
            Op::Hello => self.send(
                client,
                &Reply::Hello {
                    pid: std::process::id() as i32,
                    version: env!("CARGO_PKG_VERSION").to_string(),
                },
            ),
            Op::Status { services } => {
                self.take_in_exits(now, None);
                if self.machine.launched {
                    self.answer_status(client, &services);
                } else {
                    // Before the launch has decided, the role's services are about to
                    // start: answered once it has, never as "no services".
                    self.early_status.push((client, services));
                }
            }
            Op::Wait {
                services,
                timeout_secs,
            } => {
                self.take_in_exits(now, Some(&services));
                if let Err(e) = self.check_names(&services) {
                    return self.send(client, &Reply::error(&e));
                }
                self.push(Event::Request {
                    client,
                    op: Op::Wait {
                        services,
                        timeout_secs,
                    },
                });
            }
            op => self.push(Event::Request { client, op }),
        }
    }

    /// Every name is a service of the playpen (files only).
    pub(super) fn check_names(&self, names: &[String]) -> Result<()> {
        if names.iter().all(|n| self.machine.find(n).is_some()) {
            return Ok(());
        }
        let catalog = crate::playpen::catalog::Catalog::load(&self.playpen, None)?;
        for name in names {
            if self.machine.find(name).is_none() {
                catalog.get(name)?;
            }
        }
        Ok(())
    }
}

//! Commands on several services (start, stop, restart, up, down, shutdown) as batches
//! that advance in dependency order as each service settles.

use super::*;

impl Supervisor {
    pub(super) fn new_batch(&mut self, batch: Batch) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.batches.insert(id, batch);
        self.dirty.push(id);
        id
    }

    pub(super) fn flush_batches(&mut self) {
        while let Some(id) = self.dirty.pop() {
            self.advance(id);
        }
    }

    pub(super) fn advance(&mut self, id: u64) {
        loop {
            let Some(batch) = self.batches.get_mut(&id) else {
                return;
            };
            // The first pending service whose prerequisites are settled.
            let mut launch = None;
            let mut skip = None;
            for (pos, name) in batch.pending.iter().enumerate() {
                let prereqs = batch.waits_for.get(name).cloned().unwrap_or_default();
                if let Some(failed) = prereqs
                    .iter()
                    .find(|p| matches!(batch.results.get(*p), Some(Err(_))))
                {
                    skip = Some((pos, failed.clone()));
                    break;
                }
                if prereqs
                    .iter()
                    .all(|p| batch.results.contains_key(p) || !batch.verbs.contains_key(p))
                {
                    launch = Some(pos);
                    break;
                }
            }
            if let Some((pos, failed)) = skip {
                let name = batch.pending.remove(pos);
                let verb = batch.verbs[&name];
                let err = match verb {
                    Verb::Stop => Error::new(
                        ErrorKind::NotAttempted,
                        format!(
                            "not stopped because {failed}, which depends on it, failed to stop"
                        ),
                    )
                    .with_hint(format!("stop {failed} first (its error is above)")),
                    _ => Error::new(
                        ErrorKind::NotAttempted,
                        format!("not started because {failed}, which it depends on, failed"),
                    )
                    .with_hint(format!(
                        "fix {failed} (its error is above), then run this again"
                    )),
                }
                .with_service(&name);
                batch.results.insert(name, Err(err));
                continue;
            }
            let Some(pos) = launch else {
                break;
            };
            let name = batch.pending.remove(pos);
            let verb = batch.verbs[&name];
            let i = self.service_index(&name);
            self.services[i].waiting.push(id);
            match verb {
                Verb::Start => self.request_start(i),
                Verb::Stop => self.launch_stop(i),
                Verb::Restart => self.launch_restart(i),
            }
        }
        let Some(batch) = self.batches.get(&id) else {
            return;
        };
        if !batch.pending.is_empty() || batch.verbs.keys().any(|n| !batch.results.contains_key(n)) {
            return;
        }
        let batch = self.batches.remove(&id).expect("present");
        let mut rows: Vec<Row> = batch
            .order
            .iter()
            .filter_map(|n| batch.results.get(n).map(|r| row(n, r)))
            .collect();
        rows.extend(batch.extra);
        match batch.conn {
            Some(conn) => self.reply(
                conn,
                &Reply::Results {
                    results: rows,
                    warnings: batch.warnings,
                },
            ),
            None => {
                for r in rows {
                    if let Some(e) = r.error {
                        log(&Error::from(e).to_string());
                    }
                }
            }
        }
        if let Some(code) = batch.exit_after {
            self.exit = Some(code);
        }
    }

    /// Start (or keep) a service as part of a batch; it settles once ready.
    pub(super) fn request_start(&mut self, i: usize) {
        let s = &mut self.services[i];
        s.wanted = true;
        match (s.busy, s.state) {
            (Some(Busy::Stop), _) => {} // on_lifecycle starts it after the stop
            (Some(_), _) => {}          // on its way
            (None, State::Running) if s.ready => {
                let pid = s.pid;
                self.settle(i, Ok(Outcome::AlreadyRunning { pid }));
            }
            (None, State::Armed) => self.settle(i, Ok(Outcome::AlreadyRunning { pid: None })),
            (None, State::Running | State::Starting) if s.pid.is_some() => {
                // Its readiness is being checked.
            }
            _ => {
                s.restarts = 0;
                s.streak = 0;
                self.launch_start(i);
            }
        }
    }

    /// A batch for `verb` over `names` (already in dependency order), replying to `conn`.
    pub(super) fn batch(
        &mut self,
        conn: Option<u64>,
        starts: &[String],
        stops: &[String],
        verb: Verb,
        deps: &Deps,
    ) -> Batch {
        let mut verbs = BTreeMap::new();
        for n in starts {
            verbs.insert(n.clone(), verb);
        }
        for n in stops {
            verbs.insert(n.clone(), Verb::Stop);
        }
        let mut waits_for: Deps = BTreeMap::new();
        for (name, verb) in &verbs {
            let list = match verb {
                Verb::Stop => deps
                    .iter()
                    .filter(|(other, ds)| {
                        verbs.get(*other) == Some(&Verb::Stop) && ds.contains(name)
                    })
                    .map(|(other, _)| other.clone())
                    .collect(),
                _ => deps
                    .get(name)
                    .into_iter()
                    .flatten()
                    .filter(|d| verbs.get(*d).is_some_and(|v| *v != Verb::Stop))
                    .cloned()
                    .collect(),
            };
            waits_for.insert(name.clone(), list);
        }
        let mut order: Vec<String> = starts.to_vec();
        let mut stop_order: Vec<String> = stops.to_vec();
        stop_order.reverse();
        order.extend(stop_order);
        Batch {
            conn,
            verbs,
            waits_for,
            pending: order.clone(),
            order,
            results: BTreeMap::new(),
            extra: Vec::new(),
            warnings: Vec::new(),
            exit_after: None,
        }
    }

    /// The dependency graph of the supervised services, from their known settings.
    pub(super) fn known_deps(&self) -> Deps {
        self.services
            .iter()
            .map(|s| {
                let deps = s
                    .settings()
                    .map(|st| {
                        st.depends
                            .iter()
                            .filter(|d| self.index.contains_key(*d) && **d != s.name)
                            .cloned()
                            .collect()
                    })
                    .unwrap_or_default();
                (s.name.clone(), deps)
            })
            .collect()
    }

    /// Stop everything, dependants first, then exit with `code`.
    pub(super) fn begin_shutdown(&mut self, conn: Option<u64>, code: i32, culprit: Option<String>) {
        if self.shutting_down {
            if let Some(conn) = conn {
                // Answered when the shutdown under way is done.
                let batch = self
                    .batches
                    .values_mut()
                    .find(|b| b.exit_after.is_some() && b.conn.is_none());
                match batch {
                    Some(b) => b.conn = Some(conn),
                    None => self.reply(
                        conn,
                        &Reply::Results {
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
            Some(name) => log(&format!(
                "shutting down: {name} failed (service_fail_fast=1)"
            )),
            None => log("shutting down: stopping every service"),
        }
        for i in 0..self.services.len() {
            self.cancel_timer(i);
            self.services[i].wanted = false;
        }
        let deps = self.known_deps();
        let order = crate::ops::graph::order(&deps);
        let stops: Vec<String> = order
            .into_iter()
            .filter(|n| {
                let s = &self.services[self.index[n]];
                s.pid.is_some()
                    || s.busy.is_some()
                    || s.state == State::Running
                    || s.armed.is_some()
                    || !s.children.is_empty()
            })
            .collect();
        let mut batch = self.batch(conn, &[], &stops, Verb::Stop, &deps);
        batch.exit_after = Some(code);
        if let Some(name) = culprit {
            batch.warnings.push(format!(
                "{name} failed for good and has service_fail_fast=1: the playpen was stopped"
            ));
        }
        self.new_batch(batch);
    }
}

//! Commands on several services (start, stop, restart, up, down, shutdown) as batches
//! that advance in dependency order as each service settles.

use super::*;
use crate::control::Row;
use crate::error::ErrorKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Start,
    Stop,
    Restart,
}

/// One command's work across services: each waits for its prerequisites (what it
/// depends on for a start, what depends on it for a stop) to settle.
#[derive(Debug)]
pub(super) struct Batch {
    pub client: Option<ClientId>,
    verbs: BTreeMap<String, Verb>,
    waits_for: Deps,
    order: Vec<String>,
    pending: Vec<String>,
    pub results: BTreeMap<String, Result<Outcome, Error>>,
    /// Rows decided before the batch ran (problems, unknown names).
    extra: Vec<Row>,
    pub warnings: Vec<String>,
    /// Exit the supervisor with this code once done (shutdown).
    pub exit_after: Option<i32>,
    /// The launch's `up`: once done, the supervisor has brought the role up.
    pub launch: bool,
}

pub(super) fn row(service: &str, result: &Result<Outcome, Error>) -> Row {
    match result {
        Ok(o) => Row {
            service: service.to_string(),
            done: Some(o.clone()),
            error: None,
        },
        Err(e) => Row {
            service: service.to_string(),
            done: None,
            error: Some(e.into()),
        },
    }
}

impl Machine {
    /// The batch a prepared command makes.
    pub(super) fn command_batch(
        &mut self,
        client: Option<ClientId>,
        op: Op,
        prepped: Prepped,
        launch: bool,
        now: Now,
    ) {
        let strict = matches!(op, Op::Start { .. } | Op::Restart { .. });
        let mut extra: Vec<Row> = prepped
            .unknown
            .iter()
            .map(|(n, e)| row(n, &Err(e.clone())))
            .collect();
        let mut targets: Vec<String> = prepped
            .targets
            .iter()
            .filter(|n| !prepped.unknown.contains_key(*n))
            .cloned()
            .collect();
        if strict && (!prepped.problems.is_empty() || !extra.is_empty()) {
            // As without a supervisor: nothing starts until every problem is fixed.
            for name in &targets {
                let err = prepped.problems.get(name).cloned().unwrap_or_else(|| {
                    Error::new(
                        ErrorKind::NotAttempted,
                        "not started: other services have configuration problems (listed above)",
                    )
                    .with_service(name)
                });
                extra.push(row(name, &Err(err)));
            }
            targets.clear();
        }
        let deps = prepped.deps.clone();
        let mut batch = match op {
            Op::Start { .. } => self.batch(client, &targets, &[], Verb::Start, &deps),
            Op::Restart { .. } => self.batch(client, &targets, &[], Verb::Restart, &deps),
            Op::Stop { .. } => {
                let stops = self.with_dependants(&targets);
                let known = self.known_deps();
                self.batch(client, &[], &stops, Verb::Stop, &known)
            }
            Op::Up => self.batch(client, &targets, &prepped.disabled, Verb::Start, &deps),
            Op::Down => {
                let mut all: Vec<String> = targets.clone();
                for s in &self.services {
                    if !all.contains(&s.name) {
                        all.push(s.name.clone());
                    }
                }
                let deps = self.known_deps();
                let order: Vec<String> = crate::ops::graph::order(&deps)
                    .into_iter()
                    .filter(|n| all.contains(n))
                    .collect();
                self.batch(client, &[], &order, Verb::Stop, &deps)
            }
            _ => return,
        };
        batch.extra = extra;
        batch.warnings = prepped.warnings;
        batch.launch = launch;
        self.new_batch(batch);
        self.flush_batches(now);
    }

    /// `names` in dependency order (their own order where the graph says nothing).
    fn with_dependants(&self, names: &[String]) -> Vec<String> {
        let deps = self.known_deps();
        let mut ordered: Vec<String> = crate::ops::graph::order(&deps)
            .into_iter()
            .filter(|n| names.contains(n))
            .collect();
        for n in names {
            if !ordered.contains(n) {
                ordered.push(n.clone());
            }
        }
        ordered
    }

    pub(super) fn new_batch(&mut self, batch: Batch) -> BatchId {
        let id = self.next_id;
        self.next_id += 1;
        self.batches.insert(id, batch);
        self.dirty.push(id);
        id
    }

    pub(super) fn flush_batches(&mut self, now: Now) {
        while let Some(id) = self.dirty.pop() {
            self.advance(id, now);
        }
    }

    fn advance(&mut self, id: BatchId, now: Now) {
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
                if verb != Verb::Stop
                    && let Some(&i) = self.index.get(&name)
                    && self.services[i].phase == Phase::Stopped
                {
                    // Not pending any more: nothing will start it until asked again.
                    let s = &mut self.services[i];
                    s.wanted = false;
                    s.note = Some(err.message.clone());
                }
                let batch = self.batches.get_mut(&id).expect("present");
                batch.results.insert(name, Err(err));
                continue;
            }
            let Some(pos) = launch else {
                break;
            };
            let name = batch.pending.remove(pos);
            let verb = batch.verbs[&name];
            let i = self.service_index(&name);
            self.services[i].waiting.push((id, verb));
            match verb {
                Verb::Start => self.request_start(i, now),
                Verb::Stop => self.launch_stop(i, now),
                Verb::Restart => self.launch_restart(i, now),
            }
        }
        let Some(batch) = self.batches.get(&id) else {
            return;
        };
        // Results come only for the batch's services (those pending, or waiting with
        // it): it is done when each has one. (Counted, not looked up one by one: this
        // runs at every result, quadratic for a stop of 1,000.)
        if !batch.pending.is_empty() || batch.results.len() < batch.verbs.len() {
            return;
        }
        let batch = self.batches.remove(&id).expect("present");
        if batch.launch {
            self.effects.push(Effect::Launched);
        }
        let mut rows: Vec<Row> = batch
            .order
            .iter()
            .filter_map(|n| batch.results.get(n).map(|r| row(n, r)))
            .collect();
        rows.extend(batch.extra);
        let reply = Reply::Results {
            results: rows,
            warnings: batch.warnings,
        };
        match (batch.exit_after, batch.client) {
            // The last step of a shutdown: what is left of the playpen is ended, then
            // the reply goes out (with what was left), then the supervisor exits.
            (Some(code), client) => {
                self.effects.push(Effect::Sweep);
                if let Some(client) = client {
                    self.reply(client, reply);
                } else {
                    self.log_failures(&reply);
                }
                self.exit = Some(code);
            }
            (None, Some(client)) => self.reply(client, reply),
            (None, None) => self.log_failures(&reply),
        }
    }

    fn log_failures(&mut self, reply: &Reply) {
        if let Reply::Results { results, .. } = reply {
            for r in results {
                if let Some(e) = &r.error {
                    self.log(Error::from(e.clone()).to_string());
                }
            }
        }
    }

    /// A batch for `verb` over `names` (already in dependency order), replying to `client`.
    pub(super) fn batch(
        &self,
        client: Option<ClientId>,
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
        // A stop waits for the stops of what depends on it: who depends on whom among
        // the stopped, from one pass over the graph (not one per stopped service:
        // quadratic at 1,000), each list in the graph's order, without repeats.
        let mut dependants: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for (other, ds) in deps {
            if verbs.get(other) != Some(&Verb::Stop) {
                continue;
            }
            for d in ds {
                let list = dependants.entry(d.as_str()).or_default();
                if list.last() != Some(other) {
                    list.push(other.clone());
                }
            }
        }
        let mut waits_for: Deps = BTreeMap::new();
        for (name, verb) in &verbs {
            let list = match verb {
                Verb::Stop => dependants.remove(name.as_str()).unwrap_or_default(),
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
            client,
            verbs,
            waits_for,
            pending: order.clone(),
            order,
            results: BTreeMap::new(),
            extra: Vec::new(),
            warnings: Vec::new(),
            exit_after: None,
            launch: false,
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
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::ops::graph::deps_of as deps;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|n| n.to_string()).collect()
    }

    /// What each service of a batch waits for: a stop for the stops of its dependants
    /// (in the graph's order, each once), a start for the starts of its dependencies.
    #[test]
    fn a_batch_waits_for_dependants_to_stop_and_dependencies_to_start() {
        let m = Machine::new(false);
        let graph = deps(&[
            ("api", &["db", "cache"]),
            ("cache", &["db"]),
            ("db", &[]),
            ("web", &["api", "api", "db"]),
            ("worker", &["db"]),
        ]);
        let b = m.batch(
            None,
            &names(&["db", "api"]),
            &names(&["cache", "db", "web", "worker"]),
            Verb::Start,
            &graph,
        );
        let waits = |n: &str| b.waits_for[n].join(" ");
        // Stops: cache, web and worker depend on db and are stopped; api is not stopped.
        assert_eq!(waits("db"), "cache web worker");
        assert_eq!(waits("cache"), "");
        assert_eq!(waits("web"), "");
        assert_eq!(waits("worker"), "");
        // db is in the stops too (the stop wins): api's start does not wait for it.
        assert_eq!(waits("api"), "");
        assert_eq!(b.waits_for.len(), 5);
        let b = m.batch(
            None,
            &names(&[]),
            &names(&["db", "api", "web"]),
            Verb::Stop,
            &graph,
        );
        assert_eq!(b.waits_for["db"].join(" "), "api web");
        assert_eq!(b.waits_for["api"].join(" "), "web");
        assert_eq!(b.waits_for["web"].join(" "), "");
        assert_eq!(b.pending, names(&["web", "api", "db"]));
    }
}

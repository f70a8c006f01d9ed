//! Dependency order (service_depends): cycles are errors, and independent services run
//! in parallel — each one waits only for what it depends on (start) or for what depends
//! on it (stop).

use crate::error::{Error, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Condvar, Mutex};

/// name → the names it depends on (restricted to the set being acted on).
pub type Deps = BTreeMap<String, Vec<String>>;

/// The first cycle found, as a path that ends where it starts.
pub fn find_cycle(deps: &Deps) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Visiting,
        Done,
    }
    fn visit<'a>(
        node: &'a str,
        deps: &'a Deps,
        marks: &mut BTreeMap<&'a str, Mark>,
        path: &mut Vec<&'a str>,
    ) -> std::result::Result<(), Vec<String>> {
        match marks.get(node) {
            Some(Mark::Done) => return Ok(()),
            Some(Mark::Visiting) => {
                let start = path.iter().position(|n| *n == node).unwrap_or(0);
                let mut cycle: Vec<String> = path[start..].iter().map(|n| n.to_string()).collect();
                cycle.push(node.to_string());
                return Err(cycle);
            }
            None => {}
        }
        marks.insert(node, Mark::Visiting);
        path.push(node);
        if let Some(list) = deps.get(node) {
            for dep in list {
                visit(dep, deps, marks, path)?;
            }
        }
        path.pop();
        marks.insert(node, Mark::Done);
        Ok(())
    }
    let mut marks = BTreeMap::new();
    deps.keys()
        .find_map(|node| visit(node, deps, &mut marks, &mut Vec::new()).err())
}

/// A topological order (dependencies first), for reports and sequential work.
pub fn order(deps: &Deps) -> Vec<String> {
    fn visit(node: &str, deps: &Deps, seen: &mut BTreeSet<String>, out: &mut Vec<String>) {
        if !seen.insert(node.to_string()) {
            return;
        }
        for dep in deps.get(node).into_iter().flatten() {
            visit(dep, deps, seen, out);
        }
        out.push(node.to_string());
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for node in deps.keys() {
        visit(node, deps, &mut seen, &mut out);
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Direction {
    /// Dependencies first (start).
    Forward,
    /// Dependants first (stop).
    Reverse,
}

/// What each node waits for before it runs: its dependencies (Forward) or its
/// dependants (Reverse).
pub fn waits_for(deps: &Deps, direction: Direction) -> Deps {
    match direction {
        Direction::Forward => deps.clone(),
        Direction::Reverse => {
            let mut rev: Deps = deps.keys().map(|k| (k.clone(), Vec::new())).collect();
            for (node, list) in deps {
                for dep in list {
                    rev.entry(dep.clone()).or_default().push(node.clone());
                }
            }
            rev
        }
    }
}

/// Run `job` for every node in parallel, each as soon as the nodes it waits for are done.
/// A node whose prerequisite failed is not run; `skipped` gives its error instead.
/// The graph must be acyclic (see `find_cycle`).
pub fn run_parallel<T, F, S>(
    deps: &Deps,
    direction: Direction,
    job: F,
    skipped: S,
) -> BTreeMap<String, Result<T>>
where
    T: Send + 'static,
    F: Fn(&str) -> Result<T> + Sync,
    S: Fn(&str, &str) -> Error + Sync,
{
    let waits_for = waits_for(deps, direction);
    // name → Some(ok?) once finished.
    let state: Arc<(Mutex<BTreeMap<String, bool>>, Condvar)> =
        Arc::new((Mutex::new(BTreeMap::new()), Condvar::new()));
    let results: Mutex<BTreeMap<String, Result<T>>> = Mutex::new(BTreeMap::new());
    std::thread::scope(|scope| {
        for node in waits_for.keys() {
            let state = Arc::clone(&state);
            let waits_for = &waits_for;
            let job = &job;
            let skipped = &skipped;
            let results = &results;
            scope.spawn(move || {
                let prerequisites = waits_for.get(node).cloned().unwrap_or_default();
                let failed_prerequisite = {
                    let (lock, cvar) = &*state;
                    let mut done = lock.lock().expect("not poisoned");
                    loop {
                        if let Some(failed) =
                            prerequisites.iter().find(|p| done.get(*p) == Some(&false))
                        {
                            break Some(failed.clone());
                        }
                        if prerequisites
                            .iter()
                            .all(|p| done.contains_key(p) || !waits_for.contains_key(p))
                        {
                            break None;
                        }
                        done = cvar.wait(done).expect("not poisoned");
                    }
                };
                let result = match failed_prerequisite {
                    Some(failed) => Err(skipped(node, &failed)),
                    // A panicking job must still mark its node done, or every node that
                    // waits for it would wait forever.
                    None => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(node)))
                        .unwrap_or_else(|_| {
                            Err(Error::runtime(
                                "internal error (servicectl panicked; please report it)",
                            )
                            .with_service(node))
                        }),
                };
                let ok = result.is_ok();
                results
                    .lock()
                    .expect("not poisoned")
                    .insert(node.clone(), result);
                let (lock, cvar) = &*state;
                lock.lock().expect("not poisoned").insert(node.clone(), ok);
                cvar.notify_all();
            });
        }
    });
    results.into_inner().expect("not poisoned")
}

/// A graph written as `(service, its dependencies)` pairs, for tests.
#[cfg(test)]
pub(crate) fn deps_of(pairs: &[(&str, &[&str])]) -> Deps {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::deps_of as deps;
    use super::*;

    #[test]
    fn finds_cycles_and_names_them() {
        let cycle = find_cycle(&deps(&[("a", &["b"]), ("b", &["c"]), ("c", &["a"])])).unwrap();
        assert_eq!(cycle, ["a", "b", "c", "a"]);
        assert_eq!(find_cycle(&deps(&[("a", &["b"]), ("b", &[])])), None);
    }

    #[test]
    fn runs_dependencies_first_and_dependants_first_in_reverse() {
        let graph = deps(&[("web", &["db", "cache"]), ("db", &[]), ("cache", &["db"])]);
        let log = Mutex::new(Vec::new());
        run_parallel(
            &graph,
            Direction::Forward,
            |n| {
                log.lock().unwrap().push(n.to_string());
                Ok(())
            },
            |_, _| Error::runtime("skip"),
        );
        assert_eq!(*log.lock().unwrap(), vec!["db", "cache", "web"]);
        log.lock().unwrap().clear();
        run_parallel(
            &graph,
            Direction::Reverse,
            |n| {
                log.lock().unwrap().push(n.to_string());
                Ok(())
            },
            |_, _| Error::runtime("skip"),
        );
        assert_eq!(*log.lock().unwrap(), vec!["web", "cache", "db"]);
    }

    #[test]
    fn skips_what_depends_on_a_failure() {
        let graph = deps(&[("web", &["db"]), ("db", &[])]);
        let results = run_parallel(
            &graph,
            Direction::Forward,
            |n| {
                if n == "db" {
                    Err(Error::runtime("boom"))
                } else {
                    Ok(())
                }
            },
            |n, failed| Error::runtime(format!("{n} skipped: {failed} failed")),
        );
        assert!(
            results["web"]
                .as_ref()
                .unwrap_err()
                .message
                .contains("db failed")
        );
    }
}

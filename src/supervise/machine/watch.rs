//! Restart on change (service_watch; SPEC §12.2): a change of a watched file restarts
//! its service once the files have been quiet for service_watch_delay, then what
//! depends on it (and runs), in dependency order, as one restart command.

use super::*;

impl Machine {
    /// A watched file of service `i` changed (`file`: relative to the playpen root).
    pub(super) fn on_file_changed(&mut self, i: Sid, file: String, now: Now) {
        let s = &mut self.services[i];
        // A stopped or failed service is not started by a change.
        if !s.wanted || self.shutting_down || !(s.phase.is_up() || s.phase.is_busy()) {
            return;
        }
        let delay = s.settings().map_or(Duration::ZERO, |st| st.watch.delay);
        // Each change pushes the restart back: a burst is one restart.
        s.changed = Some((now.mono + delay, file));
    }

    /// The due restarts on change.
    pub(super) fn restart_changed(&mut self, now: Now) {
        for i in 0..self.services.len() {
            let Some((due, file)) = self.services[i].changed.clone() else {
                continue;
            };
            if due > now.mono {
                continue;
            }
            let s = &mut self.services[i];
            if s.phase.is_busy() {
                // A start or stop is under way: look again once the files are quiet.
                let delay = s.settings().map_or(Duration::ZERO, |st| st.watch.delay);
                s.changed = Some((now.mono + delay.max(CHECK_PAUSE_FIRST), file));
                continue;
            }
            s.changed = None;
            if !s.wanted || !s.phase.is_up() || self.shutting_down {
                continue;
            }
            let name = s.name.clone();
            s.change_note = Some(format!("restarted: {file} changed"));
            let mut names = vec![name.clone()];
            for d in self.running_dependants(&name) {
                let note = format!("restarted: {name} restarted ({file} changed)");
                self.services[d].change_note = Some(note);
                names.push(self.services[d].name.clone());
            }
            self.log(format!(
                "{file} changed: restarting {}",
                crate::text::short_list(&names, 10)
            ));
            self.job(
                None,
                JobFor::Prepare(Purpose::Command {
                    client: None,
                    op: Op::Restart {
                        services: names.clone(),
                    },
                }),
                Work::Prepare(Scope::Named(names)),
            );
        }
    }

    /// The services that depend on `name`, directly or not, and are up.
    fn running_dependants(&self, name: &str) -> Vec<Sid> {
        let deps = self.known_deps();
        let mut found: Vec<String> = Vec::new();
        let mut frontier = vec![name.to_string()];
        while let Some(n) = frontier.pop() {
            for (dependant, on) in &deps {
                if on.contains(&n) && !found.contains(dependant) && dependant != name {
                    found.push(dependant.clone());
                    frontier.push(dependant.clone());
                }
            }
        }
        found
            .iter()
            .filter_map(|n| self.find(n))
            .filter(|&d| self.services[d].phase.is_up() && self.services[d].wanted)
            .collect()
    }

    /// The earliest restart on change that is due.
    pub(super) fn next_change(&self) -> Option<Instant> {
        self.services
            .iter()
            .filter_map(|s| s.changed.as_ref().map(|(at, _)| *at))
            .min()
    }
}

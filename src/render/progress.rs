//! start, stop, restart, up and down: a line per service as it finishes, then those
//! left as they were summed up; on a terminal, a live status line under them.

use super::sink::{json_text, out};
use super::style::Style;
use super::{Report, Shown};
use crate::error::Result;
use crate::ops::{Results, Step};
use crate::service::outcome::Outcome;
use crate::text::short_list;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{self, IsTerminal};
use std::path::Path;
use std::sync::Mutex;

/// No names given and the role lists no (enabled) services: say so, and where to list them.
pub fn nothing_to_do(role_config: &Path) -> String {
    format!(
        "no services to act on: playpen_services in {} is empty; list services there or name them\n",
        role_config.display()
    )
}

/// One service's result of start, stop or restart, for `--json`.
pub fn outcome_json(name: &str, result: &Result<Outcome>) -> Value {
    match result {
        Ok(o) => json!({"service": name, "ok": true, "result": o.word(), "pid": o.pid()}),
        Err(e) => json!({"service": name, "ok": false, "error": e.to_string()}),
    }
}

/// `NAME: started (pid 12)`, green when the operation did what was asked.
pub fn outcome_line(name: &str, outcome: &Outcome, style: Style) -> String {
    let word = outcome.to_string();
    let shown = if outcome.is_done_as_asked() {
        style.green(&word)
    } else {
        word
    };
    format!("{name}: {shown}\n")
}

/// Services left as they were, one line per state: `already running (3): a, b, c`.
pub fn unchanged_summary(unchanged: &[(String, Outcome)]) -> String {
    let mut by_label: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (name, outcome) in unchanged {
        by_label
            .entry(outcome.summary_label())
            .or_default()
            .push(name.clone());
    }
    let mut out = String::new();
    for (label, mut names) in by_label {
        names.sort();
        out.push_str(&format!(
            "{label} ({}): {}\n",
            names.len(),
            short_list(&names, 12)
        ));
    }
    out
}

/// The output of start, stop and restart: a line per service as it finishes (errors on
/// stderr), then the services left as they were summed up, then what was not shown yet;
/// with `--json`, one document at the end.
///
/// On a terminal (stdout), and without `--json`, a status line under those lines says
/// what is going on meanwhile: how many are done and failed, which are in progress and
/// which wait on which dependency. It is rewritten in place with `\r` (no escape
/// sequence, so NO_COLOR and dumb terminals see plain text; colour only with
/// [`Style::colour`]) and blanked before every other line and at the end: in a pipe
/// nothing of it is written, and what stays on a terminal is the same as in a pipe.
pub struct Progress {
    json: bool,
    style: Style,
    /// Several services were named (or none: the role's): sum up the unchanged ones
    /// instead of a line each.
    sum_up_unchanged: bool,
    reported: Mutex<Vec<String>>,
    unchanged: Mutex<Vec<(String, Outcome)>>,
    /// The status line's state, on a terminal only.
    live: Option<Mutex<Live>>,
}

/// What the status line shows.
#[derive(Default)]
struct Live {
    /// name → what it waits for, and whether it waits for readiness (it has begun).
    waiting: BTreeMap<String, (Vec<String>, bool)>,
    busy: Vec<String>,
    done: Vec<String>,
    failed: Vec<String>,
    /// Every service heard of.
    all: std::collections::BTreeSet<String>,
    /// Characters of the status line now on the screen.
    shown: usize,
}

impl Live {
    fn finished(&self, name: &str) -> bool {
        self.done.iter().chain(&self.failed).any(|n| n == name)
    }

    /// `2/5 done, 1 failed · now: db, cache · web waits for db`
    fn line(&self, style: Style, width: usize) -> (String, usize) {
        let total = self.all.len();
        let mut parts: Vec<(String, String)> = Vec::new();
        let done = format!("{}/{total} done", self.done.len());
        parts.push((done.clone(), style.green(&done)));
        if !self.failed.is_empty() {
            let failed = format!("{} failed ({})", self.failed.len(), self.failed.join(", "));
            parts.push((failed.clone(), style.red(&failed)));
        }
        let busy: Vec<&String> = self
            .busy
            .iter()
            .filter(|n| !self.waiting.get(*n).is_some_and(|(_, ready)| *ready))
            .collect();
        if !busy.is_empty() {
            let list: Vec<&str> = busy.iter().map(|s| s.as_str()).collect();
            let now = format!("now: {}", list.join(", "));
            parts.push((now.clone(), now));
        }
        for (name, (on, ready)) in &self.waiting {
            let on: Vec<&str> = on
                .iter()
                .filter(|d| *ready || !self.finished(d))
                .map(String::as_str)
                .collect();
            if on.is_empty() {
                continue;
            }
            let text = if *ready {
                format!("{name} waits for {} to be ready", on.join(", "))
            } else {
                format!("{name} waits for {}", on.join(", "))
            };
            parts.push((text.clone(), style.yellow(&text)));
        }
        // Never wider than the terminal: a wrapped line cannot be rewritten with \r.
        let mut plain_len = 0;
        let mut shown = String::new();
        for (i, (plain, painted)) in parts.iter().enumerate() {
            let sep = if i == 0 { "" } else { " · " };
            let len = sep.chars().count() + plain.chars().count();
            if plain_len + len > width {
                let cut: String = format!("{sep}{plain}")
                    .chars()
                    .take(width.saturating_sub(plain_len + 1))
                    .collect();
                plain_len += cut.chars().count() + 1;
                shown.push_str(&cut);
                shown.push('…');
                break;
            }
            plain_len += len;
            shown.push_str(sep);
            shown.push_str(painted);
        }
        (shown, plain_len)
    }
}

/// The terminal's width in columns (80 when it cannot be asked).
fn terminal_width() -> usize {
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes a winsize into the struct it is given.
    let ok = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) } == 0;
    if ok && size.ws_col > 0 {
        size.ws_col as usize
    } else {
        80
    }
}

impl Progress {
    pub fn new(json: bool, style: Style, named: usize) -> Progress {
        let live = (!json && io::stdout().is_terminal()).then(|| Mutex::new(Live::default()));
        Progress {
            json,
            style,
            sum_up_unchanged: named != 1,
            reported: Mutex::new(Vec::new()),
            unchanged: Mutex::new(Vec::new()),
            live,
        }
    }

    /// Called (from any thread) with each step of each service of the operation.
    pub fn step(&self, name: &str, step: Step) {
        let Some(live) = &self.live else {
            if let Step::Finished(result) = step {
                self.service_done(name, result);
            }
            return;
        };
        let mut live = live.lock().expect("not poisoned");
        live.all.insert(name.to_string());
        match step {
            Step::Waiting(on) => {
                let begun = live.busy.iter().any(|n| n == name);
                live.waiting.insert(name.to_string(), (on.to_vec(), begun));
            }
            Step::Started => {
                live.waiting.remove(name);
                if !live.busy.iter().any(|n| n == name) {
                    live.busy.push(name.to_string());
                }
            }
            Step::Finished(result) => {
                live.waiting.remove(name);
                live.busy.retain(|n| n != name);
                if result.is_ok() {
                    live.done.push(name.to_string());
                } else {
                    live.failed.push(name.to_string());
                }
                Self::blank(&mut live);
                self.service_done(name, result);
            }
        }
        Self::blank(&mut live);
        let (line, len) = live.line(self.style, terminal_width().saturating_sub(1));
        out(&line);
        live.shown = len;
    }

    /// Blank the status line and go back to its start.
    fn blank(live: &mut Live) {
        if live.shown > 0 {
            out(&format!("\r{}\r", " ".repeat(live.shown)));
            live.shown = 0;
        }
    }

    /// Called (from any thread) as each service finishes.
    pub fn service_done(&self, name: &str, result: &Result<Outcome>) {
        self.reported
            .lock()
            .expect("not poisoned")
            .push(name.to_string());
        if self.json {
            return;
        }
        let mut shown = Shown::default();
        let mut unchanged = self.unchanged.lock().expect("not poisoned");
        finished(
            name,
            result,
            self.sum_up_unchanged.then_some(&mut *unchanged),
            self.style,
            &mut shown,
        );
        shown.write();
    }

    /// After the operation: `role_config` names where to list services when there were
    /// none to act on.
    pub fn finish(self, results: &Results<Outcome>, warnings: &[String], role_config: &Path) {
        if let Some(live) = &self.live {
            Self::blank(&mut live.lock().expect("not poisoned"));
        }
        let unchanged = self.unchanged.into_inner().expect("not poisoned");
        let reported = self.reported.into_inner().expect("not poisoned");
        let mut shown = Shown::default();
        ending(
            results,
            warnings,
            &unchanged,
            role_config,
            self.json,
            &mut shown,
        );
        if self.json {
            shown.out(&outcomes_json(results));
        } else {
            for (name, result) in results {
                if let Err(e) = result
                    && !reported.contains(name)
                {
                    shown.error(e);
                }
            }
        }
        shown.write();
    }
}

/// One finished service: its line (or error); an unchanged one is kept in `unchanged`
/// (when given) for the summary at the end.
fn finished(
    name: &str,
    result: &Result<Outcome>,
    unchanged: Option<&mut Vec<(String, Outcome)>>,
    style: Style,
    shown: &mut Shown,
) {
    match (result, unchanged) {
        (Ok(outcome), Some(unchanged)) if outcome.is_unchanged() => {
            unchanged.push((name.to_string(), outcome.clone()));
        }
        (Ok(outcome), _) => {
            shown.out(&outcome_line(name, outcome, style));
        }
        (Err(e), _) => {
            shown.error(e);
        }
    }
}

/// The end of the text: there was nothing to act on; the warnings; those left as they
/// were, summed up.
fn ending(
    results: &Results<Outcome>,
    warnings: &[String],
    unchanged: &[(String, Outcome)],
    role_config: &Path,
    json: bool,
    shown: &mut Shown,
) {
    if results.is_empty() && !json {
        shown.out(&nothing_to_do(role_config));
    }
    shown.warnings(warnings);
    shown.out(&unchanged_summary(unchanged));
}

/// The `--json` document: a row per service.
fn outcomes_json(results: &Results<Outcome>) -> String {
    let rows: Vec<Value> = results
        .iter()
        .map(|(name, r)| outcome_json(name, r))
        .collect();
    json_text(&rows)
}

/// What a supervisor answered to start, stop, restart, up, down or shutdown, shown as
/// the command shows its own results (without a live line: they come at once).
pub struct Answered<'a> {
    pub results: &'a Results<Outcome>,
    pub warnings: &'a [String],
    /// Services were named (one): each unchanged one gets its own line.
    pub named: usize,
    /// A shutdown: the supervisor of this playpen is gone.
    pub shut_down: Option<&'a Path>,
    pub role_config: &'a Path,
}

impl Report for Answered<'_> {
    fn json(&self) -> String {
        outcomes_json(self.results)
    }

    fn text(&self, style: Style, shown: &mut Shown) {
        let mut unchanged = Vec::new();
        for (name, result) in self.results {
            let sum_up = (self.named != 1).then_some(&mut unchanged);
            finished(name, result, sum_up, style, shown);
        }
        if let Some(root) = self.shut_down {
            if self.results.is_empty() {
                // Not "playpen_services is empty": nothing was left to stop.
                shown.out(&format!(
                    "supervisor of {} shut down (no service was running)\n",
                    root.display()
                ));
                shown.warnings(self.warnings);
                return;
            }
            shown.out(&format!("supervisor of {} shut down\n", root.display()));
        }
        ending(
            self.results,
            self.warnings,
            &unchanged,
            self.role_config,
            false,
            shown,
        );
    }

    fn json_notes(&self, shown: &mut Shown) {
        shown.warnings(self.warnings);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: Style = Style::PLAIN;

    #[test]
    fn unchanged_services_are_grouped_by_label() {
        let unchanged = vec![
            ("b".to_string(), Outcome::AlreadyRunning { pid: Some(2) }),
            ("c".to_string(), Outcome::AlreadyStopped),
            ("a".to_string(), Outcome::AlreadyRunning { pid: None }),
        ];
        assert_eq!(
            unchanged_summary(&unchanged),
            "already running (2): a, b\nalready stopped (1): c\n"
        );
    }

    #[test]
    fn outcome_json_takes_the_pid_from_the_outcome() {
        let row = outcome_json("web", &Ok(Outcome::Reloaded { pid: 42 }));
        assert_eq!(
            row,
            json!({"service": "web", "ok": true, "result": "reloaded", "pid": 42})
        );
        let row = outcome_json("web", &Ok(Outcome::AlreadyStopped));
        assert_eq!(row["pid"], Value::Null);
    }

    #[test]
    fn outcome_lines_are_coloured_only_when_asked() {
        let started = Outcome::Started { pid: Some(7) };
        assert_eq!(outcome_line("a", &started, PLAIN), "a: started (pid 7)\n");
        let colour = Style { colour: true };
        assert_eq!(
            outcome_line("a", &started, colour),
            "a: \x1b[32mstarted (pid 7)\x1b[0m\n"
        );
        let filedep = Outcome::StoppedForFiledep {
            pid: 7,
            file: "f".into(),
        };
        assert!(!outcome_line("a", &filedep, colour).contains('\x1b'));
    }
}

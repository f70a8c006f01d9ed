//! Everything servicectl shows, in one place: the library returns values ([`Outcome`],
//! reports, statuses) and never prints, and each value has exactly one text form and one
//! JSON form here, so `cli::run` only parses and dispatches and the output of a command
//! can be changed (and tested) without touching what the command does.
//!
//! Human output: aligned tables, colour only on a terminal (NO_COLOR respected), progress
//! on multi-service operations, errors as `servicectl: SERVICE: what happened — what to
//! do`. Text goes to stdout, errors and warnings to stderr; `--json` prints one document
//! on stdout.
//!
//! Every byte goes through [`out`] and [`err`], never `print!`: a reader that goes away
//! (`servicectl status | head -1`) must not panic the command half-way (Rust ignores
//! SIGPIPE, so `print!` panics on EPIPE). The first failure to write stdout is kept and
//! later output is dropped; the command finishes its work, and `cli::main` ends quietly
//! on a closed pipe (or reports any other failure, such as a full disk).

use crate::config::bytes::{self, EnvJson};
use crate::config::envars;
use crate::config::{Env, Origin};
use crate::error::{Error, Result};
use crate::ops::package::{InstallReport, NewService, Removed};
use crate::ops::upgrade::Report;
use crate::ops::{Finding, Missing, Results, Step};
use crate::playpen::Playpen;
use crate::service::outcome::Outcome;
use crate::service::prepare::Prepared;
use crate::service::status::{PingResult, ServiceStatus};
use crate::text::{human_duration, short_list};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// How to write: colour or not.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub colour: bool,
}

impl Style {
    /// Colour when the stream is a terminal and NO_COLOR is unset (or empty).
    pub fn for_stdout() -> Style {
        Style {
            colour: std::io::stdout().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        }
    }

    pub fn for_stderr() -> Style {
        Style {
            colour: std::io::stderr().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        }
    }

    pub fn paint(&self, code: &str, text: &str) -> String {
        if self.colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    pub fn green(&self, t: &str) -> String {
        self.paint("32", t)
    }
    pub fn red(&self, t: &str) -> String {
        self.paint("31", t)
    }
    pub fn yellow(&self, t: &str) -> String {
        self.paint("33", t)
    }

    /// A service's name in a colour of its own (for `logs` of several services): one of
    /// six, picked by a hash of the name (FNV-1a, its high half folded into the low one
    /// so that every byte counts; stable across runs and builds).
    pub fn service_name(&self, name: &str) -> String {
        const COLOURS: [&str; 6] = ["36", "33", "32", "35", "34", "31"];
        let hash = name.bytes().fold(0x811c_9dc5_u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        });
        let hash = hash ^ (hash >> 16);
        self.paint(COLOURS[hash as usize % COLOURS.len()], name)
    }
}

// ---- writing ----

/// The first failure to write stdout; once set, nothing more is written there.
static STDOUT_FAILURE: OnceLock<io::Error> = OnceLock::new();

/// What [`out`] writes: text, or bytes (`env` and `print-config` write values that are
/// not UTF-8 exactly).
pub trait Output {
    fn output_bytes(&self) -> &[u8];
}

impl Output for str {
    fn output_bytes(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl Output for String {
    fn output_bytes(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl Output for std::borrow::Cow<'_, str> {
    fn output_bytes(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl Output for [u8] {
    fn output_bytes(&self) -> &[u8] {
        self
    }
}

impl Output for Vec<u8> {
    fn output_bytes(&self) -> &[u8] {
        self
    }
}

impl<T: Output + ?Sized> Output for &T {
    fn output_bytes(&self) -> &[u8] {
        (**self).output_bytes()
    }
}

/// Write text (or bytes) to stdout (whole, under the lock, so lines of parallel workers
/// do not mix). A failure is kept for [`stdout_failure`] and ends the output, not the
/// command.
pub fn out<T: Output + ?Sized>(text: &T) {
    let text = text.output_bytes();
    if STDOUT_FAILURE.get().is_some() || text.is_empty() {
        return;
    }
    let mut stdout = io::stdout().lock();
    if let Err(e) = stdout.write_all(text).and_then(|()| stdout.flush()) {
        let _ = STDOUT_FAILURE.set(e);
    }
}

/// Why stdout could not be written, if it could not: `BrokenPipe` when the reader went
/// away (the command then ends quietly, as `ls | head` does).
pub fn stdout_failure() -> Option<&'static io::Error> {
    STDOUT_FAILURE.get()
}

/// Write a line to stderr; a stderr that cannot be written has no one to tell.
pub fn err(line: &str) {
    let _ = writeln!(io::stderr().lock(), "{line}");
}

/// Print an error the way every servicectl error looks.
pub fn error(e: &Error) {
    let style = Style::for_stderr();
    err(&format!("{} {e}", style.red("servicectl:")));
}

pub fn warning(text: &str) {
    let style = Style::for_stderr();
    err(&format!("{} {text}", style.yellow("servicectl: warning:")));
}

pub fn warnings(texts: &[String]) {
    texts.iter().for_each(|w| warning(w));
}

/// The one JSON document of a `--json` run.
pub fn print_json(value: &impl serde::Serialize) {
    out(&format!(
        "{}\n",
        serde_json::to_string_pretty(value).expect("serialisable")
    ));
}

/// A command that failed as a whole, for `--json`.
pub fn error_json(err: &Error) -> Value {
    json!({"error": err.to_string()})
}

/// No names given and the role lists no (enabled) services: say so, and where to list them.
pub fn nothing_to_do(role_config: &Path) -> String {
    format!(
        "no services to act on: playpen_services in {} is empty; list services there or name them\n",
        role_config.display()
    )
}

// ---- init ----

/// What init did. An existing playpen of another role is left as it is: say what was
/// found, not that a playpen of the asked role was created.
pub fn init_text(playpen: &Playpen, role: &str, found: Option<&str>) -> String {
    let next = |role: &str| {
        format!(
            "next: install services with `servicectl --playpen {} package install DIR`, list them in {}\n",
            playpen.root.display(),
            playpen.role_config(role).display()
        )
    };
    match found {
        Some(found) if found != role => format!(
            "found an existing playpen {} with role {found} (etc/role) and left it alone: its role stays {found}, not {role}; to change it, edit {}\n{}",
            playpen.root.display(),
            playpen.root.join("etc/role").display(),
            next(found)
        ),
        Some(found) => format!(
            "found an existing playpen {} with role {found} and left it alone (only what was missing of its skeleton was added)\n{}",
            playpen.root.display(),
            next(found)
        ),
        None => format!(
            "created playpen {} (role {role})\n{}",
            playpen.root.display(),
            next(role)
        ),
    }
}

/// `init --json`: the playpen, its role, and whether it was there already.
pub fn init_json(playpen: &Playpen, role: &str, found: Option<&str>) -> Value {
    json!({
        "playpen": playpen.root,
        "role": found.unwrap_or(role),
        "created": found.is_none(),
        "left_alone": found.is_some_and(|f| f != role),
    })
}

// ---- start / stop / restart ----

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
        match result {
            Ok(outcome) if outcome.is_unchanged() && self.sum_up_unchanged => {
                self.unchanged
                    .lock()
                    .expect("not poisoned")
                    .push((name.to_string(), outcome.clone()));
            }
            Ok(outcome) => out(&outcome_line(name, outcome, self.style)),
            Err(e) => error(e),
        }
    }

    /// After the operation: `role_config` names where to list services when there were
    /// none to act on.
    pub fn finish(self, results: &Results<Outcome>, warnings_: &[String], role_config: &Path) {
        if let Some(live) = &self.live {
            Self::blank(&mut live.lock().expect("not poisoned"));
        }
        if results.is_empty() && !self.json {
            out(&nothing_to_do(role_config));
        }
        warnings(warnings_);
        let unchanged = self.unchanged.into_inner().expect("not poisoned");
        out(&unchanged_summary(&unchanged));
        let reported = self.reported.into_inner().expect("not poisoned");
        if self.json {
            let rows: Vec<Value> = results
                .iter()
                .map(|(name, r)| outcome_json(name, r))
                .collect();
            print_json(&rows);
            return;
        }
        for (name, result) in results {
            if let Err(e) = result
                && !reported.contains(name)
            {
                error(e);
            }
        }
    }
}

// ---- status ----

/// The most characters a table cell shows; what is longer (a note quoting a corrupt
/// file, a program's title) is cut, saying how long it was.
const MAX_CELL: usize = 300;

/// Columns are aligned up to this width; a longer cell pushes only its own row out.
const MAX_ALIGN: usize = 64;

/// A cell as shown: at most [`MAX_CELL`] characters.
fn bounded_cell(cell: &str) -> std::borrow::Cow<'_, str> {
    let count = cell.chars().count();
    if count <= MAX_CELL {
        return cell.into();
    }
    let head: String = cell.chars().take(MAX_CELL).collect();
    format!("{head}… ({count} characters)").into()
}

/// Lay out rows in aligned columns; `paint` may colour a cell after padding. Nothing
/// read from disk or from a program reaches a format width: cells are cut to
/// [`MAX_CELL`] characters, padding stops at [`MAX_ALIGN`] and is added by hand, and the
/// last column is never padded.
pub fn table(
    headers: &[&str],
    rows: &[Vec<String>],
    paint: impl Fn(usize, &str, &str) -> String,
) -> String {
    let rows: Vec<Vec<std::borrow::Cow<'_, str>>> = rows
        .iter()
        .map(|row| row.iter().map(|c| bounded_cell(c)).collect())
        .collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count().min(MAX_ALIGN));
        }
    }
    let last = headers.len().saturating_sub(1);
    let pad = |i: usize, text: &str| -> String {
        let len = text.chars().count();
        if i == last || len >= widths[i] {
            text.to_string()
        } else {
            format!("{text}{}", " ".repeat(widths[i] - len))
        }
    };
    let mut out = String::new();
    let line = |cells: Vec<String>| -> String { cells.join("  ").trim_end().to_string() + "\n" };
    out.push_str(&line(
        headers.iter().enumerate().map(|(i, h)| pad(i, h)).collect(),
    ));
    for row in &rows {
        out.push_str(&line(
            row.iter()
                .enumerate()
                .map(|(i, c)| paint(i, c, &pad(i, c)))
                .collect(),
        ));
    }
    out
}

/// The status table.
pub fn status_table(statuses: &[ServiceStatus], style: Style) -> String {
    let rows: Vec<Vec<String>> = statuses
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                s.state.as_str().to_string(),
                s.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
                s.uptime_secs
                    .map(human_duration)
                    .unwrap_or_else(|| "-".into()),
                if s.ports.is_empty() {
                    "-".into()
                } else {
                    s.ports
                        .iter()
                        .map(|(_, p)| {
                            if s.listening.contains(p) {
                                p.to_string()
                            } else {
                                format!("{p} (closed)")
                            }
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                },
                s.note.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table(
        &["SERVICE", "STATE", "PID", "UPTIME", "PORTS", "NOTE"],
        &rows,
        |col, cell, padded| {
            if col != 1 {
                return padded.to_string();
            }
            match cell {
                "running" => style.green(padded),
                "stale" => style.red(padded),
                "unknown" => style.yellow(padded),
                _ => padded.to_string(),
            }
        },
    )
}

/// The status command's text: the table, or a word when there is nothing to show.
pub fn status_text(statuses: &[ServiceStatus], style: Style) -> String {
    if statuses.is_empty() {
        "no services\n".to_string()
    } else {
        status_table(statuses, style)
    }
}

// ---- under a supervisor: status, wait, enable/disable ----

/// The NOTE column; for a cron service also its next and last run, for a cron or inetd
/// service what runs now.
fn armed_note(s: &crate::control::ServiceView) -> String {
    let mut parts = Vec::new();
    if let Some(next) = &s.next_run {
        parts.push(format!("next run {next}"));
    }
    if let Some(last) = &s.last_run {
        parts.push(format!("last run {last}"));
    }
    if let Some(n) = s.handlers.filter(|&n| n > 0) {
        parts.push(format!("{n} running"));
    }
    if let Some(note) = &s.note {
        parts.push(note.clone());
    }
    parts.join("; ")
}

/// The supervisor's status table: state (running, starting, backoff, failed, stopping,
/// stopped), restarts, how the last run ended, uptime.
pub fn supervised_status_text(services: &[crate::control::ServiceView], style: Style) -> String {
    if services.is_empty() {
        return "no services\n".to_string();
    }
    let rows: Vec<Vec<String>> = services
        .iter()
        .map(|s| {
            let dash = || "-".to_string();
            vec![
                s.name.clone(),
                s.state.clone(),
                s.pid.map_or_else(dash, |p| p.to_string()),
                s.uptime_secs.map_or_else(dash, human_duration),
                s.restarts.to_string(),
                s.last_exit.clone().unwrap_or_else(dash),
                if s.ports.is_empty() {
                    dash()
                } else {
                    s.ports
                        .iter()
                        .map(|(_, p)| p.to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                },
                armed_note(s),
            ]
        })
        .collect();
    table(
        &[
            "SERVICE",
            "STATE",
            "PID",
            "UPTIME",
            "RESTARTS",
            "LAST EXIT",
            "PORTS",
            "NOTE",
        ],
        &rows,
        |col, cell, padded| {
            if col != 1 {
                return padded.to_string();
            }
            match cell {
                "running" | "armed" => style.green(padded),
                "failed" => style.red(padded),
                "backoff" | "starting" | "stopping" => style.yellow(padded),
                _ => padded.to_string(),
            }
        },
    )
}

/// `wait`: the services that are ready, and those that are not with why.
pub fn wait(ready: &[String], not_ready: &[(String, String)], as_json: bool) {
    if as_json {
        let not: Vec<Value> = not_ready
            .iter()
            .map(|(n, why)| json!({"service": n, "state": why}))
            .collect();
        print_json(&json!({"ready": ready, "not_ready": not}));
        return;
    }
    for name in ready {
        println!("{name}: ready");
    }
    for (name, why) in not_ready {
        error(&Error::runtime(format!("not ready ({why})")).with_service(name));
    }
}

/// enable / disable: what changed.
pub fn enabled(names: &[String], changed: &[String], enable: bool, as_json: bool) {
    let word = if enable { "enabled" } else { "disabled" };
    if as_json {
        let rows: Vec<Value> = names
            .iter()
            .map(|n| json!({"service": n, "state": word, "changed": changed.contains(n)}))
            .collect();
        print_json(&rows);
        return;
    }
    for name in names {
        if changed.contains(name) {
            println!("{name}: {word}");
        } else {
            println!("{name}: already {word}");
        }
    }
    if !changed.is_empty() {
        println!("`servicectl up` brings the services to their desired state");
    }
}

// ---- ping ----

/// `NAME: ok (BY): DETAIL` or `NAME: FAILED (BY): DETAIL`.
pub fn ping_line(name: &str, p: &PingResult, style: Style) -> String {
    if p.ok {
        format!(
            "{name}: {} ({}){}\n",
            style.green("ok"),
            p.by,
            if p.detail.is_empty() {
                String::new()
            } else {
                format!(": {}", p.detail)
            }
        )
    } else {
        format!("{name}: {} ({}): {}\n", style.red("FAILED"), p.by, p.detail)
    }
}

pub fn ping_json(name: &str, result: &Result<PingResult>) -> Value {
    match result {
        Ok(p) => serde_json::to_value(p).expect("serialisable"),
        Err(e) => json!({"name": name, "ok": false, "error": e.to_string()}),
    }
}

/// The ping command's output; errors go to stderr in both forms.
pub fn ping(results: &Results<PingResult>, as_json: bool, style: Style) {
    let mut rows = Vec::new();
    for (name, result) in results {
        if as_json {
            rows.push(ping_json(name, result));
        }
        match result {
            Ok(p) if !as_json => out(&ping_line(name, p, style)),
            Ok(_) => {}
            Err(e) => error(e),
        }
    }
    if as_json {
        print_json(&rows);
    }
}

// ---- print-config ----

/// Every variable with the file that set it, as sh; `all`: also those inherited from
/// servicectl's environment. Bytes, not text: each value is written exactly, UTF-8 or
/// not, so that sh reads it back unchanged.
pub fn print_config_text(service: &str, prepared: &Prepared, all: bool) -> Vec<u8> {
    let mut out = format!(
        "# {service}: evaluated from {}\n",
        prepared
            .config
            .fragments
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
    .into_bytes();
    let mut assign = |marker: &str, name: &str, value: &std::ffi::OsStr, note: &str| {
        out.extend_from_slice(format!("{marker}{name}=").as_bytes());
        out.extend_from_slice(&bytes::sh_quote(value));
        out.extend_from_slice(format!("  # {note}\n").as_bytes());
    };
    for (name, value) in &prepared.config.vars {
        if !all && value.origin == Origin::Environment {
            continue;
        }
        let marker = if value.exported { "export " } else { "" };
        assign(marker, name, &value.value, &value.origin.to_string());
    }
    for (name, value) in &prepared.env {
        if !prepared.config.vars.contains_key(name) {
            assign("export ", name, value, "(resolved typed variable)");
        }
    }
    out
}

/// A value that is not UTF-8 is `{"lossy": …, "bytes": […]}` (config::bytes).
pub fn print_config_json(service: &str, prepared: &Prepared) -> Value {
    json!({
        "service": service,
        "version": prepared.config.id.version,
        "fragments": prepared.config.fragments,
        "variables": prepared.config.vars,
        "environment": EnvJson(&prepared.env),
    })
}

// ---- check ----

/// `NAME: ok`, or a `NAME: problem: …` line per problem.
pub fn finding_text(f: &Finding, style: Style) -> String {
    if f.ok {
        format!("{}: {}\n", f.service, style.green("ok"))
    } else {
        f.problems
            .iter()
            .map(|p| format!("{}: {} {p}\n", f.service, style.red("problem:")))
            .collect()
    }
}

pub fn check_summary(findings: &[Finding]) -> String {
    let bad = findings.iter().filter(|f| !f.ok).count();
    format!("{} checked, {} with problems\n", findings.len(), bad)
}

/// The check command's text: each service's warnings (stderr) and findings, a summary.
pub fn check(findings: &[Finding], style: Style) {
    for f in findings {
        warnings(&f.warnings);
        out(&finding_text(f, style));
    }
    out(&check_summary(findings));
}

// ---- env ----

/// `export NAME=VALUE` lines, quoted for sh (what share/load-config evaluates). Bytes,
/// not text: each value is written exactly, UTF-8 or not, so that `eval` gives it back.
pub fn env_text(env: &Env) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in env {
        out.extend_from_slice(b"export ");
        out.extend_from_slice(k.as_bytes());
        out.push(b'=');
        out.extend_from_slice(&bytes::sh_quote(v));
        out.push(b'\n');
    }
    out
}

// ---- missing-env ----

/// How missing-env shows what is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissingForm {
    /// `SERVICE: NAME` lines.
    Names,
    /// Each variable with its description, type, constraints and default.
    Verbose,
    /// A sh snippet setting each to its default.
    Script,
}

pub fn missing_text(report: &[Missing], form: MissingForm) -> String {
    let mut out = String::new();
    for r in report.iter().filter(|r| !r.missing.is_empty()) {
        match form {
            MissingForm::Script => out.push_str(&envars::missing_script(&r.service, &r.missing)),
            MissingForm::Verbose => out.push_str(&envars::describe(&r.service, &r.missing)),
            MissingForm::Names => {
                for m in &r.missing {
                    out.push_str(&format!("{}: {}\n", r.service, m.name));
                }
            }
        }
    }
    if form != MissingForm::Script && !report.iter().any(|r| !r.missing.is_empty()) {
        out.push_str("nothing missing\n");
    }
    out
}

/// The missing-env command's text; unless it is the script, a hint (stderr) on how to
/// fill in what is missing.
pub fn missing_env(report: &[Missing], form: MissingForm, role_config: &Path) {
    out(&missing_text(report, form));
    if form != MissingForm::Script && report.iter().any(|r| !r.missing.is_empty()) {
        err(&format!(
            "hint: `servicectl missing-env --script >> {}` sets each to its default",
            role_config.display()
        ));
    }
}

// ---- sub-conf ----

pub fn rendered_text(written: &[PathBuf]) -> String {
    written
        .iter()
        .map(|w| format!("rendered {}\n", w.display()))
        .collect()
}

// ---- new-service, remove-service, package ----

/// What new-service did, and what is left to do (missing variables, the role's list).
pub fn new_service_text(r: &NewService, role_config: &Path) -> String {
    let mut out = format!(
        "{}: {}\n",
        r.service,
        if r.newly_registered {
            "registered"
        } else {
            "already registered (checked again)"
        }
    );
    if !r.missing.is_empty() {
        out.push_str(&format!(
            "{}: missing variables: {} — add them to {} (`servicectl missing-env --script {} >> {}` sets defaults):\n{}\n",
            r.service,
            r.missing.join(" "),
            role_config.display(),
            r.service,
            role_config.display(),
            r.missing_script.trim_end()
        ));
    }
    if !r.in_role {
        out.push_str(&format!(
            "{}: not in playpen_services of {}; add it there to start it with the role (or `servicectl start {}`)\n",
            r.service,
            role_config.display(),
            r.service
        ));
    }
    out
}

/// `NAME: stopped, unregistered, removed 2 file(s)`.
pub fn remove_service_text(r: &Removed) -> String {
    let mut done = Vec::new();
    if r.stopped {
        done.push("stopped".to_string());
    }
    if r.unregistered {
        done.push("unregistered".to_string());
    }
    if !r.removed_files.is_empty() {
        done.push(format!("removed {} file(s)", r.removed_files.len()));
    }
    if done.is_empty() {
        format!("{}: nothing to remove (not registered)\n", r.service)
    } else {
        format!("{}: {}\n", r.service, done.join(", "))
    }
}

/// package install: what was installed or replaced, the upgrade it went through, and
/// each service's new-service report.
pub fn install(report: &InstallReport, role_config: &Path) {
    match &report.replaced {
        Some(old) if *old == report.package => {
            out(&format!("reinstalled {old} ({} files)\n", report.files))
        }
        Some(old) => out(&format!(
            "upgraded {old} to {} ({} files)\n",
            report.package, report.files
        )),
        None => out(&format!(
            "installed {} ({} files)\n",
            report.package, report.files
        )),
    }
    if let Some(u) = &report.upgrade {
        upgrade(u);
    }
    for s in &report.services {
        out(&new_service_text(s, role_config));
    }
}

pub fn package_removed_text(package: &str, removed: &[Removed]) -> String {
    let mut out: String = removed
        .iter()
        .map(|r| {
            format!(
                "{}: removed{}\n",
                r.service,
                if r.stopped { " (stopped first)" } else { "" }
            )
        })
        .collect();
    out.push_str(&format!("package {package} removed\n"));
    out
}

// ---- ports ----

/// The port map: one row per typed port, listening ones green.
pub fn ports_text(ports: &[crate::ops::ports::PortEntry], style: Style) -> String {
    if ports.is_empty() {
        return "no typed ports\n".to_string();
    }
    let rows: Vec<Vec<String>> = ports
        .iter()
        .map(|e| {
            vec![
                e.service.clone(),
                e.variable.clone(),
                e.port.to_string(),
                if e.listening {
                    format!("yes ({})", e.protocols.join(", "))
                } else {
                    "no".to_string()
                },
                e.source.clone(),
            ]
        })
        .collect();
    table(
        &["SERVICE", "VARIABLE", "PORT", "LISTENING", "FROM"],
        &rows,
        |col, cell, padded| {
            if col == 3 && cell.starts_with("yes") {
                style.green(padded)
            } else {
                padded.to_string()
            }
        },
    )
}

// ---- export ----

/// The files written, and how to install them.
pub fn exported_text(e: &crate::ops::export::Exported) -> String {
    let mut out: String = e
        .files
        .iter()
        .map(|f| format!("wrote {}\n", f.display()))
        .collect();
    out.push_str(&format!(
        "install: cp {}/*.service {}/*.timer {}/*.socket {}/{} /etc/systemd/system/ (those that exist), then `systemctl daemon-reload && systemctl enable --now {}`\n",
        e.dir.display(),
        e.dir.display(),
        e.dir.display(),
        e.dir.display(),
        e.target,
        e.target
    ));
    out
}

// ---- pre-upgrade, post-upgrade ----

/// One line per non-empty list: `stopped: a b`, `reloaded: c`, …
pub fn upgrade_text(r: &Report) -> String {
    let mut out = String::new();
    for (what, list) in [
        ("stopped", &r.stopped),
        ("started", &r.started),
        ("restarted", &r.restarted),
        ("reloaded", &r.reloaded),
        ("left running, marked upgraded", &r.marked),
    ] {
        if !list.is_empty() {
            out.push_str(&format!("{what}: {}\n", list.join(" ")));
        }
    }
    out
}

/// An upgrade report: its warnings (stderr), then what happened to which service.
pub fn upgrade(r: &Report) {
    warnings(&r.warnings);
    out(&upgrade_text(r));
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: Style = Style { colour: false };

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

    #[test]
    fn tables_bound_what_they_show() {
        let huge = "x".repeat(70_000);
        let rows = vec![
            vec!["web".to_string(), huge.clone(), huge.clone()],
            vec!["db".to_string(), "ok".to_string(), String::new()],
        ];
        let text = table(&["A", "B", "C"], &rows, |_, _, padded| padded.to_string());
        assert!(text.len() < 1_000, "{} bytes", text.len());
        assert!(text.contains("(70000 characters)"));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], format!("A    B{}C", " ".repeat(64 + 1)));
        assert_eq!(lines[2], "db   ok");
    }

    #[test]
    fn upgrade_report_lists_reloaded_apart_from_restarted() {
        let report = Report {
            restarted: vec!["echo".into()],
            reloaded: vec!["nginx".into()],
            marked: vec!["db".into()],
            ..Report::default()
        };
        assert_eq!(
            upgrade_text(&report),
            "restarted: echo\nreloaded: nginx\nleft running, marked upgraded: db\n"
        );
    }
}

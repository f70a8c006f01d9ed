//! The reports of the developer's loop and of several playpens on one machine: `run`
//! (what it started and stopped around the command) and `playpens` (a row per playpen;
//! the path last, as it is the one cell of unbounded width).
//!
//! `run`'s standard output belongs to the command it runs, so its own text goes to
//! stderr, after the command ended; its JSON document (with `--json`) follows the
//! command's output on stdout.

use super::table::table;
use super::{Report, Shown, Style};
use crate::ops::playpens::PlaypenRow;
use crate::ops::run::RunReport;
use serde_json::json;

/// run: the services it could not make ready (the command did not run), and those it
/// stopped again.
pub struct Ran<'a>(pub &'a RunReport);

impl Report for Ran<'_> {
    fn json(&self) -> String {
        let r = self.0;
        super::sink::json_text(&json!({
            "started": r.started,
            "stopped": r.stopped.iter().map(|(service, result)| match result {
                Ok(done) => json!({"service": service, "result": done.word(), "pid": done.pid()}),
                Err(e) => json!({"service": service, "error": e.to_string()}),
            }).collect::<Vec<_>>(),
            "errors": r.failures.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
            "status": r.status,
            "supervised": r.supervised,
        }))
    }

    fn text(&self, _: Style, shown: &mut Shown) {
        let r = self.0;
        shown.warnings(&r.warnings);
        for e in &r.failures {
            shown.error(e);
        }
        for (service, result) in &r.stopped {
            match result {
                Ok(done) => shown.note(&format!(
                    "servicectl run: {service}: {done} (this run had started it)"
                )),
                Err(e) => shown.error(e),
            };
        }
    }

    fn json_notes(&self, shown: &mut Shown) {
        shown.warnings(&self.0.warnings);
    }
}

/// playpens: one row per playpen of the user's registry.
pub struct Playpens<'a>(pub &'a [PlaypenRow]);

impl Report for Playpens<'_> {
    fn json(&self) -> String {
        super::sink::json_text(&self.0)
    }

    fn text(&self, _: Style, shown: &mut Shown) {
        if self.0.is_empty() {
            shown.out("no playpens registered (`servicectl init`, `start` and a PORT_PREFIX=auto lease register one)\n");
            return;
        }
        let dash = || "-".to_string();
        let rows: Vec<Vec<String>> = self
            .0
            .iter()
            .map(|p| {
                let prefix = match (p.port_prefix, p.leased) {
                    (Some(n), true) => format!("{n} (leased)"),
                    (Some(n), false) => n.to_string(),
                    (None, _) => dash(),
                };
                let listening: Vec<String> = p.listening.iter().map(u16::to_string).collect();
                vec![
                    p.tag.clone().unwrap_or_else(dash),
                    prefix,
                    p.supervisor_pid.map_or_else(dash, |pid| pid.to_string()),
                    format!("{}/{}", p.running, p.known),
                    if listening.is_empty() {
                        dash()
                    } else {
                        listening.join(",")
                    },
                    p.path.display().to_string(),
                ]
            })
            .collect();
        shown.out(&table(
            &[
                "TAG",
                "PORT_PREFIX",
                "SUPERVISOR",
                "RUNNING",
                "LISTENING",
                "PLAYPEN",
            ],
            &rows,
            |_, _, _| None,
        ));
    }
}

//! What runs: `status` (direct, and the supervisor's view), `ping` and `wait`.

use super::progress::nothing_to_do;
use super::table::{paint_column, table};
use super::{Report, Shown, Style};
use crate::control::ServiceView;
use crate::error::{Error, Result};
use crate::ops::Results;
use crate::service::status::{PingResult, ServiceStatus};
use crate::text::human_duration;
use serde_json::{Value, json};
use std::path::PathBuf;

fn dash() -> String {
    "-".to_string()
}

/// `status` without a supervisor: SERVICE STATE PID UPTIME PORTS NOTE.
pub struct Statuses<'a>(pub &'a [ServiceStatus]);

impl Report for Statuses<'_> {
    fn json(&self) -> Value {
        serde_json::to_value(self.0).expect("serialisable")
    }

    fn text(&self, style: Style, shown: &mut Shown) {
        if self.0.is_empty() {
            shown.out("no services\n");
            return;
        }
        let rows: Vec<Vec<String>> = self
            .0
            .iter()
            .map(|s| {
                vec![
                    s.name.clone(),
                    s.state.as_str().to_string(),
                    s.pid.map_or_else(dash, |p| p.to_string()),
                    s.uptime_secs.map_or_else(dash, human_duration),
                    if s.ports.is_empty() {
                        dash()
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
        let paint = paint_column(1, |cell, padded| match cell {
            "running" => style.green(padded),
            "stale" => style.red(padded),
            "unknown" => style.yellow(padded),
            _ => padded.to_string(),
        });
        shown.out(&table(
            &["SERVICE", "STATE", "PID", "UPTIME", "PORTS", "NOTE"],
            &rows,
            paint,
        ));
    }
}

/// The NOTE column; for a cron service also its next and last run, for a cron or inetd
/// service what runs now.
fn armed_note(s: &ServiceView) -> String {
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

/// A supervisor's view of a service as `--json` shows it: its protocol form, with the
/// service under `"service"` as in every other document.
pub fn view_json(view: &ServiceView) -> Value {
    let mut value = serde_json::to_value(view).expect("serialisable");
    if let Some(map) = value.as_object_mut()
        && let Some(name) = map.remove("name")
    {
        map.insert("service".to_string(), name);
    }
    value
}

/// `status` under a supervisor: state (running, starting, backoff, failed, stopping,
/// stopped, armed), restarts, how the last run ended, uptime.
pub struct SupervisedStatuses<'a>(pub &'a [ServiceView]);

impl Report for SupervisedStatuses<'_> {
    fn json(&self) -> Value {
        Value::Array(self.0.iter().map(view_json).collect())
    }

    fn text(&self, style: Style, shown: &mut Shown) {
        if self.0.is_empty() {
            shown.out("no services\n");
            return;
        }
        let rows: Vec<Vec<String>> = self
            .0
            .iter()
            .map(|s| {
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
        let paint = paint_column(1, |cell, padded| match cell {
            "running" | "armed" => style.green(padded),
            "failed" => style.red(padded),
            "backoff" | "starting" | "stopping" => style.yellow(padded),
            _ => padded.to_string(),
        });
        shown.out(&table(
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
            paint,
        ));
    }
}

/// `ping`: `NAME: ok (BY): DETAIL` or `NAME: FAILED (BY): DETAIL` per service; errors on
/// stderr in both forms.
pub struct Pings<'a> {
    pub results: &'a Results<PingResult>,
    pub warnings: &'a [String],
    /// Where to list services, when there were none to ping.
    pub role_config: PathBuf,
}

/// One ping's line.
pub fn ping_line(name: &str, p: &PingResult, style: Style) -> String {
    if p.ok {
        let detail = if p.detail.is_empty() {
            String::new()
        } else {
            format!(": {}", p.detail)
        };
        format!("{name}: {} ({}){detail}\n", style.green("ok"), p.by)
    } else {
        format!("{name}: {} ({}): {}\n", style.red("FAILED"), p.by, p.detail)
    }
}

fn ping_json(name: &str, result: &Result<PingResult>) -> Value {
    match result {
        Ok(p) => serde_json::to_value(p).expect("serialisable"),
        Err(e) => json!({"service": name, "ok": false, "error": e.to_string()}),
    }
}

impl Report for Pings<'_> {
    fn json(&self) -> Value {
        Value::Array(
            self.results
                .iter()
                .map(|(name, r)| ping_json(name, r))
                .collect(),
        )
    }

    fn text(&self, style: Style, shown: &mut Shown) {
        if self.results.is_empty() {
            shown.out(&nothing_to_do(&self.role_config));
        }
        shown.warnings(self.warnings);
        for (name, result) in self.results {
            match result {
                Ok(p) => shown.out(&ping_line(name, p, style)),
                Err(e) => shown.error(e),
            };
        }
    }

    fn json_notes(&self, shown: &mut Shown) {
        shown.warnings(self.warnings);
        for (_, result) in self.results {
            if let Err(e) = result {
                shown.error(e);
            }
        }
    }
}

/// `wait`: the services that are ready, and those that are not with why (errors).
pub struct Readiness<'a> {
    pub ready: &'a [String],
    pub not_ready: &'a [(String, String)],
}

impl Report for Readiness<'_> {
    fn json(&self) -> Value {
        let not: Vec<Value> = self
            .not_ready
            .iter()
            .map(|(n, why)| json!({"service": n, "state": why}))
            .collect();
        json!({"ready": self.ready, "not_ready": not})
    }

    fn text(&self, _: Style, shown: &mut Shown) {
        for name in self.ready {
            shown.out(&format!("{name}: ready\n"));
        }
        for (name, why) in self.not_ready {
            shown.error(&Error::runtime(format!("not ready ({why})")).with_service(name));
        }
    }
}

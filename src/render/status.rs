//! What runs: `status` (direct, and the supervisor's view), `ping` and `wait`.

use super::progress::nothing_to_do;
use super::sink::json_text;
use super::table::{paint_column, table};
use super::{Report, Shown, Style};
use crate::error::{Error, Result};
use crate::ops::Results;
use crate::service::status::{PingResult, ServiceStatus};
use crate::text::human_duration;
use serde_json::{Value, json};
use std::borrow::Cow;
use std::path::PathBuf;

const DASH: Cow<'static, str> = Cow::Borrowed("-");

/// The PID and UPTIME cells.
fn pid_uptime(pid: Option<i32>, uptime_secs: Option<u64>) -> [Cow<'static, str>; 2] {
    [
        pid.map_or(DASH, |p| p.to_string().into()),
        uptime_secs.map_or(DASH, |s| human_duration(s).into()),
    ]
}

/// A status table (a row per service, STATE coloured by `colour`), or `no services`.
fn status_table<'a, T, C: AsRef<str>>(
    services: &'a [T],
    headers: &[&str],
    row: impl Fn(&'a T) -> Vec<C>,
    colour: impl Fn(&str, &str) -> Option<String>,
) -> String {
    if services.is_empty() {
        return "no services\n".to_string();
    }
    let rows: Vec<Vec<C>> = services.iter().map(row).collect();
    table(headers, &rows, paint_column(1, colour))
}

/// The PORTS cell: each port as `shown` says, joined by `sep`; `-` when none.
fn ports_cell(
    ports: &[(String, u16)],
    sep: &str,
    shown: impl Fn(u16) -> String,
) -> Cow<'static, str> {
    if ports.is_empty() {
        return DASH;
    }
    let cells: Vec<String> = ports.iter().map(|(_, p)| shown(*p)).collect();
    cells.join(sep).into()
}

/// The line under a status table of a playpen whose PORT_PREFIX is leased
/// (`PORT_PREFIX=auto`): the ports in the table are that prefix plus offsets.
fn lease_line(lease: Option<u32>) -> String {
    lease
        .map(|p| {
            format!("PORT_PREFIX {p} (leased: PORT_PREFIX=auto, var/servicectl/port-prefix)\n")
        })
        .unwrap_or_default()
}

/// `status`, with or without a supervisor: SERVICE STATE PID UPTIME PORTS NOTE, and
/// under a supervisor RESTARTS and LAST EXIT after UPTIME; then the leased PORT_PREFIX,
/// if the playpen holds one.
pub struct Statuses<'a>(pub &'a [ServiceStatus], pub Option<u32>);

impl Report for Statuses<'_> {
    fn json(&self) -> String {
        json_text(&self.0)
    }

    fn text(&self, style: Style, shown: &mut Shown) {
        let supervised = self.0.iter().any(|s| s.supervised.is_some());
        let headers: &[&str] = if supervised {
            &[
                "SERVICE",
                "STATE",
                "PID",
                "UPTIME",
                "RESTARTS",
                "LAST EXIT",
                "PORTS",
                "NOTE",
            ]
        } else {
            &["SERVICE", "STATE", "PID", "UPTIME", "PORTS", "NOTE"]
        };
        let text = status_table(
            self.0,
            headers,
            |s| {
                let [pid, uptime] = pid_uptime(s.pid, s.uptime_secs);
                let mut row: Vec<Cow<'_, str>> = Vec::with_capacity(headers.len());
                row.extend([
                    Cow::Borrowed(s.service.as_str()),
                    Cow::Borrowed(s.state.as_str()),
                    pid,
                    uptime,
                ]);
                if supervised {
                    let sup = s.supervised.as_ref();
                    row.push(sup.map_or(0, |v| v.restarts).to_string().into());
                    row.push(
                        sup.and_then(|v| v.last_exit.as_deref())
                            .unwrap_or("-")
                            .into(),
                    );
                }
                row.push(match &s.listening {
                    // Without a supervisor the ports are checked: a closed one says so.
                    Some(open) => ports_cell(&s.ports, ", ", |p| {
                        if open.contains(&p) {
                            p.to_string()
                        } else {
                            format!("{p} (closed)")
                        }
                    }),
                    None => ports_cell(&s.ports, ",", |p| p.to_string()),
                });
                row.push(note(s));
                row
            },
            |cell, padded| match cell {
                "running" | "armed" => Some(style.green(padded)),
                "failed" | "stale" => Some(style.red(padded)),
                "backoff" | "starting" | "stopping" | "unknown" => Some(style.yellow(padded)),
                _ => None,
            },
        );
        shown.out(&text).out(&lease_line(self.1));
    }
}

/// The NOTE column; for a cron service also its next and last run (a done one-shot:
/// its run), for a cron or inetd service what runs now.
fn note(s: &ServiceStatus) -> Cow<'_, str> {
    let supervised = s.supervised.as_ref();
    if supervised.is_none_or(|v| {
        v.next_run.is_none() && v.last_run.is_none() && v.handlers.unwrap_or(0) == 0
    }) {
        return s.note.as_deref().unwrap_or("").into();
    }
    let mut parts = Vec::new();
    if let Some(sup) = &s.supervised {
        if let Some(next) = &sup.next_run {
            parts.push(format!("next run {next}"));
        }
        if let Some(last) = &sup.last_run {
            parts.push(format!("last run {last}"));
        }
        if let Some(n) = sup.handlers.filter(|&n| n > 0) {
            parts.push(format!("{n} running"));
        }
    }
    if let Some(note) = &s.note {
        parts.push(note.clone());
    }
    parts.join("; ").into()
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
    fn json(&self) -> String {
        json_text(
            &self
                .results
                .iter()
                .map(|(name, r)| ping_json(name, r))
                .collect::<Vec<_>>(),
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

/// `shutdown` when no supervisor runs: nothing was stopped (`[]`, as a supervisor's
/// shutdown lists what it stopped).
pub struct NoSupervisor<'a>(pub &'a std::path::Path);

impl Report for NoSupervisor<'_> {
    fn json(&self) -> String {
        json_text(&Vec::<Value>::new())
    }

    fn text(&self, _: Style, shown: &mut Shown) {
        shown.out(&format!("no supervisor runs for {}\n", self.0.display()));
    }
}

/// `wait`: the services that are ready, and those that are not with why (errors).
pub struct Readiness<'a> {
    pub ready: &'a [String],
    pub not_ready: &'a [(String, String)],
}

impl Report for Readiness<'_> {
    fn json(&self) -> String {
        let not: Vec<Value> = self
            .not_ready
            .iter()
            .map(|(n, why)| json!({"service": n, "state": why}))
            .collect();
        json_text(&json!({"ready": self.ready, "not_ready": not}))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::Supervised;
    use crate::render::shown;

    fn row(service: &str, state: &str) -> ServiceStatus {
        ServiceStatus {
            service: service.into(),
            state: state.into(),
            pid: None,
            uptime_secs: None,
            ports: vec![],
            listening: None,
            version: None,
            note: None,
            supervised: None,
        }
    }

    /// The status table, exactly (columns, spacing, dashes, closed ports).
    #[test]
    fn the_status_table_is_aligned() {
        let statuses = [
            ServiceStatus {
                pid: Some(4242),
                uptime_secs: Some(3725),
                ports: vec![("WEB_PORT".into(), 8080), ("ADMIN_PORT".into(), 8081)],
                listening: Some(vec![8080]),
                version: Some("1.0".into()),
                ..row("web", "running")
            },
            ServiceStatus {
                listening: Some(vec![]),
                note: Some("pidfile names PID 7, which is not running".into()),
                ..row("database", "stale")
            },
        ];
        let text = shown(&Statuses(&statuses, None), false, Style::PLAIN).stdout();
        assert_eq!(
            String::from_utf8(text).unwrap(),
            "SERVICE   STATE    PID   UPTIME  PORTS                NOTE\n\
             web       running  4242  1h02m   8080, 8081 (closed)\n\
             database  stale    -     -       -                    pidfile names PID 7, which is not running\n"
        );
    }

    /// The supervisor's table, exactly, with a cron service's runs in NOTE; the JSON
    /// of one model, with the supervisor's fields only where it answered.
    #[test]
    fn the_supervised_status_table_is_aligned() {
        let supervised = Supervised {
            restarts: 0,
            last_exit: None,
            ready: false,
            wanted: true,
            next_run: None,
            last_run: None,
            handlers: None,
        };
        let views = [
            ServiceStatus {
                pid: Some(10),
                uptime_secs: Some(5),
                ports: vec![("WEB_PORT".into(), 8080)],
                supervised: Some(Supervised {
                    restarts: 2,
                    last_exit: Some("exited with status 1".into()),
                    ..supervised.clone()
                }),
                ..row("web", "running")
            },
            ServiceStatus {
                supervised: Some(Supervised {
                    next_run: Some("2026-12-01 10:20:00".into()),
                    last_run: Some("2026-12-01 10:15:00".into()),
                    last_exit: Some("exited with status 0".into()),
                    ..supervised.clone()
                }),
                ..row("tick", "armed")
            },
        ];
        let report = Statuses(&views, None);
        let text = String::from_utf8(shown(&report, false, Style::PLAIN).stdout()).unwrap();
        assert_eq!(
            text,
            "SERVICE  STATE    PID  UPTIME  RESTARTS  LAST EXIT             PORTS  NOTE\n\
             web      running  10   5s      2         exited with status 1  8080\n\
             tick     armed    -    -       0         exited with status 0  -      next run 2026-12-01 10:20:00; last run 2026-12-01 10:15:00\n"
        );
        let json = String::from_utf8(shown(&report, true, Style::PLAIN).stdout()).unwrap();
        let first: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(
            first[0],
            serde_json::json!({
                "service": "web", "state": "running", "pid": 10, "uptime_secs": 5,
                "ports": [["WEB_PORT", 8080]], "version": null, "note": null,
                "restarts": 2, "last_exit": "exited with status 1", "ready": false,
                "wanted": true
            })
        );
        // What the supervisor sends is what the client reads back.
        let back: Vec<ServiceStatus> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, views);
        let direct: Vec<ServiceStatus> =
            serde_json::from_str(&json_text(&[row("web", "stopped")])).unwrap();
        assert_eq!(direct[0].supervised, None);
    }
}

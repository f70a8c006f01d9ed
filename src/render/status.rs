//! What runs: `status` (direct, and the supervisor's view), `ping` and `wait`.

use super::progress::nothing_to_do;
use super::sink::json_text;
use super::table::{paint_column, table};
use super::{Report, Shown, Style};
use crate::control::ServiceView;
use crate::error::{Error, Result};
use crate::ops::Results;
use crate::service::status::{PingResult, ServiceStatus};
use crate::text::human_duration;
use serde::Serialize;
use serde_json::{Value, json};
use std::path::PathBuf;

fn dash() -> String {
    "-".to_string()
}

/// The PID and UPTIME cells.
fn pid_uptime(pid: Option<i32>, uptime_secs: Option<u64>) -> [String; 2] {
    [
        pid.map_or_else(dash, |p| p.to_string()),
        uptime_secs.map_or_else(dash, human_duration),
    ]
}

/// A status table (a row per service, STATE coloured by `colour`), or `no services`.
fn status_table<T>(
    services: &[T],
    headers: &[&str],
    row: impl Fn(&T) -> Vec<String>,
    colour: impl Fn(&str, &str) -> String,
) -> String {
    if services.is_empty() {
        return "no services\n".to_string();
    }
    let rows: Vec<Vec<String>> = services.iter().map(row).collect();
    table(headers, &rows, paint_column(1, colour))
}

/// The PORTS cell: each port as `shown` says, joined by `sep`; `-` when none.
fn ports_cell(ports: &[(String, u16)], sep: &str, shown: impl Fn(u16) -> String) -> String {
    if ports.is_empty() {
        return dash();
    }
    let cells: Vec<String> = ports.iter().map(|(_, p)| shown(*p)).collect();
    cells.join(sep)
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

/// `status` without a supervisor: SERVICE STATE PID UPTIME PORTS NOTE; then the leased
/// PORT_PREFIX, if the playpen holds one.
pub struct Statuses<'a>(pub &'a [ServiceStatus], pub Option<u32>);

impl Report for Statuses<'_> {
    fn json(&self) -> String {
        json_text(&self.0)
    }

    fn text(&self, style: Style, shown: &mut Shown) {
        let text = status_table(
            self.0,
            &["SERVICE", "STATE", "PID", "UPTIME", "PORTS", "NOTE"],
            |s| {
                let [pid, uptime] = pid_uptime(s.pid, s.uptime_secs);
                let ports = ports_cell(&s.ports, ", ", |p| {
                    if s.listening.contains(&p) {
                        p.to_string()
                    } else {
                        format!("{p} (closed)")
                    }
                });
                let note = s.note.clone().unwrap_or_default();
                vec![
                    s.name.clone(),
                    s.state.as_str().to_string(),
                    pid,
                    uptime,
                    ports,
                    note,
                ]
            },
            |cell, padded| match cell {
                "running" => style.green(padded),
                "stale" => style.red(padded),
                "unknown" => style.yellow(padded),
                _ => padded.to_string(),
            },
        );
        shown.out(&text).out(&lease_line(self.1));
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

/// A supervisor's view of a service as `--json` shows it: its protocol form
/// ([`ServiceView`]), with the service under `"service"` as in every other document.
#[derive(Serialize)]
struct ViewJson<'a> {
    service: &'a str,
    state: &'a str,
    pid: Option<i32>,
    uptime_secs: Option<u64>,
    restarts: u32,
    last_exit: &'a Option<String>,
    ready: bool,
    wanted: bool,
    ports: &'a [(String, u16)],
    version: &'a Option<String>,
    note: &'a Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_run: &'a Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_run: &'a Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    handlers: Option<u32>,
}

impl<'a> From<&'a ServiceView> for ViewJson<'a> {
    fn from(v: &'a ServiceView) -> ViewJson<'a> {
        ViewJson {
            service: &v.name,
            state: &v.state,
            pid: v.pid,
            uptime_secs: v.uptime_secs,
            restarts: v.restarts,
            last_exit: &v.last_exit,
            ready: v.ready,
            wanted: v.wanted,
            ports: &v.ports,
            version: &v.version,
            note: &v.note,
            next_run: &v.next_run,
            last_run: &v.last_run,
            handlers: v.handlers,
        }
    }
}

/// `status` under a supervisor: state (running, starting, backoff, failed, stopping,
/// stopped, armed), restarts, how the last run ended, uptime; then the leased
/// PORT_PREFIX, if the playpen holds one.
pub struct SupervisedStatuses<'a>(pub &'a [ServiceView], pub Option<u32>);

impl Report for SupervisedStatuses<'_> {
    fn json(&self) -> String {
        json_text(&self.0.iter().map(ViewJson::from).collect::<Vec<_>>())
    }

    fn text(&self, style: Style, shown: &mut Shown) {
        let headers = [
            "SERVICE",
            "STATE",
            "PID",
            "UPTIME",
            "RESTARTS",
            "LAST EXIT",
            "PORTS",
            "NOTE",
        ];
        let text = status_table(
            self.0,
            &headers,
            |s| {
                let [pid, uptime] = pid_uptime(s.pid, s.uptime_secs);
                vec![
                    s.name.clone(),
                    s.state.clone(),
                    pid,
                    uptime,
                    s.restarts.to_string(),
                    s.last_exit.clone().unwrap_or_else(dash),
                    ports_cell(&s.ports, ",", |p| p.to_string()),
                    armed_note(s),
                ]
            },
            |cell, padded| match cell {
                "running" | "armed" => style.green(padded),
                "failed" => style.red(padded),
                "backoff" | "starting" | "stopping" => style.yellow(padded),
                _ => padded.to_string(),
            },
        );
        shown.out(&text).out(&lease_line(self.1));
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
    use crate::render::shown;
    use crate::service::status::State;

    /// The status table, exactly (columns, spacing, dashes, closed ports).
    #[test]
    fn the_status_table_is_aligned() {
        let statuses = [
            ServiceStatus {
                name: "web".into(),
                state: State::Running,
                pid: Some(4242),
                uptime_secs: Some(3725),
                ports: vec![("WEB_PORT".into(), 8080), ("ADMIN_PORT".into(), 8081)],
                listening: vec![8080],
                version: Some("1.0".into()),
                note: None,
            },
            ServiceStatus {
                name: "database".into(),
                state: State::Stale,
                pid: None,
                uptime_secs: None,
                ports: vec![],
                listening: vec![],
                version: None,
                note: Some("pidfile names PID 7, which is not running".into()),
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

    /// The supervisor's table, exactly, with a cron service's runs in NOTE.
    #[test]
    fn the_supervised_status_table_is_aligned() {
        let view = |name: &str, state: &str| ServiceView {
            name: name.into(),
            state: state.into(),
            pid: None,
            uptime_secs: None,
            restarts: 0,
            last_exit: None,
            ready: false,
            wanted: true,
            ports: vec![],
            version: None,
            note: None,
            next_run: None,
            last_run: None,
            handlers: None,
        };
        let views = [
            ServiceView {
                pid: Some(10),
                uptime_secs: Some(5),
                restarts: 2,
                last_exit: Some("exited with status 1".into()),
                ports: vec![("WEB_PORT".into(), 8080)],
                ..view("web", "running")
            },
            ServiceView {
                next_run: Some("2026-12-01 10:20:00".into()),
                last_run: Some("2026-12-01 10:15:00".into()),
                last_exit: Some("exited with status 0".into()),
                ..view("tick", "armed")
            },
        ];
        let report = SupervisedStatuses(&views, None);
        let text = String::from_utf8(shown(&report, false, Style::PLAIN).stdout()).unwrap();
        assert_eq!(
            text,
            "SERVICE  STATE    PID  UPTIME  RESTARTS  LAST EXIT             PORTS  NOTE\n\
             web      running  10   5s      2         exited with status 1  8080\n\
             tick     armed    -    -       0         exited with status 0  -      next run 2026-12-01 10:20:00; last run 2026-12-01 10:15:00\n"
        );
        let json = shown(&report, true, Style::PLAIN).stdout();
        let json: Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(json[0]["service"], "web");
        assert!(json[0].get("name").is_none(), "one name for the service");
        assert_eq!(json[1]["next_run"], "2026-12-01 10:20:00");
        assert!(json[0].get("next_run").is_none());
    }
}

//! What makes a service ready (service_ready) and what keeps watching it after
//! (service_health_*, service_watchdog_sec): docs/readiness.md.

use super::{Reader, ServiceType, Settings};
use std::time::Duration;

/// When a started service counts as ready (service_ready).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ready {
    /// Its ping passes (or, with no ping, it survived its start grace).
    Ping,
    /// It sends READY=1 on $NOTIFY_SOCKET (sd_notify).
    Notify,
    /// A TCP connect to 127.0.0.1 on this typed port (None: its first) succeeds, and
    /// the listener is a process of the service.
    Tcp(Option<String>),
    /// GET http://127.0.0.1:PORT/PATH answers below 400 (same ownership rule).
    Http { var: String, path: String },
    /// A line matching this regex is appended to its output after the start.
    Log(String),
    /// A one-shot exited with status 0.
    Exit,
}

impl Ready {
    /// A check the supervisor runs as a process or a connection (ping, tcp, http): the
    /// ones a health check can repeat.
    pub fn is_probe(&self) -> bool {
        matches!(self, Ready::Ping | Ready::Tcp(_) | Ready::Http { .. })
    }
}

/// Liveness after readiness (service_health_*).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Health {
    /// Zero: off.
    pub interval: Duration,
    pub timeout: Duration,
    pub retries: u32,
}

/// The rule of service_ready.
pub const READY_RULE: &str = "must be notify, tcp, tcp:VAR, http:VAR/PATH, log:REGEX, exit (one-shot services) or unset (the ping)";

/// Read service_ready, service_ready_timeout (service_depends_timeout is its old
/// name), the health settings' combination and service_watchdog_sec into `settings`.
/// (A VAR that is a typed port of the service is checked with the typed variables.)
pub(super) fn read(r: &mut Reader, settings: &mut Settings) {
    let oneshot = settings.service_type == ServiceType::Oneshot;
    settings.ready = ready(r, oneshot);
    if r.value("service_ready_timeout").is_some() {
        settings.depends_timeout = r.get::<super::table::Seconds>("service_ready_timeout");
    }
    let health = settings.health;
    if !health.interval.is_zero() {
        if health.interval <= health.timeout {
            r.missing(format!(
                "service_health_interval={}{} must be longer than service_health_timeout={}{}: a check must end before the next is due",
                r.value("service_health_interval").unwrap_or_default(),
                r.origin("service_health_interval"),
                health.timeout.as_secs_f64(),
                r.origin("service_health_timeout")
            ));
        }
        if !settings.ready.is_probe() {
            r.bad(
                "service_health_interval",
                "health checks repeat a ping, tcp or http check: service_ready must be unset (the ping), tcp or http",
            );
        }
    }
    settings.watchdog = match r.value("service_watchdog_sec") {
        None => None,
        Some(_) => {
            let secs = r.get::<super::table::Seconds>("service_watchdog_sec");
            (!secs.is_zero()).then_some(secs)
        }
    };
}

fn ready(r: &mut Reader, oneshot: bool) -> Ready {
    let Some(value) = r.value("service_ready") else {
        return if oneshot { Ready::Exit } else { Ready::Ping };
    };
    let ready = match value.split_once(':') {
        None => match value {
            "ping" => Some(Ready::Ping),
            "notify" => Some(Ready::Notify),
            "tcp" => Some(Ready::Tcp(None)),
            "exit" => Some(Ready::Exit),
            _ => None,
        },
        Some(("tcp", var)) if is_var_name(var) => Some(Ready::Tcp(Some(var.to_string()))),
        Some(("http", rest)) => {
            let (var, path) = rest.split_once('/').unwrap_or((rest, ""));
            is_var_name(var).then(|| Ready::Http {
                var: var.to_string(),
                path: format!("/{path}"),
            })
        }
        Some(("log", pattern)) => match regex::Regex::new(pattern) {
            Ok(_) if !pattern.is_empty() => Some(Ready::Log(pattern.to_string())),
            Ok(_) => None,
            Err(e) => {
                let last = e.to_string().lines().last().unwrap_or_default().to_string();
                r.bad(
                    "service_ready",
                    &format!("the log: pattern is not a valid regex ({})", last.trim()),
                );
                return Ready::Ping;
            }
        },
        _ => None,
    };
    match ready {
        None => {
            r.bad("service_ready", READY_RULE);
            Ready::Ping
        }
        Some(Ready::Exit) if !oneshot => {
            r.bad(
                "service_ready",
                "exit is for one-shot services (service_type=oneshot): a daemon that exits has failed",
            );
            Ready::Ping
        }
        Some(ready) if oneshot && ready != Ready::Exit => {
            r.bad(
                "service_ready",
                "a one-shot service is ready when it exits with status 0: leave service_ready unset (or exit)",
            );
            Ready::Exit
        }
        Some(ready) => ready,
    }
}

fn is_var_name(v: &str) -> bool {
    !v.is_empty()
        && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !v.starts_with(|c: char| c.is_ascii_digit())
}

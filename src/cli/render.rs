//! Human and JSON output: aligned tables, colour only on a terminal (NO_COLOR
//! respected), errors as `servicectl: SERVICE: what happened — what to do`.

use crate::error::Error;
use crate::service::status::{ServiceStatus, State};
use crate::text::human_duration;
use std::io::IsTerminal;

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
}

/// Print an error the way every servicectl error looks.
pub fn error(err: &Error) {
    let style = Style::for_stderr();
    eprintln!("{} {err}", style.red("servicectl:"));
}

pub fn warning(text: &str) {
    let style = Style::for_stderr();
    eprintln!("{} {text}", style.yellow("servicectl: warning:"));
}

/// Lay out rows in aligned columns; `paint` may colour a cell after padding.
pub fn table(
    headers: &[&str],
    rows: &[Vec<String>],
    paint: impl Fn(usize, &str, &str) -> String,
) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<String>| -> String { cells.join("  ").trim_end().to_string() + "\n" };
    out.push_str(&line(
        headers
            .iter()
            .enumerate()
            .map(|(i, h)| format!("{h:<w$}", w = widths[i]))
            .collect(),
    ));
    for row in rows {
        out.push_str(&line(
            row.iter()
                .enumerate()
                .map(|(i, c)| {
                    let padded = format!("{c:<w$}", w = widths[i]);
                    paint(i, c, &padded)
                })
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
                        .map(|(_, p)| p.to_string())
                        .collect::<Vec<_>>()
                        .join(",")
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

/// LSB exit code for status: 0 all running, 3 any not running.
pub fn status_exit_code(statuses: &[ServiceStatus]) -> i32 {
    if statuses.iter().all(|s| s.state == State::Running) {
        0
    } else {
        3
    }
}

//! Restart on change (service_watch, service_watch_delay; SPEC §12.2): which files of
//! the playpen restart the service when they change. The patterns are checked here;
//! `service::watch` finds the folders they can match and matches paths.

use super::{Reader, Settings};
use std::time::Duration;

/// service_watch and service_watch_delay.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Watch {
    /// Globs relative to the playpen root (`**` crosses folders); empty: off.
    pub patterns: Vec<String>,
    /// How long the files must be quiet before the restart.
    pub delay: Duration,
}

/// The rule of service_watch.
pub const WATCH_RULE: &str =
    "must be globs relative to the playpen root (such as `src/**/*.py`), outside var/";

/// Read service_watch (service_watch_delay is a plain row of the table).
pub(super) fn read(r: &mut Reader, settings: &mut Settings) {
    let Some(text) = r.value("service_watch") else {
        return;
    };
    let mut patterns = Vec::new();
    for pattern in text.split_whitespace() {
        match problem(pattern) {
            Some(why) => r.bad("service_watch", &format!("{WATCH_RULE}: `{pattern}` {why}")),
            None => patterns.push(pattern.to_string()),
        }
    }
    settings.watch.patterns = patterns;
}

/// What is wrong with one pattern, if anything.
pub fn problem(pattern: &str) -> Option<String> {
    if pattern.starts_with('/') {
        return Some("is absolute".into());
    }
    let parts: Vec<&str> = pattern.split('/').collect();
    if parts.contains(&"..") {
        return Some("leaves the playpen (`..`)".into());
    }
    let first = parts.iter().find(|p| !p.is_empty() && **p != ".");
    if first.is_some_and(|p| *p == "var") {
        return Some("is under var/, which is never watched (servicectl writes there)".into());
    }
    if let Err(e) = globset::GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
    {
        return Some(format!("is not a glob: {}", e.kind()));
    }
    None
}

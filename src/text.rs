//! Small text helpers every layer shares: lists that stay one line, tails of output,
//! indentation and durations. A leaf: it imports nothing of ours, so any module may use it.

/// `a, b, c and 7 more`: a list that stays one readable line.
pub fn short_list(names: &[String], most: usize) -> String {
    if names.len() <= most {
        return names.join(", ");
    }
    format!(
        "{} and {} more",
        names[..most].join(", "),
        names.len() - most
    )
}

/// The last `n` lines of `text`, joined for a one-line message.
pub fn tail(text: &str, n: usize) -> String {
    last_lines(text, n).join(" | ")
}

/// The last `n` lines of `text`.
pub fn last_lines(text: &str, n: usize) -> Vec<&str> {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].to_vec()
}

pub fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn human_duration(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s if s < 86400 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        s => format!("{}d{:02}h", s / 86400, (s % 86400) / 3600),
    }
}

/// Text that may span lines (a description) on one line: messages and comments must
/// not break.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `secs` (Unix time) in the local time zone, from the C library's zone rules.
pub fn broken_down(secs: i64) -> libc::tm {
    // SAFETY: tm is plain data; localtime_r writes it and reads `t` only.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let t: libc::time_t = secs as libc::time_t;
    unsafe { libc::localtime_r(&t, &mut tm) };
    tm
}

/// `2026-12-01 10:20:00`, local time.
pub fn local_time(secs: f64) -> String {
    let tm = broken_down(secs as i64);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

/// `HH:MM:SS` (UTC) of now: the stamp of a log line of the supervisor or the keeper.
pub fn log_stamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!(
        "{:02}:{:02}:{:02}",
        secs / 3600 % 24,
        secs / 60 % 60,
        secs % 60
    )
}

//! Placeholders for what changes from run to run, so that a test can compare a
//! command's whole output: the tutorial (tutorial.rs) and the golden tests (golden.rs)
//! use the same ones. The playpen's path is {ROOT}, PIDs are {PID} (`pid N`, the PID
//! and SUPERVISOR columns of a table, `"pid": N` in JSON), uptimes are {TIME} (the UPTIME column,
//! `"uptime_secs": N`), local times are {WHEN} (`2026-12-05 10:42:01`), and the
//! playpen's PORT_PREFIX reads as 8000 (its ports as 80NN).

use super::Playpen;
use std::path::Path;

/// The placeholders, applied to real output.
pub fn mask(text: &str, root: &Path, prefix: u16) -> String {
    let mut text = text.to_string();
    if let Ok(canonical) = root.canonicalize() {
        text = text.replace(&canonical.display().to_string(), "{ROOT}");
    }
    text = text.replace(&root.display().to_string(), "{ROOT}");
    let ports = regex::Regex::new(&format!(r"\b{}(\d\d)\b", prefix / 100)).unwrap();
    text = ports.replace_all(&text, "80$1").into_owned();
    let when = regex::Regex::new(r"\b\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\b").unwrap();
    text = when.replace_all(&text, "{WHEN}").into_owned();
    let pid = regex::Regex::new(r"(?i)\b(pid) \d+").unwrap();
    text = pid.replace_all(&text, "$1 {PID}").into_owned();
    let json = regex::Regex::new(r#""(pid|uptime_secs)": \d+"#).unwrap();
    text = json
        .replace_all(&text, |c: &regex::Captures| match &c[1] {
            "pid" => r#""pid": "{PID}""#.to_string(),
            _ => r#""uptime_secs": "{TIME}""#.to_string(),
        })
        .into_owned();
    // Table columns: PID and UPTIME cells (replaced in place, the spacing kept).
    let word = regex::Regex::new(r"\S+").unwrap();
    let mut columns: Vec<(usize, &str)> = Vec::new();
    let mut lines = Vec::new();
    for line in text.lines() {
        let words: Vec<regex::Match> = word.find_iter(line).collect();
        // A header has every word in capitals (a row's NOTE may say `PID 42` too).
        let header = words.iter().all(|w| {
            w.as_str()
                .chars()
                .all(|c| c.is_ascii_uppercase() || c == '_')
        });
        if header
            && words
                .iter()
                .any(|w| matches!(w.as_str(), "PID" | "UPTIME" | "SUPERVISOR"))
        {
            columns = words
                .iter()
                .enumerate()
                .filter_map(|(i, w)| match w.as_str() {
                    "PID" | "SUPERVISOR" => Some((i, "{PID}")),
                    "UPTIME" => Some((i, "{TIME}")),
                    _ => None,
                })
                .collect();
            lines.push(line.to_string());
            continue;
        }
        if words.is_empty() {
            columns.clear();
        }
        let mut masked = line.to_string();
        // From the right, so that earlier ranges stay valid.
        for (i, placeholder) in columns.iter().rev() {
            if let Some(w) = words.get(*i)
                && w.as_str().starts_with(|c: char| c.is_ascii_digit())
            {
                masked.replace_range(w.range(), placeholder);
            }
        }
        lines.push(masked);
    }
    lines.join("\n") + "\n"
}

/// A command's output as the golden tests compare it: masked, and after each line's
/// indentation its runs of spaces as one (the width of a masked column varies with the
/// PID), no trailing space.
pub fn golden(pp: &Playpen, text: &str) -> String {
    let prefix = pp.prefix_or(8000);
    let mut out = String::new();
    for line in mask(text, &pp.root, prefix).lines() {
        let body = line.trim_start_matches(' ');
        out.push_str(&line[..line.len() - body.len()]);
        out.push_str(
            &body
                .split(' ')
                .filter(|w| !w.is_empty())
                .collect::<Vec<_>>()
                .join(" "),
        );
        out.push('\n');
    }
    if text.is_empty() { String::new() } else { out }
}

/// The whole of `actual` (masked as [`golden`]) is `expected`. `GOLDEN_PRINT=1` prints
/// what was seen, to paste as the expected text when an output changes on purpose.
#[track_caller]
pub fn assert_golden(pp: &Playpen, what: &str, actual: &str, expected: &str) {
    let seen = golden(pp, actual);
    if std::env::var_os("GOLDEN_PRINT").is_some() {
        eprintln!("---- {what} (expected {expected:?}):\n{seen}----");
        return;
    }
    assert_eq!(seen, expected, "{what}: the whole output, masked");
}

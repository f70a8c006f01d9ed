//! What a failed evaluation tells: the fragment it was sourcing, the line sh names,
//! the signal or status that ended it, what the fragment printed.

use super::Reply;
use crate::error::Error;
use std::path::{Path, PathBuf};

/// Turn a reply's failure, if any, into an error naming the file (and line).
pub(super) fn failure(reply: &Reply, files: &[PathBuf], service: Option<&str>) -> Option<Error> {
    let file_of = |i: usize| {
        files
            .get(i.saturating_sub(1))
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "the config shell".to_string())
    };
    let died = reply.exit_status.is_none();
    let shell_failed = reply.exit_status.is_none_or(|st| st != 0);
    // The last file begun never reached its dump: it ran `exit` (even `exit 0`), or the
    // shell died while sourcing it.
    let ended_early =
        reply.last_begun > 0 && reply.dumps.iter().all(|(i, _)| *i < reply.last_begun);
    if reply.failed.is_none() && !shell_failed && !ended_early {
        return None;
    }
    let output = reply.output();
    let output = output.trim_end();
    let culprit = match reply.failed {
        Some((i, _)) => i,
        None => reply.last_begun,
    };
    let path = files.get(culprit.wrapping_sub(1));
    let unreadable = path.and_then(|p| std::fs::File::open(p).err());
    let line = path.and_then(|p| diagnostic_line(output, p));
    let how_it_ended = || match reply.shell_status {
        Some(st) if st > 128 => format!(
            "was killed by signal {}",
            signal_name(st - 128).unwrap_or_else(|| (st - 128).to_string())
        ),
        Some(st) => format!("exited with status {st}"),
        None => "was killed".to_string(),
    };
    let mut hint = "fix the fragment (it is sourced by sh; check it with `sh -n FILE`), and end it with a command that succeeds".to_string();
    let message = if let Some(e) = &unreadable {
        hint = format!(
            "make {} readable by the user servicectl runs as",
            file_of(culprit)
        );
        format!("config {} cannot be read: {e}", file_of(culprit))
    } else if died && !ended_early && reply.failed.is_none() {
        // Every file was sourced to its end, but the shell died meanwhile: a service's
        // subshell goes on when its fragment kills the main shell (`kill $$`); a shell
        // that exits with a status did it itself (a trap or `set -e` of the shared layer).
        let killed = reply.shell_status.is_none_or(|st| st > 128);
        let sourced = files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        if killed && service.is_some() {
            hint = "a config fragment must not signal its shell or its process group (`kill $$`, `kill 0`); remove the kill".to_string();
            format!(
                "the config shell {} while the service's config was sourced ({sourced})",
                how_it_ended()
            )
        } else {
            hint = "something in the role or cluster config or a profile ends or kills the shell (a trap, `set -e` with a failing command); remove it".to_string();
            format!(
                "the config shell {} after {} was sourced",
                how_it_ended(),
                if culprit == 0 {
                    "nothing".to_string()
                } else {
                    file_of(culprit)
                }
            )
        }
    } else {
        let what = if let Some((_, status)) = reply.failed {
            format!("returned status {status} (its last command failed)")
        } else if output.contains("Syntax error") || output.contains("syntax error") {
            "has a syntax error".to_string()
        } else if died {
            let how = how_it_ended();
            if reply.shell_status.is_none_or(|st| st > 128) {
                hint = "a config fragment must not signal its shell or its process group (`kill 0`, `kill $$`); remove the kill".to_string();
            } else {
                hint =
                    "remove the `exit` (or the failing command under `set -e`) from the fragment"
                        .to_string();
            }
            format!("ended the config shell while it was sourced (sh {how})")
        } else {
            format!(
                "exited the shell (status {})",
                reply.exit_status.unwrap_or_default()
            )
        };
        let located = match line {
            Some(l) => format!("{}:{l}", file_of(culprit)),
            None => file_of(culprit),
        };
        format!("config {located} {what}")
    };
    let mut message = message;
    if !output.is_empty() && unreadable.is_none() {
        message.push_str(&format!("; sh said: {}", crate::text::tail(output, 5)));
    }
    let mut err = Error::config(message).with_hint(hint);
    if let Some(s) = service {
        err = err.with_service(s);
    }
    Some(err)
}

fn signal_name(n: i32) -> Option<String> {
    nix::sys::signal::Signal::try_from(n)
        .ok()
        .map(|s| s.as_str().to_string())
}

/// The line of `file` that an sh diagnostic points at: dash's `sh: 3: FILE: …` or bash's
/// `FILE: line 3: …`. A diagnostic about the file that does not come from inside it
/// (`sh: 29: .: cannot open FILE`, whose line is the driver's) gives none.
pub(super) fn diagnostic_line(output: &str, file: &Path) -> Option<u32> {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| {
        regex::Regex::new(r"(?m)^(?:[^:\n]*: (\d+): ([^\n]*)|([^\n]*?): line (\d+): [^\n]*)$")
            .expect("valid regex")
    });
    let file = file.display().to_string();
    re.captures_iter(output).find_map(|c| {
        let (line, names_file) = match (c.get(1), c.get(4)) {
            (Some(line), _) => (line, c[2].starts_with(&format!("{file}: "))),
            (None, Some(line)) => (line, c.get(3).is_some_and(|f| f.as_str() == file)),
            _ => return None,
        };
        if names_file {
            line.as_str().parse().ok()
        } else {
            None
        }
    })
}

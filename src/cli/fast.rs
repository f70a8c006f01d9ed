//! `status` without clap (issue 19): building the clap command of every subcommand
//! costs more instructions than reading a status reply, for a command scripts call in
//! loops. Only `[--playpen DIR] [--json] status [NAME…]` in any order of the global
//! options is read here; anything else (help, a repeated or unknown option, `--`, a
//! name that is not UTF-8 or starts with `-`) goes to clap, which says what is wrong
//! exactly as before.

use super::{Cli, Command};
use std::ffi::OsString;
use std::path::PathBuf;

/// The parsed command line when it is a plain `status`; None: let clap parse it.
pub fn status(args: impl IntoIterator<Item = OsString>) -> Option<Cli> {
    let mut playpen: Option<PathBuf> = None;
    let mut json = false;
    let mut command: Option<Vec<String>> = None;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let word = arg.to_str()?;
        if word == "--json" {
            if json {
                return None;
            }
            json = true;
        } else if word == "--playpen" || word.starts_with("--playpen=") {
            let dir = match word.strip_prefix("--playpen=") {
                Some(dir) => OsString::from(dir),
                None => args.next()?,
            };
            let dir_text = dir.to_str()?;
            if playpen.is_some() || dir_text.is_empty() || dir_text.starts_with('-') {
                return None;
            }
            playpen = Some(PathBuf::from(dir));
        } else if word.is_empty() || word.starts_with('-') {
            return None;
        } else if let Some(names) = &mut command {
            names.push(word.to_string());
        } else if word == "status" {
            command = Some(Vec::new());
        } else {
            return None;
        }
    }
    Some(Cli {
        playpen,
        json,
        command: Command::Status { services: command? },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn words(line: &str) -> Vec<OsString> {
        line.split_whitespace().map(OsString::from).collect()
    }

    /// Whatever the fast path reads, clap reads the same; what it leaves, clap gets.
    #[test]
    fn the_fast_path_reads_status_as_clap_does() {
        for line in [
            "status",
            "status web db",
            "--json status",
            "status --json web",
            "--playpen /tmp/p status",
            "status web --playpen=/tmp/p --json",
        ] {
            let fast = status(words(line)).unwrap_or_else(|| panic!("{line}"));
            let mut argv = vec![OsString::from("servicectl")];
            argv.extend(words(line));
            let clap = Cli::try_parse_from(argv).unwrap();
            assert_eq!(format!("{fast:?}"), format!("{clap:?}"), "{line}");
        }
        for line in [
            "",
            "start",
            "status --help",
            "status -h",
            "--json --json status",
            "status -- web",
            "--playpen status",
            "--playpen= status",
            "--playpen a --playpen b status",
            "status --verbose",
            "--version",
            "ping status",
            "status status2 --jsonx",
        ] {
            assert!(status(words(line)).is_none(), "{line}");
        }
    }
}

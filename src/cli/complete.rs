//! Shell completion, answered by servicectl itself: the scripts in share/completions/
//! (bash, zsh, fish; `servicectl completions SHELL` prints them) pass the words of the
//! command line to the hidden `servicectl __complete -- WORD…` and offer what it prints,
//! one candidate a line. The clap definitions say which commands, options and values
//! exist, so a new command completes without touching the scripts; where a command
//! takes service names, they come from the playpen's catalog (the directories under
//! ext/services/ and services/ and the `.services` files): no config is evaluated and no
//! sh is started, so a TAB costs one short process.
//!
//! Two answers are not candidates but requests to the shell: [`DIRS`] (complete a
//! directory) and [`FILES`] (complete a path).

use crate::cli::Cli;
use crate::playpen::Playpen;
use crate::playpen::catalog::Catalog;
use clap::{Arg, CommandFactory, ValueHint};
use std::path::PathBuf;

pub const DIRS: &str = "__dirs__";
pub const FILES: &str = "__files__";

/// The completion scripts shipped in share/completions/.
pub const BASH: &str = include_str!("../../share/completions/servicectl.bash");
pub const ZSH: &str = include_str!("../../share/completions/_servicectl");
pub const FISH: &str = include_str!("../../share/completions/servicectl.fish");

/// Ids of arguments whose values are service names.
const SERVICE_ARGS: &[&str] = &["services", "service"];

/// What may stand in place of the last of `words` (the words after `servicectl`, the last
/// one being completed, possibly empty).
pub fn candidates(words: &[String]) -> Vec<String> {
    let mut cmd = Cli::command();
    cmd.build();
    let (current, done) = match words.split_last() {
        Some((last, rest)) => (last.as_str(), rest),
        None => ("", &[][..]),
    };
    let mut command = &cmd;
    let mut playpen: Option<PathBuf> = None;
    let mut pending: Option<&Arg> = None;
    let mut positionals: Vec<&str> = Vec::new();
    for (i, word) in done.iter().enumerate() {
        // `run … -- CMD`: what follows is a command line of its own (a path, for the
        // shell to complete), not servicectl's.
        if word == "--" && pending.is_none() && i > 0 {
            return vec![FILES.to_string()];
        }
        if let Some(arg) = pending.take() {
            if arg.get_id() == "playpen" {
                playpen = Some(PathBuf::from(word));
            }
            continue;
        }
        if let Some(long) = word.strip_prefix("--") {
            let (name, value) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (long, None),
            };
            if let Some(arg) = command.get_arguments().find(|a| a.get_long() == Some(name)) {
                match value {
                    Some(v) if arg.get_id() == "playpen" => playpen = Some(PathBuf::from(v)),
                    None if takes_value(arg) => pending = Some(arg),
                    _ => {}
                }
            }
        } else if let Some(shorts) = word.strip_prefix('-').filter(|s| !s.is_empty()) {
            let last = shorts.chars().last();
            if let Some(arg) = command
                .get_arguments()
                .find(|a| a.get_short().is_some() && a.get_short() == last)
                && takes_value(arg)
            {
                pending = Some(arg);
            }
        } else if let Some(sub) = positionals
            .is_empty()
            .then(|| command.find_subcommand(word))
            .flatten()
        {
            command = sub;
        } else {
            positionals.push(word);
        }
    }
    let services = |taken: &[&str]| -> Vec<String> {
        let Ok(pen) = Playpen::discover(playpen.as_deref()) else {
            return Vec::new();
        };
        let Ok(catalog) = Catalog::load(&pen, None) else {
            return Vec::new();
        };
        catalog
            .names()
            .filter(|n| !taken.contains(n))
            .map(str::to_string)
            .collect()
    };
    let found: Vec<String> = if let Some(arg) = pending {
        values(arg, &services)
    } else if current.starts_with('-') {
        command
            .get_arguments()
            .filter(|a| !a.is_hide_set())
            .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
            .collect()
    } else if command.has_subcommands() {
        command
            .get_subcommands()
            .filter(|s| !s.is_hide_set() && s.get_name() != "help")
            .map(|s| s.get_name().to_string())
            .collect()
    } else {
        let mut open = command.get_positionals().filter(|a| !a.is_hide_set());
        // The positional being typed: a list takes every word from its place on.
        let mut at = positionals.len();
        let arg = loop {
            let Some(arg) = open.next() else { break None };
            if arg.get_num_args().is_some_and(|n| n.max_values() > 1) || at == 0 {
                break Some(arg);
            }
            at -= 1;
        };
        match arg {
            Some(arg) if SERVICE_ARGS.contains(&arg.get_id().as_str()) => services(&positionals),
            Some(arg) => values(arg, &services),
            None => Vec::new(),
        }
    };
    if found.len() == 1 && (found[0] == DIRS || found[0] == FILES) {
        return found;
    }
    found
        .into_iter()
        .filter(|c| c.starts_with(current))
        .collect()
}

fn takes_value(arg: &Arg) -> bool {
    arg.get_num_args().is_some_and(|n| n.takes_values())
}

/// Candidates for an argument's value: service names, its possible values, or a request
/// to the shell for paths.
fn values(arg: &Arg, services: &dyn Fn(&[&str]) -> Vec<String>) -> Vec<String> {
    if SERVICE_ARGS.contains(&arg.get_id().as_str()) {
        return services(&[]);
    }
    let possible: Vec<String> = arg
        .get_possible_values()
        .iter()
        .filter(|v| !v.is_hide_set())
        .map(|v| v.get_name().to_string())
        .collect();
    if !possible.is_empty() {
        return possible;
    }
    let is_path = arg
        .get_value_names()
        .is_some_and(|names| names.iter().any(|n| n == "DIR"))
        || arg.get_id() == "dir"
        || matches!(arg.get_value_hint(), ValueHint::DirPath);
    if is_path {
        vec![DIRS.to_string()]
    } else if matches!(
        arg.get_value_hint(),
        ValueHint::AnyPath | ValueHint::FilePath
    ) || arg.get_id() == "files"
    {
        vec![FILES.to_string()]
    } else {
        Vec::new()
    }
}

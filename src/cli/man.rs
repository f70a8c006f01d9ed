//! The man page, `share/man/servicectl.1`, made from the same clap definitions as
//! `--help` (clap_mangen): the name, synopsis, description and global options, then one
//! subsection per command (its synopsis, description and options), then the exit codes,
//! the environment and the files. `servicectl __man` prints it; `scripts/gen-man` writes
//! it into share/, and a test fails when the checked-in page differs.

use crate::cli::{Cli, exit};
use clap::CommandFactory;
use clap_mangen::Man;

/// Options every command takes; shown once, in the OPTIONS section.
const GLOBAL: &[&str] = &["playpen", "json", "help"];

const EXIT_CODES: &[(i32, &str)] = &[
    (exit::OK, "success; for status: every listed service runs"),
    (
        exit::FAILED,
        "failure: a service failed to start, stop or ping, a configuration or input error, a port already in use; missing-env: something is missing; check: a service has problems",
    ),
    (exit::USAGE, "usage error (bad arguments)"),
    (
        exit::NOT_RUNNING,
        "status only: some listed service is not running (stopped, stale pidfile, unknown state), as LSB init scripts say",
    ),
    (
        exit::UNKNOWN_SERVICE,
        "an unknown service was named (LSB \"unknown\")",
    ),
];

const ENVIRONMENT: &[(&str, &str)] = &[
    (
        "PLAYPEN_ROOT",
        "the playpen, when --playpen is not given; else the nearest parent of the working directory holding etc/role or ext/services",
    ),
    ("PLAYPEN_ROLE", "overrides etc/role"),
    ("PLAYPEN_CLUSTER", "overrides etc/cluster"),
    (
        "PLAYPEN_TAG",
        "appended to every run name (var/linkfarm/NAME-TAG), so that ps and top tell playpens apart; may also be set in the role or cluster config",
    ),
    (
        "PORT_PREFIX",
        "added to each typed port's NAME_OFFSET; give each playpen its own, or set it to auto to lease a free block of 100 ports (var/servicectl/port-prefix); may also be set in the role or cluster config",
    ),
    (
        "SERVICECTL_PORT_PREFIX_RANGE",
        "FIRST-LAST: the range PORT_PREFIX=auto leases from (default 20000-60000)",
    ),
    (
        "XDG_STATE_HOME",
        "the per-user registry of playpens is $XDG_STATE_HOME/servicectl/playpens (default ~/.local/state/servicectl/playpens)",
    ),
    (
        "SERVICECTL_CONFIG_TIMEOUT",
        "seconds one config fragment may take to evaluate (default 10)",
    ),
    (
        "SERVICECTL_HOOK_TIMEOUT",
        "seconds a hook or service script may run (default 300)",
    ),
    ("NO_COLOR", "no colour, even on a terminal"),
    (
        "VISUAL, EDITOR",
        "the editor of servicectl edit ($VISUAL, else $EDITOR, else vi)",
    ),
    (
        "SERVICECTL_UNIT_DIR",
        "where servicectl boot writes its systemd unit instead of /etc/systemd/system (root) or ~/.config/systemd/user; also chooses systemd where it does not run (an image being built), and systemctl is then not called",
    ),
];

const FILES: &[(&str, &str)] = &[
    ("etc/role", "the playpen's role"),
    (
        "etc/roles/ROLE/config",
        "sh: playpen_services and role-wide variables",
    ),
    (
        "ext/services/NAME-VERSION/",
        "installed service packages (config, hooks, ping)",
    ),
    (
        "services/NAME/",
        "the project's customisation of a service (config.pre, config, config.post, ping)",
    ),
    (
        "var/run/NAME.pid, NAME.start, NAME.output",
        "pidfile, start record and output file of a service",
    ),
    (
        "var/linkfarm/",
        "argv0 symlinks the programs are started through",
    ),
    (
        "var/servicectl/edit/NAME.config",
        "an edit that did not pass its check (servicectl edit NAME --recover reopens it, --discard drops it)",
    ),
    (
        "var/servicectl/port-prefix",
        "the playpen's PORT_PREFIX lease (PORT_PREFIX=auto): the prefix, the playpen's path, its device:inode",
    ),
    (
        "~/.local/state/servicectl/playpens",
        "the user's registry of playpens and their leases (one JSON object a line; `servicectl playpens`)",
    ),
];

/// Escape text for roff: backslashes, hyphens (so they are not hyphenation points), and
/// a leading dot or quote (which would start a request).
fn escape(text: &str) -> String {
    let text = text.replace('\\', "\\e").replace('-', "\\-");
    if text.starts_with('.') || text.starts_with('\'') {
        format!("\\&{text}")
    } else {
        text
    }
}

/// The two lines roff output starts with, defining the apostrophe string `\*(Aq`; the
/// page needs them once, at its top.
const PREAMBLE: [&str; 2] = [".ie \\n(.g .ds Aq \\(aq", ".el .ds Aq '"];

/// A rendered section without the preamble and, with `heading` false, without its
/// `.SH` line.
fn rendered(render: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>, heading: bool) -> String {
    let mut out = Vec::new();
    render(&mut out).expect("writing to memory");
    let text = String::from_utf8(out).expect("roff is UTF-8");
    let mut dropped_heading = heading;
    text.lines()
        .filter(|line| !PREAMBLE.contains(line))
        .filter(|line| {
            if !dropped_heading && line.starts_with(".SH") {
                dropped_heading = true;
                return false;
            }
            true
        })
        .map(|line| format!("{line}\n"))
        .collect()
}

fn body(render: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>) -> String {
    rendered(render, false)
}

/// One subsection per command (and per subcommand of a command group).
fn commands(cmd: &clap::Command, out: &mut String) {
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        let name = sub
            .get_bin_name()
            .map(str::to_string)
            .unwrap_or_else(|| sub.get_name().to_string());
        if sub.has_subcommands() {
            commands(sub, out);
            continue;
        }
        let mut shown = sub.clone();
        for global in GLOBAL {
            if shown.get_arguments().any(|a| a.get_id() == global) {
                shown = shown.mut_arg(global, |a| a.hide(true));
            }
        }
        let man = Man::new(shown.clone());
        out.push_str(&format!(".SS \"{}\"\n", escape(&name)));
        out.push_str(&body(|w| man.render_synopsis_section(w)));
        out.push_str(".PP\n");
        out.push_str(&body(|w| man.render_description_section(w)));
        if shown.get_arguments().any(|a| !a.is_hide_set()) {
            // Options and arguments as an indented list under the command.
            out.push_str(".RS\n");
            out.push_str(&body(|w| man.render_options_section(w)));
            out.push_str(".RE\n");
        }
    }
}

fn table(out: &mut String, heading: &str, rows: &[(String, &str)]) {
    out.push_str(&format!(".SH \"{heading}\"\n"));
    for (term, text) in rows {
        out.push_str(&format!(
            ".TP\n\\fB{}\\fR\n{}\n",
            escape(term),
            escape(text)
        ));
    }
}

/// The whole page, in roff.
pub fn page() -> String {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let version = cmd.get_version().unwrap_or_default().to_string();
    let man = Man::new(cmd.clone())
        .source(format!("servicectl {version}"))
        .manual("servicectl manual");
    let mut out = format!("{}\n{}\n", PREAMBLE[0], PREAMBLE[1]);
    out.push_str(&body(|w| man.render_title(w)));
    for section in [
        Man::render_name_section,
        Man::render_synopsis_section,
        Man::render_description_section,
        Man::render_options_section,
    ] {
        out.push_str(&rendered(|w| section(&man, w), true));
    }
    out.push_str(".SH COMMANDS\n");
    commands(&cmd, &mut out);
    table(
        &mut out,
        "EXIT STATUS",
        &EXIT_CODES
            .iter()
            .map(|(code, text)| (code.to_string(), *text))
            .collect::<Vec<_>>(),
    );
    table(
        &mut out,
        "ENVIRONMENT",
        &ENVIRONMENT
            .iter()
            .map(|(name, text)| (name.to_string(), *text))
            .collect::<Vec<_>>(),
    );
    table(
        &mut out,
        "FILES",
        &FILES
            .iter()
            .map(|(name, text)| (name.to_string(), *text))
            .collect::<Vec<_>>(),
    );
    out.push_str(".SH \"SEE ALSO\"\n");
    out.push_str(&escape(
        "docs/cli.md, docs/packaging.md and docs/deploying.md in the servicectl sources; systemd.service(5) for the units of servicectl export systemd.",
    ));
    out.push('\n');
    out
}

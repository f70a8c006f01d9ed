//! Every setting, declared once: its name, the field of [`Settings`] it fills, how its
//! value is read (a [`Kind`]: the parser and the rule messages quote), its default (as
//! written in a fragment, parsed by that same kind) and its line in the docs.
//!
//! From [`TABLE`] come the defaults ([`Settings::default`]), the list of known settings
//! (checked for UTF-8 before anything is read), the parsing of every simple setting,
//! and the table of docs/packaging.md (a test keeps it in sync). A new setting is one
//! row here and its field in [`Settings`] (with its blank value in `Settings::default`,
//! which the compiler asks for; the row gives the default). One that needs more than
//! its kind's parser (a combination, a schedule) is a row in the `by_hand` part, read
//! by `Settings::read` with `Reader::get::<Kind>` and the row's default.

use super::Settings;
use crate::config::ServiceConfig;
use std::time::Duration;

/// One setting, as the docs show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row {
    pub name: &'static str,
    /// What a value must be (the rule a bad one breaks).
    pub rule: &'static str,
    /// The default as written in a fragment; empty: unset.
    pub default: &'static str,
    pub doc: &'static str,
}

/// How a setting's value is read.
pub trait Kind {
    type Value;
    /// The rule a value breaks when `parse` refuses it.
    const RULE: &'static str;
    /// Whether the value is read untrimmed (a command string keeps its spaces).
    const RAW: bool = false;
    /// A value that is set and not blank (trimmed unless RAW).
    fn parse(text: &str) -> Option<Self::Value>;
    /// The value when unset.
    fn unset() -> Self::Value;
}

/// `1 yes true on y` / `0 no false off n`, any case.
pub struct Switch;
impl Kind for Switch {
    type Value = bool;
    const RULE: &'static str = "must be 1 (on) or 0 (off)";
    fn parse(text: &str) -> Option<bool> {
        match text.to_ascii_lowercase().as_str() {
            "1" | "yes" | "true" | "on" | "y" => Some(true),
            "0" | "no" | "false" | "off" | "n" => Some(false),
            _ => None,
        }
    }
    fn unset() -> bool {
        false
    }
}

/// A switch that turns something off (`service_no_symlink=1`: symlink is false).
pub struct NoSwitch;
impl Kind for NoSwitch {
    type Value = bool;
    const RULE: &'static str = Switch::RULE;
    fn parse(text: &str) -> Option<bool> {
        Switch::parse(text).map(|on| !on)
    }
    fn unset() -> bool {
        true
    }
}

/// Seconds, fractions allowed, never negative.
pub struct Seconds;
impl Kind for Seconds {
    type Value = Duration;
    const RULE: &'static str =
        "must be a number of seconds, 0 or more (fractions allowed, such as 2.5)";
    fn parse(text: &str) -> Option<Duration> {
        match text.parse::<f64>() {
            Ok(s) if (0.0..1e9).contains(&s) => Some(Duration::from_secs_f64(s)),
            _ => None,
        }
    }
    fn unset() -> Duration {
        Duration::ZERO
    }
}

/// A whole number, 0 or more.
pub struct Count;
impl Kind for Count {
    type Value = u32;
    const RULE: &'static str = "must be a whole number, 0 or more";
    fn parse(text: &str) -> Option<u32> {
        text.parse().ok()
    }
    fn unset() -> u32 {
        0
    }
}

/// A whole number, 1 or more.
pub struct Count1;
impl Kind for Count1 {
    type Value = u32;
    const RULE: &'static str = "must be a whole number, 1 or more";
    fn parse(text: &str) -> Option<u32> {
        text.parse().ok().filter(|&n| n >= 1)
    }
    fn unset() -> u32 {
        1
    }
}

/// Bytes above 0, with an optional `K`, `M` or `G` suffix (powers of 1024).
pub struct Bytes;
impl Kind for Bytes {
    type Value = u64;
    const RULE: &'static str =
        "must be a size in bytes above 0, optionally with K, M or G (such as 10M)";
    fn parse(text: &str) -> Option<u64> {
        let (digits, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
            Some((i, _)) => (&text[..i], &text[i..]),
            None => (text, ""),
        };
        let multiplier: u64 = match unit.to_ascii_uppercase().as_str() {
            "" => 1,
            "K" | "KB" | "KIB" => 1 << 10,
            "M" | "MB" | "MIB" => 1 << 20,
            "G" | "GB" | "GIB" => 1 << 30,
            _ => return None,
        };
        match digits.parse::<u64>() {
            Ok(n) if n > 0 => n.checked_mul(multiplier),
            _ => None,
        }
    }
    fn unset() -> u64 {
        0
    }
}

/// Text: one word (a program, a script, a name), trimmed; or (`RAW`) an sh command
/// string, as written.
pub struct Text<const RAW: bool>;
impl<const RAW: bool> Kind for Text<RAW> {
    type Value = Option<String>;
    const RULE: &'static str = if RAW {
        "an sh command string"
    } else {
        "a word"
    };
    const RAW: bool = RAW;
    fn parse(text: &str) -> Option<Option<String>> {
        Some(Some(text.to_string()))
    }
    fn unset() -> Option<String> {
        None
    }
}

/// One word (a program, a script, a name), trimmed.
pub type Word = Text<false>;
/// An sh command string, as written.
pub type Command = Text<true>;

/// A whitespace-separated list.
pub struct List;
impl Kind for List {
    type Value = Vec<String>;
    const RULE: &'static str = "a whitespace-separated list";
    fn parse(text: &str) -> Option<Vec<String>> {
        Some(text.split_whitespace().map(str::to_string).collect())
    }
    fn unset() -> Vec<String> {
        Vec::new()
    }
}

/// The value of a setting of kind `K` with `default`, or the problem it has.
pub fn read<K: Kind>(
    config: &ServiceConfig,
    name: &str,
    default: &str,
) -> (K::Value, Option<&'static str>) {
    let default = || {
        if default.is_empty() {
            K::unset()
        } else {
            K::parse(default).unwrap_or_else(|| panic!("the default of {name} is valid"))
        }
    };
    let value = config
        .non_empty(name)
        .map(|v| if K::RAW { v } else { v.trim() });
    match value {
        None => (default(), None),
        Some(text) => match K::parse(text) {
            Some(v) => (v, None),
            None => (default(), Some(K::RULE)),
        },
    }
}

macro_rules! table {
    (
        read {
            $( $name:literal => $($field:ident).+ : $kind:ident = $default:literal, $doc:literal; )*
        }
        by_hand {
            $( $hname:literal : $rule:literal = $hdefault:literal, $hdoc:literal; )*
        }
    ) => {
        /// Every setting, in the order the docs list them.
        pub const TABLE: &[Row] = &[
            $( Row { name: $name, rule: <$kind as Kind>::RULE, default: $default, doc: $doc }, )*
            $( Row { name: $hname, rule: $rule, default: $hdefault, doc: $hdoc }, )*
        ];

        /// Fill every field the table reads; each bad value is passed to `bad` with its
        /// rule, and its field gets the default.
        pub(super) fn read_all(
            config: &ServiceConfig,
            settings: &mut Settings,
            bad: &mut dyn FnMut(&str, &str),
        ) {
            $(
                let (value, problem) = read::<$kind>(config, $name, $default);
                settings.$($field).+ = value;
                if let Some(rule) = problem {
                    bad($name, rule);
                }
            )*
        }
    };
}

table! {
    read {
        "service_program" => program: Word = "",
            "the binary to run: in `$PLAYPEN_ROOT/bin` or `ext/bin`, else relative to `ext/`, else absolute or on PATH (required unless service_start is set)";
        "service_run_name" => run_name: Word = "",
            "argv[0] and the linkfarm symlink's name (default: the package name); a name (letters, digits, `- _ . +`)";
        "service_pre_start" => hooks.pre_start: Command = "",
            "sh command before the start (and before a SIGHUP reload); default: the package's `.pre-start`";
        "service_post_start" => hooks.post_start: Command = "",
            "sh command after the start (and after a SIGHUP reload); default: the package's `.post-start`";
        "service_pre_stop" => hooks.pre_stop: Command = "",
            "sh command before the stop; default: the package's `.pre-stop`";
        "service_post_stop" => hooks.post_stop: Command = "",
            "sh command after the stop; default: the package's `.post-stop`";
        "service_start" => scripts.start: Word = "",
            "script replacing the generic start (gets NAME VERSION)";
        "service_stop" => scripts.stop: Word = "",
            "script replacing the generic stop (gets NAME VERSION)";
        "service_restart" => scripts.restart: Word = "",
            "script to restart instead (discouraged; gets NAME VERSION)";
        "service_ping" => scripts.ping: Word = "",
            "script testing that the service works";
        "service_no_symlink" => symlink: NoSwitch = "0",
            "1: exec service_program directly, not through the linkfarm symlink";
        "service_hup" => hup: Switch = "0",
            "1: restart = render the templates and send SIGHUP";
        "service_config_files" => config_files: List = "",
            "templates rendered into var/ before start and SIGHUP";
        "service_depends" => depends: List = "",
            "services that must be up (ping passes) before this one starts";
        "service_packages" => packages: List = "",
            "packages whose upgrade counts as a dependency's";
        "service_restart_delay" => restart_delay: Seconds = "0",
            "seconds between stop and start on restart";
        "service_halt_timeout" => halt_timeout: Seconds = "10",
            "seconds between SIGTERM and SIGKILL on stop";
        "service_start_grace" => start_grace: Seconds = "0.25",
            "seconds a new process must survive to count as started";
        "service_pidfile_timeout" => pidfile_timeout: Seconds = "10",
            "seconds to wait for a program (or service_start script) to write its pidfile";
        "service_depends_timeout" => depends_timeout: Seconds = "30",
            "the old name of service_ready_timeout (still read)";
        "service_health_interval" => health.interval: Seconds = "0",
            "seconds between health checks once ready (0: off); the readiness probe repeated (docs/readiness.md)";
        "service_health_timeout" => health.timeout: Seconds = "5",
            "seconds each health check may take";
        "service_health_retries" => health.retries: Count1 = "3",
            "health checks failed in a row before it is unhealthy (stopped, a failed run)";
        "service_restart_on_dep_upgrade" => upgrade.restart_on_dep_upgrade: Switch = "1",
            "restart after an upgrade of something it depends on";
        "service_stop_before_dep_upgrade" => upgrade.stop_before_dep_upgrade: Switch = "1",
            "stop before an upgrade of something it depends on";
        "service_stop_before_upgrade" => upgrade.stop_before_upgrade: Switch = "1",
            "stop before an upgrade of its own package";
        "service_stop_on_filedep" => filedep.stop_on_change: Switch = "0",
            "1: restart stops (and leaves stopped) when a service_filedep file changed";
        "service_filedep" => filedep.files: List = "",
            "files (relative to the playpen, or absolute) watched by service_stop_on_filedep";
        "service_java_jardirs" => java.jardirs: List = "",
            "directories of jars added to CLASSPATH (relative to ext/)";
        "service_java_jars" => java.jars: List = "",
            "jars added to CLASSPATH (relative to ext/)";
        "service_fail_fast" => fail_fast: Switch = "0",
            "1: when it fails for good, the supervisor stops the whole playpen";
        "service_restart_backoff_max" => restart_backoff_max: Seconds = "30",
            "the longest wait between restarts under the supervisor";
        "service_log_max_bytes" => log.max_bytes: Bytes = "10M",
            "the supervisor rotates the output file at this size";
        "service_log_keep" => log.keep: Count = "3",
            "rotated output files kept (`NAME.output.1` …)";
        "service_watch_delay" => watch.delay: Seconds = "0.3",
            "seconds the service_watch files must be quiet before the restart (a burst of changes is one restart)";
    }
    by_hand {
        "service_type": "must be init (a daemon), oneshot (run once to completion), cron or inetd" = "init",
            "init (a daemon), oneshot (run once to completion: `done`), cron or inetd (both run by the supervisor)";
        "service_ready": "must be notify, tcp, tcp:VAR, http:VAR/PATH, log:REGEX, exit (one-shot services) or unset (the ping)" = "",
            "when it is ready: unset (its ping), notify (sd_notify READY=1), tcp[:VAR], http:VAR/PATH, log:REGEX, exit (docs/readiness.md)";
        "service_ready_timeout": "must be a number of seconds, 0 or more (fractions allowed, such as 2.5)" = "30",
            "seconds it may take to be ready; later is a failed start (stopped, a failed run)";
        "service_watchdog_sec": "must be a number of seconds, 0 or more (fractions allowed, such as 2.5)" = "",
            "it must send WATCHDOG=1 at least this often once ready, else it is killed (SIGABRT) and restarted";
        "service_watch": "must be globs relative to the playpen root (such as `src/**/*.py`), outside var/" = "",
            "under the supervisor: a change of a matching file restarts it, then what depends on it (`**` crosses folders; docs/supervisor.md)";
        "service_flags": "cannot be split with sh quoting rules: balance the quotes" = "",
            "arguments, split with sh quoting rules";
        "service_makes_own_pidfile": "must be 1 (on) or 0 (off)" = "0",
            "1: the program writes $SERVICE_PIDFILE itself";
        "service_no_pidfile": "must be 1 (on) or 0 (off)" = "0",
            "1: no pidfile at all (service_ping tells whether it runs)";
        "service_config_style": "must be envsubst (${NAME} placeholders) or unset (__NAME__ placeholders)" = "",
            "envsubst: templates use `${NAME}` instead of `__NAME__`";
        "service_restart_policy": "must be none, unlimited, or a number of restarts such as 3" = "none",
            "what the supervisor does when it exits: none, unlimited, or a number of restarts";
        "service_cron_time": "a 5-field crontab schedule, or @reboot, @hourly … @yearly" = "",
            "cron: when to run (local time)";
        "service_cron_command": "an sh command string" = "",
            "cron: the sh command to run";
        "service_port": "must be a port from 1 to 65535, or the name of a typed port variable" = "",
            "inetd: the port to listen on";
        "service_protocol": "must be tcp or udp" = "tcp",
            "inetd: tcp (a handler per connection) or udp";
        "service_bind": "must be an IP address such as 127.0.0.1, 0.0.0.0 or ::1" = "127.0.0.1",
            "inetd: the address to listen on";
        "service_inetd_command": "a program and its arguments, split with sh quoting rules" = "",
            "inetd: the program to run per connection";
        "service_user": "must be a user of this machine (a name or a uid) that servicectl can become" = "",
            "the user its program, hooks, scripts, pings and health checks run as (servicectl must run as root for another user); default: the caller (docs/packaging.md)";
        "service_group": "must be a group of this machine (a name or a gid)" = "",
            "with service_user: the group they run as (default: the user's primary group)";
        "service_inetd_max": "must be a whole number, 1 or more" = "64",
            "inetd: handlers at once (tcp); further connections wait";
    }
}

/// The row of a setting (every name the code reads is in the table).
pub fn row(name: &str) -> &'static Row {
    TABLE
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("{name} is in the settings table"))
}

/// Read a setting of the `by hand` part with its kind and the table's default.
pub fn read_by_hand<K: Kind>(
    config: &ServiceConfig,
    name: &str,
) -> (K::Value, Option<&'static str>) {
    read::<K>(config, name, row(name).default)
}

/// The settings table of docs/packaging.md.
pub fn docs_table() -> String {
    let mut out = String::from("| setting | meaning | default |\n|---|---|---|\n");
    for r in TABLE {
        let default = if r.default.is_empty() {
            "—".to_string()
        } else {
            format!("`{}`", r.default)
        };
        out.push_str(&format!("| `{}` | {} | {default} |\n", r.name, r.doc));
    }
    out
}

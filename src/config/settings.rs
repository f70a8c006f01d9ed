//! A service's settings as one typed value, parsed and validated in one place.
//!
//! The `service_*` variables a fragment sets are strings; every later stage (prepare,
//! lifecycle, hooks, upgrades, the supervisor) reads the [`Settings`] made here instead,
//! so a value is interpreted once and `check` and `start` cannot disagree about what is
//! valid. [`Settings::parse`] collects every problem of a service at once; each names the
//! setting, the file that set it, the value and the rule it broke.
//!
//! Rules worth knowing (choices, not accidents):
//! - Switches accept `1 yes true on y` and `0 no false off n` (any case); empty or unset
//!   means the default. Anything else is an error rather than a silent "off".
//! - Durations are seconds, fractions allowed, never negative.
//! - Sizes are bytes, with an optional `K`, `M` or `G` suffix (powers of 1024).
//! - Settings are UTF-8 text: a setting that is not is a problem naming it, never read as
//!   unset (values of other variables may be any bytes: see config::bytes).
//! - Settings of another service type (service_cron_time on an init service, …) are
//!   ignored, so a fragment may be switched between types by changing service_type alone.

use crate::config::bytes;
use crate::config::envars::{self, VarType};
use crate::config::template::Style;
use crate::config::{Origin, ServiceConfig};
use crate::error::{Error, Result};
use crate::playpen::names;
use std::net::IpAddr;
use std::time::Duration;

/// Defaults of the settings that have one (documented in docs/packaging.md).
pub mod defaults {
    use std::time::Duration;
    pub const HALT_TIMEOUT: Duration = Duration::from_secs(10);
    pub const START_GRACE: Duration = Duration::from_millis(250);
    pub const PIDFILE_TIMEOUT: Duration = Duration::from_secs(10);
    pub const DEPENDS_TIMEOUT: Duration = Duration::from_secs(30);
    pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);
    pub const HEALTH_RETRIES: u32 = 3;
    pub const RESTART_BACKOFF_MAX: Duration = Duration::from_secs(30);
    pub const LOG_MAX_BYTES: u64 = 10 * 1024 * 1024;
    pub const LOG_KEEP: u32 = 3;
    pub const INETD_MAX: u32 = 64;
    pub const BIND: &str = "127.0.0.1";
}

/// What kind of service this is (service_type), with the settings only that kind has.
#[derive(Debug, Clone, PartialEq)]
pub enum ServiceType {
    /// A daemon: started, kept running, stopped.
    Init,
    /// A command run on a schedule by the supervisor.
    Cron(CronSettings),
    /// A command run per connection (tcp) or per burst of datagrams (udp).
    Inetd(InetdSettings),
    /// service_program run once to completion (a migration, say): `done` when it
    /// exits 0.
    Oneshot,
}

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

impl ServiceType {
    pub fn name(&self) -> &'static str {
        match self {
            ServiceType::Init => "init",
            ServiceType::Cron(_) => "cron",
            ServiceType::Inetd(_) => "inetd",
            ServiceType::Oneshot => "oneshot",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CronSettings {
    pub schedule: CronSchedule,
    /// service_cron_command: an sh command string.
    pub command: String,
}

/// service_cron_time, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CronSchedule {
    /// `@reboot`: once, when the service is armed.
    WhenArmed,
    /// A 5-field expression (or an `@hourly`-style alias), as written.
    Expression(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct InetdSettings {
    pub protocol: Protocol,
    pub bind: IpAddr,
    pub port: PortSetting,
    /// service_inetd_command split with shell quoting rules: program and arguments.
    pub command: Vec<String>,
    /// service_inetd_max: handlers at once (tcp).
    pub max_handlers: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Tcp,
    Udp,
}

/// service_port: a number, or the name of a typed port variable (resolved with
/// PORT_PREFIX like every typed port).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortSetting {
    Number(u16),
    Variable(String),
}

/// Who writes the pidfile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PidfileMode {
    /// servicectl writes the PID of the process it started.
    Servicectl,
    /// service_makes_own_pidfile=1: the program writes $SERVICE_PIDFILE itself.
    Program,
    /// service_no_pidfile=1: no pidfile; the ping tells whether it runs.
    None,
}

/// service_restart_policy: what the supervisor does when the service exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    Never,
    /// This many restarts after the first run.
    Times(u32),
    Always,
}

/// The sh command strings around start and stop (None: the package's script, if any).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hooks {
    pub pre_start: Option<String>,
    pub post_start: Option<String>,
    pub pre_stop: Option<String>,
    pub post_stop: Option<String>,
}

/// Executables that replace a generic step (None: the generic step, or the package's
/// script for restart and ping).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scripts {
    pub start: Option<String>,
    pub stop: Option<String>,
    pub restart: Option<String>,
    pub ping: Option<String>,
}

/// What upgrades do with the service (stop before, restart after).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpgradeFlags {
    pub restart_on_dep_upgrade: bool,
    pub stop_before_dep_upgrade: bool,
    pub stop_before_upgrade: bool,
}

/// service_stop_on_filedep and service_filedep.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filedep {
    pub stop_on_change: bool,
    pub files: Vec<String>,
}

/// service_java_jardirs and service_java_jars (relative to ext/).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Java {
    pub jardirs: Vec<String>,
    pub jars: Vec<String>,
}

/// Output file rotation by the supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogRotation {
    pub max_bytes: u64,
    pub keep: u32,
}

/// Every setting of one service.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub service_type: ServiceType,
    /// service_program as written; `service::program` resolves it.
    pub program: Option<String>,
    pub run_name: Option<String>,
    pub flags: Vec<String>,
    pub hooks: Hooks,
    pub scripts: Scripts,
    pub pidfile: PidfileMode,
    /// False with service_no_symlink=1: exec the program directly.
    pub symlink: bool,
    pub hup: bool,
    pub config_files: Vec<String>,
    pub config_style: Style,
    pub depends: Vec<String>,
    /// service_packages: packages whose upgrade counts as a dependency's.
    pub packages: Vec<String>,
    pub restart_delay: Duration,
    pub halt_timeout: Duration,
    pub start_grace: Duration,
    pub pidfile_timeout: Duration,
    pub depends_timeout: Duration,
    pub upgrade: UpgradeFlags,
    pub filedep: Filedep,
    pub java: Java,
    pub restart_policy: RestartPolicy,
    pub fail_fast: bool,
    pub restart_backoff_max: Duration,
    pub log: LogRotation,
    pub ready: Ready,
    pub health: Health,
    /// service_watchdog_sec: WATCHDOG=1 at least this often, else it is killed.
    pub watchdog: Option<Duration>,
}

impl Default for Settings {
    /// What a service gets when its fragments set nothing (also the settings of a
    /// service whose config does not evaluate).
    fn default() -> Settings {
        Settings {
            service_type: ServiceType::Init,
            program: None,
            run_name: None,
            flags: Vec::new(),
            hooks: Hooks::default(),
            scripts: Scripts::default(),
            pidfile: PidfileMode::Servicectl,
            symlink: true,
            hup: false,
            config_files: Vec::new(),
            config_style: Style::Underscores,
            depends: Vec::new(),
            packages: Vec::new(),
            restart_delay: Duration::ZERO,
            halt_timeout: defaults::HALT_TIMEOUT,
            start_grace: defaults::START_GRACE,
            pidfile_timeout: defaults::PIDFILE_TIMEOUT,
            depends_timeout: defaults::DEPENDS_TIMEOUT,
            upgrade: UpgradeFlags {
                restart_on_dep_upgrade: true,
                stop_before_dep_upgrade: true,
                stop_before_upgrade: true,
            },
            filedep: Filedep::default(),
            java: Java::default(),
            restart_policy: RestartPolicy::Never,
            fail_fast: false,
            restart_backoff_max: defaults::RESTART_BACKOFF_MAX,
            log: LogRotation {
                max_bytes: defaults::LOG_MAX_BYTES,
                keep: defaults::LOG_KEEP,
            },
            ready: Ready::Ping,
            health: Health {
                interval: Duration::ZERO,
                timeout: defaults::HEALTH_TIMEOUT,
                retries: defaults::HEALTH_RETRIES,
            },
            watchdog: None,
        }
    }
}

/// Every setting this module reads, for documentation and for `print-config`.
pub const KNOWN: &[&str] = &[
    "service_type",
    "service_program",
    "service_run_name",
    "service_flags",
    "service_pre_start",
    "service_post_start",
    "service_pre_stop",
    "service_post_stop",
    "service_start",
    "service_stop",
    "service_restart",
    "service_ping",
    "service_makes_own_pidfile",
    "service_no_pidfile",
    "service_no_symlink",
    "service_hup",
    "service_config_files",
    "service_config_style",
    "service_depends",
    "service_packages",
    "service_restart_delay",
    "service_halt_timeout",
    "service_start_grace",
    "service_pidfile_timeout",
    "service_depends_timeout",
    "service_ready",
    "service_ready_timeout",
    "service_health_interval",
    "service_health_timeout",
    "service_health_retries",
    "service_watchdog_sec",
    "service_restart_on_dep_upgrade",
    "service_stop_before_dep_upgrade",
    "service_stop_before_upgrade",
    "service_stop_on_filedep",
    "service_filedep",
    "service_java_jardirs",
    "service_java_jars",
    "service_restart_policy",
    "service_fail_fast",
    "service_restart_backoff_max",
    "service_log_max_bytes",
    "service_log_keep",
    "service_cron_time",
    "service_cron_command",
    "service_port",
    "service_protocol",
    "service_bind",
    "service_inetd_command",
    "service_inetd_max",
];

/// Reads one service's variables and remembers every problem.
struct Reader<'a> {
    config: &'a ServiceConfig,
    problems: Vec<String>,
}

impl<'a> Reader<'a> {
    /// The trimmed value, None when unset or blank.
    fn value(&self, name: &str) -> Option<&'a str> {
        self.config.non_empty(name).map(str::trim)
    }

    /// The raw value (a command string keeps its spaces), None when unset or blank.
    fn text(&self, name: &str) -> Option<String> {
        self.config.non_empty(name).map(str::to_string)
    }

    fn list(&self, name: &str) -> Vec<String> {
        self.config.list(name)
    }

    /// " (set in FILE)", or " (from the environment)".
    fn origin(&self, name: &str) -> String {
        match self.config.vars.get(name).map(|v| &v.origin) {
            Some(Origin::File(path)) => format!(" (set in {})", path.display()),
            Some(Origin::Environment) => " (from the environment)".to_string(),
            _ => String::new(),
        }
    }

    /// Record that `name`'s value breaks `rule`.
    fn bad(&mut self, name: &str, rule: &str) {
        let value = self.config.get(name).unwrap_or_default();
        let origin = self.origin(name);
        self.problems
            .push(format!("{name}={value:?}{origin}: {rule}"));
    }

    /// Record a problem that is about a combination of settings, or a missing one.
    fn missing(&mut self, text: String) {
        self.problems.push(text);
    }

    fn switch(&mut self, name: &str, default: bool) -> bool {
        match self.value(name).map(str::to_ascii_lowercase).as_deref() {
            None => default,
            Some("1" | "yes" | "true" | "on" | "y") => true,
            Some("0" | "no" | "false" | "off" | "n") => false,
            Some(_) => {
                self.bad(name, "must be 1 (on) or 0 (off)");
                default
            }
        }
    }

    fn seconds(&mut self, name: &str, default: Duration) -> Duration {
        let Some(v) = self.value(name) else {
            return default;
        };
        match v.parse::<f64>() {
            Ok(s) if (0.0..1e9).contains(&s) => Duration::from_secs_f64(s),
            _ => {
                self.bad(
                    name,
                    "must be a number of seconds, 0 or more (fractions allowed, such as 2.5)",
                );
                default
            }
        }
    }

    fn count(&mut self, name: &str, default: u32, least: u32) -> u32 {
        let Some(v) = self.value(name) else {
            return default;
        };
        match v.parse::<u32>() {
            Ok(n) if n >= least => n,
            _ => {
                self.bad(name, &format!("must be a whole number, {least} or more"));
                default
            }
        }
    }

    fn bytes(&mut self, name: &str, default: u64) -> u64 {
        let Some(v) = self.value(name) else {
            return default;
        };
        let (digits, unit) = match v.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
            Some((i, _)) => (&v[..i], &v[i..]),
            None => (v, ""),
        };
        let multiplier: Option<u64> = match unit.to_ascii_uppercase().as_str() {
            "" => Some(1),
            "K" | "KB" | "KIB" => Some(1 << 10),
            "M" | "MB" | "MIB" => Some(1 << 20),
            "G" | "GB" | "GIB" => Some(1 << 30),
            _ => None,
        };
        match (digits.parse::<u64>(), multiplier) {
            (Ok(n), Some(m)) if n > 0 && n.checked_mul(m).is_some() => n * m,
            _ => {
                self.bad(
                    name,
                    "must be a size in bytes above 0, optionally with K, M or G (such as 10M)",
                );
                default
            }
        }
    }
}

impl Settings {
    /// Parse every setting of `config`. All problems are reported in one error (one line
    /// each), naming the service, the setting, the file, the value and the rule.
    pub fn parse(config: &ServiceConfig) -> Result<Settings> {
        match Settings::read(config) {
            (settings, None) => Ok(settings),
            (_, Some(err)) => Err(err),
        }
    }

    /// Like `parse`, but also gives the settings with a default in place of each bad
    /// value: enough to stop a running service whose config has since gone wrong.
    pub fn read(config: &ServiceConfig) -> (Settings, Option<Error>) {
        let mut r = Reader {
            config,
            problems: Vec::new(),
        };
        let d = Settings::default();
        // Settings are text (service_flags too: it is split with sh quoting rules). A
        // value that is not UTF-8 reads as unset below, so it is reported here.
        for name in KNOWN.iter().copied().chain([
            envars::REQUIRED_LIST,
            envars::OPTIONAL_LIST,
            "PLAYPEN_TAG",
        ]) {
            if let Some(raw) = config.not_text(name) {
                let origin = r.origin(name);
                r.problems.push(format!(
                    "{name}={}{origin}: must be UTF-8 text (settings are read as text; bytes that are not UTF-8 can reach a program through a variable of its environment instead)",
                    bytes::quoted(raw)
                ));
            }
        }
        let flags = match config.get("service_flags") {
            None => Vec::new(),
            Some(text) => match shell_words::split(text) {
                Ok(words) => words,
                Err(e) => {
                    r.bad(
                        "service_flags",
                        &format!("cannot be split with sh quoting rules ({e}): balance the quotes"),
                    );
                    Vec::new()
                }
            },
        };
        let pidfile = match (
            r.switch("service_makes_own_pidfile", false),
            r.switch("service_no_pidfile", false),
        ) {
            (false, false) => PidfileMode::Servicectl,
            (true, false) => PidfileMode::Program,
            (false, true) => PidfileMode::None,
            (true, true) => {
                r.missing(format!(
                    "service_makes_own_pidfile=1{} and service_no_pidfile=1{} contradict each other: set one of them",
                    r.origin("service_makes_own_pidfile"),
                    r.origin("service_no_pidfile")
                ));
                PidfileMode::Servicectl
            }
        };
        let scripts = Scripts {
            start: r.value("service_start").map(str::to_string),
            stop: r.value("service_stop").map(str::to_string),
            restart: r.value("service_restart").map(str::to_string),
            ping: r.value("service_ping").map(str::to_string),
        };
        if pidfile == PidfileMode::None && scripts.start.is_some() && scripts.stop.is_none() {
            r.missing(format!(
                "service_no_pidfile=1{} with service_start needs a service_stop script: without a pidfile servicectl cannot know the PID to signal",
                r.origin("service_no_pidfile")
            ));
        }
        let config_style = match r.value("service_config_style") {
            None | Some("underscores" | "sub-conf" | "default") => Style::Underscores,
            Some("envsubst") => Style::Envsubst,
            Some(_) => {
                r.bad(
                    "service_config_style",
                    "must be envsubst (${NAME} placeholders) or unset (__NAME__ placeholders)",
                );
                Style::Underscores
            }
        };
        let restart_policy = match r.value("service_restart_policy") {
            None | Some("none" | "never") => RestartPolicy::Never,
            Some("unlimited" | "always") => RestartPolicy::Always,
            Some(v) => match v.parse::<u32>() {
                Ok(n) => RestartPolicy::Times(n),
                Err(_) => {
                    r.bad(
                        "service_restart_policy",
                        "must be none, unlimited, or a number of restarts such as 3",
                    );
                    RestartPolicy::Never
                }
            },
        };
        let depends = r.list("service_depends");
        let declared_init = matches!(r.value("service_type"), None | Some("init" | "oneshot"));
        let service_type = match r.value("service_type") {
            None | Some("init") => ServiceType::Init,
            Some("cron") => cron(&mut r).map_or(ServiceType::Init, ServiceType::Cron),
            Some("inetd") => inetd(&mut r).map_or(ServiceType::Init, ServiceType::Inetd),
            Some("oneshot") => ServiceType::Oneshot,
            Some(_) => {
                r.bad(
                    "service_type",
                    "must be init (a daemon), oneshot (run once to completion), cron or inetd",
                );
                ServiceType::Init
            }
        };
        let oneshot = service_type == ServiceType::Oneshot;
        let ready = readiness(&mut r, oneshot);
        let health = Health {
            interval: r.seconds("service_health_interval", d.health.interval),
            timeout: r.seconds("service_health_timeout", d.health.timeout),
            retries: r.count("service_health_retries", d.health.retries, 1),
        };
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
            if !ready.is_probe() {
                r.bad(
                    "service_health_interval",
                    "health checks repeat a ping, tcp or http check: service_ready must be unset (the ping), tcp or http",
                );
            }
        }
        let watchdog = match r.value("service_watchdog_sec") {
            None => None,
            Some(_) => {
                let secs = r.seconds("service_watchdog_sec", Duration::ZERO);
                if secs.is_zero() { None } else { Some(secs) }
            }
        };
        // Both name the linkfarm symlink, `var/linkfarm/$RUN_NAME[-$PLAYPEN_TAG]`: they
        // follow the one name rule, so that neither can leave var/linkfarm/.
        let run_name = r.value("service_run_name").map(str::to_string);
        if let Some(why) = run_name.as_deref().and_then(names::problem) {
            r.bad(
                "service_run_name",
                &format!("is not a run name: {why} ({})", names::RULE),
            );
        }
        if let Some(why) = config
            .get("PLAYPEN_TAG")
            .filter(|t| !t.is_empty())
            .and_then(names::problem)
        {
            r.bad(
                "PLAYPEN_TAG",
                &format!("is not a playpen tag: {why} ({})", names::RULE),
            );
        }
        let settings = Settings {
            program: r.value("service_program").map(str::to_string),
            run_name,
            flags,
            hooks: Hooks {
                pre_start: r.text("service_pre_start"),
                post_start: r.text("service_post_start"),
                pre_stop: r.text("service_pre_stop"),
                post_stop: r.text("service_post_stop"),
            },
            scripts,
            pidfile,
            symlink: !r.switch("service_no_symlink", false),
            hup: r.switch("service_hup", false),
            config_files: r.list("service_config_files"),
            config_style,
            depends,
            packages: r.list("service_packages"),
            restart_delay: r.seconds("service_restart_delay", d.restart_delay),
            halt_timeout: r.seconds("service_halt_timeout", d.halt_timeout),
            start_grace: r.seconds("service_start_grace", d.start_grace),
            pidfile_timeout: r.seconds("service_pidfile_timeout", d.pidfile_timeout),
            // service_depends_timeout is its old name, still accepted.
            depends_timeout: if r.value("service_ready_timeout").is_some() {
                r.seconds("service_ready_timeout", d.depends_timeout)
            } else {
                r.seconds("service_depends_timeout", d.depends_timeout)
            },
            upgrade: UpgradeFlags {
                restart_on_dep_upgrade: r.switch("service_restart_on_dep_upgrade", true),
                stop_before_dep_upgrade: r.switch("service_stop_before_dep_upgrade", true),
                stop_before_upgrade: r.switch("service_stop_before_upgrade", true),
            },
            filedep: Filedep {
                stop_on_change: r.switch("service_stop_on_filedep", false),
                files: r.list("service_filedep"),
            },
            java: Java {
                jardirs: r.list("service_java_jardirs"),
                jars: r.list("service_java_jars"),
            },
            restart_policy,
            fail_fast: r.switch("service_fail_fast", false),
            restart_backoff_max: r.seconds("service_restart_backoff_max", d.restart_backoff_max),
            log: LogRotation {
                max_bytes: r.bytes("service_log_max_bytes", d.log.max_bytes),
                keep: r.count("service_log_keep", d.log.keep, 0),
            },
            ready,
            health,
            watchdog,
            service_type,
        };
        if settings.program.is_none() && settings.scripts.start.is_none() && declared_init {
            r.missing(format!(
                "no service_program is set in {}: set service_program (or service_start) in the service's config",
                config.fragment_list()
            ));
        }
        let problem = match r.problems.as_slice() {
            [] => None,
            [one] => Some(
                Error::config(one.clone())
                    .with_service(config.name())
                    .with_hint("fix the setting in the service's config"),
            ),
            many => Some(
                Error::config(format!(
                    "{} problems with settings:\n  {}",
                    many.len(),
                    many.join("\n  ")
                ))
                .with_service(config.name())
                .with_hint("fix the settings in the service's config"),
            ),
        };
        (settings, problem)
    }

    pub fn is_init(&self) -> bool {
        self.service_type == ServiceType::Init
    }
}

/// service_ready, checked as far as the settings alone allow (a VAR that is a typed
/// port of the service is checked with the typed variables, in the audit).
fn readiness(r: &mut Reader, oneshot: bool) -> Ready {
    const RULE: &str = "must be notify, tcp, tcp:VAR, http:VAR/PATH, log:REGEX, exit (one-shot services) or unset (the ping)";
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
                let first = e.to_string().lines().last().unwrap_or_default().to_string();
                r.bad(
                    "service_ready",
                    &format!("the log: pattern is not a valid regex ({})", first.trim()),
                );
                return Ready::Ping;
            }
        },
        _ => None,
    };
    match ready {
        None => {
            r.bad("service_ready", RULE);
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

fn cron(r: &mut Reader) -> Option<CronSettings> {
    let schedule = match r.value("service_cron_time") {
        None => {
            r.missing(
                "service_type=cron needs service_cron_time (a 5-field crontab schedule such as `*/5 * * * *`, or @hourly …)".to_string(),
            );
            None
        }
        Some(text) => match parse_cron(text) {
            Ok(s) => Some(s),
            Err(rule) => {
                r.bad("service_cron_time", &rule);
                None
            }
        },
    };
    let command = r.text("service_cron_command");
    if command.is_none() {
        r.missing(
            "service_type=cron needs service_cron_command (the sh command to run on schedule)"
                .to_string(),
        );
    }
    Some(CronSettings {
        schedule: schedule?,
        command: command?,
    })
}

/// The crontab field names, in order, for messages.
const CRON_FIELDS: [&str; 5] = ["minute", "hour", "day of month", "month", "day of week"];

/// Validate a schedule as Debian's cron reads it: 5 fields (or an alias), names for
/// months and weekdays, day-of-month and day-of-week joined by OR.
pub fn parse_cron(text: &str) -> std::result::Result<CronSchedule, String> {
    let text = text.trim();
    if text == "@reboot" {
        return Ok(CronSchedule::WhenArmed);
    }
    if text.starts_with('@') {
        return match text {
            "@yearly" | "@annually" | "@monthly" | "@weekly" | "@daily" | "@midnight"
            | "@hourly" => Ok(CronSchedule::Expression(text.to_string())),
            _ => Err(
                "is not a known alias: use @reboot, @hourly, @daily, @weekly, @monthly or @yearly"
                    .to_string(),
            ),
        };
    }
    let fields: Vec<&str> = text.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "has {} field(s); a schedule has 5: minute hour day-of-month month day-of-week",
            fields.len()
        ));
    }
    if cron_parser().parse(text).is_ok() {
        return Ok(CronSchedule::Expression(text.to_string()));
    }
    // Name the field that is wrong: the first one whose replacement by `*` makes the
    // expression valid.
    for (i, field) in CRON_FIELDS.iter().enumerate() {
        let mut trial = fields.clone();
        trial[i] = "*";
        if cron_parser().parse(&trial.join(" ")).is_ok() {
            return Err(format!(
                "its {field} field {:?} is not valid (lists, ranges, steps and names such as MON or JAN are allowed)",
                fields[i]
            ));
        }
    }
    Err("is not a valid 5-field schedule (minute hour day-of-month month day-of-week)".to_string())
}

/// Five fields, no seconds, day-of-month OR day-of-week (as cron has it).
pub fn cron_parser() -> croner::parser::CronParser {
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Disallowed)
        .year(croner::parser::Year::Disallowed)
        .dom_and_dow(false)
        .build()
}

fn inetd(r: &mut Reader) -> Option<InetdSettings> {
    let protocol = match r.value("service_protocol") {
        None | Some("tcp") => Some(Protocol::Tcp),
        Some("udp") => Some(Protocol::Udp),
        Some(_) => {
            r.bad("service_protocol", "must be tcp or udp");
            None
        }
    };
    let bind = match r.value("service_bind") {
        None => Some(defaults::BIND.parse().expect("valid address")),
        Some(v) => match v
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            Ok(ip) => Some(ip),
            Err(_) => {
                r.bad(
                    "service_bind",
                    "must be an IP address such as 127.0.0.1, 0.0.0.0 or ::1",
                );
                None
            }
        },
    };
    let port = match r.value("service_port") {
        None => {
            r.missing("service_type=inetd needs service_port (a port number, or the name of a typed port variable)".to_string());
            None
        }
        Some(v) if v.bytes().all(|b| b.is_ascii_digit()) => match v.parse::<u16>() {
            Ok(n) if n > 0 => Some(PortSetting::Number(n)),
            _ => {
                r.bad("service_port", "must be a port from 1 to 65535");
                None
            }
        },
        Some(v) => {
            let is_port_var = envars::specs(r.config)
                .iter()
                .any(|s| s.name == v && s.effective_type() == Some(VarType::Port));
            if is_port_var {
                Some(PortSetting::Variable(v.to_string()))
            } else {
                r.bad(
                    "service_port",
                    "must be a port from 1 to 65535, or the name of a port variable listed in service_required_envars or service_optional_envars",
                );
                None
            }
        }
    };
    let command = match r
        .config
        .get("service_inetd_command")
        .filter(|c| !c.trim().is_empty())
    {
        None => {
            r.missing(
                "service_type=inetd needs service_inetd_command (the program to run per connection, with its arguments)".to_string(),
            );
            None
        }
        Some(text) => match shell_words::split(text) {
            Ok(words) => Some(words),
            Err(e) => {
                r.bad(
                    "service_inetd_command",
                    &format!("cannot be split with sh quoting rules ({e}): balance the quotes"),
                );
                None
            }
        },
    };
    let max_handlers = r.count("service_inetd_max", defaults::INETD_MAX, 1);
    Some(InetdSettings {
        protocol: protocol?,
        bind: bind?,
        port: port?,
        command: command?,
        max_handlers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Origin, Value, Vars};
    use crate::playpen::catalog::ServiceId;
    use std::path::PathBuf;

    fn config(pairs: &[(&str, &str)]) -> ServiceConfig {
        let mut vars = Vars::new();
        for (k, v) in pairs {
            vars.insert(
                k.to_string(),
                Value {
                    value: v.into(),
                    exported: false,
                    origin: Origin::File(PathBuf::from("/p/ext/services/web-1.0/config")),
                },
            );
        }
        ServiceConfig {
            id: ServiceId {
                name: "web".into(),
                version: Some("1.0".into()),
            },
            fragments: vec![PathBuf::from("/p/ext/services/web-1.0/config")],
            vars,
        }
    }

    fn parse(pairs: &[(&str, &str)]) -> Result<Settings> {
        let mut all = vec![("service_program", "sleep")];
        all.extend_from_slice(pairs);
        Settings::parse(&config(&all))
    }

    /// The one problem of a bad value names the service, setting, file, value and rule.
    fn problem(pairs: &[(&str, &str)]) -> String {
        let err = parse(pairs).expect_err("must be rejected");
        assert_eq!(err.service.as_deref(), Some("web"));
        err.message.clone()
    }

    #[test]
    fn a_setting_that_is_not_utf8_is_a_problem_naming_it() {
        use std::os::unix::ffi::OsStringExt;
        for name in ["service_flags", "service_halt_timeout", "service_run_name"] {
            let mut c = config(&[("service_program", "sleep")]);
            c.vars.insert(
                name.into(),
                Value {
                    value: std::ffi::OsString::from_vec(b"10\xff".to_vec()),
                    exported: false,
                    origin: Origin::File(PathBuf::from("/p/services/web/config")),
                },
            );
            let err = Settings::parse(&c).expect_err("must be rejected");
            assert_eq!(
                err.message,
                format!(
                    "{name}=\"10\\xFF\" (set in /p/services/web/config): must be UTF-8 text (settings are read as text; bytes that are not UTF-8 can reach a program through a variable of its environment instead)"
                )
            );
        }
    }

    #[test]
    fn defaults_when_nothing_is_set() {
        let s = parse(&[]).unwrap();
        assert_eq!(
            s,
            Settings {
                program: Some("sleep".into()),
                ..Settings::default()
            }
        );
        assert_eq!(s.halt_timeout, Duration::from_secs(10));
        assert_eq!(s.restart_policy, RestartPolicy::Never);
        assert_eq!(s.log.max_bytes, 10 << 20);
    }

    #[test]
    fn a_bad_value_names_setting_file_value_and_rule() {
        let m = problem(&[("service_restart_policy", "sometimes")]);
        assert!(m.starts_with("service_restart_policy=\"sometimes\""), "{m}");
        assert!(m.contains("(set in /p/ext/services/web-1.0/config)"), "{m}");
        assert!(m.contains("none, unlimited, or a number"), "{m}");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let err = parse(&[
            ("service_hup", "maybe"),
            ("service_halt_timeout", "-1"),
            ("service_flags", "'open"),
        ])
        .unwrap_err();
        assert!(err.message.starts_with("3 problems"), "{}", err.message);
        for setting in ["service_hup=", "service_halt_timeout=", "service_flags="] {
            assert!(err.message.contains(setting), "{}", err.message);
        }
    }

    #[test]
    fn switches() {
        assert!(parse(&[("service_hup", "yes")]).unwrap().hup);
        assert!(!parse(&[("service_hup", "0")]).unwrap().hup);
        assert!(!parse(&[("service_hup", "")]).unwrap().hup);
        assert!(problem(&[("service_hup", "2")]).contains("must be 1 (on) or 0 (off)"));
        for name in [
            "service_makes_own_pidfile",
            "service_no_pidfile",
            "service_no_symlink",
            "service_stop_on_filedep",
            "service_restart_on_dep_upgrade",
            "service_stop_before_dep_upgrade",
            "service_stop_before_upgrade",
            "service_fail_fast",
        ] {
            let m = problem(&[(name, "perhaps")]);
            assert!(m.starts_with(&format!("{name}=\"perhaps\"")), "{m}");
        }
    }

    #[test]
    fn durations() {
        let s = parse(&[
            ("service_halt_timeout", "2.5"),
            ("service_restart_delay", "1"),
        ])
        .unwrap();
        assert_eq!(s.halt_timeout, Duration::from_millis(2500));
        assert_eq!(s.restart_delay, Duration::from_secs(1));
        for name in [
            "service_halt_timeout",
            "service_restart_delay",
            "service_start_grace",
            "service_pidfile_timeout",
            "service_depends_timeout",
            "service_restart_backoff_max",
        ] {
            for bad in ["soon", "-1", "inf", "NaN"] {
                let m = problem(&[(name, bad)]);
                assert!(
                    m.contains("must be a number of seconds"),
                    "{name}={bad}: {m}"
                );
            }
        }
    }

    #[test]
    fn flags_are_split_with_sh_quoting() {
        let s = parse(&[("service_flags", r#"-c "a b" 'c d' e\ f"#)]).unwrap();
        assert_eq!(s.flags, ["-c", "a b", "c d", "e f"]);
        assert!(problem(&[("service_flags", "-c 'unbalanced")]).contains("balance the quotes"));
    }

    #[test]
    fn restart_policy() {
        assert_eq!(
            parse(&[("service_restart_policy", "none")])
                .unwrap()
                .restart_policy,
            RestartPolicy::Never
        );
        assert_eq!(
            parse(&[("service_restart_policy", "5")])
                .unwrap()
                .restart_policy,
            RestartPolicy::Times(5)
        );
        assert_eq!(
            parse(&[("service_restart_policy", "unlimited")])
                .unwrap()
                .restart_policy,
            RestartPolicy::Always
        );
        assert!(problem(&[("service_restart_policy", "-2")]).contains("number of restarts"));
    }

    #[test]
    fn pidfile_modes() {
        assert_eq!(
            parse(&[("service_makes_own_pidfile", "1")])
                .unwrap()
                .pidfile,
            PidfileMode::Program
        );
        assert_eq!(
            parse(&[("service_no_pidfile", "1"), ("service_ping", "p")])
                .unwrap()
                .pidfile,
            PidfileMode::None
        );
        assert!(
            problem(&[
                ("service_makes_own_pidfile", "1"),
                ("service_no_pidfile", "1")
            ])
            .contains("contradict")
        );
        assert!(
            problem(&[("service_no_pidfile", "1"), ("service_start", "s")])
                .contains("needs a service_stop script")
        );
    }

    #[test]
    fn program_or_start_script_is_required() {
        let err = Settings::parse(&config(&[])).unwrap_err();
        assert!(
            err.message
                .contains("no service_program is set in /p/ext/services/web-1.0/config"),
            "{}",
            err.message
        );
        assert!(Settings::parse(&config(&[("service_start", "start.sh")])).is_ok());
    }

    #[test]
    fn service_type_and_config_style() {
        assert_eq!(
            problem(&[("service_type", "forking")]),
            "service_type=\"forking\" (set in /p/ext/services/web-1.0/config): must be init (a daemon), oneshot (run once to completion), cron or inetd"
        );
        let oneshot = parse(&[("service_type", "oneshot")]).unwrap();
        assert_eq!(oneshot.service_type, ServiceType::Oneshot);
        assert_eq!(oneshot.ready, Ready::Exit);
        assert!(problem(&[("service_config_style", "jinja")]).contains("must be envsubst"));
        assert_eq!(
            parse(&[("service_config_style", " envsubst ")])
                .unwrap()
                .config_style,
            Style::Envsubst
        );
        assert_eq!(
            parse(&[("service_config_style", "sub-conf")])
                .unwrap()
                .config_style,
            Style::Underscores
        );
    }

    #[test]
    fn readiness_health_and_watchdog() {
        let ready = |v: &str| parse(&[("service_ready", v)]).map(|s| s.ready);
        assert_eq!(parse(&[]).unwrap().ready, Ready::Ping);
        assert_eq!(ready("notify").unwrap(), Ready::Notify);
        assert_eq!(ready("tcp").unwrap(), Ready::Tcp(None));
        assert_eq!(
            ready("tcp:WEB_PORT").unwrap(),
            Ready::Tcp(Some("WEB_PORT".into()))
        );
        assert_eq!(
            ready("http:WEB_PORT/health/live").unwrap(),
            Ready::Http {
                var: "WEB_PORT".into(),
                path: "/health/live".into()
            }
        );
        assert_eq!(
            ready("http:WEB_PORT").unwrap(),
            Ready::Http {
                var: "WEB_PORT".into(),
                path: "/".into()
            }
        );
        assert_eq!(
            ready("log:listening on \\d+").unwrap(),
            Ready::Log("listening on \\d+".into())
        );
        for bad in ["systemd", "tcp:", "http:/x", "log:", "tcp:9PORT"] {
            assert_eq!(
                problem(&[("service_ready", bad)]),
                format!(
                    "service_ready={bad:?} (set in /p/ext/services/web-1.0/config): must be notify, tcp, tcp:VAR, http:VAR/PATH, log:REGEX, exit (one-shot services) or unset (the ping)"
                )
            );
        }
        assert!(problem(&[("service_ready", "log:(unclosed")])
            .starts_with("service_ready=\"log:(unclosed\" (set in /p/ext/services/web-1.0/config): the log: pattern is not a valid regex ("));
        assert!(problem(&[("service_ready", "exit")]).contains("exit is for one-shot services"));
        assert!(
            problem(&[("service_type", "oneshot"), ("service_ready", "notify")])
                .contains("a one-shot service is ready when it exits with status 0")
        );
        // The new name wins; the old one is still read.
        let t = |pairs: &[(&str, &str)]| parse(pairs).unwrap().depends_timeout;
        assert_eq!(
            t(&[("service_depends_timeout", "7")]),
            Duration::from_secs(7)
        );
        assert_eq!(
            t(&[
                ("service_depends_timeout", "7"),
                ("service_ready_timeout", "9")
            ]),
            Duration::from_secs(9)
        );
        let h = parse(&[
            ("service_health_interval", "10"),
            ("service_health_timeout", "2"),
            ("service_health_retries", "4"),
        ])
        .unwrap()
        .health;
        assert_eq!(
            h,
            Health {
                interval: Duration::from_secs(10),
                timeout: Duration::from_secs(2),
                retries: 4
            }
        );
        assert!(
            problem(&[("service_health_interval", "5")])
                .contains("must be longer than service_health_timeout=5")
        );
        assert!(
            problem(&[
                ("service_health_interval", "10"),
                ("service_ready", "notify")
            ])
            .contains("health checks repeat a ping, tcp or http check")
        );
        assert!(
            problem(&[("service_health_retries", "0")])
                .contains("must be a whole number, 1 or more")
        );
        assert_eq!(
            parse(&[("service_watchdog_sec", "2.5")]).unwrap().watchdog,
            Some(Duration::from_millis(2500))
        );
        assert_eq!(
            parse(&[("service_watchdog_sec", "0")]).unwrap().watchdog,
            None
        );
    }

    #[test]
    fn log_rotation() {
        let s = parse(&[("service_log_max_bytes", "5M"), ("service_log_keep", "0")]).unwrap();
        assert_eq!(
            s.log,
            LogRotation {
                max_bytes: 5 << 20,
                keep: 0
            }
        );
        for bad in ["0", "ten", "5T", "-1"] {
            assert!(
                problem(&[("service_log_max_bytes", bad)]).contains("size in bytes"),
                "{bad}"
            );
        }
        assert!(problem(&[("service_log_keep", "many")]).contains("whole number, 0 or more"));
    }

    #[test]
    fn cron_schedules() {
        let cron = |time: &str| {
            parse(&[
                ("service_type", "cron"),
                ("service_cron_time", time),
                ("service_cron_command", "date"),
            ])
        };
        for good in [
            "* * * * *",
            "*/5 1-3,7 * JAN-MAR mon-fri",
            "0 0 1 * SUN",
            "@hourly",
            "@daily",
            "@weekly",
            "@monthly",
            "@yearly",
        ] {
            let s = cron(good).unwrap_or_else(|e| panic!("{good}: {e}"));
            assert!(matches!(s.service_type, ServiceType::Cron(_)));
        }
        assert!(matches!(
            cron("@reboot").unwrap().service_type,
            ServiceType::Cron(CronSettings {
                schedule: CronSchedule::WhenArmed,
                ..
            })
        ));
        let m = cron("61 * * * *").unwrap_err().message;
        assert!(m.contains("minute field \"61\""), "{m}");
        let m = cron("* * * 13 *").unwrap_err().message;
        assert!(m.contains("month field \"13\""), "{m}");
        let m = cron("* * * * FUNDAY").unwrap_err().message;
        assert!(m.contains("day of week field"), "{m}");
        assert!(
            cron("* * *")
                .unwrap_err()
                .message
                .contains("has 3 field(s)")
        );
        assert!(
            cron("@sometimes")
                .unwrap_err()
                .message
                .contains("not a known alias")
        );
        let m = parse(&[("service_type", "cron")]).unwrap_err().message;
        assert!(
            m.contains("needs service_cron_time") && m.contains("needs service_cron_command"),
            "{m}"
        );
    }

    #[test]
    fn inetd_settings() {
        let inetd = |extra: &[(&str, &str)]| {
            let mut pairs = vec![
                ("service_type", "inetd"),
                ("service_port", "8080"),
                ("service_inetd_command", "bin/handler --fast"),
            ];
            pairs.extend_from_slice(extra);
            parse(&pairs)
        };
        let ServiceType::Inetd(s) = inetd(&[]).unwrap().service_type else {
            panic!("not inetd");
        };
        assert_eq!(s.port, PortSetting::Number(8080));
        assert_eq!(s.protocol, Protocol::Tcp);
        assert_eq!(s.bind.to_string(), "127.0.0.1");
        assert_eq!(s.command, ["bin/handler", "--fast"]);
        assert_eq!(s.max_handlers, 64);
        let ServiceType::Inetd(s) = inetd(&[("service_bind", "::1"), ("service_protocol", "udp")])
            .unwrap()
            .service_type
        else {
            panic!("not inetd");
        };
        assert_eq!(
            (s.bind.to_string().as_str(), s.protocol),
            ("::1", Protocol::Udp)
        );
        for (name, bad, rule) in [
            ("service_port", "0", "1 to 65535"),
            ("service_port", "70000", "1 to 65535"),
            ("service_port", "WEB_PORT", "name of a port variable"),
            ("service_protocol", "sctp", "tcp or udp"),
            ("service_bind", "localhost:80", "IP address"),
            ("service_inetd_max", "0", "1 or more"),
            ("service_inetd_command", "'x", "balance the quotes"),
        ] {
            let m = inetd(&[(name, bad)]).unwrap_err().message;
            assert!(m.contains(rule) && m.contains(name), "{name}={bad}: {m}");
        }
        let typed = inetd(&[
            ("service_port", "WEB_PORT"),
            ("service_optional_envars", "WEB_PORT"),
        ])
        .unwrap();
        let ServiceType::Inetd(s) = typed.service_type else {
            panic!()
        };
        assert_eq!(s.port, PortSetting::Variable("WEB_PORT".into()));
        let m = parse(&[("service_type", "inetd")]).unwrap_err().message;
        assert!(
            m.contains("needs service_port") && m.contains("needs service_inetd_command"),
            "{m}"
        );
    }
}

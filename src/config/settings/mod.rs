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
//!
//! Every setting is declared once, in [`table`]: name, field, kind (parser and rule),
//! default and doc line. `cron` and `inetd` read the settings of those service types.

mod cron;
mod inetd;
mod readiness;
pub mod table;
mod user;
mod watch;

pub use readiness::{Health, READY_RULE, Ready};
pub use watch::{WATCH_RULE, Watch};

pub use cron::{cron_parser, parse_cron};
pub use table::{Row, TABLE};

use crate::config::ServiceConfig;
use crate::config::bytes;
use crate::config::envars;
use crate::config::problem::{self, Problem};
use crate::config::template::Style;
use crate::error::{Error, Result};
use crate::playpen::names;
use crate::process::user::RunAs;
use std::net::IpAddr;
use std::time::Duration;
use table::Kind;

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
    /// service_watch, service_watch_delay: restart on change.
    pub watch: Watch,
    /// service_user (and service_group): who its processes run as; None: the caller.
    pub user: Option<RunAs>,
}

impl Default for Settings {
    /// What a service gets when its fragments set nothing (also the settings of a
    /// service whose config does not evaluate): the defaults of [`TABLE`].
    fn default() -> Settings {
        let mut settings = Settings {
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
            halt_timeout: Duration::ZERO,
            start_grace: Duration::ZERO,
            pidfile_timeout: Duration::ZERO,
            depends_timeout: Duration::ZERO,
            upgrade: UpgradeFlags {
                restart_on_dep_upgrade: false,
                stop_before_dep_upgrade: false,
                stop_before_upgrade: false,
            },
            filedep: Filedep::default(),
            java: Java::default(),
            restart_policy: RestartPolicy::Never,
            fail_fast: false,
            restart_backoff_max: Duration::ZERO,
            log: LogRotation {
                max_bytes: 0,
                keep: 0,
            },
            ready: Ready::Ping,
            health: Health {
                interval: Duration::ZERO,
                timeout: Duration::ZERO,
                retries: 0,
            },
            watchdog: None,
            watch: Watch::default(),
            user: None,
        };
        let nothing = ServiceConfig {
            id: crate::playpen::catalog::ServiceId {
                name: String::new(),
                version: None,
            },
            fragments: Vec::new(),
            vars: crate::config::Vars::new(),
        };
        table::read_all(&nothing, &mut settings, &mut |_, _| {
            unreachable!("nothing is set")
        });
        settings
    }
}

/// Reads one service's variables and remembers every problem.
struct Reader<'a> {
    config: &'a ServiceConfig,
    problems: Vec<Problem>,
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

    /// " (set in FILE)", or " (from the environment)".
    fn origin(&self, name: &str) -> String {
        self.config.origin_note(name)
    }

    /// Record that `name`'s value breaks `rule`: `NAME="value" (set in FILE): rule`.
    fn bad(&mut self, name: &str, rule: &str) {
        let value = self.config.get(name).unwrap_or_default();
        let origin = self.origin(name);
        self.missing(format!("{name}={value:?}{origin}: {rule}"));
    }

    /// Record a problem that is about a combination of settings, or a missing one.
    fn missing(&mut self, text: String) {
        self.problems
            .push(Problem::of_setting(self.config.name(), text));
    }

    /// A setting of the table's `by hand` part, read with its kind and default.
    fn get<K: Kind>(&mut self, name: &str) -> K::Value {
        let (value, problem) = table::read_by_hand::<K>(self.config, name);
        if let Some(rule) = problem {
            self.bad(name, rule);
        }
        value
    }

    /// Split with sh quoting rules; None (a problem) when the quotes do not balance.
    fn words(&mut self, name: &str, text: &str) -> Option<Vec<String>> {
        match shell_words::split(text) {
            Ok(words) => Some(words),
            Err(e) => {
                self.bad(
                    name,
                    &format!("cannot be split with sh quoting rules ({e}): balance the quotes"),
                );
                None
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
        // Settings are text (service_flags too: it is split with sh quoting rules). A
        // value that is not UTF-8 reads as unset below, so it is reported here.
        let known = TABLE.iter().map(|row| row.name);
        for name in known.chain([envars::REQUIRED_LIST, envars::OPTIONAL_LIST, "PLAYPEN_TAG"]) {
            if let Some(raw) = config.not_text(name) {
                let origin = r.origin(name);
                r.missing(format!(
                    "{name}={}{origin}: must be UTF-8 text (settings are read as text; bytes that are not UTF-8 can reach a program through a variable of its environment instead)",
                    bytes::quoted(raw)
                ));
            }
        }
        let mut settings = Settings::default();
        table::read_all(config, &mut settings, &mut |name, rule| r.bad(name, rule));
        settings.flags = match config.get("service_flags") {
            None => Vec::new(),
            Some(text) => r.words("service_flags", text).unwrap_or_default(),
        };
        settings.pidfile = pidfile(&mut r);
        if settings.pidfile == PidfileMode::None
            && settings.scripts.start.is_some()
            && settings.scripts.stop.is_none()
        {
            r.missing(format!(
                "service_no_pidfile=1{} with service_start needs a service_stop script: without a pidfile servicectl cannot know the PID to signal",
                r.origin("service_no_pidfile")
            ));
        }
        settings.config_style = match r.value("service_config_style") {
            None | Some("underscores" | "sub-conf" | "default") => Style::Underscores,
            Some("envsubst") => Style::Envsubst,
            Some(_) => {
                r.bad(
                    "service_config_style",
                    table::row("service_config_style").rule,
                );
                Style::Underscores
            }
        };
        settings.restart_policy = match r.value("service_restart_policy") {
            None | Some("none" | "never") => RestartPolicy::Never,
            Some("unlimited" | "always") => RestartPolicy::Always,
            Some(v) => v.parse::<u32>().map_or_else(
                |_| {
                    r.bad(
                        "service_restart_policy",
                        table::row("service_restart_policy").rule,
                    );
                    RestartPolicy::Never
                },
                RestartPolicy::Times,
            ),
        };
        let declared_init = matches!(r.value("service_type"), None | Some("init" | "oneshot"));
        settings.service_type = match r.value("service_type") {
            None | Some("init") => ServiceType::Init,
            Some("oneshot") => ServiceType::Oneshot,
            Some("cron") => cron::read(&mut r).map_or(ServiceType::Init, ServiceType::Cron),
            Some("inetd") => inetd::read(&mut r).map_or(ServiceType::Init, ServiceType::Inetd),
            Some(_) => {
                r.bad("service_type", table::row("service_type").rule);
                ServiceType::Init
            }
        };
        readiness::read(&mut r, &mut settings);
        watch::read(&mut r, &mut settings);
        settings.user = user::read(&mut r);
        // Both name the linkfarm symlink, `var/linkfarm/$RUN_NAME[-$PLAYPEN_TAG]`: they
        // follow the one name rule, so that neither can leave var/linkfarm/.
        if let Some(why) = settings.run_name.as_deref().and_then(names::problem) {
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
        if settings.program.is_none() && settings.scripts.start.is_none() && declared_init {
            r.missing(format!(
                "no service_program is set in {}: set service_program (or service_start) in the service's config",
                config.fragment_list()
            ));
        }
        let hint = if r.problems.len() == 1 {
            "fix the setting in the service's config"
        } else {
            "fix the settings in the service's config"
        };
        let problem = problem::summary(config.name(), "settings", &r.problems, hint.to_string());
        (settings, problem)
    }
}

/// Who writes the pidfile, from service_makes_own_pidfile and service_no_pidfile.
fn pidfile(r: &mut Reader) -> PidfileMode {
    let own = r.get::<table::Switch>("service_makes_own_pidfile");
    let none = r.get::<table::Switch>("service_no_pidfile");
    match (own, none) {
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
    }
}

#[cfg(test)]
mod tests;

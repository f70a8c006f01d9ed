//! `servicectl export systemd [NAME…] [--dir DIR]`: the playpen's services as systemd
//! units, for deployments that outgrow one playpen (docs/deploying.md). The units carry what
//! `servicectl start` would do, read from the typed settings of the prepared services:
//!
//! - `TAG-NAME.service` per daemon: `EnvironmentFile=` with the evaluated environment
//!   (`TAG-NAME.env`), `ExecStart=` through the linkfarm symlink with the service's flags
//!   (the symlink is made now, and again by an `ExecStartPre=`), `WorkingDirectory=` the
//!   playpen, output appended to `var/run/NAME.output`, the templates rendered by
//!   `servicectl sub-conf` and the hooks as `ExecStartPre=` / `ExecStartPost=` /
//!   `ExecStop=` (pre_stop: runs before systemd's SIGTERM) / `ExecStopPost=`, `PIDFile=`
//!   with `Type=forking` when the program writes its own pidfile, `Restart=` and start
//!   limits from service_restart_policy, `TimeoutStopSec=` from service_halt_timeout,
//!   `KillMode=control-group`, `Requires=` / `After=` from service_depends, and
//!   `ExecReload=` (render, pre_start, SIGHUP) with service_hup=1;
//! - cron services as `TAG-NAME.timer` + a oneshot `TAG-NAME.service` (`OnCalendar=`
//!   from service_cron_time, day-of-month and day-of-week ORed as cron does);
//! - inetd tcp services as `TAG-NAME.socket` with `Accept=yes` and a template
//!   `TAG-NAME@.service` (systemd sets REMOTE_ADDR and REMOTE_PORT, as servicectl does);
//!   udp ones as a socket handed to one `TAG-NAME.service`;
//! - `TAG.target`, which wants them all (the services are `PartOf=` it). A service with
//!   service_fail_fast=1 is bound to by the target: when it stops for good, the target
//!   and with it the playpen stop.
//!
//! TAG is PLAYPEN_TAG, else the playpen directory's name.

mod calendar;

use crate::config::session::Session;
use crate::config::settings::{
    CronSchedule, InetdSettings, PidfileMode, PortSetting, Protocol, Ready, RestartPolicy,
    ServiceType,
};
use crate::error::{Error, Result};
use crate::playpen::Playpen;
use crate::process::linkfarm;
use crate::service::hooks::{self, Hook, Runnable};
use crate::service::lifecycle;
use crate::service::prepare::{Prepared, Stage, prepare};
pub use calendar::on_calendar;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
pub(crate) use syntax::{env_value, exec_line, setting_path, unit_word};

mod syntax;

/// What was written.
#[derive(Debug, Clone, Serialize)]
pub struct Exported {
    pub dir: PathBuf,
    pub target: String,
    /// Every file written, units and environment files, in order.
    pub files: Vec<PathBuf>,
}

/// The default directory of the units: var/export/systemd/.
pub fn default_dir(playpen: &Playpen) -> PathBuf {
    playpen.var().join("export/systemd")
}

/// Export the named services (and what they depend on), else the role's.
pub fn systemd(session: &mut Session, names: &[String], dir: Option<&Path>) -> Result<Exported> {
    let targets = session.targets(names)?;
    let targets = session.with_dependencies(&targets)?;
    let preparation = prepare(session, &targets);
    let problems = preparation.errors(&[Stage::Evaluation, Stage::Settings, Stage::Variables]);
    if let Some(err) = problems
        .into_values()
        .chain(preparation.unknown.values().cloned())
        .next()
    {
        return Err(err);
    }
    let playpen = session.playpen.clone();
    let dir = match dir {
        Some(d) if d.is_absolute() => d.to_path_buf(),
        Some(d) => std::env::current_dir()
            .map_err(|e| Error::io("find the working directory", Path::new("."), e))?
            .join(d),
        None => default_dir(&playpen),
    };
    crate::playpen::fsutil::ensure_dir(&dir)?;
    let prepared: Vec<&Prepared> = targets
        .iter()
        .filter_map(|n| preparation.prepared.get(n))
        .collect();
    let tag = prepared
        .iter()
        .find_map(|p| {
            p.env
                .get("PLAYPEN_TAG")
                .and_then(|t| t.to_str())
                .filter(|t| !t.is_empty())
                .map(str::to_string)
        })
        .unwrap_or_else(|| {
            playpen
                .root
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "playpen".into())
        });
    let tag = unit_word(&tag);
    let exporter = Exporter {
        playpen: &playpen,
        dir: dir.clone(),
        tag: &tag,
        servicectl: std::env::current_exe()
            .map_err(|e| Error::io("find the servicectl binary", Path::new("/proc/self/exe"), e))?,
        exported: targets.clone(),
    };
    let mut files: Vec<(String, String)> = Vec::new();
    let mut wants = Vec::new();
    let mut binds = Vec::new();
    for p in &prepared {
        let units = exporter.units(p)?;
        wants.push(units.wanted.clone());
        if p.settings.fail_fast {
            binds.push(units.wanted.clone());
        }
        files.extend(units.files);
    }
    files.push((format!("{tag}.target"), exporter.target(&wants, &binds)));
    let mut written = Vec::new();
    for (name, text) in files {
        let path = dir.join(&name);
        let mode = if name.ends_with(".env") { 0o600 } else { 0o644 };
        crate::playpen::fsutil::write_atomic(&path, text.as_bytes(), Some(mode))?;
        written.push(path);
    }
    Ok(Exported {
        dir,
        target: format!("{tag}.target"),
        files: written,
    })
}

/// The `Exec*=` prefix of servicectl's own steps (the symlink, sub-conf) in the unit
/// of a service with service_user: `+` runs them as root, since they write var/,
/// which stays root's.
fn privileged(p: &Prepared) -> &'static str {
    if p.settings.user.is_some() { "+" } else { "" }
}

struct Exporter<'a> {
    playpen: &'a Playpen,
    /// Where the units and environment files are written.
    dir: PathBuf,
    tag: &'a str,
    servicectl: PathBuf,
    exported: Vec<String>,
}

/// The files of one service and the unit the target wants.
struct Units {
    files: Vec<(String, String)>,
    wanted: String,
}

impl Exporter<'_> {
    fn unit(&self, service: &str, suffix: &str) -> String {
        format!("{}-{}{suffix}", self.tag, unit_word(service))
    }

    /// The environment file: what the program, hooks and scripts see, without what
    /// servicectl inherited from the shell it ran in (PLAYPEN_TAG and PORT_PREFIX kept).
    fn environment(&self, p: &Prepared) -> String {
        let mut out = format!(
            "# The environment of {} as servicectl evaluated it (servicectl export systemd).\n",
            p.name()
        );
        for (k, v) in &p.env {
            let inherited = p
                .config
                .vars
                .get(k)
                .is_some_and(|v| v.origin == crate::config::Origin::Environment);
            if inherited && k != "PLAYPEN_TAG" && k != "PORT_PREFIX" {
                continue;
            }
            // Unit files are UTF-8: a value that is not is written as close as it gets.
            let _ = writeln!(out, "{k}={}", env_value(&v.to_string_lossy()));
        }
        out
    }

    /// `[Unit]` lines shared by every unit of a service.
    fn unit_section(&self, p: &Prepared, what: &str) -> String {
        let mut out = format!(
            "# Made by `servicectl export systemd` from the playpen {}.\n[Unit]\nDescription={} {what} of the playpen {}\nPartOf={}.target\n",
            self.playpen.root.display(),
            p.name(),
            setting_path(&self.playpen.root),
            self.tag
        );
        for dep in &p.settings.depends {
            if dep != p.name() && self.exported.contains(dep) {
                let unit = self.unit(dep, ".service");
                let _ = writeln!(out, "Requires={unit}\nAfter={unit}");
            }
        }
        out
    }

    /// `[Service]` lines shared by every service unit: environment, directory, output.
    fn common_service(&self, p: &Prepared, env_file: &str, output: bool) -> String {
        let name = p.name();
        let mut out = format!(
            "EnvironmentFile={}\nWorkingDirectory={}\n",
            setting_path(&self.dir.join(env_file)),
            setting_path(&self.playpen.root)
        );
        // systemd sets HOME, USER and LOGNAME itself for User=.
        if let Some(user) = &p.settings.user {
            let _ = writeln!(out, "User={}\nGroup={}", user.user, user.group);
        }
        let log = setting_path(&self.playpen.output_file(name));
        if output {
            let _ = writeln!(out, "StandardOutput=append:{log}");
        }
        let _ = writeln!(out, "StandardError=append:{log}");
        out
    }

    /// A hook as an `Exec*=` command line, run as servicectl runs it: the sh command
    /// string with NAME VERSION as $1 $2, or the package's script with NAME VERSION.
    fn hook(&self, p: &Prepared, hook: Hook) -> Option<String> {
        let id = &p.config.id;
        let command = hook.command(&p.settings.hooks);
        let mut words = match hooks::find_hook(self.playpen, id, command, hook)? {
            Runnable::Shell(cmd) => vec!["/bin/sh".into(), "-c".into(), cmd, id.name.clone()],
            Runnable::Script(path) => vec![path.display().to_string()],
        };
        words.push(id.name.clone());
        words.extend(id.version.clone());
        Some(exec_line(&words))
    }

    fn sub_conf(&self, p: &Prepared) -> Option<String> {
        (!p.settings.config_files.is_empty()).then(|| {
            privileged(p).to_string()
                + &exec_line(&[
                    self.servicectl.display().to_string(),
                    "--playpen".into(),
                    self.playpen.root.display().to_string(),
                    "sub-conf".into(),
                    "--service".into(),
                    p.name().to_string(),
                ])
        })
    }

    fn units(&self, p: &Prepared) -> Result<Units> {
        let env_name = self.unit(p.name(), ".env");
        let mut files = vec![(env_name.clone(), self.environment(p))];
        let wanted = match &p.settings.service_type {
            ServiceType::Init | ServiceType::Oneshot => {
                let unit = self.unit(p.name(), ".service");
                files.push((unit.clone(), self.daemon(p, &env_name)?));
                unit
            }
            ServiceType::Cron(cron) => {
                let service = self.unit(p.name(), ".service");
                let timer = self.unit(p.name(), ".timer");
                let mut text = self.unit_section(p, "(cron job)");
                text.push_str("\n[Service]\nType=oneshot\n");
                text.push_str(&self.common_service(p, &env_name, true));
                let _ = writeln!(
                    text,
                    "ExecStart={}",
                    exec_line(&["/bin/sh".into(), "-c".into(), cron.command.clone()])
                );
                files.push((service.clone(), text));
                let mut t = self.unit_section(p, "(cron schedule)");
                t.push_str("\n[Timer]\n");
                match &cron.schedule {
                    CronSchedule::WhenArmed => t.push_str("OnActiveSec=0\n"),
                    CronSchedule::Expression(e) => {
                        for spec in on_calendar(e).map_err(|why| {
                            Error::config(format!("service_cron_time={e:?}: {why}"))
                                .with_service(p.name())
                        })? {
                            let _ = writeln!(t, "OnCalendar={spec}");
                        }
                    }
                }
                let _ = writeln!(
                    t,
                    "AccuracySec=1s\nUnit={service}\n\n[Install]\nWantedBy={}.target",
                    self.tag
                );
                files.push((timer.clone(), t));
                timer
            }
            ServiceType::Inetd(inetd) => self.inetd(p, inetd, &env_name, &mut files)?,
        };
        Ok(Units { files, wanted })
    }

    fn daemon(&self, p: &Prepared, env_name: &str) -> Result<String> {
        let s = &p.settings;
        let name = p.name();
        let (limits, restart) = restart_lines(s.restart_policy);
        let mut text = self.unit_section(p, "(servicectl service)");
        text.push_str(&limits);
        text.push_str("\n[Service]\n");
        let start: Vec<String> = match &s.scripts.start {
            Some(script) => {
                let path = crate::service::program::resolve_setting(
                    self.playpen,
                    &p.config,
                    "service_start",
                    script,
                    &p.env,
                )?;
                let mut w = vec![path.display().to_string(), name.to_string()];
                w.extend(p.config.id.version.clone());
                w
            }
            None => {
                let program = p.program(self.playpen)?;
                // The symlink the generic start makes (none for java or no_symlink).
                let exe = if let Some((link_name, _)) = lifecycle::planned_link(self.playpen, p) {
                    crate::playpen::fsutil::ensure_dir(&self.playpen.linkfarm())?;
                    let link = linkfarm::ensure_link(self.playpen, &link_name, &program, || None)
                        .map_err(|e| e.with_service(name))?;
                    let _ = writeln!(
                        text,
                        "ExecStartPre={}{}",
                        privileged(p),
                        exec_line(&[
                            "/bin/ln".into(),
                            "-sfn".into(),
                            program.display().to_string(),
                            link.display().to_string(),
                        ])
                    );
                    link
                } else {
                    program
                };
                let mut w = vec![exe.display().to_string()];
                w.extend(s.flags.iter().cloned());
                w
            }
        };
        let kind = match (s.pidfile, s.scripts.start.is_some()) {
            _ if s.service_type == ServiceType::Oneshot => "oneshot\nRemainAfterExit=yes",
            _ if s.ready == Ready::Notify => "notify\nNotifyAccess=all",
            (PidfileMode::Program, _) | (PidfileMode::Servicectl, true) => "forking",
            (PidfileMode::None, true) => "oneshot\nRemainAfterExit=yes",
            _ => "exec",
        };
        let _ = writeln!(text, "Type={kind}");
        if let Some(w) = s.watchdog {
            let _ = writeln!(text, "WatchdogSec={}", seconds_text(w));
        }
        // What systemd cannot express is named, so that nobody expects it of the unit.
        match &s.ready {
            Ready::Tcp(var) => {
                let _ = writeln!(
                    text,
                    "# servicectl: ready when a TCP connect to 127.0.0.1:${} succeeds (service_ready); systemd has no such check",
                    var.as_deref().unwrap_or("its first port")
                );
            }
            Ready::Http { var, path } => {
                let _ = writeln!(
                    text,
                    "# servicectl: ready when GET http://127.0.0.1:${var}{path} answers below 400 (service_ready); systemd has no such check"
                );
            }
            Ready::Log(pattern) => {
                let _ = writeln!(
                    text,
                    "# servicectl: ready when its output matches {pattern:?} (service_ready); systemd has no such check"
                );
            }
            _ => {}
        }
        if !s.health.interval.is_zero() {
            let _ = writeln!(
                text,
                "# servicectl: health checked every {} s ({} failures in a row restart it); systemd has no such check",
                seconds_text(s.health.interval),
                s.health.retries
            );
        }
        if !s.watch.patterns.is_empty() {
            let _ = writeln!(
                text,
                "# servicectl: restarted when {} change (service_watch); a development aid, not exported (a .path unit could do it)",
                s.watch.patterns.join(" ")
            );
        }
        if kind == "forking" {
            let _ = writeln!(
                text,
                "PIDFile={}",
                setting_path(&self.playpen.pidfile(name))
            );
        }
        text.push_str(&self.common_service(p, env_name, true));
        let pre = self
            .sub_conf(p)
            .into_iter()
            .chain(self.hook(p, Hook::PreStart));
        for line in pre.clone() {
            let _ = writeln!(text, "ExecStartPre={line}");
        }
        let _ = writeln!(text, "ExecStart={}", exec_line(&start));
        if let Some(post) = self.hook(p, Hook::PostStart) {
            let _ = writeln!(text, "ExecStartPost={post}");
        }
        if let Some(stop) = &s.scripts.stop {
            let path = crate::service::program::resolve_setting(
                self.playpen,
                &p.config,
                "service_stop",
                stop,
                &p.env,
            )?;
            let mut w = vec![path.display().to_string(), name.to_string()];
            w.extend(p.config.id.version.clone());
            if let Some(pre_stop) = self.hook(p, Hook::PreStop) {
                let _ = writeln!(text, "ExecStop={pre_stop}");
            }
            let _ = writeln!(text, "ExecStop={}", exec_line(&w));
        } else if let Some(pre_stop) = self.hook(p, Hook::PreStop) {
            // Run before systemd's SIGTERM, as servicectl runs it before its own.
            let _ = writeln!(text, "ExecStop={pre_stop}");
        }
        if let Some(post) = self.hook(p, Hook::PostStop) {
            let _ = writeln!(text, "ExecStopPost={post}");
        }
        if s.hup {
            for line in pre {
                let _ = writeln!(text, "ExecReload={line}");
            }
            let _ = writeln!(text, "ExecReload=/bin/kill -HUP $MAINPID");
            if let Some(post) = self.hook(p, Hook::PostStart) {
                let _ = writeln!(text, "ExecReload={post}");
            }
        }
        text.push_str(&restart);
        let _ = writeln!(
            text,
            "TimeoutStopSec={}\nKillMode=control-group",
            seconds(s.halt_timeout)
        );
        text.push_str(&format!("\n[Install]\nWantedBy={}.target\n", self.tag));
        Ok(text)
    }

    fn inetd(
        &self,
        p: &Prepared,
        inetd: &InetdSettings,
        env_name: &str,
        files: &mut Vec<(String, String)>,
    ) -> Result<String> {
        let port = match &inetd.port {
            PortSetting::Number(n) => *n,
            PortSetting::Variable(v) => p
                .ports
                .iter()
                .find(|(name, _)| name == v)
                .map(|(_, port)| *port)
                .ok_or_else(|| {
                    Error::config(format!("service_port names {v}, which has no valid port"))
                        .with_service(p.name())
                })?,
        };
        let address = match inetd.bind {
            std::net::IpAddr::V4(a) => format!("{a}:{port}"),
            std::net::IpAddr::V6(a) => format!("[{a}]:{port}"),
        };
        let socket = self.unit(p.name(), ".socket");
        let tcp = inetd.protocol == Protocol::Tcp;
        let mut s = self.unit_section(p, "(inetd socket)");
        s.push_str("\n[Socket]\n");
        if tcp {
            let _ = writeln!(
                s,
                "ListenStream={address}\nAccept=yes\nMaxConnections={}",
                inetd.max_handlers
            );
        } else {
            let _ = writeln!(s, "ListenDatagram={address}\nAccept=no");
        }
        let service = if tcp {
            self.unit(p.name(), "@.service")
        } else {
            self.unit(p.name(), ".service")
        };
        let _ = writeln!(s, "\n[Install]\nWantedBy={}.target", self.tag);
        files.push((socket.clone(), s));
        let mut text = self.unit_section(p, "(inetd handler)");
        text.push_str("\n[Service]\nStandardInput=socket\n");
        if tcp {
            text.push_str("StandardOutput=socket\n");
        }
        text.push_str(&self.common_service(p, env_name, !tcp));
        let _ = writeln!(text, "ExecStart={}", exec_line(&inetd.command));
        let _ = writeln!(text, "KillMode=control-group");
        files.push((service, text));
        Ok(socket)
    }

    fn target(&self, wants: &[String], binds: &[String]) -> String {
        let mut out = format!(
            "# Made by `servicectl export systemd`: every exported service of the playpen {}.\n[Unit]\nDescription=servicectl playpen {} ({})\n",
            self.playpen.root.display(),
            setting_path(&self.playpen.root),
            self.tag
        );
        for w in wants {
            let _ = writeln!(out, "Wants={w}");
        }
        // service_fail_fast=1: the playpen stops when the service stops for good.
        for b in binds {
            let _ = writeln!(out, "BindsTo={b}\nAfter={b}");
        }
        out.push_str("\n[Install]\nWantedBy=multi-user.target\n");
        out
    }
}

fn seconds(d: std::time::Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{}s", s as u64)
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// The start limits (`[Unit]`) and Restart= (`[Service]`) of service_restart_policy.
fn restart_lines(policy: RestartPolicy) -> (String, String) {
    match policy {
        RestartPolicy::Never => (String::new(), "Restart=no\n".to_string()),
        // N restarts after the first run, over the unit's whole life.
        RestartPolicy::Times(n) => (
            format!(
                "StartLimitIntervalSec=infinity\nStartLimitBurst={}\n",
                n + 1
            ),
            "Restart=on-failure\nRestartSec=1s\n".to_string(),
        ),
        RestartPolicy::Always => (
            "StartLimitIntervalSec=0\n".to_string(),
            "Restart=always\nRestartSec=1s\n".to_string(),
        ),
    }
}

/// Seconds as systemd reads them: whole when whole, else with a fraction.
fn seconds_text(d: std::time::Duration) -> String {
    let secs = d.as_secs_f64();
    if secs.fract() == 0.0 {
        format!("{}", secs as u64)
    } else {
        format!("{secs}")
    }
}

#[cfg(test)]
mod tests;

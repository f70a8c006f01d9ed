//! `servicectl boot enable|disable|status` (§13.2; seed 001: "an enabled service works
//! normally upon reboot without manual intervention"): what starts the playpen's
//! supervisor at boot, which then brings up the role's enabled services (§9.5).
//!
//! Two ways, chosen by what runs the machine:
//! - systemd (it runs when /run/systemd/system exists): a unit
//!   `servicectl-TAG.service` of `Type=notify` (the supervisor sends READY=1 once it
//!   has brought the role up), a system unit in /etc/systemd/system as root, else a user
//!   unit in ~/.config/systemd/user (which starts at boot only with `loginctl
//!   enable-linger`). Enabled as `systemctl enable` would (the `.wants/` symlink), then
//!   `systemctl daemon-reload`; it is not started now.
//! - otherwise cron: a `@reboot` line in the user's crontab running `supervise --daemon`,
//!   marked with a comment naming the playpen, so it is found again.
//!
//! `SERVICECTL_UNIT_DIR` puts the unit in another directory and selects systemd even
//! where it does not run (an image being built, the tests); systemctl is then not called.
//! Both ways are safe to repeat: what is installed already is left as it is.

use crate::config::session::Session;
use crate::error::{Error, Result};
use crate::ops::export::{exec_line, setting_path, unit_word};
use crate::playpen::{Playpen, fsutil};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// How the supervisor is started at boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Via {
    Systemd,
    Cron,
}

/// A unit file of this playpen, installed or to be.
#[derive(Debug, Clone, Serialize)]
pub struct Unit {
    pub name: String,
    pub file: PathBuf,
    /// `system` or `user`.
    pub scope: &'static str,
    /// Enabled: the `.wants/` symlink of its target exists.
    pub enabled: bool,
    /// What `systemctl is-active` says, when systemd runs.
    pub active: Option<String>,
}

/// What is installed for the playpen, and what a command changed.
#[derive(Debug, Clone, Serialize)]
pub struct Boot {
    pub playpen: PathBuf,
    /// enable / disable: whether anything was written or removed.
    pub changed: bool,
    pub unit: Option<Unit>,
    /// The crontab line, when installed.
    pub crontab: Option<String>,
    /// What the user should still do (linger, start now).
    pub hints: Vec<String>,
}

const UNIT_DIR_VAR: &str = "SERVICECTL_UNIT_DIR";

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Whether systemd is the running init (as sd_booted checks).
fn systemd_runs() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

/// The way `enable` uses when none is asked for.
pub fn default_via() -> Via {
    if std::env::var_os(UNIT_DIR_VAR).is_some() || systemd_runs() {
        Via::Systemd
    } else {
        Via::Cron
    }
}

/// Where the unit goes, its scope, and whether systemctl is to be told.
fn unit_dir() -> Result<(PathBuf, &'static str, bool)> {
    let scope = if is_root() { "system" } else { "user" };
    if let Some(dir) = std::env::var_os(UNIT_DIR_VAR).filter(|d| !d.is_empty()) {
        return Ok((PathBuf::from(dir), scope, false));
    }
    if is_root() {
        return Ok((PathBuf::from("/etc/systemd/system"), scope, systemd_runs()));
    }
    let config = match std::env::var_os("XDG_CONFIG_HOME").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
            Some(home) => PathBuf::from(home).join(".config"),
            None => {
                return Err(Error::config(
                    "cannot find where user units go: neither XDG_CONFIG_HOME nor HOME is set",
                )
                .with_hint("set HOME, or run as root for a system unit"));
            }
        },
    };
    Ok((config.join("systemd/user"), scope, systemd_runs()))
}

/// The target a unit of `scope` is wanted by: what is reached at boot.
fn wanted_by(scope: &str) -> &'static str {
    if scope == "system" {
        "multi-user.target"
    } else {
        "default.target"
    }
}

/// The playpen's tag (PLAYPEN_TAG, else its directory's name), fit for a unit name.
fn tag(session: &mut Session) -> Result<String> {
    let common = session.shell()?.common()?;
    let tag = common
        .vars
        .get("PLAYPEN_TAG")
        .and_then(|v| v.value.to_str())
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| {
            session
                .playpen
                .root
                .file_name()
                .map_or_else(|| "playpen".into(), |n| n.to_string_lossy().into_owned())
        });
    Ok(unit_word(&tag))
}

fn servicectl() -> Result<PathBuf> {
    std::env::current_exe()
        .map_err(|e| Error::io("find the servicectl binary", Path::new("/proc/self/exe"), e))
}

/// The unit that runs the supervisor in the foreground: systemd is its keeper.
fn unit_text(playpen: &Playpen, servicectl: &Path, scope: &str) -> String {
    let root = playpen.root.display().to_string();
    let command = |verb: &str| {
        exec_line(&[
            servicectl.display().to_string(),
            "--playpen".into(),
            root.clone(),
            verb.into(),
        ])
    };
    format!(
        "# Made by `servicectl boot enable` for the playpen {root}.\n\
         [Unit]\n\
         Description=servicectl supervisor of the playpen {root}\n\
         After=network.target\n\
         \n\
         [Service]\n\
         Type=notify\n\
         NotifyAccess=main\n\
         WorkingDirectory={dir}\n\
         ExecStart={start}\n\
         ExecStop={stop}\n\
         # The role's services may take their service_ready_timeout each to come up.\n\
         TimeoutStartSec=600\n\
         TimeoutStopSec=600\n\
         Restart=on-failure\n\
         \n\
         [Install]\n\
         WantedBy={wanted}\n",
        dir = setting_path(&playpen.root),
        start = command("supervise"),
        stop = command("shutdown"),
        wanted = wanted_by(scope),
    )
}

/// The crontab line (sh reads it): the supervisor detaches and logs to its file.
fn cron_line(playpen: &Playpen, servicectl: &Path) -> String {
    let quote = |p: &Path| shell_words::quote(&p.display().to_string()).into_owned();
    format!(
        "@reboot {} --playpen {} supervise --daemon {}",
        quote(servicectl),
        quote(&playpen.root),
        cron_mark(playpen)
    )
}

/// The comment that marks the playpen's line.
fn cron_mark(playpen: &Playpen) -> String {
    format!("# servicectl boot: {}", playpen.root.display())
}

/// `systemctl [--user] ARGS…`; its output when it ran, None when it cannot run.
fn systemctl(scope: &str, args: &[&str]) -> Option<std::process::Output> {
    let mut cmd = Command::new("systemctl");
    if scope == "user" {
        cmd.arg("--user");
    }
    cmd.args(args).stdin(Stdio::null()).output().ok()
}

fn reload(scope: &str, tell: bool) -> Result<()> {
    if !tell {
        return Ok(());
    }
    match systemctl(scope, &["daemon-reload"]) {
        Some(out) if out.status.success() => Ok(()),
        Some(out) => Err(Error::runtime(format!(
            "systemctl daemon-reload failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
        .with_hint("check `systemctl status`; the unit file is in place")),
        None => Err(Error::runtime("cannot run systemctl")
            .with_hint("install systemd's systemctl, or use `servicectl boot enable --via cron`")),
    }
}

/// The unit of this playpen as it is now.
fn unit_now(name: &str, dir: &Path, scope: &'static str, tell: bool) -> Option<Unit> {
    let file = dir.join(name);
    if !file.is_file() {
        return None;
    }
    let link = dir.join(format!("{}.wants", wanted_by(scope))).join(name);
    let active = tell
        .then(|| systemctl(scope, &["is-active", name]))
        .flatten()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string());
    Some(Unit {
        name: name.to_string(),
        file,
        scope,
        enabled: std::fs::symlink_metadata(&link).is_ok(),
        active,
    })
}

/// The lines of the user's crontab (none when there is none, or no crontab command).
fn crontab_lines() -> Result<Vec<String>> {
    let out = match Command::new("crontab")
        .arg("-l")
        .stdin(Stdio::null())
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("run", Path::new("crontab"), e)),
    };
    // `crontab -l` fails with "no crontab for USER" when there is none.
    if !out.status.success() {
        return Ok(Vec::new());
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect())
}

/// Replace the user's crontab with `lines`.
fn write_crontab(lines: &[String]) -> Result<()> {
    use std::io::Write;
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let failed = |why: String| {
        Error::runtime(format!("cannot install the crontab: {why}"))
            .with_hint("install cron (apt-get install cron), or on systemd use `servicectl boot enable --via systemd`")
    };
    let mut child = Command::new("crontab")
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| failed(format!("crontab: {e}")))?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(text.as_bytes())
        .map_err(|e| failed(format!("writing to crontab: {e}")))?;
    let out = child
        .wait_with_output()
        .map_err(|e| failed(format!("crontab: {e}")))?;
    if !out.status.success() {
        return Err(failed(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    Ok(())
}

/// The playpen's line among `lines`.
fn playpen_line(playpen: &Playpen, lines: &[String]) -> Option<String> {
    let mark = cron_mark(playpen);
    lines.iter().find(|l| l.ends_with(&mark)).cloned()
}

/// `boot status`: what is installed for the playpen.
pub fn status(session: &mut Session) -> Result<Boot> {
    let name = format!("servicectl-{}.service", tag(session)?);
    let (dir, scope, tell) = unit_dir()?;
    let playpen = &session.playpen;
    Ok(Boot {
        playpen: playpen.root.clone(),
        changed: false,
        unit: unit_now(&name, &dir, scope, tell),
        crontab: playpen_line(playpen, &crontab_lines()?),
        hints: Vec::new(),
    })
}

/// `boot enable`: install the unit (`Via::Systemd`) or the crontab line.
pub fn enable(session: &mut Session, via: Via) -> Result<Boot> {
    let name = format!("servicectl-{}.service", tag(session)?);
    let servicectl = servicectl()?;
    let playpen = session.playpen.clone();
    let mut boot = status(session)?;
    match via {
        Via::Systemd => {
            let (dir, scope, tell) = unit_dir()?;
            let file = dir.join(&name);
            let text = unit_text(&playpen, &servicectl, scope);
            if fsutil::read_optional(&file)?.as_deref() != Some(text.as_str()) {
                fsutil::ensure_dir(&dir)?;
                fsutil::write_atomic(&file, text.as_bytes(), Some(0o644))?;
                boot.changed = true;
            }
            let wants = dir.join(format!("{}.wants", wanted_by(scope)));
            let link = wants.join(&name);
            if std::fs::symlink_metadata(&link).is_err() {
                fsutil::ensure_dir(&wants)?;
                std::os::unix::fs::symlink(Path::new("..").join(&name), &link)
                    .map_err(|e| Error::io("enable the unit with a symlink at", &link, e))?;
                boot.changed = true;
            }
            if boot.changed {
                reload(scope, tell)?;
            }
            boot.unit = unit_now(&name, &dir, scope, tell);
            if scope == "user" {
                let user = std::env::var("USER").unwrap_or_else(|_| "$USER".into());
                boot.hints.push(format!(
                    "a user unit starts at boot only if the user lingers: loginctl enable-linger {user}"
                ));
            }
            if tell && boot.unit.as_ref().and_then(|u| u.active.as_deref()) != Some("active") {
                let user = if scope == "user" { " --user" } else { "" };
                boot.hints
                    .push(format!("start it now: systemctl{user} start {name}"));
            }
        }
        Via::Cron => {
            let line = cron_line(&playpen, &servicectl);
            let mut lines = crontab_lines()?;
            if !lines.contains(&line) {
                let mark = cron_mark(&playpen);
                lines.retain(|l| !l.ends_with(&mark));
                lines.push(line.clone());
                write_crontab(&lines)?;
                boot.changed = true;
            }
            boot.crontab = Some(line);
        }
    }
    Ok(boot)
}

/// `boot disable`: remove the unit and the crontab line, whichever is installed.
pub fn disable(session: &mut Session) -> Result<Boot> {
    let mut boot = status(session)?;
    if let Some(unit) = boot.unit.take() {
        let (dir, scope, tell) = unit_dir()?;
        let link = dir
            .join(format!("{}.wants", wanted_by(scope)))
            .join(&unit.name);
        for path in [&link, &unit.file] {
            match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("remove", path, e)),
            }
        }
        reload(scope, tell)?;
        boot.changed = true;
        // Reported as removed: the name and file of what was there.
        boot.unit = Some(Unit {
            enabled: false,
            active: None,
            ..unit
        });
    }
    if boot.crontab.is_some() {
        let mark = cron_mark(&session.playpen);
        let mut lines = crontab_lines()?;
        lines.retain(|l| !l.ends_with(&mark));
        write_crontab(&lines)?;
        boot.changed = true;
    }
    Ok(boot)
}

//! Hooks around start and stop, and the service's own scripts (service_start, ping, …).
//!
//! A hook is the config variable (an sh command string) when set, else the package's
//! script (`ext/services/$NAME-$VERSION/pre-start` …). Hooks run with the service's
//! environment, in PLAYPEN_ROOT, with NAME VERSION as arguments; their output is
//! appended to the service's output file and quoted in the error when they fail.

use crate::config::Env;
use crate::error::{Error, Result};
use crate::playpen::Playpen;
use crate::playpen::catalog::{self, ServiceId};
use crate::process::proc;
use crate::process::user::RunAs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Environment variable: seconds a hook or service script may run (default 300).
pub const HOOK_TIMEOUT_ENV: &str = "SERVICECTL_HOOK_TIMEOUT";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    PreStart,
    PostStart,
    PreStop,
    PostStop,
}

impl Hook {
    /// The config variable holding the sh command.
    pub fn variable(self) -> &'static str {
        match self {
            Hook::PreStart => "service_pre_start",
            Hook::PostStart => "service_post_start",
            Hook::PreStop => "service_pre_stop",
            Hook::PostStop => "service_post_stop",
        }
    }

    /// The sh command string the settings give for this hook, if any.
    pub fn command(self, hooks: &crate::config::settings::Hooks) -> Option<&str> {
        match self {
            Hook::PreStart => &hooks.pre_start,
            Hook::PostStart => &hooks.post_start,
            Hook::PreStop => &hooks.pre_stop,
            Hook::PostStop => &hooks.post_stop,
        }
        .as_deref()
    }

    /// The package's script file name.
    pub fn file(self) -> &'static str {
        match self {
            Hook::PreStart => "pre-start",
            Hook::PostStart => "post-start",
            Hook::PreStop => "pre-stop",
            Hook::PostStop => "post-stop",
        }
    }
}

/// What to run: an sh command string, or an executable file.
#[derive(Debug, Clone)]
pub enum Runnable {
    Shell(String),
    Script(PathBuf),
}

impl Runnable {
    pub fn describe(&self) -> String {
        match self {
            Runnable::Shell(cmd) => format!("`{cmd}`"),
            Runnable::Script(path) => path.display().to_string(),
        }
    }
}

/// The hook for a service, if any.
pub fn find_hook(
    playpen: &Playpen,
    id: &ServiceId,
    command: Option<&str>,
    hook: Hook,
) -> Option<Runnable> {
    match command.filter(|c| !c.trim().is_empty()) {
        Some(cmd) => Some(Runnable::Shell(cmd.to_string())),
        None => catalog::package_script(playpen, id, hook.file()).map(Runnable::Script),
    }
}

/// The result of running a script to completion.
pub struct Finished {
    pub success: bool,
    pub status: String,
    pub output: String,
}

fn hook_timeout() -> Duration {
    std::env::var(HOOK_TIMEOUT_ENV)
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| *s > 0.0 && s.is_finite())
        .map(Duration::from_secs_f64)
        .unwrap_or(Duration::from_secs(300))
}

/// Run to completion with the service's environment; output is captured (and appended
/// to `log` when given).
/// `limit` bounds the run below SERVICECTL_HOOK_TIMEOUT (a readiness wait has its own).
pub fn run(
    playpen: &Playpen,
    id: &ServiceId,
    runnable: &Runnable,
    env: &Env,
    log: Option<&Path>,
    limit: Option<Duration>,
    user: Option<&RunAs>,
) -> Result<Finished> {
    // With a log (the service's output file) the script writes straight into it, so
    // that daemons a service_start script leaves behind keep writing where the user
    // looks; without one (ping) the output is only captured.
    let (sink, log_start) = match log {
        Some(log) => (
            crate::process::output::open_output(log)?,
            crate::process::output::file_len(log),
        ),
        None => (
            tempfile::tempfile()
                .map_err(|e| Error::io("create a scratch file in", &std::env::temp_dir(), e))?,
            0,
        ),
    };
    let version = id.version.clone().unwrap_or_default();
    let mut cmd = match runnable {
        Runnable::Shell(script) => {
            let mut c = Command::new("/bin/sh");
            c.arg("-c").arg(script).arg(&id.name).arg(&id.name);
            if id.version.is_some() {
                c.arg(&version);
            }
            c
        }
        Runnable::Script(path) => {
            let mut c = Command::new(path);
            c.arg(&id.name);
            if id.version.is_some() {
                c.arg(&version);
            }
            c
        }
    };
    let duplicate = |f: &std::fs::File| {
        f.try_clone()
            .map_err(|e| Error::io("duplicate", Path::new("output file"), e))
    };
    cmd.env_clear().envs(env);
    if log.is_none() {
        // A check (ping) is a process of the service: marked, so that a stop, a
        // shutdown or a later supervisor finds it and ends it.
        cmd.env(
            crate::process::census::LAUNCH,
            format!("{CHECK_MARK}{}", crate::process::census::new_launch()),
        );
    }
    cmd.current_dir(&playpen.root)
        .stdin(Stdio::null())
        .stdout(duplicate(&sink)?)
        .stderr(duplicate(&sink)?);
    // Its own session: what it starts is detached from our terminal like a service, and
    // the whole group can be killed if it hangs. As the service's user, if it has one.
    let user = user.cloned();
    // SAFETY: setsid, setrlimit and the calls of `assume` are async-signal-safe and
    // touch only memory prepared before the fork.
    unsafe {
        let limit = crate::process::limits::for_children();
        cmd.pre_exec(move || {
            crate::process::limits::restore_in_child(limit);
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            crate::process::user::assume(user.as_ref())
        });
    }
    let mut child = cmd.spawn().map_err(|e| {
        Error::runtime(format!("cannot run {}: {e}", runnable.describe()))
            .with_service(&id.name)
            .with_hint("check that the script exists, is executable and has a #! line")
    })?;
    let pid = child.id() as i32;
    let check = log.is_none().then(|| RunningCheck::register(&id.name, pid));
    let timeout = limit.map_or_else(hook_timeout, |l| l.min(hook_timeout()));
    let finished_in_time = proc::wait_exit(pid, timeout);
    drop(check);
    if !finished_in_time {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let status = child
        .wait()
        .map_err(|e| Error::io("wait for", Path::new(&runnable.describe()), e))?;
    let output = match log {
        Some(log) => crate::process::output::tail_file(log, log_start, 200),
        None => read_all(sink),
    };
    let status_text = if !finished_in_time {
        format!(
            "did not finish within {:.0} s and was killed",
            timeout.as_secs_f64()
        )
    } else {
        describe_status(status)
    };
    Ok(Finished {
        success: finished_in_time && status.success(),
        status: status_text,
        output,
    })
}

/// The launch mark's prefix of checks (pings): `check:PID.TICKS.SERIAL` of the
/// servicectl that runs it.
pub const CHECK_MARK: &str = "check:";

/// Checks running now in this process, by service: what `end_checks` ends.
static CHECKS: std::sync::Mutex<Vec<(String, i32)>> = std::sync::Mutex::new(Vec::new());

/// A check on the list while it runs.
struct RunningCheck(i32);

impl RunningCheck {
    fn register(service: &str, pid: i32) -> RunningCheck {
        if let Ok(mut checks) = CHECKS.lock() {
            checks.push((service.to_string(), pid));
        }
        RunningCheck(pid)
    }
}

impl Drop for RunningCheck {
    fn drop(&mut self) {
        if let Ok(mut checks) = CHECKS.lock() {
            checks.retain(|(_, pid)| *pid != self.0);
        }
    }
}

/// End the checks of `service` (of every service with None) that run now, with their
/// process groups: a check never outlives the service it checks. The thread waiting
/// for each then reports it as killed.
pub fn end_checks(service: Option<&str>) {
    let Ok(checks) = CHECKS.lock() else {
        return;
    };
    for (name, pid) in checks.iter() {
        if service.is_none_or(|s| s == name) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(*pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// Run a hook if the service has one; a failure is an error quoting its output.
pub fn run_hook(
    playpen: &Playpen,
    id: &ServiceId,
    command: Option<&str>,
    hook: Hook,
    env: &Env,
    log: &Path,
    user: Option<&RunAs>,
) -> Result<()> {
    let Some(runnable) = find_hook(playpen, id, command, hook) else {
        return Ok(());
    };
    let finished = run(playpen, id, &runnable, env, Some(log), None, user)?;
    if finished.success {
        return Ok(());
    }
    let mut message = format!(
        "{} {} {}",
        hook.file(),
        runnable.describe(),
        finished.status
    );
    let output = finished.output.trim_end();
    if !output.is_empty() {
        message.push_str(&format!(
            ":\n{}",
            crate::text::indent(&crate::text::last_lines(output, 10).join("\n"))
        ));
    }
    Err(Error::runtime(message)
        .with_service(&id.name)
        .with_hint(format!(
            "fix the {} hook ({})",
            hook.file(),
            hook.variable()
        )))
}

pub fn describe_status(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(sig)) => format!(
            "was killed by signal {}",
            nix::sys::signal::Signal::try_from(sig)
                .map(|s| s.as_str().to_string())
                .unwrap_or_else(|_| sig.to_string())
        ),
        _ => "ended".to_string(),
    }
}

fn read_all(mut file: std::fs::File) -> String {
    use std::io::{Read, Seek};
    let mut bytes = Vec::new();
    let _ = file.rewind();
    let _ = file.read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}

//! Finding a service's program and starting it: its own session and process group,
//! stdin from /dev/null, output appended to SERVICE_OUTPUT_FILE, a clean environment.

use crate::config::ServiceConfig;
use crate::error::{Error, Result};
use crate::fsutil;
use crate::playpen::Playpen;
use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

/// Resolve `service_program` in the order of §4: `$PLAYPEN_ROOT/bin`, `ext/bin`, a path
/// relative to `ext/`, then an absolute path or a name on PATH.
pub fn resolve_program(
    playpen: &Playpen,
    config: &ServiceConfig,
    env: &BTreeMap<String, String>,
) -> Result<PathBuf> {
    let program = config.non_empty("service_program").ok_or_else(|| {
        Error::config(format!(
            "no service_program is set in {}",
            fragment_list(config)
        ))
        .with_service(config.name())
        .with_hint("set service_program (or service_start) in the service's config")
    })?;
    resolve_executable(playpen, program, env)
        .map_err(|e| e.with_service(config.name()))
        .map_err(|mut e| {
            e.message.push_str(&config.origin_note("service_program"));
            e
        })
}

/// Resolve a program name the way service_program is resolved.
pub fn resolve_executable(
    playpen: &Playpen,
    program: &str,
    env: &BTreeMap<String, String>,
) -> Result<PathBuf> {
    let relative = Path::new(program);
    let mut candidates = Vec::new();
    if !relative.is_absolute() {
        if !program.contains('/') {
            candidates.push(playpen.root.join("bin").join(program));
            candidates.push(playpen.ext().join("bin").join(program));
        }
        candidates.push(playpen.ext().join(program));
    } else {
        candidates.push(relative.to_path_buf());
    }
    for candidate in &candidates {
        if candidate.is_file() {
            return if fsutil::is_executable(candidate) {
                Ok(candidate.clone())
            } else {
                Err(
                    Error::config(format!("program {} is not executable", candidate.display()))
                        .with_hint(format!("chmod +x {}", candidate.display())),
                )
            };
        }
    }
    if !relative.is_absolute() && !program.contains('/') {
        let path = env
            .get("PATH")
            .cloned()
            .or_else(|| std::env::var("PATH").ok())
            .unwrap_or_default();
        if let Ok(found) = which::which_in(program, Some(path), &playpen.root) {
            return Ok(found);
        }
    }
    let mut looked: Vec<String> = candidates.iter().map(|c| c.display().to_string()).collect();
    if !relative.is_absolute() && !program.contains('/') {
        looked.push("PATH".into());
    }
    Err(Error::config(format!(
        "program {program:?} not found (looked in {})",
        looked.join(", ")
    ))
    .with_hint("install the program, or fix service_program"))
}

fn fragment_list(config: &ServiceConfig) -> String {
    config
        .fragments
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Everything needed to start one process.
pub struct Launch<'a> {
    pub executable: &'a Path,
    pub arg0: &'a str,
    pub args: &'a [String],
    pub env: &'a BTreeMap<String, String>,
    pub cwd: &'a Path,
    pub output: &'a Path,
}

/// Open the output file for appending (created 0644 if missing).
pub fn open_output(path: &Path) -> Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o644)
        .open(path)
        .map_err(|e| Error::io("open output file", path, e))
}

/// Start the process. An exec failure (missing file, no permission, bad interpreter) is
/// reported for certain: the standard library passes the child's exec errno back through
/// a close-on-exec pipe before `spawn` returns.
pub fn launch(launch: &Launch) -> Result<Child> {
    let output = open_output(launch.output)?;
    let errors = output
        .try_clone()
        .map_err(|e| Error::io("duplicate", launch.output, e))?;
    let mut cmd = Command::new(launch.executable);
    cmd.arg0(launch.arg0)
        .args(launch.args)
        .env_clear()
        .envs(launch.env)
        .current_dir(launch.cwd)
        .stdin(Stdio::null())
        .stdout(output)
        .stderr(errors);
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    cmd.spawn().map_err(|e| {
        Error::runtime(format!(
            "cannot execute {}: {e}",
            launch.executable.display()
        ))
        .with_hint(match e.raw_os_error() {
            Some(libc::ENOENT) => "the program or its #! interpreter does not exist",
            Some(libc::EACCES) => "make the program executable (chmod +x)",
            Some(libc::ENOEXEC) => {
                "the program is not a valid executable; add a #! line to scripts"
            }
            _ => "check the program",
        })
    })
}

/// Wait up to `grace` for an early exit of our child. Ok(()) if it is still running.
pub fn survive_grace(child: &mut Child, grace: Duration) -> std::result::Result<(), ExitStatus> {
    crate::process::wait_exit(child.id() as i32, grace);
    match child.try_wait() {
        Ok(Some(status)) => Err(status),
        _ => Ok(()),
    }
}

/// The last `n` lines written to a file after byte `since`, for error messages.
pub fn tail_file(path: &Path, since: u64, n: usize) -> String {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(_) => return String::new(),
    };
    let from = (since as usize).min(bytes.len());
    let start = bytes.len().saturating_sub(16 * 1024).max(from);
    let text = String::from_utf8_lossy(&bytes[start..]);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The current size of a file (0 when missing).
pub fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

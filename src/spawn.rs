//! Finding a service's program and starting it: its own session and process group,
//! stdin from /dev/null, output appended to SERVICE_OUTPUT_FILE, a clean environment.

use crate::config::ServiceConfig;
use crate::error::{Error, Result};
use crate::fsutil;
use crate::playpen::Playpen;
use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
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

/// A process we started and have not waited for.
#[derive(Debug)]
pub struct Spawned {
    pub pid: i32,
}

impl Spawned {
    /// Its exit status if it has ended (reaps it), None while it runs.
    pub fn try_wait(&self) -> Option<ExitStatus> {
        let mut status = 0;
        // SAFETY: waitpid on our own child with a valid out pointer.
        let reaped = unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) };
        (reaped == self.pid).then(|| ExitStatus::from_raw(status))
    }
}

fn cstring(bytes: &[u8], what: &str) -> Result<CString> {
    CString::new(bytes).map_err(|_| Error::config(format!("{what} contains a NUL byte")))
}

/// Start the process with posix_spawn in a new session. posix_spawn (vfork-like, no copy
/// of our memory) keeps starting hundreds of services cheap, and it reports an exec
/// failure (missing file, no permission, bad interpreter) for certain: glibc returns the
/// child's exec errno before the call returns.
pub fn launch(launch: &Launch) -> Result<Spawned> {
    let output = open_output(launch.output)?;
    let program = cstring(launch.executable.as_os_str().as_bytes(), "the program path")?;
    let cwd = cstring(launch.cwd.as_os_str().as_bytes(), "the working directory")?;
    let mut argv = vec![cstring(launch.arg0.as_bytes(), "argv[0]")?];
    for arg in launch.args {
        argv.push(cstring(arg.as_bytes(), "service_flags")?);
    }
    let envp: Vec<CString> = launch
        .env
        .iter()
        .map(|(k, v)| cstring(format!("{k}={v}").as_bytes(), "an environment variable"))
        .collect::<Result<_>>()?;
    let mut argv_ptrs: Vec<*mut libc::c_char> = argv.iter().map(|a| a.as_ptr() as *mut _).collect();
    argv_ptrs.push(std::ptr::null_mut());
    let mut envp_ptrs: Vec<*mut libc::c_char> = envp.iter().map(|e| e.as_ptr() as *mut _).collect();
    envp_ptrs.push(std::ptr::null_mut());
    let dev_null = c"/dev/null";
    let out_fd = output.as_raw_fd();
    let mut pid: libc::pid_t = 0;
    // SAFETY: every pointer handed to libc points into a CString or vector that outlives
    // the calls; the attribute and file-action objects are initialised before use and
    // destroyed after.
    let rc = unsafe {
        let mut actions: libc::posix_spawn_file_actions_t = std::mem::zeroed();
        let mut attr: libc::posix_spawnattr_t = std::mem::zeroed();
        libc::posix_spawn_file_actions_init(&mut actions);
        libc::posix_spawnattr_init(&mut attr);
        libc::posix_spawn_file_actions_addopen(
            &mut actions,
            0,
            dev_null.as_ptr(),
            libc::O_RDONLY,
            0,
        );
        libc::posix_spawn_file_actions_adddup2(&mut actions, out_fd, 1);
        libc::posix_spawn_file_actions_adddup2(&mut actions, out_fd, 2);
        libc::posix_spawn_file_actions_addchdir_np(&mut actions, cwd.as_ptr());
        // Signals we ignore (SIGPIPE, as every Rust program does) must not stay ignored
        // in the service, and no signal may stay blocked.
        let mut defaults: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut defaults);
        libc::sigaddset(&mut defaults, libc::SIGPIPE);
        libc::posix_spawnattr_setsigdefault(&mut attr, &defaults);
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::posix_spawnattr_setsigmask(&mut attr, &empty);
        let flags = libc::POSIX_SPAWN_SETSID as libc::c_int
            | libc::POSIX_SPAWN_SETSIGDEF
            | libc::POSIX_SPAWN_SETSIGMASK;
        libc::posix_spawnattr_setflags(&mut attr, flags as libc::c_short);
        let rc = libc::posix_spawn(
            &mut pid,
            program.as_ptr(),
            &actions,
            &attr,
            argv_ptrs.as_ptr(),
            envp_ptrs.as_ptr(),
        );
        libc::posix_spawn_file_actions_destroy(&mut actions);
        libc::posix_spawnattr_destroy(&mut attr);
        rc
    };
    if rc != 0 {
        let e = std::io::Error::from_raw_os_error(rc);
        return Err(Error::runtime(format!(
            "cannot execute {}: {e}",
            launch.executable.display()
        ))
        .with_hint(match rc {
            libc::ENOENT => {
                "the program, its #! interpreter or the working directory does not exist"
            }
            libc::EACCES => "make the program executable (chmod +x)",
            libc::ENOEXEC => "the program is not a valid executable; add a #! line to scripts",
            _ => "check the program",
        }));
    }
    Ok(Spawned { pid })
}

/// Wait up to `grace` for an early exit of our child. Ok(()) if it is still running.
pub fn survive_grace(child: &Spawned, grace: Duration) -> std::result::Result<(), ExitStatus> {
    crate::process::wait_exit(child.pid, grace);
    match child.try_wait() {
        Some(status) => Err(status),
        None => Ok(()),
    }
}

/// The last `n` lines written to a file after byte `since`, for error messages. Reads
/// at most the last 16 KiB: output files grow without bound.
pub fn tail_file(path: &Path, since: u64, n: usize) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut file) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let from = since.min(len).max(len.saturating_sub(16 * 1024));
    let mut bytes = Vec::new();
    if file.seek(SeekFrom::Start(from)).is_err() || file.read_to_end(&mut bytes).is_err() {
        return String::new();
    }
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The current size of a file (0 when missing).
pub fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

//! Finding a service's program and starting it: its own session and process group,
//! stdin from /dev/null, output appended to SERVICE_OUTPUT_FILE, a clean environment.

use crate::error::{Error, Result};
use crate::process::output::open_output;
use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::ExitStatus;
use std::time::Duration;

/// Everything needed to start one process.
pub struct Launch<'a> {
    /// What is executed: the linkfarm symlink, or the program itself.
    pub executable: &'a Path,
    /// The program the symlink points at (the same as `executable` without one).
    pub program: &'a Path,
    pub arg0: &'a str,
    pub args: &'a [String],
    pub env: &'a BTreeMap<String, String>,
    pub cwd: &'a Path,
    pub output: &'a Path,
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

/// A started process that must not outlive a start that fails: dropped while armed,
/// it kills the process's whole group and reaps it. `disarm` once the process is on
/// record (pidfile and start record written, grace survived).
#[must_use = "dropping the guard kills the process"]
pub struct KillOnDrop {
    child: Option<Spawned>,
}

impl KillOnDrop {
    pub fn new(child: Spawned) -> KillOnDrop {
        KillOnDrop { child: Some(child) }
    }

    pub fn child(&self) -> &Spawned {
        self.child.as_ref().expect("armed until disarmed")
    }

    /// The process may now outlive this start.
    pub fn disarm(mut self) -> Spawned {
        self.child.take().expect("armed until disarmed")
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            // The child leads its own session and process group: the group goes with it.
            let _ =
                crate::process::proc::signal_service(child.pid, nix::sys::signal::Signal::SIGKILL);
            crate::process::proc::wait_exit(child.pid, Duration::from_secs(2));
            let _ = child.try_wait();
        }
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
    // The variables that mark the process as the playpen's come first: a census reads
    // only the start of a huge environment (see `census`).
    let marks = [
        "PLAYPEN_ROOT",
        "SERVICE_NAME",
        crate::process::census::LAUNCH,
    ];
    let envp: Vec<CString> = marks
        .iter()
        .filter_map(|k| launch.env.get_key_value(*k))
        .chain(
            launch
                .env
                .iter()
                .filter(|(k, _)| !marks.contains(&k.as_str())),
        )
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
        let what = if launch.executable == launch.program {
            launch.executable.display().to_string()
        } else {
            format!(
                "{} (program {})",
                launch.executable.display(),
                launch.program.display()
            )
        };
        return Err(
            Error::runtime(format!("cannot execute {what}: {e}")).with_hint(match rc {
                libc::ENOENT => {
                    "the program, its #! interpreter or the working directory does not exist"
                }
                libc::EACCES => "make the program executable (chmod +x)",
                libc::ENOEXEC => "the program is not a valid executable; add a #! line to scripts",
                _ => "check the program",
            }),
        );
    }
    Ok(Spawned { pid })
}

/// Wait up to `grace` for an early exit of our child. Ok(()) if it is still running.
pub fn survive_grace(child: &Spawned, grace: Duration) -> std::result::Result<(), ExitStatus> {
    crate::process::proc::wait_exit(child.pid, grace);
    match child.try_wait() {
        Some(status) => Err(status),
        None => Ok(()),
    }
}

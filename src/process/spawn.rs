//! Finding a service's program and starting it: its own session and process group,
//! stdin from /dev/null, output appended to SERVICE_OUTPUT_FILE, a clean environment.

use crate::error::{Error, Result};
use crate::process::env::Env;
use crate::process::output::open_output;
use crate::process::user::RunAs;
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
    /// The environment (values are bytes, passed on exactly).
    pub env: &'a Env,
    pub cwd: &'a Path,
    /// Where stdout and stderr go.
    pub output: Output<'a>,
    /// The user it runs as (service_user); None: as servicectl.
    pub user: Option<&'a RunAs>,
}

/// Where a started program's stdout and stderr go (SPEC §9.4).
#[derive(Debug, Clone, Copy)]
pub enum Output<'a> {
    /// Appended to this file (opened by [`open_output`]): the program writes it itself.
    Append(&'a Path),
    /// This descriptor (under the supervisor: the write end of a pipe to its output
    /// keeper, which writes and rotates the file).
    Fd(std::os::fd::BorrowedFd<'a>),
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

/// The one rule of every launcher: a string with a NUL byte cannot reach exec, and is
/// refused with what it is, not cut short or stripped.
pub fn cstring(bytes: &[u8], what: &str) -> Result<CString> {
    CString::new(bytes).map_err(|_| Error::config(format!("{what} contains a NUL byte")))
}

/// Start the process with posix_spawn in a new session. posix_spawn (vfork-like, no copy
/// of our memory) keeps starting hundreds of services cheap, and it reports an exec
/// failure (missing file, no permission, bad interpreter) for certain: glibc returns the
/// child's exec errno before the call returns.
pub fn launch(launch: &Launch) -> Result<Spawned> {
    let file;
    let out_fd = match launch.output {
        Output::Append(path) => {
            file = open_output(path)?;
            file.as_raw_fd()
        }
        Output::Fd(fd) => fd.as_raw_fd(),
    };
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
        .filter_map(|k| launch.env.get_key_value(k))
        .chain(
            launch
                .env
                .iter()
                .filter(|(k, _)| !marks.contains(&k.as_str())),
        )
        .map(|(k, v)| {
            let mut entry = Vec::with_capacity(k.len() + 1 + v.len());
            entry.extend_from_slice(k.as_bytes());
            entry.push(b'=');
            entry.extend_from_slice(v.as_bytes());
            cstring(&entry, "an environment variable")
        })
        .collect::<Result<_>>()?;
    let mut argv_ptrs: Vec<*mut libc::c_char> = argv.iter().map(|a| a.as_ptr() as *mut _).collect();
    argv_ptrs.push(std::ptr::null_mut());
    let mut envp_ptrs: Vec<*mut libc::c_char> = envp.iter().map(|e| e.as_ptr() as *mut _).collect();
    envp_ptrs.push(std::ptr::null_mut());
    let spawned = match launch.user {
        // posix_spawn cannot change the user: a fork of our own then.
        Some(user) if nix::unistd::geteuid().is_root() => {
            fork_exec(&program, &argv_ptrs, &envp_ptrs, out_fd, &cwd, user)
        }
        _ => posix_spawn(&program, &argv_ptrs, &envp_ptrs, out_fd, &cwd),
    };
    let pid = match spawned {
        Ok(pid) => pid,
        Err(rc) => return Err(exec_failure(launch, rc)),
    };
    crate::process::limits::give_back(pid);
    Ok(Spawned { pid })
}

/// posix_spawn in a new session, stdin from /dev/null, stdout and stderr to `out_fd`;
/// Err(errno) when the exec failed.
fn posix_spawn(
    program: &CString,
    argv: &[*mut libc::c_char],
    envp: &[*mut libc::c_char],
    out_fd: i32,
    cwd: &CString,
) -> std::result::Result<i32, i32> {
    let dev_null = c"/dev/null";
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
            argv.as_ptr(),
            envp.as_ptr(),
        );
        libc::posix_spawn_file_actions_destroy(&mut actions);
        libc::posix_spawnattr_destroy(&mut attr);
        rc
    };
    if rc != 0 { Err(rc) } else { Ok(pid) }
}

/// What [`posix_spawn`] does, by fork and exec, becoming `user` in between; the exec's
/// errno comes back through a close-on-exec pipe, so that a failure is as certain as
/// posix_spawn's.
fn fork_exec(
    program: &CString,
    argv: &[*mut libc::c_char],
    envp: &[*mut libc::c_char],
    out_fd: i32,
    cwd: &CString,
    user: &RunAs,
) -> std::result::Result<i32, i32> {
    let errno = |e: std::io::Error| e.raw_os_error().unwrap_or(libc::EIO);
    let dev_null = std::fs::File::open("/dev/null").map_err(errno)?;
    let (report_r, report_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| e as i32)?;
    let (null_fd, report_fd) = (dev_null.as_raw_fd(), report_w.as_raw_fd());
    // SAFETY: after fork the child calls only async-signal-safe functions on memory
    // prepared before the fork, and never returns (execve or _exit).
    let pid = unsafe {
        let pid = libc::fork();
        if pid == 0 {
            let fail = |rc: i32| -> ! {
                libc::write(report_fd, (&rc as *const i32).cast(), 4);
                libc::_exit(127)
            };
            let last = || *libc::__errno_location();
            if libc::setsid() < 0
                || libc::dup2(out_fd, 1) < 0
                || libc::dup2(out_fd, 2) < 0
                || libc::dup2(null_fd, 0) < 0
                || libc::chdir(cwd.as_ptr()) != 0
            {
                fail(last());
            }
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
            if let Err(e) = user.assume() {
                fail(e.raw_os_error().unwrap_or(libc::EPERM));
            }
            libc::execve(program.as_ptr(), argv.as_ptr().cast(), envp.as_ptr().cast());
            fail(last());
        }
        pid
    };
    drop(report_w);
    if pid < 0 {
        return Err(errno(std::io::Error::last_os_error()));
    }
    let mut buf = [0u8; 4];
    let mut report = std::fs::File::from(report_r);
    use std::io::Read;
    match report.read(&mut buf) {
        Ok(4) => {
            // SAFETY: waitpid on our own child, which exits at once.
            unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
            Err(i32::from_ne_bytes(buf))
        }
        _ => Ok(pid),
    }
}

/// The error of a launch whose exec failed with `rc`.
fn exec_failure(launch: &Launch, rc: i32) -> Error {
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
    let mut message = format!("cannot execute {what}: {e}");
    if rc == libc::E2BIG {
        let size = ExecSize::of(launch.executable, launch.arg0, launch.args, launch.env);
        message.push_str(&format!("; {}", size.describe(|_| String::new())));
    }
    Error::runtime(message).with_hint(match rc {
            libc::ENOENT => {
                "the program, its #! interpreter (or ELF loader) or the working directory does not exist"
            }
            libc::EACCES => "make the program (and its #! interpreter) executable (chmod +x)",
            libc::ENOEXEC => {
                "the program is neither a binary for this system nor a script with a #! line; add one (such as #!/bin/sh) as its first line"
            }
            libc::E2BIG => {
                "make the largest variables smaller (pass big data in a file instead), or raise the stack limit (ulimit -s): exec allows a quarter of it"
            }
            _ => "check the program",
        })
}

/// How much of the new program's stack an exec takes (the path, argv and environment
/// strings and their pointers), against what the kernel allows: ARG_MAX in all (a quarter
/// of the stack limit, sysconf(_SC_ARG_MAX), at most 6 MiB) and MAX_ARG_STRLEN (32
/// pages) for one string. Over either, exec fails with E2BIG.
#[derive(Debug, Clone)]
pub struct ExecSize {
    pub bytes: usize,
    pub limit: usize,
    /// The environment's largest variables, largest first (at most three).
    pub largest: Vec<(String, usize)>,
    /// The limit of one string, and the variables (or `argv[N]`) longer than it.
    pub string_limit: usize,
    pub too_long: Vec<(String, usize)>,
}

impl ExecSize {
    pub fn of(executable: &Path, arg0: &str, args: &[String], env: &Env) -> ExecSize {
        let page = usize::try_from(
            nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
                .ok()
                .flatten()
                .unwrap_or(4096),
        )
        .unwrap_or(4096);
        let string_limit = 32 * page;
        // The kernel caps the argument space at 3/4 of the default 8 MiB stack limit.
        let cap = 6 << 20;
        let limit = match nix::unistd::sysconf(nix::unistd::SysconfVar::ARG_MAX) {
            Ok(Some(n)) if n > 0 => usize::try_from(n).unwrap_or(cap).min(cap),
            _ => cap,
        };
        let pointer = std::mem::size_of::<usize>();
        let mut bytes = executable.as_os_str().len() + 1;
        let mut too_long = Vec::new();
        for (i, arg) in std::iter::once(arg0)
            .chain(args.iter().map(String::as_str))
            .enumerate()
        {
            bytes += arg.len() + 1 + pointer;
            if arg.len() + 1 > string_limit {
                too_long.push((format!("argv[{i}]"), arg.len() + 1));
            }
        }
        let mut sizes: Vec<(String, usize)> = env
            .iter()
            .map(|(k, v)| (k.clone(), k.len() + v.len() + 2))
            .collect();
        for (name, size) in &sizes {
            bytes += size + pointer;
            if *size > string_limit {
                too_long.push((name.clone(), *size));
            }
        }
        sizes.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        sizes.truncate(3);
        ExecSize {
            bytes,
            limit,
            largest: sizes,
            string_limit,
            too_long,
        }
    }

    /// Whether an exec with these fits.
    pub fn fits(&self) -> bool {
        self.bytes <= self.limit && self.too_long.is_empty()
    }

    /// What is too big, naming the variables (`origin` adds where one was set).
    pub fn describe(&self, origin: impl Fn(&str) -> String) -> String {
        if !self.too_long.is_empty() {
            let items: Vec<String> = self
                .too_long
                .iter()
                .map(|(name, size)| format!("{name} ({}{})", human_bytes(*size), origin(name)))
                .collect();
            return format!(
                "{} longer than the {} one variable or argument may take (MAX_ARG_STRLEN)",
                if items.len() == 1 {
                    format!("{} is", items[0])
                } else {
                    format!("{} are", items.join(", "))
                },
                human_bytes(self.string_limit)
            );
        }
        let largest: Vec<String> = self
            .largest
            .iter()
            .map(|(name, size)| format!("{name} ({}{})", human_bytes(*size), origin(name)))
            .collect();
        format!(
            "the environment and arguments take {}, more than the {} exec allows (ARG_MAX); the largest variables: {}",
            human_bytes(self.bytes),
            human_bytes(self.limit),
            largest.join(", ")
        )
    }
}

/// `1.5 MiB`, `200 KiB`, `12 bytes`.
fn human_bytes(n: usize) -> String {
    match n {
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.0} KiB", n as f64 / 1024.0),
        n => format!("{n} bytes"),
    }
}

/// Wait up to `grace` for an early exit of our child. Ok(()) if it is still running.
pub fn survive_grace(child: &Spawned, grace: Duration) -> std::result::Result<(), ExitStatus> {
    crate::process::proc::wait_exit(child.pid, grace);
    match child.try_wait() {
        Some(status) => Err(status),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_size_names_a_variable_over_the_string_limit_and_the_largest_over_arg_max() {
        let small = ExecSize::of(Path::new("/bin/true"), "true", &[], &Env::new());
        assert!(small.fits());
        let mut env = Env::new();
        env.insert("HUGE".to_string(), "x".repeat(small.string_limit).into());
        env.insert("SMALL".to_string(), "y".into());
        let size = ExecSize::of(Path::new("/bin/true"), "true", &[], &env);
        assert!(!size.fits());
        let text = size.describe(|name| format!(", set in {name}.conf"));
        assert!(text.starts_with("HUGE ("), "{text}");
        assert!(text.contains("set in HUGE.conf") && text.contains("MAX_ARG_STRLEN"));

        let chunk = "z".repeat(small.string_limit / 2);
        let env: Env = (0..small.limit / chunk.len() + 2)
            .map(|i| (format!("CHUNK_{i:03}"), chunk.clone().into()))
            .collect();
        let size = ExecSize::of(Path::new("/bin/true"), "true", &[], &env);
        assert!(!size.fits() && size.too_long.is_empty());
        let text = size.describe(|_| String::new());
        assert!(
            text.contains("ARG_MAX") && text.contains("CHUNK_000"),
            "{text}"
        );
        assert_eq!(size.largest.len(), 3);
    }
}

//! Starting cron runs and inetd handlers from the event loop without waiting for their
//! exec: a plain fork, then in the child only async-signal-safe calls (dup2, setpgid,
//! chdir, sigprocmask, signal, setgroups/setgid/setuid, execve, _exit) on data
//! prepared before the fork.
//!
//! std::process (and posix_spawn) block the caller until the child has exec'd (vfork,
//! or a pipe that reports exec errors), which puts every handler's exec on the loop's
//! time: with 16 clients at once that halved the connections per second against
//! tcpserver, which forks and goes on. An exec that fails here is reported by the child
//! on its stderr (the output file) and exit status 127.

use crate::error::Result;
use crate::process::spawn::cstring;
use crate::process::user::RunAs;
use std::ffi::{CString, OsStr};
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// A program with its arguments, base environment and working directory, ready to
/// fork and exec any number of times.
pub struct Program {
    path: CString,
    argv: Vec<CString>,
    env: Vec<CString>,
    cwd: CString,
    failure: CString,
    /// service_user: who it runs as.
    user: Option<RunAs>,
}

impl Program {
    /// `program` found as execvp would, but in `path` (the service's PATH, with `which`,
    /// as a service's program is), relative names with a slash from `cwd`. A NUL byte
    /// anywhere is refused (the rule of `process::spawn`).
    pub fn new<'a>(
        program: &str,
        args: impl IntoIterator<Item = &'a str>,
        env: impl IntoIterator<Item = (&'a str, &'a OsStr)>,
        path: Option<&OsStr>,
        cwd: &Path,
        user: Option<&RunAs>,
    ) -> Result<Program> {
        let resolved: PathBuf = if program.contains('/') {
            cwd.join(program)
        } else {
            path.and_then(|p| which::which_in(program, Some(p), cwd).ok())
                .unwrap_or_else(|| PathBuf::from(program))
        };
        let mut argv = vec![cstring(program.as_bytes(), "the program")?];
        for a in args {
            argv.push(cstring(a.as_bytes(), "an argument")?);
        }
        let env = env
            .into_iter()
            .map(|(k, v)| {
                let mut kv = k.as_bytes().to_vec();
                kv.push(b'=');
                kv.extend_from_slice(v.as_bytes());
                cstring(&kv, "an environment variable")
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Program {
            failure: cstring(
                format!("servicectl supervise: cannot run {program}\n").as_bytes(),
                "the program",
            )?,
            path: cstring(resolved.as_os_str().as_bytes(), "the program path")?,
            argv,
            env,
            cwd: cstring(cwd.as_os_str().as_bytes(), "the working directory")?,
            user: user.cloned(),
        })
    }

    /// Fork and exec with these descriptors as 0, 1 and 2 and `extra` added to the
    /// environment, in a process group of its own. The child's PID.
    pub fn spawn(
        &self,
        stdin: RawFd,
        stdout: RawFd,
        stderr: RawFd,
        extra: &[(&str, String)],
    ) -> std::io::Result<i32> {
        let extra: Vec<CString> = extra
            .iter()
            .filter_map(|(k, v)| cstring(format!("{k}={v}").as_bytes(), "").ok())
            .collect();
        let mut argv: Vec<*const libc::c_char> = self.argv.iter().map(|a| a.as_ptr()).collect();
        argv.push(std::ptr::null());
        let mut envp: Vec<*const libc::c_char> = self
            .env
            .iter()
            .chain(extra.iter())
            .map(|e| e.as_ptr())
            .collect();
        envp.push(std::ptr::null());
        let limit = crate::process::limits::for_children();
        // Copies above 2 first, so that dup2 onto 0..2 cannot clobber one another.
        // SAFETY: after fork the child calls only async-signal-safe functions on memory
        // prepared before the fork, and never returns (execve or _exit).
        unsafe {
            let pid = libc::fork();
            if pid < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if pid > 0 {
                return Ok(pid);
            }
            let fds = [stdin, stdout, stderr];
            let mut high = [-1; 3];
            for (i, &fd) in fds.iter().enumerate() {
                high[i] = libc::fcntl(fd, libc::F_DUPFD, 10);
            }
            for (i, &fd) in high.iter().enumerate() {
                if fd < 0 || libc::dup2(fd, i as i32) < 0 {
                    libc::_exit(126);
                }
            }
            for &fd in &high {
                libc::close(fd);
            }
            libc::setpgid(0, 0);
            crate::process::limits::restore_in_child(limit);
            if libc::chdir(self.cwd.as_ptr()) != 0 {
                libc::_exit(126);
            }
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            if crate::process::user::assume(self.user.as_ref()).is_err() {
                libc::_exit(126);
            }
            libc::execve(self.path.as_ptr(), argv.as_ptr(), envp.as_ptr());
            let msg = self.failure.as_bytes();
            libc::write(2, msg.as_ptr().cast(), msg.len());
            libc::_exit(127);
        }
    }
}

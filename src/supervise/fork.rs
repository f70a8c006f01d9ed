//! Starting cron runs and inetd handlers from the event loop without waiting for their
//! exec, and without copying the supervisor: clone with CLONE_VM (and CLONE_PIDFD), the
//! child on a stack of its own in our memory, making only raw system calls on data
//! prepared before the clone, up to its execve.
//!
//! std::process (and posix_spawn) block the caller until the child has exec'd (vfork,
//! or a pipe that reports exec errors), which puts every handler's exec on the loop's
//! time: with 16 clients at once that halved the connections per second against
//! tcpserver, which forks and goes on. A plain fork goes on too, but copies the
//! supervisor's page tables and makes every page it writes afterwards take a
//! copy-on-write fault (about 28 page faults per connection more than tcpserver's
//! fork). A CLONE_VM child copies nothing and the loop goes on at once; what it reads
//! ([`Launch`]) is kept until the child is reaped, when it has surely exec'd or exited.
//! An exec that fails is reported by the child on its stderr (the output file) and exit
//! status 127.

use crate::error::Result;
use crate::process::spawn::cstring;
use crate::process::user::RunAs;
use std::ffi::{CString, OsStr};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
    /// The signals with a handler here, which the child resets.
    caught: Vec<libc::c_int>,
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
            caught: caught_signals(),
        })
    }

    /// Start it with these descriptors as 0, 1 and 2 and `extra` added to the
    /// environment, in a process group of its own. The caller keeps the [`Launch`]
    /// until the child is reaped.
    pub fn spawn(
        self: &Arc<Self>,
        stdin: RawFd,
        stdout: RawFd,
        stderr: RawFd,
        extra: &[(&str, String)],
    ) -> std::io::Result<Launch> {
        let extra: Vec<CString> = extra
            .iter()
            .filter_map(|(k, v)| cstring(format!("{k}={v}").as_bytes(), "").ok())
            .collect();
        let mut argv: Vec<*const libc::c_char> = Vec::with_capacity(self.argv.len() + 1);
        argv.extend(self.argv.iter().map(|a| a.as_ptr()));
        argv.push(std::ptr::null());
        let mut envp: Vec<*const libc::c_char> =
            Vec::with_capacity(self.env.len() + extra.len() + 1);
        envp.extend(self.env.iter().chain(extra.iter()).map(|e| e.as_ptr()));
        envp.push(std::ptr::null());
        let mut launch = Box::new(Memory {
            args: ChildArgs {
                fds: [stdin, stdout, stderr],
                path: self.path.as_ptr(),
                argv: argv.as_ptr(),
                envp: envp.as_ptr(),
                cwd: self.cwd.as_ptr(),
                limit: crate::process::limits::for_children(),
                user: self.user.as_ref().map(|u| Credentials {
                    groups: u.groups.as_ptr(),
                    ngroups: u.groups.len(),
                    gid: u.gid,
                    uid: u.uid,
                }),
                failure: self.failure.as_ptr(),
                failure_len: self.failure.as_bytes().len(),
                caught: self.caught.as_ptr(),
                ncaught: self.caught.len(),
            },
            stack: Box::new_uninit_slice(CHILD_STACK),
            _argv: argv,
            _envp: envp,
            _extra: extra,
            _program: Arc::clone(self),
        });
        let top = (launch.stack.as_mut_ptr() as usize + CHILD_STACK) & !15;
        let arg = &launch.args as *const ChildArgs as *mut libc::c_void;
        let mut pidfd: libc::c_int = -1;
        // SAFETY: the child (`child`) shares our memory. It reads only `launch.args` and
        // what that points to, all of which stays alive and unchanged until the caller
        // drops the Launch after reaping the child (the CStrings are in the Program,
        // held by the Arc in it, or in the Launch's own vectors; moving the Box does not
        // move its contents); it writes only its own stack, `launch.stack`. It makes raw
        // system calls only (no allocation, no lock, not even errno, which is our
        // thread's: see `sys`) and never returns (execve, or exit_group). Signals are
        // blocked around the clone so that it starts with all of them blocked; it puts
        // the caught ones back to SIG_DFL (its handler table is its own: no
        // CLONE_SIGHAND) before unblocking them, so no handler of ours runs in it.
        let pid = unsafe {
            let mut all: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
            let pid = libc::clone(
                child,
                top as *mut libc::c_void,
                CLONE_FLAGS | libc::CLONE_PIDFD | libc::SIGCHLD,
                arg,
                &mut pidfd as *mut libc::c_int,
            );
            let err = std::io::Error::last_os_error();
            libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
            if pid < 0 {
                return Err(err);
            }
            pid
        };
        let pidfd = (pidfd >= 0).then(|| {
            // SAFETY: the kernel gave us this descriptor (CLONE_PIDFD); nobody else owns it.
            unsafe { OwnedFd::from_raw_fd(pidfd) }
        });
        Ok(Launch {
            pid,
            pidfd,
            _memory: launch,
        })
    }
}

/// A child just started: its PID, its pidfd (None on a kernel without CLONE_PIDFD),
/// and the memory it reads until its execve, to be dropped only once it is reaped.
pub struct Launch {
    pub pid: i32,
    pub pidfd: Option<OwnedFd>,
    _memory: Box<Memory>,
}

/// What a child of [`Program::spawn`] reads and runs on.
struct Memory {
    args: ChildArgs,
    stack: Box<[std::mem::MaybeUninit<u8>]>,
    _argv: Vec<*const libc::c_char>,
    _envp: Vec<*const libc::c_char>,
    _extra: Vec<CString>,
    _program: Arc<Program>,
}

/// Bytes of stack for the child between clone and execve: a few calls deep.
const CHILD_STACK: usize = 16 * 1024;

/// Where raw system calls exist (`sys`), the parent goes on at once. Elsewhere the child
/// uses libc::syscall, which writes errno (our thread's), so the parent waits for its
/// execve (CLONE_VFORK).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
const CLONE_FLAGS: libc::c_int = libc::CLONE_VM;
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const CLONE_FLAGS: libc::c_int = libc::CLONE_VM | libc::CLONE_VFORK;

/// What the child needs, prepared before the clone.
struct ChildArgs {
    fds: [RawFd; 3],
    path: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    cwd: *const libc::c_char,
    limit: Option<libc::rlimit>,
    user: Option<Credentials>,
    failure: *const libc::c_char,
    failure_len: usize,
    caught: *const libc::c_int,
    ncaught: usize,
}

struct Credentials {
    groups: *const libc::gid_t,
    ngroups: usize,
    gid: libc::gid_t,
    uid: libc::uid_t,
}

/// The signals that have a handler in this process (std's SIGSEGV and SIGBUS, say):
/// the child puts them back to SIG_DFL before it unblocks signals. Read when a program
/// is prepared; the supervisor takes its own signals by signalfd and installs no
/// handler later.
fn caught_signals() -> Vec<libc::c_int> {
    (1..libc::SIGRTMIN())
        .chain(libc::SIGRTMIN()..=libc::SIGRTMAX())
        .filter(|&sig| {
            // SAFETY: reading a disposition into a zeroed struct.
            unsafe {
                let mut old: libc::sigaction = std::mem::zeroed();
                libc::sigaction(sig, std::ptr::null(), &mut old) == 0
                    && old.sa_sigaction != libc::SIG_DFL
                    && old.sa_sigaction != libc::SIG_IGN
            }
        })
        .collect()
}

/// A system call that touches no memory but its arguments: the return value, or
/// -errno. (libc::syscall would store errno, in the thread-local storage the child
/// shares with our thread.)
///
/// # Safety
/// As the system call itself.
#[cfg(target_arch = "x86_64")]
unsafe fn sys(n: libc::c_long, a: [usize; 4]) -> isize {
    let ret: isize;
    // SAFETY: the caller's; the kernel clobbers rcx and r11 only.
    unsafe {
        std::arch::asm!(
            "syscall",
            inlateout("rax") n as isize => ret,
            in("rdi") a[0],
            in("rsi") a[1],
            in("rdx") a[2],
            in("r10") a[3],
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

#[cfg(target_arch = "aarch64")]
unsafe fn sys(n: libc::c_long, a: [usize; 4]) -> isize {
    let ret: isize;
    // SAFETY: the caller's.
    unsafe {
        std::arch::asm!(
            "svc 0",
            in("x8") n as usize,
            inlateout("x0") a[0] => ret,
            in("x1") a[1],
            in("x2") a[2],
            in("x3") a[3],
            options(nostack),
        );
    }
    ret
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
unsafe fn sys(n: libc::c_long, a: [usize; 4]) -> isize {
    // SAFETY: the caller's; the parent waits (CLONE_VFORK), so errno is free to write.
    let r = unsafe { libc::syscall(n, a[0], a[1], a[2], a[3]) };
    if r < 0 {
        -(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EINVAL) as isize)
    } else {
        r as isize
    }
}

/// The child of [`Program::spawn`], on its own stack in the parent's memory: raw
/// system calls only, then execve, or exit_group(126 or 127).
extern "C" fn child(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the parent's ChildArgs, alive and unchanged until this child is
    // reaped (Program::spawn). Every call below is a system call through `sys`, which
    // touches no memory of the parent's but what it is given; nothing allocates, takes
    // a lock or can panic. The credentials go by system call, not glibc's setuid and
    // friends, which would signal what glibc takes for our threads (the parent's).
    unsafe {
        let a = &*(arg as *const ChildArgs);
        let exit = |code: usize| -> ! {
            loop {
                sys(libc::SYS_exit_group, [code, 0, 0, 0]);
            }
        };
        let mut high = [-1isize; 3];
        for (copy, &fd) in high.iter_mut().zip(a.fds.iter()) {
            *copy = sys(
                libc::SYS_fcntl,
                [fd as usize, libc::F_DUPFD as usize, 10, 0],
            );
        }
        // Copies above 2 first, so that dup2 onto 0..2 cannot clobber one another.
        for (i, &fd) in high.iter().enumerate() {
            if fd < 0 || sys(libc::SYS_dup3, [fd as usize, i, 0, 0]) < 0 {
                exit(126);
            }
        }
        for &fd in &high {
            sys(libc::SYS_close, [fd as usize, 0, 0, 0]);
        }
        sys(libc::SYS_setpgid, [0, 0, 0, 0]);
        if let Some(limit) = &a.limit {
            sys(
                libc::SYS_prlimit64,
                [
                    0,
                    libc::RLIMIT_NOFILE as usize,
                    limit as *const _ as usize,
                    0,
                ],
            );
        }
        if sys(libc::SYS_chdir, [a.cwd as usize, 0, 0, 0]) != 0 {
            exit(126);
        }
        if let Some(user) = &a.user
            && sys(libc::SYS_geteuid, [0; 4]) == 0
            && (sys(
                libc::SYS_setgroups,
                [user.ngroups, user.groups as usize, 0, 0],
            ) != 0
                || sys(libc::SYS_setgid, [user.gid as usize, 0, 0, 0]) != 0
                || sys(libc::SYS_setuid, [user.uid as usize, 0, 0, 0]) != 0)
        {
            exit(126);
        }
        // The kernel's struct sigaction, all zero: SIG_DFL, no flags, an empty mask.
        let dfl = [0u64; 4];
        // SIGPIPE (ignored here) and every caught signal get the default disposition.
        let caught = std::slice::from_raw_parts(a.caught, a.ncaught);
        for &sig in caught.iter().chain(std::iter::once(&libc::SIGPIPE)) {
            sys(
                libc::SYS_rt_sigaction,
                [sig as usize, dfl.as_ptr() as usize, 0, 8],
            );
        }
        let empty: u64 = 0;
        sys(
            libc::SYS_rt_sigprocmask,
            [
                libc::SIG_SETMASK as usize,
                &empty as *const u64 as usize,
                0,
                8,
            ],
        );
        sys(
            libc::SYS_execve,
            [a.path as usize, a.argv as usize, a.envp as usize, 0],
        );
        sys(libc::SYS_write, [2, a.failure as usize, a.failure_len, 0]);
        exit(127)
    }
}

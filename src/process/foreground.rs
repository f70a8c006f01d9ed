//! A command run in the foreground for `servicectl run`: it shares servicectl's
//! terminal, process group, standard input and output (so an interactive test runner or
//! a shell works as if started directly), and the signals that end a run reach it first.
//!
//! While it runs, SIGINT, SIGTERM, SIGHUP and SIGQUIT are caught: a handler writes the
//! signal to a pipe, and one `poll` waits on that pipe and on the command's pidfd, so
//! servicectl wakes for the exit or a signal and for nothing else. A signal someone sent
//! to servicectl (`kill`, a CI runner's timeout) is passed on to the command; one the
//! terminal sent (Ctrl-C, si_code SI_KERNEL) already reached the command, which is in
//! the terminal's foreground process group with servicectl, and is not sent twice.
//! Once the command has ended, the handler stays until the caller drops the
//! [`Foreground`]: the services are stopped, not abandoned, by a second Ctrl-C.

use crate::error::{Error, Result};
use crate::process::env::Env;
use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, Signal};
use std::ffi::OsString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicI32, Ordering};

const FORWARDED: [Signal; 4] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
];

/// The write end of the signal pipe (-1: none).
static PIPE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn caught(sig: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler.
    let from_terminal = !info.is_null() && unsafe { (*info).si_code } == libc::SI_KERNEL;
    let byte = [sig as u8 | if from_terminal { 0x80 } else { 0 }];
    let fd = PIPE.load(Ordering::SeqCst);
    if fd >= 0 {
        // SAFETY: write(2) is async-signal-safe; a full pipe drops the byte (the
        // command gets the signals already queued).
        unsafe { libc::write(fd, byte.as_ptr().cast(), 1) };
    }
}

/// How the command ended.
pub enum Ended {
    /// Its exit code as a shell gives it (128 + N for signal N).
    Exited(i32),
    /// It could not be started: why, and the code a shell gives then (127, 126).
    NotStarted(Error, i32),
}

/// While it lives, the forwarded signals are caught (see the module's note).
pub struct Foreground {
    read: OwnedFd,
    _write: OwnedFd,
    previous: Vec<(Signal, SigAction)>,
}

impl Foreground {
    pub fn catch() -> Result<Foreground> {
        let (read, write) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)
                .map_err(|e| Error::runtime(format!("cannot make a pipe: {e}")))?;
        PIPE.store(write.as_raw_fd(), Ordering::SeqCst);
        let action = SigAction::new(
            SigHandler::SigAction(caught),
            SaFlags::SA_RESTART | SaFlags::SA_SIGINFO,
            SigSet::empty(),
        );
        let mut previous = Vec::new();
        for sig in FORWARDED {
            // SAFETY: the handler only writes one byte to a pipe.
            if let Ok(old) = unsafe { signal::sigaction(sig, &action) } {
                previous.push((sig, old));
            }
        }
        Ok(Foreground {
            read,
            _write: write,
            previous,
        })
    }

    /// Run `program` with `args` and exactly `env`, in the current directory, with
    /// servicectl's standard input, output and error; pass signals on until it ends.
    pub fn run(&self, program: &OsString, args: &[OsString], env: &Env) -> Result<Ended> {
        let spawned = Command::new(program)
            .args(args)
            .env_clear()
            .envs(env.iter())
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => {
                // As a shell says it: 127 not found, 126 found but not runnable.
                let code = if e.kind() == std::io::ErrorKind::NotFound {
                    127
                } else {
                    126
                };
                let error =
                    Error::runtime(format!("cannot run {}: {e}", program.to_string_lossy()))
                        .with_hint("check the command after `--` (is it on PATH, executable?)");
                return Ok(Ended::NotStarted(error, code));
            }
        };
        let pid = child.id() as i32;
        let pidfd = super::proc::pidfd(pid);
        loop {
            if let Some(status) = child
                .try_wait()
                .map_err(|e| Error::runtime(format!("cannot wait for the command: {e}")))?
            {
                return Ok(Ended::Exited(exit_code(status)));
            }
            let mut fds = vec![nix::poll::PollFd::new(
                self.read.as_fd(),
                nix::poll::PollFlags::POLLIN,
            )];
            if let Some(fd) = &pidfd {
                fds.push(nix::poll::PollFd::new(
                    fd.as_fd(),
                    nix::poll::PollFlags::POLLIN,
                ));
            } else {
                // No pidfd (an old kernel): wait for the exit itself; signals then
                // reach the command from the terminal only.
                return child
                    .wait()
                    .map(|status| Ended::Exited(exit_code(status)))
                    .map_err(|e| Error::runtime(format!("cannot wait for the command: {e}")));
            }
            match nix::poll::poll(&mut fds, nix::poll::PollTimeout::NONE) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(Error::runtime(format!("cannot wait for the command: {e}"))),
            }
            for byte in self.drain() {
                let from_terminal = byte & 0x80 != 0;
                if let Ok(sig) = Signal::try_from(i32::from(byte & 0x7f))
                    && !from_terminal
                {
                    let _ = signal::kill(nix::unistd::Pid::from_raw(pid), sig);
                }
            }
        }
    }

    /// The first signal caught since the last look, if any (the others are dropped).
    pub fn pending(&self) -> Option<Signal> {
        self.drain()
            .first()
            .and_then(|b| Signal::try_from(i32::from(b & 0x7f)).ok())
    }

    /// The signals caught since the last call.
    fn drain(&self) -> Vec<u8> {
        let mut all = Vec::new();
        let mut buf = [0u8; 64];
        while let Ok(n) = nix::unistd::read(&self.read, &mut buf) {
            if n == 0 {
                break;
            }
            all.extend_from_slice(&buf[..n]);
        }
        all
    }
}

impl Drop for Foreground {
    fn drop(&mut self) {
        for (sig, old) in &self.previous {
            // SAFETY: putting back the disposition sigaction gave us.
            let _ = unsafe { signal::sigaction(*sig, old) };
        }
        PIPE.store(-1, Ordering::SeqCst);
    }
}

/// The exit code a shell would give for `status`: the command's own, or 128 + the
/// signal that ended it.
fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1)
}

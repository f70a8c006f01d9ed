//! `servicectl supervise`: one supervisor per playpen keeps its services alive (docs/supervisor.md).
//!
//! One thread waits on every event source at once with epoll ([`core`]): a signalfd
//! (SIGTERM, SIGINT, SIGCHLD, SIGHUP), the control socket and its clients, one pidfd
//! per supervised process, a timerfd armed for the earliest deadline (backoff,
//! readiness retries, `wait` timeouts), an eventfd that worker threads write when a
//! job is done ([`jobs`]), inotify on `var/run` (direct starts and stops), the
//! listening sockets of inetd services and the pidfds of cron runs and inetd handlers
//! (fire times of [`cron`] services are deadlines of the same timer).
//! Idle, it sleeps in the kernel and wakes for nothing. docs/supervisor.md explains
//! states, backoff and routing; docs/protocol.md the protocol ([`crate::control`]).

pub mod backoff;
pub mod cron;
mod driver;
mod fork;
pub mod jobs;
pub mod keeper;
pub mod lock;
pub mod machine;

use crate::error::{Error, Result};
use crate::playpen::Playpen;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};

/// How `servicectl supervise` was asked to run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Detach, and return once the socket accepts.
    pub daemon: bool,
    /// Adopt what runs, start nothing.
    pub no_start: bool,
}

/// Run the supervisor of `playpen` until it is shut down; the exit code (0 after a
/// shutdown, non-zero when a fail-fast service failed for good).
pub fn supervise(playpen: &Playpen, options: Options) -> Result<i32> {
    // Descriptors inherited from whoever started us (a shell, a test harness) must not
    // reach the services, cron runs and inetd handlers we start: close-on-exec for all
    // but stdin, stdout and stderr. (A kernel without close_range keeps them; harmless.)
    // SAFETY: close_range only changes descriptor flags.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        );
    }
    crate::process::limits::raise_own();
    playpen.ensure_var()?;
    let lock = lock::SupervisorLock::acquire(playpen)?;
    let ready = if options.daemon {
        match detach(playpen)? {
            Detached::Parent(code) => return Ok(code),
            Detached::Daemon(pipe) => {
                lock.record_pid()?;
                Some(pipe)
            }
        }
    } else {
        None
    };
    // A socket file left behind means the last supervisor did not shut down (it was
    // killed): what it started may still run, cron runs and checks included.
    let after_kill = crate::control::socket_path(&playpen.root).exists();
    let listener = lock.bind(playpen)?;
    // Services write into pipes to the playpen's output keeper, which writes and
    // rotates their files (docs/supervisor.md, "Output"). One that runs already (left by
    // a supervisor that was killed) is connected to, not started twice. Without one the
    // services write their files themselves, unrotated, as without a supervisor.
    let keeper = match keeper::Keeper::connect_or_spawn(playpen) {
        Ok(k) => Some(k),
        Err(e) => {
            eprintln!(
                "servicectl supervise: {e}; services write their output files themselves (not rotated)"
            );
            None
        }
    };
    let mut supervisor =
        driver::Driver::new(playpen, listener, options, keeper.clone(), after_kill)?;
    if let Some(pipe) = ready {
        let mut pipe = std::fs::File::from(pipe);
        let _ = pipe.write_all(b"1");
    }
    let code = supervisor.run();
    // Shut down: close the socket at once, so that a command run right after the
    // shutdown's answer acts directly instead of connecting to a listener that no one
    // will accept from again (and reading a reset when this process exits).
    drop(supervisor);
    let _ = std::fs::remove_file(crate::control::socket_path(&playpen.root));
    // Every service has been stopped: the keeper writes what is left and exits.
    if let Some(k) = keeper
        && let Err(e) = k.finish(std::time::Duration::from_secs(5))
    {
        eprintln!("servicectl supervise: {e}");
    }
    drop(lock);
    Ok(code)
}

enum Detached {
    /// The command that was run: its exit code once the daemon listens (or failed).
    Parent(i32),
    /// The daemon, with the pipe to report readiness on.
    Daemon(OwnedFd),
}

/// Double fork with setsid in between: the daemon is no session leader, has no
/// terminal, and is no child of the caller. The caller waits on a pipe until the daemon
/// listens; its output goes to `var/run/servicectl.supervise.output`.
fn detach(playpen: &Playpen) -> Result<Detached> {
    use nix::unistd::{ForkResult, fork, setsid};
    let log = lock::log_path(playpen);
    let log_file = crate::process::output::open_output(&log)?;
    let (read_end, write_end) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| Error::runtime(format!("cannot make a pipe: {e}")))?;
    // SAFETY: no thread has been started yet (the CLI is single-threaded up to here), so
    // the child may go on running ordinary Rust code.
    match unsafe { fork() }.map_err(|e| Error::runtime(format!("cannot fork: {e}")))? {
        ForkResult::Parent { child } => {
            drop(write_end);
            let _ = nix::sys::wait::waitpid(child, None);
            let mut byte = [0u8; 1];
            let mut pipe = std::fs::File::from(read_end);
            let code = match pipe.read(&mut byte) {
                Ok(1) => 0,
                _ => {
                    eprintln!(
                        "servicectl: the supervisor did not start; see {}",
                        log.display()
                    );
                    1
                }
            };
            Ok(Detached::Parent(code))
        }
        ForkResult::Child => {
            drop(read_end);
            let _ = setsid();
            // SAFETY: as above, still one thread.
            match unsafe { fork() } {
                Ok(ForkResult::Parent { .. }) => std::process::exit(0),
                Ok(ForkResult::Child) => {}
                Err(_) => std::process::exit(1),
            }
            let null = std::fs::File::open("/dev/null")
                .map_err(|e| Error::io("open", std::path::Path::new("/dev/null"), e))?;
            let _ = nix::unistd::dup2_stdin(&null);
            let _ = nix::unistd::dup2_stdout(&log_file);
            let _ = nix::unistd::dup2_stderr(&log_file);
            drop(null);
            drop(log_file);
            debug_assert!(write_end.as_raw_fd() > 2);
            Ok(Detached::Daemon(write_end))
        }
    }
}

//! One supervisor per playpen: a lock file (`var/run/servicectl.supervise.lock`, flock,
//! holding the PID) and the control socket, which is only ever removed by whoever
//! holds the lock, so that a live supervisor's socket is never taken away.

use crate::error::{Error, ErrorKind, Result};
use crate::playpen::Playpen;
use std::fs::{File, OpenOptions};
use std::io::{Seek, Write};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;

pub fn lock_path(playpen: &Playpen) -> PathBuf {
    playpen.supervisor_lock()
}

/// The playpen's supervisor is gone, or exits within `within` (waited for on its
/// pidfd): true. False while one holds the lock.
pub fn gone_within(playpen: &Playpen, within: std::time::Duration) -> bool {
    let holder = crate::playpen::fsutil::read_optional(&lock_path(playpen))
        .ok()
        .flatten()
        .and_then(|t| t.trim().parse::<i32>().ok());
    holder.is_none_or(|pid| crate::process::proc::wait_exit(pid, within))
}

/// The supervisor's log when it runs as a daemon.
pub fn log_path(playpen: &Playpen) -> PathBuf {
    playpen.run_dir().join("servicectl.supervise.output")
}

/// Held for the supervisor's life; the kernel releases it when the process dies, however
/// it dies.
pub struct SupervisorLock {
    file: File,
}

impl SupervisorLock {
    /// Take the lock, or say which PID holds it.
    pub fn acquire(playpen: &Playpen) -> Result<SupervisorLock> {
        let path = lock_path(playpen);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io("open", &path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) if !Self::released_soon(&file, &path) => {
                let holder = crate::playpen::fsutil::read_optional(&path)
                    .ok()
                    .flatten()
                    .and_then(|t| t.trim().parse::<i32>().ok());
                let who = holder.map_or_else(
                    || "another supervisor (starting up)".to_string(),
                    |pid| format!("PID {pid}"),
                );
                return Err(Error::new(
                    ErrorKind::Runtime,
                    format!("{} is already supervised by {who}", playpen.root.display()),
                )
                .with_hint(
                    "talk to it with servicectl status/start/stop; `servicectl shutdown` ends it",
                ));
            }
            Err(std::fs::TryLockError::WouldBlock) => {}
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io("lock", &path, e)),
        }
        let lock = SupervisorLock { file };
        lock.record_pid()?;
        Ok(lock)
    }

    /// The lock is busy but the supervisor that took it is dead or dying: a process it was
    /// starting when it was killed may still hold a copy of its descriptors for a moment
    /// (a child between fork and exec). Wait for the lock on a helper thread, a few
    /// seconds at most, instead of refusing to start.
    fn released_soon(file: &File, path: &std::path::Path) -> bool {
        let holder = crate::playpen::fsutil::read_optional(path)
            .ok()
            .flatten()
            .and_then(|t| t.trim().parse::<i32>().ok());
        // Dead, or dying: SIGKILL sent and not yet acted on (`kill -9` returns before
        // the process has exited, and a relaunch right after it must not be refused).
        if holder.is_none_or(|pid| {
            crate::process::proc::is_alive(pid) && !crate::process::proc::sigkill_pending(pid)
        }) {
            return false;
        }
        let Ok(copy) = file.try_clone() else {
            return false;
        };
        let (tx, rx) = std::sync::mpsc::channel();
        // The copy shares the open file description: its lock is ours.
        std::thread::spawn(move || {
            let _ = tx.send(copy.lock().is_ok());
        });
        rx.recv_timeout(std::time::Duration::from_secs(5))
            .unwrap_or(false)
    }

    /// Write our PID into the lock file (again after detaching: the PID changed).
    pub fn record_pid(&self) -> Result<()> {
        let path = PathBuf::from("the supervisor lock file");
        let mut file = &self.file;
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| writeln!(file, "{}", std::process::id()))
            .map_err(|e| Error::io("write", &path, e))
    }

    /// Bind the control socket, mode 0600. A socket file already there was left by a
    /// supervisor that died (we hold the lock, so none runs): it is removed first.
    pub fn bind(&self, playpen: &Playpen) -> Result<UnixListener> {
        let path = crate::control::socket_path(&playpen.root);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove the stale socket", &path, e)),
        }
        // Created 0600 from the start: no moment where another user could connect.
        let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
        let bound = UnixListener::bind(&path);
        nix::sys::stat::umask(old);
        let listener = bound.map_err(|e| {
            let err = Error::io("listen on", &path, e);
            if path.as_os_str().len() >= 108 {
                err.with_hint("the socket path is longer than the 107 bytes Unix sockets allow; use a playpen with a shorter path")
            } else {
                err
            }
        })?;
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::io("configure", &path, e))?;
        Ok(listener)
    }
}

//! What the kernel tells us about processes: identity from /proc, waiting for exit
//! without polling (pidfd), and signals to whole process groups.

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// What /proc/PID/stat says about a live process: its place in the process tree and
/// its start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub ppid: i32,
    pub pgid: i32,
    pub sid: i32,
    /// Kernel start time in clock ticks since boot (field 22). Together with the PID it
    /// identifies one process for good: a reused PID has a later start time.
    pub start_ticks: u64,
}

/// /proc/PID/stat of a live process; None for zombies and processes that are gone.
pub fn stat(pid: i32) -> Option<Stat> {
    let raw =
        crate::playpen::fsutil::read_small(std::path::Path::new(&format!("/proc/{pid}/stat")))
            .ok()?;
    parse_stat(&raw)
}

fn parse_stat(raw: &[u8]) -> Option<Stat> {
    // The command name (field 2) may contain spaces and parentheses: skip past the last ')'.
    let close = raw.iter().rposition(|&b| b == b')')?;
    let after = std::str::from_utf8(&raw[close + 1..]).ok()?;
    // after ')' the fields are numbered from 3.
    let fields: Vec<&str> = after.split_whitespace().take(20).collect();
    let state = *fields.first()?;
    if state == "Z" || state == "X" {
        return None;
    }
    Some(Stat {
        ppid: fields.get(1)?.parse().ok()?,
        pgid: fields.get(2)?.parse().ok()?,
        sid: fields.get(3)?.parse().ok()?,
        start_ticks: fields.get(22 - 3)?.parse().ok()?,
    })
}

/// The start time of a process in clock ticks since boot (field 22 of /proc/PID/stat);
/// None when it is gone or a zombie.
pub fn start_ticks(pid: i32) -> Option<u64> {
    stat(pid).map(|s| s.start_ticks)
}

/// This process's start time (read once).
pub fn own_start_ticks() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| start_ticks(std::process::id() as i32).unwrap_or(0))
}

/// Is `pid` a live (non-zombie) process?
pub fn is_alive(pid: i32) -> bool {
    pid > 0 && start_ticks(pid).is_some()
}

/// Seconds since boot, from /proc/uptime.
pub fn uptime_secs() -> Option<f64> {
    String::from_utf8_lossy(
        &crate::playpen::fsutil::read_small(std::path::Path::new("/proc/uptime")).ok()?,
    )
    .split_whitespace()
    .next()?
    .parse()
    .ok()
}

pub fn clock_ticks_per_sec() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as u64 } else { 100 }
}

/// How long the process has been running.
pub fn age(start_ticks: u64, uptime: f64) -> Duration {
    let started = start_ticks as f64 / clock_ticks_per_sec() as f64;
    Duration::from_secs_f64((uptime - started).max(0.0))
}

/// argv[0] of a process, from /proc/PID/cmdline.
pub fn argv0(pid: i32) -> Option<String> {
    let raw =
        crate::playpen::fsutil::read_small(std::path::Path::new(&format!("/proc/{pid}/cmdline")))
            .ok()?;
    let first = raw.split(|&b| b == 0).next()?;
    Some(String::from_utf8_lossy(first).into_owned())
}

/// The executable of a process (/proc/PID/exe), when we may read it.
pub fn exe(pid: i32) -> Option<std::path::PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/exe")).ok()
}

/// The most of /proc/PID/environ that is read: environments are a few KiB; a bigger
/// one is read this far (what servicectl sets is near the front: see `spawn`).
pub const ENVIRON_LIMIT: usize = 1 << 20;

/// The environment a process started with (/proc/PID/environ), at most
/// [`ENVIRON_LIMIT`] bytes, into `buf` (reused across calls); false when it cannot be
/// read (gone, or another user's process).
pub fn read_environ(pid: i32, buf: &mut Vec<u8>) -> bool {
    use std::io::Read;
    buf.clear();
    let Ok(mut file) = std::fs::File::open(format!("/proc/{pid}/environ")) else {
        return false;
    };
    let mut chunk = 16 * 1024;
    loop {
        let len = buf.len();
        let room = chunk.min(ENVIRON_LIMIT - len);
        if room == 0 {
            return true;
        }
        buf.resize(len + room, 0);
        match file.read(&mut buf[len..]) {
            Ok(0) => {
                buf.truncate(len);
                return true;
            }
            Ok(n) => {
                buf.truncate(len + n);
                chunk *= 2;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => buf.truncate(len),
            Err(_) => {
                buf.truncate(len);
                return len > 0;
            }
        }
    }
}

/// The value of `name` in a raw environment (NUL-separated `NAME=VALUE` entries).
pub fn env_value<'a>(environ: &'a [u8], name: &str) -> Option<&'a [u8]> {
    environ.split(|&b| b == 0).find_map(|entry| {
        entry
            .strip_prefix(name.as_bytes())
            .and_then(|rest| rest.strip_prefix(b"="))
    })
}

/// Live processes that lead their own session (servicectl starts every service in a
/// session of its own), from /proc.
pub fn session_leaders() -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| {
            let Ok(raw) = crate::playpen::fsutil::read_small(std::path::Path::new(&format!(
                "/proc/{pid}/stat"
            ))) else {
                return false;
            };
            let stat = String::from_utf8_lossy(&raw);
            let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
                return false;
            };
            // state ppid pgrp session …
            let fields: Vec<&str> = after.split_whitespace().take(4).collect();
            fields.len() == 4 && !matches!(fields[0], "Z" | "X") && fields[3] == pid.to_string()
        })
        .collect()
}

/// The value of one variable of the environment a process started with.
pub fn environ_var(pid: i32, name: &str) -> Option<String> {
    let raw =
        crate::playpen::fsutil::read_small(std::path::Path::new(&format!("/proc/{pid}/environ")))
            .ok()?;
    let prefix = format!("{name}=");
    raw.split(|&b| b == 0)
        .find_map(|e| e.strip_prefix(prefix.as_bytes()))
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// A handle that becomes readable when the process exits, for any process (not only our
/// children). None on kernels without pidfd_open or when the process is already gone.
pub fn pidfd(pid: i32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: the kernel just gave us this descriptor and nobody else owns it.
    Some(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Does the process of pidfd `fd` still hold its PID (running, or a zombie not yet
/// reaped)? While it does, no other process can have that PID, so what /proc says of
/// the PID is of this process.
pub fn pidfd_holds(fd: BorrowedFd) -> bool {
    // SAFETY: pidfd_send_signal takes a descriptor, a signal (0: only the checks), no
    // siginfo and no flags; it reads and writes no memory of ours.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            0,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    // EPERM: another user's process, there all the same.
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Wait until `pid` exits or `timeout` passes; true when it is gone. Sleeps in the
/// kernel (poll on a pidfd) so it wakes the moment the process dies.
pub fn wait_exit(pid: i32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    match pidfd(pid) {
        Some(fd) => loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let mut fds = [nix::poll::PollFd::new(
                fd.as_fd(),
                nix::poll::PollFlags::POLLIN,
            )];
            let ms = left.as_millis().min(i32::MAX as u128) as i32;
            match nix::poll::poll(
                &mut fds,
                nix::poll::PollTimeout::try_from(ms).unwrap_or(nix::poll::PollTimeout::MAX),
            ) {
                Ok(0) => return !is_alive(pid),
                Ok(_) => return true,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => break,
            }
        },
        None => return !is_alive(pid),
    }
    // pidfd unusable: fall back to short sleeps.
    while Instant::now() < deadline {
        if !is_alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    !is_alive(pid)
}

/// Signal the process group led by `pid` when it leads one (we start services in their
/// own session), else the process alone — never our own group.
pub fn signal_service(pid: i32, sig: Signal) -> nix::Result<()> {
    let target = Pid::from_raw(pid);
    let own_group = nix::unistd::getpgrp();
    match nix::unistd::getpgid(Some(target)) {
        Ok(pgid) if pgid == target && pgid != own_group => signal::killpg(pgid, sig),
        _ => signal::kill(target, sig),
    }
}

/// Signal the process alone (SIGHUP goes to a master process, not its workers).
pub fn signal_service_only(pid: i32, sig: Signal) -> nix::Result<()> {
    signal::kill(Pid::from_raw(pid), sig)
}

/// SIGKILL is pending for the process (sent, not yet acted on): it is dying.
pub fn sigkill_pending(pid: i32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    let bit = 1u64 << (libc::SIGKILL - 1);
    status.lines().any(|line| {
        let mask = line
            .strip_prefix("SigPnd:")
            .or_else(|| line.strip_prefix("ShdPnd:"));
        mask.and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
            .is_some_and(|m| m & bit != 0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifies_itself() {
        let me = std::process::id() as i32;
        assert!(start_ticks(me).is_some());
        assert!(is_alive(me));
        assert!(!is_alive(-1));
        let stat = stat(me).unwrap();
        assert_eq!(stat.ppid, nix::unistd::getppid().as_raw());
        assert_eq!(stat.pgid, nix::unistd::getpgrp().as_raw());
    }

    #[test]
    fn parses_stat_with_odd_command_names() {
        let raw = b"42 (a) b (c)) S 1 40 39 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 123456 0 0";
        let stat = parse_stat(raw).unwrap();
        assert_eq!((stat.ppid, stat.pgid, stat.sid), (1, 40, 39));
        assert_eq!(stat.start_ticks, 123456);
        assert_eq!(
            parse_stat(b"42 (z) Z 1 40 39 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 9 0"),
            None
        );
    }

    #[test]
    fn reads_its_own_environment() {
        let mut buf = Vec::new();
        assert!(read_environ(std::process::id() as i32, &mut buf));
        let path = std::env::var("PATH").unwrap_or_default();
        if !path.is_empty() {
            assert_eq!(env_value(&buf, "PATH"), Some(path.as_bytes()));
        }
        assert_eq!(env_value(b"A=1\0AB=2\0", "A"), Some(&b"1"[..]));
        assert_eq!(env_value(b"AB=2\0", "A"), None);
    }

    #[test]
    fn wait_exit_wakes_when_a_child_dies() {
        let mut child = std::process::Command::new("sleep")
            .arg("0.05")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let started = Instant::now();
        // Reap in a thread so the zombie disappears (as init would do for a service).
        let reaper = std::thread::spawn(move || child.wait());
        assert!(wait_exit(pid, Duration::from_secs(5)));
        assert!(started.elapsed() < Duration::from_secs(4));
        reaper.join().unwrap().unwrap();
    }
}

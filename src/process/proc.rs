//! What the kernel tells us about processes: identity from /proc, waiting for exit
//! without polling (pidfd), and signals to whole process groups.

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// The start time of a process in clock ticks since boot (field 22 of /proc/PID/stat).
/// Together with the PID it identifies one process for good: a reused PID has a later
/// start time.
pub fn start_ticks(pid: i32) -> Option<u64> {
    let raw =
        crate::playpen::fsutil::read_small(std::path::Path::new(&format!("/proc/{pid}/stat")))
            .ok()?;
    let stat = String::from_utf8_lossy(&raw);
    // The command name (field 2) may contain spaces and parentheses: skip past the last ')'.
    let after = &stat[stat.rfind(')')? + 1..];
    let mut fields = after.split_whitespace();
    // after ')' the fields are numbered from 3; starttime is field 22.
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    fields.nth(22 - 4)?.parse().ok()
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

/// Does the environment a process started with (/proc/PID/environ) hold every one of
/// these `NAME=VALUE` entries? False when it cannot be read.
pub fn environ_has(pid: i32, entries: &[String]) -> bool {
    let Ok(raw) =
        crate::playpen::fsutil::read_small(std::path::Path::new(&format!("/proc/{pid}/environ")))
    else {
        return false;
    };
    let present: Vec<&[u8]> = raw.split(|&b| b == 0).collect();
    entries.iter().all(|e| present.contains(&e.as_bytes()))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifies_itself() {
        let me = std::process::id() as i32;
        assert!(start_ticks(me).is_some());
        assert!(is_alive(me));
        assert!(!is_alive(-1));
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

//! Real processes, seen through /proc: liveness, parents, argv, environment; signals;
//! processes the test itself starts.

use super::{PATIENCE, parse_env0, wait_until};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};

pub fn all_pids() -> Vec<i32> {
    std::fs::read_dir("/proc")
        .expect("read /proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

/// The fields of /proc/PID/stat after the command name: state is [0], ppid [1],
/// pgrp [2], session [3].
pub fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    Some(after.split_whitespace().map(str::to_string).collect())
}

/// A live process (zombies count as dead: nothing reaps orphans in some containers).
pub fn alive(pid: i32) -> bool {
    stat_fields(pid).is_some_and(|f| f[0] != "Z" && f[0] != "X")
}

/// SIGKILL `pid` and wait until it is gone.
#[track_caller]
pub fn kill9(pid: i32) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
    assert_dies(pid, "a process sent SIGKILL");
}

/// Wait until a process is gone.
#[track_caller]
pub fn assert_dies(pid: i32, what: &str) {
    assert!(
        wait_until(PATIENCE, || !alive(pid)),
        "{what} (PID {pid}) is still alive"
    );
}

/// Live direct children of a process, sorted.
pub fn children(pid: i32) -> Vec<i32> {
    let mut kids: Vec<i32> = all_pids()
        .into_iter()
        .filter(|&p| alive(p) && stat_fields(p).is_some_and(|f| f[1] == pid.to_string()))
        .collect();
    kids.sort();
    kids
}

/// argv of a process, from /proc/PID/cmdline.
pub fn cmdline(pid: i32) -> Vec<String> {
    let mut argv: Vec<String> = std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| {
            raw.split(|&b| b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default();
    if argv.last().is_some_and(|l| l.is_empty()) {
        argv.pop();
    }
    argv
}

/// The environment a process really got, from /proc/PID/environ.
pub fn environ(pid: i32) -> BTreeMap<String, String> {
    parse_env0(&std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default())
}

/// One variable of a process's environment.
pub fn env_of(pid: i32, var: &str) -> Option<String> {
    environ(pid).remove(var)
}

/// Whether /proc/PID/environ holds exactly the entry `entry` (`NAME=value`).
pub fn environ_has(pid: i32, entry: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/environ"))
        .is_ok_and(|raw| raw.split(|&b| b == 0).any(|e| e == entry.as_bytes()))
}

/// The working directory of a process, if it can be read.
pub fn cwd(pid: i32) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/cwd")).ok()
}

pub fn kill(pid: i32, sig: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
}

/// The real `sleep` binary.
pub fn which_sleep() -> PathBuf {
    ["/usr/bin/sleep", "/bin/sleep"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .expect("sleep is installed")
}

/// A process the test itself started (not a service), killed and reaped on drop.
pub struct Bystander {
    pub child: std::process::Child,
}

impl Bystander {
    /// `sleep 1000`, unrelated to any playpen.
    pub fn sleep() -> Bystander {
        let child = Command::new(which_sleep())
            .arg("1000")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sleep");
        Bystander { child }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }
}

impl Drop for Bystander {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A PID that is certainly dead now: a child we started and reaped.
pub fn dead_pid() -> i32 {
    let mut child = Command::new("true").spawn().expect("spawn true");
    let pid = child.id() as i32;
    child.wait().expect("wait for true");
    pid
}

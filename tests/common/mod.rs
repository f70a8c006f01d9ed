//! Shared fixture for the integration tests: a temporary playpen made with
//! `servicectl init`, helpers to write configs and programs, to run the real binary,
//! and to look at real processes through /proc.
//!
//! Cleanup: when a `Playpen` is dropped, every live process whose environment holds
//! `PLAYPEN_ROOT=<this playpen>` is killed. Every process servicectl starts for a
//! service (program, daemons it forks, hooks) carries that variable, and each playpen
//! is a unique temporary directory, so this never touches processes of other tests.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_servicectl");

/// Environment variables that would change what servicectl does; tests set them
/// explicitly when they mean to.
const SCRUBBED_ENV: &[&str] = &[
    "PLAYPEN_ROOT",
    "PLAYPEN_ROLE",
    "PLAYPEN_CLUSTER",
    "PLAYPEN_TAG",
    "PORT_PREFIX",
    "SERVICECTL_CONFIG_TIMEOUT",
    "SERVICECTL_HOOK_TIMEOUT",
    "CLASSPATH",
];

/// What a servicectl run produced.
#[derive(Debug, Clone)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Out {
    fn from_output(output: Output, elapsed: Duration) -> Out {
        use std::os::unix::process::ExitStatusExt;
        let code = output
            .status
            .code()
            .unwrap_or_else(|| 128 + output.status.signal().unwrap_or(0));
        Out {
            code,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            elapsed,
        }
    }

    /// stdout and stderr together, for searching messages.
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    /// Exit 0 and no panic.
    #[track_caller]
    pub fn ok(&self) -> &Out {
        assert_eq!(self.code, 0, "expected success:\n{self}");
        self.no_panic()
    }

    /// A non-zero exit, without a panic.
    #[track_caller]
    pub fn fails(&self) -> &Out {
        assert_ne!(self.code, 0, "expected failure:\n{self}");
        self.no_panic()
    }

    #[track_caller]
    pub fn no_panic(&self) -> &Out {
        assert!(
            !self.stderr.contains("panicked"),
            "servicectl panicked:\n{self}"
        );
        self
    }

    /// Every needle occurs in stdout or stderr.
    #[track_caller]
    pub fn says(&self, needles: &[&str]) -> &Out {
        let all = self.all();
        for needle in needles {
            assert!(
                all.contains(needle),
                "expected {needle:?} in the output:\n{self}"
            );
        }
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{self}"))
    }
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit code: {}\n--- stdout ---\n{}\n--- stderr ---\n{}\n(took {:?})",
            self.code, self.stdout, self.stderr, self.elapsed
        )
    }
}

/// Run a prepared command to completion.
pub fn run_command(cmd: &mut Command) -> Out {
    let started = Instant::now();
    let output = cmd.stdin(Stdio::null()).output().expect("run servicectl");
    Out::from_output(output, started.elapsed())
}

/// A servicectl command with a clean environment (no PLAYPEN_* and no colour) and no
/// playpen chosen: the caller decides how the playpen is found.
pub fn bare_command() -> Command {
    let mut cmd = Command::new(BIN);
    for var in SCRUBBED_ENV {
        cmd.env_remove(var);
    }
    cmd.env("NO_COLOR", "1");
    cmd
}

/// A temporary playpen made by `servicectl init`; its processes are killed on drop.
pub struct Playpen {
    _dir: tempfile::TempDir,
    pub root: PathBuf,
}

impl Playpen {
    /// A new playpen with role `dev` (what `servicectl init` chooses).
    pub fn new() -> Playpen {
        let dir = tempfile::Builder::new()
            .prefix("servicectl-test-")
            .tempdir()
            .expect("make a temporary directory");
        let root = dir.path().canonicalize().expect("canonical temp dir");
        let out = run_command(bare_command().arg("init").arg(&root));
        out.ok();
        Playpen { _dir: dir, root }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// Write a file (making its directories).
    pub fn write(&self, rel: &str, contents: &str) -> PathBuf {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().expect("has a parent")).expect("make directories");
        std::fs::write(&path, contents).expect("write file");
        path
    }

    /// Write an executable file (mode 0755).
    pub fn write_exec(&self, rel: &str, contents: &str) -> PathBuf {
        let path = self.write(rel, contents);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        path
    }

    /// Copy the real `sleep` binary into the playpen, so a program keeps its argv0 and
    /// is its own executable (not a #! script).
    pub fn install_sleep(&self, rel: &str) -> PathBuf {
        let sleep = which_sleep();
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().expect("has a parent")).expect("make directories");
        std::fs::copy(sleep, &path).expect("copy sleep");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        path
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_default()
    }

    pub fn exists(&self, rel: &str) -> bool {
        self.path(rel).symlink_metadata().is_ok()
    }

    /// The role config of role `dev`.
    pub fn role_config(&self, text: &str) -> PathBuf {
        self.write("etc/roles/dev/config", text)
    }

    /// A project-local service: `services/NAME/config`.
    pub fn service(&self, name: &str, config: &str) -> PathBuf {
        self.write(&format!("services/{name}/config"), config)
    }

    /// A packaged service: `ext/services/NAME-VERSION/config`, listed by the package
    /// `NAME-VERSION` (so its run name defaults to NAME).
    pub fn package(&self, name: &str, version: &str, config: &str) -> PathBuf {
        self.write(
            &format!("ext/services/{name}-{version}.services"),
            &format!("{name}\n"),
        );
        self.write(&format!("ext/services/{name}-{version}/config"), config)
    }

    /// servicectl with `--playpen ROOT`, run in the playpen.
    pub fn command(&self) -> Command {
        let mut cmd = bare_command();
        cmd.arg("--playpen").arg(&self.root).current_dir(&self.root);
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Out {
        run_command(self.command().args(args))
    }

    pub fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Out {
        let mut cmd = self.command();
        cmd.args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        run_command(&mut cmd)
    }

    pub fn pidfile(&self, name: &str) -> PathBuf {
        self.path(&format!("var/run/{name}.pid"))
    }

    /// The PID in `var/run/NAME.pid`, if the file exists and holds one.
    pub fn pid(&self, name: &str) -> Option<i32> {
        std::fs::read_to_string(self.pidfile(name))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// The PID in the pidfile; panics (with the output file) when there is none.
    #[track_caller]
    pub fn running_pid(&self, name: &str) -> i32 {
        let pid = self.pid(name).unwrap_or_else(|| {
            panic!("no pidfile for {name}; output file:\n{}", self.output(name))
        });
        assert!(alive(pid), "PID {pid} of {name} is not alive");
        pid
    }

    /// The contents of var/run/NAME.output.
    pub fn output(&self, name: &str) -> String {
        self.read(&format!("var/run/{name}.output"))
    }

    /// Start services and return the output (asserting success).
    #[track_caller]
    pub fn start(&self, names: &[&str]) -> Out {
        let mut args = vec!["start"];
        args.extend_from_slice(names);
        let out = self.run(&args);
        out.ok();
        out
    }

    /// Live processes started for this playpen (their environment names it).
    pub fn processes(&self) -> Vec<i32> {
        let wanted = format!("PLAYPEN_ROOT={}", self.root.display());
        all_pids()
            .into_iter()
            .filter(|&pid| alive(pid) && raw_environ(pid).contains(&wanted))
            .collect()
    }

    /// Files servicectl left half-written (its temporaries) under var/.
    pub fn temporaries(&self) -> Vec<PathBuf> {
        let mut found = Vec::new();
        for dir in ["var", "var/run", "var/linkfarm", "var/servicectl"] {
            if let Ok(entries) = std::fs::read_dir(self.path(dir)) {
                for entry in entries.flatten() {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if name.starts_with(".tmp") || name.ends_with(".tmp") {
                        found.push(entry.path());
                    }
                }
            }
        }
        found
    }
}

impl Default for Playpen {
    fn default() -> Self {
        Playpen::new()
    }
}

impl Drop for Playpen {
    fn drop(&mut self) {
        // Daemons may fork while we kill: repeat until none is left (bounded).
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let pids = self.processes();
            if pids.is_empty() || Instant::now() > deadline {
                break;
            }
            for pid in pids {
                kill(pid, nix::sys::signal::Signal::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn which_sleep() -> PathBuf {
    ["/usr/bin/sleep", "/bin/sleep"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .expect("sleep is installed")
}

/// Poll `cond` until it holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(5);
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// The generous deadline for asynchronous things in tests (a loaded 2-core machine).
pub const PATIENCE: Duration = Duration::from_secs(10);

pub fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

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

/// Wait until a process is gone.
#[track_caller]
pub fn assert_dies(pid: i32, what: &str) {
    assert!(
        wait_until(PATIENCE, || !alive(pid)),
        "{what} (PID {pid}) is still alive"
    );
}

/// argv of a process, from /proc/PID/cmdline.
pub fn cmdline(pid: i32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| {
            raw.split(|&b| b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect::<Vec<_>>()
        })
        .map(|mut v| {
            if v.last().is_some_and(|l| l.is_empty()) {
                v.pop();
            }
            v
        })
        .unwrap_or_default()
}

fn raw_environ(pid: i32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/environ"))
        .map(|raw| {
            raw.split(|&b| b == 0)
                .filter(|e| !e.is_empty())
                .map(|e| String::from_utf8_lossy(e).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The environment a process really got, from /proc/PID/environ.
pub fn environ(pid: i32) -> BTreeMap<String, String> {
    raw_environ(pid)
        .into_iter()
        .filter_map(|e| {
            e.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect()
}

pub fn kill(pid: i32, sig: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
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

/// Lines of a file, for logs written by hooks and scripts.
pub fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

//! Fixture for the typed-variable, missing-env and sub-conf tests (tests/envars.rs,
//! tests/templates.rs, tests/real_servers.rs): a temporary playpen made with the real
//! `servicectl init`, helpers to write configs, programs and templates, to run the real
//! binary, to pick free ports, and to poll with deadlines.
//!
//! Cleanup: dropping a [`Pen`] runs `servicectl --playpen DIR stop` for every installed
//! service, then kills (by PID) any process left whose environment holds
//! `PLAYPEN_ROOT=<this playpen>`: servicectl gives that variable to everything it starts,
//! and each playpen is a unique temporary directory, so no other process is touched.

#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_servicectl");

/// The role every test playpen has.
pub const ROLE: &str = "dev";

/// Variables of the test runner's environment that would change what servicectl does.
const SCRUBBED: &[&str] = &[
    "PLAYPEN_ROOT",
    "PLAYPEN_ROLE",
    "PLAYPEN_CLUSTER",
    "PLAYPEN_TAG",
    "PORT_PREFIX",
    "LOCAL_VAR",
    "LOCAL_RUNVAR",
    "SERVICECTL_CONFIG_TIMEOUT",
    "SERVICECTL_HOOK_TIMEOUT",
];

/// What one servicectl run produced.
#[derive(Debug, Clone)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// Exit 0, no panic.
    #[track_caller]
    pub fn ok(&self) -> &Out {
        assert_eq!(self.code, 0, "expected success:\n{self}");
        self.no_panic()
    }

    /// A non-zero exit, no panic.
    #[track_caller]
    pub fn fails(&self) -> &Out {
        assert_ne!(self.code, 0, "expected a failure:\n{self}");
        self.no_panic()
    }

    #[track_caller]
    pub fn no_panic(&self) -> &Out {
        assert!(
            !self.stderr.contains("panicked") && !self.stdout.contains("panicked"),
            "servicectl panicked:\n{self}"
        );
        self
    }

    /// Every needle is in stderr.
    #[track_caller]
    pub fn err_says(&self, needles: &[&str]) -> &Out {
        for needle in needles {
            assert!(
                self.stderr.contains(needle),
                "expected {needle:?} in stderr:\n{self}"
            );
        }
        self
    }

    /// Every needle is in stdout.
    #[track_caller]
    pub fn out_says(&self, needles: &[&str]) -> &Out {
        for needle in needles {
            assert!(
                self.stdout.contains(needle),
                "expected {needle:?} in stdout:\n{self}"
            );
        }
        self
    }

    /// The stderr lines that mention `needle`.
    pub fn err_lines_with(&self, needle: &str) -> Vec<&str> {
        self.stderr.lines().filter(|l| l.contains(needle)).collect()
    }

    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{self}"))
    }
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit code {}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// A temporary playpen, made with `servicectl init`.
pub struct Pen {
    dir: tempfile::TempDir,
    pub root: PathBuf,
}

impl Pen {
    pub fn new() -> Pen {
        let dir = tempfile::Builder::new()
            .prefix("servicectl-typed-")
            .tempdir()
            .expect("temporary directory");
        let root = dir.path().to_path_buf();
        let pen = Pen { dir, root };
        let out = pen.run_bare(&["init", pen.root.to_str().expect("UTF-8 temp path")]);
        out.ok();
        pen
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(BIN);
        for name in SCRUBBED {
            cmd.env_remove(name);
        }
        cmd.env("NO_COLOR", "1").stdin(Stdio::null());
        cmd
    }

    fn run_bare(&self, args: &[&str]) -> Out {
        run(self.command().args(args))
    }

    /// `servicectl --playpen ROOT ARGS…`
    pub fn run(&self, args: &[&str]) -> Out {
        self.run_env(args, &[])
    }

    /// Like [`Pen::run`], with extra environment variables.
    pub fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Out {
        let mut cmd = self.command();
        cmd.arg("--playpen").arg(&self.root).args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        run(&mut cmd)
    }

    /// Like [`Pen::run`], but a run that takes longer than `secs` is killed and fails the
    /// test (for inputs that could make servicectl hang).
    #[track_caller]
    pub fn run_timeout(&self, args: &[&str], secs: u64) -> Out {
        let mut cmd = self.command();
        cmd.arg("--playpen")
            .arg(&self.root)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn servicectl");
        let finished = wait_until(Duration::from_secs(secs), || {
            child.try_wait().expect("try_wait").is_some()
        });
        if !finished {
            let _ = child.kill();
            let _ = child.wait();
            panic!("servicectl {args:?} still runs after {secs} s (it hangs)");
        }
        let output = child.wait_with_output().expect("collect output");
        use std::os::unix::process::ExitStatusExt;
        Out {
            code: output
                .status
                .code()
                .unwrap_or_else(|| 128 + output.status.signal().unwrap_or(0)),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// The playpen root as a string, for building expected messages.
    pub fn root_str(&self) -> String {
        self.root.display().to_string()
    }

    /// Write a file (creating directories) with mode 0644.
    pub fn write(&self, rel: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        self.write_mode(rel, contents, 0o644)
    }

    /// Write a file (creating directories) with the given mode.
    pub fn write_mode(&self, rel: &str, contents: impl AsRef<[u8]>, mode: u32) -> PathBuf {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
        std::fs::write(&path, contents).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        path
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel))
            .unwrap_or_else(|e| panic!("read {}: {e}", self.path(rel).display()))
    }

    pub fn read_bytes(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.path(rel))
            .unwrap_or_else(|e| panic!("read {}: {e}", self.path(rel).display()))
    }

    pub fn exists(&self, rel: &str) -> bool {
        std::fs::symlink_metadata(self.path(rel)).is_ok()
    }

    /// Replace the role config (etc/roles/dev/config).
    pub fn role(&self, text: &str) -> PathBuf {
        self.write(&format!("etc/roles/{ROLE}/config"), text)
    }

    pub fn role_config_path(&self) -> PathBuf {
        self.path(&format!("etc/roles/{ROLE}/config"))
    }

    /// Install a service by hand: ext/services/NAME-1.0/config.
    pub fn service(&self, name: &str, config: &str) -> PathBuf {
        self.write(&format!("ext/services/{name}-1.0/config"), config)
    }

    /// An executable in ext/bin.
    pub fn program(&self, name: &str, script: &str) -> PathBuf {
        self.write_mode(&format!("ext/bin/{name}"), script, 0o755)
    }

    /// ext/bin/envdump: writes its environment (`env -0`) to `$LOCAL_VAR/$1.env`
    /// atomically, then idles until stopped (SIGHUP appends to `$LOCAL_VAR/$1.hups`).
    pub fn envdump_program(&self) {
        self.program(
            "envdump",
            "#!/bin/sh\n\
             env -0 > \"$LOCAL_VAR/$1.env.tmp\" && mv \"$LOCAL_VAR/$1.env.tmp\" \"$LOCAL_VAR/$1.env\"\n\
             trap 'echo hup >> \"$LOCAL_VAR/$1.hups\"' HUP\n\
             while :; do sleep 1 & wait $!; done\n",
        );
    }

    pub fn pidfile(&self, service: &str) -> PathBuf {
        self.path(&format!("var/run/{service}.pid"))
    }

    /// The PID in the service's pidfile, if there is one.
    pub fn pid(&self, service: &str) -> Option<i32> {
        std::fs::read_to_string(self.pidfile(service))
            .ok()
            .and_then(|t| t.trim().parse().ok())
    }

    /// Wait (up to `secs`) for a file under the playpen to exist and return its bytes.
    #[track_caller]
    pub fn wait_file(&self, rel: &str, secs: u64) -> Vec<u8> {
        let path = self.path(rel);
        assert!(
            wait_until(Duration::from_secs(secs), || path.is_file()),
            "{} did not appear within {secs} s; output files: {}",
            path.display(),
            self.outputs()
        );
        std::fs::read(&path).expect("read")
    }

    /// Every var/run/*.output, for failure messages.
    pub fn outputs(&self) -> String {
        let mut text = String::new();
        if let Ok(dir) = std::fs::read_dir(self.path("var/run")) {
            for entry in dir.flatten() {
                let p = entry.path();
                if p.extension().is_some_and(|e| e == "output") {
                    text.push_str(&format!(
                        "\n--- {} ---\n{}",
                        p.display(),
                        std::fs::read_to_string(&p).unwrap_or_default()
                    ));
                }
            }
        }
        text
    }

    /// The services installed under ext/services (NAME of NAME-VERSION directories).
    pub fn installed(&self) -> Vec<String> {
        let mut names = Vec::new();
        if let Ok(dir) = std::fs::read_dir(self.path("ext/services")) {
            for entry in dir.flatten() {
                if !entry.path().is_dir() {
                    continue;
                }
                let dir_name = entry.file_name().to_string_lossy().into_owned();
                let name = match dir_name.rsplit_once('-') {
                    Some((n, v)) if v.starts_with(|c: char| c.is_ascii_digit()) => n.to_string(),
                    _ => dir_name,
                };
                names.push(name);
            }
        }
        names
    }

    /// Live processes started for this playpen: those whose environment holds
    /// `PLAYPEN_ROOT=<root>`, or whose working directory is inside the playpen (programs
    /// that rewrite their process title, like nginx, overwrite /proc/PID/environ; the
    /// working directory servicectl gave them, PLAYPEN_ROOT, remains).
    pub fn processes(&self) -> Vec<i32> {
        let needle = format!("PLAYPEN_ROOT={}", self.root.display());
        all_pids()
            .into_iter()
            .filter(|&pid| pid != std::process::id() as i32 && alive(pid))
            .filter(|&pid| {
                let by_env = std::fs::read(format!("/proc/{pid}/environ"))
                    .map(|env| env.split(|&b| b == 0).any(|e| e == needle.as_bytes()))
                    .unwrap_or(false);
                by_env
                    || std::fs::read_link(format!("/proc/{pid}/cwd"))
                        .is_ok_and(|cwd| cwd.starts_with(&self.root))
            })
            .collect()
    }
}

impl Drop for Pen {
    fn drop(&mut self) {
        let names = self.installed();
        if !names.is_empty() {
            let mut args = vec!["stop"];
            args.extend(names.iter().map(String::as_str));
            let _ = self.run(&args);
        }
        let leftovers = self.processes();
        for pid in &leftovers {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(*pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = &self.dir;
    }
}

/// Run a command to completion (stdin from /dev/null).
pub fn run(cmd: &mut Command) -> Out {
    let output = cmd.stdin(Stdio::null()).output().expect("run servicectl");
    use std::os::unix::process::ExitStatusExt;
    Out {
        code: output
            .status
            .code()
            .unwrap_or_else(|| 128 + output.status.signal().unwrap_or(0)),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Poll `cond` every 20 ms until it holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn all_pids() -> Vec<i32> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

pub fn alive(pid: i32) -> bool {
    // A zombie is dead for our purposes.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Parse `env -0` output.
pub fn parse_env0(bytes: &[u8]) -> std::collections::BTreeMap<String, String> {
    bytes
        .split(|&b| b == 0)
        .filter(|e| !e.is_empty())
        .filter_map(|e| {
            let text = String::from_utf8_lossy(e);
            let (k, v) = text.split_once('=')?;
            Some((k.to_string(), v.to_string()))
        })
        .collect()
}

fn port_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// A PORT_PREFIX such that PORT_PREFIX + each offset is a port nobody listens on now.
/// Prefixes are multiples of 100 in 20000-32600 (below Linux's ephemeral port range, so
/// outgoing connections do not take them), chosen from this process's id and a
/// per-process counter so that parallel tests and test binaries pick different ones.
pub fn free_prefix(offsets: &[u16]) -> u16 {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    const SLOTS: u32 = 127;
    let pid = std::process::id();
    for _ in 0..SLOTS * 2 {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let slot = (pid.wrapping_mul(37).wrapping_add(n.wrapping_mul(53))) % SLOTS;
        let prefix = 20000 + (slot * 100) as u16;
        if offsets.iter().all(|&o| port_free(prefix + o)) {
            return prefix;
        }
    }
    panic!("no free PORT_PREFIX in 20000-32700 for offsets {offsets:?}");
}

/// A single free port (PORT_PREFIX-independent), same scheme as [`free_prefix`].
pub fn free_port() -> u16 {
    free_prefix(&[50]) + 50
}

/// The mode bits of a file.
pub fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o7777
}

/// Files in a directory whose names look like leftovers of an atomic write.
pub fn temporaries(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    let name = p.file_name().unwrap_or_default().to_string_lossy();
                    name.starts_with(".tmp") || name.ends_with(".tmp")
                })
                .collect()
        })
        .unwrap_or_default()
}

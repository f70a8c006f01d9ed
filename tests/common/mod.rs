//! The one fixture of the integration tests (tests/main.rs declares it; every test
//! module says `use crate::common::*;`):
//!
//! - running the real binary with a clean environment, and what a run produced ([`Out`]);
//! - a temporary playpen made with `servicectl init` ([`Playpen`], playpen.rs), with
//!   helpers to write configs, programs, templates and packages, and a cleanup guard;
//! - PORT_PREFIX reservation and small network clients (ports.rs);
//! - real processes through /proc (procfs.rs);
//! - files: sample packages, package copies, tree snapshots (files.rs);
//! - placeholders for PIDs, times, paths and ports in whole outputs (golden.rs);
//! - polling with a deadline ([`wait_until`], [`PATIENCE`]).

mod files;
mod golden;
mod playpen;
mod ports;
mod procfs;

pub use files::*;
pub use golden::*;
pub use playpen::*;
pub use ports::*;
pub use procfs::*;

use std::process::{Child, Command, Output, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_servicectl");

/// The generous deadline for asynchronous things in tests (a loaded 2-core machine).
pub const PATIENCE: Duration = Duration::from_secs(10);

/// Variables of the test runner's environment that would change what servicectl (or a
/// program it starts) does; tests set them explicitly when they mean to.
const SCRUBBED_ENV: &[&str] = &[
    "PLAYPEN_ROOT",
    "PLAYPEN_ROLE",
    "PLAYPEN_CLUSTER",
    "PLAYPEN_TAG",
    "PORT_PREFIX",
    "SERVICE",
    "SERVICECTL",
    "SERVICECTL_CONFIG_TIMEOUT",
    "SERVICECTL_HOOK_TIMEOUT",
    "LOCAL_VAR",
    "LOCAL_RUNVAR",
    "CLASSPATH",
    "ECHO_HOST",
    "ECHO_PORT",
    "SERVICECTL_PORT_PREFIX_RANGE",
];

/// What one run of a command produced.
#[derive(Debug, Clone)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
    /// The command line, for failure messages.
    pub what: String,
}

impl Out {
    /// From a finished process; a death by signal N is exit code 128 + N.
    pub fn from_output(output: Output, elapsed: Duration, what: String) -> Out {
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
            what,
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

    /// This exit code, without a panic.
    #[track_caller]
    pub fn code_is(&self, code: i32) -> &Out {
        assert_eq!(self.code, code, "expected exit code {code}:\n{self}");
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

    /// The whole output (stdout, then stderr), masked as the golden tests mask it
    /// (`golden.rs`), is `expected`.
    #[track_caller]
    pub fn shows(&self, pp: &Playpen, expected: &str) -> &Out {
        let here = std::panic::Location::caller();
        assert_golden(
            pp,
            &format!("{}:{}", here.file(), here.line()),
            &format!("{}{}", self.stdout, self.stderr),
            expected,
        );
        self
    }

    /// [`Out::shows`] for lines that come in any order (services acted on in parallel).
    #[track_caller]
    pub fn shows_any_order(&self, pp: &Playpen, expected: &str) -> &Out {
        let sorted = |text: &str| {
            let mut lines: Vec<&str> = text.lines().collect();
            lines.sort_unstable();
            lines.join("\n") + "\n"
        };
        let seen = golden(pp, &format!("{}{}", self.stdout, self.stderr));
        assert_eq!(
            sorted(&seen),
            sorted(expected),
            "the whole output (lines in any order), masked"
        );
        self
    }

    /// Every needle occurs in stdout or stderr.
    #[track_caller]
    pub fn says(&self, needles: &[&str]) -> &Out {
        self.contains_all(&self.all(), "the output", needles)
    }

    /// Every needle occurs in stdout.
    #[track_caller]
    pub fn out_says(&self, needles: &[&str]) -> &Out {
        self.contains_all(&self.stdout, "stdout", needles)
    }

    /// Every needle occurs in stderr.
    #[track_caller]
    pub fn err_says(&self, needles: &[&str]) -> &Out {
        self.contains_all(&self.stderr, "stderr", needles)
    }

    #[track_caller]
    fn contains_all(&self, text: &str, what: &str, needles: &[&str]) -> &Out {
        for needle in needles {
            assert!(
                text.contains(needle),
                "expected {needle:?} in {what}:\n{self}"
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
            "$ {}\nexit code: {}\n--- stdout ---\n{}\n--- stderr ---\n{}\n(took {:?})",
            self.what, self.code, self.stdout, self.stderr, self.elapsed
        )
    }
}

/// A command line as a person would type it (servicectl's path shortened).
pub fn describe(cmd: &Command) -> String {
    let program = cmd.get_program().to_string_lossy();
    let mut words = vec![if program == BIN {
        "servicectl".to_string()
    } else {
        program.into_owned()
    }];
    words.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    words.join(" ")
}

/// Run a prepared command to completion (stdin from /dev/null).
pub fn run_command(cmd: &mut Command) -> Out {
    let what = describe(cmd);
    let started = Instant::now();
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {what}: {e}"));
    Out::from_output(output, started.elapsed(), what)
}

/// Start a command with stdin from /dev/null and stdout/stderr captured.
pub fn spawn_piped(cmd: &mut Command) -> Child {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", describe(cmd)))
}

/// Run a command, but kill it once `timeout` has passed: `None` when it had to be
/// killed (or could not start). Never panics, so cleanup code can use it.
pub fn run_with_deadline(cmd: &mut Command, timeout: Duration) -> Option<Out> {
    fn drain(pipe: Option<impl std::io::Read + Send + 'static>) -> JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    }
    let what = describe(cmd);
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    // Read both pipes while waiting, so a chatty child cannot block on a full pipe.
    let (stdout, stderr) = (drain(child.stdout.take()), drain(child.stderr.take()));
    let finished = wait_until(timeout, || !matches!(child.try_wait(), Ok(None)));
    if !finished {
        let _ = child.kill();
        let _ = child.wait();
        return None;
    }
    let output = Output {
        status: child.wait().ok()?,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    };
    Some(Out::from_output(output, started.elapsed(), what))
}

/// A servicectl command with a clean environment (no PLAYPEN_* etc., no colour) and no
/// playpen chosen: the caller decides how the playpen is found.
pub fn bare_command() -> Command {
    let mut cmd = Command::new(BIN);
    for var in SCRUBBED_ENV {
        cmd.env_remove(var);
    }
    cmd.env("NO_COLOR", "1");
    // The per-user registry of playpens: the tests' own, never the user's. Tests that
    // look at it give each playpen a registry of their own (`Playpen::set_env`).
    cmd.env(
        "XDG_STATE_HOME",
        std::env::temp_dir().join("servicectl-test-state"),
    );
    cmd
}

/// A test that can only prove its point as root fails, loudly, when not run as root (CI
/// runs as root), instead of passing without having tested anything.
#[track_caller]
pub fn needs_root(why: &str) {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root {why}: run it as root (CI does)"
    );
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

/// The names in one list of an upgrade report (`servicectl --json pre-upgrade` etc.),
/// sorted.
#[track_caller]
pub fn report_names(report: &serde_json::Value, key: &str) -> Vec<String> {
    let mut v: Vec<String> = report[key]
        .as_array()
        .unwrap_or_else(|| panic!("no list {key:?} in {report}"))
        .iter()
        .map(|s| s.as_str().expect("a name").to_string())
        .collect();
    v.sort();
    v
}

pub fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// `systemd-analyze`, installed with Debian's systemd package when missing.
pub fn systemd_analyze() -> &'static str {
    let found = || {
        std::process::Command::new("systemd-analyze")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !found() {
        let out = run_command(&mut std::process::Command::new(
            repo().join("scripts/install-deps"),
        ));
        assert!(
            found(),
            "systemd-analyze is missing and scripts/install-deps did not install it:\n{out}"
        );
    }
    "systemd-analyze"
}

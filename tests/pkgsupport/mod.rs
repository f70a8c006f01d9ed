//! Support for the package and upgrade integration tests (tests/packages.rs,
//! tests/upgrade.rs): a temporary playpen made by `servicectl init` with its own
//! PORT_PREFIX, the real binary, the sample packages of `packages/`, and helpers to
//! look at real processes (/proc), files and sockets.
//!
//! Ports: every playpen gets a PORT_PREFIX that is a multiple of 100 in 20000–59900
//! (so PREFIX+81 < 65536), derived from the test process id and a per-process
//! counter. The prefix is reserved with an flock on a file in the temporary
//! directory (released when the test process exits, however it exits), and the ports
//! the sample packages use are checked free by binding them first.
//!
//! Cleanup: dropping a `Pp` runs `servicectl --playpen DIR stop` for every service of
//! the playpen, then kills whatever process still carries this playpen's
//! `PLAYPEN_ROOT` in its environment (only processes servicectl started for it do).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_servicectl");

/// Generous deadline for things that happen asynchronously (2 loaded cores).
pub const PATIENCE: Duration = Duration::from_secs(15);

/// Port offsets of the sample packages: echo, redis, nginx, httpd-python.
pub const OFFSETS: &[u16] = &[7, 79, 80, 81];

/// Variables that would change what servicectl does if inherited from the caller.
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
    "ECHO_HOST",
    "ECHO_PORT",
];

/// The repository (for packages/ and share/).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A sample package directory, e.g. `sample("echo")`, `sample("testing/echo-1.1")`.
pub fn sample(rel: &str) -> PathBuf {
    repo().join("packages").join(rel)
}

/// What one servicectl run produced.
#[derive(Debug, Clone)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub what: String,
}

impl Out {
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    #[track_caller]
    pub fn ok(&self) -> &Out {
        assert_eq!(self.code, 0, "expected success:\n{self}");
        self.no_panic()
    }

    #[track_caller]
    pub fn fails(&self) -> &Out {
        assert_ne!(self.code, 0, "expected failure:\n{self}");
        self.no_panic()
    }

    #[track_caller]
    pub fn code_is(&self, code: i32) -> &Out {
        assert_eq!(self.code, code, "expected exit code {code}:\n{self}");
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
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "$ {}\nexit code: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.what, self.code, self.stdout, self.stderr
        )
    }
}

pub fn run_command(cmd: &mut Command, what: String) -> Out {
    use std::os::unix::process::ExitStatusExt;
    let output = cmd.stdin(Stdio::null()).output().expect("run a command");
    Out {
        code: output
            .status
            .code()
            .unwrap_or_else(|| 128 + output.status.signal().unwrap_or(0)),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        what,
    }
}

/// servicectl with a clean environment (no inherited PLAYPEN_* etc., no colour).
pub fn servicectl() -> Command {
    let mut cmd = Command::new(BIN);
    for var in SCRUBBED_ENV {
        cmd.env_remove(var);
    }
    cmd.env("NO_COLOR", "1");
    cmd
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A PORT_PREFIX reserved for this process until the guard is dropped.
pub struct PortPrefix {
    pub prefix: u16,
    _lock: std::fs::File,
}

fn ports_free(prefix: u16) -> bool {
    OFFSETS
        .iter()
        .all(|off| TcpListener::bind(("127.0.0.1", prefix + off)).is_ok())
}

/// Reserve a PORT_PREFIX: unique among the tests (flock), with its ports free now.
pub fn reserve_port_prefix() -> PortPrefix {
    let dir = std::env::temp_dir().join("servicectl-test-port-prefixes");
    std::fs::create_dir_all(&dir).expect("make the port lock directory");
    let pid = std::process::id();
    for _ in 0..2000 {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let slot = (pid.wrapping_mul(7919).wrapping_add(n.wrapping_mul(131))) % 400;
        let prefix = (20000 + slot * 100) as u16;
        assert!(u32::from(prefix) + 81 < 65536);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(format!("{prefix}.lock")))
            .expect("open a port lock file");
        // SAFETY: flock on a file descriptor we own; no memory is involved.
        let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
        if locked && ports_free(prefix) {
            return PortPrefix {
                prefix,
                _lock: file,
            };
        }
    }
    panic!("no free PORT_PREFIX found in 20000-59900");
}

/// A temporary playpen (made by `servicectl init`) with its own PORT_PREFIX.
pub struct Pp {
    pub root: PathBuf,
    pub prefix: u16,
    _ports: PortPrefix,
    _dir: tempfile::TempDir,
}

impl Pp {
    /// A new playpen; the role config lists `services` and sets PORT_PREFIX.
    pub fn new(services: &[&str]) -> Pp {
        let dir = tempfile::Builder::new()
            .prefix("servicectl-pkgtest-")
            .tempdir()
            .expect("make a temporary directory");
        let root = dir
            .path()
            .canonicalize()
            .expect("canonical temporary directory");
        let ports = reserve_port_prefix();
        run_command(
            servicectl().arg("init").arg(&root),
            format!("servicectl init {}", root.display()),
        )
        .ok();
        let pp = Pp {
            root,
            prefix: ports.prefix,
            _ports: ports,
            _dir: dir,
        };
        pp.role_config(services, "");
        pp
    }

    /// Rewrite the role config: playpen_services, PORT_PREFIX, and `extra` lines.
    pub fn role_config(&self, services: &[&str], extra: &str) {
        self.write(
            "etc/roles/dev/config",
            &format!(
                "playpen_services=\"{}\"\nPORT_PREFIX={}\n{extra}",
                services.join(" "),
                self.prefix
            ),
        );
    }

    pub fn port(&self, offset: u16) -> u16 {
        self.prefix + offset
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().expect("has a parent")).expect("make directories");
        std::fs::write(&path, text).expect("write a file");
        path
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_default()
    }

    /// Exists (a dangling symlink counts).
    pub fn exists(&self, rel: &str) -> bool {
        self.path(rel).symlink_metadata().is_ok()
    }

    /// A copy of the real `sleep` binary as `bin/NAME` of the playpen: a program that
    /// is its own executable, for project-local test services.
    pub fn install_sleeper(&self, name: &str) {
        let sleep = ["/usr/bin/sleep", "/bin/sleep"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .expect("sleep is installed");
        let dest = self.path(&format!("bin/{name}"));
        std::fs::create_dir_all(dest.parent().expect("has a parent")).expect("make bin/");
        std::fs::copy(sleep, &dest).expect("copy sleep");
        std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }

    /// A project-local service `services/NAME/config` running `bin/sleeper 3600`.
    pub fn sleeper_service(&self, name: &str, extra_config: &str) {
        if !self.exists("bin/sleeper") {
            self.install_sleeper("sleeper");
        }
        self.write(
            &format!("services/{name}/config"),
            &format!(
                "service_program=sleeper\nservice_run_name={name}\nservice_flags=3600\nservice_halt_timeout=5\n{extra_config}\n"
            ),
        );
    }

    pub fn command(&self) -> Command {
        let mut cmd = servicectl();
        cmd.arg("--playpen").arg(&self.root).current_dir(&self.root);
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Out {
        run_command(
            self.command().args(args),
            format!("servicectl {}", args.join(" ")),
        )
    }

    /// `servicectl package install DIR`.
    pub fn install(&self, dir: &Path) -> Out {
        let dir = dir.to_str().expect("UTF-8 path");
        self.run(&["package", "install", dir])
    }

    /// Poll `servicectl ping NAME…` until it passes: `start` returns once the process
    /// is alive, not once it listens. Panics with the last attempt at the deadline.
    #[track_caller]
    pub fn wait_ping(&self, names: &[&str]) -> Out {
        let mut args = vec!["ping"];
        args.extend_from_slice(names);
        let mut last = None;
        let ready = wait_until(PATIENCE, || {
            let out = self.run(&args);
            let ok = out.code == 0;
            last = Some(out);
            ok
        });
        let last = last.expect("pinged at least once");
        assert!(ready, "not ready within {PATIENCE:?}:\n{last}");
        last.ok();
        last
    }

    /// The PID in var/run/NAME.pid, if any.
    pub fn pid(&self, name: &str) -> Option<i32> {
        self.read(&format!("var/run/{name}.pid"))
            .trim()
            .parse()
            .ok()
    }

    /// The PID of a running service; panics with its output file when it does not run.
    #[track_caller]
    pub fn running_pid(&self, name: &str) -> i32 {
        let pid = self
            .pid(name)
            .unwrap_or_else(|| panic!("{name} has no pidfile; its output:\n{}", self.output(name)));
        assert!(
            alive(pid),
            "{name}: PID {pid} is not alive; its output:\n{}",
            self.output(name)
        );
        pid
    }

    pub fn output(&self, name: &str) -> String {
        self.read(&format!("var/run/{name}.output"))
    }

    /// The registry, var/servicectl/state.
    pub fn registry(&self) -> String {
        self.read("var/servicectl/state")
    }

    /// The registry line of a service, if any.
    pub fn registry_line(&self, name: &str) -> Option<String> {
        self.registry()
            .lines()
            .find(|l| l.split('\t').next() == Some(name))
            .map(str::to_string)
    }

    /// Everything under ext/: relative path → ("dir" | "file:" + contents | "link:" + target).
    pub fn ext_snapshot(&self) -> BTreeMap<String, String> {
        snapshot(&self.path("ext"))
    }

    /// Service names the playpen knows: packaged (ext/services/*-V/) and project-local.
    pub fn known_services(&self) -> Vec<String> {
        let mut names = Vec::new();
        for line in self.registry().lines() {
            if let Some(name) = line.split('\t').next().filter(|n| !n.is_empty()) {
                names.push(name.to_string());
            }
        }
        for dir in ["ext/services", "services"] {
            if let Ok(entries) = std::fs::read_dir(self.path(dir)) {
                for entry in entries.flatten() {
                    if entry.path().is_dir() {
                        let file_name = entry.file_name().to_string_lossy().into_owned();
                        let name = match file_name.rfind('-') {
                            Some(i)
                                if dir == "ext/services"
                                    && file_name[i + 1..]
                                        .starts_with(|c: char| c.is_ascii_digit()) =>
                            {
                                file_name[..i].to_string()
                            }
                            _ => file_name,
                        };
                        names.push(name);
                    }
                }
            }
        }
        if let Ok(entries) = std::fs::read_dir(self.path("var/run")) {
            for entry in entries.flatten() {
                let file_name = entry.file_name().to_string_lossy().into_owned();
                if let Some(name) = file_name.strip_suffix(".pid") {
                    names.push(name.to_string());
                }
            }
        }
        names.sort();
        names.dedup();
        names
    }

    /// Live processes that carry this playpen in their environment.
    pub fn processes(&self) -> Vec<i32> {
        let wanted = format!("PLAYPEN_ROOT={}", self.root.display());
        all_pids()
            .into_iter()
            .filter(|&pid| alive(pid) && raw_environ(pid).contains(&wanted))
            .collect()
    }
}

impl Drop for Pp {
    fn drop(&mut self) {
        let names = self.known_services();
        if !names.is_empty() {
            let mut cmd = self.command();
            cmd.arg("stop").args(&names);
            let _ = run_command(&mut cmd, "servicectl stop (cleanup)".into());
        }
        // Whatever servicectl could not stop (e.g. its package is gone).
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let pids = self.processes();
            if pids.is_empty() || Instant::now() > deadline {
                break;
            }
            for pid in pids {
                // SAFETY: kill(2) on a PID that carries our playpen in its environment.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A copy of a sample package in a temporary directory, to derive test packages from.
pub struct PkgCopy {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
}

impl PkgCopy {
    pub fn of(src: &Path) -> PkgCopy {
        let dir = tempfile::Builder::new()
            .prefix("servicectl-pkg-")
            .tempdir()
            .expect("make a temporary directory");
        let path = dir.path().join(src.file_name().expect("named"));
        copy_tree(src, &path);
        PkgCopy { _dir: dir, path }
    }

    /// An empty package directory named `name`.
    pub fn empty(name: &str) -> PkgCopy {
        let dir = tempfile::Builder::new()
            .prefix("servicectl-pkg-")
            .tempdir()
            .expect("make a temporary directory");
        let path = dir.path().join(name);
        std::fs::create_dir_all(&path).expect("make the package directory");
        PkgCopy { _dir: dir, path }
    }

    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.path.join(rel);
        std::fs::create_dir_all(path.parent().expect("has a parent")).expect("make directories");
        std::fs::write(&path, text).expect("write a file");
        path
    }

    pub fn append(&self, rel: &str, text: &str) {
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(self.path.join(rel))
            .expect("open for appending");
        file.write_all(text.as_bytes()).expect("append");
    }

    pub fn symlink(&self, rel: &str, target: &str) {
        let path = self.path.join(rel);
        std::fs::create_dir_all(path.parent().expect("has a parent")).expect("make directories");
        std::os::unix::fs::symlink(target, path).expect("make a symlink");
    }

    /// Rename every top-level `OLD…` file to `NEW…` (e.g. a new version's names).
    pub fn rename_prefix(&self, old: &str, new: &str) {
        for entry in std::fs::read_dir(&self.path)
            .expect("read package")
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(rest) = name.strip_prefix(old) {
                std::fs::rename(entry.path(), self.path.join(format!("{new}{rest}")))
                    .expect("rename");
            }
        }
    }
}

pub fn copy_tree(src: &Path, dest: &Path) {
    std::fs::create_dir_all(dest).expect("make a directory");
    for entry in std::fs::read_dir(src).expect("read a directory").flatten() {
        let from = entry.path();
        let to = dest.join(entry.file_name());
        let meta = std::fs::symlink_metadata(&from).expect("stat");
        if meta.file_type().is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&from).expect("readlink"), &to)
                .expect("symlink");
        } else if meta.is_dir() {
            copy_tree(&from, &to);
        } else {
            std::fs::copy(&from, &to).expect("copy a file");
        }
    }
}

/// relative path → description of everything under `root` (root itself excluded).
pub fn snapshot(root: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let rel = path
                .strip_prefix(root)
                .expect("under root")
                .display()
                .to_string();
            let meta = std::fs::symlink_metadata(&path).expect("stat");
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path).expect("readlink");
                out.insert(rel, format!("link:{}", target.display()));
            } else if meta.is_dir() {
                out.insert(rel, "dir".into());
                walk(root, &path, out);
            } else {
                let bytes = std::fs::read(&path).unwrap_or_default();
                out.insert(
                    rel,
                    format!(
                        "file:{:o}:{}",
                        meta.permissions().mode() & 0o7777,
                        String::from_utf8_lossy(&bytes)
                    ),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// Poll until `cond` holds or `timeout` passes; returns whether it held.
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
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

pub fn all_pids() -> Vec<i32> {
    std::fs::read_dir("/proc")
        .expect("read /proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

/// /proc/PID/stat fields after the command name: [0] state, [1] ppid.
pub fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    Some(after.split_whitespace().map(str::to_string).collect())
}

/// A live process (a zombie is dead: nothing may reap orphans in a container).
pub fn alive(pid: i32) -> bool {
    stat_fields(pid).is_some_and(|f| f[0] != "Z" && f[0] != "X")
}

#[track_caller]
pub fn assert_dies(pid: i32, what: &str) {
    assert!(
        wait_until(PATIENCE, || !alive(pid)),
        "{what} (PID {pid}) is still alive"
    );
}

/// Direct children of a process.
pub fn children(pid: i32) -> Vec<i32> {
    let mut kids: Vec<i32> = all_pids()
        .into_iter()
        .filter(|&p| alive(p) && stat_fields(p).is_some_and(|f| f[1] == pid.to_string()))
        .collect();
    kids.sort();
    kids
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

/// The environment a process really got.
pub fn environ(pid: i32) -> BTreeMap<String, String> {
    raw_environ(pid)
        .into_iter()
        .filter_map(|e| {
            e.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect()
}

/// One variable of a process's environment.
#[track_caller]
pub fn env_of(pid: i32, var: &str) -> Option<String> {
    environ(pid).get(var).cloned()
}

/// A TCP round trip to an echo server: send a line, expect it back.
pub fn tcp_echo(port: u16) -> Result<(), String> {
    let line = format!("hello from the test {} {}\n", std::process::id(), port);
    let mut s =
        TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect {port}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    s.write_all(line.as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    s.shutdown(Shutdown::Write).map_err(|e| e.to_string())?;
    let mut got = String::new();
    s.read_to_string(&mut got)
        .map_err(|e| format!("receive: {e}"))?;
    if got == line {
        Ok(())
    } else {
        Err(format!("sent {line:?}, got back {got:?}"))
    }
}

/// A plain HTTP/1.0 GET /: (status code, whole response).
pub fn http_get(port: u16, path: &str) -> Result<(u16, String), String> {
    let mut s =
        TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect {port}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .map_err(|e| format!("send: {e}"))?;
    let mut response = String::new();
    s.read_to_string(&mut response)
        .map_err(|e| format!("receive: {e}"))?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("not an HTTP response: {response:?}"))?;
    Ok((status, response))
}

/// RESP PING to redis: expects +PONG.
pub fn redis_ping(port: u16) -> Result<(), String> {
    let mut s =
        TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect {port}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    s.write_all(b"*1\r\n$4\r\nPING\r\n")
        .map_err(|e| format!("send: {e}"))?;
    let mut reply = Vec::new();
    let mut buf = [0u8; 64];
    while !reply.ends_with(b"\r\n") {
        let n = s.read(&mut buf).map_err(|e| format!("receive: {e}"))?;
        if n == 0 {
            break;
        }
        reply.extend_from_slice(&buf[..n]);
    }
    if reply == b"+PONG\r\n" {
        Ok(())
    } else {
        Err(format!(
            "redis answered {:?}",
            String::from_utf8_lossy(&reply)
        ))
    }
}

/// Nothing listens on the port any more.
pub fn port_closed(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_err()
}

/// Set a file's modification time.
pub fn set_mtime(path: &Path, when: std::time::SystemTime) {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open for set_modified");
    file.set_modified(when).expect("set the modification time");
}

//! A temporary playpen made by the real `servicectl init` (role `dev`), and everything a
//! test does with it: write configs, programs and templates, run servicectl in it, look
//! at its pidfiles, registry and processes.
//!
//! Cleanup: dropping a [`Playpen`] first runs `servicectl stop` for every service it
//! knows (if anything of the playpen still runs; bounded in time), then kills by PID
//! every live process of the playpen that is left: those whose environment holds
//! `PLAYPEN_ROOT=<this playpen>` (servicectl gives it to everything it starts: programs,
//! daemons they fork, hooks) or whose working directory is inside the playpen (programs
//! that rewrite their process title, like nginx, overwrite /proc/PID/environ; the working
//! directory servicectl gave them remains). Each playpen is a unique temporary
//! directory, so this never touches processes of other tests. Its port reservations
//! are released after that.

use super::*;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The role `servicectl init` gives every test playpen.
pub const ROLE: &str = "dev";

/// How long cleanup lets `servicectl stop` take before it kills what is left.
const CLEANUP_STOP: Duration = Duration::from_secs(10);

pub struct Playpen {
    pub root: PathBuf,
    /// PORT_PREFIX reservations, released when the playpen is dropped.
    ports: RefCell<Vec<PortPrefix>>,
    /// Variables every command of this playpen gets ([`Playpen::set_env`]).
    env: RefCell<Vec<(String, String)>>,
    _dir: tempfile::TempDir,
}

impl Playpen {
    /// A new playpen with role `dev` (what `servicectl init` chooses).
    pub fn new() -> Playpen {
        let dir = tempfile::Builder::new()
            .prefix("servicectl-test-")
            .tempdir()
            .expect("make a temporary directory");
        let root = dir.path().canonicalize().expect("canonical temp dir");
        run_command(bare_command().arg("init").arg(&root)).ok();
        Playpen {
            root,
            ports: RefCell::new(Vec::new()),
            env: RefCell::new(Vec::new()),
            _dir: dir,
        }
    }

    /// A copy of this playpen made with `cp -a` (running services' files included) in
    /// a new temporary directory, with the same variables for its commands; cleaned up
    /// as any playpen is.
    pub fn copy(&self) -> Playpen {
        let dir = tempfile::Builder::new()
            .prefix("servicectl-test-copy-")
            .tempdir()
            .expect("make a temporary directory");
        let root = dir.path().canonicalize().expect("canonical temp dir");
        let status = Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", self.root.display()))
            .arg(&root)
            .status()
            .expect("run cp -a");
        assert!(
            status.success(),
            "cp -a {} {} failed",
            self.root.display(),
            root.display()
        );
        Playpen {
            root,
            ports: RefCell::new(Vec::new()),
            env: RefCell::new(self.env.borrow().clone()),
            _dir: dir,
        }
    }

    /// Give every later command of this playpen (cleanup's included) NAME=VALUE.
    pub fn set_env(&self, name: &str, value: &str) {
        let mut env = self.env.borrow_mut();
        env.retain(|(n, _)| n != name);
        env.push((name.to_string(), value.to_string()));
    }

    /// A new playpen with a PORT_PREFIX of its own whose sample package ports
    /// ([`SAMPLE_OFFSETS`]) are free; the role config lists `services` and sets it.
    pub fn with_services(services: &[&str]) -> Playpen {
        Playpen::with_ports(services, SAMPLE_OFFSETS)
    }

    /// A new playpen with a PORT_PREFIX of its own whose `offsets` are free; the role
    /// config lists `services` and sets it.
    pub fn with_ports(services: &[&str], offsets: &[u16]) -> Playpen {
        let pp = Playpen::new();
        pp.reserve_ports(offsets);
        pp.role_services(services, "");
        pp
    }

    /// Reserve another PORT_PREFIX (see ports.rs) for as long as this playpen lives.
    pub fn reserve_ports(&self, offsets: &[u16]) -> u16 {
        let reserved = reserve_ports(offsets);
        let prefix = reserved.prefix;
        self.ports.borrow_mut().push(reserved);
        prefix
    }

    /// The playpen's PORT_PREFIX: its first reservation.
    #[track_caller]
    pub fn prefix(&self) -> u16 {
        self.ports
            .borrow()
            .first()
            .expect("this playpen reserved no ports")
            .prefix
    }

    /// The playpen's PORT_PREFIX, or `other` when it reserved none.
    pub fn prefix_or(&self, other: u16) -> u16 {
        self.ports.borrow().first().map_or(other, |p| p.prefix)
    }

    pub fn port(&self, offset: u16) -> u16 {
        self.prefix() + offset
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// The playpen root as a string, for building expected messages.
    pub fn root_str(&self) -> String {
        self.root.display().to_string()
    }

    /// Write a file (making its directories) with mode 0644.
    pub fn write(&self, rel: &str, contents: &str) -> PathBuf {
        self.write_mode(rel, contents, 0o644)
    }

    /// Write a file of any bytes (making its directories) with mode 0644.
    pub fn write_bytes(&self, rel: &str, contents: &[u8]) -> PathBuf {
        write_file(&self.path(rel), contents, Some(0o644))
    }

    /// Write an executable file (mode 0755).
    pub fn write_exec(&self, rel: &str, contents: &str) -> PathBuf {
        self.write_mode(rel, contents, 0o755)
    }

    /// Write a file (making its directories) with the given mode.
    pub fn write_mode(&self, rel: &str, contents: &str, mode: u32) -> PathBuf {
        write_file(&self.path(rel), contents, Some(mode))
    }

    /// Copy the real `sleep` binary into the playpen, so a program keeps its argv0 and
    /// is its own executable (not a #! script).
    pub fn install_sleep(&self, rel: &str) -> PathBuf {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().expect("has a parent")).expect("make directories");
        std::fs::copy(which_sleep(), &path).expect("copy sleep");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        path
    }

    /// `bin/spawner`: a program that forks one `bin/sleeper 1001` into a session of its
    /// own and one `bin/sleeper 1002` into a process group of its own (their PIDs in
    /// `$LOCAL_VAR/session-child` and `group-child`), then becomes `bin/sleeper 1000`:
    /// what a process-group kill leaves behind and only the census finds.
    pub fn install_escaping_spawner(&self) {
        self.install_sleep("bin/sleeper");
        self.write_exec(
            "bin/spawner",
            "#!/bin/bash\n\
             setsid \"$PLAYPEN_ROOT/bin/sleeper\" 1001 &\n\
             echo $! > \"$LOCAL_VAR/session-child.tmp\"\n\
             set -m\n\
             \"$PLAYPEN_ROOT/bin/sleeper\" 1002 &\n\
             echo $! > \"$LOCAL_VAR/group-child.tmp\"\n\
             set +m\n\
             mv \"$LOCAL_VAR/session-child.tmp\" \"$LOCAL_VAR/session-child\"\n\
             mv \"$LOCAL_VAR/group-child.tmp\" \"$LOCAL_VAR/group-child\"\n\
             exec \"$PLAYPEN_ROOT/bin/sleeper\" 1000\n",
        );
    }

    /// A file's contents; panics (naming it) when it cannot be read.
    #[track_caller]
    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel))
            .unwrap_or_else(|e| panic!("read {}: {e}", self.path(rel).display()))
    }

    /// A file's contents, empty when it does not exist (yet).
    pub fn read_or_empty(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_default()
    }

    #[track_caller]
    pub fn read_bytes(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.path(rel))
            .unwrap_or_else(|e| panic!("read {}: {e}", self.path(rel).display()))
    }

    /// Exists (a dangling symlink counts).
    pub fn exists(&self, rel: &str) -> bool {
        self.path(rel).symlink_metadata().is_ok()
    }

    pub fn role_config_path(&self) -> PathBuf {
        self.path(&format!("etc/roles/{ROLE}/config"))
    }

    /// Replace the role config (etc/roles/dev/config).
    pub fn role_config(&self, text: &str) -> PathBuf {
        self.write(&format!("etc/roles/{ROLE}/config"), text)
    }

    /// Replace the role config: playpen_services, the playpen's PORT_PREFIX, and `extra`.
    pub fn role_services(&self, services: &[&str], extra: &str) -> PathBuf {
        self.role_config(&format!(
            "playpen_services=\"{}\"\nPORT_PREFIX={}\n{extra}",
            services.join(" "),
            self.prefix()
        ))
    }

    /// A project-local service: `services/NAME/config`.
    pub fn service(&self, name: &str, config: &str) -> PathBuf {
        self.write(&format!("services/{name}/config"), config)
    }

    /// A service installed by hand: `ext/services/NAME-1.0/config` (no .services file).
    pub fn ext_service(&self, name: &str, config: &str) -> PathBuf {
        self.write(&format!("ext/services/{name}-1.0/config"), config)
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

    /// A project-local service NAME whose program is a copy of `sleep` in bin/daemon
    /// (a real binary, so argv0 is what servicectl chose), sleeping 1000 s.
    pub fn daemon(&self, name: &str, extra: &str) -> PathBuf {
        self.install_sleep("bin/daemon");
        self.service(
            name,
            &format!("service_program=daemon\nservice_flags=1000\n{extra}"),
        )
    }

    /// A project-local service NAME running `bin/sleeper 3600` as NAME.
    pub fn sleeper_service(&self, name: &str, extra_config: &str) -> PathBuf {
        if !self.exists("bin/sleeper") {
            self.install_sleep("bin/sleeper");
        }
        self.service(
            name,
            &format!(
                "service_program=sleeper\nservice_run_name={name}\nservice_flags=3600\nservice_halt_timeout=5\n{extra_config}\n"
            ),
        )
    }

    /// ext/bin/envdump: writes its environment (`env -0`) to `$LOCAL_VAR/$1.env`
    /// atomically, then idles until stopped (SIGHUP appends to `$LOCAL_VAR/$1.hups`).
    pub fn envdump_program(&self) -> PathBuf {
        self.write_exec(
            "ext/bin/envdump",
            "#!/bin/sh\n\
             env -0 > \"$LOCAL_VAR/$1.env.tmp\" && mv \"$LOCAL_VAR/$1.env.tmp\" \"$LOCAL_VAR/$1.env\"\n\
             trap 'echo hup >> \"$LOCAL_VAR/$1.hups\"' HUP\n\
             while :; do sleep 1 & wait $!; done\n",
        )
    }

    /// servicectl with `--playpen ROOT`, run in the playpen.
    pub fn command(&self) -> Command {
        let mut cmd = bare_command();
        cmd.arg("--playpen").arg(&self.root).current_dir(&self.root);
        for (k, v) in self.env.borrow().iter() {
            cmd.env(k, v);
        }
        cmd
    }

    /// `servicectl --playpen ROOT ARGS…`
    pub fn run(&self, args: &[&str]) -> Out {
        run_command(self.command().args(args))
    }

    /// Like [`Playpen::run`], with extra environment variables.
    pub fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Out {
        let mut cmd = self.command();
        cmd.args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        run_command(&mut cmd)
    }

    /// Like [`Playpen::run`], but a run that takes longer than `secs` is killed and
    /// fails the test (for inputs that could make servicectl hang).
    #[track_caller]
    pub fn run_timeout(&self, args: &[&str], secs: u64) -> Out {
        run_with_deadline(self.command().args(args), Duration::from_secs(secs))
            .unwrap_or_else(|| panic!("servicectl {args:?} still runs after {secs} s (it hangs)"))
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

    /// The PID of a running service; panics (with its output file) when it does not run.
    #[track_caller]
    pub fn running_pid(&self, name: &str) -> i32 {
        let pid = self.pid(name).unwrap_or_else(|| {
            panic!(
                "no pidfile for {name}; its output file:\n{}",
                self.output(name)
            )
        });
        assert!(
            alive(pid),
            "PID {pid} of {name} is not alive; its output file:\n{}",
            self.output(name)
        );
        pid
    }

    /// One service's row of `status --json NAME` (the supervisor's view when one runs).
    #[track_caller]
    pub fn view(&self, name: &str) -> serde_json::Value {
        let out = self.run(&["status", "--json", name]);
        out.no_panic();
        out.json()
            .as_array()
            .and_then(|rows| rows.iter().find(|r| r["service"] == name).cloned())
            .unwrap_or_else(|| panic!("no status of {name}:\n{out}"))
    }

    /// The PID of the playpen's supervisor, from its lock.
    #[track_caller]
    pub fn supervisor_pid(&self) -> i32 {
        let lock = self.read("var/run/servicectl.supervise.lock");
        lock.trim()
            .parse()
            .unwrap_or_else(|_| panic!("no PID in the supervisor's lock: {lock:?}"))
    }

    /// The supervisor's log (empty when there is none).
    pub fn supervisor_log(&self) -> String {
        self.read_or_empty("var/run/servicectl.supervise.output")
    }

    /// The contents of var/run/NAME.output (empty when there is none).
    pub fn output(&self, name: &str) -> String {
        self.read_or_empty(&format!("var/run/{name}.output"))
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

    /// The registry, var/servicectl/state (empty when there is none).
    pub fn registry(&self) -> String {
        self.read_or_empty("var/servicectl/state")
    }

    /// The registry line of a service, if any.
    pub fn registry_line(&self, name: &str) -> Option<String> {
        self.registry()
            .lines()
            .find(|l| l.split('\t').next() == Some(name))
            .map(str::to_string)
    }

    /// Everything under ext/: relative path → ("dir" | "file:MODE:contents" | "link:target").
    pub fn ext_snapshot(&self) -> BTreeMap<String, String> {
        snapshot(&self.path("ext"))
    }

    /// Service names the playpen knows: registered, packaged (ext/services/NAME-V/),
    /// project-local (services/NAME/), and with a pidfile.
    pub fn known_services(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .registry()
            .lines()
            .filter_map(|l| l.split('\t').next())
            .filter(|n| !n.is_empty())
            .map(str::to_string)
            .collect();
        for dir in ["ext/services", "services"] {
            for entry in std::fs::read_dir(self.path(dir))
                .into_iter()
                .flatten()
                .flatten()
            {
                if !entry.path().is_dir() {
                    continue;
                }
                let file_name = entry.file_name().to_string_lossy().into_owned();
                let name = match file_name.rsplit_once('-') {
                    Some((name, version))
                        if dir == "ext/services"
                            && version.starts_with(|c: char| c.is_ascii_digit()) =>
                    {
                        name.to_string()
                    }
                    _ => file_name,
                };
                names.push(name);
            }
        }
        for entry in std::fs::read_dir(self.path("var/run"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let file_name = entry.file_name().to_string_lossy().into_owned();
            if let Some(name) = file_name.strip_suffix(".pid") {
                names.push(name.to_string());
            }
        }
        names.sort();
        names.dedup();
        names
    }

    /// Live processes of this playpen: their environment holds `PLAYPEN_ROOT=<root>`, or
    /// their working directory is inside the playpen (see the module documentation).
    pub fn processes(&self) -> Vec<i32> {
        let entry = format!("PLAYPEN_ROOT={}", self.root.display());
        let me = std::process::id() as i32;
        all_pids()
            .into_iter()
            .filter(|&pid| pid != me && alive(pid))
            .filter(|&pid| {
                environ_has(pid, &entry) || cwd(pid).is_some_and(|d| d.starts_with(&self.root))
            })
            .collect()
    }

    /// Live processes of this playpen whose argv[0] is `run_name`, sorted.
    pub fn running_as(&self, run_name: &str) -> Vec<i32> {
        let mut pids: Vec<i32> = self
            .processes()
            .into_iter()
            .filter(|&pid| cmdline(pid).first().map(String::as_str) == Some(run_name))
            .collect();
        pids.sort();
        pids
    }

    /// Files servicectl left half-written (its temporaries) under var/.
    pub fn temporaries(&self) -> Vec<PathBuf> {
        ["var", "var/run", "var/linkfarm", "var/servicectl"]
            .iter()
            .flat_map(|dir| temporaries_in(&self.path(dir)))
            .collect()
    }
}

impl Default for Playpen {
    fn default() -> Self {
        Playpen::new()
    }
}

impl Drop for Playpen {
    fn drop(&mut self) {
        // Stop gracefully what still runs (servers clean up after themselves)…
        if !self.processes().is_empty() {
            let names = self.known_services();
            if !names.is_empty() {
                let _ = run_with_deadline(self.command().arg("stop").args(&names), CLEANUP_STOP);
            }
        }
        // …then kill what is left. Daemons may fork while we kill: repeat until none is
        // left (bounded).
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

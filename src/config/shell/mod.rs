//! Config evaluation: the layered sh fragments of every service, read back exactly.
//!
//! One `sh` process serves a whole command. servicectl writes requests to its standard
//! input; the shell sources the cluster config, role config and profiles once (under
//! `set -a`), then evaluates each service in a forked subshell (no new exec), printing
//! `set` and `export -p` after every fragment on a private descriptor (fd 9). Fragments'
//! own output goes to a scratch file, so a fragment that prints cannot corrupt what is
//! read back, and a syntax error, a failing fragment or a hang is pinned to its file.
//!
//! The shell cannot signal servicectl: it runs in a session of its own (so `kill 0` and
//! `kill -- -$PGID` reach only the shell), under an intermediate sh that waits for it
//! (so `$PPID` names that intermediate, which survives TERM, HUP and INT, not
//! servicectl). A shell that dies anyway is reported naming the fragment it was sourcing
//! and how it ended (the intermediate sends its status back).

use crate::config::shell_dump::{self, Item};
use crate::error::{Error, Result};
use crate::playpen::Playpen;
use crate::playpen::catalog::{self, ServiceId};
use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

mod diagnose;

use super::envars::PORT_PREFIX;
use super::lease;
use super::{CommonConfig, Origin, ServiceConfig, Value, Vars, common_files, playpen_environment};
use diagnose::failure;

/// Environment variable giving the per-fragment time limit in seconds.
pub const TIMEOUT_ENV: &str = "SERVICECTL_CONFIG_TIMEOUT";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Shell variables that describe the shell itself, not the configuration.
const SHELL_INTERNALS: &[&str] = &[
    "IFS", "PS1", "PS2", "PS4", "OPTIND", "PPID", "LINENO", "OLDPWD", "PWD", "_",
];

// PORT_PREFIX=auto (from the environment or a shared-layer file) is replaced by the
// playpen's lease (`__sc_lease`) as soon as it is set, so that the profiles and the
// services' fragments that follow compute with a number (`$((PORT_PREFIX + 32))`).
//
// The shell options the driver itself needs (errexit and noclobber off) are restored
// after the shared layer (`__sc_reset`) and in every service's subshell: `set -e` or
// `set -C` in the role config must not end or break the evaluation of every service.
const PRELUDE: &str = r#"exec 9>&1 >/dev/null
__sc_dump() {
  printf '\036D %s\n' "$1"
  set
  export -p
} >&9
__sc_auto() {
  case ${PORT_PREFIX-} in auto) [ -z "$__sc_lease" ] || PORT_PREFIX=$__sc_lease ;; esac
}
__sc_common() {
  __sc_out=$1; shift
  __sc_i=0
  __sc_auto
  __sc_dump 0
  set -a
  for __sc_f do
    __sc_i=$((__sc_i + 1))
    printf '\036B %s\n' "$__sc_i" >&9
    . "$__sc_f" >>"$__sc_out" 2>&1 </dev/null || { printf '\036S %s %s\n' "$__sc_i" "$?" >&9; set +a; __sc_reset; return 0; }
    __sc_auto
    __sc_dump "$__sc_i"
  done
  set +a
  __sc_reset
}
__sc_reset() {
  set +e +C
}
__sc_service() (
  set +e +C
  exec </dev/null >"$1" 2>&1
  SERVICE_NAME=$2 SERVICE_VERSION=$3 SERVICE_PIDFILE=$4 SERVICE_OUTPUT_FILE=$5
  export SERVICE_NAME SERVICE_VERSION SERVICE_PIDFILE SERVICE_OUTPUT_FILE
  shift 5
  __sc_i=0
  for __sc_f do
    __sc_i=$((__sc_i + 1))
    printf '\036B %s\n' "$__sc_i" >&9
    . "$__sc_f" || { printf '\036S %s %s\n' "$__sc_i" "$?" >&9; exit 1; }
    __sc_dump "$__sc_i"
  done
  exit 97
)
__sc_show() {
  while IFS= read -r __sc_l || [ -n "$__sc_l" ]; do
    printf '\036O %s\n' "$__sc_l"
  done <"$1" >&9
}
"#;

/// The status with which a service's subshell says every fragment was sourced; any
/// other status means it ended early (a failing fragment, `exit`, a syntax error).
const SOURCED_ALL: i32 = 97;

/// What servicectl runs: an sh that runs the config shell and waits for it, so that the
/// config shell's `$PPID` is not servicectl. It outlives the signals a fragment may send
/// its parent or its group (TERM, HUP, INT: trapped, so the config shell starts with them
/// at their defaults), and says how the config shell ended (`X STATUS`) on the reply pipe.
const INTERMEDIATE: &str = r#"trap : TERM HUP INT
/bin/sh -s
printf '\036X %s\n' "$?"
"#;

/// A raw dump: name → (value, exported).
type Dump = BTreeMap<String, (OsString, bool)>;

struct Reply {
    dumps: Vec<(usize, Dump)>,
    /// The file (1-based) that returned a non-zero status, and that status.
    failed: Option<(usize, i32)>,
    /// The last file begun; with `exit_status`, tells which file ended the shell.
    last_begun: usize,
    /// The request's closing status; None when the shell died.
    exit_status: Option<i32>,
    /// How a shell that died ended, as its intermediate saw it (`$?`: 128 + N for
    /// signal N); None while it runs, or when the intermediate was killed too.
    shell_status: Option<i32>,
    /// What the fragments printed: sent back line by line when a service failed…
    output_lines: Vec<String>,
    /// …or left in the scratch file (the shared layer, or a shell that died).
    output_file: Option<PathBuf>,
}

impl Reply {
    fn output(&self) -> String {
        match &self.output_file {
            Some(file) if self.output_lines.is_empty() => {
                std::fs::read_to_string(file).unwrap_or_default()
            }
            _ => self.output_lines.join("\n"),
        }
    }
}

/// How many service requests may wait in the shell's input while we read replies: sh
/// evaluates the next service while we parse the last one.
const PIPELINE: usize = 16;

struct Running {
    child: Child,
    stdin: ChildStdin,
    data: Receiver<Vec<u8>>,
    buf: Vec<u8>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        // Only the intermediate is our child; the config shell and its subshells are
        // gone once the reply pipe reaches its end (every process of the group held
        // it). Bounded: a fragment may have left a process of its own session holding it.
        let deadline = Instant::now() + Duration::from_secs(2);
        while self
            .data
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .is_ok()
        {}
        let _ = self.child.wait();
    }
}

/// The one sh process that evaluates every config of a command.
pub struct ConfigShell {
    playpen: Playpen,
    role: String,
    common_files: Vec<PathBuf>,
    timeout: Duration,
    /// Where fragments' own output goes (each service's subshell truncates it; the
    /// main shell sends it back only when the service failed).
    scratch: tempfile::NamedTempFile,
    shell: Option<Running>,
    common: Option<Result<Arc<CommonConfig>>>,
    /// Fragments evaluated in place of others (see [`ConfigShell::stand_in`]).
    stand_ins: Vec<(PathBuf, PathBuf)>,
}

impl ConfigShell {
    pub fn new(playpen: &Playpen) -> Result<ConfigShell> {
        let role = playpen.role()?;
        let common_files = common_files(playpen, &role)?;
        // Read as bytes: a value that is not UTF-8 is reported, not taken for unset.
        let timeout = match std::env::var_os(TIMEOUT_ENV) {
            Some(raw) => raw
                .to_str()
                .and_then(|v| v.parse::<f64>().ok())
                .filter(|s| *s > 0.0 && s.is_finite())
                .map(Duration::from_secs_f64)
                .ok_or_else(|| {
                    Error::config(format!(
                        "{TIMEOUT_ENV}={raw:?} is not a positive number of seconds"
                    ))
                    .with_hint(format!(
                        "set {TIMEOUT_ENV} to a number such as 10, or unset it"
                    ))
                })?,
            None => DEFAULT_TIMEOUT,
        };
        let scratch = tempfile::Builder::new()
            .prefix("servicectl-config-")
            .tempfile()
            .map_err(|e| Error::io("create a scratch file in", &std::env::temp_dir(), e))?;
        Ok(ConfigShell {
            playpen: playpen.clone(),
            role,
            common_files,
            timeout,
            scratch,
            shell: None,
            common: None,
            stand_ins: Vec::new(),
        })
    }

    /// From now on, source `stand_in` wherever `fragment` would be sourced (as if it
    /// existed): `edit` checks a candidate fragment without installing it.
    pub fn stand_in(&mut self, fragment: PathBuf, stand_in: PathBuf) {
        self.stand_ins.push((fragment, stand_in));
    }

    pub fn role(&self) -> &str {
        &self.role
    }

    fn spawn(&mut self) -> Result<()> {
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(INTERMEDIATE)
            .current_dir(&self.playpen.root)
            .envs(playpen_environment(&self.playpen, &self.role))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        // Its own session and process group: `kill 0` in a fragment reaches the shell
        // only, and the whole group can be killed when it hangs.
        // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
                nix::unistd::setsid()
                    .map(drop)
                    .map_err(std::io::Error::from)
            });
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| Error::io("start", Path::new("/bin/sh"), e))?;
        let mut stdout = child.stdout.take().expect("piped");
        let stdin = child.stdin.take().expect("piped");
        let (tx, data) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut chunk = vec![0u8; 64 * 1024];
            while let Ok(n) = stdout.read(&mut chunk) {
                if n == 0 || tx.send(chunk[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        let mut running = Running {
            child,
            stdin,
            data,
            buf: Vec::new(),
        };
        running
            .stdin
            .write_all(PRELUDE.as_bytes())
            .map_err(|e| Error::io("write to", Path::new("/bin/sh"), e))?;
        self.shell = Some(running);
        Ok(())
    }

    /// Evaluate the shared layer once per shell.
    pub fn common(&mut self) -> Result<Arc<CommonConfig>> {
        if self.common.is_none() {
            let result = self.evaluate_common().map(Arc::new);
            self.common = Some(result);
        }
        self.common.clone().expect("set above")
    }

    /// The shared layer, with PORT_PREFIX=auto replaced by the playpen's lease. The
    /// lease held is known before sh runs (a file); a playpen that has none yet is
    /// evaluated once to learn that it asks for one, then again in a fresh shell with
    /// the new lease, so every file sees the same prefix.
    fn evaluate_common(&mut self) -> Result<CommonConfig> {
        // A lease file that cannot be read matters only to a playpen that asks for one.
        let held = lease::current(&self.playpen);
        let mut common = self.evaluate_common_with(held.clone().ok().flatten())?;
        if common.asks_for_lease() && held?.is_none() {
            let prefix = lease::lease(&self.playpen)?;
            self.shell = None;
            common = self.evaluate_common_with(Some(prefix))?;
        }
        if let Some(v) = common.vars.get_mut(PORT_PREFIX)
            && lease::current(&self.playpen)
                .ok()
                .flatten()
                .is_some_and(|p| v.value == *p.to_string())
        {
            v.origin = Origin::File(lease::file(&self.playpen));
        }
        Ok(common)
    }

    fn evaluate_common_with(&mut self, lease: Option<u32>) -> Result<CommonConfig> {
        if self.shell.is_none() {
            self.spawn()?;
        }
        let files = self.common_files.clone();
        let output = self.scratch.path().to_path_buf();
        self.scratch
            .as_file()
            .set_len(0)
            .map_err(|e| Error::io("truncate", &output, e))?;
        let mut request = format!(
            "__sc_lease={}; __sc_common ",
            lease.map(|p| p.to_string()).unwrap_or_default()
        );
        request.push_str(&quote(&output));
        for f in &files {
            request.push(' ');
            request.push_str(&quote(f));
        }
        request.push_str("; printf '\\036E 0\\n' >&9\n");
        self.send(&request)?;
        let reply = self.receive(&files, Some(output))?;
        if let Some(err) = failure(&reply, &files, None) {
            // A broken shared layer leaves the shell unusable for services too.
            self.shell = None;
            return Err(err);
        }
        let builtins: Vec<String> = playpen_environment(&self.playpen, &self.role)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        let vars = fold_dumps(reply.dumps, &files, |name, _| {
            Some(if builtins.iter().any(|b| b == name) {
                Origin::Servicectl
            } else {
                Origin::Environment
            })
        });
        Ok(CommonConfig {
            role: self.role.clone(),
            files,
            vars,
        })
    }

    /// Evaluate one service's fragments on top of the shared layer.
    pub fn service(&mut self, id: &ServiceId) -> Result<ServiceConfig> {
        self.services(std::slice::from_ref(id))
            .pop()
            .expect("one result per service")
    }

    /// Evaluate several services, pipelined: up to PIPELINE requests wait in the
    /// shell's input, so sh evaluates while we read. One result per id, in order.
    pub fn services(&mut self, ids: &[ServiceId]) -> Vec<Result<ServiceConfig>> {
        let mut results = Vec::with_capacity(ids.len());
        // Requests written but not yet answered: (index in ids, its fragments).
        let mut in_flight: std::collections::VecDeque<(usize, Vec<PathBuf>)> = Default::default();
        let mut next = 0;
        while results.len() < ids.len() {
            let common = match self.common() {
                Ok(c) => c,
                Err(e) => {
                    results.push(Err(e.with_service(&ids[results.len()].name)));
                    continue;
                }
            };
            if self.shell.is_none() {
                // The shell was killed (a hang) after the shared layer: rebuild it and
                // send again what it had not answered.
                self.common = None;
                in_flight.clear();
                next = results.len();
                continue;
            }
            while next < ids.len() && next < results.len() + PIPELINE {
                let id = &ids[next];
                let fragments = catalog::config_fragments_with(&self.playpen, id, &self.stand_ins);
                if !fragments.is_empty() {
                    let request = self.service_request(id, &fragments);
                    if self.send(&request).is_err() {
                        break;
                    }
                    in_flight.push_back((next, fragments));
                }
                next += 1;
            }
            if self.shell.is_none() {
                continue;
            }
            let index = results.len();
            let id = &ids[index];
            let result = match in_flight.front() {
                Some((i, _)) if *i == index => {
                    let (_, fragments) = in_flight.pop_front().expect("front exists");
                    self.evaluate_reply(id, &common, fragments)
                }
                _ if catalog::config_fragments_with(&self.playpen, id, &self.stand_ins)
                    .is_empty() =>
                {
                    Err(self.no_config(id))
                }
                // Sending failed: the shell is gone; the loop rebuilds it.
                _ => continue,
            };
            results.push(result);
        }
        results
    }

    fn no_config(&self, id: &ServiceId) -> Error {
        Error::config(format!(
            "no config: none of {} exists",
            catalog::project_dirs(&self.playpen, id)
                .into_iter()
                .chain(catalog::ext_dir(&self.playpen, id))
                .map(|d| d.join("config").display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .with_service(&id.name)
        .with_hint("reinstall the service's package, or write services/NAME/config")
    }

    fn service_request(&self, id: &ServiceId, fragments: &[PathBuf]) -> String {
        let output = quote(self.scratch.path());
        let mut request = String::from("__sc_service");
        for arg in [
            self.scratch.path().to_path_buf(),
            PathBuf::from(&id.name),
            PathBuf::from(id.version.as_deref().unwrap_or("")),
            self.playpen.pidfile(&id.name),
            self.playpen.output_file(&id.name),
        ]
        .iter()
        .chain(fragments.iter())
        {
            request.push(' ');
            request.push_str(&quote(arg));
        }
        request.push_str(&format!(
            "; __sc_st=$?; [ \"$__sc_st\" = {SOURCED_ALL} ] || __sc_show {output}; printf '\\036E %s\\n' \"$__sc_st\" >&9\n"
        ));
        request
    }

    fn evaluate_reply(
        &mut self,
        id: &ServiceId,
        common: &CommonConfig,
        fragments: Vec<PathBuf>,
    ) -> Result<ServiceConfig> {
        let output = self.scratch.path().to_path_buf();
        let mut reply = self
            .receive(&fragments, Some(output))
            .map_err(|e| e.with_service(&id.name))?;
        if reply.exit_status == Some(SOURCED_ALL) {
            reply.exit_status = Some(0);
        }
        if let Some(err) = failure(&reply, &fragments, Some(&id.name)) {
            return Err(err);
        }
        let pidfile = self.playpen.pidfile(&id.name);
        let output = self.playpen.output_file(&id.name);
        let version = id.version.as_deref().unwrap_or("");
        // The subshell starts from the shared layer plus the four SERVICE_* variables, so
        // sh need not print that state again for every service.
        let vars = fold_dumps(reply.dumps, &fragments, |name, value| {
            let builtin: Option<&OsStr> = match name {
                "SERVICE_NAME" => Some(id.name.as_ref()),
                "SERVICE_VERSION" => Some(version.as_ref()),
                "SERVICE_PIDFILE" => Some(pidfile.as_os_str()),
                "SERVICE_OUTPUT_FILE" => Some(output.as_os_str()),
                _ => None,
            };
            match builtin {
                Some(v) if v == value => Some(Origin::Servicectl),
                Some(_) => None,
                None => common
                    .vars
                    .get(name)
                    .filter(|v| v.value == value)
                    .map(|v| v.origin.clone()),
            }
        });
        Ok(ServiceConfig {
            id: id.clone(),
            fragments,
            vars,
        })
    }

    /// Write a request to the shell; a dead shell is forgotten.
    fn send(&mut self, request: &str) -> Result<()> {
        let shell = self.shell.as_mut().expect("spawned");
        if let Err(e) = shell.stdin.write_all(request.as_bytes()) {
            self.shell = None;
            return Err(Error::io("write to", Path::new("/bin/sh"), e));
        }
        Ok(())
    }

    /// Read the reply to the oldest request, enforcing the per-fragment time limit.
    fn receive(&mut self, files: &[PathBuf], output_file: Option<PathBuf>) -> Result<Reply> {
        let timeout = self.timeout;
        let shell = self.shell.as_mut().expect("spawned");
        let mut reply = Reply {
            dumps: Vec::new(),
            failed: None,
            last_begun: 0,
            exit_status: None,
            shell_status: None,
            output_lines: Vec::new(),
            output_file,
        };
        let mut current: Option<(usize, Dump)> = None;
        let mut progress = Instant::now();
        let mut dead = false;
        while !dead {
            // Consume every whole item in the buffer.
            let mut consumed = 0;
            let mut finished = false;
            while let Some((item, used)) = shell_dump::parse_item(&shell.buf[consumed..]) {
                consumed += used;
                match item {
                    Item::Marker(m) if m == "O" || m.starts_with("O ") => {
                        reply
                            .output_lines
                            .push(m.get(2..).unwrap_or("").to_string());
                    }
                    Item::Marker(m) => {
                        if let Some(done) = current.take() {
                            reply.dumps.push(done);
                        }
                        let mut words = m.split_whitespace();
                        let tag = words.next().unwrap_or("");
                        let nums: Vec<i64> = words.filter_map(|w| w.parse().ok()).collect();
                        match (tag, nums.as_slice()) {
                            ("D", [i]) => current = Some((*i as usize, Dump::new())),
                            ("B", [i]) => {
                                reply.last_begun = *i as usize;
                                progress = Instant::now();
                            }
                            ("S", [i, st]) => reply.failed = Some((*i as usize, *st as i32)),
                            ("X", [st]) => reply.shell_status = Some(*st as i32),
                            ("E", [st]) => {
                                reply.exit_status = Some(*st as i32);
                                finished = true;
                                break;
                            }
                            _ => {}
                        }
                    }
                    Item::Var {
                        name,
                        value,
                        exported,
                    } => {
                        if let Some((_, dump)) = current.as_mut() {
                            if name.starts_with("__sc_") || SHELL_INTERNALS.contains(&name.as_str())
                            {
                                continue;
                            }
                            let entry = dump.entry(name).or_insert((OsString::new(), false));
                            if let Some(value) = value {
                                entry.0 = value;
                            }
                            entry.1 |= exported;
                        }
                    }
                    Item::Unparsed(_) => {}
                }
            }
            shell.buf.drain(..consumed);
            if finished {
                break;
            }
            let left = timeout.saturating_sub(progress.elapsed());
            match shell.data.recv_timeout(left) {
                Ok(chunk) => shell.buf.extend_from_slice(&chunk),
                Err(RecvTimeoutError::Disconnected) => dead = true,
                Err(RecvTimeoutError::Timeout) => {
                    let file = files
                        .get(reply.last_begun.saturating_sub(1))
                        .map(|p| p.display().to_string())
                        .unwrap_or_else(|| "the config shell".into());
                    self.shell = None;
                    return Err(Error::config(format!(
                        "{file} did not finish within {:.0} s (it hangs or waits for something)",
                        timeout.as_secs_f64()
                    ))
                    .with_hint(format!(
                        "a config fragment must only assign variables; remove the blocking command, or raise {TIMEOUT_ENV}"
                    )));
                }
            }
        }
        if let Some(done) = current.take() {
            reply.dumps.push(done);
        }
        if dead {
            self.shell = None;
        }
        Ok(reply)
    }
}

/// Quote a path for the request line.
fn quote(p: &Path) -> String {
    shell_words::quote(&p.display().to_string()).into_owned()
}

/// Build the final variables with their origins by comparing successive dumps: a value
/// that appears or changes in the dump after file i was set by file i. `before` gives
/// the origin of a value as it stood before the first dump (None: not there, or changed).
fn fold_dumps(
    dumps: Vec<(usize, Dump)>,
    files: &[PathBuf],
    before: impl Fn(&str, &OsStr) -> Option<Origin>,
) -> Vars {
    let mut vars: Option<Vars> = None;
    for (index, dump) in dumps {
        let mut previous = vars.take();
        let next = dump
            .into_iter()
            .map(|(name, (value, exported))| {
                let kept = match previous.as_mut() {
                    Some(prev) => prev
                        .remove(&name)
                        .filter(|v| v.value == value)
                        .map(|v| v.origin),
                    None => before(&name, &value),
                };
                let origin = kept.unwrap_or_else(|| match index {
                    0 => Origin::Environment,
                    i => Origin::File(files[i - 1].clone()),
                });
                (
                    name,
                    Value {
                        value,
                        exported,
                        origin,
                    },
                )
            })
            .collect();
        vars = Some(next);
    }
    vars.unwrap_or_default()
}

#[cfg(test)]
mod tests;

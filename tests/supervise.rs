//! `servicectl supervise` against real processes: restarts and backoff, policies,
//! fail-fast, shutdown order, readiness, desired state, logs and rotation, bad
//! clients, a second uid, and re-adoption after the supervisor is killed mid-work.

use crate::common::*;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// A foreground `servicectl supervise` of a test playpen; killed (SIGKILL) on drop,
/// which leaves its services to the playpen's own cleanup.
struct Supervisor {
    child: Child,
    log: std::path::PathBuf,
}

impl Supervisor {
    #[track_caller]
    fn start(pp: &Playpen, args: &[&str]) -> Supervisor {
        let log = pp.path("var/supervise.test.log");
        std::fs::create_dir_all(log.parent().unwrap()).unwrap();
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = pp
            .command()
            .arg("supervise")
            .args(args)
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("spawn supervise");
        let mut sup = Supervisor { child, log };
        let socket = pp.path("var/run/servicectl.sock");
        let child = &mut sup.child;
        // (With --daemon the command itself exits 0 once the daemon listens.)
        let failed = |c: &mut Child| matches!(c.try_wait(), Ok(Some(st)) if !st.success());
        let listening = wait_until(PATIENCE, || {
            failed(child) || UnixStream::connect(&socket).is_ok()
        });
        assert!(
            listening && !failed(&mut sup.child),
            "the supervisor does not listen:\n{}\nthe lock is held by: {}",
            sup.log(),
            holders(&pp.path("var/run/servicectl.supervise.lock"))
        );
        sup
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Wait for it to exit; its exit code.
    #[track_caller]
    fn exit_code(&mut self, within: Duration) -> i32 {
        let mut code = None;
        let child = &mut self.child;
        let exited = wait_until(within, || match child.try_wait() {
            Ok(Some(status)) => {
                code = Some(status.code().unwrap_or(-1));
                true
            }
            _ => false,
        });
        assert!(exited, "the supervisor did not exit:\n{}", self.log());
        code.unwrap()
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The processes that have `path` open, with their command lines and states.
fn holders(path: &std::path::Path) -> String {
    let mut out = Vec::new();
    for pid in all_pids() {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        if fds
            .flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| t == path))
        {
            out.push(format!(
                "{pid} {:?} {:?}",
                cmdline(pid),
                stat_fields(pid).map(|f| f[..4].to_vec())
            ));
        }
    }
    out.join("; ")
}

/// Wait until the supervisor shows `name` in `state`; its view then.
#[track_caller]
fn wait_state(pp: &Playpen, sup: &Supervisor, name: &str, state: &str) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    let reached = wait_until(PATIENCE, || {
        let out = pp.run(&["status", "--json", name]);
        last = match serde_json::from_str::<serde_json::Value>(&out.stdout) {
            Ok(rows) => rows
                .as_array()
                .and_then(|rows| rows.iter().find(|r| r["service"] == name))
                .cloned()
                .unwrap_or_default(),
            Err(_) => serde_json::Value::String(out.to_string()),
        };
        last["state"] == state
    });
    assert!(
        reached,
        "{name} did not get to {state}: {last}\nsupervisor log:\n{}\noutputs:{}",
        sup.log(),
        pp.outputs()
    );
    last
}

/// Wait until `name` runs with a PID other than `old`; the new PID.
#[track_caller]
fn wait_new_pid(pp: &Playpen, sup: &Supervisor, name: &str, old: i32) -> i32 {
    let mut last = serde_json::Value::Null;
    let changed = wait_until(PATIENCE, || {
        last = pp.view(name);
        last["state"] == "running" && last["pid"].as_i64().is_some_and(|p| p as i32 != old)
    });
    assert!(changed, "{name} was not restarted: {last}\n{}", sup.log());
    last["pid"].as_i64().unwrap() as i32
}

/// A service that appends a line to var/NAME.runs at each start, runs `secs`, then
/// exits with status 1.
fn crasher(pp: &Playpen, name: &str, secs: f64, extra: &str) {
    pp.write_exec(
        &format!("bin/{name}-crash"),
        &format!("#!/bin/sh\necho run >> \"$LOCAL_VAR/{name}.runs\"\nsleep {secs}\nexit 1\n"),
    );
    pp.service(
        name,
        &format!("service_program={name}-crash\nservice_start_grace=0\n{extra}\n"),
    );
}

fn runs(pp: &Playpen, name: &str) -> usize {
    pp.read_or_empty(&format!("var/{name}.runs"))
        .lines()
        .count()
}

/// One request line on a raw connection, and the reply line.
fn raw_request(pp: &Playpen, line: &[u8]) -> String {
    let mut s = UnixStream::connect(pp.path("var/run/servicectl.sock")).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s.write_all(line).unwrap();
    let mut reply = Vec::new();
    let mut byte = [0u8; 1];
    while s.read(&mut byte).unwrap_or(0) == 1 && byte[0] != b'\n' {
        reply.push(byte[0]);
    }
    String::from_utf8_lossy(&reply).into_owned()
}

#[test]
fn one_supervisor_per_playpen_and_a_stale_socket_is_no_obstacle() {
    let pp = Playpen::with_ports(&["a"], &[]);
    pp.sleeper_service("a", "");
    // A socket file whose listener is gone (a supervisor killed long ago).
    let socket = pp.path("var/run/servicectl.sock");
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    assert!(socket.exists());
    // Without a supervisor every command acts directly, stale socket or not.
    pp.run(&["start", "a"])
        .ok()
        .shows(&pp, "a: started (pid {PID})\n");
    pp.run(&["stop", "a"]).ok();
    let sup = Supervisor::start(&pp, &[]);
    wait_state(&pp, &sup, "a", "running");
    let second = pp.run_timeout(&["supervise"], 20);
    second
        .code_is(1)
        .shows(&pp, "servicectl: {ROOT} is already supervised by PID {PID} — talk to it with servicectl status/start/stop; `servicectl shutdown` ends it\n")
        .says(&[&format!("already supervised by PID {}", sup.pid())]);
    // The live supervisor's socket is still there and answers.
    assert_eq!(pp.view("a")["state"], "running");
    let mode = std::fs::metadata(&socket).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(mode.permissions().mode() & 0o777, 0o600);
}

#[test]
fn a_crashed_service_is_restarted_and_a_stop_is_never_followed_by_a_restart() {
    let pp = Playpen::with_ports(&["web"], &[]);
    pp.sleeper_service("web", "service_restart_policy=unlimited");
    let sup = Supervisor::start(&pp, &[]);
    let first = wait_state(&pp, &sup, "web", "running")["pid"]
        .as_i64()
        .unwrap() as i32;
    assert_eq!(pp.running_as("web"), [first]);
    kill(first, nix::sys::signal::Signal::SIGKILL);
    let second = wait_new_pid(&pp, &sup, "web", first);
    let v = pp.view("web");
    assert_eq!(v["restarts"], 1, "{v}");
    assert_eq!(v["last_exit"], "was killed by signal SIGKILL", "{v}");
    assert_eq!(pp.running_as("web"), [second]);
    // The text table shows the same.
    pp.run(&["status"])
        .ok()
        .out_says(&["RESTARTS", "LAST EXIT", "was killed by signal SIGKILL"]);
    // A stop through the supervisor is on purpose.
    pp.run(&["stop", "web"])
        .ok()
        .shows(&pp, "web: stopped (pid {PID})\n");
    assert_dies(second, "web after stop");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(pp.view("web")["state"], "stopped");
    assert!(pp.running_as("web").is_empty());
    pp.run(&["status", "web"]).code_is(3);
    // And a start brings it back.
    pp.run(&["start", "web"])
        .ok()
        .shows(&pp, "web: started (pid {PID})\n");
    assert_eq!(pp.running_as("web").len(), 1);
}

#[test]
fn out_of_restarts_is_failed_and_status_exits_3() {
    let pp = Playpen::with_ports(&["flaky"], &[]);
    crasher(&pp, "flaky", 0.2, "service_restart_policy=2");
    let sup = Supervisor::start(&pp, &[]);
    let v = wait_state(&pp, &sup, "flaky", "failed");
    assert_eq!(v["restarts"], 2, "{v}");
    assert_eq!(v["last_exit"], "exited with status 1", "{v}");
    // The first run and two restarts: three runs, no more.
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(runs(&pp, "flaky"), 3);
    pp.run(&["status", "flaky"])
        .code_is(3)
        .out_says(&["failed"]);
}

#[test]
fn a_crash_loop_backs_off() {
    let pp = Playpen::with_ports(&["loop"], &[]);
    crasher(
        &pp,
        "loop",
        0.0,
        "service_restart_policy=unlimited\nservice_restart_backoff_max=0.4",
    );
    let sup = Supervisor::start(&pp, &[]);
    std::thread::sleep(Duration::from_secs(3));
    let n = runs(&pp, "loop");
    // Delays 0.1 0.1 0.2 0.4 0.4 …: about 10 runs in 3 s, not hundreds.
    assert!((3..=16).contains(&n), "{n} runs in 3 s\n{}", sup.log());
    let v = pp.view("loop");
    assert!(
        ["backoff", "starting", "running"].contains(&v["state"].as_str().unwrap()),
        "{v}"
    );
}

#[test]
fn fail_fast_stops_the_playpen_and_the_supervisor_exits_non_zero_naming_it() {
    let pp = Playpen::with_ports(&["db", "bad"], &[]);
    pp.sleeper_service("db", "service_restart_policy=unlimited");
    crasher(&pp, "bad", 0.3, "service_fail_fast=1");
    let mut sup = Supervisor::start(&pp, &[]);
    let code = sup.exit_code(PATIENCE);
    assert_ne!(code, 0);
    assert!(sup.log().contains("bad failed"), "{}", sup.log());
    assert!(
        wait_until(PATIENCE, || pp.running_as("db").is_empty()),
        "db still runs"
    );
}

#[test]
fn shutdown_and_sigterm_stop_dependants_first_then_exit_0() {
    for how in ["shutdown", "SIGTERM"] {
        let pp = Playpen::with_ports(&["db", "app", "web"], &[]);
        let order = pp.path("var/order");
        let hook = format!(
            "service_post_stop='echo $SERVICE_NAME >> {}'",
            order.display()
        );
        pp.sleeper_service("db", &hook);
        pp.sleeper_service("app", &format!("service_depends=db\n{hook}"));
        pp.sleeper_service("web", &format!("service_depends=app\n{hook}"));
        let mut sup = Supervisor::start(&pp, &[]);
        for s in ["db", "app", "web"] {
            wait_state(&pp, &sup, s, "running");
        }
        if how == "shutdown" {
            pp.run(&["shutdown"])
                .ok()
                .shows(&pp, "web: stopped (pid {PID})\napp: stopped (pid {PID})\ndb: stopped (pid {PID})\nsupervisor of {ROOT} shut down\n");
        } else {
            kill(sup.pid(), nix::sys::signal::Signal::SIGTERM);
        }
        assert_eq!(sup.exit_code(PATIENCE), 0, "{how}");
        assert_eq!(pp.read("var/order"), "web\napp\ndb\n", "{how}");
        assert!(pp.running_as("db").is_empty());
        assert!(!pp.exists("var/run/servicectl.sock"));
        // Without a supervisor, shutdown says so.
        pp.run(&["shutdown"])
            .ok()
            .shows(&pp, "no supervisor runs for {ROOT}\n");
    }
}

#[test]
fn a_halt_timeout_ends_a_service_that_ignores_sigterm() {
    let pp = Playpen::with_ports(&["stubborn"], &[]);
    pp.write_exec(
        "bin/stubborn",
        "#!/bin/sh\ntrap '' TERM\nwhile :; do sleep 1; done\n",
    );
    pp.service(
        "stubborn",
        "service_program=stubborn\nservice_halt_timeout=1\nservice_restart_policy=unlimited\n",
    );
    let sup = Supervisor::start(&pp, &[]);
    let pid = wait_state(&pp, &sup, "stubborn", "running")["pid"]
        .as_i64()
        .unwrap() as i32;
    let started = Instant::now();
    pp.run(&["stop", "stubborn"]).ok();
    assert!(!alive(pid));
    assert!(started.elapsed() >= Duration::from_millis(900));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(pp.view("stubborn")["state"], "stopped");
}

#[test]
fn bad_clients_do_not_block_or_crash_the_supervisor() {
    let pp = Playpen::with_ports(&["a"], &[]);
    pp.sleeper_service("a", "");
    let sup = Supervisor::start(&pp, &[]);
    wait_state(&pp, &sup, "a", "running");
    let socket = pp.path("var/run/servicectl.sock");
    // Connects and sends nothing, kept open throughout.
    let _silent = UnixStream::connect(&socket).unwrap();
    // Half a request, then gone.
    {
        let mut s = UnixStream::connect(&socket).unwrap();
        s.write_all(br#"{"v":1,"op":"sta"#).unwrap();
    }
    // Garbage gets an error answer.
    let reply = raw_request(&pp, b"this is not json\n");
    assert!(reply.contains("bad control message"), "{reply}");
    let reply = raw_request(&pp, b"{\"v\":9,\"op\":\"status\"}\n");
    assert!(reply.contains("version 9"), "{reply}");
    // A 10 MB line: an error, then the connection is closed.
    {
        let mut s = UnixStream::connect(&socket).unwrap();
        s.set_read_timeout(Some(PATIENCE)).unwrap();
        let big = vec![b'x'; 10 * 1024 * 1024];
        // The supervisor may close before all of it is written.
        let _ = s.write_all(&big);
        let mut reply = String::new();
        let _ = s.read_to_string(&mut reply);
        assert!(reply.contains("longer than"), "{reply}");
    }
    // A request whose client leaves before the answer: carried out all the same.
    {
        let mut s = UnixStream::connect(&socket).unwrap();
        s.write_all(b"{\"v\":1,\"op\":\"stop\",\"services\":[\"a\"]}\n")
            .unwrap();
    }
    wait_state(&pp, &sup, "a", "stopped");
    // Still answering, quickly; an unknown service is a clear error (exit 4).
    let out = pp.run_timeout(&["status", "nosuch"], 10);
    out.code_is(4).shows(&pp, "servicectl: nosuch: unknown service (no ext/services/nosuch-VERSION/ and no services/nosuch/config) — known services: a\n");
    let reply = raw_request(&pp, b"{\"v\":1,\"op\":\"hello\"}\n");
    assert!(reply.contains(&format!("\"pid\":{}", sup.pid())), "{reply}");
    // Its memory stayed bounded: the 10 MB line was not kept.
    let status = std::fs::read_to_string(format!("/proc/{}/status", sup.pid())).unwrap();
    let rss_kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .parse()
        .unwrap();
    assert!(rss_kb < 20 * 1024, "VmRSS {rss_kb} kB");
}

#[test]
fn only_its_own_uid_and_root_may_control_it() {
    let pp = Playpen::with_ports(&["a"], &[]);
    pp.sleeper_service("a", "");
    let sup = Supervisor::start(&pp, &[]);
    wait_state(&pp, &sup, "a", "running");
    // Open the way to the socket for another user, so that only SO_PEERCRED stands.
    use std::os::unix::fs::PermissionsExt;
    for dir in [pp.root.clone(), pp.path("var"), pp.path("var/run")] {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o711)).unwrap();
    }
    let socket = pp.path("var/run/servicectl.sock");
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let script = format!(
        "import socket\ns = socket.socket(socket.AF_UNIX)\ns.connect({:?})\ntry:\n    s.sendall(b'{{\"v\":1,\"op\":\"stop\",\"services\":[\"a\"]}}\\n')\nexcept OSError:\n    pass\nprint(s.makefile().readline())\n",
        socket.display().to_string()
    );
    use std::os::unix::process::CommandExt;
    let out = run_command(
        std::process::Command::new("python3")
            .arg("-c")
            .arg(&script)
            .uid(65534)
            .gid(65534),
    );
    assert!(out.stdout.contains("refused: uid 65534"), "{out}");
    assert_eq!(pp.view("a")["state"], "running");
}

#[test]
fn dependants_start_once_what_they_depend_on_is_ready_and_wait_says_so() {
    let pp = Playpen::with_ports(&["db", "app"], &[]);
    pp.sleeper_service("db", "");
    pp.write_exec(
        "services/db/ping",
        "#!/bin/sh\ntest -e \"$LOCAL_VAR/db-ready\"\n",
    );
    pp.sleeper_service("app", "service_depends=db");
    let sup = Supervisor::start(&pp, &[]);
    wait_until(PATIENCE, || !pp.running_as("db").is_empty());
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(pp.view("db")["state"], "starting");
    assert!(
        pp.running_as("app").is_empty(),
        "app started before db was ready"
    );
    pp.run(&["wait", "db", "--timeout", "0.5"])
        .code_is(1)
        .err_says(&["servicectl: db: not ready ("]);
    pp.write("var/db-ready", "");
    pp.run(&["wait", "db", "app", "--timeout", "20"])
        .ok()
        .shows(&pp, "db: ready\napp: ready\n");
    assert_eq!(pp.running_as("app").len(), 1);
    assert_eq!(pp.view("app")["state"], "running");
    drop(sup);
    // Without a supervisor, wait pings.
    pp.run(&["wait", "db", "app", "--timeout", "5"]).ok();
}

#[test]
fn a_slow_ping_of_one_service_does_not_delay_the_restart_of_another() {
    let pp = Playpen::with_ports(&["slow", "quick"], &[]);
    pp.sleeper_service("slow", "");
    pp.write_exec("services/slow/ping", "#!/bin/sh\nsleep 30\n");
    pp.sleeper_service("quick", "service_restart_policy=unlimited");
    let sup = Supervisor::start(&pp, &[]);
    let pid = wait_state(&pp, &sup, "quick", "running")["pid"]
        .as_i64()
        .unwrap() as i32;
    assert_eq!(pp.view("slow")["state"], "starting");
    let killed = Instant::now();
    kill(pid, nix::sys::signal::Signal::SIGKILL);
    wait_new_pid(&pp, &sup, "quick", pid);
    assert!(
        killed.elapsed() < Duration::from_secs(5),
        "{:?}",
        killed.elapsed()
    );
}

#[test]
fn enable_disable_up_and_down_with_and_without_a_supervisor() {
    let pp = Playpen::with_ports(&["a", "b"], &[]);
    pp.sleeper_service("a", "");
    pp.sleeper_service("b", "");
    pp.run(&["disable", "b"]).ok().shows(
        &pp,
        "b: disabled\n`servicectl up` brings the services to their desired state\n",
    );
    assert!(pp.registry_line("b").unwrap().contains("\tdisable"));
    pp.run(&["disable", "b"])
        .ok()
        .shows(&pp, "b: already disabled\n");
    // Without a supervisor: up starts the enabled and stops the disabled.
    pp.run(&["start", "b"]).ok();
    pp.run(&["up"]).ok();
    assert_eq!(pp.running_as("a").len(), 1);
    assert!(pp.running_as("b").is_empty());
    pp.run(&["down"]).ok();
    assert!(pp.running_as("a").is_empty());
    // With one.
    let sup = Supervisor::start(&pp, &[]);
    wait_state(&pp, &sup, "a", "running");
    assert!(
        pp.running_as("b").is_empty(),
        "a disabled service was started"
    );
    pp.run(&["enable", "b"]).ok().shows(
        &pp,
        "b: enabled\n`servicectl up` brings the services to their desired state\n",
    );
    pp.run(&["up"])
        .ok()
        .shows(&pp, "b: started (pid {PID})\nalready running (1): a\n");
    wait_state(&pp, &sup, "b", "running");
    pp.run(&["up"])
        .ok()
        .shows(&pp, "already running (2): a, b\n");
    pp.run(&["down"]).ok();
    assert!(wait_until(PATIENCE, || pp.running_as("a").is_empty()
        && pp.running_as("b").is_empty()));
    assert_eq!(pp.view("a")["state"], "stopped");
}

#[test]
fn logs_prints_tails_with_prefixes_and_follows_across_rotation() {
    let pp = Playpen::with_ports(&["talk", "mute"], &[]);
    pp.write_exec(
        "bin/talker",
        "#!/bin/sh\ni=0\nwhile :; do i=$((i+1)); echo \"line $i xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"; sleep 0.01; done\n",
    );
    pp.service(
        "talk",
        "service_program=talker\nservice_log_max_bytes=4K\nservice_log_keep=2\n",
    );
    pp.sleeper_service("mute", "");
    pp.write("var/run/mute.output", "one\ntwo\nthree\n");
    // Without a supervisor: tails.
    pp.run(&["logs", "mute", "-n", "2"]).ok();
    assert_eq!(pp.run(&["logs", "mute", "-n", "2"]).stdout, "two\nthree\n");
    let sup = Supervisor::start(&pp, &[]);
    wait_state(&pp, &sup, "talk", "running");
    // Rotated by size (by the output keeper).
    assert!(
        wait_until(PATIENCE, || pp.exists("var/run/talk.output.2")),
        "no rotation: {:?}\n{}",
        std::fs::read_dir(pp.path("var/run"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect::<Vec<_>>(),
        sup.log()
    );
    assert!(!pp.exists("var/run/talk.output.3"));
    assert!(
        std::fs::metadata(pp.path("var/run/talk.output"))
            .unwrap()
            .len()
            < 64 * 1024
    );
    // Several services: prefixed.
    // (Right after a rotation talk.output may be empty for a moment.)
    let mut out = None;
    wait_until(PATIENCE, || {
        let o = pp.run(&["logs", "mute", "talk", "-n", "1"]);
        let done = o.stdout.contains("talk: line ");
        out = Some(o);
        done
    });
    out.unwrap()
        .ok()
        .out_says(&["mute: three\n", "talk: line "]);
    // Follow, across at least one more rotation.
    let mut follower = spawn_piped(pp.command().args(["logs", "-f", "-n", "0", "talk"]));
    let mut stdout = follower.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = Vec::new();
        let mut buf = [0u8; 4096];
        while text.len() < 20_000 {
            match stdout.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => text.extend_from_slice(&buf[..n]),
            }
        }
        String::from_utf8_lossy(&text).into_owned()
    });
    let text = reader.join().unwrap();
    let _ = follower.kill();
    let _ = follower.wait();
    let numbers: Vec<u64> = text
        .lines()
        .filter_map(|l| l.strip_prefix("line ")?.split(' ').next()?.parse().ok())
        .collect();
    assert!(numbers.len() > 200, "{text}");
    // In order, without a gap: rotation by rename loses nothing (tests/keeper.rs).
    assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "{numbers:?}");
}

/// The live instances of a service: processes started for it (SERVICE_NAME in their
/// environment) whose parent is not one of them (a script's own children are part of
/// its instance).
fn instances(pp: &Playpen, name: &str) -> Vec<i32> {
    let entry = format!("SERVICE_NAME={name}");
    let procs: Vec<i32> = pp
        .processes()
        .into_iter()
        .filter(|&p| environ_has(p, &entry))
        .collect();
    let mut tops: Vec<i32> = procs
        .iter()
        .copied()
        .filter(|&p| {
            let parent: i32 = stat_fields(p).map_or(0, |f| f[1].parse().unwrap_or(0));
            !procs.contains(&parent)
        })
        .collect();
    tops.sort();
    tops
}

/// Every service has exactly one live process and the supervisor knows it.
#[track_caller]
fn each_runs_once_and_is_known(pp: &Playpen, sup: &Supervisor, names: &[String]) {
    for name in names {
        wait_state(pp, sup, name, "running");
    }
    // Let anything started twice show up.
    std::thread::sleep(Duration::from_millis(500));
    let out = pp.run(&["status", "--json"]);
    let rows = out.json();
    for name in names {
        let procs = instances(pp, name);
        assert_eq!(procs.len(), 1, "{name}: processes {procs:?}\n{}", sup.log());
        let row = rows
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["service"] == name.as_str())
            .unwrap_or_else(|| panic!("{name} unknown to the supervisor: {out}"));
        assert_eq!(row["pid"], procs[0], "{name}: {row}");
        assert_eq!(row["state"], "running");
    }
}

#[test]
fn killed_supervisor_leaves_services_running_and_a_new_one_adopts_them() {
    let pp = Playpen::with_ports(&["a", "b"], &[]);
    pp.write_exec(
        "bin/ticker",
        "#!/bin/sh\nwhile :; do echo tick; sleep 0.05; done\n",
    );
    pp.service(
        "a",
        "service_program=ticker\nservice_restart_policy=unlimited\n",
    );
    pp.sleeper_service("b", "service_restart_policy=unlimited");
    let mut sup = Supervisor::start(&pp, &["--daemon"]);
    // --daemon returned once the socket accepted: the command itself has exited 0.
    assert_eq!(sup.exit_code(PATIENCE), 0);
    wait_until(PATIENCE, || pp.view("a")["state"] == "running");
    wait_until(PATIENCE, || pp.view("b")["state"] == "running");
    let a = pp.view("a")["pid"].as_i64().unwrap() as i32;
    let b = pp.view("b")["pid"].as_i64().unwrap() as i32;
    let daemon: i32 = pp
        .read("var/run/servicectl.supervise.lock")
        .trim()
        .parse()
        .unwrap();
    kill(daemon, nix::sys::signal::Signal::SIGKILL);
    assert_dies(daemon, "the supervisor");
    // The services keep running and writing.
    let size = std::fs::metadata(pp.path("var/run/a.output"))
        .unwrap()
        .len();
    assert!(wait_until(PATIENCE, || std::fs::metadata(
        pp.path("var/run/a.output")
    )
    .unwrap()
    .len()
        > size));
    assert!(alive(a) && alive(b));
    // Without a supervisor, status reads the files (and finds the socket stale).
    pp.run(&["status"]).ok();
    let sup2 = Supervisor::start(&pp, &[]);
    let names = vec!["a".to_string(), "b".to_string()];
    each_runs_once_and_is_known(&pp, &sup2, &names);
    assert_eq!(pp.view("b")["pid"], b, "b was started again");
    // An adopted service that dies is restarted.
    kill(b, nix::sys::signal::Signal::SIGKILL);
    wait_new_pid(&pp, &sup2, "b", b);
    each_runs_once_and_is_known(&pp, &sup2, &names);
}

#[test]
fn killed_during_a_start_of_twenty_services_loses_none_and_doubles_none() {
    let names: Vec<String> = (0..20).map(|i| format!("svc{i:02}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let pp = Playpen::with_ports(&refs, &[]);
    for n in &names {
        pp.sleeper_service(
            n,
            "service_restart_policy=unlimited\nservice_start_grace=0.5",
        );
    }
    let mut sup = Supervisor::start(&pp, &[]);
    // Mid-start: some are up, others are being started.
    wait_until(PATIENCE, || {
        names.iter().any(|n| !pp.running_as(n).is_empty())
    });
    sup.kill9();
    let sup2 = Supervisor::start(&pp, &[]);
    each_runs_once_and_is_known(&pp, &sup2, &names);
}

#[test]
fn killed_during_a_restart_storm_loses_none_and_doubles_none() {
    let names: Vec<String> = (0..8).map(|i| format!("storm{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let pp = Playpen::with_ports(&refs, &[]);
    // Each crashes its first three runs, quickly, then stays up.
    pp.write_exec(
        "bin/stormy",
        "#!/bin/sh\nn=$(cat \"$LOCAL_VAR/$SERVICE_NAME.n\" 2>/dev/null || echo 0)\necho $((n+1)) > \"$LOCAL_VAR/$SERVICE_NAME.n\"\nif [ \"$n\" -lt 3 ]; then sleep 0.05; exit 1; fi\nexec sleep 3600\n",
    );
    for n in &names {
        pp.service(
            n,
            &format!(
                "service_program=stormy\nservice_run_name={n}\nservice_restart_policy=unlimited\nservice_start_grace=0\n"
            ),
        );
    }
    let mut sup = Supervisor::start(&pp, &[]);
    wait_until(PATIENCE, || {
        names
            .iter()
            .any(|n| pp.read_or_empty(&format!("var/{n}.n")).trim() == "2")
    });
    sup.kill9();
    let sup2 = Supervisor::start(&pp, &[]);
    // Past its crashes (the fourth run stays up): `running` alone may be one of the
    // short runs, seen between two crashes.
    wait_until(PATIENCE, || {
        names.iter().all(|n| {
            pp.read_or_empty(&format!("var/{n}.n"))
                .trim()
                .parse::<u32>()
                .is_ok_and(|runs| runs >= 4)
        })
    });
    each_runs_once_and_is_known(&pp, &sup2, &names);
}

#[test]
fn idle_it_wakes_for_nothing() {
    let names: Vec<String> = (0..5).map(|i| format!("idle{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let pp = Playpen::with_ports(&refs, &[]);
    for n in &names {
        pp.sleeper_service(n, "service_restart_policy=unlimited");
    }
    let sup = Supervisor::start(&pp, &[]);
    for n in &names {
        wait_state(&pp, &sup, n, "running");
    }
    let switches = || {
        let status = std::fs::read_to_string(format!("/proc/{}/status", sup.pid())).unwrap();
        status
            .lines()
            .filter(|l| l.contains("ctxt_switches"))
            .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum::<u64>()
    };
    // Let the last jobs' threads finish and the readiness settle.
    std::thread::sleep(Duration::from_millis(500));
    let before = switches();
    std::thread::sleep(Duration::from_secs(2));
    let after = switches();
    assert!(
        after - before <= 2,
        "{before} -> {after} context switches while idle"
    );
    let threads = std::fs::read_to_string(format!("/proc/{}/status", sup.pid())).unwrap();
    assert!(threads.contains("Threads:\t1\n"), "{threads}");
}

#[test]
fn package_hooks_acting_directly_are_followed_not_fought() {
    let pp = Playpen::with_ports(&["web"], &[]);
    pp.install_sleep("ext/bin/websleep");
    pp.package(
        "web",
        "1.0",
        "service_program=websleep\nservice_flags=3600\nservice_restart_policy=unlimited\n",
    );
    let sup = Supervisor::start(&pp, &[]);
    let first = wait_state(&pp, &sup, "web", "running")["pid"]
        .as_i64()
        .unwrap() as i32;
    // pre-upgrade stops it directly (no daemon needed): no restart follows.
    pp.run(&["pre-upgrade", "web"])
        .ok()
        .shows(&pp, "stopped: web\n");
    assert_dies(first, "web after pre-upgrade");
    wait_state(&pp, &sup, "web", "stopped");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(instances(&pp, "web").is_empty(), "{}", sup.log());
    // post-upgrade starts it directly: the supervisor takes it over.
    pp.run(&["post-upgrade", "web"])
        .ok()
        .shows(&pp, "started: web\n");
    let v = wait_state(&pp, &sup, "web", "running");
    let second = v["pid"].as_i64().unwrap() as i32;
    assert_eq!(instances(&pp, "web"), [second]);
    kill(second, nix::sys::signal::Signal::SIGKILL);
    wait_new_pid(&pp, &sup, "web", second);
}

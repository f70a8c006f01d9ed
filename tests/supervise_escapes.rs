//! What a user who crashes, kills and floods the supervisor finds: nothing it started
//! escapes (under a descriptor limit, across a kill -9 of the supervisor, a check that
//! hangs), and its answers stay true (status before the launch decided, a shutdown
//! with nothing left, a start cut short, a restart right after a crash, idle clients).

use crate::common::*;

use std::os::unix::net::UnixStream;
use std::time::Duration;

fn supervise_daemon(pp: &Playpen, env: &[(&str, &str)]) {
    pp.run_env(&["supervise", "--daemon"], env).ok();
}

/// Everything of the playpen is gone (the supervisor too: its cwd is the playpen).
#[track_caller]
fn nothing_left(pp: &Playpen) {
    let gone = wait_until(PATIENCE, || pp.processes().is_empty());
    let left: Vec<String> = pp
        .processes()
        .into_iter()
        .map(|p| format!("{p} {:?}", cmdline(p)))
        .collect();
    assert!(
        gone,
        "processes of the playpen left: {left:#?}\n{}",
        pp.supervisor_log()
    );
}

#[test]
fn shutdown_under_a_descriptor_limit_leaves_nothing_running() {
    let names: Vec<String> = (0..40).map(|i| format!("s{i:02}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let pp = Playpen::with_ports(&refs, &[]);
    for n in &names {
        pp.sleeper_service(
            n,
            "service_restart_policy=unlimited\nservice_halt_timeout=2",
        );
    }
    // Soft and hard limit 64: there is nothing to raise; every stop path must cope.
    let mut cmd = std::process::Command::new("/bin/sh");
    cmd.arg("-c")
        .arg("ulimit -n 64 && exec \"$0\" --playpen \"$1\" supervise --daemon")
        .arg(bare_command().get_program())
        .arg(&pp.root)
        .current_dir(&pp.root);
    run_command(&mut cmd).ok();
    let all_up = wait_until(Duration::from_secs(60), || {
        names.iter().all(|n| pp.pid(n).is_some_and(alive))
    });
    assert!(all_up, "not all 40 started:\n{}", pp.supervisor_log());
    let out = pp.run_timeout(&["shutdown"], 120);
    out.no_panic();
    nothing_left(&pp);
}

#[test]
fn a_cron_run_is_adopted_by_a_new_supervisor_and_ended_by_shutdown() {
    let pp = Playpen::with_ports(&["tick"], &[]);
    // With SERVICECTL_CRON_SECONDS=1 the minute field counts seconds: a fire each
    // second. Each run notes its start and its PID, then outlives many fire times.
    pp.service(
        "tick",
        "service_type=cron\nservice_cron_time='* * * * *'\n\
         service_cron_command='echo $$ >> \"$LOCAL_VAR/tick.runs\"; exec sleep 300'\n",
    );
    let env = [("SERVICECTL_CRON_SECONDS", "1")];
    supervise_daemon(&pp, &env);
    assert!(
        wait_until(PATIENCE, || pp
            .read_or_empty("var/tick.runs")
            .lines()
            .count()
            == 1),
        "no cron run:\n{}",
        pp.supervisor_log()
    );
    let run: i32 = pp.read("var/tick.runs").trim().parse().unwrap();
    kill9(pp.supervisor_pid());
    supervise_daemon(&pp, &env);
    // The new supervisor counts the run, and starts no second one while it goes on.
    let view = pp.view("tick");
    assert_eq!(view["handlers"], 1, "the run is not adopted: {view}");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        pp.read("var/tick.runs").lines().count(),
        1,
        "a second run started while the first went on:\n{}",
        pp.supervisor_log()
    );
    assert!(alive(run));
    pp.run_timeout(&["shutdown"], 30).ok();
    assert!(
        wait_until(PATIENCE, || !alive(run)),
        "the run outlived shutdown"
    );
    nothing_left(&pp);
}

/// A service whose ping notes its PID and then hangs.
fn hanging_ping(pp: &Playpen, name: &str) {
    pp.write_exec(
        &format!("services/{name}/ping"),
        "#!/bin/sh\necho $$ > \"$LOCAL_VAR/ping.pid\"\nexec sleep 100000\n",
    );
    pp.sleeper_service(name, "service_depends_timeout=600");
}

#[track_caller]
fn ping_pid(pp: &Playpen) -> i32 {
    assert!(
        wait_until(PATIENCE, || pp
            .read_or_empty("var/ping.pid")
            .trim()
            .parse::<i32>()
            .is_ok_and(alive)),
        "the ping did not run:\n{}",
        pp.supervisor_log()
    );
    pp.read("var/ping.pid").trim().parse().unwrap()
}

#[test]
fn a_hanging_check_is_ended_by_its_service_stop_and_by_shutdown() {
    let pp = Playpen::with_ports(&["web"], &[]);
    hanging_ping(&pp, "web");
    supervise_daemon(&pp, &[]);
    let ping = ping_pid(&pp);
    pp.run_timeout(&["stop", "web"], 30).ok();
    assert!(
        wait_until(Duration::from_secs(3), || !alive(ping)),
        "the ping outlived its service's stop"
    );
    std::fs::remove_file(pp.path("var/ping.pid")).unwrap();
    // Started again (its start waits for the ping: in the background), then shutdown.
    let mut start = pp.command();
    start.args(["start", "web"]);
    let mut child = spawn_piped(&mut start);
    let ping = ping_pid(&pp);
    pp.run_timeout(&["shutdown"], 30).ok();
    assert!(
        wait_until(Duration::from_secs(3), || !alive(ping)),
        "the ping outlived shutdown"
    );
    let out = Out::from_output(
        child.wait_with_output_bounded(),
        Duration::ZERO,
        "start".into(),
    );
    out.code_is(1)
        .err_says(&["web: its start was cut short: the supervisor is shutting down"]);
    nothing_left(&pp);
}

trait WaitBounded {
    fn wait_with_output_bounded(&mut self) -> std::process::Output;
}

impl WaitBounded for std::process::Child {
    fn wait_with_output_bounded(&mut self) -> std::process::Output {
        assert!(
            wait_until(PATIENCE, || matches!(self.try_wait(), Ok(Some(_)))),
            "the command did not end"
        );
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        use std::io::Read;
        if let Some(mut o) = self.stdout.take() {
            let _ = o.read_to_end(&mut stdout);
        }
        if let Some(mut e) = self.stderr.take() {
            let _ = e.read_to_end(&mut stderr);
        }
        std::process::Output {
            status: self.wait().unwrap(),
            stdout,
            stderr,
        }
    }
}

#[test]
fn status_right_after_launch_shows_the_role_starting_not_nothing() {
    let pp = Playpen::with_ports(&["slow"], &[]);
    // Ready only after a second: status right after the launch catches it starting.
    pp.write_exec(
        "services/slow/ping",
        "#!/bin/sh\n[ -e \"$LOCAL_VAR/slow.ready\" ] || { sleep 1; touch \"$LOCAL_VAR/slow.ready\"; exit 1; }\n",
    );
    pp.sleeper_service("slow", "");
    supervise_daemon(&pp, &[]);
    let out = pp.run(&["status", "--json"]);
    out.code_is(3);
    let rows = out.json();
    let states: Vec<(String, String)> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["service"].as_str().unwrap().to_string(),
                r["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [("slow".to_string(), "starting".to_string())],
        "{out}"
    );
    pp.run(&["wait", "slow", "--timeout", "10"]).ok();
    pp.run(&["status"]).code_is(0);
    pp.run_timeout(&["shutdown"], 30).ok();
}

#[test]
fn shutdown_with_nothing_running_says_so() {
    let pp = Playpen::with_ports(&["a"], &[]);
    pp.sleeper_service("a", "");
    supervise_daemon(&pp, &[]);
    pp.run(&["wait", "a"]).ok();
    pp.run(&["stop", "a"]).ok();
    let out = pp.run_timeout(&["shutdown"], 30);
    out.ok();
    assert_eq!(
        out.stdout,
        format!(
            "supervisor of {} shut down (no service was running)\n",
            pp.root.display()
        )
    );
    nothing_left(&pp);
}

#[test]
fn a_start_cut_short_by_a_stop_says_so_and_exits_1() {
    let pp = Playpen::with_ports(&["a"], &[]);
    pp.write_exec("services/a/ping", "#!/bin/sh\nexit 1\n");
    pp.sleeper_service("a", "service_depends_timeout=600");
    pp.role_config(&format!(
        "playpen_services=\"\"\nPORT_PREFIX={}\n",
        pp.prefix()
    ));
    supervise_daemon(&pp, &[]);
    let mut start = pp.command();
    start.args(["start", "a"]);
    let mut child = spawn_piped(&mut start);
    assert!(wait_until(PATIENCE, || pp.pid("a").is_some_and(alive)));
    pp.run(&["stop", "a"]).ok();
    let out = Out::from_output(
        child.wait_with_output_bounded(),
        Duration::ZERO,
        "start".into(),
    );
    out.code_is(1)
        .err_says(&["a: its start was cut short: it was stopped before it was ready"]);
    pp.run_timeout(&["shutdown"], 30).ok();
}

#[test]
fn restart_right_after_a_crash_queues_behind_the_restart_under_way() {
    let pp = Playpen::with_ports(&["a"], &[]);
    // Each run lasts over a second, so each crash is restarted at once; that restart
    // is busy through its 1 s grace when `restart a` comes.
    pp.sleeper_service(
        "a",
        "service_restart_policy=unlimited\nservice_start_grace=1",
    );
    supervise_daemon(&pp, &[]);
    pp.run(&["wait", "a"]).ok();
    for round in 0..3 {
        std::thread::sleep(Duration::from_millis(1100));
        let old = pp.running_pid("a");
        kill9(old);
        let out = pp.run_timeout(&["restart", "a"], 30);
        assert!(
            out.code == 0,
            "round {round}: restart right after a crash failed:\n{out}\n{}",
            pp.supervisor_log()
        );
        let new = pp.running_pid("a");
        assert_ne!(new, old);
    }
    pp.run_timeout(&["shutdown"], 30).ok();
}

/// A crash's restart first stops what the dead main process left, children in a
/// session or process group of their own included; the other services' main
/// processes, which its census takes for theirs without reading them, run on.
#[test]
fn a_crash_restart_stops_what_the_dead_one_left_and_nothing_of_its_neighbours() {
    let pp = Playpen::with_ports(&["web", "other"], &[]);
    pp.install_escaping_spawner();
    pp.service(
        "web",
        "service_program=spawner\nservice_restart_policy=unlimited\nservice_start_grace=0.05\nservice_halt_timeout=3\n",
    );
    pp.sleeper_service("other", "service_restart_policy=unlimited");
    supervise_daemon(&pp, &[]);
    pp.run(&["wait", "web", "other"]).ok();
    let read = |f: &str| -> i32 {
        let pid = String::from_utf8(pp.wait_file(f, 10)).unwrap();
        std::fs::remove_file(pp.path(f)).unwrap();
        pid.trim().parse().unwrap()
    };
    let neighbour = pp.running_pid("other");
    for round in 0..2 {
        let main = pp.running_pid("web");
        let (in_session, in_group) = (read("var/session-child"), read("var/group-child"));
        assert!(alive(in_session) && alive(in_group));
        kill9(main);
        let restarted = wait_until(PATIENCE, || {
            pp.pid("web").is_some_and(|p| p != main && alive(p))
        });
        assert!(
            restarted,
            "round {round}: web was not restarted\n{}",
            pp.supervisor_log()
        );
        assert!(
            !alive(in_session) && !alive(in_group),
            "round {round}: the dead web's children run beside the new one\n{}",
            pp.supervisor_log()
        );
        assert_eq!(pp.running_pid("other"), neighbour);
        assert!(alive(neighbour));
    }
    pp.run_timeout(&["shutdown"], 30).ok();
    nothing_left(&pp);
}

#[test]
fn idle_connections_never_lock_out_shutdown() {
    let pp = Playpen::with_ports(&["a"], &[]);
    pp.sleeper_service("a", "");
    supervise_daemon(&pp, &[]);
    pp.run(&["wait", "a"]).ok();
    let socket = pp.path("var/run/servicectl.sock");
    let idle: Vec<UnixStream> = (0..300)
        .filter_map(|_| UnixStream::connect(&socket).ok())
        .collect();
    assert!(idle.len() >= 256, "only {} connections", idle.len());
    let out = pp.run_timeout(&["shutdown"], 20);
    out.ok();
    nothing_left(&pp);
    drop(idle);
}

/// Soft and hard "Max open files" of a process.
fn open_files_limit(pid: i32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .to_string();
    let fields: Vec<&str> = line["Max open files".len()..].split_whitespace().collect();
    (fields[0].to_string(), fields[1].to_string())
}

#[test]
fn the_supervisor_raises_its_descriptor_limit_and_services_get_the_callers() {
    let pp = Playpen::with_ports(&["a"], &[]);
    pp.sleeper_service("a", "");
    let mut cmd = std::process::Command::new("/bin/sh");
    cmd.arg("-c")
        .arg("ulimit -S -n 200 && exec \"$0\" --playpen \"$1\" supervise --daemon")
        .arg(bare_command().get_program())
        .arg(&pp.root)
        .current_dir(&pp.root);
    run_command(&mut cmd).ok();
    pp.run(&["wait", "a"]).ok();
    let (soft, hard) = open_files_limit(pp.supervisor_pid());
    assert_eq!(soft, hard, "the supervisor did not raise its soft limit");
    assert_ne!(
        hard, "200",
        "the hard limit must be above 200 for this test"
    );
    let (service_soft, service_hard) = open_files_limit(pp.running_pid("a"));
    assert_eq!(
        (service_soft.as_str(), service_hard.as_str()),
        ("200", hard.as_str())
    );
    pp.run_timeout(&["shutdown"], 30).ok();
}

#[test]
fn a_role_listing_a_service_not_installed_starts_the_others_and_names_it() {
    let pp = Playpen::with_ports(&["a", "ghost"], &[]);
    pp.sleeper_service("a", "");
    supervise_daemon(&pp, &[]);
    pp.run(&["wait", "a"]).ok();
    let out = pp.run(&["status", "--json"]);
    let rows = out.json();
    let ghost = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["service"] == "ghost")
        .unwrap_or_else(|| panic!("ghost is not named:\n{out}"));
    assert_eq!(ghost["state"], "missing");
    out.code_is(4);
    assert_eq!(
        ghost["note"],
        "not installed: unknown service (no ext/services/ghost-VERSION/ and no services/ghost/config)"
    );
    assert_eq!(pp.view("a")["state"], "running");
    pp.run_timeout(&["shutdown"], 30).ok();
}

#[test]
fn a_package_installed_under_a_supervisor_is_brought_up_and_a_removed_one_stopped() {
    let pp = Playpen::with_services(&["echo"]);
    supervise_daemon(&pp, &[]);
    // Not installed yet: named, status exits 4.
    let out = pp.run(&["status", "--json", "echo"]);
    out.code_is(4);
    assert_eq!(out.json()[0]["state"], "missing");
    let port = pp.port(7);
    pp.install(&sample("echo")).ok();
    // No `start`: the supervisor follows the package manager.
    let answered = wait_until(Duration::from_secs(5), || {
        use std::io::{Read, Write};
        let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
            return false;
        };
        let _ = c.set_read_timeout(Some(Duration::from_secs(1)));
        let _ = c.write_all(b"ping\n");
        let mut buf = [0u8; 5];
        c.read_exact(&mut buf).is_ok() && &buf == b"ping\n"
    });
    assert!(
        answered,
        "echo does not answer on {port}:\n{}",
        pp.supervisor_log()
    );
    pp.run(&["wait", "echo"]).ok();
    assert_eq!(pp.view("echo")["state"], "running");
    let pid = pp.running_pid("echo");
    pp.run(&["remove-service", "echo"]).ok();
    assert!(wait_until(PATIENCE, || !alive(pid)), "echo still runs");
    // Stopped on purpose by the package manager's hook: not restarted.
    let stopped = wait_until(PATIENCE, || pp.view("echo")["state"] == "stopped");
    assert!(stopped, "{}\n{}", pp.view("echo"), pp.supervisor_log());
    std::thread::sleep(Duration::from_millis(500));
    assert!(pp.running_as("echo").is_empty(), "echo was started again");
    pp.run_timeout(&["shutdown"], 30).ok();
    nothing_left(&pp);
}

#[test]
fn a_supervisor_started_right_after_a_kill_9_of_the_last_one_takes_over() {
    let pp = Playpen::with_ports(&["a", "b"], &[]);
    pp.sleeper_service("a", "");
    pp.sleeper_service("b", "");
    supervise_daemon(&pp, &[]);
    pp.run(&["wait"]).ok();
    let (a, b) = (pp.running_pid("a"), pp.running_pid("b"));
    for round in 0..3 {
        // No wait for the killed process to exit: its SIGKILL may still be pending.
        let old = pp.supervisor_pid();
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(old), nix::sys::signal::SIGKILL);
        let out = pp.run(&["supervise", "--daemon"]);
        assert_eq!(out.code, 0, "round {round}: refused:\n{out}");
        assert_ne!(pp.supervisor_pid(), old);
    }
    pp.run(&["wait"]).ok();
    // The services were adopted, not started twice.
    assert_eq!((pp.running_pid("a"), pp.running_pid("b")), (a, b));
    pp.run_timeout(&["shutdown"], 30).ok();
    nothing_left(&pp);
}

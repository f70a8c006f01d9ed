//! Restart on change (service_watch, SPEC §12.2) under a real supervisor, with real
//! files and inotify: a burst of writes is one restart, dependants follow in order, an
//! unmatched file or var/ restarts nothing, new folders are picked up, a folder that
//! disappears and comes back is watched again, and an idle supervisor does not wake.

use crate::common::*;
use std::time::Duration;

/// A service whose program notes each start (a line with the time) in var/NAME.starts.
fn counting(pp: &Playpen, name: &str, config: &str) {
    pp.write_exec(
        &format!("bin/{name}"),
        &format!("#!/bin/sh\ndate +%s.%N >> \"$LOCAL_VAR/{name}.starts\"\nexec sleep 100000\n"),
    );
    pp.service(
        name,
        &format!("service_program={name}\nservice_halt_timeout=5\n{config}\n"),
    );
}

fn starts(pp: &Playpen, name: &str) -> Vec<f64> {
    pp.read_or_empty(&format!("var/{name}.starts"))
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

#[track_caller]
fn wait_starts(pp: &Playpen, name: &str, n: usize) {
    assert!(
        wait_until(PATIENCE, || starts(pp, name).len() >= n),
        "{name} was not started {n} times: {:?}\n{}",
        starts(pp, name),
        pp.supervisor_log()
    );
    assert_eq!(starts(pp, name).len(), n, "{name}: {}", pp.supervisor_log());
}

/// Long enough for a restart that should not happen to have happened.
fn quiet(pp: &Playpen) {
    std::thread::sleep(Duration::from_millis(1200));
    let _ = pp;
}

/// Voluntary context switches of the supervisor's event-loop thread.
fn wakeups(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap()
}

#[test]
fn a_change_restarts_once_then_its_dependants_and_new_folders_are_watched() {
    let pp = Playpen::with_ports(&["app", "web", "other"], &[]);
    pp.write("src/pkg/a.py", "print(1)\n");
    counting(
        &pp,
        "app",
        "service_watch=\"src/**/*.py conf/app.toml\"\nservice_watch_delay=0.3",
    );
    counting(&pp, "web", "service_depends=app");
    counting(&pp, "other", "");
    pp.write("conf/app.toml", "x = 1\n");
    pp.run(&["supervise", "--daemon"]).ok();
    pp.run(&["wait", "--timeout", "30"]).ok();
    let supervisor = pp.supervisor_pid();

    // Idle: nothing changes, the supervisor's loop does not wake.
    let before = wakeups(supervisor);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(wakeups(supervisor), before, "the idle supervisor woke up");

    // A burst of ten writes within the delay: one restart, then the dependant.
    for i in 0..10 {
        pp.write("src/pkg/a.py", &format!("print({i})\n"));
        std::thread::sleep(Duration::from_millis(20));
    }
    wait_starts(&pp, "app", 2);
    wait_starts(&pp, "web", 2);
    quiet(&pp);
    assert_eq!(starts(&pp, "app").len(), 2, "a burst is one restart");
    assert_eq!(starts(&pp, "web").len(), 2);
    assert_eq!(
        starts(&pp, "other").len(),
        1,
        "what does not depend on it stays"
    );
    assert!(
        starts(&pp, "web")[1] >= starts(&pp, "app")[1],
        "the dependant restarted before what it depends on"
    );
    assert_eq!(pp.view("app")["note"], "restarted: src/pkg/a.py changed");
    assert_eq!(
        pp.view("web")["note"],
        "restarted: app restarted (src/pkg/a.py changed)"
    );

    // Files no pattern names, and var/, restart nothing.
    pp.write("src/pkg/a.txt", "no\n");
    pp.write("var/b.py", "no\n");
    pp.write("conf/other.toml", "no\n");
    quiet(&pp);
    assert_eq!(starts(&pp, "app").len(), 2, "{}", pp.supervisor_log());

    // A new folder (two deep) is picked up, and a file written in it is a change.
    pp.write("src/new/deeper/b.py", "print(2)\n");
    wait_starts(&pp, "app", 3);
    std::thread::sleep(Duration::from_millis(100));
    pp.write("src/new/deeper/b.py", "print(3)\n");
    wait_starts(&pp, "app", 4);

    // A watched folder removed (its file with it: a change) and made again.
    std::fs::remove_dir_all(pp.path("src/pkg")).unwrap();
    wait_starts(&pp, "app", 5);
    pp.write("src/pkg/c.py", "print(4)\n");
    wait_starts(&pp, "app", 6);
    assert_eq!(pp.view("app")["note"], "restarted: src/pkg/c.py changed");

    // A file named by its path.
    pp.write("conf/app.toml", "x = 2\n");
    wait_starts(&pp, "app", 7);

    // Stopped: a change starts nothing.
    pp.run(&["stop", "app"]).ok();
    pp.write("src/pkg/c.py", "print(5)\n");
    quiet(&pp);
    assert_eq!(starts(&pp, "app").len(), 7);
    assert_eq!(pp.view("app")["state"], "stopped");
    pp.run_timeout(&["shutdown"], 30).ok();
}

#[test]
fn bad_watch_patterns_are_refused_by_check_and_start() {
    let pp = Playpen::with_ports(&["w"], &[]);
    pp.write("src/a.py", "");
    let rule = "service_watch=\"{P}\" (set in {ROOT}/services/w/config): must be globs relative to the playpen root (such as `src/**/*.py`), outside var/: `{P}`";
    let fix = " — fix the setting in the service's config";
    for (pattern, problem) in [
        (
            "var/**",
            format!("{rule} is under var/, which is never watched (servicectl writes there){fix}"),
        ),
        ("/etc/*.conf", format!("{rule} is absolute{fix}")),
        (
            "src/[a.py",
            format!("{rule} is not a glob: unclosed character class; missing ']'{fix}"),
        ),
        (
            "src/*.rs",
            "service_watch pattern `{P}` (set in {ROOT}/services/w/config) matches no file in {ROOT} — patterns are relative to the playpen root, and `*` stays in one folder (`src/**/*.py` crosses folders); fix the pattern or create the file".to_string(),
        ),
    ] {
        let problem = problem.replace("{P}", pattern);
        pp.sleeper_service("w", &format!("service_watch=\"{pattern}\""));
        let check = pp.run(&["check", "w"]);
        assert_golden(
            &pp,
            &format!("check {pattern}"),
            &check.code_is(1).stdout,
            &format!("w: problem: {problem}\n1 checked, 1 with problems\n"),
        );
        let start = pp.run(&["start", "w"]);
        assert_golden(
            &pp,
            &format!("start {pattern}"),
            &start.fails().stderr,
            &format!("servicectl: w: {problem}\n"),
        );
    }
    pp.sleeper_service("w", "service_watch=\"src/*.py\"\nservice_watch_delay=soon");
    assert_golden(
        &pp,
        "a bad delay",
        &pp.run(&["check", "w"]).code_is(1).stdout,
        "w: problem: service_watch_delay=\"soon\" (set in {ROOT}/services/w/config): must be a number of seconds, 0 or more (fractions allowed, such as 2.5) — fix the setting in the service's config\n1 checked, 1 with problems\n",
    );
}

//! Regressions of the review fixes (commit 47d2381): each test pins one behaviour that
//! the previous commit got wrong, with the real binary, temporary playpens and real
//! processes.

use crate::common::*;

/// The session of a process (field 6 of /proc/PID/stat).
fn session_of(pid: i32) -> String {
    stat_fields(pid).unwrap_or_else(|| panic!("no /proc/{pid}/stat"))[3].clone()
}

/// Item 1: A running service whose pidfile was deleted (its start record intact) is still
/// running: status says so with a note, start puts the pidfile back instead of
/// starting a second copy, stop stops it.
#[test]
fn a_deleted_pidfile_does_not_double_a_running_service() {
    let pp = Playpen::new();
    pp.daemon("web", "");
    pp.start(&["web"]);
    let pid = pp.running_pid("web");
    assert!(pp.exists("var/run/web.start"));
    std::fs::remove_file(pp.pidfile("web")).unwrap();

    let status = pp.run(&["status", "web"]);
    status.ok().says(&["running", &pid.to_string(), "pidfile"]);
    let json = pp.run(&["status", "web", "--json"]).ok().json();
    assert_eq!(json[0]["state"], "running", "{json}");
    assert_eq!(json[0]["pid"], pid, "{json}");
    assert!(
        json[0]["note"]
            .as_str()
            .is_some_and(|n| n.contains("pidfile") && n.contains("missing")),
        "a note about the missing pidfile: {json}"
    );

    pp.run(&["start", "web"])
        .ok()
        .says(&["web: already running", &pid.to_string()]);
    assert_eq!(
        pp.running_as("web"),
        [pid],
        "no second process; output files: {}",
        pp.outputs()
    );
    assert_eq!(pp.pid("web"), Some(pid), "the pidfile was written back");

    pp.run(&["stop", "web"]).ok().says(&["web: stopped"]);
    assert_dies(pid, "web");
    assert!(!pp.pidfile("web").exists());
    assert!(pp.running_as("web").is_empty());
}

/// Item 2: A program that was to write its own pidfile and never does: the start fails
/// after service_pidfile_timeout and leaves no process, pidfile or start record.
#[test]
fn a_start_that_times_out_on_its_own_pidfile_leaves_no_process() {
    let pp = Playpen::new();
    pp.daemon(
        "web",
        "service_makes_own_pidfile=1\nservice_pidfile_timeout=1\n",
    );
    let out = pp.run(&["start", "web"]);
    out.fails()
        .says(&["servicectl: web:", &pp.pidfile("web").display().to_string()]);
    assert!(
        wait_until(PATIENCE, || pp.processes().is_empty()),
        "processes of the failed start remain: {:?} {:?}",
        pp.processes(),
        pp.processes()
            .iter()
            .map(|&p| cmdline(p))
            .collect::<Vec<_>>()
    );
    assert!(pp.running_as("web").is_empty());
    assert!(!pp.pidfile("web").exists());
    assert!(!pp.exists("var/run/web.start"));
    let status = pp.run(&["status", "web"]);
    status.code_is(3).says(&["stopped"]);
}

/// Playpen `tag` (PLAYPEN_TAG `tag`, or untagged when empty) running service `web` as
/// `sleep 1000` from PATH: every playpen runs the very same executable.
fn sleep_playpen(tag: &str) -> Playpen {
    let pp = Playpen::new();
    if tag.is_empty() {
        pp.role_config("playpen_services=web\n");
    } else {
        pp.role_config(&format!("playpen_services=web\nPLAYPEN_TAG={tag}\n"));
    }
    pp.service("web", "service_program=sleep\nservice_flags=1000\n");
    pp.start(&["web"]);
    pp
}

/// Point playpen `a`'s pidfile of `web` at `b`'s process; a's status must call it
/// stale and a's stop must leave it alone.
fn foreign_pid_is_not_ours(a: &Playpen, b: &Playpen) {
    let mine = a.running_pid("web");
    let theirs = b.running_pid("web");
    assert_eq!(
        std::fs::read_link(format!("/proc/{mine}/exe")).unwrap(),
        std::fs::read_link(format!("/proc/{theirs}/exe")).unwrap(),
        "both run the same program"
    );
    write_file(&a.pidfile("web"), format!("{theirs}\n"), None);

    let json = a.run(&["status", "web", "--json"]).json();
    assert_eq!(
        json[0]["state"], "stale",
        "PID {theirs} belongs to another playpen: {json}"
    );
    a.run(&["status", "web"]).code_is(3);

    a.run(&["stop", "web"]).ok();
    // stop returns once what it signalled has exited.
    assert!(alive(theirs), "a's stop killed b's process {theirs}");
    b.run(&["status", "web"]).ok().says(&["running"]);
    assert_eq!(b.running_pid("web"), theirs);
}

/// Item 3: A pidfile rewritten to the PID of another playpen's process running the same
/// program (tagged run names `web-a`, `web-b`) is not taken for the service.
#[test]
fn another_playpens_process_with_the_same_program_is_not_ours() {
    let a = sleep_playpen("a");
    let b = sleep_playpen("b");
    assert_eq!(cmdline(b.running_pid("web"))[0], "web-b");
    foreign_pid_is_not_ours(&a, &b);
}

/// Item 3': The same with untagged playpens: the other process has the very same title
/// (`web 1000`), so only its environment (PLAYPEN_ROOT) tells it apart.
#[test]
fn another_playpens_process_with_the_same_untagged_run_name_is_not_ours() {
    let a = sleep_playpen("");
    let b = sleep_playpen("");
    assert_eq!(cmdline(b.running_pid("web"))[0], "web");
    foreign_pid_is_not_ours(&a, &b);
}

/// Item 4: Two services of one `start` sharing a run name but running different programs
/// are refused before anything starts; with the same program both start.
#[test]
fn a_run_name_shared_by_different_programs_is_caught_before_start() {
    let pp = Playpen::new();
    let sleep = pp.install_sleep("bin/daemon");
    let other = pp.install_sleep("bin/other-daemon");
    pp.service(
        "ra",
        "service_program=daemon\nservice_flags=1000\nservice_run_name=shared\n",
    );
    pp.service(
        "rb",
        "service_program=other-daemon\nservice_flags=1000\nservice_run_name=shared\n",
    );
    let out = pp.run(&["start", "ra", "rb"]);
    out.fails().says(&[
        "ra",
        "rb",
        "\"shared\"",
        &sleep.display().to_string(),
        &other.display().to_string(),
    ]);
    assert!(
        pp.processes().is_empty(),
        "nothing started: {:?}",
        pp.processes()
    );
    assert!(pp.running_as("shared").is_empty());
    assert!(pp.pid("ra").is_none() && pp.pid("rb").is_none());
    assert!(!pp.exists("var/linkfarm/shared"), "no symlink made");

    pp.service(
        "rb",
        "service_program=daemon\nservice_flags=1000\nservice_run_name=shared\n",
    );
    pp.start(&["ra", "rb"]);
    let (ra, rb) = (pp.running_pid("ra"), pp.running_pid("rb"));
    assert_ne!(ra, rb);
    let mut both = vec![ra, rb];
    both.sort();
    assert_eq!(pp.running_as("shared"), both);
    assert_eq!(
        std::fs::read_link(pp.path("var/linkfarm/shared")).unwrap(),
        sleep
    );
}

/// Item 5: service_no_pidfile=1 with a service_start script needs a service_stop script:
/// without one, start is refused by validation and check reports it.
#[test]
fn no_pidfile_with_a_start_script_needs_a_stop_script() {
    let pp = Playpen::new();
    pp.write_exec(
        "bin/nopid-start",
        "#!/bin/sh\nsleep 1000 >/dev/null 2>&1 &\necho $! > \"$PLAYPEN_ROOT/nopid.pid\"\n",
    );
    pp.write_exec(
        "bin/nopid-ping",
        "#!/bin/sh\ntest -d \"/proc/$(cat \"$PLAYPEN_ROOT/nopid.pid\")\"\n",
    );
    let config = pp.service(
        "web",
        "service_start=nopid-start\nservice_no_pidfile=1\nservice_ping=nopid-ping\n",
    );
    let config = config.display().to_string();
    pp.run(&["start", "web"]).fails().says(&[
        "servicectl: web:",
        "service_no_pidfile",
        "service_stop",
    ]);
    assert!(!pp.exists("nopid.pid"), "the start script did not run");
    assert!(
        pp.processes().is_empty(),
        "nothing started: {:?}",
        pp.processes()
    );
    assert!(!pp.exists("var/run/web.start"));
    pp.run(&["check", "web"])
        .fails()
        .says(&["web", "service_stop", &config]);

    // With a service_stop script it is accepted, and stoppable.
    pp.write_exec(
        "bin/nopid-stop",
        "#!/bin/sh\nkill \"$(cat \"$PLAYPEN_ROOT/nopid.pid\")\"\n",
    );
    pp.service(
        "web",
        "service_start=nopid-start\nservice_no_pidfile=1\nservice_ping=nopid-ping\nservice_stop=nopid-stop\n",
    );
    pp.run(&["check", "web"]).ok();
    pp.start(&["web"]);
    let pid: i32 = pp.read("nopid.pid").trim().parse().unwrap();
    assert!(alive(pid));
    pp.run(&["stop", "web"]).ok().says(&["web: stopped"]);
    assert_dies(pid, "the script's daemon");
}

/// Item 6: A failing service_pre_stop does not prevent the stop; it is reported as a
/// warning.
#[test]
fn a_failing_pre_stop_hook_does_not_prevent_stop() {
    let pp = Playpen::new();
    pp.daemon("web", "service_pre_stop='echo pre-stop-fails; false'\n");
    pp.start(&["web"]);
    let pid = pp.running_pid("web");
    let out = pp.run(&["stop", "web"]);
    out.ok().says(&[
        "web: stopped",
        "(but pre-stop",
        "status 1",
        "pre-stop-fails",
    ]);
    assert_dies(pid, "web");
    assert!(!pp.pidfile("web").exists());
    assert!(!pp.exists("var/run/web.start"));
    pp.run(&["status", "web"]).code_is(3);
}

/// Item 7: pre-upgrade where one of two services fails to stop still records the one that
/// stopped (also across a second pre-upgrade), and post-upgrade starts it again.
#[test]
fn pre_upgrade_records_what_it_stopped_when_another_stop_fails() {
    let pp = Playpen::new();
    pp.install_sleep("bin/daemon");
    pp.write("etc/roles/dev/config", "playpen_services=\"good stuck\"\n");
    pp.write("ext/services/duo-1.0.services", "good\nstuck\n");
    pp.write(
        "ext/services/good-1.0/config",
        "service_program=daemon\nservice_flags=1000\nservice_run_name=good\n",
    );
    pp.write(
        "ext/services/stuck-1.0/config",
        "service_program=daemon\nservice_flags=1000\nservice_run_name=stuck\nservice_stop=stuck-stop\n",
    );
    // Refuses to stop while $PLAYPEN_ROOT/stuck exists.
    pp.write_exec(
        "bin/stuck-stop",
        "#!/bin/sh\nif [ -e \"$PLAYPEN_ROOT/stuck\" ]; then echo 'cannot stop now' >&2; exit 1; fi\n\
         kill \"$(cat \"$SERVICE_PIDFILE\")\"\n",
    );
    pp.write("stuck", "");
    pp.start(&["good", "stuck"]);
    let good = pp.running_pid("good");
    let stuck = pp.running_pid("stuck");
    let record = "var/servicectl/upgrade/duo.stopped";

    pp.run(&["pre-upgrade", "duo"])
        .fails()
        .says(&["stuck", "cannot stop now"]);
    assert_dies(good, "good");
    assert_eq!(pp.pid("good"), None);
    assert_eq!(pp.running_pid("stuck"), stuck, "stuck still runs");
    assert_eq!(lines(&pp.path(record)), ["good"], "{record}");

    // Again: good is stopped already, stuck still fails; the record is kept.
    pp.run(&["pre-upgrade", "duo"]).fails().says(&["stuck"]);
    assert_eq!(lines(&pp.path(record)), ["good"], "{record} after a retry");

    std::fs::remove_file(pp.path("stuck")).unwrap();
    let json = pp.run(&["--json", "post-upgrade", "duo"]).ok().json();
    assert!(
        json["started"]
            .as_array()
            .is_some_and(|s| s.iter().any(|n| n == "good")),
        "post-upgrade started good: {json}"
    );
    let again = pp.running_pid("good");
    assert_ne!(again, good);
    assert_eq!(pp.running_as("good"), [again]);
    assert!(
        json["restarted"]
            .as_array()
            .is_some_and(|s| s.iter().any(|n| n == "stuck")),
        "post-upgrade restarted stuck, which ran through the upgrade: {json}"
    );
    assert_dies(stuck, "the old stuck");
    assert!(!pp.exists(record), "the record was used up");
}

/// Item 8: A service_start script's background daemon writes to the service's output file
/// (not a scratch file) and runs in a session of its own.
#[test]
fn a_start_script_daemon_writes_to_the_output_file_in_its_own_session() {
    let pp = Playpen::new();
    // The daemon speaks only once servicectl has returned (when the test says `go`).
    pp.write_exec(
        "bin/bg-start",
        "#!/bin/sh\n\
         echo script-says-hi\n\
         (while [ ! -e \"$PLAYPEN_ROOT/go\" ]; do sleep 0.05; done; echo daemon-says-hi; exec sleep 1000) &\n\
         echo $! > \"$SERVICE_PIDFILE\"\n",
    );
    pp.service("bg", "service_start=bg-start\n");
    pp.start(&["bg"]);
    let pid = pp.running_pid("bg");
    assert!(
        pp.output("bg").contains("script-says-hi"),
        "{}",
        pp.outputs()
    );
    pp.write("go", "");
    assert!(
        wait_until(PATIENCE, || pp.output("bg").contains("daemon-says-hi")),
        "the daemon's line is not in var/run/bg.output:\n{}",
        pp.output("bg")
    );
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/fd/1")).unwrap(),
        pp.path("var/run/bg.output")
    );
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/fd/2")).unwrap(),
        pp.path("var/run/bg.output")
    );
    let mine = session_of(std::process::id() as i32);
    assert_ne!(
        session_of(pid),
        mine,
        "the daemon is not in the test's (and servicectl's) session"
    );
    pp.run(&["stop", "bg"]).ok();
    assert_dies(pid, "the daemon");
}

/// Item 9: Concurrent new-service calls do not lose each other's registry lines.
#[test]
fn concurrent_new_service_calls_keep_every_registration() {
    let pp = Playpen::new();
    pp.install_sleep("bin/daemon");
    let names: Vec<String> = (0..20).map(|i| format!("svc{i:02}")).collect();
    for name in &names {
        pp.service(name, "service_program=daemon\nservice_flags=1000\n");
    }
    let children: Vec<_> = names
        .iter()
        .map(|n| spawn_piped(pp.command().args(["new-service", n])))
        .collect();
    for (child, name) in children.into_iter().zip(&names) {
        let output = child.wait_with_output().expect("wait for servicectl");
        Out::from_output(output, Default::default(), format!("new-service {name}")).ok();
    }
    let registry = pp.registry();
    assert_eq!(registry.lines().count(), 20, "{registry}");
    for name in &names {
        assert!(pp.registry_line(name).is_some(), "{name} in:\n{registry}");
    }
}

/// Item 10: A running service whose config no longer evaluates is stopped from its pidfile,
/// with a warning, and without the project's hooks.
#[test]
fn stopping_with_a_broken_config_warns_and_runs_no_hooks() {
    let pp = Playpen::new();
    pp.daemon("brk", "");
    pp.write_exec(
        "services/brk/pre-stop",
        "#!/bin/sh\ntouch \"$PLAYPEN_ROOT/pre-stop-ran\"\n",
    );
    pp.start(&["brk"]);
    let pid = pp.running_pid("brk");
    // Break the config while it runs.
    pp.service(
        "brk",
        "service_program=daemon\nservice_flags=1000\nif then\n",
    );
    let out = pp.run(&["stop", "brk"]);
    out.ok()
        .says(&["brk: stopped", "without its configuration", "syntax error"]);
    assert!(!out.all().contains("brk: brk:"), "name twice:\n{out}");
    assert_dies(pid, "brk");
    assert!(!pp.pidfile("brk").exists());
    assert!(
        !pp.exists("pre-stop-ran"),
        "the pre-stop hook ran without a configuration:\n{out}"
    );
}

/// Item 11: remove-service keeps the lock file (another servicectl may hold it), and a
/// second remove-service still finds nothing to remove.
#[test]
fn remove_service_keeps_the_lock_file() {
    let pp = Playpen::new();
    pp.daemon("web", "");
    pp.run(&["new-service", "web"]).ok();
    pp.start(&["web"]);
    let pid = pp.running_pid("web");
    assert!(pp.exists("var/run/web.lock"));
    pp.run(&["remove-service", "web"])
        .ok()
        .says(&["web: stopped", "unregistered"]);
    assert_dies(pid, "web");
    assert!(pp.exists("var/run/web.lock"), "the lock file stays");
    assert_eq!(pp.registry_line("web"), None);
    pp.run(&["remove-service", "web"])
        .ok()
        .says(&["nothing to remove"]);
    assert!(pp.exists("var/run/web.lock"));
}

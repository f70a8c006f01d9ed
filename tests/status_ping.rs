//! status, ping, print-config and check (§7): the table and JSON, LSB exit codes,
//! stale pidfiles (dead PID, reused PID, another playpen's process of the same program)
//! and their cleanup, a running service whose pidfile was deleted, status without
//! evaluating any config, the ping order, origins in print-config, and check starting
//! nothing.

use crate::common::*;

/// A daemon that counts as started after 0.05 s.
fn daemon(pp: &Playpen, name: &str, extra: &str) {
    pp.daemon(name, &format!("service_start_grace=0.05\n{extra}"));
}

fn state(pp: &Playpen, name: &str) -> (String, serde_json::Value) {
    let json = pp.run(&["status", name, "--json"]).no_panic().json();
    (
        json[0]["state"].as_str().unwrap().to_string(),
        json[0].clone(),
    )
}

#[test]
fn status_table_json_and_lsb_exit_codes() {
    let pp = Playpen::new();
    daemon(&pp, "a", "");
    daemon(&pp, "b", "");
    pp.role_config("playpen_services=\"a b\"\n");
    pp.start(&["a"]);
    let a = pp.running_pid("a");

    let out = pp.run(&["status"]);
    out.no_panic();
    assert_eq!(out.code, 3, "b is not running:\n{out}");
    let rows: Vec<Vec<&str>> = out
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0][..5],
        ["SERVICE", "STATE", "PID", "UPTIME", "PORTS"],
        "{out}"
    );
    assert_eq!(rows[1][..3], ["a", "running", &a.to_string()], "{out}");
    assert_eq!(rows[2][..3], ["b", "stopped", "-"], "{out}");

    assert_eq!(pp.run(&["status", "a"]).code, 0);
    let json = pp.run(&["status", "--json"]).json();
    assert_eq!(json[0]["service"], "a");
    assert_eq!(json[0]["state"], "running");
    assert_eq!(json[0]["pid"], a);
    assert_eq!(json[1]["service"], "b");
    assert_eq!(json[1]["state"], "stopped");
    assert!(json[1]["pid"].is_null());

    let out = pp.run(&["status", "a", "nosuch"]);
    out.no_panic().shows(&pp, "servicectl: nosuch: unknown service (no ext/services/nosuch-VERSION/ and no services/nosuch/config) — known services: a, b\n");
    assert_eq!(out.code, 4, "unknown service:\n{out}");

    pp.start(&["b"]);
    pp.run(&["status"]).ok();
}

#[test]
fn a_pidfile_with_a_dead_pid_is_stale_and_start_cleans_it_up() {
    let pp = Playpen::new();
    daemon(&pp, "web", "");
    let dead = dead_pid();
    pp.write("var/run/web.pid", &format!("{dead}\n"));
    let out = pp.run(&["status", "web"]);
    assert_eq!(out.code, 3, "{out}");
    out.shows(&pp, "SERVICE STATE PID UPTIME PORTS NOTE\nweb stale {PID} - - PID {PID} in {ROOT}/var/run/web.pid is not running; `servicectl start web` cleans it up\n");
    assert_eq!(state(&pp, "web").0, "stale");
    // ping (status fallback) fails too.
    pp.run(&["ping", "web"]).fails();

    pp.start(&["web"]);
    let pid = pp.running_pid("web");
    assert_ne!(pid, dead);
    assert_eq!(state(&pp, "web").0, "running");
}

#[test]
fn a_reused_pid_is_stale_not_running_and_is_never_signalled() {
    let pp = Playpen::new();
    daemon(&pp, "web", "");
    pp.start(&["web"]);
    let old = pp.running_pid("web");
    let record_text = pp.read("var/run/web.start");
    // The service dies behind servicectl's back, and its PID goes to someone else.
    kill(old, nix::sys::signal::Signal::SIGKILL);
    assert_dies(old, "web");
    let bystander = Bystander::sleep();
    let other = bystander.pid();
    let fake_reuse = |pp: &Playpen| {
        let mut record: serde_json::Value = serde_json::from_str(&record_text).unwrap();
        record["pid"] = other.into();
        pp.write("var/run/web.start", &record.to_string());
        pp.write("var/run/web.pid", &format!("{other}\n"));
    };
    fake_reuse(&pp);

    let out = pp.run(&["status", "web"]);
    assert_eq!(out.code, 3, "{out}");
    out.shows(&pp, "SERVICE STATE PID UPTIME PORTS NOTE\nweb stale {PID} - - PID {PID} now belongs to another process (/usr/bin/sleep); the service died and its PID was reused; `servicectl start web` cleans it up\n");
    assert!(!out.stdout.contains("running"), "{out}");
    pp.run(&["ping", "web"]).fails();

    // stop leaves the stranger alone and clears the stale files.
    pp.run(&["stop", "web"]).ok();
    assert!(
        alive(other),
        "stop must not signal a process that is not the service"
    );
    assert!(!pp.pidfile("web").exists());

    // start cleans a stale pidfile up and starts a fresh process.
    fake_reuse(&pp);
    pp.start(&["web"]).shows(&pp, "web: started (pid {PID})\n");
    let new = pp.running_pid("web");
    assert_ne!(new, other);
    assert!(
        alive(other),
        "start must not signal a process that is not the service"
    );
    assert_eq!(state(&pp, "web").0, "running");

    // Only the pidfile edited (the record keeps the real, dead PID): also stale.
    pp.run(&["stop", "web"]).ok();
    pp.start(&["web"]);
    let pid = pp.running_pid("web");
    kill(pid, nix::sys::signal::Signal::SIGKILL);
    assert_dies(pid, "web");
    pp.write("var/run/web.pid", &format!("{other}\n"));
    let (state_now, json) = state(&pp, "web");
    assert_eq!(state_now, "stale", "{json}");
    assert!(alive(other));
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

/// A pidfile rewritten to the PID of another playpen's process running the same
/// program (tagged run names `web-a`, `web-b`) is not taken for the service.
#[test]
fn another_playpens_process_with_the_same_program_is_not_ours() {
    let a = sleep_playpen("a");
    let b = sleep_playpen("b");
    assert_eq!(cmdline(b.running_pid("web"))[0], "web-b");
    foreign_pid_is_not_ours(&a, &b);
}

/// The same with untagged playpens: the other process has the very same title
/// (`web 1000`), so only its environment (PLAYPEN_ROOT) tells it apart.
#[test]
fn another_playpens_process_with_the_same_untagged_run_name_is_not_ours() {
    let a = sleep_playpen("");
    let b = sleep_playpen("");
    assert_eq!(cmdline(b.running_pid("web"))[0], "web");
    foreign_pid_is_not_ours(&a, &b);
}

#[test]
fn a_pidfile_without_start_record_naming_a_stranger_is_stale() {
    let pp = Playpen::new();
    daemon(&pp, "web", "");
    let stranger = Bystander::sleep();
    pp.write("var/run/web.pid", &format!("{}\n", stranger.pid()));
    let (state_now, json) = state(&pp, "web");
    assert_eq!(state_now, "stale", "{json}");
    pp.run(&["stop", "web"]).ok();
    assert!(
        alive(stranger.pid()),
        "stop signalled a process that is not the service"
    );
    pp.write("var/run/web.pid", &format!("{}\n", stranger.pid()));
    pp.start(&["web"]);
    assert_ne!(pp.running_pid("web"), stranger.pid());
    assert!(alive(stranger.pid()));
    // A pidfile without a start record that does name the service's process (as
    // after a crash of servicectl between the two writes) still counts as running.
    let pid = pp.running_pid("web");
    std::fs::remove_file(pp.path("var/run/web.start")).unwrap();
    assert_eq!(state(&pp, "web").0, "running");
    pp.run(&["stop", "web"])
        .ok()
        .shows(&pp, "web: stopped (pid {PID})\n");
    assert_dies(pid, "web");
}

/// A running service whose pidfile was deleted (its start record intact) is still
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
    status.ok().shows(&pp, "SERVICE STATE PID UPTIME PORTS NOTE\nweb running {PID} {TIME} - its pidfile is missing; `servicectl start web` writes it again\n")
        .says(&[&pid.to_string()]);
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
        .shows(&pp, "web: already running (pid {PID})\n")
        .says(&[&pid.to_string()])
        .says(&[&pid.to_string()]);
    assert_eq!(
        pp.running_as("web"),
        [pid],
        "no second process; output files: {}",
        pp.outputs()
    );
    assert_eq!(pp.pid("web"), Some(pid), "the pidfile was written back");

    pp.run(&["stop", "web"])
        .ok()
        .shows(&pp, "web: stopped (pid {PID})\n");
    assert_dies(pid, "web");
    assert!(!pp.pidfile("web").exists());
    assert!(pp.running_as("web").is_empty());
}

#[test]
fn status_evaluates_no_config() {
    let pp = Playpen::new();
    daemon(&pp, "a", "");
    daemon(&pp, "b", "");
    pp.role_config("playpen_services=\"a b\"\ntouch \"$PLAYPEN_ROOT/evaluated\"\n");
    pp.start(&[]);
    assert!(pp.exists("evaluated"), "start evaluates the role config");
    std::fs::remove_file(pp.path("evaluated")).unwrap();

    let out = pp.run(&["status"]);
    out.ok();
    assert_eq!(
        golden(&pp, &out.stdout),
        "SERVICE STATE PID UPTIME PORTS NOTE\n\
         a running {PID} {TIME} -\n\
         b running {PID} {TIME} -\n"
    );
    pp.run(&["status", "--json"]).ok();
    pp.run(&["status", "a", "b"]).ok();
    assert!(
        !pp.exists("evaluated"),
        "status sourced the role config (it ran sh)"
    );

    // A changed role config is evaluated again (the services may have changed).
    pp.role_config("playpen_services=\"a\"\ntouch \"$PLAYPEN_ROOT/evaluated\"\n");
    let json = pp.run(&["status", "--json"]).ok().json();
    assert!(pp.exists("evaluated"));
    assert_eq!(json.as_array().unwrap().len(), 1, "{json}");
}

#[test]
fn ping_prefers_the_project_script_then_the_package_then_status() {
    let pp = Playpen::new();
    pp.install_sleep("bin/daemon");
    pp.package(
        "web",
        "1.0",
        "service_program=daemon\nservice_flags=1000\nservice_start_grace=0.05\n",
    );
    let script = |who: &str| {
        format!("#!/bin/sh\necho \"{who} $*\" >> \"$PLAYPEN_ROOT/pings\"\necho \"{who} says hi\"\n")
    };
    pp.write_exec("services/web/ping", &script("project"));
    pp.write_exec("ext/services/web-1.0/ping", &script("package"));
    pp.start(&["web"]);

    pp.run(&["ping", "web"])
        .ok()
        .out_says(&["web: ok (", "): project says hi\n"]);
    assert_eq!(lines(&pp.path("pings")), ["project web 1.0"]);

    std::fs::remove_file(pp.path("services/web/ping")).unwrap();
    pp.run(&["ping", "web"]).ok().shows(
        &pp,
        "web: ok ({ROOT}/ext/services/web-1.0/ping): package says hi\n",
    );
    assert_eq!(lines(&pp.path("pings"))[1..], ["package web 1.0"]);

    std::fs::remove_file(pp.path("ext/services/web-1.0/ping")).unwrap();
    let pid = pp.running_pid("web");
    pp.run(&["ping", "web"])
        .ok()
        .shows(&pp, "web: ok (status): running (pid {PID})\n")
        .says(&[&format!("(pid {pid})")]);
    assert_eq!(lines(&pp.path("pings")).len(), 2, "no script ran");

    pp.run(&["stop", "web"]).ok();
    pp.run(&["ping", "web"])
        .fails()
        .out_says(&["web: FAILED (status): not running"]);
}

#[test]
fn a_failing_ping_fails_the_command_and_says_why() {
    let pp = Playpen::new();
    daemon(&pp, "good", "");
    daemon(&pp, "bad", "service_ping=bad-ping\n");
    pp.write_exec(
        "bin/bad-ping",
        "#!/bin/sh\necho 'no answer on port 8080'\nexit 2\n",
    );
    pp.start(&["good", "bad"]);
    let out = pp.run(&["ping", "good", "bad"]);
    out.fails().out_says(&[
        "good: ok (status): running (pid ",
        &format!(
            "bad: FAILED ({}): exited with status 2: no answer on port 8080\n",
            pp.path("bin/bad-ping").display()
        ),
    ]);
    let json = pp.run(&["ping", "good", "bad", "--json"]).fails().json();
    let ok: Vec<(String, bool)> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["service"].as_str().unwrap().to_string(),
                p["ok"].as_bool().unwrap(),
            )
        })
        .collect();
    assert!(
        ok.contains(&("good".into(), true)) && ok.contains(&("bad".into(), false)),
        "{json}"
    );
}

#[test]
fn print_config_shows_values_and_where_they_came_from() {
    let pp = Playpen::new();
    let role = pp.role_config("playpen_services=web\nROLE_V='from role'\n");
    let config = pp.service("web", "service_program=sleep\nSVC_V='a b'\n");
    let out = pp.run(&["print-config", "web"]);
    out.ok();
    let line = |prefix: &str| {
        out.stdout
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line {prefix:?}:\n{out}"))
            .to_string()
    };
    assert!(
        line("SVC_V=").contains(&config.display().to_string()),
        "{out}"
    );
    assert!(line("SVC_V=").contains("'a b'"), "{out}");
    assert!(
        line("export ROLE_V=").contains(&role.display().to_string()),
        "{out}"
    );
    let json = pp.run(&["print-config", "web", "--json"]).ok().json();
    assert_eq!(
        json["variables"]["SVC_V"]["origin"],
        config.display().to_string()
    );
    assert_eq!(
        json["variables"]["ROLE_V"]["origin"],
        role.display().to_string()
    );
    assert_eq!(json["variables"]["ROLE_V"]["exported"], true);
    assert_eq!(json["variables"]["SVC_V"]["exported"], false);
    // Unknown services are errors.
    let out = pp.run(&["print-config", "nosuch"]);
    out.fails().shows(&pp, "servicectl: nosuch: unknown service (no ext/services/nosuch-VERSION/ and no services/nosuch/config) — known services: web\n");
}

#[test]
fn check_validates_without_starting_anything() {
    let pp = Playpen::new();
    daemon(
        &pp,
        "good",
        "service_pre_start='touch \"$PLAYPEN_ROOT/hook-ran\"'\n",
    );
    pp.service("badprog", "service_program=missing-program\n");
    pp.service("broken", "service_program=sleep\nif then\n");
    pp.role_config("playpen_services=\"good badprog broken\"\n");

    pp.run(&["check", "good"])
        .ok()
        .shows(&pp, "good: ok\n1 checked, 0 with problems\n");

    let out = pp.run(&["check"]);
    out.fails().shows(&pp, "broken: problem: config {ROOT}/services/broken/config:2 has a syntax error; sh said: /bin/sh: 2: {ROOT}/services/broken/config: Syntax error: \"then\" unexpected — fix the fragment (it is sourced by sh; check it with `sh -n FILE`), and end it with a command that succeeds\nbadprog: problem: service_program (set in {ROOT}/services/badprog/config): program \"missing-program\" not found (looked in {ROOT}/bin/missing-program, {ROOT}/ext/bin/missing-program, {ROOT}/ext/missing-program, PATH) — install the program, or fix service_program\ngood: ok\n3 checked, 2 with problems\n");
    let json = pp.run(&["check", "--json"]).fails().json();
    let finding = |name: &str| {
        json.as_array()
            .unwrap()
            .iter()
            .find(|f| f["service"] == name)
            .unwrap_or_else(|| panic!("no finding for {name}: {json:#}"))
            .clone()
    };
    assert_eq!(finding("good")["ok"], true);
    assert_eq!(finding("badprog")["ok"], false);
    let broken_problems = finding("broken")["problems"].clone();
    assert_eq!(
        broken_problems.as_array().unwrap().len(),
        1,
        "only the syntax error, not its consequences: {broken_problems:#}"
    );

    // Nothing was started, linked or run.
    for name in ["good", "badprog", "broken"] {
        assert!(!pp.pidfile(name).exists());
        assert!(!pp.exists(&format!("var/run/{name}.start")));
    }
    assert!(
        std::fs::read_dir(pp.path("var/linkfarm"))
            .unwrap()
            .next()
            .is_none()
    );
    assert!(!pp.exists("hook-ran"));
    assert!(pp.processes().is_empty());
}

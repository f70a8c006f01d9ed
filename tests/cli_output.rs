//! What the command line shows (SPEC §10), as a person and a program read it: the
//! start/stop summary of services left as they were, the JSON of start/stop/restart
//! with each service's PID, and the upgrade report, where a service reloaded with
//! SIGHUP (service_hup=1) is listed as reloaded, apart from those restarted.

use crate::common::*;

/// bin/reloader: a sh program that appends to `$PLAYPEN_ROOT/NAME.hups` on SIGHUP,
/// and writes `$PLAYPEN_ROOT/NAME.ready` once its trap is set.
fn reloader(pp: &Playpen) {
    pp.write_exec(
        "bin/reloader",
        "#!/bin/sh\n\
         trap 'echo hup >> \"$PLAYPEN_ROOT/$SERVICE_NAME.hups\"' HUP\n\
         echo ready > \"$PLAYPEN_ROOT/$SERVICE_NAME.ready\"\n\
         while :; do sleep 1000 & wait $!; done\n",
    );
}

/// post-upgrade of a package two running services depend on: the one with
/// service_hup=1 keeps its process and gets SIGHUP, and the report says "reloaded"
/// for it (text and JSON), "restarted" only for the one that got a new process.
#[test]
fn post_upgrade_lists_a_sighup_reload_as_reloaded() {
    let pp = Playpen::with_services(&["hupper", "plain"]);
    reloader(&pp);
    pp.service(
        "hupper",
        "service_program=reloader\nservice_hup=1\nservice_packages=lib\nservice_stop_before_dep_upgrade=0\n",
    );
    pp.sleeper_service(
        "plain",
        "service_packages=lib\nservice_stop_before_dep_upgrade=0\n",
    );
    pp.run(&["start"]).ok();
    let hupper = pp.running_pid("hupper");
    let plain = pp.running_pid("plain");
    assert!(
        wait_until(PATIENCE, || pp.exists("hupper.ready")),
        "hupper set its HUP trap"
    );

    let pre = pp.run(&["--json", "pre-upgrade", "lib"]).ok().json();
    assert_eq!(report_names(&pre, "marked"), ["hupper", "plain"], "{pre}");

    let out = pp.run(&["post-upgrade", "lib"]);
    out.ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines.contains(&"reloaded: hupper"), "{out}");
    assert!(lines.contains(&"restarted: plain"), "{out}");
    assert!(
        !out.stdout.contains("restarted: hupper")
            && !out.stdout.contains("restarted: plain hupper"),
        "a reload is not a restart:\n{out}"
    );
    assert!(
        wait_until(PATIENCE, || lines_of(&pp, "hupper.hups").len() == 1),
        "hupper got SIGHUP"
    );
    assert_eq!(
        pp.running_pid("hupper"),
        hupper,
        "a reload keeps the process"
    );
    let new_plain = pp.running_pid("plain");
    assert_ne!(new_plain, plain);
    assert_dies(plain, "plain's old process");

    // Again, as JSON: the report carries the reloaded list.
    let post = pp.run(&["--json", "post-upgrade", "lib"]).ok().json();
    assert_eq!(report_names(&post, "reloaded"), ["hupper"], "{post}");
    assert_eq!(report_names(&post, "restarted"), ["plain"], "{post}");
    assert!(report_names(&post, "started").is_empty(), "{post}");
    assert_eq!(pp.running_pid("hupper"), hupper);
}

fn lines_of(pp: &Playpen, rel: &str) -> Vec<String> {
    lines(&pp.path(rel))
}

/// Several services, some already as asked: a line for each that changed, and the
/// others summed up by state (sorted, counted), not one line each.
#[test]
fn unchanged_services_are_summed_up_by_state() {
    let pp = Playpen::new();
    for name in ["a", "b", "c"] {
        pp.sleeper_service(name, "");
    }
    pp.start(&["b"]);
    let b = pp.running_pid("b");

    let out = pp.run(&["start", "c", "b", "a"]);
    out.ok();
    let a = pp.running_pid("a");
    let c = pp.running_pid("c");
    assert!(
        out.stdout.contains(&format!("a: started (pid {a})\n")),
        "{out}"
    );
    assert!(
        out.stdout.contains(&format!("c: started (pid {c})\n")),
        "{out}"
    );
    assert!(
        out.stdout.ends_with("already running (1): b\n"),
        "the unchanged service is summed up last:\n{out}"
    );
    assert!(!out.stdout.contains(&format!("pid {b}")), "{out}");

    // One service named: its own line, with the PID.
    pp.run(&["start", "b"])
        .ok()
        .out_says(&[&format!("b: already running (pid {b})")]);

    pp.run(&["stop", "a"]).ok();
    let out = pp.run(&["stop", "a", "b", "c"]);
    out.ok();
    assert!(out.stdout.ends_with("already stopped (1): a\n"), "{out}");
    let out = pp.run(&["stop", "c", "a", "b"]);
    assert_eq!(out.ok().stdout, "already stopped (3): a, b, c\n", "{out}");
}

/// start/stop/restart --json: one row per service with its result and PID (the PID a
/// reload kept, the one a stop ended, none for a service that was not running).
#[test]
fn json_rows_carry_each_outcome_and_its_pid() {
    let pp = Playpen::new();
    reloader(&pp);
    pp.service("hupper", "service_program=reloader\nservice_hup=1\n");
    pp.sleeper_service("plain", "");

    let rows = pp.run(&["--json", "start", "hupper", "plain"]).ok().json();
    let hupper = pp.running_pid("hupper");
    let plain = pp.running_pid("plain");
    let row = |rows: &serde_json::Value, name: &str| -> serde_json::Value {
        rows.as_array()
            .expect("an array")
            .iter()
            .find(|r| r["service"] == name)
            .unwrap_or_else(|| panic!("no row for {name} in {rows}"))
            .clone()
    };
    assert_eq!(
        row(&rows, "hupper"),
        serde_json::json!({"service": "hupper", "ok": true, "result": "started", "pid": hupper})
    );
    assert_eq!(row(&rows, "plain")["pid"], plain);
    assert!(
        wait_until(PATIENCE, || pp.exists("hupper.ready")),
        "hupper set its HUP trap"
    );

    let rows = pp.run(&["--json", "restart", "hupper"]).ok().json();
    assert_eq!(
        row(&rows, "hupper"),
        serde_json::json!({"service": "hupper", "ok": true, "result": "reloaded", "pid": hupper})
    );

    let rows = pp.run(&["--json", "stop", "plain"]).ok().json();
    assert_eq!(
        row(&rows, "plain"),
        serde_json::json!({"service": "plain", "ok": true, "result": "stopped", "pid": plain})
    );
    let rows = pp.run(&["--json", "stop", "plain"]).ok().json();
    assert_eq!(
        row(&rows, "plain"),
        serde_json::json!({"service": "plain", "ok": true, "result": "already-stopped", "pid": null})
    );
}

/// Every byte of stdout goes through render/sink.rs: `print!` panics on a closed pipe
/// (Rust ignores SIGPIPE), so no other file of src/ may use it.
#[test]
fn nothing_but_the_sink_prints_to_stdout() {
    fn walk(dir: &std::path::Path, found: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).expect("src/ is readable") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(&path, found);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("readable");
                for (n, line) in text.lines().enumerate() {
                    let code = line.split("//").next().unwrap_or("");
                    let prints = ["print!(", "println!("].iter().any(|m| {
                        code.match_indices(m)
                            .any(|(i, _)| !code[..i].ends_with('e'))
                    });
                    if prints {
                        found.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                    }
                }
            }
        }
    }
    let mut found = Vec::new();
    walk(&repo().join("src"), &mut found);
    assert_eq!(
        found,
        Vec::<String>::new(),
        "print!/println! outside render/sink.rs"
    );
}

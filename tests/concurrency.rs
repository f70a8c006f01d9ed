//! Per-service locks and ordering (§6): simultaneous invocations never double-start,
//! repeated start/stop are harmless and say so, simultaneous new-service calls keep
//! every registration, independent services start in parallel, and dependencies start
//! first and stop last.

use crate::common::*;
use std::time::Instant;

/// Run the same servicectl command `n` times at once.
fn simultaneously(pp: &Playpen, n: usize, args: &[&str]) -> Vec<Out> {
    let started = Instant::now();
    let children: Vec<_> = (0..n)
        .map(|_| spawn_piped(pp.command().args(args)))
        .collect();
    children
        .into_iter()
        .map(|c| {
            let output = c.wait_with_output().expect("wait for servicectl");
            Out::from_output(output, started.elapsed(), args.join(" "))
        })
        .collect()
}

fn count(outs: &[Out], needle: &str) -> usize {
    outs.iter().filter(|o| o.stdout.contains(needle)).count()
}

#[test]
fn twenty_simultaneous_starts_run_one_process() {
    let pp = Playpen::new();
    pp.daemon("web", "");
    let outs = simultaneously(&pp, 20, &["start", "web"]);
    for out in &outs {
        out.ok();
    }
    assert_eq!(count(&outs, "web: started"), 1, "{outs:#?}");
    assert_eq!(count(&outs, "web: already running"), 19, "{outs:#?}");
    let pids = pp.running_as("web");
    assert_eq!(pids.len(), 1, "exactly one web process: {pids:?}");
    assert_eq!(pp.running_pid("web"), pids[0]);
    let pidfiles: Vec<_> = std::fs::read_dir(pp.path("var/run"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".pid"))
        .collect();
    assert_eq!(pidfiles.len(), 1, "{pidfiles:?}");
    assert!(pp.temporaries().is_empty(), "{:?}", pp.temporaries());

    let outs = simultaneously(&pp, 20, &["stop", "web"]);
    for out in &outs {
        out.ok();
    }
    assert_eq!(count(&outs, "web: stopped"), 1, "{outs:#?}");
    assert_eq!(count(&outs, "web: already stopped"), 19, "{outs:#?}");
    assert_dies(pids[0], "web");
    assert!(!pp.pidfile("web").exists());
}

#[test]
fn simultaneous_restarts_leave_exactly_one_process() {
    let pp = Playpen::new();
    pp.daemon("web", "service_start_grace=0.05\n");
    pp.start(&["web"]);
    let outs = simultaneously(&pp, 8, &["restart", "web"]);
    for out in &outs {
        out.ok();
    }
    assert!(
        wait_until(PATIENCE, || pp.running_as("web").len() == 1),
        "{:?}",
        pp.running_as("web")
    );
    assert_eq!(pp.running_as("web"), [pp.running_pid("web")]);
}

/// Concurrent new-service calls do not lose each other's registry lines.
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

#[test]
fn starting_a_running_service_and_stopping_a_stopped_one_succeed_and_say_so() {
    let pp = Playpen::new();
    pp.daemon("web", "");
    pp.run(&["stop", "web"])
        .ok()
        .says(&["web: already stopped"]);
    pp.start(&["web"]).says(&["web: started"]);
    let pid = pp.running_pid("web");
    pp.run(&["start", "web"])
        .ok()
        .says(&["web: already running", &pid.to_string()]);
    assert_eq!(pp.running_pid("web"), pid);
    let json = pp.run(&["start", "web", "--json"]).ok().json();
    assert_eq!(json[0]["result"], "already-running");
    pp.run(&["stop", "web"]).ok().says(&["web: stopped"]);
    pp.run(&["stop", "web"])
        .ok()
        .says(&["web: already stopped"]);
}

#[test]
fn independent_services_start_in_parallel() {
    let pp = Playpen::new();
    let names = ["p1", "p2", "p3", "p4", "p5"];
    for name in names {
        pp.daemon(name, "service_start_grace=1\n");
    }
    pp.role_config(&format!("playpen_services=\"{}\"\n", names.join(" ")));
    let out = pp.start(&[]);
    // One after the other this takes at least 5 s (five 1 s grace periods).
    assert!(out.elapsed < secs(4.0), "not parallel:\n{out}");
    for name in names {
        pp.running_pid(name);
    }
}

#[test]
fn dependencies_start_first_and_stop_last() {
    let pp = Playpen::new();
    let hooks = "service_start_grace=0.05\n\
                 service_pre_start='echo \"start $SERVICE_NAME\" >> \"$PLAYPEN_ROOT/order\"'\n\
                 service_pre_stop='echo \"stop $SERVICE_NAME\" >> \"$PLAYPEN_ROOT/order\"'\n";
    pp.daemon("web", &format!("service_depends=\"app\"\n{hooks}"));
    pp.daemon("app", &format!("service_depends=\"db cache\"\n{hooks}"));
    pp.daemon("db", hooks);
    pp.daemon("cache", &format!("service_depends=db\n{hooks}"));
    pp.role_config("playpen_services=\"web app db cache\"\n");

    // Naming web starts what it depends on, dependencies first.
    pp.start(&["web"]);
    for name in ["web", "app", "db", "cache"] {
        pp.running_pid(name);
    }
    assert_eq!(
        lines(&pp.path("order")),
        ["start db", "start cache", "start app", "start web"]
    );

    std::fs::remove_file(pp.path("order")).unwrap();
    pp.run(&["stop"]).ok();
    assert_eq!(
        lines(&pp.path("order")),
        ["stop web", "stop app", "stop cache", "stop db"]
    );
    for name in ["web", "app", "db", "cache"] {
        assert!(!pp.pidfile(name).exists());
    }
}

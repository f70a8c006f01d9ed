//! Service names that contain `-` and digits (§2): `worker-2` beside `worker`, and
//! `svc-000`, installed by hand and by `servicectl package install`; where
//! `NAME-VERSION` is ambiguous the names listed in `.services` files or in
//! playpen_services decide, else the version follows the last `-` followed by a digit;
//! an unknown name says how its directory was read instead, and what to do.

use crate::common::*;

/// An sh program that idles (exec, so the service's PID is the sleep).
const PROG: &str = "#!/bin/sh\nexec sleep 1000\n";

const CONFIG: &str = "service_program=prog\nservice_start_grace=0.05\n";

/// The SERVICE_NAME and SERVICE_VERSION a running service was given.
fn identity(pid: i32) -> (Option<String>, Option<String>) {
    (env_of(pid, "SERVICE_NAME"), env_of(pid, "SERVICE_VERSION"))
}

fn state(pp: &Playpen, name: &str) -> String {
    let json = pp.run(&["status", name, "--json"]).no_panic().json();
    json[0]["state"].as_str().unwrap_or_default().to_string()
}

fn some(a: &str, b: &str) -> (Option<String>, Option<String>) {
    (Some(a.to_string()), Some(b.to_string()))
}

/// By hand: `ext/services/NAME-VERSION/` directories and a `.services` file listing
/// worker and worker-2; svc-000 is listed nowhere (the last dash-digit decides).
/// start/status/stop address each one alone.
#[test]
fn hand_installed_worker_2_beside_worker_and_svc_000() {
    let pp = Playpen::new();
    pp.write_exec("bin/prog", PROG);
    pp.write("ext/services/workers-1.0.services", "worker\nworker-2\n");
    pp.write("ext/services/worker-1.0/config", CONFIG);
    pp.write("ext/services/worker-2-1.0/config", CONFIG);
    pp.write("ext/services/svc-000-2.5/config", CONFIG);
    pp.role_config("playpen_services=\"worker worker-2 svc-000\"\n");

    pp.start(&["worker-2"])
        .shows(&pp, "worker-2: started (pid {PID})\n");
    let w2 = pp.running_pid("worker-2");
    assert_eq!(identity(w2), some("worker-2", "1.0"));
    assert_eq!(state(&pp, "worker-2"), "running");
    assert_eq!(state(&pp, "worker"), "stopped", "worker is another service");
    assert!(!pp.exists("var/run/worker.pid"));

    pp.start(&["worker", "svc-000"]);
    let w = pp.running_pid("worker");
    let svc = pp.running_pid("svc-000");
    assert_ne!(w, w2);
    assert_eq!(identity(w), some("worker", "1.0"));
    assert_eq!(identity(svc), some("svc-000", "2.5"));

    // status of the role lists the three, by name.
    let json = pp.run(&["status", "--json"]).ok().json();
    let mut rows: Vec<(String, String)> = json
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
    rows.sort();
    assert_eq!(
        rows,
        [
            ("svc-000".to_string(), "running".to_string()),
            ("worker".to_string(), "running".to_string()),
            ("worker-2".to_string(), "running".to_string()),
        ]
    );

    // Stopping worker-2 leaves worker alone.
    pp.run(&["stop", "worker-2"])
        .ok()
        .shows(&pp, "worker-2: stopped (pid {PID})\n");
    assert_dies(w2, "worker-2");
    assert!(alive(w), "worker still runs");
    assert_eq!(state(&pp, "worker-2"), "stopped");
    assert_eq!(state(&pp, "worker"), "running");

    pp.run(&["stop"]).ok();
    assert_dies(w, "worker");
    assert_dies(svc, "svc-000");
}

/// By `servicectl package install DIR`: packages named worker-2 (version 1.0, listing
/// worker-2), worker, svc-000, a package with a release suffix (tool-1.0-2, listing
/// tool) and one not named after its services (pool-2-1.0, listing pool-2-a); an
/// upgrade and a removal of worker-2 leave worker alone.
#[test]
fn package_install_of_names_with_dash_digits() {
    let pp = Playpen::new();
    pp.role_config("playpen_services=\"worker worker-2 svc-000 tool pool-2-a\"\n");
    let package = |pkg: &str, version: &str, services: &[&str]| {
        let copy = PkgCopy::empty(pkg);
        copy.write(
            &format!("{pkg}-{version}.services"),
            &format!("{}\n", services.join("\n")),
        );
        copy.write_exec(&format!("bin/{pkg}-prog"), PROG);
        copy.write(
            &format!("{pkg}-{version}.config"),
            &format!("service_program={pkg}-prog\nservice_start_grace=0.05\n"),
        );
        copy
    };
    let worker2 = package("worker-2", "1.0", &["worker-2"]);
    let worker = package("worker", "1.0", &["worker"]);
    let svc = package("svc-000", "3.0", &["svc-000"]);
    let tool = package("tool", "1.0-2", &["tool"]);
    let pool = package("pool-2", "1.0", &["pool-2-a"]);

    pp.install(&worker2.path).ok().shows(
        &pp,
        "installed worker-2-1.0 (3 files)\nworker-2: registered\n",
    );
    assert!(pp.exists("ext/services/worker-2-1.0/config"));
    assert!(pp.exists("ext/services/worker-2-1.0.services"));
    pp.install(&worker.path)
        .ok()
        .shows(&pp, "installed worker-1.0 (3 files)\nworker: registered\n");
    pp.install(&svc.path).ok().shows(
        &pp,
        "installed svc-000-3.0 (3 files)\nsvc-000: registered\n",
    );
    pp.install(&tool.path)
        .ok()
        .shows(&pp, "installed tool-1.0-2 (3 files)\ntool: registered\n");
    assert!(pp.exists("ext/services/tool-1.0-2/config"));
    pp.install(&pool.path).ok().shows(
        &pp,
        "installed pool-2-1.0 (3 files)\npool-2-a: registered\n",
    );
    assert!(pp.exists("ext/services/pool-2-a-1.0/config"));
    for name in ["worker-2", "worker", "svc-000", "tool", "pool-2-a"] {
        assert_eq!(
            pp.registry_line(name).as_deref(),
            Some(format!("{name}\tinit\tenable").as_str()),
            "{name} is registered:\n{}",
            pp.registry()
        );
    }

    pp.start(&["worker-2"]);
    let w2 = pp.running_pid("worker-2");
    assert_eq!(identity(w2), some("worker-2", "1.0"));
    assert_eq!(state(&pp, "worker"), "stopped");
    pp.run(&["start"]).ok();
    let w = pp.running_pid("worker");
    assert_eq!(identity(w), some("worker", "1.0"));
    assert_eq!(identity(pp.running_pid("svc-000")), some("svc-000", "3.0"));
    assert_eq!(identity(pp.running_pid("tool")), some("tool", "1.0-2"));
    assert_eq!(
        identity(pp.running_pid("pool-2-a")),
        some("pool-2-a", "1.0")
    );
    // The run name defaults to the package name: worker-2's is worker-2.
    for (link, program) in [("worker-2", "worker-2-prog"), ("worker", "worker-prog")] {
        assert_eq!(
            std::fs::read_link(pp.path(&format!("var/linkfarm/{link}"))).unwrap(),
            pp.path(&format!("ext/bin/{program}")),
            "run name {link}"
        );
    }

    // Upgrading worker-2 is an upgrade of package worker-2, not of worker.
    worker2.rename_prefix("worker-2-1.0.", "worker-2-1.1.");
    pp.install(&worker2.path)
        .ok()
        .shows(&pp, "upgraded worker-2-1.0 to worker-2-1.1 (3 files)\nstopped: worker-2\nstarted: worker-2\nworker-2: already registered (checked again)\n");
    assert!(pp.exists("ext/services/worker-2-1.1/config"));
    assert!(!pp.exists("ext/services/worker-2-1.0"));
    let w2 = pp.running_pid("worker-2");
    assert_eq!(identity(w2), some("worker-2", "1.1"));
    assert_eq!(pp.running_pid("worker"), w, "worker was not touched");

    // Removing package worker-2 leaves worker running and installed.
    pp.run(&["package", "remove", "worker-2"]).ok().shows(
        &pp,
        "worker-2: removed (stopped first)\npackage worker-2 removed\n",
    );
    assert_dies(w2, "worker-2 after package remove");
    assert!(alive(w), "worker still runs");
    assert!(pp.exists("ext/services/worker-1.0/config"));
    assert!(pp.registry_line("worker-2").is_none());
    pp.run(&["status", "worker-2"]).code_is(4);
    pp.run(&["stop", "worker"]).ok();
    assert_dies(w, "worker");
}

/// When a directory reads as another name, the error says which directory, how it
/// was read and why, and what to do; listing the name in playpen_services fixes it,
/// also for `status` answering from the role cache.
#[test]
fn an_unresolved_name_explains_the_split() {
    let pp = Playpen::new();
    pp.write_exec("bin/prog", PROG);
    // Only worker is listed; worker-2-1.0 therefore reads as worker, version 2-1.0.
    pp.write("ext/services/worker-1.0.services", "worker\n");
    pp.write("ext/services/worker-1.0/config", CONFIG);
    pp.write("ext/services/worker-2-1.0/config", CONFIG);
    // Listed nowhere: web-1.0-2 reads as web-1.0, version 2.
    pp.write("ext/services/web-1.0-2/config", CONFIG);
    pp.role_config("playpen_services=\"worker\"\n");

    let out = pp.run(&["start", "worker-2"]);
    out.code_is(4).shows(&pp, "servicectl: worker-2: unknown service: ext/services/worker-2-1.0/ exists but reads as service worker, version 2-1.0: worker is a listed name (ext/services/worker-1.0.services, playpen_services in etc/roles/dev/config) and worker-2 is not (a NAME-VERSION directory is split after the longest name listed in an ext/services/*.services file or in playpen_services, else at the last '-' followed by a digit) — list worker-2 in its package's ext/services/PACKAGE-VERSION.services (or in playpen_services in etc/roles/dev/config); known services: web-1.0, worker\n");
    assert!(
        !out.all().contains("no ext/services/worker-2-VERSION/"),
        "the directory exists:\n{out}"
    );
    pp.run(&["status", "worker-2"]).code_is(4).shows(&pp, "servicectl: worker-2: unknown service: ext/services/worker-2-1.0/ exists but reads as service worker, version 2-1.0: worker is a listed name (ext/services/worker-1.0.services, playpen_services in etc/roles/dev/config) and worker-2 is not (a NAME-VERSION directory is split after the longest name listed in an ext/services/*.services file or in playpen_services, else at the last '-' followed by a digit) — list worker-2 in its package's ext/services/PACKAGE-VERSION.services (or in playpen_services in etc/roles/dev/config); known services: web-1.0, worker\n");
    pp.run(&["start", "web"]).code_is(4).shows(&pp, "servicectl: web: unknown service: ext/services/web-1.0-2/ exists but reads as service web-1.0, version 2: no .services file or playpen_services lists web, so the version is what follows the last '-' followed by a digit (a NAME-VERSION directory is split after the longest name listed in an ext/services/*.services file or in playpen_services, else at the last '-' followed by a digit) — list web in its package's ext/services/PACKAGE-VERSION.services (or in playpen_services in etc/roles/dev/config); known services: web-1.0, worker\n");
    // A name with no directory at all keeps the plain message.
    pp.run(&["start", "nosuch"])
        .code_is(4)
        .shows(&pp, "servicectl: nosuch: unknown service (no ext/services/nosuch-VERSION/ and no services/nosuch/config) — known services: web-1.0, worker\n");

    // playpen_services decides too: worker-2 and web become known.
    pp.role_config("playpen_services=\"worker worker-2 web\"\n");
    pp.start(&["worker-2", "web"]);
    let w2 = pp.running_pid("worker-2");
    assert_eq!(identity(w2), some("worker-2", "1.0"));
    assert_eq!(identity(pp.running_pid("web")), some("web", "1.0-2"));
    // `status` knows them from the role cache (no config evaluated), by name and for
    // the whole role.
    pp.run(&["start"]).ok();
    assert!(pp.exists("var/servicectl/role-cache.json"));
    assert_eq!(state(&pp, "worker-2"), "running");
    pp.run(&["status"]).ok().shows(&pp, "SERVICE STATE PID UPTIME PORTS NOTE\nworker running {PID} {TIME} -\nworker-2 running {PID} {TIME} -\nweb running {PID} {TIME} -\n");
    pp.run(&["stop", "worker-2"]).ok();
    assert_dies(w2, "worker-2");
    assert_eq!(state(&pp, "worker"), "running");
    pp.run(&["stop"]).ok();
}

/// A project-local service named like a packaged service's customisation directory
/// (`services/worker-2/` beside packaged worker) is one when a listed name says so.
#[test]
fn project_local_worker_2_beside_packaged_worker() {
    let pp = Playpen::new();
    pp.write_exec("bin/prog", PROG);
    pp.package("worker", "1.0", CONFIG);
    pp.service("worker-2", CONFIG);
    // Unlisted, services/worker-2/ customises worker at version 2.
    pp.role_config("playpen_services=\"worker\"\n");
    pp.run(&["start", "worker-2"]).code_is(4).shows(&pp, "servicectl: worker-2: unknown service: services/worker-2/ exists but reads as the project's customisation of worker version 2 (services/NAME-VERSION/): worker is a listed name (ext/services/worker-1.0.services, playpen_services in etc/roles/dev/config) and worker-2 is not (a NAME-VERSION directory is split after the longest name listed in an ext/services/*.services file or in playpen_services, else at the last '-' followed by a digit) — list worker-2 in its package's ext/services/PACKAGE-VERSION.services (or in playpen_services in etc/roles/dev/config); known services: worker\n");
    pp.role_config("playpen_services=\"worker worker-2\"\n");
    pp.start(&["worker-2", "worker"]);
    let w2 = pp.running_pid("worker-2");
    let w = pp.running_pid("worker");
    assert_eq!(env_of(w2, "SERVICE_NAME").as_deref(), Some("worker-2"));
    assert_eq!(env_of(w2, "SERVICE_VERSION").as_deref(), Some(""));
    assert_eq!(identity(w), some("worker", "1.0"));
    pp.run(&["stop"]).ok();
    assert_dies(w2, "worker-2");
    assert_dies(w, "worker");
}

//! Bad input: every case gives a clear message (`servicectl: SERVICE: what — what to
//! do`) naming the service and the file, a non-zero exit, no panic, and leaves no
//! pidfile, start record or half-written file behind. (Config syntax errors, failing
//! and hanging fragments are in config_eval.rs; a missing playpen in playpen.rs; a
//! reused PID in status_ping.rs.)

use crate::common::*;

/// The common expectations of a refused start of `service`.
#[track_caller]
fn refused(pp: &Playpen, out: &Out, service: &str, needles: &[&str]) {
    out.fails();
    out.says(&[&format!("servicectl: {service}:")]);
    out.says(needles);
    assert!(
        out.stderr.contains(" — "),
        "the message says what to do:\n{out}"
    );
    assert!(
        !pp.pidfile(service).exists(),
        "no pidfile after a refused start"
    );
    assert!(!pp.exists(&format!("var/run/{service}.start")));
    assert!(
        pp.temporaries().is_empty(),
        "half-written files: {:?}",
        pp.temporaries()
    );
    assert!(
        pp.processes().is_empty(),
        "nothing may run: {:?}",
        pp.processes()
    );
}

#[test]
fn unknown_service_names_it_and_lists_the_known_ones() {
    let pp = Playpen::new();
    pp.service("web", "service_program=sleep\n");
    for cmd in ["start", "stop", "restart", "ping", "print-config", "check"] {
        let out = pp.run(&[cmd, "nosuch"]);
        out.fails().shows(&pp, "servicectl: nosuch: unknown service (no ext/services/nosuch-VERSION/ and no services/nosuch/config) — known services: web\n");
    }
    assert_eq!(pp.run(&["status", "nosuch"]).code, 4);
    // An unknown name among known ones refuses the whole command.
    pp.run(&["start", "web", "nosuch"])
        .fails()
        .shows(&pp, "servicectl: nosuch: unknown service (no ext/services/nosuch-VERSION/ and no services/nosuch/config) — known services: web\n");
    assert!(!pp.pidfile("web").exists());
}

#[test]
fn missing_program() {
    let pp = Playpen::new();
    let config = pp.service("web", "service_program=no-such-program\n");
    let out = pp.run(&["start", "web"]);
    refused(
        &pp,
        &out,
        "web",
        &[
            "no-such-program",
            "not found",
            &config.display().to_string(),
        ],
    );
    assert!(!pp.exists("var/linkfarm/web"));
    pp.run(&["check", "web"]).fails().shows(&pp, "web: problem: service_program (set in {ROOT}/services/web/config): program \"no-such-program\" not found (looked in {ROOT}/bin/no-such-program, {ROOT}/ext/bin/no-such-program, {ROOT}/ext/no-such-program, PATH) — install the program, or fix service_program\n1 checked, 1 with problems\n");
}

#[test]
fn no_program_at_all() {
    let pp = Playpen::new();
    let config = pp.service("web", "# nothing here\nX=1\n");
    let out = pp.run(&["start", "web"]);
    refused(
        &pp,
        &out,
        "web",
        &["service_program", &config.display().to_string()],
    );
}

#[test]
fn program_not_executable() {
    let pp = Playpen::new();
    let program = pp.write("bin/prog", "#!/bin/sh\nsleep 1000\n");
    let config = pp.service("web", "service_program=prog\n");
    let out = pp.run(&["start", "web"]);
    refused(
        &pp,
        &out,
        "web",
        &[
            "not executable",
            &program.display().to_string(),
            &config.display().to_string(),
            "chmod +x",
        ],
    );
}

#[test]
fn unbalanced_quotes_in_service_flags() {
    let pp = Playpen::new();
    let config = pp.service(
        "web",
        "service_program=sleep\nservice_flags=\"1000 'oops\"\n",
    );
    let out = pp.run(&["start", "web"]);
    refused(
        &pp,
        &out,
        "web",
        &["service_flags", &config.display().to_string()],
    );
}

#[test]
fn a_bad_number_of_seconds() {
    let pp = Playpen::new();
    let config = pp.service("web", "service_program=sleep\nservice_halt_timeout=soon\n");
    let out = pp.run(&["start", "web"]);
    refused(
        &pp,
        &out,
        "web",
        &[
            "service_halt_timeout",
            "soon",
            &config.display().to_string(),
        ],
    );
}

#[test]
fn config_syntax_error_leaves_nothing_behind() {
    let pp = Playpen::new();
    let config = pp.service("web", "service_program=sleep\ncase x in\n");
    let out = pp.run(&["start", "web"]);
    refused(
        &pp,
        &out,
        "web",
        &[&config.display().to_string(), "syntax error"],
    );
}

#[test]
fn a_role_without_playpen_services() {
    let pp = Playpen::new();
    pp.service("web", "service_program=sleep\nservice_flags=1000\n");
    pp.role_config("PORT_PREFIX=8000\n");
    for cmd in ["start", "stop", "status"] {
        let out = pp.run(&[cmd]);
        out.fails()
            .shows(&pp, "servicectl: role \"dev\" lists no services: {ROOT}/etc/roles/dev/config does not set playpen_services — add playpen_services=\"NAME …\" to {ROOT}/etc/roles/dev/config, or name the services on the command line\n");
    }
    // Naming the services still works.
    pp.start(&["web"]);
}

#[test]
fn a_pidfile_holding_garbage_is_stale_and_cleaned_up() {
    let pp = Playpen::new();
    pp.service("web", "service_program=sleep\nservice_flags=1000\n");
    pp.write("var/run/web.pid", "hello\n");
    let out = pp.run(&["status", "web"]);
    assert_eq!(out.code, 3, "{out}");
    out.no_panic().shows(&pp, "SERVICE STATE PID UPTIME PORTS NOTE\nweb stale - - - {ROOT}/var/run/web.pid does not hold a PID (it holds \"hello\"); `servicectl start web` cleans it up\n");
    pp.start(&["web"]);
    pp.running_pid("web");
}

#[test]
fn a_pidfile_of_a_reused_pid_is_not_stopped() {
    let pp = Playpen::new();
    pp.service("web", "service_program=sleep\nservice_flags=1000\n");
    pp.start(&["web"]);
    let pid = pp.running_pid("web");
    kill(pid, nix::sys::signal::Signal::SIGKILL);
    assert_dies(pid, "web");
    let stranger = Bystander::sleep();
    let mut record: serde_json::Value =
        serde_json::from_str(&pp.read("var/run/web.start")).unwrap();
    record["pid"] = stranger.pid().into();
    pp.write("var/run/web.start", &record.to_string());
    pp.write("var/run/web.pid", &format!("{}\n", stranger.pid()));
    pp.run(&["stop", "web"]).ok();
    pp.run(&["restart", "web"]).ok();
    assert!(
        alive(stranger.pid()),
        "servicectl signalled a process that is not its service"
    );
    assert_ne!(pp.running_pid("web"), stranger.pid());
}

#[test]
fn var_is_a_regular_file() {
    let pp = Playpen::new();
    pp.service("web", "service_program=sleep\nservice_flags=1000\n");
    std::fs::remove_dir_all(pp.path("var")).unwrap();
    pp.write("var", "not a directory\n");
    let out = pp.run(&["start", "web"]);
    out.fails().shows(&pp, "servicectl: {ROOT}/var exists but is not a directory — servicectl keeps pidfiles and output under {ROOT}/var; move that file away\n");
    assert!(out.stderr.contains(" — "), "{out}");
    assert_eq!(pp.read("var"), "not a directory\n");
    assert!(pp.processes().is_empty());
    pp.run(&["status", "web"]).fails();
    pp.run(&["stop", "web"]).fails();
}

#[test]
fn var_is_not_writable_for_the_user() {
    needs_root("to run servicectl as another user (nobody)");
    assert!(
        std::path::Path::new("/usr/bin/setpriv").exists(),
        "this test needs setpriv (util-linux; scripts/install-deps installs it)"
    );
    let pp = Playpen::new();
    pp.service("web", "service_program=sleep\nservice_flags=1000\n");
    // Let user nobody read the playpen (the temporary directory is private).
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&pp.root, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut cmd = std::process::Command::new("/usr/bin/setpriv");
    cmd.args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        BIN,
        "--playpen",
    ])
    .arg(&pp.root)
    .args(["start", "web"])
    .current_dir("/")
    .env("NO_COLOR", "1")
    .env_remove("PLAYPEN_ROOT");
    let out = run_command(&mut cmd);
    out.fails().shows(&pp, "servicectl: {ROOT}/var/run is not writable — servicectl keeps pidfiles and output there; fix its permissions (chmod u+w {ROOT}/var/run)\n");
    assert!(out.stderr.contains(" — "), "{out}");
    assert!(!pp.pidfile("web").exists());
    assert!(pp.processes().is_empty());
}

#[test]
fn a_dependency_cycle_is_refused_naming_the_services_and_file() {
    let pp = Playpen::new();
    let a = pp.service(
        "a",
        "service_program=sleep\nservice_flags=1000\nservice_depends=b\n",
    );
    let b = pp.service(
        "b",
        "service_program=sleep\nservice_flags=1000\nservice_depends=a\n",
    );
    let out = pp.run(&["start", "a"]);
    out.fails();
    // The whole message: the cycle from either end, the file that declares it, the hint;
    // the other service is held back.
    let line = |first: &str, second: &str, file: &std::path::Path| {
        format!(
            "servicectl: {first}: dependency cycle in service_depends: {first} → {second} → {first} (set in {}) — remove one of these dependencies\n\
             servicectl: {second}: not started: other services have configuration problems (listed above)\n",
            file.display()
        )
    };
    assert!(
        out.stderr == line("a", "b", &a) || out.stderr == line("b", "a", &b),
        "{out}"
    );
    assert!(!pp.pidfile("a").exists() && !pp.pidfile("b").exists());
    assert!(pp.processes().is_empty());
    pp.run(&["check", "a", "b"])
        .fails()
        .shows(&pp, "b: ok\na: problem: dependency cycle in service_depends: a → b → a (set in {ROOT}/services/a/config) — remove one of these dependencies\n2 checked, 1 with problems\n");
    // Stopping is never blocked by a cycle.
    pp.run(&["stop", "a", "b"]).ok();
}

#[test]
fn a_dependency_on_an_unknown_service() {
    let pp = Playpen::new();
    let config = pp.service("web", "service_program=sleep\nservice_depends=ghost\n");
    let out = pp.run(&["start", "web"]);
    refused(&pp, &out, "web", &["ghost", &config.display().to_string()]);
}

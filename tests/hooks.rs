//! Hooks around start and stop (§4, §6): config variables and the package's hook
//! files, run with the service environment and NAME VERSION arguments; a failing
//! pre_start aborts the start and shows its output, a failing pre_stop only warns;
//! pre/post start also run around a SIGHUP restart.

use crate::common::*;

/// A hook command appending one line about itself to $PLAYPEN_ROOT/hooks.log.
fn logged(tag: &str) -> String {
    format!("echo \"{tag} $SERVICE_NAME $* $LOCAL_VAR\" >> \"$PLAYPEN_ROOT/hooks.log\"")
}

#[test]
fn hook_variables_run_around_start_and_stop_with_the_service_environment() {
    let pp = Playpen::new();
    pp.write_exec(
        "bin/prog",
        "#!/bin/sh\necho program >> \"$PLAYPEN_ROOT/hooks.log\"\nexec sleep 1000\n",
    );
    pp.package(
        "hk",
        "1.0",
        &format!(
            "service_program=prog\n\
             service_pre_start='{}'\n\
             service_post_start='{}'\n\
             service_pre_stop='kill -0 \"$(cat \"$SERVICE_PIDFILE\")\" && {}'\n\
             service_post_stop='test ! -e \"$SERVICE_PIDFILE\" && {}'\n",
            logged("pre_start"),
            logged("post_start"),
            logged("pre_stop_while_running"),
            logged("post_stop_after_pidfile_removed"),
        ),
    );
    let var = pp.path("var").display().to_string();
    pp.start(&["hk"]);
    pp.running_pid("hk");
    let log = pp.path("hooks.log");
    assert!(
        wait_until(PATIENCE, || lines(&log).len() == 3),
        "{:?}",
        lines(&log)
    );
    let got = lines(&log);
    // pre_start ends before the program starts; post_start runs after the start.
    assert_eq!(got[0], format!("pre_start hk hk 1.0 {var}"));
    assert!(got.contains(&"program".to_string()), "{got:?}");
    assert!(
        got.contains(&format!("post_start hk hk 1.0 {var}")),
        "{got:?}"
    );

    pp.run(&["stop", "hk"]).ok();
    let got = lines(&log);
    assert_eq!(
        got[3..],
        [
            format!("pre_stop_while_running hk hk 1.0 {var}"),
            format!("post_stop_after_pidfile_removed hk hk 1.0 {var}"),
        ]
    );
}

#[test]
fn package_hook_files_run_when_no_variable_is_set() {
    let pp = Playpen::new();
    pp.install_sleep("bin/daemon");
    pp.package(
        "hk",
        "2.0",
        &format!(
            "service_program=daemon\nservice_flags=1000\nservice_post_stop='{}'\n",
            logged("variable_post_stop")
        ),
    );
    for hook in ["pre-start", "post-start", "pre-stop", "post-stop"] {
        pp.write_exec(
            &format!("ext/services/hk-2.0/{hook}"),
            &format!(
                "#!/bin/sh\necho \"file {hook} $1 $2 $SERVICE_NAME $SERVICE_VERSION\" >> \"$PLAYPEN_ROOT/hooks.log\"\n"
            ),
        );
    }
    pp.start(&["hk"]);
    assert_eq!(
        lines(&pp.path("hooks.log")),
        [
            "file pre-start hk 2.0 hk 2.0",
            "file post-start hk 2.0 hk 2.0"
        ]
    );
    pp.run(&["stop", "hk"]).ok();
    // The variable overrides the package's post-stop file.
    let var = pp.path("var").display().to_string();
    assert_eq!(
        lines(&pp.path("hooks.log"))[2..],
        [
            "file pre-stop hk 2.0 hk 2.0".to_string(),
            format!("variable_post_stop hk hk 2.0 {var}")
        ]
    );
}

#[test]
fn a_failing_pre_start_aborts_the_start_and_shows_its_output() {
    let pp = Playpen::new();
    pp.write_exec(
        "bin/prog",
        "#!/bin/sh\ntouch \"$PLAYPEN_ROOT/program-ran\"\nexec sleep 1000\n",
    );
    pp.service(
        "web",
        "service_program=prog\nservice_pre_start='echo \"cannot prepare the database\" >&2; exit 4'\n",
    );
    let out = pp.run(&["start", "web"]);
    out.fails().shows(&pp, "servicectl: web: pre-start `echo \"cannot prepare the database\" >&2; exit 4` exited with status 4:\n    cannot prepare the database — fix the pre-start hook (service_pre_start)\n");
    assert!(!pp.pidfile("web").exists());
    assert!(!pp.exists("program-ran"), "the program must not start");
    assert!(pp.processes().is_empty());

    // The package's pre-start file failing does the same.
    pp.service("web", "service_program=prog\n");
    pp.write_exec(
        "services/web/pre-start",
        "#!/bin/sh\necho 'disk full'\nexit 1\n",
    );
    pp.run(&["start", "web"])
        .fails()
        .shows(&pp, "servicectl: web: pre-start {ROOT}/services/web/pre-start exited with status 1:\n    disk full — fix the pre-start hook (service_pre_start)\n");
    assert!(!pp.exists("program-ran"));
}

/// A failing service_pre_stop does not prevent the stop; it is reported as a warning.
#[test]
fn a_failing_pre_stop_hook_does_not_prevent_stop() {
    let pp = Playpen::new();
    pp.daemon("web", "service_pre_stop='echo pre-stop-fails; false'\n");
    pp.start(&["web"]);
    let pid = pp.running_pid("web");
    let out = pp.run(&["stop", "web"]);
    out.ok().shows(&pp, "web: stopped (pid {PID}) (but pre-stop `echo pre-stop-fails; false` exited with status 1:\n    pre-stop-fails)\n");
    assert_dies(pid, "web");
    assert!(!pp.pidfile("web").exists());
    assert!(!pp.exists("var/run/web.start"));
    pp.run(&["status", "web"]).code_is(3);
}

#[test]
fn pre_and_post_start_run_around_a_sighup_restart() {
    let pp = Playpen::new();
    pp.write_exec(
        "bin/reloader",
        "#!/bin/sh\ntrap 'echo program-got-hup >> \"$PLAYPEN_ROOT/hooks.log\"' HUP\necho ready > \"$PLAYPEN_ROOT/ready\"\nwhile :; do sleep 1000 & wait $!; done\n",
    );
    pp.service(
        "web",
        &format!(
            "service_program=reloader\nservice_hup=1\nservice_pre_start='{}'\nservice_post_start='{}'\n",
            "echo pre_start >> \"$PLAYPEN_ROOT/hooks.log\"",
            "echo post_start >> \"$PLAYPEN_ROOT/hooks.log\""
        ),
    );
    pp.start(&["web"]);
    let pid = pp.running_pid("web");
    assert!(wait_until(PATIENCE, || pp.exists("ready")));
    assert_eq!(lines(&pp.path("hooks.log")), ["pre_start", "post_start"]);
    pp.run(&["restart", "web"])
        .ok()
        .shows(&pp, "web: reloaded with SIGHUP (pid {PID})\n");
    let log = pp.path("hooks.log");
    assert!(
        wait_until(PATIENCE, || lines(&log).len() == 5),
        "{:?}",
        lines(&log)
    );
    let got = lines(&log);
    assert_eq!(got[2], "pre_start", "{got:?}");
    assert!(got[3..].contains(&"post_start".to_string()), "{got:?}");
    assert!(got[3..].contains(&"program-got-hup".to_string()), "{got:?}");
    assert_eq!(pp.running_pid("web"), pid);
}

//! Typed settings: every bad value of every setting is refused by `start` and reported by
//! `check`, the same problem with the setting, the file, the value and the rule; a
//! package's `.restart` script restarts; a failed reload leaves the files the running
//! process uses.

use crate::common::*;

/// One bad value per setting, with a word of the rule each message must carry.
/// Settings of cron and inetd services are tried on a service of that type.
const BAD_VALUES: &[(&str, &str, &str, &str)] = &[
    // (extra config making the setting apply, setting, bad value, rule)
    ("", "service_flags", "-c 'unbalanced", "balance the quotes"),
    ("", "service_hup", "maybe", "must be 1 (on) or 0 (off)"),
    (
        "",
        "service_makes_own_pidfile",
        "sure",
        "must be 1 (on) or 0 (off)",
    ),
    ("", "service_no_pidfile", "2", "must be 1 (on) or 0 (off)"),
    (
        "",
        "service_no_symlink",
        "yesplease",
        "must be 1 (on) or 0 (off)",
    ),
    (
        "",
        "service_stop_on_filedep",
        "x",
        "must be 1 (on) or 0 (off)",
    ),
    (
        "",
        "service_restart_on_dep_upgrade",
        "x",
        "must be 1 (on) or 0 (off)",
    ),
    (
        "",
        "service_stop_before_dep_upgrade",
        "x",
        "must be 1 (on) or 0 (off)",
    ),
    (
        "",
        "service_stop_before_upgrade",
        "x",
        "must be 1 (on) or 0 (off)",
    ),
    ("", "service_fail_fast", "x", "must be 1 (on) or 0 (off)"),
    ("", "service_restart_delay", "soon", "number of seconds"),
    ("", "service_halt_timeout", "-3", "number of seconds"),
    ("", "service_start_grace", "1s", "number of seconds"),
    ("", "service_pidfile_timeout", "inf", "number of seconds"),
    (
        "",
        "service_depends_timeout",
        "forever",
        "number of seconds",
    ),
    (
        "",
        "service_restart_backoff_max",
        "NaN",
        "number of seconds",
    ),
    (
        "",
        "service_restart_policy",
        "sometimes",
        "none, unlimited, or a number",
    ),
    (
        "",
        "service_type",
        "forking",
        "init (a daemon), oneshot (run once to completion), cron or inetd",
    ),
    (
        "",
        "service_ready",
        "systemd",
        "must be notify, tcp, tcp:VAR, http:VAR/PATH, log:REGEX, exit (one-shot services) or unset (the ping)",
    ),
    (
        "",
        "service_ready",
        "log:(unclosed",
        "the log: pattern is not a valid regex",
    ),
    (
        "",
        "service_ready",
        "exit",
        "exit is for one-shot services (service_type=oneshot)",
    ),
    ("", "service_ready_timeout", "soon", "number of seconds"),
    ("", "service_health_interval", "often", "number of seconds"),
    (
        "service_health_interval=10\n",
        "service_health_timeout",
        "-1",
        "number of seconds",
    ),
    (
        "",
        "service_health_retries",
        "0",
        "must be a whole number, 1 or more",
    ),
    (
        "service_ready=notify\n",
        "service_health_interval",
        "10",
        "health checks repeat a ping, tcp or http check",
    ),
    ("", "service_watchdog_sec", "never", "number of seconds"),
    ("", "service_config_style", "jinja", "must be envsubst"),
    ("", "service_log_max_bytes", "lots", "size in bytes"),
    ("", "service_log_keep", "-1", "whole number"),
    (
        "service_type=cron\nservice_cron_command=date\n",
        "service_cron_time",
        "61 * * * *",
        "minute field",
    ),
    (
        "service_type=inetd\nservice_inetd_command=cat\n",
        "service_port",
        "70000",
        "1 to 65535",
    ),
    (
        "service_type=inetd\nservice_port=9\nservice_inetd_command=cat\n",
        "service_protocol",
        "sctp",
        "tcp or udp",
    ),
    (
        "service_type=inetd\nservice_port=9\nservice_inetd_command=cat\n",
        "service_bind",
        "local-host",
        "IP address",
    ),
    (
        "service_type=inetd\nservice_port=9\n",
        "service_inetd_command",
        "'cat",
        "balance the quotes",
    ),
    (
        "service_type=inetd\nservice_port=9\nservice_inetd_command=cat\n",
        "service_inetd_max",
        "0",
        "1 or more",
    ),
];

#[test]
fn check_reports_every_bad_setting_that_start_refuses() {
    let pp = Playpen::new();
    pp.install_sleep("bin/sleeper");
    for (extra, setting, value, rule) in BAD_VALUES {
        let config = pp.service(
            "web",
            &format!(
                "service_program=sleeper\nservice_flags=100\n{extra}{setting}={}\n",
                shell_words_quote(value)
            ),
        );
        let config = config.display().to_string();
        let expected = ["web", setting, &format!("{value:?}"), config.as_str(), rule];
        pp.run(&["check", "web"]).fails().says(&expected);
        pp.run(&["start", "web"]).fails().says(&expected);
        assert!(
            pp.processes().is_empty(),
            "{setting}={value}: nothing may start: {:?}",
            pp.processes()
        );
        assert!(!pp.exists("var/run/web.pid"), "{setting}={value}");
    }
}

/// Single-quote a value for an sh fragment.
fn shell_words_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "'\\''"))
}

#[test]
fn check_reports_all_problems_of_a_service_at_once() {
    let pp = Playpen::new();
    pp.install_sleep("bin/sleeper");
    pp.service(
        "web",
        "service_program=sleeper\nservice_hup=maybe\nservice_halt_timeout=soon\nservice_restart_policy=sometimes\nservice_config_files=etc/missing.conf\n",
    );
    let out = pp.run(&["check", "web"]);
    out.fails().shows(&pp, "web: problem: 3 problems with settings:\n  service_hup=\"maybe\" (set in {ROOT}/services/web/config): must be 1 (on) or 0 (off)\n  service_halt_timeout=\"soon\" (set in {ROOT}/services/web/config): must be a number of seconds, 0 or more (fractions allowed, such as 2.5)\n  service_restart_policy=\"sometimes\" (set in {ROOT}/services/web/config): must be none, unlimited, or a number of restarts such as 3 — fix the settings in the service's config\nweb: problem: no template for etc/missing.conf: none of {ROOT}/etc/missing.conf.local, {ROOT}/etc/missing.conf, {ROOT}/ext/etc/missing.conf exists — write the template at {ROOT}/etc/missing.conf (or {ROOT}/etc/missing.conf.local for a local override), reinstall the package that provides {ROOT}/ext/etc/missing.conf, or remove \"etc/missing.conf\" from service_config_files\n1 checked, 1 with problems\n");
    pp.run(&["start", "web"]).fails().shows(&pp, "servicectl: web: 2 problems:\n  3 problems with settings:\n      service_hup=\"maybe\" (set in {ROOT}/services/web/config): must be 1 (on) or 0 (off)\n      service_halt_timeout=\"soon\" (set in {ROOT}/services/web/config): must be a number of seconds, 0 or more (fractions allowed, such as 2.5)\n      service_restart_policy=\"sometimes\" (set in {ROOT}/services/web/config): must be none, unlimited, or a number of restarts such as 3 — fix the settings in the service's config\n  no template for etc/missing.conf: none of {ROOT}/etc/missing.conf.local, {ROOT}/etc/missing.conf, {ROOT}/ext/etc/missing.conf exists — write the template at {ROOT}/etc/missing.conf (or {ROOT}/etc/missing.conf.local for a local override), reinstall the package that provides {ROOT}/ext/etc/missing.conf, or remove \"etc/missing.conf\" from service_config_files\n");
}

#[test]
fn a_running_service_whose_settings_went_bad_still_stops() {
    let pp = Playpen::new();
    let config = pp.sleeper_service("web", "");
    pp.start(&["web"]);
    let pid = pp.running_pid("web");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{text}service_halt_timeout=soon\n")).unwrap();
    pp.run(&["stop", "web"])
        .ok()
        .shows(&pp, "web: stopped (pid {PID})\nservicectl: warning: web: service_halt_timeout=\"soon\" (set in {ROOT}/services/web/config): must be a number of seconds, 0 or more (fractions allowed, such as 2.5); acting with the defaults of the settings that are wrong\n");
    assert_dies(pid, "the service whose config went bad");
}

#[test]
fn a_package_restart_script_is_the_default_of_service_restart() {
    let pp = Playpen::new();
    pp.install_sleep("bin/sleeper");
    pp.package("rs", "1.0", "service_program=sleeper\nservice_flags=1000\n");
    pp.write_exec(
        "ext/services/rs-1.0/restart",
        "#!/bin/sh\necho \"restart $*\" >> \"$PLAYPEN_ROOT/restart.log\"\n",
    );
    pp.start(&["rs"]);
    let pid = pp.running_pid("rs");
    pp.run(&["restart", "rs"])
        .ok()
        .shows(&pp, "rs: restarted (pid {PID})\n");
    assert_eq!(lines(&pp.path("restart.log")), ["restart rs 1.0"]);
    // The script did the restart: the generic stop + start did not run.
    assert!(alive(pid), "the generic restart would have stopped {pid}");
    assert_eq!(pp.running_pid("rs"), pid);
}

#[test]
fn a_failed_reload_leaves_the_rendered_files_of_the_running_process() {
    let pp = Playpen::new();
    pp.envdump_program();
    pp.write("etc/app.conf", "greeting=__GREETING__\n");
    pp.role_config("GREETING=hello\n");
    // pre_start stands for `nginx -t`: it fails when the new file says "broken".
    pp.service(
        "app",
        "service_program=envdump\nservice_flags=app\nservice_hup=1\nservice_config_files=etc/app.conf\nservice_pre_start='! grep -q broken \"$LOCAL_VAR/etc/app.conf\"'\n",
    );
    pp.start(&["app"]);
    let pid = pp.running_pid("app");
    assert_eq!(pp.read("var/etc/app.conf"), "greeting=hello\n");
    pp.role_config("GREETING=broken\n");
    pp.run(&["restart", "app"])
        .fails()
        .shows(&pp, "servicectl: app: pre-start `! grep -q broken \"$LOCAL_VAR/etc/app.conf\"` exited with status 1 — fix the pre-start hook (service_pre_start)\n");
    assert_eq!(
        pp.read("var/etc/app.conf"),
        "greeting=hello\n",
        "after a failed reload the file must be the one the process runs with"
    );
    assert!(alive(pid));
    assert!(
        !pp.exists("var/app.hups"),
        "no SIGHUP after a failed pre_start"
    );
    // A good reload renders and signals.
    pp.role_config("GREETING=bonjour\n");
    pp.run(&["restart", "app"])
        .ok()
        .shows(&pp, "app: reloaded with SIGHUP (pid {PID})\n");
    assert_eq!(pp.read("var/etc/app.conf"), "greeting=bonjour\n");
    assert!(wait_until(PATIENCE, || pp.exists("var/app.hups")));
}

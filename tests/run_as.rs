//! Running a service as another user (§13.1): with service_user, its program, hooks,
//! pings, one-shots and start scripts run as that user (setgid, initgroups, setuid;
//! HOME, USER, LOGNAME its), the files it writes itself are its own, servicectl's
//! state stays root's; `check` refuses a user that does not exist or one servicectl
//! cannot become. As root (CI) with `nobody`; the tests that need root fail without it.

use crate::common::*;
use std::os::unix::fs::MetadataExt;

/// uid, euid, saved and fs uid (and the gids) of a process, from /proc/PID/status.
fn ids(pid: i32) -> (String, String) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("{name} in /proc/{pid}/status"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    (field("Uid:"), field("Gid:"))
}

/// A playpen that `nobody` may enter (the test root is a 0700 temporary directory),
/// with bin/whoami-daemon: says who it is, then sleeps.
fn reachable_playpen(services: &[&str]) -> Playpen {
    let pp = Playpen::with_services(services);
    std::fs::set_permissions(
        &pp.root,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    pp.write_exec(
        "bin/whoami-daemon",
        "#!/bin/sh\necho \"program: uid $(id -u) gid $(id -g) HOME=$HOME USER=$USER LOGNAME=$LOGNAME\"\n\
         echo 'by name' >> \"$SERVICE_OUTPUT_FILE\"\nexec sleep 1000\n",
    );
    pp
}

#[test]
fn the_program_hooks_and_ping_run_as_the_service_user() {
    needs_root("to run a service as another user (nobody)");
    let pp = reachable_playpen(&["web", "mine"]);
    pp.write_exec("ext/bin/ping-web", "#!/bin/sh\necho \"ping as $(id -u)\"\n");
    pp.service(
        "web",
        "service_program=whoami-daemon\nservice_user=nobody\n\
         service_pre_start='echo \"pre_start: uid $(id -u)\"'\n\
         service_ping=bin/ping-web\n",
    );
    pp.service("mine", "service_program=whoami-daemon\n");
    pp.start(&["web", "mine"]);
    let web = pp.running_pid("web");
    assert_eq!(
        ids(web),
        (
            "65534 65534 65534 65534".into(),
            "65534 65534 65534 65534".into()
        ),
        "/proc/{web}/status"
    );
    let out = pp.run(&["ping", "web"]);
    out.ok();
    assert_golden(
        &pp,
        "ping web",
        &out.stdout,
        "web: ok ({ROOT}/ext/bin/ping-web): ping as 65534\n",
    );
    // The program writes its output file, by descriptor and by name: it is its own.
    assert!(
        wait_until(PATIENCE, || pp.output("web").contains("by name")),
        "{}",
        pp.output("web")
    );
    assert_golden(
        &pp,
        "web's output",
        &pp.output("web"),
        "pre_start: uid 65534\nprogram: uid 65534 gid 65534 HOME=/nonexistent USER=nobody LOGNAME=nobody\nby name\n",
    );
    let output = std::fs::metadata(pp.path("var/run/web.output")).unwrap();
    assert_eq!((output.uid(), output.gid()), (65534, 65534));
    // servicectl's own state stays root's.
    for own in [
        "var/run",
        "var/run/web.pid",
        "var/run/web.start",
        "var/servicectl",
    ] {
        assert_eq!(std::fs::metadata(pp.path(own)).unwrap().uid(), 0, "{own}");
    }
    // A service without service_user runs as the caller.
    let mine = pp.running_pid("mine");
    assert_eq!(ids(mine).0, "0 0 0 0");
    assert!(
        wait_until(PATIENCE, || pp.output("mine").contains("by name")),
        "{}",
        pp.output("mine")
    );
    assert!(
        pp.output("mine").starts_with("program: uid 0 gid 0 HOME="),
        "{}",
        pp.output("mine")
    );
    pp.run(&["stop"]).ok();
}

#[test]
fn a_daemon_that_writes_its_own_pidfile_as_the_user_can() {
    needs_root("to run a service as another user (nobody)");
    let pp = reachable_playpen(&["own"]);
    pp.write_exec(
        "bin/own-pidfile",
        "#!/bin/sh\necho $$ > \"$SERVICE_PIDFILE\"\nexec sleep 1000\n",
    );
    pp.service(
        "own",
        "service_program=own-pidfile\nservice_user=nobody\nservice_group=nogroup\n\
         service_makes_own_pidfile=1\nservice_pidfile_timeout=5\n",
    );
    pp.start(&["own"]);
    let pid = pp.running_pid("own");
    assert_eq!(ids(pid).0, "65534 65534 65534 65534");
    let pidfile = std::fs::metadata(pp.path("var/run/own.pid")).unwrap();
    assert_eq!(pidfile.uid(), 65534, "the pidfile is the user's");
    pp.run(&["stop", "own"]).ok();
    assert_dies(pid, "own after stop");
}

#[test]
fn a_one_shot_and_a_start_script_run_as_the_user() {
    needs_root("to run a service as another user (nobody)");
    let pp = reachable_playpen(&["once", "scripted"]);
    pp.write_exec(
        "bin/say-uid",
        "#!/bin/sh\necho \"one-shot: uid $(id -u)\"\n",
    );
    pp.write_exec(
        "ext/bin/start-it",
        "#!/bin/sh\necho \"start script: uid $(id -u)\"\nsleep 1000 > /dev/null 2>&1 &\necho $! > \"$SERVICE_PIDFILE\"\n",
    );
    pp.service(
        "once",
        "service_program=say-uid\nservice_type=oneshot\nservice_user=nobody\n",
    );
    pp.service(
        "scripted",
        "service_start=bin/start-it\nservice_user=nobody\n",
    );
    pp.start(&["once", "scripted"]);
    assert_eq!(pp.output("once"), "one-shot: uid 65534\n");
    assert_eq!(pp.output("scripted"), "start script: uid 65534\n");
    assert_eq!(ids(pp.running_pid("scripted")).0, "65534 65534 65534 65534");
    pp.run(&["stop"]).ok();
}

#[test]
fn check_refuses_a_user_or_group_that_does_not_exist() {
    let pp = Playpen::with_services(&["web"]);
    pp.sleeper_service("web", "service_user=no-such-user-17\n");
    let out = pp.run(&["check", "web"]);
    out.code_is(1);
    assert_golden(
        &pp,
        "check (no such user)",
        &out.stdout,
        "web: problem: service_user=\"no-such-user-17\" (set in {ROOT}/services/web/config): there is no user \"no-such-user-17\" on this machine (getent passwd no-such-user-17 finds nothing): create it (adduser --system no-such-user-17), or name a user that exists — fix the setting in the service's config\n1 checked, 1 with problems\n",
    );
    pp.run(&["start", "web"]).fails();
    assert!(!pp.exists("var/run/web.pid"));

    pp.sleeper_service(
        "web",
        "service_user=nobody\nservice_group=no-such-group-17\n",
    );
    let out = pp.run(&["check", "web"]);
    out.code_is(1);
    assert_golden(
        &pp,
        "check (no such group)",
        &out.stdout,
        "web: problem: service_group=\"no-such-group-17\" (set in {ROOT}/services/web/config): there is no group \"no-such-group-17\" on this machine (getent group no-such-group-17 finds nothing): create it (addgroup --system no-such-group-17), or name a group that exists — fix the setting in the service's config\n1 checked, 1 with problems\n",
    );
}

#[test]
fn a_servicectl_that_is_not_root_refuses_another_user() {
    needs_root("to run servicectl as another user (nobody)");
    let pp = reachable_playpen(&["web"]);
    pp.sleeper_service("web", "service_user=root\n");
    let mut cmd = pp.command();
    // SAFETY: setgroups, setgid and setuid are async-signal-safe.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setgid(65534) != 0
                || libc::setuid(65534) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = run_command(cmd.args(["check", "web"]));
    out.code_is(1);
    assert_golden(
        &pp,
        "check as nobody",
        &out.stdout,
        "web: problem: service_user=\"root\" (set in {ROOT}/services/web/config): servicectl runs as nobody, not root, and only root can run a service as user root (group root): run servicectl as root (sudo), or remove service_user to run the service as the caller — fix the setting in the service's config\n1 checked, 1 with problems\n",
    );
}

#[test]
fn export_systemd_says_user_and_group() {
    needs_root("to export a service of another user (daemon)");
    // Not nobody: systemd warns that running as nobody is not safe.
    let pp = Playpen::with_services(&["web"]);
    pp.sleeper_service("web", "service_user=daemon\n");
    pp.role_config("playpen_services=web\nPLAYPEN_TAG=asuser\n");
    pp.run(&["export", "systemd"]).ok();
    let dir = pp.path("var/export/systemd");
    let verify = run_command(
        std::process::Command::new(systemd_analyze())
            .args(["verify", "--man=no"])
            .arg(dir.join("asuser-web.service"))
            .env("SYSTEMD_UNIT_PATH", format!("{}:", dir.display()))
            .env("SYSTEMD_LOG_LEVEL", "notice"),
    );
    assert!(
        verify.code == 0 && verify.stderr.trim().is_empty() && verify.stdout.trim().is_empty(),
        "systemd-analyze verify:\n{verify}"
    );
    let unit = pp.read("var/export/systemd/asuser-web.service");
    assert_golden(
        &pp,
        "asuser-web.service",
        &unit,
        "# Made by `servicectl export systemd` from the playpen {ROOT}.
[Unit]
Description=web (servicectl service) of the playpen {ROOT}
PartOf=asuser.target

[Service]
ExecStartPre=+/bin/ln -sfn {ROOT}/bin/sleeper {ROOT}/var/linkfarm/web-asuser
Type=exec
EnvironmentFile={ROOT}/var/export/systemd/asuser-web.env
WorkingDirectory={ROOT}
User=daemon
Group=daemon
StandardOutput=append:{ROOT}/var/run/web.output
StandardError=append:{ROOT}/var/run/web.output
ExecStart={ROOT}/var/linkfarm/web-asuser 3600
Restart=no
TimeoutStopSec=5s
KillMode=control-group

[Install]
WantedBy=asuser.target
",
    );
}

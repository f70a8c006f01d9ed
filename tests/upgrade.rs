//! Upgrades (SPEC §8): echo 1.0 → echo 1.1 (PkgCopy::echo_version) while it runs;
//! pre-upgrade / post-upgrade with services that depend on the package
//! (service_packages) and their stop/restart settings; SERVICE_UPGRADED as the new
//! processes really see it (/proc/PID/environ); pre-upgrade when one stop fails;
//! post-upgrade without pre-upgrade; failed upgrades rolled back; service_filedep +
//! service_stop_on_filedep on restart.

use crate::common::*;
use std::time::{Duration, SystemTime};

/// The value `servicectl env SERVICE` gives a variable.
fn env_value(pp: &Playpen, service: &str, var: &str) -> Option<String> {
    let out = pp.run(&["env", service]);
    out.ok();
    let prefix = format!("export {var}=");
    out.stdout
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| shell_words::split(v).expect("quoted").concat())
}

/// Files under var/servicectl whose lines include `line` (the pre-upgrade records).
fn records_naming(pp: &Playpen, line: &str) -> Vec<String> {
    snapshot(&pp.path("var/servicectl"))
        .into_iter()
        .filter_map(|(path, what)| {
            let (_mode, content) = what.strip_prefix("file:")?.split_once(':')?;
            content.lines().any(|l| l.trim() == line).then_some(path)
        })
        .collect()
}

/// echo 1.0 upgraded to 1.1 while it runs.
#[test]
fn echo_upgrade_while_running() {
    let pp = Playpen::with_services(&["echo"]);
    pp.install(&sample("echo")).ok();
    pp.run(&["start"]).ok();
    let old = pp.running_pid("echo");
    assert_eq!(env_of(old, "SERVICE_UPGRADED").as_deref(), Some("0"));
    assert_eq!(env_of(old, "SERVICE_VERSION").as_deref(), Some("1.0"));
    pp.wait_ping(&["echo"]);
    tcp_echo(pp.port(7)).expect("echo 1.0 echoes");

    let v1_1 = PkgCopy::echo_version("1.1");
    let out = pp.install(&v1_1.path);
    out.ok()
        .shows(&pp, "upgraded echo-1.0 to echo-1.1 (6 files)\nrestarted: echo\necho: already registered (checked again)\n");

    // A new process, which knows it was upgraded; the old one is gone.
    let new = pp.running_pid("echo");
    assert_ne!(new, old, "echo was restarted by the upgrade");
    assert_dies(old, "echo 1.0");
    let env = environ(new);
    assert_eq!(
        env.get("SERVICE_UPGRADED").map(String::as_str),
        Some("1"),
        "SERVICE_UPGRADED of the new process"
    );
    assert_eq!(env.get("SERVICE_VERSION").map(String::as_str), Some("1.1"));
    assert_eq!(
        env.get("ECHO_PORT").map(String::as_str),
        Some(pp.port(7).to_string().as_str())
    );
    pp.wait_ping(&["echo"]);
    let output = pp.output("echo");
    assert!(
        output.contains(&format!(
            "echo-server 1.1: listening on 127.0.0.1:{} (pid {new}, max 64 clients, upgraded)",
            pp.port(7)
        )),
        "echo 1.1 logs that it was upgraded:\n{output}"
    );
    assert!(
        output.contains(&format!(
            "echo-server 1.0: listening on 127.0.0.1:{} (pid {old}",
            pp.port(7)
        )),
        "{output}"
    );

    // The files of 1.1 replaced those of 1.0.
    for f in [
        "ext/services/echo-1.1/config",
        "ext/services/echo-1.1/ping",
        "ext/services/echo-1.1.services",
        "ext/etc/profile.d/echo-1.1.profile",
    ] {
        assert!(pp.exists(f), "{f} installed");
    }
    for f in [
        "ext/services/echo-1.0",
        "ext/services/echo-1.0.services",
        "ext/etc/profile.d/echo-1.0.profile",
    ] {
        assert!(!pp.exists(f), "{f} removed");
    }
    assert_eq!(pp.read("ext/share/echo/VERSION").trim(), "1.1");
    assert!(pp.read("ext/bin/echo-server").contains("VERSION = \"1.1\""));
    assert_eq!(
        pp.registry_line("echo").as_deref(),
        Some("echo\tinit\tenable")
    );
    let staging: Vec<String> = pp
        .ext_snapshot()
        .into_keys()
        .filter(|k| k.contains(".staging"))
        .collect();
    assert!(staging.is_empty(), "no staging directory left: {staging:?}");

    // It works, by servicectl's ping and directly.
    pp.wait_ping(&["echo"])
        .shows(&pp, "echo: ok ({ROOT}/ext/services/echo-1.1/ping)\n");
    tcp_echo(pp.port(7)).expect("echo 1.1 echoes");
    pp.run(&["status", "echo"]).ok();

    // The mark has been used: the next restart is not an upgraded one.
    assert_eq!(
        env_value(&pp, "echo", "SERVICE_UPGRADED").as_deref(),
        Some("0")
    );
    pp.run(&["restart", "echo"]).ok();
    let again = pp.running_pid("echo");
    assert_ne!(again, new);
    assert_eq!(env_of(again, "SERVICE_UPGRADED").as_deref(), Some("0"));
    assert!(
        records_naming(&pp, "echo").is_empty(),
        "no pre-upgrade record is left: {:?}",
        records_naming(&pp, "echo")
    );

    // And remove it.
    pp.run(&["package", "remove", "echo"]).ok();
    assert_dies(again, "echo 1.1 after package remove");
    assert!(!pp.exists("ext/services/echo-1.1") && !pp.exists("ext/bin/echo-server"));
    assert_eq!(pp.registry_line("echo"), None);
    assert!(wait_until(PATIENCE, || port_closed(pp.port(7))));
}

/// pre-upgrade stops what must not run during the upgrade and records it;
/// post-upgrade starts it again and restarts the running services that must restart,
/// with SERVICE_UPGRADED=1 for those that ran through the upgrade.
#[test]
fn pre_and_post_upgrade_handle_dependants() {
    let pp = Playpen::with_services(&["echo", "stopper", "follower", "bystander", "unrelated"]);
    pp.install(&sample("echo")).ok();
    // Depend on the echo package (service_packages) with each combination of settings.
    pp.sleeper_service("stopper", "service_packages=echo\n");
    pp.sleeper_service("follower", "service_packages=echo\nservice_stop_before_dep_upgrade=0\nservice_restart_on_dep_upgrade=1\n");
    pp.sleeper_service("bystander", "service_packages=echo\nservice_stop_before_dep_upgrade=0\nservice_restart_on_dep_upgrade=0\n");
    pp.sleeper_service(
        "idle",
        "service_packages=echo\nservice_stop_before_dep_upgrade=0\n",
    );
    pp.sleeper_service("unrelated", "");
    pp.run(&["start"]).ok();
    let before: std::collections::BTreeMap<&str, i32> =
        ["echo", "stopper", "follower", "bystander", "unrelated"]
            .into_iter()
            .map(|s| (s, pp.running_pid(s)))
            .collect();
    assert_eq!(pp.pid("idle"), None);
    pp.wait_ping(&["echo"]);

    let pre = pp.run(&["--json", "pre-upgrade", "echo"]).ok().json();
    assert_eq!(report_names(&pre, "stopped"), ["stopper"], "{pre}");
    assert_eq!(
        report_names(&pre, "marked"),
        ["bystander", "echo", "follower"],
        "{pre}"
    );
    assert_dies(before["stopper"], "stopper (stop_before_dep_upgrade=1)");
    assert_eq!(pp.pid("stopper"), None, "stopper's pidfile is gone");
    for s in ["echo", "follower", "bystander", "unrelated"] {
        assert_eq!(
            pp.running_pid(s),
            before[s],
            "{s} keeps running through pre-upgrade"
        );
    }
    assert_eq!(pp.pid("idle"), None, "idle stays stopped");
    assert!(
        !records_naming(&pp, "stopper").is_empty(),
        "pre-upgrade recorded stopper under var/servicectl"
    );
    tcp_echo(pp.port(7)).expect("echo keeps serving during the upgrade");

    // (The package manager replaces the files here.)
    let post = pp.run(&["--json", "post-upgrade", "echo"]).ok().json();
    assert_eq!(report_names(&post, "started"), ["stopper"], "{post}");
    assert_eq!(
        report_names(&post, "restarted"),
        ["echo", "follower"],
        "{post}"
    );
    assert_eq!(report_names(&post, "marked"), ["bystander"], "{post}");

    let stopper = pp.running_pid("stopper");
    assert_ne!(stopper, before["stopper"]);
    assert_eq!(
        env_of(stopper, "SERVICE_UPGRADED").as_deref(),
        Some("0"),
        "stopper was stopped, not upgraded while running"
    );
    for s in ["echo", "follower"] {
        let pid = pp.running_pid(s);
        assert_ne!(pid, before[s], "{s} was restarted");
        assert_dies(before[s], s);
        assert_eq!(
            env_of(pid, "SERVICE_UPGRADED").as_deref(),
            Some("1"),
            "{s} was upgraded while running"
        );
    }
    assert_eq!(
        pp.running_pid("bystander"),
        before["bystander"],
        "restart_on_dep_upgrade=0: left running"
    );
    assert_eq!(
        pp.running_pid("unrelated"),
        before["unrelated"],
        "an unrelated service is left alone"
    );
    assert_eq!(pp.pid("idle"), None, "a stopped dependant is not started");
    assert!(
        records_naming(&pp, "stopper").is_empty(),
        "the record is used up"
    );
    pp.wait_ping(&["echo"]);

    // bystander ran through the upgrade: its next start is an upgraded one (once).
    assert_eq!(
        env_value(&pp, "bystander", "SERVICE_UPGRADED").as_deref(),
        Some("1")
    );
    assert_eq!(
        env_value(&pp, "unrelated", "SERVICE_UPGRADED").as_deref(),
        Some("0")
    );
    pp.run(&["restart", "bystander"]).ok();
    let bystander = pp.running_pid("bystander");
    assert_ne!(bystander, before["bystander"]);
    assert_eq!(env_of(bystander, "SERVICE_UPGRADED").as_deref(), Some("1"));
    pp.run(&["restart", "bystander"]).ok();
    assert_eq!(
        env_of(pp.running_pid("bystander"), "SERVICE_UPGRADED").as_deref(),
        Some("0")
    );
}

/// pre-upgrade where one of two services fails to stop still records the one that
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
        .shows(&pp, "servicectl: stuck: service_stop {ROOT}/bin/stuck-stop exited with status 1:\n    cannot stop now — see {ROOT}/var/run/stuck.output for its full output\n");
    assert_dies(good, "good");
    assert_eq!(pp.pid("good"), None);
    assert_eq!(pp.running_pid("stuck"), stuck, "stuck still runs");
    assert_eq!(lines(&pp.path(record)), ["good"], "{record}");

    // Again: good is stopped already, stuck still fails; the record is kept.
    pp.run(&["pre-upgrade", "duo"]).fails().shows(&pp, "servicectl: stuck: service_stop {ROOT}/bin/stuck-stop exited with status 1:\n    cannot stop now — see {ROOT}/var/run/stuck.output for its full output\n");
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

/// service_stop_before_upgrade=1 (set by the project's config.post): the package's own
/// service is stopped by pre-upgrade and started by post-upgrade, on the new version.
#[test]
fn own_service_stopped_before_upgrade_and_started_after() {
    let pp = Playpen::with_services(&["echo"]);
    pp.install(&sample("echo")).ok();
    pp.write(
        "services/echo/config.post",
        "service_stop_before_upgrade=1\n",
    );
    pp.run(&["start"]).ok();
    let first = pp.running_pid("echo");

    // By hand, as dpkg's hooks would.
    let pre = pp.run(&["--json", "pre-upgrade", "echo"]).ok().json();
    assert_eq!(report_names(&pre, "stopped"), ["echo"], "{pre}");
    assert_dies(first, "echo stopped by pre-upgrade");
    assert!(port_closed(pp.port(7)));
    pp.run(&["status", "echo"]).code_is(3);
    assert!(
        !records_naming(&pp, "echo").is_empty(),
        "pre-upgrade recorded echo"
    );
    let post = pp.run(&["--json", "post-upgrade", "echo"]).ok().json();
    assert_eq!(report_names(&post, "started"), ["echo"], "{post}");
    let second = pp.running_pid("echo");
    assert_eq!(
        env_of(second, "SERVICE_UPGRADED").as_deref(),
        Some("0"),
        "it did not run during the upgrade"
    );
    pp.wait_ping(&["echo"]);

    // Through package install: stopped, replaced, started on 1.1.
    pp.install(&PkgCopy::echo_version("1.1").path)
        .ok()
        .shows(&pp, "upgraded echo-1.0 to echo-1.1 (6 files)\nstopped: echo\nstarted: echo\necho: already registered (checked again)\n");
    assert_dies(second, "echo 1.0");
    let third = pp.running_pid("echo");
    assert_eq!(env_of(third, "SERVICE_VERSION").as_deref(), Some("1.1"));
    assert_eq!(env_of(third, "SERVICE_UPGRADED").as_deref(), Some("0"));
    pp.wait_ping(&["echo"]);
    let output = pp.output("echo");
    assert!(
        output.contains(&format!(
            "echo-server 1.1: listening on 127.0.0.1:{} (pid {third}, max 64 clients)",
            pp.port(7)
        )),
        "{output}"
    );
    tcp_echo(pp.port(7)).expect("echo 1.1 echoes");
    assert!(!pp.exists("ext/services/echo-1.0") && pp.exists("ext/services/echo-1.1/config"));
}

/// post-upgrade without a matching pre-upgrade: a warning, nothing started, only the
/// running services that depend on the package (and must restart) are restarted.
#[test]
fn post_upgrade_without_pre_upgrade_is_safe() {
    let pp = Playpen::with_services(&["echo", "follower", "bystander", "idle"]);
    pp.install(&sample("echo")).ok();
    pp.sleeper_service(
        "follower",
        "service_packages=echo\nservice_stop_before_dep_upgrade=0\n",
    );
    pp.sleeper_service(
        "bystander",
        "service_packages=echo\nservice_restart_on_dep_upgrade=0\n",
    );
    pp.sleeper_service("idle", "service_packages=echo\n");
    pp.run(&["start", "follower", "bystander"]).ok();
    let follower = pp.running_pid("follower");
    let bystander = pp.running_pid("bystander");

    let out = pp.run(&["post-upgrade", "echo"]);
    out.ok().shows(&pp, "restarted: follower\nleft running, marked upgraded: bystander\nservicectl: warning: echo: no pre-upgrade record ({ROOT}/var/servicectl/upgrade/echo.stopped); nothing was stopped for it, so nothing is started — only running services that must restart are restarted\n");
    assert_eq!(
        pp.pid("echo"),
        None,
        "echo was not running and is not started"
    );
    assert_eq!(
        pp.pid("idle"),
        None,
        "idle was not running and is not started"
    );
    pp.run(&["status", "echo"]).code_is(3);
    let restarted = pp.running_pid("follower");
    assert_ne!(restarted, follower, "a running dependant is restarted");
    assert_dies(follower, "follower's old process");
    assert_eq!(env_of(restarted, "SERVICE_UPGRADED").as_deref(), Some("1"));
    assert_eq!(
        pp.running_pid("bystander"),
        bystander,
        "restart_on_dep_upgrade=0: left alone"
    );

    // For a package nobody depends on and nothing installed: a warning, nothing else.
    let out = pp.run(&["--json", "post-upgrade", "no-such-package"]);
    let report = out.ok().json();
    assert!(
        report_names(&report, "started").is_empty()
            && report_names(&report, "restarted").is_empty(),
        "{report}"
    );
    assert_eq!(pp.running_pid("follower"), restarted);
}

/// A failed upgrade changes nothing: ext/, the registry and the running service stay
/// as they were (what pre-upgrade stopped is started again on the old version).
#[test]
fn failed_upgrade_is_rolled_back() {
    let pp = Playpen::with_services(&["echo"]);
    pp.install(&sample("echo")).ok();
    pp.run(&["start"]).ok();
    let pid = pp.running_pid("echo");
    let ext_before = pp.ext_snapshot();
    let registry_before = pp.registry();

    // echo 2.0 whose config does not evaluate (caught after the files are in place).
    let broken = PkgCopy::echo_version("2.0");
    broken.write("share/echo/NEW-IN-2.0", "new\n");
    broken.append("echo-2.0.config", "if then\n");
    pp.install(&broken.path)
        .fails()
        .shows(&pp, "servicectl: echo: config {ROOT}/ext/services/echo-2.0/config:48 has a syntax error; sh said: /bin/sh: 48: {ROOT}/ext/services/echo-2.0/config: Syntax error: \"then\" unexpected; package echo-2.0 was not installed (ext/ and the registry are as before) — fix the fragment (it is sourced by sh; check it with `sh -n FILE`), and end it with a command that succeeds\n");
    assert_eq!(
        pp.ext_snapshot(),
        ext_before,
        "ext/ is as before the failed upgrade"
    );
    assert_eq!(pp.registry(), registry_before);
    assert_eq!(
        pp.running_pid("echo"),
        pid,
        "echo (stop_before_upgrade=0) kept running"
    );
    assert_eq!(
        env_value(&pp, "echo", "SERVICE_UPGRADED").as_deref(),
        Some("0"),
        "not marked as upgraded"
    );
    assert!(
        records_naming(&pp, "echo").is_empty(),
        "no pre-upgrade record left: {:?}",
        records_naming(&pp, "echo")
    );
    pp.wait_ping(&["echo"])
        .shows(&pp, "echo: ok ({ROOT}/ext/services/echo-1.0/ping)\n");

    // echo 2.0 without a config for echo (caught before anything).
    let incomplete = PkgCopy::echo_version("2.0");
    std::fs::remove_file(incomplete.path.join("echo-2.0.config")).unwrap();
    pp.install(&incomplete.path)
        .fails()
        .says(&["service echo has no config"]);
    assert_eq!(pp.ext_snapshot(), ext_before);
    assert_eq!(pp.running_pid("echo"), pid);

    // With service_stop_before_upgrade=1 the failed upgrade had stopped echo: it runs
    // again, on the old version.
    pp.write(
        "services/echo/config.post",
        "service_stop_before_upgrade=1\n",
    );
    let ext_before = pp.ext_snapshot();
    pp.install(&broken.path)
        .fails()
        .shows(&pp, "servicectl: echo: config {ROOT}/ext/services/echo-2.0/config:48 has a syntax error; sh said: /bin/sh: 48: {ROOT}/ext/services/echo-2.0/config: Syntax error: \"then\" unexpected; package echo-2.0 was not installed (ext/ and the registry are as before) — fix the fragment (it is sourced by sh; check it with `sh -n FILE`), and end it with a command that succeeds\n");
    assert_eq!(pp.ext_snapshot(), ext_before);
    assert_eq!(pp.registry(), registry_before);
    assert_dies(pid, "echo stopped by the pre-upgrade of the failed install");
    let again = pp.running_pid("echo");
    pp.wait_ping(&["echo"]);
    assert_eq!(env_of(again, "SERVICE_VERSION").as_deref(), Some("1.0"));
    assert!(
        pp.output("echo").contains(&format!(
            "echo-server 1.0: listening on 127.0.0.1:{} (pid {again}",
            pp.port(7)
        )),
        "{}",
        pp.output("echo")
    );
    tcp_echo(pp.port(7)).expect("echo 1.0 echoes again");
    assert!(
        records_naming(&pp, "echo").is_empty(),
        "no pre-upgrade record left"
    );

    // A good upgrade still works afterwards.
    pp.install(&PkgCopy::echo_version("1.1").path).ok();
    assert_eq!(
        env_of(pp.running_pid("echo"), "SERVICE_VERSION").as_deref(),
        Some("1.1")
    );
}

/// service_filedep + service_stop_on_filedep on restart: a changed file with
/// stop_on_filedep=1 stops the service (and restart does not start it); with 0 the
/// service is restarted; an unchanged file changes nothing.
#[test]
fn filedep_changes_on_restart() {
    let pp = Playpen::with_services(&["guard", "tolerant"]);
    let tolerant_file = pp.write("var/data/tolerant.dat", "v1\n");
    pp.write("etc/guard.dat", "v1\n");
    pp.sleeper_service(
        "guard",
        "service_filedep=\"etc/guard.dat\"\nservice_stop_on_filedep=1\n",
    );
    pp.sleeper_service(
        "tolerant",
        &format!(
            "service_filedep={}\nservice_stop_on_filedep=0\n",
            shell_words::quote(&tolerant_file.display().to_string())
        ),
    );
    let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
    set_mtime(&pp.path("etc/guard.dat"), an_hour_ago);
    set_mtime(&tolerant_file, an_hour_ago);
    pp.run(&["start"]).ok();
    let guard = pp.running_pid("guard");
    let tolerant = pp.running_pid("tolerant");

    // Unchanged: restart restarts.
    let out = pp.run(&["--json", "restart", "guard"]);
    let rows = out.ok().json();
    assert_eq!(rows[0]["result"], "restarted", "{out}");
    let guard2 = pp.running_pid("guard");
    assert_ne!(guard2, guard);

    // Changed, stop_on_filedep=1: stopped, and stays stopped.
    pp.write("etc/guard.dat", "v2\n");
    let out = pp.run(&["restart", "guard"]);
    out.ok().shows(&pp, "guard: stopped (pid {PID}), not restarted: etc/guard.dat changed and service_stop_on_filedep=1; start it when ready\n");
    assert_dies(guard2, "guard after its filedep changed");
    assert_eq!(pp.pid("guard"), None, "no pidfile");
    pp.run(&["status", "guard"]).code_is(3);
    // Explicitly started again, it runs (the change is then known to it).
    pp.run(&["start", "guard"]).ok();
    let guard3 = pp.running_pid("guard");
    set_mtime(&pp.path("etc/guard.dat"), an_hour_ago); // unchanged since this start
    let out = pp.run(&["--json", "restart", "guard"]);
    assert_eq!(out.ok().json()[0]["result"], "restarted", "{out}");
    assert_dies(guard3, "guard restarted");
    pp.running_pid("guard");

    // Changed, stop_on_filedep=0: restarted.
    std::fs::write(&tolerant_file, "v2\n").unwrap();
    let out = pp.run(&["--json", "restart", "tolerant"]);
    assert_eq!(out.ok().json()[0]["result"], "restarted", "{out}");
    let tolerant2 = pp.running_pid("tolerant");
    assert_ne!(tolerant2, tolerant);
    assert_dies(tolerant, "tolerant's old process");
}

/// A filedep file written before the service started is not a change: restart
/// restarts (even within the same second).
#[test]
fn filedep_written_before_start_is_not_a_change() {
    let pp = Playpen::with_services(&["guard"]);
    let file = pp.write("etc/guard.dat", "v1\n");
    pp.sleeper_service(
        "guard",
        "service_filedep=\"etc/guard.dat\"\nservice_stop_on_filedep=1\n",
    );
    // The file's time: the start of the current second, certainly before the start.
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap();
    set_mtime(
        &file,
        SystemTime::UNIX_EPOCH + Duration::from_secs(now.as_secs()),
    );
    pp.run(&["start", "guard"]).ok();
    let guard = pp.running_pid("guard");
    let out = pp.run(&["--json", "restart", "guard"]);
    assert_eq!(
        out.ok().json()[0]["result"],
        "restarted",
        "the file did not change since the start:\n{out}"
    );
    assert_ne!(pp.running_pid("guard"), guard);
}

//! Starting, stopping and restarting (§6): linkfarm symlinks and argv0, a run name shared
//! by different programs, program resolution, argument splitting, session, stdin,
//! output file, environment, pidfiles (own, also never written; none; script-made),
//! start scripts and their daemons, java, exec failures, process-group stop with
//! SIGKILL after the halt timeout, and the three restart paths.

use crate::common::*;
use std::path::PathBuf;

fn link(pp: &Playpen, name: &str) -> PathBuf {
    std::fs::read_link(pp.path(&format!("var/linkfarm/{name}")))
        .unwrap_or_else(|e| panic!("var/linkfarm/{name}: {e}"))
}

#[test]
fn start_links_the_run_name_and_uses_it_as_argv0() {
    let pp = Playpen::new();
    let program = pp.install_sleep("bin/daemon");
    // The package webpkg-1.0 provides service web: its run name defaults to the package.
    pp.write("ext/services/webpkg-1.0.services", "web\n");
    pp.write(
        "ext/services/web-1.0/config",
        "service_program=daemon\nservice_flags=1000\n",
    );
    let out = pp.start(&["web"]);
    let pid = pp.running_pid("web");
    assert!(
        out.stdout.contains(&format!("web: started (pid {pid})")),
        "{out}"
    );
    assert_eq!(pp.read("var/run/web.pid").trim(), pid.to_string());
    assert_eq!(link(&pp, "webpkg"), program);
    assert_eq!(cmdline(pid), ["webpkg", "1000"]);
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/exe")).unwrap(),
        program
    );
    pp.run(&["stop", "web"]).ok();
    assert_dies(pid, "web");

    // service_run_name overrides the default.
    pp.write(
        "ext/services/web-1.0/config",
        "service_program=daemon\nservice_flags=1000\nservice_run_name=frontdoor\n",
    );
    pp.start(&["web"]);
    let pid = pp.running_pid("web");
    assert_eq!(link(&pp, "frontdoor"), program);
    assert_eq!(cmdline(pid)[0], "frontdoor");
}

#[test]
fn playpen_tag_is_added_to_the_run_name() {
    let pp = Playpen::new();
    pp.daemon("web", "");
    pp.role_config("playpen_services=web\nPLAYPEN_TAG=alice\n");
    pp.start(&["web"]);
    let pid = pp.running_pid("web");
    assert_eq!(cmdline(pid)[0], "web-alice");
    assert_eq!(link(&pp, "web-alice"), pp.path("bin/daemon"));
    pp.run(&["stop", "web"]).ok();

    // From the environment servicectl runs in.
    pp.role_config("playpen_services=web\n");
    pp.run_env(&["start", "web"], &[("PLAYPEN_TAG", "bob")])
        .ok();
    let pid = pp.running_pid("web");
    assert_eq!(cmdline(pid)[0], "web-bob");
    assert!(pp.exists("var/linkfarm/web-bob"));
}

#[test]
fn a_symlink_to_elsewhere_is_replaced_without_writing_through_it() {
    let pp = Playpen::new();
    pp.daemon("web", "");
    let precious = pp.write("precious", "keep me\n");
    std::os::unix::fs::symlink(&precious, pp.path("var/linkfarm/web")).unwrap();
    pp.start(&["web"]);
    assert_eq!(link(&pp, "web"), pp.path("bin/daemon"));
    assert_eq!(std::fs::read_to_string(&precious).unwrap(), "keep me\n");
    assert_eq!(cmdline(pp.running_pid("web"))[0], "web");
    assert!(pp.temporaries().is_empty(), "{:?}", pp.temporaries());
}

#[test]
fn a_regular_file_in_the_linkfarm_is_not_clobbered() {
    let pp = Playpen::new();
    pp.daemon("web", "");
    let file = pp.write("var/linkfarm/web", "not a link\n");
    let out = pp.run(&["start", "web"]);
    out.fails().shows(&pp, "servicectl: web: {ROOT}/var/linkfarm/web exists and is not a symlink; servicectl will not overwrite it — move that file out of var/linkfarm/\n");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "not a link\n");
    assert!(pp.pid("web").is_none());
    assert!(!pp.exists("var/run/web.start"));
    assert!(pp.processes().is_empty());
}

/// Two services of one `start` sharing a run name but running different programs
/// are refused before anything starts; with the same program both start.
#[test]
fn a_run_name_shared_by_different_programs_is_caught_before_start() {
    let pp = Playpen::new();
    let sleep = pp.install_sleep("bin/daemon");
    pp.install_sleep("bin/other-daemon");
    pp.service(
        "ra",
        "service_program=daemon\nservice_flags=1000\nservice_run_name=shared\n",
    );
    pp.service(
        "rb",
        "service_program=other-daemon\nservice_flags=1000\nservice_run_name=shared\n",
    );
    let out = pp.run(&["start", "ra", "rb"]);
    out.fails().shows_any_order(&pp, "servicectl: ra: the run name \"shared\" is shared by ra ({ROOT}/bin/daemon) and rb ({ROOT}/bin/other-daemon), which run different programs — give each its own service_run_name\nservicectl: rb: the run name \"shared\" is shared by ra ({ROOT}/bin/daemon) and rb ({ROOT}/bin/other-daemon), which run different programs — give each its own service_run_name\n");
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

#[test]
fn program_resolution_order() {
    let pp = Playpen::new();
    let in_bin = pp.install_sleep("bin/prog");
    let in_ext_bin = pp.install_sleep("ext/bin/prog");
    let in_ext = pp.install_sleep("ext/prog");
    let on_path = pp.install_sleep("pathdir/prog");
    pp.service(
        "web",
        "service_program=prog\nservice_flags=1000\nservice_start_grace=0.05\n",
    );
    let path = format!(
        "{}:{}",
        pp.path("pathdir").display(),
        std::env::var("PATH").unwrap()
    );
    let start_and_target = |pp: &Playpen| {
        pp.run_env(&["start", "web"], &[("PATH", &path)]).ok();
        let target = link(pp, "web");
        assert_eq!(
            std::fs::read_link(format!("/proc/{}/exe", pp.running_pid("web"))).unwrap(),
            target
        );
        pp.run(&["stop", "web"]).ok();
        target
    };
    assert_eq!(start_and_target(&pp), in_bin);
    std::fs::remove_file(&in_bin).unwrap();
    assert_eq!(start_and_target(&pp), in_ext_bin);
    std::fs::remove_file(&in_ext_bin).unwrap();
    assert_eq!(start_and_target(&pp), in_ext);
    std::fs::remove_file(&in_ext).unwrap();
    assert_eq!(start_and_target(&pp), on_path);

    // A relative path with a slash is relative to ext/.
    let nested = pp.install_sleep("ext/tools/prog2");
    pp.service("web", "service_program=tools/prog2\nservice_flags=1000\n");
    assert_eq!(start_and_target(&pp), nested);
}

#[test]
fn service_flags_are_split_with_shell_quoting() {
    let pp = Playpen::new();
    pp.write_exec("bin/args", "#!/bin/sh\nsleep 1000\n");
    pp.service(
        "web",
        "service_program=args\nservice_flags=$(cat <<'EOF'\n'a b' \"c d\" e\\ f '$HOME' plain ''\nEOF\n)\n",
    );
    pp.start(&["web"]);
    let argv = cmdline(pp.running_pid("web"));
    // A #! script: the kernel puts the interpreter first and the path executed (the
    // linkfarm symlink) second; the arguments follow unchanged.
    assert_eq!(argv[1], pp.path("var/linkfarm/web").display().to_string());
    assert_eq!(argv[2..], ["a b", "c d", "e f", "$HOME", "plain", ""]);
}

#[test]
fn the_program_runs_in_its_own_session_with_stdin_from_dev_null() {
    let pp = Playpen::new();
    pp.daemon("web", "");
    pp.start(&["web"]);
    let pid = pp.running_pid("web");
    let stat = stat_fields(pid).unwrap();
    assert_eq!(stat[2], pid.to_string(), "process group: {stat:?}");
    assert_eq!(stat[3], pid.to_string(), "session: {stat:?}");
    let fd = |n: u32| std::fs::read_link(format!("/proc/{pid}/fd/{n}")).unwrap();
    assert_eq!(fd(0), PathBuf::from("/dev/null"));
    assert_eq!(fd(1), pp.path("var/run/web.output"));
    assert_eq!(fd(2), pp.path("var/run/web.output"));
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap(),
        pp.root
    );
}

#[test]
fn output_is_appended_across_starts() {
    let pp = Playpen::new();
    pp.write_exec(
        "bin/talker",
        "#!/bin/sh\necho \"out $$\"\necho \"err $$\" >&2\nsleep 1000\n",
    );
    pp.service("web", "service_program=talker\n");
    pp.write("var/run/web.output", "from before\n");
    pp.start(&["web"]);
    let first = pp.running_pid("web");
    let said = |pid: i32| {
        let out = pp.output("web");
        out.contains(&format!("out {pid}\n")) && out.contains(&format!("err {pid}\n"))
    };
    assert!(wait_until(PATIENCE, || said(first)), "{}", pp.output("web"));
    pp.run(&["stop", "web"]).ok();
    pp.start(&["web"]);
    let second = pp.running_pid("web");
    assert_ne!(first, second);
    assert!(
        wait_until(PATIENCE, || said(second)),
        "{}",
        pp.output("web")
    );
    let out = pp.output("web");
    assert!(out.starts_with("from before\n"), "{out}");
    assert!(said(first), "the first run's output is kept: {out}");
}

#[test]
fn the_program_gets_the_service_environment() {
    let pp = Playpen::new();
    pp.install_sleep("bin/daemon");
    pp.package("web", "2.5", "service_program=daemon\nservice_flags=1000\n");
    pp.start(&["web"]);
    let pid = pp.running_pid("web");
    let env = environ(pid);
    let root = pp.root.display().to_string();
    let expect = [
        ("SERVICE_NAME", "web".to_string()),
        ("SERVICE_VERSION", "2.5".to_string()),
        ("SERVICE_PIDFILE", format!("{root}/var/run/web.pid")),
        ("SERVICE_OUTPUT_FILE", format!("{root}/var/run/web.output")),
        ("PLAYPEN_ROOT", root.clone()),
        ("LOCAL_VAR", format!("{root}/var")),
        ("LOCAL_RUNVAR", format!("{root}/var/run")),
    ];
    for (name, value) in expect {
        assert_eq!(env.get(name), Some(&value), "{name} in {env:#?}");
    }
    assert_eq!(
        std::fs::read_to_string(&env["SERVICE_PIDFILE"])
            .unwrap()
            .trim(),
        pid.to_string()
    );
}

#[test]
fn a_program_that_writes_its_own_pidfile() {
    let pp = Playpen::new();
    pp.write_exec(
        "bin/forker",
        "#!/bin/sh\nsleep 1000 >/dev/null 2>&1 &\necho $! > \"$SERVICE_PIDFILE\"\n",
    );
    pp.service(
        "web",
        "service_program=forker\nservice_makes_own_pidfile=1\n",
    );
    pp.start(&["web"]);
    let daemon = pp.running_pid("web");
    // The forker's `&` child may not have exec'd sleep yet when the pidfile appears.
    wait_until(PATIENCE, || cmdline(daemon) == ["sleep", "1000"]);
    assert_eq!(cmdline(daemon), ["sleep", "1000"]);
    let json = pp.run(&["status", "web", "--json"]).ok().json();
    assert_eq!(json[0]["state"], "running");
    assert_eq!(json[0]["pid"], daemon);
    pp.run(&["stop", "web"]).ok();
    assert_dies(daemon, "the forked daemon");
    assert!(!pp.pidfile("web").exists());
}

/// A program that was to write its own pidfile and never does: the start fails
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
    status.code_is(3).shows(
        &pp,
        "SERVICE STATE PID UPTIME PORTS NOTE\nweb stopped - - -\n",
    );
}

#[test]
fn service_no_pidfile_needs_a_ping() {
    let pp = Playpen::new();
    pp.write_exec(
        "bin/nopid",
        "#!/bin/sh\necho $$ > \"$PLAYPEN_ROOT/nopid.alive\"\nexec sleep 1000\n",
    );
    pp.service("web", "service_program=nopid\nservice_no_pidfile=1\n");
    pp.run(&["start", "web"]).fails().shows(&pp, "servicectl: web: service_no_pidfile=1 but there is no ping (set in {ROOT}/services/web/config) — a service without a pidfile must provide service_ping (or a .ping script) so its state can be checked\n");
    assert!(pp.processes().is_empty(), "nothing started");

    pp.write_exec(
        "bin/nopid-ping",
        "#!/bin/sh\npid=$(cat \"$PLAYPEN_ROOT/nopid.alive\") && test -d /proc/$pid && echo \"alive $pid\"\n",
    );
    pp.service(
        "web",
        "service_program=nopid\nservice_no_pidfile=1\nservice_ping=nopid-ping\n",
    );
    pp.start(&["web"]);
    assert!(
        !pp.pidfile("web").exists(),
        "no pidfile for service_no_pidfile=1"
    );
    assert!(wait_until(PATIENCE, || pp.exists("nopid.alive")));
    let pid: i32 = pp.read("nopid.alive").trim().parse().unwrap();
    assert!(alive(pid));
    pp.run(&["ping", "web"])
        .ok()
        .out_says(&["web: ok (", &format!("): alive {pid}\n")]);
}

/// service_no_pidfile=1 with a service_start script needs a service_stop script:
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
    pp.service(
        "web",
        "service_start=nopid-start\nservice_no_pidfile=1\nservice_ping=nopid-ping\n",
    );
    pp.run(&["start", "web"]).fails().shows(&pp, "servicectl: web: service_no_pidfile=1 (set in {ROOT}/services/web/config) with service_start needs a service_stop script: without a pidfile servicectl cannot know the PID to signal — fix the setting in the service's config\n");
    assert!(!pp.exists("nopid.pid"), "the start script did not run");
    assert!(
        pp.processes().is_empty(),
        "nothing started: {:?}",
        pp.processes()
    );
    assert!(!pp.exists("var/run/web.start"));
    pp.run(&["check", "web"])
        .fails()
        .shows(&pp, "web: problem: service_no_pidfile=1 (set in {ROOT}/services/web/config) with service_start needs a service_stop script: without a pidfile servicectl cannot know the PID to signal — fix the setting in the service's config\n1 checked, 1 with problems\n");

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
    pp.run(&["stop", "web"]).ok().shows(&pp, "web: stopped\n");
    assert_dies(pid, "the script's daemon");
}

#[test]
fn service_start_and_stop_scripts_get_name_and_version() {
    let pp = Playpen::new();
    pp.package(
        "ctl",
        "1.0",
        "service_start=services/ctl-1.0/start\nservice_stop=services/ctl-1.0/stop\n",
    );
    pp.write_exec(
        "ext/services/ctl-1.0/start",
        "#!/bin/sh\necho \"start $*\" >> \"$PLAYPEN_ROOT/ctl.log\"\nsleep 1000 >/dev/null 2>&1 &\necho $! > \"$SERVICE_PIDFILE\"\n",
    );
    pp.write_exec(
        "ext/services/ctl-1.0/stop",
        "#!/bin/sh\necho \"stop $*\" >> \"$PLAYPEN_ROOT/ctl.log\"\nkill \"$(cat \"$SERVICE_PIDFILE\")\"\n",
    );
    pp.start(&["ctl"]);
    let pid = pp.running_pid("ctl");
    // The script's `&` child may not have exec'd sleep yet when the script exits.
    wait_until(PATIENCE, || cmdline(pid) == ["sleep", "1000"]);
    assert_eq!(cmdline(pid), ["sleep", "1000"]);
    assert_eq!(lines(&pp.path("ctl.log")), ["start ctl 1.0"]);
    pp.run(&["stop", "ctl"])
        .ok()
        .shows(&pp, "ctl: stopped (pid {PID})\n");
    assert_dies(pid, "the service started by the script");
    assert_eq!(
        lines(&pp.path("ctl.log")),
        ["start ctl 1.0", "stop ctl 1.0"]
    );
    assert!(!pp.pidfile("ctl").exists());
}

/// The session of a process (field 6 of /proc/PID/stat).
fn session_of(pid: i32) -> String {
    stat_fields(pid).unwrap_or_else(|| panic!("no /proc/{pid}/stat"))[3].clone()
}

/// A service_start script's background daemon writes to the service's output file
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

#[test]
fn java_runs_without_a_symlink_and_gets_a_classpath() {
    let pp = Playpen::new();
    // A stand-in `java` in the playpen's bin/ (found before any real java on PATH).
    let java = pp.write_exec("bin/java", "#!/bin/sh\nsleep 1000\n");
    pp.write("ext/lib/b.jar", "");
    pp.write("ext/lib/a.jar", "");
    pp.write("ext/lib/readme.txt", "");
    pp.write("ext/other/x.jar", "");
    pp.service(
        "app",
        "service_program=java\nservice_flags='-jar app.jar'\nservice_java_jardirs=lib\nservice_java_jars=other/x.jar\n",
    );
    pp.start(&["app"]);
    let pid = pp.running_pid("app");
    let entries: Vec<_> = std::fs::read_dir(pp.path("var/linkfarm"))
        .unwrap()
        .collect();
    assert!(entries.is_empty(), "no symlink for java: {entries:?}");
    let argv = cmdline(pid);
    assert_eq!(argv[1], java.display().to_string());
    assert_eq!(argv[2..], ["-jar", "app.jar"]);
    let ext = pp.path("ext").display().to_string();
    assert_eq!(
        environ(pid)["CLASSPATH"],
        format!("{ext}/lib/a.jar:{ext}/lib/b.jar:{ext}/other/x.jar")
    );
}

#[test]
fn a_bad_interpreter_is_a_clear_exec_error() {
    let pp = Playpen::new();
    pp.write_exec("bin/broken", "#!/nonexistent/interpreter\necho never\n");
    pp.service("web", "service_program=broken\n");
    let out = pp.run(&["start", "web"]);
    out.fails().shows(&pp, "servicectl: web: service_program (set in {ROOT}/services/web/config): cannot execute {ROOT}/bin/broken: its #! interpreter /nonexistent/interpreter does not exist — make it a binary for this system, or a script whose first line is #! and an interpreter that exists (such as #!/bin/sh)\n");
    assert!(!pp.pidfile("web").exists());
    assert!(!pp.exists("var/run/web.start"));
}

#[test]
fn a_program_that_exits_at_once_is_a_failed_start_showing_its_output() {
    let pp = Playpen::new();
    pp.write_exec(
        "bin/boom",
        "#!/bin/sh\necho boom\necho 'config missing' >&2\nexit 7\n",
    );
    pp.service("web", "service_program=boom\n");
    let out = pp.run(&["start", "web"]);
    out.fails().shows(&pp, "servicectl: web: {ROOT}/bin/boom exited with status 7 right after starting; last lines of {ROOT}/var/run/web.output:\n    boom\n    config missing — see {ROOT}/var/run/web.output for its full output\n");
    assert!(!pp.pidfile("web").exists());
    assert!(!pp.exists("var/run/web.start"));
    let status = pp.run(&["status", "web"]);
    assert_eq!(status.code, 3, "{status}");
}

#[test]
fn stop_terminates_the_whole_process_group() {
    let pp = Playpen::new();
    pp.write_exec(
        "bin/parent",
        "#!/bin/sh\nsleep 1000 >/dev/null 2>&1 &\necho $! > \"$PLAYPEN_ROOT/child.pid\"\nwait\n",
    );
    pp.service("web", "service_program=parent\n");
    pp.start(&["web"]);
    let pid = pp.running_pid("web");
    assert!(wait_until(PATIENCE, || !pp
        .read_or_empty("child.pid")
        .is_empty()));
    let child: i32 = pp.read("child.pid").trim().parse().unwrap();
    assert!(alive(child));
    assert_eq!(
        stat_fields(child).unwrap()[2],
        pid.to_string(),
        "the child is in the service's group"
    );
    let out = pp.run(&["stop", "web"]);
    out.ok().shows(&pp, "web: stopped (pid {PID})\n");
    assert!(
        out.elapsed < secs(5.0),
        "SIGTERM is enough, no halt timeout:\n{out}"
    );
    assert_dies(pid, "the service");
    assert_dies(child, "the service's child");
    assert!(!pp.pidfile("web").exists());
    assert!(!pp.exists("var/run/web.start"));
}

#[test]
fn stop_sends_sigkill_after_the_halt_timeout() {
    let pp = Playpen::new();
    // Ignores SIGTERM, and so does its child (an ignored signal stays ignored after exec).
    pp.write_exec(
        "bin/stubborn",
        "#!/bin/sh\ntrap '' TERM\nsleep 1000\nsleep 1000\n",
    );
    pp.service("web", "service_program=stubborn\nservice_halt_timeout=1\n");
    pp.start(&["web"]);
    let pid = pp.running_pid("web");
    let out = pp.run(&["stop", "web"]);
    out.ok().shows(&pp, "web: stopped (pid {PID})\n");
    assert!(
        out.elapsed >= secs(0.9),
        "waited for the halt timeout first:\n{out}"
    );
    assert!(out.elapsed < secs(8.0), "{out}");
    assert_dies(pid, "the stubborn service");
    assert!(
        wait_until(PATIENCE, || pp.processes().is_empty()),
        "{:?}",
        pp.processes()
    );
    assert!(!pp.pidfile("web").exists());
}

#[test]
fn stopping_a_service_that_exits_on_sigterm_is_quick() {
    let pp = Playpen::new();
    // The default halt timeout is 10 s: stop must not wait for it.
    pp.daemon("web", "");
    pp.start(&["web"]);
    let pid = pp.running_pid("web");
    let out = pp.run(&["stop", "web"]);
    out.ok();
    assert!(out.elapsed < secs(3.0), "stop took too long:\n{out}");
    assert_dies(pid, "web");
}

#[test]
fn restart_with_service_hup_sends_sighup_and_keeps_the_pid() {
    let pp = Playpen::new();
    pp.write_exec(
        "bin/reloader",
        "#!/bin/sh\ntrap 'echo hup >> \"$PLAYPEN_ROOT/hups\"' HUP\necho ready > \"$PLAYPEN_ROOT/ready\"\nwhile :; do sleep 1000 & wait $!; done\n",
    );
    pp.service("web", "service_program=reloader\nservice_hup=1\n");
    pp.start(&["web"]);
    let pid = pp.running_pid("web");
    assert!(
        wait_until(PATIENCE, || pp.exists("ready")),
        "the HUP trap is set"
    );
    pp.run(&["restart", "web"])
        .ok()
        .shows(&pp, "web: reloaded with SIGHUP (pid {PID})\n")
        .says(&[&pid.to_string()])
        .says(&[&pid.to_string()]);
    assert!(
        wait_until(PATIENCE, || lines(&pp.path("hups")).len() == 1),
        "the program got SIGHUP"
    );
    assert_eq!(pp.running_pid("web"), pid);
    assert!(alive(pid));
}

#[test]
fn restart_runs_the_service_restart_script() {
    let pp = Playpen::new();
    pp.install_sleep("bin/daemon");
    pp.write_exec(
        "bin/my-restart",
        "#!/bin/sh\necho \"restart $*\" >> \"$PLAYPEN_ROOT/restarts\"\n",
    );
    pp.package(
        "web",
        "3.1",
        "service_program=daemon\nservice_flags=1000\nservice_restart=my-restart\n",
    );
    pp.start(&["web"]);
    let pid = pp.running_pid("web");
    pp.run(&["restart", "web"])
        .ok()
        .shows(&pp, "web: restarted (pid {PID})\n");
    assert_eq!(lines(&pp.path("restarts")), ["restart web 3.1"]);
    assert_eq!(
        pp.running_pid("web"),
        pid,
        "the script chose not to replace the process"
    );
}

#[test]
fn restart_without_hup_stops_waits_and_starts_again() {
    let pp = Playpen::new();
    pp.daemon("web", "service_restart_delay=0.5\n");
    // A stopped service is simply started.
    pp.run(&["restart", "web"])
        .ok()
        .shows(&pp, "web: restarted (pid {PID})\n");
    let first = pp.running_pid("web");
    let out = pp.run(&["restart", "web"]);
    out.ok().shows(&pp, "web: restarted (pid {PID})\n");
    assert!(
        out.elapsed >= secs(0.5),
        "service_restart_delay is honoured:\n{out}"
    );
    let second = pp.running_pid("web");
    assert_ne!(first, second);
    assert_dies(first, "the old process");
}

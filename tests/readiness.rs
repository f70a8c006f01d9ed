//! Readiness that daemons already speak, liveness and one-shots, under the supervisor,
//! with real processes and real sockets: sd_notify (a python3 program, strangers
//! ignored), tcp (a delayed listener; a stranger on the port never counts), http (503
//! then 200), log:, health checks and the watchdog restarting a service, one-shots and
//! their dependants, and `wait` right after a kill -9.

use crate::common::*;

use std::time::{Duration, Instant};

fn supervise(pp: &Playpen) {
    pp.run(&["supervise", "--daemon"]).ok();
}

#[track_caller]
fn wait_state(pp: &Playpen, name: &str, state: &str, within: Duration) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    let reached = wait_until(within, || {
        last = pp.view(name);
        last["state"] == state
    });
    assert!(
        reached,
        "{name} not {state}: {last}\n{}",
        pp.supervisor_log()
    );
    last
}

/// A python3 service that sends READY=1 (with a STATUS) after `delay` seconds, noting
/// the time it did in var/NAME.ready-at; `delay` None: never.
fn notifier(pp: &Playpen, name: &str, delay: Option<f64>, extra: &str) {
    let send = match delay {
        Some(d) => format!(
            "time.sleep({d})\n\
             open(os.environ['LOCAL_VAR'] + '/{name}.ready-at', 'w').write(repr(time.time()))\n\
             s.sendto(b'STATUS=serving\\nREADY=1', os.environ['NOTIFY_SOCKET'])\n"
        ),
        None => String::new(),
    };
    pp.write_exec(
        &format!("bin/{name}-notify"),
        &format!(
            "#!/usr/bin/env python3\nimport os, socket, time\n\
             s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n{send}\
             while True:\n    time.sleep(3600)\n"
        ),
    );
    pp.service(
        name,
        &format!(
            "service_program={name}-notify\nservice_ready=notify\nservice_start_grace=0\n{extra}\n"
        ),
    );
}

#[test]
fn notify_ready_after_a_delay_and_the_dependant_starts_after_it_never_before() {
    let pp = Playpen::with_ports(&["db", "app"], &[]);
    notifier(&pp, "db", Some(1.5), "");
    pp.sleeper_service(
        "app",
        "service_depends=db\nservice_pre_start='python3 -c \"import time; print(repr(time.time()))\" > \"$LOCAL_VAR/app.started-at\"'",
    );
    supervise(&pp);
    // Right after the launch: db is starting (it has not said READY=1), app waits.
    assert_eq!(pp.view("db")["state"], "starting");
    let db = wait_state(&pp, "db", "running", PATIENCE);
    assert_eq!(db["note"], "serving", "STATUS= is the NOTE: {db}");
    wait_state(&pp, "app", "running", PATIENCE);
    let ready_at: f64 = pp.read("var/db.ready-at").trim().parse().unwrap();
    let app_at: f64 = pp.read("var/app.started-at").trim().parse().unwrap();
    assert!(
        app_at >= ready_at,
        "app started {:.3} s before db sent READY=1",
        ready_at - app_at
    );
    pp.run_timeout(&["shutdown"], 30).ok();
}

#[test]
fn notify_never_sent_is_a_failed_start_at_the_ready_timeout_and_strangers_are_ignored() {
    let pp = Playpen::with_ports(&["mute"], &[]);
    notifier(
        &pp,
        "mute",
        None,
        "service_ready_timeout=2\nservice_restart_policy=none",
    );
    supervise(&pp);
    // A process that is no part of the service sends READY=1 to the same socket.
    let socket = pp.path("var/run/servicectl.notify");
    let stranger = std::process::Command::new("python3")
        .arg("-c")
        .arg("import socket,sys; socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(b'READY=1', sys.argv[1])")
        .arg(&socket)
        .status()
        .unwrap();
    assert!(stranger.success());
    let started = Instant::now();
    let failed = wait_state(&pp, "mute", "failed", PATIENCE);
    assert!(
        started.elapsed() >= Duration::from_millis(1000),
        "failed too early: the stranger's READY=1 counted?"
    );
    assert_eq!(
        failed["last_exit"],
        "not ready within 2 s (service_ready_timeout): no sign of readiness"
    );
    assert!(
        pp.running_as("mute-notify").is_empty() && pp.pid("mute").is_none(),
        "a service not ready in time is stopped"
    );
    pp.run_timeout(&["shutdown"], 30).ok();
}

fn port_service(pp: &Playpen, name: &str, program: &str, extra: &str) {
    let var = format!("{}_PORT", name.to_uppercase());
    pp.service(
        name,
        &format!(
            "service_program={program}\nservice_start_grace=0\n\
             service_required_envars=\"{var}\"\nenvar_{var}_type=port\n\
             envar_{var}_description=\"its port\"\n{var}_OFFSET=1\n{extra}\n"
        ),
    );
}

#[test]
fn tcp_ready_once_its_own_listener_accepts_and_never_by_a_stranger() {
    let pp = Playpen::with_ports(&["web"], &[1]);
    let port = pp.port(1);
    pp.write_exec(
        "bin/late-listener",
        "#!/usr/bin/env python3\nimport os, socket, time\ntime.sleep(1)\n\
         s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         s.bind(('127.0.0.1', int(os.environ['WEB_PORT']))); s.listen()\n\
         while True:\n    c, _ = s.accept(); c.close()\n",
    );
    port_service(&pp, "web", "late-listener", "service_ready=tcp");
    supervise(&pp);
    assert_eq!(pp.view("web")["state"], "starting");
    wait_state(&pp, "web", "running", PATIENCE);
    pp.run_timeout(&["shutdown"], 30).ok();

    // A stranger holds the port; the service's own program never listens.
    let pp = Playpen::with_ports(&["web"], &[1]);
    let port2 = pp.port(1);
    assert_ne!(port, 0);
    let stranger = std::net::TcpListener::bind(("127.0.0.1", port2)).unwrap();
    pp.install_sleep("bin/sleeper");
    port_service(
        &pp,
        "web",
        "sleeper",
        "service_flags=3600\nservice_ready=tcp:WEB_PORT\nservice_ready_timeout=2\nservice_restart_policy=none\nservice_start_grace=1",
    );
    // The port check of start would refuse a held port: the stranger binds once the
    // program runs (in its start grace, before the first readiness check).
    drop(stranger);
    supervise(&pp);
    assert!(wait_until(PATIENCE, || pp.pid("web").is_some_and(alive)));
    let stranger = std::net::TcpListener::bind(("127.0.0.1", port2)).unwrap();
    let failed = wait_state(&pp, "web", "failed", PATIENCE);
    let why = failed["last_exit"]
        .as_str()
        .unwrap_or_else(|| panic!("{failed}\n{}", pp.supervisor_log()));
    let me = std::process::id();
    assert!(
        why.starts_with(&format!(
            "not ready within 2 s (service_ready_timeout): tcp: port {port2} is held by PID {me} ("
        )) && why.ends_with("), not by this service"),
        "{failed}"
    );
    drop(stranger);
    pp.run_timeout(&["shutdown"], 30).ok();
}

#[test]
fn http_503_then_200_and_log_regex() {
    let pp = Playpen::with_ports(&["api", "tail"], &[1]);
    pp.write_exec(
        "bin/api",
        "#!/usr/bin/env python3\nimport os, time, http.server\nstart = time.time()\n\
         class H(http.server.BaseHTTPRequestHandler):\n\
         \x20   def do_GET(self):\n\
         \x20       ok = self.path == '/health' and time.time() - start > 1\n\
         \x20       self.send_response(200 if ok else 503); self.end_headers()\n\
         \x20   def log_message(self, *a): pass\n\
         http.server.HTTPServer(('127.0.0.1', int(os.environ['API_PORT'])), H).serve_forever()\n",
    );
    port_service(&pp, "api", "api", "service_ready=http:API_PORT/health");
    pp.write_exec(
        "bin/tail-svc",
        "#!/bin/sh\necho booting\nsleep 1\necho 'listening on 4242'\nexec sleep 3600\n",
    );
    pp.service(
        "tail",
        "service_program=tail-svc\nservice_start_grace=0\nservice_ready='log:listening on \\d+'\n",
    );
    supervise(&pp);
    // Answering 503 for its first second: starting, not running.
    assert_eq!(pp.view("api")["state"], "starting");
    wait_state(&pp, "api", "running", PATIENCE);
    wait_state(&pp, "tail", "running", PATIENCE);
    pp.run_timeout(&["shutdown"], 30).ok();
}

#[test]
fn health_gone_bad_restarts_with_a_new_pid_and_watchdog_silence_too() {
    let pp = Playpen::with_ports(&["flaky", "dog"], &[]);
    pp.write_exec(
        "services/flaky/ping",
        "#!/bin/sh\n[ ! -e \"$LOCAL_VAR/flaky.sick\" ]\n",
    );
    pp.sleeper_service(
        "flaky",
        "service_restart_policy=unlimited\nservice_health_interval=0.3\nservice_health_timeout=0.2\nservice_health_retries=2",
    );
    // Sends READY=1, then WATCHDOG=1 twice, then falls silent.
    pp.write_exec(
        "bin/dog",
        "#!/usr/bin/env python3\nimport os, socket, time\n\
         s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); a = os.environ['NOTIFY_SOCKET']\n\
         assert os.environ['WATCHDOG_USEC'] == '500000'\n\
         s.sendto(b'READY=1', a)\n\
         for _ in range(2):\n    time.sleep(0.2); s.sendto(b'WATCHDOG=1', a)\n\
         while True:\n    time.sleep(3600)\n",
    );
    pp.service(
        "dog",
        "service_program=dog\nservice_ready=notify\nservice_watchdog_sec=0.5\nservice_start_grace=0\nservice_restart_policy=1\nservice_halt_timeout=1",
    );
    supervise(&pp);
    let flaky = wait_state(&pp, "flaky", "running", PATIENCE);
    let old = flaky["pid"].as_i64().unwrap();
    pp.write("var/flaky.sick", "");
    let mut last = serde_json::Value::Null;
    let restarted = wait_until(PATIENCE, || {
        last = pp.view("flaky");
        last["last_exit"]
            .as_str()
            .is_some_and(|e| e.starts_with("unhealthy: "))
    });
    assert!(
        restarted,
        "not found unhealthy: {last}\n{}",
        pp.supervisor_log()
    );
    std::fs::remove_file(pp.path("var/flaky.sick")).unwrap();
    let flaky = wait_state(&pp, "flaky", "running", PATIENCE);
    assert_ne!(
        flaky["pid"].as_i64().unwrap(),
        old,
        "not restarted with a new PID"
    );
    assert!(flaky["restarts"].as_u64().unwrap() >= 1);

    // The watchdog: killed once silent, restarted (policy 1), silent again: failed.
    let dog = wait_state(&pp, "dog", "failed", PATIENCE);
    assert_eq!(
        dog["last_exit"], "watchdog: no WATCHDOG=1 within 0.5 s",
        "{dog}"
    );
    assert_eq!(dog["restarts"], 1);
    pp.run_timeout(&["shutdown"], 30).ok();
}

#[test]
fn oneshot_done_failed_retried_and_a_dependant_waits_for_it() {
    let pp = Playpen::with_ports(&["migrate", "app", "broken"], &[]);
    // Fails its first run, then succeeds (a retry by the restart policy).
    pp.write_exec(
        "bin/migrate",
        "#!/bin/sh\necho run >> \"$LOCAL_VAR/migrate.runs\"\n\
         [ $(wc -l < \"$LOCAL_VAR/migrate.runs\") -ge 2 ] || exit 1\nsleep 0.5\ntouch \"$LOCAL_VAR/migrated\"\n",
    );
    pp.service(
        "migrate",
        "service_program=migrate\nservice_type=oneshot\nservice_restart_policy=2\n",
    );
    pp.sleeper_service(
        "app",
        "service_depends=migrate\nservice_pre_start='test -e \"$LOCAL_VAR/migrated\"'",
    );
    pp.write_exec("bin/broken", "#!/bin/sh\necho no database >&2\nexit 3\n");
    pp.service(
        "broken",
        "service_program=broken\nservice_type=oneshot\nservice_restart_policy=none\n",
    );
    supervise(&pp);
    let done = wait_state(&pp, "migrate", "done", PATIENCE);
    assert_eq!(done["last_exit"], "exited with status 0");
    assert_eq!(pp.read("var/migrate.runs").lines().count(), 2);
    wait_state(&pp, "app", "running", PATIENCE);
    let broken = wait_state(&pp, "broken", "failed", PATIENCE);
    assert!(
        broken["last_exit"]
            .as_str()
            .unwrap()
            .starts_with("failed to start: "),
        "{broken}"
    );
    // A done one-shot is not run again by start, and status counts it as up.
    pp.run(&["start", "migrate"]).ok();
    assert_eq!(pp.read("var/migrate.runs").lines().count(), 2);
    pp.run(&["status", "migrate", "app"]).code_is(0);
    pp.run_timeout(&["shutdown"], 30).ok();
}

#[test]
fn wait_right_after_a_kill_9_is_not_fooled_by_the_dead_process() {
    let pp = Playpen::with_ports(&["a"], &[]);
    pp.write_exec("services/a/ping", "#!/bin/sh\nsleep 0.3\n");
    pp.sleeper_service("a", "service_restart_policy=unlimited");
    supervise(&pp);
    pp.run(&["wait", "a"]).ok();
    for _ in 0..5 {
        let old = pp.running_pid("a");
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(old), nix::sys::signal::SIGKILL);
        // `wait` at once: SIGKILL may still be pending; wait hears of the exit first.
        let out = pp.run(&["wait", "a", "--timeout", "10"]);
        out.ok();
        let now = pp.view("a");
        assert_eq!(now["state"], "running", "{now}");
        assert_ne!(
            now["pid"].as_i64().unwrap() as i32,
            old,
            "wait answered from the dead process:\n{}",
            pp.supervisor_log()
        );
    }
    pp.run_timeout(&["shutdown"], 30).ok();
}

#[test]
fn a_ready_check_naming_no_typed_port_is_refused_by_check_and_start() {
    let pp = Playpen::new();
    pp.install_sleep("bin/sleeper");
    pp.service(
        "web",
        "service_program=sleeper\nservice_flags=100\nservice_ready=tcp:NOPE\n",
    );
    let check = pp.run(&["check", "web"]);
    check.code_is(1);
    assert_eq!(
        check.stdout,
        "web: problem: service_ready names NOPE, which is not a typed port of the service (its ports: none) — name one of its port variables, or declare VAR as a port\n1 checked, 1 with problems\n"
    );
    let start = pp.run(&["start", "web"]);
    start.code_is(1);
    assert_eq!(
        start.stderr,
        "servicectl: web: service_ready names NOPE, which is not a typed port of the service (its ports: none) — name one of its port variables, or declare VAR as a port\n"
    );
    assert!(pp.processes().is_empty(), "nothing may start");
    pp.service(
        "web",
        "service_program=sleeper\nservice_flags=100\nservice_ready=tcp\n",
    );
    assert_eq!(
        pp.run(&["check", "web"]).stdout,
        "web: problem: service_ready=tcp needs a typed port, and the service has none — declare a typed variable of type port (service_required_envars, envar_NAME_type=port), or serve without service_ready=tcp\n1 checked, 1 with problems\n"
    );
}

/// A step that notes each run in var/NAME.runs, taking `secs`.
fn counted_oneshot(pp: &Playpen, name: &str, secs: f64) {
    pp.write_exec(
        &format!("bin/{name}"),
        &format!("#!/bin/sh\necho run >> \"$LOCAL_VAR/{name}.runs\"\nsleep {secs}\n"),
    );
    pp.service(
        name,
        &format!("service_program={name}\nservice_type=oneshot\n"),
    );
}

#[test]
fn oneshot_without_a_supervisor_is_done_until_stopped() {
    let pp = Playpen::with_ports(&["migrate"], &[]);
    counted_oneshot(&pp, "migrate", 0.0);
    let runs = || pp.read_or_empty("var/migrate.runs").lines().count();
    assert_golden(
        &pp,
        "first start",
        &pp.run(&["start", "migrate"]).ok().stdout,
        "migrate: done (exited with status 0)\n",
    );
    assert_golden(
        &pp,
        "status",
        &pp.run(&["status", "migrate"]).code_is(0).stdout,
        "SERVICE STATE PID UPTIME PORTS NOTE\n\
         migrate done - - - exited with status 0 at {WHEN}\n",
    );
    assert_golden(
        &pp,
        "second start",
        &pp.run(&["start", "migrate"]).ok().stdout,
        "migrate: already done (exited with status 0 at {WHEN})\n",
    );
    assert_eq!(runs(), 1, "a done step is not run again by start");
    pp.run(&["ping", "migrate"]).ok();
    assert_golden(
        &pp,
        "stop",
        &pp.run(&["stop", "migrate"]).ok().stdout,
        "migrate: stopped\n",
    );
    pp.run(&["status", "migrate"]).code_is(3);
    pp.run(&["ping", "migrate"]).fails();
    pp.run(&["start", "migrate"]).ok();
    assert_eq!(runs(), 2, "after a stop, start runs it again");
    pp.run(&["restart", "migrate"]).ok();
    assert_eq!(runs(), 3, "restart runs it again");
}

#[test]
fn oneshot_run_of_a_killed_supervisor_is_outlived_and_run_again_and_done_survives() {
    let pp = Playpen::with_ports(&["migrate"], &[]);
    counted_oneshot(&pp, "migrate", 1.5);
    let runs = || pp.read_or_empty("var/migrate.runs").lines().count();
    supervise(&pp);
    assert!(wait_until(PATIENCE, || runs() == 1), "the step did not run");
    // While it runs it is on record (pidfile, start record), as a daemon is.
    assert!(wait_until(PATIENCE, || pp.pid("migrate").is_some()));
    let step = pp.running_pid("migrate");
    kill9(pp.supervisor_pid());
    supervise(&pp);
    let done = wait_state(&pp, "migrate", "done", PATIENCE);
    assert!(!alive(step), "the orphaned run was outlived");
    assert_eq!(
        runs(),
        2,
        "its exit status died with its parent: it ran again"
    );
    assert_eq!(done["last_exit"], "exited with status 0");
    // A new supervisor finds it done, and does not run it again.
    kill9(pp.supervisor_pid());
    supervise(&pp);
    let adopted = wait_state(&pp, "migrate", "done", PATIENCE);
    assert_eq!(runs(), 2, "a new supervisor adopts done");
    assert_eq!(adopted["last_exit"], "exited with status 0");
    assert_eq!(
        adopted["last_run"], done["last_run"],
        "when it ran, as the first said"
    );
    // shutdown stops it (systemd stops a RemainAfterExit unit too): the next runs it.
    pp.run_timeout(&["shutdown"], 30).ok();
    assert!(!pp.exists("var/run/migrate.done"));
}

#[test]
fn a_dependant_of_a_failed_step_is_stopped_with_why_and_wait_answers_at_once() {
    let pp = Playpen::with_ports(&["broken", "app"], &[]);
    pp.write_exec("bin/broken", "#!/bin/sh\necho no database >&2\nexit 3\n");
    pp.service(
        "broken",
        "service_program=broken\nservice_type=oneshot\nservice_restart_policy=none\n",
    );
    pp.sleeper_service("app", "service_depends=broken");
    supervise(&pp);
    let started = Instant::now();
    let out = pp.run(&["wait", "--timeout", "60"]);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "wait waited for what nothing will start: {:?}",
        started.elapsed()
    );
    assert_golden(
        &pp,
        "wait",
        &out.code_is(1).stderr,
        "servicectl: app: not ready (stopped)\nservicectl: broken: not ready (failed)\n",
    );
    let app = pp.view("app");
    assert_eq!(app["state"], "stopped", "{app}");
    assert_eq!(
        app["note"], "not started because broken, which it depends on, failed",
        "{app}"
    );
    pp.run_timeout(&["shutdown"], 30).ok();
}

/// A supervisor started by a service manager (`boot enable`'s unit is Type=notify)
/// sends READY=1 to $NOTIFY_SOCKET once the role is up: after its notify service said
/// READY=1 and the service that depends on it runs, never before.
#[test]
fn the_supervisor_tells_its_notify_socket_ready_only_once_the_role_is_up() {
    let pp = Playpen::with_ports(&["db", "app"], &[]);
    notifier(&pp, "db", Some(1.5), "");
    pp.sleeper_service("app", "service_depends=db");
    let manager = pp.path("manager.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&manager).unwrap();
    socket.set_read_timeout(Some(PATIENCE)).unwrap();
    pp.run_env(
        &["supervise", "--daemon"],
        &[("NOTIFY_SOCKET", &manager.display().to_string())],
    )
    .ok();
    let mut buf = [0u8; 512];
    let n = socket.recv(&mut buf).unwrap_or_else(|e| {
        panic!(
            "no READY=1 within {PATIENCE:?} ({e}):\n{}",
            pp.supervisor_log()
        )
    });
    let told_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let message = String::from_utf8_lossy(&buf[..n]).into_owned();
    let pid = message
        .rsplit_once("MAINPID=")
        .and_then(|(_, p)| p.trim().parse::<i32>().ok())
        .unwrap_or_else(|| panic!("no MAINPID in {message:?}"));
    assert_eq!(
        message.replace(&format!("MAINPID={pid}"), "MAINPID={PID}"),
        "READY=1\nSTATUS=supervising 2 services, 2 ready\nMAINPID={PID}"
    );
    assert!(
        cmdline(pid).iter().any(|a| a == "supervise"),
        "MAINPID is the supervisor: {:?}",
        cmdline(pid)
    );
    let ready_at: f64 = pp.read("var/db.ready-at").trim().parse().unwrap();
    assert!(
        told_at >= ready_at,
        "READY=1 came {:.3} s before db was ready",
        ready_at - told_at
    );
    assert_eq!(pp.view("app")["state"], "running");
    // Once: nothing more is sent.
    socket
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    assert!(socket.recv(&mut buf).is_err(), "a second message");
    pp.run_timeout(&["shutdown"], 30).ok();
}

//! Cron and inetd services under `servicectl supervise` (SPEC §9.6): real schedules
//! (the supervisor runs with SERVICECTL_CRON_SECONDS=1, the test hook that makes the
//! minute field count seconds), real sockets (tcp, udp, IPv6), real handlers.

use crate::common::*;

use std::io::Read;
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::unix::net::UnixStream;
use std::process::{Child, Stdio};
use std::time::Duration;

/// A foreground supervisor with the seconds hook; killed on drop.
struct Sup {
    child: Child,
    log: std::path::PathBuf,
}

impl Sup {
    #[track_caller]
    fn start(pp: &Playpen) -> Sup {
        let log = pp.path("var/supervise.test.log");
        std::fs::create_dir_all(log.parent().unwrap()).unwrap();
        let file = std::fs::File::create(&log).unwrap();
        let child = pp
            .command()
            .args(["supervise", "--no-start"])
            .env("SERVICECTL_CRON_SECONDS", "1")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("spawn supervise");
        let sup = Sup { child, log };
        let socket = pp.path("var/run/servicectl.sock");
        assert!(
            wait_until(PATIENCE, || UnixStream::connect(&socket).is_ok()),
            "the supervisor does not listen:\n{}",
            sup.log()
        );
        sup
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }
}

impl Drop for Sup {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn status_of(pp: &Playpen, name: &str) -> serde_json::Value {
    let out = pp.run(&["status", "--json", name]);
    let json = out.json();
    let list = json
        .get("services")
        .and_then(|s| s.as_array())
        .cloned()
        .or_else(|| json.as_array().cloned())
        .unwrap_or_else(|| panic!("status --json: {}", out.all()));
    list.into_iter()
        .find(|s| s["service"] == name)
        .unwrap_or_else(|| panic!("{name} not in {json}"))
}

fn count_lines(pp: &Playpen, rel: &str, needle: &str) -> usize {
    pp.read_or_empty(rel)
        .lines()
        .filter(|l| l.contains(needle))
        .count()
}

#[test]
fn cron_fires_into_its_output_file_and_status_shows_armed() {
    let pp = Playpen::new();
    // The run forks a daemon and exits: that daemon is no running run, so the next
    // fire is not skipped.
    pp.service(
        "tick",
        "service_type=cron\nservice_cron_time='* * * * *'\nservice_cron_command='echo fired $SERVICE_NAME; sleep 30 >/dev/null 2>&1 &'\n",
    );
    pp.run(&["check", "tick"]).ok();
    // Without a supervisor a start says it needs one.
    pp.run(&["start", "tick"])
        .fails()
        .shows(&pp, "servicectl: tick: service_type=cron needs the supervisor (set in {ROOT}/services/tick/config): cron and inetd services are run by `servicectl supervise` — start the supervisor (`servicectl supervise --daemon`), then run this again\n");
    let sup = Sup::start(&pp);
    pp.run(&["start", "tick"]).ok();
    let st = status_of(&pp, "tick");
    assert_eq!(st["state"], "armed", "{st}");
    assert!(st["next_run"].is_string(), "{st}");
    assert!(
        wait_until(PATIENCE, || count_lines(
            &pp,
            "var/run/tick.output",
            "fired tick"
        ) >= 3),
        "no fires: {}\n{}",
        pp.read_or_empty("var/run/tick.output"),
        sup.log()
    );
    assert!(!sup.log().contains("skipped"), "{}", sup.log());
    let st = status_of(&pp, "tick");
    assert!(st["last_run"].is_string(), "{st}");
    assert_eq!(st["last_exit"], "exited with status 0", "{st}");
    pp.run(&["status", "tick"]).out_says(&[
        "armed",
        "next run ",
        "last run ",
        "exited with status 0",
    ]);
    pp.run(&["stop", "tick"]).ok();
    assert_eq!(status_of(&pp, "tick")["state"], "stopped");
    let fired = count_lines(&pp, "var/run/tick.output", "fired tick");
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        count_lines(&pp, "var/run/tick.output", "fired tick"),
        fired,
        "fired after stop"
    );
    for pid in all_pids() {
        if cmdline(pid) == ["sleep", "30"] && proc_env_has(pid, &pp.root_str()) {
            let _ = std::process::Command::new("kill")
                .arg(pid.to_string())
                .status();
        }
    }
}

fn proc_env_has(pid: i32, root: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/environ"))
        .map(|e| String::from_utf8_lossy(&e).contains(root))
        .unwrap_or(false)
}

#[test]
fn cron_skips_an_overlapping_run_and_stop_kills_the_running_one() {
    let pp = Playpen::new();
    pp.service(
        "slow",
        "service_type=cron\nservice_cron_time='* * * * *'\nservice_halt_timeout=2\nservice_cron_command='echo $$ >> var/runs; exec sleep 1000'\n",
    );
    let sup = Sup::start(&pp);
    pp.run(&["start", "slow"]).ok();
    assert!(
        wait_until(PATIENCE, || sup
            .log()
            .contains("is skipped: the previous run is still going")),
        "no skip logged:\n{}",
        sup.log()
    );
    assert_eq!(count_lines(&pp, "var/runs", ""), 1, "a run was doubled");
    let pid: i32 = pp.read("var/runs").trim().parse().unwrap();
    assert!(alive(pid));
    assert_eq!(status_of(&pp, "slow")["handlers"], 1);
    pp.run(&["stop", "slow"]).ok();
    assert!(!alive(pid), "the run survived stop");
    assert_eq!(status_of(&pp, "slow")["state"], "stopped");
}

fn inetd(pp: &Playpen, name: &str, extra: &str, handler: &str) {
    let path = pp.write_exec(&format!("bin/{name}-handler"), handler);
    pp.service(
        name,
        &format!(
            "service_type=inetd\nservice_inetd_command='{}'\n{extra}",
            path.display()
        ),
    );
}

fn fetch(addr: std::net::SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read");
    text
}

fn try_fetch(addr: std::net::SocketAddr) -> Option<String> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    Some(text)
}

#[test]
fn inetd_tcp_runs_a_handler_per_connection_with_remote_addr() {
    let pp = Playpen::with_ports(&[], &[0, 1]);
    let port = pp.port(0);
    inetd(
        &pp,
        "echo",
        &format!("service_port={port}\n"),
        "#!/bin/sh\necho hi $REMOTE_ADDR $REMOTE_PORT\necho to-stderr >&2\n",
    );
    let _sup = Sup::start(&pp);
    pp.run(&["start", "echo"]).ok();
    // Bound when start returned.
    let text = fetch(([127, 0, 0, 1], port).into());
    let words: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(words[..2], ["hi", "127.0.0.1"], "{text}");
    assert!(words[2].parse::<u16>().is_ok(), "{text}");
    assert!(wait_until(PATIENCE, || pp
        .read_or_empty("var/run/echo.output")
        .contains("to-stderr")));
    assert_eq!(status_of(&pp, "echo")["state"], "armed");
    // A second service on the same port: a clear error naming it.
    inetd(
        &pp,
        "clash",
        &format!("service_port={port}\n"),
        "#!/bin/sh\necho no\n",
    );
    pp.run(&["start", "clash"]).fails().says(&[
        &port.to_string(),
        "is already in use",
        "servicectl --playpen",
    ]);
    // Something else holding a port.
    let other = pp.port(1);
    let _held = TcpListener::bind(("127.0.0.1", other)).unwrap();
    inetd(
        &pp,
        "busy",
        &format!("service_port={other}\n"),
        "#!/bin/sh\necho no\n",
    );
    pp.run(&["start", "busy"]).fails().says(&[
        &other.to_string(),
        "is already in use",
        "is held by PID",
    ]);
    pp.run(&["stop", "echo"]).ok();
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "still listening after stop"
    );
}

#[test]
fn inetd_port_may_be_a_typed_port_variable() {
    let pp = Playpen::with_ports(&[], &[0, 3]);
    inetd(
        &pp,
        "typed",
        "service_port=ECHO_PORT\nservice_required_envars=ECHO_PORT\nenvar_ECHO_PORT_type=port\nECHO_PORT_OFFSET=3\n",
        "#!/bin/sh\necho typed\nexec ls -l /proc/self/fd\n",
    );
    let _sup = Sup::start(&pp);
    pp.run(&["start", "typed"]).ok();
    let port = pp.port(3);
    // The handler holds its connection as 0 and 1 and its output as 2 (a pipe to the
    // output keeper, which writes typed.output), and no socket or epoll, signalfd,
    // timerfd of the supervisor's (all close on exec).
    let got = fetch(([127, 0, 0, 1], port).into());
    assert!(got.starts_with("typed"), "{got}");
    assert_eq!(got.matches("socket:").count(), 2, "{got}");
    assert!(!got.contains("anon_inode"), "{got}");
    assert!(got.contains(" 2 -> pipe:"), "{got}");
    let st = status_of(&pp, "typed");
    assert_eq!(st["ports"][0][1], port, "{st}");
    // Started again while armed: it holds its port itself, which is no conflict.
    pp.run(&["start", "typed"]).ok();
    assert!(fetch(([127, 0, 0, 1], port).into()).starts_with("typed"));
}

#[test]
fn inetd_tcp_on_ipv6() {
    if UdpSocket::bind("[::1]:0").is_err() {
        eprintln!("no IPv6 loopback here: skipped");
        return;
    }
    let pp = Playpen::with_ports(&[], &[0]);
    let port = pp.port(0);
    inetd(
        &pp,
        "six",
        &format!("service_port={port}\nservice_bind=::1\n"),
        "#!/bin/sh\necho hi $REMOTE_ADDR\n",
    );
    let _sup = Sup::start(&pp);
    pp.run(&["start", "six"]).ok();
    assert_eq!(
        fetch(format!("[::1]:{port}").parse().unwrap()).trim(),
        "hi ::1"
    );
}

#[test]
fn inetd_handler_that_never_exits_is_ended_on_stop() {
    let pp = Playpen::with_ports(&[], &[0]);
    let port = pp.port(0);
    inetd(
        &pp,
        "hang",
        &format!("service_port={port}\nservice_halt_timeout=2\n"),
        "#!/bin/sh\necho $$\ntrap '' TERM\nexec sleep 1000\n",
    );
    let _sup = Sup::start(&pp);
    pp.run(&["start", "hang"]).ok();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut line = [0u8; 16];
    let n = s.read(&mut line).unwrap();
    let pid: i32 = String::from_utf8_lossy(&line[..n]).trim().parse().unwrap();
    assert!(alive(pid));
    pp.run(&["stop", "hang"]).ok();
    assert!(!alive(pid), "the handler survived stop");
}

#[test]
fn inetd_flood_stays_within_max_and_loses_nothing() {
    let pp = Playpen::with_ports(&[], &[0]);
    let port = pp.port(0);
    inetd(
        &pp,
        "flood",
        &format!("service_port={port}\nservice_inetd_max=64\n"),
        "#!/bin/sh\necho hi\nsleep 0.05\n",
    );
    let sup = Sup::start(&pp);
    pp.run(&["start", "flood"]).ok();
    // Settle the supervisor's own descriptors (a first handler, a status).
    assert_eq!(fetch(([127, 0, 0, 1], port).into()).trim(), "hi");
    let _ = pp.run(&["status", "flood"]);
    let fds_before = sup.fds();
    let sup_pid = sup.pid();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut most = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let n = all_pids()
                    .into_iter()
                    .filter(|&p| {
                        stat_fields(p).is_some_and(|f| f[1] == sup_pid.to_string() && f[0] != "Z")
                            && cmdline(p).iter().any(|a| a.ends_with("flood-handler"))
                    })
                    .count();
                most = most.max(n);
            }
            most
        })
    };
    let clients: Vec<_> = (0..100)
        .map(|_| {
            std::thread::spawn(move || {
                (0..10)
                    .filter(|_| {
                        try_fetch(([127, 0, 0, 1], port).into()).is_some_and(|t| t.trim() == "hi")
                    })
                    .count()
            })
        })
        .collect();
    // It answers status throughout (exit code aside: see the report on armed).
    for _ in 0..3 {
        pp.run(&["status", "flood"]).no_panic().out_says(&["armed"]);
    }
    let answered: usize = clients.into_iter().map(|c| c.join().unwrap()).sum();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let most = watcher.join().unwrap();
    assert_eq!(answered, 1000, "connections lost:\n{}", sup.log());
    assert!(most <= 64, "{most} handlers at once");
    assert!(most > 1, "no concurrency seen ({most})");
    assert!(
        wait_until(PATIENCE, || sup.fds() <= fds_before),
        "descriptors leaked: {} before, {} after",
        fds_before,
        sup.fds()
    );
}

#[test]
fn inetd_udp_hands_the_socket_to_one_handler_at_a_time() {
    let pp = Playpen::with_ports(&[], &[0]);
    let port = pp.port(0);
    inetd(
        &pp,
        "dgram",
        &format!("service_port={port}\nservice_protocol=udp\n"),
        "#!/bin/sh\necho start >> var/udp.log\nsleep 0.3\nhead -c 1 >/dev/null\necho end >> var/udp.log\n",
    );
    let sup = Sup::start(&pp);
    pp.run(&["start", "dgram"]).ok();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    for _ in 0..3 {
        client.send_to(b"x", ("127.0.0.1", port)).unwrap();
    }
    assert!(
        wait_until(PATIENCE, || count_lines(&pp, "var/udp.log", "end") == 3),
        "{}\n{}",
        pp.read_or_empty("var/udp.log"),
        sup.log()
    );
    let log = pp.read("var/udp.log");
    assert_eq!(log, "start\nend\n".repeat(3), "handlers overlapped");
}

#[test]
fn bad_cron_and_inetd_settings_are_refused_by_check_and_start() {
    let pp = Playpen::new();
    let cases = [
        (
            "service_type=inetd\nservice_port=0\nservice_inetd_command=cat\n",
            "service_port",
        ),
        (
            "service_type=inetd\nservice_port=70000\nservice_inetd_command=cat\n",
            "service_port",
        ),
        (
            "service_type=inetd\nservice_port=7000\nservice_protocol=sctp\nservice_inetd_command=cat\n",
            "service_protocol",
        ),
        (
            "service_type=inetd\nservice_port=7000\n",
            "service_inetd_command",
        ),
        (
            "service_type=cron\nservice_cron_time='61 * * * *'\nservice_cron_command=date\n",
            "minute",
        ),
    ];
    for (config, says) in cases {
        pp.service("bad", config);
        pp.run(&["check", "bad"]).fails().says(&[says]);
        pp.run(&["start", "bad"]).fails().says(&[says]);
    }
    let _sup = Sup::start(&pp);
    for (config, says) in cases {
        pp.service("bad", config);
        pp.run(&["start", "bad"]).fails().says(&[says]);
    }
}

#[test]
fn cron_at_reboot_runs_once_when_armed() {
    let pp = Playpen::new();
    pp.service(
        "boot",
        "service_type=cron\nservice_cron_time=@reboot\nservice_cron_command='echo booted'\n",
    );
    let _sup = Sup::start(&pp);
    pp.run(&["start", "boot"]).ok();
    assert!(wait_until(PATIENCE, || count_lines(
        &pp,
        "var/run/boot.output",
        "booted"
    ) == 1));
    let st = status_of(&pp, "boot");
    assert_eq!(st["state"], "armed", "{st}");
    assert!(st.get("next_run").is_none_or(|v| v.is_null()), "{st}");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(count_lines(&pp, "var/run/boot.output", "booted"), 1);
    // Armed again after a stop: once more.
    pp.run(&["stop", "boot"]).ok();
    pp.run(&["start", "boot"]).ok();
    assert!(wait_until(PATIENCE, || count_lines(
        &pp,
        "var/run/boot.output",
        "booted"
    ) == 2));
}

#[test]
fn restart_of_an_armed_service_rearms_it_and_says_restarted() {
    let pp = Playpen::with_ports(&[], &[0]);
    let port = pp.port(0);
    inetd(
        &pp,
        "echo",
        &format!("service_port={port}\n"),
        "#!/bin/sh\necho hi\n",
    );
    let _sup = Sup::start(&pp);
    pp.run(&["start", "echo"]).ok();
    assert_eq!(fetch(([127, 0, 0, 1], port).into()).trim(), "hi");
    pp.run(&["restart", "echo"])
        .ok()
        .shows(&pp, "echo: restarted\n");
    // Armed again, on the same port, at once.
    assert_eq!(status_of(&pp, "echo")["state"], "armed");
    assert_eq!(fetch(([127, 0, 0, 1], port).into()).trim(), "hi");
}

/// service_user (§13.1) holds for the handlers the supervisor forks: an inetd handler
/// of a service with service_user=nobody answers as uid 65534.
#[test]
fn inetd_handlers_run_as_the_service_user() {
    needs_root("to run a service as another user (nobody)");
    let pp = Playpen::with_ports(&[], &[0]);
    std::fs::set_permissions(
        &pp.root,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let port = pp.port(0);
    inetd(
        &pp,
        "who",
        &format!("service_port={port}\nservice_user=nobody\n"),
        "#!/bin/sh\necho \"uid $(id -u) gid $(id -g) home $HOME\"\n",
    );
    let _sup = Sup::start(&pp);
    pp.run(&["start", "who"]).ok();
    assert_eq!(
        fetch(([127, 0, 0, 1], port).into()),
        "uid 65534 gid 65534 home /nonexistent\n"
    );
    pp.run(&["stop", "who"]).ok();
}

//! `servicectl run [NAME…] -- CMD` (SPEC §12.1) with the real redis-server and the
//! real redis-cli: the services up and ready around one command, CMD's exit status, its
//! stdin, signals, what ran before left running, a service that never becomes ready,
//! and the same under a supervisor.

use crate::common::*;
use std::io::Write;
use std::process::Stdio;

/// A playpen with the redis sample package; its role lists redis.
fn redis_playpen() -> Playpen {
    let pp = Playpen::with_ports(&["redis"], &[79]);
    pp.install(&sample("redis")).ok();
    pp
}

/// `servicectl run ARGS…` in the playpen.
fn run(pp: &Playpen, args: &[&str]) -> Out {
    let mut all = vec!["run"];
    all.extend_from_slice(args);
    pp.run_timeout(&all, 60)
}

const PING: &[&str] = &[
    "redis",
    "--",
    "sh",
    "-c",
    "redis-cli -p \"$REDIS_PORT\" ping",
];

#[test]
fn run_brings_redis_up_for_the_command_then_stops_it() {
    let pp = redis_playpen();
    let out = run(&pp, PING);
    out.ok();
    assert_eq!(out.stdout, "PONG\n");
    assert_golden(
        &pp,
        "run's stderr",
        &out.stderr,
        "servicectl run: redis: stopped (pid {PID}) (this run had started it)\n",
    );
    assert!(pp.pid("redis").is_none(), "redis was stopped after the run");
    assert!(
        port_closed(pp.port(79)),
        "nothing listens on redis's port any more"
    );
    // The same as a JSON summary after the command's output.
    let out = pp.run_timeout(&["--json", "run", "redis", "--", "true"], 60);
    out.ok();
    assert_golden(
        &pp,
        "run --json",
        &out.stdout,
        "{\n  \"errors\": [],\n  \"started\": [\n    \"redis\"\n  ],\n  \"status\": 0,\n  \"stopped\": [\n    {\n      \"pid\": \"{PID}\",\n      \"result\": \"stopped\",\n      \"service\": \"redis\"\n    }\n  ],\n  \"supervised\": false\n}\n",
    );
}

#[test]
fn run_exits_with_the_commands_status_and_leaves_what_ran_before_running() {
    let pp = redis_playpen();
    pp.start(&["redis"]);
    let before = pp.pid("redis").expect("redis runs");
    let out = run(
        &pp,
        &[
            "--",
            "sh",
            "-c",
            "redis-cli -p \"$REDIS_PORT\" ping; exit 7",
        ],
    );
    out.code_is(7);
    assert_eq!(out.stdout, "PONG\n");
    assert_eq!(out.stderr, "", "nothing was started, so nothing is stopped");
    assert_eq!(
        pp.pid("redis"),
        Some(before),
        "redis ran before: it runs on"
    );
}

#[test]
fn run_passes_stdin_through_to_the_command() {
    let pp = redis_playpen();
    let mut child = pp
        .command()
        .args(["run", "redis", "--", "sh", "-c"])
        .arg("redis-cli -p \"$REDIS_PORT\" -x set greeting >/dev/null && redis-cli -p \"$REDIS_PORT\" get greeting")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn servicectl run");
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(b"hello from stdin")
        .expect("write stdin");
    let output = child.wait_with_output().expect("wait");
    let out = Out::from_output(output, std::time::Duration::ZERO, "run with stdin".into());
    out.ok();
    assert_eq!(out.stdout, "hello from stdin\n");
}

#[test]
fn sigint_goes_to_the_command_then_the_services_are_stopped_and_run_exits_130() {
    let pp = redis_playpen();
    let marker = pp.path("var/cmd-runs");
    let child = spawn_piped(pp.command().args([
        "run",
        "redis",
        "--",
        "sh",
        "-c",
        "touch \"$LOCAL_VAR/cmd-runs\"; exec sleep 1000",
    ]));
    assert!(
        wait_until(PATIENCE, || marker.exists()),
        "the command did not start"
    );
    kill(child.id() as i32, nix::sys::signal::Signal::SIGINT);
    let output = child.wait_with_output().expect("wait");
    let out = Out::from_output(output, std::time::Duration::ZERO, "run -- sleep".into());
    out.code_is(130);
    assert_golden(
        &pp,
        "run's stderr after SIGINT",
        &out.stderr,
        "servicectl run: redis: stopped (pid {PID}) (this run had started it)\n",
    );
    assert!(
        pp.pid("redis").is_none(),
        "redis was stopped after the command"
    );
}

#[test]
fn a_service_that_never_becomes_ready_is_stopped_and_the_command_never_runs() {
    let pp = Playpen::new();
    pp.role_config("playpen_services=\"stuck\"\n");
    pp.sleeper_service("stuck", "service_ready_timeout=1");
    pp.write_exec(
        "services/stuck/ping",
        "#!/bin/sh\necho 'no answer on its port'\nexit 1\n",
    );
    let out = run(&pp, &["--", "touch", "var/cmd-ran"]);
    out.code_is(1);
    assert_golden(
        &pp,
        "run's stderr for a service that is never ready",
        &out.stderr,
        "servicectl: stuck: not ready within 1 s (exited with status 1: no answer on its port), so the command was not run — see `servicectl logs stuck` and `servicectl status stuck`\nservicectl run: stuck: stopped (pid {PID}) (this run had started it)\n",
    );
    assert!(!pp.exists("var/cmd-ran"), "the command did not run");
    assert!(
        pp.pid("stuck").is_none(),
        "what the run started was stopped"
    );
}

#[test]
fn run_without_the_separator_says_where_the_command_goes() {
    let pp = redis_playpen();
    let out = pp.run(&["run", "redis-cli", "ping"]);
    out.code_is(2);
    assert_eq!(
        out.stderr,
        "servicectl: run: no command: the command to run goes after `--` — write `servicectl run [NAME…] -- CMD [ARG…]`, e.g. `servicectl run -- redis-cli ping` (names before `--` are services)\n"
    );
    assert_eq!(out.stdout, "");
    assert!(pp.pid("redis").is_none(), "nothing was started");
}

#[test]
fn under_a_supervisor_run_starts_waits_and_stops_through_it() {
    let pp = redis_playpen();
    pp.run(&["supervise", "--daemon", "--no-start"]).ok();
    let out = run(&pp, PING);
    out.ok();
    assert_eq!(out.stdout, "PONG\n");
    assert_golden(
        &pp,
        "run's stderr under a supervisor",
        &out.stderr,
        "servicectl run: redis: stopped (pid {PID}) (this run had started it)\n",
    );
    let status = pp.run(&["status", "--json"]);
    assert_eq!(status.json()[0]["state"], "stopped", "{status}");
    assert_eq!(
        status.json()[0]["restarts"],
        0,
        "a stop on purpose: no restart"
    );
    pp.run(&["shutdown"]).ok();
}

#[test]
fn a_signal_before_the_command_runs_cancels_the_run_and_stops_what_it_started() {
    let pp = Playpen::new();
    pp.role_config("playpen_services=\"gated\"\n");
    pp.sleeper_service("gated", "service_ready_timeout=30");
    // Ready once the test says so; each check leaves a mark, so the signal is sent
    // once the start is over and run waits.
    pp.write_exec(
        "services/gated/ping",
        "#!/bin/sh\ntouch \"$LOCAL_VAR/pinged\"\ntest -e \"$LOCAL_VAR/go\" || { echo 'not yet'; exit 1; }\n",
    );
    let child = spawn_piped(pp.command().args(["run", "--", "touch", "var/cmd-ran"]));
    assert!(
        wait_until(PATIENCE, || pp.exists("var/pinged")),
        "run did not wait for gated"
    );
    kill(child.id() as i32, nix::sys::signal::Signal::SIGTERM);
    pp.write("var/go", "");
    let output = child.wait_with_output().expect("wait");
    let out = Out::from_output(output, std::time::Duration::ZERO, "run -- touch".into());
    out.code_is(143);
    assert_golden(
        &pp,
        "run's stderr after a signal before the command",
        &out.stderr,
        "servicectl: servicectl received SIGTERM before the command ran, so it was not run — what this run had started is stopped\nservicectl run: gated: stopped (pid {PID}) (this run had started it)\n",
    );
    assert!(!pp.exists("var/cmd-ran"), "the command did not run");
    assert!(pp.pid("gated").is_none(), "gated was stopped");
}

#[test]
fn run_and_playpens_complete_and_a_command_after_the_separator_is_left_to_the_shell() {
    let pp = redis_playpen();
    let complete = |words: &[&str]| {
        let mut args = vec!["__complete", "--"];
        args.extend_from_slice(words);
        let out = pp.run(&args);
        out.ok();
        out.stdout
    };
    assert_eq!(complete(&["r"]), "restart\nremove-service\nrun\n");
    assert_eq!(complete(&["pl"]), "playpens\n");
    assert_eq!(complete(&["run", "re"]), "redis\n");
    assert_eq!(complete(&["run", "redis", "--", "re"]), "__files__\n");
}

#[test]
fn a_command_that_cannot_be_started_exits_127_and_the_services_are_stopped() {
    let pp = redis_playpen();
    let out = run(&pp, &["redis", "--", "no-such-command-for-servicectl-run"]);
    out.code_is(127);
    assert_golden(
        &pp,
        "run's stderr for a command that is not found",
        &out.stderr,
        "servicectl: cannot run no-such-command-for-servicectl-run: No such file or directory (os error 2) — check the command after `--` (is it on PATH, executable?)\nservicectl run: redis: stopped (pid {PID}) (this run had started it)\n",
    );
    assert!(pp.pid("redis").is_none(), "redis was stopped");
}

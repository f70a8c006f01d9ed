//! The supervisor's output keeper (SPEC §9.4, docs/supervisor.md "Output"): services
//! under the supervisor write into pipes; one keeper process per playpen writes their
//! files and rotates them by rename at line ends. Nothing a service writes is lost,
//! doubled or torn across rotations, nor across a kill -9 of the supervisor.

use crate::common::*;

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::process::{Child, Stdio};
use std::time::Duration;

/// A foreground `servicectl supervise`, killed (SIGKILL) on drop.
struct Sup {
    child: Child,
    log: std::path::PathBuf,
}

impl Sup {
    #[track_caller]
    fn start(pp: &Playpen) -> Sup {
        let log = pp.path("var/keeper.test.log");
        std::fs::create_dir_all(log.parent().unwrap()).unwrap();
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = pp
            .command()
            .arg("supervise")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("spawn supervise");
        let socket = pp.path("var/run/servicectl.sock");
        assert!(
            wait_until(PATIENCE, || UnixStream::connect(&socket).is_ok()),
            "the supervisor does not listen:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        Sup { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Sup {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The live output keepers of this playpen (`servicectl --playpen ROOT keep-output`).
fn keepers(pp: &Playpen) -> Vec<i32> {
    let root = pp.root_str();
    all_pids()
        .into_iter()
        .filter(|&p| alive(p))
        .filter(|&p| {
            let args = cmdline(p);
            args.iter().any(|a| a == "keep-output") && args.contains(&root)
        })
        .collect()
}

/// The PID in var/run/servicectl.keeper.pid.
fn keeper_on_record(pp: &Playpen) -> Option<i32> {
    pp.read_or_empty("var/run/servicectl.keeper.pid")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// How many rotated files `NAME.output.K` exist (K = 1, 2, … without a gap).
fn rotated(pp: &Playpen, name: &str) -> u32 {
    let mut k = 0;
    while pp.exists(&format!("var/run/{name}.output.{}", k + 1)) {
        k += 1;
    }
    k
}

/// bin/numbers: numbered lines, fast, each written with one write(2) (whole lines
/// are atomic in a pipe): `N <N mod 150 x's> N`, so a torn line shows.
fn numbers_program(pp: &Playpen, per_burst: u32, pause: f64) {
    pp.write_exec(
        "bin/numbers",
        &format!(
            "#!/usr/bin/env python3\n\
             import os, time\n\
             n = 0\n\
             while True:\n\
             \x20   for _ in range({per_burst}):\n\
             \x20       n += 1\n\
             \x20       os.write(1, ('%d %s %d\\n' % (n, 'x' * (n % 150), n)).encode())\n\
             \x20   time.sleep({pause})\n"
        ),
    );
}

/// The numbers of `text`'s whole lines; each torn line is added to `torn`.
fn numbers_in(text: &str, file: &str, torn: &mut Vec<String>) -> Vec<u64> {
    let mut numbers = Vec::new();
    for line in text.lines() {
        let parts: Vec<&str> = line.split(' ').collect();
        match parts[0].parse::<u64>() {
            Ok(n)
                if parts.len() == 3
                    && parts[1] == "x".repeat((n % 150) as usize)
                    && parts[2] == n.to_string() =>
            {
                numbers.push(n)
            }
            _ => torn.push(format!("{file}: {:?}", &line[..line.len().min(60)])),
        }
    }
    numbers
}

#[test]
fn rotation_across_a_killed_supervisor_loses_doubles_and_tears_no_line() {
    let pp = Playpen::with_ports(&["num"], &[]);
    numbers_program(&pp, 1000, 0.0);
    pp.service(
        "num",
        "service_program=numbers\nservice_log_max_bytes=65536\nservice_log_keep=100000\nservice_halt_timeout=5\n",
    );
    let mut sup = Sup::start(&pp);
    assert!(
        wait_until(Duration::from_secs(60), || rotated(&pp, "num") >= 12),
        "no rotations: {}\n{}",
        rotated(&pp, "num"),
        sup.log()
    );
    let keeper = keeper_on_record(&pp);
    // Killed in the middle of the writing: the keeper goes on without it.
    sup.kill9();
    let while_away = rotated(&pp, "num");
    std::thread::sleep(Duration::from_millis(700));
    pp.run(&["supervise", "--daemon"]).ok();
    // (A start through it returns once it knows the configuration: a shutdown before
    // that cannot stop what it adopted.)
    pp.run(&["start", "num"]).ok();
    let (keeper_after, running_keepers) = (keeper_on_record(&pp), keepers(&pp));
    assert!(
        wait_until(Duration::from_secs(60), || rotated(&pp, "num")
            >= while_away + 12),
        "no rotations after the restart: {}\n{}",
        rotated(&pp, "num"),
        pp.read_or_empty("var/run/servicectl.supervise.output")
    );
    pp.run(&["shutdown"]).ok();
    // The keeper writes what is left in the pipes, then exits.
    let keepers_gone = wait_until(PATIENCE, || keepers(&pp).is_empty());
    // Every file, oldest first: 1..=last, none missing, none twice, all whole.
    let k = rotated(&pp, "num");
    assert!(k >= 20, "only {k} rotations");
    let mut all = Vec::new();
    let mut sizes = Vec::new();
    let (mut torn, mut mid_line) = (Vec::new(), Vec::new());
    for i in (1..=k).rev() {
        let rel = format!("var/run/num.output.{i}");
        let text = pp.read(&rel);
        if !text.ends_with('\n') {
            mid_line.push(rel.clone());
        }
        sizes.push((rel.clone(), text.len()));
        all.extend(numbers_in(&text, &rel, &mut torn));
    }
    all.extend(numbers_in(
        &pp.read("var/run/num.output"),
        "num.output",
        &mut torn,
    ));
    let last = *all.iter().max().expect("lines");
    let seen: std::collections::BTreeSet<u64> = all.iter().copied().collect();
    let missing: Vec<u64> = (1..=last).filter(|n| !seen.contains(n)).collect();
    let out_of_order: Vec<&[u64]> = all.windows(2).filter(|w| w[1] != w[0] + 1).collect();
    assert!(
        missing.is_empty() && out_of_order.is_empty() && torn.is_empty() && mid_line.is_empty(),
        "of {last} lines in {k} rotated files: {} lost {:?}; {} doubled or out of order {:?}; \
         {} torn {:?}; rotated files ending in mid-line: {mid_line:?}",
        missing.len(),
        &missing[..missing.len().min(10)],
        out_of_order.len(),
        &out_of_order[..out_of_order.len().min(5)],
        torn.len(),
        &torn[..torn.len().min(5)],
    );
    assert!(last > 20 * 65536 / 160, "{last} lines");
    // Rotated at the limit, also while no supervisor ran (a line may go past it).
    for (rel, size) in sizes {
        assert!((65536..=2 * 65536).contains(&size), "{rel}: {size} bytes");
    }
    // One keeper: the new supervisor connected to the one that ran on.
    let keeper = keeper.expect("the keeper is on record");
    assert_eq!(keeper_after, Some(keeper));
    assert_eq!(running_keepers, [keeper], "one keeper");
    // After the shutdown no keeper is left, nor its files.
    assert!(keepers_gone, "keepers left: {:?}", keepers(&pp));
    assert!(!pp.exists("var/run/servicectl.keeper.pid"));
    assert!(!pp.exists("var/run/servicectl.keeper.sock"));
}

#[test]
fn one_keeper_per_playpen_and_none_after_shutdown() {
    let pp = Playpen::with_ports(&["a"], &[]);
    pp.sleeper_service("a", "");
    let mut sup = Sup::start(&pp);
    assert!(
        wait_until(PATIENCE, || keeper_on_record(&pp).is_some()
            && pp.exists("var/run/a.pid")),
        "{}",
        sup.log()
    );
    let keeper = keepers(&pp);
    assert_eq!(keeper.len(), 1, "{keeper:?}");
    assert_eq!(keeper_on_record(&pp), Some(keeper[0]));
    // Idle (a service that writes nothing), it wakes for nothing: one thread, asleep.
    let switches = || {
        std::fs::read_to_string(format!("/proc/{}/status", keeper[0]))
            .unwrap()
            .lines()
            .filter(|l| l.contains("ctxt_switches"))
            .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum::<u64>()
    };
    std::thread::sleep(Duration::from_millis(200));
    let before = switches();
    std::thread::sleep(Duration::from_secs(1));
    assert!(switches() - before <= 1, "the idle keeper woke up");
    let status = std::fs::read_to_string(format!("/proc/{}/status", keeper[0])).unwrap();
    assert!(status.contains("Threads:\t1\n"), "{status}");
    // Its own session: a kill of the supervisor's process group does not reach it.
    let sid = |pid: i32| stat_fields(pid).map(|f| f[3].clone());
    assert_eq!(sid(keeper[0]), Some(keeper[0].to_string()));
    sup.kill9();
    assert!(alive(keeper[0]), "the keeper died with the supervisor");
    let _sup = Sup::start(&pp);
    assert_eq!(keepers(&pp), keeper, "a second keeper was started");
    // (Once the new supervisor knows its configuration, which a start through it
    // waits for: a shutdown before that cannot stop what it adopted.)
    pp.run(&["start", "a"]).ok();
    pp.run(&["shutdown"]).ok();
    assert_dies(keeper[0], "the output keeper after shutdown");
    assert!(keepers(&pp).is_empty());
}

#[test]
fn logs_follow_prints_every_line_once_across_rename_rotations() {
    let pp = Playpen::with_ports(&["talk"], &[]);
    numbers_program(&pp, 5, 0.002);
    pp.service(
        "talk",
        "service_program=numbers\nservice_log_max_bytes=4K\nservice_log_keep=1000\n",
    );
    let sup = Sup::start(&pp);
    assert!(
        wait_until(PATIENCE, || pp.exists("var/run/talk.output.1")),
        "{}",
        sup.log()
    );
    let before = rotated(&pp, "talk");
    let mut follower = spawn_piped(pp.command().args(["logs", "-f", "-n", "0", "talk"]));
    let mut stdout = follower.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = Vec::new();
        let mut buf = [0u8; 4096];
        while text.len() < 60_000 {
            match stdout.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => text.extend_from_slice(&buf[..n]),
            }
        }
        String::from_utf8_lossy(&text).into_owned()
    });
    let text = reader.join().unwrap();
    let _ = follower.kill();
    let _ = follower.wait();
    assert!(
        rotated(&pp, "talk") >= before + 5,
        "too few rotations while following"
    );
    // Whole lines only (the last may be cut by the reader's limit).
    let whole = &text[..=text.rfind('\n').unwrap()];
    let mut torn = Vec::new();
    let numbers = numbers_in(whole, "logs -f", &mut torn);
    assert!(torn.is_empty(), "torn: {torn:?}");
    assert!(numbers.len() > 300, "{text}");
    let gaps: Vec<&[u64]> = numbers.windows(2).filter(|w| w[1] != w[0] + 1).collect();
    assert!(gaps.is_empty(), "lost or doubled: {gaps:?}");
}

#[test]
fn a_killed_keeper_is_replaced_and_given_the_pipes_so_services_write_on() {
    let pp = Playpen::with_ports(&["num"], &[]);
    numbers_program(&pp, 20, 0.002);
    pp.service(
        "num",
        "service_program=numbers\nservice_log_max_bytes=16K\nservice_log_keep=100000\n",
    );
    // Started by a supervisor that was killed: the new one holds copies of the read
    // ends it took from the keeper that ran on.
    let mut first = Sup::start(&pp);
    assert!(
        wait_until(PATIENCE, || rotated(&pp, "num") >= 1),
        "{}",
        first.log()
    );
    first.kill9();
    let sup = Sup::start(&pp);
    let service: i32 = pp.read("var/run/num.pid").trim().parse().unwrap();
    let old = keeper_on_record(&pp).expect("a keeper on record");
    kill(old, nix::sys::signal::Signal::SIGKILL);
    assert!(
        wait_until(PATIENCE, || keeper_on_record(&pp)
            .is_some_and(|k| k != old && alive(k))),
        "no new keeper:\n{}\n{}",
        sup.log(),
        pp.read_or_empty("var/run/servicectl.keeper.output")
    );
    let new = keeper_on_record(&pp).unwrap();
    assert_eq!(keepers(&pp), [new]);
    assert!(sup.log().contains("keeps the output now"), "{}", sup.log());
    // The service writes on (no SIGPIPE), into files the new keeper rotates.
    let now = rotated(&pp, "num");
    assert!(
        wait_until(PATIENCE, || rotated(&pp, "num") >= now + 3),
        "no rotation after the keeper died:\n{}",
        pp.read_or_empty("var/run/servicectl.keeper.output")
    );
    assert!(alive(service), "the service died with its keeper");
    assert_eq!(pp.read("var/run/num.pid").trim(), service.to_string());
    pp.run(&["shutdown"]).ok();
    assert!(wait_until(PATIENCE, || keepers(&pp).is_empty()));
}

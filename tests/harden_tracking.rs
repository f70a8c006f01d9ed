//! Every process is tracked, always: a process servicectl starts is
//! on record before it can outlive servicectl, whatever happens to servicectl or to the
//! service; processes of another playpen are never taken for ours; stop leaves no
//! descendant of a service behind.
//!
//! "On record" means: the service's pidfile names it, so `status` reports it and `stop`
//! stops it. The processes of a playpen are found the way the product finds them, by
//! the PLAYPEN_ROOT and SERVICE_NAME in /proc/PID/environ.

use crate::common::*;

use nix::sys::signal::Signal;
use std::process::Child;
use std::time::{Duration, Instant};

/// Live processes started for a service of this playpen: (PID, service name).
fn service_processes(pp: &Playpen) -> Vec<(i32, String)> {
    let mut found: Vec<(i32, String)> = pp
        .processes()
        .into_iter()
        .filter_map(|pid| Some((pid, env_of(pid, "SERVICE_NAME")?)))
        .collect();
    found.sort();
    found
}

/// Live processes of `service` in this playpen.
fn processes_of(pp: &Playpen, service: &str) -> Vec<i32> {
    service_processes(pp)
        .into_iter()
        .filter(|(_, name)| name == service)
        .map(|(pid, _)| pid)
        .collect()
}

/// Service processes that no pidfile names (each test service is one process).
fn off_record(pp: &Playpen) -> Vec<(i32, String)> {
    service_processes(pp)
        .into_iter()
        .filter(|(pid, name)| pp.pid(name) != Some(*pid))
        .collect()
}

fn pidfile_count(pp: &Playpen) -> usize {
    std::fs::read_dir(pp.path("var/run"))
        .map(|dir| {
            dir.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".pid"))
                .count()
        })
        .unwrap_or(0)
}

/// Wait for a child servicectl and collect what it printed.
fn finish(child: Child, started: Instant, what: &str) -> Out {
    let output = child.wait_with_output().expect("wait for servicectl");
    Out::from_output(output, started.elapsed(), what.to_string())
}

const SERVICES: usize = 50;

/// A playpen whose role lists 50 sleeper services.
fn fifty_services() -> (Playpen, Vec<String>) {
    let pp = Playpen::new();
    let names: Vec<String> = (0..SERVICES).map(|i| format!("s{i:02}")).collect();
    for name in &names {
        pp.sleeper_service(name, "service_start_grace=0.1\nservice_halt_timeout=3\n");
    }
    pp.role_config(&format!("playpen_services=\"{}\"\n", names.join(" ")));
    (pp, names)
}

/// When the signal is sent to `servicectl start`.
#[derive(Debug, Clone, Copy)]
enum Moment {
    /// This long after launching it.
    After(u64),
    /// As soon as this many pidfiles exist (whatever the machine's speed).
    Pidfiles(usize),
}

/// `servicectl start` of every service, sent `sig` at `moment`.
fn interrupted_start(pp: &Playpen, sig: Signal, moment: Moment) -> Out {
    let started = Instant::now();
    let mut child = spawn_piped(pp.command().arg("start"));
    let pid = child.id() as i32;
    let deadline = started + PATIENCE;
    loop {
        let due = match moment {
            Moment::After(ms) => started.elapsed() >= Duration::from_millis(ms),
            Moment::Pidfiles(n) => pidfile_count(pp) >= n,
        };
        if due || Instant::now() > deadline || !matches!(child.try_wait(), Ok(None)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    kill(pid, sig);
    finish(
        child,
        started,
        &format!("servicectl start (sent {sig:?} at {moment:?})"),
    )
}

/// How the test checks the next command's recovery.
#[derive(Debug, Clone, Copy)]
enum Recovery {
    Status,
    Start,
    Stop,
}

/// Send `sig` to `servicectl start` of 50 services at each of `moments`; after each,
/// the next command (status, start or stop in turn) finds every process the
/// interrupted start left, and nothing is doubled or left running.
fn killed_mid_start(sig: Signal, moments: &[Moment]) {
    let (pp, names) = fifty_services();
    for (round, moment) in moments.iter().enumerate() {
        let out = interrupted_start(&pp, sig, *moment);
        let context = format!("round {round}, {sig:?} at {moment:?}:\n{out}");
        out.no_panic();
        if sig != Signal::SIGKILL {
            // Handled: the starts in flight were finished (or rolled back) and recorded.
            // (Only a signal that comes before servicectl has begun anything, while the
            // process starts up, may end it.)
            if out.code == 128 + sig as i32 {
                assert_eq!(
                    service_processes(&pp),
                    [],
                    "servicectl died of {sig:?} instead of finishing what it began; {context}"
                );
            }
            if out.code != 128 + sig as i32 {
                out.fails().says(&[sig.as_str()]);
            }
            assert_eq!(
                off_record(&pp),
                [],
                "processes left off record by the interrupted start; {context}"
            );
        }
        let recovery = [Recovery::Status, Recovery::Start, Recovery::Stop][round % 3];
        match recovery {
            Recovery::Status => {
                pp.run(&["status"]).no_panic();
                assert_eq!(
                    off_record(&pp),
                    [],
                    "status did not recover every process of the interrupted start; {context}"
                );
                for (pid, name) in service_processes(&pp) {
                    pp.run(&["status", &name])
                        .ok()
                        .says(&["running", &pid.to_string()]);
                }
                pp.run(&["start"]).ok();
            }
            Recovery::Start => {
                pp.run(&["start"]).ok();
            }
            Recovery::Stop => {}
        }
        if !matches!(recovery, Recovery::Stop) {
            for name in &names {
                let pids = processes_of(&pp, name);
                assert_eq!(
                    pids.len(),
                    1,
                    "{name} runs {pids:?} after the next start; {context}"
                );
                assert_eq!(pp.pid(name), Some(pids[0]), "{name}; {context}");
            }
        }
        pp.run(&["stop"]).ok();
        assert_eq!(
            service_processes(&pp),
            [],
            "left running after stop ({recovery:?} recovered); {context}"
        );
        assert_eq!(pidfile_count(&pp), 0, "{context}");
    }
}

#[test]
fn sigkill_mid_start_is_recovered_by_the_next_command() {
    killed_mid_start(
        Signal::SIGKILL,
        &[
            Moment::After(40),
            Moment::Pidfiles(1),
            Moment::After(80),
            Moment::Pidfiles(8),
            Moment::Pidfiles(20),
            Moment::Pidfiles(35),
        ],
    );
}

#[test]
fn sigterm_mid_start_finishes_what_it_began_and_starts_nothing_new() {
    killed_mid_start(
        Signal::SIGTERM,
        &[
            Moment::After(60),
            Moment::Pidfiles(2),
            Moment::Pidfiles(12),
            Moment::Pidfiles(30),
        ],
    );
}

#[test]
fn sighup_mid_start_finishes_what_it_began_and_starts_nothing_new() {
    killed_mid_start(
        Signal::SIGHUP,
        &[
            Moment::After(50),
            Moment::Pidfiles(4),
            Moment::Pidfiles(16),
            Moment::Pidfiles(40),
        ],
    );
}

/// The widest window: the program runs, servicectl waits for it to write its pidfile.
/// Killed there, servicectl leaves a process that nothing but the next command can find.
#[test]
fn killed_while_waiting_for_the_program_s_pidfile() {
    let pp = Playpen::new();
    pp.install_sleep("bin/sleeper");
    // It writes its pidfile once the test creates var/go.
    pp.write_exec(
        "bin/slowpid",
        "#!/bin/sh\n\
         while [ ! -e \"$LOCAL_VAR/go\" ]; do sleep 0.05; done\n\
         echo $$ > \"$SERVICE_PIDFILE\"\n\
         exec \"$PLAYPEN_ROOT/bin/sleeper\" 1000\n",
    );
    pp.service(
        "web",
        "service_program=slowpid\nservice_makes_own_pidfile=1\nservice_pidfile_timeout=60\nservice_halt_timeout=3\n",
    );
    let rounds = [
        (Signal::SIGKILL, Recovery::Status),
        (Signal::SIGTERM, Recovery::Status),
        (Signal::SIGKILL, Recovery::Stop),
        (Signal::SIGHUP, Recovery::Stop),
        (Signal::SIGKILL, Recovery::Start),
    ];
    for (round, (sig, recovery)) in rounds.into_iter().enumerate() {
        let started = Instant::now();
        let child = spawn_piped(pp.command().args(["start", "web"]));
        assert!(
            wait_until(PATIENCE, || processes_of(&pp, "web").len() == 1),
            "web did not start"
        );
        let orphan = processes_of(&pp, "web")[0];
        kill(child.id() as i32, sig);
        let out = finish(child, started, "servicectl start web");
        let context = format!("round {round}, {sig:?}:\n{out}");
        if sig != Signal::SIGKILL {
            // Interrupted while waiting: rolled back, and says why.
            out.fails().says(&[sig.as_str()]);
            assert!(!alive(orphan), "web still runs after {sig:?}; {context}");
            assert_eq!(processes_of(&pp, "web"), Vec::<i32>::new(), "{context}");
            continue;
        }
        match recovery {
            Recovery::Status => {
                // Not "stopped" while it runs: adopted, or stopped for good.
                let status = pp.run(&["status", "web"]);
                status.no_panic();
                assert_eq!(off_record(&pp), [], "{context}\n{status}");
                if status.stdout.contains("stopped") {
                    assert!(
                        !alive(orphan),
                        "status calls web stopped while PID {orphan} runs; {context}\n{status}"
                    );
                }
            }
            Recovery::Start => {
                std::fs::write(pp.path("var/go"), "").unwrap();
                pp.run(&["start", "web"]).ok();
                assert!(
                    wait_until(PATIENCE, || processes_of(&pp, "web").len() == 1),
                    "web runs {:?}; {context}",
                    processes_of(&pp, "web")
                );
                assert_eq!(off_record(&pp), [], "{context}");
                pp.run(&["status", "web"]).ok();
            }
            Recovery::Stop => {}
        }
        pp.run(&["stop", "web"]).ok();
        assert_eq!(processes_of(&pp, "web"), Vec::<i32>::new(), "{context}");
        assert!(!alive(orphan), "PID {orphan} survived stop; {context}");
    }
}

/// The PIDs that ask for a lock and wait for it (the "->" lines of /proc/locks).
fn blocked_on_a_lock() -> Vec<i32> {
    std::fs::read_to_string("/proc/locks")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("->"))
        .filter_map(|l| l.split_whitespace().nth(5)?.parse().ok())
        .collect()
}

/// remove-service stops the service and removes its files under the service's lock, as
/// one step: a start in between waits, and its process ends up on record.
#[test]
fn remove_service_racing_start_leaves_the_new_process_on_record() {
    let pp = Playpen::new();
    pp.sleeper_service("web", "service_start_grace=0.05\n");
    pp.run(&["new-service", "web"]).ok();
    pp.start(&["web"]);
    let first = pp.running_pid("web");

    // A concurrent new-service holds the registry lock: here the test holds it.
    let registry_lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(pp.path("var/servicectl/state.lock"))
        .expect("open the registry lock");
    registry_lock.lock().expect("take the registry lock");

    let started = Instant::now();
    let remove = spawn_piped(pp.command().args(["remove-service", "web"]));
    assert_dies(first, "web, stopped by remove-service");
    let start = spawn_piped(pp.command().args(["start", "web"]));
    let start_pid = start.id() as i32;
    // Either the start goes through (and would lose its files to the removal), or it
    // waits for the service's lock.
    assert!(
        wait_until(PATIENCE, || pp.pid("web").is_some_and(alive)
            || blocked_on_a_lock().contains(&start_pid)),
        "start web neither started nor waited"
    );
    registry_lock.unlock().expect("release the registry lock");
    let removed = finish(remove, started, "servicectl remove-service web");
    let started_again = finish(start, started, "servicectl start web");
    removed.ok();
    started_again.ok();
    let context = format!("{removed}\n{started_again}");

    let running = processes_of(&pp, "web");
    assert!(running.len() <= 1, "{running:?}; {context}");
    assert_eq!(off_record(&pp), [], "web runs off record; {context}");
    if let [pid] = running[..] {
        pp.run(&["status", "web"])
            .ok()
            .shows(
                &pp,
                "SERVICE STATE PID UPTIME PORTS NOTE\nweb running {PID} {TIME} -\n",
            )
            .says(&[&pid.to_string()]);
    }
    pp.run(&["stop", "web"]).ok();
    assert_eq!(processes_of(&pp, "web"), Vec::<i32>::new(), "{context}");

    // And the plain race, many times: whoever wins, nothing runs off record.
    for round in 0..10 {
        pp.run(&["new-service", "web"]).ok();
        let started = Instant::now();
        let racers = [
            spawn_piped(pp.command().args(["remove-service", "web"])),
            spawn_piped(pp.command().args(["start", "web"])),
            spawn_piped(pp.command().args(["new-service", "web"])),
        ];
        let outs: Vec<Out> = racers
            .into_iter()
            .map(|c| finish(c, started, "racer"))
            .collect();
        for out in &outs {
            out.no_panic();
        }
        assert_eq!(off_record(&pp), [], "round {round}: {outs:#?}");
        pp.run(&["stop", "web"]).ok();
        assert_eq!(processes_of(&pp, "web"), Vec::<i32>::new(), "round {round}");
    }
}

/// A program that daemonizes (its daemon in a session of its own, then exit 0) without
/// service_makes_own_pidfile=1: the start fails, says why, and leaves nothing behind,
/// however often it is retried.
#[test]
fn a_program_that_daemonizes_is_stopped_and_named() {
    let pp = Playpen::new();
    pp.install_sleep("bin/sleeper");
    pp.write_exec(
        "bin/forker",
        "#!/bin/sh\n\"$PLAYPEN_ROOT/bin/sleeper\" 0.01\nsetsid \"$PLAYPEN_ROOT/bin/sleeper\" 1000 &\nsleep 0.2\nexit 0\n",
    );
    pp.service("web", "service_program=forker\nservice_start_grace=2\n");
    for attempt in 0..3 {
        let out = pp.run(&["start", "web"]);
        out.fails()
            .shows(&pp, "servicectl: web: {ROOT}/bin/forker exited with status 0 right after starting, and it daemonized: set service_makes_own_pidfile=1 (servicectl stopped the 1 process it left in a session of its own: PID {PID}) — a program that forks into the background must write its PID to $SERVICE_PIDFILE, with service_makes_own_pidfile=1; or run it in the foreground (most daemons have an option for that)\n");
        assert_eq!(
            processes_of(&pp, "web"),
            Vec::<i32>::new(),
            "attempt {attempt} left its daemon behind:\n{out}"
        );
        assert!(!pp.pidfile("web").exists());
        pp.run(&["status", "web"]).code_is(3).shows(
            &pp,
            "SERVICE STATE PID UPTIME PORTS NOTE\nweb stopped - - -\n",
        );
    }
    // Configured as a daemon, it starts and stops.
    pp.write_exec(
        "bin/forker",
        "#!/bin/sh\nsetsid \"$PLAYPEN_ROOT/bin/sleeper\" 1000 &\necho $! > \"$SERVICE_PIDFILE\"\nexit 0\n",
    );
    pp.service(
        "web",
        "service_program=forker\nservice_makes_own_pidfile=1\nservice_halt_timeout=3\n",
    );
    pp.start(&["web"]);
    let daemon = pp.running_pid("web");
    pp.run(&["stop", "web"]).ok();
    assert_dies(daemon, "the daemon");
}

/// `cp -a A B` while A runs: B's copied pidfile and start record describe A's process.
fn copy_playpen(a: &Playpen) -> Playpen {
    let b = Playpen::new();
    run_command(
        std::process::Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", a.root.display()))
            .arg(&b.root),
    )
    .ok();
    b
}

#[test]
fn a_copied_playpen_does_not_take_the_original_s_process_for_its_own() {
    let a = Playpen::new();
    a.sleeper_service("web", "service_start_grace=0.05\n");
    a.start(&["web"]);
    let original = a.running_pid("web");
    let b = copy_playpen(&a);
    assert_eq!(b.pid("web"), Some(original), "the copy has A's pidfile");

    b.run(&["status", "web"]).code_is(3);
    let started = b.run(&["start", "web"]);
    started.ok().says(&["web: started"]);
    let own = b.running_pid("web");
    assert_ne!(own, original);
    assert_eq!(env_of(own, "PLAYPEN_ROOT"), Some(b.root_str()));
    b.run(&["stop", "web"]).ok();
    assert_dies(own, "B's web");
    assert!(alive(original), "stop in the copy killed A's web");
    a.run(&["status", "web"]).ok().says(&["running"]);

    // remove-service in the copy leaves A's linkfarm symlink alone.
    let b = copy_playpen(&a);
    b.run(&["remove-service", "web"]).ok();
    assert!(a.exists("var/linkfarm/web"), "B removed A's symlink");
    assert!(alive(original));
    a.run(&["status", "web"]).ok();
}

/// A program that clears its environment keeps its playpen in its title (as nginx's
/// `master process …/var/linkfarm/nginx-tag` does): another playpen's linkfarm path
/// there says it is not ours either.
#[test]
fn a_copied_playpen_recognises_the_original_by_its_linkfarm_path() {
    let a = Playpen::new();
    a.install_sleep("bin/sleeper");
    a.write_exec(
        "bin/titled",
        "#!/bin/bash\nexec env -i /bin/bash -c 'exec -a \"$1\" \"$2\" 1000' titled \"$0\" \"$PLAYPEN_ROOT/bin/sleeper\"\n",
    );
    a.service("web", "service_program=titled\nservice_start_grace=0.3\n");
    a.start(&["web"]);
    let original = a.running_pid("web");
    assert!(
        wait_until(PATIENCE, || cmdline(original)
            .first()
            .is_some_and(|t| t.ends_with("var/linkfarm/web"))),
        "{:?}",
        cmdline(original)
    );
    assert_eq!(env_of(original, "PLAYPEN_ROOT"), None);
    a.run(&["status", "web"]).ok().says(&["running"]);

    let b = copy_playpen(&a);
    b.run(&["status", "web"]).code_is(3);
    b.run(&["stop", "web"]).ok();
    assert!(alive(original), "stop in the copy killed A's web");
    a.run(&["status", "web"]).ok().says(&["running"]);
    a.run(&["stop", "web"]).ok();
    assert_dies(original, "A's web");
}

/// Children a service forked into a session or process group of their own escape a
/// process-group kill; they carry the service's PLAYPEN_ROOT and SERVICE_NAME, and stop
/// finds them.
#[test]
fn stop_leaves_no_descendant_behind() {
    let pp = Playpen::new();
    pp.install_escaping_spawner();
    pp.service(
        "web",
        "service_program=spawner\nservice_start_grace=0.05\nservice_halt_timeout=3\n",
    );
    let child_pids = |pp: &Playpen| -> (i32, i32) {
        let read = |f: &str| -> i32 {
            String::from_utf8(pp.wait_file(f, 10))
                .unwrap()
                .trim()
                .parse()
                .unwrap()
        };
        (read("var/session-child"), read("var/group-child"))
    };

    pp.start(&["web"]);
    let main = pp.running_pid("web");
    let (in_session, in_group) = child_pids(&pp);
    let main_stat = stat_fields(main).expect("web is alive");
    let (session, group) = (&main_stat[3], &main_stat[2]);
    assert!(alive(in_session) && alive(in_group));
    assert_ne!(&stat_fields(in_session).unwrap()[3], session);
    assert_ne!(&stat_fields(in_group).unwrap()[2], group);
    pp.run(&["stop", "web"]).ok();
    assert_dies(main, "web");
    assert_dies(in_session, "web's child in a session of its own");
    assert_dies(in_group, "web's child in a process group of its own");

    // The main process died on its own: stop still stops what it left.
    std::fs::remove_file(pp.path("var/session-child")).unwrap();
    std::fs::remove_file(pp.path("var/group-child")).unwrap();
    pp.start(&["web"]);
    let main = pp.running_pid("web");
    let (in_session, in_group) = child_pids(&pp);
    kill(main, Signal::SIGKILL);
    assert_dies(main, "web");
    pp.run(&["stop", "web"]).ok();
    assert_dies(
        in_session,
        "the child of a dead web, in a session of its own",
    );
    assert_dies(
        in_group,
        "the child of a dead web, in a process group of its own",
    );
    assert_eq!(processes_of(&pp, "web"), Vec::<i32>::new());

    // Started again after its main process died, the new web does not run beside what
    // the dead one left.
    std::fs::remove_file(pp.path("var/session-child")).unwrap();
    std::fs::remove_file(pp.path("var/group-child")).unwrap();
    pp.start(&["web"]);
    let main = pp.running_pid("web");
    let (in_session, in_group) = child_pids(&pp);
    kill(main, Signal::SIGKILL);
    assert_dies(main, "web");
    std::fs::remove_file(pp.path("var/session-child")).unwrap();
    std::fs::remove_file(pp.path("var/group-child")).unwrap();
    pp.start(&["web"]);
    assert!(
        !alive(in_session) && !alive(in_group),
        "the dead web's children still run"
    );
    let main = pp.running_pid("web");
    let (new_session, new_group) = child_pids(&pp);
    let mut expected = vec![main, new_session, new_group];
    expected.sort();
    assert_eq!(processes_of(&pp, "web"), expected);
    pp.run(&["stop", "web"]).ok();
    assert_eq!(processes_of(&pp, "web"), Vec::<i32>::new());
}

/// A start in progress (here: waiting for the program's own pidfile) is "starting" to
/// `status`, which leaves it alone; it is running once the program wrote its pidfile.
#[test]
fn status_shows_a_start_in_progress_and_leaves_it_alone() {
    let pp = Playpen::new();
    pp.install_sleep("bin/sleeper");
    pp.write_exec(
        "bin/slowpid",
        "#!/bin/sh\n\
         while [ ! -e \"$LOCAL_VAR/go\" ]; do sleep 0.05; done\n\
         echo $$ > \"$SERVICE_PIDFILE\"\n\
         exec \"$PLAYPEN_ROOT/bin/sleeper\" 1000\n",
    );
    pp.service(
        "web",
        "service_program=slowpid\nservice_makes_own_pidfile=1\nservice_pidfile_timeout=60\n",
    );
    let started = Instant::now();
    let start = spawn_piped(pp.command().args(["start", "web"]));
    assert!(wait_until(PATIENCE, || processes_of(&pp, "web").len() == 1));
    let pid = processes_of(&pp, "web")[0];
    pp.run(&["status", "web"])
        .code_is(3)
        .shows(&pp, "SERVICE STATE PID UPTIME PORTS NOTE\nweb starting - - - servicectl (PID {PID}) is starting it\n");
    assert!(alive(pid), "status stopped a start in progress");
    std::fs::write(pp.path("var/go"), "").unwrap();
    finish(start, started, "servicectl start web").ok();
    assert_eq!(pp.running_pid("web"), pid);
    pp.run(&["status", "web"]).ok().shows(
        &pp,
        "SERVICE STATE PID UPTIME PORTS NOTE\nweb running {PID} {TIME} -\n",
    );
}

/// servicectl killed while waiting for a program's own pidfile; the program writes it
/// afterwards and clears its environment (as daemons that reuse it for their title do):
/// the next command adopts the PID the program wrote, as it started after the start
/// record was written.
#[test]
fn a_cut_short_start_adopts_the_pid_the_program_wrote_after_servicectl_died() {
    let pp = Playpen::new();
    pp.install_sleep("bin/sleeper");
    pp.write_exec(
        "bin/slowpid",
        "#!/bin/sh\n\
         while [ ! -e \"$LOCAL_VAR/go\" ]; do sleep 0.05; done\n\
         echo $$ > \"$SERVICE_PIDFILE\"\n\
         exec env -i \"$PLAYPEN_ROOT/bin/sleeper\" 1000\n",
    );
    pp.service(
        "web",
        "service_program=slowpid\nservice_makes_own_pidfile=1\nservice_pidfile_timeout=60\nservice_halt_timeout=3\n",
    );
    let started = Instant::now();
    let start = spawn_piped(pp.command().args(["start", "web"]));
    assert!(wait_until(PATIENCE, || processes_of(&pp, "web").len() == 1));
    let program = processes_of(&pp, "web")[0];
    kill(start.id() as i32, Signal::SIGKILL);
    finish(start, started, "servicectl start web");
    std::fs::write(pp.path("var/go"), "").unwrap();
    assert!(wait_until(PATIENCE, || pp.pid("web") == Some(program)
        && env_of(program, "PLAYPEN_ROOT").is_none()));
    pp.run(&["status", "web"]).ok().shows(
        &pp,
        "SERVICE STATE PID UPTIME PORTS NOTE\nweb running {PID} {TIME} -\n",
    );
    pp.run(&["start", "web"])
        .ok()
        .shows(&pp, "web: already running (pid {PID})\n");
    pp.run(&["stop", "web"]).ok();
    assert_dies(program, "web");
}

/// Services that depend on each other start one after the other: SIGTERM in the middle
/// of the chain lets the start in flight finish, starts nothing after it, and says so.
#[test]
fn sigterm_starts_nothing_new() {
    let pp = Playpen::new();
    let names: Vec<String> = (0..8).map(|i| format!("c{i}")).collect();
    for (i, name) in names.iter().enumerate() {
        let depends = if i == 0 {
            String::new()
        } else {
            format!("service_depends={}\n", names[i - 1])
        };
        pp.sleeper_service(name, &format!("service_start_grace=0.3\n{depends}"));
    }
    pp.role_config(&format!("playpen_services=\"{}\"\n", names.join(" ")));
    let out = interrupted_start(&pp, Signal::SIGTERM, Moment::Pidfiles(3));
    out.fails()
        .says(&["not started: servicectl received SIGTERM"]);
    assert_eq!(off_record(&pp), [], "{out}");
    let mut running: Vec<String> = service_processes(&pp).into_iter().map(|(_, n)| n).collect();
    running.sort();
    assert!(
        (3..names.len()).contains(&running.len()),
        "{running:?} run after SIGTERM at the third of {} services:\n{out}",
        names.len()
    );
    // Those that run are the first of the chain; the rest are not started.
    assert_eq!(running, names[..running.len()], "{out}");
    pp.start(&[]);
    assert_eq!(service_processes(&pp).len(), names.len());
}

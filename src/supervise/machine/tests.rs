//! The transitions as tables of cases: a machine set up in a phase, one event at a
//! time, the phase it ends in and the effects it asks for. No process is started, no
//! file read: the machine does no I/O.

use super::*;
use crate::config::ServiceConfig;
use crate::config::settings::{
    CronSchedule, CronSettings, InetdSettings, PortSetting, Protocol, RestartPolicy, ServiceType,
};
use crate::playpen::catalog::ServiceId;
use std::sync::OnceLock;

fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

/// The time `ms` milliseconds after the start of the table (wall clock: a fixed date).
fn at(ms: u64) -> Now {
    Now {
        mono: base() + Duration::from_millis(ms),
        wall: 1_800_000_000.0 + ms as f64 / 1000.0,
    }
}

fn rel(t: Instant) -> u128 {
    t.saturating_duration_since(base()).as_millis()
}

fn config(name: &str, change: impl FnOnce(&mut Settings)) -> Arc<Prepared> {
    let mut settings = Settings::default();
    change(&mut settings);
    let id = ServiceId {
        name: name.to_string(),
        version: None,
    };
    Arc::new(Prepared::new(
        Arc::new(ServiceConfig {
            id,
            fragments: Vec::new(),
            vars: Default::default(),
        }),
        Arc::new(settings),
        Default::default(),
        Vec::new(),
    ))
}

fn unlimited(s: &mut Settings) {
    s.restart_policy = RestartPolicy::Always;
}

fn cron(s: &mut Settings) {
    s.service_type = ServiceType::Cron(CronSettings {
        schedule: CronSchedule::Expression("* * * * *".into()),
        command: "true".into(),
    });
}

fn inetd(max: u32) -> impl FnOnce(&mut Settings) {
    move |s: &mut Settings| {
        s.service_type = ServiceType::Inetd(InetdSettings {
            protocol: Protocol::Tcp,
            bind: "127.0.0.1".parse().unwrap(),
            port: PortSetting::Number(1),
            command: vec!["cat".into()],
            max_handlers: max,
        })
    }
}

/// A launched machine with `web` configured as `change` says, in `phase`, wanted.
fn machine_with(change: impl FnOnce(&mut Settings), phase: Phase) -> Machine {
    let mut m = Machine::new(false);
    m.launched = true;
    let i = m.service_index("web");
    let s = &mut m.services[i];
    s.config = Some(config("web", change));
    s.phase = phase;
    s.wanted = true;
    m
}

/// A cron or inetd service waiting for its time or its connections since time 0.
fn armed() -> Phase {
    Phase::Armed {
        since: at(0).mono,
        fire: None,
    }
}

fn running(pid: i32) -> Phase {
    Phase::Running {
        pid: Some(pid),
        since: at(0).mono,
        unready: None,
        live: Liveness::default(),
    }
}

fn phase_text(p: &Phase) -> String {
    match p {
        Phase::Stopped => "stopped".into(),
        Phase::Starting { pid, restart, .. } => {
            format!(
                "starting pid={pid:?}{}",
                if *restart { " restart" } else { "" }
            )
        }
        Phase::Checking {
            pid, check, pause, ..
        } => match check {
            Check::Running(_) => format!("checking pid={pid:?} check=running"),
            Check::Awaiting => format!("checking pid={pid:?} awaiting"),
            Check::Next(t) => format!(
                "checking pid={pid:?} next=+{}ms pause={}ms",
                rel(*t),
                pause.as_millis()
            ),
        },
        Phase::Running { pid, unready, .. } => match unready {
            None => format!("running pid={pid:?}"),
            Some(_) => format!("running pid={pid:?} unready"),
        },
        Phase::Backoff { until } => format!("backoff until=+{}ms", rel(*until)),
        Phase::Undecided { .. } => "undecided".into(),
        Phase::Failed => "failed".into(),
        Phase::Stopping { pid, .. } => format!("stopping pid={pid:?}"),
        Phase::Halting {
            pid,
            kill_at,
            killed,
            ..
        } => format!(
            "halting pid={pid:?} kill=+{}ms{}",
            rel(*kill_at),
            if *killed { " killed" } else { "" }
        ),
        Phase::Arming => "arming".into(),
        Phase::Done { at } => format!("done at={at}"),
        Phase::Armed { fire, .. } => match fire {
            Some(f) => format!("armed fire=+{}ms", rel(f.at)),
            None => "armed".into(),
        },
    }
}

fn effect_text(m: &Machine, e: &Effect) -> Option<String> {
    let name = |i: &Sid| m.services[*i].name.clone();
    Some(match e {
        Effect::Job { work, .. } => match work {
            Work::Prepare(_) => "job prepare".into(),
            Work::Start(p) => format!("job start {}", p.name()),
            Work::Revive(p) => format!("job revive {}", p.name()),
            Work::Stop(p) => format!("job stop {}", p.name()),
            Work::Restart(p) => format!("job restart {}", p.name()),
            Work::Check(p, _, _) => format!("job check {}", p.name()),
        },
        Effect::Watch { service, pid } => format!("watch {} {pid}", name(service)),
        Effect::Unwatch { service } => format!("unwatch {}", name(service)),
        Effect::SignalGroup { pid, signal } => format!("signal {pid} {}", signal.as_str()),
        Effect::SignalChildren { service, signal } => {
            format!("signal-children {} {}", name(service), signal.as_str())
        }
        Effect::WatchChild { service, pid } => format!("watch-child {} {pid}", name(service)),
        Effect::EndChecks { service } => format!("end-checks {}", name(service)),
        Effect::WatchLog { service, pattern } => format!("watch-log {} {pattern}", name(service)),
        Effect::Arm { service, .. } => format!("arm {}", name(service)),
        Effect::Disarm { service } => format!("disarm {}", name(service)),
        Effect::SpawnRun { service } => format!("run {}", name(service)),
        Effect::AcceptHandlers { service, room } => format!("accept {} {room}", name(service)),
        Effect::Listen { service, on } => {
            format!(
                "listen {} {}",
                name(service),
                if *on { "on" } else { "off" }
            )
        }
        Effect::Reply { client, reply } => format!("reply {client} {}", reply_text(reply)),
        Effect::Log(_) => return None,
        Effect::Sweep => "sweep".into(),
        Effect::Launched => "launched".into(),
        Effect::Exit(code) => format!("exit {code}"),
    })
}

fn reply_text(reply: &Reply) -> String {
    match reply {
        Reply::Results { results, .. } => results
            .iter()
            .map(|r| match (&r.done, &r.error) {
                (Some(o), _) => format!("{}={o}", r.service),
                (_, Some(e)) => format!("{}=error:{}", r.service, e.message),
                _ => format!("{}=?", r.service),
            })
            .collect::<Vec<_>>()
            .join(","),
        Reply::Wait { ready, not_ready } => format!(
            "wait ready={} not={}",
            ready.join(","),
            not_ready
                .iter()
                .map(|n| format!("{}:{}", n.service, n.state))
                .collect::<Vec<_>>()
                .join(",")
        ),
        Reply::Error { error } => format!("error:{}", error.message),
        other => format!("{other:?}"),
    }
}

/// Step `m` with `event` at `ms`; `web`'s phase after, and the effects (logs left out).
fn step(m: &mut Machine, event: Event, ms: u64) -> (String, Vec<String>) {
    let effects = feed(m, event, ms);
    // Local times depend on the zone the tests run in.
    let when = regex::Regex::new(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d").unwrap();
    let texts = effects
        .iter()
        .filter_map(|e| effect_text(m, e))
        .map(|t| when.replace_all(&t, "{WHEN}").into_owned())
        .collect();
    let web = m.find("web").map(|i| phase_text(&m.services[i].phase));
    (web.unwrap_or_default(), texts)
}

/// One step at `ms`, the latest preparation standing for job u64::MAX.
fn feed(m: &mut Machine, event: Event, ms: u64) -> Vec<Effect> {
    let event = fix(m, event);
    m.step(event, at(ms))
}

fn job_of(m: &Machine, name: &str) -> JobId {
    match m.services[m.find(name).unwrap()].phase {
        Phase::Starting { job, .. } | Phase::Stopping { job, .. } => job,
        Phase::Checking {
            check: Check::Running(job),
            ..
        } => job,
        ref p => panic!("{name} runs no job in {p:?}"),
    }
}

fn done(result: Result<Outcome, Error>, has_check: bool) -> JobOutput {
    JobOutput::Lifecycle { result, has_check }
}

fn exited(pid: i32, status: &str) -> Event {
    Event::ProcessExited {
        service: 0,
        pid,
        status: status.into(),
    }
}

/// One row: set up, one event at a time time, the phase after and the effects.
struct Row {
    what: &'static str,
    machine: fn() -> Machine,
    /// Events before the one under test (their effects are not checked).
    before: fn(&mut Machine),
    event: fn(&Machine) -> Event,
    ms: u64,
    phase: &'static str,
    effects: &'static [&'static str],
}

fn run_table(rows: &[Row]) {
    let mut failures = Vec::new();
    for row in rows {
        let mut m = (row.machine)();
        (row.before)(&mut m);
        let event = (row.event)(&m);
        let (phase, effects) = step(&mut m, event, row.ms);
        if phase != row.phase || effects != row.effects {
            failures.push(format!(
                "{}:\n  phase   {phase:?}\n  wanted  {:?}\n  effects {effects:?}\n  wanted  {:?}",
                row.what, row.phase, row.effects
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

fn nothing(_: &mut Machine) {}

#[test]
fn restart_and_backoff() {
    run_table(&[
        Row {
            what: "a crash after a run of 1 s or more restarts at once (revive: a direct stop is looked for)",
            machine: || machine_with(unlimited, running(42)),
            before: nothing,
            event: |_| exited(42, "exited with status 1"),
            ms: 1500,
            phase: "starting pid=None",
            effects: &["unwatch web", "end-checks web", "job revive web"],
        },
        Row {
            what: "a crash after a short run waits the first delay (0.1 s)",
            machine: || machine_with(unlimited, running(42)),
            before: nothing,
            event: |_| exited(42, "exited with status 1"),
            ms: 200,
            phase: "backoff until=+300ms",
            effects: &["unwatch web", "end-checks web"],
        },
        Row {
            what: "the second short run in a row waits twice as long",
            machine: || {
                let mut m = machine_with(unlimited, running(42));
                m.services[0].streak = 2;
                m
            },
            before: nothing,
            event: |_| exited(42, "exited with status 1"),
            ms: 200,
            phase: "backoff until=+400ms",
            effects: &["unwatch web", "end-checks web"],
        },
        Row {
            what: "the delay is over: started again",
            machine: || {
                machine_with(
                    unlimited,
                    Phase::Backoff {
                        until: at(300).mono,
                    },
                )
            },
            before: |m| m.services[0].revive = true,
            event: |_| Event::Tick,
            ms: 300,
            phase: "starting pid=None",
            effects: &["job revive web"],
        },
        Row {
            what: "a tick before the delay is over changes nothing",
            machine: || {
                machine_with(
                    unlimited,
                    Phase::Backoff {
                        until: at(300).mono,
                    },
                )
            },
            before: nothing,
            event: |_| Event::Tick,
            ms: 299,
            phase: "backoff until=+300ms",
            effects: &[],
        },
        Row {
            what: "service_restart_policy=none: the first exit is failed",
            machine: || machine_with(|_| {}, running(42)),
            before: nothing,
            event: |_| exited(42, "was killed by signal SIGKILL"),
            ms: 5000,
            phase: "failed",
            effects: &["unwatch web", "end-checks web"],
        },
        Row {
            what: "out of restarts (policy 2, two used): failed",
            machine: || {
                let mut m =
                    machine_with(|s| s.restart_policy = RestartPolicy::Times(2), running(42));
                m.services[0].restarts = 2;
                m
            },
            before: nothing,
            event: |_| exited(42, "exited with status 3"),
            ms: 5000,
            phase: "failed",
            effects: &["unwatch web", "end-checks web"],
        },
        Row {
            what: "fail fast: a failed service shuts the playpen down and exits 1",
            machine: || machine_with(|s| s.fail_fast = true, running(42)),
            before: nothing,
            event: |_| exited(42, "exited with status 1"),
            ms: 5000,
            phase: "failed",
            effects: &["unwatch web", "end-checks web", "sweep", "exit 1"],
        },
        Row {
            what: "an exit of a process nobody tracks is ignored",
            machine: || machine_with(unlimited, running(42)),
            before: nothing,
            event: |_| exited(41, "exited with status 0"),
            ms: 5000,
            phase: "running pid=Some(42)",
            effects: &[],
        },
        Row {
            what: "an exit before the configuration is known is decided later",
            machine: || {
                let mut m = machine_with(unlimited, running(42));
                m.launched = false;
                m.services[0].config = None;
                m
            },
            before: nothing,
            event: |_| exited(42, "exited with status 1"),
            ms: 5000,
            phase: "undecided",
            effects: &["unwatch web", "end-checks web"],
        },
        Row {
            what: "a start that fails is a run of 0 s: backoff",
            machine: || machine_with(unlimited, Phase::Stopped),
            before: |m| {
                let e = feed(
                    m,
                    Event::Request {
                        client: 1,
                        op: Op::Restart {
                            services: vec!["web".into()],
                        },
                    },
                    0,
                );
                drop(e);
                m.services[0].phase = Phase::Starting {
                    job: 99,
                    pid: None,
                    restart: false,
                    notified: false,
                };
                m.jobs.insert(99, JobFor::Lifecycle(0, Verb::Start));
            },
            event: |_| Event::JobDone {
                job: 99,
                output: done(Err(Error::runtime("boom")), false),
            },
            ms: 10,
            phase: "backoff until=+110ms",
            effects: &[],
        },
    ]);
}

#[test]
fn starts_and_readiness() {
    fn starting() -> Machine {
        let mut m = machine_with(|_| {}, Phase::Stopped);
        m.services[0].wanted = false;
        let _ = feed(&mut m, start_request(), 0);
        feed(&mut m, prepared_web(), 0);
        m
    }
    run_table(&[
        Row {
            what: "start of a stopped service runs a start job",
            machine: || machine_with(|_| {}, Phase::Stopped),
            before: |m| {
                let _ = feed(m, start_request(), 0);
            },
            event: |_| prepared_web(),
            ms: 1,
            phase: "starting pid=None",
            effects: &["job start web"],
        },
        Row {
            what: "started without a check: ready at once, the client hears started",
            machine: starting,
            before: nothing,
            event: |m| Event::JobDone {
                job: job_of(m, "web"),
                output: done(Ok(Outcome::Started { pid: Some(42) }), false),
            },
            ms: 50,
            phase: "running pid=Some(42)",
            effects: &["watch web 42", "reply 1 web=started (pid 42)"],
        },
        Row {
            what: "started with a check: the check runs",
            machine: starting,
            before: nothing,
            event: |m| Event::JobDone {
                job: job_of(m, "web"),
                output: done(Ok(Outcome::Started { pid: Some(42) }), true),
            },
            ms: 50,
            phase: "checking pid=Some(42) check=running",
            effects: &["watch web 42", "job check web"],
        },
        Row {
            what: "a failing check within the ready timeout is asked again after a pause",
            machine: starting,
            before: |m| {
                let job = job_of(m, "web");
                let _ = feed(
                    m,
                    Event::JobDone {
                        job,
                        output: done(Ok(Outcome::Started { pid: Some(42) }), true),
                    },
                    50,
                );
            },
            event: |m| Event::JobDone {
                job: job_of(m, "web"),
                output: JobOutput::Check {
                    ok: false,
                    detail: "refused".into(),
                },
            },
            ms: 60,
            phase: "checking pid=Some(42) next=+70ms pause=20ms",
            effects: &[],
        },
        Row {
            what: "a passing check makes it ready and answers the start",
            machine: starting,
            before: |m| {
                let job = job_of(m, "web");
                let _ = feed(
                    m,
                    Event::JobDone {
                        job,
                        output: done(Ok(Outcome::Started { pid: Some(42) }), true),
                    },
                    50,
                );
            },
            event: |m| Event::JobDone {
                job: job_of(m, "web"),
                output: JobOutput::Check {
                    ok: true,
                    detail: "PONG".into(),
                },
            },
            ms: 60,
            phase: "running pid=Some(42)",
            effects: &["reply 1 web=started (pid 42)"],
        },
        Row {
            what: "a check still failing at the ready timeout: a failed start, it is stopped",
            machine: starting,
            before: |m| {
                let job = job_of(m, "web");
                let _ = feed(
                    m,
                    Event::JobDone {
                        job,
                        output: done(Ok(Outcome::Started { pid: Some(42) }), true),
                    },
                    50,
                );
            },
            event: |m| Event::JobDone {
                job: job_of(m, "web"),
                output: JobOutput::Check {
                    ok: false,
                    detail: "refused".into(),
                },
            },
            ms: 31_000,
            phase: "stopping pid=Some(42)",
            effects: &[
                "end-checks web",
                "job stop web",
                "reply 1 web=error:started, but not ready within 30 s (service_ready_timeout): refused",
            ],
        },
        Row {
            what: "the process dies while it is checked: the start fails, a failed run",
            machine: starting,
            before: |m| {
                let job = job_of(m, "web");
                let _ = feed(
                    m,
                    Event::JobDone {
                        job,
                        output: done(Ok(Outcome::Started { pid: Some(42) }), true),
                    },
                    50,
                );
            },
            event: |_| exited(42, "exited with status 2"),
            ms: 80,
            phase: "failed",
            effects: &[
                "unwatch web",
                "end-checks web",
                "reply 1 web=error:it exited with status 2 before it was ready",
            ],
        },
        Row {
            what: "the watched process was gone already: handled as an exit",
            machine: starting,
            before: |m| {
                let job = job_of(m, "web");
                let _ = feed(
                    m,
                    Event::JobDone {
                        job,
                        output: done(Ok(Outcome::Started { pid: Some(42) }), false),
                    },
                    50,
                );
            },
            event: |_| exited(42, "exited"),
            ms: 50,
            phase: "failed",
            effects: &["unwatch web", "end-checks web"],
        },
        Row {
            what: "start of a ready service answers already running",
            machine: || machine_with(|_| {}, running(42)),
            before: |m| {
                let _ = feed(m, start_request(), 0);
            },
            event: |_| prepared_web(),
            ms: 1,
            phase: "running pid=Some(42)",
            effects: &["reply 1 web=already running (pid 42)"],
        },
    ]);
}

fn start_request() -> Event {
    Event::Request {
        client: 1,
        op: Op::Start {
            services: vec!["web".into()],
        },
    }
}

fn stop_request(client: ClientId) -> Event {
    Event::Request {
        client,
        op: Op::Stop {
            services: vec!["web".into()],
        },
    }
}

/// The preparation of the latest command (its job is the latest one).
fn prepared_web() -> Event {
    prepared_of(&["web"])
}

fn prepared_of(names: &[&str]) -> Event {
    let mut prepared = BTreeMap::new();
    for n in names {
        prepared.insert(n.to_string(), (*config(n, |_| {})).clone());
    }
    Event::JobDone {
        job: u64::MAX,
        output: JobOutput::Prepared(Ok(Prepped {
            prepared,
            problems: BTreeMap::new(),
            unknown: BTreeMap::new(),
            targets: names.iter().map(|n| n.to_string()).collect(),
            disabled: Vec::new(),
            deps: Deps::new(),
            warnings: Vec::new(),
        })),
    }
}

impl Machine {
    /// Test only: a `JobDone` with job u64::MAX means "the latest preparation".
    fn latest_prepare(&self) -> Option<JobId> {
        self.jobs
            .iter()
            .filter(|(_, f)| matches!(f, JobFor::Prepare(_)))
            .map(|(j, _)| *j)
            .max()
    }
}

/// `step` that maps job u64::MAX to the latest preparation.
fn fix(m: &Machine, event: Event) -> Event {
    match event {
        Event::JobDone {
            job: u64::MAX,
            output,
        } => Event::JobDone {
            job: m.latest_prepare().expect("a preparation runs"),
            output,
        },
        e => e,
    }
}

#[test]
fn stops_and_interruptions() {
    run_table(&[
        Row {
            what: "stop of a running service ends its checks and runs a stop job",
            machine: || machine_with(|_| {}, running(42)),
            before: |m| {
                let _ = feed(m, stop_request(1), 0);
            },
            event: |m| fix(m, prepared_web()),
            ms: 1,
            phase: "stopping pid=Some(42)",
            effects: &["end-checks web", "job stop web"],
        },
        Row {
            what: "the stop job is done: stopped, never restarted",
            machine: || machine_with(unlimited, running(42)),
            before: |m| {
                let _ = feed(m, stop_request(1), 0);
                let ev = fix(m, prepared_web());
                let _ = feed(m, ev, 1);
                let _ = feed(m, exited(42, "was killed by signal SIGTERM"), 2);
            },
            event: |m| Event::JobDone {
                job: job_of(m, "web"),
                output: done(
                    Ok(Outcome::Stopped {
                        pid: Some(42),
                        warning: None,
                    }),
                    false,
                ),
            },
            ms: 3,
            phase: "stopped",
            effects: &["reply 1 web=stopped (pid 42)"],
        },
        Row {
            what: "a stop job that fails (no descriptor to spare) falls back to signals",
            machine: || machine_with(|_| {}, running(42)),
            before: |m| {
                let _ = feed(m, stop_request(1), 0);
                let ev = fix(m, prepared_web());
                let _ = feed(m, ev, 1);
            },
            event: |m| Event::JobDone {
                job: job_of(m, "web"),
                output: done(
                    Err(Error::runtime("cannot open lock file: Too many open files")),
                    false,
                ),
            },
            ms: 3,
            phase: "halting pid=Some(42) kill=+10003ms",
            effects: &["signal 42 SIGTERM"],
        },
        Row {
            what: "halt timeout over: SIGKILL",
            machine: || {
                machine_with(
                    |_| {},
                    Phase::Halting {
                        pid: Some(42),
                        kill_at: at(100).mono,
                        killed: false,
                        why: None,
                        failed: None,
                    },
                )
            },
            before: nothing,
            event: |_| Event::Tick,
            ms: 100,
            phase: "halting pid=Some(42) kill=+5100ms killed",
            effects: &["signal 42 SIGKILL"],
        },
        Row {
            what: "the halted process is gone: stopped",
            machine: || {
                machine_with(
                    |_| {},
                    Phase::Halting {
                        pid: Some(42),
                        kill_at: at(100).mono,
                        killed: false,
                        why: Some("its stop failed".into()),
                        failed: None,
                    },
                )
            },
            before: |m| m.services[0].wanted = false,
            event: |_| exited(42, "was killed by signal SIGTERM"),
            ms: 50,
            phase: "stopped",
            effects: &["unwatch web", "end-checks web"],
        },
        Row {
            what: "a start cut short by a stop says so (exit 1), and the stop says stopped",
            machine: || machine_with(|_| {}, Phase::Stopped),
            before: |m| {
                m.services[0].wanted = false;
                let _ = feed(m, start_request(), 0);
                let ev = fix(m, prepared_web());
                let _ = feed(m, ev, 1);
                let _ = feed(m, stop_request(2), 2);
                let ev = fix(m, prepared_web());
                let _ = feed(m, ev, 3);
                let job = job_of(m, "web");
                let _ = feed(
                    m,
                    Event::JobDone {
                        job,
                        output: done(Ok(Outcome::Started { pid: Some(42) }), true),
                    },
                    4,
                );
            },
            event: |m| Event::JobDone {
                job: job_of(m, "web"),
                output: done(
                    Ok(Outcome::Stopped {
                        pid: Some(42),
                        warning: None,
                    }),
                    false,
                ),
            },
            ms: 5,
            phase: "stopped",
            effects: &[
                "unwatch web",
                "reply 2 web=stopped (pid 42)",
                "reply 1 web=error:its start was cut short: it was stopped before it was ready",
            ],
        },
        Row {
            what: "restart right after a crash joins the restart under way",
            machine: || machine_with(unlimited, running(42)),
            before: |m| {
                let _ = feed(m, exited(42, "exited with status 1"), 1500);
                let _ = feed(
                    m,
                    Event::Request {
                        client: 3,
                        op: Op::Restart {
                            services: vec!["web".into()],
                        },
                    },
                    1501,
                );
                let ev = fix(m, prepared_web());
                let _ = feed(m, ev, 1502);
            },
            event: |m| Event::JobDone {
                job: job_of(m, "web"),
                output: done(Ok(Outcome::Started { pid: Some(43) }), false),
            },
            ms: 1503,
            phase: "running pid=Some(43)",
            effects: &["watch web 43", "reply 3 web=restarted (pid 43)"],
        },
        Row {
            what: "restart of a running service runs a restart job (the old pid stays tracked)",
            machine: || machine_with(|_| {}, running(42)),
            before: |m| {
                let _ = feed(
                    m,
                    Event::Request {
                        client: 3,
                        op: Op::Restart {
                            services: vec!["web".into()],
                        },
                    },
                    0,
                );
            },
            event: |m| fix(m, prepared_web()),
            ms: 1,
            phase: "starting pid=Some(42) restart",
            effects: &["end-checks web", "job restart web"],
        },
        Row {
            what: "the old process exits during its restart: on purpose, no failed run",
            machine: || {
                machine_with(
                    |_| {},
                    Phase::Starting {
                        job: 7,
                        pid: Some(42),
                        restart: true,
                        notified: false,
                    },
                )
            },
            before: nothing,
            event: |_| exited(42, "was killed by signal SIGTERM"),
            ms: 10,
            phase: "starting pid=None restart",
            effects: &["unwatch web", "end-checks web"],
        },
    ]);
}

#[test]
fn shutdown_adoption_and_records() {
    run_table(&[
        Row {
            what: "shutdown stops what runs, then sweeps, answers and exits 0",
            machine: || machine_with(|_| {}, running(42)),
            before: nothing,
            event: |_| Event::Request {
                client: 5,
                op: Op::Shutdown,
            },
            ms: 0,
            phase: "stopping pid=Some(42)",
            effects: &["end-checks web", "job stop web"],
        },
        Row {
            what: "shutdown with nothing running: sweep, answer, exit",
            machine: || {
                machine_with(
                    |_| {},
                    Phase::Backoff {
                        until: at(500).mono,
                    },
                )
            },
            before: nothing,
            event: |_| Event::ShutdownSignal,
            ms: 0,
            phase: "stopped",
            effects: &["sweep", "exit 0"],
        },
        Row {
            what: "the last stop of a shutdown is done: sweep, reply, exit",
            machine: || machine_with(|_| {}, running(42)),
            before: |m| {
                let _ = feed(
                    m,
                    Event::Request {
                        client: 5,
                        op: Op::Shutdown,
                    },
                    0,
                );
            },
            event: |m| Event::JobDone {
                job: job_of(m, "web"),
                output: done(
                    Ok(Outcome::Stopped {
                        pid: Some(42),
                        warning: None,
                    }),
                    false,
                ),
            },
            ms: 10,
            phase: "stopped",
            effects: &[
                "unwatch web",
                "sweep",
                "reply 5 web=stopped (pid 42)",
                "exit 0",
            ],
        },
        Row {
            what: "a start under way when the shutdown comes is stopped when it ends",
            machine: || {
                machine_with(
                    |_| {},
                    Phase::Starting {
                        job: 7,
                        pid: None,
                        restart: false,
                        notified: false,
                    },
                )
            },
            before: |m| {
                m.jobs.insert(7, JobFor::Lifecycle(0, Verb::Start));
                let _ = feed(m, Event::ShutdownSignal, 0);
            },
            event: |_| Event::JobDone {
                job: 7,
                output: done(Ok(Outcome::Started { pid: Some(42) }), false),
            },
            ms: 10,
            phase: "stopping pid=Some(42)",
            effects: &["watch web 42", "end-checks web", "job stop web"],
        },
        Row {
            what: "adoption: a running service on record is watched",
            machine: || Machine::new(false),
            before: nothing,
            event: |_| Event::Adopted {
                name: "web".into(),
                pid: Some(42),
            },
            ms: 0,
            phase: "running pid=Some(42)",
            effects: &["watch web 42"],
        },
        Row {
            what: "adoption: a cron run left by an earlier supervisor is watched and counted",
            machine: || Machine::new(false),
            before: nothing,
            event: |_| Event::AdoptedChild {
                name: "web".into(),
                pid: 77,
            },
            ms: 0,
            phase: "stopped",
            effects: &["watch-child web 77"],
        },
        Row {
            what: "a direct start while the supervisor waits to restart: supervised",
            machine: || machine_with(unlimited, Phase::Stopped),
            before: nothing,
            event: |_| Event::RecordAppeared {
                name: "web".into(),
                pid: 50,
            },
            ms: 0,
            phase: "running pid=Some(50)",
            effects: &["watch web 50"],
        },
        Row {
            what: "a direct stop of a service in backoff: not restarted",
            machine: || {
                machine_with(
                    unlimited,
                    Phase::Backoff {
                        until: at(500).mono,
                    },
                )
            },
            before: |m| m.services[0].revive = true,
            event: |_| Event::RecordRemoved { name: "web".into() },
            ms: 0,
            phase: "stopped",
            effects: &[],
        },
    ]);
}

#[test]
fn cron_and_inetd() {
    run_table(&[
        Row {
            what: "arming a cron service schedules its next minute",
            machine: || machine_with(cron, Phase::Arming),
            before: nothing,
            event: |_| Event::ArmDone {
                service: 0,
                result: Ok(()),
            },
            ms: 0,
            // 1_800_000_000 is 0 s past a minute: the next minute is 60 s away.
            phase: "armed fire=+60001ms",
            effects: &[],
        },
        Row {
            what: "the fire time: a run starts",
            machine: || machine_with(cron, Phase::Arming),
            before: |m| {
                let _ = feed(
                    m,
                    Event::ArmDone {
                        service: 0,
                        result: Ok(()),
                    },
                    0,
                );
            },
            event: |_| Event::Tick,
            ms: 60_001,
            phase: "armed fire=+120001ms",
            effects: &["run web"],
        },
        Row {
            what: "a run still going at the fire time (an adopted one too): skipped",
            machine: || machine_with(cron, Phase::Arming),
            before: |m| {
                let _ = feed(
                    m,
                    Event::AdoptedChild {
                        name: "web".into(),
                        pid: 77,
                    },
                    0,
                );
                let _ = feed(
                    m,
                    Event::ArmDone {
                        service: 0,
                        result: Ok(()),
                    },
                    0,
                );
            },
            event: |_| Event::Tick,
            ms: 60_001,
            phase: "armed fire=+120001ms",
            effects: &[],
        },
        Row {
            what: "stop of a cron service with a run going: disarm, TERM the run",
            machine: || machine_with(cron, armed()),
            before: |m| {
                m.services[0].children.insert(77);
                let _ = feed(m, stop_request(1), 0);
            },
            event: |m| fix(m, prepared_web()),
            ms: 1,
            phase: "halting pid=None kill=+10001ms",
            effects: &["disarm web", "signal-children web SIGTERM"],
        },
        Row {
            what: "the last run of a disarmed service ends: stopped",
            machine: || {
                machine_with(
                    cron,
                    Phase::Halting {
                        pid: None,
                        kill_at: at(100).mono,
                        killed: false,
                        why: None,
                        failed: None,
                    },
                )
            },
            before: |m| {
                m.services[0].wanted = false;
                m.services[0].children.insert(77);
            },
            event: |_| Event::ChildExited {
                service: None,
                pid: 77,
                status: "was killed by signal SIGTERM".into(),
            },
            ms: 5,
            phase: "stopped",
            effects: &[],
        },
        Row {
            what: "an inetd connection with room: accept up to the room",
            machine: || machine_with(inetd(2), armed()),
            before: |m| m.services[0].listening = true,
            event: |_| Event::InetdReadable { service: 0 },
            ms: 0,
            phase: "armed",
            effects: &["accept web 2"],
        },
        Row {
            what: "the handler that reaches service_inetd_max stops the listening",
            machine: || machine_with(inetd(1), armed()),
            before: |m| m.services[0].listening = true,
            event: |_| Event::ChildStarted { service: 0, pid: 9 },
            ms: 0,
            phase: "armed",
            effects: &["watch-child web 9", "listen web off"],
        },
        Row {
            what: "a handler ends below the limit: listening again",
            machine: || machine_with(inetd(1), armed()),
            before: |m| {
                m.services[0].children.insert(9);
                m.services[0].listening = false;
            },
            event: |_| Event::ChildExited {
                service: Some(0),
                pid: 9,
                status: "exited with status 0".into(),
            },
            ms: 0,
            phase: "armed",
            effects: &["listen web on"],
        },
        Row {
            what: "a handler's exit named with a service that does not hold it is still found",
            machine: || machine_with(inetd(1), armed()),
            before: |m| {
                m.services[0].children.insert(9);
                m.services[0].listening = false;
            },
            event: |_| Event::ChildExited {
                service: Some(5),
                pid: 9,
                status: "exited with status 0".into(),
            },
            ms: 0,
            phase: "armed",
            effects: &["listen web on"],
        },
    ]);
}

#[test]
fn wait_answers_from_the_state() {
    run_table(&[
        Row {
            what: "wait on a ready service answers at once",
            machine: || machine_with(|_| {}, running(42)),
            before: nothing,
            event: |_| Event::Request {
                client: 4,
                op: Op::Wait {
                    services: vec!["web".into()],
                    timeout_secs: Some(5.0),
                },
            },
            ms: 0,
            phase: "running pid=Some(42)",
            effects: &["reply 4 wait ready=web not="],
        },
        Row {
            what: "wait on a service killed before the request is not fooled by it",
            machine: || machine_with(unlimited, running(42)),
            before: |m| {
                let _ = feed(m, exited(42, "was killed by signal SIGKILL"), 100);
            },
            event: |_| Event::Request {
                client: 4,
                op: Op::Wait {
                    services: vec!["web".into()],
                    timeout_secs: Some(5.0),
                },
            },
            ms: 101,
            phase: "backoff until=+200ms",
            effects: &[],
        },
        Row {
            what: "wait gives up at its timeout, naming the state",
            machine: || {
                machine_with(
                    unlimited,
                    Phase::Backoff {
                        until: at(60_000).mono,
                    },
                )
            },
            before: |m| {
                let _ = feed(
                    m,
                    Event::Request {
                        client: 4,
                        op: Op::Wait {
                            services: vec!["web".into()],
                            timeout_secs: Some(1.0),
                        },
                    },
                    0,
                );
            },
            event: |_| Event::Tick,
            ms: 1000,
            phase: "backoff until=+60000ms",
            effects: &["reply 4 wait ready= not=web:backoff"],
        },
        Row {
            what: "a wait without names before the launch decided waits for it",
            machine: || {
                let mut m = machine_with(|_| {}, running(42));
                m.launched = false;
                m
            },
            before: nothing,
            event: |_| Event::Request {
                client: 4,
                op: Op::Wait {
                    services: vec![],
                    timeout_secs: Some(1.0),
                },
            },
            ms: 0,
            phase: "running pid=Some(42)",
            effects: &[],
        },
    ]);
}

#[test]
fn next_deadline_is_the_earliest_of_the_state() {
    let mut m = machine_with(
        unlimited,
        Phase::Backoff {
            until: at(700).mono,
        },
    );
    assert_eq!(m.next_deadline(), Some(at(700).mono));
    let _ = feed(
        &mut m,
        Event::Request {
            client: 4,
            op: Op::Wait {
                services: vec!["web".into()],
                timeout_secs: Some(0.5),
            },
        },
        0,
    );
    assert_eq!(m.next_deadline(), Some(at(500).mono));
    m.services[0].phase = running(42);
    assert_eq!(m.next_deadline(), Some(at(500).mono));
}

fn notify_ready(s: &mut Settings) {
    s.ready = crate::config::settings::Ready::Notify;
    s.restart_policy = RestartPolicy::Always;
}

fn checking_awaiting() -> Phase {
    Phase::Checking {
        pid: Some(42),
        since: at(0).mono,
        by: at(30_000).mono,
        pause: CHECK_PAUSE_FIRST,
        check: Check::Awaiting,
    }
}

fn notify(fields: Vec<crate::process::notify::Field>) -> Event {
    Event::Notify { service: 0, fields }
}

fn health(s: &mut Settings) {
    s.health.interval = Duration::from_secs(10);
    s.health.retries = 2;
    s.restart_policy = RestartPolicy::Always;
}

fn running_with(pid: i32, live: Liveness) -> Phase {
    Phase::Running {
        pid: Some(pid),
        since: at(0).mono,
        unready: None,
        live,
    }
}

#[test]
fn notify_log_health_watchdog_and_oneshot() {
    use crate::process::notify::Field;
    run_table(&[
        Row {
            what: "notify: started, the machine awaits READY=1 (no check job)",
            machine: || machine_with(notify_ready, Phase::Stopped),
            before: |m| {
                m.services[0].wanted = false;
                let _ = feed(m, start_request(), 0);
                let ev = fix(m, prepared_web());
                let _ = feed(m, ev, 0);
                m.services[0].config = Some(config("web", notify_ready));
            },
            event: |m| Event::JobDone {
                job: job_of(m, "web"),
                output: done(Ok(Outcome::Started { pid: Some(42) }), false),
            },
            ms: 10,
            phase: "checking pid=Some(42) awaiting",
            effects: &["watch web 42"],
        },
        Row {
            what: "notify: READY=1 said during the start grace counts once the start job ends",
            machine: || {
                machine_with(
                    notify_ready,
                    Phase::Starting {
                        job: 7,
                        pid: None,
                        restart: false,
                        notified: false,
                    },
                )
            },
            before: |m| {
                m.jobs.insert(7, JobFor::Lifecycle(0, Verb::Start));
                let _ = feed(m, notify(vec![Field::Ready]), 100);
            },
            event: |_| Event::JobDone {
                job: 7,
                output: done(Ok(Outcome::Started { pid: Some(42) }), false),
            },
            ms: 600,
            phase: "running pid=Some(42)",
            effects: &["watch web 42"],
        },
        Row {
            what: "notify: READY=1 makes it ready",
            machine: || machine_with(notify_ready, checking_awaiting()),
            before: nothing,
            event: |_| notify(vec![Field::Status("warming up".into()), Field::Ready]),
            ms: 1500,
            phase: "running pid=Some(42)",
            effects: &[],
        },
        Row {
            what: "notify: no READY=1 by the ready timeout is a failed start",
            machine: || machine_with(notify_ready, checking_awaiting()),
            before: nothing,
            event: |_| Event::Tick,
            ms: 30_000,
            phase: "stopping pid=Some(42)",
            effects: &["end-checks web", "job stop web"],
        },
        Row {
            what: "the stop of a failed start is done: a failed run (backoff)",
            machine: || {
                machine_with(
                    notify_ready,
                    Phase::Stopping {
                        job: 5,
                        pid: None,
                        failed: Some("not ready within 30 s".into()),
                    },
                )
            },
            before: |m| {
                m.jobs.insert(5, JobFor::Lifecycle(0, Verb::Stop));
            },
            event: |_| Event::JobDone {
                job: 5,
                output: done(
                    Ok(Outcome::Stopped {
                        pid: Some(42),
                        warning: None,
                    }),
                    false,
                ),
            },
            ms: 30_100,
            phase: "backoff until=+30200ms",
            effects: &[],
        },
        Row {
            what: "RELOADING=1 makes a ready service not ready until READY=1",
            machine: || machine_with(notify_ready, running(42)),
            before: nothing,
            event: |_| notify(vec![Field::Reloading]),
            ms: 10,
            phase: "running pid=Some(42) unready",
            effects: &[],
        },
        Row {
            what: "MAINPID=N switches the tracked process",
            machine: || machine_with(notify_ready, running(42)),
            before: nothing,
            event: |_| notify(vec![Field::MainPid(43)]),
            ms: 10,
            phase: "running pid=Some(43)",
            effects: &["unwatch web", "watch web 43"],
        },
        Row {
            what: "log: a matching line makes it ready",
            machine: || {
                machine_with(
                    |s| s.ready = crate::config::settings::Ready::Log("listening".into()),
                    checking_awaiting(),
                )
            },
            before: nothing,
            event: |_| Event::LogMatched { service: 0 },
            ms: 10,
            phase: "running pid=Some(42)",
            effects: &[],
        },
        Row {
            what: "health: the check runs every interval once ready",
            machine: || {
                machine_with(
                    health,
                    running_with(
                        42,
                        Liveness {
                            health: Some((Check::Next(at(10_000).mono), 0)),
                            watchdog: None,
                        },
                    ),
                )
            },
            before: nothing,
            event: |_| Event::Tick,
            ms: 10_000,
            phase: "running pid=Some(42)",
            effects: &["job check web"],
        },
        Row {
            what: "health: the last allowed failure in a row makes it unhealthy: stopped, a failed run follows",
            machine: || {
                machine_with(
                    health,
                    running_with(
                        42,
                        Liveness {
                            health: Some((Check::Running(9), 1)),
                            watchdog: None,
                        },
                    ),
                )
            },
            before: |m| {
                m.jobs.insert(9, JobFor::Health(0));
            },
            event: |_| Event::JobDone {
                job: 9,
                output: JobOutput::Check {
                    ok: false,
                    detail: "refused".into(),
                },
            },
            ms: 10_050,
            phase: "stopping pid=Some(42)",
            effects: &["end-checks web", "job stop web"],
        },
        Row {
            what: "health: a pass resets the count",
            machine: || {
                machine_with(
                    health,
                    running_with(
                        42,
                        Liveness {
                            health: Some((Check::Running(9), 1)),
                            watchdog: None,
                        },
                    ),
                )
            },
            before: |m| {
                m.jobs.insert(9, JobFor::Health(0));
            },
            event: |_| Event::JobDone {
                job: 9,
                output: JobOutput::Check {
                    ok: true,
                    detail: "PONG".into(),
                },
            },
            ms: 10_050,
            phase: "running pid=Some(42)",
            effects: &[],
        },
        Row {
            what: "watchdog: silence past its deadline: SIGABRT, SIGKILL after the halt timeout",
            machine: || {
                machine_with(
                    |s| s.watchdog = Some(Duration::from_secs(2)),
                    running_with(
                        42,
                        Liveness {
                            health: None,
                            watchdog: Some(at(2000).mono),
                        },
                    ),
                )
            },
            before: nothing,
            event: |_| Event::Tick,
            ms: 2000,
            phase: "halting pid=Some(42) kill=+12000ms",
            effects: &["end-checks web", "signal 42 SIGABRT"],
        },
        Row {
            what: "watchdog: WATCHDOG=1 moves the deadline",
            machine: || {
                machine_with(
                    |s| s.watchdog = Some(Duration::from_secs(2)),
                    running_with(
                        42,
                        Liveness {
                            health: None,
                            watchdog: Some(at(2000).mono),
                        },
                    ),
                )
            },
            before: |m| {
                let _ = feed(m, notify(vec![Field::Watchdog]), 1500);
            },
            event: |_| Event::Tick,
            ms: 2000,
            phase: "running pid=Some(42)",
            effects: &[],
        },
        Row {
            what: "oneshot: exit 0 is done, the start answers done",
            machine: || {
                let mut m = machine_with(|s| s.service_type = ServiceType::Oneshot, Phase::Stopped);
                m.services[0].wanted = false;
                m
            },
            before: |m| {
                let _ = feed(m, start_request(), 0);
                let ev = fix(m, prepared_web());
                let _ = feed(m, ev, 0);
                m.services[0].config =
                    Some(config("web", |s| s.service_type = ServiceType::Oneshot));
            },
            event: |m| Event::JobDone {
                job: job_of(m, "web"),
                output: done(
                    Ok(Outcome::Done {
                        status: "exited with status 0".into(),
                    }),
                    false,
                ),
            },
            ms: 500,
            phase: "done at=1800000000",
            effects: &["reply 1 web=done (exited with status 0)"],
        },
        Row {
            what: "oneshot: a done one-shot is not run again by start",
            machine: || {
                machine_with(
                    |s| s.service_type = ServiceType::Oneshot,
                    Phase::Done { at: 0 },
                )
            },
            before: |m| {
                let _ = feed(m, start_request(), 0);
            },
            event: |m| fix(m, prepared_web()),
            ms: 1,
            phase: "done at=0",
            effects: &["reply 1 web=done (exited with status 0)"],
        },
        Row {
            what: "oneshot: a start that found it done before keeps when it ran",
            machine: || machine_with(|s| s.service_type = ServiceType::Oneshot, Phase::Stopped),
            before: |m| {
                let _ = feed(m, start_request(), 0);
                let ev = fix(m, prepared_web());
                let _ = feed(m, ev, 0);
            },
            event: |m| Event::JobDone {
                job: job_of(m, "web"),
                output: done(
                    Ok(Outcome::AlreadyDone {
                        status: "exited with status 0".into(),
                        at: 1_700_000_000.5,
                    }),
                    false,
                ),
            },
            ms: 500,
            phase: "done at=1700000000",
            effects: &["reply 1 web=already done (exited with status 0 at {WHEN})"],
        },
        Row {
            what: "oneshot: shutdown stops a done one-shot (its mark goes)",
            machine: || {
                machine_with(
                    |s| s.service_type = ServiceType::Oneshot,
                    Phase::Done { at: 0 },
                )
            },
            before: nothing,
            event: |_| Event::Request {
                client: 5,
                op: Op::Shutdown,
            },
            ms: 0,
            phase: "stopping pid=None",
            effects: &["job stop web"],
        },
    ]);
}

fn watched(s: &mut Settings) {
    s.watch.patterns = vec!["src/**/*.py".into()];
    s.watch.delay = Duration::from_millis(300);
}

fn changed() -> Event {
    Event::FileChanged {
        service: 0,
        file: "src/a.py".into(),
    }
}

#[test]
fn restart_on_change() {
    run_table(&[
        Row {
            what: "a change waits for the files to be quiet",
            machine: || machine_with(watched, running(42)),
            before: nothing,
            event: |_| changed(),
            ms: 0,
            phase: "running pid=Some(42)",
            effects: &[],
        },
        Row {
            what: "each change of a burst pushes the restart back",
            machine: || machine_with(watched, running(42)),
            before: |m| {
                let _ = feed(m, changed(), 0);
                let _ = feed(m, changed(), 200);
            },
            event: |_| Event::Tick,
            ms: 450,
            phase: "running pid=Some(42)",
            effects: &[],
        },
        Row {
            what: "quiet for the delay: one restart command (preparing the configuration)",
            machine: || machine_with(watched, running(42)),
            before: |m| {
                let _ = feed(m, changed(), 0);
                let _ = feed(m, changed(), 200);
            },
            event: |_| Event::Tick,
            ms: 500,
            phase: "running pid=Some(42)",
            effects: &["job prepare"],
        },
        Row {
            what: "a change of a stopped service starts nothing",
            machine: || {
                let mut m = machine_with(watched, Phase::Stopped);
                m.services[0].wanted = false;
                m
            },
            before: |m| {
                let _ = feed(m, changed(), 0);
            },
            event: |_| Event::Tick,
            ms: 1000,
            phase: "stopped",
            effects: &[],
        },
        Row {
            what: "a change of a failed service starts nothing",
            machine: || {
                let mut m = machine_with(watched, Phase::Failed);
                m.services[0].wanted = false;
                m
            },
            before: nothing,
            event: |_| changed(),
            ms: 0,
            phase: "failed",
            effects: &[],
        },
    ]);
    let mut m = machine_with(watched, running(42));
    let _ = feed(&mut m, changed(), 100);
    assert_eq!(
        m.next_deadline(),
        Some(at(400).mono),
        "the restart is a deadline"
    );
    let _ = feed(&mut m, Event::Tick, 400);
    assert_eq!(
        m.view(0, None).note.as_deref(),
        Some("restarted: src/a.py changed")
    );
    assert_eq!(m.next_deadline(), None, "nothing is due after it");
}

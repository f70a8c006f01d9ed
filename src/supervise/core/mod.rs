//! The event loop and the state of every supervised service.
//!
//! Everything here runs on one thread and never blocks: what must wait (configs,
//! starts, stops, pings) is a job ([`super::jobs`]) whose result arrives as
//! one more event. Deadlines live in one ordered map; the timerfd is armed for the
//! earliest only (a cron service's next fire time is one more kind of deadline).
//! Cron runs and inetd handlers are spawned here (a spawn does not block) and watched
//! by pidfd; inetd listeners sit in the same epoll set (see docs/supervisor.md).
//!
//! Reaping: the supervisor is a child subreaper and the parent of what it starts, but
//! worker threads wait for their own children by PID (a start waits for its program
//! through the grace period, hooks and pings for their scripts). So it never reaps
//! blindly while a job runs: a supervised process is reaped through its pidfd
//! (waitid P_PIDFD), and any other exited child (an orphan reparented to us) only when
//! no job is running, which is when no worker can be waiting for one.

use super::backoff;
use super::jobs::{self, Job, Output, Prepped, Scope};
use crate::config::settings::{InetdSettings, PortSetting, Protocol, RestartPolicy, ServiceType};
use crate::control::{self, LineBuffer, NotReady, Op, Reply, Row, ServiceView};
use crate::error::{Error, ErrorKind, Result};
use crate::ops::graph::Deps;
use crate::playpen::Playpen;
use crate::process::pidfile::{self, Observed};
use crate::process::proc;
use crate::service::lifecycle::{self, Outcome};
use crate::service::prepare::Prepared;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Duration, Instant};

const SIGNALS: u64 = 1;
const LISTENER: u64 = 2;
const TIMER: u64 = 3;
const WAKE: u64 = 4;
const INOTIFY: u64 = 5;
/// The output keeper's pidfd: it exited.
const KEEPER: u64 = 6;
const CLIENT: u64 = 1 << 60;
const PIDFD: u64 = 2 << 60;
/// A cron run or an inetd handler, by PID.
const CHILD: u64 = 3 << 60;
/// An inetd service's listening socket, by service index.
const INETD: u64 = 4 << 60;
const KIND_MASK: u64 = 0xf << 60;

/// Clients connected at once; more are answered with an error and closed.
const MAX_CLIENTS: usize = 256;
/// Readiness pings are retried at growing intervals up to this.
const PING_PAUSE_MAX: Duration = Duration::from_secs(1);

fn pidfd_token(service: usize, generation: u64) -> u64 {
    PIDFD | ((service as u64) << 32) | (generation & 0xffff_ffff)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Stopped,
    Starting,
    Running,
    Backoff,
    Failed,
    Stopping,
    /// A cron or inetd service that is armed (scheduled, listening).
    Armed,
}

impl State {
    fn word(self) -> &'static str {
        match self {
            State::Stopped => "stopped",
            State::Starting => "starting",
            State::Running => "running",
            State::Backoff => "backoff",
            State::Failed => "failed",
            State::Stopping => "stopping",
            State::Armed => "armed",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Busy {
    Start,
    Stop,
    Restart,
}

/// What a job's result is for.
#[derive(Clone)]
enum Tag {
    Prepare(Purpose),
    Lifecycle(usize, Busy),
    Ping(usize, u64),
}

#[derive(Clone)]
enum Purpose {
    Launch,
    Command { conn: Option<u64>, op: Op },
}

/// A deadline in the timer map.
#[derive(Debug, Clone, Copy)]
enum Due {
    /// Backoff over: start the service again.
    Restart(usize),
    /// Ping again (for the run of this generation).
    Ping(usize, u64),
    /// A `wait` request gives up.
    WaitTimeout(u64),
    /// A cron service's next fire time.
    Cron(usize),
    /// The halt timeout of a disarm is over: SIGKILL what still runs.
    Kill(usize),
}

/// An inetd service's socket.
enum Listener {
    Tcp(std::net::TcpListener),
    Udp(std::net::UdpSocket),
}

impl Listener {
    fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        match self {
            Listener::Tcp(l) => l.as_fd(),
            Listener::Udp(u) => u.as_fd(),
        }
    }
}

/// A cron or inetd service while it is armed.
struct Armed {
    schedule: Option<crate::supervise::cron::Schedule>,
    /// The next fire time (Unix seconds, wall clock).
    next: Option<i64>,
    listener: Option<Listener>,
    /// The listener is in the epoll set (not while at service_inetd_max).
    listening: bool,
    /// Its output file, shared by every run and handler.
    output: std::fs::File,
    /// What a run or handler executes (sh -c for cron), prepared once.
    program: Option<crate::supervise::fork::Program>,
    /// /dev/null, a cron run's stdin.
    null: Option<std::fs::File>,
}

/// A cron run or inetd handler the loop watches.
struct Child {
    service: usize,
    pidfd: OwnedFd,
}

type TimerKey = (Instant, u64);

struct Service {
    name: String,
    prepared: Option<Arc<Prepared>>,
    /// A configuration problem that keeps it from starting.
    problem: Option<Error>,
    state: State,
    /// Kept running (true) or kept stopped.
    wanted: bool,
    pid: Option<i32>,
    /// The kernel start time of `pid`, read once when it was watched (for uptime).
    start_ticks: Option<u64>,
    pidfd: Option<OwnedFd>,
    /// Changes with every pidfd, so that an event of a closed one is recognised.
    pidfd_gen: u64,
    /// Changes with every run (start or adoption).
    run_gen: u64,
    run_started: Option<Instant>,
    ready: bool,
    ready_by: Option<Instant>,
    ping_pause: Duration,
    restarts: u32,
    streak: u32,
    last_exit: Option<String>,
    busy: Option<Busy>,
    timer: Option<TimerKey>,
    /// Batches waiting for this service to settle.
    waiting: Vec<u64>,
    /// What the latest start did, reported once the service is ready.
    outcome: Option<Outcome>,
    /// It exited before its configuration was known: decide once it is.
    undecided: bool,
    /// Its last run ended by an exit of its process (not a failed start of ours): a
    /// restart first checks that no command acting directly stopped it.
    revive: bool,
    note: Option<String>,
    /// Cron and inetd: armed by start, disarmed by stop.
    armed: Option<Armed>,
    /// Cron and inetd: a restart is disarming it to arm it again (its arming then
    /// answers "restarted", not "started").
    rearming: bool,
    /// Its cron run or inetd handlers now running.
    children: BTreeSet<i32>,
    /// Cron: the last minute fired (Unix seconds); never fired again.
    last_fired: Option<i64>,
    /// Cron: when the last run started.
    last_run: Option<i64>,
}

impl Service {
    fn new(name: &str) -> Service {
        Service {
            name: name.to_string(),
            prepared: None,
            problem: None,
            state: State::Stopped,
            wanted: false,
            pid: None,
            start_ticks: None,
            pidfd: None,
            pidfd_gen: 0,
            run_gen: 0,
            run_started: None,
            ready: false,
            ready_by: None,
            ping_pause: Duration::from_millis(10),
            restarts: 0,
            streak: 0,
            last_exit: None,
            busy: None,
            timer: None,
            waiting: Vec::new(),
            outcome: None,
            undecided: false,
            revive: false,
            note: None,
            armed: None,
            rearming: false,
            children: BTreeSet::new(),
            last_fired: None,
            last_run: None,
        }
    }

    fn settings(&self) -> Option<&crate::config::settings::Settings> {
        self.prepared.as_ref().map(|p| &*p.settings)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Start,
    Stop,
    Restart,
}

/// One command's work across services: each waits for its prerequisites (what it
/// depends on for a start, what depends on it for a stop) to settle.
struct Batch {
    conn: Option<u64>,
    verbs: BTreeMap<String, Verb>,
    waits_for: Deps,
    order: Vec<String>,
    pending: Vec<String>,
    results: BTreeMap<String, Result<Outcome>>,
    /// Rows decided before the batch ran (problems, unknown names).
    extra: Vec<Row>,
    warnings: Vec<String>,
    /// Exit the supervisor with this code once done (shutdown).
    exit_after: Option<i32>,
}

struct Conn {
    stream: UnixStream,
    lines: LineBuffer,
    out: Vec<u8>,
    /// A request is being worked on; further lines wait.
    busy: bool,
    /// The client went away (or must be closed once the output is written).
    closing: bool,
    writable_armed: bool,
}

struct Waiter {
    conn: u64,
    services: Vec<usize>,
    timer: Option<TimerKey>,
}

pub struct Supervisor {
    playpen: Playpen,
    options: super::Options,
    epoll: Epoll,
    signals: SignalFd,
    listener: UnixListener,
    timer: TimerFd,
    armed: Option<Instant>,
    wake: Arc<EventFd>,
    inotify: Option<nix::sys::inotify::Inotify>,
    tx: Sender<(Tag, Output)>,
    rx: Receiver<(Tag, Output)>,
    jobs: usize,
    orphans_waiting: bool,
    services: Vec<Service>,
    index: HashMap<String, usize>,
    conns: HashMap<u64, Conn>,
    next_id: u64,
    timers: BTreeMap<TimerKey, Due>,
    batches: HashMap<u64, Batch>,
    dirty: Vec<u64>,
    waiters: HashMap<u64, Waiter>,
    /// `wait` without names before the launch knew which services to keep running.
    early_waits: Vec<(u64, Option<f64>)>,
    launched: bool,
    /// A preparation ended: return freed memory once no job runs.
    trim_memory: bool,
    shutting_down: bool,
    exit: Option<i32>,
    my_uid: u32,
    /// Cron runs and inetd handlers, by PID.
    children: HashMap<i32, Child>,
    /// The output keeper that programs the jobs start write to (None: they write
    /// their files themselves).
    keeper: Option<super::keeper::Keeper>,
    /// Its pidfd, in the epoll set.
    keeper_exit: Option<OwnedFd>,
}

fn now_text() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!(
        "{:02}:{:02}:{:02}",
        secs / 3600 % 24,
        secs / 60 % 60,
        secs % 60
    )
}

fn log(message: &str) {
    eprintln!("{} servicectl supervise: {message}", now_text());
}

fn describe_wait(status: WaitStatus) -> String {
    match status {
        WaitStatus::Exited(_, code) => format!("exited with status {code}"),
        WaitStatus::Signaled(_, sig, _) => format!("was killed by signal {}", sig.as_str()),
        _ => "ended".to_string(),
    }
}

fn row(service: &str, result: &Result<Outcome>) -> Row {
    match result {
        Ok(o) => Row {
            service: service.to_string(),
            done: Some(o.clone()),
            error: None,
        },
        Err(e) => Row {
            service: service.to_string(),
            done: None,
            error: Some(e.into()),
        },
    }
}

impl Supervisor {
    pub fn new(
        playpen: &Playpen,
        listener: UnixListener,
        options: super::Options,
        keeper: Option<super::keeper::Keeper>,
    ) -> Result<Supervisor> {
        let sys = |what: &str, e: nix::errno::Errno| {
            Error::runtime(format!("cannot set up the event loop ({what}): {e}"))
        };
        // A daemon that forks away stays in our tree, and every exited process is
        // reaped, even where PID 1 reaps nothing.
        nix::sys::prctl::set_child_subreaper(true).map_err(|e| sys("subreaper", e))?;
        let mut mask = SigSet::empty();
        for s in [
            Signal::SIGTERM,
            Signal::SIGINT,
            Signal::SIGCHLD,
            Signal::SIGHUP,
        ] {
            mask.add(s);
        }
        // Blocked before any worker thread exists, so every thread inherits the mask
        // and the signals arrive only through the signalfd. Children get a clean mask
        // (posix_spawn and std::process reset it).
        mask.thread_block().map_err(|e| sys("signal mask", e))?;
        let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .map_err(|e| sys("signalfd", e))?;
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(|e| sys("epoll", e))?;
        let timer = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )
        .map_err(|e| sys("timerfd", e))?;
        let wake = Arc::new(
            EventFd::from_flags(EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC)
                .map_err(|e| sys("eventfd", e))?,
        );
        let inotify = nix::sys::inotify::Inotify::init(
            nix::sys::inotify::InitFlags::IN_NONBLOCK | nix::sys::inotify::InitFlags::IN_CLOEXEC,
        )
        .ok()
        .filter(|i| {
            i.add_watch(
                &playpen.run_dir(),
                nix::sys::inotify::AddWatchFlags::IN_MOVED_TO
                    | nix::sys::inotify::AddWatchFlags::IN_DELETE,
            )
            .is_ok()
        });
        let input = EpollFlags::EPOLLIN;
        epoll
            .add(signals.as_fd(), EpollEvent::new(input, SIGNALS))
            .map_err(|e| sys("epoll", e))?;
        epoll
            .add(listener.as_fd(), EpollEvent::new(input, LISTENER))
            .map_err(|e| sys("epoll", e))?;
        epoll
            .add(timer.as_fd(), EpollEvent::new(input, TIMER))
            .map_err(|e| sys("epoll", e))?;
        epoll
            .add(wake.as_fd(), EpollEvent::new(input, WAKE))
            .map_err(|e| sys("epoll", e))?;
        if let Some(i) = &inotify {
            epoll
                .add(i.as_fd(), EpollEvent::new(input, INOTIFY))
                .map_err(|e| sys("epoll", e))?;
        }
        let keeper_exit = keeper.as_ref().and_then(|k| k.exit_fd());
        if let Some(fd) = &keeper_exit {
            epoll
                .add(fd.as_fd(), EpollEvent::new(input, KEEPER))
                .map_err(|e| sys("epoll", e))?;
        }
        let (tx, rx) = channel();
        Ok(Supervisor {
            playpen: playpen.clone(),
            options,
            epoll,
            signals,
            listener,
            timer,
            armed: None,
            wake,
            inotify,
            tx,
            rx,
            jobs: 0,
            orphans_waiting: false,
            services: Vec::new(),
            index: HashMap::new(),
            conns: HashMap::new(),
            next_id: 1,
            timers: BTreeMap::new(),
            batches: HashMap::new(),
            dirty: Vec::new(),
            waiters: HashMap::new(),
            early_waits: Vec::new(),
            launched: false,
            trim_memory: false,
            shutting_down: false,
            exit: None,
            my_uid: nix::unistd::geteuid().as_raw(),
            children: HashMap::new(),
            keeper,
            keeper_exit,
        })
    }

    /// Adopt, bring the role up, then serve events until shut down.
    pub fn run(&mut self) -> i32 {
        log(&format!(
            "supervising {} (PID {})",
            self.playpen.root.display(),
            std::process::id()
        ));
        let adopted = self.adopt();
        self.spawn_job(
            Tag::Prepare(Purpose::Launch),
            Job::Prepare(Scope::Launch { adopted }),
        );
        let mut events = vec![EpollEvent::empty(); 64];
        loop {
            self.flush_batches();
            if let Some(code) = self.exit {
                self.flush_all_output();
                log(&format!("exiting with status {code}"));
                return code;
            }
            self.arm_timer();
            let n = match self.epoll.wait(&mut events, EpollTimeout::NONE) {
                Ok(n) => n,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    log(&format!("epoll_wait failed: {e}"));
                    return 1;
                }
            };
            for event in &events[..n] {
                let token = event.data();
                match token {
                    SIGNALS => self.on_signals(),
                    LISTENER => self.on_accept(),
                    TIMER => self.on_timer(),
                    WAKE => self.on_jobs_done(),
                    INOTIFY => self.on_output_written(),
                    KEEPER => self.on_keeper_exit(),
                    t if t & KIND_MASK == CLIENT => self.on_client(t & !KIND_MASK, event.events()),
                    t if t & KIND_MASK == CHILD => self.on_child((t & !KIND_MASK) as i32),
                    t if t & KIND_MASK == INETD => self.on_inetd((t & !KIND_MASK) as usize),
                    t if t & KIND_MASK == PIDFD => {
                        let service = ((t & !KIND_MASK) >> 32) as usize;
                        let generation = t & 0xffff_ffff;
                        self.on_pidfd(service, generation);
                    }
                    _ => {}
                }
            }
        }
    }

    // ---- jobs ----

    fn spawn_job(&mut self, tag: Tag, job: Job) {
        self.jobs += 1;
        jobs::spawn(
            &self.playpen,
            self.keeper.as_ref(),
            tag,
            job,
            &self.tx,
            &self.wake,
        );
    }

    fn on_jobs_done(&mut self) {
        let _ = self.wake.read();
        while let Ok((tag, output)) = self.rx.try_recv() {
            match (tag, output) {
                (Tag::Lifecycle(i, busy), Output::Outcome(result)) => {
                    self.on_lifecycle(i, busy, result)
                }
                (Tag::Lifecycle(i, busy), _) => self.on_lifecycle(
                    i,
                    busy,
                    Err(Error::runtime("internal error: unexpected job output")),
                ),
                (Tag::Ping(i, run_gen), Output::Ping { ok, detail }) => {
                    self.on_ping(i, run_gen, ok, detail)
                }
                (Tag::Ping(i, run_gen), _) => {
                    self.on_ping(i, run_gen, false, "the ping could not run".into())
                }
                (Tag::Prepare(purpose), Output::Prepared(result)) => {
                    self.trim_memory = true;
                    self.on_prepared(purpose, result)
                }
                (Tag::Prepare(purpose), Output::Outcome(Err(e))) => {
                    self.on_prepared(purpose, Err(e))
                }
                (Tag::Prepare(purpose), _) => self.on_prepared(
                    purpose,
                    Err(Error::runtime("internal error: unexpected job output")),
                ),
            }
            // Only now: whatever the job started is on record, so reaping cannot take
            // a child a worker waits for.
            self.jobs -= 1;
        }
        if self.jobs == 0 && self.orphans_waiting {
            self.reap_orphans();
        }
        if self.jobs == 0 && std::mem::take(&mut self.trim_memory) {
            // Evaluating configs on worker threads leaves freed memory in their malloc
            // arenas; give it back, so that an idle supervisor stays small.
            // SAFETY: malloc_trim has no preconditions.
            unsafe { libc::malloc_trim(0) };
        }
    }

    /// Take in what a preparation found, then act on the command it was for.
    fn on_prepared(&mut self, purpose: Purpose, result: Result<Prepped>) {
        let mut prepped = match result {
            Ok(p) => p,
            Err(e) => {
                match purpose {
                    Purpose::Launch => {
                        log(&format!("cannot read the configuration: {e}"));
                        self.launched = true;
                        for (conn, timeout) in std::mem::take(&mut self.early_waits) {
                            self.wait(conn, &[], timeout);
                        }
                    }
                    Purpose::Command {
                        conn: Some(conn), ..
                    } => self.reply(conn, &Reply::error(&e)),
                    Purpose::Command { conn: None, .. } => log(&e.to_string()),
                }
                return;
            }
        };
        let lenient = matches!(
            &purpose,
            Purpose::Command {
                op: Op::Stop { .. },
                ..
            }
        );
        // An armed inetd service holds its port itself: that is no conflict.
        let armed: Vec<String> = prepped
            .problems
            .keys()
            .filter(|n| {
                self.index
                    .get(*n)
                    .is_some_and(|&i| self.services[i].armed.is_some())
            })
            .cloned()
            .collect();
        for name in armed {
            prepped.problems.remove(&name);
        }
        for (name, p) in &prepped.prepared {
            let i = self.service_index(name);
            let s = &mut self.services[i];
            s.prepared = Some(Arc::new(p.clone()));
            if !lenient {
                s.problem = prepped.problems.get(name).cloned();
            }
        }
        for w in &prepped.warnings {
            log(&format!("warning: {w}"));
        }
        let (conn, op) = match purpose {
            Purpose::Launch => {
                self.launched = true;
                for name in &prepped.targets {
                    if prepped.prepared.contains_key(name) && !self.options.no_start {
                        let i = self.service_index(name);
                        self.services[i].wanted = true;
                    }
                }
                for (conn, timeout) in std::mem::take(&mut self.early_waits) {
                    self.wait(conn, &[], timeout);
                }
                // Exits seen before the configuration was known.
                for i in 0..self.services.len() {
                    if std::mem::take(&mut self.services[i].undecided) {
                        self.services[i].revive = true;
                        self.failed_run(i, Duration::ZERO);
                    }
                }
                if self.options.no_start || self.shutting_down {
                    return;
                }
                (None, Op::Up)
            }
            Purpose::Command { conn, op } => (conn, op),
        };
        if self.shutting_down {
            if let Some(conn) = conn {
                let e = Error::runtime("the supervisor is shutting down");
                self.reply(conn, &Reply::error(&e));
            }
            return;
        }
        let strict = matches!(op, Op::Start { .. } | Op::Restart { .. });
        let mut extra: Vec<Row> = prepped
            .unknown
            .iter()
            .map(|(n, e)| row(n, &Err(e.clone())))
            .collect();
        let mut targets: Vec<String> = prepped
            .targets
            .iter()
            .filter(|n| !prepped.unknown.contains_key(*n))
            .cloned()
            .collect();
        if strict && (!prepped.problems.is_empty() || !extra.is_empty()) {
            // As without a supervisor: nothing starts until every problem is fixed.
            for name in &targets {
                let err = prepped.problems.get(name).cloned().unwrap_or_else(|| {
                    Error::new(
                        ErrorKind::NotAttempted,
                        "not started: other services have configuration problems (listed above)",
                    )
                    .with_service(name)
                });
                extra.push(row(name, &Err(err)));
            }
            targets.clear();
        }
        let deps = prepped.deps.clone();
        let mut batch = match op {
            Op::Start { .. } => self.batch(conn, &targets, &[], Verb::Start, &deps),
            Op::Restart { .. } => self.batch(conn, &targets, &[], Verb::Restart, &deps),
            Op::Stop { .. } => {
                let stops = self.with_dependants(&targets);
                self.batch(conn, &[], &stops, Verb::Stop, &self.known_deps())
            }
            Op::Up => self.batch(conn, &targets, &prepped.disabled, Verb::Start, &deps),
            Op::Down => {
                let mut all: Vec<String> = targets.clone();
                for s in &self.services {
                    if !all.contains(&s.name) {
                        all.push(s.name.clone());
                    }
                }
                let deps = self.known_deps();
                let order: Vec<String> = crate::ops::graph::order(&deps)
                    .into_iter()
                    .filter(|n| all.contains(n))
                    .collect();
                self.batch(conn, &[], &order, Verb::Stop, &deps)
            }
            _ => return,
        };
        batch.extra = extra;
        batch.warnings = prepped.warnings;
        self.new_batch(batch);
    }

    /// `names` in dependency order (their own order where the graph says nothing).
    fn with_dependants(&self, names: &[String]) -> Vec<String> {
        let deps = self.known_deps();
        let mut ordered: Vec<String> = crate::ops::graph::order(&deps)
            .into_iter()
            .filter(|n| names.contains(n))
            .collect();
        for n in names {
            if !ordered.contains(n) {
                ordered.push(n.clone());
            }
        }
        ordered
    }

    // ---- reaping ----

    /// Reap exited children that are not supervised processes (orphans that were
    /// reparented to us), but only while no job runs: a worker may be waiting for
    /// its own child by PID.
    fn reap_orphans(&mut self) {
        if self.jobs > 0 {
            self.orphans_waiting = true;
            return;
        }
        self.orphans_waiting = false;
        loop {
            match nix::sys::wait::waitid(Id::All, WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG) {
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(status) => {
                    let Some(pid) = status.pid().map(|p| p.as_raw()) else {
                        break;
                    };
                    if self.children.contains_key(&pid) {
                        self.child_exited(pid, describe_wait(status));
                        continue;
                    }
                    let service = self.services.iter().position(|s| s.pid == Some(pid));
                    if let Some(i) = service {
                        self.on_exit(i, describe_wait(status));
                    }
                }
            }
        }
    }

    // ---- signals, timer, output ----

    fn on_signals(&mut self) {
        while let Ok(Some(info)) = self.signals.read_signal() {
            match Signal::try_from(info.ssi_signo as i32) {
                Ok(Signal::SIGTERM | Signal::SIGINT) => {
                    let name = Signal::try_from(info.ssi_signo as i32)
                        .map(|s| s.as_str())
                        .unwrap_or("signal");
                    log(&format!("{name} received"));
                    self.begin_shutdown(None, 0, None);
                }
                Ok(Signal::SIGCHLD) => self.reap_orphans(),
                Ok(Signal::SIGHUP) if !self.shutting_down => {
                    log("SIGHUP: bringing every service to its desired state");
                    self.spawn_job(
                        Tag::Prepare(Purpose::Command {
                            conn: None,
                            op: Op::Up,
                        }),
                        Job::Prepare(Scope::Up),
                    );
                }
                _ => {}
            }
        }
    }

    fn arm_timer(&mut self) {
        let next = self.timers.keys().next().map(|(at, _)| *at);
        if next == self.armed {
            return;
        }
        self.armed = next;
        let result = match next {
            Some(at) => {
                let left = at
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_micros(1));
                self.timer.set(
                    Expiration::OneShot(TimeSpec::from_duration(left)),
                    TimerSetTimeFlags::empty(),
                )
            }
            None => self.timer.unset(),
        };
        if let Err(e) = result {
            log(&format!("cannot arm the timer: {e}"));
        }
    }

    fn on_timer(&mut self) {
        let mut buf = [0u8; 8];
        let _ = nix::unistd::read(self.timer.as_fd(), &mut buf);
        self.armed = None;
        let now = Instant::now();
        while let Some((&key, &due)) = self.timers.iter().next() {
            if key.0 > now {
                break;
            }
            self.timers.remove(&key);
            match due {
                Due::Restart(i) => {
                    self.services[i].timer = None;
                    if self.services[i].wanted && self.services[i].state == State::Backoff {
                        log(&format!("{}: restarting", self.services[i].name));
                        self.restart_after_exit(i);
                    }
                }
                Due::Ping(i, run_gen) => {
                    self.services[i].timer = None;
                    if self.services[i].run_gen == run_gen && !self.services[i].ready {
                        self.ping(i);
                    }
                }
                Due::WaitTimeout(id) => {
                    if let Some(w) = self.waiters.remove(&id) {
                        self.answer_wait(w);
                    }
                }
                Due::Cron(i) => {
                    self.services[i].timer = None;
                    self.on_cron(i);
                }
                Due::Kill(i) => {
                    self.services[i].timer = None;
                    self.signal_children(i, Signal::SIGKILL);
                }
            }
        }
    }

    /// Something changed in var/run: a command acting directly (a package manager's
    /// hook) started or stopped a service behind the supervisor's back.
    fn on_output_written(&mut self) {
        use nix::sys::inotify::AddWatchFlags;
        let Some(inotify) = &self.inotify else {
            return;
        };
        let mut recorded = BTreeSet::new();
        let mut unrecorded = BTreeSet::new();
        while let Ok(events) = inotify.read_events() {
            if events.is_empty() {
                break;
            }
            for e in events {
                let Some(file) = e.name.as_ref().and_then(|n| n.to_str()) else {
                    continue;
                };
                if let Some(service) = file.strip_suffix(".start") {
                    if e.mask.contains(AddWatchFlags::IN_DELETE) {
                        unrecorded.insert(service.to_string());
                    } else {
                        recorded.insert(service.to_string());
                    }
                }
            }
        }
        for name in unrecorded {
            self.stopped_elsewhere(&name);
        }
        for name in recorded {
            self.started_elsewhere(&name);
        }
    }

    /// The output keeper died: a new one gets the services' pipes (keeper::Keeper::revive).
    fn on_keeper_exit(&mut self) {
        let Some(keeper) = &self.keeper else {
            return;
        };
        if let Some(fd) = self.keeper_exit.take() {
            let _ = self.epoll.delete(fd.as_fd());
        }
        if let Err(e) = keeper.revive() {
            log(&e.to_string());
        }
        self.keeper_exit = keeper.exit_fd();
        if let Some(fd) = &self.keeper_exit {
            let _ = self
                .epoll
                .add(fd.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, KEEPER));
        }
    }

    /// A start record appeared that the supervisor did not write (a direct `start` or
    /// `post-upgrade`): supervise the process it names.
    fn started_elsewhere(&mut self, name: &str) {
        let Some(&i) = self.index.get(name) else {
            return;
        };
        let s = &self.services[i];
        if s.busy.is_some() || s.pid.is_some() || self.shutting_down {
            return;
        }
        let Ok((Observed::Running { pid, .. } | Observed::Untracked { pid, .. }, _)) =
            pidfile::observe(&self.playpen, name)
        else {
            return;
        };
        log(&format!(
            "{name}: started by another command (pid {pid}); now supervised"
        ));
        self.cancel_timer(i);
        let s = &mut self.services[i];
        s.wanted = true;
        s.state = State::Running;
        s.ready = true;
        s.note = None;
        s.run_gen += 1;
        s.run_started = Some(Instant::now());
        self.watch(i, pid);
        self.check_waiters();
    }

    /// A start record was removed by another command (a direct `stop` or
    /// `pre-upgrade`): that stop was on purpose, so no restart follows.
    fn stopped_elsewhere(&mut self, name: &str) {
        let Some(&i) = self.index.get(name) else {
            return;
        };
        let s = &self.services[i];
        // Only a service whose process ended and that waits to be restarted: our own
        // starts and stops remove records too.
        if s.busy.is_some()
            || s.pid.is_some()
            || !s.revive
            || !matches!(s.state, State::Backoff | State::Failed)
        {
            return;
        }
        log(&format!(
            "{name}: stopped by another command; not restarted"
        ));
        self.cancel_timer(i);
        let s = &mut self.services[i];
        s.wanted = false;
        s.state = State::Stopped;
        s.note = None;
    }
}

mod armed;
mod batches;
mod clients;
mod services;

//! The event loop and the state of every supervised service.
//!
//! Everything here runs on one thread and never blocks: what must wait (configs,
//! starts, stops, pings, rotations) is a job ([`super::jobs`]) whose result arrives as
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
use crate::control::{self, Done, LineBuffer, NotReady, Op, Reply, Row, ServiceView};
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
    Rotate(usize),
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
    schedule: Option<super::cron::Schedule>,
    /// The next fire time (Unix seconds, wall clock).
    next: Option<i64>,
    listener: Option<Listener>,
    /// The listener is in the epoll set (not while at service_inetd_max).
    listening: bool,
    /// Its output file, shared by every run and handler.
    output: std::fs::File,
    /// What a run or handler executes (sh -c for cron), prepared once.
    program: Option<super::fork::Program>,
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
    rotating: bool,
    /// It exited before its configuration was known: decide once it is.
    undecided: bool,
    /// Its last run ended by an exit of its process (not a failed start of ours): a
    /// restart first checks that no command acting directly stopped it.
    revive: bool,
    note: Option<String>,
    /// Cron and inetd: armed by start, disarmed by stop.
    armed: Option<Armed>,
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
            rotating: false,
            undecided: false,
            revive: false,
            note: None,
            armed: None,
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

fn done_of(outcome: &Outcome) -> Done {
    match outcome.clone() {
        Outcome::Started { pid } => Done::Started { pid },
        Outcome::AlreadyRunning { pid } => Done::AlreadyRunning { pid },
        Outcome::Stopped { pid, warning } => Done::Stopped { pid, warning },
        Outcome::AlreadyStopped => Done::AlreadyStopped,
        Outcome::Reloaded { pid } => Done::Reloaded { pid },
        Outcome::Restarted { pid } => Done::Restarted { pid },
        Outcome::StoppedForFiledep { pid, file } => Done::StoppedForFiledep { pid, file },
    }
}

fn row(service: &str, result: &Result<Outcome>) -> Row {
    match result {
        Ok(o) => Row {
            service: service.to_string(),
            done: Some(done_of(o)),
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
                nix::sys::inotify::AddWatchFlags::IN_MODIFY
                    | nix::sys::inotify::AddWatchFlags::IN_MOVED_TO
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

    // ---- services ----

    fn service_index(&mut self, name: &str) -> usize {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        self.services.push(Service::new(name));
        let i = self.services.len() - 1;
        self.index.insert(name.to_string(), i);
        i
    }

    /// Take over what runs already: every service with a live process on record
    /// (pidfile and start record, same kernel start time), watched by pidfd.
    fn adopt(&mut self) -> Vec<String> {
        let catalog = match crate::playpen::catalog::Catalog::load(&self.playpen, None) {
            Ok(c) => c,
            Err(e) => {
                log(&format!("cannot read the services: {e}"));
                return Vec::new();
            }
        };
        let mut adopted = Vec::new();
        let names: Vec<String> = catalog.names().map(str::to_string).collect();
        let mut unrecorded: Option<HashMap<String, Vec<i32>>> = None;
        for name in names {
            let Ok((observed, _)) = pidfile::observe(&self.playpen, &name) else {
                continue;
            };
            let pid = match observed {
                Observed::Running { pid, .. } | Observed::Untracked { pid, .. } => Some(pid),
                Observed::Unwatched => None,
                _ => {
                    let found = unrecorded.get_or_insert_with(|| self.unrecorded_services());
                    match found.get(&name).map(Vec::as_slice) {
                        Some(&[pid]) => {
                            self.record_found(&name, pid);
                            Some(pid)
                        }
                        _ => continue,
                    }
                }
            };
            let i = self.service_index(&name);
            let s = &mut self.services[i];
            s.wanted = true;
            s.state = State::Running;
            s.ready = true;
            s.run_gen += 1;
            s.run_started = Some(Instant::now());
            match pid {
                Some(pid) => {
                    log(&format!("{name}: adopted (pid {pid})"));
                    self.watch(i, pid);
                }
                None => {
                    self.services[i].note =
                        Some("no pidfile (service_no_pidfile): not watched".into());
                    log(&format!("{name}: adopted (no pidfile: not watched)"));
                }
            }
            adopted.push(name);
        }
        adopted
    }

    /// Services whose process was started but not yet put on record when the last
    /// supervisor died (between the spawn and the pidfile): session leaders of this
    /// playpen (PLAYPEN_ROOT in their environment) named by a linkfarm symlink, by
    /// SERVICE_NAME. Hooks and scripts lead sessions too, but are not run through the
    /// linkfarm.
    fn unrecorded_services(&self) -> HashMap<String, Vec<i32>> {
        let root = self.playpen.root.display().to_string();
        let linkfarm = self.playpen.linkfarm();
        let mut found: HashMap<String, Vec<i32>> = HashMap::new();
        for pid in proc::session_leaders() {
            if proc::environ_var(pid, "PLAYPEN_ROOT").as_deref() != Some(root.as_str()) {
                continue;
            }
            let Some(service) = proc::environ_var(pid, "SERVICE_NAME") else {
                continue;
            };
            let through_linkfarm = proc::argv0(pid).is_some_and(|a| {
                !a.is_empty() && !a.contains('/') && linkfarm.join(&a).symlink_metadata().is_ok()
            });
            if through_linkfarm {
                found.entry(service).or_default().push(pid);
            }
        }
        found
    }

    /// Put a found process on record, as its start would have.
    fn record_found(&self, name: &str, pid: i32) {
        let record = pidfile::StartRecord {
            pid: Some(pid),
            start_ticks: proc::start_ticks(pid),
            run_name: proc::argv0(pid),
            symlink: proc::argv0(pid)
                .map(|a| self.playpen.linkfarm().join(a).display().to_string()),
            started_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0),
            ..Default::default()
        };
        let written = pidfile::write_pid(&self.playpen.pidfile(name), pid)
            .and_then(|()| pidfile::write_record(&self.playpen, name, &record));
        if let Err(e) = written {
            log(&format!("{name}: cannot put pid {pid} on record: {e}"));
        }
        log(&format!(
            "{name}: found pid {pid}, started but not on record"
        ));
    }

    /// Watch process `pid` of service `i` with a pidfd.
    fn watch(&mut self, i: usize, pid: i32) {
        self.unwatch(i);
        let s = &mut self.services[i];
        s.pid = Some(pid);
        s.start_ticks = proc::start_ticks(pid);
        s.pidfd_gen += 1;
        match proc::pidfd(pid) {
            Some(fd) => {
                let token = pidfd_token(i, s.pidfd_gen);
                if let Err(e) = self
                    .epoll
                    .add(fd.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, token))
                {
                    log(&format!("{}: cannot watch pid {pid}: {e}", s.name));
                }
                s.pidfd = Some(fd);
            }
            None => {
                // Gone already (and reaped by someone else).
                let generation = s.pidfd_gen & 0xffff_ffff;
                self.on_pidfd(i, generation);
            }
        }
    }

    fn unwatch(&mut self, i: usize) {
        if let Some(fd) = self.services[i].pidfd.take() {
            let _ = self.epoll.delete(fd.as_fd());
        }
    }

    /// A supervised process exited (its pidfd is readable, or it was gone already).
    fn on_pidfd(&mut self, i: usize, generation: u64) {
        let s = &self.services[i];
        if (s.pidfd_gen & 0xffff_ffff) != generation || s.pid.is_none() {
            return;
        }
        let status = match &s.pidfd {
            Some(fd) => match nix::sys::wait::waitid(
                Id::PIDFd(fd.as_fd()),
                WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG,
            ) {
                Ok(WaitStatus::StillAlive) => {
                    // Spurious wake: a pidfd is readable only once the process exits.
                    if s.pid.is_some_and(proc::is_alive) {
                        return;
                    }
                    "exited".to_string()
                }
                Ok(status) => describe_wait(status),
                // Not our child (adopted): its parent reaps it.
                Err(_) => "exited (status unknown: it is not the supervisor's child)".into(),
            },
            None => "exited".to_string(),
        };
        self.on_exit(i, status);
    }

    fn on_exit(&mut self, i: usize, status: String) {
        self.unwatch(i);
        let s = &mut self.services[i];
        let pid = s.pid.take();
        let run = s
            .run_started
            .take()
            .map(|t| t.elapsed())
            .unwrap_or_default();
        s.ready = false;
        s.last_exit = Some(status.clone());
        s.run_gen += 1;
        let name = s.name.clone();
        if s.busy.is_some() {
            // A stop or restart under way ended it: that is on purpose.
            return;
        }
        if !s.wanted || self.shutting_down {
            s.state = State::Stopped;
            log(&format!("{name}: pid {} {status}", pid.unwrap_or(0)));
            return;
        }
        log(&format!("{name}: pid {} {status}", pid.unwrap_or(0)));
        let err = Error::runtime(format!("it {status} before it was ready")).with_service(&name);
        self.settle(i, Err(err));
        // A running process ended: if a command acting directly ended it, the next
        // start must find that out (see `revive`).
        self.services[i].revive = true;
        self.failed_run(i, run);
    }

    /// A run ended that nobody asked to end: restart it as its policy says, or mark it
    /// failed (and with service_fail_fast=1, shut the playpen down).
    fn failed_run(&mut self, i: usize, run: Duration) {
        let s = &mut self.services[i];
        let Some(settings) = s.prepared.as_ref().map(|p| Arc::clone(&p.settings)) else {
            // Its configuration is not known yet (just after launch): decide later.
            s.undecided = true;
            s.state = State::Backoff;
            return;
        };
        let allowed = match settings.restart_policy {
            RestartPolicy::Never => false,
            RestartPolicy::Times(n) => s.restarts < n,
            RestartPolicy::Always => true,
        };
        let name = s.name.clone();
        if !allowed {
            s.state = State::Failed;
            s.wanted = false;
            let why = match settings.restart_policy {
                RestartPolicy::Never => "service_restart_policy=none".to_string(),
                _ => format!("out of restarts after {}", s.restarts),
            };
            log(&format!("{name}: failed ({why})"));
            s.note = Some(format!("failed: {why}"));
            if settings.fail_fast {
                log(&format!(
                    "{name} failed for good and has service_fail_fast=1: stopping the playpen"
                ));
                self.begin_shutdown(None, 1, Some(name));
            }
            return;
        }
        let (delay, streak) = backoff::next_delay(run, s.streak, settings.restart_backoff_max);
        s.streak = streak;
        s.restarts += 1;
        if delay.is_zero() {
            log(&format!("{name}: restarting"));
            self.restart_after_exit(i);
        } else {
            log(&format!(
                "{name}: restarting in {:.1} s",
                delay.as_secs_f64()
            ));
            self.services[i].state = State::Backoff;
            self.set_timer(i, Instant::now() + delay, Due::Restart(i));
        }
    }

    fn set_timer(&mut self, i: usize, at: Instant, due: Due) {
        self.cancel_timer(i);
        let key = (at, self.next_id);
        self.next_id += 1;
        self.timers.insert(key, due);
        self.services[i].timer = Some(key);
    }

    fn cancel_timer(&mut self, i: usize) {
        if let Some(key) = self.services[i].timer.take() {
            self.timers.remove(&key);
        }
    }

    fn launch_start(&mut self, i: usize) {
        self.launch(i, false);
    }

    /// Start it again after an exit nobody asked for. The job first waits for the
    /// service's lock and finds out whether a command acting directly stopped it
    /// meanwhile (its start record is gone): then it stays stopped.
    fn restart_after_exit(&mut self, i: usize) {
        let revive = self.services[i].revive;
        self.launch(i, revive);
    }

    fn launch(&mut self, i: usize, revive: bool) {
        let s = &mut self.services[i];
        if s.busy.is_some() {
            return;
        }
        let Some(prepared) = s.prepared.clone() else {
            let err = Error::runtime("its configuration is not known to the supervisor")
                .with_service(&s.name)
                .with_hint(format!("run `servicectl start {}`", s.name));
            s.state = State::Failed;
            self.settle(i, Err(err));
            return;
        };
        if let Some(problem) = s.problem.clone() {
            s.state = State::Failed;
            s.wanted = false;
            s.note = Some(problem.message.clone());
            self.settle(i, Err(problem));
            return;
        }
        if !matches!(prepared.settings.service_type, ServiceType::Init) {
            let result = self.arm(i, &prepared);
            if let Err(e) = &result {
                log(&e.to_string());
                let s = &mut self.services[i];
                s.state = State::Failed;
                s.wanted = false;
                s.note = Some(e.message.clone());
            }
            self.settle(i, result);
            return;
        }
        let s = &mut self.services[i];
        s.busy = Some(Busy::Start);
        s.state = State::Starting;
        self.cancel_timer(i);
        let job = if revive {
            Job::Revive(prepared)
        } else {
            Job::Start(prepared)
        };
        self.spawn_job(Tag::Lifecycle(i, Busy::Start), job);
    }

    fn launch_stop(&mut self, i: usize) {
        let s = &mut self.services[i];
        s.wanted = false;
        let timer = s.timer.take();
        if let Some(key) = timer {
            self.timers.remove(&key);
        }
        let s = &mut self.services[i];
        if s.busy.is_some() {
            // The start or restart under way is followed by a stop (see on_lifecycle).
            return;
        }
        let kind = s
            .settings()
            .is_some_and(|st| !matches!(st.service_type, ServiceType::Init));
        if kind || s.armed.is_some() || !s.children.is_empty() {
            return self.disarm(i);
        }
        let running = s.pid.is_some() || (s.state == State::Running && s.pidfd.is_none());
        let prepared = s.prepared.clone();
        match prepared {
            Some(p) if running || matches!(s.state, State::Running | State::Starting) => {
                s.busy = Some(Busy::Stop);
                s.state = State::Stopping;
                self.spawn_job(Tag::Lifecycle(i, Busy::Stop), Job::Stop(p));
            }
            Some(p) => {
                // Nothing runs; the files may still need a clean-up (a stale pidfile).
                s.state = State::Stopped;
                s.busy = Some(Busy::Stop);
                self.spawn_job(Tag::Lifecycle(i, Busy::Stop), Job::Stop(p));
            }
            None if running => {
                let err = Error::runtime(
                    "the supervisor does not know its configuration, so it cannot stop it",
                )
                .with_service(&s.name);
                self.settle(i, Err(err));
            }
            None => {
                s.state = State::Stopped;
                self.settle(i, Ok(Outcome::AlreadyStopped));
            }
        }
    }

    fn launch_restart(&mut self, i: usize) {
        let s = &mut self.services[i];
        s.wanted = true;
        s.restarts = 0;
        s.streak = 0;
        if s.busy.is_some() {
            let err = Error::runtime("another operation on it is under way")
                .with_service(&s.name)
                .with_hint("try again in a moment");
            self.settle(i, Err(err));
            return;
        }
        let Some(prepared) = s.prepared.clone() else {
            return self.launch_start(i);
        };
        if let Some(problem) = s.problem.clone() {
            self.settle(i, Err(problem));
            return;
        }
        if !matches!(prepared.settings.service_type, ServiceType::Init) {
            // Disarm (ending what runs), then arm again: `wanted` makes the end of the
            // disarm start it.
            self.disarm(i);
            if self.services[i].busy.is_none() {
                self.launch_start(i);
            }
            return;
        }
        s.busy = Some(Busy::Restart);
        s.state = State::Starting;
        self.cancel_timer(i);
        self.spawn_job(Tag::Lifecycle(i, Busy::Restart), Job::Restart(prepared));
    }

    /// A start, stop or restart job finished.
    fn on_lifecycle(&mut self, i: usize, busy: Busy, result: Result<Outcome>) {
        self.services[i].busy = None;
        let name = self.services[i].name.clone();
        match (busy, result) {
            (Busy::Stop, result) => {
                let s = &mut self.services[i];
                match &result {
                    Ok(o) => {
                        if !matches!(o, Outcome::AlreadyStopped) {
                            log(&format!("{name}: {o}"));
                        }
                        if s.pid.is_some() {
                            // Its exit event may not have been read yet: it is gone.
                            self.unwatch(i);
                            self.services[i].pid = None;
                        }
                        let s = &mut self.services[i];
                        s.state = State::Stopped;
                        s.ready = false;
                        s.note = None;
                    }
                    Err(e) => log(&format!("{name}: stop failed: {e}")),
                }
                self.settle(i, result);
                if self.services[i].wanted && !self.shutting_down {
                    self.launch_start(i);
                }
            }
            (Busy::Start, Ok(Outcome::AlreadyStopped)) => {
                // A revive found the service stopped on purpose by another command.
                log(&format!(
                    "{name}: stopped by another command; not restarted"
                ));
                let s = &mut self.services[i];
                s.state = State::Stopped;
                s.wanted = false;
                self.settle(i, Ok(Outcome::AlreadyStopped));
            }
            (_, Ok(Outcome::StoppedForFiledep { pid, file })) => {
                let s = &mut self.services[i];
                s.state = State::Stopped;
                s.wanted = false;
                self.unwatch(i);
                self.services[i].pid = None;
                self.settle(i, Ok(Outcome::StoppedForFiledep { pid, file }));
            }
            (_, Ok(outcome)) => {
                let new_pid = outcome.pid();
                let s = &mut self.services[i];
                s.outcome = Some(outcome.clone());
                s.note = None;
                let reloaded = matches!(outcome, Outcome::Reloaded { .. });
                if !matches!(outcome, Outcome::AlreadyRunning { .. }) {
                    log(&format!("{name}: {outcome}"));
                }
                if !reloaded {
                    s.run_gen += 1;
                    s.run_started = Some(Instant::now());
                    s.ready = false;
                }
                s.state = State::Starting;
                match new_pid {
                    Some(pid) if Some(pid) != self.services[i].pid => self.watch(i, pid),
                    Some(_) => {}
                    None => self.unwatch(i),
                }
                if self.services[i].run_started.is_none() && !reloaded {
                    // watch() found it gone at once; on_exit has dealt with it.
                    return;
                }
                if !self.services[i].wanted || self.shutting_down {
                    self.launch_stop(i);
                } else if reloaded {
                    self.mark_ready(i);
                } else {
                    self.begin_readiness(i);
                }
            }
            (_, Err(e)) => {
                log(&format!("{e}"));
                let s = &mut self.services[i];
                s.note = Some(e.message.clone());
                s.last_exit = Some(format!("failed to start: {}", e.message));
                self.settle(i, Err(e));
                let s = &mut self.services[i];
                if s.pid.is_some() {
                    // A failed restart that left the old process running.
                    s.state = State::Running;
                } else if s.wanted && !self.shutting_down {
                    // Our own start failed (and removed its files): just start again.
                    s.revive = false;
                    self.failed_run(i, Duration::ZERO);
                } else {
                    s.state = State::Stopped;
                }
            }
        }
    }

    /// Ready when its ping passes; without a ping, now (the start has waited its grace).
    fn begin_readiness(&mut self, i: usize) {
        let s = &mut self.services[i];
        let Some(prepared) = s.prepared.clone() else {
            return self.mark_ready(i);
        };
        match lifecycle::ping_runnable(&self.playpen, &prepared) {
            Ok(Some(_)) => {
                s.ready_by = Some(Instant::now() + prepared.settings.depends_timeout);
                s.ping_pause = Duration::from_millis(10);
                self.ping(i);
            }
            _ => self.mark_ready(i),
        }
    }

    fn ping(&mut self, i: usize) {
        let s = &self.services[i];
        let Some(prepared) = s.prepared.clone() else {
            return;
        };
        let left = s
            .ready_by
            .map(|t| t.saturating_duration_since(Instant::now()))
            .unwrap_or(prepared.settings.depends_timeout)
            .max(Duration::from_millis(100));
        let run_gen = s.run_gen;
        self.spawn_job(Tag::Ping(i, run_gen), Job::Ping(prepared, left));
    }

    fn on_ping(&mut self, i: usize, run_gen: u64, ok: bool, detail: String) {
        let s = &mut self.services[i];
        if s.run_gen != run_gen || s.ready || s.busy.is_some() {
            return;
        }
        if ok {
            return self.mark_ready(i);
        }
        let now = Instant::now();
        if s.ready_by.is_some_and(|by| now < by) {
            let pause = s.ping_pause;
            s.ping_pause = (pause * 2).min(PING_PAUSE_MAX);
            self.set_timer(i, now + pause, Due::Ping(i, run_gen));
            return;
        }
        // It runs but does not answer: dependants must not wait for ever.
        s.state = State::Running;
        s.note = Some(format!("not ready: its ping fails ({detail})"));
        let err = Error::runtime(format!("started, but its ping still fails: {detail}"))
            .with_service(&s.name);
        log(&format!("{}", err));
        self.settle(i, Err(err));
    }

    fn mark_ready(&mut self, i: usize) {
        let s = &mut self.services[i];
        s.ready = true;
        s.state = State::Running;
        s.note = None;
        let outcome = s
            .outcome
            .take()
            .unwrap_or(Outcome::AlreadyRunning { pid: s.pid });
        self.settle(i, Ok(outcome));
        self.check_waiters();
    }

    /// The service got where the batches waiting for it wanted it (or failed to).
    fn settle(&mut self, i: usize, result: Result<Outcome>) {
        let name = self.services[i].name.clone();
        for id in std::mem::take(&mut self.services[i].waiting) {
            if let Some(batch) = self.batches.get_mut(&id) {
                batch.results.entry(name.clone()).or_insert(result.clone());
                self.dirty.push(id);
            }
        }
        self.check_waiters();
    }

    // ---- batches ----

    fn new_batch(&mut self, batch: Batch) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.batches.insert(id, batch);
        self.dirty.push(id);
        id
    }

    fn flush_batches(&mut self) {
        while let Some(id) = self.dirty.pop() {
            self.advance(id);
        }
    }

    fn advance(&mut self, id: u64) {
        loop {
            let Some(batch) = self.batches.get_mut(&id) else {
                return;
            };
            // The first pending service whose prerequisites are settled.
            let mut launch = None;
            let mut skip = None;
            for (pos, name) in batch.pending.iter().enumerate() {
                let prereqs = batch.waits_for.get(name).cloned().unwrap_or_default();
                if let Some(failed) = prereqs
                    .iter()
                    .find(|p| matches!(batch.results.get(*p), Some(Err(_))))
                {
                    skip = Some((pos, failed.clone()));
                    break;
                }
                if prereqs
                    .iter()
                    .all(|p| batch.results.contains_key(p) || !batch.verbs.contains_key(p))
                {
                    launch = Some(pos);
                    break;
                }
            }
            if let Some((pos, failed)) = skip {
                let name = batch.pending.remove(pos);
                let verb = batch.verbs[&name];
                let err = match verb {
                    Verb::Stop => Error::new(
                        ErrorKind::NotAttempted,
                        format!(
                            "not stopped because {failed}, which depends on it, failed to stop"
                        ),
                    )
                    .with_hint(format!("stop {failed} first (its error is above)")),
                    _ => Error::new(
                        ErrorKind::NotAttempted,
                        format!("not started because {failed}, which it depends on, failed"),
                    )
                    .with_hint(format!(
                        "fix {failed} (its error is above), then run this again"
                    )),
                }
                .with_service(&name);
                batch.results.insert(name, Err(err));
                continue;
            }
            let Some(pos) = launch else {
                break;
            };
            let name = batch.pending.remove(pos);
            let verb = batch.verbs[&name];
            let i = self.service_index(&name);
            self.services[i].waiting.push(id);
            match verb {
                Verb::Start => self.request_start(i),
                Verb::Stop => self.launch_stop(i),
                Verb::Restart => self.launch_restart(i),
            }
        }
        let Some(batch) = self.batches.get(&id) else {
            return;
        };
        if !batch.pending.is_empty() || batch.verbs.keys().any(|n| !batch.results.contains_key(n)) {
            return;
        }
        let batch = self.batches.remove(&id).expect("present");
        let mut rows: Vec<Row> = batch
            .order
            .iter()
            .filter_map(|n| batch.results.get(n).map(|r| row(n, r)))
            .collect();
        rows.extend(batch.extra);
        match batch.conn {
            Some(conn) => self.reply(
                conn,
                &Reply::Results {
                    results: rows,
                    warnings: batch.warnings,
                },
            ),
            None => {
                for r in rows {
                    if let Some(e) = r.error {
                        log(&Error::from(e).to_string());
                    }
                }
            }
        }
        if let Some(code) = batch.exit_after {
            self.exit = Some(code);
        }
    }

    /// Start (or keep) a service as part of a batch; it settles once ready.
    fn request_start(&mut self, i: usize) {
        let s = &mut self.services[i];
        s.wanted = true;
        match (s.busy, s.state) {
            (Some(Busy::Stop), _) => {} // on_lifecycle starts it after the stop
            (Some(_), _) => {}          // on its way
            (None, State::Running) if s.ready => {
                let pid = s.pid;
                self.settle(i, Ok(Outcome::AlreadyRunning { pid }));
            }
            (None, State::Armed) => self.settle(i, Ok(Outcome::AlreadyRunning { pid: None })),
            (None, State::Running | State::Starting) if s.pid.is_some() => {
                // Its readiness is being checked.
            }
            _ => {
                s.restarts = 0;
                s.streak = 0;
                self.launch_start(i);
            }
        }
    }

    /// A batch for `verb` over `names` (already in dependency order), replying to `conn`.
    fn batch(
        &mut self,
        conn: Option<u64>,
        starts: &[String],
        stops: &[String],
        verb: Verb,
        deps: &Deps,
    ) -> Batch {
        let mut verbs = BTreeMap::new();
        for n in starts {
            verbs.insert(n.clone(), verb);
        }
        for n in stops {
            verbs.insert(n.clone(), Verb::Stop);
        }
        let mut waits_for: Deps = BTreeMap::new();
        for (name, verb) in &verbs {
            let list = match verb {
                Verb::Stop => deps
                    .iter()
                    .filter(|(other, ds)| {
                        verbs.get(*other) == Some(&Verb::Stop) && ds.contains(name)
                    })
                    .map(|(other, _)| other.clone())
                    .collect(),
                _ => deps
                    .get(name)
                    .into_iter()
                    .flatten()
                    .filter(|d| verbs.get(*d).is_some_and(|v| *v != Verb::Stop))
                    .cloned()
                    .collect(),
            };
            waits_for.insert(name.clone(), list);
        }
        let mut order: Vec<String> = starts.to_vec();
        let mut stop_order: Vec<String> = stops.to_vec();
        stop_order.reverse();
        order.extend(stop_order);
        Batch {
            conn,
            verbs,
            waits_for,
            pending: order.clone(),
            order,
            results: BTreeMap::new(),
            extra: Vec::new(),
            warnings: Vec::new(),
            exit_after: None,
        }
    }

    /// The dependency graph of the supervised services, from their known settings.
    fn known_deps(&self) -> Deps {
        self.services
            .iter()
            .map(|s| {
                let deps = s
                    .settings()
                    .map(|st| {
                        st.depends
                            .iter()
                            .filter(|d| self.index.contains_key(*d) && **d != s.name)
                            .cloned()
                            .collect()
                    })
                    .unwrap_or_default();
                (s.name.clone(), deps)
            })
            .collect()
    }

    /// Stop everything, dependants first, then exit with `code`.
    fn begin_shutdown(&mut self, conn: Option<u64>, code: i32, culprit: Option<String>) {
        if self.shutting_down {
            if let Some(conn) = conn {
                // Answered when the shutdown under way is done.
                let batch = self
                    .batches
                    .values_mut()
                    .find(|b| b.exit_after.is_some() && b.conn.is_none());
                match batch {
                    Some(b) => b.conn = Some(conn),
                    None => self.reply(
                        conn,
                        &Reply::Results {
                            results: Vec::new(),
                            warnings: vec!["the supervisor is shutting down already".into()],
                        },
                    ),
                }
            }
            return;
        }
        self.shutting_down = true;
        match &culprit {
            Some(name) => log(&format!(
                "shutting down: {name} failed (service_fail_fast=1)"
            )),
            None => log("shutting down: stopping every service"),
        }
        for i in 0..self.services.len() {
            self.cancel_timer(i);
            self.services[i].wanted = false;
        }
        let deps = self.known_deps();
        let order = crate::ops::graph::order(&deps);
        let stops: Vec<String> = order
            .into_iter()
            .filter(|n| {
                let s = &self.services[self.index[n]];
                s.pid.is_some()
                    || s.busy.is_some()
                    || s.state == State::Running
                    || s.armed.is_some()
                    || !s.children.is_empty()
            })
            .collect();
        let mut batch = self.batch(conn, &[], &stops, Verb::Stop, &deps);
        batch.exit_after = Some(code);
        if let Some(name) = culprit {
            batch.warnings.push(format!(
                "{name} failed for good and has service_fail_fast=1: the playpen was stopped"
            ));
        }
        self.new_batch(batch);
    }

    // ---- jobs ----

    fn spawn_job(&mut self, tag: Tag, job: Job) {
        self.jobs += 1;
        jobs::spawn(&self.playpen, tag, job, &self.tx, &self.wake);
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
                (Tag::Rotate(i), output) => {
                    self.services[i].rotating = false;
                    if let Output::Rotated(Err(e)) = output {
                        log(&format!(
                            "{}: cannot rotate its output: {e}",
                            self.services[i].name
                        ));
                    }
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

    /// Something changed in var/run: output files grew (rotate those over their
    /// service_log_max_bytes), or a command acting directly (a package manager's hook)
    /// started or stopped a service behind the supervisor's back.
    fn on_output_written(&mut self) {
        use nix::sys::inotify::AddWatchFlags;
        let Some(inotify) = &self.inotify else {
            return;
        };
        let mut grown = BTreeSet::new();
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
                if let Some(service) = file.strip_suffix(".output") {
                    grown.insert(service.to_string());
                } else if let Some(service) = file.strip_suffix(".start") {
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
        for name in grown {
            let Some(&i) = self.index.get(&name) else {
                continue;
            };
            if self.services[i].rotating {
                continue;
            }
            let log_settings = self.services[i]
                .settings()
                .map(|s| s.log)
                .unwrap_or(crate::config::settings::Settings::default().log);
            let path = self.playpen.output_file(&name);
            if crate::process::output::file_len(&path) > log_settings.max_bytes {
                self.services[i].rotating = true;
                self.spawn_job(Tag::Rotate(i), Job::Rotate(path, log_settings));
            }
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

    // ---- clients ----

    fn on_accept(&mut self) {
        loop {
            let stream = match self.listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log(&format!("accept failed: {e}"));
                    return;
                }
            };
            let refusal = match nix::sys::socket::getsockopt(
                &stream,
                nix::sys::socket::sockopt::PeerCredentials,
            ) {
                Ok(cred) if cred.uid() == self.my_uid || cred.uid() == 0 => None,
                Ok(cred) => Some(format!(
                    "uid {} may not control this supervisor (only uid {} and root may)",
                    cred.uid(),
                    self.my_uid
                )),
                Err(e) => Some(format!("cannot read the client's credentials: {e}")),
            };
            let refusal = refusal.or_else(|| {
                (self.conns.len() >= MAX_CLIENTS)
                    .then(|| format!("too many clients (at most {MAX_CLIENTS} at once)"))
            });
            if let Some(why) = refusal {
                let mut stream = stream;
                let _ = stream.set_nonblocking(true);
                let e = Error::new(ErrorKind::Runtime, format!("refused: {why}"));
                let _ = stream.write_all(&control::encode_reply(&Reply::error(&e)));
                continue;
            }
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            let id = self.next_id;
            self.next_id += 1;
            if self
                .epoll
                .add(
                    stream.as_fd(),
                    EpollEvent::new(EpollFlags::EPOLLIN, CLIENT | id),
                )
                .is_err()
            {
                continue;
            }
            self.conns.insert(
                id,
                Conn {
                    stream,
                    lines: LineBuffer::new(control::MAX_LINE),
                    out: Vec::new(),
                    busy: false,
                    closing: false,
                    writable_armed: false,
                },
            );
        }
    }

    fn close(&mut self, id: u64) {
        if let Some(conn) = self.conns.remove(&id) {
            let _ = self.epoll.delete(conn.stream.as_fd());
        }
    }

    fn on_client(&mut self, id: u64, events: EpollFlags) {
        if events.contains(EpollFlags::EPOLLOUT) {
            self.flush_output(id);
        }
        if !events.intersects(EpollFlags::EPOLLIN | EpollFlags::EPOLLHUP | EpollFlags::EPOLLERR) {
            return;
        }
        let mut chunk = [0u8; 64 * 1024];
        // Read what is there (bounded per wake-up, so one client cannot starve others).
        for _ in 0..32 {
            let Some(conn) = self.conns.get_mut(&id) else {
                return;
            };
            if conn.closing {
                return;
            }
            match conn.stream.read(&mut chunk) {
                Ok(0) => {
                    // The client went away; a request it left is still carried out.
                    conn.closing = true;
                    let _ = self.epoll.delete(conn.stream.as_fd());
                    if !conn.busy && conn.out.is_empty() {
                        self.close(id);
                    }
                    return;
                }
                Ok(n) => {
                    if conn.lines.push(&chunk[..n]).is_err() {
                        let e = Error::new(
                            ErrorKind::Config,
                            format!(
                                "bad control message: a line longer than {} bytes",
                                control::MAX_LINE
                            ),
                        );
                        conn.closing = true;
                        self.reply(id, &Reply::error(&e));
                        return;
                    }
                    self.serve_lines(id);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.close(id);
                    return;
                }
            }
        }
    }

    /// Handle complete request lines, one request at a time per connection.
    fn serve_lines(&mut self, id: u64) {
        loop {
            let Some(conn) = self.conns.get_mut(&id) else {
                return;
            };
            if conn.busy {
                return;
            }
            let Some(line) = conn.lines.next_line() else {
                return;
            };
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match control::decode_request(&line) {
                Ok(op) => {
                    conn.busy = true;
                    self.handle(id, op);
                }
                Err(e) => self.reply(id, &Reply::error(&e)),
            }
        }
    }

    fn handle(&mut self, conn: u64, op: Op) {
        let command = |op: Op| {
            Tag::Prepare(Purpose::Command {
                conn: Some(conn),
                op,
            })
        };
        match op.clone() {
            Op::Hello => self.reply(
                conn,
                &Reply::Hello {
                    pid: std::process::id() as i32,
                    version: env!("CARGO_PKG_VERSION").to_string(),
                },
            ),
            Op::Status { services } => {
                let reply = match self.status(&services) {
                    Ok(views) => Reply::Status { services: views },
                    Err(e) => Reply::error(&e),
                };
                self.reply(conn, &reply);
            }
            Op::Wait {
                services,
                timeout_secs,
            } => self.wait(conn, &services, timeout_secs),
            Op::Shutdown => self.begin_shutdown(Some(conn), 0, None),
            _ if self.shutting_down => {
                let e = Error::runtime("the supervisor is shutting down")
                    .with_hint("run the command again once it has exited");
                self.reply(conn, &Reply::error(&e));
            }
            Op::Start { services } => {
                self.spawn_job(command(op), Job::Prepare(Scope::Start(services)))
            }
            Op::Stop { services } => {
                let known = self
                    .services
                    .iter()
                    .filter(|s| s.prepared.is_some())
                    .map(|s| s.name.clone())
                    .collect();
                self.spawn_job(
                    command(op),
                    Job::Prepare(Scope::Stop {
                        names: services,
                        known,
                    }),
                )
            }
            Op::Restart { services } => {
                self.spawn_job(command(op), Job::Prepare(Scope::Named(services)))
            }
            Op::Up => self.spawn_job(command(op), Job::Prepare(Scope::Up)),
            Op::Down => self.spawn_job(command(op), Job::Prepare(Scope::Down)),
        }
    }

    fn reply(&mut self, id: u64, reply: &Reply) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        conn.busy = false;
        conn.out.extend_from_slice(&control::encode_reply(reply));
        self.flush_output(id);
        // Lines that arrived meanwhile.
        self.serve_lines(id);
    }

    fn flush_output(&mut self, id: u64) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        while !conn.out.is_empty() {
            match conn.stream.write(&conn.out) {
                Ok(0) => break,
                Ok(n) => {
                    conn.out.drain(..n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if !conn.writable_armed {
                        conn.writable_armed = true;
                        let flags = if conn.closing {
                            EpollFlags::EPOLLOUT
                        } else {
                            EpollFlags::EPOLLIN | EpollFlags::EPOLLOUT
                        };
                        let mut ev = EpollEvent::new(flags, CLIENT | id);
                        if self.epoll.modify(conn.stream.as_fd(), &mut ev).is_err() {
                            let _ = self.epoll.add(conn.stream.as_fd(), ev);
                        }
                    }
                    return;
                }
                Err(_) => {
                    self.close(id);
                    return;
                }
            }
        }
        if conn.closing && !conn.busy {
            self.close(id);
            return;
        }
        if conn.writable_armed {
            conn.writable_armed = false;
            let mut ev = EpollEvent::new(EpollFlags::EPOLLIN, CLIENT | id);
            let _ = self.epoll.modify(conn.stream.as_fd(), &mut ev);
        }
    }

    /// Before exiting: give each client its answer (briefly blocking).
    fn flush_all_output(&mut self) {
        for conn in self.conns.values_mut() {
            if conn.out.is_empty() {
                continue;
            }
            let _ = conn.stream.set_nonblocking(false);
            let _ = conn.stream.set_write_timeout(Some(Duration::from_secs(1)));
            let _ = conn.stream.write_all(&conn.out);
        }
    }

    // ---- status and wait ----

    /// One service as status shows it: from memory, with no file read when its
    /// configuration is known (the process's start time was read when it was watched).
    fn view(&self, s: &Service, uptime: Option<f64>) -> ServiceView {
        let age = match (s.pid, s.start_ticks, uptime) {
            (Some(_), Some(ticks), Some(up)) => Some(proc::age(ticks, up).as_secs()),
            _ => None,
        };
        let record = match &s.prepared {
            Some(_) => None,
            None => pidfile::read_record(&self.playpen, &s.name),
        };
        let listening = s
            .armed
            .as_ref()
            .and_then(|a| a.listener.as_ref())
            .and_then(|l| match l {
                Listener::Tcp(l) => l.local_addr().ok(),
                Listener::Udp(u) => u.local_addr().ok(),
            });
        let ports = match (&s.prepared, &record) {
            (Some(p), _) if listening.is_some() => {
                let port = listening.map(|a| a.port()).unwrap_or(0);
                let mut ports = p.ports.clone();
                if !ports.iter().any(|(_, n)| *n == port) {
                    ports.push(("service_port".to_string(), port));
                }
                ports
            }
            _ if s.pid.is_none() => Vec::new(),
            (Some(p), _) => p.ports.clone(),
            (None, Some(r)) => r.ports.clone(),
            (None, None) => Vec::new(),
        };
        let version = match (&s.prepared, record) {
            (Some(p), _) => p.config.id.version.clone(),
            (None, r) => r.and_then(|r| r.version),
        };
        ServiceView {
            name: s.name.clone(),
            state: s.state.word().to_string(),
            pid: s.pid,
            uptime_secs: age,
            restarts: s.restarts,
            last_exit: s.last_exit.clone(),
            ready: s.ready,
            wanted: s.wanted,
            ports,
            version,
            note: s.note.clone(),
            next_run: s
                .armed
                .as_ref()
                .and_then(|a| a.next)
                .map(super::cron::local_text),
            last_run: s.last_run.map(super::cron::local_text),
            handlers: s
                .settings()
                .filter(|st| !matches!(st.service_type, ServiceType::Init))
                .map(|_| s.children.len() as u32),
        }
    }

    fn status(&mut self, names: &[String]) -> Result<Vec<ServiceView>> {
        let uptime = proc::uptime_secs();
        if names.is_empty() {
            return Ok(self.services.iter().map(|s| self.view(s, uptime)).collect());
        }
        let mut catalog = None;
        let mut out = Vec::new();
        for name in names {
            if let Some(&i) = self.index.get(name) {
                out.push(self.view(&self.services[i], uptime));
                continue;
            }
            // Not supervised: known at all? (Files only, no process.)
            let catalog = match &catalog {
                Some(c) => c,
                None => {
                    catalog.insert(crate::playpen::catalog::Catalog::load(&self.playpen, None)?)
                }
            };
            catalog.get(name)?;
            let i = self.service_index(name);
            out.push(self.view(&self.services[i], uptime));
        }
        Ok(out)
    }

    fn wait(&mut self, conn: u64, names: &[String], timeout: Option<f64>) {
        if names.is_empty() && !self.launched {
            self.early_waits.push((conn, timeout));
            return;
        }
        let services: Vec<usize> = if names.is_empty() {
            (0..self.services.len())
                .filter(|&i| self.services[i].wanted)
                .collect()
        } else {
            match self.status(names) {
                Ok(_) => names.iter().map(|n| self.index[n]).collect(),
                Err(e) => return self.reply(conn, &Reply::error(&e)),
            }
        };
        let id = self.next_id;
        self.next_id += 1;
        let timeout = Duration::from_secs_f64(timeout.unwrap_or(60.0).clamp(0.0, 1e7));
        let key = (Instant::now() + timeout, id);
        self.timers.insert(key, Due::WaitTimeout(id));
        self.waiters.insert(
            id,
            Waiter {
                conn,
                services,
                timer: Some(key),
            },
        );
        self.check_waiters();
    }

    fn check_waiters(&mut self) {
        let done: Vec<u64> = self
            .waiters
            .iter()
            .filter(|(_, w)| w.services.iter().all(|&i| self.services[i].ready))
            .map(|(id, _)| *id)
            .collect();
        for id in done {
            if let Some(w) = self.waiters.remove(&id) {
                self.answer_wait(w);
            }
        }
    }

    fn answer_wait(&mut self, w: Waiter) {
        if let Some(key) = w.timer {
            self.timers.remove(&key);
        }
        let (ready, not): (Vec<usize>, Vec<usize>) =
            w.services.iter().partition(|&&i| self.services[i].ready);
        let reply = Reply::Wait {
            ready: ready
                .iter()
                .map(|&i| self.services[i].name.clone())
                .collect(),
            not_ready: not
                .iter()
                .map(|&i| NotReady {
                    service: self.services[i].name.clone(),
                    state: self.services[i].state.word().to_string(),
                })
                .collect(),
        };
        self.reply(w.conn, &reply);
    }
}

// ---- cron and inetd ----

impl Supervisor {
    /// `start` of a cron or inetd service: schedule it, or bind its socket (before the
    /// reply, so a client may connect at once).
    fn arm(&mut self, i: usize, prepared: &Arc<Prepared>) -> Result<Outcome> {
        if self.services[i].armed.is_some() {
            return Ok(Outcome::AlreadyRunning { pid: None });
        }
        let name = self.services[i].name.clone();
        let output = crate::process::output::open_output(&self.playpen.output_file(&name))
            .map_err(|e| e.with_service(&name))?;
        let mut armed = Armed {
            schedule: None,
            next: None,
            listener: None,
            listening: false,
            output,
            program: None,
            null: std::fs::File::open("/dev/null").ok(),
        };
        let env = || {
            prepared
                .env
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_os_str()))
        };
        let path = prepared.env.get("PATH").map(|p| p.as_os_str());
        let mut fire_now = false;
        match &prepared.settings.service_type {
            ServiceType::Init => {}
            ServiceType::Cron(c) => {
                armed.schedule = super::cron::Schedule::new(&c.schedule);
                fire_now = armed.schedule.is_none();
                armed.program = Some(super::fork::Program::new(
                    "/bin/sh",
                    ["-c", c.command.as_str()],
                    env(),
                    path,
                    &self.playpen.root,
                ));
            }
            ServiceType::Inetd(d) => {
                let listener = self.bind_inetd(&name, d, prepared)?;
                self.epoll
                    .add(
                        listener.fd(),
                        EpollEvent::new(EpollFlags::EPOLLIN, INETD | i as u64),
                    )
                    .map_err(|e| Error::runtime(format!("cannot watch its socket: {e}")))?;
                armed.listening = true;
                armed.listener = Some(listener);
                armed.program = d.command.first().map(|program| {
                    super::fork::Program::new(
                        program,
                        d.command[1..].iter().map(String::as_str),
                        env(),
                        path,
                        &self.playpen.root,
                    )
                });
            }
        }
        let s = &mut self.services[i];
        s.armed = Some(armed);
        s.state = State::Armed;
        s.ready = true;
        s.wanted = true;
        s.note = None;
        self.services[i].run_started = Some(Instant::now());
        log(&format!("{name}: armed"));
        if fire_now {
            // @reboot: once, now.
            self.spawn_run(i);
        }
        self.schedule_cron(i);
        self.check_waiters();
        Ok(Outcome::Started { pid: None })
    }

    fn bind_inetd(&self, name: &str, d: &InetdSettings, prepared: &Prepared) -> Result<Listener> {
        let (label, port) = match &d.port {
            PortSetting::Number(n) => ("service_port".to_string(), *n),
            PortSetting::Variable(v) => match prepared.ports.iter().find(|(n, _)| n == v) {
                Some((n, p)) => (n.clone(), *p),
                None => {
                    return Err(Error::config(format!(
                        "service_port names {v}, which has no port value"
                    ))
                    .with_service(name));
                }
            },
        };
        let addr = std::net::SocketAddr::new(d.bind, port);
        let proto = match d.protocol {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        };
        let bound = match d.protocol {
            Protocol::Tcp => std::net::TcpListener::bind(addr).map(|l| {
                // Room for a burst of connections while at service_inetd_max (std
                // listens with a small backlog; listen again raises it).
                // SAFETY: listen on a socket we own.
                unsafe { libc::listen(std::os::fd::AsRawFd::as_raw_fd(&l), 1024) };
                Listener::Tcp(l)
            }),
            Protocol::Udp => std::net::UdpSocket::bind(addr).map(Listener::Udp),
        };
        let listener = bound.map_err(|e| {
            if e.kind() == std::io::ErrorKind::AddrInUse {
                let ports = [(label.clone(), port)];
                let held = crate::process::sockets::held_ports(&self.playpen, [(name, &ports[..])]);
                if let Some((_, err)) = held.into_iter().next() {
                    return err.with_service(name);
                }
                Error::runtime(format!(
                    "cannot listen on {proto} {addr}: port {port} is in use"
                ))
                .with_service(name)
                .with_hint(format!(
                    "stop what holds port {port}, or set {label} to a free port"
                ))
            } else {
                Error::runtime(format!("cannot listen on {proto} {addr}: {e}")).with_service(name)
            }
        })?;
        let nonblocking = match &listener {
            Listener::Tcp(l) => l.set_nonblocking(true),
            Listener::Udp(u) => u.set_nonblocking(true),
        };
        nonblocking.map_err(|e| Error::runtime(format!("cannot set up its socket: {e}")))?;
        Ok(listener)
    }

    /// `stop`: no more fires or connections; end what runs (TERM to each process
    /// group, KILL after service_halt_timeout). Settles once nothing runs.
    fn disarm(&mut self, i: usize) {
        self.cancel_timer(i);
        let was_armed = match self.services[i].armed.take() {
            Some(a) => {
                if let Some(l) = &a.listener
                    && a.listening
                {
                    let _ = self.epoll.delete(l.fd());
                }
                log(&format!("{}: disarmed", self.services[i].name));
                true
            }
            None => false,
        };
        if self.services[i].children.is_empty() {
            let s = &mut self.services[i];
            s.state = State::Stopped;
            s.ready = false;
            s.run_started = None;
            if !s.wanted || self.shutting_down {
                let outcome = if was_armed {
                    Outcome::Stopped {
                        pid: None,
                        warning: None,
                    }
                } else {
                    Outcome::AlreadyStopped
                };
                self.settle(i, Ok(outcome));
            }
            return;
        }
        let halt = self.services[i]
            .settings()
            .map(|s| s.halt_timeout)
            .unwrap_or(Duration::from_secs(10));
        let s = &mut self.services[i];
        s.state = State::Stopping;
        s.busy = Some(Busy::Stop);
        self.signal_children(i, Signal::SIGTERM);
        self.set_timer(i, Instant::now() + halt, Due::Kill(i));
    }

    /// The last run or handler of a disarmed service ended.
    fn finish_disarm(&mut self, i: usize) {
        self.cancel_timer(i);
        let s = &mut self.services[i];
        s.busy = None;
        s.state = State::Stopped;
        s.ready = false;
        s.run_started = None;
        if s.wanted && !self.shutting_down {
            self.launch_start(i);
        } else {
            self.settle(
                i,
                Ok(Outcome::Stopped {
                    pid: None,
                    warning: None,
                }),
            );
        }
    }

    fn signal_children(&self, i: usize, signal: Signal) {
        for &pid in &self.services[i].children {
            let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), signal);
        }
    }

    /// Set the timer for the next fire time after now and after the last minute fired
    /// (so a clock set back never fires a minute twice).
    fn schedule_cron(&mut self, i: usize) {
        let now = super::cron::wall_now();
        let after = (now.floor() as i64).max(self.services[i].last_fired.unwrap_or(i64::MIN));
        let Some(armed) = self.services[i].armed.as_mut() else {
            return;
        };
        let Some(schedule) = &armed.schedule else {
            return;
        };
        armed.next = schedule.next_after(after);
        if let Some(next) = armed.next {
            // A millisecond late, so that the wall clock has reached it on waking.
            let left = Duration::from_secs_f64((next as f64 - now).max(0.0) + 0.001);
            self.set_timer(i, Instant::now() + left, Due::Cron(i));
        }
    }

    /// The timer for a cron service's next fire time went off.
    fn on_cron(&mut self, i: usize) {
        let now = super::cron::wall_now().floor() as i64;
        let s = &self.services[i];
        let Some(next) = s.armed.as_ref().and_then(|a| a.next) else {
            return;
        };
        let name = s.name.clone();
        if now < next || s.last_fired.is_some_and(|last| next <= last) {
            // Early by the wall clock (it was set back): look again.
            return self.schedule_cron(i);
        }
        if now - next >= 60 {
            log(&format!(
                "{name}: the run due at {} starts {} s late (the clock was set forward, or the machine slept); runs due in between are not made up",
                super::cron::local_text(next),
                now - next
            ));
        }
        self.services[i].last_fired = Some(next);
        if self.services[i].children.is_empty() {
            self.spawn_run(i);
        } else {
            log(&format!(
                "{name}: the run due at {} is skipped: the previous run is still going",
                super::cron::local_text(next)
            ));
            self.services[i].note = Some(format!(
                "skipped the run due at {}: the previous run was still going",
                super::cron::local_text(next)
            ));
        }
        self.schedule_cron(i);
    }

    /// Run service_cron_command with sh.
    fn spawn_run(&mut self, i: usize) {
        use std::os::fd::AsRawFd;
        let s = &self.services[i];
        let Some(a) = s.armed.as_ref() else {
            return;
        };
        let (Some(program), Some(null)) = (&a.program, &a.null) else {
            return;
        };
        let out = a.output.as_raw_fd();
        match program.spawn(null.as_raw_fd(), out, out, &[]) {
            Ok(pid) => {
                self.services[i].last_run = Some(super::cron::wall_now() as i64);
                self.watch_child(i, pid);
            }
            Err(e) => {
                log(&format!("{}: cannot run its cron command: {e}", s.name));
                self.services[i].last_exit = Some(format!("failed to start: {e}"));
            }
        }
    }

    fn watch_child(&mut self, i: usize, pid: i32) {
        self.services[i].children.insert(pid);
        match proc::pidfd(pid) {
            Some(pidfd) => {
                let token = CHILD | pid as u64;
                if let Err(e) = self
                    .epoll
                    .add(pidfd.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, token))
                {
                    log(&format!("cannot watch pid {pid}: {e}"));
                }
                self.children.insert(pid, Child { service: i, pidfd });
            }
            // Gone and reaped already (it cannot be: it is our child); count it done.
            None => self.child_exited(pid, "exited".into()),
        }
    }

    /// A cron run or handler's pidfd is readable: it exited.
    fn on_child(&mut self, pid: i32) {
        let Some(child) = self.children.get(&pid) else {
            return;
        };
        let status = match nix::sys::wait::waitid(
            Id::PIDFd(child.pidfd.as_fd()),
            WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG,
        ) {
            Ok(WaitStatus::StillAlive) => return,
            Ok(status) => describe_wait(status),
            Err(_) => "exited".to_string(),
        };
        self.child_exited(pid, status);
    }

    fn child_exited(&mut self, pid: i32, status: String) {
        let i = match self.children.remove(&pid) {
            Some(child) => {
                let _ = self.epoll.delete(child.pidfd.as_fd());
                child.service
            }
            None => match self.services.iter().position(|s| s.children.contains(&pid)) {
                Some(i) => i,
                None => return,
            },
        };
        let s = &mut self.services[i];
        s.children.remove(&pid);
        let settings = s.settings().map(|st| st.service_type.clone());
        if let Some(ServiceType::Cron(_)) = settings {
            log(&format!("{}: cron run (pid {pid}) {status}", s.name));
            s.last_exit = Some(status);
        }
        if s.busy == Some(Busy::Stop) && s.children.is_empty() {
            return self.finish_disarm(i);
        }
        // Below the limit again: accept (tcp) or wait for the next datagram (udp).
        let max = match settings {
            Some(ServiceType::Inetd(d)) if d.protocol == Protocol::Tcp => d.max_handlers as usize,
            Some(ServiceType::Inetd(_)) => 1,
            _ => return,
        };
        let below = s.children.len() < max;
        if let Some(a) = s.armed.as_mut()
            && !a.listening
            && below
            && let Some(l) = &a.listener
        {
            a.listening = self
                .epoll
                .add(
                    l.fd(),
                    EpollEvent::new(EpollFlags::EPOLLIN, INETD | i as u64),
                )
                .is_ok();
        }
    }

    /// An inetd socket is readable: a connection (tcp) or a datagram (udp) waits.
    fn on_inetd(&mut self, i: usize) {
        let Some(ServiceType::Inetd(d)) = self.services[i]
            .settings()
            .map(|st| st.service_type.clone())
        else {
            return;
        };
        loop {
            let s = &mut self.services[i];
            let Some(a) = s.armed.as_mut() else {
                return;
            };
            let at_limit = match d.protocol {
                Protocol::Tcp => s.children.len() >= d.max_handlers as usize,
                Protocol::Udp => !s.children.is_empty(),
            };
            if at_limit {
                // The rest wait in the backlog (or the socket's queue) until one ends.
                if a.listening
                    && let Some(l) = &a.listener
                {
                    let _ = self.epoll.delete(l.fd());
                    a.listening = false;
                }
                return;
            }
            let (socket, peer): (OwnedFd, Option<std::net::SocketAddr>) = match &a.listener {
                Some(Listener::Tcp(l)) => match l.accept() {
                    Ok((stream, peer)) => (OwnedFd::from(stream), Some(peer)),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        log(&format!("{}: accept failed: {e}", s.name));
                        return;
                    }
                },
                Some(Listener::Udp(u)) => match u.try_clone() {
                    Ok(u) => {
                        // The handler reads the socket itself; it must block.
                        let _ = u.set_nonblocking(false);
                        (OwnedFd::from(u), None)
                    }
                    Err(e) => {
                        log(&format!("{}: cannot hand over its socket: {e}", s.name));
                        return;
                    }
                },
                None => return,
            };
            self.spawn_handler(i, socket, peer);
            if d.protocol == Protocol::Udp {
                // Not readable-level-triggered again until the handler has exited.
                if let Some(a) = self.services[i].armed.as_mut()
                    && a.listening
                    && let Some(l) = &a.listener
                {
                    let _ = self.epoll.delete(l.fd());
                    a.listening = false;
                }
                return;
            }
        }
    }

    fn spawn_handler(&mut self, i: usize, socket: OwnedFd, peer: Option<std::net::SocketAddr>) {
        use std::os::fd::AsRawFd;
        let s = &self.services[i];
        let Some(a) = s.armed.as_ref() else {
            return;
        };
        let Some(program) = &a.program else {
            return;
        };
        let extra: Vec<(&str, String)> = match peer {
            Some(peer) => vec![
                ("REMOTE_ADDR", peer.ip().to_string()),
                ("REMOTE_PORT", peer.port().to_string()),
            ],
            None => Vec::new(),
        };
        let fd = socket.as_raw_fd();
        match program.spawn(fd, fd, a.output.as_raw_fd(), &extra) {
            // Our copy of the socket closes here; the handler has its own.
            Ok(pid) => self.watch_child(i, pid),
            Err(e) => log(&format!("{}: cannot run its handler: {e}", s.name)),
        }
    }
}

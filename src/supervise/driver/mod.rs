//! The supervisor's driver: the one thread that owns every descriptor, waits on all of
//! them at once with epoll, turns what the kernel reports into [`Event`]s for the
//! state machine ([`super::machine`]) and carries out the [`Effect`]s it returns.
//!
//! It decides nothing: which service to start, when, what an exit means, what to
//! answer is the machine's. It reads the clock once per wake-up ([`Driver::now`]).
//!
//! Event sources: a signalfd (SIGTERM, SIGINT → shutdown; SIGHUP → up; SIGCHLD →
//! reap), the control socket and its clients, one pidfd per supervised process and per
//! cron run or inetd handler, a timerfd armed for the earliest deadline (of the
//! machine, and of clients that owe a request), an eventfd that worker threads write
//! when a job is done, inotify on `var/run` (commands acting directly), the inetd
//! listeners, and a second inotify on the folders of service_watch patterns
//! (`watch.rs`).
//!
//! Reaping: the supervisor is a child subreaper and the parent of what it starts, but
//! worker threads wait for their own children by PID (a start through its grace
//! period, hooks and checks). So it never reaps blindly while a job runs: a supervised
//! process is reaped through its pidfd (waitid P_PIDFD), and any other exited child
//! (an orphan reparented to us) only when no job is running.

mod adopt;
mod answers;
mod armed;
mod clients;
mod processes;
mod readiness;
mod watch;

use super::jobs;
use super::machine::{ClientId, Effect, Event, JobId, JobOutput, Machine, Now, Sid};
use crate::control::{Op, Reply};
use crate::error::{Error, Result};
use crate::playpen::Playpen;
use crate::process::proc;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus};
use std::collections::{HashMap, VecDeque};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Duration, Instant};

const SIGNALS: u64 = 1;
const LISTENER: u64 = 2;
const TIMER: u64 = 3;
const WAKE: u64 = 4;
const INOTIFY: u64 = 5;
const NOTIFY: u64 = 6;
/// The output keeper's pidfd: it exited.
const KEEPER: u64 = 7;
/// The folders of service_watch patterns (`watch.rs`).
const FILES: u64 = 8;
const CLIENT: u64 = 1 << 60;
const PIDFD: u64 = 2 << 60;
/// A cron run or an inetd handler, by PID.
const CHILD: u64 = 3 << 60;
/// An inetd service's listening socket, by service index.
const INETD: u64 = 4 << 60;
const KIND_MASK: u64 = 0xf << 60;

pub(super) fn log(message: &str) {
    eprintln!(
        "{} servicectl supervise: {message}",
        crate::text::log_stamp()
    );
}

pub(super) fn describe_wait(status: WaitStatus) -> String {
    match status {
        WaitStatus::Exited(_, code) => format!("exited with status {code}"),
        WaitStatus::Signaled(_, sig, _) => format!("was killed by signal {}", sig.as_str()),
        _ => "ended".to_string(),
    }
}

/// A supervised process's pidfd.
struct Watch {
    pid: i32,
    /// Shared with the census, which skips the process while it holds its PID.
    fd: Option<Arc<OwnedFd>>,
    generation: u64,
}

/// A cron run or inetd handler's pidfd.
struct Child {
    service: Sid,
    fd: OwnedFd,
}

pub struct Driver {
    playpen: Playpen,
    machine: Machine,
    /// The time read at the latest wake-up.
    clock: Now,
    epoll: Epoll,
    signals: SignalFd,
    listener: UnixListener,
    timer: TimerFd,
    /// The deadline the timer is armed for.
    armed_for: Option<Instant>,
    wake: Arc<EventFd>,
    inotify: Option<nix::sys::inotify::Inotify>,
    tx: Sender<(JobId, JobOutput)>,
    rx: Receiver<(JobId, JobOutput)>,
    orphans_waiting: bool,
    /// A preparation ended: return freed memory once no job runs.
    trim_memory: bool,
    conns: HashMap<ClientId, clients::Conn>,
    next_conn: ClientId,
    watches: HashMap<Sid, Watch>,
    next_generation: u64,
    children: HashMap<i32, Child>,
    /// Runs and handlers started here, until reaped: what each reads until its execve
    /// (it shares our memory), and its pidfd until `WatchChild` takes it.
    spawned: HashMap<i32, crate::supervise::fork::Launch>,
    armed: HashMap<Sid, armed::ArmedIo>,
    /// Events the effects of earlier events caused, handled before waiting again.
    queue: VecDeque<Event>,
    /// `status` requests that came before the launch decided.
    early_status: Vec<(ClientId, Vec<String>)>,
    /// What the shutdown's sweep found left, told to the shutdown's client.
    swept: Option<String>,
    my_uid: u32,
    exit: Option<i32>,
    /// The sd_notify socket services of `service_ready=notify` (or a watchdog) send to.
    notify: Option<crate::process::notify::NotifySocket>,
    /// The output keeper that programs write to (None: they write their files).
    keeper: Option<super::keeper::Keeper>,
    /// Its pidfd, in the epoll set: a keeper that dies is replaced.
    keeper_exit: Option<OwnedFd>,
    /// The last supervisor was killed: look for the runs and checks it left.
    after_kill: bool,
    /// inotify watches on `ext/services` and `services`.
    catalog_watches: Vec<nix::sys::inotify::WatchDescriptor>,
    /// `service_ready=log:` watches, by service.
    log_watches: HashMap<Sid, readiness::LogWatch>,
    /// Where each such service's output ended before its start.
    output_starts: HashMap<Sid, u64>,
    /// service_watch: the folders watched for each service.
    file_watches: watch::FileWatches,
}

impl Driver {
    pub fn new(
        playpen: &Playpen,
        listener: UnixListener,
        options: super::Options,
        keeper: Option<super::keeper::Keeper>,
        after_kill: bool,
    ) -> Result<Driver> {
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
        // and the signals arrive only through the signalfd. Children get a clean mask.
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
                    | nix::sys::inotify::AddWatchFlags::IN_CLOSE_WRITE
                    | nix::sys::inotify::AddWatchFlags::IN_DELETE,
            )
            .is_ok()
        });
        // The service folders: a service installed or removed while the supervisor runs
        // (`package install`, `new-service`, `remove-service`) is followed (§9.9).
        let mut catalog_watches = Vec::new();
        if let Some(i) = &inotify {
            use nix::sys::inotify::AddWatchFlags as F;
            for dir in [
                playpen.root.join("ext/services"),
                playpen.root.join("services"),
            ] {
                let _ = crate::playpen::fsutil::ensure_dir(&dir);
                if let Ok(wd) = i.add_watch(
                    &dir,
                    F::IN_CREATE | F::IN_DELETE | F::IN_MOVED_TO | F::IN_MOVED_FROM | F::IN_ONLYDIR,
                ) {
                    catalog_watches.push(wd);
                }
            }
        }
        let input = EpollFlags::EPOLLIN;
        let add = |fd: std::os::fd::BorrowedFd, token| {
            epoll
                .add(fd, EpollEvent::new(input, token))
                .map_err(|e| sys("epoll", e))
        };
        add(signals.as_fd(), SIGNALS)?;
        add(listener.as_fd(), LISTENER)?;
        add(timer.as_fd(), TIMER)?;
        add(wake.as_fd(), WAKE)?;
        if let Some(i) = &inotify {
            add(i.as_fd(), INOTIFY)?;
        }
        let keeper_exit = keeper.as_ref().and_then(|k| k.exit_fd());
        if let Some(fd) = &keeper_exit {
            add(fd.as_fd(), KEEPER)?;
        }
        let notify = readiness::bind_notify(playpen);
        if let Some(n) = &notify {
            add(n.as_fd(), NOTIFY)?;
        }
        let (tx, rx) = channel();
        Ok(Driver {
            playpen: playpen.clone(),
            machine: Machine::new(options.no_start),
            clock: Self::now(),
            epoll,
            signals,
            listener,
            timer,
            armed_for: None,
            wake,
            inotify,
            tx,
            rx,
            orphans_waiting: false,
            trim_memory: false,
            conns: HashMap::new(),
            next_conn: 1,
            watches: HashMap::new(),
            next_generation: 1,
            children: HashMap::new(),
            spawned: HashMap::new(),
            armed: HashMap::new(),
            queue: VecDeque::new(),
            early_status: Vec::new(),
            swept: None,
            my_uid: nix::unistd::geteuid().as_raw(),
            exit: None,
            notify,
            keeper,
            keeper_exit,
            catalog_watches,
            after_kill,
            log_watches: HashMap::new(),
            output_starts: HashMap::new(),
            file_watches: watch::FileWatches::default(),
        })
    }

    /// The one place the supervisor reads the clocks.
    fn now() -> Now {
        Now {
            mono: Instant::now(),
            wall: crate::supervise::cron::wall_now(),
        }
    }

    /// Adopt, bring the role up, then serve events until shut down.
    pub fn run(&mut self) -> i32 {
        log(&format!(
            "supervising {} (PID {})",
            self.playpen.root.display(),
            std::process::id()
        ));
        let mut now = Self::now();
        for event in self.adopt() {
            self.queue.push_back(event);
        }
        self.drain(now);
        let effects = self.machine.begin();
        self.apply(effects, now);
        let mut events = vec![EpollEvent::empty(); 64];
        loop {
            self.drain(now);
            if let Some(code) = self.exit {
                self.flush_all_output();
                log(&format!("exiting with status {code}"));
                return code;
            }
            if self.machine.launched && !self.early_status.is_empty() {
                for (client, names) in std::mem::take(&mut self.early_status) {
                    self.answer_status(client, &names);
                }
            }
            if std::mem::take(&mut self.file_watches.stale) {
                self.sync_file_watches();
            }
            self.drain(now);
            self.arm_timer(now);
            let n = match self.epoll.wait(&mut events, EpollTimeout::NONE) {
                Ok(n) => n,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    log(&format!("epoll_wait failed: {e}"));
                    return 1;
                }
            };
            now = Self::now();
            self.clock = now;
            for event in &events[..n] {
                self.on_ready(event.data(), event.events(), now);
            }
        }
    }

    /// Feed every queued event to the machine and carry out what it says.
    fn drain(&mut self, now: Now) {
        while let Some(event) = self.queue.pop_front() {
            // What a service watches changes only with its configuration or with
            // whether it is wanted: jobs, commands and exits, not the frequent events.
            self.file_watches.stale |= !matches!(
                event,
                Event::Tick
                    | Event::Notify { .. }
                    | Event::LogMatched { .. }
                    | Event::Watched { .. }
                    | Event::FileChanged { .. }
                    | Event::InetdReadable { .. }
                    | Event::ChildStarted { .. }
                    | Event::ChildExited { .. }
            );
            let effects = self.machine.step(event, now);
            self.apply(effects, now);
        }
    }

    fn push(&mut self, event: Event) {
        self.queue.push_back(event);
    }

    fn on_ready(&mut self, token: u64, flags: EpollFlags, now: Now) {
        match token {
            SIGNALS => self.on_signals(),
            LISTENER => self.on_accept(now),
            TIMER => {
                let mut buf = [0u8; 8];
                let _ = nix::unistd::read(self.timer.as_fd(), &mut buf);
                self.armed_for = None;
                self.drop_idle_clients(now);
                self.push(Event::Tick);
            }
            WAKE => self.on_jobs_done(now),
            INOTIFY => self.on_run_dir_changed(),
            NOTIFY => self.on_notify(),
            KEEPER => self.on_keeper_exit(),
            FILES => self.on_files_changed(),
            t if t & KIND_MASK == CLIENT => self.on_client(t & !KIND_MASK, flags, now),
            t if t & KIND_MASK == CHILD => self.on_child((t & !KIND_MASK) as i32),
            t if t & KIND_MASK == INETD => self.push(Event::InetdReadable {
                service: (t & !KIND_MASK) as usize,
            }),
            t if t & KIND_MASK == PIDFD => {
                let service = ((t & !KIND_MASK) >> 32) as usize;
                self.on_pidfd(service, t & 0xffff_ffff);
            }
            _ => {}
        }
        self.drain(now);
    }

    /// Every exit the kernel has reported so far, before a request is answered: a
    /// `wait` or `status` never answers from a process that is already dead.
    fn take_in_exits(&mut self, now: Now, waited: Option<&[String]>) {
        // `wait`: a process with SIGKILL pending is dying; the kernel reports its exit
        // in a moment (its pidfd), so the answer waits for that moment rather than
        // taking it for alive. (Only for the services waited for: status stays cheap.)
        for (&i, w) in &self.watches {
            let name = &self.machine.services[i].name;
            let asked = waited.is_some_and(|names| names.is_empty() || names.contains(name));
            if asked
                && let Some(fd) = &w.fd
                && proc::sigkill_pending(w.pid)
            {
                use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
                let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
                let _ = poll(&mut fds, PollTimeout::from(200u8));
            }
        }
        let mut events = vec![EpollEvent::empty(); 64];
        let Ok(n) = self.epoll.wait(&mut events, EpollTimeout::ZERO) else {
            return;
        };
        for event in &events[..n] {
            let t = event.data();
            match t & KIND_MASK {
                PIDFD => {
                    self.on_pidfd(((t & !KIND_MASK) >> 32) as usize, t & 0xffff_ffff);
                }
                CHILD => self.on_child((t & !KIND_MASK) as i32),
                _ => {}
            }
        }
        self.drain(now);
    }

    fn arm_timer(&mut self, now: Now) {
        let clients = self.conns.values().filter_map(|c| c.deadline);
        let next = self
            .machine
            .next_deadline()
            .into_iter()
            .chain(clients)
            .min();
        if next == self.armed_for {
            return;
        }
        self.armed_for = next;
        let result = match next {
            Some(at) => {
                let left = at
                    .saturating_duration_since(now.mono)
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

    // ---- effects ----

    fn apply(&mut self, effects: Vec<Effect>, now: Now) {
        // Exiting: the socket goes before the last replies, so that a command run right
        // after `shutdown` returned finds no supervisor (and acts directly) instead of
        // connecting to one that no longer reads.
        if effects.iter().any(|e| matches!(e, Effect::Exit(_))) {
            let _ = std::fs::remove_file(crate::control::socket_path(&self.playpen.root));
        }
        for effect in effects {
            self.carry_out(effect, now);
        }
    }

    fn carry_out(&mut self, effect: Effect, now: Now) {
        match effect {
            Effect::Job { job, service, work } => {
                use super::machine::Work;
                if matches!(work, Work::Prepare(_)) {
                    self.trim_memory = true;
                }
                let work = match (work, service) {
                    (Work::Start(p), Some(i)) => {
                        self.note_output_start(i, &p);
                        Work::Start(self.with_notify(p))
                    }
                    (Work::Revive(p), Some(i)) => {
                        self.note_output_start(i, &p);
                        Work::Revive(self.with_notify(p))
                    }
                    (Work::Restart(p), Some(i)) => {
                        self.note_output_start(i, &p);
                        Work::Restart(self.with_notify(p))
                    }
                    (work, _) => work,
                };
                let name = service.map(|i| self.machine.services[i].name.clone());
                jobs::spawn(
                    &self.playpen,
                    self.keeper.as_ref(),
                    job,
                    name,
                    work,
                    &self.tx,
                    &self.wake,
                );
            }
            Effect::Watch { service, pid } => self.watch(service, pid),
            Effect::Unwatch { service } => {
                self.unwatch(service);
                self.unwatch_log(service);
            }
            Effect::WatchLog { service, pattern } => self.watch_log(service, &pattern),
            Effect::SignalGroup { pid, signal } => {
                let _ = proc::signal_service(pid, signal);
            }
            Effect::SignalChildren { service, signal } => {
                for &pid in &self.machine.services[service].children {
                    let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), signal);
                }
            }
            Effect::WatchChild { service, pid } => self.watch_child(service, pid),
            Effect::EndChecks { service } => {
                crate::service::hooks::end_checks(Some(&self.machine.services[service].name));
            }
            Effect::Arm { service, config } => {
                let result = self.arm(service, &config);
                self.push(Event::ArmDone { service, result });
            }
            Effect::Disarm { service } => self.disarm(service),
            Effect::SpawnRun { service } => self.spawn_run(service),
            Effect::AcceptHandlers { service, room } => self.accept_handlers(service, room),
            Effect::Listen { service, on } => self.listen(service, on),
            Effect::Reply { client, reply } => self.reply(client, reply, now),
            Effect::Log(message) => log(&message),
            Effect::Sweep => self.sweep(),
            Effect::Launched => readiness::tell_service_manager(&self.machine),
            Effect::Exit(code) => self.exit = Some(code),
        }
    }

    /// The output keeper died: a new one gets the services' pipes
    /// (keeper::Keeper::revive), so no service writes into a pipe nobody reads.
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

    // ---- signals, jobs, var/run ----

    fn on_signals(&mut self) {
        while let Ok(Some(info)) = self.signals.read_signal() {
            match Signal::try_from(info.ssi_signo as i32) {
                Ok(sig @ (Signal::SIGTERM | Signal::SIGINT)) => {
                    log(&format!("{} received", sig.as_str()));
                    self.push(Event::ShutdownSignal);
                }
                Ok(Signal::SIGCHLD) => self.reap_orphans(),
                Ok(Signal::SIGHUP) => self.push(Event::UpSignal),
                _ => {}
            }
        }
    }

    fn on_jobs_done(&mut self, now: Now) {
        let _ = self.wake.read();
        while let Ok((job, output)) = self.rx.try_recv() {
            self.push(Event::JobDone { job, output });
        }
        // The machine counts a job as running until it has taken in its result.
        self.drain(now);
        if self.machine.jobs_running() == 0 && self.orphans_waiting {
            self.reap_orphans();
        }
        if self.machine.jobs_running() == 0 && std::mem::take(&mut self.trim_memory) {
            // Evaluating configs on worker threads leaves freed memory in their malloc
            // arenas; give it back, so that an idle supervisor stays small.
            // SAFETY: malloc_trim has no preconditions.
            unsafe { libc::malloc_trim(0) };
        }
    }

    /// A command acting directly (a package manager's hook) started or stopped a
    /// service behind the supervisor's back: its start record appeared or went.
    fn on_run_dir_changed(&mut self) {
        use nix::sys::inotify::AddWatchFlags;
        let Some(inotify) = &self.inotify else {
            return;
        };
        let mut recorded = std::collections::BTreeSet::new();
        let mut unrecorded = std::collections::BTreeSet::new();
        let mut grown = Vec::new();
        let mut catalog_changed = false;
        while let Ok(events) = inotify.read_events() {
            if events.is_empty() {
                break;
            }
            for e in events {
                if self.catalog_watches.contains(&e.wd) {
                    catalog_changed = true;
                    continue;
                }
                if e.name.is_none() {
                    grown.push(e.wd);
                    continue;
                }
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
        if catalog_changed {
            self.push(Event::CatalogChanged);
        }
        for wd in grown {
            if let Some(i) = self.log_watch_of(wd) {
                self.scan_log(i);
            }
        }
        for name in unrecorded {
            self.push(Event::RecordRemoved { name });
        }
        for name in recorded {
            let Some(i) = self.machine.find(&name) else {
                continue;
            };
            let s = &self.machine.services[i];
            if s.phase.is_busy() || s.phase.pid().is_some() {
                continue;
            }
            use crate::process::pidfile::{self, Observed};
            if let Ok((Observed::Running { pid, .. } | Observed::Untracked { pid, .. }, _)) =
                pidfile::observe(&self.playpen, &name)
            {
                self.push(Event::RecordAppeared { name, pid });
            }
        }
    }
}

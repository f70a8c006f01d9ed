//! The machine's inputs and outputs: the events the driver reports, what a job
//! answers, the work a job does, and the effects the driver carries out.

use super::{ClientId, JobId, Sid};
use crate::control::{Op, Reply};
use crate::error::Error;
use crate::service::lifecycle::Outcome;
use crate::service::prepare::Prepared;
use crate::supervise::jobs::{Prepped, Scope};
use std::sync::Arc;
use std::time::Duration;

/// Something that happened, as the driver reports it.
#[derive(Debug)]
pub enum Event {
    /// At launch: a service found running on record (`pid` None: no pidfile, not
    /// watched).
    Adopted {
        name: String,
        pid: Option<i32>,
    },
    /// At launch: a cron run or inetd handler of `name` still running, left by an
    /// earlier supervisor.
    AdoptedChild {
        name: String,
        pid: i32,
    },
    /// The driver watches `pid` now (its kernel start time, when it could be read; a
    /// process found gone is reported as exited instead).
    Watched {
        service: Sid,
        pid: i32,
        start_ticks: Option<u64>,
    },
    ProcessExited {
        service: Sid,
        pid: i32,
        status: String,
    },
    /// A cron run or inetd handler the driver started.
    ChildStarted {
        service: Sid,
        pid: i32,
    },
    ChildFailed {
        service: Sid,
        error: String,
    },
    ChildExited {
        /// The service it was started or adopted for, when the driver knows it (it
        /// spares a search of every service per handler).
        service: Option<Sid>,
        pid: i32,
        status: String,
    },
    /// The driver armed a cron or inetd service (bound its socket), or could not.
    ArmDone {
        service: Sid,
        result: Result<(), Error>,
    },
    /// An inetd listener is readable.
    InetdReadable {
        service: Sid,
    },
    /// The timer went off (deadlines up to now are due).
    Tick,
    Request {
        client: ClientId,
        op: Op,
    },
    ClientGone {
        client: ClientId,
    },
    JobDone {
        job: JobId,
        output: JobOutput,
    },
    /// SIGTERM or SIGINT.
    ShutdownSignal,
    /// SIGHUP.
    UpSignal,
    /// A command acting directly put `name` on record (pid running).
    RecordAppeared {
        name: String,
        pid: i32,
    },
    /// A command acting directly removed `name`'s start record.
    RecordRemoved {
        name: String,
    },
    /// An sd_notify message from a process of `service` (the driver attributed it).
    Notify {
        service: Sid,
        fields: Vec<crate::process::notify::Field>,
    },
    /// A line matching its service_ready=log: pattern was appended to its output.
    LogMatched {
        service: Sid,
    },
    /// A service was installed or removed (`ext/services`, `services` changed).
    CatalogChanged,
    /// A file `service` watches (service_watch) was created, written, removed or
    /// renamed; `file` is relative to the playpen root.
    FileChanged {
        service: Sid,
        file: String,
    },
}

/// What a job reports.
#[derive(Debug)]
pub enum JobOutput {
    Prepared(Result<Prepped, Error>),
    /// A start, stop or restart; `has_check`: the service has a readiness check
    /// (a ping) to run.
    Lifecycle {
        result: Result<Outcome, Error>,
        has_check: bool,
    },
    Check {
        ok: bool,
        detail: String,
    },
}

/// Work for the driver.
#[derive(Debug, Clone)]
pub enum Work {
    Prepare(Scope),
    Start(Arc<Prepared>),
    /// Start again after an unasked exit, unless a direct stop removed its record.
    Revive(Arc<Prepared>),
    Stop(Arc<Prepared>),
    Restart(Arc<Prepared>),
    /// Run its readiness or health check (ping, tcp, http) within this limit, for
    /// its process `pid`.
    Check(Arc<Prepared>, Duration, Option<i32>),
}

/// Something for the driver to do.
#[derive(Debug, Clone)]
pub enum Effect {
    /// Run `work` off the loop; its result comes back as `JobDone { job }`.
    Job {
        job: JobId,
        service: Option<Sid>,
        work: Work,
    },
    /// Watch process `pid` of `service` (pidfd); answer with `Watched`.
    Watch {
        service: Sid,
        pid: i32,
    },
    /// Stop watching the process of `service`.
    Unwatch {
        service: Sid,
    },
    /// Signal the process group (and session) led by `pid`.
    SignalGroup {
        pid: i32,
        signal: nix::sys::signal::Signal,
    },
    /// Signal the process group of every cron run or inetd handler of `service`.
    SignalChildren {
        service: Sid,
        signal: nix::sys::signal::Signal,
    },
    /// Watch a cron run or handler.
    WatchChild {
        service: Sid,
        pid: i32,
    },
    /// End every check (ping) of `service` that runs, with its process group.
    EndChecks {
        service: Sid,
    },
    /// Tell when a line matching `pattern` is appended to its output from now on
    /// (`LogMatched`).
    WatchLog {
        service: Sid,
        pattern: String,
    },
    /// Bind the socket of a cron or inetd service; answer with `ArmDone`.
    Arm {
        service: Sid,
        config: Arc<Prepared>,
    },
    /// Close its socket, forget its program.
    Disarm {
        service: Sid,
    },
    /// Start a cron run (answer: `ChildStarted` or `ChildFailed`).
    SpawnRun {
        service: Sid,
    },
    /// Accept up to `room` connections (tcp) or hand the socket to one handler (udp).
    AcceptHandlers {
        service: Sid,
        room: usize,
    },
    /// Put the inetd listener in the epoll set, or take it out.
    Listen {
        service: Sid,
        on: bool,
    },
    Reply {
        client: ClientId,
        reply: Reply,
    },
    Log(String),
    /// Shutdown's last step: end every process of the playpen that is left, whatever
    /// failed on the way, and say what was left.
    Sweep,
    /// The launch has brought the role up (or was told to start nothing): tell a
    /// service manager that started the supervisor (READY=1 to $NOTIFY_SOCKET).
    Launched,
    Exit(i32),
}

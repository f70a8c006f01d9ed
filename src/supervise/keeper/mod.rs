//! The output keeper: one small process per playpen that owns the read ends of the
//! pipes supervised services write into, appends what they write to
//! `var/run/NAME.output` and rotates those files by rename, at line ends (SPEC §9.4;
//! docs/supervisor.md, "Output").
//!
//! It is the servicectl binary run again (`servicectl --playpen DIR keep-output`),
//! in a session of its own, so that a supervisor killed with SIGKILL (or a Ctrl-C to
//! its process group) leaves it draining the pipes: the services never block and never
//! get SIGPIPE while no supervisor runs. A new supervisor connects to the keeper that
//! runs (its socket `var/run/servicectl.keeper.sock`, its lock and its pidfile with the
//! kernel start time) instead of starting a second one.
//!
//! The client side, [`Keeper`], is what the supervisor holds: cheap to clone, usable
//! from the event loop and from worker threads alike (one short request and answer
//! under a mutex; the keeper answers at once, it never blocks).

pub mod rotation;
mod serve;
mod wire;

pub use serve::keep_output;
use wire::{Request, receive, send};

use crate::config::settings::LogRotation;
use crate::error::{Error, Result};
use crate::playpen::Playpen;
use nix::sys::socket::{self, AddressFamily, MsgFlags, SockFlag, SockType};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a request may wait for its answer, and a start for the keeper's `ready`.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

pub fn socket_path(playpen: &Playpen) -> PathBuf {
    playpen.run_dir().join("servicectl.keeper.sock")
}

pub fn lock_path(playpen: &Playpen) -> PathBuf {
    playpen.run_dir().join("servicectl.keeper.lock")
}

/// `PID START_TICKS`, while the keeper runs.
pub fn pid_path(playpen: &Playpen) -> PathBuf {
    playpen.run_dir().join("servicectl.keeper.pid")
}

/// The keeper's own log (its stderr).
pub fn log_path(playpen: &Playpen) -> PathBuf {
    playpen.run_dir().join("servicectl.keeper.output")
}

/// The keeper that runs for `playpen` (from its pidfile, checked against the kernel
/// start time), if any.
pub fn running(playpen: &Playpen) -> Option<i32> {
    let text = crate::playpen::fsutil::read_optional(&pid_path(playpen)).ok()??;
    let mut words = text.split_whitespace();
    let pid: i32 = words.next()?.parse().ok()?;
    let ticks: u64 = words.next()?.parse().ok()?;
    (crate::process::proc::start_ticks(pid) == Some(ticks)).then_some(pid)
}

/// The supervisor's handle on the playpen's output keeper.
///
/// It also holds a copy of the read end of every pipe the keeper keeps (as s6-fdholder
/// does): while the keeper runs they cost a descriptor each and nothing else; should it
/// die, a new keeper is started and given them, so the services' pipes are read again
/// and no service gets SIGPIPE: the supervisor's event loop waits on
/// [`Keeper::exit_fd`] and calls [`Keeper::revive`] when it fires.
#[derive(Clone)]
pub struct Keeper {
    inner: Arc<Inner>,
}

struct Inner {
    playpen: Playpen,
    conn: Mutex<Conn>,
    /// Copies of the read ends the keeper holds, with what they are for. Lock order:
    /// `conn`, then `held`.
    held: Mutex<Copies>,
    /// `finish` was asked: the keeper's exit is no death.
    finishing: std::sync::atomic::AtomicBool,
}

/// The copies, and how many of them may be held before the hung-up ones are sought.
struct Copies {
    list: Vec<Held>,
    /// Pruning polls every copy, so a prune at every new pipe made a cold start of N
    /// services poll N²/2 descriptors; pruning when the list has doubled since the
    /// last prune keeps it linear, at the price of at most as many stale copies as
    /// live ones (a descriptor each, within [`copies_budget`]).
    prune_at: usize,
}

impl Copies {
    const FIRST_PRUNE: usize = 64;

    fn new(list: Vec<Held>) -> Copies {
        let mut copies = Copies { list, prune_at: 0 };
        copies.prune();
        copies
    }

    /// Forget every copy whose pipe has no writer left.
    fn prune(&mut self) {
        prune(&mut self.list);
        self.prune_at = (2 * self.list.len()).max(Self::FIRST_PRUNE);
    }

    /// Keep a copy of a new pipe's read end, unless the budget is spent.
    fn add(&mut self, held: Held, budget: usize) {
        if self.list.len() >= self.prune_at || self.list.len() >= budget {
            self.prune();
        }
        if self.list.len() < budget {
            self.list.push(held);
        }
    }
}

struct Held {
    service: String,
    rotation: LogRotation,
    fd: OwnedFd,
}

struct Conn {
    socket: OwnedFd,
    pid: i32,
    /// Answers to `pipe` requests not read yet: a pipe is handed over without waiting
    /// for its answer (a cold start of 100 services would wait 100 round trips), and
    /// the answers are read before the next request that needs its own.
    unread: usize,
}

fn keeper_error(playpen: &Playpen, what: String) -> Error {
    Error::runtime(format!("the output keeper: {what}")).with_hint(format!(
        "see {}; `servicectl shutdown` then `servicectl supervise` starts a new one",
        log_path(playpen).display()
    ))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Keeper {
    /// Connect to the playpen's keeper (and take copies of the read ends it holds),
    /// starting one when none runs.
    pub fn connect_or_spawn(playpen: &Playpen) -> Result<Keeper> {
        let mut last = None;
        let mut found = None;
        for _ in 0..5 {
            match connect(playpen) {
                Ok(Some(conn)) => {
                    found = Some((conn, true));
                    break;
                }
                Ok(None) => {}
                Err(e) => return Err(e),
            }
            match spawn(playpen) {
                Ok(Some(conn)) => {
                    found = Some((conn, false));
                    break;
                }
                // Another keeper holds the lock (starting, or ending): ask it again.
                Ok(None) => last = Some("another keeper holds its lock but does not answer"),
                Err(e) => return Err(e),
            }
        }
        let Some((conn, running)) = found else {
            return Err(keeper_error(
                playpen,
                last.unwrap_or("cannot start").to_string(),
            ));
        };
        let mut held = Vec::new();
        if running {
            // Left by a supervisor that was killed: its pipes are the services'.
            send(conn.socket.as_fd(), &Request::Hold.encode(), None)
                .map_err(|e| keeper_error(playpen, format!("cannot ask for its pipes: {e}")))?;
            conn.answer(&mut |message, fds| {
                if let (Some(Request::Pipe { service, rotation }), Some(fd)) =
                    (Request::decode(&message), fds.into_iter().next())
                {
                    held.push(Held {
                        service,
                        rotation,
                        fd,
                    });
                }
            })
            .map_err(|e| keeper_error(playpen, e))?;
        }
        Ok(Keeper {
            inner: Arc::new(Inner {
                playpen: playpen.clone(),
                conn: Mutex::new(conn),
                held: Mutex::new(Copies::new(held)),
                finishing: std::sync::atomic::AtomicBool::new(false),
            }),
        })
    }

    /// The keeper's PID.
    pub fn pid(&self) -> i32 {
        lock(&self.inner.conn).pid
    }

    /// A pidfd of the keeper process: readable once it has exited. Wait on it (the
    /// supervisor's epoll set) and call [`Keeper::revive`] when it is readable, then
    /// take a new one. None when the kernel gives no pidfd or the keeper is gone.
    pub fn exit_fd(&self) -> Option<OwnedFd> {
        crate::process::proc::pidfd(self.pid())
    }

    /// A new pipe for `service`'s output: the keeper takes the read end, the write end
    /// (close-on-exec) is returned, to be given to the program as stdout and stderr.
    /// A keeper that went away is replaced first ([`Keeper::revive`]).
    pub fn pipe(&self, service: &str, rotation: LogRotation) -> Result<OwnedFd> {
        let output = self.inner.playpen.output_file(service);
        let fail = |what: String| {
            Error::runtime(format!(
                "cannot give it a pipe to the output keeper for {}: {what}",
                output.display()
            ))
            .with_service(service)
            .with_hint(format!(
                "see {}; `servicectl shutdown` then `servicectl supervise` starts a new keeper",
                log_path(&self.inner.playpen).display()
            ))
        };
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| fail(format!("cannot make a pipe: {e}")))?;
        let request = Request::Pipe {
            service: service.to_string(),
            rotation,
        };
        let mut conn = lock(&self.inner.conn);
        // Answers of earlier pipes that have arrived are read now, without waiting.
        if conn.unread > 64 {
            conn.catch_up().map_err(fail)?;
        }
        let mut sent = conn.tell(&request, Some(read.as_fd()));
        if sent.is_err() && !crate::process::proc::is_alive(conn.pid) {
            self.revive_locked(&mut conn).map_err(|e| fail(e.message))?;
            sent = conn.tell(&request, Some(read.as_fd()));
        }
        sent.map_err(fail)?;
        // The copies are a spare (for a keeper that dies); under a tight descriptor
        // limit (below 1024) the services' own pidfds come first and none is kept,
        // else at most a quarter of the limit is spent on them.
        lock(&self.inner.held).add(
            Held {
                service: service.to_string(),
                rotation,
                fd: read,
            },
            copies_budget(),
        );
        Ok(write)
    }

    /// Wait until what `service` wrote into its pipes so far is in its file (a failed
    /// start quotes the file's tail). Best effort: a keeper that does not answer is
    /// not waited for.
    pub fn flush(&self, service: &str) {
        let _ = lock(&self.inner.conn).ask(
            &Request::Flush {
                service: service.to_string(),
            },
            None,
        );
    }

    /// If the keeper has died: start a new one and give it the pipes (their read
    /// ends, from the copies held here), so the services' output is read again. What
    /// the dead keeper had read and not yet written is lost (at most one read of one
    /// pipe). Called when [`Keeper::exit_fd`] fires, and by [`pipe`] when the keeper
    /// does not answer. It blocks for as long as a new keeper takes to listen
    /// (milliseconds).
    ///
    /// [`pipe`]: Keeper::pipe
    pub fn revive(&self) -> Result<()> {
        let mut conn = lock(&self.inner.conn);
        self.revive_locked(&mut conn)
    }

    fn revive_locked(&self, conn: &mut Conn) -> Result<()> {
        let finishing = self
            .inner
            .finishing
            .load(std::sync::atomic::Ordering::SeqCst);
        if finishing || crate::process::proc::is_alive(conn.pid) {
            return Ok(());
        }
        let playpen = &self.inner.playpen;
        let old = conn.pid;
        *conn = connect_again(playpen)?;
        let mut held = lock(&self.inner.held);
        held.prune();
        let mut given = Vec::new();
        for h in held.list.iter() {
            let request = Request::Pipe {
                service: h.service.clone(),
                rotation: h.rotation,
            };
            match conn.ask(&request, Some(h.fd.as_fd())) {
                Ok(()) => given.push(h.service.as_str()),
                Err(e) => eprintln!(
                    "servicectl supervise: {}: cannot give its pipe to the new output keeper: {e}",
                    h.service
                ),
            }
        }
        given.sort_unstable();
        given.dedup();
        eprintln!(
            "servicectl supervise: the output keeper (PID {old}) died; PID {} keeps the output now{}",
            conn.pid,
            if given.is_empty() {
                String::new()
            } else {
                format!(" (given the pipes of {})", given.join(", "))
            }
        );
        Ok(())
    }

    /// Ask the keeper to write what is readable and exit (once a shutdown has stopped
    /// every service), and wait for it to be gone: `within`, then SIGKILL. A keeper
    /// that some process still writes to (one the shutdown failed to end) refuses, so
    /// that process never gets SIGPIPE: it stays until the last pipe is closed, and
    /// the error says so.
    pub fn finish(&self, within: Duration) -> Result<()> {
        let mut conn = lock(&self.inner.conn);
        self.inner
            .finishing
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let asked = conn.ask(&Request::Finish, None);
        let pid = conn.pid;
        drop(conn);
        if let Err(e) = asked {
            if crate::process::proc::is_alive(pid) {
                return Err(keeper_error(&self.inner.playpen, e));
            }
            return Ok(());
        }
        lock(&self.inner.held).list.clear();
        if crate::process::proc::wait_exit(pid, within) {
            return Ok(());
        }
        // Only the keeper it was: same PID, and the kernel start time on record.
        if running(&self.inner.playpen) == Some(pid) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            crate::process::proc::wait_exit(pid, Duration::from_secs(2));
        }
        Err(keeper_error(
            &self.inner.playpen,
            format!(
                "PID {pid} did not exit within {:.0} s of being asked; it was killed",
                within.as_secs_f64()
            ),
        ))
    }
}

/// Forget the copies of pipes that no process writes to any more (the keeper reads
/// what is left in them from its own copy, then closes it).
fn prune(held: &mut Vec<Held>) {
    // One poll(2) over every copy: whose pipe has no writer left (POLLHUP) goes.
    let hung: Vec<bool> = {
        let mut fds: Vec<nix::poll::PollFd> = held
            .iter()
            .map(|h| nix::poll::PollFd::new(h.fd.as_fd(), nix::poll::PollFlags::empty()))
            .collect();
        match nix::poll::poll(&mut fds, nix::poll::PollTimeout::ZERO) {
            Ok(n) if n > 0 => fds
                .iter()
                .map(|f| {
                    f.revents()
                        .is_some_and(|r| r.intersects(nix::poll::PollFlags::POLLHUP))
                })
                .collect(),
            _ => return,
        }
    };
    let mut hung = hung.into_iter();
    held.retain(|_| !hung.next().unwrap_or(false));
}

impl crate::service::lifecycle::Pipes for Keeper {
    fn pipe(&self, service: &str, rotation: LogRotation) -> Result<OwnedFd> {
        Keeper::pipe(self, service, rotation)
    }

    fn flush(&self, service: &str) {
        Keeper::flush(self, service)
    }
}

impl Conn {
    /// Send a request (with a descriptor) and read the answer.
    fn ask(
        &mut self,
        request: &Request,
        fd: Option<BorrowedFd>,
    ) -> std::result::Result<(), String> {
        self.catch_up()?;
        send(self.socket.as_fd(), &request.encode(), fd)
            .map_err(|e| format!("cannot send PID {} a request: {e}", self.pid))?;
        self.answer(&mut |_, _| {})
    }

    /// Send a request whose answer is read later (`catch_up`).
    fn tell(
        &mut self,
        request: &Request,
        fd: Option<BorrowedFd>,
    ) -> std::result::Result<(), String> {
        send(self.socket.as_fd(), &request.encode(), fd)
            .map_err(|e| format!("cannot send PID {} a request: {e}", self.pid))?;
        self.unread += 1;
        Ok(())
    }

    /// Read the answers of the requests told so far; the first refusal among them.
    fn catch_up(&mut self) -> std::result::Result<(), String> {
        let mut first = Ok(());
        while self.unread > 0 {
            self.unread -= 1;
            if let Err(e) = self.answer(&mut |_, _| {})
                && first.is_ok()
            {
                first = Err(e);
            }
        }
        first
    }

    /// Read messages until the answer (`ok` or `error …`); what comes before it (the
    /// pipes of `hold`) goes to `other`.
    fn answer(
        &self,
        other: &mut dyn FnMut(Vec<u8>, Vec<OwnedFd>),
    ) -> std::result::Result<(), String> {
        loop {
            match receive(self.socket.as_fd(), MsgFlags::empty()) {
                Ok(Some((answer, _))) if answer == b"ok" => return Ok(()),
                Ok(Some((message, fds))) if !fds.is_empty() => other(message, fds),
                Ok(Some((answer, _))) => {
                    let text = String::from_utf8_lossy(&answer);
                    return Err(text.strip_prefix("error\n").unwrap_or(&text).to_string());
                }
                Ok(None) => return Err(format!("PID {} went away", self.pid)),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(nix::errno::Errno::EAGAIN) => {
                    return Err(format!(
                        "PID {} did not answer within {} s",
                        self.pid,
                        ANSWER_WITHIN.as_secs()
                    ));
                }
                Err(e) => return Err(format!("cannot read its answer: {e}")),
            }
        }
    }
}

fn seqpacket(playpen: &Playpen) -> Result<OwnedFd> {
    let fd = socket::socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| keeper_error(playpen, format!("cannot make a socket: {e}")))?;
    answer_within(&fd);
    Ok(fd)
}

fn answer_within(fd: &OwnedFd) {
    let limit = nix::sys::time::TimeVal::new(ANSWER_WITHIN.as_secs() as i64, 0);
    let _ = socket::setsockopt(fd, socket::sockopt::ReceiveTimeout, &limit);
}

/// Connect to the keeper that runs; None when none listens.
fn connect(playpen: &Playpen) -> Result<Option<Conn>> {
    let path = socket_path(playpen);
    let fd = seqpacket(playpen)?;
    let addr = socket::UnixAddr::new(&path)
        .map_err(|e| keeper_error(playpen, format!("{}: {e}", path.display())))?;
    match socket::connect(fd.as_raw_fd(), &addr) {
        Ok(()) => {}
        Err(nix::errno::Errno::ENOENT | nix::errno::Errno::ECONNREFUSED) => return Ok(None),
        Err(e) => {
            return Err(keeper_error(
                playpen,
                format!("cannot connect to {}: {e}", path.display()),
            ));
        }
    }
    // Whoever listens there must be of our uid (or root), as for the control socket.
    let cred = socket::getsockopt(&fd, socket::sockopt::PeerCredentials)
        .map_err(|e| keeper_error(playpen, format!("cannot read its credentials: {e}")))?;
    let me = nix::unistd::geteuid().as_raw();
    if cred.uid() != me && cred.uid() != 0 {
        return Err(keeper_error(
            playpen,
            format!(
                "{} is held by PID {} of uid {}, not by uid {me}",
                path.display(),
                cred.pid(),
                cred.uid()
            ),
        ));
    }
    Ok(Some(Conn {
        unread: 0,
        socket: fd,
        pid: cred.pid(),
    }))
}

fn connect_again(playpen: &Playpen) -> Result<Conn> {
    for _ in 0..5 {
        if let Some(conn) = connect(playpen)? {
            return Ok(conn);
        }
        if let Some(conn) = spawn(playpen)? {
            return Ok(conn);
        }
    }
    Err(keeper_error(
        playpen,
        "another keeper holds its lock but does not answer".into(),
    ))
}

/// Start a keeper: `/proc/self/exe --playpen ROOT keep-output --client-fd N` in a new
/// session, the playpen as its working directory, an empty environment (it is no
/// process of any service: stop never takes it for one), its output to its log. It
/// answers `ready` on the socket pair once it listens, `busy` when another keeper
/// holds the lock (None).
fn spawn(playpen: &Playpen) -> Result<Option<Conn>> {
    use std::os::unix::process::CommandExt;
    let (mine, theirs) = socket::socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| keeper_error(playpen, format!("cannot make a socket pair: {e}")))?;
    answer_within(&mine);
    let log = serve::open_log(playpen)?;
    let their_fd = theirs.as_raw_fd();
    let mut command = std::process::Command::new("/proc/self/exe");
    command
        .arg("--playpen")
        .arg(&playpen.root)
        .arg("keep-output")
        .arg("--client-fd")
        .arg(their_fd.to_string())
        .env_clear()
        .current_dir(&playpen.root)
        .stdin(std::process::Stdio::null())
        .stdout(
            log.try_clone()
                .map_err(|e| Error::io("duplicate", &log_path(playpen), e))?,
        )
        .stderr(log);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        command.pre_exec(move || {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // Inherited across the exec: its number is on the command line.
            if libc::fcntl(their_fd, libc::F_SETFD, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = command
        .spawn()
        .map_err(|e| keeper_error(playpen, format!("cannot start it: {e}")))?;
    drop(theirs);
    let pid = child.id() as i32;
    // Not waited for here: the supervisor (a subreaper) reaps it when it exits.
    drop(child);
    match receive(mine.as_fd(), MsgFlags::empty()) {
        Ok(Some((answer, _))) if answer == b"ready" => Ok(Some(Conn {
            socket: mine,
            pid,
            unread: 0,
        })),
        Ok(Some((answer, _))) if answer == b"busy" => {
            crate::process::proc::wait_exit(pid, Duration::from_secs(1));
            reap(pid);
            Ok(None)
        }
        other => {
            crate::process::proc::wait_exit(pid, Duration::from_secs(1));
            reap(pid);
            Err(keeper_error(
                playpen,
                format!(
                    "PID {pid} did not start{}",
                    match other {
                        Err(e) => format!(": {e}"),
                        _ => String::new(),
                    }
                ),
            ))
        }
    }
}

/// Reap our child `pid` if it has exited (never blocks).
fn reap(pid: i32) {
    let _ = nix::sys::wait::waitpid(
        nix::unistd::Pid::from_raw(pid),
        Some(nix::sys::wait::WaitPidFlag::WNOHANG),
    );
}

/// How many read-end copies the supervisor keeps: none under a descriptor limit below
/// 1024, else a quarter of it.
fn copies_budget() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return 0;
    }
    if limit.rlim_cur < 1024 {
        return 0;
    }
    (limit.rlim_cur / 4).min(usize::MAX as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(fd: OwnedFd) -> Held {
        Held {
            service: "web".into(),
            rotation: LogRotation {
                max_bytes: 65536,
                keep: 3,
            },
            fd,
        }
    }

    #[test]
    fn copies_of_hung_up_pipes_are_pruned_once_the_list_doubles_and_live_ones_stay() {
        let mut live_writers = Vec::new();
        let mut copies = Copies::new(Vec::new());
        let mut longest = 0;
        for i in 0..400 {
            let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
            // One pipe in ten keeps a writer; the others hang up at once.
            if i % 10 == 0 {
                live_writers.push(write);
            } else {
                drop(write);
            }
            copies.add(held(read), usize::MAX);
            longest = longest.max(copies.list.len());
        }
        // 40 live pipes: the list never grows past twice what the last prune left (or the
        // first threshold), plus the copy that triggers the next prune.
        let bound = (2 * live_writers.len()).max(Copies::FIRST_PRUNE) + 1;
        assert!(longest <= bound, "{longest} copies held, bound {bound}");
        copies.prune();
        assert_eq!(copies.list.len(), live_writers.len());
        // A budget is never exceeded, and reaching it prunes first.
        let mut tight = Copies::new(Vec::new());
        for _ in 0..10 {
            let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
            drop(write);
            tight.add(held(read), 3);
            assert!(tight.list.len() <= 3, "{} copies", tight.list.len());
        }
    }

    #[test]
    fn requests_round_trip_and_junk_is_no_request() {
        for r in [
            Request::Pipe {
                service: "web".into(),
                rotation: LogRotation {
                    max_bytes: 65536,
                    keep: 3,
                },
            },
            Request::Flush {
                service: "db".into(),
            },
            Request::Finish,
            Request::Hold,
        ] {
            assert_eq!(Request::decode(&r.encode()), Some(r));
        }
        for junk in [&b"pipe\nweb\nx\n3"[..], b"finish\nmore", b"", b"\xff"] {
            assert_eq!(Request::decode(junk), None);
        }
    }
}

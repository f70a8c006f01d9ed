//! The output keeper process (`servicectl --playpen DIR keep-output`): one thread,
//! one epoll set holding its listening socket, its clients and the read end of every
//! service's output pipe. It appends what it reads to `var/run/NAME.output` at once
//! and rotates by rename, line-aligned ([`super::rotation`]). See docs/supervisor.md.

use super::rotation::{self, FileState, Step};
use super::wire::{self, Request};
use super::{lock_path, log_path, pid_path, socket_path};
use crate::config::settings::LogRotation;
use crate::error::{Error, Result};
use crate::playpen::Playpen;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::socket::{self, AddressFamily, MsgFlags, SockFlag, SockType, UnixAddr};
use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

const LISTENER: u64 = 0;
const CLIENT: u64 = 1 << 62;
const PIPE: u64 = 2 << 62;
const KIND: u64 = 3 << 62;
/// One read from a pipe (a pipe holds 64 KiB by default).
const CHUNK: usize = 64 * 1024;

fn log(message: &str) {
    eprintln!(
        "{} servicectl keep-output: {message}",
        crate::text::log_stamp()
    );
}

/// One service's output file.
struct Output {
    path: PathBuf,
    file: Option<File>,
    state: FileState,
    rotation: LogRotation,
    /// A write failed; said once until one succeeds again.
    failing: bool,
}

struct Pipe {
    fd: OwnedFd,
    service: String,
}

struct Keeper {
    playpen: Playpen,
    epoll: Epoll,
    listener: OwnedFd,
    my_uid: u32,
    clients: HashMap<u64, OwnedFd>,
    pipes: HashMap<u64, Pipe>,
    outputs: HashMap<String, Output>,
    next: u64,
    buf: Vec<u8>,
    finish: bool,
}

/// Raise the soft limit of open files to the hard one: the keeper holds one
/// descriptor per service (and per pipe a restart left with a writer).
fn raise_nofile() {
    // SAFETY: getrlimit/setrlimit with a valid pointer.
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// Run the keeper of `playpen`. `client` is the descriptor of the supervisor that
/// started it (one end of a socket pair): it hears `ready` once the keeper listens, or
/// `busy` when another keeper holds the lock (then this one exits at once).
pub fn keep_output(playpen: &Playpen, client: Option<RawFd>) -> Result<i32> {
    // SAFETY: the descriptor was left open for us by the supervisor that started us
    // (its number is on our command line) and nothing else in this process owns it.
    let client = client.map(|fd| unsafe { OwnedFd::from_raw_fd(fd) });
    if let Some(c) = &client {
        let _ = nix::fcntl::fcntl(
            c,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        );
    }
    raise_nofile();
    playpen.ensure_var()?;
    let lock_file = crate::playpen::fsutil::open_in_var(&lock_path(playpen), false, "lock file")?;
    match lock_file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            if let Some(c) = &client {
                let _ = socket::send(c.as_raw_fd(), b"busy", MsgFlags::MSG_NOSIGNAL);
            }
            return Ok(0);
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(Error::io("lock", &lock_path(playpen), e));
        }
    }
    // On record, as the services are: PID and kernel start time.
    let me = std::process::id() as i32;
    crate::playpen::fsutil::write_runtime(
        &pid_path(playpen),
        format!("{me} {}\n", crate::process::proc::own_start_ticks()).as_bytes(),
        Some(0o644),
    )?;
    let listener = listen(playpen)?;
    let sys = |what: &str, e: nix::errno::Errno| {
        Error::runtime(format!("output keeper: cannot set up {what}: {e}"))
    };
    let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(|e| sys("epoll", e))?;
    epoll
        .add(
            listener.as_fd(),
            EpollEvent::new(EpollFlags::EPOLLIN, LISTENER),
        )
        .map_err(|e| sys("epoll", e))?;
    let mut keeper = Keeper {
        playpen: playpen.clone(),
        epoll,
        listener,
        my_uid: nix::unistd::geteuid().as_raw(),
        clients: HashMap::new(),
        pipes: HashMap::new(),
        outputs: HashMap::new(),
        next: 1,
        buf: vec![0u8; CHUNK],
        finish: false,
    };
    if let Some(c) = client {
        let _ = socket::send(c.as_raw_fd(), b"ready", MsgFlags::MSG_NOSIGNAL);
        keeper.add_client(c);
    }
    log(&format!(
        "keeping the output of {}'s services (PID {me})",
        playpen.root.display()
    ));
    keeper.run();
    // Still holding the lock: nobody else can have replaced these.
    let _ = std::fs::remove_file(socket_path(playpen));
    let _ = std::fs::remove_file(pid_path(playpen));
    log("exiting");
    drop(lock_file);
    Ok(0)
}

/// The listening socket (SOCK_SEQPACKET: one message per request, with the pipe's
/// descriptor attached), mode 0600 from the start.
fn listen(playpen: &Playpen) -> Result<OwnedFd> {
    let path = socket_path(playpen);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("remove the stale socket", &path, e)),
    }
    let fd = socket::socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )
    .map_err(|e| Error::io("make a socket for", &path, e.into()))?;
    let addr = UnixAddr::new(&path).map_err(|e| Error::io("bind", &path, e.into()))?;
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let bound = socket::bind(fd.as_raw_fd(), &addr);
    nix::sys::stat::umask(old);
    bound.map_err(|e| Error::io("bind", &path, e.into()))?;
    socket::listen(
        &fd,
        socket::Backlog::new(64).unwrap_or(socket::Backlog::MAXCONN),
    )
    .map_err(|e| Error::io("listen on", &path, e.into()))?;
    Ok(fd)
}

impl Keeper {
    fn token(&mut self, kind: u64) -> u64 {
        self.next += 1;
        kind | self.next
    }

    fn add_client(&mut self, fd: OwnedFd) {
        let token = self.token(CLIENT);
        if self
            .epoll
            .add(fd.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, token))
            .is_ok()
        {
            self.clients.insert(token, fd);
        }
    }

    fn run(&mut self) {
        let mut events = vec![EpollEvent::empty(); 64];
        loop {
            if self.finish || (self.clients.is_empty() && self.pipes.is_empty()) {
                self.drain_all();
                return;
            }
            let n = match self.epoll.wait(&mut events, EpollTimeout::NONE) {
                Ok(n) => n,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    // Nothing sensible is left to do but keep the data flowing as long
                    // as possible: this does not happen on a working kernel.
                    log(&format!("epoll_wait failed: {e}"));
                    self.drain_all();
                    return;
                }
            };
            for event in &events[..n] {
                let token = event.data();
                match token & KIND {
                    CLIENT => self.on_client(token),
                    PIPE => {
                        self.on_pipe(token);
                    }
                    _ => self.on_accept(),
                }
            }
        }
    }

    fn on_accept(&mut self) {
        loop {
            let fd = match socket::accept4(
                self.listener.as_raw_fd(),
                SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            ) {
                // SAFETY: accept4 returned a new descriptor that nothing else owns.
                Ok(fd) => unsafe { OwnedFd::from_raw_fd(fd) },
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => return,
            };
            match socket::getsockopt(&fd, socket::sockopt::PeerCredentials) {
                Ok(cred) if cred.uid() == self.my_uid || cred.uid() == 0 => self.add_client(fd),
                Ok(cred) => log(&format!("refused a client of uid {}", cred.uid())),
                Err(e) => log(&format!("cannot read a client's credentials: {e}")),
            }
        }
    }

    fn on_client(&mut self, token: u64) {
        loop {
            let Some(fd) = self.clients.get(&token) else {
                return;
            };
            let received = match wire::receive(fd.as_fd(), MsgFlags::MSG_DONTWAIT) {
                Ok(Some(r)) => r,
                Ok(None) => {
                    // The client went away (a supervisor that exited or was killed).
                    if let Some(fd) = self.clients.remove(&token) {
                        let _ = self.epoll.delete(fd.as_fd());
                    }
                    return;
                }
                Err(nix::errno::Errno::EAGAIN) => return,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => {
                    if let Some(fd) = self.clients.remove(&token) {
                        let _ = self.epoll.delete(fd.as_fd());
                    }
                    return;
                }
            };
            let (bytes, fds) = received;
            let reply = match Request::decode(&bytes) {
                Some(Request::Pipe { service, rotation }) => match fds.into_iter().next() {
                    Some(pipe) => self.add_pipe(service, rotation, pipe),
                    None => Err("a pipe request came without its descriptor".to_string()),
                },
                Some(Request::Hold) => self.hand_out(token),
                Some(Request::Flush { service }) => {
                    self.flush(&service);
                    Ok(())
                }
                Some(Request::Finish) => {
                    self.drain_all();
                    if self.pipes.is_empty() {
                        self.finish = true;
                        Ok(())
                    } else {
                        // A process the shutdown did not end still writes: it must not
                        // get SIGPIPE. Stay, and exit once the last pipe closes.
                        let mut names: Vec<&str> =
                            self.pipes.values().map(|p| p.service.as_str()).collect();
                        names.sort_unstable();
                        names.dedup();
                        Err(format!(
                            "PID {} stays: {} still write{} into {} pipe{} (a process that outlived the shutdown); it exits once they are closed",
                            std::process::id(),
                            names.join(", "),
                            if names.len() == 1 { "s" } else { "" },
                            if names.len() == 1 { "its" } else { "their" },
                            if names.len() == 1 { "" } else { "s" },
                        ))
                    }
                }
                None => Err(format!(
                    "not a request: {:?}",
                    String::from_utf8_lossy(&bytes[..bytes.len().min(80)])
                )),
            };
            let answer = match reply {
                Ok(()) => b"ok".to_vec(),
                Err(e) => format!("error\n{e}").into_bytes(),
            };
            if let Some(fd) = self.clients.get(&token) {
                // Never waited for: a client that does not read its answers is its
                // own problem, not the services'.
                let _ = socket::send(
                    fd.as_raw_fd(),
                    &answer,
                    MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT,
                );
            }
            if self.finish {
                return;
            }
        }
    }

    /// A copy of every pipe's read end for the client (a supervisor that connected
    /// to a keeper it did not start holds them, to hand them to a new keeper should
    /// this one die), one message each; the answer `ok` follows.
    fn hand_out(&mut self, token: u64) -> std::result::Result<(), String> {
        let Some(client) = self.clients.get(&token) else {
            return Ok(());
        };
        for pipe in self.pipes.values() {
            let Some(out) = self.outputs.get(&pipe.service) else {
                continue;
            };
            let message = Request::Pipe {
                service: pipe.service.clone(),
                rotation: out.rotation,
            }
            .encode();
            wire::send(client.as_fd(), &message, Some(pipe.fd.as_fd()))
                .map_err(|e| format!("cannot hand out the pipes: {e}"))?;
        }
        Ok(())
    }

    fn add_pipe(
        &mut self,
        service: String,
        rotation: LogRotation,
        fd: OwnedFd,
    ) -> std::result::Result<(), String> {
        if !crate::playpen::names::is_valid(&service) {
            return Err(format!("{service:?} is not a service name"));
        }
        let path = self.playpen.output_file(&service);
        match self.outputs.get_mut(&service) {
            Some(out) => {
                out.rotation = rotation;
                // Someone removed or moved the file meanwhile: write where its name is.
                if !out.is_at_path() {
                    out.open().map_err(|e| e.to_string())?;
                }
            }
            None => {
                let mut out = Output {
                    path,
                    file: None,
                    state: FileState::EMPTY,
                    rotation,
                    failing: false,
                };
                out.open().map_err(|e| e.to_string())?;
                self.outputs.insert(service.clone(), out);
            }
        }
        let _ = nix::fcntl::fcntl(
            &fd,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        );
        let token = self.token(PIPE);
        self.epoll
            .add(fd.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, token))
            .map_err(|e| format!("cannot watch the pipe: {e}"))?;
        self.pipes.insert(token, Pipe { fd, service });
        Ok(())
    }

    /// Read once from a pipe and write what came; false once it is closed (every
    /// writer gone) and forgotten.
    fn on_pipe(&mut self, token: u64) -> bool {
        let Some(pipe) = self.pipes.get(&token) else {
            return false;
        };
        let n = loop {
            match nix::unistd::read(pipe.fd.as_fd(), &mut self.buf) {
                Ok(n) => break n,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(nix::errno::Errno::EAGAIN) => return true,
                Err(_) => break 0,
            }
        };
        if n == 0 {
            let pipe = self.pipes.remove(&token).expect("looked up above");
            let _ = self.epoll.delete(pipe.fd.as_fd());
            let service = pipe.service;
            if !self.pipes.values().any(|p| p.service == service) {
                // Its file is closed too: nothing holds a descriptor of a service
                // that is gone (the next start opens it again).
                self.outputs.remove(&service);
            }
            return false;
        }
        let service = &self.pipes[&token].service;
        if let Some(out) = self.outputs.get_mut(service) {
            out.append(&self.buf[..n]);
        }
        true
    }

    /// Everything readable now in the service's pipes goes to its file.
    fn flush(&mut self, service: &str) {
        let tokens: Vec<u64> = self
            .pipes
            .iter()
            .filter(|(_, p)| p.service == service)
            .map(|(t, _)| *t)
            .collect();
        for t in tokens {
            while self.pipes.contains_key(&t) && self.on_pipe_until_empty(t) {}
        }
    }

    /// One read; true while more may be readable.
    fn on_pipe_until_empty(&mut self, token: u64) -> bool {
        let before = self.pipes.len();
        let Some(pipe) = self.pipes.get(&token) else {
            return false;
        };
        // Readable right now?
        let mut fds = [nix::poll::PollFd::new(
            pipe.fd.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        match nix::poll::poll(&mut fds, nix::poll::PollTimeout::ZERO) {
            Ok(1) => {}
            _ => return false,
        }
        self.on_pipe(token) && self.pipes.len() == before
    }

    fn drain_all(&mut self) {
        let tokens: Vec<u64> = self.pipes.keys().copied().collect();
        for t in tokens {
            while self.on_pipe_until_empty(t) {}
        }
    }
}

impl Output {
    /// (Re)open the file for appending and learn its size and last byte.
    fn open(&mut self) -> Result<()> {
        let file = crate::process::output::open_output(&self.path)?;
        self.state = state_of(&file);
        self.file = Some(file);
        Ok(())
    }

    /// The open file is the one at the path.
    fn is_at_path(&self) -> bool {
        use std::os::unix::fs::MetadataExt;
        let (Some(file), Ok(there)) = (&self.file, std::fs::symlink_metadata(&self.path)) else {
            return false;
        };
        file.metadata()
            .is_ok_and(|m| m.dev() == there.dev() && m.ino() == there.ino())
    }

    fn append(&mut self, chunk: &[u8]) {
        let (steps, _) = rotation::plan(self.state, chunk, self.rotation.max_bytes);
        for step in steps {
            match step {
                Step::Rotate => self.rotate(),
                Step::Write(range) => {
                    let bytes = &chunk[range];
                    let written = match &mut self.file {
                        Some(f) => f.write_all(bytes),
                        None => Err(std::io::Error::other("it could not be opened")),
                    };
                    match written {
                        Ok(()) => {
                            self.failing = false;
                            self.state.size += bytes.len() as u64;
                            self.state.at_line_end = bytes.last() == Some(&b'\n');
                        }
                        Err(e) => {
                            if !std::mem::replace(&mut self.failing, true) {
                                log(&format!(
                                    "cannot write to {} (output is dropped until it can): {e}",
                                    self.path.display()
                                ));
                            }
                            if self.file.is_none() {
                                let _ = self.open();
                            }
                        }
                    }
                }
            }
        }
    }

    /// `.N` up to `.keep` shift up, the file becomes `.1` and a new one is opened; with
    /// keep=0 the file is removed. Our descriptor still points at the old file until
    /// the new one is open, so nothing written is ever lost here.
    fn rotate(&mut self) {
        let keep = self.rotation.keep;
        let moved = if keep == 0 {
            std::fs::remove_file(&self.path)
        } else {
            // Only the files that exist are shifted (keep may be large).
            let mut top = 0;
            while top < keep && std::fs::symlink_metadata(numbered(&self.path, top + 1)).is_ok() {
                top += 1;
            }
            if top == keep {
                let _ = std::fs::remove_file(numbered(&self.path, keep));
                top = keep - 1;
            }
            for n in (1..=top).rev() {
                match std::fs::rename(numbered(&self.path, n), numbered(&self.path, n + 1)) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => log(&format!(
                        "cannot rename {}: {e}",
                        numbered(&self.path, n).display()
                    )),
                }
            }
            std::fs::rename(&self.path, numbered(&self.path, 1))
        };
        match moved {
            Ok(()) => {}
            // Someone removed it: the new file is opened all the same.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                log(&format!(
                    "cannot rotate {}: {e} (it grows on; rotation is tried again at service_log_max_bytes more)",
                    self.path.display()
                ));
                self.state.size = 0;
                return;
            }
        }
        if let Err(e) = self.open() {
            // Go on writing where the descriptor points (the rotated file).
            log(&format!("{e} (writing on into the rotated file)"));
            self.state = FileState::EMPTY;
        }
    }
}

fn state_of(file: &File) -> FileState {
    use std::os::unix::fs::FileExt;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut last = [b'\n'];
    if size > 0 {
        let _ = file.read_at(&mut last, size - 1);
    }
    FileState {
        size,
        at_line_end: last[0] == b'\n',
    }
}

/// `NAME.output.N`
pub fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// The keeper's log (its stderr).
pub fn open_log(playpen: &Playpen) -> Result<File> {
    crate::process::output::open_output(&log_path(playpen))
}

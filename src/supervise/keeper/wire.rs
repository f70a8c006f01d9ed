//! The keeper's messages: one request a SOCK_SEQPACKET message, with the read end of a
//! pipe attached (SCM_RIGHTS) where the request hands one over.

use super::ANSWER_WITHIN;
use crate::config::settings::LogRotation;
use nix::sys::socket::{self, ControlMessage, MsgFlags};
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// One message to the keeper (SOCK_SEQPACKET: one request a message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Request {
    /// Keep this pipe's output (the read end is attached) in the service's file.
    Pipe {
        service: String,
        rotation: LogRotation,
    },
    /// Answer once everything readable in the service's pipes is in its file.
    Flush { service: String },
    /// Send a copy of every pipe's read end (one `Pipe` message each), then `ok`.
    Hold,
    /// Write what is readable, then exit (after a shutdown stopped every service);
    /// refused while a pipe still has a writer: the keeper then stays until the last
    /// one is closed.
    Finish,
}

impl Request {
    pub(super) fn encode(&self) -> Vec<u8> {
        match self {
            Request::Pipe { service, rotation } => {
                format!("pipe\n{service}\n{}\n{}", rotation.max_bytes, rotation.keep)
            }
            Request::Flush { service } => format!("flush\n{service}"),
            Request::Hold => "hold".to_string(),
            Request::Finish => "finish".to_string(),
        }
        .into_bytes()
    }

    pub(super) fn decode(bytes: &[u8]) -> Option<Request> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut parts = text.split('\n');
        let request = match parts.next()? {
            "pipe" => Request::Pipe {
                service: parts.next()?.to_string(),
                rotation: LogRotation {
                    max_bytes: parts.next()?.parse().ok()?,
                    keep: parts.next()?.parse().ok()?,
                },
            },
            "flush" => Request::Flush {
                service: parts.next()?.to_string(),
            },
            "finish" => Request::Finish,
            "hold" => Request::Hold,
            _ => return None,
        };
        parts.next().is_none().then_some(request)
    }
}

/// Send one message (with a descriptor), waiting a moment (at most
/// [`ANSWER_WITHIN`]) when the peer's buffer is full.
pub(super) fn send(fd: BorrowedFd, bytes: &[u8], with: Option<BorrowedFd>) -> nix::Result<()> {
    let iov = [IoSlice::new(bytes)];
    let raw;
    let cmsgs: Vec<ControlMessage> = match with {
        Some(w) => {
            raw = [w.as_raw_fd()];
            vec![ControlMessage::ScmRights(&raw)]
        }
        None => Vec::new(),
    };
    loop {
        match socket::sendmsg::<()>(fd.as_raw_fd(), &iov, &cmsgs, MsgFlags::MSG_NOSIGNAL, None) {
            Ok(_) => return Ok(()),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(nix::errno::Errno::EAGAIN) => {
                let mut fds = [nix::poll::PollFd::new(fd, nix::poll::PollFlags::POLLOUT)];
                let ms = ANSWER_WITHIN.as_millis() as u16;
                match nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(ms)) {
                    Ok(0) => return Err(nix::errno::Errno::EAGAIN),
                    Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// One message and the descriptors that came with it; None at the end (the peer
/// closed its end).
pub(super) fn receive(
    fd: BorrowedFd,
    flags: MsgFlags,
) -> nix::Result<Option<(Vec<u8>, Vec<OwnedFd>)>> {
    let mut buf = vec![0u8; 4096];
    let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 4]);
    let (n, fds) = {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = socket::recvmsg::<()>(
            fd.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            flags | MsgFlags::MSG_CMSG_CLOEXEC,
        )?;
        let mut fds = Vec::new();
        if let Ok(cmsgs) = msg.cmsgs() {
            for c in cmsgs {
                if let socket::ControlMessageOwned::ScmRights(raw) = c {
                    // SAFETY: the kernel just installed these descriptors for us.
                    fds.extend(raw.into_iter().map(|r| unsafe { OwnedFd::from_raw_fd(r) }));
                }
            }
        }
        (msg.bytes, fds)
    };
    if n == 0 && fds.is_empty() {
        return Ok(None);
    }
    buf.truncate(n);
    Ok(Some((buf, fds)))
}

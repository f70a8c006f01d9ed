//! The sd_notify protocol (sd_notify(3)), received without libsystemd: one AF_UNIX
//! SOCK_DGRAM socket with SO_PASSCRED, each datagram newline-separated `KEY=VALUE`
//! fields, its sender known by the kernel's credentials (not by anything it claims).
//!
//! A message counts for a service when its sender is the service's main process or any
//! process of its process group or session (systemd's `NotifyAccess=all`, which is what
//! daemons that fork a notifying helper need); anything else is dropped.

use crate::error::{Error, Result};
use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

/// One field the protocol defines and servicectl understands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// READY=1
    Ready,
    /// RELOADING=1: not ready until the next READY=1.
    Reloading,
    /// STOPPING=1
    Stopping,
    /// STATUS=text, shown in status NOTE.
    Status(String),
    /// MAINPID=N: N becomes the tracked process if it belongs to the service.
    MainPid(i32),
    /// WATCHDOG=1: alive.
    Watchdog,
    /// ERRNO=n
    Errno(i32),
}

/// A datagram's fields, in order; unknown keys and malformed values are ignored (the
/// protocol says so: a sender may speak a newer version).
pub fn parse(data: &[u8]) -> Vec<Field> {
    let text = String::from_utf8_lossy(data);
    text.split('\n')
        .filter_map(|line| {
            let (key, value) = line.split_once('=')?;
            match (key, value) {
                ("READY", "1") => Some(Field::Ready),
                ("RELOADING", "1") => Some(Field::Reloading),
                ("STOPPING", "1") => Some(Field::Stopping),
                ("WATCHDOG", "1") => Some(Field::Watchdog),
                ("STATUS", text) => Some(Field::Status(text.to_string())),
                ("MAINPID", n) => n.trim().parse().ok().filter(|p| *p > 0).map(Field::MainPid),
                ("ERRNO", n) => n.trim().parse().ok().map(Field::Errno),
                _ => None,
            }
        })
        .collect()
}

/// A received datagram: its sender (from the kernel) and its fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub pid: i32,
    pub fields: Vec<Field>,
}

/// The receiving socket.
pub struct NotifySocket {
    fd: OwnedFd,
    path: PathBuf,
}

/// The largest datagram read (systemd accepts up to its page-sized buffer too).
const MAX_DATAGRAM: usize = 4096;

impl NotifySocket {
    /// Bind a new socket at `path` (a stale file there is replaced), non-blocking,
    /// close-on-exec, with SO_PASSCRED. Mode 0666: a service running as another user
    /// must be able to send; who sent is told by the kernel, not by the mode.
    pub fn bind(path: &Path) -> Result<NotifySocket> {
        use nix::sys::socket::{
            AddressFamily, SockFlag, SockType, UnixAddr, bind, setsockopt, socket, sockopt,
        };
        let fail = |what: &str, e: nix::errno::Errno| {
            Error::runtime(format!(
                "cannot {what} the notify socket {}: {e}",
                path.display()
            ))
        };
        let fd = socket(
            AddressFamily::Unix,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            None,
        )
        .map_err(|e| fail("create", e))?;
        setsockopt(&fd, sockopt::PassCred, &true).map_err(|e| fail("set up", e))?;
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove the stale socket", path, e)),
        }
        let addr = UnixAddr::new(path).map_err(|e| fail("name", e))?;
        bind(fd.as_raw_fd(), &addr).map_err(|e| fail("bind", e))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))
            .map_err(|e| Error::io("set the mode of", path, e))?;
        Ok(NotifySocket {
            fd,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The next datagram waiting, None when there is none (the socket is
    /// non-blocking). A datagram without credentials is skipped.
    pub fn recv(&self) -> Option<Message> {
        use nix::sys::socket::{ControlMessageOwned, MsgFlags, UnixAddr, recvmsg};
        loop {
            let mut buf = [0u8; MAX_DATAGRAM];
            let mut cmsg = nix::cmsg_space!(nix::sys::socket::UnixCredentials);
            let mut iov = [IoSliceMut::new(&mut buf)];
            let (bytes, pid) = match recvmsg::<UnixAddr>(
                self.fd.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::MSG_CMSG_CLOEXEC | MsgFlags::MSG_TRUNC,
            ) {
                Ok(msg) => {
                    let pid = msg.cmsgs().ok()?.find_map(|c| match c {
                        ControlMessageOwned::ScmCredentials(cred) => Some(cred.pid()),
                        _ => None,
                    });
                    (msg.bytes, pid)
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => return None,
            };
            let Some(pid) = pid.filter(|p| *p > 0) else {
                continue;
            };
            let len = bytes.min(MAX_DATAGRAM);
            return Some(Message {
                pid,
                fields: parse(&buf[..len]),
            });
        }
    }
}

impl AsFd for NotifySocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Drop for NotifySocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Does a message from `sender` count for the service whose main process is `main`?
/// The main process itself, or a process of its process group or session.
pub fn belongs_to(sender: i32, main: i32) -> bool {
    if sender == main {
        return true;
    }
    let (Some(s), Some(m)) = (
        crate::process::proc::stat(sender),
        crate::process::proc::stat(main),
    ) else {
        return false;
    };
    s.pgid == m.pgid || s.sid == m.sid
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_parsed_and_the_unknown_ignored() {
        assert_eq!(
            parse(b"READY=1\nSTATUS=Processing requests\nMAINPID=4242\nFOO=bar\nWATCHDOG=1\nERRNO=2\nRELOADING=1\nSTOPPING=1"),
            vec![
                Field::Ready,
                Field::Status("Processing requests".into()),
                Field::MainPid(4242),
                Field::Watchdog,
                Field::Errno(2),
                Field::Reloading,
                Field::Stopping,
            ]
        );
        assert_eq!(parse(b"READY=0\nMAINPID=x\nMAINPID=-3\n\n=\nREADY"), vec![]);
        assert_eq!(parse(b"STATUS=a=b"), vec![Field::Status("a=b".into())]);
    }

    #[test]
    fn a_datagram_is_received_with_its_sender_from_the_kernel() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let socket = NotifySocket::bind(&path).unwrap();
        assert_eq!(socket.recv(), None);
        // A real other process sends (python3 speaks the protocol in two lines).
        let status = std::process::Command::new("python3")
            .arg("-c")
            .arg("import socket,sys; s=socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.sendto(b'READY=1\\nSTATUS=up', sys.argv[1])")
            .arg(&path)
            .status()
            .expect("python3");
        assert!(status.success());
        let message = socket.recv().expect("a datagram");
        assert!(message.pid > 0 && message.pid != std::process::id() as i32);
        assert_eq!(
            message.fields,
            vec![Field::Ready, Field::Status("up".into())]
        );
        // The sender was a child of ours in our group: it belongs with us.
        let me = std::process::id() as i32;
        assert!(belongs_to(me, me));
        // A process in a session of its own (as every service is) does not; pid 1 can't
        // stand in for it, since CI may run the tests in pid 1's session.
        use std::os::unix::process::CommandExt;
        let mut command = std::process::Command::new("sleep");
        command.arg("30");
        // SAFETY: setsid is async-signal-safe; spawn returns once the exec succeeded,
        // so the new session exists by then.
        unsafe {
            command.pre_exec(|| {
                nix::unistd::setsid()
                    .map(drop)
                    .map_err(std::io::Error::from)
            });
        }
        let mut stranger = command.spawn().expect("sleep");
        let pid = stranger.id() as i32;
        assert_eq!(crate::process::proc::stat(pid).map(|s| s.sid), Some(pid));
        assert!(!belongs_to(pid, me));
        assert!(!belongs_to(me, pid));
        stranger.kill().unwrap();
        stranger.wait().unwrap();
        drop(socket);
        assert!(!path.exists(), "the socket file is removed with the socket");
    }
}

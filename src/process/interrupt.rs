//! SIGTERM, SIGHUP (an ssh session that drops) and SIGINT while servicectl starts
//! services: instead of dying half-way, with processes spawned and not yet on record,
//! servicectl notes the signal; the starts in flight finish and record their process
//! (or roll back, where they wait on the program), nothing new is started, and the
//! command ends non-zero saying why. SIGKILL cannot be caught: the next command
//! recovers what it left (see `tracking`).

use crate::error::{Error, ErrorKind, Result};
use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, Signal};
use std::sync::atomic::{AtomicI32, Ordering};

/// The signals that cancel a start.
const CANCELLING: [Signal; 3] = [Signal::SIGTERM, Signal::SIGHUP, Signal::SIGINT];

/// The first cancelling signal received while a [`Deferred`] was in place (0: none).
static RECEIVED: AtomicI32 = AtomicI32::new(0);

/// An eventfd the handler makes readable (and that stays so: a signal once received is
/// received for good), so that a thread waiting in poll wakes for it whichever thread
/// the signal was delivered to. -1 until the first [`Deferred`].
static WAKE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn note(sig: libc::c_int) {
    // An atomic store and a write(2): async-signal-safe.
    let _ = RECEIVED.compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst);
    let fd = WAKE.load(Ordering::SeqCst);
    if fd >= 0 {
        let one: u64 = 1;
        // SAFETY: write of 8 bytes from a live local to an eventfd we own.
        unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
    }
}

/// Readable once a cancelling signal was received: for a wait in poll(2) to end on it.
pub fn wake_fd() -> Option<std::os::fd::BorrowedFd<'static>> {
    match WAKE.load(Ordering::SeqCst) {
        fd if fd >= 0 => {
            // SAFETY: the eventfd is made once and never closed (it lives as long as
            // the process).
            Some(unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) })
        }
        _ => None,
    }
}

/// While it lives, SIGTERM, SIGHUP and SIGINT are noted instead of ending the process.
/// Dropping it puts the previous dispositions back. Guards nest (the CLI installs one
/// when a start command begins, the start path another); a signal once received stays
/// received for the life of the process: the command it cancelled is over.
pub struct Deferred {
    previous: Vec<(Signal, SigAction)>,
}

impl Deferred {
    pub fn install() -> Deferred {
        if WAKE.load(Ordering::SeqCst) < 0 {
            // SAFETY: eventfd takes an initial value and flags and returns a new fd.
            let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
            if fd >= 0
                && WAKE
                    .compare_exchange(-1, fd, Ordering::SeqCst, Ordering::SeqCst)
                    .is_err()
            {
                // Another thread made one first.
                // SAFETY: closing the fd we just made and nobody else knows of.
                unsafe { libc::close(fd) };
            }
        }
        // SA_RESTART: a read or wait in flight carries on; poll, which the kernel never
        // restarts, is retried by its callers.
        let action = SigAction::new(
            SigHandler::Handler(note),
            SaFlags::SA_RESTART,
            SigSet::empty(),
        );
        let mut previous = Vec::new();
        for sig in CANCELLING {
            // SAFETY: the handler only stores into an atomic.
            match unsafe { signal::sigaction(sig, &action) } {
                // A signal ignored on purpose (nohup) stays ignored.
                Ok(old) if matches!(old.handler(), SigHandler::SigIgn) => {
                    // SAFETY: restoring the disposition we just read.
                    let _ = unsafe { signal::sigaction(sig, &old) };
                }
                Ok(old) => previous.push((sig, old)),
                Err(_) => {}
            }
        }
        Deferred { previous }
    }
}

impl Drop for Deferred {
    fn drop(&mut self) {
        for (sig, old) in &self.previous {
            // SAFETY: putting back the disposition sigaction gave us.
            let _ = unsafe { signal::sigaction(*sig, old) };
        }
    }
}

/// The cancelling signal received, if any.
pub fn received() -> Option<Signal> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        sig => Signal::try_from(sig).ok(),
    }
}

/// Err (not attempted) once a cancelling signal was received: nothing new is begun.
/// `what`: the operation in the past tense ("started").
pub fn check(service: &str, what: &str) -> Result<()> {
    match received() {
        None => Ok(()),
        Some(sig) => Err(Error::new(
            ErrorKind::NotAttempted,
            format!(
                "not {what}: servicectl received {} and starts nothing new",
                sig.as_str()
            ),
        )
        .with_service(service)
        .with_hint(
            "what had begun was finished and is on record; run the command again for the rest",
        )),
    }
}

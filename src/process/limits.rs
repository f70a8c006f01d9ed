//! The descriptor limit. The supervisor raises its own soft RLIMIT_NOFILE to the hard
//! limit at launch (it holds a pidfd per process and a socket per client, and a stop
//! must never fail for want of one); what it starts (programs, hooks, checks, cron runs,
//! inetd handlers) gets back the limit servicectl was started with, since many programs
//! size tables by it or use select(2).

use std::sync::OnceLock;

/// The limit servicectl was started with, once it has raised its own.
static STARTED_WITH: OnceLock<libc::rlimit> = OnceLock::new();

/// Raise the soft limit to the hard one (a no-op where they are equal).
pub fn raise_own() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit write or read the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 || limit.rlim_cur >= limit.rlim_max
        {
            return;
        }
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
            let _ = STARTED_WITH.set(limit);
        }
    }
}

/// The limit a child must get back, if ours was raised.
pub fn for_children() -> Option<libc::rlimit> {
    STARTED_WITH.get().copied()
}

/// Give process `pid` (just started) the limit servicectl was started with.
pub fn give_back(pid: i32) {
    if let Some(limit) = for_children() {
        // SAFETY: prlimit on a process we started, with a valid struct and no old value.
        unsafe {
            libc::prlimit(pid, libc::RLIMIT_NOFILE, &limit, std::ptr::null_mut());
        }
    }
}

/// In a child between fork and exec: take the limit servicectl was started with
/// (async-signal-safe: one system call on memory prepared before the fork).
pub fn restore_in_child(limit: Option<libc::rlimit>) {
    if let Some(limit) = limit {
        // SAFETY: setrlimit is async-signal-safe.
        unsafe {
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

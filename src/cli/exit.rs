//! Exit codes, the same for every command (documented in docs/cli.md), and the rules
//! that pick one from a command's results, in one place so that no command invents its
//! own; status follows the LSB init-script convention.

use crate::control::ServiceStatus;
use crate::error::{Error, ErrorKind};

pub const OK: i32 = 0;
pub const FAILED: i32 = 1;
pub const USAGE: i32 = 2;
/// status: some service is not running (LSB).
pub const NOT_RUNNING: i32 = 3;
/// An unknown service was named (LSB status code 4).
pub const UNKNOWN_SERVICE: i32 = 4;

/// A command that failed as a whole with this error.
pub fn for_error(e: &Error) -> i32 {
    match e.kind {
        ErrorKind::UnknownService => UNKNOWN_SERVICE,
        _ => FAILED,
    }
}

/// OK, or FAILED when anything failed.
pub fn failed_if(failed: bool) -> i32 {
    if failed { FAILED } else { OK }
}

/// status, with or without a supervisor (LSB): OK when every listed service is up (runs;
/// a cron or inetd service armed; a one-shot done), else NOT_RUNNING; a service the
/// role lists that is not installed (`missing`) makes it 4, as an unknown service does.
pub fn for_status(statuses: &[ServiceStatus]) -> i32 {
    if statuses.iter().any(|s| s.state == "missing") {
        return UNKNOWN_SERVICE;
    }
    up_if(
        statuses
            .iter()
            .all(|s| matches!(s.state.as_str(), "running" | "armed" | "done")),
    )
}

fn up_if(up: bool) -> i32 {
    if up { OK } else { NOT_RUNNING }
}

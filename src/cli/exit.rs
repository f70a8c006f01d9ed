//! Exit codes, the same for every command (documented in docs/cli.md), and the rules
//! that pick one from a command's results, in one place so that no command invents its
//! own; status follows the LSB init-script convention.

use crate::error::{Error, ErrorKind};
use crate::service::status::{ServiceStatus, State};

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

/// status: OK when every listed service runs (a one-shot: is done), else NOT_RUNNING (LSB).
pub fn for_status(statuses: &[ServiceStatus]) -> i32 {
    up_if(
        statuses
            .iter()
            .all(|s| matches!(s.state, State::Running | State::Done)),
    )
}

/// status under a supervisor, from the states it reports: a cron or inetd service that
/// is armed, and a one-shot that is done, are up as a running daemon is.
/// A service the role lists that is not installed (`missing`) makes it 4, as an
/// unknown service does.
pub fn for_supervised_status<'a>(states: impl IntoIterator<Item = &'a str>) -> i32 {
    let states: Vec<&str> = states.into_iter().collect();
    if states.contains(&"missing") {
        return UNKNOWN_SERVICE;
    }
    up_if(
        states
            .iter()
            .all(|s| *s == State::Running.as_str() || *s == "armed" || *s == "done"),
    )
}

fn up_if(up: bool) -> i32 {
    if up { OK } else { NOT_RUNNING }
}

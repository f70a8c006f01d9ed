//! Exit codes, the same for every command (documented in docs/cli.md); status follows
//! the LSB init-script convention.

pub const OK: i32 = 0;
pub const FAILED: i32 = 1;
pub const USAGE: i32 = 2;
/// status: some service is not running (LSB).
pub const NOT_RUNNING: i32 = 3;
/// An unknown service was named (LSB status code 4).
pub const UNKNOWN_SERVICE: i32 = 4;

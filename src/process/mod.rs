//! Processes as the kernel sees them: launching one in its own session, its identity
//! and exit from /proc and pidfds, the pidfiles and start records that keep it on record,
//! the linkfarm symlinks that name it, and the output file it writes; the playpen's
//! processes found by their environment (`census`), and what keeps every one of them on
//! record (`tracking`, `interrupt`).

pub mod census;
pub mod env;
pub mod foreground;
pub mod holders;
pub mod interrupt;
pub mod limits;
pub mod linkfarm;
pub mod notify;
pub mod output;
pub mod pidfile;
pub mod proc;
pub mod sockets;
pub mod spawn;
pub mod tracking;
pub mod user;

//! One service, made ready and acted on: its environment and program resolved once
//! ([`prepare`]), then started, stopped and restarted ([`lifecycle`]) with its hooks
//! ([`hooks`]), and observed ([`status`]).

pub mod executable;
pub mod hooks;
pub mod lifecycle;
pub mod oneshot;
pub mod outcome;
pub mod prepare;
pub mod prepared;
pub mod program;
pub mod readiness;
pub mod run_as;
pub mod status;
pub mod watch;

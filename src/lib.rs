//! servicectl: a service runtime for a project playpen.
//!
//! The folders follow the data path of a command, and imports run one way, from the
//! top of this list to the bottom:
//!
//! - [`cli`]: parse the command line, call [`ops`] (or, when one runs, the playpen's
//!   supervisor through [`control`]), hand the result to [`render`].
//! - [`render`]: the one output layer: each report's text and JSON form, tables,
//!   colour, the progress line, and the sink every byte of output goes through.
//! - [`supervise`]: the supervisor daemon: one event loop keeping the services alive.
//! - [`ops`]: the commands as library calls, across services in dependency order.
//! - [`service`]: one service made ready ([`service::prepare`]) and acted on: start,
//!   stop, restart, hooks, status and ping.
//! - [`config`]: the sh configuration of every service, evaluated, typed and rendered.
//! - [`process`]: processes as the kernel sees them: spawn, pidfiles, the linkfarm.
//! - [`playpen`]: where things are: discovery, paths, the catalog of services, locks.
//! - [`control`]: the protocol between commands and the supervisor (JSON lines).
//! - [`text`] and [`error`]: leaves that import nothing of ours.

pub mod cli;
pub mod config;
pub mod control;
pub mod error;
pub mod ops;
pub mod playpen;
pub mod process;
pub mod render;
pub mod service;
pub mod supervise;
pub mod text;

pub use error::{Error, ErrorKind, Result};

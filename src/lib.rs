//! servicectl: a service runtime for a project playpen.
//!
//! Modules follow the life of a command: find the [`playpen`], know its services
//! ([`catalog`]), evaluate their sh configuration ([`config`], [`shell_dump`]), check
//! typed variables ([`envars`]) and render templates ([`template`]), then act on
//! processes ([`linkfarm`], [`spawn`], [`pidfile`], [`hooks`], [`lock`], [`lifecycle`])
//! in dependency order ([`graph`], [`ops`]), and report ([`status`], [`report`]). The
//! [`cli`] only parses and calls.

pub mod catalog;
pub mod cli;
pub mod config;
pub mod envars;
pub mod error;
pub mod fsutil;
pub mod graph;
pub mod hooks;
pub mod lifecycle;
pub mod linkfarm;
pub mod lock;
pub mod ops;
pub mod package;
pub mod pidfile;
pub mod playpen;
pub mod process;
pub mod registry;
pub mod report;
pub mod session;
pub mod shell_dump;
pub mod spawn;
pub mod status;
pub mod template;
pub mod upgrade;

pub use error::{Error, ErrorKind, Result};

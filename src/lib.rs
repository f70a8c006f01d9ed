//! servicectl: a service runtime for a project playpen.
//!
//! Modules follow the life of a command: find the [`playpen`], know its services
//! ([`catalog`]), evaluate their sh configuration ([`config`]), then act on processes
//! ([`linkfarm`], [`spawn`], [`pidfile`], [`hooks`], [`lifecycle`]) in dependency order
//! ([`graph`]), and report ([`status`], [`report`]). The [`cli`] only parses and calls.

pub mod catalog;
pub mod config;
pub mod envars;
pub mod error;
pub mod fsutil;
pub mod playpen;
pub mod shell_dump;
pub mod template;

pub use error::{Error, ErrorKind, Result};

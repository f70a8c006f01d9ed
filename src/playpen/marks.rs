//! Upgrade marks: a service that kept running while its package (or one it depends on)
//! changed is marked, so that its next start sees SERVICE_UPGRADED=1. Read when a
//! service is prepared, written by upgrades: a file each, so neither side imports the other.

use crate::error::Result;
use crate::playpen::Playpen;
use crate::playpen::{fsutil, names};
use std::path::PathBuf;

/// The mark's path; None for a name that is not a service name (it has no mark).
fn mark_path(playpen: &Playpen, service: &str) -> Option<PathBuf> {
    names::is_valid(service).then(|| unchecked_path(playpen, service))
}

fn unchecked_path(playpen: &Playpen, service: &str) -> PathBuf {
    playpen.state_dir().join("upgraded").join(service)
}

/// Was this service upgraded while it ran, since its last (re)start?
pub fn is_marked(playpen: &Playpen, service: &str) -> bool {
    mark_path(playpen, service).is_some_and(|p| p.symlink_metadata().is_ok())
}

/// Forget the mark once the service has been (re)started with SERVICE_UPGRADED=1.
pub fn clear_mark(playpen: &Playpen, service: &str) {
    if let Some(path) = mark_path(playpen, service) {
        let _ = std::fs::remove_file(path);
    }
}

pub fn mark(playpen: &Playpen, service: &str) -> Result<()> {
    names::check_service(service)?;
    let path = unchecked_path(playpen, service);
    fsutil::ensure_dir(path.parent().expect("has parent"))?;
    fsutil::write_atomic(&path, b"1\n", None)
}

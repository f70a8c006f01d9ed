//! Per-service locks: every state-changing operation on a service holds one, so
//! concurrent invocations never double-start or race.

use crate::error::{Error, Result};
use crate::playpen::Playpen;
use crate::playpen::{fsutil, names};
use std::fs::File;
use std::path::Path;

/// Held for as long as the value lives; the kernel drops the lock if we die.
pub struct ServiceLock {
    _file: File,
}

impl ServiceLock {
    pub fn acquire(playpen: &Playpen, service: &str) -> Result<ServiceLock> {
        names::check_service(service)?;
        let path = playpen.lock_file(service);
        let file = lock_file(&path).map_err(|e| e.with_service(service))?;
        Ok(ServiceLock { _file: file })
    }
}

/// Open (never through a symlink) and lock `path`, waiting for whoever holds it.
pub fn lock_file(path: &Path) -> Result<File> {
    let file = fsutil::open_in_var(path, false, "lock file")?;
    file.lock().map_err(|e| Error::io("lock", path, e))?;
    Ok(file)
}

//! Per-service locks: every state-changing operation on a service holds one, so
//! concurrent invocations never double-start or race.

use crate::error::{Error, Result};
use crate::playpen::Playpen;
use std::fs::{File, OpenOptions};

/// Held for as long as the value lives; the kernel drops the lock if we die.
pub struct ServiceLock {
    _file: File,
}

impl ServiceLock {
    pub fn acquire(playpen: &Playpen, service: &str) -> Result<ServiceLock> {
        let path = playpen.lock_file(service);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io("open lock file", &path, e).with_service(service))?;
        file.lock()
            .map_err(|e| Error::io("lock", &path, e).with_service(service))?;
        Ok(ServiceLock { _file: file })
    }
}

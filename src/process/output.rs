//! A service's output file (`var/run/NAME.output`): opened for appending by whatever the
//! service runs, so its output survives servicectl and needs no process to relay it;
//! read back in part for error messages.

use crate::error::Result;
use crate::playpen::fsutil;
use std::path::Path;

/// Open the output file for appending (created 0644 if missing). Never through a
/// symlink and never anything but a regular file: see [`fsutil::open_in_var`].
pub fn open_output(path: &Path) -> Result<std::fs::File> {
    fsutil::open_in_var(path, true, "output file")
}

/// The last `n` lines written to a file after byte `since`, for error messages. Reads
/// at most the last 16 KiB: output files grow without bound. Only a regular file, not
/// through a symlink, without blocking: anything else has no tail to show.
pub fn tail_file(path: &Path, since: u64, n: usize) -> String {
    use std::io::{Read, Seek, SeekFrom};
    use std::os::unix::fs::OpenOptionsExt;
    let Ok(mut file) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY)
        .open(path)
    else {
        return String::new();
    };
    let Ok(meta) = file.metadata() else {
        return String::new();
    };
    if !meta.is_file() {
        return String::new();
    }
    let len = meta.len();
    let from = since.min(len).max(len.saturating_sub(16 * 1024));
    let mut bytes = Vec::new();
    if file.seek(SeekFrom::Start(from)).is_err()
        || file.take(16 * 1024).read_to_end(&mut bytes).is_err()
    {
        return String::new();
    }
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The current size of a file (0 when missing, or not a regular file).
pub fn file_len(path: &Path) -> u64 {
    std::fs::symlink_metadata(path)
        .ok()
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .unwrap_or(0)
}

//! A service's output file (`var/run/NAME.output`): opened for appending by whatever the
//! service runs, so its output survives servicectl and needs no process to relay it;
//! read back in part for error messages.

use crate::error::{Error, Result};
use std::path::Path;

/// Open the output file for appending (created 0644 if missing).
pub fn open_output(path: &Path) -> Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o644)
        .open(path)
        .map_err(|e| Error::io("open output file", path, e))
}

/// The last `n` lines written to a file after byte `since`, for error messages. Reads
/// at most the last 16 KiB: output files grow without bound.
pub fn tail_file(path: &Path, since: u64, n: usize) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut file) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let from = since.min(len).max(len.saturating_sub(16 * 1024));
    let mut bytes = Vec::new();
    if file.seek(SeekFrom::Start(from)).is_err() || file.read_to_end(&mut bytes).is_err() {
        return String::new();
    }
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The current size of a file (0 when missing).
pub fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

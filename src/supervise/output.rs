//! Rotation of service output files by size, in place: the supervisor's job (reading
//! them, `servicectl logs`, is `process::output`'s and needs no supervisor).
//!
//! Rotation copies `NAME.output` to `NAME.output.1` (after moving `.1` to `.2` … up to
//! service_log_keep) and then truncates `NAME.output` to 0: the service keeps its
//! descriptor, opened for appending, and writes on at the new end. A line written
//! between the copy and the truncation can be lost (as with logrotate's copytruncate);
//! what grew meanwhile is appended to `.1` first, which keeps that window small.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Files in var/ are never opened through a symlink, nor blocked on as a FIFO.
const SAFE: libc::c_int = libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC;

/// `NAME.output.N`
fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// Rotate `path` in place, keeping `keep` older files. Returns the bytes moved out.
pub fn rotate(path: &Path, keep: u32) -> std::io::Result<u64> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(SAFE)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    if keep == 0 {
        let len = file.metadata()?.len();
        file.set_len(0)?;
        return Ok(len);
    }
    let _ = std::fs::remove_file(numbered(path, keep));
    for n in (1..keep).rev() {
        match std::fs::rename(numbered(path, n), numbered(path, n + 1)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    // A new file (O_EXCL: not through whatever a symlink of that name points at).
    let first = numbered(path, 1);
    let _ = std::fs::remove_file(&first);
    let mut copy = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(SAFE)
        .open(&first)?;
    let mut copied = std::io::copy(&mut file, &mut copy)?;
    // What the service wrote during the copy goes along before the truncation.
    copied += std::io::copy(&mut file, &mut copy)?;
    file.set_len(0)?;
    copy.flush()?;
    Ok(copied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_keeps_n_files_and_truncates_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web.output");
        let mut writer = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap();
        for round in 1..=4 {
            writeln!(writer, "round {round}").unwrap();
            rotate(&path, 2).unwrap();
        }
        // The service's descriptor writes on at the start of the emptied file.
        writeln!(writer, "after").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "after\n");
        assert_eq!(
            std::fs::read_to_string(numbered(&path, 1)).unwrap(),
            "round 4\n"
        );
        assert_eq!(
            std::fs::read_to_string(numbered(&path, 2)).unwrap(),
            "round 3\n"
        );
        assert!(!numbered(&path, 3).exists());
        rotate(&path, 0).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
    }
}

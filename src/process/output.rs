//! A service's output file (`var/run/NAME.output`): opened for appending by whatever the
//! service runs, so its output survives servicectl and needs no process to relay it;
//! read back in part for error messages and by `servicectl logs` (the tail, and
//! following across rotations with inotify, with or without a supervisor).

use crate::error::Result;
use crate::playpen::fsutil;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Open the output file for appending (created 0644 if missing). Never through a
/// symlink and never anything but a regular file: see [`fsutil::open_in_var`].
pub fn open_output(path: &Path) -> Result<std::fs::File> {
    fsutil::open_in_var(path, true, "output file")
}

/// `; last lines of FILE:` and the last 10 lines written to it after byte `since`,
/// indented, for the end of an error message; empty when it wrote nothing.
pub fn quoted_tail(path: &Path, since: u64) -> String {
    let tail = tail_file(path, since, 10);
    if tail.is_empty() {
        return String::new();
    }
    format!(
        "; last lines of {}:\n{}",
        path.display(),
        crate::text::indent(&tail)
    )
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

/// The last `n` lines of a file (the whole file when shorter), reading backwards in
/// blocks so that a large file costs only its tail.
pub fn tail_lines(path: &Path, n: usize) -> std::io::Result<(Vec<String>, u64)> {
    tail_of(&File::open(path)?, n)
}

/// [`tail_lines`] of an open file.
fn tail_of(mut file: &File, n: usize) -> std::io::Result<(Vec<String>, u64)> {
    let len = file.metadata()?.len();
    if n == 0 {
        return Ok((Vec::new(), len));
    }
    let mut start = len;
    let mut bytes: Vec<u8> = Vec::new();
    const BLOCK: u64 = 64 * 1024;
    loop {
        let newlines = bytes.iter().filter(|&&b| b == b'\n').count();
        // n lines need n + 1 newlines before them (the last line may lack one).
        if start == 0 || newlines > n {
            break;
        }
        let from = start.saturating_sub(BLOCK);
        let mut block = vec![0u8; (start - from) as usize];
        file.seek(SeekFrom::Start(from))?;
        file.read_exact(&mut block)?;
        block.extend_from_slice(&bytes);
        bytes = block;
        start = from;
    }
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    let skip = lines.len().saturating_sub(n);
    Ok((lines[skip..].to_vec(), len))
}

/// One file `logs -f` follows.
struct Followed {
    prefix: String,
    path: PathBuf,
    file_name: std::ffi::OsString,
    /// The file being read (kept open: after a rename-rotation it is `NAME.output.1`,
    /// whose rest is read before the new file).
    file: Option<File>,
    offset: u64,
    partial: Vec<u8>,
}

/// Device and inode: which file a path or descriptor is.
fn identity(meta: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino())
}

impl Followed {
    /// Print what was appended since the last look. A rotation by rename (the
    /// supervisor's output keeper): the rest of the old file, then the new one from its
    /// start. A truncation (copy-truncate by another tool): the file from its start.
    fn catch_up(&mut self, out: &mut impl Write) -> std::io::Result<()> {
        let now = std::fs::metadata(&self.path).ok().filter(|m| m.is_file());
        let held = match &self.file {
            Some(f) => Some(identity(&f.metadata()?)),
            None => None,
        };
        match (&now, held) {
            (None, None) => return Ok(()),
            (Some(m), Some(id)) if identity(m) == id => {}
            (Some(_), held) => {
                // A new file at the path: first the rest of the one we hold.
                if held.is_some() {
                    self.read_rest(out)?;
                }
                let Ok(file) = File::open(&self.path) else {
                    return Ok(());
                };
                // (A file that did not exist when the tail was read has offset 0 too.)
                self.file = Some(file);
                self.offset = 0;
            }
            // Renamed away, its successor not there yet: read what the old one has.
            (None, Some(_)) => {}
        }
        self.read_rest(out)
    }

    /// Print the held file from `offset` to its end.
    fn read_rest(&mut self, out: &mut impl Write) -> std::io::Result<()> {
        let Some(file) = &mut self.file else {
            return Ok(());
        };
        let len = file.metadata()?.len();
        if len < self.offset {
            // Truncated in place: what is there now is new.
            self.offset = 0;
            self.partial.clear();
        }
        if len == self.offset {
            return Ok(());
        }
        file.seek(SeekFrom::Start(self.offset))?;
        let mut bytes = Vec::new();
        file.take(len - self.offset).read_to_end(&mut bytes)?;
        self.offset += bytes.len() as u64;
        self.partial.extend_from_slice(&bytes);
        while let Some(end) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            out.write_all(self.prefix.as_bytes())?;
            out.write_all(&line)?;
        }
        out.flush()
    }
}

/// `servicectl logs`: the last `lines` lines of each file, prefixed with the service's
/// name (as `name` shows it: the CLI colours it on a terminal) when there are several;
/// with `follow`, then everything appended, across
/// rotations, until the output is closed. Following waits on inotify (the directory,
/// so that a file created or rotated later is seen), never by polling.
pub fn logs(
    files: &[(String, PathBuf)],
    lines: usize,
    follow: bool,
    name: &dyn Fn(&str) -> String,
    out: &mut impl Write,
) -> std::io::Result<()> {
    let several = files.len() > 1;
    let mut followed = Vec::new();
    for (service, path) in files {
        let prefix = if several {
            format!("{}: ", name(service))
        } else {
            String::new()
        };
        // The file the tail is read from is the one followed (opened once).
        let file = File::open(path).ok();
        let (tail, len) = match &file {
            Some(f) => tail_of(f, lines)?,
            None => (Vec::new(), 0),
        };
        for line in tail {
            writeln!(out, "{prefix}{line}")?;
        }
        followed.push(Followed {
            prefix,
            path: path.clone(),
            file_name: path.file_name().unwrap_or_default().to_owned(),
            file,
            offset: len,
            partial: Vec::new(),
        });
    }
    out.flush()?;
    if !follow {
        return Ok(());
    }
    use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
    let inotify = Inotify::init(InitFlags::IN_CLOEXEC).map_err(std::io::Error::from)?;
    let mut dirs: Vec<PathBuf> = files
        .iter()
        .filter_map(|(_, p)| p.parent().map(Path::to_path_buf))
        .collect();
    dirs.sort();
    dirs.dedup();
    for dir in &dirs {
        inotify
            .add_watch(
                dir,
                AddWatchFlags::IN_MODIFY
                    | AddWatchFlags::IN_CREATE
                    | AddWatchFlags::IN_MOVED_TO
                    | AddWatchFlags::IN_MOVED_FROM,
            )
            .map_err(std::io::Error::from)?;
    }
    // Whatever was written between the tail and the watch.
    for f in &mut followed {
        f.catch_up(out)?;
    }
    loop {
        let events = match inotify.read_events() {
            Ok(events) => events,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        };
        for f in &mut followed {
            let touched = events.iter().any(|e| {
                e.mask.contains(AddWatchFlags::IN_Q_OVERFLOW)
                    || e.name.as_deref() == Some(f.file_name.as_os_str())
            });
            if touched {
                f.catch_up(out)?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_reads_only_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.output");
        let text: String = (0..100_000).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&path, &text).unwrap();
        let (lines, len) = tail_lines(&path, 3).unwrap();
        assert_eq!(lines, ["line 99997", "line 99998", "line 99999"]);
        assert_eq!(len, text.len() as u64);
        std::fs::write(&path, "a\nb").unwrap();
        assert_eq!(tail_lines(&path, 5).unwrap().0, ["a", "b"]);
        assert_eq!(tail_lines(&path, 1).unwrap().0, ["b"]);
    }
}

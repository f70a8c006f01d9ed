//! Service output files: rotation by size in place, and `servicectl logs`
//! (the tail, and following across rotations with inotify). Reading works with or
//! without a supervisor; rotation is the supervisor's.
//!
//! Rotation copies `NAME.output` to `NAME.output.1` (after moving `.1` to `.2` … up to
//! service_log_keep) and then truncates `NAME.output` to 0: the service keeps its
//! descriptor, opened for appending, and writes on at the new end. A line written
//! between the copy and the truncation can be lost (as with logrotate's copytruncate);
//! what grew meanwhile is appended to `.1` first, which keeps that window small.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// `NAME.output.N`
fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// Rotate `path` in place, keeping `keep` older files. Returns the bytes moved out.
pub fn rotate(path: &Path, keep: u32) -> std::io::Result<u64> {
    let mut file = OpenOptions::new().read(true).write(true).open(path)?;
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
    let mut copy = File::create(numbered(path, 1))?;
    let mut copied = std::io::copy(&mut file, &mut copy)?;
    // What the service wrote during the copy goes along before the truncation.
    copied += std::io::copy(&mut file, &mut copy)?;
    file.set_len(0)?;
    copy.flush()?;
    Ok(copied)
}

/// The last `n` lines of a file (the whole file when shorter), reading backwards in
/// blocks so that a large file costs only its tail.
pub fn tail_lines(path: &Path, n: usize) -> std::io::Result<(Vec<String>, u64)> {
    let mut file = File::open(path)?;
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
    offset: u64,
    partial: Vec<u8>,
}

impl Followed {
    /// Print what was appended since the last look (from the start after a rotation).
    fn catch_up(&mut self, out: &mut impl Write) -> std::io::Result<()> {
        let Ok(mut file) = File::open(&self.path) else {
            return Ok(());
        };
        let len = file.metadata()?.len();
        if len < self.offset {
            // Truncated by a rotation: what is there now is new.
            self.offset = 0;
            self.partial.clear();
        }
        if len == self.offset {
            return Ok(());
        }
        file.seek(SeekFrom::Start(self.offset))?;
        let mut bytes = Vec::new();
        (&mut file)
            .take(len - self.offset)
            .read_to_end(&mut bytes)?;
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
        let (tail, len) = match tail_lines(path, lines) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Vec::new(), 0),
            Err(e) => return Err(e),
        };
        for line in tail {
            writeln!(out, "{prefix}{line}")?;
        }
        followed.push(Followed {
            prefix,
            path: path.clone(),
            file_name: path.file_name().unwrap_or_default().to_owned(),
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
                AddWatchFlags::IN_MODIFY | AddWatchFlags::IN_CREATE | AddWatchFlags::IN_MOVED_TO,
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

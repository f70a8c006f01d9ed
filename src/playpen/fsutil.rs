//! Small file-system helpers shared by every module that writes state.

use crate::error::{Error, Result};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Write `contents` to `path` so that readers see either the old file or the whole new
/// one, never a half-written file, and the new one survives a crash: write a temporary
/// file in the same directory, flush it to disk, then rename it over the target. For
/// state that must outlive a reboot (registry, package manifests, upgrade records).
pub fn write_atomic(path: &Path, contents: &[u8], mode: Option<u32>) -> Result<()> {
    replace(path, contents, mode, true)
}

/// Like [`write_atomic`] without the flush to disk: for files that describe running
/// processes or are regenerated at every start (pidfiles, start records, rendered
/// configs, caches). A crash loses the processes too, so durability buys nothing there,
/// and an fsync per service is a large part of starting hundreds of them.
pub fn write_runtime(path: &Path, contents: &[u8], mode: Option<u32>) -> Result<()> {
    replace(path, contents, mode, false)
}

fn replace(path: &Path, contents: &[u8], mode: Option<u32>, durable: bool) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(|e| Error::io("create a temporary file in", dir, e))?;
    tmp.write_all(contents)
        .and_then(|_| {
            if durable {
                tmp.as_file().sync_data()
            } else {
                Ok(())
            }
        })
        .map_err(|e| Error::io("write", tmp.path(), e))?;
    if let Some(mode) = mode {
        // On the open file, not its path: the path could be replaced meanwhile.
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io("set the mode of", tmp.path(), e))?;
    }
    tmp.persist(path)
        .map_err(|e| Error::io("rename into place", path, e.error))?;
    Ok(())
}

/// Create a directory and its parents, with an error that names it.
pub fn ensure_dir(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path).map_err(|e| {
        let err = Error::io("create directory", path, e);
        if err.hint.is_none() && path.exists() {
            err.with_hint(format!(
                "{} exists but is not a directory; move it away",
                path.display()
            ))
        } else {
            err
        }
    })
}

/// Is `path` a regular file we may execute?
pub fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Read a small /proc file with plain read calls: no stat for a size hint, and one read
/// for files under 4 KiB. `status` reads a few of these per service, so the saved system
/// calls add up. Not for files in the playpen: those are read with [`read_state`].
pub fn read_small(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut file = std::fs::File::open(path)?;
    read_bounded(&mut file, 4096, usize::MAX)
}

/// Read to the end with as few calls as possible, starting with a buffer of `first`
/// bytes and never holding more than `most + 1` (so a caller can tell "too long"). A
/// short read is the end: /proc files and our own files (replaced by rename, never
/// grown in place) end there, so no second call is spent to hear so.
fn read_bounded(file: &mut std::fs::File, first: usize, most: usize) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut buf = vec![0u8; first.max(1)];
    let mut len = 0;
    loop {
        if len == buf.len() {
            if len > most {
                break;
            }
            buf.resize(len.saturating_mul(2).min(most.saturating_add(1)), 0);
        }
        let room = buf.len() - len;
        match file.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) if n < room => {
                len += n;
                break;
            }
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(len);
    Ok(buf)
}

/// The most servicectl reads of one of its state files: each holds a PID, a small JSON
/// record or a few lines per service.
pub const STATE_MAX: u64 = 64 * 1024;

/// Whether [`read_state`] may follow a symlink at the last component of the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    /// Files servicectl owns in `var/`: a symlink there is refused, never followed.
    Refuse,
    /// Project files (`etc/role`, `.services` lists) that a project may symlink.
    Follow,
}

/// Read one of servicectl's state files (pidfile, start record, `var/servicectl/state`,
/// caches, upgrade records) or a small project file, safely: Ok(None) when it is
/// missing; else only a regular file of at most [`STATE_MAX`] bytes is read. The file is
/// opened with O_NONBLOCK (a FIFO or device cannot block the open or the read),
/// O_CLOEXEC, and O_NOFOLLOW unless `links` allows a symlink; what it is, is decided by
/// fstat of the opened file. Anything else (a FIFO, device, directory, socket, symlink,
/// or a huge or sparse file) is an error of kind Config that names the file, says what
/// it is, and says to remove it.
pub fn read_state(path: &Path, links: Links) -> Result<Option<Vec<u8>>> {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let mut flags = libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY;
    if links == Links::Refuse {
        flags |= libc::O_NOFOLLOW;
    }
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) && links == Links::Refuse => {
            let target = std::fs::read_link(path)
                .map(|t| format!(" (pointing at {})", t.display()))
                .unwrap_or_default();
            return Err(corrupt(path, links, &format!("a symlink{target}")));
        }
        Err(e) => return Err(Error::io("read", path, e)),
    };
    let meta = file.metadata().map_err(|e| Error::io("inspect", path, e))?;
    let kind = meta.file_type();
    let what = if kind.is_file() {
        None
    } else if kind.is_fifo() {
        Some("a FIFO")
    } else if kind.is_dir() {
        Some("a directory")
    } else if kind.is_char_device() {
        Some("a character device")
    } else if kind.is_block_device() {
        Some("a block device")
    } else if kind.is_socket() {
        Some("a socket")
    } else {
        Some("not a regular file")
    };
    if let Some(what) = what {
        return Err(corrupt(path, links, what));
    }
    if meta.len() > STATE_MAX {
        return Err(corrupt(path, links, &format!("{} bytes long", meta.len())));
    }
    // One read for the whole file as fstat sized it, bounded even if it grows meanwhile.
    let mut file = file;
    let bytes = read_bounded(&mut file, meta.len() as usize + 1, STATE_MAX as usize)
        .map_err(|e| Error::io("read", path, e))?;
    if bytes.len() as u64 > STATE_MAX {
        return Err(corrupt(
            path,
            links,
            &format!("longer than {} KiB", STATE_MAX / 1024),
        ));
    }
    Ok(Some(bytes))
}

/// Open (creating it 0644 when missing) a file servicectl writes in `var/` in place: a
/// lock file, or an output file when `append`. Never through a symlink (O_NOFOLLOW),
/// never blocking on a FIFO or device (O_NONBLOCK while opening, cleared after), never
/// inherited by accident (O_CLOEXEC); anything but a regular file is refused with an
/// error that names the file and says to remove it. `what` names the file in messages
/// ("lock file", "output file").
pub fn open_in_var(path: &Path, append: bool, what: &str) -> Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options
        .create(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY);
    if append {
        options.append(true);
    } else {
        options.write(true).truncate(false);
    }
    let refused = |is: &str| {
        Error::config(format!(
            "{what} {} is {is}; servicectl opens only regular files there and never follows a symlink out of var/",
            path.display()
        ))
        .with_hint(format!(
            "remove it (rm {}); servicectl creates it again",
            path.display()
        ))
    };
    let file = match options.open(path) {
        Ok(file) => file,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            let target = std::fs::read_link(path)
                .map(|t| format!(" pointing at {}", t.display()))
                .unwrap_or_default();
            return Err(refused(&format!("a symlink{target}")));
        }
        // A FIFO without a reader, opened for writing without blocking.
        Err(e) if e.raw_os_error() == Some(libc::ENXIO) => return Err(refused("a FIFO")),
        Err(e) => return Err(Error::io(&format!("open {what}"), path, e)),
    };
    let meta = file.metadata().map_err(|e| Error::io("inspect", path, e))?;
    if !meta.is_file() {
        return Err(refused("not a regular file"));
    }
    // Back to blocking writes: the descriptor is shared with the programs it is given to.
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    if let Ok(flags) = fcntl(&file, FcntlArg::F_GETFL) {
        let flags = OFlag::from_bits_truncate(flags) - OFlag::O_NONBLOCK;
        fcntl(&file, FcntlArg::F_SETFL(flags))
            .map_err(|e| Error::io("set blocking writes on", path, std::io::Error::from(e)))?;
    }
    Ok(file)
}

/// A state file that is not what servicectl writes there.
fn corrupt(path: &Path, links: Links, what: &str) -> Error {
    let err = Error::config(format!(
        "{} is corrupt: it is {what}; servicectl reads only regular files of at most {} KiB there",
        path.display(),
        STATE_MAX / 1024
    ));
    err.with_hint(match links {
        Links::Refuse => format!(
            "remove it (rm {}); servicectl writes it again when it needs it",
            path.display()
        ),
        Links::Follow => format!("make {} a small regular file", path.display()),
    })
}

/// Text read from a file or a program, for a message: at most `most` characters, with
/// the full length said when cut, and control characters escaped.
pub fn excerpt(text: &str, most: usize) -> String {
    let count = text.chars().count();
    if count <= most {
        return format!("{text:?}");
    }
    let head: String = text.chars().take(most).collect();
    format!("{head:?}… ({count} characters)")
}

/// Read a small project file whose absence is normal (`etc/role`, `etc/cluster`, an
/// upgrade record): Ok(None) when missing. Read as [`read_state`] does, following a
/// symlink: a FIFO, device or huge file is refused instead of read.
pub fn read_optional(path: &Path) -> Result<Option<String>> {
    Ok(read_state(path, Links::Follow)?.map(|bytes| String::from_utf8_lossy(&bytes).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_state_reads_only_small_regular_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("web.pid");
        assert_eq!(read_state(&file, Links::Refuse).unwrap(), None);
        std::fs::write(&file, "42\n").unwrap();
        assert_eq!(read_state(&file, Links::Refuse).unwrap().unwrap(), b"42\n");
        std::fs::write(&file, vec![b'7'; STATE_MAX as usize]).unwrap();
        assert_eq!(
            read_state(&file, Links::Refuse).unwrap().unwrap().len(),
            STATE_MAX as usize
        );

        let big = dir.path().join("big");
        std::fs::File::create(&big)
            .unwrap()
            .set_len(STATE_MAX + 1)
            .unwrap();
        let err = read_state(&big, Links::Refuse).unwrap_err();
        assert!(err.message.contains("65537 bytes long"), "{err}");

        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        for links in [Links::Refuse, Links::Follow] {
            let err = read_state(&fifo, links).unwrap_err();
            assert!(err.message.contains("a FIFO"), "{err}");
        }

        let zero = dir.path().join("zero");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        let err = read_state(&zero, Links::Refuse).unwrap_err();
        assert!(
            err.message.contains("a symlink (pointing at /dev/zero)"),
            "{err}"
        );
        assert!(err.hint.unwrap().contains("rm "));
        let err = read_state(&zero, Links::Follow).unwrap_err();
        assert!(err.message.contains("a character device"), "{err}");

        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert!(read_state(&link, Links::Refuse).is_err());
        assert!(read_state(&link, Links::Follow).unwrap().is_some());
        assert!(read_state(dir.path(), Links::Follow).is_err());
    }

    #[test]
    fn files_in_var_are_opened_only_as_regular_files() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        let link = dir.path().join("web.output");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let err = open_in_var(&link, true, "output file").unwrap_err();
        assert!(err.message.contains("is a symlink"), "{err}");
        assert!(!target.exists());
        let fifo = dir.path().join("web.lock");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        let err = open_in_var(&fifo, false, "lock file").unwrap_err();
        assert!(err.message.contains("a FIFO"), "{err}");
        let plain = dir.path().join("web.new");
        let file = open_in_var(&plain, true, "output file").unwrap();
        let flags = nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_GETFL).unwrap();
        assert_eq!(flags & libc::O_NONBLOCK, 0, "writes block as usual");
        assert_eq!(excerpt("abc", 5), "\"abc\"");
        assert!(excerpt(&"x".repeat(100), 5).contains("(100 characters)"));
    }
}

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
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(mode))
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

/// Read a small file with plain read calls: no stat for a size hint, and one read for
/// files under 4 KiB (pidfiles, start records, /proc entries). `status` reads a few of
/// these per service, so the saved system calls add up.
pub fn read_small(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 4096];
    let mut len = 0;
    loop {
        if len == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        let room = buf.len() - len;
        match file.read(&mut buf[len..]) {
            Ok(0) => break,
            // A short read of a regular or /proc file is its end: no second call
            // to hear so (our files are replaced by rename, never grown in place).
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

/// Read a file whose absence is normal: Ok(None) when missing.
pub fn read_optional(path: &Path) -> Result<Option<String>> {
    match read_small(path) {
        Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read", path, e)),
    }
}

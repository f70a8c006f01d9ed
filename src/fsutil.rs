//! Small file-system helpers shared by every module that writes state.

use crate::error::{Error, Result};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Write `contents` to `path` so that readers see either the old file or the whole new
/// one, never a half-written file: write a temporary file in the same directory, flush it
/// to disk, then rename it over the target.
pub fn write_atomic(path: &Path, contents: &[u8], mode: Option<u32>) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(|e| Error::io("create a temporary file in", dir, e))?;
    tmp.write_all(contents)
        .and_then(|_| tmp.as_file().sync_data())
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

/// Read a file whose absence is normal: Ok(None) when missing.
pub fn read_optional(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read", path, e)),
    }
}

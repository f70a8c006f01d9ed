//! `servicectl edit NAME`: change a service's config fragment with a check (§13.3; seed
//! 000's `edit config`).
//!
//! The file edited is the project's plain fragment: the first existing of
//! `services/NAME-VERSION/config` and `services/NAME/config`, else `services/NAME/config`
//! made from a copy of the package's fragment (the project's file replaces the
//! package's, §4, so it must start complete). The editor (`$VISUAL`, else `$EDITOR`,
//! else `vi`) works on a temporary copy in `var/servicectl/edit/`. When it exits 0 and
//! the text changed, the candidate is written to the kept copy
//! `var/servicectl/edit/NAME.config` and the service is checked as `check NAME` does,
//! with the candidate sourced in place of the project's file (the config shell's stand-in):
//! the project's file is not touched before the check passes, so a bad edit, or a
//! servicectl killed midway, never changes it. Passed: the candidate is installed
//! atomically and the kept copy removed. Failed: the problems are reported and the kept
//! copy stays, for `--recover` (reopen it) or `--discard` (drop it); a plain `edit` of
//! a service with a kept copy refuses, so an edit is never lost by accident.
//!
//! One edit of a service at a time (`var/servicectl/edit/NAME.lock`, not waited for).
//! If the project's file changed while the editor was open (a `git pull`), nothing is
//! installed: the edit is kept, to be recovered onto the new file.

use crate::config::session::Session;
use crate::error::{Error, ErrorKind, Result};
use crate::playpen::catalog::{self, ServiceId};
use crate::playpen::{Playpen, fsutil};
use serde::Serialize;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// What an edit came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EditResult {
    /// The check passed and the file was written.
    Installed,
    /// The editor left the text as it was: nothing to check or write.
    Unchanged,
    /// The check failed: the old file stays, the edit is kept.
    Rejected,
    /// The project's file changed while the editor was open: the edit is kept.
    Conflict,
    /// The editor exited non-zero (or was killed): nothing changed.
    EditorFailed,
    /// `--discard`: the kept copy was removed.
    Discarded,
    /// `--discard` with no kept copy.
    NothingToDiscard,
}

impl EditResult {
    /// Whether the command did what was asked (exit 0).
    pub fn is_success(self) -> bool {
        !matches!(
            self,
            EditResult::Rejected | EditResult::Conflict | EditResult::EditorFailed
        )
    }
}

/// The report of `edit`, for `cli` to show.
#[derive(Debug, Clone, Serialize)]
pub struct Edited {
    pub service: String,
    /// The project's fragment that is (or would be) written.
    pub file: PathBuf,
    pub result: EditResult,
    /// The check's problems (Rejected).
    pub problems: Vec<String>,
    /// The check's warnings.
    pub warnings: Vec<String>,
    /// The kept copy, when one is left (Rejected, Conflict, an EditorFailed recover).
    pub kept: Option<PathBuf>,
    /// Installed: the file did not exist before (made from the package's fragment).
    pub created: bool,
    /// EditorFailed: what the editor did (`exit status 1`, `killed by signal 9`).
    pub editor: Option<String>,
}

/// Where a service's edits live.
fn edit_dir(playpen: &Playpen) -> PathBuf {
    playpen.state_dir().join("edit")
}

/// The kept copy of a service's edit that did not pass its check.
pub fn kept_copy(playpen: &Playpen, name: &str) -> PathBuf {
    edit_dir(playpen).join(format!("{name}.config"))
}

/// The project's plain fragment of the service (see the module documentation).
pub fn project_fragment(playpen: &Playpen, id: &ServiceId) -> PathBuf {
    let dirs = catalog::project_dirs(playpen, id);
    dirs.iter()
        .map(|d| d.join("config"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| playpen.root.join("services").join(&id.name).join("config"))
}

/// Hold the service's edit lock, or say who holds it.
fn lock(playpen: &Playpen, name: &str) -> Result<std::fs::File> {
    let dir = edit_dir(playpen);
    fsutil::ensure_dir(&dir)?;
    let path = dir.join(format!("{name}.lock"));
    let file = fsutil::open_in_var(&path, false, "lock file")?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::runtime(format!(
            "another `servicectl edit {name}` is in progress ({} is locked)",
            path.display()
        ))
        .with_service(name)
        .with_hint("finish that edit first")),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::io("lock", &path, e)),
    }
}

fn read(path: &Path) -> Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read", path, e)),
    }
}

/// `edit NAME --discard`: drop the kept copy (safe to repeat).
pub fn discard(session: &mut Session, name: &str) -> Result<Edited> {
    let id = session.id(name)?;
    let playpen = session.playpen.clone();
    let _lock = lock(&playpen, name)?;
    let kept = kept_copy(&playpen, name);
    let result = match std::fs::remove_file(&kept) {
        Ok(()) => EditResult::Discarded,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => EditResult::NothingToDiscard,
        Err(e) => return Err(Error::io("remove", &kept, e)),
    };
    Ok(report(&playpen, &id, result))
}

fn report(playpen: &Playpen, id: &ServiceId, result: EditResult) -> Edited {
    Edited {
        service: id.name.clone(),
        file: project_fragment(playpen, id),
        result,
        problems: Vec::new(),
        warnings: Vec::new(),
        kept: None,
        created: false,
        editor: None,
    }
}

/// The editor the user chose: `$VISUAL`, else `$EDITOR`, else `vi`.
pub fn editor_command() -> String {
    ["VISUAL", "EDITOR"]
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .find(|v| !v.trim().is_empty())
        .unwrap_or_else(|| "vi".to_string())
}

/// Run the editor on `file` with the terminal: as git does, through `sh -c` so that
/// `EDITOR="code --wait"` works. None when it exited 0, else what happened.
pub fn run_editor(file: &Path) -> Result<Option<String>> {
    let editor = editor_command();
    let status = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("{editor} \"$@\""))
        .arg(&editor)
        .arg(file)
        .status()
        .map_err(|e| Error::io("run the editor", Path::new("/bin/sh"), e))?;
    if status.success() {
        return Ok(None);
    }
    use std::os::unix::process::ExitStatusExt;
    Ok(Some(match (status.code(), status.signal()) {
        (Some(code), _) => format!("`{editor}` exited with status {code}"),
        (None, Some(sig)) => format!("`{editor}` was killed by signal {sig}"),
        _ => format!("`{editor}` failed"),
    }))
}

/// `edit NAME` (`recover`: reopen the kept copy): run `editor` on a temporary copy, then
/// check and install as the module documentation says.
pub fn edit(
    session: &mut Session,
    name: &str,
    recover: bool,
    editor: &dyn Fn(&Path) -> Result<Option<String>>,
) -> Result<Edited> {
    let id = session.id(name)?;
    let playpen = session.playpen.clone();
    let _lock = lock(&playpen, name)?;
    let kept = kept_copy(&playpen, name);
    let file = project_fragment(&playpen, &id);
    let kept_text = read(&kept)?;
    match (&kept_text, recover) {
        (Some(_), false) => {
            return Err(Error::new(
                ErrorKind::Config,
                format!(
                    "an edit of {} that did not pass its check is kept in {}",
                    file.display(),
                    kept.display()
                ),
            )
            .with_service(name)
            .with_hint(format!(
                "reopen it with `servicectl edit {name} --recover`, or drop it with `servicectl edit {name} --discard`"
            )));
        }
        (None, true) => {
            return Err(Error::new(
                ErrorKind::Config,
                format!(
                    "there is no kept edit to recover ({} does not exist)",
                    kept.display()
                ),
            )
            .with_service(name)
            .with_hint(format!("`servicectl edit {name}` edits {}", file.display())));
        }
        _ => {}
    }
    let original = read(&file)?;
    let package = catalog::ext_dir(&playpen, &id).map(|d| d.join("config"));
    let start = match (&kept_text, &original) {
        (Some(k), _) => k.clone(),
        (None, Some(o)) => o.clone(),
        (None, None) => match &package {
            Some(p) => read(p)?.unwrap_or_default(),
            None => Vec::new(),
        },
    };
    let mode = std::fs::metadata(&file)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(0o644);

    // The editor's copy: in the same directory as the kept copy, so keeping it is a rename.
    let dir = edit_dir(&playpen);
    let mut work = tempfile::Builder::new()
        .prefix(&format!("{name}."))
        .suffix(".config")
        .tempfile_in(&dir)
        .map_err(|e| Error::io("create a temporary file in", &dir, e))?;
    {
        use std::io::Write;
        work.write_all(&start)
            .and_then(|_| work.flush())
            .map_err(|e| Error::io("write", work.path(), e))?;
    }
    if let Some(what) = editor(work.path())? {
        let mut r = report(&playpen, &id, EditResult::EditorFailed);
        r.file = file;
        r.editor = Some(what);
        r.kept = kept_text.map(|_| kept);
        return Ok(r);
    }
    let candidate = read(work.path())?.unwrap_or_default();
    let mut r = report(&playpen, &id, EditResult::Unchanged);
    r.file = file.clone();
    // Unchanged: the file as it is (a recover that came back to it drops the copy), or
    // the package's text that was offered when there is no project file yet.
    let same = match (&original, recover) {
        (Some(o), _) => *o == candidate,
        (None, false) => candidate == start,
        (None, true) => false,
    };
    if same {
        if recover {
            let _ = std::fs::remove_file(&kept);
        }
        return Ok(r);
    }

    // Keep the candidate before anything else: from here on a kill leaves the edit kept
    // and the project's file as it was.
    fsutil::write_atomic(&kept, &candidate, Some(mode))?;
    drop(work);
    let mut check = Session::open(playpen.clone())?;
    check.shell()?.stand_in(file.clone(), kept.clone());
    let findings = super::check(&mut check, &[name.to_string()], false);
    drop(check);
    match findings {
        Ok(findings) => {
            if let Some(f) = findings.into_iter().find(|f| f.service == name) {
                r.problems = f.problems;
                r.warnings = f.warnings;
            }
        }
        Err(e) => r.problems.push(e.detail()),
    }
    if !r.problems.is_empty() {
        r.result = EditResult::Rejected;
        r.kept = Some(kept);
        return Ok(r);
    }
    if read(&file)? != original {
        r.result = EditResult::Conflict;
        r.kept = Some(kept);
        return Ok(r);
    }
    // Through a symlink the project keeps: write where it points.
    let target = match std::fs::symlink_metadata(&file) {
        Ok(m) if m.file_type().is_symlink() => {
            std::fs::canonicalize(&file).map_err(|e| Error::io("resolve", &file, e))?
        }
        _ => file.clone(),
    };
    if let Some(parent) = target.parent() {
        fsutil::ensure_dir(parent)?;
    }
    fsutil::write_atomic(&target, &candidate, Some(mode))?;
    let _ = std::fs::remove_file(&kept);
    r.result = EditResult::Installed;
    r.created = original.is_none();
    Ok(r)
}

//! The linkfarm: `var/linkfarm/$RUN_NAME[-$PLAYPEN_TAG]` → program, so that `ps`, `top`
//! and `killall` show each playpen's processes under their own name.

use crate::error::{Error, Result};
use crate::playpen::{Playpen, names};
use std::path::{Path, PathBuf};

/// The symlink's file name: the run name, tagged with PLAYPEN_TAG when set. Both follow
/// the one name rule (settings check service_run_name and PLAYPEN_TAG, so that `check`
/// reports them); [`ensure_link`] refuses a name that does not, before joining it.
pub fn link_name(run_name: &str, tag: Option<&str>) -> String {
    match tag.filter(|t| !t.is_empty()) {
        Some(tag) => format!("{run_name}-{tag}"),
        None => run_name.to_string(),
    }
}

/// Make `var/linkfarm/NAME` point at `target`, atomically. An existing symlink to the
/// same target is kept; one pointing elsewhere is replaced (the rename replaces the link
/// itself and never writes through it) unless `in_use_by` names another running service
/// that owns it (asked only then, as it reads every start record). Anything that is not
/// a symlink is never clobbered.
pub fn ensure_link(
    playpen: &Playpen,
    name: &str,
    target: &Path,
    in_use_by: impl FnOnce() -> Option<String>,
) -> Result<PathBuf> {
    if let Some(why) = names::link_problem(name) {
        return Err(Error::config(format!(
            "the linkfarm name {} (the run name, then '-' and PLAYPEN_TAG when it is set) is not a file name: {why}",
            names::shown(name)
        ))
        .with_hint(format!(
            "fix service_run_name or PLAYPEN_TAG: {}",
            names::RULE
        )));
    }
    let link = playpen.linkfarm().join(name);
    match std::fs::symlink_metadata(&link) {
        Ok(meta) if meta.file_type().is_symlink() => {
            let current = std::fs::read_link(&link).map_err(|e| Error::io("read", &link, e))?;
            if current == target {
                return Ok(link);
            }
            if let Some(other) = in_use_by() {
                return Err(Error::config(format!(
                    "{} points at {} for running service {other}; two services share the run name {name:?}",
                    link.display(),
                    current.display()
                ))
                .with_hint("give one of them its own service_run_name"));
            }
        }
        Ok(_) => {
            return Err(Error::config(format!(
                "{} exists and is not a symlink; servicectl will not overwrite it",
                link.display()
            ))
            .with_hint("move that file out of var/linkfarm/"));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("inspect", &link, e)),
    }
    // Unique per call: two threads of one servicectl may link the same name at once.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let serial = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = playpen
        .linkfarm()
        .join(format!(".{name}.{}.{serial}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp).map_err(|e| Error::io("create symlink", &tmp, e))?;
    std::fs::rename(&tmp, &link).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io("rename symlink into place", &link, e)
    })?;
    Ok(link)
}

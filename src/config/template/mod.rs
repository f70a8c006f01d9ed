//! sub-conf: render a service's config templates into `$LOCAL_VAR`.
//!
//! Each entry `path/file` of service_config_files names a template, found as the first
//! existing of `$PLAYPEN_ROOT/path/file.local`, `$PLAYPEN_ROOT/path/file` and
//! `$PLAYPEN_ROOT/ext/path/file`, and rendered to `$LOCAL_VAR/path/file` with the
//! template's mode, atomically.
//!
//! Templates are bytes, not text: binary data, CRLF line endings and arbitrarily long
//! lines pass through untouched; only placeholders change, each into its value's exact
//! bytes (UTF-8 or not). Placeholder rules:
//! - Default style: `__NAME__`, NAME = `[A-Za-z_][A-Za-z0-9_]*`. NAME ends at the first
//!   `__` after it, so adjacent placeholders (`__A____B__`) work, and a variable whose
//!   name contains `__` (or ends in `_`) cannot be used. A run of underscores alone
//!   (`________`, a common separator line) is not a placeholder: NAME must contain a
//!   letter or digit.
//! - `service_config_style=envsubst`: `${NAME}`. `$NAME` without braces and `${` not
//!   followed by a name and `}` are left alone.
//! - A NAME may start with `_`, but `db___NAME__` is read as `db_` + `__NAME__` when the
//!   variable `_NAME` is unset and `NAME` is set (leading underscores are tried as literal
//!   text one at a time, and an unset placeholder is reported under the bare name).
//! - Every placeholder is a reference: one whose variable is unset is an error, even if it
//!   looks like ordinary text (`__init__`). Set-but-empty variables render as empty. All
//!   unset placeholders of a template are reported at once, each with its line, and
//!   nothing is written.
//!
//! The envsubst style is implemented here rather than with the `envsubst` crate: that
//! crate works on UTF-8 strings only and refuses any value containing `$`, `{` or `}`,
//! while values must round-trip exactly and templates may be binary.

use crate::config::Env;
use crate::error::{Error, Result};
use crate::playpen::Playpen;
use crate::playpen::fsutil;
use regex::bytes::Regex;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

/// How placeholders are written in a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Style {
    /// `__NAME__`.
    #[default]
    Underscores,
    /// `${NAME}`.
    Envsubst,
}

impl Style {
    fn regex(self) -> &'static Regex {
        static UNDERSCORES: OnceLock<Regex> = OnceLock::new();
        static ENVSUBST: OnceLock<Regex> = OnceLock::new();
        match self {
            Style::Underscores => UNDERSCORES.get_or_init(|| {
                Regex::new(r"__((?:[A-Za-z]|_+[A-Za-z0-9])[A-Za-z0-9_]*?)__").expect("valid regex")
            }),
            Style::Envsubst => ENVSUBST.get_or_init(|| {
                Regex::new(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}").expect("valid regex")
            }),
        }
    }

    /// The name inside a whole placeholder match.
    fn name_of(self, placeholder: &[u8]) -> &[u8] {
        match self {
            Style::Underscores => &placeholder[2..placeholder.len() - 2],
            Style::Envsubst => &placeholder[2..placeholder.len() - 1],
        }
    }

    fn placeholder(self, name: &str) -> String {
        match self {
            Style::Underscores => format!("__{name}__"),
            Style::Envsubst => format!("${{{name}}}"),
        }
    }
}

/// Check a service_config_files entry and drop `.` components: it must be a relative path
/// that stays inside the playpen.
fn checked_relative(rel: &str) -> Result<PathBuf> {
    let path = Path::new(rel);
    if path.is_absolute() {
        return Err(
            Error::config(format!("template {rel:?} is an absolute path"))
                .with_hint("list templates relative to the playpen root, e.g. etc/app.conf"),
        );
    }
    let mut clean = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => clean.push(part),
            Component::CurDir => {}
            _ => {
                return Err(Error::config(format!(
                    "template {rel:?} leaves the playpen (it contains `..`)"
                ))
                .with_hint("templates and their output must stay inside the playpen"));
            }
        }
    }
    if clean.as_os_str().is_empty() {
        return Err(
            Error::config(format!("template {rel:?} is not a file name"))
                .with_hint("list templates relative to the playpen root, e.g. etc/app.conf"),
        );
    }
    Ok(clean)
}

/// Where a template may be, in order of precedence.
fn candidates(playpen: &Playpen, rel: &Path) -> [PathBuf; 3] {
    let mut local = playpen.root.join(rel).into_os_string();
    local.push(".local");
    [
        PathBuf::from(local),
        playpen.root.join(rel),
        playpen.ext().join(rel),
    ]
}

/// The template for `rel`: the first of `rel.local`, `rel` and `ext/rel` that exists.
pub fn find_template(playpen: &Playpen, rel: &str) -> Result<PathBuf> {
    let clean = checked_relative(rel)?;
    let candidates = candidates(playpen, &clean);
    // A dangling symlink or a directory counts as existing, so a broken override is
    // reported rather than silently skipped in favour of the next candidate.
    match candidates
        .iter()
        .find(|c| std::fs::symlink_metadata(c).is_ok())
    {
        Some(found) if found.is_dir() => {
            Err(
                Error::config(format!("template {} is a directory", found.display())).with_hint(
                    format!("service_config_files lists files; check the entry {rel:?}"),
                ),
            )
        }
        // Opening a FIFO would block until a writer comes: refuse anything but a file.
        Some(found) if std::fs::metadata(found).is_ok_and(|m| !m.is_file()) => {
            Err(Error::config(format!(
                "template {} is not a regular file (a FIFO, socket or device)",
                found.display()
            ))
            .with_hint(format!("make {} a regular file", found.display())))
        }
        Some(found) => Ok(found.clone()),
        None => {
            let [local, project, ext] = &candidates;
            Err(Error::config(format!(
                "no template for {rel}: none of {}, {}, {} exists",
                local.display(),
                project.display(),
                ext.display()
            ))
            .with_hint(format!(
                "write the template at {} (or {} for a local override), reinstall the package that provides {}, or remove {rel:?} from service_config_files",
                project.display(),
                local.display(),
                ext.display(),
            )))
        }
    }
}

/// Where the rendered `rel` goes: `$LOCAL_VAR/rel`.
pub fn target_path(playpen: &Playpen, rel: &str) -> Result<PathBuf> {
    Ok(playpen.var().join(checked_relative(rel)?))
}

/// Replace every placeholder of `template` with its value from `vars`. `file` names the
/// template in errors. Fails, listing every unset placeholder with its line, when any
/// variable is unset.
pub fn render_bytes(template: &[u8], vars: &Env, style: Style, file: &Path) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(template.len());
    let mut copied = 0;
    let mut unset: Vec<(usize, &str)> = Vec::new();
    for found in style.regex().find_iter(template) {
        let name = std::str::from_utf8(style.name_of(found.as_bytes()))
            .expect("the pattern only matches ASCII names");
        // `db___NAME__` is more likely `db_` + `__NAME__` than a variable `_NAME`: when the
        // name with leading underscores is unset, the underscores may be literal text.
        let bare = match style {
            Style::Underscores => {
                let underscores = name.bytes().take_while(|&b| b == b'_').count();
                // `_1` is a name, `1` is not.
                if name.as_bytes()[underscores].is_ascii_digit() {
                    underscores.saturating_sub(1)
                } else {
                    underscores
                }
            }
            Style::Envsubst => 0,
        };
        match (0..=bare).find_map(|literal| Some((literal, vars.get(&name[literal..])?))) {
            Some((literal, value)) => {
                out.extend_from_slice(&template[copied..found.start()]);
                out.extend(std::iter::repeat_n(b'_', literal));
                out.extend_from_slice(value.as_bytes());
                copied = found.end();
            }
            None => unset.push((found.start(), &name[bare..])),
        }
    }
    if !unset.is_empty() {
        return Err(unset_error(template, &unset, style, file));
    }
    out.extend_from_slice(&template[copied..]);
    Ok(out)
}

/// The unset placeholders, grouped by variable in order of first use, with their lines.
fn unset_error(template: &[u8], unset: &[(usize, &str)], style: Style, file: &Path) -> Error {
    const MAX_LINES: usize = 5;
    const MAX_VARS: usize = 20;
    let mut by_name: Vec<(&str, Vec<usize>)> = Vec::new();
    let (mut line, mut counted) = (1, 0);
    for &(offset, name) in unset {
        // Offsets increase, so lines are counted in one pass over the template.
        line += template[counted..offset]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        counted = offset;
        match by_name.iter_mut().find(|(n, _)| *n == name) {
            Some((_, lines)) => {
                if lines.last() != Some(&line) {
                    lines.push(line);
                }
            }
            None => by_name.push((name, vec![line])),
        }
    }
    let describe = |(name, lines): &(&str, Vec<usize>)| {
        let mut shown: Vec<String> = lines.iter().take(MAX_LINES).map(usize::to_string).collect();
        if lines.len() > MAX_LINES {
            shown.push("…".to_string());
        }
        let word = if lines.len() == 1 { "line" } else { "lines" };
        format!("{} ({word} {})", style.placeholder(name), shown.join(", "))
    };
    let mut listed: Vec<String> = by_name.iter().take(MAX_VARS).map(describe).collect();
    if by_name.len() > MAX_VARS {
        listed.push(format!("and {} more", by_name.len() - MAX_VARS));
    }
    let names: Vec<&str> = by_name.iter().map(|(n, _)| *n).collect();
    let (subject, pronoun) = match names.as_slice() {
        [one] => (format!("variable {one} is"), "it"),
        many => (format!("variables {} are", many.join(", ")), "them"),
    };
    Error::config(format!(
        "cannot render {}: {subject} not set: {}",
        file.display(),
        listed.join(", ")
    ))
    .with_hint(format!(
        "set {pronoun} in the role config, or export {pronoun} from the service's config (templates see the service's environment)"
    ))
}

/// A template rendered in memory, ready to be written.
struct Rendered {
    target: PathBuf,
    contents: Vec<u8>,
    mode: u32,
}

fn prepare(playpen: &Playpen, rel: &str, vars: &Env, style: Style) -> Result<Rendered> {
    let template = find_template(playpen, rel)?;
    let mut file =
        std::fs::File::open(&template).map_err(|e| Error::io("read the template", &template, e))?;
    // Mode and contents from the same open file, so a concurrent replace cannot mix them.
    let mode = file
        .metadata()
        .map_err(|e| Error::io("read the template", &template, e))?
        .permissions()
        .mode()
        & 0o7777;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|e| Error::io("read the template", &template, e))?;
    Ok(Rendered {
        target: target_path(playpen, rel)?,
        contents: render_bytes(&bytes, vars, style, &template)?,
        mode,
    })
}

impl Rendered {
    fn write(self) -> Result<PathBuf> {
        let parent = self.target.parent().expect("under LOCAL_VAR");
        // create_dir_all's error does not say which ancestor is in the way; find it.
        for dir in parent.ancestors() {
            match std::fs::metadata(dir) {
                Ok(m) if m.is_dir() => break,
                Ok(_) => return Err(not_a_directory(&self.target, dir, "is not a directory")),
                Err(_) if std::fs::symlink_metadata(dir).is_ok() => {
                    return Err(not_a_directory(
                        &self.target,
                        dir,
                        "is a broken symbolic link",
                    ));
                }
                Err(_) => {}
            }
        }
        fsutil::ensure_dir(parent)?;
        if self.target.is_dir() {
            return Err(Error::config(format!(
                "cannot write {}: it is a directory",
                self.target.display()
            ))
            .with_hint(format!(
                "move {} away; sub-conf writes the rendered file there",
                self.target.display()
            )));
        }
        fsutil::write_runtime(&self.target, &self.contents, Some(self.mode))?;
        Ok(self.target)
    }
}

fn not_a_directory(target: &Path, dir: &Path, what: &str) -> Error {
    Error::config(format!(
        "cannot write {}: {} {what}",
        target.display(),
        dir.display()
    ))
    .with_hint(format!(
        "move {} away so sub-conf can create the directory",
        dir.display()
    ))
}

/// Render the template for `rel` into `$LOCAL_VAR/rel`; returns the file written.
/// Nothing is written when the template cannot be found, read or rendered.
pub fn render(playpen: &Playpen, rel: &str, vars: &Env, style: Style) -> Result<PathBuf> {
    prepare(playpen, rel, vars, style)?.write()
}

/// Render several templates: all are rendered in memory first, so when any fails none is
/// written, and every template's failure is reported in one error.
pub fn render_all<S: AsRef<str>>(
    playpen: &Playpen,
    rels: &[S],
    vars: &Env,
    style: Style,
) -> Result<Vec<PathBuf>> {
    prepare_all(playpen, rels, vars, style)?
        .into_iter()
        .map(Rendered::write)
        .collect()
}

/// Render like [`render_all`], keeping what the targets held before: a reload that
/// fails after rendering puts them back (by dropping the [`Previous`] without calling
/// [`Previous::keep`]), so the files on disk stay the ones the running process was
/// started or last reloaded with.
pub fn render_all_keeping_previous<S: AsRef<str>>(
    playpen: &Playpen,
    rels: &[S],
    vars: &Env,
    style: Style,
) -> Result<(Vec<PathBuf>, Previous)> {
    let rendered = prepare_all(playpen, rels, vars, style)?;
    let mut previous = Previous {
        files: Vec::new(),
        kept: false,
    };
    for r in &rendered {
        let before = read_rendered(&r.target);
        previous.files.push((r.target.clone(), before));
    }
    let written = rendered
        .into_iter()
        .map(Rendered::write)
        .collect::<Result<Vec<_>>>()?;
    Ok((written, previous))
}

/// A file's contents and mode, as saved before it was rendered anew.
type Saved = (Vec<u8>, u32);

/// What a rendered file holds now, if it is a regular file (opened without following a
/// symlink or blocking on a FIFO: anything else is not ours to keep).
fn read_rendered(path: &Path) -> Option<Saved> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file() {
        return None;
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).ok()?;
    Some((bytes, meta.permissions().mode() & 0o7777))
}

/// Rendered files as they were before a render; restored on drop unless kept.
#[must_use = "dropping it restores the previous files"]
pub struct Previous {
    files: Vec<(PathBuf, Option<Saved>)>,
    kept: bool,
}

impl Previous {
    /// The new files are in use: forget the old ones.
    pub fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for Previous {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        for (path, before) in &self.files {
            // Best effort: the reload's own error is what the user must see.
            let _ = match before {
                Some((bytes, mode)) => fsutil::write_runtime(path, bytes, Some(*mode)).map(drop),
                None => std::fs::remove_file(path).map_err(|e| Error::io("remove", path, e)),
            };
        }
    }
}

/// What [`render_all`] would report, without writing anything: missing or unreadable
/// templates, bad paths and unset placeholders.
pub fn check_all<S: AsRef<str>>(
    playpen: &Playpen,
    rels: &[S],
    vars: &Env,
    style: Style,
) -> Result<()> {
    prepare_all(playpen, rels, vars, style).map(drop)
}

fn prepare_all<S: AsRef<str>>(
    playpen: &Playpen,
    rels: &[S],
    vars: &Env,
    style: Style,
) -> Result<Vec<Rendered>> {
    let mut rendered = Vec::new();
    let mut errors = Vec::new();
    for rel in rels {
        match prepare(playpen, rel.as_ref(), vars, style) {
            Ok(r) => rendered.push(r),
            Err(e) => errors.push(e),
        }
    }
    if errors.len() <= 1 {
        return match errors.pop() {
            Some(e) => Err(e),
            None => Ok(rendered),
        };
    }
    let mut message = format!("{} templates cannot be rendered:", errors.len());
    for e in &errors {
        message.push_str("\n  ");
        message.push_str(&e.message);
    }
    let mut combined = Error::config(message);
    if let Some(hint) = errors.into_iter().find_map(|e| e.hint) {
        combined = combined.with_hint(hint);
    }
    Err(combined)
}

#[cfg(test)]
mod tests;

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
mod tests {
    use super::*;
    use std::fs;

    fn playpen() -> (tempfile::TempDir, Playpen) {
        let dir = tempfile::tempdir().expect("temp dir");
        let playpen = Playpen {
            root: dir.path().to_path_buf(),
        };
        (dir, playpen)
    }

    fn write(path: &Path, contents: &[u8], mode: u32) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, contents).unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    fn vars(pairs: &[(&str, &str)]) -> Env {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.into()))
            .collect()
    }

    fn render_str(template: &str, pairs: &[(&str, &str)], style: Style) -> Result<String> {
        render_bytes(
            template.as_bytes(),
            &vars(pairs),
            style,
            Path::new("t.conf"),
        )
        .map(|b| String::from_utf8(b).unwrap())
    }

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn renders_into_local_var_with_the_template_mode() {
        let (_dir, pp) = playpen();
        write(
            &pp.ext().join("etc/httpd/httpd.conf"),
            b"Listen __WEB_PORT__\nServerName __HOST__:__WEB_PORT__\n",
            0o640,
        );
        write(
            &pp.ext().join("bin/run.sh"),
            b"#!/bin/sh\nexec __PROG__\n",
            0o755,
        );
        let v = vars(&[
            ("WEB_PORT", "8080"),
            ("HOST", "example.org"),
            ("PROG", "/bin/true"),
        ]);
        let out = render(&pp, "etc/httpd/httpd.conf", &v, Style::Underscores).unwrap();
        assert_eq!(out, pp.var().join("etc/httpd/httpd.conf"));
        assert_eq!(
            fs::read_to_string(&out).unwrap(),
            "Listen 8080\nServerName example.org:8080\n"
        );
        assert_eq!(mode_of(&out), 0o640);
        let script = render(&pp, "./bin/run.sh", &v, Style::Underscores).unwrap();
        assert_eq!(script, pp.var().join("bin/run.sh"));
        assert_eq!(mode_of(&script), 0o755);
        // Rendering again replaces the file, even a read-only one.
        fs::set_permissions(&out, fs::Permissions::from_mode(0o444)).unwrap();
        let v2 = vars(&[("WEB_PORT", "9090"), ("HOST", "h")]);
        render(&pp, "etc/httpd/httpd.conf", &v2, Style::Underscores).unwrap();
        assert_eq!(
            fs::read_to_string(&out).unwrap(),
            "Listen 9090\nServerName h:9090\n"
        );
        assert_eq!(mode_of(&out), 0o640);
    }

    #[test]
    fn local_override_then_project_then_ext() {
        let (_dir, pp) = playpen();
        let rel = "etc/app.conf";
        let v = vars(&[]);
        write(&pp.ext().join(rel), b"ext", 0o644);
        assert_eq!(find_template(&pp, rel).unwrap(), pp.ext().join(rel));
        write(&pp.root.join(rel), b"project", 0o644);
        assert_eq!(find_template(&pp, rel).unwrap(), pp.root.join(rel));
        write(&pp.root.join("etc/app.conf.local"), b"local", 0o600);
        assert_eq!(
            find_template(&pp, rel).unwrap(),
            pp.root.join("etc/app.conf.local")
        );
        let out = render(&pp, rel, &v, Style::Underscores).unwrap();
        assert_eq!(fs::read(&out).unwrap(), b"local");
        assert_eq!(mode_of(&out), 0o600);
    }

    #[test]
    fn a_broken_override_is_not_skipped() {
        let (_dir, pp) = playpen();
        write(&pp.root.join("etc/app.conf"), b"project", 0o644);
        std::os::unix::fs::symlink("/nonexistent/x", pp.root.join("etc/app.conf.local")).unwrap();
        let err = render(&pp, "etc/app.conf", &vars(&[]), Style::Underscores).unwrap_err();
        assert!(err.message.contains("app.conf.local"), "{err}");
        assert!(!pp.var().join("etc/app.conf").exists());
    }

    #[test]
    fn missing_template_names_all_three_places() {
        let (_dir, pp) = playpen();
        let err = find_template(&pp, "etc/none.conf").unwrap_err();
        let root = pp.root.display();
        assert_eq!(
            err.message,
            format!(
                "no template for etc/none.conf: none of {root}/etc/none.conf.local, {root}/etc/none.conf, {root}/ext/etc/none.conf exists"
            )
        );
        assert!(err.hint.unwrap().contains("service_config_files"));
    }

    #[test]
    fn paths_must_stay_inside_the_playpen() {
        let (_dir, pp) = playpen();
        for rel in ["/etc/passwd", "../x.conf", "etc/../../x", "", "."] {
            let err = find_template(&pp, rel).unwrap_err();
            assert_eq!(err.kind, crate::ErrorKind::Config, "{rel}");
        }
        assert!(
            find_template(&pp, "/etc/passwd")
                .unwrap_err()
                .message
                .contains("absolute")
        );
        assert!(
            find_template(&pp, "a/../b")
                .unwrap_err()
                .message
                .contains("..")
        );
    }

    #[test]
    fn a_directory_is_not_a_template() {
        let (_dir, pp) = playpen();
        fs::create_dir_all(pp.root.join("etc/conf.d")).unwrap();
        let err = find_template(&pp, "etc/conf.d").unwrap_err();
        assert!(err.message.ends_with("etc/conf.d is a directory"), "{err}");
    }

    #[test]
    fn unset_variable_names_file_line_and_variable_and_writes_nothing() {
        let (_dir, pp) = playpen();
        let template = pp.ext().join("etc/app.conf");
        write(
            &template,
            b"a = __A__\n\nb = __DB_HOST__\nc = __DB_HOST__ __X__\n",
            0o644,
        );
        let target = pp.var().join("etc/app.conf");
        write(&target, b"old", 0o644);
        let err = render(
            &pp,
            "etc/app.conf",
            &vars(&[("A", "1")]),
            Style::Underscores,
        )
        .unwrap_err();
        assert_eq!(
            err.message,
            format!(
                "cannot render {}: variables DB_HOST, X are not set: __DB_HOST__ (lines 3, 4), __X__ (line 4)",
                template.display()
            )
        );
        assert!(err.hint.unwrap().starts_with("set them in the role config"));
        assert_eq!(fs::read(&target).unwrap(), b"old", "nothing written");

        let err = render_str("x\ny __ONLY__", &[], Style::Underscores).unwrap_err();
        assert_eq!(
            err.message,
            "cannot render t.conf: variable ONLY is not set: __ONLY__ (line 2)"
        );
    }

    #[test]
    fn many_unset_occurrences_are_summarised() {
        let template = "__A__\n".repeat(8);
        let err = render_str(&template, &[], Style::Underscores).unwrap_err();
        assert!(
            err.message.ends_with("__A__ (lines 1, 2, 3, 4, 5, …)"),
            "{}",
            err.message
        );
    }

    #[test]
    fn underscore_placeholder_rules() {
        let r = |t: &str| {
            render_str(
                t,
                &[("A", "1"), ("B", "2"), ("A_B", "3"), ("_C", "4"), ("E", "")],
                Style::Underscores,
            )
        };
        assert_eq!(r("__A____B__").unwrap(), "12", "adjacent placeholders");
        assert_eq!(r("__A_B__").unwrap(), "3");
        assert_eq!(r("x__A__y").unwrap(), "x1y");
        assert_eq!(r("___C__").unwrap(), "4", "a name may start with _");
        assert_eq!(
            r("db___A__").unwrap(),
            "db_1",
            "a literal _ before a placeholder"
        );
        assert_eq!(r("db____A__").unwrap(), "db__1");
        assert_eq!(r("____C__").unwrap(), "_4", "the longest set name wins");
        assert!(
            r("x___1__")
                .unwrap_err()
                .message
                .contains("variable _1 is not set: ___1__")
        );
        assert_eq!(
            r("x___Q__").unwrap_err().message,
            "cannot render t.conf: variable Q is not set: __Q__ (line 1)"
        );
        assert_eq!(r("__A___").unwrap(), "1_", "the name ends at the first __");
        assert_eq!(r("[__E__]").unwrap(), "[]", "set but empty");
        for literal in [
            "________", "__", "_A_", "__1__", "__ A__", "__A", "A__", "__-__", "__é__",
        ] {
            assert_eq!(
                r(literal).unwrap(),
                literal,
                "{literal:?} is not a placeholder"
            );
        }
        assert!(
            r("def __init__(self):")
                .unwrap_err()
                .message
                .contains("__init__ (line 1)")
        );
    }

    #[test]
    fn values_are_inserted_verbatim() {
        let tricky = "a $B ${C} __D__ \\ 'q' \"dq\"\nnew line ü";
        assert_eq!(
            render_str(
                "v=__V__;",
                &[("V", tricky), ("D", "no")],
                Style::Underscores
            )
            .unwrap(),
            format!("v={tricky};"),
            "no re-substitution of values"
        );
        assert_eq!(
            render_str("v=${V};", &[("V", tricky)], Style::Envsubst).unwrap(),
            format!("v={tricky};")
        );
    }

    #[test]
    fn envsubst_style() {
        let pairs = [("HOST", "h"), ("PORT", "80"), ("EMPTY", "")];
        assert_eq!(
            render_str(
                "${HOST}:${PORT}${EMPTY} $HOST ${ x} ${} $${PORT} __HOST__",
                &pairs,
                Style::Envsubst
            )
            .unwrap(),
            "h:80 $HOST ${ x} ${} $80 __HOST__"
        );
        assert!(
            render_str("${_HOST}", &pairs, Style::Envsubst).is_err(),
            "braces delimit the name exactly"
        );
        let err = render_str("ok\r\nbad ${NOPE}\r\n", &pairs, Style::Envsubst).unwrap_err();
        assert_eq!(
            err.message,
            "cannot render t.conf: variable NOPE is not set: ${NOPE} (line 2)"
        );
    }

    #[test]
    fn binary_content_is_preserved() {
        let (_dir, pp) = playpen();
        let mut template: Vec<u8> = (0..=255u8).collect();
        template.extend_from_slice(b"__KEY__");
        template.extend_from_slice(&[0, 0xff, 0xfe, b'_', b'_', 0x80, b'_', b'_', 0xc3]);
        template.extend_from_slice(b"${KEY}__KEY__");
        write(&pp.ext().join("data/blob.bin"), &template, 0o644);
        let v = vars(&[("KEY", "k")]);
        let out = render(&pp, "data/blob.bin", &v, Style::Underscores).unwrap();
        let mut expected: Vec<u8> = (0..=255u8).collect();
        expected.extend_from_slice(b"k");
        expected.extend_from_slice(&[0, 0xff, 0xfe, b'_', b'_', 0x80, b'_', b'_', 0xc3]);
        expected.extend_from_slice(b"${KEY}k");
        assert_eq!(fs::read(out).unwrap(), expected);
        let env = render_bytes(&template, &v, Style::Envsubst, Path::new("b")).unwrap();
        assert!(env.ends_with(b"k__KEY__"));
        assert_eq!(env.len(), template.len() - "${KEY}".len() + 1);
    }

    #[test]
    fn crlf_is_preserved_and_lines_still_counted() {
        let out = render_str(
            "a=__A__\r\nb=__B__\r\n",
            &[("A", "1"), ("B", "2")],
            Style::Underscores,
        )
        .unwrap();
        assert_eq!(out, "a=1\r\nb=2\r\n");
        let err = render_str("a\r\nb\r\n\r\n__Z__\r\n", &[], Style::Underscores).unwrap_err();
        assert!(err.message.ends_with("__Z__ (line 4)"), "{}", err.message);
    }

    #[test]
    fn a_ten_megabyte_line() {
        let (_dir, pp) = playpen();
        let mut template = vec![b'x'; 10 * 1024 * 1024];
        template.extend_from_slice(b"__V__");
        template.extend(std::iter::repeat_n(b'_', 1024 * 1024));
        write(&pp.ext().join("big.txt"), &template, 0o644);
        let out = render(&pp, "big.txt", &vars(&[("V", "value")]), Style::Underscores).unwrap();
        let rendered = fs::read(out).unwrap();
        assert_eq!(rendered.len(), template.len() - 5 + 5);
        assert_eq!(&rendered[10 * 1024 * 1024..10 * 1024 * 1024 + 5], b"value");
        assert!(!rendered.contains(&b'\n'));
    }

    #[test]
    fn a_file_in_the_way_of_the_target_directory() {
        let (_dir, pp) = playpen();
        write(&pp.ext().join("etc/nginx/site.conf"), b"x", 0o644);
        write(&pp.var().join("etc"), b"I am a file", 0o644);
        let err = render(&pp, "etc/nginx/site.conf", &vars(&[]), Style::Underscores).unwrap_err();
        assert_eq!(
            err.message,
            format!(
                "cannot write {}: {} is not a directory",
                pp.var().join("etc/nginx/site.conf").display(),
                pp.var().join("etc").display()
            )
        );
        assert!(
            err.hint
                .unwrap()
                .contains(&pp.var().join("etc").display().to_string())
        );
    }

    #[test]
    fn a_directory_at_the_target() {
        let (_dir, pp) = playpen();
        write(&pp.ext().join("etc/app.conf"), b"x", 0o644);
        fs::create_dir_all(pp.var().join("etc/app.conf")).unwrap();
        let err = render(&pp, "etc/app.conf", &vars(&[]), Style::Underscores).unwrap_err();
        assert!(
            err.message.ends_with("app.conf: it is a directory"),
            "{err}"
        );
    }

    #[test]
    fn an_unreadable_template_is_a_clear_error() {
        if nix::unistd::geteuid().is_root() {
            return; // root reads anything
        }
        let (_dir, pp) = playpen();
        let template = pp.ext().join("etc/secret.conf");
        write(&template, b"x", 0o000);
        let err = render(&pp, "etc/secret.conf", &vars(&[]), Style::Underscores).unwrap_err();
        assert_eq!(err.kind, crate::ErrorKind::Io);
        assert!(
            err.message
                .starts_with(&format!("cannot read the template {}", template.display()))
        );
        assert!(err.hint.is_some());
    }

    #[test]
    fn render_all_writes_nothing_unless_everything_renders() {
        let (_dir, pp) = playpen();
        write(&pp.ext().join("a.conf"), b"a=__A__\n", 0o644);
        write(&pp.ext().join("b.conf"), b"b=__B__\n", 0o644);
        write(&pp.ext().join("c.conf"), b"c=__C__\n", 0o644);
        let rels = ["a.conf", "b.conf", "c.conf", "d.conf"];
        let v = vars(&[("A", "1")]);
        let err = render_all(&pp, &rels, &v, Style::Underscores).unwrap_err();
        assert!(
            err.message
                .starts_with("3 templates cannot be rendered:\n  cannot render"),
            "{err}"
        );
        assert!(err.message.contains("no template for d.conf"));
        assert!(!pp.var().join("a.conf").exists());
        assert!(check_all(&pp, &rels[..1], &v, Style::Underscores).is_ok());
        assert!(
            !pp.var().join("a.conf").exists(),
            "check_all writes nothing"
        );
        let single = check_all(&pp, &rels[..2], &v, Style::Underscores).unwrap_err();
        assert!(
            single.message.starts_with("cannot render"),
            "one error stays as it is"
        );
        let v = vars(&[("A", "1"), ("B", "2"), ("C", "3")]);
        let written = render_all(&pp, &rels[..3], &v, Style::Underscores).unwrap();
        assert_eq!(written.len(), 3);
        assert_eq!(fs::read_to_string(&written[2]).unwrap(), "c=3\n");
    }
}

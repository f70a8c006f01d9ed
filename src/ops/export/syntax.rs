//! How values are written in systemd unit files: unit names, `Exec*=` command lines,
//! `EnvironmentFile=` values and paths in settings (what `export systemd` and `boot`
//! write).

use std::path::Path;

/// A word fit for a unit name: letters, digits and `:_.-`; anything else becomes `_`.
pub(crate) fn unit_word(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ":_.-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// One command-line word for an `Exec*=` line: `%` and `$` escaped (systemd expands
/// them), quoted with C escapes when it holds anything but plain characters.
pub(crate) fn exec_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._,:@+=-%$".contains(c))
        && word != ";";
    let escaped = word.replace('%', "%%").replace('$', "$$");
    if plain {
        return escaped;
    }
    let mut out = String::from("\"");
    for c in escaped.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

pub(crate) fn exec_line(words: &[String]) -> String {
    words
        .iter()
        .map(|w| exec_word(w))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A value for an `EnvironmentFile=`: double-quoted, with `"`, `\`, `` ` `` and `$`
/// escaped; newlines stay as they are (the file format allows them inside quotes).
pub(crate) fn env_value(value: &str) -> String {
    let mut out = String::from("\"");
    for c in value.chars() {
        if "\"\\`$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// A path inside a unit file setting (not a command line): only `%` is special.
pub(crate) fn setting_path(path: &Path) -> String {
    path.display().to_string().replace('%', "%%")
}

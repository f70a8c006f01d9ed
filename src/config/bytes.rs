//! Values are bytes (they must round-trip exactly). sh and exec know no encoding: a
//! variable may hold any bytes but NUL, UTF-8 or not, and servicectl keeps them as
//! `OsString` from the sh dump to the program's environment, its hooks and scripts and
//! the rendered templates. Names stay `String` (sh names are ASCII).
//!
//! Where bytes meet text, the choices are:
//! - Messages show a value as Rust's `{:?}` of an `OsStr` does: `"a\xFFb"` ([`quoted`]).
//! - sh output (`env`, `print-config`) writes the exact bytes inside single quotes
//!   ([`sh_quote`]); sh reads them back unchanged.
//! - JSON cannot hold bytes that are not UTF-8: a UTF-8 value is a JSON string, any
//!   other value an object `{"lossy": TEXT, "bytes": [N, …]}`, TEXT with U+FFFD for each
//!   bad sequence (for people) and `bytes` the exact value (for programs) ([`Json`]).
//! - Settings (`service_*`) are read as text: a setting that is not UTF-8 is a settings
//!   problem (see config/settings/), not a silent default.

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use std::borrow::Cow;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

pub use crate::process::env::Env;

/// A value for a message: `"text"`, with bytes that are not UTF-8 as `\xFF`.
pub fn quoted(value: &OsStr) -> String {
    format!("{value:?}")
}

/// The value quoted for sh, as exact bytes: unquoted when it is plain (`shell_words`'s
/// rule, so UTF-8 values read as before), else in single quotes with `'\''` for `'`.
pub fn sh_quote(value: &OsStr) -> Cow<'_, [u8]> {
    if let Some(text) = value.to_str() {
        return match shell_words::quote(text) {
            Cow::Borrowed(t) => Cow::Borrowed(t.as_bytes()),
            Cow::Owned(t) => Cow::Owned(t.into_bytes()),
        };
    }
    let mut out = Vec::with_capacity(value.len() + 2);
    out.push(b'\'');
    for &b in value.as_bytes() {
        if b == b'\'' {
            out.extend_from_slice(b"'\\''");
        } else {
            out.push(b);
        }
    }
    out.push(b'\'');
    Cow::Owned(out)
}

/// A value's JSON form: a string when it is UTF-8, else `{"lossy": …, "bytes": […]}`.
pub struct Json<'a>(pub &'a OsStr);

impl Serialize for Json<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.to_str() {
            Some(text) => s.serialize_str(text),
            None => {
                let mut map = s.serialize_map(Some(2))?;
                map.serialize_entry("lossy", &self.0.to_string_lossy())?;
                map.serialize_entry("bytes", self.0.as_bytes())?;
                map.end()
            }
        }
    }
}

/// An environment's JSON form: an object of [`Json`] values.
pub struct EnvJson<'a>(pub &'a Env);

impl Serialize for EnvJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, Json(v))))
    }
}

/// For `#[serde(serialize_with = "…")]` on a value.
pub fn serialize<S: Serializer>(value: &OsString, s: S) -> Result<S::Ok, S::Error> {
    Json(value).serialize(s)
}

/// For `#[serde(serialize_with = "…")]` on an optional value.
pub fn serialize_option<S: Serializer>(value: &Option<OsString>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(v) => s.serialize_some(&Json(v)),
        None => s.serialize_none(),
    }
}

/// For `#[serde(serialize_with = "…")]` on an environment.
pub fn serialize_env<S: Serializer>(env: &Env, s: S) -> Result<S::Ok, S::Error> {
    EnvJson(env).serialize(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStringExt;

    fn os(bytes: &[u8]) -> OsString {
        OsString::from_vec(bytes.to_vec())
    }

    #[test]
    fn sh_quoting_keeps_the_bytes_and_reads_back_in_sh() {
        assert_eq!(&*sh_quote(OsStr::new("plain")), b"plain");
        assert_eq!(&*sh_quote(OsStr::new("it's")), b"'it'\\''s'");
        let value = os(b"\xff\xfe it's $HOME\n\x80");
        let quoted = sh_quote(&value);
        assert_eq!(&*quoted, b"'\xff\xfe it'\\''s $HOME\n\x80'");
        let mut script = b"printf %s ".to_vec();
        script.extend_from_slice(&quoted);
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(OsString::from_vec(script))
            .output()
            .unwrap();
        assert_eq!(out.stdout, value.as_bytes());
    }

    #[test]
    fn json_is_a_string_for_utf8_and_lossy_plus_bytes_otherwise() {
        let text = serde_json::to_value(Json(OsStr::new("héllo"))).unwrap();
        assert_eq!(text, serde_json::json!("héllo"));
        let bytes = serde_json::to_value(Json(&os(b"a\xffb"))).unwrap();
        assert_eq!(
            bytes,
            serde_json::json!({"lossy": "a\u{fffd}b", "bytes": [97, 255, 98]})
        );
        assert_eq!(quoted(&os(b"a\xffb\n")), "\"a\\xFFb\\n\"");
    }
}

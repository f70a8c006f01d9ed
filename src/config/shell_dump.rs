//! Reads back what `sh` prints for `set` and `export -p`, so that every value a config
//! fragment assigns returns to us byte for byte (spaces, quotes, newlines, `$`, UTF-8,
//! and bytes that are not UTF-8: values are `OsString`, see `config::bytes`).
//!
//! The stream from the config shell is a sequence of entries, each on its own logical
//! line: `NAME=VALUE` (from `set`), `export NAME=VALUE` or `export NAME` (from
//! `export -p`), or a marker line starting with the byte 0x1E that servicectl itself
//! prints. VALUE is in sh quoting: `'...'`, `"..."`, `$'...'`, backslash escapes and
//! bare characters, concatenated. dash single-quotes everything; bash in POSIX mode may
//! use `$'...'`; both are understood.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

/// The byte that starts servicectl's own marker lines.
pub const MARKER: u8 = 0x1e;

#[derive(Debug, PartialEq, Eq)]
pub enum Item {
    /// `NAME=VALUE`, or with `exported` from `export -p` (value None for `export NAME`).
    Var {
        name: String,
        value: Option<OsString>,
        exported: bool,
    },
    /// A marker line, without the marker byte and newline.
    Marker(String),
    /// A line we could not understand (skipped, kept for diagnostics).
    Unparsed(String),
}

/// Bytes as text, for names (ASCII by construction) and diagnostics.
fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Parse one item from the start of `buf`. Returns the item and the number of bytes it
/// used, or None when `buf` does not yet hold a whole item (wait for more input).
pub fn parse_item(buf: &[u8]) -> Option<(Item, usize)> {
    if buf.is_empty() {
        return None;
    }
    if buf[0] == MARKER {
        let end = buf.iter().position(|&b| b == b'\n')?;
        let text = String::from_utf8_lossy(&buf[1..end]).into_owned();
        return Some((Item::Marker(text), end + 1));
    }
    let mut pos = 0;
    let mut exported = false;
    if buf.starts_with(b"export ") {
        exported = true;
        pos = 7;
    } else if buf.len() < 7 && b"export ".starts_with(buf) {
        return None;
    }
    let name_start = pos;
    while pos < buf.len() && (buf[pos].is_ascii_alphanumeric() || buf[pos] == b'_') {
        pos += 1;
    }
    if pos == buf.len() {
        return None;
    }
    let name = text(&buf[name_start..pos]);
    let valid_name = !name.is_empty() && !name.as_bytes()[0].is_ascii_digit();
    match buf[pos] {
        b'\n' if exported && valid_name => {
            return Some((
                Item::Var {
                    name,
                    value: None,
                    exported,
                },
                pos + 1,
            ));
        }
        b'=' if valid_name => {}
        _ => {
            let end = buf[pos..].iter().position(|&b| b == b'\n')? + pos;
            let text = String::from_utf8_lossy(&buf[..end]).into_owned();
            return Some((Item::Unparsed(text), end + 1));
        }
    }
    pos += 1;
    let (value, used) = parse_value(&buf[pos..])?;
    Some((
        Item::Var {
            name,
            value: Some(OsString::from_vec(value)),
            exported,
        },
        pos + used,
    ))
}

/// Parse a quoted sh word ending at an unquoted newline. Returns the bytes and how many
/// input bytes (including the newline) were used; None if the input ends first.
fn parse_value(buf: &[u8]) -> Option<(Vec<u8>, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        match *buf.get(i)? {
            b'\n' => return Some((out, i + 1)),
            b'\'' => {
                let end = buf[i + 1..].iter().position(|&b| b == b'\'')? + i + 1;
                out.extend_from_slice(&buf[i + 1..end]);
                i = end + 1;
            }
            b'"' => {
                i += 1;
                loop {
                    match *buf.get(i)? {
                        b'"' => {
                            i += 1;
                            break;
                        }
                        b'\\' => {
                            let next = *buf.get(i + 1)?;
                            match next {
                                b'$' | b'`' | b'"' | b'\\' => out.push(next),
                                b'\n' => {}
                                _ => out.extend_from_slice(&[b'\\', next]),
                            }
                            i += 2;
                        }
                        b => {
                            out.push(b);
                            i += 1;
                        }
                    }
                }
            }
            b'$' if buf.get(i + 1) == Some(&b'\'') => {
                i += 2;
                loop {
                    match *buf.get(i)? {
                        b'\'' => {
                            i += 1;
                            break;
                        }
                        b'\\' => {
                            let (bytes, used) = ansi_c_escape(&buf[i + 1..])?;
                            out.extend_from_slice(&bytes);
                            i += 1 + used;
                        }
                        b => {
                            out.push(b);
                            i += 1;
                        }
                    }
                }
            }
            b'\\' => {
                let next = *buf.get(i + 1)?;
                if next != b'\n' {
                    out.push(next);
                }
                i += 2;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
}

/// One escape inside `$'...'`, after the backslash.
fn ansi_c_escape(buf: &[u8]) -> Option<(Vec<u8>, usize)> {
    let c = *buf.first()?;
    let simple = |b: u8| Some((vec![b], 1));
    match c {
        b'n' => simple(b'\n'),
        b't' => simple(b'\t'),
        b'r' => simple(b'\r'),
        b'a' => simple(0x07),
        b'b' => simple(0x08),
        b'e' | b'E' => simple(0x1b),
        b'f' => simple(0x0c),
        b'v' => simple(0x0b),
        b'0'..=b'7' => {
            let digits = buf
                .iter()
                .take(3)
                .take_while(|b| (b'0'..=b'7').contains(b))
                .count();
            if digits == buf.len() && digits < 3 {
                return None;
            }
            let n = u32::from_str_radix(std::str::from_utf8(&buf[..digits]).ok()?, 8).ok()?;
            Some((vec![n as u8], digits))
        }
        b'x' => {
            let digits = buf[1..]
                .iter()
                .take(2)
                .take_while(|b| b.is_ascii_hexdigit())
                .count();
            if digits == 0 {
                return Some((b"\\x".to_vec(), 1));
            }
            let n = u8::from_str_radix(std::str::from_utf8(&buf[1..1 + digits]).ok()?, 16).ok()?;
            Some((vec![n], 1 + digits))
        }
        b'\\' | b'\'' | b'"' | b'?' => simple(c),
        other => Some((vec![b'\\', other], 1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(input: &str) -> Vec<Item> {
        let mut buf = input.as_bytes();
        let mut items = Vec::new();
        while let Some((item, used)) = parse_item(buf) {
            items.push(item);
            buf = &buf[used..];
        }
        assert!(
            buf.is_empty(),
            "left over: {:?}",
            String::from_utf8_lossy(buf)
        );
        items
    }

    fn var(name: &str, value: &str, exported: bool) -> Item {
        bytes_var(name, value.as_bytes(), exported)
    }

    fn bytes_var(name: &str, value: &[u8], exported: bool) -> Item {
        Item::Var {
            name: name.into(),
            value: Some(OsString::from_vec(value.to_vec())),
            exported,
        }
    }

    #[test]
    fn keeps_bytes_that_are_not_utf8() {
        let mut buf: &[u8] = b"a='\\xff\xff\xfe\n\x80'\nexport b=$'\\377\\x80'\n";
        let mut items = Vec::new();
        while let Some((item, used)) = parse_item(buf) {
            items.push(item);
            buf = &buf[used..];
        }
        assert_eq!(items[0], bytes_var("a", b"\\xff\xff\xfe\n\x80", false));
        assert_eq!(items[1], bytes_var("b", b"\xff\x80", true));
    }

    #[test]
    fn reads_dash_quoting() {
        let items =
            parse_all("a='it'\"'\"'s $HOME\ntwo lines'\nc=''\nexport d='1'\nexport e\n\u{1e}F 1\n");
        assert_eq!(items[0], var("a", "it's $HOME\ntwo lines", false));
        assert_eq!(items[1], var("c", "", false));
        assert_eq!(items[2], var("d", "1", true));
        assert_eq!(
            items[3],
            Item::Var {
                name: "e".into(),
                value: None,
                exported: true
            }
        );
        assert_eq!(items[4], Item::Marker("F 1".into()));
    }

    #[test]
    fn reads_bash_quoting() {
        let items = parse_all("IFS=$' \\t\\n'\nx=\"a\\\"b\\$c\"\ny=plain\\ word\n");
        assert_eq!(items[0], var("IFS", " \t\n", false));
        assert_eq!(items[1], var("x", "a\"b$c", false));
        assert_eq!(items[2], var("y", "plain word", false));
    }

    #[test]
    fn waits_for_the_rest_of_a_quoted_value() {
        assert_eq!(parse_item(b"a='open\nstill"), None);
        assert_eq!(parse_item(b"expo"), None);
        assert_eq!(parse_item(b"\x1eF 1"), None);
    }
}

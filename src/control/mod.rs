//! The control protocol between `servicectl` commands and `servicectl supervise`
//! (docs/protocol.md): one JSON request per line, one JSON response per line, each with
//! a version field (`"v": 1`), over the playpen's socket `var/run/servicectl.sock`.
//!
//! Shared by the client (the CLI) and the daemon ([`crate::supervise`]) and importing
//! neither: only [`crate::error`] and serde. Lines are bounded ([`MAX_LINE`]): a longer
//! line is an error, never unbounded memory.

use crate::error::{Error, ErrorKind, Result};
/// What an operation did to one service travels as the library's own value.
pub use crate::service::outcome::Outcome;
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

/// The protocol version every request and response carries.
pub const VERSION: u32 = 1;

/// The longest line either side accepts (1 MiB), newline excluded.
pub const MAX_LINE: usize = 1 << 20;

/// The control socket of the playpen at `root`.
pub fn socket_path(root: &Path) -> PathBuf {
    root.join("var/run/servicectl.sock")
}

/// What a client asks for. `services` empty means the role's services (start, stop,
/// restart) or every supervised service (status, wait).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Op {
    /// Who are you? (The supervisor answers with its PID.)
    Hello,
    Start {
        #[serde(default)]
        services: Vec<String>,
    },
    Stop {
        #[serde(default)]
        services: Vec<String>,
    },
    Restart {
        #[serde(default)]
        services: Vec<String>,
    },
    Status {
        #[serde(default)]
        services: Vec<String>,
    },
    /// Bring every service of the role to its desired state (enabled up, disabled down).
    Up,
    /// Stop every service, dependants first; none is restarted.
    Down,
    /// Answer once every named service is ready, or when `timeout_secs` has passed.
    Wait {
        #[serde(default)]
        services: Vec<String>,
        #[serde(default)]
        timeout_secs: Option<f64>,
    },
    /// Stop everything in reverse dependency order, answer, and exit.
    Shutdown,
}

/// An error as it travels: the fields of [`Error`], its kind as a word.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireError {
    pub kind: String,
    #[serde(default)]
    pub service: Option<String>,
    pub message: String,
    #[serde(default)]
    pub hint: Option<String>,
}

const KINDS: &[(ErrorKind, &str)] = &[
    (ErrorKind::Config, "config"),
    (ErrorKind::UnknownService, "unknown-service"),
    (ErrorKind::NoPlaypen, "no-playpen"),
    (ErrorKind::Runtime, "runtime"),
    (ErrorKind::Io, "io"),
    (ErrorKind::NotAttempted, "not-attempted"),
    (ErrorKind::NoServicesListed, "no-services-listed"),
];

impl From<&Error> for WireError {
    fn from(e: &Error) -> WireError {
        WireError {
            kind: KINDS
                .iter()
                .find(|(k, _)| *k == e.kind)
                .map_or("runtime", |(_, w)| w)
                .to_string(),
            service: e.service.clone(),
            message: e.message.clone(),
            hint: e.hint.clone(),
        }
    }
}

impl From<WireError> for Error {
    fn from(w: WireError) -> Error {
        let kind = KINDS
            .iter()
            .find(|(_, word)| *word == w.kind)
            .map_or(ErrorKind::Runtime, |(k, _)| *k);
        Error {
            kind,
            service: w.service,
            message: w.message,
            hint: w.hint,
        }
    }
}

/// One service's result of start, stop, restart, up, down or shutdown: `done` or `error`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub service: String,
    #[serde(default)]
    pub done: Option<Outcome>,
    #[serde(default)]
    pub error: Option<WireError>,
}

impl Row {
    /// The row as a command's result for its service.
    pub fn into_result(self) -> (String, Result<Outcome>) {
        let result = match (self.done, self.error) {
            (_, Some(e)) => Err(Error::from(e)),
            (Some(done), None) => Ok(done),
            (None, None) => Err(Error::runtime("the supervisor sent an empty result")),
        };
        (self.service, result)
    }
}

pub use crate::service::status::{ServiceStatus, Supervised};

/// A service `wait` gave up on, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotReady {
    pub service: String,
    pub state: String,
}

/// What the supervisor answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "kebab-case")]
pub enum Reply {
    Hello {
        pid: i32,
        version: String,
    },
    /// The request as a whole failed (bad request, unknown service, refused client).
    Error {
        error: WireError,
    },
    Results {
        results: Vec<Row>,
        #[serde(default)]
        warnings: Vec<String>,
    },
    Status {
        services: Vec<ServiceStatus>,
    },
    Wait {
        ready: Vec<String>,
        not_ready: Vec<NotReady>,
    },
}

impl Reply {
    pub fn error(e: &Error) -> Reply {
        Reply::Error { error: e.into() }
    }
}

/// A message in its line form: `{"v":1,` then the value's fields, then a newline.
/// Written straight from the value (no JSON tree in between): every message is an
/// object, so the version goes in front of its first field.
fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut line = Vec::new();
    encode_into(value, &mut line);
    line
}

/// Append `value`'s line to `out`: `{"v":N,` then the object's fields, serialized in
/// place (no body serialized apart and copied: a status of 1,000 services is ~160 KB).
fn encode_into<T: Serialize>(value: &T, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"v\":");
    out.extend_from_slice(VERSION.to_string().as_bytes());
    let body = out.len();
    serde_json::to_writer(&mut *out, value).expect("protocol values serialise");
    debug_assert!(
        out.get(body) == Some(&b'{'),
        "protocol messages are objects"
    );
    if out[body..] == *b"{}" {
        out.truncate(body);
        out.push(b'}');
    } else {
        out[body] = b',';
    }
    out.push(b'\n');
}

/// The version field of a message and whether it is a status reply, read without
/// keeping anything else: Err when the line is not a JSON object.
fn version_of(line: &[u8]) -> std::result::Result<(Option<u64>, bool), serde_json::Error> {
    struct Version;
    impl<'de> serde::de::Visitor<'de> for Version {
        type Value = (Option<u64>, bool);
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> std::result::Result<(Option<u64>, bool), A::Error> {
            let (mut v, mut status) = (None, false);
            while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                if key == "v" {
                    v = map.next_value::<serde_json::Value>()?.as_u64();
                } else if key == "reply" {
                    status = map.next_value::<std::borrow::Cow<'de, str>>()? == "status";
                } else {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
            Ok((v, status))
        }
    }
    let mut de = serde_json::Deserializer::from_slice(line);
    let v = serde::Deserializer::deserialize_map(&mut de, Version)?;
    de.end()?;
    Ok(v)
}

/// Read one message, checking its version. The line is scanned for its version, then
/// read into the message itself (no JSON tree in between: a status of 100 services is
/// read in half the instructions).
fn decode<T: for<'de> Deserialize<'de>>(line: &[u8]) -> Result<T> {
    checked(line)?;
    serde_json::from_slice(line).map_err(|e| bad(e.to_string()))
}

fn bad(what: String) -> Error {
    Error::new(ErrorKind::Config, format!("bad control message: {what}"))
        .with_hint("send one JSON object per line with \"v\": 1 (see docs/protocol.md)")
}

/// The line's version is this side's; true when it is a status reply. A line as
/// [`encode`] writes it says both in its first bytes; any other is scanned.
fn checked(line: &[u8]) -> Result<bool> {
    const STATUS: &[u8] = b"{\"v\":1,\"reply\":\"status\",";
    const _: () = assert!(VERSION == 1, "the status prefix above names the version");
    if line.starts_with(STATUS) {
        return Ok(true);
    }
    match version_of(line).map_err(|e| bad(format!("not JSON ({e})")))? {
        (Some(v), status) if v == u64::from(VERSION) => Ok(status),
        (Some(v), _) => Err(bad(format!("version {v}, this side speaks {VERSION}"))),
        (None, _) => Err(bad("no version field \"v\"".into())),
    }
}

/// A status reply's one field, read as a plain struct: serde reads an internally
/// tagged enum by buffering the whole object first (a third of the instructions of
/// reading a status of 100 services).
#[derive(Deserialize)]
struct StatusLine {
    services: Vec<ServiceStatus>,
}

pub fn encode_request(op: &Op) -> Vec<u8> {
    encode(op)
}

pub fn decode_request(line: &[u8]) -> Result<Op> {
    decode(line)
}

pub fn encode_reply(reply: &Reply) -> Vec<u8> {
    encode(reply)
}

/// [`encode_reply`] appended to `out` (a connection's output buffer).
pub fn encode_reply_into(reply: &Reply, out: &mut Vec<u8>) {
    encode_into(reply, out)
}

pub fn decode_reply(line: &[u8]) -> Result<Reply> {
    if checked(line)? {
        let status: StatusLine = serde_json::from_slice(line).map_err(|e| bad(e.to_string()))?;
        return Ok(Reply::Status {
            services: status.services,
        });
    }
    serde_json::from_slice(line).map_err(|e| bad(e.to_string()))
}

/// A line longer than [`MAX_LINE`] arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLong;

/// Bytes as they arrive, cut into lines; holds at most `max` bytes of an unfinished line.
#[derive(Debug)]
pub struct LineBuffer {
    buf: Vec<u8>,
    max: usize,
    /// Where the unfinished line begins in `buf`: the lines before it were checked
    /// against `max` when they came, so a push looks at its own bytes only (a reply of
    /// 1,000 services comes in many reads; scanning all of it at each was quadratic).
    start: usize,
}

impl LineBuffer {
    pub fn new(max: usize) -> LineBuffer {
        LineBuffer {
            buf: Vec::new(),
            max,
            start: 0,
        }
    }

    /// Add what was read. Err once an unfinished line is longer than the limit (the
    /// bytes are dropped: the connection should be answered and closed).
    pub fn push(&mut self, bytes: &[u8]) -> std::result::Result<(), TooLong> {
        let from = self.buf.len();
        self.buf.extend_from_slice(bytes);
        let mut start = self.start;
        let mut too_long = false;
        for i in crate::text::byte_positions(b'\n', bytes) {
            too_long |= from + i - start > self.max;
            start = from + i + 1;
        }
        if too_long || self.buf.len() - start > self.max {
            self.buf = Vec::new();
            self.start = 0;
            return Err(TooLong);
        }
        self.start = start;
        Ok(())
    }

    /// The next complete line, without its newline.
    pub fn next_line(&mut self) -> Option<Vec<u8>> {
        let end = crate::text::find_byte(b'\n', &self.buf[..self.start])?;
        let mut line = if end + 1 == self.buf.len() {
            // The whole buffer (the usual answer): no copy, and a 10 MB burst's memory
            // goes with it.
            std::mem::take(&mut self.buf)
        } else {
            self.buf.drain(..=end).collect()
        };
        self.start -= end + 1;
        line.pop();
        Some(line)
    }

    /// Bytes of an unfinished line.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

/// A connection to the playpen's supervisor.
pub struct Client {
    stream: UnixStream,
    lines: LineBuffer,
}

/// Connect to the supervisor of the playpen at `root`. Ok(None) when none answers: no
/// socket, or a socket left by a supervisor that died (ECONNREFUSED), or no path to
/// one. Err when one runs but this user may not reach it (EACCES).
pub fn connect(root: &Path) -> Result<Option<Client>> {
    let path = socket_path(root);
    match UnixStream::connect(&path) {
        Ok(stream) => Ok(Some(Client {
            stream,
            lines: LineBuffer::new(MAX_LINE),
        })),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Err(Error::io(
            "connect to the supervisor at",
            &path,
            e,
        )
        .with_hint("only the user who runs `servicectl supervise` (and root) may control it")),
        // No socket, a stale one, or no var/run at all: the command acts directly (and
        // reports what is wrong with the playpen itself).
        Err(_) => Ok(None),
    }
}

impl Client {
    /// Send one request and wait for its reply (as long as the operation takes).
    pub fn call(&mut self, op: &Op) -> Result<Reply> {
        self.call_or_lost(op)?.ok_or_else(|| {
            Error::runtime("the supervisor closed the connection without an answer").with_hint(
                "it may have stopped; see `servicectl status` and var/run/servicectl.supervise.output",
            )
        })
    }

    /// [`Client::call`], with Ok(None) when the connection was lost before an answer
    /// came (the supervisor exited or was killed meanwhile): the caller decides whether
    /// the command can act directly instead.
    pub fn call_or_lost(&mut self, op: &Op) -> Result<Option<Reply>> {
        use std::io::ErrorKind as Io;
        let lost = |e: &std::io::Error| {
            matches!(
                e.kind(),
                Io::ConnectionReset | Io::BrokenPipe | Io::ConnectionAborted
            )
        };
        let path = Path::new("the supervisor's socket");
        match self.stream.write_all(&encode_request(op)) {
            Ok(()) => {}
            Err(e) if lost(&e) => return Ok(None),
            Err(e) => return Err(Error::io("write to", path, e)),
        }
        let mut chunk = [0u8; 64 * 1024];
        loop {
            if let Some(line) = self.lines.next_line() {
                return decode_reply(&line).map(Some);
            }
            let n = match self.stream.read(&mut chunk) {
                Ok(0) => return Ok(None),
                Ok(n) => n,
                Err(e) if e.kind() == Io::Interrupted => continue,
                Err(e) if lost(&e) => return Ok(None),
                Err(e) => return Err(Error::io("read from", path, e)),
            };
            self.lines.push(&chunk[..n]).map_err(|TooLong| {
                Error::runtime(format!(
                    "the supervisor's answer is longer than {MAX_LINE} bytes"
                ))
            })?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_carry_the_version_and_round_trip() {
        let op = Op::Wait {
            services: vec!["web".into()],
            timeout_secs: Some(2.5),
        };
        let line = encode_request(&op);
        let text = String::from_utf8(line.clone()).unwrap();
        assert!(text.ends_with('\n') && text.contains("\"v\":1"), "{text}");
        assert!(text.contains("\"op\":\"wait\""), "{text}");
        assert_eq!(decode_request(&line[..line.len() - 1]).unwrap(), op);
        let reply = Reply::Status { services: vec![] };
        let line = encode_reply(&reply);
        assert!(
            line.starts_with(b"{\"v\":1,\"reply\":\"status\","),
            "{line:?}"
        );
        assert_eq!(decode_reply(&line[..line.len() - 1]).unwrap(), reply);
        // Appended in place: the same bytes as the body serialized apart and spliced.
        let mut out = b"pending".to_vec();
        encode_reply_into(&reply, &mut out);
        assert_eq!(&out[..7], b"pending");
        assert_eq!(out[7..], line[..]);
        let body = serde_json::to_vec(&reply).unwrap();
        let spliced = [&b"{\"v\":1,"[..], &body[1..], b"\n"].concat();
        assert_eq!(line, spliced);
        assert_eq!(
            decode_request(br#"{"v":1,"op":"status"}"#).unwrap(),
            Op::Status { services: vec![] }
        );
    }

    #[test]
    fn bad_messages_are_errors_not_panics() {
        for line in [
            &b"garbage"[..],
            br#"{"op":"status"}"#,
            br#"{"v":2,"op":"status"}"#,
            br#"{"v":1,"op":"explode"}"#,
            br#"[1,2]"#,
            b"",
        ] {
            let e = decode_request(line).unwrap_err();
            assert!(e.message.starts_with("bad control message"), "{e}");
        }
    }

    #[test]
    fn errors_keep_their_kind_across_the_wire() {
        let e = Error::new(ErrorKind::UnknownService, "unknown service").with_service("x");
        let back: Error = WireError::from(&e).into();
        assert_eq!(back.kind, ErrorKind::UnknownService);
        assert_eq!(back.to_string(), e.to_string());
    }

    #[test]
    fn line_buffer_cuts_lines_and_bounds_memory() {
        let mut lines = LineBuffer::new(8);
        lines.push(b"ab\ncd").unwrap();
        assert_eq!(lines.next_line().unwrap(), b"ab");
        assert_eq!(lines.next_line(), None);
        lines.push(b"e\n").unwrap();
        assert_eq!(lines.next_line().unwrap(), b"cde");
        assert_eq!(lines.push(b"123456789"), Err(TooLong));
        assert_eq!(lines.pending(), 0);
        assert_eq!(lines.push(b"1234567890\nok\n"), Err(TooLong));
        assert_eq!(lines.pending(), 0);
        // A line of exactly the limit, cut across pushes, is one line; one byte more is not.
        lines.push(b"1234").unwrap();
        lines.push(b"5678\n12").unwrap();
        lines.push(b"\n").unwrap();
        assert_eq!(lines.next_line().unwrap(), b"12345678");
        assert_eq!(lines.next_line().unwrap(), b"12");
        assert_eq!(lines.next_line(), None);
        lines.push(b"12345").unwrap();
        assert_eq!(lines.push(b"6789\n"), Err(TooLong));
        // Lines waiting to be taken are not checked again.
        lines.push(b"a\nb\n").unwrap();
        lines.push(b"c").unwrap();
        assert_eq!(lines.next_line().unwrap(), b"a");
        lines.push(b"\n").unwrap();
        assert_eq!(lines.next_line().unwrap(), b"b");
        assert_eq!(lines.next_line().unwrap(), b"c");
        assert_eq!(lines.pending(), 0);
    }
}

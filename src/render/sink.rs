//! The one place that writes to stdout and stderr.
//!
//! Every byte goes through [`out`] and [`err`], never `print!`: a reader that goes away
//! (`servicectl status | head -1`) must not panic the command half-way (Rust ignores
//! SIGPIPE, so `print!` panics on EPIPE). The first failure to write stdout is kept and
//! later output is dropped; the command finishes its work, and `cli::main` ends quietly
//! on a closed pipe (or reports any other failure, such as a full disk).

use super::style::Style;
use crate::error::Error;
use std::io::{self, Write};
use std::sync::OnceLock;

/// The first failure to write stdout; once set, nothing more is written there.
static STDOUT_FAILURE: OnceLock<io::Error> = OnceLock::new();

/// What [`out`] writes: text, or bytes (`env` and `print-config` write values that are
/// not UTF-8 exactly).
pub trait Output {
    fn output_bytes(&self) -> &[u8];
}

impl Output for str {
    fn output_bytes(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl Output for String {
    fn output_bytes(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl Output for [u8] {
    fn output_bytes(&self) -> &[u8] {
        self
    }
}

impl Output for Vec<u8> {
    fn output_bytes(&self) -> &[u8] {
        self
    }
}

impl<T: Output + ?Sized> Output for &T {
    fn output_bytes(&self) -> &[u8] {
        (**self).output_bytes()
    }
}

/// Write text (or bytes) to stdout (whole, under the lock, so lines of parallel workers
/// do not mix). A failure is kept for [`stdout_failure`] and ends the output, not the
/// command.
pub fn out<T: Output + ?Sized>(text: &T) {
    let text = text.output_bytes();
    if STDOUT_FAILURE.get().is_some() || text.is_empty() {
        return;
    }
    let mut stdout = io::stdout().lock();
    if let Err(e) = stdout.write_all(text).and_then(|()| stdout.flush()) {
        let _ = STDOUT_FAILURE.set(e);
    }
}

/// Why stdout could not be written, if it could not: `BrokenPipe` when the reader went
/// away (the command then ends quietly, as `ls | head` does).
pub fn stdout_failure() -> Option<&'static io::Error> {
    STDOUT_FAILURE.get()
}

/// stdout as an `io::Write` for what streams (`logs -f`): every write goes through
/// [`out`]; once stdout has failed, writes fail too, so a follower stops.
pub struct Stdout;

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        out(buf);
        match stdout_failure() {
            Some(e) => Err(io::Error::new(e.kind(), e.to_string())),
            None => Ok(buf.len()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Write a line to stderr; a stderr that cannot be written has no one to tell.
pub fn err(line: &str) {
    let _ = writeln!(io::stderr().lock(), "{line}");
}

/// `servicectl: SERVICE: what happened — what to do`, as every error looks.
pub fn error_line(e: &Error, style: Style) -> String {
    error_text(&e.to_string(), style)
}

/// An error's text (`SERVICE: what happened — what to do`) as the line stderr gets.
pub fn error_text(text: &str, style: Style) -> String {
    format!("{} {text}", style.red("servicectl:"))
}

/// `servicectl: warning: …`.
pub fn warning_line(text: &str, style: Style) -> String {
    format!("{} {text}", style.yellow("servicectl: warning:"))
}

/// Print a warning the way every servicectl warning looks.
pub fn warning(text: &str) {
    err(&warning_line(text, Style::for_stderr()));
}

/// Print an error the way every servicectl error looks.
pub fn error(e: &Error) {
    err(&error_line(e, Style::for_stderr()));
}

/// A JSON document as `--json` prints it: pretty, one newline at the end.
pub fn json_text(value: &impl serde::Serialize) -> String {
    format!(
        "{}\n",
        serde_json::to_string_pretty(value).expect("serialisable")
    )
}

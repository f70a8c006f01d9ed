//! Everything servicectl shows, in one place: the library returns values ([`Outcome`],
//! reports, statuses) and never prints; each report has exactly one text form and one
//! JSON form here ([`Report`]), so `cli::run` parses, calls the library and hands the
//! value to [`show`], and the output of a command can be changed (and tested) without
//! touching what the command does.
//!
//! Human output: aligned tables ([`table`]), colour only on a terminal with NO_COLOR
//! unset ([`style`]), progress on multi-service operations ([`progress`]), errors as
//! `servicectl: SERVICE: what happened — what to do`. Text goes to stdout, errors and
//! warnings to stderr; `--json` prints one document on stdout. Every byte is written by
//! [`sink`], never with `print!` (a closed pipe must not panic the command).
//!
//! JSON field names are the same across commands (docs/cli.md): a service is always
//! `"service"`, a process `"pid"`, a failure `"error"`.
//!
//! [`Outcome`]: crate::service::outcome::Outcome

pub mod boot;
pub mod commands;
pub mod devloop;
pub mod edit;
pub mod progress;
pub mod sink;
pub mod status;
pub mod style;
pub mod table;

pub use progress::Progress;
pub use sink::{Output, err, error, out, stdout_failure, warning};
pub use style::Style;

use crate::error::Error;
use serde_json::json;

/// One piece of what a command shows, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    /// To stdout, as it is (text or bytes).
    Out(Vec<u8>),
    /// To stderr: `servicectl: SERVICE: …`.
    Error(String),
    /// To stderr: `servicectl: warning: …`.
    Warning(String),
    /// To stderr, as it is (a hint).
    Note(String),
}

/// What a command shows: stdout and stderr pieces in the order they are written.
/// stderr is painted when written (its colour depends on stderr, not stdout).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shown {
    pieces: Vec<Piece>,
}

impl Shown {
    pub fn out<T: Output + ?Sized>(&mut self, text: &T) -> &mut Shown {
        let bytes = text.output_bytes();
        if !bytes.is_empty() {
            self.pieces.push(Piece::Out(bytes.to_vec()));
        }
        self
    }

    pub fn error(&mut self, e: &Error) -> &mut Shown {
        self.pieces.push(Piece::Error(e.to_string()));
        self
    }

    pub fn warning(&mut self, text: &str) -> &mut Shown {
        self.pieces.push(Piece::Warning(text.to_string()));
        self
    }

    pub fn warnings(&mut self, texts: &[String]) -> &mut Shown {
        texts.iter().for_each(|w| {
            self.warning(w);
        });
        self
    }

    pub fn note(&mut self, text: &str) -> &mut Shown {
        self.pieces.push(Piece::Note(text.to_string()));
        self
    }

    /// Everything for stdout, joined.
    pub fn stdout(&self) -> Vec<u8> {
        self.pieces
            .iter()
            .filter_map(|p| match p {
                Piece::Out(b) => Some(b.as_slice()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .concat()
    }

    /// The stderr lines, as written without colour.
    pub fn stderr(&self) -> String {
        self.stderr_lines(Style::PLAIN)
            .into_iter()
            .map(|l| l + "\n")
            .collect()
    }

    fn stderr_lines(&self, style: Style) -> Vec<String> {
        self.pieces
            .iter()
            .filter_map(|p| match p {
                Piece::Out(_) => None,
                Piece::Error(text) => Some(sink::error_text(text, style)),
                Piece::Warning(text) => Some(sink::warning_line(text, style)),
                Piece::Note(text) => Some(text.clone()),
            })
            .collect()
    }

    /// Write each piece through the sink, in order.
    pub fn write(&self) {
        let err_style = Style::for_stderr();
        for piece in &self.pieces {
            match piece {
                Piece::Out(bytes) => out(bytes),
                Piece::Error(text) => err(&sink::error_text(text, err_style)),
                Piece::Warning(text) => err(&sink::warning_line(text, err_style)),
                Piece::Note(text) => err(text),
            }
        }
    }
}

/// A value a command shows: one JSON document for `--json`, one text form otherwise.
pub trait Report {
    /// The document `--json` prints ([`sink::json_text`] of a value; a struct keeps the
    /// order of its fields).
    fn json(&self) -> String;

    /// The text form: stdout text, and errors and warnings for stderr, in order.
    fn text(&self, style: Style, shown: &mut Shown);

    /// What goes to stderr beside the JSON document (errors and warnings it does not
    /// carry); nothing unless a report says otherwise.
    fn json_notes(&self, _shown: &mut Shown) {}
}

/// What `report` shows: the JSON document (and its notes), or the text form.
pub fn shown(report: &(impl Report + ?Sized), json: bool, style: Style) -> Shown {
    let mut shown = Shown::default();
    if json {
        report.json_notes(&mut shown);
        shown.out(&report.json());
    } else {
        report.text(style, &mut shown);
    }
    shown
}

/// Show a command's report: the one call `cli::run` makes per command.
pub fn show(report: &(impl Report + ?Sized), json: bool) {
    shown(report, json, Style::for_stdout()).write();
}

/// A command that failed as a whole: `{"error": …}` with `--json` (and the error on
/// stderr in both forms).
pub struct Failed<'a>(pub &'a Error);

impl Report for Failed<'_> {
    fn json(&self) -> String {
        sink::json_text(&json!({"error": self.0.to_string()}))
    }
    fn text(&self, _: Style, shown: &mut Shown) {
        shown.error(self.0);
    }
    fn json_notes(&self, shown: &mut Shown) {
        shown.error(self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::status::PingResult;

    /// One report, two forms: the text with its errors on stderr, or one JSON document
    /// with the errors still on stderr.
    #[test]
    fn a_report_has_one_text_form_and_one_json_form() {
        let results = vec![
            (
                "web".to_string(),
                Ok(PingResult {
                    name: "web".into(),
                    ok: true,
                    by: "status".into(),
                    detail: "running (pid 7)".into(),
                }),
            ),
            (
                "db".to_string(),
                Err(Error::runtime("cannot ping").with_service("db")),
            ),
        ];
        let report = status::Pings {
            results: &results,
            warnings: &["db: something to know".to_string()],
            role_config: "/p/etc/roles/dev/config".into(),
        };
        let text = shown(&report, false, Style::PLAIN);
        assert_eq!(
            String::from_utf8(text.stdout()).unwrap(),
            "web: ok (status): running (pid 7)\n"
        );
        assert_eq!(
            text.stderr(),
            "servicectl: warning: db: something to know\nservicectl: db: cannot ping\n"
        );
        let json = shown(&report, true, Style::PLAIN);
        assert_eq!(
            String::from_utf8(json.stdout()).unwrap(),
            "[\n  {\n    \"by\": \"status\",\n    \"detail\": \"running (pid 7)\",\n    \"ok\": true,\n    \"service\": \"web\"\n  },\n  {\n    \"error\": \"db: cannot ping\",\n    \"ok\": false,\n    \"service\": \"db\"\n  }\n]\n"
        );
        assert_eq!(json.stderr(), text.stderr());
    }
}

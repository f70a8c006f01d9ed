//! Colour: only on a terminal, never with NO_COLOR.

use std::io::IsTerminal;

/// How to write: colour or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    pub colour: bool,
}

impl Style {
    /// No colour at all (pipes, files, tests).
    pub const PLAIN: Style = Style { colour: false };

    /// Colour when stdout is a terminal and NO_COLOR is unset (or empty).
    pub fn for_stdout() -> Style {
        Style::when(std::io::stdout().is_terminal())
    }

    /// Colour when stderr is a terminal and NO_COLOR is unset (or empty).
    pub fn for_stderr() -> Style {
        Style::when(std::io::stderr().is_terminal())
    }

    fn when(terminal: bool) -> Style {
        Style {
            colour: terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        }
    }

    pub fn paint(&self, code: &str, text: &str) -> String {
        if self.colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    pub fn green(&self, t: &str) -> String {
        self.paint("32", t)
    }
    pub fn red(&self, t: &str) -> String {
        self.paint("31", t)
    }
    pub fn yellow(&self, t: &str) -> String {
        self.paint("33", t)
    }

    /// A service's name in a colour of its own (for `logs` of several services): one of
    /// six, picked by a hash of the name (FNV-1a, its high half folded into the low one
    /// so that every byte counts; stable across runs and builds).
    pub fn service_name(&self, name: &str) -> String {
        const COLOURS: [&str; 6] = ["36", "33", "32", "35", "34", "31"];
        let hash = name.bytes().fold(0x811c_9dc5_u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        });
        let hash = hash ^ (hash >> 16);
        self.paint(COLOURS[hash as usize % COLOURS.len()], name)
    }
}

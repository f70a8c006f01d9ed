//! What is wrong with a service's configuration: one [`Problem`] type for its settings
//! and its typed variables, and one [`summary`] of several as the error the user reads.

use crate::config::bytes;
use crate::error::{self, Error};
use serde::Serialize;
use std::ffi::OsString;
use std::fmt::{self, Write as _};

/// One thing wrong with one setting or typed variable of one service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub service: String,
    /// The typed variable it is about (`VAR (description) = "value": rule`); None for a
    /// setting, whose rule is the whole message (`service_x="v" (set in FILE): rule`).
    pub variable: Option<String>,
    pub description: Option<String>,
    /// The offending value (any bytes); None when the variable is unset or the problem is
    /// in its spec.
    #[serde(serialize_with = "bytes::serialize_option")]
    pub value: Option<OsString>,
    /// The rule it broke, with where the value came from.
    pub rule: String,
}

impl Problem {
    /// A problem of a setting (or of several together): the message says it all.
    pub fn of_setting(service: &str, message: String) -> Problem {
        Problem {
            service: service.to_string(),
            variable: None,
            description: None,
            value: None,
            rule: message,
        }
    }

    /// The message without the service.
    pub fn detail(&self) -> String {
        let Some(variable) = &self.variable else {
            return self.rule.clone();
        };
        let mut text = variable.clone();
        if let Some(d) = &self.description {
            write!(text, " ({})", crate::text::one_line(d)).expect("write to String");
        }
        if let Some(v) = &self.value {
            write!(text, " = {v:?}").expect("write to String");
        }
        write!(text, ": {}", self.rule).expect("write to String");
        text
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.service, self.detail())
    }
}

/// Every problem of one service as one error, None when there are none: the one
/// problem alone, or `N problems with WHAT:` and a line each; `hint` says what to do.
pub fn summary(service: &str, what: &str, problems: &[Problem], hint: String) -> Option<Error> {
    let message = match problems {
        [] => return None,
        [one] => one.detail(),
        many => {
            let lines: Vec<String> = many.iter().map(Problem::detail).collect();
            error::list_text(Some(what), &lines)
        }
    };
    Some(Error::config(message).with_service(service).with_hint(hint))
}

//! The one rule for every name servicectl joins onto a path: service names, package
//! names and versions, run names (`service_run_name`), PLAYPEN_TAG, roles and clusters.
//! A name that passes it is one plain file name: it cannot climb out of the directory it
//! is joined to, hide, pass for an option, or overflow a file name.
//!
//! Check a name with this rule *before* joining it onto a path, never after.

use crate::error::{Error, ErrorKind, Result};

/// The longest name, in bytes. `$RUN_NAME-$PLAYPEN_TAG` plus servicectl's suffixes
/// (`.output`, temporary names) stays far below the 255 bytes of a file name.
pub const MAX_LEN: usize = 64;

/// The rule, for messages.
pub const RULE: &str = "a name is 1 to 64 of the characters A-Z a-z 0-9 - _ . +, does not start with '-' or '.', and has no '/' and no '..'";

/// Why `name` breaks the rule, or None when it is a good name.
pub fn problem(name: &str) -> Option<&'static str> {
    if name.len() > MAX_LEN {
        return Some("it is longer than 64 bytes");
    }
    problem_of_any_length(name)
}

/// The longest linkfarm name: `$RUN_NAME-$PLAYPEN_TAG`, two names and a dash.
pub const MAX_LINK_LEN: usize = 2 * MAX_LEN + 1;

/// Why a linkfarm name (`$RUN_NAME` or `$RUN_NAME-$PLAYPEN_TAG`) is not one, or None.
pub fn link_problem(name: &str) -> Option<&'static str> {
    if name.len() > MAX_LINK_LEN {
        return Some("it is longer than 129 bytes");
    }
    problem_of_any_length(name)
}

fn problem_of_any_length(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("it is empty");
    }
    if name.contains('/') {
        return Some("it contains '/'");
    }
    if name.contains("..") {
        return Some("it contains '..'");
    }
    if name.starts_with('-') {
        return Some("it starts with '-'");
    }
    if name.starts_with('.') {
        return Some("it starts with '.'");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.+".contains(&b))
    {
        return Some("it contains a character other than A-Z a-z 0-9 - _ . +");
    }
    None
}

/// Does `name` follow the rule?
pub fn is_valid(name: &str) -> bool {
    problem(name).is_none()
}

/// `name` quoted for a message, at most about 80 characters of it (a name read from
/// the command line or a file may be anything, of any length).
pub fn shown(name: &str) -> String {
    const MOST: usize = 80;
    if name.chars().count() <= MOST {
        return format!("{name:?}");
    }
    let head: String = name.chars().take(MOST).collect();
    format!("{head:?}… ({} bytes)", name.len())
}

/// A service name given to a command: refused, as an unknown service (exit 4), unless
/// it follows the rule. Call before the name goes into any path.
pub fn check_service(name: &str) -> Result<()> {
    match problem(name) {
        None => Ok(()),
        Some(why) => Err(Error::new(
            ErrorKind::UnknownService,
            format!("unknown service: not a service name ({why})"),
        )
        .with_service(
            if name.len() <= MAX_LEN && !name.contains(char::is_control) {
                name.to_string()
            } else {
                shown(name)
            },
        )
        .with_hint(format!(
            "{RULE}; `servicectl status` lists the playpen's services"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_names_pass() {
        for name in [
            "web",
            "worker-2",
            "svc-000",
            "httpd-python",
            "a.b",
            "c++",
            "x_1",
            "1.0-2",
        ] {
            assert_eq!(problem(name), None, "{name}");
        }
        assert!(is_valid(&"a".repeat(64)));
    }

    #[test]
    fn names_that_could_leave_a_directory_fail() {
        for name in [
            "",
            "..",
            ".",
            ".hidden",
            "-rf",
            "a/b",
            "/tmp/x/victim",
            "sub/../../x",
            "a..b",
            "sp ace",
            "new\nline",
            "nul\0",
            "é",
        ] {
            assert!(problem(name).is_some(), "{name:?}");
        }
        assert!(problem(&"a".repeat(65)).is_some());
        assert!(problem(&"a".repeat(256)).is_some());
    }

    #[test]
    fn long_names_are_shown_shortened() {
        let long = "x".repeat(70_000);
        let shown = shown(&long);
        assert!(shown.len() < 120, "{shown}");
        assert!(shown.contains("70000 bytes"), "{shown}");
        let err = check_service(&long).unwrap_err();
        assert!(err.to_string().len() < 600, "{err}");
        assert_eq!(err.kind, ErrorKind::UnknownService);
    }
}

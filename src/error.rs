//! One error type for the whole crate, shaped like the message the user reads:
//! `servicectl: SERVICE: what happened — what to do`.

use std::fmt;
use std::path::Path;

/// What kind of failure this is; the CLI maps it to an exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad configuration, bad input, missing files: the user must fix something.
    Config,
    /// A service name that no package or project directory provides (LSB exit 4 for status).
    UnknownService,
    /// No playpen could be found or made.
    NoPlaypen,
    /// A process did not behave: failed start, exec failure, hook failure.
    Runtime,
    /// An operating-system call failed (permissions, disk).
    Io,
    /// Not attempted because of another service's problem (held back, or a dependency
    /// failed); the other service's error says what to fix.
    NotAttempted,
    /// The role lists no services (no playpen_services) and none were named.
    NoServicesListed,
}

#[derive(Debug, Clone)]
pub struct Error {
    pub kind: ErrorKind,
    /// The service this is about, if any.
    pub service: Option<String>,
    /// What happened, naming the file (and line) where one is involved.
    pub message: String,
    /// What the user can do about it.
    pub hint: Option<String>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            service: None,
            message: message.into(),
            hint: None,
        }
    }

    pub fn config(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Config, message)
    }

    pub fn runtime(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Runtime, message)
    }

    /// An I/O failure on `path`, with the OS reason.
    pub fn io(action: &str, path: &Path, err: std::io::Error) -> Self {
        let hint = match err.kind() {
            std::io::ErrorKind::PermissionDenied => Some(format!(
                "check the permissions of {} (and its parent directories)",
                path.display()
            )),
            std::io::ErrorKind::StorageFull => Some("free some disk space".to_string()),
            std::io::ErrorKind::ReadOnlyFilesystem => Some(format!(
                "the file system holding {} is mounted read-only: remount it read-write, or use a playpen on a writable file system",
                path.display()
            )),
            _ => None,
        };
        Error {
            kind: ErrorKind::Io,
            service: None,
            message: format!("cannot {action} {}: {err}", path.display()),
            hint,
        }
    }

    pub fn with_service(mut self, service: impl Into<String>) -> Self {
        if self.service.is_none() {
            self.service = Some(service.into());
        }
        self
    }

    /// One error for several problems of one service: the single one as it is, or a
    /// list with each message and hint on its own line.
    pub fn all(service: &str, mut errors: Vec<Error>) -> Option<Error> {
        match errors.len() {
            0 => None,
            1 => errors.pop(),
            n => {
                debug_assert_eq!(n, errors.len());
                let kind = errors[0].kind;
                let lines: Vec<String> = errors.iter().map(Error::detail).collect();
                Some(Error {
                    kind,
                    service: Some(service.to_string()),
                    message: list_text(None, &lines),
                    hint: None,
                })
            }
        }
    }

    /// This error, with what followed from it (such as "package X was not installed")
    /// added to its message: a new error, so every message is complete when built.
    pub fn followed_by(self, consequence: impl fmt::Display) -> Error {
        Error {
            message: format!("{}; {consequence}", self.message),
            ..self
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// The one form of a list of problems: `N problems[ with WHAT]:` and each on a line of
/// its own, indented (its own further lines indented more).
pub fn list_text(what: Option<&str>, lines: &[String]) -> String {
    let mut text = format!("{} problems", lines.len());
    if let Some(what) = what {
        text.push_str(" with ");
        text.push_str(what);
    }
    text.push(':');
    for line in lines {
        text.push_str("\n  ");
        text.push_str(&line.replace('\n', "\n    "));
    }
    text
}

impl Error {
    /// What happened and what to do, without the service (for lists under its name).
    pub fn detail(&self) -> String {
        match &self.hint {
            Some(hint) => format!("{} — {hint}", self.message),
            None => self.message.clone(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(service) = &self.service {
            write!(f, "{service}: ")?;
        }
        f.write_str(&self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, " — {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_hints_say_what_is_wrong() {
        let path = Path::new("/p/var/run/web.pid");
        let rofs = Error::io(
            "write",
            path,
            std::io::Error::from_raw_os_error(libc::EROFS),
        );
        let hint = rofs.hint.unwrap();
        assert!(hint.contains("read-only"), "{hint}");
        assert!(!hint.contains("chmod"), "{hint}");
        let denied = Error::io(
            "write",
            path,
            std::io::Error::from_raw_os_error(libc::EACCES),
        );
        assert!(denied.hint.unwrap().contains("permissions"));
    }
}

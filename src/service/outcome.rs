//! What an operation on one service did, as a value: the CLI renders it, JSON carries
//! it, upgrades sort services by it.

/// What an operation did. Its serde form (`{"result": "started", "pid": 12}`) is also
/// what the supervisor sends over the control socket.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum Outcome {
    Started {
        pid: Option<i32>,
    },
    AlreadyRunning {
        pid: Option<i32>,
    },
    /// `warning`: a pre_stop or post_stop hook failed; the stop went ahead.
    Stopped {
        pid: Option<i32>,
        #[serde(default)]
        warning: Option<String>,
    },
    AlreadyStopped,
    Reloaded {
        pid: i32,
    },
    Restarted {
        pid: Option<i32>,
    },
    /// A one-shot ran to completion with status 0 (`status`: how it ended).
    Done {
        status: String,
    },
    /// `start` of a one-shot that is done already: not run again (`at`: Unix time it
    /// ended).
    AlreadyDone {
        status: String,
        at: f64,
    },
    /// restart found a changed service_filedep with service_stop_on_filedep=1.
    StoppedForFiledep {
        pid: i32,
        file: String,
    },
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pid = |p: &Option<i32>| p.map(|p| format!(" (pid {p})")).unwrap_or_default();
        match self {
            Outcome::Started { pid: p } => write!(f, "started{}", pid(p)),
            Outcome::AlreadyRunning { pid: p } => write!(f, "already running{}", pid(p)),
            Outcome::Stopped { pid: p, warning } => {
                write!(f, "stopped{}", pid(p))?;
                match warning {
                    Some(w) => write!(f, " (but {w})"),
                    None => Ok(()),
                }
            }
            Outcome::AlreadyStopped => f.write_str("already stopped"),
            Outcome::Reloaded { pid } => write!(f, "reloaded with SIGHUP (pid {pid})"),
            Outcome::Restarted { pid: p } => write!(f, "restarted{}", pid(p)),
            Outcome::Done { status } => write!(f, "done ({status})"),
            Outcome::AlreadyDone { status, at } => write!(
                f,
                "already done ({status} at {})",
                crate::text::local_time(*at)
            ),
            Outcome::StoppedForFiledep { pid, file } => write!(
                f,
                "stopped (pid {pid}), not restarted: {file} changed and service_stop_on_filedep=1; start it when ready"
            ),
        }
    }
}

impl Outcome {
    /// The word JSON carries (`result`).
    pub fn word(&self) -> &'static str {
        match self {
            Outcome::Started { .. } => "started",
            Outcome::AlreadyRunning { .. } => "already-running",
            Outcome::Stopped { .. } => "stopped",
            Outcome::AlreadyStopped => "already-stopped",
            Outcome::Reloaded { .. } => "reloaded",
            Outcome::Restarted { .. } => "restarted",
            Outcome::StoppedForFiledep { .. } => "stopped-for-filedep",
            Outcome::Done { .. } => "done",
            Outcome::AlreadyDone { .. } => "already-done",
        }
    }

    /// The service's process: the one now running, or the one that was stopped.
    pub fn pid(&self) -> Option<i32> {
        match self {
            Outcome::Started { pid }
            | Outcome::AlreadyRunning { pid }
            | Outcome::Stopped { pid, .. }
            | Outcome::Restarted { pid } => *pid,
            Outcome::Reloaded { pid } | Outcome::StoppedForFiledep { pid, .. } => Some(*pid),
            Outcome::AlreadyStopped | Outcome::Done { .. } | Outcome::AlreadyDone { .. } => None,
        }
    }

    /// The state in a few words, without PID or details: what a summary groups by.
    pub fn summary_label(&self) -> &'static str {
        match self {
            Outcome::Started { .. } => "started",
            Outcome::AlreadyRunning { .. } => "already running",
            Outcome::Stopped { .. } => "stopped",
            Outcome::AlreadyStopped => "already stopped",
            Outcome::Reloaded { .. } => "reloaded",
            Outcome::Restarted { .. } => "restarted",
            Outcome::StoppedForFiledep { .. } => "stopped, not restarted",
            Outcome::Done { .. } => "done",
            Outcome::AlreadyDone { .. } => "already done",
        }
    }

    /// The operation found the service as it wanted it and left it alone.
    pub fn is_unchanged(&self) -> bool {
        matches!(
            self,
            Outcome::AlreadyRunning { .. } | Outcome::AlreadyStopped | Outcome::AlreadyDone { .. }
        )
    }

    /// The operation did what it was asked (started, stopped, restarted, reloaded).
    pub fn is_done_as_asked(&self) -> bool {
        matches!(
            self,
            Outcome::Started { .. }
                | Outcome::Stopped { .. }
                | Outcome::Restarted { .. }
                | Outcome::Reloaded { .. }
                | Outcome::Done { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_and_label_need_no_parsing() {
        let running = Outcome::AlreadyRunning { pid: Some(12) };
        assert_eq!(running.pid(), Some(12));
        assert_eq!(running.summary_label(), "already running");
        assert_eq!(running.to_string(), "already running (pid 12)");
        assert!(running.is_unchanged());
        assert_eq!(Outcome::AlreadyStopped.pid(), None);
        assert_eq!(Outcome::AlreadyStopped.summary_label(), "already stopped");
        let reloaded = Outcome::Reloaded { pid: 7 };
        assert_eq!(reloaded.pid(), Some(7));
        assert!(reloaded.is_done_as_asked() && !reloaded.is_unchanged());
        let filedep = Outcome::StoppedForFiledep {
            pid: 9,
            file: "etc/x".into(),
        };
        assert_eq!(filedep.pid(), Some(9));
        assert!(!filedep.is_done_as_asked() && !filedep.is_unchanged());
    }
}

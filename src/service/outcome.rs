//! What an operation on one service did, as a value: the CLI renders it, JSON carries
//! it, upgrades sort services by it.

/// What an operation did.
#[derive(Debug, Clone, PartialEq)]
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
        warning: Option<String>,
    },
    AlreadyStopped,
    Reloaded {
        pid: i32,
    },
    Restarted {
        pid: Option<i32>,
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
            Outcome::StoppedForFiledep { pid, file } => write!(
                f,
                "stopped (pid {pid}), not restarted: {file} changed and service_stop_on_filedep=1; start it when ready"
            ),
        }
    }
}

impl Outcome {
    pub fn word(&self) -> &'static str {
        match self {
            Outcome::Started { .. } => "started",
            Outcome::AlreadyRunning { .. } => "already-running",
            Outcome::Stopped { .. } => "stopped",
            Outcome::AlreadyStopped => "already-stopped",
            Outcome::Reloaded { .. } => "reloaded",
            Outcome::Restarted { .. } => "restarted",
            Outcome::StoppedForFiledep { .. } => "stopped-for-filedep",
        }
    }
}

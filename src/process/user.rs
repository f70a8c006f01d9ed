//! Running a service's processes as another user (§13.1): who that is, looked up once
//! when the settings are read, and becoming them between fork and exec.
//!
//! Package managers run their hooks as root, so servicectl often runs as root; a
//! service with `service_user` must not. Every launcher (the program, one-shots, hooks,
//! scripts, pings and health checks, cron runs and inetd handlers) calls
//! [`RunAs::assume`] in the child: setgroups (the groups initgroups would give),
//! setgid, setuid, in that order, since after setuid the others are not allowed. The
//! groups are looked up before the fork: NSS is not async-signal-safe.

use crate::error::{Error, Result};
use std::ffi::{CString, OsString};
use std::path::{Path, PathBuf};

/// Which of service_user and service_group names nobody, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unknown {
    User(String),
    Group(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    pub user: String,
    pub uid: u32,
    pub group: String,
    pub gid: u32,
    /// The supplementary groups (getgrouplist of the user and `gid`).
    pub groups: Vec<u32>,
    pub home: PathBuf,
}

impl RunAs {
    /// The passwd entry of `user` (a name, or a numeric uid) and the group `group`
    /// (default: the user's primary group). Err: which of the two is wrong, and why.
    pub fn lookup(user: &str, group: Option<&str>) -> std::result::Result<RunAs, Unknown> {
        use nix::unistd::{Gid, Group, Uid, User};
        let entry = match user.parse::<u32>() {
            Ok(uid) => User::from_uid(Uid::from_raw(uid)),
            Err(_) => User::from_name(user),
        }
        .map_err(|e| Unknown::User(format!("cannot look up user {user:?}: {e}")))?
        .ok_or_else(|| {
            Unknown::User(format!(
                "there is no user {user:?} on this machine (getent passwd {user} finds nothing)"
            ))
        })?;
        let group_entry = match group {
            None => Group::from_gid(entry.gid),
            Some(g) => match g.parse::<u32>() {
                Ok(gid) => Group::from_gid(Gid::from_raw(gid)),
                Err(_) => Group::from_name(g),
            },
        }
        .map_err(|e| {
            Unknown::Group(format!(
                "cannot look up group {:?}: {e}",
                group.unwrap_or("")
            ))
        })?;
        let (group_name, gid) = match (group_entry, group) {
            (Some(g), _) => (g.name, g.gid),
            // A primary gid without a group entry still works as a gid.
            (None, None) => (entry.gid.to_string(), entry.gid),
            (None, Some(g)) => {
                return Err(Unknown::Group(format!(
                    "there is no group {g:?} on this machine (getent group {g} finds nothing)"
                )));
            }
        };
        let name = CString::new(entry.name.as_bytes())
            .map_err(|_| Unknown::User("its name holds a NUL byte".to_string()))?;
        let groups = nix::unistd::getgrouplist(&name, gid)
            .map(|gs| gs.into_iter().map(Gid::as_raw).collect())
            .unwrap_or_else(|_| vec![gid.as_raw()]);
        Ok(RunAs {
            user: entry.name,
            uid: entry.uid.as_raw(),
            group: group_name,
            gid: gid.as_raw(),
            groups,
            home: entry.dir,
        })
    }

    /// Why this servicectl cannot run processes as this user, if it cannot: only root
    /// can become another user.
    pub fn unreachable(&self) -> Option<String> {
        let me = nix::unistd::geteuid();
        if me.is_root() || (me.as_raw() == self.uid && nix::unistd::getegid().as_raw() == self.gid)
        {
            return None;
        }
        let who = nix::unistd::User::from_uid(me)
            .ok()
            .flatten()
            .map_or_else(|| format!("uid {me}"), |u| u.name);
        Some(format!(
            "servicectl runs as {who}, not root, and only root can run a service as user {} (group {})",
            self.user, self.group
        ))
    }

    /// HOME, USER and LOGNAME of the user, for the service's environment.
    pub fn env(&self) -> [(&'static str, OsString); 3] {
        [
            ("HOME", self.home.clone().into_os_string()),
            ("USER", self.user.clone().into()),
            ("LOGNAME", self.user.clone().into()),
        ]
    }

    /// Become the user, in a child between fork and exec. Nothing when this process is
    /// not root (it then is the user already: [`RunAs::unreachable`] refused others).
    ///
    /// # Safety
    /// Only system calls on memory prepared before the fork: fit for a forked child.
    pub unsafe fn assume(&self) -> std::io::Result<()> {
        // SAFETY: geteuid, setgroups, setgid and setuid are async-signal-safe system
        // calls; the group list was allocated before the fork.
        unsafe {
            if libc::geteuid() != 0 {
                return Ok(());
            }
            if libc::setgroups(self.groups.len(), self.groups.as_ptr()) != 0
                || libc::setgid(self.gid) != 0
                || libc::setuid(self.uid) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    }

    /// Give `path` to the user (a file the service must write itself). Nothing when
    /// servicectl is not root: then the file is the caller's, who is the user.
    pub fn give(&self, path: &Path) -> Result<()> {
        if !nix::unistd::geteuid().is_root() {
            return Ok(());
        }
        std::os::unix::fs::lchown(path, Some(self.uid), Some(self.gid))
            .map_err(|e| Error::io(&format!("give to user {}", self.user), path, e))
    }
}

/// [`RunAs::assume`] of an optional user (the launchers' form).
///
/// # Safety
/// As [`RunAs::assume`].
pub unsafe fn assume(user: Option<&RunAs>) -> std::io::Result<()> {
    match user {
        // SAFETY: the caller is a forked child, as assume requires.
        Some(user) => unsafe { user.assume() },
        None => Ok(()),
    }
}

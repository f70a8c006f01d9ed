//! The processes the driver watches: supervised processes and cron runs or inetd
//! handlers by pidfd, orphans reaped, and shutdown's sweep of what is left.

use super::*;

impl Driver {
    /// Watch process `pid` of service `i` with a pidfd. Without one (no descriptor to
    /// spare) a child of ours is still heard of through SIGCHLD (`reap_orphans`).
    pub(super) fn watch(&mut self, i: Sid, pid: i32) {
        self.unwatch(i);
        let fd = proc::pidfd(pid).map(Arc::new);
        let alive =
            fd.is_some() || nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok();
        if !alive {
            // Gone already (and reaped by someone else).
            self.push(Event::ProcessExited {
                service: i,
                pid,
                status: "exited".into(),
            });
            return;
        }
        let generation = self.next_generation & 0xffff_ffff;
        self.next_generation += 1;
        if let Some(fd) = &fd {
            let token = PIDFD | ((i as u64) << 32) | generation;
            if let Err(e) = self
                .epoll
                .add(fd.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, token))
            {
                log(&format!(
                    "{}: cannot watch pid {pid}: {e}",
                    self.machine.services[i].name
                ));
            }
            crate::process::census::watch_main(
                &self.playpen,
                pid,
                &self.machine.services[i].name,
                Arc::clone(fd),
            );
        } else {
            log(&format!(
                "{}: no pidfd for pid {pid} (out of descriptors?): its exit is heard of by SIGCHLD",
                self.machine.services[i].name
            ));
        }
        self.watches.insert(
            i,
            Watch {
                pid,
                fd,
                generation,
            },
        );
        self.push(Event::Watched {
            service: i,
            pid,
            start_ticks: proc::start_ticks(pid),
        });
    }

    pub(super) fn unwatch(&mut self, i: Sid) {
        if let Some(w) = self.watches.remove(&i)
            && let Some(fd) = &w.fd
        {
            crate::process::census::forget_main(&self.playpen, w.pid);
            let _ = self.epoll.delete(fd.as_fd());
        }
    }

    /// A supervised process's pidfd is readable: it exited.
    pub(super) fn on_pidfd(&mut self, i: Sid, generation: u64) {
        let Some(w) = self.watches.get(&i) else {
            return;
        };
        if w.generation != generation {
            return;
        }
        let pid = w.pid;
        let Some(fd) = &w.fd else {
            return;
        };
        // Not our child (adopted): its parent reaps it.
        let Some(status) = reap(
            fd,
            pid,
            "exited (status unknown: it is not the supervisor's child)",
        ) else {
            return;
        };
        self.unwatch(i);
        self.push(Event::ProcessExited {
            service: i,
            pid,
            status,
        });
    }

    pub(super) fn watch_child(&mut self, i: Sid, pid: i32) {
        let fd = self
            .spawned
            .get_mut(&pid)
            .and_then(|l| l.pidfd.take())
            .or_else(|| proc::pidfd(pid));
        match fd {
            Some(fd) => {
                if let Err(e) = self.epoll.add(
                    fd.as_fd(),
                    EpollEvent::new(EpollFlags::EPOLLIN, CHILD | pid as u64),
                ) {
                    log(&format!("cannot watch pid {pid}: {e}"));
                }
                self.children.insert(pid, Child { service: i, fd });
            }
            None => self.push(Event::ChildExited {
                service: Some(i),
                pid,
                status: "exited".into(),
            }),
        }
    }

    pub(super) fn on_child(&mut self, pid: i32) {
        let Some(child) = self.children.get(&pid) else {
            return;
        };
        let Some(status) = reap(&child.fd, pid, "exited") else {
            return;
        };
        self.child_gone(pid, status);
    }

    pub(super) fn child_gone(&mut self, pid: i32, status: String) {
        // Reaped: it has exec'd or exited, so what it read may go.
        self.spawned.remove(&pid);
        let service = self.children.remove(&pid).map(|child| {
            let _ = self.epoll.delete(child.fd.as_fd());
            child.service
        });
        self.push(Event::ChildExited {
            service,
            pid,
            status,
        });
    }

    /// Reap exited children that are not watched processes (orphans reparented to
    /// us), but only while no job runs: a worker may be waiting for its own child.
    pub(super) fn reap_orphans(&mut self) {
        if self.machine.jobs_running() > 0 {
            self.orphans_waiting = true;
            return;
        }
        self.orphans_waiting = false;
        loop {
            match nix::sys::wait::waitid(Id::All, WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG) {
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(status) => {
                    let Some(pid) = status.pid().map(|p| p.as_raw()) else {
                        break;
                    };
                    self.spawned.remove(&pid);
                    if self.children.contains_key(&pid) {
                        self.child_gone(pid, describe_wait(status));
                        continue;
                    }
                    let watched = self
                        .watches
                        .iter()
                        .find(|(_, w)| w.pid == pid)
                        .map(|(&i, _)| i);
                    if let Some(i) = watched {
                        self.unwatch(i);
                        self.push(Event::ProcessExited {
                            service: i,
                            pid,
                            status: describe_wait(status),
                        });
                    }
                }
            }
        }
    }

    /// Shutdown's last step: every check ends, and every process still marked as the
    /// playpen's (a service whose stop failed, a daemon's stray child, a run the
    /// machine lost track of) is killed with its group.
    pub(super) fn sweep(&mut self) {
        crate::service::hooks::end_checks(None);
        let census = crate::process::census::Census::scan(&self.playpen);
        let left: Vec<String> = census
            .members()
            .map(|m| {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(m.pid), Signal::SIGKILL);
                format!("{} (pid {})", m.service, m.pid)
            })
            .collect();
        if !left.is_empty() {
            let text = format!(
                "killed what was left of the playpen: {}",
                crate::text::short_list(&left, 10)
            );
            log(&text);
            self.swept = Some(text);
        }
    }
}

/// How the process of pidfd `fd` ended, reaping it; None while it still runs (a
/// spurious wake: a pidfd is readable only once the process exits). `unknown`: what to
/// say when it cannot be reaped here (not a child of ours).
fn reap(fd: &OwnedFd, pid: i32, unknown: &str) -> Option<String> {
    match nix::sys::wait::waitid(
        Id::PIDFd(fd.as_fd()),
        WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG,
    ) {
        Ok(WaitStatus::StillAlive) if proc::is_alive(pid) => None,
        Ok(WaitStatus::StillAlive) => Some("exited".to_string()),
        Ok(status) => Some(describe_wait(status)),
        Err(_) => Some(unknown.to_string()),
    }
}

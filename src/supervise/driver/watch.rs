//! Restart on change, the I/O half (the machine decides, `machine/watch.rs`): one
//! inotify instance of its own, watching the folders where each wanted service's
//! service_watch patterns can match (`service::watch`), kept up to date as folders
//! come and go. Nothing is looked at while nothing changes.

use super::*;
use crate::service::watch::Patterns;
use nix::sys::inotify::{AddWatchFlags as F, InitFlags, Inotify, WatchDescriptor};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// What a watched folder reports: a file written, created, removed or renamed, and a
/// folder coming or going.
const CHANGES: F = F::IN_CLOSE_WRITE
    .union(F::IN_MODIFY)
    .union(F::IN_CREATE)
    .union(F::IN_DELETE)
    .union(F::IN_MOVED_FROM)
    .union(F::IN_MOVED_TO)
    .union(F::IN_DELETE_SELF)
    .union(F::IN_MOVE_SELF)
    .union(F::IN_ONLYDIR);

/// One service's patterns and the folders they reach now.
struct Watched {
    written: Vec<String>,
    patterns: Patterns,
    folders: BTreeSet<PathBuf>,
}

#[derive(Default)]
pub(super) struct FileWatches {
    inotify: Option<Inotify>,
    by_wd: HashMap<WatchDescriptor, PathBuf>,
    by_folder: HashMap<PathBuf, WatchDescriptor>,
    services: HashMap<Sid, Watched>,
    /// The watch limit was reached once (said once).
    full: bool,
    /// An event may have changed what is to be watched: compare again.
    pub(super) stale: bool,
}

impl Driver {
    /// Watch what the wanted services' service_watch patterns name, and nothing else;
    /// after each batch of events (cheap when nothing changed).
    pub(super) fn sync_file_watches(&mut self) {
        let mut changed = false;
        for (i, s) in self.machine.services.iter().enumerate() {
            let wanted: &[String] = match s.settings() {
                Some(st) if s.wanted => &st.watch.patterns,
                _ => &[],
            };
            let current = self.file_watches.services.get(&i).map(|w| &w.written[..]);
            if current.unwrap_or(&[]) == wanted {
                continue;
            }
            changed = true;
            if wanted.is_empty() {
                self.file_watches.services.remove(&i);
                continue;
            }
            match Patterns::new(wanted) {
                Ok(patterns) => {
                    self.file_watches.services.insert(
                        i,
                        Watched {
                            written: wanted.to_vec(),
                            patterns,
                            folders: BTreeSet::new(),
                        },
                    );
                }
                Err(e) => log(&format!("{}: service_watch: {e}", s.name)),
            }
        }
        if changed {
            self.refresh_folders(None);
        }
    }

    /// Walk the patterns again (of every service, or of those watching `under`) and
    /// make the inotify watches match the folders found. Files that match in folders
    /// new to a service are changes (written before their folder was watched).
    fn refresh_folders(&mut self, under: Option<&Path>) -> Vec<(Sid, String)> {
        let root = self.playpen.root.clone();
        let mut found = Vec::new();
        for (&i, w) in self.file_watches.services.iter_mut() {
            if under.is_some_and(|u| !w.folders.contains(u)) {
                continue;
            }
            let now = w.patterns.folders(&root);
            if under.is_some() {
                for new in now.difference(&w.folders) {
                    let files = std::fs::read_dir(root.join(new)).into_iter().flatten();
                    if let Some(rel) = files
                        .flatten()
                        .map(|e| new.join(e.file_name()))
                        .find(|rel| w.patterns.matches(rel))
                    {
                        found.push((i, rel.display().to_string()));
                    }
                }
            }
            w.folders = now;
        }
        let needed: BTreeSet<PathBuf> = self
            .file_watches
            .services
            .values()
            .flat_map(|w| w.folders.iter().cloned())
            .collect();
        let fw = &mut self.file_watches;
        if fw.inotify.is_none() && !needed.is_empty() {
            match Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC) {
                Ok(i) => {
                    let _ = self
                        .epoll
                        .add(i.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, FILES));
                    fw.inotify = Some(i);
                }
                Err(e) => {
                    log(&format!(
                        "cannot watch files for service_watch: inotify: {e}"
                    ));
                    return found;
                }
            }
        }
        let Some(inotify) = &fw.inotify else {
            return found;
        };
        let gone: Vec<PathBuf> = fw
            .by_folder
            .keys()
            .filter(|f| !needed.contains(*f))
            .cloned()
            .collect();
        for folder in gone {
            if let Some(wd) = fw.by_folder.remove(&folder) {
                fw.by_wd.remove(&wd);
                let _ = inotify.rm_watch(wd);
            }
        }
        for folder in needed {
            if fw.by_folder.contains_key(&folder) {
                continue;
            }
            match inotify.add_watch(&root.join(&folder), CHANGES) {
                Ok(wd) => {
                    fw.by_wd.insert(wd, folder.clone());
                    fw.by_folder.insert(folder, wd);
                }
                Err(nix::errno::Errno::ENOSPC) if !fw.full => {
                    fw.full = true;
                    log(&format!(
                        "cannot watch {} for service_watch: the inotify watch limit is reached; raise it (sysctl fs.inotify.max_user_watches) or narrow the patterns",
                        root.join(&folder).display()
                    ));
                }
                // Gone already: its parent's event brings it back if it returns.
                Err(_) => {}
            }
        }
        found
    }

    /// Events of the watched folders: matching files are changes of their services;
    /// folders that come or go are walked again.
    pub(super) fn on_files_changed(&mut self) {
        let Some(inotify) = &self.file_watches.inotify else {
            return;
        };
        let mut changes: Vec<(Sid, String)> = Vec::new();
        let mut moved: Vec<PathBuf> = Vec::new();
        let mut lost: Vec<PathBuf> = Vec::new();
        while let Ok(events) = inotify.read_events() {
            if events.is_empty() {
                break;
            }
            for e in events {
                let Some(folder) = self.file_watches.by_wd.get(&e.wd).cloned() else {
                    continue;
                };
                if e.mask
                    .intersects(F::IN_DELETE_SELF | F::IN_MOVE_SELF | F::IN_IGNORED)
                {
                    lost.push(folder);
                    continue;
                }
                let Some(name) = &e.name else {
                    continue;
                };
                let rel = folder.join(name);
                if e.mask.contains(F::IN_ISDIR) {
                    moved.push(folder.clone());
                }
                for (&i, w) in &self.file_watches.services {
                    if w.folders.contains(&folder) && w.patterns.matches(&rel) {
                        changes.push((i, rel.display().to_string()));
                    }
                }
            }
        }
        for folder in lost {
            if let Some(wd) = self.file_watches.by_folder.remove(&folder) {
                self.file_watches.by_wd.remove(&wd);
            }
            log(&format!(
                "service_watch: {} is gone; watched again if it comes back",
                self.playpen.root.join(&folder).display()
            ));
            moved.push(folder.parent().map(Path::to_path_buf).unwrap_or_default());
        }
        moved.sort();
        moved.dedup();
        for folder in moved {
            changes.extend(self.refresh_folders(Some(&folder)));
        }
        for (service, file) in changes {
            self.push(Event::FileChanged { service, file });
        }
    }
}

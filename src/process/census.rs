//! The playpen's processes, found by their environment: one scan of /proc.
//!
//! Every process servicectl starts for a service (the program, a service_start or
//! service_restart script) gets `PLAYPEN_ROOT`, `SERVICE_NAME` and [`LAUNCH`] in its
//! environment, and everything it forks inherits them, whatever session or process
//! group it moves to. So the processes of a service can be found without any file:
//! those a start left behind when servicectl was killed before they were on record, a
//! daemon that escaped its process group, the children a stop must not leave behind.
//!
//! [`LAUNCH`] marks one start (`PID.TICKS.SERIAL` of the servicectl that made it): it
//! tells what *this* start left, and it is what separates the service's processes from
//! a shell that merely exported the service's variables (`eval "$(servicectl env web)"`
//! gives a shell PLAYPEN_ROOT and SERVICE_NAME, never a launch mark).
//!
//! A scan reads /proc/PID/environ of every process (the kernel refuses other users'
//! quickly): a few milliseconds, so commands do it at most once ([`Lazy`]) and only when
//! they need it (stop, a start that failed or was interrupted); `status` of running
//! services does not. The limit: a process that clears or rewrites its environment
//! (`env -i`, nginx's title) carries no mark and cannot be found this way.
//!
//! The supervisor's jobs run on threads of their own, each with its own [`Lazy`]: a
//! shutdown of 1,000 services would scan /proc 1,000 times (each scan as long as the
//! machine's process list), so their scans are shared ([`Census::fresh`]): a job gets a
//! scan that began after it asked, and the jobs that ask while one runs share the next.
//! Those scans do not read the main processes the supervisor watches ([`watch_main`]):
//! a job asks about one service, and another service's main process is that service's.

use crate::playpen::Playpen;
use crate::process::proc;
use std::collections::{BTreeMap, HashMap};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError};

/// The environment variable that marks the processes of one start.
pub const LAUNCH: &str = "SERVICECTL_LAUNCH";

/// A new launch mark, unique on this machine until reboot: this servicectl's PID and
/// start time, and a serial number.
pub fn new_launch() -> String {
    static SERIAL: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}.{}.{}",
        std::process::id(),
        proc::own_start_ticks(),
        SERIAL.fetch_add(1, Ordering::Relaxed)
    )
}

/// One process of the playpen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub pid: i32,
    /// Its SERVICE_NAME.
    pub service: String,
    /// Its launch mark.
    pub launch: String,
    pub start_ticks: u64,
    pub ppid: i32,
    pub pgid: i32,
    pub sid: i32,
}

impl Member {
    /// Still the same process (not gone, not a reused PID).
    pub fn is_alive(&self) -> bool {
        proc::start_ticks(self.pid) == Some(self.start_ticks)
    }
}

/// The playpen's processes at one moment: PID → member.
#[derive(Debug, Clone, Default)]
pub struct Census {
    members: BTreeMap<i32, Member>,
    /// Processes not read, by the service whose main process the supervisor watches
    /// them as (see [`watch_main`]); a shared scan's only ([`Census::fresh`]).
    known: BTreeMap<i32, Arc<str>>,
}

impl Census {
    /// Scan /proc once for the processes whose environment holds PLAYPEN_ROOT of this
    /// playpen (or a path to the same directory), a SERVICE_NAME and a launch mark.
    /// servicectl itself is never one of them, even when a service runs it.
    pub fn scan(playpen: &Playpen) -> Census {
        Census::scan_passing(playpen, |_| None)
    }

    /// [`Census::scan`], but the PIDs `main` names a service for are not read: they go
    /// into `known` with that service.
    fn scan_passing(playpen: &Playpen, main: impl Fn(i32) -> Option<Arc<str>>) -> Census {
        let me = std::process::id() as i32;
        let mut roots = RootMatcher::new(&playpen.root);
        let mut census = Census::default();
        let mut environ = Vec::with_capacity(16 * 1024);
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return census;
        };
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<i32>().ok())
            else {
                continue;
            };
            if pid == me {
                continue;
            }
            if let Some(service) = main(pid) {
                census.known.insert(pid, service);
                continue;
            }
            if let Some(member) = read_member(pid, &mut roots, &mut environ) {
                census.members.insert(pid, member);
            }
        }
        census
    }

    /// A scan that began after this call, shared with the other threads that ask for
    /// one of the same playpen meanwhile: while a scan runs, those who ask wait for it
    /// to end and then share the next one (one scan for them all). The same answer as
    /// [`Census::scan`] at the moment of the call or later, but for the main processes
    /// the supervisor watches ([`watch_main`]): those are in `known`, not read.
    pub fn fresh(playpen: &Playpen) -> Arc<Census> {
        Scans::of(playpen).fresh(playpen)
    }

    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    pub fn get(&self, pid: i32) -> Option<&Member> {
        self.members.get(&pid)
    }

    /// The processes of one service.
    pub fn of_service<'a>(&'a self, service: &'a str) -> impl Iterator<Item = &'a Member> {
        self.members.values().filter(move |m| m.service == service)
    }

    /// The processes of one start.
    pub fn of_launch<'a>(&'a self, launch: &'a str) -> impl Iterator<Item = &'a Member> {
        self.members.values().filter(move |m| m.launch == launch)
    }
}

/// Process `pid` as a member of the playpen, if its environment carries the marks.
fn read_member(pid: i32, roots: &mut RootMatcher, environ: &mut Vec<u8>) -> Option<Member> {
    if !proc::read_environ(pid, environ) {
        return None;
    }
    let (Some(root), Some(service), Some(launch)) = marks(environ) else {
        return None;
    };
    if service.is_empty() || launch.is_empty() || !roots.is_ours(root) {
        return None;
    }
    let stat = proc::stat(pid)?;
    Some(Member {
        pid,
        service: String::from_utf8_lossy(service).into_owned(),
        launch: String::from_utf8_lossy(launch).into_owned(),
        start_ticks: stat.start_ticks,
        ppid: stat.ppid,
        pgid: stat.pgid,
        sid: stat.sid,
    })
}

/// A process's PLAYPEN_ROOT, SERVICE_NAME and launch mark, if it has them.
type Marks<'a> = (Option<&'a [u8]>, Option<&'a [u8]>, Option<&'a [u8]>);

/// PLAYPEN_ROOT, SERVICE_NAME and the launch mark of a raw environment (the first of
/// each, as [`proc::env_value`] finds them), in one pass over its entries: a scan reads
/// every process's environment, and three passes byte by byte were most of its own time.
fn marks(environ: &[u8]) -> Marks<'_> {
    let (mut root, mut service, mut launch) = (None, None, None);
    let mut rest = environ;
    while !rest.is_empty() {
        let end = crate::text::find_byte(0, rest).unwrap_or(rest.len());
        let entry = &rest[..end];
        rest = &rest[(end + 1).min(rest.len())..];
        match entry.first() {
            Some(b'P') => first(&mut root, entry, "PLAYPEN_ROOT"),
            Some(b'S') => {
                first(&mut service, entry, "SERVICE_NAME");
                first(&mut launch, entry, LAUNCH);
            }
            _ => {}
        }
    }
    (root, service, launch)
}

/// Keep the value of `entry` (`NAME=VALUE`) in `slot` if it is `name`'s and the first.
fn first<'a>(slot: &mut Option<&'a [u8]>, entry: &'a [u8], name: &str) {
    if slot.is_none()
        && let Some(v) = entry
            .strip_prefix(name.as_bytes())
            .and_then(|v| v.strip_prefix(b"="))
    {
        *slot = Some(v);
    }
}

/// Process `pid` is the main process of `service`, watched by the supervisor through
/// `pidfd`: until [`forget_main`], and while it holds its PID, shared scans do not read
/// its environment. At 1,000 services the mains are nearly all of the playpen's
/// processes, and a crash's restart scanned them all to stop what the dead one left
/// (issue 19); a service's census reads its own main again ([`Lazy::shared`]).
pub fn watch_main(playpen: &Playpen, pid: i32, service: &str, pidfd: Arc<OwnedFd>) {
    Scans::of(playpen).mains().insert(
        pid,
        Main {
            service: service.into(),
            pidfd,
        },
    );
}

/// The supervisor no longer watches `pid` (see [`watch_main`]).
pub fn forget_main(playpen: &Playpen, pid: i32) {
    Scans::of(playpen).mains().remove(&pid);
}

/// A main process the supervisor watches.
struct Main {
    service: Arc<str>,
    pidfd: Arc<OwnedFd>,
}

/// The scans of one playpen's census that threads share (see [`Census::fresh`]), and the
/// main processes they need not read.
#[derive(Default)]
struct Scans {
    state: Mutex<ScanState>,
    done: Condvar,
    mains: Mutex<HashMap<i32, Main>>,
}

#[derive(Default)]
struct ScanState {
    /// How many scans have begun; the one running, if any, is the last.
    started: u64,
    running: bool,
    /// The last scan that ended, by its number.
    latest: Option<(u64, Arc<Census>)>,
}

impl Scans {
    fn of(playpen: &Playpen) -> Arc<Scans> {
        static SCANS: OnceLock<Mutex<HashMap<PathBuf, Arc<Scans>>>> = OnceLock::new();
        Arc::clone(
            SCANS
                .get_or_init(Default::default)
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(playpen.root.clone())
                .or_default(),
        )
    }

    fn mains(&self) -> std::sync::MutexGuard<'_, HashMap<i32, Main>> {
        self.mains.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The service whose watched main process `pid` is, if it still holds the PID: a
    /// main reaped before the supervisor forgot it may have left its PID to anyone.
    fn main_of(&self, pid: i32) -> Option<Arc<str>> {
        let (service, pidfd) = {
            let mains = self.mains();
            let main = mains.get(&pid)?;
            (Arc::clone(&main.service), Arc::clone(&main.pidfd))
        };
        proc::pidfd_holds(pidfd.as_fd()).then_some(service)
    }

    fn fresh(&self, playpen: &Playpen) -> Arc<Census> {
        let lock = || self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let mut state = lock();
        // A scan running now began before this call: the next one is needed.
        let needed = state.started + 1;
        loop {
            if let Some((n, census)) = &state.latest
                && *n >= needed
            {
                return Arc::clone(census);
            }
            if !state.running {
                state.started += 1;
                state.running = true;
                let n = state.started;
                drop(state);
                // Whatever happens to this scan, the waiters are let go (one of them
                // scans then).
                struct Ending<'a>(&'a Scans);
                impl Drop for Ending<'_> {
                    fn drop(&mut self) {
                        let mut state = self.0.state.lock().unwrap_or_else(PoisonError::into_inner);
                        state.running = false;
                        self.0.done.notify_all();
                    }
                }
                let ending = Ending(self);
                let census = Arc::new(Census::scan_passing(playpen, |pid| self.main_of(pid)));
                lock().latest = Some((n, Arc::clone(&census)));
                drop(ending);
                return census;
            }
            state = self
                .done
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// A census taken when first asked for and then kept: one scan per command at most.
/// Processes that appear after the scan are not in it; what must see them (the check
/// after a failed start) scans afresh.
pub struct Lazy {
    playpen: Playpen,
    census: OnceLock<Arc<Census>>,
    /// A shared census for this service's processes only ([`Lazy::shared`]).
    shared: Option<String>,
}

impl Lazy {
    pub fn new(playpen: &Playpen) -> Lazy {
        Lazy {
            playpen: playpen.clone(),
            census: OnceLock::new(),
            shared: None,
        }
    }

    /// A census of `service`'s processes whose scan is shared with the other threads
    /// that scan the playpen at the same time ([`Census::fresh`]): for the supervisor's
    /// jobs, one thread each. The main processes the supervisor watches for other
    /// services are taken to be theirs, not read; this service's are read: so its
    /// members, and its launches' members, are those of a full scan (but for another
    /// service's main that put this service's marks into its own environment).
    pub fn shared(playpen: &Playpen, service: &str) -> Lazy {
        Lazy {
            shared: Some(service.to_string()),
            ..Lazy::new(playpen)
        }
    }

    pub fn get(&self) -> &Census {
        self.census.get_or_init(|| match &self.shared {
            Some(service) => {
                let census = Census::fresh(&self.playpen);
                let own: Vec<i32> = census
                    .known
                    .iter()
                    .filter(|(_, s)| &***s == service.as_str())
                    .map(|(&pid, _)| pid)
                    .collect();
                if own.is_empty() {
                    return census;
                }
                // What is known of the others is of no use to this service's questions.
                let mut census = Census {
                    members: census.members.clone(),
                    known: BTreeMap::new(),
                };
                let mut roots = RootMatcher::new(&self.playpen.root);
                let mut environ = Vec::new();
                for pid in own {
                    if let Some(member) = read_member(pid, &mut roots, &mut environ) {
                        census.members.insert(pid, member);
                    }
                }
                Arc::new(census)
            }
            None => Arc::new(Census::scan(&self.playpen)),
        })
    }
}

/// Is a PLAYPEN_ROOT value this playpen? The same bytes, or another path to the same
/// directory (a symlinked checkout); a copy of the playpen is not. Answers are cached:
/// a machine may run many processes of one other playpen.
pub struct RootMatcher {
    root: PathBuf,
    canonical: OnceLock<Option<PathBuf>>,
    seen: HashMap<Vec<u8>, bool>,
}

impl RootMatcher {
    pub fn new(root: &Path) -> RootMatcher {
        RootMatcher {
            root: root.to_path_buf(),
            canonical: OnceLock::new(),
            seen: HashMap::new(),
        }
    }

    pub fn is_ours(&mut self, value: &[u8]) -> bool {
        if value == self.root.as_os_str().as_bytes() {
            return true;
        }
        if let Some(&known) = self.seen.get(value) {
            return known;
        }
        let canonical = self
            .canonical
            .get_or_init(|| std::fs::canonicalize(&self.root).ok());
        let ours = canonical.as_ref().is_some_and(|c| {
            let other = Path::new(std::ffi::OsStr::from_bytes(value));
            other.is_absolute() && std::fs::canonicalize(other).ok().as_ref() == Some(c)
        });
        self.seen.insert(value.to_vec(), ours);
        ours
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launch_marks_are_unique() {
        let a = new_launch();
        let b = new_launch();
        assert_ne!(a, b);
        assert!(a.starts_with(&format!("{}.", std::process::id())));
    }

    #[test]
    fn a_root_is_ours_by_any_path_to_it_but_a_copy_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("pp");
        let copy = dir.path().join("copy");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&copy).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&root, &link).unwrap();
        let mut matcher = RootMatcher::new(&root);
        assert!(matcher.is_ours(root.as_os_str().as_bytes()));
        assert!(matcher.is_ours(link.as_os_str().as_bytes()));
        assert!(!matcher.is_ours(copy.as_os_str().as_bytes()));
        assert!(!matcher.is_ours(b"relative"));
        assert!(!matcher.is_ours(b""));
    }

    /// A `sleep 30` carrying the marks of service `web`, launch `1.2.3`, of the playpen at `root`.
    fn marked_sleep(root: &Path) -> std::process::Child {
        std::process::Command::new("sleep")
            .arg("30")
            .env("PLAYPEN_ROOT", root)
            .env("SERVICE_NAME", "web")
            .env(LAUNCH, "1.2.3")
            .spawn()
            .unwrap()
    }

    #[test]
    fn finds_a_process_by_its_environment_and_not_servicectl_itself() {
        let dir = tempfile::tempdir().unwrap();
        let playpen = Playpen {
            root: dir.path().to_path_buf(),
        };
        let mut child = marked_sleep(dir.path());
        let mut unmarked = std::process::Command::new("sleep")
            .arg("30")
            .env("PLAYPEN_ROOT", dir.path())
            .env("SERVICE_NAME", "web")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        // The child has exec'd once its environ shows the variables.
        let mut census = Census::scan(&playpen);
        for _ in 0..200 {
            if census.get(pid).is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
            census = Census::scan(&playpen);
        }
        let member = census.get(pid).expect("found by its environment").clone();
        assert_eq!(member.service, "web");
        assert_eq!(member.launch, "1.2.3");
        assert!(member.is_alive());
        assert_eq!(census.of_service("web").count(), 1);
        assert_eq!(census.of_launch("1.2.3").count(), 1);
        assert!(census.get(unmarked.id() as i32).is_none());
        assert!(census.get(std::process::id() as i32).is_none());
        child.kill().unwrap();
        child.wait().unwrap();
        unmarked.kill().unwrap();
        unmarked.wait().unwrap();
        assert!(!member.is_alive());
    }

    /// A playpen in `dir` and a marked `sleep` of it, once a scan sees it (its
    /// environment is the marked one from its exec on).
    fn scanned_marked_sleep(dir: &Path) -> (Playpen, std::process::Child, i32) {
        let playpen = Playpen {
            root: dir.to_path_buf(),
        };
        let child = marked_sleep(dir);
        let pid = child.id() as i32;
        for _ in 0..200 {
            if Census::scan(&playpen).get(pid).is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        (playpen, child, pid)
    }

    #[test]
    fn a_shared_scan_began_after_the_call() {
        let dir = tempfile::tempdir().unwrap();
        let (playpen, mut child, pid) = scanned_marked_sleep(dir.path());
        // Threads asking at once: every one sees what was there when it asked...
        let seen = |playpen: &Playpen| -> Vec<bool> {
            std::thread::scope(|s| {
                let asks: Vec<_> = (0..8)
                    .map(|_| s.spawn(|| Census::fresh(playpen).get(pid).is_some()))
                    .collect();
                asks.into_iter().map(|a| a.join().unwrap()).collect()
            })
        };
        assert_eq!(seen(&playpen), vec![true; 8]);
        // ... and none an earlier scan that still holds a process gone since.
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(seen(&playpen), vec![false; 8]);
        let lazy = Lazy::shared(&playpen, "web");
        assert!(lazy.get().get(pid).is_none());
    }

    #[test]
    fn a_service_s_census_takes_the_watched_mains_of_others_for_theirs_and_reads_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let (playpen, mut child, pid) = scanned_marked_sleep(dir.path());
        let pidfd = Arc::new(proc::pidfd(pid).unwrap());
        watch_main(&playpen, pid, "web", Arc::clone(&pidfd));
        assert!(Lazy::shared(&playpen, "api").get().get(pid).is_none());
        let own = Lazy::shared(&playpen, "web");
        assert_eq!(own.get().get(pid).map(|m| m.launch.as_str()), Some("1.2.3"));
        assert_eq!(own.get().of_service("web").count(), 1);
        // A main reaped before it was forgotten no longer holds its PID: read again.
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(!proc::pidfd_holds(pidfd.as_fd()));
        assert!(Census::fresh(&playpen).known.is_empty());
        forget_main(&playpen, pid);
        assert!(Scans::of(&playpen).mains().is_empty());
    }

    #[test]
    fn marks_are_read_in_one_pass_as_env_value_reads_them() {
        let env = b"A=1\0PLAYPEN_ROOT=/p\0SERVICE_NAME=web\0SERVICE_NAME=x\0SERVICECTL_LAUNCH=1.2.3\0PLAYPEN_ROOTX=no\0S\0";
        assert_eq!(
            marks(env),
            (Some(&b"/p"[..]), Some(&b"web"[..]), Some(&b"1.2.3"[..]))
        );
        for name in ["PLAYPEN_ROOT", "SERVICE_NAME", LAUNCH] {
            assert!(proc::env_value(env, name).is_some());
        }
        assert_eq!(marks(b"SERVICE_NAME=web"), (None, Some(&b"web"[..]), None));
        assert_eq!(marks(b""), (None, None, None));
        assert_eq!(marks(b"\0\0PLAYPEN_ROOT="), (Some(&b""[..]), None, None));
    }
}

//! Who holds a port: the process behind a listening socket, found through the
//! /proc/PID/fd links that name socket inodes ([`super::sockets`] reads the sockets),
//! and what a conflict or a readiness check says about it.

use crate::error::Error;
use crate::playpen::Playpen;
use crate::process::pidfile;
use crate::process::proc;
use crate::process::sockets::{Proto, Socket, Sockets};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The socket inodes process `pid` holds among `wanted`, or all of them when `wanted`
/// is empty (empty when its fds cannot be read: gone, or another user's).
fn held_by(pid: i32, wanted: &BTreeSet<u64>) -> BTreeSet<u64> {
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return BTreeSet::new();
    };
    entries
        .flatten()
        .filter_map(|e| socket_inode(&std::fs::read_link(e.path()).ok()?))
        .filter(|i| wanted.is_empty() || wanted.contains(i))
        .collect()
}

/// `socket:[12345]` → 12345.
fn socket_inode(link: &Path) -> Option<u64> {
    link.to_str()?
        .strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// A process holding each of `wanted`, by inode: one pass over /proc, in PID order, that
/// stops once every inode has a holder. A master and the workers it forked share their
/// sockets; the master, usually the lower PID, is found first, and [`representative`]
/// walks up from a worker otherwise.
fn holders(wanted: &BTreeSet<u64>) -> BTreeMap<u64, i32> {
    let mut out: BTreeMap<u64, i32> = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    let mut pids: Vec<i32> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    for pid in pids {
        for inode in held_by(pid, wanted) {
            out.entry(inode).or_insert(pid);
        }
        if out.len() == wanted.len() {
            break;
        }
    }
    out
}

/// What is known about a process holding a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub pid: i32,
    /// Its command line (as `ps` shows it, shortened).
    pub command: String,
    /// The playpen and service it was started for, when it says (its environment holds
    /// PLAYPEN_ROOT and SERVICE_NAME) or its working directory is a playpen whose
    /// pidfiles name it (daemons that rewrite their title, like nginx, lose the
    /// environment but keep the working directory servicectl gave them).
    pub playpen: Option<PathBuf>,
    pub service: Option<String>,
    /// Its session: servicectl starts each service as the leader of its own.
    pub session: Option<i32>,
}

impl Holder {
    fn of(pid: i32) -> Holder {
        let mut environ = Vec::new();
        proc::read_environ(pid, &mut environ);
        let var = |name: &str| {
            proc::env_value(&environ, name).map(|v| String::from_utf8_lossy(v).into_owned())
        };
        let (mut playpen, mut service) =
            (var("PLAYPEN_ROOT").map(PathBuf::from), var("SERVICE_NAME"));
        if playpen.is_none()
            && let Ok(cwd) = std::fs::read_link(format!("/proc/{pid}/cwd"))
            && (cwd.join("etc/role").is_file() || cwd.join("ext/services").is_dir())
        {
            service = service_with_pid(&cwd, pid);
            playpen = service.as_ref().map(|_| cwd);
        }
        Holder {
            pid,
            command: command_line(pid),
            playpen,
            service,
            session: proc::stat(pid).map(|s| s.sid),
        }
    }

    /// `PID 12 (nginx: master process …), service nginx of the playpen /p`.
    pub fn describe(&self) -> String {
        let mut text = format!("PID {} ({})", self.pid, self.command);
        match (&self.service, &self.playpen) {
            (Some(s), Some(p)) => {
                text.push_str(&format!(", service {s} of the playpen {}", p.display()))
            }
            (None, Some(p)) => text.push_str(&format!(", of the playpen {}", p.display())),
            _ => {}
        }
        text
    }
}

/// The command line, words joined by spaces, at most 80 characters.
fn command_line(pid: i32) -> String {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let words: Vec<String> = raw
        .split(|&b| b == 0)
        .filter(|w| !w.is_empty())
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .collect();
    let text = if words.is_empty() {
        std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .map(|c| format!("[{}]", c.trim()))
            .unwrap_or_else(|_| "?".into())
    } else {
        // One line, however the program wrote its title.
        words
            .join(" ")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    match text.char_indices().nth(79) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text,
    }
}

/// The parent of a process, None for orphans of init and processes that are gone.
fn parent(pid: i32) -> Option<i32> {
    proc::stat(pid).map(|s| s.ppid).filter(|p| *p > 1)
}

/// The service of the playpen at `root` whose pidfile names `pid` or one of its
/// ancestors (a worker's master).
fn service_with_pid(root: &Path, pid: i32) -> Option<String> {
    let mut pids = vec![pid];
    let mut p = pid;
    for _ in 0..4 {
        match parent(p) {
            Some(parent) => {
                pids.push(parent);
                p = parent;
            }
            None => break,
        }
    }
    let run = root.join("var/run");
    std::fs::read_dir(&run).ok()?.flatten().find_map(|entry| {
        let name = entry
            .file_name()
            .to_str()?
            .strip_suffix(".pid")?
            .to_string();
        // The safe reader: a pidfile of another playpen may be anything (a FIFO, huge).
        let listed = crate::process::pidfile::read_pid(&entry.path())
            .ok()??
            .ok()?;
        pids.contains(&listed).then_some(name)
    })
}

/// Of the processes sharing a socket (a master and its workers), the one to name: the
/// furthest ancestor of `pid` that holds it too. Many ports of one holder share its
/// ancestors, so each process's parent and socket inodes are read once (`seen`).
fn representative(pid: i32, inode: u64, seen: &mut Ancestry) -> i32 {
    let mut pid = pid;
    loop {
        let parent = *seen.parents.entry(pid).or_insert_with(|| parent(pid));
        let Some(parent) = parent else { break };
        let held = seen
            .sockets
            .entry(parent)
            .or_insert_with(|| held_by(parent, &BTreeSet::new()));
        if !held.contains(&inode) {
            break;
        }
        pid = parent;
    }
    pid
}

/// What [`representative`] has read about processes.
#[derive(Default)]
struct Ancestry {
    parents: BTreeMap<i32, Option<i32>>,
    sockets: BTreeMap<i32, BTreeSet<u64>>,
}

/// The ports the services of one command will use and that another process already
/// holds, each as an error for its service naming the port, the variable, the socket and
/// the process (and, when it is a service of a playpen, which). `claims` are each
/// service's typed ports. Not a conflict: the service's own running process (its pidfile
/// PID, a process of its session, or one whose environment says it is this service of
/// this playpen), and a running service of this playpen whose start record lists the
/// port (the check of ports shared within a playpen already reports that one).
pub fn held_ports<'a>(
    playpen: &Playpen,
    claims: impl IntoIterator<Item = (&'a str, &'a [(String, u16)])>,
) -> Vec<(String, Error)> {
    let sockets = Sockets::read();
    let taken: Vec<(&str, &str, u16)> = claims
        .into_iter()
        .flat_map(|(service, ports)| {
            ports
                .iter()
                .map(move |(variable, port)| (service, variable.as_str(), *port))
        })
        .filter(|(_, _, port)| sockets.is_listening(*port))
        .collect();
    if taken.is_empty() {
        return Vec::new();
    }
    let inodes =
        |port: u16| -> BTreeSet<u64> { sockets.on(port).iter().map(|s| s.inode).collect() };
    // First the cheap answer: the service's own process holds its port. One look at
    // var/run tells which services have a pidfile or start record at all.
    let on_record: BTreeSet<String> = std::fs::read_dir(playpen.run_dir())
        .map(|d| {
            d.flatten()
                .filter_map(|e| {
                    let name = e.file_name().into_string().ok()?;
                    let service = name.strip_suffix(".pid").or(name.strip_suffix(".start"))?;
                    Some(service.to_string())
                })
                .collect()
        })
        .unwrap_or_default();
    let mut own_pid: BTreeMap<&str, Option<i32>> = BTreeMap::new();
    let mut left = Vec::new();
    for (service, variable, port) in taken {
        let pid = *own_pid.entry(service).or_insert_with(|| {
            if !on_record.contains(service) {
                return None;
            }
            pidfile::observe(playpen, service)
                .ok()
                .filter(|(o, _)| o.is_running())
                .and_then(|(o, _)| o.pid())
        });
        if pid.is_some_and(|pid| !held_by(pid, &inodes(port)).is_empty()) {
            continue;
        }
        left.push((service, variable, port, pid));
    }
    if left.is_empty() {
        return Vec::new();
    }
    let wanted: BTreeSet<u64> = left
        .iter()
        .flat_map(|(_, _, port, _)| inodes(*port))
        .collect();
    let by_inode = holders(&wanted);
    let mut seen = Ancestry::default();
    let mut known: BTreeMap<i32, Holder> = BTreeMap::new();
    let mut out = Vec::new();
    for (service, variable, port, own) in left {
        let mut pids: Vec<i32> = sockets
            .on(port)
            .iter()
            .filter_map(|s| Some(representative(*by_inode.get(&s.inode)?, s.inode, &mut seen)))
            .collect();
        pids.sort_unstable();
        pids.dedup();
        for &pid in &pids {
            known.entry(pid).or_insert_with(|| Holder::of(pid));
        }
        // Every process of a service shares the session servicectl started it in.
        let ours = |h: &Holder| {
            own.is_some_and(|own| h.session == Some(own))
                || (h.playpen.as_deref() == Some(playpen.root.as_path())
                    && h.service.as_deref() == Some(service))
        };
        if pids.iter().any(|p| ours(&known[p])) {
            continue;
        }
        let holder = pids.first().map(|p| known[p].clone());
        if let Some(h) = &holder
            && h.playpen.as_deref() == Some(playpen.root.as_path())
            && let Some(other) = &h.service
            && pidfile::read_record(playpen, other)
                .is_some_and(|r| r.ports.iter().any(|(_, p)| *p == port))
        {
            continue;
        }
        out.push((
            service.to_string(),
            taken_error(service, variable, port, &sockets, holder.as_ref()),
        ));
    }
    out
}

/// The error for one taken port.
fn taken_error(
    service: &str,
    variable: &str,
    port: u16,
    sockets: &Sockets,
    holder: Option<&Holder>,
) -> Error {
    let on: Vec<String> = sockets.on(port).iter().map(Socket::describe).collect();
    let on = on.join(", ");
    let (who, hint) = match holder {
        Some(h) => {
            let hint = match (&h.service, &h.playpen) {
                (Some(s), Some(p)) => format!(
                    "stop it (`servicectl --playpen {} stop {s}`), or give this playpen another PORT_PREFIX (or {variable}) in its role config",
                    p.display()
                ),
                _ => format!(
                    "stop PID {}, or give this playpen another PORT_PREFIX (or {variable}) in its role config",
                    h.pid
                ),
            };
            (h.describe(), hint)
        }
        None => (
            "a process servicectl cannot see (another user's, or outside this PID namespace)"
                .to_string(),
            format!(
                "find it with `ss -ltnup 'sport = :{port}'` as root, or give this playpen another PORT_PREFIX (or {variable})"
            ),
        ),
    };
    Error::config(format!(
        "port {port} ({variable}) is already in use: {on} is held by {who}"
    ))
    .with_service(service)
    .with_hint(hint)
}

/// Is `port` (TCP) listened on by a process of the service whose main process is
/// `main` (it, or a process of its session or process group)? A port held by a
/// stranger must never make a service ready. Ok, or what holds it instead.
pub fn tcp_port_held_by_service(port: u16, main: i32) -> std::result::Result<(), String> {
    let sockets = Sockets::read();
    let wanted: BTreeSet<u64> = sockets
        .on(port)
        .iter()
        .filter(|s| s.proto == Proto::Tcp)
        .map(|s| s.inode)
        .collect();
    if wanted.is_empty() {
        return Err(format!("nothing listens on port {port}"));
    }
    let Some(own) = proc::stat(main) else {
        return Err(format!("its process {main} is gone"));
    };
    let ours = |pid: i32| {
        pid == main || proc::stat(pid).is_some_and(|s| s.sid == own.sid || s.pgid == own.pgid)
    };
    let found = holders(&wanted);
    if found.values().any(|&pid| ours(pid)) {
        return Ok(());
    }
    // `holders` names one holder per socket; a worker of ours may share it.
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Err(format!("cannot read /proc to find who holds port {port}"));
    };
    for pid in entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
    {
        if ours(pid) && !held_by(pid, &wanted).is_empty() {
            return Ok(());
        }
    }
    Err(match found.values().next() {
        Some(&pid) => format!(
            "port {port} is held by {}, not by this service",
            Holder::of(pid).describe()
        ),
        None => format!("port {port} is held by a process this user cannot see"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::sockets::Sockets;
    use std::net::IpAddr;

    #[test]
    fn a_socket_this_test_binds_is_found_with_its_holder() {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let udp = std::net::UdpSocket::bind("[::1]:0").unwrap();
        let (tport, uport) = (
            tcp.local_addr().unwrap().port(),
            udp.local_addr().unwrap().port(),
        );
        let s = Sockets::read();
        let t = &s.on(tport)[0];
        assert_eq!(t.proto, Proto::Tcp);
        let u = s
            .on(uport)
            .iter()
            .find(|s| s.proto == Proto::Udp)
            .expect("udp socket");
        assert_eq!(u.addr, "::1".parse::<IpAddr>().unwrap());
        let wanted: BTreeSet<u64> = [t.inode, u.inode].into();
        let me = std::process::id() as i32;
        assert_eq!(held_by(me, &wanted), wanted);
        // sock_diag and /proc/net agree.
        let mut from_proc = Sockets::default();
        for (file, proto) in [
            ("/proc/net/tcp", Proto::Tcp),
            ("/proc/net/udp6", Proto::Udp),
        ] {
            from_proc.add_table(&std::fs::read_to_string(file).unwrap(), proto);
        }
        assert_eq!(from_proc.on(tport), s.on(tport));
        assert!(from_proc.on(uport).contains(u));
        let by = holders(&wanted);
        assert_eq!(by[&t.inode], me);
        assert_eq!(representative(me, t.inode, &mut Ancestry::default()), me);
        assert_eq!(Holder::of(me).pid, me);
    }
}

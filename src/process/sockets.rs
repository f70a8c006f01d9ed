//! Who listens on a port, from the kernel's own tables, spawning no process (no `ss`, no
//! `lsof`): /proc/net/{tcp,tcp6,udp,udp6} list every socket of this network namespace with
//! its local address, state and inode; /proc/PID/fd links name the inodes a process holds.
//!
//! Reading the four tables is cheap (a few hundred microseconds on a busy machine) and is
//! all `status` and `ports` do. Naming the process that holds a port means reading the fd
//! links of every process, so it is done only when a port a service needs is taken (the
//! service's own process, named by its pidfile, is asked first).
//!
//! Counted as holding a port: a TCP socket in LISTEN state, and an unconnected bound UDP
//! socket, on any local address (0.0.0.0, 127.0.0.1, ::, ::1, …), IPv4 or IPv6.

use crate::error::Error;
use crate::playpen::Playpen;
use crate::process::pidfile;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

/// TCP or UDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// One socket that holds a local port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Socket {
    pub proto: Proto,
    pub addr: IpAddr,
    pub port: u16,
    pub inode: u64,
}

impl Socket {
    /// `tcp 127.0.0.1:8080`, `udp [::1]:53`.
    pub fn describe(&self) -> String {
        match self.addr {
            IpAddr::V4(a) => format!("{} {a}:{}", self.proto.name().to_uppercase(), self.port),
            IpAddr::V6(a) => format!("{} [{a}]:{}", self.proto.name().to_uppercase(), self.port),
        }
    }
}

/// TCP_LISTEN and TCP_CLOSE (an unconnected UDP socket) in the `st` column.
const TCP_LISTEN: &str = "0A";
const UDP_UNCONNECTED: &str = "07";

/// Every listening TCP socket and bound UDP socket of this network namespace, by port.
#[derive(Debug, Clone, Default)]
pub struct Sockets {
    by_port: BTreeMap<u16, Vec<Socket>>,
}

impl Sockets {
    /// Read the four tables; a table that cannot be read (no IPv6, say) adds nothing.
    pub fn read() -> Sockets {
        let mut sockets = Sockets::default();
        for (file, proto) in [
            ("/proc/net/tcp", Proto::Tcp),
            ("/proc/net/tcp6", Proto::Tcp),
            ("/proc/net/udp", Proto::Udp),
            ("/proc/net/udp6", Proto::Udp),
        ] {
            if let Ok(text) = std::fs::read_to_string(file) {
                sockets.add_table(&text, proto);
            }
        }
        sockets
    }

    /// Add the holding sockets of one table's text.
    pub fn add_table(&mut self, text: &str, proto: Proto) {
        for line in text.lines().skip(1) {
            if let Some(socket) = parse_line(line, proto) {
                self.by_port.entry(socket.port).or_default().push(socket);
            }
        }
    }

    /// The sockets holding `port` (empty: nothing listens on it).
    pub fn on(&self, port: u16) -> &[Socket] {
        self.by_port.get(&port).map_or(&[], Vec::as_slice)
    }

    pub fn is_listening(&self, port: u16) -> bool {
        self.by_port.contains_key(&port)
    }
}

/// One line of /proc/net/{tcp,udp}[6]:
/// `sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode …`.
fn parse_line(line: &str, proto: Proto) -> Option<Socket> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let (local, state, inode) = (fields.get(1)?, fields.get(3)?, fields.get(9)?);
    let wanted = match proto {
        Proto::Tcp => TCP_LISTEN,
        Proto::Udp => UDP_UNCONNECTED,
    };
    if *state != wanted {
        return None;
    }
    let (addr, port) = local.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok().filter(|p| *p != 0)?;
    Some(Socket {
        proto,
        addr: parse_addr(addr)?,
        port,
        inode: inode.parse().ok()?,
    })
}

/// The kernel prints each 32-bit word of the address as a native-endian number.
fn parse_addr(hex: &str) -> Option<IpAddr> {
    let word = |i: usize| {
        hex.get(i * 8..i * 8 + 8)
            .and_then(|w| u32::from_str_radix(w, 16).ok())
            .map(u32::to_ne_bytes)
    };
    match hex.len() {
        8 => Some(IpAddr::V4(Ipv4Addr::from(word(0)?))),
        32 => {
            let mut bytes = [0u8; 16];
            for i in 0..4 {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            Some(IpAddr::V6(Ipv6Addr::from(bytes)))
        }
        _ => None,
    }
}

/// The socket inodes process `pid` holds among `wanted` (empty when its fds cannot be
/// read: gone, or another user's).
fn held_by(pid: i32, wanted: &BTreeSet<u64>) -> BTreeSet<u64> {
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return BTreeSet::new();
    };
    entries
        .flatten()
        .filter_map(|e| socket_inode(&std::fs::read_link(e.path()).ok()?))
        .filter(|i| wanted.contains(i))
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

/// Every process holding one of `wanted`, by inode: one pass over /proc, stopping early
/// once every inode has a holder would miss the other holders (a master and its workers
/// share a socket), so every process is read.
fn holders(wanted: &BTreeSet<u64>) -> BTreeMap<u64, Vec<i32>> {
    let mut out: BTreeMap<u64, Vec<i32>> = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        for inode in held_by(pid, wanted) {
            out.entry(inode).or_default().push(pid);
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
        let environ = read_environ(pid);
        let var = |name: &str| {
            environ
                .iter()
                .find_map(|e| e.strip_prefix(&format!("{name}=")).map(str::to_string))
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
            session: stat_field(pid, 6),
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

/// `NAME=VALUE` entries of /proc/PID/environ (empty when unreadable).
fn read_environ(pid: i32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/environ"))
        .map(|raw| {
            raw.split(|&b| b == 0)
                .filter(|e| !e.is_empty())
                .map(|e| String::from_utf8_lossy(e).into_owned())
                .collect()
        })
        .unwrap_or_default()
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

/// A numeric field of /proc/PID/stat (numbered as in proc(5): 4 ppid, 6 session).
fn stat_field(pid: i32, field: usize) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command (field 2) may hold spaces and parentheses: count from the last ')'.
    stat[stat.rfind(')')? + 1..]
        .split_whitespace()
        .nth(field - 3)?
        .parse()
        .ok()
}

/// The service of the playpen at `root` whose pidfile names `pid` or one of its
/// ancestors (a worker's master).
fn service_with_pid(root: &Path, pid: i32) -> Option<String> {
    let mut pids = vec![pid];
    let mut p = pid;
    for _ in 0..4 {
        match stat_field(p, 4) {
            Some(parent) if parent > 1 => {
                pids.push(parent);
                p = parent;
            }
            _ => break,
        }
    }
    let run = root.join("var/run");
    std::fs::read_dir(&run).ok()?.flatten().find_map(|entry| {
        let name = entry
            .file_name()
            .to_str()?
            .strip_suffix(".pid")?
            .to_string();
        let text = std::fs::read_to_string(entry.path()).ok()?;
        let listed: i32 = text.split_whitespace().next()?.parse().ok()?;
        pids.contains(&listed).then_some(name)
    })
}

/// Of the processes sharing a socket (a master and its workers), the one to name: one
/// whose parent does not hold it too.
fn representative(pids: &[i32]) -> i32 {
    pids.iter()
        .copied()
        .find(|&p| stat_field(p, 4).is_none_or(|parent| !pids.contains(&parent)))
        .unwrap_or(pids[0])
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
    // First the cheap answer: the service's own process holds its port.
    let mut own_pid: BTreeMap<&str, Option<i32>> = BTreeMap::new();
    let mut left = Vec::new();
    for (service, variable, port) in taken {
        let pid = *own_pid.entry(service).or_insert_with(|| {
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
    let mut known: BTreeMap<i32, Holder> = BTreeMap::new();
    let mut out = Vec::new();
    for (service, variable, port, own) in left {
        let mut pids: Vec<i32> = sockets
            .on(port)
            .iter()
            .flat_map(|s| by_inode.get(&s.inode).into_iter().flatten().copied())
            .collect();
        pids.sort_unstable();
        pids.dedup();
        for &pid in &pids {
            known.entry(pid).or_insert_with(|| Holder::of(pid));
        }
        let ours = |h: &Holder| {
            own.is_some_and(|own| h.session == Some(own))
                || (h.playpen.as_deref() == Some(playpen.root.as_path())
                    && h.service.as_deref() == Some(service))
        };
        if pids.iter().any(|p| ours(&known[p])) {
            continue;
        }
        let holder = (!pids.is_empty()).then(|| known[&representative(&pids)].clone());
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

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4242 1 0000000000000000 100 0 0 10 0\n\
   1: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 17 1 0000000000000000 100 0 0 10 0\n\
   2: 0100007F:1F90 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000  1000        0 999 1 0000000000000000 20 4 30 10 -1\n";

    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 00000000000000000000000001000000:1F91 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 5151 1 0000000000000000 100 0 0 10 0\n\
   1: 00000000000000000000000000000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 6161 1 0000000000000000 100 0 0 10 0\n";

    const UDP: &str = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
  100: 3500007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000   101        0 777 2 0000000000000000 0\n\
  101: 0100007F:C350 0100007F:0035 01 00000000:00000000 00:00000000 00000000  1000        0 778 2 0000000000000000 0\n";

    #[test]
    fn listening_tcp_and_bound_udp_sockets_are_read_with_their_addresses() {
        let mut s = Sockets::default();
        s.add_table(TCP, Proto::Tcp);
        s.add_table(TCP6, Proto::Tcp);
        s.add_table(UDP, Proto::Udp);
        assert_eq!(
            s.on(8080),
            [Socket {
                proto: Proto::Tcp,
                addr: "127.0.0.1".parse().unwrap(),
                port: 8080,
                inode: 4242
            }],
            "the established connection on 8080 is not a listener"
        );
        assert_eq!(s.on(22)[0].addr, "0.0.0.0".parse::<IpAddr>().unwrap());
        assert_eq!(s.on(8081)[0].addr, "::1".parse::<IpAddr>().unwrap());
        assert_eq!(s.on(8081)[0].describe(), "TCP [::1]:8081");
        assert_eq!(s.on(80)[0].addr, "::".parse::<IpAddr>().unwrap());
        assert_eq!(s.on(53)[0].describe(), "UDP 127.0.0.53:53");
        assert!(
            !s.is_listening(50000),
            "a connected UDP socket holds no port for others"
        );
    }

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
        let by = holders(&wanted);
        assert_eq!(by[&t.inode], [me]);
        assert_eq!(Holder::of(me).pid, me);
    }
}

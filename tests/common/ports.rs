//! Ports: PORT_PREFIX reservation, and small clients to talk to what listens.
//!
//! A PORT_PREFIX is a multiple of 100 from 20000 up to the last one whose 100 ports lie
//! below Linux's ephemeral range (/proc/sys/net/ipv4/ip_local_port_range, 32768 by
//! default), so outgoing connections of the machine never take a test's port. It is
//! reserved with an flock on `$TMPDIR/servicectl-test-ports/PREFIX.lock`, which keeps
//! parallel tests of one test binary and of other binaries (and of other checkouts) off
//! it until the reservation is dropped; the kernel releases the lock however the test
//! process ends. The ports the caller asks for are checked free by binding them first.

use super::PATIENCE;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Port offsets of the sample packages: echo, redis, nginx, httpd-python.
pub const SAMPLE_OFFSETS: &[u16] = &[7, 79, 80, 81];

const FIRST_PREFIX: u32 = 20000;

/// A PORT_PREFIX held for this process until the guard is dropped.
#[derive(Debug)]
pub struct PortPrefix {
    pub prefix: u16,
    _lock: std::fs::File,
}

/// The first port of the ephemeral range (outgoing connections take ports from it).
fn ephemeral_start() -> u32 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768)
}

fn port_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// Reserve a PORT_PREFIX such that PREFIX + each offset (each below 100) is free now and
/// no other test holds the prefix.
pub fn reserve_ports(offsets: &[u16]) -> PortPrefix {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    assert!(
        offsets.iter().all(|&o| o < 100),
        "port offsets must be below 100: {offsets:?}"
    );
    let ephemeral = ephemeral_start();
    assert!(
        ephemeral >= FIRST_PREFIX + 100,
        "the ephemeral port range starts at {ephemeral}: no room below it for test ports"
    );
    let slots = (ephemeral - FIRST_PREFIX) / 100;
    let dir = std::env::temp_dir().join("servicectl-test-ports");
    std::fs::create_dir_all(&dir).expect("make the port lock directory");
    // Start at a slot derived from the process and a counter, so parallel tests and test
    // binaries rarely contend; then try every slot once.
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let start = std::process::id()
        .wrapping_mul(7919)
        .wrapping_add(n.wrapping_mul(131));
    for i in 0..slots {
        let prefix = (FIRST_PREFIX + (start.wrapping_add(i) % slots) * 100) as u16;
        let lock = lock_file(&dir, prefix);
        if lock.try_lock().is_ok() && offsets.iter().all(|&o| port_free(prefix + o)) {
            return PortPrefix {
                prefix,
                _lock: lock,
            };
        }
    }
    panic!(
        "no free PORT_PREFIX in {FIRST_PREFIX}-{} for offsets {offsets:?}",
        FIRST_PREFIX + (slots - 1) * 100
    );
}

/// The file whose flock reserves `prefix` (not locked yet).
fn lock_file(dir: &std::path::Path, prefix: u16) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(format!("{prefix}.lock")))
        .expect("open a port lock file")
}

/// Reserve `n` consecutive PORT_PREFIXes (each of its 100 ports free now), for a test
/// whose playpens lease their prefixes (`PORT_PREFIX=auto` with
/// `SERVICECTL_PORT_PREFIX_RANGE` set to the first and last of these).
pub fn reserve_range(n: u32) -> Vec<PortPrefix> {
    let ephemeral = ephemeral_start();
    let slots = (ephemeral - FIRST_PREFIX) / 100;
    let dir = std::env::temp_dir().join("servicectl-test-ports");
    std::fs::create_dir_all(&dir).expect("make the port lock directory");
    let start = std::process::id().wrapping_mul(7919) % slots;
    for i in 0..slots {
        let first = (start + i) % slots;
        if first + n > slots {
            continue;
        }
        let mut held = Vec::new();
        for slot in first..first + n {
            let prefix = (FIRST_PREFIX + slot * 100) as u16;
            let lock = lock_file(&dir, prefix);
            if lock.try_lock().is_err() || !(0..100).all(|o| port_free(prefix + o)) {
                break;
            }
            held.push(PortPrefix {
                prefix,
                _lock: lock,
            });
        }
        if held.len() == n as usize {
            return held;
        }
    }
    panic!("no {n} consecutive free PORT_PREFIXes from {FIRST_PREFIX}");
}

/// Connect to 127.0.0.1:PORT, retrying for up to `patience` (a freshly started server
/// may not listen yet); reads and writes time out after 5 s.
pub fn connect(port: u16, patience: Duration) -> Result<TcpStream, String> {
    let deadline = Instant::now() + patience;
    loop {
        match TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(2)) {
            Ok(s) => {
                let timeout = Some(Duration::from_secs(5));
                s.set_read_timeout(timeout).map_err(|e| e.to_string())?;
                s.set_write_timeout(timeout).map_err(|e| e.to_string())?;
                return Ok(s);
            }
            Err(e) if Instant::now() >= deadline => return Err(format!("connect {port}: {e}")),
            Err(_) => std::thread::sleep(Duration::from_millis(25)),
        }
    }
}

/// Nothing accepts connections on the port (now, within a second).
pub fn port_closed(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(1)).is_err()
}

/// A TCP round trip to an echo server: send a line, expect it back.
pub fn tcp_echo(port: u16) -> Result<(), String> {
    let line = format!("hello from the test {} {}\n", std::process::id(), port);
    let mut s = connect(port, PATIENCE)?;
    s.write_all(line.as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    s.shutdown(Shutdown::Write).map_err(|e| e.to_string())?;
    let mut got = String::new();
    s.read_to_string(&mut got)
        .map_err(|e| format!("receive: {e}"))?;
    if got == line {
        Ok(())
    } else {
        Err(format!("sent {line:?}, got back {got:?}"))
    }
}

/// An HTTP response.
#[derive(Debug, Clone)]
pub struct Http {
    /// e.g. `HTTP/1.1 200 OK`
    pub status_line: String,
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl std::fmt::Display for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}\r\n\r\n{}", self.head, self.body)
    }
}

/// A plain HTTP/1.0 GET (User-Agent: servicectl-test, which shows in access logs).
pub fn http_get(port: u16, path: &str) -> Result<Http, String> {
    let mut s = connect(port, PATIENCE)?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: localhost\r\nUser-Agent: servicectl-test\r\n\r\n"
    )
    .map_err(|e| format!("send: {e}"))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .map_err(|e| format!("receive: {e}"))?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status_line = head.lines().next().unwrap_or("").to_string();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("not an HTTP response: {text:?}"))?;
    Ok(Http {
        status_line,
        status,
        head: head.to_string(),
        body: body.to_string(),
    })
}

/// Send one RESP command to redis and read one reply (up to the end of a bulk string).
pub fn redis(port: u16, args: &[&str]) -> Result<String, String> {
    let mut s = connect(port, PATIENCE)?;
    let mut request = format!("*{}\r\n", args.len());
    for a in args {
        request.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    s.write_all(request.as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf).map_err(|e| format!("receive: {e}"))?;
        if n == 0 {
            break;
        }
        reply.extend_from_slice(&buf[..n]);
        if complete_resp(&reply) {
            break;
        }
    }
    let _ = s.shutdown(Shutdown::Both);
    Ok(String::from_utf8_lossy(&reply).into_owned())
}

/// A whole simple reply (`+…\r\n`, `-…\r\n`) or bulk string (`$N\r\n…\r\n`).
fn complete_resp(reply: &[u8]) -> bool {
    let text = String::from_utf8_lossy(reply);
    let Some((first, rest)) = text.split_once("\r\n") else {
        return false;
    };
    match first.strip_prefix('$') {
        Some(len) => len
            .parse::<usize>()
            .map_or(true, |len| rest.len() >= len + 2),
        None => true,
    }
}

/// RESP PING to redis: expects +PONG.
pub fn redis_ping(port: u16) -> Result<(), String> {
    let reply = redis(port, &["PING"])?;
    if reply == "+PONG\r\n" {
        Ok(())
    } else {
        Err(format!("redis answered {reply:?}"))
    }
}

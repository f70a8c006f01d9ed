//! The readiness and health probes the supervisor runs as jobs (service_ready unset,
//! tcp, http): each answers pass or fail with a one-line detail. notify and log are not
//! probes: events tell them (the notify socket, the output file).

use crate::config::settings::Ready;
use crate::playpen::Playpen;
use crate::service::prepare::Prepared;
use crate::service::status;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Run the probe of `prepared` for its process `pid`, within `limit`.
pub fn probe(
    playpen: &Playpen,
    prepared: &Prepared,
    limit: Duration,
    pid: Option<i32>,
) -> (bool, String) {
    let outcome = match &prepared.settings.ready {
        Ready::Tcp(var) => port_of(prepared, var.as_deref()).and_then(|(label, port)| {
            tcp(port, limit, pid).map(|()| format!("tcp: {label}={port} accepts"))
        }),
        Ready::Http { var, path } => port_of(prepared, Some(var)).and_then(|(label, port)| {
            http(port, path, limit, pid)
                .map(|status| format!("http: GET {path} on {label}={port}: {status}"))
        }),
        _ => {
            return match status::ping(playpen, prepared, Some(limit)) {
                Ok(r) => (r.ok, format!("{}: {}", r.by, r.detail)),
                Err(e) => (false, e.to_string()),
            };
        }
    };
    match outcome {
        Ok(detail) => (true, detail),
        Err(detail) => (false, detail),
    }
}

/// The typed port `var` names (None: the service's first).
fn port_of(prepared: &Prepared, var: Option<&str>) -> Result<(String, u16), String> {
    let found = match var {
        Some(v) => prepared.ports.iter().find(|(n, _)| n == v),
        None => prepared.ports.first(),
    };
    found
        .map(|(n, p)| (n.clone(), *p))
        .ok_or_else(|| format!("{} has no port value", var.unwrap_or("the service")))
}

fn connect(port: u16, limit: Duration) -> Result<TcpStream, String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, limit.max(Duration::from_millis(50)))
        .map_err(|e| format!("tcp: connect to 127.0.0.1:{port}: {e}"))
}

/// The listener must be the service's: a stranger on the port never makes it ready.
fn owned(port: u16, pid: Option<i32>) -> Result<(), String> {
    match pid {
        Some(pid) => crate::process::holders::tcp_port_held_by_service(port, pid),
        // No tracked process (service_no_pidfile): nothing to hold it against.
        None => Ok(()),
    }
}

/// A TCP connect to 127.0.0.1:`port` succeeds and the listener is the service's.
pub fn tcp(port: u16, limit: Duration, pid: Option<i32>) -> Result<(), String> {
    drop(connect(port, limit)?);
    owned(port, pid).map_err(|e| format!("tcp: {e}"))
}

/// `GET PATH` answers with a status below 400 (and the listener is the service's).
/// The status line, such as `HTTP/1.0 200 OK`.
pub fn http(port: u16, path: &str, limit: Duration, pid: Option<i32>) -> Result<String, String> {
    let mut stream = connect(port, limit)?;
    let _ = stream.set_read_timeout(Some(limit.max(Duration::from_millis(50))));
    let _ = stream.set_write_timeout(Some(limit.max(Duration::from_millis(50))));
    let request = format!(
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: servicectl\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("http: cannot send the request: {e}"))?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while head.len() < 1024 {
        match stream.read(&mut byte) {
            Ok(1) if byte[0] == b'\n' => break,
            Ok(1) => head.push(byte[0]),
            Ok(_) => break,
            Err(e) => return Err(format!("http: no answer: {e}")),
        }
    }
    let line = String::from_utf8_lossy(&head).trim().to_string();
    let code: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("http: not an HTTP answer: {line:?}"))?;
    if code >= 400 {
        return Err(format!("http: GET {path} answered {line}"));
    }
    owned(port, pid).map_err(|e| format!("http: {e}"))?;
    Ok(line)
}

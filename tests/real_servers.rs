//! The real proof: the sample packages nginx and redis (packages/), installed with
//! `servicectl package install` into temporary playpens, their config templates rendered
//! from PORT_PREFIX + offset and var/ paths, Debian's nginx and redis-server started by
//! servicectl, and both checked over the network with raw TCP (HTTP/1.0 GET, RESP PING).
//! Two playpens with different PORT_PREFIX run side by side.
//!
//! nginx and redis-server must be installed (scripts/install-deps does it, CI runs it
//! before the tests). When they are missing these tests fail, saying so: they are the
//! evidence that servicectl runs real servers, and a skip would hide its absence.

use crate::common::*;
use std::path::Path;
use std::time::Duration;

const NGINX_OFFSET: u16 = 80;
const REDIS_OFFSET: u16 = 79;

/// Fail (not skip) with a clear message when a server binary is missing.
fn require_servers() {
    for (what, path, package) in [
        ("nginx", "/usr/sbin/nginx", "nginx-light (or nginx)"),
        ("redis-server", "/usr/bin/redis-server", "redis-server"),
    ] {
        assert!(
            Path::new(path).is_file(),
            "{what} is not installed ({path} does not exist): these tests start the real \
             Debian {what}; install it with scripts/install-deps (apt-get install {package})"
        );
    }
}

/// A playpen with the nginx and redis sample packages installed and started on a
/// PORT_PREFIX of its own, whose `offsets` are free.
fn playpen_with_servers(offsets: &[u16]) -> Playpen {
    let pen = Playpen::new();
    pen.reserve_ports(offsets);
    for package in ["nginx", "redis"] {
        pen.install(&sample(package))
            .ok()
            .out_says(&[&format!("installed {package}-1.0")]);
    }
    pen.role_services(&["nginx", "redis"], "");
    let out = pen.run(&["start", "nginx", "redis"]);
    assert_eq!(
        out.code,
        0,
        "start nginx redis failed:\n{out}\noutput files:{}",
        pen.outputs()
    );
    out.no_panic()
        .out_says(&["nginx: started", "redis: started"]);
    pen
}

/// Wait for nginx to answer 200 on `port` with a body containing `needle`.
#[track_caller]
fn assert_serves(pen: &Playpen, port: u16, needle: &str) {
    let page = http_get(port, "/").unwrap_or_else(|e| {
        panic!(
            "nginx does not answer on 127.0.0.1:{port}: {e}{}",
            pen.outputs()
        )
    });
    let (status, body) = (page.status_line, page.body);
    assert!(
        status.starts_with("HTTP/1.") && status.contains(" 200"),
        "GET / on {port}: {status}\n{body}"
    );
    assert!(
        body.contains(needle),
        "GET / on {port} did not return the page ({needle:?}):\n{body}"
    );
}

#[track_caller]
fn assert_pong(pen: &Playpen, port: u16) {
    let reply = redis(port, &["PING"]).unwrap_or_else(|e| {
        panic!(
            "redis does not answer on 127.0.0.1:{port}: {e}{}",
            pen.outputs()
        )
    });
    assert_eq!(reply, "+PONG\r\n", "PING on port {port}");
}

#[test]
fn nginx_and_redis_render_start_and_answer_over_the_network() {
    require_servers();
    let pen = playpen_with_servers(&[NGINX_OFFSET, REDIS_OFFSET, 90]);
    let prefix = pen.prefix();
    let root = pen.root_str();
    let (nginx_port, redis_port) = (prefix + NGINX_OFFSET, prefix + REDIS_OFFSET);

    // The rendered configs: ports from PORT_PREFIX + offset, paths under var/.
    let nginx_conf = pen.read("var/etc/nginx/nginx.conf");
    for want in [
        format!("listen 127.0.0.1:{nginx_port};"),
        format!("pid \"{root}/var/nginx/nginx.pid\";"),
        format!("access_log \"{root}/var/nginx/logs/access.log\";"),
        format!("root \"{root}/ext/share/nginx/html\";"),
    ] {
        assert!(
            nginx_conf.contains(&want),
            "nginx.conf lacks {want:?}:\n{nginx_conf}"
        );
    }
    let redis_conf = pen.read("var/etc/redis/redis.conf");
    for want in [
        format!("\nport {redis_port}\n"),
        format!("\ndir \"{root}/var/redis\"\n"),
    ] {
        assert!(
            redis_conf.contains(&want),
            "redis.conf lacks {want:?}:\n{redis_conf}"
        );
    }
    let leftover = regex::Regex::new(r"__[A-Za-z][A-Za-z0-9_]*__").unwrap();
    for (name, text) in [("nginx.conf", &nginx_conf), ("redis.conf", &redis_conf)] {
        assert!(
            !leftover.is_match(text),
            "{name} still holds a placeholder:\n{text}"
        );
    }

    // Over the network.
    assert_serves(&pen, nginx_port, "servicectl nginx demo");
    assert_pong(&pen, redis_port);
    // redis-server runs with the rendered file (not some other redis on the machine).
    let info = redis(redis_port, &["INFO", "server"]).unwrap();
    assert!(
        info.contains(&format!("config_file:{root}/var/etc/redis/redis.conf")),
        "redis INFO server:\n{info}"
    );
    assert!(info.contains(&format!("tcp_port:{redis_port}")), "{info}");
    // nginx logs the request and keeps its pid file where the template said.
    let access_log = pen.path("var/nginx/logs/access.log");
    assert!(
        wait_until(Duration::from_secs(10), || std::fs::read_to_string(
            &access_log
        )
        .is_ok_and(|log| log.contains("servicectl-test"))),
        "no request logged in {}",
        access_log.display()
    );
    assert!(pen.path("var/nginx/nginx.pid").is_file());

    // servicectl's own view agrees.
    pen.run(&["status"]).ok();
    pen.run(&["ping"]).ok();

    // Reload with a new port: restart (service_hup=1) renders nginx.conf again, nginx -t
    // checks it, SIGHUP; the same master answers on the new port.
    let master = pen.pid("nginx").expect("nginx pidfile");
    let new_port = prefix + 90;
    pen.role_services(&["nginx", "redis"], &format!("NGINX_PORT={new_port}\n"));
    pen.run(&["restart", "nginx"]).ok();
    assert!(
        pen.read("var/etc/nginx/nginx.conf")
            .contains(&format!("listen 127.0.0.1:{new_port};"))
    );
    assert_serves(&pen, new_port, "servicectl nginx demo");
    assert_eq!(
        pen.pid("nginx"),
        Some(master),
        "a HUP reload keeps the master"
    );
    assert!(
        wait_until(Duration::from_secs(10), || port_closed(nginx_port)),
        "nginx still listens on the old port {nginx_port} after the reload"
    );

    // stop: nothing answers, nothing of this playpen runs.
    pen.run(&["stop"]).ok();
    assert!(port_closed(new_port) && port_closed(redis_port));
    assert!(
        wait_until(Duration::from_secs(10), || pen.processes().is_empty()),
        "processes left after stop: {:?}",
        pen.processes()
    );
}

#[test]
fn two_playpens_with_different_port_prefixes_run_side_by_side() {
    require_servers();
    let a = playpen_with_servers(&[NGINX_OFFSET, REDIS_OFFSET]);
    let b = playpen_with_servers(&[NGINX_OFFSET, REDIS_OFFSET]);
    let (prefix_a, prefix_b) = (a.prefix(), b.prefix());
    assert_ne!(prefix_a, prefix_b);

    // Different pages per playpen, so each answer proves which nginx gave it.
    for (pen, tag) in [(&a, "playpen A"), (&b, "playpen B")] {
        pen.write(
            "ext/share/nginx/html/index.html",
            &format!("<html><body>{tag}</body></html>\n"),
        );
    }
    for (pen, prefix, tag) in [(&a, prefix_a, "playpen A"), (&b, prefix_b, "playpen B")] {
        assert_serves(pen, prefix + NGINX_OFFSET, tag);
        assert_pong(pen, prefix + REDIS_OFFSET);
        let info = redis(prefix + REDIS_OFFSET, &["INFO", "server"]).unwrap();
        assert!(
            info.contains(&format!(
                "config_file:{}/var/etc/redis/redis.conf",
                pen.root_str()
            )),
            "{info}"
        );
        // A key set in one redis is not in the other.
        assert_eq!(
            redis(prefix + REDIS_OFFSET, &["SET", "owner", tag]).unwrap(),
            "+OK\r\n"
        );
    }
    assert_eq!(
        redis(prefix_a + REDIS_OFFSET, &["GET", "owner"]).unwrap(),
        "$9\r\nplaypen A\r\n"
    );
    assert_eq!(
        redis(prefix_b + REDIS_OFFSET, &["GET", "owner"]).unwrap(),
        "$9\r\nplaypen B\r\n"
    );

    // Pidfiles and processes are per playpen.
    for name in ["nginx", "redis"] {
        let (pa, pb) = (a.pid(name).unwrap(), b.pid(name).unwrap());
        assert_ne!(pa, pb);
        assert!(a.processes().contains(&pa) && b.processes().contains(&pb));
    }

    // Stopping A leaves B serving.
    a.run(&["stop"]).ok();
    assert!(port_closed(prefix_a + NGINX_OFFSET) && port_closed(prefix_a + REDIS_OFFSET));
    assert_serves(&b, prefix_b + NGINX_OFFSET, "playpen B");
    assert_pong(&b, prefix_b + REDIS_OFFSET);
    b.run(&["status"]).ok();
    assert_ne!(a.run(&["status"]).no_panic().code, 0);
}

//! Fitting the user's world: the port map and the port-holder check with real
//! sockets and real servers, the man page, shell completions of service names, and the
//! systemd export checked by the real `systemd-analyze verify`.

use crate::common::*;

use std::collections::BTreeSet;
use std::path::Path;

const NGINX_OFFSET: u16 = 80;
const REDIS_OFFSET: u16 = 79;

/// Fail (not skip) with a clear message when a server binary is missing.
fn require_servers() {
    for (what, path) in [
        ("nginx", "/usr/sbin/nginx"),
        ("redis-server", "/usr/bin/redis-server"),
    ] {
        assert!(
            Path::new(path).is_file(),
            "{what} is not installed ({path}): run scripts/install-deps"
        );
    }
}

/// bin/listen: binds a TCP listener on `::` (every local address, IPv4 and IPv6) for the
/// port in each variable named on its command line, then waits to be stopped.
fn listener_program(pp: &Playpen) {
    pp.write_exec(
        "bin/listen",
        "#!/usr/bin/env python3\n\
         import os, signal, socket, sys\n\
         held = []\n\
         for var in sys.argv[1:]:\n\
         \x20   s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)\n\
         \x20   s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         \x20   s.bind(('::', int(os.environ[var])))\n\
         \x20   s.listen()\n\
         \x20   held.append(s)\n\
         signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\n\
         while True:\n\
         \x20   signal.pause()\n",
    );
}

/// `ports --json` as (service, variable) → entry.
fn port_map(pp: &Playpen) -> Vec<serde_json::Value> {
    pp.run(&["ports", "--json"])
        .ok()
        .json()
        .as_array()
        .cloned()
        .unwrap()
}

fn entry<'a>(map: &'a [serde_json::Value], service: &str, variable: &str) -> &'a serde_json::Value {
    map.iter()
        .find(|e| e["service"] == service && e["variable"] == variable)
        .unwrap_or_else(|| panic!("no {service} {variable} in {map:#?}"))
}

/// The process name `ps` and `top` show (/proc/PID/comm).
fn comm(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// A playpen with the nginx and redis sample packages, PORT_PREFIX `prefix` and
/// PLAYPEN_TAG `tag` (not started).
fn servers_playpen(prefix: Option<u16>, tag: &str) -> Playpen {
    let pp = Playpen::new();
    let prefix = prefix.unwrap_or_else(|| pp.reserve_ports(&[NGINX_OFFSET, REDIS_OFFSET]));
    for package in ["nginx", "redis"] {
        pp.install(&sample(package)).ok();
    }
    pp.role_config(&format!(
        "playpen_services=\"nginx redis\"\nPORT_PREFIX={prefix}\nPLAYPEN_TAG={tag}\n"
    ));
    pp
}

#[test]
fn three_playpens_side_by_side_collide_in_nothing_and_a_shared_prefix_is_refused() {
    require_servers();
    let pens: Vec<Playpen> = ["red", "green", "blue"]
        .iter()
        .map(|tag| servers_playpen(None, tag))
        .collect();
    for pp in &pens {
        let out = pp.run(&["start"]);
        assert_eq!(out.code, 0, "{out}\n{}", pp.outputs());
        pp.wait_ping(&["nginx", "redis"]);
    }

    let mut ports = BTreeSet::new();
    let mut pids = BTreeSet::new();
    let mut names = BTreeSet::new();
    let mut pidfiles = BTreeSet::new();
    for (pp, tag) in pens.iter().zip(["red", "green", "blue"]) {
        let map = port_map(pp);
        assert_eq!(map.len(), 2, "{map:#?}");
        for e in &map {
            assert!(
                ports.insert(e["port"].as_u64().unwrap()),
                "port used twice: {e}"
            );
            assert_eq!(e["how"], "offset", "{e}");
        }
        assert!(
            wait_until(PATIENCE, || port_map(pp)
                .iter()
                .all(|e| e["listening"] == true)),
            "not every port listens: {:#?}",
            port_map(pp)
        );
        for service in ["nginx", "redis"] {
            let pid = pp.running_pid(service);
            assert!(pids.insert(pid));
            assert!(pidfiles.insert(pp.pidfile(service)));
            let name = comm(pid);
            assert_eq!(
                name,
                format!("{service}-{tag}"),
                "ps shows the tagged run name"
            );
            assert!(names.insert(name));
        }
        // check sees each playpen's own servers holding their own ports: no conflict.
        pp.run(&["check"]).ok();
        pp.run(&["start"]).ok().says(&["already running"]);
    }
    assert_eq!(
        (ports.len(), pids.len(), names.len(), pidfiles.len()),
        (6, 6, 6, 6)
    );

    // A fourth playpen on the first one's PORT_PREFIX is refused before anything starts,
    // naming the port, the variable, the process and the playpen and service holding it.
    let first = &pens[0];
    let clash = servers_playpen(Some(first.prefix()), "clash");
    let nginx_port = first.prefix() + NGINX_OFFSET;
    let redis_port = first.prefix() + REDIS_OFFSET;
    let nginx_pid = first.running_pid("nginx");
    let redis_pid = first.running_pid("redis");
    for args in [&["check"][..], &["start"][..]] {
        clash.run(args).fails().says(&[
            &format!("port {nginx_port} (NGINX_PORT) is already in use"),
            &format!("TCP 127.0.0.1:{nginx_port}"),
            &format!("PID {nginx_pid} (nginx: master process"),
            &format!("service nginx of the playpen {}", first.root_str()),
            &format!("port {redis_port} (REDIS_PORT) is already in use"),
            &format!("PID {redis_pid} (redis-red"),
            &format!("service redis of the playpen {}", first.root_str()),
            &format!("servicectl --playpen {} stop nginx", first.root_str()),
        ]);
    }
    assert!(
        clash.processes().is_empty(),
        "the refused playpen started something"
    );
    assert!(clash.pid("nginx").is_none() && clash.pid("redis").is_none());
    // The first playpen is untouched.
    first.run(&["status"]).ok();
}

#[test]
fn a_service_on_its_own_port_is_no_conflict_and_status_marks_what_listens() {
    let pp = Playpen::with_ports(&["web"], &[10, 11]);
    listener_program(&pp);
    pp.service(
        "web",
        "service_program=listen\nservice_flags=WEB_PORT\nservice_halt_timeout=5\n\
         service_required_envars=\"WEB_PORT SPARE_PORT\"\n\
         envar_WEB_PORT_type=port\nWEB_PORT_OFFSET=10\n\
         envar_SPARE_PORT_type=port\nSPARE_PORT_OFFSET=11\n",
    );
    let (web, spare) = (pp.port(10), pp.port(11));
    pp.start(&["web"]);
    let listening = || {
        let s = pp.run(&["status", "--json"]).ok().json();
        s[0]["listening"].clone()
    };
    assert!(
        wait_until(PATIENCE, || listening() == serde_json::json!([web])),
        "status --json: {}",
        pp.run(&["status", "--json"]).stdout
    );
    pp.run(&["status"])
        .ok()
        .out_says(&[&format!("{web}, {spare} (closed)")]);
    // Its own process holds its port: not a conflict for check, and start says it runs.
    pp.run(&["check", "web"]).ok().out_says(&["web: ok"]);
    pp.run(&["start", "web"])
        .ok()
        .out_says(&["already running"]);
    let map = port_map(&pp);
    assert_eq!(entry(&map, "web", "WEB_PORT")["listening"], true);
    assert_eq!(
        entry(&map, "web", "WEB_PORT")["protocols"],
        serde_json::json!(["tcp"])
    );
    assert_eq!(entry(&map, "web", "SPARE_PORT")["listening"], false);
    pp.run(&["stop", "web"]).ok();
    assert!(
        wait_until(PATIENCE, || !port_map(&pp)
            .iter()
            .any(|e| e["listening"] == true)),
        "still listening after stop"
    );
}

#[test]
fn ports_say_how_each_port_is_worked_out_and_udp_and_ipv6_holders_are_named() {
    let pp = Playpen::with_ports(&["api"], &[20, 21, 22]);
    let (a, b, c) = (pp.port(20), pp.port(21), pp.port(22));
    listener_program(&pp);
    let config = pp.service(
        "api",
        &format!(
            "service_program=listen\nservice_flags=A_PORT\n\
             service_optional_envars=\"A_PORT B_PORT C_PORT\"\n\
             envar_A_PORT_type=port\nA_PORT_OFFSET=20\n\
             envar_B_PORT_type=port\nB_PORT={b}\n\
             envar_C_PORT_type=port\nenvar_C_PORT_default={c}\n"
        ),
    );
    let map = port_map(&pp);
    let (ea, eb, ec) = (
        entry(&map, "api", "A_PORT"),
        entry(&map, "api", "B_PORT"),
        entry(&map, "api", "C_PORT"),
    );
    assert_eq!(
        (ea["port"].as_u64(), &ea["how"]),
        (Some(a.into()), &"offset".into())
    );
    assert_eq!(
        ea["source"],
        format!("PORT_PREFIX + A_PORT_OFFSET = {} + 20", pp.prefix())
    );
    assert_eq!(
        (eb["port"].as_u64(), &eb["how"]),
        (Some(b.into()), &"explicit".into())
    );
    assert_eq!(eb["source"], format!("set in {}", config.display()));
    assert_eq!(
        (ec["port"].as_u64(), &ec["how"]),
        (Some(c.into()), &"default".into())
    );
    let table = golden(&pp, &pp.run(&["ports"]).ok().stdout);
    assert!(
        table.starts_with("SERVICE VARIABLE PORT LISTENING FROM\n"),
        "{table}"
    );
    assert!(
        table.contains("A_PORT 8020 no PORT_PREFIX + A_PORT_OFFSET = 8000 + 20\n"),
        "{table}"
    );

    // This test process holds B over UDP on IPv6 loopback and C over TCP on every IPv6
    // address: check and start refuse, naming the socket and this process.
    let udp = std::net::UdpSocket::bind(("::1", b)).expect("bind udp");
    let tcp = std::net::TcpListener::bind(("::", c)).expect("bind tcp");
    let me = std::process::id();
    for args in [&["check", "api"][..], &["start", "api"][..]] {
        pp.run(args).fails().says(&[
            &format!("port {b} (B_PORT) is already in use: UDP [::1]:{b} is held by PID {me}"),
            &format!("port {c} (C_PORT) is already in use: TCP [::]:{c} is held by PID {me}"),
        ]);
    }
    assert!(pp.pid("api").is_none(), "nothing started");
    let map = port_map(&pp);
    assert_eq!(
        entry(&map, "api", "B_PORT")["protocols"],
        serde_json::json!(["udp"])
    );
    assert_eq!(entry(&map, "api", "C_PORT")["listening"], true);
    drop((udp, tcp));
    pp.run(&["check", "api"]).ok();

    // The map follows the config: a new PORT_PREFIX in the role config, or in the
    // environment, is seen at once (the cache notices).
    let other = pp.reserve_ports(&[20]);
    pp.role_config(&format!("playpen_services=\"api\"\nPORT_PREFIX={other}\n"));
    let map = port_map(&pp);
    assert_eq!(entry(&map, "api", "A_PORT")["port"], other + 20);
    pp.role_config("playpen_services=\"api\"\n");
    let out = pp.run_env(
        &["ports", "--json"],
        &[("PORT_PREFIX", &pp.prefix().to_string())],
    );
    let map: Vec<serde_json::Value> = out.ok().json().as_array().cloned().unwrap();
    assert_eq!(entry(&map, "api", "A_PORT")["port"], a);
    let out = pp.run_env(&["ports", "--json"], &[("PORT_PREFIX", &other.to_string())]);
    let map: Vec<serde_json::Value> = out.ok().json().as_array().cloned().unwrap();
    assert_eq!(entry(&map, "api", "A_PORT")["port"], other + 20);
}

#[test]
fn the_man_page_is_up_to_date() {
    let out = run_command(bare_command().arg("__man"));
    out.ok();
    let shipped = std::fs::read_to_string(repo().join("share/man/servicectl.1"))
        .expect("share/man/servicectl.1 exists");
    assert!(
        out.stdout == shipped,
        "share/man/servicectl.1 is out of date with the clap definitions: run scripts/gen-man"
    );
    // One subsection per (visible) command, the exit codes and environment variables.
    for needle in [
        ".SS \"servicectl start\"",
        ".SS \"servicectl ports\"",
        ".SS \"servicectl package install\"",
        ".SS \"servicectl edit\"",
        ".SS \"servicectl boot enable\"",
        ".SS \"servicectl boot status\"",
        "SERVICECTL_UNIT_DIR",
        ".SH \"EXIT STATUS\"",
        ".SH \"ENVIRONMENT\"",
        "PORT_PREFIX",
    ] {
        assert!(shipped.contains(needle), "the man page lacks {needle:?}");
    }
    assert!(
        !shipped.contains("__man"),
        "hidden commands stay out of the page"
    );
    // The page renders without warnings.
    if let Ok(groff) = std::process::Command::new("groff")
        .args(["-man", "-ww", "-z"])
        .arg(repo().join("share/man/servicectl.1"))
        .output()
    {
        assert!(
            groff.stderr.is_empty(),
            "groff warns: {}",
            String::from_utf8_lossy(&groff.stderr)
        );
    }
}

/// Drive the bash completion script as bash would on TAB: COMP_WORDS and COMP_CWORD set,
/// the completion function called, COMPREPLY printed one per line.
fn bash_complete(pp: &Playpen, script: &Path, line: &[&str]) -> Vec<String> {
    let words: Vec<String> = std::iter::once(BIN.to_string())
        .chain(line.iter().map(|w| w.to_string()))
        .collect();
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let program = format!(
        "source '{}'\nCOMP_WORDS=({})\nCOMP_CWORD={}\n_servicectl\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        script.display(),
        quoted.join(" "),
        words.len() - 1
    );
    let out = run_command(
        std::process::Command::new("bash")
            .arg("--norc")
            .arg("-c")
            .arg(program)
            .current_dir(&pp.root)
            .env_remove("PLAYPEN_ROOT"),
    );
    out.ok();
    out.stdout
        .lines()
        .map(str::to_string)
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn bash_completes_the_service_names_of_the_playpen_at_hand() {
    let pp = Playpen::new();
    pp.role_config("playpen_services=\"nginx\"\n");
    // A packaged service, a project-local one, one whose name has a dash and digits.
    pp.package("nginx", "1.0", "service_program=/usr/sbin/nginx\n");
    pp.package("ngircd", "2.1", "service_program=/bin/true\n");
    pp.service("worker-2", "service_program=/bin/true\n");
    // A fragment that would show if it were evaluated.
    pp.service(
        "noisy",
        "touch \"$PLAYPEN_ROOT/evaluated\"\nservice_program=/bin/true\n",
    );
    let script = pp.write(
        "completion.bash",
        &pp.run(&["completions", "bash"]).ok().stdout,
    );
    assert_eq!(
        std::fs::read_to_string(&script).unwrap(),
        std::fs::read_to_string(repo().join("share/completions/servicectl.bash")).unwrap(),
        "completions bash prints the shipped script"
    );
    assert_eq!(
        bash_complete(&pp, &script, &["start", "ng"]),
        ["nginx", "ngircd"]
    );
    assert_eq!(bash_complete(&pp, &script, &["start", "ngin"]), ["nginx"]);
    assert_eq!(
        bash_complete(&pp, &script, &["stop", "nginx", ""]),
        ["ngircd", "noisy", "worker-2"],
        "names already on the line are not offered again"
    );
    assert_eq!(
        bash_complete(&pp, &script, &["print-config", "wo"]),
        ["worker-2"]
    );
    assert_eq!(
        bash_complete(&pp, &script, &["sub-conf", "--service", "no"]),
        ["noisy"]
    );
    let commands = bash_complete(&pp, &script, &["st"]);
    assert_eq!(commands, ["start", "stop", "status"]);
    assert!(bash_complete(&pp, &script, &["sta"]).contains(&"status".to_string()));
    assert!(
        bash_complete(&pp, &script, &["__"]).is_empty(),
        "hidden commands are not offered"
    );
    assert_eq!(
        bash_complete(&pp, &script, &["package", ""]),
        ["install", "remove"]
    );
    assert_eq!(
        bash_complete(&pp, &script, &["boot", ""]),
        ["enable", "disable", "status"]
    );
    assert_eq!(
        bash_complete(&pp, &script, &["boot", "enable", "--via", ""]),
        ["systemd", "cron"]
    );
    assert_eq!(bash_complete(&pp, &script, &["edit", "wo"]), ["worker-2"]);
    assert_eq!(
        bash_complete(&pp, &script, &["edit", "worker-2", "--re"]),
        ["--restart", "--recover"]
    );
    assert!(bash_complete(&pp, &script, &["completions", ""]).contains(&"zsh".to_string()));
    assert!(bash_complete(&pp, &script, &["status", "--j"]) == ["--json"]);
    // --playpen on the line names the playpen, wherever the shell is.
    let other = Playpen::new();
    other.service("redis", "service_program=/bin/true\n");
    let root = other.root_str();
    assert_eq!(
        bash_complete(&pp, &script, &["--playpen", &root, "start", "r"]),
        ["redis"]
    );
    // `init DIR`: bash completes directories.
    std::fs::create_dir_all(pp.path("somewhere")).unwrap();
    assert_eq!(bash_complete(&pp, &script, &["init", "som"]), ["somewhere"]);
    assert!(
        !pp.exists("evaluated"),
        "completion evaluated a config fragment"
    );

    // zsh and fish get their own scripts, calling the same entry point.
    for (shell, marker) in [
        ("zsh", "#compdef servicectl"),
        ("fish", "complete -c servicectl"),
    ] {
        let text = pp.run(&["completions", shell]).ok().stdout.clone();
        assert!(
            text.contains(marker) && text.contains("__complete --"),
            "{shell}:\n{text}"
        );
    }
    let out = pp.run(&["__complete", "--", "start", "ng"]);
    assert_eq!(out.ok().stdout, "nginx\nngircd\n");
    // Where zsh and fish are installed, their scripts parse, and fish is driven too.
    let zsh = repo().join("share/completions/_servicectl");
    let fish = repo().join("share/completions/servicectl.fish");
    if let Ok(out) = std::process::Command::new("zsh")
        .arg("-n")
        .arg(&zsh)
        .output()
    {
        assert!(
            out.status.success(),
            "zsh -n: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    if let Ok(out) = std::process::Command::new("fish")
        .arg("-n")
        .arg(&fish)
        .output()
    {
        assert!(
            out.status.success(),
            "fish -n: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bin_dir = Path::new(BIN).parent().unwrap();
        let path = format!(
            "{}:{}",
            bin_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out = run_command(
            std::process::Command::new("fish")
                .arg("--no-config")
                .arg("-c")
                .arg(format!(
                    "source '{}'; complete -C 'servicectl start ng'",
                    fish.display()
                ))
                .current_dir(&pp.root)
                .env("PATH", path)
                .env_remove("PLAYPEN_ROOT"),
        );
        assert_eq!(out.ok().stdout, "nginx\nngircd\n");
    }
}

/// The text of one exported file.
fn unit(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn export_systemd_writes_units_that_systemd_analyze_verify_accepts() {
    require_servers();
    let pp = servers_playpen(None, "demo");
    let prefix = pp.prefix();
    pp.install_sleep("bin/worker");
    pp.service(
        "worker",
        "service_program=worker\nservice_run_name=work\n\
         service_flags='1000 \"100% sure\" \"$HOME\" \"quoted words\"'\n\
         service_depends=redis\nservice_restart_policy=3\nservice_halt_timeout=2.5\n\
         service_pre_start='mkdir -p \"$LOCAL_VAR/work\"'\n\
         service_pre_stop='echo stopping'\nservice_post_stop='rm -rf \"$LOCAL_VAR/work\"'\n\
         service_fail_fast=1\nWORKER_NOTE=\"it's \\$5 \\\"now\\\"\"\nexport WORKER_NOTE\n",
    );
    pp.service(
        "tick",
        "service_type=cron\nservice_cron_time='*/5 9-17 * * MON-FRI'\n\
         service_cron_command='echo tick >> \"$LOCAL_VAR/ticks\"'\n",
    );
    pp.service(
        "echod",
        "service_type=inetd\nservice_port=ECHO_PORT\nservice_protocol=tcp\n\
         service_inetd_command=/bin/cat\nservice_inetd_max=8\n\
         service_required_envars=ECHO_PORT\nenvar_ECHO_PORT_type=port\nECHO_PORT_OFFSET=7\n",
    );
    pp.service(
        "dns",
        "service_type=inetd\nservice_port=5353\nservice_protocol=udp\nservice_bind=::1\n\
         service_inetd_command=/bin/cat\n",
    );
    // Readiness and liveness as systemd says them, or names them in a comment.
    pp.service(
        "migrate",
        "service_program=worker\nservice_type=oneshot\nservice_flags=0\n",
    );
    pp.service(
        "api",
        "service_program=worker\nservice_flags=1000\nservice_ready=notify\nservice_watchdog_sec=5\n",
    );
    pp.service(
        "probe",
        "service_program=worker\nservice_flags=1000\nservice_ready=tcp:PROBE_PORT\n\
         service_health_interval=10\nservice_required_envars=PROBE_PORT\nservice_watch=\"bin/*\"\n\
         envar_PROBE_PORT_type=port\nPROBE_PORT_OFFSET=9\n",
    );
    pp.role_config(&format!(
        "playpen_services=\"nginx redis worker tick echod dns migrate api probe\"\nPORT_PREFIX={prefix}\nPLAYPEN_TAG=demo\n"
    ));
    let out = pp.run(&["export", "systemd", "--json"]);
    let exported = out.ok().json();
    let dir = std::path::PathBuf::from(exported["dir"].as_str().unwrap());
    assert_eq!(dir, pp.path("var/export/systemd"));
    assert_eq!(exported["target"], "demo.target");

    // systemd itself reads every unit: no warning, no error.
    let units: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".env"))
        .collect();
    assert_eq!(units.len(), 13, "{units:?}");
    let verify = run_command(
        std::process::Command::new(systemd_analyze())
            .arg("verify")
            .arg("--man=no")
            .args(units.iter().map(|u| dir.join(u)))
            .env("SYSTEMD_UNIT_PATH", format!("{}:", dir.display()))
            .env("SYSTEMD_LOG_LEVEL", "notice"),
    );
    assert!(
        verify.code == 0 && verify.stderr.trim().is_empty() && verify.stdout.trim().is_empty(),
        "systemd-analyze verify:\n{verify}"
    );

    let root = pp.root_str();
    let nginx = unit(&dir, "demo-nginx.service");
    for line in [
        format!("EnvironmentFile={}/demo-nginx.env", dir.display()),
        format!("WorkingDirectory={root}"),
        format!(
            "ExecStart={root}/var/linkfarm/nginx-demo -p {root}/var/nginx/ -c {root}/var/etc/nginx/nginx.conf -e stderr"
        ),
        format!("ExecStartPre={root}/ext/services/nginx-1.0/pre-start nginx 1.0"),
        format!("ExecStartPre={BIN} --playpen {root} sub-conf --service nginx"),
        "ExecReload=/bin/kill -HUP $MAINPID".into(),
        "TimeoutStopSec=10s".into(),
        "KillMode=control-group".into(),
        "PartOf=demo.target".into(),
        "Restart=no".into(),
    ] {
        assert!(
            nginx.lines().any(|l| l == line),
            "nginx lacks {line:?}:\n{nginx}"
        );
    }
    assert!(
        pp.path("var/linkfarm/nginx-demo")
            .symlink_metadata()
            .is_ok()
    );
    let env = unit(&dir, "demo-nginx.env");
    assert!(
        env.contains(&format!("NGINX_PORT=\"{}\"\n", prefix + NGINX_OFFSET)),
        "{env}"
    );
    assert!(env.contains(&format!("SERVICE_PIDFILE=\"{root}/var/run/nginx.pid\"\n")));
    assert!(
        !env.contains("\nPATH="),
        "the inherited environment stays out:\n{env}"
    );

    let has = |name: &str, lines: &[&str]| {
        let text = unit(&dir, name);
        for line in lines {
            assert!(
                text.lines().any(|l| l == *line),
                "{name} lacks {line:?}:\n{text}"
            );
        }
    };
    has("demo-redis.service", &["Type=notify", "NotifyAccess=all"]);
    has(
        "demo-migrate.service",
        &["Type=oneshot", "RemainAfterExit=yes"],
    );
    has(
        "demo-api.service",
        &["Type=notify", "NotifyAccess=all", "WatchdogSec=5"],
    );
    has(
        "demo-probe.service",
        &[
            "Type=exec",
            "# servicectl: ready when a TCP connect to 127.0.0.1:$PROBE_PORT succeeds (service_ready); systemd has no such check",
            "# servicectl: health checked every 10 s (3 failures in a row restart it); systemd has no such check",
            "# servicectl: restarted when bin/* change (service_watch); a development aid, not exported (a .path unit could do it)",
        ],
    );

    let worker = unit(&dir, "demo-worker.service");
    for line in [
        "Requires=demo-redis.service",
        "After=demo-redis.service",
        &format!(
            "ExecStart={root}/var/linkfarm/work-demo 1000 \"100%% sure\" $$HOME \"quoted words\""
        ),
        "ExecStartPre=/bin/sh -c \"mkdir -p \\\"$$LOCAL_VAR/work\\\"\" worker worker",
        "ExecStop=/bin/sh -c \"echo stopping\" worker worker",
        "ExecStopPost=/bin/sh -c \"rm -rf \\\"$$LOCAL_VAR/work\\\"\" worker worker",
        "Restart=on-failure",
        "StartLimitBurst=4",
        "StartLimitIntervalSec=infinity",
        "TimeoutStopSec=2500ms",
        "Type=exec",
    ] {
        assert!(
            worker.lines().any(|l| l == line),
            "worker lacks {line:?}:\n{worker}"
        );
    }
    assert!(
        unit(&dir, "demo-worker.env").contains("WORKER_NOTE=\"it's \\$5 \\\"now\\\"\"\n"),
        "{}",
        unit(&dir, "demo-worker.env")
    );
    let timer = unit(&dir, "demo-tick.timer");
    assert!(
        timer.contains("OnCalendar=Mon..Fri *-*-* 09..17:00,05,10,15,20,25,30,35,40,45,50,55:00\n"),
        "{timer}"
    );
    assert!(unit(&dir, "demo-tick.service").contains("Type=oneshot\n"));
    let socket = unit(&dir, "demo-echod.socket");
    for line in [
        format!("ListenStream=127.0.0.1:{}", prefix + 7),
        "Accept=yes".into(),
        "MaxConnections=8".into(),
    ] {
        assert!(
            socket.lines().any(|l| l == line),
            "socket lacks {line:?}:\n{socket}"
        );
    }
    let handler = unit(&dir, "demo-echod@.service");
    assert!(
        handler.contains("StandardInput=socket\nStandardOutput=socket\n"),
        "{handler}"
    );
    assert!(unit(&dir, "demo-dns.socket").contains("ListenDatagram=[::1]:5353\nAccept=no\n"));
    let target = unit(&dir, "demo.target");
    for want in [
        "Wants=demo-nginx.service",
        "Wants=demo-redis.service",
        "Wants=demo-worker.service",
        "Wants=demo-tick.timer",
        "Wants=demo-echod.socket",
        "Wants=demo-dns.socket",
        "BindsTo=demo-worker.service",
    ] {
        assert!(
            target.lines().any(|l| l == want),
            "target lacks {want:?}:\n{target}"
        );
    }

    // Naming services exports them and what they depend on; --dir chooses the place.
    let elsewhere = tempfile::tempdir().unwrap();
    let out = pp.run(&[
        "export",
        "systemd",
        "worker",
        "--dir",
        elsewhere.path().to_str().unwrap(),
    ]);
    out.ok()
        .out_says(&["demo-worker.service", "demo-redis.service", "demo.target"]);
    assert!(!elsewhere.path().join("demo-nginx.service").exists());
}

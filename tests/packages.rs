//! Package integration (SPEC §3): the sample packages of packages/ installed into a
//! temporary playpen with `servicectl package install`, started, pinged for real,
//! reinstalled while running, removed; new-service / remove-service (which keeps the
//! lock file); profiles, `env` and share/load-config; packages that must be refused,
//! all or nothing.

use crate::common::*;

/// Every sample package, for real: install, start, ping (servicectl and directly over
/// the network), reload nginx with SIGHUP, reinstall each while it runs (the upgrade
/// path), remove — checking processes, files and the registry at every step.
#[test]
fn sample_packages_install_start_ping_upgrade_and_remove() {
    let pp = Playpen::with_services(&["redis", "nginx", "httpd-python", "echo"]);
    let samples = ["redis", "nginx", "httpd-python", "echo"];

    for name in samples {
        pp.install(&sample(name)).ok().says(&[
            &format!("installed {name}-1.0"),
            &format!("{name}: registered"),
        ]);
        assert!(
            pp.exists(&format!("ext/services/{name}-1.0/config")),
            "{name}: config installed"
        );
        assert!(
            pp.exists(&format!("ext/services/{name}-1.0/ping")),
            "{name}: ping installed"
        );
        assert!(
            pp.exists(&format!("ext/services/{name}-1.0.services")),
            "{name}: .services kept"
        );
        assert_eq!(
            pp.registry_line(name).as_deref(),
            Some(format!("{name}\tinit\tenable").as_str()),
            "{name} is registered, enabled:\n{}",
            pp.registry()
        );
    }
    // The files a package manager would have put in place.
    assert_eq!(
        pp.read("ext/etc/profile.d/echo-1.0.profile"),
        std::fs::read_to_string(sample("echo/echo-1.0.profile")).unwrap()
    );
    assert_eq!(
        pp.read("ext/etc/nginx/nginx.conf"),
        std::fs::read_to_string(sample("nginx/etc/nginx/nginx.conf")).unwrap()
    );
    assert!(
        pp.read("ext/share/httpd-python/www/index.html")
            .contains("servicectl httpd-python demo")
    );
    assert_eq!(pp.read("ext/share/echo/VERSION").trim(), "1.0");
    for program in [
        "ext/bin/echo-server",
        "ext/bin/httpd-python",
        "ext/services/echo-1.0/ping",
        "ext/services/nginx-1.0/pre-start",
    ] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(pp.path(program))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o111,
            0o111,
            "{program} is executable (mode {mode:o})"
        );
    }
    // new-service made the directories the rendered configs go to.
    assert!(
        pp.path("var/etc/redis").is_dir(),
        "var/etc/redis created by new-service"
    );
    assert!(
        pp.path("var/etc/nginx").is_dir(),
        "var/etc/nginx created by new-service"
    );

    pp.run(&["start"]).ok();
    let mut pids = std::collections::BTreeMap::new();
    for name in samples {
        pids.insert(name, pp.running_pid(name));
    }
    pp.wait_ping(&[])
        .shows_any_order(&pp, "redis: ok ({ROOT}/ext/services/redis-1.0/ping)\nnginx: ok ({ROOT}/ext/services/nginx-1.0/ping)\nhttpd-python: ok ({ROOT}/ext/services/httpd-python-1.0/ping)\necho: ok ({ROOT}/ext/services/echo-1.0/ping)\n");
    for name in samples {
        pp.run(&["ping", name]).ok();
    }
    pp.run(&["status"]).ok();

    // Directly over TCP, not through the packages' own ping scripts.
    tcp_echo(pp.port(7)).expect("echo echoes");
    let page = http_get(pp.port(81), "/").expect("httpd-python answers");
    assert_eq!(page.status, 200, "{page}");
    assert!(page.body.contains("servicectl httpd-python demo"), "{page}");
    let page = http_get(pp.port(80), "/").expect("nginx answers");
    assert_eq!(page.status, 200, "{page}");
    assert!(page.body.contains("servicectl nginx demo"), "{page}");
    redis_ping(pp.port(79)).expect("redis answers PING");

    // Rendered configs carry this playpen's ports and paths.
    let redis_conf = pp.read("var/etc/redis/redis.conf");
    assert!(
        redis_conf.contains(&format!("port {}", pp.port(79))),
        "{redis_conf}"
    );
    let nginx_conf = pp.read("var/etc/nginx/nginx.conf");
    assert!(
        nginx_conf.contains(&format!("listen 127.0.0.1:{};", pp.port(80))),
        "{nginx_conf}"
    );
    assert!(
        !nginx_conf.contains("__"),
        "every placeholder is replaced:\n{nginx_conf}"
    );

    // Processes show their run names and get the playpen's environment.
    let echo_env = environ(pids["echo"]);
    assert_eq!(
        echo_env.get("ECHO_PORT").map(String::as_str),
        Some(pp.port(7).to_string().as_str())
    );
    assert_eq!(
        echo_env.get("SERVICE_UPGRADED").map(String::as_str),
        Some("0")
    );
    assert_eq!(
        echo_env.get("ECHO_HOST").map(String::as_str),
        Some("127.0.0.1")
    );
    assert_eq!(
        std::fs::read_link(pp.path("var/linkfarm/echo")).unwrap(),
        pp.path("ext/bin/echo-server"),
        "argv0 symlink of echo"
    );

    // nginx reloads with SIGHUP: same master, new workers, still serving.
    let master = pids["nginx"];
    assert!(
        wait_until(PATIENCE, || !children(master).is_empty()),
        "nginx has workers"
    );
    let workers = children(master);
    pp.run(&["restart", "nginx"])
        .ok()
        .shows(&pp, "nginx: reloaded with SIGHUP (pid {PID})\n");
    assert_eq!(pp.running_pid("nginx"), master, "a reload keeps the master");
    assert!(
        wait_until(PATIENCE, || {
            let now = children(master);
            !now.is_empty() && now.iter().all(|w| !workers.contains(w))
        }),
        "nginx replaced its workers after SIGHUP (before: {workers:?}, now: {:?})",
        children(master)
    );
    pp.wait_ping(&["nginx"]);

    // Reinstalling a package while its service runs goes through pre/post-upgrade:
    // a restarted process that knows it was upgraded (nginx: a reload).
    for name in ["redis", "httpd-python", "echo"] {
        let before = pp.running_pid(name);
        pp.install(&sample(name))
            .ok()
            .says(&[&format!("reinstalled {name}-1.0"), "restarted"]);
        let after = pp.running_pid(name);
        assert_ne!(before, after, "{name} was restarted by the reinstall");
        assert_dies(before, &format!("{name}'s old process"));
        assert_eq!(
            env_of(after, "SERVICE_UPGRADED").as_deref(),
            Some("1"),
            "{name}: SERVICE_UPGRADED=1 after the upgrade"
        );
        pp.wait_ping(&[name]);
        pids.insert(name, after);
    }
    pp.install(&sample("nginx"))
        .ok()
        .shows(&pp, "reinstalled nginx-1.0 (6 files)\nreloaded: nginx\nnginx: already registered (checked again)\n");
    assert_eq!(
        pp.running_pid("nginx"),
        master,
        "nginx is reloaded, not restarted, on upgrade"
    );
    pp.wait_ping(&["nginx"]);
    tcp_echo(pp.port(7)).expect("echo echoes after its upgrade");

    // Remove every package: the service is stopped, its files and registration go.
    for name in samples {
        let pid = pids[name];
        pp.run(&["package", "remove", name])
            .ok()
            .says(&[&format!("package {name} removed")]);
        assert_dies(pid, &format!("{name} after package remove"));
        assert!(
            !pp.exists(&format!("ext/services/{name}-1.0")),
            "{name}: service directory removed"
        );
        assert!(
            !pp.exists(&format!("ext/services/{name}-1.0.services")),
            "{name}: .services removed"
        );
        assert!(
            !pp.exists(&format!("var/run/{name}.pid")),
            "{name}: pidfile removed"
        );
        assert!(
            !pp.exists(&format!("var/run/{name}.start")),
            "{name}: start record removed"
        );
        assert_eq!(
            pp.registry_line(name),
            None,
            "{name} unregistered:\n{}",
            pp.registry()
        );
    }
    for port in [7, 79, 80, 81] {
        assert!(
            wait_until(PATIENCE, || port_closed(pp.port(port))),
            "port {} is closed",
            pp.port(port)
        );
    }
    assert!(
        !pp.exists("var/linkfarm/echo"),
        "echo's argv0 symlink removed"
    );
    assert!(
        !pp.exists("ext/bin/echo-server") && !pp.exists("ext/bin/httpd-python"),
        "programs removed"
    );
    assert!(
        !pp.exists("ext/etc/profile.d/echo-1.0.profile"),
        "profile removed"
    );
    assert!(
        !pp.exists("ext/etc/nginx/nginx.conf"),
        "nginx template removed"
    );
    assert!(!pp.exists("ext/share/echo/VERSION"), "shared files removed");
    let left: Vec<String> = pp
        .ext_snapshot()
        .into_iter()
        .filter(|(_, what)| what != "dir")
        .map(|(path, _)| path)
        .collect();
    assert!(left.is_empty(), "no package file is left in ext/: {left:?}");
    assert!(
        wait_until(PATIENCE, || pp.processes().is_empty()),
        "no process of the playpen is left: {:?}",
        pp.processes()
    );
}

/// new-service validates, creates var/ directories, registers once, and lists the
/// variables still missing with the `missing-env --script` hint.
#[test]
fn new_service_registers_and_reports_missing_variables() {
    let pp = Playpen::with_services(&[]);
    // No PORT_PREFIX: ECHO_PORT cannot be resolved.
    pp.write("etc/roles/dev/config", "playpen_services=\"\"\n");
    let out = pp.install(&sample("echo"));
    out.ok().shows(&pp, "installed echo-1.0 (6 files)\necho: registered\necho: missing variables: ECHO_PORT — add them to {ROOT}/etc/roles/dev/config (`servicectl missing-env --script echo >> {ROOT}/etc/roles/dev/config` sets defaults):\n# echo: TCP port of the echo daemon (port)\nECHO_PORT=8007\necho: not in playpen_services of {ROOT}/etc/roles/dev/config; add it there to start it with the role (or `servicectl start echo`)\n");
    assert_eq!(pp.registry(), "echo\tinit\tenable\n");

    // The package manager's hook again: checked again, still one line.
    pp.run(&["new-service", "echo"])
        .ok()
        .shows(&pp, "echo: already registered (checked again)\necho: missing variables: ECHO_PORT — add them to {ROOT}/etc/roles/dev/config (`servicectl missing-env --script echo >> {ROOT}/etc/roles/dev/config` sets defaults):\n# echo: TCP port of the echo daemon (port)\nECHO_PORT=8007\necho: not in playpen_services of {ROOT}/etc/roles/dev/config; add it there to start it with the role (or `servicectl start echo`)\n");
    assert_eq!(pp.registry(), "echo\tinit\tenable\n");

    // The hint works: the script sets the default, and nothing is missing any more.
    let script = pp.run(&["missing-env", "--script", "echo"]);
    script.fails().shows(
        &pp,
        "# echo: TCP port of the echo daemon (port)\nECHO_PORT=8007\n",
    );
    let role = pp.read("etc/roles/dev/config");
    pp.write("etc/roles/dev/config", &format!("{role}{}", script.stdout));
    pp.run(&["missing-env", "echo"]).ok();
    pp.run(&["new-service", "echo"]).ok();
    assert!(
        !pp.run(&["new-service", "echo"])
            .stdout
            .contains("missing variables")
    );

    // nginx: new-service makes the directory of its rendered config.
    pp.install(&sample("nginx")).ok();
    assert!(pp.path("var/etc/nginx").is_dir());
    assert_eq!(pp.registry(), "echo\tinit\tenable\nnginx\tinit\tenable\n");

    // Unknown services are refused, with nothing registered.
    pp.run(&["new-service", "no-such-service"])
        .fails()
        .shows(&pp, "servicectl: no-such-service: unknown service (no ext/services/no-such-service-VERSION/ and no services/no-such-service/config) — known services: echo, nginx\n");
    assert_eq!(pp.registry_line("no-such-service"), None);
    // Nothing was started by any of this.
    assert!(pp.processes().is_empty());
}

/// remove-service stops the service and removes registration, argv0 symlink, pidfile
/// and start record; running it twice is not an error; the package's files stay until
/// `package remove`, which is an error for a package that is not installed.
#[test]
fn remove_service_stops_cleans_up_and_is_idempotent() {
    let pp = Playpen::with_services(&["echo"]);
    pp.install(&sample("echo")).ok();
    pp.run(&["start", "echo"]).ok();
    let pid = pp.running_pid("echo");
    for f in [
        "var/run/echo.pid",
        "var/run/echo.start",
        "var/linkfarm/echo",
    ] {
        assert!(pp.exists(f), "{f} exists while echo runs");
    }

    pp.run(&["remove-service", "echo"])
        .ok()
        .shows(&pp, "echo: stopped, unregistered, removed 1 file(s)\n");
    assert!(
        !alive(pid),
        "echo (PID {pid}) was stopped by remove-service"
    );
    assert!(port_closed(pp.port(7)), "nothing listens on the echo port");
    for f in [
        "var/run/echo.pid",
        "var/run/echo.start",
        "var/linkfarm/echo",
    ] {
        assert!(!pp.exists(f), "{f} removed by remove-service");
    }
    assert_eq!(pp.registry_line("echo"), None, "{}", pp.registry());
    // The package's files are the package manager's business.
    assert!(pp.exists("ext/services/echo-1.0/config"));

    pp.run(&["remove-service", "echo"])
        .ok()
        .shows(&pp, "echo: nothing to remove (not registered)\n");
    pp.run(&["remove-service", "echo"]).ok();
    assert_eq!(pp.registry_line("echo"), None);

    // A stopped, registered service: remove-service only unregisters.
    pp.run(&["new-service", "echo"]).ok();
    assert!(pp.registry_line("echo").is_some());
    pp.run(&["remove-service", "echo"])
        .ok()
        .shows(&pp, "echo: unregistered\n");
    assert_eq!(pp.registry_line("echo"), None);

    pp.run(&["package", "remove", "echo"]).ok();
    assert!(!pp.exists("ext/services/echo-1.0"));
    pp.run(&["package", "remove", "echo"])
        .fails()
        .shows(&pp, "servicectl: package echo is not installed (no ext/services/echo-VERSION.services) — installed packages:\n");
    pp.run(&["remove-service", "echo"]).ok();
}

/// remove-service keeps the lock file (another servicectl may hold it), and a
/// second remove-service still finds nothing to remove.
#[test]
fn remove_service_keeps_the_lock_file() {
    let pp = Playpen::new();
    pp.daemon("web", "");
    pp.run(&["new-service", "web"]).ok();
    pp.start(&["web"]);
    let pid = pp.running_pid("web");
    assert!(pp.exists("var/run/web.lock"));
    pp.run(&["remove-service", "web"])
        .ok()
        .shows(&pp, "web: stopped, unregistered, removed 1 file(s)\n");
    assert_dies(pid, "web");
    assert!(pp.exists("var/run/web.lock"), "the lock file stays");
    assert_eq!(pp.registry_line("web"), None);
    pp.run(&["remove-service", "web"])
        .ok()
        .shows(&pp, "web: nothing to remove (not registered)\n");
    assert!(pp.exists("var/run/web.lock"));
}

/// A variable assigned in a package's profile reaches every service's program, `env`
/// prints it (and the playpen's variables) as export lines, `env SERVICE` adds the
/// service's own environment; print-config names the profile as the origin.
#[test]
fn profile_variables_reach_programs_and_env() {
    let pp = Playpen::with_services(&["echo"]);
    let echo = PkgCopy::of(&sample("echo"));
    echo.append(
        "echo-1.0.profile",
        "ECHO_PROFILE_PROBE=${ECHO_PROFILE_PROBE:-\"set by the echo profile, with 'quotes' and \\$dollar\"}\n",
    );
    pp.install(&echo.path).ok();
    assert!(
        pp.read("ext/etc/profile.d/echo-1.0.profile")
            .contains("ECHO_PROFILE_PROBE")
    );
    let probe = "set by the echo profile, with 'quotes' and $dollar";

    pp.run(&["start"]).ok();
    let pid = pp.running_pid("echo");
    assert_eq!(
        env_of(pid, "ECHO_PROFILE_PROBE").as_deref(),
        Some(probe),
        "the profile's variable is in echo's environment"
    );
    assert_eq!(env_of(pid, "ECHO_HOST").as_deref(), Some("127.0.0.1"));

    // Every service sees the profile, not only the package's own.
    pp.sleeper_service("other", "");
    pp.run(&["start", "other"]).ok();
    let other = pp.running_pid("other");
    assert_eq!(
        env_of(other, "ECHO_PROFILE_PROBE").as_deref(),
        Some(probe),
        "another service sees the profile too"
    );
    assert_eq!(env_of(other, "ECHO_HOST").as_deref(), Some("127.0.0.1"));

    let env = pp.run(&["env"]);
    env.ok();
    let quoted = shell_words::quote(probe).into_owned();
    assert!(
        env.stdout
            .lines()
            .any(|l| l == format!("export ECHO_PROFILE_PROBE={quoted}")),
        "{env}"
    );
    assert!(
        env.stdout
            .lines()
            .any(|l| l == "export ECHO_HOST=127.0.0.1"),
        "{env}"
    );
    assert!(
        env.stdout
            .lines()
            .any(|l| l == format!("export PORT_PREFIX={}", pp.prefix())),
        "{env}"
    );
    assert!(
        env.stdout.lines().all(|l| l.starts_with("export ")),
        "only export lines:\n{env}"
    );

    let env = pp.run(&["env", "echo"]);
    env.ok();
    for line in [
        format!("export ECHO_PORT={}", pp.port(7)),
        "export SERVICE_NAME=echo".to_string(),
        "export SERVICE_VERSION=1.0".to_string(),
        format!("export ECHO_PROFILE_PROBE={quoted}"),
    ] {
        assert!(env.stdout.lines().any(|l| l == line), "{line:?} in:\n{env}");
    }

    // The export lines evaluate, in sh, to exactly the values.
    let out = run_command(
        std::process::Command::new("sh")
            .arg("-c")
            .arg("eval \"$1\" && printf '%s' \"$ECHO_PROFILE_PROBE\"")
            .arg("sh")
            .arg(&env.stdout),
    );
    out.ok();
    assert_eq!(out.stdout, probe);

    let config = pp.run(&["print-config", "echo"]);
    config.ok();
    let line = config
        .stdout
        .lines()
        .find(|l| l.starts_with("export ECHO_HOST="))
        .unwrap_or_else(|| panic!("ECHO_HOST in print-config:\n{config}"));
    assert!(
        line.contains("profile.d/echo-1.0.profile"),
        "ECHO_HOST comes from the profile: {line}"
    );
}

/// `. share/load-config` gives a sh script the playpen's environment, and SERVICE=NAME
/// that of one service.
#[test]
fn load_config_gives_sh_the_playpen_environment() {
    let pp = Playpen::with_services(&["echo"]);
    pp.install(&sample("echo")).ok();
    let load_config = repo().join("share/load-config");
    // Run from outside the playpen: only PLAYPEN_ROOT says which playpen.
    let elsewhere = tempfile::tempdir().unwrap();
    let sh = |script: String| {
        let mut cmd = std::process::Command::new("sh");
        cmd.arg("-c").arg(&script).current_dir(elsewhere.path());
        for var in [
            "PLAYPEN_ROOT",
            "PORT_PREFIX",
            "SERVICECTL",
            "SERVICE",
            "ECHO_HOST",
            "ECHO_PORT",
        ] {
            cmd.env_remove(var);
        }
        run_command(&mut cmd)
    };
    let out = sh(format!(
        "SERVICECTL={} PLAYPEN_ROOT={} . {} && echo \"$PORT_PREFIX\"",
        BIN,
        pp.root.display(),
        load_config.display()
    ));
    out.ok();
    assert_eq!(out.stdout.trim(), pp.prefix().to_string(), "{out}");

    let out = sh(format!(
        "SERVICECTL={} PLAYPEN_ROOT={} SERVICE=echo . {} && echo \"$ECHO_PORT $ECHO_HOST $SERVICE_NAME\"",
        BIN,
        pp.root.display(),
        load_config.display()
    ));
    out.ok();
    assert_eq!(
        out.stdout.trim(),
        format!("{} 127.0.0.1 echo", pp.port(7)),
        "{out}"
    );

    // A missing servicectl is a clear error, not a silent empty environment.
    let out = sh(format!(
        "SERVICECTL=/nonexistent/servicectl PLAYPEN_ROOT={} . {} && echo loaded",
        pp.root.display(),
        load_config.display()
    ));
    out.fails().shows(&pp, "load-config: /nonexistent/servicectl not found; put servicectl on PATH or set SERVICECTL\n");
    assert!(!out.stdout.contains("loaded"));
}

/// Every kind of bad package is refused with a clear message, and a refused install
/// leaves ext/ and the registry exactly as they were (and starts nothing).
#[test]
fn bad_packages_are_refused_all_or_nothing() {
    let pp = Playpen::with_services(&["echo"]);
    pp.install(&sample("echo")).ok();
    // A project-local service, registered and disabled: a failed install must not
    // change its registration.
    pp.sleeper_service("s1", "");
    pp.run(&["new-service", "s1"]).ok();
    let registry = pp
        .registry()
        .replace("s1\tinit\tenable", "s1\tinit\tdisable");
    pp.write("var/servicectl/state", &registry);
    assert!(registry.contains("s1\tinit\tdisable"), "{registry}");

    let ext_before = pp.ext_snapshot();
    let registry_before = pp.registry();

    let check_untouched = |what: &str| {
        let ext_now = pp.ext_snapshot();
        let added: Vec<_> = ext_now
            .keys()
            .filter(|k| !ext_before.contains_key(*k))
            .collect();
        let removed: Vec<_> = ext_before
            .keys()
            .filter(|k| !ext_now.contains_key(*k))
            .collect();
        let changed: Vec<_> = ext_before
            .iter()
            .filter(|(k, v)| ext_now.get(*k).is_some_and(|n| n != *v))
            .map(|(k, _)| k)
            .collect();
        assert!(
            added.is_empty() && removed.is_empty() && changed.is_empty(),
            "{what}: ext/ changed: added {added:?}, removed {removed:?}, changed {changed:?}"
        );
        assert_eq!(
            pp.registry(),
            registry_before,
            "{what}: the registry changed"
        );
        assert!(
            pp.processes().is_empty(),
            "{what}: something was started: {:?}",
            pp.processes()
        );
    };

    // The whole error of a refused install, the package's path as {PKG}.
    let refused = |pkg: &std::path::Path, expected: &str| {
        let out = pp.install(pkg);
        out.fails();
        let text = out.stderr.replace(&pkg.display().to_string(), "{PKG}");
        assert_golden(&pp, &format!("install {}", pkg.display()), &text, expected);
    };

    // Not a package at all.
    let none = PkgCopy::empty("not-a-package");
    none.write("foo-1.0.config", "service_program=sleeper\n");
    refused(
        &none.path,
        "servicectl: {PKG}: not a service package: no $PACKAGE-$VERSION.services file — a service package lists its services, one per line, in PACKAGE-VERSION.services\n",
    );
    check_untouched("no .services");

    // A directory that does not exist.
    refused(
        &none.path.join("missing"),
        "servicectl: cannot open package directory {PKG}: No such file or directory (os error 2) — give the path of a package directory (the one holding PACKAGE-VERSION.services)\n",
    );
    check_untouched("missing directory");

    // A listed service without a config.
    let noconf = PkgCopy::empty("noconf");
    noconf.write("pair-1.0.services", "a\nb\n");
    noconf.write("a-1.0.config", "service_program=sleeper\n");
    refused(
        &noconf.path,
        "servicectl: b: {PKG}: service b has no config (neither {PKG}/b-1.0.config nor {PKG}/pair-1.0.config) — fix the package directory (its layout is described in docs/packaging.md); nothing was installed\n",
    );
    check_untouched("service without config");

    // A second package providing echo.
    let dup = PkgCopy::empty("dup");
    dup.write("other-2.0.services", "echo\n");
    dup.write("other-2.0.config", "service_program=sleeper\n");
    refused(
        &dup.path,
        "servicectl: echo: package other-2.0 provides service echo, which package echo-1.0 already provides — remove echo first (`servicectl package remove echo`)\n",
    );
    check_untouched("duplicate service");

    // A file another package owns.
    let clash = PkgCopy::empty("clash");
    clash.write("clash-1.0.services", "clash\n");
    clash.write("clash-1.0.config", "service_program=sleeper\n");
    clash.write("bin/echo-server", "#!/bin/sh\n");
    refused(
        &clash.path,
        "servicectl: {ROOT}/ext/bin/echo-server already exists (installed by echo-1.0); package clash-1.0 will not overwrite it — remove the conflicting file or package first\n",
    );
    check_untouched("file owned by another package");

    // Files that would land outside ext/.
    let dotdot = PkgCopy::empty("dotdot");
    dotdot.write("evil-1.0.services", "../../evil\n");
    dotdot.write("evil-1.0.config", "service_program=sleeper\n");
    refused(
        &dotdot.path,
        "servicectl: {PKG}: {PKG}/evil-1.0.services names \"../../evil\", which is not a valid service name (letters, digits, - _ . +; no '/' or '..') — fix the package directory (its layout is described in docs/packaging.md); nothing was installed\n",
    );
    check_untouched("../ in a service name");
    let outside = pp.root.parent().unwrap().join("evil-1.0");
    assert!(
        !outside.exists(),
        "nothing written at {}",
        outside.display()
    );

    let dotdot2 = PkgCopy::empty("dotdot2");
    dotdot2.write("evil-1.0.services", "good\n..\n");
    dotdot2.write("good-1.0.config", "service_program=sleeper\n");
    refused(
        &dotdot2.path,
        "servicectl: {PKG}: {PKG}/evil-1.0.services names \"..\", which is not a valid service name (letters, digits, - _ . +; no '/' or '..') — fix the package directory (its layout is described in docs/packaging.md); nothing was installed\n",
    );
    check_untouched(".. as a service name");

    let abs = PkgCopy::empty("abs");
    abs.write("abs-1.0.services", "abs\n");
    abs.write("abs-1.0.config", "service_program=sleeper\n");
    abs.symlink("bin/passwd", "/etc/passwd");
    refused(
        &abs.path,
        "servicectl: {PKG}: symlink {PKG}/bin/passwd → /etc/passwd would point outside ext/ — package symlinks must be relative and stay inside the package\n",
    );
    check_untouched("absolute symlink");

    let rel = PkgCopy::empty("rel");
    rel.write("rel-1.0.services", "rel\n");
    rel.write("rel-1.0.config", "service_program=sleeper\n");
    rel.symlink("share/rel/data", "../../../outside");
    refused(
        &rel.path,
        "servicectl: {PKG}: symlink {PKG}/share/rel/data → ../../../outside would point outside ext/ — package symlinks must be relative and stay inside the package\n",
    );
    check_untouched("relative symlink escaping with ../..");

    let top = PkgCopy::empty("top");
    top.write("top-1.0.services", "top\n");
    // A target that exists (so the config is found), reached by climbing to /.
    let up = "../".repeat(top.path.components().count() - 1);
    top.symlink("top-1.0.config", &format!("{up}etc/hostname"));
    assert!(top.path.join("top-1.0.config").is_file());
    refused(
        &top.path,
        &format!(
            "servicectl: {{PKG}}: symlink {{PKG}}/top-1.0.config → {up}etc/hostname would point outside ext/ — package symlinks must be relative and stay inside the package\n"
        ),
    );
    check_untouched("config that is a symlink out of the package");

    // A package whose second service's config does not evaluate: the first service
    // (which has the name of the registered, disabled s1) must not stay registered,
    // and s1's registration must be as it was.
    let syntax = PkgCopy::empty("syntax");
    syntax.write("syn-1.0.services", "s1\ns2\n");
    syntax.write("s1-1.0.config", "service_program=sleeper\n");
    syntax.write("s2-1.0.config", "service_program=sleeper\nif then\n");
    syntax.write("share/syn/data", "data\n");
    refused(
        &syntax.path,
        "servicectl: s2: config {ROOT}/ext/services/s2-1.0/config:2 has a syntax error; sh said: /bin/sh: 2: {ROOT}/ext/services/s2-1.0/config: Syntax error: \"then\" unexpected; package syn-1.0 was not installed (ext/ and the registry are as before) — fix the fragment (it is sourced by sh; check it with `sh -n FILE`), and end it with a command that succeeds\n",
    );
    check_untouched("config with a syntax error");

    // After all that, a good install still works, and leaves no staging behind.
    let good = PkgCopy::empty("good");
    good.write("good-1.0.services", "good\n");
    good.write(
        "good-1.0.config",
        "service_program=sleeper\nservice_flags=3600\n",
    );
    good.symlink("share/good/link", "../good/data");
    good.write("share/good/data", "data\n");
    pp.install(&good.path).ok().shows(&pp, "installed good-1.0 (4 files)\ngood: registered\ngood: not in playpen_services of {ROOT}/etc/roles/dev/config; add it there to start it with the role (or `servicectl start good`)\n");
    assert_eq!(
        std::fs::read_link(pp.path("ext/share/good/link")).unwrap(),
        std::path::PathBuf::from("../good/data"),
        "an inside symlink is kept as it is"
    );
    assert_eq!(pp.read("ext/share/good/link"), "data\n");
    let staging: Vec<String> = pp
        .ext_snapshot()
        .into_keys()
        .filter(|k| k.contains(".staging"))
        .collect();
    assert!(staging.is_empty(), "staging left behind: {staging:?}");
    assert!(pp.registry_line("good").is_some());
    assert_eq!(pp.registry_line("s1").as_deref(), Some("s1\tinit\tdisable"));
}

/// A package providing three services: two use the package's shared
/// `$PACKAGE-$VERSION.config`, one its own `$SERVICE-$VERSION.config`; each gets its
/// config and scripts, registers, starts, and goes with the package.
#[test]
fn multi_service_package_with_shared_config() {
    let pp = Playpen::with_services(&["duo-a", "duo-b", "duo-c"]);
    let duo = PkgCopy::empty("duo");
    duo.write(
        "duo-1.0.services",
        "# three services\nduo-a\nduo-b  # the second\nduo-c\n",
    );
    duo.write(
        "duo-1.0.config",
        "service_program=duo-sleep\nservice_run_name=$SERVICE_NAME\nservice_flags=3600\n",
    );
    duo.write(
        "duo-b-1.0.config",
        "service_program=duo-sleep\nservice_run_name=duo-b\nservice_flags=3601\n",
    );
    duo.write(
        "duo-a-1.0.ping",
        "#!/bin/sh\nkill -0 \"$(cat \"$SERVICE_PIDFILE\")\"\n",
    );
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            duo.path.join("duo-a-1.0.ping"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
    }
    std::fs::create_dir_all(duo.path.join("bin")).unwrap();
    std::fs::copy(which_sleep(), duo.path.join("bin/duo-sleep")).unwrap();

    pp.install(&duo.path).ok().shows(
        &pp,
        "installed duo-1.0 (6 files)\nduo-a: registered\nduo-b: registered\nduo-c: registered\n",
    );
    assert_eq!(
        pp.read("ext/services/duo-a-1.0/config"),
        std::fs::read_to_string(duo.path.join("duo-1.0.config")).unwrap()
    );
    assert_eq!(
        pp.read("ext/services/duo-b-1.0/config"),
        std::fs::read_to_string(duo.path.join("duo-b-1.0.config")).unwrap()
    );
    assert_eq!(
        pp.read("ext/services/duo-c-1.0/config"),
        std::fs::read_to_string(duo.path.join("duo-1.0.config")).unwrap()
    );
    assert!(pp.exists("ext/services/duo-a-1.0/ping") && !pp.exists("ext/services/duo-b-1.0/ping"));
    assert_eq!(
        pp.registry(),
        "duo-a\tinit\tenable\nduo-b\tinit\tenable\nduo-c\tinit\tenable\n"
    );

    pp.run(&["start"]).ok();
    let a = pp.running_pid("duo-a");
    let b = pp.running_pid("duo-b");
    let c = pp.running_pid("duo-c");
    assert_eq!(
        std::fs::read_to_string(format!("/proc/{a}/cmdline")).unwrap(),
        "duo-a\x003600\x00"
    );
    assert_eq!(
        std::fs::read_to_string(format!("/proc/{b}/cmdline")).unwrap(),
        "duo-b\x003601\x00"
    );
    assert_eq!(
        std::fs::read_to_string(format!("/proc/{c}/cmdline")).unwrap(),
        "duo-c\x003600\x00"
    );
    pp.run(&["ping"])
        .ok()
        .shows_any_order(&pp, "duo-a: ok ({ROOT}/ext/services/duo-a-1.0/ping)\nduo-b: ok (status): running (pid {PID})\nduo-c: ok (status): running (pid {PID})\n");

    pp.run(&["package", "remove", "duo"]).ok();
    assert_dies(a, "duo-a");
    assert_dies(b, "duo-b");
    assert_dies(c, "duo-c");
    for gone in [
        "ext/services/duo-a-1.0",
        "ext/services/duo-b-1.0",
        "ext/services/duo-c-1.0",
        "ext/bin/duo-sleep",
    ] {
        assert!(!pp.exists(gone), "{gone} removed");
    }
    assert_eq!(pp.registry(), "");
}

/// A package cannot be installed over a project-local service of the same name that
/// runs; the running service is left alone.
#[test]
fn install_over_running_project_local_service_is_refused() {
    let pp = Playpen::with_services(&["echo"]);
    pp.sleeper_service("echo", "");
    pp.run(&["new-service", "echo"]).ok();
    pp.run(&["start", "echo"]).ok();
    let pid = pp.running_pid("echo");
    let ext_before = pp.ext_snapshot();
    let registry_before = pp.registry();

    pp.install(&sample("echo"))
        .fails()
        .shows(&pp, "servicectl: echo: service echo is running; installing package echo-1.0 would change it underneath — stop it first: servicectl stop echo\n");
    assert_eq!(pp.ext_snapshot(), ext_before, "ext/ unchanged");
    assert_eq!(pp.registry(), registry_before, "registry unchanged");
    assert_eq!(
        pp.running_pid("echo"),
        pid,
        "the running service is left alone"
    );
    assert!(!pp.exists("ext/services/echo-1.0"));

    // Stopped, the package installs (and the project's config customises it).
    pp.run(&["stop", "echo"]).ok();
    assert_dies(pid, "project-local echo");
    std::fs::remove_dir_all(pp.path("services/echo")).unwrap();
    pp.install(&sample("echo")).ok();
    pp.run(&["start", "echo"]).ok();
    let pid = pp.running_pid("echo");
    pp.wait_ping(&["echo"]);
    tcp_echo(pp.port(7)).expect("the packaged echo echoes");
    assert!(
        pp.output("echo").contains("echo-server 1.0: listening"),
        "{}",
        pp.output("echo")
    );
    assert_eq!(env_of(pid, "SERVICE_VERSION").as_deref(), Some("1.0"));
}

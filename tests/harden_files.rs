//! Everything servicectl names, opens and reads in a playpen stays inside it and stays
//! bounded: one name rule before any path is joined; no symlink
//! in var/ is followed out; state files that are FIFOs, devices, symlinks or huge are
//! reported, never read into a hang or out of memory; nothing read reaches a format
//! width; errors that say what really happened; the registry keeps lines it cannot read.

use crate::common::*;

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Generous: these runs must finish at once; a hang is what is being tested.
const HANG: u64 = 30;

fn mkfifo(path: &Path) {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o644))
        .unwrap_or_else(|e| panic!("mkfifo {}: {e}", path.display()));
}

/// A relative name that, joined onto `var/run/` of `pp` (with `var/run/sub/` made so
/// that it resolves), climbs to the file system root and then down to `target`.
fn climbing_name(pp: &Playpen, target: &Path) -> String {
    std::fs::create_dir_all(pp.path("var/run/sub")).unwrap();
    let depth = pp
        .path("var/run")
        .components()
        .filter(|c| matches!(c, std::path::Component::Normal(_)))
        .count();
    format!(
        "sub/{}{}",
        "../".repeat(depth + 1),
        target.strip_prefix("/").unwrap().display()
    )
}

/// A directory outside the playpen with `x/victim.pid` and `x/victim.start` in it.
fn victims() -> (tempfile::TempDir, PathBuf) {
    let outside = tempfile::tempdir().unwrap();
    let x = outside.path().join("x");
    std::fs::create_dir_all(&x).unwrap();
    std::fs::write(x.join("victim.pid"), "12345\n").unwrap();
    std::fs::write(x.join("victim.start"), "{}\n").unwrap();
    (outside, x.join("victim"))
}

// ---- 1. One name rule, before any path is joined ----

#[test]
fn remove_service_deletes_nothing_outside_the_playpen() {
    let pp = Playpen::new();
    let (_outside, victim) = victims();
    let names = [victim.display().to_string(), climbing_name(&pp, &victim)];
    for name in &names {
        pp.run(&["remove-service", name])
            .code_is(4)
            .says(&["not a service name"]);
        for ext in ["pid", "start"] {
            assert!(
                victim.with_extension(ext).exists(),
                "remove-service {name} deleted {}.{ext}",
                victim.display()
            );
        }
    }
}

#[test]
fn every_command_refuses_a_name_that_is_not_a_service_name() {
    let pp = Playpen::new();
    pp.sleeper_service("web", "");
    let long = "n".repeat(65);
    let bad = ["../escape", "a/b", ".hidden", "..", long.as_str()];
    let commands: &[&[&str]] = &[
        &["start"],
        &["stop"],
        &["restart"],
        &["status"],
        &["ping"],
        &["check"],
        &["print-config"],
        &["env"],
        &["missing-env"],
        &["new-service"],
        &["remove-service"],
        &["sub-conf", "--service"],
    ];
    for command in commands {
        for name in bad {
            let mut args = command.to_vec();
            args.push(name);
            pp.run(&args)
                .code_is(4)
                .says(&["not a service name", "a name is 1 to 64 of the characters"]);
        }
    }
    // Nothing was made for them anywhere in the playpen.
    assert!(!pp.exists("escape.lock") && !pp.exists("var/escape.lock"));
}

#[test]
fn a_bad_run_name_is_refused_by_check_and_start_alike() {
    let pp = Playpen::new();
    pp.install_sleep("bin/sleeper");
    let long = "r".repeat(256);
    for bad in ["a/b", "..", long.as_str()] {
        pp.service(
            "web",
            &format!("service_program=sleeper\nservice_flags=3600\nservice_run_name='{bad}'\n"),
        );
        pp.run(&["check", "web"])
            .fails()
            .says(&["service_run_name", "is not a run name"]);
        let out = pp.run(&["start", "web"]);
        out.fails().says(&["service_run_name", "is not a run name"]);
        assert!(
            !out.all().contains("linkfarm/"),
            "a settings problem, not a path error:\n{out}"
        );
        assert!(pp.processes().is_empty(), "nothing started for {bad:?}");
    }
}

#[test]
fn a_bad_playpen_tag_is_refused_by_check_and_start_alike() {
    let pp = Playpen::new();
    pp.sleeper_service("web", "");
    pp.role_config("playpen_services=web\nPLAYPEN_TAG=team/alice\n");
    pp.run(&["check", "web"]).fails().shows(&pp, "web: problem: PLAYPEN_TAG=\"team/alice\" (set in {ROOT}/etc/roles/dev/config): is not a playpen tag: it contains '/' (a name is 1 to 64 of the characters A-Z a-z 0-9 - _ . +, does not start with '-' or '.', and has no '/' and no '..') — fix the setting in the service's config\n1 checked, 1 with problems\n");
    pp.run(&["start", "web"])
        .fails()
        .shows(&pp, "servicectl: web: PLAYPEN_TAG=\"team/alice\" (set in {ROOT}/etc/roles/dev/config): is not a playpen tag: it contains '/' (a name is 1 to 64 of the characters A-Z a-z 0-9 - _ . +, does not start with '-' or '.', and has no '/' and no '..') — fix the setting in the service's config\n");
    // From the environment too.
    pp.role_config("playpen_services=web\n");
    for tag in ["../up", ".."] {
        pp.run_env(&["check", "web"], &[("PLAYPEN_TAG", tag)])
            .fails()
            .says(&["PLAYPEN_TAG", "is not a playpen tag"]);
        pp.run_env(&["start", "web"], &[("PLAYPEN_TAG", tag)])
            .fails()
            .says(&["PLAYPEN_TAG"]);
    }
    assert!(pp.processes().is_empty());
    // A good tag still works.
    pp.run_env(&["start", "web"], &[("PLAYPEN_TAG", "alice")])
        .ok();
    assert!(pp.exists("var/linkfarm/web-alice"));
    pp.run(&["stop", "web"]).ok();
}

#[test]
fn a_role_that_is_not_a_name_is_refused() {
    let pp = Playpen::new();
    pp.sleeper_service("web", "");
    pp.run_env(&["check", "web"], &[("PLAYPEN_ROLE", "../../etc")])
        .fails()
        .shows(&pp, "web: problem: the role \"../../etc\" (from PLAYPEN_ROLE) is not a role name: it contains '/' — a name is 1 to 64 of the characters A-Z a-z 0-9 - _ . +, does not start with '-' or '.', and has no '/' and no '..'\n1 checked, 1 with problems\n");
}

// ---- 2. No symlink in var/ is followed out ----

#[test]
fn a_symlinked_lock_file_is_refused_and_its_target_not_created() {
    let pp = Playpen::new();
    pp.sleeper_service("web", "");
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("made-by-lock");
    symlink(&target, pp.path("var/run/web.lock")).unwrap();
    pp.run(&["start", "web"])
        .fails()
        .says(&["web.lock", "symlink", "rm "]);
    assert!(!target.exists(), "the lock created its symlink's target");
    assert!(pp.processes().is_empty());
    std::fs::remove_file(pp.path("var/run/web.lock")).unwrap();
    pp.start(&["web"]);
    pp.run(&["stop", "web"]).ok();
}

#[test]
fn a_symlinked_output_file_is_refused_and_its_target_untouched() {
    let pp = Playpen::new();
    pp.write_exec(
        "bin/talker",
        "#!/bin/sh\necho hello from talker\nexec sleep 3600\n",
    );
    pp.service("web", "service_program=talker\nservice_halt_timeout=5\n");
    let outside = tempfile::tempdir().unwrap();
    let precious = outside.path().join("precious");
    std::fs::write(&precious, "precious\n").unwrap();
    let missing = outside.path().join("missing");
    for target in [&precious, &missing] {
        let link = pp.path("var/run/web.output");
        let _ = std::fs::remove_file(&link);
        symlink(target, &link).unwrap();
        pp.run(&["start", "web"])
            .fails()
            .says(&["web.output", "symlink", "rm "]);
        assert!(pp.processes().is_empty(), "nothing runs");
    }
    assert_eq!(std::fs::read_to_string(&precious).unwrap(), "precious\n");
    assert!(
        !missing.exists(),
        "the output file created its symlink's target"
    );
    // Hooks append to the output file the same way.
    pp.service(
        "web",
        "service_program=talker\nservice_halt_timeout=5\nservice_pre_start='echo from the hook'\n",
    );
    pp.run(&["start", "web"])
        .fails()
        .says(&["web.output", "symlink"]);
    assert!(!missing.exists());
    std::fs::remove_file(pp.path("var/run/web.output")).unwrap();
    pp.start(&["web"]);
    assert!(wait_until(PATIENCE, || pp
        .output("web")
        .contains("hello from talker")));
    pp.run(&["stop", "web"]).ok();
}

#[test]
fn a_symlinked_pidfile_is_replaced_never_written_through() {
    let pp = Playpen::new();
    pp.sleeper_service("web", "");
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("pid");
    std::fs::write(&target, "precious\n").unwrap();
    symlink(&target, pp.pidfile("web")).unwrap();
    pp.run(&["status", "web"])
        .code_is(3)
        .says(&["web.pid", "symlink"]);
    pp.start(&["web"]);
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious\n");
    assert!(!pp.pidfile("web").symlink_metadata().unwrap().is_symlink());
    pp.running_pid("web");
    pp.run(&["stop", "web"]).ok();
}

// ---- 3. State files never hang or explode ----

#[test]
fn a_fifo_pidfile_is_reported_and_cleaned_up_not_read() {
    let pp = Playpen::new();
    pp.sleeper_service("web", "");
    mkfifo(&pp.pidfile("web"));
    pp.run_timeout(&["status", "web"], HANG)
        .code_is(3)
        .shows(&pp, "SERVICE STATE PID UPTIME PORTS NOTE\nweb stale - - - {ROOT}/var/run/web.pid is corrupt: it is a FIFO; servicectl reads only regular files of at most 64 KiB there; `servicectl start web` cleans it up\n");
    pp.run_timeout(&["stop", "web"], HANG).ok();
    mkfifo(&pp.pidfile("web"));
    pp.run_timeout(&["start", "web"], HANG).ok();
    pp.running_pid("web");
    pp.run_timeout(&["stop", "web"], HANG).ok();
}

#[test]
fn a_fifo_start_record_is_reported_not_read() {
    let pp = Playpen::new();
    pp.sleeper_service("web", "");
    mkfifo(&pp.path("var/run/web.start"));
    pp.run_timeout(&["status", "web"], HANG)
        .code_is(3)
        .shows(&pp, "SERVICE STATE PID UPTIME PORTS NOTE\nweb stale - - - {ROOT}/var/run/web.start is corrupt: it is a FIFO; servicectl reads only regular files of at most 64 KiB there; `servicectl start web` cleans it up\n");
    pp.run_timeout(&["start", "web"], HANG).ok();
    pp.running_pid("web");
    pp.run_timeout(&["status", "web"], HANG).ok();
    pp.run_timeout(&["stop", "web"], HANG).ok();
}

#[test]
fn a_fifo_registry_is_reported_not_read() {
    let pp = Playpen::new();
    pp.sleeper_service("web", "");
    pp.role_config("playpen_services=web\n");
    let state = pp.path("var/servicectl/state");
    mkfifo(&state);
    // Which services are disabled is unknown: acting on "the role's enabled services"
    // is refused, naming the file, rather than taken to mean all of them.
    for args in [&["status"][..], &["start"], &["new-service", "web"]] {
        pp.run_timeout(args, HANG)
            .fails()
            .shows(&pp, "servicectl: {ROOT}/var/servicectl/state is corrupt: it is a FIFO; servicectl reads only regular files of at most 64 KiB there — remove it (rm {ROOT}/var/servicectl/state); servicectl writes it again when it needs it\n");
    }
    assert!(
        pp.processes().is_empty(),
        "nothing started: {:?}",
        pp.processes()
    );
    // Named services need no registry.
    pp.run_timeout(&["start", "web"], HANG).ok();
    pp.run_timeout(&["stop", "web"], HANG).ok();
    // (The test's own cleanup reads the registry.)
    std::fs::remove_file(&state).unwrap();
}

#[test]
fn a_fifo_role_cache_or_services_list_does_not_hang() {
    let pp = Playpen::new();
    pp.sleeper_service("web", "");
    pp.role_config("playpen_services=web\n");
    mkfifo(&pp.path("var/servicectl/role-cache.json"));
    pp.run_timeout(&["status"], HANG).code_is(3).shows(
        &pp,
        "SERVICE STATE PID UPTIME PORTS NOTE\nweb stopped - - -\n",
    );
    mkfifo(&pp.path("ext/services/web-1.0.services"));
    pp.run_timeout(&["status", "web"], HANG)
        .fails()
        .shows(&pp, "servicectl: {ROOT}/ext/services/web-1.0.services is corrupt: it is a FIFO; servicectl reads only regular files of at most 64 KiB there — make {ROOT}/ext/services/web-1.0.services a small regular file\n");
}

#[test]
fn a_pidfile_that_is_endless_or_huge_is_refused_at_once() {
    let pp = Playpen::new();
    pp.sleeper_service("web", "");
    symlink("/dev/zero", pp.pidfile("web")).unwrap();
    let out = pp.run_timeout(&["status", "web"], HANG);
    out.code_is(3).shows(&pp, "SERVICE STATE PID UPTIME PORTS NOTE\nweb stale - - - {ROOT}/var/run/web.pid is corrupt: it is a symlink (pointing at /dev/zero); servicectl reads only regular files of at most 64 KiB there; `servicectl start web` cleans it up\n");
    assert!(out.elapsed < secs(10.0), "took {:?}", out.elapsed);
    std::fs::remove_file(pp.pidfile("web")).unwrap();
    // A sparse 2 GiB file: no disk space, but a reader that trusts it reads 2 GiB.
    let file = std::fs::File::create(pp.pidfile("web")).unwrap();
    file.set_len(2 << 30).unwrap();
    drop(file);
    let out = pp.run_timeout(&["status", "web"], HANG);
    out.code_is(3).shows(&pp, "SERVICE STATE PID UPTIME PORTS NOTE\nweb stale - - - {ROOT}/var/run/web.pid is corrupt: it is 2147483648 bytes long; servicectl reads only regular files of at most 64 KiB there; `servicectl start web` cleans it up\n");
    assert!(out.elapsed < secs(10.0), "took {:?}", out.elapsed);
    pp.run_timeout(&["start", "web"], HANG).ok();
    pp.run_timeout(&["stop", "web"], HANG).ok();
}

// ---- 10. Nothing read reaches a format width ----

#[test]
fn a_pidfile_of_65530_characters_does_not_panic_status() {
    let pp = Playpen::new();
    pp.sleeper_service("web", "");
    for len in [65_530, 65_536] {
        pp.write(&format!("var/run/{}.pid", "web"), &"x".repeat(len));
        let out = pp.run_timeout(&["status", "web"], HANG);
        out.code_is(3).says(&["web.pid", "does not hold a PID"]);
        assert!(out.stdout.len() < 2_000, "status quotes all of it:\n{out}");
        let out = pp.run_timeout(&["status", "web", "--json"], HANG);
        out.code_is(3);
        assert_eq!(out.json()[0]["state"], "stale");
    }
    // A long note is cut; the table stays aligned for the others.
    pp.sleeper_service("db", "");
    let out = pp.run_timeout(&["status", "web", "db"], HANG);
    out.code_is(3);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[2].starts_with("db   "), "{out}");
}

// ---- 14. Errors that say the truth ----

#[test]
fn a_playpen_closed_to_another_user_says_permission_denied() {
    needs_root("to run servicectl as another user (nobody)");
    assert!(
        Command::new("setpriv").arg("--version").output().is_ok(),
        "this test needs setpriv (util-linux; scripts/install-deps installs it)"
    );
    let pp = Playpen::new();
    pp.sleeper_service("web", "");
    // Playpen::new's root is a 0700 temporary directory owned by root.
    std::fs::set_permissions(
        &pp.root,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let as_nobody = |args: &[&str], env: &[(&str, &str)]| {
        let mut cmd = Command::new("setpriv");
        cmd.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
            BIN,
        ])
        .args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("NO_COLOR", "1")
        .current_dir("/");
        for (k, v) in env {
            cmd.env(k, v);
        }
        run_command(&mut cmd)
    };
    let root = pp.root_str();
    for out in [
        as_nobody(&["--playpen", &root, "status"], &[]),
        as_nobody(&["status"], &[("PLAYPEN_ROOT", &root)]),
    ] {
        out.fails().says(&["permission denied", &root]);
        assert!(
            !out.all().contains("not a playpen") && !out.all().contains("servicectl init"),
            "blames the playpen:\n{out}"
        );
    }
}

#[test]
fn init_on_an_existing_playpen_says_what_it_found_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("proj");
    run_command(bare_command().args(["init", "--role", "prod"]).arg(&root))
        .ok()
        .says(&["created playpen", "(role prod)"]);
    let out = run_command(bare_command().arg("init").arg(&root));
    out.ok()
        .says(&["found an existing playpen", "role prod", "left it alone"]);
    assert!(!out.stdout.contains("created playpen"), "{out}");
    assert!(!out.stdout.contains("(role dev)"), "{out}");
    assert_eq!(
        std::fs::read_to_string(root.join("etc/role")).unwrap(),
        "prod\n"
    );
    assert!(
        !root.join("etc/roles/dev").exists(),
        "nothing of role dev made"
    );
    let out = run_command(bare_command().args(["init", "--json"]).arg(&root));
    assert_eq!(out.ok().json()["role"], "prod");
    assert_eq!(out.json()["created"], false);
    // The same role asked for again: found and left alone too, not "created".
    let out = run_command(bare_command().args(["init", "--role", "prod"]).arg(&root));
    out.ok()
        .says(&["found an existing playpen", "role prod", "left it alone"]);
    assert!(!out.stdout.contains("created playpen"), "{out}");
}

/// A tmpfs mounted on a temporary directory (root only), unmounted when dropped.
struct Mount {
    dir: tempfile::TempDir,
}

impl Mount {
    fn tmpfs() -> Option<Mount> {
        let dir = tempfile::tempdir().ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=16m", "tmpfs"])
            .arg(dir.path())
            .output()
            .is_ok_and(|o| o.status.success());
        ok.then_some(Mount { dir })
    }

    fn remount_read_only(&self) -> bool {
        Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(self.dir.path())
            .output()
            .is_ok_and(|o| o.status.success())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .output();
    }
}

#[test]
fn a_read_only_file_system_is_called_one() {
    needs_root("to mount a read-only tmpfs");
    let mount = Mount::tmpfs().expect("root can mount a tmpfs (this test needs CAP_SYS_ADMIN)");
    let root = mount.dir.path().join("pp");
    run_command(bare_command().arg("init").arg(&root)).ok();
    write_file(
        &root.join("services/web/config"),
        "service_program=sleep\nservice_flags=3600\n",
        Some(0o644),
    );
    assert!(mount.remount_read_only(), "remount read-only");
    let out = run_command(
        bare_command()
            .arg("--playpen")
            .arg(&root)
            .args(["start", "web"]),
    );
    out.fails().says(&["read-only file system"]);
    assert!(!out.all().contains("chmod"), "advises chmod:\n{out}");
}

// ---- 16. The registry keeps what it cannot read ----

#[test]
fn rewriting_the_registry_keeps_lines_it_cannot_parse_verbatim() {
    let pp = Playpen::new();
    pp.sleeper_service("web", "");
    pp.sleeper_service("db", "");
    let before = "garbage line\n# a note\nodd\tinit\tperhaps\n";
    pp.write("var/servicectl/state", before);
    pp.run(&["new-service", "web"]).ok();
    assert_eq!(pp.registry(), format!("{before}web\tinit\tenable\n"));
    pp.run(&["new-service", "db"]).ok();
    pp.run(&["remove-service", "web"]).ok();
    assert_eq!(pp.registry(), format!("{before}db\tinit\tenable\n"));
    assert_eq!(
        pp.registry_line("garbage line").as_deref(),
        Some("garbage line")
    );
    // Only the registrations are registrations.
    pp.role_config("playpen_services=\"db\"\n");
    pp.run(&["status", "--json"]).code_is(3);
    // Clean up the lines the test cleanup would take for services.
    pp.write("var/servicectl/state", "");
}

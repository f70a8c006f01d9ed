//! Playpen discovery (§2): --playpen before or after the subcommand, PLAYPEN_ROOT,
//! walking up from a subdirectory, role and cluster selection, `servicectl init`, and
//! the error outside any playpen.

use crate::common::*;

const SLEEPER: &str = "service_program=sleep\nservice_flags=1000\n";

fn status_names(out: &Out) -> Vec<String> {
    out.json()
        .as_array()
        .expect("status --json is an array")
        .iter()
        .map(|s| s["service"].as_str().expect("service").to_string())
        .collect()
}

#[test]
fn init_makes_a_playpen_with_role_and_var() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("proj");
    run_command(bare_command().args(["init", "--role", "web"]).arg(&root))
        .ok()
        .says(&[
            "created playpen",
            &root.join("etc/roles/web/config").display().to_string(),
        ]);
    assert_eq!(
        std::fs::read_to_string(root.join("etc/role"))
            .unwrap()
            .trim(),
        "web"
    );
    let role_config = std::fs::read_to_string(root.join("etc/roles/web/config")).unwrap();
    assert!(role_config.contains("playpen_services="), "{role_config}");
    assert!(root.join("var/run").is_dir());
    assert!(root.join("ext/services").is_dir());
    // The new playpen is usable at once: nothing to run yet.
    let out = run_command(bare_command().arg("--playpen").arg(&root).arg("status"));
    out.ok();

    // init on an existing playpen keeps the project's files.
    std::fs::write(
        root.join("etc/roles/web/config"),
        "playpen_services=\"mine\"\n",
    )
    .unwrap();
    run_command(bare_command().args(["init", "--role", "web"]).arg(&root)).ok();
    assert_eq!(
        std::fs::read_to_string(root.join("etc/roles/web/config")).unwrap(),
        "playpen_services=\"mine\"\n"
    );
}

#[test]
fn playpen_option_works_before_and_after_the_subcommand() {
    let pp = Playpen::new();
    pp.service("web", SLEEPER);
    let elsewhere = tempfile::tempdir().unwrap();
    for args in [
        vec!["--playpen", pp.root.to_str().unwrap(), "status", "web"],
        vec!["status", "web", "--playpen", pp.root.to_str().unwrap()],
        vec!["status", "--playpen", pp.root.to_str().unwrap(), "web"],
    ] {
        let out = run_command(bare_command().args(&args).current_dir(elsewhere.path()));
        out.no_panic();
        assert_eq!(out.code, 3, "web is stopped:\n{out}");
        assert!(
            out.stdout.contains("web") && out.stdout.contains("stopped"),
            "{out}"
        );
    }
    // And it really acts on that playpen.
    let out = run_command(
        bare_command()
            .args(["start", "web", "--playpen"])
            .arg(&pp.root)
            .current_dir(elsewhere.path()),
    );
    out.ok();
    let pid = pp.running_pid("web");
    assert_eq!(environ(pid)["PLAYPEN_ROOT"], pp.root.display().to_string());
}

#[test]
fn playpen_root_environment_variable_finds_the_playpen() {
    let pp = Playpen::new();
    pp.service("web", SLEEPER);
    let other = Playpen::new();
    let elsewhere = tempfile::tempdir().unwrap();
    let out = run_command(
        bare_command()
            .args(["start", "web"])
            .env("PLAYPEN_ROOT", &pp.root)
            .current_dir(elsewhere.path()),
    );
    out.ok();
    pp.running_pid("web");
    // --playpen wins over PLAYPEN_ROOT: `other` has no service web.
    let out = run_command(
        bare_command()
            .args(["status", "web", "--playpen"])
            .arg(&other.root)
            .env("PLAYPEN_ROOT", &pp.root)
            .current_dir(elsewhere.path()),
    );
    out.no_panic();
    assert_eq!(out.code, 4, "web is unknown in the other playpen:\n{out}");
}

#[test]
fn walks_up_from_a_subdirectory() {
    let pp = Playpen::new();
    pp.service("web", SLEEPER);
    let deep = pp.path("services/web/a/b");
    std::fs::create_dir_all(&deep).unwrap();
    let out = run_command(bare_command().args(["start", "web"]).current_dir(&deep));
    out.ok();
    let pid = pp.running_pid("web");
    let env = environ(pid);
    assert_eq!(env["PLAYPEN_ROOT"], pp.root.display().to_string());
    // The program runs in PLAYPEN_ROOT, not where the command was typed.
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap(),
        pp.root
    );
    let out = run_command(bare_command().args(["status", "web"]).current_dir(&deep));
    out.ok()
        .shows(
            &pp,
            "SERVICE STATE PID UPTIME PORTS NOTE\nweb running {PID} {TIME} -\n",
        )
        .says(&[&pid.to_string()]);
}

#[test]
fn outside_a_playpen_the_error_says_how_to_make_one() {
    let empty = tempfile::tempdir().unwrap();
    for args in [
        vec!["status"],
        vec!["start", "web"],
        vec!["print-config", "web"],
    ] {
        let out = run_command(bare_command().args(&args).current_dir(empty.path()));
        out.fails().says(&["playpen", "servicectl init"]);
    }
    // --playpen naming a directory that is no playpen, or nothing at all.
    let out = run_command(
        bare_command()
            .arg("--playpen")
            .arg(empty.path())
            .arg("status"),
    );
    out.fails().says(&[
        "not a playpen",
        "servicectl init",
        &empty.path().display().to_string(),
    ]);
    let missing = empty.path().join("nope");
    let out = run_command(bare_command().arg("--playpen").arg(&missing).arg("status"));
    out.fails()
        .says(&["servicectl init", &missing.display().to_string()]);
    assert!(
        !missing.exists(),
        "a failed lookup must not create the directory"
    );
}

#[test]
fn role_comes_from_etc_role_unless_playpen_role_is_set() {
    let pp = Playpen::new();
    pp.service("a", SLEEPER);
    pp.service("b", SLEEPER);
    pp.role_config("playpen_services=\"a\"\n");
    pp.write(
        "etc/roles/other/config",
        "playpen_services=\"b\"\nROLE_MARK=other-role\n",
    );

    let out = pp.run(&["status", "--json"]);
    assert_eq!(status_names(&out), ["a"], "{out}");
    let out = pp.run_env(&["status", "--json"], &[("PLAYPEN_ROLE", "other")]);
    assert_eq!(status_names(&out), ["b"], "{out}");

    pp.run_env(&["start"], &[("PLAYPEN_ROLE", "other")]).ok();
    let pid = pp.running_pid("b");
    assert!(pp.pid("a").is_none(), "a belongs to role dev only");
    let env = environ(pid);
    assert_eq!(env["PLAYPEN_ROLE"], "other");
    assert_eq!(env["ROLE_MARK"], "other-role");

    // etc/role itself decides when PLAYPEN_ROLE is unset (and the cached role
    // evaluation follows the change).
    std::fs::write(pp.path("etc/role"), "other\n").unwrap();
    let out = pp.run(&["status", "--json"]);
    assert_eq!(status_names(&out), ["b"], "{out}");
    assert_eq!(out.code, 0, "b runs:\n{out}");
}

#[test]
fn start_and_stop_without_names_act_on_playpen_services() {
    let pp = Playpen::new();
    for name in ["a", "b", "c"] {
        pp.service(name, SLEEPER);
    }
    pp.role_config("playpen_services=\"a b\"\n");
    pp.run(&["start"])
        .ok()
        .shows_any_order(&pp, "a: started (pid {PID})\nb: started (pid {PID})\n");
    let a = pp.running_pid("a");
    let b = pp.running_pid("b");
    assert!(pp.pid("c").is_none(), "c is not in playpen_services");
    pp.run(&["stop"])
        .ok()
        .shows_any_order(&pp, "a: stopped (pid {PID})\nb: stopped (pid {PID})\n");
    assert_dies(a, "a");
    assert_dies(b, "b");
    assert!(!pp.pidfile("a").exists() && !pp.pidfile("b").exists());
}

#[test]
fn cluster_config_values_reach_services() {
    let pp = Playpen::new();
    pp.service("web", SLEEPER);
    pp.write("etc/cluster", "east\n");
    pp.write("etc/clusters/east/config", "CLUSTER_DC='east dc'\n");
    pp.write("etc/clusters/west/config", "CLUSTER_DC='west dc'\n");

    pp.start(&["web"]);
    let env = environ(pp.running_pid("web"));
    assert_eq!(env["CLUSTER_DC"], "east dc");
    assert_eq!(env["PLAYPEN_CLUSTER"], "east");
    pp.run(&["stop", "web"]).ok();

    // PLAYPEN_CLUSTER overrides etc/cluster.
    pp.run_env(&["start", "web"], &[("PLAYPEN_CLUSTER", "west")])
        .ok();
    let env = environ(pp.running_pid("web"));
    assert_eq!(env["CLUSTER_DC"], "west dc");
    assert_eq!(env["PLAYPEN_CLUSTER"], "west");

    // print-config names the cluster config as the origin.
    let json = pp.run(&["print-config", "web", "--json"]).ok().json();
    let var = &json["variables"]["CLUSTER_DC"];
    assert_eq!(var["value"], "east dc");
    assert_eq!(
        var["origin"],
        pp.path("etc/clusters/east/config").display().to_string()
    );
}

//! Config evaluation (§4): the layered order, exact round-trips of values (through
//! print-config and through the environment a started program really gets), errors
//! for broken, failing and hanging fragments, stopping a service whose config broke
//! while it ran, and one sh process for every service.

use crate::common::*;
use std::collections::BTreeSet;

fn print_config(pp: &Playpen, name: &str) -> serde_json::Value {
    pp.run(&["print-config", name, "--json"]).ok().json()
}

fn origin(pp: &Playpen, rel: &str) -> String {
    pp.path(rel).display().to_string()
}

#[test]
fn layers_are_sourced_in_order_and_see_earlier_values() {
    let pp = Playpen::new();
    pp.write("etc/cluster", "c1\n");
    pp.write(
        "etc/clusters/c1/config",
        "L_CLUSTER=cluster\nSHARED=cluster\n",
    );
    pp.role_config(
        "playpen_services=web\nL_ROLE=\"role saw $L_CLUSTER\"\nSHARED=\"$SHARED>role\"\n",
    );
    pp.write("ext/etc/profile.d/b.profile", "SHARED=\"$SHARED>b\"\n");
    pp.write(
        "ext/etc/profile.d/a.profile",
        "L_PROFILE=\"a saw $L_ROLE\"\nSHARED=\"$SHARED>a\"\n",
    );
    pp.write("ext/etc/profile.d/c.txt", "SHARED=not-a-profile\n");
    // .pre group: the project's services/web/config.pre beats ext's.
    pp.write(
        "ext/services/web-1.0/config.pre",
        "SHARED=\"$SHARED>ext.pre\"\nEXT_PRE_SOURCED=1\n",
    );
    pp.write("services/web/config.pre", "SHARED=\"$SHARED>proj.pre\"\n");
    // plain group: only ext has one.
    pp.package(
        "web",
        "1.0",
        "SHARED=\"$SHARED>ext.config\"\nservice_program=sleep\nservice_flags=1000\nPLAIN=\"plain saw $L_PROFILE\"\n",
    );
    // .post group: services/web-1.0 beats services/web beats ext.
    pp.write(
        "ext/services/web-1.0/config.post",
        "SHARED=\"$SHARED>ext.post\"\n",
    );
    pp.write("services/web/config.post", "SHARED=\"$SHARED>proj.post\"\n");
    pp.write(
        "services/web-1.0/config.post",
        "SHARED=\"$SHARED>projver.post\"\n",
    );

    let json = print_config(&pp, "web");
    let expected_shared = "cluster>role>a>b>proj.pre>ext.config>projver.post";
    let vars = &json["variables"];
    assert_eq!(vars["SHARED"]["value"], expected_shared, "{json:#}");
    assert_eq!(
        vars["SHARED"]["origin"],
        origin(&pp, "services/web-1.0/config.post")
    );
    assert_eq!(
        vars["L_CLUSTER"]["origin"],
        origin(&pp, "etc/clusters/c1/config")
    );
    assert_eq!(vars["L_ROLE"]["value"], "role saw cluster");
    assert_eq!(
        vars["L_ROLE"]["origin"],
        origin(&pp, "etc/roles/dev/config")
    );
    assert_eq!(vars["L_PROFILE"]["value"], "a saw role saw cluster");
    assert_eq!(
        vars["L_PROFILE"]["origin"],
        origin(&pp, "ext/etc/profile.d/a.profile")
    );
    assert_eq!(vars["PLAIN"]["value"], "plain saw a saw role saw cluster");
    assert_eq!(
        vars["service_program"]["origin"],
        origin(&pp, "ext/services/web-1.0/config")
    );
    assert!(
        vars.get("EXT_PRE_SOURCED").is_none(),
        "ext config.pre is shadowed: {json:#}"
    );
    let fragments: Vec<String> = json["fragments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        fragments,
        [
            origin(&pp, "services/web/config.pre"),
            origin(&pp, "ext/services/web-1.0/config"),
            origin(&pp, "services/web-1.0/config.post"),
        ]
    );
    // Cluster, role and profile assignments are exported; the fragment's own are not.
    assert_eq!(vars["L_ROLE"]["exported"], true);
    assert_eq!(vars["L_PROFILE"]["exported"], true);
    assert_eq!(vars["PLAIN"]["exported"], false);

    // The program sees exactly that.
    pp.start(&["web"]);
    let env = environ(pp.running_pid("web"));
    assert_eq!(env["L_CLUSTER"], "cluster");
    assert_eq!(env["L_ROLE"], "role saw cluster");
    assert_eq!(env["L_PROFILE"], "a saw role saw cluster");
    // SHARED was exported by the cluster layer, so the fragments' changes reach it too.
    assert_eq!(env["SHARED"], expected_shared);
    assert!(
        !env.contains_key("PLAIN"),
        "fragment variables are not exported"
    );
    assert!(!env.contains_key("service_program"));
}

#[test]
fn the_most_specific_plain_config_wins() {
    let pp = Playpen::new();
    pp.package("api", "2.0", "WHO=ext\nservice_program=sleep\n");
    pp.service("api", "WHO=project\nservice_program=sleep\n");
    pp.write(
        "services/api-2.0/config",
        "WHO=project-version\nservice_program=sleep\n",
    );
    let who = |pp: &Playpen| print_config(pp, "api")["variables"]["WHO"]["value"].clone();
    assert_eq!(who(&pp), "project-version");
    std::fs::remove_file(pp.path("services/api-2.0/config")).unwrap();
    assert_eq!(who(&pp), "project");
    std::fs::remove_file(pp.path("services/api/config")).unwrap();
    assert_eq!(who(&pp), "ext");
}

/// Awkward values, as sh source and as the exact string expected back.
const ROUND_TRIP: &[(&str, &str, &str)] = &[
    ("RT_SPACES", "'  a  b   c '", "  a  b   c "),
    ("RT_SQUOTE", "'it'\\''s'", "it's"),
    ("RT_DQUOTE", "'say \"hi\" \"\"'", "say \"hi\" \"\""),
    ("RT_NEWLINES", "'line1\nline2\n\n'", "line1\nline2\n\n"),
    (
        "RT_DOLLAR",
        "'$HOME ${x} $(echo no) `echo no` $'",
        "$HOME ${x} $(echo no) `echo no` $",
    ),
    ("RT_BACKSLASH", "'a\\b \\\\ \\n \\'", "a\\b \\\\ \\n \\"),
    ("RT_UTF8", "'héllo wörld ✓ 日本語'", "héllo wörld ✓ 日本語"),
    ("RT_EMPTY", "''", ""),
    ("RT_TAB", "'a\tb'", "a\tb"),
    (
        "RT_FAKE_ASSIGNMENT",
        "'x\nRT_INJECTED=1\nexport RT_INJECTED2=2'",
        "x\nRT_INJECTED=1\nexport RT_INJECTED2=2",
    ),
    ("RT_EQUALS", "'a=b=c'", "a=b=c"),
];

#[test]
fn values_round_trip_exactly_through_print_config_and_the_environment() {
    let pp = Playpen::new();
    let mut role = String::from("playpen_services=web\n");
    let mut svc = String::from("service_program=sleep\nservice_flags=1000\n");
    for (name, source, _) in ROUND_TRIP {
        role.push_str(&format!("{name}={source}\n"));
        svc.push_str(&format!("export S{name}={source}\n"));
        svc.push_str(&format!("P{name}={source}\n"));
    }
    pp.role_config(&role);
    pp.service("web", &svc);

    let json = print_config(&pp, "web");
    for (name, _, expected) in ROUND_TRIP {
        for var in [name.to_string(), format!("S{name}"), format!("P{name}")] {
            assert_eq!(
                json["variables"][&var]["value"], *expected,
                "{var} via print-config"
            );
        }
        assert_eq!(
            json["environment"][*name], *expected,
            "{name} in print-config's environment"
        );
    }
    assert!(json["variables"].get("RT_INJECTED").is_none());
    assert!(json["variables"].get("RT_INJECTED2").is_none());

    pp.start(&["web"]);
    let env = environ(pp.running_pid("web"));
    for (name, _, expected) in ROUND_TRIP {
        assert_eq!(
            env.get(*name).map(String::as_str),
            Some(*expected),
            "{name} in /proc/PID/environ"
        );
        assert_eq!(
            env.get(&format!("S{name}")).map(String::as_str),
            Some(*expected),
            "S{name} in /proc/PID/environ"
        );
        assert!(
            !env.contains_key(&format!("P{name}")),
            "P{name} is not exported"
        );
    }
    assert!(!env.contains_key("RT_INJECTED") && !env.contains_key("RT_INJECTED2"));
}

#[test]
fn a_fragment_that_prints_does_not_corrupt_values() {
    let pp = Playpen::new();
    pp.role_config(
        "playpen_services=web\necho \"playpen_services='bogus'\"\nprintf '\\036D 1\\nROLE_VAR=hacked\\n'\nROLE_VAR=real\n",
    );
    pp.service(
        "web",
        "echo \"VAL='hacked'\"\nprintf '\\036D 1\\nVAL=hacked\\n\\036E 0\\n'\necho \"export INJECTED=1\"\necho noise >&2\nVAL='real value'\nservice_program=sleep\nservice_flags=1000\n",
    );
    let json = print_config(&pp, "web");
    assert_eq!(json["variables"]["VAL"]["value"], "real value");
    assert_eq!(json["variables"]["ROLE_VAR"]["value"], "real");
    assert!(json["variables"].get("INJECTED").is_none(), "{json:#}");
    // playpen_services still says web, so `start` without names starts it.
    pp.start(&[]).shows(&pp, "web: started (pid {PID})\n");
    let env = environ(pp.running_pid("web"));
    assert_eq!(env["ROLE_VAR"], "real");
    assert!(!env.contains_key("INJECTED"));
}

#[test]
fn a_syntax_error_names_the_file_and_line() {
    let pp = Playpen::new();
    let file = pp.service("web", "service_program=sleep\nA=1\nif then fi\n");
    let file = file.display().to_string();
    for (args, prefix) in [
        (vec!["start", "web"], "servicectl: web:"),
        (vec!["check", "web"], "web: problem:"),
        (vec!["print-config", "web"], "servicectl: web:"),
    ] {
        let out = pp.run(&args);
        out.fails()
            .says(&[prefix, &format!("{file}:3"), "syntax error"]);
    }
    assert!(pp.pid("web").is_none());
    assert!(pp.processes().is_empty());
}

#[test]
fn a_syntax_error_in_the_role_config_names_it() {
    let pp = Playpen::new();
    pp.service("web", "service_program=sleep\n");
    pp.role_config("playpen_services=web\nX=\"unclosed\n");
    pp.run(&["start", "web"])
        .fails()
        .shows(&pp, "servicectl: web: config {ROOT}/etc/roles/dev/config:3 has a syntax error; sh said: /bin/sh: 3: {ROOT}/etc/roles/dev/config: Syntax error: Unterminated quoted string — fix the fragment (it is sourced by sh; check it with `sh -n FILE`), and end it with a command that succeeds\n");
    assert!(pp.pid("web").is_none());
}

#[test]
fn a_failing_fragment_names_the_file() {
    let pp = Playpen::new();
    pp.service("falsy", "service_program=sleep\nfalse\n");
    pp.service("exits", "service_program=sleep\nexit 3\n");
    pp.run(&["start", "falsy"])
        .fails()
        .shows(&pp, "servicectl: falsy: config {ROOT}/services/falsy/config returned status 1 (its last command failed) — fix the fragment (it is sourced by sh; check it with `sh -n FILE`), and end it with a command that succeeds\n");
    let out = pp.run(&["start", "exits"]);
    out.fails().shows(&pp, "servicectl: exits: config {ROOT}/services/exits/config exited the shell (status 3) — fix the fragment (it is sourced by sh; check it with `sh -n FILE`), and end it with a command that succeeds\n");
    assert!(pp.pid("falsy").is_none() && pp.pid("exits").is_none());
    // The role config failing is reported the same way.
    pp.role_config("playpen_services=falsy\nfalse\n");
    pp.run(&["status"])
        .fails()
        .shows(&pp, "servicectl: config {ROOT}/etc/roles/dev/config returned status 1 (its last command failed) — fix the fragment (it is sourced by sh; check it with `sh -n FILE`), and end it with a command that succeeds\n");
    // `exit` in the shared layer ends the shell that evaluates everything.
    pp.role_config("playpen_services=falsy\nexit 0\n");
    pp.run(&["start"])
        .fails()
        .shows(&pp, "servicectl: config {ROOT}/etc/roles/dev/config ended the config shell while it was sourced (sh exited with status 0) — remove the `exit` (or the failing command under `set -e`) from the fragment\n");
}

#[test]
fn a_hanging_fragment_times_out_naming_the_file() {
    let pp = Playpen::new();
    let file = pp.service("web", "service_program=sleep\nsleep 100\n");
    let out = pp.run_env(&["start", "web"], &[("SERVICECTL_CONFIG_TIMEOUT", "1")]);
    out.fails().says(&[
        "servicectl: web:",
        &file.display().to_string(),
        "SERVICECTL_CONFIG_TIMEOUT",
    ]);
    assert!(out.elapsed < secs(6.0), "took too long:\n{out}");
    assert!(pp.pid("web").is_none());
    // The hanging `sleep 100` does not outlive the command.
    assert!(
        wait_until(PATIENCE, || pp.processes().is_empty()),
        "left behind: {:?}",
        pp.processes()
    );
}

#[test]
fn a_hanging_role_config_times_out_naming_the_file() {
    let pp = Playpen::new();
    pp.service("web", "service_program=sleep\n");
    let role = pp.role_config("playpen_services=web\nsleep 100\n");
    let out = pp.run_env(&["start"], &[("SERVICECTL_CONFIG_TIMEOUT", "1")]);
    out.fails().says(&[&role.display().to_string()]);
    assert!(out.elapsed < secs(6.0), "took too long:\n{out}");
    assert!(wait_until(PATIENCE, || pp.processes().is_empty()));
}

/// A running service whose config no longer evaluates is stopped from its pidfile,
/// with a warning, and without the project's hooks.
#[test]
fn stopping_with_a_broken_config_warns_and_runs_no_hooks() {
    let pp = Playpen::new();
    pp.daemon("brk", "");
    pp.write_exec(
        "services/brk/pre-stop",
        "#!/bin/sh\ntouch \"$PLAYPEN_ROOT/pre-stop-ran\"\n",
    );
    pp.start(&["brk"]);
    let pid = pp.running_pid("brk");
    // Break the config while it runs.
    pp.service(
        "brk",
        "service_program=daemon\nservice_flags=1000\nif then\n",
    );
    let out = pp.run(&["stop", "brk"]);
    out.ok()
        .shows(&pp, "brk: stopped (pid {PID})\nservicectl: warning: brk: config {ROOT}/services/brk/config:3 has a syntax error; sh said: /bin/sh: 3: {ROOT}/services/brk/config: Syntax error: \"then\" unexpected; acting without its configuration (no hooks, default timeouts)\n");
    assert!(!out.all().contains("brk: brk:"), "name twice:\n{out}");
    assert_dies(pid, "brk");
    assert!(!pp.pidfile("brk").exists());
    assert!(
        !pp.exists("pre-stop-ran"),
        "the pre-stop hook ran without a configuration:\n{out}"
    );
}

#[test]
fn one_sh_process_evaluates_every_service() {
    let pp = Playpen::new();
    let names: Vec<String> = (1..=6).map(|i| format!("s{i}")).collect();
    for name in &names {
        pp.service(
            name,
            "echo $$ >> \"$PLAYPEN_ROOT/shellpids\"\nservice_program=sleep\nservice_flags=1000\nservice_start_grace=0.05\n",
        );
    }
    pp.role_config(&format!(
        "playpen_services=\"{}\"\necho $$ >> \"$PLAYPEN_ROOT/rolepids\"\n",
        names.join(" ")
    ));
    pp.start(&[]);
    let shells = lines(&pp.path("shellpids"));
    assert!(
        shells.len() >= names.len(),
        "every service evaluated: {shells:?}"
    );
    let distinct: BTreeSet<&String> = shells.iter().collect();
    assert_eq!(distinct.len(), 1, "one sh for all services, got {shells:?}");
    // The role layer was evaluated by that same shell, once.
    assert_eq!(lines(&pp.path("rolepids")), vec![shells[0].clone()]);
    for name in &names {
        pp.running_pid(name);
    }
}

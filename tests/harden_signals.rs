//! Signals, pipes and programs: a closed stdout ends the output and not the work, the config shell cannot signal servicectl, shell
//! options and unreadable files in configs are reported where they are, and `check`
//! finds everything that makes the exec of a start fail.

use crate::common::*;

use std::os::fd::OwnedFd;
use std::process::{Command, Stdio};

/// The write end of a pipe whose read end is already closed: every write to it fails
/// with EPIPE, as `servicectl … | head -1` sees once head is gone.
fn closed_pipe() -> OwnedFd {
    let (read, write) = nix::unistd::pipe().expect("make a pipe");
    drop(read);
    write
}

/// Run with stdout on a closed pipe (stderr captured).
fn run_into_closed_pipe(cmd: &mut Command) -> Out {
    cmd.stdout(Stdio::from(closed_pipe()));
    run_command(cmd)
}

/// A command that ended quietly: no panic, no complaint about the pipe.
#[track_caller]
fn quiet(out: &Out) {
    out.no_panic();
    assert_ne!(out.code, 101, "panicked:\n{out}");
    assert!(
        !out.stderr.contains("Broken pipe") && !out.stderr.contains("failed printing"),
        "a closed pipe ends the output quietly:\n{out}"
    );
}

const SERVICES: [&str; 6] = ["s1", "s2", "s3", "s4", "s5", "s6"];

fn playpen_of_sleepers() -> Playpen {
    let pp = Playpen::new();
    for name in SERVICES {
        pp.sleeper_service(name, "");
    }
    pp.role_config(&format!("playpen_services=\"{}\"\n", SERVICES.join(" ")));
    pp
}

#[test]
fn a_closed_stdout_ends_the_output_of_status_check_and_print_config_quietly() {
    let pp = playpen_of_sleepers();
    let out = run_into_closed_pipe(pp.command().arg("status"));
    quiet(&out);
    assert_eq!(out.code, 3, "status still says not all run:\n{out}");
    let out = run_into_closed_pipe(pp.command().args(["--json", "status"]));
    quiet(&out);
    assert_eq!(out.code, 3, "{out}");
    for args in [
        &["check"][..],
        &["check", "--all"],
        &["print-config", "s1"],
        &["--json", "print-config", "s1"],
        &["env"],
        &["completions", "bash"],
        &["--help"],
    ] {
        let out = run_into_closed_pipe(pp.command().args(args));
        quiet(&out);
        assert_eq!(out.code, 0, "{out}");
    }
}

#[test]
fn a_closed_stdout_during_start_and_stop_still_finishes_every_service() {
    let pp = playpen_of_sleepers();
    let out = run_into_closed_pipe(pp.command().arg("start"));
    quiet(&out);
    assert_eq!(out.code, 0, "{out}");
    let mut pids = Vec::new();
    for name in SERVICES {
        pids.push(pp.running_pid(name));
        assert!(
            pp.exists(&format!("var/run/{name}.start")),
            "{name} has a start record"
        );
    }
    pp.run(&["status"]).ok();
    let out = run_into_closed_pipe(pp.command().arg("stop"));
    quiet(&out);
    assert_eq!(out.code, 0, "{out}");
    for (name, pid) in SERVICES.iter().zip(pids) {
        assert!(!alive(pid), "{name} ({pid}) was stopped");
        assert!(!pp.pidfile(name).exists(), "{name}'s pidfile is gone");
    }
}

#[test]
fn output_that_cannot_be_written_for_another_reason_is_an_error() {
    let pp = playpen_of_sleepers();
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("open /dev/full");
    let out = run_command(pp.command().arg("check").stdout(Stdio::from(full)));
    out.code_is(1)
        .err_says(&["cannot write to standard output", "No space left"]);
}

// ---- the config shell cannot signal servicectl ----

#[test]
fn a_fragment_that_signals_its_parent_does_not_reach_servicectl() {
    let pp = Playpen::new();
    pp.sleeper_service("calm", "");
    pp.sleeper_service(
        "rude",
        "kill $PPID; kill -HUP $PPID; kill -INT $PPID\nx=1\n",
    );
    let out = pp.run(&["check", "rude", "calm"]);
    out.code_is(0).out_says(&["rude: ok", "calm: ok"]);
    // And a start goes through it to the end, records and all.
    let out = pp.run(&["start", "rude", "calm"]);
    out.code_is(0);
    pp.running_pid("rude");
    pp.running_pid("calm");
}

#[test]
fn a_fragment_that_kills_its_shell_is_named_and_the_others_still_evaluate() {
    let pp = Playpen::new();
    pp.sleeper_service("calm", "");
    let group = pp.sleeper_service("group", "kill 0\n");
    let own = pp.sleeper_service("own", "kill -9 $$\n");
    let out = pp.run(&["check", "group", "own", "calm"]);
    out.code_is(1).out_says(&["calm: ok"]);
    let group_line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("group:"))
        .unwrap_or_else(|| panic!("group is reported:\n{out}"));
    assert!(
        group_line.contains(&group.display().to_string()) && group_line.contains("SIGTERM"),
        "names the fragment and the signal:\n{out}"
    );
    let own_line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("own:"))
        .unwrap_or_else(|| panic!("own is reported:\n{out}"));
    assert!(
        own_line.contains(&own.display().to_string()) && own_line.contains("SIGKILL"),
        "names the fragment and the signal:\n{out}"
    );
}

// ---- shell options and unreadable files are reported where they are ----

#[test]
fn shell_options_of_the_role_config_do_not_break_every_service() {
    let pp = Playpen::new();
    pp.sleeper_service("a", "");
    pp.sleeper_service("b", "");
    for options in ["set -e", "set -C", "set -eC"] {
        pp.role_config(&format!("playpen_services=\"a b\"\n{options}\n"));
        pp.run(&["check"]).code_is(0).out_says(&["a: ok", "b: ok"]);
    }
    pp.role_config("playpen_services=\"a b\"\nset -e\n");
    pp.start(&[]);
    pp.running_pid("a");
    pp.running_pid("b");
    pp.run(&["stop"]).ok();
    // A role config that ends the shell is the one named.
    pp.role_config("playpen_services=\"a b\"\nset -e\nfalse\nx=1\n");
    let out = pp.run(&["check"]);
    out.code_is(1).shows(&pp, "servicectl: config {ROOT}/etc/roles/dev/config ended the config shell while it was sourced (sh exited with status 1) — remove the `exit` (or the failing command under `set -e`) from the fragment\n");
    assert!(
        !out.all().contains("services/a/config") && !out.all().contains("services/b/config"),
        "the services' own fragments are not blamed:\n{out}"
    );
}

#[test]
fn an_unreadable_fragment_is_named_without_a_line_of_the_driver() {
    let pp = Playpen::new();
    let config = pp.sleeper_service("locked", "");
    if nix::unistd::geteuid().is_root() {
        // root reads every file mode; a write-only sysctl file is one it cannot read.
        let write_only = std::path::Path::new("/proc/sys/vm/drop_caches");
        assert!(
            write_only.exists() && std::fs::File::open(write_only).is_err(),
            "this test needs a file root cannot read: {} (write-only) is readable or missing here",
            write_only.display()
        );
        std::fs::remove_file(&config).unwrap();
        std::os::unix::fs::symlink(write_only, &config).unwrap();
    } else {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o000)).unwrap();
    }
    let out = pp.run(&["check", "locked"]);
    let path = config.display().to_string();
    out.code_is(1)
        .shows(&pp, "locked: problem: config {ROOT}/services/locked/config cannot be read: Permission denied (os error 13) — make {ROOT}/services/locked/config readable by the user servicectl runs as\n1 checked, 1 with problems\n");
    assert!(
        !out.all().contains(&format!("{path}:")),
        "no line number (it would be the driver's):\n{out}"
    );
}

// ---- check finds what start would meet at exec ----

/// check names the problem (the needles); start refuses before spawning anything.
#[track_caller]
fn check_and_start_refuse(pp: &Playpen, service: &str, needles: &[&str]) {
    let out = pp.run(&["check", service]);
    out.code_is(1);
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with(&format!("{service}: problem:")))
        .unwrap_or_else(|| panic!("check reports {service}:\n{out}"));
    for needle in needles {
        assert!(line.contains(needle), "expected {needle:?} in:\n{out}");
    }
    let out = pp.run(&["start", service]);
    out.fails().says(needles);
    assert!(!pp.pidfile(service).exists(), "start refused:\n{out}");
    assert!(pp.processes().is_empty(), "nothing started:\n{out}");
}

#[test]
fn a_program_without_a_shebang_line() {
    let pp = Playpen::new();
    let program = pp.write_exec("bin/plain", "echo hello\nsleep 100\n");
    pp.service("plain", "service_program=plain\n");
    check_and_start_refuse(
        &pp,
        "plain",
        &[
            "service_program",
            &program.display().to_string(),
            "neither a binary nor a script with a #! line",
        ],
    );
}

#[test]
fn a_shebang_interpreter_that_does_not_exist() {
    let pp = Playpen::new();
    pp.write_exec("bin/lost", "#!/nonexistent/bin/interp -x\nsleep 100\n");
    pp.service("lost", "service_program=lost\n");
    check_and_start_refuse(&pp, "lost", &["#! interpreter /nonexistent/bin/interp"]);
    // An interpreter that is itself a script without #! cannot run it either.
    pp.write_exec("bin/interp", "exec sh \"$@\"\n");
    pp.write_exec(
        "bin/wrapped",
        &format!("#!{}/bin/interp\nsleep 100\n", pp.root_str()),
    );
    pp.service("wrapped", "service_program=wrapped\n");
    check_and_start_refuse(&pp, "wrapped", &["neither a binary nor a script"]);
    // A service script without #! is run by sh (execvp does that): fine.
    pp.write_exec("bin/nohash-stop", "true\n");
    pp.sleeper_service("scripted", "service_stop=nohash-stop\n");
    pp.run(&["check", "scripted"]).ok();
}

#[test]
fn a_binary_whose_elf_loader_does_not_exist() {
    let pp = Playpen::new();
    let path = pp.install_sleep("bin/foreign");
    let mut bytes = std::fs::read(&path).unwrap();
    let head = &bytes[..bytes.len().min(4096)];
    let Some(at) = head.windows(4).position(|w| w == b"/ld-") else {
        eprintln!("skipped: sleep is linked statically");
        return;
    };
    let end = at + head[at..].iter().position(|&b| b == 0).unwrap();
    bytes[end - 1] = b'Q';
    let loader = String::from_utf8_lossy(&bytes[..end]).into_owned();
    let start = loader.rfind('\0').map_or(0, |i| i + 1);
    let loader = loader[start..].to_string();
    std::fs::write(&path, &bytes).unwrap();
    pp.service("foreign", "service_program=foreign\nservice_flags=100\n");
    check_and_start_refuse(&pp, "foreign", &["ELF loader", &loader]);
}

#[test]
fn hooks_that_sh_cannot_parse_are_found_by_check() {
    let pp = Playpen::new();
    pp.sleeper_service(
        "hooked",
        "service_pre_start='if then fi'\nservice_post_stop='case x in'\nservice_post_start='# nothing to do'\n",
    );
    pp.sleeper_service("fine", "service_pre_start='echo \"$1\" >/dev/null'\n");
    let out = pp.run(&["check", "hooked", "fine"]);
    out.code_is(1).out_says(&["fine: ok"]);
    let problems: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("hooked: problem:"))
        .collect();
    assert_eq!(problems.len(), 2, "both bad hooks, only them:\n{out}");
    assert!(
        problems
            .iter()
            .any(|l| l.contains("service_pre_start") && l.contains("line 1"))
    );
    assert!(problems.iter().any(|l| l.contains("service_post_stop")));
    let out = pp.run(&["start", "hooked"]);
    out.fails().shows(&pp, "servicectl: hooked: 2 problems:\n  service_pre_start (set in {ROOT}/services/hooked/config) is not valid sh: line 1: Syntax error: \"then\" unexpected — fix the command string (it runs as `sh -c \"$service_pre_start\"`)\n  service_post_stop (set in {ROOT}/services/hooked/config) is not valid sh: line 1: Syntax error: end of file unexpected (expecting \")\") — fix the command string (it runs as `sh -c \"$service_post_stop\"`)\n");
    assert!(!pp.pidfile("hooked").exists());
}

/// The kernel's limit for argv + environment (what ExecSize computes): a quarter of
/// the stack limit, at most 6 MiB.
fn arg_max() -> usize {
    let n = unsafe { libc::sysconf(libc::_SC_ARG_MAX) };
    if n <= 0 {
        6 << 20
    } else {
        (n as usize).min(6 << 20)
    }
}

#[test]
fn an_environment_too_big_for_exec_names_the_largest_variables() {
    let pp = Playpen::new();
    pp.sleeper_service("big", "");
    // One variable over the 128 KiB a single string may take.
    let role = pp.role_config(
        "playpen_services=big\nc=x; for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18; do c=$c$c; done\nHUGE=$c\nunset c i\n",
    );
    let role = role.display().to_string();
    check_and_start_refuse(&pp, "big", &["HUGE", "MAX_ARG_STRLEN", &role]);
    // Many variables of 64 KiB, together over ARG_MAX.
    let count = arg_max() / 65536 + 4;
    pp.role_config(&format!(
        "playpen_services=big\nc=x; for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16; do c=$c$c; done\ni=0; while [ $i -lt {count} ]; do eval \"CHUNK_$i=\\$c\"; i=$((i + 1)); done\nunset c i\n"
    ));
    check_and_start_refuse(&pp, "big", &["ARG_MAX", "CHUNK_", "the largest variables"]);
}

#[test]
fn a_run_name_that_a_running_service_uses_for_another_program() {
    let pp = Playpen::new();
    pp.install_sleep("bin/first");
    pp.install_sleep("bin/second");
    pp.service(
        "one",
        "service_program=first\nservice_run_name=shared\nservice_flags=100\n",
    );
    pp.service(
        "two",
        "service_program=second\nservice_run_name=shared\nservice_flags=100\n",
    );
    // Checked together: both reported (this held before).
    let out = pp.run(&["check", "one", "two"]);
    out.code_is(1).out_says(&["one: problem:", "two: problem:"]);
    // One running, the other checked alone: start would refuse it, so check does.
    pp.start(&["one"]);
    let out = pp.run(&["check", "two"]);
    out.code_is(1)
        .out_says(&["two: problem:", "\"shared\"", "one", "running"]);
    pp.run(&["start", "two"]).fails().shows(&pp, "servicectl: two: the run name \"shared\" is shared by two ({ROOT}/bin/second) and one ({ROOT}/bin/first, running), which run different programs — give each its own service_run_name\n");
    assert!(!pp.pidfile("two").exists());
}

#[test]
fn check_of_a_service_reports_the_problems_of_what_it_depends_on() {
    let pp = Playpen::new();
    pp.write_exec("bin/plain", "sleep 100\n");
    pp.service("db", "service_program=plain\n");
    pp.sleeper_service("web", "service_depends=db\n");
    let out = pp.run(&["check", "web"]);
    out.code_is(1).out_says(&[
        "web: ok",
        "db: problem:",
        "#! line",
        "2 checked, 1 with problems",
    ]);
    pp.run(&["start", "web"]).fails().shows(&pp, "servicectl: db: service_program (set in {ROOT}/services/db/config): cannot execute {ROOT}/bin/plain: it is neither a binary nor a script with a #! line (exec fails with ENOEXEC) — make it a binary for this system, or a script whose first line is #! and an interpreter that exists (such as #!/bin/sh)\nservicectl: web: not started: other services have configuration problems (listed above)\n");
    assert!(pp.processes().is_empty());
}

//! What a terminal sees (issue 11 §3): the status line of start, stop, restart, up and
//! down (which services are done, which are in progress, which wait on which dependency,
//! which failed), rewritten in place and gone at the end; nothing of it in a pipe or with
//! `--json`; no colour with NO_COLOR. And `logs` of several services with each name in a
//! colour of its own on a terminal. Driven through a real pseudo-terminal (python3's pty
//! module runs the binary on one and hands back every byte it wrote there).

use crate::common::*;
use std::process::Command;

/// Runs argv[3..] on a pseudo-terminal; writes every byte it got to stdout and exits as
/// the program did. When the output first contains argv[1], creates the file argv[2]
/// (so a test can hold a service in its hook until the terminal shows a state).
const PTY_RUN: &str = r#"
import os, pty, sys
pattern, go, argv = sys.argv[1].encode(), sys.argv[2], sys.argv[3:]
pid, fd = pty.fork()
if pid == 0:
    os.execvp(argv[0], argv)
buf = b""
touched = False
while True:
    try:
        chunk = os.read(fd, 4096)
    except OSError:
        break
    if not chunk:
        break
    buf += chunk
    if not touched and pattern in buf:
        open(go, "w").close()
        touched = True
if not touched:
    open(go, "w").close()
_, status = os.waitpid(pid, 0)
sys.stdout.buffer.write(buf)
sys.exit(os.waitstatus_to_exitcode(status))
"#;

/// `cmd` run on a pseudo-terminal (stdin, stdout and stderr), with `go` created once
/// its output contains `pattern`. Returns the raw bytes the terminal received, as text.
pub fn on_terminal(cmd: &Command, pattern: &str, go: &std::path::Path) -> (String, bool) {
    let mut py = Command::new("python3");
    py.arg("-c")
        .arg(PTY_RUN)
        .arg(pattern)
        .arg(go)
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => py.env(k, v),
            None => py.env_remove(k),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        py.current_dir(dir);
    }
    let out = py.output().expect("run python3");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        out.status.success(),
    )
}

/// What stays on the screen after `raw` was written to a terminal: `\r` goes back to
/// the start of the line and later characters overwrite earlier ones; escape sequences
/// (colour) take no room. Lines trimmed at the end, trailing empty lines dropped.
pub fn screen(raw: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut line: Vec<char> = Vec::new();
    let mut col = 0;
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => col = 0,
            '\n' => {
                lines.push(line.iter().collect::<String>().trim_end().to_string());
                line.clear();
                col = 0;
            }
            '\x1b' => {
                if chars.peek() == Some(&'[') {
                    chars.next();
                    for c in chars.by_ref() {
                        if c.is_ascii_alphabetic() {
                            break;
                        }
                    }
                }
            }
            c => {
                if col < line.len() {
                    line[col] = c;
                } else {
                    line.push(c);
                }
                col += 1;
            }
        }
    }
    lines.push(line.iter().collect::<String>().trim_end().to_string());
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    lines
}

/// Lines with every `pid N` made `pid #`, sorted (independent services finish in
/// either order).
fn masked(lines: impl IntoIterator<Item = String>) -> Vec<String> {
    let pid = regex::Regex::new(r"pid \d+").unwrap();
    let mut v: Vec<String> = lines
        .into_iter()
        .map(|l| pid.replace_all(&l, "pid #").into_owned())
        .collect();
    v.sort();
    v
}

/// db holds in its pre-start hook until `go` exists (at most 30 s); web depends on db;
/// cache depends on nothing.
fn three_services(pp: &Playpen) {
    pp.install_sleep("bin/daemon");
    let daemon = "service_program=daemon\nservice_flags=1000\nservice_halt_timeout=5\n";
    pp.service(
        "db",
        &format!(
            "{daemon}service_pre_start='i=0; while [ ! -e \"$PLAYPEN_ROOT/go\" ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done'\n"
        ),
    );
    pp.service("web", &format!("{daemon}service_depends=db\n"));
    pp.service("cache", daemon);
    pp.role_config("playpen_services=\"db web cache\"\n");
}

#[test]
fn a_terminal_sees_who_waits_and_then_what_a_pipe_sees() {
    let pp = Playpen::new();
    three_services(&pp);
    let go = pp.path("go");
    let mut start = pp.command();
    start.arg("start");
    let (raw, ok) = on_terminal(&start, "web waits for db", &go);
    assert!(ok, "start on a terminal failed:\n{raw}");
    // While db's hook runs, the status line says so, and that web waits for it.
    assert!(raw.contains("0/3 done"), "{raw:?}");
    assert!(
        raw.contains("now: cache, db") || raw.contains("now: db"),
        "{raw:?}"
    );
    assert!(raw.contains("web waits for db"), "{raw:?}");
    assert!(raw.contains("3/3 done"), "{raw:?}");
    assert!(
        raw.contains('\r'),
        "the status line is rewritten in place: {raw:?}"
    );
    // NO_COLOR (set by the fixture): no escape sequence at all.
    assert!(!raw.contains('\x1b'), "NO_COLOR, yet escapes: {raw:?}");
    let on_screen = screen(&raw);
    let stop_tty = {
        let mut stop = pp.command();
        stop.arg("stop");
        on_terminal(&stop, "never", &pp.path("go2"))
    };
    assert!(stop_tty.1, "{}", stop_tty.0);

    // The same command in a pipe: the same lines, and nothing else.
    let piped = pp.run(&["start"]);
    piped.ok();
    assert!(
        !piped.stdout.contains('\r') && !piped.stdout.contains("done"),
        "{piped}"
    );
    assert_eq!(
        masked(on_screen),
        masked(piped.stdout.lines().map(str::to_string)),
        "what stays on the terminal differs from the pipe's output:\n{raw:?}"
    );
    let stop_piped = pp.run(&["stop"]);
    stop_piped.ok();
    assert!(
        stop_tty.0.contains("0/3 done"),
        "stop has its status line too: {:?}",
        stop_tty.0
    );
    assert_eq!(
        masked(screen(&stop_tty.0)),
        masked(stop_piped.stdout.lines().map(str::to_string))
    );
}

#[test]
fn a_terminal_sees_failures_in_colour_unless_no_color_and_json_gets_none_of_it() {
    let pp = Playpen::new();
    pp.install_sleep("bin/daemon");
    pp.service(
        "db",
        "service_program=daemon\nservice_flags=1000\nservice_pre_start='exit 3'\n",
    );
    pp.service(
        "web",
        "service_program=daemon\nservice_flags=1000\nservice_depends=db\n",
    );
    pp.role_config("playpen_services=\"db web\"\n");
    let mut start = pp.command();
    start.arg("start").env_remove("NO_COLOR");
    let (raw, ok) = on_terminal(&start, "never", &pp.path("go"));
    assert!(!ok, "start of a failing service succeeded:\n{raw}");
    assert!(raw.contains("1 failed (db)"), "{raw:?}");
    assert!(raw.contains("2 failed (db, web)"), "{raw:?}");
    assert!(
        raw.contains("\x1b[31m"),
        "failures in red on a terminal: {raw:?}"
    );
    let piped = pp.run(&["start"]);
    piped.fails();
    assert!(!piped.all().contains("failed (") && !piped.all().contains('\r'));

    // --json on a terminal: one JSON document, no status line.
    let mut json = pp.command();
    json.args(["--json", "start"]).env_remove("NO_COLOR");
    let (raw, _) = on_terminal(&json, "never", &pp.path("go"));
    assert!(
        !raw.contains("done") && !raw.contains("failed ("),
        "{raw:?}"
    );
    let start = raw.find('[').expect("a JSON array");
    let end = raw.rfind(']').expect("a JSON array");
    let doc: serde_json::Value = serde_json::from_str(&raw[start..=end]).expect("JSON");
    assert_eq!(doc.as_array().map(Vec::len), Some(2), "{doc}");
}

/// The escape sequence that opens `name` at the start of each line of `raw` that shows
/// it (`\x1b[NNm` before `name\x1b[0m: `), one per line.
fn colours_of(raw: &str, name: &str) -> Vec<String> {
    let re = regex::Regex::new(&format!(r"(?m)^(\x1b\[[0-9]+m){name}\x1b\[0m: ")).unwrap();
    re.captures_iter(raw).map(|c| c[1].to_string()).collect()
}

#[test]
fn logs_of_several_services_colour_each_name_on_a_terminal_only() {
    let pp = Playpen::new();
    for name in ["db", "web", "cache"] {
        pp.service(name, "service_program=sleep\nservice_flags=1000\n");
    }
    pp.role_config("playpen_services=\"db web cache\"\n");
    pp.write("var/run/db.output", "db one\ndb two\n");
    pp.write("var/run/web.output", "web one\nweb two\n");
    pp.write("var/run/cache.output", "cache one\n");
    let mut logs = pp.command();
    logs.arg("logs").env_remove("NO_COLOR");
    let (raw, ok) = on_terminal(&logs, "never", &pp.path("go"));
    assert!(ok, "{raw}");
    let db = colours_of(&raw, "db");
    let web = colours_of(&raw, "web");
    let cache = colours_of(&raw, "cache");
    assert_eq!((db.len(), web.len(), cache.len()), (2, 2, 1), "{raw:?}");
    // Stable: a name has one colour on every line and in every run; these three differ.
    assert_eq!(db[0], db[1]);
    assert_eq!(web[0], web[1]);
    assert!(
        db[0] != web[0] && web[0] != cache[0] && db[0] != cache[0],
        "{raw:?}"
    );
    let (again, _) = on_terminal(&logs, "never", &pp.path("go"));
    assert_eq!(colours_of(&again, "db"), db);
    // The lines themselves are untouched.
    assert_eq!(
        screen(&raw),
        [
            "db: db one",
            "db: db two",
            "web: web one",
            "web: web two",
            "cache: cache one"
        ]
    );

    // NO_COLOR on a terminal, and a pipe: plain names.
    let mut plain = pp.command();
    plain.arg("logs");
    let (raw, _) = on_terminal(&plain, "never", &pp.path("go"));
    assert!(!raw.contains('\x1b'), "NO_COLOR, yet escapes: {raw:?}");
    let mut piped = pp.command();
    piped.arg("logs").env_remove("NO_COLOR");
    let out = run_command(&mut piped);
    out.ok();
    assert_eq!(
        out.stdout,
        "db: db one\ndb: db two\nweb: web one\nweb: web two\ncache: cache one\n"
    );
}

//! docs/tutorial.md is run: every ```sh block, in order, in one fresh empty project
//! directory with the real binary first on PATH, and what it prints (stdout and stderr
//! together) compared with the ```text block right after it (no such block: it must
//! print nothing), after the masking the tutorial documents at its top: the project's
//! path is {ROOT}, PIDs are {PID}, uptimes are {TIME}, the test's own PORT_PREFIX reads
//! as 8000 (and its ports as 80NN), runs of spaces count as one and the lines of a block
//! may come in any order (services run in parallel).
//!
//! `TUTORIAL_PRINT=1 cargo test --test main tutorial -- --nocapture` prints each block's
//! masked output, to paste into the tutorial when an output changes on purpose.

use crate::common::*;
use std::path::Path;
use std::process::Command;

/// The fenced blocks of a Markdown text: (info string, content).
fn blocks(markdown: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in markdown.lines() {
        match (&mut current, line.strip_prefix("```")) {
            (None, Some(info)) => current = Some((info.trim().to_string(), String::new())),
            (Some(_), Some(_)) => out.push(current.take().expect("open block")),
            (Some((_, text)), None) => {
                text.push_str(line);
                text.push('\n');
            }
            (None, None) => {}
        }
    }
    out
}

/// Each ```sh block with the output documented for it.
fn steps(markdown: &str) -> Vec<(String, String)> {
    let blocks = blocks(markdown);
    let mut steps = Vec::new();
    for (i, (info, text)) in blocks.iter().enumerate() {
        if info == "sh" {
            let expected = match blocks.get(i + 1) {
                Some((next, out)) if next == "text" => out.clone(),
                _ => String::new(),
            };
            steps.push((text.clone(), expected));
        }
    }
    steps
}

/// For comparing: runs of spaces as one, no empty lines, the lines in sorted order.
fn normal(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect();
    lines.sort();
    lines
}

/// Shuts the tutorial's supervisor down however the test ends.
struct Shutdown<'a>(&'a Path);

impl Drop for Shutdown<'_> {
    fn drop(&mut self) {
        let _ = bare_command()
            .arg("--playpen")
            .arg(self.0)
            .arg("shutdown")
            .output();
    }
}

#[test]
fn the_tutorial_runs_as_written() {
    let markdown = std::fs::read_to_string(repo().join("docs/tutorial.md")).expect("tutorial");
    let steps = steps(&markdown);
    assert!(
        steps.len() >= 8,
        "the tutorial has its commands in ```sh blocks"
    );
    let ports = reserve_ports(&[79, 80]);
    // The second checkout leases its prefix (PORT_PREFIX=auto) from a range of its own,
    // in a registry of the tutorial's own.
    let leased = reserve_range(1).remove(0);
    let dir = tempfile::tempdir().expect("tempdir");
    let dir_path = dir.path().canonicalize().expect("canonical tempdir");
    let root = dir_path.join("myproject");
    let review = dir_path.join("review");
    std::fs::create_dir(&root).expect("mkdir myproject");
    let _shutdown = Shutdown(&root);
    let bin_dir = Path::new(BIN).parent().expect("the binary's directory");
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let template = bare_command();
    let print = std::env::var_os("TUTORIAL_PRINT").is_some();
    let mut failures = Vec::new();
    for (script, expected) in &steps {
        let script = script.replace("PORT_PREFIX=8000", &format!("PORT_PREFIX={}", ports.prefix));
        let mut sh = Command::new("sh");
        sh.arg("-c")
            .arg(format!("exec 2>&1\nset -e\n{script}"))
            .current_dir(&root)
            .env("PATH", &path)
            .env("SERVICECTL_SRC", repo());
        for (k, v) in template.get_envs() {
            match v {
                Some(v) => sh.env(k, v),
                None => sh.env_remove(k),
            };
        }
        sh.env("XDG_STATE_HOME", dir_path.join("state")).env(
            "SERVICECTL_PORT_PREFIX_RANGE",
            format!("{p}-{p}", p = leased.prefix),
        );
        let out = run_with_deadline(&mut sh, std::time::Duration::from_secs(120))
            .unwrap_or_else(|| panic!("this step still runs after 120 s:\n{script}"));
        let printed = format!("{}{}", out.stdout, out.stderr)
            .replace(&review.display().to_string(), "{REVIEW}");
        let actual = mask(&printed, &root, ports.prefix);
        let actual = regex::Regex::new(&format!(r"\b{}(\d\d)\b", leased.prefix / 100))
            .expect("regex")
            .replace_all(&actual, "90$1")
            .into_owned();
        if print {
            println!("```sh\n{script}```\n```text\n{actual}```\n");
        }
        if out.code != 0 {
            failures.push(format!(
                "this step failed (exit {}):\n{script}\n{actual}",
                out.code
            ));
            break;
        }
        if normal(&actual) != normal(expected) {
            failures.push(format!(
                "this step printed other than documented:\n{script}\n--- documented:\n{expected}--- printed (masked):\n{actual}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

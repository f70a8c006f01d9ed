//! The integration tests of servicectl: one test binary (like ripgrep's and just's), so
//! the suite links once and shares one `common`. Cargo.toml sets `autotests = false` and
//! names this file the only `[[test]]` target: a new tests/NAME.rs must be declared here
//! (`every_test_file_is_a_module` checks that none is forgotten).
//!
//! They run the real binary against temporary playpens and real processes (sh, sleep,
//! python3's http.server, nginx, redis-server); see common/ for the fixture.

mod common;

mod bad_input;
mod boot;
mod bytes;
mod cli_output;
mod concurrency;
mod config_eval;
mod cron_inetd;
mod devloop;
mod ecosystem;
mod edit;
mod envars;
mod golden;
mod harden_files;
mod harden_signals;
mod harden_tracking;
mod hooks;
mod keeper;
mod lifecycle;
mod packages;
mod playpen;
mod playpens;
mod postgresql;
mod progress;
mod readiness;
mod real_servers;
mod run_as;
mod service_names;
mod settings;
mod status_ping;
mod supervise;
mod supervise_escapes;
mod templates;
mod tutorial;
mod upgrade;
mod watch;

/// With `autotests = false` cargo builds no tests/*.rs on its own: a file missing from
/// the `mod` lines above would silently never be compiled or run.
#[test]
fn every_test_file_is_a_module() {
    let dir = common::repo().join("tests");
    let main = std::fs::read_to_string(dir.join("main.rs")).expect("read tests/main.rs");
    let declared: Vec<&str> = main
        .lines()
        .filter_map(|l| l.strip_prefix("mod ")?.strip_suffix(';'))
        .collect();
    let mut forgotten = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("read tests/").flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let module = if path.is_dir() {
            name
        } else if let Some(stem) = name.strip_suffix(".rs") {
            stem.to_string()
        } else {
            continue;
        };
        if module != "main" && !declared.contains(&module.as_str()) {
            forgotten.push(module);
        }
    }
    assert!(
        forgotten.is_empty(),
        "tests/main.rs does not declare `mod` for {forgotten:?}: cargo would not build them"
    );
}

use super::*;
use crate::config::{Origin, ServiceConfig, Value, Vars};
use crate::playpen::catalog::ServiceId;
use std::sync::Arc;

fn settings(f: impl FnOnce(&mut Settings)) -> Settings {
    let mut s = Settings::default();
    f(&mut s);
    s
}

#[test]
fn restart_takes_the_path_the_settings_ask_for() {
    let plain = Settings::default();
    let script = Some(PathBuf::from("/p/ext/services/web-1.0/restart"));
    assert_eq!(
        restart_path(&plain, None, false, None, None),
        RestartPath::Start
    );
    assert_eq!(
        restart_path(&plain, None, true, None, None),
        RestartPath::StopThenStart
    );
    assert_eq!(
        restart_path(&plain, Some(7), false, None, None),
        RestartPath::StopThenStart
    );
    assert_eq!(
        restart_path(&plain, Some(7), false, None, script.clone()),
        RestartPath::Script(script.clone().unwrap())
    );
    let hup = settings(|s| s.hup = true);
    assert_eq!(
        restart_path(&hup, Some(7), false, None, script.clone()),
        RestartPath::Reload { pid: 7 },
        "service_hup wins over the restart script"
    );
    // A changed file stops the service only when it asks for that, even with hup.
    let filedep = settings(|s| {
        s.hup = true;
        s.filedep.stop_on_change = true;
    });
    assert_eq!(
        restart_path(&filedep, Some(7), false, Some("etc/x".into()), None),
        RestartPath::StopForFiledep {
            pid: 7,
            file: "etc/x".into()
        }
    );
    assert_eq!(
        restart_path(&hup, Some(7), false, Some("etc/x".into()), None),
        RestartPath::Reload { pid: 7 }
    );
    // Nothing runs: no reload, no script, a start.
    assert_eq!(
        restart_path(&filedep, None, false, Some("etc/x".into()), script),
        RestartPath::Start
    );
}

/// A playpen in a temporary directory with one project-local service.
fn playpen_with(program: &str) -> (tempfile::TempDir, Playpen, Prepared) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let playpen = Playpen::init(&root, "dev").unwrap();
    std::fs::create_dir_all(root.join("bin")).unwrap();
    let path = root.join("bin/prog");
    std::fs::write(&path, program).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut vars = Vars::new();
    vars.insert(
        "PATH".into(),
        Value {
            value: std::env::var_os("PATH").unwrap_or_default(),
            exported: true,
            origin: Origin::Environment,
        },
    );
    vars.insert(
        "PLAYPEN_ROOT".into(),
        Value {
            value: root.clone().into(),
            exported: true,
            origin: Origin::Servicectl,
        },
    );
    let config = ServiceConfig {
        id: ServiceId {
            name: "web".into(),
            version: None,
        },
        fragments: vec![root.join("services/web/config")],
        vars,
    };
    let settings = Settings {
        program: Some("prog".into()),
        start_grace: Duration::from_millis(300),
        ..Settings::default()
    };
    let env = config.environment();
    let prepared = Prepared::new(Arc::new(config), Arc::new(settings), env, Vec::new());
    playpen.ensure_var().unwrap();
    (dir, playpen, prepared)
}

#[test]
fn a_failed_start_leaves_no_process_and_no_record() {
    let (_dir, playpen, prepared) =
        playpen_with("#!/bin/sh\necho \"pid $$\"\necho starting >&2\nexit 3\n");
    let err = start(&playpen, &prepared, OutputTo::File).unwrap_err();
    assert!(
        err.message
            .contains("exited with status 3 right after starting"),
        "{}",
        err.message
    );
    assert!(
        err.message.contains("starting"),
        "the output's tail is quoted: {}",
        err.message
    );
    assert!(!playpen.pidfile("web").exists());
    assert!(!playpen.start_record("web").exists());
    let output = std::fs::read_to_string(playpen.output_file("web")).unwrap();
    let pid: i32 = output
        .lines()
        .next()
        .unwrap()
        .strip_prefix("pid ")
        .unwrap()
        .parse()
        .unwrap();
    assert!(!proc::is_alive(pid));
}

#[test]
fn a_start_then_stop_leaves_records_only_while_it_runs() {
    let (_dir, playpen, prepared) = playpen_with("#!/bin/sh\nexec sleep 1000\n");
    let Outcome::Started { pid: Some(pid) } = start(&playpen, &prepared, OutputTo::File).unwrap()
    else {
        panic!("not started");
    };
    assert!(proc::is_alive(pid));
    assert_eq!(
        std::fs::read_to_string(playpen.pidfile("web"))
            .unwrap()
            .trim(),
        pid.to_string()
    );
    assert!(playpen.start_record("web").exists());
    assert_eq!(
        start(&playpen, &prepared, OutputTo::File).unwrap(),
        Outcome::AlreadyRunning { pid: Some(pid) }
    );
    assert!(
        matches!(stop(&playpen, &prepared).unwrap(), Outcome::Stopped { pid: Some(p), .. } if p == pid)
    );
    assert!(!proc::is_alive(pid));
    assert!(!playpen.pidfile("web").exists());
    assert!(!playpen.start_record("web").exists());
    assert_eq!(stop(&playpen, &prepared).unwrap(), Outcome::AlreadyStopped);
}

//! Settings: defaults, rules, every problem at once.

use super::*;
use crate::config::{Origin, Value, Vars};
use crate::playpen::catalog::ServiceId;
use std::path::PathBuf;

fn config(pairs: &[(&str, &str)]) -> ServiceConfig {
    let mut vars = Vars::new();
    for (k, v) in pairs {
        vars.insert(
            k.to_string(),
            Value {
                value: v.into(),
                exported: false,
                origin: Origin::File(PathBuf::from("/p/ext/services/web-1.0/config")),
            },
        );
    }
    ServiceConfig {
        id: ServiceId {
            name: "web".into(),
            version: Some("1.0".into()),
        },
        fragments: vec![PathBuf::from("/p/ext/services/web-1.0/config")],
        vars,
    }
}

fn parse(pairs: &[(&str, &str)]) -> Result<Settings> {
    let mut all = vec![("service_program", "sleep")];
    all.extend_from_slice(pairs);
    Settings::parse(&config(&all))
}

/// The one problem of a bad value names the service, setting, file, value and rule.
fn problem(pairs: &[(&str, &str)]) -> String {
    let err = parse(pairs).expect_err("must be rejected");
    assert_eq!(err.service.as_deref(), Some("web"));
    err.message.clone()
}

#[test]
fn a_setting_that_is_not_utf8_is_a_problem_naming_it() {
    use std::os::unix::ffi::OsStringExt;
    for name in ["service_flags", "service_halt_timeout", "service_run_name"] {
        let mut c = config(&[("service_program", "sleep")]);
        c.vars.insert(
            name.into(),
            Value {
                value: std::ffi::OsString::from_vec(b"10\xff".to_vec()),
                exported: false,
                origin: Origin::File(PathBuf::from("/p/services/web/config")),
            },
        );
        let err = Settings::parse(&c).expect_err("must be rejected");
        assert_eq!(
            err.message,
            format!(
                "{name}=\"10\\xFF\" (set in /p/services/web/config): must be UTF-8 text (settings are read as text; bytes that are not UTF-8 can reach a program through a variable of its environment instead)"
            )
        );
    }
}

#[test]
fn defaults_when_nothing_is_set() {
    let s = parse(&[]).unwrap();
    assert_eq!(
        s,
        Settings {
            program: Some("sleep".into()),
            ..Settings::default()
        }
    );
    assert_eq!(s.halt_timeout, Duration::from_secs(10));
    assert_eq!(s.restart_policy, RestartPolicy::Never);
    assert_eq!(s.log.max_bytes, 10 << 20);
}

#[test]
fn a_bad_value_names_setting_file_value_and_rule() {
    let m = problem(&[("service_restart_policy", "sometimes")]);
    assert!(m.starts_with("service_restart_policy=\"sometimes\""), "{m}");
    assert!(m.contains("(set in /p/ext/services/web-1.0/config)"), "{m}");
    assert!(m.contains("none, unlimited, or a number"), "{m}");
}

#[test]
fn every_problem_is_reported_at_once() {
    let err = parse(&[
        ("service_hup", "maybe"),
        ("service_halt_timeout", "-1"),
        ("service_flags", "'open"),
    ])
    .unwrap_err();
    assert!(err.message.starts_with("3 problems"), "{}", err.message);
    for setting in ["service_hup=", "service_halt_timeout=", "service_flags="] {
        assert!(err.message.contains(setting), "{}", err.message);
    }
}

#[test]
fn switches() {
    assert!(parse(&[("service_hup", "yes")]).unwrap().hup);
    assert!(!parse(&[("service_hup", "0")]).unwrap().hup);
    assert!(!parse(&[("service_hup", "")]).unwrap().hup);
    assert!(problem(&[("service_hup", "2")]).contains("must be 1 (on) or 0 (off)"));
    for name in [
        "service_makes_own_pidfile",
        "service_no_pidfile",
        "service_no_symlink",
        "service_stop_on_filedep",
        "service_restart_on_dep_upgrade",
        "service_stop_before_dep_upgrade",
        "service_stop_before_upgrade",
        "service_fail_fast",
    ] {
        let m = problem(&[(name, "perhaps")]);
        assert!(m.starts_with(&format!("{name}=\"perhaps\"")), "{m}");
    }
}

#[test]
fn durations() {
    let s = parse(&[
        ("service_halt_timeout", "2.5"),
        ("service_restart_delay", "1"),
    ])
    .unwrap();
    assert_eq!(s.halt_timeout, Duration::from_millis(2500));
    assert_eq!(s.restart_delay, Duration::from_secs(1));
    for name in [
        "service_halt_timeout",
        "service_restart_delay",
        "service_start_grace",
        "service_pidfile_timeout",
        "service_depends_timeout",
        "service_restart_backoff_max",
    ] {
        for bad in ["soon", "-1", "inf", "NaN"] {
            let m = problem(&[(name, bad)]);
            assert!(
                m.contains("must be a number of seconds"),
                "{name}={bad}: {m}"
            );
        }
    }
}

#[test]
fn flags_are_split_with_sh_quoting() {
    let s = parse(&[("service_flags", r#"-c "a b" 'c d' e\ f"#)]).unwrap();
    assert_eq!(s.flags, ["-c", "a b", "c d", "e f"]);
    assert!(problem(&[("service_flags", "-c 'unbalanced")]).contains("balance the quotes"));
}

#[test]
fn restart_policy() {
    assert_eq!(
        parse(&[("service_restart_policy", "none")])
            .unwrap()
            .restart_policy,
        RestartPolicy::Never
    );
    assert_eq!(
        parse(&[("service_restart_policy", "5")])
            .unwrap()
            .restart_policy,
        RestartPolicy::Times(5)
    );
    assert_eq!(
        parse(&[("service_restart_policy", "unlimited")])
            .unwrap()
            .restart_policy,
        RestartPolicy::Always
    );
    assert!(problem(&[("service_restart_policy", "-2")]).contains("number of restarts"));
}

#[test]
fn pidfile_modes() {
    assert_eq!(
        parse(&[("service_makes_own_pidfile", "1")])
            .unwrap()
            .pidfile,
        PidfileMode::Program
    );
    assert_eq!(
        parse(&[("service_no_pidfile", "1"), ("service_ping", "p")])
            .unwrap()
            .pidfile,
        PidfileMode::None
    );
    assert!(
        problem(&[
            ("service_makes_own_pidfile", "1"),
            ("service_no_pidfile", "1")
        ])
        .contains("contradict")
    );
    assert!(
        problem(&[("service_no_pidfile", "1"), ("service_start", "s")])
            .contains("needs a service_stop script")
    );
}

#[test]
fn program_or_start_script_is_required() {
    let err = Settings::parse(&config(&[])).unwrap_err();
    assert!(
        err.message
            .contains("no service_program is set in /p/ext/services/web-1.0/config"),
        "{}",
        err.message
    );
    assert!(Settings::parse(&config(&[("service_start", "start.sh")])).is_ok());
}

#[test]
fn service_type_and_config_style() {
    assert_eq!(
        problem(&[("service_type", "forking")]),
        "service_type=\"forking\" (set in /p/ext/services/web-1.0/config): must be init (a daemon), oneshot (run once to completion), cron or inetd"
    );
    let oneshot = parse(&[("service_type", "oneshot")]).unwrap();
    assert_eq!(oneshot.service_type, ServiceType::Oneshot);
    assert_eq!(oneshot.ready, Ready::Exit);
    assert!(problem(&[("service_config_style", "jinja")]).contains("must be envsubst"));
    assert_eq!(
        parse(&[("service_config_style", " envsubst ")])
            .unwrap()
            .config_style,
        Style::Envsubst
    );
    assert_eq!(
        parse(&[("service_config_style", "sub-conf")])
            .unwrap()
            .config_style,
        Style::Underscores
    );
}

#[test]
fn log_rotation() {
    let s = parse(&[("service_log_max_bytes", "5M"), ("service_log_keep", "0")]).unwrap();
    assert_eq!(
        s.log,
        LogRotation {
            max_bytes: 5 << 20,
            keep: 0
        }
    );
    for bad in ["0", "ten", "5T", "-1"] {
        assert!(
            problem(&[("service_log_max_bytes", bad)]).contains("size in bytes"),
            "{bad}"
        );
    }
    assert!(problem(&[("service_log_keep", "many")]).contains("whole number, 0 or more"));
}

#[test]
fn cron_schedules() {
    let cron = |time: &str| {
        parse(&[
            ("service_type", "cron"),
            ("service_cron_time", time),
            ("service_cron_command", "date"),
        ])
    };
    for good in [
        "* * * * *",
        "*/5 1-3,7 * JAN-MAR mon-fri",
        "0 0 1 * SUN",
        "@hourly",
        "@daily",
        "@weekly",
        "@monthly",
        "@yearly",
    ] {
        let s = cron(good).unwrap_or_else(|e| panic!("{good}: {e}"));
        assert!(matches!(s.service_type, ServiceType::Cron(_)));
    }
    assert!(matches!(
        cron("@reboot").unwrap().service_type,
        ServiceType::Cron(CronSettings {
            schedule: CronSchedule::WhenArmed,
            ..
        })
    ));
    let m = cron("61 * * * *").unwrap_err().message;
    assert!(m.contains("minute field \"61\""), "{m}");
    let m = cron("* * * 13 *").unwrap_err().message;
    assert!(m.contains("month field \"13\""), "{m}");
    let m = cron("* * * * FUNDAY").unwrap_err().message;
    assert!(m.contains("day of week field"), "{m}");
    assert!(
        cron("* * *")
            .unwrap_err()
            .message
            .contains("has 3 field(s)")
    );
    assert!(
        cron("@sometimes")
            .unwrap_err()
            .message
            .contains("not a known alias")
    );
    let m = parse(&[("service_type", "cron")]).unwrap_err().message;
    assert!(
        m.contains("needs service_cron_time") && m.contains("needs service_cron_command"),
        "{m}"
    );
}

#[test]
fn inetd_settings() {
    let inetd = |extra: &[(&str, &str)]| {
        let mut pairs = vec![
            ("service_type", "inetd"),
            ("service_port", "8080"),
            ("service_inetd_command", "bin/handler --fast"),
        ];
        pairs.extend_from_slice(extra);
        parse(&pairs)
    };
    let ServiceType::Inetd(s) = inetd(&[]).unwrap().service_type else {
        panic!("not inetd");
    };
    assert_eq!(s.port, PortSetting::Number(8080));
    assert_eq!(s.protocol, Protocol::Tcp);
    assert_eq!(s.bind.to_string(), "127.0.0.1");
    assert_eq!(s.command, ["bin/handler", "--fast"]);
    assert_eq!(s.max_handlers, 64);
    let ServiceType::Inetd(s) = inetd(&[("service_bind", "::1"), ("service_protocol", "udp")])
        .unwrap()
        .service_type
    else {
        panic!("not inetd");
    };
    assert_eq!(
        (s.bind.to_string().as_str(), s.protocol),
        ("::1", Protocol::Udp)
    );
    for (name, bad, rule) in [
        ("service_port", "0", "1 to 65535"),
        ("service_port", "70000", "1 to 65535"),
        ("service_port", "WEB_PORT", "name of a port variable"),
        ("service_protocol", "sctp", "tcp or udp"),
        ("service_bind", "localhost:80", "IP address"),
        ("service_inetd_max", "0", "1 or more"),
        ("service_inetd_command", "'x", "balance the quotes"),
    ] {
        let m = inetd(&[(name, bad)]).unwrap_err().message;
        assert!(m.contains(rule) && m.contains(name), "{name}={bad}: {m}");
    }
    let typed = inetd(&[
        ("service_port", "WEB_PORT"),
        ("service_optional_envars", "WEB_PORT"),
    ])
    .unwrap();
    let ServiceType::Inetd(s) = typed.service_type else {
        panic!()
    };
    assert_eq!(s.port, PortSetting::Variable("WEB_PORT".into()));
    let m = parse(&[("service_type", "inetd")]).unwrap_err().message;
    assert!(
        m.contains("needs service_port") && m.contains("needs service_inetd_command"),
        "{m}"
    );
}

/// docs/packaging.md shows the table made from [`TABLE`], between its markers, and
/// names every setting. `SETTINGS_DOCS_WRITE=1 cargo test --lib settings::tests::the_docs`
/// writes it there after a change to the table.
#[test]
fn the_docs_show_the_settings_table() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/packaging.md");
    let docs = std::fs::read_to_string(path).expect("docs/packaging.md");
    let (begin, end) = (
        "<!-- settings table: begin -->\n",
        "<!-- settings table: end -->",
    );
    let start = docs.find(begin).expect("the begin marker") + begin.len();
    let stop = docs.find(end).expect("the end marker");
    let expected = table::docs_table();
    if std::env::var_os("SETTINGS_DOCS_WRITE").is_some() {
        let written = format!("{}{expected}{}", &docs[..start], &docs[stop..]);
        std::fs::write(path, written).expect("write docs/packaging.md");
        return;
    }
    assert_eq!(
        &docs[start..stop],
        expected,
        "docs/packaging.md differs from the settings table: run SETTINGS_DOCS_WRITE=1 cargo test --lib settings::tests::the_docs"
    );
    for row in TABLE {
        assert!(docs.contains(&format!("`{}`", row.name)), "{}", row.name);
    }
}

#[test]
fn each_setting_is_declared_once_and_its_default_is_valid() {
    let mut names: Vec<&str> = TABLE.iter().map(|r| r.name).collect();
    names.sort();
    let count = names.len();
    names.dedup();
    assert_eq!(names.len(), count, "a setting declared twice");
    // The defaults of the table are read as a fragment's values would be.
    let d = Settings::default();
    assert_eq!(d.start_grace, Duration::from_millis(250));
    assert_eq!(d.log.max_bytes, 10 << 20);
    assert!(d.symlink && d.upgrade.stop_before_upgrade);
    let inetd = parse(&[
        ("service_type", "inetd"),
        ("service_port", "7000"),
        ("service_inetd_command", "cat"),
    ])
    .expect("a valid inetd service");
    let ServiceType::Inetd(inetd) = inetd.service_type else {
        panic!("inetd")
    };
    assert_eq!(inetd.max_handlers, 64);
    assert_eq!(inetd.bind.to_string(), "127.0.0.1");
}

#[test]
fn readiness_health_and_watchdog() {
    let ready = |v: &str| parse(&[("service_ready", v)]).map(|s| s.ready);
    assert_eq!(parse(&[]).unwrap().ready, Ready::Ping);
    assert_eq!(ready("notify").unwrap(), Ready::Notify);
    assert_eq!(ready("tcp").unwrap(), Ready::Tcp(None));
    assert_eq!(
        ready("tcp:WEB_PORT").unwrap(),
        Ready::Tcp(Some("WEB_PORT".into()))
    );
    assert_eq!(
        ready("http:WEB_PORT/health/live").unwrap(),
        Ready::Http {
            var: "WEB_PORT".into(),
            path: "/health/live".into()
        }
    );
    assert_eq!(
        ready("http:WEB_PORT").unwrap(),
        Ready::Http {
            var: "WEB_PORT".into(),
            path: "/".into()
        }
    );
    assert_eq!(
        ready("log:listening on \\d+").unwrap(),
        Ready::Log("listening on \\d+".into())
    );
    for bad in ["systemd", "tcp:", "http:/x", "log:", "tcp:9PORT"] {
        assert_eq!(
            problem(&[("service_ready", bad)]),
            format!(
                "service_ready={bad:?} (set in /p/ext/services/web-1.0/config): must be notify, tcp, tcp:VAR, http:VAR/PATH, log:REGEX, exit (one-shot services) or unset (the ping)"
            )
        );
    }
    assert!(problem(&[("service_ready", "log:(unclosed")])
        .starts_with("service_ready=\"log:(unclosed\" (set in /p/ext/services/web-1.0/config): the log: pattern is not a valid regex ("));
    assert!(problem(&[("service_ready", "exit")]).contains("exit is for one-shot services"));
    assert!(
        problem(&[("service_type", "oneshot"), ("service_ready", "notify")])
            .contains("a one-shot service is ready when it exits with status 0")
    );
    // The new name wins; the old one is still read.
    let t = |pairs: &[(&str, &str)]| parse(pairs).unwrap().depends_timeout;
    assert_eq!(
        t(&[("service_depends_timeout", "7")]),
        Duration::from_secs(7)
    );
    assert_eq!(
        t(&[
            ("service_depends_timeout", "7"),
            ("service_ready_timeout", "9")
        ]),
        Duration::from_secs(9)
    );
    let h = parse(&[
        ("service_health_interval", "10"),
        ("service_health_timeout", "2"),
        ("service_health_retries", "4"),
    ])
    .unwrap()
    .health;
    assert_eq!(
        h,
        Health {
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(2),
            retries: 4
        }
    );
    assert!(
        problem(&[("service_health_interval", "5")])
            .contains("must be longer than service_health_timeout=5")
    );
    assert!(
        problem(&[
            ("service_health_interval", "10"),
            ("service_ready", "notify")
        ])
        .contains("health checks repeat a ping, tcp or http check")
    );
    assert!(
        problem(&[("service_health_retries", "0")]).contains("must be a whole number, 1 or more")
    );
    assert_eq!(
        parse(&[("service_watchdog_sec", "2.5")]).unwrap().watchdog,
        Some(Duration::from_millis(2500))
    );
    assert_eq!(
        parse(&[("service_watchdog_sec", "0")]).unwrap().watchdog,
        None
    );
}

//! The rules of typed variables, one service at a time.

use super::*;
use crate::config::{Origin, Value};
use crate::playpen::catalog::ServiceId;
use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

fn config_named(service: &str, pairs: &[(&str, &str)]) -> ServiceConfig {
    ServiceConfig {
        id: ServiceId {
            name: service.to_string(),
            version: None,
        },
        fragments: Vec::new(),
        vars: pairs
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    Value {
                        value: v.into(),
                        exported: false,
                        origin: Origin::Servicectl,
                    },
                )
            })
            .collect(),
    }
}

fn config(pairs: &[(&str, &str)]) -> ServiceConfig {
    config_named("web", pairs)
}

/// Resolve one required variable of `ty` with `constraints` set to `value`.
fn check(ty: &str, constraints: Option<&str>, value: &str) -> Resolution {
    let mut pairs = vec![
        ("service_required_envars", "X"),
        ("envar_X_type", ty),
        ("X", value),
    ];
    if let Some(c) = constraints {
        pairs.push(("envar_X_constraints", c));
    }
    resolve(&config(&pairs))
}

fn valid(ty: &str, constraints: Option<&str>, value: &str) -> bool {
    let r = check(ty, constraints, value);
    let ok = r.is_ok();
    assert_eq!(
        ok,
        r.values.get("X").and_then(|v| v.to_str()) == Some(value)
    );
    ok
}

fn rules(r: &Resolution) -> Vec<&str> {
    r.problems.iter().map(|p| p.rule.as_str()).collect()
}

#[test]
fn type_names_parse_and_unknown_ones_are_problems() {
    for t in VarType::ALL {
        assert_eq!(VarType::from_name(t.name()), Some(t));
    }
    assert_eq!(VarType::from_name(" Port "), Some(VarType::Port));
    assert_eq!(VarType::from_name("number"), None);
    let r = check("number", None, "5");
    assert_eq!(r.problems.len(), 1);
    let text = r.problems[0].to_string();
    assert!(
        text.starts_with("web: X: envar_X_type=\"number\" is not a type"),
        "{text}"
    );
    assert!(text.contains("simple_string, string, filename, integer, nonnegative, real, port"));
    // The value itself is not type-checked, but still exported.
    assert_eq!(r.values.get("X").and_then(|v| v.to_str()), Some("5"));
}

#[test]
fn specs_read_lists_and_fields() {
    let c = config(&[
        ("service_required_envars", "A B"),
        ("service_optional_envars", "  C   A "),
        ("envar_A_description", " the a\nthing "),
        ("envar_A_type", "integer"),
        ("envar_A_constraints", "1-10"),
        ("envar_A_default", " 5 "),
        ("envar_B_type", ""),
        ("envar_C_default", ""),
    ]);
    let specs = specs(&c);
    assert_eq!(specs.len(), 3, "A is listed twice but required once");
    assert_eq!(
        specs[0],
        VarSpec {
            name: "A".into(),
            required: true,
            description: Some("the a\nthing".into()),
            var_type: Some(VarType::Integer),
            type_name: Some("integer".into()),
            constraints: Some("1-10".into()),
            default: Some(" 5 ".into()),
        }
    );
    assert!(specs[1].required && specs[1].type_name.is_none());
    assert_eq!(specs[2].name, "C");
    assert!(!specs[2].required);
    assert_eq!(specs[2].default, None, "an empty default is no default");
}

#[test]
fn unlisted_variables_are_not_checked() {
    let r = resolve(&config(&[
        ("envar_X_type", "port"),
        ("X", "not a port"),
        ("OTHER_PORT", "70000"),
    ]));
    assert!(r.is_ok() && r.values.is_empty() && r.warnings.is_empty());
}

#[test]
fn simple_string() {
    assert!(valid("simple_string", None, "fast"));
    assert!(!valid("simple_string", None, "two words"));
    assert!(!valid("simple_string", None, "tab\there"));
    assert!(valid("simple_string", Some("fast slow"), "slow"));
    let r = check("simple_string", Some("fast  slow"), "medium");
    assert_eq!(rules(&r), ["not one of the allowed values: fast slow"]);
}

#[test]
fn string_and_filename_accept_anything_non_empty() {
    assert!(valid(
        "string",
        None,
        "two words, $quoted \"text\"\nand lines"
    ));
    assert!(valid("filename", None, "/var/tmp/a file"));
    let r = check("string", Some("a b"), "c");
    assert!(r.is_ok());
    assert_eq!(r.warnings.len(), 1);
    assert!(r.warnings[0].contains("ignored: type string takes no constraints"));
}

/// Resolve with values given as bytes.
fn resolve_bytes(pairs: &[(&str, &[u8])]) -> Resolution {
    use std::os::unix::ffi::OsStringExt;
    let mut c = config(&[]);
    for (k, v) in pairs {
        c.vars.insert(
            k.to_string(),
            Value {
                value: OsString::from_vec(v.to_vec()),
                exported: false,
                origin: Origin::Servicectl,
            },
        );
    }
    resolve(&c)
}

#[test]
fn strings_hold_any_bytes_and_numbers_must_be_text() {
    use std::os::unix::ffi::OsStrExt;
    let value: &[u8] = b"\xff\xfe \x80\n'$\"";
    for ty in ["string", "filename", "simple_string"] {
        let value: &[u8] = if ty == "simple_string" {
            b"\xff\xfe\x80"
        } else {
            value
        };
        let r = resolve_bytes(&[
            ("service_required_envars", b"X"),
            ("envar_X_type", ty.as_bytes()),
            ("X", value),
        ]);
        assert!(r.is_ok(), "{ty}: {:?}", r.problems);
        assert_eq!(r.values["X"].as_bytes(), value, "{ty}");
    }
    let r = resolve_bytes(&[
        ("service_required_envars", b"X"),
        ("envar_X_type", b"simple_string"),
        ("envar_X_constraints", b"a \xef\xbf\xbd"),
        ("X", b"\xff"),
    ]);
    assert_eq!(rules(&r), ["not one of the allowed values: a \u{fffd}"]);
    for (ty, rule) in [
        ("integer", "not an integer"),
        ("port", "not a port (1-65535)"),
        ("real", "not a real number"),
    ] {
        let r = resolve_bytes(&[
            ("service_required_envars", b"X"),
            ("envar_X_type", ty.as_bytes()),
            ("X", b"8\xff"),
        ]);
        assert_eq!(rules(&r), [rule], "{ty}");
        assert_eq!(
            r.problems[0].detail(),
            format!("X = \"8\\xFF\": {rule}"),
            "{ty}"
        );
    }
    let r = resolve_bytes(&[
        ("service_optional_envars", b"X"),
        ("envar_X_description", b"caf\xe9"),
    ]);
    assert_eq!(
        rules(&r),
        ["envar_X_description=\"caf\\xE9\" is not UTF-8 text: write it in UTF-8"]
    );
}

#[test]
fn integer() {
    for v in ["0", "-5", "+7", "123456789012345678901234567890"] {
        assert!(valid("integer", None, v), "{v}");
    }
    for v in ["1.5", "abc", " 5", "5 ", "0x10", "1e3"] {
        assert!(!valid("integer", None, v), "{v}");
    }
    assert_eq!(rules(&check("integer", None, "x")), ["not an integer"]);
}

#[test]
fn nonnegative() {
    assert!(valid("nonnegative", None, "0"));
    assert!(valid("nonnegative", None, "42"));
    assert_eq!(
        rules(&check("nonnegative", None, "-1")),
        ["not a nonnegative integer (0 or more)"]
    );
    assert!(!valid("nonnegative", None, "1.0"));
}

#[test]
fn real() {
    for v in ["0", "-1.5", "3.25", ".5", "1e-3", "+2"] {
        assert!(valid("real", None, v), "{v}");
    }
    for v in ["inf", "NaN", "infinity", "1e999", "1,5", "abc"] {
        assert!(!valid("real", None, v), "{v}");
    }
    assert!(valid("real", Some("0-1.5"), "1.25"));
    assert!(!valid("real", Some("0-1.5"), "1.75"));
    assert!(valid("real", Some("1e-3-2e-3"), "0.0015"));
    assert!(valid("real", Some("-0.5-0.5"), "-0.25"));
}

#[test]
fn port() {
    assert!(valid("port", None, "1"));
    assert!(valid("port", None, "65535"));
    for v in ["0", "65536", "70000", "-80", "http", "80.0"] {
        let r = check("port", None, v);
        assert_eq!(rules(&r), ["not a port (1-65535)"], "{v}");
        assert!(r.ports.is_empty());
    }
    let r = check("port", None, "8080");
    assert_eq!(r.ports, [("X".to_string(), 8080)]);
}

#[test]
fn ranges() {
    assert!(valid("integer", Some("1-10 20-30"), "25"));
    assert!(valid("integer", Some("1-10 20-30"), "10"));
    assert_eq!(
        rules(&check("integer", Some("1-10   20-30"), "15")),
        ["outside the allowed ranges 1-10 20-30"]
    );
    assert_eq!(
        rules(&check("port", Some("8000-8999"), "9000")),
        ["outside the allowed range 8000-8999"]
    );
    assert!(valid("integer", Some("7"), "7"), "a single number");
    assert!(!valid("integer", Some("7"), "8"));
    assert!(valid("integer", Some("-10-10"), "-10"), "negative start");
    assert!(valid("integer", Some("-10-10"), "10"));
    assert!(!valid("integer", Some("-10-10"), "11"));
    assert!(valid("integer", Some("-10--5"), "-7"), "both negative");
    assert!(!valid("integer", Some("-10--5"), "-4"));
    assert!(
        valid("integer", Some("-3"), "-3"),
        "a single negative number"
    );
    assert!(valid("nonnegative", Some("0-0 5-9"), "0"));
}

#[test]
fn malformed_constraints_are_problems_and_types_still_apply() {
    for (ty, c) in [
        ("integer", "1-"),
        ("integer", "a-b"),
        ("integer", "1..10"),
        ("integer", "10-1"),
        ("integer", "1.5-3"),
        ("port", "80-90-100"),
        ("real", "x"),
    ] {
        let r = check(ty, Some(c), "abc");
        assert_eq!(r.problems.len(), 2, "{ty} {c}: {:?}", r.problems);
        assert!(
            r.problems[0]
                .rule
                .starts_with(&format!("envar_X_constraints={c:?} is malformed")),
            "{}",
            r.problems[0].rule
        );
        assert_eq!(r.problems[0].value, None);
        assert_eq!(r.problems[1].value.as_deref(), Some(OsStr::new("abc")));
    }
    assert!(
        check("integer", Some("10-1"), "5").problems[0]
            .rule
            .contains("empty range")
    );
}

#[test]
fn required_unset_or_empty_is_missing() {
    for pairs in [
        vec![("service_required_envars", "DB_HOST")],
        vec![("service_required_envars", "DB_HOST"), ("DB_HOST", "")],
    ] {
        let mut pairs = pairs.clone();
        pairs.push(("envar_DB_HOST_description", "database host"));
        pairs.push(("envar_DB_HOST_default", "localhost"));
        let r = resolve(&config(&pairs));
        assert_eq!(r.missing.len(), 1);
        assert_eq!(r.missing[0].name, "DB_HOST");
        assert_eq!(
            r.problems[0].to_string(),
            "web: DB_HOST (database host): required but unset"
        );
        assert!(
            r.values.is_empty(),
            "defaults do not fill required variables"
        );
    }
}

#[test]
fn optional_uses_default_and_checks_it() {
    let r = resolve(&config(&[
        ("service_optional_envars", "WORKERS LEVEL NOTHING"),
        ("envar_WORKERS_type", "nonnegative"),
        ("envar_WORKERS_default", "4"),
        ("envar_LEVEL_type", "simple_string"),
        ("envar_LEVEL_constraints", "debug info"),
        ("envar_LEVEL_default", "verbose"),
    ]));
    assert_eq!(r.values.get("WORKERS").and_then(|v| v.to_str()), Some("4"));
    assert!(!r.values.contains_key("NOTHING"));
    assert!(r.missing.is_empty());
    assert_eq!(
        r.problems[0].to_string(),
        "web: LEVEL = \"verbose\": not one of the allowed values: debug info (the default, envar_LEVEL_default)"
    );
}

#[test]
fn unused_bad_default_is_a_warning() {
    let r = resolve(&config(&[
        ("service_optional_envars", "N"),
        ("envar_N_type", "integer"),
        ("envar_N_default", "many"),
        ("N", "3"),
    ]));
    assert!(r.is_ok());
    assert_eq!(
        r.warnings,
        ["web: envar_N_default=\"many\" would not be valid: not an integer"]
    );
}

#[test]
fn problem_display_matches_the_documented_shape() {
    let r = resolve(&config(&[
        ("service_required_envars", "WEB_PORT"),
        ("envar_WEB_PORT_type", "port"),
        (
            "envar_WEB_PORT_description",
            "the port the web server\n  listens on",
        ),
        ("WEB_PORT", "70000"),
    ]));
    assert_eq!(
        r.problems[0].to_string(),
        "web: WEB_PORT (the port the web server listens on) = \"70000\": not a port (1-65535)"
    );
}

#[test]
fn origin_of_a_bad_value_is_named() {
    let mut c = config(&[
        ("service_required_envars", "N"),
        ("envar_N_type", "integer"),
    ]);
    c.vars.insert(
        "N".into(),
        Value {
            value: "x".into(),
            exported: true,
            origin: Origin::File(PathBuf::from("/p/etc/roles/dev/config")),
        },
    );
    assert_eq!(
        resolve(&c).problems[0].rule,
        "not an integer (set in /p/etc/roles/dev/config)"
    );
    c.vars.get_mut("N").expect("set above").origin = Origin::Environment;
    assert_eq!(
        resolve(&c).problems[0].rule,
        "not an integer (from the environment)"
    );
}

#[test]
fn all_problems_are_collected() {
    let r = resolve(&config(&[
        ("service_required_envars", "A B C 9BAD"),
        ("service_optional_envars", "D"),
        ("envar_A_type", "port"),
        ("A", "0"),
        ("envar_C_type", "integer"),
        ("C", "x"),
        ("envar_D_type", "real"),
        ("D", "y"),
    ]));
    let vars: Vec<&str> = r
        .problems
        .iter()
        .map(|p| p.variable.as_deref().unwrap_or_default())
        .collect();
    assert_eq!(vars, ["A", "B", "C", "9BAD", "D"]);
    let err = r.to_error().expect("problems");
    assert_eq!(err.service.as_deref(), Some("web"));
    assert!(
        err.message
            .starts_with("5 problems with typed variables:\n  A = \"0\"")
    );
    assert!(err.hint.unwrap().contains("missing-env --script web"));
    assert!(resolve(&config(&[])).to_error().is_none());
}

#[test]
fn port_from_prefix_and_offset() {
    let base = [
        ("service_required_envars", "WEB_PORT"),
        ("envar_WEB_PORT_type", "port"),
        ("PORT_PREFIX", "8000"),
        ("WEB_PORT_OFFSET", "80"),
    ];
    let r = resolve(&config(&base));
    assert!(r.is_ok(), "{:?}", r.problems);
    assert_eq!(
        r.values.get("WEB_PORT").and_then(|v| v.to_str()),
        Some("8080")
    );
    assert_eq!(r.ports, [("WEB_PORT".to_string(), 8080)]);

    let mut set = base.to_vec();
    set.push(("WEB_PORT", "9000"));
    assert_eq!(
        resolve(&config(&set)).ports[0].1,
        9000,
        "an explicit value wins"
    );

    let mut negative = base.to_vec();
    negative[3] = ("WEB_PORT_OFFSET", " -1 ");
    assert_eq!(resolve(&config(&negative)).ports[0].1, 7999);
}

#[test]
fn port_from_prefix_and_offset_problems() {
    let with = |prefix: &str, offset: &str| {
        resolve(&config(&[
            ("service_required_envars", "WEB_PORT"),
            ("envar_WEB_PORT_type", "port"),
            ("PORT_PREFIX", prefix),
            ("WEB_PORT_OFFSET", offset),
        ]))
    };
    let r = with("80xx", "80");
    assert_eq!(
        rules(&r),
        [
            "PORT_PREFIX=\"80xx\" is not a number, so WEB_PORT = PORT_PREFIX + WEB_PORT_OFFSET cannot be worked out"
        ]
    );
    assert!(r.missing.is_empty(), "set but wrong is not missing");
    assert!(
        rules(&with("8000", "eighty"))[0].starts_with("WEB_PORT_OFFSET=\"eighty\" is not a number")
    );
    let r = with("65500", "80");
    assert_eq!(r.problems[0].value.as_deref(), Some(OsStr::new("65580")));
    assert_eq!(
        r.problems[0].rule,
        "not a port (1-65535) (PORT_PREFIX + WEB_PORT_OFFSET = 65500 + 80)"
    );
    assert_eq!(
        rules(&with("0", "0"))[0],
        "not a port (1-65535) (PORT_PREFIX + WEB_PORT_OFFSET = 0 + 0)"
    );
    let huge = i128::MAX.to_string();
    assert_eq!(
        rules(&with(&huge, "1")),
        [format!(
            "not a port (1-65535) (PORT_PREFIX + WEB_PORT_OFFSET = {huge} + 1)"
        )]
    );
    let r = with("", "80");
    assert_eq!(
        rules(&r),
        ["required but unset (WEB_PORT_OFFSET is \"80\" but PORT_PREFIX is unset)"]
    );
    assert_eq!(r.missing.len(), 1);
}

#[test]
fn offset_is_only_for_ports() {
    let r = resolve(&config(&[
        ("service_required_envars", "N"),
        ("envar_N_type", "integer"),
        ("PORT_PREFIX", "8000"),
        ("N_OFFSET", "5"),
    ]));
    assert_eq!(r.missing.len(), 1);
}

#[test]
fn untyped_port_name_is_a_port_with_a_warning() {
    let r = resolve(&config(&[
        ("service_optional_envars", "API_PORT OTHER"),
        ("PORT_PREFIX", "9000"),
        ("API_PORT_OFFSET", "1"),
        ("OTHER", "anything at all"),
    ]));
    assert!(r.is_ok());
    assert_eq!(r.ports, [("API_PORT".to_string(), 9001)]);
    assert_eq!(
        r.values.get("OTHER").and_then(|v| v.to_str()),
        Some("anything at all")
    );
    assert_eq!(r.warnings.len(), 1);
    assert!(r.warnings[0].starts_with("web: API_PORT has no type; treating it as a port"));
    let r = resolve(&config(&[
        ("service_optional_envars", "API_PORT"),
        ("API_PORT", "0"),
    ]));
    assert_eq!(rules(&r), ["not a port (1-65535)"]);
    let r = resolve(&config(&[
        ("service_optional_envars", "API_PORT"),
        ("envar_API_PORT_type", "string"),
        ("API_PORT", "0"),
    ]));
    assert!(r.is_ok() && r.warnings.is_empty(), "a declared type wins");
}

#[test]
fn conflicts_between_and_within_services() {
    let web = resolve(&config_named(
        "web",
        &[
            ("service_required_envars", "WEB_PORT ADMIN_PORT"),
            ("envar_WEB_PORT_type", "port"),
            ("envar_ADMIN_PORT_type", "port"),
            ("WEB_PORT", "8080"),
            ("ADMIN_PORT", "8081"),
        ],
    ));
    let api = resolve(&config_named(
        "api",
        &[
            ("service_required_envars", "API_PORT"),
            ("envar_API_PORT_type", "port"),
            ("PORT_PREFIX", "8000"),
            ("API_PORT_OFFSET", "80"),
        ],
    ));
    let conflicts = port_conflicts([&web, &api]);
    assert_eq!(conflicts.len(), 1);
    assert_eq!(
        conflicts[0].to_string(),
        "port 8080 is used by web (WEB_PORT) and api (API_PORT)"
    );
    assert!(
        port_conflicts([&web, &web]).is_empty(),
        "no conflict with itself"
    );
    assert!(port_conflicts([&web]).is_empty());

    let same = resolve(&config_named(
        "db",
        &[
            ("service_required_envars", "A_PORT B_PORT"),
            ("envar_A_PORT_type", "port"),
            ("envar_B_PORT_type", "port"),
            ("A_PORT", "8081"),
            ("B_PORT", "5432"),
        ],
    ));
    let twice = resolve(&config_named(
        "db2",
        &[("service_required_envars", "C_PORT"), ("C_PORT", "5432")],
    ));
    let conflicts = port_conflicts([&web, &api, &same, &twice]);
    let ports: Vec<u16> = conflicts.iter().map(|c| c.port).collect();
    assert_eq!(ports, [5432, 8080, 8081]);
    assert_eq!(
        conflicts.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
        [
            "port 5432 is used by db (B_PORT) and db2 (C_PORT)",
            "port 8080 is used by web (WEB_PORT) and api (API_PORT)",
            "port 8081 is used by web (ADMIN_PORT) and db (A_PORT)",
        ]
    );
}

#[test]
fn missing_script_sets_defaults_and_comments_the_rest() {
    let c = config(&[
        ("service_required_envars", "WEB_PORT DB_PASSWORD MODE"),
        ("envar_WEB_PORT_type", "port"),
        ("envar_WEB_PORT_constraints", "8000-8999"),
        (
            "envar_WEB_PORT_description",
            "the port\nthe web server listens on",
        ),
        ("envar_WEB_PORT_default", "8080"),
        ("envar_DB_PASSWORD_description", "database password"),
        ("envar_DB_PASSWORD_type", "string"),
        ("envar_MODE_default", "it's $HOME"),
    ]);
    let r = resolve(&c);
    assert_eq!(r.missing.len(), 3);
    let script = missing_script("web", &r.missing);
    assert_eq!(
        script,
        "# web: the port the web server listens on (port, 8000-8999)\n\
         WEB_PORT=8080\n\
         # web: database password (string)\n\
         # web: no default: choose a value and uncomment the next line\n\
         #DB_PASSWORD=\n\
         # web: MODE\n\
         MODE='it'\\''s $HOME'\n"
    );
    // Running the snippet gives exactly the defaults back.
    let out = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("{script}\nprintf '%s|%s' \"$WEB_PORT\" \"$MODE\""))
        .output()
        .expect("run sh");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "8080|it's $HOME");
}

#[test]
fn applying_the_script_leaves_nothing_missing_when_defaults_exist() {
    let mut pairs = vec![
        ("service_required_envars", "A_PORT B"),
        ("envar_A_PORT_default", "8123"),
        ("envar_B_default", "two words"),
    ];
    let r = resolve(&config(&pairs));
    let script = missing_script("web", &r.missing);
    assert!(!script.contains("\n#A_PORT"));
    pairs.extend([("A_PORT", "8123"), ("B", "two words")]);
    let r = resolve(&config(&pairs));
    assert!(r.is_ok() && r.missing.is_empty());
}

#[test]
fn resolution_serializes() {
    let r = check("port", None, "8080");
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["ports"][0], serde_json::json!(["X", 8080]));
    let spec = serde_json::to_value(
        &specs(&config(&[
            ("service_required_envars", "X"),
            ("envar_X_type", "simple_string"),
        ]))[0],
    )
    .unwrap();
    assert_eq!(spec["type"], "simple_string");
    assert!(spec.get("type_name").is_none());
}

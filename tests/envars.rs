//! Typed variables (SPEC §4.1) and `servicectl missing-env`, end to end: the real binary,
//! temporary playpens, real processes.
//!
//! - every type with its constraints, valid values reaching the program, a hook and a
//!   template exactly (spaces, quotes, `$`, newlines, UTF-8);
//! - ports from PORT_PREFIX + NAME_OFFSET, untyped `*_PORT` treated as a port (warned);
//! - every kind of bad value stops the start before anything happens (no hook, no
//!   rendered file, no pidfile, no process), with service, variable, description,
//!   value and rule in the message;
//! - every problem of every service in one run; two services on one port;
//! - missing-env: plain, --verbose, --json, --script (applied, it makes missing-env
//!   clean and the service start with the defaults).

use crate::common::*;
use std::collections::BTreeMap;

/// A value with everything that must survive the trip through sh and servicectl.
const TRICKY: &str = "It's \"quoted\", $HOME `not run` \\ back\nsecond line — ünïcødé";

/// `TRICKY` as an sh single-quoted word.
fn sh_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// The service of the happy-path test: one variable of every type, and more.
const APP_CONFIG: &str = r#"
service_program=envdump
service_flags=app
service_config_files="etc/app.conf"
service_pre_start='env -0 > "$LOCAL_VAR/hook.env"'

service_required_envars="APP_PORT APP_MODE APP_TITLE APP_ROOT APP_DELTA APP_WORKERS APP_RATIO"
service_optional_envars="APP_LEVEL APP_ADMIN_PORT APP_RETRIES APP_EXPLICIT_PORT"

envar_APP_PORT_type=port
envar_APP_PORT_description="port the app listens on"
envar_APP_PORT_constraints="20000-33000"
APP_PORT_OFFSET=11

envar_APP_MODE_type=simple_string
envar_APP_MODE_description="how fast"
envar_APP_MODE_constraints="fast slow"

envar_APP_TITLE_type=string
envar_APP_TITLE_description="a title"

envar_APP_ROOT_type=filename
envar_APP_ROOT_description="where data lives"

envar_APP_DELTA_type=integer
envar_APP_DELTA_constraints="-10--1 5-9"

envar_APP_WORKERS_type=nonnegative
envar_APP_WORKERS_constraints="0-64"

envar_APP_RATIO_type=real
envar_APP_RATIO_constraints="0-1"

envar_APP_LEVEL_type=simple_string
envar_APP_LEVEL_constraints="debug info warn"
envar_APP_LEVEL_default=info

# Untyped, but named like a port: treated as a port, with a warning.
APP_ADMIN_PORT_OFFSET=12

# Optional, no value, no default: stays unset.
envar_APP_RETRIES_type=nonnegative

# A port given outright wins over PORT_PREFIX + offset.
envar_APP_EXPLICIT_PORT_type=port
APP_EXPLICIT_PORT_OFFSET=13
"#;

const APP_TEMPLATE: &str = "port=__APP_PORT__\n\
admin=__APP_ADMIN_PORT__\n\
explicit=__APP_EXPLICIT_PORT__\n\
mode=__APP_MODE__\n\
title=__APP_TITLE__\n\
root=__APP_ROOT__\n\
delta=__APP_DELTA__\n\
workers=__APP_WORKERS__\n\
ratio=__APP_RATIO__\n\
level=__APP_LEVEL__\n\
service=__SERVICE_NAME__\n\
var=__LOCAL_VAR__\n";

#[test]
fn every_type_resolves_and_reaches_program_hook_and_template() {
    let pen = Playpen::new();
    let prefix = pen.reserve_ports(&[11, 12, 13]);
    let explicit = prefix + 20;
    pen.envdump_program();
    pen.ext_service("app", APP_CONFIG);
    pen.write("ext/etc/app.conf", APP_TEMPLATE);
    pen.role_config(&format!(
        "playpen_services=\"app\"\n\
         PORT_PREFIX={prefix}\n\
         APP_MODE=slow\n\
         APP_TITLE={}\n\
         APP_ROOT='/srv/app data/dir'\n\
         APP_DELTA=-7\n\
         APP_WORKERS=0\n\
         APP_RATIO=0.25\n\
         APP_EXPLICIT_PORT={explicit}\n",
        sh_quote(TRICKY)
    ));

    let out = pen.run(&["start"]);
    out.ok().out_says(&["app: started"]);
    let warnings = out.err_lines_with("APP_ADMIN_PORT");
    assert!(
        warnings
            .iter()
            .any(|l| l.contains("warning") && l.contains("treating it as a port")),
        "expected a warning about the untyped APP_ADMIN_PORT:\n{out}"
    );

    let expected: BTreeMap<&str, String> = [
        ("APP_PORT", (prefix + 11).to_string()),
        ("APP_ADMIN_PORT", (prefix + 12).to_string()),
        ("APP_EXPLICIT_PORT", explicit.to_string()),
        ("APP_MODE", "slow".to_string()),
        ("APP_TITLE", TRICKY.to_string()),
        ("APP_ROOT", "/srv/app data/dir".to_string()),
        ("APP_DELTA", "-7".to_string()),
        ("APP_WORKERS", "0".to_string()),
        ("APP_RATIO", "0.25".to_string()),
        ("APP_LEVEL", "info".to_string()),
        ("SERVICE_NAME", "app".to_string()),
        ("LOCAL_VAR", pen.path("var").display().to_string()),
    ]
    .into_iter()
    .collect();

    // The program.
    let program_env = parse_env0(&pen.wait_file("var/app.env", 10));
    // The pre-start hook (it ran before the program, so its file is complete).
    let hook_env = parse_env0(&pen.read_bytes("var/hook.env"));
    for (who, env) in [("program", &program_env), ("pre-start hook", &hook_env)] {
        for (name, value) in &expected {
            assert_eq!(
                env.get(*name),
                Some(value),
                "{who} sees the wrong {name}; its environment: {env:#?}"
            );
        }
        assert!(
            !env.contains_key("APP_RETRIES"),
            "{who}: an optional variable without value or default stays unset"
        );
    }

    // The template, rendered before the start.
    let rendered = pen.read("var/etc/app.conf");
    let mut want = String::new();
    for line in APP_TEMPLATE.lines() {
        let (key, placeholder) = line.split_once('=').unwrap();
        let name = placeholder.trim_matches('_');
        want.push_str(&format!("{key}={}\n", expected[name]));
    }
    assert_eq!(rendered, want);

    // status shows the resolved ports of the running service.
    let status = pen.run(&["status", "--json"]);
    status.ok();
    let text = status.stdout.clone();
    assert!(
        text.contains(&(prefix + 11).to_string()),
        "status --json should list APP_PORT {}:\n{status}",
        prefix + 11
    );
}

/// One bad variable: its spec lines for the service config, the role config lines, and
/// what the message must say.
struct Bad {
    what: &'static str,
    variable: &'static str,
    spec: &'static str,
    role: &'static str,
    /// The value as quoted in the message, if the message quotes one.
    value: Option<&'static str>,
    rule: &'static [&'static str],
}

const BAD: &[Bad] = &[
    Bad {
        what: "simple_string not in the allowed list",
        variable: "SVC_MODE",
        spec: "envar_SVC_MODE_type=simple_string\nenvar_SVC_MODE_constraints=\"fast slow\"",
        role: "SVC_MODE=medium",
        value: Some("medium"),
        rule: &["not one of the allowed values: fast slow"],
    },
    Bad {
        what: "simple_string with whitespace",
        variable: "SVC_WORD",
        spec: "envar_SVC_WORD_type=simple_string",
        role: "SVC_WORD='two words'",
        value: Some("two words"),
        rule: &["must be a single word"],
    },
    Bad {
        what: "required string set to empty",
        variable: "SVC_TITLE",
        spec: "envar_SVC_TITLE_type=string",
        role: "SVC_TITLE=",
        value: None,
        rule: &["required but unset"],
    },
    Bad {
        what: "required filename unset",
        variable: "SVC_FILE",
        spec: "envar_SVC_FILE_type=filename",
        role: "",
        value: None,
        rule: &["required but unset"],
    },
    Bad {
        what: "integer that is not a number",
        variable: "SVC_COUNT",
        spec: "envar_SVC_COUNT_type=integer",
        role: "SVC_COUNT=12x",
        value: Some("12x"),
        rule: &["not an integer"],
    },
    Bad {
        what: "integer outside its ranges",
        variable: "SVC_COUNT",
        spec: "envar_SVC_COUNT_type=integer\nenvar_SVC_COUNT_constraints=\"1-5 10-20\"",
        role: "SVC_COUNT=7",
        value: Some("7"),
        rule: &["outside the allowed ranges 1-5 10-20"],
    },
    Bad {
        what: "negative nonnegative",
        variable: "SVC_WORKERS",
        spec: "envar_SVC_WORKERS_type=nonnegative",
        role: "SVC_WORKERS=-1",
        value: Some("-1"),
        rule: &["not a nonnegative integer"],
    },
    Bad {
        what: "nonnegative outside its range",
        variable: "SVC_WORKERS",
        spec: "envar_SVC_WORKERS_type=nonnegative\nenvar_SVC_WORKERS_constraints=\"1-64\"",
        role: "SVC_WORKERS=0",
        value: Some("0"),
        rule: &["outside the allowed range 1-64"],
    },
    Bad {
        what: "real that is not a number",
        variable: "SVC_RATIO",
        spec: "envar_SVC_RATIO_type=real",
        role: "SVC_RATIO=abc",
        value: Some("abc"),
        rule: &["not a real number"],
    },
    Bad {
        what: "real outside its range",
        variable: "SVC_RATIO",
        spec: "envar_SVC_RATIO_type=real\nenvar_SVC_RATIO_constraints=\"0-1\"",
        role: "SVC_RATIO=1.5",
        value: Some("1.5"),
        rule: &["outside the allowed range 0-1"],
    },
    Bad {
        what: "port 0",
        variable: "SVC_PORT",
        spec: "envar_SVC_PORT_type=port",
        role: "SVC_PORT=0",
        value: Some("0"),
        rule: &["not a port (1-65535)"],
    },
    Bad {
        what: "port 70000",
        variable: "SVC_PORT",
        spec: "envar_SVC_PORT_type=port",
        role: "SVC_PORT=70000",
        value: Some("70000"),
        rule: &["not a port (1-65535)"],
    },
    Bad {
        what: "port outside its constraint",
        variable: "SVC_PORT",
        spec: "envar_SVC_PORT_type=port\nenvar_SVC_PORT_constraints=\"8000-8999\"",
        role: "SVC_PORT=9000",
        value: Some("9000"),
        rule: &["outside the allowed range 8000-8999"],
    },
    Bad {
        what: "PORT_PREFIX not a number",
        variable: "SVC_PORT",
        spec: "envar_SVC_PORT_type=port\nSVC_PORT_OFFSET=5",
        role: "PORT_PREFIX=80xx",
        value: None,
        rule: &["PORT_PREFIX=\"80xx\"", "is not a number"],
    },
    Bad {
        what: "offset not a number",
        variable: "SVC_PORT",
        spec: "envar_SVC_PORT_type=port\nSVC_PORT_OFFSET=five",
        role: "PORT_PREFIX=8000",
        value: None,
        rule: &["SVC_PORT_OFFSET=\"five\"", "is not a number"],
    },
    Bad {
        what: "offset making the port out of range",
        variable: "SVC_PORT",
        spec: "envar_SVC_PORT_type=port\nSVC_PORT_OFFSET=80",
        role: "PORT_PREFIX=65500",
        value: Some("65580"),
        rule: &[
            "not a port (1-65535)",
            "PORT_PREFIX + SVC_PORT_OFFSET = 65500 + 80",
        ],
    },
    Bad {
        what: "PORT_PREFIX so large that the sum overflows",
        variable: "SVC_PORT",
        spec: "envar_SVC_PORT_type=port\nSVC_PORT_OFFSET=1",
        role: "PORT_PREFIX=170141183460469231731687303715884105727",
        value: None,
        rule: &[
            "not a port (1-65535)",
            "PORT_PREFIX + SVC_PORT_OFFSET = 170141183460469231731687303715884105727 + 1",
        ],
    },
    Bad {
        what: "untyped *_PORT that is not a port",
        variable: "SVC_ADMIN_PORT",
        spec: "",
        role: "SVC_ADMIN_PORT=abc",
        value: Some("abc"),
        rule: &["not a port (1-65535)"],
    },
    Bad {
        what: "unknown type",
        variable: "SVC_THING",
        spec: "envar_SVC_THING_type=colour",
        role: "SVC_THING=red",
        value: None,
        rule: &["envar_SVC_THING_type=\"colour\" is not a type"],
    },
];

#[test]
fn every_bad_value_stops_the_start_before_anything_happens() {
    let pen = Playpen::new();
    pen.envdump_program();
    pen.write("ext/etc/svc.conf", "x=__SVC_MARK__\n");
    for bad in BAD {
        let description = format!("the thing that is {}", bad.what);
        pen.ext_service(
            "svc",
            &format!(
                "service_program=envdump\n\
                 service_flags=svc\n\
                 service_config_files=etc/svc.conf\n\
                 service_pre_start='touch \"$LOCAL_VAR/hook-ran\"'\n\
                 service_required_envars=\"{var}\"\n\
                 envar_{var}_description=\"{description}\"\n\
                 {spec}\n",
                var = bad.variable,
                spec = bad.spec,
            ),
        );
        pen.role_config(&format!(
            "playpen_services=svc\nSVC_MARK=marked\n{}\n",
            bad.role
        ));
        let out = pen.run(&["start"]);
        out.fails();
        let context = format!("case {:?}:\n{out}", bad.what);
        let line = out
            .stderr
            .lines()
            .find(|l| l.contains(bad.variable) && !l.contains("warning:"))
            .unwrap_or_else(|| panic!("no stderr line names {}; {context}", bad.variable));
        assert!(line.contains("svc: "), "service not named; {context}");
        assert!(
            line.contains(&format!("({description})")),
            "description missing; {context}"
        );
        if let Some(value) = bad.value {
            assert!(
                line.contains(&format!("{value:?}")),
                "value {value:?} missing; {context}"
            );
        }
        for rule in bad.rule {
            assert!(line.contains(rule), "rule {rule:?} missing; {context}");
        }
        for (path, what) in [
            ("var/hook-ran", "the pre-start hook ran"),
            ("var/etc/svc.conf", "the template was rendered"),
            ("var/run/svc.pid", "a pidfile was written"),
            ("var/svc.env", "the program ran"),
            ("var/linkfarm/envdump", "the linkfarm symlink was made"),
        ] {
            assert!(!pen.exists(path), "{what}; {context}");
        }
        assert!(pen.processes().is_empty(), "a process runs; {context}");

        // `check` reports the same problem without starting anything.
        let check = pen.run(&["check", "svc"]);
        check.fails();
        assert!(
            check.stdout.contains(bad.variable) || check.stderr.contains(bad.variable),
            "check does not name {}; case {:?}:\n{check}",
            bad.variable,
            bad.what
        );
    }
}

#[test]
fn a_bad_default_of_an_unset_optional_variable_is_a_problem_a_good_one_is_used() {
    let pen = Playpen::new();
    pen.envdump_program();
    let spec = |default: &str| {
        format!(
            "service_program=envdump\nservice_flags=opt\n\
             service_optional_envars=\"OPT_N\"\n\
             envar_OPT_N_type=integer\n\
             envar_OPT_N_description=\"how many\"\n\
             envar_OPT_N_constraints=\"1-9\"\n\
             envar_OPT_N_default={default}\n"
        )
    };
    pen.role_config("playpen_services=opt\n");
    pen.ext_service("opt", &spec("many"));
    pen.run(&["start"]).fails().err_says(&[
        "opt: OPT_N (how many) = \"many\": not an integer",
        "envar_OPT_N_default",
    ]);
    assert!(pen.pid("opt").is_none());
    pen.ext_service("opt", &spec("12"));
    pen.run(&["start"])
        .fails()
        .err_says(&["OPT_N (how many) = \"12\": outside the allowed range 1-9"]);
    pen.ext_service("opt", &spec("4"));
    pen.run(&["start"]).ok();
    let env = parse_env0(&pen.wait_file("var/opt.env", 10));
    assert_eq!(env.get("OPT_N").map(String::as_str), Some("4"));
}

#[test]
fn every_problem_of_every_service_in_one_run() {
    let pen = Playpen::new();
    pen.envdump_program();
    pen.ext_service(
        "alpha",
        "service_program=envdump\nservice_flags=alpha\n\
         service_required_envars=\"ALPHA_N ALPHA_HOST\"\n\
         envar_ALPHA_N_type=integer\n\
         envar_ALPHA_N_description=\"alpha workers\"\n\
         envar_ALPHA_HOST_type=simple_string\n\
         envar_ALPHA_HOST_description=\"alpha host\"\n",
    );
    pen.ext_service(
        "beta",
        "service_program=envdump\nservice_flags=beta\n\
         service_required_envars=\"BETA_PORT\"\n\
         envar_BETA_PORT_type=port\n\
         envar_BETA_PORT_description=\"beta port\"\n",
    );
    pen.ext_service(
        "gamma",
        "service_program=envdump\nservice_flags=gamma\n\
         service_required_envars=\"GAMMA_MODE\"\n\
         envar_GAMMA_MODE_type=simple_string\n",
    );
    pen.role_config(
        "playpen_services=\"alpha beta gamma\"\n\
         ALPHA_N=x\nBETA_PORT=0\nGAMMA_MODE=fine\n",
    );
    let out = pen.run(&["start"]);
    out.fails().err_says(&[
        "alpha: 2 problems with typed variables",
        "ALPHA_N (alpha workers) = \"x\": not an integer",
        "ALPHA_HOST (alpha host): required but unset",
        "beta: BETA_PORT (beta port) = \"0\": not a port (1-65535)",
    ]);
    for name in ["alpha", "beta", "gamma"] {
        assert!(
            pen.pid(name).is_none(),
            "{name} has a pidfile after a failed start:\n{out}"
        );
    }
    assert!(
        pen.processes().is_empty(),
        "gamma is fine but must not start while others have problems:\n{out}"
    );
    assert!(!pen.exists("var/gamma.env"));

    // Fixed: everything starts.
    pen.role_config(
        "playpen_services=\"alpha beta gamma\"\n\
         ALPHA_N=3\nALPHA_HOST=localhost\nBETA_PORT=20999\nGAMMA_MODE=fine\n",
    );
    pen.run(&["start"]).ok();
    for name in ["alpha", "beta", "gamma"] {
        pen.wait_file(&format!("var/{name}.env"), 10);
    }
}

/// Services web and api whose ports (WEB_PORT, API_PORT) both resolve to
/// PORT_PREFIX + 5; the role config lists both and sets PORT_PREFIX to `prefix`.
fn web_and_api_on_offset_5(pen: &Playpen, prefix: u16) {
    pen.envdump_program();
    for (name, var) in [("web", "WEB_PORT"), ("api", "API_PORT")] {
        pen.ext_service(
            name,
            &format!(
                "service_program=envdump\nservice_flags={name}\n\
                 service_required_envars=\"{var}\"\n\
                 envar_{var}_type=port\n\
                 {var}_OFFSET=5\n"
            ),
        );
    }
    pen.role_config(&format!(
        "playpen_services=\"web api\"\nPORT_PREFIX={prefix}\n"
    ));
}

#[test]
fn two_services_on_one_port_is_an_error_naming_both() {
    let pen = Playpen::new();
    let prefix = pen.reserve_ports(&[5, 6]);
    web_and_api_on_offset_5(&pen, prefix);
    let port = prefix + 5;
    let out = pen.run(&["start"]);
    out.fails();
    let conflict = out
        .stderr
        .lines()
        .find(|l| l.contains(&format!("port {port} is used by")))
        .unwrap_or_else(|| panic!("no port conflict reported:\n{out}"));
    assert!(
        conflict.contains("web (WEB_PORT)") && conflict.contains("api (API_PORT)"),
        "the conflict must name both services:\n{out}"
    );
    assert!(pen.pid("web").is_none() && pen.pid("api").is_none());
    assert!(pen.processes().is_empty());

    // An explicit value elsewhere removes the conflict.
    pen.role_config(&format!(
        "playpen_services=\"web api\"\nPORT_PREFIX={prefix}\nAPI_PORT={}\n",
        prefix + 6
    ));
    pen.run(&["start"]).ok();
    let api = parse_env0(&pen.wait_file("var/api.env", 10));
    assert_eq!(api["API_PORT"], (prefix + 6).to_string());
    let web = parse_env0(&pen.wait_file("var/web.env", 10));
    assert_eq!(web["WEB_PORT"], port.to_string());
}

/// Three services: web misses two required variables (both with defaults), db one
/// (with a default), cache nothing (its port comes from PORT_PREFIX + offset).
fn missing_env_playpen(greeting_default: &str, web_port_default: u16) -> Playpen {
    let pen = Playpen::new();
    pen.envdump_program();
    pen.ext_service(
        "web",
        &format!(
            "service_program=envdump\nservice_flags=web\n\
             service_required_envars=\"WEB_PORT WEB_MODE WEB_GREETING\"\n\
             envar_WEB_PORT_type=port\n\
             envar_WEB_PORT_description=\"port the web server listens on\"\n\
             envar_WEB_PORT_constraints=\"20000-33000\"\n\
             envar_WEB_PORT_default={web_port_default}\n\
             envar_WEB_MODE_type=simple_string\n\
             envar_WEB_MODE_description=\"development or production\"\n\
             envar_WEB_MODE_constraints=\"dev prod\"\n\
             envar_WEB_MODE_default=dev\n\
             envar_WEB_GREETING_type=string\n\
             envar_WEB_GREETING_description=\"what the front page says\"\n\
             envar_WEB_GREETING_default={}\n",
            sh_quote(greeting_default)
        ),
    );
    pen.ext_service(
        "db",
        "service_program=envdump\nservice_flags=db\n\
         service_required_envars=\"DB_NAME\"\n\
         envar_DB_NAME_type=simple_string\n\
         envar_DB_NAME_description=\"database name\"\n\
         envar_DB_NAME_default=main\n",
    );
    pen.ext_service(
        "cache",
        "service_program=envdump\nservice_flags=cache\n\
         service_required_envars=\"CACHE_PORT\"\n\
         envar_CACHE_PORT_type=port\n\
         envar_CACHE_PORT_description=\"cache port\"\n\
         CACHE_PORT_OFFSET=3\n",
    );
    pen
}

#[test]
fn missing_env_lists_explains_and_scripts_the_missing_variables() {
    let ports = reserve_ports(&[3, 4]);
    let prefix = ports.prefix;
    let greeting = "Hello, \"world\" — it's $USER's `page`";
    let pen = missing_env_playpen(greeting, prefix + 4);
    pen.role_config(&format!(
        "playpen_services=\"web db cache\"\nPORT_PREFIX={prefix}\n"
    ));

    // Plain: one line per missing variable, exit non-zero.
    let out = pen.run(&["missing-env"]);
    out.fails();
    let lines: Vec<&str> = out.stdout.lines().collect();
    for want in [
        "web: WEB_PORT",
        "web: WEB_MODE",
        "web: WEB_GREETING",
        "db: DB_NAME",
    ] {
        assert!(lines.contains(&want), "{want:?} not listed:\n{out}");
    }
    assert!(
        !out.stdout.contains("cache"),
        "CACHE_PORT resolves from PORT_PREFIX + CACHE_PORT_OFFSET:\n{out}"
    );

    // Names restrict the report.
    let only_db = pen.run(&["missing-env", "db"]);
    only_db.fails();
    assert_eq!(only_db.stdout.trim(), "db: DB_NAME", "{only_db}");
    let clean = pen.run(&["missing-env", "cache"]);
    clean.ok();
    assert!(!clean.stdout.contains("CACHE_PORT"), "{clean}");

    // --verbose: description, type, constraints, default.
    let verbose = pen.run(&["missing-env", "--verbose"]);
    verbose.fails().out_says(&[
        "WEB_PORT",
        "port the web server listens on",
        "port",
        "20000-33000",
        &(prefix + 4).to_string(),
        "WEB_MODE",
        "development or production",
        "simple_string",
        "dev prod",
        "what the front page says",
        "DB_NAME",
        "database name",
        "main",
    ]);
    let web_mode_block: String = verbose
        .stdout
        .lines()
        .skip_while(|l| !l.contains("WEB_MODE"))
        .take(5)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        web_mode_block.contains("dev prod") && web_mode_block.contains("dev"),
        "WEB_MODE's constraints and default belong to its entry:\n{verbose}"
    );

    // --json.
    let json = pen.run(&["missing-env", "--json"]);
    assert_ne!(json.code, 0, "--json still exits non-zero:\n{json}");
    json.no_panic();
    let report = json.json();
    let services = report.as_array().expect("an array");
    let entry = |name: &str| {
        services
            .iter()
            .find(|s| s["service"] == name)
            .unwrap_or_else(|| panic!("no {name} in {report:#}"))
    };
    let web_missing = entry("web")["missing"].as_array().unwrap().clone();
    let names: Vec<&str> = web_missing
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["WEB_PORT", "WEB_MODE", "WEB_GREETING"]);
    assert_eq!(web_missing[1]["type"], "simple_string");
    assert_eq!(web_missing[1]["constraints"], "dev prod");
    assert_eq!(web_missing[1]["default"], "dev");
    assert_eq!(web_missing[1]["description"], "development or production");
    assert_eq!(web_missing[2]["default"], greeting);
    assert_eq!(entry("db")["missing"][0]["name"], "DB_NAME");
    assert_eq!(entry("cache")["missing"], serde_json::json!([]));

    // --script: comments with the descriptions, then assignments of the defaults.
    let script = pen.run(&["missing-env", "--script"]);
    script.no_panic();
    let text = script.stdout.clone();
    for want in [
        format!("WEB_PORT={}", prefix + 4),
        "WEB_MODE=dev".to_string(),
        "DB_NAME=main".to_string(),
    ] {
        assert!(
            text.lines().any(|l| l == want),
            "{want:?} not in the script:\n{script}"
        );
    }
    for (var, description) in [
        ("WEB_PORT", "port the web server listens on"),
        ("WEB_MODE", "development or production"),
        ("WEB_GREETING", "what the front page says"),
        ("DB_NAME", "database name"),
    ] {
        let lines: Vec<&str> = text.lines().collect();
        let at = lines
            .iter()
            .position(|l| l.starts_with(&format!("{var}=")))
            .unwrap_or_else(|| panic!("no assignment of {var}:\n{script}"));
        assert!(
            lines[..at]
                .iter()
                .rev()
                .take_while(|l| l.starts_with('#'))
                .any(|l| l.contains(description)),
            "the comment above {var} should carry its description:\n{script}"
        );
    }
    assert!(!text.contains("CACHE_PORT"), "nothing for cache:\n{script}");

    // Appended to the role config, it leaves nothing missing…
    let mut role = std::fs::read_to_string(pen.role_config_path()).unwrap();
    role.push_str(&text);
    pen.role_config(&role);
    let after = pen.run(&["missing-env"]);
    after.ok().out_says(&["nothing missing"]);
    pen.run(&["missing-env", "--json"]).ok();

    // …and the services start with exactly the defaults.
    pen.run(&["start"]).ok();
    let web = parse_env0(&pen.wait_file("var/web.env", 10));
    assert_eq!(web["WEB_GREETING"], greeting);
    assert_eq!(web["WEB_MODE"], "dev");
    assert_eq!(web["WEB_PORT"], (prefix + 4).to_string());
    let db = parse_env0(&pen.wait_file("var/db.env", 10));
    assert_eq!(db["DB_NAME"], "main");
    let cache = parse_env0(&pen.wait_file("var/cache.env", 10));
    assert_eq!(cache["CACHE_PORT"], (prefix + 3).to_string());
}

#[test]
fn missing_env_script_leaves_a_variable_without_default_to_the_user() {
    let pen = Playpen::new();
    pen.envdump_program();
    pen.ext_service(
        "vault",
        "service_program=envdump\nservice_flags=vault\n\
         service_required_envars=\"VAULT_TOKEN VAULT_ADDR\"\n\
         envar_VAULT_TOKEN_type=string\n\
         envar_VAULT_TOKEN_description=\"secret token\"\n\
         envar_VAULT_ADDR_type=simple_string\n\
         envar_VAULT_ADDR_default=127.0.0.1\n",
    );
    pen.role_config("playpen_services=vault\n");
    let script = pen.run(&["missing-env", "--script"]);
    script.no_panic();
    let text = script.stdout.clone();
    assert!(
        text.lines().any(|l| l == "VAULT_ADDR=127.0.0.1"),
        "{script}"
    );
    assert!(
        !text.lines().any(|l| l.starts_with("VAULT_TOKEN=")),
        "no default: the script must not invent one:\n{script}"
    );
    assert!(text.contains("secret token"), "{script}");
    let mut role = std::fs::read_to_string(pen.role_config_path()).unwrap();
    role.push_str(&text);
    pen.role_config(&role);
    let out = pen.run(&["missing-env"]);
    out.fails();
    assert_eq!(out.stdout.trim(), "vault: VAULT_TOKEN", "{out}");
    pen.run(&["start"])
        .fails()
        .err_says(&["vault: VAULT_TOKEN (secret token): required but unset"]);
    assert!(pen.pid("vault").is_none());
}

#[test]
fn missing_env_is_clean_when_nothing_is_missing_and_port_prefix_resolves_ports() {
    let pen = Playpen::new();
    pen.ext_service(
        "cache",
        "service_program=/bin/true\n\
         service_required_envars=\"CACHE_PORT\"\n\
         envar_CACHE_PORT_type=port\n\
         CACHE_PORT_OFFSET=3\n",
    );
    pen.role_config("playpen_services=cache\n");
    let out = pen.run(&["missing-env"]);
    out.fails();
    assert_eq!(out.stdout.trim(), "cache: CACHE_PORT", "{out}");
    // PORT_PREFIX from the environment servicectl runs in counts too (§4).
    let out = pen.run_env(&["missing-env"], &[("PORT_PREFIX", "21000")]);
    out.ok().out_says(&["nothing missing"]);
    let env = pen.run_env(&["env", "cache"], &[("PORT_PREFIX", "21000")]);
    env.ok().out_says(&["export CACHE_PORT=21003"]);
}

/// §4.1: "Two services of one playpen whose ports resolve to the same number is an
/// error" — also when they are started one at a time (`start web`, then `start api`),
/// not only when one command starts both.
#[test]
fn services_started_one_at_a_time_cannot_share_a_port() {
    let pen = Playpen::new();
    let prefix = pen.reserve_ports(&[5]);
    web_and_api_on_offset_5(&pen, prefix);
    let port = prefix + 5;
    let web = pen.run(&["start", "web"]);
    web.no_panic();
    let api = pen.run(&["start", "api"]);
    api.no_panic();
    let both = format!("--- start web ---\n{web}\n--- start api ---\n{api}");
    assert!(
        pen.pid("web").is_none() || pen.pid("api").is_none(),
        "web and api both run on port {port}:\n{both}"
    );
    let conflict = format!("port {port} is used by");
    let reported = [&web, &api]
        .iter()
        .filter(|o| o.code != 0)
        .flat_map(|o| o.stderr.lines())
        .any(|l| l.contains(&conflict) && l.contains("WEB_PORT") && l.contains("API_PORT"));
    assert!(
        reported,
        "a failed start must name the port and both services:\n{both}"
    );
}

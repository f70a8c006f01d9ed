//! Golden tests: the whole output of the reporting commands, text and JSON, compared
//! after the placeholders of common/golden.rs ({ROOT}, {PID}, {TIME}, 80NN ports), so
//! a change to any line, column, key or message shows here. `GOLDEN_PRINT=1` prints
//! what each command showed, masked.

use crate::common::*;

/// `db` and `web` (a typed port, PORT_PREFIX + 80), both `bin/sleeper`.
fn web_and_db() -> Playpen {
    let pp = Playpen::with_services(&["db", "web"]);
    pp.sleeper_service(
        "web",
        "service_required_envars=WEB_PORT\n\
         envar_WEB_PORT_type=port\n\
         envar_WEB_PORT_description=\"the port web listens on\"\n\
         WEB_PORT_OFFSET=80",
    );
    pp.sleeper_service("db", "");
    pp
}

#[test]
fn status_without_a_supervisor() {
    let pp = web_and_db();
    pp.start(&["web"]);
    let out = pp.run(&["status"]);
    out.code_is(3);
    assert_golden(
        &pp,
        "status",
        &out.stdout,
        r##"SERVICE STATE PID UPTIME PORTS NOTE
db stopped - - -
web running {PID} {TIME} 8080 (closed)
"##,
    );
    assert_eq!(out.stderr, "");
    let out = pp.run(&["status", "--json"]);
    out.code_is(3);
    assert_golden(
        &pp,
        "status --json",
        &out.stdout,
        r##"[
  {
    "service": "db",
    "state": "stopped",
    "pid": null,
    "uptime_secs": null,
    "ports": [],
    "listening": [],
    "version": null,
    "note": null
  },
  {
    "service": "web",
    "state": "running",
    "pid": "{PID}",
    "uptime_secs": "{TIME}",
    "ports": [
      [
        "WEB_PORT",
        8080
      ]
    ],
    "listening": [],
    "version": null,
    "note": null
  }
]
"##,
    );
    let out = pp.run(&["status", "nosuch", "--json"]);
    out.code_is(4);
    assert_golden(
        &pp,
        "status nosuch --json",
        &out.stdout,
        r##"{
  "error": "nosuch: unknown service (no ext/services/nosuch-VERSION/ and no services/nosuch/config) — known services: db, web"
}
"##,
    );
    assert_golden(
        &pp,
        "status nosuch (stderr)",
        &out.stderr,
        r##"servicectl: nosuch: unknown service (no ext/services/nosuch-VERSION/ and no services/nosuch/config) — known services: db, web
"##,
    );
}

/// start, stop, ping, wait, enable and disable --json: one document each.
#[test]
fn json_of_the_service_commands() {
    let pp = web_and_db();
    let out = pp.run(&["start", "--json"]);
    out.ok();
    assert_golden(
        &pp,
        "start --json",
        &out.stdout,
        r##"[
  {
    "ok": true,
    "pid": "{PID}",
    "result": "started",
    "service": "db"
  },
  {
    "ok": true,
    "pid": "{PID}",
    "result": "started",
    "service": "web"
  }
]
"##,
    );
    let out = pp.run(&["ping", "--json"]);
    out.ok();
    assert_golden(
        &pp,
        "ping --json",
        &out.stdout,
        r##"[
  {
    "by": "status",
    "detail": "running (pid {PID})",
    "ok": true,
    "service": "db"
  },
  {
    "by": "status",
    "detail": "running (pid {PID})",
    "ok": true,
    "service": "web"
  }
]
"##,
    );
    let out = pp.run(&["wait", "--json", "--timeout", "5"]);
    out.ok();
    assert_golden(
        &pp,
        "wait --json",
        &out.stdout,
        r##"{
  "not_ready": [],
  "ready": [
    "db",
    "web"
  ]
}
"##,
    );
    let out = pp.run(&["disable", "db", "--json"]);
    out.ok();
    assert_golden(
        &pp,
        "disable db --json",
        &out.stdout,
        r##"[
  {
    "changed": true,
    "service": "db",
    "state": "disabled"
  }
]
"##,
    );
    let out = pp.run(&["enable", "db", "web", "--json"]);
    out.ok();
    assert_golden(
        &pp,
        "enable db web --json",
        &out.stdout,
        r##"[
  {
    "changed": true,
    "service": "db",
    "state": "enabled"
  },
  {
    "changed": false,
    "service": "web",
    "state": "enabled"
  }
]
"##,
    );
    let out = pp.run(&["stop", "web", "--json"]);
    out.ok();
    assert_golden(
        &pp,
        "stop web --json",
        &out.stdout,
        r##"[
  {
    "ok": true,
    "pid": "{PID}",
    "result": "stopped",
    "service": "web"
  }
]
"##,
    );
    let out = pp.run(&["stop", "--json"]);
    out.ok();
    assert_golden(
        &pp,
        "stop --json",
        &out.stdout,
        r##"[
  {
    "ok": true,
    "pid": "{PID}",
    "result": "stopped",
    "service": "db"
  },
  {
    "ok": true,
    "pid": null,
    "result": "already-stopped",
    "service": "web"
  }
]
"##,
    );
}

/// check of services with problems: a bad setting, a bad typed value, a missing
/// required variable; a warning on stderr.
#[test]
fn check_errors() {
    let pp = Playpen::with_services(&["good", "bad", "worse"]);
    pp.sleeper_service("good", "");
    pp.sleeper_service(
        "bad",
        "service_halt_timeout=soon\n\
         service_required_envars=\"WORKERS MODE\"\n\
         envar_WORKERS_type=nonnegative\n\
         envar_WORKERS_description=\"worker processes\"\n\
         WORKERS=-2\n\
         envar_MODE_type=simple_string\n\
         envar_MODE_constraints=\"fast slow\"",
    );
    pp.service(
        "worse",
        "service_optional_envars=ADMIN_PORT\n\
         ADMIN_PORT=8000\n\
         service_restart_policy=sometimes",
    );
    let out = pp.run(&["check"]);
    out.code_is(1);
    assert_golden(
        &pp,
        "check",
        &out.stdout,
        r##"worse: problem: 2 problems with settings:
  service_restart_policy="sometimes" (set in {ROOT}/services/worse/config): must be none, unlimited, or a number of restarts such as 3
  no service_program is set in {ROOT}/services/worse/config: set service_program (or service_start) in the service's config — fix the settings in the service's config
bad: problem: service_halt_timeout="soon" (set in {ROOT}/services/bad/config): must be a number of seconds, 0 or more (fractions allowed, such as 2.5) — fix the setting in the service's config
bad: problem: 2 problems with typed variables:
  WORKERS (worker processes) = "-2": not a nonnegative integer (0 or more) (set in {ROOT}/services/bad/config)
  MODE: required but unset — set the missing variables in the role config (`servicectl missing-env --script bad` prints a starting point)
good: ok
3 checked, 2 with problems
"##,
    );
    assert_golden(
        &pp,
        "check (stderr)",
        &out.stderr,
        r##"servicectl: warning: worse: ADMIN_PORT has no type; treating it as a port because its name ends in _PORT (set envar_ADMIN_PORT_type=port to say so)
"##,
    );
    let out = pp.run(&["check", "--json"]);
    out.code_is(1);
    assert_golden(
        &pp,
        "check --json",
        &out.stdout,
        r##"[
  {
    "service": "worse",
    "ok": false,
    "problems": [
      "2 problems with settings:\n service_restart_policy=\"sometimes\" (set in {ROOT}/services/worse/config): must be none, unlimited, or a number of restarts such as 3\n no service_program is set in {ROOT}/services/worse/config: set service_program (or service_start) in the service's config — fix the settings in the service's config"
    ],
    "warnings": [
      "worse: ADMIN_PORT has no type; treating it as a port because its name ends in _PORT (set envar_ADMIN_PORT_type=port to say so)"
    ]
  },
  {
    "service": "bad",
    "ok": false,
    "problems": [
      "service_halt_timeout=\"soon\" (set in {ROOT}/services/bad/config): must be a number of seconds, 0 or more (fractions allowed, such as 2.5) — fix the setting in the service's config",
      "2 problems with typed variables:\n WORKERS (worker processes) = \"-2\": not a nonnegative integer (0 or more) (set in {ROOT}/services/bad/config)\n MODE: required but unset — set the missing variables in the role config (`servicectl missing-env --script bad` prints a starting point)"
    ],
    "warnings": []
  },
  {
    "service": "good",
    "ok": true,
    "problems": [],
    "warnings": []
  }
]
"##,
    );
    let out = pp.run(&["start"]);
    out.code_is(1);
    assert_golden(
        &pp,
        "start refused (stderr)",
        &out.stderr,
        r##"servicectl: warning: worse: ADMIN_PORT has no type; treating it as a port because its name ends in _PORT (set envar_ADMIN_PORT_type=port to say so)
servicectl: bad: 2 problems:
  service_halt_timeout="soon" (set in {ROOT}/services/bad/config): must be a number of seconds, 0 or more (fractions allowed, such as 2.5) — fix the setting in the service's config
  2 problems with typed variables:
      WORKERS (worker processes) = "-2": not a nonnegative integer (0 or more) (set in {ROOT}/services/bad/config)
      MODE: required but unset — set the missing variables in the role config (`servicectl missing-env --script bad` prints a starting point)
servicectl: good: not started: other services have configuration problems (listed above)
servicectl: worse: 2 problems with settings:
  service_restart_policy="sometimes" (set in {ROOT}/services/worse/config): must be none, unlimited, or a number of restarts such as 3
  no service_program is set in {ROOT}/services/worse/config: set service_program (or service_start) in the service's config — fix the settings in the service's config
"##,
    );
}

#[test]
fn missing_env_verbose() {
    let pp = Playpen::with_services(&["app"]);
    pp.sleeper_service(
        "app",
        "service_required_envars=\"DB_URL APP_PORT\"\n\
         service_optional_envars=LOG_LEVEL\n\
         envar_DB_URL_description=\"where the database is\"\n\
         envar_DB_URL_type=string\n\
         envar_APP_PORT_type=port\n\
         envar_APP_PORT_constraints=8000-8999\n\
         envar_APP_PORT_default=8081\n\
         envar_LOG_LEVEL_type=simple_string\n\
         envar_LOG_LEVEL_default=info",
    );
    let out = pp.run(&["missing-env", "--verbose"]);
    out.code_is(1);
    assert_golden(
        &pp,
        "missing-env --verbose",
        &out.stdout,
        r##"app: DB_URL (required)
    where the database is
    type: string
    default: none
app: APP_PORT (required)
    type: port
    constraints: 8000-8999
    default: 8081
"##,
    );
    assert_golden(
        &pp,
        "missing-env --verbose (stderr)",
        &out.stderr,
        r##"hint: `servicectl missing-env --script >> {ROOT}/etc/roles/dev/config` sets each to its default
"##,
    );
    let out = pp.run(&["missing-env", "--json"]);
    out.code_is(1);
    assert_golden(
        &pp,
        "missing-env --json",
        &out.stdout,
        r##"[
  {
    "service": "app",
    "missing": [
      {
        "name": "DB_URL",
        "required": true,
        "description": "where the database is",
        "type": "string",
        "constraints": null,
        "default": null
      },
      {
        "name": "APP_PORT",
        "required": true,
        "description": null,
        "type": "port",
        "constraints": "8000-8999",
        "default": "8081"
      }
    ]
  }
]
"##,
    );
    let out = pp.run(&["missing-env", "--script"]);
    out.code_is(1);
    assert_golden(
        &pp,
        "missing-env --script",
        &out.stdout,
        r##"# app: where the database is (string)
# app: no default: choose a value and uncomment the next line
#DB_URL=
# app: APP_PORT (port, 8000-8999)
APP_PORT=8081
"##,
    );
}

#[test]
fn ports_map() {
    let pp = web_and_db();
    pp.sleeper_service(
        "db",
        "service_optional_envars=\"DB_PORT DB_ADMIN_PORT DB_STATS_PORT\"\n\
         service_required_envars=DB_REPLICA_PORT\n\
         envar_DB_PORT_type=port\n\
         DB_PORT_OFFSET=79\n\
         envar_DB_ADMIN_PORT_type=port\n\
         DB_ADMIN_PORT_OFFSET=80\n\
         envar_DB_STATS_PORT_type=port\n\
         envar_DB_STATS_PORT_default=9090\n\
         envar_DB_REPLICA_PORT_type=port",
    );
    let out = pp.run(&["ports"]);
    out.ok();
    // The same again, from the cache: the same output.
    assert_eq!(pp.run(&["ports"]).stdout, out.stdout);
    assert_golden(
        &pp,
        "ports",
        &out.stdout,
        r##"SERVICE VARIABLE PORT LISTENING FROM
db DB_PORT 8079 no PORT_PREFIX + DB_PORT_OFFSET = 8000 + 79
db DB_ADMIN_PORT 8080 no PORT_PREFIX + DB_ADMIN_PORT_OFFSET = 8000 + 80
db DB_STATS_PORT 9090 no envar_DB_STATS_PORT_default
web WEB_PORT 8080 no PORT_PREFIX + WEB_PORT_OFFSET = 8000 + 80
"##,
    );
    assert_golden(
        &pp,
        "ports (stderr)",
        &out.stderr,
        r##"servicectl: warning: db: DB_REPLICA_PORT: required but unset
servicectl: warning: port 8080 is used by db (DB_ADMIN_PORT) and web (WEB_PORT)
"##,
    );
    let out = pp.run(&["ports", "--json"]);
    out.ok();
    assert_golden(
        &pp,
        "ports --json",
        &out.stdout,
        r##"[
  {
    "service": "db",
    "variable": "DB_PORT",
    "port": 8079,
    "how": "offset",
    "source": "PORT_PREFIX + DB_PORT_OFFSET = 8000 + 79",
    "listening": false,
    "protocols": []
  },
  {
    "service": "db",
    "variable": "DB_ADMIN_PORT",
    "port": 8080,
    "how": "offset",
    "source": "PORT_PREFIX + DB_ADMIN_PORT_OFFSET = 8000 + 80",
    "listening": false,
    "protocols": []
  },
  {
    "service": "db",
    "variable": "DB_STATS_PORT",
    "port": 9090,
    "how": "default",
    "source": "envar_DB_STATS_PORT_default",
    "listening": false,
    "protocols": []
  },
  {
    "service": "web",
    "variable": "WEB_PORT",
    "port": 8080,
    "how": "offset",
    "source": "PORT_PREFIX + WEB_PORT_OFFSET = 8000 + 80",
    "listening": false,
    "protocols": []
  }
]
"##,
    );
}

/// status, wait and shutdown answered by a supervisor (`supervise --daemon`), and
/// status again once it is gone.
#[test]
fn status_under_a_supervisor() {
    let pp = web_and_db();
    // web depends on db: shutdown stops web first, then db (one order to pin).
    let web = pp.read("services/web/config");
    pp.service("web", &format!("{web}service_depends=db\n"));
    pp.run(&["supervise", "--daemon"]).ok();
    let guard = Shutdown(&pp);
    let out = pp.run(&["wait", "--json", "--timeout", "20"]);
    out.ok();
    assert_golden(
        &pp,
        "supervised wait --json",
        &out.stdout,
        r##"{
  "not_ready": [],
  "ready": [
    "db",
    "web"
  ]
}
"##,
    );
    let out = pp.run(&["status"]);
    out.ok();
    assert_golden(
        &pp,
        "supervised status",
        &out.stdout,
        r##"SERVICE STATE PID UPTIME RESTARTS LAST EXIT PORTS NOTE
db running {PID} {TIME} 0 - -
web running {PID} {TIME} 0 - 8080
"##,
    );
    let out = pp.run(&["status", "--json"]);
    out.ok();
    assert_golden(
        &pp,
        "supervised status --json",
        &out.stdout,
        r##"[
  {
    "service": "db",
    "state": "running",
    "pid": "{PID}",
    "uptime_secs": "{TIME}",
    "ports": [],
    "version": null,
    "note": null,
    "restarts": 0,
    "last_exit": null,
    "ready": true,
    "wanted": true
  },
  {
    "service": "web",
    "state": "running",
    "pid": "{PID}",
    "uptime_secs": "{TIME}",
    "ports": [
      [
        "WEB_PORT",
        8080
      ]
    ],
    "version": null,
    "note": null,
    "restarts": 0,
    "last_exit": null,
    "ready": true,
    "wanted": true
  }
]
"##,
    );
    drop(guard);
    let out = pp.run(&["status"]);
    out.code_is(3);
    assert_golden(
        &pp,
        "status after shutdown",
        &out.stdout,
        r##"SERVICE STATE PID UPTIME PORTS NOTE
db stopped - - -
web stopped - - -
"##,
    );
    let out = pp.run(&["shutdown"]);
    out.ok();
    assert_golden(
        &pp,
        "shutdown without a supervisor",
        &out.stdout,
        "no supervisor runs for {ROOT}\n",
    );
    let out = pp.run(&["shutdown", "--json"]);
    out.ok();
    assert_golden(
        &pp,
        "shutdown --json without a supervisor",
        &out.stdout,
        "[]\n",
    );
}

/// Shuts the supervisor down however the test ends, and shows what that printed.
struct Shutdown<'a>(&'a Playpen);

impl Drop for Shutdown<'_> {
    fn drop(&mut self) {
        let out = self.0.run(&["shutdown"]);
        if !std::thread::panicking() {
            out.ok();
            assert_golden(
                self.0,
                "shutdown",
                &out.stdout,
                r##"web: stopped (pid {PID})
db: stopped (pid {PID})
supervisor of {ROOT} shut down
"##,
            );
        }
    }
}

/// init, env, sub-conf and export --json.
#[test]
fn json_of_the_playpen_commands() {
    let pp = web_and_db();
    pp.role_services(&["db", "web"], "PLAYPEN_TAG=golden\n");
    let out = pp.run(&["init", &pp.root_str(), "--json"]);
    out.ok();
    assert_golden(
        &pp,
        "init --json",
        &out.stdout,
        r##"{
  "created": false,
  "left_alone": false,
  "playpen": "{ROOT}",
  "role": "dev"
}
"##,
    );
    pp.write("etc/web.conf", "port __WEB_PORT__\n");
    pp.sleeper_service(
        "web",
        "service_required_envars=WEB_PORT\n\
         envar_WEB_PORT_type=port\n\
         WEB_PORT_OFFSET=80\n\
         service_config_files=etc/web.conf",
    );
    let out = pp.run(&["sub-conf", "--service", "web", "--json"]);
    out.ok();
    assert_golden(
        &pp,
        "sub-conf --json",
        &out.stdout,
        r##"[
  "{ROOT}/var/etc/web.conf"
]
"##,
    );
    let out = pp.run(&["env", "--json"]);
    out.ok();
    assert_golden(
        &pp,
        "env --json",
        &out.stdout,
        r##"{
  "LOCAL_RUNVAR": "{ROOT}/var/run",
  "LOCAL_VAR": "{ROOT}/var",
  "PLAYPEN_ROLE": "dev",
  "PLAYPEN_ROOT": "{ROOT}",
  "PLAYPEN_TAG": "golden",
  "PORT_PREFIX": "8000",
  "WEB_PORT": "8080",
  "playpen_services": "db web"
}
"##,
    );
    let out = pp.run(&["export", "systemd", "web", "--json"]);
    out.ok();
    assert_golden(
        &pp,
        "export systemd web --json",
        &out.stdout,
        r##"{
  "dir": "{ROOT}/var/export/systemd",
  "target": "golden.target",
  "files": [
    "{ROOT}/var/export/systemd/golden-web.env",
    "{ROOT}/var/export/systemd/golden-web.service",
    "{ROOT}/var/export/systemd/golden.target"
  ]
}
"##,
    );
}

/// A package `tick` of version `version`: one service running `sleep 1000`, one
/// optional typed variable.
fn tick(version: &str) -> PkgCopy {
    let pkg = PkgCopy::empty(&format!("tick-{version}"));
    pkg.write(&format!("tick-{version}.services"), "tick\n");
    pkg.write(
        &format!("tick-{version}.config"),
        "service_program=sleep\n\
         service_flags=1000\n\
         service_stop_before_upgrade=0\n\
         service_optional_envars=TICK_EVERY\n\
         envar_TICK_EVERY_type=nonnegative\n\
         envar_TICK_EVERY_default=5\n",
    );
    pkg
}

/// package install (a first install, then an upgrade), new-service, pre-upgrade,
/// post-upgrade, remove-service and package remove --json; print-config --json of a
/// service evaluated in a known environment.
#[test]
fn json_of_the_package_commands() {
    let pp = Playpen::with_services(&["tick"]);
    let v1 = tick("1.0");
    let out = pp.run(&[
        "package",
        "install",
        &v1.path.display().to_string(),
        "--json",
    ]);
    out.ok();
    assert_golden(
        &pp,
        "package install --json",
        &out.stdout,
        r##"{
  "package": "tick-1.0",
  "replaced": null,
  "files": 2,
  "services": [
    {
      "service": "tick",
      "newly_registered": true,
      "missing": [],
      "missing_script": "",
      "in_role": true
    }
  ],
  "upgrade": null
}
"##,
    );
    let out = pp.run(&["new-service", "tick", "--json"]);
    out.ok();
    assert_golden(
        &pp,
        "new-service --json",
        &out.stdout,
        r##"[
  {
    "service": "tick",
    "newly_registered": false,
    "missing": [],
    "missing_script": "",
    "in_role": true
  }
]
"##,
    );
    pp.start(&["tick"]);
    let out = pp.run(&["pre-upgrade", "tick", "--json"]);
    out.ok();
    assert_golden(
        &pp,
        "pre-upgrade --json",
        &out.stdout,
        r##"{
  "stopped": [],
  "started": [],
  "restarted": [],
  "reloaded": [],
  "marked": [
    "tick"
  ],
  "warnings": []
}
"##,
    );
    let out = pp.run(&["post-upgrade", "tick", "--json"]);
    out.ok();
    assert_golden(
        &pp,
        "post-upgrade --json",
        &out.stdout,
        r##"{
  "stopped": [],
  "started": [],
  "restarted": [
    "tick"
  ],
  "reloaded": [],
  "marked": [],
  "warnings": []
}
"##,
    );
    let v2 = tick("2.0");
    let out = pp.run(&["package", "install", &v2.path.display().to_string()]);
    out.ok();
    assert_golden(
        &pp,
        "package install (an upgrade)",
        &out.stdout,
        r##"upgraded tick-1.0 to tick-2.0 (2 files)
restarted: tick
tick: already registered (checked again)
"##,
    );
    let mut cmd = pp.command();
    cmd.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("NO_COLOR", "1")
        .args(["print-config", "tick", "--json"]);
    let out = run_command(&mut cmd);
    out.ok();
    assert_golden(
        &pp,
        "print-config --json",
        &out.stdout,
        r##"{
  "environment": {
    "LOCAL_RUNVAR": "{ROOT}/var/run",
    "LOCAL_VAR": "{ROOT}/var",
    "NO_COLOR": "1",
    "PATH": "/usr/bin:/bin",
    "PLAYPEN_ROLE": "dev",
    "PLAYPEN_ROOT": "{ROOT}",
    "PORT_PREFIX": "8000",
    "SERVICE_NAME": "tick",
    "SERVICE_OUTPUT_FILE": "{ROOT}/var/run/tick.output",
    "SERVICE_PIDFILE": "{ROOT}/var/run/tick.pid",
    "SERVICE_UPGRADED": "0",
    "SERVICE_VERSION": "2.0",
    "TICK_EVERY": "5",
    "playpen_services": "tick"
  },
  "fragments": [
    "{ROOT}/ext/services/tick-2.0/config"
  ],
  "service": "tick",
  "variables": {
    "LOCAL_RUNVAR": {
      "exported": true,
      "origin": "(servicectl)",
      "value": "{ROOT}/var/run"
    },
    "LOCAL_VAR": {
      "exported": true,
      "origin": "(servicectl)",
      "value": "{ROOT}/var"
    },
    "NO_COLOR": {
      "exported": true,
      "origin": "(environment)",
      "value": "1"
    },
    "PATH": {
      "exported": true,
      "origin": "(environment)",
      "value": "/usr/bin:/bin"
    },
    "PLAYPEN_ROLE": {
      "exported": true,
      "origin": "(servicectl)",
      "value": "dev"
    },
    "PLAYPEN_ROOT": {
      "exported": true,
      "origin": "(servicectl)",
      "value": "{ROOT}"
    },
    "PORT_PREFIX": {
      "exported": true,
      "origin": "{ROOT}/etc/roles/dev/config",
      "value": "8000"
    },
    "SERVICE_NAME": {
      "exported": true,
      "origin": "(servicectl)",
      "value": "tick"
    },
    "SERVICE_OUTPUT_FILE": {
      "exported": true,
      "origin": "(servicectl)",
      "value": "{ROOT}/var/run/tick.output"
    },
    "SERVICE_PIDFILE": {
      "exported": true,
      "origin": "(servicectl)",
      "value": "{ROOT}/var/run/tick.pid"
    },
    "SERVICE_VERSION": {
      "exported": true,
      "origin": "(servicectl)",
      "value": "2.0"
    },
    "envar_TICK_EVERY_default": {
      "exported": false,
      "origin": "{ROOT}/ext/services/tick-2.0/config",
      "value": "5"
    },
    "envar_TICK_EVERY_type": {
      "exported": false,
      "origin": "{ROOT}/ext/services/tick-2.0/config",
      "value": "nonnegative"
    },
    "playpen_services": {
      "exported": true,
      "origin": "{ROOT}/etc/roles/dev/config",
      "value": "tick"
    },
    "service_flags": {
      "exported": false,
      "origin": "{ROOT}/ext/services/tick-2.0/config",
      "value": "1000"
    },
    "service_optional_envars": {
      "exported": false,
      "origin": "{ROOT}/ext/services/tick-2.0/config",
      "value": "TICK_EVERY"
    },
    "service_program": {
      "exported": false,
      "origin": "{ROOT}/ext/services/tick-2.0/config",
      "value": "sleep"
    },
    "service_stop_before_upgrade": {
      "exported": false,
      "origin": "{ROOT}/ext/services/tick-2.0/config",
      "value": "0"
    }
  },
  "version": "2.0"
}
"##,
    );
    let out = pp.run(&["remove-service", "tick", "--json"]);
    out.ok();
    assert_golden(
        &pp,
        "remove-service --json",
        &out.stdout,
        r##"[
  {
    "service": "tick",
    "stopped": true,
    "unregistered": true,
    "removed_files": [
      "{ROOT}/var/linkfarm/tick"
    ]
  }
]
"##,
    );
    let out = pp.run(&["package", "remove", "tick", "--json"]);
    out.ok();
    assert_golden(
        &pp,
        "package remove --json",
        &out.stdout,
        r##"[
  {
    "service": "tick",
    "stopped": false,
    "unregistered": false,
    "removed_files": []
  }
]
"##,
    );
}

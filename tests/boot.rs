//! `servicectl boot enable|disable|status` (§13.2): a systemd unit of Type=notify that
//! `systemd-analyze verify` accepts (in SERVICECTL_UNIT_DIR, not /etc), or a @reboot
//! line in the crontab (a fake `crontab` on PATH that keeps the table in a file and
//! logs every install); both safe to repeat; status says which is installed.

use crate::common::*;
use std::os::unix::fs::MetadataExt;

/// The output with the servicectl binary as {BIN}, then masked as golden output is.
fn shown(text: &str) -> String {
    text.replace(BIN, "{BIN}")
}

#[test]
fn enable_writes_a_notify_unit_that_systemd_accepts_and_disable_removes_it() {
    let pp = Playpen::new();
    pp.role_config("PLAYPEN_TAG=boottest\n");
    let units = pp.path("units");
    let units_text = units.display().to_string();
    let env = [("SERVICECTL_UNIT_DIR", units_text.as_str())];
    let out = pp.run_env(&["boot", "enable"], &env);
    out.ok();
    let scope = if nix::unistd::geteuid().is_root() {
        "system"
    } else {
        "user"
    };
    let wanted = if scope == "system" {
        "multi-user.target"
    } else {
        "default.target"
    };
    assert_golden(
        &pp,
        "boot enable",
        &out.stdout,
        &format!(
            "systemd: installed {{ROOT}}/units/servicectl-boottest.service ({scope} unit, enabled)\nsupervisor: not running\n"
        ),
    );
    let unit = pp.path("units/servicectl-boottest.service");
    assert_golden(
        &pp,
        "the unit",
        &shown(&pp.read("units/servicectl-boottest.service")),
        &format!(
            "# Made by `servicectl boot enable` for the playpen {{ROOT}}.
[Unit]
Description=servicectl supervisor of the playpen {{ROOT}}
After=network.target

[Service]
Type=notify
NotifyAccess=main
WorkingDirectory={{ROOT}}
ExecStart={{BIN}} --playpen {{ROOT}} supervise
ExecStop={{BIN}} --playpen {{ROOT}} shutdown
# The role's services may take their service_ready_timeout each to come up.
TimeoutStartSec=600
TimeoutStopSec=600
Restart=on-failure

[Install]
WantedBy={wanted}
"
        ),
    );
    let link = units.join(format!("{wanted}.wants/servicectl-boottest.service"));
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        std::path::Path::new("../servicectl-boottest.service"),
        "enabled as systemctl enable does"
    );
    let verify = run_command(
        std::process::Command::new(systemd_analyze())
            .args(["verify", "--man=no"])
            .arg(&unit)
            .env("SYSTEMD_UNIT_PATH", format!("{units_text}:"))
            .env("SYSTEMD_LOG_LEVEL", "notice"),
    );
    assert!(
        verify.code == 0 && verify.stderr.trim().is_empty() && verify.stdout.trim().is_empty(),
        "systemd-analyze verify:\n{verify}"
    );

    // Again: nothing is rewritten.
    let before = std::fs::metadata(&unit).unwrap();
    let out = pp.run_env(&["boot", "enable"], &env);
    out.ok();
    assert_golden(
        &pp,
        "boot enable again",
        &out.stdout,
        &format!(
            "systemd: already installed {{ROOT}}/units/servicectl-boottest.service ({scope} unit, enabled)\nsupervisor: not running\n"
        ),
    );
    assert_eq!(std::fs::metadata(&unit).unwrap().ino(), before.ino());

    let out = pp.run_env(&["boot", "status", "--json"], &env);
    out.ok();
    assert_golden(
        &pp,
        "boot status --json",
        &out.stdout,
        &format!(
            r#"{{
  "changed": false,
  "crontab": null,
  "hints": [],
  "playpen": "{{ROOT}}",
  "supervisor_running": false,
  "unit": {{
    "active": null,
    "enabled": true,
    "file": "{{ROOT}}/units/servicectl-boottest.service",
    "name": "servicectl-boottest.service",
    "scope": "{scope}"
  }}
}}
"#
        ),
    );

    let out = pp.run_env(&["boot", "disable"], &env);
    out.ok();
    assert_golden(
        &pp,
        "boot disable",
        &out.stdout,
        "systemd: removed {ROOT}/units/servicectl-boottest.service\nsupervisor: not running\n",
    );
    assert!(!unit.exists() && std::fs::symlink_metadata(&link).is_err());
    let out = pp.run_env(&["boot", "disable"], &env);
    out.ok();
    assert_golden(
        &pp,
        "boot disable again",
        &out.stdout,
        "nothing was installed to start the playpen {ROOT} at boot\nsupervisor: not running\n",
    );
    let out = pp.run_env(&["boot", "status"], &env);
    out.code_is(3);
    assert_golden(
        &pp,
        "boot status (none)",
        &out.stdout,
        "systemd: no unit\ncrontab: no line\nnothing starts the playpen {ROOT} at boot: `servicectl boot enable` does\nsupervisor: not running\n",
    );
}

/// A `crontab` that keeps the table in $FAKE_CRONTAB and appends each table it is
/// given to $FAKE_CRONTAB.installs.
fn fake_crontab(pp: &Playpen) -> (String, std::path::PathBuf) {
    pp.write_exec(
        "fakebin/crontab",
        "#!/bin/sh\ncase \"$1\" in\n\
         -l) [ -f \"$FAKE_CRONTAB\" ] || { echo \"no crontab for $(id -un)\" >&2; exit 1; }; cat \"$FAKE_CRONTAB\" ;;\n\
         -) cat > \"$FAKE_CRONTAB.new\" && cat \"$FAKE_CRONTAB.new\" >> \"$FAKE_CRONTAB.installs\" && echo --- >> \"$FAKE_CRONTAB.installs\" && mv \"$FAKE_CRONTAB.new\" \"$FAKE_CRONTAB\" ;;\n\
         *) echo \"fake crontab: $*\" >&2; exit 2 ;;\nesac\n",
    );
    (
        format!("{}:/usr/bin:/bin", pp.path("fakebin").display()),
        pp.path("crontab"),
    )
}

#[test]
fn enable_via_cron_adds_one_reboot_line_that_starts_the_supervisor() {
    let pp = Playpen::new();
    let (path, table) = fake_crontab(&pp);
    pp.write("crontab", "0 3 * * * /usr/local/bin/backup\n");
    let table_text = table.display().to_string();
    let env = [
        ("PATH", path.as_str()),
        ("FAKE_CRONTAB", table_text.as_str()),
    ];
    let out = pp.run_env(&["boot", "enable", "--via", "cron"], &env);
    out.ok();
    let line = "@reboot {BIN} --playpen {ROOT} supervise --daemon # servicectl boot: {ROOT}";
    assert_golden(
        &pp,
        "boot enable --via cron",
        &shown(&out.stdout),
        &format!("crontab: installed {line}\nsupervisor: not running\n"),
    );
    assert_golden(
        &pp,
        "the crontab",
        &shown(&pp.read("crontab")),
        &format!("0 3 * * * /usr/local/bin/backup\n{line}\n"),
    );
    // Again: the line is there, crontab is not given a new table.
    let out = pp.run_env(&["boot", "enable", "--via", "cron"], &env);
    out.ok();
    assert_golden(
        &pp,
        "boot enable --via cron again",
        &shown(&out.stdout),
        &format!("crontab: already installed {line}\nsupervisor: not running\n"),
    );
    assert_golden(
        &pp,
        "what crontab was given",
        &shown(&pp.read("crontab.installs")),
        &format!("0 3 * * * /usr/local/bin/backup\n{line}\n---\n"),
    );

    // What cron runs at boot starts the supervisor; status then says so.
    let installed = pp.read("crontab");
    let reboot = installed
        .lines()
        .last()
        .unwrap()
        .strip_prefix("@reboot ")
        .unwrap();
    run_command(
        std::process::Command::new("/bin/sh")
            .args(["-c", reboot])
            .env_remove("PLAYPEN_ROOT"),
    )
    .ok();
    let out = pp.run_env(&["boot", "status"], &env);
    out.ok();
    assert_golden(
        &pp,
        "boot status (cron)",
        &shown(&out.stdout),
        &format!("systemd: no unit\ncrontab: installed {line}\nsupervisor: running\n"),
    );
    pp.run(&["shutdown"]).ok();

    let out = pp.run_env(&["boot", "disable"], &env);
    out.ok();
    assert_golden(
        &pp,
        "boot disable (cron)",
        &shown(&out.stdout),
        &format!("crontab: removed {line}\nsupervisor: not running\n"),
    );
    assert_eq!(pp.read("crontab"), "0 3 * * * /usr/local/bin/backup\n");
    pp.run_env(&["boot", "disable"], &env).ok();
    assert_eq!(
        pp.read("crontab.installs").matches("---").count(),
        2,
        "a second disable installs nothing"
    );
}

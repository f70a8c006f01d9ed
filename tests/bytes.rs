//! Values are bytes (§4, issue 8 item 12): bytes that are not UTF-8 in a role variable, a
//! typed string variable, the inherited environment and a template round-trip exactly to
//! the program, its hooks, the rendered file and what `env` and `print-config` print
//! (evaluated by a real sh); JSON carries them as `{"lossy", "bytes"}`; a setting or a
//! number that is not UTF-8 is a problem naming it, and the inherited environment never
//! panics servicectl.

use crate::common::*;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::process::{Command, Stdio};

/// Bytes no UTF-8 decoder keeps (\xff\xfe are never UTF-8, \x80 is a lone continuation
/// byte, \xe2\x82 a cut-short sequence), with sh's quotes, `$`, backquotes, a backslash
/// and newlines. Each variable gets its own, so a mix-up shows.
const ROLE_VALUE: &[u8] =
    b"role \xff\xfe lone \x80 cut \xe2\x82 it's \"q\" $HOME `x` \\ \nsecond line\n";
const TYPED_VALUE: &[u8] = b"typed \x80\xff 'single' \"double\" ${X} \n\xfe";
const INHERITED_VALUE: &[u8] = b"inherited \xfe\xff\x80 $PATH 'q' \"\n\nend";

/// `'…'` with `'\''` for each quote: the value as a sh word, bytes unchanged.
fn sh_single(value: &[u8]) -> Vec<u8> {
    let mut out = b"'".to_vec();
    for &b in value {
        if b == b'\'' {
            out.extend_from_slice(b"'\\''");
        } else {
            out.push(b);
        }
    }
    out.push(b'\'');
    out
}

fn os(bytes: &[u8]) -> OsString {
    OsString::from_vec(bytes.to_vec())
}

fn assign(name: &str, value: &[u8]) -> Vec<u8> {
    let mut line = format!("{name}=").into_bytes();
    line.extend_from_slice(&sh_single(value));
    line.push(b'\n');
    line
}

/// A playpen whose role sets ROLE_BYTES and whose service `web` has the typed string
/// TYPED, a template using all three variables, a pre-start hook and a program that
/// writes what it got.
fn bytes_playpen() -> Playpen {
    let pp = Playpen::new();
    let mut role = b"playpen_services=web\n".to_vec();
    role.extend(assign("ROLE_BYTES", ROLE_VALUE));
    pp.write_bytes(&format!("etc/roles/{ROLE}/config"), &role);
    let mut config = b"service_program=bytesdump\n\
        service_required_envars=TYPED\n\
        envar_TYPED_type=string\n\
        envar_TYPED_description=\"a string of any bytes\"\n\
        service_config_files=etc/app.conf\n\
        service_pre_start='printf %s \"$ROLE_BYTES\" > \"$LOCAL_VAR/hook.out\"'\n"
        .to_vec();
    config.extend(assign("TYPED", TYPED_VALUE));
    pp.write_bytes("services/web/config", &config);
    pp.write_exec(
        "bin/bytesdump",
        "#!/bin/sh\n\
         printf %s \"$ROLE_BYTES\" > \"$LOCAL_VAR/ROLE_BYTES.out\"\n\
         printf %s \"$TYPED\" > \"$LOCAL_VAR/TYPED.out\"\n\
         printf %s \"$INHERITED\" > \"$LOCAL_VAR/INHERITED.out\"\n\
         env -0 > \"$LOCAL_VAR/env0.tmp\" && mv \"$LOCAL_VAR/env0.tmp\" \"$LOCAL_VAR/env0\"\n\
         while :; do sleep 1 & wait $!; done\n",
    );
    pp.write_bytes(
        "etc/app.conf",
        b"role=__ROLE_BYTES__|typed=__TYPED__|inherited=__INHERITED__|raw=\xc0\xaf\n",
    );
    pp
}

/// servicectl with INHERITED (bytes) in its environment.
fn command(pp: &Playpen, args: &[&str]) -> Command {
    let mut cmd = pp.command();
    cmd.args(args).env("INHERITED", os(INHERITED_VALUE));
    cmd
}

/// Run with INHERITED set; its exact stdout (asserting success).
#[track_caller]
fn stdout_of(pp: &Playpen, args: &[&str]) -> Vec<u8> {
    let output = command(pp, args)
        .stdin(Stdio::null())
        .output()
        .expect("run servicectl");
    assert!(
        output.status.success(),
        "servicectl {args:?} failed ({:?}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// What `script` (sh source) sets `names` to, once a real sh has sourced it.
fn sourced(pp: &Playpen, script: &[u8], names: &[&str]) -> Vec<Vec<u8>> {
    let file = pp.write_bytes("sourced.sh", script);
    let output = Command::new("/bin/sh")
        .arg("-c")
        .arg(". \"$1\" || exit 9; shift; for n do eval \"v=\\$$n\"; printf '%s\\0' \"$v\"; done")
        .arg("sh")
        .arg(&file)
        .args(names)
        .env_clear()
        .stdin(Stdio::null())
        .output()
        .expect("run sh");
    assert!(
        output.status.success(),
        "sh could not source it: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(script)
    );
    let mut values: Vec<Vec<u8>> = output
        .stdout
        .split(|&b| b == 0)
        .map(<[u8]>::to_vec)
        .collect();
    values.pop();
    values
}

/// `env -0` output as name → exact value.
fn env0(bytes: &[u8]) -> std::collections::BTreeMap<Vec<u8>, Vec<u8>> {
    bytes
        .split(|&b| b == 0)
        .filter(|e| !e.is_empty())
        .filter_map(|e| {
            let eq = e.iter().position(|&b| b == b'=')?;
            Some((e[..eq].to_vec(), e[eq + 1..].to_vec()))
        })
        .collect()
}

/// Shown readably when an assertion fails.
fn show(bytes: &[u8]) -> String {
    format!("{:?}", OsString::from_vec(bytes.to_vec()))
}

#[track_caller]
fn same(got: &[u8], want: &[u8], what: &str) {
    assert!(
        got == want,
        "{what}: got {}, want {}",
        show(got),
        show(want)
    );
}

#[test]
fn the_program_its_hook_and_the_rendered_file_get_the_exact_bytes() {
    let pp = bytes_playpen();
    let out = run_command(&mut command(&pp, &["start", "web"]));
    out.ok();

    let env = env0(&pp.wait_file("var/env0", 10));
    for (name, want) in [
        ("ROLE_BYTES", ROLE_VALUE),
        ("TYPED", TYPED_VALUE),
        ("INHERITED", INHERITED_VALUE),
    ] {
        same(
            &pp.read_bytes(&format!("var/{name}.out")),
            want,
            &format!("{name} as the program's printf %s saw it"),
        );
        same(
            env.get(name.as_bytes())
                .map(Vec::as_slice)
                .unwrap_or(b"(unset)"),
            want,
            &format!("{name} in the program's env -0"),
        );
    }
    same(
        &pp.read_bytes("var/hook.out"),
        ROLE_VALUE,
        "ROLE_BYTES in the pre-start hook",
    );

    let mut rendered = b"role=".to_vec();
    rendered.extend_from_slice(ROLE_VALUE);
    rendered.extend_from_slice(b"|typed=");
    rendered.extend_from_slice(TYPED_VALUE);
    rendered.extend_from_slice(b"|inherited=");
    rendered.extend_from_slice(INHERITED_VALUE);
    rendered.extend_from_slice(b"|raw=\xc0\xaf\n");
    same(
        &pp.read_bytes("var/etc/app.conf"),
        &rendered,
        "the rendered etc/app.conf",
    );
    // sub-conf on its own renders the same bytes.
    std::fs::remove_file(pp.path("var/etc/app.conf")).unwrap();
    stdout_of(&pp, &["sub-conf", "--service", "web"]);
    same(
        &pp.read_bytes("var/etc/app.conf"),
        &rendered,
        "etc/app.conf rendered by sub-conf",
    );
    run_command(&mut command(&pp, &["stop", "web"])).ok();
}

#[test]
fn env_and_print_config_output_gives_the_exact_bytes_back_to_sh() {
    let pp = bytes_playpen();

    let text = stdout_of(&pp, &["env", "web"]);
    let values = sourced(&pp, &text, &["ROLE_BYTES", "TYPED", "INHERITED"]);
    same(&values[0], ROLE_VALUE, "ROLE_BYTES from `env web`");
    same(&values[1], TYPED_VALUE, "TYPED from `env web`");
    same(
        &values[2],
        b"",
        "INHERITED is left out of `env web` without --all",
    );

    let text = stdout_of(&pp, &["env", "--all", "web"]);
    let values = sourced(&pp, &text, &["ROLE_BYTES", "TYPED", "INHERITED"]);
    same(&values[0], ROLE_VALUE, "ROLE_BYTES from `env --all web`");
    same(&values[1], TYPED_VALUE, "TYPED from `env --all web`");
    same(
        &values[2],
        INHERITED_VALUE,
        "INHERITED from `env --all web`",
    );

    let text = stdout_of(&pp, &["env"]);
    let values = sourced(&pp, &text, &["ROLE_BYTES"]);
    same(
        &values[0],
        ROLE_VALUE,
        "ROLE_BYTES from the playpen's `env`",
    );

    let text = stdout_of(&pp, &["print-config", "web"]);
    let values = sourced(&pp, &text, &["ROLE_BYTES", "TYPED", "service_program"]);
    same(&values[0], ROLE_VALUE, "ROLE_BYTES from `print-config web`");
    same(&values[1], TYPED_VALUE, "TYPED from `print-config web`");
    same(
        &values[2],
        b"bytesdump",
        "service_program from `print-config web`",
    );
}

#[test]
fn json_shows_a_value_that_is_not_utf8_as_lossy_text_and_exact_bytes() {
    let pp = bytes_playpen();
    let as_json = |bytes: &[u8]| {
        serde_json::json!({
            "lossy": String::from_utf8_lossy(bytes),
            "bytes": bytes,
        })
    };
    let json: serde_json::Value =
        serde_json::from_slice(&stdout_of(&pp, &["--json", "print-config", "web"]))
            .expect("print-config --json is JSON");
    assert_eq!(
        json["variables"]["ROLE_BYTES"]["value"],
        as_json(ROLE_VALUE)
    );
    assert_eq!(json["variables"]["TYPED"]["value"], as_json(TYPED_VALUE));
    assert_eq!(json["environment"]["TYPED"], as_json(TYPED_VALUE));
    assert_eq!(json["environment"]["INHERITED"], as_json(INHERITED_VALUE));
    // UTF-8 values stay JSON strings.
    assert_eq!(json["variables"]["service_program"]["value"], "bytesdump");

    let json: serde_json::Value =
        serde_json::from_slice(&stdout_of(&pp, &["--json", "env", "--all", "web"]))
            .expect("env --json is JSON");
    assert_eq!(json["ROLE_BYTES"], as_json(ROLE_VALUE));
    assert_eq!(json["INHERITED"], as_json(INHERITED_VALUE));
    assert_eq!(json["SERVICE_NAME"], "web");
}

#[test]
fn a_setting_or_a_number_that_is_not_utf8_is_a_problem_naming_it() {
    let pp = Playpen::new();
    pp.role_config("playpen_services=\"web api\"\n");
    pp.install_sleep("bin/sleeper");
    pp.write_bytes(
        "services/web/config",
        b"service_program=sleeper\nservice_flags='10 \xff'\n",
    );
    pp.write_bytes(
        "services/api/config",
        b"service_program=sleeper\nservice_flags=10\n\
          service_required_envars=API_PORT\nenvar_API_PORT_type=port\nAPI_PORT='80\xff'\n",
    );
    let web = pp.path("services/web/config").display().to_string();
    let out = pp.run(&["check", "web", "api"]);
    out.fails().says(&[
        &format!("service_flags=\"10 \\xFF\" (set in {web}): must be UTF-8 text"),
        "API_PORT = \"80\\xFF\": not a port (1-65535)",
    ]);
    // start refuses both, as check said.
    pp.run(&["start", "web"])
        .fails()
        .says(&["service_flags=\"10 \\xFF\""]);
    pp.run(&["start", "api"])
        .fails()
        .says(&["API_PORT = \"80\\xFF\""]);
}

#[test]
fn an_inherited_value_that_is_not_utf8_does_not_stop_servicectl_from_stopping_a_broken_service() {
    let pp = Playpen::new();
    pp.role_config("playpen_services=web\n");
    pp.sleeper_service("web", "");
    pp.start(&["web"]);
    let pid = pp.running_pid("web");
    // Its config breaks while it runs: servicectl stops it from what it knows without
    // the config (its own environment, inherited with a value that is not UTF-8).
    pp.write("services/web/config", "service_program=sleeper\nif then\n");
    let out = run_command(&mut command(&pp, &["stop", "web"]));
    out.no_panic();
    assert_dies(pid, "web after stop");
}

//! sub-conf (SPEC §5), end to end with the real binary: template search order, `__NAME__`
//! and `${NAME}` substitution from the service's environment, output under var/ with the
//! template's mode written atomically, rendering before start and before a SIGHUP
//! reload, `servicectl sub-conf` on its own, byte-exact binary / CRLF / long-line
//! templates, and every kind of bad input (clear message, non-zero exit, no panic,
//! nothing written).

use crate::common::*;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

/// A service `app` (program: envdump) rendering the given templates.
fn app(pen: &Playpen, files: &str, extra: &str) {
    pen.envdump_program();
    pen.ext_service(
        "app",
        &format!(
            "service_program=envdump\nservice_flags=app\n\
             service_config_files=\"{files}\"\n\
             service_required_envars=\"APP_PORT\"\n\
             envar_APP_PORT_type=port\n\
             envar_APP_PORT_description=\"app port\"\n\
             APP_PORT_OFFSET=7\n\
             {extra}\n"
        ),
    );
}

#[test]
fn template_search_order_is_local_then_project_then_ext() {
    let pen = Playpen::new();
    let prefix = pen.reserve_ports(&[7]);
    app(&pen, "etc/app/app.conf", "");
    pen.role_config(&format!("playpen_services=app\nPORT_PREFIX={prefix}\n"));
    let port = prefix + 7;
    let target = "var/etc/app/app.conf";

    pen.write("ext/etc/app/app.conf", "from=ext port=__APP_PORT__\n");
    let out = pen.run(&["sub-conf", "--service", "app"]);
    out.ok()
        .out_says(&[&pen.path(target).display().to_string()]);
    assert_eq!(pen.read(target), format!("from=ext port={port}\n"));

    pen.write("etc/app/app.conf", "from=project port=__APP_PORT__\n");
    pen.run(&["sub-conf", "--service", "app"]).ok();
    assert_eq!(pen.read(target), format!("from=project port={port}\n"));

    pen.write("etc/app/app.conf.local", "from=local port=__APP_PORT__\n");
    pen.run(&["sub-conf", "--service", "app"]).ok();
    assert_eq!(pen.read(target), format!("from=local port={port}\n"));

    // start renders the same way (the .local override wins).
    std::fs::remove_file(pen.path(target)).unwrap();
    pen.run(&["start"]).ok();
    assert_eq!(pen.read(target), format!("from=local port={port}\n"));
    pen.run(&["stop"]).ok();

    // Without the override, the project's template again.
    std::fs::remove_file(pen.path("etc/app/app.conf.local")).unwrap();
    pen.run(&["sub-conf", "--service", "app", "etc/app/app.conf"])
        .ok();
    assert_eq!(pen.read(target), format!("from=project port={port}\n"));
    assert!(
        !pen.exists("ext/var") && !pen.exists("var/ext"),
        "output goes to var/PATH only"
    );
}

/// What the app sees: role variables (tricky values), typed variables (the port from
/// PORT_PREFIX), servicectl's own.
const TRICKY: &str = "a 'quoted' \"value\" with $dollar, `ticks`, \\ and ünïcødé\nline two";

#[test]
fn renders_the_service_environment_with_the_template_mode_atomically() {
    let pen = Playpen::new();
    let prefix = pen.reserve_ports(&[7]);
    app(&pen, "etc/app/app.conf share/app/run.sh", "");
    pen.role_config(&format!(
        "playpen_services=app\nPORT_PREFIX={prefix}\nAPP_NOTE='{}'\nAPP_EMPTY=\n",
        TRICKY.replace('\'', r"'\''")
    ));
    pen.write_mode(
        "ext/etc/app/app.conf",
        "port=__APP_PORT__\nnote=__APP_NOTE__\nempty=[__APP_EMPTY__]\n\
         name=__SERVICE_NAME__ version=__SERVICE_VERSION__\n\
         root=__PLAYPEN_ROOT__\nvar=__LOCAL_VAR__\nrun=__LOCAL_RUNVAR__\n\
         pid=__SERVICE_PIDFILE__\nout=__SERVICE_OUTPUT_FILE__\n\
         adjacent=__APP_PORT____SERVICE_NAME__\n\
         separator=______________\n\
         db___SERVICE_NAME__\n",
        0o640,
    );
    pen.write_mode(
        "ext/share/app/run.sh",
        "#!/bin/sh\necho __SERVICE_NAME__ on __APP_PORT__\n",
        0o755,
    );
    // An old rendered file with another mode, held open by a reader.
    pen.write_mode("var/etc/app/app.conf", "old contents\n", 0o600);
    let old = std::fs::File::open(pen.path("var/etc/app/app.conf")).unwrap();
    let old_inode = old.metadata().unwrap().ino();

    let out = pen.run(&["sub-conf", "--service", "app"]);
    out.ok();
    let root = pen.root_str();
    let port = prefix + 7;
    assert_eq!(
        pen.read("var/etc/app/app.conf"),
        format!(
            "port={port}\nnote={TRICKY}\nempty=[]\n\
             name=app version=1.0\n\
             root={root}\nvar={root}/var\nrun={root}/var/run\n\
             pid={root}/var/run/app.pid\nout={root}/var/run/app.output\n\
             adjacent={port}app\n\
             separator=______________\n\
             db_app\n"
        )
    );
    assert_eq!(
        pen.read("var/share/app/run.sh"),
        format!("#!/bin/sh\necho app on {port}\n")
    );
    assert_eq!(mode_of(&pen.path("var/etc/app/app.conf")), 0o640);
    assert_eq!(mode_of(&pen.path("var/share/app/run.sh")), 0o755);

    // Atomic: a new file was renamed into place; the reader still has the old one whole.
    let new_inode = std::fs::metadata(pen.path("var/etc/app/app.conf"))
        .unwrap()
        .ino();
    assert_ne!(old_inode, new_inode, "the file was rewritten in place");
    let mut still = String::new();
    std::io::Read::read_to_string(&mut &old, &mut still).unwrap();
    assert_eq!(still, "old contents\n");
    for dir in ["var/etc/app", "var/share/app"] {
        assert!(
            temporaries_in(&pen.path(dir)).is_empty(),
            "temporary files left in {dir}"
        );
    }

    // The rendered script runs.
    let script = std::process::Command::new(pen.path("var/share/app/run.sh"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&script.stdout),
        format!("app on {port}\n")
    );
}

#[test]
fn an_unset_placeholder_names_file_line_and_variable_and_nothing_is_written() {
    let pen = Playpen::new();
    let prefix = pen.reserve_ports(&[7]);
    app(
        &pen,
        "etc/good.conf etc/bad.conf",
        "service_pre_start='touch \"$LOCAL_VAR/hook-ran\"'\n\
         # Unless the role config exports it, APP_PLAIN is a plain (unexported) sh\n\
         # variable of the fragment, which is not part of the service's environment.\n\
         APP_PLAIN=${APP_PLAIN:-plain}",
    );
    pen.write("ext/etc/good.conf", "port=__APP_PORT__\n");
    let bad = pen.write(
        "ext/etc/bad.conf",
        "# line 1\nport=__APP_PORT__\nhost=__APP_HOST__\n\n\
         again=__APP_HOST__ plain=__APP_PLAIN__\n",
    );
    // First a good render (APP_HOST and APP_PLAIN set in the role config)…
    pen.role_config(&format!(
        "playpen_services=app\nPORT_PREFIX={prefix}\nAPP_HOST=localhost\nAPP_PLAIN=exported\n"
    ));
    pen.run(&["sub-conf", "--service", "app"]).ok();
    let good_before = pen.read_bytes("var/etc/good.conf");
    let bad_before = pen.read_bytes("var/etc/bad.conf");
    assert_eq!(
        String::from_utf8_lossy(&bad_before),
        format!(
            "# line 1\nport={}\nhost=localhost\n\nagain=localhost plain=exported\n",
            prefix + 7
        )
    );

    // …then without them, and with a changed good template.
    pen.role_config(&format!("playpen_services=app\nPORT_PREFIX={prefix}\n"));
    pen.write("ext/etc/good.conf", "changed port=__APP_PORT__\n");
    let out = pen.run(&["sub-conf", "--service", "app"]);
    out.fails();
    let bad_path = bad.display().to_string();
    let line = out
        .stderr
        .lines()
        .find(|l| l.contains(&bad_path))
        .unwrap_or_else(|| panic!("the template is not named:\n{out}"));
    for want in ["app: ", "APP_HOST", "lines 3, 5", "APP_PLAIN", "line 5"] {
        assert!(line.contains(want), "{want:?} missing:\n{out}");
    }
    assert_eq!(
        pen.read_bytes("var/etc/bad.conf"),
        bad_before,
        "the failed template's output must stay as it was"
    );
    assert_eq!(
        pen.read_bytes("var/etc/good.conf"),
        good_before,
        "nothing is written when any template of the service fails"
    );
    assert!(temporaries_in(&pen.path("var/etc")).is_empty());

    // start fails the same way, before the hook and the program.
    std::fs::remove_file(pen.path("var/etc/bad.conf")).unwrap();
    let out = pen.run(&["start"]);
    out.fails()
        .err_says(&["app: ", &bad_path, "APP_HOST", "line"]);
    assert!(!pen.exists("var/etc/bad.conf"));
    assert!(!pen.exists("var/hook-ran"), "pre-start ran:\n{out}");
    assert!(pen.pid("app").is_none());
    assert!(pen.processes().is_empty());

    // `check` finds it without writing anything.
    let check = pen.run(&["check", "app"]);
    check.fails();
    assert!(
        check.stdout.contains("APP_HOST") || check.stderr.contains("APP_HOST"),
        "{check}"
    );
    assert!(!pen.exists("var/etc/bad.conf"));
}

#[test]
fn envsubst_style_templates_use_braces() {
    let pen = Playpen::new();
    let prefix = pen.reserve_ports(&[7]);
    app(&pen, "etc/app.env", "service_config_style=envsubst");
    pen.role_config(&format!(
        "playpen_services=app\nPORT_PREFIX={prefix}\nAPP_VALUE='has ${{braces}} and __under__'\n"
    ));
    pen.write(
        "ext/etc/app.env",
        "port=${APP_PORT}\nvalue=${APP_VALUE}\nleft=__APP_PORT__ $APP_PORT ${not a name} $${\nend\n",
    );
    pen.run(&["sub-conf", "--service", "app"]).ok();
    assert_eq!(
        pen.read("var/etc/app.env"),
        format!(
            "port={}\nvalue=has ${{braces}} and __under__\nleft=__APP_PORT__ $APP_PORT ${{not a name}} $${{\nend\n",
            prefix + 7
        )
    );

    pen.write("ext/etc/app.env", "one\ntwo=${APP_NOPE}\n");
    let out = pen.run(&["sub-conf", "--service", "app"]);
    out.fails().err_says(&["${APP_NOPE}", "line 2", "app.env"]);
    assert!(pen.read("var/etc/app.env").starts_with("port="));

    // An unknown style is an error naming it.
    app(&pen, "etc/app.env", "service_config_style=jinja");
    pen.run(&["sub-conf", "--service", "app"])
        .fails()
        .err_says(&["app: ", "service_config_style", "\"jinja\""]);
}

/// A program that copies its rendered config when it gets SIGHUP, so the test sees what
/// the file held when the signal arrived.
const HUP_PROGRAM: &str = "#!/bin/sh\n\
conf=\"$LOCAL_VAR/etc/greet.conf\"\n\
n=0\n\
trap 'n=$((n + 1)); cp \"$conf\" \"$LOCAL_VAR/.seen.tmp\" && mv \"$LOCAL_VAR/.seen.tmp\" \"$LOCAL_VAR/seen-at-hup-$n\"' HUP\n\
cp \"$conf\" \"$LOCAL_VAR/seen-at-start\"\n\
while :; do sleep 1 & wait $!; done\n";

#[test]
fn restart_with_service_hup_rerenders_before_the_signal() {
    let pen = Playpen::new();
    pen.write_exec("ext/bin/greeter", HUP_PROGRAM);
    pen.ext_service(
        "greeter",
        "service_program=greeter\n\
         service_hup=1\n\
         service_config_files=etc/greet.conf\n\
         service_pre_start='printf %s \"$GREETING\" > \"$LOCAL_VAR/hook-saw\"'\n",
    );
    pen.write("etc/greet.conf", "greeting=__GREETING__\n");
    pen.role_config("playpen_services=greeter\nGREETING=first\n");
    pen.run(&["start"]).ok();
    let pid = pen.pid("greeter").expect("a pidfile");
    assert_eq!(pen.wait_file("var/seen-at-start", 10), b"greeting=first\n");

    pen.role_config("playpen_services=greeter\nGREETING='second one'\n");
    let out = pen.run(&["restart"]);
    out.ok();
    assert_eq!(pen.read("var/etc/greet.conf"), "greeting=second one\n");
    assert_eq!(
        pen.wait_file("var/seen-at-hup-1", 10),
        b"greeting=second one\n",
        "the file must be re-rendered before the SIGHUP"
    );
    assert_eq!(
        pen.pid("greeter"),
        Some(pid),
        "a HUP restart keeps the process:\n{out}"
    );
    assert!(alive(pid));
    assert_eq!(
        pen.read("var/hook-saw"),
        "second one",
        "pre-start runs around the HUP"
    );

    // A template that no longer renders stops the reload: no signal, old file kept.
    pen.write("etc/greet.conf", "greeting=__GREETING__ __MISSING__\n");
    let out = pen.run(&["restart"]);
    out.fails()
        .err_says(&["greeter: ", "MISSING", "greet.conf", "line 1"]);
    assert_eq!(pen.read("var/etc/greet.conf"), "greeting=second one\n");
    assert!(
        !wait_until(Duration::from_millis(1500), || pen
            .exists("var/seen-at-hup-2")),
        "the process got a SIGHUP although rendering failed"
    );
    assert_eq!(pen.pid("greeter"), Some(pid));
    assert!(alive(pid));
}

#[test]
fn restart_without_hup_rerenders_on_the_new_start() {
    let pen = Playpen::new();
    pen.envdump_program();
    pen.ext_service(
        "plain",
        "service_program=envdump\nservice_flags=plain\nservice_config_files=etc/plain.conf\n",
    );
    pen.write("etc/plain.conf", "v=__PLAIN_V__\n");
    pen.role_config("playpen_services=plain\nPLAIN_V=1\n");
    pen.run(&["start"]).ok();
    let first = pen.pid("plain").unwrap();
    assert_eq!(pen.read("var/etc/plain.conf"), "v=1\n");
    pen.role_config("playpen_services=plain\nPLAIN_V=2\n");
    pen.run(&["restart"]).ok();
    assert_eq!(pen.read("var/etc/plain.conf"), "v=2\n");
    let second = pen.pid("plain").unwrap();
    assert_ne!(first, second);
    assert!(wait_until(Duration::from_secs(10), || {
        pen.exists("var/plain.env")
            && parse_env0(&pen.read_bytes("var/plain.env"))
                .get("PLAIN_V")
                .map(String::as_str)
                == Some("2")
    }));
}

#[test]
fn sub_conf_on_its_own_uses_the_playpen_environment() {
    let pen = Playpen::new();
    pen.role_config("playpen_services=\"\"\nSITE_NAME='my site'\nPORT_PREFIX=21000\n");
    pen.write(
        "etc/site/site.conf",
        "name=__SITE_NAME__ prefix=__PORT_PREFIX__\n",
    );
    pen.write_mode("etc/site/other.conf", "root=__PLAYPEN_ROOT__\n", 0o600);
    let out = pen.run(&["sub-conf", "etc/site/site.conf", "etc/site/other.conf"]);
    out.ok()
        .out_says(&["var/etc/site/site.conf", "var/etc/site/other.conf"]);
    assert_eq!(
        pen.read("var/etc/site/site.conf"),
        "name=my site prefix=21000\n"
    );
    assert_eq!(
        pen.read("var/etc/site/other.conf"),
        format!("root={}\n", pen.root_str())
    );
    assert_eq!(mode_of(&pen.path("var/etc/site/other.conf")), 0o600);

    let json = pen.run(&["--json", "sub-conf", "etc/site/site.conf"]);
    json.ok();
    let listed = json.json();
    assert!(
        listed.as_array().is_some_and(|a| a.len() == 1
            && a[0]
                .as_str()
                .is_some_and(|p| p.ends_with("var/etc/site/site.conf"))),
        "{json}"
    );

    // No files named: a usage error, not a panic.
    pen.run(&["sub-conf"]).fails();
    // An unknown service.
    pen.run(&["sub-conf", "--service", "nosuch", "etc/site/site.conf"])
        .fails()
        .err_says(&["nosuch"]);
}

/// Render `template` with KEY=k through the real binary and compare with `expected`.
fn render_bytes_exact(pen: &Playpen, name: &str, template: &[u8], expected: &[u8]) {
    let rel = format!("etc/bytes/{name}");
    pen.write_bytes(&rel, template);
    pen.run(&["sub-conf", &rel]).ok();
    let got = pen.read_bytes(&format!("var/{rel}"));
    assert!(
        got == expected,
        "{name}: output differs (got {} bytes, expected {}); first difference at byte {:?}",
        got.len(),
        expected.len(),
        got.iter().zip(expected).position(|(a, b)| a != b)
    );
}

#[test]
fn binary_crlf_and_very_long_lines_are_byte_exact() {
    let pen = Playpen::new();
    pen.role_config("playpen_services=\"\"\nKEY=k\nLONG_VALUE=value\n");

    // Every byte value, invalid UTF-8 around placeholders, NULs.
    let mut binary: Vec<u8> = (0..=255u8).collect();
    binary.extend_from_slice(b"\xff__KEY__\x00\xc3__KEY__\x80__ __\xfe");
    let mut expected: Vec<u8> = (0..=255u8).collect();
    expected.extend_from_slice(b"\xffk\x00\xc3k\x80__ __\xfe");
    render_bytes_exact(&pen, "blob.bin", &binary, &expected);

    // CRLF line endings, a lone CR, no final newline.
    render_bytes_exact(
        &pen,
        "dos.ini",
        b"[s]\r\nkey=__KEY__\r\nlone\rcr=__KEY__\r\n\r\nend=__KEY__",
        b"[s]\r\nkey=k\r\nlone\rcr=k\r\n\r\nend=k",
    );

    // A 4 MiB line with placeholders at its start, middle and end.
    let filler = vec![b'x'; 2 * 1024 * 1024];
    let mut long = b"__LONG_VALUE__".to_vec();
    long.extend_from_slice(&filler);
    long.extend_from_slice(b"__KEY__");
    long.extend_from_slice(&filler);
    long.extend_from_slice(b"__LONG_VALUE__\n");
    let mut want = b"value".to_vec();
    want.extend_from_slice(&filler);
    want.push(b'k');
    want.extend_from_slice(&filler);
    want.extend_from_slice(b"value\n");
    render_bytes_exact(&pen, "long.txt", &long, &want);

    // An unset placeholder far into a long line is reported on the right line.
    let mut bad = b"first\r\nsecond\r\n".to_vec();
    bad.extend_from_slice(&filler);
    bad.extend_from_slice(b"__NOT_SET_ANYWHERE__\r\n");
    pen.write_bytes("etc/bytes/bad.txt", &bad);
    pen.run(&["sub-conf", "etc/bytes/bad.txt"])
        .fails()
        .err_says(&["bad.txt", "NOT_SET_ANYWHERE", "line 3"]);
    assert!(!pen.exists("var/etc/bytes/bad.txt"));
}

#[test]
fn bad_templates_and_targets_are_clear_errors_and_write_nothing() {
    let pen = Playpen::new();
    pen.role_config("playpen_services=\"\"\nKEY=k\n");

    // Missing in all three places: all three named.
    let out = pen.run(&["sub-conf", "etc/none/missing.conf"]);
    out.fails().err_says(&[
        &format!("{}/etc/none/missing.conf.local", pen.root_str()),
        &format!("{}/etc/none/missing.conf,", pen.root_str()),
        &format!("{}/ext/etc/none/missing.conf", pen.root_str()),
    ]);
    assert!(!pen.exists("var/etc/none"));

    // A directory where the template should be.
    std::fs::create_dir_all(pen.path("etc/dir.conf")).unwrap();
    pen.run(&["sub-conf", "etc/dir.conf"])
        .fails()
        .err_says(&[&pen.path("etc/dir.conf").display().to_string(), "directory"]);
    assert!(!pen.exists("var/etc/dir.conf"));

    // A dangling symlink: it hides the ext/ template, and is reported, not skipped.
    // (The tests run as root, for whom chmod 000 does not make a file unreadable; a
    // directory and a dangling symlink are the unreadable templates root meets.)
    pen.write("ext/etc/link.conf", "fallback=__KEY__\n");
    std::os::unix::fs::symlink(pen.path("nowhere/target"), pen.path("etc/link.conf")).unwrap();
    pen.run(&["sub-conf", "etc/link.conf"])
        .fails()
        .err_says(&[&pen.path("etc/link.conf").display().to_string()]);
    assert!(!pen.exists("var/etc/link.conf"));
    if !nix::unistd::geteuid().is_root() {
        pen.write_mode("etc/secret.conf", "s=__KEY__\n", 0o000);
        pen.run(&["sub-conf", "etc/secret.conf"])
            .fails()
            .err_says(&["secret.conf", "ermission"]);
        assert!(!pen.exists("var/etc/secret.conf"));
    }

    // A FIFO where the template should be: an error, not a hang waiting for a writer.
    nix::unistd::mkfifo(
        &pen.path("etc/pipe.conf"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    pen.run_timeout(&["sub-conf", "etc/pipe.conf"], 10)
        .fails()
        .err_says(&[
            &pen.path("etc/pipe.conf").display().to_string(),
            "not a regular file",
        ]);
    assert!(!pen.exists("var/etc/pipe.conf"));

    // Paths that leave the playpen.
    pen.run(&["sub-conf", "../outside.conf"])
        .fails()
        .err_says(&["..", "outside.conf"]);
    pen.run(&["sub-conf", "/etc/hostname"])
        .fails()
        .err_says(&["/etc/hostname", "absolute"]);

    // var/etc is a regular file: the target directory cannot be made.
    pen.write("etc/ok.conf", "ok=__KEY__\n");
    pen.write("var/etc", "I am a file\n");
    let out = pen.run(&["sub-conf", "etc/ok.conf"]);
    out.fails().err_says(&[
        &pen.path("var/etc").display().to_string(),
        "not a directory",
    ]);
    assert_eq!(
        pen.read("var/etc"),
        "I am a file\n",
        "var/etc must be left alone"
    );
    assert!(temporaries_in(&pen.path("var")).is_empty());

    // And for a service at start: the same error, no pidfile, no process.
    pen.envdump_program();
    pen.ext_service(
        "app",
        "service_program=envdump\nservice_flags=app\nservice_config_files=etc/ok.conf\n",
    );
    pen.role_config("playpen_services=app\nKEY=k\n");
    let out = pen.run(&["start"]);
    out.fails()
        .err_says(&["app: ", &pen.path("var/etc").display().to_string()]);
    assert!(pen.pid("app").is_none());
    assert!(pen.processes().is_empty());

    // A missing template of a service stops its start too.
    std::fs::remove_file(pen.path("var/etc")).unwrap();
    pen.ext_service(
        "app",
        "service_program=envdump\nservice_flags=app\nservice_config_files=\"etc/ok.conf etc/gone.conf\"\n",
    );
    let out = pen.run(&["start"]);
    out.fails().err_says(&["app: ", "gone.conf"]);
    assert!(
        !pen.exists("var/etc/ok.conf"),
        "ok.conf must not be written either"
    );
    assert!(pen.pid("app").is_none());
}

use super::*;
use std::fs;

fn playpen() -> (tempfile::TempDir, Playpen) {
    let dir = tempfile::tempdir().expect("temp dir");
    let playpen = Playpen {
        root: dir.path().to_path_buf(),
    };
    (dir, playpen)
}

fn write(path: &Path, contents: &[u8], mode: u32) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, contents).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn vars(pairs: &[(&str, &str)]) -> Env {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.into()))
        .collect()
}

fn render_str(template: &str, pairs: &[(&str, &str)], style: Style) -> Result<String> {
    render_bytes(
        template.as_bytes(),
        &vars(pairs),
        style,
        Path::new("t.conf"),
    )
    .map(|b| String::from_utf8(b).unwrap())
}

fn mode_of(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn renders_into_local_var_with_the_template_mode() {
    let (_dir, pp) = playpen();
    write(
        &pp.ext().join("etc/httpd/httpd.conf"),
        b"Listen __WEB_PORT__\nServerName __HOST__:__WEB_PORT__\n",
        0o640,
    );
    write(
        &pp.ext().join("bin/run.sh"),
        b"#!/bin/sh\nexec __PROG__\n",
        0o755,
    );
    let v = vars(&[
        ("WEB_PORT", "8080"),
        ("HOST", "example.org"),
        ("PROG", "/bin/true"),
    ]);
    let out = render(&pp, "etc/httpd/httpd.conf", &v, Style::Underscores).unwrap();
    assert_eq!(out, pp.var().join("etc/httpd/httpd.conf"));
    assert_eq!(
        fs::read_to_string(&out).unwrap(),
        "Listen 8080\nServerName example.org:8080\n"
    );
    assert_eq!(mode_of(&out), 0o640);
    let script = render(&pp, "./bin/run.sh", &v, Style::Underscores).unwrap();
    assert_eq!(script, pp.var().join("bin/run.sh"));
    assert_eq!(mode_of(&script), 0o755);
    // Rendering again replaces the file, even a read-only one.
    fs::set_permissions(&out, fs::Permissions::from_mode(0o444)).unwrap();
    let v2 = vars(&[("WEB_PORT", "9090"), ("HOST", "h")]);
    render(&pp, "etc/httpd/httpd.conf", &v2, Style::Underscores).unwrap();
    assert_eq!(
        fs::read_to_string(&out).unwrap(),
        "Listen 9090\nServerName h:9090\n"
    );
    assert_eq!(mode_of(&out), 0o640);
}

#[test]
fn local_override_then_project_then_ext() {
    let (_dir, pp) = playpen();
    let rel = "etc/app.conf";
    let v = vars(&[]);
    write(&pp.ext().join(rel), b"ext", 0o644);
    assert_eq!(find_template(&pp, rel).unwrap(), pp.ext().join(rel));
    write(&pp.root.join(rel), b"project", 0o644);
    assert_eq!(find_template(&pp, rel).unwrap(), pp.root.join(rel));
    write(&pp.root.join("etc/app.conf.local"), b"local", 0o600);
    assert_eq!(
        find_template(&pp, rel).unwrap(),
        pp.root.join("etc/app.conf.local")
    );
    let out = render(&pp, rel, &v, Style::Underscores).unwrap();
    assert_eq!(fs::read(&out).unwrap(), b"local");
    assert_eq!(mode_of(&out), 0o600);
}

#[test]
fn a_broken_override_is_not_skipped() {
    let (_dir, pp) = playpen();
    write(&pp.root.join("etc/app.conf"), b"project", 0o644);
    std::os::unix::fs::symlink("/nonexistent/x", pp.root.join("etc/app.conf.local")).unwrap();
    let err = render(&pp, "etc/app.conf", &vars(&[]), Style::Underscores).unwrap_err();
    assert!(err.message.contains("app.conf.local"), "{err}");
    assert!(!pp.var().join("etc/app.conf").exists());
}

#[test]
fn missing_template_names_all_three_places() {
    let (_dir, pp) = playpen();
    let err = find_template(&pp, "etc/none.conf").unwrap_err();
    let root = pp.root.display();
    assert_eq!(
        err.message,
        format!(
            "no template for etc/none.conf: none of {root}/etc/none.conf.local, {root}/etc/none.conf, {root}/ext/etc/none.conf exists"
        )
    );
    assert!(err.hint.unwrap().contains("service_config_files"));
}

#[test]
fn paths_must_stay_inside_the_playpen() {
    let (_dir, pp) = playpen();
    for rel in ["/etc/passwd", "../x.conf", "etc/../../x", "", "."] {
        let err = find_template(&pp, rel).unwrap_err();
        assert_eq!(err.kind, crate::ErrorKind::Config, "{rel}");
    }
    assert!(
        find_template(&pp, "/etc/passwd")
            .unwrap_err()
            .message
            .contains("absolute")
    );
    assert!(
        find_template(&pp, "a/../b")
            .unwrap_err()
            .message
            .contains("..")
    );
}

#[test]
fn a_directory_is_not_a_template() {
    let (_dir, pp) = playpen();
    fs::create_dir_all(pp.root.join("etc/conf.d")).unwrap();
    let err = find_template(&pp, "etc/conf.d").unwrap_err();
    assert!(err.message.ends_with("etc/conf.d is a directory"), "{err}");
}

#[test]
fn unset_variable_names_file_line_and_variable_and_writes_nothing() {
    let (_dir, pp) = playpen();
    let template = pp.ext().join("etc/app.conf");
    write(
        &template,
        b"a = __A__\n\nb = __DB_HOST__\nc = __DB_HOST__ __X__\n",
        0o644,
    );
    let target = pp.var().join("etc/app.conf");
    write(&target, b"old", 0o644);
    let err = render(
        &pp,
        "etc/app.conf",
        &vars(&[("A", "1")]),
        Style::Underscores,
    )
    .unwrap_err();
    assert_eq!(
        err.message,
        format!(
            "cannot render {}: variables DB_HOST, X are not set: __DB_HOST__ (lines 3, 4), __X__ (line 4)",
            template.display()
        )
    );
    assert!(err.hint.unwrap().starts_with("set them in the role config"));
    assert_eq!(fs::read(&target).unwrap(), b"old", "nothing written");

    let err = render_str("x\ny __ONLY__", &[], Style::Underscores).unwrap_err();
    assert_eq!(
        err.message,
        "cannot render t.conf: variable ONLY is not set: __ONLY__ (line 2)"
    );
}

#[test]
fn many_unset_occurrences_are_summarised() {
    let template = "__A__\n".repeat(8);
    let err = render_str(&template, &[], Style::Underscores).unwrap_err();
    assert!(
        err.message.ends_with("__A__ (lines 1, 2, 3, 4, 5, …)"),
        "{}",
        err.message
    );
}

#[test]
fn underscore_placeholder_rules() {
    let r = |t: &str| {
        render_str(
            t,
            &[("A", "1"), ("B", "2"), ("A_B", "3"), ("_C", "4"), ("E", "")],
            Style::Underscores,
        )
    };
    assert_eq!(r("__A____B__").unwrap(), "12", "adjacent placeholders");
    assert_eq!(r("__A_B__").unwrap(), "3");
    assert_eq!(r("x__A__y").unwrap(), "x1y");
    assert_eq!(r("___C__").unwrap(), "4", "a name may start with _");
    assert_eq!(
        r("db___A__").unwrap(),
        "db_1",
        "a literal _ before a placeholder"
    );
    assert_eq!(r("db____A__").unwrap(), "db__1");
    assert_eq!(r("____C__").unwrap(), "_4", "the longest set name wins");
    assert!(
        r("x___1__")
            .unwrap_err()
            .message
            .contains("variable _1 is not set: ___1__")
    );
    assert_eq!(
        r("x___Q__").unwrap_err().message,
        "cannot render t.conf: variable Q is not set: __Q__ (line 1)"
    );
    assert_eq!(r("__A___").unwrap(), "1_", "the name ends at the first __");
    assert_eq!(r("[__E__]").unwrap(), "[]", "set but empty");
    for literal in [
        "________", "__", "_A_", "__1__", "__ A__", "__A", "A__", "__-__", "__é__",
    ] {
        assert_eq!(
            r(literal).unwrap(),
            literal,
            "{literal:?} is not a placeholder"
        );
    }
    assert!(
        r("def __init__(self):")
            .unwrap_err()
            .message
            .contains("__init__ (line 1)")
    );
}

#[test]
fn values_are_inserted_verbatim() {
    let tricky = "a $B ${C} __D__ \\ 'q' \"dq\"\nnew line ü";
    assert_eq!(
        render_str(
            "v=__V__;",
            &[("V", tricky), ("D", "no")],
            Style::Underscores
        )
        .unwrap(),
        format!("v={tricky};"),
        "no re-substitution of values"
    );
    assert_eq!(
        render_str("v=${V};", &[("V", tricky)], Style::Envsubst).unwrap(),
        format!("v={tricky};")
    );
}

#[test]
fn envsubst_style() {
    let pairs = [("HOST", "h"), ("PORT", "80"), ("EMPTY", "")];
    assert_eq!(
        render_str(
            "${HOST}:${PORT}${EMPTY} $HOST ${ x} ${} $${PORT} __HOST__",
            &pairs,
            Style::Envsubst
        )
        .unwrap(),
        "h:80 $HOST ${ x} ${} $80 __HOST__"
    );
    assert!(
        render_str("${_HOST}", &pairs, Style::Envsubst).is_err(),
        "braces delimit the name exactly"
    );
    let err = render_str("ok\r\nbad ${NOPE}\r\n", &pairs, Style::Envsubst).unwrap_err();
    assert_eq!(
        err.message,
        "cannot render t.conf: variable NOPE is not set: ${NOPE} (line 2)"
    );
}

#[test]
fn binary_content_is_preserved() {
    let (_dir, pp) = playpen();
    let mut template: Vec<u8> = (0..=255u8).collect();
    template.extend_from_slice(b"__KEY__");
    template.extend_from_slice(&[0, 0xff, 0xfe, b'_', b'_', 0x80, b'_', b'_', 0xc3]);
    template.extend_from_slice(b"${KEY}__KEY__");
    write(&pp.ext().join("data/blob.bin"), &template, 0o644);
    let v = vars(&[("KEY", "k")]);
    let out = render(&pp, "data/blob.bin", &v, Style::Underscores).unwrap();
    let mut expected: Vec<u8> = (0..=255u8).collect();
    expected.extend_from_slice(b"k");
    expected.extend_from_slice(&[0, 0xff, 0xfe, b'_', b'_', 0x80, b'_', b'_', 0xc3]);
    expected.extend_from_slice(b"${KEY}k");
    assert_eq!(fs::read(out).unwrap(), expected);
    let env = render_bytes(&template, &v, Style::Envsubst, Path::new("b")).unwrap();
    assert!(env.ends_with(b"k__KEY__"));
    assert_eq!(env.len(), template.len() - "${KEY}".len() + 1);
}

#[test]
fn crlf_is_preserved_and_lines_still_counted() {
    let out = render_str(
        "a=__A__\r\nb=__B__\r\n",
        &[("A", "1"), ("B", "2")],
        Style::Underscores,
    )
    .unwrap();
    assert_eq!(out, "a=1\r\nb=2\r\n");
    let err = render_str("a\r\nb\r\n\r\n__Z__\r\n", &[], Style::Underscores).unwrap_err();
    assert!(err.message.ends_with("__Z__ (line 4)"), "{}", err.message);
}

#[test]
fn a_ten_megabyte_line() {
    let (_dir, pp) = playpen();
    let mut template = vec![b'x'; 10 * 1024 * 1024];
    template.extend_from_slice(b"__V__");
    template.extend(std::iter::repeat_n(b'_', 1024 * 1024));
    write(&pp.ext().join("big.txt"), &template, 0o644);
    let out = render(&pp, "big.txt", &vars(&[("V", "value")]), Style::Underscores).unwrap();
    let rendered = fs::read(out).unwrap();
    assert_eq!(rendered.len(), template.len() - 5 + 5);
    assert_eq!(&rendered[10 * 1024 * 1024..10 * 1024 * 1024 + 5], b"value");
    assert!(!rendered.contains(&b'\n'));
}

#[test]
fn a_file_in_the_way_of_the_target_directory() {
    let (_dir, pp) = playpen();
    write(&pp.ext().join("etc/nginx/site.conf"), b"x", 0o644);
    write(&pp.var().join("etc"), b"I am a file", 0o644);
    let err = render(&pp, "etc/nginx/site.conf", &vars(&[]), Style::Underscores).unwrap_err();
    assert_eq!(
        err.message,
        format!(
            "cannot write {}: {} is not a directory",
            pp.var().join("etc/nginx/site.conf").display(),
            pp.var().join("etc").display()
        )
    );
    assert!(
        err.hint
            .unwrap()
            .contains(&pp.var().join("etc").display().to_string())
    );
}

#[test]
fn a_directory_at_the_target() {
    let (_dir, pp) = playpen();
    write(&pp.ext().join("etc/app.conf"), b"x", 0o644);
    fs::create_dir_all(pp.var().join("etc/app.conf")).unwrap();
    let err = render(&pp, "etc/app.conf", &vars(&[]), Style::Underscores).unwrap_err();
    assert!(
        err.message.ends_with("app.conf: it is a directory"),
        "{err}"
    );
}

#[test]
fn an_unreadable_template_is_a_clear_error() {
    if nix::unistd::geteuid().is_root() {
        return; // root reads anything
    }
    let (_dir, pp) = playpen();
    let template = pp.ext().join("etc/secret.conf");
    write(&template, b"x", 0o000);
    let err = render(&pp, "etc/secret.conf", &vars(&[]), Style::Underscores).unwrap_err();
    assert_eq!(err.kind, crate::ErrorKind::Io);
    assert!(
        err.message
            .starts_with(&format!("cannot read the template {}", template.display()))
    );
    assert!(err.hint.is_some());
}

#[test]
fn render_all_writes_nothing_unless_everything_renders() {
    let (_dir, pp) = playpen();
    write(&pp.ext().join("a.conf"), b"a=__A__\n", 0o644);
    write(&pp.ext().join("b.conf"), b"b=__B__\n", 0o644);
    write(&pp.ext().join("c.conf"), b"c=__C__\n", 0o644);
    let rels = ["a.conf", "b.conf", "c.conf", "d.conf"];
    let v = vars(&[("A", "1")]);
    let err = render_all(&pp, &rels, &v, Style::Underscores).unwrap_err();
    assert!(
        err.message
            .starts_with("3 templates cannot be rendered:\n  cannot render"),
        "{err}"
    );
    assert!(err.message.contains("no template for d.conf"));
    assert!(!pp.var().join("a.conf").exists());
    assert!(check_all(&pp, &rels[..1], &v, Style::Underscores).is_ok());
    assert!(
        !pp.var().join("a.conf").exists(),
        "check_all writes nothing"
    );
    let single = check_all(&pp, &rels[..2], &v, Style::Underscores).unwrap_err();
    assert!(
        single.message.starts_with("cannot render"),
        "one error stays as it is"
    );
    let v = vars(&[("A", "1"), ("B", "2"), ("C", "3")]);
    let written = render_all(&pp, &rels[..3], &v, Style::Underscores).unwrap();
    assert_eq!(written.len(), 3);
    assert_eq!(fs::read_to_string(&written[2]).unwrap(), "c=3\n");
}

//! `servicectl edit NAME` (§13.3): the editor works on a copy; the project's fragment is
//! replaced only when the service passes its check, a bad edit is kept in
//! var/servicectl/edit/NAME.config for `--recover` or `--discard`, and `--restart`
//! restarts the service after a good edit. The editor is a real program: a script
//! that copies the file named by $NEXT_EDIT over the file it is given.

use crate::common::*;

const GOOD: &str =
    "service_program=sleeper\nservice_run_name=web\nservice_flags=3600\nexport GREETING=hello\n";
const BAD: &str = "service_program=sleeper\nservice_flags=3600\nservice_halt_timeout=soon\n";

/// A playpen with the service `web` (a sleeper) and the editor script bin/editor.
fn edited_playpen() -> Playpen {
    let pp = Playpen::with_services(&["web"]);
    pp.sleeper_service("web", "");
    pp.write_exec("bin/editor", "#!/bin/sh\ncat \"$NEXT_EDIT\" > \"$1\"\n");
    pp
}

/// `servicectl edit ARGS…` with the editor writing `text`.
fn edit(pp: &Playpen, args: &[&str], text: &str) -> Out {
    let next = pp.write("next-edit", text);
    let editor = pp.path("bin/editor").display().to_string();
    let mut all = vec!["edit"];
    all.extend_from_slice(args);
    pp.run_env(
        &all,
        &[
            ("EDITOR", editor.as_str()),
            ("NEXT_EDIT", &next.display().to_string()),
        ],
    )
}

#[test]
fn a_good_edit_is_installed_a_bad_one_is_kept_and_the_file_stays() {
    let pp = edited_playpen();
    let out = edit(&pp, &["web"], GOOD);
    out.ok();
    assert_golden(
        &pp,
        "edit web (good)",
        &out.all(),
        "web: checked and installed {ROOT}/services/web/config\napply it with: servicectl restart web\n\n",
    );
    assert_eq!(pp.read("services/web/config"), GOOD);
    assert!(!pp.exists("var/servicectl/edit/web.config"));

    let out = edit(&pp, &["web"], BAD);
    out.code_is(1);
    assert_golden(
        &pp,
        "edit web (bad)",
        &out.stdout,
        "web: problem: service_halt_timeout=\"soon\" (set in {ROOT}/var/servicectl/edit/web.config): must be a number of seconds, 0 or more (fractions allowed, such as 2.5) — fix the setting in the service's config\n",
    );
    assert_golden(
        &pp,
        "edit web (bad, stderr)",
        &out.stderr,
        "servicectl: web: the edit did not pass its check; {ROOT}/services/web/config is unchanged and the edit is kept in {ROOT}/var/servicectl/edit/web.config — fix it with `servicectl edit web --recover`, or drop it with `servicectl edit web --discard`\n",
    );
    assert_eq!(
        pp.read("services/web/config"),
        GOOD,
        "a bad edit never changes the file"
    );
    assert_eq!(pp.read("var/servicectl/edit/web.config"), BAD);

    // The kept copy is not lost to a plain edit.
    let out = edit(&pp, &["web"], GOOD);
    out.code_is(1);
    assert_golden(
        &pp,
        "edit web (kept)",
        &out.stderr,
        "servicectl: web: an edit of {ROOT}/services/web/config that did not pass its check is kept in {ROOT}/var/servicectl/edit/web.config — reopen it with `servicectl edit web --recover`, or drop it with `servicectl edit web --discard`\n",
    );
    assert_eq!(pp.read("var/servicectl/edit/web.config"), BAD);

    // --recover reopens the kept copy (the editor sees it) and installs the fix.
    pp.write_exec(
        "bin/editor",
        "#!/bin/sh\ncp \"$1\" \"$NEXT_EDIT.seen\"\ncat \"$NEXT_EDIT\" > \"$1\"\n",
    );
    let fixed = format!("{GOOD}MORE=1\n");
    let out = edit(&pp, &["web", "--recover"], &fixed);
    out.ok();
    assert_eq!(
        pp.read("next-edit.seen"),
        BAD,
        "--recover opens the kept copy"
    );
    assert_eq!(pp.read("services/web/config"), fixed);
    assert!(!pp.exists("var/servicectl/edit/web.config"));
}

#[test]
fn discard_drops_the_kept_edit_and_is_safe_to_repeat() {
    let pp = edited_playpen();
    let before = pp.read("services/web/config");
    edit(&pp, &["web"], BAD).code_is(1);
    assert!(pp.exists("var/servicectl/edit/web.config"));
    let out = pp.run(&["edit", "web", "--discard"]);
    out.ok();
    assert_golden(
        &pp,
        "edit --discard",
        &out.all(),
        "web: dropped the kept edit; {ROOT}/services/web/config is as it was\n\n",
    );
    assert!(!pp.exists("var/servicectl/edit/web.config"));
    assert_eq!(pp.read("services/web/config"), before);
    let out = pp.run(&["edit", "web", "--discard", "--json"]);
    out.ok();
    assert_golden(
        &pp,
        "edit --discard again --json",
        &out.stdout,
        r#"{
  "created": false,
  "editor": null,
  "file": "{ROOT}/services/web/config",
  "kept": null,
  "problems": [],
  "result": "nothing-to-discard",
  "service": "web",
  "warnings": []
}
"#,
    );
    let out = pp.run(&["edit", "web", "--recover"]);
    out.code_is(1);
    assert_golden(
        &pp,
        "edit --recover with nothing kept",
        &out.stderr,
        "servicectl: web: there is no kept edit to recover ({ROOT}/var/servicectl/edit/web.config does not exist) — `servicectl edit web` edits {ROOT}/services/web/config\n",
    );
}

#[test]
fn the_first_edit_starts_from_the_packages_fragment() {
    let pp = Playpen::with_services(&["web"]);
    pp.install_sleep("bin/sleeper");
    let package = "service_program=sleeper\nservice_flags=3600\n";
    pp.package("web", "1.0", package);
    pp.write_exec("bin/editor", "#!/bin/sh\necho 'GREETING=hi' >> \"$1\"\n");
    let out = pp.run_env(
        &["edit", "web"],
        &[("VISUAL", &pp.path("bin/editor").display().to_string())],
    );
    out.ok();
    assert_golden(
        &pp,
        "edit (new file)",
        &out.all(),
        "web: checked and installed {ROOT}/services/web/config (new: it replaces the package's fragment)\napply it with: servicectl restart web\n\n",
    );
    assert_eq!(
        pp.read("services/web/config"),
        format!("{package}GREETING=hi\n")
    );
    assert_eq!(
        pp.read("ext/services/web-1.0/config"),
        package,
        "the package's file is never edited"
    );
}

#[test]
fn an_editor_that_fails_changes_nothing() {
    let pp = edited_playpen();
    let before = pp.read("services/web/config");
    pp.write_exec("bin/editor", "#!/bin/sh\necho junk > \"$1\"\nexit 3\n");
    let out = edit(&pp, &["web"], GOOD);
    out.code_is(1);
    assert_golden(
        &pp,
        "edit (editor fails)",
        &out.stderr,
        "servicectl: web: `{ROOT}/bin/editor` exited with status 3; {ROOT}/services/web/config is unchanged — run `servicectl edit web` again (set $VISUAL or $EDITOR to choose the editor)\n",
    );
    assert_eq!(pp.read("services/web/config"), before);
    assert!(!pp.exists("var/servicectl/edit/web.config"));
    let out = edit(&pp, &["nosuch"], GOOD);
    out.code_is(4);
    assert_golden(
        &pp,
        "edit nosuch",
        &out.stderr,
        "servicectl: nosuch: unknown service (no ext/services/nosuch-VERSION/ and no services/nosuch/config) — known services: web\n",
    );
}

#[test]
fn restart_restarts_the_running_service_after_a_good_edit() {
    let pp = edited_playpen();
    pp.start(&["web"]);
    let old = pp.running_pid("web");
    let out = edit(&pp, &["web", "--restart"], GOOD);
    out.ok();
    assert_golden(
        &pp,
        "edit --restart",
        &out.all(),
        "web: checked and installed {ROOT}/services/web/config\nweb: restarted (pid {PID})\n\n",
    );
    let new = pp.running_pid("web");
    assert_ne!(old, new, "a new process runs the new config");
    assert_eq!(env_of(new, "GREETING").as_deref(), Some("hello"));
    // A bad edit restarts nothing.
    let out = edit(&pp, &["web", "--restart"], BAD);
    out.code_is(1);
    assert_eq!(pp.running_pid("web"), new);
}

/// The project's file changed while the editor was open (a `git pull`): nothing is
/// installed over the change; the edit is kept, to be recovered onto the new file.
#[test]
fn a_file_changed_while_editing_is_not_overwritten() {
    let pp = edited_playpen();
    let pulled = format!("{}# pulled meanwhile\n", pp.read("services/web/config"));
    pp.write("pulled", &pulled);
    pp.write_exec(
        "bin/editor",
        "#!/bin/sh\ncat \"$NEXT_EDIT\" > \"$1\"\ncp \"${NEXT_EDIT%/*}/pulled\" \"${NEXT_EDIT%/*}/services/web/config\"\n",
    );
    let out = edit(&pp, &["web"], GOOD);
    out.code_is(1);
    assert_golden(
        &pp,
        "edit (conflict)",
        &out.all(),
        "\nservicectl: web: {ROOT}/services/web/config changed while the editor was open; nothing was installed and the edit is kept in {ROOT}/var/servicectl/edit/web.config — compare the two, then `servicectl edit web --recover` to edit the kept copy again, or `servicectl edit web --discard`\n",
    );
    assert_eq!(pp.read("services/web/config"), pulled);
    assert_eq!(pp.read("var/servicectl/edit/web.config"), GOOD);
}

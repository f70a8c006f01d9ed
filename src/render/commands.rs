//! The reports of the commands that are not about what runs: init, check,
//! print-config, env, missing-env, sub-conf, ports, packages and upgrades, export,
//! enable and disable. Each is a [`Report`]: one JSON document, one text form.

use super::table::table;
use super::{Report, Shown, Style};
use crate::config::bytes::{self, EnvJson};
use crate::config::envars::{self, VarSpec};
use crate::config::{Env, Origin};
use crate::ops::export::Exported;
use crate::ops::package::{InstallReport, NewService, Removed};
use crate::ops::ports::PortMap;
use crate::ops::upgrade;
use crate::ops::{Environment, Finding, Missing};
use crate::playpen::Playpen;
use crate::service::prepare::Prepared;
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn to_json(value: &impl serde::Serialize) -> String {
    super::sink::json_text(value)
}

// ---- init ----

/// What init did: the playpen, the role asked for, and the role found when a playpen
/// was there already (left alone).
pub struct Initialized<'a> {
    pub playpen: &'a Playpen,
    pub role: &'a str,
    pub found: Option<&'a str>,
}

impl Report for Initialized<'_> {
    fn json(&self) -> String {
        to_json(&json!({
            "playpen": self.playpen.root,
            "role": self.found.unwrap_or(self.role),
            "created": self.found.is_none(),
            "left_alone": self.found.is_some_and(|f| f != self.role),
        }))
    }
    fn text(&self, _: Style, shown: &mut Shown) {
        shown.out(&init_text(self.playpen, self.role, self.found));
    }
}

/// What init did. An existing playpen of another role is left as it is: say what was
/// found, not that a playpen of the asked role was created.
fn init_text(playpen: &Playpen, role: &str, found: Option<&str>) -> String {
    let next = |role: &str| {
        format!(
            "next: install services with `servicectl --playpen {} package install DIR`, list them in {}\n",
            playpen.root.display(),
            playpen.role_config(role).display()
        )
    };
    match found {
        Some(found) if found != role => format!(
            "found an existing playpen {} with role {found} (etc/role) and left it alone: its role stays {found}, not {role}; to change it, edit {}\n{}",
            playpen.root.display(),
            playpen.root.join("etc/role").display(),
            next(found)
        ),
        Some(found) => format!(
            "found an existing playpen {} with role {found} and left it alone (only what was missing of its skeleton was added)\n{}",
            playpen.root.display(),
            next(found)
        ),
        None => format!(
            "created playpen {} (role {role})\n{}",
            playpen.root.display(),
            next(role)
        ),
    }
}

// ---- print-config, env ----

/// print-config: every variable with the file that set it (sh), or the whole
/// evaluation as JSON.
pub struct ConfigShown<'a> {
    pub service: &'a str,
    pub prepared: &'a Prepared,
    /// Also the variables inherited from servicectl's environment (text only).
    pub all: bool,
}

impl Report for ConfigShown<'_> {
    /// A value that is not UTF-8 is `{"lossy": …, "bytes": […]}` (config::bytes).
    fn json(&self) -> String {
        let prepared = self.prepared;
        to_json(&json!({
            "service": self.service,
            "version": prepared.config.id.version,
            "fragments": prepared.config.fragments,
            "variables": prepared.config.vars,
            "environment": EnvJson(&prepared.env),
        }))
    }
    fn text(&self, _: Style, shown: &mut Shown) {
        shown.out(&print_config_text(self.service, self.prepared, self.all));
    }
}

/// Every variable with the file that set it, as sh; `all`: also those inherited from
/// servicectl's environment. Bytes, not text: each value is written exactly, UTF-8 or
/// not, so that sh reads it back unchanged.
fn print_config_text(service: &str, prepared: &Prepared, all: bool) -> Vec<u8> {
    let mut out = format!(
        "# {service}: evaluated from {}\n",
        prepared
            .config
            .fragments
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
    .into_bytes();
    let mut assign = |marker: &str, name: &str, value: &std::ffi::OsStr, note: &str| {
        out.extend_from_slice(format!("{marker}{name}=").as_bytes());
        out.extend_from_slice(&bytes::sh_quote(value));
        out.extend_from_slice(format!("  # {note}\n").as_bytes());
    };
    for (name, value) in &prepared.config.vars {
        if !all && value.origin == Origin::Environment {
            continue;
        }
        let marker = if value.exported { "export " } else { "" };
        assign(marker, name, &value.value, &value.origin.to_string());
    }
    for (name, value) in &prepared.env {
        if !prepared.config.vars.contains_key(name) {
            assign("export ", name, value, "(resolved typed variable)");
        }
    }
    out
}

impl Report for Environment {
    fn json(&self) -> String {
        to_json(self)
    }
    fn text(&self, _: Style, shown: &mut Shown) {
        shown.out(&env_text(self));
    }
}

/// `export NAME=VALUE` lines, quoted for sh (what share/load-config evaluates). Bytes,
/// not text: each value is written exactly, UTF-8 or not, so that `eval` gives it back.
fn env_text(env: &Env) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in env {
        out.extend_from_slice(b"export ");
        out.extend_from_slice(k.as_bytes());
        out.push(b'=');
        out.extend_from_slice(&bytes::sh_quote(v));
        out.push(b'\n');
    }
    out
}

// ---- check ----

/// check: `NAME: ok`, or a `NAME: problem: …` line per problem (each service's
/// warnings on stderr), then a summary.
pub struct Findings<'a>(pub &'a [Finding]);

impl Report for Findings<'_> {
    fn json(&self) -> String {
        to_json(&self.0)
    }
    fn text(&self, style: Style, shown: &mut Shown) {
        for f in self.0 {
            shown.warnings(&f.warnings);
            if f.ok {
                shown.out(&format!("{}: {}\n", f.service, style.green("ok")));
            }
            for p in &f.problems {
                shown.out(&format!("{}: {} {p}\n", f.service, style.red("problem:")));
            }
        }
        let bad = self.0.iter().filter(|f| !f.ok).count();
        shown.out(&format!("{} checked, {bad} with problems\n", self.0.len()));
    }
}

// ---- missing-env ----

/// How missing-env shows what is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissingForm {
    /// `SERVICE: NAME` lines.
    Names,
    /// Each variable with its description, type, constraints and default.
    Verbose,
    /// A sh snippet setting each to its default.
    Script,
}

/// missing-env: what is missing, in the form asked for; unless it is the script, a
/// hint (stderr) on how to fill it in.
pub struct MissingReport<'a> {
    pub report: &'a [Missing],
    pub form: MissingForm,
    pub role_config: PathBuf,
}

impl Report for MissingReport<'_> {
    fn json(&self) -> String {
        to_json(&self.report)
    }
    fn text(&self, _: Style, shown: &mut Shown) {
        let any = self.report.iter().any(|r| !r.missing.is_empty());
        for r in self.report.iter().filter(|r| !r.missing.is_empty()) {
            match self.form {
                MissingForm::Script => {
                    shown.out(&envars::missing_script(&r.service, &r.missing));
                }
                MissingForm::Verbose => {
                    shown.out(&describe(&r.service, &r.missing));
                }
                MissingForm::Names => {
                    for m in &r.missing {
                        shown.out(&format!("{}: {}\n", r.service, m.name));
                    }
                }
            }
        }
        if self.form != MissingForm::Script {
            if any {
                shown.note(&format!(
                    "hint: `servicectl missing-env --script >> {}` sets each to its default",
                    self.role_config.display()
                ));
            } else {
                shown.out("nothing missing\n");
            }
        }
    }
}

/// A readable listing of variables for `missing-env --verbose`: each name with whether it
/// is required, then its description, type, constraints and default, indented.
fn describe(service: &str, specs: &[VarSpec]) -> String {
    let mut out = String::new();
    for spec in specs {
        let kind = if spec.required {
            "required"
        } else {
            "optional"
        };
        let ty = match (spec.var_type, &spec.type_name) {
            (Some(t), _) => t.name().to_string(),
            (None, Some(raw)) => format!("{raw} (not a known type)"),
            (None, None) if spec.implied_port() => "port (implied by the name)".to_string(),
            (None, None) => "none (not checked)".to_string(),
        };
        writeln!(out, "{service}: {} ({kind})", spec.name).expect("write to String");
        if let Some(d) = &spec.description {
            writeln!(out, "    {}", envars::one_line(d)).expect("write to String");
        }
        writeln!(out, "    type: {ty}").expect("write to String");
        if let Some(c) = &spec.constraints {
            writeln!(out, "    constraints: {c}").expect("write to String");
        }
        match &spec.default {
            Some(d) => writeln!(out, "    default: {}", shell_words::quote(d)),
            None => writeln!(out, "    default: none"),
        }
        .expect("write to String");
    }
    out
}

// ---- sub-conf ----

/// sub-conf: the files written.
pub struct Rendered<'a>(pub &'a [PathBuf]);

impl Report for Rendered<'_> {
    fn json(&self) -> String {
        to_json(&self.0)
    }
    fn text(&self, _: Style, shown: &mut Shown) {
        for w in self.0 {
            shown.out(&format!("rendered {}\n", w.display()));
        }
    }
}

// ---- ports ----

/// ports: one row per typed port, listening ones green; its warnings (ports used twice,
/// variables that do not resolve) on stderr in both forms.
pub struct Ports<'a>(pub &'a PortMap);

impl Report for Ports<'_> {
    fn json(&self) -> String {
        to_json(&self.0.ports)
    }
    fn text(&self, style: Style, shown: &mut Shown) {
        shown.warnings(&self.0.warnings);
        shown.out(&ports_text(&self.0.ports, style));
    }
    fn json_notes(&self, shown: &mut Shown) {
        shown.warnings(&self.0.warnings);
    }
}

/// The port map: one row per typed port, listening ones green.
fn ports_text(ports: &[crate::ops::ports::PortEntry], style: Style) -> String {
    if ports.is_empty() {
        return "no typed ports\n".to_string();
    }
    let rows: Vec<Vec<String>> = ports
        .iter()
        .map(|e| {
            vec![
                e.service.clone(),
                e.variable.clone(),
                e.port.to_string(),
                if e.listening {
                    format!("yes ({})", e.protocols.join(", "))
                } else {
                    "no".to_string()
                },
                e.source.clone(),
            ]
        })
        .collect();
    table(
        &["SERVICE", "VARIABLE", "PORT", "LISTENING", "FROM"],
        &rows,
        |col, cell, padded| (col == 3 && cell.starts_with("yes")).then(|| style.green(padded)),
    )
}

// ---- new-service, remove-service, package ----

/// new-service: for each service, what was done and what is left to do.
pub struct Registered<'a> {
    pub reports: &'a [NewService],
    pub role_config: &'a Path,
}

impl Report for Registered<'_> {
    fn json(&self) -> String {
        to_json(&self.reports)
    }
    fn text(&self, _: Style, shown: &mut Shown) {
        for r in self.reports {
            shown.out(&new_service_text(r, self.role_config));
        }
    }
}

/// remove-service: `NAME: stopped, unregistered, removed 2 file(s)` per service.
pub struct Unregistered<'a>(pub &'a [Removed]);

impl Report for Unregistered<'_> {
    fn json(&self) -> String {
        to_json(&self.0)
    }
    fn text(&self, _: Style, shown: &mut Shown) {
        for r in self.0 {
            shown.out(&remove_service_text(r));
        }
    }
}

/// package install: what was installed or replaced, the upgrade it went through, and
/// each service's new-service report.
pub struct Installed<'a> {
    pub report: &'a InstallReport,
    pub role_config: &'a Path,
}

impl Report for Installed<'_> {
    fn json(&self) -> String {
        to_json(self.report)
    }
    fn text(&self, style: Style, shown: &mut Shown) {
        let r = self.report;
        shown.out(&match &r.replaced {
            Some(old) if *old == r.package => format!("reinstalled {old} ({} files)\n", r.files),
            Some(old) => format!("upgraded {old} to {} ({} files)\n", r.package, r.files),
            None => format!("installed {} ({} files)\n", r.package, r.files),
        });
        if let Some(u) = &r.upgrade {
            Upgraded(u).text(style, shown);
        }
        Registered {
            reports: &r.services,
            role_config: self.role_config,
        }
        .text(style, shown);
    }
}

/// package remove: each service removed, then the package.
pub struct PackageRemoved<'a> {
    pub package: &'a str,
    pub removed: &'a [Removed],
}

impl Report for PackageRemoved<'_> {
    fn json(&self) -> String {
        to_json(&self.removed)
    }
    fn text(&self, _: Style, shown: &mut Shown) {
        shown.out(&package_removed_text(self.package, self.removed));
    }
}

/// What new-service did, and what is left to do (missing variables, the role's list).
fn new_service_text(r: &NewService, role_config: &Path) -> String {
    let mut out = format!(
        "{}: {}\n",
        r.service,
        if r.newly_registered {
            "registered"
        } else {
            "already registered (checked again)"
        }
    );
    if !r.missing.is_empty() {
        out.push_str(&format!(
            "{}: missing variables: {} — add them to {} (`servicectl missing-env --script {} >> {}` sets defaults):\n{}\n",
            r.service,
            r.missing.join(" "),
            role_config.display(),
            r.service,
            role_config.display(),
            r.missing_script.trim_end()
        ));
    }
    if !r.in_role {
        out.push_str(&format!(
            "{}: not in playpen_services of {}; add it there to start it with the role (or `servicectl start {}`)\n",
            r.service,
            role_config.display(),
            r.service
        ));
    }
    out
}

/// `NAME: stopped, unregistered, removed 2 file(s)`.
fn remove_service_text(r: &Removed) -> String {
    let mut done = Vec::new();
    if r.stopped {
        done.push("stopped".to_string());
    }
    if r.unregistered {
        done.push("unregistered".to_string());
    }
    if !r.removed_files.is_empty() {
        done.push(format!("removed {} file(s)", r.removed_files.len()));
    }
    if done.is_empty() {
        format!("{}: nothing to remove (not registered)\n", r.service)
    } else {
        format!("{}: {}\n", r.service, done.join(", "))
    }
}

fn package_removed_text(package: &str, removed: &[Removed]) -> String {
    let mut out: String = removed
        .iter()
        .map(|r| {
            format!(
                "{}: removed{}\n",
                r.service,
                if r.stopped { " (stopped first)" } else { "" }
            )
        })
        .collect();
    out.push_str(&format!("package {package} removed\n"));
    out
}

/// pre-upgrade, post-upgrade: the warnings (stderr), then one line per non-empty list.
pub struct Upgraded<'a>(pub &'a upgrade::Report);

impl Report for Upgraded<'_> {
    fn json(&self) -> String {
        to_json(self.0)
    }
    fn text(&self, _: Style, shown: &mut Shown) {
        shown.warnings(&self.0.warnings);
        shown.out(&upgrade_text(self.0));
    }
}

/// One line per non-empty list: `stopped: a b`, `reloaded: c`, …
fn upgrade_text(r: &upgrade::Report) -> String {
    let mut out = String::new();
    for (what, list) in [
        ("stopped", &r.stopped),
        ("started", &r.started),
        ("restarted", &r.restarted),
        ("reloaded", &r.reloaded),
        ("left running, marked upgraded", &r.marked),
    ] {
        if !list.is_empty() {
            out.push_str(&format!("{what}: {}\n", list.join(" ")));
        }
    }
    out
}

// ---- export ----

impl Report for Exported {
    fn json(&self) -> String {
        to_json(self)
    }
    fn text(&self, _: Style, shown: &mut Shown) {
        shown.out(&exported_text(self));
    }
}

/// The files written, and how to install them.
fn exported_text(e: &Exported) -> String {
    let mut out: String = e
        .files
        .iter()
        .map(|f| format!("wrote {}\n", f.display()))
        .collect();
    out.push_str(&format!(
        "install: cp {}/*.service {}/*.timer {}/*.socket {}/{} /etc/systemd/system/ (those that exist), then `systemctl daemon-reload && systemctl enable --now {}`\n",
        e.dir.display(),
        e.dir.display(),
        e.dir.display(),
        e.dir.display(),
        e.target,
        e.target
    ));
    out
}

// ---- enable, disable ----

/// enable / disable: each service, and whether it changed.
pub struct Enablement<'a> {
    pub names: &'a [String],
    pub changed: &'a [String],
    pub enable: bool,
}

impl Enablement<'_> {
    fn word(&self) -> &'static str {
        if self.enable { "enabled" } else { "disabled" }
    }
}

impl Report for Enablement<'_> {
    fn json(&self) -> String {
        let rows: Vec<Value> = self
            .names
            .iter()
            .map(|n| json!({"service": n, "state": self.word(), "changed": self.changed.contains(n)}))
            .collect();
        to_json(&rows)
    }
    fn text(&self, _: Style, shown: &mut Shown) {
        let word = self.word();
        for name in self.names {
            if self.changed.contains(name) {
                shown.out(&format!("{name}: {word}\n"));
            } else {
                shown.out(&format!("{name}: already {word}\n"));
            }
        }
        if !self.changed.is_empty() {
            shown.out("`servicectl up` brings the services to their desired state\n");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::envars::VarType;

    fn spec(name: &str, required: bool, type_name: Option<&str>) -> VarSpec {
        VarSpec {
            name: name.to_string(),
            required,
            description: None,
            var_type: type_name.and_then(VarType::from_name),
            type_name: type_name.map(str::to_string),
            constraints: None,
            default: None,
        }
    }

    #[test]
    fn describe_lists_everything() {
        let web = VarSpec {
            description: Some("web\n  port".into()),
            constraints: Some("8000-8999".into()),
            default: Some("8080".into()),
            ..spec("WEB_PORT", true, Some("port"))
        };
        let specs = [
            web,
            spec("X_PORT", false, None),
            spec("Y", false, None),
            spec("Z", false, Some("bogus")),
        ];
        assert_eq!(
            describe("web", &specs),
            "web: WEB_PORT (required)\n    web port\n    type: port\n    constraints: 8000-8999\n    default: 8080\n\
             web: X_PORT (optional)\n    type: port (implied by the name)\n    default: none\n\
             web: Y (optional)\n    type: none (not checked)\n    default: none\n\
             web: Z (optional)\n    type: bogus (not a known type)\n    default: none\n"
        );
    }

    #[test]
    fn upgrade_report_lists_reloaded_apart_from_restarted() {
        let report = upgrade::Report {
            restarted: vec!["echo".into()],
            reloaded: vec!["nginx".into()],
            marked: vec!["db".into()],
            ..upgrade::Report::default()
        };
        assert_eq!(
            upgrade_text(&report),
            "restarted: echo\nreloaded: nginx\nleft running, marked upgraded: db\n"
        );
    }
}

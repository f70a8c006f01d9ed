//! One listed variable of one service: its spec checked, its value found (set, worked
//! out from PORT_PREFIX, or the default), and checked against its rule.

use super::rule::{Rule, parse_int};
use super::{PORT_PREFIX, Problem, Resolution, VarSpec, VarType, is_identifier};
use crate::config::ServiceConfig;
use crate::config::bytes;
use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;

/// Where a checked value came from, for messages.
enum Source {
    Set,
    Offset(String),
    Default,
}

/// Builds the problems of one variable.
struct Var<'a> {
    config: &'a ServiceConfig,
    spec: &'a VarSpec,
}

impl Var<'_> {
    fn name(&self) -> &str {
        &self.spec.name
    }

    fn service(&self) -> &str {
        self.config.name()
    }

    fn problem(&self, value: Option<&OsStr>, rule: String) -> Problem {
        Problem {
            service: self.service().to_string(),
            variable: Some(self.name().to_string()),
            description: self.spec.description.clone(),
            value: value.map(OsStr::to_os_string),
            rule,
        }
    }

    /// The variable's value when set and not empty.
    fn set(&self, var: &str) -> Option<&OsStr> {
        self.config.get_bytes(var).filter(|v| !v.is_empty())
    }
}

/// Check one listed variable, adding its value, port, problems and warnings to `r`.
pub(super) fn one(config: &ServiceConfig, spec: &VarSpec, r: &mut Resolution) {
    let var = Var { config, spec };
    if !is_identifier(var.name()) {
        r.problems.push(
            var.problem(
                None,
                "not a valid variable name (letters, digits and _, not starting with a digit)"
                    .to_string(),
            ),
        );
        return;
    }
    spec_problems(&var, r);
    let ty = spec.effective_type();
    let rule = rule(&var, ty, r);
    let Some((value, source)) = value(&var, ty, r) else {
        return;
    };
    if let Some(d) = &spec.default
        && !matches!(source, Source::Default)
        && let Err(why) = rule.check(OsStr::new(d))
    {
        // A bad default is the package's bug; it only stops a start once it is used.
        r.warnings.push(format!(
            "{}: envar_{}_default={d:?} would not be valid: {why}",
            var.service(),
            var.name()
        ));
    }
    match rule.check(&value) {
        Ok(port) => {
            if let Some(port) = port {
                r.ports.push((var.name().to_string(), port));
            }
            r.values.insert(var.name().to_string(), value);
        }
        Err(why) => {
            let from = match source {
                Source::Set => config.origin_note(var.name()),
                Source::Offset(sum) => format!(" ({sum})"),
                Source::Default => format!(" (the default, envar_{}_default)", var.name()),
            };
            r.problems
                .push(var.problem(Some(&value), format!("{why}{from}")));
        }
    }
}

/// What describes a variable must be text, its type known; an untyped `*_PORT` is a
/// port, with a warning.
fn spec_problems(var: &Var, r: &mut Resolution) {
    let name = var.name();
    // Bytes that are not UTF-8 would be read as unset, so they are a problem of the spec.
    for suffix in ["description", "type", "constraints", "default"] {
        let field = format!("envar_{name}_{suffix}");
        if let Some(raw) = var.config.not_text(&field) {
            r.problems.push(var.problem(
                None,
                format!(
                    "{field}={}{} is not UTF-8 text: write it in UTF-8",
                    bytes::quoted(raw),
                    var.config.origin_note(&field)
                ),
            ));
        }
    }
    if let (Some(raw), None) = (&var.spec.type_name, var.spec.var_type) {
        r.problems.push(var.problem(
            None,
            format!(
                "envar_{name}_type={raw:?} is not a type; valid types: {}",
                VarType::valid_names()
            ),
        ));
    }
    if var.spec.implied_port() {
        r.warnings.push(format!(
            "{}: {name} has no type; treating it as a port because its name ends in _PORT (set envar_{name}_type=port to say so)",
            var.service()
        ));
    }
}

/// The rule of the variable's type and constraints (malformed constraints are a problem,
/// and the type alone applies; constraints a type does not take are a warning).
fn rule(var: &Var, ty: Option<VarType>, r: &mut Resolution) -> Rule {
    let (name, spec) = (var.name(), var.spec);
    let rule = match Rule::new(ty, spec.constraints.as_deref()) {
        Ok(rule) => rule,
        Err(why) => {
            r.problems.push(var.problem(
                None,
                format!(
                    "envar_{name}_constraints={:?} is malformed: {why}",
                    spec.constraints.as_deref().unwrap_or("")
                ),
            ));
            Rule::new(ty, None).expect("no constraints cannot be malformed")
        }
    };
    let unknown_type = spec.type_name.is_some() && spec.var_type.is_none();
    if let Some(c) = &spec.constraints
        && !unknown_type
        && !ty.is_some_and(VarType::takes_constraints)
    {
        r.warnings.push(format!(
            "{}: envar_{name}_constraints={c:?} is ignored: {} takes no constraints",
            var.service(),
            ty.map_or("an untyped variable".to_string(), |t| format!("type {t}"))
        ));
    }
    rule
}

/// The value to check and where it came from; None when there is none to check (a
/// problem or a warning says why, or an optional variable without a default is unset).
fn value(var: &Var, ty: Option<VarType>, r: &mut Resolution) -> Option<(OsString, Source)> {
    let offset_name = format!("{}_OFFSET", var.name());
    if let Some(v) = var.set(var.name()) {
        return Some((v.to_os_string(), Source::Set));
    }
    if let (Some(VarType::Port), Some(prefix), Some(offset)) =
        (ty, var.set(PORT_PREFIX), var.set(&offset_name))
    {
        return from_offset(var, prefix, offset, &offset_name, r);
    }
    let half_port = match (ty, var.set(PORT_PREFIX), var.set(&offset_name)) {
        (Some(VarType::Port), None, Some(offset)) => Some(format!(
            "{offset_name} is {} but {PORT_PREFIX} is unset",
            bytes::quoted(offset)
        )),
        _ => None,
    };
    if var.spec.required {
        let mut rule = "required but unset".to_string();
        if let Some(why) = &half_port {
            write!(rule, " ({why})").expect("write to String");
        }
        r.problems.push(var.problem(None, rule));
        r.missing.push(var.spec.clone());
        return None;
    }
    match &var.spec.default {
        Some(d) => Some((d.into(), Source::Default)),
        None => {
            if let Some(why) = half_port {
                r.warnings
                    .push(format!("{}: {} is unset: {why}", var.service(), var.name()));
            }
            None
        }
    }
}

/// A port worked out as PORT_PREFIX + NAME_OFFSET (sh arithmetic: both trimmed).
fn from_offset(
    var: &Var,
    prefix_raw: &OsStr,
    offset_raw: &OsStr,
    offset_name: &str,
    r: &mut Resolution,
) -> Option<(OsString, Source)> {
    let name = var.name();
    // Bytes that are not UTF-8 read as U+FFFD, which fails to parse (the messages show
    // the exact value).
    let (prefix, offset) = (prefix_raw.to_string_lossy(), offset_raw.to_string_lossy());
    let (prefix, offset) = (prefix.trim(), offset.trim());
    let not_a_number = |what: &str, raw: &OsStr| {
        format!(
            "{what}={}{} is not a number, so {name} = {PORT_PREFIX} + {offset_name} cannot be worked out",
            bytes::quoted(raw),
            var.config.origin_note(what)
        )
    };
    let Some(prefix_n) = parse_int(prefix) else {
        r.problems
            .push(var.problem(None, not_a_number(PORT_PREFIX, prefix_raw)));
        return None;
    };
    let Some(offset_n) = parse_int(offset) else {
        r.problems
            .push(var.problem(None, not_a_number(offset_name, offset_raw)));
        return None;
    };
    let sum = format!("{PORT_PREFIX} + {offset_name} = {prefix} + {offset}");
    // i128 sums of huge inputs can overflow; such a sum is no port either.
    let Some(n) = prefix_n.checked_add(offset_n) else {
        r.problems
            .push(var.problem(None, format!("not a port (1-65535) ({sum})")));
        return None;
    };
    Some((n.to_string().into(), Source::Offset(sum)))
}

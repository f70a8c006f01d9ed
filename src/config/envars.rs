//! Typed environment variables: what a service says it needs from its environment,
//! checked before it starts, with ports worked out from PORT_PREFIX.
//!
//! A service lists names in `service_required_envars` / `service_optional_envars` and may
//! describe each with `envar_NAME_description`, `_type`, `_constraints` and `_default`.
//! [`resolve`] checks every listed variable and collects every problem at once; names
//! that are not listed are never checked.
//!
//! Rules worth knowing (they are choices, not accidents):
//! - A value that is set but empty counts as unset, for optional variables too (like sh's
//!   `${X:-…}`), so an optional variable set to "" gets its default.
//! - Defaults fill in optional variables only. A required variable is required because the
//!   playpen must choose it: `missing-env --script` writes the defaults into a snippet for
//!   the role config, where the choice is visible and kept in version control.
//! - Numbers are decimal and must be written without surrounding whitespace (`010` is ten,
//!   not sh's octal eight). Only PORT_PREFIX and `*_OFFSET` are trimmed, as sh arithmetic
//!   would.
//! - A constraint is a space-separated list of `START-END` ranges or single numbers `N`.
//!   Either bound may be negative: the separator is the first `-` that leaves a number on
//!   both sides, so `-10-10`, `-10--5` and `1e-3-2.5` (for reals) all read as expected.
//!   Open ranges (`5-`) are not supported; START above END is a malformed constraint.
//! - A missing required variable is reported in `missing` and also in `problems`, so a
//!   caller decides whether a service may start from `problems` alone.

use crate::config::ServiceConfig;
use crate::config::bytes::{self, Env};
use crate::error::{Error, Result};
use serde::Serialize;
use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fmt::{self, Write as _};

/// The variable every playpen sets to keep its ports apart from other playpens'.
pub const PORT_PREFIX: &str = "PORT_PREFIX";
pub const REQUIRED_LIST: &str = "service_required_envars";
pub const OPTIONAL_LIST: &str = "service_optional_envars";

/// The type of a typed variable, from `envar_NAME_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VarType {
    /// Non-empty, no whitespace; constraints list the allowed values.
    SimpleString,
    /// Non-empty, may contain whitespace.
    String,
    /// Like string, a path.
    Filename,
    /// Any integer; constraints are ranges.
    Integer,
    /// An integer ≥ 0; constraints are ranges.
    Nonnegative,
    /// Any finite real number; constraints are ranges.
    Real,
    /// 1–65535; constraints are ranges.
    Port,
}

impl VarType {
    pub const ALL: [VarType; 7] = [
        VarType::SimpleString,
        VarType::String,
        VarType::Filename,
        VarType::Integer,
        VarType::Nonnegative,
        VarType::Real,
        VarType::Port,
    ];

    /// The name used in `envar_NAME_type`.
    pub fn name(self) -> &'static str {
        match self {
            VarType::SimpleString => "simple_string",
            VarType::String => "string",
            VarType::Filename => "filename",
            VarType::Integer => "integer",
            VarType::Nonnegative => "nonnegative",
            VarType::Real => "real",
            VarType::Port => "port",
        }
    }

    /// Parse a type name (surrounding whitespace and case are ignored).
    pub fn from_name(name: &str) -> Option<VarType> {
        let name = name.trim();
        Self::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(name))
    }

    /// "simple_string, string, …" for messages.
    pub fn valid_names() -> String {
        Self::ALL.map(VarType::name).join(", ")
    }

    fn takes_constraints(self) -> bool {
        !matches!(self, VarType::String | VarType::Filename)
    }
}

impl fmt::Display for VarType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One listed variable and what the service says about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VarSpec {
    pub name: String,
    /// Listed in service_required_envars (else in service_optional_envars).
    pub required: bool,
    pub description: Option<String>,
    /// The declared type; None when `envar_NAME_type` is unset or not a known type.
    #[serde(rename = "type")]
    pub var_type: Option<VarType>,
    /// `envar_NAME_type` as written, kept so an unknown type can be reported.
    #[serde(skip)]
    pub type_name: Option<String>,
    pub constraints: Option<String>,
    /// Empty defaults are treated as no default.
    pub default: Option<String>,
}

impl VarSpec {
    /// The type values are checked against: the declared one, else port for an untyped
    /// name ending in `_PORT`.
    pub fn effective_type(&self) -> Option<VarType> {
        if self.implied_port() {
            Some(VarType::Port)
        } else {
            self.var_type
        }
    }

    /// Untyped, but named like a port.
    pub fn implied_port(&self) -> bool {
        self.type_name.is_none() && self.name.ends_with("_PORT")
    }

    /// `DESCRIPTION (type, constraints)`, or the name when there is no description.
    fn summary(&self) -> String {
        let mut text = match &self.description {
            Some(d) => one_line(d),
            None => self.name.clone(),
        };
        let details: Vec<&str> = self
            .effective_type()
            .map(VarType::name)
            .into_iter()
            .chain(self.constraints.as_deref())
            .collect();
        if !details.is_empty() {
            write!(text, " ({})", details.join(", ")).expect("write to String");
        }
        text
    }
}

/// The listed variables of a service, required ones first, each name once (a name listed
/// in both lists is required).
pub fn specs(config: &ServiceConfig) -> Vec<VarSpec> {
    let mut specs: Vec<VarSpec> = Vec::new();
    for (list, required) in [(REQUIRED_LIST, true), (OPTIONAL_LIST, false)] {
        for name in config.list(list) {
            if specs.iter().any(|s| s.name == name) {
                continue;
            }
            let field = |suffix: &str| {
                config
                    .non_empty(&format!("envar_{name}_{suffix}"))
                    .map(|v| v.trim().to_string())
            };
            let type_name = field("type");
            specs.push(VarSpec {
                required,
                description: field("description"),
                var_type: type_name.as_deref().and_then(VarType::from_name),
                type_name,
                constraints: field("constraints"),
                default: config
                    .get(&format!("envar_{name}_default"))
                    .filter(|v| !v.is_empty())
                    .map(str::to_string),
                name,
            });
        }
    }
    specs
}

/// One thing wrong with one variable of one service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub service: String,
    pub variable: String,
    pub description: Option<String>,
    /// The offending value (any bytes); None when the variable is unset or the problem is
    /// in its spec.
    #[serde(serialize_with = "bytes::serialize_option")]
    pub value: Option<OsString>,
    /// The rule it broke, with where the value came from.
    pub rule: String,
}

impl Problem {
    /// The message without the service: `VAR (description) = "value": rule`.
    pub fn detail(&self) -> String {
        let mut text = self.variable.clone();
        if let Some(d) = &self.description {
            write!(text, " ({})", one_line(d)).expect("write to String");
        }
        if let Some(v) = &self.value {
            write!(text, " = {v:?}").expect("write to String");
        }
        write!(text, ": {}", self.rule).expect("write to String");
        text
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.service, self.detail())
    }
}

/// The outcome of checking one service's typed variables.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Resolution {
    pub service: String,
    /// Resolved, valid values to export into the service's environment (including ports
    /// worked out from PORT_PREFIX and defaults of unset optional variables). A string or
    /// filename may hold any bytes; numbers and ports are ASCII.
    #[serde(serialize_with = "bytes::serialize_env")]
    pub values: Env,
    /// Every valid port variable and its port, in spec order.
    pub ports: Vec<(String, u16)>,
    /// Every problem, missing required variables included; the service must not start
    /// unless this is empty.
    pub problems: Vec<Problem>,
    /// Things worth saying that do not stop the start, each prefixed with the service.
    pub warnings: Vec<String>,
    /// Required variables that are unset (or empty).
    pub missing: Vec<VarSpec>,
}

impl Resolution {
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// All problems as one error for the service, None when there are none.
    pub fn to_error(&self) -> Option<Error> {
        let message = match self.problems.as_slice() {
            [] => return None,
            [one] => one.detail(),
            many => {
                let mut text = format!("{} problems with typed variables:", many.len());
                for p in many {
                    write!(text, "\n  {}", p.detail()).expect("write to String");
                }
                text
            }
        };
        let hint = if self.missing.is_empty() {
            "fix the values in the role config or the service's config".to_string()
        } else {
            format!(
                "set the missing variables in the role config (`servicectl missing-env --script {}` prints a starting point)",
                self.service
            )
        };
        Some(
            Error::config(message)
                .with_service(&self.service)
                .with_hint(hint),
        )
    }
}

/// Check every listed variable of a service, working out ports and defaults.
pub fn resolve(config: &ServiceConfig) -> Resolution {
    let mut resolution = Resolution {
        service: config.name().to_string(),
        ..Resolution::default()
    };
    for spec in specs(config) {
        resolve_one(config, &spec, &mut resolution);
    }
    resolution
}

/// Where a checked value came from, for messages.
enum Source {
    Set,
    Offset(String),
    Default,
}

fn resolve_one(config: &ServiceConfig, spec: &VarSpec, r: &mut Resolution) {
    let name = spec.name.as_str();
    let service = config.name();
    let problem = |value: Option<&OsStr>, rule: String| Problem {
        service: service.to_string(),
        variable: name.to_string(),
        description: spec.description.clone(),
        value: value.map(OsStr::to_os_string),
        rule,
    };
    if !is_identifier(name) {
        r.problems.push(problem(
            None,
            "not a valid variable name (letters, digits and _, not starting with a digit)"
                .to_string(),
        ));
        return;
    }
    // What describes a variable is text; bytes that are not UTF-8 there would be read as
    // unset, so they are a problem of the spec.
    for suffix in ["description", "type", "constraints", "default"] {
        let field = format!("envar_{name}_{suffix}");
        if let Some(raw) = config.not_text(&field) {
            r.problems.push(problem(
                None,
                format!(
                    "{field}={}{} is not UTF-8 text: write it in UTF-8",
                    bytes::quoted(raw),
                    config.origin_note(&field)
                ),
            ));
        }
    }
    if let (Some(raw), None) = (&spec.type_name, spec.var_type) {
        r.problems.push(problem(
            None,
            format!(
                "envar_{name}_type={raw:?} is not a type; valid types: {}",
                VarType::valid_names()
            ),
        ));
    }
    if spec.implied_port() {
        r.warnings.push(format!(
            "{service}: {name} has no type; treating it as a port because its name ends in _PORT (set envar_{name}_type=port to say so)"
        ));
    }
    let ty = spec.effective_type();
    let rule = match Rule::new(ty, spec.constraints.as_deref()) {
        Ok(rule) => rule,
        Err(why) => {
            r.problems.push(problem(
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
            "{service}: envar_{name}_constraints={c:?} is ignored: {} takes no constraints",
            ty.map_or("an untyped variable".to_string(), |t| format!("type {t}"))
        ));
    }

    let offset_name = format!("{name}_OFFSET");
    let set = |var: &str| config.get_bytes(var).filter(|v| !v.is_empty());
    let (value, source): (OsString, Source) = if let Some(v) = set(name) {
        (v.to_os_string(), Source::Set)
    } else if let (Some(VarType::Port), Some(prefix_raw), Some(offset_raw)) =
        (ty, set(PORT_PREFIX), set(&offset_name))
    {
        // Numbers: bytes that are not UTF-8 read as U+FFFD, which fails to parse (the
        // messages show the exact value).
        let (prefix, offset) = (prefix_raw.to_string_lossy(), offset_raw.to_string_lossy());
        let Some(prefix_n) = parse_int(prefix.trim()) else {
            r.problems.push(problem(
                None,
                format!(
                    "{PORT_PREFIX}={}{} is not a number, so {name} = {PORT_PREFIX} + {offset_name} cannot be worked out",
                    bytes::quoted(prefix_raw),
                    config.origin_note(PORT_PREFIX)
                ),
            ));
            return;
        };
        let Some(offset_n) = parse_int(offset.trim()) else {
            r.problems.push(problem(
                None,
                format!(
                    "{offset_name}={}{} is not a number, so {name} = {PORT_PREFIX} + {offset_name} cannot be worked out",
                    bytes::quoted(offset_raw),
                    config.origin_note(&offset_name)
                ),
            ));
            return;
        };
        // i128 sums of huge inputs can overflow; such a sum is no port either.
        let Some(sum) = prefix_n.checked_add(offset_n) else {
            r.problems.push(problem(
                None,
                format!(
                    "not a port (1-65535) ({PORT_PREFIX} + {offset_name} = {} + {})",
                    prefix.trim(),
                    offset.trim()
                ),
            ));
            return;
        };
        (
            sum.to_string().into(),
            Source::Offset(format!(
                "{PORT_PREFIX} + {offset_name} = {} + {}",
                prefix.trim(),
                offset.trim()
            )),
        )
    } else {
        let half_port = match (ty, set(PORT_PREFIX), set(&offset_name)) {
            (Some(VarType::Port), None, Some(offset)) => Some(format!(
                "{offset_name} is {} but {PORT_PREFIX} is unset",
                bytes::quoted(offset)
            )),
            _ => None,
        };
        if spec.required {
            let mut rule = "required but unset".to_string();
            if let Some(why) = &half_port {
                write!(rule, " ({why})").expect("write to String");
            }
            r.problems.push(problem(None, rule));
            r.missing.push(spec.clone());
            return;
        }
        match &spec.default {
            Some(d) => (d.into(), Source::Default),
            None => {
                if let Some(why) = half_port {
                    r.warnings
                        .push(format!("{service}: {name} is unset: {why}"));
                }
                return;
            }
        }
    };

    if let Some(d) = &spec.default
        && !matches!(source, Source::Default)
        && let Err(why) = rule.check(OsStr::new(d))
    {
        // A bad default is the package's bug; it only stops a start once it is used.
        r.warnings.push(format!(
            "{service}: envar_{name}_default={d:?} would not be valid: {why}"
        ));
    }
    match rule.check(&value) {
        Ok(port) => {
            if let Some(port) = port {
                r.ports.push((name.to_string(), port));
            }
            r.values.insert(name.to_string(), value);
        }
        Err(why) => {
            let from = match source {
                Source::Set => config.origin_note(name),
                Source::Offset(sum) => format!(" ({sum})"),
                Source::Default => format!(" (the default, envar_{name}_default)"),
            };
            r.problems
                .push(problem(Some(&value), format!("{why}{from}")));
        }
    }
}

/// What a value must satisfy: its type, narrowed by its constraints.
struct Rule {
    ty: Option<VarType>,
    allowed: Allowed,
    /// The constraints, whitespace normalised, for messages.
    text: String,
}

enum Allowed {
    Anything,
    Words(Vec<String>),
    Integers(Vec<(i128, i128)>),
    Reals(Vec<(f64, f64)>),
}

impl Rule {
    fn new(ty: Option<VarType>, constraints: Option<&str>) -> Result<Rule, String> {
        let text = constraints.map(one_line).unwrap_or_default();
        let allowed = match (ty, constraints) {
            (_, None) | (None | Some(VarType::String | VarType::Filename), _) => Allowed::Anything,
            (Some(VarType::SimpleString), Some(c)) => {
                Allowed::Words(c.split_whitespace().map(str::to_string).collect())
            }
            (Some(VarType::Real), Some(c)) => {
                Allowed::Reals(parse_ranges(c, parse_real, "real numbers")?)
            }
            (Some(VarType::Integer | VarType::Nonnegative | VarType::Port), Some(c)) => {
                Allowed::Integers(parse_ranges(c, parse_int, "integers")?)
            }
        };
        Ok(Rule { ty, allowed, text })
    }

    /// Ok(Some(port)) for a valid port, Ok(None) for any other valid value, else the
    /// rule the value broke. Strings and filenames may hold any bytes; a simple string
    /// that is not UTF-8 is checked for whitespace as far as it is text, and numbers must
    /// be ASCII text.
    fn check(&self, value: &OsStr) -> Result<Option<u16>, String> {
        // Bytes that are not UTF-8 read as U+FFFD: no whitespace, no digit, so the lossy
        // text fails every number and only `exact` text can be an allowed word.
        let exact = value.to_str().is_some();
        let text = value.to_string_lossy();
        let value = &*text;
        let in_ranges = match self.ty {
            None | Some(VarType::String | VarType::Filename) => return Ok(None),
            Some(VarType::SimpleString) => {
                if value.chars().any(char::is_whitespace) {
                    return Err("must be a single word, without whitespace".to_string());
                }
                if let Allowed::Words(words) = &self.allowed
                    && !(exact && words.iter().any(|w| w == value))
                {
                    return Err(format!(
                        "not one of the allowed values: {}",
                        words.join(" ")
                    ));
                }
                return Ok(None);
            }
            Some(VarType::Real) => {
                let n = parse_real(value).ok_or("not a real number")?;
                match &self.allowed {
                    Allowed::Reals(ranges) => ranges.iter().any(|&(a, b)| a <= n && n <= b),
                    _ => true,
                }
            }
            Some(t @ (VarType::Integer | VarType::Nonnegative | VarType::Port)) => {
                let n = parse_int(value);
                let n = match t {
                    VarType::Integer => n.ok_or("not an integer")?,
                    VarType::Nonnegative => n
                        .filter(|&n| n >= 0)
                        .ok_or("not a nonnegative integer (0 or more)")?,
                    _ => n
                        .filter(|n| (1..=65535).contains(n))
                        .ok_or("not a port (1-65535)")?,
                };
                let fits = match &self.allowed {
                    Allowed::Integers(ranges) => ranges.iter().any(|&(a, b)| a <= n && n <= b),
                    _ => true,
                };
                if fits && t == VarType::Port {
                    return Ok(Some(u16::try_from(n).expect("checked above")));
                }
                fits
            }
        };
        if in_ranges {
            Ok(None)
        } else if self.text.contains(' ') {
            Err(format!("outside the allowed ranges {}", self.text))
        } else {
            Err(format!("outside the allowed range {}", self.text))
        }
    }
}

fn parse_int(s: &str) -> Option<i128> {
    s.parse().ok()
}

fn parse_real(s: &str) -> Option<f64> {
    // f64's parser also takes "inf" and "NaN", which are not numbers a service can use.
    s.parse().ok().filter(|n: &f64| n.is_finite())
}

/// Space-separated `N` or `START-END`; see the module notes for negative bounds.
fn parse_ranges<T: PartialOrd + Copy>(
    text: &str,
    parse: fn(&str) -> Option<T>,
    kind: &str,
) -> Result<Vec<(T, T)>, String> {
    text.split_whitespace()
        .map(|token| {
            if let Some(n) = parse(token) {
                return Ok((n, n));
            }
            let (start, end) = token
                .match_indices('-')
                .filter(|&(i, _)| i > 0)
                .find_map(|(i, _)| Some((parse(&token[..i])?, parse(&token[i + 1..])?)))
                .ok_or_else(|| {
                    format!("{token:?} is not a number or a START-END range of {kind}")
                })?;
            if start <= end {
                Ok((start, end))
            } else {
                Err(format!("{token:?} is an empty range (START is above END)"))
            }
        })
        .collect()
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Descriptions may span lines; messages and comments must not.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A service variable that resolved to a port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortUser {
    pub service: String,
    pub variable: String,
}

/// Several variables of one playpen resolving to the same port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortConflict {
    pub port: u16,
    /// Two or more, in the order given.
    pub users: Vec<PortUser>,
}

impl fmt::Display for PortConflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let users: Vec<String> = self
            .users
            .iter()
            .map(|u| format!("{} ({})", u.service, u.variable))
            .collect();
        let (last, rest) = users.split_last().expect("a conflict has users");
        write!(
            f,
            "port {} is used by {} and {last}",
            self.port,
            rest.join(", ")
        )
    }
}

/// Every port claimed by more than one variable, across the given services (and within
/// one service), ordered by port.
pub fn port_conflicts<'a>(all: impl IntoIterator<Item = &'a Resolution>) -> Vec<PortConflict> {
    let mut by_port: BTreeMap<u16, Vec<PortUser>> = BTreeMap::new();
    for resolution in all {
        for (variable, port) in &resolution.ports {
            let user = PortUser {
                service: resolution.service.clone(),
                variable: variable.clone(),
            };
            let users = by_port.entry(*port).or_default();
            // The same resolution passed twice is not a conflict with itself.
            if !users.contains(&user) {
                users.push(user);
            }
        }
    }
    by_port
        .into_iter()
        .filter(|(_, users)| users.len() > 1)
        .map(|(port, users)| PortConflict { port, users })
        .collect()
}

/// [`port_conflicts`] as one error, Ok when every port is used once.
pub fn check_ports<'a>(all: impl IntoIterator<Item = &'a Resolution>) -> Result<()> {
    let conflicts = port_conflicts(all);
    let message = match conflicts.as_slice() {
        [] => return Ok(()),
        [one] => one.to_string(),
        many => many
            .iter()
            .fold(format!("{} port conflicts:", many.len()), |mut text, c| {
                write!(text, "\n  {c}").expect("write to String");
                text
            }),
    };
    Err(Error::config(message).with_hint(
        "give each service its own port: change the *_PORT or *_OFFSET values in the role or service config",
    ))
}

/// A sh snippet for the role config setting each missing variable to its default. A
/// variable without a default gets a commented-out assignment to fill in, so appending
/// the snippet leaves `missing-env` clean exactly when every variable has a default.
pub fn missing_script(service: &str, missing: &[VarSpec]) -> String {
    let mut out = String::new();
    for spec in missing {
        let summary = spec.summary();
        if !is_identifier(&spec.name) {
            writeln!(
                out,
                "# {service}: {:?} is not a valid variable name; fix {REQUIRED_LIST}",
                spec.name
            )
            .expect("write to String");
            continue;
        }
        writeln!(out, "# {service}: {summary}").expect("write to String");
        match &spec.default {
            Some(default) => writeln!(out, "{}={}", spec.name, shell_words::quote(default)),
            None => writeln!(
                out,
                "# {service}: no default: choose a value and uncomment the next line\n#{}=",
                spec.name
            ),
        }
        .expect("write to String");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Origin, Value};
    use crate::playpen::catalog::ServiceId;
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
                            origin: Origin::Environment,
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
                    origin: Origin::Environment,
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
        let vars: Vec<&str> = r.problems.iter().map(|p| p.variable.as_str()).collect();
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
            rules(&with("8000", "eighty"))[0]
                .starts_with("WEB_PORT_OFFSET=\"eighty\" is not a number")
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
        assert!(check_ports([&web]).is_ok());
        let err = check_ports([&web, &api]).unwrap_err();
        assert_eq!(
            err.message,
            "port 8080 is used by web (WEB_PORT) and api (API_PORT)"
        );

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
        let err = check_ports([&web, &api, &same, &twice]).unwrap_err();
        assert!(err.message.starts_with("3 port conflicts:\n  port 5432"));
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
}

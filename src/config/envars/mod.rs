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
//!
//! The rooms: this file (the specs a service declares, the resolution of a service),
//! `resolve` (one variable: its spec, its value, PORT_PREFIX arithmetic, its default),
//! `rule` (types and constraints), `conflicts` (one port, several users), `script`
//! (the `missing-env --script` snippet).

mod conflicts;
mod resolve;
mod rule;
mod script;

pub use crate::config::problem::Problem;
pub use crate::text::one_line;
pub use conflicts::{PortConflict, PortUser, port_conflicts};
pub use script::missing_script;

use crate::config::ServiceConfig;
use crate::config::bytes::{self, Env};
use crate::config::problem;
use crate::error::Error;
use serde::Serialize;
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

    pub(crate) fn takes_constraints(self) -> bool {
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
        let hint = if self.missing.is_empty() {
            "fix the values in the role config or the service's config".to_string()
        } else {
            format!(
                "set the missing variables in the role config (`servicectl missing-env --script {}` prints a starting point)",
                self.service
            )
        };
        problem::summary(&self.service, "typed variables", &self.problems, hint)
    }
}

/// Check every listed variable of a service, working out ports and defaults.
pub fn resolve(config: &ServiceConfig) -> Resolution {
    let mut resolution = Resolution {
        service: config.name().to_string(),
        ..Resolution::default()
    };
    for spec in specs(config) {
        resolve::one(config, &spec, &mut resolution);
    }
    resolution
}

/// A sh variable name: letters, digits and `_`, not starting with a digit.
pub(crate) fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests;

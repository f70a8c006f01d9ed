//! `missing-env --script`: a sh snippet for the role config.

use super::{REQUIRED_LIST, VarSpec, is_identifier};
use std::fmt::Write as _;

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

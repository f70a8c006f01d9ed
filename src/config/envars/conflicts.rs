//! Ports claimed twice: by two services of a playpen, or two variables of one.

use super::Resolution;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

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

//! service_user and service_group (§13.1): the user the service's processes run as,
//! looked up here so that `check` and `start` refuse the same users.

use super::Reader;
use crate::process::user::{RunAs, Unknown};

pub(super) fn read(r: &mut Reader) -> Option<RunAs> {
    let group = r.value("service_group");
    let Some(user) = r.value("service_user") else {
        if group.is_some() {
            r.missing(format!(
                "service_group={:?}{} needs service_user: set the user the service runs as (the group alone is not changed)",
                group.unwrap_or_default(),
                r.origin("service_group")
            ));
        }
        return None;
    };
    match RunAs::lookup(user, group) {
        Ok(run_as) => {
            if let Some(why) = run_as.unreachable() {
                r.bad(
                    "service_user",
                    &format!(
                        "{why}: run servicectl as root (sudo), or remove service_user to run the service as the caller"
                    ),
                );
                return None;
            }
            Some(run_as)
        }
        Err(Unknown::User(why)) => {
            r.bad(
                "service_user",
                &format!("{why}: create it (adduser --system {user}), or name a user that exists"),
            );
            None
        }
        Err(Unknown::Group(why)) => {
            let group = group.unwrap_or_default();
            r.bad(
                "service_group",
                &format!(
                    "{why}: create it (addgroup --system {group}), or name a group that exists"
                ),
            );
            None
        }
    }
}

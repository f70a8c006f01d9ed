//! Which services a playpen knows, and where each one's files are (§2, §3, §4).
//!
//! A service is known as soon as `ext/services/$NAME-$VERSION/` exists (a packaged
//! service) or `services/$NAME/config` exists without one (a project-local service,
//! which has no version).

use crate::error::{Error, ErrorKind, Result};
use crate::playpen::Playpen;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceId {
    pub name: String,
    /// None for a project-local service.
    pub version: Option<String>,
}

impl ServiceId {
    /// `NAME-VERSION`, or `NAME` for a project-local service.
    pub fn dir_name(&self) -> String {
        match &self.version {
            Some(v) => format!("{}-{v}", self.name),
            None => self.name.clone(),
        }
    }
}

/// Split `NAME-VERSION` at the first `-` followed by a digit: `httpd-python-1.0` is
/// service `httpd-python`, version `1.0`.
pub fn split_name_version(s: &str) -> Option<(&str, &str)> {
    let bytes = s.as_bytes();
    (1..bytes.len().saturating_sub(1))
        .find(|&i| bytes[i] == b'-' && bytes[i + 1].is_ascii_digit())
        .map(|i| (&s[..i], &s[i + 1..]))
}

/// Is `name` acceptable as a service name (it becomes part of file names)?
pub fn valid_service_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(['-', '.'])
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.+".contains(c))
}

/// Compare versions the way people read them: numeric runs as numbers.
pub fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    let parts = |s: &str| -> Vec<(u64, String)> {
        s.split(['.', '-', '_'])
            .map(|p| {
                let digits: String = p.chars().take_while(|c| c.is_ascii_digit()).collect();
                (digits.parse().unwrap_or(0), p[digits.len()..].to_string())
            })
            .collect()
    };
    parts(a).cmp(&parts(b))
}

/// The services a playpen knows.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    services: BTreeMap<String, ServiceId>,
}

impl Catalog {
    pub fn load(playpen: &Playpen) -> Result<Catalog> {
        let mut services: BTreeMap<String, ServiceId> = BTreeMap::new();
        let ext_services = playpen.ext().join("services");
        if let Ok(entries) = std::fs::read_dir(&ext_services) {
            for entry in entries.flatten() {
                let file_name = entry.file_name();
                let Some(dir) = file_name.to_str() else {
                    continue;
                };
                if !entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    continue;
                }
                let Some((name, version)) = split_name_version(dir) else {
                    continue;
                };
                let id = ServiceId {
                    name: name.to_string(),
                    version: Some(version.to_string()),
                };
                // Two versions side by side happen mid-upgrade: the newer one wins.
                match services.get(name) {
                    Some(existing)
                        if compare_versions(existing.version.as_deref().unwrap_or(""), version)
                            .is_ge() => {}
                    _ => {
                        services.insert(name.to_string(), id);
                    }
                }
            }
        }
        if let Ok(entries) = std::fs::read_dir(playpen.root.join("services")) {
            for entry in entries.flatten() {
                let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                    continue;
                };
                if services.contains_key(&name)
                    || split_name_version(&name).is_some_and(|(n, _)| services.contains_key(n))
                    || !entry.path().join("config").is_file()
                {
                    continue;
                }
                services.insert(
                    name.clone(),
                    ServiceId {
                        name,
                        version: None,
                    },
                );
            }
        }
        Ok(Catalog { services })
    }

    pub fn get(&self, name: &str) -> Result<&ServiceId> {
        self.services.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.services.keys().map(String::as_str).collect();
            let hint = if known.is_empty() {
                "no services are installed in this playpen; install a package with `servicectl package install DIR`".to_string()
            } else {
                let known: Vec<String> = known.iter().map(|s| s.to_string()).collect();
                format!("known services: {}", crate::text::short_list(&known, 12))
            };
            Error::new(
                ErrorKind::UnknownService,
                format!("unknown service (no ext/services/{name}-VERSION/ and no services/{name}/config)"),
            )
            .with_service(name)
            .with_hint(hint)
        })
    }

    pub fn contains(&self, name: &str) -> bool {
        self.services.contains_key(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.services.keys().map(String::as_str)
    }
}

/// The service's own directory in `ext/`, if it is packaged.
pub fn ext_dir(playpen: &Playpen, id: &ServiceId) -> Option<PathBuf> {
    id.version
        .as_ref()
        .map(|_| playpen.ext().join("services").join(id.dir_name()))
}

/// The project's customisation directories, most specific first.
pub fn project_dirs(playpen: &Playpen, id: &ServiceId) -> Vec<PathBuf> {
    let services = playpen.root.join("services");
    match &id.version {
        Some(_) => vec![services.join(id.dir_name()), services.join(&id.name)],
        None => vec![services.join(&id.name)],
    }
}

/// The fragments sourced for a service, in order: the first existing of each of the
/// `.pre`, plain and `.post` groups, project before `ext/` (§4).
pub fn config_fragments(playpen: &Playpen, id: &ServiceId) -> Vec<PathBuf> {
    let mut dirs = project_dirs(playpen, id);
    dirs.extend(ext_dir(playpen, id));
    ["config.pre", "config", "config.post"]
        .iter()
        .filter_map(|file| dirs.iter().map(|d| d.join(file)).find(|p| p.is_file()))
        .collect()
}

/// The service's own script (`pre-start`, `ping`, …): in its `ext/` directory for a
/// packaged service, in `services/$NAME/` for a project-local one. (A project's
/// override of a packaged service's ping is looked up by the caller.)
pub fn package_script(playpen: &Playpen, id: &ServiceId, file: &str) -> Option<PathBuf> {
    let dir = ext_dir(playpen, id).or_else(|| project_dirs(playpen, id).pop())?;
    let path = dir.join(file);
    path.is_file().then_some(path)
}

/// An installed package: its version and the services its `.services` file lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledPackage {
    pub version: String,
    pub services: Vec<String>,
}

/// The installed packages by name, from `ext/services/$PACKAGE-$VERSION.services`.
pub fn installed_packages(playpen: &Playpen) -> BTreeMap<String, InstalledPackage> {
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(playpen.ext().join("services")) else {
        return out;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(stem) = file_name.to_str().and_then(|f| f.strip_suffix(".services")) else {
            continue;
        };
        let Some((name, version)) = split_name_version(stem) else {
            continue;
        };
        let services =
            parse_services_list(&std::fs::read_to_string(entry.path()).unwrap_or_default());
        out.insert(
            name.to_string(),
            InstalledPackage {
                version: version.to_string(),
                services,
            },
        );
    }
    out
}

/// The service names of a `.services` file: one per line, `#` comments allowed.
pub fn parse_services_list(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// The package that provides a service. None for project-local services.
pub fn package_of(playpen: &Playpen, id: &ServiceId) -> Option<String> {
    id.version.as_ref()?;
    installed_packages(playpen)
        .into_iter()
        .find(|(_, p)| p.services.contains(&id.name))
        .map(|(name, _)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_name_and_version_at_first_dash_digit() {
        assert_eq!(split_name_version("redis-7.0"), Some(("redis", "7.0")));
        assert_eq!(
            split_name_version("httpd-python-1.0-2"),
            Some(("httpd-python", "1.0-2"))
        );
        assert_eq!(split_name_version("nover"), None);
        assert_eq!(split_name_version("trailing-"), None);
    }

    #[test]
    fn versions_compare_numerically() {
        assert!(compare_versions("1.10", "1.9").is_gt());
        assert!(compare_versions("2.0", "2.0").is_eq());
        assert!(compare_versions("1.0-1", "1.0-2").is_lt());
    }
}

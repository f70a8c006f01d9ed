//! Which services a playpen knows, and where each one's files are (packages in ext/, the project's customisations, their config fragments).
//!
//! A service is known as soon as `ext/services/$NAME-$VERSION/` exists (a packaged
//! service) or `services/$NAME/config` exists without one (a project-local service,
//! which has no version).
//!
//! Names may contain `-` and digits (`worker-2`, `svc-000`), so `NAME-VERSION` can be
//! ambiguous (`worker-2-1.0`). The *listed names* decide: every name of an
//! `ext/services/*.services` file and of the role's playpen_services (when the caller
//! has them: see `Session::open`); the longest listed name followed by `-` and a digit
//! is the name. Else the version is what follows the last `-` followed by a digit.

use crate::error::{Error, ErrorKind, Result};
use crate::playpen::Playpen;
use crate::playpen::{fsutil, names};
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

/// Is byte `i` of `s` a place where `NAME-VERSION` may split: a `-` with a non-empty
/// name before it and a digit after it?
fn is_split_point(s: &str, i: usize) -> bool {
    let b = s.as_bytes();
    i >= 1 && i + 1 < b.len() && b[i] == b'-' && b[i + 1].is_ascii_digit()
}

/// Every place where `s` may split, left to right.
fn split_points(s: &str) -> impl Iterator<Item = usize> + '_ {
    (1..s.len()).filter(move |&i| is_split_point(s, i))
}

/// Where `s` splits as the longest of `names` followed by `-` and a digit.
fn listed_split<'n>(s: &str, names: impl IntoIterator<Item = &'n str>) -> Option<usize> {
    names
        .into_iter()
        .filter(|n| s.starts_with(n) && is_split_point(s, n.len()))
        .map(str::len)
        .max()
}

fn split_at(s: &str, i: usize) -> (&str, &str) {
    (&s[..i], &s[i + 1..])
}

/// Split `NAME-VERSION`: NAME is the longest of the listed `names` that `s`
/// starts with, followed by `-` and a digit; else the version is what follows the last
/// `-` followed by a digit (`worker-2-1.0` is `worker-2`, version `1.0`, unless
/// `worker` is listed and `worker-2` is not). None when `s` has no such `-`.
pub fn split_name_version<'a, 'n>(
    s: &'a str,
    names: impl IntoIterator<Item = &'n str>,
) -> Option<(&'a str, &'a str)> {
    let at = listed_split(s, names).or_else(|| split_points(s).last())?;
    Some(split_at(s, at))
}

/// Split a package's `PACKAGE-VERSION` (the stem of its `.services` file) the same way,
/// with what the package itself says: the services it lists decide (a package is
/// usually named after its service: `httpd-python-1.0-2` listing `httpd-python`); else
/// a version that its services' own files carry (`carries(SERVICE, VERSION)`: e.g.
/// `ext/services/SERVICE-VERSION/` exists), leftmost first; else the last `-` followed by
/// a digit. Other packages' service names do not decide a package's name.
pub fn split_package_id<'a>(
    stem: &'a str,
    services: &[String],
    carries: impl Fn(&str, &str) -> bool,
) -> Option<(&'a str, &'a str)> {
    let at = listed_split(stem, services.iter().map(String::as_str))
        .or_else(|| {
            split_points(stem).find(|&i| {
                let version = &stem[i + 1..];
                services.iter().any(|s| carries(s, version))
            })
        })
        .or_else(|| split_points(stem).last())?;
    Some(split_at(stem, at))
}

/// Is `name` acceptable as a service name (it becomes part of file names)? The one
/// name rule of [`names`].
pub fn valid_service_name(name: &str) -> bool {
    names::is_valid(name)
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

/// How one directory was read, kept to explain an unknown name.
#[derive(Debug, Clone)]
struct Reading {
    /// `ext/services/NAME-VERSION` or, for a project directory set aside as a
    /// customisation of a packaged service, `services/NAME-VERSION`.
    dir: String,
    /// The directory's own name.
    base: String,
    id: ServiceId,
    /// The split was decided by a listed name (else: the last `-` followed by a digit).
    by_listed_name: bool,
}

/// The services a playpen knows.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    services: BTreeMap<String, ServiceId>,
    /// The names that decide a split → where each is listed.
    listed: BTreeMap<String, Vec<String>>,
    readings: Vec<Reading>,
    /// The role's playpen_services this catalog was loaded with.
    role_services: Option<Vec<String>>,
    /// Where playpen_services is set, for messages.
    role_config: String,
    /// Whether playpen_services could change how a directory reads (a directory name
    /// that splits in more than one place, or a project directory read as a
    /// customisation), so that the caller knows whether to look them up.
    role_sensitive: bool,
}

impl Catalog {
    /// The services of the playpen. `role_services` is the role's playpen_services
    /// when the caller has it (its names decide ambiguous splits, like those of the
    /// `.services` files); without it only the `.services` files do.
    pub fn load(playpen: &Playpen, role_services: Option<&[String]>) -> Result<Catalog> {
        let ext_services = playpen.ext().join("services");
        let mut dirs: Vec<String> = Vec::new();
        let mut listed: BTreeMap<String, Vec<String>> = BTreeMap::new();
        if let Ok(entries) = std::fs::read_dir(&ext_services) {
            for entry in entries.flatten() {
                let Some(file_name) = entry.file_name().to_str().map(str::to_string) else {
                    continue;
                };
                let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
                if is_dir {
                    dirs.push(file_name);
                } else if file_name.ends_with(".services") {
                    let text = fsutil::read_optional(&entry.path())?.unwrap_or_default();
                    for name in parse_services_list(&text) {
                        listed
                            .entry(name)
                            .or_default()
                            .push(format!("ext/services/{file_name}"));
                    }
                }
            }
        }
        let role_config = match playpen.role() {
            Ok(role) => format!("etc/roles/{role}/config"),
            Err(_) => "etc/roles/ROLE/config".to_string(),
        };
        if let Some(names) = role_services {
            let source = format!("playpen_services in {role_config}");
            for name in names {
                listed.entry(name.clone()).or_default().push(source.clone());
            }
        }
        dirs.sort();
        let names = || listed.keys().map(String::as_str);
        let mut services: BTreeMap<String, ServiceId> = BTreeMap::new();
        let mut readings = Vec::new();
        let mut role_sensitive = false;
        for dir in &dirs {
            let by_listed_name = listed_split(dir, names());
            let Some(at) = by_listed_name.or_else(|| split_points(dir).last()) else {
                continue;
            };
            role_sensitive |= split_points(dir).nth(1).is_some();
            let (name, version) = split_at(dir, at);
            // Not a service name: it could not be joined onto a path in var/.
            if !names::is_valid(name) {
                continue;
            }
            readings.push(Reading {
                dir: format!("ext/services/{dir}"),
                base: dir.clone(),
                id: ServiceId {
                    name: name.to_string(),
                    version: Some(version.to_string()),
                },
                by_listed_name: by_listed_name.is_some(),
            });
        }
        for reading in &readings {
            let (name, version) = (&reading.id.name, reading.id.version.as_deref());
            // Two versions side by side happen mid-upgrade: the newer one wins.
            match services.get(name) {
                Some(existing)
                    if compare_versions(
                        existing.version.as_deref().unwrap_or(""),
                        version.unwrap_or(""),
                    )
                    .is_ge() => {}
                _ => {
                    services.insert(name.clone(), reading.id.clone());
                }
            }
        }
        if let Ok(entries) = std::fs::read_dir(playpen.root.join("services")) {
            let mut project: Vec<String> = entries
                .flatten()
                .filter(|e| e.path().join("config").is_file())
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .filter(|name| names::is_valid(name))
                .collect();
            project.sort();
            for dir in project {
                if services.contains_key(&dir) {
                    continue;
                }
                // `services/NAME-VERSION/` customises a packaged NAME, unless the
                // directory's own name is a listed one.
                if !listed.contains_key(&dir) {
                    let by_listed_name = listed_split(&dir, names());
                    if let Some(at) = by_listed_name.or_else(|| split_points(&dir).last()) {
                        let (name, version) = split_at(&dir, at);
                        if services.contains_key(name) {
                            role_sensitive = true;
                            readings.push(Reading {
                                dir: format!("services/{dir}"),
                                base: dir.clone(),
                                id: ServiceId {
                                    name: name.to_string(),
                                    version: Some(version.to_string()),
                                },
                                by_listed_name: by_listed_name.is_some(),
                            });
                            continue;
                        }
                    }
                }
                services.insert(
                    dir.clone(),
                    ServiceId {
                        name: dir,
                        version: None,
                    },
                );
            }
        }
        Ok(Catalog {
            services,
            listed,
            readings,
            role_services: role_services.map(<[String]>::to_vec),
            role_config,
            role_sensitive,
        })
    }

    /// Whether the role's playpen_services could change what this catalog knows.
    pub fn role_sensitive(&self) -> bool {
        self.role_sensitive
    }

    /// The playpen_services this catalog was loaded with, if any.
    pub fn role_services(&self) -> Option<&[String]> {
        self.role_services.as_deref()
    }

    /// The service called `name`; a name that is not a service name (the one rule of
    /// [`names`]) is refused as unknown before anything is looked up.
    pub fn get(&self, name: &str) -> Result<&ServiceId> {
        names::check_service(name)?;
        self.services.get(name).ok_or_else(|| self.unknown(name))
    }

    /// Why `name` is not known: the directories that could have been it and how they
    /// read instead, or that there is none.
    fn unknown(&self, name: &str) -> Error {
        let known: Vec<String> = self.services.keys().cloned().collect();
        let known_hint = if known.is_empty() {
            "no services are installed in this playpen; install a package with `servicectl package install DIR`".to_string()
        } else {
            format!("known services: {}", crate::text::short_list(&known, 12))
        };
        let misread: Vec<&Reading> = self
            .readings
            .iter()
            .filter(|r| r.id.name != name)
            .filter(|r| {
                if r.dir.starts_with("ext/") {
                    r.base.starts_with(name) && is_split_point(&r.base, name.len())
                } else {
                    r.base == name
                }
            })
            .collect();
        if misread.is_empty() {
            return Error::new(
                ErrorKind::UnknownService,
                format!(
                    "unknown service (no ext/services/{name}-VERSION/ and no services/{name}/config)"
                ),
            )
            .with_service(name)
            .with_hint(known_hint);
        }
        let why: Vec<String> = misread
            .iter()
            .map(|r| {
                let version = r.id.version.as_deref().unwrap_or("");
                let what = if r.dir.starts_with("ext/") {
                    format!("service {}, version {version}", r.id.name)
                } else {
                    format!(
                        "the project's customisation of {} version {version} (services/NAME-VERSION/)",
                        r.id.name
                    )
                };
                let reason = if r.by_listed_name {
                    format!(
                        "{} is a listed name ({}) and {name} is not",
                        r.id.name,
                        self.listed
                            .get(&r.id.name)
                            .map(|s| s.join(", "))
                            .unwrap_or_default()
                    )
                } else {
                    format!(
                        "no .services file or playpen_services lists {name}, so the version is what follows the last '-' followed by a digit"
                    )
                };
                format!("{}/ exists but reads as {what}: {reason}", r.dir)
            })
            .collect();
        Error::new(
            ErrorKind::UnknownService,
            format!(
                "unknown service: {} (a NAME-VERSION directory is split after the longest name listed in an ext/services/*.services file or in playpen_services, else at the last '-' followed by a digit)",
                why.join("; ")
            ),
        )
        .with_service(name)
        .with_hint(format!(
            "list {name} in its package's ext/services/PACKAGE-VERSION.services (or in playpen_services in {}); {known_hint}",
            self.role_config
        ))
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
/// `.pre`, plain and `.post` groups, project before `ext/`.
pub fn config_fragments(playpen: &Playpen, id: &ServiceId) -> Vec<PathBuf> {
    config_fragments_with(playpen, id, &[])
}

/// [`config_fragments`] with stand-ins: for each `(path, stand_in)`, `path` counts as
/// existing and `stand_in` is sourced in its place (`edit` checks a candidate so,
/// before it replaces anything).
pub fn config_fragments_with(
    playpen: &Playpen,
    id: &ServiceId,
    stand_ins: &[(PathBuf, PathBuf)],
) -> Vec<PathBuf> {
    let mut dirs = project_dirs(playpen, id);
    dirs.extend(ext_dir(playpen, id));
    let found = |p: PathBuf| match stand_ins.iter().find(|(path, _)| *path == p) {
        Some((_, stand_in)) => Some(stand_in.clone()),
        None => p.is_file().then_some(p),
    };
    ["config.pre", "config", "config.post"]
        .iter()
        .filter_map(|file| dirs.iter().find_map(|d| found(d.join(file))))
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

/// The installed packages by name, from `ext/services/$PACKAGE-$VERSION.services`
/// (split by [`split_package_id`]: the services it lists, else the version of their
/// `ext/services/SERVICE-VERSION/` directories, else the last `-` followed by a digit).
pub fn installed_packages(playpen: &Playpen) -> BTreeMap<String, InstalledPackage> {
    let mut out = BTreeMap::new();
    let ext_services = playpen.ext().join("services");
    let Ok(entries) = std::fs::read_dir(&ext_services) else {
        return out;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(stem) = file_name.to_str().and_then(|f| f.strip_suffix(".services")) else {
            continue;
        };
        let services = parse_services_list(
            &fsutil::read_optional(&entry.path())
                .ok()
                .flatten()
                .unwrap_or_default(),
        );
        let carries = |service: &str, version: &str| {
            ext_services.join(format!("{service}-{version}")).is_dir()
        };
        let Some((name, version)) = split_package_id(stem, &services, carries) else {
            continue;
        };
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

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn unlisted_names_split_at_the_last_dash_digit() {
        let none = std::iter::empty();
        assert_eq!(
            split_name_version("redis-7.0", none.clone()),
            Some(("redis", "7.0"))
        );
        assert_eq!(
            split_name_version("httpd-python-1.0", none.clone()),
            Some(("httpd-python", "1.0"))
        );
        assert_eq!(
            split_name_version("worker-2-1.0", none.clone()),
            Some(("worker-2", "1.0"))
        );
        assert_eq!(
            split_name_version("svc-000-1.0", none.clone()),
            Some(("svc-000", "1.0"))
        );
        assert_eq!(
            split_name_version("worker-2", none.clone()),
            Some(("worker", "2"))
        );
        assert_eq!(split_name_version("nover", none.clone()), None);
        assert_eq!(split_name_version("trailing-", none.clone()), None);
        assert_eq!(split_name_version("-1.0", none), None);
    }

    #[test]
    fn listed_names_decide_an_ambiguous_split() {
        let listed = names(&["httpd-python", "worker", "svc-000"]);
        let split = |s| split_name_version(s, listed.iter().map(String::as_str));
        // A release suffix stays in the version when the name is listed…
        assert_eq!(split("httpd-python-1.0-2"), Some(("httpd-python", "1.0-2")));
        assert_eq!(
            split_name_version("httpd-python-1.0-2", std::iter::empty()),
            Some(("httpd-python-1.0", "2"))
        );
        // …a listed name wins over the last dash-digit…
        assert_eq!(split("worker-2-1.0"), Some(("worker", "2-1.0")));
        assert_eq!(split("svc-000-1.0"), Some(("svc-000", "1.0")));
        // …the longest listed name wins…
        let both = names(&["worker", "worker-2"]);
        assert_eq!(
            split_name_version("worker-2-1.0", both.iter().map(String::as_str)),
            Some(("worker-2", "1.0"))
        );
        assert_eq!(
            split_name_version("worker-1.0", both.iter().map(String::as_str)),
            Some(("worker", "1.0"))
        );
        // …and a listed name decides only when `-` and a digit follow it.
        assert_eq!(split("workers-1.0"), Some(("workers", "1.0")));
        assert_eq!(split("worker"), None);
        assert_eq!(split("svc-000-x-1.0"), Some(("svc-000-x", "1.0")));
    }

    #[test]
    fn package_ids_split_by_their_own_services() {
        let never = |_: &str, _: &str| false;
        // Named after its service.
        assert_eq!(
            split_package_id("worker-2-1.0", &names(&["worker-2"]), never),
            Some(("worker-2", "1.0"))
        );
        assert_eq!(
            split_package_id("httpd-python-1.0-2", &names(&["httpd-python"]), never),
            Some(("httpd-python", "1.0-2"))
        );
        // Not named after a service: the version its services carry, else the last
        // dash-digit; other packages' services do not count.
        let duo = names(&["duo-a", "duo-b"]);
        assert_eq!(
            split_package_id("duo-1.0", &duo, never),
            Some(("duo", "1.0"))
        );
        assert_eq!(
            split_package_id("duo-1.0-2", &duo, |s, v| s == "duo-b" && v == "1.0-2"),
            Some(("duo", "1.0-2"))
        );
        assert_eq!(
            split_package_id("pool-2-1.0", &names(&["pool-2-a"]), never),
            Some(("pool-2", "1.0"))
        );
        assert_eq!(split_package_id("nover", &duo, never), None);
    }

    #[test]
    fn catalog_reads_both_kinds_of_name_side_by_side() {
        let dir = tempfile::tempdir().unwrap();
        let playpen = Playpen {
            root: dir.path().to_path_buf(),
        };
        let ext = dir.path().join("ext/services");
        for d in ["worker-1.0", "worker-2-1.0", "svc-000-3.1", "web-1.0-2"] {
            std::fs::create_dir_all(ext.join(d)).unwrap();
        }
        std::fs::write(ext.join("workers-1.0.services"), "worker\nworker-2 # two\n").unwrap();
        let catalog = Catalog::load(&playpen, None).unwrap();
        let id = |n: &str| catalog.get(n).map(|id| id.dir_name());
        assert_eq!(id("worker").unwrap(), "worker-1.0");
        assert_eq!(id("worker-2").unwrap(), "worker-2-1.0");
        assert_eq!(id("svc-000").unwrap(), "svc-000-3.1");
        assert_eq!(id("web-1.0").unwrap(), "web-1.0-2");
        let err = catalog.get("web").unwrap_err().to_string();
        assert!(
            err.contains("ext/services/web-1.0-2/ exists but reads as service web-1.0, version 2"),
            "{err}"
        );
        assert!(catalog.role_sensitive());
        // playpen_services decides too.
        let catalog = Catalog::load(&playpen, Some(&names(&["web"]))).unwrap();
        assert_eq!(catalog.get("web").unwrap().dir_name(), "web-1.0-2");
        assert_eq!(
            catalog.get("web").unwrap().version.as_deref(),
            Some("1.0-2")
        );
        assert!(!catalog.contains("web-1.0"));
        // The package is split by the services it lists.
        let packages = installed_packages(&playpen);
        assert_eq!(packages["workers"].version, "1.0");
    }

    #[test]
    fn versions_compare_numerically() {
        assert!(compare_versions("1.10", "1.9").is_gt());
        assert!(compare_versions("2.0", "2.0").is_eq());
        assert!(compare_versions("1.0-1", "1.0-2").is_lt());
    }
}

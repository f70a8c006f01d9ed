//! The files a service's service_watch patterns name (SPEC §12.2): which paths match,
//! and which folders can hold a match now, so that the supervisor watches those
//! folders and no others (inotify has no recursive watch). var/ is never among them.

use globset::{GlobBuilder, GlobMatcher, GlobSet, GlobSetBuilder};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// One step of a pattern, from the root down.
#[derive(Debug, Clone)]
enum Step {
    /// A folder or file name, as written.
    Name(String),
    /// A name with wildcards.
    Glob(GlobMatcher),
    /// `**`: any number of folders.
    AnyDepth,
}

/// The compiled patterns of one service.
#[derive(Debug, Clone)]
pub struct Patterns {
    set: GlobSet,
    steps: Vec<Vec<Step>>,
}

/// A folder never looked into: what servicectl writes, and git's own files.
fn skipped(rel: &Path) -> bool {
    rel == Path::new("var") || rel.file_name().is_some_and(|n| n == ".git")
}

fn glob(text: &str) -> Result<GlobMatcher, String> {
    GlobBuilder::new(text)
        .literal_separator(true)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| format!("`{text}` is not a glob: {}", e.kind()))
}

impl Patterns {
    /// Compile `patterns` (checked by the settings already; an error names the bad one).
    pub fn new(patterns: &[String]) -> Result<Patterns, String> {
        let mut set = GlobSetBuilder::new();
        let mut steps = Vec::new();
        for pattern in patterns {
            let clean = pattern.trim_start_matches("./");
            set.add(
                GlobBuilder::new(clean)
                    .literal_separator(true)
                    .build()
                    .map_err(|e| format!("`{pattern}` is not a glob: {}", e.kind()))?,
            );
            let mut parts = Vec::new();
            for part in clean.split('/').filter(|p| !p.is_empty() && *p != ".") {
                parts.push(if part == "**" {
                    Step::AnyDepth
                } else if part.contains(['*', '?', '[', '{']) {
                    Step::Glob(glob(part)?)
                } else {
                    Step::Name(part.to_string())
                });
            }
            steps.push(parts);
        }
        let set = set.build().map_err(|e| e.to_string())?;
        Ok(Patterns { set, steps })
    }

    /// `rel` (relative to the playpen root) is a watched file.
    pub fn matches(&self, rel: &Path) -> bool {
        !rel.starts_with("var") && self.set.is_match(rel)
    }

    /// The folders (relative to `root`) where a matching file can appear now: each
    /// folder a pattern reaches down to, so that a new folder on the way is seen too.
    pub fn folders(&self, root: &Path) -> BTreeSet<PathBuf> {
        let mut out = BTreeSet::new();
        for steps in &self.steps {
            reach(root, Path::new(""), steps, &mut out);
        }
        out
    }

    /// A file under `root` (in a folder of [`Patterns::folders`]) that matches.
    pub fn first_match(&self, root: &Path) -> Option<PathBuf> {
        self.folders(root).into_iter().find_map(|dir| {
            std::fs::read_dir(root.join(&dir))
                .ok()?
                .flatten()
                .map(|e| dir.join(e.file_name()))
                .find(|rel| self.matches(rel))
        })
    }
}

/// Add `dir` and every folder below it that `steps` can go on in.
fn reach(root: &Path, dir: &Path, steps: &[Step], out: &mut BTreeSet<PathBuf>) {
    if !root.join(dir).is_dir() || skipped(dir) {
        return;
    }
    out.insert(dir.to_path_buf());
    let Some((step, rest)) = steps.split_first() else {
        return;
    };
    if rest.is_empty() && !matches!(step, Step::AnyDepth) {
        // The last step names files of this folder.
        return;
    }
    let subfolders = || {
        std::fs::read_dir(root.join(dir))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.file_name())
    };
    match step {
        Step::Name(name) => reach(root, &dir.join(name), rest, out),
        Step::Glob(g) => {
            for name in subfolders() {
                if g.is_match(&name) {
                    reach(root, &dir.join(name), rest, out);
                }
            }
        }
        Step::AnyDepth => {
            // Zero folders deep, or one more and `**` again.
            reach(root, dir, rest, out);
            for name in subfolders() {
                reach(root, &dir.join(name), steps, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for f in files {
            let path = dir.path().join(f);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "").unwrap();
        }
        dir
    }

    fn folders(p: &Patterns, root: &Path) -> Vec<String> {
        p.folders(root)
            .iter()
            .map(|d| d.display().to_string())
            .collect()
    }

    #[test]
    fn the_folders_a_pattern_can_match_in_and_never_var() {
        let root = tree(&[
            "src/app.py",
            "src/lib/util.py",
            "src/lib/deep/x.py",
            "docs/a.md",
            "var/run/x.py",
            "src/.git/config",
            "conf/a/settings.toml",
            "conf/b/other.txt",
        ]);
        let p = Patterns::new(&["src/**/*.py".into(), "conf/*/settings.toml".into()]).unwrap();
        assert_eq!(
            folders(&p, root.path()),
            [
                "",
                "conf",
                "conf/a",
                "conf/b",
                "src",
                "src/lib",
                "src/lib/deep"
            ]
        );
        let all = Patterns::new(&["**/*.py".into()]).unwrap();
        assert!(
            !folders(&all, root.path())
                .iter()
                .any(|f| f.starts_with("var"))
        );
        assert!(all.matches(Path::new("src/lib/deep/x.py")));
        assert!(!all.matches(Path::new("var/run/x.py")));
        assert!(p.matches(Path::new("src/app.py")));
        assert!(!p.matches(Path::new("src/app.pyc")));
        // `*` stays in its folder; `**` crosses folders.
        let one = Patterns::new(&["src/*.py".into()]).unwrap();
        assert!(!one.matches(Path::new("src/lib/util.py")));
        assert_eq!(folders(&one, root.path()), ["", "src"]);
        assert_eq!(
            one.first_match(root.path()),
            Some(PathBuf::from("src/app.py"))
        );
        let none = Patterns::new(&["src/*.rs".into()]).unwrap();
        assert_eq!(none.first_match(root.path()), None);
    }
}

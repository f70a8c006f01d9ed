//! What `start` will execute, checked before anything starts, so that `check` finds what
//! would make the exec fail (and `start` refuses it before the first process): a program
//! that is neither a binary nor a `#!` script (ENOEXEC), a `#!` interpreter or ELF loader
//! that does not exist (ENOENT), an environment too big for exec (E2BIG), and hook
//! strings that sh cannot parse. Nothing here runs a program; the hooks are parsed by
//! `sh -n`, all of a command's hooks in one sh process.

use crate::config::Origin;
use crate::error::{Error, Result};
use crate::process::spawn::ExecSize;
use crate::service::hooks::Hook;
use crate::service::prepared::Prepared;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::{Command, Stdio};

/// How a file is executed, which decides what a file without `#!` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// posix_spawn (service_program): such a file fails with ENOEXEC.
    Spawn,
    /// execvp (hooks and service scripts): glibc runs such a file with /bin/sh.
    Execvp,
}

/// The file a setting names (service_program, service_start, …) can be executed the way
/// servicectl will execute it.
pub fn check_file(
    prepared: &Prepared,
    setting: &str,
    path: &Path,
    cwd: &Path,
    how: Via,
) -> Result<()> {
    match problem(path, cwd, how) {
        None => Ok(()),
        Some(problem) => Err(Error::config(format!(
            "{setting}{}: cannot execute {}: {problem}",
            prepared.config.origin_note(setting),
            path.display()
        ))
        .with_service(prepared.name())
        .with_hint(
            "make it a binary for this system, or a script whose first line is #! and an interpreter that exists (such as #!/bin/sh)",
        )),
    }
}

/// The service's environment, with its program's arguments and with each hook, fits in
/// what exec allows.
pub fn check_environment(prepared: &Prepared, program: Option<&Path>) -> Result<()> {
    let settings = &prepared.settings;
    let longest_hook = hook_texts(prepared)
        .map(|(_, text)| text)
        .max_by_key(|t| t.len())
        .unwrap_or("");
    let hook_args: Vec<String> = ["-c", longest_hook, prepared.name()]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let size = program
        .map(|p| ExecSize::of(p, &p.display().to_string(), &settings.flags, &prepared.env))
        .filter(|size| !size.fits())
        .unwrap_or_else(|| ExecSize::of(Path::new("/bin/sh"), "sh", &hook_args, &prepared.env));
    if size.fits() {
        return Ok(());
    }
    let origin = |name: &str| match prepared.config.vars.get(name).map(|v| &v.origin) {
        Some(Origin::File(p)) => format!(", set in {}", p.display()),
        _ => String::new(),
    };
    let hint = if size.too_long.is_empty() {
        "make the largest variables smaller (pass big data in a file instead), or raise the stack limit (ulimit -s): exec allows a quarter of it"
    } else {
        "pass big data in a file instead: no one variable or argument may be longer, whatever the stack limit"
    };
    Err(Error::config(format!(
        "the service's environment is too big to start a program with: {}",
        size.describe(origin)
    ))
    .with_service(prepared.name())
    .with_hint(hint))
}

/// The hook strings a service sets (empty ones run nothing).
fn hook_texts(prepared: &Prepared) -> impl Iterator<Item = (Hook, &str)> {
    let hooks = &prepared.settings.hooks;
    [
        (Hook::PreStart, &hooks.pre_start),
        (Hook::PostStart, &hooks.post_start),
        (Hook::PreStop, &hooks.pre_stop),
        (Hook::PostStop, &hooks.post_stop),
    ]
    .into_iter()
    .filter_map(|(hook, text)| {
        text.as_deref()
            .filter(|t| !t.trim().is_empty())
            .map(|t| (hook, t))
    })
}

/// Every hook string of these services that sh cannot parse, as each service's error;
/// one `sh -n` for all of them when they are fine.
pub fn hook_problems<'a>(prepared: impl Iterator<Item = &'a Prepared>) -> Vec<(String, Error)> {
    let hooks: Vec<(&Prepared, Hook, &str)> = prepared
        .flat_map(|p| hook_texts(p).map(move |(hook, text)| (p, hook, text)))
        .collect();
    let texts: Vec<&str> = hooks.iter().map(|(_, _, text)| *text).collect();
    hook_syntax_errors(&texts)
        .into_iter()
        .map(|(i, said)| {
            let (p, hook, _) = hooks[i];
            let variable = hook.variable();
            (
                p.name().to_string(),
                Error::config(format!(
                    "{variable}{} is not valid sh: {said}",
                    p.config.origin_note(variable)
                ))
                .with_service(p.name())
                .with_hint(format!(
                    "fix the command string (it runs as `sh -c \"${variable}\"`)"
                )),
            )
        })
        .collect()
}

/// How deep `#!` interpreters are followed (the kernel allows a few levels).
const MAX_NESTING: usize = 4;

/// The bytes of a file the kernel looks at to pick a format (BINPRM_BUF_SIZE).
const HEAD: usize = 256;

/// Why exec of `path` would fail, if it would (`it …`, `its …`): its format, its `#!`
/// interpreter or its ELF loader. `cwd` is where the program runs (a relative
/// interpreter is found there). A file that cannot be read is not judged (exec needs
/// only the execute bit).
pub fn problem(path: &Path, cwd: &Path, how: Via) -> Option<String> {
    problem_at(path, cwd, how, 0)
}

fn problem_at(path: &Path, cwd: &Path, how: Via, depth: usize) -> Option<String> {
    let file = std::fs::File::open(path).ok()?;
    let mut head = vec![0u8; HEAD];
    let n = read_at_most(&file, &mut head, 0);
    head.truncate(n);
    if head.starts_with(b"\x7fELF") {
        let loader = elf_interpreter(&file, &head)?;
        let loader_path = Path::new(&loader);
        return (!loader_path.exists()).then(|| {
            format!(
                "it needs the ELF loader {loader}, which does not exist (it was built for another system or C library)"
            )
        });
    }
    if let Some(line) = head.strip_prefix(b"#!") {
        return shebang_problem(line, cwd, depth);
    }
    if how == Via::Execvp && cfg!(target_env = "gnu") && depth == 0 {
        return None;
    }
    if binfmt_misc_handles(path, &head) {
        return None;
    }
    Some("it is neither a binary nor a script with a #! line (exec fails with ENOEXEC)".into())
}

fn read_at_most(file: &std::fs::File, buf: &mut [u8], offset: u64) -> usize {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) | Err(_) => break,
            Ok(n) => done += n,
        }
    }
    done
}

/// The `#!` line (after `#!`): the interpreter must exist, be executable, and itself be
/// executable in turn.
fn shebang_problem(line: &[u8], cwd: &Path, depth: usize) -> Option<String> {
    let end = line.iter().position(|&b| b == b'\n');
    let line = &line[..end.unwrap_or(line.len())];
    let start = line.iter().position(|&b| b != b' ' && b != b'\t');
    let Some(start) = start else {
        return Some("its #! line names no interpreter".into());
    };
    let rest = &line[start..];
    let len = rest
        .iter()
        .position(|&b| b == b' ' || b == b'\t' || b == 0)
        .unwrap_or(rest.len());
    if end.is_none() && len == rest.len() {
        return Some(format!(
            "its #! line is longer than the {} bytes the kernel reads",
            HEAD - 1
        ));
    }
    let name = String::from_utf8_lossy(&rest[..len]).into_owned();
    let interpreter = cwd.join(&name);
    let Ok(meta) = std::fs::metadata(&interpreter) else {
        return Some(format!("its #! interpreter {name} does not exist"));
    };
    if !meta.is_file() || !crate::playpen::fsutil::is_executable(&interpreter) {
        return Some(format!(
            "its #! interpreter {name} is not an executable file"
        ));
    }
    if depth + 1 >= MAX_NESTING {
        return None;
    }
    // The kernel runs the interpreter itself, without a shell to fall back on.
    problem_at(&interpreter, cwd, Via::Spawn, depth + 1)
        .map(|p| format!("its #! interpreter {name} cannot be executed: {p}"))
}

/// The PT_INTERP path of an ELF file (its dynamic loader), if it has one.
fn elf_interpreter(file: &std::fs::File, head: &[u8]) -> Option<String> {
    let wide = match head.get(4)? {
        1 => false,
        2 => true,
        _ => return None,
    };
    let big = match head.get(5)? {
        1 => false,
        2 => true,
        _ => return None,
    };
    let num = |bytes: &[u8]| -> u64 {
        let mut v = 0u64;
        if big {
            for &b in bytes {
                v = (v << 8) | u64::from(b);
            }
        } else {
            for &b in bytes.iter().rev() {
                v = (v << 8) | u64::from(b);
            }
        }
        v
    };
    let (phoff, phentsize, phnum) = if wide {
        (
            num(head.get(32..40)?),
            num(head.get(54..56)?),
            num(head.get(56..58)?),
        )
    } else {
        (
            num(head.get(28..32)?),
            num(head.get(42..44)?),
            num(head.get(44..46)?),
        )
    };
    let entry = usize::try_from(phentsize).ok()?;
    if entry < if wide { 56 } else { 32 } || phnum > 1024 {
        return None;
    }
    let mut table = vec![0u8; entry * phnum as usize];
    if read_at_most(file, &mut table, phoff) < table.len() {
        return None;
    }
    for header in table.chunks(entry) {
        const PT_INTERP: u64 = 3;
        if num(&header[0..4]) != PT_INTERP {
            continue;
        }
        let (offset, size) = if wide {
            (num(&header[8..16]), num(&header[32..40]))
        } else {
            (num(&header[4..8]), num(&header[16..20]))
        };
        if size == 0 || size > 4096 {
            return None;
        }
        let mut path = vec![0u8; size as usize];
        let n = read_at_most(file, &mut path, offset);
        path.truncate(n);
        let path = path.split(|&b| b == 0).next().unwrap_or_default();
        return Some(String::from_utf8_lossy(path).into_owned());
    }
    None
}

/// Whether an enabled binfmt_misc entry (a registered interpreter, such as qemu or
/// wine) takes a file with this start or name.
fn binfmt_misc_handles(path: &Path, head: &[u8]) -> bool {
    let dir = Path::new("/proc/sys/fs/binfmt_misc");
    let enabled = std::fs::read_to_string(dir.join("status"))
        .map(|s| s.trim() == "enabled")
        .unwrap_or(false);
    if !enabled {
        return false;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    let extension = path.extension().map(|e| e.to_string_lossy().into_owned());
    entries.flatten().any(|entry| {
        let name = entry.file_name();
        if name == "status" || name == "register" {
            return false;
        }
        let Ok(text) = std::fs::read_to_string(entry.path()) else {
            return false;
        };
        binfmt_entry_matches(&text, extension.as_deref(), head)
    })
}

fn binfmt_entry_matches(entry: &str, extension: Option<&str>, head: &[u8]) -> bool {
    let mut lines = entry.lines();
    if lines.next().map(str::trim) != Some("enabled") {
        return false;
    }
    let (mut offset, mut magic, mut mask, mut ext) = (0usize, None, None, None);
    for line in lines {
        if let Some(v) = line.strip_prefix("offset ") {
            offset = v.trim().parse().unwrap_or(0);
        } else if let Some(v) = line.strip_prefix("magic ") {
            magic = hex(v.trim());
        } else if let Some(v) = line.strip_prefix("mask ") {
            mask = hex(v.trim());
        } else if let Some(v) = line.strip_prefix("extension ") {
            ext = Some(v.trim().trim_start_matches('.').to_string());
        }
    }
    if let Some(ext) = ext {
        return extension == Some(ext.as_str());
    }
    let Some(magic) = magic else {
        return false;
    };
    magic.iter().enumerate().all(|(i, m)| {
        let Some(b) = head.get(offset + i) else {
            return false;
        };
        let k = mask
            .as_ref()
            .and_then(|k| k.get(i))
            .copied()
            .unwrap_or(0xff);
        b & k == m & k
    })
}

fn hex(text: &str) -> Option<Vec<u8>> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Which of `hooks` (sh command strings, run as `sh -c HOOK`) sh cannot parse: their
/// indexes and what sh said. All of them are parsed by one `sh -n` when they are fine;
/// a batch that fails is split in halves until each bad hook is parsed alone (which
/// gives its own message and line).
pub fn hook_syntax_errors(hooks: &[&str]) -> Vec<(usize, String)> {
    let mut bad = Vec::new();
    find_bad_hooks(hooks, 0, &mut bad);
    bad
}

fn find_bad_hooks(hooks: &[&str], base: usize, bad: &mut Vec<(usize, String)>) {
    match hooks {
        [] => {}
        [hook] => {
            if let Err(said) = parse(hook) {
                bad.push((base, said));
            }
        }
        _ => {
            // Each hook in a group of its own (`:` keeps an empty or comment-only one valid),
            // so one hook's open `if` does not pair with another's `fi`.
            let script: String = hooks.iter().map(|h| format!("{{ :\n{h}\n}}\n")).collect();
            if parse(&script).is_ok() {
                return;
            }
            let (first, second) = hooks.split_at(hooks.len() / 2);
            find_bad_hooks(first, base, bad);
            find_bad_hooks(second, base + first.len(), bad);
        }
    }
}

/// `sh -n` on a script: Ok, or what sh said (its `sh: LINE:` prefix turned into
/// `line LINE:`).
fn parse(script: &str) -> Result<(), String> {
    let child = Command::new("/bin/sh")
        .arg("-n")
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        // No sh to parse with: start will say so when it runs the hook.
        return Ok(());
    };
    if let Some(mut stdin) = child.stdin.take() {
        // sh stops reading at the first error: a broken pipe here is that.
        let _ = stdin.write_all(script.as_bytes());
    }
    let Ok(output) = child.wait_with_output() else {
        return Ok(());
    };
    if output.status.success() {
        return Ok(());
    }
    let said = String::from_utf8_lossy(&output.stderr);
    let said = said.trim();
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| {
        regex::Regex::new(r"^[^:\n]*: (?:line )?(\d+): (.*)$").expect("valid regex")
    });
    let first = said.lines().next().unwrap_or("");
    Err(match re.captures(first) {
        Some(c) => format!("line {}: {}", &c[1], &c[2]),
        None if first.is_empty() => format!("sh -n {}", describe_status(output.status)),
        None => first.to_string(),
    })
}

fn describe_status(status: std::process::ExitStatus) -> String {
    match status.code() {
        Some(code) => format!("exited with status {code}"),
        None => "was killed".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bad_hook_is_found_with_its_own_line() {
        let hooks = [
            "echo ok",
            "if true; then echo",
            "# only a comment",
            "fi",
            "case x in",
            "echo \"fine\"",
        ];
        let bad = hook_syntax_errors(&hooks);
        let indexes: Vec<usize> = bad.iter().map(|(i, _)| *i).collect();
        assert_eq!(indexes, vec![1, 3, 4], "{bad:?}");
        assert!(bad[0].1.starts_with("line "), "{bad:?}");
    }

    #[test]
    fn good_hooks_need_no_split() {
        assert!(hook_syntax_errors(&["echo a", "x=1; [ \"$x\" = 1 ]", ""]).is_empty());
    }

    #[test]
    fn binfmt_entries_match_magic_under_mask_and_extensions() {
        let qemu = "enabled\ninterpreter /usr/bin/qemu\nflags: F\noffset 0\nmagic 7f454c4602\nmask ffffffffff\n";
        assert!(binfmt_entry_matches(qemu, None, b"\x7fELF\x02rest"));
        assert!(!binfmt_entry_matches(qemu, None, b"#!/bin/sh"));
        let jar = "enabled\ninterpreter /usr/bin/jexec\nflags: \nextension .jar\n";
        assert!(binfmt_entry_matches(jar, Some("jar"), b"PK"));
        assert!(!binfmt_entry_matches(jar, Some("txt"), b"PK"));
        assert!(!binfmt_entry_matches(
            "disabled\nextension .jar\n",
            Some("jar"),
            b""
        ));
    }
}

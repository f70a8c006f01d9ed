//! Small text helpers every layer shares: lists that stay one line, tails of output,
//! indentation and durations. A leaf: it imports nothing of ours, so any module may use it.

/// Where `needle` first occurs in `haystack`.
///
/// memchr, without the run-time CPU detection behind `memchr::memchr`: that detection
/// asks CPUID about eight times, and in a virtual machine every CPUID traps to the
/// hypervisor (6 µs each on the machine of docs/performance.md), which a short-lived
/// client pays on its first search. SSE2 is part of x86_64, so its searcher needs none.
pub fn find_byte(needle: u8, haystack: &[u8]) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    if let Some(sse2) = memchr::arch::x86_64::sse2::memchr::One::new(needle) {
        return sse2.find(haystack);
    }
    memchr::memchr(needle, haystack)
}

/// Every place `needle` occurs in `haystack`, in order (see [`find_byte`]).
pub fn byte_positions(needle: u8, haystack: &[u8]) -> impl Iterator<Item = usize> + '_ {
    let mut from = 0;
    std::iter::from_fn(move || {
        let at = from + find_byte(needle, haystack.get(from..)?)?;
        from = at + 1;
        Some(at)
    })
}

/// `a, b, c and 7 more`: a list that stays one readable line.
pub fn short_list(names: &[String], most: usize) -> String {
    if names.len() <= most {
        return names.join(", ");
    }
    format!(
        "{} and {} more",
        names[..most].join(", "),
        names.len() - most
    )
}

/// The last `n` lines of `text`, joined for a one-line message.
pub fn tail(text: &str, n: usize) -> String {
    last_lines(text, n).join(" | ")
}

/// The last `n` lines of `text`.
pub fn last_lines(text: &str, n: usize) -> Vec<&str> {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].to_vec()
}

pub fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn human_duration(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s if s < 86400 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        s => format!("{}d{:02}h", s / 86400, (s % 86400) / 3600),
    }
}

/// Text that may span lines (a description) on one line: messages and comments must
/// not break.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `secs` (Unix time) in the local time zone, from the C library's zone rules.
pub fn broken_down(secs: i64) -> libc::tm {
    // SAFETY: tm is plain data; localtime_r writes it and reads `t` only.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let t: libc::time_t = secs as libc::time_t;
    unsafe { libc::localtime_r(&t, &mut tm) };
    tm
}

/// `2026-12-01 10:20:00`, local time.
pub fn local_time(secs: f64) -> String {
    let tm = broken_down(secs as i64);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

/// `HH:MM:SS` (UTC) of now: the stamp of a log line of the supervisor or the keeper.
pub fn log_stamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!(
        "{:02}:{:02}:{:02}",
        secs / 3600 % 24,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_search_finds_what_a_plain_scan_finds() {
        // Lengths across the 16- and 64-byte blocks of the vector search, needles at the
        // edges and in the middle.
        for len in [0, 1, 15, 16, 17, 63, 64, 65, 200] {
            for every in [1, 2, 7, 16, 1000] {
                let hay: Vec<u8> = (0..len)
                    .map(|i| if i % every == every - 1 { b'\n' } else { b'x' })
                    .collect();
                let plain: Vec<usize> = (0..len).filter(|&i| hay[i] == b'\n').collect();
                assert_eq!(byte_positions(b'\n', &hay).collect::<Vec<_>>(), plain);
                assert_eq!(find_byte(b'\n', &hay), plain.first().copied());
            }
        }
    }
}

//! When the output keeper rotates a file: a pure function from the file's state and a
//! chunk read from a pipe to the writes and rotations that append it (SPEC §9.4).
//!
//! Rules: a chunk is written at once (nothing waits for the end of its line, so a
//! prompt without a newline shows); a file at or over `max_bytes` whose last byte is
//! `'\n'` is rotated before more is written; a file over the limit in the middle of a
//! line gets the rest of that line first, then rotates; a line that runs on past twice
//! the limit is split there (the only way a rotated file may end without a newline).
//! Within a chunk that crosses the limit, the line that crosses it is finished in the
//! current file and what follows goes to the next, so files stay close to the limit.

use std::ops::Range;

/// What the keeper knows of the file it appends to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileState {
    pub size: u64,
    /// The last byte written is `'\n'` (or the file is empty).
    pub at_line_end: bool,
}

impl FileState {
    pub const EMPTY: FileState = FileState {
        size: 0,
        at_line_end: true,
    };
}

/// One step of appending a chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Append these bytes of the chunk to the current file.
    Write(Range<usize>),
    /// Rotate: the current file becomes `.1`, a new empty file follows.
    Rotate,
}

/// The steps that append `chunk` to a file in `state` with the limit `max_bytes`, and
/// the file's state afterwards.
pub fn plan(state: FileState, chunk: &[u8], max_bytes: u64) -> (Vec<Step>, FileState) {
    let max = max_bytes.max(1);
    // A line that never ends is split here.
    let split = max.saturating_mul(2);
    let mut steps = Vec::new();
    let mut st = state;
    let mut pos = 0usize;
    while pos < chunk.len() {
        let rest = &chunk[pos..];
        if st.size >= max && (st.at_line_end || st.size >= split) {
            steps.push(Step::Rotate);
            st = FileState::EMPTY;
            continue;
        }
        // Never past the split point in one write.
        let allowed = usize::try_from(split - st.size).unwrap_or(usize::MAX);
        let window = &rest[..rest.len().min(allowed)];
        let take = if st.size >= max {
            // Over the limit in mid-line: finish the line (or go on to the split).
            newline_from(window, 0).unwrap_or(window.len())
        } else {
            // Under the limit: everything up to the end of the line that reaches it.
            let room = usize::try_from(max - st.size).unwrap_or(usize::MAX);
            newline_from(window, room - 1).unwrap_or(window.len())
        };
        steps.push(Step::Write(pos..pos + take));
        st.size += take as u64;
        st.at_line_end = rest[take - 1] == b'\n';
        pos += take;
    }
    (steps, st)
}

/// The length up to and including the first `'\n'` at or after index `from`.
fn newline_from(bytes: &[u8], from: usize) -> Option<usize> {
    if from >= bytes.len() {
        return None;
    }
    bytes[from..]
        .iter()
        .position(|&b| b == b'\n')
        .map(|i| from + i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feed chunks through `plan`; the files as they end up (oldest first) and the
    /// state of the last.
    fn run(chunks: &[&[u8]], max: u64) -> Vec<Vec<u8>> {
        let mut files = vec![Vec::new()];
        let mut st = FileState::EMPTY;
        for chunk in chunks {
            let (steps, next) = plan(st, chunk, max);
            for step in steps {
                match step {
                    Step::Write(r) => files.last_mut().unwrap().extend_from_slice(&chunk[r]),
                    Step::Rotate => files.push(Vec::new()),
                }
            }
            st = next;
            let last = files.last().unwrap();
            assert_eq!(st.size, last.len() as u64);
            assert_eq!(st.at_line_end, last.last().is_none_or(|&b| b == b'\n'));
        }
        files
    }

    fn text(files: &[Vec<u8>]) -> Vec<String> {
        files
            .iter()
            .map(|f| String::from_utf8(f.clone()).unwrap())
            .collect()
    }

    #[test]
    fn under_the_limit_a_chunk_is_one_write() {
        let (steps, st) = plan(FileState::EMPTY, b"abc", 10);
        assert_eq!(steps, [Step::Write(0..3)]);
        assert_eq!(
            st,
            FileState {
                size: 3,
                at_line_end: false
            }
        );
        // A prompt without a newline is written, not held back.
        assert_eq!(run(&[b"name? "], 100), [b"name? ".to_vec()]);
    }

    #[test]
    fn the_line_that_reaches_the_limit_ends_the_file() {
        // Limit 8: "aaaa\n" (5), "bbbb\n" reaches it; "cc\n" goes to the next file.
        assert_eq!(
            text(&run(&[b"aaaa\nbbbb\ncc\n"], 8)),
            ["aaaa\nbbbb\n", "cc\n"]
        );
    }

    #[test]
    fn a_full_file_rotates_before_more_is_written_never_after() {
        let (steps, st) = plan(FileState::EMPTY, b"0123456789\n", 6);
        assert_eq!(steps, [Step::Write(0..11)]);
        // Nothing more to write: no rotation yet (no empty file appears).
        assert_eq!(st.size, 11);
        let (steps, _) = plan(st, b"x\n", 6);
        assert_eq!(steps, [Step::Rotate, Step::Write(0..2)]);
    }

    #[test]
    fn a_file_over_the_limit_mid_line_gets_the_rest_of_the_line_first() {
        // The first chunk leaves the file over the limit in mid-line.
        assert_eq!(
            text(&run(&[b"aaaaaaaa", b"aa\nbb\n"], 6)),
            ["aaaaaaaaaa\n", "bb\n"]
        );
        // The same, the end of the line arriving in small pieces.
        assert_eq!(
            text(&run(&[b"aaaaaa", b"a", b"a", b"\n", b"b\n"], 5)),
            ["aaaaaaaa\n", "b\n"]
        );
    }

    #[test]
    fn a_line_longer_than_twice_the_limit_is_split_never_dropped() {
        let long = vec![b'x'; 25];
        let mut chunk = long.clone();
        chunk.extend_from_slice(b"\nend\n");
        let files = run(&[&chunk], 10);
        assert_eq!(
            text(&files),
            ["x".repeat(20), format!("{}\nend\n", "x".repeat(5))]
        );
        // Byte for byte what was written.
        assert_eq!(files.concat(), chunk);
        // Also when it arrives in pieces.
        let pieces: Vec<&[u8]> = chunk.chunks(3).collect();
        assert_eq!(run(&pieces, 10).concat(), chunk);
    }

    #[test]
    fn every_rotated_file_ends_a_line_and_nothing_is_lost_or_doubled() {
        // Numbered lines in chunks cut anywhere: every file but the last ends with a
        // newline, and the concatenation is the input.
        let input: Vec<u8> = (1..=2000)
            .flat_map(|i| format!("{i} {}\n", "p".repeat(i % 37)).into_bytes())
            .collect();
        for (cut, max) in [(1usize, 64u64), (7, 100), (4096, 1000), (65536, 65536)] {
            let chunks: Vec<&[u8]> = input.chunks(cut).collect();
            let files = run(&chunks, max);
            assert_eq!(files.concat(), input, "cut {cut} max {max}");
            for f in &files[..files.len() - 1] {
                assert_eq!(f.last(), Some(&b'\n'), "cut {cut} max {max}");
                assert!(f.len() as u64 >= max, "rotated early: {} < {max}", f.len());
                assert!(f.len() as u64 <= 2 * max, "{} > 2 × {max}", f.len());
            }
        }
    }

    #[test]
    fn a_file_found_over_the_limit_at_a_line_end_rotates_first() {
        let st = FileState {
            size: 500,
            at_line_end: true,
        };
        assert_eq!(plan(st, b"a\n", 100).0, [Step::Rotate, Step::Write(0..2)]);
        // One found far past the split point in mid-line (written by someone else)
        // rotates at once too.
        let st = FileState {
            size: 500,
            at_line_end: false,
        };
        assert_eq!(plan(st, b"a\n", 100).0, [Step::Rotate, Step::Write(0..2)]);
    }
}

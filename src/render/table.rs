//! Aligned columns, bounded: nothing read from disk or from a program reaches a format
//! width.

use std::borrow::Cow;

/// The most characters a table cell shows; what is longer (a note quoting a corrupt
/// file, a program's title) is cut, saying how long it was.
const MAX_CELL: usize = 300;

/// Columns are aligned up to this width; a longer cell pushes only its own row out.
const MAX_ALIGN: usize = 64;

/// Spaces to pad a cell with: padding stops at [`MAX_ALIGN`].
const SPACES: &str = match std::str::from_utf8(&[b' '; MAX_ALIGN]) {
    Ok(spaces) => spaces,
    Err(_) => panic!("spaces are text"),
};

/// How many characters a cell has (its bytes when it is ASCII, as nearly all are).
fn width(cell: &str) -> usize {
    if cell.is_ascii() {
        cell.len()
    } else {
        cell.chars().count()
    }
}

/// A cell as shown: at most [`MAX_CELL`] characters.
fn bounded_cell(cell: &str) -> Cow<'_, str> {
    if cell.len() <= MAX_CELL {
        return cell.into();
    }
    let count = cell.chars().count();
    if count <= MAX_CELL {
        return cell.into();
    }
    let head: String = cell.chars().take(MAX_CELL).collect();
    format!("{head}… ({count} characters)").into()
}

/// Lay out rows in aligned columns; `paint` may colour a cell after padding (None:
/// the padded cell as it is). Cells are cut to [`MAX_CELL`] characters, padding stops
/// at [`MAX_ALIGN`], and the last column is never padded.
pub fn table<C: AsRef<str>>(
    headers: &[&str],
    rows: &[Vec<C>],
    paint: impl Fn(usize, &str, &str) -> Option<String>,
) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| width(h)).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            let shown = bounded_cell(cell.as_ref());
            widths[i] = widths[i].max(width(&shown).min(MAX_ALIGN));
        }
    }
    let last = headers.len().saturating_sub(1);
    // One string for the whole table, each cell written into it where it goes: a
    // status of 1,000 services is 8,000 cells, and a string or two for each showed in
    // the profile.
    let mut out =
        String::with_capacity((widths.iter().sum::<usize>() + 2 * last + 1) * (rows.len() + 1));
    let line = |out: &mut String,
                cells: &mut dyn Iterator<Item = (usize, &str)>,
                paint: &dyn Fn(usize, &str, &str) -> Option<String>| {
        let start = out.len();
        for (i, cell) in cells {
            if i > 0 {
                out.push_str("  ");
            }
            let shown = bounded_cell(cell);
            let at = out.len();
            out.push_str(&shown);
            let len = width(&shown);
            if i != last && len < widths[i] {
                out.push_str(&SPACES[..widths[i] - len]);
            }
            if let Some(painted) = paint(i, &shown, &out[at..]) {
                out.truncate(at);
                out.push_str(&painted);
            }
        }
        let kept = out[start..].trim_end().len();
        out.truncate(start + kept);
        out.push('\n');
    };
    line(
        &mut out,
        &mut headers.iter().copied().enumerate(),
        &|_, _, _| None,
    );
    for row in rows {
        line(
            &mut out,
            &mut row.iter().map(|c| c.as_ref()).enumerate(),
            &paint,
        );
    }
    out
}

/// `paint` for a table whose column `col` is a state: the colour `colour` picks for
/// the cell's text, else none.
pub fn paint_column(
    col: usize,
    colour: impl Fn(&str, &str) -> Option<String>,
) -> impl Fn(usize, &str, &str) -> Option<String> {
    move |i, cell, padded| if i == col { colour(cell, padded) } else { None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_bound_what_they_show() {
        let huge = "x".repeat(70_000);
        let rows = vec![
            vec!["web".to_string(), huge.clone(), huge.clone()],
            vec!["db".to_string(), "ok".to_string(), String::new()],
        ];
        let text = table(&["A", "B", "C"], &rows, |_, _, _| None);
        assert!(text.len() < 1_000, "{} bytes", text.len());
        assert!(text.contains("(70000 characters)"));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], format!("A    B{}C", " ".repeat(64 + 1)));
        assert_eq!(lines[2], "db   ok");
    }
}

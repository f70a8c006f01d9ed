use super::diagnose::diagnostic_line;
use super::*;

#[test]
fn finds_line_numbers_in_dash_and_bash_messages() {
    let file = Path::new("/p/config");
    assert_eq!(
        diagnostic_line(
            "sh: 3: /p/config: Syntax error: end of file unexpected",
            file
        ),
        Some(3)
    );
    assert_eq!(
        diagnostic_line(
            "/p/config: line 7: syntax error near unexpected token",
            file
        ),
        Some(7)
    );
    assert_eq!(diagnostic_line("just text", file), None);
}

#[test]
fn a_line_of_the_driver_is_not_a_line_of_the_fragment() {
    let file = Path::new("/p/config");
    assert_eq!(
        diagnostic_line(
            "/bin/sh: 29: .: cannot open /p/config: Permission denied",
            file
        ),
        None
    );
    assert_eq!(
        diagnostic_line("/bin/sh: line 29: /p/config: Permission denied", file),
        None
    );
    assert_eq!(
        diagnostic_line("sh: 3: /p/other: Syntax error: x", file),
        None
    );
}

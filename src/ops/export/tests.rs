use super::syntax::exec_word;
use super::*;

#[test]
fn cron_schedules_become_calendar_expressions() {
    assert_eq!(
        on_calendar("*/15 * * * *").unwrap(),
        ["*-*-* *:00,15,30,45:00"]
    );
    assert_eq!(
        on_calendar("30 2 * * MON-FRI").unwrap(),
        ["Mon..Fri *-*-* 02:30:00"]
    );
    assert_eq!(
        on_calendar("0 0 1,15 * sun").unwrap(),
        ["Sun *-*-* 00:00:00", "*-*-01,15 00:00:00"],
        "day of month OR day of week, as cron has it"
    );
    assert_eq!(on_calendar("@weekly").unwrap(), ["Sun *-*-* 00:00:00"]);
    assert_eq!(
        on_calendar("5 4 * jan-mar,dec 7").unwrap(),
        ["Sun *-01..03,12-* 04:05:00"]
    );
    assert_eq!(
        on_calendar("0 8-18/2 * * *").unwrap(),
        ["*-*-* 08,10,12,14,16,18:00:00"]
    );
}

#[test]
fn exec_words_escape_what_systemd_would_expand() {
    assert_eq!(exec_word("/usr/sbin/nginx"), "/usr/sbin/nginx");
    assert_eq!(exec_word("100%"), "100%%");
    assert_eq!(exec_word("$HOME"), "$$HOME");
    assert_eq!(exec_word("a b"), "\"a b\"");
    assert_eq!(exec_word("say \"hi\"\n"), "\"say \\\"hi\\\"\\n\"");
    assert_eq!(exec_word(""), "\"\"");
    assert_eq!(
        env_value("it's $5 \"now\"\\"),
        "\"it's \\$5 \\\"now\\\"\\\\\""
    );
}

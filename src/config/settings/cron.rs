//! service_type=cron: the schedule and the command.

use super::{CronSchedule, CronSettings, Reader};

pub(super) fn read(r: &mut Reader) -> Option<CronSettings> {
    let schedule = match r.value("service_cron_time") {
        None => {
            r.missing(
                "service_type=cron needs service_cron_time (a 5-field crontab schedule such as `*/5 * * * *`, or @hourly …)".to_string(),
            );
            None
        }
        Some(text) => match parse_cron(text) {
            Ok(s) => Some(s),
            Err(rule) => {
                r.bad("service_cron_time", &rule);
                None
            }
        },
    };
    let command = r.text("service_cron_command");
    if command.is_none() {
        r.missing(
            "service_type=cron needs service_cron_command (the sh command to run on schedule)"
                .to_string(),
        );
    }
    Some(CronSettings {
        schedule: schedule?,
        command: command?,
    })
}

/// The crontab field names, in order, for messages.
const CRON_FIELDS: [&str; 5] = ["minute", "hour", "day of month", "month", "day of week"];

/// Validate a schedule as Debian's cron reads it: 5 fields (or an alias), names for
/// months and weekdays, day-of-month and day-of-week joined by OR.
pub fn parse_cron(text: &str) -> std::result::Result<CronSchedule, String> {
    let text = text.trim();
    if text == "@reboot" {
        return Ok(CronSchedule::WhenArmed);
    }
    if text.starts_with('@') {
        return match text {
            "@yearly" | "@annually" | "@monthly" | "@weekly" | "@daily" | "@midnight"
            | "@hourly" => Ok(CronSchedule::Expression(text.to_string())),
            _ => Err(
                "is not a known alias: use @reboot, @hourly, @daily, @weekly, @monthly or @yearly"
                    .to_string(),
            ),
        };
    }
    let fields: Vec<&str> = text.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "has {} field(s); a schedule has 5: minute hour day-of-month month day-of-week",
            fields.len()
        ));
    }
    if cron_parser().parse(text).is_ok() {
        return Ok(CronSchedule::Expression(text.to_string()));
    }
    // Name the field that is wrong: the first one whose replacement by `*` makes the
    // expression valid.
    for (i, field) in CRON_FIELDS.iter().enumerate() {
        let mut trial = fields.clone();
        trial[i] = "*";
        if cron_parser().parse(&trial.join(" ")).is_ok() {
            return Err(format!(
                "its {field} field {:?} is not valid (lists, ranges, steps and names such as MON or JAN are allowed)",
                fields[i]
            ));
        }
    }
    Err("is not a valid 5-field schedule (minute hour day-of-month month day-of-week)".to_string())
}

/// Five fields, no seconds, day-of-month OR day-of-week (as cron has it).
pub fn cron_parser() -> croner::parser::CronParser {
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Disallowed)
        .year(croner::parser::Year::Disallowed)
        .dom_and_dow(false)
        .build()
}

//! Cron schedules in local time: when a `service_type=cron` service fires next.
//!
//! croner parses the expression (`settings::cron_parser`, 5 fields, day-of-month OR
//! day-of-week) and searches for the next match; the local time zone comes from the C
//! library (`localtime_r`, `mktime`, so TZ and /etc/localtime apply), through
//! [`LocalTime`], croner's date-time trait over a plain Unix time.
//!
//! Test hook: with `SERVICECTL_CRON_SECONDS=1` in the supervisor's environment the
//! minute field counts seconds (`*/2 * * * *` fires every two seconds; the hour field
//! then counts minutes and is ignored). Only tests use it.

use crate::config::settings::{self, CronSchedule};
use croner::{CivilDate, CivilDateTime, CivilTime, CronDateTime, Resolution, Weekday};
use std::cmp::Ordering;

/// A Unix time (seconds) seen in the local time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalTime(pub i64);

impl CronDateTime for LocalTime {
    fn to_civil(&self) -> CivilDateTime {
        let tm = crate::text::broken_down(self.0);
        CivilDateTime::new(
            CivilDate::from_parts_unchecked(
                tm.tm_year + 1900,
                (tm.tm_mon + 1) as u32,
                tm.tm_mday as u32,
            ),
            CivilTime::from_parts_unchecked(
                tm.tm_hour as u32,
                tm.tm_min as u32,
                (tm.tm_sec as u32).min(59),
            ),
        )
    }

    fn civil_weekday(&self) -> Weekday {
        Weekday::from_days_from_sunday(crate::text::broken_down(self.0).tm_wday as u32)
    }

    fn resolve_civil(
        &self,
        civil: CivilDateTime,
    ) -> Result<Resolution<Self>, croner::errors::CronError> {
        let mut found = Vec::new();
        for isdst in [0, 1] {
            // SAFETY: as above; mktime normalises the fields it is given.
            let mut tm: libc::tm = unsafe { std::mem::zeroed() };
            tm.tm_year = civil.year() - 1900;
            tm.tm_mon = civil.month() as i32 - 1;
            tm.tm_mday = civil.day() as i32;
            tm.tm_hour = civil.hour() as i32;
            tm.tm_min = civil.minute() as i32;
            tm.tm_sec = civil.second() as i32;
            tm.tm_isdst = isdst;
            let t = unsafe { libc::mktime(&mut tm) } as i64;
            if t == -1 {
                continue;
            }
            let candidate = LocalTime(t);
            if candidate.to_civil() == civil && !found.contains(&candidate) {
                found.push(candidate);
            }
        }
        found.sort_by_key(|t| t.0);
        Ok(match found.as_slice() {
            [] => Resolution::Gap,
            [one] => Resolution::Single(*one),
            [a, b, ..] => Resolution::Ambiguous(*a, *b),
        })
    }

    fn checked_add_seconds(&self, seconds: i64) -> Option<Self> {
        self.0.checked_add(seconds).map(LocalTime)
    }

    fn cmp_instant(&self, other: &Self) -> Ordering {
        self.0.cmp(&other.0)
    }
}

/// The wall clock now, in Unix seconds.
pub fn wall_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The test hook is on (see the module's documentation).
pub fn seconds_hook() -> bool {
    std::env::var_os("SERVICECTL_CRON_SECONDS").is_some_and(|v| v == "1")
}

/// A schedule ready for searching.
pub struct Schedule {
    cron: croner::Cron,
}

impl Schedule {
    /// None for `@reboot` (fires once, when armed) or an expression croner refuses
    /// (the settings checked it already).
    pub fn new(schedule: &CronSchedule) -> Option<Schedule> {
        let CronSchedule::Expression(text) = schedule else {
            return None;
        };
        let cron = if seconds_hook() && !text.starts_with('@') {
            let fields: Vec<&str> = text.split_whitespace().collect();
            let pattern = format!(
                "{} * * {} {} {}",
                fields[0], fields[2], fields[3], fields[4]
            );
            croner::parser::CronParser::builder()
                .seconds(croner::parser::Seconds::Required)
                .year(croner::parser::Year::Disallowed)
                .dom_and_dow(false)
                .build()
                .parse(&pattern)
                .ok()?
        } else {
            settings::cron_parser().parse(text).ok()?
        };
        Some(Schedule { cron })
    }

    /// The first fire time strictly after `after` (Unix seconds).
    pub fn next_after(&self, after: i64) -> Option<i64> {
        self.cron
            .find_next_occurrence(&LocalTime(after), false)
            .ok()
            .map(|t| t.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_minute_boundary() {
        let s = Schedule::new(&CronSchedule::Expression("* * * * *".into())).unwrap();
        let now = 1_800_000_030;
        let next = s.next_after(now).unwrap();
        assert_eq!(next % 60, 0);
        assert!(next > now && next - now <= 60);
        // Strictly after: a fire time is never found again.
        assert!(s.next_after(next).unwrap() >= next + 60);
    }

    #[test]
    fn round_trips_local_time() {
        let t = LocalTime(1_800_000_000);
        let civil = t.to_civil();
        assert!(
            matches!(t.resolve_civil(civil), Ok(Resolution::Single(x)) if x == t)
                || matches!(t.resolve_civil(civil), Ok(Resolution::Ambiguous(..)))
        );
    }
}

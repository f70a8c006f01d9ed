//! A crontab schedule as systemd `OnCalendar=` expressions, for the `.timer` of a cron
//! service.

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
const DAY_NAMES: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

/// A cron field as the set of values it matches; None for `*` (unrestricted).
fn cron_field(
    text: &str,
    lo: u32,
    hi: u32,
    names: &[&str],
    base: u32,
) -> Result<Option<Vec<u32>>, String> {
    if text == "*" {
        return Ok(None);
    }
    let value = |t: &str| -> Result<u32, String> {
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(t)) {
            return Ok(i as u32 + base);
        }
        t.parse::<u32>()
            .map_err(|_| format!("{t:?} is not a number"))
    };
    let mut set = std::collections::BTreeSet::new();
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<u32>()
                    .map_err(|_| format!("bad step in {part:?}"))?,
            ),
            None => (part, 1),
        };
        let (a, b) = if range == "*" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a)?, value(b)?)
        } else if step > 1 {
            (value(range)?, hi)
        } else {
            let v = value(range)?;
            (v, v)
        };
        if step == 0 || a > b {
            return Err(format!("{part:?} is an empty range"));
        }
        set.extend((a..=b).step_by(step as usize));
    }
    Ok(Some(set.into_iter().collect()))
}

/// Values as a systemd calendar list: runs of three or more as `a..b`.
fn calendar_list(values: &[u32], show: impl Fn(u32) -> String) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < values.len() {
        let mut j = i;
        while j + 1 < values.len() && values[j + 1] == values[j] + 1 {
            j += 1;
        }
        if j >= i + 2 {
            parts.push(format!("{}..{}", show(values[i]), show(values[j])));
        } else {
            parts.extend((i..=j).map(|k| show(values[k])));
        }
        i = j + 1;
    }
    parts.join(",")
}

/// A 5-field cron schedule (or an @alias) as systemd OnCalendar= expressions: two when
/// both day fields are restricted (cron runs when either matches; systemd needs both).
pub fn on_calendar(expression: &str) -> Result<Vec<String>, String> {
    let expression = match expression.trim() {
        "@hourly" => "0 * * * *",
        "@daily" | "@midnight" => "0 0 * * *",
        "@weekly" => "0 0 * * 0",
        "@monthly" => "0 0 1 * *",
        "@yearly" | "@annually" => "0 0 1 1 *",
        other => other,
    };
    let f: Vec<&str> = expression.split_whitespace().collect();
    let [minute, hour, dom, month, dow] = f[..] else {
        return Err("a schedule has 5 fields".into());
    };
    let list = |v: Option<Vec<u32>>, width: usize| match v {
        None => "*".to_string(),
        Some(v) => calendar_list(&v, |n| format!("{n:0width$}")),
    };
    let minute = list(cron_field(minute, 0, 59, &[], 0)?, 2);
    let hour = list(cron_field(hour, 0, 23, &[], 0)?, 2);
    let month = list(cron_field(month, 1, 12, &MONTHS, 1)?, 2);
    let dom_set = cron_field(dom, 1, 31, &[], 0)?;
    let dow_set = cron_field(dow, 0, 7, &DAYS, 0)?.map(|v| {
        let mut days: Vec<u32> = v.into_iter().map(|d| d % 7).collect();
        days.sort_unstable();
        days.dedup();
        days
    });
    let time = format!("{hour}:{minute}:00");
    let with = |dow: Option<&Vec<u32>>, dom: Option<&Vec<u32>>| {
        let day = match dom {
            None => "*".to_string(),
            Some(v) => calendar_list(v, |n| format!("{n:02}")),
        };
        let date = format!("*-{month}-{day} {time}");
        match dow {
            None => date,
            Some(v) => format!(
                "{} {date}",
                calendar_list(v, |d| DAY_NAMES[d as usize].to_string())
            ),
        }
    };
    Ok(match (&dow_set, &dom_set) {
        (Some(w), Some(d)) => vec![with(Some(w), None), with(None, Some(d))],
        (w, d) => vec![with(w.as_ref(), d.as_ref())],
    })
}

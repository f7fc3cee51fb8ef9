//! Crontab schedules with the meaning operators know, on top of the `cron` crate.
//!
//! `cron` wants 6-7 fields, counts day-of-week 1 = Sunday and ANDs a restricted
//! day-of-month with a restricted day-of-week. Operators write Vixie crontab: 5 fields,
//! 0 and 7 = Sunday, `1-5` = Monday to Friday, and the two day fields ORed. So the
//! day-of-week field is expanded here to day *names* (which `cron` reads unambiguously),
//! and a schedule restricting both day fields becomes two `cron` schedules whose next
//! times are merged.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

const DAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// A parsed crontab line (5 fields, or 6 with seconds first).
#[derive(Debug, Clone)]
pub struct Crontab {
    text: String,
    schedules: Vec<cron::Schedule>,
}

impl Crontab {
    pub fn parse(text: &str) -> Result<Self, String> {
        let fields: Vec<&str> = text.split_whitespace().collect();
        let (sec, rest) = match fields.len() {
            5 => ("0", &fields[..]),
            6 => (fields[0], &fields[1..]),
            n => {
                return Err(format!(
                    "schedule {text:?} has {n} fields; write 5 crontab fields \
                     (minute hour day-of-month month day-of-week), e.g. \"*/30 * * * *\", \
                     or 6 with seconds first"
                ))
            }
        };
        let (min, hour, dom, mon, dow) = (rest[0], rest[1], rest[2], rest[3], rest[4]);
        let days = expand_day_of_week(dow)?;
        let dow_all = days.iter().all(|d| *d);
        let dow_names = if dow_all {
            "*".to_owned()
        } else {
            DAY_NAMES
                .iter()
                .zip(days)
                .filter(|(_, on)| *on)
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(",")
        };
        let dom_restricted = !(dom == "*" || dom == "?");
        let lines = if dom_restricted && !dow_all {
            // Vixie cron: a day matches if EITHER day field matches.
            vec![
                format!("{sec} {min} {hour} {dom} {mon} *"),
                format!("{sec} {min} {hour} * {mon} {dow_names}"),
            ]
        } else {
            vec![format!("{sec} {min} {hour} {dom} {mon} {dow_names}")]
        };
        let schedules = lines
            .iter()
            .map(|l| cron::Schedule::from_str(l))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                format!(
                    "schedule {text:?} is not a valid crontab ({e}); fields are minute 0-59, \
                     hour 0-23, day-of-month 1-31, month 1-12, day-of-week 0-7 (0 and 7 = Sunday)"
                )
            })?;
        Ok(Crontab {
            text: text.to_owned(),
            schedules,
        })
    }

    /// The first firing strictly after `after`, read in the site's zone.
    pub fn next_after(&self, after: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&tz);
        self.schedules
            .iter()
            .filter_map(|s| s.after(&local).next())
            .min()
            .map(|t| t.with_timezone(&Utc))
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// Expands a crontab day-of-week field into a Sunday-first table of seven flags.
fn expand_day_of_week(field: &str) -> Result<[bool; 7], String> {
    let mut days = [false; 7];
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let step: usize =
                    s.parse().ok().filter(|s| *s > 0).ok_or_else(|| {
                        format!("day-of-week step {s:?} must be a positive number")
                    })?;
                (r, step)
            }
            None => (part, 1),
        };
        let (lo, hi) = if range == "*" || range == "?" {
            (0, 6)
        } else if let Some((a, b)) = range.split_once('-') {
            (day_number(a)?, day_number(b)?)
        } else {
            let d = day_number(range)?;
            (d, if part.contains('/') { 6 } else { d })
        };
        if lo > hi {
            // `5-0` style wrap-around: Friday to Sunday.
            for d in (lo..=7).chain(0..=hi).step_by(step) {
                days[d % 7] = true;
            }
        } else {
            for d in (lo..=hi).step_by(step) {
                days[d % 7] = true;
            }
        }
    }
    Ok(days)
}

fn day_number(s: &str) -> Result<usize, String> {
    if let Ok(n) = s.parse::<usize>() {
        return if n <= 7 {
            Ok(n)
        } else {
            Err(format!(
                "day-of-week {n} is out of range 0-7 (0 and 7 = Sunday)"
            ))
        };
    }
    let upper = s.to_ascii_uppercase();
    DAY_NAMES
        .iter()
        .position(|n| upper.starts_with(n))
        .ok_or_else(|| format!("day-of-week {s:?} is neither 0-7 nor a day name like MON"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, TimeZone, Weekday};
    use chrono_tz::Asia::Shanghai;

    fn fires(expr: &str, n: usize) -> Vec<DateTime<Tz>> {
        let c = Crontab::parse(expr).unwrap();
        // 2026-11-29 is a Sunday.
        let mut t = Shanghai
            .with_ymd_and_hms(2026, 11, 29, 0, 0, 0)
            .unwrap()
            .with_timezone(&Utc);
        let mut out = Vec::new();
        for _ in 0..n {
            t = c.next_after(t, Shanghai).unwrap();
            out.push(t.with_timezone(&Shanghai));
        }
        out
    }

    #[test]
    fn five_fields_every_half_hour() {
        let f = fires("*/30 * * * *", 3);
        assert_eq!(f[0].to_rfc3339(), "2026-11-29T00:30:00+08:00");
        assert_eq!(f[1].to_rfc3339(), "2026-11-29T01:00:00+08:00");
    }

    #[test]
    fn one_to_five_is_monday_to_friday() {
        let days: Vec<Weekday> = fires("0 9 * * 1-5", 7)
            .iter()
            .map(|t| t.weekday())
            .collect();
        assert_eq!(
            days,
            [
                Weekday::Mon,
                Weekday::Tue,
                Weekday::Wed,
                Weekday::Thu,
                Weekday::Fri,
                Weekday::Mon,
                Weekday::Tue
            ]
        );
        assert!(fires("0 9 * * 1-5", 1)[0]
            .to_rfc3339()
            .starts_with("2026-11-30T09:00"));
    }

    #[test]
    fn zero_and_seven_are_sunday() {
        for expr in ["0 8 * * 0", "0 8 * * 7", "0 8 * * sun"] {
            let f = fires(expr, 2);
            assert!(f.iter().all(|t| t.weekday() == Weekday::Sun), "{expr}");
        }
    }

    #[test]
    fn six_fields_take_seconds_first() {
        let f = fires("15 0 12 * * *", 1);
        assert_eq!(f[0].to_rfc3339(), "2026-11-29T12:00:15+08:00");
    }

    #[test]
    fn restricted_day_fields_are_ored_like_vixie_cron() {
        // The 1st of the month OR any Monday.
        let f = fires("0 0 1 * 1", 3);
        let got: Vec<String> = f.iter().map(|t| t.format("%m-%d %a").to_string()).collect();
        assert_eq!(got, ["11-30 Mon", "12-01 Tue", "12-07 Mon"]);
    }

    #[test]
    fn wrap_around_range_and_steps() {
        let days: Vec<Weekday> = fires("0 0 * * 5-0", 3)
            .iter()
            .map(|t| t.weekday())
            .collect();
        assert_eq!(days, [Weekday::Fri, Weekday::Sat, Weekday::Sun]);
        let days: Vec<Weekday> = fires("0 0 * * */2", 4)
            .iter()
            .map(|t| t.weekday())
            .collect();
        assert_eq!(
            days,
            [Weekday::Tue, Weekday::Thu, Weekday::Sat, Weekday::Sun]
        );
    }

    #[test]
    fn clear_errors() {
        assert!(Crontab::parse("*/15 * * *")
            .unwrap_err()
            .contains("has 4 fields"));
        assert!(Crontab::parse("0 0 * * 8")
            .unwrap_err()
            .contains("out of range"));
        assert!(Crontab::parse("61 * * * *")
            .unwrap_err()
            .contains("not a valid crontab"));
    }
}

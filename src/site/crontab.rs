//! Crontab schedules with the meaning operators know, on top of the `cron` crate.
//!
//! `cron` wants 6-7 fields, counts day-of-week 1 = Sunday and ANDs a restricted
//! day-of-month with a restricted day-of-week. Operators write Vixie crontab: 5 fields,
//! 0 and 7 = Sunday, `1-5` = Monday to Friday, and the two day fields ORed. So the
//! day-of-week field is expanded here to day *names* (which `cron` reads unambiguously),
//! and a schedule restricting both day fields becomes two `cron` schedules whose next
//! times are merged.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;

const DAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
const MONTH_NAMES: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];

/// A crontab line that cannot be used, with the byte offset (in the line) of the
/// offending field, so the error points at it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CronError {
    pub offset: usize,
    pub message: String,
}

/// One crontab field as operators know it.
struct FieldSpec {
    name: &'static str,
    lo: u32,
    hi: u32,
    names: &'static [&'static str],
    /// The first name's number (JAN = 1, SUN = 0).
    names_from: u32,
}

const SECOND: FieldSpec = FieldSpec {
    name: "second",
    lo: 0,
    hi: 59,
    names: &[],
    names_from: 0,
};
const MINUTE: FieldSpec = FieldSpec {
    name: "minute",
    lo: 0,
    hi: 59,
    names: &[],
    names_from: 0,
};
const HOUR: FieldSpec = FieldSpec {
    name: "hour",
    lo: 0,
    hi: 23,
    names: &[],
    names_from: 0,
};
const DAY_OF_MONTH: FieldSpec = FieldSpec {
    name: "day-of-month",
    lo: 1,
    hi: 31,
    names: &[],
    names_from: 0,
};
const MONTH: FieldSpec = FieldSpec {
    name: "month",
    lo: 1,
    hi: 12,
    names: &MONTH_NAMES,
    names_from: 1,
};
const DAY_OF_WEEK: FieldSpec = FieldSpec {
    name: "day-of-week",
    lo: 0,
    hi: 7,
    names: &DAY_NAMES,
    names_from: 0,
};

/// A parsed crontab line (5 fields, or 6 with seconds first).
#[derive(Debug, Clone)]
pub struct Crontab {
    text: String,
    schedules: Vec<cron::Schedule>,
}

impl Crontab {
    pub fn parse(text: &str) -> Result<Self, CronError> {
        let fields = split_fields(text);
        let specs: &[&FieldSpec] = match fields.len() {
            5 => &[&MINUTE, &HOUR, &DAY_OF_MONTH, &MONTH, &DAY_OF_WEEK],
            6 => &[&SECOND, &MINUTE, &HOUR, &DAY_OF_MONTH, &MONTH, &DAY_OF_WEEK],
            n => {
                return Err(CronError {
                    offset: 0,
                    message: format!(
                        "schedule {} has {n} fields; write 5 crontab fields (minute hour \
                         day-of-month month day-of-week), e.g. \"*/30 * * * *\", or 6 with \
                         seconds first",
                        super::shown(text)
                    ),
                })
            }
        };
        for (i, ((offset, field), spec)) in fields.iter().zip(specs).enumerate() {
            check_field(field, spec).map_err(|(within, what)| CronError {
                offset: offset + within,
                message: format!(
                    "schedule: {what} (field {} of {})",
                    i + 1,
                    super::shown(text)
                ),
            })?;
        }
        let words: Vec<&str> = fields.iter().map(|(_, f)| *f).collect();
        let (sec, rest) = match words.len() {
            5 => ("0", &words[..]),
            _ => (words[0], &words[1..]),
        };
        let (min, hour, dom, mon, dow) = (rest[0], rest[1], rest[2], rest[3], rest[4]);
        let days = expand_day_of_week(dow).map_err(|message| CronError {
            offset: fields.last().map_or(0, |(o, _)| *o),
            message: format!(
                "schedule: {message} (field {} of {})",
                words.len(),
                super::shown(text)
            ),
        })?;
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
        // The fields were checked above; a refusal here is a form this module does not
        // know, so it is named without the `cron` crate's rewritten line.
        let schedules = lines
            .iter()
            .map(|l| cron::Schedule::from_str(l))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| CronError {
                offset: 0,
                message: format!(
                    "schedule {} is not a crontab this service understands; use numbers, \
                     ranges (1-5), lists (1,15), steps (*/10) and names (MON, JAN)",
                    super::shown(text)
                ),
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

    /// Does the schedule fire at all within `horizon` of a fixed instant? (`0 0 31 2 *`
    /// parses but never fires; a fixed instant keeps `check` deterministic.)
    pub fn fires_within(&self, tz: Tz, horizon: Duration) -> bool {
        let from = reference_instant();
        let until = from + chrono::Duration::from_std(horizon).unwrap_or(chrono::Duration::MAX);
        self.next_after(from, tz).is_some_and(|t| t <= until)
    }

    /// The shortest gap between consecutive firings among the first `samples` after a
    /// fixed instant: what the site's crawl rate will be at its busiest.
    pub fn shortest_interval(&self, tz: Tz, samples: usize) -> Option<Duration> {
        let mut t = self.next_after(reference_instant(), tz)?;
        let mut shortest: Option<Duration> = None;
        for _ in 0..samples {
            let Some(next) = self.next_after(t, tz) else {
                break;
            };
            let gap = (next - t).to_std().unwrap_or_default();
            shortest = Some(shortest.map_or(gap, |s| s.min(gap)));
            t = next;
        }
        shortest
    }
}

fn reference_instant() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or(DateTime::UNIX_EPOCH)
}

/// The whitespace-separated fields with their byte offsets.
fn split_fields(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        match (c.is_whitespace(), start) {
            (false, None) => start = Some(i),
            (true, Some(s)) => {
                out.push((s, &text[s..i]));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, &text[s..]));
    }
    out
}

/// Checks one field against its bounds; the error is (byte offset in the field, words).
fn check_field(field: &str, spec: &FieldSpec) -> Result<(), (usize, String)> {
    let name = spec.name;
    let mut offset = 0;
    for part in field.split(',') {
        let at = offset;
        offset += part.len() + 1;
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (part, None),
        };
        if let Some(s) = step {
            let step_at = at + range.len() + 1;
            match s.parse::<u32>() {
                Ok(n) if n >= 1 && n <= spec.hi.max(1) => {}
                Ok(_) => {
                    return Err((
                        step_at,
                        format!("{name} step /{s} must be between 1 and {}", spec.hi.max(1)),
                    ))
                }
                Err(_) => {
                    return Err((
                        step_at,
                        format!("{name} step {:?} is not a number; write e.g. */10", s),
                    ))
                }
            }
        }
        if range == "*" || (range == "?" && name.starts_with("day")) {
            continue;
        }
        if range.is_empty() {
            return Err((
                at,
                format!("{name} field has an empty list element; remove the extra ','"),
            ));
        }
        let (a, b) = match range.split_once('-') {
            Some((a, b)) => (a, Some(b)),
            None => (range, None),
        };
        let lo = value(a, spec).map_err(|m| (at, m))?;
        if let Some(b) = b {
            let hi = value(b, spec).map_err(|m| (at + a.len() + 1, m))?;
            // Day-of-week ranges may wrap (`5-0` = Friday to Sunday); others may not.
            if hi < lo && name != "day-of-week" {
                return Err((
                    at,
                    format!("{name} range {range} runs backwards; write {b}-{a}"),
                ));
            }
        }
    }
    Ok(())
}

fn value(word: &str, spec: &FieldSpec) -> Result<u32, String> {
    let name = spec.name;
    if let Ok(n) = word.parse::<u64>() {
        return if (u64::from(spec.lo)..=u64::from(spec.hi)).contains(&n) {
            Ok(n as u32)
        } else {
            let extra = if name == "day-of-week" {
                " (0 and 7 = Sunday)"
            } else {
                ""
            };
            Err(format!(
                "{name} {n} is out of range {}-{}{extra}",
                spec.lo, spec.hi
            ))
        };
    }
    let upper = word.to_ascii_uppercase();
    if let Some(i) = spec
        .names
        .iter()
        .position(|n| upper.len() >= 3 && upper.starts_with(n))
    {
        return Ok(i as u32 + spec.names_from);
    }
    let names = if spec.names.is_empty() {
        String::new()
    } else {
        format!(" or a name like {}", spec.names[1])
    };
    Err(format!(
        "{name} {} is not a number{names}; write {}-{}, ranges like 1-5, lists like 1,15 \
         or steps like */10",
        super::shown(word),
        spec.lo,
        spec.hi
    ))
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
    value(s, &DAY_OF_WEEK).map(|n| n as usize)
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
        let msg = |s: &str| Crontab::parse(s).unwrap_err();
        assert!(msg("*/15 * * *").message.contains("has 4 fields"));
        let e = msg("0 0 * * 8");
        assert_eq!(
            e.message,
            "schedule: day-of-week 8 is out of range 0-7 (0 and 7 = Sunday) (field 5 of \"0 0 * * 8\")"
        );
        assert_eq!(e.offset, 8);
        let e = msg("0 61 * * *");
        assert_eq!(
            e.message,
            "schedule: hour 61 is out of range 0-23 (field 2 of \"0 61 * * *\")"
        );
        assert_eq!(e.offset, 2);
        assert!(msg("*/0 * * * *").message.contains("step /0"));
        assert!(msg("30-10 * * * *").message.contains("runs backwards"));
        assert!(msg("x * * * *")
            .message
            .contains("minute \"x\" is not a number"));
        assert!(msg("0 0 1 FOO *").message.contains("a name like FEB"));
    }

    proptest::proptest! {
        /// Any text gives a schedule or a one-line error pointing inside the text; no
        /// panic in the field checks or in the `cron` crate behind them.
        #[test]
        fn any_text_parses_or_explains(
            fields in proptest::collection::vec("[0-9*/,?A-Z-]{1,6}", 4..=7),
        ) {
            let text = fields.join(" ");
            match Crontab::parse(&text) {
                Ok(c) => {
                    let _ = c.shortest_interval(Shanghai, 5);
                }
                Err(e) => {
                    proptest::prop_assert!(e.offset <= text.len());
                    proptest::prop_assert!(!e.message.contains('\n'));
                }
            }
        }
    }

    #[test]
    fn never_firing_and_busy_schedules_are_measurable() {
        let five_years = std::time::Duration::from_secs(5 * 366 * 86_400);
        let never = Crontab::parse("0 0 31 2 *").unwrap();
        assert!(!never.fires_within(Shanghai, five_years));
        let leap = Crontab::parse("0 0 29 2 *").unwrap();
        assert!(leap.fires_within(Shanghai, five_years));
        let busy = Crontab::parse("*/5 * * * * *").unwrap();
        assert_eq!(
            busy.shortest_interval(Shanghai, 50),
            Some(std::time::Duration::from_secs(5))
        );
        let hours = Crontab::parse("0 9,10 * * *").unwrap();
        assert_eq!(
            hours.shortest_interval(Shanghai, 50),
            Some(std::time::Duration::from_secs(3600))
        );
    }
}

//! The date parser for what list and article pages really print.
//!
//! Government CMSes write `时间:2020-05-12`, `发布时间：2020年5月12日 08:30`, `2020/5/12`,
//! `05-12` (no year) or an RFC 2822 date from a feed. General-purpose date crates either
//! miss these or fill a date-only value with the *current* time of day, so this module
//! searches the text for the first known pattern instead of parsing it whole.
//! A value without an offset is read in the site's time zone; a day without a time of day
//! is midnight there and flagged `date_only`. The clock is never read: `now` is passed in.

use std::sync::LazyLock;

use chrono::{
    DateTime, Datelike, Duration, FixedOffset, LocalResult, NaiveDate, NaiveDateTime, NaiveTime,
    TimeZone, Utc,
};
use chrono_tz::Tz;
use regex::Regex;

use crate::model::PageDate;

/// Why a text held no date we could read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DateError {
    #[error("no date found in {0:?}")]
    NotFound(String),
    #[error("{text:?} does not match format {format:?}")]
    Format { text: String, format: String },
    #[error("{0:?} looks like a date but is not a real one")]
    OutOfRange(String),
}

static WITH_OFFSET: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,]\d+)?)?\s?(Z|[+-]\d{2}:?\d{2})",
    )
    .expect("static regex")
});

/// Year, month, day with `-`, `/`, `.` or 年月日, then an optional time of day.
static YMD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?x)
        (\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})(?:\s*日)?
        (?:[\sT\u{3000}\u{a0}]*(\d{1,2})\s*[:：时]\s*(\d{1,2})(?:\s*[:：分]\s*(\d{1,2}))?)?",
    )
    .expect("static regex")
});

static RFC2822ISH: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?xi)
        (\d{1,2})\s+(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?\s+(\d{4})
        (?:\s+(\d{1,2}):(\d{2})(?::(\d{2}))?)?
        (?:\s*(gmt|utc|ut|z|[+-]\d{4}|[ecmp][sd]t)\b)?",
    )
    .expect("static regex")
});

/// Month and day without a year (`05-12`, `5月12日`), as list pages print them.
static MD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?x)
        (?:^|[^\d])(\d{1,2})\s*[-/.月]\s*(\d{1,2})(?:\s*日)?(?:[^\d]|$)
        ",
    )
    .expect("static regex")
});

static TIME_OF_DAY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(\d{1,2})\s*[:：时]\s*(\d{1,2})(?:\s*[:：分]\s*(\d{1,2}))?").expect("static regex")
});

static RELATIVE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(刚刚)|(\d+)\s*(秒|分钟|小时|天)前|(今天|昨天|前天)").expect("static regex")
});

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

/// Parses the first date in `text`. With `format` (a chrono format string), only that
/// format is tried, against the trimmed text.
pub fn parse(
    text: &str,
    format: Option<&str>,
    tz: Tz,
    now: DateTime<Utc>,
) -> Result<PageDate, DateError> {
    let text = text.trim();
    if let Some(format) = format {
        return parse_with_format(text, format, tz);
    }
    if let Some(c) = WITH_OFFSET.captures(text) {
        let part = |i: usize| c.get(i).map_or("00", |m| m.as_str());
        let normalized = format!(
            "{}-{}-{}T{}:{}:{}{}",
            part(1),
            part(2),
            part(3),
            part(4),
            part(5),
            part(6),
            normalize_offset(part(7))
        );
        return DateTime::parse_from_rfc3339(&normalized)
            .map(|at| PageDate {
                at,
                date_only: false,
            })
            .map_err(|_| DateError::OutOfRange(text.to_owned()));
    }
    if let Some(c) = YMD.captures(text) {
        let date = ymd(&c, 1, text)?;
        return at_local(date, time_from(&c, 4, text)?, tz, text);
    }
    if let Some(c) = RFC2822ISH.captures(text) {
        return rfc2822ish(&c, tz, text);
    }
    if text.len() >= 9 && text.len() <= 13 && text.bytes().all(|b| b.is_ascii_digit()) {
        return unix(text);
    }
    if let Some(c) = RELATIVE.captures(text) {
        return relative(&c, text, tz, now);
    }
    if let Some(c) = MD.captures(text) {
        return month_day(&c, text, tz, now);
    }
    Err(DateError::NotFound(text.to_owned()))
}

fn parse_with_format(text: &str, format: &str, tz: Tz) -> Result<PageDate, DateError> {
    let err = || DateError::Format {
        text: text.to_owned(),
        format: format.to_owned(),
    };
    if let Ok(at) = DateTime::parse_from_str(text, format) {
        return Ok(PageDate {
            at,
            date_only: false,
        });
    }
    if let Ok(naive) = NaiveDateTime::parse_from_str(text, format) {
        return at_local(naive.date(), Some(naive.time()), tz, text);
    }
    if let Ok(date) = NaiveDate::parse_from_str(text, format) {
        return at_local(date, None, tz, text);
    }
    Err(err())
}

/// `+0800` is common in the wild; RFC 3339 wants `+08:00`.
fn normalize_offset(offset: &str) -> String {
    if offset.len() == 5 && !offset.contains(':') {
        format!("{}:{}", &offset[..3], &offset[3..])
    } else {
        offset.to_owned()
    }
}

fn num(c: &regex::Captures<'_>, i: usize) -> Option<u32> {
    c.get(i).and_then(|m| m.as_str().parse().ok())
}

fn ymd(c: &regex::Captures<'_>, first: usize, text: &str) -> Result<NaiveDate, DateError> {
    let (y, m, d) = (num(c, first), num(c, first + 1), num(c, first + 2));
    match (y, m, d) {
        (Some(y), Some(m), Some(d)) => NaiveDate::from_ymd_opt(y as i32, m, d)
            .ok_or_else(|| DateError::OutOfRange(text.to_owned())),
        _ => Err(DateError::NotFound(text.to_owned())),
    }
}

fn time_from(
    c: &regex::Captures<'_>,
    first: usize,
    text: &str,
) -> Result<Option<NaiveTime>, DateError> {
    match (num(c, first), num(c, first + 1)) {
        (Some(h), Some(m)) => NaiveTime::from_hms_opt(h, m, num(c, first + 2).unwrap_or(0))
            .map(Some)
            .ok_or_else(|| DateError::OutOfRange(text.to_owned())),
        _ => Ok(None),
    }
}

/// A wall-clock time in `tz`. In a DST gap the later valid instant is taken, in an
/// overlap the earlier; China has no DST, but operators name other zones too.
fn at_local(
    date: NaiveDate,
    time: Option<NaiveTime>,
    tz: Tz,
    text: &str,
) -> Result<PageDate, DateError> {
    let naive = date.and_time(time.unwrap_or(NaiveTime::MIN));
    let at = match tz.from_local_datetime(&naive) {
        LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => t,
        LocalResult::None => naive
            .checked_add_signed(Duration::hours(1))
            .and_then(|later| tz.from_local_datetime(&later).earliest())
            .ok_or_else(|| DateError::OutOfRange(text.to_owned()))?,
    };
    Ok(PageDate {
        at: at.fixed_offset(),
        date_only: time.is_none(),
    })
}

fn rfc2822ish(c: &regex::Captures<'_>, tz: Tz, text: &str) -> Result<PageDate, DateError> {
    let month_name = c.get(2).map_or("", |m| m.as_str()).to_ascii_lowercase();
    let month = MONTHS
        .iter()
        .position(|m| *m == month_name)
        .map(|i| i as u32 + 1);
    let (Some(d), Some(m), Some(y)) = (num(c, 1), month, num(c, 3)) else {
        return Err(DateError::NotFound(text.to_owned()));
    };
    let date = NaiveDate::from_ymd_opt(y as i32, m, d)
        .ok_or_else(|| DateError::OutOfRange(text.to_owned()))?;
    let time = time_from(c, 4, text)?;
    let Some(zone) = c.get(7).map(|m| m.as_str().to_ascii_uppercase()) else {
        return at_local(date, time, tz, text);
    };
    // RFC 2822 section 4.3 obsolete zone names; "CST" is US Central there, not China.
    let offset_secs = match zone.as_str() {
        "GMT" | "UTC" | "UT" | "Z" => 0,
        "EDT" => -4 * 3600,
        "EST" | "CDT" => -5 * 3600,
        "CST" | "MDT" => -6 * 3600,
        "MST" | "PDT" => -7 * 3600,
        "PST" => -8 * 3600,
        numeric => {
            let sign = if numeric.starts_with('-') { -1 } else { 1 };
            let hh: i32 = numeric.get(1..3).and_then(|s| s.parse().ok()).unwrap_or(0);
            let mm: i32 = numeric.get(3..5).and_then(|s| s.parse().ok()).unwrap_or(0);
            sign * (hh * 3600 + mm * 60)
        }
    };
    let offset =
        FixedOffset::east_opt(offset_secs).ok_or_else(|| DateError::OutOfRange(text.to_owned()))?;
    let naive = date.and_time(time.unwrap_or(NaiveTime::MIN));
    let at = offset
        .from_local_datetime(&naive)
        .single()
        .ok_or_else(|| DateError::OutOfRange(text.to_owned()))?;
    Ok(PageDate {
        at,
        date_only: time.is_none(),
    })
}

fn unix(text: &str) -> Result<PageDate, DateError> {
    let n: i64 = text
        .parse()
        .map_err(|_| DateError::NotFound(text.to_owned()))?;
    let at = if text.len() == 13 {
        DateTime::from_timestamp_millis(n)
    } else {
        DateTime::from_timestamp(n, 0)
    };
    at.map(|at| PageDate {
        at: at.fixed_offset(),
        date_only: false,
    })
    .ok_or_else(|| DateError::OutOfRange(text.to_owned()))
}

fn relative(
    c: &regex::Captures<'_>,
    text: &str,
    tz: Tz,
    now: DateTime<Utc>,
) -> Result<PageDate, DateError> {
    let local_now = now.with_timezone(&tz);
    if c.get(1).is_some() {
        return Ok(PageDate {
            at: local_now.fixed_offset(),
            date_only: false,
        });
    }
    if let (Some(digits), Some(unit)) = (c.get(2), c.get(3)) {
        let n: u32 = digits
            .as_str()
            .parse()
            .map_err(|_| DateError::OutOfRange(text.to_owned()))?;
        // `100000000天前` is before chrono's first year: out of range, never a panic.
        let n = i64::from(n);
        let out_of_range = || DateError::OutOfRange(text.to_owned());
        let ago = match unit.as_str() {
            "秒" => Duration::try_seconds(n),
            "分钟" => Duration::try_minutes(n),
            "小时" => Duration::try_hours(n),
            _ => Duration::try_days(n),
        }
        .ok_or_else(out_of_range)?;
        let at = local_now.checked_sub_signed(ago).ok_or_else(out_of_range)?;
        return Ok(PageDate {
            at: at.fixed_offset(),
            date_only: unit.as_str() == "天",
        });
    }
    let days_back = match c.get(4).map(|m| m.as_str()) {
        Some("昨天") => 1,
        Some("前天") => 2,
        _ => 0,
    };
    let date = local_now
        .date_naive()
        .checked_sub_signed(Duration::days(days_back))
        .ok_or_else(|| DateError::OutOfRange(text.to_owned()))?;
    let time = TIME_OF_DAY
        .captures(text)
        .map(|t| time_from(&t, 1, text))
        .transpose()?
        .flatten();
    at_local(date, time, tz, text)
}

/// A list page's `05-12`: the most recent such day that is not in the future.
fn month_day(
    c: &regex::Captures<'_>,
    text: &str,
    tz: Tz,
    now: DateTime<Utc>,
) -> Result<PageDate, DateError> {
    let (Some(m), Some(d)) = (num(c, 1), num(c, 2)) else {
        return Err(DateError::NotFound(text.to_owned()));
    };
    let today = now.with_timezone(&tz).date_naive();
    let mut year = today.year();
    // Feb 29 may need to look back up to 4 years for a leap year.
    for _ in 0..5 {
        if let Some(date) = NaiveDate::from_ymd_opt(year, m, d) {
            if date <= today {
                let rest = &text[c.get(2).map_or(0, |g| g.end())..];
                let time = TIME_OF_DAY
                    .captures(rest)
                    .map(|t| time_from(&t, 1, text))
                    .transpose()?
                    .flatten();
                return at_local(date, time, tz, text);
            }
        }
        year -= 1;
    }
    Err(DateError::OutOfRange(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Asia::Shanghai;
    use proptest::prelude::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 4, 0, 0).unwrap()
    }

    fn p(text: &str) -> String {
        let d = parse(text, None, Shanghai, now()).unwrap();
        format!(
            "{}{}",
            d.at.to_rfc3339(),
            if d.date_only { " (day)" } else { "" }
        )
    }

    #[test]
    fn chinese_cms_formats() {
        assert_eq!(p("时间:2020-05-12"), "2020-05-12T00:00:00+08:00 (day)");
        assert_eq!(p("时间：2020-05-12"), "2020-05-12T00:00:00+08:00 (day)");
        assert_eq!(p("发布时间：2020-05-12 08:30"), "2020-05-12T08:30:00+08:00");
        assert_eq!(p("日期:2020/5/12"), "2020-05-12T00:00:00+08:00 (day)");
        assert_eq!(p("2020.05.12"), "2020-05-12T00:00:00+08:00 (day)");
        assert_eq!(p("2020年5月12日 08:30"), "2020-05-12T08:30:00+08:00");
        assert_eq!(p("2020年05月12日08时30分"), "2020-05-12T08:30:00+08:00");
        assert_eq!(p("[2020-05-12 08:30:15]"), "2020-05-12T08:30:15+08:00");
        assert_eq!(
            p("时间:2020-05-12 来源:河南日报"),
            "2020-05-12T00:00:00+08:00 (day)"
        );
    }

    #[test]
    fn offsets_are_kept_and_naive_iso_is_local() {
        assert_eq!(p("2020-05-12T08:30:00+08:00"), "2020-05-12T08:30:00+08:00");
        assert_eq!(p("2020-05-12T00:30:00Z"), "2020-05-12T00:30:00+00:00");
        assert_eq!(p("2020-05-12 08:30:00 +0800"), "2020-05-12T08:30:00+08:00");
        assert_eq!(p("2020-05-12T08:30"), "2020-05-12T08:30:00+08:00");
    }

    #[test]
    fn rfc2822_with_and_without_zone() {
        assert_eq!(
            p("Tue, 12 May 2020 08:30:00 +0800"),
            "2020-05-12T08:30:00+08:00"
        );
        assert_eq!(
            p("Tue, 12 May 2020 00:30:00 GMT"),
            "2020-05-12T00:30:00+00:00"
        );
        assert_eq!(p("Tue, 12 May 2020 08:30:00"), "2020-05-12T08:30:00+08:00");
    }

    #[test]
    fn unix_timestamps() {
        assert_eq!(p("1589243400"), "2020-05-12T00:30:00+00:00");
        assert_eq!(p("1589243400000"), "2020-05-12T00:30:00+00:00");
    }

    #[test]
    fn year_is_guessed_as_most_recent_past() {
        // now is 2026-03-01 in Shanghai: 05-12 has not come yet this year.
        assert_eq!(p("05-12"), "2025-05-12T00:00:00+08:00 (day)");
        assert_eq!(p("02-27"), "2026-02-27T00:00:00+08:00 (day)");
        assert_eq!(p("5月12日 08:30"), "2025-05-12T08:30:00+08:00");
        assert_eq!(p("02-29"), "2024-02-29T00:00:00+08:00 (day)");
    }

    #[test]
    fn relative_chinese_dates() {
        assert_eq!(p("刚刚"), "2026-03-01T12:00:00+08:00");
        assert_eq!(p("3小时前"), "2026-03-01T09:00:00+08:00");
        assert_eq!(p("昨天 10:00"), "2026-02-28T10:00:00+08:00");
    }

    #[test]
    fn custom_format_and_errors() {
        let d = parse("12/05/2020", Some("%d/%m/%Y"), Shanghai, now()).unwrap();
        assert_eq!(d.at.to_rfc3339(), "2020-05-12T00:00:00+08:00");
        assert!(matches!(
            parse("x", Some("%Y"), Shanghai, now()),
            Err(DateError::Format { .. })
        ));
        assert!(matches!(
            parse("来源:河南日报", None, Shanghai, now()),
            Err(DateError::NotFound(_))
        ));
        assert!(matches!(
            parse("2020-13-45", None, Shanghai, now()),
            Err(DateError::OutOfRange(_))
        ));
    }

    #[test]
    fn other_zones_and_dst_gaps() {
        let d = parse(
            "2021-03-14 02:30",
            None,
            chrono_tz::America::New_York,
            now(),
        )
        .unwrap();
        assert_eq!(d.at.to_rfc3339(), "2021-03-14T03:30:00-04:00");
    }

    #[test]
    fn absurd_relative_dates_are_out_of_range_not_panics() {
        for text in ["100000000天前", "99999999999天前", "4294967295小时前"] {
            assert!(
                matches!(
                    parse(text, None, Shanghai, now()),
                    Err(DateError::OutOfRange(_))
                ),
                "{text}"
            );
        }
    }

    /// Whatever a page prints, parsing (and what extraction then does with the date:
    /// moving it into the site's zone, formatting it for the feed) never panics.
    fn never_panics(text: &str) {
        let zones = [
            Shanghai,
            chrono_tz::America::New_York,
            chrono_tz::Pacific::Kiritimati,
        ];
        for tz in zones {
            // The clock is the real one in production: today and a century either side.
            let days = Duration::days(36_525);
            for now in [now(), now() - days, now() + days] {
                if let Ok(d) = parse(text, None, tz, now) {
                    let _ = d.at.with_timezone(&tz).fixed_offset().to_rfc3339();
                }
                let _ = parse(text, Some("%Y-%m-%d %H:%M"), tz, now);
            }
        }
    }

    const CRAFTED: &[&str] = &[
        "100000000天前",
        "99999999999999999999秒前",
        "2147483647分钟前",
        "9999999999999",
        "999999999999",
        "-9999999999999",
        "2020年13月45日",
        "9999年12月31日 23:59",
        "0000-01-01",
        "9999-12-31T23:59:59+14:00",
        "0001-01-01T00:00:00-23:59",
        "31 Dec 9999 23:59:59 -2359",
        "1 Jan 0000 00:00 +2359",
        "昨天 99:99",
        "前天",
        "02-29",
        "13-45",
    ];

    #[test]
    fn crafted_dates_never_panic() {
        for text in CRAFTED {
            never_panics(text);
        }
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in ".{0,40}") {
            never_panics(&text);
        }

        #[test]
        fn digits_and_date_words_never_panic(
            text in "[0-9]{0,14}(秒|分钟|小时|天)?前?|[0-9]{1,6}[-/.年][0-9]{1,3}[-/.月][0-9]{1,3}日?( [0-9]{1,3}:[0-9]{1,3})?",
        ) {
            never_panics(&text);
        }

        #[test]
        fn every_pattern_round_trips(secs in 946_684_800i64..4_102_444_800i64, pattern in 0usize..8) {
            let at = DateTime::from_timestamp(secs, 0).unwrap().with_timezone(&Shanghai);
            let minute = at.with_timezone(&Shanghai).format("%Y-%m-%d %H:%M").to_string();
            let text = match pattern {
                0 => at.to_rfc3339(),
                1 => at.to_rfc2822(),
                2 => format!("时间:{}", at.format("%Y-%m-%d %H:%M:%S")),
                3 => format!("发布时间：{}", at.format("%Y/%-m/%-d %H:%M:%S")),
                4 => at.format("%Y年%-m月%-d日 %H:%M:%S").to_string(),
                5 => at.format("%Y.%m.%d %H:%M:%S").to_string(),
                6 => secs.to_string(),
                _ => format!("日期: {}", at.format("%Y-%m-%dT%H:%M:%S")),
            };
            let parsed = parse(&text, None, Shanghai, now()).unwrap();
            prop_assert_eq!(parsed.at.timestamp(), secs, "{} ({})", text, minute);
            prop_assert!(!parsed.date_only);
        }

        #[test]
        fn date_only_is_midnight_in_the_zone(days in 0i64..30_000) {
            let date = NaiveDate::from_ymd_opt(1990, 1, 1).unwrap() + Duration::days(days);
            let text = date.format("%Y年%-m月%-d日").to_string();
            let parsed = parse(&text, None, Shanghai, now()).unwrap();
            prop_assert!(parsed.date_only);
            prop_assert_eq!(parsed.at.with_timezone(&Shanghai).date_naive(), date);
            prop_assert_eq!(parsed.at.with_timezone(&Shanghai).time(), NaiveTime::MIN);
        }
    }
}

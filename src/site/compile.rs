//! Validation of a parsed selector file into a [`Site`]: every key is checked and every
//! problem recorded (with its position) before anything is built, so one `check` lists
//! them all. Also where run-time traps are refused: schedules that never fire or fire
//! more often than `min_interval`, encodings that decode nothing, `file://` devices.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use chrono_tz::Tz;
use encoding_rs::Encoding;
use regex::Regex;
use scraper::Selector;
use toml::de::{DeTable, DeValue};
use toml::Spanned;
use url::Url;

use super::read::{self, Table, Value};
use super::{
    clipped, css, is_language_tag, line_col, parse_duration, shown, ArticleRules, Crontab, Field,
    ImageMode, ListRules, Problem, Site, Source, DEFAULT_MAX_ITEMS, DEFAULT_MIN_INTERVAL,
    DEFAULT_RUN_TIMEOUT, DEFAULT_SCHEDULE,
};

/// The file's keys as read, before validation. A new top-level key goes here, in
/// [`SITE_KEYS`] and in [`RawSite::read`].
struct RawSite<'a, 'i> {
    title: Option<Spanned<String>>,
    home: Option<Spanned<String>>,
    start: Option<Spanned<Vec<Spanned<String>>>>,
    feed: Option<Spanned<String>>,
    schedule: Option<Spanned<String>>,
    min_interval: Option<Spanned<String>>,
    timezone: Option<Spanned<String>>,
    encoding: Option<Spanned<String>>,
    language: Option<Spanned<String>>,
    max_items: Option<Spanned<i64>>,
    keep_items: Option<Spanned<i64>>,
    delay: Option<Spanned<String>>,
    run_timeout: Option<Spanned<String>>,
    robots: Option<bool>,
    revisit: Option<bool>,
    auto: Option<bool>,
    hub: Option<Spanned<String>>,
    images: Option<Spanned<String>>,
    list: Option<Spanned<&'a DeTable<'i>>>,
    article: Option<Spanned<&'a DeTable<'i>>>,
}

const SITE_KEYS: &[&str] = &[
    "title",
    "home",
    "start",
    "feed",
    "schedule",
    "min_interval",
    "timezone",
    "encoding",
    "language",
    "max_items",
    "keep_items",
    "delay",
    "run_timeout",
    "robots",
    "revisit",
    "auto",
    "hub",
    "images",
    "list",
    "article",
];
const LIST_KEYS: &[&str] = &["item", "link", "title", "date", "next", "max_pages"];
const ARTICLE_KEYS: &[&str] = &["title", "date", "source", "body", "images", "remove"];
const FIELD_KEYS: &[&str] = &["css", "attr", "regex", "text", "format", "all"];

impl<'a, 'i> RawSite<'a, 'i> {
    fn read(t: &Table<'a, 'i>) -> Self {
        RawSite {
            title: t.string("title"),
            home: t.string("home"),
            start: t.strings("start"),
            feed: t.string("feed"),
            schedule: t.string("schedule"),
            min_interval: t.string("min_interval"),
            timezone: t.string("timezone"),
            encoding: t.string("encoding"),
            language: t.string("language"),
            max_items: t.integer("max_items"),
            keep_items: t.integer("keep_items"),
            delay: t.string("delay"),
            run_timeout: t.string("run_timeout"),
            robots: t.boolean("robots"),
            revisit: t.boolean("revisit"),
            auto: t.boolean("auto"),
            hub: t.string("hub"),
            images: t.string("images"),
            list: t.table("list"),
            article: t.table("article"),
        }
    }
}

/// A schedule with no firing this far ahead never fires (`0 0 31 2 *`).
const NEVER_FIRES_HORIZON: Duration = Duration::from_secs(5 * 366 * 86_400);
/// Hand-written regexes are short; a longer one is a paste accident, slow to compile
/// and to run on every page.
const MAX_REGEX_CHARS: usize = 10_000;
/// `5s`, `2m`, `1h`, `500ms`: a duration as an operator writes it.
fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if ms % 1000 != 0 {
        format!("{ms}ms")
    } else if ms % 3_600_000 == 0 && ms > 0 {
        format!("{}h", ms / 3_600_000)
    } else if ms % 60_000 == 0 && ms > 0 {
        format!("{}m", ms / 60_000)
    } else {
        format!("{}s", ms / 1000)
    }
}

/// One file being compiled: its text, and the problems found so far.
pub(super) struct Ctx<'a> {
    pub(super) path: &'a Path,
    pub(super) text: &'a str,
    pub(super) problems: RefCell<Vec<Problem>>,
}

/// An optional rule: absent, present and good, or present and bad (`None`).
type Optional<T> = Option<Option<T>>;

impl Ctx<'_> {
    pub(super) fn problem(&self, offset: usize, message: String) {
        let (line, column) = line_col(self.text, offset);
        self.problems.borrow_mut().push(Problem {
            line,
            column,
            message,
        });
    }

    fn has_problems(&self) -> bool {
        !self.problems.borrow().is_empty()
    }

    /// The file's text at `span`, as written.
    pub(super) fn source(&self, span: Range<usize>) -> &str {
        self.text.get(span).unwrap_or_default()
    }

    /// The file offset of byte `within` of a string value, when the value is written
    /// plainly (one-line quotes, no escapes); else the value's start.
    fn inner(&self, value: &Spanned<String>, within: usize) -> usize {
        let span = value.span();
        let raw = self.source(span.clone());
        let plain = raw.len() == value.get_ref().len() + 2
            && (raw.starts_with('"') || raw.starts_with('\''))
            && raw.get(1..raw.len() - 1) == Some(value.get_ref().as_str());
        if plain && within <= value.get_ref().len() {
            span.start + 1 + within
        } else {
            span.start
        }
    }

    pub(super) fn build(&self, id: String, root: &DeTable<'_>) -> Option<Site> {
        let t = Table::new(self, root, "", SITE_KEYS);
        let raw = RawSite::read(&t);
        let title = match &raw.title {
            Some(t) => Some(t.get_ref().clone()),
            None => {
                self.problem(
                    0,
                    "missing `title`; add the feed's title, e.g. title = \"工作动态\"".into(),
                );
                None
            }
        };
        let timezone = self.timezone(raw.timezone.as_ref());
        let encoding = self.encoding(raw.encoding.as_ref());
        let schedule = self.schedule(&raw, timezone.unwrap_or(Tz::UTC));
        let home = match &raw.home {
            None => Some(None),
            Some(h) => self.http_url(h, "home").map(Some),
        };
        let hub = match &raw.hub {
            None => Some(None),
            Some(h) => self.http_url(h, "hub").map(Some),
        };
        let start = raw.start.as_ref().map(|start| {
            if start.get_ref().is_empty() {
                self.problem(
                    start.span().start,
                    "`start` is empty; give at least one list page URL".into(),
                );
            }
            // Every URL is checked, not only up to the first bad one.
            let urls: Vec<Option<Url>> = start
                .get_ref()
                .iter()
                .map(|u| self.fetchable_url(u, "start"))
                .collect();
            urls.into_iter().collect::<Option<Vec<_>>>()
        });
        let feed = raw.feed.as_ref().map(|f| self.fetchable_url(f, "feed"));
        let list = raw.list.as_ref().map(|l| self.list_rules(l));
        // By presence, so a `start` of the wrong type is not also "missing".
        let at = |key: &str| t.get(key).map(|v| v.span().start);
        match (at("start"), at("feed"), at("list")) {
            (Some(_), Some(feed), _) => self.problem(
                feed,
                "`start` and `feed` are both set; a site reads either list pages \
                 (`start` + [list]) or an upstream feed (`feed`), not both"
                    .into(),
            ),
            (None, Some(_), Some(list)) => self.problem(
                list,
                "[list] is set but the site reads an upstream `feed`; remove [list] \
                 (the feed's entries are the list) or use `start` instead of `feed`"
                    .into(),
            ),
            (Some(start), None, None) => self.problem(
                start,
                "`start` is set but there is no [list] section; add [list] with at \
                 least `item` and `link` selectors"
                    .into(),
            ),
            (None, None, _) => self.problem(
                0,
                "neither `start` nor `feed` is set; add start = [\"http://…/list/\"] with \
                 a [list] section, or feed = \"http://…/rss.xml\""
                    .into(),
            ),
            _ => {}
        }
        let article = raw.article.as_ref().map(|a| self.article_rules(a));
        let max_items = self.positive(raw.max_items.as_ref(), "max_items");
        let keep_items = self.positive(raw.keep_items.as_ref(), "keep_items");
        if let (Some(Some(keep)), Some(max)) = (keep_items, max_items) {
            let max = max.unwrap_or(DEFAULT_MAX_ITEMS);
            if keep < max {
                let at = raw.keep_items.as_ref().map_or(0, |k| k.span().start);
                self.problem(
                    at,
                    format!(
                        "keep_items ({keep}) is below max_items ({max}); the store must keep \
                         at least what the feed shows"
                    ),
                );
            }
        }
        let delay = match &raw.delay {
            None => Some(None),
            Some(d) => self.duration(d, "delay").map(Some),
        };
        let run_timeout = match &raw.run_timeout {
            None => Some(DEFAULT_RUN_TIMEOUT),
            Some(d) => self.duration(d, "run_timeout").and_then(|t| {
                if t.is_zero() || t > Duration::from_secs(24 * 3600) {
                    self.problem(
                        d.span().start,
                        format!(
                            "`run_timeout` {} must be above 0s and at most 24h, e.g. \"10m\"",
                            shown(d.get_ref())
                        ),
                    );
                    None
                } else {
                    Some(t)
                }
            }),
        };
        let images = match &raw.images {
            None => Some(ImageMode::Direct),
            Some(m) => {
                let mode = ImageMode::parse(m.get_ref());
                if mode.is_none() {
                    self.problem(
                        m.span().start,
                        format!(
                            "`images` {} must be \"direct\", \"proxy\" or \"inline-cache\"",
                            shown(m.get_ref())
                        ),
                    );
                }
                mode
            }
        };
        let language = match &raw.language {
            Some(l) if !is_language_tag(l.get_ref()) => {
                self.problem(
                    l.span().start,
                    format!(
                        "language {} is not a language tag; use e.g. \"zh-CN\"",
                        shown(l.get_ref())
                    ),
                );
                None
            }
            l => Some(l.as_ref().map(|l| l.get_ref().clone())),
        };
        if self.has_problems() {
            return None;
        }
        let source = match (start, feed, list) {
            (Some(start), None, Some(list)) => Source::List {
                start: start?,
                rules: Box::new(list?),
            },
            (None, Some(url), None) => Source::Feed { url: url? },
            _ => return None,
        };
        let max_items = max_items?.unwrap_or(DEFAULT_MAX_ITEMS);
        Some(Site {
            id,
            path: self.path.to_owned(),
            title: title?,
            home: home?,
            source,
            article: article.map_or(Some(None), |a| a.map(Some))?,
            schedule: schedule?,
            timezone: timezone?,
            encoding: encoding?,
            language: language?,
            max_items,
            keep_items: keep_items?.unwrap_or(max_items * 10),
            delay: delay?,
            run_timeout: run_timeout?,
            robots: raw.robots.unwrap_or(true),
            revisit: raw.revisit.unwrap_or(false),
            auto: raw.auto.unwrap_or(true),
            hub: hub?,
            images: images?,
            fingerprint: *blake3::hash(self.text.as_bytes()).as_bytes(),
        })
    }

    fn timezone(&self, tz: Option<&Spanned<String>>) -> Option<Tz> {
        let Some(tz) = tz else {
            self.problem(
                0,
                "missing `timezone`: dates without an offset need the site's zone, \
                 e.g. timezone = \"Asia/Shanghai\""
                    .into(),
            );
            return None;
        };
        match tz.get_ref().parse::<Tz>() {
            Ok(z) => Some(z),
            Err(_) => {
                let names: Vec<&str> = chrono_tz::TZ_VARIANTS.iter().map(|z| z.name()).collect();
                let hint = match read::closest(tz.get_ref(), &names) {
                    Some(n) => format!("did you mean \"{n}\"?"),
                    // IANA names China's zone after Shanghai; Beijing is the usual guess.
                    None if tz.get_ref().eq_ignore_ascii_case("Asia/Beijing") => {
                        "China's IANA zone is \"Asia/Shanghai\"".into()
                    }
                    None => "use an IANA name such as \"Asia/Shanghai\"".into(),
                };
                self.problem(
                    tz.span().start,
                    format!("unknown time zone {}; {hint}", shown(tz.get_ref())),
                );
                None
            }
        }
    }

    /// `None` inside means `auto`. `replacement` (and the labels that alias it) decodes
    /// every page to one U+FFFD, and `x-user-defined` maps high bytes to private-use
    /// characters: neither reads a real page, so both are refused. UTF-16 is accepted:
    /// a page really served as UTF-16 has no other way to be read.
    fn encoding(&self, e: Option<&Spanned<String>>) -> Option<Option<&'static Encoding>> {
        let Some(e) = e else { return Some(None) };
        let label = e.get_ref().trim();
        if label.eq_ignore_ascii_case("auto") {
            return Some(None);
        }
        let refuse = |why: &str| {
            self.problem(
                e.span().start,
                format!(
                    "encoding {} {why}; use \"auto\" or the page's real charset such as \
                     \"gbk\", \"gb18030\", \"big5\", \"utf-8\"",
                    shown(e.get_ref())
                ),
            );
            None
        };
        match Encoding::for_label(label.as_bytes()) {
            None => refuse("is not a WHATWG encoding label"),
            Some(enc) if enc == encoding_rs::REPLACEMENT => refuse(
                "is the WHATWG \"replacement\" encoding, which decodes every page to a single \
                 U+FFFD",
            ),
            Some(enc) if enc == encoding_rs::X_USER_DEFINED => {
                refuse("maps bytes 0x80-0xFF to private-use characters and decodes no real page")
            }
            Some(enc) => Some(Some(enc)),
        }
    }

    fn schedule(&self, raw: &RawSite<'_, '_>, tz: Tz) -> Option<Crontab> {
        let floor = match &raw.min_interval {
            None => Some(DEFAULT_MIN_INTERVAL),
            Some(m) => self.duration(m, "min_interval"),
        };
        let Some(text) = &raw.schedule else {
            return Crontab::parse(DEFAULT_SCHEDULE).ok();
        };
        let schedule = match Crontab::parse(text.get_ref()) {
            Ok(s) => s,
            Err(e) => {
                self.problem(self.inner(text, e.offset), e.message);
                return None;
            }
        };
        if !schedule.fires_within(tz, NEVER_FIRES_HORIZON) {
            self.problem(
                text.span().start,
                format!(
                    "schedule {} never fires (no matching time in the next 5 years); check \
                     the day-of-month and month fields (\"0 0 31 2 *\" asks for February 31)",
                    shown(text.get_ref())
                ),
            );
            return None;
        }
        let (Some(floor), Some(gap)) = (floor, schedule.shortest_interval(tz, 200)) else {
            return Some(schedule);
        };
        if gap < floor {
            let fix = if raw.min_interval.is_some() {
                format!(
                    "under min_interval = \"{}\"; space the runs out or lower min_interval",
                    human(floor)
                )
            } else {
                format!(
                    "more often than once a minute, which hammers the site; use a 5-field \
                     schedule, or add min_interval = \"{}\" if you mean it",
                    human(gap)
                )
            };
            self.problem(
                text.span().start,
                format!(
                    "schedule {} fires {} apart, {fix}",
                    shown(text.get_ref()),
                    human(gap)
                ),
            );
            return None;
        }
        Some(schedule)
    }

    fn duration(&self, d: &Spanned<String>, key: &str) -> Option<Duration> {
        parse_duration(d.get_ref())
            .map_err(|m| self.problem(d.span().start, format!("`{key}`: {m}")))
            .ok()
    }

    fn positive(&self, v: Option<&Spanned<i64>>, key: &str) -> Optional<usize> {
        match v {
            None => Some(None),
            Some(n) if (1..=100_000).contains(n.get_ref()) => Some(Some(*n.get_ref() as usize)),
            Some(n) => {
                self.problem(
                    n.span().start,
                    format!(
                        "`{key}` is {}; it must be between 1 and 100000",
                        n.get_ref()
                    ),
                );
                None
            }
        }
    }

    fn url(&self, s: &Spanned<String>, key: &str, example: &str) -> Option<Url> {
        Url::parse(s.get_ref())
            .map_err(|e| {
                self.problem(
                    s.span().start,
                    format!(
                        "`{key}` {} is not a URL ({e}); write it in full, e.g. \"{example}\"",
                        shown(s.get_ref())
                    ),
                )
            })
            .ok()
    }

    fn http_url(&self, s: &Spanned<String>, key: &str) -> Option<Url> {
        let url = self.url(s, key, "http://www.example.gov.cn/")?;
        if !matches!(url.scheme(), "http" | "https") {
            self.problem(
                s.span().start,
                format!(
                    "`{key}` {} must be an http:// or https:// URL",
                    shown(s.get_ref())
                ),
            );
            return None;
        }
        Some(url)
    }

    /// A URL a run reads: http(s), or a `file://` page the operator saved. Kernel and
    /// device files (`/dev/zero` never ends, `/proc` changes on each read) and anything
    /// that is not a regular file are refused.
    fn fetchable_url(&self, s: &Spanned<String>, key: &str) -> Option<Url> {
        let url = self.url(s, key, "http://www.example.gov.cn/list/")?;
        let refuse = |why: String| {
            self.problem(
                s.span().start,
                format!("`{key}` {} {why}", shown(s.get_ref())),
            );
            None
        };
        match url.scheme() {
            "http" | "https" => Some(url),
            "file" => {
                let Ok(path) = url.to_file_path() else {
                    return refuse(
                        "is not a local file path; write file:///absolute/path/page.html".into(),
                    );
                };
                let special = |p: &Path| {
                    ["/dev", "/proc", "/sys"]
                        .into_iter()
                        .find(|d| p.starts_with(d))
                };
                let fix = "point file:// at a saved page or feed";
                if let Some(d) = special(&path) {
                    return refuse(format!(
                        "reads {d}, where files are devices or kernel state (endless or \
                         changing on every read); {fix}"
                    ));
                }
                if let Ok(meta) = std::fs::metadata(&path) {
                    if !meta.is_file() {
                        let what = if meta.is_dir() {
                            "a directory"
                        } else {
                            "not a regular file"
                        };
                        return refuse(format!("is {what}; {fix}"));
                    }
                    if let Some(d) = std::fs::canonicalize(&path)
                        .ok()
                        .as_deref()
                        .and_then(special)
                    {
                        return refuse(format!("is a link into {d}; {fix}"));
                    }
                }
                Some(url)
            }
            _ => refuse("is not fetchable: only http://, https:// and file:// URLs are".into()),
        }
    }

    /// Parses CSS with cssparser directly (scraper's own parse drops the position), so
    /// the error points at the character and says what was expected there.
    fn selector(&self, css: &Spanned<String>, key: &str) -> Option<Selector> {
        let text = css.get_ref();
        let mut parser = cssparser::Parser::new(text);
        let checked = selectors::parser::SelectorList::parse(
            &scraper::selector::Parser,
            &mut parser,
            selectors::parser::ParseRelative::No,
        );
        // cssparser keeps no location in its errors; where the parser stopped is
        // just past the offending token.
        let stopped = parser.position().byte_index().min(text.len());
        let (at, words) = match checked {
            Ok(_) => match Selector::parse(text) {
                Ok(s) => return Some(s),
                Err(_) => (0, "it is not a selector this service can use".to_owned()),
            },
            Err(e) => css::error_words(text, stopped, &e.kind),
        };
        let within = if self.inner(css, at) == css.span().start && at > 0 {
            format!(" (at character {})", text[..at].chars().count() + 1)
        } else {
            String::new()
        };
        self.problem(
            self.inner(css, at),
            format!(
                "`{key}` {} is not a valid CSS selector: {words}{within}",
                shown(text)
            ),
        );
        None
    }

    fn regex(&self, pattern: &Spanned<String>, key: &str) -> Option<std::sync::Arc<Regex>> {
        let p = pattern.get_ref();
        let chars = p.chars().count();
        if chars > MAX_REGEX_CHARS {
            self.problem(
                pattern.span().start,
                format!(
                    "`{key}` is {chars} characters long ({}); keep a regex under \
                     {MAX_REGEX_CHARS} characters",
                    shown(p)
                ),
            );
            return None;
        }
        if let Err(e) = regex_syntax::Parser::new().parse(p) {
            let (at, kind) = match &e {
                regex_syntax::Error::Parse(e) => (e.span().start.offset, e.kind().to_string()),
                regex_syntax::Error::Translate(e) => (e.span().start.offset, e.kind().to_string()),
                other => (0, other.to_string()),
            };
            self.problem(
                self.inner(pattern, at),
                format!("`{key}` {} is not a valid regex: {kind}", shown(p)),
            );
            return None;
        }
        let re = match shared_regex(p) {
            Ok(re) => re,
            Err(_) => {
                self.problem(
                    pattern.span().start,
                    format!(
                        "`{key}` {} compiles too large for the regex engine; simplify it",
                        shown(p)
                    ),
                );
                return None;
            }
        };
        if re.captures_len() < 2 {
            self.problem(
                pattern.span().start,
                format!(
                    "`{key}` {} has no capture group; wrap the part to keep in ( ), e.g. \
                     '来源[:：]\\s*(\\S+)'",
                    shown(p)
                ),
            );
            return None;
        }
        Some(re)
    }

    fn list_rules(&self, list: &Spanned<&DeTable<'_>>) -> Option<ListRules> {
        let t = Table::new(self, list.get_ref(), "list.", LIST_KEYS);
        let item_css = t.string("item");
        let item = match &item_css {
            Some(css) => self.selector(css, "list.item"),
            None => {
                if t.get("item").is_none() {
                    self.problem(
                        list.span().start,
                        "[list] has no `item`; add the CSS selector of one list entry, \
                         e.g. item = \"div.list li\""
                            .into(),
                    );
                }
                None
            }
        };
        let link = match t.get("link") {
            Some(v) => self.field(v, "list.link", Some("href")),
            None => {
                self.problem(
                    list.span().start,
                    "[list] has no `link`; add the CSS selector of the article link inside \
                     an item, e.g. link = \"a\""
                        .into(),
                );
                None
            }
        };
        let title = self.optional_field(&t, "title", None);
        let date = self.optional_field(&t, "date", None);
        let next = self.optional_field(&t, "next", Some("href"));
        let max_pages = match t.integer("max_pages") {
            None if t.get("max_pages").is_some() => None,
            None => Some(1),
            Some(n) if (1..=100).contains(n.get_ref()) => Some(*n.get_ref() as u32),
            Some(n) => {
                self.problem(
                    n.span().start,
                    format!(
                        "`list.max_pages` is {}; it must be between 1 and 100",
                        n.get_ref()
                    ),
                );
                None
            }
        };
        Some(ListRules {
            item: item?,
            item_css: item_css?.into_inner(),
            link: link?,
            title: title?,
            date: date?,
            next: next?,
            max_pages: max_pages?,
        })
    }

    fn article_rules(&self, article: &Spanned<&DeTable<'_>>) -> Option<ArticleRules> {
        let t = Table::new(self, article.get_ref(), "article.", ARTICLE_KEYS);
        let title = self.optional_field(&t, "title", None);
        let date = self.optional_field(&t, "date", None);
        let source = self.optional_field(&t, "source", None);
        let body = self.optional_field(&t, "body", None);
        let images = self.optional_field(&t, "images", Some("src"));
        let remove = match t.strings("remove") {
            None if t.get("remove").is_some() => None,
            None => Some(Vec::new()),
            Some(list) => list
                .get_ref()
                .iter()
                .map(|r| self.selector(r, "article.remove"))
                .collect::<Vec<_>>()
                .into_iter()
                .collect::<Option<Vec<_>>>(),
        };
        Some(ArticleRules {
            title: title?,
            date: date?,
            source: source?,
            body: body?,
            images: images?,
            remove: remove?,
        })
    }

    fn optional_field(
        &self,
        t: &Table<'_, '_>,
        key: &str,
        default_attr: Option<&str>,
    ) -> Optional<Field> {
        match t.get(key) {
            None => Some(None),
            Some(v) => self.field(v, &t.name(key), default_attr).map(Some),
        }
    }

    /// A field is a CSS string, or a table with `css` and optional
    /// `attr`, `regex`, `text`, `format`, `all`.
    fn field(&self, value: &Value<'_>, key: &str, default_attr: Option<&str>) -> Option<Field> {
        let css = match value.get_ref() {
            DeValue::String(s) => {
                let css = Spanned::new(value.span(), s.to_string());
                let selector = self.selector(&css, key);
                return Some(Field {
                    selector: selector?,
                    css: css.into_inner(),
                    attr: default_attr.map(str::to_owned),
                    regex: None,
                    text: None,
                    format: None,
                    all: false,
                });
            }
            DeValue::Table(t) => t,
            _ => {
                self.problem(
                    value.span().start,
                    format!(
                        "`{key}` must be a CSS selector string or a table like \
                         {{ css = \"…\", regex = '…' }}, found {}",
                        clipped(self.source(value.span()))
                    ),
                );
                return None;
            }
        };
        let t = Table::new(self, css, &format!("{key}."), FIELD_KEYS);
        let css = t.string("css");
        if css.is_none() && t.get("css").is_none() {
            self.problem(
                value.span().start,
                format!("`{key}` needs a `css` selector, e.g. {{ css = \"div.info\" }}"),
            );
        }
        let selector = css.as_ref().and_then(|c| self.selector(c, &t.name("css")));
        let attr = t.string("attr");
        let text = t.string("text");
        let format = t.string("format");
        if let Some(f) = &format {
            let bad = chrono::format::StrftimeItems::new(f.get_ref())
                .any(|i| matches!(i, chrono::format::Item::Error));
            if bad {
                self.problem(
                    f.span().start,
                    format!(
                        "`{}` {} is not a chrono date format; write e.g. \"%Y年%m月%d日 %H:%M\"",
                        t.name("format"),
                        shown(f.get_ref())
                    ),
                );
            }
        }
        let all = t.boolean("all");
        let regex = match t.string("regex") {
            None if t.get("regex").is_some() => None,
            None => Some(None),
            Some(p) => self.regex(&p, &t.name("regex")).map(Some),
        };
        Some(Field {
            selector: selector?,
            css: css?.into_inner(),
            attr: attr
                .map(Spanned::into_inner)
                .or_else(|| default_attr.map(str::to_owned)),
            regex: regex?,
            text: text.map(Spanned::into_inner),
            format: format.map(Spanned::into_inner),
            all: all.unwrap_or(false),
        })
    }
}
/// Distinct patterns compiled at most once per process, however many sites use them.
/// A compiled Unicode regex (`\s`, `\S`, CJK classes) costs ~40 KiB; 10,000 sites with
/// the same 时间/来源 patterns paid it 20,000 times. One `Regex` (not clones, which
/// each grow their own match caches) serves them all.
fn shared_regex(pattern: &str) -> Result<std::sync::Arc<Regex>, regex::Error> {
    /// Operators edit patterns while serving; past this many distinct ones the cache starts
    /// over (sites keep their clones), so edits cannot grow it without bound.
    const MAX_SHARED: usize = 4096;
    static SHARED: std::sync::LazyLock<std::sync::Mutex<HashMap<String, std::sync::Arc<Regex>>>> =
        std::sync::LazyLock::new(Default::default);
    let mut shared = SHARED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(re) = shared.get(pattern) {
        return Ok(re.clone());
    }
    let re = std::sync::Arc::new(Regex::new(pattern)?);
    if shared.len() >= MAX_SHARED {
        shared.clear();
    }
    shared.insert(pattern.to_owned(), re.clone());
    Ok(re)
}

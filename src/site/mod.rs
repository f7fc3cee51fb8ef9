//! Selector files (format v1): one TOML file per site, compiled once into a [`Site`].
//!
//! The file is parsed into spanned TOML values and read key by key (`read.rs`), so one
//! `check` reports every problem of a file, each as `path:line:col: what; how to fix`,
//! in the operator's terms. The compiled `Site` has its CSS selectors, regexes,
//! schedule, zone and encoding parsed at load, and what would misbehave at run time (a
//! schedule that never fires or fires every few seconds, an encoding that decodes
//! nothing, a `file://` device) is refused here, never discovered in the middle of a crawl.

mod crontab;
mod read;

use std::cell::RefCell;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono_tz::Tz;
use encoding_rs::Encoding;
use regex::Regex;
use scraper::Selector;
use toml::de::{DeTable, DeValue};
use toml::Spanned;
use url::Url;

pub use crontab::{CronError, Crontab};
use read::{Table, Value};

/// One problem in a selector file, pointing at the offending text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// A selector file that cannot be used: every problem found in it, in file order.
/// Displayed as one `path:line:col: message` line per problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SiteError {
    pub path: PathBuf,
    pub problems: Vec<Problem>,
}

impl SiteError {
    fn single(path: &Path, line: usize, column: usize, message: String) -> Self {
        SiteError {
            path: path.to_owned(),
            problems: vec![Problem {
                line,
                column,
                message,
            }],
        }
    }

    /// Each problem as its own `path:line:col: message` line (for lists: `/status.json`,
    /// the dashboard).
    pub fn lines(&self) -> impl Iterator<Item = String> + '_ {
        self.problems.iter().map(|p| {
            format!(
                "{}:{}:{}: {}",
                self.path.display(),
                p.line,
                p.column,
                p.message
            )
        })
    }
}

impl fmt::Display for SiteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, line) in self.lines().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            f.write_str(&line)?;
        }
        Ok(())
    }
}

/// One field rule: where a value is on the page and how to clean it.
#[derive(Debug, Clone)]
pub struct Field {
    /// The CSS text as written, for messages.
    pub css: String,
    pub selector: Selector,
    /// Take this attribute instead of the text.
    pub attr: Option<String>,
    /// Keep the first capture group of the matched text.
    pub regex: Option<Regex>,
    /// Keep only matches whose text contains this.
    pub text: Option<String>,
    /// A chrono format for dates the built-in parser does not know.
    pub format: Option<String>,
    /// Join all matches instead of taking the first.
    pub all: bool,
}

#[derive(Debug, Clone)]
pub struct ListRules {
    pub item: Selector,
    /// The `item` CSS as written, for messages.
    pub item_css: String,
    pub link: Field,
    pub title: Option<Field>,
    pub date: Option<Field>,
    pub next: Option<Field>,
    pub max_pages: u32,
}

#[derive(Debug, Clone)]
pub struct ArticleRules {
    pub title: Option<Field>,
    pub date: Option<Field>,
    pub source: Option<Field>,
    pub body: Option<Field>,
    pub images: Option<Field>,
    pub remove: Vec<Selector>,
}

/// Where a site's item links come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// HTML list pages, read with `[list]`.
    List {
        start: Vec<Url>,
        rules: Box<ListRules>,
    },
    /// An upstream RSS/Atom/JSON feed.
    Feed { url: Url },
}

/// A compiled, validated site.
#[derive(Debug, Clone)]
pub struct Site {
    pub id: String,
    pub path: PathBuf,
    pub title: String,
    pub home: Option<Url>,
    pub source: Source,
    pub article: Option<ArticleRules>,
    pub schedule: Crontab,
    pub timezone: Tz,
    /// `None` means `auto`: BOM, HTTP charset, meta prescan, detection.
    pub encoding: Option<&'static Encoding>,
    pub language: Option<String>,
    pub max_items: usize,
    /// Items kept in the store per site; older ones are pruned.
    pub keep_items: usize,
    /// Spacing between requests to this site's hosts; `None` = the service default.
    pub delay: Option<Duration>,
    pub robots: bool,
    /// Re-fetch already stored articles each run, so edits become updates.
    pub revisit: bool,
    /// blake3 of the file's bytes: a reload with the same bytes changes nothing.
    pub fingerprint: [u8; 32],
}

impl Site {
    /// The URLs a run starts from (list pages or the upstream feed).
    pub fn start_urls(&self) -> Vec<Url> {
        match &self.source {
            Source::List { start, .. } => start.clone(),
            Source::Feed { url } => vec![url.clone()],
        }
    }

    /// Points every start URL at another origin, keeping path and query. `demo` and
    /// tests use it to aim the bundled fixture site's file at a loopback server.
    pub fn rebase(&mut self, origin: &Url) {
        let move_url = |u: &mut Url| {
            let _ = u.set_scheme(origin.scheme());
            let _ = u.set_host(origin.host_str());
            let _ = u.set_port(origin.port());
        };
        match &mut self.source {
            Source::List { start, .. } => start.iter_mut().for_each(move_url),
            Source::Feed { url } => move_url(url),
        }
        if let Some(home) = &mut self.home {
            move_url(home);
        }
    }
}

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
    robots: Option<bool>,
    revisit: Option<bool>,
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
    "robots",
    "revisit",
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
            robots: t.boolean("robots"),
            revisit: t.boolean("revisit"),
            list: t.table("list"),
            article: t.table("article"),
        }
    }
}

pub const DEFAULT_SCHEDULE: &str = "*/30 * * * *";
pub const DEFAULT_MAX_ITEMS: usize = 50;
/// Without `min_interval`, a schedule may not fire more often than this: a seconds
/// schedule is almost always a typo for a minutes one, and hammers the site.
pub const DEFAULT_MIN_INTERVAL: Duration = Duration::from_secs(60);
/// A schedule with no firing this far ahead never fires (`0 0 31 2 *`).
const NEVER_FIRES_HORIZON: Duration = Duration::from_secs(5 * 366 * 86_400);
/// Hand-written regexes are short; a longer one is a paste accident, slow to compile
/// and to run on every page.
const MAX_REGEX_CHARS: usize = 10_000;
/// How much of an offending value a message quotes.
const QUOTE_CHARS: usize = 200;

/// Loads and compiles one selector file.
pub fn load(path: &Path) -> Result<Site, SiteError> {
    let bytes = std::fs::read(path).map_err(|e| {
        let why = match e.kind() {
            std::io::ErrorKind::NotFound => "no such file or directory".to_owned(),
            std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
            std::io::ErrorKind::IsADirectory => {
                "it is a directory; `feedbridge check DIR` checks every *.toml in it".to_owned()
            }
            _ => e.to_string(),
        };
        SiteError::single(path, 1, 1, format!("cannot read the file: {why}"))
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let (line, column) = line_col_of_bytes(e.as_bytes(), e.utf8_error().valid_up_to());
        SiteError::single(
            path,
            line,
            column,
            "the file is not UTF-8; save selector files as UTF-8".into(),
        )
    })?;
    compile(path, &text)
}

/// Compiles a selector file's text; `path` names the site and goes into errors.
/// Every problem of the file is reported, not only the first.
pub fn compile(path: &Path, text: &str) -> Result<Site, SiteError> {
    let ctx = Ctx {
        path,
        text,
        problems: RefCell::default(),
    };
    let id = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_owned();
    if !is_valid_site_id(&id) {
        ctx.problem(
            0,
            format!(
                "the file name {} is not a valid site id; rename the file to lower-case \
                 letters, digits and '-' (starting with a letter or digit), e.g. henan-gzdt.toml",
                shown(&id)
            ),
        );
    }
    let (root, syntax_errors) = DeTable::parse_recoverable(text);
    let site = if syntax_errors.is_empty() {
        ctx.build(id, root.get_ref())
    } else {
        // After a syntax error the parser's recovery is guesswork and its later errors
        // echo the first: report the first, nothing else.
        if let Some(e) = syntax_errors.first() {
            let at = e.span().map_or(0, |s| s.start);
            let what = e.message().lines().next().unwrap_or_default().trim();
            ctx.problem(
                at,
                format!(
                    "TOML syntax: {what}; fix this first (the rest of the file is checked after)"
                ),
            );
        }
        None
    };
    let mut problems = ctx.problems.into_inner();
    match site {
        Some(site) if problems.is_empty() => Ok(site),
        _ => {
            problems.sort_by_key(|p| (p.line, p.column));
            problems.dedup();
            Err(SiteError {
                path: path.to_owned(),
                problems,
            })
        }
    }
}

/// `[a-z0-9][a-z0-9-]*`: the feed's URL path, so never anything a file system could read.
pub fn is_valid_site_id(id: &str) -> bool {
    let mut chars = id.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && id.len() <= 64
}

/// A value as written, in double quotes, cut at [`QUOTE_CHARS`] characters and with
/// control characters escaped, so a message stays one readable line.
pub(crate) fn shown(s: &str) -> String {
    format!("\"{}\"", clipped(s))
}

/// [`shown`] without the quotes (for TOML source text, which carries its own).
fn clipped(s: &str) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i == QUOTE_CHARS {
            out.push('…');
            break;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:04x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

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

struct Ctx<'a> {
    path: &'a Path,
    text: &'a str,
    problems: RefCell<Vec<Problem>>,
}

/// An optional rule: absent, present and good, or present and bad (`None`).
type Optional<T> = Option<Option<T>>;

impl Ctx<'_> {
    fn problem(&self, offset: usize, message: String) {
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
    fn source(&self, span: Range<usize>) -> &str {
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

    fn build(&self, id: String, root: &DeTable<'_>) -> Option<Site> {
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
            robots: raw.robots.unwrap_or(true),
            revisit: raw.revisit.unwrap_or(false),
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
            Err(e) => css_error_words(text, stopped, &e.kind),
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

    fn regex(&self, pattern: &Spanned<String>, key: &str) -> Option<Regex> {
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
        let re = match Regex::new(p) {
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

/// selectors' error kinds in the words of someone writing CSS.
/// Returns the byte offset to point at and the words.
fn css_error_words(
    text: &str,
    stopped: usize,
    kind: &cssparser::ParseErrorKind<selectors::parser::SelectorParseErrorKind>,
) -> (usize, String) {
    use cssparser::{BasicParseErrorKind as B, ParseErrorKind as K};
    use selectors::parser::SelectorParseErrorKind as S;
    // The offending token ends where the parser stopped: step back over it (a name,
    // else one punctuation character).
    let is_name = |c: char| c.is_alphanumeric() || c == '-' || c == '_' || !c.is_ascii();
    let before = &text[..stopped];
    let name_start = before
        .char_indices()
        .rev()
        .take_while(|(_, c)| is_name(*c))
        .last()
        .map(|(i, _)| i);
    let at = match name_start {
        Some(i) => i,
        None => before.char_indices().next_back().map_or(0, |(i, _)| i),
    };
    let at = if stopped == text.len() && matches!(kind, K::Basic(B::EndOfInput)) {
        stopped
    } else {
        at
    };
    let here: String = match text[at..].chars().next() {
        Some(c) if is_name(c) => text[at..]
            .chars()
            .take_while(|c| is_name(*c))
            .take(40)
            .collect(),
        Some(c) => c.to_string(),
        None => String::new(),
    };
    let unclosed = ['[', '('].into_iter().find(|open| {
        let close = if *open == '[' { ']' } else { ')' };
        text.matches(*open).count() > text.matches(close).count()
    });
    let at = match (kind, unclosed) {
        (K::Basic(B::EndOfInput), Some(open)) => text.rfind(open).unwrap_or(at),
        (K::Custom(S::ClassNeedsIdent), _) => before.rfind('.').unwrap_or(at),
        (K::Custom(S::NoQualifiedNameInAttributeSelector), _) => {
            before.rfind('[').map_or(at, |i| i + 1)
        }
        _ => at,
    };
    let words = match kind {
        K::Basic(B::EndOfInput) => match unclosed {
            Some(open) => format!(
                "unexpected end of selector: a `{open}` is never closed; close it with `{}`",
                if open == '[' { ']' } else { ')' }
            ),
            None => "unexpected end of selector; complete or remove the last part".into(),
        },
        K::Basic(B::UnexpectedToken) if here.is_empty() => {
            "unexpected end of selector; complete or remove the last part".into()
        }
        K::Basic(B::UnexpectedToken) => {
            format!("unexpected `{here}`; check brackets, quotes and combinators here")
        }
        K::Basic(B::AtRuleInvalid | B::AtRuleBodyInvalid | B::QualifiedRuleInvalid) => {
            "only a selector belongs here, not a CSS rule".into()
        }
        K::Custom(S::ClassNeedsIdent) => {
            "expected a class name after `.`; write e.g. div.content".into()
        }
        K::Custom(S::EmptySelector) if text.trim().is_empty() => {
            "the selector is empty; write one, e.g. \"div.list li\"".into()
        }
        K::Custom(S::EmptySelector) if text.split(',').any(|p| p.trim().is_empty()) => {
            "a part between commas is empty; remove the extra ','".into()
        }
        K::Custom(S::EmptySelector) => {
            format!("expected a tag, class, id or attribute at `{here}`")
        }
        K::Custom(S::DanglingCombinator) => {
            "a combinator (`>`, `+`, `~`) must have a selector on both sides".into()
        }
        K::Custom(S::NoQualifiedNameInAttributeSelector) => {
            "expected an attribute name after `[`, e.g. a[href]".into()
        }
        K::Custom(S::UnexpectedTokenInAttributeSelector) => {
            "expected `=`, `~=`, `|=`, `^=`, `$=`, `*=` or `]` in the attribute selector".into()
        }
        K::Custom(S::BadValueInAttr) => {
            "the attribute value must be a name or a quoted string, e.g. [href=\"/a b\"]".into()
        }
        K::Custom(
            S::PseudoElementExpectedColon | S::PseudoElementExpectedIdent | S::NoIdentForPseudo,
        ) => "expected a pseudo-class name after `:`, e.g. li:first-child".into(),
        K::Custom(S::UnsupportedPseudoClassOrElement) => {
            let colons = text[..at].rsplit(|c| c != ':').next().unwrap_or_default();
            format!(
                "unsupported pseudo-class or pseudo-element `{colons}{here}`; use e.g. \
                 :first-child, :nth-child(2), :not(…), :has(…)"
            )
        }
        K::Custom(S::UnexpectedIdent) => format!("unexpected name `{here}`"),
        K::Custom(
            S::ExpectedNamespace
            | S::ExpectedBarInAttr
            | S::InvalidQualNameInAttr
            | S::ExplicitNamespaceUnexpectedToken,
        ) => "namespaces (`|`) are not supported; remove the `ns|` prefix".into(),
        K::Basic(B::TooManyNestedBlocks) => "too deeply nested".into(),
        _ => "this form of selector is not supported here".into(),
    };
    (at, words)
}

/// `"1s"`, `"500ms"`, `"2m"`, `"1h"`, `"0s"`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: f64 = number.parse().map_err(|_| {
        format!("duration {s:?} must look like \"1s\", \"500ms\", \"2m\" or \"1h\"")
    })?;
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "s" | "" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        other => {
            return Err(format!(
                "duration {s:?} has unknown unit {other:?}; use ms, s, m or h"
            ))
        }
    };
    if !(0.0..=86_400.0).contains(&secs) {
        return Err(format!("duration {s:?} must be between 0s and 24h"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn is_language_tag(s: &str) -> bool {
    !s.is_empty()
        && s.split('-')
            .all(|p| !p.is_empty() && p.len() <= 8 && p.chars().all(|c| c.is_ascii_alphanumeric()))
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..text.floor_char_boundary_compat(offset)];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

fn line_col_of_bytes(bytes: &[u8], offset: usize) -> (usize, usize) {
    let before = &bytes[..offset.min(bytes.len())];
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let column = before.rsplit(|b| *b == b'\n').next().map_or(0, <[u8]>::len) + 1;
    (line, column)
}

trait FloorCharBoundary {
    fn floor_char_boundary_compat(&self, i: usize) -> usize;
}

impl FloorCharBoundary for str {
    fn floor_char_boundary_compat(&self, mut i: usize) -> usize {
        while i > 0 && !self.is_char_boundary(i) {
            i -= 1;
        }
        i
    }
}

/// Every `*.toml` in a directory, sorted; other names (editor swap files, `x.toml.new`)
/// are ignored.
pub fn selector_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml") && p.is_file())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| !n.starts_with('.'))
        })
        .collect();
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
title = "工作动态"
start = ["http://www.example.gov.cn/gzdt/"]
timezone = "Asia/Shanghai"
encoding = "gb2312"
delay = "0s"

[list]
item = "div.list li"
link = "a"
date = "span"
next = { css = "div.page a", text = "下一页" }
max_pages = 3

[article]
title = "h1"
date = { css = "div.info", regex = '时间[:：]\s*(\d{4}-\d{1,2}-\d{1,2})' }
body = "div.content"
remove = ["script"]
"#;

    #[test]
    fn compiles_a_good_file() {
        let site = compile(Path::new("selectors/henan-gzdt.toml"), GOOD).unwrap();
        assert_eq!(site.id, "henan-gzdt");
        assert_eq!(site.encoding, Some(encoding_rs::GBK));
        assert_eq!(site.delay, Some(Duration::ZERO));
        assert_eq!(site.max_items, 50);
        assert_eq!(site.keep_items, 500);
        let Source::List { rules, .. } = &site.source else {
            panic!("list site")
        };
        assert_eq!(rules.max_pages, 3);
        assert_eq!(rules.link.attr.as_deref(), Some("href"));
        assert_eq!(rules.next.as_ref().unwrap().text.as_deref(), Some("下一页"));
    }

    #[test]
    fn errors_point_at_line_and_column() {
        let bad = GOOD.replace("body = \"div.content\"", "body = \"div..content\"");
        let e = compile(Path::new("x.toml"), &bad).unwrap_err();
        let p = &e.problems[0];
        assert_eq!((p.line, p.column), (18, 13), "{e}");
        assert!(
            p.message
                .ends_with("is not a valid CSS selector: expected a class name after `.`; write e.g. div.content"),
            "{e}"
        );
    }

    #[test]
    fn every_problem_is_reported_in_file_order() {
        let bad = GOOD
            .replace(
                "encoding = \"gb2312\"",
                "encoding = \"replacement\"\nrobots = 1",
            )
            .replace("max_pages = 3", "max_pagse = 3")
            .replace("title = \"h1\"", "title = \"h1[\"");
        let e = compile(Path::new("x.toml"), &bad).unwrap_err();
        let lines: Vec<String> = e.lines().collect();
        assert_eq!(lines.len(), 4, "{e}");
        assert!(
            lines[0].starts_with("x.toml:5:12: encoding \"replacement\""),
            "{e}"
        );
        assert!(
            lines[1]
                .starts_with("x.toml:6:10: `robots` must be true or false, found an integer (1)"),
            "{e}"
        );
        assert!(
            lines[2].starts_with(
                "x.toml:14:1: unknown key `list.max_pagse`; did you mean `max_pages`?"
            ),
            "{e}"
        );
        assert!(
            lines[3].starts_with("x.toml:17:12: `article.title` \"h1[\""),
            "{e}"
        );
        assert_eq!(e.to_string(), lines.join("\n"));
    }

    #[test]
    fn run_time_traps_are_refused_unless_meant() {
        let with =
            |extra: &str| GOOD.replace("delay = \"0s\"", &format!("delay = \"0s\"\n{extra}"));
        let fast = with("schedule = \"*/10 * * * * *\"");
        let e = compile(Path::new("x.toml"), &fast).unwrap_err();
        assert!(
            e.to_string()
                .contains("fires 10s apart, more often than once a minute"),
            "{e}"
        );
        let meant = with("schedule = \"*/10 * * * * *\"\nmin_interval = \"10s\"");
        assert!(compile(Path::new("x.toml"), &meant).is_ok());
        let utf16 = GOOD.replace("\"gb2312\"", "\"utf-16le\"");
        assert!(
            compile(Path::new("x.toml"), &utf16).is_ok(),
            "UTF-16 pages exist"
        );
        let dir = GOOD.replace("http://www.example.gov.cn/gzdt/", "file:///");
        let e = compile(Path::new("x.toml"), &dir).unwrap_err();
        assert!(e.to_string().contains("\"file:///\" is a directory"), "{e}");
        let typo = GOOD.replace("Asia/Shanghai", "Asia/Shangai");
        let e = compile(Path::new("x.toml"), &typo).unwrap_err();
        assert!(
            e.to_string().contains("did you mean \"Asia/Shanghai\"?"),
            "{e}"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn site_ids() {
        assert!(is_valid_site_id("henan-gzdt2"));
        for bad in ["", "-a", "A", "a_b", "a.b", "..", "a/b"] {
            assert!(!is_valid_site_id(bad), "{bad}");
        }
    }
}

/// Every site of a selectors directory, plus the files that failed to load.
#[derive(Debug, Clone, Default)]
pub struct SiteSet {
    pub sites: std::collections::BTreeMap<String, std::sync::Arc<Site>>,
    pub errors: Vec<SiteError>,
}

impl SiteSet {
    /// Loads every selector file of `dir`. A file that fails keeps the site it had in
    /// `previous` (its last good rules), and its error is listed.
    pub fn load_dir(dir: &Path, previous: Option<&SiteSet>) -> std::io::Result<SiteSet> {
        let mut set = SiteSet::default();
        for path in selector_files(dir)? {
            match load(&path) {
                Ok(site) => {
                    let site = match previous.and_then(|p| p.sites.get(&site.id)) {
                        Some(old) if old.fingerprint == site.fingerprint => old.clone(),
                        _ => std::sync::Arc::new(site),
                    };
                    set.sites.insert(site.id.clone(), site);
                }
                Err(e) => {
                    let id = path
                        .file_stem()
                        .and_then(|s| s.to_str())
                        .unwrap_or_default();
                    if let Some(old) = previous.and_then(|p| p.sites.get(id)) {
                        set.sites.insert(id.to_owned(), old.clone());
                    }
                    set.errors.push(e);
                }
            }
        }
        Ok(set)
    }
}

/// A cheap signature of a directory's selector files (names, sizes, modification times),
/// polled to notice edits, additions, deletions and saves by rename.
pub fn dir_signature(dir: &Path) -> Vec<(PathBuf, u64, Option<std::time::SystemTime>)> {
    selector_files(dir)
        .unwrap_or_default()
        .into_iter()
        .map(|p| {
            let meta = std::fs::metadata(&p).ok();
            let size = meta.as_ref().map_or(0, std::fs::Metadata::len);
            let modified = meta.and_then(|m| m.modified().ok());
            (p, size, modified)
        })
        .collect()
}

/// Reloads `dir` whenever its files change and have been still for one poll interval
/// (editors that write in several steps must not get a half file applied), publishing
/// each new set on `tx`. Polling, not inotify: it also works on bind mounts and NFS.
pub async fn watch_dir(
    dir: PathBuf,
    tx: tokio::sync::watch::Sender<std::sync::Arc<SiteSet>>,
    interval: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut applied = dir_signature(&dir);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.changed() => return,
        }
        let now = dir_signature(&dir);
        if now == applied {
            continue;
        }
        // Wait until the files stop changing.
        tokio::time::sleep(interval).await;
        if dir_signature(&dir) != now {
            continue;
        }
        let previous = tx.borrow().clone();
        match SiteSet::load_dir(&dir, Some(&previous)) {
            Ok(set) => {
                for e in &set.errors {
                    tracing::error!("selector file not applied, keeping its last good rules: {e}");
                }
                let added: Vec<&String> = set
                    .sites
                    .keys()
                    .filter(|k| !previous.sites.contains_key(*k))
                    .collect();
                let removed: Vec<&String> = previous
                    .sites
                    .keys()
                    .filter(|k| !set.sites.contains_key(*k))
                    .collect();
                tracing::info!(
                    sites = set.sites.len(),
                    ?added,
                    ?removed,
                    "selectors reloaded"
                );
                let _ = tx.send(std::sync::Arc::new(set));
                applied = now;
            }
            Err(e) => {
                tracing::error!(dir = %dir.display(), error = %e, "cannot read the selectors directory")
            }
        }
    }
}

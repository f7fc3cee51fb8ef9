//! Selector files (format v1): one TOML file per site, compiled once into a [`Site`].
//!
//! Raw serde structs (unknown keys refused) are kept apart from the compiled `Site`, whose
//! CSS selectors, regexes, schedule, zone and encoding were all parsed at load, so a bad
//! file fails here, with `path:line:col`, and never in the middle of a crawl.

mod crontab;

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono_tz::Tz;
use encoding_rs::Encoding;
use regex::Regex;
use scraper::Selector;
use serde::Deserialize;
use toml::Spanned;
use url::Url;

pub use crontab::Crontab;

/// A selector file that cannot be used, pointing at the offending text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}:{column}: {message}", path.display())]
pub struct SiteError {
    pub path: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
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
    /// A run past this stops and keeps what it stored (`run_timeout`, default 10 min).
    pub run_timeout: Duration,
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSite {
    title: Spanned<String>,
    home: Option<Spanned<String>>,
    start: Option<Spanned<Vec<Spanned<String>>>>,
    feed: Option<Spanned<String>>,
    schedule: Option<Spanned<String>>,
    timezone: Option<Spanned<String>>,
    encoding: Option<Spanned<String>>,
    language: Option<Spanned<String>>,
    max_items: Option<Spanned<i64>>,
    keep_items: Option<Spanned<i64>>,
    delay: Option<Spanned<String>>,
    run_timeout: Option<Spanned<String>>,
    robots: Option<bool>,
    revisit: Option<bool>,
    list: Option<Spanned<RawList>>,
    article: Option<Spanned<RawArticle>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawList {
    item: Spanned<String>,
    link: Spanned<toml::Value>,
    title: Option<Spanned<toml::Value>>,
    date: Option<Spanned<toml::Value>>,
    next: Option<Spanned<toml::Value>>,
    max_pages: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArticle {
    title: Option<Spanned<toml::Value>>,
    date: Option<Spanned<toml::Value>>,
    source: Option<Spanned<toml::Value>>,
    body: Option<Spanned<toml::Value>>,
    images: Option<Spanned<toml::Value>>,
    #[serde(default)]
    remove: Vec<Spanned<String>>,
}

pub const DEFAULT_SCHEDULE: &str = "*/30 * * * *";
pub const DEFAULT_MAX_ITEMS: usize = 50;

/// Loads and compiles one selector file.
pub fn load(path: &Path) -> Result<Site, SiteError> {
    let bytes = std::fs::read(path).map_err(|e| SiteError {
        path: path.to_owned(),
        line: 1,
        column: 1,
        message: format!("cannot read the file: {e}"),
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let (line, column) = line_col_of_bytes(e.as_bytes(), e.utf8_error().valid_up_to());
        SiteError {
            path: path.to_owned(),
            line,
            column,
            message: "the file is not UTF-8; save selector files as UTF-8".into(),
        }
    })?;
    compile(path, &text)
}

/// Compiles a selector file's text; `path` names the site and goes into errors.
pub fn compile(path: &Path, text: &str) -> Result<Site, SiteError> {
    let ctx = Ctx { path, text };
    let id = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_owned();
    if !is_valid_site_id(&id) {
        return Err(ctx.at(
            0,
            format!(
                "the file name {id:?} is not a valid site id; rename the file to lower-case \
                 letters, digits and '-' (starting with a letter or digit), e.g. henan-gzdt.toml"
            ),
        ));
    }
    let raw: RawSite = toml::from_str(text).map_err(|e| {
        let at = e.span().map_or(0, |s| s.start);
        ctx.at(at, e.message().trim().to_owned())
    })?;
    ctx.build(id, raw)
}

/// `[a-z0-9][a-z0-9-]*`: the feed's URL path, so never anything a file system could read.
pub fn is_valid_site_id(id: &str) -> bool {
    let mut chars = id.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && id.len() <= 64
}

struct Ctx<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Ctx<'_> {
    fn at(&self, offset: usize, message: String) -> SiteError {
        let (line, column) = line_col(self.text, offset);
        SiteError {
            path: self.path.to_owned(),
            line,
            column,
            message,
        }
    }

    fn build(&self, id: String, raw: RawSite) -> Result<Site, SiteError> {
        let timezone = match &raw.timezone {
            Some(tz) => tz.get_ref().parse::<Tz>().map_err(|_| {
                self.at(
                    tz.span().start,
                    format!(
                        "unknown time zone {:?}; use an IANA name such as \"Asia/Shanghai\"",
                        tz.get_ref()
                    ),
                )
            })?,
            None => {
                return Err(self.at(
                    0,
                    "missing `timezone`: dates without an offset need the site's zone, \
                     e.g. timezone = \"Asia/Shanghai\""
                        .into(),
                ))
            }
        };
        let encoding = match &raw.encoding {
            None => None,
            Some(e) if e.get_ref().eq_ignore_ascii_case("auto") => None,
            Some(e) => Some(
                Encoding::for_label(e.get_ref().trim().as_bytes()).ok_or_else(|| {
                    self.at(
                        e.span().start,
                        format!(
                            "unknown encoding {:?}; use \"auto\" or a WHATWG label such as \
                         \"gbk\", \"gb18030\", \"big5\", \"utf-8\"",
                            e.get_ref()
                        ),
                    )
                })?,
            ),
        };
        let schedule_text = raw
            .schedule
            .as_ref()
            .map_or(DEFAULT_SCHEDULE, |s| s.get_ref());
        let schedule = Crontab::parse(schedule_text)
            .map_err(|m| self.at(raw.schedule.as_ref().map_or(0, |s| s.span().start), m))?;
        let home = raw.home.as_ref().map(|h| self.http_url(h)).transpose()?;
        let source = match (&raw.start, &raw.feed, raw.list) {
            (Some(_), Some(feed), _) => {
                return Err(self.at(
                    feed.span().start,
                    "`start` and `feed` are both set; a site reads either list pages \
                     (`start` + [list]) or an upstream feed (`feed`), not both"
                        .into(),
                ))
            }
            (None, Some(_), Some(list)) => {
                return Err(self.at(
                    list.span().start,
                    "[list] is set but the site reads an upstream `feed`; remove [list] \
                     (the feed's entries are the list) or use `start` instead of `feed`"
                        .into(),
                ))
            }
            (None, Some(feed), None) => Source::Feed {
                url: self.fetchable_url(feed)?,
            },
            (Some(start), None, Some(list)) => {
                if start.get_ref().is_empty() {
                    return Err(self.at(
                        start.span().start,
                        "`start` is empty; give at least one list page URL".into(),
                    ));
                }
                let start = start
                    .get_ref()
                    .iter()
                    .map(|u| self.fetchable_url(u))
                    .collect::<Result<Vec<_>, _>>()?;
                Source::List {
                    start,
                    rules: Box::new(self.list_rules(list)?),
                }
            }
            (Some(start), None, None) => {
                return Err(self.at(
                    start.span().start,
                    "`start` is set but there is no [list] section; add [list] with at \
                     least `item` and `link` selectors"
                        .into(),
                ))
            }
            (None, None, _) => {
                return Err(self.at(
                    0,
                    "neither `start` nor `feed` is set; add start = [\"http://…/list/\"] with \
                     a [list] section, or feed = \"http://…/rss.xml\""
                        .into(),
                ))
            }
        };
        let article = raw.article.map(|a| self.article_rules(a)).transpose()?;
        let max_items = self
            .positive(&raw.max_items, "max_items")?
            .unwrap_or(DEFAULT_MAX_ITEMS);
        let keep_items = self
            .positive(&raw.keep_items, "keep_items")?
            .unwrap_or(max_items * 10);
        if keep_items < max_items {
            let span = raw.keep_items.as_ref().map_or(0, |k| k.span().start);
            return Err(self.at(
                span,
                format!("keep_items ({keep_items}) is below max_items ({max_items}); the store must keep at least what the feed shows"),
            ));
        }
        let delay = match &raw.delay {
            None => None,
            Some(d) => Some(parse_duration(d.get_ref()).map_err(|m| self.at(d.span().start, m))?),
        };
        let language = match raw.language {
            Some(l) if !is_language_tag(l.get_ref()) => {
                return Err(self.at(
                    l.span().start,
                    format!(
                        "language {:?} is not a language tag; use e.g. \"zh-CN\"",
                        l.get_ref()
                    ),
                ))
            }
            l => l.map(Spanned::into_inner),
        };
        Ok(Site {
            id,
            path: self.path.to_owned(),
            title: raw.title.into_inner(),
            home,
            source,
            article,
            schedule,
            timezone,
            encoding,
            language,
            max_items,
            keep_items,
            delay,
            run_timeout: match &raw.run_timeout {
                None => DEFAULT_RUN_TIMEOUT,
                Some(d) => parse_duration(d.get_ref())
                    .ok()
                    .filter(|t| !t.is_zero())
                    .ok_or_else(|| {
                        self.at(
                            d.span().start,
                            format!("run_timeout {:?} must be a duration above 0s and up to 24h, e.g. \"10m\"", d.get_ref()),
                        )
                    })?,
            },
            robots: raw.robots.unwrap_or(true),
            revisit: raw.revisit.unwrap_or(false),
            fingerprint: *blake3::hash(self.text.as_bytes()).as_bytes(),
        })
    }

    fn positive(&self, v: &Option<Spanned<i64>>, key: &str) -> Result<Option<usize>, SiteError> {
        match v {
            None => Ok(None),
            Some(n) if *n.get_ref() >= 1 && *n.get_ref() <= 100_000 => {
                Ok(Some(*n.get_ref() as usize))
            }
            Some(n) => Err(self.at(
                n.span().start,
                format!("`{key}` must be between 1 and 100000"),
            )),
        }
    }

    fn http_url(&self, s: &Spanned<String>) -> Result<Url, SiteError> {
        let url = Url::parse(s.get_ref()).map_err(|e| {
            self.at(s.span().start, format!("{:?} is not a URL ({e}); write it in full, e.g. \"http://www.example.gov.cn/\"", s.get_ref()))
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(self.at(
                s.span().start,
                format!("{:?} must be an http:// or https:// URL", s.get_ref()),
            ));
        }
        Ok(url)
    }

    fn fetchable_url(&self, s: &Spanned<String>) -> Result<Url, SiteError> {
        let url = Url::parse(s.get_ref()).map_err(|e| {
            self.at(s.span().start, format!("{:?} is not a URL ({e}); write it in full, e.g. \"http://www.example.gov.cn/list/\"", s.get_ref()))
        })?;
        if !matches!(url.scheme(), "http" | "https" | "file") {
            return Err(self.at(
                s.span().start,
                format!(
                    "{:?}: only http://, https:// and file:// URLs can be fetched",
                    s.get_ref()
                ),
            ));
        }
        Ok(url)
    }

    fn selector(&self, css: &str, offset: usize) -> Result<Selector, SiteError> {
        Selector::parse(css).map_err(|e| {
            let why = match e {
                scraper::error::SelectorErrorKind::UnexpectedSelectorParseError(k) => {
                    format!("{k:?}")
                }
                other => other.to_string(),
            };
            self.at(
                offset,
                format!(
                    "invalid CSS selector {css:?} ({why}); check brackets, quotes and combinators"
                ),
            )
        })
    }

    fn list_rules(&self, list: Spanned<RawList>) -> Result<ListRules, SiteError> {
        let list = list.into_inner();
        let max_pages = match &list.max_pages {
            None => 1,
            Some(n) if (1..=100).contains(n.get_ref()) => *n.get_ref() as u32,
            Some(n) => {
                return Err(self.at(
                    n.span().start,
                    "`max_pages` must be between 1 and 100".into(),
                ))
            }
        };
        Ok(ListRules {
            item: self.selector(list.item.get_ref(), list.item.span().start)?,
            item_css: list.item.get_ref().clone(),
            link: self.field(&list.link, "link", Some("href"))?,
            title: list
                .title
                .as_ref()
                .map(|f| self.field(f, "title", None))
                .transpose()?,
            date: list
                .date
                .as_ref()
                .map(|f| self.field(f, "date", None))
                .transpose()?,
            next: list
                .next
                .as_ref()
                .map(|f| self.field(f, "next", Some("href")))
                .transpose()?,
            max_pages,
        })
    }

    fn article_rules(&self, article: Spanned<RawArticle>) -> Result<ArticleRules, SiteError> {
        let a = article.into_inner();
        Ok(ArticleRules {
            title: a
                .title
                .as_ref()
                .map(|f| self.field(f, "title", None))
                .transpose()?,
            date: a
                .date
                .as_ref()
                .map(|f| self.field(f, "date", None))
                .transpose()?,
            source: a
                .source
                .as_ref()
                .map(|f| self.field(f, "source", None))
                .transpose()?,
            body: a
                .body
                .as_ref()
                .map(|f| self.field(f, "body", None))
                .transpose()?,
            images: a
                .images
                .as_ref()
                .map(|f| self.field(f, "images", Some("src")))
                .transpose()?,
            remove: a
                .remove
                .iter()
                .map(|r| self.selector(r.get_ref(), r.span().start))
                .collect::<Result<_, _>>()?,
        })
    }

    /// A field is a CSS string, or a table with `css` and optional
    /// `attr`, `regex`, `text`, `format`, `all`.
    fn field(
        &self,
        value: &Spanned<toml::Value>,
        key: &str,
        default_attr: Option<&str>,
    ) -> Result<Field, SiteError> {
        let at = value.span().start;
        let wrong_type = || {
            self.at(at, format!(
                "`{key}` must be a CSS selector string or a table like {{ css = \"…\", regex = '…' }}"
            ))
        };
        let (css, table) = match value.get_ref() {
            toml::Value::String(s) => (s.clone(), None),
            toml::Value::Table(t) => match t.get("css") {
                Some(toml::Value::String(s)) => (s.clone(), Some(t)),
                Some(_) => return Err(self.at(at, format!("`{key}.css` must be a string"))),
                None => {
                    return Err(self.at(
                        at,
                        format!(
                            "`{key}` needs a `css` selector, e.g. {key} = {{ css = \"div.info\" }}"
                        ),
                    ))
                }
            },
            _ => return Err(wrong_type()),
        };
        let mut field = Field {
            selector: self.selector(&css, at)?,
            css,
            attr: default_attr.map(str::to_owned),
            regex: None,
            text: None,
            format: None,
            all: false,
        };
        let Some(table) = table else { return Ok(field) };
        for (k, v) in table {
            let string = || {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| self.at(at, format!("`{key}.{k}` must be a string")))
            };
            match k.as_str() {
                "css" => {}
                "attr" => field.attr = Some(string()?),
                "text" => field.text = Some(string()?),
                "format" => field.format = Some(string()?),
                "all" => {
                    field.all = v.as_bool().ok_or_else(|| self.at(at, format!("`{key}.all` must be true or false")))?
                }
                "regex" => {
                    let pattern = string()?;
                    let re = Regex::new(&pattern).map_err(|e| {
                        let first = e.to_string().lines().last().unwrap_or_default().trim().to_owned();
                        self.at(at, format!("`{key}.regex` {pattern:?} is not a valid regex: {first}"))
                    })?;
                    if re.captures_len() < 2 {
                        return Err(self.at(at, format!(
                            "`{key}.regex` {pattern:?} has no capture group; wrap the part to keep in ( ), e.g. '来源[:：]\\s*(\\S+)'"
                        )));
                    }
                    field.regex = Some(re);
                }
                other => {
                    return Err(self.at(at, format!(
                        "unknown key `{key}.{other}`; a field takes css, attr, regex, text, format, all"
                    )))
                }
            }
        }
        Ok(field)
    }
}

/// How long a run may take unless the site's file says otherwise.
pub const DEFAULT_RUN_TIMEOUT: Duration = Duration::from_secs(600);

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
        assert_eq!((e.line, e.column), (18, 8), "{e}");
        assert!(e.message.contains("invalid CSS selector"), "{e}");
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

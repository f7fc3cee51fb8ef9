//! Selector files (format v1): one TOML file per site, compiled once into a [`Site`].
//!
//! The file is parsed into spanned TOML values and read key by key (`read.rs`), so one
//! `check` reports every problem of a file, each as `path:line:col: what; how to fix`,
//! in the operator's terms. The compiled `Site` has its CSS selectors, regexes,
//! schedule, zone and encoding parsed at load, and what would misbehave at run time (a
//! schedule that never fires or fires every few seconds, an encoding that decodes
//! nothing, a `file://` device) is refused here, never discovered in the middle of a crawl.

mod compile;
mod crontab;
mod css;
mod read;
mod watch;

use std::cell::RefCell;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono_tz::Tz;
use encoding_rs::Encoding;
use regex::Regex;
use scraper::Selector;
use toml::de::DeTable;
use url::Url;

pub use crontab::{CronError, Crontab};
pub use watch::{is_selector_name, reload_files, watch_dir};

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
    /// Shared by every site with the same pattern (see `compile::shared_regex`).
    pub regex: Option<std::sync::Arc<Regex>>,
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

#[derive(Debug, Clone, Default)]
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
    /// Automatic extraction fills the article fields without a rule (or whose rule
    /// matched nothing), and reads the articles of a list site without `[article]`.
    pub auto: bool,
    /// WebSub hub for this site's feeds (`hub`), over the service's `--hub`.
    pub hub: Option<Url>,
    /// How the feed points at the article images (`images`, default `direct`).
    pub images: ImageMode,
    /// blake3 of the file's bytes: a reload with the same bytes changes nothing.
    pub fingerprint: [u8; 32],
}

/// How a feed points at its images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImageMode {
    /// The image's own URL (the reader fetches it from the site).
    #[default]
    Direct,
    /// Through this service's signed `/img/` proxy, which sends the article as `Referer`
    /// (sites that refuse hotlinked images).
    Proxy,
    /// As `Proxy`, and the serve side fetches the images of newly stored items into the
    /// proxy's cache (`serve::images::prefetch`), so readers never wait on the origin.
    InlineCache,
}

impl ImageMode {
    pub fn parse(s: &str) -> Option<ImageMode> {
        match s {
            "direct" => Some(ImageMode::Direct),
            "proxy" => Some(ImageMode::Proxy),
            "inline-cache" => Some(ImageMode::InlineCache),
            _ => None,
        }
    }

    /// Whether image URLs in the feed go through the proxy.
    pub fn proxied(self) -> bool {
        !matches!(self, ImageMode::Direct)
    }
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

pub const DEFAULT_SCHEDULE: &str = "*/30 * * * *";
pub const DEFAULT_MAX_ITEMS: usize = 50;
/// Without `min_interval`, a schedule may not fire more often than this: a seconds
/// schedule is almost always a typo for a minutes one, and hammers the site.
pub const DEFAULT_MIN_INTERVAL: Duration = Duration::from_secs(60);
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
    let ctx = compile::Ctx {
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

    proptest::proptest! {
        /// A damaged file never panics the compiler, and every problem stays one line
        /// that points inside the file.
        #[test]
        fn damaged_files_give_one_line_problems(
            at in 0usize..600,
            cut in 0usize..40,
            insert in "[\\[\\]{}\"'=.,:*/#\\n a-z0-9时]{0,12}",
        ) {
            let mut text = GOOD.to_owned();
            let at = text.floor_char_boundary_compat(at.min(text.len()));
            let end = text.floor_char_boundary_compat((at + cut).min(text.len()));
            text.replace_range(at..end, &insert);
            if let Err(e) = compile(Path::new("x.toml"), &text) {
                proptest::prop_assert!(!e.problems.is_empty());
                for p in &e.problems {
                    proptest::prop_assert!(!p.message.contains('\n'), "{}", p.message);
                    proptest::prop_assert!(p.line >= 1 && p.line <= text.lines().count() + 1);
                }
            }
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn a_shard_keeps_its_sites_across_reloads_and_lists_the_rest() {
        let dir = std::env::temp_dir().join(format!("feedbridge-shard-set-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..12 {
            std::fs::write(dir.join(format!("s{i}.toml")), GOOD).unwrap();
        }
        std::fs::write(dir.join("broken.toml"), "title = ").unwrap();
        let shard: crate::shard::Shard = "2/3".parse().unwrap();
        let set = SiteSet::load_dir(&dir, None).unwrap().shard(shard);
        assert!(set.sites.keys().all(|id| shard.owns(id)));
        assert!(set.elsewhere.keys().all(|id| !shard.owns(id)));
        assert_eq!(set.sites.len() + set.elsewhere.len(), 12);
        assert_eq!(set.all_sites().len(), 12);
        assert_eq!(set.errors.len(), usize::from(shard.owns("broken")));
        std::fs::write(dir.join("s12.toml"), GOOD).unwrap();
        let reloaded = SiteSet::load_dir(&dir, Some(&set)).unwrap();
        assert_eq!(reloaded.shard, Some(shard));
        assert!(reloaded.sites.keys().all(|id| shard.owns(id)));
        assert_eq!(reloaded.all_sites().len(), 13);
        std::fs::remove_dir_all(&dir).unwrap();
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
    /// With `serve --shard`: which shard `sites` (and `errors`) are; a reload keeps it.
    pub shard: Option<crate::shard::Shard>,
    /// With a shard: the other shards' sites, only listed (in `/opml`), never crawled or
    /// served here.
    pub elsewhere: std::collections::BTreeMap<String, std::sync::Arc<Site>>,
}

impl SiteSet {
    /// Loads every selector file of `dir`. A file that fails keeps the site it had in
    /// `previous` (its last good rules), and its error is listed.
    pub fn load_dir(dir: &Path, previous: Option<&SiteSet>) -> std::io::Result<SiteSet> {
        let mut set = SiteSet::default();
        for path in selector_files(dir)? {
            match load(&path) {
                Ok(site) => {
                    let site = match previous.and_then(|p| p.any(&site.id)) {
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
                    if let Some(old) = previous.and_then(|p| p.any(id)) {
                        set.sites.insert(id.to_owned(), old.clone());
                    }
                    set.errors.push(e);
                }
            }
        }
        // The one place a reload applies the shard, whoever reloads.
        Ok(match previous.and_then(|p| p.shard) {
            Some(shard) => set.shard(shard),
            None => set,
        })
    }

    /// A site of this set or of another shard.
    pub fn any(&self, id: &str) -> Option<&std::sync::Arc<Site>> {
        self.sites.get(id).or_else(|| self.elsewhere.get(id))
    }

    /// This set as shard `shard` sees it: `sites` keeps the sites it owns, the others
    /// move to `elsewhere`, and `errors` keeps the files it would own.
    pub fn shard(mut self, shard: crate::shard::Shard) -> SiteSet {
        let all = std::mem::take(&mut self.sites)
            .into_iter()
            .chain(std::mem::take(&mut self.elsewhere));
        for (id, site) in all {
            if shard.owns(&id) {
                self.sites.insert(id, site);
            } else {
                self.elsewhere.insert(id, site);
            }
        }
        self.errors.retain(|e| {
            shard.owns(
                e.path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or_default(),
            )
        });
        self.shard = Some(shard);
        self
    }

    /// The site ids a sharded deployment routes: the loaded sites of every shard and the
    /// valid ids of files that failed to load (their owner serves them once fixed).
    pub fn routable_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .sites
            .keys()
            .chain(self.elsewhere.keys())
            .cloned()
            .collect();
        for e in &self.errors {
            if let Some(stem) = e.path.file_stem().and_then(|s| s.to_str()) {
                if is_valid_site_id(stem) {
                    ids.push(stem.to_owned());
                }
            }
        }
        ids.sort();
        ids.dedup();
        ids
    }

    /// Every site of every shard, by id (for `/opml`: an aggregator imports one list).
    pub fn all_sites(&self) -> Vec<&std::sync::Arc<Site>> {
        let mut all: Vec<&std::sync::Arc<Site>> =
            self.sites.values().chain(self.elsewhere.values()).collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }
}

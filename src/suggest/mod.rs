//! `feedbridge suggest`: a working selector file for a new site from its list page, so
//! nobody has to guess CSS paths in devtools.
//!
//! The analysis is pure (page bytes + URL in, rules out: [`analyze_list`], [`finish`]);
//! [`run`] only fetches, with the normal [`Fetcher`] (robots.txt, per-host delay). Every
//! rule is checked on every sample before it is written, the file is compiled with
//! [`site::compile`], and the same extraction `preview` runs is run on the result.

mod article;
mod css;
mod list;
mod output;

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use url::Url;

use crate::extract::{charset, extract_article, extract_list, normalize_text, Document};
use crate::fetch::{FetchError, FetchOutcome, Fetcher, Manners};
use crate::model::{canonical_url, Item, ListEntry, Page};
use crate::site::{self, Site, Source};

pub use article::ArticleFound;
pub use list::ListFound;

/// Why no file could be suggested.
#[derive(Debug, thiserror::Error)]
pub enum SuggestError {
    #[error("found no repeated links to articles: is this a list page?")]
    NotAList,
    #[error("nothing stable found: {0}")]
    NothingStable(String),
    #[error("no sample article could be fetched: {0}")]
    ArticlesUnreachable(String),
    #[error("{0}")]
    Robots(String),
    #[error("{0}")]
    Fetch(FetchError),
    #[error("{0}: cannot read the saved page: {1}")]
    Read(PathBuf, String),
    #[error("{0} exists; pass --force to overwrite it")]
    Exists(PathBuf),
    #[error("{0}: cannot write: {1}")]
    Write(PathBuf, String),
    #[error("{0:?} is not a valid site id: use lower-case letters, digits and '-'")]
    BadId(String),
    #[error("bug: the suggested file does not compile ({0}); please report it with the list URL")]
    Compile(site::SiteError),
}

impl SuggestError {
    /// Usage problems exit 2, the rest 1.
    pub fn is_usage(&self) -> bool {
        matches!(self, SuggestError::Exists(_) | SuggestError::BadId(_))
    }
}

/// One field rule as it will be written, with the evidence that chose it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rule {
    pub css: String,
    pub attr: Option<String>,
    pub regex: Option<String>,
    pub text: Option<String>,
    pub why: String,
}

impl Rule {
    pub fn css(css: &str) -> Rule {
        Rule {
            css: css.to_owned(),
            ..Rule::default()
        }
    }
    pub fn attr(mut self, a: &str) -> Rule {
        self.attr = Some(a.to_owned());
        self
    }
    pub fn regex(mut self, r: &str) -> Rule {
        self.regex = Some(r.to_owned());
        self
    }
    pub fn text(mut self, t: &str) -> Rule {
        self.text = Some(t.to_owned());
        self
    }
    pub fn because(mut self, why: String) -> Rule {
        self.why = why;
        self
    }
}

/// What the command was asked.
#[derive(Debug, Clone)]
pub struct Options {
    pub url: Url,
    /// A saved copy of the list page (read instead of fetching it).
    pub saved: Option<PathBuf>,
    pub id: Option<String>,
    pub samples: usize,
}

/// A finished suggestion.
#[derive(Debug)]
pub struct Suggestion {
    pub id: String,
    pub toml: String,
    pub site: Site,
    /// What `preview` extracts with the suggested rules from the pages already fetched.
    pub items: Vec<Item>,
    /// Things the operator should look at.
    pub unsure: Vec<String>,
}

/// A site used only to decode and parse pages before there are rules.
fn probe_site() -> Site {
    const PROBE: &str = "title = \"probe\"\nstart = [\"http://127.0.0.1/\"]\n\
        timezone = \"UTC\"\n[list]\nitem = \"a\"\nlink = \"a\"\n";
    #[allow(clippy::expect_used)]
    site::compile(Path::new("probe.toml"), PROBE).expect("the static probe file compiles")
}

/// Finds the list, its pagination and the article links on a list page.
pub fn analyze_list(page: &Page) -> Result<ListFound, SuggestError> {
    let doc = Document::parse(page, &probe_site());
    list::analyze(&doc, &page.url)
}

/// A site id from the list URL's path: its last meaningful segment.
pub fn default_id(url: &Url) -> String {
    let clean = |s: &str| {
        let s: String = s
            .to_ascii_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let mut out = String::new();
        for c in s.chars() {
            if !(c == '-' && (out.is_empty() || out.ends_with('-'))) {
                out.push(c);
            }
        }
        out.trim_end_matches('-')
            .chars()
            .take(48)
            .collect::<String>()
    };
    let segment = url
        .path_segments()
        .into_iter()
        .flatten()
        .filter(|s| !s.is_empty())
        .map(|s| s.split('.').next().unwrap_or(s))
        .filter(|s| !s.starts_with("index") && !s.starts_with("default") && *s != "list")
        .map(clean)
        .rfind(|s| site::is_valid_site_id(s));
    segment
        .or_else(|| {
            url.host_str()
                .map(clean)
                .filter(|s| site::is_valid_site_id(s))
        })
        .unwrap_or_else(|| "site".to_owned())
}

fn is_loopback(url: &Url) -> bool {
    matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"))
}

fn settings(list_page: &Page, list_doc: &Document, found: &ArticleFound) -> output::Settings {
    let html = &list_doc.html;
    // Title: the breadcrumb's last item, else <title> before the site's suffix.
    let crumb = html
        .root_element()
        .descendants()
        .filter_map(scraper::ElementRef::wrap)
        .find(|e| {
            e.value().classes().chain(e.value().id()).any(|n| {
                let n = n.to_ascii_lowercase();
                [
                    "crumb",
                    "breadcrumb",
                    "location",
                    "position",
                    "dqwz",
                    "weizhi",
                    "current-position",
                ]
                .iter()
                .any(|k| n.contains(k))
            })
        })
        .map(|e| normalize_text(e.text()))
        .and_then(|t| {
            t.rsplit(['>', '›', '»', '/', '＞'])
                .map(|p| {
                    p.trim()
                        .trim_start_matches("当前位置")
                        .trim_start_matches(['：', ':'])
                        .trim()
                        .to_owned()
                })
                .find(|p| !p.is_empty())
        });
    let page_title = html
        .select(&TITLE)
        .next()
        .map(|t| normalize_text(t.text()))
        .unwrap_or_default();
    // A bare '-' separates the site's name only in Chinese titles ("e-mail" stays whole).
    let cjk = page_title
        .chars()
        .any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c));
    let parts: Vec<&str> = page_title
        .split(['_', '|', '–', '—'])
        .flat_map(|p| {
            if cjk {
                p.split('-').collect::<Vec<_>>()
            } else {
                p.split(" - ").collect()
            }
        })
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    let site_name = parts.last().copied().filter(|_| parts.len() > 1);
    let (column, why) = match crumb {
        Some(c) => (c, "the breadcrumb's last item"),
        None => (
            parts
                .first()
                .map_or_else(|| "feed".to_owned(), |s| (*s).to_owned()),
            "the page <title> without the site's name",
        ),
    };
    let title = match site_name {
        Some(s) if s != column => (
            format!("{s} · {column}"),
            format!("{why}, after the site's name from <title>"),
        ),
        _ => (column, why.to_owned()),
    };
    let language = article::language(html);
    let timezone = match (&found.zone, language.as_deref()) {
        (Some((tz, how)), _) => (
            tz.name().to_owned(),
            format!("dates without an offset are read in this zone (automatic extraction: {how})"),
        ),
        (None, Some(l)) if l.to_ascii_lowercase().starts_with("zh") => (
            "Asia/Shanghai".to_owned(),
            format!("the page is Chinese ({l}): Beijing time"),
        ),
        _ => (
            "UTC".to_owned(),
            "no language or country pointed at a zone; set the site's own zone if its dates carry no offset".to_owned(),
        ),
    };
    let tld = list_page
        .url
        .host_str()
        .and_then(|h| h.rsplit('.').next())
        .map(str::as_bytes);
    let (text, enc, decided) = charset::decode(
        &list_page.body,
        list_page.content_type.as_deref(),
        None,
        tld,
    );
    let broken = text.chars().filter(|c| *c == '\u{fffd}').count();
    let encoding = if broken * 200 > text.chars().count().max(1) {
        let better = [encoding_rs::GB18030, encoding_rs::UTF_8, encoding_rs::BIG5]
            .into_iter()
            .min_by_key(|e| {
                e.decode(&list_page.body)
                    .0
                    .chars()
                    .filter(|c| *c == '\u{fffd}')
                    .count()
            })
            .unwrap_or(enc);
        (
            better.name().to_ascii_lowercase(),
            format!(
                "the declared {} garbles this page; {} reads it cleanly",
                enc.name(),
                better.name()
            ),
        )
    } else {
        (
            "auto".to_owned(),
            format!("the page reads cleanly as {} ({decided:?})", enc.name()),
        )
    };
    let delay = if is_loopback(&list_page.url) {
        (
            "0s".to_owned(),
            "a loopback server: no spacing needed (use \"1s\" or more for real sites)".to_owned(),
        )
    } else {
        (
            "1s".to_owned(),
            "one request a second to this host: polite".to_owned(),
        )
    };
    output::Settings {
        title,
        home: list_page.url.to_string(),
        start: vec![list_page.url.to_string()],
        start_why: "the list page given to suggest".to_owned(),
        schedule: (
            "*/30 * * * *".to_owned(),
            "every 30 minutes: polite, and fresh enough for a news column".to_owned(),
        ),
        timezone,
        encoding,
        language: language.map(|l| {
            let why = "from the page's lang attribute or its text".to_owned();
            (l, why)
        }),
        delay,
    }
}

static TITLE: std::sync::LazyLock<scraper::Selector> =
    std::sync::LazyLock::new(|| scraper::Selector::parse("title").expect("static selector"));

/// Builds, compiles and tries the selector file from pages already fetched.
/// `samples` are the article pages, each with the list's title for it.
pub fn finish(
    opts: &Options,
    list_page: &Page,
    found: &ListFound,
    next_page: Option<&Page>,
    samples: &[(Page, Option<String>)],
    now: DateTime<Utc>,
) -> Result<Suggestion, SuggestError> {
    let id = match &opts.id {
        Some(id) if site::is_valid_site_id(id) => id.clone(),
        Some(id) => return Err(SuggestError::BadId(id.clone())),
        None => default_id(&opts.url),
    };
    let probe = probe_site();
    let list_doc = Document::parse(list_page, &probe);
    let art_samples: Vec<article::Sample<'_>> = samples
        .iter()
        .map(|(p, t)| article::Sample {
            page: p,
            list_title: t.clone(),
        })
        .collect();
    let mut article = article::analyze(&art_samples, &probe, now);
    if article.title.is_none() && article.body.is_none() && article.date.is_none() {
        return Err(SuggestError::NothingStable(format!(
            "no article field has one selector that holds on all {} samples",
            samples.len()
        )));
    }
    // Remove rules only make sense with a body rule.
    if article.body.is_none() {
        article.remove.clear();
    }
    let mut settings = settings(list_page, &list_doc, &article);
    let max_pages_why = match (&found.next, &found.more_starts) {
        (Some(_), _) => "pages followed per run; raise it to catch up after a pause".to_owned(),
        (None, Some((urls, why))) => {
            settings.start.extend(urls.iter().map(ToString::to_string));
            settings.start_why = why.clone();
            "each start page is read once per run".to_owned()
        }
        (None, None) => "no pagination found: one page per run".to_owned(),
    };
    let source_url = opts.url.to_string();
    let text = output::render(&output::Sections {
        source_url: &source_url,
        settings: &settings,
        list: vec![
            ("item", Some(&found.item)),
            ("link", Some(&found.link)),
            ("title", Some(&found.title)),
            ("date", found.date.as_ref()),
            ("next", found.next.as_ref()),
        ],
        max_pages: (found.max_pages, max_pages_why),
        article: vec![
            ("title", article.title.as_ref()),
            ("date", article.date.as_ref()),
            ("source", article.source.as_ref()),
            ("body", article.body.as_ref()),
        ],
        left: &article.left,
        remove: &article.remove,
    });
    let site =
        site::compile(Path::new(&format!("{id}.toml")), &text).map_err(SuggestError::Compile)?;

    // The same extraction `preview` runs, on the pages already here.
    let mut unsure = found.unsure.clone();
    let mut items = Vec::new();
    if let Source::List { rules, .. } = &site.source {
        let list = extract_list(list_page, &site, rules, now);
        let mut entries: Vec<ListEntry> = list.entries;
        if entries.len() != found.articles.len() {
            unsure.push(format!(
                "the list rules read {} items where {} were found",
                entries.len(),
                found.articles.len()
            ));
        }
        if let Some(next) = next_page {
            let more = extract_list(next, &site, rules, now);
            if more.entries.is_empty() {
                unsure.push(format!(
                    "the next page {} gave no items with these rules",
                    next.url
                ));
            }
            entries.extend(more.entries);
        }
        if let Some(rules) = &site.article {
            for (page, _) in samples {
                let url = canonical_url(&page.url);
                let entry = entries
                    .iter()
                    .find(|e| e.url.as_ref() == Some(&url))
                    .cloned()
                    .unwrap_or_else(|| ListEntry {
                        url: Some(url),
                        ..ListEntry::default()
                    });
                items.push(extract_article(page, &site, rules, &entry, now));
            }
        }
    }
    for (field, why) in &article.left {
        unsure.push(format!(
            "article {field}: left to automatic extraction ({why})"
        ));
    }
    if found.next.is_none() && found.more_starts.is_none() {
        unsure.push("no pagination found: only the first list page is read".into());
    }
    Ok(Suggestion {
        id,
        toml: text,
        site,
        items,
        unsure,
    })
}

async fn fetch(fetcher: &Fetcher, url: &Url, manners: &Manners) -> Result<Page, SuggestError> {
    match fetcher.get(url, None, manners).await {
        Ok(FetchOutcome::Page { page, .. }) => Ok(page),
        Ok(FetchOutcome::NotModified) => Err(SuggestError::Fetch(FetchError::Status {
            url: url.to_string(),
            status: 304,
        })),
        Err(e @ (FetchError::Robots { .. } | FetchError::RobotsUnreachable { .. })) => {
            Err(SuggestError::Robots(e.to_string()))
        }
        Err(e) => Err(SuggestError::Fetch(e)),
    }
}

/// Fetches the list page (or reads the saved one), its next page and `samples` articles,
/// then suggests.
pub async fn run(opts: &Options, fetcher: &Fetcher) -> Result<Suggestion, SuggestError> {
    let manners = Manners {
        delay: if is_loopback(&opts.url) {
            Duration::ZERO
        } else {
            Duration::from_secs(1)
        },
        robots: true,
        // The operator typed the list URL: its host's address class is allowed, as for a
        // site's `start`; everything found in the pages is checked against it.
        policy: crate::url_policy::UrlPolicy::resolved([opts.url.clone()]).await,
    };
    let list_page = match &opts.saved {
        Some(file) => Page {
            url: opts.url.clone(),
            body: std::fs::read(file)
                .map_err(|e| SuggestError::Read(file.clone(), e.to_string()))?
                .into(),
            content_type: None,
        },
        None => fetch(fetcher, &opts.url, &manners).await?,
    };
    let found = analyze_list(&list_page)?;
    let next_page = match &found.next_url {
        Some(u) => fetch(fetcher, u, &manners).await.ok(),
        None => None,
    };
    let mut samples = Vec::new();
    let mut first_error = None;
    for (url, title) in found.articles.iter().take(opts.samples.max(1)) {
        match fetch(fetcher, url, &manners).await {
            Ok(page) => samples.push((page, Some(title.clone()))),
            Err(e @ SuggestError::Robots(_)) => return Err(e),
            Err(e) => {
                first_error.get_or_insert(e.to_string());
            }
        }
    }
    if samples.is_empty() {
        return Err(SuggestError::ArticlesUnreachable(
            first_error.unwrap_or_else(|| "the list links to no article".into()),
        ));
    }
    finish(
        opts,
        &list_page,
        &found,
        next_page.as_ref(),
        &samples,
        chrono::Utc::now(),
    )
}

/// Writes `selectors/<id>.toml`, refusing to replace a file without `force`.
pub fn write(dir: &Path, s: &Suggestion, force: bool) -> Result<PathBuf, SuggestError> {
    let path = dir.join(format!("{}.toml", s.id));
    if path.exists() && !force {
        return Err(SuggestError::Exists(path));
    }
    std::fs::create_dir_all(dir).map_err(|e| SuggestError::Write(dir.to_owned(), e.to_string()))?;
    let tmp = dir.join(format!(".{}.toml.tmp", s.id));
    std::fs::write(&tmp, &s.toml)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|e| SuggestError::Write(path.clone(), e.to_string()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(url: &str, html: &str) -> Page {
        Page {
            url: Url::parse(url).unwrap(),
            body: html.as_bytes().to_vec().into(),
            content_type: Some("text/html; charset=utf-8".into()),
        }
    }

    #[test]
    fn ids_come_from_the_url_path() {
        let id = |u: &str| default_id(&Url::parse(u).unwrap());
        assert_eq!(id("http://www.example.gov.cn/gzdt/"), "gzdt");
        assert_eq!(id("http://www.example.gov.cn/xwzx/gzdt/index.html"), "gzdt");
        assert_eq!(id("http://www.example.gov.cn/News_List/"), "news-list");
        assert_eq!(id("http://www.example.gov.cn/"), "www-example-gov-cn");
        assert!(site::is_valid_site_id(&id("http://127.0.0.1:8080/")));
    }

    #[test]
    fn subdomains_of_one_site_are_one_site() {
        let same = list::same_site_for_test;
        assert!(same(
            "http://www.henan.gov.cn/a/",
            "http://news.henan.gov.cn/b.html"
        ));
        assert!(same("https://blog.example.com/", "https://example.com/x"));
        assert!(!same(
            "http://www.henan.gov.cn/",
            "http://www.hebei.gov.cn/"
        ));
        assert!(!same("http://127.0.0.1:8080/", "http://127.0.0.1:9090/"));
    }

    #[test]
    fn generated_names_are_not_stable() {
        for good in ["list", "news-item", "TRS_Editor", "h1"] {
            assert!(css::is_stable_name(good), "{good}");
        }
        for bad in [
            "post-101",
            "css-1x2y3z",
            "a8f3e9c2d1",
            "ctl00_ContentPlaceHolder1_lbl",
            "",
        ] {
            assert!(!css::is_stable_name(bad), "{bad}");
        }
    }

    const LIST: &str = r#"<html><body>
<div class="nav"><ul><li><a href="/a/">首页栏目一</a></li><li><a href="/b/">首页栏目二</a></li>
<li><a href="/c/">首页栏目三</a></li><li><a href="/d/">首页栏目四</a></li></ul></div>
<div class="hot"><ul><li><a href="/x/t20200401_1.html">热点文章标题第一篇内容</a></li>
<li><a href="/x/t20200402_2.html">热点文章标题第二篇内容</a></li><li><a href="/x/t20200403_3.html">热点文章标题第三篇内容</a></li>
<li><a href="/x/t20200404_4.html">热点文章标题第四篇内容</a></li></ul></div>
<dl class="news"><dt><a href="/gzdt/202005/t20200512_11.html">省直机关开展主题党日活动</a></dt><dd>2020年5月12日</dd></dl>
<dl class="news"><dt><a href="/gzdt/202005/t20200511_12.html">省委直属机关工委召开推进会</a></dt><dd>2020年5月11日</dd></dl>
<dl class="news"><dt><a href="/gzdt/202005/t20200510_13.html">省直机关青年读书分享会举办</a></dt><dd>2020年5月10日</dd></dl>
<div class="page"><a href="index_1.html">下一页</a></div>
</body></html>"#;

    #[test]
    fn finds_the_dated_list_not_the_hot_box() {
        let found = analyze_list(&page("http://www.example.gov.cn/gzdt/", LIST)).unwrap();
        assert_eq!(found.item.css, "dl.news");
        assert_eq!(found.date.as_ref().map(|d| d.css.as_str()), Some("dd"));
        assert_eq!(found.articles.len(), 3);
        assert_eq!(
            found.next_url.map(|u| u.to_string()).as_deref(),
            Some("http://www.example.gov.cn/gzdt/index_1.html")
        );
    }

    #[test]
    fn a_page_of_furniture_is_not_a_list() {
        let article = r#"<html><body><div class="nav"><a href="/a/">栏目一二三四</a></div>
<h1>标题</h1><div class="content"><p>正文内容。</p></div>
<div class="related"><ul><li><a href="/x/t20200401_1.html">相关文章标题第一篇</a></li>
<li><a href="/x/t20200402_2.html">相关文章标题第二篇</a></li><li><a href="/x/t20200403_3.html">相关文章标题第三篇</a></li>
<li><a href="/x/t20200404_4.html">相关文章标题第四篇</a></li></ul></div></body></html>"#;
        let e = analyze_list(&page("http://www.example.gov.cn/gzdt/t1.html", article)).unwrap_err();
        assert!(matches!(e, SuggestError::NotAList), "{e}");
    }
}

//! Extraction: page bytes + compiled rules -> list entries and items. Pure: no I/O, no
//! clock (`now` is passed in for dates without a year), so it is tested on saved pages
//! and benchmarked in-process.
//!
//! A field whose selector matches nothing is a warning on that item, never an error:
//! one odd article must not cost the feed its other items.

pub mod auto;
pub mod bounded;
pub mod charset;
pub mod sanitize;
pub mod upstream;

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use scraper::{ElementRef, Html, Selector};
use url::Url;

use crate::date;
use crate::model::{canonical_url, Item, ListEntry, Page, PageDate};
use crate::site::{ArticleRules, Field, ListRules, Site};
use crate::url_policy::found_url;

/// What a list page gave.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListPage {
    /// Entries with a link, deduplicated by canonical URL, in page order.
    pub entries: Vec<ListEntry>,
    /// How many elements the `item` selector matched (0 = the markup probably changed).
    pub matched: usize,
    /// The next page, when `next` is set and matched a link.
    pub next: Option<Url>,
    /// Problems with whole-page scope (e.g. an item without a link).
    pub warnings: Vec<String>,
}

/// A decoded, parsed page with the base URL its relative links resolve against.
pub struct Document {
    pub html: Html,
    pub base: Url,
}

impl Document {
    /// Decodes (see [`charset`]) and parses; honours an http(s) `<base href>` (a
    /// `file:` or other base is ignored: found URLs are http(s) only).
    pub fn parse(page: &Page, site: &Site) -> Self {
        Self::parse_reporting(page, site.encoding).0
    }

    /// [`Document::parse`] with an explicit encoding override, also saying how the bytes
    /// were decoded (a lying label is a warning worth showing).
    pub fn parse_reporting(
        page: &Page,
        encoding: Option<&'static encoding_rs::Encoding>,
    ) -> (Self, charset::Decision) {
        let tld = page
            .url
            .host_str()
            .and_then(|h| h.rsplit('.').next())
            .map(str::as_bytes);
        let (text, decision) =
            charset::decode_page(&page.body, page.content_type.as_deref(), encoding, tld);
        let html = bounded::parse_document(&text);
        // A hostile `<base href="file:///">` is ignored: found URLs are http(s) only.
        let base = html
            .select(&BASE_HREF)
            .next()
            .and_then(|b| b.value().attr("href"))
            .and_then(|h| found_url(&page.url, h).ok())
            .unwrap_or_else(|| page.url.clone());
        (Document { html, base }, decision)
    }
}

static BASE_HREF: std::sync::LazyLock<Selector> =
    std::sync::LazyLock::new(|| Selector::parse("base[href]").expect("static selector"));

/// What one list page or upstream feed gave: the one reading of "page -> entries" that
/// the crawler, `preview` and the golden tests share.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Listing {
    /// Entries in page order; upstream entries without a usable link carry a stand-in URL.
    pub entries: Vec<ListEntry>,
    /// The next list page, when `next` is set and matched a link.
    pub next: Option<Url>,
    /// Elements `list.item` matched, or entries the feed had: 0 means the markup (or the
    /// feed) probably changed.
    pub matched: usize,
    /// Problems with whole-page scope, at most a handful.
    pub warnings: Vec<String>,
}

/// Reads a page of the site's source: a list page with `[list]`, or the upstream feed.
pub fn listing(
    page: &Page,
    site: &Site,
    now: DateTime<Utc>,
) -> Result<Listing, upstream::UpstreamError> {
    match &site.source {
        crate::site::Source::List { rules, .. } => {
            let list = extract_list(page, site, rules, now);
            Ok(Listing {
                matched: list.matched,
                entries: list.entries,
                next: list.next,
                warnings: list.warnings.into_iter().take(5).collect(),
            })
        }
        crate::site::Source::Feed { .. } => {
            let entries = upstream::entries(page, site, now)?;
            // Entries whose link was refused say why (they are kept, like link-less ones,
            // under a stand-in URL that is never fetched).
            let mut warnings: Vec<String> = entries
                .iter()
                .flat_map(|e| e.warnings.iter().cloned())
                .take(5)
                .collect();
            let linkless = upstream::count_without_link(&entries);
            if linkless > 0 {
                warnings.push(format!(
                    "{}: {linkless} upstream entries have no link; kept, linking to {}",
                    page.url,
                    site.home.as_ref().unwrap_or(&page.url)
                ));
            }
            Ok(Listing {
                matched: entries.len(),
                entries,
                next: None,
                warnings,
            })
        }
    }
}

/// Reads a list page with the site's `[list]` rules.
pub fn extract_list(page: &Page, site: &Site, rules: &ListRules, now: DateTime<Utc>) -> ListPage {
    let doc = Document::parse(page, site);
    let mut out = ListPage::default();
    let mut seen = HashSet::new();
    for item in doc.html.select(&rules.item) {
        out.matched += 1;
        let Some(link) = first_value(item, &rules.link, &doc.base) else {
            out.warnings.push(format!(
                "list.link: {:?} matched no link in item {} of {}",
                rules.link.css, out.matched, page.url
            ));
            continue;
        };
        let url = match found_url(&doc.base, &link) {
            Ok(url) => url,
            Err(e) => {
                out.warnings
                    .push(format!("list.link: {link:?} not followed: {e}"));
                continue;
            }
        };
        let url = canonical_url(&url);
        if !seen.insert(url.to_string()) {
            continue;
        }
        let mut entry = ListEntry {
            url: Some(url),
            ..ListEntry::default()
        };
        entry.title = match &rules.title {
            Some(f) => field_text(item, f, &doc.base, "list.title", &mut entry.warnings),
            None => rules
                .link
                .selector_first(item)
                .map(|a| normalize_text(a.text()))
                .filter(|t| !t.is_empty()),
        };
        if let Some(f) = &rules.date {
            entry.date = field_date(
                item,
                f,
                &doc.base,
                site,
                now,
                "list.date",
                &mut entry.warnings,
            );
        }
        out.entries.push(entry);
    }
    if let Some(next) = &rules.next {
        out.next = first_value(doc.html.root_element(), next, &doc.base)
            .and_then(|href| match found_url(&doc.base, &href) {
                Ok(url) => Some(url),
                Err(e) => {
                    out.warnings
                        .push(format!("list.next: {href:?} not followed: {e}"));
                    None
                }
            })
            .filter(|u| u.as_str() != page.url.as_str());
    }
    out
}

/// No rules at all: every field automatic.
static NO_RULES: std::sync::LazyLock<ArticleRules> =
    std::sync::LazyLock::new(ArticleRules::default);

/// The rules a site reads its article pages with: its `[article]`; for a list site
/// without one, none (every field automatic) unless `auto = false`; `None` when the site
/// does not read article pages (its items come from the list or upstream feed alone).
pub fn article_rules(site: &Site) -> Option<&ArticleRules> {
    match (&site.article, &site.source) {
        (Some(rules), _) => Some(rules),
        (None, crate::site::Source::List { .. }) if site.auto => Some(&NO_RULES),
        (None, _) => None,
    }
}

/// Reads an article page with the site's `[article]` rules (empty rules: all automatic);
/// `entry` holds the list page's (or upstream feed's) values.
///
/// With `site.auto` (the default), a field whose rule is absent or matched nothing is
/// filled by automatic extraction ([`auto`]), and a rule that matched nothing says so in
/// a warning: selector rot shows in the run status while the feed stays complete. After
/// that come the list's and the upstream feed's values. `item.via` names each field's
/// evidence (`selector`, `auto:…`, `list`, `upstream`, `meta:…`).
pub fn extract_article(
    page: &Page,
    site: &Site,
    rules: &ArticleRules,
    entry: &ListEntry,
    now: DateTime<Utc>,
) -> Item {
    let (doc, decision) = Document::parse_reporting(page, site.encoding);
    let root = doc.html.root_element();
    let mut warnings = entry.warnings.clone();
    warnings.extend(decision.warning());
    let upstream = entry.upstream.clone().unwrap_or_default();
    let mut via: std::collections::BTreeMap<String, String> = Default::default();
    // Automatic extraction runs once, and only when a field needs it.
    let auto_cell = std::cell::OnceCell::new();
    let automatic = || -> Option<&auto::AutoArticle> {
        site.auto.then(|| {
            auto_cell.get_or_init(|| {
                auto::extract(
                    &doc,
                    auto::Hints {
                        url: &page.url,
                        timezone: Some(site.timezone),
                        now,
                    },
                )
            })
        })
    };
    // A rule that matched nothing, filled automatically: the operator should know.
    let filled = |field: &str, rule_missed: bool, evidence: &str, warnings: &mut Vec<String>| {
        if rule_missed {
            warnings.push(format!(
                "{field}: selector matched nothing, filled automatically ({evidence})"
            ));
        }
    };

    // Title.
    let by_rule = rules
        .title
        .as_ref()
        .and_then(|f| field_text(root, f, &doc.base, "article.title", &mut warnings));
    let missed = rules.title.is_some() && by_rule.is_none();
    let title = match by_rule {
        Some(t) => {
            via.insert("title".into(), "selector".into());
            Some(t)
        }
        None => {
            match automatic().and_then(|a| Some((a.title.clone()?, a.via.get("title")?.clone()))) {
                Some((t, evidence)) => {
                    filled("title", missed, &evidence, &mut warnings);
                    via.insert("title".into(), format!("auto:{evidence}"));
                    Some(t)
                }
                None => meta(&doc.html, "ArticleTitle")
                    .inspect(|_| {
                        via.insert("title".into(), "meta:ArticleTitle".into());
                    })
                    .or_else(|| {
                        via.insert("title".into(), "list".into());
                        entry.title.clone()
                    })
                    .or_else(|| {
                        via.insert("title".into(), "meta:og:title".into());
                        meta(&doc.html, "og:title")
                    }),
            }
        }
    };
    if title.is_none() {
        via.remove("title");
    }

    // Date.
    let by_rule = rules
        .date
        .as_ref()
        .and_then(|f| field_date(root, f, &doc.base, site, now, "article.date", &mut warnings));
    let missed = rules.date.is_some() && by_rule.is_none();
    let page_date = match by_rule {
        Some(d) => {
            via.insert("date".into(), "selector".into());
            Some(d)
        }
        None => {
            match automatic().and_then(|a| Some((a.published?, a.via.get("published")?.clone()))) {
                Some((d, evidence)) => {
                    filled("date", missed, &evidence, &mut warnings);
                    via.insert("date".into(), format!("auto:{evidence}"));
                    Some(d)
                }
                None => meta(&doc.html, "PubDate")
                    .and_then(|text| date::parse(&text, None, site.timezone, now).ok())
                    .inspect(|_| {
                        via.insert("date".into(), "meta:PubDate".into());
                    }),
            }
        }
    };
    if page_date.is_none() && entry.date.is_some() {
        via.insert("date".into(), "list".into());
    }
    let date = merge_dates(page_date, entry.date);

    // Source.
    let by_rule = rules
        .source
        .as_ref()
        .and_then(|f| field_text(root, f, &doc.base, "article.source", &mut warnings));
    let missed = rules.source.is_some() && by_rule.is_none();
    let source = match by_rule {
        Some(s) => {
            via.insert("source".into(), "selector".into());
            Some(s)
        }
        None => match automatic()
            .and_then(|a| Some((a.source.clone()?, a.via.get("source")?.clone())))
        {
            Some((s, evidence)) => {
                filled("source", missed, &evidence, &mut warnings);
                via.insert("source".into(), format!("auto:{evidence}"));
                Some(s)
            }
            None => meta(&doc.html, "ContentSource")
                .inspect(|_| {
                    via.insert("source".into(), "meta:ContentSource".into());
                })
                .or_else(|| {
                    via.insert("source".into(), "upstream".into());
                    upstream.author.clone()
                }),
        },
    };
    if source.is_none() {
        via.remove("source");
    }

    // Body, and the images in it.
    let mut images = Vec::new();
    let by_rule = match &rules.body {
        Some(body) => {
            let mut skip = HashSet::new();
            let matches: Vec<ElementRef<'_>> = body.matches(root).collect();
            for m in &matches {
                for sel in &rules.remove {
                    skip.extend(m.select(sel).map(|e| e.id()));
                }
            }
            let mut html = String::new();
            for m in matches.iter().take(if body.all { usize::MAX } else { 1 }) {
                let s = sanitize::sanitize(*m, &doc.base, &skip);
                html.push_str(&s.html);
                images.extend(s.images);
            }
            if matches.is_empty() {
                warnings.push(format!("article.body: {:?} matched nothing", body.css));
            } else if html.is_empty() {
                warnings.push(format!(
                    "article.body: {:?} matched only empty content",
                    body.css
                ));
            }
            Some(html).filter(|h| !h.is_empty())
        }
        None => None,
    };
    let missed = rules.body.is_some() && by_rule.is_none();
    let mut body_is_auto = false;
    let content = match by_rule {
        Some(c) => {
            via.insert("body".into(), "selector".into());
            Some(c)
        }
        None => match automatic()
            .and_then(|a| Some((a.content.clone()?, a.via.get("content")?.clone())))
        {
            Some((c, evidence)) => {
                filled("body", missed, &evidence, &mut warnings);
                via.insert("body".into(), format!("auto:{evidence}"));
                body_is_auto = true;
                Some(c)
            }
            None => upstream
                .content
                .clone()
                .or(upstream.summary.clone())
                .inspect(|_| {
                    via.insert("body".into(), "upstream".into());
                }),
        },
    };

    if let Some(f) = &rules.images {
        let found: Vec<String> = f
            .matches(root)
            .filter_map(|img| {
                if f.attr.as_deref() == Some("src") {
                    sanitize::image_src(img, &doc.base)
                } else {
                    // Any other attribute or text: kept only as an http(s) URL.
                    attr_or_text(img, f, &doc.base)
                        .and_then(|v| found_url(&doc.base, &v).ok())
                        .map(String::from)
                }
            })
            .collect();
        if found.is_empty() {
            warnings.push(format!("article.images: {:?} matched nothing", f.css));
        } else {
            via.insert("images".into(), "selector".into());
        }
        images = found;
    } else if body_is_auto {
        // The automatic body's own pictures (icons, QR codes and pixels left out).
        if let Some(a) = automatic() {
            images.clone_from(&a.images);
            if !images.is_empty() {
                via.insert("images".into(), "auto:density".into());
            }
        }
    } else if !images.is_empty() {
        via.insert("images".into(), "selector".into());
    }
    images.extend(upstream.images);
    let mut seen = HashSet::new();
    images.retain(|i| seen.insert(i.clone()));

    let url = entry
        .url
        .as_ref()
        .map(|u| u.to_string())
        .unwrap_or_else(|| canonical_url(&page.url).to_string());
    if date.is_none() {
        warnings.push(
            "no date on the article or the list: it sorts below the dated items of its run".into(),
        );
    }
    Item {
        url,
        title,
        published: date.map(|d| in_zone(d, site)),
        date_only: date.is_some_and(|d| d.date_only),
        source,
        content,
        images,
        categories: upstream.categories,
        aliases: upstream.guid.into_iter().collect(),
        warnings,
        via,
    }
}

/// Every date leaves extraction in the site's zone, so feeds show Beijing time as +08:00
/// whatever offset the page or upstream feed used.
fn in_zone(d: PageDate, site: &Site) -> chrono::DateTime<chrono::FixedOffset> {
    d.at.with_timezone(&site.timezone).fixed_offset()
}

/// An item from the list page alone (a site without `[article]`).
pub fn item_from_entry(entry: &ListEntry, site: &Site) -> Item {
    let upstream = entry.upstream.clone().unwrap_or_default();
    Item {
        url: entry
            .url
            .as_ref()
            .map(|u| u.to_string())
            .unwrap_or_default(),
        title: entry.title.clone(),
        published: entry.date.map(|d| in_zone(d, site)),
        date_only: entry.date.is_some_and(|d| d.date_only),
        source: upstream.author,
        content: upstream.content.or(upstream.summary),
        images: upstream.images,
        categories: upstream.categories,
        aliases: upstream.guid.into_iter().collect(),
        warnings: entry.warnings.clone(),
        via: Default::default(),
    }
}

/// The page's date wins; but a page that gives only the day takes the time of day from
/// the list/upstream date when both name the same day (feeds are often more precise).
pub fn merge_dates(page: Option<PageDate>, fallback: Option<PageDate>) -> Option<PageDate> {
    match (page, fallback) {
        (Some(p), Some(f)) if p.date_only && !f.date_only => {
            let f_local = f.at.with_timezone(p.at.offset());
            if f_local.date_naive() == p.at.date_naive() {
                Some(PageDate {
                    at: f_local,
                    date_only: false,
                })
            } else {
                Some(p)
            }
        }
        (Some(p), _) => Some(p),
        (None, f) => f,
    }
}

impl Field {
    /// Matches in document order, the scope itself first when it matches (so `item = "li a"`
    /// with `link = "a"` works), filtered by `text`.
    pub fn matches<'a>(
        &'a self,
        scope: ElementRef<'a>,
    ) -> impl Iterator<Item = ElementRef<'a>> + 'a {
        let own = self.selector.matches(&scope).then_some(scope);
        own.into_iter()
            .chain(scope.select(&self.selector))
            .filter(move |el| match &self.text {
                Some(t) => el.text().any(|s| s.contains(t.as_str())),
                None => true,
            })
    }

    fn selector_first<'a>(&'a self, scope: ElementRef<'a>) -> Option<ElementRef<'a>> {
        self.matches(scope).next()
    }
}

/// The field's value for one element: the attribute (resolved when it is a URL), or the
/// normalized text; then the regex's first group.
fn attr_or_text(el: ElementRef<'_>, f: &Field, base: &Url) -> Option<String> {
    let raw = match f.attr.as_deref() {
        Some(a @ ("href" | "src")) => {
            let v = el.value().attr(a)?.trim();
            if v.is_empty() || v.starts_with("javascript:") || v.starts_with('#') {
                return None;
            }
            base.join(v).ok()?.to_string()
        }
        // Attribute text (a `title`, a `datetime`) is page text like any other: invisible
        // and control characters go, spaces collapse.
        Some(a) => normalize_text(std::iter::once(el.value().attr(a)?)),
        None => normalize_text(el.text()),
    };
    let value = match &f.regex {
        Some(re) => re.captures(&raw)?.get(1)?.as_str().trim().to_owned(),
        None => raw,
    };
    (!value.is_empty()).then_some(value)
}

fn first_value(scope: ElementRef<'_>, f: &Field, base: &Url) -> Option<String> {
    f.matches(scope).find_map(|el| attr_or_text(el, f, base))
}

fn field_text(
    scope: ElementRef<'_>,
    f: &Field,
    base: &Url,
    name: &str,
    warnings: &mut Vec<String>,
) -> Option<String> {
    let value = if f.all {
        let all: Vec<String> = f
            .matches(scope)
            .filter_map(|el| attr_or_text(el, f, base))
            .collect();
        (!all.is_empty()).then(|| all.join(" "))
    } else {
        first_value(scope, f, base)
    };
    if value.is_none() {
        let why = if f.regex.is_some() {
            "matched nothing (or its regex did not match)"
        } else {
            "matched nothing"
        };
        warnings.push(format!("{name}: {:?} {why}", f.css));
    }
    value
}

fn field_date(
    scope: ElementRef<'_>,
    f: &Field,
    base: &Url,
    site: &Site,
    now: DateTime<Utc>,
    name: &str,
    warnings: &mut Vec<String>,
) -> Option<PageDate> {
    let text = field_text(scope, f, base, name, warnings)?;
    match date::parse(&text, f.format.as_deref(), site.timezone, now) {
        Ok(d) => Some(d),
        Err(e) => {
            warnings.push(format!("{name}: {e}"));
            None
        }
    }
}

/// `<meta name=… content=…>` (or `property=`), as TRS-style CMSes fill them.
fn meta(html: &Html, name: &str) -> Option<String> {
    static META: std::sync::LazyLock<Selector> =
        std::sync::LazyLock::new(|| Selector::parse("meta[content]").expect("static selector"));
    html.select(&META)
        .find(|m| {
            let v = m.value();
            v.attr("name")
                .or_else(|| v.attr("property"))
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
        })
        .and_then(|m| m.value().attr("content"))
        .map(|c| normalize_text(std::iter::once(c)))
        .filter(|c| !c.is_empty())
}

/// Joins text nodes with whitespace runs (`&nbsp;`, U+3000 too) collapsed to one space,
/// without the invisible and XML-illegal characters [`crate::model::is_stripped_char`]
/// names (dropped before collapsing, so `a \u{200e} b` gives one space, not two).
pub fn normalize_text<'a>(parts: impl Iterator<Item = &'a str>) -> String {
    let mut out = String::new();
    for part in parts {
        for c in part.chars() {
            if c.is_whitespace() || c == '\u{a0}' || c == '\u{3000}' {
                if !out.is_empty() && !out.ends_with(' ') {
                    out.push(' ');
                }
            } else if !crate::model::is_stripped_char(c) {
                out.push(c);
            }
        }
    }
    let trimmed = out.trim_end().len();
    out.truncate(trimmed);
    out
}

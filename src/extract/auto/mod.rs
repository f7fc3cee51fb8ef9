//! Automatic extraction: title, date, source, author, body and images from an article
//! page with no selector file, so a site can be added by its list page alone and a
//! selector only written for what the guess gets wrong.
//!
//! Pure like the rest of `extract`: a parsed document, its URL, a time zone hint and `now`
//! in; fields out, each with the evidence it came from in `via` (`json-ld`,
//! `meta:pubdate`, `text:来源`, `url`, `h1`, `density`...). Evidence is trusted in this
//! order: JSON-LD, CMS `<meta>` tags, `<time>`, the visible info line near the title,
//! bylines, the URL. The body comes from text/link density and punctuation scoring
//! ([`body`]) and goes through the same sanitizer as selector-extracted bodies.

mod body;
mod evidence;
mod report;

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use ego_tree::NodeId;
use scraper::{ElementRef, Selector};
use url::Url;

use crate::date;
use crate::extract::{merge_dates, normalize_text, sanitize, Document};
use crate::model::PageDate;

pub use body::image_url;
pub use report::{run, ExtractOptions, Report};

/// What automatic extraction found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AutoArticle {
    pub title: Option<String>,
    pub published: Option<PageDate>,
    pub source: Option<String>,
    pub author: Option<String>,
    /// Sanitized HTML with absolute URLs.
    pub content: Option<String>,
    /// The body as plain text, one paragraph a line.
    pub text: String,
    /// Absolute image URLs of the body (or the page's og:image when the body has none).
    pub images: Vec<String>,
    /// Per field, the evidence it came from.
    pub via: BTreeMap<&'static str, String>,
    /// The zone naive dates were read in, and why.
    pub zone: Option<(Tz, String)>,
    pub warnings: Vec<String>,
}

/// What the caller knows besides the page.
#[derive(Debug, Clone, Copy)]
pub struct Hints<'a> {
    /// The page's address (URL date, zone guess); links resolve against the document's base.
    pub url: &'a Url,
    /// The zone for dates without an offset; `None` = guess from the page.
    pub timezone: Option<Tz>,
    pub now: DateTime<Utc>,
}

/// Extracts every field from a parsed page.
pub fn extract(doc: &Document, hints: Hints<'_>) -> AutoArticle {
    let html = &doc.html;
    let metas = evidence::Metas::read(html);
    let ld = evidence::JsonLd::read(html);
    let analysis = body::analyze(html);
    let mut out = AutoArticle::default();

    let lang = evidence::language(html, &metas);
    out.zone = match hints.timezone {
        Some(tz) => Some((tz, "given".to_owned())),
        None => implied_zone(lang.as_deref(), hints.url, &analysis),
    };

    let (title, title_via, title_node) = find_title(doc, &metas, &ld, &analysis);
    out.title = title;
    if let Some(v) = title_via {
        out.via.insert("title", v);
    }
    let window = info_window(&analysis, title_node);
    let (script_time, script_account) = evidence::script_vars(html);
    let after_title = {
        let at = title_node
            .and_then(|t| analysis.stats.get(&t))
            .map_or(0, |s| s.end);
        &analysis.flat[at..]
    };

    let texts = Texts {
        window,
        after_title,
    };
    let found = find_date(&metas, &ld, html, texts, lang.as_deref(), hints, &mut out);
    let (published, via) = match found {
        (None, _) => script_time
            .and_then(|t| date::parse(&t, None, chrono_tz::UTC, hints.now).ok())
            .map(|d| {
                let zone = out.zone.as_ref().map_or(chrono_tz::UTC, |z| z.0);
                let at = d.at.with_timezone(&zone).fixed_offset();
                (Some(PageDate { at, ..d }), Some("script:ct".to_owned()))
            })
            .unwrap_or((None, None)),
        found => found,
    };
    out.published = published;
    if let Some(v) = via {
        out.via.insert("published", v);
    }

    // Code-heavy Chinese posts are well under half Han characters; a fifth is plenty.
    let chinese = match lang.as_deref() {
        Some(l) if l.starts_with("zh") => true,
        Some(l) if l.starts_with("ja") || l.starts_with("ko") => false,
        // `lang="en"` is a template default on many Chinese platforms (WeChat).
        _ => analysis.han as usize * 5 > analysis.flat.chars().count(),
    };
    let site = site_name(&metas, &ld, &title_segments(&raw_title(html)));
    let mut sources: Vec<(Option<String>, &str)> = vec![
        (
            metas
                .first(evidence::SOURCE_METAS)
                .map(|(_, v)| v.to_owned()),
            "meta",
        ),
        (evidence::source_in(window), "text:来源"),
    ];
    if lang.as_deref().is_some_and(|l| l.starts_with("ko")) {
        let start = &analysis.flat[..ceil(&analysis.flat, window.len() + 3000)];
        sources.push((evidence::korean_outlet_in(start), "text:[outlet=]"));
    }
    if chinese {
        let title_end = title_node
            .and_then(|t| analysis.stats.get(&t))
            .map(|s| (s.start, s.end));
        sources.push((source_element(doc, &analysis, title_end), "source-element"));
        sources.push((evidence::source_by_date(window), "text:date-line"));
        sources.push((script_account, "script:nickname"));
        sources.push((evidence::source_in(after_title), "text:来源"));
    }
    sources.push((site.clone().map(|s| s.0), "site-name"));
    if let Some((s, via)) = sources.into_iter().find_map(|(s, via)| Some((s?, via))) {
        let via = match via {
            "meta" => metas
                .first(evidence::SOURCE_METAS)
                .map_or("meta".to_owned(), |(n, _)| format!("meta:{n}")),
            "site-name" => site.map_or("site-name".to_owned(), |s| s.1),
            v => v.to_owned(),
        };
        out.source = Some(s);
        out.via.insert("source", via);
    }

    let author = ld
        .author
        .clone()
        .map(|a| (a, "json-ld".to_owned()))
        .or_else(|| {
            metas
                .first(evidence::AUTHOR_METAS)
                .filter(|(_, v)| !v.starts_with("http"))
                .and_then(|(n, v)| Some((evidence::clean_byline(v)?, format!("meta:{n}"))))
        })
        .or_else(|| evidence::byline(html).map(|a| (a, "byline".to_owned())))
        .or_else(|| evidence::author_in(window).map(|a| (a, "text:作者".to_owned())));
    if let Some((a, via)) = author {
        out.author = Some(a);
        out.via.insert("author", via);
    }

    match body::choose(html, &analysis) {
        Some(mut b) => {
            body::prune(html, &analysis, &mut b, title_node, &doc.base);
            let mut content = String::new();
            for root in b.roots.iter().filter_map(|r| element(doc, *r)) {
                content.push_str(&sanitize::sanitize(root, &doc.base, &b.skip).html);
            }
            out.text = body::text(html, &b);
            out.images = body::images(html, &b, &doc.base);
            out.content = Some(content).filter(|c| !c.is_empty());
            out.via.insert("content", "density".to_owned());
        }
        None => out.warnings.push("no article body found".to_owned()),
    }
    if let Some(ld_body) = &ld.body {
        // Pages that render their body with script still ship it in JSON-LD.
        if ld_body.chars().count() > 2 * out.text.chars().count().max(100) {
            out.text = ld_body.clone();
            out.content = Some(paragraphs_html(ld_body));
            out.via.insert("content", "json-ld".to_owned());
        }
    }
    if out.content.is_some() {
        out.via.insert("text", out.via["content"].clone());
    }

    if !out.images.is_empty() {
        out.via.insert("images", "density".to_owned());
    } else {
        let og = metas
            .first(&["og:image", "og:image:url", "twitter:image"])
            .map(|(n, v)| (v.to_owned(), format!("meta:{n}")))
            .or_else(|| ld.images.first().map(|i| (i.clone(), "json-ld".to_owned())));
        if let Some((src, via)) = og {
            if let Some(abs) =
                sanitize::absolute(&doc.base, &src, true).filter(|s| !s.starts_with("data:"))
            {
                out.images.push(abs);
                out.via.insert("images", via);
            }
        }
    }
    if out.title.is_none() {
        out.warnings.push("no title found".to_owned());
    }
    out
}

fn element(doc: &Document, id: NodeId) -> Option<ElementRef<'_>> {
    doc.html.tree.get(id).and_then(ElementRef::wrap)
}

fn paragraphs_html(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        out.push_str("<p>");
        for c in line.chars() {
            match c {
                '&' => out.push_str("&amp;"),
                '<' => out.push_str("&lt;"),
                '>' => out.push_str("&gt;"),
                c => out.push(c),
            }
        }
        out.push_str("</p>");
    }
    crate::model::xml_safe(&out).into_owned()
}

fn raw_title(html: &scraper::Html) -> String {
    html.select(&TITLE_TAG)
        .next()
        .map(|t| normalize_text(t.text()))
        .unwrap_or_default()
}

/// The site's name: og:site_name, the JSON-LD publisher and the `<title>` suffix vote
/// (spelling aside: `TheHill`, `The Hill`); the most agreed name wins, in its most
/// readable spelling.
fn site_name(
    metas: &evidence::Metas,
    ld: &evidence::JsonLd,
    segments: &[String],
) -> Option<(String, String)> {
    let mut candidates: Vec<(String, String)> = Vec::new();
    if let Some((n, v)) = metas.first(&["og:site_name", "application-name"]) {
        candidates.push((v.to_owned(), format!("meta:{n}")));
    }
    if let Some(p) = &ld.publisher {
        candidates.push((p.clone(), "json-ld".to_owned()));
    }
    if segments.len() > 1 {
        let last = &segments[segments.len() - 1];
        let longest = segments
            .iter()
            .map(|s| s.chars().count())
            .max()
            .unwrap_or(0);
        if last.chars().count() < longest {
            candidates.push((last.clone(), "title-suffix".to_owned()));
        }
    }
    let key = |s: &str| -> String {
        s.chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_lowercase)
            .collect()
    };
    let votes = |c: &(String, String)| {
        let k = key(&c.0);
        let agree = candidates
            .iter()
            .filter(|o| !k.is_empty() && (key(&o.0).contains(&k) || k.contains(&key(&o.0))))
            .count();
        // Among spellings of one name, the one with words and a capital reads best.
        let words = c.0.split_whitespace().count();
        let capital = c.0.chars().next().is_some_and(char::is_uppercase);
        (agree, words, capital)
    };
    // The first of equals wins (og:site_name, then JSON-LD, then the title suffix).
    let mut best: Option<&(String, String)> = None;
    for c in &candidates {
        if best.is_none_or(|b| votes(c) > votes(b)) {
            best = Some(c);
        }
    }
    best.cloned()
}

static SOURCE_CLASS: std::sync::LazyLock<Selector> = std::sync::LazyLock::new(|| {
    Selector::parse(
        "[class*=source i], [id*=source i], [class*=media i], [class*=author i], [class*=account i]",
    )
    .expect("static selector")
});

/// A short element classed like a source or an account name just around the title.
fn source_element(
    doc: &Document,
    a: &body::Analysis,
    title: Option<(usize, usize)>,
) -> Option<String> {
    let (start, end) = title?;
    doc.html.select(&SOURCE_CLASS).find_map(|el| {
        let st = a.stats.get(&el.id())?;
        if st.start + 200 < start || st.start > end + 400 || st.full.chars > 40 {
            return None;
        }
        let first = el.text().map(str::trim).find(|t| !t.is_empty())?;
        let first = first
            .trim_start_matches(|c: char| {
                "来源稿源出处文章信息：:".contains(c) || c.is_whitespace()
            })
            .trim();
        let n = first.chars().count();
        ((2..=30).contains(&n) && !first.chars().any(|c| c.is_ascii_digit()))
            .then(|| first.to_owned())
    })
}

/// Separators between an article title and the site or section name in `<title>`.
const TITLE_SEPARATORS: &[&str] = &[
    " | ", " - ", " – ", " — ", "_", "｜", "丨", " :: ", " · ", "--",
];

/// `<title>` split at site-name separators.
fn title_segments(raw: &str) -> Vec<String> {
    let mut parts = vec![raw.to_owned()];
    for sep in TITLE_SEPARATORS {
        parts = parts
            .iter()
            .flat_map(|p| p.split(sep).map(str::to_owned).collect::<Vec<_>>())
            .collect();
    }
    parts
        .into_iter()
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect()
}

/// `Headline - Site` -> `Headline` when `Site` is also the `<title>`'s last segment.
fn strip_site_suffix(title: &str, segments: &[String]) -> String {
    if segments.len() < 2 {
        return title.to_owned();
    }
    let site = &segments[segments.len() - 1];
    for sep in TITLE_SEPARATORS {
        if let Some(head) = title
            .strip_suffix(site.as_str())
            .and_then(|h| h.strip_suffix(sep))
        {
            if !head.trim().is_empty() {
                return head.trim().to_owned();
            }
        }
    }
    title.to_owned()
}

fn bigrams(s: &str) -> Vec<(char, char)> {
    let chars: Vec<char> = s
        .chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect();
    chars.windows(2).map(|w| (w[0], w[1])).collect()
}

/// How many of `candidate`'s bigrams `reference` has, and that as a share.
fn overlap(candidate: &str, reference: &[(char, char)]) -> (usize, f64) {
    let c = bigrams(candidate);
    if c.is_empty() {
        return (0, 0.0);
    }
    let hits = c.iter().filter(|b| reference.contains(b)).count();
    (hits, hits as f64 / c.len() as f64)
}

static TITLE_CANDIDATES: std::sync::LazyLock<Selector> = std::sync::LazyLock::new(|| {
    Selector::parse(
        "h1, h2, h3, h4, [class*=title i], [id*=title i], [class*=headline i], [itemprop=headline], [class*=titulo i], [class*=titre i], [class*=titel i]",
    )
    .expect("static selector")
});
static TITLE_TAG: std::sync::LazyLock<Selector> =
    std::sync::LazyLock::new(|| Selector::parse("title").expect("static selector"));

/// The heading that best matches what the page's metadata calls its title.
fn find_title(
    doc: &Document,
    metas: &evidence::Metas,
    ld: &evidence::JsonLd,
    analysis: &body::Analysis,
) -> (Option<String>, Option<String>, Option<NodeId>) {
    let html = &doc.html;
    let raw_title = raw_title(html);
    let segments = title_segments(&raw_title);
    let declared: Vec<(String, String)> = metas
        .first(evidence::TITLE_METAS)
        .map(|(n, v)| (v.to_owned(), format!("meta:{n}")))
        .into_iter()
        .chain(ld.headline.clone().map(|h| (h, "json-ld".to_owned())))
        .collect();
    let mut reference = bigrams(&raw_title);
    for (d, _) in &declared {
        reference.extend(bigrams(d));
    }
    let main_segment = segments
        .iter()
        .max_by_key(|s| s.chars().count())
        .cloned()
        .unwrap_or_default();

    let main_bigrams = declared
        .first()
        .map_or_else(|| bigrams(&main_segment).len(), |(d, _)| bigrams(d).len());
    let mut best: Option<(isize, ElementRef<'_>, String)> = None;
    if !reference.is_empty() {
        for el in html.select(&TITLE_CANDIDATES) {
            let Some(st) = analysis.stats.get(&el.id()) else {
                continue;
            };
            if st.full.chars < 4 || st.full.chars > 300 {
                continue;
            }
            let text = normalize_text(el.text());
            // The site's name (a logo heading) also appears in <title>: not the headline.
            if segments.len() > 1 && segments.contains(&text) && text != main_segment {
                continue;
            }
            let (hits, share) = overlap(&text, &reference);
            // A word of the title ("Фото", a section name) is not the headline.
            if share < 0.6 || hits < 2 || hits * 4 < main_bigrams {
                continue;
            }
            // Words the metadata does not have (a byline, "Share") cost more than
            // matched ones earn: the bare headline beats its wrapper.
            let extra = bigrams(&text).len() - hits;
            let score = hits as isize - 2 * extra as isize + isize::from(el.value().name() == "h1");
            if best.as_ref().is_none_or(|(h, _, _)| score > *h) {
                best = Some((score, el, text));
            }
        }
    }
    if let Some((_, el, text)) = best {
        let via = match el.value().name() {
            n @ ("h1" | "h2" | "h3") => n.to_owned(),
            _ => "title-class".to_owned(),
        };
        return (Some(text), Some(via), Some(el.id()));
    }
    if let Some((d, via)) = declared.into_iter().next() {
        return (Some(strip_site_suffix(&d, &segments)), Some(via), None);
    }
    if !main_segment.is_empty() {
        return (Some(main_segment), Some("title".to_owned()), None);
    }
    (None, None, None)
}

/// The text around the title where CMSes print `时间：… 来源：…`: a little before it (some
/// print the date above) and more after it. Without a title, the start of the page.
fn info_window(a: &body::Analysis, title: Option<NodeId>) -> &str {
    let flat = &a.flat;
    let (start, end) = match title.and_then(|t| a.stats.get(&t)) {
        Some(st) => (
            floor(flat, st.start.saturating_sub(150)),
            ceil(flat, st.end + 600),
        ),
        None => (0, ceil(flat, 1500)),
    };
    &flat[start..end]
}

fn floor(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil(s: &str, mut i: usize) -> usize {
    if i >= s.len() {
        return s.len();
    }
    while !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

/// The visible text searched for labelled values.
#[derive(Clone, Copy)]
struct Texts<'a> {
    /// Around the title.
    window: &'a str,
    /// Everything after the title.
    after_title: &'a str,
}

/// Reads the date candidates in trust order; a day-only winner takes its time of day
/// from a later candidate naming the same day.
fn find_date(
    metas: &evidence::Metas,
    ld: &evidence::JsonLd,
    html: &scraper::Html,
    texts: Texts<'_>,
    lang: Option<&str>,
    hints: Hints<'_>,
    out: &mut AutoArticle,
) -> (Option<PageDate>, Option<String>) {
    let window = texts.window;
    let mut candidates: Vec<(String, String)> = Vec::new();
    if let Some(d) = &ld.date {
        candidates.push((d.clone(), "json-ld".to_owned()));
    }
    if let Some((n, v)) = metas.first(evidence::DATE_METAS) {
        candidates.push((v.to_owned(), format!("meta:{n}")));
    }
    if let Some(t) = evidence::time_element(html) {
        candidates.push((t, "time-element".to_owned()));
    }
    match evidence::date_in(window) {
        Some((t, true)) => candidates.push((t.to_owned(), "text:时间".to_owned())),
        found => {
            if let Some(t) = evidence::labelled_date_in(texts.after_title) {
                candidates.push((t.to_owned(), "text:时间".to_owned()));
            }
            if let Some((t, _)) = found {
                candidates.push((t.to_owned(), "text".to_owned()));
            }
        }
    }
    // 05/10/2018 is May in the US, October elsewhere: a page without a language on a
    // country domain is read day first.
    let month_first = match lang {
        Some(l) => l == "en" || l == "en-us",
        None => out.zone.as_ref().is_none_or(|z| !z.1.starts_with("domain")),
    };
    if let Some(d) = evidence::numeric_date_in(window, month_first) {
        candidates.push((d, "text:d/m/y".to_owned()));
    }
    let url_date = evidence::url_date(hints.url);
    let updated = metas.first(evidence::UPDATE_METAS);
    let year = url_date
        .as_deref()
        .or(updated.map(|u| u.1))
        .and_then(|d| d.get(..4)?.parse::<i32>().ok());
    if let Some(d) = year.and_then(|y| evidence::month_day_in(window, y)) {
        candidates.push((d, "text:时间+year".to_owned()));
    }
    if let Some(d) = url_date {
        candidates.push((d, "url".to_owned()));
    }
    if let Some((n, v)) = updated {
        candidates.push((v.to_owned(), format!("meta:{n}")));
    }
    let zone = out.zone.as_ref().map_or(chrono_tz::UTC, |z| z.0);
    let latest = hints.now + Duration::days(1);
    let shown =
        evidence::date_in(window).and_then(|(t, _)| date::parse(t, None, zone, hints.now).ok());
    let mut best: Option<(PageDate, String)> = None;
    for (text, via) in candidates {
        let Ok(d) = date::parse(&text, None, zone, hints.now) else {
            continue;
        };
        if d.at > latest || d.at.timestamp() < 631_152_000 {
            continue; // before 1990 or in the future: a typo or a copyright year
        }
        match &best {
            None => {
                if out.zone.is_none() && !has_offset(&text, hints.now) {
                    out.warnings.push(format!(
                        "no time zone known for the page's date {text:?}: read as UTC"
                    ));
                }
                best = Some((d, via));
                if !d.date_only {
                    break;
                }
            }
            Some((b, bvia)) => {
                let merged = merge_dates(Some(*b), Some(d));
                if let Some(m) = merged.filter(|m| !m.date_only) {
                    let via = format!("{bvia}+{via}");
                    return (Some(m), Some(via));
                }
            }
        }
    }
    let Some((d, via)) = best else {
        return (None, None);
    };
    // Portals stamp a machine time into their metadata a few minutes (or hours) off the
    // time they print under the title; readers see the printed one.
    if !d.date_only && (via.starts_with("meta") || via == "json-ld") {
        if let Some(t) = shown.filter(|t| {
            !t.date_only
                && t.at.with_timezone(d.at.offset()).date_naive() == d.at.date_naive()
                && t.at != d.at
        }) {
            return (Some(t), Some("text".to_owned()));
        }
    }
    (Some(d), Some(via))
}

/// The text carries its own offset when two zones read it as the same instant.
fn has_offset(text: &str, now: DateTime<Utc>) -> bool {
    let a = date::parse(text, None, chrono_tz::UTC, now);
    let b = date::parse(text, None, chrono_tz::Asia::Tokyo, now);
    matches!((a, b), (Ok(a), Ok(b)) if a.at == b.at)
}

/// The zone the page implies by its language, then its country domain, then its script.
fn implied_zone(lang: Option<&str>, url: &Url, a: &body::Analysis) -> Option<(Tz, String)> {
    use chrono_tz::{America, Asia, Europe};
    const BY_LANG: &[(&str, Tz)] = &[
        ("zh-tw", Asia::Taipei),
        ("zh-hant-tw", Asia::Taipei),
        ("zh-hk", Asia::Hong_Kong),
        ("zh-hant-hk", Asia::Hong_Kong),
        ("zh-mo", Asia::Macau),
        ("zh-sg", Asia::Singapore),
        ("zh", Asia::Shanghai),
        ("ja", Asia::Tokyo),
        ("ko", Asia::Seoul),
        ("en-gb", Europe::London),
        ("en-ie", Europe::Dublin),
        ("en-in", Asia::Kolkata),
        ("en-sg", Asia::Singapore),
        ("pt-br", America::Sao_Paulo),
        ("pt", Europe::Lisbon),
        ("es-mx", America::Mexico_City),
        ("es-ar", America::Argentina::Buenos_Aires),
        ("es-co", America::Bogota),
        ("es-cl", America::Santiago),
        ("es", Europe::Madrid),
        ("de", Europe::Berlin),
        ("fr", Europe::Paris),
        ("it", Europe::Rome),
        ("nl", Europe::Amsterdam),
        ("pl", Europe::Warsaw),
        ("cs", Europe::Prague),
        ("sv", Europe::Stockholm),
        ("da", Europe::Copenhagen),
        ("nb", Europe::Oslo),
        ("no", Europe::Oslo),
        ("fi", Europe::Helsinki),
        ("el", Europe::Athens),
        ("hu", Europe::Budapest),
        ("ro", Europe::Bucharest),
        ("tr", Europe::Istanbul),
        ("ru", Europe::Moscow),
        ("uk", Europe::Kyiv),
        ("he", Asia::Jerusalem),
        ("vi", Asia::Ho_Chi_Minh),
        ("th", Asia::Bangkok),
        ("id", Asia::Jakarta),
        ("hi", Asia::Kolkata),
    ];
    const BY_TLD: &[(&str, Tz)] = &[
        ("cn", Asia::Shanghai),
        ("tw", Asia::Taipei),
        ("hk", Asia::Hong_Kong),
        ("jp", Asia::Tokyo),
        ("kr", Asia::Seoul),
        ("uk", Europe::London),
        ("ie", Europe::Dublin),
        ("de", Europe::Berlin),
        ("at", Europe::Vienna),
        ("ch", Europe::Zurich),
        ("fr", Europe::Paris),
        ("be", Europe::Brussels),
        ("it", Europe::Rome),
        ("es", Europe::Madrid),
        ("pt", Europe::Lisbon),
        ("nl", Europe::Amsterdam),
        ("pl", Europe::Warsaw),
        ("cz", Europe::Prague),
        ("se", Europe::Stockholm),
        ("dk", Europe::Copenhagen),
        ("no", Europe::Oslo),
        ("fi", Europe::Helsinki),
        ("gr", Europe::Athens),
        ("ru", Europe::Moscow),
        ("tr", Europe::Istanbul),
        ("in", Asia::Kolkata),
        ("sg", Asia::Singapore),
        ("br", America::Sao_Paulo),
        ("mx", America::Mexico_City),
        ("ar", America::Argentina::Buenos_Aires),
    ];
    if let Some(lang) = lang {
        for (prefix, tz) in BY_LANG {
            if lang == *prefix || lang.starts_with(&format!("{prefix}-")) {
                return Some((*tz, format!("language {lang}")));
            }
        }
    }
    let tld = url
        .host_str()
        .and_then(|h| h.rsplit('.').next())
        .unwrap_or("");
    if let Some((_, tz)) = BY_TLD.iter().find(|(t, _)| *t == tld) {
        return Some((*tz, format!("domain .{tld}")));
    }
    let visible = a.flat.chars().filter(|c| !c.is_whitespace()).count().max(1);
    if a.han as usize * 5 > visible {
        return Some((Asia::Shanghai, "Chinese text".to_owned()));
    }
    None
}

#[cfg(test)]
mod tests;

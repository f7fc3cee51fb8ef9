//! The page's own statements about itself: JSON-LD, `<meta>` tags, `<time>`, the
//! labelled `来源：… 时间：…` line near the title, bylines and the URL's date. Each is read
//! once into [`Evidence`]; `mod.rs` decides which one wins.

use std::sync::LazyLock;

use regex::Regex;
use scraper::{Html, Selector};
use serde_json::Value;
use url::Url;

use crate::extract::normalize_text;

fn sel(css: &str) -> Selector {
    Selector::parse(css).expect("static selector")
}

static META: LazyLock<Selector> = LazyLock::new(|| sel("meta[content]"));
static JSON_LD: LazyLock<Selector> =
    LazyLock::new(|| sel(r#"script[type="application/ld+json" i]"#));
static TIME: LazyLock<Selector> = LazyLock::new(|| sel("time[datetime], [itemprop=datePublished]"));
static BYLINE: LazyLock<Selector> = LazyLock::new(|| {
    sel(r#"[rel=author], [itemprop=author], .byline, .author, .article-author, [class*=byline]"#)
});
static HTML_LANG: LazyLock<Selector> = LazyLock::new(|| sel("html[lang]"));

/// `<meta>` name (or property, itemprop, http-equiv) lower-cased, with its content.
pub struct Metas(Vec<(String, String)>);

impl Metas {
    pub fn read(html: &Html) -> Self {
        let mut all = Vec::new();
        for m in html.select(&META) {
            let v = m.value();
            let Some(name) = v
                .attr("name")
                .or_else(|| v.attr("property"))
                .or_else(|| v.attr("itemprop"))
                .or_else(|| v.attr("http-equiv"))
            else {
                continue;
            };
            let content = normalize_text(std::iter::once(v.attr("content").unwrap_or("")));
            if !content.is_empty() {
                all.push((name.trim().to_ascii_lowercase(), content));
            }
        }
        Metas(all)
    }

    /// The first of `names` (lower-case) that the page has, with the name found.
    pub fn first(&self, names: &[&'static str]) -> Option<(&'static str, &str)> {
        names.iter().find_map(|n| {
            self.0
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| (*n, v.as_str()))
        })
    }
}

/// Meta names that carry the publication time, most trusted first.
pub const DATE_METAS: &[&str] = &[
    "article:published_time",
    "pubdate",
    "publishdate",
    "publish-date",
    "publish_date",
    "publishedtime",
    "firstpublishedtime",
    "datepublished",
    "dc.date.issued",
    "dc.date",
    "dcterms.issued",
    "dcterms.created",
    "dc.date.created",
    "sailthru.date",
    "parsely-pub-date",
    "og:published_time",
    "og:release_date",
    "article.published",
    "published-date",
    "publication_date",
    "citation_publication_date",
    "pub_date",
    "date",
    "releasedate",
    "weibo:article:create_at",
];

/// Update times: only when nothing says when the page was published (and for the year
/// of a `发布时间：10-08 12:00` that omits it).
pub const UPDATE_METAS: &[&str] = &[
    "dateupdate",
    "datemodified",
    "article:modified_time",
    "og:updated_time",
    "lastmodifiedtime",
    "last-modified",
];

pub const TITLE_METAS: &[&str] = &["articletitle", "og:title", "twitter:title", "dc.title"];

pub const SOURCE_METAS: &[&str] = &["contentsource", "source", "mediaid", "dc.publisher"];

pub const AUTHOR_METAS: &[&str] = &[
    "author",
    "article:author",
    "dc.creator",
    "byl",
    "parsely-author",
    "sailthru.author",
];

/// What the JSON-LD blocks say about the article.
#[derive(Debug, Default)]
pub struct JsonLd {
    pub headline: Option<String>,
    pub date: Option<String>,
    pub author: Option<String>,
    pub publisher: Option<String>,
    pub images: Vec<String>,
    pub body: Option<String>,
}

const ARTICLE_TYPES: &[&str] = &[
    "NewsArticle",
    "Article",
    "Report",
    "BlogPosting",
    "ReportageNewsArticle",
    "AnalysisNewsArticle",
    "OpinionNewsArticle",
    "BackgroundNewsArticle",
    "LiveBlogPosting",
    "ScholarlyArticle",
    "TechArticle",
    "WebPage",
];

impl JsonLd {
    pub fn read(html: &Html) -> Self {
        let mut best: Option<(usize, Value)> = None;
        for script in html.select(&JSON_LD) {
            let text: String = script.text().collect();
            // Broken JSON is common (single quotes, trailing commas): read the plain
            // string fields of an article block by pattern instead.
            let Ok(value) = serde_json::from_str::<Value>(text.trim()) else {
                if best.is_none() && text.contains("Article") {
                    best = Some((1, lenient(&text)));
                }
                continue;
            };
            let mut nodes = Vec::new();
            collect_nodes(&value, &mut nodes, 0);
            for node in nodes {
                let rank = ARTICLE_TYPES
                    .iter()
                    .position(|t| has_type(node, t))
                    .map(|p| if p == ARTICLE_TYPES.len() - 1 { 1 } else { 2 })
                    .unwrap_or(0)
                    + usize::from(node.get("headline").is_some());
                if rank > 0 && best.as_ref().is_none_or(|(r, _)| rank > *r) {
                    best = Some((rank, node.clone()));
                }
            }
        }
        let Some((_, node)) = best else {
            return JsonLd::default();
        };
        JsonLd {
            headline: string_of(node.get("headline").or_else(|| node.get("name"))),
            date: string_of(
                node.get("datePublished")
                    .or_else(|| node.get("dateCreated"))
                    .or_else(|| node.get("uploadDate")),
            ),
            author: name_of(node.get("author")),
            publisher: name_of(node.get("publisher")),
            images: urls_of(node.get("image")),
            body: string_of(node.get("articleBody")),
        }
    }
}

/// The string fields of a JSON-LD block serde could not parse, as a JSON object.
fn lenient(text: &str) -> Value {
    static FIELD: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(
            r#""(headline|datePublished|dateCreated|articleBody)"\s*:\s*"((?:[^"\\]|\\.)*)""#,
        )
        .expect("static regex")
    });
    static NAMED: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r#""(author|publisher)"\s*:\s*\{[^{}]*?"name"\s*:\s*"((?:[^"\\]|\\.)*)""#)
            .expect("static regex")
    });
    let mut map = serde_json::Map::new();
    for c in FIELD.captures_iter(text).chain(NAMED.captures_iter(text)) {
        let value = serde_json::from_str::<String>(&format!("\"{}\"", &c[2]))
            .unwrap_or_else(|_| c[2].to_owned());
        let value = match &c[1] {
            "author" | "publisher" => serde_json::json!({ "name": value }),
            _ => Value::String(value),
        };
        map.entry(c[1].to_owned()).or_insert(value);
    }
    Value::Object(map)
}

fn collect_nodes<'a>(v: &'a Value, out: &mut Vec<&'a Value>, depth: usize) {
    if depth > 4 {
        return;
    }
    match v {
        Value::Array(items) => items.iter().for_each(|i| collect_nodes(i, out, depth + 1)),
        Value::Object(map) => {
            out.push(v);
            if let Some(graph) = map.get("@graph") {
                collect_nodes(graph, out, depth + 1);
            }
            if let Some(main) = map.get("mainEntity") {
                collect_nodes(main, out, depth + 1);
            }
        }
        _ => {}
    }
}

fn has_type(node: &Value, wanted: &str) -> bool {
    match node.get("@type") {
        Some(Value::String(t)) => t == wanted,
        Some(Value::Array(ts)) => ts.iter().any(|t| t.as_str() == Some(wanted)),
        _ => false,
    }
}

fn string_of(v: Option<&Value>) -> Option<String> {
    let s = match v? {
        Value::String(s) => s.as_str(),
        Value::Array(a) => return string_of(a.first()),
        _ => return None,
    };
    let s = normalize_text(std::iter::once(s));
    (!s.is_empty()).then_some(s)
}

/// `"Jane"`, `{"name": "Jane"}` or a list of either, joined with commas.
fn name_of(v: Option<&Value>) -> Option<String> {
    let names: Vec<String> = match v? {
        Value::Array(a) => a.iter().filter_map(|x| name_of(Some(x))).collect(),
        Value::Object(o) => string_of(o.get("name")).into_iter().collect(),
        other => string_of(Some(other)).into_iter().collect(),
    };
    (!names.is_empty()).then(|| names.join(", "))
}

fn urls_of(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => vec![s.trim().to_owned()],
        Some(Value::Array(a)) => a.iter().flat_map(|x| urls_of(Some(x))).collect(),
        Some(Value::Object(o)) => urls_of(o.get("url").or_else(|| o.get("contentUrl"))),
        _ => Vec::new(),
    }
}

/// `<time datetime>` or `[itemprop=datePublished]`: the attribute value, else the text.
pub fn time_element(html: &Html) -> Option<String> {
    html.select(&TIME).find_map(|t| {
        let v = t.value();
        let raw = v
            .attr("datetime")
            .or_else(|| v.attr("content"))
            .map(str::to_owned)
            .unwrap_or_else(|| normalize_text(t.text()));
        let raw = raw.trim().to_owned();
        (raw.len() >= 8).then_some(raw)
    })
}

/// Labels of the info line under Chinese titles; a value stops at the next one.
const LABELS: &str = "来源|稿源|文章来源|信息来源|出处|发布时间|发表时间|更新时间|发布日期|时间|日期|作者|记者|编辑|责任编辑|责编|审核|浏览次数|点击数|阅读|字号|分享";

static SOURCE_LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:来源|稿源|出处)\s*[:：]\s*([^\s|｜:：【】\[\]()（）]{2,40})")
        .expect("static regex")
});
static AUTHOR_LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:作者|记者|撰稿)\s*[:：]\s*([^\s|｜:：【】\[\]()（）]{2,30})")
        .expect("static regex")
});
static DATE_LABEL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:发布时间|发表时间|发布日期|时间|日期|Published|Posted)\s*[:：]?\s*")
        .expect("static regex")
});
/// A full date with a four-digit year in the usual spellings; what follows it (the time)
/// is read by `date::parse`.
pub static DATE_TEXT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?xi)
        (?:19|20)\d{2}\s*[-/.年]\s*\d{1,2}\s*[-/.月]\s*\d{1,2}
        | \d{1,2}\.?\s+(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?,?\s+(?:19|20)\d{2}
        | (?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?\s+\d{1,2},?\s+(?:19|20)\d{2}",
    )
    .expect("static regex")
});
static LABEL_CUT: LazyLock<Regex> = LazyLock::new(|| Regex::new(LABELS).expect("static regex"));

/// The value after `来源：` in `text`, cut at the next label.
pub fn source_in(text: &str) -> Option<String> {
    labelled(&SOURCE_LINE, text)
}

pub fn author_in(text: &str) -> Option<String> {
    labelled(&AUTHOR_LINE, text)
}

fn labelled(re: &Regex, text: &str) -> Option<String> {
    let value = re.captures(text)?.get(1)?.as_str();
    let value = match LABEL_CUT.find(value) {
        Some(m) => &value[..m.start()],
        None => value,
    };
    let value = value.trim_matches(|c: char| c.is_whitespace() || ",，;；。".contains(c));
    (value.chars().count() >= 2).then(|| value.to_owned())
}

static MONTH_DAY_LABELLED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:发布时间|发表时间|发布日期|时间|日期)\s*[:：]\s*(\d{1,2})\s*[-/月]\s*(\d{1,2})\s*日?\s*(\d{1,2}:\d{2}(?::\d{2})?)?")
        .expect("static regex")
});

/// A labelled date without its year (`发布时间：10-08 12:00`), completed with `year`.
pub fn month_day_in(window: &str, year: i32) -> Option<String> {
    let c = MONTH_DAY_LABELLED.captures(window)?;
    let time = c.get(3).map_or("", |t| t.as_str());
    Some(format!("{year}-{}-{} {time}", &c[1], &c[2]))
}

/// The name printed beside the date under a title (`原创 GameForce 2019-09-04 22:18`,
/// `2019-09-26 10:56 证券时报网`): what is left of that short line without the date, the
/// time and the usual words.
pub fn source_by_date(window: &str) -> Option<String> {
    static TIME: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"\d{1,2}:\d{2}(:\d{2})?").expect("static regex"));
    const NOISE: &[&str] = &[
        "原创",
        "转载",
        "分享",
        "评论",
        "举报",
        "关注",
        "字号",
        "优质原创作者",
        "收藏",
        "打印",
    ];
    let m = DATE_TEXT.find(window)?;
    let line_start = window[..m.start()].rfind('\n').map_or(0, |i| i + 1);
    let line_end = window[m.end()..]
        .find('\n')
        .map_or(window.len(), |i| m.end() + i);
    let line = &window[line_start..line_end];
    if line.chars().count() > 80 || line.contains(['：', ':']) && LABEL_CUT.is_match(line) {
        return None;
    }
    let rest = DATE_TEXT.replace_all(line, " ");
    let rest = TIME.replace_all(&rest, " ");
    rest.split(|c: char| c.is_whitespace() || "·|｜丨/".contains(c))
        .map(|t| t.split(['[', '【', '(', '（']).next().unwrap_or(""))
        .map(|t| t.trim_matches(|c: char| !c.is_alphanumeric()))
        .find(|t| {
            let n = t.chars().count();
            (2..=20).contains(&n)
                && !NOISE.contains(t)
                && !t.chars().all(|c| c.is_ascii_digit())
                && !t.chars().any(|c| c.is_ascii_digit())
        })
        .map(str::to_owned)
}

/// `05/10/2018` or `05.10.2018` as `2018-10-05` (day first) or, for US English, month
/// first: the order only the page's language tells.
pub fn numeric_date_in(window: &str, month_first: bool) -> Option<String> {
    static DMY: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?:^|[^\d/.])(\d{1,2})[/.](\d{1,2})[/.]((?:19|20)\d{2})(?:[^\d/.]|$)")
            .expect("static regex")
    });
    let c = DMY.captures(window)?;
    let (a, b): (u32, u32) = (c[1].parse().ok()?, c[2].parse().ok()?);
    let (d, m) = if month_first { (b, a) } else { (a, b) };
    ((1..=12).contains(&m) && (1..=31).contains(&d)).then(|| format!("{}-{m:02}-{d:02}", &c[3]))
}

/// `[엔터미디어=정덕현 기자]`: Korean news open with `[outlet=reporter]`.
pub fn korean_outlet_in(text: &str) -> Option<String> {
    static OUTLET: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"\[\s*([\p{Hangul}A-Za-z0-9 ]{2,20}?)\s*=").expect("static regex")
    });
    Some(OUTLET.captures(text)?[1].trim().to_owned())
}

/// The first labelled date anywhere in `text` (CMSes also print it under the body).
pub fn labelled_date_in(text: &str) -> Option<&str> {
    DATE_LABEL.find_iter(text).find_map(|label| {
        let rest = &text[label.end()..];
        // Only a date right after the label; looking further would rescan the page
        // once per label.
        DATE_TEXT
            .find(cut(rest, 40))
            .filter(|m| m.start() == 0)
            .map(|_| cut(rest, 40))
    })
}

/// The date text in `window`: the first labelled one, else the first one at all; returned
/// with the text that follows it (the time of day) for `date::parse`.
pub fn date_in(window: &str) -> Option<(&str, bool)> {
    let labelled = DATE_LABEL.find_iter(window).find_map(|label| {
        let rest = &window[label.end()..];
        // Only a date right after the label; looking further would rescan the page
        // once per label.
        DATE_TEXT
            .find(cut(rest, 40))
            .filter(|m| m.start() == 0)
            .map(|_| rest)
    });
    if let Some(rest) = labelled {
        return Some((cut(rest, 40), true));
    }
    let m = DATE_TEXT.find(window)?;
    Some((cut(&window[m.start()..], 40), false))
}

fn cut(s: &str, chars: usize) -> &str {
    match s.char_indices().nth(chars) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// A byline element's name: `By Jane Doe` -> `Jane Doe`.
pub fn byline(html: &Html) -> Option<String> {
    html.select(&BYLINE).find_map(|el| {
        let name = el
            .select(&sel("[itemprop=name]"))
            .next()
            .map(|n| {
                n.value()
                    .attr("content")
                    .map(str::to_owned)
                    .unwrap_or_else(|| normalize_text(n.text()))
            })
            .or_else(|| el.value().attr("content").map(str::to_owned))
            .unwrap_or_else(|| normalize_text(el.text()));
        clean_byline(&name)
    })
}

static BY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^(?:written\s+)?(?:by|von|par|por|di|door|av|af|przez|от)\s+")
        .expect("static regex")
});

pub fn clean_byline(raw: &str) -> Option<String> {
    let s = BY.replace(raw.trim(), "");
    let s = s.trim().trim_end_matches([',', '|', '·']).trim();
    let words = s.split_whitespace().count();
    (!s.is_empty() && s.chars().count() <= 80 && words <= 8 && !s.contains("http"))
        .then(|| s.to_owned())
}

/// The date in the URL path, as `YYYY-MM-DD`: `/202005/t20200512_1.html`, `/2020/05/12/`,
/// `/20200512/`, `-2020-05-12-`.
pub fn url_date(url: &Url) -> Option<String> {
    static PATTERNS: LazyLock<[Regex; 3]> = LazyLock::new(|| {
        [
            Regex::new(r"[/_\-]t?((?:19|20)\d{2})(\d{2})(\d{2})[/_.\-]").expect("static regex"),
            Regex::new(r"/((?:19|20)\d{2})[/\-](\d{1,2})[/\-](\d{1,2})(?:[/\-_.]|$)")
                .expect("static regex"),
            Regex::new(r"/((?:19|20)\d{2})(\d{2})/(\d{2})/").expect("static regex"),
        ]
    });
    let path = url.path();
    PATTERNS.iter().find_map(|re| {
        let c = re.captures(path)?;
        let (y, m, d) = (&c[1], c[2].parse::<u32>().ok()?, c[3].parse::<u32>().ok()?);
        ((1..=12).contains(&m) && (1..=31).contains(&d)).then(|| format!("{y}-{m:02}-{d:02}"))
    })
}

/// The page's declared language (`<html lang>`, else `content-language`).
pub fn language(html: &Html, metas: &Metas) -> Option<String> {
    html.select(&HTML_LANG)
        .next()
        .and_then(|h| h.value().attr("lang"))
        .map(str::to_owned)
        .or_else(|| {
            metas
                .first(&["content-language", "og:locale", "language"])
                .map(|(_, v)| v.to_owned())
        })
        .map(|l| l.trim().replace('_', "-").to_ascii_lowercase())
        .filter(|l| !l.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_line_values_stop_at_the_next_label() {
        let line = "来源：河南日报 作者：张三 时间：2020-05-12";
        assert_eq!(source_in(line).as_deref(), Some("河南日报"));
        assert_eq!(author_in(line).as_deref(), Some("张三"));
        assert_eq!(
            source_in("来源:河南日报时间:2020").as_deref(),
            Some("河南日报")
        );
        assert_eq!(
            source_in("文章来源：\u{3000}新华网").as_deref(),
            Some("新华网")
        );
        assert_eq!(date_in(line).map(|d| d.1), Some(true));
        assert!(date_in("发布时间：2020年5月12日 08:30 来源")
            .is_some_and(|d| d.0.starts_with("2020年")));
    }

    #[test]
    fn url_dates() {
        let d = |u: &str| url_date(&Url::parse(u).unwrap());
        assert_eq!(
            d("http://a.cn/gzdt/202005/t20200512_1.html").as_deref(),
            Some("2020-05-12")
        );
        assert_eq!(
            d("https://x.com/2021/3/9/story").as_deref(),
            Some("2021-03-09")
        );
        assert_eq!(
            d("https://x.com/news/20190102/abc.html").as_deref(),
            Some("2019-01-02")
        );
        assert_eq!(d("https://x.com/news/123456789/").as_deref(), None);
    }

    #[test]
    fn json_ld_graph_and_author_shapes() {
        let html = Html::parse_document(
            r#"<script type="application/ld+json">{"@context":"https://schema.org","@graph":[
            {"@type":"WebSite","name":"Site"},
            {"@type":["NewsArticle"],"headline":" Big  news ","datePublished":"2020-05-12T08:30:00+02:00",
             "author":[{"@type":"Person","name":"Jane Doe"},"John Roe"],"publisher":{"name":"Daily"},
             "image":{"@type":"ImageObject","url":"https://x.com/a.jpg"}}]}</script>"#,
        );
        let ld = JsonLd::read(&html);
        assert_eq!(ld.headline.as_deref(), Some("Big news"));
        assert_eq!(ld.author.as_deref(), Some("Jane Doe, John Roe"));
        assert_eq!(ld.publisher.as_deref(), Some("Daily"));
        assert_eq!(ld.images, ["https://x.com/a.jpg"]);
        assert_eq!(clean_byline("By Jane Doe").as_deref(), Some("Jane Doe"));
    }
}

//! Article pages: for each field, the element that holds the value automatic extraction
//! found (or the list gave), then the shortest selector that picks that element's value
//! on every sample. Works from values, not from the extractor's internals, so any
//! extractor that returns title/date/source/body text will do.

use std::collections::HashSet;
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use ego_tree::NodeId;
use regex::Regex;
use scraper::{ElementRef, Html, Selector};

use super::css;
use super::list::{DATE, DATE_PATTERN};
use super::Rule;
use crate::date;
use crate::extract::auto::{self, AutoArticle, Hints};
use crate::extract::{normalize_text, Document};
use crate::model::{Page, PageDate};
use crate::site::Site;

/// One fetched sample with what the list said about it.
pub struct Sample<'a> {
    pub page: &'a Page,
    pub list_title: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct ArticleFound {
    pub title: Option<Rule>,
    pub date: Option<Rule>,
    pub source: Option<Rule>,
    pub body: Option<Rule>,
    pub remove: Vec<(String, String)>,
    /// Fields left to automatic extraction, with why.
    pub left: Vec<(&'static str, String)>,
    /// The zone automatic extraction read from the first sample, and why.
    pub zone: Option<(Tz, String)>,
}

struct Parsed {
    doc: Document,
    auto: AutoArticle,
    title: Option<String>,
}

static LABELLED_DATE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(时间|日期)\s*[:：]\s*$").expect("static regex"));
static TIME: LazyLock<Selector> =
    LazyLock::new(|| Selector::parse("time[datetime]").expect("static selector"));

pub fn analyze(samples: &[Sample<'_>], site: &Site, now: DateTime<Utc>) -> ArticleFound {
    let parsed: Vec<Parsed> = samples
        .iter()
        .map(|s| {
            let doc = Document::parse(s.page, site);
            let auto = auto::extract(
                &doc,
                Hints {
                    url: &s.page.url,
                    timezone: None,
                    now,
                },
            );
            let title = s
                .list_title
                .clone()
                .filter(|t| !t.ends_with("...") && !t.ends_with('…'))
                .or_else(|| auto.title.clone());
            Parsed { doc, auto, title }
        })
        .collect();
    let n = parsed.len();
    let mut out = ArticleFound {
        zone: parsed.first().and_then(|p| p.auto.zone.clone()),
        ..ArticleFound::default()
    };
    let tz = out.zone.as_ref().map_or(chrono_tz::UTC, |z| z.0);

    match title_rule(&parsed) {
        Some(r) => out.title = Some(r),
        None => out
            .left
            .push(("title", "no selector gave the title on every sample".into())),
    }
    match date_rule(&parsed, tz, now) {
        Some(r) => out.date = Some(r),
        None => out
            .left
            .push(("date", "no selector gave the date on every sample".into())),
    }
    if parsed.iter().all(|p| p.auto.source.is_none()) {
        out.left
            .push(("source", format!("no sample of {n} names a source")));
    } else {
        match source_rule(&parsed) {
            Some(r) => out.source = Some(r),
            None => out.left.push((
                "source",
                "no selector gave the source on every sample".into(),
            )),
        }
    }
    match body_rule(&parsed) {
        Some((rule, bodies)) => {
            out.remove = remove_rules(&parsed, &bodies);
            out.body = Some(rule);
        }
        None => out.left.push((
            "body",
            "no one element holds the body on every sample".into(),
        )),
    }
    out
}

/// The first selector (shortest first) among `candidates` for which `ok` holds on every
/// sample.
fn first_valid(
    candidates: Vec<String>,
    parsed: &[Parsed],
    ok: impl Fn(&Parsed, &Selector) -> bool,
) -> Option<String> {
    candidates
        .into_iter()
        .find(|c| css::parse(c).is_some_and(|sel| parsed.iter().all(|p| ok(p, &sel))))
}

fn candidates_for(els: &[ElementRef<'_>]) -> Vec<String> {
    let mut all: Vec<String> = els.iter().flat_map(|e| css::page_candidates(*e)).collect();
    let mut seen = HashSet::new();
    all.retain(|c| seen.insert(c.clone()));
    all.sort_by_key(|c| css::preference(c));
    all
}

/// The elements and their parent and grandparent: a value inside an unnamed `<span>` is
/// often best reached through its named line (`p.info`) and a regex.
fn with_parents<'a>(els: &[ElementRef<'a>]) -> Vec<ElementRef<'a>> {
    let mut out = els.to_vec();
    for e in els {
        out.extend(css::ancestors(*e).take(2));
    }
    out
}

fn text_of(p: &Parsed, sel: &Selector) -> Option<String> {
    p.doc
        .html
        .select(sel)
        .next()
        .map(|e| normalize_text(e.text()))
}

/// Where a sample's expected title comes from.
type TitleOf = fn(&Parsed) -> Option<&str>;

fn title_rule(parsed: &[Parsed]) -> Option<Rule> {
    // The list's title first (whole, from the title attribute); automatic extraction's
    // when the list's differs from every element (a date or a column name glued on).
    let sources: [(&str, TitleOf); 2] = [
        ("the list title", |p| p.title.as_deref()),
        ("the automatically found title", |p| p.auto.title.as_deref()),
    ];
    for (name, title_of) in sources {
        let first = parsed.first()?;
        let Some(want) = title_of(first) else {
            continue;
        };
        let els = css::deepest(&first.doc.html, want.len() * 2 + 64, |e| {
            normalize_text(e.text()) == want
        });
        let v = first_valid(candidates_for(&with_parents(&els)), parsed, |p, sel| {
            title_of(p).is_some() && text_of(p, sel).as_deref() == title_of(p)
        });
        if let Some(v) = v {
            return Some(Rule::css(&v).because(format!(
                "the title's element, matching {name} on all {} samples",
                parsed.len()
            )));
        }
    }
    None
}

fn same_date(a: PageDate, b: PageDate) -> bool {
    if a.date_only || b.date_only {
        a.at.date_naive() == b.at.with_timezone(a.at.offset()).date_naive()
    } else {
        a.at == b.at
    }
}

fn date_rule(parsed: &[Parsed], tz: Tz, now: DateTime<Utc>) -> Option<Rule> {
    let first = parsed.first()?;
    let want = first.auto.published?;
    let n = parsed.len();
    let parse = |t: &str| date::parse(t, None, tz, now).ok();
    // <time datetime="…">: exact and machine-readable.
    let times: Vec<ElementRef<'_>> = first
        .doc
        .html
        .select(&TIME)
        .filter(|t| {
            t.value()
                .attr("datetime")
                .and_then(parse)
                .is_some_and(|d| same_date(d, want))
        })
        .collect();
    if !times.is_empty() {
        let v = first_valid(candidates_for(&times), parsed, |p, sel| {
            let got = p
                .doc
                .html
                .select(sel)
                .next()
                .and_then(|e| e.value().attr("datetime"))
                .and_then(parse);
            matches!((got, p.auto.published), (Some(g), Some(w)) if same_date(g, w))
        });
        if let Some(v) = v {
            return Some(Rule::css(&v).attr("datetime").because(format!(
                "<time datetime>, the page's date on all {n} samples"
            )));
        }
    }
    let deepest = css::deepest(&first.doc.html, LINE_MAX, |e| {
        DATE.find_iter(&normalize_text(e.text()))
            .filter_map(|m| parse(m.as_str()))
            .any(|d| same_date(d, want))
    });
    // The element itself, then its line, then the line's container: each with the regex
    // its own text needs.
    for level in 0..3 {
        let els: Vec<ElementRef<'_>> = deepest
            .iter()
            .filter_map(|e| std::iter::once(*e).chain(css::ancestors(*e)).nth(level))
            .collect();
        let Some(text) = els.first().map(|e| normalize_text(e.text())) else {
            break;
        };
        let Some(m) = DATE.find(&text) else { continue };
        let regex = if level == 0 && m.as_str().trim() == text.trim() {
            None
        } else if let Some(l) = LABELLED_DATE.captures(&text[..m.start()]) {
            Some(format!("{}[:：]\\s*{DATE_PATTERN}", &l[1]))
        } else {
            Some(DATE_PATTERN.to_owned())
        };
        let re = regex.as_deref().and_then(|r| Regex::new(r).ok());
        let v = first_valid(candidates_for(&els), parsed, |p, sel| {
            let Some(t) = text_of(p, sel) else {
                return false;
            };
            let value = match &re {
                Some(re) => re
                    .captures(&t)
                    .and_then(|c| c.get(1))
                    .map(|m| m.as_str().to_owned()),
                None => Some(t),
            };
            matches!((value.as_deref().and_then(parse), p.auto.published), (Some(g), Some(w)) if same_date(g, w))
        });
        let Some(v) = v else { continue };
        let rule = Rule::css(&v);
        let why = format!("the page's date on all {n} samples");
        return Some(match regex {
            Some(r) => rule
                .regex(&r)
                .because(format!("{why}; the regex takes it out of its line")),
            None => rule.because(why),
        });
    }
    None
}

fn source_rule(parsed: &[Parsed]) -> Option<Rule> {
    let first = parsed.iter().find(|p| p.auto.source.is_some())?;
    let want = first.auto.source.as_deref()?;
    let n = parsed.len();
    let els = css::deepest(&first.doc.html, LINE_MAX, |e| {
        normalize_text(e.text()).contains(want)
    });
    let labelled = Regex::new(r"来源[:：]\s*(\S+)").ok()?;
    let mut out = None;
    let candidates = candidates_for(&with_parents(&els));
    for regex in [None, Some(&labelled)] {
        let v = first_valid(candidates.clone(), parsed, |p, sel| {
            let Some(t) = text_of(p, sel) else {
                return false;
            };
            let value = match regex {
                Some(re) => re
                    .captures(&t)
                    .and_then(|c| c.get(1))
                    .map(|m| m.as_str().to_owned()),
                None => Some(t),
            };
            value.is_some() && value == p.auto.source
        });
        if let Some(v) = v {
            let rule = Rule::css(&v);
            let why = format!("the source on all {n} samples");
            out = Some(match regex {
                Some(re) => rule
                    .regex(re.as_str())
                    .because(format!("{why}; the regex keeps the name after 来源")),
                None => rule.because(why),
            });
            break;
        }
    }
    out
}

fn long_lines(text: &str) -> Option<(String, String)> {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| l.chars().count() >= 20)
        .collect();
    let clip = |l: &str| l.chars().take(30).collect::<String>();
    Some((clip(lines.first()?), clip(lines.last()?)))
}

/// The deepest element holding both the first and last long paragraphs of the body.
fn body_element(p: &Parsed) -> Option<NodeId> {
    let (first, last) = long_lines(&p.auto.text)?;
    // The paragraphs holding the first and last lines, then their nearest common element.
    let holding = |line: &str| {
        css::deepest(&p.doc.html, PARAGRAPH_MAX, |e| {
            normalize_text(e.text()).contains(line)
        })
    };
    let a = *holding(&first).first()?;
    let b = *holding(&last).last()?;
    let mut el = css::common_ancestor(a, b)?;
    // With one paragraph, the common element is the <p>; the body is its container.
    if a.id() == b.id() || el.value().name() == "p" {
        el = el.parent().and_then(ElementRef::wrap)?;
    }
    // Automatic extraction may take the title and info line along; step into the child
    // that holds most of the text and the last paragraph.
    for _ in 0..8 {
        let len = normalize_text(el.text()).chars().count();
        let inner = el.children().filter_map(ElementRef::wrap).find(|c| {
            let t = normalize_text(c.text());
            c.value().name() != "p" && t.contains(&last) && t.chars().count() * 10 >= len * 7
        });
        match inner {
            Some(c) if c.children().filter_map(ElementRef::wrap).count() > 1 => el = c,
            _ => break,
        }
    }
    Some(el.id())
}

fn body_rule(parsed: &[Parsed]) -> Option<(Rule, Vec<NodeId>)> {
    let bodies: Vec<NodeId> = parsed.iter().map(body_element).collect::<Option<_>>()?;
    let first = css::element(&parsed.first()?.doc.html, bodies[0])?;
    let v = first_valid(candidates_for(&[first]), parsed, |p, sel| {
        let idx = parsed
            .iter()
            .position(|q| std::ptr::eq(q, p))
            .unwrap_or_default();
        p.doc.html.select(sel).next().map(|e| e.id()) == Some(bodies[idx])
    })?;
    Some((
        Rule::css(&v).because(format!(
            "the element around the body text on all {} samples",
            parsed.len()
        )),
        bodies,
    ))
}

static JUNK_TEXT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"分享到|打印本页|关闭窗口|【打印】|【关闭】|相关链接|相关文章|相关阅读|相关新闻|^(?:Share this|Related)")
        .expect("static regex")
});
/// Text bytes of an info line (date, source): longer elements are not lines.
const LINE_MAX: usize = 4096;
/// Text bytes of one paragraph.
const PARAGRAPH_MAX: usize = 64 * 1024;

static JS_LINK: LazyLock<Selector> =
    LazyLock::new(|| Selector::parse("a[href^='javascript:']").expect("static selector"));
const JUNK_NAMES: &[&str] = &[
    "share",
    "bdshare",
    "sharedaddy",
    "related",
    "relatedposts",
    "print",
    "close",
    "xgwz",
    "xglj",
    "tools",
    "bdsharebuttonbox",
];

fn is_junk_name(e: ElementRef<'_>) -> bool {
    e.value().classes().chain(e.value().id()).any(|n| {
        let n = n.to_ascii_lowercase();
        JUNK_NAMES.contains(&n.as_str()) || n.split(['-', '_']).any(|t| JUNK_NAMES.contains(&t))
    })
}

/// Share bars, related links and print/close links inside the body, as `remove` rules
/// that never touch the body's first or last paragraph.
fn remove_rules(parsed: &[Parsed], bodies: &[NodeId]) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = Vec::new();
    for (p, body) in parsed.iter().zip(bodies) {
        let Some(body) = css::element(&p.doc.html, *body) else {
            continue;
        };
        let body_len = normalize_text(body.text()).chars().count();
        for e in body.descendants().filter_map(ElementRef::wrap).skip(1) {
            let text = normalize_text(e.text());
            let junk = is_junk_name(e)
                || (JUNK_TEXT.is_match(&text) && text.chars().count() * 4 < body_len);
            if !junk {
                continue;
            }
            // Name it by class or id; else by the name of a junk ancestor; else skip.
            let name = css::stable_id(e)
                .map(|i| format!("#{i}"))
                .or_else(|| {
                    let classes = css::stable_classes(e);
                    let junk_first = classes
                        .iter()
                        .find(|c| {
                            JUNK_NAMES
                                .iter()
                                .any(|j| c.to_ascii_lowercase().contains(j))
                        })
                        .or(classes.first());
                    junk_first.map(|c| format!("{}.{c}", css::tag(e)))
                })
                .or_else(|| {
                    e.value()
                        .attr("align")
                        .filter(|_| e.value().name() == "p")
                        .map(|a| format!("p[align='{a}']"))
                })
                .or_else(|| {
                    // print/close links: javascript: links are never content
                    e.select(&JS_LINK)
                        .next()
                        .map(|_| format!("{}:has(a[href^='javascript:'])", css::tag(e)))
                });
            let Some(name) = name else { continue };
            if found.iter().any(|(n, _)| *n == name) {
                continue;
            }
            let why = format!(
                "{:?} inside the body",
                text.chars().take(16).collect::<String>()
            );
            found.push((name, why));
        }
    }
    // Keep only rules that spare the real text on every sample.
    found.retain(|(name, _)| {
        let Some(sel) = css::parse(name) else {
            return false;
        };
        parsed.iter().zip(bodies).all(|(p, body)| {
            let Some(body) = css::element(&p.doc.html, *body) else {
                return true;
            };
            let Some((first, last)) = long_lines(&p.auto.text) else {
                return true;
            };
            body.select(&sel).all(|r| {
                let t = normalize_text(r.text());
                !t.contains(&first) && !t.contains(&last)
            })
        })
    });
    // A rule inside another rule's match is redundant.
    let names: Vec<String> = found.iter().map(|(n, _)| n.clone()).collect();
    found.retain(|(name, _)| {
        !names.iter().any(|other| {
            other != name
                && parsed.iter().zip(bodies).all(|(p, body)| {
                    let (Some(o), Some(s), Some(body)) = (
                        css::parse(other),
                        css::parse(name),
                        css::element(&p.doc.html, *body),
                    ) else {
                        return false;
                    };
                    let inner: HashSet<NodeId> = body
                        .select(&o)
                        .flat_map(|x| x.descendants().map(|d| d.id()))
                        .collect();
                    let mine: Vec<NodeId> = body.select(&s).map(|x| x.id()).collect();
                    !mine.is_empty()
                        && mine.iter().all(|m| inner.contains(m))
                        && !inner.is_empty()
                        && body.select(&o).all(|x| x.id() != mine[0])
                })
        })
    });
    found
}

/// The page's language tag: `<html lang>`, else `zh-CN` when the text is mostly Chinese.
pub fn language(html: &Html) -> Option<String> {
    let lang = html
        .root_element()
        .value()
        .attr("lang")
        .or_else(|| html.root_element().value().attr("xml:lang"))
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty());
    if lang.is_some() {
        return lang;
    }
    let text = normalize_text(html.root_element().text());
    let cjk = text
        .chars()
        .filter(|c| ('\u{4e00}'..='\u{9fff}').contains(c))
        .count();
    (cjk * 3 > text.chars().count()).then(|| "zh-CN".to_owned())
}

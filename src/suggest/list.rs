//! The list page: which repeated structure holds the article links, and where the next
//! page is.
//!
//! Links are grouped by the tag/class path from the root (so a list split over several
//! `<ul>` stays one group), each group's links are lifted to the largest element that
//! still holds one of them (the item: `li`, `tr`, a card, a `dl`, an `article`), and the
//! groups are scored on repetition, title length, dates beside the links and URL shape.
//! Navigation, footers, "hot" boxes and pagers score down by their names.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use ego_tree::NodeId;
use regex::Regex;
use scraper::{ElementRef, Html, Selector};
use url::Url;

use super::css;
use super::{Rule, SuggestError};
use crate::extract::{normalize_text, Document};

/// What was found on the list page.
#[derive(Debug, Clone)]
pub struct ListFound {
    pub item: Rule,
    pub link: Rule,
    pub title: Rule,
    pub date: Option<Rule>,
    pub next: Option<Rule>,
    pub next_url: Option<Url>,
    pub max_pages: u32,
    /// Further list pages to start from when the pager has no followable "next" link
    /// (a script-written TRS pager, numbered links only), with why.
    pub more_starts: Option<(Vec<Url>, String)>,
    /// Article URLs in page order, with the list's title for each.
    pub articles: Vec<(Url, String)>,
    /// Things the operator may want to look at.
    pub unsure: Vec<String>,
}

/// A date as list pages print them: `2020-05-12`, `2020/5/12`, `2020.05.12`,
/// `2020年5月12日`, `[05-12]`.
pub static DATE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\d{4}\s*[-/.年]\s*\d{1,2}\s*[-/.月]\s*\d{1,2}\s*日?(?:\s*\d{1,2}:\d{2}(?::\d{2})?)?|\b\d{1,2}-\d{1,2}\b")
        .expect("static regex")
});

/// The regex written into selector files for a date inside longer text.
pub const DATE_PATTERN: &str =
    r"(\d{4}\s*[-/.年]\s*\d{1,2}\s*[-/.月]\s*\d{1,2}\s*日?(?:\s*\d{1,2}:\d{2}(?::\d{2})?)?)";
const SHORT_DATE_PATTERN: &str = r"(\d{1,2}-\d{1,2})";

static ARTICLE_URL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:/|t|_)20\d{2}[-/_]?[01]\d(?:[-/_]?[0-3]\d)?|/\d{4,}\.s?html?$|[_/-]\d{5,}|/20\d{2}/\d{1,2}/")
        .expect("static regex")
});

/// Name parts that mark page furniture rather than the list.
const FURNITURE: &[&str] = &[
    "nav",
    "navbar",
    "menu",
    "foot",
    "footer",
    "hot",
    "rank",
    "ranking",
    "side",
    "sidebar",
    "widget",
    "crumb",
    "breadcrumb",
    "pager",
    "pages",
    "pagination",
    "fenye",
    "friend",
    "links",
    "related",
    "share",
    "popular",
    "tags",
    "copyright",
    "secondary",
    "aside",
    "remen",
    "tuijian",
    "recommend",
    "xgwz",
];

static A_HREF: LazyLock<Selector> =
    LazyLock::new(|| Selector::parse("a[href]").expect("static selector"));

struct Link<'a> {
    el: ElementRef<'a>,
    url: Url,
    label: String,
}

pub fn is_furniture(el: ElementRef<'_>) -> bool {
    if matches!(el.value().name(), "nav" | "footer" | "aside") {
        return true;
    }
    let names = el
        .value()
        .classes()
        .chain(el.value().id())
        .map(str::to_ascii_lowercase)
        .collect::<Vec<_>>();
    names.iter().any(|n| {
        n.split(|c: char| c == '-' || c == '_' || c.is_ascii_digit())
            .any(|t| FURNITURE.contains(&t))
    })
}

/// The registrable part of a host (`www.henan.gov.cn` and `news.henan.gov.cn` are one
/// site); an IP address is its own site, port included.
fn site_key(u: &Url) -> Option<String> {
    match u.host()? {
        url::Host::Domain(d) => {
            let labels: Vec<&str> = d.trim_end_matches('.').split('.').collect();
            let second = labels.len() >= 3 && {
                let tail = labels[labels.len() - 2..].join(".");
                matches!(
                    tail.as_str(),
                    "gov.cn"
                        | "com.cn"
                        | "edu.cn"
                        | "org.cn"
                        | "net.cn"
                        | "ac.cn"
                        | "co.uk"
                        | "ac.uk"
                        | "gov.uk"
                        | "org.uk"
                        | "co.jp"
                        | "or.jp"
                        | "go.jp"
                        | "com.hk"
                        | "gov.hk"
                        | "com.tw"
                        | "gov.tw"
                        | "org.tw"
                        | "com.au"
                        | "gov.au"
                        | "com.sg"
                        | "gov.sg"
                        | "co.kr"
                        | "go.kr"
                )
            };
            let keep = if second { 3 } else { 2 };
            Some(labels[labels.len().saturating_sub(keep)..].join("."))
        }
        other => Some(format!(
            "{other}:{}",
            u.port_or_known_default().unwrap_or(0)
        )),
    }
}

fn same_site(a: &Url, b: &Url) -> bool {
    site_key(a).is_some() && site_key(a) == site_key(b)
}

#[cfg(test)]
pub fn same_site_for_test(a: &str, b: &str) -> bool {
    match (Url::parse(a), Url::parse(b)) {
        (Ok(a), Ok(b)) => same_site(&a, &b),
        _ => false,
    }
}

fn links<'a>(doc: &'a Document, page: &Url) -> Vec<Link<'a>> {
    let mut out = Vec::new();
    // Enough for any real list page; a bound for hostile ones.
    for el in doc.html.select(&A_HREF).take(20_000) {
        let href = el.value().attr("href").unwrap_or_default().trim();
        if href.is_empty() || href.starts_with('#') || href.starts_with("javascript:") {
            continue;
        }
        let Ok(mut url) = doc.base.join(href) else {
            continue;
        };
        url.set_fragment(None);
        if !matches!(url.scheme(), "http" | "https" | "file")
            || !same_site(&url, page)
            || url.path() == "/"
            || url.as_str() == page.as_str()
        {
            continue;
        }
        let text = normalize_text(el.text());
        let title = el
            .value()
            .attr("title")
            .map(|t| normalize_text(std::iter::once(t)));
        let label = match title {
            Some(t) if t.chars().count() > text.chars().count() => t,
            _ => text,
        };
        if label.chars().count() < 5 {
            continue;
        }
        out.push(Link { el, url, label });
    }
    out
}

fn signature(el: ElementRef<'_>) -> String {
    let mut parts: Vec<String> = el
        .ancestors()
        .filter_map(ElementRef::wrap)
        .map(|a| {
            let mut c: Vec<&str> = a
                .value()
                .classes()
                .filter(|c| css::is_stable_name(c))
                .collect();
            c.sort_unstable();
            format!("{}.{}", a.value().name(), c.join("."))
        })
        .collect();
    parts.reverse();
    parts.join(">")
}

fn title_score(label: &str) -> f64 {
    let chars = label.chars().count();
    let ascii = label.is_ascii();
    let words = label.split_whitespace().count();
    let good = if ascii {
        (3..=25).contains(&words)
    } else {
        (8..=80).contains(&chars)
    };
    if good {
        1.0
    } else if chars >= 5 {
        0.4
    } else {
        0.1
    }
}

struct Group<'a> {
    items: Vec<ElementRef<'a>>,
    links: Vec<&'a Link<'a>>,
    score: f64,
    dated: usize,
    furniture: bool,
}

/// Lifts each link to the largest ancestor holding only this group's one URL.
fn lift<'a>(group: &[&'a Link<'a>]) -> Vec<ElementRef<'a>> {
    let mut urls_under: HashMap<NodeId, HashSet<&str>> = HashMap::new();
    for l in group {
        for a in css::ancestors(l.el) {
            urls_under.entry(a.id()).or_default().insert(l.url.as_str());
        }
    }
    let single = |e: &ElementRef<'_>| urls_under.get(&e.id()).is_some_and(|s| s.len() == 1);
    let mut items: Vec<ElementRef<'a>> = group.iter().map(|l| l.el).collect();
    for _ in 0..8 {
        let parents: Vec<Option<ElementRef<'a>>> = items
            .iter()
            .map(|e| e.parent().and_then(ElementRef::wrap))
            .collect();
        let ok = parents
            .iter()
            .filter(|p| p.as_ref().is_some_and(&single))
            .count();
        if ok * 10 < items.len() * 9 || parents.iter().any(Option::is_none) {
            break;
        }
        let lifted: Vec<ElementRef<'a>> = parents.into_iter().flatten().collect();
        // Stop where items would stop being siblings of one kind.
        let tags: HashSet<&str> = lifted.iter().map(|e| e.value().name()).collect();
        if tags.len() > 1
            || lifted
                .iter()
                .any(|e| matches!(e.value().name(), "body" | "html"))
        {
            break;
        }
        items = lifted;
    }
    let mut seen = HashSet::new();
    items.retain(|e| seen.insert(e.id()));
    items
}

/// Each item's first link of the group, in one walk up from each link (not items x links:
/// a hostile page may hold thousands of both).
fn link_per_item<'a, 'b>(
    items: &[ElementRef<'a>],
    links: &[&'b Link<'a>],
) -> HashMap<NodeId, &'b Link<'a>> {
    let ids: HashSet<NodeId> = items.iter().map(|e| e.id()).collect();
    let mut out = HashMap::new();
    for l in links {
        let up = std::iter::once(l.el.id()).chain(l.el.ancestors().map(|a| a.id()));
        if let Some(item) = up.into_iter().find(|id| ids.contains(id)) {
            out.entry(item).or_insert(*l);
        }
    }
    out
}

fn is_date_only(text: &str) -> bool {
    let t = text.trim().trim_matches(['[', ']', '(', ')', '【', '】']);
    DATE.find(t).is_some_and(|m| m.as_str().trim() == t.trim())
}

/// The element holding the title: the link itself, or, when the link also holds the date
/// (a card that is one big link), its longest child without the date.
fn title_element(link: ElementRef<'_>) -> ElementRef<'_> {
    let inner = || link.descendants().filter_map(ElementRef::wrap).skip(1);
    if !inner().any(|e| is_date_only(&normalize_text(e.text()))) {
        return link;
    }
    inner()
        .map(|e| (e, normalize_text(e.text())))
        .filter(|(_, t)| !DATE.is_match(t) && t.chars().count() >= 5)
        .max_by_key(|(_, t)| t.chars().count())
        .map_or(link, |(e, _)| e)
}

fn text_without<'a>(item: ElementRef<'a>, skip: ElementRef<'a>) -> String {
    let skip_ids: HashSet<NodeId> = skip.descendants().map(|n| n.id()).collect();
    let parts = item
        .descendants()
        .filter(|n| !skip_ids.contains(&n.id()))
        .filter_map(|n| n.value().as_text().map(|t| &**t));
    normalize_text(parts)
}

/// Finds the list on a parsed page.
pub fn analyze(doc: &Document, page: &Url) -> Result<ListFound, SuggestError> {
    let all = links(doc, page);
    let mut by_sig: HashMap<String, Vec<&Link<'_>>> = HashMap::new();
    let mut order = Vec::new();
    for l in &all {
        let sig = signature(l.el);
        if !by_sig.contains_key(&sig) {
            order.push(sig.clone());
        }
        by_sig.entry(sig).or_default().push(l);
    }
    let mut groups: Vec<Group<'_>> = Vec::new();
    for sig in &order {
        let group = &by_sig[sig];
        let distinct: HashSet<&str> = group.iter().map(|l| l.url.as_str()).collect();
        if distinct.len() < 3 {
            continue;
        }
        let items = lift(group);
        let n = distinct.len() as f64;
        let title = group.iter().map(|l| title_score(&l.label)).sum::<f64>() / n;
        let first_link = link_per_item(&items, group);
        let link_of = |item: &ElementRef<'_>| first_link.get(&item.id()).copied();
        let dated = items
            .iter()
            .filter(|i| {
                link_of(i).is_some_and(|l| {
                    DATE.is_match(&text_without(**i, title_element(l.el)))
                        || i.select(&TIME).next().is_some()
                })
            })
            .count();
        let date = dated as f64 / items.len().max(1) as f64;
        let regular = group
            .iter()
            .filter(|l| ARTICLE_URL.is_match(l.url.path()))
            .count() as f64
            / n;
        let furniture = items.first().is_some_and(|i| {
            // Near the items only: a page-wide wrapper (`div.side-main`) says nothing.
            std::iter::once(*i)
                .chain(css::ancestors(*i).take(4))
                .any(is_furniture)
        });
        let penalty = if furniture { 0.15 } else { 1.0 };
        let score = n * (0.2 + title) * (1.0 + date) * (1.0 + regular) * penalty;
        groups.push(Group {
            items,
            links: group.clone(),
            score,
            dated,
            furniture,
        });
    }
    groups.sort_by(|a, b| b.score.total_cmp(&a.score));
    let best = groups
        .into_iter()
        .find(|g| !g.furniture && g.items.len() >= 3 && (g.items.len() >= 4 || g.dated >= 3))
        .ok_or(SuggestError::NotAList)?;
    build(doc, page, best)
}

static TIME: LazyLock<Selector> =
    LazyLock::new(|| Selector::parse("time").expect("static selector"));

fn build(doc: &Document, page: &Url, g: Group<'_>) -> Result<ListFound, SuggestError> {
    let html = &doc.html;
    let mut unsure = Vec::new();
    let item_ids: HashSet<NodeId> = g.items.iter().map(|e| e.id()).collect();
    let item_css = item_selector(html, &g.items, &item_ids).ok_or_else(|| {
        SuggestError::NothingStable(
            "the list items have no id or class that selects them and nothing else".into(),
        )
    })?;
    // Each item's article link.
    let first_link = link_per_item(&g.items, &g.links);
    let pairs: Vec<(ElementRef<'_>, &Link<'_>)> = g
        .items
        .iter()
        .filter_map(|i| first_link.get(&i.id()).map(|l| (*i, *l)))
        .collect();
    let link_css = inner_selector(
        &pairs
            .iter()
            .map(|(i, l)| (*i, Some(l.el)))
            .collect::<Vec<_>>(),
    )
    .ok_or_else(|| {
        SuggestError::NothingStable("no selector finds the article link in every item".into())
    })?;
    let n = pairs.len();
    let link = Rule::css(&link_css).because(format!(
        "the article link; selects the same link in all {n} items"
    ));
    let item = Rule::css(&item_css).because(format!(
        "{n} repeated items linking to article pages{}",
        if g.dated > 0 {
            format!(", {} with a date", g.dated)
        } else {
            String::new()
        }
    ));
    let cut = pairs
        .iter()
        .filter(|(_, l)| {
            let text = normalize_text(l.el.text());
            text.ends_with("...") || text.ends_with('…') || text.ends_with("..")
        })
        .count();
    let has_title_attr = pairs.iter().all(|(_, l)| {
        l.el.value()
            .attr("title")
            .is_some_and(|t| !t.trim().is_empty())
    });
    let inner_titles: Vec<(ElementRef<'_>, Option<ElementRef<'_>>)> = pairs
        .iter()
        .map(|(i, l)| (*i, Some(title_element(l.el))))
        .filter(|(_, t)| t.is_some())
        .collect();
    let inner_title = inner_titles.iter().any(|(i, t)| {
        pairs
            .iter()
            .any(|(j, l)| j.id() == i.id() && t.map(|t| t.id()) != Some(l.el.id()))
    });
    let title = if inner_title {
        let css_text = inner_selector(&inner_titles).unwrap_or_else(|| link_css.clone());
        Rule::css(&css_text)
            .because("the link holds the date too; this element holds only the title".into())
    } else if has_title_attr && cut > 0 {
        Rule::css(&link_css).attr("title").because(format!(
            "{cut} of {n} link texts are cut with \"...\"; the title attribute is whole"
        ))
    } else if has_title_attr {
        Rule::css(&link_css)
            .attr("title")
            .because("every link carries the whole title in its title attribute".into())
    } else {
        Rule::css(&link_css).because("the link text".into())
    };
    let date = date_rule(&pairs, &mut unsure);
    let (next, next_url) = next_rule(doc, page);
    let articles = pairs
        .iter()
        .map(|(_, l)| {
            let t = title_element(l.el);
            let label = if t.id() == l.el.id() {
                l.label.clone()
            } else {
                normalize_text(t.text())
            };
            (l.url.clone(), label)
        })
        .collect();
    Ok(ListFound {
        item,
        link,
        title,
        date,
        max_pages: if next.is_some() { 3 } else { 1 },
        more_starts: if next.is_none() {
            numbered_pages(doc, page)
        } else {
            None
        },
        next_url: next_url.or_else(|| {
            next.is_none()
                .then(|| numbered_pages(doc, page))
                .flatten()
                .and_then(|(u, _)| u.into_iter().next())
        }),
        next,
        articles,
        unsure,
    })
}

fn item_selector(html: &Html, items: &[ElementRef<'_>], ids: &HashSet<NodeId>) -> Option<String> {
    let first = *items.first()?;
    let shared: Vec<String> = {
        let mut c = css::stable_classes(first);
        c.retain(|k| items.iter().all(|i| i.value().classes().any(|x| x == k)));
        c
    };
    let t = css::tag(first);
    let mut own = vec![t.clone()];
    own.extend(shared.iter().map(|c| format!("{t}.{c}")));
    let mut candidates: Vec<String> = own.clone();
    let scopes: Vec<Vec<String>> = css::ancestors(first)
        .take(6)
        .map(|a| {
            let mut s = css::scope_parts(a);
            // A scope must be shared by every item.
            s.retain(|p| {
                let ids_of = css::select_ids(html, p);
                items
                    .iter()
                    .all(|i| css::ancestors(*i).any(|a| ids_of.contains(&a.id())))
            });
            s
        })
        .collect();
    for (level, parts) in scopes.iter().enumerate() {
        for p in parts {
            for o in &own {
                candidates.push(format!("{p} {o}"));
                if level == 0 {
                    candidates.push(format!("{p} > {o}"));
                }
            }
        }
    }
    for (i, inner) in scopes.iter().enumerate() {
        for outer in scopes.iter().skip(i + 1) {
            for p in inner {
                for q in outer {
                    for o in &own {
                        candidates.push(format!("{q} {p} {o}"));
                    }
                }
            }
        }
    }
    candidates.sort_by_key(|c| css::preference(c));
    // Header rows and separators share the items' markup; `:has(a)` leaves them out.
    candidates
        .iter()
        .find(|c| css::select_ids(html, c) == *ids)
        .cloned()
        .or_else(|| {
            candidates
                .iter()
                .map(|c| format!("{c}:has(a)"))
                .find(|c| css::select_ids(html, c) == *ids)
        })
}

/// The shortest selector whose first match in each item is that item's target.
pub fn inner_selector(pairs: &[(ElementRef<'_>, Option<ElementRef<'_>>)]) -> Option<String> {
    let (scope, target) = pairs.iter().find_map(|(s, t)| t.map(|t| (*s, t)))?;
    css::inner_candidates(scope, target).into_iter().find(|c| {
        let Some(sel) = css::parse(c) else {
            return false;
        };
        pairs.iter().all(|(s, t)| match t {
            Some(t) => css::first_in(*s, &sel).is_some_and(|m| m.id() == t.id()),
            None => true,
        })
    })
}

fn date_rule(pairs: &[(ElementRef<'_>, &Link<'_>)], unsure: &mut Vec<String>) -> Option<Rule> {
    // Per item, the deepest element outside the link whose text holds a date.
    let mut targets = Vec::new();
    let mut via_attr = 0;
    for (item, link) in pairs {
        let title = title_element(link.el);
        let link_ids: HashSet<NodeId> = title.descendants().map(|n| n.id()).collect();
        let time = item
            .select(&TIME)
            .find(|t| t.value().attr("datetime").is_some());
        if let Some(t) = time {
            via_attr += 1;
            targets.push((*item, Some(t)));
            continue;
        }
        let found = std::iter::once(*item)
            .chain(item.descendants().filter_map(ElementRef::wrap))
            .filter(|e| !link_ids.contains(&e.id()))
            .filter(|e| DATE.is_match(&text_without(*e, title)))
            .last();
        targets.push((*item, found));
    }
    let dated = targets.iter().filter(|(_, t)| t.is_some()).count();
    if dated * 2 < targets.len() {
        return None;
    }
    let css_text = inner_selector(&targets)?;
    let n = targets.len();
    if via_attr == n {
        return Some(
            Rule::css(&css_text)
                .attr("datetime")
                .because(format!("<time datetime> in {n} of {n} items")),
        );
    }
    // A regex when the element holds more than the date.
    let texts: Vec<String> = targets
        .iter()
        .filter_map(|(_, t)| t.map(|t| normalize_text(t.text())))
        .collect();
    let exact = texts
        .iter()
        .all(|t| DATE.find(t).is_some_and(|m| m.as_str().trim() == t.trim()));
    let short = texts.iter().all(|t| {
        DATE.find(t)
            .is_some_and(|m| !m.as_str().contains(['年', '/', '.']) && m.as_str().len() <= 5)
    });
    if dated < n {
        unsure.push(format!(
            "list date: {} of {n} items show no date",
            n - dated
        ));
    }
    let rule = Rule::css(&css_text);
    let why = format!("a date beside the link in {dated} of {n} items");
    Some(if exact {
        rule.because(why)
    } else if short {
        rule.regex(SHORT_DATE_PATTERN).because(format!(
            "{why}; the regex drops the brackets (no year: the most recent past is assumed)"
        ))
    } else {
        rule.regex(DATE_PATTERN)
            .because(format!("{why}; the regex keeps only the date"))
    })
}

const NEXT_TEXTS: &[&str] = &[
    "下一页",
    "下页",
    "下一頁",
    "后页",
    "next",
    "next page",
    "older posts",
    "older",
    ">",
    "›",
    "»",
    ">>",
];

fn next_rule(doc: &Document, page: &Url) -> (Option<Rule>, Option<Url>) {
    let html = &doc.html;
    let resolve = |a: ElementRef<'_>| {
        let href = a.value().attr("href")?.trim();
        if href.is_empty() || href.starts_with('#') || href.starts_with("javascript:") {
            return None;
        }
        doc.base
            .join(href)
            .ok()
            .filter(|u| u.as_str() != page.as_str())
    };
    // rel=next first: the most explicit.
    if let Some(sel) = css::parse("a[rel~='next']") {
        if let Some(a) = html.select(&sel).next() {
            if let Some(u) = resolve(a) {
                return (
                    Some(
                        Rule::css("a[rel~='next']").because("the link marked rel=\"next\"".into()),
                    ),
                    Some(u),
                );
            }
        }
    }
    for a in html.select(&A_HREF) {
        let text = normalize_text(a.text());
        let lower = text.to_lowercase();
        let Some(word) = NEXT_TEXTS
            .iter()
            .find(|w| lower == **w || (w.chars().count() > 2 && lower.contains(*w)))
        else {
            continue;
        };
        let Some(url) = resolve(a) else { continue };
        let text_filter = if text.chars().count() <= 2 {
            text.clone()
        } else {
            (*word).to_owned()
        };
        for c in pager_candidates(a) {
            let Some(sel) = css::parse(&c) else { continue };
            let first = html
                .select(&sel)
                .find(|e| e.text().any(|t| t.contains(text_filter.as_str())))
                .and_then(resolve);
            if first.as_ref() == Some(&url) {
                return (
                    Some(
                        Rule::css(&c)
                            .text(&text_filter)
                            .because(format!("the pager's {text_filter:?} link")),
                    ),
                    Some(url),
                );
            }
        }
    }
    numbered(doc, page)
}

static PAGER_SCRIPT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"createPageHTML\(\s*['"]?(\d+)['"]?\s*,\s*['"]?(\d+)['"]?\s*,\s*['"]([\w-]+)['"]\s*,\s*['"](\w+)['"]"#)
        .expect("static regex")
});

/// Pages 2 and 3 of a pager that no CSS rule can follow: TRS's script-written
/// `createPageHTML(total, current, "index", "html")`, or links to `index_1.html` /
/// `index_2.html` beside the current page. They become extra `start` URLs.
fn numbered_pages(doc: &Document, page: &Url) -> Option<(Vec<Url>, String)> {
    let html_text = doc.html.root_element().html();
    if let Some(c) = PAGER_SCRIPT.captures(&html_text) {
        let total: u32 = c[1].parse().ok()?;
        let (stem, ext) = (&c[3], &c[4]);
        let urls: Vec<Url> = (1..total.min(3))
            .filter_map(|n| doc.base.join(&format!("{stem}_{n}.{ext}")).ok())
            .collect();
        if !urls.is_empty() {
            return Some((
                urls,
                format!(
                    "the pager is written by a script (createPageHTML, {total} pages): \
                     pages 2-3 are listed as start pages"
                ),
            ));
        }
    }
    let mut urls: Vec<(u32, Url)> = doc
        .html
        .select(&A_HREF)
        .filter_map(|a| {
            let href = a.value().attr("href")?.trim();
            let caps = NUMBERED_HREF.captures(href)?;
            let n: u32 = caps[1].parse().ok()?;
            let u = doc.base.join(href).ok()?;
            ((1..=2).contains(&n) && u.as_str() != page.as_str()).then_some((n, u))
        })
        .collect();
    urls.sort_by_key(|(n, _)| *n);
    urls.dedup_by_key(|(n, _)| *n);
    (!urls.is_empty()).then(|| {
        (
            urls.into_iter().map(|(_, u)| u).collect(),
            "numbered pages without a \"next\" link: pages 2-3 are listed as start pages".into(),
        )
    })
}

static NUMBERED_HREF: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(?:\./)?index_(\d+)\.s?html?$").expect("static regex"));

fn pager_candidates(a: ElementRef<'_>) -> Vec<String> {
    let mut out = vec!["a".to_owned()];
    for c in css::stable_classes(a) {
        out.push(format!("a.{c}"));
    }
    for anc in css::ancestors(a).take(4) {
        for s in css::scope_parts(anc) {
            out.push(format!("{s} a"));
        }
    }
    out.sort_by_key(|s| s.len());
    out
}

/// A pager with page numbers only: the link right after the current page's number.
fn numbered(doc: &Document, page: &Url) -> (Option<Rule>, Option<Url>) {
    let html = &doc.html;
    for cur in html
        .root_element()
        .descendants()
        .filter_map(ElementRef::wrap)
    {
        // The current page's number is a leaf: checking that first keeps this linear.
        let leaf = cur.children().all(|c| c.value().is_text());
        if !leaf || cur.value().name() == "a" || normalize_text(cur.text()) != "1" {
            continue;
        }
        let Some(next) = cur.next_siblings().find_map(ElementRef::wrap) else {
            continue;
        };
        if next.value().name() != "a" || normalize_text(next.text()) != "2" {
            continue;
        }
        let Some(url) = next
            .value()
            .attr("href")
            .and_then(|h| doc.base.join(h.trim()).ok())
            .filter(|u| u.as_str() != page.as_str())
        else {
            continue;
        };
        let own = css::own_parts(cur);
        let scopes: Vec<String> = css::ancestors(cur)
            .take(3)
            .flat_map(css::scope_parts)
            .collect();
        let mut candidates: Vec<String> = Vec::new();
        for o in own.iter().rev() {
            for s in &scopes {
                candidates.push(format!("{s} {o} + a"));
            }
        }
        for c in candidates {
            let Some(sel) = css::parse(&c) else { continue };
            if html.select(&sel).next().map(|e| e.id()) == Some(next.id()) {
                return (
                    Some(Rule::css(&c).because(
                        "numbered pager without a \"next\" link: the link after the current page number"
                            .into(),
                    )),
                    Some(url),
                );
            }
        }
    }
    (None, None)
}

//! Selector writing: stable CSS for an element, and checks that a selector picks exactly
//! the elements meant. Stable means ids and semantic classes, never positions or the
//! generated class names (hashes, digit runs) that change with every template build.

use std::collections::HashSet;

use ego_tree::NodeId;
use scraper::{ElementRef, Html, Selector};

/// A class or id a human chose: no long digit runs, no hash-like tokens, no
/// per-item numbering (`post-101`).
pub fn is_stable_name(name: &str) -> bool {
    let digits = name.chars().filter(char::is_ascii_digit).count();
    let generated_prefix = ["css-", "sc-", "jsx-", "ng-", "svelte-", "_"]
        .iter()
        .any(|p| name.starts_with(p));
    !name.is_empty()
        && name.len() <= 32
        && digits <= 1
        && !generated_prefix
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
}

pub fn stable_classes(el: ElementRef<'_>) -> Vec<String> {
    el.value()
        .classes()
        .filter(|c| is_stable_name(c))
        .map(str::to_owned)
        .collect()
}

pub fn stable_id(el: ElementRef<'_>) -> Option<String> {
    el.value()
        .id()
        .filter(|i| is_stable_name(i))
        .map(str::to_owned)
}

pub fn tag(el: ElementRef<'_>) -> String {
    el.value().name().to_ascii_lowercase()
}

/// Ways to name one element alone, plainest first: `tag`, `tag.class`, `#id`.
pub fn own_parts(el: ElementRef<'_>) -> Vec<String> {
    let t = tag(el);
    let mut out = vec![t.clone()];
    for c in stable_classes(el) {
        out.push(format!("{t}.{c}"));
    }
    if let Some(id) = stable_id(el) {
        out.push(format!("#{id}"));
    }
    out
}

/// Ways to name an ancestor as a scope: ids and classes only (a bare `div` scopes nothing).
pub fn scope_parts(el: ElementRef<'_>) -> Vec<String> {
    let t = tag(el);
    let mut out = Vec::new();
    if let Some(id) = stable_id(el) {
        out.push(format!("#{id}"));
    }
    for c in stable_classes(el) {
        out.push(format!("{t}.{c}"));
    }
    if matches!(
        t.as_str(),
        "main" | "article" | "table" | "ul" | "ol" | "dl" | "section"
    ) {
        out.push(t);
    }
    out
}

pub fn ancestors(el: ElementRef<'_>) -> impl Iterator<Item = ElementRef<'_>> {
    el.ancestors()
        .filter_map(ElementRef::wrap)
        .take_while(|a| !matches!(a.value().name(), "body" | "html"))
}

/// Candidate selectors for `el` on its whole page, shortest first: its own names, then
/// each named ancestor (up to six levels) followed by its own names.
pub fn page_candidates(el: ElementRef<'_>) -> Vec<String> {
    let own = own_parts(el);
    let mut out = own.clone();
    for anc in ancestors(el).take(6) {
        for scope in scope_parts(anc) {
            for o in &own {
                out.push(format!("{scope} {o}"));
            }
        }
    }
    sort_by_length(out)
}

/// Candidate selectors for `target` inside `scope` (a list item).
pub fn inner_candidates(scope: ElementRef<'_>, target: ElementRef<'_>) -> Vec<String> {
    let own = own_parts(target);
    let mut out = own.clone();
    // A cell after another cell (`td + td`): structure, not a position count.
    let prev = |e: ElementRef<'_>| e.prev_siblings().find_map(ElementRef::wrap).map(tag);
    if let Some(p) = prev(target) {
        for o in &own {
            out.push(format!("{p} + {o}"));
        }
    }
    if let Some(parent) = target.parent().and_then(ElementRef::wrap) {
        if parent.id() != scope.id() {
            if let Some(p) = prev(parent) {
                for o in &own {
                    out.push(format!("{p} + {} {o}", tag(parent)));
                }
            }
        }
    }
    for anc in ancestors(target).take_while(|a| a.id() != scope.id()) {
        let mut parts = own_parts(anc);
        parts.truncate(3);
        for p in parts {
            for o in &own {
                out.push(format!("{p} {o}"));
            }
        }
    }
    sort_by_length(out)
}

/// Shortest first, but a selector of bare generic tags (`li`, `div span`, `td + td`) ranks
/// as if it were longer: a class or id says what the element is, a bare tag only where.
pub fn preference(css: &str) -> usize {
    let named = css.contains(['.', '#', '[']);
    let last = css.rsplit([' ', '>', '+']).next().unwrap_or(css);
    let last = last.split(':').next().unwrap_or(last);
    let generic = matches!(
        last,
        "div" | "span" | "td" | "tr" | "p" | "font" | "li" | "dl" | "dt" | "dd" | "section"
    );
    css.len() + if generic && !named { 12 } else { 0 }
}

fn sort_by_length(mut v: Vec<String>) -> Vec<String> {
    let mut seen = HashSet::new();
    v.retain(|s| seen.insert(s.clone()));
    v.sort_by_key(|s| preference(s));
    v
}

pub fn parse(css: &str) -> Option<Selector> {
    Selector::parse(css).ok()
}

/// Elements `css` selects on the page.
pub fn select_ids(html: &Html, css: &str) -> HashSet<NodeId> {
    parse(css).map_or_else(HashSet::new, |s| html.select(&s).map(|e| e.id()).collect())
}

/// The first match inside `scope`, the scope itself first, as `extract` reads a field.
pub fn first_in<'a>(scope: ElementRef<'a>, sel: &Selector) -> Option<ElementRef<'a>> {
    if sel.matches(&scope) {
        return Some(scope);
    }
    scope.select(sel).next()
}

pub fn element(html: &Html, id: NodeId) -> Option<ElementRef<'_>> {
    html.tree.get(id).and_then(ElementRef::wrap)
}

/// Raw text length under every element, in one pass (children before parents).
fn text_lengths(html: &Html) -> std::collections::HashMap<NodeId, usize> {
    let mut len = std::collections::HashMap::new();
    let nodes: Vec<_> = html.tree.root().descendants().collect();
    for n in nodes.iter().rev() {
        let own = n.value().as_text().map_or(0, |t| t.len());
        let children: usize = n
            .children()
            .map(|c| len.get(&c.id()).copied().unwrap_or(0))
            .sum();
        len.insert(n.id(), own + children);
    }
    len
}

/// The deepest elements with at most `max_len` bytes of text whose text satisfies `keep`:
/// an element is dropped when one of its children also satisfies it. The bound keeps a
/// hostile page (thousands of nested wrappers around megabytes of text) linear: only
/// short elements have their text read.
pub fn deepest<'a>(
    html: &'a Html,
    max_len: usize,
    keep: impl Fn(ElementRef<'a>) -> bool,
) -> Vec<ElementRef<'a>> {
    let lengths = text_lengths(html);
    let hits: Vec<ElementRef<'a>> = html
        .root_element()
        .descendants()
        .filter_map(ElementRef::wrap)
        .filter(|e| !matches!(e.value().name(), "script" | "style" | "head" | "title"))
        .filter(|e| lengths.get(&e.id()).is_some_and(|l| *l <= max_len))
        .filter(|e| keep(*e))
        .collect();
    let parents: HashSet<NodeId> = hits
        .iter()
        .filter_map(|e| e.parent().map(|p| p.id()))
        .collect();
    hits.into_iter()
        .filter(|e| !parents.contains(&e.id()))
        .collect()
}

/// The nearest element holding both `a` and `b`.
pub fn common_ancestor<'a>(a: ElementRef<'a>, b: ElementRef<'a>) -> Option<ElementRef<'a>> {
    let above_b: HashSet<NodeId> = std::iter::once(b.id())
        .chain(b.ancestors().map(|n| n.id()))
        .collect();
    std::iter::once(a)
        .chain(a.ancestors().filter_map(ElementRef::wrap))
        .find(|e| above_b.contains(&e.id()))
}

//! Finding the article body without a selector: one pass over the tree counts text,
//! link text and punctuation per element; paragraphs vote for their parent and
//! grandparent (readability's idea, with CJK punctuation counted like commas); the best
//! container wins, with its sibling continuations; then navigation, share bars, related
//! links, print/close links, the title and the info line are cut out of it.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use ego_tree::iter::Edge;
use ego_tree::NodeId;
use regex::Regex;
use scraper::{ElementRef, Html, Node};
use url::Url;

use crate::extract::sanitize;

/// Elements whose text no reader sees. (Not `form`: ASP.NET pages wrap everything in one.)
const INVISIBLE: &[&str] = &[
    "script", "style", "noscript", "template", "head", "title", "iframe", "svg", "select",
    "option", "button", "textarea", "object", "embed", "canvas", "math",
];

/// Elements that flow inside a paragraph; every other element starts a block.
const INLINE: &[&str] = &[
    "a", "span", "font", "strong", "b", "em", "i", "u", "small", "big", "sub", "sup", "label",
    "abbr", "cite", "code", "time", "mark", "s", "strike", "q", "img", "br", "wbr", "ins", "del",
    "kbd", "var", "tt", "bdi", "bdo", "nobr",
];

/// Blocks whose own text makes them the container (old CMSes write `text<br>text`).
const CONTAINERS: &[&str] = &[
    "div", "td", "section", "article", "main", "body", "center", "dd",
];

#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    pub chars: u32,
    pub link_chars: u32,
    pub punct: u32,
    pub links: u32,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.chars += o.chars;
        self.link_chars += o.link_chars;
        self.punct += o.punct;
        self.links += o.links;
    }

    pub fn link_density(&self) -> f64 {
        if self.chars == 0 {
            0.0
        } else {
            f64::from(self.link_chars) / f64::from(self.chars)
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct NodeStats {
    /// Everything visible inside.
    pub full: Counts,
    /// Text that belongs to this block itself (not to a nested block).
    pub own: Counts,
    /// Byte span of the element's text in [`Analysis::flat`].
    pub start: usize,
    pub end: usize,
    pub container: bool,
    pub paragraph_like: bool,
    /// Paragraph score of the whole subtree.
    pub deep: f64,
}

/// The counted tree and its visible text as one string.
pub struct Analysis {
    pub stats: HashMap<NodeId, NodeStats>,
    /// All visible text, blocks separated by a newline, runs of spaces collapsed.
    pub flat: String,
    /// Han characters among the visible ones, for the zone guess.
    pub han: u32,
}

fn is_punct(c: char) -> bool {
    matches!(
        c,
        '。' | '，' | '、' | '；' | '！' | '？' | '：' | '“' | '”' | '.' | ',' | ';' | '!' | '?'
    )
}

fn is_space(c: char) -> bool {
    c.is_whitespace() || c == '\u{a0}' || c == '\u{3000}'
}

pub fn is_hidden(el: &scraper::node::Element) -> bool {
    crate::extract::sanitize::hidden_by_markup(el)
}

struct Frame {
    id: NodeId,
    full: Counts,
    own: Counts,
    start: usize,
    block: bool,
    container: bool,
    paragraph_like: bool,
    heading: bool,
    deep: f64,
}

/// What one paragraph's own text is worth: punctuation and length, no links.
fn paragraph_score(own: &Counts) -> f64 {
    let plain = own.chars.saturating_sub(own.link_chars);
    // A teaser's date under its link is not a paragraph: prose has punctuation or length.
    if plain < 10 || own.link_density() > 0.5 || own.punct == 0 && plain < 30 {
        return 0.0;
    }
    1.0 + f64::from(own.punct.min(30)) + (f64::from(plain) / 40.0).min(6.0)
}

/// Counts every element in one traversal (no recursion: hostile nesting is deep).
pub fn analyze(html: &Html) -> Analysis {
    let mut stats = HashMap::new();
    let mut flat = String::new();
    let mut han = 0;
    let mut stack: Vec<Frame> = Vec::new();
    let mut invisible = 0usize;
    let mut in_link = 0usize;
    for edge in html.root_element().traverse() {
        match edge {
            Edge::Open(node) => match node.value() {
                Node::Element(e) => {
                    let name = e.name();
                    if invisible > 0 || INVISIBLE.contains(&name) || is_hidden(e) {
                        invisible += 1;
                        continue;
                    }
                    let block = !INLINE.contains(&name);
                    if block && !flat.ends_with('\n') && !flat.is_empty() {
                        flat.push('\n');
                    }
                    if name == "br" && !flat.ends_with('\n') {
                        flat.push('\n');
                    }
                    if name == "a" {
                        in_link += 1;
                        if let Some(top) = stack.last_mut() {
                            top.full.links += 1;
                        }
                    }
                    stack.push(Frame {
                        id: node.id(),
                        full: Counts::default(),
                        own: Counts::default(),
                        start: flat.len(),
                        block,
                        container: CONTAINERS.contains(&name),
                        paragraph_like: matches!(
                            name,
                            "p" | "pre" | "blockquote" | "li" | "figure" | "table"
                        ) || name.starts_with('h') && name.len() == 2,
                        heading: name.starts_with('h') && name.len() == 2,
                        deep: 0.0,
                    });
                }
                Node::Text(t) if invisible == 0 => {
                    let mut c = Counts::default();
                    for ch in t.chars() {
                        if is_space(ch) {
                            if !flat.ends_with([' ', '\n']) && !flat.is_empty() {
                                flat.push(' ');
                            }
                            continue;
                        }
                        flat.push(ch);
                        c.chars += 1;
                        c.punct += u32::from(is_punct(ch));
                        han += u32::from(('\u{4e00}'..='\u{9fff}').contains(&ch));
                    }
                    if in_link > 0 {
                        c.link_chars = c.chars;
                    }
                    if let Some(top) = stack.last_mut() {
                        top.full.add(&c);
                    }
                    if let Some(owner) = stack.iter_mut().rev().find(|f| f.block) {
                        owner.own.add(&c);
                    }
                }
                _ => {}
            },
            Edge::Close(node) => {
                let Node::Element(e) = node.value() else {
                    continue;
                };
                if invisible > 0 {
                    invisible -= 1;
                    continue;
                }
                if e.name() == "a" {
                    in_link = in_link.saturating_sub(1);
                }
                let Some(f) = stack.pop() else { continue };
                let deep = f.deep
                    + if f.heading {
                        0.0
                    } else {
                        paragraph_score(&f.own)
                    };
                if let Some(parent) = stack.last_mut() {
                    parent.full.add(&f.full);
                    parent.deep += deep;
                }
                if f.block && !flat.ends_with('\n') {
                    flat.push('\n');
                }
                stats.insert(
                    f.id,
                    NodeStats {
                        full: f.full,
                        own: f.own,
                        start: f.start,
                        end: flat.len(),
                        container: f.container,
                        paragraph_like: f.paragraph_like,
                        deep,
                    },
                );
            }
        }
    }
    Analysis { stats, flat, han }
}

static POSITIVE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)article|content|body|text|entry|post|story|main|zoom|detail|trs_editor|news_txt|rich_media|cnt|con_|artibody|endtext|post_text|maincontent")
        .expect("static regex")
});
static NEGATIVE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)comment|share|footer|(^|[-_ ])foot|(^|[-_ ])nav|menu|sidebar|(^|[-_ ])side|related|relate|recommend|(^|[-_ ])hot|rank|(^|[-_ ])ad([-_ ]|$)|advert|banner|copyright|header|breadcrumb|crumb|login|pagination|pager|widget|popup|modal|social|subscribe|newsletter|promo|sponsor|disqus|reply|toolbar|bdshare|jiathis|tags?([-_ ]|$)|(^|[-_ ])print|location|position")
        .expect("static regex")
});

fn class_and_id(el: ElementRef<'_>) -> String {
    let v = el.value();
    format!(
        "{} {} {}",
        v.attr("class").unwrap_or(""),
        v.attr("id").unwrap_or(""),
        v.attr("itemprop").unwrap_or("")
    )
}

fn class_weight(el: ElementRef<'_>) -> f64 {
    let names = class_and_id(el);
    if names.trim().is_empty() {
        return 0.0;
    }
    let mut w = 0.0;
    if NEGATIVE.is_match(&names) {
        w -= 25.0;
    }
    if POSITIVE.is_match(&names) {
        w += 25.0;
    }
    w
}

fn element(html: &Html, id: NodeId) -> Option<ElementRef<'_>> {
    html.tree.get(id).and_then(ElementRef::wrap)
}

/// The chosen body: its root elements in document order and what to cut out of them.
pub struct Body {
    pub roots: Vec<NodeId>,
    pub skip: HashSet<NodeId>,
    pub chars: u32,
}

/// Scores paragraphs into their containers and picks the best one.
pub fn choose(html: &Html, a: &Analysis) -> Option<Body> {
    let mut scores: HashMap<NodeId, f64> = HashMap::new();
    for (&id, st) in &a.stats {
        let score = paragraph_score(&st.own);
        if score == 0.0 {
            continue;
        }
        let Some(node) = html.tree.get(id) else {
            continue;
        };
        if let Some(e) = node.value().as_element() {
            if e.name().len() == 2 && e.name().starts_with('h') {
                continue;
            }
        }
        let mut targets = Vec::with_capacity(3);
        if st.container {
            targets.push((id, 1.0));
        }
        let mut up = node.parent();
        for weight in [1.0, 0.5] {
            let Some(p) = up else { break };
            if p.value().is_element() {
                targets.push((p.id(), weight));
            }
            up = p.parent();
        }
        if st.container {
            targets.truncate(2);
            if let Some(t) = targets.get_mut(1) {
                t.1 = 0.5;
            }
        }
        for (t, w) in targets {
            *scores.entry(t).or_default() += score * w;
        }
    }
    let comment_class: std::cell::RefCell<HashMap<NodeId, bool>> = Default::default();
    let is_comment = |el: ElementRef<'_>| -> bool {
        *comment_class
            .borrow_mut()
            .entry(el.id())
            .or_insert_with(|| COMMENTS.is_match(&class_and_id(el)))
    };
    let final_score = |id: NodeId, raw: f64| -> f64 {
        let Some(el) = element(html, id) else {
            return f64::MIN;
        };
        let ld = a.stats.get(&id).map_or(0.0, |s| s.full.link_density());
        let name = el.value().name();
        let tag_bias = match name {
            "article" => 10.0,
            "body" | "html" => -20.0,
            _ => 0.0,
        };
        // Reader comments are prose with punctuation too; inside a comment thread
        // nothing is the article.
        let in_comments = el
            .ancestors()
            .take(8)
            .filter_map(ElementRef::wrap)
            .any(is_comment);
        let damp = if in_comments { 0.2 } else { 1.0 };
        (raw + class_weight(el) + tag_bias) * (1.0 - ld) * damp
    };
    let (top, top_score) = scores
        .iter()
        .map(|(&id, &raw)| (id, final_score(id, raw)))
        .max_by(|x, y| x.1.total_cmp(&y.1).then_with(|| y.0.cmp(&x.0)))?;
    if top_score <= 0.0 {
        return None;
    }
    // Paragraph scores reach only two levels up; an article split over several wrappers
    // needs the ancestor that holds clearly more of the same paragraph text.
    let mut top = top;
    let mut up = html.tree.get(top).and_then(|n| n.parent());
    for _ in 0..8 {
        let Some(parent) = up.and_then(ElementRef::wrap) else {
            break;
        };
        let (Some(p), Some(c)) = (a.stats.get(&parent.id()), a.stats.get(&top)) else {
            break;
        };
        if matches!(parent.value().name(), "body" | "html")
            || p.full.link_density() > 0.2
            || NEGATIVE.is_match(&class_and_id(parent)) && !POSITIVE.is_match(&class_and_id(parent))
        {
            break;
        }
        if p.deep >= c.deep * GROW && p.deep - c.deep >= GROW_MIN {
            top = parent.id();
        }
        up = parent.parent();
    }
    let top_score = top_score.max(scores.get(&top).map_or(0.0, |&r| final_score(top, r)));
    let mut roots = vec![top];
    let top_node = html.tree.get(top)?;
    if let Some(parent) = top_node.parent().filter(|p| p.value().is_element()) {
        let threshold = (top_score * 0.25).max(10.0);
        roots = parent
            .children()
            .filter_map(ElementRef::wrap)
            .filter(|s| {
                if s.id() == top {
                    return true;
                }
                let Some(st) = a.stats.get(&s.id()) else {
                    return false;
                };
                if NEGATIVE.is_match(&class_and_id(*s)) {
                    return false;
                }
                let score = scores.get(&s.id()).map_or(0.0, |&r| final_score(s.id(), r));
                let ld = st.full.link_density();
                score >= threshold
                    || st.paragraph_like
                        && s.value().name() == "p"
                        && ((st.full.chars >= 80 && ld < 0.25)
                            || (st.full.chars > 0 && ld == 0.0 && st.full.punct > 0))
            })
            .map(|s| s.id())
            .collect();
    }
    let chars = roots
        .iter()
        .filter_map(|r| a.stats.get(r))
        .map(|s| s.full.chars)
        .sum();
    Some(Body {
        roots,
        skip: HashSet::new(),
        chars,
    })
}

static COMMENTS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(^|[-_ ])comments?([-_ ]|$)|comment-?list|commentlist|disqus|respond|replies")
        .expect("static regex")
});

/// How much more paragraph text an ancestor must hold to replace the chosen container.
const GROW: f64 = 2.0;
/// ... and at least this much more (a few paragraphs, not a byline or a date line).
const GROW_MIN: f64 = 30.0;

static RELATED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\s*[【\[]?(相关链接|相关阅读|相关新闻|相关文章|相关报道|延伸阅读|推荐阅读|热点推荐|猜你喜欢|更多精彩|Related|Read more|More from|See also|Recommended)")
        .expect("static regex")
});
static CHROME_TEXT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"打印本页|关闭窗口|【打印】|【关闭】|返回顶部|返回列表|【字体|字号[:：]|【大\s*中\s*小】|分享到|扫一扫|Share this|Print this")
        .expect("static regex")
});
static BYLINE_CLASS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)byline|author|dateline|(^|[-_ ])meta([-_ ]|$)|(^|[-_ ])date|timestamp|publish")
        .expect("static regex")
});
static BYLINE_TEXT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\s*(?i:by|von|par|por|door)\s+\p{Lu}").expect("static regex"));
static INFO_LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(来源|作者|责任编辑|编辑|发布时间|时间|日期|浏览次数|点击数|记者)\s*[:：]")
        .expect("static regex")
});

/// Marks what to cut out of the body: chrome, related links, the title and info line,
/// link lists and junk images.
pub fn prune(html: &Html, a: &Analysis, body: &mut Body, title: Option<NodeId>, base: &Url) {
    let total = body.chars.max(1);
    let roots = body.roots.clone();
    for root in roots {
        let Some(root_el) = element(html, root) else {
            continue;
        };
        let mut cut_rest_of: Option<NodeId> = None;
        let skip = &mut body.skip;
        visit(root_el, skip, |el, skip| {
            if el.id() == root {
                return;
            }
            if Some(el.id()) == title {
                skip.insert(el.id());
                return;
            }
            let name = el.value().name();
            if name == "img" {
                if image_url(el, base).is_none() {
                    skip.insert(el.id());
                }
                return;
            }
            let Some(st) = a.stats.get(&el.id()) else {
                return;
            };
            let small = st.full.chars * 3 < total;
            let text = &a.flat[st.start..st.end];
            let names = class_and_id(el);
            let cut = small
                && (NEGATIVE.is_match(&names) && !POSITIVE.is_match(&names)
                    || st.full.chars < 80 && BYLINE_CLASS.is_match(&names)
                    || st.full.chars < 60 && BYLINE_TEXT.is_match(text)
                    || st.full.chars < 40 && CHROME_TEXT.is_match(text)
                    || st.full.chars < 120
                        && INFO_LINE.is_match(text)
                        && !st.paragraph_like_long()
                    || name != "a"
                        && st.full.links >= 2
                        && st.full.link_density() > 0.6
                        && st.full.chars < 300);
            let related = small && st.full.chars < 600 && RELATED.is_match(text);
            // A bare "相关链接" heading takes the list after it along; an inline "Read
            // more: <link>" paragraph goes alone.
            if related && st.full.chars <= 12 && cut_rest_of.is_none() {
                cut_rest_of = Some(el.id());
            }
            if cut || related {
                skip.insert(el.id());
            }
        });
        // A "相关链接" heading takes the blocks after it with it.
        if let Some(heading) = cut_rest_of.and_then(|id| html.tree.get(id)) {
            for sib in heading.next_siblings() {
                body.skip.insert(sib.id());
            }
        }
    }
}

impl NodeStats {
    /// A real paragraph that happens to mention a label (`记者：` in a quote).
    fn paragraph_like_long(&self) -> bool {
        self.full.punct >= 3 && self.full.chars >= 60
    }
}

static JUNK_IMAGE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)logo|icon|spacer|blank\.|pixel|1x1|qrcode|qr_code|qr-code|erweima|ewm|二维码|avatar|emoji|button|btn_|arrow|bullet|clear\.gif|s\.gif|transparent|/ads?/|doubleclick|beacon|analytics|hm\.baidu|cnzz|scorecardresearch|facebook\.com/tr|pixel\.wp\.com|/share|weixin\.png|weibo\.png|gravatar")
        .expect("static regex")
});

static LOADING: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)loading|placeholder|lazy\.(gif|png)").expect("static regex"));

/// The image's best URL (the largest `srcset` candidate, a lazy attribute, else `src`),
/// or `None` for icons, logos, spacers, QR codes and tracking pixels.
pub fn image_url(el: ElementRef<'_>, base: &Url) -> Option<String> {
    let v = el.value();
    let dim = |a: &str| {
        v.attr(a)
            .and_then(|s| s.trim().trim_end_matches("px").parse::<u32>().ok())
    };
    let (w, h) = (dim("width"), dim("height"));
    if w.is_some_and(|w| w <= 2) || h.is_some_and(|h| h <= 2) {
        return None;
    }
    if w.is_some_and(|w| w < 40) && h.is_some_and(|h| h < 40) {
        return None;
    }
    let src = v
        .attr("srcset")
        .or_else(|| v.attr("data-srcset"))
        .and_then(largest_in_srcset)
        .and_then(|s| sanitize::absolute(base, s, true))
        .or_else(|| sanitize::image_src(el, base))?;
    let names = format!(
        "{} {} {} {}",
        src,
        v.attr("class").unwrap_or(""),
        v.attr("id").unwrap_or(""),
        v.attr("alt").unwrap_or("")
    );
    // `class="img_loading"` marks a lazy image not yet swapped in: only the URL of a
    // spinner says "loading".
    let spinner = LOADING.is_match(&src);
    (!JUNK_IMAGE.is_match(&names) && !spinner).then_some(src)
}

/// The widest (or densest) candidate of a `srcset`.
fn largest_in_srcset(srcset: &str) -> Option<&str> {
    srcset
        .split(", ")
        .filter_map(|c| {
            let mut parts = c.split_whitespace();
            let url = parts.next()?;
            let size = parts
                .next()
                .and_then(|d| d.trim_end_matches(['w', 'x']).parse::<f64>().ok())
                .unwrap_or(1.0);
            Some((url, size))
        })
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(u, _)| u)
}

/// The body's images, in order, deduplicated.
pub fn images(html: &Html, body: &Body, base: &Url) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for root in &body.roots {
        let Some(root) = element(html, *root) else {
            continue;
        };
        let mut seen = |el: ElementRef<'_>, _: &mut HashSet<NodeId>| {
            if el.value().name() != "img" {
                return;
            }
            if let Some(src) = image_url(el, base) {
                if !src.starts_with("data:") && !out.contains(&src) {
                    out.push(src);
                }
            }
        };
        let mut skip = body.skip.clone();
        visit(root, &mut skip, &mut seen);
    }
    out
}

/// Calls `f` on every element under `root` outside the skipped subtrees, in document
/// order; `f` may add the element to `skip` to leave its subtree out. No recursion and
/// no ancestor walks: hostile pages nest thousands deep.
fn visit<'a>(
    root: ElementRef<'a>,
    skip: &mut HashSet<NodeId>,
    mut f: impl FnMut(ElementRef<'a>, &mut HashSet<NodeId>),
) {
    let mut skipping = 0usize;
    for edge in root.traverse() {
        match edge {
            Edge::Open(node) => {
                if skipping > 0 || skip.contains(&node.id()) {
                    skipping += 1;
                    continue;
                }
                if let Some(el) = ElementRef::wrap(node) {
                    f(el, skip);
                    if skip.contains(&node.id()) {
                        skipping += 1;
                    }
                }
            }
            Edge::Close(_) => skipping = skipping.saturating_sub(1),
        }
    }
}

/// Plain text of the body, one paragraph a line.
pub fn text(html: &Html, body: &Body) -> String {
    let mut out = String::new();
    for root in &body.roots {
        let Some(root) = element(html, *root) else {
            continue;
        };
        let mut skipping = 0usize;
        for edge in root.traverse() {
            match edge {
                Edge::Open(node) => {
                    if skipping > 0 || body.skip.contains(&node.id()) {
                        skipping += 1;
                        continue;
                    }
                    match node.value() {
                        Node::Element(e) => {
                            if INVISIBLE.contains(&e.name()) || is_hidden(e) {
                                skipping += 1;
                            } else if !INLINE.contains(&e.name()) || e.name() == "br" {
                                newline(&mut out);
                            }
                        }
                        Node::Text(t) => {
                            for c in t.chars() {
                                if is_space(c) {
                                    if !out.is_empty() && !out.ends_with([' ', '\n']) {
                                        out.push(' ');
                                    }
                                } else {
                                    out.push(c);
                                }
                            }
                        }
                        _ => {}
                    }
                }
                Edge::Close(node) => {
                    if skipping > 0 {
                        skipping -= 1;
                        continue;
                    }
                    if let Node::Element(e) = node.value() {
                        if !INLINE.contains(&e.name()) {
                            newline(&mut out);
                        }
                    }
                }
            }
        }
        newline(&mut out);
    }
    let lines: Vec<&str> = out
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    crate::model::xml_safe(&lines.join("\n")).into_owned()
}

fn newline(out: &mut String) {
    while out.ends_with(' ') {
        out.pop();
    }
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
}

//! The allow-list sanitizer: scraped HTML in, HTML that is safe in any feed reader out.
//!
//! It walks the already-parsed tree (no second HTML parse) and writes only what it
//! knows: allowed tags with allowed attributes, text escaped once, every `href`/`src`
//! made absolute and checked against a scheme allow-list. Scripts, styles, frames, forms,
//! event handlers and hidden elements are dropped with their content; unknown tags are
//! unwrapped (their text kept). Lazy-loaded images get their real `src`, `&nbsp;`
//! indentation is collapsed, and paragraphs left empty are removed.

use std::collections::HashSet;

use ego_tree::iter::Edge;
use ego_tree::NodeId;
use scraper::{ElementRef, Node};
use url::Url;

/// Attributes lazy-loading scripts read the real image URL from, most common first.
const LAZY_SRC_ATTRS: &[&str] = &[
    "data-src",
    "data-original",
    "data-lazy-src",
    "data-lazy",
    "data-actualsrc",
    "data-echo",
    "data-url",
    "lazy-src",
    "original",
];

/// Elements dropped together with everything inside them.
const DROPPED: &[&str] = &[
    "script", "style", "iframe", "frame", "frameset", "object", "embed", "applet", "noscript",
    "template", "form", "input", "button", "select", "textarea", "option", "svg", "math", "head",
    "title", "meta", "link", "base", "audio", "video", "canvas", "map", "area", "nav", "dialog",
];

/// Block elements kept, and removed when nothing but whitespace is left in them.
const BLOCKS_DROPPED_WHEN_EMPTY: &[&str] = &[
    "p",
    "div",
    "blockquote",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "figure",
    "figcaption",
    "dl",
    "ul",
    "ol",
];

/// Other elements kept as they are.
const KEPT: &[&str] = &[
    "a", "b", "strong", "i", "em", "u", "s", "sub", "sup", "code", "kbd", "pre", "li", "dt", "dd",
    "table", "thead", "tbody", "tfoot", "tr", "th", "td", "caption", "small", "mark", "q", "cite",
    "abbr", "time", "del", "ins",
];

/// Kept elements around which whitespace is layout, not content.
const TABLE_AND_LIST_PARTS: &[&str] = &[
    "li", "dt", "dd", "table", "thead", "tbody", "tfoot", "tr", "th", "td", "caption", "pre",
];

const VOID_KEPT: &[&str] = &["br", "hr", "img"];

/// Hostile pages nest deeper than any article; below this depth only text is kept.
const MAX_DEPTH: usize = 128;

/// The sanitized HTML and the images it shows, absolute and deduplicated, in order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Sanitized {
    pub html: String,
    pub images: Vec<String>,
}

/// Sanitizes the *contents* of `root`, skipping the subtrees whose ids are in `skip`
/// (the `remove` selectors' matches).
pub fn sanitize(root: ElementRef<'_>, base: &Url, skip: &HashSet<NodeId>) -> Sanitized {
    let mut w = Writer {
        base,
        skip,
        images: Vec::new(),
        pre_depth: 0,
        at_block_edge: true,
    };
    let mut html = String::new();
    w.children(root, &mut html, 0);
    Sanitized {
        html: trim_edges(&html).to_owned(),
        images: w.images,
    }
}

/// Sanitizes an HTML fragment (an upstream feed's summary or content).
pub fn sanitize_fragment(html: &str, base: &Url) -> Sanitized {
    let doc = super::bounded::parse_fragment(html);
    sanitize(doc.root_element(), base, &HashSet::new())
}

struct Writer<'a> {
    base: &'a Url,
    skip: &'a HashSet<NodeId>,
    images: Vec<String>,
    pre_depth: usize,
    /// Nothing but tags since the last block boundary: spaces here are indentation.
    at_block_edge: bool,
}

impl Writer<'_> {
    fn children(&mut self, el: ElementRef<'_>, out: &mut String, depth: usize) {
        for child in el.children() {
            if self.skip.contains(&child.id()) {
                continue;
            }
            match child.value() {
                Node::Text(t) => self.text(t, out),
                Node::Element(_) => {
                    if let Some(child) = ElementRef::wrap(child) {
                        self.element(child, out, depth + 1);
                    }
                }
                _ => {}
            }
        }
    }

    /// Writes text with whitespace runs (`&nbsp;` and U+3000 included) collapsed to one
    /// space, and none at the edge of a block, where it is only indentation.
    fn text(&mut self, t: &str, out: &mut String) {
        if self.pre_depth > 0 {
            escape_text(t, out);
            return;
        }
        for c in t.chars() {
            if crate::model::is_stripped_char(c) && !is_space(c) {
                continue;
            }
            if is_space(c) {
                if !(self.at_block_edge || out.is_empty() || out.ends_with(' ')) {
                    out.push(' ');
                }
            } else {
                escape_char(c, out);
                self.at_block_edge = false;
            }
        }
    }

    fn element(&mut self, el: ElementRef<'_>, out: &mut String, depth: usize) {
        let name = el.value().name();
        if DROPPED.contains(&name) || is_hidden(el) {
            return;
        }
        if depth > MAX_DEPTH {
            self.deep_text(el, out);
            return;
        }
        match name {
            "img" => self.img(el, out),
            "br" | "hr" => {
                out.push('<');
                out.push_str(name);
                out.push('>');
                self.at_block_edge = true;
            }
            "a" => self.anchor(el, out, depth),
            _ if BLOCKS_DROPPED_WHEN_EMPTY.contains(&name) => {
                let mut inner = String::new();
                self.at_block_edge = true;
                self.children(el, &mut inner, depth);
                self.at_block_edge = true;
                let inner = trim_edges(&inner);
                if !inner.is_empty() {
                    out.push('<');
                    out.push_str(name);
                    out.push('>');
                    out.push_str(inner);
                    out.push_str("</");
                    out.push_str(name);
                    out.push('>');
                }
            }
            _ if KEPT.contains(&name) => {
                let is_pre = name == "pre";
                self.pre_depth += usize::from(is_pre);
                out.push('<');
                out.push_str(name);
                for attr in ["colspan", "rowspan", "start"] {
                    if let Some(v) = el.value().attr(attr).filter(|v| is_small_number(v)) {
                        push_attr(out, attr, v.trim());
                    }
                }
                out.push('>');
                let blockish = TABLE_AND_LIST_PARTS.contains(&name);
                self.at_block_edge |= blockish;
                self.children(el, out, depth);
                out.push_str("</");
                out.push_str(name);
                out.push('>');
                self.at_block_edge |= blockish;
                self.pre_depth -= usize::from(is_pre);
            }
            // font, span, center, section...: keep what is inside, drop the wrapper.
            _ if VOID_KEPT.contains(&name) => {}
            _ => self.children(el, out, depth),
        }
    }

    /// Below [`MAX_DEPTH`] only text is kept, found without recursion; dropped and hidden
    /// subtrees stay dropped (a script's source must not come back as text).
    fn deep_text(&mut self, el: ElementRef<'_>, out: &mut String) {
        let mut skipping: Option<NodeId> = None;
        for edge in el.traverse() {
            match edge {
                Edge::Open(node) if skipping.is_none() => {
                    if self.skip.contains(&node.id()) {
                        skipping = Some(node.id());
                        continue;
                    }
                    match node.value() {
                        Node::Text(t) => self.text(t, out),
                        Node::Element(e) => {
                            let dropped = DROPPED.contains(&e.name())
                                || ElementRef::wrap(node).is_some_and(is_hidden);
                            if dropped {
                                skipping = Some(node.id());
                            }
                        }
                        _ => {}
                    }
                }
                Edge::Close(node) if skipping == Some(node.id()) => skipping = None,
                _ => {}
            }
        }
    }

    fn anchor(&mut self, el: ElementRef<'_>, out: &mut String, depth: usize) {
        let href = el
            .value()
            .attr("href")
            .and_then(|h| absolute(self.base, h, false));
        let Some(href) = href else {
            // A link to nowhere (`javascript:`, `#`): keep its text only.
            return self.children(el, out, depth);
        };
        out.push_str("<a");
        push_attr(out, "href", &href);
        if let Some(title) = el.value().attr("title") {
            push_attr(out, "title", title);
        }
        out.push('>');
        self.children(el, out, depth);
        out.push_str("</a>");
    }

    fn img(&mut self, el: ElementRef<'_>, out: &mut String) {
        let Some(src) = image_src(el, self.base) else {
            return;
        };
        out.push_str("<img");
        push_attr(out, "src", &src);
        for attr in ["alt", "title"] {
            if let Some(v) = el.value().attr(attr) {
                push_attr(out, attr, v.trim());
            }
        }
        for attr in ["width", "height"] {
            if let Some(v) = el.value().attr(attr).filter(|v| is_small_number(v)) {
                push_attr(out, attr, v.trim());
            }
        }
        out.push('>');
        if !src.starts_with("data:") && !self.images.contains(&src) {
            self.images.push(src);
        }
    }
}

/// The real source of an image: a lazy-load attribute when present, else `src`;
/// absolute, and only http(s) or an inline raster `data:` image.
pub fn image_src(el: ElementRef<'_>, base: &Url) -> Option<String> {
    let v = el.value();
    LAZY_SRC_ATTRS
        .iter()
        .filter_map(|a| v.attr(a))
        .chain(v.attr("src"))
        .find_map(|s| absolute(base, s, true))
}

/// Resolves `href` against `base`; `None` unless the result is http(s) (or mailto for
/// links, or a raster `data:` image when `image`): `file:`, `javascript:` and every other
/// scheme found in content are dropped (see [`crate::url_policy`]).
pub fn absolute(base: &Url, href: &str, image: bool) -> Option<String> {
    let href = href.trim();
    if href.is_empty() || href.starts_with('#') {
        return None;
    }
    if image {
        let lower = href.get(..20).unwrap_or(href).to_ascii_lowercase();
        if [
            "data:image/png",
            "data:image/gif",
            "data:image/jpeg",
            "data:image/webp",
        ]
        .iter()
        .any(|p| lower.starts_with(p))
        {
            // Tiny inline GIFs are lazy-load placeholders, never the picture.
            return (href.len() > 200).then(|| href.to_owned());
        }
    }
    let url = base.join(href).ok()?;
    match url.scheme() {
        "http" | "https" => Some(url.into()),
        "mailto" if !image => Some(url.into()),
        _ => None,
    }
}

/// `hidden`, `display:none`, `visibility:hidden`: text a reader was never meant to see
/// (keyword stuffing, tracking) must not appear once the styles are gone.
fn is_hidden(el: ElementRef<'_>) -> bool {
    let v = el.value();
    v.attr("aria-hidden") == Some("true") && el.text().all(|t| t.trim().is_empty())
        || hidden_by_markup(v)
}

/// `hidden`, or a style that hides the element: shared by the sanitizer and automatic
/// extraction's body scoring.
pub fn hidden_by_markup(v: &scraper::node::Element) -> bool {
    v.attr("hidden").is_some()
        || v.attr("style").is_some_and(|s| {
            let s: String = s
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect::<String>()
                .to_ascii_lowercase();
            s.contains("display:none") || s.contains("visibility:hidden")
        })
}

fn is_space(c: char) -> bool {
    c.is_whitespace() || c == '\u{a0}' || c == '\u{3000}'
}

fn is_small_number(v: &str) -> bool {
    let v = v.trim();
    !v.is_empty() && v.len() <= 5 && v.bytes().all(|b| b.is_ascii_digit())
}

/// Leading/trailing spaces and `<br>`s of a block are indentation, not content.
fn trim_edges(mut s: &str) -> &str {
    loop {
        let before = s.len();
        s = s.trim_matches(' ');
        s = s.strip_prefix("<br>").unwrap_or(s);
        s = s.strip_suffix("<br>").unwrap_or(s);
        if s.len() == before {
            return s;
        }
    }
}

fn push_attr(out: &mut String, name: &str, value: &str) {
    out.push(' ');
    out.push_str(name);
    out.push_str("=\"");
    for c in crate::model::xml_safe(value).chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn escape_text(t: &str, out: &mut String) {
    for c in t.chars() {
        escape_char(c, out);
    }
}

/// Escapes markup characters once and drops characters XML 1.0 forbids and invisible
/// format characters (see [`crate::model::is_stripped_char`]).
fn escape_char(c: char, out: &mut String) {
    match c {
        '&' => out.push_str("&amp;"),
        '<' => out.push_str("&lt;"),
        '>' => out.push_str("&gt;"),
        c if crate::model::is_stripped_char(c) => {}
        c => out.push(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scraper::{Html, Selector};

    fn clean(html: &str) -> Sanitized {
        let doc = Html::parse_document(&format!("<div id=r>{html}</div>"));
        let sel = Selector::parse("#r").unwrap();
        let root = doc.select(&sel).next().unwrap();
        let base = Url::parse("http://www.example.gov.cn/gzdt/202005/t1.html").unwrap();
        sanitize(root, &base, &HashSet::new())
    }

    #[test]
    fn drops_scripts_handlers_and_bad_urls() {
        let s = clean(
            r#"<p onclick="x()">正文<script>alert(1)</script><style>p{}</style></p>
               <a href="javascript:alert(1)">点我</a><a href=" /a.html " onmouseover="y">链接</a>
               <iframe src="http://evil/"></iframe><img src="javascript:alert(2)"><img src=x onerror=alert(3)>"#,
        );
        assert_eq!(
            s.html,
            r#"<p>正文</p>点我<a href="http://www.example.gov.cn/a.html">链接</a> <img src="http://www.example.gov.cn/gzdt/202005/x">"#
        );
    }

    #[test]
    fn file_and_other_schemes_are_dropped() {
        let s = clean(
            r#"<p><a href="file:///etc/passwd">密码</a><a href="FILE:///proc/self/environ">环境</a><a href="ftp://x/">f</a>
               <img src="file:///etc/passwd"><img data-src="file:///x.png" src="gopher://127.0.0.1/">正文</p>"#,
        );
        assert_eq!(s.html, "<p>密码环境f 正文</p>");
        assert!(s.images.is_empty());
    }

    #[test]
    fn hidden_and_overlay_content_is_gone() {
        let s = clean(
            r#"<p>可见</p><div style="display: none">广告</div><p hidden>隐藏</p><p style="position:fixed;top:0">浮层文字</p>"#,
        );
        assert_eq!(s.html, "<p>可见</p><p>浮层文字</p>");
    }

    #[test]
    fn lazy_relative_and_protocol_relative_images() {
        let s = clean(
            r#"<p><img src="/images/loading.gif" data-original="../u/lazy.jpg" alt="懒"></p>
               <p><img src="//img.example.cn/a.jpg"></p><p><img src="./W0.png" width="600" border="0"></p>
               <p><img src="./W0.png"></p>"#,
        );
        assert_eq!(
            s.images,
            [
                "http://www.example.gov.cn/gzdt/u/lazy.jpg",
                "http://img.example.cn/a.jpg",
                "http://www.example.gov.cn/gzdt/202005/W0.png"
            ]
        );
        assert!(s
            .html
            .contains(r#"<img src="http://www.example.gov.cn/gzdt/202005/W0.png" width="600">"#));
    }

    #[test]
    fn nbsp_indentation_and_empty_paragraphs_are_cleaned() {
        let s = clean("<p>&nbsp;&nbsp;&nbsp;&nbsp;\u{3000}第一段</p><p>&nbsp;</p><p><br></p><p><font face=黑体><strong>小标题</strong></font></p>");
        assert_eq!(s.html, "<p>第一段</p><p><strong>小标题</strong></p>");
    }

    #[test]
    fn text_is_escaped_once_and_controls_removed() {
        let s = clean("<p>A &amp; B &lt;c&gt; \u{f}ok</p><pre>  x\n  y</pre>");
        assert_eq!(s.html, "<p>A &amp; B &lt;c&gt; ok</p><pre>  x\n  y</pre>");
    }

    #[test]
    fn deep_nesting_does_not_overflow() {
        let deep = "<div>".repeat(5000) + "深" + &"</div>".repeat(5000);
        assert!(clean(&deep).html.contains('深'));
    }

    #[test]
    fn below_the_depth_limit_dropped_and_hidden_stay_dropped() {
        let inner =
            "<p>深<script>alert(1)</script><style>p{}</style><span hidden>藏</span>\u{202e}文</p>";
        let deep = "<div>".repeat(MAX_DEPTH + 10) + inner + &"</div>".repeat(MAX_DEPTH + 10);
        let html = clean(&deep).html;
        assert!(html.contains("深文"), "{html}");
        for leaked in ["alert", "p{}", "藏"] {
            assert!(!html.contains(leaked), "{leaked} in {html}");
        }
    }

    #[test]
    fn bidi_and_invisible_characters_are_dropped_from_text_and_attributes() {
        let s =
            clean("<p>a \u{200e} b\u{202e}c\u{feff}<a href=/x title=\"t\u{2067}\">l\u{9f}</a></p>");
        assert_eq!(
            s.html,
            r#"<p>a bc<a href="http://www.example.gov.cn/x" title="t">l</a></p>"#
        );
    }
}

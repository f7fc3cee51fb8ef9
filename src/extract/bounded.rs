//! HTML parsing with a bounded cost, because content is hostile: under the 10 MB body cap,
//! html5ever alone takes minutes on 200k nested `<div>`s (its tree builder walks the
//! stack of open elements for many tokens) or on one tag with 200k distinct attributes
//! (its tokenizer checks each new attribute against all earlier ones).
//!
//! Two guards, both before html5ever does the quadratic work, both inert on ordinary
//! pages:
//! - **Attributes per tag** ([`MAX_ATTRIBUTES`]): a shadow scanner walks the text with
//!   the tokenizer's own tag, attribute, comment and raw-text rules and feeds html5ever
//!   the text with every attribute past the cap cut out. The raw-text switches (script,
//!   style, title, textarea, plaintext...) depend on the tree builder (foreign content,
//!   `<select>`...), so the scanner does not guess them: after each start tag that can
//!   switch (script, style, title, ...) it feeds html5ever up to there and reads the
//!   switch the tree builder asked for (the CDATA check asks the tree builder the same way).
//! - **Nesting and elements** ([`MAX_OPEN`], [`MAX_ELEMENTS`]): a token filter between
//!   tokenizer and tree builder drops start tags (keeping their text) while the tree
//!   builder's open elements plus active formatting elements reach the cap, like Blink
//!   flattens nesting beyond 512, and after the page's first `MAX_ELEMENTS` elements;
//!   the end tags of dropped start tags are dropped with them.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use ego_tree::NodeId;
use html5ever::interface::Tracer;
use html5ever::tendril::StrTendril;
use html5ever::tokenizer::states::RawKind;
use html5ever::tokenizer::{
    BufferQueue, Tag, TagKind, Token, TokenSink, TokenSinkResult, Tokenizer, TokenizerOpts,
};
use html5ever::tree_builder::{TreeBuilder, TreeBuilderOpts, TreeSink};
use html5ever::{local_name, ns, LocalName, QualName, TokenizerResult};
use scraper::{Html, HtmlTreeSink};

/// Attributes kept per tag; the rest of the tag's attributes are cut out.
pub const MAX_ATTRIBUTES: usize = 256;
/// Open elements plus active formatting elements beyond which start tags are dropped.
pub const MAX_OPEN: usize = 512;
/// Elements per page; later start tags are dropped (their text is kept).
pub const MAX_ELEMENTS: usize = 100_000;

/// [`scraper::Html::parse_document`] with a bounded cost.
pub fn parse_document(text: &str) -> Html {
    let tb = TreeBuilder::new(
        HtmlTreeSink::new(Html::new_document()),
        TreeBuilderOpts::default(),
    );
    run(tb, TokenizerOpts::default(), text)
}

/// [`scraper::Html::parse_fragment`] (in a `<body>`) with a bounded cost.
pub fn parse_fragment(text: &str) -> Html {
    let sink = HtmlTreeSink::new(Html::new_fragment());
    let body = QualName::new(None, ns!(html), local_name!("body"));
    let context = html5ever::tree_builder::create_element(&sink, body, Vec::new());
    let tb = TreeBuilder::new_for_fragment(sink, context, None, TreeBuilderOpts::default());
    let opts = TokenizerOpts {
        initial_state: Some(tb.tokenizer_state_for_context_elem(false)),
        ..TokenizerOpts::default()
    };
    run(tb, opts, text)
}

fn run(tb: TreeBuilder<NodeId, HtmlTreeSink>, opts: TokenizerOpts, text: &str) -> Html {
    let tokenizer = Tokenizer::new(Guard::new(tb), opts);
    let input = StrTendril::from_slice(text);
    let mut feeder = Feeder {
        tokenizer: &tokenizer,
        input: &input,
        queue: BufferQueue::default(),
        fed: 0,
    };
    scan(text.as_bytes(), &mut feeder);
    feeder.feed_to(text.len());
    tokenizer.end();
    tokenizer.sink.tb.sink.finish()
}

/// Feeds html5ever the input up to a byte position, skipping cut-out ranges.
struct Feeder<'a> {
    tokenizer: &'a Tokenizer<Guard>,
    input: &'a StrTendril,
    queue: BufferQueue,
    fed: usize,
}

impl Feeder<'_> {
    fn feed_to(&mut self, end: usize) {
        if end <= self.fed {
            return;
        }
        // Byte positions here are always at ASCII delimiters, so char boundaries; the
        // input is under the body cap, far below u32::MAX.
        let (Ok(from), Ok(len)) = (u32::try_from(self.fed), u32::try_from(end - self.fed)) else {
            return;
        };
        self.queue.push_back(self.input.subtendril(from, len));
        self.fed = end;
        // A script end or a `<meta charset>` pauses the tokenizer; the text is already
        // decoded, so both just mean "go on".
        while !matches!(self.tokenizer.feed(&self.queue), TokenizerResult::Done) {}
    }

    /// Leaves `from..to` out of what html5ever sees.
    fn cut(&mut self, from: usize, to: usize) {
        self.feed_to(from);
        self.fed = self.fed.max(to);
    }

    /// The raw-text switch the tree builder asked for since the last call.
    fn switch(&self) -> Option<Switch> {
        self.tokenizer.sink.switch.take()
    }

    fn in_foreign_content(&mut self, at: usize) -> bool {
        self.feed_to(at);
        self.tokenizer
            .sink
            .tb
            .adjusted_current_node_present_but_not_in_html_namespace()
    }
}

#[derive(Debug, Clone, Copy)]
enum Switch {
    Raw(RawKind),
    Plaintext,
}

/// The start tags after which the tree builder may switch the tokenizer to raw text.
const SWITCHING: &[&str] = &[
    "title",
    "textarea",
    "style",
    "xmp",
    "iframe",
    "noembed",
    "noframes",
    "noscript",
    "script",
    "plaintext",
];

fn is_ws(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | b'\x0c' | b'\r' | b' ')
}

fn find(b: &[u8], from: usize, needle: u8) -> Option<usize> {
    b.get(from..)?
        .iter()
        .position(|&c| c == needle)
        .map(|i| i + from)
}

fn find_seq(b: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    b.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

/// `</name` followed by a tag delimiter at `at` (ASCII case-insensitive).
fn end_tag_of(b: &[u8], at: usize, name: &[u8]) -> bool {
    let after = at + 2 + name.len();
    b.get(at..at + 2) == Some(b"</")
        && b.get(at + 2..after)
            .is_some_and(|n| n.eq_ignore_ascii_case(name))
        && b.get(after)
            .is_some_and(|&c| is_ws(c) || c == b'/' || c == b'>')
}

/// Walks the text as html5ever's tokenizer does, cutting attributes past the cap.
fn scan(b: &[u8], feeder: &mut Feeder<'_>) {
    let mut p = 0;
    while p < b.len() {
        let Some(lt) = find(b, p, b'<') else { return };
        let next = b.get(lt + 1).copied();
        let after = match next {
            Some(c) if c.is_ascii_alphabetic() => {
                let Some(tag) = scan_tag(b, lt + 1, feeder) else {
                    return;
                };
                // Only these start tags can switch the tokenizer to raw text; feeding
                // html5ever just for them keeps the per-tag cost to the scan itself.
                if SWITCHING.contains(&tag.name.as_str()) {
                    feeder.feed_to(tag.end);
                }
                match feeder.switch() {
                    Some(Switch::Plaintext) => return,
                    Some(Switch::Raw(kind)) => match raw_text_end(b, tag.end, &tag.name, kind) {
                        Some(end_tag) => end_tag,
                        None => return,
                    },
                    None => tag.end,
                }
            }
            Some(b'/') => match b.get(lt + 2) {
                Some(c) if c.is_ascii_alphabetic() => match scan_tag(b, lt + 2, feeder) {
                    Some(tag) => tag.end,
                    None => return,
                },
                Some(b'>') => lt + 3,
                Some(_) => match find(b, lt + 2, b'>') {
                    Some(gt) => gt + 1,
                    None => return,
                },
                None => return,
            },
            Some(b'!') => match markup_declaration_end(b, lt, feeder) {
                Some(end) => end,
                None => return,
            },
            Some(b'?') => match find(b, lt + 1, b'>') {
                Some(gt) => gt + 1,
                None => return,
            },
            _ => lt + 1,
        };
        p = after;
    }
}

/// The end of a comment, doctype, CDATA section or bogus comment opening with `<!` at `lt`.
fn markup_declaration_end(b: &[u8], lt: usize, feeder: &mut Feeder<'_>) -> Option<usize> {
    let rest = b.get(lt + 2..)?;
    if rest.starts_with(b"--") {
        let body = lt + 4;
        // `<!-->` and `<!--->` end at once; otherwise the first `-->` or `--!>` does.
        if b.get(body) == Some(&b'>') {
            return Some(body + 1);
        }
        if b.get(body..body + 2) == Some(b"->") {
            return Some(body + 2);
        }
        let a = find_seq(b, body, b"-->").map(|i| i + 3);
        let c = find_seq(b, body, b"--!>").map(|i| i + 4);
        return match (a, c) {
            (Some(a), Some(c)) => Some(a.min(c)),
            (a, c) => a.or(c),
        };
    }
    if rest.starts_with(b"[CDATA[") && feeder.in_foreign_content(lt) {
        return find_seq(b, lt + 9, b"]]>").map(|i| i + 3);
    }
    // Doctype and bogus comments both end at the first `>`.
    find(b, lt + 2, b'>').map(|gt| gt + 1)
}

/// The start of the end tag that closes raw text begun at `from`, or `None` at EOF.
fn raw_text_end(b: &[u8], from: usize, name: &str, kind: RawKind) -> Option<usize> {
    let name = name.as_bytes();
    if !matches!(kind, RawKind::ScriptData | RawKind::ScriptDataEscaped(_)) {
        let mut p = from;
        loop {
            let lt = find(b, p, b'<')?;
            if end_tag_of(b, lt, name) {
                return Some(lt);
            }
            p = lt + 1;
        }
    }
    script_end(b, from)
}

/// Script data with its escaped (`<!--`) and double-escaped (`<!--<script>`) states.
fn script_end(b: &[u8], from: usize) -> Option<usize> {
    #[derive(Clone, Copy, PartialEq)]
    enum S {
        Data,
        Escaped,
        EscapedDash,
        EscapedDashDash,
        Double,
        DoubleDash,
        DoubleDashDash,
    }
    let starts_script = |p: usize| {
        b.get(p + 1..p + 7)
            .is_some_and(|n| n.eq_ignore_ascii_case(b"script"))
            && b.get(p + 7)
                .is_some_and(|&c| is_ws(c) || c == b'/' || c == b'>')
    };
    let mut s = S::Data;
    let mut p = from;
    while p < b.len() {
        let c = b[p];
        match s {
            S::Data => {
                if c == b'<' {
                    if end_tag_of(b, p, b"script") {
                        return Some(p);
                    }
                    if b.get(p..p + 4) == Some(b"<!--") {
                        s = S::EscapedDashDash;
                        p += 4;
                        continue;
                    }
                }
            }
            S::Escaped | S::EscapedDash | S::EscapedDashDash => {
                s = match (s, c) {
                    (S::EscapedDashDash, b'>') => S::Data,
                    (S::EscapedDashDash, b'-') | (S::EscapedDash, b'-') => S::EscapedDashDash,
                    (_, b'-') => S::EscapedDash,
                    (_, b'<') => {
                        if end_tag_of(b, p, b"script") {
                            return Some(p);
                        }
                        if starts_script(p) {
                            p += 8;
                            s = S::Double;
                            continue;
                        }
                        S::Escaped
                    }
                    _ => S::Escaped,
                };
            }
            S::Double | S::DoubleDash | S::DoubleDashDash => {
                s = match (s, c) {
                    (S::DoubleDashDash, b'>') => S::Data,
                    (S::DoubleDashDash, b'-') | (S::DoubleDash, b'-') => S::DoubleDashDash,
                    (_, b'-') => S::DoubleDash,
                    (_, b'<') => {
                        if end_tag_of(b, p, b"script") {
                            p += 9;
                            s = S::Escaped;
                            continue;
                        }
                        S::Double
                    }
                    _ => S::Double,
                };
            }
        }
        p += 1;
    }
    None
}

struct ScannedTag {
    /// Lowercased tag name.
    name: String,
    /// Just past the closing `>`.
    end: usize,
}

/// Scans a start or end tag whose name starts at `name_at`, cutting attributes past
/// [`MAX_ATTRIBUTES`] out of what html5ever sees. `None` at EOF inside the tag.
fn scan_tag(b: &[u8], name_at: usize, feeder: &mut Feeder<'_>) -> Option<ScannedTag> {
    #[derive(Clone, Copy, PartialEq)]
    enum S {
        BeforeName,
        Name,
        AfterName,
        BeforeValue,
        Quoted(u8),
        Unquoted,
        AfterQuoted,
        SelfClosing,
    }
    let mut p = name_at;
    while p < b.len() && !is_ws(b[p]) && b[p] != b'/' && b[p] != b'>' {
        p += 1;
    }
    let name = String::from_utf8_lossy(&b[name_at..p]).to_ascii_lowercase();
    let mut s = S::BeforeName;
    let mut attributes = 0usize;
    let mut cut_from = None;
    loop {
        let c = *b.get(p)?;
        match s {
            S::BeforeName | S::AfterName if is_ws(c) => {}
            S::BeforeName | S::AfterName | S::AfterQuoted | S::SelfClosing if c == b'>' => {
                if let Some(from) = cut_from {
                    // Resume at `/>` or `>`, so html5ever closes the tag as written.
                    let resume = if s == S::SelfClosing { p - 1 } else { p };
                    feeder.cut(from, resume);
                }
                return Some(ScannedTag { name, end: p + 1 });
            }
            S::BeforeName | S::AfterName | S::AfterQuoted | S::SelfClosing if c == b'/' => {
                s = S::SelfClosing
            }
            S::AfterName if c == b'=' => s = S::BeforeValue,
            S::BeforeName | S::AfterName | S::AfterQuoted | S::SelfClosing => {
                if is_ws(c) {
                    // After a quoted value or `/`: whitespace leads to a new attribute.
                    s = S::BeforeName;
                } else {
                    attributes += 1;
                    if attributes == MAX_ATTRIBUTES + 1 {
                        cut_from = Some(p);
                    }
                    s = S::Name;
                }
            }
            S::Name => {
                if is_ws(c) {
                    s = S::AfterName;
                } else if c == b'/' {
                    s = S::SelfClosing;
                } else if c == b'>' {
                    s = S::AfterName;
                    continue;
                } else if c == b'=' {
                    s = S::BeforeValue;
                }
            }
            S::BeforeValue => match c {
                _ if is_ws(c) => {}
                b'"' | b'\'' => s = S::Quoted(c),
                b'>' => {
                    s = S::AfterName;
                    continue;
                }
                _ => s = S::Unquoted,
            },
            S::Quoted(q) => {
                p = find(b, p, q)?;
                s = S::AfterQuoted;
            }
            S::Unquoted => {
                if is_ws(c) {
                    s = S::BeforeName;
                } else if c == b'>' {
                    s = S::AfterName;
                    continue;
                }
            }
        }
        p += 1;
    }
}

/// The token filter between tokenizer and tree builder (see the module comment).
struct Guard {
    tb: TreeBuilder<NodeId, HtmlTreeSink>,
    /// The raw-text switch the tree builder asked for, for the shadow scanner.
    switch: Cell<Option<Switch>>,
    state: RefCell<GuardState>,
}

#[derive(Default)]
struct GuardState {
    elements: usize,
    /// Open plus active formatting elements at the last count, and start tags since.
    counted: usize,
    since_count: usize,
    /// At the cap: start tags are dropped until an end tag closes something.
    flat: bool,
    /// Passed start tags not yet closed by a passed end tag, per name.
    open: HashMap<LocalName, u32>,
    /// Dropped start tags whose end tags are still to drop, per name.
    dropped: HashMap<LocalName, u32>,
    /// Inside a dropped element whose content no reader may see (a script, a style, a
    /// `hidden` element): every token is dropped until its end tag, so flattening never
    /// turns hidden text into visible text. (Name, nesting of that name.)
    mute: Option<(LocalName, u32)>,
    /// The raw-text switch a just-dropped start tag needs, for the tokenizer.
    raw_now: Option<Switch>,
}

/// What a dropped start tag's content must become.
enum Muted {
    /// Visible content: its text stays.
    No,
    /// Hidden content parsed as markup.
    Markup,
    /// Hidden content the tokenizer must read as raw text (the tree builder, which would
    /// have said so, never sees the start tag).
    Raw(Switch),
}

fn muted(tag: &Tag) -> Muted {
    match &*tag.name {
        "script" => Muted::Raw(Switch::Raw(RawKind::ScriptData)),
        "style" | "xmp" | "iframe" | "noembed" | "noframes" | "noscript" => {
            Muted::Raw(Switch::Raw(RawKind::Rawtext))
        }
        "textarea" | "title" => Muted::Raw(Switch::Raw(RawKind::Rcdata)),
        "plaintext" => Muted::Raw(Switch::Plaintext),
        "template" | "head" | "select" | "object" | "svg" | "math" => Muted::Markup,
        _ if tag
            .attrs
            .iter()
            .any(|a| matches!(&*a.name.local, "hidden" | "style")) =>
        {
            Muted::Markup
        }
        _ => Muted::No,
    }
}

/// Counts the handles the tree builder holds (document, open and formatting elements,
/// head, form).
struct Counter(Cell<usize>);

impl Tracer for Counter {
    type Handle = NodeId;
    fn trace_handle(&self, _: &NodeId) {
        self.0.set(self.0.get() + 1);
    }
}

fn is_void(name: &LocalName) -> bool {
    matches!(
        *name,
        local_name!("area")
            | local_name!("base")
            | local_name!("basefont")
            | local_name!("bgsound")
            | local_name!("br")
            | local_name!("col")
            | local_name!("embed")
            | local_name!("frame")
            | local_name!("hr")
            | local_name!("img")
            | local_name!("input")
            | local_name!("keygen")
            | local_name!("link")
            | local_name!("meta")
            | local_name!("param")
            | local_name!("source")
            | local_name!("track")
            | local_name!("wbr")
    )
}

impl Guard {
    fn new(tb: TreeBuilder<NodeId, HtmlTreeSink>) -> Self {
        Guard {
            tb,
            switch: Cell::new(None),
            state: RefCell::default(),
        }
    }

    /// The tree builder's held handles: exact, but O(depth), so taken only near the cap.
    fn count(&self) -> usize {
        let counter = Counter(Cell::new(0));
        self.tb.trace_handles(&counter);
        counter.0.get()
    }

    /// Whether the tag goes on to the tree builder; a dropped start tag of hidden content
    /// mutes everything up to its end tag (and may switch the tokenizer to raw text).
    fn admit(&self, tag: &Tag) -> bool {
        let mut st = self.state.borrow_mut();
        if let Some((name, depth)) = st.mute.as_mut() {
            if *name == tag.name {
                match tag.kind {
                    TagKind::StartTag if !tag.self_closing => *depth += 1,
                    TagKind::StartTag => {}
                    TagKind::EndTag => {
                        *depth -= 1;
                        if *depth == 0 {
                            st.mute = None;
                            if let Some(n) = st.dropped.get_mut(&tag.name).filter(|n| **n > 0) {
                                *n -= 1;
                            }
                        }
                    }
                }
            }
            return false;
        }
        let drop_start = |st: &mut GuardState| {
            match muted(tag) {
                Muted::No => {}
                Muted::Markup => st.mute = Some((tag.name.clone(), 1)),
                Muted::Raw(switch) => {
                    st.mute = Some((tag.name.clone(), 1));
                    st.raw_now = Some(switch);
                    self.switch.set(Some(switch));
                }
            }
            false
        };
        match tag.kind {
            TagKind::EndTag => {
                if let Some(n) = st.dropped.get_mut(&tag.name).filter(|n| **n > 0) {
                    *n -= 1;
                    return false;
                }
                if let Some(n) = st.open.get_mut(&tag.name).filter(|n| **n > 0) {
                    *n -= 1;
                    // It may close elements: count again before the next start tag.
                    st.flat = false;
                    return true;
                }
                // A stray end tag can make an element (`</p>` an empty p, `</br>` a br):
                // past a cap, it is dropped like the start tags.
                !(st.flat || st.elements >= MAX_ELEMENTS)
            }
            TagKind::StartTag => {
                if st.elements >= MAX_ELEMENTS {
                    return if tag.self_closing || is_void(&tag.name) {
                        false
                    } else {
                        drop_start(&mut st)
                    };
                }
                let void = tag.self_closing || is_void(&tag.name);
                if !void {
                    // Each start tag adds at most a few handles (itself, implied
                    // parents, reconstructed formatting elements): count only when the
                    // estimate nears the cap.
                    if !st.flat && st.counted + 4 * st.since_count >= MAX_OPEN / 2 {
                        st.counted = self.count();
                        st.since_count = 0;
                        st.flat = st.counted >= MAX_OPEN;
                    }
                    if st.flat {
                        *st.dropped.entry(tag.name.clone()).or_default() += 1;
                        return drop_start(&mut st);
                    }
                    *st.open.entry(tag.name.clone()).or_default() += 1;
                }
                st.elements += 1;
                st.since_count += 1;
                true
            }
        }
    }
}

impl TokenSink for Guard {
    type Handle = NodeId;

    fn process_token(&self, token: Token, line_number: u64) -> TokenSinkResult<NodeId> {
        match &token {
            // A dropped script or style still ends the tokenizer's markup mode, so its
            // text stays text and is muted with it.
            Token::TagToken(tag) if !self.admit(tag) => {
                return match self.state.borrow_mut().raw_now.take() {
                    Some(Switch::Raw(kind)) => TokenSinkResult::RawData(kind),
                    Some(Switch::Plaintext) => TokenSinkResult::Plaintext,
                    None => TokenSinkResult::Continue,
                };
            }
            Token::CharacterTokens(_) | Token::CommentToken(_) | Token::NullCharacterToken
                if self.state.borrow().mute.is_some() =>
            {
                return TokenSinkResult::Continue;
            }
            _ => {}
        }
        let result = self.tb.process_token(token, line_number);
        match &result {
            TokenSinkResult::RawData(kind) => self.switch.set(Some(Switch::Raw(*kind))),
            TokenSinkResult::Plaintext => self.switch.set(Some(Switch::Plaintext)),
            _ => {}
        }
        result
    }

    fn end(&self) {
        self.tb.end();
    }

    fn adjusted_current_node_present_but_not_in_html_namespace(&self) -> bool {
        self.tb
            .adjusted_current_node_present_but_not_in_html_namespace()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scraper::Selector;

    fn same_as_scraper(html: &str) {
        let ours = parse_document(html);
        let theirs = Html::parse_document(html);
        assert_eq!(ours.html(), theirs.html(), "{html}");
    }

    #[test]
    fn ordinary_markup_parses_as_scraper_does() {
        for html in [
            "<!doctype html><title>a<b>c</title><p class=x id='y' data-z=\"1>2\">hi<br/>there",
            "<script>if (a<b && c>d) {} <!-- <script>x</script> --> </script><div a=1>t</div>",
            "<style>p > a { }</style><textarea><b>not bold</b></textarea><xmp><i></xmp>",
            "<svg><title><a x='1'>t</a></title><style><b>z</b></style></svg><p>after",
            "<math><![CDATA[ <x> ]]></math><![CDATA[ x ]]><p>y",
            "<!-- c --><!--> <!---> <!-- a --!> <? pi > <a/b/c d=e>x</a>",
            "<table><tr><td>1<td>2</table><ul><li>a<li>b</ul><select><option>1<option>2</select>",
            "<noscript><p>n</p></noscript><plaintext><a href=x>y</a>",
            "<p>unclosed <b>bold <i>both</b> italic</i> &amp; &lt;done",
        ] {
            same_as_scraper(html);
        }
    }

    #[test]
    fn attributes_past_the_cap_are_cut() {
        let attrs: String = (0..1000).map(|i| format!(" a{i}=\"{i}\"")).collect();
        let html = format!("<div id=d{attrs}>text</div><p id=after>");
        let doc = parse_document(&html);
        let div = doc.select(&Selector::parse("#d").unwrap()).next().unwrap();
        assert_eq!(div.value().attrs().count(), MAX_ATTRIBUTES);
        assert!(div.text().any(|t| t == "text"));
        assert!(doc
            .select(&Selector::parse("p#after").unwrap())
            .next()
            .is_some());
    }

    #[test]
    fn deep_nesting_is_flattened_and_text_kept() {
        let n = 5000;
        let html = format!(
            "{}deep{}<p id=after>x</p>",
            "<div>".repeat(n),
            "</div>".repeat(n)
        );
        let doc = parse_document(&html);
        let divs = doc.select(&Selector::parse("div").unwrap()).count();
        assert!(divs < MAX_OPEN, "{divs} divs");
        assert!(doc.root_element().text().any(|t| t == "deep"));
        assert!(doc
            .select(&Selector::parse("body > p#after").unwrap())
            .next()
            .is_some());
    }

    #[test]
    fn hidden_content_past_the_caps_stays_hidden() {
        let hidden = "<script>alert(1)</script><style>p{}</style><i hidden>HIDDEN<b>x</b></i>\
                      <div style=\"display:none\">GONE</div><textarea>RAW</textarea>shown";
        for html in [
            format!("{}{hidden}", "<div>".repeat(2 * MAX_OPEN)),
            format!("{}{hidden}", "<br><p>".repeat(MAX_ELEMENTS)),
        ] {
            let doc = parse_document(&html);
            let text: String = doc.root_element().text().collect();
            for secret in ["alert(1)", "p{}", "HIDDEN", "GONE", "RAW"] {
                assert!(!text.contains(secret), "{secret} became text");
            }
            assert!(text.contains("shown"), "visible text after them is kept");
        }
    }

    #[test]
    fn elements_past_the_cap_are_dropped_and_text_kept() {
        let html = "<p>flat</p>".repeat(MAX_ELEMENTS + 1000) + "<p>last";
        let doc = parse_document(&html);
        let ps = doc.select(&Selector::parse("p").unwrap()).count();
        assert!(ps <= MAX_ELEMENTS, "{ps} p elements");
        assert!(doc.root_element().text().any(|t| t.contains("last")));
    }

    const SOUP: &[&str] = &[
        "<div>",
        "</div>",
        "<script>",
        "</script>",
        "<script",
        "<!--",
        "-->",
        "--!>",
        "<p a=1 b='2' c=\"3\">",
        "<svg>",
        "</svg>",
        "<math>",
        "<title>",
        "</title>",
        "<textarea>",
        "</textarea>",
        "<style>",
        "</style>",
        "<xmp>",
        "<noscript>",
        "<plaintext>",
        "<select>",
        "<option>",
        "<table>",
        "<td>",
        "<b>",
        "</b>",
        "<i x=y/>",
        "<![CDATA[",
        "]]>",
        "<!doctype html>",
        "<meta charset=utf-8>",
        "<?x>",
        "</ x>",
        "x",
        "<",
        ">",
        "/",
        "=",
        "\"",
        "'",
        " ",
        "\n",
        "&amp;",
        "&lt",
        "中文",
    ];

    proptest::proptest! {
        /// Below the caps the bounded parser changes nothing, whatever the tag soup.
        #[test]
        fn tag_soup_parses_as_scraper_does(
            parts in proptest::collection::vec(proptest::sample::select(SOUP), 0..60),
        ) {
            let html = parts.concat();
            proptest::prop_assert_eq!(parse_document(&html).html(), Html::parse_document(&html).html());
            proptest::prop_assert_eq!(parse_fragment(&html).html(), Html::parse_fragment(&html).html());
        }
    }

    #[test]
    fn meta_charset_does_not_stop_the_parse() {
        let lis: String = (0..3).map(|i| format!("<li><span class=\"date\">2020-05-12</span><a href=\"a{i}.html\" title=\"t{i}\">t{i}</a></li>\n")).collect();
        let html = format!("<html><head><meta charset=\"utf-8\"></head><body><div class=\"list\"><ul>\n{lis}</ul></div></body></html>");
        same_as_scraper(&html);
    }

    #[test]
    fn fragments_parse_as_scraper_does() {
        let html = "<p>a <b>b</b></p><script>x<y</script>";
        assert_eq!(
            parse_fragment(html).html(),
            Html::parse_fragment(html).html()
        );
    }
}

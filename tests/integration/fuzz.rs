//! Property tests on hostile input, bounded so `cargo test` stays fast: mutated selector
//! files, generated hostile HTML through extraction and the sanitizer, and arbitrary item
//! text through the Atom writer, whose output must stay well-formed XML that feed-rs
//! reads back.

use std::path::{Path, PathBuf};

use chrono::{TimeZone, Utc};
use feedbridge::extract::{extract_article, extract_list, normalize_text};
use feedbridge::feed::{render, FeedMeta};
use feedbridge::model::StoredItem;
use feedbridge::model::{is_stripped_char, xml_safe, Item, ListEntry, Page};
use feedbridge::site::{self, Source};
use proptest::prelude::*;
use url::Url;

use crate::support::{root, TempDir};
use crate::xss::violations;

// ---------------------------------------------------------------- selector files

/// The bundled selector files and the broken ones: mutation starts from real text.
fn seed_selector_files() -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for dir in ["selectors", "fixtures/invalid"] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
            .expect("seed dir")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect();
        files.sort();
        for f in files {
            let bytes = std::fs::read(&f).expect("seed file");
            out.push((f, bytes));
        }
    }
    out
}

#[derive(Debug, Clone)]
enum Mutation {
    FlipBit { at: usize, bit: u8 },
    Truncate { at: usize },
    Insert { at: usize, junk: Vec<u8> },
    DuplicateLine { line: usize },
    DeleteLine { line: usize },
}

/// Junk that means something to TOML, CSS, regexes, cron or UTF-8 decoders.
const JUNK: &[&[u8]] = &[
    b"\"",
    b"'",
    b"'''",
    b"\"\"\"",
    b"[",
    b"]",
    b"[[",
    b"]]",
    b"{",
    b"}",
    b"=",
    b",",
    b"\n",
    b"\r\n",
    b"\\",
    b"\\u",
    b"\\U0011FFFF",
    b"#",
    b"\0",
    b"\xff",
    b"\xe4\xb8",
    b"\xc3\x28",
    b"\xef\xbb\xbf",
    b"\xe2\x80\xae",
    b"::",
    b"*",
    b"(?P<",
    b")",
    b"(",
    b"[list]\n",
    b"[article]\n",
    b"x = 1\n",
    b"start = []\n",
    b"timezone = \"Mars/Olympus\"\n",
    b"schedule = \"* * *\"\n",
    b"css = \"a[\"",
    b"regex = '('",
    b"max_pages = -1\n",
    b"max_items = 99999999999999999999\n",
    b"1979-05-27T07:32:00Z",
    b"inf",
    b"nan",
    b"0x",
    b"\t",
];

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::FlipBit { at, bit }),
        any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        (
            any::<usize>(),
            prop_oneof![
                proptest::sample::select(JUNK).prop_map(<[u8]>::to_vec),
                proptest::collection::vec(any::<u8>(), 1..8),
            ]
        )
            .prop_map(|(at, junk)| Mutation::Insert { at, junk }),
        any::<usize>().prop_map(|line| Mutation::DuplicateLine { line }),
        any::<usize>().prop_map(|line| Mutation::DeleteLine { line }),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    let len = bytes.len();
    match *m {
        Mutation::FlipBit { at, bit } if len > 0 => bytes[at % len] ^= 1 << bit,
        Mutation::Truncate { at } => bytes.truncate(at % (len + 1)),
        Mutation::Insert { at, ref junk } => {
            let at = at % (len + 1);
            bytes.splice(at..at, junk.iter().copied());
        }
        Mutation::DuplicateLine { line } | Mutation::DeleteLine { line } => {
            let mut lines: Vec<Vec<u8>> =
                bytes.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
            let i = line % lines.len();
            if matches!(m, Mutation::DuplicateLine { .. }) {
                let copy = lines[i].clone();
                lines.insert(i, copy);
            } else {
                lines.remove(i);
            }
            *bytes = lines.join(&b'\n');
        }
        Mutation::FlipBit { .. } => {}
    }
}

/// Every problem must point into the text: a line that exists, a column at most one past
/// it, and a message.
fn check_position(text: &str, e: &site::SiteError) -> Result<(), TestCaseError> {
    let lines: Vec<&str> = text.split('\n').collect();
    prop_assert!(!e.problems.is_empty(), "an error without problems: {e}");
    for p in &e.problems {
        prop_assert!(
            (1..=lines.len()).contains(&p.line),
            "line {} of {}: {e}",
            p.line,
            lines.len()
        );
        let width = lines[p.line - 1].chars().count();
        prop_assert!(
            (1..=width + 1).contains(&p.column),
            "column {} of a {width}-char line: {e}",
            p.column
        );
        prop_assert!(!p.message.trim().is_empty(), "empty message: {e}");
    }
    let shown = e.to_string();
    let prefix = format!(
        "{}:{}:{}: ",
        e.path.display(),
        e.problems[0].line,
        e.problems[0].column
    );
    prop_assert!(shown.starts_with(&prefix), "{shown:?} lacks {prefix:?}");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn mutated_selector_files_compile_or_fail_with_a_position(
        seed in any::<proptest::sample::Index>(),
        mutations in proptest::collection::vec(mutation(), 1..6),
    ) {
        let seeds = seed_selector_files();
        let (path, original) = &seeds[seed.index(seeds.len())];
        let mut bytes = original.clone();
        for m in &mutations {
            apply(&mut bytes, m);
        }
        let text = String::from_utf8_lossy(&bytes);
        if let Err(e) = site::compile(path, &text) {
            check_position(&text, &e)?;
        }
        // The raw bytes through the file loader too (not UTF-8 is its own error).
        let tmp = TempDir::new("fuzz-selector");
        let file = tmp.join(&path.file_name().expect("file name").to_string_lossy());
        std::fs::write(&file, &bytes).expect("write mutated file");
        match (site::load(&file), std::str::from_utf8(&bytes)) {
            (Err(e), Ok(text)) => check_position(text, &e)?,
            (Err(e), Err(_)) => prop_assert!(e.problems.iter().all(|p| p.line >= 1 && p.column >= 1), "{e}"),
            (Ok(_), Ok(_)) => {}
            (Ok(_), Err(_)) => prop_assert!(false, "a non-UTF-8 file compiled"),
        }
    }
}

// ---------------------------------------------------------------- hostile HTML

const TAGS: &[&str] = &[
    "p",
    "div",
    "span",
    "a",
    "img",
    "b",
    "table",
    "tr",
    "td",
    "ul",
    "li",
    "pre",
    "script",
    "style",
    "svg",
    "math",
    "mtext",
    "mglyph",
    "template",
    "noscript",
    "noembed",
    "select",
    "option",
    "textarea",
    "title",
    "iframe",
    "object",
    "form",
    "button",
    "base",
    "meta",
    "font",
    "xmp",
    "plaintext",
    "h1",
    "blockquote",
    "foreignObject",
    "annotation-xml",
    "x-custom",
];

const ATTR_NAMES: &[&str] = &[
    "href",
    "src",
    "data-src",
    "data-original",
    "onerror",
    "onload",
    "onclick",
    "style",
    "title",
    "alt",
    "hidden",
    "aria-hidden",
    "srcdoc",
    "formaction",
    "xlink:href",
    "action",
    "width",
    "colspan",
    "class",
    "id",
];

const ATTR_VALUES: &[&str] = &[
    "javascript:alert(1)",
    "jav&#x09;ascript:alert(1)",
    "&#x6A;avascript:alert(1)",
    " JaVaScRiPt:alert(1)",
    "vbscript:x",
    "data:text/html,<script>alert(1)</script>",
    "data:image/svg+xml,<svg onload=alert(1)>",
    "data:image/png;base64,iVBORw0KGgo",
    "//evil.example/x",
    "/a.png",
    "../x.html",
    "http://ok.example/a.jpg",
    "display:none",
    "position:fixed;top:0",
    "width:expression(alert(1))",
    "background:url(javascript:alert(1))",
    "\"><script>alert(1)</script>",
    "true",
    "12345678",
    "&#0;&#xD800;&#x110000;&#xFFFE;",
];

/// Text with weird entities, controls and markup-looking characters.
fn hostile_text() -> impl Strategy<Value = String> {
    let pieces = prop_oneof![
        Just("&".to_owned()),
        Just("&amp".to_owned()),
        Just("&#0;".to_owned()),
        Just("&#xD800;".to_owned()),
        Just("&#x110000;".to_owned()),
        Just("&#99999999999;".to_owned()),
        Just("&#x202E;".to_owned()),
        Just("&#65279;".to_owned()),
        Just("&nbsp;&#12288;".to_owned()),
        Just("&notin;&notit;&unknown;".to_owned()),
        Just("<!--".to_owned()),
        Just("--!>".to_owned()),
        Just("<![CDATA[x]]>".to_owned()),
        Just("]]>".to_owned()),
        Just("</".to_owned()),
        Just("<".to_owned()),
        Just("\u{0}\u{1}\u{b}\u{1f}\u{7f}\u{85}\u{9f}".to_owned()),
        Just("\u{202a}\u{202e}\u{2066}\u{2069}\u{200e}\u{200f}\u{61c}\u{feff}".to_owned()),
        Just("\u{fffe}\u{ffff}".to_owned()),
        Just("正文".to_owned()),
        "[a-z ]{0,12}",
        any::<String>().prop_map(|s| s.chars().take(12).collect()),
    ];
    proptest::collection::vec(pieces, 0..6).prop_map(|v| v.concat())
}

fn attribute() -> impl Strategy<Value = String> {
    (
        proptest::sample::select(ATTR_NAMES),
        prop_oneof![
            proptest::sample::select(ATTR_VALUES).prop_map(str::to_owned),
            hostile_text()
        ],
        0..3u8,
    )
        .prop_map(|(name, value, quote)| match quote {
            0 => format!(" {name}=\"{}\"", value.replace('"', "&quot;")),
            1 => format!(" {name}='{value}'"),
            _ => format!(" {name}={value}"),
        })
}

/// A random tree as HTML text; end tags are sometimes left out.
fn hostile_html() -> impl Strategy<Value = String> {
    let leaf = hostile_text();
    leaf.prop_recursive(6, 64, 6, |inner| {
        (
            proptest::sample::select(TAGS),
            proptest::collection::vec(attribute(), 0..4),
            proptest::collection::vec(inner, 0..5),
            any::<bool>(),
        )
            .prop_map(|(tag, attrs, children, close)| {
                let mut s = format!("<{tag}{}>", attrs.concat());
                for c in children {
                    s.push_str(&c);
                }
                if close {
                    s.push_str(&format!("</{tag}>"));
                }
                s
            })
    })
}

/// Deep nesting (moderate: parse bounds are another module's business) or one element
/// with very many attributes.
fn deep_html() -> impl Strategy<Value = String> {
    let nested = (
        proptest::sample::select(&["div", "b", "table", "li", "a", "svg", "span", "p"][..]),
        1usize..2000,
        any::<bool>(),
    )
        .prop_map(|(tag, depth, close)| {
            let mut s = format!("<{tag} style=x>").repeat(depth);
            s.push_str("深<script>alert(1)</script>XSS<i hidden>XSSHIDDEN</i>");
            if close {
                s.push_str(&format!("</{tag}>").repeat(depth));
            }
            s
        });
    let wide = (1usize..1500).prop_map(|n| {
        let attrs: String = (0..n)
            .map(|i| format!(" data-a{i}=\"{i}\" on{i}=y"))
            .collect();
        format!("<img src=/a.png{attrs}><a href=/b{attrs}>宽</a>")
    });
    prop_oneof![nested, wide]
}

fn fuzz_site() -> site::Site {
    let toml = r##"
title = "fuzz"
start = ["http://news.example.gov.cn/gzdt/"]
timezone = "Asia/Shanghai"
[list]
item = "li"
link = "a"
date = "span"
[article]
title = "h1"
date = ".date"
source = ".source"
body = "#c"
remove = [".ad"]
"##;
    site::compile(Path::new("fuzz.toml"), toml).expect("fuzz selector compiles")
}

fn check_text(what: &str, t: &Option<String>) -> Result<(), TestCaseError> {
    if let Some(t) = t {
        prop_assert!(
            !t.chars().any(is_stripped_char),
            "{what} keeps an invisible character: {t:?}"
        );
        prop_assert!(t.trim() == t, "{what} is not trimmed: {t:?}");
    }
    Ok(())
}

/// Extraction of `body` (bytes labelled `content_type`): no panic, and nothing unsafe or
/// invisible in what comes out.
fn check_extraction(body: Vec<u8>, content_type: Option<&str>) -> Result<(), TestCaseError> {
    let site = fuzz_site();
    let base = Url::parse("http://news.example.gov.cn/gzdt/202005/t1.html").expect("url");
    let now = Utc
        .with_ymd_and_hms(2026, 11, 29, 0, 0, 0)
        .single()
        .expect("now");
    let page = Page {
        url: base.clone(),
        body: body.into(),
        content_type: content_type.map(str::to_owned),
    };
    if let Source::List { rules, .. } = &site.source {
        let list = extract_list(&page, &site, rules, now);
        for e in &list.entries {
            check_text("list title", &e.title)?;
        }
    }
    let rules = site.article.as_ref().expect("article rules");
    let entry = ListEntry {
        url: Some(base.clone()),
        ..ListEntry::default()
    };
    let item = extract_article(&page, &site, rules, &entry, now);
    check_text("title", &item.title)?;
    check_text("source", &item.source)?;
    if let Some(html) = &item.content {
        let bad = violations(html, &base);
        prop_assert!(bad.is_empty(), "{bad:?} in {html:?}");
        prop_assert!(
            !html.chars().any(is_stripped_char),
            "invisible character in {html:?}"
        );
        prop_assert!(
            !html.contains("alert(1)") || !html.contains("<script"),
            "{html:?}"
        );
    }
    Ok(())
}

fn page_around(body: &str) -> String {
    format!(
        "<html><head><meta charset=utf-8><title>t</title></head><body><h1>{body}</h1>\
         <span class=date>2020-05-12</span><span class=source>{body}</span>\
         <ul><li><a href=/a.html>{body}</a></li></ul><div id=c>{body}<div class=ad>ad</div></div></body></html>"
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn hostile_html_extracts_safely(body in hostile_html()) {
        check_extraction(page_around(&body).into_bytes(), Some("text/html; charset=utf-8"))?;
    }

    #[test]
    fn random_bytes_in_any_declared_encoding_extract_safely(
        bytes in proptest::collection::vec(any::<u8>(), 0..2000),
        label in proptest::sample::select(&[
            None, Some("text/html; charset=gbk"), Some("text/html; charset=utf-8"),
            Some("text/html; charset=gb2312"), Some("text/html; charset=x-unknown"),
            Some("text/html; charset=utf-16le"), Some("text/html; charset=\"big5"),
        ][..]),
    ) {
        // The bytes both alone and inside a page (so the selectors see them in place).
        check_extraction(bytes.clone(), label)?;
        let page = page_around("\u{1}MARK\u{1}");
        let mut framed = Vec::new();
        for (i, part) in page.split("\u{1}MARK\u{1}").enumerate() {
            if i > 0 {
                framed.extend_from_slice(&bytes);
            }
            framed.extend_from_slice(part.as_bytes());
        }
        check_extraction(framed, label)?;
    }
}

proptest! {
    // Deep pages are slow to parse in a debug build: fewer cases.
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn deep_and_attribute_heavy_html_extracts_safely(body in deep_html()) {
        let page = format!("<html><body><h1>t</h1><div id=c>{body}</div></body></html>");
        check_extraction(page.into_bytes(), None)?;
    }
}

// ---------------------------------------------------------------- the Atom writer

/// Text a feed must survive: every char class XML cares about, and now and then a huge one.
fn feed_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        any::<char>().prop_map(String::from),
        proptest::sample::select(
            &[
                "]]>",
                "&",
                "&amp;",
                "<",
                ">",
                "\"",
                "'",
                "\r\n",
                "\r",
                "\t",
                "\u{0}",
                "\u{8}",
                "\u{b}",
                "\u{1f}",
                "\u{7f}",
                "\u{85}",
                "\u{202e}",
                "\u{2066}",
                "\u{200f}",
                "\u{61c}",
                "\u{feff}",
                "\u{fffe}",
                "\u{ffff}",
                "\u{fffd}",
                "\u{10ffff}",
                "<![CDATA[",
                "-->",
                "<script>",
                "&#0;",
                "&#x1;",
                " ",
                "正文",
                "👩\u{200d}💻",
            ][..]
        )
        .prop_map(str::to_owned),
    ];
    prop_oneof![
        80 => proptest::collection::vec(piece.clone(), 0..24).prop_map(|v| v.concat()),
        1 => (piece, 20_000usize..100_000).prop_map(|(p, n)| p.repeat(n / p.len().max(1))),
    ]
}

/// A stored item as the store would hand it to the writer.
pub fn stored(item: &Item, seen_ms: i64) -> StoredItem {
    let at = Utc.timestamp_millis_opt(seen_ms).single().expect("time");
    serde_json::from_value(serde_json::json!({
        "item": item,
        "first_seen": at,
        "updated": at,
        "sort_ms": seen_ms,
        "hash": "",
    }))
    .expect("a StoredItem from its JSON form")
}

/// Well-formed XML 1.0 by quick-xml's reader plus the character rules it does not check.
fn check_well_formed(xml: &str) -> Result<(), TestCaseError> {
    use quick_xml::events::Event;
    if let Some(c) = xml.chars().find(|c| {
        !matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..)
    }) {
        return Err(TestCaseError::fail(format!("XML-illegal character {c:?}")));
    }
    let mut reader = quick_xml::Reader::from_str(xml);
    reader.config_mut().check_end_names = true;
    let (mut depth, mut roots) = (0usize, 0usize);
    loop {
        let event = reader.read_event().map_err(|e| {
            TestCaseError::fail(format!("not XML at {}: {e}", reader.buffer_position()))
        })?;
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                roots += usize::from(depth == 0);
                for a in e.attributes() {
                    let a = a.map_err(|e| TestCaseError::fail(format!("attribute: {e}")))?;
                    a.decoded_and_normalized_value(
                        quick_xml::XmlVersion::Explicit1_0,
                        reader.decoder(),
                    )
                    .map_err(|e| TestCaseError::fail(format!("attribute value: {e}")))?;
                }
                depth += usize::from(matches!(event, Event::Start(_)));
            }
            Event::Text(ref t)
                if depth == 0 && !t.decode().unwrap_or_default().trim().is_empty() =>
            {
                return Err(TestCaseError::fail("text outside the root element"));
            }
            Event::End(_) => depth = depth.saturating_sub(1),
            Event::GeneralRef(r) => {
                let name = r.decode().map_err(|e| TestCaseError::fail(e.to_string()))?;
                quick_xml::escape::unescape(&format!("&{name};"))
                    .map_err(|e| TestCaseError::fail(format!("reference &{name};: {e}")))?;
            }
            Event::Eof => break,
            _ => {}
        }
    }
    prop_assert_eq!(roots, 1);
    Ok(())
}

/// What a reader shows: the XML parser turns line ends into `\n`; we compare words.
fn words(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_item_text_renders_as_a_feed_that_reads_back(
        feed_title in feed_text(),
        items in proptest::collection::vec(
            (feed_text(), feed_text(), proptest::option::of(feed_text()), feed_text()),
            1..4,
        ),
    ) {
        let meta = FeedMeta {
            site_id: "fuzz".into(),
            title: feed_title.clone(),
            home: Some("http://news.example.gov.cn/".into()),
            self_url: "http://127.0.0.1:8080/feeds/fuzz.xml".into(),
            language: Some("zh-CN".into()),
            timezone: chrono_tz::Asia::Shanghai,
        };
        let stored_items: Vec<StoredItem> = items
            .iter()
            .enumerate()
            .map(|(i, (title, source, content, category))| {
                let item = Item {
                    url: format!("http://news.example.gov.cn/a/{i}.html"),
                    title: Some(title.clone()),
                    source: Some(source.clone()),
                    content: content.clone(),
                    categories: vec![category.clone()],
                    images: vec![format!("http://news.example.gov.cn/{i}.png"), "data:image/png;base64,\u{1}\u{202e}".into()],
                    ..Item::default()
                };
                stored(&item, 1_700_000_000_000 - i as i64 * 1000)
            })
            .collect();
        let now = Utc.with_ymd_and_hms(2026, 11, 29, 0, 0, 0).single().expect("now");
        let bytes = render(&meta, &stored_items, now);
        prop_assert!(!bytes.is_empty(), "the writer failed");
        let xml = std::str::from_utf8(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
        check_well_formed(xml)?;
        prop_assert!(!xml.chars().any(is_stripped_char), "an invisible character in the feed");

        let feed = feed_rs::parser::parse(bytes.as_slice())
            .map_err(|e| TestCaseError::fail(format!("feed-rs: {e}")))?;
        prop_assert_eq!(feed.entries.len(), stored_items.len());
        let feed_title_read = feed.title.map(|t| t.content).unwrap_or_default();
        prop_assert_eq!(words(&feed_title_read), words(&xml_safe(&feed_title)));
        for (entry, (title, source, content, _)) in feed.entries.iter().zip(&items) {
            let read = entry.title.as_ref().map(|t| t.content.as_str()).unwrap_or_default();
            let expected = words(&xml_safe(title));
            if !expected.is_empty() {
                prop_assert_eq!(words(read), expected);
            } else {
                prop_assert!(!read.trim().is_empty(), "an entry without a title");
            }
            let author = entry.authors.first().and_then(|a| a.name.as_deref()).unwrap_or_default();
            let expected = words(&xml_safe(source));
            if !expected.is_empty() {
                prop_assert_eq!(words(author), expected);
            }
            if let Some(content) = content {
                let body = entry.content.as_ref().and_then(|c| c.body.as_deref()).unwrap_or_default();
                prop_assert_eq!(words(body), words(&xml_safe(content)));
            }
        }
    }
}

#[test]
fn normalize_text_drops_invisible_characters_before_collapsing_spaces() {
    let parts = [
        "\u{feff} a \u{200e} b\u{202e}c",
        "\u{2066}\u{a0}\u{3000}d\u{1}\u{85}e\u{ffff} ",
    ];
    assert_eq!(normalize_text(parts.into_iter()), "a bc d e");
}

//! RSS 2.0 rendering, for the readers and scripts that take nothing else. Pure, like the
//! Atom renderer, and written by hand: the document is small and fixed, and each text is
//! escaped exactly once, here.
//!
//! Follows the RSS Advisory Board's profile as the W3C feed validator checks it: the
//! channel's `title`/`link`/`description`, an `atom:link rel="self"`, RFC 822 dates in
//! the site's offset, a `guid isPermaLink="false"` that is the Atom entry's id, and at
//! most one `enclosure` per item (the validator warns on more; every image stays in the
//! body and in the other formats).

use chrono::{DateTime, FixedOffset, Utc};

use super::{FeedMeta, ItemView, KnownImages};
use crate::model::{xml_safe, StoredItem};

/// Renders the feed; `items` are newest first and already cut to `max_items`.
///
/// The channel's `link` is the site's home; without one, the feed itself (the serving
/// side passes the page the site is read from instead, so the self URL appears once).
/// `hub` names a WebSub hub; the enclosures of `known` images carry their length and type.
pub fn render(
    meta: &FeedMeta,
    hub: Option<&str>,
    items: &[StoredItem],
    known: &KnownImages,
    now: DateTime<Utc>,
) -> Vec<u8> {
    let tz = meta.timezone;
    let local = |t: DateTime<Utc>| -> DateTime<FixedOffset> { t.with_timezone(&tz).fixed_offset() };
    let mut out = String::with_capacity(1024 + items.len() * 2048);
    out.push_str(concat!(
        r#"<?xml version="1.0" encoding="UTF-8"?>"#,
        "\n",
        r#"<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom" xmlns:content="http://purl.org/rss/1.0/modules/content/" xmlns:dc="http://purl.org/dc/elements/1.1/">"#,
        "\n<channel>\n"
    ));
    let title = xml_safe(&meta.title);
    element(&mut out, "title", &title);
    element(
        &mut out,
        "link",
        &xml_safe(meta.home.as_deref().unwrap_or(&meta.self_url)),
    );
    element(&mut out, "description", &title);
    if let Some(lang) = &meta.language {
        element(&mut out, "language", &xml_safe(lang));
    }
    let built = items.iter().map(|s| s.updated).max().unwrap_or(now);
    element(&mut out, "lastBuildDate", &rfc822(local(built)));
    element(
        &mut out,
        "generator",
        concat!("feedbridge ", env!("CARGO_PKG_VERSION")),
    );
    out.push_str("<atom:link href=\"");
    escape_into(&mut out, &xml_safe(&meta.self_url));
    out.push_str("\" rel=\"self\" type=\"application/rss+xml\"/>\n");
    if let Some(hub) = hub {
        out.push_str("<atom:link href=\"");
        escape_into(&mut out, &xml_safe(hub));
        out.push_str("\" rel=\"hub\"/>\n");
    }
    for s in items {
        item(&mut out, s, known, local);
    }
    out.push_str("</channel>\n</rss>\n");
    out.into_bytes()
}

fn item(
    out: &mut String,
    s: &StoredItem,
    known: &KnownImages,
    local: impl Fn(DateTime<Utc>) -> DateTime<FixedOffset>,
) {
    let view = ItemView::of(s, known);
    out.push_str("<item>\n");
    element(out, "title", &view.title);
    element(out, "link", &view.url);
    if !view.summary.is_empty() {
        element(out, "description", &view.summary);
    }
    if let Some(author) = &view.author {
        element(out, "dc:creator", author);
    }
    for c in &view.categories {
        element(out, "category", c);
    }
    out.push_str("<guid isPermaLink=\"false\">");
    escape_into(out, &view.id);
    out.push_str("</guid>\n");
    // The date the page gave, else when we first saw the item: readers sort by it.
    let date = s
        .item
        .published
        .map_or_else(|| local(s.first_seen), |p| local(p.with_timezone(&Utc)));
    element(out, "pubDate", &rfc822(date));
    if let Some(img) = view.images.first() {
        // RSS requires a length; 0 is the accepted value when it is unknown (an image
        // not in the proxy's cache).
        out.push_str("<enclosure url=\"");
        escape_into(out, &img.url);
        out.push_str("\" length=\"");
        out.push_str(&img.length.unwrap_or(0).to_string());
        out.push_str("\" type=\"");
        out.push_str(img.mime);
        out.push_str("\"/>\n");
    }
    if let Some(html) = &view.content {
        element(out, "content:encoded", html);
    }
    out.push_str("</item>\n");
}

/// RFC 822 with a two-digit day and a four-digit year (chrono's RFC 2822 writes `1 May`,
/// which validators accept but many scripts' fixed-width parsers do not).
fn rfc822(t: DateTime<FixedOffset>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S %z").to_string()
}

fn element(out: &mut String, name: &str, text: &str) {
    out.push('<');
    out.push_str(name);
    out.push('>');
    escape_into(out, text);
    out.push_str("</");
    out.push_str(name);
    out.push_str(">\n");
}

/// Escapes for text and double-quoted attributes alike, as quick-xml does (the serving
/// side splices the public base into the self link escaped the same way).
pub(crate) fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Item;
    use chrono::TimeZone;

    fn stored(item: Item, at: DateTime<Utc>) -> StoredItem {
        StoredItem {
            item,
            first_seen: at,
            updated: at,
            sort_ms: at.timestamp_millis(),
            hash: String::new(),
        }
    }

    #[test]
    fn dates_are_rfc_822_in_the_site_offset_and_text_is_escaped_once() {
        let tz = chrono_tz::Asia::Shanghai;
        let meta = FeedMeta {
            site_id: "s".into(),
            title: "A & B \u{1}".into(),
            home: None,
            self_url: "http://h/feeds/s.rss?a=1&b='".into(),
            language: Some("zh-CN".into()),
            timezone: tz,
        };
        let at = Utc.with_ymd_and_hms(2020, 5, 11, 16, 0, 0).unwrap();
        let item = Item {
            url: "http://a/1?x=1&y=2".into(),
            title: Some("<b>T</b>".into()),
            published: Some(at.fixed_offset()),
            content: Some("<p>x &amp; y</p>".into()),
            images: vec![
                "data:x".into(),
                "http://a/i.png".into(),
                "http://a/j.gif".into(),
            ],
            ..Item::default()
        };
        let xml =
            String::from_utf8(crate::feed::Format::Rss.render(&meta, &[stored(item, at)], at))
                .unwrap();
        assert!(
            xml.contains("<pubDate>Tue, 12 May 2020 00:00:00 +0800</pubDate>"),
            "{xml}"
        );
        assert!(xml.contains("<title>A &amp; B </title>"), "{xml}");
        assert!(xml.contains("<title>&lt;b&gt;T&lt;/b&gt;</title>"), "{xml}");
        assert!(xml.contains("<link>http://a/1?x=1&amp;y=2</link>"), "{xml}");
        assert!(
            xml.contains(r#"href="http://h/feeds/s.rss?a=1&amp;b=&apos;""#),
            "{xml}"
        );
        assert!(xml.contains("<link>http://h/feeds/s.rss?a=1&amp;b=&apos;</link>"));
        assert!(xml.contains(r#"<enclosure url="http://a/i.png" length="0" type="image/png"/>"#));
        assert_eq!(xml.matches("<enclosure").count(), 1);
        assert!(xml.contains("<content:encoded>&lt;p&gt;x &amp;amp; y&lt;/p&gt;</content:encoded>"));
        assert!(xml.contains("<description>x &amp; y</description>"));
        assert!(!xml.contains('\u{1}'));
    }
}

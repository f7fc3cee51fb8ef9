//! Feed rendering: Atom (RFC 4287, here), RSS 2.0 (`rss`) and JSON Feed 1.1 (`json`).
//! Pure: site meta + stored items + now in, bytes out. Readers differ in what they take,
//! so every format carries the same items, in the same order, with the same ids.
//!
//! Every entry always has id, title, updated, author and an alternate link, so the feed
//! validates whatever the page gave; text and URLs pass through `xml_safe` (characters
//! XML 1.0 forbids and invisible bidi/format characters are dropped) and are escaped
//! exactly once, by the writer.

pub mod json;
pub mod rss;

use atom_syndication::{Category, Content, Entry, Feed, Generator, Link, Person, Text};
use std::collections::HashMap;

use chrono::{DateTime, FixedOffset, Utc};
use chrono_tz::Tz;

use crate::model::StoredItem;
use crate::model::{uuid_urn, xml_safe};

/// What the feed says about itself.
#[derive(Debug, Clone)]
pub struct FeedMeta {
    pub site_id: String,
    pub title: String,
    /// The site's own page (`rel="alternate"`).
    pub home: Option<String>,
    /// This feed's own URL (`rel="self"`).
    pub self_url: String,
    pub language: Option<String>,
    pub timezone: Tz,
}

/// What is known of an image from its bytes (the proxy's cache): its size in octets and
/// its sniffed media type, which beat the type guessed from the URL's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownImage {
    pub length: u64,
    pub mime: &'static str,
}

/// Known images by URL, exactly as the URL appears in the items' `images`.
pub type KnownImages = HashMap<String, KnownImage>;

/// One image as an enclosure.
pub(crate) struct Enclosure {
    pub url: String,
    pub mime: &'static str,
    /// Octets, when the image's bytes are known; renderers otherwise say nothing (Atom,
    /// JSON) or 0 (RSS, which requires the attribute).
    pub length: Option<u64>,
}

/// The formats a feed is served in; the file extension names it (`/feeds/<id>.<ext>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Atom,
    Rss,
    Json,
}

impl Format {
    pub const ALL: [Format; 3] = [Format::Atom, Format::Rss, Format::Json];

    pub fn ext(self) -> &'static str {
        match self {
            Format::Atom => "atom",
            Format::Rss => "rss",
            Format::Json => "json",
        }
    }

    pub fn from_ext(ext: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.ext() == ext)
    }

    /// The media type without parameters (autodiscovery links, self links).
    pub fn media_type(self) -> &'static str {
        match self {
            Format::Atom => "application/atom+xml",
            Format::Rss => "application/rss+xml",
            Format::Json => "application/feed+json",
        }
    }

    /// The `Content-Type` the feed is served with.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Atom => "application/atom+xml; charset=utf-8",
            Format::Rss => "application/rss+xml; charset=utf-8",
            Format::Json => "application/feed+json; charset=utf-8",
        }
    }

    /// Renders `items` in this format (see [`render`]).
    pub fn render(self, meta: &FeedMeta, items: &[StoredItem], now: DateTime<Utc>) -> Vec<u8> {
        self.render_known(meta, None, items, &KnownImages::new(), now)
    }

    /// [`Format::render`] naming a WebSub `hub` beside the self link (W3C WebSub §4), with
    /// the enclosures of the `known` images carrying their length and real type.
    pub fn render_known(
        self,
        meta: &FeedMeta,
        hub: Option<&str>,
        items: &[StoredItem],
        known: &KnownImages,
        now: DateTime<Utc>,
    ) -> Vec<u8> {
        match self {
            Format::Atom => render_atom(meta, hub, items, known, now),
            Format::Rss => rss::render(meta, hub, items, known, now),
            Format::Json => json::render(meta, hub, items, known, now),
        }
    }
}

/// What every format says about one item, decided once so the formats agree.
pub(crate) struct ItemView {
    /// The stable id (a UUID URN from the canonical URL).
    pub id: String,
    pub url: String,
    /// Never empty: the page's title, else the start of the text, else the URL.
    pub title: String,
    /// The first 200 characters of the body's text (empty without a body).
    pub summary: String,
    /// The source named on the page, if any.
    pub author: Option<String>,
    /// Sanitized HTML body.
    pub content: Option<String>,
    /// Images a reader can fetch (http/https only), with their media type.
    pub images: Vec<Enclosure>,
    pub categories: Vec<String>,
}

impl ItemView {
    pub(crate) fn of(s: &StoredItem, known: &KnownImages) -> ItemView {
        let item = &s.item;
        let content_text = item
            .content
            .as_deref()
            .map(|html| xml_safe(&html_to_text(html)).into_owned())
            .unwrap_or_default();
        let title = item
            .title
            .as_deref()
            // Stripped first, trimmed after: a title of only invisible characters and
            // spaces is no title.
            .map(|t| xml_safe(t).trim().to_owned())
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| {
                let head: String = content_text.chars().take(60).collect();
                if head.is_empty() {
                    xml_safe(&item.url).into_owned()
                } else {
                    head
                }
            });
        // An enclosure is fetched by the reader: only http(s), never an inline `data:`
        // blob or whatever scheme an upstream feed or an `images` attribute rule handed
        // over.
        let fetchable = |u: &&String| {
            let head = u.get(..8).unwrap_or(u).to_ascii_lowercase();
            head.starts_with("http://") || head.starts_with("https://")
        };
        ItemView {
            id: s.key().urn(),
            // URLs are text too: an image `data:` URL or an upstream link is taken as
            // written.
            url: xml_safe(&item.url).into_owned(),
            title,
            summary: content_text.chars().take(200).collect(),
            author: item
                .source
                .as_deref()
                .map(|s| xml_safe(s).trim().to_owned())
                .filter(|s| !s.is_empty()),
            content: item.content.as_deref().map(|h| xml_safe(h).into_owned()),
            images: item
                .images
                .iter()
                .filter(fetchable)
                .map(|i| {
                    let facts = known.get(i.as_str());
                    Enclosure {
                        url: xml_safe(i).into_owned(),
                        mime: facts.map_or_else(|| image_type(i), |k| k.mime),
                        length: facts.map(|k| k.length),
                    }
                })
                .collect(),
            categories: item
                .categories
                .iter()
                .map(|c| xml_safe(c).into_owned())
                .collect(),
        }
    }
}

/// The feed's id: stable across restarts and hosts, derived from the site id only.
pub fn feed_id(site_id: &str) -> String {
    let h = blake3::hash(format!("feedbridge:feed:{site_id}").as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&h.as_bytes()[..16]);
    uuid_urn(b)
}

/// Renders the feed; `items` are newest first and already cut to `max_items`.
pub fn render(meta: &FeedMeta, items: &[StoredItem], now: DateTime<Utc>) -> Vec<u8> {
    render_atom(meta, None, items, &KnownImages::new(), now)
}

fn render_atom(
    meta: &FeedMeta,
    hub: Option<&str>,
    items: &[StoredItem],
    known: &KnownImages,
    now: DateTime<Utc>,
) -> Vec<u8> {
    let tz = meta.timezone;
    let local = |t: DateTime<Utc>| -> DateTime<FixedOffset> { t.with_timezone(&tz).fixed_offset() };
    let feed_author = Person {
        name: xml_safe(&meta.title).into_owned(),
        ..Person::default()
    };
    let entries: Vec<Entry> = items
        .iter()
        .map(|s| entry(s, known, &feed_author, local))
        .collect();
    let updated = items.iter().map(|s| s.updated).max().unwrap_or(now);
    let mut links = vec![Link {
        href: xml_safe(&meta.self_url).into_owned(),
        rel: "self".into(),
        mime_type: Some("application/atom+xml".into()),
        ..Link::default()
    }];
    if let Some(hub) = hub {
        links.push(Link {
            href: xml_safe(hub).into_owned(),
            rel: "hub".into(),
            ..Link::default()
        });
    }
    if let Some(home) = &meta.home {
        links.push(Link {
            href: xml_safe(home).into_owned(),
            rel: "alternate".into(),
            mime_type: Some("text/html".into()),
            ..Link::default()
        });
    }
    let feed = Feed {
        id: feed_id(&meta.site_id),
        title: Text::plain(xml_safe(&meta.title).into_owned()),
        updated: local(updated),
        authors: vec![feed_author],
        links,
        generator: Some(Generator {
            value: "feedbridge".into(),
            uri: None,
            version: Some(env!("CARGO_PKG_VERSION").into()),
        }),
        lang: meta.language.as_deref().map(|l| xml_safe(l).into_owned()),
        entries,
        ..Feed::default()
    };
    feed.write_to(Vec::new()).unwrap_or_else(|e| {
        // Writing to a Vec only fails on a writer bug; never serve half a feed.
        tracing::error!(site = %meta.site_id, error = %e, "cannot write the feed");
        Vec::new()
    })
}

fn entry(
    s: &StoredItem,
    known: &KnownImages,
    feed_author: &Person,
    local: impl Fn(DateTime<Utc>) -> DateTime<FixedOffset>,
) -> Entry {
    let view = ItemView::of(s, known);
    let mut links = vec![Link {
        href: view.url,
        rel: "alternate".into(),
        mime_type: Some("text/html".into()),
        ..Link::default()
    }];
    for img in view.images {
        links.push(Link {
            href: img.url,
            rel: "enclosure".into(),
            mime_type: Some(img.mime.into()),
            // RFC 4287 4.2.7.6: the length in octets, a hint; left out when unknown.
            length: img.length.map(|n| n.to_string()),
            ..Link::default()
        });
    }
    let author = match view.author {
        Some(source) => Person {
            name: source,
            ..Person::default()
        },
        None => feed_author.clone(),
    };
    Entry {
        id: view.id,
        title: Text::plain(view.title),
        updated: local(s.updated),
        published: s.item.published.map(|p| local(p.with_timezone(&Utc))),
        authors: vec![author],
        links,
        categories: view
            .categories
            .into_iter()
            .map(|term| Category {
                term,
                ..Category::default()
            })
            .collect(),
        summary: (!view.summary.is_empty()).then(|| Text::plain(view.summary)),
        content: view.content.map(|html| Content {
            value: Some(html),
            content_type: Some("html".into()),
            ..Content::default()
        }),
        ..Entry::default()
    }
}

/// Plain text of sanitized HTML (ours: tags and the five entities only), for summaries.
pub fn html_to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len() / 2);
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                if !out.ends_with(' ') && !out.is_empty() {
                    out.push(' ');
                }
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    let text = out
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&");
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The media type of an image URL, from its extension.
pub fn image_type(url: &str) -> &'static str {
    let path = url
        .split(['?', '#'])
        .next()
        .unwrap_or(url)
        .to_ascii_lowercase();
    match path.rsplit('.').next() {
        Some("png") => "image/png",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        Some("svg") => "image/svg+xml",
        Some("bmp") => "image/bmp",
        Some("avif") => "image/avif",
        _ => "image/jpeg",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_of_html_and_types() {
        assert_eq!(html_to_text("<p>A &amp; B</p><p>C&lt;D</p>"), "A & B C<D");
        assert_eq!(image_type("http://a/x.PNG?v=1"), "image/png");
        assert_eq!(image_type("http://a/photo"), "image/jpeg");
    }

    #[test]
    fn known_images_carry_length_and_sniffed_type_in_every_format() {
        use crate::model::Item;
        let at = DateTime::from_timestamp(1_589_212_800, 0).unwrap();
        let meta = FeedMeta {
            site_id: "s".into(),
            title: "t".into(),
            home: None,
            self_url: "http://x/feeds/s".into(),
            language: None,
            timezone: chrono_tz::UTC,
        };
        let item = Item {
            url: "http://a/1".into(),
            images: vec!["http://a/img/raw?x=1&y=2".into(), "http://a/b.gif".into()],
            ..Item::default()
        };
        let items = [StoredItem {
            item,
            first_seen: at,
            updated: at,
            sort_ms: 0,
            hash: String::new(),
        }];
        let known = KnownImages::from([(
            "http://a/img/raw?x=1&y=2".to_owned(),
            KnownImage {
                length: 3008,
                mime: "image/png",
            },
        )]);
        let text = |f: Format| String::from_utf8(f.render_known(&meta, None, &items, &known, at));
        let atom = text(Format::Atom).unwrap();
        assert!(
            atom.contains(r#"href="http://a/img/raw?x=1&amp;y=2" rel="enclosure" type="image/png" length="3008""#),
            "{atom}"
        );
        // Unknown: the type from the extension, no length (RFC 4287 makes it optional).
        assert!(
            atom.contains(r#"href="http://a/b.gif" rel="enclosure" type="image/gif"/>"#),
            "{atom}"
        );
        let rss = text(Format::Rss).unwrap();
        assert!(
            rss.contains(
                r#"<enclosure url="http://a/img/raw?x=1&amp;y=2" length="3008" type="image/png"/>"#
            ),
            "{rss}"
        );
        let json: serde_json::Value = serde_json::from_str(&text(Format::Json).unwrap()).unwrap();
        let attachments = &json["items"][0]["attachments"];
        assert_eq!(attachments[0]["size_in_bytes"], 3008);
        assert_eq!(attachments[0]["mime_type"], "image/png");
        assert!(attachments[1].get("size_in_bytes").is_none());
        assert_eq!(attachments[1]["mime_type"], "image/gif");
        // Without knowledge, the output is what it always was.
        let plain = String::from_utf8(Format::Atom.render(&meta, &items, at)).unwrap();
        assert!(
            plain.contains(r#"rel="enclosure" type="image/jpeg"/>"#),
            "{plain}"
        );
    }

    #[test]
    fn feed_id_is_stable_and_distinct() {
        assert_eq!(feed_id("a"), feed_id("a"));
        assert_ne!(feed_id("a"), feed_id("b"));
    }
}

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
        self.render_with_hub(meta, None, items, now)
    }

    /// [`Format::render`] naming a WebSub `hub` beside the self link (W3C WebSub §4).
    pub fn render_with_hub(
        self,
        meta: &FeedMeta,
        hub: Option<&str>,
        items: &[StoredItem],
        now: DateTime<Utc>,
    ) -> Vec<u8> {
        match self {
            Format::Atom => render_atom(meta, hub, items, now),
            Format::Rss => rss::render_with_hub(meta, hub, items, now),
            Format::Json => json::render_with_hub(meta, hub, items, now),
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
    pub images: Vec<(String, &'static str)>,
    pub categories: Vec<String>,
}

impl ItemView {
    pub(crate) fn of(s: &StoredItem) -> ItemView {
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
                .map(|i| (xml_safe(i).into_owned(), image_type(i)))
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
    render_atom(meta, None, items, now)
}

fn render_atom(
    meta: &FeedMeta,
    hub: Option<&str>,
    items: &[StoredItem],
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
        .map(|s| entry(s, &feed_author, local))
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
    feed_author: &Person,
    local: impl Fn(DateTime<Utc>) -> DateTime<FixedOffset>,
) -> Entry {
    let view = ItemView::of(s);
    let mut links = vec![Link {
        href: view.url,
        rel: "alternate".into(),
        mime_type: Some("text/html".into()),
        ..Link::default()
    }];
    for (img, mime) in view.images {
        links.push(Link {
            href: img,
            rel: "enclosure".into(),
            mime_type: Some(mime.into()),
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
    fn feed_id_is_stable_and_distinct() {
        assert_eq!(feed_id("a"), feed_id("a"));
        assert_ne!(feed_id("a"), feed_id("b"));
    }
}

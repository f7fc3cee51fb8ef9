//! JSON Feed 1.1 rendering (<https://jsonfeed.org/version/1.1>), which JavaScript and iOS
//! tools prefer to XML. Pure, like the Atom renderer; serde_json does the escaping.
//!
//! Every item has the spec's required `id` and one of `content_html`/`content_text`
//! (an item without a body gets an empty `content_text`); dates are RFC 3339 in the
//! site's offset, like the Atom feed's.

use chrono::{DateTime, FixedOffset, Utc};
use serde_json::{json, Map, Value};

use super::{FeedMeta, ItemView, KnownImages};
use crate::model::{xml_safe, StoredItem};

pub const VERSION: &str = "https://jsonfeed.org/version/1.1";

/// Renders the feed; `items` are newest first and already cut to `max_items`. (JSON
/// Feed has no feed-level date, so `_now` goes unused; the signature is the formats'.)
/// `hub` names a WebSub hub; the enclosures of `known` images carry their length and type.
pub fn render(
    meta: &FeedMeta,
    hub: Option<&str>,
    items: &[StoredItem],
    known: &KnownImages,
    _now: DateTime<Utc>,
) -> Vec<u8> {
    let tz = meta.timezone;
    let local = |t: DateTime<Utc>| -> DateTime<FixedOffset> { t.with_timezone(&tz).fixed_offset() };
    let mut feed = Map::new();
    feed.insert("version".into(), VERSION.into());
    feed.insert("title".into(), xml_safe(&meta.title).into());
    if let Some(home) = &meta.home {
        feed.insert("home_page_url".into(), xml_safe(home).into());
    }
    feed.insert("feed_url".into(), xml_safe(&meta.self_url).into());
    if let Some(lang) = &meta.language {
        feed.insert("language".into(), xml_safe(lang).into());
    }
    feed.insert("authors".into(), json!([{ "name": xml_safe(&meta.title) }]));
    if let Some(hub) = hub {
        feed.insert(
            "hubs".into(),
            json!([{ "type": "WebSub", "url": xml_safe(hub) }]),
        );
    }
    let entries: Vec<Value> = items.iter().map(|s| item(s, known, local)).collect();
    feed.insert("items".into(), Value::Array(entries));
    let mut out = serde_json::to_vec(&Value::Object(feed)).unwrap_or_else(|e| {
        // Serializing a Value to a Vec cannot fail; never serve half a feed.
        tracing::error!(site = %meta.site_id, error = %e, "cannot write the JSON feed");
        Vec::new()
    });
    out.push(b'\n');
    out
}

fn item(
    s: &StoredItem,
    known: &KnownImages,
    local: impl Fn(DateTime<Utc>) -> DateTime<FixedOffset>,
) -> Value {
    let view = ItemView::of(s, known);
    let mut m = Map::new();
    m.insert("id".into(), view.id.into());
    m.insert("url".into(), view.url.into());
    m.insert("title".into(), view.title.into());
    match view.content {
        Some(html) => {
            m.insert("content_html".into(), html.into());
        }
        None => {
            m.insert("content_text".into(), "".into());
        }
    }
    if !view.summary.is_empty() {
        m.insert("summary".into(), view.summary.into());
    }
    if let Some(first) = view.images.first() {
        m.insert("image".into(), first.url.clone().into());
    }
    if let Some(p) = s.item.published {
        m.insert(
            "date_published".into(),
            local(p.with_timezone(&Utc)).to_rfc3339().into(),
        );
    }
    m.insert("date_modified".into(), local(s.updated).to_rfc3339().into());
    if let Some(author) = view.author {
        m.insert("authors".into(), json!([{ "name": author }]));
    }
    if !view.categories.is_empty() {
        m.insert("tags".into(), view.categories.into());
    }
    if !view.images.is_empty() {
        let attachments: Vec<Value> = view
            .images
            .into_iter()
            .map(|img| {
                let mut a = json!({ "url": img.url, "mime_type": img.mime });
                if let Some(n) = img.length {
                    a["size_in_bytes"] = n.into();
                }
                a
            })
            .collect();
        m.insert("attachments".into(), Value::Array(attachments));
    }
    Value::Object(m)
}

/// Escapes `s` as it appears inside a JSON string (without the quotes), as serde_json
/// does: the serving side splices the public base into `feed_url` with it.
pub(crate) fn string_body(s: &str) -> String {
    let quoted = serde_json::to_string(s).unwrap_or_default();
    quoted
        .strip_prefix('"')
        .and_then(|q| q.strip_suffix('"'))
        .unwrap_or("")
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Item;
    use chrono::TimeZone;

    #[test]
    fn items_carry_the_required_fields_and_local_dates() {
        let at = Utc.with_ymd_and_hms(2020, 5, 11, 16, 0, 0).unwrap();
        let meta = FeedMeta {
            site_id: "s".into(),
            title: "T\u{202e}".into(),
            home: Some("http://h/".into()),
            self_url: "http://x/feeds/s.json".into(),
            language: None,
            timezone: chrono_tz::Asia::Shanghai,
        };
        let items = [
            Item {
                url: "http://a/1".into(),
                published: Some(at.fixed_offset()),
                images: vec!["http://a/i.webp".into()],
                ..Item::default()
            },
            Item {
                url: "http://a/2".into(),
                content: Some("<p>b</p>".into()),
                ..Item::default()
            },
        ]
        .map(|item| StoredItem {
            item,
            first_seen: at,
            updated: at,
            sort_ms: 0,
            hash: String::new(),
        });
        let v: Value =
            serde_json::from_slice(&crate::feed::Format::Json.render(&meta, &items, at)).unwrap();
        assert_eq!(v["version"], VERSION);
        assert_eq!(v["title"], "T");
        let first = &v["items"][0];
        assert_eq!(first["date_published"], "2020-05-12T00:00:00+08:00");
        assert_eq!(first["content_text"], "");
        assert_eq!(first["image"], "http://a/i.webp");
        assert_eq!(first["attachments"][0]["mime_type"], "image/webp");
        assert_eq!(v["items"][1]["content_html"], "<p>b</p>");
        assert_eq!(string_body("a\"b/c\\"), "a\\\"b/c\\\\");
    }
}

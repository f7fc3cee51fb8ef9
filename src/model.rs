//! Plain data shared by every stage: no I/O, no behaviour beyond small conversions.
//!
//! Everything here is what one stage hands to the next: list entries from extraction,
//! items to the store, stored items to the feed renderer.

use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Serialize};
use url::Url;

/// A date found on a page, with how precise the page was about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageDate {
    /// The instant, with the offset it was read in (the site's zone for naive dates).
    pub at: DateTime<FixedOffset>,
    /// The page gave a day but no time of day (midnight in the site's zone was assumed).
    pub date_only: bool,
}

/// One item link found on a list page (or one entry of an upstream feed), with the
/// values that serve as fallbacks when the article page lacks them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListEntry {
    pub url: Option<Url>,
    pub title: Option<String>,
    pub date: Option<PageDate>,
    /// Values only an upstream feed gives.
    pub upstream: Option<UpstreamEntry>,
    pub warnings: Vec<String>,
}

/// What an upstream RSS/Atom/JSON feed said about an entry.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UpstreamEntry {
    /// The upstream guid/id, kept as an alias so a changed link is not a new item.
    pub guid: Option<String>,
    pub author: Option<String>,
    pub summary: Option<String>,
    pub content: Option<String>,
    pub images: Vec<String>,
    pub categories: Vec<String>,
    /// The upstream entry had no usable link: its `ListEntry::url` is a stand-in (the
    /// site's home or the feed, with a fragment naming the entry), never fetched.
    pub no_link: bool,
}

/// One extracted article, exactly as it enters the store and the feed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Item {
    /// Canonical article URL (see [`canonical_url`]); the item's identity.
    pub url: String,
    pub title: Option<String>,
    pub published: Option<DateTime<FixedOffset>>,
    /// `published` was a day without a time of day.
    #[serde(default)]
    pub date_only: bool,
    pub source: Option<String>,
    /// Sanitized HTML with absolute URLs.
    pub content: Option<String>,
    /// Absolute image URLs, deduplicated, in page order.
    #[serde(default)]
    pub images: Vec<String>,
    #[serde(default)]
    pub categories: Vec<String>,
    /// Other names for this item (an upstream guid), so a changed URL is not a new item.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// What went wrong while extracting this item (a selector that matched nothing...).
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Per field (title, date, source, body, images), where its value came from:
    /// `selector`, `auto:<evidence>`, `list`, `upstream`, `meta:<name>`. Not part of
    /// what readers see (nor of [`Item::content_hash`]).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub via: std::collections::BTreeMap<String, String>,
}

impl Item {
    /// The stable 16-byte key of this item, derived from its canonical URL.
    pub fn key(&self) -> ItemKey {
        ItemKey::of_url(&self.url)
    }

    /// A hash of everything a reader sees; a change makes the stored item "updated".
    pub fn content_hash(&self) -> [u8; 32] {
        let mut h = blake3::Hasher::new();
        for part in [
            self.title.as_deref().unwrap_or(""),
            self.source.as_deref().unwrap_or(""),
            self.content.as_deref().unwrap_or(""),
        ] {
            h.update(part.as_bytes());
            h.update(&[0]);
        }
        if let Some(p) = self.published {
            h.update(p.to_rfc3339().as_bytes());
        }
        for i in &self.images {
            h.update(i.as_bytes());
            h.update(&[0]);
        }
        *h.finalize().as_bytes()
    }
}

/// The identity of an item inside a site: the first 16 bytes of blake3(canonical URL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ItemKey(pub [u8; 16]);

impl ItemKey {
    pub fn of_url(canonical: &str) -> Self {
        let hash = blake3::hash(canonical.as_bytes());
        let mut key = [0u8; 16];
        key.copy_from_slice(&hash.as_bytes()[..16]);
        ItemKey(key)
    }

    /// A name-based UUID URN (RFC 9562 version 8) so feed readers get a valid, stable id.
    pub fn urn(&self) -> String {
        uuid_urn(self.0)
    }
}

/// Formats 16 bytes as a version-8 UUID URN.
pub fn uuid_urn(mut b: [u8; 16]) -> String {
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Query parameters that only track the reader and never change the page.
const TRACKING_PARAMS: &[&str] = &[
    "fbclid", "gclid", "dclid", "msclkid", "mc_cid", "mc_eid", "yclid", "igshid", "spm", "from",
    "_hsenc", "_hsmi", "ref_src",
];

/// The canonical form of an article URL: scheme and host lower-cased and default port
/// dropped (the `url` crate does both), fragment dropped, tracking parameters removed.
pub fn canonical_url(url: &Url) -> Url {
    let mut u = url.clone();
    u.set_fragment(None);
    if u.query().is_some() {
        let kept: Vec<(String, String)> = u
            .query_pairs()
            .filter(|(k, _)| {
                let k = k.to_ascii_lowercase();
                !k.starts_with("utm_") && !TRACKING_PARAMS.contains(&k.as_str())
            })
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        if kept.is_empty() {
            u.set_query(None);
        } else {
            u.query_pairs_mut().clear().extend_pairs(kept);
        }
    }
    u
}

/// HTTP validators remembered per URL for conditional GETs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

impl Validators {
    pub fn is_empty(&self) -> bool {
        self.etag.is_none() && self.last_modified.is_none()
    }
}

/// A fetched page: what extraction needs, no more.
#[derive(Debug, Clone)]
pub struct Page {
    /// The URL after redirects; relative links resolve against it (or a `<base href>`).
    pub url: Url,
    pub body: bytes::Bytes,
    /// The `Content-Type` header, whose `charset` takes part in decoding.
    pub content_type: Option<String>,
}

/// Characters dropped from every text we publish: those XML 1.0 forbids (C0 controls but
/// tab/newline/return, U+FFFE/FFFF), which tired CMSes do emit and which make a whole feed
/// unparsable; C1 controls; and invisible format characters a hostile page uses to make
/// text read differently than it is (bidi overrides and isolates, LRM/RLM/ALM, a BOM
/// inside text). ZWJ/ZWNJ stay: scripts and emoji need them.
pub fn is_stripped_char(c: char) -> bool {
    matches!(
        c,
        '\u{0}'..='\u{8}'
            | '\u{b}'
            | '\u{c}'
            | '\u{e}'..='\u{1f}'
            | '\u{7f}'..='\u{9f}'
            | '\u{61c}'
            | '\u{200e}'
            | '\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2066}'..='\u{2069}'
            | '\u{feff}'
            | '\u{fffe}'
            | '\u{ffff}'
    )
}

/// `s` without the characters [`is_stripped_char`] names; borrowed when it has none.
pub fn xml_safe(s: &str) -> std::borrow::Cow<'_, str> {
    if s.chars().any(is_stripped_char) {
        std::borrow::Cow::Owned(s.chars().filter(|c| !is_stripped_char(*c)).collect())
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

/// An item as stored: what was extracted plus what only state can know. Plain data, so
/// feed rendering reads it without depending on the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredItem {
    pub item: Item,
    pub first_seen: DateTime<Utc>,
    /// Last time a reader-visible value changed (the entry's Atom `updated`).
    pub updated: DateTime<Utc>,
    /// Milliseconds the `by_date` index sorts by (published, else first seen).
    pub(crate) sort_ms: i64,
    /// Hex blake3 of the reader-visible values: a change makes an update.
    pub(crate) hash: String,
}

impl StoredItem {
    pub fn key(&self) -> ItemKey {
        self.item.key()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_url_drops_tracking_fragment_and_default_port() {
        let u = Url::parse("HTTP://WWW.Example.gov.cn:80/a/b.html?id=3&utm_source=x&spm=1#top")
            .unwrap();
        assert_eq!(
            canonical_url(&u).as_str(),
            "http://www.example.gov.cn/a/b.html?id=3"
        );
        let u = Url::parse("https://example.com/x?utm_medium=y").unwrap();
        assert_eq!(canonical_url(&u).as_str(), "https://example.com/x");
    }

    #[test]
    fn urn_is_a_version_8_uuid_and_stable() {
        let a = ItemKey::of_url("http://a/1").urn();
        assert_eq!(a, ItemKey::of_url("http://a/1").urn());
        assert_ne!(a, ItemKey::of_url("http://a/2").urn());
        assert_eq!(a.len(), "urn:uuid:".len() + 36);
        assert_eq!(&a[9 + 14..9 + 15], "8");
    }

    #[test]
    fn xml_safe_removes_control_characters_only() {
        assert_eq!(xml_safe("a\u{f}b\tc\u{0}"), "ab\tc");
        assert!(matches!(xml_safe("正常"), std::borrow::Cow::Borrowed(_)));
    }

    #[test]
    fn xml_safe_removes_bidi_and_invisible_format_characters() {
        let hostile = "\u{feff}a\u{202e}b\u{2066}c\u{2069}\u{200e}\u{200f}\u{61c}d\u{85}\u{9f}\u{7f}e\u{ffff}\u{fffe}\u{feff}";
        assert_eq!(xml_safe(hostile), "abcde");
        // Joiners are letters' business (Persian ZWNJ, emoji ZWJ sequences), not tricks.
        assert_eq!(
            xml_safe("می\u{200c}خواهم 👩\u{200d}💻\n\r\t"),
            "می\u{200c}خواهم 👩\u{200d}💻\n\r\t"
        );
    }
}

//! Upstream feeds as list sources: RSS 0.9x/1.0/2.0, Atom 0.3/1.0 and JSON Feed via feed-rs.
//!
//! Pure like extraction: feed bytes + site in, list entries out. Each entry carries what
//! the upstream said (guid, author, summary, content, enclosures, categories) as the
//! fallback for every field the article page does not give. Dates without a zone are read
//! in the site's zone by our own parser (feed-rs would guess UTC); links resolve against
//! the feed's URL and must be http(s) (a feed is content, see [`crate::url_policy`]);
//! HTML is sanitized like any scraped body. An entry without a usable link (an RSS 0.9x
//! description-only item, or a refused one) is kept, under a stand-in URL (the site's
//! home with a fragment naming the entry) that is never fetched.

use chrono::{DateTime, Utc};
use url::Url;

use crate::date;
use crate::extract::sanitize::sanitize_fragment;
use crate::model::{canonical_url, ListEntry, Page, PageDate, UpstreamEntry};
use crate::site::Site;
use crate::url_policy::found_url;

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("{url}: not a readable RSS/Atom/JSON feed ({detail}); is it an HTML error page?")]
    Malformed { url: String, detail: String },
}

/// Reads an upstream feed into list entries (newest as the feed orders them).
pub fn entries(
    page: &Page,
    site: &Site,
    now: DateTime<Utc>,
) -> Result<Vec<ListEntry>, UpstreamError> {
    let tz = site.timezone;
    let parser = feed_rs::parser::Builder::new()
        .base_uri(Some(page.url.as_str()))
        // A missing guid must stay missing: a made-up id is no stable alias.
        .id_generator(|_, _, _| String::new())
        .timestamp_parser(move |text| {
            date::parse(text, None, tz, now)
                .ok()
                .map(|d| d.at.with_timezone(&Utc))
        })
        .build();
    let feed = parser
        .parse(page.body.as_ref())
        .map_err(|e| UpstreamError::Malformed {
            url: page.url.to_string(),
            detail: e.to_string(),
        })?;
    let mut out = Vec::new();
    for e in feed.entries {
        let mut warnings = Vec::new();
        let link = e
            .links
            .iter()
            .find(|l| l.rel.as_deref().is_none_or(|r| r == "alternate"))
            .or(e.links.first())
            .and_then(|l| match found_url(&page.url, &l.href) {
                Ok(url) => Some(url),
                Err(err) => {
                    warnings.push(format!(
                        "upstream entry link {:?} not followed: {err}",
                        l.href
                    ));
                    None
                }
            });
        let guid = Some(e.id.trim().to_owned()).filter(|g| !g.is_empty());
        // RSS puts the permalink in <guid isPermaLink>; fall back to it as the link.
        let link = link.or_else(|| {
            guid.as_deref()
                .and_then(|g| Url::parse(g).ok())
                .filter(|u| matches!(u.scheme(), "http" | "https"))
        });
        let html = |s: &str| {
            let clean = sanitize_fragment(s, &page.url);
            (!clean.html.is_empty()).then_some(clean)
        };
        let content = e
            .content
            .as_ref()
            .and_then(|c| c.body.as_deref())
            .and_then(html);
        let summary = e
            .summary
            .as_ref()
            .map(|t| t.content.as_str())
            .and_then(html);
        let mut images: Vec<String> = e
            .media
            .iter()
            .flat_map(|m| m.content.iter())
            .filter(|c| c.content_type.as_ref().is_none_or(|t| t.ty() == "image"))
            .filter_map(|c| c.url.as_ref())
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .map(Url::to_string)
            .collect();
        for c in content.iter().chain(summary.iter()) {
            images.extend(c.images.iter().cloned());
        }
        let at = e.published.or(e.updated);
        let title = e
            .title
            .map(|t| crate::extract::normalize_text(std::iter::once(t.content.as_str())))
            .filter(|t| !t.is_empty());
        let no_link = link.is_none();
        let url = match link {
            Some(link) => canonical_url(&link),
            None => {
                let body = content
                    .as_ref()
                    .or(summary.as_ref())
                    .map(|c| c.html.as_str());
                stand_in_url(site, &page.url, guid.as_deref(), title.as_deref(), body)
            }
        };
        out.push(ListEntry {
            url: Some(url),
            title,
            date: at.map(|at| PageDate {
                at: at.with_timezone(&tz).fixed_offset(),
                date_only: false,
            }),
            upstream: Some(UpstreamEntry {
                guid,
                author: e
                    .authors
                    .into_iter()
                    .find_map(|p| p.name.filter(|n| !n.trim().is_empty())),
                summary: summary.map(|s| s.html),
                content: content.map(|c| c.html),
                images,
                categories: e
                    .categories
                    .into_iter()
                    .map(|c| c.label.unwrap_or(c.term))
                    .collect(),
                no_link,
            }),
            warnings,
        });
    }
    Ok(out)
}

/// How many entries had no usable link (kept with a stand-in URL); for the run status.
pub fn count_without_link(entries: &[ListEntry]) -> usize {
    entries
        .iter()
        .filter(|e| e.upstream.as_ref().is_some_and(|u| u.no_link))
        .count()
}

/// The URL of an entry that has no link (an RSS 0.9x description-only item, a link-less
/// microblog post): the site's `home`, else the feed, with a fragment naming the entry, so
/// the entry links somewhere useful and keeps a stable identity. The name comes from the
/// upstream guid, else from a hash of what the entry says.
fn stand_in_url(
    site: &Site,
    feed: &Url,
    guid: Option<&str>,
    title: Option<&str>,
    body: Option<&str>,
) -> Url {
    let mut h = blake3::Hasher::new();
    match guid {
        Some(g) => {
            h.update(b"guid\0");
            h.update(g.as_bytes());
        }
        None => {
            for part in [title.unwrap_or(""), body.unwrap_or("")] {
                h.update(part.as_bytes());
                h.update(&[0]);
            }
        }
    }
    let name: String = h.finalize().as_bytes()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut url = site.home.clone().unwrap_or_else(|| canonical_url(feed));
    url.set_fragment(Some(&format!("entry-{name}")));
    url
}

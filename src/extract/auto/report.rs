//! What `feedbridge extract` prints: automatic extraction of one page, optionally under a
//! selector file whose `[article]` rules win where they match. Pure: the CLI reads the
//! page (file, stdin or fetch) and prints; everything between is here.

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset, Utc};
use chrono_tz::Tz;
use encoding_rs::Encoding;

use crate::extract::{extract_article, Document};
use crate::model::{canonical_url, ListEntry, Page};
use crate::site::Site;

use super::{extract, Hints};

/// The operator's knobs.
#[derive(Debug, Clone, Copy)]
pub struct ExtractOptions<'a> {
    pub timezone: Option<Tz>,
    pub encoding: Option<&'static Encoding>,
    /// A selector file whose `[article]` rules apply first.
    pub site: Option<&'a Site>,
    pub now: DateTime<Utc>,
}

/// One extracted page, as printed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    pub url: String,
    pub title: Option<String>,
    pub published: Option<DateTime<FixedOffset>>,
    pub date_only: bool,
    pub source: Option<String>,
    pub author: Option<String>,
    pub images: Vec<String>,
    pub content: Option<String>,
    pub text: String,
    pub via: BTreeMap<String, String>,
    pub warnings: Vec<String>,
}

/// Extracts `page`: automatically, or with `site`'s rules first and automatic extraction
/// filling what they leave empty.
pub fn run(page: &Page, opts: ExtractOptions<'_>) -> Report {
    let encoding = opts.encoding.or(opts.site.and_then(|s| s.encoding));
    let timezone = opts.timezone.or(opts.site.map(|s| s.timezone));
    let (doc, decision) = Document::parse_reporting(page, encoding);
    let auto = extract(
        &doc,
        Hints {
            url: &page.url,
            timezone,
            now: opts.now,
        },
    );
    let mut warnings: Vec<String> = decision.warning().into_iter().collect();
    let mut via: BTreeMap<String, String> = auto
        .via
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    if let Some((tz, why)) = &auto.zone {
        via.insert("zone".into(), format!("{tz} ({why})"));
    }
    let mut report = Report {
        url: canonical_url(&page.url).to_string(),
        title: auto.title.clone(),
        published: auto.published.map(|d| d.at),
        date_only: auto.published.is_some_and(|d| d.date_only),
        source: auto.source.clone(),
        author: auto.author.clone(),
        images: auto.images.clone(),
        content: auto.content.clone(),
        text: auto.text.clone(),
        via: BTreeMap::new(),
        warnings: Vec::new(),
    };
    if let Some(site) = opts.site {
        // Exactly as a crawl reads the page (extract_article: the site's rules first,
        // automatic extraction where a rule is absent or matched nothing), with the
        // command line's zone and encoding over the file's.
        let mut site = site.clone();
        if let Some(tz) = timezone {
            site.timezone = tz;
        }
        site.encoding = encoding;
        let rules = site.article.clone().unwrap_or_default();
        let entry = ListEntry {
            url: Some(canonical_url(&page.url)),
            ..ListEntry::default()
        };
        let item = extract_article(page, &site, &rules, &entry, opts.now);
        for (field, key) in [
            ("title", "title"),
            ("date", "published"),
            ("source", "source"),
            ("body", "content"),
            ("images", "images"),
        ] {
            match item.via.get(field) {
                Some(v) => {
                    via.insert(
                        key.to_owned(),
                        v.strip_prefix("auto:").unwrap_or(v).to_owned(),
                    );
                }
                None => {
                    via.remove(key);
                }
            }
        }
        if item.via.get("body").map(String::as_str) == Some("selector") {
            // The text follows the selector's body, not the guessed one.
            report.text = html_to_text(item.content.as_deref().unwrap_or(""));
            via.insert("text".into(), "selector".into());
        }
        report.title = item.title;
        report.published = item.published;
        report.date_only = item.date_only;
        report.source = item.source;
        report.content = item.content;
        report.images = item.images;
        // The decoding warning is in both: say it once.
        for w in item.warnings {
            if !warnings.contains(&w) {
                warnings.push(w);
            }
        }
    }
    warnings.extend(auto.warnings);
    report.via = via;
    report.warnings = warnings;
    report
}

/// Plain text of sanitized HTML, one block a line.
fn html_to_text(html: &str) -> String {
    let doc = scraper::Html::parse_fragment(html);
    let a = super::body::analyze(&doc);
    a.flat
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

impl Report {
    /// The `--json` form: one object.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "url": self.url,
            "title": self.title,
            "published": self.published.map(|p| p.to_rfc3339()),
            "date_only": self.date_only,
            "source": self.source,
            "author": self.author,
            "images": self.images,
            "content": self.content,
            "text": self.text,
            "via": self.via,
            "warnings": self.warnings,
        })
    }

    /// The readable form.
    pub fn render(&self) -> String {
        let via = |f: &str| {
            self.via
                .get(f)
                .map(|v| format!("  [{v}]"))
                .unwrap_or_default()
        };
        let mut out = String::new();
        let mut line = |k: &str, v: &str, f: &str| {
            out.push_str(&format!("{k:<10}{v}{}\n", via(f)));
        };
        line("url", &self.url, "");
        line("title", self.title.as_deref().unwrap_or("(none)"), "title");
        let date = self.published.map_or("(none)".to_owned(), |p| {
            if self.date_only {
                format!("{} (day only)", p.to_rfc3339())
            } else {
                p.to_rfc3339()
            }
        });
        line("published", &date, "published");
        line(
            "source",
            self.source.as_deref().unwrap_or("(none)"),
            "source",
        );
        line(
            "author",
            self.author.as_deref().unwrap_or("(none)"),
            "author",
        );
        line("images", &self.images.len().to_string(), "images");
        for i in &self.images {
            line("", i, "");
        }
        let chars = self.content.as_deref().map_or(0, |c| c.chars().count());
        line("content", &format!("{chars} characters of HTML"), "content");
        if let Some(zone) = self.via.get("zone") {
            line("zone", zone, "");
        }
        for w in &self.warnings {
            line("warning", w, "");
        }
        out.push('\n');
        out.push_str(&self.text);
        out.push('\n');
        out
    }
}

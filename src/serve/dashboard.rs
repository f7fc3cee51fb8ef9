//! The operator's pages: `/` (every feed at a glance) and `/sites/<id>` (one feed as a
//! person sees it, and why a field is missing).
//!
//! Server-rendered HTML without scripts, so it works in any browser and in `--dump-dom`
//! tests. Rendering is pure (plain rows in, a `String` out); the handlers only gather the
//! rows. `/` reads a few fields of one run record and one counter per site, never the
//! items, and shows [`PAGE_SIZE`] sites a page, failing sites first, so it stays cheap
//! (and readable) with 10,000 sites. The chrome is English; every piece of site content
//! carries the site's own `lang`, so CJK text gets CJK fonts and line breaking.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::images::ImageErrors;
use super::{base, site_of, AppError, AppState};
use crate::feed::html_to_text;
use crate::model::StoredItem;
use crate::schedule::next_run;
use crate::site::{Site, SiteError};
use crate::store::{Outcome, RunStatus};

/// Runs shown on a site's page.
const RUNS_SHOWN: usize = 10;

/// Sites per page of `/`.
pub const PAGE_SIZE: usize = 100;

/// The counts at the top of `/` and where this page is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IndexSummary {
    pub sites: usize,
    /// Last run ended badly, or the selector file's last edit did not load.
    pub failing: usize,
    /// Never run.
    pub waiting: usize,
    /// 1-based.
    pub page: usize,
    pub pages: usize,
}

/// One row of `/`.
pub struct SiteRow<'a> {
    pub site: &'a Site,
    pub last: Option<RunStatus>,
    pub items: usize,
    pub next_run: DateTime<Utc>,
    /// The file's current error when its last edit failed to load (its last good rules run).
    pub not_applied: Option<&'a SiteError>,
    /// Images that failed through the proxy since start.
    pub image_errors: Option<u64>,
}

/// What `/sites/<id>` shows.
pub struct SitePage<'a> {
    pub site: &'a Site,
    pub feed_url: String,
    pub runs: Vec<RunStatus>,
    pub next_run: DateTime<Utc>,
    pub not_applied: Option<&'a SiteError>,
    /// The feed's newest entries, as the feed serves them.
    pub items: Vec<StoredItem>,
    pub total_items: usize,
    /// The proxy's failures for this site since start.
    pub image_errors: Option<ImageErrors>,
}

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => {}
            c => out.push(c),
        }
    }
    out
}

/// "1 feed", "2 feeds".
fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// The outcome in the operator's words, with a CSS class for its colour.
fn outcome_words(outcome: Outcome) -> (&'static str, &'static str) {
    match outcome {
        Outcome::Ok => ("new items", "ok"),
        Outcome::NoNewItems => ("no new items", "ok"),
        Outcome::NotModified => ("unchanged (304)", "ok"),
        Outcome::SelectorsMatchedNothing => ("selectors matched nothing", "bad"),
        Outcome::Failed => ("failed", "bad"),
        Outcome::TimedOut => ("timed out (kept what it stored)", "bad"),
        Outcome::InternalError => ("internal error (retried with backoff)", "bad"),
    }
}

/// A time in the site's zone, with how long ago (or until) it is.
fn when(t: DateTime<Utc>, tz: Tz, now: DateTime<Utc>) -> String {
    let secs = (now - t).num_seconds();
    let rel = match secs.abs() {
        s if s < 60 => "just now".to_owned(),
        s if s < 3600 => plural((s / 60) as usize, "minute", "minutes"),
        s if s < 86_400 => plural((s / 3600) as usize, "hour", "hours"),
        s => plural((s / 86_400) as usize, "day", "days"),
    };
    let rel = match (secs.abs() < 60, secs >= 0) {
        (true, true) => rel,
        (true, false) => "in under a minute".to_owned(),
        (false, true) => format!("{rel} ago"),
        (false, false) => format!("in {rel}"),
    };
    format!(
        r#"<time datetime="{}" title="{}">{}</time>"#,
        t.to_rfc3339(),
        t.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S %:z"),
        rel
    )
}

/// `title 100% · date 95% (3 auto) · …` for a run, or a dash when it extracted nothing.
/// Values found by automatic extraction count as found, and are named: many of them on
/// a field with a selector means the selector is rotting.
fn hit_rates(s: &RunStatus) -> String {
    if s.extracted == 0 {
        return "—".into();
    }
    let pct = |n: u32| (u64::from(n) * 100 / u64::from(s.extracted)) as u32;
    [
        ("title", s.with_title),
        ("date", s.with_date),
        ("source", s.with_source),
        ("body", s.with_body),
    ]
    .iter()
    .map(|(name, n)| {
        let p = pct(*n);
        let class = if p < 50 {
            "bad"
        } else if p < 90 {
            "warn"
        } else {
            "ok"
        };
        let auto = s.fields.get(*name).map_or(0, |h| h.auto).to_string();
        let auto = if auto == "0" {
            String::new()
        } else {
            format!(r#" <small class="warn">({auto} auto)</small>"#)
        };
        format!(r#"<span class="{class}">{name} {p}%</span>{auto}"#)
    })
    .collect::<Vec<_>>()
    .join(" · ")
}

fn lang_attr(site: &Site) -> String {
    site.language
        .as_deref()
        .map(|l| format!(r#" lang="{}""#, esc(l)))
        .unwrap_or_default()
}

const STYLE: &str = r#"<style>
:root{color-scheme:light dark}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans CJK SC","Source Han Sans SC","PingFang SC","Hiragino Sans GB","Microsoft YaHei","WenQuanYi Micro Hei",sans-serif;margin:1.5em auto;max-width:72em;padding:0 1em;line-height:1.5}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #8884;padding:.4em;text-align:left;vertical-align:top}
small,.muted{color:#777}.ok{color:#176f2c}.warn{color:#9a6700}.bad{color:#b00020}
.notice{border-left:4px solid #b00020;padding:.2em .8em;background:#b0002010}
input.url{width:100%;font-family:ui-monospace,monospace;padding:.3em}
article{border-bottom:1px solid #8884;padding:.8em 0;display:flow-root}article img{float:right;max-width:12em;max-height:8em;margin:0 0 .5em 1em}
article h3{margin:.1em 0}
</style>"#;

fn page(title: &str, head: &str, body: &str) -> String {
    format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
{head}{STYLE}
</head><body>
{body}
</body></html>
"#,
        esc(title)
    )
}

/// Autodiscovery links for a feed in every format, from its Atom URL (Atom first:
/// readers that take the first link get the richest format).
fn alternate_links(title: &str, atom_url: &str) -> String {
    let stem = atom_url.strip_suffix(".atom").unwrap_or(atom_url);
    let mut links = String::new();
    for format in crate::feed::Format::ALL {
        let _ = writeln!(
            links,
            r#"<link rel="alternate" type="{}" title="{}" href="{}">"#,
            format.media_type(),
            esc(title),
            esc(&format!("{stem}.{}", format.ext()))
        );
    }
    links
}

/// `/`: one page of feeds with their state, and the selector files that failed to load.
pub fn render_index(
    base: &str,
    rows: &[SiteRow<'_>],
    summary: &IndexSummary,
    orphan_errors: &[&SiteError],
    shard: Option<crate::shard::Shard>,
    now: DateTime<Utc>,
) -> String {
    let mut links = String::new();
    let mut table = String::new();
    for row in rows {
        let site = row.site;
        let feed = format!("{base}/feeds/{}.atom", site.id);
        links.push_str(&alternate_links(&site.title, &feed));
        let (status, last_run, fields, error) = match &row.last {
            Some(s) => {
                let (words, class) = outcome_words(s.outcome);
                let warnings = if s.warnings.is_empty() {
                    String::new()
                } else {
                    format!(
                        r#"<br><small class="warn">{}</small>"#,
                        plural(s.warnings.len(), "warning", "warnings")
                    )
                };
                (
                    format!(
                        r#"<span class="{class}">{words}</span><br><small>{} new, {} updated</small>{warnings}"#,
                        s.new, s.updated
                    ),
                    when(s.finished, site.timezone, now),
                    hit_rates(s),
                    s.last_error.as_deref().map(esc).unwrap_or_default(),
                )
            }
            None => (
                r#"<span class="muted">waiting for the first run</span>"#.into(),
                "never".into(),
                "—".into(),
                String::new(),
            ),
        };
        let not_applied = row
            .not_applied
            .map(|e| {
                format!(
                    r#"<div class="notice bad">rules not applied: {}<br><small>the last good rules keep running</small></div>"#,
                    problem_lines(e)
                )
            })
            .unwrap_or_default();
        let image_errors = row
            .image_errors
            .map(|n| {
                format!(
                    r#"<br><small class="warn">{}</small>"#,
                    plural(n as usize, "image error", "image errors")
                )
            })
            .unwrap_or_default();
        let _ = writeln!(
            table,
            r#"<tr><td><a href="{base}/sites/{id}"{lang}>{title}</a><br><small>{id}</small>{image_errors}{not_applied}</td><td>{status}</td><td>{last_run}</td><td>{next}</td><td>{items}</td><td>{fields}</td><td class="bad">{error}</td><td><a href="{feed}">Atom</a></td></tr>"#,
            id = esc(&site.id),
            lang = lang_attr(site),
            title = esc(&site.title),
            next = when(row.next_run, site.timezone, now),
            items = row.items,
            feed = esc(&feed),
        );
    }
    let mut orphans = String::new();
    if !orphan_errors.is_empty() {
        orphans.push_str(
            "<h2>Selector files that could not be loaded</h2>\n<p>Fix them and save; they are read again within seconds.</p>\n<ul>\n",
        );
        for e in orphan_errors {
            let _ = writeln!(
                orphans,
                r#"<li class="bad"><code>{}</code></li>"#,
                esc(&e.to_string())
            );
        }
        orphans.push_str("</ul>\n");
    }
    let ok = summary.sites - summary.failing - summary.waiting;
    let mut counts = format!("{}: {ok} ok", plural(summary.sites, "feed", "feeds"));
    if summary.failing > 0 {
        let _ = write!(
            counts,
            r#", <span class="bad">{} failing</span>"#,
            summary.failing
        );
    }
    if summary.waiting > 0 {
        let _ = write!(counts, ", {} waiting for their first run", summary.waiting);
    }
    if !orphan_errors.is_empty() {
        let _ = write!(
            counts,
            r#", <span class="bad">{} not loaded</span>"#,
            plural(orphan_errors.len(), "selector file", "selector files")
        );
    }
    let nav = page_nav(base, summary);
    let body = format!(
        r#"<h1>feedbridge{shard}</h1>
<p>{counts}. <a href="{base}/opml">OPML</a> (import every feed into a reader) · <a href="{base}/status.json">status.json</a> · <a href="{base}/metrics">metrics</a></p>
{orphans}{nav}<table><thead><tr><th>Feed</th><th>Last run</th><th>When</th><th>Next run</th><th>Items</th><th>Fields found (last run)</th><th>Last error</th><th></th></tr></thead>
<tbody>
{table}</tbody></table>
{nav}"#,
        // A sharded node lists only its own sites: say so, and which shard.
        shard = shard.map(|s| format!(" · shard {s}")).unwrap_or_default(),
    );
    page("feedbridge", &links, &body)
}

/// "Page 2 of 100 (failing sites first) · ← previous · next →", or nothing on one page.
fn page_nav(base: &str, summary: &IndexSummary) -> String {
    if summary.pages <= 1 {
        return String::new();
    }
    let mut nav = format!(
        r#"<p class="pages">Page {} of {} <small>(failing sites first, then by id)</small>"#,
        summary.page, summary.pages
    );
    if summary.page > 1 {
        let _ = write!(
            nav,
            r#" · <a rel="prev" href="{base}/?page={}">← previous</a>"#,
            summary.page - 1
        );
    }
    if summary.page < summary.pages {
        let _ = write!(
            nav,
            r#" · <a rel="next" href="{base}/?page={}">next →</a>"#,
            summary.page + 1
        );
    }
    nav.push_str("</p>\n");
    nav
}

/// `/sites/<id>`: the page to send a person to.
pub fn render_site(p: &SitePage<'_>, now: DateTime<Utc>) -> String {
    let site = p.site;
    let tz = site.timezone;
    let lang = lang_attr(site);
    let head = alternate_links(&site.title, &p.feed_url);
    let mut body = String::new();
    let _ = writeln!(
        body,
        r#"<p><a href="../">← all feeds</a></p>
<h1{lang}>{}</h1>"#,
        esc(&site.title)
    );
    if let Some(home) = &site.home {
        let _ = writeln!(
            body,
            r#"<p>From <a href="{0}">{0}</a></p>"#,
            esc(home.as_str())
        );
    }
    let _ = writeln!(
        body,
        r#"<h2>Subscribe</h2>
<p>Copy this URL into your feed reader:</p>
<p><input class="url" type="text" readonly value="{0}" aria-label="feed URL"></p>
<p><a href="{0}">Open the Atom feed</a> <small>(XML, for feed readers)</small></p>"#,
        esc(&p.feed_url)
    );
    if let Some(e) = p.not_applied {
        let _ = writeln!(
            body,
            r#"<p class="notice bad">Rules not applied: <code>{}</code><br>The last good rules keep running until the file is fixed.</p>"#,
            problem_lines(e)
        );
    }

    if let Some(e) = &p.image_errors {
        let _ = writeln!(
            body,
            r#"<p class="notice warn">Images: {} failed through the proxy; last: {} (<code>{}</code>, {}).</p>"#,
            e.count,
            esc(&e.last_reason),
            esc(&e.last_url),
            when(e.last_at, tz, now),
        );
    }

    // State.
    let _ = writeln!(body, "<h2>State</h2>");
    let last = p.runs.first();
    match last {
        Some(s) => {
            let (words, class) = outcome_words(s.outcome);
            let _ = writeln!(
                body,
                r#"<p>Last run {}: <span class="{class}">{words}</span>; next run {}. {} stored. Schedule <code>{}</code> ({}).</p>"#,
                when(s.finished, tz, now),
                when(p.next_run, tz, now),
                plural(p.total_items, "item", "items"),
                esc(site.schedule.as_str()),
                esc(tz.name()),
            );
            if let Some(e) = &s.last_error {
                let _ = writeln!(body, r#"<p class="notice bad">{}</p>"#, esc(e));
            }
        }
        None => {
            let _ = writeln!(
                body,
                "<p>Not run yet; the first run is {}.</p>",
                when(p.next_run, tz, now)
            );
        }
    }

    // Fields, over what readers see now.
    let n = p.items.len();
    if n > 0 {
        let count = |f: &dyn Fn(&StoredItem) -> bool| p.items.iter().filter(|i| f(i)).count();
        let fields: [(&str, usize, &str); 5] = [
            (
                "title",
                count(&|i| i.item.title.is_some()),
                "the entry falls back to the list's link text or the body's first words",
            ),
            (
                "date",
                count(&|i| i.item.published.is_some()),
                "the entry is dated when it was first seen",
            ),
            (
                "source",
                count(&|i| i.item.source.is_some()),
                "the author falls back to the feed title",
            ),
            (
                "body",
                count(&|i| i.item.content.is_some()),
                "readers get the title and link only",
            ),
            (
                "images",
                count(&|i| !i.item.images.is_empty()),
                "fine for text-only articles",
            ),
        ];
        let _ = writeln!(
            body,
            "<h3>Fields found in the feed's {}</h3>\n<table><thead><tr><th>Field</th><th>Found</th><th>When missing</th></tr></thead><tbody>",
            plural(n, "entry", "entries")
        );
        for (name, found, missing) in fields {
            let automatic = p
                .items
                .iter()
                .filter(|i| i.item.via.get(name).is_some_and(|v| v.starts_with("auto:")))
                .count();
            let missing = if automatic > 0 {
                format!("{automatic} found by automatic extraction (no selector, or it matched nothing); {missing}")
            } else {
                missing.to_owned()
            };
            let pct = found * 100 / n;
            let class = match pct {
                90.. => "ok",
                50.. => "warn",
                _ => "bad",
            };
            let _ = writeln!(
                body,
                r#"<tr><td>{name}</td><td class="{class}">{found} of {n} ({pct}%)</td><td><small>{missing}</small></td></tr>"#
            );
        }
        let _ = writeln!(body, "</tbody></table>");
    }
    if let Some(s) = last.filter(|s| !s.warnings.is_empty()) {
        let _ = writeln!(
            body,
            "<h3>{} in the last run</h3>\n<ul>",
            plural(s.warnings.len(), "warning", "warnings")
        );
        for w in &s.warnings {
            let _ = writeln!(body, "<li><small>{}</small></li>", esc(w));
        }
        let _ = writeln!(body, "</ul>");
    }

    // Newest entries, as a reader sees them.
    let _ = writeln!(body, "<h2>Newest entries</h2>");
    if p.items.is_empty() {
        let _ = writeln!(body, r#"<p class="muted">No entries yet.</p>"#);
    }
    for s in &p.items {
        let item = &s.item;
        let text = item
            .content
            .as_deref()
            .map(html_to_text)
            .unwrap_or_default();
        let title = item
            .title
            .clone()
            .unwrap_or_else(|| text.chars().take(60).collect());
        let excerpt: String = text.chars().take(160).collect();
        let ellipsis = if text.chars().count() > 160 {
            "…"
        } else {
            ""
        };
        let date = match item.published {
            Some(d) if item.date_only => d.with_timezone(&tz).format("%Y-%m-%d").to_string(),
            Some(d) => d.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string(),
            None => format!(
                "first seen {}",
                s.first_seen.with_timezone(&tz).format("%Y-%m-%d %H:%M")
            ),
        };
        let image = item
            .images
            .first()
            .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
            .map(|u| {
                format!(
                    r#"<img src="{}" alt="" loading="lazy" referrerpolicy="no-referrer">"#,
                    esc(u)
                )
            })
            .unwrap_or_default();
        let source = item
            .source
            .as_deref()
            .map(|s| format!(" · {}", esc(s)))
            .unwrap_or_default();
        let _ = writeln!(
            body,
            r#"<article{lang}>{image}<h3><a href="{url}">{title}</a></h3><small>{date}{source}</small><p>{excerpt}{ellipsis}</p></article>"#,
            url = esc(&item.url),
            title = esc(&title),
            date = esc(&date),
            excerpt = esc(&excerpt),
        );
    }

    // Run history.
    if !p.runs.is_empty() {
        let _ = writeln!(
            body,
            "<h2>Last runs</h2>\n<table><thead><tr><th>Started</th><th>Took</th><th>Outcome</th><th>Pages (304)</th><th>New</th><th>Updated</th><th>Failed articles</th><th>Fields found</th><th>Error</th></tr></thead><tbody>"
        );
        for s in &p.runs {
            let (words, class) = outcome_words(s.outcome);
            let took = (s.finished - s.started).num_milliseconds() as f64 / 1000.0;
            let _ = writeln!(
                body,
                r#"<tr><td>{}</td><td>{took:.1} s</td><td class="{class}">{words}</td><td>{} ({})</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class="bad">{}</td></tr>"#,
                when(s.started, tz, now),
                s.pages_fetched,
                s.not_modified,
                s.new,
                s.updated,
                s.articles_failed,
                hit_rates(s),
                s.last_error.as_deref().map(esc).unwrap_or_default()
            );
        }
        let _ = writeln!(body, "</tbody></table>");
    }
    let _ = writeln!(
        body,
        r#"<p><small>Selector file <code>{}</code></small></p>"#,
        esc(&site.path.display().to_string())
    );
    page(&format!("{} · feedbridge", site.title), &head, &body)
}

/// Every problem of a selector file, one `path:line:col: message` per line.
fn problem_lines(e: &SiteError) -> String {
    e.lines().map(|l| esc(&l)).collect::<Vec<_>>().join("<br>")
}

/// The error of a file whose last edit did not load, matched to its site by file name.
fn not_applied<'a>(errors: &'a [SiteError], site: &Site) -> Option<&'a SiteError> {
    errors
        .iter()
        .find(|e| e.path.file_stem().and_then(|s| s.to_str()) == Some(site.id.as_str()))
}

fn html_response(html: String) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            // Scraped text and image URLs are shown here: no script may run, ever.
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'none'; img-src http: https: data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'",
                ),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("no-cache"),
            ),
        ],
        html,
    )
        .into_response()
}

/// `/?page=N`.
#[derive(serde::Deserialize)]
pub(super) struct IndexQuery {
    page: Option<usize>,
}

/// When a site runs next: the scheduler's plan (start-up spread, panic backoff) when it
/// has one, else what its schedule and last run say.
fn planned_run(
    state: &AppState,
    site: &Site,
    last: Option<&RunStatus>,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    state
        .planned
        .get(&site.id)
        .unwrap_or_else(|| next_run(site, last, now))
}

pub(super) async fn index(
    State(state): State<Arc<AppState>>,
    query: Result<axum::extract::Query<IndexQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let set = state.sites.borrow().clone();
    let base = base(&state, &headers);
    let now = Utc::now();
    let errors_by_id: HashMap<&str, &SiteError> = set
        .errors
        .iter()
        .filter_map(|e| Some((e.path.file_stem()?.to_str()?, e)))
        .collect();
    // Every site's few sort fields; the page's rows alone read their full record.
    let mut order: Vec<(bool, u32, &Arc<Site>)> = Vec::with_capacity(set.sites.len());
    let mut summary = IndexSummary {
        sites: set.sites.len(),
        ..IndexSummary::default()
    };
    for site in set.sites.values() {
        let brief = state.store.run_brief(&site.id)?;
        let broken_file = errors_by_id.contains_key(site.id.as_str());
        let failing = broken_file || brief.is_some_and(|b| outcome_words(b.outcome).1 == "bad");
        if failing {
            summary.failing += 1;
        } else if brief.is_none() {
            summary.waiting += 1;
        }
        let failures = brief.map_or(0, |b| b.consecutive_failures);
        order.push((failing, failures, site));
    }
    // Failing first, the longest failing first; then by id (the map's order, kept by the
    // stable sort).
    order.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)));
    summary.pages = set.sites.len().div_ceil(PAGE_SIZE).max(1);
    summary.page = query
        .ok()
        .and_then(|q| q.0.page)
        .unwrap_or(1)
        .clamp(1, summary.pages);
    let mut rows = Vec::with_capacity(PAGE_SIZE);
    for (_, _, site) in order
        .iter()
        .skip((summary.page - 1) * PAGE_SIZE)
        .take(PAGE_SIZE)
    {
        let last = state.store.run_status(&site.id)?;
        rows.push(SiteRow {
            site,
            next_run: planned_run(&state, site, last.as_ref(), now),
            last,
            items: state.store.count(&site.id),
            not_applied: errors_by_id.get(site.id.as_str()).copied(),
            image_errors: state
                .images
                .as_ref()
                .and_then(|p| p.errors(&site.id))
                .map(|e| e.count),
        });
    }
    let orphans: Vec<&SiteError> = set
        .errors
        .iter()
        .filter(|e| {
            let id = e.path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
            !set.sites.contains_key(id)
        })
        .collect();
    Ok(html_response(render_index(
        &base, &rows, &summary, &orphans, set.shard, now,
    )))
}

pub(super) async fn site_page(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let site = site_of(&state, &id).ok_or_else(|| AppError::NotFound(id.clone()))?;
    let set = state.sites.borrow().clone();
    let base = base(&state, &headers);
    let now = Utc::now();
    let last = state.store.run_status(&site.id)?;
    let mut runs = state.store.run_history(&site.id, RUNS_SHOWN)?;
    if runs.is_empty() {
        // A store written before run history was kept still has the last run.
        runs.extend(last.clone());
    }
    let page = SitePage {
        site: &site,
        feed_url: format!("{base}/feeds/{}.atom", site.id),
        next_run: planned_run(&state, &site, last.as_ref(), now),
        runs,
        not_applied: not_applied(&set.errors, &site),
        items: state.store.recent(&site.id, site.max_items)?,
        total_items: state.store.count(&site.id),
        image_errors: state.images.as_ref().and_then(|p| p.errors(&site.id)),
    };
    Ok(html_response(render_site(&page, now)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::site::SiteSet;
    use crate::store::Store;
    use axum::body::Body;
    use tower::ServiceExt;

    const SELECTOR: &str = r#"title = "测试站点"
start = ["http://127.0.0.1:9/list.html"]
timezone = "Asia/Shanghai"

[list]
item = "li"
link = "a"
"#;

    fn status(outcome: Outcome, failures: u32) -> RunStatus {
        let now = Utc::now();
        RunStatus {
            started: now,
            finished: now,
            outcome,
            pages_fetched: 1,
            not_modified: 0,
            items_seen: 0,
            new: 0,
            updated: 0,
            unchanged: 0,
            articles_failed: 0,
            extracted: 0,
            with_title: 0,
            with_date: 0,
            with_source: 0,
            with_body: 0,
            fields: Default::default(),
            warnings: vec![],
            last_error: (outcome == Outcome::Failed).then(|| "connect refused".into()),
            error_class: None,
            consecutive_failures: failures,
            last_success: None,
        }
    }

    /// `n` sites `s-000`…: `s-010` failing twice in a row, `s-200` once, `s-020` never
    /// run, the rest fine.
    fn router(n: usize, dir: &std::path::Path) -> axum::Router {
        let store = Arc::new(Store::open(dir).unwrap());
        let template = crate::site::compile(std::path::Path::new("t.toml"), SELECTOR).unwrap();
        let mut set = SiteSet::default();
        for i in 0..n {
            let mut site = template.clone();
            site.id = format!("s-{i:03}");
            let outcome = match i {
                10 => Some(status(Outcome::Failed, 2)),
                200 => Some(status(Outcome::SelectorsMatchedNothing, 1)),
                20 => None,
                _ => Some(status(Outcome::Ok, 0)),
            };
            if let Some(s) = outcome {
                store.set_run_status(&site.id, &s).unwrap();
            }
            set.sites.insert(site.id.clone(), Arc::new(site));
        }
        let (_tx, rx) = tokio::sync::watch::channel(Arc::new(set));
        let state = AppState::new(store, rx, None, Default::default(), None);
        super::super::app(Arc::new(state))
    }

    async fn get(router: &axum::Router, path: &str) -> (u16, String) {
        let req = axum::extract::Request::builder()
            .uri(path)
            .header("host", "t.local")
            .body(Body::empty())
            .unwrap();
        let response = router.clone().oneshot(req).await.unwrap();
        let status = response.status().as_u16();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    fn rows(html: &str) -> Vec<String> {
        html.split("<small>s-")
            .skip(1)
            .map(|r| format!("s-{}", &r[..3]))
            .collect()
    }

    #[tokio::test]
    async fn the_index_pages_by_100_with_failing_sites_first() {
        let dir = std::env::temp_dir().join(format!("feedbridge-dash-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let router = router(250, &dir);
        let (code, first) = get(&router, "/").await;
        assert_eq!(code, 200);
        assert!(
            first.contains(r#"250 feeds: 247 ok, <span class="bad">2 failing</span>, 1 waiting for their first run."#),
            "{first}"
        );
        let shown = rows(&first);
        assert_eq!(shown.len(), PAGE_SIZE);
        assert_eq!(&shown[..3], ["s-010", "s-200", "s-000"], "failing first");
        assert!(first.contains("Page 1 of 3"), "{first}");
        assert!(
            first.contains(r#"href="http://t.local/?page=2">next"#),
            "{first}"
        );
        assert!(!first.contains("previous"));
        // Only this page's feeds get autodiscovery links.
        assert_eq!(first.matches(r#"rel="alternate""#).count(), 3 * PAGE_SIZE);

        let (_, second) = get(&router, "/?page=2").await;
        let shown = rows(&second);
        assert_eq!(shown.first().map(String::as_str), Some("s-099"));
        assert!(second.contains(r#"href="http://t.local/?page=1">← previous"#));
        assert!(second.contains(r#"href="http://t.local/?page=3">next"#));

        // Past the end (or nonsense) shows the last (or first) page, not an error.
        let (code, last) = get(&router, "/?page=99").await;
        assert_eq!(code, 200);
        assert_eq!(rows(&last).len(), 50);
        assert_eq!(rows(&last).last().map(String::as_str), Some("s-249"));
        assert!(last.contains("Page 3 of 3") && !last.contains("next →"));
        let (code, _) = get(&router, "/?page=x").await;
        assert_eq!(code, 200);
        drop(router);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn status_json_lists_every_site_or_one() {
        let dir = std::env::temp_dir().join(format!("feedbridge-status-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let router = router(30, &dir);
        let (code, all) = get(&router, "/status.json").await;
        assert_eq!(code, 200);
        let all: serde_json::Value = serde_json::from_str(&all).unwrap();
        let sites = all["sites"].as_array().unwrap();
        assert_eq!(sites.len(), 30);
        assert_eq!(sites[10]["id"], "s-010");
        assert_eq!(sites[10]["last_run"]["outcome"], "failed");
        assert_eq!(sites[10]["last_run"]["consecutive_failures"], 2);
        assert_eq!(sites[20]["last_run"], serde_json::Value::Null);
        assert_eq!(sites[0]["items"], 0);
        assert_eq!(sites[0]["feed"], "http://t.local/feeds/s-000.atom");
        assert_eq!(all["errors"], serde_json::json!([]));

        let (code, one) = get(&router, "/status.json?site=s-010").await;
        assert_eq!(code, 200);
        let one: serde_json::Value = serde_json::from_str(&one).unwrap();
        assert_eq!(one, sites[10]);

        let (code, missing) = get(&router, "/status.json?site=nope%00%E2%80%AE").await;
        assert_eq!(code, 404);
        let missing: serde_json::Value = serde_json::from_str(&missing).unwrap();
        assert_eq!(missing["error"], "no such site: nope");
        drop(router);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

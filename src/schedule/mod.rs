//! When and how a site is refreshed.
//!
//! [`refresh`] is the only place that calls fetch, extract and store together; it never
//! fails, it records. The [`Scheduler`] only decides *when*: one loop keeps every site's
//! next cron time (plus a per-site jitter, so 200 sites on `*/30` do not fire in the same
//! second) in one sorted schedule, and runs each due site in a slot of the global
//! concurrency cap.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use url::Url;

use crate::cpu::run_cpu;
use crate::extract::{article_rules, extract_article, item_from_entry, listing};
use crate::fetch::{FetchError, FetchOutcome, Fetcher, Manners};
use crate::model::{Item, ListEntry, Validators};
use crate::site::{Site, Source};
use crate::store::{Outcome, RunStatus, Store, Upsert};
use crate::url_policy::UrlPolicy;

mod scheduler;

pub use scheduler::{next_run, InternalErrors, PlannedRuns, Scheduler};

/// What a refresh needs: the shared fetcher and store.
pub struct Crawler {
    pub fetcher: Fetcher,
    pub store: Arc<Store>,
    pub default_delay: Duration,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Turns true on shutdown: runs in flight stop where they are (keeping what they
    /// stored) instead of holding SIGTERM up for a slow page.
    pub stopping: watch::Sender<bool>,
}

/// Progress events for a terminal progress bar; the scheduler ignores them.
pub trait Progress: Send + Sync {
    fn page(&self, _url: &Url) {}
    fn planned(&self, _articles: usize) {}
    fn article_done(&self) {}
}

/// No progress display.
pub struct Quiet;
impl Progress for Quiet {}

/// Fetches, extracts and stores one site; records and returns the run's status.
///
/// The whole run (lists and articles) has `site.run_timeout`: past it the run stops where
/// it is, keeps what it stored (items are stored one by one) and records `timed-out`.
pub async fn refresh(site: &Site, crawler: &Crawler, progress: &dyn Progress) -> RunStatus {
    let started = Utc::now();
    let store = &crawler.store;
    let previous = store.run_status(&site.id).ok().flatten();
    let mut run = Run::new(started);
    let mut parts = RunParts::default();
    let crawl = crawl_site(site, crawler, progress, &mut run, &mut parts);
    let mut stopping = crawler.stopping.subscribe();
    let cut_short = tokio::select! {
        done = tokio::time::timeout(site.run_timeout, crawl) => done.is_err().then_some(false),
        _ = stopping.wait_for(|s| *s) => Some(true),
    };
    match cut_short {
        Some(false) => run.timed_out = Some(site.run_timeout),
        Some(true) => run.fail(
            "shutdown",
            "stopped by shutdown; the items stored before are kept, the rest are read next run"
                .into(),
        ),
        None => {}
    }
    // Below the oldest dated item of this run, in list order; with no dated item at all,
    // at the time they were first seen. (Extracted already, so stored even past the
    // deadline: storing is cheap.)
    for (i, item) in parts.undated.iter().enumerate() {
        let at = parts
            .oldest_dated
            .and_then(|o| o.checked_sub_signed(chrono::Duration::milliseconds(i as i64 + 1)));
        run.store(store, &site.id, item, at, &mut parts.fresh);
        progress.article_done();
    }
    if let Err(e) = store.prune(&site.id, site.keep_items) {
        run.fail("store", e.to_string());
    }
    // Items first, validators after: a crash in between costs a full re-read next time,
    // never a 304 that hides items that were not stored. A failed article (or a run cut
    // short by its deadline) keeps the lists un-validated too, so the next run retries.
    if let Err(e) = store.flush().await {
        run.fail("store", e.to_string());
    }
    if run.status.articles_failed == 0 && run.fatal.is_none() && run.timed_out.is_none() {
        for (url, v) in &parts.list_validators {
            if let Err(e) = store.set_validators(&site.id, &site.fingerprint, url.as_str(), v) {
                run.fail("store", e.to_string());
            }
        }
        // Only now has every item in the window been read with these rules.
        if parts.rules_changed {
            if let Err(e) = store.set_rules_fingerprint(&site.id, &site.fingerprint) {
                run.fail("store", e.to_string());
            }
        }
    }
    let status = run.finish(previous.as_ref(), parts.no_entries, parts.fresh);
    record_status(crawler, &site.id, &status).await;
    status
}

/// What the part of a run under its deadline learned besides `Run`'s counts; kept outside
/// it so a run cut short still stores and accounts for what it did.
#[derive(Default)]
struct RunParts {
    list_validators: Vec<(Url, Validators)>,
    no_entries: bool,
    fresh: u32,
    rules_changed: bool,
    /// Undated items wait until the run knows its oldest dated item, to sort just below it.
    undated: Vec<Item>,
    oldest_dated: Option<DateTime<Utc>>,
}

/// Records a finished run's metrics and status, and makes it durable.
async fn record_status(crawler: &Crawler, site: &str, status: &RunStatus) {
    record_metrics(&crawler.metrics, site, status);
    if let Err(e) = crawler.store.set_run_status(site, status) {
        tracing::error!(site, error = %e, "cannot record run status");
    }
    if let Err(e) = crawler.store.flush().await {
        tracing::error!(site, error = %e, "cannot flush the store");
    }
}

/// The part of a run under its deadline: everything it learns goes into `run` and `parts`
/// as it goes.
async fn crawl_site(
    site: &Site,
    crawler: &Crawler,
    progress: &dyn Progress,
    run: &mut Run,
    parts: &mut RunParts,
) {
    let store = &crawler.store;
    parts.no_entries = true;
    let manners = Manners {
        delay: site.delay.unwrap_or(crawler.default_delay),
        robots: site.robots,
        policy: UrlPolicy::resolved(site.start_urls()).await,
    };
    test_hooks::maybe_panic(&site.id);

    // Rules that differ from the last completed run's (a fixed selector) must see every
    // page again: their validators are gone and the items still in the feed window are
    // re-read once, so the fix shows as updates of the same entries.
    let rules_changed = store.rules_fingerprint(&site.id).ok().flatten() != Some(site.fingerprint);
    parts.rules_changed = rules_changed;
    if rules_changed {
        if let Err(e) = store.clear_validators(&site.id) {
            run.fail("store", e.to_string());
        }
    }
    let window = if rules_changed && !site.revisit {
        feed_window(store, site)
    } else {
        Ok(Vec::new())
    };
    let window = window.unwrap_or_else(|e| {
        run.fail("store", e.to_string());
        Vec::new()
    });
    let window_urls: HashSet<String> = window
        .iter()
        .filter_map(|e| e.url.as_ref().map(Url::to_string))
        .collect();
    // A revisiting site must see edits of known articles, which a 304 on an unchanged
    // list page would hide: it reads its lists unconditionally.
    let known = |url: &Url| {
        if site.revisit {
            None
        } else {
            store
                .validators(&site.id, &site.fingerprint, url.as_str())
                .ok()
                .flatten()
        }
    };
    let lists = read_lists(
        site,
        &crawler.fetcher,
        &manners,
        site.start_urls(),
        known,
        progress,
    )
    .await;
    run.status.pages_fetched += lists.pages;
    run.status.not_modified += lists.not_modified;
    for w in lists.warnings {
        run.warn(w);
    }
    run.matched_nothing = lists.matched_nothing;
    if let Some((class, message)) = lists.error {
        run.fail(&class, message);
    }
    let mut entries = lists.entries;
    parts.list_validators = lists.validators;
    parts.no_entries = entries.is_empty();
    // Window items the lists no longer show are re-read with their stored values as the
    // fallbacks. (A stand-in URL, of an upstream entry without a link, has a fragment and
    // no page to read.)
    if article_rules(site).is_some() {
        let listed: HashSet<String> = entries
            .iter()
            .filter_map(|e| e.url.as_ref().map(Url::to_string))
            .collect();
        entries.extend(window.into_iter().filter(|e| {
            e.url
                .as_ref()
                .is_some_and(|u| u.fragment().is_none() && !listed.contains(u.as_str()))
        }));
    }
    progress.planned(entries.len());
    let shared_site = Arc::new(site.clone());
    for entry in &entries {
        let Some(url) = &entry.url else { continue };
        run.status.items_seen += 1;
        let aliases: Vec<String> = entry
            .upstream
            .iter()
            .filter_map(|u| u.guid.clone())
            .collect();
        if let Some(d) = entry.date {
            let at = d.at.with_timezone(&Utc);
            parts.oldest_dated = Some(parts.oldest_dated.map_or(at, |o| o.min(at)));
        }
        let revisit = site.revisit || window_urls.contains(url.as_str());
        match store.is_known(&site.id, url.as_str(), &aliases) {
            Ok(true) if !revisit => {
                run.status.unchanged += 1;
                progress.article_done();
                continue;
            }
            Err(e) => {
                run.fail("store", e.to_string());
                break;
            }
            _ => {}
        }
        let no_link = entry.upstream.as_ref().is_some_and(|u| u.no_link);
        let item = match article_rules(site).filter(|_| !no_link) {
            Some(_) => match crawler.fetcher.get(url, None, &manners).await {
                Ok(FetchOutcome::Page { page, .. }) => {
                    run.status.pages_fetched += 1;
                    let (site, entry) = (shared_site.clone(), entry.clone());
                    let extracted = run_cpu(move || {
                        let rules = article_rules(&site)?;
                        Some(extract_article(&page, &site, rules, &entry, Utc::now()))
                    })
                    .await;
                    match extracted {
                        Ok(Some(item)) => item,
                        Ok(None) => continue,
                        Err(e) => {
                            run.fail("internal", e.to_string());
                            break;
                        }
                    }
                }
                Ok(FetchOutcome::NotModified) => continue,
                // Hostile content, not a failing site: retrying will not help.
                Err(e @ FetchError::Refused { .. }) => {
                    run.warn(format!("article {url}: {e}"));
                    progress.article_done();
                    continue;
                }
                Err(e) => {
                    run.status.articles_failed += 1;
                    run.warn(format!("article {url}: {e}"));
                    run.last_article_error = Some(e);
                    progress.article_done();
                    continue;
                }
            },
            None => item_from_entry(entry, site),
        };
        run.count_fields(&item);
        for w in item.warnings.iter().take(3) {
            run.warn(format!("{}: {w}", item.url));
        }
        match item.published {
            Some(p) => {
                let at = p.with_timezone(&Utc);
                parts.oldest_dated = Some(parts.oldest_dated.map_or(at, |o| o.min(at)));
            }
            None => {
                parts.undated.push(item);
                continue;
            }
        }
        run.store(store, &site.id, &item, None, &mut parts.fresh);
        progress.article_done();
    }
}

/// The items in a site's feed window (its newest `max_items`), newest first, as list
/// entries carrying their stored values as fallbacks.
fn feed_window(store: &Store, site: &Site) -> Result<Vec<ListEntry>, crate::store::StoreError> {
    Ok(store
        .recent(&site.id, site.max_items)?
        .into_iter()
        .filter_map(|s| {
            let url = Url::parse(&s.item.url).ok()?;
            let entry = ListEntry {
                url: Some(url),
                title: s.item.title.clone(),
                date: s.item.published.map(|at| crate::model::PageDate {
                    at,
                    date_only: s.item.date_only,
                }),
                upstream: None,
                warnings: Vec::new(),
            };
            Some(entry)
        })
        .collect())
}

/// What reading a site's list pages (or its upstream feed) gave.
#[derive(Debug, Default)]
pub struct Lists {
    /// Entries with a URL, deduplicated, in list order.
    pub entries: Vec<ListEntry>,
    /// Validators of the pages read, to remember once their items are stored.
    pub validators: Vec<(Url, Validators)>,
    pub pages: u32,
    pub not_modified: u32,
    pub warnings: Vec<String>,
    /// A 200 first page on which `list.item` matched nothing, or an empty upstream feed.
    pub matched_nothing: Option<String>,
    /// The first fetch or parse failure: (class, message).
    pub error: Option<(String, String)>,
}

/// Reads the list pages from each of `starts` (following `next` up to `max_pages`, never
/// a page twice) or the upstream feed. `known` gives the validators for a conditional GET;
/// a 304 ends that start's pages. Shared by `refresh` and `preview`.
pub async fn read_lists(
    site: &Site,
    fetcher: &Fetcher,
    manners: &Manners,
    starts: Vec<Url>,
    known: impl Fn(&Url) -> Option<Validators>,
    progress: &dyn Progress,
) -> Lists {
    let mut lists = Lists::default();
    let max_pages = match &site.source {
        Source::List { rules, .. } => rules.max_pages,
        Source::Feed { .. } => 1,
    };
    let mut seen = HashSet::new();
    let shared_site = Arc::new(site.clone());
    for start in starts {
        let mut url = start;
        let mut visited = HashSet::new();
        for page_no in 0..max_pages {
            if !visited.insert(url.to_string()) {
                break;
            }
            progress.page(&url);
            let page = match fetcher.get(&url, known(&url).as_ref(), manners).await {
                Ok(FetchOutcome::NotModified) => {
                    lists.not_modified += 1;
                    break;
                }
                Ok(FetchOutcome::Page { page, validators }) => {
                    lists.pages += 1;
                    lists.validators.push((url.clone(), validators));
                    page
                }
                Err(e @ FetchError::Refused { .. }) if page_no > 0 => {
                    lists.warnings.push(format!("list.next: {e}"));
                    break;
                }
                Err(e) => {
                    lists
                        .error
                        .get_or_insert((e.class().to_owned(), e.to_string()));
                    break;
                }
            };
            // Parsing is CPU work with a bounded cost, but never on an async worker.
            let parse_site = shared_site.clone();
            let parsed = run_cpu(move || listing(&page, &parse_site, Utc::now())).await;
            let found = match parsed {
                Ok(Ok(listing)) => {
                    if listing.matched == 0 && page_no == 0 {
                        lists.matched_nothing = Some(match &site.source {
                            Source::List { rules, .. } => format!(
                                "{url}: list.item {:?} matched nothing; the site probably changed its markup",
                                rules.item_css
                            ),
                            Source::Feed { .. } => {
                                format!("{url}: the upstream feed has no entries")
                            }
                        });
                    }
                    lists.warnings.extend(listing.warnings);
                    (listing.entries, listing.next)
                }
                Ok(Err(e)) => {
                    lists.validators.pop();
                    lists
                        .error
                        .get_or_insert(("upstream".into(), e.to_string()));
                    (Vec::new(), None)
                }
                Err(e) => {
                    lists
                        .error
                        .get_or_insert(("internal".into(), e.to_string()));
                    break;
                }
            };
            let (entries, next) = found;
            lists.entries.extend(
                entries
                    .into_iter()
                    .filter(|e| e.url.as_ref().is_some_and(|u| seen.insert(u.to_string()))),
            );
            match next {
                Some(next) => url = next,
                None => break,
            }
        }
    }
    lists
}

/// A run in progress.
struct Run {
    status: RunStatus,
    fatal: Option<(String, String)>,
    matched_nothing: Option<String>,
    last_article_error: Option<FetchError>,
    /// Set when the run hit its deadline (the deadline it had).
    timed_out: Option<Duration>,
}

impl Run {
    fn new(started: DateTime<Utc>) -> Self {
        Run {
            status: RunStatus {
                started,
                finished: started,
                outcome: Outcome::Ok,
                pages_fetched: 0,
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
                fields: BTreeMap::new(),
                warnings: Vec::new(),
                last_error: None,
                error_class: None,
                consecutive_failures: 0,
                last_success: None,
            },
            fatal: None,
            matched_nothing: None,
            last_article_error: None,
            timed_out: None,
        }
    }

    /// Upserts one item and counts what happened.
    fn store(
        &mut self,
        store: &Store,
        site: &str,
        item: &Item,
        undated_at: Option<DateTime<Utc>>,
        fresh: &mut u32,
    ) {
        match store.upsert_placed(site, item, Utc::now(), undated_at) {
            Ok(Upsert::New) => {
                self.status.new += 1;
                *fresh += 1;
            }
            Ok(Upsert::Updated) => self.status.updated += 1,
            Ok(Upsert::Unchanged) => self.status.unchanged += 1,
            Err(e) => self.fail("store", e.to_string()),
        }
    }

    fn warn(&mut self, w: String) {
        if self.status.warnings.len() < 20 {
            self.status.warnings.push(w);
        }
    }

    fn fail(&mut self, class: &str, message: String) {
        if self.fatal.is_none() {
            self.fatal = Some((class.to_owned(), message));
        }
    }

    fn count_fields(&mut self, item: &crate::model::Item) {
        let s = &mut self.status;
        s.extracted += 1;
        s.with_title += u32::from(item.title.is_some());
        s.with_date += u32::from(item.published.is_some());
        s.with_source += u32::from(item.source.is_some());
        s.with_body += u32::from(item.content.is_some());
        let found = [
            ("title", item.title.is_some()),
            ("date", item.published.is_some()),
            ("source", item.source.is_some()),
            ("body", item.content.is_some()),
            ("images", !item.images.is_empty()),
        ];
        for (field, present) in found {
            let hits = s.fields.entry(field.to_owned()).or_default();
            match item.via.get(field).map(String::as_str) {
                _ if !present => hits.missing += 1,
                Some("selector") => hits.selector += 1,
                Some(v) if v.starts_with("auto:") => hits.auto += 1,
                _ => hits.fallback += 1,
            }
        }
    }

    fn finish(mut self, previous: Option<&RunStatus>, no_entries: bool, fresh: u32) -> RunStatus {
        let s = &mut self.status;
        s.finished = Utc::now();
        let all_articles_failed = s.articles_failed > 0 && s.new + s.updated + s.unchanged == 0;
        if all_articles_failed && self.fatal.is_none() {
            if let Some(e) = self.last_article_error.take() {
                self.fatal = Some((
                    e.class().to_owned(),
                    format!("every article failed; last: {e}"),
                ));
            }
        }
        s.outcome = if let Some(limit) = self.timed_out {
            s.error_class = Some("timeout".into());
            s.last_error = Some(format!(
                "timed out after {limit:?} (run_timeout); the {} new and {} updated items stored before are kept",
                s.new, s.updated
            ));
            Outcome::TimedOut
        } else if let Some((class, message)) = self.fatal.take() {
            s.error_class = Some(class);
            s.last_error = Some(message);
            Outcome::Failed
        } else if let (Some(m), true) = (self.matched_nothing.take(), no_entries) {
            s.error_class = Some("selectors".into());
            s.last_error = Some(m);
            Outcome::SelectorsMatchedNothing
        } else if s.pages_fetched == 0 && s.not_modified > 0 {
            Outcome::NotModified
        } else if fresh + s.updated > 0 {
            Outcome::Ok
        } else {
            Outcome::NoNewItems
        };
        let failed = matches!(
            s.outcome,
            Outcome::Failed | Outcome::SelectorsMatchedNothing | Outcome::TimedOut
        );
        s.consecutive_failures = if failed {
            previous.map_or(0, |p| p.consecutive_failures) + 1
        } else {
            0
        };
        s.last_success = if failed {
            previous.and_then(|p| p.last_success)
        } else {
            Some(s.finished)
        };
        self.status
    }
}

fn record_metrics(m: &crate::metrics::Metrics, site: &str, s: &RunStatus) {
    for (field, hits) in &s.fields {
        for (by, n) in [
            ("selector", hits.selector),
            ("auto", hits.auto),
            ("fallback", hits.fallback),
            ("missing", hits.missing),
        ] {
            if n > 0 {
                m.add(
                    "feedbridge_field_values_total",
                    &[("site", site), ("field", field), ("by", by)],
                    f64::from(n),
                );
            }
        }
    }
    let outcome = format!("{:?}", s.outcome);
    m.add(
        "feedbridge_runs_total",
        &[("site", site), ("outcome", &outcome)],
        1.0,
    );
    let secs = (s.finished - s.started).num_milliseconds() as f64 / 1000.0;
    m.add("feedbridge_run_seconds_total", &[("site", site)], secs);
    m.add(
        "feedbridge_items_new_total",
        &[("site", site)],
        f64::from(s.new),
    );
    m.add(
        "feedbridge_items_updated_total",
        &[("site", site)],
        f64::from(s.updated),
    );
    m.add(
        "feedbridge_pages_fetched_total",
        &[("site", site)],
        f64::from(s.pages_fetched),
    );
    m.add(
        "feedbridge_pages_not_modified_total",
        &[("site", site)],
        f64::from(s.not_modified),
    );
    if let Some(class) = &s.error_class {
        m.add(
            "feedbridge_run_errors_total",
            &[("site", site), ("class", class)],
            1.0,
        );
    }
}

/// One line per run, for logs and `crawl`'s summary.
pub fn summary_line(site: &str, s: &RunStatus) -> String {
    let mut line = format!(
        "{site}: {:?} in {:.1}s; pages {} (304: {}), items new {} / updated {} / unchanged {}, articles failed {}, warnings {}",
        s.outcome,
        (s.finished - s.started).num_milliseconds() as f64 / 1000.0,
        s.pages_fetched,
        s.not_modified,
        s.new,
        s.updated,
        s.unchanged,
        s.articles_failed,
        s.warnings.len()
    );
    if let Some(e) = &s.last_error {
        line.push_str("; error: ");
        line.push_str(e);
    }
    line
}

/// Fault injection for the integration tests; compiled into debug builds only, so a
/// release binary ignores these variables.
mod test_hooks {
    use std::time::Duration;

    /// `FEEDBRIDGE_TEST_PANIC_SITE=<id>:<n>`: the first `n` runs of site `<id>` panic.
    pub fn maybe_panic(site: &str) {
        #[cfg(debug_assertions)]
        {
            use std::sync::atomic::{AtomicU32, Ordering};
            static PANICKED: AtomicU32 = AtomicU32::new(0);
            let Ok(spec) = std::env::var("FEEDBRIDGE_TEST_PANIC_SITE") else {
                return;
            };
            let (id, times) = spec.split_once(':').unwrap_or((spec.as_str(), "1"));
            let times: u32 = times.parse().unwrap_or(1);
            if id == site && PANICKED.fetch_add(1, Ordering::Relaxed) < times {
                panic!("test panic for site {site} (FEEDBRIDGE_TEST_PANIC_SITE)");
            }
        }
        #[cfg(not(debug_assertions))]
        let _ = site;
    }

    /// `FEEDBRIDGE_TEST_PANIC_BACKOFF_MS`: the first retry delay after a panic.
    pub fn panic_backoff() -> Option<Duration> {
        #[cfg(debug_assertions)]
        {
            let ms = std::env::var("FEEDBRIDGE_TEST_PANIC_BACKOFF_MS").ok()?;
            ms.parse().ok().map(Duration::from_millis)
        }
        #[cfg(not(debug_assertions))]
        None
    }
}

/// The one log line per run.
pub fn log_run(site: &str, status: &RunStatus) {
    let line = summary_line(site, status);
    match status.outcome {
        Outcome::Failed
        | Outcome::SelectorsMatchedNothing
        | Outcome::TimedOut
        | Outcome::InternalError => {
            tracing::error!(site, outcome = ?status.outcome, "{line}")
        }
        _ if !status.warnings.is_empty() => {
            tracing::info!(site, outcome = ?status.outcome, "{line}");
            for w in status.warnings.iter().take(5) {
                tracing::warn!(site, "{w}");
            }
        }
        _ => tracing::info!(site, outcome = ?status.outcome, "{line}"),
    }
}

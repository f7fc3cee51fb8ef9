//! When a site runs: one task per site sleeps until its next cron time (plus a stable
//! per-site jitter), takes a slot of the global concurrency cap, and calls
//! [`super::refresh`]; a run that panics is caught, recorded as `internal-error` and
//! retried with backoff. Hot reloads replace a site's task; shutdown stops them all.

use crate::site::{Site, SiteSet};
use crate::store::{Outcome, RunStatus};
use chrono::{DateTime, Utc};
use futures_util::FutureExt;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{watch, Semaphore};

use super::{log_run, record_status, refresh, test_hooks, Crawler, Quiet, Run};

/// A site's next run time: at once when it never ran or is overdue, else its next cron
/// time plus a stable per-site jitter.
pub fn next_run(site: &Site, last: Option<&RunStatus>, now: DateTime<Utc>) -> DateTime<Utc> {
    let Some(last) = last else { return now };
    match site.schedule.next_after(last.started, site.timezone) {
        Some(due) if due <= now => now,
        _ => {
            let Some(next) = site.schedule.next_after(now, site.timezone) else {
                return now
                    .checked_add_signed(chrono::Duration::days(365))
                    .unwrap_or(now);
            };
            let interval = site
                .schedule
                .next_after(next, site.timezone)
                .map_or(0, |n| (n - next).num_milliseconds());
            let span = (interval / 10).clamp(0, 30_000) as u64;
            let hash = u64::from_le_bytes(
                blake3::hash(site.id.as_bytes()).as_bytes()[..8]
                    .try_into()
                    .unwrap_or([0; 8]),
            );
            let jitter = if span == 0 { 0 } else { hash % span };
            next.checked_add_signed(chrono::Duration::milliseconds(jitter as i64))
                .unwrap_or(next)
        }
    }
}

/// The sites whose last run panicked and that wait for their retry, for `/healthz`
/// (degraded, not dead: the other sites still run).
#[derive(Debug, Default)]
pub struct InternalErrors(Mutex<BTreeSet<String>>);

impl InternalErrors {
    fn set(&self, site: &str, failing: bool) {
        let mut ids = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if failing {
            ids.insert(site.to_owned());
        } else {
            ids.remove(site);
        }
    }

    /// The ids of the sites in internal-error, sorted.
    pub fn sites(&self) -> Vec<String> {
        let ids = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        ids.iter().cloned().collect()
    }
}

/// Runs every site on its schedule; follows hot reloads; stops on shutdown.
pub struct Scheduler {
    crawler: Arc<Crawler>,
    slots: Arc<Semaphore>,
    /// Unix seconds of the scheduler loop's last turn, for `/healthz`.
    pub heartbeat: Arc<AtomicI64>,
    /// Sites whose run panicked and that wait for their retry, for `/healthz`.
    pub internal_errors: Arc<InternalErrors>,
    /// The first retry delay after a panic; doubles per panic in a row up to an hour.
    pub panic_backoff: Duration,
}

/// The longest wait before retrying a site that keeps panicking.
const MAX_PANIC_BACKOFF: Duration = Duration::from_secs(3600);

struct SiteTask {
    fingerprint: [u8; 32],
    stop: watch::Sender<bool>,
    handle: tokio::task::JoinHandle<()>,
}

impl Scheduler {
    pub fn new(crawler: Arc<Crawler>, concurrency: usize) -> Self {
        Scheduler {
            crawler,
            slots: Arc::new(Semaphore::new(concurrency)),
            heartbeat: Arc::new(AtomicI64::new(Utc::now().timestamp())),
            internal_errors: Arc::default(),
            panic_backoff: test_hooks::panic_backoff().unwrap_or(Duration::from_secs(60)),
        }
    }

    /// Runs until `shutdown` turns true; then lets in-flight runs finish (at most `grace`).
    pub async fn run(
        self,
        mut sites: watch::Receiver<Arc<SiteSet>>,
        mut shutdown: watch::Receiver<bool>,
        grace: Duration,
    ) {
        let mut tasks: HashMap<String, SiteTask> = HashMap::new();
        loop {
            let current = sites.borrow_and_update().clone();
            self.reconcile(&mut tasks, &current.sites, &shutdown);
            self.heartbeat
                .store(Utc::now().timestamp(), Ordering::Relaxed);
            tokio::select! {
                changed = sites.changed() => if changed.is_err() { break },
                _ = shutdown.changed() => break,
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            }
            if *shutdown.borrow() {
                break;
            }
        }
        self.crawler.stopping.send_replace(true);
        for t in tasks.values() {
            let _ = t.stop.send(true);
        }
        let all = futures_util::future::join_all(tasks.into_values().map(|t| t.handle));
        if tokio::time::timeout(grace, all).await.is_err() {
            tracing::warn!(
                "some runs did not finish within {grace:?}; their stored items are kept"
            );
        }
        let _ = self.crawler.store.flush().await;
    }

    fn reconcile(
        &self,
        tasks: &mut HashMap<String, SiteTask>,
        sites: &BTreeMap<String, Arc<Site>>,
        shutdown: &watch::Receiver<bool>,
    ) {
        let mut retiring = HashMap::new();
        let stale: Vec<String> = tasks
            .iter()
            .filter(|(id, t)| {
                // A task that ended on its own died outside the supervised run: restart it.
                t.handle.is_finished()
                    || sites
                        .get(*id)
                        .is_none_or(|s| s.fingerprint != t.fingerprint)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in stale {
            if !sites.contains_key(&id) {
                // A removed site no longer degrades the service.
                self.internal_errors.set(&id, false);
            }
            if let Some(t) = tasks.remove(&id) {
                // The run in flight finishes with the rules it started with; a successor
                // for the same site waits for it, so a site never runs twice at once.
                let _ = t.stop.send(true);
                retiring.insert(id, t.handle);
            }
        }
        for (id, site) in sites {
            if tasks.contains_key(id) {
                continue;
            }
            let (stop, stop_rx) = watch::channel(false);
            let handle = tokio::spawn(site_loop(
                retiring.remove(id),
                site.clone(),
                Supervision {
                    crawler: self.crawler.clone(),
                    slots: self.slots.clone(),
                    internal_errors: self.internal_errors.clone(),
                    panic_backoff: self.panic_backoff,
                },
                stop_rx,
                shutdown.clone(),
            ));
            tasks.insert(
                id.clone(),
                SiteTask {
                    fingerprint: site.fingerprint,
                    stop,
                    handle,
                },
            );
        }
    }
}

/// What a site task shares with the scheduler.
struct Supervision {
    crawler: Arc<Crawler>,
    slots: Arc<Semaphore>,
    internal_errors: Arc<InternalErrors>,
    panic_backoff: Duration,
}

async fn site_loop(
    predecessor: Option<tokio::task::JoinHandle<()>>,
    site: Arc<Site>,
    sup: Supervision,
    mut stop: watch::Receiver<bool>,
    mut shutdown: watch::Receiver<bool>,
) {
    if let Some(previous) = predecessor {
        let _ = previous.await;
    }
    let crawler = &sup.crawler;
    let mut panics_in_a_row: u32 = 0;
    loop {
        let wait = if panics_in_a_row > 0 {
            sup.panic_backoff
                .saturating_mul(1 << (panics_in_a_row - 1).min(12))
                .min(MAX_PANIC_BACKOFF)
        } else {
            let last = crawler.store.run_status(&site.id).ok().flatten();
            let due = next_run(&site, last.as_ref(), Utc::now());
            tracing::debug!(site = %site.id, %due, "next run");
            (due - Utc::now()).to_std().unwrap_or(Duration::ZERO)
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
            _ = shutdown.changed() => return,
        }
        let permit = tokio::select! {
            p = sup.slots.clone().acquire_owned() => p,
            _ = stop.changed() => return,
            _ = shutdown.changed() => return,
        };
        if *stop.borrow() || *shutdown.borrow() {
            return;
        }
        let started = Utc::now();
        let run = AssertUnwindSafe(refresh(&site, crawler, &Quiet)).catch_unwind();
        let outcome = run.await;
        drop(permit);
        match outcome {
            Ok(status) => {
                panics_in_a_row = 0;
                sup.internal_errors.set(&site.id, false);
                log_run(&site.id, &status);
            }
            Err(panic) => {
                panics_in_a_row = panics_in_a_row.saturating_add(1);
                sup.internal_errors.set(&site.id, true);
                let status = panicked_run(&site.id, crawler, started, panic_message(&*panic));
                crawler
                    .metrics
                    .add("feedbridge_site_panics_total", &[("site", &site.id)], 1.0);
                record_status(crawler, &site.id, &status).await;
                log_run(&site.id, &status);
            }
        }
    }
}

/// The status of a run that panicked: `internal-error`, counted as a failure.
fn panicked_run(site: &str, crawler: &Crawler, started: DateTime<Utc>, why: String) -> RunStatus {
    let previous = crawler.store.run_status(site).ok().flatten();
    let mut run = Run::new(started);
    run.fail("internal", String::new());
    let mut status = run.finish(previous.as_ref(), true, 0);
    status.outcome = Outcome::InternalError;
    status.last_error = Some(format!(
        "internal error (a bug in feedbridge, not the site): {why}; retried with backoff"
    ));
    status
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

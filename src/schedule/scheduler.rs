//! When a site runs: one loop keeps every site in a single schedule sorted by due time,
//! sleeps until the earliest one (or a reload, a finished run, shutdown), and starts a
//! run whenever a site is due and a slot of the global concurrency cap is free. Idle
//! costs nothing per site: 10,000 sites on `*/30` are one sorted set and one sleeping
//! task, not 10,000 timers. A run that panics is caught, recorded as `internal-error`
//! and retried with backoff. After a restart, overdue sites are spread over their
//! interval instead of all starting at once.

use crate::site::{Site, SiteSet};
use crate::store::{Outcome, RunStatus};
use chrono::{DateTime, Utc};
use futures_util::FutureExt;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use super::{log_run, record_status, refresh, test_hooks, Crawler, Quiet, Run};

/// A site's next run time: at once when it never ran or is overdue, else its next cron
/// time plus a stable per-site jitter.
pub fn next_run(site: &Site, last: Option<&RunStatus>, now: DateTime<Utc>) -> DateTime<Utc> {
    let Some(last) = last else { return now };
    if is_overdue(site, last, now) {
        return now;
    }
    let Some(next) = site.schedule.next_after(now, site.timezone) else {
        return now
            .checked_add_signed(chrono::Duration::days(365))
            .unwrap_or(now);
    };
    let interval = interval_after(site, next).map_or(0, |i| i.as_millis() as u64);
    let span = (interval / 10).clamp(0, 30_000);
    let jitter = if span == 0 {
        0
    } else {
        id_hash(&site.id) % span
    };
    next.checked_add_signed(chrono::Duration::milliseconds(jitter as i64))
        .unwrap_or(next)
}

/// Whether the schedule fired since the site's last run started.
fn is_overdue(site: &Site, last: &RunStatus, now: DateTime<Utc>) -> bool {
    site.schedule
        .next_after(last.started, site.timezone)
        .is_some_and(|due| due <= now)
}

/// The gap between the cron time `at` and the one after it.
fn interval_after(site: &Site, at: DateTime<Utc>) -> Option<Duration> {
    let next = site.schedule.next_after(at, site.timezone)?;
    (next - at).to_std().ok()
}

/// A stable number per site id (not per process: the spread is the same after every
/// restart, so a site keeps its place).
fn id_hash(id: &str) -> u64 {
    u64::from_le_bytes(
        blake3::hash(id.as_bytes()).as_bytes()[..8]
            .try_into()
            .unwrap_or([0; 8]),
    )
}

/// A site's stable offset into `window`: `[0, window)`.
pub fn spread_offset(id: &str, window: Duration) -> Duration {
    let window_ms = window.as_millis() as u64;
    if window_ms == 0 {
        return Duration::ZERO;
    }
    Duration::from_millis(id_hash(id) % window_ms)
}

/// What one run is guessed to take, to size the start-up spread: a few overdue sites on a
/// small box start at once; thousands are spread over up to their whole interval.
const ASSUMED_RUN: Duration = Duration::from_secs(5);

/// How wide the start-up spread of `overdue` sites is: as long as the concurrency cap
/// would need to run them back to back (at [`ASSUMED_RUN`] each), so a handful of sites
/// is not held back for half an hour; each site's own interval caps it in [`first_run`].
pub fn startup_window(overdue: usize, concurrency: usize) -> Duration {
    let rounds = overdue.div_ceil(concurrency.max(1));
    ASSUMED_RUN.saturating_mul(u32::try_from(rounds).unwrap_or(u32::MAX))
}

/// A site's first run after the service starts: at once when it never ran (a new site
/// shows its feed promptly); when overdue, at a stable offset into `window` (at most its
/// interval), so a restart does not start every site in the same second while their
/// stored feeds are served already; else its normal [`next_run`].
pub fn first_run(
    site: &Site,
    last: Option<&RunStatus>,
    now: DateTime<Utc>,
    window: Duration,
) -> DateTime<Utc> {
    let Some(last) = last else { return now };
    if !is_overdue(site, last, now) {
        return next_run(site, Some(last), now);
    }
    let interval = site
        .schedule
        .next_after(now, site.timezone)
        .and_then(|next| interval_after(site, next))
        .unwrap_or(Duration::ZERO);
    let offset = spread_offset(&site.id, window.min(interval));
    chrono::Duration::from_std(offset)
        .ok()
        .and_then(|o| now.checked_add_signed(o))
        .unwrap_or(now)
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
    concurrency: usize,
    /// Unix seconds of the scheduler loop's last turn, for `/healthz`.
    pub heartbeat: Arc<AtomicI64>,
    /// Sites whose run panicked and that wait for their retry, for `/healthz`.
    pub internal_errors: Arc<InternalErrors>,
    /// The first retry delay after a panic; doubles per panic in a row up to an hour.
    pub panic_backoff: Duration,
    /// Each site's planned next run, for the dashboard.
    pub planned: Arc<PlannedRuns>,
}

/// The longest wait before retrying a site that keeps panicking.
const MAX_PANIC_BACKOFF: Duration = Duration::from_secs(3600);

/// The longest the loop sleeps with nothing due: keeps the `/healthz` heartbeat fresh
/// (it allows 60 s) and re-reads the wall clock, so a clock step moves due times.
const MAX_NAP: Duration = Duration::from_secs(10);

/// The retry delay after `panics_in_a_row` panics (at least one).
fn panic_delay(first: Duration, panics_in_a_row: u32) -> Duration {
    first
        .saturating_mul(1 << panics_in_a_row.saturating_sub(1).min(12))
        .min(MAX_PANIC_BACKOFF)
}

/// Each queued site's planned next run (start-up spread and panic backoff included), for
/// the dashboard: `next_run` alone would call a site waiting for its spread slot due now.
#[derive(Default)]
pub struct PlannedRuns(Mutex<HashMap<String, DateTime<Utc>>>);

impl PlannedRuns {
    /// The planned time of a queued site; `None` while it runs or before it is planned.
    pub fn get(&self, id: &str) -> Option<DateTime<Utc>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(id)
            .copied()
    }

    fn set(&self, id: &str, due: Option<DateTime<Utc>>) {
        let mut planned = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match due {
            Some(due) => {
                planned.insert(id.to_owned(), due);
            }
            None => {
                planned.remove(id);
            }
        }
    }
}

/// One site as the schedule knows it.
struct Planned {
    /// The current rules; a run in flight may still use older ones.
    site: Arc<Site>,
    /// Its key in [`Plan::queue`]; `None` while it runs.
    due: Option<DateTime<Utc>>,
    panics_in_a_row: u32,
}

/// Every site's next run, sorted: the loop only ever looks at the first.
#[derive(Default)]
struct Plan {
    sites: HashMap<String, Planned>,
    queue: BTreeSet<(DateTime<Utc>, String)>,
    /// Sites with a run in flight (with any rules): a site never runs twice at once, so
    /// a site here is not queued until its run ends.
    running: HashSet<String>,
    /// `queue` as the dashboard reads it.
    published: Arc<PlannedRuns>,
}

impl Plan {
    fn schedule(&mut self, id: &str, due: DateTime<Utc>) {
        let Some(planned) = self.sites.get_mut(id) else {
            return;
        };
        if let Some(old) = planned.due.replace(due) {
            self.queue.remove(&(old, id.to_owned()));
        }
        self.queue.insert((due, id.to_owned()));
        self.published.set(id, Some(due));
    }

    fn unqueue(&mut self, id: &str) {
        if let Some(old) = self.sites.get_mut(id).and_then(|p| p.due.take()) {
            self.queue.remove(&(old, id.to_owned()));
        }
        self.published.set(id, None);
    }

    /// The earliest due time, if any site waits.
    fn earliest(&self) -> Option<DateTime<Utc>> {
        self.queue.first().map(|(due, _)| *due)
    }

    /// Takes the first site due by `now` out of the queue and marks it running.
    fn start_due(&mut self, now: DateTime<Utc>) -> Option<Arc<Site>> {
        let (due, id) = self.queue.first()?.clone();
        if due > now {
            return None;
        }
        self.queue.remove(&(due, id.clone()));
        self.published.set(&id, None);
        let planned = self.sites.get_mut(&id)?;
        planned.due = None;
        self.running.insert(id);
        Some(planned.site.clone())
    }
}

/// How a run task ended, for the loop.
struct RunEnd {
    site: String,
    /// The rules the run used: a panic under older rules does not back off the new ones.
    fingerprint: [u8; 32],
    panicked: bool,
}

impl Scheduler {
    pub fn new(crawler: Arc<Crawler>, concurrency: usize) -> Self {
        Scheduler {
            crawler,
            slots: Arc::new(Semaphore::new(concurrency)),
            concurrency,
            heartbeat: Arc::new(AtomicI64::new(Utc::now().timestamp())),
            internal_errors: Arc::default(),
            panic_backoff: test_hooks::panic_backoff().unwrap_or(Duration::from_secs(60)),
            planned: Arc::default(),
        }
    }

    /// Runs until `shutdown` turns true; then lets in-flight runs finish (at most `grace`).
    pub async fn run(
        self,
        mut sites: watch::Receiver<Arc<SiteSet>>,
        mut shutdown: watch::Receiver<bool>,
        grace: Duration,
    ) {
        let mut plan = Plan {
            published: self.planned.clone(),
            ..Plan::default()
        };
        let first = sites.borrow_and_update().clone();
        self.plan_start(&mut plan, &first);
        let mut runs: JoinSet<RunEnd> = JoinSet::new();
        // Which site each task runs, for a task that died outside its supervision.
        let mut tasks: HashMap<tokio::task::Id, (String, [u8; 32])> = HashMap::new();
        loop {
            self.heartbeat
                .store(Utc::now().timestamp(), Ordering::Relaxed);
            let now = Utc::now();
            let earliest = plan.earliest();
            let due = earliest.is_some_and(|d| d <= now);
            // While a due site waits for a slot, the nap only keeps the heartbeat fresh
            // (every slot may be held by a long run).
            let nap = match earliest {
                Some(d) if !due => (d - now).to_std().unwrap_or(Duration::ZERO).min(MAX_NAP),
                _ => MAX_NAP,
            };
            tokio::select! {
                biased;
                _ = shutdown.changed() => break,
                changed = sites.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let set = sites.borrow_and_update().clone();
                    self.follow(&mut plan, &set);
                }
                Some(ended) = runs.join_next_with_id(), if !runs.is_empty() => {
                    let end = match ended {
                        Ok((task, end)) => {
                            tasks.remove(&task);
                            end
                        }
                        Err(e) => {
                            let Some((site, fingerprint)) = tasks.remove(&e.id()) else {
                                continue;
                            };
                            tracing::error!(%site, error = %e, "a run task died outside its supervision");
                            RunEnd { site, fingerprint, panicked: true }
                        }
                    };
                    self.ended(&mut plan, end);
                }
                permit = self.slots.clone().acquire_owned(), if due => {
                    let Ok(permit) = permit else { break };
                    if *shutdown.borrow() {
                        break;
                    }
                    if let Some(site) = plan.start_due(Utc::now()) {
                        let id = site.id.clone();
                        let fingerprint = site.fingerprint;
                        let handle = runs.spawn(supervised_run(
                            site,
                            self.crawler.clone(),
                            self.internal_errors.clone(),
                            permit,
                        ));
                        tasks.insert(handle.id(), (id, fingerprint));
                    }
                }
                _ = tokio::time::sleep(nap) => {}
            }
            if *shutdown.borrow() {
                break;
            }
        }
        self.crawler.stopping.send_replace(true);
        let drain = async { while runs.join_next().await.is_some() {} };
        if tokio::time::timeout(grace, drain).await.is_err() {
            tracing::warn!(
                "some runs did not finish within {grace:?}; their stored items are kept"
            );
            // Left to stop with the runtime, as before: not cut in the middle of a write.
            runs.detach_all();
        }
        let _ = self.crawler.store.flush().await;
    }

    /// The first plan: sites that never ran start at once, overdue ones are spread.
    fn plan_start(&self, plan: &mut Plan, set: &SiteSet) {
        let now = Utc::now();
        let lasts: Vec<(Arc<Site>, Option<RunStatus>)> = set
            .sites
            .values()
            .map(|site| {
                let last = self.crawler.store.run_status(&site.id).ok().flatten();
                (site.clone(), last)
            })
            .collect();
        let overdue = lasts
            .iter()
            .filter(|(site, last)| last.as_ref().is_some_and(|l| is_overdue(site, l, now)))
            .count();
        let window = startup_window(overdue, self.concurrency);
        if overdue > 0 {
            tracing::info!(
                overdue,
                ?window,
                "overdue sites are spread over the start-up window"
            );
        }
        for (site, last) in lasts {
            let due = first_run(&site, last.as_ref(), now, window);
            let id = site.id.clone();
            plan.sites.insert(
                id.clone(),
                Planned {
                    site,
                    due: None,
                    panics_in_a_row: 0,
                },
            );
            plan.schedule(&id, due);
        }
    }

    /// Applies a reload: removed sites leave the plan, new and changed ones are planned
    /// from their stored status; unchanged ones keep their place.
    fn follow(&self, plan: &mut Plan, set: &SiteSet) {
        let gone: Vec<String> = plan
            .sites
            .keys()
            .filter(|id| !set.sites.contains_key(*id))
            .cloned()
            .collect();
        for id in gone {
            plan.unqueue(&id);
            plan.sites.remove(&id);
            // A removed site no longer degrades the service.
            self.internal_errors.set(&id, false);
        }
        let now = Utc::now();
        for (id, site) in &set.sites {
            if plan
                .sites
                .get(id)
                .is_some_and(|p| p.site.fingerprint == site.fingerprint)
            {
                continue;
            }
            plan.unqueue(id);
            plan.sites.insert(
                id.clone(),
                Planned {
                    site: site.clone(),
                    due: None,
                    panics_in_a_row: 0,
                },
            );
            // The run in flight finishes with the rules it started with; the new rules
            // are planned when it ends.
            if !plan.running.contains(id) {
                let last = self.crawler.store.run_status(id).ok().flatten();
                plan.schedule(id, next_run(site, last.as_ref(), now));
            }
        }
    }

    /// A run ended: plans the site's next run (a retry with backoff after a panic).
    fn ended(&self, plan: &mut Plan, end: RunEnd) {
        plan.running.remove(&end.site);
        let now = Utc::now();
        let Some(planned) = plan.sites.get_mut(&end.site) else {
            // Removed while it ran: a panic of its last run does not degrade the service.
            self.internal_errors.set(&end.site, false);
            return;
        };
        let same_rules = planned.site.fingerprint == end.fingerprint;
        let due = if end.panicked && same_rules {
            planned.panics_in_a_row = planned.panics_in_a_row.saturating_add(1);
            let wait = panic_delay(self.panic_backoff, planned.panics_in_a_row);
            chrono::Duration::from_std(wait)
                .ok()
                .and_then(|w| now.checked_add_signed(w))
                .unwrap_or(now)
        } else {
            planned.panics_in_a_row = 0;
            let last = self.crawler.store.run_status(&end.site).ok().flatten();
            next_run(&planned.site, last.as_ref(), now)
        };
        tracing::debug!(site = %end.site, %due, "next run");
        plan.schedule(&end.site, due);
    }
}

/// One run with its slot: a panic is caught, recorded as `internal-error` and counted.
async fn supervised_run(
    site: Arc<Site>,
    crawler: Arc<Crawler>,
    internal_errors: Arc<InternalErrors>,
    permit: OwnedSemaphorePermit,
) -> RunEnd {
    let started = Utc::now();
    let outcome = AssertUnwindSafe(refresh(&site, &crawler, &Quiet))
        .catch_unwind()
        .await;
    drop(permit);
    let panicked = outcome.is_err();
    match outcome {
        Ok(status) => {
            internal_errors.set(&site.id, false);
            log_run(&site.id, &status);
        }
        Err(panic) => {
            internal_errors.set(&site.id, true);
            let status = panicked_run(&site.id, &crawler, started, panic_message(&*panic));
            crawler
                .metrics
                .add("feedbridge_site_panics_total", &[("site", &site.id)], 1.0);
            record_status(&crawler, &site.id, &status).await;
            log_run(&site.id, &status);
        }
    }
    RunEnd {
        site: site.id.clone(),
        fingerprint: site.fingerprint,
        panicked,
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn site(id: &str, schedule: &str) -> Arc<Site> {
        let text = format!(
            "title = \"t\"\nstart = [\"http://127.0.0.1:1/list.html\"]\nschedule = \"{schedule}\"\n\
             timezone = \"UTC\"\n\n[list]\nitem = \"li\"\nlink = \"a\"\n"
        );
        Arc::new(crate::site::compile(Path::new(&format!("{id}.toml")), &text).unwrap())
    }

    fn ran_at(started: DateTime<Utc>) -> RunStatus {
        Run::new(started).finish(None, false, 0)
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn never_run_sites_start_at_once_even_at_start_up() {
        let now = at("2026-01-01T12:07:00Z");
        let s = site("a", "*/30 * * * *");
        assert_eq!(next_run(&s, None, now), now);
        assert_eq!(first_run(&s, None, now, Duration::from_secs(3600)), now);
    }

    #[test]
    fn a_site_not_yet_due_keeps_its_cron_time_at_start_up() {
        let now = at("2026-01-01T12:07:00Z");
        let s = site("a", "*/30 * * * *");
        let last = ran_at(at("2026-01-01T12:00:05Z"));
        let due = first_run(&s, Some(&last), now, Duration::from_secs(3600));
        assert_eq!(due, next_run(&s, Some(&last), now));
        assert!(due >= at("2026-01-01T12:30:00Z") && due < at("2026-01-01T12:30:30Z"));
    }

    #[test]
    fn overdue_sites_are_spread_over_the_window_capped_by_their_interval() {
        let now = at("2026-01-01T12:07:00Z");
        let last = ran_at(at("2026-01-01T08:00:00Z"));
        let window = startup_window(10_000, 4);
        assert!(window > Duration::from_secs(1800), "{window:?}");
        let dues: Vec<DateTime<Utc>> = (0..1000)
            .map(|i| {
                first_run(
                    &site(&format!("s{i}"), "*/30 * * * *"),
                    Some(&last),
                    now,
                    window,
                )
            })
            .collect();
        // Overdue as they all are, the plain rule would run each at once.
        assert_eq!(next_run(&site("s0", "*/30 * * * *"), Some(&last), now), now);
        let end = now + chrono::Duration::minutes(30);
        assert!(dues.iter().all(|d| *d >= now && *d < end));
        // Spread: every tenth of the interval gets some, none gets most.
        let mut buckets = [0usize; 10];
        for d in &dues {
            buckets[((*d - now).num_seconds() / 180) as usize] += 1;
        }
        assert!(
            buckets.iter().all(|&n| (40..=200).contains(&n)),
            "{buckets:?}"
        );
        // Deterministic: the same site gets the same place after every restart.
        let again = first_run(&site("s7", "*/30 * * * *"), Some(&last), now, window);
        assert_eq!(again, dues[7]);
    }

    #[test]
    fn a_few_overdue_sites_are_not_held_back_long() {
        assert_eq!(startup_window(0, 4), Duration::ZERO);
        assert_eq!(startup_window(3, 4), ASSUMED_RUN);
        assert_eq!(startup_window(9, 4), ASSUMED_RUN * 3);
        let now = at("2026-01-01T12:07:00Z");
        let last = ran_at(at("2026-01-01T08:00:00Z"));
        let s = site("a", "*/30 * * * *");
        let due = first_run(&s, Some(&last), now, startup_window(1, 4));
        assert!(due >= now && due < now + chrono::Duration::seconds(5));
    }

    #[test]
    fn spread_offsets_stay_in_their_window() {
        assert_eq!(spread_offset("a", Duration::ZERO), Duration::ZERO);
        for i in 0..100 {
            let o = spread_offset(&format!("s{i}"), Duration::from_secs(7));
            assert!(o < Duration::from_secs(7));
        }
    }

    #[test]
    fn panic_backoff_doubles_up_to_an_hour() {
        let first = Duration::from_secs(60);
        assert_eq!(panic_delay(first, 1), first);
        assert_eq!(panic_delay(first, 2), first * 2);
        assert_eq!(panic_delay(first, 3), first * 4);
        assert_eq!(panic_delay(first, 30), MAX_PANIC_BACKOFF);
    }

    fn plan_with(ids: &[&str]) -> Plan {
        let mut plan = Plan::default();
        for id in ids {
            plan.sites.insert(
                (*id).to_owned(),
                Planned {
                    site: site(id, "*/30 * * * *"),
                    due: None,
                    panics_in_a_row: 0,
                },
            );
        }
        plan
    }

    #[test]
    fn the_plan_starts_sites_in_due_order_and_only_when_due() {
        let now = at("2026-01-01T12:00:00Z");
        let mut plan = plan_with(&["a", "b", "c"]);
        plan.schedule("a", now + chrono::Duration::seconds(30));
        plan.schedule("b", now - chrono::Duration::seconds(5));
        plan.schedule("c", now);
        assert_eq!(plan.earliest(), Some(now - chrono::Duration::seconds(5)));
        assert_eq!(plan.start_due(now).unwrap().id, "b");
        assert_eq!(plan.start_due(now).unwrap().id, "c");
        assert!(plan.start_due(now).is_none(), "a is not due yet");
        assert_eq!(plan.earliest(), Some(now + chrono::Duration::seconds(30)));
        assert!(plan.running.contains("b") && plan.running.contains("c"));
        assert_eq!(plan.sites["b"].due, None);
    }

    #[test]
    fn rescheduling_a_site_moves_it_instead_of_adding_it_twice() {
        let now = at("2026-01-01T12:00:00Z");
        let mut plan = plan_with(&["a", "b"]);
        plan.schedule("a", now);
        plan.schedule("b", now + chrono::Duration::seconds(10));
        plan.schedule("a", now + chrono::Duration::seconds(20));
        assert_eq!(plan.queue.len(), 2);
        assert_eq!(
            plan.start_due(now + chrono::Duration::seconds(60))
                .unwrap()
                .id,
            "b"
        );
        plan.unqueue("a");
        assert!(plan.queue.is_empty());
        plan.schedule("gone", now);
        assert!(plan.queue.is_empty(), "an unknown site is not planned");
    }

    #[test]
    fn the_dashboard_sees_the_planned_time_and_nothing_while_a_site_runs() {
        let now = at("2026-01-01T12:00:00Z");
        let mut plan = plan_with(&["a", "b"]);
        let spread = now + chrono::Duration::seconds(300);
        plan.schedule("a", now);
        plan.schedule("b", spread);
        assert_eq!(
            plan.published.get("b"),
            Some(spread),
            "not 'now' for a spread site"
        );
        assert_eq!(plan.start_due(now).unwrap().id, "a");
        assert_eq!(plan.published.get("a"), None, "a runs");
        plan.unqueue("b");
        assert_eq!(plan.published.get("b"), None);
    }
}

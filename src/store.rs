//! The store: sled, the single source of truth for items, validators and run status.
//!
//! Layout (one sled tree each; `site` is the site id, `\0` a separator, `key` the 16-byte
//! blake3 of the canonical article URL):
//! - `items`:      `site\0key` -> JSON [`StoredItem`]
//! - `by_date`:    `site\0<inverted sort time, 8 bytes BE>key` -> empty, so "newest N"
//!   is a prefix scan of N keys, never a scan of the site
//! - `aliases`:    `site\0<alias>` -> key (an upstream guid, so a changed link is no new item)
//! - `site_validators`: `site\0URL` -> JSON [`RuleValidators`] for conditional GETs: a
//!   validator belongs to the site that read the page and to the rules it read it with, so
//!   a 304 never hides a page from other rules (a fixed selector) or another site
//! - `rules`:      site -> the 32-byte fingerprint of the rules of its last completed run
//! - `runs`:       site -> JSON [`RunStatus`]
//! - `history`:    `site\0<inverted start time, 8 bytes BE>` -> JSON [`RunStatus`], the
//!   last [`HISTORY_RUNS`] runs of each site, for the dashboard
//! - `counts`:     site -> u64 BE, the site's stored items, changed in the transaction
//!   that adds or removes an item, so the pages that list every site read one key per
//!   site instead of scanning its items
//! - default tree: `schema_version` -> u32 BE, checked at open; older stores are migrated.
//!
//! An item and its index entries change in one sled transaction; a run flushes before it
//! reports, so an item reported stored survives `kill -9`, and the key makes duplicates
//! impossible.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use crate::model::{Item, ItemKey, StoredItem, Validators};

/// 2: validators per (site, rules) instead of per URL; the version-1 `validators` tree is
/// dropped on open (it only costs one unconditional read per list page).
/// 3: item counters per site (`counts`), counted once at open from `items`.
const SCHEMA_VERSION: u32 = 3;

/// How the store uses memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    /// sled's page cache, in bytes (sled's own use runs somewhat above it: see
    /// `benches/store_memory.rs`).
    pub cache_bytes: u64,
    /// How often sled writes its buffers out on its own (`None`: only when asked; each
    /// run flushes before it reports).
    pub flush_every_ms: Option<u64>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            cache_bytes: 32 << 20,
            flush_every_ms: Some(500),
        }
    }
}

/// Runs kept per site in the history the dashboard shows.
pub const HISTORY_RUNS: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store {path} is in use by another feedbridge process; stop it or use another --data directory")]
    InUse { path: String },
    #[error("store {path} was written by a newer feedbridge (schema {found}, this one reads up to {SCHEMA_VERSION}); upgrade feedbridge, the store was left untouched")]
    NewerSchema { path: String, found: u32 },
    #[error(
        "`{path}` is not a directory; --data must name a directory (it is created when missing)"
    )]
    NotADirectory { path: String },
    #[error("`{path}` is read-only; give --data a directory feedbridge can write to")]
    ReadOnly { path: String },
    #[error("cannot open the store in `{path}`: {message}")]
    Open { path: String, message: String },
    // The sled and serde errors are shown in the message and not chained as a source:
    // `{:#}` printing would repeat them ("IO error: …: IO error: …").
    #[error("store: {0}")]
    Sled(sled::Error),
    #[error("store: cannot decode a record: {0}")]
    Decode(serde_json::Error),
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Sled(e)
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::Decode(e)
    }
}

/// Words for an I/O error met while opening the store at `dir`, naming the path at fault.
/// Opens the sled database, waiting briefly for a lock that is about to be released:
/// a store dropped in this process is closed by sled's IO threads a moment later, and a
/// reopen in that window (a test, a quick restart) must not be refused as "in use".
fn open_db(dir: &Path, options: &StoreOptions) -> Result<sled::Db, StoreError> {
    const LOCK_WAIT: Duration = Duration::from_millis(1500);
    let started = std::time::Instant::now();
    loop {
        let opened = sled::Config::new()
            .path(dir)
            .cache_capacity(options.cache_bytes)
            .flush_every_ms(options.flush_every_ms)
            .open();
        match opened {
            Ok(db) => return Ok(db),
            Err(sled::Error::Io(io))
                if io.kind() == std::io::ErrorKind::WouldBlock
                    || io.to_string().contains("lock") =>
            {
                if started.elapsed() >= LOCK_WAIT {
                    return Err(StoreError::InUse {
                        path: dir.display().to_string(),
                    });
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(sled::Error::Io(io)) => return Err(open_error(dir, &io)),
            Err(other) => return Err(StoreError::Sled(other)),
        }
    }
}

fn open_error(dir: &Path, e: &std::io::Error) -> StoreError {
    use std::io::ErrorKind;
    // The nearest existing ancestor is the one that refused (a file in the way, a
    // read-only parent).
    let existing = dir
        .ancestors()
        .find(|p| !p.as_os_str().is_empty() && p.exists())
        .unwrap_or(dir);
    let shown = |p: &Path| p.display().to_string();
    match e.kind() {
        ErrorKind::AlreadyExists | ErrorKind::NotADirectory if !existing.is_dir() => {
            StoreError::NotADirectory {
                path: shown(existing),
            }
        }
        ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem => StoreError::ReadOnly {
            path: shown(existing),
        },
        _ => StoreError::Open {
            path: shown(dir),
            message: e.to_string(),
        },
    }
}

/// A page's validators with the fingerprint of the rules that read the page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleValidators {
    /// Hex blake3 of the selector file that was in force.
    pub rules: String,
    #[serde(flatten)]
    pub validators: Validators,
}

/// What an upsert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upsert {
    New,
    Updated,
    Unchanged,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// New or updated items were stored.
    Ok,
    /// Pages were read, nothing new.
    NoNewItems,
    /// Every list page answered 304.
    NotModified,
    /// A 200 list page on which the item selector matched nothing: the markup changed.
    SelectorsMatchedNothing,
    Failed,
    /// The run passed its `run_timeout`; what it stored before is kept.
    TimedOut,
    /// The run panicked (a bug, not the site's fault); the scheduler retries with backoff.
    InternalError,
}

/// How a field was found over one run's items.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldHits {
    /// By the site's selector.
    pub selector: u32,
    /// By automatic extraction (the rule was absent or matched nothing).
    pub auto: u32,
    /// From the list page, the upstream feed or a CMS meta tag.
    pub fallback: u32,
    /// Not found.
    pub missing: u32,
}

/// The last run of a site, for `/status.json`, `/` and the overdue check at start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunStatus {
    pub started: DateTime<Utc>,
    pub finished: DateTime<Utc>,
    pub outcome: Outcome,
    pub pages_fetched: u32,
    pub not_modified: u32,
    pub items_seen: u32,
    pub new: u32,
    pub updated: u32,
    pub unchanged: u32,
    pub articles_failed: u32,
    /// Items extracted this run (the denominator of the hit rates below).
    #[serde(default)]
    pub extracted: u32,
    /// How many of the items read this run got each field (hit rates).
    pub with_title: u32,
    pub with_date: u32,
    pub with_source: u32,
    pub with_body: u32,
    /// Per field (title, date, source, body, images): where this run's values came from,
    /// so selector rot (selectors giving way to automatic extraction) shows before
    /// readers notice.
    #[serde(default)]
    pub fields: std::collections::BTreeMap<String, FieldHits>,
    pub warnings: Vec<String>,
    pub last_error: Option<String>,
    pub error_class: Option<String>,
    pub consecutive_failures: u32,
    /// The last run that ended well, kept across failures.
    pub last_success: Option<DateTime<Utc>>,
}

/// The part of a [`RunStatus`] a page listing every site needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct RunBrief {
    pub outcome: Outcome,
    pub consecutive_failures: u32,
}

pub struct Store {
    db: sled::Db,
    items: sled::Tree,
    by_date: sled::Tree,
    aliases: sled::Tree,
    validators: sled::Tree,
    rules: sled::Tree,
    runs: sled::Tree,
    history: sled::Tree,
    counts: sled::Tree,
    /// Bumped on every change of a site's items; the feed cache keys on it.
    generations: Mutex<HashMap<String, u64>>,
    /// Serializes `flush` (see there).
    flushing: tokio::sync::Mutex<()>,
}

fn prefix(site: &str) -> Vec<u8> {
    let mut p = site.as_bytes().to_vec();
    p.push(0);
    p
}

fn item_key(site: &str, key: &ItemKey) -> Vec<u8> {
    let mut k = prefix(site);
    k.extend_from_slice(&key.0);
    k
}

fn date_key(site: &str, sort_ms: i64, key: &ItemKey) -> Vec<u8> {
    let mut k = prefix(site);
    // Newest first: invert the (offset, so non-negative) time.
    let t = (sort_ms as i128 + (1i128 << 62)).clamp(0, u64::MAX as i128) as u64;
    k.extend_from_slice(&(u64::MAX - t).to_be_bytes());
    k.extend_from_slice(&key.0);
    k
}

fn alias_key(site: &str, alias: &str) -> Vec<u8> {
    let mut k = prefix(site);
    k.extend_from_slice(alias.as_bytes());
    k
}

impl Store {
    /// Opens (creating) the store in `dir` with the default options.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        Store::open_with(dir, &StoreOptions::default())
    }

    /// Opens (creating) the store in `dir`; refuses a store in use or from a newer version.
    pub fn open_with(dir: &Path, options: &StoreOptions) -> Result<Store, StoreError> {
        let path = dir.display().to_string();
        match std::fs::metadata(dir) {
            Ok(m) if !m.is_dir() => return Err(StoreError::NotADirectory { path }),
            Ok(_) => {}
            Err(_) => std::fs::create_dir_all(dir).map_err(|e| open_error(dir, &e))?,
        }
        let db = open_db(dir, options)?;
        let mut count_items = false;
        match db.get("schema_version")? {
            Some(v) => {
                let found = u32::from_be_bytes(v.as_ref().try_into().unwrap_or([0xff; 4]));
                if found > SCHEMA_VERSION {
                    return Err(StoreError::NewerSchema { path, found });
                }
                if found < 2 {
                    // Per-URL validators were shared by sites and rules; dropping them
                    // costs each list page one unconditional GET.
                    db.drop_tree("validators")?;
                }
                count_items = found < 3;
            }
            None => {
                db.insert("schema_version", &SCHEMA_VERSION.to_be_bytes())?;
            }
        }
        let items = db.open_tree("items")?;
        let counts = db.open_tree("counts")?;
        if count_items {
            count_all(&items, &counts)?;
            db.insert("schema_version", &SCHEMA_VERSION.to_be_bytes())?;
            db.flush()?;
        }
        Ok(Store {
            items,
            counts,
            by_date: db.open_tree("by_date")?,
            aliases: db.open_tree("aliases")?,
            validators: db.open_tree("site_validators")?,
            rules: db.open_tree("rules")?,
            runs: db.open_tree("runs")?,
            history: db.open_tree("history")?,
            flushing: tokio::sync::Mutex::new(()),
            db,
            generations: Mutex::default(),
        })
    }

    /// Is this canonical URL (or alias) already stored for the site?
    pub fn is_known(&self, site: &str, url: &str, aliases: &[String]) -> Result<bool, StoreError> {
        if self
            .items
            .contains_key(item_key(site, &ItemKey::of_url(url)))?
        {
            return Ok(true);
        }
        for a in aliases {
            if self.aliases.contains_key(alias_key(site, a))? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Stores an item: new, updated (content changed: same id, new `updated`), or unchanged.
    pub fn upsert(
        &self,
        site: &str,
        item: &Item,
        now: DateTime<Utc>,
    ) -> Result<Upsert, StoreError> {
        self.upsert_placed(site, item, now, None)
    }

    /// [`Store::upsert`], where a new item without a date sorts (and counts as updated) at
    /// `undated_at` instead of `now`: a run puts its undated items just below the oldest
    /// dated item it read, so a page without a date does not lead a feed of old news.
    pub fn upsert_placed(
        &self,
        site: &str,
        item: &Item,
        now: DateTime<Utc>,
        undated_at: Option<DateTime<Utc>>,
    ) -> Result<Upsert, StoreError> {
        let undated_at = undated_at.map_or(now, |at| at.min(now));
        let hash = blake3_hex(item.content_hash());
        // An alias hit means the upstream link changed: keep the old identity.
        let mut key = item.key();
        if !self.items.contains_key(item_key(site, &key))? {
            for a in &item.aliases {
                if let Some(k) = self.aliases.get(alias_key(site, a))? {
                    if let Ok(bytes) = <[u8; 16]>::try_from(k.as_ref()) {
                        key = ItemKey(bytes);
                        break;
                    }
                }
            }
        }
        let ikey = item_key(site, &key);
        let result = (&self.items, &self.by_date, &self.aliases, &self.counts).transaction(
            |(items, by_date, aliases, counts)| {
                let old: Option<StoredItem> = match items.get(&ikey)? {
                    Some(bytes) => serde_json::from_slice(&bytes).ok(),
                    None => None,
                };
                let (stored, outcome) = match old {
                    Some(old) if old.hash == hash => return Ok(Upsert::Unchanged),
                    Some(old) => {
                        by_date.remove(date_key(site, old.sort_ms, &key))?;
                        // Undated, it keeps its place: an edit is no reason to jump the feed.
                        let sort_ms = item.published.map_or(old.sort_ms, |p| p.timestamp_millis());
                        let mut merged = item.clone();
                        merged.url = old.item.url.clone();
                        for a in &old.item.aliases {
                            if !merged.aliases.contains(a) {
                                merged.aliases.push(a.clone());
                            }
                        }
                        (
                            StoredItem {
                                item: merged,
                                first_seen: old.first_seen,
                                updated: now,
                                sort_ms,
                                hash: hash.clone(),
                            },
                            Upsert::Updated,
                        )
                    }
                    None => {
                        let sort_ms = item
                            .published
                            .map_or(undated_at.timestamp_millis(), |p| p.timestamp_millis());
                        let updated = item
                            .published
                            .map_or(undated_at, |p| p.with_timezone(&Utc).min(now));
                        (
                            StoredItem {
                                item: item.clone(),
                                first_seen: now,
                                updated,
                                sort_ms,
                                hash: hash.clone(),
                            },
                            Upsert::New,
                        )
                    }
                };
                let json = serde_json::to_vec(&stored)
                    .map_err(|e| ConflictableTransactionError::Abort(e.to_string()))?;
                items.insert(ikey.as_slice(), json)?;
                by_date.insert(date_key(site, stored.sort_ms, &key), &[])?;
                for a in &stored.item.aliases {
                    aliases.insert(alias_key(site, a), &key.0)?;
                }
                if outcome == Upsert::New {
                    let n = counts.get(site.as_bytes())?.map_or(0, |v| decode_count(&v));
                    counts.insert(site.as_bytes(), &(n + 1).to_be_bytes())?;
                }
                Ok(outcome)
            },
        );
        let outcome = result.map_err(|e| match e {
            TransactionError::Abort(msg) => StoreError::Sled(sled::Error::Unsupported(msg)),
            TransactionError::Storage(e) => StoreError::Sled(e),
        })?;
        if outcome != Upsert::Unchanged {
            self.bump(site);
        }
        Ok(outcome)
    }

    /// The newest `n` items of a site, newest first, read through the date index.
    pub fn recent(&self, site: &str, n: usize) -> Result<Vec<StoredItem>, StoreError> {
        let mut out = Vec::with_capacity(n.min(1000));
        for entry in self.by_date.scan_prefix(prefix(site)).take(n) {
            let (k, _) = entry?;
            let key = &k[k.len() - 16..];
            let mut ik = prefix(site);
            ik.extend_from_slice(key);
            if let Some(bytes) = self.items.get(ik)? {
                out.push(serde_json::from_slice(&bytes)?);
            }
        }
        Ok(out)
    }

    /// The site's stored items: one read of its counter.
    pub fn count(&self, site: &str) -> usize {
        self.counts
            .get(site.as_bytes())
            .ok()
            .flatten()
            .map_or(0, |v| decode_count(&v) as usize)
    }

    /// Keeps the newest `keep` items of a site; returns how many were removed.
    pub fn prune(&self, site: &str, keep: usize) -> Result<usize, StoreError> {
        let old: Vec<sled::IVec> = self
            .by_date
            .scan_prefix(prefix(site))
            .keys()
            .skip(keep)
            .collect::<Result<_, _>>()?;
        if old.is_empty() {
            return Ok(0);
        }
        // One transaction: the counter moves with the items it counts, and an item a
        // concurrent run removed first is not counted twice.
        let removed = (&self.items, &self.by_date, &self.aliases, &self.counts)
            .transaction(|(items, by_date, aliases, counts)| {
                let mut removed = 0u64;
                for k in &old {
                    let key = &k[k.len() - 16..];
                    let mut ik = prefix(site);
                    ik.extend_from_slice(key);
                    if let Some(bytes) = items.remove(ik)? {
                        removed += 1;
                        if let Ok(stored) = serde_json::from_slice::<StoredItem>(&bytes) {
                            for a in &stored.item.aliases {
                                aliases.remove(alias_key(site, a))?;
                            }
                        }
                    }
                    by_date.remove(k)?;
                }
                if removed > 0 {
                    let n = counts.get(site.as_bytes())?.map_or(0, |v| decode_count(&v));
                    counts.insert(site.as_bytes(), &n.saturating_sub(removed).to_be_bytes())?;
                }
                Ok(removed)
            })
            .map_err(|e: TransactionError<()>| match e {
                TransactionError::Abort(()) => {
                    StoreError::Sled(sled::Error::Unsupported("prune aborted".into()))
                }
                TransactionError::Storage(e) => StoreError::Sled(e),
            })?;
        if removed > 0 {
            self.bump(site);
        }
        Ok(removed as usize)
    }

    /// The validators `site` stored for `url` while its rules had `fingerprint`; none
    /// when they were stored under other rules (a changed selector must see the page).
    pub fn validators(
        &self,
        site: &str,
        fingerprint: &[u8; 32],
        url: &str,
    ) -> Result<Option<Validators>, StoreError> {
        let Some(bytes) = self.validators.get(alias_key(site, url))? else {
            return Ok(None);
        };
        let stored: RuleValidators = serde_json::from_slice(&bytes)?;
        Ok((stored.rules == blake3_hex(*fingerprint)).then_some(stored.validators))
    }

    pub fn set_validators(
        &self,
        site: &str,
        fingerprint: &[u8; 32],
        url: &str,
        v: &Validators,
    ) -> Result<(), StoreError> {
        let key = alias_key(site, url);
        if v.is_empty() {
            self.validators.remove(key)?;
        } else {
            let stored = RuleValidators {
                rules: blake3_hex(*fingerprint),
                validators: v.clone(),
            };
            self.validators.insert(key, serde_json::to_vec(&stored)?)?;
        }
        Ok(())
    }

    /// Forgets every validator of a site (its rules changed).
    pub fn clear_validators(&self, site: &str) -> Result<(), StoreError> {
        for key in self.validators.scan_prefix(prefix(site)).keys() {
            self.validators.remove(key?)?;
        }
        Ok(())
    }

    /// The fingerprint of the rules the site's last completed run used.
    pub fn rules_fingerprint(&self, site: &str) -> Result<Option<[u8; 32]>, StoreError> {
        Ok(self
            .rules
            .get(site)?
            .and_then(|v| <[u8; 32]>::try_from(v.as_ref()).ok()))
    }

    /// Records that a run with these rules completed (every item it read is stored).
    pub fn set_rules_fingerprint(
        &self,
        site: &str,
        fingerprint: &[u8; 32],
    ) -> Result<(), StoreError> {
        self.rules.insert(site, fingerprint.as_slice())?;
        Ok(())
    }

    pub fn run_status(&self, site: &str) -> Result<Option<RunStatus>, StoreError> {
        Ok(self
            .runs
            .get(site)?
            .map(|v| serde_json::from_slice(&v))
            .transpose()?)
    }

    /// The few fields of the site's last run that sort the dashboard, read without
    /// building the rest of the record.
    pub fn run_brief(&self, site: &str) -> Result<Option<RunBrief>, StoreError> {
        Ok(self
            .runs
            .get(site)?
            .map(|v| serde_json::from_slice(&v))
            .transpose()?)
    }

    /// The site's last run as the JSON it is stored as (what `/status.json` sends), so a
    /// page listing thousands of sites copies bytes instead of decoding records.
    pub fn run_status_json(&self, site: &str) -> Result<Option<sled::IVec>, StoreError> {
        Ok(self.runs.get(site)?)
    }

    /// Records a finished run as the site's last run and in its history (the oldest
    /// runs past [`HISTORY_RUNS`] are dropped).
    pub fn set_run_status(&self, site: &str, status: &RunStatus) -> Result<(), StoreError> {
        let json = serde_json::to_vec(status)?;
        self.runs.insert(site, json.as_slice())?;
        let mut key = prefix(site);
        let t = (status.started.timestamp_millis() as i128 + (1i128 << 62))
            .clamp(0, u64::MAX as i128) as u64;
        key.extend_from_slice(&(u64::MAX - t).to_be_bytes());
        self.history.insert(key, json)?;
        let old: Vec<sled::IVec> = self
            .history
            .scan_prefix(prefix(site))
            .keys()
            .skip(HISTORY_RUNS)
            .collect::<Result<_, _>>()?;
        for k in old {
            self.history.remove(k)?;
        }
        Ok(())
    }

    /// The site's last `n` runs, newest first.
    pub fn run_history(&self, site: &str, n: usize) -> Result<Vec<RunStatus>, StoreError> {
        self.history
            .scan_prefix(prefix(site))
            .values()
            .take(n)
            .map(|v| Ok(serde_json::from_slice(&v?)?))
            .collect()
    }

    /// Changes to a site's items since this process opened the store.
    pub fn generation(&self, site: &str) -> u64 {
        self.generations
            .lock()
            .map(|g| g.get(site).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    fn bump(&self, site: &str) {
        if let Ok(mut g) = self.generations.lock() {
            *g.entry(site.to_owned()).or_default() += 1;
        }
    }

    /// Makes everything written so far durable.
    ///
    /// One flush at a time, each a blocking `flush` on the blocking pool: sled 0.34's
    /// `flush_async` deadlocks when called concurrently (spacejam/sled#1308, fixed only on
    /// its unreleased main), which 64 runs finishing together did here, hanging every
    /// sled-io thread. Runs that wait here find little left to write.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let _one_at_a_time = self.flushing.lock().await;
        let db = self.db.clone();
        match tokio::task::spawn_blocking(move || db.flush()).await {
            Ok(flushed) => {
                flushed?;
                Ok(())
            }
            // Only a panic inside sled (or a runtime shutting down) gets here.
            Err(e) => Err(StoreError::Sled(sled::Error::ReportableBug(format!(
                "flush did not complete: {e}"
            )))),
        }
    }

    /// For `/healthz`: a cheap read that fails when the store does.
    pub fn is_healthy(&self) -> bool {
        self.db.get("schema_version").is_ok()
    }
}

fn decode_count(v: &[u8]) -> u64 {
    <[u8; 8]>::try_from(v).map_or(0, u64::from_be_bytes)
}

/// Counts every site's items (the migration to schema 3): one scan of `items`.
fn count_all(items: &sled::Tree, counts: &sled::Tree) -> Result<(), StoreError> {
    let mut per_site: HashMap<Vec<u8>, u64> = HashMap::new();
    for key in items.iter().keys() {
        let key = key?;
        // `site\0` then the 16-byte key.
        if let Some(site) = key.len().checked_sub(17).map(|end| &key[..end]) {
            *per_site.entry(site.to_vec()).or_default() += 1;
        }
    }
    counts.clear()?;
    for (site, n) in per_site {
        counts.insert(site, &n.to_be_bytes())?;
    }
    Ok(())
}

fn blake3_hex(h: [u8; 32]) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn item(url: &str, title: &str, day: u32) -> Item {
        Item {
            url: url.into(),
            title: Some(title.into()),
            published: Some(
                chrono::FixedOffset::east_opt(8 * 3600)
                    .unwrap()
                    .with_ymd_and_hms(2020, 5, day, 0, 0, 0)
                    .unwrap(),
            ),
            ..Item::default()
        }
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 29, 0, 0, 0).unwrap()
    }

    #[test]
    fn open_errors_name_the_path_in_one_sentence() {
        use std::error::Error as _;
        let dir = tempdir();
        std::fs::create_dir_all(&*dir).unwrap();
        let file = dir.join("data");
        std::fs::write(&file, "x").unwrap();
        let e = Store::open(&file).err().expect("a file is no store");
        assert_eq!(
            e.to_string(),
            format!(
                "`{}` is not a directory; --data must name a directory (it is created when \
                 missing)",
                file.display()
            )
        );
        assert!(e.source().is_none(), "nothing repeated by a {{:#}} chain");
        // A file in the middle of the path is named, not the path asked for.
        let e = Store::open(&file.join("sub")).err().expect("under a file");
        assert!(
            e.to_string()
                .starts_with(&format!("`{}` is not a directory", file.display())),
            "{e}"
        );
        // Root ignores permissions, so the read-only words are checked on the error
        // itself: the nearest existing directory is the one named.
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let e = open_error(&dir.join("new/store"), &denied);
        assert_eq!(
            e.to_string(),
            format!(
                "`{}` is read-only; give --data a directory feedbridge can write to",
                dir.display()
            )
        );
    }

    #[test]
    fn new_updated_unchanged_and_newest_first() {
        let dir = tempdir();
        let store = Store::open(&dir).unwrap();
        assert_eq!(
            store
                .upsert("s", &item("http://a/1", "一", 1), now())
                .unwrap(),
            Upsert::New
        );
        assert_eq!(
            store
                .upsert("s", &item("http://a/2", "二", 3), now())
                .unwrap(),
            Upsert::New
        );
        assert_eq!(
            store
                .upsert("s", &item("http://a/1", "一", 1), now())
                .unwrap(),
            Upsert::Unchanged
        );
        let later = now() + chrono::Duration::hours(1);
        assert_eq!(
            store
                .upsert("s", &item("http://a/1", "一（更新）", 1), later)
                .unwrap(),
            Upsert::Updated
        );
        let recent = store.recent("s", 10).unwrap();
        assert_eq!(recent.len(), 2);
        assert_eq!(recent[0].item.url, "http://a/2");
        assert_eq!(recent[1].updated, later);
        assert_eq!(recent[1].first_seen, now());
        assert_eq!(store.count("s"), 2);
        assert_eq!(store.count("other"), 0);
    }

    #[test]
    fn aliases_keep_identity_and_prune_keeps_newest() {
        let dir = tempdir();
        let store = Store::open(&dir).unwrap();
        let mut a = item("http://a/old", "一", 1);
        a.aliases = vec!["guid-1".into()];
        store.upsert("s", &a, now()).unwrap();
        let mut moved = item("http://a/new", "一", 2);
        moved.aliases = vec!["guid-1".into()];
        assert!(store.is_known("s", "http://a/new", &moved.aliases).unwrap());
        assert_eq!(store.upsert("s", &moved, now()).unwrap(), Upsert::Updated);
        assert_eq!(store.count("s"), 1);
        for d in 3..9 {
            store
                .upsert("s", &item(&format!("http://a/{d}"), "x", d), now())
                .unwrap();
        }
        assert_eq!(store.prune("s", 3).unwrap(), 4);
        let urls: Vec<String> = store
            .recent("s", 10)
            .unwrap()
            .into_iter()
            .map(|s| s.item.url)
            .collect();
        assert_eq!(urls, ["http://a/8", "http://a/7", "http://a/6"]);
    }

    #[test]
    fn second_open_is_refused_and_newer_schema_too() {
        let dir = tempdir();
        let store = Store::open(&dir).unwrap();
        assert!(matches!(Store::open(&dir), Err(StoreError::InUse { .. })));
        store
            .db
            .insert("schema_version", &99u32.to_be_bytes())
            .unwrap();
        store.db.flush().unwrap();
        drop(store);
        assert!(matches!(
            Store::open(&dir),
            Err(StoreError::NewerSchema { found: 99, .. })
        ));
    }

    #[test]
    fn validators_belong_to_a_site_and_its_rules() {
        let dir = tempdir();
        let store = Store::open(&dir).unwrap();
        let v = Validators {
            etag: Some("\"e1\"".into()),
            last_modified: None,
        };
        let (old_rules, new_rules) = ([1u8; 32], [2u8; 32]);
        store
            .set_validators("a", &old_rules, "http://x/list", &v)
            .unwrap();
        assert_eq!(
            store.validators("a", &old_rules, "http://x/list").unwrap(),
            Some(v.clone())
        );
        // Another site on the same list URL has none of them, nor do changed rules.
        assert_eq!(
            store.validators("b", &old_rules, "http://x/list").unwrap(),
            None
        );
        assert_eq!(
            store.validators("a", &new_rules, "http://x/list").unwrap(),
            None
        );
        store.clear_validators("a").unwrap();
        assert_eq!(
            store.validators("a", &old_rules, "http://x/list").unwrap(),
            None
        );
        assert_eq!(store.rules_fingerprint("a").unwrap(), None);
        store.set_rules_fingerprint("a", &new_rules).unwrap();
        assert_eq!(store.rules_fingerprint("a").unwrap(), Some(new_rules));
    }

    #[test]
    fn a_version_1_store_is_migrated_and_loses_only_its_validators() {
        let dir = tempdir();
        {
            // No background flusher: it could still hold the file lock when this `db` is
            // dropped and the store below opens the same directory.
            let db = sled::Config::new()
                .path(&dir.0)
                .flush_every_ms(None)
                .open()
                .unwrap();
            db.insert("schema_version", &1u32.to_be_bytes()).unwrap();
            db.open_tree("validators")
                .unwrap()
                .insert("http://x/list", &b"{}"[..])
                .unwrap();
            db.flush().unwrap();
        }
        let store = Store::open(&dir).unwrap();
        store
            .upsert("s", &item("http://a/1", "一", 1), now())
            .unwrap();
        assert!(!store.db.tree_names().iter().any(|n| n == b"validators"));
        assert_eq!(
            store.db.get("schema_version").unwrap().unwrap().as_ref(),
            &SCHEMA_VERSION.to_be_bytes()
        );
    }

    #[test]
    fn item_counters_follow_upsert_duplicate_prune_and_reopen() {
        let dir = tempdir();
        {
            let store = Store::open(&dir).unwrap();
            for d in 1..=6 {
                store
                    .upsert("s", &item(&format!("http://a/{d}"), "x", d), now())
                    .unwrap();
            }
            // The same item again, unchanged and then updated: still one item each.
            store
                .upsert("s", &item("http://a/1", "x", 1), now())
                .unwrap();
            store
                .upsert("s", &item("http://a/1", "y", 1), now())
                .unwrap();
            // A moved link found by its alias is the same item too.
            let mut a = item("http://b/old", "x", 7);
            a.aliases = vec!["g".into()];
            store.upsert("t", &a, now()).unwrap();
            let mut moved = item("http://b/new", "x (edited)", 7);
            moved.aliases = vec!["g".into()];
            assert_eq!(store.upsert("t", &moved, now()).unwrap(), Upsert::Updated);
            assert_eq!((store.count("s"), store.count("t")), (6, 1));
            assert_eq!(store.prune("s", 4).unwrap(), 2);
            assert_eq!(store.prune("s", 4).unwrap(), 0);
            assert_eq!(store.count("s"), 4);
            assert_eq!(store.count("none"), 0);
        }
        // Reopened without a flush by hand: the counter is where the items are.
        let store = Store::open(&dir).unwrap();
        assert_eq!((store.count("s"), store.count("t")), (4, 1));
        assert_eq!(
            store.count("s"),
            store.items.scan_prefix(prefix("s")).count()
        );
    }

    #[test]
    fn a_version_2_store_is_counted_once_at_open() {
        let dir = tempdir();
        {
            let store = Store::open(&dir).unwrap();
            for d in 1..=5 {
                store
                    .upsert("site-a", &item(&format!("http://a/{d}"), "x", d), now())
                    .unwrap();
            }
            store
                .upsert("b", &item("http://b/1", "x", 1), now())
                .unwrap();
            // As a version-2 store was: no counters.
            store.counts.clear().unwrap();
            store
                .db
                .insert("schema_version", &2u32.to_be_bytes())
                .unwrap();
            store.db.flush().unwrap();
        }
        let store = Store::open(&dir).unwrap();
        assert_eq!((store.count("site-a"), store.count("b")), (5, 1));
        assert_eq!(
            store.db.get("schema_version").unwrap().unwrap().as_ref(),
            &3u32.to_be_bytes()
        );
        store
            .upsert("b", &item("http://b/2", "x", 2), now())
            .unwrap();
        assert_eq!(store.count("b"), 2);
    }

    #[test]
    fn an_undated_item_sorts_where_the_run_puts_it_and_keeps_that_place() {
        let dir = tempdir();
        let store = Store::open(&dir).unwrap();
        store
            .upsert("s", &item("http://a/1", "一", 1), now())
            .unwrap();
        store
            .upsert("s", &item("http://a/3", "三", 3), now())
            .unwrap();
        let mut undated = item("http://a/x", "无日期", 1);
        undated.published = None;
        let below = item("http://a/1", "", 1)
            .published
            .unwrap()
            .with_timezone(&Utc)
            - chrono::Duration::milliseconds(1);
        store
            .upsert_placed("s", &undated, now(), Some(below))
            .unwrap();
        let order = |store: &Store| -> Vec<String> {
            store
                .recent("s", 10)
                .unwrap()
                .into_iter()
                .map(|s| s.item.url)
                .collect()
        };
        assert_eq!(order(&store), ["http://a/3", "http://a/1", "http://a/x"]);
        assert_eq!(store.recent("s", 10).unwrap()[2].updated, below);
        undated.title = Some("无日期（更新）".into());
        let later = now() + chrono::Duration::hours(1);
        assert_eq!(store.upsert("s", &undated, later).unwrap(), Upsert::Updated);
        assert_eq!(order(&store), ["http://a/3", "http://a/1", "http://a/x"]);
    }

    /// A store directory under the temp dir, removed when dropped (after the store that
    /// uses it, which is declared later and so dropped first).
    struct TempDir(std::path::PathBuf);

    impl std::ops::Deref for TempDir {
        type Target = std::path::Path;
        fn deref(&self) -> &std::path::Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn tempdir() -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "feedbridge-store-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        TempDir(dir)
    }

    fn rand_suffix() -> u64 {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        N.fetch_add(1, Ordering::SeqCst)
    }
}

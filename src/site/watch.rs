//! Hot reload of the selectors directory, at a cost that does not grow with the number of
//! files while nothing changes, and applying only what changed.
//!
//! Where the OS tells us (Linux inotify), a change to one file is noticed at once; where
//! it does not (other systems, NFS and some bind mounts, an exhausted inotify limit, or
//! `FEEDBRIDGE_WATCH=poll`), a poll stats the *directory* every tick (additions,
//! deletions and saves by rename change its modification time) and a rotating sweep stats
//! a slice of the files per tick, so an in-place edit (which leaves the directory alone)
//! is noticed within one sweep. Latency, with the 0.7 s tick `serve` uses:
//!
//! - inotify: an edit applies about one settle interval (0.7 s) after the last write;
//! - poll, add/delete/rename: within two ticks plus the settle interval (about 2 s);
//! - poll, in-place edit: within one sweep ([`POLL_SWEEP`], 30 s for a big directory; a
//!   directory of up to [`MIN_SLICE`] files is swept every tick, as before).
//!
//! With inotify the sweep still runs, slowly ([`NOTIFY_SWEEP`]), for what inotify cannot
//! see (a symlinked file whose target changes elsewhere).
//!
//! A changed file is reloaded alone (a file among 10,000 costs one compile), and only
//! after it has been still for one interval: editors that write in several steps must
//! not get a half file applied. A file that fails to load keeps its site's last good
//! rules, and its `path:line:col` error is listed in the set.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::time::Instant;

use super::{load, Site, SiteSet};

/// Files stat'ed per tick at least: a small directory is swept whole every tick.
pub const MIN_SLICE: usize = 256;
/// How long a full sweep of a big directory takes when polling.
pub const POLL_SWEEP: Duration = Duration::from_secs(30);
/// The same with inotify, where the sweep is only a safety net.
pub const NOTIFY_SWEEP: Duration = Duration::from_secs(300);
/// The tick with inotify (directory stat and a sweep slice).
const NOTIFY_TICK: Duration = Duration::from_secs(5);

/// What tells two versions of a file apart without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    /// A save by rename gives a new inode even when size and time match.
    inode: u64,
}

/// The stamp of a selector file; `None` when it is missing or not a file.
fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    meta.is_file().then(|| Stamp {
        len: meta.len(),
        modified: meta.modified().ok(),
        inode: inode(&meta),
    })
}

/// The stamp of the directory itself (its entries changed when this changes).
fn dir_stamp(dir: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(dir).ok()?;
    Some(Stamp {
        len: meta.len(),
        modified: meta.modified().ok(),
        inode: inode(&meta),
    })
}

#[cfg(unix)]
fn inode(meta: &std::fs::Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::ino(meta)
}

#[cfg(not(unix))]
fn inode(_meta: &std::fs::Metadata) -> u64 {
    0
}

/// Whether a file name is a selector file's (`*.toml`, not hidden): editor swap files
/// and `x.toml.new` are not.
pub fn is_selector_name(name: &str) -> bool {
    name.len() > ".toml".len() && name.ends_with(".toml") && !name.starts_with('.')
}

/// Every selector file of `dir` with its stamp.
fn scan(dir: &Path) -> std::io::Result<BTreeMap<PathBuf, Stamp>> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir)?.filter_map(Result::ok) {
        let name = entry.file_name();
        if !name.to_str().is_some_and(is_selector_name) {
            continue;
        }
        let path = dir.join(&name);
        if let Some(s) = stamp(&path) {
            files.insert(path, s);
        }
    }
    Ok(files)
}

/// `previous` with the files at `changed` reloaded (a missing file removes its site).
/// Returns `None` when nothing a reader can see changed (same rules, same errors).
pub fn reload_files(previous: &SiteSet, changed: &[PathBuf]) -> Option<SiteSet> {
    let mut set = previous.clone();
    let mut touched = false;
    for path in changed {
        let errors_before = set.errors.len();
        set.errors.retain(|e| &e.path != path);
        touched |= set.errors.len() != errors_before;
        let Some(id) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        if !path.is_file() {
            touched |= set.sites.remove(id).is_some();
            touched |= set.elsewhere.remove(id).is_some();
            continue;
        }
        match load(path) {
            Ok(site) => {
                let same = set
                    .any(&site.id)
                    .is_some_and(|old| old.fingerprint == site.fingerprint);
                if !same {
                    // `shard` below puts it back where its shard says.
                    set.elsewhere.remove(&site.id);
                    set.sites.insert(site.id.clone(), Arc::new(site));
                    touched = true;
                }
            }
            // The site keeps its last good rules (if it had any).
            Err(e) => {
                set.errors.push(e);
                touched = true;
            }
        }
    }
    // With `serve --shard`, a reloaded file's site goes to this shard or to the listed rest
    // exactly as a full load would put it.
    if let Some(shard) = previous.shard {
        set = set.shard(shard);
    }
    // Only a changed error list counts: an error re-reported identically changes nothing.
    set.errors.sort_by(|a, b| a.path.cmp(&b.path));
    let errors_same = set.errors == previous.errors;
    let unchanged = |now: &BTreeMap<String, Arc<Site>>, before: &BTreeMap<String, Arc<Site>>| {
        now.len() == before.len()
            && now
                .iter()
                .zip(before)
                .all(|((a, sa), (b, sb))| a == b && Arc::ptr_eq(sa, sb))
    };
    let sites_same =
        unchanged(&set.sites, &previous.sites) && unchanged(&set.elsewhere, &previous.elsewhere);
    (touched && !(errors_same && sites_same)).then_some(set)
}

/// Whether to poll even where inotify exists (`FEEDBRIDGE_WATCH=poll`): for file systems
/// whose changes inotify does not see (NFS edited from another host), and for tests.
fn poll_forced() -> bool {
    std::env::var("FEEDBRIDGE_WATCH").is_ok_and(|v| v == "poll")
}

/// What the watcher knows about the directory between changes.
struct Watched {
    dir: PathBuf,
    /// The files as last applied.
    known: BTreeMap<PathBuf, Stamp>,
    dir_stamp: Option<Stamp>,
    /// Where the rotating sweep goes on.
    sweep_after: Option<PathBuf>,
    /// Changed files waiting to be still for one interval, with their last stamp.
    pending: HashMap<PathBuf, Option<Stamp>>,
    settle_at: Option<Instant>,
    interval: Duration,
}

impl Watched {
    fn new(dir: PathBuf, interval: Duration) -> Self {
        let known = scan(&dir).unwrap_or_default();
        let dir_stamp = dir_stamp(&dir);
        Watched {
            dir,
            known,
            dir_stamp,
            sweep_after: None,
            pending: HashMap::new(),
            settle_at: None,
            interval,
        }
    }

    /// Notes that `path` may have changed: it joins the files waiting to settle when its
    /// stamp differs from the applied one (or from the one seen last while settling).
    fn candidate(&mut self, path: PathBuf) {
        let now = stamp(&path);
        let seen = match self.pending.get(&path) {
            Some(s) => *s,
            None => self.known.get(&path).copied(),
        };
        if now != seen {
            self.pending.insert(path, now);
            self.settle_at = Some(Instant::now() + self.interval);
        }
    }

    /// Compares every file with what was applied (an inotify overflow, a changed directory).
    fn rescan(&mut self) {
        let Ok(now) = scan(&self.dir) else {
            tracing::error!(dir = %self.dir.display(), "cannot read the selectors directory");
            return;
        };
        let gone: Vec<PathBuf> = self
            .known
            .keys()
            .filter(|p| !now.contains_key(*p))
            .cloned()
            .collect();
        for path in gone {
            self.candidate(path);
        }
        for (path, s) in now {
            if self.known.get(&path) != Some(&s) && self.pending.get(&path) != Some(&Some(s)) {
                self.candidate(path);
            }
        }
    }

    /// One poll tick: the directory's own stamp, then the next slice of the sweep.
    fn tick(&mut self, sweep: Duration, tick: Duration) {
        let now = dir_stamp(&self.dir);
        if now != self.dir_stamp {
            self.dir_stamp = now;
            self.rescan();
        }
        let slice = sweep_slice(self.known.len(), tick, sweep);
        let from = match &self.sweep_after {
            Some(p) => Bound::Excluded(p.clone()),
            None => Bound::Unbounded,
        };
        let batch: Vec<PathBuf> = self
            .known
            .range((from, Bound::Unbounded))
            .take(slice)
            .map(|(p, _)| p.clone())
            .collect();
        self.sweep_after = if batch.len() < slice {
            None // wrapped: the next tick starts from the first file
        } else {
            batch.last().cloned()
        };
        for path in batch {
            self.candidate(path);
        }
    }

    /// When the pending files have been still for one interval: the ones that differ from
    /// what was applied, marked as applied. Files still changing postpone it.
    fn settled(&mut self) -> Option<Vec<PathBuf>> {
        let mut moving = false;
        for (path, seen) in &mut self.pending {
            let now = stamp(path);
            if now != *seen {
                *seen = now;
                moving = true;
            }
        }
        if moving {
            self.settle_at = Some(Instant::now() + self.interval);
            return None;
        }
        self.settle_at = None;
        let mut changed = Vec::new();
        for (path, now) in self.pending.drain() {
            if self.known.get(&path) == now.as_ref() {
                continue;
            }
            match now {
                Some(s) => self.known.insert(path.clone(), s),
                None => self.known.remove(&path),
            };
            changed.push(path);
        }
        changed.sort();
        (!changed.is_empty()).then_some(changed)
    }
}

/// How many files one tick stats so that a sweep of `files` takes about `sweep`.
pub fn sweep_slice(files: usize, tick: Duration, sweep: Duration) -> usize {
    let ticks = (sweep.as_millis() / tick.as_millis().max(1)).max(1) as usize;
    files.div_ceil(ticks).max(MIN_SLICE)
}

/// Reloads the changed files of `dir` whenever they have been still for `interval`,
/// publishing each new set on `tx`; see the module comment for how changes are noticed.
pub async fn watch_dir(
    dir: PathBuf,
    tx: watch::Sender<Arc<SiteSet>>,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut watched = Watched::new(dir, interval);
    let mut notify = if poll_forced() {
        None
    } else {
        notify::Notify::open(&watched.dir)
    };
    tracing::info!(
        dir = %watched.dir.display(),
        files = watched.known.len(),
        how = if notify.is_some() { "inotify" } else { "polling" },
        "watching the selectors directory"
    );
    let mut next_tick = Instant::now();
    loop {
        let (tick, sweep) = if notify.is_some() {
            (NOTIFY_TICK, NOTIFY_SWEEP)
        } else {
            (interval, POLL_SWEEP)
        };
        let wake = watched.settle_at.map_or(next_tick, |s| s.min(next_tick));
        tokio::select! {
            _ = shutdown.changed() => return,
            events = notify::next(&mut notify) => match events {
                Ok(seen) => {
                    for name in seen.names {
                        watched.candidate(watched.dir.join(name));
                    }
                    if seen.rescan {
                        watched.rescan();
                    }
                    if seen.lost {
                        // The directory was moved or deleted: reopen, else poll.
                        notify = notify::Notify::open(&watched.dir);
                        watched.rescan();
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "inotify failed; polling the selectors directory instead");
                    notify = None;
                }
            },
            _ = tokio::time::sleep_until(wake) => {}
        }
        let now = Instant::now();
        if now >= next_tick {
            watched.tick(sweep, tick);
            next_tick = now + tick;
        }
        if watched.settle_at.is_some_and(|s| s <= now) {
            if let Some(changed) = watched.settled() {
                apply(&tx, &changed);
            }
        }
    }
}

/// Reloads `changed` into the published set and publishes it if anything changed.
fn apply(tx: &watch::Sender<Arc<SiteSet>>, changed: &[PathBuf]) {
    let previous = tx.borrow().clone();
    let Some(set) = reload_files(&previous, changed) else {
        return;
    };
    for e in set.errors.iter().filter(|e| changed.contains(&e.path)) {
        tracing::error!("selector file not applied, keeping its last good rules: {e}");
    }
    let added: Vec<&String> = set
        .sites
        .keys()
        .filter(|k| !previous.sites.contains_key(*k))
        .collect();
    let removed: Vec<&String> = previous
        .sites
        .keys()
        .filter(|k| !set.sites.contains_key(*k))
        .collect();
    tracing::info!(
        sites = set.sites.len(),
        files = changed.len(),
        ?added,
        ?removed,
        "selectors reloaded"
    );
    let _ = tx.send(Arc::new(set));
}

/// Linux inotify on the directory (rustix's safe API; no extra crate). A thread blocks in
/// `read` (no CPU while nothing happens) and hands each batch of events to the watcher;
/// registering the descriptor with tokio's reactor would take `unsafe`.
#[cfg(any(target_os = "linux", target_os = "android"))]
mod notify {
    use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};
    use std::ffi::OsString;
    use std::mem::MaybeUninit;
    use std::os::unix::ffi::OsStringExt;
    use std::path::Path;
    use tokio::sync::mpsc;

    use super::is_selector_name;

    pub struct Notify {
        events: mpsc::Receiver<Seen>,
    }

    /// What one read of events says.
    #[derive(Debug, Default)]
    pub struct Seen {
        /// Selector files that may have changed.
        pub names: Vec<OsString>,
        /// Something else changed in the directory (a symlinked `..data` swapped, as
        /// Kubernetes does, or events were lost): compare every file.
        pub rescan: bool,
        /// The watch is gone (directory moved or deleted).
        pub lost: bool,
    }

    impl Notify {
        /// `None` when inotify is unavailable (the caller polls instead).
        pub fn open(dir: &Path) -> Option<Notify> {
            let open = || -> std::io::Result<Notify> {
                let fd = inotify::init(CreateFlags::CLOEXEC)?;
                inotify::add_watch(
                    &fd,
                    dir,
                    WatchFlags::CLOSE_WRITE
                        | WatchFlags::MODIFY
                        | WatchFlags::ATTRIB
                        | WatchFlags::CREATE
                        | WatchFlags::DELETE
                        | WatchFlags::MOVED_FROM
                        | WatchFlags::MOVED_TO
                        | WatchFlags::DELETE_SELF
                        | WatchFlags::MOVE_SELF
                        | WatchFlags::ONLYDIR,
                )?;
                let (tx, events) = mpsc::channel(16);
                std::thread::Builder::new()
                    .name("selectors-inotify".into())
                    .spawn(move || {
                        let mut buf = vec![MaybeUninit::<u8>::uninit(); 64 * 1024];
                        let mut reader = inotify::Reader::new(&fd, &mut buf);
                        loop {
                            let mut seen = Seen::default();
                            // Blocks until the kernel has events, then takes the batch.
                            loop {
                                match reader.next() {
                                    Ok(event) => note(&mut seen, event.events(), event.file_name()),
                                    Err(rustix::io::Errno::INTR) => continue,
                                    Err(e) => {
                                        tracing::warn!(error = %e, "cannot read inotify events");
                                        seen.lost = true;
                                    }
                                }
                                if seen.lost || reader.is_buffer_empty() {
                                    break;
                                }
                            }
                            let lost = seen.lost;
                            // The watcher is gone (shutdown), or the watch is: stop.
                            if tx.blocking_send(seen).is_err() || lost {
                                return;
                            }
                        }
                    })?;
                Ok(Notify { events })
            };
            match open() {
                Ok(n) => Some(n),
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "no inotify; polling the selectors directory");
                    None
                }
            }
        }
    }

    fn note(seen: &mut Seen, events: ReadFlags, name: Option<&std::ffi::CStr>) {
        if events.contains(ReadFlags::QUEUE_OVERFLOW) {
            seen.rescan = true;
        }
        if events.intersects(ReadFlags::IGNORED | ReadFlags::DELETE_SELF | ReadFlags::MOVE_SELF) {
            seen.lost = true;
        }
        let Some(name) = name else { return };
        let name = OsString::from_vec(name.to_bytes().to_vec());
        if name.to_str().is_some_and(is_selector_name) {
            if !seen.names.contains(&name) {
                seen.names.push(name);
            }
        } else if name.to_str().is_some_and(|n| n.starts_with(".."))
            && events.intersects(
                ReadFlags::CREATE | ReadFlags::MOVED_TO | ReadFlags::MOVED_FROM | ReadFlags::DELETE,
            )
        {
            // Kubernetes swaps a `..data` symlink to update a mounted ConfigMap: every
            // file may now point elsewhere without an event of its own.
            seen.rescan = true;
        }
    }

    /// The next events, or never when there is no inotify.
    pub async fn next(notify: &mut Option<Notify>) -> std::io::Result<Seen> {
        match notify {
            Some(n) => match n.events.recv().await {
                Some(seen) => Ok(seen),
                None => Err(std::io::Error::other("the inotify thread ended")),
            },
            None => std::future::pending().await,
        }
    }
}

/// No inotify here: always polling.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
mod notify {
    use std::ffi::OsString;
    use std::path::Path;

    pub enum Notify {}

    #[derive(Default)]
    pub struct Seen {
        pub names: Vec<OsString>,
        pub rescan: bool,
        pub lost: bool,
    }

    impl Notify {
        pub fn open(_dir: &Path) -> Option<Notify> {
            None
        }
    }

    pub async fn next(_notify: &mut Option<Notify>) -> std::io::Result<Seen> {
        std::future::pending().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selector_names() {
        assert!(is_selector_name("a.toml"));
        assert!(is_selector_name("henan-gzdt.toml"));
        for other in [
            ".toml",
            ".a.toml",
            "a.toml.new",
            "a.toml~",
            ".a.toml.swp",
            "a.tom",
        ] {
            assert!(!is_selector_name(other), "{other}");
        }
    }

    #[test]
    fn sweep_slices_cover_a_big_directory_in_one_sweep_and_a_small_one_every_tick() {
        let tick = Duration::from_millis(700);
        assert_eq!(sweep_slice(300, tick, POLL_SWEEP), MIN_SLICE);
        let slice = sweep_slice(10_000, tick, POLL_SWEEP);
        let ticks = 10_000usize.div_ceil(slice);
        assert!(ticks as u128 * tick.as_millis() <= POLL_SWEEP.as_millis() + tick.as_millis());
        assert_eq!(sweep_slice(0, tick, POLL_SWEEP), MIN_SLICE);
    }

    fn file(title: &str) -> String {
        format!(
            "title = \"{title}\"\nstart = [\"http://127.0.0.1:1/list.html\"]\n\
             timezone = \"UTC\"\n\n[list]\nitem = \"li\"\nlink = \"a\"\n"
        )
    }

    #[test]
    fn reloading_one_file_leaves_the_others_alone() {
        let dir = std::env::temp_dir().join(format!("feedbridge-watch-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for id in ["a", "b", "c"] {
            std::fs::write(dir.join(format!("{id}.toml")), file(id)).unwrap();
        }
        let first = SiteSet::load_dir(&dir, None).unwrap();
        let b = dir.join("b.toml");

        std::fs::write(&b, file("b2")).unwrap();
        let second = reload_files(&first, std::slice::from_ref(&b)).unwrap();
        assert_eq!(second.sites["b"].title, "b2");
        assert!(Arc::ptr_eq(&first.sites["a"], &second.sites["a"]));
        assert!(Arc::ptr_eq(&first.sites["c"], &second.sites["c"]));
        assert!(
            reload_files(&second, std::slice::from_ref(&b)).is_none(),
            "same bytes"
        );

        std::fs::write(&b, "title = \n").unwrap();
        let broken = reload_files(&second, std::slice::from_ref(&b)).unwrap();
        assert_eq!(broken.sites["b"].title, "b2", "last good rules kept");
        assert_eq!(broken.errors.len(), 1);
        assert!(broken.errors[0]
            .to_string()
            .starts_with(&format!("{}:", b.display())));

        std::fs::remove_file(&b).unwrap();
        let removed = reload_files(&broken, std::slice::from_ref(&b)).unwrap();
        assert!(!removed.sites.contains_key("b") && removed.errors.is_empty());
        assert_eq!(removed.sites.len(), 2);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

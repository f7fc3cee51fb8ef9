//! The rendered-feed cache, bounded by bytes: with 10,000 sites a cache that keeps every
//! feed it ever rendered grows without end, so the least recently served feeds leave when
//! the budget is passed and are rendered again when asked for.
//!
//! One [`Slot`] per key holds the render lock that makes a burst of polls of a cold feed
//! render once. A slot lives in the map while it holds a value or someone holds the slot
//! (a render in flight); the sweep that evicts values also drops the slots left empty, so
//! the map never holds more than the feeds that fit plus those being rendered.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// What a cached value costs: every byte buffer it holds.
pub(super) trait Weigh {
    fn bytes(&self) -> usize;
}

/// One key's entry: the render lock and the value rendered last.
pub(super) struct Slot<V> {
    /// Held while rendering (or compressing) this key's value.
    pub render: tokio::sync::Mutex<()>,
    current: Mutex<Option<Arc<V>>>,
    last_used: AtomicU64,
}

impl<V> Slot<V> {
    fn new(now: u64) -> Slot<V> {
        Slot {
            render: tokio::sync::Mutex::new(()),
            current: Mutex::new(None),
            last_used: AtomicU64::new(now),
        }
    }

    /// The value in the slot, when `fresh` accepts it.
    pub fn get(&self, fresh: impl FnOnce(&V) -> bool) -> Option<Arc<V>> {
        let current = self.current.lock().ok()?;
        current.as_ref().filter(|v| fresh(v)).cloned()
    }
}

struct Inner<K, V> {
    slots: HashMap<K, Arc<Slot<V>>>,
    /// Sum of the weights of the values in `slots`.
    used: usize,
}

pub(super) struct RenderCache<K, V> {
    budget: usize,
    /// Ticks per use, for least-recently-used order without a list to reorder per hit.
    clock: AtomicU64,
    inner: Mutex<Inner<K, V>>,
}

impl<K: Hash + Eq + Clone, V: Weigh> RenderCache<K, V> {
    pub fn new(budget: usize) -> Self {
        RenderCache {
            budget,
            clock: AtomicU64::new(0),
            inner: Mutex::new(Inner {
                slots: HashMap::new(),
                used: 0,
            }),
        }
    }

    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::Relaxed)
    }

    /// The slot of `key` (made when missing), marked as used now.
    pub fn slot(&self, key: &K) -> Arc<Slot<V>> {
        let now = self.tick();
        let Ok(mut inner) = self.inner.lock() else {
            return Arc::new(Slot::new(now));
        };
        let slot = inner
            .slots
            .entry(key.clone())
            .or_insert_with(|| Arc::new(Slot::new(now)))
            .clone();
        slot.last_used.store(now, Ordering::Relaxed);
        slot
    }

    /// Puts a freshly rendered value in `key`'s slot, then evicts the least recently used
    /// values past the budget (never this one).
    pub fn put(&self, key: &K, slot: &Arc<Slot<V>>, value: Arc<V>) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        let added = value.bytes();
        let old = match slot.current.lock() {
            Ok(mut current) => current.replace(value),
            Err(_) => return,
        };
        inner.used = inner.used + added - old.map_or(0, |o| o.bytes()).min(inner.used);
        // An evicted slot left the map while this render ran: it comes back.
        let in_map = inner.slots.get(key).is_some_and(|s| Arc::ptr_eq(s, slot));
        if !in_map {
            if let Some(stale) = inner.slots.insert(key.clone(), slot.clone()) {
                let freed = stale
                    .current
                    .lock()
                    .ok()
                    .and_then(|mut c| c.take())
                    .map_or(0, |v| v.bytes());
                inner.used -= freed.min(inner.used);
            }
        }
        if inner.used > self.budget {
            self.sweep(&mut inner, key);
        }
    }

    /// Adds to the value in `slot` (a compressed variant) when it is still the cached one:
    /// `grow` returns the bytes it added, counted against the budget. A value no longer
    /// cached is not grown (its bytes would be counted by nobody).
    pub fn grow(&self, slot: &Arc<Slot<V>>, value: &Arc<V>, grow: impl FnOnce(&V) -> usize) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        let cached = slot
            .current
            .lock()
            .ok()
            .is_some_and(|c| c.as_ref().is_some_and(|c| Arc::ptr_eq(c, value)));
        if cached {
            inner.used += grow(value);
        }
    }

    /// Evicts values, least recently used first, down to 7/8 of the budget (so that a
    /// full cache sweeps once per many renders, not on each), keeping `keep`; drops
    /// the slots left empty that nobody holds.
    fn sweep(&self, inner: &mut Inner<K, V>, keep: &K) {
        let target = self.budget / 8 * 7;
        let mut order: Vec<(u64, K)> = inner
            .slots
            .iter()
            .filter(|(k, _)| *k != keep)
            .map(|(k, s)| (s.last_used.load(Ordering::Relaxed), k.clone()))
            .collect();
        order.sort_unstable_by_key(|(t, _)| *t);
        for (_, key) in order {
            if inner.used <= target {
                break;
            }
            let Some(slot) = inner.slots.get(&key) else {
                continue;
            };
            let freed = slot
                .current
                .lock()
                .ok()
                .and_then(|mut c| c.take())
                .map_or(0, |v| v.bytes());
            inner.used -= freed.min(inner.used);
        }
        // One reference is the map's: no render holds these.
        inner.slots.retain(|k, s| {
            k == keep || Arc::strong_count(s) > 1 || s.current.lock().is_ok_and(|c| c.is_some())
        });
    }

    /// Bytes held now.
    pub fn used(&self) -> usize {
        self.inner.lock().map_or(0, |i| i.used)
    }

    /// Slots in the map now.
    pub fn slots(&self) -> usize {
        self.inner.lock().map_or(0, |i| i.slots.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A value whose weight grows as its variants do.
    struct Blob(std::sync::atomic::AtomicUsize);

    impl Blob {
        fn new(size: usize) -> Arc<Blob> {
            Arc::new(Blob(size.into()))
        }

        fn add(&self, n: usize) -> usize {
            self.0.fetch_add(n, Ordering::Relaxed);
            n
        }
    }

    impl Weigh for Blob {
        fn bytes(&self) -> usize {
            self.0.load(Ordering::Relaxed)
        }
    }

    fn fill(cache: &RenderCache<u32, Blob>, key: u32, size: usize) {
        let slot = cache.slot(&key);
        cache.put(&key, &slot, Blob::new(size));
    }

    #[test]
    fn least_recently_used_values_leave_past_the_budget_and_their_slots_too() {
        let cache = RenderCache::new(1000);
        for key in 0..10 {
            fill(&cache, key, 100);
        }
        assert_eq!(cache.used(), 1000);
        // 0 is used again: 1 is now the oldest.
        assert!(cache.slot(&0).get(|_| true).is_some());
        fill(&cache, 10, 100);
        assert!(cache.used() <= 1000 / 8 * 7, "{}", cache.used());
        assert!(
            cache.slot(&0).get(|_| true).is_some(),
            "recently used stays"
        );
        assert!(cache.slot(&10).get(|_| true).is_some(), "the new one stays");
        assert!(cache.slot(&1).get(|_| true).is_none(), "the oldest left");
        // Thousands of keys never hold more slots than values that fit (plus the
        // one just asked for).
        for key in 100..5000 {
            fill(&cache, key, 100);
        }
        assert!(cache.used() <= 1000);
        assert!(cache.slots() <= 11, "{} slots", cache.slots());
    }

    #[test]
    fn a_replaced_value_is_counted_once_and_growth_only_while_cached() {
        let cache = RenderCache::new(10_000);
        let slot = cache.slot(&1);
        let first = Blob::new(100);
        cache.put(&1, &slot, first.clone());
        cache.grow(&slot, &first, |b| b.add(50));
        assert_eq!(cache.used(), 150);
        cache.put(&1, &slot, Blob::new(300));
        assert_eq!(cache.used(), 300, "the first value left with its growth");
        cache.grow(&slot, &first, |b| b.add(1000));
        assert_eq!(cache.used(), 300, "a value no longer cached is not grown");
    }

    #[test]
    fn a_value_bigger_than_the_budget_is_still_served() {
        let cache = RenderCache::new(100);
        fill(&cache, 1, 500);
        assert!(cache.slot(&1).get(|_| true).is_some());
        fill(&cache, 2, 500);
        assert!(cache.slot(&1).get(|_| true).is_none());
        assert!(cache.slot(&2).get(|_| true).is_some());
    }
}

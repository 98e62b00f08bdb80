//! A small per-isolate cache with a time-to-live, driven by the host's clock, bounded by a
//! number of entries and by the bytes they hold. When a new entry does not fit, expired entries
//! go first, then the least recently used: an isolate serving many tenants keeps its busy ones
//! rather than starting over, and its memory stays within the budget (an isolate has 128 MB on
//! Workers, and one tenant's config can hold megabytes of compiled guardrails).

use std::cell::Cell;
use std::collections::HashMap;

use crate::time::Timestamp;

/// A full cache evicts about one `EVICT_SHARE`th of its entries at once.
const EVICT_SHARE: usize = 8;

pub struct TtlCache<V> {
    entries: HashMap<String, Slot<V>>,
    ttl_ms: u64,
    capacity: usize,
    max_bytes: usize,
    /// What the entries weigh together, as their `put` said.
    bytes: usize,
    /// Advances on every use: an entry's `used` orders eviction.
    clock: Cell<u64>,
}

struct Slot<V> {
    expires: Timestamp,
    value: V,
    bytes: usize,
    used: Cell<u64>,
}

impl<V: Clone> TtlCache<V> {
    /// At most `capacity` entries, with no byte budget (entries of a bounded size).
    pub fn new(ttl_ms: u64, capacity: usize) -> Self {
        TtlCache {
            entries: HashMap::new(),
            ttl_ms,
            capacity,
            max_bytes: usize::MAX,
            bytes: 0,
            clock: Cell::new(0),
        }
    }

    /// The same cache, also bounded by `max_bytes` of what [`put_weighing`](Self::put_weighing)
    /// says its entries weigh.
    pub fn with_max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    fn tick(&self) -> u64 {
        let now = self.clock.get() + 1;
        self.clock.set(now);
        now
    }

    pub fn get(&self, key: &str, now: Timestamp) -> Option<V> {
        match self.entries.get(key) {
            Some(slot) if slot.expires > now => {
                slot.used.set(self.tick());
                Some(slot.value.clone())
            }
            _ => None,
        }
    }

    /// The entry under `key`, expired or not (until it is evicted or replaced).
    pub fn get_stale(&self, key: &str) -> Option<V> {
        self.entries.get(key).map(|slot| slot.value.clone())
    }

    /// The live entries, in no particular order.
    pub fn live(&self, now: Timestamp) -> impl Iterator<Item = (&str, &V)> {
        self.entries
            .iter()
            .filter(move |(_, slot)| slot.expires > now)
            .map(|(k, slot)| (k.as_str(), &slot.value))
    }

    pub fn remove(&mut self, key: &str) {
        if let Some(slot) = self.entries.remove(key) {
            self.bytes -= slot.bytes;
        }
    }

    /// How many entries are held, expired ones included.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// What the held entries weigh together.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Keeps `value` under `key` (weighing nothing against the byte budget).
    pub fn put(&mut self, key: String, value: V, now: Timestamp) {
        self.put_weighing(key, value, 0, now);
    }

    /// Keeps `value`, which holds about `bytes` of memory, under `key`, evicting what it must.
    /// An entry heavier than the whole budget is still kept, alone: refusing it would make every
    /// request under it load (and compile) it again.
    pub fn put_weighing(&mut self, key: String, value: V, bytes: usize, now: Timestamp) {
        self.remove(&key);
        let fits =
            |c: &Self| c.entries.len() < c.capacity && c.bytes.saturating_add(bytes) <= c.max_bytes;
        if !fits(self) {
            let before = self.entries.len();
            self.entries.retain(|_, slot| slot.expires > now);
            if self.entries.len() != before {
                self.bytes = self.entries.values().map(|slot| slot.bytes).sum();
            }
        }
        if self.entries.len() >= self.capacity && self.capacity >= EVICT_SHARE {
            // Full by count, as under churn (more keys in a TTL than the cache holds): the least
            // recently used eighth goes in one pass, so the scans run once per eighth of the
            // capacity of new entries, not twice per entry (~17 us a put at 4,096 entries,
            // natively). An eighth by use ticks, not by count: everything used no later than an
            // eighth of the way from the oldest use to the newest (at least the oldest), which
            // needs no sort (none is compiled into the Worker for it).
            let (mut oldest, mut newest) = (u64::MAX, 0);
            for slot in self.entries.values() {
                oldest = oldest.min(slot.used.get());
                newest = newest.max(slot.used.get());
            }
            let cutoff = oldest + (newest - oldest) / EVICT_SHARE as u64;
            self.entries.retain(|_, slot| slot.used.get() > cutoff);
            self.bytes = self.entries.values().map(|slot| slot.bytes).sum();
        }
        // Then (the byte budget, or a cache too small for a share) the least recently used, one
        // at a time: a scan per eviction.
        while !fits(self) {
            let victim = self
                .entries
                .iter()
                .min_by_key(|(_, slot)| slot.used.get())
                .map(|(k, _)| k.clone());
            match victim {
                Some(victim) => self.remove(&victim),
                None => break,
            }
        }
        self.bytes += bytes;
        let used = Cell::new(self.tick());
        let expires = now.plus_ms(self.ttl_ms);
        self.entries.insert(
            key,
            Slot {
                expires,
                value,
                bytes,
                used,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_are_kept_stale_until_replaced() {
        let mut c = TtlCache::new(1000, 2);
        c.put("a".into(), 1, Timestamp(0));
        assert_eq!(c.get("a", Timestamp(999)), Some(1));
        assert_eq!(c.get("a", Timestamp(1000)), None);
        assert_eq!(
            c.get_stale("a"),
            Some(1),
            "an expired entry is kept until replaced"
        );
        c.put("a".into(), 2, Timestamp(1000));
        assert_eq!(c.get("a", Timestamp(1999)), Some(2));
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn a_full_cache_evicts_expired_entries_first_then_the_least_recently_used() {
        let mut c = TtlCache::new(1000, 3);
        c.put("old".into(), 0, Timestamp(0));
        c.put("a".into(), 1, Timestamp(500));
        c.put("b".into(), 2, Timestamp(500));
        // "old" expired at 1000: it goes, and the live ones stay.
        c.put("c".into(), 3, Timestamp(1200));
        assert_eq!(c.get_stale("old"), None);
        assert_eq!(c.len(), 3);
        // "a" was used after "b": "b" is the least recently used.
        assert_eq!(c.get("a", Timestamp(1300)), Some(1));
        c.put("d".into(), 4, Timestamp(1300));
        assert_eq!(
            c.get("b", Timestamp(1300)),
            None,
            "the least recently used went"
        );
        for (k, v) in [("a", 1), ("c", 3), ("d", 4)] {
            assert_eq!(c.get(k, Timestamp(1300)), Some(v), "{k} stays");
        }
        assert_eq!(c.len(), 3);
    }

    #[test]
    fn a_cache_full_under_churn_evicts_its_least_recently_used_eighth_at_once() {
        let mut c = TtlCache::new(60_000, 64);
        for i in 0..64 {
            c.put(format!("k{i}"), i, Timestamp(0));
        }
        // Used since: the first eight keys become the most recently used.
        for i in 0..8 {
            assert_eq!(c.get(&format!("k{i}"), Timestamp(1)), Some(i));
        }
        c.put("new".into(), 100, Timestamp(2));
        // Last uses: k8..k63 at their puts (ticks 9..64), k0..k7 at their gets (65..72). An
        // eighth of that span (63 / 8 = 7 ticks) from the oldest: k8..k15 go, the rest stay.
        let gone: Vec<usize> = (0..64)
            .filter(|i| c.get_stale(&format!("k{i}")).is_none())
            .collect();
        assert_eq!(gone, (8..16).collect::<Vec<_>>());
        assert_eq!(c.len(), 64 - 8 + 1);
        for i in 0..8 {
            assert!(
                c.get_stale(&format!("k{i}")).is_some(),
                "k{i} was used last"
            );
        }
        // Uniform churn: new keys one after another, each used once.
        let mut c = TtlCache::new(60_000, 64);
        for i in 0..64 {
            c.put(format!("k{i}"), i, Timestamp(0));
        }
        c.put("new".into(), 100, Timestamp(1));
        assert_eq!(c.len(), 64 - 8 + 1, "the oldest eighth went at once");
        for i in 0..8 {
            assert_eq!(c.get_stale(&format!("k{i}")), None, "k{i} was the oldest");
        }
        for i in 0..7 {
            c.put(format!("m{i}"), i, Timestamp(1));
        }
        assert_eq!(c.len(), 64, "room for seven more without an eviction");
        assert_eq!(c.get_stale("k8"), Some(8));
    }

    #[test]
    fn the_byte_budget_evicts_until_a_new_entry_fits() {
        let mut c = TtlCache::new(60_000, 100).with_max_bytes(100);
        for (k, bytes) in [("a", 40), ("b", 30), ("c", 20)] {
            c.put_weighing(k.into(), bytes, bytes, Timestamp(0));
        }
        assert_eq!(c.bytes(), 90);
        c.get("a", Timestamp(1));
        // 90 + 50 > 100: "b" (least recently used) goes, and 60 + 50 still exceeds it, so "c" too.
        c.put_weighing("d".into(), 50, 50, Timestamp(2));
        assert_eq!(c.get_stale("b"), None);
        assert_eq!(c.get_stale("c"), None);
        assert_eq!(c.get("a", Timestamp(3)), Some(40));
        assert_eq!(c.bytes(), 90);
        // Replacing an entry counts its new weight only.
        c.put_weighing("a".into(), 10, 10, Timestamp(4));
        assert_eq!(c.bytes(), 60);
        c.remove("d");
        assert_eq!(c.bytes(), 10);
    }

    #[test]
    fn an_entry_heavier_than_the_budget_is_kept_alone() {
        let mut c = TtlCache::new(60_000, 100).with_max_bytes(100);
        c.put_weighing("small".into(), 1, 10, Timestamp(0));
        c.put_weighing("huge".into(), 2, 500, Timestamp(0));
        assert_eq!(c.get("huge", Timestamp(1)), Some(2));
        assert_eq!(c.len(), 1);
        assert_eq!(c.bytes(), 500);
        c.put_weighing("next".into(), 3, 10, Timestamp(2));
        assert_eq!(c.get_stale("huge"), None, "it is evicted by the next entry");
        assert_eq!(c.bytes(), 10);
    }

    #[test]
    fn expired_entries_leave_the_byte_count_when_purged() {
        let mut c = TtlCache::new(100, 100).with_max_bytes(100);
        c.put_weighing("a".into(), 1, 60, Timestamp(0));
        c.put_weighing("b".into(), 2, 30, Timestamp(50));
        // "a" expired at 100: purging it makes room without touching the live "b".
        c.put_weighing("c".into(), 3, 60, Timestamp(120));
        assert_eq!(c.get("b", Timestamp(120)), Some(2));
        assert_eq!(c.bytes(), 90);
    }
}

//! A small per-isolate cache with a time-to-live, driven by the host's clock.

use std::collections::HashMap;

use crate::time::Timestamp;

pub struct TtlCache<V> {
    entries: HashMap<String, (Timestamp, V)>,
    ttl_ms: u64,
    capacity: usize,
}

impl<V: Clone> TtlCache<V> {
    pub fn new(ttl_ms: u64, capacity: usize) -> Self {
        TtlCache {
            entries: HashMap::new(),
            ttl_ms,
            capacity,
        }
    }

    pub fn get(&self, key: &str, now: Timestamp) -> Option<V> {
        match self.entries.get(key) {
            Some((expires, v)) if *expires > now => Some(v.clone()),
            _ => None,
        }
    }

    /// The entry under `key`, expired or not (until `put` makes room or replaces it).
    pub fn get_stale(&self, key: &str) -> Option<V> {
        self.entries.get(key).map(|(_, v)| v.clone())
    }

    /// The live entries, in no particular order.
    pub fn live(&self, now: Timestamp) -> impl Iterator<Item = (&str, &V)> {
        self.entries
            .iter()
            .filter(move |(_, (expires, _))| *expires > now)
            .map(|(k, (_, v))| (k.as_str(), v))
    }

    pub fn remove(&mut self, key: &str) {
        self.entries.remove(key);
    }

    pub fn put(&mut self, key: String, value: V, now: Timestamp) {
        if self.entries.len() >= self.capacity {
            self.entries.retain(|_, (expires, _)| *expires > now);
            if self.entries.len() >= self.capacity {
                // Still full of live entries: start over rather than grow without bound.
                self.entries.clear();
            }
        }
        self.entries.insert(key, (now.plus_ms(self.ttl_ms), value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_capacity_is_bounded() {
        let mut c = TtlCache::new(1000, 2);
        c.put("a".into(), 1, Timestamp(0));
        assert_eq!(c.get("a", Timestamp(999)), Some(1));
        assert_eq!(c.get("a", Timestamp(1000)), None);
        assert_eq!(
            c.get_stale("a"),
            Some(1),
            "an expired entry is kept until replaced"
        );
        c.put("b".into(), 2, Timestamp(0));
        c.put("c".into(), 3, Timestamp(10));
        assert!(c.entries.len() <= 2);
        assert_eq!(c.get("c", Timestamp(10)), Some(3));
    }
}

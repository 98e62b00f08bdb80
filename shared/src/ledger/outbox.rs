//! The outbox: finished records waiting to be forwarded, by outbox sequence, with an index of
//! the storage keys they live under (a request's own key holds one record; a group's key, the
//! records one call finished together). A busy ledger, or one whose audit stream is down, holds
//! thousands; every commit and every stored piece looks a key up, so a lookup must not scan
//! them all (it did: quadratic in the outbox while a stream was down).

use std::collections::{BTreeMap, VecDeque};
use std::ops::Deref;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::Outgoing;

/// Records by sequence (read through `Deref`), changed only through its methods so the key
/// index stays true. Stored as the plain map: the index is rebuilt on load.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Outbox {
    by_seq: BTreeMap<u64, Outgoing>,
    /// Ascending. Records leave from the front (forwarding goes in sequence order).
    seqs_by_key: BTreeMap<String, VecDeque<u64>>,
}

impl Outbox {
    pub(super) fn insert(&mut self, seq: u64, outgoing: Outgoing) {
        let key = outgoing.key.clone();
        if let Some(replaced) = self.by_seq.insert(seq, outgoing) {
            self.forget_key(&replaced.key, seq);
        }
        let seqs = self.seqs_by_key.entry(key).or_default();
        match seqs.back() {
            Some(last) if *last > seq => {
                let at = seqs.partition_point(|s| *s < seq);
                seqs.insert(at, seq);
            }
            _ => seqs.push_back(seq),
        }
    }

    pub(super) fn remove(&mut self, seq: u64) -> Option<Outgoing> {
        let removed = self.by_seq.remove(&seq)?;
        self.forget_key(&removed.key, seq);
        Some(removed)
    }

    /// The (first) sequence of the records stored under `key`.
    pub(super) fn seq_of(&self, key: &str) -> Option<u64> {
        self.seqs_by_key.get(key).and_then(|s| s.front().copied())
    }

    /// The sequences of the records stored under `key`, ascending.
    pub(super) fn seqs(&self, key: &str) -> impl Iterator<Item = u64> + '_ {
        self.seqs_by_key.get(key).into_iter().flatten().copied()
    }

    pub(super) fn holds(&self, key: &str) -> bool {
        self.seqs_by_key.contains_key(key)
    }

    /// Moves the one record stored under `key` to `new_key`; its sequence, if there was one.
    pub(super) fn rekey(&mut self, key: &str, new_key: String) -> Option<u64> {
        let seq = self.seq_of(key)?;
        self.forget_key(key, seq);
        if let Some(o) = self.by_seq.get_mut(&seq) {
            o.key.clone_from(&new_key);
        }
        self.seqs_by_key.entry(new_key).or_default().push_back(seq);
        Some(seq)
    }

    fn forget_key(&mut self, key: &str, seq: u64) {
        if let Some(seqs) = self.seqs_by_key.get_mut(key) {
            if let Ok(at) = seqs.binary_search(&seq) {
                seqs.remove(at);
            }
            if seqs.is_empty() {
                self.seqs_by_key.remove(key);
            }
        }
    }
}

impl Deref for Outbox {
    type Target = BTreeMap<u64, Outgoing>;

    fn deref(&self) -> &Self::Target {
        &self.by_seq
    }
}

impl FromIterator<(u64, Outgoing)> for Outbox {
    fn from_iter<I: IntoIterator<Item = (u64, Outgoing)>>(iter: I) -> Self {
        let mut outbox = Outbox::default();
        for (seq, outgoing) in iter {
            outbox.insert(seq, outgoing);
        }
        outbox
    }
}

impl Serialize for Outbox {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.by_seq.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Outbox {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let by_seq = BTreeMap::<u64, Outgoing>::deserialize(deserializer)?;
        Ok(by_seq.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outgoing(key: &str) -> Outgoing {
        Outgoing {
            key: key.into(),
            record: crate::audit::RecordText::of(crate::audit::test_support::event(1)),
        }
    }

    #[test]
    fn the_key_index_follows_inserts_removals_and_moves() {
        let mut outbox = Outbox::default();
        outbox.insert(1, outgoing("req:a"));
        outbox.insert(2, outgoing("req:b"));
        assert_eq!(outbox.seq_of("req:a"), Some(1));
        assert_eq!(outbox.rekey("req:a", "req:a~1".into()), Some(1));
        assert_eq!(outbox.seq_of("req:a"), None);
        assert_eq!(outbox.seq_of("req:a~1"), Some(1));
        assert_eq!(outbox[&1].key, "req:a~1");
        assert_eq!(outbox.rekey("req:missing", "x".into()), None);
        assert_eq!(outbox.remove(2).map(|o| o.key), Some("req:b".into()));
        assert_eq!(outbox.seq_of("req:b"), None);
        assert_eq!(outbox.remove(2), None);
        // A sequence stored again replaces its record and that record's key.
        outbox.insert(1, outgoing("req:c"));
        assert_eq!(outbox.seq_of("req:a~1"), None);
        assert_eq!(outbox.seq_of("req:c"), Some(1));
        assert_eq!(outbox.len(), 1);
    }

    #[test]
    fn a_group_key_holds_its_records_until_the_last_leaves() {
        let mut outbox = Outbox::default();
        outbox.insert(4, outgoing("out:4"));
        outbox.insert(5, outgoing("req:a"));
        outbox.insert(6, outgoing("out:4"));
        let seqs = |o: &Outbox, k: &str| o.seqs(k).collect::<Vec<_>>();
        assert_eq!(seqs(&outbox, "out:4"), [4, 6]);
        assert_eq!(outbox.seq_of("out:4"), Some(4));
        outbox.remove(4);
        assert_eq!(seqs(&outbox, "out:4"), [6]);
        outbox.remove(6);
        assert!(!outbox.holds("out:4"));
        assert_eq!(seqs(&outbox, "req:a"), [5]);
    }

    #[test]
    fn it_is_stored_as_the_plain_map_and_rebuilds_its_index() {
        let outbox: Outbox = [(3, outgoing("req:x")), (5, outgoing("req:y"))]
            .into_iter()
            .collect();
        let json = serde_json::to_string(&outbox).expect("serializes");
        let plain: BTreeMap<u64, Outgoing> = serde_json::from_str(&json).expect("a plain map");
        assert_eq!(plain.len(), 2);
        assert_eq!(plain[&5].key, "req:y");
        let back: Outbox = serde_json::from_str(&json).expect("deserializes");
        assert_eq!(back, outbox);
        assert_eq!(back.seq_of("req:y"), Some(5));
    }
}

//! What the admin store has changed but the config store (KV, which the request path reads)
//! does not hold yet. A change queues its values in the same write that stores it, so a config
//! store that fails, or a host that dies before publishing, leaves the values queued: the host
//! writes the queue out after each change and again later (a Durable Object's alarm, Spin's
//! flush endpoint), until every value is in. Before, a revocation whose write to KV failed left
//! the key working at the edge until someone revoked it again.

use std::future::Future;

use serde::{Deserialize, Serialize};

/// The storage row of the queue (a Durable Object keeps the store as rows).
pub const UNPUBLISHED_ROW: &str = "unpublished";

/// One value to write: `(config store key, value, sequence)`. The sequence tells a value queued
/// again apart from the same value queued before, which a slow publisher may still hold.
pub type Entry = (String, String, u64);

/// The config store writes still to make, the latest value of each key once.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Unpublished {
    entries: Vec<Entry>,
    /// The next entry's sequence: kept when the queue empties, so a sequence is never reused.
    next: u64,
    /// `(key, until_ms)`: a write of `key` that got no answer may still land until then, over
    /// a newer value; the key stays queued until a write that began after it succeeds.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    unsettled: Vec<(String, u64)>,
}

impl Unpublished {
    /// The queue stored as `text`; empty if unreadable (our own JSON: not expected).
    pub fn from_row(text: &str) -> Self {
        serde_json::from_str(text).unwrap_or_default()
    }

    /// The row that stores the queue as it is now.
    pub fn row(&self) -> (String, String) {
        let text = serde_json::to_string(self).unwrap_or_else(|_| "{}".into());
        (UNPUBLISHED_ROW.into(), text)
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Never used: nothing to store (an old store's row stays as it was).
    pub fn is_unused(&self) -> bool {
        self.entries.is_empty() && self.next == 0
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Queues `values` (`(key, value)`), each with a new sequence; a key already queued takes
    /// the newer value (only the last value of a key may reach the config store).
    pub fn queue(&mut self, values: &[(String, String)]) {
        for (key, value) in values {
            let seq = self.next;
            self.next += 1;
            match self.entries.iter_mut().find(|(k, _, _)| k == key) {
                Some(queued) => {
                    queued.1.clone_from(value);
                    queued.2 = seq;
                }
                None => self.entries.push((key.clone(), value.clone(), seq)),
            }
        }
    }

    /// Drops the entries the config store now holds, as they were read: an entry queued again
    /// since (a newer value, or the same value re-queued) still has to be written. Whether
    /// anything was dropped.
    /// `started_ms`: when the writes began; a key with a write that may still land after
    /// that ([`Unpublished::unsettle`]) stays queued.
    pub fn written(&mut self, written: &[Entry], started_ms: u64) -> bool {
        let settled = |key: &str, unsettled: &[(String, u64)]| {
            unsettled
                .iter()
                .all(|(k, until)| k != key || *until <= started_ms)
        };
        let (entries, unsettled) = (self.entries.len(), self.unsettled.len());
        self.entries
            .retain(|queued| !written.contains(queued) || !settled(&queued.0, &self.unsettled));
        self.unsettled.retain(|(key, until)| {
            *until > started_ms || !written.iter().any(|(k, _, _)| k == key)
        });
        self.entries.len() != entries || self.unsettled.len() != unsettled
    }

    /// A write of `key` got no answer: it may still land until `until_ms`, so `key` is not
    /// unqueued by a write that began before then (the last write must be the newest value).
    pub fn unsettle(&mut self, key: &str, until_ms: u64) {
        match self.unsettled.iter_mut().find(|(k, _)| k == key) {
            Some(mark) => mark.1 = mark.1.max(until_ms),
            None => self.unsettled.push((key.to_string(), until_ms)),
        }
    }

    /// Whether none of `values` (`(key, value)`) is still queued with that value.
    pub fn holds_all(&self, values: &[(String, String)]) -> bool {
        !values
            .iter()
            .any(|(k, v)| self.entries.iter().any(|(qk, qv, _)| qk == k && qv == v))
    }
}

/// Writes every entry of `queue` with `put`, in order. Returns the entries written and those
/// that were not, with their errors (each still queued: the caller retries them later).
pub async fn publish<E, F, Fut>(queue: &Unpublished, mut put: F) -> (Vec<Entry>, Vec<(Entry, E)>)
where
    F: FnMut(String, String) -> Fut,
    Fut: Future<Output = Result<(), E>>,
{
    let mut written = Vec::new();
    let mut failed = Vec::new();
    for entry in queue.entries() {
        match put(entry.0.clone(), entry.1.clone()).await {
            Ok(()) => written.push(entry.clone()),
            Err(e) => failed.push((entry.clone(), e)),
        }
    }
    (written, failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(k: &str, v: &str) -> (String, String) {
        (k.to_string(), v.to_string())
    }

    fn values(q: &Unpublished) -> Vec<(String, String)> {
        q.entries()
            .iter()
            .map(|(k, v, _)| (k.clone(), v.clone()))
            .collect()
    }

    #[test]
    fn a_key_queued_again_keeps_only_its_newer_value() {
        let mut q = Unpublished::default();
        q.queue(&[pair("tenant:a", "v1"), pair("key:h1", "active")]);
        q.queue(&[pair("tenant:a", "v2")]);
        assert_eq!(
            values(&q),
            [pair("tenant:a", "v2"), pair("key:h1", "active")]
        );
    }

    #[test]
    fn a_write_of_an_older_value_does_not_unqueue_the_newer_one() {
        let mut q = Unpublished::default();
        q.queue(&[pair("tenant:a", "v1")]);
        let sent = q.entries().to_vec();
        // v2 was stored while v1 was being written.
        q.queue(&[pair("tenant:a", "v2")]);
        assert!(!q.written(&sent, 0));
        assert_eq!(values(&q), [pair("tenant:a", "v2")]);
        assert!(!q.holds_all(&[pair("tenant:a", "v2")]));
        let sent = q.entries().to_vec();
        assert!(q.written(&sent, 0));
        assert!(q.is_empty());
        assert!(q.holds_all(&[pair("tenant:a", "v2")]));
    }

    #[test]
    fn the_same_value_queued_again_is_not_unqueued_by_a_write_read_before() {
        let mut q = Unpublished::default();
        q.queue(&[pair("key:h", "revoked")]);
        let read_before = q.entries().to_vec();
        q.queue(&[pair("key:h", "revoked")]);
        assert!(!q.written(&read_before, 0));
        assert_eq!(values(&q), [pair("key:h", "revoked")]);
    }

    #[test]
    fn the_row_reads_back_keeps_its_sequence_and_an_unreadable_row_is_empty() {
        let mut q = Unpublished::default();
        q.queue(&[pair("key:h", "{\"status\":\"revoked\"}")]);
        let (name, text) = q.row();
        assert_eq!(name, UNPUBLISHED_ROW);
        assert_eq!(
            text,
            r#"{"entries":[["key:h","{\"status\":\"revoked\"}",0]],"next":1}"#
        );
        assert_eq!(Unpublished::from_row(&text), q);
        // Emptied, it still remembers the next sequence.
        let sent = q.entries().to_vec();
        q.written(&sent, 0);
        assert_eq!(q.row().1, r#"{"entries":[],"next":1}"#);
        assert!(q.is_empty() && !q.is_unused());
        assert!(Unpublished::from_row("not json").is_unused());
    }

    #[test]
    fn publishing_keeps_what_failed_queued() {
        let mut q = Unpublished::default();
        q.queue(&[pair("a", "1"), pair("b", "2"), pair("c", "3")]);
        let (written, errors) = futures::executor::block_on(publish(&q, |k, _| async move {
            if k == "b" {
                Err("kv down")
            } else {
                Ok(())
            }
        }));
        assert_eq!(written.len(), 2);
        assert_eq!(errors.len(), 1);
        assert_eq!((errors[0].0 .0.as_str(), errors[0].1), ("b", "kv down"));
        q.written(&written, 0);
        assert_eq!(values(&q), [pair("b", "2")]);
    }

    #[test]
    fn a_key_whose_write_got_no_answer_stays_queued_until_a_later_write() {
        let mut q = Unpublished::default();
        q.queue(&[pair("key:h", "active")]);
        // The write at t=1000 got no answer: it may land until t=61000.
        q.unsettle("key:h", 61_000);
        q.queue(&[pair("key:h", "revoked")]);
        let sent = q.entries().to_vec();
        // A write that began before then succeeded: the late one may still land after it.
        assert!(!q.written(&sent, 5_000));
        assert_eq!(values(&q), [pair("key:h", "revoked")]);
        // The marks are stored with the queue.
        assert_eq!(Unpublished::from_row(&q.row().1), q);
        // One that began after it unqueues the key and drops the mark.
        assert!(q.written(&sent, 61_000));
        assert!(q.is_empty());
        assert_eq!(q.row().1, r#"{"entries":[],"next":2}"#);
        // Another key's write does not settle this one.
        q.queue(&[pair("key:h", "x"), pair("key:g", "y")]);
        q.unsettle("key:h", 100_000);
        let sent = q.entries().to_vec();
        q.written(&sent, 50_000);
        assert_eq!(values(&q), [pair("key:h", "x")]);
    }
}

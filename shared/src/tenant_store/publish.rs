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

/// `(config store key, value)` pairs to write, the latest value of each key once.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Unpublished(Vec<(String, String)>);

impl Unpublished {
    /// The queue stored as `text`; empty if unreadable (our own JSON: not expected).
    pub fn from_row(text: &str) -> Self {
        serde_json::from_str(text).unwrap_or_default()
    }

    /// The row that stores the queue as it is now.
    pub fn row(&self) -> (String, String) {
        let text = serde_json::to_string(&self.0).unwrap_or_else(|_| "[]".into());
        (UNPUBLISHED_ROW.into(), text)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn entries(&self) -> &[(String, String)] {
        &self.0
    }

    /// Queues `entries`; a key already queued takes the newer value (only the last value of a
    /// key may reach the config store, never an older one after it).
    pub fn queue(&mut self, entries: &[(String, String)]) {
        for (key, value) in entries {
            match self.0.iter_mut().find(|(k, _)| k == key) {
                Some(queued) => queued.1.clone_from(value),
                None => self.0.push((key.clone(), value.clone())),
            }
        }
    }

    /// Drops the entries the config store now holds, except a key queued again with another
    /// value meanwhile (that one still has to be written). Whether anything was dropped.
    pub fn written(&mut self, written: &[(String, String)]) -> bool {
        let before = self.0.len();
        self.0.retain(|queued| !written.contains(queued));
        self.0.len() != before
    }

    /// Whether the config store holds every one of `entries` (none of them is still queued).
    pub fn holds_all(&self, entries: &[(String, String)]) -> bool {
        !entries.iter().any(|e| self.0.contains(e))
    }
}

/// Writes every entry of `queue` with `put`, in order. Returns the entries written and the
/// errors of those that were not (each still queued: the caller retries them later).
pub async fn publish<E, F, Fut>(queue: &Unpublished, mut put: F) -> (Vec<(String, String)>, Vec<E>)
where
    F: FnMut(String, String) -> Fut,
    Fut: Future<Output = Result<(), E>>,
{
    let mut written = Vec::new();
    let mut errors = Vec::new();
    for (key, value) in queue.entries() {
        match put(key.clone(), value.clone()).await {
            Ok(()) => written.push((key.clone(), value.clone())),
            Err(e) => errors.push(e),
        }
    }
    (written, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(k: &str, v: &str) -> (String, String) {
        (k.to_string(), v.to_string())
    }

    #[test]
    fn a_key_queued_again_keeps_only_its_newer_value() {
        let mut q = Unpublished::default();
        q.queue(&[pair("tenant:a", "v1"), pair("key:h1", "active")]);
        q.queue(&[pair("tenant:a", "v2")]);
        assert_eq!(
            q.entries(),
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
        assert!(!q.written(&sent));
        assert_eq!(q.entries(), [pair("tenant:a", "v2")]);
        assert!(!q.holds_all(&[pair("tenant:a", "v2")]));
        assert!(q.written(&[pair("tenant:a", "v2")]));
        assert!(q.is_empty());
        assert!(q.holds_all(&[pair("tenant:a", "v2")]));
    }

    #[test]
    fn the_row_reads_back_and_an_unreadable_row_is_empty() {
        let mut q = Unpublished::default();
        q.queue(&[pair("key:h", "{\"status\":\"revoked\"}")]);
        let (name, text) = q.row();
        assert_eq!(name, UNPUBLISHED_ROW);
        assert_eq!(text, r#"[["key:h","{\"status\":\"revoked\"}"]]"#);
        assert_eq!(Unpublished::from_row(&text), q);
        assert!(Unpublished::from_row("not json").is_empty());
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
        assert_eq!(written, [pair("a", "1"), pair("c", "3")]);
        assert_eq!(errors, ["kv down"]);
        q.written(&written);
        assert_eq!(q.entries(), [pair("b", "2")]);
    }
}

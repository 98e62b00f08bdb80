//! The response cache in the request path. A covered request derives its key once the first
//! target is known, reads the entry alongside its admission (no extra round trip on the
//! critical path), and is answered from the entry on a hit: no upstream call, a charge per the
//! tenant's setting, one audit record saying `cache: hit` with the entry's digest. A miss stores
//! what it was served after the response, unless it was an error, asked for tool calls (by
//! default) or outgrew the entry limit.

use serde_json::{Map, Value};

use std::rc::Rc;

use super::{AfterResponse, Caller, Exchange, Gateway};
use crate::audit::{CacheNote, CacheOutcome, Usage};
use crate::config::{CachePolicy, CachedOperation};
use crate::host::Host;
use crate::response_cache::{self, Bypass, CacheKey, Entry, EntryKind, StreamCapture, Use};

/// How long an isolate keeps an entry it read (entries also carry their own expiry, checked on
/// every use): a `no-cache` refresh in another isolate is seen here within this time.
pub(super) const RECENT_ENTRY_MS: u64 = 60_000;
/// At most this many entries of at most [`RECENT_ENTRY_BYTES`] each: a few MB per isolate.
pub(super) const RECENT_ENTRIES: usize = 256;
const RECENT_ENTRY_BYTES: usize = 16 * 1024;

/// A covered request's use of the cache, from the decision to the store.
pub(super) struct Lookup<'r> {
    pub kind: EntryKind,
    /// The request as it left the guardrails.
    pub request: &'r Map<String, Value>,
    pub allowed: Use,
    pub key: Option<CacheKey>,
    /// The fresh entry read, on a hit.
    pub found: Option<Entry>,
}

/// Decides how the request uses the cache and notes a bypass on its record. `None`: the cache
/// is not used (not covered, or bypassed).
pub(super) fn open<'r>(
    caller: &Caller,
    operation: CachedOperation,
    model: &str,
    request: &'r Map<String, Value>,
    cache_control: Option<&str>,
    exchange: &mut Exchange,
) -> Option<Lookup<'r>> {
    let kind = match operation {
        CachedOperation::Embeddings => EntryKind::Embeddings,
        CachedOperation::Chat | CachedOperation::Messages => EntryKind::Completion,
    };
    match response_cache::decide(
        caller.tenant.cache.as_ref(),
        operation,
        model,
        request,
        cache_control,
    )? {
        Ok(allowed) => Some(Lookup {
            kind,
            request,
            allowed,
            key: None,
            found: None,
        }),
        Err(reason) => {
            exchange.record.detail.cache = Some(note(CacheOutcome::Bypass, None, Some(reason)));
            None
        }
    }
}

/// `x-asc-cache: hit|miss|bypass`, when the cache covers the request.
pub(super) fn header(exchange: &Exchange) -> Option<(String, String)> {
    let outcome = match exchange.record.detail.cache.as_ref()?.outcome {
        CacheOutcome::Hit => "hit",
        CacheOutcome::Miss => "miss",
        CacheOutcome::Bypass => "bypass",
    };
    Some((crate::headers::CACHE.into(), outcome.into()))
}

fn note(outcome: CacheOutcome, key: Option<&CacheKey>, reason: Option<Bypass>) -> CacheNote {
    CacheNote {
        outcome,
        key: key.map(|k| k.digest().to_string()),
        stored: false,
        reason: reason.map(|r| r.as_str().to_string()),
    }
}

impl Lookup<'_> {
    /// Reads the entry (when allowed) and notes a hit or a miss on the record. A store that
    /// cannot be read is a miss: the cache never fails a request.
    pub async fn read<H: Host>(&mut self, gw: &Gateway, host: &H) -> Option<CacheNote> {
        let key = self.key.as_ref()?;
        let name = key.storage_name();
        let now = host.now();
        if self.allowed.read {
            let recent = gw.recent_entries.borrow().get(&name, now);
            let bytes = match recent {
                Some(bytes) => Some(bytes),
                None => match host.cache_get(key).await {
                    Ok(Some(bytes)) => {
                        let bytes = Rc::new(bytes);
                        if bytes.len() <= RECENT_ENTRY_BYTES {
                            gw.recent_entries.borrow_mut().put(name, bytes.clone(), now);
                        }
                        Some(bytes)
                    }
                    _ => None,
                },
            };
            self.found = bytes.and_then(|b| Entry::decode(&b, self.kind, now.millis()));
        } else {
            // A refresh: this isolate must not keep serving what it replaces.
            gw.recent_entries.borrow_mut().remove(&name);
        }
        let outcome = if self.found.is_some() {
            CacheOutcome::Hit
        } else {
            CacheOutcome::Miss
        };
        let reason = (!self.allowed.read).then_some(Bypass::NoCache);
        Some(note(outcome, Some(key), reason))
    }

    /// Hands a served answer to the cache (after the response), if it may be stored, and
    /// notes the outcome on the record.
    #[allow(clippy::too_many_arguments)]
    pub fn store(
        &self,
        policy: &CachePolicy,
        exchange: &mut Exchange,
        after: &mut AfterResponse,
        now_ms: u64,
        status: u16,
        body: Value,
        usage: Option<Usage>,
    ) {
        let Some(key) = self.key.clone().filter(|_| self.allowed.write) else {
            return;
        };
        let refused = store_refusal(policy, self, status, &body);
        let encoded = match refused {
            Some(_) => None,
            None => {
                let entry = entry_of(self.kind, exchange, now_ms, policy, body, usage);
                entry
                    .encode()
                    .filter(|bytes| bytes.len() as u64 <= policy.max_entry_bytes)
                    .map(|bytes| (bytes, entry.expires_ms))
            }
        };
        let note = exchange.record.detail.cache.get_or_insert(CacheNote {
            outcome: CacheOutcome::Miss,
            key: Some(key.digest().to_string()),
            stored: false,
            reason: None,
        });
        match (refused, encoded) {
            (Some(reason), _) => note.reason = Some(reason.into()),
            (None, Some((bytes, expires_ms))) => {
                note.stored = true;
                after.cache_put(key, bytes, expires_ms);
            }
            (None, None) => note.reason = Some("too_large".into()),
        }
    }

    /// A capture for a streamed miss that may be stored, bounded by the entry limit.
    pub fn capture(&self, policy: &CachePolicy) -> Option<StreamCapture> {
        (self.allowed.write && self.key.is_some())
            .then(|| StreamCapture::new(policy.max_entry_bytes))
    }
}

fn store_refusal(
    policy: &CachePolicy,
    lookup: &Lookup<'_>,
    status: u16,
    body: &Value,
) -> Option<&'static str> {
    if status != 200 {
        Some("not_ok")
    } else if lookup.kind == EntryKind::Completion
        && !policy.store_tool_calls
        && response_cache::asks_for_tools(body)
    {
        Some("tool_calls")
    } else {
        None
    }
}

fn entry_of(
    kind: EntryKind,
    exchange: &Exchange,
    now_ms: u64,
    policy: &CachePolicy,
    body: Value,
    usage: Option<Usage>,
) -> Entry {
    let record = &exchange.record.record;
    Entry {
        version: response_cache::ENTRY_VERSION,
        kind,
        stored_ms: now_ms,
        expires_ms: now_ms.saturating_add(policy.ttl_ms),
        provider: record.provider.clone().unwrap_or_default(),
        served_model: body
            .get("model")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| record.served_model.clone())
            .unwrap_or_default(),
        usage,
        body,
    }
}

/// A stream whose answer may be stored when it ends cleanly: the relay feeds `capture` and
/// calls [`StreamStore::finish`].
pub struct StreamStore {
    pub(super) key: CacheKey,
    pub(super) capture: StreamCapture,
    pub(super) policy: CachePolicy,
}

impl StreamStore {
    /// The entry bytes to store for a stream that ended cleanly with `usage`, or why not.
    pub(super) fn finish(
        &self,
        exchange: &mut Exchange,
        now_ms: u64,
        usage: Option<Usage>,
    ) -> Option<(CacheKey, Vec<u8>, u64)> {
        let usage_json = usage
            .as_ref()
            .map(crate::providers::anthropic::usage_to_openai);
        let note = exchange.record.detail.cache.get_or_insert(CacheNote {
            outcome: CacheOutcome::Miss,
            key: Some(self.key.digest().to_string()),
            stored: false,
            reason: None,
        });
        let Some(completion) = self.capture.completion(usage_json) else {
            note.reason = Some("too_large".into());
            return None;
        };
        if !self.policy.store_tool_calls && self.capture.ends_in_tool_calls() {
            note.reason = Some("tool_calls".into());
            return None;
        }
        let entry = entry_of(
            EntryKind::Completion,
            exchange,
            now_ms,
            &self.policy,
            completion,
            usage,
        );
        let bytes = entry.encode()?;
        if bytes.len() as u64 > self.policy.max_entry_bytes {
            if let Some(n) = exchange.record.detail.cache.as_mut() {
                n.reason = Some("too_large".into());
            }
            return None;
        }
        if let Some(n) = exchange.record.detail.cache.as_mut() {
            n.stored = true;
        }
        Some((self.key.clone(), bytes, entry.expires_ms))
    }
}

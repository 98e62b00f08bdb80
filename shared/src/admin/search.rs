//! `GET /admin/v1/tenants/<t>/audit`: one tenant's records in the region's audit batches, newest
//! first, filtered like `asc audit query` ([`RecordFilter`]) plus the outcome. Each result names
//! the batch object it is in, so the caller can verify that batch (`asc audit verify`). The
//! records are read, not verified: verification needs the whole chain and the public keys.
//!
//! The work per call is bounded: at most [`MAX_LIST_PAGES`] listing pages per stream and
//! [`MAX_BATCH_READS`] batch objects. A cursor carries on where a call stopped. It holds, per
//! stream, the sequence below which records are still to be searched, so records that arrive
//! meanwhile (higher sequences) never shift the pages already seen.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::audit::batch::gunzip;
use crate::audit::query::RecordFilter;
use crate::audit::ObjectName;
use crate::error::{ErrorKind, GatewayError};
use crate::host::Host;
use crate::ids::{is_valid_id, TenantId};

pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 200;
/// Batch objects read per call, over all streams.
pub const MAX_BATCH_READS: usize = 16;
/// Listing pages (of [`LIST_PAGE`] names) per stream per call.
pub const MAX_LIST_PAGES: usize = 20;
pub const LIST_PAGE: u32 = 1000;
/// A batch decompressing to more than this is skipped (and reported), never read whole.
const MAX_BATCH_BYTES: usize = 64 * 1024 * 1024;
/// Records reach a stream up to a reservation TTL after their timestamp (an expired request is
/// recorded by the ledger's alarm): a stream is searched this far past `from_ms`.
const LATE_RECORD_SLACK_MS: u64 = 60 * 60 * 1000;

const PARAMS: &[&str] = &[
    "from_ms",
    "to_ms",
    "key_id",
    "model",
    "outcome",
    "operation",
    "limit",
    "cursor",
];
const OUTCOMES: &[&str] = &["ok", "refused", "error", "partial"];

/// What to search for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchAsk {
    pub filter: RecordFilter,
    pub outcome: Option<String>,
    pub limit: usize,
    pub cursor: Cursor,
}

/// Per stream: only records with a sequence below this are left to search. A stream not named
/// is searched from its newest batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cursor(pub BTreeMap<String, u64>);

fn bad(param: &str, message: String) -> GatewayError {
    GatewayError::new(ErrorKind::InvalidRequest, message).with_param(param)
}

impl Cursor {
    /// `stream:sequence,stream:sequence`.
    pub fn parse(text: &str) -> Result<Cursor, GatewayError> {
        let mut out = BTreeMap::new();
        if text.is_empty() {
            return Ok(Cursor(out));
        }
        for part in text.split(',') {
            let parsed = part
                .split_once(':')
                .filter(|(s, _)| is_valid_id(s))
                .and_then(|(s, n)| n.parse::<u64>().ok().map(|n| (s.to_string(), n)));
            let Some((stream, n)) = parsed else {
                return Err(bad(
                    "cursor",
                    "cursor is not one this endpoint returned; start again without it.".into(),
                ));
            };
            out.insert(stream, n);
        }
        Ok(Cursor(out))
    }

    pub fn render(&self) -> String {
        self.0
            .iter()
            .map(|(s, n)| format!("{s}:{n}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl SearchAsk {
    /// From the query's parameters; the tenant is the URL's, never a parameter.
    pub fn parse(tenant: &TenantId, pairs: &[(String, String)]) -> Result<SearchAsk, GatewayError> {
        let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
        for (name, value) in pairs {
            let Some(known) = PARAMS.iter().find(|p| **p == name.as_str()) else {
                return Err(bad(
                    name,
                    format!(
                        "Unknown parameter {name:?}; this search takes {}.",
                        PARAMS.join(", ")
                    ),
                ));
            };
            if seen.insert(known, value.as_str()).is_some() {
                return Err(bad(name, format!("{name} is given more than once.")));
            }
        }
        let millis = |name: &str| -> Result<Option<u64>, GatewayError> {
            seen.get(name)
                .map(|v| {
                    v.parse::<u64>().map_err(|_| {
                        bad(
                            name,
                            format!("{name} must be milliseconds since 1970 (an integer)."),
                        )
                    })
                })
                .transpose()
        };
        let text = |name: &str, max: usize| -> Result<Option<String>, GatewayError> {
            match seen.get(name) {
                None => Ok(None),
                Some(v) if v.is_empty() || v.len() > max || v.chars().any(char::is_control) => {
                    Err(bad(
                        name,
                        format!("{name} must be 1-{max} printable characters."),
                    ))
                }
                Some(v) => Ok(Some((*v).to_string())),
            }
        };
        let (from_ms, to_ms) = (millis("from_ms")?, millis("to_ms")?);
        if let (Some(f), Some(t)) = (from_ms, to_ms) {
            if f >= t {
                return Err(bad("to_ms", "to_ms must be after from_ms.".into()));
            }
        }
        let key_id = text("key_id", 64)?;
        if let Some(k) = &key_id {
            if !is_valid_id(k) {
                return Err(bad("key_id", format!("{k:?} is not a key id.")));
            }
        }
        let outcome = text("outcome", 16)?;
        if let Some(o) = &outcome {
            if !OUTCOMES.contains(&o.as_str()) {
                return Err(bad(
                    "outcome",
                    format!("outcome must be one of {}.", OUTCOMES.join(", ")),
                ));
            }
        }
        let limit = match seen.get("limit") {
            None => DEFAULT_LIMIT,
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| bad("limit", format!("limit must be 1 to {MAX_LIMIT}.")))?,
        };
        Ok(SearchAsk {
            filter: RecordFilter {
                tenant_id: Some(tenant.to_string()),
                key_id,
                model: text("model", 200)?,
                from_ms,
                to_ms,
                operation: text("operation", 100)?,
            },
            outcome,
            limit,
            cursor: Cursor::parse(seen.get("cursor").copied().unwrap_or(""))?,
        })
    }

    fn matches(&self, record: &Value) -> bool {
        self.filter.matches(record)
            && self
                .outcome
                .as_deref()
                .is_none_or(|o| record.get("outcome").and_then(Value::as_str) == Some(o))
    }
}

/// One batch object of a stream, by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchRef {
    pub key: String,
    pub first: u64,
    pub last: u64,
}

/// A matching record and where it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub stream: String,
    pub sequence: u64,
    pub batch: String,
    pub hash: String,
    pub record: Value,
}

/// The matching records of one batch object (its JSON Lines after gunzip), newest sequence
/// first, below `below`. Recorded content (prompt text a tenant asked to keep) never leaves.
pub fn matches_in_batch(
    ask: &SearchAsk,
    batch: &BatchRef,
    text: &[u8],
    below: u64,
) -> (Vec<Found>, Option<u64>) {
    let mut out = Vec::new();
    let mut newest_ts: Option<u64> = None;
    for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let Ok(entry) = serde_json::from_slice::<Value>(line) else {
            continue;
        };
        let sequence = entry.get("sequence").and_then(Value::as_u64).unwrap_or(0);
        let Some(record) = entry.get("record") else {
            continue;
        };
        if let Some(ts) = record.get("timestamp_ms").and_then(Value::as_u64) {
            newest_ts = Some(newest_ts.map_or(ts, |n| n.max(ts)));
        }
        if sequence >= below || !ask.matches(record) {
            continue;
        }
        let mut record = record.clone();
        if let Some(obj) = record.as_object_mut() {
            obj.remove("content");
        }
        out.push(Found {
            stream: entry
                .get("stream")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            sequence,
            batch: batch.key.clone(),
            hash: entry
                .get("hash")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            record,
        });
    }
    out.sort_by_key(|f| std::cmp::Reverse(f.sequence));
    (out, newest_ts)
}

/// One stream's part of a search: its batches still to read (newest first) and its bound.
struct StreamScan {
    name: String,
    pending: Vec<BatchRef>,
    below: u64,
    found: Vec<Found>,
    /// The `first` of the oldest batch read in this call.
    read_down_to: Option<u64>,
    /// Searched back past `from_ms`: nothing older can match.
    done: bool,
    /// How many of `found` were returned.
    taken: usize,
}

async fn list_batches<H: Host>(
    host: &H,
    stream: &str,
) -> Result<(Vec<BatchRef>, bool), GatewayError> {
    let prefix = format!("audit/{stream}/batches/");
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..MAX_LIST_PAGES {
        let page = host
            .audit_list(&prefix, after.as_deref(), LIST_PAGE)
            .await
            .map_err(unavailable)?;
        let full = page.len() as u32 >= LIST_PAGE;
        after = page.last().cloned();
        for key in page {
            if let Some(ObjectName::Batch { first, last, .. }) = ObjectName::parse(&key) {
                out.push(BatchRef { key, first, last });
            }
        }
        if !full {
            return Ok((out, false));
        }
    }
    Ok((out, true))
}

fn unavailable(e: crate::host::HostError) -> GatewayError {
    GatewayError::internal(
        ErrorKind::AuditUnavailable,
        "The region's audit bucket could not be read; retry shortly.",
        &e,
    )
}

/// Runs a search over `streams` and returns the response body.
pub async fn search<H: Host>(
    host: &H,
    streams: &[String],
    ask: &SearchAsk,
) -> Result<Value, GatewayError> {
    let mut scans = Vec::new();
    let mut listing_truncated = false;
    for name in streams {
        let below = ask.cursor.0.get(name).copied().unwrap_or(u64::MAX);
        let (mut batches, truncated) = list_batches(host, name).await?;
        listing_truncated |= truncated;
        batches.retain(|b| b.first < below);
        batches.sort_by_key(|b| std::cmp::Reverse(b.first));
        scans.push(StreamScan {
            name: name.clone(),
            pending: batches,
            below,
            found: Vec::new(),
            read_down_to: None,
            done: false,
            taken: 0,
        });
    }
    let mut reads = 0;
    let mut skipped = Vec::new();
    // Round robin over the streams, newest batches first, until enough matched or the read
    // budget is spent.
    'outer: loop {
        let mut progressed = false;
        for scan in scans.iter_mut() {
            if scan.done || scan.pending.is_empty() {
                continue;
            }
            if reads >= MAX_BATCH_READS {
                break 'outer;
            }
            let batch = scan.pending.remove(0);
            reads += 1;
            progressed = true;
            let bytes = host.audit_get(&batch.key).await.map_err(unavailable)?;
            scan.read_down_to = Some(batch.first);
            let Some(bytes) = bytes else { continue };
            let text = match gunzip(&bytes, MAX_BATCH_BYTES) {
                Ok(t) => t,
                Err(e) => {
                    skipped.push(json!({"batch": batch.key, "why": e.to_string()}));
                    continue;
                }
            };
            let (found, newest_ts) = matches_in_batch(ask, &batch, &text, scan.below);
            scan.found.extend(found);
            if let (Some(from), Some(ts)) = (ask.filter.from_ms, newest_ts) {
                if ts.saturating_add(LATE_RECORD_SLACK_MS) < from {
                    scan.done = true;
                }
            }
        }
        let matched: usize = scans.iter().map(|s| s.found.len()).sum();
        if !progressed || matched >= ask.limit {
            break;
        }
    }
    // Newest first over all streams; each stream's records stay in descending sequence, so
    // what is returned of a stream is always its newest matches.
    let mut results = Vec::new();
    while results.len() < ask.limit {
        let next = scans
            .iter_mut()
            .filter(|s| s.taken < s.found.len())
            .max_by_key(|s| {
                s.found
                    .get(s.taken)
                    .and_then(|f| f.record.get("timestamp_ms").and_then(Value::as_u64))
            });
        let Some(scan) = next else { break };
        if let Some(f) = scan.found.get(scan.taken) {
            results.push(f.clone());
        }
        scan.taken += 1;
    }
    let mut cursor = ask.cursor.clone();
    let mut more = false;
    for scan in &scans {
        let left_over = scan.taken < scan.found.len();
        let bound = if left_over {
            // Some matches of the batches read were not returned: carry on below the last one
            // that was.
            match scan.taken.checked_sub(1).and_then(|i| scan.found.get(i)) {
                None => scan.below,
                Some(f) => f.sequence,
            }
        } else if scan.done {
            0
        } else {
            scan.read_down_to.unwrap_or(scan.below)
        };
        if bound != u64::MAX {
            cursor.0.insert(scan.name.clone(), bound);
        }
        more |= left_over || (!scan.done && !scan.pending.is_empty());
    }
    let data: Vec<Value> = results
        .into_iter()
        .map(|f| {
            json!({"stream": f.stream, "sequence": f.sequence, "batch": f.batch,
                   "hash": f.hash, "record": f.record})
        })
        .collect();
    Ok(json!({
        "object": "list",
        "data": data,
        "next_cursor": if more { Value::String(cursor.render()) } else { Value::Null },
        "batches_read": reads,
        "listing_truncated": listing_truncated,
        "skipped": skipped,
        "verified": false,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> TenantId {
        TenantId("acme".into())
    }
    fn pairs(q: &str) -> Vec<(String, String)> {
        url::form_urlencoded::parse(q.as_bytes())
            .into_owned()
            .collect()
    }

    #[test]
    fn parameters_are_checked_and_the_tenant_is_the_urls() {
        let ask = SearchAsk::parse(
            &t(),
            &pairs("key_id=k_1&model=gpt-4o&outcome=error&limit=5&from_ms=1&to_ms=9"),
        )
        .expect("valid");
        assert_eq!(ask.filter.tenant_id.as_deref(), Some("acme"));
        assert_eq!(ask.filter.key_id.as_deref(), Some("k_1"));
        assert_eq!(ask.limit, 5);
        for (q, param) in [
            ("tenant_id=other", "tenant_id"),
            ("limit=0", "limit"),
            ("limit=201", "limit"),
            ("from_ms=-1", "from_ms"),
            ("from_ms=5&to_ms=5", "to_ms"),
            ("outcome=maybe", "outcome"),
            ("key_id=K!", "key_id"),
            ("model=", "model"),
            ("model=a&model=b", "model"),
            ("cursor=nope", "cursor"),
            ("cursor=s:x", "cursor"),
        ] {
            let e = SearchAsk::parse(&t(), &pairs(q)).expect_err(q);
            assert_eq!(e.status(), 400, "{q}");
            assert_eq!(e.param.as_deref(), Some(param), "{q}");
        }
    }

    #[test]
    fn cursors_round_trip() {
        let c = Cursor::parse("audit-eu-1-of-2:40,audit-eu-2-of-2:0").expect("valid");
        assert_eq!(c.0.get("audit-eu-1-of-2"), Some(&40));
        assert_eq!(Cursor::parse(&c.render()).expect("valid"), c);
    }

    fn line(seq: u64, record: Value) -> String {
        json!({"stream": "s", "sequence": seq, "prev_hash": "p", "hash": format!("h{seq}"), "record": record})
            .to_string()
    }

    #[test]
    fn a_batch_yields_the_tenants_matches_newest_first_without_content() {
        let text = [
            line(1, json!({"tenant_id": "acme", "key_id": "k1", "timestamp_ms": 10, "outcome": "ok", "content": {"prompt": "secret words"}})),
            line(2, json!({"tenant_id": "other", "key_id": "k1", "timestamp_ms": 11, "outcome": "ok"})),
            line(3, json!({"tenant_id": "acme", "key_id": "k2", "timestamp_ms": 12, "outcome": "error"})),
            line(4, json!({"tenant_id": "acme", "key_id": "k1", "timestamp_ms": 13, "outcome": "ok"})),
        ]
        .join("\n");
        let batch = BatchRef {
            key: "audit/s/batches/x".into(),
            first: 1,
            last: 4,
        };
        let ask = SearchAsk::parse(&t(), &pairs("key_id=k1")).expect("valid");
        let (found, newest) = matches_in_batch(&ask, &batch, text.as_bytes(), u64::MAX);
        assert_eq!(
            found.iter().map(|f| f.sequence).collect::<Vec<_>>(),
            vec![4, 1]
        );
        assert_eq!(newest, Some(13));
        assert!(found.iter().all(|f| f.record.get("content").is_none()));
        assert_eq!(found[0].batch, "audit/s/batches/x");
        // Below a cursor's bound only.
        let (found, _) = matches_in_batch(&ask, &batch, text.as_bytes(), 4);
        assert_eq!(
            found.iter().map(|f| f.sequence).collect::<Vec<_>>(),
            vec![1]
        );
        let errors = SearchAsk::parse(&t(), &pairs("outcome=error")).expect("valid");
        let (found, _) = matches_in_batch(&errors, &batch, text.as_bytes(), u64::MAX);
        assert_eq!(
            found.iter().map(|f| f.sequence).collect::<Vec<_>>(),
            vec![3]
        );
    }
}

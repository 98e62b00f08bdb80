//! Requests refused before any tenant was known (no key, a malformed or unknown key, another
//! region's host or tenant, an unknown route) have no tenant trail to go into. They go into the
//! region's trail through a ledger of their own ([`UNATTRIBUTED_LEDGER`]), counted rather than
//! recorded one by one: a flood of made-up keys must not cost a durable write per attempt, or
//! the audit trail becomes the way to overload the region.
//!
//! Each isolate counts its refusals over a short window, in groups (operation, status, error
//! code, client address, key), and then sends one record per group, the first attempt's
//! identifiers plus a [`RefusalsNote`] (count, first and last time). Past [`MAX_GROUPS`] groups
//! in a window, attempts are counted by operation and code only (`merged`), so a window costs
//! at most `MAX_GROUPS` + one per code records whatever the attempts. What a window holds lives
//! in the isolate until it is sent: an isolate that dies in the window loses it (the bound is
//! the window), which is the trade against a durable write per unauthenticated request.

use crate::audit::{AuditEvent, AuditRecord, Outcome, RefusalsNote};
use crate::error::GatewayError;

/// The ledger whose records are the region's refusals before a tenant was known. Tenant ids
/// start with a letter or digit, so no tenant's ledger has this name.
pub const UNATTRIBUTED_LEDGER: &str = "_unattributed";

/// How many ledgers the region's refusals are spread over (`_unattributed#<k>`), each sent to
/// at random: a flood over many isolates is not one object's load, nor one audit stream's.
pub const LEDGER_SHARDS: u32 = 8;

/// The most groups (distinct client and key) one isolate keeps in a window.
pub const MAX_GROUPS: usize = 64;

/// A window whose send never ran (its isolate's after-response work was cut) is given up on
/// after this, and the next refusal starts a new one that sends everything held.
const STALE_MS: u64 = 60_000;

/// A request refused before any tenant or admin was known, as its record names it.
pub struct Unattributed<'a> {
    pub operation: &'static str,
    pub client: Option<&'a str>,
    pub key_hash_prefix: Option<String>,
    pub key_id: Option<String>,
    pub request_id: &'a str,
    pub trace_id: &'a str,
    /// When the request started (its record's time).
    pub started_ms: u64,
}

/// One refused request, as the tally counts it.
pub(crate) struct Refused<'a> {
    pub who: Unattributed<'a>,
    pub err: &'a GatewayError,
    /// When it was refused: a window runs from here, so a slow refusal (a store timing out)
    /// does not open a window that is already over.
    pub now_ms: u64,
}

#[derive(Debug, PartialEq, Eq)]
struct GroupKey {
    operation: &'static str,
    status: u16,
    code: &'static str,
    client: Option<String>,
    key_hash_prefix: Option<String>,
    key_id: Option<String>,
    merged: bool,
}

#[derive(Debug)]
struct Group {
    key: GroupKey,
    count: u64,
    first_ms: u64,
    last_ms: u64,
    request_id: String,
    trace_id: String,
    latency_ms: u64,
}

/// An isolate's refusals not sent yet.
#[derive(Debug, Default)]
pub(crate) struct RefusalTally {
    groups: Vec<Group>,
    /// When the open window's send runs (`None`: no window open).
    send_at_ms: Option<u64>,
}

impl RefusalTally {
    /// Counts `refused`. Returns when to send, when this refusal opened a window (the caller
    /// schedules the send); `None` when a send is already due.
    pub fn add(&mut self, refused: Refused<'_>, window_ms: u64) -> Option<u64> {
        let Refused {
            who,
            err,
            now_ms: now,
        } = refused;
        let mut key = GroupKey {
            operation: who.operation,
            status: err.status(),
            code: err.code(),
            client: who.client.map(str::to_string),
            key_hash_prefix: who.key_hash_prefix,
            key_id: who.key_id,
            merged: false,
        };
        let at = who.started_ms;
        if !self.groups.iter().any(|g| g.key == key) && self.groups.len() >= MAX_GROUPS {
            key = GroupKey {
                client: None,
                key_hash_prefix: None,
                key_id: None,
                merged: true,
                ..key
            };
        }
        match self.groups.iter_mut().find(|g| g.key == key) {
            Some(group) => {
                group.count += 1;
                group.first_ms = group.first_ms.min(at);
                group.last_ms = group.last_ms.max(at);
            }
            None => self.groups.push(Group {
                key,
                count: 1,
                first_ms: at,
                last_ms: at,
                request_id: who.request_id.to_string(),
                trace_id: who.trace_id.to_string(),
                latency_ms: now.saturating_sub(at),
            }),
        }
        match self.send_at_ms {
            Some(due) if now < due.saturating_add(STALE_MS) => None,
            _ => {
                let due = now.saturating_add(window_ms);
                self.send_at_ms = Some(due);
                Some(due)
            }
        }
    }

    /// Everything held, as records for the region's trail, and closes the window.
    pub fn take(&mut self, region: &str) -> Vec<AuditEvent> {
        self.send_at_ms = None;
        self.groups
            .drain(..)
            .map(|g| {
                let mut record = AuditRecord::started(
                    &g.request_id,
                    g.first_ms,
                    region,
                    g.key.operation.to_string(),
                    &g.trace_id,
                );
                record.key_id = g.key.key_id;
                record.outcome = if g.key.status < 500 {
                    Outcome::Refused
                } else {
                    Outcome::Error
                };
                record.status = g.key.status;
                record.error_code = Some(g.key.code.to_string());
                record.latency_ms = g.latency_ms;
                let mut event = AuditEvent::from(record);
                event.detail.refusals = Some(RefusalsNote {
                    count: g.count,
                    first_ms: g.first_ms,
                    last_ms: g.last_ms,
                    client: g.key.client,
                    key_hash_prefix: g.key.key_hash_prefix,
                    merged: g.key.merged,
                });
                event
            })
            .collect()
    }

    #[cfg(test)]
    fn groups(&self) -> usize {
        self.groups.len()
    }
}

/// The first 16 hex digits of a key's lookup hash: enough to tell keys apart in a trail, and
/// a quarter of a MAC keyed with the deployment's secret says nothing about the key.
pub(crate) fn hash_prefix(hash: &str) -> String {
    hash.get(..16).unwrap_or(hash).to_string()
}

/// `address` without a `:port` after it (`192.0.2.1:443`, `[2001:db8::1]:443`); a bare IPv4 or
/// IPv6 address as it is. Plain string work: std's address parser costs the Worker kilobytes.
pub(crate) fn without_port(address: &str) -> &str {
    let Some((host, port)) = address.rsplit_once(':') else {
        return address;
    };
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return address;
    }
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6;
    }
    // More than one colon without brackets: a bare IPv6 address, whose last group is digits.
    if host.contains(':') {
        return address;
    }
    host
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn refused<'a>(
        err: &'a GatewayError,
        client: &'a str,
        key: Option<&str>,
        at_ms: u64,
        id: &'a str,
    ) -> Refused<'a> {
        Refused {
            who: Unattributed {
                operation: "chat.completions",
                client: Some(client),
                key_hash_prefix: key.map(str::to_string),
                key_id: None,
                request_id: id,
                trace_id: "0af7651916cd43dd8448eb211c80319c",
                started_ms: at_ms,
            },
            err,
            now_ms: at_ms + 1,
        }
    }

    #[test]
    fn repeated_attempts_are_one_record_with_their_count_and_first_and_last_times() {
        let unknown = GatewayError::new(ErrorKind::InvalidApiKey, "Incorrect API key provided.");
        let mut tally = RefusalTally::default();
        assert_eq!(
            tally.add(
                refused(&unknown, "203.0.113.7", Some("aa"), 1_000, "req_1"),
                2_000
            ),
            Some(3_001),
            "the first refusal opens a window"
        );
        assert_eq!(
            tally.add(
                refused(&unknown, "203.0.113.7", Some("aa"), 1_500, "req_2"),
                2_000
            ),
            None
        );
        assert_eq!(
            tally.add(
                refused(&unknown, "203.0.113.7", Some("aa"), 1_200, "req_3"),
                2_000
            ),
            None
        );
        // Another key from the same address is its own group.
        tally.add(
            refused(&unknown, "203.0.113.7", Some("bb"), 1_600, "req_4"),
            2_000,
        );
        let records = tally.take("eu");
        assert_eq!(records.len(), 2);
        let first = &records[0];
        assert_eq!(first.record.request_id, "req_1");
        assert_eq!(first.record.timestamp_ms, 1_000);
        assert_eq!(first.record.tenant_id, None);
        assert_eq!(first.record.region, "eu");
        assert_eq!(first.record.outcome, Outcome::Refused);
        assert_eq!(first.record.status, 401);
        assert_eq!(first.record.error_code.as_deref(), Some("invalid_api_key"));
        let note = first.detail.refusals.as_ref().expect("a refusals note");
        assert_eq!((note.count, note.first_ms, note.last_ms), (3, 1_000, 1_500));
        assert_eq!(note.client.as_deref(), Some("203.0.113.7"));
        assert_eq!(note.key_hash_prefix.as_deref(), Some("aa"));
        assert!(!note.merged);
        assert_eq!(
            records[1].detail.refusals.as_ref().map(|n| n.count),
            Some(1)
        );
        // Taken: the next refusal opens a new window.
        assert_eq!(tally.groups(), 0);
        assert_eq!(
            tally.add(
                refused(&unknown, "203.0.113.7", Some("aa"), 9_000, "req_5"),
                2_000
            ),
            Some(11_001)
        );
    }

    #[test]
    fn a_flood_of_distinct_keys_costs_at_most_the_group_limit_plus_one_record_per_code() {
        let unknown = GatewayError::new(ErrorKind::InvalidApiKey, "Incorrect API key provided.");
        let missing = GatewayError::new(ErrorKind::MissingApiKey, "You didn't provide an API key.");
        let mut tally = RefusalTally::default();
        for i in 0..10_000u64 {
            let key = format!("{i:016x}");
            let err = if i % 2 == 0 { &unknown } else { &missing };
            tally.add(
                refused(err, "198.51.100.1", Some(&key), 5_000 + i, "req_x"),
                2_000,
            );
        }
        let records = tally.take("eu");
        assert_eq!(records.len(), MAX_GROUPS + 2);
        let merged: Vec<_> = records
            .iter()
            .filter_map(|r| {
                r.detail
                    .refusals
                    .as_ref()
                    .filter(|n| n.merged)
                    .map(|n| (r, n))
            })
            .collect();
        assert_eq!(merged.len(), 2, "one merged group per error code");
        for (record, note) in &merged {
            assert_eq!(note.client, None);
            assert_eq!(note.key_hash_prefix, None);
            assert!(record.record.error_code.is_some());
        }
        // Every attempt is counted, in a group of its own or a merged one.
        let total: u64 = records
            .iter()
            .map(|r| r.detail.refusals.as_ref().map_or(0, |n| n.count))
            .sum();
        assert_eq!(total, 10_000);
    }

    #[test]
    fn a_window_whose_send_never_ran_is_replaced_by_the_next_refusal() {
        let unknown = GatewayError::new(ErrorKind::InvalidApiKey, "Incorrect API key provided.");
        let mut tally = RefusalTally::default();
        assert_eq!(
            tally.add(refused(&unknown, "a", None, 0, "req_1"), 2_000),
            Some(2_001)
        );
        assert_eq!(
            tally.add(refused(&unknown, "a", None, 61_999, "req_2"), 2_000),
            None
        );
        // The send due at 2 s never came: a minute later a new one is scheduled, and it
        // carries what the lost one held.
        assert_eq!(
            tally.add(refused(&unknown, "a", None, 62_000, "req_3"), 2_000),
            Some(64_001)
        );
        let records = tally.take("eu");
        assert_eq!(records.len(), 1);
        assert_eq!(
            records[0].detail.refusals.as_ref().map(|n| n.count),
            Some(3)
        );
    }

    #[test]
    fn a_window_starts_when_the_refusal_is_made_not_when_its_request_started() {
        let down = GatewayError::new(ErrorKind::StoreUnavailable, "The key store is unavailable.");
        let mut tally = RefusalTally::default();
        // The key store took 5 s to fail: the window still runs 2 s from the refusal.
        let mut slow = refused(&down, "a", None, 1_000, "req_1");
        slow.now_ms = 6_000;
        assert_eq!(tally.add(slow, 2_000), Some(8_000));
        let records = tally.take("eu");
        let note = records[0].detail.refusals.as_ref().expect("note");
        assert_eq!(
            (records[0].record.timestamp_ms, note.first_ms),
            (1_000, 1_000)
        );
    }

    #[test]
    fn an_address_loses_its_port_and_keeps_everything_else() {
        for (given, kept) in [
            ("127.0.0.1:54321", "127.0.0.1"),
            ("[2001:db8::7]:443", "2001:db8::7"),
            ("203.0.113.7", "203.0.113.7"),
            ("2001:db8::7", "2001:db8::7"),
            ("2001:db8::", "2001:db8::"),
            ("::1", "::1"),
            ("host:http", "host:http"),
            ("127.0.0.1:", "127.0.0.1:"),
        ] {
            assert_eq!(without_port(given), kept, "{given}");
        }
    }

    #[test]
    fn a_server_side_failure_is_recorded_as_an_error_not_a_refusal() {
        let down = GatewayError::new(ErrorKind::StoreUnavailable, "The key store is unavailable.");
        let mut tally = RefusalTally::default();
        tally.add(refused(&down, "a", Some("aa"), 0, "req_1"), 0);
        let records = tally.take("eu");
        assert_eq!(records[0].record.outcome, Outcome::Error);
        assert_eq!(records[0].record.status, 503);
    }
}

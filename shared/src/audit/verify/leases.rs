//! Leases across the verified records (see `ledger::lease`): a lease's own record (operation
//! `lease`) says how many requests reported under it; the records naming it must be that many.
//! A lease given up on (`lease_unreconciled`) is a declared gap, not tampering: it is listed
//! with its counts so an auditor sees which key's requests may be unrecorded, and when.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::problem::{Problem, ProblemKind};
use super::CheckedRecord;

/// A lease whose isolate did not report every request it admitted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeaseGap {
    pub lease_id: String,
    pub tenant_id: Option<String>,
    pub key_id: Option<String>,
    /// When it was granted and how long it lived (ms).
    pub timestamp_ms: u64,
    pub latency_ms: u64,
    pub granted: u64,
    /// `None`: its isolate never said how many it admitted.
    pub admitted: Option<u64>,
    pub reported: u64,
    /// Where its record is.
    pub object: String,
    pub line: u64,
}

fn u(v: &Value, path: &str) -> Option<u64> {
    v.pointer(path).and_then(Value::as_u64)
}

fn s(v: &Value, path: &str) -> Option<String> {
    v.pointer(path).and_then(Value::as_str).map(str::to_string)
}

/// Checks the verified records' leases; returns the declared gaps and any count that disagrees.
pub(super) fn check(records: &[CheckedRecord]) -> (Vec<LeaseGap>, Vec<Problem>) {
    let mut named: BTreeMap<&str, u64> = BTreeMap::new();
    let mut leases = Vec::new();
    for r in records.iter().filter(|r| r.verified) {
        let Some(id) = r.record.pointer("/lease/id").and_then(Value::as_str) else {
            continue;
        };
        if r.record.get("operation").and_then(Value::as_str) == Some("lease") {
            leases.push(r);
        } else {
            *named.entry(id).or_default() += 1;
        }
    }
    let mut gaps = Vec::new();
    let mut problems = Vec::new();
    for r in leases {
        let v = &r.record;
        let id = s(v, "/lease/id").unwrap_or_default();
        let reported = u(v, "/lease/reported").unwrap_or(0);
        let found = named.get(id.as_str()).copied().unwrap_or(0);
        if found < reported {
            problems.push(
                Problem::new(
                    ProblemKind::LeaseCountMismatch,
                    format!("lease {id}: fewer records name it than its record says reported"),
                )
                .object(&r.object)
                .line(r.line)
                .sequence(r.sequence)
                .expected_found(reported, found),
            );
        }
        if v.get("outcome").and_then(Value::as_str) != Some("ok") {
            gaps.push(LeaseGap {
                lease_id: id,
                tenant_id: s(v, "/tenant_id"),
                key_id: s(v, "/key_id"),
                timestamp_ms: u(v, "/timestamp_ms").unwrap_or(0),
                latency_ms: u(v, "/latency_ms").unwrap_or(0),
                granted: u(v, "/lease/granted").unwrap_or(0),
                admitted: u(v, "/lease/admitted"),
                reported,
                object: r.object.clone(),
                line: r.line,
            });
        }
    }
    (gaps, problems)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn checked(sequence: u64, record: Value) -> CheckedRecord {
        CheckedRecord {
            stream: "audit-eu-0-of-1".into(),
            sequence,
            hash: String::new(),
            object: "audit/x/batches/b".into(),
            line: sequence,
            verified: true,
            record,
        }
    }

    #[test]
    fn counts_the_records_naming_each_lease_and_lists_unreconciled_ones() {
        let records = vec![
            checked(
                1,
                json!({"operation": "chat.completions", "lease": {"id": "L1"}}),
            ),
            checked(
                2,
                json!({"operation": "chat.completions", "lease": {"id": "L1"}}),
            ),
            checked(
                3,
                json!({"operation": "lease", "outcome": "ok", "lease": {"id": "L1", "granted": 8, "admitted": 2, "reported": 2}}),
            ),
            checked(
                4,
                json!({"operation": "lease", "outcome": "ok", "lease": {"id": "L2", "granted": 8, "admitted": 3, "reported": 3}}),
            ),
            checked(
                5,
                json!({"operation": "lease", "outcome": "partial", "tenant_id": "acme", "key_id": "k1", "lease": {"id": "L3", "granted": 8, "reported": 0}}),
            ),
        ];
        let (gaps, problems) = check(&records);
        // L2 says 3 reported and no record names it: removed records.
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].kind, ProblemKind::LeaseCountMismatch);
        assert_eq!(problems[0].sequence, Some(4));
        assert_eq!(gaps.len(), 1);
        assert_eq!(gaps[0].lease_id, "L3");
        assert_eq!(
            (gaps[0].granted, gaps[0].admitted, gaps[0].reported),
            (8, None, 0)
        );
        assert_eq!(gaps[0].key_id.as_deref(), Some("k1"));
    }
}

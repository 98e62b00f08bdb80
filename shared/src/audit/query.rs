//! Filters over records read back by the verifier (JSON values, so records of any schema version
//! can be queried by the fields they share).

use serde_json::Value;

use super::verify::CheckedRecord;

/// Which records to keep. Every field set must match; an unset field matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordFilter {
    pub tenant_id: Option<String>,
    pub key_id: Option<String>,
    /// Matches the requested or the served model.
    pub model: Option<String>,
    /// `timestamp_ms >= from_ms`.
    pub from_ms: Option<u64>,
    /// `timestamp_ms < to_ms`.
    pub to_ms: Option<u64>,
    /// The operation (`chat.completions`, `admin.tenant.put`); a trailing `*` matches every
    /// operation that starts with what precedes it (`admin.*`).
    pub operation: Option<String>,
}

fn field<'a>(record: &'a Value, name: &str) -> Option<&'a str> {
    record.get(name).and_then(Value::as_str)
}

impl RecordFilter {
    pub fn matches(&self, record: &Value) -> bool {
        let is = |name: &str, want: &Option<String>| {
            want.as_deref()
                .is_none_or(|w| field(record, name) == Some(w))
        };
        let model_ok = self.model.as_deref().is_none_or(|m| {
            field(record, "requested_model") == Some(m) || field(record, "served_model") == Some(m)
        });
        let op_ok = self.operation.as_deref().is_none_or(|want| {
            let op = field(record, "operation");
            match want.strip_suffix('*') {
                Some(prefix) => op.is_some_and(|o| o.starts_with(prefix)),
                None => op == Some(want),
            }
        });
        let ts = record.get("timestamp_ms").and_then(Value::as_u64);
        let from_ok = self.from_ms.is_none_or(|f| ts.is_some_and(|t| t >= f));
        let to_ok = self.to_ms.is_none_or(|end| ts.is_some_and(|t| t < end));
        is("tenant_id", &self.tenant_id)
            && is("key_id", &self.key_id)
            && model_ok
            && op_ok
            && from_ok
            && to_ok
    }

    /// The matching records, in stream and sequence order.
    pub fn select<'a>(
        &self,
        records: impl IntoIterator<Item = &'a CheckedRecord>,
    ) -> Vec<&'a CheckedRecord> {
        let mut out: Vec<&CheckedRecord> = records
            .into_iter()
            .filter(|r| self.matches(&r.record))
            .collect();
        out.sort_by(|a, b| (&a.stream, a.sequence).cmp(&(&b.stream, b.sequence)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_set_field_must_match() {
        let r = json!({"tenant_id": "acme", "key_id": "k1", "requested_model": "gpt-4o",
                       "served_model": "gpt-4o-2024", "timestamp_ms": 1000});
        assert!(RecordFilter::default().matches(&r));
        let f = |t: Option<&str>, k: Option<&str>, m: Option<&str>, from, to| RecordFilter {
            tenant_id: t.map(str::to_string),
            key_id: k.map(str::to_string),
            model: m.map(str::to_string),
            from_ms: from,
            to_ms: to,
            operation: None,
        };
        assert!(f(
            Some("acme"),
            Some("k1"),
            Some("gpt-4o-2024"),
            Some(1000),
            Some(1001)
        )
        .matches(&r));
        assert!(f(None, None, Some("gpt-4o"), None, None).matches(&r));
        assert!(!f(Some("other"), None, None, None, None).matches(&r));
        assert!(!f(None, Some("k2"), None, None, None).matches(&r));
        assert!(!f(None, None, Some("gpt-5"), None, None).matches(&r));
        let op = |o: &str| RecordFilter {
            operation: Some(o.into()),
            ..RecordFilter::default()
        };
        let admin = json!({"operation": "admin.tenant.put"});
        assert!(op("admin.*").matches(&admin));
        assert!(op("admin.tenant.put").matches(&admin));
        assert!(!op("admin.tenant").matches(&admin));
        assert!(!op("admin.key.*").matches(&admin));
        assert!(!op("admin.*").matches(&json!({"operation": "chat.completions"})));
        assert!(!f(None, None, None, Some(1001), None).matches(&r));
        assert!(!f(None, None, None, None, Some(1000)).matches(&r));
        // A record without the field does not match a filter on it.
        assert!(!f(Some("acme"), None, None, None, None).matches(&json!({"timestamp_ms": 1})));
        assert!(!f(None, None, None, Some(0), None).matches(&json!({})));
    }
}

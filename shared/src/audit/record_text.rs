//! A finished record as a ledger's outbox keeps it: its JSON text, written once, when the
//! record enters the outbox. The record waits there until it is forwarded, and a host that
//! stores the ledger as one row (Spin) writes, copies and drops the whole outbox on every
//! operation: with the records as structs, each was serialized again by every operation until
//! forwarded (~90 times at 450 requests/s and a 200 ms forward), and that, with their copies
//! and drops, was ~15% of Spin's CPU. As text, a record is written out as it is (serde_json's
//! `RawValue` convention), copied as a reference count, and parsed once, when forwarded.

use std::sync::Arc;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use super::AuditEvent;
use crate::json_ser::RAW_JSON_TOKEN;

/// An audit record's JSON text (as `json_ser`, or serde_json, writes the record).
#[derive(Debug, Clone)]
pub struct RecordText(Repr);

#[derive(Debug, Clone)]
enum Repr {
    Text(Arc<str>),
    /// A record its writer refused (no such record exists: every field serializes); kept whole,
    /// so the store's write reports the error as it did before records were kept as text.
    Event(Arc<AuditEvent>),
}

impl RecordText {
    /// The text of `event`.
    pub fn of(event: AuditEvent) -> Self {
        match crate::json_ser::to_string(&event) {
            Ok(text) => RecordText(Repr::Text(text.into())),
            Err(_) => RecordText(Repr::Event(Arc::new(event))),
        }
    }

    /// The record, parsed.
    pub fn event(&self) -> Result<AuditEvent, serde_json::Error> {
        match &self.0 {
            Repr::Text(text) => serde_json::from_str(text),
            Repr::Event(event) => Ok(AuditEvent::clone(event)),
        }
    }
}

/// The same record: equal texts (a record always has the same text: one writer, fields in
/// declaration order), else equal records.
impl PartialEq for RecordText {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (Repr::Text(a), Repr::Text(b)) => Arc::ptr_eq(a, b) || a == b,
            _ => matches!((self.event(), other.event()), (Ok(a), Ok(b)) if a == b),
        }
    }
}

impl Eq for RecordText {}

impl Serialize for RecordText {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            // As serde_json's `RawValue` writes itself: the text, as it is.
            Repr::Text(text) => crate::json_ser::serialize_raw(serializer, text),
            Repr::Event(event) => event.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for RecordText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_newtype_struct(RAW_JSON_TOKEN, TextVisitor)
    }
}

struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = RecordText;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an audit record")
    }

    /// serde_json: the record's text, kept as it was read (valid JSON: serde_json scanned it).
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RecordText, A::Error> {
        crate::json_ser::deserialize_raw(map, "an audit record is read from JSON text")
            .map(|text| RecordText(Repr::Text(text.into())))
    }

    /// Content serde buffered (a stored request is an internally tagged enum), or a JSON value:
    /// parsed, then written as text once.
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<RecordText, D::Error> {
        AuditEvent::deserialize(d).map(RecordText::of)
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;
    use crate::audit::{AuditRecord, Outcome};

    fn event() -> AuditEvent {
        let mut record = AuditRecord::started(
            "req_1",
            1_700_000_000_000,
            "eu",
            "chat.completions".into(),
            "0af7651916cd43dd8448eb211c80319c",
        );
        record.tenant_id = Some("acme".into());
        record.outcome = Outcome::Ok;
        let mut event = AuditEvent::from(record);
        event.detail.tags = vec!["bu:\"search\"".into(), "naïve ✓".into()];
        event
    }

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Holder {
        seq: u64,
        record: RecordText,
    }

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    #[serde(tag = "state", rename_all = "snake_case")]
    enum Tagged {
        Finished { seq: u64, record: RecordText },
    }

    #[test]
    fn the_text_is_what_serde_json_writes_for_the_record_and_parses_back_to_it() {
        let text = RecordText::of(event());
        assert_eq!(
            crate::json_ser::to_string(&text).expect("serializes"),
            serde_json::to_string(&event()).expect("serializes")
        );
        assert_eq!(text.event().expect("parses"), event());
    }

    #[test]
    fn a_holder_is_written_and_read_as_if_it_held_the_record_itself() {
        #[derive(Serialize)]
        struct Plain {
            seq: u64,
            record: AuditEvent,
        }
        let plain = serde_json::to_string(&Plain {
            seq: 3,
            record: event(),
        })
        .expect("serializes");
        let holder = Holder {
            seq: 3,
            record: RecordText::of(event()),
        };
        // Both writers write the text in place, byte for byte what the plain struct gives.
        assert_eq!(crate::json_ser::to_string(&holder).expect("json"), plain);
        assert_eq!(serde_json::to_string(&holder).expect("json"), plain);
        // Read back from text or bytes: the record's text, unparsed, equal to the one written.
        let read: Holder = serde_json::from_str(&plain).expect("parses");
        assert_eq!(read, holder);
        let read: Holder = serde_json::from_slice(plain.as_bytes()).expect("parses");
        assert_eq!(read.record.event().expect("parses"), event());
    }

    #[test]
    fn read_through_buffered_content_or_a_value_the_record_is_parsed_and_written_again() {
        let tagged = Tagged::Finished {
            seq: 9,
            record: RecordText::of(event()),
        };
        let text = crate::json_ser::to_string(&tagged).expect("serializes");
        assert!(
            text.starts_with(r#"{"state":"finished","seq":9,"record":{"#),
            "{text}"
        );
        let read: Tagged = serde_json::from_str(&text).expect("parses");
        assert_eq!(read, tagged);
        let value = serde_json::to_value(&tagged).expect("serializes");
        assert_eq!(value["record"]["tenant_id"], "acme");
        let from_value: Tagged = serde_json::from_value(value).expect("parses");
        assert_eq!(from_value, tagged);
    }

    #[test]
    fn text_that_is_not_json_is_refused_and_a_wrong_shape_fails_when_parsed() {
        assert!(serde_json::from_str::<Holder>(r#"{"seq":1,"record":{"request_id":}"#).is_err());
        let odd: Holder =
            serde_json::from_str(r#"{"seq":1,"record":{"request_id":5}}"#).expect("kept");
        assert!(odd.record.event().is_err());
        // Inside a tagged enum the record is parsed on reading: the wrong shape fails there.
        assert!(serde_json::from_str::<Tagged>(
            r#"{"state":"finished","seq":1,"record":{"request_id":5}}"#
        )
        .is_err());
    }
}

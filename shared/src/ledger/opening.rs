//! An open request's opening record as a ledger keeps it. The record is written once, at
//! admission, and read back only if its request expires (a commit replaces it with the final
//! record): a ledger restored from storage keeps it as the JSON text it read, unparsed, and
//! writes that text back as it is. Spin re-reads a busy ledger's row on most operations (other
//! instances wrote it since); parsing every open request's record was ~5% of its CPU at c=16.

use std::borrow::Cow;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::audit::AuditEvent;
use crate::json_ser::RAW_JSON_TOKEN;

#[derive(Debug, Clone)]
#[allow(
    clippy::large_enum_variant,
    reason = "an open request held its record inline before; a box would add an allocation per admission"
)]
pub enum OpeningRecord {
    /// As admitted by this ledger.
    Event(AuditEvent),
    /// As read from storage: the record's JSON text (as serde_json scanned it: valid JSON).
    Stored(String),
}

impl OpeningRecord {
    /// The record, parsed if it was read from storage.
    pub fn event(&self) -> Result<Cow<'_, AuditEvent>, serde_json::Error> {
        match self {
            OpeningRecord::Event(event) => Ok(Cow::Borrowed(event)),
            OpeningRecord::Stored(text) => serde_json::from_str(text).map(Cow::Owned),
        }
    }

    pub fn into_event(self) -> Result<AuditEvent, serde_json::Error> {
        match self {
            OpeningRecord::Event(event) => Ok(event),
            OpeningRecord::Stored(text) => serde_json::from_str(&text),
        }
    }
}

impl From<AuditEvent> for OpeningRecord {
    fn from(event: AuditEvent) -> Self {
        OpeningRecord::Event(event)
    }
}

/// The same record, whichever form each side is in (a restored ledger equals the one stored).
impl PartialEq for OpeningRecord {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (OpeningRecord::Stored(a), OpeningRecord::Stored(b)) if a == b => true,
            _ => match (self.event(), other.event()) {
                (Ok(a), Ok(b)) => a == b,
                _ => false,
            },
        }
    }
}

impl Eq for OpeningRecord {}

impl Serialize for OpeningRecord {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            OpeningRecord::Event(event) => event.serialize(serializer),
            // As serde_json's `RawValue` writes itself: the text, as it is.
            OpeningRecord::Stored(text) => crate::json_ser::serialize_raw(serializer, text),
        }
    }
}

impl<'de> Deserialize<'de> for OpeningRecord {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_newtype_struct(RAW_JSON_TOKEN, OpeningVisitor)
    }
}

struct OpeningVisitor;

impl<'de> Visitor<'de> for OpeningVisitor {
    type Value = OpeningRecord;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an audit record")
    }

    /// serde_json: the record's text, kept.
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<OpeningRecord, A::Error> {
        crate::json_ser::deserialize_raw(map, "an opening record is read from JSON text")
            .map(OpeningRecord::Stored)
    }

    /// Content serde buffered (a stored request is an internally tagged enum): parsed.
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<OpeningRecord, D::Error> {
        AuditEvent::deserialize(d).map(OpeningRecord::Event)
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
        record.outcome = Outcome::Partial;
        let mut event = AuditEvent::from(record);
        event.detail.tags = vec!["bu:\"search\"".into()];
        event
    }

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Holder {
        record: OpeningRecord,
        expires_ms: u64,
    }

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    #[serde(tag = "state", rename_all = "snake_case")]
    enum Tagged {
        Open { open: Holder },
    }

    #[test]
    fn read_from_text_the_record_is_kept_as_text_and_written_back_unchanged() {
        let written = Holder {
            record: event().into(),
            expires_ms: 7,
        };
        let text = crate::json_ser::to_string(&written).expect("serializes");
        assert_eq!(text, serde_json::to_string(&written).expect("serializes"));
        let read: Holder = serde_json::from_str(&text).expect("parses");
        let OpeningRecord::Stored(kept) = &read.record else {
            panic!("kept as text: {read:?}");
        };
        assert_eq!(*kept, serde_json::to_string(&event()).expect("json"));
        assert_eq!(read, written);
        assert_eq!(read.record.event().expect("parses").into_owned(), event());
        // Written back byte for byte, by both writers; read from bytes too.
        assert_eq!(crate::json_ser::to_string(&read).expect("serializes"), text);
        assert_eq!(serde_json::to_string(&read).expect("serializes"), text);
        let from_bytes: Holder = serde_json::from_slice(text.as_bytes()).expect("parses");
        assert!(matches!(from_bytes.record, OpeningRecord::Stored(_)));
    }

    #[test]
    fn read_through_a_json_value_or_buffered_content_the_record_is_parsed_or_kept() {
        let written = Holder {
            record: event().into(),
            expires_ms: 7,
        };
        let value = serde_json::to_value(&written).expect("serializes");
        assert_eq!(value["record"]["tenant_id"], "acme");
        let read: Holder = serde_json::from_value(value).expect("parses");
        assert_eq!(read, written);
        // Inside an internally tagged enum serde buffers the fields first: parsed then.
        let tagged = Tagged::Open { open: written };
        let text = crate::json_ser::to_string(&tagged).expect("serializes");
        let Tagged::Open { open } = serde_json::from_str::<Tagged>(&text).expect("parses");
        assert!(matches!(open.record, OpeningRecord::Event(ref e) if *e == event()));
    }

    #[test]
    fn a_stored_record_that_is_not_an_audit_record_fails_only_when_parsed() {
        let read: Holder =
            serde_json::from_str(r#"{"record":{"request_id":5},"expires_ms":1}"#).expect("kept");
        assert!(read.record.event().is_err());
        assert!(read.record.into_event().is_err());
        assert!(
            serde_json::from_str::<Holder>(r#"{"record":{"request_id":,"expires_ms":1}"#).is_err()
        );
    }
}

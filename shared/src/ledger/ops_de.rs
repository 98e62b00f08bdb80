//! `Deserialize` for [`LedgerOp`]. serde's internally tagged enums read the whole object into a
//! buffer (`Content`) to find the tag, then read the variant again from the buffer. Every
//! operation ASC writes has its tag first (serde writes it first), so this reads the tag and
//! hands the rest of the object straight to the variant: each value is read once. An object whose
//! tag comes later (another writer) is read into a `serde_json` map, written again tag first, and
//! read as above.

use std::fmt;

use serde::de::value::MapAccessDeserializer;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use super::{AdmitAsk, CommitAsk, LedgerOp, OpenAsk, RecordAsk, UsageAsk};
use crate::alerts::AlertEvent;
use crate::ledger::insights::{AnalyticsAsk, Delivery};
use crate::ledger::lease::{LeaseAsk, LeaseClose};

const TAG: &str = "op";

/// The `op` tag's values (`rename_all = "snake_case"` on [`LedgerOp`]).
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Variant {
    Admit,
    Lease,
    CloseLease,
    Commit,
    Record,
    Open,
    Usage,
    Analytics,
    Alerts,
    Raise,
    ClaimAlerts,
    Delivered,
}

// The struct variants' fields.
#[derive(Deserialize)]
struct CloseLeaseFields {
    now_ms: u64,
    close: LeaseClose,
}

#[derive(Deserialize)]
struct AlertsFields {
    limit: usize,
}

#[derive(Deserialize)]
struct RaiseFields {
    now_ms: u64,
    events: Vec<AlertEvent>,
}

#[derive(Deserialize)]
struct ClaimAlertsFields {
    now_ms: u64,
}

#[derive(Deserialize)]
struct DeliveredFields {
    now_ms: u64,
    results: Vec<(String, Delivery)>,
}

/// Reads variant `v` from the rest of the object (`fields`).
fn variant<'de, D: Deserializer<'de>>(v: Variant, fields: D) -> Result<LedgerOp, D::Error> {
    Ok(match v {
        Variant::Admit => LedgerOp::Admit(AdmitAsk::deserialize(fields)?),
        Variant::Lease => LedgerOp::Lease(LeaseAsk::deserialize(fields)?),
        Variant::CloseLease => {
            let f = CloseLeaseFields::deserialize(fields)?;
            LedgerOp::CloseLease {
                now_ms: f.now_ms,
                close: f.close,
            }
        }
        Variant::Commit => LedgerOp::Commit(CommitAsk::deserialize(fields)?),
        Variant::Record => LedgerOp::Record(RecordAsk::deserialize(fields)?),
        Variant::Open => LedgerOp::Open(OpenAsk::deserialize(fields)?),
        Variant::Usage => LedgerOp::Usage(UsageAsk::deserialize(fields)?),
        Variant::Analytics => LedgerOp::Analytics(AnalyticsAsk::deserialize(fields)?),
        Variant::Alerts => LedgerOp::Alerts {
            limit: AlertsFields::deserialize(fields)?.limit,
        },
        Variant::Raise => {
            let f = RaiseFields::deserialize(fields)?;
            LedgerOp::Raise {
                now_ms: f.now_ms,
                events: f.events,
            }
        }
        Variant::ClaimAlerts => LedgerOp::ClaimAlerts {
            now_ms: ClaimAlertsFields::deserialize(fields)?.now_ms,
        },
        Variant::Delivered => {
            let f = DeliveredFields::deserialize(fields)?;
            LedgerOp::Delivered {
                now_ms: f.now_ms,
                results: f.results,
            }
        }
    })
}

/// An object's first key: the tag, or another (kept, for the buffered path).
enum FirstKey {
    Tag,
    Other(String),
}

impl<'de> Deserialize<'de> for FirstKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = FirstKey;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<FirstKey, E> {
                Ok(if v == TAG {
                    FirstKey::Tag
                } else {
                    FirstKey::Other(v.to_string())
                })
            }
        }
        deserializer.deserialize_identifier(KeyVisitor)
    }
}

struct OpVisitor;

impl<'de> Visitor<'de> for OpVisitor {
    type Value = LedgerOp;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a ledger operation (an object with an `op` field)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<LedgerOp, A::Error> {
        match map.next_key::<FirstKey>()? {
            None => Err(de::Error::missing_field(TAG)),
            Some(FirstKey::Tag) => {
                let v: Variant = map.next_value()?;
                variant(v, MapAccessDeserializer::new(map))
            }
            Some(FirstKey::Other(first)) => {
                let mut fields = serde_json::Map::new();
                fields.insert(first, map.next_value()?);
                while let Some((k, value)) = map.next_entry::<String, serde_json::Value>()? {
                    fields.insert(k, value);
                }
                let tag = fields
                    .remove(TAG)
                    .ok_or_else(|| de::Error::missing_field(TAG))?;
                // Written again with the tag first and read by the path above: one reader of
                // each variant in the build, not a second one over `Value` (~30 KB of wasm).
                let rest = crate::json_write::map_to_vec(&fields);
                let mut text = format!(r#"{{"{TAG}":"#).into_bytes();
                crate::json_write::write_value(&mut text, &tag);
                if rest.len() > 2 {
                    text.push(b',');
                }
                text.extend_from_slice(rest.get(1..).unwrap_or_default());
                let text = String::from_utf8(text).map_err(de::Error::custom)?;
                serde_json::from_str(&text).map_err(de::Error::custom)
            }
        }
    }
}

impl<'de> Deserialize<'de> for LedgerOp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(OpVisitor)
    }
}

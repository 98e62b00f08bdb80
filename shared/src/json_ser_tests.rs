use std::collections::BTreeMap;

use proptest::prelude::*;
use serde::{Serialize, Serializer};
use serde_json::Value;

use super::*;

/// Our text and serde_json's, for the same value: both `Ok` and equal, or both errors.
fn same<T: Serialize + ?Sized>(value: &T) {
    match (to_vec(value), serde_json::to_vec(value)) {
        (Ok(ours), Ok(theirs)) => assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&theirs)
        ),
        (Err(_), Err(_)) => {}
        (ours, theirs) => panic!("ours {ours:?}, serde_json {theirs:?}"),
    }
}

struct Bytes(Vec<u8>);
impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

#[derive(Serialize)]
struct Unit;

#[derive(Serialize, PartialEq, Eq, PartialOrd, Ord)]
struct Newtype(String);

#[derive(Serialize)]
struct Pair(u8, Option<i64>);

#[derive(Serialize)]
enum Every {
    Unit,
    Newtype(String),
    Tuple(u8, char),
    Struct { a: i128, b: Vec<Every> },
}

#[derive(Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Tagged {
    Admit { now_ms: u64, note: Option<String> },
    Plain(Inner),
    Nothing,
}

#[derive(Serialize)]
struct Inner {
    id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    skipped: Option<u32>,
}

#[derive(Serialize)]
struct Flat {
    name: String,
    #[serde(flatten)]
    inner: Inner,
    #[serde(flatten)]
    extra: BTreeMap<String, Value>,
}

#[test]
fn every_form_of_serdes_data_model_is_written_as_serde_json_writes_it() {
    same(&Unit);
    same(&());
    same(&Newtype("n\"e\\w\u{1}".into()));
    same(&Pair(7, None));
    same(&Pair(0, Some(-9_223_372_036_854_775_808)));
    same(&(1u8, "two", 3.5f64, [true, false]));
    same(&Every::Unit);
    same(&Every::Newtype("x".into()));
    same(&Every::Tuple(255, '\n'));
    same(&Every::Struct {
        a: i128::MIN,
        b: vec![
            Every::Unit,
            Every::Tuple(1, 'é'),
            Every::Struct { a: 0, b: vec![] },
        ],
    });
    same(&Tagged::Admit {
        now_ms: u64::MAX,
        note: Some("ok".into()),
    });
    same(&Tagged::Plain(Inner {
        id: "a".into(),
        skipped: None,
    }));
    same(&Tagged::Nothing);
    same(&Flat {
        name: "f".into(),
        inner: Inner {
            id: "i".into(),
            skipped: Some(3),
        },
        extra: [("z".to_string(), serde_json::json!({"k": [1, 2.25, null]}))].into(),
    });
    same(&Bytes(vec![]));
    same(&Bytes(vec![0, 1, 255]));
    same(&u128::MAX);
    same(&'\u{7f}');
    same(&Vec::<u8>::new());
    same(&BTreeMap::<String, u8>::new());
    // Floats: ryu's shortest text, and null where JSON has no number.
    for f in [0.0, -0.0, 1e300, 1.5e-7, f64::NAN, f64::INFINITY, 0.1 + 0.2] {
        same(&f);
    }
    for f in [0.1f32, f32::NEG_INFINITY, 3.0e38] {
        same(&f);
    }
}

#[test]
fn map_keys_are_strings_or_quoted_as_serde_json_quotes_them() {
    same(&BTreeMap::from([(-3i64, "a"), (7, "b")]));
    same(&BTreeMap::from([(u128::MAX, 1)]));
    same(&BTreeMap::from([(true, 1), (false, 2)]));
    same(&BTreeMap::from([('k', 1)]));
    same(&BTreeMap::from([(Newtype("nt".into()), 1)]));
    same(&BTreeMap::from([(Some("some"), 1)]));
    #[derive(Serialize, PartialEq, Eq, PartialOrd, Ord)]
    enum Key {
        Variant,
    }
    same(&BTreeMap::from([(Key::Variant, 1)]));
    // What serde_json refuses, refused here too.
    same(&BTreeMap::from([((1, 2), 1)]));
    same(&BTreeMap::from([(None::<&str>, 1)]));
    same(&BTreeMap::from([(vec![1], 1)]));
    for k in [1.5, 1e21, f64::NAN] {
        struct AsMap(f64);
        impl Serialize for AsMap {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeMap;
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry(&self.0, &0)?;
                m.end()
            }
        }
        same(&AsMap(k));
    }
}

#[test]
fn the_ledgers_own_messages_are_written_as_serde_json_writes_them() {
    use crate::audit::{AuditEvent, GuardrailAction};
    use crate::ledger::{CommitAsk, LedgerOp};
    let mut event: AuditEvent = crate::audit::AuditRecord::started(
        "req_0123456789abcdef01234567",
        1_767_225_600_123,
        "eu",
        "chat.completions".into(),
        "4bf92f3577b34da6a3ce929d0e0e4736",
    )
    .into();
    event.record.tenant_id = Some("acme \"prod\"".into());
    event.record.key_id = Some("k_1".into());
    event.record.error_code = Some("line\nbreak\ttab\u{0}".into());
    event.detail.prompt_sha256 = Some("ab".repeat(32));
    event
        .detail
        .guardrails
        .push(crate::audit::GuardrailDecision {
            detector: "email".into(),
            action: GuardrailAction::Redact,
            count: 2,
            side: Some("request".into()),
            pattern: None,
            mode: None,
        });
    event.detail.tags = vec!["team:α".into()];
    same(&event);
    same(&LedgerOp::Commit(CommitAsk {
        now_ms: 5,
        record: event,
        actual_micros: 9_844,
        actual_tokens: 21,
        lease: Some("l_1".into()),
    }));
}

/// JSON values of every shape, with strings that mix plain runs, escapes and non-ASCII.
fn value() -> impl Strategy<Value = Value> {
    let text = "[a-z \"\\\\\u{0}-\u{1f}é€😀]{0,40}";
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        text.prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(text, inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn any_value_is_written_as_serde_json_writes_it(v in value()) {
        prop_assert_eq!(to_vec(&v).expect("serializes"), serde_json::to_vec(&v).expect("serializes"));
    }

    #[test]
    fn any_string_map_is_written_as_serde_json_writes_it(
        m in prop::collection::btree_map(".{0,24}", (any::<i32>(), ".{0,24}", any::<Option<bool>>()), 0..6)
    ) {
        prop_assert_eq!(to_string(&m).expect("serializes"), serde_json::to_string(&m).expect("serializes"));
    }
}

#[test]
fn raw_json_text_is_written_as_it_is_as_serde_json_writes_it() {
    #[derive(Serialize)]
    struct WithRaw {
        before: u8,
        raw: Box<serde_json::value::RawValue>,
        nested: Vec<Box<serde_json::value::RawValue>>,
    }
    let raw = |t: &str| serde_json::value::RawValue::from_string(t.to_string()).expect("json");
    same(&WithRaw {
        before: 1,
        raw: raw(r#"{"b":2,"a":[1,"x\"y"]}"#),
        nested: vec![raw("null"), raw("\"s\"")],
    });
}

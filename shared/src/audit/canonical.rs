//! Canonical JSON (RFC 8785, JCS) and the SHA-256 hashes taken over it. Every hash and every
//! signature in the ledger is over these bytes, so the same value always hashes the same,
//! whatever the field order or whitespace of the JSON it was read from.
//!
//! JCS writes every number as an IEEE-754 double (I-JSON): integers above 2^53 would lose
//! precision. The ledger's integers (sequences, milliseconds, tokens, micro-USD) stay far below.

use std::fmt;

use serde::Serialize;

/// The hash a chain starts from: the `prev_hash` of record 1 and the `prev_digest_sha256` of
/// digest 1.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// A value that has no canonical JSON form (a non-finite float, a map with non-string keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanonicalError(pub String);

impl fmt::Display for CanonicalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no canonical JSON form: {}", self.0)
    }
}

impl std::error::Error for CanonicalError {}

/// The RFC 8785 canonical JSON bytes of `value`.
pub fn canonical_json<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CanonicalError> {
    serde_jcs::to_vec(value).map_err(|e| CanonicalError(e.to_string()))
}

/// The canonical JSON of a JSON value, faster for the values audit records are made of. Where
/// every object key is ASCII and every number an integer within 2^53, RFC 8785's output is what
/// plain serialization writes (keys in byte order, which is UTF-16 order for ASCII; integers as
/// written; the same string escapes): it is written directly (`json_write`), without the JCS
/// formatter's per-object buffering and sorting. Anything else goes through `serde_jcs`. The
/// property test below holds the two to the same bytes.
pub fn canonical_value(value: &serde_json::Value) -> Result<Vec<u8>, CanonicalError> {
    if plain(value) {
        Ok(crate::json_write::to_vec(value))
    } else {
        canonical_json(value)
    }
}

/// Whether `value` has the same bytes in plain and canonical JSON (see [`canonical_value`]).
fn plain(value: &serde_json::Value) -> bool {
    use serde_json::Value;
    const EXACT: u64 = 1 << 53;
    match value {
        Value::Null | Value::Bool(_) | Value::String(_) => true,
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => u <= EXACT,
            (None, Some(i)) => i.unsigned_abs() <= EXACT,
            _ => false,
        },
        Value::Array(items) => items.iter().all(plain),
        Value::Object(map) => map.iter().all(|(k, v)| k.is_ascii() && plain(v)),
    }
}

/// SHA-256 of the canonical JSON of `value`, as lowercase hex.
pub fn canonical_sha256<T: Serialize + ?Sized>(value: &T) -> Result<String, CanonicalError> {
    Ok(sha256_hex(&canonical_json(value)?))
}

/// SHA-256 of `bytes` as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    super::codec::sha256_hex(&super::codec::SoftwareCodec, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        use serde_json::{json, Value};
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<u64>().prop_map(|n| json!(n)),
            (-1e9f64..1e9).prop_map(|f| json!(f)),
            // Any text: control characters, quotes, backslashes, non-ASCII, astral planes.
            "\\PC*|[\\x00-\\x1f\"\\\\/\u{7f}\u{2028}\u{20ac}\u{1f600}a-z]{0,12}"
                .prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::btree_map(
                    "[a-z_]{1,8}|[\\x00-\\x7f]{0,4}|[\u{e9}\u{20ac}\u{1f600}a]{1,3}",
                    inner,
                    0..5
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// The fast path writes exactly what the JCS serializer writes, for any value.
        #[test]
        fn canonical_value_is_jcs(value in json_value()) {
            prop_assert_eq!(
                canonical_value(&value).expect("fast"),
                canonical_json(&value).expect("jcs")
            );
        }
    }

    #[test]
    fn rfc8785_sorts_keys_by_utf16_code_units_and_strips_whitespace() {
        // RFC 8785 section 3.2.3: the sorting example. Keys compare as UTF-16 code units, so
        // U+20AC (0x20AC) sorts before U+1F600 (surrogates 0xD83D 0xDE00), unlike UTF-8 order.
        let input: serde_json::Value = serde_json::from_str(
            r#"{
              "\u20ac": "Euro Sign",
              "\r": "Carriage Return",
              "\ufb33": "Hebrew Letter Dalet With Dagesh",
              "1": "One",
              "\ud83d\ude00": "Emoji: Grinning Face",
              "\u0080": "Control",
              "\u00f6": "Latin Small Letter O With Diaeresis"
            }"#,
        )
        .expect("valid JSON");
        let expected = concat!(
            "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u{80}\":\"Control\",",
            "\"\u{f6}\":\"Latin Small Letter O With Diaeresis\",\"\u{20ac}\":\"Euro Sign\",",
            "\"\u{1f600}\":\"Emoji: Grinning Face\",\"\u{fb33}\":\"Hebrew Letter Dalet With Dagesh\"}"
        );
        let text = String::from_utf8(canonical_json(&input).expect("canonical")).expect("utf-8");
        assert_eq!(text, expected);
    }

    #[test]
    fn rfc8785_number_and_string_serialization() {
        // RFC 8785 section 3.2.2 example (the numbers and literals part).
        let input: serde_json::Value = serde_json::from_str(
            r#"{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
                "literals": [null, true, false]}"#,
        )
        .expect("valid JSON");
        assert_eq!(
            String::from_utf8(canonical_json(&input).expect("canonical")).expect("utf-8"),
            r#"{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27]}"#
        );
    }

    #[test]
    fn sha256_matches_fips_example() {
        // FIPS 180-2, appendix B.1: SHA-256("abc").
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(GENESIS_HASH.len(), 64);
    }
}

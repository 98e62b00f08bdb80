//! Canonical JSON (RFC 8785, JCS) and the SHA-256 hashes taken over it. Every hash and every
//! signature in the ledger is over these bytes, so the same value always hashes the same,
//! whatever the field order or whitespace of the JSON it was read from.
//!
//! JCS writes every number as an IEEE-754 double (I-JSON): integers above 2^53 would lose
//! precision. The ledger's integers (sequences, milliseconds, tokens, micro-USD) stay far below.

use std::fmt;

use serde::Serialize;
use sha2::{Digest as _, Sha256};

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

/// SHA-256 of the canonical JSON of `value`, as lowercase hex.
pub fn canonical_sha256<T: Serialize + ?Sized>(value: &T) -> Result<String, CanonicalError> {
    Ok(sha256_hex(&canonical_json(value)?))
}

/// SHA-256 of `bytes` as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

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

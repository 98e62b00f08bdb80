//! Compact JSON text of a `serde_json::Value`, byte for byte what `serde_json::to_vec` writes,
//! with strings escaped eight bytes at a time. serde_json looks each byte of a string up in its
//! escape table, which in wasm is the largest cost of re-encoding a request whose prompt is
//! long (9.6% of the Worker's time with a 32 KB prompt); a prompt is mostly long runs of bytes
//! that need no escape, and a word-wide test skips them.

use serde_json::{Map, Value};

/// `serde_json::to_vec(value)`, as bytes (which cannot fail for a `Value`).
pub fn to_vec(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    write_value(&mut out, value);
    out
}

/// `serde_json::to_vec(map)`.
pub fn map_to_vec(map: &Map<String, Value>) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    write_map(&mut out, map);
    out
}

/// Appends `serde_json::to_vec(value)` to `out` (what `value.to_string()` writes, without the
/// `fmt` machinery).
pub(crate) fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        // Numbers as serde_json writes them (itoa, ryu): not worth a second implementation.
        Value::Number(n) => {
            let _ = serde_json::to_writer(&mut *out, n);
        }
        Value::String(s) => write_str(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item);
            }
            out.push(b']');
        }
        Value::Object(map) => write_map(out, map),
    }
}

fn write_map(out: &mut Vec<u8>, map: &Map<String, Value>) {
    out.push(b'{');
    for (i, (key, value)) in map.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, key);
        out.push(b':');
        write_value(out, value);
    }
    out.push(b'}');
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Whether any byte of `word` is below 0x20, a `"` or a `\`: the bytes JSON escapes. (Each
/// test is exact as a whole, though not about which byte matched.) Inlined: at opt-level "z"
/// it was a call per word.
#[inline(always)]
fn needs_escape(word: u64) -> bool {
    let below_space = word.wrapping_sub(ONES * 0x20) & !word;
    let quote = word ^ (ONES * u64::from(b'"'));
    let backslash = word ^ (ONES * u64::from(b'\\'));
    let zero_in = |v: u64| v.wrapping_sub(ONES) & !v;
    (below_space | zero_in(quote) | zero_in(backslash)) & HIGHS != 0
}

/// Whether any byte of `bytes` needs an escape. The tail shorter than a word is tested padded
/// with spaces (which need none), so short strings take no byte-by-byte loop.
fn any_escape(bytes: &[u8]) -> bool {
    let mut words = bytes.chunks_exact(8);
    for chunk in &mut words {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        if needs_escape(u64::from_le_bytes(word)) {
            return true;
        }
    }
    let tail = words.remainder();
    let mut word = [b' '; 8];
    if let Some(head) = word.get_mut(..tail.len()) {
        head.copy_from_slice(tail);
    }
    needs_escape(u64::from_le_bytes(word))
}

/// A JSON string as serde_json writes it: `"`, `\` and control characters escaped (`\b`, `\t`,
/// `\n`, `\f`, `\r`, else `\u00xx`), everything else, UTF-8 included, as it is.
pub(crate) fn write_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    // Most strings (keys, ids, models, hashes) need no escape: one test of every byte, one copy.
    if !any_escape(bytes) {
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    let mut start = 0; // first byte not yet copied
    let mut at = 0;
    while at < bytes.len() {
        if let Some(chunk) = bytes.get(at..at + 8) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            if !needs_escape(u64::from_le_bytes(word)) {
                at += 8;
                continue;
            }
        }
        let end = (at + 8).min(bytes.len());
        for (i, &b) in bytes.iter().enumerate().take(end).skip(at) {
            let escaped: &[u8] = match b {
                b'"' => b"\\\"",
                b'\\' => b"\\\\",
                b'\n' => b"\\n",
                b'\r' => b"\\r",
                b'\t' => b"\\t",
                0x08 => b"\\b",
                0x0c => b"\\f",
                0..=0x1f => {
                    out.extend_from_slice(bytes.get(start..i).unwrap_or_default());
                    const HEX: &[u8; 16] = b"0123456789abcdef";
                    let high = HEX.get(usize::from(b >> 4)).copied().unwrap_or(b'0');
                    let low = HEX.get(usize::from(b & 0xf)).copied().unwrap_or(b'0');
                    out.extend_from_slice(&[b'\\', b'u', b'0', b'0', high, low]);
                    start = i + 1;
                    continue;
                }
                _ => continue,
            };
            out.extend_from_slice(bytes.get(start..i).unwrap_or_default());
            out.extend_from_slice(escaped);
            start = i + 1;
        }
        at = end;
    }
    out.extend_from_slice(bytes.get(start..).unwrap_or_default());
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{json, Value};

    use super::*;

    fn same(v: &Value) {
        assert_eq!(
            String::from_utf8(to_vec(v)).expect("utf-8"),
            serde_json::to_string(v).expect("serializes")
        );
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        // Every byte JSON escapes, each at every position of an 8-byte word, and runs longer
        // than a word on both sides.
        let specials = [
            '"', '\\', '\n', '\r', '\t', '\u{8}', '\u{c}', '\u{0}', '\u{1f}', '\u{1}',
        ];
        for c in specials {
            for pad in 0..17 {
                let s = format!("{}{c}{}", "a".repeat(pad), "é".repeat(pad));
                same(&Value::String(s));
            }
        }
        same(&json!("\u{7f} / é 😀 \u{2028}")); // neither DEL, '/' nor non-ASCII is escaped
        same(&json!(""));
        same(&json!("exactly8"));
    }

    #[test]
    fn values_are_written_as_serde_json_writes_them() {
        same(&json!({
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "hi \"there\"\n"}],
            "temperature": 0.2, "max_tokens": 64, "n": -1, "big": 18_446_744_073_709_551_615u64,
            "tiny": 1e-300, "stop": null, "stream": false, "logprobs": true, "empty": {}, "list": [],
        }));
        let map = json!({"a": [1, "b"]});
        assert_eq!(
            map_to_vec(map.as_object().expect("object")),
            serde_json::to_vec(&map).expect("serializes")
        );
    }

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<u64>().prop_map(|n| json!(n)),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| json!(f)),
            any::<String>().prop_map(Value::String),
            "[\\x00-\\x7f\"\\\\]{0,40}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::vec((any::<String>(), inner), 0..8)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn any_value_is_written_byte_for_byte_as_serde_json_writes_it(v in value()) {
            prop_assert_eq!(to_vec(&v), serde_json::to_vec(&v).expect("serializes"));
        }
    }
}

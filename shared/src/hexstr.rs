//! Lowercase hex of ids and digests. `hex::encode` collects one `char` at a time into a growing
//! `String`, and `hex::encode_to_slice` walks generic iterators (~40 instructions a byte at
//! opt-level "z"); a request makes about ten of these (ids, content hashes, the key's HMAC), so
//! they are written with a table into a buffer of the exact size. Held to `hex` by a test.

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// `bytes` as lowercase hex.
pub fn encode(bytes: &[u8]) -> String {
    prefixed("", bytes)
}

/// `prefix` followed by `bytes` as lowercase hex, in one allocation.
pub fn prefixed(prefix: &str, bytes: &[u8]) -> String {
    let mut out = vec![0u8; prefix.len() + bytes.len() * 2];
    let (head, digits) = out.split_at_mut(prefix.len());
    head.copy_from_slice(prefix.as_bytes());
    // Into a sized buffer, not pushed: at opt-level "z" each `push` stays a call (~55
    // instructions a byte pushed, ~10 written in place).
    for (pair, b) in digits.chunks_exact_mut(2).zip(bytes) {
        if let [high, low] = pair {
            *high = digit(b >> 4);
            *low = digit(b & 0x0f);
        }
    }
    // A str prefix and ASCII digits: always UTF-8; the check is a pass over the bytes.
    String::from_utf8(out).unwrap_or_default()
}

/// The digit for a nibble (below 16, so `get` never misses and its check compiles away).
fn digit(nibble: u8) -> u8 {
    DIGITS.get(usize::from(nibble)).copied().unwrap_or(b'0')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_hex_crate() {
        for len in [0usize, 1, 8, 12, 16, 32] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 5) as u8).collect();
            assert_eq!(encode(&bytes), hex::encode(&bytes));
        }
        assert_eq!(encode(&[0x00, 0xab, 0xff]), "00abff");
        assert_eq!(prefixed("req_", &[0xde, 0xad]), "req_dead");
    }
}

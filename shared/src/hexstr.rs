//! Lowercase hex of ids and digests. `hex::encode` collects one `char` at a time into a growing
//! `String`; a request makes about ten of these (ids, content hashes, the key's HMAC), so they
//! are written into a buffer of the exact size instead.

/// `bytes` as lowercase hex.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = vec![0u8; bytes.len() * 2];
    // Cannot fail: the buffer is exactly twice as long as the input.
    if hex::encode_to_slice(bytes, &mut out).is_err() {
        return hex::encode(bytes);
    }
    String::from_utf8(out).unwrap_or_default()
}

/// `prefix` followed by `bytes` as lowercase hex, in one allocation.
pub fn prefixed(prefix: &str, bytes: &[u8]) -> String {
    let mut out = String::with_capacity(prefix.len() + bytes.len() * 2);
    out.push_str(prefix);
    out.push_str(&encode(bytes));
    out
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

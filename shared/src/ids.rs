//! Newtype ids, so a tenant id is never passed where a key id belongs.

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// A tenant (a customer organisation or team) as named in its config.
    TenantId
);
id_type!(
    /// The public id of an API key; safe to log and audit, unlike the key.
    KeyId
);
id_type!(
    /// The id of one request through the gateway, sent back as `x-request-id`.
    RequestId
);

/// Whether `s` is usable as an id: 1 to 64 of `[a-z0-9_-]`, starting with a letter or digit.
/// Ids become KV key names and object-store paths, so they are kept plain.
pub fn is_valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        && s.as_bytes().first().is_some_and(u8::is_ascii_alphanumeric)
}

/// The base-62 digit of `n % 62`, in ASCII order: `0-9`, then `A-Z`, then `a-z`. (API keys and
/// Mistral tool-call ids are written in it.)
pub(crate) fn base62_digit(n: u64) -> char {
    // Below 62, so the casts and sums cannot overflow.
    let d = (n % 62) as u8;
    char::from(match d {
        0..=9 => b'0' + d,
        10..=35 => b'A' + (d - 10),
        _ => b'a' + (d - 36),
    })
}

#[cfg(test)]
mod tests {
    use super::{base62_digit, is_valid_id};

    #[test]
    fn base62_digits_are_ascii_ordered() {
        let digits: String = (0..62).map(base62_digit).collect();
        assert_eq!(
            digits,
            "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
        );
        assert_eq!(base62_digit(62), '0');
        assert_eq!(base62_digit(u64::MAX), base62_digit(u64::MAX % 62));
    }

    #[test]
    fn ids_are_plain() {
        assert!(is_valid_id("acme"));
        assert!(is_valid_id("acme-eu_2"));
        assert!(!is_valid_id(""));
        assert!(!is_valid_id("-acme"));
        assert!(!is_valid_id("Acme"));
        assert!(!is_valid_id("acme/../x"));
        assert!(!is_valid_id(&"a".repeat(65)));
    }
}

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
        && s.as_bytes()[0].is_ascii_alphanumeric()
}

#[cfg(test)]
mod tests {
    use super::is_valid_id;

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

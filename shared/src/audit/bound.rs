//! Bounds on the strings an audit record holds. Several come from the client (the model name it
//! asked for) or from an upstream, and the trail keeps every record for years: one client must
//! not be able to inflate the trail, its exports or the ledger's storage with 10,000-character
//! values. A value over [`MAX_FIELD_BYTES`] keeps its start, then a marker with its full length
//! and the SHA-256 of the full value, so an auditor can still match it against a known string.

use sha2::{Digest as _, Sha256};

use super::detail::AuditEvent;

/// The most bytes one string field of a record may hold, marker included.
pub const MAX_FIELD_BYTES: usize = 256;

/// `...[truncated <len> bytes sha256:<64 hex>]`: at most this many bytes for any `usize` length.
const MARKER_MAX: usize = "...[truncated  bytes sha256:]".len() + 20 + 64;
const _: () = assert!(MARKER_MAX < MAX_FIELD_BYTES);

/// `value` as stored: unchanged when within [`MAX_FIELD_BYTES`], otherwise its longest prefix
/// that ends on a character boundary and leaves room for the marker, then the marker.
pub fn bounded(value: &str) -> Option<String> {
    if value.len() <= MAX_FIELD_BYTES {
        return None;
    }
    let mut keep = MAX_FIELD_BYTES - MARKER_MAX;
    while !value.is_char_boundary(keep) {
        keep -= 1;
    }
    let hash = crate::hexstr::encode(&Sha256::digest(value.as_bytes()));
    Some(format!(
        "{}...[truncated {} bytes sha256:{hash}]",
        value.get(..keep).unwrap_or(""),
        value.len()
    ))
}

fn bound(field: &mut String) {
    if let Some(b) = bounded(field) {
        *field = b;
    }
}

fn bound_opt(field: &mut Option<String>) {
    if let Some(f) = field {
        bound(f);
    }
}

impl AuditEvent {
    /// Bounds every string of the record (the ledger does this to every record it stores).
    /// Recorded content (`content`, only when a tenant's policy asks for it) is the one exception:
    /// its size is the tenant's request limit, by the tenant's choice.
    pub fn bound_fields(&mut self) {
        let r = &mut self.record;
        for f in [
            &mut r.request_id,
            &mut r.region,
            &mut r.operation,
            &mut r.trace_id,
        ] {
            bound(f);
        }
        for f in [
            &mut r.tenant_id,
            &mut r.key_id,
            &mut r.requested_model,
            &mut r.served_model,
            &mut r.provider,
            &mut r.endpoint_host,
            &mut r.error_code,
            &mut r.policy_version,
        ] {
            bound_opt(f);
        }
        let d = &mut self.detail;
        for f in [
            &mut d.actor,
            &mut d.endpoint_region,
            &mut d.route,
            &mut d.price_table_version,
            &mut d.prompt_sha256,
            &mut d.response_sha256,
        ] {
            bound_opt(f);
        }
        for a in &mut d.attempts {
            for f in [&mut a.provider, &mut a.endpoint_host, &mut a.model] {
                bound(f);
            }
            bound_opt(&mut a.error_code);
        }
        for g in &mut d.guardrails {
            bound(&mut g.detector);
            bound_opt(&mut g.side);
            bound_opt(&mut g.pattern);
        }
        if let Some(refusals) = &mut d.refusals {
            bound_opt(&mut refusals.client);
            bound_opt(&mut refusals.key_hash_prefix);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_values_are_kept_as_they_are() {
        assert_eq!(bounded(""), None);
        assert_eq!(bounded(&"a".repeat(MAX_FIELD_BYTES)), None);
    }

    #[test]
    fn long_values_keep_their_start_length_and_hash() {
        let long = "m".repeat(10_000);
        let b = bounded(&long).expect("bounded");
        assert!(b.len() <= MAX_FIELD_BYTES, "{} bytes", b.len());
        assert!(b.starts_with("mmmm"));
        // SHA-256 of 10,000 'm's, computed independently (`printf 'm%.0s' {1..10000} | sha256sum`).
        assert!(
            b.ends_with(
                "...[truncated 10000 bytes sha256:b745e6601f5dde018477115358b35886d0041fedec4f76c0c3cea3f92ed1d430]"
            ),
            "{b}"
        );
    }

    #[test]
    fn cuts_on_a_character_boundary() {
        // Four-byte characters: no prefix length lands on a boundary by chance.
        for pad in 0..4 {
            let long = format!("{}{}", "x".repeat(pad), "\u{1F600}".repeat(200));
            let b = bounded(&long).expect("bounded");
            assert!(b.len() <= MAX_FIELD_BYTES);
            assert!(b.contains("...[truncated"));
        }
    }
}

//! API keys: their format, their checksum, and their hash at rest.
//!
//! A key is `asc_` + 32 base62 characters of randomness + 6 base62 characters of CRC-32 over the
//! first 36, like GitHub's tokens: secret scanners recognise the prefix, and a mistyped key fails
//! the checksum without a KV read. At rest only `HMAC-SHA256(deployment secret, key)` is stored, as
//! the KV name `key:<hex>` and inside the record, so a KV dump does not reveal usable keys and
//! cannot be brute-forced offline without the deployment secret.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::error::{ErrorKind, GatewayError};
use crate::ids::{base62_digit, KeyId, TenantId};
use crate::secret::Secret;

pub const KEY_PREFIX: &str = "asc_";
const BODY_LEN: usize = 32;
const CHECKSUM_LEN: usize = 6;
pub const KEY_LEN: usize = KEY_PREFIX.len() + BODY_LEN + CHECKSUM_LEN;

/// A key that passed the format and checksum checks. It is not yet known to exist.
pub struct ApiKey<'a>(&'a str);

impl<'a> ApiKey<'a> {
    /// Checks prefix, length, alphabet and checksum. The error never echoes the key.
    pub fn parse(raw: &'a str) -> Result<Self, GatewayError> {
        let invalid = |why: &str| {
            GatewayError::new(
                ErrorKind::InvalidApiKey,
                format!("Incorrect API key provided: {why}. ASC keys look like asc_... (42 characters)."),
            )
        };
        let Some(rest) = raw.strip_prefix(KEY_PREFIX) else {
            return Err(invalid("it does not start with asc_"));
        };
        let wrong_length = || invalid("it has the wrong length");
        if raw.len() != KEY_LEN {
            return Err(wrong_length());
        }
        if !rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(invalid(
                "it holds characters that are not letters or digits",
            ));
        }
        let (signed, checksum) = raw
            .split_at_checked(KEY_PREFIX.len() + BODY_LEN)
            .ok_or_else(wrong_length)?;
        let expected = checksum_of(signed);
        if !bool::from(expected.as_bytes().ct_eq(checksum.as_bytes())) {
            return Err(invalid(
                "its checksum does not match (mistyped or truncated?)",
            ));
        }
        Ok(ApiKey(raw))
    }

    /// `HMAC-SHA256(secret, key)`, lowercase hex: the only form in which keys are stored.
    pub fn hash(&self, secret: &Secret) -> String {
        hash_key(self.0, secret)
    }
}

/// HMAC-SHA256 keyed once with the key-hashing secret: each key's hash then costs the two
/// compressions of its own bytes, not the two more that key the MAC (a request's largest
/// hashing cost in wasm, where SHA-256 runs in software).
#[derive(Clone)]
pub struct KeyHasher {
    secret: Secret,
    keyed: Hmac<Sha256>,
}

impl KeyHasher {
    pub fn new(secret: &Secret) -> Self {
        KeyHasher {
            secret: secret.clone(),
            keyed: keyed_mac(secret),
        }
    }

    /// Whether this hasher was keyed with `secret` (a rotated secret needs a new one).
    pub fn is_for(&self, secret: &Secret) -> bool {
        self.secret == *secret
    }

    /// Same as [`ApiKey::hash`] with this hasher's secret.
    pub fn hash(&self, key: &ApiKey<'_>) -> String {
        mac_hex(self.keyed.clone(), key.0)
    }
}

impl std::fmt::Debug for KeyHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyHasher(***)")
    }
}

/// Builds a well-formed key from 32 random bytes (the caller owns the randomness: the core has none).
pub fn new_key(random: &[u8; BODY_LEN]) -> String {
    let mut key = String::with_capacity(KEY_LEN);
    key.push_str(KEY_PREFIX);
    // A byte modulo 62 is very slightly biased towards the first 8 symbols; 32 symbols still carry
    // over 190 bits of entropy.
    key.extend(random.iter().map(|b| base62_digit(u64::from(*b))));
    let checksum = checksum_of(&key);
    key.push_str(&checksum);
    key
}

fn checksum_of(signed: &str) -> String {
    let mut n = crc32fast::hash(signed.as_bytes()) as u64;
    let mut out = ['0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = base62_digit(n);
        n /= 62;
    }
    out.iter().collect()
}

fn hash_key(key: &str, secret: &Secret) -> String {
    mac_hex(keyed_mac(secret), key)
}

/// The keyed MAC of `key`, lowercase hex.
fn mac_hex(mut mac: Hmac<Sha256>, key: &str) -> String {
    mac.update(key.as_bytes());
    crate::hexstr::encode(&mac.finalize().into_bytes())
}

fn keyed_mac(secret: &Secret) -> Hmac<Sha256> {
    #[allow(
        clippy::unreachable,
        reason = "HMAC takes keys of any length (it hashes long ones and pads short ones): \
                  `new_from_slice` never fails for Hmac<Sha256>"
    )]
    match Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    }
}

/// The KV name under which a key's record is stored.
pub fn record_name(key_hash: &str) -> String {
    format!("key:{key_hash}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyStatus {
    Active,
    Revoked,
}

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Inference: chat completions (and, with the provider issue, messages and embeddings).
    Chat,
    /// List the tenant's approved models.
    Models,
    /// Read the tenant's usage and budgets.
    Usage,
}

/// The record stored in KV under `key:<hash>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRecord {
    pub schema_version: u32,
    pub key_id: KeyId,
    pub tenant_id: TenantId,
    pub status: KeyStatus,
    pub scopes: Vec<Scope>,
    /// Business-unit tags (e.g. `bu:research`): the key's requests also count against the budgets
    /// of these tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// The same hash as in the record's name, compared in constant time on every lookup so a
    /// record filed under the wrong name is never accepted.
    pub key_hash: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_ms: Option<u64>,
    /// When the key stops working (ms since the epoch): set when a key is rotated with an
    /// overlap, so clients have time to switch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_ms: Option<u64>,
}

impl KeyRecord {
    /// Decides whether this record admits a key with hash `presented_hash` at `now_ms`.
    pub fn admit(&self, presented_hash: &str, now_ms: u64) -> Result<(), GatewayError> {
        if !bool::from(self.key_hash.as_bytes().ct_eq(presented_hash.as_bytes())) {
            return Err(GatewayError::new(
                ErrorKind::InvalidApiKey,
                "Incorrect API key provided.",
            ));
        }
        if self.status == KeyStatus::Revoked {
            return Err(GatewayError::new(
                ErrorKind::RevokedApiKey,
                format!("API key {} has been revoked.", self.key_id),
            ));
        }
        if self.expires_ms.is_some_and(|at| now_ms >= at) {
            return Err(GatewayError::new(
                ErrorKind::ExpiredApiKey,
                format!(
                    "API key {} has expired (it was rotated); use its replacement.",
                    self.key_id
                ),
            ));
        }
        Ok(())
    }

    pub fn allows(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }
}

/// Takes the key from `Authorization: Bearer <key>` or `x-api-key: <key>` (the Anthropic SDKs'
/// header). When both are present they must agree, so a proxy cannot smuggle a second identity.
pub fn presented_key<'h>(
    authorization: Option<&'h str>,
    x_api_key: Option<&'h str>,
) -> Result<&'h str, GatewayError> {
    let bearer = match authorization.map(str::trim) {
        Some(value) => {
            let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
            if !scheme.eq_ignore_ascii_case("bearer") {
                return Err(GatewayError::new(
                    ErrorKind::InvalidApiKey,
                    "The Authorization header must be 'Bearer <key>'.",
                ));
            }
            // An empty token is no key at all: an `x-api-key` beside it decides.
            Some(token.trim()).filter(|t| !t.is_empty())
        }
        None => None,
    };
    let x_key = x_api_key.map(str::trim).filter(|k| !k.is_empty());
    match (bearer, x_key) {
        (Some(b), Some(x)) if b != x => Err(GatewayError::new(
            ErrorKind::InvalidApiKey,
            "Authorization and x-api-key carry different keys; send one.",
        )),
        (Some(b), _) => Ok(b),
        (_, Some(x)) => Ok(x),
        _ => Err(GatewayError::new(
            ErrorKind::MissingApiKey,
            "You didn't provide an API key. Send it as 'Authorization: Bearer <key>' or 'x-api-key: <key>'.",
        )),
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_keyed_hasher_gives_the_same_hash_as_keying_each_time() {
        let secret = Secret::new("pepper");
        let other = Secret::new("salt");
        let raw = new_key(&[7; BODY_LEN]);
        let key = ApiKey::parse(&raw).expect("well-formed");
        let hasher = KeyHasher::new(&secret);
        assert_eq!(hasher.hash(&key), key.hash(&secret));
        assert_eq!(
            hasher.hash(&key),
            hasher.hash(&key),
            "the keyed state is not consumed"
        );
        assert_ne!(hasher.hash(&key), key.hash(&other));
        assert!(hasher.is_for(&secret) && !hasher.is_for(&other));
        assert_eq!(format!("{hasher:?}"), "KeyHasher(***)");
    }

    use super::*;

    fn secret() -> Secret {
        Secret::new("deployment-secret-for-tests")
    }

    #[test]
    fn new_keys_parse() {
        let key = new_key(&[7u8; 32]);
        assert_eq!(key.len(), KEY_LEN);
        assert!(key.starts_with("asc_"));
        assert!(ApiKey::parse(&key).is_ok());
    }

    #[test]
    fn a_single_mistyped_character_fails_the_checksum() {
        let key = new_key(&[42u8; 32]);
        for i in KEY_PREFIX.len()..key.len() {
            let mut bytes = key.clone().into_bytes();
            bytes[i] = if bytes[i] == b'x' { b'y' } else { b'x' };
            let typo = String::from_utf8(bytes).expect("ascii");
            let err = ApiKey::parse(&typo).err().expect("typo must fail");
            assert_eq!(err.kind, ErrorKind::InvalidApiKey);
            assert!(!err.message.contains(&typo), "error must not echo the key");
        }
    }

    #[test]
    fn wrong_shapes_fail_fast() {
        for bad in [
            "",
            "sk-abc",
            "asc_short",
            &format!("asc_{}", "!".repeat(38)),
        ] {
            assert_eq!(
                ApiKey::parse(bad).err().map(|e| e.kind),
                Some(ErrorKind::InvalidApiKey)
            );
        }
    }

    #[test]
    fn hash_is_hmac_sha256_hex() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let got = hash_key("what do ya want for nothing?", &Secret::new("Jefe"));
        assert_eq!(
            got,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn hash_depends_on_the_deployment_secret() {
        let key = new_key(&[1u8; 32]);
        let parsed = ApiKey::parse(&key).expect("valid");
        assert_ne!(parsed.hash(&secret()), parsed.hash(&Secret::new("other")));
        assert!(!parsed.hash(&secret()).contains(&key[4..]));
    }

    fn record(status: KeyStatus, hash: &str) -> KeyRecord {
        KeyRecord {
            schema_version: 1,
            key_id: KeyId("k_demo".into()),
            tenant_id: TenantId("demo".into()),
            status,
            scopes: vec![Scope::Chat],
            tags: vec![],
            key_hash: hash.into(),
            label: None,
            created_ms: None,
            expires_ms: None,
        }
    }

    #[test]
    fn revoked_keys_are_refused_and_mismatched_records_rejected() {
        let key = new_key(&[3u8; 32]);
        let hash = ApiKey::parse(&key).expect("valid").hash(&secret());
        assert!(record(KeyStatus::Active, &hash).admit(&hash, 0).is_ok());
        assert_eq!(
            record(KeyStatus::Revoked, &hash)
                .admit(&hash, 0)
                .err()
                .map(|e| e.kind),
            Some(ErrorKind::RevokedApiKey)
        );
        let other = "0".repeat(64);
        assert_eq!(
            record(KeyStatus::Active, &other)
                .admit(&hash, 0)
                .err()
                .map(|e| e.kind),
            Some(ErrorKind::InvalidApiKey)
        );
    }

    #[test]
    fn a_rotated_key_works_until_its_expiry() {
        let key = new_key(&[4u8; 32]);
        let hash = ApiKey::parse(&key).expect("valid").hash(&secret());
        let mut r = record(KeyStatus::Active, &hash);
        r.expires_ms = Some(1_000);
        assert!(r.admit(&hash, 999).is_ok());
        assert_eq!(
            r.admit(&hash, 1_000).err().map(|e| e.kind),
            Some(ErrorKind::ExpiredApiKey)
        );
    }

    #[test]
    fn presented_key_reads_both_headers() {
        assert_eq!(presented_key(Some("Bearer abc"), None).ok(), Some("abc"));
        assert_eq!(presented_key(None, Some("abc")).ok(), Some("abc"));
        assert_eq!(
            presented_key(Some("Bearer abc"), Some("abc")).ok(),
            Some("abc")
        );
        let kinds = |r: Result<&str, GatewayError>| r.err().map(|e| e.kind);
        assert_eq!(
            kinds(presented_key(Some("Bearer abc"), Some("def"))),
            Some(ErrorKind::InvalidApiKey)
        );
        assert_eq!(
            kinds(presented_key(None, None)),
            Some(ErrorKind::MissingApiKey)
        );
        assert_eq!(
            kinds(presented_key(Some("Bearer "), None)),
            Some(ErrorKind::MissingApiKey)
        );
        assert_eq!(
            kinds(presented_key(Some("Basic x"), None)),
            Some(ErrorKind::InvalidApiKey)
        );
    }
}

//! Ed25519 signing keys for digests, with ids and validity windows `[not_before_ms, not_after_ms)`.
//!
//! The sequencer holds a [`SigningKeyring`] built from a deployment secret (a JSON list of
//! [`SigningKeySpec`], the 32-byte seeds in base64); auditors hold a [`PublicKeyring`] read from
//! a JSON list of [`PublicKeyEntry`]. Rotation: add the new key with a `not_before_ms` in the
//! future, and give the old one a `not_after_ms`; both files keep retired keys so old digests
//! still verify.

use std::collections::BTreeMap;
use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::ids::is_valid_id;
use crate::secret::Secret;

/// When a key may sign: from `not_before_ms` (inclusive) to `not_after_ms` (exclusive; `None`
/// for no end).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Validity {
    pub not_before_ms: u64,
    pub not_after_ms: Option<u64>,
}

impl Validity {
    pub fn contains(&self, t_ms: u64) -> bool {
        t_ms >= self.not_before_ms && self.not_after_ms.is_none_or(|end| t_ms < end)
    }
}

/// A signing key as the deployment secret holds it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningKeySpec {
    pub key_id: String,
    /// The 32-byte Ed25519 seed (RFC 8032 secret key), standard base64.
    pub seed: String,
    pub not_before_ms: u64,
    pub not_after_ms: Option<u64>,
}

impl fmt::Debug for SigningKeySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKeySpec")
            .field("key_id", &self.key_id)
            .field("not_before_ms", &self.not_before_ms)
            .field("not_after_ms", &self.not_after_ms)
            .finish_non_exhaustive()
    }
}

/// A verifying key as the auditors' key file holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicKeyEntry {
    pub key_id: String,
    /// The 32-byte Ed25519 public key, standard base64.
    pub public_key: String,
    pub not_before_ms: u64,
    pub not_after_ms: Option<u64>,
}

/// A key file or secret that cannot be used. Never holds key material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError(pub String);

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for KeyError {}

/// A key pair from a 32-byte seed: the secret spec (for the deployment) and the public entry
/// (for the auditors).
pub fn key_pair(
    key_id: &str,
    seed: &[u8; 32],
    validity: Validity,
) -> Result<(SigningKeySpec, PublicKeyEntry), KeyError> {
    check_key(key_id, validity)?;
    let public = SigningKey::from_bytes(seed).verifying_key();
    Ok((
        SigningKeySpec {
            key_id: key_id.to_string(),
            seed: BASE64.encode(seed),
            not_before_ms: validity.not_before_ms,
            not_after_ms: validity.not_after_ms,
        },
        PublicKeyEntry {
            key_id: key_id.to_string(),
            public_key: BASE64.encode(public.as_bytes()),
            not_before_ms: validity.not_before_ms,
            not_after_ms: validity.not_after_ms,
        },
    ))
}

fn check_key(key_id: &str, validity: Validity) -> Result<(), KeyError> {
    if !is_valid_id(key_id) {
        return Err(KeyError(format!(
            "key id {key_id:?} must be 1-64 of [a-z0-9_-]"
        )));
    }
    if validity
        .not_after_ms
        .is_some_and(|end| end <= validity.not_before_ms)
    {
        return Err(KeyError(format!(
            "key {key_id}: not_after_ms must be after not_before_ms"
        )));
    }
    Ok(())
}

fn decode_32(what: &str, key_id: &str, b64: &str) -> Result<[u8; 32], KeyError> {
    let bytes = BASE64
        .decode(b64.trim())
        .map_err(|_| KeyError(format!("key {key_id}: {what} is not standard base64")))?;
    bytes
        .try_into()
        .map_err(|_| KeyError(format!("key {key_id}: {what} must be 32 bytes")))
}

struct Signer {
    key_id: String,
    key: SigningKey,
    validity: Validity,
}

/// The sequencer's signing keys. `Debug` shows ids and windows only.
pub struct SigningKeyring {
    keys: Vec<Signer>,
}

impl SigningKeyring {
    /// Reads the deployment secret: a JSON list of [`SigningKeySpec`] (or a single one).
    pub fn from_secret(secret: &Secret) -> Result<Self, KeyError> {
        let text = secret.expose().trim();
        let specs: Vec<SigningKeySpec> = if text.starts_with('[') {
            serde_json::from_str(text)
        } else {
            serde_json::from_str(text).map(|one| vec![one])
        }
        .map_err(|e| {
            // Only the position: serde's message may quote the (secret) value.
            KeyError(format!(
                "signing keys: expected a JSON list of {{key_id, seed, not_before_ms, not_after_ms}} \
                 (problem at line {} column {})",
                e.line(),
                e.column()
            ))
        })?;
        Self::from_specs(&specs)
    }

    pub fn from_specs(specs: &[SigningKeySpec]) -> Result<Self, KeyError> {
        let mut keys = Vec::new();
        for spec in specs {
            let validity = Validity {
                not_before_ms: spec.not_before_ms,
                not_after_ms: spec.not_after_ms,
            };
            check_key(&spec.key_id, validity)?;
            if keys.iter().any(|k: &Signer| k.key_id == spec.key_id) {
                return Err(KeyError(format!("key {}: listed twice", spec.key_id)));
            }
            let seed = decode_32("seed", &spec.key_id, &spec.seed)?;
            keys.push(Signer {
                key_id: spec.key_id.clone(),
                key: SigningKey::from_bytes(&seed),
                validity,
            });
        }
        Ok(SigningKeyring { keys })
    }

    /// The public half of every key, for the auditors' key file.
    pub fn public_keys(&self) -> Vec<PublicKeyEntry> {
        self.keys
            .iter()
            .map(|k| PublicKeyEntry {
                key_id: k.key_id.clone(),
                public_key: BASE64.encode(k.key.verifying_key().as_bytes()),
                not_before_ms: k.validity.not_before_ms,
                not_after_ms: k.validity.not_after_ms,
            })
            .collect()
    }

    /// The key to sign with at `t_ms`: of the keys valid then, the one that became valid last
    /// (so a rotation takes effect at the new key's `not_before_ms`).
    pub fn key_id_at(&self, t_ms: u64) -> Option<&str> {
        self.keys
            .iter()
            .filter(|k| k.validity.contains(t_ms))
            .max_by(|a, b| {
                (a.validity.not_before_ms, &a.key_id).cmp(&(b.validity.not_before_ms, &b.key_id))
            })
            .map(|k| k.key_id.as_str())
    }

    /// Signs `message` with the key `key_id`; the signature in standard base64.
    /// Ed25519 is deterministic: the same key and message always give the same signature.
    pub fn sign(&self, key_id: &str, message: &[u8]) -> Option<String> {
        let signer = self.keys.iter().find(|k| k.key_id == key_id)?;
        Some(BASE64.encode(signer.key.sign(message).to_bytes()))
    }
}

impl fmt::Debug for SigningKeyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.keys.iter().map(|k| (&k.key_id, k.validity)))
            .finish()
    }
}

/// Why a signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureProblem {
    /// No key with this id in the auditors' key file.
    UnknownKey,
    /// The key exists but was not valid at the digest's `created_ms`.
    KeyNotValid(Validity),
    /// The signature is malformed or does not verify under the key.
    BadSignature,
}

/// The auditors' verifying keys by id.
#[derive(Debug, Clone, Default)]
pub struct PublicKeyring {
    keys: BTreeMap<String, (VerifyingKey, Validity)>,
}

impl PublicKeyring {
    /// Reads a key file: a JSON list of [`PublicKeyEntry`].
    pub fn from_json(bytes: &[u8]) -> Result<Self, KeyError> {
        let entries: Vec<PublicKeyEntry> = serde_json::from_slice(bytes).map_err(|e| {
            KeyError(format!(
                "key file: expected a JSON list of {{key_id, public_key, not_before_ms, not_after_ms}}: {e}"
            ))
        })?;
        Self::from_entries(&entries)
    }

    pub fn from_entries(entries: &[PublicKeyEntry]) -> Result<Self, KeyError> {
        let mut keys = BTreeMap::new();
        for e in entries {
            let validity = Validity {
                not_before_ms: e.not_before_ms,
                not_after_ms: e.not_after_ms,
            };
            check_key(&e.key_id, validity)?;
            let bytes = decode_32("public_key", &e.key_id, &e.public_key)?;
            let key = VerifyingKey::from_bytes(&bytes).map_err(|_| {
                KeyError(format!(
                    "key {}: public_key is not an Ed25519 point",
                    e.key_id
                ))
            })?;
            if keys.insert(e.key_id.clone(), (key, validity)).is_some() {
                return Err(KeyError(format!("key {}: listed twice", e.key_id)));
            }
        }
        Ok(PublicKeyring { keys })
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Checks a base64 `signature` over `message` by key `key_id`, which must have been valid at
    /// `at_ms`. Uses strict verification (no malleable or small-order encodings).
    pub fn check(
        &self,
        key_id: &str,
        at_ms: u64,
        message: &[u8],
        signature: &str,
    ) -> Result<(), SignatureProblem> {
        let (key, validity) = self.keys.get(key_id).ok_or(SignatureProblem::UnknownKey)?;
        let bytes: [u8; 64] = BASE64
            .decode(signature)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or(SignatureProblem::BadSignature)?;
        key.verify_strict(message, &Signature::from_bytes(&bytes))
            .map_err(|_| SignatureProblem::BadSignature)?;
        if !validity.contains(at_ms) {
            return Err(SignatureProblem::KeyNotValid(*validity));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex<const N: usize>(s: &str) -> [u8; N] {
        hex::decode(s).expect("hex").try_into().expect("length")
    }

    // RFC 8032, section 7.1, TEST 1 (empty message).
    const RFC8032_SECRET: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
    const RFC8032_PUBLIC: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
    const RFC8032_SIGNATURE: &str = "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b";

    fn always() -> Validity {
        Validity {
            not_before_ms: 0,
            not_after_ms: None,
        }
    }

    #[test]
    fn signs_rfc8032_test_vector_1() {
        let (spec, public) = key_pair("k1", &unhex::<32>(RFC8032_SECRET), always()).expect("key");
        assert_eq!(
            BASE64.decode(&public.public_key).expect("b64"),
            unhex::<32>(RFC8032_PUBLIC)
        );
        let ring = SigningKeyring::from_specs(&[spec]).expect("ring");
        let signature = ring.sign("k1", b"").expect("known key");
        assert_eq!(
            BASE64.decode(&signature).expect("b64"),
            unhex::<64>(RFC8032_SIGNATURE)
        );
        let verifiers = PublicKeyring::from_entries(&[public]).expect("keys");
        assert_eq!(verifiers.check("k1", 5, b"", &signature), Ok(()));
        assert_eq!(
            verifiers.check("k1", 5, b"x", &signature),
            Err(SignatureProblem::BadSignature)
        );
        assert_eq!(
            verifiers.check("k2", 5, b"", &signature),
            Err(SignatureProblem::UnknownKey)
        );
    }

    #[test]
    fn validity_is_half_open_and_rotation_picks_the_newest_valid_key() {
        let old = Validity {
            not_before_ms: 100,
            not_after_ms: Some(200),
        };
        assert!(!old.contains(99) && old.contains(100) && old.contains(199) && !old.contains(200));
        let (a, _) = key_pair("old", &[1; 32], old).expect("key");
        let (b, pb) = key_pair(
            "new",
            &[2; 32],
            Validity {
                not_before_ms: 150,
                not_after_ms: None,
            },
        )
        .expect("key");
        let ring = SigningKeyring::from_specs(&[a, b]).expect("ring");
        assert_eq!(ring.key_id_at(99), None);
        assert_eq!(ring.key_id_at(120), Some("old"));
        assert_eq!(ring.key_id_at(150), Some("new"));
        assert_eq!(ring.key_id_at(10_000), Some("new"));

        let verifiers = PublicKeyring::from_entries(&[pb]).expect("keys");
        let sig = ring.sign("new", b"m").expect("known");
        assert_eq!(
            verifiers.check("new", 149, b"m", &sig),
            Err(SignatureProblem::KeyNotValid(Validity {
                not_before_ms: 150,
                not_after_ms: None
            }))
        );
    }

    #[test]
    fn secret_parses_list_or_single_and_never_prints_the_seed() {
        let (spec, _) = key_pair("k1", &[7; 32], always()).expect("key");
        let one = serde_json::to_string(&spec).expect("json");
        let list = format!("[{one}]");
        for text in [one.as_str(), list.as_str()] {
            let ring = SigningKeyring::from_secret(&Secret::new(text)).expect("parses");
            assert_eq!(ring.key_id_at(0), Some("k1"));
            assert!(!format!("{ring:?}").contains(&spec.seed));
        }
        assert!(!format!("{spec:?}").contains(&spec.seed));
        let bad = SigningKeyring::from_secret(&Secret::new(one.replace(&spec.seed, "c2hvcnQ=")))
            .expect_err("short seed");
        assert!(bad.0.contains("32 bytes"), "{bad}");
        assert!(key_pair("K1", &[7; 32], always()).is_err());
        assert!(key_pair(
            "k1",
            &[7; 32],
            Validity {
                not_before_ms: 5,
                not_after_ms: Some(5)
            }
        )
        .is_err());
    }
}

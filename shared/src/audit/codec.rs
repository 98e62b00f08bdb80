//! How the audit trail hashes and compresses. The core's own code (sha2, flate2) is the default;
//! a host with faster native code (workerd's `node:crypto` and `node:zlib`) hands its own to the
//! driver through [`TrailStore::codec`](super::drive::TrailStore::codec).
//!
//! SHA-256 is the same whoever computes it. A gzip stream may differ in its deflate bytes between
//! implementations (a verifier hashes the object it downloaded and never re-compresses), but it
//! must keep [`batch::gzip`]'s header and be deterministic within one build of the host: a
//! shipment that failed to upload is rendered again and must come out byte for byte the same.

use super::batch::{self, BatchError};

pub trait TrailCodec {
    fn sha256(&self, bytes: &[u8]) -> [u8; 32];
    /// Deterministic gzip (RFC 1952) of a batch's JSON Lines, with [`batch::gzip`]'s header.
    fn gzip(&self, bytes: &[u8]) -> Result<Vec<u8>, BatchError>;
}

/// The core's own SHA-256 and gzip.
pub struct SoftwareCodec;

impl TrailCodec for SoftwareCodec {
    fn sha256(&self, bytes: &[u8]) -> [u8; 32] {
        use sha2::Digest as _;
        sha2::Sha256::digest(bytes).into()
    }

    fn gzip(&self, bytes: &[u8]) -> Result<Vec<u8>, BatchError> {
        batch::gzip(bytes)
    }
}

/// SHA-256 of `bytes` by `codec`, as lowercase hex.
pub(crate) fn sha256_hex(codec: &dyn TrailCodec, bytes: &[u8]) -> String {
    crate::hexstr::encode(&codec.sha256(bytes))
}

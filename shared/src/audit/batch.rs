//! Batch objects: gzip (RFC 1952) of JSON Lines, one canonical entry per line, each line ending
//! in `\n`. The gzip stream is deterministic (mtime 0, no file name, OS byte 255, level 6), so
//! the same entries always compress to the same bytes, and a re-upload after a crash is
//! byte-identical. A host may compress with its own deterministic zlib instead
//! ([`super::codec`]): same header, other deflate bytes, read by the same [`gunzip`].

use std::io::{Read as _, Write as _};

use flate2::read::GzDecoder;
use flate2::{Compression, GzBuilder};

use super::canonical::CanonicalError;
use super::entry::Entry;

/// A batch that could not be built or read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchError {
    Canonical(CanonicalError),
    /// Not a gzip stream, or a corrupt one.
    Gzip(String),
    /// Decompresses to more than the caller's limit.
    TooLarge {
        limit: usize,
    },
}

impl std::fmt::Display for BatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BatchError::Canonical(e) => write!(f, "{e}"),
            BatchError::Gzip(e) => write!(f, "not a valid gzip stream: {e}"),
            BatchError::TooLarge { limit } => {
                write!(f, "decompresses to more than {limit} bytes")
            }
        }
    }
}

/// The JSON Lines text of `entries` (uncompressed).
pub fn jsonl<'a>(entries: impl IntoIterator<Item = &'a Entry>) -> Result<Vec<u8>, BatchError> {
    let mut text = Vec::new();
    for entry in entries {
        text.extend(entry.line().map_err(BatchError::Canonical)?);
        text.push(b'\n');
    }
    Ok(text)
}

/// Deterministic gzip of `bytes`.
pub fn gzip(bytes: &[u8]) -> Result<Vec<u8>, BatchError> {
    let mut encoder = GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(Vec::new(), Compression::new(6));
    encoder
        .write_all(bytes)
        .map_err(|e| BatchError::Gzip(e.to_string()))?;
    encoder
        .finish()
        .map_err(|e| BatchError::Gzip(e.to_string()))
}

/// The batch object of `entries`: gzip of their JSON Lines.
pub fn encode<'a>(entries: impl IntoIterator<Item = &'a Entry>) -> Result<Vec<u8>, BatchError> {
    gzip(&jsonl(entries)?)
}

/// Decompresses a batch object (one gzip member), refusing to produce more than `limit` bytes.
pub fn gunzip(bytes: &[u8], limit: usize) -> Result<Vec<u8>, BatchError> {
    let mut out = Vec::new();
    GzDecoder::new(bytes)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| BatchError::Gzip(e.to_string()))?;
    if out.len() > limit {
        return Err(BatchError::TooLarge { limit });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_header_is_fixed_per_rfc1952() {
        let z = gzip(b"{\"a\":1}\n").expect("compresses");
        // ID1 ID2, CM=8 (deflate), FLG=0 (no name/comment/extra), MTIME=0, XFL=0, OS=255.
        assert_eq!(&z[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]);
        // Trailer: CRC-32 then ISIZE of the input, little-endian.
        let n = z.len();
        assert_eq!(
            &z[n - 8..n - 4],
            &crc32fast::hash(b"{\"a\":1}\n").to_le_bytes()
        );
        assert_eq!(&z[n - 4..], &8u32.to_le_bytes());
        assert_eq!(gzip(b"{\"a\":1}\n").expect("compresses"), z);
        assert_eq!(gunzip(&z, 100).expect("decompresses"), b"{\"a\":1}\n");
    }

    #[test]
    fn gunzip_refuses_corruption_and_oversize() {
        let z = gzip(&[b'x'; 1000]).expect("compresses");
        assert_eq!(gunzip(&z, 999), Err(BatchError::TooLarge { limit: 999 }));
        assert!(gunzip(&z, 1000).is_ok());
        let mut bad = z.clone();
        let n = bad.len();
        bad[n - 6] ^= 1; // the CRC no longer matches
        assert!(matches!(gunzip(&bad, 1000), Err(BatchError::Gzip(_))));
        assert!(matches!(
            gunzip(b"not gzip", 1000),
            Err(BatchError::Gzip(_))
        ));
    }
}

//! The pack's manifest: every file with its SHA-256 and size, the period and when the pack was
//! made, as RFC 8785 canonical JSON, signed with an Ed25519 key of the same kind as the audit
//! trail's (`asc audit keygen`). Verifying checks the signature, then every file against it, and
//! that no file was added or removed.

use std::collections::BTreeMap;
use std::path::Path;

use asc_core::audit::canonical::{canonical_json, sha256_hex};
use asc_core::audit::{PublicKeyring, SigningKeyring};
use serde::{Deserialize, Serialize};

pub const MANIFEST: &str = "manifest.json";
pub const SIGNATURE: &str = "manifest.sig.json";
pub const FORMAT: &str = "asc-evidence-pack/1";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub sha256: String,
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub from_ms: u64,
    pub to_ms: u64,
    pub generated_ms: u64,
    /// By file name.
    pub files: BTreeMap<String, FileEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestSignature {
    pub key_id: String,
    /// Ed25519 over the exact bytes of manifest.json, standard base64.
    pub signature: String,
}

impl Manifest {
    pub fn new(from_ms: u64, to_ms: u64, generated_ms: u64) -> Self {
        Manifest {
            format: FORMAT.into(),
            from_ms,
            to_ms,
            generated_ms,
            files: BTreeMap::new(),
        }
    }

    pub fn add(&mut self, name: &str, bytes: &[u8]) {
        self.files.insert(
            name.to_string(),
            FileEntry {
                sha256: sha256_hex(bytes),
                bytes: bytes.len() as u64,
            },
        );
    }

    /// The manifest's bytes and their signature by the key in force at `generated_ms`.
    pub fn sign(&self, ring: &SigningKeyring) -> Result<(Vec<u8>, Vec<u8>), String> {
        let bytes = canonical_json(self).map_err(|e| e.to_string())?;
        let key_id = ring
            .key_id_at(self.generated_ms)
            .ok_or("no signing key is valid now")?
            .to_string();
        let signature = ring
            .sign(&key_id, &bytes)
            .ok_or("the signing key disappeared")?;
        let sig = serde_json::to_vec_pretty(&ManifestSignature { key_id, signature })
            .map_err(|e| e.to_string())?;
        Ok((bytes, sig))
    }
}

/// Checks a pack folder; returns the manifest, or every problem found.
pub fn verify(dir: &Path, keys: &PublicKeyring) -> Result<Manifest, Vec<String>> {
    let read = |name: &str| std::fs::read(dir.join(name)).map_err(|e| vec![format!("{name}: {e}")]);
    let bytes = read(MANIFEST)?;
    let sig: ManifestSignature =
        serde_json::from_slice(&read(SIGNATURE)?).map_err(|e| vec![format!("{SIGNATURE}: {e}")])?;
    let manifest: Manifest =
        serde_json::from_slice(&bytes).map_err(|e| vec![format!("{MANIFEST}: {e}")])?;
    if manifest.format != FORMAT {
        return Err(vec![format!(
            "{MANIFEST}: format {:?}, expected {FORMAT:?}",
            manifest.format
        )]);
    }
    if let Err(p) = keys.check(&sig.key_id, manifest.generated_ms, &bytes, &sig.signature) {
        return Err(vec![format!(
            "{MANIFEST}: signature by key {:?} does not verify: {p:?}",
            sig.key_id
        )]);
    }
    let mut problems = Vec::new();
    for (name, entry) in &manifest.files {
        match std::fs::read(dir.join(name)) {
            Ok(b) if sha256_hex(&b) == entry.sha256 && b.len() as u64 == entry.bytes => {}
            Ok(b) => problems.push(format!(
                "{name}: changed (sha256 {} in the manifest, {} found)",
                entry.sha256,
                sha256_hex(&b)
            )),
            Err(e) => problems.push(format!("{name}: missing ({e})")),
        }
    }
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name != MANIFEST && name != SIGNATURE && !manifest.files.contains_key(&name) {
                    problems.push(format!("{name}: not in the manifest (added after signing)"));
                }
            }
        }
        Err(e) => problems.push(format!("{}: {e}", dir.display())),
    }
    if problems.is_empty() {
        Ok(manifest)
    } else {
        Err(problems)
    }
}

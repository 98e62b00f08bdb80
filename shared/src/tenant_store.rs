//! A tenant's admin store: every version of its config (bytes exactly as submitted) and its API
//! keys (records without secrets), with the `If-Match` check on writes. One per tenant, in the
//! region (a Durable Object on Workers), single-threaded, so a check and its write are atomic.
//!
//! The request path reads the current config and key records from the config store (KV), which
//! has no compare-and-swap: the store is the authority, and each write names what to publish
//! there ([`StoreReply::publish`]), queued ([`Unpublished`]) in the same write as the change;
//! the host writes the queue through after storing, and again later until it is all in.

mod keys;
mod publish;
mod versions;

use serde::{Deserialize, Serialize};

pub use keys::{KeyListing, KEY_LIST_MAX, KEY_ROW_PREFIX, LEGACY_KEYS_ROW};
pub use publish::{publish, Entry, Unpublished, UNPUBLISHED_ROW};
pub use versions::VERSION_META_PREFIX;

use crate::apikey::{KeyRecord, KeyStatus, Scope};
use crate::audit::content_sha256;
use crate::ids::{KeyId, TenantId};

/// Who made a change, as stored with it (never a token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Author {
    pub subject: String,
    pub issuer: String,
}

/// One stored version's description.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionMeta {
    pub version: u64,
    /// SHA-256 (hex) of the config bytes.
    pub sha256: String,
    pub at_ms: u64,
    pub author: Author,
    /// `put`, `rollback` or `import` (adopted from the config store as it was).
    pub operation: String,
    /// For a rollback: the version whose bytes it restored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredVersion {
    pub meta: VersionMeta,
    /// The config exactly as submitted.
    pub config: String,
}

/// A key as the store keeps it: its record (the hash, never the secret) and who minted it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyEntry {
    pub record: KeyRecord,
    pub created_by: Author,
    /// The key that replaced this one, if it was rotated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotated_to: Option<KeyId>,
}

/// A key as listed: no hash, no secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeySummary {
    pub key_id: KeyId,
    pub status: KeyStatus,
    pub scopes: Vec<Scope>,
    pub tags: Vec<String>,
    pub label: Option<String>,
    pub created_ms: Option<u64>,
    pub expires_ms: Option<u64>,
    pub created_by: String,
    pub rotated_to: Option<KeyId>,
}

impl KeyEntry {
    pub fn summary(&self) -> KeySummary {
        let r = &self.record;
        KeySummary {
            key_id: r.key_id.clone(),
            status: r.status,
            scopes: r.scopes.clone(),
            tags: r.tags.clone(),
            label: r.label.clone(),
            created_ms: r.created_ms,
            expires_ms: r.expires_ms,
            created_by: self.created_by.subject.clone(),
            rotated_to: self.rotated_to.clone(),
        }
    }
}

/// What a write must match: `Version(0)` means "the tenant has no config yet".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IfMatch(pub u64);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum StoreOp {
    /// The current version, or `version`.
    Get {
        version: Option<u64>,
    },
    History,
    Put {
        if_match: IfMatch,
        config: String,
        at_ms: u64,
        author: Author,
    },
    /// Adopts a config found in the config store as version 1, if the store has none.
    Import {
        config: String,
        at_ms: u64,
    },
    Rollback {
        if_match: IfMatch,
        to: u64,
        at_ms: u64,
        author: Author,
    },
    MintKey {
        entry: KeyEntry,
    },
    /// A page of keys.
    ListKeys(KeyListing),
    /// One key, whoever minted it.
    GetKey {
        key_id: KeyId,
    },
    /// Revokes `key_id` now (`expires_ms: None`) or lets it expire at `expires_ms`, and, when
    /// rotating, mints `replacement`. `owner`: only if that subject minted it.
    RetireKey {
        key_id: KeyId,
        expires_ms: Option<u64>,
        replacement: Option<Box<KeyEntry>>,
        owner: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
#[allow(
    clippy::large_enum_variant,
    reason = "one reply per admin call, serialized at once"
)]
pub enum StoreReply {
    Version {
        version: Box<StoredVersion>,
    },
    History {
        versions: Vec<VersionMeta>,
    },
    /// A write stored: the versions before and after (0: none before).
    Stored {
        before: u64,
        after: Box<StoredVersion>,
        publish: Vec<(String, String)>,
        /// Set by the host: the config store holds every value of `publish` (else they are
        /// queued, and written by a later retry).
        #[serde(default)]
        published: bool,
    },
    /// `If-Match` named another version than the current one.
    Conflict {
        current: u64,
    },
    Keys {
        keys: Vec<KeySummary>,
        /// More keys follow the last one listed.
        #[serde(default)]
        has_more: bool,
    },
    KeyStored {
        key: KeySummary,
        /// The retired key, when one was revoked or rotated.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retired: Option<KeySummary>,
        publish: Vec<(String, String)>,
        /// As `Stored::published`.
        #[serde(default)]
        published: bool,
    },
    NotFound,
    /// For the host, never an answer: the operation needs the config of `version`, which the
    /// store was loaded without; the host reads its row, hands it to
    /// [`TenantStore::provide_version`] and applies the operation again.
    NeedVersion {
        version: u64,
    },
    /// The key exists but the caller may act only on keys it minted.
    NotOwner,
    Invalid {
        message: String,
    },
}

impl StoreReply {
    /// The config store values a change names (`None` for a reply that changed nothing).
    pub fn publish(&self) -> Option<&[(String, String)]> {
        match self {
            StoreReply::Stored { publish, .. } | StoreReply::KeyStored { publish, .. } => {
                Some(publish)
            }
            _ => None,
        }
    }

    /// Marks a change published if `queue` holds none of its values any more.
    pub fn set_published(&mut self, queue: &Unpublished) {
        if let StoreReply::Stored {
            publish, published, ..
        }
        | StoreReply::KeyStored {
            publish, published, ..
        } = self
        {
            *published = queue.holds_all(publish);
        }
    }
}

/// The storage rows of a store: `v:<version, 20 digits>`, `key/<key id>` and `unpublished`.
pub const VERSION_PREFIX: &str = "v:";

/// The rows a change wrote and removed, to store in one atomic write before answering.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct StoreWrites {
    pub puts: Vec<(String, String)>,
    pub deletes: Vec<String>,
}

/// Serializable whole, for hosts that keep a store as one versioned row (Spin's SQLite, with
/// compare-and-swap); a Durable Object keeps it as rows (`take_writes`), a row per version and
/// per key, so a change writes what it changed, whatever the store holds (a Durable Object's
/// row holds at most 2 MB: one row of every key held ~5,000).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantStore {
    tenant: Option<TenantId>,
    versions: Vec<StoredVersion>,
    /// Versions whose config was not read (a host hands `load` the newest in full and the
    /// others' descriptions only): asked for with [`StoreReply::NeedVersion`].
    #[serde(skip)]
    unread: std::collections::BTreeSet<u64>,
    /// In creation order ([`keys::order`]), however they were read.
    #[serde(deserialize_with = "keys::in_order")]
    keys: Vec<KeyEntry>,
    #[serde(default, skip_serializing_if = "Unpublished::is_unused")]
    unpublished: Unpublished,
    #[serde(skip)]
    writes: Vec<(String, String)>,
    #[serde(skip)]
    deletes: Vec<String>,
}

/// The storage row of version `v`.
pub fn version_row(v: u64) -> String {
    format!("{VERSION_PREFIX}{v:020}")
}

fn json<T: Serialize>(value: &T) -> String {
    // Our own types serialize infallibly (no maps with non-string keys, no floats).
    serde_json::to_string(value).unwrap_or_default()
}

impl TenantStore {
    /// A store rebuilt from its rows (in any order); rows it cannot read are skipped.
    pub fn load(tenant: TenantId, rows: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut store = TenantStore {
            tenant: Some(tenant),
            ..TenantStore::default()
        };
        let mut legacy_keys = None;
        let mut metas = Vec::new();
        for (key, value) in rows {
            if key.starts_with(VERSION_PREFIX) {
                if let Ok(v) = serde_json::from_str::<StoredVersion>(&value) {
                    store.versions.push(v);
                }
            } else if key.starts_with(VERSION_META_PREFIX) {
                metas.push(value);
            } else if key.starts_with(KEY_ROW_PREFIX) {
                if let Ok(entry) = serde_json::from_str::<KeyEntry>(&value) {
                    store.keys.push(entry);
                }
            } else if key == LEGACY_KEYS_ROW {
                legacy_keys = Some(value);
            } else if key == UNPUBLISHED_ROW {
                store.unpublished = Unpublished::from_row(&value);
            }
        }
        store.settle_versions(metas);
        if let Some(legacy) = legacy_keys {
            store.adopt_legacy_keys(&legacy);
        }
        store.keys.sort_by(keys::order);
        store
    }

    /// Names the store's tenant (a store read back whole, or new, may not know it yet).
    pub fn set_tenant(&mut self, tenant: &TenantId) {
        if self.tenant.is_none() {
            self.tenant = Some(tenant.clone());
        }
    }

    /// The rows changed since the last call, to store before answering.
    pub fn take_writes(&mut self) -> StoreWrites {
        StoreWrites {
            puts: std::mem::take(&mut self.writes),
            deletes: std::mem::take(&mut self.deletes),
        }
    }

    pub fn current(&self) -> u64 {
        self.versions.last().map_or(0, |v| v.meta.version)
    }

    fn tenant_name(&self) -> String {
        crate::config::tenant_record_name(self.tenant.as_ref().unwrap_or(&TenantId(String::new())))
    }

    fn append(
        &mut self,
        config: String,
        at_ms: u64,
        author: Author,
        operation: &str,
        restored: Option<u64>,
    ) -> StoreReply {
        let before = self.current();
        let stored = StoredVersion {
            meta: VersionMeta {
                version: before + 1,
                sha256: content_sha256(config.as_bytes()),
                at_ms,
                author,
                operation: operation.into(),
                restored,
            },
            config,
        };
        self.writes
            .push((version_row(stored.meta.version), json(&stored)));
        // Its description apart too, read when the object starts (not the config).
        self.writes
            .push((versions::meta_row(stored.meta.version), json(&stored.meta)));
        self.versions.push(stored.clone());
        StoreReply::Stored {
            before,
            publish: vec![(self.tenant_name(), stored.config.clone())],
            after: Box::new(stored),
            published: false,
        }
    }

    /// Applies `op`; what a change publishes is queued (and its row written) with it.
    pub fn apply(&mut self, op: StoreOp) -> StoreReply {
        let reply = self.apply_op(op);
        if let Some(publish) = reply.publish().filter(|p| !p.is_empty()) {
            self.unpublished.queue(publish);
            self.writes.push(self.unpublished.row());
        }
        reply
    }

    /// The values not yet in the config store.
    pub fn unpublished(&self) -> &Unpublished {
        &self.unpublished
    }

    /// Unqueues what the config store now holds (`written`, from [`publish`]). A written value
    /// that is no longer the store's own for its key is queued again with the current one, with
    /// a new sequence: where two hosts publish at once (Spin instances), an older value may land
    /// after a newer one, and whichever host unqueues the older one queues the current value
    /// again, which the other host's unqueueing (of what it read before) leaves queued.
    /// `started_ms`: when the writes began (see [`Unpublished::written`]).
    pub fn published(&mut self, written: &[Entry], started_ms: u64) {
        let mut changed = self.unpublished.written(written, started_ms);
        for (key, value, _) in written {
            if let Some(current) = self.current_value(key).filter(|c| c != value) {
                self.unpublished.queue(&[(key.clone(), current)]);
                changed = true;
            }
        }
        if changed {
            self.writes.push(self.unpublished.row());
        }
    }

    /// A write of `key` got no answer and may still land until `until_ms` (see
    /// [`Unpublished::unsettle`]).
    pub fn unsettled(&mut self, key: &str, until_ms: u64) {
        self.unpublished.unsettle(key, until_ms);
        self.writes.push(self.unpublished.row());
    }

    /// What the config store should hold under `key`, as this store knows it.
    fn current_value(&self, key: &str) -> Option<String> {
        if key == self.tenant_name() {
            // Never an empty config for one not read (a host must hand the newest in full).
            if self.unread.contains(&self.current()) {
                return None;
            }
            return self.versions.last().map(|v| v.config.clone());
        }
        let hash = key.strip_prefix("key:")?;
        let entry = self.keys.iter().find(|k| k.record.key_hash == hash)?;
        Some(json(&entry.record))
    }

    fn apply_op(&mut self, op: StoreOp) -> StoreReply {
        match op {
            StoreOp::Get { version } => {
                match self.read_version(version.unwrap_or_else(|| self.current())) {
                    Ok(v) => StoreReply::Version {
                        version: Box::new(v.clone()),
                    },
                    Err(reply) => *reply,
                }
            }
            StoreOp::History => StoreReply::History {
                versions: self.versions.iter().rev().map(|v| v.meta.clone()).collect(),
            },
            StoreOp::Put {
                if_match,
                config,
                at_ms,
                author,
            } => {
                if if_match.0 != self.current() {
                    return StoreReply::Conflict {
                        current: self.current(),
                    };
                }
                self.append(config, at_ms, author, "put", None)
            }
            StoreOp::Import { config, at_ms } => {
                if self.current() != 0 {
                    return StoreReply::Conflict {
                        current: self.current(),
                    };
                }
                let author = Author {
                    subject: "config-store".into(),
                    issuer: "import".into(),
                };
                match self.append(config, at_ms, author, "import", None) {
                    // Nothing to publish: the config store already holds these bytes.
                    StoreReply::Stored { before, after, .. } => StoreReply::Stored {
                        before,
                        after,
                        publish: Vec::new(),
                        published: true,
                    },
                    other => other,
                }
            }
            StoreOp::Rollback {
                if_match,
                to,
                at_ms,
                author,
            } => {
                if if_match.0 != self.current() {
                    return StoreReply::Conflict {
                        current: self.current(),
                    };
                }
                let config = match self.read_version(to) {
                    Ok(old) => old.config.clone(),
                    Err(reply) => return *reply,
                };
                self.append(config, at_ms, author, "rollback", Some(to))
            }
            StoreOp::MintKey { entry } => self.mint(entry, None),
            StoreOp::ListKeys(page) => self.list_keys(&page),
            StoreOp::GetKey { key_id } => self.get_key(&key_id),
            StoreOp::RetireKey {
                key_id,
                expires_ms,
                replacement,
                owner,
            } => self.retire_key(&key_id, expires_ms, replacement, owner.as_deref()),
        }
    }
}

#[cfg(test)]
mod tests;

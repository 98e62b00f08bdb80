//! A store's versions as its host reads them: every version's description, but only the
//! newest's config, so the object's memory does not grow with its history (a config may be up to
//! 1 MB, and a tenant whose CI pushes on every deploy keeps thousands of versions). An older
//! version's config is read when an operation needs it (`Get` of that version, `Rollback` to
//! it): the store answers [`StoreReply::NeedVersion`], the host reads the row and hands it over.

use std::collections::BTreeSet;

use super::{StoreReply, StoredVersion, TenantStore, VersionMeta};

/// A row name a host may hand [`TenantStore::load`] instead of `v:<n>`: `m:<n>`, holding only
/// that version's description (`StoredVersion::meta`). A Durable Object stores one beside each
/// version it appends, so reading the descriptions does not parse the configs.
pub const VERSION_META_PREFIX: &str = "m:";

/// The row of version `v`'s description.
pub(super) fn meta_row(v: u64) -> String {
    format!("{VERSION_META_PREFIX}{v:020}")
}

impl TenantStore {
    /// Adds the versions of which `load` was handed only a description (those it got no full
    /// row for), and puts all in order.
    pub(super) fn settle_versions(&mut self, metas: Vec<String>) {
        let full: BTreeSet<u64> = self.versions.iter().map(|v| v.meta.version).collect();
        for meta_json in metas {
            let Ok(meta) = serde_json::from_str::<VersionMeta>(&meta_json) else {
                continue;
            };
            if !full.contains(&meta.version) && self.unread.insert(meta.version) {
                self.versions.push(StoredVersion {
                    meta,
                    config: String::new(),
                });
            }
        }
        self.versions.sort_by_key(|v| v.meta.version);
    }

    /// Version `n` with its config, [`StoreReply::NeedVersion`] if it was not read, or
    /// [`StoreReply::NotFound`].
    pub(super) fn read_version(&self, n: u64) -> Result<&StoredVersion, Box<StoreReply>> {
        if self.unread.contains(&n) {
            return Err(Box::new(StoreReply::NeedVersion { version: n }));
        }
        self.versions
            .iter()
            .find(|v| v.meta.version == n)
            .ok_or_else(|| Box::new(StoreReply::NotFound))
    }

    /// Hands over the row of version `n` (`v:<n>`, as stored) that the store asked for. A row
    /// that is gone or cannot be read makes the version unknown (not found), as a bad row is at
    /// load, so the operation that asked is answered rather than asking again.
    pub fn provide_version(&mut self, n: u64, row: Option<&str>) {
        let read = row
            .and_then(|r| serde_json::from_str::<StoredVersion>(r).ok())
            .filter(|v| v.meta.version == n);
        self.unread.remove(&n);
        match read {
            Some(read) => {
                if let Some(slot) = self.versions.iter_mut().find(|v| v.meta.version == n) {
                    *slot = read;
                }
            }
            None => self.versions.retain(|v| v.meta.version != n),
        }
    }

    /// Lets go of an older version's config again (the newest's stays).
    pub fn forget_version(&mut self, n: u64) {
        if n == self.current() {
            return;
        }
        if let Some(slot) = self.versions.iter_mut().find(|v| v.meta.version == n) {
            slot.config = String::new();
            self.unread.insert(n);
        }
    }
}

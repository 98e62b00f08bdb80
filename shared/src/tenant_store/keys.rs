//! A store's keys: a row each (`key/<key id>`), so minting or retiring one writes that key's row
//! whatever the tenant holds; listed in creation order, a page at a time.

use std::cmp::Ordering;
use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::{json, KeyEntry, StoreReply, TenantStore};
use crate::apikey::{record_name, KeyStatus};
use crate::ids::KeyId;

pub const KEY_ROW_PREFIX: &str = "key/";
/// Where every key was kept, in one value, before keys had a row each: read, and replaced by
/// its keys' rows in the next write.
pub const LEGACY_KEYS_ROW: &str = "keys";
/// The most keys one page of a listing holds.
pub const KEY_LIST_MAX: usize = 1000;

/// Which keys a listing asks for: up to `limit` (all if `None`) past the key `after`, in
/// creation order or newest first, only those `created_by` minted if it is set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyListing {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<KeyId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    #[serde(default)]
    pub newest_first: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
}

/// Creation order: by creation time, then id, so it is the same however the keys were read.
pub(super) fn order(a: &KeyEntry, b: &KeyEntry) -> Ordering {
    let at = |e: &KeyEntry| e.record.created_ms.unwrap_or(0);
    at(a)
        .cmp(&at(b))
        .then_with(|| a.record.key_id.0.cmp(&b.record.key_id.0))
}

/// Keys read whole (Spin's row), put in creation order.
pub(super) fn in_order<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<KeyEntry>, D::Error> {
    let mut keys = Vec::<KeyEntry>::deserialize(d)?;
    keys.sort_by(order);
    Ok(keys)
}

fn key_row(entry: &KeyEntry) -> (String, String) {
    (
        format!("{KEY_ROW_PREFIX}{}", entry.record.key_id),
        json(entry),
    )
}

impl TenantStore {
    /// Takes the keys of the old single row (`row`, its JSON) that have no row of their own,
    /// and schedules their rows with the next write, and the old row's removal when every entry
    /// in it was read (one this release cannot read keeps the row, for a release that can).
    pub(super) fn adopt_legacy_keys(&mut self, row: &str) {
        let parsed = serde_json::from_str::<Vec<serde_json::Value>>(row);
        let mut all_read = parsed.is_ok();
        let mut known: HashSet<KeyId> = self.keys.iter().map(|k| k.record.key_id.clone()).collect();
        for value in parsed.unwrap_or_default() {
            let Ok(entry) = serde_json::from_value::<KeyEntry>(value) else {
                all_read = false;
                continue;
            };
            // A key's own row is newer than the old row; within the old row the first wins.
            if known.insert(entry.record.key_id.clone()) {
                self.writes.push(key_row(&entry));
                self.keys.push(entry);
            }
        }
        if all_read {
            self.deletes.push(LEGACY_KEYS_ROW.into());
        }
    }

    pub(super) fn list_keys(&self, page: &KeyListing) -> StoreReply {
        let ordered: Box<dyn Iterator<Item = &KeyEntry>> = if page.newest_first {
            Box::new(self.keys.iter().rev())
        } else {
            Box::new(self.keys.iter())
        };
        // A listing of one creator's keys counts and continues from its keys only (another's
        // id as `after` would tell whether that key exists).
        let listed_key = |k: &&KeyEntry| {
            page.created_by
                .as_ref()
                .is_none_or(|s| k.created_by.subject == *s)
        };
        let mut listed = ordered.filter(listed_key);
        if let Some(id) = &page.after {
            // Past `after`, in the listing's order.
            if !listed.by_ref().any(|k| k.record.key_id == *id) {
                return StoreReply::Invalid {
                    message: format!("after names no key of this listing ({id})."),
                };
            }
        }
        let keys = listed
            .by_ref()
            .take(page.limit.unwrap_or(usize::MAX))
            .map(KeyEntry::summary)
            .collect();
        StoreReply::Keys {
            keys,
            has_more: listed.next().is_some(),
        }
    }

    pub(super) fn get_key(&self, key_id: &KeyId) -> StoreReply {
        match self.keys.iter().find(|k| k.record.key_id == *key_id) {
            Some(entry) => StoreReply::Keys {
                keys: vec![entry.summary()],
                has_more: false,
            },
            None => StoreReply::NotFound,
        }
    }

    /// Revokes `key_id` now (`expires_ms: None`) or lets it expire at `expires_ms`, and mints
    /// `replacement` when rotating. `owner`: only if that subject minted it.
    pub(super) fn retire_key(
        &mut self,
        key_id: &KeyId,
        expires_ms: Option<u64>,
        replacement: Option<Box<KeyEntry>>,
        owner: Option<&str>,
    ) -> StoreReply {
        if let Some(taken) = replacement.as_ref().and_then(|new| self.taken(new)) {
            return taken;
        }
        let Some(entry) = self.keys.iter_mut().find(|k| k.record.key_id == *key_id) else {
            return StoreReply::NotFound;
        };
        if owner.is_some_and(|o| o != entry.created_by.subject) {
            return StoreReply::NotOwner;
        }
        if entry.record.status == KeyStatus::Revoked {
            if expires_ms.is_none() && replacement.is_none() {
                // Revoking again publishes the record again (a lost KV write heals).
                return StoreReply::KeyStored {
                    key: entry.summary(),
                    retired: None,
                    publish: vec![(record_name(&entry.record.key_hash), json(&entry.record))],
                    published: false,
                };
            }
            return StoreReply::Invalid {
                message: format!("Key {key_id} is revoked."),
            };
        }
        match expires_ms {
            None => entry.record.status = KeyStatus::Revoked,
            Some(at) => {
                let at = entry.record.expires_ms.map_or(at, |e| e.min(at));
                entry.record.expires_ms = Some(at);
            }
        }
        if let Some(new) = &replacement {
            entry.rotated_to = Some(new.record.key_id.clone());
        }
        let retired = entry.clone();
        self.writes.push(key_row(&retired));
        let publish_old = (record_name(&retired.record.key_hash), json(&retired.record));
        match replacement {
            Some(new) => self.mint(*new, Some((retired, publish_old))),
            None => StoreReply::KeyStored {
                key: retired.summary(),
                retired: None,
                publish: vec![publish_old],
                published: false,
            },
        }
    }

    /// The refusal of `entry` if its id is taken.
    fn taken(&self, entry: &KeyEntry) -> Option<StoreReply> {
        let id = &entry.record.key_id;
        self.keys
            .iter()
            .any(|k| k.record.key_id == *id)
            .then(|| StoreReply::Invalid {
                message: format!("Key id {id} is taken."),
            })
    }

    pub(super) fn mint(
        &mut self,
        entry: KeyEntry,
        retired: Option<(KeyEntry, (String, String))>,
    ) -> StoreReply {
        if let Some(taken) = self.taken(&entry) {
            return taken;
        }
        let mut publish = vec![(record_name(&entry.record.key_hash), json(&entry.record))];
        let summary = entry.summary();
        self.writes.push(key_row(&entry));
        let at = self
            .keys
            .partition_point(|k| order(k, &entry) == Ordering::Less);
        self.keys.insert(at, entry);
        let retired = retired.map(|(old, row)| {
            publish.push(row);
            old.summary()
        });
        StoreReply::KeyStored {
            key: summary,
            retired,
            publish,
            published: false,
        }
    }
}

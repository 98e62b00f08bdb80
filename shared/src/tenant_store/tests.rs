//! The admin store's state machine: versions and If-Match, keys, the publish queue.

use super::*;

fn author(s: &str) -> Author {
    Author {
        subject: s.into(),
        issuer: "https://idp".into(),
    }
}

fn put(store: &mut TenantStore, if_match: u64, config: &str) -> StoreReply {
    store.apply(StoreOp::Put {
        if_match: IfMatch(if_match),
        config: config.into(),
        at_ms: 1,
        author: author("alice"),
    })
}

fn key(id: &str, by: &str) -> KeyEntry {
    KeyEntry {
        record: KeyRecord {
            schema_version: 1,
            key_id: KeyId(id.into()),
            tenant_id: TenantId("acme".into()),
            status: KeyStatus::Active,
            scopes: vec![Scope::Chat],
            tags: vec![],
            key_hash: format!("hash-{id}"),
            label: None,
            created_ms: Some(1),
            expires_ms: None,
        },
        created_by: author(by),
        rotated_to: None,
    }
}

/// Stores what `store` wrote since the last call in `rows` (as the object's storage does: a
/// later row of a name replaces the earlier one) and reads the store back from them.
fn reload(store: &mut TenantStore, rows: &mut Vec<(String, String)>) -> TenantStore {
    let writes = store.take_writes();
    rows.extend(writes.puts);
    rows.retain(|(k, _)| !writes.deletes.contains(k));
    let mut map = std::collections::BTreeMap::new();
    for (k, v) in rows.iter() {
        map.insert(k.clone(), v.clone());
    }
    *rows = map.clone().into_iter().collect();
    TenantStore::load(TenantId("acme".into()), map)
}

fn list_all() -> StoreOp {
    StoreOp::ListKeys(KeyListing::default())
}

#[test]
fn writes_need_the_current_version_and_keep_every_version() {
    let mut s = TenantStore::load(TenantId("acme".into()), Vec::new());
    assert_eq!(put(&mut s, 1, "{}"), StoreReply::Conflict { current: 0 });
    let StoreReply::Stored {
        before,
        after,
        publish,
        published: false,
    } = put(&mut s, 0, "{\"a\":1}")
    else {
        panic!("stored")
    };
    assert_eq!((before, after.meta.version), (0, 1));
    assert_eq!(
        publish,
        [("tenant:acme".to_string(), "{\"a\":1}".to_string())]
    );
    // Two editors both read version 1; the second write loses.
    assert!(matches!(
        put(&mut s, 1, "{\"a\":2}"),
        StoreReply::Stored { .. }
    ));
    assert_eq!(
        put(&mut s, 1, "{\"a\":3}"),
        StoreReply::Conflict { current: 2 }
    );
    let StoreReply::History { versions } = s.apply(StoreOp::History) else {
        panic!()
    };
    assert_eq!(
        versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        [2, 1]
    );
}

#[test]
fn rollback_restores_the_exact_bytes_as_a_new_version() {
    let mut s = TenantStore::load(TenantId("acme".into()), Vec::new());
    let original = "{ \"a\" : 1,\n  \"b\": [1, 2] }\n";
    put(&mut s, 0, original);
    put(&mut s, 1, "{\"a\":2}");
    let reply = s.apply(StoreOp::Rollback {
        if_match: IfMatch(2),
        to: 1,
        at_ms: 9,
        author: author("bob"),
    });
    let StoreReply::Stored { after, .. } = reply else {
        panic!("stored")
    };
    assert_eq!(after.meta.version, 3);
    assert_eq!(after.config, original);
    assert_eq!(after.meta.restored, Some(1));
    assert_eq!(after.meta.sha256, content_sha256(original.as_bytes()));
    assert_eq!(
        s.apply(StoreOp::Rollback {
            if_match: IfMatch(3),
            to: 7,
            at_ms: 9,
            author: author("bob")
        }),
        StoreReply::NotFound
    );
}

mod keys;
mod versions;

#[test]
fn the_store_survives_a_reload() {
    let mut rows = Vec::new();
    let mut s = TenantStore::load(TenantId("acme".into()), Vec::new());
    put(&mut s, 0, "{\"a\":1}");
    s.apply(StoreOp::MintKey {
        entry: key("k_1", "dev"),
    });
    let mut again = reload(&mut s, &mut rows);
    assert_eq!(again.current(), 1);
    assert!(matches!(
        put(&mut again, 1, "{}"),
        StoreReply::Stored { .. }
    ));
    let StoreReply::Keys { keys, .. } = again.apply(list_all()) else {
        panic!()
    };
    assert_eq!(keys.len(), 1);
}

#[test]
fn import_only_into_an_empty_store() {
    let mut s = TenantStore::load(TenantId("acme".into()), Vec::new());
    let StoreReply::Stored { publish, after, .. } = s.apply(StoreOp::Import {
        config: "{}".into(),
        at_ms: 1,
    }) else {
        panic!()
    };
    assert!(publish.is_empty());
    assert_eq!(after.meta.operation, "import");
    assert_eq!(
        s.apply(StoreOp::Import {
            config: "{}".into(),
            at_ms: 1
        }),
        StoreReply::Conflict { current: 1 }
    );
}

#[test]
fn keys_revoke_rotate_and_ownership() {
    let mut s = TenantStore::load(TenantId("acme".into()), Vec::new());
    s.apply(StoreOp::MintKey {
        entry: key("k_1", "dev"),
    });
    assert!(matches!(
        s.apply(StoreOp::MintKey {
            entry: key("k_1", "dev")
        }),
        StoreReply::Invalid { .. }
    ));
    // Another developer may not touch it.
    let retire = |id: &str, owner: Option<&str>, expires: Option<u64>, new: Option<KeyEntry>| {
        StoreOp::RetireKey {
            key_id: KeyId(id.into()),
            expires_ms: expires,
            replacement: new.map(Box::new),
            owner: owner.map(String::from),
        }
    };
    assert_eq!(
        s.apply(retire("k_1", Some("other"), None, None)),
        StoreReply::NotOwner
    );
    // Rotation: the old key expires later, the new one is published with it.
    let StoreReply::KeyStored {
        key: new,
        retired,
        publish,
        ..
    } = s.apply(retire(
        "k_1",
        Some("dev"),
        Some(5_000),
        Some(key("k_2", "dev")),
    ))
    else {
        panic!()
    };
    assert_eq!(new.key_id.as_str(), "k_2");
    let retired = retired.expect("old key");
    assert_eq!(retired.expires_ms, Some(5_000));
    assert_eq!(retired.status, KeyStatus::Active);
    assert_eq!(publish.len(), 2);
    assert!(publish
        .iter()
        .any(|(k, v)| k == "key:hash-k_1" && v.contains("\"expires_ms\":5000")));
    // Revocation.
    let StoreReply::KeyStored {
        key: revoked,
        publish,
        ..
    } = s.apply(retire("k_2", None, None, None))
    else {
        panic!()
    };
    assert_eq!(revoked.status, KeyStatus::Revoked);
    assert!(publish[0].1.contains("\"revoked\""));
    // Revoking again is idempotent (and publishes again); rotating a revoked key is refused.
    assert!(matches!(
        s.apply(retire("k_2", None, None, None)),
        StoreReply::KeyStored { .. }
    ));
    assert!(matches!(
        s.apply(retire("k_2", None, Some(1), Some(key("k_3", "dev")))),
        StoreReply::Invalid { .. }
    ));
    assert_eq!(
        s.apply(retire("k_9", None, None, None)),
        StoreReply::NotFound
    );
    // Listing never shows a hash.
    let StoreReply::Keys { keys, .. } = s.apply(list_all()) else {
        panic!()
    };
    assert!(!serde_json::to_string(&keys)
        .expect("json")
        .contains("hash-"));
}

#[test]
fn a_change_is_queued_with_itself_until_the_host_has_written_it() {
    let mut s = TenantStore::load(TenantId("acme".into()), Vec::new());
    let mut rows = Vec::new();
    put(&mut s, 0, "{\"a\":1}");
    let StoreReply::KeyStored { publish, .. } = s.apply(StoreOp::MintKey {
        entry: key("k1", "alice"),
    }) else {
        panic!("minted")
    };
    // Both changes' values are queued, and the queue is among the rows to store with them.
    let queued = s.unpublished().entries().to_vec();
    assert_eq!(
        (queued[0].0.as_str(), queued[0].1.as_str()),
        ("tenant:acme", "{\"a\":1}")
    );
    assert_eq!((&queued[1].0, &queued[1].1), (&publish[0].0, &publish[0].1));
    let mut reloaded = reload(&mut s, &mut rows);
    assert_eq!(reloaded.unpublished().entries(), queued.as_slice());
    // Only the config reached the config store: the key record stays queued, in the rows too.
    reloaded.published(&queued[..1], 0);
    assert_eq!(reloaded.unpublished().entries(), &queued[1..]);
    let again = reload(&mut reloaded, &mut rows);
    assert_eq!(again.unpublished().entries(), &queued[1..]);
    // A reply is published once the queue holds none of its values.
    let mut reply = StoreReply::KeyStored {
        key: key("k1", "alice").summary(),
        retired: None,
        publish: publish.clone(),
        published: false,
    };
    reply.set_published(again.unpublished());
    assert!(matches!(
        reply,
        StoreReply::KeyStored {
            published: false,
            ..
        }
    ));
    reply.set_published(&Unpublished::default());
    assert!(matches!(
        reply,
        StoreReply::KeyStored {
            published: true,
            ..
        }
    ));
}

#[test]
fn an_older_value_written_last_is_written_again_with_the_current_one() {
    // Two hosts share the store: one publishes v1 and is slow; meanwhile v2 is stored,
    // published and unqueued by the other. v1 lands last in the config store.
    let mut s = TenantStore::load(TenantId("acme".into()), Vec::new());
    put(&mut s, 0, "v1");
    let v1 = s.unpublished().entries().to_vec();
    put(&mut s, 1, "v2");
    let v2 = s.unpublished().entries().to_vec();
    s.published(&v2, 0);
    assert!(s.unpublished().is_empty());
    s.take_writes();
    s.published(&v1, 0);
    let again = s.unpublished().entries().to_vec();
    assert_eq!((again.len(), again[0].1.as_str()), (1, "v2"));
    assert_eq!(
        s.take_writes(),
        StoreWrites {
            puts: vec![s.unpublished().row()],
            deletes: vec![]
        }
    );
    // Writing the current value as queued again leaves nothing to do.
    s.published(&again, 0);
    assert!(s.unpublished().is_empty());
}

fn revoke(id: &str) -> StoreOp {
    StoreOp::RetireKey {
        key_id: KeyId(id.into()),
        expires_ms: None,
        replacement: None,
        owner: None,
    }
}

#[test]
fn a_revocation_survives_its_own_unqueueing_after_an_older_record_landed_last() {
    // A key minted while KV was down; its record (active) is queued. Host A reads the
    // queue to publish it and is slow. Host B revokes the key and writes the revoked
    // record, and then A's active record lands: KV holds `active`. A's value is no longer
    // current, so A's unqueueing queues the revoked record again; B's unqueues what B read.
    // In either order the revoked record must stay queued, or the key keeps working.
    for a_first in [true, false] {
        let mut s = TenantStore::load(TenantId("acme".into()), Vec::new());
        s.apply(StoreOp::MintKey {
            entry: key("k1", "alice"),
        });
        let read_by_a = s.unpublished().entries().to_vec();
        s.apply(revoke("k1"));
        let read_by_b = s.unpublished().entries().to_vec();
        assert!(read_by_b[0].1.contains("\"revoked\""));
        if a_first {
            s.published(&read_by_a, 0);
            s.published(&read_by_b, 0);
        } else {
            s.published(&read_by_b, 0);
            s.published(&read_by_a, 0);
        }
        let left = s.unpublished().entries();
        assert_eq!(left.len(), 1, "a first: {a_first}, {left:?}");
        assert!(left[0].1.contains("\"revoked\""));
    }
}

#[test]
fn a_store_row_written_before_the_queue_reads_back_with_an_empty_one() {
    let whole = r#"{"tenant":"acme","versions":[],"keys":[]}"#;
    let s: TenantStore = serde_json::from_str(whole).expect("old row");
    assert!(s.unpublished().is_empty());
    // An empty queue adds nothing to the row (older versions read it unchanged).
    assert_eq!(serde_json::to_string(&s).expect("json"), whole);
}

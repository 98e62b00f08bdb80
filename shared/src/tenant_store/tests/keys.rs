//! Keys as rows of their own: what a change writes, the old single row read and replaced, and
//! listing in creation order a page at a time.

use super::*;

fn key_at(id: &str, by: &str, created_ms: u64) -> KeyEntry {
    let mut entry = key(id, by);
    entry.record.created_ms = Some(created_ms);
    entry
}

fn mint(s: &mut TenantStore, entry: KeyEntry) {
    assert!(matches!(
        s.apply(StoreOp::MintKey { entry }),
        StoreReply::KeyStored { .. }
    ));
}

/// A page in creation order.
fn page(
    s: &mut TenantStore,
    after: Option<&str>,
    limit: usize,
    by: Option<&str>,
) -> (Vec<String>, bool) {
    listing(s, after, limit, by, false)
}

fn listing(
    s: &mut TenantStore,
    after: Option<&str>,
    limit: usize,
    by: Option<&str>,
    newest_first: bool,
) -> (Vec<String>, bool) {
    let StoreReply::Keys { keys, has_more } = s.apply(StoreOp::ListKeys(KeyListing {
        after: after.map(|a| KeyId(a.into())),
        limit: Some(limit),
        newest_first,
        created_by: by.map(String::from),
    })) else {
        panic!("a page")
    };
    (keys.into_iter().map(|k| k.key_id.0).collect(), has_more)
}

fn names(rows: &[(String, String)]) -> Vec<&str> {
    rows.iter().map(|(k, _)| k.as_str()).collect()
}

fn stored(rows: &[(String, String)], name: &str) -> KeyEntry {
    let (_, v) = rows.iter().find(|(k, _)| k == name).expect(name);
    serde_json::from_str(v).expect("a key entry")
}

#[test]
fn a_key_change_writes_that_key_s_row_whatever_the_store_holds() {
    let mut s = TenantStore::load(TenantId("acme".into()), Vec::new());
    mint(&mut s, key_at("k_first", "alice", 1));
    let first = s.take_writes();
    assert_eq!(names(&first.puts), ["key/k_first", UNPUBLISHED_ROW]);
    assert_eq!(
        stored(&first.puts, "key/k_first"),
        key_at("k_first", "alice", 1)
    );
    for i in 0..2_000 {
        mint(&mut s, key_at(&format!("k_{i:05}"), "alice", 10 + i));
        s.take_writes();
        // What KV holds: the queue empties, so its row stays small too.
        let queued = s.unpublished().entries().to_vec();
        s.published(&queued, 0);
        s.take_writes();
    }
    mint(&mut s, key_at("k_last", "alice", 9_999));
    let last = s.take_writes();
    assert_eq!(names(&last.puts), ["key/k_last", UNPUBLISHED_ROW]);
    let bytes = |w: &StoreWrites| w.puts.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
    // The 2,002nd key costs what the first did (give or take the ids' and queue's lengths).
    assert!(
        bytes(&last) < bytes(&first) + 64,
        "{} vs {}",
        bytes(&last),
        bytes(&first)
    );

    // Rotating writes the old key's row (its expiry, its successor) and the new key's row.
    let rotate = StoreOp::RetireKey {
        key_id: KeyId("k_first".into()),
        expires_ms: Some(50_000),
        replacement: Some(Box::new(key_at("k_next", "alice", 10_000))),
        owner: None,
    };
    assert!(matches!(s.apply(rotate), StoreReply::KeyStored { .. }));
    let rotated = s.take_writes();
    assert_eq!(
        names(&rotated.puts),
        ["key/k_first", "key/k_next", UNPUBLISHED_ROW]
    );
    let old = stored(&rotated.puts, "key/k_first");
    assert_eq!(old.record.expires_ms, Some(50_000));
    assert_eq!(old.rotated_to, Some(KeyId("k_next".into())));
    // Revoking writes one row; nothing is ever deleted.
    s.apply(super::revoke("k_00007"));
    let revoked = s.take_writes();
    assert_eq!(names(&revoked.puts), ["key/k_00007", UNPUBLISHED_ROW]);
    assert_eq!(
        stored(&revoked.puts, "key/k_00007").record.status,
        KeyStatus::Revoked
    );
    assert!(revoked.deletes.is_empty());
}

#[test]
fn a_replacement_whose_id_is_taken_leaves_the_old_key_as_it_was() {
    let mut s = TenantStore::load(TenantId("acme".into()), Vec::new());
    mint(&mut s, key_at("k_a", "alice", 1));
    mint(&mut s, key_at("k_b", "alice", 2));
    s.take_writes();
    let rotate = StoreOp::RetireKey {
        key_id: KeyId("k_a".into()),
        expires_ms: Some(5),
        replacement: Some(Box::new(key_at("k_b", "alice", 3))),
        owner: None,
    };
    assert!(matches!(s.apply(rotate), StoreReply::Invalid { .. }));
    assert_eq!(s.take_writes(), StoreWrites::default());
    let StoreReply::Keys { keys, .. } = s.apply(StoreOp::GetKey {
        key_id: KeyId("k_a".into()),
    }) else {
        panic!("found")
    };
    assert_eq!((keys[0].expires_ms, &keys[0].rotated_to), (None, &None));
}

#[test]
fn keys_of_the_old_single_row_move_to_rows_of_their_own_with_the_next_write() {
    // A store as an earlier release left it: every key in the `keys` row.
    let legacy = vec![
        key_at("k_old1", "alice", 5),
        key_at("k_old2", "bob", 3),
        key_at("k_both", "alice", 7),
    ];
    let mut newer = key_at("k_both", "alice", 7);
    newer.record.status = KeyStatus::Revoked;
    let mut rows = vec![
        (
            LEGACY_KEYS_ROW.to_string(),
            serde_json::to_string(&legacy).expect("json"),
        ),
        // A key with its own row too: that row is the newer.
        (
            "key/k_both".to_string(),
            serde_json::to_string(&newer).expect("json"),
        ),
    ];
    let mut s = TenantStore::load(TenantId("acme".into()), rows.clone());
    assert_eq!(
        page(&mut s, None, 10, None),
        (
            vec!["k_old2".into(), "k_old1".into(), "k_both".into()],
            false
        )
    );
    let mut again = reload(&mut s, &mut rows);
    assert_eq!(names(&rows), ["key/k_both", "key/k_old1", "key/k_old2"]);
    assert_eq!(stored(&rows, "key/k_old2"), key_at("k_old2", "bob", 3));
    assert_eq!(
        stored(&rows, "key/k_both").record.status,
        KeyStatus::Revoked
    );
    // Read back from its own rows: the same keys, and nothing more to write.
    assert_eq!(again.take_writes(), StoreWrites::default());
    assert_eq!(
        page(&mut again, None, 10, None).0,
        ["k_old2", "k_old1", "k_both"]
    );
    let StoreReply::Keys { keys, .. } = again.apply(StoreOp::GetKey {
        key_id: KeyId("k_both".into()),
    }) else {
        panic!("found")
    };
    assert_eq!(keys[0].status, KeyStatus::Revoked);
}

#[test]
fn keys_list_in_creation_order_a_page_at_a_time_before_and_after_a_reload() {
    let mut s = TenantStore::load(TenantId("acme".into()), Vec::new());
    // Minted out of id order; two in one millisecond (id order between them).
    mint(&mut s, key_at("k_b", "alice", 20));
    mint(&mut s, key_at("k_c", "bob", 10));
    mint(&mut s, key_at("k_a", "alice", 20));
    mint(&mut s, key_at("k_d", "bob", 30));
    mint(&mut s, key_at("k_e", "alice", 40));
    let mut rows = Vec::new();
    let mut again = reload(&mut s, &mut rows);
    for store in [&mut s, &mut again] {
        assert_eq!(
            page(store, None, 2, None),
            (vec!["k_c".into(), "k_a".into()], true)
        );
        assert_eq!(
            page(store, Some("k_a"), 2, None),
            (vec!["k_b".into(), "k_d".into()], true)
        );
        assert_eq!(
            page(store, Some("k_d"), 2, None),
            (vec!["k_e".into()], false)
        );
        assert_eq!(page(store, Some("k_e"), 2, None), (vec![], false));
        // A page of exactly what is left has nothing more.
        assert_eq!(
            page(store, Some("k_b"), 2, None),
            (vec!["k_d".into(), "k_e".into()], false)
        );
        // One creator's keys: filtered before the page is cut, so its pages are full.
        assert_eq!(
            page(store, None, 2, Some("alice")),
            (vec!["k_a".into(), "k_b".into()], true)
        );
        assert_eq!(
            page(store, Some("k_b"), 2, Some("alice")),
            (vec!["k_e".into()], false)
        );
        // Newest first: the same order reversed, `after` counting in it.
        assert_eq!(
            listing(store, None, 2, None, true),
            (vec!["k_e".into(), "k_d".into()], true)
        );
        assert_eq!(
            listing(store, Some("k_d"), 2, None, true),
            (vec!["k_b".into(), "k_a".into()], true)
        );
        assert_eq!(
            listing(store, Some("k_a"), 2, None, true),
            (vec!["k_c".into()], false)
        );
        assert_eq!(
            listing(store, Some("k_d"), 5, Some("bob"), true),
            (vec!["k_c".into()], false)
        );
        assert!(matches!(
            store.apply(StoreOp::ListKeys(KeyListing {
                after: Some(KeyId("k_zz".into())),
                ..KeyListing::default()
            })),
            StoreReply::Invalid { .. }
        ));
        assert_eq!(
            store.apply(StoreOp::GetKey {
                key_id: KeyId("k_zz".into())
            }),
            StoreReply::NotFound
        );
    }
}

#[test]
fn a_whole_store_read_back_has_its_keys_in_creation_order() {
    // Spin's row as an earlier release wrote it: keys as appended, two in one millisecond in
    // the order they came, not by id.
    let keys = vec![
        key_at("k_b", "alice", 20),
        key_at("k_a", "alice", 20),
        key_at("k_c", "bob", 30),
    ];
    let row = serde_json::json!({"tenant": "acme", "versions": [], "keys": keys}).to_string();
    let mut s: TenantStore = serde_json::from_str(&row).expect("a stored row");
    assert_eq!(page(&mut s, None, 10, None).0, ["k_a", "k_b", "k_c"]);
    // A key minted later goes after them, and paging past `k_b` finds it.
    mint(&mut s, key_at("k_0", "bob", 40));
    assert_eq!(page(&mut s, Some("k_b"), 10, None).0, ["k_c", "k_0"]);
}

#[test]
fn an_old_row_with_an_entry_this_release_cannot_read_is_kept() {
    let good = serde_json::to_value(key_at("k_good", "alice", 1)).expect("json");
    let mut odd = serde_json::to_value(key_at("k_odd", "alice", 2)).expect("json");
    odd["record"]["scopes"] = serde_json::json!(["teleport"]);
    // Two copies of one id: the first is the one adopted (and the only row written).
    let mut dup = serde_json::to_value(key_at("k_good", "bob", 3)).expect("json");
    dup["record"]["label"] = serde_json::json!("second copy");
    let row = serde_json::json!([good, odd, dup]).to_string();
    let mut s = TenantStore::load(
        TenantId("acme".into()),
        vec![(LEGACY_KEYS_ROW.to_string(), row)],
    );
    assert_eq!(page(&mut s, None, 10, None).0, ["k_good"]);
    let writes = s.take_writes();
    assert_eq!(names(&writes.puts), ["key/k_good"]);
    assert_eq!(
        stored(&writes.puts, "key/k_good").created_by.subject,
        "alice"
    );
    // The old row stays for a release that reads every entry; the readable key has its row.
    assert!(writes.deletes.is_empty());
    // A row that is not a list at all is kept too.
    let mut s = TenantStore::load(
        TenantId("acme".into()),
        vec![(LEGACY_KEYS_ROW.to_string(), "{".into())],
    );
    assert_eq!(s.take_writes(), StoreWrites::default());
    // An empty list is read whole: the row goes.
    let mut s = TenantStore::load(
        TenantId("acme".into()),
        vec![(LEGACY_KEYS_ROW.to_string(), "[]".into())],
    );
    assert_eq!(s.take_writes().deletes, [LEGACY_KEYS_ROW]);
}

#[test]
fn a_listing_of_one_creator_s_keys_continues_only_from_one_of_them() {
    let mut s = TenantStore::load(TenantId("acme".into()), Vec::new());
    mint(&mut s, key_at("k_a", "alice", 1));
    mint(&mut s, key_at("k_b", "bob", 2));
    mint(&mut s, key_at("k_c", "alice", 3));
    // Bob's key as `after` in Alice's listing is refused as if it did not exist.
    let refused = s.apply(StoreOp::ListKeys(KeyListing {
        after: Some(KeyId("k_b".into())),
        created_by: Some("alice".into()),
        ..KeyListing::default()
    }));
    let unknown = s.apply(StoreOp::ListKeys(KeyListing {
        after: Some(KeyId("k_zz".into())),
        created_by: Some("alice".into()),
        ..KeyListing::default()
    }));
    let message = |r: StoreReply| match r {
        StoreReply::Invalid { message } => message.replace("k_b", "k_zz"),
        other => panic!("{other:?}"),
    };
    assert_eq!(message(refused), message(unknown));
    assert_eq!(page(&mut s, Some("k_a"), 10, Some("alice")).0, ["k_c"]);
}

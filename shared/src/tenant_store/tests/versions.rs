//! A store read with only its newest version's config: older ones are asked for when an
//! operation needs them, and let go again.

use super::*;

/// The rows a Workers host hands `load` (`adminRows` in edge/cloudflare/js/objects.js): every row
/// but the versions', which include each version's stored description, and the newest version
/// whole.
fn as_the_object_reads_them(rows: &[(String, String)]) -> Vec<(String, String)> {
    let newest = rows
        .iter()
        .filter(|(k, _)| k.starts_with(VERSION_PREFIX))
        .map(|(k, _)| k.clone())
        .max();
    rows.iter()
        .filter(|(k, _)| !k.starts_with(VERSION_PREFIX) || Some(k) == newest.as_ref())
        .cloned()
        .collect()
}

fn row_of(rows: &[(String, String)], version: u64) -> String {
    let name = version_row(version);
    rows.iter()
        .find(|(k, _)| *k == name)
        .expect("row")
        .1
        .clone()
}

#[test]
fn older_configs_are_read_when_asked_for_and_let_go_again() {
    let mut s = TenantStore::load(TenantId("acme".into()), Vec::new());
    let v1 = "{ \"first\": 1 }\n";
    put(&mut s, 0, v1);
    put(&mut s, 1, "{\"second\":2}");
    put(&mut s, 2, "{\"third\":3}");
    let mut rows = Vec::new();
    reload(&mut s, &mut rows);
    // Each version's description has a row of its own beside it.
    let described: Vec<&str> = rows
        .iter()
        .filter(|(k, _)| k.starts_with(VERSION_META_PREFIX))
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(
        described,
        [
            "m:00000000000000000001",
            "m:00000000000000000002",
            "m:00000000000000000003"
        ]
    );
    let mut s = TenantStore::load(TenantId("acme".into()), as_the_object_reads_them(&rows));

    // Descriptions of all, the newest whole, without reading anything more.
    let StoreReply::History { versions } = s.apply(StoreOp::History) else {
        panic!("history")
    };
    assert_eq!(
        versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        [3, 2, 1]
    );
    let StoreReply::Version { version } = s.apply(StoreOp::Get { version: None }) else {
        panic!("the newest")
    };
    assert_eq!(version.config, "{\"third\":3}");

    // An older one: asked for, then exact once handed over, then let go.
    let get1 = StoreOp::Get { version: Some(1) };
    assert_eq!(
        s.apply(get1.clone()),
        StoreReply::NeedVersion { version: 1 }
    );
    s.provide_version(1, Some(&row_of(&rows, 1)));
    let StoreReply::Version { version } = s.apply(get1.clone()) else {
        panic!("version 1")
    };
    assert_eq!((version.config.as_str(), version.meta.version), (v1, 1));
    s.forget_version(1);
    assert_eq!(s.apply(get1), StoreReply::NeedVersion { version: 1 });
    // The newest is never let go; an unknown version is not found, not asked for.
    s.forget_version(3);
    assert!(matches!(
        s.apply(StoreOp::Get { version: Some(3) }),
        StoreReply::Version { .. }
    ));
    assert_eq!(
        s.apply(StoreOp::Get { version: Some(9) }),
        StoreReply::NotFound
    );

    // A rollback to an unread version changes nothing until it is handed over.
    let rollback = StoreOp::Rollback {
        if_match: IfMatch(3),
        to: 1,
        at_ms: 5,
        author: author("bob"),
    };
    s.take_writes();
    assert_eq!(
        s.apply(rollback.clone()),
        StoreReply::NeedVersion { version: 1 }
    );
    assert_eq!(s.take_writes(), StoreWrites::default());
    assert_eq!(s.current(), 3);
    s.provide_version(1, Some(&row_of(&rows, 1)));
    let StoreReply::Stored { after, .. } = s.apply(rollback) else {
        panic!("rolled back")
    };
    assert_eq!((after.meta.version, after.config.as_str()), (4, v1));
    s.forget_version(1);
    // The new newest is the one whose bytes the config store gets.
    assert_eq!(
        s.unpublished().entries().last().map(|e| e.1.as_str()),
        Some(v1)
    );
}

#[test]
fn a_full_row_wins_over_a_description_of_the_same_version() {
    let mut s = TenantStore::load(TenantId("acme".into()), Vec::new());
    put(&mut s, 0, "{\"a\":1}");
    put(&mut s, 1, "{\"a\":2}");
    let mut rows = Vec::new();
    reload(&mut s, &mut rows);
    let mut read = as_the_object_reads_them(&rows);
    read.push((version_row(1), row_of(&rows, 1)));
    let mut s = TenantStore::load(TenantId("acme".into()), read);
    let StoreReply::Version { version } = s.apply(StoreOp::Get { version: Some(1) }) else {
        panic!("version 1 was read whole")
    };
    assert_eq!(version.config, "{\"a\":1}");
    let StoreReply::History { versions } = s.apply(StoreOp::History) else {
        panic!("history")
    };
    assert_eq!(versions.len(), 2);
}

#[test]
fn a_version_whose_row_is_gone_or_unreadable_is_not_found() {
    let mut s = TenantStore::load(TenantId("acme".into()), Vec::new());
    put(&mut s, 0, "{\"a\":1}");
    put(&mut s, 1, "{\"a\":2}");
    put(&mut s, 2, "{\"a\":3}");
    let mut rows = Vec::new();
    reload(&mut s, &mut rows);
    let mut s = TenantStore::load(TenantId("acme".into()), as_the_object_reads_them(&rows));
    let get = |n| StoreOp::Get { version: Some(n) };
    assert_eq!(s.apply(get(1)), StoreReply::NeedVersion { version: 1 });
    s.provide_version(1, Some("not json"));
    assert_eq!(s.apply(get(1)), StoreReply::NotFound);
    // A row of another version is not this one's either.
    assert_eq!(s.apply(get(2)), StoreReply::NeedVersion { version: 2 });
    s.provide_version(2, Some(&row_of(&rows, 3)));
    assert_eq!(s.apply(get(2)), StoreReply::NotFound);
    // The newest is untouched.
    assert!(matches!(s.apply(get(3)), StoreReply::Version { .. }));
}

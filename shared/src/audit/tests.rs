//! Sequencer behaviour: sequencing, shipping decisions, crash/retry idempotence, persistence;
//! and the verifier's exact reports for a few hand-made faults.

use std::collections::BTreeMap;

use super::test_support::{event, keys};
use super::verify::{verify, ProblemKind, VerifyOptions};
use super::*;

const T0: u64 = 1_700_000_000_000;

fn policy() -> ShipPolicy {
    ShipPolicy {
        max_records: 3,
        max_age_ms: 1_000,
        heartbeat_ms: 10_000,
    }
}

/// Ships everything due at `now`, as the Durable Object's alarm would; returns the objects.
fn flush(seq: &mut Sequencer, now: u64, store: &mut BTreeMap<String, Vec<u8>>) -> Vec<Shipment> {
    let (ring, _) = keys();
    let mut shipped = Vec::new();
    while let Some(s) = seq.next_shipment(now, &policy(), &ring).expect("ships") {
        for o in s.objects() {
            store.insert(o.key.clone(), o.bytes.clone());
        }
        seq.confirm(s.id).expect("confirms");
        shipped.push(s);
    }
    shipped
}

#[test]
fn sequences_are_gap_free_from_one_and_chained() {
    let mut seq = Sequencer::new("eu", T0).expect("stream");
    let mut prev = GENESIS_HASH.to_string();
    for n in 1..=5 {
        let b = seq.append(&event(n), T0).expect("appends");
        assert_eq!(b.entry.sequence, n);
        assert_eq!(b.entry.prev_hash, prev);
        assert_eq!(
            b.entry.hash,
            entry_hash("eu", n, &prev, &event(n)).expect("hashes")
        );
        prev = b.entry.hash;
    }
    assert_eq!(seq.head().last_sequence, 5);
    assert_eq!(seq.buffered().count(), 5);
    assert!(Sequencer::new("EU/../x", T0).is_err());
}

#[test]
fn first_digest_is_due_at_creation_then_on_the_heartbeat() {
    let (ring, _) = keys();
    let mut seq = Sequencer::new("eu", T0).expect("stream");
    assert_eq!(seq.alarm_at(&policy()), T0);
    let s = seq
        .next_shipment(T0, &policy(), &ring)
        .expect("ok")
        .expect("a genesis heartbeat");
    assert_eq!(
        (s.kind, s.first_sequence, s.last_sequence),
        (DigestKind::Heartbeat, 1, 0)
    );
    assert!(s.batch.is_none());
    assert_eq!(s.digest.key, digest_key("eu", 1));
    seq.confirm(s.id).expect("confirms");
    assert_eq!(seq.alarm_at(&policy()), T0 + 10_000);
    assert_eq!(seq.next_shipment(T0 + 9_999, &policy(), &ring), Ok(None));
    let s = seq
        .next_shipment(T0 + 10_000, &policy(), &ring)
        .expect("ok")
        .expect("heartbeat");
    assert_eq!((s.id, s.kind), (ShipmentId(2), DigestKind::Heartbeat));
}

#[test]
fn batches_ship_by_size_then_by_age() {
    let mut store = BTreeMap::new();
    let mut seq = Sequencer::new("eu", T0).expect("stream");
    flush(&mut seq, T0, &mut store); // the genesis heartbeat
    for n in 1..=7 {
        seq.append(&event(n), T0 + 100).expect("appends");
    }
    // Full: two batches of 3 now; the 7th waits for max_age.
    assert_eq!(seq.alarm_at(&policy()), T0 + 100);
    let shipped = flush(&mut seq, T0 + 100, &mut store);
    let ranges: Vec<_> = shipped
        .iter()
        .map(|s| (s.first_sequence, s.last_sequence))
        .collect();
    assert_eq!(ranges, [(1, 3), (4, 6)]);
    assert!(store.contains_key(&batch_key("eu", 4, 6)));
    assert_eq!(seq.buffered().count(), 1);
    assert_eq!(seq.alarm_at(&policy()), T0 + 1_100);
    assert!(flush(&mut seq, T0 + 1_099, &mut store).is_empty());
    let shipped = flush(&mut seq, T0 + 1_100, &mut store);
    assert_eq!(
        (shipped[0].first_sequence, shipped[0].last_sequence),
        (7, 7)
    );
    assert_eq!(seq.buffered().count(), 0);
    assert_eq!(seq.head().shipped_sequence, 7);

    let (_, public) = keys();
    let report = verify(&store, &public, &VerifyOptions::new(T0 + 1_100, 10_000));
    assert!(report.is_ok(), "{:#?}", report.problems);
    let seqs: Vec<u64> = report.verified().map(|r| r.sequence).collect();
    assert_eq!(seqs, (1..=7).collect::<Vec<_>>());
    assert_eq!(report.streams[0].digests, 4);
}

#[test]
fn an_unconfirmed_shipment_is_reproduced_byte_for_byte_even_after_a_restart() {
    let (ring, _) = keys();
    let mut seq = Sequencer::new("eu", T0).expect("stream");
    for n in 1..=2 {
        seq.append(&event(n), T0).expect("appends");
    }
    let first = seq
        .next_shipment(T0 + 5_000, &policy(), &ring)
        .expect("ok")
        .expect("batch by age");
    // The upload "failed": time passes, more records arrive, the object restarts.
    seq.append(&event(3), T0 + 6_000).expect("appends");
    let again = seq
        .next_shipment(T0 + 60_000, &policy(), &ring)
        .expect("ok")
        .expect("still pending");
    assert_eq!(again, first);

    // Restart from the Durable Object's storage: the head plus each entry under its own key,
    // read back in storage order (which need not be sequence order).
    let mut storage: BTreeMap<String, String> = BTreeMap::new();
    storage.insert(
        HEAD_STORAGE_KEY.into(),
        serde_json::to_string(seq.head()).expect("json"),
    );
    for b in seq.buffered() {
        storage.insert(
            entry_storage_key(b.entry.sequence),
            serde_json::to_string(b).expect("json"),
        );
    }
    let head: SequencerHead =
        serde_json::from_str(&storage[HEAD_STORAGE_KEY]).expect("head parses");
    let mut entries: Vec<Buffered> = storage
        .iter()
        .filter(|(k, _)| k.starts_with("entry:"))
        .map(|(_, v)| serde_json::from_str(v).expect("entry parses"))
        .collect();
    entries.reverse();
    let mut restored = Sequencer::restore(head, entries).expect("consistent");
    let after_restart = restored
        .next_shipment(T0 + 120_000, &policy(), &ring)
        .expect("ok")
        .expect("still pending");
    assert_eq!(after_restart, first);

    // The whole state as one value round-trips too.
    let whole = serde_json::to_string(&seq).expect("json");
    let mut reloaded: Sequencer = serde_json::from_str(&whole).expect("parses");
    assert_eq!(
        reloaded.next_shipment(T0, &policy(), &ring).expect("ok"),
        Some(first.clone())
    );

    // Once confirmed, the next shipment starts after it.
    restored.confirm(first.id).expect("confirms");
    let next = restored
        .next_shipment(T0 + 120_000, &policy(), &ring)
        .expect("ok")
        .expect("the third record");
    assert_eq!(
        (next.id, next.first_sequence, next.last_sequence),
        (ShipmentId(2), 3, 3)
    );
}

#[test]
fn confirm_accepts_only_the_pending_shipment() {
    let (ring, _) = keys();
    let mut seq = Sequencer::new("eu", T0).expect("stream");
    assert!(matches!(
        seq.confirm(ShipmentId(1)),
        Err(TrailError::NotPending { pending: None, .. })
    ));
    let s = seq
        .next_shipment(T0, &policy(), &ring)
        .expect("ok")
        .expect("heartbeat");
    assert!(seq.confirm(ShipmentId(2)).is_err());
    let done = seq.confirm(s.id).expect("confirms");
    assert!(done.removed().is_empty());
    assert!(seq.confirm(s.id).is_err(), "a second confirm is refused");
}

#[test]
fn without_a_valid_key_nothing_ships_and_nothing_changes() {
    let (spec, _) = keys::key_pair(
        "later",
        &[1; 32],
        Validity {
            not_before_ms: T0 + 1,
            not_after_ms: None,
        },
    )
    .expect("key");
    let ring = SigningKeyring::from_specs(&[spec]).expect("ring");
    let mut seq = Sequencer::new("eu", T0).expect("stream");
    let before = seq.clone();
    assert_eq!(
        seq.next_shipment(T0, &policy(), &ring),
        Err(TrailError::NoSigningKey { at_ms: T0 })
    );
    assert_eq!(seq, before);
    let s = seq
        .next_shipment(T0 + 1, &policy(), &ring)
        .expect("ok")
        .expect("heartbeat");
    // The pending digest names its key; a keyring without it cannot re-render it.
    let (other, _) = keys();
    assert_eq!(
        seq.next_shipment(T0 + 2, &policy(), &other),
        Err(TrailError::SigningKeyGone {
            key_id: "later".into()
        })
    );
    assert_eq!(
        seq.next_shipment(T0 + 2, &policy(), &ring).expect("ok"),
        Some(s)
    );
}

#[test]
fn restore_refuses_state_that_does_not_hold_together() {
    let mut seq = Sequencer::new("eu", T0).expect("stream");
    for n in 1..=3 {
        seq.append(&event(n), T0).expect("appends");
    }
    let entries: Vec<Buffered> = seq.buffered().cloned().collect();
    let head = seq.head().clone();
    assert!(Sequencer::restore(head.clone(), entries.clone()).is_ok());
    // A lost entry.
    let mut gap = entries.clone();
    gap.remove(1);
    assert!(matches!(
        Sequencer::restore(head.clone(), gap),
        Err(TrailError::Corrupt(_))
    ));
    // A lost tail.
    assert!(Sequencer::restore(head.clone(), entries[..2].to_vec()).is_err());
    // An entry that does not link.
    let mut forged = entries.clone();
    forged[1].entry.prev_hash = GENESIS_HASH.into();
    assert!(Sequencer::restore(head, forged).is_err());
}

#[test]
fn verifier_pinpoints_a_deleted_record_and_a_stale_tail() {
    let mut store = BTreeMap::new();
    let mut seq = Sequencer::new("eu", T0).expect("stream");
    flush(&mut seq, T0, &mut store);
    for n in 1..=3 {
        seq.append(&event(n), T0).expect("appends");
    }
    flush(&mut seq, T0, &mut store);
    let key = batch_key("eu", 1, 3);
    // Drop line 2 and re-compress: a well-formed gzip that no longer matches its digest.
    let text = batch::gunzip(&store[&key], 1 << 20).expect("gunzip");
    let lines: Vec<&[u8]> = text.split_inclusive(|b| *b == b'\n').collect();
    let edited: Vec<u8> = [lines[0], lines[2]].concat();
    store.insert(key.clone(), batch::gzip(&edited).expect("gzip"));

    let (_, public) = keys();
    let report = verify(&store, &public, &VerifyOptions::new(T0, 10_000));
    let found: Vec<_> = report
        .problems
        .iter()
        .map(|p| (p.kind, p.object.as_deref(), p.line, p.sequence))
        .collect();
    assert!(found.contains(&(
        ProblemKind::BatchHashMismatch,
        Some(key.as_str()),
        None,
        None
    )));
    assert!(found.contains(&(
        ProblemKind::SequenceMismatch,
        Some(key.as_str()),
        Some(2),
        Some(3)
    )));
    assert!(found.contains(&(
        ProblemKind::ChainBroken,
        Some(key.as_str()),
        Some(2),
        Some(3)
    )));
    assert!(found.iter().any(|p| p.0 == ProblemKind::CountMismatch));
    assert_eq!(report.verified().count(), 0);

    // Hours later with no new digest, the tail is stale.
    let (_, public) = keys();
    let later = verify(&store, &public, &VerifyOptions::new(T0 + 3_600_000, 10_000));
    assert!(later
        .problems
        .iter()
        .any(|p| p.kind == ProblemKind::TailStale));
}

#[test]
fn verifier_reports_an_empty_folder_and_stray_objects_and_ignores_other_prefixes() {
    let (_, public) = keys();
    let options = VerifyOptions::new(T0, 10_000);
    let empty = verify(&BTreeMap::new(), &public, &options);
    let kinds: Vec<_> = empty.problems.iter().map(|p| p.kind).collect();
    assert_eq!(kinds, [ProblemKind::NoObjects]);

    let mut store = BTreeMap::new();
    let mut seq = Sequencer::new("eu", T0).expect("stream");
    flush(&mut seq, T0, &mut store);
    store.insert("exports/readme.txt".to_string(), b"not ours".to_vec());
    assert!(verify(&store, &public, &options).is_ok());

    store.insert("audit/eu/notes.txt".to_string(), b"x".to_vec());
    store.insert(digest_key("eu", 0), b"{}".to_vec());
    let report = verify(&store, &public, &options);
    let found: Vec<_> = report
        .problems
        .iter()
        .map(|p| (p.kind, p.object.clone().unwrap_or_default()))
        .collect();
    assert_eq!(
        found,
        [
            (
                ProblemKind::UnexpectedObject,
                "audit/eu/notes.txt".to_string()
            ),
            (ProblemKind::UnexpectedObject, digest_key("eu", 0)),
        ]
    );
}

#[test]
fn entries_buffered_by_another_build_ship_exactly_as_they_were_hashed() {
    // An entry chained by a build whose records had no `route` field, still buffered when a
    // build that knows `route` restores the sequencer: it must ship the bytes that were hashed,
    // not a re-serialization with `"route": null` added.
    let mut seq = Sequencer::new("eu", T0).expect("stream");
    seq.append(&event(1), T0).expect("appends");
    let mut head = seq.head().clone();
    let mut old: Buffered = seq.buffered().next().expect("one").clone();
    let mut record = old.entry.record_value().expect("json");
    assert!(record
        .as_object_mut()
        .expect("object")
        .remove("route")
        .is_some());
    old.entry.hash = entry_hash("eu", 1, GENESIS_HASH, &record).expect("hash");
    old.entry.record_json = serde_json::to_string(&record).expect("json");
    head.last_hash = old.entry.hash.clone();
    let stored = serde_json::to_string(&old).expect("json");

    let restored: Buffered = serde_json::from_str(&stored).expect("parses");
    let mut seq = Sequencer::restore(head, vec![restored]).expect("consistent");
    let mut store = BTreeMap::new();
    flush(&mut seq, T0 + 1_000, &mut store);
    let (_, public) = keys();
    let report = verify(&store, &public, &VerifyOptions::new(T0 + 1_000, 10_000));
    assert!(report.is_ok(), "{:#?}", report.problems);
    assert!(report.records[0].record.get("route").is_none());
}

#[test]
fn stored_rows_restore_the_entries_whichever_version_wrote_them() {
    let mut seq = Sequencer::new("eu", T0).expect("stream");
    for n in 1..=3 {
        seq.append(&event(n), T0 + n).expect("appends");
    }
    let entries: Vec<Buffered> = seq.buffered().cloned().collect();
    // This version's rows: each entry as its batch line.
    let row = Buffered::stored_json(&entries).expect("row");
    let restored: Vec<Buffered> = serde_json::from_str(&row).expect("parses");
    assert_eq!(restored, entries);
    let value: serde_json::Value = serde_json::from_str(&row).expect("json");
    let first_line = String::from_utf8(entries[0].entry.line().expect("line")).expect("utf-8");
    assert_eq!(
        value[0]["entry"],
        serde_json::from_str::<serde_json::Value>(&first_line).expect("json")
    );
    assert_eq!(value[2]["appended_ms"], T0 + 3);
    // Rows of earlier versions (serde's field order, the record as a nested object).
    let earlier = serde_json::to_string(&entries).expect("json");
    assert!(
        earlier.starts_with(r#"[{"appended_ms":"#) && earlier.contains(r#""entry":{"stream":"eu""#)
    );
    let restored: Vec<Buffered> = serde_json::from_str(&earlier).expect("parses");
    assert_eq!(restored, entries);
    let restored_seq = Sequencer::restore(seq.head().clone(), restored).expect("consistent");
    assert_eq!(restored_seq.buffered().count(), 3);
    assert_eq!(Buffered::stored_json(&[]).expect("row"), "[]");
}

#[test]
fn a_stored_row_keeps_its_record_text_and_an_unmarked_row_is_canonicalized() {
    let mut seq = Sequencer::new("eu", T0).expect("stream");
    seq.append(&event(1), T0 + 1).expect("appends");
    let head = seq.head().clone();
    let entries: Vec<Buffered> = seq.buffered().cloned().collect();
    let row = Buffered::stored_json(&entries).expect("row");
    assert!(
        row.starts_with(r#"[{"appended_ms":"#)
            && row.contains(r#","canonical":true,"entry":{"hash":"#)
    );
    assert_eq!(
        serde_json::from_str::<Vec<Buffered>>(&row).expect("parses"),
        entries
    );

    // The same row with its record's text made non-canonical (a space the canonical form does
    // not have). Marked, the text is kept as it is, so the shipped line is not the one that was
    // hashed, and verification says so; unmarked (an earlier version's row), it is canonicalized
    // and ships as it was hashed.
    let spaced = row.replacen(r#""record":{"#, r#""record":{ "#, 1);
    assert_ne!(spaced, row);
    let kept: Vec<Buffered> = serde_json::from_str(&spaced).expect("parses");
    assert!(kept[0].entry.record_json.starts_with("{ \""));
    let unmarked = spaced.replacen(r#","canonical":true"#, "", 1);
    let canonicalized: Vec<Buffered> = serde_json::from_str(&unmarked).expect("parses");
    assert_eq!(canonicalized, entries);

    let (_, public) = keys();
    for (restored, verifies) in [(kept, false), (canonicalized, true)] {
        let mut seq = Sequencer::restore(head.clone(), restored).expect("consistent");
        let mut store = BTreeMap::new();
        flush(&mut seq, T0 + 1_000, &mut store);
        let report = verify(&store, &public, &VerifyOptions::new(T0 + 1_000, 10_000));
        assert_eq!(report.is_ok(), verifies, "{:#?}", report.problems);
        if !verifies {
            assert!(report.problems.iter().any(|p| matches!(
                p.kind,
                ProblemKind::NotCanonical | ProblemKind::HashMismatch
            )));
        }
    }
}

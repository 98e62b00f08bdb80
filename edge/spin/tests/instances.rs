//! Several Spin instances of one region at once: each thread is an instance with its own SQLite
//! connection to the region's database (a file), so statements from different instances
//! interleave as they do on Spin. Budgets and the audit chain must hold across them.

use std::sync::{Arc, Barrier};

use asc_core::audit::{entry_hash, GENESIS_HASH};
use asc_core::audit::{AuditEvent, AuditRecord, Outcome, AUDIT_SCHEMA_VERSION};
use asc_core::budget::{BudgetLine, Mode, Period, ReserveAsk};
use asc_core::ledger::stored::apply_stored;
use asc_core::ledger::{AdmitAsk, CommitAsk, LedgerId, LedgerOp, LedgerReply};
use asc_spin::platform::{Platform, SqlValue};
use asc_spin::sql_ledger::SqlLedgers;
use asc_spin::sql_trail::SqlTrail;

mod support;

use support::DbInstance;

const INSTANCES: usize = 6;
const PER_INSTANCE: usize = 40;

const NOW: u64 = support::DB_NOW;

fn admit(instance: usize, n: usize) -> LedgerOp {
    let mut record = event(instance, n);
    record.record.outcome = Outcome::Partial;
    LedgerOp::Admit(AdmitAsk {
        error_rate: None,
        now_ms: NOW,
        expires_ms: 1_767_225_900_000,
        reserve: Some(reserve(record.record.request_id.clone())),
        record,
    })
}

fn commit(instance: usize, n: usize) -> LedgerOp {
    LedgerOp::Commit(CommitAsk {
        now_ms: NOW,
        record: event(instance, n),
        actual_micros: 10,
        actual_tokens: 1,
        lease: None,
    })
}

fn reserve(request_id: String) -> ReserveAsk {
    ReserveAsk {
        request_id,
        now_ms: NOW,
        amount_micros: 10,
        tokens: 1,
        requests: 1,
        budgets: vec![BudgetLine {
            key: "monthly".into(),
            budget_id: "monthly".into(),
            limit_micros: 1_000,
            period: Period::Monthly,
            mode: Mode::Hard,
            alert_percents: vec![],
        }],
        requests_per_minute: vec![],
        tokens_per_minute: vec![],
        expires_ms: 1_767_225_900_000,
    }
}

fn event(instance: usize, n: usize) -> AuditEvent {
    AuditEvent::from(AuditRecord {
        schema_version: AUDIT_SCHEMA_VERSION,
        request_id: format!("req_{instance}_{n}"),
        timestamp_ms: 1_767_225_600_000,
        region: "eu".into(),
        tenant_id: Some("acme".into()),
        key_id: Some("k_1".into()),
        operation: "chat.completions".into(),
        requested_model: None,
        served_model: None,
        provider: None,
        endpoint_host: None,
        stream: false,
        outcome: Outcome::Ok,
        status: 200,
        error_code: None,
        usage: None,
        latency_ms: 1,
        policy_version: None,
        trace_id: format!("{instance:016x}{n:016x}"),
    })
}

#[test]
fn a_hard_budget_and_the_audit_chain_hold_across_concurrent_instances() {
    let dir = std::env::temp_dir().join(format!("asc-spin-instances-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("asc_state.db");
    let _ = std::fs::remove_file(&path);
    drop(support::open_db(Some(&path)));
    let start = Arc::new(Barrier::new(INSTANCES));
    let threads: Vec<_> = (0..INSTANCES)
        .map(|i| {
            let (path, start) = (path.clone(), start.clone());
            std::thread::spawn(move || {
                let instance = DbInstance::new(support::open_db(Some(&path)));
                let ledger = LedgerId("acme".into());
                start.wait();
                let mut admitted = 0;
                for n in 0..PER_INSTANCE {
                    futures::executor::block_on(async {
                        let ledgers = SqlLedgers(&instance);
                        let reply = apply_stored(&ledgers, &ledger, &admit(i, n))
                            .await
                            .expect("ledger");
                        if matches!(reply, LedgerReply::Admitted { .. }) {
                            admitted += 1;
                            apply_stored(&ledgers, &ledger, &commit(i, n))
                                .await
                                .expect("commit");
                        }
                        // Every instance forwards after each request, racing the others.
                        asc_core::ledger::stored::forward_ledger(
                            &ledgers,
                            &SqlTrail(&instance),
                            &ledger,
                            "audit-eu",
                            instance.now_ms(),
                        )
                        .await
                        .expect("forward");
                    });
                }
                admitted
            })
        })
        .collect();
    let admitted: usize = threads.into_iter().map(|t| t.join().expect("thread")).sum();
    // 1,000 micro-USD at 10 each: exactly 100 of the 240 reservations fit, whoever won the races.
    assert_eq!(admitted, 100);

    let db = support::open_db(Some(&path));
    let batches = support::run_sql(
        &db,
        "SELECT entries FROM asc_audit_batch WHERE stream = 'audit-eu' ORDER BY first_seq",
        &[],
    )
    .expect("entries");
    let entries: Vec<asc_core::audit::Entry> = batches
        .iter()
        .flat_map(|row| {
            serde_json::from_str::<Vec<asc_core::audit::Buffered>>(row[0].as_str().expect("text"))
                .expect("batch")
        })
        .map(|b| b.entry)
        .collect();
    // Admitted requests recorded at their commit, refused ones by the ledger: one each.
    assert_eq!(
        entries.len(),
        INSTANCES * PER_INSTANCE,
        "every record landed once"
    );
    let mut prev = GENESIS_HASH.to_string();
    let mut ids = std::collections::BTreeSet::new();
    for (i, b) in entries.iter().enumerate() {
        assert_eq!(b.sequence, i as u64 + 1, "gap-free");
        assert_eq!(b.prev_hash, prev, "chained");
        let record = b.record_value().expect("json");
        assert_eq!(
            b.hash,
            entry_hash("audit-eu", b.sequence, &prev, &record).expect("hash")
        );
        ids.insert(record["request_id"].as_str().expect("id").to_string());
        prev = b.hash.clone();
    }
    assert_eq!(ids.len(), INSTANCES * PER_INSTANCE, "no record twice");
    let head = support::run_sql(&db, "SELECT head FROM asc_audit_head", &[]).expect("head");
    let head: serde_json::Value =
        serde_json::from_str(head[0][0].as_str().expect("text")).expect("json");
    assert_eq!(head["last_sequence"], INSTANCES * PER_INSTANCE);
    assert_eq!(head["last_hash"], prev);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `app::OVERDUE_LEDGERS` reads the core's stored ledger JSON: it finds a ledger exactly when one
/// of its requests is at or past its expiry, and no longer once the ledger gave up on it.
#[test]
fn the_overdue_query_finds_expired_requests() {
    let p = DbInstance::new(support::open_db(None));
    let id = LedgerId("acme".into());
    let expires = 1_767_225_900_000u64;
    futures::executor::block_on(apply_stored(&SqlLedgers(&p), &id, &admit(0, 1))).expect("admit");
    let overdue = |now: u64| -> Vec<String> {
        futures::executor::block_on(p.sql(asc_spin::app::OVERDUE_LEDGERS, &[now.into()]))
            .expect("query")
            .into_iter()
            .filter_map(|row| row.first().and_then(SqlValue::as_str).map(str::to_string))
            .collect()
    };
    assert!(overdue(expires - 1).is_empty(), "not yet due");
    assert_eq!(overdue(expires), vec!["acme".to_string()]);
    let given_up = futures::executor::block_on(asc_core::ledger::stored::with_ledger(
        &SqlLedgers(&p),
        &id,
        |l| l.expire(expires),
    ))
    .expect("expire");
    assert_eq!(given_up, 1);
    assert!(
        overdue(expires).is_empty(),
        "settled: nothing left to sweep"
    );
}

/// The alert sweep's query finds a ledger exactly when the core says its alerts are due for the
/// sweep (`TenantLedger::alerts_sweep_due_ms`): the query reads the stored JSON, so a renamed
/// field would leave alerts of quiet tenants undelivered.
#[test]
fn the_alert_sweep_query_finds_what_the_ledger_would_sweep() {
    use asc_core::alerts::{AlertEvent, AlertKind};
    use asc_core::ledger::insights::{CLAIM_MS, SWEEP_AFTER_MS};
    use asc_core::ledger::stored::with_ledger;
    use asc_core::ledger::Delivery;
    let p = DbInstance::new(support::open_db(None));
    let id = LedgerId("acme".into());
    let ledgers = SqlLedgers(&p);
    let apply = |op: LedgerOp| futures::executor::block_on(apply_stored(&ledgers, &id, &op));
    let found = |now: u64| -> Vec<String> {
        futures::executor::block_on(p.sql(
            asc_spin::app::SWEEP_DUE_ALERT_LEDGERS,
            &[now.into(), SWEEP_AFTER_MS.into()],
        ))
        .expect("query")
        .into_iter()
        .filter_map(|row| row.first().and_then(SqlValue::as_str).map(str::to_string))
        .collect()
    };
    let due = || {
        futures::executor::block_on(with_ledger(&ledgers, &id, |l| l.alerts_sweep_due_ms()))
            .expect("read")
    };
    apply(admit(0, 1)).expect("admit");
    assert!(found(NOW + 10 * SWEEP_AFTER_MS).is_empty(), "no alerts");
    assert_eq!(due(), None);

    apply(LedgerOp::Raise {
        now_ms: NOW,
        events: vec![AlertEvent {
            id: "circuit.opened:acme:t:1".into(),
            kind: AlertKind::CircuitOpened,
            tenant_id: "acme".into(),
            at_ms: NOW,
            detail: serde_json::json!({"target": "openai/gpt-4o-mini"}),
        }],
    })
    .expect("raise");
    assert_eq!(due(), Some(NOW + SWEEP_AFTER_MS));
    assert!(
        found(NOW + SWEEP_AFTER_MS - 1).is_empty(),
        "requests may still carry it"
    );
    assert_eq!(found(NOW + SWEEP_AFTER_MS), vec!["acme".to_string()]);

    // Claimed (by a request or by the sweep): not again until the claim runs out.
    let claimed = apply(LedgerOp::ClaimAlerts {
        now_ms: NOW + SWEEP_AFTER_MS,
    })
    .expect("claim");
    assert_eq!(claimed.into_alerts().len(), 1);
    let claim_out = NOW + SWEEP_AFTER_MS + CLAIM_MS;
    assert_eq!(due(), Some(claim_out + SWEEP_AFTER_MS));
    assert!(found(claim_out + SWEEP_AFTER_MS - 1).is_empty());
    assert_eq!(found(claim_out + SWEEP_AFTER_MS), vec!["acme".to_string()]);

    apply(LedgerOp::Delivered {
        now_ms: NOW + SWEEP_AFTER_MS + 1,
        results: vec![("circuit.opened:acme:t:1".into(), Delivery::Delivered)],
    })
    .expect("delivered");
    assert_eq!(due(), None);
    assert!(
        found(claim_out + 10 * SWEEP_AFTER_MS).is_empty(),
        "delivered"
    );
}

/// An instance that lost a race on a ledger expects contention on it (and only on it) for a
/// while: its next operations there take the write lock before reading.
#[test]
fn a_lost_race_makes_the_instance_lock_first_on_that_ledger() {
    use asc_core::ledger::stored::LedgerStore;
    let p = DbInstance::new(support::open_db(None));
    let ledgers = SqlLedgers(&p);
    let (busy, quiet) = (LedgerId("busy".into()), LedgerId("quiet".into()));
    assert!(!ledgers.contention_expected(&busy));
    futures::executor::block_on(ledgers.contended(&busy, 1));
    assert!(ledgers.contention_expected(&busy));
    assert!(!ledgers.contention_expected(&quiet));
    // And the locked path stores as the optimistic one does.
    let reply =
        futures::executor::block_on(apply_stored(&ledgers, &busy, &admit(0, 1))).expect("admit");
    assert!(matches!(reply, LedgerReply::Admitted { .. }), "{reply:?}");
    assert!(p.db.is_autocommit(), "the write lock was released");
}

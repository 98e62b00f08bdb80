//! Pacing kept in the database (`asc_spin::pacing`) and the schema created once per database:
//! what lets an instance that Spin starts for one request (or every 128) skip the work the
//! instances before it did.

mod support;

use std::rc::Rc;

use asc_core::ledger::LedgerId;
use asc_core::pipeline::AfterResponse;
use asc_spin::app;
use asc_spin::pacing::{self, Claim, InstancePacing};
use asc_spin::platform::SqlValue;
use support::common::*;
use support::{DbInstance, TestPlatform};

const NOW: u64 = support::DB_NOW;

fn pacing_db() -> Rc<rusqlite::Connection> {
    let db = support::open_db(None);
    for s in pacing::SCHEMA {
        db.execute_batch(s).expect("schema");
    }
    Rc::new(db)
}

fn claim(p: &DbInstance, what: &str, at: u64, every: u64) -> Claim {
    p.now_ms.set(at);
    block_on(pacing::claim(p, what, at, every)).expect("claim")
}

#[test]
fn a_claim_is_won_by_one_instance_per_window() {
    let db = pacing_db();
    let (a, b) = (
        DbInstance::sharing(db.clone(), 0),
        DbInstance::sharing(db, 100),
    );
    assert_eq!(claim(&a, "forward acme", NOW, 200), Claim::Won);
    // Inside the window every other claim (from any instance, or the same one) is told when it
    // ends, and does not move it.
    assert_eq!(
        claim(&b, "forward acme", NOW + 50, 200),
        Claim::HeldUntil(NOW + 200)
    );
    assert_eq!(
        claim(&a, "forward acme", NOW + 199, 200),
        Claim::HeldUntil(NOW + 200)
    );
    // Another name is paced on its own.
    assert_eq!(claim(&b, "forward other", NOW + 50, 200), Claim::Won);
    // From the window's end, the first claim wins the next window and the next one waits.
    assert_eq!(claim(&b, "forward acme", NOW + 200, 200), Claim::Won);
    assert_eq!(
        claim(&a, "forward acme", NOW + 200, 200),
        Claim::HeldUntil(NOW + 400)
    );
    // A clock that went back does not cut a running window short.
    assert_eq!(
        claim(&a, "forward acme", NOW + 10, 200),
        Claim::HeldUntil(NOW + 400)
    );
}

/// A claim set while a clock read ahead (a step back by NTP, a replica whose clock is ahead)
/// holds the others off for at most two windows, not for the whole step.
#[test]
fn a_claim_from_a_clock_that_read_ahead_is_taken_over() {
    let db = pacing_db();
    let (a, b) = (
        DbInstance::sharing(db.clone(), 0),
        DbInstance::sharing(db, 100),
    );
    assert_eq!(claim(&a, "forward acme", NOW + 600_000, 50), Claim::Won);
    assert_eq!(claim(&b, "forward acme", NOW + 1_000, 50), Claim::Won);
    assert_eq!(
        claim(&a, "forward acme", NOW + 1_010, 50),
        Claim::HeldUntil(NOW + 1_050)
    );
}

#[test]
fn instances_with_the_same_clock_reading_do_not_both_win() {
    let db = pacing_db();
    let instances: Vec<DbInstance> = (0..8)
        .map(|i| DbInstance::sharing(db.clone(), i * 20))
        .collect();
    let won = instances
        .iter()
        .filter(|p| claim(p, pacing::DUE_CHECK, NOW, 1_000) == Claim::Won)
        .count();
    assert_eq!(won, 1, "one winner per window, told apart by its token");
}

/// The schema is created by the first instance on a database and recorded in `user_version`;
/// a later instance (a new thread here: `ensure_schema` remembers per instance) reads one pragma
/// and runs nothing else, and a database set up by another schema gets every statement again.
#[test]
fn the_schema_is_created_once_per_database() {
    let dir = std::env::temp_dir().join(format!("asc-spin-schema-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("state.db");
    let _ = std::fs::remove_file(&file);
    let new_instance = |file: std::path::PathBuf| {
        std::thread::spawn(move || {
            let db = rusqlite::Connection::open(&file).expect("db");
            let p = DbInstance::new(db);
            block_on(app::ensure_schema(&p)).expect("schema");
            p.statements.take()
        })
        .join()
        .expect("instance")
    };
    let ran = new_instance(file.clone());
    assert!(ran.len() > 5, "a new database gets the tables: {ran:?}");
    let db = rusqlite::Connection::open(&file).expect("db");
    let version: i64 = db
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version");
    assert_eq!(version, app::schema_version());
    assert_ne!(version, 0, "0 is a new database's");
    for table in [
        "asc_ledger",
        "asc_claims",
        "asc_flush_lease",
        "asc_audit_head",
    ] {
        let n: i64 = db
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [table],
                |r| r.get(0),
            )
            .expect("table");
        assert_eq!(n, 1, "{table}");
    }

    assert_eq!(
        new_instance(file.clone()),
        vec!["PRAGMA user_version".to_string()],
        "the next instance only reads the version"
    );

    // Another build's schema (or a database an older build set up): everything runs again.
    db.execute_batch("PRAGMA user_version = 7").expect("set");
    assert_eq!(new_instance(file.clone()).len(), ran.len());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Two instances of one deployment write the same ledger: the first to finish forwards it, the
/// other keeps it (no forward within the window, however new the instance) and forwards it once
/// the window ends, so no record waits for the scheduler while its instances still serve.
#[test]
fn a_ledger_is_forwarded_once_per_window_across_instances() {
    let fake = Rc::new(FakeHost::new());
    let platform = TestPlatform::new(fake.clone());
    let first = block_on(app::prepare(platform.instance())).expect("deployment");
    let second = block_on(app::prepare(platform.instance())).expect("deployment");
    fake.put_tenant(&demo_tenant());
    let key = fake.mint_key("demo", 1, &all_scopes());
    let auth = format!("Bearer {key}");
    let models = || request("GET", "/v1/models", &[("authorization", &auth)], b"");
    let forwarded = || -> usize {
        platform
            .query("SELECT entries FROM asc_audit_batch")
            .iter()
            .map(|row| {
                row[0]
                    .as_str()
                    .map_or(0, |t| t.matches("\"request_id\"").count())
            })
            .sum()
    };
    let (pace_first, pace_second) = (InstancePacing::default(), InstancePacing::default());

    let handled = block_on(first.gateway.handle(&first.host, models()));
    assert_eq!(handled.reply.status, 200);
    block_on(pacing::after_response(&first, handled.after, &pace_first));
    assert_eq!(forwarded(), 1, "the first instance forwards its record");

    fake.clock_ms.set(fake.clock_ms.get() + 10);
    let handled = block_on(second.gateway.handle(&second.host, models()));
    block_on(pacing::after_response(&second, handled.after, &pace_second));
    assert_eq!(forwarded(), 1, "a new instance within the window does not");
    let ledger: Vec<LedgerId> = pace_second.unforwarded();
    assert_eq!(ledger.len(), 1, "it keeps the ledger for later");

    // The window ends (audit_forward_ms of the local region's deployment): the second
    // instance's next response forwards what it kept.
    fake.clock_ms
        .set(fake.clock_ms.get() + second.deployment.forward_delay_ms);
    block_on(pacing::after_response(
        &second,
        AfterResponse::default(),
        &pace_second,
    ));
    assert_eq!(forwarded(), 2);
    assert!(pace_second.unforwarded().is_empty());
}

/// With an instance per request the instance that lost a forwarding claim is gone with its
/// request, and its ledger with it: the claim marks the ledger owed, and the instance that next
/// wins the due-flush check (serving any tenant) forwards it once its window has ended.
#[test]
fn a_ledger_left_by_a_lost_claim_is_forwarded_with_an_instance_per_request() {
    let fake = Rc::new(FakeHost::new());
    let platform = TestPlatform::new(fake.clone());
    let window = block_on(app::prepare(platform.instance()))
        .expect("deployment")
        .deployment
        .forward_delay_ms;
    fake.put_tenant(&demo_tenant());
    let mut other = demo_tenant();
    other["tenant_id"] = "other".into();
    fake.put_tenant(&other);
    let demo = format!("Bearer {}", fake.mint_key("demo", 1, &all_scopes()));
    let other = format!("Bearer {}", fake.mint_key("other", 2, &all_scopes()));
    let forwarded = |tenant: &str| -> usize {
        platform
            .query("SELECT entries FROM asc_audit_batch")
            .iter()
            .map(|row| {
                row[0].as_str().map_or(0, |t| {
                    t.matches(&format!("\"tenant_id\":\"{tenant}\"")).count()
                })
            })
            .sum()
    };
    // Each request on a new instance: its own `prepare` and its own, empty, pacing.
    let serve = |auth: &str| {
        let instance = block_on(app::prepare(platform.instance())).expect("deployment");
        let handled = block_on(instance.gateway.handle(
            &instance.host,
            request("GET", "/v1/models", &[("authorization", auth)], b""),
        ));
        assert_eq!(handled.reply.status, 200);
        block_on(pacing::after_response(
            &instance,
            handled.after,
            &InstancePacing::default(),
        ));
    };

    serve(&demo);
    assert_eq!(forwarded("demo"), 1);
    fake.advance(10);
    serve(&demo); // loses the claim; its instance ends with the request
    assert_eq!(forwarded("demo"), 1);
    // Only the other tenant is served from now on, a window apart; the due-flush check is won
    // once a second.
    for _ in 0..(2 * pacing::DUE_CHECK_MS / window + 1) {
        fake.advance(window);
        serve(&other);
    }
    assert_eq!(
        forwarded("demo"),
        2,
        "demo's second record reached its stream"
    );
    let owed: Vec<Vec<SqlValue>> =
        platform.query("SELECT what FROM asc_claims WHERE owed = 1 AND what LIKE 'forward %'");
    assert!(owed.is_empty(), "nothing is owed once forwarded: {owed:?}");
}

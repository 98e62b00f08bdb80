//! Leased admission (`limits.admission = "leased"`) through the whole pipeline: many requests
//! of an isolate admitted with one ledger call, budgets exactly as with write-ahead admission,
//! every request's record naming its lease, and the lease's own record reconciling the counts.

mod common;

use asc_core::ledger::LedgerOp;
use asc_core::pipeline::{Handled, ReplyBody};
use asc_core::Gateway;
use common::*;
use serde_json::json;
use std::future::Future;

/// gpt-4o-mini-2024-07-18 in the built-in table; the demo tenant with a hard monthly budget.
fn tenant(limit_micros: u64, admission: &str) -> serde_json::Value {
    let mut t = demo_tenant();
    t["budgets"] = json!([
        {"id": "monthly", "applies_to": "tenant", "limit_usd_micros": limit_micros, "period": "monthly"}
    ]);
    t["limits"] = json!({"admission": admission});
    t
}

fn ask(max_tokens: u64) -> serde_json::Value {
    json!({"model": "gpt-4o-mini", "max_tokens": max_tokens, "messages": [{"role": "user", "content": "Hi"}]})
}

fn admissions(host: &FakeHost) -> (usize, usize) {
    let ops = host.ledger_ops.borrow();
    let leases = ops
        .iter()
        .filter(|(_, op)| matches!(op, LedgerOp::Lease(_)))
        .count();
    let admits = ops
        .iter()
        .filter(|(_, op)| matches!(op, LedgerOp::Admit(_)))
        .count();
    (leases, admits)
}

fn usage(gw: &Gateway, host: &FakeHost, key: &str) -> (u64, u64) {
    let auth = format!("Bearer {key}");
    let (status, _, body) = run(
        gw,
        host,
        request("GET", "/v1/usage", &[("authorization", &auth)], b""),
    );
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
    let b = &v["budgets"][0];
    (
        b["spent_micros"].as_u64().expect("spent"),
        b["reserved_micros"].as_u64().expect("reserved"),
    )
}

/// A fresh isolate's gateway, a leased tenant with a large budget, and a key of it.
fn leased_isolate() -> (FakeHost, String, Gateway) {
    let host = FakeHost::new();
    host.put_tenant(&tenant(1_000_000, "leased"));
    let key = host.mint_key("demo", 1, &all_scopes());
    (host, key, local_gateway())
}

/// The (one) lease's own record once everything was forwarded, and its note.
fn lease_record(host: &FakeHost) -> (asc_core::audit::AuditEvent, asc_core::audit::LeaseNote) {
    host.forward_all();
    let events = host.events.borrow();
    let lease = events
        .iter()
        .find(|e| e.record.operation == "lease")
        .expect("the lease's own record")
        .clone();
    let note = lease.detail.lease.clone().expect("note");
    (lease, note)
}

#[test]
fn one_ledger_call_admits_many_requests_and_the_lease_record_reconciles_them() {
    let (host, key, gw) = leased_isolate();
    // Ten requests of one isolate, their after-response work held back (as under load).
    let mut afters = Vec::new();
    let mut charged = 0;
    for _ in 0..10 {
        host.script(ok_json(completion_json()));
        let Handled { reply, after } = block_on(gw.handle(&host, chat(&key, &ask(1000))));
        assert_eq!(reply.status, 200);
        assert!(matches!(reply.body, ReplyBody::Full(_)));
        assert!(header(&reply.headers, "x-asc-reserved-usd-micros").is_some());
        charged += header(&reply.headers, "x-asc-cost-usd-micros")
            .expect("cost")
            .parse::<u64>()
            .expect("integer");
        afters.push(after);
    }
    assert_eq!(
        admissions(&host),
        (1, 0),
        "one lease, no per-request admission"
    );
    for after in afters {
        let failures = block_on(after.run(&gw, &host));
        assert!(failures.is_empty(), "{failures:?}");
    }
    // Every commit arrived and the lease was closed after its window: nothing stays held.
    assert_eq!(usage(&gw, &host, &key), (charged, 0));
    let (lease, note) = lease_record(&host);
    let events = host.events.borrow();
    assert_eq!(lease.record.outcome, asc_core::audit::Outcome::Ok);
    assert_eq!((note.admitted, note.reported), (Some(10), Some(10)));
    assert_eq!(lease.detail.settled_usd_micros, Some(charged));
    assert_eq!(lease.record.key_id, events[0].record.key_id);
    let chats: Vec<_> = events
        .iter()
        .filter(|e| e.record.operation == "chat.completions")
        .collect();
    assert_eq!(chats.len(), 10);
    assert!(chats
        .iter()
        .all(|e| e.detail.lease.as_ref().is_some_and(|n| n.id == note.id)));
}

/// Requests one after another until the budget refuses: how many were served, what was charged.
fn serve_until_refused(admission: &str, gw: Gateway) -> (u64, u64, (u64, u64)) {
    let host = FakeHost::new();
    host.put_tenant(&tenant(200, admission));
    let key = host.mint_key("demo", 1, &all_scopes());
    let (mut served, mut charged) = (0, 0);
    for _ in 0..100 {
        host.script(ok_json(completion_json()));
        let (status, headers, body) = run(&gw, &host, chat(&key, &ask(10)));
        match status {
            200 => {
                served += 1;
                charged += header(&headers, "x-asc-cost-usd-micros")
                    .expect("cost")
                    .parse::<u64>()
                    .expect("integer");
            }
            429 => {
                assert_eq!(error_code(&body), "budget_exceeded");
                break;
            }
            other => panic!("{other}: {}", String::from_utf8_lossy(&body)),
        }
    }
    let used = usage(&gw, &host, &key);
    let (leases, admits) = admissions(&host);
    match admission {
        "leased" => assert!(leases > 0 && admits == 0),
        _ => assert!(leases == 0 && admits > 0),
    }
    (served, charged, used)
}

#[test]
fn a_hard_budget_admits_exactly_what_write_ahead_admission_does() {
    // max_tokens 10: worst case ~26 micro-USD a request (~130 body bytes as input tokens at
    // $0.15/1M, 10 output at $0.60/1M), actual 6: a 200 budget serves until less than one worst
    // case is left (about 30 requests), whichever way requests are admitted.
    let write_ahead = serve_until_refused("write_ahead", local_gateway());
    let leased = serve_until_refused("leased", local_gateway());
    assert_eq!(leased, write_ahead);
    let (served, charged, (spent, reserved)) = leased;
    assert!(served > 20 && served < 100, "the budget ran out: {served}");
    assert_eq!((spent, reserved), (charged, 0));
    assert!(spent <= 200 && 200 - spent < 26);
}

#[test]
fn a_host_whose_isolates_serve_one_request_admits_write_ahead() {
    let (_, _, (_, reserved)) =
        serve_until_refused("write_ahead", local_gateway().without_leases());
    assert_eq!(reserved, 0);
    let host = FakeHost::new();
    host.put_tenant(&tenant(1_000_000, "leased"));
    let key = host.mint_key("demo", 1, &all_scopes());
    let gw = local_gateway().without_leases();
    host.script(ok_json(completion_json()));
    assert_eq!(run(&gw, &host, chat(&key, &ask(1000))).0, 200);
    assert_eq!(admissions(&host), (0, 1));
}

#[test]
fn a_failed_lease_call_sends_its_closes_again_and_gives_up_the_lease_it_asked_for() {
    let (host, key, gw) = leased_isolate();
    host.ledger_fails
        .set(Some(|op: &LedgerOp| matches!(op, LedgerOp::Lease(_))));
    let (status, _, body) = run(&gw, &host, chat(&key, &ask(1000)));
    assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));
    host.ledger_fails.set(None);
    host.script(ok_json(completion_json()));
    assert_eq!(run(&gw, &host, chat(&key, &ask(1000))).0, 200);
    let ops = host.ledger_ops.borrow();
    let leases: Vec<_> = ops
        .iter()
        .filter_map(|(_, op)| match op {
            LedgerOp::Lease(ask) => Some(ask),
            _ => None,
        })
        .collect();
    // The failed call never reached the (fake) ledger; the next one closes the lease it asked
    // for as unused, in case it had been granted.
    assert_eq!(leases.len(), 1);
    assert_eq!(leases[0].close.len(), 1);
    assert_eq!(leases[0].close[0].admitted, 0);
    assert_ne!(leases[0].close[0].lease_id, leases[0].lease_id);
}

#[test]
fn requests_that_find_no_room_wait_for_the_lease_another_request_is_asking_for() {
    let (host, key, gw) = leased_isolate();
    host.interleaving.set(true);
    // Eight requests arrive together on a fresh isolate: the first asks for a lease, the other
    // seven wait for it (each looks once, after a 1 ms timer: the call answers well within it).
    for _ in 0..8 {
        host.script(ok_json(completion_json()));
    }
    let handled = block_on(futures::future::join_all(
        (0..8).map(|_| gw.handle(&host, chat(&key, &ask(1000)))),
    ));
    assert!(handled.iter().all(|h| h.reply.status == 200));
    assert_eq!(admissions(&host), (1, 0), "one lease for the eight");
    assert_eq!(*host.sleeps.borrow(), vec![1; 7], "seven waits of 1 ms");
    for Handled { after, .. } in handled {
        assert!(block_on(after.run(&gw, &host)).is_empty());
    }
    let (_, note) = lease_record(&host);
    assert_eq!((note.admitted, note.reported), (Some(8), Some(8)));
}

#[test]
fn a_lease_call_that_never_answers_holds_others_back_only_for_the_bound() {
    let (host, key, gw) = leased_isolate();
    host.interleaving.set(true);
    // A request whose lease call never comes back: its request went away mid-call and the
    // runtime never resumes (nor drops) it.
    let mut stuck = Box::pin(gw.handle(&host, chat(&key, &ask(1000))));
    let waker = futures::task::noop_waker();
    let polled = stuck
        .as_mut()
        .poll(&mut std::task::Context::from_waker(&waker));
    assert!(polled.is_pending());
    std::mem::forget(stuck);
    // The next request waits for it up to the bound (1 s, looking every 1 ms), then asks on
    // its own.
    let waits = |host: &FakeHost| host.sleeps.borrow().iter().filter(|&&ms| ms == 1).count();
    host.script(ok_json(completion_json()));
    assert_eq!(run(&gw, &host, chat(&key, &ask(1000))).0, 200);
    assert_eq!(waits(&host), 1_000);
    assert_eq!(
        admissions(&host),
        (1, 0),
        "the stuck call never reached the ledger"
    );
    // The stuck call's mark is replaced: later requests never wait for it again.
    host.script(ok_json(completion_json()));
    assert_eq!(run(&gw, &host, chat(&key, &ask(1000))).0, 200);
    assert_eq!(waits(&host), 1_000);
}

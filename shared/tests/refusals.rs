//! Requests refused before any tenant was known go into the region's trail, counted per isolate
//! over a window (`pipeline/refusals.rs`): who tried, from where, with which key, how often.

mod common;

use asc_core::apikey::ApiKey;
use asc_core::audit::{AuditEvent, Outcome};
use asc_core::pipeline::{Deferred, Handled, Settings, UNATTRIBUTED_LEDGER};
use asc_core::secret::Secret;
use asc_core::Gateway;
use common::*;
use serde_json::json;

/// The loopback region's gateway with the Workers adapter's client address header.
fn gateway() -> Gateway {
    let regions = asc_core::builtin_regions().expect("regions");
    let local = regions.get("local").expect("local").clone();
    Gateway::new(
        local,
        regions,
        Settings {
            client_address_header: Some("cf-connecting-ip".into()),
            ..Settings::default()
        },
    )
}

fn hello() -> Vec<u8> {
    json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]})
        .to_string()
        .into_bytes()
}

fn from(client: &str, auth: Option<&str>) -> asc_core::pipeline::Inbound<asc_core::host::Chunks> {
    let bearer = auth.map(|k| format!("Bearer {k}"));
    let mut headers = vec![("cf-connecting-ip", client)];
    if let Some(b) = &bearer {
        headers.push(("authorization", b));
    }
    request("POST", "/v1/chat/completions", &headers, &hello())
}

/// Only the region's refusal ledgers (`_unattributed#<k>`) were started: no tenant's.
fn assert_only_region_ledgers(host: &FakeHost) {
    let ledgers: Vec<String> = host.ledgers.borrow().keys().cloned().collect();
    assert!(!ledgers.is_empty());
    let prefix = format!("{UNATTRIBUTED_LEDGER}#");
    assert!(
        ledgers.iter().all(|l| l.starts_with(&prefix)),
        "{ledgers:?}"
    );
}

/// The region's records, each with its refusals note, in the order they were chained.
fn region_records(host: &FakeHost) -> Vec<AuditEvent> {
    host.events
        .borrow()
        .iter()
        .filter(|e| e.record.tenant_id.is_none())
        .cloned()
        .collect()
}

#[test]
fn refusals_before_a_tenant_is_known_are_counted_into_the_regions_trail() {
    let host = FakeHost::new();
    host.put_tenant(&demo_tenant());
    let gw = gateway();
    let stranger = asc_core::apikey::new_key(&[77; 32]);
    let mut afters = Vec::new();
    let mut handle = |req| {
        let Handled { reply, after } = block_on(gw.handle(&host, req));
        afters.push(after);
        (
            reply.status,
            error_code(reply.full_body().expect("a full reply")),
        )
    };
    for _ in 0..3 {
        assert_eq!(
            handle(from("203.0.113.7", None)),
            (401, "missing_api_key".into())
        );
    }
    for _ in 0..2 {
        assert_eq!(
            handle(from("203.0.113.7", Some(&stranger))),
            (401, "invalid_api_key".into())
        );
    }
    assert_eq!(
        handle(from("198.51.100.9", Some("sk-not-an-asc-key"))),
        (401, "invalid_api_key".into())
    );
    let wrong_host = request(
        "GET",
        "/v1/models",
        &[
            ("host", "us.asc.example.com"),
            ("cf-connecting-ip", "198.51.100.9"),
        ],
        b"",
    );
    assert_eq!(handle(wrong_host), (421, "misdirected_request".into()));
    assert_eq!(
        handle(request(
            "GET",
            "/wp-login.php",
            &[("cf-connecting-ip", "198.51.100.9")],
            b""
        )),
        (404, "unknown_url".into())
    );
    // Nothing is written before the window ends, and only the first refusal schedules a send.
    assert!(host.ledgers.borrow().is_empty());
    let scheduled: Vec<_> = afters
        .iter()
        .flat_map(|a| a.work())
        .filter(|w| matches!(w, Deferred::Refusals { .. }))
        .collect();
    assert_eq!(scheduled.len(), 1, "{scheduled:?}");
    for after in afters {
        assert!(block_on(after.run(&gw, &host)).is_empty());
    }
    assert_eq!(
        *host.sleeps.borrow(),
        [2_000],
        "the send waits for the window"
    );
    assert_only_region_ledgers(&host);

    let records = region_records(&host);
    let summary: Vec<String> = records
        .iter()
        .map(|e| {
            let note = e.detail.refusals.as_ref().expect("a refusals note");
            format!(
                "{} {} {} x{} from {} key {}",
                e.record.operation,
                e.record.status,
                e.record.error_code.as_deref().unwrap_or("-"),
                note.count,
                note.client.as_deref().unwrap_or("-"),
                note.key_hash_prefix.as_deref().unwrap_or("-"),
            )
        })
        .collect();
    // The stranger's key, as the trail may show it: the first 16 hex digits of its lookup hash
    // (the KV name its record would have), never the key.
    let lookup = ApiKey::parse(&stranger)
        .expect("well-formed")
        .hash(&Secret::new(KEY_SECRET));
    assert_eq!(
        summary,
        [
            "chat.completions 401 missing_api_key x3 from 203.0.113.7 key -".to_string(),
            format!(
                "chat.completions 401 invalid_api_key x2 from 203.0.113.7 key {}",
                &lookup[..16]
            ),
            // A malformed key is refused before it is hashed: nothing to tell it by.
            "chat.completions 401 invalid_api_key x1 from 198.51.100.9 key -".to_string(),
            "models.list 421 misdirected_request x1 from 198.51.100.9 key -".to_string(),
            "unknown 404 unknown_url x1 from 198.51.100.9 key -".to_string(),
        ]
    );
    for e in &records {
        assert_eq!(e.record.outcome, Outcome::Refused);
        assert_eq!(e.record.region, "local");
        assert_eq!(e.record.tenant_id, None);
        assert!(e.record.request_id.starts_with("req_"));
        let note = e.detail.refusals.as_ref().expect("note");
        assert!(note.first_ms <= note.last_ms && e.record.timestamp_ms == note.first_ms);
    }
    let text = serde_json::to_string(&records).expect("json");
    assert!(!text.contains(&stranger), "the key never reaches the trail");
    assert!(!text.contains(&lookup), "nor its whole lookup hash");
    assert!(!text.contains("sk-not-an-asc-key"));
    assert_eq!(host.sent_count(), 0);

    // Sent: the next refusal opens a new window.
    let (status, _, _) = run(&gw, &host, from("203.0.113.7", None));
    assert_eq!(status, 401);
    assert_eq!(region_records(&host).len(), 6);
}

/// Spin appends the address it saw after any `spin-client-addr` the client sent, and Cloudflare
/// replaces `CF-Connecting-IP`: the last one is the platform's.
#[test]
fn the_platforms_client_address_is_the_last_header_of_its_name() {
    let host = FakeHost::new();
    let gw = gateway();
    let mut req = from("10.0.0.1", None);
    req.headers
        .push(("CF-Connecting-IP".into(), "192.0.2.44".into()));
    assert_eq!(run(&gw, &host, req).0, 401);
    let records = region_records(&host);
    assert_eq!(records.len(), 1);
    let note = records[0].detail.refusals.as_ref().expect("note");
    assert_eq!(note.client.as_deref(), Some("192.0.2.44"));

    // Spin's `address:port`: the port is the connection's, so one client is one address.
    let regions = asc_core::builtin_regions().expect("regions");
    let spin = Gateway::new(
        regions.get("local").expect("local").clone(),
        regions.clone(),
        Settings::default(),
    )
    .with_refusals("spin-client-addr", 0);
    for (sent, port) in [("6.6.6.6:1", 50_001), ("6.6.6.6:1", 50_002)] {
        let mut req = request("POST", "/v1/chat/completions", &[], &hello());
        req.headers.push(("spin-client-addr".into(), sent.into()));
        req.headers
            .push(("spin-client-addr".into(), format!("127.0.0.1:{port}")));
        assert_eq!(run(&spin, &host, req).0, 401);
    }
    let mut req = request("POST", "/v1/chat/completions", &[], &hello());
    req.headers
        .push(("spin-client-addr".into(), "[2001:db8::7]:443".into()));
    assert_eq!(run(&spin, &host, req).0, 401);
    let clients: Vec<Option<String>> = region_records(&host)
        .iter()
        .skip(1)
        .map(|e| e.detail.refusals.as_ref().and_then(|n| n.client.clone()))
        .collect();
    assert_eq!(
        clients,
        [
            Some("127.0.0.1".to_string()),
            Some("127.0.0.1".to_string()),
            Some("2001:db8::7".to_string())
        ]
    );
}

/// A tenant's own failures after its key was accepted (a bad explain body, an unknown model
/// there) are its trail's refusals, never the region's.
#[test]
fn failures_after_the_key_was_accepted_are_the_tenants_records() {
    let host = FakeHost::new();
    host.put_tenant(&demo_tenant());
    let key = host.mint_key("demo", 1, &all_scopes());
    let gw = gateway();
    let auth = format!("Bearer {key}");
    for body in [&b"{"[..], &b"{}"[..]] {
        let req = request(
            "POST",
            "/v1/route/explain",
            &[
                ("authorization", &auth),
                ("cf-connecting-ip", "203.0.113.7"),
            ],
            body,
        );
        let (status, _, _) = run(&gw, &host, req);
        assert_eq!(status, 400);
    }
    assert!(region_records(&host).is_empty());
    let audit = host.audit.borrow();
    let mine: Vec<(&str, &str, u16)> = audit
        .iter()
        .map(|r| {
            (
                r.tenant_id.as_deref().unwrap_or("-"),
                r.operation.as_str(),
                r.status,
            )
        })
        .collect();
    assert_eq!(
        mine,
        [
            ("demo", "route.explain", 400),
            ("demo", "route.explain", 400)
        ]
    );
    assert!(audit.iter().all(|r| r.outcome == Outcome::Refused));
}

/// A flood of made-up keys costs the region's ledger a bounded number of records per window,
/// and every attempt is still counted.
#[test]
fn a_flood_of_distinct_keys_is_bounded_and_fully_counted() {
    let host = FakeHost::new();
    let gw = gateway();
    let mut afters = Vec::new();
    for i in 0..500u32 {
        // Key symbols are bytes modulo 62: two base-62 digits make 500 distinct keys.
        let mut seed = [0u8; 32];
        seed[0] = (i % 62) as u8;
        seed[1] = (i / 62) as u8;
        let key = asc_core::apikey::new_key(&seed);
        let client = format!("198.51.100.{}", i % 7);
        let Handled { reply, after } = block_on(gw.handle(&host, from(&client, Some(&key))));
        assert_eq!(reply.status, 401);
        afters.push(after);
    }
    for after in afters {
        block_on(after.run(&gw, &host));
    }
    let records = region_records(&host);
    assert_eq!(records.len(), asc_core::pipeline::MAX_REFUSAL_GROUPS + 1);
    let counted: u64 = records
        .iter()
        .map(|e| e.detail.refusals.as_ref().map_or(0, |n| n.count))
        .sum();
    assert_eq!(counted, 500);
    let merged = records
        .last()
        .and_then(|e| e.detail.refusals.clone())
        .expect("note");
    assert!(merged.merged && merged.client.is_none() && merged.key_hash_prefix.is_none());
    assert_eq!(
        merged.count,
        500 - asc_core::pipeline::MAX_REFUSAL_GROUPS as u64
    );
}

/// The refusal goes out whatever happens to its record: a ledger that is down costs the record
/// (held for one window in the isolate, `docs/ARCHITECTURE.md`), never the reply.
#[test]
fn a_ledger_outage_does_not_change_the_refusal() {
    let host = FakeHost::new();
    host.ledger_down.set(true);
    let gw = gateway();
    let (status, _, body) = run(&gw, &host, from("203.0.113.7", None));
    assert_eq!(
        (status, error_code(&body).as_str()),
        (401, "missing_api_key")
    );
    assert!(region_records(&host).is_empty());
}

/// With a window of 0 (Spin: an instance may end with its request), each refusal is sent after
/// its own reply, without waiting.
#[test]
fn a_zero_window_sends_each_refusal_after_its_reply() {
    let host = FakeHost::new();
    let regions = asc_core::builtin_regions().expect("regions");
    let gw = Gateway::new(
        regions.get("local").expect("local").clone(),
        regions.clone(),
        Settings {
            refusal_window_ms: 0,
            ..Settings::default()
        },
    );
    for n in 1..=2 {
        assert_eq!(run(&gw, &host, from("203.0.113.7", None)).0, 401);
        assert_eq!(region_records(&host).len(), n);
    }
    assert!(host.sleeps.borrow().is_empty());
    let note = region_records(&host)[0]
        .detail
        .refusals
        .clone()
        .expect("note");
    assert_eq!(
        (note.count, note.client),
        (1, None),
        "no address header configured"
    );
}

/// A live key of a tenant pinned to another region is refused here (`wrong_region`) and
/// counted in this region's trail by its key id; its tenant's ledger is not started here.
#[test]
fn a_key_of_another_regions_tenant_is_counted_by_its_id() {
    let host = FakeHost::new();
    let mut tenant = demo_tenant();
    tenant["residency"] = json!("eu");
    host.put_tenant(&tenant);
    let key = host.mint_key("demo", 4, &all_scopes());
    let gw = gateway();
    let (status, _, body) = run(&gw, &host, from("203.0.113.7", Some(&key)));
    assert_eq!((status, error_code(&body).as_str()), (403, "wrong_region"));
    let records = region_records(&host);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].record.key_id.as_deref(), Some("k_4"));
    assert_eq!(records[0].record.tenant_id, None);
    assert_only_region_ledgers(&host);
}

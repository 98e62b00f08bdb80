//! Audit batches shipped by the Spin host's flush land in a real S3-compatible server (moto,
//! started by `scripts/check-spin`), signed with SigV4, and read back they verify: the chain,
//! the signatures and every record the requests produced.
//!
//! Needs `ASC_TEST_S3_ENDPOINT` (e.g. `http://127.0.0.1:9300`) and the access keys the server
//! accepts in `ASC_TEST_S3_ACCESS_KEY_ID` / `ASC_TEST_S3_SECRET_ACCESS_KEY`:
//! `cargo test -p asc-spin --test s3_upload -- --ignored`.

mod support;

use std::collections::BTreeMap;
use std::rc::Rc;

use asc_core::audit::keys::{key_pair, Validity};
use asc_core::audit::verify::{verify, VerifyOptions};
use asc_core::audit::PublicKeyring;
use asc_core::host::Host;
use asc_core::secret::Secret;
use asc_spin::app;
use asc_spin::platform::Outbound;
use asc_spin::s3::{sign_headers, Bucket, Credentials, Service};
use serde_json::json;
use support::common::*;
use support::{real_http, TestPlatform};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run scripts/check-spin"))
}

#[test]
#[ignore = "needs a local S3 server: scripts/check-spin starts one"]
fn flushed_batches_land_in_the_bucket_and_verify() {
    let endpoint = env("ASC_TEST_S3_ENDPOINT");
    let access = env("ASC_TEST_S3_ACCESS_KEY_ID");
    let secret = env("ASC_TEST_S3_SECRET_ACCESS_KEY");
    // A bucket per run, so reruns against the same server start empty.
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    let bucket_name = format!("asc-audit-test-{nonce}");

    let fake = Rc::new(FakeHost::new());
    // Real time: the server checks the request time against its own clock.
    fake.clock_ms.set(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_millis() as u64,
    );
    fake.put_tenant(&demo_tenant());
    let key = fake.mint_key("demo", 1, &all_scopes());
    let mut platform = TestPlatform::new(fake.clone());
    platform.bucket_prefix = Some(endpoint.clone());
    let always = Validity {
        not_before_ms: 0,
        not_after_ms: None,
    };
    let (spec, public) = key_pair("k1", &[9; 32], always).expect("key");
    for (name, value) in [
        (
            "audit_signing_keys",
            serde_json::to_string(&spec).expect("json"),
        ),
        ("audit_bucket_endpoint", endpoint.clone()),
        ("audit_bucket_name", bucket_name.clone()),
        ("audit_bucket_region", "us-east-1".into()),
        ("audit_bucket_access_key_id", access.clone()),
        ("audit_bucket_secret_access_key", secret.clone()),
        ("audit_batch_max_records", "3".into()),
        ("audit_flush_token", "flush-secret".into()),
    ] {
        platform.set_var(name, &value);
    }

    // CreateBucket, signed like the uploads.
    let mut create = Outbound {
        method: "PUT".into(),
        url: format!("{}/{bucket_name}", endpoint.trim_end_matches('/')),
        headers: vec![],
        body: vec![],
        timeout_ms: 10_000,
    };
    let credentials = Credentials {
        access_key_id: access.clone(),
        secret_access_key: Secret::new(secret.clone()),
    };
    let now = std::time::SystemTime::now();
    create
        .headers
        .extend(sign_headers(&create, &credentials, "us-east-1", Service::S3, now).expect("signs"));
    let created = real_http(create).expect("server reachable");
    assert_eq!(created.status, 200, "CreateBucket");

    // The server checks signatures: a PUT signed with another secret is refused.
    let mut forged = Outbound {
        method: "PUT".into(),
        url: format!(
            "{}/{bucket_name}/forged.txt",
            endpoint.trim_end_matches('/')
        ),
        headers: vec![],
        body: b"forged".to_vec(),
        timeout_ms: 10_000,
    };
    let wrong = Credentials {
        access_key_id: access.clone(),
        secret_access_key: Secret::new("not-the-secret"),
    };
    forged
        .headers
        .extend(sign_headers(&forged, &wrong, "us-east-1", Service::S3, now).expect("signs"));
    assert_eq!(
        real_http(forged).expect("answers").status,
        403,
        "a bad signature is refused"
    );

    let prepared = block_on(app::prepare(platform.instance())).expect("deployment");
    let ask = json!({"model": "gpt-4o-mini", "max_tokens": 20,
                     "messages": [{"role": "user", "content": "Hi"}]});
    // Each request's work after the response forwards its record and ships what is due (the
    // stream's first digest at once; then a batch whenever 3 records wait).
    for _ in 0..5 {
        fake.script(ok_json(completion_json()));
        let (status, _, _) = run_spin(&prepared, chat(&key, &ask));
        assert_eq!(status, 200);
    }
    // The flush endpoint (what a cron job calls) ships the rest once it is due.
    fake.advance(6_000);
    let flush_req = || {
        request(
            "POST",
            app::FLUSH_PATH,
            &[("authorization", "Bearer flush-secret")],
            b"",
        )
    };
    let (status, body) = block_on(app::flush_endpoint(&prepared, &flush_req()));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(body, br#"{"shipped":1}"#, "the last batch and its digest");
    let bad = request(
        "POST",
        app::FLUSH_PATH,
        &[("authorization", "Bearer nope")],
        b"",
    );
    assert_eq!(block_on(app::flush_endpoint(&prepared, &bad)).0, 401);

    // Read every uploaded object back with signed GETs and verify the trail.
    let bucket = Bucket {
        endpoint: url::Url::parse(&endpoint).expect("url"),
        name: bucket_name.clone(),
        region: "us-east-1".into(),
        credentials,
    };
    let puts: Vec<String> = platform
        .bucket_log
        .borrow()
        .iter()
        .filter(|(m, _)| m == "PUT")
        .map(|(_, u)| u.clone())
        .collect();
    let batches = puts.iter().filter(|u| u.contains("/batches/")).count();
    let digests = puts.iter().filter(|u| u.contains("/digests/")).count();
    assert!(batches >= 2, "{puts:?}");
    assert_eq!(digests, batches, "one digest per batch: {puts:?}");
    let prefix = format!("{}/{bucket_name}/", endpoint.trim_end_matches('/'));
    let mut objects = BTreeMap::new();
    for url in puts {
        let key = url.strip_prefix(&prefix).expect("our bucket").to_string();
        let get = bucket
            .get_object(&key, fake.clock_ms.get())
            .expect("builds");
        let resp = real_http(get).expect("reads");
        assert_eq!(resp.status, 200, "GET {key}");
        let mut body = resp.body;
        let bytes = block_on(asc_core::host::read_limited(&mut body, 1 << 20))
            .expect("reads")
            .expect("small");
        objects.insert(key, bytes);
    }
    // The admin plane's audit search lists and reads the same objects through the host
    // (ListObjectsV2 and GetObject, signed like the uploads; the server checks signatures).
    let first_batch = objects
        .keys()
        .find(|k| k.contains("/batches/"))
        .expect("a batch")
        .clone();
    let stream_prefix = format!(
        "{}/batches/",
        first_batch.split("/batches/").next().expect("prefix")
    );
    let expected: Vec<String> = objects
        .keys()
        .filter(|k| k.starts_with(&stream_prefix))
        .cloned()
        .collect();
    let listed = block_on(prepared.host.audit_list(&stream_prefix, None, 1000)).expect("lists");
    assert_eq!(listed, expected, "every batch of the stream, in order");
    let page = block_on(
        prepared
            .host
            .audit_list(&stream_prefix, Some(&expected[0]), 1),
    )
    .expect("lists");
    assert_eq!(page, expected[1..2].to_vec(), "start-after and max-keys");
    let got = block_on(prepared.host.audit_get(&first_batch)).expect("reads");
    assert_eq!(got.as_ref(), objects.get(&first_batch));
    let missing = format!("{stream_prefix}00000000000000009999-00000000000000009999.jsonl.gz");
    assert_eq!(
        block_on(prepared.host.audit_get(&missing)).expect("reads"),
        None
    );

    let report = verify(
        &objects,
        &PublicKeyring::from_entries(&[public]).expect("keys"),
        &VerifyOptions {
            now_ms: fake.clock_ms.get(),
            heartbeat_ms: 60_000,
            grace_ms: 60_000,
            max_batch_bytes: 1 << 20,
        },
    );
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!(report.verified().count(), 5);
    // Shipped entries are gone from SQLite, and every ledger's outbox is empty.
    let left = platform.query("SELECT COUNT(*) FROM asc_audit_batch");
    assert_eq!(left[0][0], asc_spin::platform::SqlValue::Integer(0));
}

/// As the component does: the reply, then the work after the response.
fn run_spin(
    prepared: &app::Prepared<TestPlatform>,
    req: asc_core::pipeline::http::Inbound<asc_core::host::Chunks>,
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    block_on(async {
        let handled = prepared.gateway.handle(&prepared.host, req).await;
        let reply = handled.reply;
        let body = match reply.body {
            asc_core::pipeline::http::ReplyBody::Full(b) => b,
            asc_core::pipeline::http::ReplyBody::Stream(mut relay) => {
                let mut out = Vec::new();
                while let Some(chunk) = relay.next_timed(&prepared.host).await {
                    out.extend(chunk);
                }
                relay
                    .finish(&prepared.gateway, &prepared.host)
                    .await
                    .expect("finished");
                out
            }
        };
        let failures = app::after_response(prepared, handled.after).await;
        assert!(failures.is_empty(), "{failures:?}");
        (reply.status, reply.headers, body)
    })
}

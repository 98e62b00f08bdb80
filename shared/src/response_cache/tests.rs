use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

use super::*;
use crate::config::{CachePolicy, CachedOperation, ModelTarget};
use crate::ids::TenantId;
use crate::providers::Provider;
use crate::secret::SecretRef;

fn policy() -> CachePolicy {
    CachePolicy {
        ttl_ms: 60_000,
        max_entry_bytes: 4096,
        operations: BTreeSet::from([
            CachedOperation::Chat,
            CachedOperation::Messages,
            CachedOperation::Embeddings,
        ]),
        models: None,
        nondeterministic: false,
        charge_hits: false,
        store_tool_calls: false,
    }
}

fn target(model: &str) -> ModelTarget {
    ModelTarget {
        provider: Provider::OpenAi,
        endpoint: url::Url::parse("https://eu.api.openai.com/v1").expect("url"),
        upstream_model: model.into(),
        credential: SecretRef("OPENAI_API_KEY".into()),
        timeout_ms: 1000,
        region: None,
    }
}

fn map(v: Value) -> Map<String, Value> {
    v.as_object().cloned().expect("object")
}

fn key(tenant: &str, t: &ModelTarget, req: Value) -> CacheKey {
    CacheKey::derive(
        &TenantId(tenant.into()),
        "eu",
        t,
        EntryKind::Completion,
        &map(req),
    )
    .expect("key")
}

#[test]
fn a_tenant_without_a_policy_or_outside_it_never_touches_the_cache() {
    let req = map(json!({"temperature": 0}));
    assert_eq!(decide(None, CachedOperation::Chat, "m", &req, None), None);
    let mut narrow = policy();
    narrow.models = Some(BTreeSet::from(["small".to_string()]));
    assert_eq!(
        decide(Some(&narrow), CachedOperation::Chat, "large", &req, None),
        None
    );
    narrow.operations = BTreeSet::from([CachedOperation::Embeddings]);
    assert_eq!(
        decide(Some(&narrow), CachedOperation::Chat, "small", &req, None),
        None
    );
}

#[test]
fn sampling_decides_unless_the_tenant_opts_nondeterministic_requests_in() {
    let p = policy();
    let read_write = Some(Ok(Use {
        read: true,
        write: true,
    }));
    let zero = map(json!({"temperature": 0}));
    let zero_float = map(json!({"temperature": 0.0}));
    let warm = map(json!({"temperature": 0.7}));
    let absent = map(json!({}));
    assert_eq!(
        decide(Some(&p), CachedOperation::Chat, "m", &zero, None),
        read_write
    );
    assert_eq!(
        decide(Some(&p), CachedOperation::Messages, "m", &zero_float, None),
        read_write
    );
    for req in [&warm, &absent] {
        assert_eq!(
            decide(Some(&p), CachedOperation::Chat, "m", req, None),
            Some(Err(Bypass::Nondeterministic))
        );
    }
    // Embeddings have no sampling.
    assert_eq!(
        decide(Some(&p), CachedOperation::Embeddings, "m", &absent, None),
        read_write
    );
    let mut opted = policy();
    opted.nondeterministic = true;
    assert_eq!(
        decide(Some(&opted), CachedOperation::Chat, "m", &warm, None),
        read_write
    );
}

#[test]
fn cache_control_no_cache_skips_the_read_and_no_store_skips_both() {
    let p = policy();
    let req = map(json!({"temperature": 0}));
    assert_eq!(
        decide(
            Some(&p),
            CachedOperation::Chat,
            "m",
            &req,
            Some("max-age=0, No-Cache")
        ),
        Some(Ok(Use {
            read: false,
            write: true
        }))
    );
    assert_eq!(
        decide(Some(&p), CachedOperation::Chat, "m", &req, Some("no-store")),
        Some(Err(Bypass::NoStore))
    );
    // no-store wins over no-cache, and over the sampling check.
    let warm = map(json!({"temperature": 1}));
    assert_eq!(
        decide(
            Some(&p),
            CachedOperation::Chat,
            "m",
            &warm,
            Some("no-cache, no-store")
        ),
        Some(Err(Bypass::NoStore))
    );
}

#[test]
fn fields_that_do_not_change_the_answer_do_not_change_the_key() {
    let t = target("gpt-4o-mini");
    let base = json!({"messages": [{"role": "user", "content": "hi"}], "temperature": 0});
    let k = key("acme", &t, base.clone());
    let streamed = json!({
        "model": "alias", "stream": true, "stream_options": {"include_usage": true},
        "user": "u-1", "metadata": {"a": "b"}, "store": false,
        "temperature": 0, "messages": [{"content": "hi", "role": "user"}],
    });
    assert_eq!(key("acme", &t, streamed), k);
    // Anything else does.
    for changed in [
        json!({"messages": [{"role": "user", "content": "hi!"}], "temperature": 0}),
        json!({"messages": [{"role": "user", "content": "hi"}], "temperature": 0, "max_tokens": 5}),
        json!({"messages": [{"role": "system", "content": "hi"}], "temperature": 0}),
    ] {
        assert_ne!(key("acme", &t, changed), k);
    }
    assert_ne!(key("acme", &target("gpt-4o"), base.clone()), k);
    let mut other_endpoint = t.clone();
    other_endpoint.endpoint = url::Url::parse("https://api.openai.com/v1").expect("url");
    assert_ne!(key("acme", &other_endpoint, base.clone()), k);
    let other_kind = CacheKey::derive(
        &TenantId("acme".into()),
        "eu",
        &t,
        EntryKind::Embeddings,
        &map(base.clone()),
    )
    .expect("key");
    assert_ne!(other_kind, k);
    let other_region = CacheKey::derive(
        &TenantId("acme".into()),
        "us",
        &t,
        EntryKind::Completion,
        &map(base),
    )
    .expect("key");
    assert_ne!(other_region.digest(), k.digest());
}

#[test]
fn keys_of_different_tenants_never_meet() {
    let t = target("m");
    let mut seen = std::collections::HashMap::new();
    for i in 0..2_000u32 {
        let tenant = format!("t{}", i % 50);
        let prompt = format!("p{}", i % 40);
        let k = key(
            &tenant,
            &t,
            json!({"messages": [{"role": "user", "content": prompt}]}),
        );
        assert!(k.storage_name().starts_with(&format!("{tenant}/")));
        let owner = seen
            .entry(k.digest().to_string())
            .or_insert((tenant.clone(), prompt.clone()));
        assert_eq!(*owner, (tenant, prompt), "one digest, two owners");
    }
    assert_eq!(
        seen.len(),
        200,
        "every (tenant, prompt) pair has its own digest"
    );
}

fn completion() -> Value {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1700000000,
        "model": "gpt-4o-mini-2024-07-18", "system_fingerprint": "fp_1",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "Hello there."},
             "finish_reason": "stop"},
            {"index": 1, "message": {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "lookup", "arguments": "{\"q\":\"x\"}"}}]},
             "finish_reason": "tool_calls"}
        ],
        "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12,
                  "prompt_tokens_details": {"cached_tokens": 0}}
    })
}

#[test]
fn a_replayed_stream_captures_back_into_the_same_completion() {
    let c = completion();
    let chunks = replay_chunks(&c);
    assert_eq!(chunks.len(), 5);
    assert_eq!(chunks[4]["choices"], json!([]));
    assert_eq!(chunks[4]["usage"]["total_tokens"], 12);
    for ch in &chunks {
        assert_eq!(ch["object"], "chat.completion.chunk");
        assert_eq!(ch["id"], "chatcmpl-1");
    }
    let mut capture = StreamCapture::new(4096);
    for ch in &chunks {
        capture.on_chunk(ch);
    }
    assert!(capture.ends_in_tool_calls());
    let rebuilt = capture
        .completion(c.get("usage").cloned())
        .expect("complete");
    assert_eq!(rebuilt, c);
    assert!(asks_for_tools(&c));
}

#[test]
fn a_capture_past_its_limit_or_without_an_end_stores_nothing() {
    let mut small = StreamCapture::new(5);
    for ch in replay_chunks(&completion()) {
        small.on_chunk(&ch);
    }
    assert_eq!(small.completion(None), None);
    let mut unfinished = StreamCapture::new(4096);
    unfinished.on_chunk(&json!({"choices": [{"index": 0, "delta": {"content": "Hel"}}]}));
    assert_eq!(unfinished.completion(None), None);
    let mut hostile = StreamCapture::new(4096);
    hostile.on_chunk(&json!({"choices": [{"index": 1_000_000, "delta": {"content": "x"}}]}));
    assert_eq!(hostile.completion(None), None);
}

#[test]
fn an_entry_is_a_miss_once_expired_or_of_another_kind() {
    let entry = Entry {
        version: ENTRY_VERSION,
        kind: EntryKind::Completion,
        stored_ms: 1_000,
        expires_ms: 61_000,
        provider: "openai".into(),
        served_model: "gpt-4o-mini".into(),
        usage: None,
        body: completion(),
    };
    let bytes = entry.encode().expect("encode");
    assert_eq!(
        Entry::decode(&bytes, EntryKind::Completion, 60_999),
        Some(entry.clone())
    );
    assert_eq!(Entry::decode(&bytes, EntryKind::Completion, 61_000), None);
    assert_eq!(Entry::decode(&bytes, EntryKind::Embeddings, 2_000), None);
    assert_eq!(
        Entry::decode(b"{not json", EntryKind::Completion, 2_000),
        None
    );
}

#[test]
fn a_key_is_the_sha256_of_its_length_prefixed_parts() {
    // The layout entries are stored under: changing it orphans every stored entry.
    let t = target("gpt-4o-mini");
    let request = json!({"messages": [{"role": "user", "content": "hi"}], "temperature": 0});
    let canonical = crate::audit::canonical::canonical_value(&request).expect("canonical");
    let mut h = Sha256::new();
    for part in [
        "asc-response-cache-v1".as_bytes(),
        b"acme",
        b"eu",
        b"openai",
        t.endpoint.as_str().as_bytes(),
        b"gpt-4o-mini",
        EntryKind::Completion.as_str().as_bytes(),
        &canonical,
    ] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    let expected = crate::hexstr::encode(&h.finalize());
    let mut with_stream = request.clone();
    with_stream["stream"] = json!(true);
    assert_eq!(key("acme", &t, with_stream).digest(), expected);
    let by_host = CacheKey::derive_with(
        &TenantId("acme".into()),
        "eu",
        &t,
        EntryKind::Completion,
        &map(request),
        |bytes| Sha256::digest(bytes).into(),
    )
    .expect("key");
    assert_eq!(
        by_host.digest(),
        expected,
        "the host's digest is given the same bytes"
    );
}

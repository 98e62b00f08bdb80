//! Regions fail closed: a foreign Host gets 421, a tenant of another region gets 403 naming its
//! hostname, and no request is ever sent to a host outside the region's allowlist.

mod common;

use common::*;
use proptest::prelude::*;
use serde_json::json;

fn hello() -> serde_json::Value {
    json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]})
}

#[test]
fn a_foreign_host_header_gets_421() {
    let host = FakeHost::new();
    host.put_tenant(&demo_tenant());
    let key = host.mint_key("demo", 1, &all_scopes());
    let gw = local_gateway();
    let mut req = chat(&key, &hello());
    req.headers.retain(|(n, _)| n != "host");
    req.headers
        .push(("host".into(), "us.asc.example.com".into()));
    let (status, _, body) = run(&gw, &host, req);
    assert_eq!(
        (status, error_code(&body).as_str()),
        (421, "misdirected_request")
    );
    assert_eq!(host.kv_reads.get(), 0, "refused before any lookup");
}

#[test]
fn a_tenant_pinned_elsewhere_gets_403_naming_its_hostname() {
    let host = FakeHost::new();
    let mut tenant = demo_tenant();
    tenant["residency"] = json!("eu");
    host.put_tenant(&tenant);
    let key = host.mint_key("demo", 1, &all_scopes());
    let (status, _, body) = run(&local_gateway(), &host, chat(&key, &hello()));
    assert_eq!((status, error_code(&body).as_str()), (403, "wrong_region"));
    assert!(String::from_utf8_lossy(&body).contains("https://eu.asc.example.com"));
    assert_eq!(host.sent_count(), 0);
}

#[test]
fn the_eu_deployment_refuses_a_config_that_points_outside_the_eu() {
    let host = FakeHost::new();
    let tenant = json!({
        "schema_version": 1, "tenant_id": "acme", "residency": "eu",
        "models": {
            "gpt-4o-mini": {"provider": "openai", "endpoint": "https://api.openai.com/v1", "credential": "OPENAI_API_KEY"},
            "gpt-4o": {"provider": "openai", "endpoint": "https://eu.api.openai.com/v1", "credential": "OPENAI_API_KEY"}
        }
    });
    host.put_tenant(&tenant);
    let key = host.mint_key("acme", 1, &all_scopes());
    let gw = gateway_for("eu");
    let eu_req = |body: &serde_json::Value| {
        let mut r = chat(&key, body);
        r.headers.retain(|(n, _)| n != "host");
        r.headers.push(("host".into(), "eu.asc.example.com".into()));
        r
    };
    let (status, _, body) = run(&gw, &host, eu_req(&hello()));
    // Refused at plan time, naming the target and why (the send-time gate never gets to see it).
    assert_eq!(
        (status, error_code(&body).as_str()),
        (403, "no_target_in_region")
    );
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.contains("api.openai.com") && text.contains("allowlist"),
        "{text}"
    );
    assert_eq!(host.sent_count(), 0, "nothing left the region");

    // The in-region model of the same tenant is served.
    host.script(ok_json(completion_json()));
    let (status, _, _) = run(
        &gw,
        &host,
        eu_req(&json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]})),
    );
    assert_eq!(status, 200);
    assert_eq!(
        host.sent.borrow()[0].url,
        "https://eu.api.openai.com/v1/chat/completions"
    );
}

fn host_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("eu.api.openai.com".to_string()),
        Just("api.openai.com".to_string()),
        Just("api.mistral.ai".to_string()),
        Just("api.anthropic.com".to_string()),
        Just("127.0.0.1".to_string()),
        Just("localhost".to_string()),
        Just("EU.API.OPENAI.COM".to_string()),
        Just("eu.api.openai.com.evil.example".to_string()),
        Just("[::1]".to_string()),
        "[a-z]{1,8}\\.(com|ai|eu|io)",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    /// Whatever endpoint a tenant config names, a request is only sent when its host is on the
    /// serving region's allowlist (over https, except in the loopback region).
    #[test]
    fn nothing_is_sent_outside_the_region(
        region in prop_oneof![Just("eu"), Just("us"), Just("local")],
        scheme in prop_oneof![Just("https"), Just("http")],
        upstream_host in host_strategy(),
        port in prop_oneof![Just(String::new()), Just(":8443".to_string())],
    ) {
        let host = FakeHost::new();
        let endpoint = format!("{scheme}://{upstream_host}{port}/v1");
        let tenant = json!({
            "schema_version": 1, "tenant_id": "t", "residency": region,
            "models": {"gpt-4o-mini": {"provider": "openai", "endpoint": endpoint, "credential": "OPENAI_API_KEY"}}
        });
        host.put_tenant(&tenant);
        let key = host.mint_key("t", 1, &all_scopes());
        let gw = gateway_for(region);
        let hostname = gw.region().hostnames[0].clone();
        host.script(ok_json(completion_json()));
        let mut req = chat(&key, &hello());
        req.headers.retain(|(n, _)| n != "host");
        req.headers.push(("host".into(), hostname));
        let (status, _, _) = run(&gw, &host, req);

        let allowed = gw.region().allowed_upstream_hosts.clone();
        for sent in host.sent.borrow().iter() {
            let url = url::Url::parse(&sent.url).expect("url");
            let h = url.host_str().expect("host").trim_matches(|c| c == '[' || c == ']').to_string();
            prop_assert!(allowed.contains(&h), "sent to {h} from region {region}");
            prop_assert!(url.scheme() == "https" || gw.region().allow_plain_http);
        }
        if host.sent_count() == 0 {
            prop_assert!(status == 403 || status == 503, "refusals are 403 (or 503 for an invalid config), got {status}");
        }
    }
}

use proptest::prelude::*;
use serde_json::json;

use super::circuit::CircuitState;
use super::*;
use crate::config::TenantConfig;

fn eu() -> Region {
    crate::builtin_regions()
        .expect("regions")
        .get("eu")
        .expect("eu")
        .clone()
}

fn tenant(doc: serde_json::Value) -> TenantConfig {
    TenantConfig::parse(doc.to_string().as_bytes()).expect("valid config")
}

fn target(host: &str) -> serde_json::Value {
    json!({"provider": "openai", "endpoint": format!("https://{host}/v1"), "credential": "K"})
}

fn closed(_: &str) -> CircuitState {
    CircuitState::Closed { failures: 0 }
}

fn meta<'a>(model: &'a str, tags: &'a [String], workload: Option<&'a str>) -> RequestMeta<'a> {
    RequestMeta {
        requested_model: model,
        tags,
        workload,
    }
}

fn base() -> serde_json::Value {
    json!({
        "schema_version": 1, "tenant_id": "acme", "residency": "eu",
        "models": {
            "a": target("eu.api.openai.com"),
            "b": target("api.mistral.ai"),
            "us": target("api.openai.com"),
            "declared-us": {"provider": "mistral", "endpoint": "https://api.mistral.ai/v1", "credential": "K", "region": "us"}
        },
        "routes": {
            "smart": {
                "targets": ["us", "a", "declared-us", "b"],
                "rules": [
                    {"when": {"tags": ["bu:finance"]}, "targets": ["b"]},
                    {"when": {"workloads": ["extraction"]}, "strategy": "weighted", "targets": [{"model": "a", "weight": 3}, {"model": "b", "weight": 1}]}
                ]
            }
        },
        "workloads": {"extraction": {"timeout_ms": 20000, "latency_target_ms": 3000}}
    })
}

#[test]
fn out_of_region_targets_are_never_candidates_and_the_explanation_says_why() {
    let t = tenant(base());
    let p = plan(&t, &eu(), &meta("smart", &[], None), &closed, 0, 7).expect("plan");
    assert_eq!(p.candidates, ["a", "b"]);
    assert_eq!(p.route_id.as_deref(), Some("smart"));
    let why = |m: &str| {
        p.considered
            .iter()
            .find(|c| c.model == m)
            .and_then(|c| c.excluded.clone())
            .unwrap_or_default()
    };
    assert!(why("us").contains("allowlist"), "{}", why("us"));
    assert!(why("declared-us").contains("declared region us"));
    assert_eq!(why("a"), "");
}

#[test]
fn the_explanation_steps_follow_the_decision() {
    let t = tenant(base());
    // Default targets: one line for the route, one per target in attempt order, candidates
    // numbered, exclusions with their reason.
    let m = meta("smart", &[], None);
    let p = plan(&t, &eu(), &m, &closed, 0, 7).expect("plan");
    let lines = steps(&p, &m);
    assert_eq!(lines.len(), 5, "{lines:?}");
    assert_eq!(
        lines[0],
        "route \"smart\": no rule matched; default targets"
    );
    assert!(lines[1].starts_with("us: excluded ("), "{lines:?}");
    assert_eq!(lines[2], "a: candidate 1");
    assert!(lines[3].starts_with("declared-us: excluded ("), "{lines:?}");
    assert!(lines[3].contains("declared region us"), "{lines:?}");
    assert_eq!(lines[4], "b: candidate 2");
    // A matched rule, a workload and a weighted draw each get their line; the draw lists the
    // targets in the order the plan tries them.
    let m = meta("smart", &[], Some("extraction"));
    let p = plan(&t, &eu(), &m, &closed, 0, 7).expect("plan");
    let lines = steps(&p, &m);
    let draw = format!("weighted draw: {}", p.candidates.join(" > "));
    assert_eq!(
        lines,
        [
            "route \"smart\": rule 1 matched (tags [], workload Some(\"extraction\"))".to_string(),
            "workload \"extraction\": timeout Some(20000) ms, latency target Some(3000) ms".into(),
            draw,
            format!("{}: candidate 1", p.candidates[0]),
            format!("{}: candidate 2", p.candidates[1]),
        ]
    );
    // A plain model: one line for it, one for its target.
    let m = meta("a", &[], None);
    let p = plan(&t, &eu(), &m, &closed, 0, 7).expect("plan");
    assert_eq!(
        steps(&p, &m),
        [
            "model \"a\": a plain model, one target, no retries",
            "a: candidate 1"
        ]
    );
}

#[test]
fn rules_match_on_tags_and_workloads_in_order() {
    let t = tenant(base());
    let finance = vec!["bu:finance".to_string()];
    let p = plan(
        &t,
        &eu(),
        &meta("smart", &finance, Some("extraction")),
        &closed,
        0,
        1,
    )
    .expect("plan");
    assert_eq!(
        (p.rule, p.candidates.clone()),
        (Some(0), vec!["b".to_string()])
    );
    let p = plan(
        &t,
        &eu(),
        &meta("smart", &[], Some("extraction")),
        &closed,
        0,
        1,
    )
    .expect("plan");
    assert_eq!(p.rule, Some(1));
    assert_eq!(p.timeout_ms, Some(20_000));
    assert_eq!(p.latency_target_ms, Some(3_000));
    assert_eq!(p.strategy, "weighted");
}

#[test]
fn nothing_in_region_is_a_403_naming_why_and_open_circuits_a_503() {
    let mut doc = base();
    doc["routes"]["outside"] = json!({"targets": ["us", "declared-us"]});
    let t = tenant(doc);
    let err = plan(&t, &eu(), &meta("outside", &[], None), &closed, 0, 0).expect_err("none");
    assert_eq!((err.status(), err.code()), (403, "no_target_in_region"));
    assert!(err.message.contains("us (") && err.message.contains("declared-us ("));
    let open = |_: &str| CircuitState::Open { until_ms: 5_000 };
    let err = plan(&t, &eu(), &meta("smart", &[], None), &open, 1_000, 0).expect_err("open");
    assert_eq!((err.status(), err.code()), (503, "all_targets_unavailable"));
    // Open circuits lapse with time.
    assert!(plan(&t, &eu(), &meta("smart", &[], None), &open, 5_000, 0).is_ok());
}

#[test]
fn an_open_circuit_moves_its_target_out_and_a_probe_keeps_it_in() {
    let t = tenant(base());
    let a_open = |m: &str| match m {
        "a" => CircuitState::Open { until_ms: 100 },
        _ => CircuitState::Closed { failures: 0 },
    };
    let p = plan(&t, &eu(), &meta("smart", &[], None), &a_open, 0, 0).expect("plan");
    assert_eq!(p.candidates, ["b"]);
    let a_probe = |m: &str| match m {
        "a" => CircuitState::Probe,
        _ => CircuitState::Closed { failures: 0 },
    };
    let p = plan(&t, &eu(), &meta("smart", &[], None), &a_probe, 0, 0).expect("plan");
    assert_eq!(
        (p.candidates.clone(), p.probes.clone()),
        (vec!["a".into(), "b".into()], vec!["a".to_string()])
    );
}

#[test]
fn weighted_split_is_within_tolerance() {
    let t = tenant(base());
    let mut first_a = 0;
    let n = 20_000u64;
    for i in 0..n {
        let random = super::splitmix(i.wrapping_mul(0x2545_f491_4f6c_dd1d));
        let p = plan(
            &t,
            &eu(),
            &meta("smart", &[], Some("extraction")),
            &closed,
            0,
            random,
        )
        .expect("plan");
        assert_eq!(p.candidates.len(), 2, "the other target stays as fallback");
        if p.candidates[0] == "a" {
            first_a += 1;
        }
    }
    // Weights 3:1: 75% first on `a`, within 1.5 points over 20,000 draws.
    let share = first_a as f64 / n as f64;
    assert!((0.735..=0.765).contains(&share), "{share}");
}

#[test]
fn a_plain_model_is_one_target_without_retries_and_unknown_models_404() {
    let t = tenant(base());
    let p = plan(&t, &eu(), &meta("a", &[], None), &closed, 0, 0).expect("plan");
    assert_eq!(
        (p.candidates.clone(), p.max_attempts()),
        (vec!["a".to_string()], 1)
    );
    let err = plan(&t, &eu(), &meta("nope", &[], None), &closed, 0, 0).expect_err("404");
    assert_eq!(err.code(), "model_not_found");
}

#[test]
fn route_config_errors_name_their_paths() {
    let mut doc = base();
    doc["routes"] = json!({
        "a": {"targets": ["b"]},
        "x": {"strategy": "random", "targets": ["missing", {"model": "a", "weight": 0}], "retry": {"max_attempts": 0, "base_backoff_ms": 500, "max_backoff_ms": 100}, "rules": [{"when": {}, "targets": []}], "fallback_on": {"statuses": [200]}}
    });
    doc["routing"] = json!({"retry_budget_percent": 101});
    let errs = TenantConfig::parse(doc.to_string().as_bytes()).expect_err("invalid");
    let paths = errs.paths();
    for p in [
        "routes[\"a\"]",
        "routes[\"x\"].strategy",
        "routes[\"x\"].targets[0]",
        "routes[\"x\"].targets[1].weight",
        "routes[\"x\"].retry.max_attempts",
        "routes[\"x\"].retry.max_backoff_ms",
        "routes[\"x\"].rules[0].when",
        "routes[\"x\"].rules[0].targets",
        "routes[\"x\"].fallback_on.statuses[0]",
        "routing.retry_budget_percent",
    ] {
        assert!(paths.contains(&p), "missing {p} in {paths:?}");
    }
}

const HOSTS: &[&str] = &[
    "eu.api.openai.com",
    "api.mistral.ai",
    "api.openai.com",
    "us.api.openai.com",
    "api.anthropic.com",
    "127.0.0.1",
    "evil.example",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    /// Whatever the targets, rules, weights, declared regions and circuit states, no candidate
    /// lies outside the region: every one passes the egress gate and declares no other region.
    #[test]
    fn no_plan_leaves_the_region(
        targets in proptest::collection::vec((0usize..HOSTS.len(), proptest::option::of(0usize..3), any::<bool>()), 1..6),
        order in proptest::collection::vec(0usize..6, 1..6),
        weighted in any::<bool>(),
        open_mask in any::<u8>(),
        random in any::<u64>(),
        region_pick in 0usize..3,
    ) {
        let region_ids = ["eu", "us", "local"];
        let regions = crate::builtin_regions().expect("regions");
        let region = regions.get(region_ids[region_pick]).expect("region").clone();
        let mut models = serde_json::Map::new();
        for (i, (h, declared, https)) in targets.iter().enumerate() {
            let scheme = if *https { "https" } else { "http" };
            let mut t = json!({"provider": "openai", "endpoint": format!("{scheme}://{}/v1", HOSTS[*h]), "credential": "K"});
            if let Some(d) = declared {
                t["region"] = json!(region_ids[*d]);
            }
            models.insert(format!("m{i}"), t);
        }
        let mut listed: Vec<String> = order.iter().map(|i| format!("m{}", i % targets.len())).collect();
        listed.dedup();
        listed.sort();
        listed.dedup();
        let doc = json!({
            "schema_version": 1, "tenant_id": "acme", "residency": region.id,
            "models": models,
            "routes": {"r": {"strategy": if weighted { "weighted" } else { "fallback" }, "targets": listed}}
        });
        let t = tenant(doc);
        let circuit = |m: &str| {
            let i: usize = m.trim_start_matches('m').parse().unwrap_or(0);
            if open_mask & (1 << i) != 0 { CircuitState::Open { until_ms: u64::MAX } } else { CircuitState::Closed { failures: 0 } }
        };
        if let Ok(p) = plan(&t, &region, &meta("r", &[], None), &circuit, 0, random) {
            prop_assert!(!p.candidates.is_empty());
            for c in &p.candidates {
                let target = &t.models[c];
                prop_assert!(region.check_egress(&target.endpoint).is_ok());
                prop_assert!(target.region.as_deref().is_none_or(|d| d == region.id));
            }
        }
    }
}

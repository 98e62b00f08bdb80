//! Every example config validates, and the checked-in JSON Schema names exactly the fields the
//! validator accepts (so editors and the gateway agree).

use std::collections::BTreeSet;

use asc_core::config::{TenantConfig, BUDGET_FIELDS, LIMIT_FIELDS, MODEL_FIELDS, TENANT_FIELDS};
use asc_core::guard;

fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn example_tenant_configs_validate() {
    let dir = root().join("examples/tenants");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("examples/tenants") {
        let path = entry.expect("entry").path();
        let bytes = std::fs::read(&path).expect("read");
        if let Err(errs) = TenantConfig::parse(&bytes) {
            panic!("{}: {errs}", path.display());
        }
        seen += 1;
    }
    assert!(seen >= 2);
}

fn keys(v: &serde_json::Value) -> BTreeSet<String> {
    v.as_object().expect("object").keys().cloned().collect()
}

fn set(fields: &[&str]) -> BTreeSet<String> {
    fields.iter().map(|s| s.to_string()).collect()
}

#[test]
fn the_schema_matches_the_validator() {
    let text =
        std::fs::read_to_string(root().join("schemas/tenant-config.schema.json")).expect("schema");
    let schema: serde_json::Value = serde_json::from_str(&text).expect("schema is JSON");
    assert_eq!(keys(&schema["properties"]), set(TENANT_FIELDS));
    use asc_core::config::alerts;
    let alerts_schema = &schema["properties"]["alerts"]["properties"];
    assert_eq!(
        keys(&schema["properties"]["alerts"]["properties"]),
        set(alerts::ALERTS_FIELDS)
    );
    assert_eq!(
        keys(&alerts_schema["webhooks"]["items"]["properties"]),
        set(alerts::WEBHOOK_FIELDS)
    );
    assert_eq!(
        keys(&alerts_schema["error_rate"]["properties"]),
        set(alerts::ERROR_RATE_FIELDS)
    );
    assert_eq!(
        keys(&schema["properties"]["telemetry"]["properties"]),
        set(alerts::TELEMETRY_FIELDS)
    );
    assert_eq!(
        keys(&schema["$defs"]["target"]["properties"]),
        set(MODEL_FIELDS)
    );
    assert_eq!(
        keys(&schema["properties"]["limits"]["properties"]),
        set(LIMIT_FIELDS)
    );
    assert_eq!(
        keys(&schema["$defs"]["budget"]["properties"]),
        set(BUDGET_FIELDS)
    );
    use asc_core::config::routes;
    assert_eq!(
        keys(&schema["$defs"]["route"]["properties"]),
        set(routes::ROUTE_FIELDS)
    );
    assert_eq!(
        keys(&schema["$defs"]["route_rule"]["properties"]),
        set(routes::RULE_FIELDS)
    );
    let route = &schema["$defs"]["route"]["properties"];
    assert_eq!(
        keys(&route["retry"]["properties"]),
        set(routes::RETRY_FIELDS)
    );
    assert_eq!(
        keys(&route["fallback_on"]["properties"]),
        set(routes::FALLBACK_FIELDS)
    );
    assert_eq!(
        keys(&schema["$defs"]["route_rule"]["properties"]["when"]["properties"]),
        set(routes::WHEN_FIELDS)
    );
    assert_eq!(
        keys(&schema["properties"]["cache"]["properties"]),
        set(asc_core::config::CACHE_FIELDS)
    );
    let routing = &schema["properties"]["routing"]["properties"];
    assert_eq!(keys(routing), set(routes::ROUTING_FIELDS));
    assert_eq!(
        keys(&routing["breaker"]["properties"]),
        set(routes::BREAKER_FIELDS)
    );
    assert_eq!(
        keys(&schema["properties"]["workloads"]["additionalProperties"]["properties"]),
        set(routes::WORKLOAD_FIELDS)
    );
    let guard = &schema["properties"]["guardrails"];
    assert_eq!(keys(&guard["properties"]), set(guard::GUARDRAIL_FIELDS));
    assert_eq!(
        keys(&guard["properties"]["detectors"]["properties"]),
        set(guard::DETECTOR_NAMES)
    );
    assert_eq!(
        keys(&guard["properties"]["apply_to"]["properties"]),
        set(guard::APPLY_TO_FIELDS)
    );
    assert_eq!(
        keys(&schema["$defs"]["guard_detector"]["properties"]),
        set(guard::DETECTOR_FIELDS)
    );
    assert_eq!(
        keys(&schema["$defs"]["custom_pattern"]["properties"]),
        set(guard::CUSTOM_PATTERN_FIELDS)
    );
    let required: BTreeSet<String> = schema["required"]
        .as_array()
        .expect("required")
        .iter()
        .map(|v| v.as_str().expect("str").to_string())
        .collect();
    assert_eq!(
        required,
        set(&["schema_version", "tenant_id", "residency", "models"])
    );
}

/// The README documents every header ASC reads or writes.
#[test]
fn the_readme_names_every_header() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    for name in asc_core::headers::ALL {
        assert!(
            readme.contains(&format!("`{name}`")),
            "README.md does not document `{name}`"
        );
    }
}

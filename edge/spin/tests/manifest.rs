//! `spin.toml` and `regions/spin/*` agree with the code and with `regions/*.toml`: every variable
//! the component reads is declared and handed to the component; each region's outbound origins
//! are exactly its `allowed_upstream_hosts`; each region has its stores configured.

use std::collections::BTreeSet;
use std::path::PathBuf;

use asc_core::builtin_regions;
use asc_spin::settings;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn table(path: &str) -> toml::Table {
    let text = std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.parse().unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn manifest() -> toml::Table {
    table("spin.toml")
}

fn component(m: &toml::Table) -> &toml::Table {
    m["component"]["asc"].as_table().expect("[component.asc]")
}

const SLOTS: [&str; 4] = [
    "upstream_origin_a",
    "upstream_origin_b",
    "upstream_origin_c",
    "upstream_origin_d",
];

#[test]
fn every_variable_the_component_reads_is_declared_and_passed_on() {
    let m = manifest();
    let declared = m["variables"].as_table().expect("[variables]");
    let passed = component(&m)["variables"].as_table().expect("variables");
    let credentials = declared[settings::CREDENTIALS]["default"]
        .as_str()
        .expect("asc_credentials default");
    let secrets = std::iter::once(settings::KEY_HASH_SECRET)
        .chain(credentials.split(','))
        .map(settings::variable_name);
    let read: Vec<String> = settings::SETTINGS
        .iter()
        .map(|s| s.to_string())
        .chain(secrets)
        .collect();
    for name in &read {
        assert!(
            declared.contains_key(name),
            "spin.toml declares no variable {name}"
        );
        assert_eq!(
            passed.get(name).and_then(|v| v.as_str()),
            Some(format!("{{{{ {name} }}}}").as_str()),
            "[component.asc.variables] does not pass {name}"
        );
    }
    for (name, spec) in declared {
        let secret = spec.get("secret").and_then(|v| v.as_bool()) == Some(true);
        let looks_secret = ["secret", "key", "token"].iter().any(|w| name.contains(w))
            && !["audit_bucket_access_key_id"].contains(&name.as_str());
        if looks_secret && name != settings::CREDENTIALS {
            assert!(
                secret,
                "variable {name} holds a secret: mark it secret = true"
            );
        }
    }
    assert_eq!(
        component(&m)["key_value_stores"]
            .as_array()
            .expect("stores")[0]
            .as_str(),
        Some(settings::CONFIG_STORE)
    );
    assert_eq!(
        component(&m)["sqlite_databases"].as_array().expect("dbs")[0].as_str(),
        Some(settings::STATE_DB)
    );
}

#[test]
fn outbound_hosts_are_the_region_slots_and_the_bucket_only() {
    let m = manifest();
    let hosts: Vec<&str> = component(&m)["allowed_outbound_hosts"]
        .as_array()
        .expect("allowed_outbound_hosts")
        .iter()
        .map(|v| v.as_str().expect("string"))
        .collect();
    let mut expected: Vec<String> = SLOTS.iter().map(|s| format!("{{{{ {s} }}}}")).collect();
    expected.push(format!("{{{{ {} }}}}", settings::BUCKET_ENDPOINT));
    // The collector's and the webhooks' origins: the core's gate (telemetry_hosts,
    // webhook_hosts) applies on top of them.
    expected.push("{{ telemetry_origin }}".into());
    expected.push("{{ webhook_origin }}".into());
    assert_eq!(hosts, expected);
    let declared = m["variables"].as_table().expect("[variables]");
    for slot in SLOTS
        .iter()
        .copied()
        .chain(["telemetry_origin", "webhook_origin"])
    {
        let default = declared[slot]["default"].as_str().expect("slot default");
        assert!(
            default.ends_with(".invalid"),
            "{slot} must default to nothing reachable"
        );
    }
}

#[test]
fn each_region_file_allows_exactly_the_regions_upstreams_and_has_its_stores() {
    let regions = builtin_regions().expect("regions");
    let declared: BTreeSet<String> = manifest()["variables"]
        .as_table()
        .expect("variables")
        .keys()
        .cloned()
        .collect();
    let mut seen = 0;
    for id in regions.ids() {
        let region = regions.get(id).expect("region");
        let vars = table(&format!("regions/spin/{id}.variables.toml"));
        assert_eq!(vars["asc_region"].as_str(), Some(id));
        for name in vars.keys() {
            assert!(
                declared.contains(name),
                "{id}: {name} is not declared in spin.toml"
            );
            assert!(
                !name.contains("secret") && !name.ends_with("_token") && !name.ends_with("api_key"),
                "{id}: secrets never go into a variables file ({name})"
            );
        }
        let origins: BTreeSet<String> = SLOTS
            .iter()
            .filter_map(|s| vars.get(*s).and_then(|v| v.as_str()).map(str::to_string))
            .collect();
        let wanted: BTreeSet<String> = region
            .allowed_upstream_hosts
            .iter()
            .map(|h| {
                if region.allow_plain_http {
                    format!("http://{h}:*")
                } else {
                    format!("https://{h}")
                }
            })
            .collect();
        assert_eq!(
            origins, wanted,
            "regions/spin/{id}.variables.toml vs regions/{id}.toml"
        );
        assert!(
            wanted.len() <= SLOTS.len(),
            "{id}: add upstream slots to spin.toml"
        );

        let rc = table(&format!("regions/spin/{id}.runtime-config.toml"));
        assert!(
            rc["key_value_store"].get(settings::CONFIG_STORE).is_some(),
            "{id}: no key-value store"
        );
        assert!(
            rc["sqlite_database"].get(settings::STATE_DB).is_some(),
            "{id}: no database"
        );
        seen += 1;
    }
    assert_eq!(seen, 3);
}

/// Spin parses `[variables]` keys as `LowerSnakeId` (spin `crates/serde/src/id.rs`): every
/// `_`-separated word starts with a lowercase ASCII letter, so `upstream_origin_1` stops `spin up`
/// with "'_'-separated words must start with an ASCII letter".
fn spin_accepts_variable_name(name: &str) -> bool {
    name.split('_').all(|word| {
        let mut chars = word.chars();
        chars.next().is_some_and(|c| c.is_ascii_lowercase())
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    })
}

#[test]
fn variable_names_follow_spins_manifest_rule() {
    assert!(!spin_accepts_variable_name("upstream_origin_1"));
    assert!(!spin_accepts_variable_name("upstream__origin"));
    assert!(spin_accepts_variable_name("s3_endpoint2"));
    for name in manifest()["variables"]
        .as_table()
        .expect("[variables]")
        .keys()
    {
        assert!(
            spin_accepts_variable_name(name),
            "spin up refuses the variable name {name}"
        );
    }
}

fn spin_config(region: &str, out: &std::path::Path, env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = std::process::Command::new(root().join("scripts/spin-config"));
    cmd.arg(region)
        .arg(out)
        .env_remove("ASC_LIBSQL_TOKEN")
        .env_remove("ASC_VAULT_TOKEN");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("scripts/spin-config runs")
}

/// Deployment secrets in the runtime configs are named placeholders, rendered by
/// `scripts/spin-config`, which writes nothing when one has no value (fail closed).
#[test]
fn runtime_config_placeholders_are_required_values() {
    let dir = std::env::temp_dir().join(format!("asc-spin-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    for region in ["eu", "us"] {
        let path = format!("regions/spin/{region}.runtime-config.toml");
        let text = std::fs::read_to_string(root().join(&path)).expect("runtime config");
        assert!(
            !text.contains("REPLACE_AT_DEPLOY"),
            "{path}: use a ${{NAME}} placeholder"
        );
        let out = dir.join(format!("{region}.toml"));
        let refused = spin_config(region, &out, &[("ASC_LIBSQL_TOKEN", "t")]);
        assert!(
            !refused.status.success(),
            "{region}: rendered without ASC_VAULT_TOKEN"
        );
        assert!(
            String::from_utf8_lossy(&refused.stderr).contains("ASC_VAULT_TOKEN"),
            "{region}: the error names the missing value"
        );
        assert!(
            !out.exists(),
            "{region}: nothing written when a value is missing"
        );
        let blank = spin_config(
            region,
            &out,
            &[("ASC_LIBSQL_TOKEN", " "), ("ASC_VAULT_TOKEN", "v")],
        );
        assert!(
            !blank.status.success(),
            "{region}: an empty value counts as missing"
        );

        let libsql = "lib\"sql\\token";
        let done = spin_config(
            region,
            &out,
            &[
                ("ASC_LIBSQL_TOKEN", libsql),
                ("ASC_VAULT_TOKEN", "vault-token"),
            ],
        );
        assert!(
            done.status.success(),
            "{}",
            String::from_utf8_lossy(&done.stderr)
        );
        let rendered: toml::Table = std::fs::read_to_string(&out)
            .expect("rendered")
            .parse()
            .expect("rendered TOML parses");
        assert_eq!(
            rendered["sqlite_database"][settings::STATE_DB]["token"].as_str(),
            Some(libsql)
        );
        assert_eq!(
            rendered["config_provider"][0]["token"].as_str(),
            Some("vault-token")
        );
    }
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

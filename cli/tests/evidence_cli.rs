//! `asc evidence` through the real binary: a pack of a verified log for a period, intact and
//! signed; any file changed, removed or added is caught by `asc evidence verify`, and so is a
//! forged manifest; the residency report flags a host outside its region's allowlist.

mod common;

use std::path::Path;

use asc_core::audit::keys::key_pair;
use asc_core::audit::Validity;
use common::*;
use serde_json::Value;

/// Writes the compliance team's evidence key pair into `dir`.
fn evidence_keys(dir: &Path) {
    let always = Validity {
        not_before_ms: 0,
        not_after_ms: None,
    };
    let (spec, public) = key_pair("evidence-1", &[7; 32], always).expect("key");
    std::fs::write(
        dir.join("evidence-signing-key.json"),
        serde_json::to_vec(&spec).expect("json"),
    )
    .expect("write");
    std::fs::write(
        dir.join("evidence-keys.json"),
        serde_json::to_vec(&[public]).expect("json"),
    )
    .expect("write");
}

fn pack(dir: &Path, out: &str, from: &str, to: &str) -> std::process::Output {
    let mut args = vec!["evidence", "pack"];
    args.extend(VERIFY_FIXTURE);
    args.extend([
        "--from",
        from,
        "--to",
        to,
        "--out",
        out,
        "--signing-key",
        "evidence-signing-key.json",
    ]);
    asc(dir, &args)
}

fn read(dir: &Path, name: &str) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join(name)).expect("read")).expect("json")
}

fn verify_pack(dir: &Path, pack: &str) -> (Option<i32>, String) {
    let o = asc(
        dir,
        &["evidence", "verify", pack, "--keys", "evidence-keys.json"],
    );
    (o.status.code(), stdout(&o))
}

#[test]
fn a_pack_covers_its_period_and_every_tampering_is_detected() {
    let dir = fixture("evidence-pack");
    evidence_keys(&dir);
    // Records 1..=5 are at T0 + n s: the period [T0 + 2 s, T0 + 5 s) holds records 2, 3 and 4.
    let from = (T0 + 2_000).to_string();
    let to = (T0 + 5_000).to_string();
    let o = pack(&dir, "pack", &from, &to);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}{}",
        stdout(&o),
        String::from_utf8_lossy(&o.stderr)
    );
    let p = dir.join("pack");
    let verification = read(&p, "verification.json");
    assert_eq!(verification["ok"], true);
    assert_eq!(verification["records_in_period"], 3);
    let summary = read(&p, "summary.json");
    assert_eq!(summary["requests"], 3);
    // The fixture's tenant is ["acme", "globex"][n % 2]: records 2 and 4 are acme, 3 globex.
    assert_eq!(
        summary["by_tenant"],
        serde_json::json!({"acme": 2, "globex": 1})
    );
    assert_eq!(read(&p, "residency.json")["ok"], true);
    let keys = read(&p, "keys.json");
    assert_eq!(keys["keys"].as_array().map(Vec::len), Some(3));
    let signing = read(&p, "signing-keys.json");
    assert_eq!(signing["in_force_during_period"][0]["key_id"], "k2026");
    let regions = read(&p, "regions.json");
    let eu = regions["regions"]
        .as_array()
        .expect("list")
        .iter()
        .find(|r| r["id"] == "eu")
        .expect("eu");
    assert_eq!(
        eu["text"].as_str(),
        Some(include_str!("../../regions/eu.toml")),
        "the region file as compiled in"
    );
    let (code, out) = verify_pack(&dir, "pack");
    assert_eq!(code, Some(0), "{out}");
    assert!(out.starts_with("OK: 8 files intact"), "{out}");

    // Every file: a one-byte change is caught and named.
    let manifest = read(&p, "manifest.json");
    for name in manifest["files"].as_object().expect("files").keys() {
        let path = p.join(name);
        let original = std::fs::read(&path).expect("read");
        let mut changed = original.clone();
        changed[2] ^= 0x01;
        std::fs::write(&path, &changed).expect("write");
        let (code, out) = verify_pack(&dir, "pack");
        assert_eq!(code, Some(1), "{name}: {out}");
        assert!(out.contains(&format!("{name}: changed")), "{name}: {out}");
        std::fs::write(&path, &original).expect("restore");
    }
    // Removed, and added.
    std::fs::rename(p.join("keys.json"), dir.join("keys.moved")).expect("move");
    let (code, out) = verify_pack(&dir, "pack");
    assert_eq!(code, Some(1));
    assert!(out.contains("keys.json: missing"), "{out}");
    std::fs::rename(dir.join("keys.moved"), p.join("keys.json")).expect("move back");
    std::fs::write(p.join("extra.json"), b"{}").expect("write");
    let (code, out) = verify_pack(&dir, "pack");
    assert_eq!(code, Some(1));
    assert!(out.contains("extra.json: not in the manifest"), "{out}");
    std::fs::remove_file(p.join("extra.json")).expect("rm");

    // A manifest edited to match a changed file no longer carries a valid signature.
    let summary_path = p.join("summary.json");
    std::fs::write(&summary_path, b"{\"requests\": 0}\n").expect("write");
    let mut m = manifest.clone();
    m["files"]["summary.json"]["sha256"] = Value::String(asc_core::audit::canonical::sha256_hex(
        b"{\"requests\": 0}\n",
    ));
    m["files"]["summary.json"]["bytes"] = Value::from(16);
    std::fs::write(
        p.join("manifest.json"),
        asc_core::audit::canonical::canonical_value(&m).expect("json"),
    )
    .expect("write");
    let (code, out) = verify_pack(&dir, "pack");
    assert_eq!(code, Some(1));
    assert!(
        out.contains("signature by key \"evidence-1\" does not verify"),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_residency_report_flags_a_host_outside_the_regions_allowlist() {
    let dir = fixture_with("evidence-residency", |n| {
        let mut e = event(n);
        // Record 4's only upstream call went to a host outside the eu allowlist.
        if n == 4 {
            e.detail.attempts.push(asc_core::audit::Attempt {
                provider: "openai".into(),
                endpoint_host: "api.openai.com".into(),
                model: "gpt-4o-mini".into(),
                status: Some(200),
                error_code: None,
                latency_ms: 3,
            });
        }
        e
    });
    let mut args = vec!["evidence", "residency"];
    args.extend(VERIFY_FIXTURE);
    args.extend(["--format", "json"]);
    let o = asc(&dir, &args);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let report: Value = serde_json::from_str(&stdout(&o)).expect("json");
    assert_eq!(report["ok"], false);
    assert_eq!(report["flagged"][0]["host"], "api.openai.com");
    assert_eq!(report["flagged"][0]["region"], "eu");
    assert_eq!(report["flagged"][0]["attempts"], 1);
    // Outside the period that holds record 4, nothing is flagged.
    let to = (T0 + 4_000).to_string();
    let mut narrowed = args.clone();
    narrowed.extend(["--to", &to]);
    let o = asc(&dir, &narrowed);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn pack_refuses_an_existing_folder_and_a_backwards_period() {
    let dir = fixture("evidence-refuse");
    evidence_keys(&dir);
    std::fs::create_dir_all(dir.join("taken")).expect("mkdir");
    let o = pack(&dir, "taken", "0", "1");
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("exists"));
    let o = pack(&dir, "new", "5", "5");
    assert_eq!(o.status.code(), Some(2));
    assert!(!dir.join("new").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

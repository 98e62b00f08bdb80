//! A five-record audit log written by the core's sequencer into a folder, with its key file,
//! and the real `asc` binary to run against it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use asc_core::audit::keys::key_pair;
use asc_core::audit::{AuditEvent, AuditRecord, Outcome, AUDIT_SCHEMA_VERSION};
use asc_core::audit::{Sequencer, ShipPolicy, SigningKeyring, Validity};

pub const T0: u64 = 1_700_000_000_000;
/// About 4 s after the fixture's newest digest.
pub const NOW: &str = "1700000015000";
/// The fixture's bucket, keys and verification options, as every audit command takes them.
pub const VERIFY_FIXTURE: [&str; 9] = [
    "bucket",
    "--keys",
    "keys.json",
    "--now",
    NOW,
    "--heartbeat-ms",
    "10000",
    "--grace-ms",
    "1000",
];
pub const POLICY: ShipPolicy = ShipPolicy {
    max_records: 3,
    max_age_ms: 1_000,
    heartbeat_ms: 10_000,
};

pub fn event(n: u64) -> AuditEvent {
    AuditEvent::from(AuditRecord {
        schema_version: AUDIT_SCHEMA_VERSION,
        request_id: format!("req_{n}"),
        timestamp_ms: T0 + n * 1000,
        region: "eu".into(),
        tenant_id: Some(["acme", "globex"][n as usize % 2].into()),
        key_id: Some(format!("k_{n}")),
        operation: "chat.completions".into(),
        requested_model: Some(if n <= 2 { "gpt-4o" } else { "gpt-4o-mini" }.into()),
        served_model: None,
        provider: Some("openai".into()),
        endpoint_host: Some("eu.api.openai.com".into()),
        stream: false,
        outcome: Outcome::Ok,
        status: 200,
        error_code: None,
        usage: None,
        latency_ms: 5,
        policy_version: None,
        trace_id: format!("{n:032x}"),
    })
}

/// A fresh folder holding a five-record log and the key file; the newest digest at T0 + 11_010.
pub fn fixture(name: &str) -> PathBuf {
    fixture_with(name, event)
}

/// As [`fixture`], with records made by `event`.
pub fn fixture_with(name: &str, event: impl Fn(u64) -> AuditEvent) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("asc-audit-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let always = Validity {
        not_before_ms: 0,
        not_after_ms: None,
    };
    let (spec, public) = key_pair("k2026", &[9; 32], always).expect("key");
    let ring = SigningKeyring::from_specs(&[spec]).expect("ring");
    let mut seq = Sequencer::new("eu", T0).expect("stream");
    let mut objects = BTreeMap::new();
    let mut ship = |seq: &mut Sequencer, now| {
        while let Some(s) = seq.next_shipment(now, &POLICY, &ring).expect("ships") {
            for o in s.objects() {
                objects.insert(o.key.clone(), o.bytes.clone());
            }
            seq.confirm(s.id).expect("confirms");
        }
    };
    ship(&mut seq, T0);
    for n in 1..=5 {
        seq.append(&event(n), T0 + 10).expect("appends");
    }
    ship(&mut seq, T0 + 10);
    ship(&mut seq, T0 + 1_010);
    ship(&mut seq, T0 + 11_010);
    for (key, bytes) in objects {
        let path = dir.join("bucket").join(&key);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, bytes).expect("write");
    }
    let keys = serde_json::to_vec(&[public]).expect("json");
    std::fs::write(dir.join("keys.json"), keys).expect("write");
    dir
}

pub fn asc(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_asc"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

//! One minimum Rust version for the whole workspace: declared once in the root Cargo.toml,
//! inherited by every member, and at least what the locked dependencies declare (spin-sdk 7 needs
//! 1.94, aws-sigv4 1.6 and the smithy crates 1.94.1). Reads the manifests, the lock file and, when
//! they are there, the dependencies' own manifests in the local cargo registry (no network).

use std::path::{Path, PathBuf};

use toml::{Table, Value};

/// The highest `rust-version` among the dependencies when this test was written. The registry
/// scan below catches later bumps where the sources are on disk; this floor holds without them.
const FLOOR: &str = "1.94.1";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read_toml(path: &Path) -> Table {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.parse()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `1.94.1` -> `[1, 94, 1]`; `1.94` -> `[1, 94, 0]`.
fn version(s: &str) -> [u64; 3] {
    let mut out = [0; 3];
    for (slot, part) in out.iter_mut().zip(s.split('.')) {
        let digits = part.split(|c: char| !c.is_ascii_digit()).next();
        *slot = digits
            .and_then(|d| d.parse().ok())
            .unwrap_or_else(|| panic!("rust-version {s:?} is not MAJOR.MINOR[.PATCH]"));
    }
    out
}

fn workspace() -> Table {
    read_toml(&root().join("Cargo.toml"))
}

fn workspace_rust_version() -> String {
    let ws = workspace();
    ws["workspace"]["package"]["rust-version"]
        .as_str()
        .expect("[workspace.package] rust-version is a string")
        .to_string()
}

/// The unpacked crates of the local cargo registry (`$CARGO_HOME/registry/src/<index>/`); none
/// when there is no cargo home.
#[allow(
    clippy::disallowed_methods,
    reason = "the core reads no environment, but this test looks for cargo's own files"
)]
fn registry_sources() -> Vec<PathBuf> {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    cargo_home
        .and_then(|home| std::fs::read_dir(home.join("registry/src")).ok())
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect()
}

#[test]
fn every_member_inherits_the_workspace_rust_version() {
    let ws = workspace();
    let members = ws["workspace"]["members"].as_array().expect("members");
    assert!(members.len() >= 4, "{members:?}");
    for member in members {
        let member = member.as_str().expect("member path");
        let manifest = read_toml(&root().join(member).join("Cargo.toml"));
        let declared = manifest["package"].get("rust-version");
        let inherits = declared
            .and_then(Value::as_table)
            .and_then(|t| t.get("workspace"))
            .and_then(Value::as_bool)
            == Some(true);
        assert!(
            inherits,
            "{member}/Cargo.toml must say `rust-version.workspace = true` (it has {declared:?})"
        );
    }
}

#[test]
fn the_workspace_rust_version_covers_the_dependencies() {
    let declared = workspace_rust_version();
    assert!(
        version(&declared) >= version(FLOOR),
        "workspace rust-version {declared} is below {FLOOR} (spin-sdk 7, aws-sigv4 1.6)"
    );

    // Every locked crates.io package whose sources this machine has: its own rust-version.
    let lock = read_toml(&root().join("Cargo.lock"));
    let registries = registry_sources();
    let mut too_new = Vec::new();
    for package in lock["package"].as_array().expect("[[package]]") {
        let (Some(name), Some(ver), Some(_)) = (
            package.get("name").and_then(Value::as_str),
            package.get("version").and_then(Value::as_str),
            package.get("source"),
        ) else {
            continue;
        };
        let Some(manifest) = registries
            .iter()
            .map(|r| r.join(format!("{name}-{ver}")).join("Cargo.toml"))
            .find(|m| m.is_file())
        else {
            continue;
        };
        let needs = read_toml(&manifest)
            .get("package")
            .and_then(|p| p.get("rust-version"))
            .and_then(Value::as_str)
            .map(str::to_string);
        if let Some(needs) = needs {
            if version(&needs) > version(&declared) {
                too_new.push(format!("{name} {ver} needs {needs}"));
            }
        }
    }
    assert!(
        too_new.is_empty(),
        "workspace rust-version {declared} is below what locked dependencies declare: {too_new:?}"
    );
}

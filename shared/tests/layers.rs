//! The core's modules form layers, and a module may use only modules of lower layers: no import
//! cycles, and a newcomer can draw the crate from the table below (docs/ARCHITECTURE.md draws
//! it). Read from the sources: every `crate::<module>` a module's non-test code names.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Lowest first. A module may name modules of strictly lower layers only.
const LAYERS: &[&[&str]] = &[
    &["hexstr", "json_write"],
    &["json_view", "json_ser"],
    &[
        "ids",
        "headers",
        "time",
        "secret",
        "trace",
        "catalog",
        "ratelimit",
        "sse",
        "error",
        "validate",
    ],
    &["cache", "apikey", "region", "audit"],
    &["guard", "budget", "providers", "alerts"],
    &["config"],
    &["routing", "ledger", "response_cache", "tenant_store"],
    &["host", "telemetry"],
    &["deployment"],
    &["pipeline"],
    &["admin"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `crate::<name>` occurrences outside comments and outside `#[cfg(test)]` modules.
fn named_modules(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let code = match text.find("#[cfg(test)]\nmod tests {") {
        Some(i) => &text[..i],
        None => text,
    };
    for line in code.lines() {
        let line = line.split("//").next().unwrap_or("");
        let mut rest = line;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

#[test]
fn modules_only_use_lower_layers() {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut uses: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(&src).expect("under src");
        let name = rel.file_name().and_then(|n| n.to_str()).unwrap_or("");
        // Test-only files (`*_tests.rs`, `tests.rs`, `test_support.rs`) may reach anywhere.
        if name.contains("test") {
            continue;
        }
        let top = rel
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .unwrap_or("")
            .trim_end_matches(".rs")
            .to_string();
        if top == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("readable");
        let named = named_modules(&text);
        uses.entry(top.clone())
            .or_default()
            .extend(named.into_iter().filter(|n| *n != top));
    }
    let mut wrong = Vec::new();
    for (module, named) in &uses {
        let Some(mine) = layer_of(module) else {
            wrong.push(format!("{module}: not in LAYERS (add it to the table)"));
            continue;
        };
        for other in named {
            match layer_of(other) {
                Some(theirs) if theirs < mine => {}
                // Items at the crate root (`builtin_regions`, `REGION_FILES`) are fine.
                None if !uses.contains_key(other) => {}
                _ => wrong.push(format!("{module} (layer {mine}) uses {other}")),
            }
        }
    }
    assert!(wrong.is_empty(), "layering broken:\n{}", wrong.join("\n"));
    // The table names only modules that exist.
    for module in LAYERS.iter().flat_map(|l| l.iter()) {
        assert!(
            uses.contains_key(*module) || src.join(format!("{module}.rs")).exists(),
            "{module}"
        );
    }
}

#[test]
fn the_scan_sees_uses_and_skips_comments() {
    let named = named_modules("use crate::host::Host;\n// crate::pipeline is above\nlet x = crate::error::ErrorKind::Internal;\n#[cfg(test)]\nmod tests {\n use crate::audit;\n}\n");
    assert_eq!(
        named,
        ["error", "host"].iter().map(|s| s.to_string()).collect()
    );
}

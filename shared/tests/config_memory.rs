//! What a tenant config holds in memory, measured with a counting allocator, against
//! `TenantConfig::resident_bytes`, the estimate an isolate's config cache is bounded by: the
//! estimate must not fall below what a config really holds (or the cache could outgrow its
//! budget), nor sit far above it (or the cache would hold few configs for no reason).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use asc_core::config::TenantConfig;
use serde_json::{json, Value};

struct Counting;

/// Bytes allocated and not yet freed, by this test binary (one test: nothing runs alongside).
static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::SeqCst);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::SeqCst);
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as isize - layout.size() as isize, Ordering::SeqCst);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn example(name: &str) -> Value {
    let path = format!("{}/../examples/tenants/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_slice(&std::fs::read(&path).expect("example config")).expect("JSON")
}

/// (what the parsed config holds, its estimate) for `config`.
fn held_and_estimated(config: &Value) -> (usize, usize) {
    let document = serde_json::to_vec(config).expect("JSON");
    let before = LIVE.load(Ordering::SeqCst);
    let parsed = TenantConfig::parse(&document).expect("a valid config");
    let held = (LIVE.load(Ordering::SeqCst) - before) as usize;
    let estimated = parsed.resident_bytes(document.len());
    (held, estimated)
}

#[test]
fn the_estimate_bounds_what_a_config_holds() {
    // Custom patterns whose automata are large (Unicode classes under a repetition) and small.
    let mut patterned = example("acme-eu.json");
    patterned["guardrails"]["custom_patterns"] = json!([
        {"name": "digits", "regex": "ID-\\d{1,60}", "mode": "redact", "placeholder": "ID"},
        {"name": "mrn", "regex": "MRN-[0-9]{8}", "mode": "block"}
    ]);
    // The most deny terms validation allows, of the longest length, sharing no prefix beyond
    // their first characters: the largest trie.
    let mut denying = example("acme-eu.json");
    let terms: Vec<String> = (0..1000)
        .map(|i| {
            let head = format!("{i:04}");
            let tail: String = (0..124)
                .map(|j| char::from(b'a' + ((i * 7 + j) % 26) as u8))
                .collect();
            head + &tail
        })
        .collect();
    denying["guardrails"]["deny_terms"] = json!(terms);
    let cases = [
        ("acme-eu.json", example("acme-eu.json")),
        ("demo-local.json", example("demo-local.json")),
        ("demo-us-openai.json", example("demo-us-openai.json")),
        ("custom patterns", patterned),
        ("1,000 deny terms of 128 characters", denying),
    ];
    // The built-in rules' tables are compiled once per process, by the first config that turns
    // them on: not a config's own memory.
    held_and_estimated(&example("acme-eu.json"));
    for (name, config) in cases {
        let (held, estimated) = held_and_estimated(&config);
        assert!(
            estimated >= held,
            "{name}: estimated {estimated} bytes, holds {held}"
        );
        assert!(
            estimated <= 3 * held,
            "{name}: estimated {estimated} bytes, over three times the {held} it holds"
        );
    }
}

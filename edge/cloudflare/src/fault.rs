//! Fault injection for the end-to-end tests, honoured only by the loopback development region
//! (`local`): a var names the fault, and is read once per isolate (a var crossing the JS boundary
//! on every request was ~1.5% of the isolate's time in the bench, which serves that region).
//! - `ASC_FAULT_AFTER_DELAY_MS`: the work after each response is held back that long, so a test
//!   can kill the isolate between a response and its commit;
//! - `ASC_FAULT_TRAP_PATH`: a request to that path panics (a wasm trap);
//! - `ASC_FAULT_TRAP_LEDGER`: the first operation on that ledger in an isolate panics while it
//!   holds the ledger;
//! - `ASC_FAULT_PUBLISH_REFUSED`: `1` makes every KV write of the admin stores fail.

use std::cell::RefCell;

use wasm_bindgen::JsValue;

use crate::js;

#[cfg(not(feature = "control"))]
pub const AFTER_DELAY_MS: &str = "ASC_FAULT_AFTER_DELAY_MS";
#[cfg(not(feature = "control"))]
pub const TRAP_PATH: &str = "ASC_FAULT_TRAP_PATH";
#[cfg(feature = "control")]
pub const TRAP_LEDGER: &str = "ASC_FAULT_TRAP_LEDGER";
#[cfg(feature = "control")]
pub const PUBLISH_REFUSED: &str = "ASC_FAULT_PUBLISH_REFUSED";

thread_local! {
    // At most four entries: a list (a map's hashing cost ~0.5 KB of gzip in each Worker).
    static VARS: RefCell<Vec<(&'static str, Option<String>)>> = const { RefCell::new(Vec::new()) };
}

/// `f` of the fault var `name` (`None` when unset or outside the loopback region).
fn with_var<R>(
    local: bool,
    env: &JsValue,
    name: &'static str,
    f: impl FnOnce(Option<&str>) -> R,
) -> R {
    if !local {
        return f(None);
    }
    VARS.with(|vars| {
        let mut vars = vars.borrow_mut();
        let at = match vars.iter().position(|(n, _)| *n == name) {
            Some(at) => at,
            None => {
                vars.push((name, js::env_string(env, name)));
                vars.len() - 1
            }
        };
        f(vars[at].1.as_deref())
    })
}

/// Whether the fault var `name` is set to `value`.
pub fn is(local: bool, env: &JsValue, name: &'static str, value: &str) -> bool {
    with_var(local, env, name, |v| v == Some(value))
}

#[cfg(not(feature = "control"))]
/// The fault var `name` as milliseconds (0 when unset or not a number).
pub fn ms(local: bool, env: &JsValue, name: &'static str) -> u64 {
    with_var(local, env, name, |v| {
        v.and_then(|v| v.trim().parse().ok()).unwrap_or(0)
    })
}

//! The JS functions the adapter calls (`js/host.js`, and `js/objects.js` for the control plane's
//! own), each one crossing of the boundary.

use js_sys::{Promise, Uint8Array};
use wasm_bindgen::prelude::*;

#[wasm_bindgen(module = "/js/host.js")]
extern "C" {
    #[wasm_bindgen(js_name = sha256Into)]
    pub fn sha256_into(bytes: &[u8], out: &mut [u8]);

    #[wasm_bindgen(js_name = fullResponse)]
    pub fn full_response(status: u16, head: &str, body: &[u8]) -> JsValue;
    #[wasm_bindgen(js_name = streamResponse)]
    pub fn stream_response(status: u16, head: &str, relay: JsValue, ctx: &JsValue) -> JsValue;
    #[wasm_bindgen(js_name = waitUntil)]
    pub fn wait_until(ctx: &JsValue, promise: Promise);

    /// The request forwarded to the control plane's Worker, or `None` without a `CONTROL`
    /// binding.
    #[wasm_bindgen(js_name = toControl)]
    pub fn to_control(env: &JsValue, request: &JsValue) -> Option<Promise>;

    /// What a config's guardrails need compiled (`GuardSources` as JSON), compiled by the
    /// control plane's Worker: its answer's bytes.
    #[wasm_bindgen(js_name = compileGuard)]
    pub fn compile_guard(env: &JsValue, sources: &str) -> Promise;

    #[wasm_bindgen(js_name = readAll)]
    pub fn read_all(source: &JsValue, limit: f64) -> Promise;
    #[wasm_bindgen(js_name = chunkReader)]
    pub fn chunk_reader(source: &JsValue) -> JsValue;

    pub fn send(url: &str, method: &str, head: &str, body: &[u8], timeout_ms: f64) -> Promise;

    #[wasm_bindgen(js_name = envString)]
    pub fn env_string(env: &JsValue, name: &str) -> Option<String>;

    /// True the first time `name` is asked for in this isolate, across wasm restarts (a test
    /// fault that fires once).
    #[wasm_bindgen(js_name = firstTime)]
    pub fn first_time(name: &str) -> bool;
    #[wasm_bindgen(js_name = kvGet)]
    pub fn kv_get(env: &JsValue, binding: &str, key: &str) -> Promise;

    #[wasm_bindgen(js_name = kvPut)]
    pub fn kv_put(env: &JsValue, binding: &str, key: &str, value: &str) -> Promise;
    /// Key names under `prefix` (at most `limit`), NUL-separated.
    #[wasm_bindgen(js_name = kvList)]
    pub fn kv_list(env: &JsValue, binding: &str, prefix: &str, limit: u32) -> Promise;
    #[wasm_bindgen(js_name = kvDelete)]
    pub fn kv_delete(env: &JsValue, binding: &str, key: &str) -> Promise;

    #[wasm_bindgen(js_name = ledgerCall, catch)]
    pub fn ledger_call(
        env: &JsValue,
        ctx: &JsValue,
        jurisdiction: Option<String>,
        name: &str,
        op: &str,
    ) -> Result<Promise, JsValue>;
    /// `undefined` when another request sends the commit, else a promise of the call's last
    /// reply.
    #[wasm_bindgen(js_name = ledgerCommit, catch)]
    pub fn ledger_commit(
        env: &JsValue,
        jurisdiction: Option<String>,
        name: &str,
        op: &str,
        delay_ms: u32,
    ) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(js_name = circuitCall, catch)]
    pub fn circuit_call(
        env: &JsValue,
        jurisdiction: Option<String>,
        tenant: &str,
        op: &str,
    ) -> Result<Promise, JsValue>;
    #[wasm_bindgen(js_name = cacheGet)]
    pub fn cache_get(env: &JsValue, name: &str) -> Promise;
    #[wasm_bindgen(js_name = cachePut)]
    pub fn cache_put(env: &JsValue, name: &str, bytes: &[u8], expires_ms: f64) -> Promise;

}

/// The control plane's own calls (`js/objects.js`), apart so the request plane's bundle does not
/// carry them (wasm-bindgen imports a module whole).
#[wasm_bindgen(module = "/js/objects.js")]
extern "C" {
    /// `kv_put`, failing after `ms` without an answer.
    #[wasm_bindgen(js_name = kvPutWithin)]
    pub fn kv_put_within(env: &JsValue, binding: &str, key: &str, value: &str, ms: f64) -> Promise;

    #[wasm_bindgen(js_name = adminCall, catch)]
    pub fn admin_call(
        env: &JsValue,
        jurisdiction: Option<String>,
        tenant: &str,
        op: &str,
    ) -> Result<Promise, JsValue>;

    #[wasm_bindgen(js_name = auditAppend, catch)]
    pub fn audit_append(
        env: &JsValue,
        jurisdiction: Option<String>,
        stream: &str,
        batch: &str,
    ) -> Result<Promise, JsValue>;

    #[wasm_bindgen(js_name = auditEnsure, catch)]
    pub fn audit_ensure(
        env: &JsValue,
        jurisdiction: Option<String>,
        stream: &str,
    ) -> Result<Promise, JsValue>;

    #[wasm_bindgen(js_name = storageAll)]
    pub fn storage_all(storage: &JsValue, prefix: &str) -> Promise;
    #[wasm_bindgen(js_name = storageGet)]
    pub fn storage_get(storage: &JsValue, key: &str) -> Promise;
    /// A tenant admin store's rows, its older versions' configs left out.
    #[wasm_bindgen(js_name = adminRows)]
    pub fn admin_rows(storage: &JsValue) -> Promise;
    #[wasm_bindgen(js_name = storageWrite)]
    pub fn storage_write(storage: &JsValue, puts: &str, deletes: &str);
    #[wasm_bindgen(js_name = storageSetAlarm)]
    pub fn storage_set_alarm(storage: &JsValue, at: f64);
    #[wasm_bindgen(js_name = storageGetAlarm)]
    pub fn storage_get_alarm(storage: &JsValue) -> Promise;

    #[wasm_bindgen(js_name = assetResponse)]
    pub fn asset_response(env: &JsValue, request: &JsValue, head: &str) -> Promise;
    #[wasm_bindgen(js_name = bucketList)]
    pub fn bucket_list(
        env: &JsValue,
        binding: &str,
        prefix: &str,
        start_after: Option<String>,
        limit: u32,
    ) -> Promise;
    #[wasm_bindgen(js_name = bucketGet)]
    pub fn bucket_get(env: &JsValue, binding: &str, key: &str) -> Promise;

    #[wasm_bindgen(js_name = bucketPut)]
    pub fn bucket_put(
        env: &JsValue,
        binding: &str,
        key: &str,
        bytes: &[u8],
        content_type: &str,
    ) -> Promise;
}

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = console, js_name = error)]
    pub fn log_error(message: &str);
}

/// A chunk reader's `next()`.
#[wasm_bindgen]
extern "C" {
    pub type ChunkReader;
    #[wasm_bindgen(method)]
    pub fn next(this: &ChunkReader) -> Promise;
}

/// Largest integer a JS number holds exactly (`Number.MAX_SAFE_INTEGER`, 2^53 - 1).
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// `n` as a JS number, exactly: the few integers that cross as numbers (timeouts, body limits,
/// alarm times) come from validated config or the clock and are far below 2^53; should one ever
/// exceed it, it is clamped (a longer timeout, a later alarm) rather than rounded to a neighbour.
pub fn number(n: u64) -> f64 {
    n.min(MAX_SAFE_INTEGER) as f64
}

/// A JS number as a `u64`, if it is a non-negative integer it holds exactly.
#[cfg(feature = "control")]
pub fn integer(v: &JsValue) -> Option<u64> {
    v.as_f64()
        .filter(|f| f.fract() == 0.0 && (0.0..=MAX_SAFE_INTEGER as f64).contains(f))
        .map(|f| f as u64)
}

/// Awaits a promise (`wait.rs`: no closures per await).
pub fn wait(promise: Promise) -> crate::wait::Wait {
    crate::wait::Wait::new(promise)
}

/// A JS error's message, for logs and host errors (never sent to clients).
pub fn describe(e: &JsValue) -> String {
    if let Some(s) = e.as_string() {
        return s;
    }
    js_sys::Reflect::get(e, &JsValue::from_str("message"))
        .ok()
        .and_then(|m| m.as_string())
        .unwrap_or_else(|| "unknown JS error".into())
}

/// Bytes from a `Uint8Array` (or `undefined`).
pub fn bytes(value: &JsValue) -> Option<Vec<u8>> {
    (!value.is_undefined() && !value.is_null()).then(|| Uint8Array::new(value).to_vec())
}

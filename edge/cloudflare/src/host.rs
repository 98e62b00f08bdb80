//! `Host` on Workers: KV for tenant configs and key records, the tenant ledger and circuit board
//! Durable Objects by RPC, fetch for upstream calls. Each is one call into `js/host.js`.

use std::cell::RefCell;
use std::collections::HashMap;

use asc_core::host::{EgressApproved, Host, HostError, UpstreamResponse};
use asc_core::ids::TenantId;
use asc_core::ledger::{LedgerId, LedgerOp, LedgerReply};

/// Group commit windows (host.js): a write-ahead request's commit waits at most this long for
/// others to share its ledger call...
const COMMIT_DELAY_MS: u32 = 5;
/// ...and a leased request's, longer: nothing else carries it, and its lease covers the wait.
const LEASED_COMMIT_DELAY_MS: u32 = 25;
use asc_core::response_cache::CacheKey;
use asc_core::routing::circuit::{CircuitOp, CircuitReply};
use asc_core::secret::{Secret, SecretRef};
use asc_core::tenant_store::{StoreOp, StoreReply};
use asc_core::time::Timestamp;
use js_sys::Array;
use wasm_bindgen::{JsCast, JsValue};

use crate::body::WorkerBody;
use crate::js;

/// The body size from which `node:crypto` hashes faster than wasm (see `WorkerHost::sha256`).
const NATIVE_SHA256_FROM: usize = 512;

pub const CONFIG_KV: &str = "ASC_CONFIG";
/// The config store's keys that mark a tenant ledger for the alert sweep: `alerts-due:<ledger>`,
/// put by the ledger object when an alert no request carried is due
/// (`TenantLedger::alerts_sweep_due_ms`), taken by the request plane's cron (`sweep_alerts`).
pub const ALERT_SWEEP_PREFIX: &str = "alerts-due:";
/// Put with every marker: the sweep reads this one key each minute and lists the markers only
/// when it is there (a `get` a minute instead of a `list`: Workers Free allows 1,000 lists a day).
pub const ALERT_SWEEP_FLAG: &str = "alerts-due";
/// The R2 bucket of the response cache (in the region's jurisdiction).
const CACHE_BUCKET: &str = "ASC_CACHE";
/// The R2 bucket of the audit trail (batches and digests), read by the admin plane's search.
const AUDIT_BUCKET: &str = "AUDIT_BUCKET";

thread_local! {
    /// Secrets by name, read once per isolate (a new secret value means a new deployment, and
    /// so new isolates).
    static SECRETS: RefCell<HashMap<String, Option<String>>> = RefCell::new(HashMap::new());
}

pub struct WorkerHost {
    env: JsValue,
    /// The request's ExecutionContext: a ledger call that carries other requests' operations
    /// is kept alive past its own request with `waitUntil` (host.js, `ledgerCall`).
    ctx: JsValue,
    /// Where this region's Durable Objects must live (`eu`, `us`, ...), if pinned.
    jurisdiction: Option<String>,
}

fn store_err(what: &str) -> impl Fn(JsValue) -> HostError + '_ {
    move |e| HostError::Store(format!("{what}: {}", js::describe(&e)))
}

impl WorkerHost {
    pub fn new(env: JsValue, ctx: JsValue, jurisdiction: Option<String>) -> Self {
        WorkerHost {
            env,
            ctx,
            jurisdiction,
        }
    }
}

/// `name NUL value ...`
pub fn flat_headers(headers: &[(String, String)]) -> String {
    let mut out = String::new();
    for (n, v) in headers {
        if !out.is_empty() {
            out.push('\0');
        }
        out.push_str(n);
        out.push('\0');
        out.push_str(v);
    }
    out
}

/// Pairs from `name NUL value ...`, names lowercased.
pub fn parse_flat(flat: &str) -> Vec<(String, String)> {
    let mut parts = flat.split('\0');
    let mut out = Vec::new();
    while let (Some(n), Some(v)) = (parts.next(), parts.next()) {
        out.push((n.to_ascii_lowercase(), v.to_string()));
    }
    out
}

/// SHA-256 by whichever is cheaper for `bytes`' length. In a loop (`node
/// tests/bench/sha-cutoff/run.mjs`: 20,000 calls per size in one request, sha2 built at "z" as
/// here) wasm takes ~0.4-0.5 us a 64-byte block and node:crypto's `createHash` ~2 us a call
/// before ~0.6 ns a byte, which puts the crossing near 300 bytes. Through the gateway no gain
/// shows: with the line at 320 (the bench's 410-byte bodies hashed by node:crypto) the
/// interleaved A/B against 512 read throughput 0.978 / 0.968 and CPU 1.023 / 1.047 (write-ahead /
/// leased, 6 rounds), within the 1-3% that A/B leans against its B (`docs/benchmarks.md`). A
/// saving of ~0.5 us a request is below what it can see, so the line stays at 512.
pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    if bytes.len() < NATIVE_SHA256_FROM {
        return asc_core::host::software_sha256(bytes);
    }
    let mut digest = [0u8; 32];
    js::sha256_into(bytes, &mut digest);
    digest
}

impl Host for WorkerHost {
    type Body = WorkerBody;

    fn now(&self) -> Timestamp {
        Timestamp(js_sys::Date::now() as u64)
    }

    fn fill_random(&self, buf: &mut [u8]) {
        // crypto.getRandomValues cannot fail on workerd; zeroes would still be unique enough
        // for request ids combined with the clock, and are never a key.
        let _ = getrandom::getrandom(buf);
    }

    fn sha256(&self, bytes: &[u8]) -> [u8; 32] {
        sha256(bytes)
    }

    fn secret(&self, name: &SecretRef) -> Option<Secret> {
        let value = SECRETS.with(|s| {
            s.borrow_mut()
                .entry(name.name().to_string())
                .or_insert_with(|| js::env_string(&self.env, name.name()))
                .clone()
        });
        value.map(Secret::new)
    }

    async fn kv_get(&self, key: &str) -> Result<Option<Vec<u8>>, HostError> {
        let value = js::wait(js::kv_get(&self.env, CONFIG_KV, key))
            .await
            .map_err(store_err(CONFIG_KV))?;
        Ok(js::bytes(&value))
    }

    async fn send(&self, req: EgressApproved) -> Result<UpstreamResponse<WorkerBody>, HostError> {
        let promise = js::send(
            req.url().as_str(),
            req.method(),
            &flat_headers(req.headers()),
            req.body(),
            js::number(req.timeout_ms()),
        );
        let result: Array = js::wait(promise)
            .await
            .map_err(|e| HostError::Unreachable(js::describe(&e)))?
            .into();
        match result.get(0).as_f64() {
            Some(status) => Ok(UpstreamResponse {
                status: status as u16,
                headers: parse_flat(&result.get(1).as_string().unwrap_or_default()),
                body: WorkerBody::of(result.get(2)),
            }),
            None if result.get(0).as_string().as_deref() == Some("timeout") => {
                Err(HostError::Timeout)
            }
            None => Err(HostError::Unreachable(
                result.get(1).as_string().unwrap_or_default(),
            )),
        }
    }

    async fn ledger(&self, ledger: &LedgerId, op: LedgerOp) -> Result<LedgerReply, HostError> {
        let json =
            asc_core::json_ser::to_string(&op).map_err(|e| HostError::Store(e.to_string()))?;
        let promise = js::ledger_call(
            &self.env,
            &self.ctx,
            self.jurisdiction.clone(),
            ledger.as_str(),
            &json,
        )
        .map_err(store_err("TENANT_LEDGERS"))?;
        let reply = js::wait(promise)
            .await
            .map_err(store_err("TENANT_LEDGERS"))?
            .as_string()
            .unwrap_or_default();
        serde_json::from_str(&reply).map_err(|e| HostError::Store(format!("TENANT_LEDGERS: {e}")))
    }

    async fn ledger_after_response(
        &self,
        ledger: &LedgerId,
        op: LedgerOp,
    ) -> Result<Vec<asc_core::alerts::AlertEvent>, HostError> {
        let json =
            asc_core::json_ser::to_string(&op).map_err(|e| HostError::Store(e.to_string()))?;
        // How long a commit may wait for others to share its call (see host.js).
        let delay_ms = match &op {
            LedgerOp::Commit(c) if c.lease.is_some() => LEASED_COMMIT_DELAY_MS,
            LedgerOp::CloseLease { .. } => LEASED_COMMIT_DELAY_MS,
            _ => COMMIT_DELAY_MS,
        };
        let sending = js::ledger_commit(
            &self.env,
            self.jurisdiction.clone(),
            ledger.as_str(),
            &json,
            delay_ms,
        )
        .map_err(store_err("TENANT_LEDGERS"))?;
        // Queued for another request's call: nothing to wait for (no promise, and with nothing
        // else pending, no `waitUntil`: see request.rs).
        if sending.is_undefined() {
            return Ok(Vec::new());
        }
        let last_reply = js::wait(sending.unchecked_into())
            .await
            .map_err(store_err("TENANT_LEDGERS"))?;
        // Only the sender of a call gets its last reply; only a reply that hands alerts over
        // is worth reading (most replies to a commit have none: skip them unparsed).
        Ok(match last_reply.as_string() {
            Some(json) if json.contains("\"alerts\"") => serde_json::from_str::<LedgerReply>(&json)
                .map(LedgerReply::into_alerts)
                .unwrap_or_default(),
            _ => Vec::new(),
        })
    }

    async fn ledger_records_after_response(
        &self,
        ledger: &LedgerId,
        ops: Vec<LedgerOp>,
    ) -> Vec<HostError> {
        // Every op is queued before any is awaited: host.js sends them in calls of up to 64.
        let mut failures = Vec::new();
        let mut sending = Vec::new();
        for op in ops {
            let queued = asc_core::json_ser::to_string(&op)
                .map_err(|e| HostError::Store(e.to_string()))
                .and_then(|json| {
                    js::ledger_commit(
                        &self.env,
                        self.jurisdiction.clone(),
                        ledger.as_str(),
                        &json,
                        COMMIT_DELAY_MS,
                    )
                    .map_err(store_err("TENANT_LEDGERS"))
                });
            match queued {
                Ok(promise) if !promise.is_undefined() => sending.push(promise),
                Ok(_) => {}
                Err(e) => failures.push(e),
            }
        }
        for promise in sending {
            if let Err(e) = js::wait(promise.unchecked_into()).await {
                failures.push(store_err("TENANT_LEDGERS")(e));
            }
        }
        failures
    }

    async fn circuits(&self, tenant: &TenantId, op: &CircuitOp) -> Result<CircuitReply, HostError> {
        let json =
            asc_core::json_ser::to_string(op).map_err(|e| HostError::Store(e.to_string()))?;
        let promise =
            js::circuit_call(&self.env, self.jurisdiction.clone(), tenant.as_str(), &json)
                .map_err(store_err("CIRCUIT_BOARDS"))?;
        let reply = js::wait(promise)
            .await
            .map_err(store_err("CIRCUIT_BOARDS"))?
            .as_string()
            .unwrap_or_default();
        serde_json::from_str(&reply).map_err(|e| HostError::Store(format!("CIRCUIT_BOARDS: {e}")))
    }

    async fn cache_get(&self, key: &CacheKey) -> Result<Option<Vec<u8>>, HostError> {
        let value = js::wait(js::cache_get(&self.env, &key.storage_name()))
            .await
            .map_err(store_err(CACHE_BUCKET))?;
        Ok(js::bytes(&value))
    }

    async fn cache_put(
        &self,
        key: &CacheKey,
        entry: &[u8],
        expires_ms: u64,
    ) -> Result<(), HostError> {
        js::wait(js::cache_put(
            &self.env,
            &key.storage_name(),
            entry,
            expires_ms as f64,
        ))
        .await
        .map(|_| ())
        .map_err(store_err(CACHE_BUCKET))
    }

    async fn tenant_store(&self, tenant: &TenantId, op: &StoreOp) -> Result<StoreReply, HostError> {
        let json =
            asc_core::json_ser::to_string(op).map_err(|e| HostError::Store(e.to_string()))?;
        let promise = js::admin_call(&self.env, self.jurisdiction.clone(), tenant.as_str(), &json)
            .map_err(store_err("TENANT_ADMIN"))?;
        let reply = js::wait(promise)
            .await
            .map_err(store_err("TENANT_ADMIN"))?
            .as_string()
            .unwrap_or_default();
        serde_json::from_str(&reply).map_err(|e| HostError::Store(format!("TENANT_ADMIN: {e}")))
    }

    async fn audit_list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, HostError> {
        let listed = js::wait(js::bucket_list(
            &self.env,
            AUDIT_BUCKET,
            prefix,
            start_after.map(str::to_string),
            limit,
        ))
        .await
        .map_err(store_err(AUDIT_BUCKET))?
        .as_string()
        .unwrap_or_default();
        Ok(listed
            .split('\0')
            .filter(|k| !k.is_empty())
            .map(str::to_string)
            .collect())
    }

    async fn audit_get(&self, key: &str) -> Result<Option<Vec<u8>>, HostError> {
        let value = js::wait(js::bucket_get(&self.env, AUDIT_BUCKET, key))
            .await
            .map_err(store_err(AUDIT_BUCKET))?;
        Ok(js::bytes(&value))
    }

    /// The request plane has no regex compiler or case tables (see
    /// `asc_core::guard::CompiledGuard`): the control plane's Worker compiles what a config's
    /// guardrails need, once per config version an isolate loads. The control plane's own build
    /// compiles it itself.
    #[cfg(not(feature = "control"))]
    async fn compile_guard(
        &self,
        sources: &asc_core::guard::GuardSources,
    ) -> Result<asc_core::guard::CompiledGuard, HostError> {
        let what = "guardrail compiler";
        let request =
            serde_json::to_string(sources).map_err(|e| HostError::Store(e.to_string()))?;
        let answer = js::wait(js::compile_guard(&self.env, &request))
            .await
            .map_err(store_err(what))?;
        let bytes = js::bytes(&answer).unwrap_or_default();
        asc_core::guard::CompiledGuard::from_wire(sources, &bytes)
            .map_err(|e| HostError::Store(format!("{what}: {e}")))
    }

    async fn sleep(&self, ms: u64) {
        // A retry's backoff, or a request waiting for its isolate's lease call (a few per
        // lease): a timer resumes the request from its own I/O (see pipeline::lease).
        let promise = js_sys::Promise::new(&mut |resolve, _| {
            set_timeout(&resolve, js::number(ms));
        });
        let _ = js::wait(promise).await;
    }
}

#[wasm_bindgen::prelude::wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(callback: &js_sys::Function, ms: f64) -> JsValue;
}

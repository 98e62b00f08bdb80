//! The seam: what the core needs from the platform. The Worker, the Spin component and the fake
//! host of the scenario tests implement `Host`; the pipeline is written once against it.

use std::fmt;

use url::Url;

use crate::error::GatewayError;
pub use crate::error::HostError;
use crate::guard::{CompiledGuard, GuardSources};
use crate::ids::TenantId;
use crate::ledger::{LedgerId, LedgerOp, LedgerReply};
use crate::region::Region;
use crate::response_cache::CacheKey;
use crate::routing::circuit::{CircuitOp, CircuitReply};
use crate::secret::{Secret, SecretRef};
use crate::tenant_store::{StoreOp, StoreReply};
use crate::time::Timestamp;

/// A request bound for an upstream. It can only be built by `EgressApproved::check`, so nothing
/// reaches `Host::send` without passing the region's egress gate.
pub struct EgressApproved {
    url: Url,
    method: &'static str,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    timeout_ms: u64,
}

impl EgressApproved {
    /// The one egress check every outbound request passes.
    pub fn check(
        region: &Region,
        url: Url,
        method: &'static str,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        timeout_ms: u64,
    ) -> Result<Self, GatewayError> {
        region.check_egress(&url)?;
        Ok(EgressApproved {
            url,
            method,
            headers,
            body,
            timeout_ms,
        })
    }

    /// The admin plane's gate for fetching an identity provider's signing keys (JWKS): the
    /// region's upstream allowlist or its `admin_allowed_hosts`. A GET without credentials.
    pub fn check_admin(region: &Region, url: Url, timeout_ms: u64) -> Result<Self, GatewayError> {
        region.check_admin_egress(&url)?;
        Ok(EgressApproved {
            url,
            method: "GET",
            headers: vec![("accept".into(), "application/json".into())],
            body: Vec::new(),
            timeout_ms,
        })
    }

    /// A telemetry export (OTLP/HTTP POST) to the region's collector: `telemetry_hosts` only.
    pub fn check_telemetry(
        region: &Region,
        url: Url,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        timeout_ms: u64,
    ) -> Result<Self, GatewayError> {
        region.check_telemetry_egress(&url)?;
        Ok(Self::post(url, headers, body, timeout_ms))
    }

    /// An alert webhook delivery (POST): the region's `webhook_hosts` only.
    pub fn check_webhook(
        region: &Region,
        url: Url,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        timeout_ms: u64,
    ) -> Result<Self, GatewayError> {
        region.check_webhook_egress(&url)?;
        Ok(Self::post(url, headers, body, timeout_ms))
    }

    fn post(url: Url, headers: Vec<(String, String)>, body: Vec<u8>, timeout_ms: u64) -> Self {
        EgressApproved {
            url,
            method: "POST",
            headers,
            body,
            timeout_ms,
        }
    }

    pub fn url(&self) -> &Url {
        &self.url
    }
    pub fn method(&self) -> &'static str {
        self.method
    }
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }
    pub fn body(&self) -> &[u8] {
        &self.body
    }
    /// Time allowed until the response headers arrive.
    pub fn timeout_ms(&self) -> u64 {
        self.timeout_ms
    }
}

impl fmt::Debug for EgressApproved {
    // Headers carry the upstream credential: never print them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EgressApproved")
            .field("method", &self.method)
            .field("url", &self.url.as_str())
            .field("body_bytes", &self.body.len())
            .finish_non_exhaustive()
    }
}

/// The value of header `name` (any case), if present.
pub fn find_header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// An upstream response whose body is read chunk by chunk.
pub struct UpstreamResponse<B> {
    pub status: u16,
    /// Lowercase names.
    pub headers: Vec<(String, String)>,
    pub body: B,
}

impl<B> UpstreamResponse<B> {
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

/// A body that arrives in chunks (an upstream response, a client request).
#[allow(async_fn_in_trait)]
pub trait ByteSource {
    /// The next chunk, or `None` at a clean end.
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, HostError>;

    /// The whole body, refusing more than `limit` bytes without reading further. Adapters may
    /// override it when the platform reads a body of known length in one call more cheaply
    /// than chunk by chunk (Workers: one `arrayBuffer()` instead of a stream reader).
    async fn read_all(&mut self, limit: u64) -> Result<Result<Vec<u8>, TooLarge>, HostError>
    where
        Self: Sized,
    {
        read_chunks(self, limit).await
    }
}

/// Reads chunk by chunk up to `limit` bytes (what `read_all` does unless an adapter knows better).
pub async fn read_chunks<S: ByteSource>(
    source: &mut S,
    limit: u64,
) -> Result<Result<Vec<u8>, TooLarge>, HostError> {
    let mut out = Vec::new();
    while let Some(chunk) = source.next_chunk().await? {
        if out.len() as u64 + chunk.len() as u64 > limit {
            return Ok(Err(TooLarge));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(Ok(out))
}

/// Reads a whole body, refusing more than `limit` bytes without reading further.
pub async fn read_limited<S: ByteSource>(
    source: &mut S,
    limit: u64,
) -> Result<Result<Vec<u8>, TooLarge>, HostError> {
    source.read_all(limit).await
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLarge;

/// A chunked body already in memory (tests, small bodies).
pub struct Chunks(pub std::collections::VecDeque<Vec<u8>>);

impl ByteSource for Chunks {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, HostError> {
        Ok(self.0.pop_front())
    }
}

/// SHA-256 in software (`Host::sha256`'s default; hosts use it below their native digest's
/// break-even size).
pub fn software_sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

/// What the platform gives the core. No `Send` bounds: workerd futures are not `Send`.
#[allow(async_fn_in_trait)]
pub trait Host {
    type Body: ByteSource;

    /// The current time; the core never reads a clock itself.
    fn now(&self) -> Timestamp;
    /// Cryptographically random bytes (request ids, trace ids).
    fn fill_random(&self, buf: &mut [u8]);
    /// SHA-256 of a whole body (what a record's `prompt_sha256` and `response_sha256` hold).
    /// In software by default; a host with a native digest overrides it: in wasm the software
    /// one costs ~9 ns a byte on workerd (~0.9 ms for a 100 KB prompt), `node:crypto` ~0.9 ns.
    fn sha256(&self, bytes: &[u8]) -> [u8; 32] {
        software_sha256(bytes)
    }
    /// Resolves a secret by name; `None` if the deployment has no such secret.
    fn secret(&self, name: &SecretRef) -> Option<Secret>;
    /// Reads a value from the deployment's config store (Workers KV, Spin key-value).
    async fn kv_get(&self, key: &str) -> Result<Option<Vec<u8>>, HostError>;
    /// Sends an egress-approved request; returns once the response headers have arrived.
    async fn send(&self, req: EgressApproved) -> Result<UpstreamResponse<Self::Body>, HostError>;
    /// Applies one operation to a tenant ledger ([`crate::ledger::TenantLedger`]: budgets, rate
    /// windows, the write-ahead records of requests in flight and the audit outbox), atomically
    /// and durably, in the region-wide store for that ledger (a Durable Object on Workers). The
    /// host forwards the ledger's outbox to the region's audit streams on its own schedule.
    async fn ledger(&self, ledger: &LedgerId, op: LedgerOp) -> Result<LedgerReply, HostError>;
    /// Applies an operation whose reply nobody waits for (a commit, after the response). A host
    /// may group it with other calls to the same ledger; by default it is sent at once. Returns
    /// the alerts the call handed over for delivery (a call ending with a commit claims the due
    /// ones: [`crate::ledger::TenantLedger::end_call`]), when this caller sent the call.
    async fn ledger_after_response(
        &self,
        ledger: &LedgerId,
        op: LedgerOp,
    ) -> Result<Vec<crate::alerts::AlertEvent>, HostError> {
        self.ledger(ledger, op).await.map(LedgerReply::into_alerts)
    }
    /// Applies operations nobody waits for and whose replies hand nothing over (records), all
    /// queued before any is awaited so a grouping host sends them in as few calls as it can.
    /// Returns what failed. By default each is sent in turn.
    async fn ledger_records_after_response(
        &self,
        ledger: &LedgerId,
        ops: Vec<LedgerOp>,
    ) -> Vec<HostError> {
        let mut failures = Vec::new();
        for op in ops {
            if let Err(e) = self.ledger_after_response(ledger, op).await {
                failures.push(e);
            }
        }
        failures
    }
    /// Applies one operation to a tenant's circuit board (breakers, retry budget), atomically,
    /// in the one store all isolates of the region share (a Durable Object on Workers).
    async fn circuits(&self, tenant: &TenantId, op: &CircuitOp) -> Result<CircuitReply, HostError>;
    /// Reads a response-cache entry from this region's cache store (`None`: no such entry).
    /// Entries carry their own expiry, which the core checks; a store may also drop them
    /// once expired.
    async fn cache_get(&self, key: &CacheKey) -> Result<Option<Vec<u8>>, HostError>;
    /// Writes a response-cache entry to this region's cache store, to be kept until
    /// `expires_ms`. Runs after the response.
    async fn cache_put(
        &self,
        key: &CacheKey,
        entry: &[u8],
        expires_ms: u64,
    ) -> Result<(), HostError>;
    /// Waits (a retry's backoff). Adapters use the platform's timer.
    async fn sleep(&self, ms: u64);
    /// Compiles what a config's guardrails need (custom patterns, deny terms' non-ASCII case
    /// classes) before it is validated; called once per config version an isolate loads, only
    /// for configs that need something. By default this build compiles them
    /// ([`CompiledGuard::local`]); the request plane's Worker, built without a regex compiler or
    /// case tables, asks the control plane.
    async fn compile_guard(&self, sources: &GuardSources) -> Result<CompiledGuard, HostError> {
        let _ = sources;
        Ok(CompiledGuard::local())
    }
    /// Applies one operation to a tenant's admin store ([`crate::tenant_store::TenantStore`]:
    /// config versions and key records), atomically, in the region (a Durable Object on
    /// Workers). A change queues what it names in `publish` for the config store (`kv_get`
    /// reads it) in the same write; before answering, the host writes the store's whole queue
    /// there ([`crate::tenant_store::publish`]), sets the reply's `published`, and retries what
    /// failed later, on its own. A host without an admin store says so; the admin API then
    /// answers 503.
    async fn tenant_store(&self, tenant: &TenantId, op: &StoreOp) -> Result<StoreReply, HostError> {
        let _ = (tenant, op);
        Err(HostError::Store(
            "this host has no tenant admin store".into(),
        ))
    }
    /// Names of objects in this region's audit bucket under `prefix`, in ascending order,
    /// starting after `start_after`, at most `limit` (the admin plane's audit search). A host
    /// that cannot read its bucket says so; the search then answers 503.
    async fn audit_list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, HostError> {
        let _ = (prefix, start_after, limit);
        Err(HostError::Store(
            "this host cannot read its audit bucket".into(),
        ))
    }
    /// One object of this region's audit bucket (`None`: no such object).
    async fn audit_get(&self, key: &str) -> Result<Option<Vec<u8>>, HostError> {
        let _ = key;
        Err(HostError::Store(
            "this host cannot read its audit bucket".into(),
        ))
    }
}

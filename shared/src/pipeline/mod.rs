//! The request pipeline, written once against `Host`: route, host check, authenticate, load the
//! tenant, check residency and limits, then the operation. Every reply carries `x-request-id`.

mod admission;
mod after;
mod analytics;
mod attempts;
mod auth;
mod cached;
mod chat;
mod circuits;
mod dialect;
mod embeddings;
mod exchange;
mod explain;
mod hit;
pub mod http;
mod lease;
mod models;
mod observe;
mod plan;
mod provider;
mod refusals;
pub mod relay;
mod upstream;
mod usage;

pub use admission::{Charge, Counted, MAX_OUTPUT_TOKENS, PRICE_TABLE_RECORD};
pub use after::{AfterResponse, Deferred};
pub use analytics::analytics_ask;
pub(crate) use chat::record_guardrails;
pub(crate) use exchange::Exchange;
pub use http::{Inbound, Reply, ReplyBody};
pub use refusals::{Unattributed, MAX_GROUPS as MAX_REFUSAL_GROUPS, UNATTRIBUTED_LEDGER};
pub use relay::{Relay, StreamStats};

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use crate::apikey::{KeyRecord, Scope};
use crate::audit::{AuditEvent, AuditRecord, Outcome};
use crate::budget::PriceTable;
use crate::cache::TtlCache;
use crate::config::{ConfigErrors, TenantConfig};
use crate::error::{ErrorKind, GatewayError};
use crate::host::{ByteSource, Host, HostError};
use crate::providers::Dialect;
use crate::region::{Region, RegionCatalog};
use crate::secret::SecretRef;
use crate::time::Timestamp;
use crate::trace::TraceContext;

/// Deployment settings the adapter passes in (from its environment, never read by the core).
#[derive(Debug, Clone)]
pub struct Settings {
    /// The secret keyed into API-key hashes.
    pub key_hash_secret: SecretRef,
    pub tenant_cache_ttl_ms: u64,
    /// What an isolate's copies of tenant configs may hold in memory together (as estimated by
    /// `pipeline/auth.rs`); past it, the least recently used go first.
    pub tenant_cache_bytes: usize,
    pub key_cache_ttl_ms: u64,
    /// Largest non-streaming upstream response accepted.
    pub max_upstream_response_bytes: u64,
    /// The OpenTelemetry collector execution records are exported to, if any.
    pub collector: Option<crate::telemetry::Collector>,
    /// Whether this host's isolates outlive a request, so tenants with `limits.admission =
    /// "leased"` can admit under leases (false on Spin: an instance serves one request).
    pub leases: bool,
    /// How long an isolate counts refusals before any tenant was known before it records them
    /// (`pipeline/refusals.rs`); 0 records each on its own (an instance that ends with its
    /// request has nothing to count across).
    pub refusal_window_ms: u64,
    /// The request header that carries the client's address as the platform saw it (the last
    /// one counts: Spin appends its own after any the client sent), recorded with refusals
    /// before a tenant was known.
    pub client_address_header: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            key_hash_secret: SecretRef("KEY_HASH_SECRET".into()),
            tenant_cache_ttl_ms: 30_000,
            // A quarter of a Workers isolate's 128 MB. Typical configs hold 3-30 KB; the
            // largest validation allows (8 MiB of pattern tables, 1,000 deny terms of 128
            // characters) in a document of the admin API's 1 MiB about 20 MB, and one past the
            // budget is kept alone.
            tenant_cache_bytes: 32 << 20,
            // Short: revocation takes effect within this (plus KV propagation).
            key_cache_ttl_ms: 10_000,
            max_upstream_response_bytes: 32 * 1024 * 1024,
            collector: None,
            leases: true,
            refusal_window_ms: 2_000,
            client_address_header: None,
        }
    }
}

type TenantEntry = Result<Rc<TenantConfig>, Rc<ConfigErrors>>;

/// The gateway of one deployment (one region). Adapters keep one per isolate; its caches are
/// per isolate by design (short TTLs), while counters and audit live in the host's shared stores.
pub struct Gateway {
    region: Region,
    regions: RegionCatalog,
    settings: Settings,
    tenants: RefCell<TtlCache<TenantEntry>>,
    keys: RefCell<TtlCache<Rc<KeyRecord>>>,
    /// The key-hashing MAC, keyed once per secret.
    key_hasher: RefCell<Option<crate::apikey::KeyHasher>>,
    prices: RefCell<TtlCache<Result<Rc<PriceTable>, String>>>,
    circuits: RefCell<TtlCache<circuits::Learned>>,
    /// Response-cache entries this isolate has read from the region's store, for a minute:
    /// repeated hits skip the store. Small entries only, so the memory stays bounded.
    recent_entries: RefCell<TtlCache<Rc<Vec<u8>>>>,
    /// Requests per tenant since this isolate last asked for a retry permit.
    retry_counts: RefCell<HashMap<String, u64>>,
    /// Execution records waiting for export.
    telemetry: RefCell<crate::telemetry::TelemetryBuffer>,
    /// This isolate's id among the deployment's, for the telemetry resource (made once).
    instance_id: RefCell<String>,
    /// Admission leases this isolate holds (shared with the exchanges admitted under them).
    leases: Rc<RefCell<lease::IsolateLeases>>,
    /// Refusals before a tenant was known, not recorded yet.
    refusals: RefCell<refusals::RefusalTally>,
}

/// A handled request: the reply for the client, and what to do once it has gone out.
pub struct Handled<S: ByteSource> {
    pub reply: Reply<S>,
    /// Run after the response (`ctx.waitUntil` on Workers); a stream's relay ends its own
    /// request when the adapter calls [`crate::pipeline::relay::Relay::finish`].
    pub after: AfterResponse,
}

/// What is known about the request as it moves through the pipeline.
pub(crate) struct RequestCtx {
    pub request_id: String,
    pub trace: TraceContext,
    pub started: Timestamp,
    /// Whether the request reached a tenant (an exchange owns its execution record then).
    pub reached_tenant: std::cell::Cell<bool>,
    /// Whether its key was accepted: a failure after that is its tenant's, never counted
    /// among the refusals before a tenant was known.
    pub authenticated: std::cell::Cell<bool>,
    /// What a refusal before a tenant was known records of the key presented: its lookup
    /// hash's prefix, and its id when its record was found (another region's tenant).
    pub presented_key: RefCell<(Option<String>, Option<String>)>,
}

/// The caller, once authenticated.
pub(crate) struct Caller {
    pub key: Rc<KeyRecord>,
    pub tenant: Rc<TenantConfig>,
}

enum Route {
    Health,
    Models,
    ChatCompletions,
    Messages,
    Embeddings,
    Explain,
    Usage,
}

impl Route {
    /// The operation its audit record names.
    fn operation(&self) -> &'static str {
        match self {
            Route::Health => "health",
            Route::Models => "models.list",
            Route::ChatCompletions => "chat.completions",
            Route::Messages => "messages",
            Route::Embeddings => "embeddings",
            Route::Explain => "route.explain",
            Route::Usage => "usage.read",
        }
    }
}

impl Gateway {
    pub fn new(region: Region, regions: RegionCatalog, settings: Settings) -> Self {
        let tenants = TtlCache::new(settings.tenant_cache_ttl_ms, 1024)
            .with_max_bytes(settings.tenant_cache_bytes);
        let keys = TtlCache::new(settings.key_cache_ttl_ms, 4096);
        Gateway {
            region,
            regions,
            settings,
            tenants: RefCell::new(tenants),
            keys: RefCell::new(keys),
            key_hasher: RefCell::new(None),
            prices: RefCell::new(TtlCache::new(60_000, 1)),
            circuits: RefCell::new(TtlCache::new(circuits::CIRCUIT_CACHE_MS, 4096)),
            recent_entries: RefCell::new(TtlCache::new(
                cached::RECENT_ENTRY_MS,
                cached::RECENT_ENTRIES,
            )),
            retry_counts: RefCell::new(HashMap::new()),
            telemetry: RefCell::new(Default::default()),
            instance_id: RefCell::new(String::new()),
            leases: Rc::default(),
            refusals: RefCell::default(),
        }
    }

    /// For a host whose instances may end with their request (Spin): every admission is
    /// write-ahead, since a lease's commits wait in the instance.
    pub fn without_leases(mut self) -> Self {
        self.settings.leases = false;
        self
    }

    /// How this host reports a client's address (`header`: see
    /// [`Settings::client_address_header`]) and how long its isolates count refusals before a
    /// tenant was known ([`Settings::refusal_window_ms`]).
    pub fn with_refusals(mut self, header: &str, window_ms: u64) -> Self {
        self.settings.client_address_header = Some(header.to_string());
        self.settings.refusal_window_ms = window_ms;
        self
    }

    /// The gateway of a deployment whose settings were read with [`crate::deployment::Deployment`].
    pub fn for_deployment(deployment: &crate::deployment::Deployment) -> Self {
        Gateway::new(
            deployment.region.clone(),
            deployment.regions.clone(),
            Settings {
                collector: deployment.collector.clone(),
                ..Settings::default()
            },
        )
    }

    pub fn region(&self) -> &Region {
        &self.region
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Drops this isolate's copy of a tenant's config (after the admin plane changed it; other
    /// isolates see the change when their copy expires).
    pub fn forget_tenant(&self, tenant: &str) {
        self.tenants.borrow_mut().remove(tenant);
    }

    /// Drops this isolate's copy of a key record (after a revocation or rotation).
    pub fn forget_key(&self, key_hash: &str) {
        self.keys.borrow_mut().remove(key_hash);
    }

    /// Handles one request. Never panics on client input; every failure becomes an OpenAI-shaped
    /// error reply with a stable code.
    pub async fn handle<H: Host, B: ByteSource>(
        &self,
        host: &H,
        req: Inbound<B>,
    ) -> Handled<H::Body> {
        let mut random = [0u8; 24];
        host.fill_random(&mut random);
        let ctx = RequestCtx {
            request_id: crate::hexstr::prefixed("req_", &random[..12]),
            trace: TraceContext::continue_or_start(req.header("traceparent"), &random),
            started: host.now(),
            reached_tenant: std::cell::Cell::new(false),
            authenticated: std::cell::Cell::new(false),
            presented_key: RefCell::default(),
        };
        let path = req.path.clone();
        let client = self.client_address(&req.headers);
        // Errors go back in the dialect of the path the client called.
        let dialect = match req.path.as_str() {
            "/v1/messages" => Dialect::Anthropic,
            _ => Dialect::OpenAi,
        };
        let mut after = AfterResponse::default();
        let mut reply = match self.route(host, &ctx, req, &mut after).await {
            Ok(reply) => reply,
            Err(err) => {
                // Refused before any tenant was known (bad key, wrong host, unknown route):
                // counted into the region's trail, and exported without a tenant, so failed
                // logins show in the metrics too.
                if !ctx.reached_tenant.get() && !ctx.authenticated.get() {
                    let (key_hash_prefix, key_id) = ctx.presented_key.take();
                    let due = self.count_refusal(
                        host,
                        Unattributed {
                            operation: unattributed_operation(&path),
                            client: client.as_deref(),
                            key_hash_prefix,
                            key_id,
                            request_id: &ctx.request_id,
                            trace_id: &ctx.trace.trace_id,
                            started_ms: ctx.started.millis(),
                        },
                        &err,
                    );
                    if let Some(at_ms) = due {
                        after.refusals(at_ms);
                    }
                    if self.settings.collector.is_some() {
                        after.observe(self.unattributed_record(host, &ctx, &path, &err));
                    }
                }
                dialect::error_reply(dialect, &err)
            }
        };
        reply
            .headers
            .push((crate::headers::REQUEST_ID.into(), ctx.request_id.clone()));
        reply
            .headers
            .push((crate::headers::REGION.into(), self.region.id.clone()));
        Handled { reply, after }
    }

    async fn route<H: Host, B: ByteSource>(
        &self,
        host: &H,
        ctx: &RequestCtx,
        req: Inbound<B>,
        after: &mut AfterResponse,
    ) -> Result<Reply<H::Body>, GatewayError> {
        let route = match (req.method.as_str(), req.path.as_str()) {
            ("GET" | "HEAD", "/healthz") => Route::Health,
            ("GET", "/v1/models") => Route::Models,
            ("POST", "/v1/chat/completions") => Route::ChatCompletions,
            ("POST", "/v1/messages") => Route::Messages,
            ("POST", "/v1/embeddings") => Route::Embeddings,
            ("POST", "/v1/route/explain") => Route::Explain,
            ("GET", "/v1/usage") => Route::Usage,
            (
                _,
                "/healthz"
                | "/v1/models"
                | "/v1/chat/completions"
                | "/v1/messages"
                | "/v1/embeddings"
                | "/v1/usage",
            ) => {
                return Err(GatewayError::new(
                    ErrorKind::MethodNotAllowed,
                    format!("{} is not allowed on {}.", req.method, req.path),
                ))
            }
            _ => {
                return Err(GatewayError::new(
                    ErrorKind::UnknownRoute,
                    format!("Unknown request URL: {} {}.", req.method, req.path),
                ))
            }
        };
        if let Route::Health = route {
            let body = format!("{{\"status\":\"ok\",\"region\":\"{}\"}}", self.region.id);
            return Ok(json_reply(200, body.into_bytes()));
        }
        // A request for another region's hostname must not be served here, even by accident.
        let host_header = req.header("host").unwrap_or("");
        if !self.region.serves_host(host_header) {
            return Err(GatewayError::new(
                ErrorKind::MisdirectedHost,
                format!(
                    "This is the {} deployment; it does not serve host {:?}.",
                    self.region.id, host_header
                ),
            ));
        }
        let priced = matches!(
            route,
            Route::ChatCompletions | Route::Messages | Route::Embeddings | Route::Usage
        );
        let operation = route.operation();
        let caller = match self.authenticate(host, &req, priced).await {
            Ok(caller) => caller,
            Err(auth::Unauthenticated {
                err,
                key: Some(key),
                key_hash_prefix,
            }) => {
                ctx.presented_key.borrow_mut().0 = key_hash_prefix;
                return Err(self
                    .record_refused_key(host, ctx, key, operation, err, after)
                    .await);
            }
            Err(refused) => {
                *ctx.presented_key.borrow_mut() = (refused.key_hash_prefix, None);
                return Err(refused.err);
            }
        };
        ctx.authenticated.set(true);
        let scope = match route {
            Route::Models => Scope::Models,
            Route::Usage => Scope::Usage,
            _ => Scope::Chat,
        };
        if let Err(err) = self.require_scope(&caller, scope) {
            return Err(self.record_refusal(host, ctx, &caller, operation, err, after));
        }
        match route {
            Route::Models => {
                let reply = models::list(&caller.tenant);
                self.record_simple(host, ctx, &caller, operation, after)
                    .await?;
                Ok(reply)
            }
            Route::ChatCompletions => {
                chat::handle(self, host, ctx, &caller, req, Dialect::OpenAi, after).await
            }
            Route::Messages => {
                chat::handle(self, host, ctx, &caller, req, Dialect::Anthropic, after).await
            }
            Route::Embeddings => embeddings::handle(self, host, ctx, &caller, req, after).await,
            Route::Explain => {
                // Its failures (a bad body, no route to the model) are its tenant's records.
                let reply = match explain::handle(self, host, &caller, req).await {
                    Ok(reply) => reply,
                    Err(err) => {
                        return Err(self.record_refusal(host, ctx, &caller, operation, err, after))
                    }
                };
                self.record_simple(host, ctx, &caller, operation, after)
                    .await?;
                Ok(reply)
            }
            Route::Usage => {
                let reply = match usage::report(self, host, &caller).await {
                    Ok(reply) => reply,
                    Err(err) => {
                        return Err(self.record_refusal(host, ctx, &caller, operation, err, after))
                    }
                };
                self.record_simple(host, ctx, &caller, operation, after)
                    .await?;
                Ok(reply)
            }
            // Answered before authentication.
            Route::Health => Ok(json_reply(200, Vec::new())),
        }
    }

    fn require_scope(&self, caller: &Caller, scope: Scope) -> Result<(), GatewayError> {
        if caller.key.allows(scope) {
            return Ok(());
        }
        Err(GatewayError::new(
            ErrorKind::InsufficientScope,
            format!(
                "API key {} lacks the {:?} scope.",
                caller.key.key_id,
                format!("{scope:?}").to_lowercase()
            ),
        ))
    }

    pub(crate) fn audit_base(
        &self,
        ctx: &RequestCtx,
        caller: &Caller,
        operation: &str,
    ) -> AuditEvent {
        let mut record = self.record_base(ctx, operation);
        record.tenant_id = Some(caller.tenant.tenant_id.to_string());
        record.key_id = Some(caller.key.key_id.to_string());
        record.policy_version = Some(caller.tenant.version.clone());
        AuditEvent::from(record)
    }

    /// A record of `operation` with what is known before authentication.
    fn record_base(&self, ctx: &RequestCtx, operation: &str) -> AuditRecord {
        AuditRecord::started(
            &ctx.request_id,
            ctx.started.millis(),
            &self.region.id,
            operation.to_string(),
            &ctx.trace.trace_id,
        )
    }

    /// The client's address as the platform reported it, when the deployment names its header:
    /// the last of that name (Spin appends its own after any the client sent), without a port.
    pub(crate) fn client_address(&self, headers: &[(String, String)]) -> Option<String> {
        let name = self.settings.client_address_header.as_deref()?;
        let value = &headers
            .iter()
            .rev()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))?
            .1;
        // Spin's is `address:port`: the port is the connection's, not the client's.
        Some(refusals::without_port(value.trim()).to_string())
    }

    /// Counts a refusal before any tenant (or admin) was known. Returns when to send, when this
    /// refusal opened a window: the caller schedules [`Gateway::send_refusals`] for then (after
    /// the response), see `refusals.rs`.
    pub(crate) fn count_refusal<H: Host>(
        &self,
        host: &H,
        who: Unattributed<'_>,
        err: &GatewayError,
    ) -> Option<u64> {
        let refused = refusals::Refused {
            who,
            err,
            now_ms: host.now().millis(),
        };
        self.refusals
            .borrow_mut()
            .add(refused, self.settings.refusal_window_ms)
    }

    /// Waits until `at_ms`, the end of a window, then sends what this isolate counted to the
    /// region's trail; returns what failed, for the adapter's log.
    pub async fn send_refusals<H: Host>(&self, host: &H, at_ms: u64) -> Vec<HostError> {
        let now = host.now().millis();
        if at_ms > now {
            host.sleep(at_ms - now).await;
        }
        // Taken at once (no borrow held across the sends): refusals counted meanwhile open a
        // new window.
        let records = self.refusals.borrow_mut().take(&self.region.id);
        if records.is_empty() {
            return Vec::new();
        }
        // One of the region's refusal ledgers, at random: a flood spread over many isolates
        // spreads over them (and over the audit streams they forward to).
        let mut pick = [0u8; 1];
        host.fill_random(&mut pick);
        let shard = u32::from(pick[0]) % refusals::LEDGER_SHARDS;
        let ledger =
            crate::ledger::LedgerId::new(UNATTRIBUTED_LEDGER, shard, refusals::LEDGER_SHARDS);
        let now_ms = host.now().millis();
        let ops = records
            .into_iter()
            .map(|record| {
                crate::ledger::LedgerOp::Record(crate::ledger::RecordAsk { now_ms, record })
            })
            .collect();
        // All queued before any is awaited: a grouping host (Workers) sends them together.
        host.ledger_records_after_response(&ledger, ops).await
    }

    /// The execution record of a request refused before it reached a tenant.
    fn unattributed_record<H: Host>(
        &self,
        host: &H,
        ctx: &RequestCtx,
        path: &str,
        err: &GatewayError,
    ) -> crate::telemetry::ExecutionRecord {
        let now = host.now().millis();
        let operation = unattributed_operation(path);
        let mut record = self.record_base(ctx, operation);
        record.outcome = if err.status() < 500 {
            Outcome::Refused
        } else {
            Outcome::Error
        };
        record.status = err.status();
        record.error_code = Some(err.code().to_string());
        record.latency_ms = now.saturating_sub(ctx.started.millis());
        let event = AuditEvent::from(record);
        let timing = crate::telemetry::Timing::new(ctx.started.millis());
        crate::telemetry::ExecutionRecord::new(&ctx.trace, &timing, event, now, false)
    }

    /// Records a refusal of a known caller (a dead key, a scope its key lacks) in its tenant's
    /// trail, after the refusal goes out (`Exchange::end_refused_after_response`).
    fn record_refusal<H: Host>(
        &self,
        host: &H,
        ctx: &RequestCtx,
        caller: &Caller,
        operation: &str,
        err: GatewayError,
        after: &mut AfterResponse,
    ) -> GatewayError {
        let mut exchange = Exchange::new(self, ctx, caller, operation);
        exchange.fail(&err);
        exchange.end_refused_after_response(host, after);
        err
    }

    /// A key that exists but may not be used (revoked, expired) is its tenant's credential: the
    /// attempt goes into that tenant's trail, so the trail shows who presented a dead key, and
    /// when. Not when the tenant cannot be read or lives in another region (its trail is kept
    /// there, and its ledger must not be started here): then only the refusal goes back (and
    /// to telemetry, unattributed, like an unknown key).
    async fn record_refused_key<H: Host>(
        &self,
        host: &H,
        ctx: &RequestCtx,
        key: Rc<KeyRecord>,
        operation: &str,
        err: GatewayError,
        after: &mut AfterResponse,
    ) -> GatewayError {
        let tenant = match self.tenant(host, &key.tenant_id).await {
            Ok(tenant) if tenant.residency == self.region.id => tenant,
            _ => {
                // Counted in this region's trail as a refusal before a tenant was known.
                ctx.presented_key.borrow_mut().1 = Some(key.key_id.to_string());
                return err;
            }
        };
        let caller = Caller { key, tenant };
        self.record_refusal(host, ctx, &caller, operation, err, after)
    }

    /// Records a request that reads only (no upstream, no charge), before it is answered.
    async fn record_simple<H: Host>(
        &self,
        host: &H,
        ctx: &RequestCtx,
        caller: &Caller,
        operation: &str,
        after: &mut AfterResponse,
    ) -> Result<(), GatewayError> {
        let mut exchange = Exchange::new(self, ctx, caller, operation);
        exchange.record.record.status = 200;
        exchange.end(host, after, None).await
    }
}

/// A body's SHA-256 as a record holds it (lowercase hex), by the host's digest.
pub(crate) fn body_sha256<H: Host>(host: &H, body: &[u8]) -> String {
    crate::hexstr::encode(&host.sha256(body))
}

/// The operation a path names, for a request refused before its route was served.
fn unattributed_operation(path: &str) -> &'static str {
    match path {
        "/v1/chat/completions" => "chat.completions",
        "/v1/messages" => "messages",
        "/v1/embeddings" => "embeddings",
        "/v1/models" => "models.list",
        "/v1/usage" => "usage.read",
        "/v1/route/explain" => "route.explain",
        _ => "unknown",
    }
}

pub(crate) fn json_reply<S: ByteSource>(status: u16, body: Vec<u8>) -> Reply<S> {
    Reply {
        status,
        headers: vec![("content-type".into(), "application/json".into())],
        body: ReplyBody::Full(body),
        diagnostic: None,
    }
}

pub(crate) fn error_reply<S: ByteSource>(err: &GatewayError) -> Reply<S> {
    let mut reply = json_reply(err.status(), err.body());
    if let Some(s) = err.retry_after_s {
        reply.headers.push(("retry-after".into(), s.to_string()));
    }
    reply
        .headers
        .push((crate::headers::ERROR_CODE.into(), err.code().to_string()));
    reply.diagnostic = err.diagnostic.clone();
    reply
}

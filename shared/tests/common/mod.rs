//! A fake host for scenario tests: in-memory KV, scripted upstream replies, a simulated clock,
//! tenant ledgers (budgets, rate windows, write-ahead records) whose outboxes are forwarded at
//! once into an observable audit log, all observable by the test.
#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

use asc_core::apikey::{new_key, record_name, ApiKey, KeyRecord, KeyStatus, Scope};
use asc_core::audit::{AuditEvent, AuditRecord};
use asc_core::guard::{CompiledGuard, GuardSources};
use asc_core::host::{ByteSource, Chunks, EgressApproved, Host, HostError, UpstreamResponse};
use asc_core::ids::{KeyId, TenantId};
use asc_core::ledger::{ForwardAck, LedgerId, LedgerOp, LedgerReply, OpenRequest, TenantLedger};
use asc_core::pipeline::http::{Inbound, ReplyBody};
use asc_core::pipeline::Handled;
use asc_core::response_cache::CacheKey;
use asc_core::routing::circuit::{CircuitBoard, CircuitOp, CircuitReply};
use asc_core::secret::{Secret, SecretRef};
use asc_core::tenant_store::{publish, StoreOp, StoreReply, TenantStore};
use asc_core::time::Timestamp;
use asc_core::{builtin_regions, Gateway, Settings};

pub const KEY_SECRET: &str = "test-deployment-secret";
pub const UPSTREAM_KEY: &str = "sk-upstream-CANARY-7f3a";

/// A body that yields scripted chunks and counts how many it has given out.
pub struct FakeBody {
    chunks: VecDeque<Result<Vec<u8>, HostError>>,
    pub yielded: Rc<Cell<usize>>,
}

impl ByteSource for FakeBody {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, HostError> {
        match self.chunks.pop_front() {
            Some(Ok(c)) => {
                self.yielded.set(self.yielded.get() + 1);
                Ok(Some(c))
            }
            Some(Err(e)) => Err(e),
            None => Ok(None),
        }
    }
}

pub enum Scripted {
    Reply {
        status: u16,
        headers: Vec<(String, String)>,
        chunks: Vec<Result<Vec<u8>, HostError>>,
    },
    Fail(HostError),
}

/// What the upstream received (with the credential kept, for the tests that check it is sent).
#[derive(Debug, Clone)]
pub struct Sent {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: serde_json::Value,
    pub timeout_ms: u64,
    /// The simulated time it was sent at.
    pub at_ms: u64,
}

impl Sent {
    pub fn header(&self, name: &str) -> Option<&str> {
        asc_core::pipeline::http::find_header(&self.headers, name)
    }
}

/// Picks ledger operations (for [`FakeHost::ledger_fails`]).
pub type OpFilter = fn(&LedgerOp) -> bool;

pub struct FakeHost {
    pub clock_ms: Cell<u64>,
    random_counter: Cell<u64>,
    pub secrets: RefCell<HashMap<String, String>>,
    pub kv: RefCell<HashMap<String, Vec<u8>>>,
    pub kv_reads: Cell<usize>,
    /// Each KV read's key and how many reads were in flight when it began (itself included).
    pub kv_log: RefCell<Vec<(String, usize)>>,
    kv_in_flight: Cell<usize>,
    /// When true, a KV read yields once before it answers, as a remote read does.
    pub kv_yields: Cell<bool>,
    pub script: RefCell<VecDeque<Scripted>>,
    pub sent: RefCell<Vec<Sent>>,
    pub ledgers: RefCell<HashMap<String, TenantLedger>>,
    /// Every ledger operation, in order.
    pub ledger_ops: RefCell<Vec<(String, LedgerOp)>>,
    pub ledger_down: Cell<bool>,
    /// Fails only the ledger operations this picks (a fault at one step of a request).
    pub ledger_fails: Cell<Option<OpFilter>>,
    /// When true, a ledger call yields once before it answers and a sleep yields a hundred
    /// times, as remote calls and timers do: requests run together interleave.
    pub interleaving: Cell<bool>,
    /// The config store (KV) fails every read.
    pub kv_down: Cell<bool>,
    /// The circuit board object fails every call.
    pub circuits_down: Cell<bool>,
    /// The chained records, as forwarded from the ledgers' outboxes.
    pub audit: RefCell<Vec<AuditRecord>>,
    pub events: RefCell<Vec<AuditEvent>>,
    /// When false, outboxes are kept (forward with `forward_all`).
    pub forwarding: Cell<bool>,
    /// When false, the host keeps no copies for the test to look at (what was sent, ledger
    /// operations, chained records): the benchmarks measure the core, not this bookkeeping.
    pub observing: Cell<bool>,
    pub last_body_progress: RefCell<Option<Rc<Cell<usize>>>>,
    pub circuit_boards: RefCell<HashMap<String, CircuitBoard>>,
    pub circuit_ops: Cell<usize>,
    /// Every wait the pipeline asked for (each also advances the clock).
    pub sleeps: RefCell<Vec<u64>>,
    /// The region's response cache: storage name -> (entry, expires_ms).
    pub cache: RefCell<HashMap<String, (Vec<u8>, u64)>>,
    pub cache_reads: Cell<usize>,
    /// When true, the cache store fails every read and write.
    pub cache_down: Cell<bool>,
    /// Tenants' admin stores (what a Durable Object per tenant holds on Workers).
    pub admin_stores: RefCell<HashMap<String, TenantStore>>,
    /// The region's audit bucket as the admin plane's search reads it: name -> bytes.
    pub audit_bucket: RefCell<std::collections::BTreeMap<String, Vec<u8>>>,
    /// Audit bucket reads (list pages and objects).
    pub audit_bucket_reads: Cell<usize>,
    /// Each request to compile guardrails (custom patterns, case classes): what was asked for.
    /// Answered through the wire format, as the control plane answers the request plane's Worker.
    pub guard_compiles: RefCell<Vec<GuardSources>>,
    /// The guardrail compiler fails every call (the control plane unreachable).
    pub compiler_down: Cell<bool>,
    /// The config store refuses the admin store's writes (its publishing), as KV failing.
    pub config_store_down: Cell<bool>,
}

impl FakeHost {
    /// Writes `tenant`'s queued admin values to the config store, as a host does after each
    /// change and on its retries (a Durable Object's alarm, Spin's flush endpoint).
    pub async fn publish_queued(&self, tenant: &TenantId) {
        let Some(queue) = self
            .admin_stores
            .borrow()
            .get(tenant.as_str())
            .map(|s| s.unpublished().clone())
        else {
            return;
        };
        let (written, _errors) = publish(&queue, |k, v| async move {
            if self.config_store_down.get() {
                return Err(HostError::Store("config store unavailable".into()));
            }
            self.kv.borrow_mut().insert(k, v.into_bytes());
            Ok(())
        })
        .await;
        if let Some(store) = self.admin_stores.borrow_mut().get_mut(tenant.as_str()) {
            store.published(&written, self.clock_ms.get());
            store.take_writes();
        }
    }

    pub fn new() -> Self {
        let host = FakeHost {
            clock_ms: Cell::new(1_767_225_600_000), // 2026-01-01T00:00:00Z
            random_counter: Cell::new(0),
            secrets: RefCell::new(HashMap::new()),
            kv: RefCell::new(HashMap::new()),
            kv_reads: Cell::new(0),
            kv_log: RefCell::new(Vec::new()),
            kv_in_flight: Cell::new(0),
            kv_yields: Cell::new(false),
            script: RefCell::new(VecDeque::new()),
            sent: RefCell::new(Vec::new()),
            ledgers: RefCell::new(HashMap::new()),
            ledger_ops: RefCell::new(Vec::new()),
            ledger_down: Cell::new(false),
            ledger_fails: Cell::new(None),
            interleaving: Cell::new(false),
            kv_down: Cell::new(false),
            circuits_down: Cell::new(false),
            audit: RefCell::new(Vec::new()),
            events: RefCell::new(Vec::new()),
            forwarding: Cell::new(true),
            observing: Cell::new(true),
            last_body_progress: RefCell::new(None),
            audit_bucket: RefCell::new(std::collections::BTreeMap::new()),
            audit_bucket_reads: Cell::new(0),
            circuit_boards: RefCell::new(HashMap::new()),
            circuit_ops: Cell::new(0),
            sleeps: RefCell::new(Vec::new()),
            cache: RefCell::new(HashMap::new()),
            cache_reads: Cell::new(0),
            cache_down: Cell::new(false),
            admin_stores: RefCell::new(HashMap::new()),
            guard_compiles: RefCell::new(Vec::new()),
            compiler_down: Cell::new(false),
            config_store_down: Cell::new(false),
        };
        host.set_secret("KEY_HASH_SECRET", KEY_SECRET);
        host.set_secret("OPENAI_API_KEY", UPSTREAM_KEY);
        host
    }

    pub fn set_secret(&self, name: &str, value: &str) {
        self.secrets.borrow_mut().insert(name.into(), value.into());
    }

    pub fn advance(&self, ms: u64) {
        self.clock_ms.set(self.clock_ms.get() + ms);
    }

    pub fn put_tenant(&self, config: &serde_json::Value) {
        let id = config["tenant_id"].as_str().expect("tenant_id").to_string();
        self.kv
            .borrow_mut()
            .insert(format!("tenant:{id}"), config.to_string().into_bytes());
    }

    /// Mints a key for `tenant` with `scopes` and stores its record; returns the raw key.
    pub fn mint_key(&self, tenant: &str, seed: u8, scopes: &[Scope]) -> String {
        let key = new_key(&[seed; 32]);
        let hash = ApiKey::parse(&key)
            .expect("minted key parses")
            .hash(&Secret::new(KEY_SECRET));
        let record = KeyRecord {
            schema_version: 1,
            key_id: KeyId(format!("k_{seed}")),
            tenant_id: TenantId(tenant.into()),
            status: KeyStatus::Active,
            scopes: scopes.to_vec(),
            tags: vec![],
            key_hash: hash.clone(),
            label: None,
            created_ms: None,
            expires_ms: None,
        };
        self.kv.borrow_mut().insert(
            record_name(&hash),
            serde_json::to_vec(&record).expect("record json"),
        );
        key
    }

    pub fn revoke(&self, key: &str) {
        let hash = ApiKey::parse(key)
            .expect("key")
            .hash(&Secret::new(KEY_SECRET));
        let name = record_name(&hash);
        let mut kv = self.kv.borrow_mut();
        let mut record: KeyRecord = serde_json::from_slice(&kv[&name]).expect("record");
        record.status = KeyStatus::Revoked;
        kv.insert(name, serde_json::to_vec(&record).expect("json"));
    }

    pub fn script(&self, s: Scripted) {
        self.script.borrow_mut().push_back(s);
    }

    pub fn sent_count(&self) -> usize {
        self.sent.borrow().len()
    }

    /// The requests in flight in every ledger (their write-ahead records).
    pub fn open_requests(&self) -> Vec<OpenRequest> {
        self.ledgers
            .borrow()
            .values()
            .flat_map(|l| l.open().cloned().collect::<Vec<_>>())
            .collect()
    }

    /// Forwards every ledger's outbox into the audit log, through the forwarding protocol.
    pub fn forward_all(&self) {
        let mut ledgers = self.ledgers.borrow_mut();
        for (id, ledger) in ledgers.iter_mut() {
            let id = LedgerId(id.clone());
            while let Some(batch) = ledger.forward_ref(&id, "audit-local") {
                if self.observing.get() {
                    for text in &batch.records {
                        let event = text.event().expect("an audit record");
                        self.audit.borrow_mut().push(event.record.clone());
                        self.events.borrow_mut().push(event);
                    }
                }
                let through = batch.last_seq();
                ledger.forwarded(ForwardAck { through });
            }
        }
    }

    /// Gives up on every request whose time is up, as a ledger's alarm would, and forwards.
    pub fn expire_all(&self) {
        let now = self.clock_ms.get();
        for ledger in self.ledgers.borrow_mut().values_mut() {
            ledger.expire(now);
        }
        if self.forwarding.get() {
            self.forward_all();
        }
    }
}

impl Host for FakeHost {
    type Body = FakeBody;

    fn now(&self) -> Timestamp {
        Timestamp(self.clock_ms.get())
    }

    fn fill_random(&self, buf: &mut [u8]) {
        // Deterministic and well spread (SplitMix64), so weighted routing sees fair draws.
        for chunk in buf.chunks_mut(8) {
            let n = self
                .random_counter
                .get()
                .wrapping_add(0x9e37_79b9_7f4a_7c15);
            self.random_counter.set(n);
            let mut z = n;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
        }
    }

    fn secret(&self, name: &SecretRef) -> Option<Secret> {
        self.secrets
            .borrow()
            .get(name.name())
            .map(|s| Secret::new(s.clone()))
    }

    async fn kv_get(&self, key: &str) -> Result<Option<Vec<u8>>, HostError> {
        self.kv_reads.set(self.kv_reads.get() + 1);
        self.kv_in_flight.set(self.kv_in_flight.get() + 1);
        self.kv_log
            .borrow_mut()
            .push((key.to_string(), self.kv_in_flight.get()));
        if self.kv_yields.get() {
            yield_now().await;
        }
        self.kv_in_flight.set(self.kv_in_flight.get() - 1);
        if self.kv_down.get() {
            return Err(HostError::Store(
                "ASC_CONFIG: kv down (internal detail)".into(),
            ));
        }
        Ok(self.kv.borrow().get(key).cloned())
    }

    async fn send(&self, req: EgressApproved) -> Result<UpstreamResponse<FakeBody>, HostError> {
        if self.observing.get() {
            self.sent.borrow_mut().push(Sent {
                url: req.url().to_string(),
                headers: req.headers().to_vec(),
                body: serde_json::from_slice(req.body()).unwrap_or(serde_json::Value::Null),
                timeout_ms: req.timeout_ms(),
                at_ms: self.clock_ms.get(),
            });
        }
        let next = self.script.borrow_mut().pop_front();
        match next.expect("the test scripted no upstream reply for this request") {
            Scripted::Fail(e) => Err(e),
            Scripted::Reply {
                status,
                headers,
                chunks,
            } => {
                let yielded = Rc::new(Cell::new(0));
                *self.last_body_progress.borrow_mut() = Some(yielded.clone());
                Ok(UpstreamResponse {
                    status,
                    headers,
                    body: FakeBody {
                        chunks: chunks.into(),
                        yielded,
                    },
                })
            }
        }
    }

    async fn ledger(&self, ledger: &LedgerId, op: LedgerOp) -> Result<LedgerReply, HostError> {
        if self.interleaving.get() {
            yield_now().await;
        }
        if self.ledger_down.get() || self.ledger_fails.get().is_some_and(|fails| fails(&op)) {
            return Err(HostError::Store("ledger down".into()));
        }
        if self.observing.get() {
            self.ledger_ops
                .borrow_mut()
                .push((ledger.as_str().to_string(), op.clone()));
        }
        let reply = {
            let mut ledgers = self.ledgers.borrow_mut();
            let l = ledgers.entry(ledger.as_str().to_string()).or_default();
            // Each operation is a call of its own, ended as a ledger object ends one.
            let reply = l.apply_alone(op);
            // As a ledger object does after every operation: the rows it changed, to store. Left
            // undrained, its set of changed pieces would grow with every request of a run.
            l.take_writes()
                .map_err(|e| HostError::Store(e.to_string()))?;
            reply
        };
        if self.forwarding.get() {
            self.forward_all();
        }
        Ok(reply)
    }

    async fn circuits(&self, tenant: &TenantId, op: &CircuitOp) -> Result<CircuitReply, HostError> {
        self.circuit_ops.set(self.circuit_ops.get() + 1);
        if self.circuits_down.get() {
            return Err(HostError::Store(
                "CIRCUIT_BOARDS: down (internal detail)".into(),
            ));
        }
        Ok(self
            .circuit_boards
            .borrow_mut()
            .entry(tenant.to_string())
            .or_default()
            .apply(op))
    }

    async fn cache_get(&self, key: &CacheKey) -> Result<Option<Vec<u8>>, HostError> {
        self.cache_reads.set(self.cache_reads.get() + 1);
        if self.cache_down.get() {
            return Err(HostError::Store("cache: down".into()));
        }
        Ok(self
            .cache
            .borrow()
            .get(&key.storage_name())
            .map(|(entry, _)| entry.clone()))
    }

    async fn cache_put(
        &self,
        key: &CacheKey,
        entry: &[u8],
        expires_ms: u64,
    ) -> Result<(), HostError> {
        if self.cache_down.get() {
            return Err(HostError::Store("cache: down".into()));
        }
        self.cache
            .borrow_mut()
            .insert(key.storage_name(), (entry.to_vec(), expires_ms));
        Ok(())
    }

    async fn audit_list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, HostError> {
        self.audit_bucket_reads
            .set(self.audit_bucket_reads.get() + 1);
        Ok(self
            .audit_bucket
            .borrow()
            .keys()
            .filter(|k| k.starts_with(prefix) && start_after.is_none_or(|a| k.as_str() > a))
            .take(limit as usize)
            .cloned()
            .collect())
    }

    async fn audit_get(&self, key: &str) -> Result<Option<Vec<u8>>, HostError> {
        self.audit_bucket_reads
            .set(self.audit_bucket_reads.get() + 1);
        Ok(self.audit_bucket.borrow().get(key).cloned())
    }

    async fn tenant_store(&self, tenant: &TenantId, op: &StoreOp) -> Result<StoreReply, HostError> {
        let mut reply = {
            let mut stores = self.admin_stores.borrow_mut();
            let store = stores
                .entry(tenant.to_string())
                .or_insert_with(|| TenantStore::load(tenant.clone(), Vec::new()));
            let reply = store.apply(op.clone());
            store.take_writes();
            reply
        };
        self.publish_queued(tenant).await;
        if let Some(store) = self.admin_stores.borrow().get(tenant.as_str()) {
            reply.set_published(store.unpublished());
        }
        Ok(reply)
    }

    async fn compile_guard(&self, sources: &GuardSources) -> Result<CompiledGuard, HostError> {
        self.guard_compiles.borrow_mut().push(sources.clone());
        if self.compiler_down.get() {
            return Err(HostError::Store("control plane unreachable".into()));
        }
        let wire = CompiledGuard::compile(sources).to_wire(sources);
        CompiledGuard::from_wire(sources, &wire).map_err(HostError::Store)
    }

    async fn sleep(&self, ms: u64) {
        if self.interleaving.get() {
            for _ in 0..100 {
                yield_now().await;
            }
        }
        self.sleeps.borrow_mut().push(ms);
        self.advance(ms);
    }
}

/// The loopback development region's gateway, as `scripts/dev` runs it.
pub fn local_gateway() -> Gateway {
    let regions = builtin_regions().expect("regions");
    let local = regions.get("local").expect("local").clone();
    Gateway::new(local, regions, Settings::default())
}

pub fn gateway_for(region: &str) -> Gateway {
    let regions = builtin_regions().expect("regions");
    let r = regions.get(region).expect("region").clone();
    Gateway::new(r, regions, Settings::default())
}

pub fn demo_tenant() -> serde_json::Value {
    serde_json::json!({
        "schema_version": 1,
        "tenant_id": "demo",
        "residency": "local",
        "models": {
            "gpt-4o-mini": {
                "provider": "openai",
                "endpoint": "http://127.0.0.1:9100/v1",
                "upstream_model": "gpt-4o-mini-2024-07-18",
                "credential": "OPENAI_API_KEY",
                "timeout_ms": 5000
            }
        }
    })
}

pub fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Inbound<Chunks> {
    let mut hs: Vec<(String, String)> = vec![("host".into(), "127.0.0.1:8787".into())];
    for (n, v) in headers {
        hs.retain(|(hn, _)| !hn.eq_ignore_ascii_case(n));
        hs.push((n.to_string(), v.to_string()));
    }
    // Split the body so the pipeline's limited reader sees several chunks.
    let chunks = body.chunks(7).map(<[u8]>::to_vec).collect();
    Inbound {
        method: method.into(),
        path: path.into(),
        headers: hs,
        body: Chunks(chunks),
    }
}

pub fn chat(key: &str, body: &serde_json::Value) -> Inbound<Chunks> {
    let auth = format!("Bearer {key}");
    request(
        "POST",
        "/v1/chat/completions",
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        body.to_string().as_bytes(),
    )
}

/// Lets other futures of the same executor run once.
pub async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            return std::task::Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
    .await
}

pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    futures::executor::block_on(f)
}

/// Runs a request as an adapter does: the reply (pumping a stream to its end, then finishing
/// it), then the work left for after the response.
pub fn run(
    gw: &Gateway,
    host: &FakeHost,
    req: Inbound<Chunks>,
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    block_on(async {
        let Handled { reply, after } = gw.handle(host, req).await;
        let body = match reply.body {
            ReplyBody::Full(b) => b,
            ReplyBody::Stream(mut relay) => {
                let mut out = Vec::new();
                while let Some(chunk) = relay.next_timed(host).await {
                    out.extend(chunk);
                }
                let _ = relay.finish(gw, host).await;
                out
            }
        };
        let _ = after.run(gw, host).await;
        (reply.status, reply.headers, body)
    })
}

pub fn error_code(body: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(body).expect("error body is JSON");
    v["error"]["code"].as_str().expect("error.code").to_string()
}

pub fn header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    asc_core::pipeline::http::find_header(headers, name)
}

/// An OpenAI `chat.completion` as the API reference shows it.
pub fn completion_json() -> Vec<u8> {
    serde_json::json!({
        "id": "chatcmpl-abc123",
        "object": "chat.completion",
        "created": 1677858242,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": "Hello there!", "refusal": null},
            "logprobs": null,
            "finish_reason": "stop"
        }],
        "usage": {
            "prompt_tokens": 13, "completion_tokens": 7, "total_tokens": 20,
            "prompt_tokens_details": {"cached_tokens": 4, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
        }
    })
    .to_string()
    .into_bytes()
}

pub fn ok_json(body: Vec<u8>) -> Scripted {
    Scripted::Reply {
        status: 200,
        headers: vec![("content-type".into(), "application/json".into())],
        chunks: vec![Ok(body)],
    }
}

pub fn sse(chunks: Vec<Result<Vec<u8>, HostError>>) -> Scripted {
    Scripted::Reply {
        status: 200,
        headers: vec![(
            "content-type".into(),
            "text/event-stream; charset=utf-8".into(),
        )],
        chunks,
    }
}

pub fn all_scopes() -> Vec<Scope> {
    vec![Scope::Chat, Scope::Models, Scope::Usage]
}

// --- The admin plane: a test identity provider (EdDSA, with the audit module's Ed25519 signer) --

pub const ADMIN_ISSUER: &str = "http://127.0.0.1:9300";
pub const ADMIN_JWKS_URL: &str = "http://127.0.0.1:9300/jwks";
pub const ADMIN_AUDIENCE: &str = "asc-admin";
const ADMIN_KID: &str = "idp-1";

/// Base64url without padding (RFC 7515 §2).
pub fn b64url(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn std_to_url(b64: &str) -> String {
    b64.trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_")
}

fn idp_keyring() -> (
    asc_core::audit::SigningKeyring,
    asc_core::audit::PublicKeyEntry,
) {
    let (spec, public) = asc_core::audit::keys::key_pair(
        ADMIN_KID,
        &[42u8; 32],
        asc_core::audit::Validity {
            not_before_ms: 0,
            not_after_ms: None,
        },
    )
    .expect("key pair");
    (
        asc_core::audit::SigningKeyring::from_specs(&[spec]).expect("keyring"),
        public,
    )
}

/// The identity provider's JWKS document.
pub fn admin_jwks() -> String {
    let (_, public) = idp_keyring();
    serde_json::json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": ADMIN_KID, "alg": "EdDSA",
        "x": std_to_url(&public.public_key)}]})
    .to_string()
}

/// An EdDSA-signed token for `sub` with `groups`, valid from `now_s` for 5 minutes.
pub fn admin_token(sub: &str, groups: &[&str], now_s: u64) -> String {
    let header = b64url(br#"{"alg":"EdDSA","typ":"JWT","kid":"idp-1"}"#);
    let claims = serde_json::json!({"iss": ADMIN_ISSUER, "aud": ADMIN_AUDIENCE, "sub": sub,
        "groups": groups, "iat": now_s, "exp": now_s + 300});
    let input = format!("{header}.{}", b64url(claims.to_string().as_bytes()));
    let (keyring, _) = idp_keyring();
    let sig = keyring.sign(ADMIN_KID, input.as_bytes()).expect("signs");
    format!("{input}.{}", std_to_url(&sig))
}

/// `ADMIN_ISSUERS` for the test provider: `platform` is platform-admin, `<t>-admins` tenant-admin
/// of `t`, for each tenant given.
pub fn admin_issuers(tenants: &[&str]) -> String {
    let mut roles = vec![serde_json::json!({"group": "platform", "role": "platform-admin"})];
    for t in tenants {
        roles.push(serde_json::json!({"group": format!("{t}-admins"), "role": "tenant-admin", "tenant": t}));
    }
    serde_json::json!([{"issuer": ADMIN_ISSUER, "audience": ADMIN_AUDIENCE, "jwks_uri": ADMIN_JWKS_URL,
        "roles": roles}])
    .to_string()
}

/// Scripts the provider's JWKS as the next upstream reply.
pub fn script_jwks(host: &FakeHost) {
    host.script(Scripted::Reply {
        status: 200,
        headers: vec![("content-type".into(), "application/json".into())],
        chunks: vec![Ok(admin_jwks().into_bytes())],
    });
}

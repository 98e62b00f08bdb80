//! `Host` on Spin: key-value for tenant config and key records, SQLite for ledgers and the audit
//! sequencer, variables for secrets, outbound HTTP for upstream calls. The ledger and audit logic
//! is the core's (`budget::stored`, `trail::drive`); this maps it onto the platform.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::rc::Rc;

use asc_core::host::{read_limited, EgressApproved, Host, HostError, UpstreamResponse};
use asc_core::ids::TenantId;
use asc_core::ledger::stored::{apply_stored, apply_stored_batch, apply_versioned};
use asc_core::ledger::{LedgerId, LedgerOp, LedgerReply};
use asc_core::response_cache::CacheKey;
use asc_core::routing::circuit::{CircuitBoard, CircuitOp, CircuitReply};
use asc_core::secret::{Secret, SecretRef};
use asc_core::tenant_store::{publish, StoreOp, StoreReply, TenantStore, Unpublished};
use asc_core::time::Timestamp;

use crate::ledger_queue::LedgerQueues;
use crate::platform::{Outbound, Platform};
use crate::sql_ledger::SqlLedgers;

thread_local! {
    /// The instance's ledger queues, shared by the requests it serves at once.
    static LEDGER_QUEUES: Rc<LedgerQueues> = Rc::new(LedgerQueues::default());
}

/// The audit search reads at most this much of one listing page or batch object.
const AUDIT_LIST_MAX_BYTES: u64 = 4 * 1024 * 1024;
const AUDIT_OBJECT_MAX_BYTES: u64 = 64 * 1024 * 1024;

pub struct SpinHost<P> {
    platform: P,
    secrets: HashMap<String, Secret>,
    /// The ledgers this request wrote, whose outboxes to forward after the response.
    touched: RefCell<BTreeSet<LedgerId>>,
    /// The loopback region's fault: the admin stores' key-value writes fail.
    publish_refused: bool,
}

impl<P: Platform> SpinHost<P> {
    pub fn new(platform: P, secrets: HashMap<String, Secret>) -> Self {
        SpinHost {
            platform,
            secrets,
            touched: RefCell::new(BTreeSet::new()),
            publish_refused: false,
        }
    }

    /// With the fault `settings::FAULT_PUBLISH_REFUSED` on or off.
    pub fn refusing_publish(mut self, refused: bool) -> Self {
        self.publish_refused = refused;
        self
    }

    /// Writes the queue of `tenant`'s admin store (`queue`, as last read) to the key-value
    /// store, and unqueues what was written in the store's row. A value queued again meanwhile
    /// (another instance's change, or the current value re-queued over an older one that landed
    /// last: `TenantStore::published`) is written in a second pass. Returns what is left
    /// queued: the flush endpoint retries it (`app::publish_admin_stores`).
    pub async fn publish_admin(
        &self,
        tenant: &TenantId,
        mut queue: Unpublished,
    ) -> Result<Unpublished, HostError> {
        for _ in 0..2 {
            let before = queue.clone();
            queue = self.publish_admin_once(tenant, queue).await?;
            if queue.is_empty() || queue == before {
                break;
            }
        }
        Ok(queue)
    }

    async fn publish_admin_once(
        &self,
        tenant: &TenantId,
        queue: Unpublished,
    ) -> Result<Unpublished, HostError> {
        if queue.is_empty() {
            return Ok(queue);
        }
        let started_ms = self.platform.now_ms();
        let (written, errors) = publish(&queue, |key, value| async move {
            if self.publish_refused {
                return Err(HostError::Store("refused (fault injection)".into()));
            }
            self.platform.kv_set(&key, value.as_bytes()).await
        })
        .await;
        if let Some((_, e)) = errors.first() {
            eprintln!(
                "asc: admin store of {tenant}: {} of {} key-value writes failed, retried by the flush endpoint: {e}",
                errors.len(),
                queue.entries().len()
            );
        }
        if written.is_empty() {
            return Ok(queue);
        }
        apply_versioned(
            &SqlLedgers(&self.platform),
            &admin_row(tenant),
            |store: &mut TenantStore| {
                store.set_tenant(tenant);
                store.published(&written, started_ms);
                store.take_writes();
                store.unpublished().clone()
            },
        )
        .await
    }

    /// Runs `work` on `ledger` with the instance's queue for it held: after the operations in
    /// flight, before those that arrive meanwhile (`LedgerQueues::hold`).
    pub async fn holding_ledger<T>(
        &self,
        ledger: &LedgerId,
        work: impl std::future::Future<Output = T>,
    ) -> T {
        let queues = LEDGER_QUEUES.with(Rc::clone);
        queues.hold(ledger.as_str(), work).await
    }

    pub fn platform(&self) -> &P {
        &self.platform
    }

    /// The ledgers written since the last call (and forgets them).
    pub fn take_touched(&self) -> Vec<LedgerId> {
        std::mem::take(&mut *self.touched.borrow_mut())
            .into_iter()
            .collect()
    }
}

impl<P: Platform> Host for SpinHost<P> {
    type Body = P::Body;

    fn now(&self) -> Timestamp {
        Timestamp(self.platform.now_ms())
    }

    fn fill_random(&self, buf: &mut [u8]) {
        self.platform.fill_random(buf);
    }

    fn secret(&self, name: &SecretRef) -> Option<Secret> {
        self.secrets.get(name.name()).cloned()
    }

    async fn kv_get(&self, key: &str) -> Result<Option<Vec<u8>>, HostError> {
        self.platform.kv_get(key).await
    }

    async fn send(&self, req: EgressApproved) -> Result<UpstreamResponse<P::Body>, HostError> {
        self.platform
            .send(Outbound {
                method: req.method().to_string(),
                url: req.url().to_string(),
                headers: req.headers().to_vec(),
                body: req.body().to_vec(),
                timeout_ms: req.timeout_ms(),
            })
            .await
    }

    async fn ledger(&self, ledger: &LedgerId, op: LedgerOp) -> Result<LedgerReply, HostError> {
        // Read-only operations leave nothing to forward, and need no swap.
        if matches!(
            op,
            LedgerOp::Usage(_) | LedgerOp::Analytics(_) | LedgerOp::Alerts { .. }
        ) {
            return apply_stored(&SqlLedgers(&self.platform), ledger, &op).await;
        }
        // With the operations of this instance's other requests for the same ledger (see
        // `ledger_queue`).
        let queues = LEDGER_QUEUES.with(Rc::clone);
        let store = SqlLedgers(&self.platform);
        let reply = queues
            .apply(ledger.as_str(), op, |ops| async move {
                apply_stored_batch(&store, ledger, &ops).await
            })
            .await?;
        self.touched.borrow_mut().insert(ledger.clone());
        Ok(reply)
    }

    /// A tenant's circuit board: one versioned row in the ledger table (`circuits/<tenant>` can
    /// never be a ledger id: tenant ids have no `/`), updated by the same compare-and-swap.
    async fn circuits(&self, tenant: &TenantId, op: &CircuitOp) -> Result<CircuitReply, HostError> {
        let id = LedgerId(format!("circuits/{tenant}"));
        apply_versioned(
            &SqlLedgers(&self.platform),
            &id,
            |board: &mut CircuitBoard| board.apply(op),
        )
        .await
    }

    /// A tenant's admin store: one versioned row in the ledger table (`admin/<tenant>`), updated
    /// by the same compare-and-swap, so two concurrent edits cannot both pass `If-Match`. A
    /// change is queued for the key-value store in the same swap; the store's queue is then
    /// written there (`publish_admin`).
    async fn tenant_store(&self, tenant: &TenantId, op: &StoreOp) -> Result<StoreReply, HostError> {
        let (mut reply, queue) = apply_versioned(
            &SqlLedgers(&self.platform),
            &admin_row(tenant),
            |store: &mut TenantStore| {
                store.set_tenant(tenant);
                let reply = store.apply(op.clone());
                store.take_writes();
                (reply, store.unpublished().clone())
            },
        )
        .await?;
        // The change is stored and recorded: a failed write is left to the retries.
        let left = match self.publish_admin(tenant, queue.clone()).await {
            Ok(left) => left,
            Err(e) => {
                eprintln!("asc: admin store of {tenant}: unqueueing what was written failed: {e}");
                queue
            }
        };
        reply.set_published(&left);
        Ok(reply)
    }

    async fn audit_list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, HostError> {
        let bucket = crate::settings::bucket(&self.platform)
            .await
            .map_err(HostError::Store)?;
        let req = bucket
            .list_objects(prefix, start_after, limit, self.platform.now_ms())
            .map_err(HostError::Store)?;
        let mut resp = self.platform.send(req).await?;
        let body = read_limited(&mut resp.body, AUDIT_LIST_MAX_BYTES)
            .await?
            .map_err(|_| HostError::Store("audit bucket listing too large".into()))?;
        if resp.status != 200 {
            return Err(HostError::Store(format!(
                "audit bucket answered {} to a listing",
                resp.status
            )));
        }
        Ok(crate::s3::listed_keys(&String::from_utf8_lossy(&body)))
    }

    async fn audit_get(&self, key: &str) -> Result<Option<Vec<u8>>, HostError> {
        let bucket = crate::settings::bucket(&self.platform)
            .await
            .map_err(HostError::Store)?;
        let req = bucket
            .get_object(key, self.platform.now_ms())
            .map_err(HostError::Store)?;
        let mut resp = self.platform.send(req).await?;
        if resp.status == 404 {
            return Ok(None);
        }
        if resp.status != 200 {
            return Err(HostError::Store(format!(
                "audit bucket answered {} to GET {key}",
                resp.status
            )));
        }
        let body = read_limited(&mut resp.body, AUDIT_OBJECT_MAX_BYTES)
            .await?
            .map_err(|_| HostError::Store(format!("audit object {key} too large")))?;
        Ok(Some(body))
    }

    async fn cache_get(&self, key: &CacheKey) -> Result<Option<Vec<u8>>, HostError> {
        crate::sql_cache::get(&self.platform, key, self.platform.now_ms()).await
    }

    async fn cache_put(
        &self,
        key: &CacheKey,
        entry: &[u8],
        expires_ms: u64,
    ) -> Result<(), HostError> {
        crate::sql_cache::put(
            &self.platform,
            key,
            entry,
            expires_ms,
            self.platform.now_ms(),
        )
        .await
    }

    async fn sleep(&self, ms: u64) {
        self.platform.sleep(ms).await;
    }
}

/// The ledger table's row of `tenant`'s admin store.
pub fn admin_row(tenant: &TenantId) -> LedgerId {
    LedgerId(format!("{ADMIN_ROW_PREFIX}{tenant}"))
}

/// The prefix of the admin stores' rows in the ledger table.
pub const ADMIN_ROW_PREFIX: &str = "admin/";

//! A tenant's admin store object: one per tenant, in the region's jurisdiction. It stores every
//! version of the tenant's config and its key records (the core's `TenantStore`; in memory, the
//! versions' descriptions and the newest config), checks `If-Match` and writes each change
//! through to KV (`ASC_CONFIG`), which the request path reads.
//!
//! A change is stored with its values queued for KV (`Unpublished`) and an alarm set, in one
//! write; then the whole queue is written to KV. What KV refused stays queued and the alarm
//! retries it (5 s, doubling to 5 min), so a stored change always reaches the request path. The
//! JS class runs each call and alarm under `blockConcurrencyWhile`: KV writes from two calls
//! never overlap, so an older value cannot land after a newer one. The KV writes of one call
//! share a budget of 20 s (the runtime resets an object whose callback takes 30 s); what is
//! left when it runs out stays queued. A write that was sent but not confirmed (KV threw, or
//! did not answer in time) may still land; its key stays queued until a write that began a
//! minute later succeeds, so the last write of a key is its newest value (assuming an
//! unconfirmed write lands within that minute, if at all).

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use asc_core::ids::TenantId;
use asc_core::tenant_store::{publish, version_row, StoreOp, StoreReply, TenantStore};
use js_sys::Promise;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use super::{fail, now_ms, storage};
use crate::host::CONFIG_KV;
use crate::{bootstrap, fault, js};

/// The first retry of a refused KV write, and the longest wait between retries.
const RETRY_FIRST_MS: u64 = 5_000;
const RETRY_MAX_MS: u64 = 300_000;
/// How long one call's KV writes may take in all.
const PUBLISH_BUDGET_MS: u64 = 20_000;
/// How long a KV write that was sent and not confirmed is assumed to be able to land after
/// it was given up on (an assumption: Cloudflare documents no bound).
const UNCONFIRMED_LANDS_WITHIN_MS: u64 = 60_000;
/// A write is not sent with less time left in the call's budget than this.
const PUT_MIN_MS: u64 = 1_000;

/// Why a KV write is not known to have happened.
enum PutFailure {
    /// Not sent (the fault, or no time left in the call): it will not land.
    NotSent(&'static str),
    /// Sent, and KV threw (a refusal, or a connection lost after KV took it) or gave no answer
    /// in time: it may still land later.
    Unconfirmed(Option<JsValue>),
}

struct State {
    storage: JsValue,
    env: JsValue,
    store: RefCell<Option<TenantStore>>,
    /// Retries in a row that left something queued (the backoff; reset when all is written).
    retries: Cell<u32>,
}

impl State {
    async fn apply(&self, tenant: String, op: String) -> Result<JsValue, JsValue> {
        let op: StoreOp = serde_json::from_str(&op).map_err(fail)?;
        // Taken out for the call (nothing else runs meanwhile: blockConcurrencyWhile); an error
        // drops it and the next call reads it again.
        let mut store = match self.store.take() {
            Some(store) => store,
            None => TenantStore::load(TenantId(tenant), storage::admin_rows(&self.storage).await?),
        };
        // Only these read an older version's config (a put's config may be 1 MB: not cloned).
        let again =
            matches!(op, StoreOp::Get { .. } | StoreOp::Rollback { .. }).then(|| op.clone());
        let mut reply = store.apply(op);
        if let (StoreReply::NeedVersion { version }, Some(op)) = (&reply, again) {
            // An older version's config, read for this operation only.
            let version = *version;
            let row = storage::get(&self.storage, &version_row(version)).await?;
            store.provide_version(version, row.as_deref());
            reply = store.apply(op);
            store.forget_version(version);
        }
        if let StoreReply::Stored { before, .. } = &reply {
            // The config before this change is an older one now: not held (Spin keeps its
            // store whole, so this is the object's, not the core's).
            store.forget_version(*before);
        }
        let writes = store.take_writes();
        if !store.unpublished().is_empty() {
            // The safety net, durable with the change: if this object dies before KV has it all.
            js::storage_set_alarm(&self.storage, js::number(now_ms() + RETRY_FIRST_MS));
        }
        storage::write(&self.storage, &writes.puts, &writes.deletes);
        if !self.publish(&mut store).await {
            self.retries.set(0);
        }
        reply.set_published(store.unpublished());
        *self.store.borrow_mut() = Some(store);
        Ok(JsValue::from_str(&storage::json(&reply)?))
    }

    /// Writes the queue to KV and stores what is left of it. Whether something is left.
    async fn publish(&self, store: &mut TenantStore) -> bool {
        if store.unpublished().is_empty() {
            return false;
        }
        let queue = store.unpublished().clone();
        let local = bootstrap::deployment(&self.env).is_ok_and(|d| d.region.id == "local");
        let refused = fault::is(local, &self.env, fault::PUBLISH_REFUSED, "1");
        let started_ms = now_ms();
        let deadline = started_ms + PUBLISH_BUDGET_MS;
        let (written, failed) = publish(&queue, |key, value| async move {
            let left_ms = deadline.saturating_sub(now_ms());
            if refused {
                return Err(PutFailure::NotSent("refused (fault injection)"));
            }
            if left_ms < PUT_MIN_MS {
                return Err(PutFailure::NotSent("no time left in this call"));
            }
            let put = js::kv_put_within(&self.env, CONFIG_KV, &key, &value, js::number(left_ms));
            match js::wait(put).await {
                Ok(answer) if answer.as_string().as_deref() == Some("unanswered") => {
                    Err(PutFailure::Unconfirmed(None))
                }
                Ok(_) => Ok(()),
                Err(e) => Err(PutFailure::Unconfirmed(Some(e))),
            }
        })
        .await;
        for ((key, _, _), failure) in &failed {
            if let PutFailure::Unconfirmed(_) = failure {
                store.unsettled(key, now_ms() + UNCONFIRMED_LANDS_WITHIN_MS);
            }
        }
        if let Some((_, failure)) = failed.first() {
            // The values are config and key records (no secrets); the KV error names neither.
            let why = match failure {
                PutFailure::NotSent(why) => (*why).to_string(),
                PutFailure::Unconfirmed(Some(e)) => js::describe(e),
                PutFailure::Unconfirmed(None) => "no answer in time".into(),
            };
            js::log_error(&format!(
                "asc: admin store: {} of {} KV writes failed, retried by the alarm: {why}",
                failed.len(),
                queue.entries().len(),
            ));
        }
        store.published(&written, started_ms);
        let writes = store.take_writes();
        storage::write(&self.storage, &writes.puts, &writes.deletes);
        !store.unpublished().is_empty()
    }

    /// Retries what KV refused; while anything is queued, the next retry is set before.
    async fn alarm(&self) -> Result<JsValue, JsValue> {
        // The store's tenant name only matters to a new version, which an alarm never makes.
        let (mut store, cached) = match self.store.take() {
            Some(store) => (store, true),
            None => {
                let rows = storage::admin_rows(&self.storage).await?;
                (TenantStore::load(TenantId(String::new()), rows), false)
            }
        };
        if !store.unpublished().is_empty() {
            // The next retry, set first: if this one fails or is cut short, that one still comes.
            let retries = self.retries.get().saturating_add(1);
            self.retries.set(retries);
            let wait = RETRY_FIRST_MS
                .saturating_mul(1 << retries.min(10))
                .min(RETRY_MAX_MS);
            js::storage_set_alarm(&self.storage, js::number(now_ms() + wait));
        }
        if !self.publish(&mut store).await {
            self.retries.set(0);
        }
        if cached {
            *self.store.borrow_mut() = Some(store);
        }
        Ok(JsValue::UNDEFINED)
    }
}

#[wasm_bindgen]
pub struct AdminObject {
    state: Rc<State>,
}

#[wasm_bindgen]
impl AdminObject {
    #[wasm_bindgen(constructor)]
    pub fn new(storage: JsValue, env: JsValue) -> AdminObject {
        AdminObject {
            state: Rc::new(State {
                storage,
                env,
                store: RefCell::new(None),
                retries: Cell::new(0),
            }),
        }
    }

    pub fn apply(&self, tenant: String, op: String) -> Promise {
        let state = self.state.clone();
        future_to_promise(async move { state.apply(tenant, op).await })
    }

    pub fn alarm(&self) -> Promise {
        let state = self.state.clone();
        future_to_promise(async move { state.alarm().await })
    }
}

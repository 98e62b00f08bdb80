//! A tenant's admin store object: one per tenant, in the region's jurisdiction. It holds every
//! version of the tenant's config and its key records (the core's `TenantStore`), checks
//! `If-Match` and writes each change through to KV (`ASC_CONFIG`), which the request path reads.

use std::cell::RefCell;
use std::rc::Rc;

use asc_core::ids::TenantId;
use asc_core::tenant_store::{StoreOp, StoreReply, TenantStore};
use js_sys::Promise;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use super::{fail, storage};
use crate::host::CONFIG_KV;
use crate::js;

struct State {
    storage: JsValue,
    env: JsValue,
    store: RefCell<Option<TenantStore>>,
}

impl State {
    async fn apply(&self, tenant: String, op: String) -> Result<JsValue, JsValue> {
        if self.store.borrow().is_none() {
            let rows = storage::all(&self.storage, "").await?;
            *self.store.borrow_mut() = Some(TenantStore::load(TenantId(tenant), rows));
        }
        let op: StoreOp = serde_json::from_str(&op).map_err(fail)?;
        let (reply, writes) = {
            let mut guard = self.store.borrow_mut();
            let Some(store) = guard.as_mut() else {
                return Err(fail("admin store not loaded"));
            };
            let reply = store.apply(op);
            (reply, store.take_writes())
        };
        // Stored first (atomically; the output gate holds the answer until it is durable), then
        // published. If a KV write fails the caller gets a 503 while the change is stored: a
        // config is published again by the next put or rollback, a revocation by revoking again
        // (idempotent).
        storage::write(&self.storage, &writes, &[]);
        let publish: &[(String, String)] = match &reply {
            StoreReply::Stored { publish, .. } | StoreReply::KeyStored { publish, .. } => publish,
            _ => &[],
        };
        for (key, value) in publish {
            js::wait(js::kv_put(&self.env, CONFIG_KV, key, value)).await?;
        }
        Ok(JsValue::from_str(&storage::json(&reply)?))
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
            }),
        }
    }

    pub fn apply(&self, tenant: String, op: String) -> Promise {
        let state = self.state.clone();
        future_to_promise(async move { state.apply(tenant, op).await })
    }
}

//! The tenant ledger object: one per tenant (or tenant shard), region-wide. It applies the core's
//! `TenantLedger` operations, stores what each one changed, and on its alarm gives up on expired
//! requests and forwards finished records to the region's audit stream in batches.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use asc_core::ledger::insights::{SweepMark, MARK_RETRY_MS};
use asc_core::ledger::{ForwardAck, LedgerId, LedgerOp, LedgerReply, TenantLedger};
use js_sys::Promise;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use super::{fail, now_ms, storage};
use crate::host::{ALERT_SWEEP_FLAG, ALERT_SWEEP_PREFIX, CONFIG_KV};
use crate::{bootstrap, fault, js};

/// The storage key of the ledger's own id (it is the object's name; ids from `idFromName` do not
/// carry it back), which the alarm needs as the records' source.
const ID_KEY: &str = "self:id";
/// After a failed forward, try again this much later.
const RETRY_MS: u64 = 1_000;
/// Batches one alarm forwards at most, so one alarm stays short.
const MAX_FORWARDS_PER_ALARM: usize = 8;

struct State {
    storage: JsValue,
    env: JsValue,
    loaded: RefCell<Option<(LedgerId, TenantLedger)>>,
    alarm_at: Cell<Option<u64>>,
    /// When to put its alert sweep marker. In memory: after a restart it may put it again,
    /// which is harmless.
    mark: Cell<SweepMark>,
}

#[wasm_bindgen]
pub struct LedgerObject {
    state: Rc<State>,
}

impl State {
    /// The ledger in memory, from storage the first time (`name` given by the caller, or stored).
    async fn load(&self, name: Option<&str>) -> Result<(), JsValue> {
        if self.loaded.borrow().is_some() {
            return Ok(());
        }
        let pieces = storage::all(&self.storage, "").await?;
        let stored_id = pieces
            .iter()
            .find(|(k, _)| k == ID_KEY)
            .map(|(_, v)| v.clone());
        let id = match (name, stored_id) {
            (_, Some(id)) => id,
            (Some(name), None) => {
                storage::write(&self.storage, &[(ID_KEY.into(), name.into())], &[]);
                name.to_string()
            }
            (None, None) => return Err(fail("ledger has no id yet")),
        };
        let ledger = TenantLedger::restore(
            pieces
                .iter()
                .filter(|(k, _)| k != ID_KEY)
                .map(|(k, v)| (k.as_str(), v.as_str())),
        )
        .map_err(fail)?;
        self.alarm_at.set(storage::alarm(&self.storage).await?);
        *self.loaded.borrow_mut() = Some((LedgerId(id), ledger));
        Ok(())
    }

    /// Stores what changed and makes sure the alarm wakes the ledger when it has work.
    fn persist(&self, ledger: &mut TenantLedger) -> Result<(), JsValue> {
        let writes = ledger.take_writes().map_err(fail)?;
        storage::write(&self.storage, &writes.puts, &writes.deletes);
        let delay = bootstrap::deployment(&self.env)
            .map(|d| d.forward_delay_ms)
            .unwrap_or(asc_core::deployment::DEFAULT_FORWARD_MS);
        if let Some(at) = ledger.wake_at(now_ms(), delay) {
            storage::schedule(&self.storage, &self.alarm_at, at);
        }
        if let Some(at) = self.mark_at(ledger) {
            storage::schedule(&self.storage, &self.alarm_at, at);
        }
        Ok(())
    }

    /// When the alarm should mark this ledger for the alert sweep: when an alert becomes due for
    /// it, or, marked already, when the marker is put again.
    fn mark_at(&self, ledger: &TenantLedger) -> Option<u64> {
        self.mark.get().at(ledger.alerts_sweep_due_ms())
    }

    /// Puts the ledger's marker for the request plane's alert sweep (`src/sweep.rs`, on its
    /// cron) when an alert no request carried is due, then the flag that tells the sweep to
    /// list markers: the tenant's webhook secrets live with the request plane, so this object
    /// cannot deliver it itself.
    async fn mark_for_sweep(&self, id: &LedgerId) {
        let now = now_ms();
        let due = {
            let loaded = self.loaded.borrow();
            loaded.as_ref().and_then(|(_, l)| self.mark_at(l))
        };
        if due.is_none_or(|at| at > now) {
            return;
        }
        let key = format!("{ALERT_SWEEP_PREFIX}{id}");
        let put = match js::wait(js::kv_put(&self.env, CONFIG_KV, &key, id.as_str())).await {
            Ok(_) => js::wait(js::kv_put(&self.env, CONFIG_KV, ALERT_SWEEP_FLAG, "1")).await,
            Err(e) => Err(e),
        };
        let mut mark = self.mark.get();
        match put {
            Ok(_) => mark.put(now),
            Err(e) => {
                js::log_error(&format!(
                    "asc: ledger {id}: marking it for the alert sweep failed, retrying in {} s: {}",
                    MARK_RETRY_MS / 1000,
                    js::describe(&e)
                ));
                mark.failed(now);
            }
        }
        self.mark.set(mark);
    }

    /// Applies `ops` (UTF-8 JSON, NUL-separated: a group of commits and one operation) in order
    /// and stores what they changed in one write; the replies, NUL-separated.
    async fn apply(&self, name: String, ops: Vec<u8>) -> Result<JsValue, JsValue> {
        self.load(Some(&name)).await?;
        let mut loaded = self.loaded.borrow_mut();
        let Some((_, ledger)) = loaded.as_mut() else {
            return Err(fail("ledger not loaded"));
        };
        if is_fault_trap(&self.env, &name) {
            // With the ledger borrowed, as a real panic here would leave it.
            panic!("asc: fault injection: a trap in ledger {name}");
        }
        // Read as text: `from_slice` would compile a second copy of every operation's reader.
        let ops = std::str::from_utf8(&ops).map_err(fail)?;
        let mut applied: Vec<Option<LedgerReply>> = Vec::new();
        let mut last_commit_ms = None;
        for op in ops.split('\0') {
            applied.push(match serde_json::from_str::<LedgerOp>(op) {
                Ok(op) => {
                    if matches!(op, LedgerOp::ClaimAlerts { .. }) {
                        // The sweep came: the ledger may mark itself again.
                        let mut mark = self.mark.get();
                        mark.swept();
                        self.mark.set(mark);
                    }
                    last_commit_ms = match &op {
                        LedgerOp::Commit(ask) => Some(ask.now_ms),
                        _ => None,
                    };
                    Some(ledger.apply(op))
                }
                // One bad operation must not take the others of the group down with it.
                Err(e) => {
                    js::log_error(&format!("asc: ledger operation refused: {e}"));
                    last_commit_ms = None;
                    None
                }
            });
        }
        if let (Some(now_ms), Some(Some(last))) = (last_commit_ms, applied.last_mut()) {
            ledger.end_call(last, now_ms);
        }
        let mut replies = String::new();
        for reply in &applied {
            if !replies.is_empty() {
                replies.push('\0');
            }
            match reply {
                Some(reply) => replies.push_str(&storage::json(reply)?),
                None => replies.push_str("null"),
            }
        }
        self.persist(ledger)?;
        Ok(JsValue::from_str(&replies))
    }

    async fn alarm(&self) -> Result<JsValue, JsValue> {
        self.load(None).await?;
        self.alarm_at.set(None);
        let deployment = bootstrap::deployment(&self.env).map_err(fail)?;
        let jurisdiction = deployment.region.storage_jurisdiction.clone();
        // Before the persist below, which schedules the next mark from this one.
        let id = match self.loaded.borrow().as_ref() {
            Some((id, _)) => id.clone(),
            None => return Err(fail("ledger not loaded")),
        };
        self.mark_for_sweep(&id).await;
        let (id, expired) = {
            let mut loaded = self.loaded.borrow_mut();
            let Some((id, ledger)) = loaded.as_mut() else {
                return Err(fail("ledger not loaded"));
            };
            let expired = ledger.expire(now_ms());
            self.persist(ledger)?;
            (id.clone(), expired)
        };
        if expired > 0 {
            js::log_error(&format!(
                "asc: ledger {id}: {expired} request(s) expired unfinished; charged their reservations and recorded them as partial"
            ));
        }

        let stream = deployment.audit_streams.for_ledger(id.as_str());
        for _ in 0..MAX_FORWARDS_PER_ALARM {
            // Marked in flight (and stored) before it is sent: a restart resends the same batch.
            // (The batch's stream and JSON, serialized from the outbox's records in place.)
            let batch = {
                let mut loaded = self.loaded.borrow_mut();
                let Some((_, ledger)) = loaded.as_mut() else {
                    break;
                };
                let batch = match ledger.forward_ref(&id, &stream) {
                    Some(b) => Some((b.stream.clone(), storage::json(&b)?)),
                    None => None,
                };
                self.persist(ledger)?;
                batch
            };
            let Some((batch_stream, batch_json)) = batch else {
                break;
            };
            let sent =
                match js::audit_append(&self.env, jurisdiction.clone(), &batch_stream, &batch_json)
                {
                    Ok(promise) => js::wait(promise).await,
                    Err(e) => Err(e),
                };
            let ack: Result<ForwardAck, String> =
                sent.map_err(|e| js::describe(&e)).and_then(|v| {
                    serde_json::from_str(&v.as_string().unwrap_or_default())
                        .map_err(|e| e.to_string())
                });
            match ack {
                Ok(ack) => {
                    let mut loaded = self.loaded.borrow_mut();
                    if let Some((_, ledger)) = loaded.as_mut() {
                        ledger.forwarded(ack);
                        self.persist(ledger)?;
                    }
                }
                Err(why) => {
                    // Kept in the outbox: nothing is lost; the stream drops what it has.
                    js::log_error(&format!(
                        "asc: ledger {id}: forwarding to {batch_stream} failed, retrying: {why}"
                    ));
                    storage::schedule(&self.storage, &self.alarm_at, now_ms() + RETRY_MS);
                    break;
                }
            }
        }
        Ok(JsValue::UNDEFINED)
    }
}

/// The fault `ASC_FAULT_TRAP_LEDGER` (`fault.rs`): once per isolate, for the ledger it names.
fn is_fault_trap(env: &JsValue, name: &str) -> bool {
    let local = bootstrap::deployment(env).is_ok_and(|d| d.region.id == "local");
    fault::is(local, env, fault::TRAP_LEDGER, name)
        && js::first_time(&format!("trap-ledger:{name}"))
}

#[wasm_bindgen]
impl LedgerObject {
    #[wasm_bindgen(constructor)]
    pub fn new(storage: JsValue, env: JsValue) -> LedgerObject {
        LedgerObject {
            state: Rc::new(State {
                storage,
                env,
                loaded: RefCell::new(None),
                alarm_at: Cell::new(None),
                mark: Cell::new(SweepMark::default()),
            }),
        }
    }

    /// Operations (UTF-8 JSON, NUL-separated; `js/control.mjs` encodes them) on the ledger named
    /// `name`; their replies (JSON, NUL-separated).
    pub fn apply(&self, name: String, op: Vec<u8>) -> Promise {
        let state = self.state.clone();
        future_to_promise(async move { state.apply(name, op).await })
    }

    pub fn alarm(&self) -> Promise {
        let state = self.state.clone();
        future_to_promise(async move { state.alarm().await })
    }
}

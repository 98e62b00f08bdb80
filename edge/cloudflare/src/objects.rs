//! The tenant ledger Durable Object. It only stores and sequences: the arithmetic is the core's.
//!
//! The ledger stays in the object's memory between requests (an object is single-threaded and its
//! input gate serializes requests, so memory and storage cannot diverge); storage is read only
//! when the object starts, and written on every change. The alarm is set only when it must move
//! earlier. Profiling the gateway showed the per-op get + parse and `setAlarm` among its costs.

use std::cell::{Cell, RefCell};

use asc_core::budget::{Ledger, LedgerOp};
use worker::js_sys::Date as JsDate;
use worker::wasm_bindgen::JsValue;
use worker::{
    console_error, durable_object, Date, DurableObject, Env, Request, Response, Result,
    ScheduledTime, State, Storage,
};

const LEDGER_KEY: &str = "ledger";

/// One tenant's ledger (budgets, request and token rate windows, open reservations), shared by
/// every isolate of the region so limits hold however many isolates serve the tenant.
#[durable_object]
pub struct TenantLedger {
    state: State,
    ledger: RefCell<Option<Ledger>>,
    /// The alarm this object last set (ms), while it has not fired.
    alarm_at: Cell<Option<u64>>,
}

impl TenantLedger {
    /// The ledger, from memory or (once per object start) from storage.
    async fn current(&self, storage: &Storage) -> Result<Ledger> {
        if let Some(l) = self.ledger.borrow_mut().take() {
            return Ok(l);
        }
        Self::load(storage).await
    }

    async fn load(storage: &Storage) -> Result<Ledger> {
        // Stored as a JSON string: 64-bit amounts survive, unlike JS numbers.
        match storage.get::<String>(LEDGER_KEY).await? {
            Some(text) => {
                serde_json::from_str(&text).map_err(|e| worker::Error::RustError(e.to_string()))
            }
            None => Ok(Ledger::default()),
        }
    }

    /// Persists the ledger, keeps it in memory, and wakes at the next reservation expiry. The
    /// object's input gate holds other requests while storage is awaited, so load-apply-store is
    /// not interleaved.
    async fn store(&self, storage: &Storage, ledger: Ledger) -> Result<()> {
        let text =
            serde_json::to_string(&ledger).map_err(|e| worker::Error::RustError(e.to_string()))?;
        let next = ledger.next_expiry();
        storage.put(LEDGER_KEY, text).await?;
        *self.ledger.borrow_mut() = Some(ledger);
        if let Some(at) = next {
            if self.alarm_at.get().is_none_or(|set| at < set) {
                let when = ScheduledTime::new(JsDate::new(&JsValue::from_f64(at as f64)));
                storage.set_alarm(when).await?;
                self.alarm_at.set(Some(at));
            }
        }
        Ok(())
    }
}

impl DurableObject for TenantLedger {
    fn new(state: State, _env: Env) -> Self {
        TenantLedger {
            state,
            ledger: RefCell::new(None),
            alarm_at: Cell::new(None),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        match req.path().as_str() {
            "/ledger" => {
                let op: LedgerOp = req.json().await?;
                let storage = self.state.storage();
                let mut ledger = self.current(&storage).await?;
                let reply = ledger.apply(&op);
                self.store(&storage, ledger).await?;
                Response::from_json(&reply)
            }
            other => Response::error(format!("no such ledger operation {other}"), 404),
        }
    }

    /// Charges reservations whose settle never came (client gone, isolate killed) at their
    /// reserved amount and releases them.
    async fn alarm(&self) -> Result<Response> {
        let storage = self.state.storage();
        // This alarm has fired: the next store sets the one after it.
        self.alarm_at.set(None);
        let mut ledger = self.current(&storage).await?;
        let expired = ledger.expire(Date::now().as_millis());
        self.store(&storage, ledger).await?;
        for e in &expired {
            console_error!(
                "asc: reservation {} expired unsettled; charged {} micro-USD",
                e.request_id,
                e.charged_micros
            );
        }
        Response::ok("ok")
    }
}

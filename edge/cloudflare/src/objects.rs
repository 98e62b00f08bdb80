//! The tenant ledger Durable Object. It only stores and sequences: the arithmetic is the core's.

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
}

impl TenantLedger {
    async fn load(storage: &Storage) -> Result<Ledger> {
        // Stored as a JSON string: 64-bit amounts survive, unlike JS numbers.
        match storage.get::<String>(LEDGER_KEY).await? {
            Some(text) => {
                serde_json::from_str(&text).map_err(|e| worker::Error::RustError(e.to_string()))
            }
            None => Ok(Ledger::default()),
        }
    }

    /// Persists the ledger and wakes at the next reservation expiry. The object's input gate
    /// holds other requests while storage is awaited, so load-apply-store is not interleaved.
    async fn store(storage: &Storage, ledger: &Ledger) -> Result<()> {
        let text =
            serde_json::to_string(ledger).map_err(|e| worker::Error::RustError(e.to_string()))?;
        storage.put(LEDGER_KEY, text).await?;
        if let Some(at) = ledger.next_expiry() {
            let when = ScheduledTime::new(JsDate::new(&JsValue::from_f64(at as f64)));
            storage.set_alarm(when).await?;
        }
        Ok(())
    }
}

impl DurableObject for TenantLedger {
    fn new(state: State, _env: Env) -> Self {
        TenantLedger { state }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        match req.path().as_str() {
            "/ledger" => {
                let op: LedgerOp = req.json().await?;
                let storage = self.state.storage();
                let mut ledger = Self::load(&storage).await?;
                let reply = ledger.apply(&op);
                Self::store(&storage, &ledger).await?;
                Response::from_json(&reply)
            }
            other => Response::error(format!("no such ledger operation {other}"), 404),
        }
    }

    /// Charges reservations whose settle never came (client gone, isolate killed) at their
    /// reserved amount and releases them.
    async fn alarm(&self) -> Result<Response> {
        let storage = self.state.storage();
        let mut ledger = Self::load(&storage).await?;
        let expired = ledger.expire(Date::now().as_millis());
        Self::store(&storage, &ledger).await?;
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

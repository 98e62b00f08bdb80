//! Durable Objects. They only store and sequence: the arithmetic is the core's.

use asc_core::budget::{Ledger, LedgerOp};
use serde::{Deserialize, Serialize};
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
        Ok(storage.get(LEDGER_KEY).await?.unwrap_or_default())
    }

    /// Persists the ledger and wakes at the next reservation expiry. The object's input gate
    /// holds other requests while storage is awaited, so load-apply-store is not interleaved.
    async fn store(storage: &Storage, ledger: &Ledger) -> Result<()> {
        storage.put(LEDGER_KEY, ledger).await?;
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

#[derive(Debug, Serialize, Deserialize)]
pub struct Appended {
    pub sequence: u64,
}

/// Assigns gap-free sequence numbers to a region's audit records and stores them durably.
#[durable_object]
pub struct AuditSequencer {
    state: State,
}

impl DurableObject for AuditSequencer {
    fn new(state: State, _env: Env) -> Self {
        AuditSequencer { state }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        match req.path().as_str() {
            "/append" => {
                let record: serde_json::Value = req.json().await?;
                let storage = self.state.storage();
                let sequence: u64 = storage.get("next_sequence").await?.unwrap_or(1);
                // One put of both keys: the record and the counter commit together or not at all.
                let mut batch = serde_json::Map::new();
                batch.insert(
                    format!("rec:{sequence:020}"),
                    serde_json::json!({ "sequence": sequence, "record": record }),
                );
                batch.insert("next_sequence".into(), serde_json::json!(sequence + 1));
                storage.put_multiple(batch).await?;
                Response::from_json(&Appended { sequence })
            }
            other => Response::error(format!("no such audit operation {other}"), 404),
        }
    }
}

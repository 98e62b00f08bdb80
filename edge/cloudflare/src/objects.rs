//! Durable Objects. They only store and sequence: the arithmetic is the core's.

use asc_core::ratelimit::{RateAsk, RateWindows};
use serde::{Deserialize, Serialize};
use worker::{durable_object, DurableObject, Env, Request, Response, Result, State};

/// Region-wide counters of one tenant. Every isolate of the region reaches the same object, so a
/// limit holds however many isolates serve the tenant.
#[durable_object]
pub struct TenantCounter {
    state: State,
}

impl DurableObject for TenantCounter {
    fn new(state: State, _env: Env) -> Self {
        TenantCounter { state }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        match req.path().as_str() {
            "/rate/admit" => {
                let ask: RateAsk = req.json().await?;
                let storage = self.state.storage();
                // The object's input gate holds other requests while storage is awaited, so this
                // read-modify-write is not interleaved.
                let mut windows: RateWindows = storage.get("rate").await?.unwrap_or_default();
                let decision = windows.admit(&ask);
                storage.put("rate", &windows).await?;
                Response::from_json(&decision)
            }
            other => Response::error(format!("no such counter operation {other}"), 404),
        }
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

//! The circuit board Durable Object: one per tenant per region, so every isolate of the region
//! sees the same breaker states and retry budget. It only stores; the state machine is the core's.

use asc_core::routing::circuit::{CircuitBoard, CircuitOp};
use worker::{durable_object, DurableObject, Env, Request, Response, Result, State};

const BOARD_KEY: &str = "board";

#[durable_object]
pub struct CircuitBoardObject {
    state: State,
}

impl DurableObject for CircuitBoardObject {
    fn new(state: State, _env: Env) -> Self {
        CircuitBoardObject { state }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        if req.path() != "/circuits" {
            return Response::error("no such circuit operation", 404);
        }
        let op: CircuitOp = req.json().await?;
        let storage = self.state.storage();
        // The input gate holds other requests while storage is awaited: load-apply-store is
        // atomic per object.
        let mut board: CircuitBoard = match storage.get::<String>(BOARD_KEY).await? {
            Some(text) => serde_json::from_str(&text).unwrap_or_default(),
            None => CircuitBoard::default(),
        };
        let reply = board.apply(&op);
        let text =
            serde_json::to_string(&board).map_err(|e| worker::Error::RustError(e.to_string()))?;
        storage.put(BOARD_KEY, text).await?;
        Response::from_json(&reply)
    }
}

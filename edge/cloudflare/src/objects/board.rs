//! A tenant's circuit board object: one per tenant, region-wide, so every isolate of the region
//! learns the same breaker states and shares one retry budget. The state machine is the core's.

use std::cell::RefCell;
use std::rc::Rc;

use asc_core::routing::circuit::{CircuitBoard, CircuitOp};
use js_sys::Promise;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use super::{fail, storage};

const BOARD_KEY: &str = "board";

struct State {
    storage: JsValue,
    board: RefCell<Option<CircuitBoard>>,
}

impl State {
    async fn apply(&self, op: String) -> Result<JsValue, JsValue> {
        if self.board.borrow().is_none() {
            let board = match storage::get(&self.storage, BOARD_KEY).await? {
                // A board this version cannot read starts afresh: breakers protect upstreams,
                // and forgetting their state only lets traffic through.
                Some(text) => serde_json::from_str(&text).unwrap_or_default(),
                None => CircuitBoard::default(),
            };
            *self.board.borrow_mut() = Some(board);
        }
        let op: CircuitOp = serde_json::from_str(&op).map_err(fail)?;
        let mut guard = self.board.borrow_mut();
        let Some(board) = guard.as_mut() else {
            return Err(fail("board not loaded"));
        };
        let before = board.clone();
        let reply = board.apply(&op);
        if *board != before {
            storage::write(
                &self.storage,
                &[(BOARD_KEY.into(), storage::json(board)?)],
                &[],
            );
        }
        Ok(JsValue::from_str(&storage::json(&reply)?))
    }
}

#[wasm_bindgen]
pub struct BoardObject {
    state: Rc<State>,
}

#[wasm_bindgen]
impl BoardObject {
    #[wasm_bindgen(constructor)]
    pub fn new(storage: JsValue) -> BoardObject {
        BoardObject {
            state: Rc::new(State {
                storage,
                board: RefCell::new(None),
            }),
        }
    }

    pub fn apply(&self, op: String) -> Promise {
        let state = self.state.clone();
        future_to_promise(async move { state.apply(op).await })
    }
}

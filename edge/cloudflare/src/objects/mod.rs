//! The Durable Objects' Rust halves. Each JS class in `js/entry.mjs` (extending `DurableObject`,
//! so it is called by RPC) holds one of these and forwards its methods. They keep their state in
//! memory (an object is single-threaded and its input gate holds new calls while storage is
//! read), write what changed without awaiting it (the output gate holds the answer until the
//! write is durable; a failed write resets the object), and set alarms.

mod admin;
mod board;
mod ledger;
mod sequencer;
mod storage;

pub use admin::AdminObject;
pub use board::BoardObject;
pub use ledger::LedgerObject;
pub use sequencer::SequencerObject;

use wasm_bindgen::JsValue;

/// A failure inside an object, as the JS caller sees it (the message is logged, never sent on).
pub(crate) fn fail(what: impl std::fmt::Display) -> JsValue {
    js_sys::Error::new(&what.to_string()).into()
}

pub(crate) fn now_ms() -> u64 {
    js_sys::Date::now() as u64
}

//! ASC on Cloudflare Workers. This crate only gives the core its I/O. It builds as two Workers
//! per region, so the isolate on the request path carries only the request path's code:
//!
//! - the request plane (default features, `js/entry.mjs`): `handle` runs the core's `Gateway`
//!   against `WorkerHost` for `/v1/...` and forwards `/admin...` to the control plane over a
//!   service binding (`CONTROL`);
//! - the control plane (`--features control`, `js/control.mjs`): the Durable Objects
//!   (`objects/`: the tenant ledger, the audit sequencer, the circuit board and the admin
//!   store), the admin plane and the dashboard. The request plane reaches the objects through
//!   Durable Object bindings naming this Worker (`script_name`).
//!
//! The entry hands `handle` the request's head as one string and the Request itself, and gets a
//! Response built in one call. Work left for after the response goes to `ctx.waitUntil`. The
//! objects only store and schedule; every decision lives in `asc-core`.

mod body;
mod bootstrap;
#[cfg(feature = "control")]
mod control;
mod fault;
mod host;
mod js;
#[cfg(feature = "control")]
mod objects;
#[cfg(not(feature = "control"))]
mod request;
#[cfg(not(feature = "control"))]
mod sweep;
mod wait;

#[cfg(feature = "control")]
pub use control::handle;
#[cfg(feature = "control")]
pub use objects::{AdminObject, BoardObject, LedgerObject, SequencerObject};
#[cfg(not(feature = "control"))]
pub use request::{handle, StreamRelay};
#[cfg(not(feature = "control"))]
pub use sweep::sweep_alerts;

pub use wait::asc_settled;

use asc_core::GatewayError;
use wasm_bindgen::JsValue;

/// The method, path and headers of `head`: `method NUL path NUL name NUL value ...`
/// (`requestHead` in `js/boot.js`).
fn split_head(head: &str) -> (String, String, Vec<(String, String)>) {
    let mut parts = head.splitn(3, '\0');
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    (method, path, host::parse_flat(parts.next().unwrap_or("")))
}

/// `err` as a complete JSON reply, its code also in `x-asc-error-code`.
fn error_response(err: &GatewayError) -> JsValue {
    let head = host::flat_headers(&[
        ("content-type".into(), "application/json".into()),
        ("x-asc-error-code".into(), err.code().to_string()),
    ]);
    js::full_response(err.status(), &head, &err.body())
}

fn log_misconfigured(why: &str) {
    js::log_error(&format!("asc: deployment misconfigured: {why}"));
}

/// The reply when the deployment's vars do not validate: nothing is served (fail closed).
fn misconfigured(why: &str) -> JsValue {
    log_misconfigured(why);
    error_response(&GatewayError::new(
        asc_core::ErrorKind::Internal,
        "The gateway deployment is misconfigured.",
    ))
}

//! The request plane: the gateway's routes, served in this isolate; `/admin...` goes to the
//! control plane's Worker.

use std::cell::RefCell;
use std::rc::Rc;

use asc_core::pipeline::http::{Inbound, ReplyBody};
use asc_core::pipeline::relay::Relay;
use asc_core::pipeline::Handled;
use asc_core::{ErrorKind, GatewayError};
use js_sys::{Promise, Uint8Array};
use wasm_bindgen::prelude::*;

use crate::body::WorkerBody;
use crate::host::{flat_headers, WorkerHost};
use crate::wait::run_after;
use crate::{bootstrap, fault, js};

/// Serves one request. `head` is `method NUL path NUL name NUL value ...` (`requestHead` in
/// `js/boot.js`); `request` is the Request, for its body.
#[wasm_bindgen]
pub async fn handle(
    head: String,
    request: JsValue,
    env: JsValue,
    ctx: JsValue,
) -> Result<JsValue, JsValue> {
    let (gw, jurisdiction) = match bootstrap::gateway(&env) {
        Ok(found) => found,
        Err(why) => return Ok(crate::misconfigured(&why)),
    };
    let (method, path, headers) = crate::split_head(&head);
    let local = gw.region().id == "local";
    if fault::is(local, &env, fault::TRAP_PATH, &path) {
        // After an await, so the trap happens where a real one would: in the executor's
        // microtask, not in this call's synchronous part.
        let _ = js::wait(Promise::resolve(&JsValue::UNDEFINED)).await;
        panic!("asc: fault injection: a trap on {path}");
    }
    if is_control_path(&path) {
        return Ok(to_control(&env, request).await);
    }
    let inbound = Inbound {
        method,
        path,
        headers,
        body: WorkerBody::of(request),
    };
    let host = WorkerHost::new(env.clone(), ctx.clone(), jurisdiction.clone());
    let Handled { reply, after } = gw.handle(&host, inbound).await;
    if let Some(line) = reply.failure_log_line() {
        js::log_error(&line);
    }
    if !after.is_empty() {
        let gw = gw.clone();
        let host = WorkerHost::new(env.clone(), ctx.clone(), jurisdiction.clone());
        let delay = fault::ms(local, &env, fault::AFTER_DELAY_MS);
        run_after(&ctx, async move {
            if delay > 0 {
                asc_core::host::Host::sleep(&host, delay).await;
            }
            for e in after.run(&gw, &host).await {
                js::log_error(&format!("asc: after the response: {e}"));
            }
        });
    }
    let mut head = flat_headers(&reply.headers);
    if reply.header("content-type").is_none() {
        head.push_str("\0content-type\0application/json");
    }
    Ok(match reply.body {
        ReplyBody::Full(body) => js::full_response(reply.status, &head, &body),
        ReplyBody::Stream(relay) => {
            let stream = StreamRelay {
                inner: Rc::new(RefCell::new(Some(relay))),
                host: Rc::new(WorkerHost::new(env, ctx.clone(), jurisdiction)),
                gw: gw.clone(),
            };
            js::stream_response(reply.status, &head, stream.into(), &ctx)
        }
    })
}

/// The admin plane's and the dashboard's paths: `/admin` and everything under it.
fn is_control_path(path: &str) -> bool {
    asc_core::admin::dashboard::is_dashboard_path(path) || path.starts_with("/admin/")
}

/// Forwards the request, untouched (its Host too, which the control plane checks), to the
/// control plane's Worker over the `CONTROL` service binding.
async fn to_control(env: &JsValue, request: JsValue) -> JsValue {
    let unserved = || {
        crate::error_response(&GatewayError::new(
            ErrorKind::UnknownRoute,
            "This deployment has no admin plane (no CONTROL service binding).",
        ))
    };
    let Some(forwarded) = js::to_control(env, &request) else {
        return unserved();
    };
    match js::wait(forwarded).await {
        Ok(response) => response,
        Err(e) => {
            js::log_error(&format!(
                "asc: the control plane failed: {}",
                js::describe(&e)
            ));
            crate::error_response(&GatewayError::new(
                ErrorKind::StoreUnavailable,
                "The admin plane is unavailable; try again.",
            ))
        }
    }
}

/// A streamed reply, pulled by the Response's ReadableStream (`streamResponse` in `js/host.js`):
/// `next` until it gives `undefined`, then `finish` (also when the client goes away).
#[wasm_bindgen]
pub struct StreamRelay {
    inner: Rc<RefCell<Option<Box<Relay<WorkerBody>>>>>,
    host: Rc<WorkerHost>,
    gw: Rc<asc_core::Gateway>,
}

#[wasm_bindgen]
impl StreamRelay {
    /// The next chunk, or `undefined` at the end.
    pub fn next(&self) -> Promise {
        let inner = self.inner.clone();
        let host = self.host.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            // Out of the cell while awaited: JS never pulls twice at once, and `finish` waits
            // for a pending pull.
            let Some(mut relay) = inner.borrow_mut().take() else {
                return Ok(JsValue::UNDEFINED);
            };
            let chunk = relay.next_timed(&*host).await;
            *inner.borrow_mut() = Some(relay);
            Ok(match chunk {
                Some(bytes) => Uint8Array::from(bytes.as_slice()).into(),
                None => JsValue::UNDEFINED,
            })
        })
    }

    /// Ends the request (settle and record), after the response.
    pub fn finish(&self) -> Promise {
        let inner = self.inner.clone();
        let host = self.host.clone();
        let gw = self.gw.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let Some(mut relay) = inner.borrow_mut().take() else {
                return Ok(JsValue::UNDEFINED);
            };
            if let Err(e) = relay.finish(&gw, &*host).await {
                // The ledger gives up on the request at its expiry: charged, recorded partial.
                js::log_error(&format!("asc: ending a stream failed: {e}"));
            }
            Ok(JsValue::UNDEFINED)
        })
    }
}

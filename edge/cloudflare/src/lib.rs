//! ASC on Cloudflare Workers. This crate only gives the core its I/O: the Worker's entry
//! (`js/entry.mjs`) hands `handle` the request's head as one string and the Request itself;
//! `handle` runs the core's `Gateway` against `WorkerHost` and returns a Response built in one
//! call. Work left for after the response goes to `ctx.waitUntil`. The Durable Objects
//! (`objects/`) only store and schedule; the tenant ledger, the audit sequencer and the circuit
//! board are the core's state machines. Every decision lives in `asc-core`.

mod body;
mod bootstrap;
mod host;
mod js;
mod objects;

use std::cell::RefCell;
use std::rc::Rc;

use asc_core::pipeline::http::{Inbound, ReplyBody};
use asc_core::pipeline::relay::Relay;
use asc_core::pipeline::Handled;
use asc_core::{ErrorKind, GatewayError};
use js_sys::{Promise, Uint8Array};
use wasm_bindgen::prelude::*;

pub use objects::{AdminObject, BoardObject, LedgerObject, SequencerObject};

use body::WorkerBody;
use host::{flat_headers, parse_flat, WorkerHost};

/// Serves one request. `head` is `method NUL path NUL name NUL value ...` (`requestHead` in
/// `js/host.js`); `request` is the Request, for its body.
#[wasm_bindgen]
pub async fn handle(
    head: String,
    request: JsValue,
    env: JsValue,
    ctx: JsValue,
) -> Result<JsValue, JsValue> {
    let (gw, jurisdiction) = match bootstrap::gateway(&env) {
        Ok(found) => found,
        Err(why) => {
            // Fail closed: without a valid deployment nothing is served.
            js::log_error(&format!("asc: deployment misconfigured: {why}"));
            let err = GatewayError::new(
                ErrorKind::Internal,
                "The gateway deployment is misconfigured.",
            );
            return Ok(js::full_response(
                err.status(),
                &flat_headers(&[("content-type".into(), "application/json".into())]),
                &err.body(),
            ));
        }
    };
    let mut parts = head.splitn(3, '\0');
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let headers = parse_flat(parts.next().unwrap_or(""));
    if asc_core::admin::dashboard::is_dashboard_path(&path) {
        return Ok(dashboard(&gw, &env, &method, &path, &headers, request).await);
    }
    let inbound = Inbound {
        method,
        path,
        headers,
        body: WorkerBody::of(request),
    };
    let host = WorkerHost::new(env.clone(), ctx.clone(), jurisdiction.clone());
    if inbound.path.starts_with("/admin/") {
        return Ok(admin(&gw, &host, &env, inbound).await);
    }
    let Handled { reply, after } = gw.handle(&host, inbound).await;
    if let Some(line) = reply.failure_log_line() {
        js::log_error(&line);
    }
    if !after.is_empty() {
        let gw = gw.clone();
        let host = WorkerHost::new(env.clone(), ctx.clone(), jurisdiction.clone());
        let delay = fault_after_delay_ms(&gw, &env);
        js::wait_until(
            &ctx,
            wasm_bindgen_futures::future_to_promise(async move {
                if delay > 0 {
                    asc_core::host::Host::sleep(&host, delay).await;
                }
                for e in after.run(&gw, &host).await {
                    js::log_error(&format!("asc: after the response: {e}"));
                }
                Ok(JsValue::UNDEFINED)
            }),
        );
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

/// `/admin/v1/...`: the admin plane, when the deployment configures issuers (`ADMIN_ISSUERS`).
async fn admin(
    gw: &asc_core::Gateway,
    host: &WorkerHost,
    env: &JsValue,
    inbound: Inbound<WorkerBody>,
) -> JsValue {
    let reply = match bootstrap::admin_plane(env) {
        Ok(Some(plane)) => plane.handle(gw, host, inbound).await,
        Ok(None) => {
            let err = GatewayError::new(
                ErrorKind::UnknownRoute,
                "This deployment has no admin plane (ADMIN_ISSUERS is not set).",
            );
            asc_core::pipeline::http::Reply {
                status: err.status(),
                headers: vec![("content-type".into(), "application/json".into())],
                body: ReplyBody::Full(err.body()),
                diagnostic: None,
            }
        }
        Err(why) => {
            js::log_error(&format!("asc: admin plane misconfigured: {why}"));
            let err = GatewayError::new(ErrorKind::Internal, "The admin plane is misconfigured.");
            asc_core::pipeline::http::Reply {
                status: err.status(),
                headers: vec![("content-type".into(), "application/json".into())],
                body: ReplyBody::Full(err.body()),
                diagnostic: None,
            }
        }
    };
    if let Some(d) = &reply.diagnostic {
        js::log_error(&format!("asc: admin {}: {d}", reply.status));
    }
    let head = flat_headers(&reply.headers);
    match reply.body {
        ReplyBody::Full(body) => js::full_response(reply.status, &head, &body),
        // Admin replies are never streamed.
        ReplyBody::Stream(_) => js::full_response(500, &head, b""),
    }
}

/// `/admin` and its files: the dashboard, from the Worker's static assets (`ASSETS`), with the
/// core's security headers. Served only where the admin plane is configured, on the region's
/// own hostnames.
async fn dashboard(
    gw: &asc_core::Gateway,
    env: &JsValue,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    request: JsValue,
) -> JsValue {
    let error = |err: GatewayError| {
        let head = flat_headers(&[
            ("content-type".into(), "application/json".into()),
            ("x-asc-error-code".into(), err.code().to_string()),
        ]);
        js::full_response(err.status(), &head, &err.body())
    };
    let host = asc_core::host::find_header(headers, "host").unwrap_or("");
    if !gw.region().serves_host(host) {
        return error(GatewayError::new(
            ErrorKind::MisdirectedHost,
            format!(
                "This is the {} deployment; it does not serve host {host:?}.",
                gw.region().id
            ),
        ));
    }
    let plane = match bootstrap::admin_plane(env) {
        Ok(Some(plane)) => plane,
        Ok(None) | Err(_) => {
            return error(GatewayError::new(
                ErrorKind::UnknownRoute,
                "This deployment has no admin plane (ADMIN_ISSUERS is not set or invalid), so no dashboard.",
            ))
        }
    };
    if method != "GET" && method != "HEAD" {
        return error(GatewayError::new(
            ErrorKind::MethodNotAllowed,
            format!("{method} is not allowed on {path}."),
        ));
    }
    let mut extra = asc_core::admin::dashboard::security_headers(plane.issuers());
    if path == "/admin" {
        extra.push(("location".into(), "/admin/".into()));
        return js::full_response(308, &flat_headers(&extra), b"");
    }
    match js::wait(js::asset_response(env, &request, &flat_headers(&extra))).await {
        Ok(response) => response,
        Err(e) => {
            js::log_error(&format!("asc: dashboard assets: {}", js::describe(&e)));
            error(GatewayError::new(
                ErrorKind::UnknownRoute,
                "The dashboard is not part of this build (scripts/build-dashboard).",
            ))
        }
    }
}

/// Fault injection for the end-to-end tests, honoured only by the loopback development region:
/// `ASC_FAULT_AFTER_DELAY_MS` holds back the work after each response, so a test can kill the
/// isolate between a response and its commit. Read once per isolate: the var crossing the JS
/// boundary on every request was ~1.5% of the isolate's time in the bench (loopback region).
fn fault_after_delay_ms(gw: &asc_core::Gateway, env: &JsValue) -> u64 {
    thread_local! {
        static DELAY_MS: std::cell::Cell<Option<u64>> = const { std::cell::Cell::new(None) };
    }
    if gw.region().id != "local" {
        return 0;
    }
    DELAY_MS.with(|d| {
        d.get().unwrap_or_else(|| {
            let ms = js::env_string(env, "ASC_FAULT_AFTER_DELAY_MS")
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            d.set(Some(ms));
            ms
        })
    })
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

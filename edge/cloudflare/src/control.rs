//! The control plane's Worker: the admin plane (`/admin/v1/...`) and the dashboard (`/admin`),
//! reached only through the request plane's `CONTROL` service binding (this Worker has no
//! routes), beside the Durable Objects (`objects/`).

use asc_core::pipeline::http::{Inbound, ReplyBody};
use asc_core::{ErrorKind, GatewayError};
use wasm_bindgen::prelude::*;

use crate::body::WorkerBody;
use crate::host::{flat_headers, WorkerHost};
use crate::{bootstrap, js};

/// Serves one request forwarded by the request plane. `head` is `method NUL path NUL name NUL
/// value ...` (`requestHead` in `js/boot.js`); `request` is the Request, for its body.
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
    if path == COMPILE_GUARD_PATH && method == "POST" {
        return Ok(compile_guard(request).await);
    }
    if asc_core::admin::dashboard::is_dashboard_path(&path) {
        return Ok(dashboard(&gw, &env, &method, &path, &headers, request).await);
    }
    if !path.starts_with("/admin/") {
        return Ok(crate::error_response(&GatewayError::new(
            ErrorKind::UnknownRoute,
            format!("{path} is served by the region's request Worker, not its control plane."),
        )));
    }
    let inbound = Inbound {
        method,
        path,
        headers,
        body: WorkerBody::of(request),
    };
    let host = WorkerHost::new(env.clone(), ctx.clone(), jurisdiction.clone());
    let (response, refusals_due) = admin(&gw, &host, &env, inbound).await;
    if let Some(at_ms) = refusals_due {
        // Refusals before a token was verified, counted for the region's trail: sent at the
        // end of their window, after this response.
        let host = WorkerHost::new(env, ctx.clone(), jurisdiction);
        crate::wait::run_after(&ctx, async move {
            for e in gw.send_refusals(&host, at_ms).await {
                js::log_error(&format!("asc: after the admin response: {e}"));
            }
        });
    }
    Ok(response)
}

/// The request plane's route for what guardrails need compiled (`compileGuard` in
/// `js/host.js`). Only the request plane reaches it: it forwards `/admin` paths alone, and this
/// Worker has no routes.
const COMPILE_GUARD_PATH: &str = "/_asc/v1/guard";

/// A config's custom patterns and deny terms' non-ASCII characters (`GuardSources` as JSON),
/// compiled for the request plane, which has no regex compiler or case tables: each pattern's
/// table DFAs or why it cannot be used, each character's case class.
async fn compile_guard(request: JsValue) -> JsValue {
    use asc_core::guard::{CompiledGuard, GuardSources};
    use asc_core::host::ByteSource;
    let refuse = |why: &str| {
        crate::error_response(&GatewayError::new(
            ErrorKind::InvalidRequest,
            why.to_string(),
        ))
    };
    let bytes = match WorkerBody::of(request).read_all(1 << 20).await {
        Ok(Ok(bytes)) => bytes,
        _ => return refuse("The guardrail sources are unreadable or over 1 MiB."),
    };
    let sources: GuardSources = match serde_json::from_slice(&bytes) {
        Ok(sources) => sources,
        Err(_) => return refuse("The guardrail sources are not {patterns, fold} JSON."),
    };
    if !sources.within_limits() {
        return refuse("The guardrail sources hold more than a config may.");
    }
    let answer = CompiledGuard::compile(&sources).to_wire(&sources);
    js::full_response(
        200,
        &flat_headers(&[("content-type".into(), "application/octet-stream".into())]),
        &answer,
    )
}

/// `/admin/v1/...`: the admin plane, when the deployment configures issuers (`ADMIN_ISSUERS`).
async fn admin(
    gw: &asc_core::Gateway,
    host: &WorkerHost,
    env: &JsValue,
    inbound: Inbound<WorkerBody>,
) -> (JsValue, Option<u64>) {
    let mut refusals_due = None;
    let reply = match bootstrap::admin_plane(env) {
        Ok(Some(plane)) => {
            let handled = plane.handle(gw, host, inbound).await;
            refusals_due = handled.refusals_due;
            handled.reply
        }
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
    let response = match reply.body {
        ReplyBody::Full(body) => js::full_response(reply.status, &head, &body),
        // Admin replies are never streamed.
        ReplyBody::Stream(_) => js::full_response(500, &head, b""),
    };
    (response, refusals_due)
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
    let error = |err: GatewayError| crate::error_response(&err);
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

//! ASC on Cloudflare Workers. This crate only gives the core its I/O: it turns the Worker's request
//! into the core's `Inbound`, implements `Host` with KV, Durable Objects and fetch, and turns the
//! core's `Reply` back into a (possibly streaming) Response. Every decision lives in `asc-core`.

mod audit_object;
mod body;
mod circuit_object;
mod host;
mod objects;

use std::cell::RefCell;
use std::rc::Rc;

use asc_core::http::{Inbound, Reply, ReplyBody};
use asc_core::{builtin_regions, ErrorKind, Gateway, GatewayError, Settings};
use worker::{console_error, event, Context, Env, Headers, Request, Response, Result};

pub use audit_object::AuditSequencer;
pub use objects::TenantLedger;

use body::WorkerBody;
use host::WorkerHost;

thread_local! {
    /// One gateway per isolate: its caches of tenant configs and key records live as long as it.
    static GATEWAY: RefCell<Option<Rc<Gateway>>> = const { RefCell::new(None) };
}

/// The gateway for this deployment's region (`ASC_REGION`), built once per isolate.
fn gateway(env: &Env) -> std::result::Result<Rc<Gateway>, String> {
    if let Some(gw) = GATEWAY.with(|g| g.borrow().clone()) {
        return Ok(gw);
    }
    let region_id = env
        .var("ASC_REGION")
        .map(|v| v.to_string())
        .map_err(|_| "ASC_REGION is not set".to_string())?;
    let regions = builtin_regions()?;
    let region = regions
        .get(&region_id)
        .cloned()
        .ok_or_else(|| format!("ASC_REGION={region_id:?} names no file in regions/"))?;
    let gw = Rc::new(Gateway::new(region, regions, Settings::default()));
    GATEWAY.with(|g| *g.borrow_mut() = Some(gw.clone()));
    Ok(gw)
}

#[event(fetch)]
pub async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    let gw = match gateway(&env) {
        Ok(gw) => gw,
        Err(why) => {
            // Fail closed: without a valid region nothing is served.
            console_error!("asc: deployment misconfigured: {why}");
            let err = GatewayError::new(
                ErrorKind::Internal,
                "The gateway deployment is misconfigured.",
            );
            return full_response(err.status(), &[], err.body());
        }
    };
    let host = WorkerHost::new(env, gw.region().storage_jurisdiction.clone());
    let inbound = inbound(req)?;
    let reply = gw.handle(&host, inbound).await;
    if reply.status >= 500 {
        console_error!(
            "asc: {} {} {}",
            reply.header("x-request-id").unwrap_or("-"),
            reply.status,
            reply.header("x-asc-error-code").unwrap_or("-")
        );
    }
    respond(reply, host)
}

fn inbound(req: Request) -> Result<Inbound<WorkerBody>> {
    let url = req.url()?;
    let mut headers: Vec<(String, String)> = req.headers().entries().collect();
    // Workers expose the Host only through the URL on some paths; make sure the core sees it.
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        if let Some(h) = url.host_str() {
            let host = match url.port() {
                Some(p) => format!("{h}:{p}"),
                None => h.to_string(),
            };
            headers.push(("host".into(), host));
        }
    }
    Ok(Inbound {
        method: req.method().to_string(),
        path: url.path().to_string(),
        headers,
        body: WorkerBody::from_request(req),
    })
}

fn respond(reply: Reply<WorkerBody>, host: WorkerHost) -> Result<Response> {
    match reply.body {
        ReplyBody::Full(body) => full_response(reply.status, &reply.headers, body),
        ReplyBody::Stream(relay) => {
            // Each chunk the relay yields is written to the client at once.
            let chunks =
                futures_util::stream::unfold((relay, host), |(mut relay, host)| async move {
                    match relay.next(&host).await {
                        Some(chunk) => Some((Ok::<Vec<u8>, worker::Error>(chunk), (relay, host))),
                        None => {
                            if let Some(e) = relay.audit_error() {
                                console_error!("asc: audit append failed after a stream: {e}");
                            }
                            None
                        }
                    }
                });
            Ok(Response::from_stream(chunks)?
                .with_status(reply.status)
                .with_headers(headers(&reply.headers)?))
        }
    }
}

fn full_response(status: u16, hs: &[(String, String)], body: Vec<u8>) -> Result<Response> {
    let mut all = hs.to_vec();
    if !all.iter().any(|(n, _)| n == "content-type") {
        all.push(("content-type".into(), "application/json".into()));
    }
    Ok(Response::from_bytes(body)?
        .with_status(status)
        .with_headers(headers(&all)?))
}

fn headers(hs: &[(String, String)]) -> Result<Headers> {
    let out = Headers::new();
    for (n, v) in hs {
        out.append(n, v)?;
    }
    Ok(out)
}

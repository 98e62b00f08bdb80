//! Answers from the response cache: a stored completion in the caller's dialect (whole, or as a
//! stream with the same event shape the upstream's would have had), or a stored embeddings
//! reply. No upstream call; the response guardrails run again, so a rule added since the entry
//! was stored still applies.

use serde_json::json;

use super::admission::Counted;
use super::chat::{reply, route_headers, Served};
use super::dialect::{self, Parsed};
use super::{cached, Caller, Exchange, RequestCtx};
use crate::audit::Usage;
use crate::config::ModelTarget;
use crate::error::GatewayError;
use crate::guard::{self, GUARDRAILS_HEADER};
use crate::host::{ByteSource, Host};
use crate::providers::{set_field, Dialect};
use crate::response_cache::{self, Entry};
use crate::routing::Plan;

pub(super) struct Hit<'a> {
    pub request: &'a Parsed,
    pub dialect: Dialect,
    pub plan: &'a Plan,
    pub first: &'a ModelTarget,
    pub entry: Entry,
}

/// What a hit is charged: nothing by default, the stored answer's usage when the tenant says.
fn charged_usage(caller: &Caller, entry: &Entry) -> Option<Usage> {
    match caller.tenant.cache.as_ref() {
        Some(policy) if policy.charge_hits => entry.usage,
        _ => Some(Usage::default()),
    }
}

pub(super) fn completion<H: Host>(
    host: &H,
    ctx: &RequestCtx,
    caller: &Caller,
    hit: Hit<'_>,
    mut guarded: guard::Findings,
    exchange: &mut Exchange,
) -> Result<Served<H::Body>, GatewayError> {
    let Hit {
        request,
        dialect,
        plan,
        first,
        entry,
    } = hit;
    let mut hub = entry.body.clone();
    // A new answer to a new request: its own id and time, the stored content.
    set_field(
        &mut hub,
        "id",
        json!(format!(
            "chatcmpl-{}",
            ctx.request_id.trim_start_matches("req_")
        )),
    );
    set_field(&mut hub, "created", json!(host.now().millis() / 1000));
    guard::openai::redact_chat_response(&caller.tenant.guardrails, &mut hub, &mut guarded);
    let (content_type, body) = if request.stream {
        let mut encoder = dialect::encoder(dialect, request, &ctx.request_id);
        let mut out = Vec::new();
        for chunk in response_cache::replay_chunks(&hub) {
            encoder.chunk(&chunk, None, &mut out);
        }
        encoder.done(entry.usage, &mut out);
        ("text/event-stream", out)
    } else {
        let body = dialect::full_body(dialect, &hub, entry.usage, &request.model)?;
        ("application/json", body)
    };
    let mut reply = reply(200, content_type, body, first);
    let usage = answered(host, exchange, caller, &entry, &reply, &guarded);
    reply.headers.extend(route_headers(plan, &exchange.record));
    if let Some(v) = guarded.decisions().header_value() {
        reply.headers.push((GUARDRAILS_HEADER.into(), v));
    }
    finish_headers(exchange, &mut reply.headers, usage);
    if request.stream {
        reply
            .headers
            .push(("cache-control".into(), "no-cache".into()));
    }
    Ok(Served::Full { reply, usage })
}

pub(super) fn embeddings<H: Host>(
    host: &H,
    caller: &Caller,
    plan: &Plan,
    first: &ModelTarget,
    entry: Entry,
    exchange: &mut Exchange,
) -> Result<Served<H::Body>, GatewayError> {
    let body = crate::json_write::to_vec(&entry.body);
    let mut reply = reply(200, "application/json", body, first);
    let usage = answered(
        host,
        exchange,
        caller,
        &entry,
        &reply,
        &guard::Findings::default(),
    );
    reply.headers.extend(route_headers(plan, &exchange.record));
    finish_headers(exchange, &mut reply.headers, usage);
    Ok(Served::Full { reply, usage })
}

/// The record of a hit: what was served and charged, and the body's hash.
fn answered<H: Host, S: ByteSource>(
    host: &H,
    exchange: &mut Exchange,
    caller: &Caller,
    entry: &Entry,
    reply: &super::Reply<S>,
    guarded: &guard::Findings,
) -> Option<Usage> {
    let usage = charged_usage(caller, entry);
    let record = &mut exchange.record;
    record.record.usage = usage;
    record.record.status = 200;
    record.record.served_model = Some(entry.served_model.clone());
    record.record.outcome = crate::audit::Outcome::Ok;
    if let super::ReplyBody::Full(body) = &reply.body {
        record.detail.response_sha256 = Some(super::body_sha256(host, body));
    }
    if !guarded.decisions().as_slice().is_empty() {
        super::record_guardrails(record, guarded);
    }
    usage
}

fn finish_headers(exchange: &Exchange, headers: &mut Vec<(String, String)>, usage: Option<Usage>) {
    if let Some(charge) = &exchange.charge {
        headers.extend(charge.headers());
    }
    let (_, _, charged) = exchange.cost(usage, Counted::default());
    headers.push((crate::headers::COST.into(), charged.to_string()));
    headers.extend(cached::header(exchange));
}

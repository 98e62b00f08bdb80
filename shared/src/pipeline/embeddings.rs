//! `POST /v1/embeddings` (OpenAI dialect) served by OpenAI or Mistral, through the same exchange
//! and routing as completions: aliases, fallback, retries and circuits. Inputs pass the request
//! guardrails like any prompt; the charge is input tokens only.

use serde_json::{Map, Value};

use super::attempts::{self, CallContext, Payload};
use super::cached;
use super::chat::{finish, read_body, record_guardrails, Served};
use super::hit;
use super::{upstream, AfterResponse, Caller, Exchange, Gateway, RequestCtx};
use crate::audit::Usage;
use crate::config::CachedOperation;
use crate::error::GatewayError;
use crate::guard;
use crate::host::{ByteSource, Host};
use crate::pipeline::http::{Inbound, Reply};
use crate::providers::embeddings::{self, EmbeddingsRequest};
use crate::providers::{Dialect, Provider};
use crate::routing::RequestMeta;

pub(super) async fn handle<H: Host, B: ByteSource>(
    gw: &Gateway,
    host: &H,
    ctx: &RequestCtx,
    caller: &Caller,
    req: Inbound<B>,
    after: &mut AfterResponse,
) -> Result<Reply<H::Body>, GatewayError> {
    let mut exchange = Exchange::new(gw, ctx, caller, "embeddings");
    let served = serve(gw, host, ctx, caller, req, &mut exchange, after).await;
    finish(host, &mut exchange, after, served).await
}

async fn serve<H: Host, B: ByteSource>(
    gw: &Gateway,
    host: &H,
    ctx: &RequestCtx,
    caller: &Caller,
    req: Inbound<B>,
    exchange: &mut Exchange,
    after: &mut AfterResponse,
) -> Result<Served<H::Body>, GatewayError> {
    let traceparent = ctx.trace.header();
    let tracestate = req.header("tracestate").map(str::to_string);
    let workload = req.header(crate::headers::WORKLOAD).map(str::to_string);
    let cache_control = req.header("cache-control").map(str::to_string);
    exchange.timing.mark("auth", host.now().millis());
    let body = read_body(req, caller.tenant.limits.max_request_bytes).await?;
    exchange.record.detail.prompt_sha256 = Some(super::body_sha256(host, &body));
    let mut request = embeddings::parse_request(&body)?;
    exchange.record.record.requested_model = Some(request.model.clone());

    let mut guarded = guard::Findings::default();
    let checked = guard_inputs(caller, &mut request, &mut guarded);
    record_guardrails(&mut exchange.record, &guarded);
    exchange.timing.mark("guard", host.now().millis());
    checked?;

    let model = request.model.clone();
    let meta = RequestMeta {
        requested_model: &model,
        tags: &caller.key.tags,
        workload: workload.as_deref(),
    };
    let mut lookup = cached::open(
        caller,
        CachedOperation::Embeddings,
        &model,
        &request.body,
        cache_control.as_deref(),
        exchange,
    );
    // Embeddings produce no output tokens: the input is the worst case.
    let (plan, first) = gw
        .route_and_admit(
            host,
            caller,
            &meta,
            exchange,
            after,
            body.len() as u64,
            |_| Some(0),
            lookup.as_mut(),
        )
        .await?;
    if let Some(entry) = lookup.as_mut().and_then(|l| l.found.take()) {
        return hit::embeddings(host, caller, &plan.plan, first, entry, exchange);
    }
    let headers = attempts::common_headers("application/json", traceparent, tracestate);
    let call = CallContext {
        payload: Payload::Embeddings(&request),
        dialect: Dialect::OpenAi,
        headers,
        states: &plan.states,
    };
    let attempted = attempts::run(gw, host, caller, &plan.plan, &call, exchange, after).await?;
    let (key, target, mut response) = match attempted.served(&plan.plan, exchange) {
        Ok(served) => served,
        Err(reply) => {
            return Ok(Served::Full {
                reply,
                usage: Some(Usage::default()),
            })
        }
    };
    exchange.served_by(gw, host, first, target).await;
    let limit = gw.settings.max_upstream_response_bytes;
    let reply_body = upstream::read_reply(&mut response.body, limit).await?;
    let id = &exchange.record.record.request_id;
    let (out, usage) = match target.provider {
        Provider::Mistral => {
            embeddings::mistral_response_to_openai(&reply_body, request.base64, &request.model, id)?
        }
        _ if response.status == 200 => embeddings::openai_response(reply_body, id),
        _ => {
            let usage = embeddings::openai_usage(&reply_body);
            (reply_body, usage)
        }
    };
    exchange.record.record.usage = usage;
    exchange.record.record.status = response.status;
    let (_, _, charged) = exchange.cost(usage, Default::default());
    exchange.record.detail.response_sha256 = Some(super::body_sha256(host, &out));
    if let (Some(l), Some(policy)) = (lookup.as_ref(), caller.tenant.cache.as_ref()) {
        if l.allowed.write {
            if let Ok(stored) = serde_json::from_slice::<Value>(&out) {
                let now = host.now().millis();
                l.store(policy, exchange, after, now, response.status, stored, usage);
            }
        }
    }
    let mut reply = super::chat::reply(response.status, "application/json", out, target);
    reply.headers.push((crate::headers::TARGET.into(), key));
    reply
        .headers
        .extend(super::chat::route_headers(&plan.plan, &exchange.record));
    if let Some(charge) = &exchange.charge {
        reply.headers.extend(charge.headers());
    }
    if let Some(v) = guarded.decisions().header_value() {
        reply.headers.push((guard::GUARDRAILS_HEADER.into(), v));
    }
    reply
        .headers
        .push((crate::headers::COST.into(), charged.to_string()));
    reply.headers.extend(cached::header(exchange));
    Ok(Served::Full { reply, usage })
}

/// The request guardrails on each text input (token-id inputs carry no text to scan): the same
/// checks as a chat prompt, by running each input as a user message.
fn guard_inputs(
    caller: &Caller,
    request: &mut EmbeddingsRequest,
    ledger: &mut guard::Findings,
) -> Result<(), GatewayError> {
    let policy = &caller.tenant.guardrails;
    let texts: Vec<Value> = match request.body.get("input") {
        Some(Value::String(s)) => vec![Value::String(s.clone())],
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => items.clone(),
        _ => return Ok(()),
    };
    let messages: Vec<Value> = texts
        .into_iter()
        .map(|t| serde_json::json!({"role": "user", "content": t}))
        .collect();
    let mut synthetic = Map::new();
    synthetic.insert("messages".into(), Value::Array(messages));
    guard::openai::check_chat_request(policy, &mut synthetic, ledger).map_err(|mut e| {
        // Point at the input, not at the synthetic messages.
        if e.param
            .as_deref()
            .is_some_and(|p| p.starts_with("messages"))
        {
            e.param = Some("input".into());
        }
        e
    })?;
    let redacted: Vec<Value> = match synthetic.get("messages") {
        Some(Value::Array(m)) => m.iter().map(|m| m["content"].clone()).collect(),
        _ => return Ok(()),
    };
    match request.body.get_mut("input") {
        Some(v @ Value::String(_)) => {
            if let Some(first) = redacted.into_iter().next() {
                *v = first;
            }
        }
        Some(Value::Array(items)) => *items = redacted,
        _ => {}
    }
    Ok(())
}

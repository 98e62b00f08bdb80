//! A completion in any inbound dialect (`POST /v1/chat/completions`, `POST /v1/messages`) served by
//! any provider: limits, body, the hub request, model resolution, guardrails, budget, the egress
//! gate, the upstream call, then a full or streamed reply in the caller's dialect.

use super::admission::Counted;
use super::attempts::{self, CallContext, Payload};
use super::cached::{self, StreamStore};
use super::dialect;
use super::hit;
use super::provider;
use super::{upstream, AfterResponse, Caller, Exchange, Gateway, RequestCtx};
use crate::audit::{AuditEvent, Usage};
use crate::config::{CachedOperation, ModelTarget};
use crate::error::{ErrorKind, GatewayError};
use crate::guard::openai::ReplyScan;
use crate::guard::{self, ResponseGuard, GUARDRAILS_HEADER};
use crate::host::{read_limited, ByteSource, Host};
use crate::pipeline::http::{Inbound, Reply, ReplyBody};
use crate::pipeline::relay::Relay;
use crate::providers::{Dialect, Provider};
use crate::routing::{Plan, RequestMeta};

pub(super) async fn handle<H: Host, B: ByteSource>(
    gw: &Gateway,
    host: &H,
    ctx: &RequestCtx,
    caller: &Caller,
    req: Inbound<B>,
    dialect: Dialect,
    after: &mut AfterResponse,
) -> Result<Reply<H::Body>, GatewayError> {
    let operation = match dialect {
        Dialect::OpenAi => "chat.completions",
        Dialect::Anthropic => "messages",
    };
    let mut exchange = Exchange::new(gw, ctx, caller, operation);
    let served = serve(gw, host, ctx, caller, req, dialect, &mut exchange, after).await;
    finish(host, &mut exchange, after, served).await
}

/// Ends a completion's or an embedding's exchange: a served reply commits (after the response);
/// a failure is recorded as the request's outcome, and the client hears about its own error
/// even if the record cannot be stored.
pub(super) async fn finish<H: Host>(
    host: &H,
    exchange: &mut Exchange,
    after: &mut AfterResponse,
    served: Result<Served<H::Body>, GatewayError>,
) -> Result<Reply<H::Body>, GatewayError> {
    match served {
        Ok(Served::Streaming(reply)) => Ok(reply),
        Ok(Served::Full { reply, usage }) => {
            exchange.end(host, after, usage).await?;
            Ok(reply)
        }
        Err(mut err) => {
            exchange.fail(&err);
            // Nothing was served: the reservation is released (providers bill failed calls nothing).
            if let Err(lost) = exchange.end(host, after, Some(Usage::default())).await {
                err.diagnostic
                    .get_or_insert(lost.diagnostic.unwrap_or(lost.message));
            }
            Err(err)
        }
    }
}

pub(super) enum Served<S: ByteSource> {
    /// A complete reply, and the usage to charge.
    Full {
        reply: Reply<S>,
        usage: Option<Usage>,
    },
    /// A stream: its relay owns the exchange from here.
    Streaming(Reply<S>),
}

#[allow(clippy::too_many_arguments)]
async fn serve<H: Host, B: ByteSource>(
    gw: &Gateway,
    host: &H,
    ctx: &RequestCtx,
    caller: &Caller,
    req: Inbound<B>,
    dialect: Dialect,
    exchange: &mut Exchange,
    after: &mut AfterResponse,
) -> Result<Served<H::Body>, GatewayError> {
    let traceparent = ctx.trace.header();
    let tracestate = req.header("tracestate").map(str::to_string);
    let workload_header = req.header(crate::headers::WORKLOAD).map(str::to_string);
    let cache_control = req.header("cache-control").map(str::to_string);
    dialect::check_headers(
        dialect,
        req.header("anthropic-version"),
        req.header("anthropic-beta"),
    )?;
    exchange.timing.mark("auth", host.now().millis());
    let body = read_body(req, caller.tenant.limits.max_request_bytes).await?;
    // The prompt is recorded only as a hash.
    exchange.record.detail.prompt_sha256 = Some(super::body_sha256(host, &body));
    let mut request = dialect::parse(dialect, &body)?;
    let model = request.model.clone();
    exchange.record.record.requested_model = Some(model.clone());
    exchange.record.record.stream = request.stream;
    // Guardrails: limits, then block / redact / flag on every text of the request, in place.
    let policy = &caller.tenant.guardrails;
    let mut guarded = guard::Findings::default();
    let checked = guard::openai::check_chat_request(policy, &mut request.hub, &mut guarded);
    record_guardrails(&mut exchange.record, &guarded);
    exchange.timing.mark("guard", host.now().millis());
    checked?;

    // Which targets, in which order: residency, rules, weights and circuits decide.
    let max_output_tokens = request.max_output_tokens()?;
    exchange.choices = request.choices()?;
    let output_field = request.output_field();
    let meta = RequestMeta {
        requested_model: &model,
        tags: &caller.key.tags,
        workload: workload_header.as_deref(),
    };
    let cache_operation = match dialect {
        Dialect::OpenAi => CachedOperation::Chat,
        Dialect::Anthropic => CachedOperation::Messages,
    };
    let mut lookup = cached::open(
        caller,
        cache_operation,
        &model,
        &request.hub,
        cache_control.as_deref(),
        exchange,
    );
    let (plan, first) = gw
        .route_and_admit(
            host,
            caller,
            &meta,
            exchange,
            after,
            body.len() as u64,
            |first| provider::max_output_tokens(first.provider, max_output_tokens),
            lookup.as_mut(),
        )
        .await
        .map_err(|e| dialect::name_output_field(e, output_field))?;
    if let Some(entry) = lookup.as_mut().and_then(|l| l.found.take()) {
        let hit = hit::Hit {
            request: &request,
            dialect,
            plan: &plan.plan,
            first,
            entry,
        };
        return hit::completion(host, ctx, caller, hit, guarded, exchange);
    }
    let cache_policy = caller.tenant.cache.as_ref();
    let accept = if request.stream {
        "text/event-stream"
    } else {
        "application/json"
    };
    let headers = attempts::common_headers(accept, traceparent, tracestate);
    let call = CallContext {
        payload: Payload::Chat {
            hub: &request.hub,
            stream: request.stream,
        },
        dialect,
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
    let is_sse = response
        .header("content-type")
        .is_some_and(|ct| ct.contains("text/event-stream"));
    let route_headers = {
        let mut h = route_headers(&plan.plan, &exchange.record);
        h.push((crate::headers::TARGET.into(), key));
        h
    };
    let charge_headers = exchange
        .charge
        .as_ref()
        .map(|c| c.headers())
        .unwrap_or_default();
    let created_s = host.now().millis() / 1000;

    if request.stream && is_sse {
        exchange.record.record.status = response.status;
        let request_decisions = guarded.decisions().header_value();
        let stream_guard = ResponseGuard::new(policy, guarded);
        let store = match (lookup.as_ref(), cache_policy) {
            (Some(l), Some(policy)) if response.status == 200 => l
                .capture(policy)
                .zip(l.key.clone())
                .map(|(capture, key)| StreamStore {
                    key,
                    capture,
                    policy: policy.clone(),
                }),
            _ => None,
        };
        let cache_header = cached::header(exchange);
        let relay = Relay::new(
            response.body,
            exchange.hand_off(),
            provider::decoder(target.provider, created_s),
            dialect::encoder(dialect, &request, &ctx.request_id),
            stream_guard,
        )
        .storing(store);
        let mut reply = Reply {
            status: 200,
            headers: served_headers("text/event-stream", target),
            body: ReplyBody::Stream(Box::new(relay)),
            diagnostic: None,
        };
        reply.headers.extend(route_headers);
        reply.headers.extend(charge_headers);
        reply.headers.extend(cache_header);
        // Only the request's decisions are known before the stream; the audit record has all.
        if let Some(v) = request_decisions {
            reply.headers.push((GUARDRAILS_HEADER.into(), v));
        }
        reply
            .headers
            .push(("cache-control".into(), "no-cache".into()));
        return Ok(Served::Streaming(reply));
    }

    let body =
        upstream::read_reply(&mut response.body, gw.settings.max_upstream_response_bytes).await?;
    let passthrough = dialect == Dialect::OpenAi && target.provider == Provider::OpenAi;
    let storing = lookup.as_ref().is_some_and(|l| l.allowed.write);
    // Scanned in place when nothing will change and nothing is stored (no `Value` of the reply).
    let scanned = if passthrough && !storing && policy.scans_responses() {
        guard::openai::scan_chat_reply(policy, &body, &mut guarded)
    } else {
        ReplyScan::Unread
    };
    let (body, usage, to_store) = if let ReplyScan::Unchanged { usage } = scanned {
        (body, usage, None)
    } else if passthrough && !policy.scans_responses() {
        // Nothing to translate or scan: the upstream's exact bytes, with only usage read.
        let usage = crate::providers::openai::reply_usage(&body)?;
        let to_store = storing
            .then(|| serde_json::from_slice::<serde_json::Value>(&body).ok())
            .flatten();
        (body, usage, to_store)
    } else {
        let (mut hub, usage) = provider::response_to_hub(target.provider, &body, created_s)?;
        let redacted = guard::openai::redact_chat_response(policy, &mut hub, &mut guarded);
        let body = if !redacted && passthrough {
            // Same dialect, nothing changed: the upstream's exact bytes, unknown fields included.
            body
        } else {
            dialect::full_body(dialect, &hub, usage, &request.model)?
        };
        (body, usage, storing.then_some(hub))
    };
    exchange.record.record.usage = usage;
    record_guardrails(&mut exchange.record, &guarded);
    exchange.record.record.status = response.status;
    let (_, _, charged) = exchange.cost(usage, Counted::default());
    exchange.record.detail.response_sha256 = Some(super::body_sha256(host, &body));
    if let (Some(l), Some(p), Some(hub)) = (lookup.as_ref(), cache_policy, to_store) {
        l.store(
            p,
            exchange,
            after,
            host.now().millis(),
            response.status,
            hub,
            usage,
        );
    }
    let mut reply = reply(response.status, "application/json", body, target);
    reply.headers.extend(route_headers);
    reply.headers.extend(charge_headers);
    reply.headers.extend(cached::header(exchange));
    if let Some(v) = guarded.decisions().header_value() {
        reply.headers.push((GUARDRAILS_HEADER.into(), v));
    }
    reply
        .headers
        .push((crate::headers::COST.into(), charged.to_string()));
    Ok(Served::Full { reply, usage })
}

/// The target a request goes to (the first candidate, then the one that served).
pub(super) fn reply<S: ByteSource>(
    status: u16,
    content_type: &str,
    body: Vec<u8>,
    target: &ModelTarget,
) -> Reply<S> {
    Reply {
        status,
        headers: served_headers(content_type, target),
        body: ReplyBody::Full(body),
        diagnostic: None,
    }
}

/// The route, the attempts made and the target that served, for the client (the audit record
/// has the same facts).
pub(super) fn route_headers(plan: &Plan, audit: &AuditEvent) -> Vec<(String, String)> {
    let mut headers = vec![(
        crate::headers::ATTEMPTS.to_string(),
        audit.detail.attempts.len().to_string(),
    )];
    if let Some(route) = &plan.route_id {
        headers.push((crate::headers::ROUTE.into(), route.clone()));
    }
    headers
}

pub(super) fn served_headers(content_type: &str, target: &ModelTarget) -> Vec<(String, String)> {
    vec![
        ("content-type".into(), content_type.into()),
        (
            crate::headers::PROVIDER.into(),
            target.provider.as_str().into(),
        ),
        (
            crate::headers::SERVED_MODEL.into(),
            target.upstream_model.clone(),
        ),
    ]
}

pub(super) async fn read_body<B: ByteSource>(
    mut req: Inbound<B>,
    limit: u64,
) -> Result<Vec<u8>, GatewayError> {
    let too_large = || {
        GatewayError::new(
            ErrorKind::BodyTooLarge,
            format!("The request body exceeds this tenant's limit of {limit} bytes."),
        )
    };
    if req.content_length().is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    match read_limited(&mut req.body, limit).await {
        Ok(Ok(body)) => Ok(body),
        Ok(Err(_)) => Err(too_large()),
        Err(_) => Err(GatewayError::new(
            ErrorKind::InvalidRequest,
            "The request body could not be read.",
        )),
    }
}

/// Guardrail decisions (detector, action, count; never the matched text) into the audit record.
pub(crate) fn record_guardrails(audit: &mut AuditEvent, guarded: &guard::Findings) {
    audit.detail.guardrails = guarded
        .decisions()
        .as_slice()
        .iter()
        .map(guard::Decision::to_record)
        .collect();
}

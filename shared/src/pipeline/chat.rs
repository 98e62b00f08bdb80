//! A completion in any inbound dialect (`POST /v1/chat/completions`, `POST /v1/messages`) served by
//! any provider: limits, body, the hub request, model resolution, guardrails, budget, the egress
//! gate, the upstream call, then a full or streamed reply in the caller's dialect.

use super::admission::{Charge, Counted};
use super::attempts::{self, Attempted, CallContext};
use super::dialect;
use super::provider;
use super::{append_audit, upstream, Caller, Gateway, RequestCtx};
use crate::audit::{content_sha256, AuditEvent, GuardrailDecision, Outcome, Usage};
use crate::catalog::is_known_model;
use crate::config::ModelTarget;
use crate::error::{ErrorKind, GatewayError};
use crate::guard::{self, OpenAiStreamGuard, GUARDRAILS_HEADER};
use crate::host::{read_limited, ByteSource, Host};
use crate::http::{Inbound, Reply, ReplyBody};
use crate::providers::{Dialect, Provider};
use crate::relay::Relay;
use crate::routing::{Plan, RequestMeta};

pub(super) async fn handle<H: Host, B: ByteSource>(
    gw: &Gateway,
    host: &H,
    ctx: &RequestCtx,
    caller: &Caller,
    req: Inbound<B>,
    dialect: Dialect,
) -> Result<Reply<H::Body>, GatewayError> {
    let operation = match dialect {
        Dialect::OpenAi => "chat.completions",
        Dialect::Anthropic => "messages",
    };
    let mut audit = gw.audit_base(ctx, caller, operation);
    let mut charge = None;
    let served = serve(gw, host, ctx, caller, req, dialect, &mut audit, &mut charge).await;
    if served.is_err() {
        // Nothing was served: release the reservation (the provider bills failed calls nothing).
        if let Some(charge) = &charge {
            charge
                .settle(host, Some(Usage::default()), Counted::default())
                .await;
        }
    }
    match served {
        Ok(Served::Streaming(reply)) => Ok(reply),
        Ok(Served::Full(reply)) => {
            audit.record.latency_ms = host.now().ms_since(ctx.started);
            append_audit(host, &audit).await?;
            Ok(reply)
        }
        Err(err) => {
            audit.record.outcome = if err.kind.status() < 500 && !upstream_kind(err.kind) {
                Outcome::Refused
            } else {
                Outcome::Error
            };
            audit.record.status = err.status();
            audit.record.error_code = Some(err.code().to_string());
            audit.record.latency_ms = host.now().ms_since(ctx.started);
            // The client hears about its own error first; an audit outage would hide it.
            let _ = append_audit(host, &audit).await;
            Err(err)
        }
    }
}

fn upstream_kind(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::UpstreamRateLimited | ErrorKind::UpstreamError | ErrorKind::UpstreamTimeout
    )
}

enum Served<S: ByteSource> {
    Full(Reply<S>),
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
    audit: &mut AuditEvent,
    charge_out: &mut Option<Charge>,
) -> Result<Served<H::Body>, GatewayError> {
    let traceparent = ctx.trace.header();
    let tracestate = req.header("tracestate").map(str::to_string);
    let workload_header = req.header("x-asc-workload").map(str::to_string);
    dialect::check_headers(
        dialect,
        req.header("anthropic-version"),
        req.header("anthropic-beta"),
    )?;
    let body = read_body(req, caller.tenant.limits.max_request_bytes).await?;
    // The prompt is recorded only as a hash.
    audit.detail.prompt_sha256 = Some(content_sha256(&body));
    let mut request = dialect::parse(dialect, &body)?;
    let model = request.model.clone();
    audit.record.requested_model = Some(model.clone());
    audit.record.stream = request.stream;
    // Guardrails: limits, then block / redact / flag on every text of the request, in place.
    let policy = &caller.tenant.guardrails;
    let mut guarded = guard::Ledger::default();
    let checked = guard::openai::check_chat_request(policy, &mut request.hub, &mut guarded);
    record_guardrails(audit, &guarded);
    checked?;

    // Which targets, in which order: residency, rules, weights and circuits decide.
    gw.count_request(caller);
    let workload = workload_header.as_deref();
    let meta = RequestMeta {
        requested_model: &model,
        tags: &caller.key.tags,
        workload,
    };
    let plan = gw.plan(host, caller, &meta).await?;
    audit.detail.route = plan.plan.route_id.clone();
    let first = plan.first(caller)?;
    audit.record.served_model = Some(first.upstream_model.clone());
    audit.record.provider = Some(first.provider.as_str().to_string());
    audit.record.endpoint_host = first.endpoint.host_str().map(str::to_string);

    let max_output = provider::max_output_tokens(first.provider, request.max_output_tokens()?);
    let mut charge = gw
        .admit(
            host,
            &ctx.request_id,
            caller,
            first,
            body.len() as u64,
            max_output,
        )
        .await?;
    *charge_out = Some(charge.clone());
    audit.detail.price_table_version = Some(charge.price_table_version.clone());
    if charge.reserved {
        audit.detail.reserved_usd_micros = Some(charge.reserved_micros);
    }

    let mut headers = vec![
        ("content-type".to_string(), "application/json".to_string()),
        (
            "accept".to_string(),
            if request.stream {
                "text/event-stream"
            } else {
                "application/json"
            }
            .to_string(),
        ),
        ("traceparent".to_string(), traceparent),
        (
            "user-agent".to_string(),
            concat!("asc/", env!("CARGO_PKG_VERSION")).to_string(),
        ),
    ];
    if let Some(state) = tracestate {
        headers.push(("tracestate".to_string(), state));
    }
    let call = CallContext {
        hub: &request.hub,
        stream: request.stream,
        dialect,
        headers,
        states: &plan.states,
    };
    let attempted = attempts::run(gw, host, caller, &plan.plan, &call, audit).await?;
    let (key, target, mut response) = match attempted {
        Attempted::Served {
            key,
            target,
            response,
        } => (key, target, response),
        Attempted::Refused {
            status,
            body,
            target,
        } => {
            // The client's own mistake, as the upstream phrased it: recorded as refused.
            audit.record.outcome = Outcome::Refused;
            audit.record.status = status;
            // Not served: release the reservation.
            charge
                .settle(host, Some(Usage::default()), Counted::default())
                .await;
            let mut reply = reply(status, "application/json", body, target);
            reply.headers.extend(route_headers(&plan.plan, audit));
            return Ok(Served::Full(reply));
        }
    };
    audit.record.served_model = Some(target.upstream_model.clone());
    audit.record.provider = Some(target.provider.as_str().to_string());
    audit.record.endpoint_host = target.endpoint.host_str().map(str::to_string);
    audit.detail.endpoint_region = target.region.clone();
    if !std::ptr::eq(target, first) {
        gw.requote(host, &mut charge, target).await;
        *charge_out = Some(charge.clone());
    }
    let is_sse = response
        .header("content-type")
        .is_some_and(|ct| ct.contains("text/event-stream"));
    let route_headers = {
        let mut h = route_headers(&plan.plan, audit);
        h.push(("x-asc-target".into(), key));
        h
    };
    let created_s = host.now().millis() / 1000;

    if request.stream && is_sse {
        audit.record.status = response.status;
        // Durable before the first byte: if the client leaves and the work is cancelled, the
        // sequencer still chains this record (as partial) when it expires.
        let expires_ms = host.now().millis() + caller.tenant.limits.reservation_ttl_ms;
        let mut opened = audit.clone();
        opened.record.outcome = Outcome::Partial;
        host.open_audit(&opened, expires_ms).await.map_err(|e| {
            GatewayError::new(
                ErrorKind::AuditUnavailable,
                format!("The audit log is unavailable ({e}); the stream was not started."),
            )
        })?;
        let request_decisions = guarded.decisions().header_value();
        let stream_guard = OpenAiStreamGuard::new(policy, guarded);
        let relay = Relay::new(
            response.body,
            audit.clone(),
            ctx.started.millis(),
            charge.clone(),
            provider::decoder(target.provider, created_s),
            dialect::encoder(dialect, &request, &ctx.request_id),
            stream_guard,
        );
        let mut reply = Reply {
            status: 200,
            headers: Vec::new(),
            body: ReplyBody::Stream(Box::new(relay)),
        };
        reply.headers = served_headers("text/event-stream", target);
        reply.headers.extend(route_headers);
        reply.headers.extend(charge.headers());
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
    let (mut hub, usage) = provider::response_to_hub(target.provider, &body, created_s)?;
    audit.record.usage = usage;
    let redacted = guard::openai::redact_chat_response(policy, &mut hub, &mut guarded);
    let body = if !redacted && dialect == Dialect::OpenAi && target.provider == Provider::OpenAi {
        // Same dialect, nothing changed: the upstream's exact bytes, unknown fields included.
        body
    } else {
        dialect::full_body(dialect, &hub, usage, &request.model)?
    };
    record_guardrails(audit, &guarded);
    audit.record.status = response.status;
    let (_, cost) = charge.cost(audit.record.usage, Counted::default());
    let charged = charge
        .settle(host, audit.record.usage, Counted::default())
        .await;
    audit.detail.settled_usd_micros = Some(charged.unwrap_or(cost));
    audit.detail.response_sha256 = Some(content_sha256(&body));
    let mut reply = reply(response.status, "application/json", body, target);
    reply.headers.extend(route_headers);
    reply.headers.extend(charge.headers());
    if let Some(v) = guarded.decisions().header_value() {
        reply.headers.push((GUARDRAILS_HEADER.into(), v));
    }
    reply.headers.push((
        "x-asc-cost-usd-micros".into(),
        charged.unwrap_or(cost).to_string(),
    ));
    Ok(Served::Full(reply))
}

fn reply<S: ByteSource>(
    status: u16,
    content_type: &str,
    body: Vec<u8>,
    target: &ModelTarget,
) -> Reply<S> {
    Reply {
        status,
        headers: served_headers(content_type, target),
        body: ReplyBody::Full(body),
    }
}

/// The route, the attempts made and the target that served, for the client (the audit record
/// has the same facts).
fn route_headers(plan: &Plan, audit: &AuditEvent) -> Vec<(String, String)> {
    let mut headers = vec![(
        "x-asc-attempts".to_string(),
        audit.detail.attempts.len().to_string(),
    )];
    if let Some(route) = &plan.route_id {
        headers.push(("x-asc-route".into(), route.clone()));
    }
    headers
}

pub(super) fn served_headers(content_type: &str, target: &ModelTarget) -> Vec<(String, String)> {
    vec![
        ("content-type".into(), content_type.into()),
        ("x-asc-provider".into(), target.provider.as_str().into()),
        ("x-asc-served-model".into(), target.upstream_model.clone()),
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

pub(super) fn resolve_model<'c>(
    caller: &'c Caller,
    model: &str,
) -> Result<&'c ModelTarget, GatewayError> {
    if let Some(target) = caller.tenant.models.get(model) {
        return Ok(target);
    }
    let err = if is_known_model(model) {
        GatewayError::new(
            ErrorKind::ModelNotApproved,
            format!(
                "The model `{model}` is not approved for tenant {}.",
                caller.tenant.tenant_id
            ),
        )
    } else {
        GatewayError::new(
            ErrorKind::ModelNotFound,
            format!("The model `{model}` does not exist or you do not have access to it."),
        )
    };
    Err(err.with_param("model"))
}

/// Guardrail decisions (detector, action, count; never the matched text) into the audit record.
pub(crate) fn record_guardrails(audit: &mut AuditEvent, guarded: &guard::Ledger) {
    audit.detail.guardrails = guarded
        .decisions()
        .as_slice()
        .iter()
        .map(GuardrailDecision::from_guard)
        .collect();
}

//! `POST /v1/chat/completions` (OpenAI dialect, OpenAI-compatible upstream): limits, body, model
//! resolution, the egress gate, the upstream call, then a full or streamed reply.

use serde_json::{Map, Value};

use super::admission::{Charge, Counted};
use super::{append_audit, upstream, Caller, Gateway, RequestCtx};
use crate::audit::{content_sha256, AuditEvent, GuardrailDecision, Outcome, Usage};
use crate::catalog::is_known_model;
use crate::config::ModelTarget;
use crate::error::{ErrorKind, GatewayError};
use crate::guard::{self, OpenAiStreamGuard, GUARDRAILS_HEADER};
use crate::host::{read_limited, ByteSource, EgressApproved, Host};
use crate::http::{Inbound, Reply, ReplyBody};
use crate::relay::Relay;

/// Error bodies from an upstream are small; anything larger is not an error body.
const MAX_UPSTREAM_ERROR_BYTES: u64 = 64 * 1024;

pub(super) async fn handle<H: Host, B: ByteSource>(
    gw: &Gateway,
    host: &H,
    ctx: &RequestCtx,
    caller: &Caller,
    req: Inbound<B>,
) -> Result<Reply<H::Body>, GatewayError> {
    let mut audit = gw.audit_base(ctx, caller, "chat.completions");
    let mut charge = None;
    let served = serve(gw, host, ctx, caller, req, &mut audit, &mut charge).await;
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

async fn serve<H: Host, B: ByteSource>(
    gw: &Gateway,
    host: &H,
    ctx: &RequestCtx,
    caller: &Caller,
    req: Inbound<B>,
    audit: &mut AuditEvent,
    charge_out: &mut Option<Charge>,
) -> Result<Served<H::Body>, GatewayError> {
    let traceparent = ctx.trace.header();
    let tracestate = req.header("tracestate").map(str::to_string);
    let body = read_body(req, caller.tenant.limits.max_request_bytes).await?;
    // The prompt is recorded only as a hash.
    audit.detail.prompt_sha256 = Some(content_sha256(&body));
    let mut request = parse_request(&body)?;
    let model = request.model.clone();
    audit.record.requested_model = Some(model.clone());
    audit.record.stream = request.stream;
    let target = resolve_model(caller, &model)?;
    audit.record.served_model = Some(target.upstream_model.clone());
    audit.record.provider = Some(target.provider.as_str().to_string());
    audit.record.endpoint_host = target.endpoint.host_str().map(str::to_string);

    // Guardrails: limits, then block / redact / flag on every text of the request, in place.
    let policy = &caller.tenant.guardrails;
    let mut guarded = guard::Ledger::default();
    let checked = guard::openai::check_chat_request(policy, &mut request.body, &mut guarded);
    record_guardrails(audit, &guarded);
    checked?;

    let max_output = request.max_output_tokens()?;
    let charge = gw
        .admit(
            host,
            &ctx.request_id,
            caller,
            target,
            body.len() as u64,
            max_output,
        )
        .await?;
    *charge_out = Some(charge.clone());
    audit.detail.price_table_version = Some(charge.price_table_version.clone());
    if charge.reserved {
        audit.detail.reserved_usd_micros = Some(charge.reserved_micros);
    }

    request
        .body
        .insert("model".into(), Value::String(target.upstream_model.clone()));
    // Ask for usage on streams so the charge is exact; the relay removes it again if the client
    // did not ask for it.
    let strip_usage = request.stream && !request.wants_stream_usage();
    if strip_usage {
        // Keep any other stream options the client set.
        let options = request
            .body
            .entry("stream_options")
            .or_insert_with(|| Value::Object(Map::new()));
        match options.as_object_mut() {
            Some(o) => {
                o.insert("include_usage".into(), Value::Bool(true));
            }
            None => *options = serde_json::json!({"include_usage": true}),
        }
    }
    let upstream_body = serde_json::to_vec(&request.body).map_err(|_| {
        GatewayError::new(ErrorKind::Internal, "The request could not be re-encoded.")
    })?;
    let credential = host.secret(&target.credential).ok_or_else(|| {
        GatewayError::new(
            ErrorKind::UpstreamAuth,
            format!(
                "The gateway has no secret named {} for model {model}; the platform team must set it.",
                target.credential.name()
            ),
        )
    })?;
    let mut headers = vec![
        (
            "authorization".to_string(),
            format!("Bearer {}", credential.expose()),
        ),
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
    let approved = EgressApproved::check(
        &gw.region,
        target.url_for("chat/completions"),
        "POST",
        headers,
        upstream_body,
        target.timeout_ms,
    )?;
    let mut response = host
        .send(approved)
        .await
        .map_err(|e| upstream::host_error(&e))?;
    let is_sse = response
        .header("content-type")
        .is_some_and(|ct| ct.contains("text/event-stream"));

    if !(200..300).contains(&response.status) {
        let retry_after = response.header("retry-after").map(str::to_string);
        let body = match read_limited(&mut response.body, MAX_UPSTREAM_ERROR_BYTES).await {
            Ok(Ok(b)) => b,
            _ => Vec::new(),
        };
        let (status, body) =
            upstream::status_error(response.status, &body, retry_after.as_deref())?;
        // The client's own mistake, as the upstream phrased it: passed through, recorded as refused.
        audit.record.outcome = Outcome::Refused;
        audit.record.status = status;
        // Not served: release the reservation.
        charge
            .settle(host, Some(Usage::default()), Counted::default())
            .await;
        return Ok(Served::Full(reply(
            status,
            "application/json",
            body,
            target,
        )));
    }

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
            strip_usage,
            stream_guard,
        );
        let mut reply = Reply {
            status: 200,
            headers: Vec::new(),
            body: ReplyBody::Stream(Box::new(relay)),
        };
        reply.headers = served_headers("text/event-stream", target);
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

    let body = match read_limited(&mut response.body, gw.settings.max_upstream_response_bytes).await
    {
        Ok(Ok(b)) => b,
        Ok(Err(_)) => {
            return Err(GatewayError::new(
                ErrorKind::UpstreamBadResponse,
                "The upstream response was larger than the gateway accepts.",
            ))
        }
        Err(e) => return Err(upstream::host_error(&e)),
    };
    let mut parsed: Value = serde_json::from_slice(&body).map_err(|_| {
        GatewayError::new(
            ErrorKind::UpstreamBadResponse,
            "The upstream provider sent a response that is not JSON.",
        )
    })?;
    audit.record.usage = parsed.get("usage").and_then(Usage::from_openai);
    let body = if guard::openai::redact_chat_response(policy, &mut parsed, &mut guarded) {
        serde_json::to_vec(&parsed).map_err(|_| {
            GatewayError::new(ErrorKind::Internal, "The response could not be re-encoded.")
        })?
    } else {
        body
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

fn served_headers(content_type: &str, target: &ModelTarget) -> Vec<(String, String)> {
    vec![
        ("content-type".into(), content_type.into()),
        ("x-asc-provider".into(), target.provider.as_str().into()),
        ("x-asc-served-model".into(), target.upstream_model.clone()),
    ]
}

async fn read_body<B: ByteSource>(
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

/// The parts of a chat request the gateway acts on; everything else passes through.
struct ChatRequest {
    model: String,
    stream: bool,
    body: Map<String, Value>,
}

impl ChatRequest {
    /// `max_completion_tokens` (current) or `max_tokens` (legacy), if set.
    fn max_output_tokens(&self) -> Result<Option<u64>, GatewayError> {
        for name in ["max_completion_tokens", "max_tokens"] {
            match self.body.get(name) {
                None | Some(Value::Null) => {}
                Some(v) => {
                    return v.as_u64().filter(|n| *n >= 1).map(Some).ok_or_else(|| {
                        GatewayError::new(
                            ErrorKind::InvalidRequest,
                            format!("`{name}` must be a positive integer."),
                        )
                        .with_param(name)
                    })
                }
            }
        }
        Ok(None)
    }

    fn wants_stream_usage(&self) -> bool {
        self.body
            .get("stream_options")
            .and_then(|o| o.get("include_usage"))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }
}

fn parse_request(bytes: &[u8]) -> Result<ChatRequest, GatewayError> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        GatewayError::new(
            ErrorKind::InvalidJson,
            format!("The request body is not valid JSON ({e})."),
        )
    })?;
    let Value::Object(body) = value else {
        return Err(GatewayError::new(
            ErrorKind::InvalidRequest,
            "The request body must be a JSON object.",
        ));
    };
    let model = match body.get("model") {
        Some(Value::String(m)) if !m.is_empty() => m.clone(),
        Some(_) => {
            return Err(GatewayError::new(
                ErrorKind::InvalidRequest,
                "`model` must be a non-empty string.",
            )
            .with_param("model"))
        }
        None => {
            return Err(GatewayError::new(
                ErrorKind::MissingParameter,
                "You must provide a model parameter.",
            )
            .with_param("model"))
        }
    };
    match body.get("messages") {
        Some(Value::Array(m)) if !m.is_empty() => {}
        Some(_) => {
            return Err(GatewayError::new(
                ErrorKind::InvalidRequest,
                "`messages` must be a non-empty array.",
            )
            .with_param("messages"))
        }
        None => {
            return Err(GatewayError::new(
                ErrorKind::MissingParameter,
                "Missing required parameter: 'messages'.",
            )
            .with_param("messages"))
        }
    }
    let stream = match body.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(
                GatewayError::new(ErrorKind::InvalidRequest, "`stream` must be a boolean.")
                    .with_param("stream"),
            )
        }
    };
    Ok(ChatRequest {
        model,
        stream,
        body,
    })
}

fn resolve_model<'c>(caller: &'c Caller, model: &str) -> Result<&'c ModelTarget, GatewayError> {
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

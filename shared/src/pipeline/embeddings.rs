//! `POST /v1/embeddings` (OpenAI dialect) served by OpenAI or Mistral. Inputs pass the request
//! guardrails like any prompt; the charge is input tokens only.

use serde_json::{Map, Value};

use super::admission::Counted;
use super::chat::{read_body, record_guardrails, resolve_model, served_headers};
use super::provider::reject_extensions;
use super::{append_audit, upstream, Caller, Gateway, RequestCtx};
use crate::audit::{content_sha256, Outcome, Usage};
use crate::error::{ErrorKind, GatewayError};
use crate::guard;
use crate::host::{ByteSource, EgressApproved, Host};
use crate::http::{Inbound, Reply, ReplyBody};
use crate::providers::embeddings::{self, EmbeddingsRequest};
use crate::providers::{Dialect, Provider};

pub(super) async fn handle<H: Host, B: ByteSource>(
    gw: &Gateway,
    host: &H,
    ctx: &RequestCtx,
    caller: &Caller,
    req: Inbound<B>,
) -> Result<Reply<H::Body>, GatewayError> {
    let mut audit = gw.audit_base(ctx, caller, "embeddings");
    let mut charge = None;
    let served = serve(gw, host, ctx, caller, req, &mut audit, &mut charge).await;
    audit.record.latency_ms = host.now().ms_since(ctx.started);
    match served {
        Ok(reply) => {
            append_audit(host, &audit).await?;
            Ok(reply)
        }
        Err(err) => {
            if let Some(charge) = &charge {
                charge
                    .settle(host, Some(Usage::default()), Counted::default())
                    .await;
            }
            audit.record.outcome = if err.status() < 500 {
                Outcome::Refused
            } else {
                Outcome::Error
            };
            audit.record.status = err.status();
            audit.record.error_code = Some(err.code().to_string());
            let _ = append_audit(host, &audit).await;
            Err(err)
        }
    }
}

async fn serve<H: Host, B: ByteSource>(
    gw: &Gateway,
    host: &H,
    ctx: &RequestCtx,
    caller: &Caller,
    req: Inbound<B>,
    audit: &mut crate::audit::AuditEvent,
    charge_out: &mut Option<super::Charge>,
) -> Result<Reply<H::Body>, GatewayError> {
    let traceparent = ctx.trace.header();
    let body = read_body(req, caller.tenant.limits.max_request_bytes).await?;
    audit.detail.prompt_sha256 = Some(content_sha256(&body));
    let mut request = embeddings::parse_request(&body)?;
    audit.record.requested_model = Some(request.model.clone());
    let target = resolve_model(caller, &request.model)?;
    audit.record.served_model = Some(target.upstream_model.clone());
    audit.record.provider = Some(target.provider.as_str().to_string());
    audit.record.endpoint_host = target.endpoint.host_str().map(str::to_string);
    if !target.provider.has_embeddings() {
        return Err(GatewayError::new(
            ErrorKind::UnsupportedOperation,
            format!(
                "The model `{}` is served by {}, which has no embeddings API; use an embeddings model.",
                request.model,
                target.provider.as_str()
            ),
        )
        .with_param("model"));
    }

    let mut guarded = guard::Ledger::default();
    let checked = guard_inputs(caller, &mut request, &mut guarded);
    record_guardrails(audit, &guarded);
    checked?;

    let upstream_body = match target.provider {
        Provider::Mistral => embeddings::mistral_request(&request, &target.upstream_model)?,
        _ => {
            reject_extensions(&request.body)?;
            embeddings::openai_request(&request, &target.upstream_model)?
        }
    };
    let credential = host.secret(&target.credential).ok_or_else(|| {
        GatewayError::new(
            ErrorKind::UpstreamAuth,
            format!(
                "The gateway has no secret named {} for model {}; the platform team must set it.",
                target.credential.name(),
                request.model
            ),
        )
    })?;
    let charge = gw
        .admit(
            host,
            &ctx.request_id,
            caller,
            target,
            body.len() as u64,
            Some(0),
        )
        .await?;
    *charge_out = Some(charge.clone());
    audit.detail.price_table_version = Some(charge.price_table_version.clone());
    let headers = vec![
        (
            "authorization".to_string(),
            format!("Bearer {}", credential.expose()),
        ),
        ("content-type".to_string(), "application/json".to_string()),
        ("accept".to_string(), "application/json".to_string()),
        ("traceparent".to_string(), traceparent),
        (
            "user-agent".to_string(),
            concat!("asc/", env!("CARGO_PKG_VERSION")).to_string(),
        ),
    ];
    let approved = EgressApproved::check(
        &gw.region,
        target.url_for("embeddings"),
        "POST",
        headers,
        upstream_body,
        target.timeout_ms,
    )?;
    let mut response = host
        .send(approved)
        .await
        .map_err(|e| upstream::host_error(&e))?;
    let limit = gw.settings.max_upstream_response_bytes;
    let reply_body = upstream::read_reply(&mut response.body, limit).await?;
    if !(200..300).contains(&response.status) {
        let retry_after = response.header("retry-after").map(str::to_string);
        let (status, passed) = upstream::status_error(
            response.status,
            &reply_body,
            retry_after.as_deref(),
            target.provider,
            Dialect::OpenAi,
        )?;
        audit.record.outcome = Outcome::Refused;
        audit.record.status = status;
        charge
            .settle(host, Some(Usage::default()), Counted::default())
            .await;
        return Ok(full(status, passed, target));
    }
    let (out, usage) = match target.provider {
        Provider::Mistral => {
            embeddings::mistral_response_to_openai(&reply_body, request.base64, &request.model)?
        }
        _ => {
            let usage = embeddings::openai_usage(&reply_body);
            (reply_body, usage)
        }
    };
    audit.record.usage = usage;
    audit.record.status = response.status;
    let (_, cost) = charge.cost(usage, Counted::default());
    let charged = charge.settle(host, usage, Counted::default()).await;
    audit.detail.settled_usd_micros = Some(charged.unwrap_or(cost));
    audit.detail.response_sha256 = Some(content_sha256(&out));
    let mut reply = full(response.status, out, target);
    reply.headers.extend(charge.headers());
    if let Some(v) = guarded.decisions().header_value() {
        reply.headers.push((guard::GUARDRAILS_HEADER.into(), v));
    }
    reply.headers.push((
        "x-asc-cost-usd-micros".into(),
        charged.unwrap_or(cost).to_string(),
    ));
    Ok(reply)
}

fn full<S: ByteSource>(
    status: u16,
    body: Vec<u8>,
    target: &crate::config::ModelTarget,
) -> Reply<S> {
    Reply {
        status,
        headers: served_headers("application/json", target),
        body: ReplyBody::Full(body),
    }
}

/// The request guardrails on each text input (token-id inputs carry no text to scan): the same
/// checks as a chat prompt, by running each input as a user message.
fn guard_inputs(
    caller: &Caller,
    request: &mut EmbeddingsRequest,
    ledger: &mut guard::Ledger,
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

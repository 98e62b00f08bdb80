//! `POST /v1/route/explain`: the routing decision for a request, without calling any provider.
//! The body is the completion request the client would send (OpenAI or Anthropic shape; only
//! `model` is read); `x-asc-workload` counts as it would. Circuits are peeked, never probed.

use serde_json::{json, Value};

use super::chat::read_body;
use super::{json_reply, Caller, Gateway};
use crate::error::{ErrorKind, GatewayError};
use crate::host::{ByteSource, Host};
use crate::pipeline::http::{Inbound, Reply};
use crate::providers::openai::required_model;
use crate::routing::circuit::{CircuitOp, CircuitReply, CircuitState};
use crate::routing::{self, RequestMeta};

pub(super) async fn handle<H: Host, B: ByteSource>(
    gw: &Gateway,
    host: &H,
    caller: &Caller,
    req: Inbound<B>,
) -> Result<Reply<H::Body>, GatewayError> {
    let workload = req.header(crate::headers::WORKLOAD).map(str::to_string);
    let body = read_body(req, caller.tenant.limits.max_request_bytes).await?;
    let value: Value = serde_json::from_slice(&body).map_err(|e| {
        GatewayError::new(
            ErrorKind::InvalidJson,
            format!("The request body is not valid JSON ({e})."),
        )
    })?;
    let Value::Object(map) = value else {
        return Err(GatewayError::new(
            ErrorKind::InvalidRequest,
            "The request body must be a JSON object.",
        ));
    };
    let model = required_model(&map)?;
    let meta = RequestMeta {
        requested_model: &model,
        tags: &caller.key.tags,
        workload: workload.as_deref(),
    };
    let targets: Vec<String> = routing::targets_of(&caller.tenant, &meta)
        .into_iter()
        .map(routing::circuit_key)
        .collect();
    let now = host.now().millis();
    let states = match host
        .circuits(
            &caller.tenant.tenant_id,
            &CircuitOp::Peek {
                targets: targets.clone(),
                now_ms: now,
            },
        )
        .await
    {
        Ok(CircuitReply::States(list)) if list.len() == targets.len() => {
            targets.into_iter().zip(list).collect()
        }
        _ => std::collections::HashMap::new(),
    };
    let mut random = [0u8; 8];
    host.fill_random(&mut random);
    let circuit = |k: &str| {
        states
            .get(k)
            .copied()
            .unwrap_or(CircuitState::Closed { failures: 0 })
    };
    let out = match routing::plan(
        &caller.tenant,
        &gw.region,
        &meta,
        &circuit,
        now,
        u64::from_le_bytes(random),
    ) {
        Ok(plan) => json!({
            "object": "route.explanation",
            "requested_model": model,
            "region": gw.region.id,
            "decision": "route",
            "route": plan.route_id,
            "rule": plan.rule,
            "strategy": plan.strategy,
            "workload": plan.workload,
            "timeout_ms": plan.timeout_ms,
            "latency_target_ms": plan.latency_target_ms,
            "max_attempts": plan.retry.max_attempts,
            "fallback_on": {"statuses": plan.fallback_on.statuses, "timeouts": plan.fallback_on.timeouts},
            "candidates": plan.candidates,
            "considered": plan.considered,
            "steps": routing::steps(&plan, &meta),
        }),
        // A refusal is an answer too: what a real request would get, and why.
        Err(err) => json!({
            "object": "route.explanation",
            "requested_model": model,
            "region": gw.region.id,
            "decision": "refuse",
            "error": {"status": err.status(), "code": err.code(), "message": err.message},
        }),
    };
    Ok(json_reply(200, out.to_string().into_bytes()))
}

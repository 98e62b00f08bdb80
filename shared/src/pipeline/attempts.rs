//! Executes a routing plan: attempts in the plan's order, each written for its target's provider,
//! with fallback on the route's statuses and timeouts, backoff with jitter that honours
//! `Retry-After`, the retry budget, and circuit reports. Nothing here runs after a response's
//! first byte: once a target answers 2xx, the reply is committed to it.

use std::collections::HashMap;

use super::http::Reply;
use super::{provider, upstream, AfterResponse, Caller, Exchange, Gateway};
use crate::audit::{Attempt, Outcome};
use crate::config::ModelTarget;
use crate::error::{ErrorKind, GatewayError};
use crate::host::{read_limited, ByteSource, EgressApproved, Host, HostError, UpstreamResponse};
use crate::providers::embeddings::EmbeddingsRequest;
use crate::providers::{Dialect, HubRequest};
use crate::routing::backoff::{delay_ms, parse_retry_after_ms};
use crate::routing::circuit::CircuitState;
use crate::routing::Plan;
use crate::telemetry::attempt_span_id;

/// Error bodies from an upstream are small; anything larger is not an error body.
const MAX_UPSTREAM_ERROR_BYTES: u64 = 64 * 1024;

pub(super) enum Attempted<'t, B> {
    /// A 2xx from `target` (headers only; the body is still unread).
    Served {
        key: String,
        target: &'t ModelTarget,
        response: UpstreamResponse<B>,
    },
    /// The upstream refused the client's own request (a status the route does not fall back
    /// on): its answer, already in the client's dialect.
    Refused {
        status: u16,
        body: Vec<u8>,
        target: &'t ModelTarget,
    },
}

impl<'t, B> Attempted<'t, B> {
    /// The served attempt (its target's key noted on the exchange), or the reply to a refusal:
    /// the upstream's answer with the route's headers and the cache outcome, as chat, messages
    /// and embeddings all answer it.
    pub(super) fn served<S: ByteSource>(
        self,
        plan: &Plan,
        exchange: &mut Exchange,
    ) -> Result<(String, &'t ModelTarget, UpstreamResponse<B>), Reply<S>> {
        match self {
            Attempted::Served {
                key,
                target,
                response,
            } => {
                exchange.routing.target = Some(key.clone());
                Ok((key, target, response))
            }
            Attempted::Refused {
                status,
                body,
                target,
            } => {
                let mut reply = super::chat::reply(status, "application/json", body, target);
                reply
                    .headers
                    .extend(super::chat::route_headers(plan, &exchange.record));
                reply.headers.extend(super::cached::header(exchange));
                Err(reply)
            }
        }
    }
}

/// What a request asks of the upstream, written per target.
pub(super) enum Payload<'a> {
    Chat { hub: &'a HubRequest, stream: bool },
    Embeddings(&'a EmbeddingsRequest),
}

/// The headers every attempt sends besides the provider's own: content negotiation, the trace
/// context (the client's `tracestate` passed on), and who is calling.
pub(super) fn common_headers(
    accept: &str,
    traceparent: String,
    tracestate: Option<String>,
) -> Vec<(String, String)> {
    let mut headers = vec![
        ("content-type".to_string(), "application/json".to_string()),
        ("accept".to_string(), accept.to_string()),
        ("traceparent".to_string(), traceparent),
        (
            "user-agent".to_string(),
            concat!("asc/", env!("CARGO_PKG_VERSION")).to_string(),
        ),
    ];
    if let Some(state) = tracestate {
        headers.push(("tracestate".to_string(), state));
    }
    headers
}

/// What every attempt sends besides the provider's own headers.
pub(super) struct CallContext<'a> {
    pub payload: Payload<'a>,
    pub dialect: Dialect,
    pub headers: Vec<(String, String)>,
    pub states: &'a HashMap<String, CircuitState>,
}

pub(super) async fn run<'c, H: Host>(
    gw: &Gateway,
    host: &H,
    caller: &'c Caller,
    plan: &Plan,
    call: &CallContext<'_>,
    exchange: &mut Exchange,
    after: &mut AfterResponse,
) -> Result<Attempted<'c, H::Body>, GatewayError> {
    let result = attempt_all(gw, host, caller, plan, call, exchange, after).await;
    exchange.timing.mark("upstream", host.now().millis());
    result
}

async fn attempt_all<'c, H: Host>(
    gw: &Gateway,
    host: &H,
    caller: &'c Caller,
    plan: &Plan,
    call: &CallContext<'_>,
    exchange: &mut Exchange,
    after: &mut AfterResponse,
) -> Result<Attempted<'c, H::Body>, GatewayError> {
    let tenant = &caller.tenant;
    // When each target may be tried again (its `Retry-After`), and how often it has been tried.
    let mut not_before: HashMap<&str, u64> = HashMap::new();
    let mut tries: HashMap<&str, u32> = HashMap::new();
    let mut last_err: Option<GatewayError> = None;
    let mut sent_any = false;
    // Targets whose circuit opened during this request: not tried again by it.
    let mut opened: Vec<&str> = Vec::new();
    // What this request knows of each target's circuit, updated by its own failures.
    let mut states = call.states.clone();
    for n in 0..plan.max_attempts() {
        let Some(key) = plan.target_for_attempt(n) else {
            break;
        };
        if opened.contains(&key) {
            if plan.candidates.iter().all(|c| opened.contains(&c.as_str())) {
                break;
            }
            continue;
        }
        let Some(target) = tenant.models.get(key) else {
            continue;
        };
        if sent_any {
            if !gw.retry_permit(host, caller).await {
                break;
            }
            let tried = tries.get(key).copied().unwrap_or(0);
            let now = host.now().millis();
            let wait_after = not_before.get(key).map(|t| t.saturating_sub(now));
            let wait = if tried > 0 {
                let mut random = [0u8; 8];
                host.fill_random(&mut random);
                delay_ms(&plan.retry, tried, u64::from_le_bytes(random), wait_after)
            } else {
                match wait_after {
                    Some(w) if w > plan.retry.max_retry_after_ms => None,
                    other => Some(other.unwrap_or(0)),
                }
            };
            let Some(wait) = wait else {
                // The target asked for a longer pause than the route allows: stop here.
                break;
            };
            if wait > 0 {
                host.sleep(wait).await;
            }
        }
        let credential = match host.secret(&target.credential) {
            Some(c) => c,
            None => {
                last_err.get_or_insert(GatewayError::new(
                    ErrorKind::UpstreamAuth,
                    format!(
                        "The gateway has no secret named {} for target {key}; the platform team must set it.",
                        target.credential.name()
                    ),
                ));
                continue;
            }
        };
        // A field this provider cannot take: the client's 400 if no target can take it.
        let written = match &call.payload {
            Payload::Chat { hub, stream } => provider::chat_call(target, hub, *stream, &credential),
            Payload::Embeddings(request) => provider::embeddings_call(target, request, &credential),
        };
        let written = match written {
            Ok(w) => w,
            Err(e) => {
                if !sent_any && plan.candidates.len() == 1 {
                    return Err(e);
                }
                last_err.get_or_insert(e);
                continue;
            }
        };
        let mut headers = written.headers;
        headers.extend(call.headers.iter().cloned());
        // Each attempt is its own client span: the upstream's spans hang under it.
        let attempt_span = attempt_span_id(exchange.trace(), exchange.record.detail.attempts.len());
        if let Some(tp) = headers.iter_mut().find(|(n, _)| n == "traceparent") {
            tp.1 = exchange.trace().header_with_parent(&attempt_span);
        }
        let timeout_ms = plan.timeout_ms.unwrap_or(target.timeout_ms);
        let approved = EgressApproved::check(
            &gw.region,
            target.url_for(written.operation),
            "POST",
            headers,
            written.body,
            timeout_ms,
        )?;
        *tries.entry(key).or_insert(0) += 1;
        sent_any = true;
        let started = host.now();
        exchange.timing.attempt_starts.push(started.millis());
        let sent = host.send(approved).await;
        let mut attempt = Attempt {
            provider: target.provider.as_str().to_string(),
            endpoint_host: target.endpoint.host_str().unwrap_or("").to_string(),
            model: target.upstream_model.clone(),
            status: None,
            error_code: None,
            latency_ms: 0,
        };
        let known = states.get(key).copied();
        let outcome = match sent {
            Err(e) => {
                let err = upstream::host_error(&e);
                let falls_back = match e {
                    HostError::Timeout => plan.fallback_on.timeouts,
                    _ => true,
                };
                let counts = err.kind.retryable();
                Err((err, falls_back, counts))
            }
            Ok(response) if (200..300).contains(&response.status) => Ok(response),
            Ok(mut response) => {
                let status = response.status;
                attempt.status = Some(status);
                let retry_after = response.header("retry-after").map(str::to_string);
                if let Some(ms) = retry_after.as_deref().and_then(parse_retry_after_ms) {
                    not_before.insert(key, host.now().millis() + ms);
                }
                let body = match read_limited(&mut response.body, MAX_UPSTREAM_ERROR_BYTES).await {
                    Ok(Ok(b)) => b,
                    _ => Vec::new(),
                };
                let counts_against_target = status == 429 || status >= 500;
                match upstream::status_error(
                    status,
                    &body,
                    retry_after.as_deref(),
                    target.provider,
                    call.dialect,
                ) {
                    Ok((status, body)) if !plan.fallback_on.statuses.contains(&status) => {
                        attempt.latency_ms = host.now().ms_since(started);
                        exchange.record.detail.attempts.push(attempt);
                        // The client's own mistake, as the upstream phrased it: recorded as
                        // refused (the reservation is released).
                        exchange.record.record.outcome = Outcome::Refused;
                        exchange.record.record.status = status;
                        return Ok(Attempted::Refused {
                            status,
                            body,
                            target,
                        });
                    }
                    Ok((status, _)) => Err((
                        GatewayError::new(
                            ErrorKind::InvalidRequest,
                            format!(
                                "The upstream provider rejected the request (status {status})."
                            ),
                        ),
                        true,
                        counts_against_target,
                    )),
                    Err(err) => {
                        // A failure of the target (5xx, 429, 529), not of the request: it
                        // counts toward the target's circuit.
                        let counts = err.kind.retryable();
                        let falls_back = plan.fallback_on.statuses.contains(&status);
                        Err((err, falls_back, counts))
                    }
                }
            }
        };
        attempt.latency_ms = host.now().ms_since(started);
        match outcome {
            Ok(response) => {
                attempt.status = Some(response.status);
                exchange.record.detail.attempts.push(attempt);
                gw.report_circuit(host, caller, key, true, known, after);
                return Ok(Attempted::Served {
                    key: key.to_string(),
                    target,
                    response,
                });
            }
            Err((err, falls_back, counts)) => {
                attempt.error_code = Some(err.code().to_string());
                exchange.record.detail.attempts.push(attempt);
                if counts {
                    let state = gw.report_circuit(host, caller, key, false, known, after);
                    if let Some(state) = state {
                        states.insert(key.to_string(), state);
                    }
                    if matches!(state, Some(CircuitState::Open { .. })) {
                        opened.push(key);
                    }
                }
                last_err = Some(err);
                if !falls_back {
                    break;
                }
            }
        }
    }
    Err(last_err.unwrap_or_else(|| {
        GatewayError::new(
            ErrorKind::AllTargetsUnavailable,
            "No target could be tried for this request; retry later.",
        )
    }))
}

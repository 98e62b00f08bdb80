//! After the response: execution records into this isolate's export buffer and out to the
//! region's collector in batches; alerts out to the tenant's webhooks; circuit openings and
//! closings into the tenant's alert log. None of it can fail a request: failures are counted,
//! reported back to the caller of [`super::AfterResponse::run`] for the log, and retried.

use serde_json::json;

use super::Gateway;
use crate::alerts::{delivery_headers, AlertEvent, AlertKind};
use crate::config::AlertPolicy;
use crate::host::{EgressApproved, Host, HostError};
use crate::ids::TenantId;
use crate::ledger::{Delivery, LedgerId, LedgerOp};
use crate::routing::circuit::{CircuitChange, CircuitOp, CircuitState};
use crate::telemetry::{
    metrics_request, parse_headers, trace_request, BreakerReading, ExecutionRecord, Push,
    ResourceInfo,
};

/// How long a webhook receiver has to answer.
const WEBHOOK_TIMEOUT_MS: u64 = 10_000;

impl Gateway {
    /// Buffers a finished request's execution record; returns how long to wait before this
    /// caller should flush (`None`: another caller's flush is already due).
    pub(crate) fn observe(&self, record: ExecutionRecord) -> Option<u64> {
        let collector = self.settings.collector.as_ref()?;
        match self.telemetry.borrow_mut().push(record, collector) {
            Push::FlushNow => Some(0),
            Push::FlushAfter(ms) => Some(ms),
            Push::Queued => None,
        }
    }

    /// Waits `wait_ms` (for the batch to fill), then exports what the buffer holds: spans to
    /// `/v1/traces`, metrics to `/v1/metrics`, OTLP/HTTP protobuf, through the region's gate.
    pub async fn flush_telemetry<H: Host>(&self, host: &H, wait_ms: u64) -> Result<(), HostError> {
        let Some(collector) = self.settings.collector.as_ref() else {
            return Ok(());
        };
        if wait_ms > 0 {
            host.sleep(wait_ms).await;
        }
        loop {
            let batch = self.telemetry.borrow_mut().take(collector.max_batch);
            if batch.is_empty() {
                return Ok(());
            }
            let now = host.now().millis();
            let resource = ResourceInfo {
                region: self.region.id.clone(),
                instance_id: self.instance_id(host),
            };
            let (start, failures) = {
                let t = self.telemetry.borrow();
                (t.window_start_ms.min(now), t.failures)
            };
            let breakers = self.breaker_readings(host);
            let traces = trace_request(&resource, &batch);
            let metrics = metrics_request(&resource, &batch, &breakers, failures, start, now);
            let mut headers = vec![(
                "content-type".to_string(),
                "application/x-protobuf".to_string(),
            )];
            if let Some(extra) = host.secret(&collector.headers_secret) {
                headers.extend(parse_headers(extra.expose()));
            }
            let sent = async {
                for (signal, body) in [("traces", traces), ("metrics", metrics)] {
                    let url = collector.url(signal).ok_or_else(|| {
                        HostError::Unreachable(format!("OTLP_ENDPOINT has no {signal} URL"))
                    })?;
                    let req = EgressApproved::check_telemetry(
                        &self.region,
                        url,
                        headers.clone(),
                        body,
                        collector.timeout_ms,
                    )
                    .map_err(|e| HostError::Unreachable(e.message))?;
                    let response = host.send(req).await?;
                    if !(200..300).contains(&response.status) {
                        return Err(HostError::Unreachable(format!(
                            "telemetry export: the collector answered {} to /v1/{signal}",
                            response.status
                        )));
                    }
                }
                Ok(())
            }
            .await;
            let mut t = self.telemetry.borrow_mut();
            match sent {
                Ok(()) => {
                    t.failures = 0;
                    t.window_start_ms = now;
                }
                Err(e) => {
                    t.failures += 1;
                    t.restore(batch, collector);
                    return Err(HostError::Unreachable(format!(
                        "telemetry export failed: {e}"
                    )));
                }
            }
            if t.len() < collector.max_batch {
                // A partial batch waits for its own flush (scheduled by its first record).
                return Ok(());
            }
        }
    }

    /// A random id for this isolate, made once.
    fn instance_id<H: Host>(&self, host: &H) -> String {
        let mut id = self.instance_id.borrow_mut();
        if id.is_empty() {
            let mut random = [0u8; 8];
            host.fill_random(&mut random);
            *id = crate::hexstr::encode(&random);
        }
        id.clone()
    }

    /// The breaker states this isolate knows, for the `asc.circuit.state` gauge.
    fn breaker_readings<H: Host>(&self, host: &H) -> Vec<BreakerReading> {
        let now = host.now();
        let cache = self.circuits.borrow();
        let mut out: Vec<BreakerReading> = cache
            .live(now)
            .filter_map(|(key, (state, _))| {
                let (tenant, target) = key.split_once('/')?;
                let value = match state {
                    CircuitState::Closed { .. } => 0,
                    CircuitState::Probe => 1,
                    CircuitState::Open { until_ms } if now.millis() >= *until_ms => 1,
                    CircuitState::Open { .. } => 2,
                };
                Some(BreakerReading {
                    tenant: tenant.to_string(),
                    target: target.to_string(),
                    state: value,
                })
            })
            .collect();
        out.sort_by(|a, b| (&a.tenant, &a.target).cmp(&(&b.tenant, &b.target)));
        out
    }

    /// Sends each alert to the tenant's subscribed webhooks (Standard Webhooks signatures) and
    /// tells the ledger how it went, so it retries with backoff what did not arrive.
    pub(crate) async fn deliver_alerts<H: Host>(
        &self,
        host: &H,
        ledger: &LedgerId,
        policy: &AlertPolicy,
        events: Vec<AlertEvent>,
    ) -> Vec<HostError> {
        let mut failures = Vec::new();
        let mut results = Vec::with_capacity(events.len());
        for event in events {
            let body = event.payload();
            let mut result = Delivery::Unsubscribed;
            for hook in policy.subscribers(event.kind) {
                let Some(secret) = host.secret(&hook.secret) else {
                    failures.push(HostError::Unreachable(format!(
                        "alert webhook {}: the deployment has no secret named {}",
                        hook.id,
                        hook.secret.name()
                    )));
                    result = worse(result, Delivery::Refused);
                    continue;
                };
                let headers = delivery_headers(secret.expose(), &event, &body, host.now().millis());
                let req = match EgressApproved::check_webhook(
                    &self.region,
                    hook.url.clone(),
                    headers,
                    body.clone(),
                    WEBHOOK_TIMEOUT_MS,
                ) {
                    Ok(r) => r,
                    Err(e) => {
                        failures.push(HostError::Unreachable(format!(
                            "alert webhook {}: {}",
                            hook.id, e.message
                        )));
                        result = worse(result, Delivery::Refused);
                        continue;
                    }
                };
                let outcome = match host.send(req).await {
                    Ok(r) if (200..300).contains(&r.status) => Delivery::Delivered,
                    Ok(r) if r.status == 429 || r.status >= 500 || r.status == 408 => {
                        failures.push(HostError::Unreachable(format!(
                            "alert webhook {} answered {}; retrying later",
                            hook.id, r.status
                        )));
                        Delivery::Retry
                    }
                    Ok(r) => {
                        failures.push(HostError::Unreachable(format!(
                            "alert webhook {} refused the event ({})",
                            hook.id, r.status
                        )));
                        Delivery::Refused
                    }
                    Err(e) => {
                        failures.push(HostError::Unreachable(format!(
                            "alert webhook {}: {e}; retrying later",
                            hook.id
                        )));
                        Delivery::Retry
                    }
                };
                result = worse(result, outcome);
            }
            results.push((event.id, result));
        }
        let op = LedgerOp::Delivered {
            now_ms: host.now().millis(),
            results,
        };
        if let Err(e) = host.ledger_after_response(ledger, op).await {
            failures.push(e);
        }
        failures
    }

    /// Delivers the alerts due on `ledger` that no request carried: the deployment's scheduled
    /// sweep calls it for each ledger that marked itself at
    /// [`crate::ledger::TenantLedger::alerts_sweep_due_ms`] (a tenant without traffic since a
    /// delivery failed, or an isolate that died holding a claim). Claims them, sends them to the
    /// tenant's webhooks as a request's after-work does, and reports back how it went. Returns
    /// how many it claimed and what failed, for the log. A tenant whose config is gone has no
    /// webhooks left: its alerts are reported unsubscribed. A config that cannot be read now
    /// leaves them claimed; the claim runs out and the ledger marks itself again.
    pub async fn deliver_swept_alerts<H: Host>(
        &self,
        host: &H,
        ledger: &LedgerId,
    ) -> Result<(usize, Vec<HostError>), HostError> {
        let now_ms = host.now().millis();
        let events = host
            .ledger(ledger, LedgerOp::ClaimAlerts { now_ms })
            .await?
            .into_alerts();
        let claimed = events.len();
        if claimed == 0 {
            return Ok((0, Vec::new()));
        }
        let policy = match self.tenant(host, &ledger.tenant()).await {
            Ok(config) => config.alerts.clone(),
            Err(e) if e.kind == crate::error::ErrorKind::TenantNotConfigured => {
                AlertPolicy::default()
            }
            Err(e) => {
                return Err(HostError::Store(format!(
                    "alerts of ledger {ledger}: {}",
                    e.message
                )))
            }
        };
        let failures = self.deliver_alerts(host, ledger, &policy, events).await;
        Ok((claimed, failures))
    }

    /// A report opened or closed a circuit: the tenant's ledger raises the alert (once: only
    /// the report that changed the state gets a change back from the board).
    pub(crate) async fn raise_circuit_alert<H: Host>(
        &self,
        host: &H,
        tenant: &TenantId,
        op: &CircuitOp,
        change: &CircuitChange,
    ) -> Result<(), HostError> {
        let CircuitOp::Report { target, .. } = op else {
            return Ok(());
        };
        let (kind, verb) = if change.opened {
            (AlertKind::CircuitOpened, "opened")
        } else {
            (AlertKind::CircuitClosed, "closed")
        };
        let event = AlertEvent {
            id: format!("circuit.{verb}:{target}:{}", change.until_ms),
            kind,
            tenant_id: tenant.to_string(),
            at_ms: change.at_ms,
            detail: json!({
                "target": target,
                "failures": change.failures,
                "open_until_ms": change.until_ms,
            }),
        };
        let shards = self
            .tenants
            .borrow()
            .get(tenant.as_str(), host.now())
            .and_then(|c| c.ok())
            .map_or(1, |c| c.limits.ledger_shards);
        let ledger = LedgerId::new(tenant.as_str(), 0, shards);
        let op = LedgerOp::Raise {
            now_ms: host.now().millis(),
            events: vec![event],
        };
        host.ledger_after_response(&ledger, op).await.map(|_| ())
    }
}

/// The delivery result of an event sent to several webhooks: the worst of theirs (a retry
/// resends to all; receivers drop the duplicate by its `webhook-id`).
fn worse(a: Delivery, b: Delivery) -> Delivery {
    let rank = |d: Delivery| match d {
        Delivery::Unsubscribed => 0,
        Delivery::Delivered => 1,
        Delivery::Refused => 2,
        Delivery::Retry => 3,
    };
    if rank(b) > rank(a) {
        b
    } else {
        a
    }
}

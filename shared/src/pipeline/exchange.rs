//! One request's account with its tenant ledger: its audit record, what was reserved for it, and
//! how it ends. Every endpoint that reaches a tenant opens one and ends it once ([`Exchange::end`],
//! or [`Exchange::commit_op`] from the relay when a stream ends), so chat, messages and
//! embeddings record, charge and classify outcomes the same way.
//!
//! Durability: [`Exchange::admit`] is the request's one durable round trip before the upstream
//! call (the ledger stores the opening record and the reservation). The commit that settles and
//! records the outcome runs after the response ([`super::AfterResponse`]); if it never comes, the
//! ledger gives up on the request at its expiry (charged in full, recorded as partial). A request
//! that ends before admission is recorded synchronously, before its reply goes out.

use super::admission::{refusal_error, Charge, Counted};
use super::{AfterResponse, Caller, Gateway, RequestCtx};
use crate::alerts::AlertEvent;
use crate::audit::{AuditEvent, Outcome, Usage};
use crate::config::ModelTarget;
use crate::error::{ErrorKind, GatewayError};
use crate::host::Host;
use crate::ledger::{AdmitAsk, CommitAsk, LedgerId, LedgerOp, LedgerReply, RecordAsk};
use crate::telemetry::{ExecutionRecord, RouteNote, Timing};
use crate::trace::TraceContext;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Nothing durable yet: ending means recording synchronously.
    Open,
    /// The ledger holds the opening record: ending means committing (after the response).
    Admitted,
    /// Nothing left to do: the ledger recorded it (a refusal), or it was ended or handed off.
    Done,
}

pub(crate) struct Exchange {
    pub record: AuditEvent,
    ledger: LedgerId,
    stage: Stage,
    /// What was priced and reserved, once admitted.
    pub charge: Option<Charge>,
    /// Choices the request asks for (OpenAI's `n`): each may use the whole output allowance.
    pub choices: u64,
    /// When each phase ended, for the execution record.
    pub timing: Timing,
    trace: TraceContext,
    /// Export this request's execution record (the deployment has a collector and the tenant
    /// did not opt out), with body hashes when the tenant asks.
    export: Option<bool>,
    /// Alerts the ledger handed over at admission, for delivery after the response.
    alerts: Vec<AlertEvent>,
    /// Their ids, for the execution record.
    alert_ids: Vec<String>,
    /// How the route chose, for the execution record.
    pub routing: RouteNote,
}

impl Exchange {
    pub fn new(gw: &Gateway, ctx: &RequestCtx, caller: &Caller, operation: &str) -> Self {
        ctx.reached_tenant.set(true);
        let mut record = gw.audit_base(ctx, caller, operation);
        record.detail.tags = caller.key.tags.clone();
        let policy = caller.tenant.telemetry;
        Exchange {
            record,
            ledger: Gateway::ledger_of(caller).0,
            stage: Stage::Open,
            charge: None,
            choices: 1,
            timing: Timing::new(ctx.started.millis()),
            trace: ctx.trace.clone(),
            export: (gw.settings.collector.is_some() && policy.export)
                .then_some(policy.content_hashes),
            alerts: Vec::new(),
            alert_ids: Vec::new(),
            routing: RouteNote::default(),
        }
    }

    pub fn trace(&self) -> &TraceContext {
        &self.trace
    }

    /// Hands the alerts the ledger gave this request to `after`, for delivery to the tenant's
    /// webhooks once the response is out.
    pub fn deliver_alerts(&mut self, caller: &Caller, after: &mut AfterResponse) {
        if self.alerts.is_empty() {
            return;
        }
        let events = std::mem::take(&mut self.alerts);
        self.alert_ids.extend(events.iter().map(|e| e.id.clone()));
        after.alerts(self.ledger.clone(), caller.tenant.alerts.clone(), events);
    }

    /// The request's execution record as it ends at `end_ms`, if it is exported.
    pub fn execution_record(&self, end_ms: u64) -> Option<ExecutionRecord> {
        let content_hashes = self.export?;
        let mut record = ExecutionRecord::new(
            &self.trace,
            &self.timing,
            self.record.clone(),
            end_ms,
            content_hashes,
        );
        record.alerts = self.alert_ids.clone();
        record.routing = self.routing.clone();
        Some(record)
    }

    /// Notes the target a request is sent to (model, provider, endpoint host).
    pub fn set_target(&mut self, target: &ModelTarget) {
        let record = &mut self.record.record;
        record.served_model = Some(target.upstream_model.clone());
        record.provider = Some(target.provider.as_str().to_string());
        record.endpoint_host = target.endpoint.host_str().map(str::to_string);
    }

    /// Notes the target that served: a fallback's price replaces the first candidate's.
    pub async fn served_by<H: Host>(
        &mut self,
        gw: &Gateway,
        host: &H,
        first: &ModelTarget,
        target: &ModelTarget,
    ) {
        self.set_target(target);
        self.record.detail.endpoint_region = target.region.clone();
        if !std::ptr::eq(target, first) {
            if let Some(charge) = self.charge.as_mut() {
                gw.requote(host, charge, target).await;
            }
        }
    }

    /// Moves the exchange out (into a stream's relay), leaving this one with nothing to do.
    pub fn hand_off(&mut self) -> Exchange {
        let taken = Exchange {
            record: self.record.clone(),
            ledger: self.ledger.clone(),
            stage: self.stage,
            charge: self.charge.take(),
            choices: self.choices,
            timing: std::mem::take(&mut self.timing),
            trace: self.trace.clone(),
            export: self.export.take(),
            alerts: std::mem::take(&mut self.alerts),
            alert_ids: std::mem::take(&mut self.alert_ids),
            routing: std::mem::take(&mut self.routing),
        };
        self.stage = Stage::Done;
        taken
    }

    /// Prices the worst case at `target`, and in one ledger operation stores the opening record
    /// and reserves the worst case against every budget and limit (or is refused with a 429
    /// naming the budget or limit; the ledger records the refusal itself).
    pub async fn admit<H: Host>(
        &mut self,
        gw: &Gateway,
        host: &H,
        caller: &Caller,
        target: &ModelTarget,
        request_bytes: u64,
        max_output_tokens: Option<u64>,
    ) -> Result<(), GatewayError> {
        let request_id = self.record.record.request_id.clone();
        let (mut charge, reserve) = gw
            .price(
                host,
                &request_id,
                caller,
                target,
                request_bytes,
                max_output_tokens,
                self.choices,
            )
            .await?;
        self.record.detail.price_table_version = Some(charge.price_table_version.clone());
        if reserve.is_some() {
            self.record.detail.reserved_usd_micros = Some(charge.reserved_micros);
        }
        let now_ms = host.now().millis();
        let mut opening = self.record.clone();
        opening.record.outcome = Outcome::Partial;
        let op = LedgerOp::Admit(AdmitAsk {
            now_ms,
            expires_ms: now_ms + caller.tenant.limits.reservation_ttl_ms,
            record: opening,
            reserve: reserve.clone(),
            error_rate: caller.tenant.alerts.error_rate,
        });
        match host.ledger(&self.ledger, &op).await {
            Ok(LedgerReply::Admitted { budgets, alerts }) => {
                self.alerts = alerts;
                charge.reserved = reserve.is_some();
                charge.budgets = budgets;
                self.charge = Some(charge);
                self.stage = Stage::Admitted;
                Ok(())
            }
            Ok(LedgerReply::Refused {
                refusal,
                retry_after_ms,
                alerts,
                ..
            }) => {
                self.alerts = alerts;
                self.stage = Stage::Done;
                let err = refusal_error(&refusal, charge.reserved_micros);
                Err(match retry_after_ms {
                    Some(ms) => err.with_retry_after(ms.div_ceil(1000).max(1)),
                    None => err,
                })
            }
            Ok(_) => Err(GatewayError::new(
                ErrorKind::StoreUnavailable,
                "The budget ledger answered out of turn; retry shortly.",
            )),
            Err(e) => Err(GatewayError::internal(
                ErrorKind::StoreUnavailable,
                "The budget ledger is unavailable; retry shortly.",
                &e,
            )),
        }
    }

    /// Records a failure as the request's outcome.
    pub fn fail(&mut self, err: &GatewayError) {
        let r = &mut self.record.record;
        r.outcome = if err.status() < 500 && !err.kind.is_upstream() {
            Outcome::Refused
        } else {
            Outcome::Error
        };
        r.status = err.status();
        r.error_code = Some(err.code().to_string());
    }

    /// The cost of `usage` (or of what was counted) and what the ledger will charge for it: the
    /// cost capped at the reservation.
    pub fn cost(&self, usage: Option<Usage>, counted: Counted) -> (Usage, u64, u64) {
        match &self.charge {
            Some(charge) => {
                let (usage, cost) = charge.cost(usage, counted);
                let charged = if charge.reserved {
                    cost.min(charge.reserved_micros)
                } else {
                    cost
                };
                (usage, cost, charged)
            }
            None => (usage.unwrap_or_default(), 0, 0),
        }
    }

    /// The operation that ends the request, and whether it may wait until after the response
    /// (the ledger holds the opening record) or must be stored before it. `None`: nothing to do.
    pub fn ending_op(
        &mut self,
        now_ms: u64,
        usage: Option<Usage>,
        counted: Counted,
    ) -> Option<(LedgerId, LedgerOp, bool)> {
        let stage = std::mem::replace(&mut self.stage, Stage::Done);
        self.record.record.latency_ms = now_ms.saturating_sub(self.record.record.timestamp_ms);
        match stage {
            Stage::Done => None,
            Stage::Open => Some((
                self.ledger.clone(),
                LedgerOp::Record(RecordAsk {
                    now_ms,
                    record: self.record.clone(),
                }),
                false,
            )),
            Stage::Admitted => {
                let (usage, _, charged) = self.cost(usage, counted);
                if self.charge.as_ref().is_some_and(|c| c.quote.is_some()) {
                    self.record.detail.settled_usd_micros = Some(charged);
                }
                Some((
                    self.ledger.clone(),
                    LedgerOp::Commit(CommitAsk {
                        now_ms,
                        record: self.record.clone(),
                        actual_micros: charged,
                        // Counts an upstream reported: never trusted not to overflow.
                        actual_tokens: usage.input_tokens.saturating_add(usage.output_tokens),
                    }),
                    true,
                ))
            }
        }
    }

    /// Ends the request: a commit goes into `after` (it runs after the response); a record of a
    /// request that was never admitted is stored now, and its failure is the caller's to report.
    pub async fn end<H: Host>(
        &mut self,
        host: &H,
        after: &mut AfterResponse,
        usage: Option<Usage>,
    ) -> Result<(), GatewayError> {
        let now = host.now().millis();
        let ending = self.ending_op(now, usage, Counted::default());
        if let Some(record) = self.execution_record(now) {
            after.observe(record);
        }
        match ending {
            None => Ok(()),
            Some((ledger, op, true)) => {
                after.ledger(ledger, op);
                Ok(())
            }
            Some((ledger, op, false)) => match host.ledger(&ledger, &op).await {
                Ok(_) => Ok(()),
                Err(e) => Err(GatewayError::internal(
                    ErrorKind::AuditUnavailable,
                    "The audit log is unavailable; the request was not completed.",
                    &e,
                )),
            },
        }
    }
}

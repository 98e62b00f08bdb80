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
use super::lease::{self, IsolateLeases, Worst};
use super::{AfterResponse, Caller, Gateway, RequestCtx};
use crate::alerts::AlertEvent;
use crate::audit::{AuditEvent, AuditRecord, Outcome, Usage};
use crate::config::Admission;
use crate::config::ModelTarget;
use crate::error::{ErrorKind, GatewayError};
use crate::host::Host;
use crate::ledger::{AdmitAsk, CommitAsk, LeaseAsk, LedgerId, LedgerOp, LedgerReply, RecordAsk};
use crate::telemetry::{ExecutionRecord, RouteNote, Timing};
use crate::trace::TraceContext;
use std::cell::RefCell;
use std::rc::Rc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Nothing durable yet: ending means recording synchronously.
    Open,
    /// The ledger holds the opening record: ending means committing (after the response).
    Admitted,
    /// Admitted under a lease: ending means committing, drawn from the lease.
    Leased,
    /// Nothing left to do: the ledger recorded it (a refusal), or it was ended or handed off.
    Done,
}

/// The lease a request was admitted under, and what it took from it.
#[derive(Clone)]
struct LeaseUse {
    leases: Rc<RefCell<IsolateLeases>>,
    slot: String,
    lease_id: String,
    worst: Worst,
    /// Set on the request whose admission got the lease: it closes the lease after its window.
    granted_until_ms: Option<u64>,
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
    lease: Option<LeaseUse>,
    /// The caller's tenant: its webhooks get what the commit's call hands over.
    tenant: Rc<crate::config::TenantConfig>,
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
            lease: None,
            tenant: caller.tenant.clone(),
        }
    }

    /// Delivers the alerts a commit's call handed over to the caller's tenant's webhooks.
    pub async fn deliver_handed_over<H: Host>(
        &self,
        gw: &Gateway,
        host: &H,
        events: Vec<AlertEvent>,
    ) -> Vec<crate::host::HostError> {
        if events.is_empty() {
            return Vec::new();
        }
        gw.deliver_alerts(host, &self.ledger, &self.tenant.alerts, events)
            .await
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

    /// The request that got a lease closes it after its window (after the response), unless a
    /// later grant of this isolate closed it first.
    pub fn schedule_lease_close(&mut self, after: &mut AfterResponse) {
        let Some(l) = self.lease.as_mut() else {
            return;
        };
        if let Some(at_ms) = l.granted_until_ms.take() {
            after.close_lease(l.leases.clone(), l.slot.clone(), l.lease_id.clone(), at_ms);
        }
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
            lease: self.lease.take(),
            tenant: self.tenant.clone(),
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
        let leased = match caller.tenant.limits.admission {
            Admission::Leased {
                window_ms,
                max_requests,
            } if gw.settings.leases => Some((window_ms, max_requests)),
            _ => None,
        };
        if let Some((window_ms, max_requests)) = leased {
            let worst = Worst {
                micros: reserve.as_ref().map_or(0, |r| r.amount_micros),
                tokens: reserve.as_ref().map_or(0, |r| r.tokens),
            };
            return self
                .admit_leased(
                    gw,
                    host,
                    caller,
                    charge,
                    reserve,
                    worst,
                    (window_ms, max_requests),
                )
                .await;
        }
        let mut opening = self.record.clone();
        opening.record.outcome = Outcome::Partial;
        let op = LedgerOp::Admit(AdmitAsk {
            now_ms,
            expires_ms: now_ms + caller.tenant.limits.reservation_ttl_ms,
            record: opening,
            reserve: reserve.clone(),
            error_rate: caller.tenant.alerts.error_rate,
        });
        match host.ledger(&self.ledger, op).await {
            Ok(LedgerReply::Admitted { budgets, alerts }) => {
                self.alerts = alerts;
                charge.reserved = reserve.is_some();
                charge.budgets = budgets;
                self.charge = Some(charge);
                self.stage = Stage::Admitted;
                Ok(())
            }
            other => self.refused_or_failed(other, &charge),
        }
    }

    /// Admits under this isolate's lease for the caller's key, with no round trip when it has
    /// room; else asks the ledger for a new lease (closing the old one in the same call).
    #[allow(clippy::too_many_arguments)]
    async fn admit_leased<H: Host>(
        &mut self,
        gw: &Gateway,
        host: &H,
        caller: &Caller,
        mut charge: Charge,
        reserve: Option<crate::budget::ReserveAsk>,
        worst: Worst,
        (window_ms, max_requests): (u64, u64),
    ) -> Result<(), GatewayError> {
        let mut now_ms = host.now().millis();
        let slot = lease::slot(&self.ledger, caller.key.key_id.as_str());
        let policy = self.record.record.policy_version.clone();
        // Another request of this isolate may be asking for this key's lease: take from the lease
        // it gets rather than ask for one more. Look again after each answer (a small lease may
        // be used up by earlier waiters while a next request asks), all within one bound from the
        // first wait (an asking request may be gone).
        let waited_from_ms = now_ms;
        let mut taken;
        loop {
            taken = gw
                .leases
                .borrow_mut()
                .take(&slot, policy.as_deref(), worst, now_ms);
            let asking = match taken {
                None => gw.leases.borrow().in_flight(&slot, now_ms),
                Some(_) => None,
            };
            let Some(asking) = asking else { break };
            if now_ms.saturating_sub(waited_from_ms) >= lease::ASK_WAIT_MS {
                break;
            }
            while !asking.answered()
                && now_ms.saturating_sub(asking.started_ms) < lease::ASK_WAIT_MS
                && now_ms.saturating_sub(waited_from_ms) < lease::ASK_WAIT_MS
            {
                host.sleep(lease::ASK_POLL_MS).await;
                now_ms = host.now().millis();
            }
        }
        let use_of = |lease_id: String, granted_until_ms: Option<u64>| LeaseUse {
            leases: gw.leases.clone(),
            slot: slot.clone(),
            lease_id,
            worst,
            granted_until_ms,
        };
        if let Some((lease_id, budgets)) = taken {
            charge.reserved = reserve.is_some();
            charge.budgets = budgets;
            self.charge = Some(charge);
            self.lease = Some(use_of(lease_id, None));
            self.stage = Stage::Leased;
            return Ok(());
        }
        let asking = lease::AskingMark::new(&gw.leases, &slot, now_ms);
        let mut random = [0u8; 12];
        host.fill_random(&mut random);
        let lease_id = crate::hexstr::prefixed("lease_", &random);
        let close = gw.leases.borrow_mut().closes_for(&self.ledger, &slot);
        let mut opening = self.record.clone();
        opening.record.outcome = Outcome::Partial;
        let op = LedgerOp::Lease(LeaseAsk {
            now_ms,
            lease_id: lease_id.clone(),
            record: opening,
            reserve: reserve.clone(),
            want_requests: max_requests,
            usable_ms: window_ms,
            grace_ms: caller.tenant.limits.reservation_ttl_ms,
            close: close.clone(),
            error_rate: caller.tenant.alerts.error_rate,
        });
        let reply = host.ledger(&self.ledger, op).await;
        if !matches!(
            reply,
            Ok(LedgerReply::Leased { .. } | LedgerReply::Refused { .. })
        ) {
            // The call may or may not have reached the ledger: send its closes again, and close
            // the lease it asked for as unused (a close of a lease never granted changes nothing).
            let mut again = close;
            again.push(crate::ledger::LeaseClose {
                lease_id,
                admitted: 0,
            });
            gw.leases.borrow_mut().reclose(&self.ledger, again);
        }
        match reply {
            Ok(LedgerReply::Leased {
                grant,
                budgets,
                alerts,
            }) => {
                self.alerts = alerts;
                let lease = use_of(grant.lease_id.clone(), Some(grant.usable_until_ms));
                gw.leases.borrow_mut().install(
                    &slot,
                    self.ledger.clone(),
                    grant,
                    budgets.clone(),
                    policy,
                    worst,
                );
                charge.reserved = reserve.is_some();
                charge.budgets = budgets;
                self.charge = Some(charge);
                self.lease = Some(lease);
                self.stage = Stage::Leased;
                // The grant is installed: the requests waiting for it take from it now.
                drop(asking);
                Ok(())
            }
            other => self.refused_or_failed(other, &charge),
        }
    }

    /// A ledger answer that did not admit: the refusal as the client's 429, or a 503.
    fn refused_or_failed(
        &mut self,
        reply: Result<LedgerReply, crate::host::HostError>,
        charge: &Charge,
    ) -> Result<(), GatewayError> {
        match reply {
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
                    record: self.final_record(),
                }),
                false,
            )),
            Stage::Admitted | Stage::Leased => {
                let (usage, _, charged) = self.cost(usage, counted);
                if self.charge.as_ref().is_some_and(|c| c.quote.is_some()) {
                    self.record.detail.settled_usd_micros = Some(charged);
                }
                // Counts an upstream reported: never trusted not to overflow.
                let actual_tokens = usage.input_tokens.saturating_add(usage.output_tokens);
                let lease = self.lease.as_ref().filter(|_| stage == Stage::Leased);
                if let Some(l) = lease {
                    let used = Worst {
                        micros: charged,
                        tokens: actual_tokens,
                    };
                    l.leases
                        .borrow_mut()
                        .give_back(&l.slot, &l.lease_id, l.worst, used);
                }
                let lease_id = lease.map(|l| l.lease_id.clone());
                Some((
                    self.ledger.clone(),
                    LedgerOp::Commit(CommitAsk {
                        now_ms,
                        record: self.final_record(),
                        actual_micros: charged,
                        actual_tokens,
                        lease: lease_id,
                    }),
                    true,
                ))
            }
        }
    }

    /// The record for the operation that ends the request: moved out unless the execution
    /// record (exported telemetry) still reads it; after the ending nothing else does.
    fn final_record(&mut self) -> AuditEvent {
        if self.export.is_some() {
            return self.record.clone();
        }
        let spent = AuditRecord::started("", 0, "", String::new(), "");
        std::mem::replace(&mut self.record, spent.into())
    }

    /// Ends a request refused before admission with its record sent after the response, in the
    /// isolate's next call to the ledger (group commit), not stored before the reply: for
    /// refusals whoever holds a dead or under-scoped key can repeat at will, so that they cost
    /// the tenant's ledger one call per group rather than one per attempt. Such a record is
    /// only a refusal's (nothing served, nothing charged): lost only with its isolate or call.
    pub fn end_refused_after_response<H: Host>(&mut self, host: &H, after: &mut AfterResponse) {
        let now = host.now().millis();
        let ending = self.ending_op(now, None, Counted::default());
        if let Some(record) = self.execution_record(now) {
            after.observe(record);
        }
        if let Some((ledger, op, _)) = ending {
            after.ledger(ledger, op, self.tenant.clone());
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
                after.ledger(ledger, op, self.tenant.clone());
                Ok(())
            }
            Some((ledger, op, false)) => match host.ledger(&ledger, op).await {
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

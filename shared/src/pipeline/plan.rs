//! Routing a request: the plan (with the circuits' states it was made with) and the price of the
//! target that ends up serving.

use std::collections::HashMap;

use futures_util::future::join;

use super::cached::Lookup;
use super::{AfterResponse, Caller, Charge, Exchange, Gateway};
use crate::config::ModelTarget;
use crate::error::{ErrorKind, GatewayError};
use crate::host::Host;
use crate::response_cache::CacheKey;
use crate::routing::circuit::CircuitState;
use crate::routing::{self, Plan, RequestMeta};

pub(super) struct Planned {
    pub plan: Plan,
    pub states: HashMap<String, CircuitState>,
}

impl Planned {
    /// The first candidate's target (the one the budget is reserved for).
    pub fn first<'c>(&self, caller: &'c Caller) -> Result<&'c ModelTarget, GatewayError> {
        self.plan
            .candidates
            .first()
            .and_then(|k| caller.tenant.models.get(k))
            .ok_or_else(|| {
                GatewayError::new(ErrorKind::Internal, "The routing plan has no target.")
            })
    }
}

impl Gateway {
    /// Counts the request against its rate limits, routes it, and admits it against the first
    /// candidate (the budget is reserved at that target's price, with `max_output` tokens as the
    /// worst case). The route and the first target go on the record. A request the response
    /// cache covers reads its entry (keyed by that first target) alongside the admission.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn route_and_admit<'c, H: Host>(
        &self,
        host: &H,
        caller: &'c Caller,
        meta: &RequestMeta<'_>,
        exchange: &mut Exchange,
        after: &mut AfterResponse,
        request_bytes: u64,
        max_output: impl FnOnce(&ModelTarget) -> Option<u64>,
        cache: Option<&mut Lookup<'_>>,
    ) -> Result<(Planned, &'c ModelTarget), GatewayError> {
        self.count_request(caller);
        let planned = self.plan(host, caller, meta, after).await?;
        exchange.timing.mark("plan", host.now().millis());
        exchange.record.detail.route = planned.plan.route_id.clone();
        exchange.routing.rule = planned.plan.rule;
        exchange.routing.strategy = Some(planned.plan.strategy);
        exchange.routing.workload = planned.plan.workload.clone();
        let first = planned.first(caller)?;
        exchange.set_target(first);
        let max_output = max_output(first);
        let admitted = match cache {
            None => {
                exchange
                    .admit(self, host, caller, first, request_bytes, max_output)
                    .await
            }
            Some(lookup) => {
                lookup.key = CacheKey::derive_with(
                    &caller.tenant.tenant_id,
                    &self.region.id,
                    first,
                    lookup.kind,
                    lookup.request,
                    |bytes| host.sha256(bytes),
                );
                let admit = exchange.admit(self, host, caller, first, request_bytes, max_output);
                let (admitted, note) = join(admit, lookup.read(self, host)).await;
                if admitted.is_ok() {
                    exchange.record.detail.cache = note;
                }
                admitted
            }
        };
        exchange.timing.mark("admission", host.now().millis());
        // Alerts the ledger handed over for delivery go out after the response, admitted or not.
        exchange.deliver_alerts(caller, after);
        exchange.schedule_lease_close(after);
        admitted?;
        Ok((planned, first))
    }

    pub(super) async fn plan<H: Host>(
        &self,
        host: &H,
        caller: &Caller,
        meta: &RequestMeta<'_>,
        after: &mut AfterResponse,
    ) -> Result<Planned, GatewayError> {
        let targets = routing::targets_of(&caller.tenant, meta);
        let states = self.circuit_states(host, caller, &targets, after).await;
        let mut random = [0u8; 8];
        host.fill_random(&mut random);
        let plan = routing::plan(
            &caller.tenant,
            &self.region,
            meta,
            &|k: &str| {
                states
                    .get(k)
                    .copied()
                    .unwrap_or(CircuitState::Closed { failures: 0 })
            },
            host.now().millis(),
            u64::from_le_bytes(random),
        )?;
        Ok(Planned { plan, states })
    }

    /// Prices the charge at the target that served. A target without a price keeps the first
    /// candidate's (a fallback is never charged nothing).
    pub(super) async fn requote<H: Host>(
        &self,
        host: &H,
        charge: &mut Charge,
        target: &ModelTarget,
    ) {
        if let Ok(prices) = self.prices(host).await {
            let quote = prices.quote(
                target.provider.as_str(),
                &target.upstream_model,
                target.endpoint.host_str().unwrap_or(""),
                host.now().millis(),
            );
            if quote.is_some() {
                charge.quote = quote;
            }
        }
    }
}

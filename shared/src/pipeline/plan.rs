//! Routing a request: the plan (with the circuits' states it was made with) and the price of the
//! target that ends up serving.

use std::collections::HashMap;

use super::{AfterResponse, Caller, Charge, Gateway};
use crate::config::ModelTarget;
use crate::error::{ErrorKind, GatewayError};
use crate::host::Host;
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

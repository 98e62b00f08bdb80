//! `GET /v1/usage`: the caller's budgets (spend and remaining per period) and rate-limit state,
//! from the tenant's ledger (summed over its shards when it has several).

use std::collections::BTreeMap;

use std::rc::Rc;

use serde_json::{json, Value};

use super::{json_reply, Caller, Gateway};
use crate::apikey::{KeyRecord, KeyStatus};
use crate::budget::{BudgetStatus, RateStatus, UsageReport};
use crate::config::AppliesTo;
use crate::error::{ErrorKind, GatewayError};
use crate::host::Host;
use crate::ids::{KeyId, TenantId};
use crate::ledger::{LedgerId, LedgerOp, LedgerReply, UsageAsk};
use crate::pipeline::http::Reply;

pub(super) async fn report<H: Host>(
    gw: &Gateway,
    host: &H,
    caller: &Caller,
) -> Result<Reply<H::Body>, GatewayError> {
    let body = usage_body(gw, host, caller).await?;
    Ok(json_reply(200, crate::json_view::value_bytes(&body)))
}

impl Gateway {
    /// A tenant's own budgets (tenant-wide and per tag) and tenant rate limits, without any
    /// key's: the admin plane's usage read-out.
    pub async fn tenant_usage<H: Host>(
        &self,
        host: &H,
        tenant: &TenantId,
    ) -> Result<serde_json::Value, GatewayError> {
        let config = self.tenant(host, tenant).await?;
        let tags: Vec<String> = config
            .budgets
            .iter()
            .filter_map(|b| match &b.applies_to {
                AppliesTo::Tag(t) => Some(t.clone()),
                _ => None,
            })
            .collect();
        // A stand-in key that carries every tag, so each tag's budget is read; its own
        // (per-key) lines are left out below.
        let caller = Caller {
            key: Rc::new(KeyRecord {
                schema_version: 1,
                key_id: KeyId("_tenant".into()),
                tenant_id: tenant.clone(),
                status: KeyStatus::Active,
                scopes: Vec::new(),
                tags,
                key_hash: String::new(),
                label: None,
                created_ms: None,
                expires_ms: None,
            }),
            tenant: config.clone(),
        };
        let mut body = usage_body(self, host, &caller).await?;
        if let Some(obj) = body.as_object_mut() {
            obj.remove("key_id");
            if let Some(Value::Array(list)) = obj.get_mut("budgets") {
                list.retain(|b| {
                    let id = b.get("budget_id").and_then(Value::as_str);
                    config.budgets.iter().any(|c| {
                        Some(c.id.as_str()) == id
                            && matches!(c.applies_to, AppliesTo::Tenant | AppliesTo::Tag(_))
                    })
                });
            }
            if let Some(Value::Object(rates)) = obj.get_mut("rate_limits") {
                for list in rates.values_mut() {
                    if let Value::Array(list) = list {
                        list.retain(|r| r.get("scope").and_then(Value::as_str) == Some("tenant"));
                    }
                }
            }
        }
        Ok(body)
    }
}

async fn usage_body<H: Host>(
    gw: &Gateway,
    host: &H,
    caller: &Caller,
) -> Result<Value, GatewayError> {
    let prices = gw.prices(host).await?;
    let shards = caller.tenant.limits.ledger_shards;
    let mut merged: Option<UsageReport> = None;
    for shard in 0..shards {
        let (requests_per_minute, tokens_per_minute) = Gateway::rate_limits(caller, shard);
        let ask = UsageAsk {
            now_ms: host.now().millis(),
            budgets: Gateway::budget_lines(caller, shard),
            requests_per_minute,
            tokens_per_minute,
        };
        let ledger = LedgerId::new(caller.tenant.tenant_id.as_str(), shard, shards);
        let report = match host.ledger(&ledger, LedgerOp::Usage(ask)).await {
            Ok(LedgerReply::Usage(r)) => r,
            Ok(_) => return Err(unavailable("unexpected reply".into())),
            Err(e) => return Err(unavailable(e.to_string())),
        };
        merged = Some(match merged {
            None => report,
            Some(m) => merge(m, report),
        });
    }
    let report = merged.unwrap_or(UsageReport {
        budgets: Vec::new(),
        requests_per_minute: Vec::new(),
        tokens_per_minute: Vec::new(),
    });
    let budgets: Vec<BudgetStatus> = report
        .budgets
        .into_iter()
        .map(|mut b| {
            // Alerts and excess of the whole budget, not of one shard's share.
            let used = b.spent_micros + b.reserved_micros;
            let percents = caller
                .tenant
                .budgets
                .iter()
                .find(|c| c.id == b.budget_id)
                .map(|c| c.alert_percents.clone())
                .unwrap_or_default();
            b.alerts_reached = percents
                .into_iter()
                .filter(|p| u128::from(used) * 100 >= u128::from(*p) * u128::from(b.limit_micros))
                .collect();
            b.exceeded = used > b.limit_micros;
            b
        })
        .collect();
    let body = json!({
        "object": "usage",
        "tenant_id": caller.tenant.tenant_id,
        "key_id": caller.key.key_id,
        "price_table_version": prices.version,
        "ledger_shards": shards,
        "budgets": budgets,
        "rate_limits": {
            "requests_per_minute": report.requests_per_minute,
            "tokens_per_minute": report.tokens_per_minute,
        },
    });
    Ok(body)
}

/// `why` goes to the operator's log only.
fn unavailable(why: String) -> GatewayError {
    GatewayError::internal(
        ErrorKind::StoreUnavailable,
        "The budget ledger is unavailable; retry shortly.",
        &why,
    )
}

/// Sums two shards' reports: same budget (by ledger key) or limit (by scope) add up.
fn merge(a: UsageReport, b: UsageReport) -> UsageReport {
    let mut budgets: BTreeMap<String, BudgetStatus> = BTreeMap::new();
    for s in a.budgets.into_iter().chain(b.budgets) {
        match budgets.get_mut(&s.key) {
            Some(m) => {
                m.limit_micros += s.limit_micros;
                m.spent_micros += s.spent_micros;
                m.reserved_micros += s.reserved_micros;
                m.remaining_micros += s.remaining_micros;
            }
            None => {
                budgets.insert(s.key.clone(), s);
            }
        }
    }
    let rates = |x: Vec<RateStatus>, y: Vec<RateStatus>| {
        let mut out: Vec<RateStatus> = Vec::new();
        for r in x.into_iter().chain(y) {
            match out.iter_mut().find(|o| o.scope == r.scope) {
                Some(o) => {
                    o.per_minute += r.per_minute;
                    o.used += r.used;
                }
                None => out.push(r),
            }
        }
        out
    };
    UsageReport {
        budgets: budgets.into_values().collect(),
        requests_per_minute: rates(a.requests_per_minute, b.requests_per_minute),
        tokens_per_minute: rates(a.tokens_per_minute, b.tokens_per_minute),
    }
}

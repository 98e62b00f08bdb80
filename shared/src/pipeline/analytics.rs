//! Usage analytics and alerts for the admin plane: spend, tokens, errors and latency by hour or
//! day, grouped by model, provider, key and tag, from the tenant's ledgers' rollups (summed over
//! shards), and the tenant's latest alerts with their delivery state. From the ledger, not logs:
//! the same figures the budgets are enforced with.

use serde_json::{json, Map, Value};

use super::Gateway;
use crate::error::{ErrorKind, GatewayError};
use crate::host::Host;
use crate::ids::TenantId;
use crate::ledger::insights::{DAY_MS, HOUR_MS};
use crate::ledger::{AnalyticsAsk, AnalyticsRow, Dimension, LedgerId, LedgerOp, LedgerReply};

/// Most hourly rows a range may span (a month); longer ranges use days.
const MAX_HOURLY_RANGE_MS: u64 = 31 * DAY_MS;
const MAX_RANGE_MS: u64 = 400 * DAY_MS;

/// An analytics query as the admin API takes it: `from_ms`, `to_ms` (default: the last day),
/// `bucket` (`hour` | `day`), `group_by` (comma list of model, provider, key, tag).
pub fn analytics_ask(query: &str, now_ms: u64) -> Result<AnalyticsAsk, GatewayError> {
    let mut from_ms = None;
    let mut to_ms = None;
    let mut bucket_ms = HOUR_MS;
    let mut group_by = Vec::new();
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        let number = |name: &str| {
            v.parse::<u64>().map_err(|_| {
                GatewayError::invalid_request(
                    name,
                    format!("{name} must be milliseconds since the epoch"),
                )
            })
        };
        match k.as_ref() {
            "from_ms" => from_ms = Some(number("from_ms")?),
            "to_ms" => to_ms = Some(number("to_ms")?),
            "bucket" => {
                bucket_ms = match v.as_ref() {
                    "hour" => HOUR_MS,
                    "day" => DAY_MS,
                    _ => {
                        return Err(GatewayError::invalid_request(
                            "bucket",
                            "bucket must be hour or day",
                        ))
                    }
                }
            }
            "group_by" => {
                for name in v.split(',').filter(|n| !n.is_empty()) {
                    let d = Dimension::parse(name).ok_or_else(|| {
                        GatewayError::invalid_request(
                            "group_by",
                            format!("cannot group by {name:?}; use model, provider, key or tag"),
                        )
                    })?;
                    if !group_by.contains(&d) {
                        group_by.push(d);
                    }
                }
            }
            other => {
                return Err(GatewayError::invalid_request(
                    other,
                    format!("unknown parameter {other:?}"),
                ))
            }
        }
    }
    let to_ms = to_ms.unwrap_or(now_ms);
    let from_ms = from_ms.unwrap_or(to_ms.saturating_sub(DAY_MS));
    if from_ms >= to_ms {
        return Err(GatewayError::invalid_request(
            "from_ms",
            "from_ms must be before to_ms",
        ));
    }
    let span = to_ms - from_ms;
    if span > MAX_RANGE_MS || (bucket_ms == HOUR_MS && span > MAX_HOURLY_RANGE_MS) {
        return Err(GatewayError::invalid_request(
            "to_ms",
            "the range may span at most 31 days in hours, 400 days in days",
        ));
    }
    Ok(AnalyticsAsk {
        from_ms,
        to_ms,
        bucket_ms,
        group_by,
    })
}

fn unavailable(e: impl std::fmt::Display) -> GatewayError {
    GatewayError::internal(
        ErrorKind::StoreUnavailable,
        "The tenant's ledger is unavailable; retry shortly.",
        &e.to_string(),
    )
}

fn round(v: Option<f64>) -> Value {
    v.map_or(Value::Null, |v| json!((v * 10.0).round() / 10.0))
}

impl Gateway {
    async fn ledgers_of(
        &self,
        host: &impl Host,
        tenant: &TenantId,
    ) -> Result<Vec<LedgerId>, GatewayError> {
        let config = self.tenant(host, tenant).await?;
        let shards = config.limits.ledger_shards;
        Ok((0..shards)
            .map(|s| LedgerId::new(tenant.as_str(), s, shards))
            .collect())
    }

    /// The analytics API's body for `ask`, over every shard of the tenant's ledger.
    pub async fn tenant_analytics<H: Host>(
        &self,
        host: &H,
        tenant: &TenantId,
        ask: AnalyticsAsk,
    ) -> Result<Value, GatewayError> {
        let mut rows: Vec<AnalyticsRow> = Vec::new();
        for ledger in self.ledgers_of(host, tenant).await? {
            match host.ledger(&ledger, LedgerOp::Analytics(ask.clone())).await {
                Ok(LedgerReply::Analytics { rows: part }) => {
                    for r in part {
                        match rows.iter_mut().find(|o| o.same_group(&r)) {
                            Some(o) => o.merge(&r),
                            None => rows.push(r),
                        }
                    }
                }
                Ok(_) => return Err(unavailable("unexpected reply")),
                Err(e) => return Err(unavailable(e)),
            }
        }
        rows.sort_by(|a, b| {
            (a.start_ms, &a.model, &a.provider, &a.key_id, &a.tags).cmp(&(
                b.start_ms,
                &b.model,
                &b.provider,
                &b.key_id,
                &b.tags,
            ))
        });
        let rows: Vec<Value> = rows.into_iter().map(row_json).collect();
        Ok(json!({
            "object": "analytics",
            "tenant_id": tenant,
            "from_ms": ask.from_ms,
            "to_ms": ask.to_ms,
            "bucket": if ask.bucket_ms == DAY_MS { "day" } else { "hour" },
            "group_by": ask.group_by,
            "rows": rows,
        }))
    }

    /// The tenant's latest alerts (newest first) with their delivery state, over every shard.
    pub async fn tenant_alerts<H: Host>(
        &self,
        host: &H,
        tenant: &TenantId,
        limit: usize,
    ) -> Result<Value, GatewayError> {
        let mut all = Vec::new();
        for ledger in self.ledgers_of(host, tenant).await? {
            match host.ledger(&ledger, LedgerOp::Alerts { limit }).await {
                Ok(LedgerReply::Alerts { alerts }) => all.extend(alerts),
                Ok(_) => return Err(unavailable("unexpected reply")),
                Err(e) => return Err(unavailable(e)),
            }
        }
        all.sort_by_key(|a| std::cmp::Reverse(a.event.at_ms));
        // Shards raise the same budget event under the same id: list it once.
        let mut seen = std::collections::BTreeSet::new();
        all.retain(|a| seen.insert(a.event.id.clone()));
        all.truncate(limit);
        let data: Vec<Value> = all
            .into_iter()
            .map(|a| {
                json!({
                    "id": a.event.id,
                    "type": a.event.kind,
                    "at_ms": a.event.at_ms,
                    "tenant_id": a.event.tenant_id,
                    "detail": a.event.detail,
                    "delivery": {"status": a.status, "attempts": a.attempts},
                })
            })
            .collect();
        Ok(json!({"object": "list", "tenant_id": tenant, "data": data}))
    }
}

fn row_json(r: AnalyticsRow) -> Value {
    let f = &r.figures;
    let mut out = Map::new();
    out.insert("start_ms".into(), json!(r.start_ms));
    out.insert("width_ms".into(), json!(r.width_ms));
    if let Some(m) = &r.model {
        out.insert("model".into(), json!(m));
    }
    if let Some(p) = &r.provider {
        out.insert("provider".into(), json!(p));
    }
    if let Some(k) = &r.key_id {
        out.insert("key_id".into(), json!(k));
    }
    if let Some(t) = &r.tags {
        out.insert("tags".into(), json!(t));
        out.insert("tag".into(), json!(t.join(",")));
    }
    out.insert("requests".into(), json!(f.requests));
    out.insert("errors".into(), json!(f.errors));
    out.insert("input_tokens".into(), json!(f.input_tokens));
    out.insert("output_tokens".into(), json!(f.output_tokens));
    out.insert("cost_usd_micros".into(), json!(f.cost_usd_micros));
    out.insert("cache_hits".into(), json!(f.cache_hits));
    out.insert("fallbacks".into(), json!(f.fallbacks));
    out.insert("retries".into(), json!(f.retries));
    out.insert("guardrail_hits".into(), json!(f.guardrail_hits));
    out.insert(
        "latency_ms".into(),
        json!({"p50": round(f.latency_ms.quantile(0.5)), "p95": round(f.latency_ms.quantile(0.95))}),
    );
    out.insert(
        "ttft_ms".into(),
        if f.ttft_ms.count() == 0 {
            Value::Null
        } else {
            json!({"p50": round(f.ttft_ms.quantile(0.5)), "p95": round(f.ttft_ms.quantile(0.95))})
        },
    );
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_parse_with_defaults_and_refuse_bad_input() {
        let a = analytics_ask("", 10 * DAY_MS).expect("defaults");
        assert_eq!(
            (a.from_ms, a.to_ms, a.bucket_ms),
            (9 * DAY_MS, 10 * DAY_MS, HOUR_MS)
        );
        let a = analytics_ask(
            "from_ms=0&to_ms=86400000&bucket=day&group_by=model,key,model",
            0,
        )
        .expect("valid");
        assert_eq!(a.group_by, vec![Dimension::Model, Dimension::Key]);
        for (q, param) in [
            ("from_ms=x", "from_ms"),
            ("bucket=week", "bucket"),
            ("group_by=colour", "group_by"),
            ("from_ms=5&to_ms=5", "from_ms"),
            ("from_ms=0&to_ms=3000000000", "to_ms"),
            ("limit=3", "limit"),
        ] {
            let e = analytics_ask(q, 10 * DAY_MS).expect_err(q);
            assert_eq!(e.status(), 400, "{q}");
            assert_eq!(e.param.as_deref(), Some(param), "{q}");
        }
    }
}

//! `GET /v1/usage`: the caller's budgets (spend and remaining per period) and rate-limit state,
//! straight from the tenant's ledger.

use serde_json::json;

use super::{json_reply, Caller, Gateway};
use crate::budget::{LedgerOp, LedgerReply, UsageAsk};
use crate::error::{ErrorKind, GatewayError};
use crate::host::Host;
use crate::http::Reply;

pub(super) async fn report<H: Host>(
    gw: &Gateway,
    host: &H,
    caller: &Caller,
) -> Result<Reply<H::Body>, GatewayError> {
    let budgets = Gateway::budget_lines(caller);
    let (requests_per_minute, tokens_per_minute) = Gateway::rate_limits(caller);
    let prices = gw.prices(host).await?;
    let ask = UsageAsk {
        now_ms: host.now().millis(),
        budgets,
        requests_per_minute,
        tokens_per_minute,
    };
    let unavailable = |why: String| {
        GatewayError::new(
            ErrorKind::StoreUnavailable,
            format!("The budget ledger is unavailable ({why}); retry shortly."),
        )
    };
    let report = match host
        .ledger(&caller.tenant.tenant_id, &LedgerOp::Usage(ask))
        .await
    {
        Ok(LedgerReply::Usage(r)) => r,
        Ok(_) => return Err(unavailable("unexpected reply".into())),
        Err(e) => return Err(unavailable(e.to_string())),
    };
    let body = json!({
        "object": "usage",
        "tenant_id": caller.tenant.tenant_id,
        "key_id": caller.key.key_id,
        "price_table_version": prices.version,
        "budgets": report.budgets,
        "rate_limits": {
            "requests_per_minute": report.requests_per_minute,
            "tokens_per_minute": report.tokens_per_minute,
        },
    });
    Ok(json_reply(200, body.to_string().into_bytes()))
}

//! Budgets and rate limits in the request path: price the worst case and say what to reserve in
//! the tenant's ledger before the upstream call ([`super::Exchange::admit`] sends it).

use std::rc::Rc;

use super::{Caller, Gateway};
use crate::audit::Usage;
use crate::budget::{BudgetLine, BudgetStatus, Mode, PriceTable, Quote, Refusal, ReserveAsk};
use crate::config::AppliesTo;
use crate::config::ModelTarget;
use crate::error::{ErrorKind, GatewayError};
use crate::host::Host;
use crate::ledger::{shard_of, share, LedgerId};
use crate::ratelimit::RateLimit;

/// The KV name of an operator-supplied price table (else the built-in one is used).
pub const PRICE_TABLE_RECORD: &str = "prices:current";

/// Output tokens assumed for an unpriced model without `max_tokens`, for token-rate limits.
const DEFAULT_OUTPUT_BOUND: u64 = 4096;

/// The most output tokens a request may ask of a model the price table does not list (the largest
/// output limit of any current model is 128k; this leaves room without letting a count overflow).
pub const MAX_OUTPUT_TOKENS: u64 = 1 << 20;

/// What a request was priced at and reserved, for its settle and its response headers.
#[derive(Debug, Clone)]
pub struct Charge {
    /// The price in force; `None` for an unpriced model (allowed only without budgets).
    pub quote: Option<Quote>,
    pub price_table_version: String,
    /// Whether the ledger holds a reservation to settle.
    pub reserved: bool,
    pub reserved_micros: u64,
    /// Size of the request body: the fallback input-token count when usage is missing.
    pub request_bytes: u64,
    pub budgets: Vec<BudgetStatus>,
}

/// What the relay counted of a stream, for a charge when the upstream reported no usage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counted {
    pub content_events: u64,
    pub content_bytes: u64,
}

impl Counted {
    /// Output tokens for what was counted, roughly four bytes of text per token (as the
    /// providers document for English), at least one per content event.
    pub fn output_tokens_estimate(&self) -> u64 {
        self.content_events.max(self.content_bytes.div_ceil(4))
    }
}

impl Charge {
    /// The cost of `usage` (or, if the upstream reported none, of what was counted: never zero
    /// for a response that carried content).
    pub fn cost(&self, usage: Option<Usage>, counted: Counted) -> (Usage, u64) {
        let usage = usage.unwrap_or(Usage {
            // Roughly four bytes of text per token, as the providers document for English.
            input_tokens: self.request_bytes.div_ceil(4),
            output_tokens: counted.output_tokens_estimate(),
            cached_input_tokens: 0,
            cache_write_tokens: 0,
        });
        let cost = self.quote.as_ref().map(|q| q.cost(&usage)).unwrap_or(0);
        (usage, cost)
    }

    /// Response headers describing budgets: reserved cost, alerts reached, soft budgets exceeded.
    pub fn headers(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if !self.reserved {
            return out;
        }
        out.push((
            crate::headers::RESERVED.into(),
            self.reserved_micros.to_string(),
        ));
        let alerts: Vec<String> = self
            .budgets
            .iter()
            .filter_map(|b| {
                b.alerts_reached
                    .iter()
                    .max()
                    .map(|p| format!("{}={p}", b.budget_id))
            })
            .collect();
        if !alerts.is_empty() {
            out.push((crate::headers::BUDGET_ALERTS.into(), alerts.join(", ")));
        }
        let exceeded: Vec<&str> = self
            .budgets
            .iter()
            .filter(|b| b.exceeded && b.mode == Mode::Soft)
            .map(|b| b.budget_id.as_str())
            .collect();
        if !exceeded.is_empty() {
            out.push((crate::headers::BUDGET_EXCEEDED.into(), exceeded.join(", ")));
        }
        out
    }
}

impl Gateway {
    /// The price table in force: KV `prices:current` if the operator wrote one, else built-in.
    pub(crate) async fn prices<H: Host>(&self, host: &H) -> Result<Rc<PriceTable>, GatewayError> {
        let now = host.now();
        if let Some(t) = self.prices.borrow().get(PRICE_TABLE_RECORD, now) {
            return t.map_err(|msg| GatewayError::new(ErrorKind::PriceTableInvalid, msg));
        }
        let loaded = host.kv_get(PRICE_TABLE_RECORD).await.map_err(|e| {
            GatewayError::internal(
                ErrorKind::StoreUnavailable,
                "The price table store is unavailable; retry shortly.",
                &e,
            )
        })?;
        let entry = match loaded {
            None => Ok(Rc::new(PriceTable::builtin())),
            Some(bytes) => PriceTable::parse(&bytes).map(Rc::new).map_err(|errs| {
                format!(
                    "The operator's price table is invalid ({} problem(s), first: {}); budgets cannot be enforced.",
                    errs.0.len(),
                    errs.0.first().map(|e| e.to_string()).unwrap_or_default()
                )
            }),
        };
        self.prices
            .borrow_mut()
            .put(PRICE_TABLE_RECORD.into(), entry.clone(), now);
        entry.map_err(|msg| GatewayError::new(ErrorKind::PriceTableInvalid, msg))
    }

    /// The caller's ledger shard (its key always maps to the same one).
    pub(crate) fn ledger_of(caller: &Caller) -> (LedgerId, u32) {
        let shards = caller.tenant.limits.ledger_shards;
        let shard = shard_of(caller.key.key_id.as_str(), shards);
        (
            LedgerId::new(caller.tenant.tenant_id.as_str(), shard, shards),
            shard,
        )
    }

    /// The budgets that apply to the caller, as held by ledger shard `shard`: the key's own
    /// budgets in full on its shard (none elsewhere), tenant- and tag-wide ones as that shard's share.
    pub(crate) fn budget_lines(caller: &Caller, shard: u32) -> Vec<BudgetLine> {
        let shards = caller.tenant.limits.ledger_shards;
        let own = shard_of(caller.key.key_id.as_str(), shards) == shard;
        caller
            .tenant
            .budgets
            .iter()
            .filter_map(|b| {
                let mut line = b.line_for(&caller.key.key_id, &caller.key.tags)?;
                match b.applies_to {
                    AppliesTo::Tenant | AppliesTo::Tag(_) => {
                        line.limit_micros = share(line.limit_micros, shard, shards);
                        Some(line)
                    }
                    AppliesTo::EachKey | AppliesTo::Key(_) => own.then_some(line),
                }
            })
            .collect()
    }

    /// (requests per minute, tokens per minute) limits that apply to the caller on `shard`.
    pub(crate) fn rate_limits(caller: &Caller, shard: u32) -> (Vec<RateLimit>, Vec<RateLimit>) {
        let l = &caller.tenant.limits;
        let own = shard_of(caller.key.key_id.as_str(), l.ledger_shards) == shard;
        let pick = |tenant: Option<u64>, key: Option<u64>| {
            let mut out = Vec::new();
            if let Some(n) = key.filter(|_| own) {
                out.push(RateLimit {
                    scope: format!("key:{}", caller.key.key_id),
                    per_minute: n,
                });
            }
            if let Some(n) = tenant {
                out.push(RateLimit {
                    scope: "tenant".into(),
                    per_minute: share(n, shard, l.ledger_shards),
                });
            }
            out
        };
        (
            pick(l.requests_per_minute, l.key_requests_per_minute),
            pick(l.tokens_per_minute, l.key_tokens_per_minute),
        )
    }

    /// Prices the request's worst case at `target`: the charge to settle later, and what to
    /// reserve against every budget and limit that applies (`None` when none does).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn price<H: Host>(
        &self,
        host: &H,
        request_id: &str,
        caller: &Caller,
        target: &ModelTarget,
        request_bytes: u64,
        max_output_tokens: Option<u64>,
        choices: u64,
    ) -> Result<(Charge, Option<ReserveAsk>), GatewayError> {
        let (_, shard) = Self::ledger_of(caller);
        let budgets = Self::budget_lines(caller, shard);
        let (requests_per_minute, tokens_per_minute) = Self::rate_limits(caller, shard);
        let prices = self.prices(host).await?;
        let host_name = target.endpoint.host_str().unwrap_or("");
        let now = host.now().millis();
        let quote = prices.quote(
            target.provider.as_str(),
            &target.upstream_model,
            host_name,
            now,
        );
        if quote.is_none() && !budgets.is_empty() {
            return Err(GatewayError::new(
                ErrorKind::PriceUnknown,
                format!(
                    "Model {} has no price in table {}, so its budgets cannot be enforced; the platform team must add it.",
                    target.upstream_model, prices.version
                ),
            ));
        }
        // Worst case: every request byte a token (tokenizers emit at most one token per byte of
        // text), and the full output allowance.
        let model_limit = quote
            .as_ref()
            .map_or(MAX_OUTPUT_TOKENS, |q| q.price.max_output_tokens);
        if let Some(asked) = max_output_tokens.filter(|n| *n > model_limit) {
            // Also what keeps every amount the ledger sees far below 2^53.
            return Err(GatewayError::new(
                ErrorKind::InvalidRequest,
                format!(
                    "max_tokens is {asked}, over the output limit of {} ({model_limit} tokens).",
                    target.upstream_model
                ),
            )
            .with_param("max_tokens"));
        }
        // Every choice is billed: `choices` (at most `MAX_CHOICES`) times the allowance, which the
        // check above keeps at or under 2^20, so this stays far below 2^53.
        let output_bound = max_output_tokens
            .or(quote.as_ref().map(|q| q.price.max_output_tokens))
            .unwrap_or(DEFAULT_OUTPUT_BOUND)
            .saturating_mul(choices.max(1));
        let worst = Usage {
            input_tokens: request_bytes,
            output_tokens: output_bound,
            cached_input_tokens: 0,
            cache_write_tokens: 0,
        };
        let amount = quote.as_ref().map(|q| q.cost(&worst)).unwrap_or(0);
        let charge = Charge {
            quote,
            price_table_version: prices.version.clone(),
            reserved: false,
            reserved_micros: amount,
            request_bytes,
            budgets: Vec::new(),
        };
        if budgets.is_empty() && requests_per_minute.is_empty() && tokens_per_minute.is_empty() {
            return Ok((charge, None));
        }
        let ask = ReserveAsk {
            request_id: request_id.to_string(),
            now_ms: now,
            amount_micros: amount,
            tokens: request_bytes + output_bound,
            requests: 1,
            budgets,
            requests_per_minute,
            tokens_per_minute,
            expires_ms: now + caller.tenant.limits.reservation_ttl_ms,
        };
        Ok((charge, Some(ask)))
    }
}

pub(super) fn refusal_error(refusal: &Refusal, amount: u64) -> GatewayError {
    match refusal {
        Refusal::Budget { budget_id } => GatewayError::new(
            ErrorKind::BudgetExceeded,
            format!(
                "Budget {budget_id:?} has no room for this request (worst case {amount} micro-USD); lower max_tokens or wait for the budget period to reset."
            ),
        )
        .with_param(budget_id.clone()),
        Refusal::Requests { scope } => {
            let which = if scope == "tenant" { "tenant" } else { "API key" };
            GatewayError::new(
                ErrorKind::RateLimited,
                format!("Rate limit reached: the {which}'s requests per minute are used up."),
            )
        }
        Refusal::Tokens { scope } => {
            let which = if scope == "tenant" { "tenant" } else { "API key" };
            GatewayError::new(
                ErrorKind::TokenRateLimited,
                format!("Rate limit reached: the {which}'s tokens per minute are used up (this request may use up to its max_tokens)."),
            )
        }
    }
}

//! Every header ASC adds to a response or reads from a request, by name: one list, documented in
//! the README ("Headers"; a test checks the README names each one).

/// Response: the request's id (also in its audit record).
pub const REQUEST_ID: &str = "x-request-id";
/// Response: the region that served the request.
pub const REGION: &str = "x-asc-region";
/// Response: the stable error code of a failed request.
pub const ERROR_CODE: &str = "x-asc-error-code";
/// Response: the route (alias) that chose the target.
pub const ROUTE: &str = "x-asc-route";
/// Response: the target (model key) that served.
pub const TARGET: &str = "x-asc-target";
/// Response: how many upstream attempts the request made.
pub const ATTEMPTS: &str = "x-asc-attempts";
/// Response: the provider that served.
pub const PROVIDER: &str = "x-asc-provider";
/// Response: the model name sent upstream.
pub const SERVED_MODEL: &str = "x-asc-served-model";
/// Response: what the request is charged, in micro-USD (the cost, capped at the reservation).
pub const COST: &str = "x-asc-cost-usd-micros";
/// Response: the worst case reserved before the upstream call, in micro-USD.
pub const RESERVED: &str = "x-asc-reserved-usd-micros";
/// Response: budgets past an alert threshold (`<budget>=<percent>`).
pub const BUDGET_ALERTS: &str = "x-asc-budget-alerts";
/// Response: soft budgets exceeded.
pub const BUDGET_EXCEEDED: &str = "x-asc-budget-exceeded";
/// Response: guardrail decisions (detector, action, count; never the matched text).
pub const GUARDRAILS: &str = "x-asc-guardrails";
/// Response: `hit`, `miss` or `bypass` when the tenant's response cache covers the request.
pub const CACHE: &str = "x-asc-cache";
/// Request: the workload class a route's rules may match on.
pub const WORKLOAD: &str = "x-asc-workload";

/// Every name above.
pub const ALL: [&str; 15] = [
    REQUEST_ID,
    REGION,
    ERROR_CODE,
    ROUTE,
    TARGET,
    ATTEMPTS,
    PROVIDER,
    SERVED_MODEL,
    COST,
    RESERVED,
    BUDGET_ALERTS,
    BUDGET_EXCEEDED,
    GUARDRAILS,
    CACHE,
    WORKLOAD,
];

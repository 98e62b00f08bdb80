//! What the pipeline asks of a tenant ledger, and what it answers: one JSON message each way.
//! Amounts travel inside JSON text end to end (the host never parses it), so 64-bit integers stay
//! exact across the JavaScript boundary.

use serde::{Deserialize, Serialize};

use super::insights::{AnalyticsAsk, AnalyticsRow, Delivery, LoggedAlert};
use super::lease::{LeaseAsk, LeaseClose, LeaseGrant};
use crate::alerts::AlertEvent;
use crate::audit::AuditEvent;
use crate::budget::{BudgetLine, BudgetStatus, Refusal, ReserveAsk, UsageReport};
use crate::config::ErrorRateRule;
use crate::ratelimit::RateLimit;

/// Which ledger holds a request's counters and its write-ahead record: the tenant's, or one
/// shard of it.
///
/// A tenant whose traffic would overload one ledger object (a Durable Object serves ~1,000
/// requests/s, so shard from ~500) is split into `shards` ledgers. A key always maps to the same
/// shard, so its own budgets and limits are exact there; tenant- and tag-wide budgets and limits
/// are divided into fixed shares, one per shard, so their sum never exceeds the limit (a skewed
/// load may be refused by its shard while another still has room).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LedgerId(pub String);

impl LedgerId {
    pub fn new(tenant: &str, shard: u32, shards: u32) -> Self {
        if shards <= 1 {
            LedgerId(tenant.to_string())
        } else {
            LedgerId(format!("{tenant}#{shard}"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The tenant whose ledger (or ledger shard) this is: tenant ids have no `#`.
    pub fn tenant(&self) -> crate::ids::TenantId {
        let tenant = self.0.split('#').next().unwrap_or_default();
        crate::ids::TenantId(tenant.to_string())
    }
}

impl std::fmt::Display for LedgerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The shard a key's requests go to.
pub fn shard_of(key_id: &str, shards: u32) -> u32 {
    if shards <= 1 {
        0
    } else {
        crc32fast::hash(key_id.as_bytes()) % shards
    }
}

/// Shard `shard`'s share of a tenant-wide `limit`: the shares of all shards add up to `limit`.
pub fn share(limit: u64, shard: u32, shards: u32) -> u64 {
    let n = u64::from(shards.max(1));
    limit / n + u64::from(u64::from(shard) < limit % n)
}

/// One operation on a tenant ledger. Each is applied atomically and made durable before the
/// ledger answers.
/// Serialized with its tag (`op`) first; read back by `ops_de.rs`, which takes the rest of the
/// object straight into the variant when the tag comes first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum LedgerOp {
    /// Before the upstream call: store the request's opening record (its write-ahead entry) and,
    /// when the tenant has budgets or rate limits, reserve the worst case. Refused: the ledger
    /// records the refusal itself.
    Admit(AdmitAsk),
    /// Before the upstream call, instead of `Admit`: reserve an allowance for many requests of
    /// this isolate at once (see [`super::lease`]), or refuse the asking request.
    Lease(LeaseAsk),
    /// The isolate admits no more under a lease.
    CloseLease { now_ms: u64, close: LeaseClose },
    /// After the response: settle the actual cost, drop the opening record and queue the final one.
    Commit(CommitAsk),
    /// A request that ended before admission (refused by the gateway, read-only endpoints): queue
    /// its record. A record whose request was opened with `Open` also ends that opening.
    Record(RecordAsk),
    /// Before an action that changes state outside the ledger (an admin change): store its record
    /// write-ahead, as an admission stores an opening record, without a reservation and without
    /// touching the tenant's policy (alert rules). Its `Record` ends it; if none comes by
    /// `expires_ms`, the ledger chains the opening record as partial.
    Open(OpenAsk),
    /// Budgets and rate windows as they stand, for the usage API.
    Usage(UsageAsk),
    /// Usage rollups for a time range, for the analytics API.
    Analytics(AnalyticsAsk),
    /// The latest alerts and where their delivery stands.
    Alerts { limit: usize },
    /// Events an isolate saw (a circuit opening or closing): raised unless already raised.
    Raise {
        now_ms: u64,
        events: Vec<AlertEvent>,
    },
    /// Claim the alerts due for delivery, nothing else: the scheduled sweep's call for a tenant
    /// whose alerts no request carried ([`super::TenantLedger::alerts_sweep_due_ms`]).
    ClaimAlerts { now_ms: u64 },
    /// How the deliveries of claimed alerts went.
    Delivered {
        now_ms: u64,
        results: Vec<(String, Delivery)>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdmitAsk {
    pub now_ms: u64,
    /// When an unfinished request is given up on: charged at its reservation and recorded as
    /// partial from its opening record.
    pub expires_ms: u64,
    /// What is known before the upstream call (outcome `partial` until committed).
    pub record: AuditEvent,
    /// The worst case to hold, when the tenant has budgets or rate limits.
    pub reserve: Option<ReserveAsk>,
    /// The tenant's error-rate alert rule, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate: Option<ErrorRateRule>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitAsk {
    pub now_ms: u64,
    /// The request's final record.
    pub record: AuditEvent,
    /// The actual cost and tokens, to settle the reservation with.
    pub actual_micros: u64,
    pub actual_tokens: u64,
    /// The lease the request was admitted under (no opening record then: the charge is drawn
    /// from the lease).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenAsk {
    pub now_ms: u64,
    /// When the action is given up on: its opening record is chained as partial.
    pub expires_ms: u64,
    /// What is known before the action (outcome `partial` until its `Record` comes).
    pub record: AuditEvent,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordAsk {
    pub now_ms: u64,
    pub record: AuditEvent,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageAsk {
    pub now_ms: u64,
    pub budgets: Vec<BudgetLine>,
    pub requests_per_minute: Vec<RateLimit>,
    pub tokens_per_minute: Vec<RateLimit>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum LedgerReply {
    Admitted {
        budgets: Vec<BudgetStatus>,
        /// Alerts due for delivery, claimed for the admitting isolate to send.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        alerts: Vec<AlertEvent>,
    },
    Refused {
        refusal: Refusal,
        retry_after_ms: Option<u64>,
        budgets: Vec<BudgetStatus>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        alerts: Vec<AlertEvent>,
    },
    Leased {
        grant: LeaseGrant,
        budgets: Vec<BudgetStatus>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        alerts: Vec<AlertEvent>,
    },
    Committed {
        /// What the ledger charged: the actual cost capped at the reservation; `None` when the
        /// request held no reservation.
        charged_micros: Option<u64>,
        /// False when the request was no longer open (it had expired and was recorded as partial).
        on_time: bool,
        /// Alerts due for delivery, claimed for the isolate that sent the call, when this commit
        /// was its last operation ([`super::TenantLedger::end_call`]).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        alerts: Vec<AlertEvent>,
    },
    Recorded,
    Usage(UsageReport),
    // Struct variants: an internally tagged enum cannot carry a bare sequence.
    Analytics {
        rows: Vec<AnalyticsRow>,
    },
    Alerts {
        alerts: Vec<LoggedAlert>,
    },
    /// What `ClaimAlerts` claimed (none when nothing is due).
    Claimed {
        alerts: Vec<AlertEvent>,
    },
    Done,
}

impl LedgerReply {
    /// The alerts this reply handed over for delivery.
    pub fn into_alerts(self) -> Vec<AlertEvent> {
        match self {
            LedgerReply::Admitted { alerts, .. }
            | LedgerReply::Refused { alerts, .. }
            | LedgerReply::Leased { alerts, .. }
            | LedgerReply::Committed { alerts, .. }
            | LedgerReply::Claimed { alerts } => alerts,
            _ => Vec::new(),
        }
    }
}

#[path = "ops_de.rs"]
mod ops_de;

//! Money and limits: the price table, budget periods, and the per-tenant ledger of reservations.

pub mod ledger;
pub mod period;
pub mod prices;
pub mod stored;

pub use ledger::{
    shard_of, share, BudgetLine, BudgetStatus, Expired, Ledger, LedgerId, LedgerOp, LedgerReply,
    Mode, Refusal, ReserveAsk, ReserveReply, SettleAsk, SettleReply, UsageAsk, UsageReport,
};
pub use period::Period;
pub use prices::{PriceTable, Quote};

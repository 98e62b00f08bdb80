//! Money and limits: the price table, budget periods, and the per-tenant ledger of reservations.

pub mod ledger;
pub mod period;
pub mod prices;

pub use ledger::{
    BudgetLine, BudgetStatus, Expired, Ledger, LedgerOp, LedgerReply, Mode, Refusal, ReserveAsk,
    ReserveReply, SettleAsk, SettleReply, UsageAsk, UsageReport,
};
pub use period::Period;
pub use prices::{PriceTable, Quote};

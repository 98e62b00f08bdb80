//! Money and limits: the price table, budget periods, and the budget arithmetic (reservations,
//! settles, rate windows) a tenant ledger applies.

pub mod budgets;
pub mod period;
pub mod prices;

pub use budgets::{
    BudgetLine, BudgetStatus, Budgets, Expired, Mode, RateStatus, Refusal, Reservation, ReserveAsk,
    ReserveReply, SettleAsk, SettleReply, Totals, UsageReport,
};
pub use period::Period;
pub use prices::{PriceTable, Quote};

//! The isolate's side of admission leases (`limits.admission = "leased"`; the ledger's side and
//! the guarantees are in [`crate::ledger`]'s `lease` module). One lease per ledger and key:
//! a request takes its worst case from the lease's allowance with no round trip; its commit
//! after the response gives back what it did not use. When the lease is used up or its window
//! ends, the next request asks the ledger for a new one and closes the old in the same call; the
//! request that got a lease closes it after its window (after its response), if nobody has.
//! While one request of the isolate asks for a key's lease, the others that find no room wait
//! for its answer instead of each asking for a lease of their own.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use crate::budget::BudgetStatus;
use crate::ledger::{LeaseClose, LeaseGrant, LedgerId};

/// A lease this isolate admits under.
#[derive(Debug, Clone)]
struct Held {
    grant: LeaseGrant,
    ledger: LedgerId,
    micros_left: Option<u64>,
    tokens_left: Option<u64>,
    requests_left: u64,
    admitted: u64,
    /// The budgets as the ledger reported them at the grant, for response headers.
    budgets: Vec<BudgetStatus>,
    /// The config version it was granted under: a changed config takes a new lease.
    policy: Option<String>,
}

/// A request's worst case, as taken from a lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Worst {
    pub micros: u64,
    pub tokens: u64,
}

/// The leases of this isolate, and those it stopped using and has not yet closed.
#[derive(Debug, Default)]
pub(crate) struct IsolateLeases {
    held: HashMap<String, Held>,
    closing: HashMap<String, (LedgerId, LeaseClose)>,
    /// Lease calls in flight, by slot.
    asking: HashMap<String, Rc<Asking>>,
}

/// How long a request waits for another request's lease call before asking on its own: a call
/// whose request was cancelled never answers, and its mark is ignored after this long.
pub(crate) const ASK_WAIT_MS: u64 = 1_000;
/// How often a waiting request looks whether the call was answered. It looks, rather than being
/// woken by the request that asked: on Workers a request's code must resume from its own I/O
/// (a timer here), never from another request's, or its own I/O is refused.
pub(crate) const ASK_POLL_MS: u64 = 1;

/// A lease call in flight for a slot.
#[derive(Debug)]
pub(crate) struct Asking {
    pub started_ms: u64,
    answered: Cell<bool>,
}

impl Asking {
    /// Whether the call was answered (or failed, or its request went away).
    pub fn answered(&self) -> bool {
        self.answered.get()
    }
}

/// Marks a slot's lease call as in flight until dropped: after the grant is installed, or when
/// the call failed or its request was dropped.
pub(crate) struct AskingMark {
    leases: Rc<RefCell<IsolateLeases>>,
    slot: String,
    asking: Rc<Asking>,
}

impl AskingMark {
    pub fn new(leases: &Rc<RefCell<IsolateLeases>>, slot: &str, now_ms: u64) -> Self {
        let asking = Rc::new(Asking {
            started_ms: now_ms,
            answered: Cell::new(false),
        });
        leases
            .borrow_mut()
            .asking
            .insert(slot.to_string(), asking.clone());
        AskingMark {
            leases: leases.clone(),
            slot: slot.to_string(),
            asking,
        }
    }
}

impl Drop for AskingMark {
    fn drop(&mut self) {
        // Never held across an await, so free unless a drop happens inside another borrow; then
        // the entry stays, answered, and the next request that asks replaces it.
        if let Ok(mut leases) = self.leases.try_borrow_mut() {
            if leases
                .asking
                .get(&self.slot)
                .is_some_and(|a| Rc::ptr_eq(a, &self.asking))
            {
                leases.asking.remove(&self.slot);
            }
        }
        self.asking.answered.set(true);
    }
}

/// The table key of `key_id`'s lease on `ledger`.
pub(crate) fn slot(ledger: &LedgerId, key_id: &str) -> String {
    format!("{}\u{0}{key_id}", ledger.as_str())
}

impl IsolateLeases {
    /// Takes `worst` from the lease in `slot`, if it is usable and has room: the lease id and
    /// its budgets. A lease past its window (or granted under another config) stops admitting.
    pub fn take(
        &mut self,
        slot: &str,
        policy: Option<&str>,
        worst: Worst,
        now_ms: u64,
    ) -> Option<(String, Vec<BudgetStatus>)> {
        let held = self.held.get_mut(slot)?;
        let usable = now_ms < held.grant.usable_until_ms && held.policy.as_deref() == policy;
        if !usable {
            self.retire(slot);
            return None;
        }
        let fits = held.requests_left >= 1
            && held.micros_left.is_none_or(|m| m >= worst.micros)
            && held.tokens_left.is_none_or(|t| t >= worst.tokens);
        if !fits {
            return None;
        }
        held.requests_left -= 1;
        held.admitted += 1;
        if let Some(m) = held.micros_left.as_mut() {
            *m -= worst.micros;
        }
        if let Some(t) = held.tokens_left.as_mut() {
            *t -= worst.tokens;
        }
        Some((held.grant.lease_id.clone(), held.budgets.clone()))
    }

    /// Leases to close with the next call to `ledger`: those the isolate stopped using, plus the
    /// one in `slot` (about to be replaced).
    pub fn closes_for(&mut self, ledger: &LedgerId, slot: &str) -> Vec<LeaseClose> {
        self.retire(slot);
        let ids: Vec<String> = self
            .closing
            .iter()
            .filter(|(_, (l, _))| l == ledger)
            .map(|(id, _)| id.clone())
            .collect();
        ids.into_iter()
            .filter_map(|id| self.closing.remove(&id).map(|(_, c)| c))
            .collect()
    }

    /// Installs a new grant in `slot` with its first request (`worst`) already taken.
    pub fn install(
        &mut self,
        slot: &str,
        ledger: LedgerId,
        grant: LeaseGrant,
        budgets: Vec<BudgetStatus>,
        policy: Option<String>,
        worst: Worst,
    ) {
        // Another request of this isolate got a lease for the slot meanwhile: retire it.
        self.retire(slot);
        let held = Held {
            micros_left: grant.micros.map(|m| m.saturating_sub(worst.micros)),
            tokens_left: grant.tokens.map(|t| t.saturating_sub(worst.tokens)),
            requests_left: grant.requests.saturating_sub(1),
            admitted: 1,
            grant,
            ledger,
            budgets,
            policy,
        };
        self.held.insert(slot.to_string(), held);
    }

    /// A request under `lease_id` ended having used `used` of its `worst` case: the rest can
    /// admit others (requests are not given back: each counts against per-minute limits).
    pub fn give_back(&mut self, slot: &str, lease_id: &str, worst: Worst, used: Worst) {
        let Some(held) = self.held.get_mut(slot) else {
            return;
        };
        if held.grant.lease_id != lease_id {
            return;
        }
        if let Some(m) = held.micros_left.as_mut() {
            *m = m.saturating_add(worst.micros.saturating_sub(used.micros));
        }
        if let Some(t) = held.tokens_left.as_mut() {
            *t = t.saturating_add(worst.tokens.saturating_sub(used.tokens));
        }
    }

    /// The close of `lease_id` once its window is over, unless it was already sent (with a
    /// later grant): the timer of the request that got the lease sends it.
    pub fn close_after_window(
        &mut self,
        slot: &str,
        lease_id: &str,
    ) -> Option<(LedgerId, LeaseClose)> {
        if self
            .held
            .get(slot)
            .is_some_and(|h| h.grant.lease_id == lease_id)
        {
            self.retire(slot);
        }
        self.closing.remove(lease_id)
    }

    /// Closes to send again: the call that carried them failed.
    pub fn reclose(&mut self, ledger: &LedgerId, closes: Vec<LeaseClose>) {
        for close in closes {
            self.closing
                .insert(close.lease_id.clone(), (ledger.clone(), close));
        }
    }

    /// The lease call in flight for `slot`: not yet answered, and started less than
    /// ASK_WAIT_MS ago (an answered mark is never returned, so a waiter cannot spin on one).
    pub fn in_flight(&self, slot: &str, now_ms: u64) -> Option<Rc<Asking>> {
        self.asking
            .get(slot)
            .filter(|a| !a.answered() && now_ms.saturating_sub(a.started_ms) < ASK_WAIT_MS)
            .cloned()
    }

    /// Stops admitting under the lease in `slot`; its close waits for the next call.
    fn retire(&mut self, slot: &str) {
        if let Some(held) = self.held.remove(slot) {
            self.closing.insert(
                held.grant.lease_id.clone(),
                (
                    held.ledger,
                    LeaseClose {
                        lease_id: held.grant.lease_id,
                        admitted: held.admitted,
                    },
                ),
            );
        }
    }

    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.held.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(id: &str, requests: u64, micros: Option<u64>, until: u64) -> LeaseGrant {
        LeaseGrant {
            lease_id: id.into(),
            requests,
            micros,
            tokens: None,
            usable_until_ms: until,
        }
    }

    const W: Worst = Worst {
        micros: 100,
        tokens: 10,
    };

    #[test]
    fn admits_within_the_allowance_and_reuses_what_requests_gave_back() {
        let mut leases = IsolateLeases::default();
        let ledger = LedgerId("t".into());
        let s = slot(&ledger, "k1");
        leases.install(
            &s,
            ledger.clone(),
            grant("L1", 10, Some(300), 1000),
            vec![],
            None,
            W,
        );
        assert!(leases.take(&s, None, W, 10).is_some());
        assert!(leases.take(&s, None, W, 10).is_some());
        // 300 micros: three worst cases, all taken.
        assert!(leases.take(&s, None, W, 10).is_none());
        leases.give_back(
            &s,
            "L1",
            W,
            Worst {
                micros: 40,
                tokens: 10,
            },
        );
        // 60 back: not enough for another worst case of 100...
        assert!(leases.take(&s, None, W, 10).is_none());
        leases.give_back(
            &s,
            "L1",
            W,
            Worst {
                micros: 0,
                tokens: 0,
            },
        );
        // ...until 160 are free.
        assert!(leases.take(&s, None, W, 10).is_some());
        // The window ended: the lease retires and is closed with the 4 it admitted.
        assert!(leases.take(&s, None, W, 1000).is_none());
        let closes = leases.closes_for(&ledger, &s);
        assert_eq!(
            closes,
            vec![LeaseClose {
                lease_id: "L1".into(),
                admitted: 4
            }]
        );
        assert_eq!(leases.held(), 0);
        assert_eq!(leases.close_after_window(&s, "L1"), None, "closed once");
    }

    #[test]
    fn a_new_config_or_request_count_ends_a_lease() {
        let mut leases = IsolateLeases::default();
        let ledger = LedgerId("t".into());
        let s = slot(&ledger, "k1");
        leases.install(
            &s,
            ledger.clone(),
            grant("L1", 2, None, 1000),
            vec![],
            Some("v1".into()),
            W,
        );
        assert!(leases.take(&s, Some("v1"), W, 1).is_some());
        assert!(
            leases.take(&s, Some("v1"), W, 1).is_none(),
            "2 requests granted, 2 taken"
        );
        leases.install(
            &s,
            ledger.clone(),
            grant("L2", 5, None, 1000),
            vec![],
            Some("v1".into()),
            W,
        );
        assert!(leases.take(&s, Some("v2"), W, 1).is_none());
        let mut closes = leases.closes_for(&ledger, &s);
        closes.sort_by(|a, b| a.lease_id.cmp(&b.lease_id));
        assert_eq!(
            closes,
            vec![
                LeaseClose {
                    lease_id: "L1".into(),
                    admitted: 2
                },
                LeaseClose {
                    lease_id: "L2".into(),
                    admitted: 1
                },
            ]
        );
    }

    #[test]
    fn the_window_timer_closes_a_lease_nobody_replaced() {
        let mut leases = IsolateLeases::default();
        let ledger = LedgerId("t".into());
        let s = slot(&ledger, "k1");
        leases.install(
            &s,
            ledger.clone(),
            grant("L1", 5, None, 1000),
            vec![],
            None,
            W,
        );
        let (to, close) = leases
            .close_after_window(&s, "L1")
            .expect("closed by its timer");
        assert_eq!(to, ledger);
        assert_eq!(close.admitted, 1);
        assert_eq!(leases.held(), 0);
    }

    #[test]
    fn a_lease_call_marks_its_slot_until_dropped_and_not_past_the_bound() {
        let leases = Rc::new(RefCell::new(IsolateLeases::default()));
        let s = slot(&LedgerId("t".into()), "k1");
        let mark = AskingMark::new(&leases, &s, 100);
        let asking = leases.borrow().in_flight(&s, 100).expect("marked");
        assert!(leases
            .borrow()
            .in_flight(&s, 100 + ASK_WAIT_MS - 1)
            .is_some());
        assert!(leases.borrow().in_flight(&s, 100 + ASK_WAIT_MS).is_none());
        assert!(!asking.answered());
        // An answered mark left in the table (a drop inside another borrow) is not in flight.
        asking.answered.set(true);
        assert!(leases.borrow().in_flight(&s, 100).is_none());
        asking.answered.set(false);
        drop(mark);
        assert!(asking.answered());
        assert!(leases.borrow().in_flight(&s, 100).is_none());
    }

    #[test]
    fn an_old_mark_replaced_by_a_newer_call_is_not_cleared_by_its_drop() {
        let leases = Rc::new(RefCell::new(IsolateLeases::default()));
        let s = slot(&LedgerId("t".into()), "k1");
        let old = AskingMark::new(&leases, &s, 0);
        let _new = AskingMark::new(&leases, &s, ASK_WAIT_MS + 5);
        drop(old);
        assert!(leases.borrow().in_flight(&s, ASK_WAIT_MS + 5).is_some());
    }
}

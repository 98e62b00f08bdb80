//! Pacing kept in the database, so that it outlives an instance. Spin retires an instance after
//! `--max-instance-reuse-count` requests (128 under `spin up`; 1, an instance per request, where a
//! host runs it that way), and pacing kept in instance memory starts over with each instance: every
//! new instance forwarded the ledgers its first request wrote and looked for a due audit flush at
//! once. With an instance per request that was every request: ~40% of the component's CPU per
//! request, and a forward of one record at a time (`docs/ARCHITECTURE.md`, the Spin adapter).
//!
//! A claim is one statement: it succeeds for one caller per window, across every instance and
//! replica on the database. It is an optimisation only: what it paces is safe to run twice
//! (forwarding and flushing are idempotent), and what it defers waits durably in the ledger row
//! or the stream's buffer. A claim lost on a ledger marks the ledger owed: the losing instance
//! may be retired with its request, so whichever instance next wins the due-flush check (once a
//! second per deployment) forwards every owed ledger whose window has ended, and the scheduled
//! flush endpoint forwards everything regardless.

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;

use asc_core::host::HostError;
use asc_core::ledger::LedgerId;
use asc_core::pipeline::AfterResponse;

use crate::app::{self, Prepared};
use crate::platform::{Platform, SqlValue};

/// A deployment looks for a due audit flush at most this often (three queries per stream), in
/// whichever instance claims it ([`DUE_CHECK`]); the flush endpoint's scheduler ships regardless.
pub const DUE_CHECK_MS: u64 = 1_000;

/// One row per paced thing: the running claim's end and holder, and whether a claim was lost
/// to it since (`owed`: work the loser left to whoever comes next).
pub const SCHEMA: &[&str] = &["CREATE TABLE IF NOT EXISTS asc_claims (
        what TEXT PRIMARY KEY,
        due_ms INTEGER NOT NULL,
        holder INTEGER NOT NULL,
        owed INTEGER NOT NULL DEFAULT 0
    )"];

/// The claim that paces looking for a due audit flush.
pub const DUE_CHECK: &str = "due-check";

const FORWARD: &str = "forward ";

/// The claim that paces forwarding `ledger`'s outbox.
pub fn forward_of(ledger: &LedgerId) -> String {
    format!("{FORWARD}{}", ledger.as_str())
}

/// What a claim found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// This caller holds it until `now_ms + every_ms`: do the work.
    Won,
    /// Another caller holds it until then: try again from that time. Whoever waits for it
    /// should not wait a whole window of its own: on Spin the ledger row holds the records
    /// until they are forwarded, and every operation rewrites the row.
    HeldUntil(u64),
}

/// Claims `what` until `now_ms + every_ms` if no claim on it is still running: `Won` for exactly
/// one caller per window (told apart by a random token), else when the running claim ends (and
/// `what` is marked owed). One statement either way. A clock that went back a little leaves an
/// earlier claim standing until its end; a claim ending more than two windows out can only come
/// from a clock that read ahead, and is taken over rather than waited for.
pub async fn claim<P: Platform>(
    p: &P,
    what: &str,
    now_ms: u64,
    every_ms: u64,
) -> Result<Claim, HostError> {
    let mut token = [0u8; 8];
    p.fill_random(&mut token);
    // SQLite integers are signed 64-bit: keep the token in range.
    let token = u64::from_le_bytes(token) >> 1;
    let rows = p
        .sql(
            "INSERT INTO asc_claims (what, due_ms, holder) VALUES (?1, ?3, ?4)
             ON CONFLICT (what) DO UPDATE SET
                 due_ms = CASE WHEN asc_claims.due_ms <= ?2 OR asc_claims.due_ms > ?5
                     THEN excluded.due_ms ELSE asc_claims.due_ms END,
                 holder = CASE WHEN asc_claims.due_ms <= ?2 OR asc_claims.due_ms > ?5
                     THEN excluded.holder ELSE asc_claims.holder END,
                 owed = CASE WHEN asc_claims.due_ms <= ?2 OR asc_claims.due_ms > ?5
                     THEN 0 ELSE 1 END
             RETURNING due_ms, holder",
            &[
                what.into(),
                now_ms.into(),
                now_ms.saturating_add(every_ms).into(),
                token.into(),
                now_ms.saturating_add(every_ms.saturating_mul(2)).into(),
            ],
        )
        .await?;
    match rows.first().map(Vec::as_slice) {
        Some([SqlValue::Integer(due), SqlValue::Integer(holder)]) => {
            if u64::try_from(*holder) == Ok(token) {
                Ok(Claim::Won)
            } else {
                Ok(Claim::HeldUntil(u64::try_from(*due).unwrap_or(0)))
            }
        }
        _ => Err(HostError::Store(format!(
            "pacing claim on {what}: unexpected reply"
        ))),
    }
}

/// The ledgers another instance lost the forwarding claim on, whose window has ended.
pub async fn owed_ledgers<P: Platform>(p: &P, now_ms: u64) -> Result<Vec<LedgerId>, HostError> {
    let rows = p
        .sql(
            "SELECT what FROM asc_claims WHERE owed = 1 AND due_ms <= ?1",
            &[now_ms.into()],
        )
        .await?;
    Ok(rows
        .iter()
        .filter_map(|row| row.first().and_then(SqlValue::as_str))
        .filter_map(|what| what.strip_prefix(FORWARD))
        .map(|id| LedgerId(id.to_string()))
        .collect())
}

/// What an instance remembers between its requests to pace the work after them: when it next
/// tries each kind (before that, no statement at all), and the ledgers its requests wrote that
/// it has not forwarded.
#[derive(Debug, Default)]
pub struct InstancePacing {
    next_forward_ms: Cell<u64>,
    next_due_check_ms: Cell<u64>,
    unforwarded: RefCell<BTreeSet<LedgerId>>,
}

impl InstancePacing {
    /// Ledgers written by this instance's requests and not yet forwarded by it.
    pub fn unforwarded(&self) -> Vec<LedgerId> {
        self.unforwarded.borrow().iter().cloned().collect()
    }
}

/// The work after a response, paced: the request's own work (its commit) always; forwarding the
/// ledgers written since, at most once per `audit_forward_ms` per ledger across the deployment
/// (their records wait durably in the ledger; the flush endpoint's sweep forwards every ledger
/// regardless); a look for a due flush at most once per [`DUE_CHECK_MS`]. Each is gated first by
/// the instance's own clock and then by a claim in the database. A ledger another instance
/// forwarded within the window is kept and tried again when that window ends, not a window of
/// this instance's own: the Spin ledger row holds the records until forwarded, and every
/// operation rewrites it (forwarding half as often cost 5-7% of throughput, measured). The
/// claim also marks it owed, for an instance that does not live that long: the winner of the
/// due-flush check forwards owed ledgers.
pub async fn after_response<P: Platform>(
    prepared: &Prepared<P>,
    after: AfterResponse,
    pacing: &InstancePacing,
) -> Vec<String> {
    let (deployment, host) = (&prepared.deployment, &prepared.host);
    let p = host.platform();
    let mut failures = app::run_deferred(prepared, after).await;
    pacing.unforwarded.borrow_mut().extend(host.take_touched());
    let now = p.now_ms();
    let every = deployment.forward_delay_ms;
    if now >= pacing.next_forward_ms.get() {
        let mut next = now.saturating_add(every);
        let ledgers = std::mem::take(&mut *pacing.unforwarded.borrow_mut());
        let mut claimed = Vec::new();
        for ledger in ledgers {
            // A failed claim forwards anyway: the claim only saves work.
            match claim(p, &forward_of(&ledger), now, every).await {
                Ok(Claim::HeldUntil(until)) => {
                    // Forwarded by another instance within the window, perhaps before this
                    // request's record: kept for when that window ends.
                    next = next.min(until);
                    pacing.unforwarded.borrow_mut().insert(ledger);
                }
                Ok(Claim::Won) | Err(_) => claimed.push(ledger),
            }
        }
        pacing.next_forward_ms.set(next);
        failures.extend(app::forward_ledgers(deployment, host, claimed).await);
    }
    if now >= pacing.next_due_check_ms.get() {
        let claimed = claim(p, DUE_CHECK, now, DUE_CHECK_MS).await;
        pacing.next_due_check_ms.set(match claimed {
            Ok(Claim::HeldUntil(until)) => until,
            Ok(Claim::Won) | Err(_) => now.saturating_add(DUE_CHECK_MS),
        });
        if !matches!(claimed, Ok(Claim::HeldUntil(_))) {
            // What losers of a forwarding claim left behind (they may be gone with their request).
            match owed_ledgers(p, now).await {
                Ok(owed) => {
                    let mut won = Vec::new();
                    for ledger in owed {
                        let claimed = claim(p, &forward_of(&ledger), now, every).await;
                        if !matches!(claimed, Ok(Claim::HeldUntil(_))) {
                            won.push(ledger);
                        }
                    }
                    failures.extend(app::forward_ledgers(deployment, host, won).await);
                }
                Err(why) => failures.push(format!("owed ledgers: {why}")),
            }
            if let Err(why) = app::flush_if_due(deployment, host).await {
                failures.push(format!("audit flush: {why}"));
            }
        }
    }
    failures
}

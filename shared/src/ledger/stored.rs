//! Ledger operations against a shared store that offers compare-and-swap rather than an
//! exclusive owner (Spin SQLite, any SQL database several instances write to). A Durable Object
//! owns its ledger and applies one operation at a time; here every instance may run an
//! operation at once, so each one loads the ledger with its version, applies the operation in
//! memory and stores the result only if the version has not moved (one conditional statement,
//! `UPDATE ... WHERE id = ? AND version = ?`). A lost race changes nothing and is re-run against
//! the fresh state, so the arithmetic stays [`TenantLedger::apply`]'s and the invariants hold.

use super::insights::{Rollup, Rollups};
use super::{LedgerId, LedgerOp, LedgerReply, TenantLedger};
use crate::error::HostError;

/// How many times an operation is re-run after losing a race before the host gives up (the
/// pipeline then fails closed). Each loss means another operation on the same ledger committed.
pub const MAX_ATTEMPTS: usize = 32;

/// A ledger's stored form: its version (1 after the first write) and its JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLedger {
    pub version: u64,
    pub json: String,
}

/// What [`LedgerStore::load_unless`] found.
pub enum Loaded {
    /// The row still has the version asked about.
    Unchanged,
    Row(Option<StoredLedger>),
}

/// What a host's ledger table must offer.
#[allow(async_fn_in_trait)]
pub trait LedgerStore {
    /// The stored ledger, `None` if it was never written.
    async fn load(&self, id: &LedgerId) -> Result<Option<StoredLedger>, HostError>;
    /// Stores `json` as version `expected + 1` if the stored version is still `expected`
    /// (`0`: nothing stored yet), in one atomic statement. Returns whether it did.
    async fn swap(&self, id: &LedgerId, expected: u64, json: &str) -> Result<bool, HostError>;
    /// Called after the `lost`-th lost race (1, 2, ...) before the operation is re-run. A host
    /// whose instances race for real waits here (briefly, with jitter): without a pause, 32
    /// instances re-running at once on one tenant's row kept colliding until they gave up (seen
    /// under `spin up`). The default re-runs at once.
    async fn contended(&self, id: &LedgerId, lost: usize) {
        let _ = (id, lost);
    }
    /// Whether `id` is contended now (a race on it was lost lately): the first attempt then takes
    /// the lock as well, instead of finding out by losing. By default never.
    fn contention_expected(&self, id: &LedgerId) -> bool {
        let _ = id;
        false
    }
    /// Called before an attempt after a lost race (and before the first while
    /// [`LedgerStore::contention_expected`]): a store with transactions may take its write lock
    /// here (waiting its turn) so the attempt's swap cannot lose; returns whether it did. The
    /// loop stays correct without it: the lock only stops many instances colliding over and over.
    async fn lock(&self) -> bool {
        false
    }
    /// Releases what `lock` took (called only after it returned `true`).
    async fn unlock(&self) {}
    /// Takes the state this host last stored or read for `id`, with its version, if it keeps
    /// one (it is handed back through [`LedgerStore::remember`]): when the row still has that
    /// version ([`LedgerStore::load_unless`]) the operation applies to it without reading and
    /// parsing the row. By default nothing is kept.
    fn take_kept<T: 'static>(&self, id: &LedgerId) -> Option<(u64, T)> {
        let _ = id;
        None
    }
    /// [`LedgerStore::load`], unless the stored version is still `version` (in one read).
    async fn load_unless(&self, id: &LedgerId, version: u64) -> Result<Loaded, HostError> {
        let _ = version;
        Ok(Loaded::Row(self.load(id).await?))
    }
    /// Keeps `state` as stored at `version` (see [`LedgerStore::take_kept`]); `None`: forget it.
    fn remember<T: 'static>(&self, id: &LedgerId, stored: Option<(u64, T)>) {
        let _ = (id, stored);
    }
    /// Adds rollup deltas (bucket name, groups) into the host's rollup table, after the
    /// operation that made them was stored. By default rollups are not kept.
    async fn merge_rollups(
        &self,
        id: &LedgerId,
        deltas: Vec<(String, Vec<Rollup>)>,
    ) -> Result<(), HostError> {
        let _ = (id, deltas);
        Ok(())
    }
    /// The stored rollup buckets (name, JSON of its groups) from `from_name` (inclusive) to
    /// `to_name` (exclusive), for analytics.
    async fn load_rollups(
        &self,
        id: &LedgerId,
        from_name: &str,
        to_name: &str,
    ) -> Result<Vec<(String, String)>, HostError> {
        let _ = (id, from_name, to_name);
        Ok(Vec::new())
    }
}

/// Applies `op` to the stored ledger `id`; see the module docs.
pub async fn apply_stored<S: LedgerStore>(
    store: &S,
    id: &LedgerId,
    op: &LedgerOp,
) -> Result<LedgerReply, HostError> {
    if let LedgerOp::Analytics(ask) = op {
        // Rollups live in the host's own table, not in the ledger's row.
        let from =
            super::insights::hour_bucket_floor(ask.from_ms.saturating_sub(super::insights::DAY_MS));
        let to =
            super::insights::hour_bucket_floor(ask.to_ms.saturating_add(super::insights::HOUR_MS));
        let pieces = store.load_rollups(id, &from, &to).await?;
        let rollups = Rollups::from_pieces(pieces.iter().map(|(n, j)| (n.as_str(), j.as_str())))
            .map_err(|e| HostError::Store(format!("rollups {}: {e}", id.as_str())))?;
        return Ok(LedgerReply::Analytics {
            rows: rollups.query(ask),
        });
    }
    // A compare-and-swap retry runs this again: each try applies its own copy. The rollups the
    // operation adds are not kept here (they are not part of the stored JSON): they are counted
    // from the records when `forward_ledger` moves them to the trail, once per batch instead of
    // five statements per operation.
    with_ledger(store, id, |ledger| ledger.apply_alone(op.clone())).await
}

/// Applies `ops` in order to the stored ledger `id` with one load and one swap (re-run together
/// if the swap loses): one reply per operation, each what it would be if applied alone in that
/// order, the call ended as [`TenantLedger::apply_call`] ends it. For read-only operations use
/// [`apply_stored`] (analytics reads the host's table).
pub async fn apply_stored_batch<S: LedgerStore>(
    store: &S,
    id: &LedgerId,
    ops: &[LedgerOp],
) -> Result<Vec<LedgerReply>, HostError> {
    with_ledger(store, id, |ledger| ledger.apply_call(ops)).await
}

/// Runs `f` on the stored ledger `id` under the same compare-and-swap loop (expiry, forwarding).
pub async fn with_ledger<S: LedgerStore, R>(
    store: &S,
    id: &LedgerId,
    mut f: impl FnMut(&mut TenantLedger) -> R,
) -> Result<R, HostError> {
    apply_versioned(store, id, |ledger: &mut TenantLedger| {
        let reply = f(ledger);
        // The whole state is stored as one row: piecewise writes are not needed. The rollups
        // the operation added are not part of the row (they are counted when the records are
        // forwarded): drop them, so a state kept between operations holds what a read would.
        let _ = ledger.take_rollup_deltas();
        ledger.clear_writes();
        reply
    })
    .await
}

/// The same compare-and-swap loop for any state kept as one versioned JSON row (the ledger, a
/// tenant's circuit board): load, apply in memory, store only if the version has not moved.
pub async fn apply_versioned<S, T, R>(
    store: &S,
    id: &LedgerId,
    mut apply: impl FnMut(&mut T) -> R,
) -> Result<R, HostError>
where
    S: LedgerStore,
    T: Default + serde::Serialize + serde::de::DeserializeOwned + 'static,
{
    let corrupt = |e: serde_json::Error| HostError::Store(format!("state {}: {e}", id.as_str()));
    let mut lost = 0;
    for _ in 0..MAX_ATTEMPTS {
        // Optimistic first: most operations meet no rival (and many store nothing), so the lock
        // is only taken once a race was lost, or at once while races on this state are being
        // lost (under load on Spin 41% of ledger operations lost their first swap, and each
        // loss re-reads and re-parses the row: taking the lock first cut CPU per request by a
        // third there).
        let locked = (lost > 0 || store.contention_expected(id)) && store.lock().await;
        let attempt = attempt_once(store, id, &mut apply, corrupt).await;
        if locked {
            store.unlock().await;
        }
        if let Some(reply) = attempt? {
            return Ok(reply);
        }
        lost += 1;
        if lost < MAX_ATTEMPTS {
            store.contended(id, lost).await;
        }
    }
    Err(HostError::Store(format!(
        "state {}: still contended after {MAX_ATTEMPTS} attempts",
        id.as_str()
    )))
}

/// One read (or the kept state, if the row still has its version), apply, swap; `None` if the
/// swap lost the race.
async fn attempt_once<S, T, R>(
    store: &S,
    id: &LedgerId,
    apply: &mut impl FnMut(&mut T) -> R,
    corrupt: impl Fn(serde_json::Error) -> HostError,
) -> Result<Option<R>, HostError>
where
    S: LedgerStore,
    T: Default + serde::Serialize + serde::de::DeserializeOwned + 'static,
{
    let row = match store.take_kept::<Kept<T>>(id) {
        Some((version, kept)) => match store.load_unless(id, version).await? {
            Loaded::Unchanged => Err((version, kept)),
            Loaded::Row(row) => Ok(row),
        },
        None => Ok(store.load(id).await?),
    };
    let (
        version,
        Kept {
            mut state,
            json: before,
        },
    ) = match row {
        Err(kept) => kept,
        Ok(Some(stored)) => (
            stored.version,
            Kept {
                state: serde_json::from_str::<T>(&stored.json).map_err(&corrupt)?,
                json: stored.json,
            },
        ),
        Ok(None) => {
            let state = T::default();
            let json = crate::json_ser::to_string(&state).map_err(&corrupt)?;
            (0, Kept { state, json })
        }
    };
    let reply = apply(&mut state);
    // Byte for byte what serde_json writes, in less time (json_ser). Compared with the text the
    // state was read from (or last stored as) rather than with a copy of the state taken before:
    // the state is mostly records waiting to be forwarded, and copying and dropping it cost more
    // than this comparison.
    let json = crate::json_ser::to_string(&state).map_err(&corrupt)?;
    if json == before {
        // Nothing to store (a refusal, a usage report, a repeated settle).
        store.remember(id, Some((version, Kept { state, json })));
        return Ok(Some(reply));
    }
    if store.swap(id, version, &json).await? {
        store.remember(id, Some((version + 1, Kept { state, json })));
        Ok(Some(reply))
    } else {
        store.remember::<Kept<T>>(id, None);
        Ok(None)
    }
}

/// A state an instance keeps between operations, with the JSON text it was stored as.
struct Kept<T> {
    state: T,
    json: String,
}

/// For a host whose ledgers are rows of a shared store (Spin): gives up on `ledger`'s expired
/// requests, then moves its outbox into the audit stream `stream_for_new`, batch by batch, each
/// batch marked in flight before it is appended and dropped once acknowledged. Returns how many
/// records it forwarded. (A Durable Object does the same steps against its own memory.)
pub async fn forward_ledger<L: LedgerStore, S: crate::audit::drive::TrailStore>(
    ledgers: &L,
    trail: &S,
    ledger: &LedgerId,
    stream_for_new: &str,
    now_ms: u64,
) -> Result<usize, crate::audit::drive::DriveError> {
    with_ledger(ledgers, ledger, |l| l.expire(now_ms)).await?;
    let mut forwarded = 0;
    for _ in 0..crate::audit::drive::MAX_ATTEMPTS {
        let batch = with_ledger(ledgers, ledger, |l| l.forward_batch(ledger, stream_for_new))
            .await?
            .map_err(|e| {
                crate::audit::drive::DriveError::Host(HostError::Store(format!(
                    "ledger {}: an outbox record is unreadable: {e}",
                    ledger.as_str()
                )))
            })?;
        let Some(batch) = batch else {
            return Ok(forwarded);
        };
        let (ack, chained) =
            crate::audit::drive::append_batch_counting(trail, &batch, now_ms).await?;
        with_ledger(ledgers, ledger, |l| l.forwarded(ack)).await?;
        forwarded += batch.records.len();
        // The usage rollups of the records this call chained (a resent batch's others were
        // counted by the call that chained them). After they are in the trail: a failure here
        // costs analytics a count, never a charge or a record.
        let newly = batch.records.len().saturating_sub(chained);
        let deltas = rollup_deltas(batch.records.get(newly..).unwrap_or_default());
        if !deltas.is_empty() {
            ledgers.merge_rollups(ledger, deltas).await?;
        }
    }
    Ok(forwarded)
}

/// The rollup groups `records` add, by bucket: what [`TenantLedger`] adds as each record enters
/// its outbox (the records are bounded there already).
fn rollup_deltas(records: &[crate::audit::AuditEvent]) -> Vec<(String, Vec<Rollup>)> {
    let mut rollups = Rollups::default();
    let names = records.iter().filter_map(|r| rollups.add(r)).collect();
    rollups.take(names)
}

#[cfg(test)]
mod tests {
    use std::cell::{Cell, RefCell};
    use std::collections::HashMap;

    use super::*;
    use crate::audit::{AuditEvent, AuditRecord, Outcome, AUDIT_SCHEMA_VERSION};
    use crate::budget::{BudgetLine, Mode, Period, ReserveAsk};
    use crate::ledger::AdmitAsk;

    type Kept = (u64, Box<dyn std::any::Any>);

    /// An in-memory table; `interfere` makes the next `n` swaps lose to another writer that
    /// reserves `rival` first.
    #[derive(Default)]
    struct Table {
        rows: RefCell<HashMap<String, StoredLedger>>,
        interfere: Cell<usize>,
        rival: RefCell<Option<LedgerOp>>,
        swaps: Cell<usize>,
        pauses: RefCell<Vec<usize>>,
        /// `lock` answers this; `locks`/`unlocks` count the calls.
        locking: Cell<bool>,
        /// `contention_expected` answers this.
        expecting: Cell<bool>,
        locks: Cell<usize>,
        unlocks: Cell<usize>,
        /// The rollup table: bucket name -> groups.
        rollups: RefCell<std::collections::BTreeMap<String, Vec<Rollup>>>,
        /// Keep states (`cached`/`remember`), as Spin's instances do; `loads` counts row reads.
        keeping: Cell<bool>,
        kept: RefCell<HashMap<String, Kept>>,
        loads: Cell<usize>,
    }

    impl LedgerStore for Table {
        fn take_kept<T: 'static>(&self, id: &LedgerId) -> Option<(u64, T)> {
            let (version, state) = self.kept.borrow_mut().remove(id.as_str())?;
            Some((version, *state.downcast::<T>().ok()?))
        }
        fn remember<T: 'static>(&self, id: &LedgerId, stored: Option<(u64, T)>) {
            let mut kept = self.kept.borrow_mut();
            match stored {
                Some((v, state)) if self.keeping.get() => {
                    kept.insert(id.as_str().into(), (v, Box::new(state)));
                }
                _ => {
                    kept.remove(id.as_str());
                }
            }
        }
        async fn load_unless(&self, id: &LedgerId, version: u64) -> Result<Loaded, HostError> {
            let current = self.rows.borrow().get(id.as_str()).map(|r| r.version);
            if current == Some(version) {
                return Ok(Loaded::Unchanged);
            }
            Ok(Loaded::Row(self.load(id).await?))
        }
        async fn load(&self, id: &LedgerId) -> Result<Option<StoredLedger>, HostError> {
            self.loads.set(self.loads.get() + 1);
            Ok(self.rows.borrow().get(id.as_str()).cloned())
        }
        async fn swap(&self, id: &LedgerId, expected: u64, json: &str) -> Result<bool, HostError> {
            self.swaps.set(self.swaps.get() + 1);
            if self.interfere.get() > 0 {
                self.interfere.set(self.interfere.get() - 1);
                // Another instance commits its own operation first.
                let op = self.rival.borrow().clone().expect("rival op");
                let mut rows = self.rows.borrow_mut();
                let row = rows.entry(id.as_str().to_string()).or_insert(StoredLedger {
                    version: 0,
                    json: serde_json::to_string(&TenantLedger::default()).expect("json"),
                });
                let mut ledger: TenantLedger = serde_json::from_str(&row.json).expect("ledger");
                ledger.apply(op);
                row.json = serde_json::to_string(&ledger).expect("json");
                row.version += 1;
            }
            let mut rows = self.rows.borrow_mut();
            let current = rows.get(id.as_str()).map_or(0, |r| r.version);
            if current != expected {
                return Ok(false);
            }
            rows.insert(
                id.as_str().to_string(),
                StoredLedger {
                    version: expected + 1,
                    json: json.to_string(),
                },
            );
            Ok(true)
        }
        async fn contended(&self, _id: &LedgerId, lost: usize) {
            self.pauses.borrow_mut().push(lost);
        }
        fn contention_expected(&self, _id: &LedgerId) -> bool {
            self.expecting.get()
        }
        async fn lock(&self) -> bool {
            self.locks.set(self.locks.get() + 1);
            self.locking.get()
        }
        async fn unlock(&self) {
            assert!(self.locking.get(), "unlock without a lock");
            self.unlocks.set(self.unlocks.get() + 1);
        }
        async fn merge_rollups(
            &self,
            _id: &LedgerId,
            deltas: Vec<(String, Vec<Rollup>)>,
        ) -> Result<(), HostError> {
            let mut table = self.rollups.borrow_mut();
            for (name, groups) in deltas {
                crate::ledger::insights::merge_groups(table.entry(name).or_default(), groups);
            }
            Ok(())
        }
        async fn load_rollups(
            &self,
            _id: &LedgerId,
            from_name: &str,
            to_name: &str,
        ) -> Result<Vec<(String, String)>, HostError> {
            Ok(self
                .rollups
                .borrow()
                .range(from_name.to_string()..to_name.to_string())
                .map(|(n, g)| (n.clone(), serde_json::to_string(g).expect("json")))
                .collect())
        }
    }

    #[test]
    fn rollups_stay_out_of_the_row_and_add_up_in_the_hosts_table() {
        let table = Table::default();
        let id = LedgerId("acme".into());
        let commit = |rid: &str, at: u64| {
            let mut record = match reserve(rid, 0) {
                LedgerOp::Admit(a) => a.record,
                _ => unreachable!(),
            };
            record.record.outcome = Outcome::Ok;
            record.record.status = 200;
            record.record.timestamp_ms = at;
            LedgerOp::Commit(crate::ledger::CommitAsk {
                now_ms: at + 5,
                record,
                actual_micros: 7,
                actual_tokens: 3,
                lease: None,
            })
        };
        let trail = crate::audit::drive::tests::Memory::default();
        run(async {
            for (n, rid) in ["a", "b", "c"].iter().enumerate() {
                apply_stored(&table, &id, &reserve(rid, 10))
                    .await
                    .expect("admit");
                let at = 1_767_225_600_000 + n as u64;
                apply_stored(&table, &id, &commit(rid, at))
                    .await
                    .expect("commit");
            }
        });
        let row = table.rows.borrow()["acme"].json.clone();
        assert!(
            !row.contains("rollups") && !row.contains("latency_ms\":{"),
            "{row}"
        );
        // Counted as the records reach the trail, not per operation.
        assert!(table.rollups.borrow().is_empty());
        let forwarded = run(forward_ledger(
            &table,
            &trail,
            &id,
            "audit-local-0-of-1",
            1_767_225_600_100,
        ))
        .expect("forwarded");
        assert_eq!(forwarded, 3);
        assert_eq!(table.rollups.borrow().len(), 1, "one hour, one key");
        let reply = run(apply_stored(
            &table,
            &id,
            &LedgerOp::Analytics(crate::ledger::AnalyticsAsk {
                from_ms: 1_767_225_600_000,
                to_ms: 1_767_225_600_000 + 3_600_000,
                bucket_ms: 3_600_000,
                group_by: vec![],
            }),
        ))
        .expect("analytics");
        let LedgerReply::Analytics { rows } = reply else {
            panic!("analytics")
        };
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].figures.requests, 3);
        assert_eq!(rows[0].figures.cost_usd_micros, 3 * 7);
    }

    #[test]
    fn an_operation_that_changes_nothing_stores_nothing_and_the_next_change_is_stored() {
        for keeping in [false, true] {
            let table = Table::default();
            table.keeping.set(keeping);
            let id = LedgerId("acme".into());
            let read = LedgerOp::Alerts { limit: 5 };
            // A read of a ledger that has no row yet writes none.
            run(apply_stored(&table, &id, &read)).expect("applied");
            assert_eq!(table.swaps.get(), 0, "keeping: {keeping}");
            assert!(table.rows.borrow().is_empty());
            run(apply_stored(&table, &id, &reserve("first", 30))).expect("applied");
            assert_eq!(table.swaps.get(), 1);
            // A read after a write (the state read again, or kept): nothing stored.
            run(apply_stored(&table, &id, &read)).expect("applied");
            assert_eq!(table.swaps.get(), 1, "keeping: {keeping}");
            // The next change is stored, on top of the first.
            run(apply_stored(&table, &id, &reserve("second", 30))).expect("applied");
            assert_eq!(table.swaps.get(), 2);
            let row = table.rows.borrow()["acme"].clone();
            let ledger: TenantLedger = serde_json::from_str(&row.json).expect("ledger");
            assert_eq!(ledger.open_requests(), 2, "keeping: {keeping}");
        }
    }

    #[test]
    fn an_unreadable_outbox_record_stops_forwarding_loses_nothing_and_admissions_go_on() {
        let table = Table::default();
        let id = LedgerId("acme".into());
        let trail = crate::audit::drive::tests::Memory::default();
        let commit = |rid: &str| {
            let mut record = match reserve(rid, 0) {
                LedgerOp::Admit(a) => a.record,
                _ => unreachable!(),
            };
            record.record.outcome = Outcome::Ok;
            record.record.status = 200;
            LedgerOp::Commit(crate::ledger::CommitAsk {
                now_ms: 1_767_225_600_005,
                record,
                actual_micros: 7,
                actual_tokens: 3,
                lease: None,
            })
        };
        run(async {
            for rid in ["a", "b"] {
                apply_stored(&table, &id, &reserve(rid, 10))
                    .await
                    .expect("admit");
                apply_stored(&table, &id, &commit(rid))
                    .await
                    .expect("commit");
            }
        });
        // Record b edited in storage into something that is not an audit record.
        {
            let mut rows = table.rows.borrow_mut();
            let row = rows.get_mut("acme").expect("row");
            assert_eq!(row.json.matches(r#""request_id":"b""#).count(), 1);
            row.json = row.json.replace(r#""request_id":"b""#, r#""request_id":5"#);
            row.version += 1;
        }
        let failed = run(forward_ledger(
            &table,
            &trail,
            &id,
            "audit-local-0-of-1",
            1_767_225_600_100,
        ))
        .expect_err("an unreadable record");
        assert!(failed.to_string().contains("unreadable"), "{failed}");
        let row = table.rows.borrow()["acme"].clone();
        let ledger: TenantLedger = serde_json::from_str(&row.json).expect("still a ledger");
        assert_eq!(ledger.outbox_len(), 2, "both records wait in the outbox");
        let reply = run(apply_stored(&table, &id, &reserve("c", 10))).expect("applied");
        assert!(admitted(&reply), "{reply:?}");
    }

    fn reserve(request_id: &str, amount: u64) -> LedgerOp {
        let now_ms = 1_767_225_600_000;
        let expires_ms = 1_767_225_660_000;
        let record = AuditEvent::from(AuditRecord {
            schema_version: AUDIT_SCHEMA_VERSION,
            request_id: request_id.into(),
            timestamp_ms: now_ms,
            region: "local".into(),
            tenant_id: Some("acme".into()),
            key_id: Some("k_1".into()),
            operation: "chat.completions".into(),
            requested_model: None,
            served_model: None,
            provider: None,
            endpoint_host: None,
            stream: false,
            outcome: Outcome::Partial,
            status: 0,
            error_code: None,
            usage: None,
            latency_ms: 0,
            policy_version: None,
            trace_id: "t".into(),
        });
        LedgerOp::Admit(AdmitAsk {
            error_rate: None,
            now_ms,
            expires_ms,
            record,
            reserve: Some(ReserveAsk {
                request_id: request_id.into(),
                now_ms,
                amount_micros: amount,
                tokens: 10,
                requests: 1,
                budgets: vec![BudgetLine {
                    key: "monthly".into(),
                    budget_id: "monthly".into(),
                    limit_micros: 100,
                    period: Period::Monthly,
                    mode: Mode::Hard,
                    alert_percents: vec![],
                }],
                requests_per_minute: vec![],
                tokens_per_minute: vec![],
                expires_ms,
            }),
        })
    }

    fn admitted(reply: &LedgerReply) -> bool {
        matches!(reply, LedgerReply::Admitted { .. })
    }

    fn run<F: std::future::Future>(f: F) -> F::Output {
        futures::executor::block_on(f)
    }

    #[test]
    fn a_lost_race_is_rerun_against_the_winner_state() {
        let table = Table::default();
        let id = LedgerId("acme".into());
        // The rival takes 60 of 100 between our load and our swap: our 60 must now be refused.
        *table.rival.borrow_mut() = Some(reserve("rival", 60));
        table.interfere.set(1);
        let reply = run(apply_stored(&table, &id, &reserve("mine", 60))).expect("applied");
        assert!(
            !admitted(&reply),
            "a stale admit would overspend: {reply:?}"
        );
        // The refusal is stored too: the ledger records it in its outbox.
        assert_eq!(table.swaps.get(), 2);
        assert_eq!(
            *table.pauses.borrow(),
            vec![1],
            "one pause after the lost race"
        );
        let stored = table.rows.borrow().get("acme").cloned().expect("row");
        assert_eq!(
            stored.version, 2,
            "the rival's write, then the refusal's record"
        );
        let ledger: TenantLedger = serde_json::from_str(&stored.json).expect("ledger");
        assert_eq!(ledger.outbox_len(), 1, "the refusal is recorded");

        // Room for 40 more: admitted on the retry after another lost race.
        *table.rival.borrow_mut() = Some(reserve("rival-2", 0));
        table.interfere.set(1);
        let reply = run(apply_stored(&table, &id, &reserve("small", 40))).expect("applied");
        assert!(admitted(&reply), "{reply:?}");
        assert_eq!(table.rows.borrow()["acme"].version, 4);
    }

    #[test]
    fn a_kept_state_is_used_while_the_row_has_its_version_else_the_row_is_read() {
        let table = Table::default();
        table.keeping.set(true);
        let id = LedgerId("acme".into());
        run(apply_stored(&table, &id, &reserve("first", 30))).expect("applied");
        assert_eq!(table.loads.get(), 1);
        // The next operation applies to the state this host stored: the row is not read.
        run(apply_stored(&table, &id, &reserve("second", 30))).expect("applied");
        assert_eq!((table.loads.get(), table.swaps.get()), (1, 2));
        // Another writer stores a version this host has not seen: the row is read, and only
        // what it leaves is granted.
        {
            let mut rows = table.rows.borrow_mut();
            let row = rows.get_mut("acme").expect("row");
            let mut ledger: TenantLedger = serde_json::from_str(&row.json).expect("ledger");
            ledger.apply(reserve("elsewhere", 40));
            row.json = serde_json::to_string(&ledger).expect("json");
            row.version += 1;
        }
        let reply = run(apply_stored(&table, &id, &reserve("third", 30))).expect("applied");
        assert!(
            !admitted(&reply),
            "a stale state would overspend: {reply:?}"
        );
        assert_eq!(table.loads.get(), 2);
        // A swap lost right after a check (a writer in between) forgets the kept state and
        // re-runs from the row.
        *table.rival.borrow_mut() = Some(reserve("rival", 0));
        table.interfere.set(1);
        run(apply_stored(&table, &id, &reserve("fourth", 0))).expect("applied");
        assert_eq!(table.loads.get(), 3);
        assert_eq!(*table.pauses.borrow(), vec![1]);
    }

    #[test]
    fn endless_contention_fails_closed() {
        let table = Table::default();
        *table.rival.borrow_mut() = Some(reserve("rival", 0));
        table.interfere.set(usize::MAX);
        let err = run(apply_stored(
            &table,
            &LedgerId("acme".into()),
            &reserve("mine", 1),
        ))
        .expect_err("gives up");
        assert!(matches!(err, HostError::Store(_)));
        assert_eq!(table.swaps.get(), MAX_ATTEMPTS);
        // A pause between attempts, none after the last one (the error is not held back).
        let expected: Vec<usize> = (1..MAX_ATTEMPTS).collect();
        assert_eq!(*table.pauses.borrow(), expected);
    }

    #[test]
    fn expected_contention_takes_the_lock_before_the_first_attempt() {
        let table = Table::default();
        table.locking.set(true);
        table.expecting.set(true);
        let id = LedgerId("acme".into());
        run(apply_stored(&table, &id, &reserve("mine", 1))).expect("applied");
        assert_eq!((table.locks.get(), table.unlocks.get()), (1, 1));
        assert_eq!(table.swaps.get(), 1, "one locked attempt, nothing lost");
        // Not expected: optimistic, no lock.
        table.expecting.set(false);
        run(apply_stored(&table, &id, &reserve("next", 1))).expect("applied");
        assert_eq!((table.locks.get(), table.swaps.get()), (1, 2));
    }

    #[test]
    fn each_attempt_holds_the_stores_lock_and_releases_it_even_on_failure() {
        let table = Table::default();
        table.locking.set(true);
        *table.rival.borrow_mut() = Some(reserve("rival", 0));
        table.interfere.set(2);
        let id = LedgerId("acme".into());
        run(apply_stored(&table, &id, &reserve("mine", 1))).expect("applied");
        // The first attempt runs unlocked; the two after the lost races hold the lock.
        assert_eq!((table.locks.get(), table.unlocks.get()), (2, 2));
        // A malformed row fails an attempt: the lock is still released.
        *table.rival.borrow_mut() = Some(reserve("rival-2", 0));
        table.interfere.set(1);
        let corrupt = std::cell::Cell::new(false);
        let err = run(apply_versioned(&table, &id, |l: &mut TenantLedger| {
            if corrupt.replace(true) {
                table.rows.borrow_mut().insert(
                    "acme".into(),
                    StoredLedger {
                        version: 9,
                        json: "{".into(),
                    },
                );
            }
            l.apply(reserve("again", 1))
        }));
        assert!(matches!(err, Err(HostError::Store(_))), "{err:?}");
        // Two more locked attempts: one lost to the corrupting write, one failed on the row.
        assert_eq!((table.locks.get(), table.unlocks.get()), (4, 4));
    }
}

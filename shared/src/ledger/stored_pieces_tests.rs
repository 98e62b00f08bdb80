//! Ledgers kept in pieces by a store several instances share (`LedgerStore::stores_pieces`):
//! each instance keeps the state it last saw, reads only the pieces written since, and writes
//! only what an operation changed.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use super::stored::{apply_stored, LedgerStore, LoadedPieces, StoredLedger};
use super::tests::{admit, commit, T0};
use super::{LedgerId, LedgerOp, LedgerReply, LedgerWrites, TenantLedger};
use crate::error::HostError;

/// The table the instances share: the ledger's version, its JSON if it is stored whole, and its
/// pieces with the version each was written at.
#[derive(Default)]
struct Table {
    version: u64,
    whole: Option<String>,
    pieces: BTreeMap<String, (String, u64)>,
}

/// A kept state: its version and the state.
type Kept = (u64, Box<dyn Any>);
/// A write another instance makes first.
type Rival = Box<dyn FnOnce(&mut Table)>;

/// One instance: the shared table and the states it keeps.
struct Instance {
    table: Rc<RefCell<Table>>,
    kept: RefCell<HashMap<String, Kept>>,
    /// Whether it can write several pieces atomically (a backend with transactions).
    atomic: bool,
    /// Piece values it read, and swaps it lost.
    values_read: Cell<usize>,
    lost: Cell<usize>,
    /// Runs against the table just before the next swap (another instance writing first).
    rival: RefCell<Option<Rival>>,
}

impl Instance {
    fn new(table: &Rc<RefCell<Table>>) -> Instance {
        Instance {
            table: Rc::clone(table),
            kept: RefCell::default(),
            atomic: true,
            values_read: Cell::new(0),
            lost: Cell::new(0),
            rival: RefCell::default(),
        }
    }
}

impl LedgerStore for Instance {
    fn stores_pieces(&self) -> bool {
        true
    }
    fn take_kept<T: 'static>(&self, id: &LedgerId) -> Option<(u64, T)> {
        let (version, state) = self.kept.borrow_mut().remove(id.as_str())?;
        Some((version, *state.downcast::<T>().ok()?))
    }
    fn remember<T: 'static>(&self, id: &LedgerId, stored: Option<(u64, T)>) {
        let mut kept = self.kept.borrow_mut();
        match stored {
            Some((v, state)) => {
                kept.insert(id.as_str().into(), (v, Box::new(state)));
            }
            None => {
                kept.remove(id.as_str());
            }
        }
    }
    async fn load(&self, _id: &LedgerId) -> Result<Option<StoredLedger>, HostError> {
        unreachable!("a store in pieces is read through load_pieces")
    }
    async fn load_pieces(&self, _id: &LedgerId, since: u64) -> Result<LoadedPieces, HostError> {
        let t = self.table.borrow();
        if t.version == 0 {
            return Ok(LoadedPieces::Absent);
        }
        if t.version == since {
            return Ok(LoadedPieces::Unchanged);
        }
        if let Some(json) = &t.whole {
            return Ok(LoadedPieces::Whole(StoredLedger {
                version: t.version,
                json: json.clone(),
            }));
        }
        let changed: Vec<(String, String)> = t
            .pieces
            .iter()
            .filter(|(_, (_, at))| *at > since)
            .map(|(k, (v, _))| (k.clone(), v.clone()))
            .collect();
        self.values_read.set(self.values_read.get() + changed.len());
        Ok(LoadedPieces::Pieces {
            version: t.version,
            keys: t.pieces.keys().cloned().collect(),
            changed,
        })
    }
    async fn swap(&self, _id: &LedgerId, expected: u64, json: &str) -> Result<bool, HostError> {
        let mut t = self.table.borrow_mut();
        if t.version != expected {
            return Ok(false);
        }
        t.version += 1;
        t.whole = Some(json.to_string());
        Ok(true)
    }
    async fn swap_pieces(
        &self,
        _id: &LedgerId,
        expected: u64,
        writes: &LedgerWrites,
        replace: bool,
    ) -> Result<Option<bool>, HostError> {
        if !self.atomic {
            return Ok(None);
        }
        let mut t = self.table.borrow_mut();
        if let Some(rival) = self.rival.borrow_mut().take() {
            rival(&mut t);
        }
        if t.version != expected {
            self.lost.set(self.lost.get() + 1);
            return Ok(Some(false));
        }
        t.version += 1;
        let version = t.version;
        t.whole = None;
        if replace {
            t.pieces.clear();
        }
        for (k, v) in &writes.puts {
            t.pieces.insert(k.clone(), (v.clone(), version));
        }
        for k in &writes.deletes {
            t.pieces.remove(k);
        }
        Ok(Some(true))
    }
}

fn run<F: std::future::Future>(f: F) -> F::Output {
    futures::executor::block_on(f)
}

fn restored(table: &Table) -> TenantLedger {
    TenantLedger::restore(
        table
            .pieces
            .iter()
            .map(|(k, (v, _))| (k.as_str(), v.as_str())),
    )
    .expect("restores")
}

/// Applies `op` to the stored pieces as another instance would (restore, apply, store).
fn write_elsewhere(t: &mut Table, op: LedgerOp) {
    let mut l = restored(t);
    l.apply(op);
    let _ = l.take_rollup_deltas();
    let writes = l.take_writes().expect("writes");
    t.version += 1;
    for (k, v) in writes.puts {
        t.pieces.insert(k, (v, t.version));
    }
    for k in writes.deletes {
        t.pieces.remove(&k);
    }
}

fn admitted(reply: &LedgerReply) -> bool {
    matches!(reply, LedgerReply::Admitted { .. })
}

#[test]
fn instances_sharing_pieces_answer_as_one_ledger_and_read_only_what_changed() {
    let table = Rc::new(RefCell::new(Table::default()));
    let (a, b) = (Instance::new(&table), Instance::new(&table));
    let id = LedgerId("acme".into());
    let mut reference = TenantLedger::default();
    // Admissions against a hard budget of 1,000 and commits, from either instance in turn.
    let steps: Vec<(bool, LedgerOp)> = vec![
        (true, admit("r1", T0, Some(400))),
        (true, admit("r2", T0 + 1, Some(400))),
        (false, admit("r3", T0 + 2, Some(400))),
        (true, commit("r1", T0 + 20, 100)),
        (false, admit("r4", T0 + 21, Some(400))),
        (false, commit("r2", T0 + 22, 50)),
        (true, admit("r5", T0 + 23, Some(400))),
        (true, admit("r6", T0 + 24, None)),
    ];
    for (on_a, op) in steps {
        let expected = reference.apply(op.clone());
        let reply = run(apply_stored(if on_a { &a } else { &b }, &id, &op)).expect("applied");
        assert_eq!(reply, expected);
    }
    // The budget held across instances: r3 was refused (800 of 1,000 held), r4 admitted once
    // r1 settled at 100.
    let _ = reference.take_rollup_deltas();
    reference.clear_writes();
    assert_eq!(restored(&table.borrow()), reference);

    // A's next operation right after its own: nothing read.
    let before = a.values_read.get();
    run(apply_stored(&a, &id, &commit("r5", T0 + 40, 10))).expect("applied");
    assert_eq!(a.values_read.get(), before, "its own kept state is current");
    // B wrote since: A reads the pieces B's operation wrote, not the ledger's every piece.
    run(apply_stored(&b, &id, &commit("r4", T0 + 41, 10))).expect("applied");
    let before = a.values_read.get();
    run(apply_stored(&a, &id, &admit("r7", T0 + 42, Some(1)))).expect("applied");
    let read = a.values_read.get() - before;
    let pieces = table.borrow().pieces.len();
    assert!(read > 0 && read < pieces, "read {read} of {pieces} pieces");
}

#[test]
fn a_swap_lost_to_another_instance_is_rerun_against_its_write() {
    let table = Rc::new(RefCell::new(Table::default()));
    let a = Instance::new(&table);
    let id = LedgerId("acme".into());
    run(apply_stored(&a, &id, &admit("r1", T0, Some(500)))).expect("applied");
    // Between A's read and its swap another instance holds 400 more: A's 400 no longer fits.
    *a.rival.borrow_mut() = Some(Box::new(|t: &mut Table| {
        write_elsewhere(t, admit("rival", T0 + 1, Some(400)))
    }));
    let reply = run(apply_stored(&a, &id, &admit("r2", T0 + 2, Some(400)))).expect("applied");
    assert!(
        !admitted(&reply),
        "a stale state would overspend: {reply:?}"
    );
    assert_eq!(a.lost.get(), 1);
    let mut l = restored(&table.borrow());
    let open: Vec<&str> = l
        .open()
        .map(|o| o.record.record.request_id.as_str())
        .collect();
    assert_eq!(open, ["r1", "rival"], "the refusal holds nothing");
    assert!(
        admitted(&l.apply(admit("r3", T0 + 3, Some(100)))),
        "100 still fits"
    );
}

#[test]
fn a_ledger_stored_whole_moves_into_pieces_on_its_next_write() {
    let table = Rc::new(RefCell::new(Table::default()));
    let id = LedgerId("acme".into());
    let mut reference = TenantLedger::default();
    reference.apply(admit("r1", T0, Some(600)));
    let _ = reference.take_rollup_deltas();
    reference.clear_writes();
    {
        let mut t = table.borrow_mut();
        t.version = 7;
        t.whole = Some(serde_json::to_string(&reference).expect("json"));
    }
    let a = Instance::new(&table);
    // Read whole: the hold is there.
    let op = admit("r2", T0 + 1, Some(600));
    assert_eq!(
        run(apply_stored(&a, &id, &op)).expect("applied"),
        reference.apply(op)
    );
    let t = table.borrow();
    assert_eq!(t.version, 8);
    assert!(t.whole.is_none(), "now in pieces");
    let _ = reference.take_rollup_deltas();
    reference.clear_writes();
    assert_eq!(restored(&t), reference);
}

#[test]
fn a_store_that_cannot_write_pieces_atomically_keeps_the_ledger_whole() {
    let table = Rc::new(RefCell::new(Table::default()));
    let mut a = Instance::new(&table);
    a.atomic = false;
    let id = LedgerId("acme".into());
    assert!(admitted(
        &run(apply_stored(&a, &id, &admit("r1", T0, Some(600)))).expect("applied")
    ));
    // Stored whole, and read whole again (not kept: the next write would take it for pieces).
    assert!(table.borrow().whole.is_some());
    assert!(table.borrow().pieces.is_empty());
    assert!(!admitted(
        &run(apply_stored(&a, &id, &admit("r2", T0 + 1, Some(600)))).expect("applied")
    ));
    assert_eq!(table.borrow().version, 2);
}

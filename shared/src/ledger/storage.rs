//! A tenant ledger stored in pieces, for a host that keeps it in a key-value store (a Durable
//! Object): one key for the totals, one per open request (with its reservation), one per outbox
//! record, one for the outbox's numbering. An operation rewrites only what it touched, so its cost
//! does not grow with the number of requests in flight. Values are JSON text, so 64-bit amounts
//! survive a JavaScript host.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Meta, OpenRequest, TenantLedger};
use crate::audit::AuditEvent;
use crate::budget::{Budgets, Reservation, Totals};

pub const TOTALS_KEY: &str = "totals";
pub const META_KEY: &str = "meta";
pub const OPEN_PREFIX: &str = "open:";
pub const OUTBOX_PREFIX: &str = "out:";

fn open_key(request_id: &str) -> String {
    format!("{OPEN_PREFIX}{request_id}")
}

/// Zero-padded, so a prefix listing returns the outbox in order.
fn outbox_key(seq: u64) -> String {
    format!("{OUTBOX_PREFIX}{seq:020}")
}

/// An open request as stored: its opening record, expiry and reservation together.
#[derive(Serialize, Deserialize)]
struct StoredOpen {
    #[serde(flatten)]
    open: OpenRequest,
    reservation: Option<Reservation>,
}

/// What to write after an operation: puts, then deletes. Apply them in one atomic write.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LedgerWrites {
    pub puts: Vec<(String, String)>,
    pub deletes: Vec<String>,
}

impl LedgerWrites {
    pub fn is_empty(&self) -> bool {
        self.puts.is_empty() && self.deletes.is_empty()
    }
}

impl TenantLedger {
    /// The pieces changed since the last call, to store before answering.
    pub fn take_writes(&mut self) -> Result<LedgerWrites, serde_json::Error> {
        let dirty = std::mem::take(&mut self.dirty);
        let mut w = LedgerWrites::default();
        if dirty.totals {
            w.puts.push((
                TOTALS_KEY.into(),
                serde_json::to_string(self.budgets.totals())?,
            ));
        }
        if dirty.meta {
            w.puts
                .push((META_KEY.into(), serde_json::to_string(&self.meta)?));
        }
        for id in dirty.open {
            match self.open.get(&id) {
                Some(open) => {
                    let stored = StoredOpen {
                        open: open.clone(),
                        reservation: self.budgets.reservation(&id).cloned(),
                    };
                    w.puts
                        .push((open_key(&id), serde_json::to_string(&stored)?));
                }
                None => w.deletes.push(open_key(&id)),
            }
        }
        for seq in dirty.outbox {
            match self.outbox.get(&seq) {
                Some(record) => w
                    .puts
                    .push((outbox_key(seq), serde_json::to_string(record)?)),
                None => w.deletes.push(outbox_key(seq)),
            }
        }
        Ok(w)
    }

    /// Drops pending writes (after the host stored the whole state another way).
    pub fn clear_writes(&mut self) {
        self.dirty = Default::default();
    }

    /// Rebuilds a ledger from every stored piece (any order). Unknown keys are an error: they
    /// mean the store holds something this version does not understand.
    pub fn restore<'a>(
        pieces: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<TenantLedger, String> {
        let mut totals = Totals::default();
        let mut meta = Meta::default();
        let mut open = BTreeMap::new();
        let mut reservations = BTreeMap::new();
        let mut outbox = BTreeMap::new();
        for (key, value) in pieces {
            let bad = |e: serde_json::Error| format!("ledger piece {key}: {e}");
            if key == TOTALS_KEY {
                totals = serde_json::from_str(value).map_err(bad)?;
            } else if key == META_KEY {
                meta = serde_json::from_str(value).map_err(bad)?;
            } else if let Some(id) = key.strip_prefix(OPEN_PREFIX) {
                let stored: StoredOpen = serde_json::from_str(value).map_err(bad)?;
                if let Some(r) = stored.reservation {
                    reservations.insert(id.to_string(), r);
                }
                open.insert(id.to_string(), stored.open);
            } else if let Some(seq) = key.strip_prefix(OUTBOX_PREFIX) {
                let seq: u64 = seq
                    .parse()
                    .map_err(|_| format!("ledger piece {key}: not an outbox sequence"))?;
                let record: AuditEvent = serde_json::from_str(value).map_err(bad)?;
                outbox.insert(seq, record);
            } else {
                return Err(format!("ledger piece {key}: unknown key"));
            }
        }
        let after_outbox = outbox.keys().next_back().copied().unwrap_or(0);
        meta.next_seq = after_outbox.max(meta.forwarded) + 1;
        Ok(TenantLedger {
            budgets: Budgets::from_parts(totals, reservations),
            open,
            outbox,
            meta,
            dirty: Default::default(),
        })
    }
}

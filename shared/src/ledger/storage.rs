//! A tenant ledger stored in pieces, for a host that keeps it in a key-value store (a Durable
//! Object): one key for the totals, one per write-ahead request (open, with its reservation;
//! then finished, its final record waiting in the outbox, under the same key), one per group of
//! other records finished by one call (`out:<first seq>`: leased commits, refusals, lease
//! records), one for the forwarding state. An operation rewrites only what it touched
//! (admission: the totals and one request; commit: the same two, nothing deleted; 64 leased
//! commits: the totals, a rollup, the lease and one group row), so its cost does not grow with
//! the requests in flight. Values are JSON text, so 64-bit amounts survive a JavaScript host.
//! Versions before group rows refuse to load a ledger that holds one (unknown key).

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::insights::{AlertState, ErrorWindow, Rollups};
use super::{LeaseEntry, Meta, OpenRequest, Outgoing, TenantLedger};
use crate::audit::RecordText;
use crate::budget::{Budgets, Reservation, Totals};

pub const TOTALS_KEY: &str = "totals";
pub const META_KEY: &str = "meta";
pub const REQUEST_PREFIX: &str = "req:";
pub const ROLLUP_PREFIX: &str = "roll:";
pub const ALERTS_KEY: &str = "alerts";
pub const ERROR_WINDOW_KEY: &str = "errwin";
pub const LEASE_PREFIX: &str = "lease:";
/// A row of finished records stored together (`out:<first seq>`): see `Row::Group`.
pub const GROUP_PREFIX: &str = "out:";

/// A lease as stored: its entry and what its reservation still holds. Borrowed when written
/// (no copy of its record per write), owned when read.
#[derive(Serialize, Deserialize)]
struct StoredLease<'a> {
    lease: Cow<'a, LeaseEntry>,
    reservation: Option<Cow<'a, Reservation>>,
}

/// A request as stored: open (its opening record, expiry and reservation together), or finished
/// (its final record, waiting in the outbox at `seq`).
#[derive(Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
#[allow(
    clippy::large_enum_variant,
    reason = "a transient value, written or read once per stored piece"
)]
enum StoredRequest<'a> {
    Open {
        open: Cow<'a, OpenRequest>,
        reservation: Option<Cow<'a, Reservation>>,
    },
    Finished {
        seq: u64,
        record: Cow<'a, RecordText>,
    },
}

/// One record of a group row, at its outbox sequence.
#[derive(Serialize, Deserialize)]
struct GroupedRecord<'a> {
    seq: u64,
    record: Cow<'a, RecordText>,
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
                crate::json_ser::to_string(self.budgets.totals())?,
            ));
        }
        if dirty.meta {
            w.puts
                .push((META_KEY.into(), crate::json_ser::to_string(&self.meta)?));
        }
        if dirty.alerts {
            w.puts
                .push((ALERTS_KEY.into(), crate::json_ser::to_string(&self.alerts)?));
        }
        if dirty.error_window {
            w.puts.push((
                ERROR_WINDOW_KEY.into(),
                crate::json_ser::to_string(&self.error_window)?,
            ));
        }
        for name in dirty.rollups {
            let key = format!("{ROLLUP_PREFIX}{name}");
            match self.rollups.buckets.get(&name) {
                Some(groups) => w.puts.push((key, crate::json_ser::to_string(groups)?)),
                None => w.deletes.push(key),
            }
        }
        for id in dirty.leases {
            let key = format!("{LEASE_PREFIX}{id}");
            match self.leases.get(&id) {
                Some(lease) => w.puts.push((
                    key,
                    crate::json_ser::to_string(&StoredLease {
                        lease: Cow::Borrowed(lease),
                        reservation: self.budgets.reservation(&id).map(Cow::Borrowed),
                    })?,
                )),
                None => w.deletes.push(key),
            }
        }
        for key in dirty.requests {
            if key.starts_with(GROUP_PREFIX) {
                if !self.outbox.holds(&key) {
                    w.deletes.push(key);
                    continue;
                }
                let group: Vec<GroupedRecord> = self
                    .outbox
                    .seqs(&key)
                    .filter_map(|seq| {
                        self.outbox.get(&seq).map(|o| GroupedRecord {
                            seq,
                            record: Cow::Borrowed(&o.record),
                        })
                    })
                    .collect();
                w.puts.push((key, crate::json_ser::to_string(&group)?));
                continue;
            }
            let id = key.strip_prefix(REQUEST_PREFIX).unwrap_or(&key);
            let stored = match self.open.get(id) {
                Some(open) if super::request_key(id) == key => Some(StoredRequest::Open {
                    open: Cow::Borrowed(open),
                    reservation: self.budgets.reservation(id).map(Cow::Borrowed),
                }),
                _ => self.outbox.seq_of(&key).and_then(|seq| {
                    self.outbox.get(&seq).map(|o| StoredRequest::Finished {
                        seq,
                        record: Cow::Borrowed(&o.record),
                    })
                }),
            };
            match stored {
                Some(stored) => w.puts.push((key, crate::json_ser::to_string(&stored)?)),
                None => w.deletes.push(key),
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
        let mut outbox = super::outbox::Outbox::default();
        let mut rollups = Rollups::default();
        let mut alerts = AlertState::default();
        let mut error_window = ErrorWindow::default();
        let mut leases = BTreeMap::new();
        let mut grouped = Vec::new();
        for (key, value) in pieces {
            let bad = |e: serde_json::Error| format!("ledger piece {key}: {e}");
            if key == TOTALS_KEY {
                totals = serde_json::from_str(value).map_err(bad)?;
            } else if key == META_KEY {
                meta = serde_json::from_str(value).map_err(bad)?;
            } else if key == ALERTS_KEY {
                alerts = serde_json::from_str(value).map_err(bad)?;
            } else if key == ERROR_WINDOW_KEY {
                error_window = serde_json::from_str(value).map_err(bad)?;
            } else if let Some(name) = key.strip_prefix(ROLLUP_PREFIX) {
                rollups
                    .buckets
                    .insert(name.to_string(), serde_json::from_str(value).map_err(bad)?);
            } else if let Some(id) = key.strip_prefix(LEASE_PREFIX) {
                let stored: StoredLease = serde_json::from_str(value).map_err(bad)?;
                if let Some(r) = stored.reservation {
                    reservations.insert(id.to_string(), r.into_owned());
                }
                leases.insert(id.to_string(), stored.lease.into_owned());
            } else if key.starts_with(GROUP_PREFIX) {
                let group: Vec<GroupedRecord> = serde_json::from_str(value).map_err(bad)?;
                grouped.extend(group.into_iter().map(|g| (key, g)));
            } else if let Some(id) = key.strip_prefix(REQUEST_PREFIX) {
                match serde_json::from_str(value).map_err(bad)? {
                    StoredRequest::Open {
                        open: o,
                        reservation,
                    } => {
                        if let Some(r) = reservation {
                            reservations.insert(id.to_string(), r.into_owned());
                        }
                        open.insert(id.to_string(), o.into_owned());
                    }
                    StoredRequest::Finished { seq, record } => {
                        outbox.insert(
                            seq,
                            Outgoing {
                                key: key.to_string(),
                                record: record.into_owned(),
                            },
                        );
                    }
                }
            } else {
                return Err(format!("ledger piece {key}: unknown key"));
            }
        }
        // A group row keeps records already forwarded until its last one is: skip those.
        for (key, g) in grouped {
            if g.seq > meta.forwarded {
                outbox.insert(
                    g.seq,
                    Outgoing {
                        key: key.to_string(),
                        record: g.record.into_owned(),
                    },
                );
            }
        }
        let after_outbox = outbox.keys().next_back().copied().unwrap_or(0);
        meta.next_seq = after_outbox.max(meta.forwarded) + 1;
        Ok(TenantLedger {
            budgets: Budgets::from_parts(totals, reservations),
            open,
            outbox,
            meta,
            rollups,
            alerts,
            error_window,
            leases,
            dirty: Default::default(),
        })
    }
}

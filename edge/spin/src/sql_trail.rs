//! The audit sequencer's state in Spin SQLite, for the core's `trail::drive`: the head with a
//! version, the buffered entries, the open (streaming) records. An append is one `INSERT`: its
//! `BEFORE` trigger refuses it unless the head's version is the one the caller read (and, when
//! claiming an abandoned stream, its open record still exists); its `AFTER` trigger moves the
//! head and drops the open record. SQLite runs a statement and its triggers atomically, so the
//! head and its entries never disagree, whatever instances append at once.

use asc_core::audit::inflight::OpenRecord;
use asc_core::host::HostError;
use asc_core::trail::drive::{AppendWrite, StoredHead, TrailStore};
use asc_core::trail::{Buffered, Entry, SequencerHead};

use crate::platform::{Platform, SqlValue};

pub const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS asc_audit_head (
        stream TEXT PRIMARY KEY,
        version INTEGER NOT NULL,
        head TEXT NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS asc_audit_entry (
        stream TEXT NOT NULL,
        seq INTEGER NOT NULL,
        appended_ms INTEGER NOT NULL,
        entry TEXT NOT NULL,
        request_id TEXT NOT NULL,
        base_version INTEGER NOT NULL,
        next_head TEXT NOT NULL,
        claim_open INTEGER NOT NULL,
        PRIMARY KEY (stream, seq)
    )",
    "CREATE TABLE IF NOT EXISTS asc_audit_open (
        request_id TEXT PRIMARY KEY,
        stream TEXT NOT NULL,
        expires_ms INTEGER NOT NULL,
        record TEXT NOT NULL
    )",
    "CREATE TRIGGER IF NOT EXISTS asc_audit_entry_check BEFORE INSERT ON asc_audit_entry
     BEGIN
        SELECT RAISE(ABORT, 'asc_audit_conflict') WHERE NOT EXISTS (
            SELECT 1 FROM asc_audit_head WHERE stream = NEW.stream AND version = NEW.base_version);
        SELECT RAISE(ABORT, 'asc_audit_claimed') WHERE NEW.claim_open = 1 AND NOT EXISTS (
            SELECT 1 FROM asc_audit_open WHERE request_id = NEW.request_id);
     END",
    "CREATE TRIGGER IF NOT EXISTS asc_audit_entry_advance AFTER INSERT ON asc_audit_entry
     BEGIN
        UPDATE asc_audit_head SET head = NEW.next_head, version = version + 1
            WHERE stream = NEW.stream;
        DELETE FROM asc_audit_open WHERE request_id = NEW.request_id;
     END",
];

pub struct SqlTrail<'p, P>(pub &'p P);

fn json<T: serde::Serialize>(value: &T) -> Result<String, HostError> {
    serde_json::to_string(value).map_err(|e| HostError::Store(format!("audit: {e}")))
}

fn parse<T: serde::de::DeserializeOwned>(value: Option<&SqlValue>) -> Result<T, HostError> {
    let text = value
        .and_then(SqlValue::as_str)
        .ok_or_else(|| HostError::Store("audit: malformed row".into()))?;
    serde_json::from_str(text).map_err(|e| HostError::Store(format!("audit: {e}")))
}

fn number(value: Option<&SqlValue>) -> Result<u64, HostError> {
    value
        .and_then(SqlValue::as_u64)
        .ok_or_else(|| HostError::Store("audit: malformed row".into()))
}

impl<P: Platform> TrailStore for SqlTrail<'_, P> {
    async fn head(&self, stream: &str) -> Result<Option<StoredHead>, HostError> {
        let rows = self
            .0
            .sql(
                "SELECT version, head FROM asc_audit_head WHERE stream = ?1",
                &[stream.into()],
            )
            .await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        Ok(Some(StoredHead {
            version: number(row.first())?,
            head: parse(row.get(1))?,
        }))
    }

    async fn create(&self, head: &SequencerHead) -> Result<(), HostError> {
        self.0
            .sql(
                "INSERT INTO asc_audit_head (stream, version, head) VALUES (?1, 0, ?2)
                 ON CONFLICT (stream) DO NOTHING",
                &[head.stream.as_str().into(), json(head)?.into()],
            )
            .await?;
        Ok(())
    }

    async fn append(
        &self,
        base_version: u64,
        next: &SequencerHead,
        entry: &Buffered,
        request_id: &str,
        claim_open: bool,
    ) -> Result<AppendWrite, HostError> {
        let result = self
            .0
            .sql(
                "INSERT INTO asc_audit_entry (stream, seq, appended_ms, entry, request_id,
                    base_version, next_head, claim_open)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                &[
                    next.stream.as_str().into(),
                    entry.entry.sequence.into(),
                    entry.appended_ms.into(),
                    json(&entry.entry)?.into(),
                    request_id.into(),
                    base_version.into(),
                    json(next)?.into(),
                    SqlValue::Integer(i64::from(claim_open)),
                ],
            )
            .await;
        match result {
            Ok(_) => Ok(AppendWrite::Done),
            Err(HostError::Store(why)) if why.contains("asc_audit_claimed") => {
                Ok(AppendWrite::Claimed)
            }
            // A moved head, or an entry another instance stored under the same sequence.
            Err(HostError::Store(why))
                if why.contains("asc_audit_conflict") || why.contains("UNIQUE") =>
            {
                Ok(AppendWrite::Conflict)
            }
            Err(e) => Err(e),
        }
    }

    async fn swap_head(&self, base_version: u64, head: &SequencerHead) -> Result<bool, HostError> {
        let rows = self
            .0
            .sql(
                "UPDATE asc_audit_head SET head = ?3, version = version + 1
                 WHERE stream = ?1 AND version = ?2 RETURNING version",
                &[
                    head.stream.as_str().into(),
                    base_version.into(),
                    json(head)?.into(),
                ],
            )
            .await?;
        Ok(!rows.is_empty())
    }

    async fn entries(&self, stream: &str, after: u64) -> Result<Vec<Buffered>, HostError> {
        let rows = self
            .0
            .sql(
                "SELECT appended_ms, entry FROM asc_audit_entry
                 WHERE stream = ?1 AND seq > ?2 ORDER BY seq",
                &[stream.into(), after.into()],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(Buffered {
                    appended_ms: number(row.first())?,
                    entry: parse::<Entry>(row.get(1))?,
                })
            })
            .collect()
    }

    async fn drop_entries(&self, stream: &str, through: u64) -> Result<(), HostError> {
        self.0
            .sql(
                "DELETE FROM asc_audit_entry WHERE stream = ?1 AND seq <= ?2",
                &[stream.into(), through.into()],
            )
            .await?;
        Ok(())
    }

    async fn backlog(&self, stream: &str, after: u64) -> Result<(u64, Option<u64>), HostError> {
        let rows = self
            .0
            .sql(
                "SELECT COUNT(*), MIN(appended_ms) FROM asc_audit_entry
                 WHERE stream = ?1 AND seq > ?2",
                &[stream.into(), after.into()],
            )
            .await?;
        let row = rows.first();
        Ok((
            number(row.and_then(|r| r.first()))?,
            row.and_then(|r| r.get(1)).and_then(SqlValue::as_u64),
        ))
    }

    async fn put_open(&self, stream: &str, open: &OpenRecord) -> Result<(), HostError> {
        self.0
            .sql(
                "INSERT OR REPLACE INTO asc_audit_open (request_id, stream, expires_ms, record)
                 VALUES (?1, ?2, ?3, ?4)",
                &[
                    open.event.record.request_id.as_str().into(),
                    stream.into(),
                    open.expires_ms.into(),
                    json(open)?.into(),
                ],
            )
            .await?;
        Ok(())
    }

    async fn open_records(&self, stream: &str) -> Result<Vec<OpenRecord>, HostError> {
        let rows = self
            .0
            .sql(
                "SELECT record FROM asc_audit_open WHERE stream = ?1",
                &[stream.into()],
            )
            .await?;
        rows.iter().map(|row| parse(row.first())).collect()
    }

    async fn earliest_open(&self, stream: &str) -> Result<Option<u64>, HostError> {
        let rows = self
            .0
            .sql(
                "SELECT MIN(expires_ms) FROM asc_audit_open WHERE stream = ?1",
                &[stream.into()],
            )
            .await?;
        Ok(rows
            .first()
            .and_then(|r| r.first())
            .and_then(SqlValue::as_u64))
    }
}

//! The audit streams' state in Spin SQLite, for the core's `trail::drive`: each stream's head
//! with a version, the appended batches, each source ledger's watermark. An append is one
//! `INSERT` of a batch row: its `BEFORE` trigger refuses it unless the head's version is the one
//! the caller read; its `AFTER` trigger moves the head and the source's watermark. SQLite runs a
//! statement and its triggers atomically, so the head, its entries and the watermarks never
//! disagree, whatever instances append at once (Spin's SQLite interface runs one statement per
//! call, so no transaction spans several).

use asc_core::audit::drive::{StoredHead, TrailStore, Watermark};
use asc_core::audit::{Buffered, SequencerHead};
use asc_core::host::HostError;

use crate::platform::{Platform, SqlValue};

pub const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS asc_audit_head (
        stream TEXT PRIMARY KEY,
        version INTEGER NOT NULL,
        head TEXT NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS asc_audit_batch (
        stream TEXT NOT NULL,
        first_seq INTEGER NOT NULL,
        last_seq INTEGER NOT NULL,
        appended_ms INTEGER NOT NULL,
        entries TEXT NOT NULL,
        base_version INTEGER NOT NULL,
        next_head TEXT NOT NULL,
        source TEXT NOT NULL,
        through INTEGER NOT NULL,
        PRIMARY KEY (stream, first_seq)
    )",
    "CREATE TABLE IF NOT EXISTS asc_audit_source (
        stream TEXT NOT NULL,
        source TEXT NOT NULL,
        through INTEGER NOT NULL,
        PRIMARY KEY (stream, source)
    )",
    "CREATE TRIGGER IF NOT EXISTS asc_audit_batch_check BEFORE INSERT ON asc_audit_batch
     BEGIN
        SELECT RAISE(ABORT, 'asc_audit_conflict') WHERE NOT EXISTS (
            SELECT 1 FROM asc_audit_head WHERE stream = NEW.stream AND version = NEW.base_version);
     END",
    "CREATE TRIGGER IF NOT EXISTS asc_audit_batch_advance AFTER INSERT ON asc_audit_batch
     BEGIN
        UPDATE asc_audit_head SET head = NEW.next_head, version = version + 1
            WHERE stream = NEW.stream;
        INSERT INTO asc_audit_source (stream, source, through)
            VALUES (NEW.stream, NEW.source, NEW.through)
            ON CONFLICT (stream, source) DO UPDATE SET through = excluded.through;
     END",
];

pub struct SqlTrail<'p, P>(pub &'p P);

fn json<T: serde::Serialize>(value: &T) -> Result<String, HostError> {
    asc_core::json_ser::to_string(value).map_err(|e| HostError::Store(format!("audit: {e}")))
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
        entries: &[Buffered],
        watermark: &Watermark<'_>,
    ) -> Result<bool, HostError> {
        let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
            // Nothing new to chain: only the watermark moves.
            self.0
                .sql(
                    "INSERT INTO asc_audit_source (stream, source, through) VALUES (?1, ?2, ?3)
                     ON CONFLICT (stream, source) DO UPDATE SET through = excluded.through",
                    &[
                        next.stream.as_str().into(),
                        watermark.source.into(),
                        watermark.through.into(),
                    ],
                )
                .await?;
            return Ok(true);
        };
        let result = self
            .0
            .sql(
                "INSERT INTO asc_audit_batch (stream, first_seq, last_seq, appended_ms, entries,
                    base_version, next_head, source, through)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                &[
                    next.stream.as_str().into(),
                    first.entry.sequence.into(),
                    last.entry.sequence.into(),
                    first.appended_ms.into(),
                    Buffered::stored_json(entries)
                        .map_err(|e| HostError::Store(format!("audit: {e}")))?
                        .into(),
                    base_version.into(),
                    json(next)?.into(),
                    watermark.source.into(),
                    watermark.through.into(),
                ],
            )
            .await;
        match result {
            Ok(_) => Ok(true),
            // A moved head, or a batch another instance stored at the same sequence.
            Err(HostError::Store(why))
                if why.contains("asc_audit_conflict") || why.contains("UNIQUE") =>
            {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    async fn watermark(&self, stream: &str, source: &str) -> Result<u64, HostError> {
        let rows = self
            .0
            .sql(
                "SELECT through FROM asc_audit_source WHERE stream = ?1 AND source = ?2",
                &[stream.into(), source.into()],
            )
            .await?;
        match rows.first() {
            Some(row) => number(row.first()),
            None => Ok(0),
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
                "SELECT entries FROM asc_audit_batch
                 WHERE stream = ?1 AND last_seq > ?2 ORDER BY first_seq",
                &[stream.into(), after.into()],
            )
            .await?;
        let mut out = Vec::new();
        for row in rows {
            let batch: Vec<Buffered> = parse(row.first())?;
            out.extend(batch.into_iter().filter(|b| b.entry.sequence > after));
        }
        Ok(out)
    }

    /// One statement, so one state: an append between two reads could leave entries past the
    /// head just read.
    async fn snapshot(
        &self,
        stream: &str,
    ) -> Result<Option<(StoredHead, Vec<Buffered>)>, HostError> {
        let rows = self
            .0
            .sql(
                "SELECT h.version, h.head, b.entries FROM asc_audit_head h
                 LEFT JOIN asc_audit_batch b ON b.stream = h.stream
                    AND b.last_seq > json_extract(h.head, '$.shipped_sequence')
                 WHERE h.stream = ?1 ORDER BY b.first_seq",
                &[stream.into()],
            )
            .await?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let stored = StoredHead {
            version: number(first.first())?,
            head: parse(first.get(1))?,
        };
        let after = stored.head.shipped_sequence;
        let mut entries = Vec::new();
        for row in &rows {
            // A head without batches joins one row whose batch column is NULL.
            if matches!(row.get(2), None | Some(SqlValue::Null)) {
                continue;
            }
            let batch: Vec<Buffered> = parse(row.get(2))?;
            entries.extend(batch.into_iter().filter(|b| b.entry.sequence > after));
        }
        Ok(Some((stored, entries)))
    }

    /// Batches whose every entry has shipped; a batch shipped in part stays (restores skip what
    /// is at or below the head's shipped sequence).
    async fn drop_entries(&self, stream: &str, through: u64) -> Result<(), HostError> {
        self.0
            .sql(
                "DELETE FROM asc_audit_batch WHERE stream = ?1 AND last_seq <= ?2",
                &[stream.into(), through.into()],
            )
            .await?;
        Ok(())
    }

    async fn backlog(&self, stream: &str, after: u64) -> Result<(u64, Option<u64>), HostError> {
        let rows = self
            .0
            .sql(
                "SELECT COALESCE(SUM(last_seq - MAX(first_seq, ?2 + 1) + 1), 0), MIN(appended_ms)
                 FROM asc_audit_batch WHERE stream = ?1 AND last_seq > ?2",
                &[stream.into(), after.into()],
            )
            .await?;
        let row = rows.first();
        Ok((
            number(row.and_then(|r| r.first()))?,
            row.and_then(|r| r.get(1)).and_then(SqlValue::as_u64),
        ))
    }
}

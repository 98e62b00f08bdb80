//! The response cache in Spin SQLite (the region's database): one row per entry, with its
//! expiry, so reads skip stale rows and writes sweep them.

use asc_core::host::HostError;
use asc_core::response_cache::CacheKey;

use crate::platform::{Platform, SqlValue};

pub const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS asc_response_cache (
        name TEXT PRIMARY KEY,
        entry TEXT NOT NULL,
        expires_ms INTEGER NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS asc_response_cache_expiry ON asc_response_cache (expires_ms)",
];

pub async fn get<P: Platform>(
    platform: &P,
    key: &CacheKey,
    now_ms: u64,
) -> Result<Option<Vec<u8>>, HostError> {
    let rows = platform
        .sql(
            "SELECT entry FROM asc_response_cache WHERE name = ?1 AND expires_ms > ?2",
            &[key.storage_name().into(), now_ms.into()],
        )
        .await?;
    Ok(rows
        .first()
        .and_then(|row| row.first())
        .and_then(SqlValue::as_str)
        .map(|s| s.as_bytes().to_vec()))
}

pub async fn put<P: Platform>(
    platform: &P,
    key: &CacheKey,
    entry: &[u8],
    expires_ms: u64,
    now_ms: u64,
) -> Result<(), HostError> {
    // Entries are the core's JSON; anything else is not stored.
    let text = std::str::from_utf8(entry)
        .map_err(|_| HostError::Store("response cache: entry is not UTF-8".into()))?;
    platform
        .sql(
            "INSERT INTO asc_response_cache (name, entry, expires_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT (name) DO UPDATE SET entry = excluded.entry, expires_ms = excluded.expires_ms",
            &[key.storage_name().into(), text.into(), expires_ms.into()],
        )
        .await?;
    // Writes sweep what has expired, so the table holds live entries only.
    platform
        .sql(
            "DELETE FROM asc_response_cache WHERE expires_ms <= ?1",
            &[now_ms.into()],
        )
        .await?;
    Ok(())
}

//! Upstream's on-disk layout and the statements over it.
//!
//! The state table has upstream's columns and types: `key` (TEXT primary key), `value`
//! (TEXT, see [`super::value`]), `is_binary` (BOOLEAN), `etag` (TEXT, a UUID),
//! `expiration_time` and `update_time` (TIMESTAMP, as SQLite's `YYYY-MM-DD HH:MM:SS`
//! UTC text). A row whose `expiration_time` has passed is treated as absent. The metadata
//! table holds `migrations` (the schema level, `"1"`) and `last-cleanup`, the time of the
//! last cleanup by any process sharing the file.
//!
//! Every write that depends on the current row (an ETag, first-write) is one conditional
//! statement, so it stays correct with other processes writing the same file.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};

use super::value::{self, Encoded};
use crate::state::StateError;

/// The metadata key holding the schema level.
const MIGRATIONS_KEY: &str = "migrations";
/// The schema level this store creates and understands.
const SCHEMA_LEVEL: u32 = 1;
/// Keys per `IN (...)` list of a bulk read.
const BULK_CHUNK: usize = 500;

/// A live row as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct StoredValue {
    /// The stored bytes, decoded.
    pub data: Bytes,
    /// The row's ETag.
    pub etag: String,
    /// The expiry as Unix seconds, when the value has one.
    pub expires: Option<i64>,
}

/// A write, prepared on the async side.
#[derive(Debug, Clone)]
pub(super) struct Write {
    /// The key.
    pub key: String,
    /// The encoded value.
    pub value: Encoded,
    /// The ETag the current row must have.
    pub etag: Option<String>,
    /// First-write without an ETag: only create.
    pub create_only: bool,
    /// The expiry as Unix seconds.
    pub expires: Option<i64>,
}

/// A delete, prepared on the async side.
#[derive(Debug, Clone)]
pub(super) struct Removal {
    /// The key.
    pub key: String,
    /// The ETag the current row must have.
    pub etag: Option<String>,
}

/// The statements, with the configured table names filled in (names are checked
/// identifiers, see the config).
#[derive(Debug, Clone)]
pub(super) struct Statements {
    state_table: String,
    metadata_table: String,
    select_one: String,
    select_many: String,
    upsert: String,
    insert_if_absent: String,
    update_if_etag: String,
    delete: String,
    delete_if_etag: String,
    claim_cleanup: String,
    delete_expired: String,
}

/// The condition for a row that has not expired.
const LIVE: &str = "(expiration_time IS NULL OR expiration_time > CURRENT_TIMESTAMP)";

impl Statements {
    /// Builds the statements for the two tables.
    pub fn new(state_table: &str, metadata_table: &str) -> Self {
        let insert = format!(
            "INSERT INTO {state_table} (key, value, is_binary, etag, update_time, expiration_time)
             VALUES (?1, ?2, ?3, ?4, CURRENT_TIMESTAMP, datetime(?5, 'unixepoch'))
             ON CONFLICT (key) DO UPDATE SET
                 value = excluded.value,
                 is_binary = excluded.is_binary,
                 etag = excluded.etag,
                 update_time = excluded.update_time,
                 expiration_time = excluded.expiration_time"
        );
        let select = format!(
            "SELECT key, value, is_binary, etag, unixepoch(expiration_time) FROM {state_table}"
        );
        Self {
            state_table: state_table.to_owned(),
            metadata_table: metadata_table.to_owned(),
            select_one: format!("{select} WHERE key = ?1 AND {LIVE}"),
            select_many: format!("{select} WHERE key IN ({{keys}}) AND {LIVE}"),
            insert_if_absent: format!(
                "{insert} WHERE {state_table}.expiration_time IS NOT NULL
                     AND {state_table}.expiration_time <= CURRENT_TIMESTAMP"
            ),
            upsert: insert,
            update_if_etag: format!(
                "UPDATE {state_table} SET
                     value = ?2, is_binary = ?3, etag = ?4, update_time = CURRENT_TIMESTAMP,
                     expiration_time = datetime(?5, 'unixepoch')
                 WHERE key = ?1 AND etag = ?6 AND {LIVE}"
            ),
            delete: format!("DELETE FROM {state_table} WHERE key = ?1"),
            delete_if_etag: format!(
                "DELETE FROM {state_table} WHERE key = ?1 AND etag = ?2 AND {LIVE}"
            ),
            claim_cleanup: format!(
                "INSERT INTO {metadata_table} (key, value) VALUES ('last-cleanup', CURRENT_TIMESTAMP)
                 ON CONFLICT (key) DO UPDATE SET value = CURRENT_TIMESTAMP
                 WHERE (unixepoch(CURRENT_TIMESTAMP) - unixepoch(value)) * 1000 > ?1"
            ),
            delete_expired: format!(
                "DELETE FROM {state_table}
                 WHERE expiration_time IS NOT NULL AND expiration_time < CURRENT_TIMESTAMP"
            ),
        }
    }

    /// Creates the tables if needed, under an exclusive lock so that processes starting
    /// together agree on the schema level.
    pub fn migrate(&self, connection: &mut Connection) -> Result<(), StateError> {
        let transaction = connection
            .transaction_with_behavior(TransactionBehavior::Exclusive)
            .map_err(|error| backend("failed to begin transaction", error))?;
        transaction
            .execute(
                &format!(
                    "CREATE TABLE IF NOT EXISTS {} (
                         key text NOT NULL PRIMARY KEY,
                         value text NOT NULL
                     )",
                    self.metadata_table
                ),
                [],
            )
            .map_err(|error| backend("failed to create metadata table", error))?;
        let level: Option<String> = transaction
            .query_row(
                &format!("SELECT value FROM {} WHERE key = ?1", self.metadata_table),
                [MIGRATIONS_KEY],
                |row| row.get(0),
            )
            .optional()
            .map_err(|error| backend("failed to read migration level", error))?;
        let level = match level {
            None => 0,
            Some(text) => text.trim().parse::<u32>().map_err(|_| {
                StateError::Backend(format!(
                    "invalid migration level found in metadata table: {text}"
                ))
            })?,
        };
        if level < SCHEMA_LEVEL {
            tracing::info!(table = %self.state_table, "Creating state table");
            transaction
                .execute(
                    &format!(
                        "CREATE TABLE IF NOT EXISTS {} (
                             key TEXT NOT NULL PRIMARY KEY,
                             value TEXT NOT NULL,
                             is_binary BOOLEAN NOT NULL,
                             etag TEXT NOT NULL,
                             expiration_time TIMESTAMP DEFAULT NULL,
                             update_time TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
                         )",
                        self.state_table
                    ),
                    [],
                )
                .map_err(|error| backend("failed to create state table", error))?;
            transaction
                .execute(
                    &format!(
                        "REPLACE INTO {} (key, value) VALUES (?1, ?2)",
                        self.metadata_table
                    ),
                    params![MIGRATIONS_KEY, SCHEMA_LEVEL.to_string()],
                )
                .map_err(|error| backend("failed to update migration level", error))?;
        }
        transaction
            .commit()
            .map_err(|error| backend("failed to commit transaction", error))
    }

    /// Reads one live row.
    pub fn get(
        &self,
        connection: &Connection,
        key: &str,
    ) -> Result<Option<StoredValue>, StateError> {
        let row = connection
            .prepare_cached(&self.select_one)
            .and_then(|mut statement| statement.query_row([key], read_row).optional())
            .map_err(StateError::backend)?;
        row.map(|(_, value)| value.map_err(StateError::Backend))
            .transpose()
    }

    /// Reads many live rows in a few statements: each found key with its value (or the
    /// reason it could not be decoded); absent keys are left out.
    pub fn get_many(
        &self,
        connection: &Connection,
        keys: &[String],
    ) -> Result<Vec<ReadRow>, StateError> {
        let mut found = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(BULK_CHUNK) {
            let placeholders = vec!["?"; chunk.len()].join(",");
            let sql = self.select_many.replace("{keys}", &placeholders);
            let mut statement = connection.prepare(&sql).map_err(StateError::backend)?;
            let rows = statement
                .query_map(rusqlite::params_from_iter(chunk), read_row)
                .map_err(StateError::backend)?;
            for row in rows {
                found.push(row.map_err(StateError::backend)?);
            }
        }
        Ok(found)
    }

    /// Applies a write, honouring its ETag or create-only condition.
    pub fn write(&self, connection: &Connection, write: &Write) -> Result<(), StateError> {
        let etag = uuid::Uuid::new_v4().to_string();
        let (key, text, is_binary) = (&write.key, &write.value.text, write.value.is_binary);
        let changed = match (&write.etag, write.create_only) {
            (Some(expected), _) => {
                connection
                    .prepare_cached(&self.update_if_etag)
                    .and_then(|mut statement| {
                        statement.execute(params![
                            key,
                            text,
                            is_binary,
                            etag,
                            write.expires,
                            expected
                        ])
                    })
            }
            (None, create_only) => {
                let sql = if create_only {
                    &self.insert_if_absent
                } else {
                    &self.upsert
                };
                connection.prepare_cached(sql).and_then(|mut statement| {
                    statement.execute(params![key, text, is_binary, etag, write.expires])
                })
            }
        }
        .map_err(StateError::backend)?;
        if changed == 0 {
            return Err(match write.etag {
                Some(_) => mismatch(&write.key),
                None => StateError::etag_mismatch(format!(
                    "key {} already exists and no etag was passed",
                    write.key
                )),
            });
        }
        Ok(())
    }

    /// Deletes a row, honouring its ETag; deleting an absent row without one succeeds.
    pub fn remove(&self, connection: &Connection, removal: &Removal) -> Result<(), StateError> {
        let deleted = match &removal.etag {
            Some(expected) => connection
                .prepare_cached(&self.delete_if_etag)
                .and_then(|mut statement| statement.execute(params![removal.key, expected])),
            None => connection
                .prepare_cached(&self.delete)
                .and_then(|mut statement| statement.execute([&removal.key])),
        }
        .map_err(StateError::backend)?;
        if deleted == 0 && removal.etag.is_some() {
            return Err(mismatch(&removal.key));
        }
        Ok(())
    }

    /// Deletes expired rows if no process sharing the file did so within `interval`;
    /// `None` when it was too recent.
    pub fn cleanup(
        &self,
        connection: &Connection,
        interval: Duration,
    ) -> Result<Option<usize>, StateError> {
        // A little slack so a run on schedule is not refused for being a hair early.
        let threshold_ms = i64::try_from(interval.as_millis())
            .unwrap_or(i64::MAX)
            .saturating_sub(100);
        let claimed = connection
            .execute(&self.claim_cleanup, [threshold_ms])
            .map_err(|error| backend("error updating last cleanup time", error))?;
        if claimed == 0 {
            return Ok(None);
        }
        connection
            .execute(&self.delete_expired, [])
            .map(Some)
            .map_err(|error| backend("failed to delete expired rows", error))
    }
}

/// The expiry for a `ttlInSeconds`: none for zero or negative (`-1` removes an expiry),
/// else now plus the TTL, rounded up to the whole second the column can hold so a value
/// never lives shorter than asked.
pub(super) fn expiry(ttl_seconds: Option<i64>) -> Option<i64> {
    let ttl = ttl_seconds.filter(|seconds| *seconds > 0)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let now_rounded_up = i64::try_from(now.as_secs())
        .unwrap_or(i64::MAX)
        .saturating_add(i64::from(now.subsec_nanos() > 0));
    Some(now_rounded_up.saturating_add(ttl))
}

/// A key with its live value, or why the value could not be decoded.
pub(super) type ReadRow = (String, Result<StoredValue, String>);

fn read_row(row: &Row<'_>) -> rusqlite::Result<ReadRow> {
    let key: String = row.get(0)?;
    let data = value::decode(row.get_ref(1)?, row.get_ref(2)?);
    let etag: String = row.get(3)?;
    let expires: Option<i64> = row.get(4)?;
    Ok((
        key,
        data.map(|data| StoredValue {
            data,
            etag,
            expires,
        }),
    ))
}

fn mismatch(key: &str) -> StateError {
    StateError::etag_mismatch(format!("no current value of key {key} has the given etag"))
}

fn backend(context: &str, error: rusqlite::Error) -> StateError {
    StateError::Backend(format!("{context}: {error}"))
}

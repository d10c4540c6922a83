//! The registry's on-disk layout and statements, identical to upstream's so our sidecars
//! and upstream ones can share one database file:
//!
//! - `<tableName>` (default `hosts`): `registration_id TEXT PRIMARY KEY, address TEXT,
//!   app_id TEXT, namespace TEXT, last_update INTEGER` (Unix seconds), a unique index on
//!   `address` and an index on `last_update`;
//! - `<metadataTableName>` (default `metadata`): `key`/`value` text pairs; this resolver
//!   uses the keys `nr-migrations` (schema level, `"1"`) and `nr-last-cleanup` (the
//!   SQLite `CURRENT_TIMESTAMP` of the last cleanup, which coordinates the processes).
//!
//! A registration is live while `unixepoch(CURRENT_TIMESTAMP) - last_update` is below
//! `updateInterval` (in whole seconds).

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, types::Value};

use super::connection::DatabaseError;

/// Metadata key holding the schema level.
const MIGRATIONS_KEY: &str = "nr-migrations";
/// Metadata key holding the time of the last cleanup.
const LAST_CLEANUP_KEY: &str = "nr-last-cleanup";

/// The SQL text of every statement, with the (validated) table names filled in.
#[derive(Debug, Clone)]
pub(super) struct Statements {
    hosts_table: String,
    metadata_table: String,
    /// Takes over any row with the same address: (registration_id, address, app_id, namespace).
    pub register: String,
    /// Heartbeat: (registration_id, address); zero rows changed means the row is gone.
    pub renew: String,
    /// One random live address for (app_id).
    pub resolve: String,
    /// Removes this instance: (registration_id, address).
    pub deregister: String,
    /// Claims the cleanup turn when the last one is older than (seconds); one row changed
    /// means this process may clean up now.
    pub claim_cleanup: String,
    /// Deletes every registration that is no longer live.
    pub delete_expired: String,
}

impl Statements {
    /// Statements for the given tables and `updateInterval` in whole seconds.
    pub fn new(hosts_table: &str, metadata_table: &str, update_interval_seconds: u64) -> Self {
        Self {
            hosts_table: hosts_table.to_owned(),
            metadata_table: metadata_table.to_owned(),
            register: format!(
                "REPLACE INTO {hosts_table} (registration_id, address, app_id, namespace, last_update) \
                 VALUES (?, ?, ?, ?, unixepoch(CURRENT_TIMESTAMP))"
            ),
            renew: format!(
                "UPDATE {hosts_table} SET last_update = unixepoch(CURRENT_TIMESTAMP) \
                 WHERE registration_id = ? AND address = ?"
            ),
            resolve: format!(
                "SELECT address FROM {hosts_table} WHERE ROWID = (\
                   SELECT ROWID FROM {hosts_table} \
                   WHERE app_id = ? AND unixepoch(CURRENT_TIMESTAMP) - last_update < {update_interval_seconds} \
                   ORDER BY RANDOM() LIMIT 1)"
            ),
            deregister: format!(
                "DELETE FROM {hosts_table} WHERE registration_id = ? AND address = ?"
            ),
            claim_cleanup: format!(
                "INSERT INTO {metadata_table} (key, value) VALUES ('{LAST_CLEANUP_KEY}', CURRENT_TIMESTAMP) \
                 ON CONFLICT (key) DO UPDATE SET value = CURRENT_TIMESTAMP \
                 WHERE unixepoch(CURRENT_TIMESTAMP) - unixepoch(value) > ?"
            ),
            delete_expired: format!(
                "DELETE FROM {hosts_table} WHERE unixepoch(CURRENT_TIMESTAMP) - last_update >= {update_interval_seconds}"
            ),
        }
    }

    /// Brings the schema to the current level inside one exclusive transaction, so
    /// several sidecars starting together create it once. Blocking.
    pub fn migrate(&self, connection: &mut Connection) -> Result<(), DatabaseError> {
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Exclusive)?;
        let metadata_table = &self.metadata_table;
        transaction.execute(
            &format!("CREATE TABLE IF NOT EXISTS {metadata_table} (key text NOT NULL PRIMARY KEY, value text NOT NULL)"),
            [],
        )?;
        let level: Option<Value> = transaction
            .query_row(
                &format!("SELECT value FROM {metadata_table} WHERE key = '{MIGRATIONS_KEY}'"),
                [],
                |row| row.get(0),
            )
            .optional()?;
        let level = match level {
            None => 0,
            Some(Value::Integer(level)) if level >= 0 => level,
            Some(Value::Text(text)) => text
                .parse::<i64>()
                .ok()
                .filter(|level| *level >= 0)
                .ok_or_else(|| {
                    DatabaseError::Invalid(format!(
                        "invalid migration level found in metadata table: {text}"
                    ))
                })?,
            Some(other) => {
                return Err(DatabaseError::Invalid(format!(
                    "invalid migration level found in metadata table: {other:?}"
                )));
            }
        };
        if level < 1 {
            tracing::info!(table = %self.hosts_table, "creating the name resolution hosts table");
            let hosts_table = &self.hosts_table;
            transaction.execute_batch(&format!(
                "CREATE TABLE {hosts_table} (
                    registration_id TEXT NOT NULL PRIMARY KEY,
                    address TEXT NOT NULL,
                    app_id TEXT NOT NULL,
                    namespace TEXT NOT NULL,
                    last_update INTEGER NOT NULL
                );
                CREATE UNIQUE INDEX {hosts_table}_address_idx ON {hosts_table} (address);
                CREATE INDEX {hosts_table}_last_update_idx ON {hosts_table} (last_update);"
            ))?;
            transaction.execute(
                &format!(
                    "REPLACE INTO {metadata_table} (key, value) VALUES ('{MIGRATIONS_KEY}', ?)"
                ),
                ["1"],
            )?;
        }
        transaction.commit()?;
        Ok(())
    }
}

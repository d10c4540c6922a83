//! Schema migrations, coordinated through upstream's metadata table
//! (`key text PRIMARY KEY, value text`) so that this store and upstream daprd can share
//! a database: the same `lock` row serialises migrations across processes, and the same
//! key (`migrations` for v1, `migrations-state-v2-<prefix>` for v2) records the level
//! reached, as a number of applied migrations.
//!
//! Unlike upstream (which holds the lock in one transaction and migrates outside it),
//! the lock, the migrations and the level updates share one transaction here, so a
//! failed migration leaves nothing half-applied. And where upstream trusts the recorded
//! level blindly, a state table that does not exist is migrated from the start (the v1
//! key is shared by every v1 table using the same metadata table).

use std::time::Duration;

use tokio_postgres::error::SqlState;

use crate::state::StateError;

use super::pool::{Lease, Param, Pool};

/// The metadata-table row used as a migration lock.
const LOCK_KEY: &str = "lock";
/// How long migrations may take, lock wait included.
const MIGRATION_TIMEOUT: Duration = Duration::from_secs(120);

/// One migration step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Migration {
    /// Parameterless SQL text (may hold several statements).
    Sql(String),
    /// Adds `row_id`, a unique identity column numbered by creation time then key (the
    /// order upstream uses for rows that predate the column).
    RowId {
        /// The state table.
        table: String,
        /// The column holding each row's creation time.
        created_column: &'static str,
    },
}

/// Ensures the metadata table exists and applies the migrations not yet recorded under
/// `migrations_key`.
pub(crate) async fn perform(
    pool: &Pool,
    state_table: &str,
    metadata_table: &str,
    migrations_key: &str,
    migrations: &[Migration],
) -> Result<(), StateError> {
    let work = async {
        let mut lease = pool.get().await?;
        ensure_metadata_table(&mut lease, metadata_table).await?;
        lease
            .execute(
                &format!("INSERT INTO {metadata_table} (key, value) VALUES ($1::text, 'lock') ON CONFLICT (key) DO NOTHING"),
                &[Param::Text(LOCK_KEY.into())],
            )
            .await
            .map_err(|error| context("failed to ensure the migration lock row exists", error))?;
        lease.begin().await?;
        let result = migrate_locked(
            &mut lease,
            state_table,
            metadata_table,
            migrations_key,
            migrations,
        )
        .await;
        match result {
            Ok(()) => lease.commit().await,
            Err(error) => {
                if let Err(rollback) = lease.rollback().await {
                    tracing::warn!(error = %rollback, "failed to roll back the migration transaction");
                }
                Err(error)
            }
        }
    };
    tokio::time::timeout(MIGRATION_TIMEOUT, work)
        .await
        .map_err(|_| {
            StateError::Backend(format!(
                "migrations did not finish within {MIGRATION_TIMEOUT:?}"
            ))
        })?
}

async fn ensure_metadata_table(
    lease: &mut Lease<'_>,
    metadata_table: &str,
) -> Result<(), StateError> {
    let create = format!(
        "CREATE TABLE IF NOT EXISTS {metadata_table} (key text NOT NULL PRIMARY KEY, value text NOT NULL)"
    );
    // Concurrent `CREATE TABLE IF NOT EXISTS` can still collide on the catalog's unique
    // index; the loser retries.
    let mut attempt = 0;
    loop {
        attempt += 1;
        match lease.batch_checked(&create).await {
            Ok(()) => return Ok(()),
            Err(error) if attempt < 3 && error.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(error) => {
                return Err(StateError::Backend(format!(
                    "failed to create metadata table: {}",
                    super::pool::describe(&error)
                )));
            }
        }
    }
}

async fn migrate_locked(
    lease: &mut Lease<'_>,
    state_table: &str,
    metadata_table: &str,
    migrations_key: &str,
    migrations: &[Migration],
) -> Result<(), StateError> {
    lease
        .query(
            &format!("SELECT value FROM {metadata_table} WHERE key = $1::text FOR UPDATE"),
            &[Param::Text(LOCK_KEY.into())],
        )
        .await
        .map_err(|error| context("failed to acquire the migration lock", error))?;
    let rows = lease
        .query(
            &format!("SELECT value FROM {metadata_table} WHERE key = $1::text"),
            &[Param::Text(migrations_key.into())],
        )
        .await
        .map_err(|error| context("failed to read the migration level", error))?;
    let level = match rows.first() {
        None => 0,
        Some(row) => {
            let text: String = row.try_get(0).map_err(StateError::backend)?;
            text.parse::<usize>().map_err(|_| {
                StateError::Backend(format!(
                    "invalid migration level found in metadata table: {text}"
                ))
            })?
        }
    };
    // The v1 level key does not name the table, so a second v1 table sharing a metadata
    // table would find the level already reached and never be created (upstream's
    // behaviour); a missing table is therefore migrated from the start.
    let table_exists = lease
        .query(
            "SELECT 1 WHERE to_regclass($1::text) IS NOT NULL",
            &[Param::Text(state_table.into())],
        )
        .await?;
    let start = if table_exists.is_empty() { 0 } else { level };
    for (index, migration) in migrations.iter().enumerate().skip(start) {
        tracing::info!(
            migration = index + 1,
            "performing postgresql state store migration"
        );
        apply(lease, migration)
            .await
            .map_err(|error| context(&format!("failed to perform migration {index}"), error))?;
        if index < level {
            continue;
        }
        lease
            .execute(
                &format!(
                    "INSERT INTO {metadata_table} (key, value) VALUES ($1::text, $2::text) \
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value"
                ),
                &[
                    Param::Text(migrations_key.into()),
                    Param::Text((index + 1).to_string()),
                ],
            )
            .await
            .map_err(|error| {
                context(
                    "failed to update the migration level in the metadata table",
                    error,
                )
            })?;
    }
    Ok(())
}

async fn apply(lease: &mut Lease<'_>, migration: &Migration) -> Result<(), StateError> {
    match migration {
        Migration::Sql(sql) => lease.batch(sql).await,
        Migration::RowId {
            table,
            created_column,
        } => add_row_id(lease, table, created_column).await,
    }
}

async fn add_row_id(
    lease: &mut Lease<'_>,
    table: &str,
    created_column: &str,
) -> Result<(), StateError> {
    let rows = lease
        .query(
            "SELECT n.nspname, c.relname, format('%I.%I', n.nspname, c.relname) \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.oid = to_regclass($1::text)",
            &[Param::Text(table.into())],
        )
        .await?;
    let Some(row) = rows.first() else {
        return Err(StateError::Backend(format!("table {table:?} not found")));
    };
    let schema: String = row.try_get(0).map_err(StateError::backend)?;
    let name: String = row.try_get(1).map_err(StateError::backend)?;
    // Both parts come back quoted by the server's own `format('%I')`.
    let qualified: String = row.try_get(2).map_err(StateError::backend)?;

    let has_column = lease
        .query(
            "SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass($1::text) \
             AND attname = 'row_id' AND NOT attisdropped",
            &[Param::Text(table.into())],
        )
        .await?;
    if has_column.is_empty() {
        lease
            .batch(&format!("ALTER TABLE {qualified} ADD COLUMN row_id BIGINT"))
            .await?;
    }
    lease
        .batch(&format!(
            "WITH ranked AS (SELECT key, ROW_NUMBER() OVER (ORDER BY {created_column} ASC, key ASC) AS rn \
             FROM {qualified} WHERE row_id IS NULL) \
             UPDATE {qualified} AS t SET row_id = r.rn FROM ranked r WHERE r.key = t.key; \
             ALTER TABLE {qualified} ALTER COLUMN row_id SET NOT NULL"
        ))
        .await?;

    let is_identity = lease
        .query(
            "SELECT 1 FROM information_schema.columns WHERE table_schema = $1::text \
             AND table_name = $2::text AND column_name = 'row_id' AND is_identity = 'YES'",
            &[Param::Text(schema), Param::Text(name.clone())],
        )
        .await?;
    if is_identity.is_empty() {
        lease
            .batch(&format!(
                "ALTER TABLE {qualified} ALTER COLUMN row_id ADD GENERATED BY DEFAULT AS IDENTITY"
            ))
            .await?;
    }
    lease
        .query(
            &format!(
                "SELECT setval(pg_get_serial_sequence($1::text, 'row_id'), \
                 COALESCE((SELECT MAX(row_id) FROM {qualified}), 0) + 1, false)"
            ),
            &[Param::Text(qualified.clone())],
        )
        .await?;
    let index = format!("\"{}\"", format!("{name}_row_id_uidx").replace('"', "\"\""));
    lease
        .batch(&format!(
            "CREATE UNIQUE INDEX IF NOT EXISTS {index} ON {qualified} (row_id)"
        ))
        .await
}

fn context(what: &str, error: StateError) -> StateError {
    StateError::Backend(format!("{what}: {error}"))
}

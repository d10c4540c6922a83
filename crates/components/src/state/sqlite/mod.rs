//! `state.sqlite`: state in a SQLite file (or in memory), in upstream's table layout so
//! a file written by upstream's daprd keeps working and the other way round.
//!
//! Features are upstream's: ETags (a fresh UUID per write), TTLs (`expiration_time`,
//! with an optional periodic cleanup, see [`cleanup`]) and transactions. Several sidecars
//! may share one file: it runs in WAL mode with a busy timeout, and every ETag or
//! first-write check happens inside the statement (or transaction) that writes. Blocking
//! SQLite calls run on tokio's blocking pool, never on the async runtime.

mod cleanup;
mod config;
mod connection;
mod schema;
#[cfg(test)]
mod tests;
mod value;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, UNIX_EPOCH};

use tokio::task::JoinHandle;

pub use config::{
    DEFAULT_BUSY_TIMEOUT, DEFAULT_METADATA_TABLE_NAME, DEFAULT_TABLE_NAME, DEFAULT_TIMEOUT,
    SqliteConfig,
};
use connection::Database;
use schema::{Removal, Statements, StoredValue, Write};

use super::{
    BulkGetItem, Concurrency, DeleteRequest, Feature, GetRequest, GetResponse, SetRequest,
    StateError, StateStore, TTL_EXPIRE_TIME_METADATA_KEY, TransactionOperation, TransactionRequest,
    format_expire_time,
};
use crate::metadata::Properties;
use crate::sqlite::connection::{ConnectionTarget, TxLock};

/// The component type in resources.
pub const COMPONENT: &str = "state.sqlite";

/// How long creating the schema may wait (for other processes doing the same).
const MIGRATION_TIMEOUT: Duration = Duration::from_secs(60);

const FEATURES: &[Feature] = &[Feature::Etag, Feature::Transactional, Feature::Ttl];

/// The `state.sqlite` store.
pub struct SqliteStateStore {
    database: Database,
    statements: Arc<Statements>,
    timeout: Duration,
    txlock: TxLock,
    cleanup: Mutex<Option<JoinHandle<()>>>,
}

impl SqliteStateStore {
    /// Reads the settings, opens the database, creates the tables if needed and starts
    /// the periodic cleanup when `cleanupInterval` is set.
    pub async fn open(properties: &Properties) -> Result<Self, StateError> {
        let config = SqliteConfig::from_properties(properties)?;
        let target = ConnectionTarget::parse(&config.common.connection_string, connection::RULES)
            .map_err(StateError::InvalidMetadata)?;
        if target.in_memory {
            tracing::debug!("Opening an in-memory SQLite state store");
        } else {
            tracing::debug!(path = %target.path(), "Opening the SQLite state store");
        }
        let txlock = target.txlock;
        let database = Database::open(
            target,
            config.common.busy_timeout,
            config.common.disable_wal,
        )
        .await?;
        let statements = Arc::new(Statements::new(
            &config.common.table_name,
            &config.common.metadata_table_name,
        ));
        let migration = Arc::clone(&statements);
        database
            .run(MIGRATION_TIMEOUT, move |connection| {
                migration.migrate(connection)
            })
            .await
            .map_err(|error| {
                StateError::Backend(format!("failed to perform migrations: {error}"))
            })?;
        let cleanup = config
            .cleanup_interval
            .map(|interval| cleanup::spawn(database.clone(), Arc::clone(&statements), interval));
        Ok(Self {
            database,
            statements,
            timeout: config.common.timeout,
            txlock,
            cleanup: Mutex::new(cleanup),
        })
    }

    /// Runs `work` with the statements and the connection, within the request timeout.
    async fn run<T, F>(&self, work: F) -> Result<T, StateError>
    where
        T: Send + 'static,
        F: FnOnce(&Statements, &mut rusqlite::Connection) -> Result<T, StateError> + Send + 'static,
    {
        let statements = Arc::clone(&self.statements);
        self.database
            .run(self.timeout, move |connection| {
                work(&statements, connection)
            })
            .await
    }

    fn stop_cleanup(&self) {
        if let Some(task) = self
            .cleanup
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
    }
}

impl Drop for SqliteStateStore {
    fn drop(&mut self) {
        self.stop_cleanup();
    }
}

/// A transaction's operation, prepared on the async side.
enum Operation {
    Write(Write),
    Remove(Removal),
}

fn prepare_write(request: SetRequest) -> Result<Write, StateError> {
    if request.key.is_empty() {
        return Err(StateError::InvalidRequest(
            "missing key in set option".to_owned(),
        ));
    }
    let expires = schema::expiry(request.ttl_seconds()?);
    let etag = request.etag().map(str::to_owned);
    Ok(Write {
        create_only: etag.is_none() && request.concurrency == Concurrency::FirstWrite,
        value: value::encode(&request.value),
        key: request.key,
        etag,
        expires,
    })
}

fn prepare_removal(request: DeleteRequest) -> Result<Removal, StateError> {
    if request.key.is_empty() {
        return Err(StateError::InvalidRequest(
            "missing key in delete operation".to_owned(),
        ));
    }
    Ok(Removal {
        etag: request.etag().map(str::to_owned),
        key: request.key,
    })
}

/// `ttlExpireTime` for a value with an expiry.
fn expiry_metadata(expires: Option<i64>) -> HashMap<String, String> {
    expires
        .and_then(|seconds| u64::try_from(seconds).ok())
        .map(|seconds| {
            HashMap::from([(
                TTL_EXPIRE_TIME_METADATA_KEY.to_owned(),
                format_expire_time(UNIX_EPOCH + Duration::from_secs(seconds)),
            )])
        })
        .unwrap_or_default()
}

fn response(value: StoredValue) -> GetResponse {
    GetResponse {
        metadata: expiry_metadata(value.expires),
        data: value.data,
        etag: Some(value.etag),
        content_type: None,
    }
}

#[async_trait::async_trait]
impl StateStore for SqliteStateStore {
    fn features(&self) -> &[Feature] {
        FEATURES
    }

    async fn get(&self, request: GetRequest) -> Result<GetResponse, StateError> {
        if request.key.is_empty() {
            return Err(StateError::InvalidRequest(
                "missing key in get operation".to_owned(),
            ));
        }
        let found = self
            .run(move |statements, connection| statements.get(connection, &request.key))
            .await?;
        Ok(found.map(response).unwrap_or_default())
    }

    async fn set(&self, request: SetRequest) -> Result<(), StateError> {
        let write = prepare_write(request)?;
        self.run(move |statements, connection| statements.write(connection, &write))
            .await
    }

    async fn delete(&self, request: DeleteRequest) -> Result<(), StateError> {
        let removal = prepare_removal(request)?;
        self.run(move |statements, connection| statements.remove(connection, &removal))
            .await
    }

    /// One read for all keys (the parallelism does not apply); results come in request
    /// order, missing keys as empty items.
    async fn bulk_get(&self, requests: Vec<GetRequest>, _parallelism: usize) -> Vec<BulkGetItem> {
        if requests.is_empty() {
            return Vec::new();
        }
        let keys: Vec<String> = requests.into_iter().map(|request| request.key).collect();
        let lookup = keys.clone();
        let found = self
            .run(move |statements, connection| statements.get_many(connection, &lookup))
            .await;
        let found: HashMap<String, Result<StoredValue, String>> = match found {
            Ok(found) => found.into_iter().collect(),
            Err(error) => {
                let error = error.to_string();
                return keys
                    .into_iter()
                    .map(|key| BulkGetItem {
                        key,
                        error: Some(error.clone()),
                        ..BulkGetItem::default()
                    })
                    .collect();
            }
        };
        keys.into_iter()
            .map(|key| match found.get(&key).cloned() {
                Some(Ok(value)) => {
                    let response = response(value);
                    BulkGetItem {
                        key,
                        data: response.data,
                        etag: response.etag,
                        metadata: response.metadata,
                        content_type: None,
                        error: None,
                    }
                }
                Some(Err(error)) => BulkGetItem {
                    key,
                    error: Some(error),
                    ..BulkGetItem::default()
                },
                None => BulkGetItem {
                    key,
                    ..BulkGetItem::default()
                },
            })
            .collect()
    }

    async fn transact(&self, request: TransactionRequest) -> Result<(), StateError> {
        let operations = request
            .operations
            .into_iter()
            .map(|operation| match operation {
                TransactionOperation::Upsert(set) => prepare_write(set).map(Operation::Write),
                TransactionOperation::Delete(delete) => {
                    prepare_removal(delete).map(Operation::Remove)
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        if operations.is_empty() {
            return Ok(());
        }
        let behavior = self.txlock.behavior();
        self.run(move |statements, connection| {
            let transaction = connection
                .transaction_with_behavior(behavior)
                .map_err(StateError::backend)?;
            for operation in &operations {
                match operation {
                    Operation::Write(write) => statements.write(&transaction, write)?,
                    Operation::Remove(removal) => statements.remove(&transaction, removal)?,
                }
            }
            transaction.commit().map_err(StateError::backend)
        })
        .await
    }

    async fn ping(&self) -> Result<(), StateError> {
        self.run(|_, connection| {
            connection
                .query_row("SELECT 1", [], |_| Ok(()))
                .map_err(StateError::backend)
        })
        .await
    }

    async fn close(&self) -> Result<(), StateError> {
        self.stop_cleanup();
        Ok(())
    }
}

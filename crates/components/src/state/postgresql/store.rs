//! The store itself: the [`StateStore`] operations written once over a [`Layout`], each
//! bounded by the `timeout` setting, transactions in one SQL transaction on one
//! connection, and the background cleanup's lifetime tied to the store's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use tokio_postgres::Row;

use crate::state::query::Query;
use crate::state::{
    BulkGetItem, Concurrency, DeleteRequest, Feature, GetRequest, GetResponse,
    QUERY_KEY_PREFIX_METADATA, QueryItem, QueryResponse, SetRequest, StateError, StateStore,
    TTL_EXPIRE_TIME_METADATA_KEY, TTL_METADATA_KEY, TransactionOperation, TransactionRequest,
    format_expire_time,
};

use super::PostgresVersion;
use super::cleanup::{Cleanup, CleanupTask};
use super::layout::Layout;
use super::pool::{Lease, Param, Pool};
use super::query;

/// Upstream v1's features (less `KEYS_LIKE`, which this contract does not have).
const V1_FEATURES: &[Feature] = &[
    Feature::Etag,
    Feature::Transactional,
    Feature::Ttl,
    Feature::QueryApi,
];
/// Upstream v2's features (less `KEYS_LIKE`).
const V2_FEATURES: &[Feature] = &[Feature::Etag, Feature::Transactional, Feature::Ttl];

/// The `state.postgresql` store (either version); built by [`super::open`].
pub struct PostgresStateStore {
    version: PostgresVersion,
    pool: Arc<Pool>,
    layout: Layout,
    state_table: String,
    timeout: Duration,
    cleanup: Option<Arc<Cleanup>>,
    cleanup_task: Mutex<Option<CleanupTask>>,
}

/// What [`PostgresStateStore::new`] needs.
pub(crate) struct Parts {
    /// The layout version.
    pub version: PostgresVersion,
    /// The connections (already migrated).
    pub pool: Arc<Pool>,
    /// The layout over the state table.
    pub layout: Layout,
    /// The state table.
    pub state_table: String,
    /// Bound on each operation.
    pub timeout: Duration,
    /// The expired-row cleanup, if enabled.
    pub cleanup: Option<Arc<Cleanup>>,
}

impl PostgresStateStore {
    /// Assembles the store and starts the background cleanup.
    pub(crate) fn new(parts: Parts) -> Self {
        let task = parts.cleanup.clone().map(Cleanup::spawn);
        Self {
            version: parts.version,
            layout: parts.layout,
            pool: parts.pool,
            state_table: parts.state_table,
            timeout: parts.timeout,
            cleanup: parts.cleanup,
            cleanup_task: Mutex::new(task),
        }
    }

    /// The layout version this store uses.
    pub fn version(&self) -> PostgresVersion {
        self.version
    }

    /// Deletes expired rows now, unless any process did so less than `cleanupInterval`
    /// ago (the same check the periodic run makes); returns the number deleted. A no-op
    /// when the cleanup is disabled.
    pub async fn cleanup_expired(&self) -> Result<u64, StateError> {
        match &self.cleanup {
            Some(cleanup) => cleanup.run_once().await,
            None => Ok(0),
        }
    }

    async fn bounded<T>(
        &self,
        work: impl Future<Output = Result<T, StateError>>,
    ) -> Result<T, StateError> {
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| {
                StateError::Backend(format!(
                    "the operation did not complete within {:?}",
                    self.timeout
                ))
            })?
    }

    async fn write(&self, lease: &mut Lease<'_>, request: &SetRequest) -> Result<(), StateError> {
        if request.key.is_empty() {
            return Err(StateError::InvalidRequest(
                "missing key in set operation".into(),
            ));
        }
        let ttl = match request.ttl_seconds()? {
            Some(ttl) if ttl < -1 => {
                return Err(StateError::InvalidRequest(format!(
                    "incorrect value for metadata '{TTL_METADATA_KEY}': must be -1 or greater"
                )));
            }
            ttl => ttl.unwrap_or(0).max(0),
        };
        let statements = &self.layout.statements;
        let mut params = vec![Param::Text(request.key.clone())];
        params.extend(self.layout.value_params(request));
        params.push(Param::Int8(ttl));
        let sql = match request.etag() {
            Some(etag) => {
                params.push(self.layout.etag_param(etag)?);
                &statements.update_with_etag
            }
            None if request.concurrency == Concurrency::FirstWrite => {
                &statements.insert_first_write
            }
            None => &statements.upsert,
        };
        if lease.execute(sql, &params).await? == 1 {
            Ok(())
        } else if request.etag().is_some() {
            Err(StateError::etag_mismatch(
                "the key does not exist or its etag does not match",
            ))
        } else {
            Err(StateError::etag_mismatch("no item was updated"))
        }
    }

    async fn remove(
        &self,
        lease: &mut Lease<'_>,
        request: &DeleteRequest,
    ) -> Result<(), StateError> {
        if request.key.is_empty() {
            return Err(StateError::InvalidRequest(
                "missing key in delete operation".into(),
            ));
        }
        let statements = &self.layout.statements;
        let key = Param::Text(request.key.clone());
        match request.etag() {
            None => lease.execute(&statements.delete, &[key]).await.map(drop),
            Some(etag) => {
                let etag = self.layout.etag_param(etag)?;
                if lease
                    .execute(&statements.delete_with_etag, &[key, etag])
                    .await?
                    == 1
                {
                    Ok(())
                } else {
                    Err(StateError::etag_mismatch(
                        "the key does not exist or its etag does not match",
                    ))
                }
            }
        }
    }

    async fn apply(
        &self,
        lease: &mut Lease<'_>,
        operation: &TransactionOperation,
    ) -> Result<(), StateError> {
        match operation {
            TransactionOperation::Upsert(request) => self.write(lease, request).await,
            TransactionOperation::Delete(request) => self.remove(lease, request).await,
        }
    }
}

/// A live row's value as the contract reports it.
#[derive(Debug, Clone)]
struct Stored {
    data: Bytes,
    etag: Option<String>,
    metadata: HashMap<String, String>,
}

/// Reads `(data, etag, expiry)` starting at column `first`.
fn read_value(row: &Row, first: usize) -> Result<Stored, StateError> {
    let data: Vec<u8> = row.try_get(first).map_err(StateError::backend)?;
    let etag: Option<String> = row.try_get(first + 1).map_err(StateError::backend)?;
    let expires: Option<i64> = row.try_get(first + 2).map_err(StateError::backend)?;
    let metadata = expires
        .map(|seconds| {
            let at =
                SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(seconds).unwrap_or(0));
            HashMap::from([(
                TTL_EXPIRE_TIME_METADATA_KEY.to_owned(),
                format_expire_time(at),
            )])
        })
        .unwrap_or_default();
    Ok(Stored {
        data: Bytes::from(data),
        etag,
        metadata,
    })
}

#[async_trait::async_trait]
impl StateStore for PostgresStateStore {
    fn features(&self) -> &[Feature] {
        match self.version {
            PostgresVersion::V1 => V1_FEATURES,
            PostgresVersion::V2 => V2_FEATURES,
        }
    }

    async fn get(&self, request: GetRequest) -> Result<GetResponse, StateError> {
        if request.key.is_empty() {
            return Err(StateError::InvalidRequest(
                "missing key in get operation".into(),
            ));
        }
        self.bounded(async {
            let mut lease = self.pool.get().await?;
            let rows = lease
                .query(
                    &self.layout.statements.get,
                    &[Param::Text(request.key.clone())],
                )
                .await?;
            let Some(row) = rows.first() else {
                return Ok(GetResponse::default());
            };
            let stored = read_value(row, 0)?;
            Ok(GetResponse {
                data: stored.data,
                etag: stored.etag,
                metadata: stored.metadata,
                content_type: None,
            })
        })
        .await
    }

    async fn set(&self, request: SetRequest) -> Result<(), StateError> {
        self.bounded(async {
            let mut lease = self.pool.get().await?;
            self.write(&mut lease, &request).await
        })
        .await
    }

    async fn delete(&self, request: DeleteRequest) -> Result<(), StateError> {
        self.bounded(async {
            let mut lease = self.pool.get().await?;
            self.remove(&mut lease, &request).await
        })
        .await
    }

    /// One round trip for all keys (`key = ANY($1)`); answers in request order.
    async fn bulk_get(&self, requests: Vec<GetRequest>, _parallelism: usize) -> Vec<BulkGetItem> {
        if requests.is_empty() {
            return Vec::new();
        }
        let keys: Vec<String> = requests.iter().map(|request| request.key.clone()).collect();
        let found = self
            .bounded(async {
                let mut lease = self.pool.get().await?;
                let rows = lease
                    .query(&self.layout.statements.bulk_get, &[Param::TextArray(keys)])
                    .await?;
                rows.iter()
                    .map(|row| {
                        let key: String = row.try_get(0).map_err(StateError::backend)?;
                        Ok((key, read_value(row, 1)?))
                    })
                    .collect::<Result<HashMap<_, _>, StateError>>()
            })
            .await;
        requests
            .into_iter()
            .map(|request| match &found {
                Ok(found) => match found.get(&request.key) {
                    Some(stored) => BulkGetItem {
                        key: request.key,
                        data: stored.data.clone(),
                        etag: stored.etag.clone(),
                        metadata: stored.metadata.clone(),
                        ..BulkGetItem::default()
                    },
                    None => BulkGetItem {
                        key: request.key,
                        ..BulkGetItem::default()
                    },
                },
                Err(error) => BulkGetItem {
                    key: request.key,
                    error: Some(error.to_string()),
                    ..BulkGetItem::default()
                },
            })
            .collect()
    }

    /// All operations in one SQL transaction (a single operation runs on its own, as
    /// upstream does); the first failure rolls everything back.
    async fn transact(&self, request: TransactionRequest) -> Result<(), StateError> {
        let operations = request.operations;
        self.bounded(async {
            let mut lease = self.pool.get().await?;
            match operations.as_slice() {
                [] => Ok(()),
                [single] => self.apply(&mut lease, single).await,
                _ => {
                    lease.begin().await?;
                    for operation in &operations {
                        if let Err(error) = self.apply(&mut lease, operation).await {
                            if let Err(rollback) = lease.rollback().await {
                                tracing::warn!(error = %rollback, "failed to roll back a state transaction");
                            }
                            return Err(error);
                        }
                    }
                    lease.commit().await
                }
            }
        })
        .await
    }

    /// v1 only: the query runs in the database over the `jsonb` values (see `query`).
    async fn query(
        &self,
        query: Query,
        metadata: HashMap<String, String>,
    ) -> Result<QueryResponse, StateError> {
        if self.version != PostgresVersion::V1 {
            return Err(StateError::NotSupported("query"));
        }
        let built = query::build(
            &self.state_table,
            &query,
            metadata.get(QUERY_KEY_PREFIX_METADATA).map(String::as_str),
        )?;
        let rows = self
            .bounded(async {
                let mut lease = self.pool.get().await?;
                lease.query(&built.sql, &built.params).await
            })
            .await?;
        let results = rows
            .iter()
            .map(|row| {
                let key: String = row.try_get(0).map_err(StateError::backend)?;
                let value: String = row.try_get(1).map_err(StateError::backend)?;
                let etag: Option<String> = row.try_get(2).map_err(StateError::backend)?;
                Ok(QueryItem {
                    key,
                    data: Bytes::from(value),
                    etag,
                    ..QueryItem::default()
                })
            })
            .collect::<Result<Vec<_>, StateError>>()?;
        Ok(QueryResponse {
            token: built.next_token(results.len()),
            results,
            metadata: HashMap::new(),
        })
    }

    async fn ping(&self) -> Result<(), StateError> {
        self.bounded(async { self.pool.get().await?.batch("SELECT 1").await })
            .await
    }

    async fn close(&self) -> Result<(), StateError> {
        drop(
            self.cleanup_task
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take(),
        );
        self.pool.close();
        Ok(())
    }
}

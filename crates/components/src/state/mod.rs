//! State stores: the contract every `state.*` component implements, the request and
//! response shapes daprd hands them (upstream's `state.GetRequest`, `SetRequest`, ...),
//! and the built-in stores.
//!
//! Stores see keys exactly as daprd computed them (already prefixed, `app||key`) and
//! values as bytes: daprd decides how a value is encoded (JSON text or raw bytes), each
//! store decides how to keep it so that data written by upstream stays readable.

mod catalog;
#[cfg(test)]
pub(crate) mod conformance;
mod error;
pub mod in_memory;
pub mod postgresql;
pub mod query;
pub mod redis;
pub mod sqlite;

pub use catalog::{OpenError, STATE_STORE_TYPES, open};
pub use error::{EtagErrorKind, StateError};

use std::collections::HashMap;
use std::time::SystemTime;

use bytes::Bytes;

/// The metadata key a request uses to ask for a time to live, in seconds.
pub const TTL_METADATA_KEY: &str = "ttlInSeconds";
/// The metadata key on a get response carrying the RFC 3339 expiry of a value with a TTL.
pub const TTL_EXPIRE_TIME_METADATA_KEY: &str = "ttlExpireTime";
/// The metadata key that marks a store as the actor state store.
pub const ACTOR_STATE_STORE_METADATA_KEY: &str = "actorStateStore";
/// The query metadata key carrying the key prefix (`myapp||`) a query is confined to;
/// daprd always sets it, replacing any value the caller sent (see [`StateStore::query`]).
pub const QUERY_KEY_PREFIX_METADATA: &str = "queryKeyPrefix";

/// An optional capability a store advertises (upstream's feature names, reported by the
/// metadata API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Feature {
    /// Values carry ETags and writes honour them (`ETAG`).
    Etag,
    /// Multi-operation transactions are atomic (`TRANSACTIONAL`).
    Transactional,
    /// The alpha1 query API is supported (`QUERY_API`).
    QueryApi,
    /// `ttlInSeconds` is honoured (`TTL`).
    Ttl,
    /// Keys can be deleted by prefix (`DELETE_WITH_PREFIX`).
    DeleteWithPrefix,
}

impl Feature {
    /// Upstream's name for the feature.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Etag => "ETAG",
            Self::Transactional => "TRANSACTIONAL",
            Self::QueryApi => "QUERY_API",
            Self::Ttl => "TTL",
            Self::DeleteWithPrefix => "DELETE_WITH_PREFIX",
        }
    }
}

/// Read consistency requested by the caller.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Consistency {
    /// No preference (the store's default, usually eventual).
    #[default]
    Unspecified,
    /// `eventual`.
    Eventual,
    /// `strong`.
    Strong,
}

/// Write concurrency requested by the caller.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Concurrency {
    /// No preference: last write wins unless an ETag is given.
    #[default]
    Unspecified,
    /// `first-write`: the write must carry the current ETag (a missing ETag only creates).
    FirstWrite,
    /// `last-write`: an ETag, if given, is still checked (as upstream's stores do).
    LastWrite,
}

/// Fetch one key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GetRequest {
    /// The stored key (already prefixed by daprd).
    pub key: String,
    /// Request metadata (`metadata.*` query parameters or gRPC metadata).
    pub metadata: HashMap<String, String>,
    /// Requested consistency.
    pub consistency: Consistency,
}

/// A fetched value. A missing key is `GetResponse::default()` (empty data, no ETag).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GetResponse {
    /// The stored bytes.
    pub data: Bytes,
    /// The value's ETag, for stores with [`Feature::Etag`].
    pub etag: Option<String>,
    /// Extra facts about the value (`ttlExpireTime`).
    pub metadata: HashMap<String, String>,
    /// The content type recorded with the value, if the store keeps one.
    pub content_type: Option<String>,
}

impl GetResponse {
    /// True when the key was not found (no data and no ETag).
    pub fn is_missing(&self) -> bool {
        self.data.is_empty() && self.etag.is_none()
    }
}

/// One result of a bulk get: a value, or the error that fetching this key met.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BulkGetItem {
    /// The key that was asked for.
    pub key: String,
    /// The value (empty when missing or failed).
    pub data: Bytes,
    /// The value's ETag.
    pub etag: Option<String>,
    /// Extra facts about the value.
    pub metadata: HashMap<String, String>,
    /// The content type recorded with the value.
    pub content_type: Option<String>,
    /// Why this key could not be read, if it could not.
    pub error: Option<String>,
}

/// Write one key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetRequest {
    /// The stored key (already prefixed).
    pub key: String,
    /// The encoded value.
    pub value: Bytes,
    /// The ETag the caller expects the current value to have (empty means none).
    pub etag: Option<String>,
    /// Request metadata, including `ttlInSeconds`.
    pub metadata: HashMap<String, String>,
    /// Requested concurrency.
    pub concurrency: Concurrency,
    /// Requested consistency.
    pub consistency: Consistency,
    /// The value's content type, for stores that record it.
    pub content_type: Option<String>,
}

impl SetRequest {
    /// The ETag to check, if a non-empty one was given.
    pub fn etag(&self) -> Option<&str> {
        self.etag.as_deref().filter(|etag| !etag.is_empty())
    }

    /// The requested time to live: `Ok(None)` when unset; `Ok(Some(secs))` where a
    /// negative number (upstream: `-1`) means "never expire" and is passed on as is.
    pub fn ttl_seconds(&self) -> Result<Option<i64>, StateError> {
        ttl_seconds(&self.metadata)
    }
}

/// Delete one key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteRequest {
    /// The stored key (already prefixed).
    pub key: String,
    /// The ETag the caller expects the current value to have (empty means none).
    pub etag: Option<String>,
    /// Request metadata.
    pub metadata: HashMap<String, String>,
    /// Requested concurrency.
    pub concurrency: Concurrency,
    /// Requested consistency.
    pub consistency: Consistency,
}

impl DeleteRequest {
    /// The ETag to check, if a non-empty one was given.
    pub fn etag(&self) -> Option<&str> {
        self.etag.as_deref().filter(|etag| !etag.is_empty())
    }
}

/// One operation of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransactionOperation {
    /// Create or replace a value.
    Upsert(SetRequest),
    /// Remove a value.
    Delete(DeleteRequest),
}

/// A multi-operation transaction: all operations apply, or none does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransactionRequest {
    /// The operations, applied in order.
    pub operations: Vec<TransactionOperation>,
    /// Request metadata.
    pub metadata: HashMap<String, String>,
}

/// One matching entry of a query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryItem {
    /// The stored key.
    pub key: String,
    /// The stored bytes.
    pub data: Bytes,
    /// The value's ETag.
    pub etag: Option<String>,
    /// The content type recorded with the value.
    pub content_type: Option<String>,
    /// Why this entry could not be read, if it could not.
    pub error: Option<String>,
}

/// A page of query results.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryResponse {
    /// Matching entries, in the requested order.
    pub results: Vec<QueryItem>,
    /// Pass back as `page.token` to fetch the next page; empty when there is none.
    pub token: String,
    /// Extra facts about the query.
    pub metadata: HashMap<String, String>,
}

/// A state store component.
#[async_trait::async_trait]
pub trait StateStore: Send + Sync {
    /// The optional capabilities this store has.
    fn features(&self) -> &[Feature];

    /// Fetches one key; a missing key is `Ok(GetResponse::default())`.
    async fn get(&self, request: GetRequest) -> Result<GetResponse, StateError>;

    /// Writes one key, honouring its ETag and TTL.
    async fn set(&self, request: SetRequest) -> Result<(), StateError>;

    /// Deletes one key, honouring its ETag; deleting a missing key without an ETag succeeds.
    async fn delete(&self, request: DeleteRequest) -> Result<(), StateError>;

    /// Fetches many keys, at most `parallelism` at a time (0 means no limit). Per-key
    /// failures are reported in the item, not as an error of the whole call.
    async fn bulk_get(&self, requests: Vec<GetRequest>, parallelism: usize) -> Vec<BulkGetItem> {
        use futures::StreamExt;
        let limit = if parallelism == 0 {
            requests.len().max(1)
        } else {
            parallelism
        };
        futures::stream::iter(requests)
            .map(|request| async move {
                let key = request.key.clone();
                match self.get(request).await {
                    Ok(response) => BulkGetItem {
                        key,
                        data: response.data,
                        etag: response.etag,
                        metadata: response.metadata,
                        content_type: response.content_type,
                        error: None,
                    },
                    Err(error) => BulkGetItem {
                        key,
                        error: Some(error.to_string()),
                        ..BulkGetItem::default()
                    },
                }
            })
            .buffered(limit)
            .collect()
            .await
    }

    /// Writes many keys; stores without transactions write them one by one and report
    /// the first failure.
    async fn bulk_set(&self, requests: Vec<SetRequest>) -> Result<(), StateError> {
        for request in requests {
            self.set(request).await?;
        }
        Ok(())
    }

    /// Deletes many keys, like [`StateStore::bulk_set`].
    async fn bulk_delete(&self, requests: Vec<DeleteRequest>) -> Result<(), StateError> {
        for request in requests {
            self.delete(request).await?;
        }
        Ok(())
    }

    /// Applies a transaction atomically; only stores with [`Feature::Transactional`].
    async fn transact(&self, _request: TransactionRequest) -> Result<(), StateError> {
        Err(StateError::NotSupported("transactions"))
    }

    /// Runs an alpha1 query; only stores with [`Feature::QueryApi`].
    ///
    /// Scoping: a query sees only the keys that start with the prefix in
    /// `metadata[QUERY_KEY_PREFIX_METADATA]` (daprd passes the caller's `appid||`); without
    /// that entry it sees every key. Results carry the full stored keys, prefix included
    /// (daprd strips it). Paging: `page.limit` caps a page; a non-empty `token` in the
    /// response fetches the next one, and the last page may come back empty.
    async fn query(
        &self,
        _query: query::Query,
        _metadata: HashMap<String, String>,
    ) -> Result<QueryResponse, StateError> {
        Err(StateError::NotSupported("query"))
    }

    /// Deletes every key starting with `prefix` and returns how many; only stores with
    /// [`Feature::DeleteWithPrefix`]. As upstream: `||` is appended to a prefix that lacks
    /// it, an empty prefix (or `||` alone) is an [`StateError::InvalidRequest`] (see
    /// [`delete_prefix`]), and keys with a further `||` after the prefix (a nested prefix)
    /// are kept.
    async fn delete_with_prefix(&self, _prefix: &str) -> Result<u64, StateError> {
        Err(StateError::NotSupported("delete with prefix"))
    }

    /// Checks the connection to the backing service (the metadata API's ping).
    async fn ping(&self) -> Result<(), StateError> {
        Ok(())
    }

    /// Releases connections and background tasks.
    async fn close(&self) -> Result<(), StateError> {
        Ok(())
    }
}

/// Reads `ttlInSeconds` from request metadata: unset is `None`; it must be a whole number.
pub fn ttl_seconds(metadata: &HashMap<String, String>) -> Result<Option<i64>, StateError> {
    let Some(text) = metadata.get(TTL_METADATA_KEY) else {
        return Ok(None);
    };
    text.trim().parse::<i64>().map(Some).map_err(|_| {
        StateError::InvalidRequest(format!(
            "incorrect value for metadata '{TTL_METADATA_KEY}': {text}"
        ))
    })
}

/// Checks a delete-with-prefix prefix and completes it with `||` as upstream does.
pub fn delete_prefix(prefix: &str) -> Result<String, StateError> {
    if prefix.is_empty() || prefix == "||" {
        return Err(StateError::InvalidRequest(
            "a prefix is required for deleteWithPrefix request".to_owned(),
        ));
    }
    Ok(if prefix.ends_with("||") {
        prefix.to_owned()
    } else {
        format!("{prefix}||")
    })
}

/// Formats an expiry instant as upstream reports `ttlExpireTime` (RFC 3339, UTC, seconds).
pub fn format_expire_time(at: SystemTime) -> String {
    let seconds = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs() as i64)
        .unwrap_or(0);
    format_rfc3339(seconds)
}

fn format_rfc3339(unix_seconds: i64) -> String {
    let days = unix_seconds.div_euclid(86_400);
    let secs_of_day = unix_seconds.rem_euclid(86_400);
    // Civil-from-days (proleptic Gregorian), after Howard Hinnant's published algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs_of_day / 3_600,
        secs_of_day % 3_600 / 60,
        secs_of_day % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn expire_times_format_as_rfc3339_utc() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(
            format_expire_time(SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000)),
            "2026-11-18T11:06:40Z"
        );
    }

    #[test]
    fn ttl_metadata_must_be_a_whole_number() {
        let mut metadata = HashMap::new();
        assert_eq!(ttl_seconds(&metadata).unwrap(), None);
        metadata.insert(TTL_METADATA_KEY.to_owned(), "-1".to_owned());
        assert_eq!(ttl_seconds(&metadata).unwrap(), Some(-1));
        metadata.insert(TTL_METADATA_KEY.to_owned(), "soon".to_owned());
        assert!(ttl_seconds(&metadata).is_err());
    }
}

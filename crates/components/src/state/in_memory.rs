//! `state.in-memory`: a state store inside the sidecar's memory, gone when it stops.
//!
//! As upstream's: every write gets a fresh UUID ETag, `ttlInSeconds` above zero sets an
//! expiry (zero or negative means none), transactions check every operation before any
//! applies, and delete-with-prefix keeps nested prefixes. Expired values are invisible at
//! once and removed by the next write (expiries are kept in time order, so that costs
//! only the values actually expired; no background task). Beyond upstream, the alpha1
//! query API is evaluated in process over the JSON values.

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use serde_json::Value;

use super::query::{Order, Query, Sorting, compare_values, lookup};
use super::{
    BulkGetItem, Concurrency, DeleteRequest, Feature, GetRequest, GetResponse,
    QUERY_KEY_PREFIX_METADATA, QueryItem, QueryResponse, SetRequest, StateError, StateStore,
    TTL_EXPIRE_TIME_METADATA_KEY, TransactionOperation, TransactionRequest, delete_prefix,
    format_expire_time,
};
use crate::metadata::Properties;

/// The component type in resources.
pub const COMPONENT: &str = "state.in-memory";

const FEATURES: &[Feature] = &[
    Feature::Etag,
    Feature::Transactional,
    Feature::Ttl,
    Feature::DeleteWithPrefix,
    Feature::QueryApi,
];

/// The `state.in-memory` store.
#[derive(Default)]
pub struct InMemoryStateStore {
    items: RwLock<Items>,
}

/// The values, and their expiries in time order.
#[derive(Default)]
struct Items {
    entries: HashMap<String, Entry>,
    expiries: BTreeSet<(Instant, String)>,
}

#[derive(Clone)]
struct Entry {
    data: Bytes,
    etag: String,
    expiry: Option<Expiry>,
}

#[derive(Clone, Copy)]
struct Expiry {
    /// When the value stops being visible.
    at: Instant,
    /// The same moment on the wall clock, for `ttlExpireTime`.
    wall: SystemTime,
}

impl InMemoryStateStore {
    /// Creates an empty store; upstream's component has no settings, so any are ignored.
    pub fn open(_properties: &Properties) -> Result<Self, StateError> {
        Ok(Self::default())
    }

    fn read(&self) -> RwLockReadGuard<'_, Items> {
        self.items.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The write lock, with expired values already removed.
    fn write(&self) -> RwLockWriteGuard<'_, Items> {
        let mut items = self.items.write().unwrap_or_else(PoisonError::into_inner);
        items.purge(Instant::now());
        items
    }
}

impl Entry {
    fn new(data: Bytes, ttl_seconds: Option<i64>) -> Self {
        // A TTL too large for the clocks is as good as none.
        let expiry = ttl_seconds
            .and_then(|seconds| u64::try_from(seconds).ok())
            .filter(|seconds| *seconds > 0)
            .and_then(|seconds| {
                let ttl = Duration::from_secs(seconds);
                Some(Expiry {
                    at: Instant::now().checked_add(ttl)?,
                    wall: SystemTime::now().checked_add(ttl)?,
                })
            });
        Self {
            data,
            etag: uuid::Uuid::new_v4().to_string(),
            expiry,
        }
    }

    fn alive(&self, now: Instant) -> bool {
        self.expiry.is_none_or(|expiry| now < expiry.at)
    }

    fn metadata(&self) -> HashMap<String, String> {
        self.expiry
            .map(|expiry| {
                HashMap::from([(
                    TTL_EXPIRE_TIME_METADATA_KEY.to_owned(),
                    format_expire_time(expiry.wall),
                )])
            })
            .unwrap_or_default()
    }
}

impl Items {
    fn live(&self, key: &str, now: Instant) -> Option<&Entry> {
        self.entries.get(key).filter(|entry| entry.alive(now))
    }

    fn insert(&mut self, key: String, entry: Entry) {
        self.remove(&key);
        if let Some(expiry) = entry.expiry {
            self.expiries.insert((expiry.at, key.clone()));
        }
        self.entries.insert(key, entry);
    }

    fn remove(&mut self, key: &str) -> Option<Entry> {
        let entry = self.entries.remove(key)?;
        if let Some(expiry) = entry.expiry {
            self.expiries.remove(&(expiry.at, key.to_owned()));
        }
        Some(entry)
    }

    /// Drops every value whose expiry has passed.
    fn purge(&mut self, now: Instant) {
        while let Some((at, _)) = self.expiries.first() {
            if *at > now {
                break;
            }
            if let Some((_, key)) = self.expiries.pop_first() {
                self.entries.remove(&key);
            }
        }
    }
}

/// Upstream's ETag rules: a given ETag must match the live value; under first-write a
/// write without one may only create.
fn check_etag(
    current: Option<&Entry>,
    key: &str,
    etag: Option<&str>,
    concurrency: Concurrency,
) -> Result<(), StateError> {
    match (etag, current) {
        (None, Some(_)) if concurrency == Concurrency::FirstWrite => Err(
            StateError::etag_mismatch("item already exists and no etag was passed"),
        ),
        (None, _) => Ok(()),
        (Some(_), None) => Err(StateError::etag_mismatch(format!(
            "state not exist or expired for key={key}"
        ))),
        (Some(expected), Some(entry)) if entry.etag != expected => {
            Err(StateError::etag_mismatch(format!(
                "state etag not match for key={key}: current={}, expect={expected}",
                entry.etag
            )))
        }
        (Some(_), Some(_)) => Ok(()),
    }
}

#[async_trait::async_trait]
impl StateStore for InMemoryStateStore {
    fn features(&self) -> &[Feature] {
        FEATURES
    }

    async fn get(&self, request: GetRequest) -> Result<GetResponse, StateError> {
        let items = self.read();
        Ok(items
            .live(&request.key, Instant::now())
            .map(|entry| GetResponse {
                data: entry.data.clone(),
                etag: Some(entry.etag.clone()),
                metadata: entry.metadata(),
                content_type: None,
            })
            .unwrap_or_default())
    }

    async fn set(&self, request: SetRequest) -> Result<(), StateError> {
        let ttl = request.ttl_seconds()?;
        let mut items = self.write();
        let current = items.live(&request.key, Instant::now());
        check_etag(current, &request.key, request.etag(), request.concurrency)?;
        items.insert(request.key, Entry::new(request.value, ttl));
        Ok(())
    }

    async fn delete(&self, request: DeleteRequest) -> Result<(), StateError> {
        let mut items = self.write();
        let current = items.live(&request.key, Instant::now());
        check_etag(current, &request.key, request.etag(), request.concurrency)?;
        items.remove(&request.key);
        Ok(())
    }

    async fn bulk_get(&self, requests: Vec<GetRequest>, _parallelism: usize) -> Vec<BulkGetItem> {
        let items = self.read();
        let now = Instant::now();
        requests
            .into_iter()
            .map(|request| match items.live(&request.key, now) {
                Some(entry) => BulkGetItem {
                    data: entry.data.clone(),
                    etag: Some(entry.etag.clone()),
                    metadata: entry.metadata(),
                    key: request.key,
                    content_type: None,
                    error: None,
                },
                None => BulkGetItem {
                    key: request.key,
                    ..BulkGetItem::default()
                },
            })
            .collect()
    }

    async fn transact(&self, request: TransactionRequest) -> Result<(), StateError> {
        let ttls = request
            .operations
            .iter()
            .map(|operation| match operation {
                TransactionOperation::Upsert(set) => set.ttl_seconds(),
                TransactionOperation::Delete(_) => Ok(None),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut items = self.write();
        let now = Instant::now();
        // Operations see the effect of earlier ones; nothing touches the store until all
        // have passed their checks.
        let mut staged: HashMap<String, Option<Entry>> = HashMap::new();
        for (operation, ttl) in request.operations.into_iter().zip(ttls) {
            let (key, etag, concurrency, next) = match operation {
                TransactionOperation::Upsert(set) => {
                    let etag = set.etag().map(str::to_owned);
                    (
                        set.key,
                        etag,
                        set.concurrency,
                        Some(Entry::new(set.value, ttl)),
                    )
                }
                TransactionOperation::Delete(delete) => {
                    let etag = delete.etag().map(str::to_owned);
                    (delete.key, etag, delete.concurrency, None)
                }
            };
            let current = match staged.get(&key) {
                Some(staged) => staged.as_ref(),
                None => items.live(&key, now),
            };
            check_etag(current, &key, etag.as_deref(), concurrency)?;
            staged.insert(key, next);
        }
        for (key, entry) in staged {
            match entry {
                Some(entry) => items.insert(key, entry),
                None => {
                    items.remove(&key);
                }
            }
        }
        Ok(())
    }

    async fn query(
        &self,
        query: Query,
        metadata: HashMap<String, String>,
    ) -> Result<QueryResponse, StateError> {
        let offset = match query.token.as_str() {
            "" => 0,
            token => token.parse::<usize>().map_err(|_| {
                StateError::InvalidRequest(format!("invalid query page token {token:?}"))
            })?,
        };
        let scope = metadata
            .get(QUERY_KEY_PREFIX_METADATA)
            .map(String::as_str)
            .unwrap_or_default();
        let items = self.read();
        let now = Instant::now();
        // Only JSON values take part: the query language addresses JSON fields.
        let mut matches: Vec<(&String, Value, &Entry)> = items
            .entries
            .iter()
            .filter(|(key, entry)| key.starts_with(scope) && entry.alive(now))
            .filter_map(|(key, entry)| {
                let value = serde_json::from_slice::<Value>(&entry.data).ok()?;
                Some((key, value, entry))
            })
            .filter(|(_, value, _)| {
                query
                    .filter
                    .as_ref()
                    .is_none_or(|filter| filter.matches(value))
            })
            .collect();
        matches.sort_by(|left, right| {
            compare_sorted(&query.sort, &left.1, &right.1).then_with(|| left.0.cmp(right.0))
        });
        let total = matches.len();
        let limit = if query.limit == 0 {
            usize::MAX
        } else {
            query.limit
        };
        let results: Vec<QueryItem> = matches
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(|(key, _, entry)| QueryItem {
                key: key.clone(),
                data: entry.data.clone(),
                etag: Some(entry.etag.clone()),
                content_type: None,
                error: None,
            })
            .collect();
        let next = offset.saturating_add(results.len());
        let token = if query.limit > 0 && next < total {
            next.to_string()
        } else {
            String::new()
        };
        Ok(QueryResponse {
            results,
            token,
            metadata: HashMap::new(),
        })
    }

    async fn delete_with_prefix(&self, prefix: &str) -> Result<u64, StateError> {
        let prefix = delete_prefix(prefix)?;
        let mut items = self.write();
        let doomed: Vec<String> = items
            .entries
            .keys()
            .filter(|key| {
                key.strip_prefix(prefix.as_str())
                    .is_some_and(|rest| !rest.contains("||"))
            })
            .cloned()
            .collect();
        for key in &doomed {
            items.remove(key);
        }
        Ok(doomed.len() as u64)
    }

    async fn close(&self) -> Result<(), StateError> {
        *self.items.write().unwrap_or_else(PoisonError::into_inner) = Items::default();
        Ok(())
    }
}

/// Orders two values by the sort keys, most significant first.
fn compare_sorted(sort: &[Sorting], left: &Value, right: &Value) -> Ordering {
    sort.iter()
        .map(|sorting| {
            let ordering = compare_field(lookup(left, &sorting.key), lookup(right, &sorting.key));
            match sorting.order {
                Order::Asc => ordering,
                Order::Desc => ordering.reverse(),
            }
        })
        .find(|ordering| ordering.is_ne())
        .unwrap_or(Ordering::Equal)
}

/// A total order on field values: a missing field sorts after any value (as SQL sorts
/// NULL in ascending order), values of different kinds by kind (PostgreSQL's `jsonb`
/// order), values of one kind by [`compare_values`].
fn compare_field(left: Option<&Value>, right: Option<&Value>) -> Ordering {
    match (left, right) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(left), Some(right)) => kind_rank(left)
            .cmp(&kind_rank(right))
            .then_with(|| compare_values(left, right).unwrap_or(Ordering::Equal)),
    }
}

fn kind_rank(value: &Value) -> u8 {
    match value {
        Value::Null => 0,
        Value::String(_) => 1,
        Value::Number(_) => 2,
        Value::Bool(_) => 3,
        Value::Array(_) => 4,
        Value::Object(_) => 5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn store() -> InMemoryStateStore {
        InMemoryStateStore::open(&Properties::default()).unwrap()
    }

    #[tokio::test]
    async fn passes_the_conformance_suite() {
        super::super::conformance::run_all(&store()).await;
    }

    #[tokio::test]
    async fn expired_values_leave_memory_on_the_next_write() {
        let store = store();
        let mut request = SetRequest {
            key: "app||short".into(),
            value: Bytes::from_static(b"1"),
            ..SetRequest::default()
        };
        request
            .metadata
            .insert(super::super::TTL_METADATA_KEY.into(), "1".into());
        store.set(request).await.unwrap();
        assert_eq!(store.read().expiries.len(), 1);
        tokio::time::sleep(Duration::from_millis(1100)).await;
        store
            .set(SetRequest {
                key: "app||other".into(),
                value: Bytes::from_static(b"2"),
                ..SetRequest::default()
            })
            .await
            .unwrap();
        let items = store.read();
        assert!(items.expiries.is_empty());
        assert_eq!(
            items.entries.keys().cloned().collect::<Vec<_>>(),
            vec!["app||other".to_owned()]
        );
    }

    #[tokio::test]
    async fn an_etag_for_a_missing_key_is_a_mismatch() {
        let store = store();
        let error = store
            .set(SetRequest {
                key: "app||missing".into(),
                value: Bytes::from_static(b"1"),
                etag: Some("an-etag".into()),
                ..SetRequest::default()
            })
            .await
            .unwrap_err();
        assert_eq!(
            error,
            StateError::etag_mismatch("state not exist or expired for key=app||missing")
        );
        let error = store
            .delete(DeleteRequest {
                key: "app||missing".into(),
                etag: Some("an-etag".into()),
                ..DeleteRequest::default()
            })
            .await
            .unwrap_err();
        assert!(matches!(error, StateError::Etag { .. }), "{error}");

        let first_write = || SetRequest {
            key: "app||first".into(),
            value: Bytes::from_static(b"1"),
            concurrency: Concurrency::FirstWrite,
            ..SetRequest::default()
        };
        store.set(first_write()).await.unwrap();
        let error = store.set(first_write()).await.unwrap_err();
        assert_eq!(
            error,
            StateError::etag_mismatch("item already exists and no etag was passed")
        );
    }

    #[tokio::test]
    async fn a_ttl_beyond_the_clocks_means_no_expiry() {
        let store = store();
        let mut request = SetRequest {
            key: "app||forever".into(),
            value: Bytes::from_static(b"1"),
            ..SetRequest::default()
        };
        request
            .metadata
            .insert(super::super::TTL_METADATA_KEY.into(), i64::MAX.to_string());
        store.set(request).await.unwrap();
        let read = store
            .get(GetRequest {
                key: "app||forever".into(),
                ..GetRequest::default()
            })
            .await
            .unwrap();
        assert_eq!(read.data, &b"1"[..]);
        assert!(read.metadata.is_empty());
    }

    #[tokio::test]
    async fn operations_in_one_transaction_see_each_other() {
        let store = store();
        store
            .set(SetRequest {
                key: "app||k".into(),
                value: Bytes::from_static(b"1"),
                ..SetRequest::default()
            })
            .await
            .unwrap();
        let etag = store
            .get(GetRequest {
                key: "app||k".into(),
                ..GetRequest::default()
            })
            .await
            .unwrap()
            .etag
            .unwrap();
        // The first upsert replaces the ETag, so the second one's (old) ETag is stale.
        let upsert = || {
            TransactionOperation::Upsert(SetRequest {
                key: "app||k".into(),
                value: Bytes::from_static(b"2"),
                etag: Some(etag.clone()),
                ..SetRequest::default()
            })
        };
        let error = store
            .transact(TransactionRequest {
                operations: vec![upsert(), upsert()],
                metadata: HashMap::new(),
            })
            .await
            .unwrap_err();
        assert!(matches!(error, StateError::Etag { .. }), "{error}");
    }

    #[test]
    fn sorting_puts_missing_fields_last_and_orders_kinds() {
        let sort = [Sorting {
            key: "a".into(),
            order: Order::Asc,
        }];
        let mut values = [
            json!({}),
            json!({"a": true}),
            json!({"a": 2}),
            json!({"a": "x"}),
            json!({"a": 1.5}),
            json!({"a": null}),
        ];
        values.sort_by(|left, right| compare_sorted(&sort, left, right));
        assert_eq!(
            values.to_vec(),
            vec![
                json!({"a": null}),
                json!({"a": "x"}),
                json!({"a": 1.5}),
                json!({"a": 2}),
                json!({"a": true}),
                json!({}),
            ]
        );
    }
}

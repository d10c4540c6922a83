//! `state.redis`: the Redis state store, compatible on the wire and on the store with
//! upstream's component, so either daprd can read what the other wrote.
//!
//! Each value is a hash `{data, version[, first-write]}` whose `version` counter is the
//! ETag; writes and deletes run as Lua scripts that check the ETag and write in one step
//! (`scripts`). Keys holding a plain string (from before ETags) read back without an
//! ETag and are replaced by the next write. With RedisJSON on the server, requests with
//! content type `application/json` use upstream's JSON document layout instead, and with
//! RediSearch too, `queryIndexes` enables the query API (`search`).
//!
//! The ETag and first-write rules are upstream's (see `scripts`): an ETag for a missing
//! key creates it or deletes nothing, and a refused write is an ETag mismatch only when
//! the request carried an ETag (otherwise a plain error, as upstream reports it).
//!
//! `ttlInSeconds` (or the store-wide default) above zero sets an expiry, zero or `-1`
//! removes it, and a write with neither keeps whatever expiry the key has. Gets report
//! `ttlExpireTime`.
//!
//! Transactions run as one script that checks every ETag before it writes anything, so a
//! failed check applies nothing. In cluster mode a transaction is atomic per hash slot,
//! as upstream's per-slot pipelines are.
//!
//! Where behaviour differs from upstream's component (the stored data does not): a
//! transaction that fails a check writes nothing (upstream's MULTI/EXEC applies the other
//! commands); gets report `ttlExpireTime`; a lost connection is a backend error, never
//! an ETag mismatch.

pub(crate) mod connection;
pub(crate) mod metadata;
mod node;
mod scripts;
mod search;
mod slot;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use redis::{ErrorKind, RedisError, RedisResult, Value};

use crate::metadata::Properties;
use crate::state::query::Query;
use crate::state::{
    Concurrency, Consistency, DeleteRequest, Feature, GetRequest, GetResponse, QueryResponse,
    SetRequest, StateError, StateStore, TTL_EXPIRE_TIME_METADATA_KEY, TTL_METADATA_KEY,
    TransactionOperation, TransactionRequest, format_expire_time,
};

use connection::{Access, Redis};
use metadata::RedisMetadata;
use search::IndexSchema;

/// The request metadata key carrying the value's content type.
const CONTENT_TYPE_METADATA_KEY: &str = "contentType";
/// The content type that selects the RedisJSON layout (when the server has RedisJSON).
const JSON_CONTENT_TYPE: &str = "application/json";
/// How long a strongly consistent write waits for replicas to acknowledge it, in ms.
const REPLICA_WAIT_MILLIS: u64 = 1000;

/// Opens a Redis state store from the component's settings: connects, checks the server
/// answers, detects RedisJSON and RediSearch, and registers the query indexes.
pub async fn open(properties: &Properties) -> Result<RedisStateStore, StateError> {
    let metadata = RedisMetadata::parse(properties)?;
    let schemas = search::parse_schemas(&metadata.query_indexes).map_err(|error| {
        StateError::InvalidMetadata(format!(
            "redis store: error parsing query index schema: {error}"
        ))
    })?;
    metadata::warn_about_pool_settings(&metadata);

    let unreachable = |error: RedisError| {
        StateError::Backend(format!(
            "redis store: error connecting to redis at {}: {error}",
            metadata.hosts()
        ))
    };
    let redis = Redis::connect(&metadata).await.map_err(unreachable)?;
    redis
        .query::<String>(Access::Read, &redis::cmd("PING"))
        .await
        .map_err(unreachable)?;
    let replicas = if redis.is_cluster() {
        0
    } else {
        let info = redis
            .query::<String>(Access::Read, redis::cmd("INFO").arg("replication"))
            .await
            .map_err(StateError::backend)?;
        connected_replicas(&info)
    };
    for (name, schema) in &schemas {
        register_index(&redis, name, schema)
            .await
            .map_err(|error| {
                StateError::InvalidMetadata(format!(
                    "redis store: error registering query schemas: {error}"
                ))
            })?;
    }
    let has_json = has_command(&redis, "JSON.GET").await?;
    let has_search = has_command(&redis, "FT._LIST").await?;

    let mut features = vec![Feature::Etag, Feature::Transactional, Feature::Ttl];
    if !schemas.is_empty() && has_json && has_search {
        features.push(Feature::QueryApi);
    }
    tracing::debug!(
        hosts = %metadata.hosts(),
        replicas,
        has_json,
        has_search,
        "redis state store connected"
    );
    Ok(RedisStateStore {
        redis: RwLock::new(Some(Arc::new(redis))),
        hosts: metadata.hosts(),
        default_ttl: metadata.default_ttl,
        replicas,
        has_json,
        schemas,
        features,
        warned_cross_slot: AtomicBool::new(false),
    })
}

/// Creates one query index; an index left from an earlier run is dropped and recreated.
async fn register_index(redis: &Redis, name: &str, schema: &IndexSchema) -> RedisResult<()> {
    tracing::info!(index = name, "creating redis query index");
    let create = redis::cmd("FT.CREATE").arg(&schema.create).to_owned();
    match redis.query::<Value>(Access::Write, &create).await {
        Ok(_) => Ok(()),
        Err(error) if error.to_string().contains("Index already exists") => {
            tracing::info!(index = name, "dropping stale redis query index");
            redis
                .query::<Value>(Access::Write, redis::cmd("FT.DROPINDEX").arg(name))
                .await?;
            redis.query::<Value>(Access::Write, &create).await.map(drop)
        }
        Err(error) => Err(error),
    }
}

/// Whether the server knows a module command (upstream's RedisJSON probe: only an
/// "unknown command" answer means no).
async fn has_command(redis: &Redis, command: &str) -> Result<bool, StateError> {
    match redis
        .query::<Value>(Access::Read, &redis::cmd(command))
        .await
    {
        Ok(_) => Ok(true),
        Err(error) if error.to_string().contains("unknown command") => Ok(false),
        Err(error) if error.is_io_error() => Err(StateError::backend(error)),
        Err(_) => Ok(true),
    }
}

/// The `connected_slaves` count of an `INFO replication` reply.
pub(crate) fn connected_replicas(info: &str) -> u64 {
    info.lines()
        .find_map(|line| line.trim().strip_prefix("connected_slaves:"))
        .and_then(|count| count.trim().parse().ok())
        .unwrap_or(0)
}

/// The Redis state store.
pub struct RedisStateStore {
    redis: RwLock<Option<Arc<Redis>>>,
    hosts: String,
    default_ttl: Option<i64>,
    replicas: u64,
    has_json: bool,
    schemas: HashMap<String, IndexSchema>,
    features: Vec<Feature>,
    warned_cross_slot: AtomicBool,
}

impl std::fmt::Debug for RedisStateStore {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("RedisStateStore")
            .field("hosts", &self.hosts)
            .field("features", &self.features)
            .finish_non_exhaustive()
    }
}

/// One write or delete, in the form the scripts take.
struct Operation<'a> {
    key: &'a str,
    delete: bool,
    json: bool,
    /// The expected version, `0` for none (upstream's encoding).
    expected: String,
    /// Whether the request carried a non-empty ETag (then a refusal is a mismatch).
    has_etag: bool,
    value: Bytes,
    ttl: Option<i64>,
}

impl Operation<'_> {
    /// The TTL for the scripts: empty when neither the request nor the store sets one,
    /// which leaves the key's expiry as it is.
    fn ttl_argument(&self) -> String {
        self.ttl.map(|ttl| ttl.to_string()).unwrap_or_default()
    }
}

impl RedisStateStore {
    fn redis(&self) -> Result<Arc<Redis>, StateError> {
        let guard = match self.redis.read() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        guard
            .clone()
            .ok_or_else(|| StateError::Backend("redis state store is closed".to_owned()))
    }

    fn is_json(&self, metadata: &HashMap<String, String>) -> bool {
        self.has_json
            && metadata
                .get(CONTENT_TYPE_METADATA_KEY)
                .is_some_and(|content_type| content_type == JSON_CONTENT_TYPE)
    }

    /// Turns a write into script arguments (upstream's ETag and TTL rules: last-write
    /// concurrency ignores the ETag, and an empty `ttlInSeconds` is no TTL).
    fn upsert<'a>(&self, request: &'a SetRequest, json: bool) -> Result<Operation<'a>, StateError> {
        let expected = match request.etag() {
            Some(etag) if request.concurrency != Concurrency::LastWrite => etag
                .parse::<i64>()
                .map(|version| version.to_string())
                .map_err(|error| StateError::etag_invalid(format!("{etag:?}: {error}")))?,
            _ => "0".to_owned(),
        };
        let ttl_given = request
            .metadata
            .get(TTL_METADATA_KEY)
            .is_some_and(|ttl| !ttl.is_empty());
        let ttl = if ttl_given {
            request.ttl_seconds().map_err(|error| {
                StateError::InvalidRequest(format!("failed to parse ttl from metadata: {error}"))
            })?
        } else {
            None
        }
        .or(self.default_ttl);
        let value = if json {
            let data: serde_json::Value =
                serde_json::from_slice(&request.value).map_err(|error| {
                    StateError::InvalidRequest(format!(
                        "the value of key {} is not JSON: {error}",
                        request.key
                    ))
                })?;
            Bytes::from(serde_json::json!({ "data": data }).to_string())
        } else {
            request.value.clone()
        };
        Ok(Operation {
            key: &request.key,
            delete: false,
            json,
            expected,
            has_etag: request.etag().is_some(),
            value,
            ttl,
        })
    }

    fn removal<'a>(request: &'a DeleteRequest, json: bool) -> Operation<'a> {
        Operation {
            key: &request.key,
            delete: true,
            json,
            expected: request.etag().unwrap_or("0").to_owned(),
            has_etag: request.etag().is_some(),
            value: Bytes::new(),
            ttl: None,
        }
    }

    /// Runs [`scripts::TRANSACTION`] over operations that share a hash slot (or any
    /// operations outside cluster mode).
    async fn apply(&self, redis: &Redis, operations: &[Operation<'_>]) -> Result<(), StateError> {
        let mut invocation = scripts::TRANSACTION.prepare_invoke();
        for operation in operations {
            invocation
                .key(operation.key)
                .arg(if operation.delete { "del" } else { "set" })
                .arg(if operation.json { "json" } else { "hash" })
                .arg(&operation.expected)
                .arg(operation.value.as_ref())
                .arg(operation.ttl_argument())
                .arg(if operation.has_etag { "1" } else { "0" });
        }
        let invocation = &invocation;
        redis
            .run(Access::Write, |mut connection| async move {
                invocation.invoke_async::<Value>(&mut connection).await
            })
            .await
            .map(drop)
            .map_err(|error| match (error.code(), server_reply(&error)) {
                (Some("ETAG"), _) => StateError::etag_mismatch(error.detail().unwrap_or_default()),
                (_, Some(reply)) => StateError::Backend(reply),
                (_, None) => StateError::backend(error),
            })
    }

    async fn get_value(&self, request: &GetRequest) -> Result<GetResponse, StateError> {
        let redis = self.redis()?;
        let json = self.is_json(&request.metadata);
        let mut pipeline = redis::pipe();
        pipeline
            .cmd(if json { "JSON.GET" } else { "HGETALL" })
            .arg(&request.key)
            .cmd("PTTL")
            .arg(&request.key)
            .ignore_errors();
        let pipeline = &pipeline;
        let mut replies = redis
            .run(Access::Read, |mut connection| async move {
                pipeline
                    .query_async::<Vec<RedisResult<Value>>>(&mut connection)
                    .await
            })
            .await
            .map_err(StateError::backend)?
            .into_iter();
        let (Some(stored), Some(ttl)) = (replies.next(), replies.next()) else {
            return Err(StateError::Backend(
                "redis returned an incomplete reply".to_owned(),
            ));
        };
        let mut response = match stored {
            Ok(stored) if json => decode_json(stored)?,
            Ok(stored) => decode_hash(stored)?,
            // Not a hash: a plain string written before ETags existed.
            Err(error) if !json && error.code() == Some("WRONGTYPE") => {
                let value = redis
                    .query::<Option<Vec<u8>>>(Access::Read, redis::cmd("GET").arg(&request.key))
                    .await
                    .map_err(StateError::backend)?;
                GetResponse {
                    data: value.map(Bytes::from).unwrap_or_default(),
                    ..GetResponse::default()
                }
            }
            Err(error) => return Err(StateError::backend(error)),
        };
        if let Ok(Value::Int(millis)) = ttl
            && millis > 0
            && !response.is_missing()
        {
            let expires = SystemTime::now() + Duration::from_millis(millis.unsigned_abs());
            response.metadata.insert(
                TTL_EXPIRE_TIME_METADATA_KEY.to_owned(),
                format_expire_time(expires),
            );
        }
        Ok(response)
    }
}

/// An error reply from the server (a script's refusal, or a command failing inside it)
/// as the server sent it, `CODE detail`; `None` for a failure to reach the server.
fn server_reply(error: &RedisError) -> Option<String> {
    if !matches!(error.kind(), ErrorKind::Server(_) | ErrorKind::Extension) {
        return None;
    }
    let code = error.code().unwrap_or("ERR");
    Some(match error.detail() {
        Some(detail) => format!("{code} {detail}"),
        None => code.to_owned(),
    })
}

fn bytes_of(value: Value) -> Option<Vec<u8>> {
    match value {
        Value::BulkString(bytes) => Some(bytes),
        Value::SimpleString(text) => Some(text.into_bytes()),
        Value::Int(number) => Some(number.to_string().into_bytes()),
        _ => None,
    }
}

/// Reads a hash-layout value from `HGETALL` (upstream requires both `data` and `version`).
fn decode_hash(reply: Value) -> Result<GetResponse, StateError> {
    let pairs: Vec<(Value, Value)> = match reply {
        Value::Nil => return Ok(GetResponse::default()),
        Value::Map(pairs) => pairs,
        Value::Array(items) => {
            let mut items = items.into_iter();
            std::iter::from_fn(|| Some((items.next()?, items.next()?))).collect()
        }
        other => {
            return Err(StateError::Backend(format!(
                "unexpected HGETALL reply {other:?}"
            )));
        }
    };
    if pairs.is_empty() {
        return Ok(GetResponse::default());
    }
    let mut data = None;
    let mut version = None;
    for (field, value) in pairs {
        match bytes_of(field).as_deref() {
            Some(b"data") => data = bytes_of(value),
            Some(b"version") => version = bytes_of(value),
            _ => {}
        }
    }
    match (data, version) {
        (Some(data), Some(version)) => Ok(GetResponse {
            data: Bytes::from(data),
            etag: Some(String::from_utf8_lossy(&version).into_owned()),
            ..GetResponse::default()
        }),
        _ => Err(StateError::Backend(
            "required hash field 'data' or 'version' was not found".to_owned(),
        )),
    }
}

/// Reads a RedisJSON-layout value: `{"data": ..., "version": N}`.
fn decode_json(reply: Value) -> Result<GetResponse, StateError> {
    let Some(text) = bytes_of(reply) else {
        return Ok(GetResponse::default());
    };
    let document: serde_json::Value = serde_json::from_slice(&text)
        .map_err(|error| StateError::Backend(format!("invalid JSON document: {error}")))?;
    let data = document.get("data").cloned().unwrap_or_default();
    let etag = document
        .get("version")
        .and_then(serde_json::Value::as_i64)
        .map(|version| version.to_string());
    Ok(GetResponse {
        data: Bytes::from(data.to_string()),
        etag,
        ..GetResponse::default()
    })
}

#[async_trait::async_trait]
impl StateStore for RedisStateStore {
    fn features(&self) -> &[Feature] {
        &self.features
    }

    async fn get(&self, request: GetRequest) -> Result<GetResponse, StateError> {
        self.get_value(&request).await
    }

    async fn set(&self, request: SetRequest) -> Result<(), StateError> {
        let redis = self.redis()?;
        let json = self.is_json(&request.metadata);
        let operation = self.upsert(&request, json)?;
        let script = if json {
            &scripts::SET_JSON
        } else {
            &scripts::SET
        };
        let mut invocation = script.key(operation.key);
        invocation
            .arg(&operation.expected)
            .arg(operation.value.as_ref())
            .arg(if request.concurrency == Concurrency::FirstWrite {
                "0"
            } else {
                "1"
            })
            .arg(operation.ttl_argument());
        let invocation = &invocation;
        redis
            .run(Access::Write, |mut connection| async move {
                invocation.invoke_async::<Value>(&mut connection).await
            })
            .await
            // Upstream: any failure of the script is a mismatch when the request carried
            // an ETag, otherwise a plain error.
            .map_err(|error| match server_reply(&error) {
                Some(reply) if operation.has_etag => StateError::etag_mismatch(reply),
                Some(reply) => {
                    StateError::Backend(format!("failed to set key {}: {reply}", request.key))
                }
                None => StateError::Backend(format!("failed to set key {}: {error}", request.key)),
            })?;

        if request.consistency == Consistency::Strong && self.replicas > 0 {
            redis
                .query::<Value>(
                    Access::Write,
                    redis::cmd("WAIT")
                        .arg(self.replicas)
                        .arg(REPLICA_WAIT_MILLIS),
                )
                .await
                .map_err(|error| {
                    StateError::Backend(format!(
                        "redis waiting for {} replicas to acknowledge write, err: {error}",
                        self.replicas
                    ))
                })?;
        }
        Ok(())
    }

    async fn delete(&self, request: DeleteRequest) -> Result<(), StateError> {
        let redis = self.redis()?;
        let json = self.is_json(&request.metadata);
        let operation = Self::removal(&request, json);
        let script = if json {
            &scripts::DELETE_JSON
        } else {
            &scripts::DELETE
        };
        let mut invocation = script.key(operation.key);
        invocation.arg(&operation.expected);
        let invocation = &invocation;
        redis
            .run(Access::Write, |mut connection| async move {
                invocation.invoke_async::<Value>(&mut connection).await
            })
            .await
            .map(drop)
            // Upstream: any failure of the script is a mismatch.
            .map_err(|error| match server_reply(&error) {
                Some(reply) => StateError::etag_mismatch(reply),
                None => {
                    StateError::Backend(format!("failed to delete key {}: {error}", request.key))
                }
            })
    }

    async fn transact(&self, request: TransactionRequest) -> Result<(), StateError> {
        let redis = self.redis()?;
        let whole_json = self.is_json(&request.metadata);
        let operations = request
            .operations
            .iter()
            .map(|operation| match operation {
                TransactionOperation::Upsert(set) => {
                    self.upsert(set, whole_json || self.is_json(&set.metadata))
                }
                TransactionOperation::Delete(delete) => Ok(Self::removal(
                    delete,
                    whole_json || self.is_json(&delete.metadata),
                )),
            })
            .collect::<Result<Vec<_>, _>>()?;
        if operations.is_empty() {
            return Ok(());
        }
        if !redis.is_cluster() {
            return self.apply(&redis, &operations).await;
        }
        // A script may only touch keys of one hash slot: apply slot by slot, in the order
        // each slot first appears.
        let mut groups: Vec<(u16, Vec<Operation<'_>>)> = Vec::new();
        for operation in operations {
            let slot = slot::of(operation.key.as_bytes());
            match groups.iter_mut().find(|(group, _)| *group == slot) {
                Some((_, members)) => members.push(operation),
                None => groups.push((slot, vec![operation])),
            }
        }
        if groups.len() > 1 && !self.warned_cross_slot.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "redis cluster transactions whose keys span several hash slots are atomic \
                 per slot only"
            );
        }
        for (_, members) in &groups {
            self.apply(&redis, members).await?;
        }
        Ok(())
    }

    async fn query(
        &self,
        query: Query,
        metadata: HashMap<String, String>,
    ) -> Result<QueryResponse, StateError> {
        if !self.features.contains(&Feature::QueryApi) {
            return Err(StateError::NotSupported("query"));
        }
        let name = metadata
            .get(search::INDEX_NAME_METADATA_KEY)
            .filter(|name| !name.is_empty())
            .ok_or_else(|| StateError::InvalidRequest("query index not found".to_owned()))?;
        let schema = self.schemas.get(name).ok_or_else(|| {
            StateError::InvalidRequest(format!("query index schema {name:?} not found"))
        })?;
        let search = schema.translate(&query)?;
        let command = redis::cmd("FT.SEARCH")
            .arg(name)
            .arg(&search.arguments)
            .arg(&["RETURN", "2", "$.data", "$.version"][..])
            .to_owned();
        let reply = self
            .redis()?
            .query::<Value>(Access::Read, &command)
            .await
            .map_err(StateError::backend)?;
        let results = search::parse_results(reply)?;
        let token = if search.limit > 0 && !results.is_empty() {
            (search.offset + results.len() as u64).to_string()
        } else {
            String::new()
        };
        Ok(QueryResponse {
            results,
            token,
            metadata: HashMap::new(),
        })
    }

    async fn ping(&self) -> Result<(), StateError> {
        self.redis()?
            .query::<String>(Access::Read, &redis::cmd("PING"))
            .await
            .map(drop)
            .map_err(|error| {
                StateError::Backend(format!(
                    "redis store: error connecting to redis at {}: {error}",
                    self.hosts
                ))
            })
    }

    async fn close(&self) -> Result<(), StateError> {
        let mut guard = match self.redis.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        guard.take();
        Ok(())
    }
}

//! `bindings.redis`: an output binding that writes, reads, deletes and increments plain
//! Redis string keys, as upstream's binding does, over the connection code `state.redis`
//! uses (node, cluster or Sentinel; the same `redisHost`, `redisPassword`, `enableTLS`,
//! `redisDB`, `redisType`, `failover`, ... settings, with go-redis's retry defaults).
//!
//! Every operation names its key in the `key` request metadata:
//!
//! - `create`: `SET key <data>`, then `EXPIRE` when the request carries a TTL;
//! - `get`: the value as the response data (empty for a missing key); with metadata
//!   `delete: "true"` the key is read and removed in one step (`GETDEL`);
//! - `delete`: `DEL key`;
//! - `increment`: `INCR key`, then `EXPIRE` when the request carries a TTL; the response
//!   is empty, as upstream's is.
//!
//! The TTL is the `ttlInSeconds` (or `ttl`) request metadata: Go duration text (`90s`)
//! or a whole number of seconds above zero, applied in whole seconds as upstream does.
//! Unlike upstream, a request with a malformed TTL writes nothing.

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use redis::RedisError;

use crate::bindings::{
    BindingError, InvokeRequest, InvokeResponse, Operation, OutputBinding, operations,
};
use crate::metadata::Properties;
use crate::state::StateError;
use crate::state::redis::connection::{Access, Redis};
use crate::state::redis::metadata::RedisMetadata;

/// Upstream's `increment` operation.
pub const INCREMENT: &str = "increment";
/// Request metadata naming the key.
pub const KEY_METADATA_KEY: &str = "key";
/// Request metadata asking `get` to delete the key it reads (`"true"`).
pub const DELETE_METADATA_KEY: &str = "delete";
/// Request metadata carrying the TTL (upstream's `ttlInSeconds`).
pub const TTL_IN_SECONDS_METADATA_KEY: &str = "ttlInSeconds";
/// The other name upstream reads the TTL under (looked up first).
pub const TTL_METADATA_KEY: &str = "ttl";

/// go-redis's retry count, which applies because upstream sets no binding default.
const DEFAULT_MAX_RETRIES: usize = 3;
/// go-redis's first retry backoff, for the same reason.
const DEFAULT_MIN_RETRY_INTERVAL: Duration = Duration::from_millis(8);

/// A Redis server as an output binding.
pub struct RedisBinding {
    /// The connection; `None` once closed.
    redis: RwLock<Option<Arc<Redis>>>,
    /// The addresses, for errors.
    hosts: String,
}

impl std::fmt::Debug for RedisBinding {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("RedisBinding")
            .field("hosts", &self.hosts)
            .finish_non_exhaustive()
    }
}

/// Reads the settings, connects and checks that the server answers.
pub async fn open(properties: &Properties) -> Result<RedisBinding, BindingError> {
    let metadata = settings(properties)?;
    let hosts = metadata.hosts();
    let unreachable = |error: RedisError| {
        BindingError::Backend(format!(
            "redis binding: error connecting to redis at {hosts}: {error}"
        ))
    };
    let redis = Redis::connect(&metadata).await.map_err(unreachable)?;
    redis
        .query::<String>(Access::Read, &redis::cmd("PING"))
        .await
        .map_err(unreachable)?;
    tracing::debug!(hosts = %hosts, "redis binding connected");
    Ok(RedisBinding {
        redis: RwLock::new(Some(Arc::new(redis))),
        hosts,
    })
}

/// The shared Redis settings with the defaults upstream's bindings get: the state
/// store's legacy retry defaults and aliases do not apply.
fn settings(properties: &Properties) -> Result<RedisMetadata, BindingError> {
    let mut metadata = RedisMetadata::parse(properties).map_err(|error| match error {
        StateError::InvalidMetadata(reason) => BindingError::InvalidMetadata(reason),
        other => BindingError::InvalidMetadata(other.to_string()),
    })?;
    let unset = |name: &str| {
        properties
            .text(name, &[])
            .is_none_or(|text| text.trim().is_empty())
    };
    if unset("redisMaxRetries") {
        metadata.max_retries = DEFAULT_MAX_RETRIES;
    }
    if unset("redisMinRetryInterval") {
        metadata.min_retry_interval = Some(DEFAULT_MIN_RETRY_INTERVAL);
    }
    Ok(metadata)
}

impl RedisBinding {
    fn connection(&self) -> Result<Arc<Redis>, BindingError> {
        self.redis
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or(BindingError::Closed)
    }

    /// Sets the key's expiry when the request asked for one.
    async fn expire(redis: &Redis, key: &str, ttl: Option<Duration>) -> Result<(), BindingError> {
        let Some(ttl) = ttl else {
            return Ok(());
        };
        redis
            .query::<i64>(
                Access::Write,
                redis::cmd("EXPIRE").arg(key).arg(ttl.as_secs()),
            )
            .await
            .map(drop)
            .map_err(BindingError::backend)
    }
}

#[async_trait::async_trait]
impl OutputBinding for RedisBinding {
    fn operations(&self) -> Vec<Operation> {
        [
            operations::CREATE,
            operations::DELETE,
            operations::GET,
            INCREMENT,
        ]
        .map(str::to_owned)
        .to_vec()
    }

    async fn invoke(&self, request: InvokeRequest) -> Result<InvokeResponse, BindingError> {
        let key = request
            .metadata
            .get(KEY_METADATA_KEY)
            .filter(|key| !key.is_empty())
            .ok_or_else(|| {
                BindingError::InvalidRequest(
                    "redis binding: missing key in request metadata".to_owned(),
                )
            })?;
        let redis = self.connection()?;
        match request.operation.as_str() {
            operations::DELETE => {
                redis
                    .query::<i64>(Access::Write, redis::cmd("DEL").arg(key))
                    .await
                    .map_err(BindingError::backend)?;
            }
            operations::GET => {
                let command = if request
                    .metadata
                    .get(DELETE_METADATA_KEY)
                    .is_some_and(|delete| delete == "true")
                {
                    "GETDEL"
                } else {
                    "GET"
                };
                let access = if command == "GET" {
                    Access::Read
                } else {
                    Access::Write
                };
                let value = redis
                    .query::<Option<Vec<u8>>>(access, redis::cmd(command).arg(key))
                    .await
                    .map_err(BindingError::backend)?;
                return Ok(InvokeResponse {
                    data: value.unwrap_or_default().into(),
                    ..InvokeResponse::default()
                });
            }
            operations::CREATE => {
                let ttl = requested_ttl(&request.metadata)?;
                redis
                    .query::<()>(
                        Access::Write,
                        redis::cmd("SET").arg(key).arg(request.data.as_ref()),
                    )
                    .await
                    .map_err(BindingError::backend)?;
                Self::expire(&redis, key, ttl).await?;
            }
            INCREMENT => {
                let ttl = requested_ttl(&request.metadata)?;
                redis
                    .query::<i64>(Access::Write, redis::cmd("INCR").arg(key))
                    .await
                    .map_err(BindingError::backend)?;
                Self::expire(&redis, key, ttl).await?;
            }
            _ => return Err(BindingError::UnsupportedOperation(request.operation)),
        }
        Ok(InvokeResponse::default())
    }

    async fn close(&self) -> Result<(), BindingError> {
        self.redis
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        Ok(())
    }
}

/// The TTL a request asks for, read as upstream's `TryGetTTL` does: `ttl` or
/// `ttlInSeconds` (names compared without case), Go duration text (a negative one is
/// zero) or else a whole number of seconds above zero.
fn requested_ttl(metadata: &HashMap<String, String>) -> Result<Option<Duration>, BindingError> {
    let lookup = |name: &str| {
        metadata
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    };
    let Some(text) = lookup(TTL_METADATA_KEY)
        .or_else(|| lookup(TTL_IN_SECONDS_METADATA_KEY))
        .filter(|text| !text.is_empty())
    else {
        return Ok(None);
    };
    match dapr_kit::duration::parse(text) {
        Ok(duration) => return Ok(Some(duration)),
        Err(dapr_kit::duration::DurationError::Negative(_)) => return Ok(Some(Duration::ZERO)),
        Err(_) => {}
    }
    let seconds = text.parse::<i64>().map_err(|_| {
        BindingError::InvalidRequest(format!(
            "{TTL_METADATA_KEY} value must be a valid integer: actual is '{text}'"
        ))
    })?;
    match u64::try_from(seconds) {
        Ok(seconds) if seconds > 0 => Ok(Some(Duration::from_secs(seconds))),
        _ => Err(BindingError::InvalidRequest(format!(
            "{TTL_METADATA_KEY} value must be higher than zero: actual is '{seconds}'"
        ))),
    }
}

//! `lock.redis`: locks on one Redis server (or a Sentinel-managed master), compatible with
//! upstream's component: a lock is the key holding its owner, taken with `SET NX EX` and
//! released by a script that deletes the key only for its owner. Connection settings are
//! `state.redis`'s; as upstream, Redis Cluster and unmanaged replicas are refused (a lock
//! written to a master could be lost before a replica has it).

use std::sync::LazyLock;

use redis::{RedisError, Script, Value};

use super::{LockError, LockStore, TryLockRequest, UnlockRequest, UnlockStatus};
use crate::metadata::Properties;
use crate::state::StateError;
use crate::state::redis::connected_replicas;
use crate::state::redis::connection::{Access, Redis};
use crate::state::redis::metadata::{RedisMetadata, Topology};

/// Deletes KEYS[1] when it holds ARGV[1]: 1 when deleted, -1 when missing, -2 when held
/// by another owner.
static UNLOCK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local owner = redis.call("GET", KEYS[1])
if owner == false then return -1 end
if owner ~= ARGV[1] then return -2 end
return redis.call("DEL", KEYS[1])
"#,
    )
});

/// The Redis lock store.
pub struct RedisLock {
    redis: Redis,
}

impl std::fmt::Debug for RedisLock {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("RedisLock").finish_non_exhaustive()
    }
}

/// Reads the settings, connects, and checks the server is a usable lock server.
pub async fn open(properties: &Properties) -> Result<RedisLock, LockError> {
    let metadata = RedisMetadata::parse(properties).map_err(|error| match error {
        StateError::InvalidMetadata(reason) => LockError::InvalidMetadata(reason),
        other => LockError::InvalidMetadata(other.to_string()),
    })?;
    if metadata.topology == Topology::Cluster {
        return Err(LockError::InvalidMetadata(
            "this component does not support connecting to Redis Cluster".to_owned(),
        ));
    }
    let unreachable =
        |error: RedisError| LockError::Backend(format!("error connecting to Redis: {error}"));
    let redis = Redis::connect(&metadata).await.map_err(unreachable)?;
    redis
        .query::<String>(Access::Read, &redis::cmd("PING"))
        .await
        .map_err(unreachable)?;
    let failover = matches!(metadata.topology, Topology::Sentinel { .. });
    if !failover {
        let info = redis
            .query::<String>(Access::Read, redis::cmd("INFO").arg("replication"))
            .await
            .map_err(|error| LockError::Backend(error.to_string()))?;
        if connected_replicas(&info) > 0 {
            return Err(LockError::InvalidMetadata(
                "replication is not supported".to_owned(),
            ));
        }
    }
    Ok(RedisLock { redis })
}

#[async_trait::async_trait]
impl LockStore for RedisLock {
    async fn try_lock(&self, request: TryLockRequest) -> Result<bool, LockError> {
        let mut command = redis::cmd("SET");
        command
            .arg(&request.resource_id)
            .arg(&request.lock_owner)
            .arg("NX")
            .arg("EX")
            .arg(request.expiry_in_seconds);
        let reply = self
            .redis
            .query::<Value>(Access::Write, &command)
            .await
            .map_err(|error| LockError::Backend(error.to_string()))?;
        Ok(!matches!(reply, Value::Nil))
    }

    async fn unlock(&self, request: UnlockRequest) -> Result<UnlockStatus, LockError> {
        let mut invocation = UNLOCK.key(&request.resource_id);
        invocation.arg(&request.lock_owner);
        let invocation = &invocation;
        let reply = self
            .redis
            .run(Access::Write, |mut connection| async move {
                invocation.invoke_async::<i64>(&mut connection).await
            })
            .await
            .map_err(|error| LockError::Backend(error.to_string()))?;
        Ok(match reply {
            1 => UnlockStatus::Success,
            -1 => UnlockStatus::LockDoesNotExist,
            -2 => UnlockStatus::LockBelongsToOthers,
            _ => UnlockStatus::InternalError,
        })
    }
}

#[cfg(test)]
mod tests {
    use dapr_testkit::Redis as RedisServer;

    use super::*;

    fn properties(pairs: &[(&str, &str)]) -> Properties {
        let map: serde_json::Map<String, serde_json::Value> = pairs
            .iter()
            .map(|(key, value)| ((*key).to_owned(), serde_json::Value::from(*value)))
            .collect();
        Properties::from_json(&serde_json::Value::Object(map)).unwrap()
    }

    #[tokio::test]
    async fn redis_locks_follow_the_lock_contract_on_a_real_server() {
        let server = RedisServer::start().await.unwrap();
        let store = open(&properties(&[("redisHost", &server.host())]))
            .await
            .unwrap();
        super::super::conformance::run(&store).await;
    }

    #[tokio::test]
    async fn locks_are_plain_keys_holding_their_owner_with_an_expiry() {
        let server = RedisServer::start().await.unwrap();
        let store = open(&properties(&[("redisHost", &server.host())]))
            .await
            .unwrap();
        let request = TryLockRequest {
            resource_id: "lock||app||order-1".into(),
            lock_owner: "worker-7".into(),
            expiry_in_seconds: 30,
        };
        assert!(store.try_lock(request).await.unwrap());
        let owner: String = store
            .redis
            .query(Access::Read, redis::cmd("GET").arg("lock||app||order-1"))
            .await
            .unwrap();
        assert_eq!(owner, "worker-7");
        let ttl: i64 = store
            .redis
            .query(Access::Read, redis::cmd("TTL").arg("lock||app||order-1"))
            .await
            .unwrap();
        assert!((1..=30).contains(&ttl), "{ttl}");
    }

    #[tokio::test]
    async fn clusters_and_unreachable_servers_are_refused() {
        let error = open(&properties(&[
            ("redisHost", "127.0.0.1:1"),
            ("redisType", "cluster"),
        ]))
        .await
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "this component does not support connecting to Redis Cluster"
        );
        let error = open(&properties(&[("redisHost", "127.0.0.1:1")]))
            .await
            .unwrap_err();
        assert!(
            error.to_string().starts_with("error connecting to Redis: "),
            "{error}"
        );
    }
}

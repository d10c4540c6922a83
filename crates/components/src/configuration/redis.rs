//! `configuration.redis`: configuration items kept as plain Redis strings in upstream's
//! layout, `value||version` (the version part optional). Connection settings are
//! `state.redis`'s. Reading every item (no keys) lists all keys; keys that are missing,
//! hold another Redis type, or hold an empty value are left out, as upstream does.
//!
//! Subscriptions use keyspace notifications, as upstream: the store turns them on
//! (`CONFIG SET notify-keyspace-events Kg$xe`, ignoring a refusal, e.g. on managed
//! servers where they must be enabled by the operator), then listens on its own
//! connection to `__keyspace@<db>__:<key>` (a pattern for every key when no keys are
//! given); each notification reads the key again and hands the item (empty when deleted)
//! to the subscriber. Subscriptions need a single server (not a cluster or Sentinel).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use redis::{RedisError, Value};
use tokio::task::AbortHandle;

use super::{
    ConfigurationError, ConfigurationItem, ConfigurationStore, SubscribeRequest, UpdateEvent,
    UpdateHandler,
};
use crate::metadata::Properties;
use crate::state::StateError;
use crate::state::redis::connection::{Access, Redis};
use crate::state::redis::metadata::RedisMetadata;

/// Between a value and its version.
const SEPARATOR: &str = "||";
/// The keyspace events subscriptions need: generic and string commands, expirations and
/// evictions.
const KEYSPACE_EVENTS: &str = "Kg$xe";

/// The Redis configuration store.
pub struct RedisConfiguration {
    redis: Arc<Redis>,
    metadata: RedisMetadata,
    /// Running subscriptions by id.
    subscriptions: Mutex<HashMap<String, AbortHandle>>,
}

impl std::fmt::Debug for RedisConfiguration {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("RedisConfiguration")
            .finish_non_exhaustive()
    }
}

/// Reads the settings, connects and checks that the server answers.
pub async fn open(properties: &Properties) -> Result<RedisConfiguration, ConfigurationError> {
    let metadata = RedisMetadata::parse(properties).map_err(|error| match error {
        StateError::InvalidMetadata(reason) => ConfigurationError::InvalidMetadata(reason),
        other => ConfigurationError::InvalidMetadata(other.to_string()),
    })?;
    let hosts = metadata.hosts();
    let unreachable = |error: RedisError| {
        ConfigurationError::Backend(format!(
            "redis store: error connecting to redis at {hosts}: {error}"
        ))
    };
    let redis = Redis::connect(&metadata).await.map_err(unreachable)?;
    redis
        .query::<String>(Access::Read, &redis::cmd("PING"))
        .await
        .map_err(unreachable)?;
    Ok(RedisConfiguration {
        redis: Arc::new(redis),
        metadata,
        subscriptions: Mutex::new(HashMap::new()),
    })
}

/// The keyspace notification channel of `key` in database `db`.
fn keyspace_channel(db: i64, key: &str) -> String {
    format!("__keyspace@{db}__:{key}")
}

/// A stored string split into value and version.
fn value_and_version(stored: &str) -> (String, String) {
    let mut parts = stored.split(SEPARATOR);
    let value = parts.next().unwrap_or_default().to_owned();
    let version = parts.next().unwrap_or_default().to_owned();
    (value, version)
}

/// The items of `keys` (every item when empty).
async fn read_items(
    redis: &Redis,
    keys: &[String],
) -> Result<BTreeMap<String, ConfigurationItem>, ConfigurationError> {
    let keys: Vec<String> = if keys.is_empty() {
        redis
            .query(Access::Read, redis::cmd("KEYS").arg("*"))
            .await
            .map_err(|error| ConfigurationError::Backend(error.to_string()))?
    } else {
        keys.to_vec()
    };
    let mut items = BTreeMap::new();
    for key in keys {
        let stored = match redis
            .query::<Value>(Access::Read, redis::cmd("GET").arg(&key))
            .await
        {
            Ok(Value::Nil) => {
                tracing::warn!("redis key {key} does not exist, ignore it");
                continue;
            }
            Ok(value) => match redis::from_redis_value::<String>(value) {
                Ok(text) => text,
                Err(error) => {
                    return Err(ConfigurationError::Backend(format!(
                        "fail to get configuration for redis key={key}, error is {error}"
                    )));
                }
            },
            Err(error) if error.code() == Some("WRONGTYPE") => {
                tracing::warn!("redis key {key} 's type is not supported, ignore it");
                continue;
            }
            Err(error) => {
                return Err(ConfigurationError::Backend(format!(
                    "fail to get configuration for redis key={key}, error is {error}"
                )));
            }
        };
        let (value, version) = value_and_version(&stored);
        if value.is_empty() {
            continue;
        }
        items.insert(
            key,
            ConfigurationItem {
                value,
                version,
                metadata: HashMap::new(),
            },
        );
    }
    Ok(items)
}

/// Hands each change notified on `messages` to `handler` as an update of subscription `id`.
async fn forward_changes(
    redis: Arc<Redis>,
    prefix: String,
    id: String,
    mut messages: impl futures::Stream<Item = redis::Msg> + Unpin,
    handler: Arc<dyn UpdateHandler>,
) {
    while let Some(message) = messages.next().await {
        let channel = message.get_channel_name();
        let Some(key) = channel.strip_prefix(&prefix) else {
            tracing::error!("parse redis key failed: unexpected channel {channel}");
            continue;
        };
        let mut items = match read_items(&redis, &[key.to_owned()]).await {
            Ok(items) => items,
            Err(error) => {
                tracing::error!("get response from redis failed: {error}");
                continue;
            }
        };
        if items.is_empty() {
            items.insert(key.to_owned(), ConfigurationItem::default());
        }
        handler
            .update(UpdateEvent {
                id: id.clone(),
                items,
            })
            .await;
    }
}

impl RedisConfiguration {
    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<String, AbortHandle>> {
        self.subscriptions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait::async_trait]
impl ConfigurationStore for RedisConfiguration {
    async fn get(
        &self,
        keys: &[String],
        _metadata: &HashMap<String, String>,
    ) -> Result<BTreeMap<String, ConfigurationItem>, ConfigurationError> {
        read_items(&self.redis, keys).await
    }

    async fn subscribe(
        &self,
        request: SubscribeRequest,
        handler: Arc<dyn UpdateHandler>,
    ) -> Result<String, ConfigurationError> {
        let backend = |error: RedisError| ConfigurationError::Backend(error.to_string());
        let client = Redis::single_server_client(&self.metadata)
            .ok_or_else(|| {
                ConfigurationError::Backend(
                    "configuration subscriptions need a single redis server, not a cluster or sentinel"
                        .to_owned(),
                )
            })?
            .map_err(backend)?;
        let enabled = self
            .redis
            .query::<Value>(
                Access::Write,
                redis::cmd("CONFIG")
                    .arg("SET")
                    .arg("notify-keyspace-events")
                    .arg(KEYSPACE_EVENTS),
            )
            .await;
        if let Err(error) = enabled {
            tracing::debug!("redis refused to enable keyspace notifications: {error}");
        }
        let mut pubsub = client.get_async_pubsub().await.map_err(backend)?;
        let db = self.metadata.db;
        if request.keys.is_empty() {
            pubsub
                .psubscribe(keyspace_channel(db, "*"))
                .await
                .map_err(backend)?;
        } else {
            for key in &request.keys {
                pubsub
                    .subscribe(keyspace_channel(db, key))
                    .await
                    .map_err(backend)?;
            }
        }
        let id = uuid::Uuid::new_v4().to_string();
        let task = tokio::spawn(forward_changes(
            self.redis.clone(),
            keyspace_channel(db, ""),
            id.clone(),
            pubsub.into_on_message(),
            handler,
        ));
        self.running().insert(id.clone(), task.abort_handle());
        Ok(id)
    }

    async fn unsubscribe(&self, id: &str) -> Result<(), ConfigurationError> {
        match self.running().remove(id) {
            Some(task) => {
                task.abort();
                Ok(())
            }
            None => Err(ConfigurationError::Backend(format!(
                "subscription with id {id} does not exist"
            ))),
        }
    }

    async fn close(&self) -> Result<(), ConfigurationError> {
        for (_, task) in self.running().drain() {
            task.abort();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use dapr_testkit::Redis as RedisServer;

    use super::*;

    fn properties(host: &str) -> Properties {
        Properties::from_json(&serde_json::json!({ "redisHost": host })).unwrap()
    }

    #[test]
    fn stored_strings_split_into_value_and_version() {
        assert_eq!(value_and_version("blue||3"), ("blue".into(), "3".into()));
        assert_eq!(value_and_version("blue"), ("blue".into(), String::new()));
        assert_eq!(value_and_version(""), (String::new(), String::new()));
    }

    #[tokio::test]
    async fn items_are_read_from_a_real_server_as_upstream_lays_them_out() {
        let server = RedisServer::start().await.unwrap();
        let store = open(&properties(&server.host())).await.unwrap();
        for command in [
            redis::cmd("SET").arg("color").arg("blue||3").clone(),
            redis::cmd("SET").arg("size").arg("large").clone(),
            redis::cmd("SET").arg("empty").arg("").clone(),
            redis::cmd("LPUSH").arg("list").arg("x").clone(),
        ] {
            store
                .redis
                .query::<Value>(Access::Write, &command)
                .await
                .unwrap();
        }
        let wanted = ["color".to_owned(), "missing".to_owned(), "list".to_owned()];
        let items = store.get(&wanted, &HashMap::new()).await.unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(items["color"].value, "blue");
        assert_eq!(items["color"].version, "3");
        let all = store.get(&[], &HashMap::new()).await.unwrap();
        assert_eq!(all.keys().collect::<Vec<_>>(), ["color", "size"]);
        assert_eq!(all["size"].version, "");
    }

    /// Collects updates on a channel.
    struct Collector(tokio::sync::mpsc::UnboundedSender<UpdateEvent>);

    #[async_trait::async_trait]
    impl UpdateHandler for Collector {
        async fn update(&self, event: UpdateEvent) {
            let _ = self.0.send(event);
        }
    }

    async fn next(updates: &mut tokio::sync::mpsc::UnboundedReceiver<UpdateEvent>) -> UpdateEvent {
        tokio::time::timeout(std::time::Duration::from_secs(10), updates.recv())
            .await
            .expect("no update in time")
            .unwrap()
    }

    async fn set(store: &RedisConfiguration, key: &str, value: &str) {
        store
            .redis
            .query::<Value>(Access::Write, redis::cmd("SET").arg(key).arg(value))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn subscriptions_hear_changes_through_keyspace_notifications() {
        let server = RedisServer::start().await.unwrap();
        let store = open(&properties(&server.host())).await.unwrap();
        let (sender, mut updates) = tokio::sync::mpsc::unbounded_channel();
        let request = SubscribeRequest {
            keys: vec!["color".into()],
            metadata: HashMap::new(),
        };
        let id = store
            .subscribe(request, Arc::new(Collector(sender.clone())))
            .await
            .unwrap();

        set(&store, "other", "ignored").await;
        set(&store, "color", "green||7").await;
        let update = next(&mut updates).await;
        assert_eq!(update.id, id);
        assert_eq!(update.items.len(), 1);
        assert_eq!(update.items["color"].value, "green");
        assert_eq!(update.items["color"].version, "7");

        store
            .redis
            .query::<Value>(Access::Write, redis::cmd("DEL").arg("color"))
            .await
            .unwrap();
        let deleted = next(&mut updates).await;
        assert_eq!(deleted.items["color"], ConfigurationItem::default());

        // Every key when none is named.
        let everything = store
            .subscribe(SubscribeRequest::default(), Arc::new(Collector(sender)))
            .await
            .unwrap();
        set(&store, "size", "large").await;
        let update = next(&mut updates).await;
        assert_eq!(update.id, everything);
        assert_eq!(update.items["size"].value, "large");

        store.unsubscribe(&id).await.unwrap();
        store.unsubscribe(&everything).await.unwrap();
        set(&store, "color", "red").await;
        let late =
            tokio::time::timeout(std::time::Duration::from_millis(300), updates.recv()).await;
        // Stopped subscriptions dropped their handlers: nothing more arrives.
        assert!(
            !matches!(late, Ok(Some(_))),
            "no updates after unsubscribing: {late:?}"
        );
        assert_eq!(
            store.unsubscribe(&id).await.unwrap_err().to_string(),
            format!("subscription with id {id} does not exist")
        );
    }

    #[tokio::test]
    async fn an_unreachable_server_fails_the_start() {
        let error = open(&properties("127.0.0.1:1")).await.unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("redis store: error connecting to redis at 127.0.0.1:1: "),
            "{error}"
        );
    }
}

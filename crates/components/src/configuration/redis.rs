//! `configuration.redis`: configuration items kept as plain Redis strings in upstream's
//! layout, `value||version` (the version part optional). Connection settings are
//! `state.redis`'s. Reading every item (no keys) lists all keys; keys that are missing,
//! hold another Redis type, or hold an empty value are left out, as upstream does.

use std::collections::{BTreeMap, HashMap};

use redis::{RedisError, Value};

use super::{ConfigurationError, ConfigurationItem, ConfigurationStore};
use crate::metadata::Properties;
use crate::state::StateError;
use crate::state::redis::connection::{Access, Redis};
use crate::state::redis::metadata::RedisMetadata;

/// Between a value and its version.
const SEPARATOR: &str = "||";

/// The Redis configuration store.
pub struct RedisConfiguration {
    redis: Redis,
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
    Ok(RedisConfiguration { redis })
}

/// A stored string split into value and version.
fn value_and_version(stored: &str) -> (String, String) {
    let mut parts = stored.split(SEPARATOR);
    let value = parts.next().unwrap_or_default().to_owned();
    let version = parts.next().unwrap_or_default().to_owned();
    (value, version)
}

#[async_trait::async_trait]
impl ConfigurationStore for RedisConfiguration {
    async fn get(
        &self,
        keys: &[String],
        _metadata: &HashMap<String, String>,
    ) -> Result<BTreeMap<String, ConfigurationItem>, ConfigurationError> {
        let keys: Vec<String> = if keys.is_empty() {
            self.redis
                .query(Access::Read, redis::cmd("KEYS").arg("*"))
                .await
                .map_err(|error| ConfigurationError::Backend(error.to_string()))?
        } else {
            keys.to_vec()
        };
        let mut items = BTreeMap::new();
        for key in keys {
            let stored = match self
                .redis
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

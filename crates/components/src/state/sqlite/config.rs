//! The SQLite state store's settings: upstream's names, aliases, defaults and checks.

use std::time::Duration;

use crate::metadata::{MetadataError, Properties};
use crate::state::StateError;

/// Default `timeout`: how long a request may wait for the database connection.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);
/// Default `busyTimeout`: how long SQLite waits on a lock held by another connection.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(2);
/// Default `tableName`.
pub const DEFAULT_TABLE_NAME: &str = "state";
/// Default `metadataTableName`.
pub const DEFAULT_METADATA_TABLE_NAME: &str = "metadata";

/// The SQLite state store's settings, from the component's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteConfig {
    /// `connectionString` (alias `url`): a file path, a `file:` URI with query options
    /// (`mode`, `immutable`, `_txlock`, `_pragma=name(value)`, ...), or `:memory:`.
    /// Required.
    pub connection_string: String,
    /// `timeout` (alias `timeoutInSeconds`): how long a request may wait for the database
    /// connection before failing without effect (a started statement is not cut short;
    /// lock waits inside it are bounded by `busyTimeout`); at least 1s.
    pub timeout: Duration,
    /// `busyTimeout`: how long to wait for another connection's lock; zero (or a negative
    /// value) waits not at all. Truncated to milliseconds.
    pub busy_timeout: Duration,
    /// `disableWAL`: use the rollback journal instead of WAL (for network file systems).
    pub disable_wal: bool,
    /// `tableName`: the state table.
    pub table_name: String,
    /// `metadataTableName`: the table holding the schema level and last cleanup time.
    pub metadata_table_name: String,
    /// `cleanupInterval` (alias `cleanupIntervalInSeconds`): how often expired rows are
    /// deleted; `None` (unset, zero or negative, upstream's default) disables the cleanup,
    /// and expired rows are then only hidden.
    pub cleanup_interval: Option<Duration>,
}

impl SqliteConfig {
    /// Defaults for everything but the connection string.
    pub fn new(connection_string: impl Into<String>) -> Self {
        Self {
            connection_string: connection_string.into(),
            timeout: DEFAULT_TIMEOUT,
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
            disable_wal: false,
            table_name: DEFAULT_TABLE_NAME.to_owned(),
            metadata_table_name: DEFAULT_METADATA_TABLE_NAME.to_owned(),
            cleanup_interval: None,
        }
    }

    /// Reads and checks the settings.
    pub fn from_properties(properties: &Properties) -> Result<Self, StateError> {
        let mut config = Self::new(
            properties
                .text("connectionString", &["url"])
                .unwrap_or_default(),
        );
        if let Some(timeout) = properties
            .duration("timeout", &["timeoutInSeconds"])
            .map_err(invalid_metadata)?
        {
            config.timeout = timeout;
        }
        if let Some(busy_timeout) = duration_or_off(properties, "busyTimeout", &[])? {
            config.busy_timeout = busy_timeout.unwrap_or(Duration::ZERO);
        }
        if let Some(disable_wal) = properties
            .bool("disableWAL", &[])
            .map_err(invalid_metadata)?
        {
            config.disable_wal = disable_wal;
        }
        if let Some(name) = properties
            .text("tableName", &[])
            .filter(|name| !name.is_empty())
        {
            config.table_name = name.to_owned();
        }
        if let Some(name) = properties
            .text("metadataTableName", &[])
            .filter(|name| !name.is_empty())
        {
            config.metadata_table_name = name.to_owned();
        }
        if let Some(interval) =
            duration_or_off(properties, "cleanupInterval", &["cleanupIntervalInSeconds"])?
        {
            config.cleanup_interval = interval;
        }
        config.validate()?;
        Ok(config)
    }

    /// Upstream's checks, with upstream's messages.
    pub fn validate(&mut self) -> Result<(), StateError> {
        if self.connection_string.is_empty() {
            return Err(invalid("missing connection string".to_owned()));
        }
        if self.timeout < Duration::from_secs(1) {
            return Err(invalid(
                "invalid value for 'timeout': must be greater than 1s".to_owned(),
            ));
        }
        self.busy_timeout =
            Duration::from_millis(u64::try_from(self.busy_timeout.as_millis()).unwrap_or(u64::MAX));
        for name in [&self.table_name, &self.metadata_table_name] {
            if !valid_identifier(name) {
                return Err(invalid(format!("invalid identifier: {name}")));
            }
        }
        Ok(())
    }
}

/// A duration where zero or a negative value switches the feature off: `None` when
/// unset, `Some(None)` when off.
fn duration_or_off(
    properties: &Properties,
    name: &str,
    aliases: &[&str],
) -> Result<Option<Option<Duration>>, StateError> {
    if let Some(negative) = properties
        .text(name, aliases)
        .and_then(|text| text.trim().strip_prefix('-'))
    {
        let well_formed =
            dapr_kit::duration::parse(negative).is_ok() || negative.parse::<u64>().is_ok();
        return if well_formed {
            Ok(Some(None))
        } else {
            Err(invalid(format!(
                "invalid value for '{name}': invalid duration \"-{negative}\""
            )))
        };
    }
    let duration = properties
        .duration(name, aliases)
        .map_err(invalid_metadata)?;
    Ok(duration.map(|duration| (!duration.is_zero()).then_some(duration)))
}

/// ASCII letters, digits and `_` only, as upstream allows for table names.
fn valid_identifier(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_')
}

fn invalid(reason: String) -> StateError {
    StateError::InvalidMetadata(reason)
}

fn invalid_metadata(error: MetadataError) -> StateError {
    invalid(error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(value: serde_json::Value) -> Result<SqliteConfig, StateError> {
        SqliteConfig::from_properties(&Properties::from_json(&value).unwrap())
    }

    #[test]
    fn defaults_follow_upstream() {
        let config = config(json!({"connectionString": "state.db"})).unwrap();
        assert_eq!(config, SqliteConfig::new("state.db"));
        assert_eq!(config.timeout, Duration::from_secs(20));
        assert_eq!(config.busy_timeout, Duration::from_secs(2));
        assert_eq!(
            (
                config.table_name.as_str(),
                config.metadata_table_name.as_str()
            ),
            ("state", "metadata")
        );
        assert_eq!(config.cleanup_interval, None);
        assert!(!config.disable_wal);
    }

    #[test]
    fn aliases_and_values_are_read() {
        let config = config(json!({
            "url": "file:data.db",
            "timeoutInSeconds": "1200",
            "cleanupIntervalInSeconds": 22,
            "busyTimeout": "1500us",
            "disableWAL": "true",
            "tableName": "dapr_state",
            "metadataTableName": "dapr_metadata",
        }))
        .unwrap();
        assert_eq!(config.connection_string, "file:data.db");
        assert_eq!(config.timeout, Duration::from_secs(1200));
        assert_eq!(config.cleanup_interval, Some(Duration::from_secs(22)));
        assert_eq!(config.busy_timeout, Duration::from_millis(1));
        assert!(config.disable_wal);
        assert_eq!(config.table_name, "dapr_state");
        assert_eq!(config.metadata_table_name, "dapr_metadata");
    }

    #[test]
    fn zero_or_negative_intervals_switch_off() {
        for value in ["0", "0s", "-1", "-1h"] {
            let config = config(json!({
                "connectionString": "s.db",
                "cleanupInterval": value,
                "busyTimeout": value,
            }))
            .unwrap();
            assert_eq!(config.cleanup_interval, None, "{value}");
            assert_eq!(config.busy_timeout, Duration::ZERO, "{value}");
        }
        assert!(config(json!({"connectionString": "s.db", "cleanupInterval": "-soon"})).is_err());
    }

    #[test]
    fn invalid_settings_are_refused_with_upstreams_words() {
        let message = |value| config(value).unwrap_err().to_string();
        assert_eq!(
            message(json!({})),
            "invalid metadata: missing connection string"
        );
        assert_eq!(
            message(json!({"connectionString": "s.db", "timeout": "500ms"})),
            "invalid metadata: invalid value for 'timeout': must be greater than 1s"
        );
        assert_eq!(
            message(json!({"connectionString": "s.db", "tableName": "state; DROP"})),
            "invalid metadata: invalid identifier: state; DROP"
        );
        assert_eq!(
            message(json!({"connectionString": "s.db", "metadataTableName": "meta-data"})),
            "invalid metadata: invalid identifier: meta-data"
        );
        assert!(config(json!({"connectionString": "s.db", "disableWAL": "maybe"})).is_err());
    }
}

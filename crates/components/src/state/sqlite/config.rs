//! The SQLite state store's settings: upstream's names, aliases, defaults and checks. The
//! settings all SQLite components share are read by [`crate::sqlite`]; this module adds
//! the store's defaults and `cleanupInterval`.

use std::time::Duration;

use crate::metadata::Properties;
use crate::sqlite::{NegativeDurations, SettingsProfile, SqliteSettings, duration_or_off};
use crate::state::StateError;

/// Default `timeout`: how long a request may wait for the database connection.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);
/// Default `busyTimeout`: how long SQLite waits on a lock held by another connection.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(2);
/// Default `tableName`.
pub const DEFAULT_TABLE_NAME: &str = "state";
/// Default `metadataTableName`.
pub const DEFAULT_METADATA_TABLE_NAME: &str = "metadata";

/// The store's defaults for the shared settings; a negative `busyTimeout` or
/// `cleanupInterval` must still be a well-formed duration, and table-name errors do not
/// say which table.
const PROFILE: SettingsProfile = SettingsProfile {
    timeout: DEFAULT_TIMEOUT,
    busy_timeout: DEFAULT_BUSY_TIMEOUT,
    table_name: DEFAULT_TABLE_NAME,
    metadata_table_name: DEFAULT_METADATA_TABLE_NAME,
    negative_durations: NegativeDurations::WellFormed,
    say_which_table: false,
};

/// The SQLite state store's settings, from the component's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteConfig {
    /// The settings every SQLite component reads. Here `connectionString` may be
    /// `:memory:` for a database private to this store; `timeout` is how long a request
    /// may wait for the database connection before failing without effect (a started
    /// statement is not cut short; lock waits inside it are bounded by `busyTimeout`);
    /// `tableName` is the state table.
    pub common: SqliteSettings,
    /// `cleanupInterval` (alias `cleanupIntervalInSeconds`): how often expired rows are
    /// deleted; `None` (unset, zero or negative, upstream's default) disables the cleanup,
    /// and expired rows are then only hidden.
    pub cleanup_interval: Option<Duration>,
}

impl SqliteConfig {
    /// Defaults for everything but the connection string.
    pub fn new(connection_string: impl Into<String>) -> Self {
        Self {
            common: SqliteSettings::new(connection_string, &PROFILE),
            cleanup_interval: None,
        }
    }

    /// Reads and checks the settings.
    pub fn from_properties(properties: &Properties) -> Result<Self, StateError> {
        let mut config = Self {
            common: SqliteSettings::read(properties, &PROFILE).map_err(invalid)?,
            cleanup_interval: duration_or_off(
                properties,
                "cleanupInterval",
                &["cleanupIntervalInSeconds"],
                PROFILE.negative_durations,
            )
            .map_err(invalid)?
            .flatten(),
        };
        config.validate()?;
        Ok(config)
    }

    /// Upstream's checks, with upstream's messages.
    pub fn validate(&mut self) -> Result<(), StateError> {
        self.common.validate(&PROFILE).map_err(invalid)
    }
}

fn invalid(reason: String) -> StateError {
    StateError::InvalidMetadata(reason)
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
        assert_eq!(config.common.timeout, Duration::from_secs(20));
        assert_eq!(config.common.busy_timeout, Duration::from_secs(2));
        assert_eq!(
            (
                config.common.table_name.as_str(),
                config.common.metadata_table_name.as_str()
            ),
            ("state", "metadata")
        );
        assert_eq!(config.cleanup_interval, None);
        assert!(!config.common.disable_wal);
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
        assert_eq!(config.common.connection_string, "file:data.db");
        assert_eq!(config.common.timeout, Duration::from_secs(1200));
        assert_eq!(config.cleanup_interval, Some(Duration::from_secs(22)));
        assert_eq!(config.common.busy_timeout, Duration::from_millis(1));
        assert!(config.common.disable_wal);
        assert_eq!(config.common.table_name, "dapr_state");
        assert_eq!(config.common.metadata_table_name, "dapr_metadata");
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
            assert_eq!(config.common.busy_timeout, Duration::ZERO, "{value}");
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

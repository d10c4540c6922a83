//! The `sqlite` resolver's settings: upstream's names, aliases, defaults and checks. The
//! settings all SQLite components share are read by [`crate::sqlite`]; this module adds
//! the resolver's defaults, `updateInterval` and `cleanupInterval`.

use std::time::Duration;

use super::COMPONENT;
use crate::metadata::Properties;
use crate::nameresolution::ResolveError;
use crate::sqlite::{NegativeDurations, SettingsProfile, SqliteSettings, duration_or_off};

/// Default `timeout` for one database operation (lower than the SQLite state store's).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
/// Default `busyTimeout`: how long SQLite waits on a lock held by another process.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_millis(800);
/// Default `tableName`.
pub const DEFAULT_TABLE_NAME: &str = "hosts";
/// Default `metadataTableName` (shared with other Dapr SQLite components: keys differ).
pub const DEFAULT_METADATA_TABLE_NAME: &str = "metadata";
/// Default `updateInterval`: a registration not renewed for this long is dead.
pub const DEFAULT_UPDATE_INTERVAL: Duration = Duration::from_secs(5);
/// Default `cleanupInterval`: how often dead registrations are deleted.
pub const DEFAULT_CLEANUP_INTERVAL: Duration = Duration::from_secs(3600);

/// The resolver's defaults for the shared settings; any value starting with `-` switches
/// `busyTimeout` or `cleanupInterval` off, and table-name errors say which table.
const PROFILE: SettingsProfile = SettingsProfile {
    timeout: DEFAULT_TIMEOUT,
    busy_timeout: DEFAULT_BUSY_TIMEOUT,
    table_name: DEFAULT_TABLE_NAME,
    metadata_table_name: DEFAULT_METADATA_TABLE_NAME,
    negative_durations: NegativeDurations::AnyAfterMinus,
    say_which_table: true,
};

/// The `sqlite` resolver's settings, from `spec.nameResolution.configuration`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteConfig {
    /// The settings every SQLite component reads. Here `connectionString` may be
    /// `:memory:`, which keeps the registry inside this process; `timeout` limits each
    /// database operation; `tableName` is the registrations table; `busyTimeout` waits
    /// for another process's lock.
    pub common: SqliteSettings,
    /// `updateInterval`: registrations older than this are ignored; whole seconds, at
    /// least 1s more than `timeout`. Heartbeats run every `updateInterval - timeout`.
    pub update_interval: Duration,
    /// `cleanupInterval` (alias `cleanupIntervalInSeconds`): how often dead registrations
    /// are deleted; `None` (a zero or negative value) disables the cleanup.
    pub cleanup_interval: Option<Duration>,
}

impl SqliteConfig {
    /// Defaults for everything but the connection string.
    pub fn new(connection_string: impl Into<String>) -> Self {
        Self {
            common: SqliteSettings::new(connection_string, &PROFILE),
            update_interval: DEFAULT_UPDATE_INTERVAL,
            cleanup_interval: Some(DEFAULT_CLEANUP_INTERVAL),
        }
    }

    /// Reads and checks the settings.
    pub fn from_json(configuration: &serde_json::Value) -> Result<Self, ResolveError> {
        let properties =
            Properties::from_json(configuration).map_err(|error| invalid(error.to_string()))?;
        let mut config = Self {
            common: SqliteSettings::read(&properties, &PROFILE).map_err(invalid)?,
            update_interval: properties
                .duration("updateInterval", &[])
                .map_err(|error| invalid(error.to_string()))?
                .unwrap_or(DEFAULT_UPDATE_INTERVAL),
            cleanup_interval: duration_or_off(
                &properties,
                "cleanupInterval",
                &["cleanupIntervalInSeconds"],
                PROFILE.negative_durations,
            )
            .map_err(invalid)?
            .unwrap_or(Some(DEFAULT_CLEANUP_INTERVAL)),
        };
        config.validate()?;
        Ok(config)
    }

    /// Upstream's checks, with upstream's messages.
    pub fn validate(&mut self) -> Result<(), ResolveError> {
        self.common.validate(&PROFILE).map_err(invalid)?;
        if self.update_interval.subsec_nanos() != 0 {
            return Err(invalid(
                "update interval must not contain fractions of seconds".to_owned(),
            ));
        }
        if self.update_interval < self.common.timeout + Duration::from_secs(1) {
            return Err(invalid(
                "update interval must be at least 1s greater than timeout".to_owned(),
            ));
        }
        Ok(())
    }

    /// How often this instance renews its registration: `updateInterval - timeout`.
    pub fn heartbeat_interval(&self) -> Duration {
        self.update_interval.saturating_sub(self.common.timeout)
    }
}

fn invalid(reason: String) -> ResolveError {
    ResolveError::InvalidConfiguration {
        component: COMPONENT,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_follow_upstream() {
        let config = SqliteConfig::from_json(&json!({"connectionString": "nr.db"})).unwrap();
        assert_eq!(config, SqliteConfig::new("nr.db"));
        assert_eq!(config.common.timeout, Duration::from_secs(1));
        assert_eq!(config.common.busy_timeout, Duration::from_millis(800));
        assert_eq!(config.update_interval, Duration::from_secs(5));
        assert_eq!(config.cleanup_interval, Some(Duration::from_secs(3600)));
        assert_eq!(config.heartbeat_interval(), Duration::from_secs(4));
        assert_eq!(
            (
                config.common.table_name.as_str(),
                config.common.metadata_table_name.as_str()
            ),
            ("hosts", "metadata")
        );
    }

    #[test]
    fn every_setting_and_alias_is_read() {
        let config = SqliteConfig::from_json(&json!({
            "url": "file:x.db",
            "timeoutInSeconds": 2,
            "busyTimeout": "250ms",
            "disableWAL": "true",
            "tableName": "nr_hosts",
            "metadataTableName": "nr_meta",
            "updateInterval": "10s",
            "cleanupIntervalInSeconds": "30",
        }))
        .unwrap();
        assert_eq!(config.common.connection_string, "file:x.db");
        assert_eq!(config.common.timeout, Duration::from_secs(2));
        assert_eq!(config.common.busy_timeout, Duration::from_millis(250));
        assert!(config.common.disable_wal);
        assert_eq!(config.common.table_name, "nr_hosts");
        assert_eq!(config.common.metadata_table_name, "nr_meta");
        assert_eq!(config.update_interval, Duration::from_secs(10));
        assert_eq!(config.cleanup_interval, Some(Duration::from_secs(30)));
    }

    #[test]
    fn zero_or_negative_cleanup_interval_disables_cleanup() {
        for value in [json!("0"), json!(-1), json!("-1s"), json!(0)] {
            let config = SqliteConfig::from_json(
                &json!({"connectionString": "a.db", "cleanupInterval": value}),
            )
            .unwrap();
            assert_eq!(config.cleanup_interval, None, "{value}");
        }
        let config =
            SqliteConfig::from_json(&json!({"connectionString": "a.db", "busyTimeout": "-1s"}))
                .unwrap();
        assert_eq!(config.common.busy_timeout, Duration::ZERO);
    }

    #[test]
    fn bad_values_are_rejected_with_upstream_messages() {
        let cases = [
            (json!({}), "missing connection string"),
            (
                json!({"connectionString": "a.db", "timeout": "500ms"}),
                "invalid value for 'timeout': must be greater than 1s",
            ),
            (
                json!({"connectionString": "a.db", "tableName": "hosts; DROP"}),
                "invalid identifier for table name: hosts; DROP",
            ),
            (
                json!({"connectionString": "a.db", "metadataTableName": "m-d"}),
                "invalid identifier for metadata table name: m-d",
            ),
            (
                json!({"connectionString": "a.db", "updateInterval": "2500ms"}),
                "update interval must not contain fractions of seconds",
            ),
            (
                json!({"connectionString": "a.db", "updateInterval": "1s"}),
                "update interval must be at least 1s greater than timeout",
            ),
            (
                json!({"connectionString": "a.db", "timeout": "4500ms"}),
                "update interval must be at least 1s greater than timeout",
            ),
            (
                json!({"connectionString": "a.db", "updateInterval": "often"}),
                "invalid value for 'updateInterval': invalid duration \"often\"",
            ),
            (
                json!({"connectionString": "a.db", "disableWAL": "sometimes"}),
                "invalid value for 'disableWAL': \"sometimes\" is not a boolean (use true or false)",
            ),
        ];
        for (configuration, reason) in cases {
            let error = SqliteConfig::from_json(&configuration).unwrap_err();
            assert_eq!(
                error.to_string(),
                format!("name resolver sqlite: invalid configuration: {reason}"),
                "{configuration}"
            );
        }
    }
}

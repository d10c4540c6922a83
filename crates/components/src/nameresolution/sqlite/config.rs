//! The `sqlite` resolver's settings: upstream's names, aliases, defaults and checks.

use std::time::Duration;

use super::COMPONENT;
use crate::metadata::Properties;
use crate::nameresolution::ResolveError;

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

/// The `sqlite` resolver's settings, from `spec.nameResolution.configuration`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteConfig {
    /// `connectionString` (alias `url`): a file path or `file:` URI, optionally with query
    /// options (`mode`, `immutable`, `cache`, `_txlock`, `_pragma=name(value)`); `:memory:`
    /// keeps the registry inside this process. Required.
    pub connection_string: String,
    /// `timeout` (alias `timeoutInSeconds`): limit for each database operation; at least 1s.
    pub timeout: Duration,
    /// `busyTimeout`: how long to wait for another process's lock; zero waits not at all.
    pub busy_timeout: Duration,
    /// `disableWAL`: use the rollback journal instead of WAL (for network file systems).
    pub disable_wal: bool,
    /// `tableName`: the registrations table.
    pub table_name: String,
    /// `metadataTableName`: the table holding the migration level and last cleanup time.
    pub metadata_table_name: String,
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
            connection_string: connection_string.into(),
            timeout: DEFAULT_TIMEOUT,
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
            disable_wal: false,
            table_name: DEFAULT_TABLE_NAME.to_owned(),
            metadata_table_name: DEFAULT_METADATA_TABLE_NAME.to_owned(),
            update_interval: DEFAULT_UPDATE_INTERVAL,
            cleanup_interval: Some(DEFAULT_CLEANUP_INTERVAL),
        }
    }

    /// Reads and checks the settings.
    pub fn from_json(configuration: &serde_json::Value) -> Result<Self, ResolveError> {
        let properties =
            Properties::from_json(configuration).map_err(|error| invalid(error.to_string()))?;
        let metadata_error = |error: crate::metadata::MetadataError| invalid(error.to_string());

        let mut config = Self::new(
            properties
                .text("connectionString", &["url"])
                .unwrap_or_default(),
        );
        if let Some(timeout) = properties
            .duration("timeout", &["timeoutInSeconds"])
            .map_err(metadata_error)?
        {
            config.timeout = timeout;
        }
        if let Some(busy_timeout) = duration_or_off(&properties, "busyTimeout", &[])? {
            config.busy_timeout = busy_timeout.unwrap_or(Duration::ZERO);
        }
        if let Some(disable_wal) = properties.bool("disableWAL", &[]).map_err(metadata_error)? {
            config.disable_wal = disable_wal;
        }
        if let Some(table_name) = properties
            .text("tableName", &[])
            .filter(|name| !name.is_empty())
        {
            config.table_name = table_name.to_owned();
        }
        if let Some(table_name) = properties
            .text("metadataTableName", &[])
            .filter(|name| !name.is_empty())
        {
            config.metadata_table_name = table_name.to_owned();
        }
        if let Some(update_interval) = properties
            .duration("updateInterval", &[])
            .map_err(metadata_error)?
        {
            config.update_interval = update_interval;
        }
        if let Some(cleanup_interval) = duration_or_off(
            &properties,
            "cleanupInterval",
            &["cleanupIntervalInSeconds"],
        )? {
            config.cleanup_interval = cleanup_interval;
        }
        config.validate()?;
        Ok(config)
    }

    /// Upstream's checks, with upstream's messages.
    pub fn validate(&mut self) -> Result<(), ResolveError> {
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
        if !valid_identifier(&self.table_name) {
            return Err(invalid(format!(
                "invalid identifier for table name: {}",
                self.table_name
            )));
        }
        if !valid_identifier(&self.metadata_table_name) {
            return Err(invalid(format!(
                "invalid identifier for metadata table name: {}",
                self.metadata_table_name
            )));
        }
        if self.update_interval.subsec_nanos() != 0 {
            return Err(invalid(
                "update interval must not contain fractions of seconds".to_owned(),
            ));
        }
        if self.update_interval < self.timeout + Duration::from_secs(1) {
            return Err(invalid(
                "update interval must be at least 1s greater than timeout".to_owned(),
            ));
        }
        Ok(())
    }

    /// How often this instance renews its registration: `updateInterval - timeout`.
    pub fn heartbeat_interval(&self) -> Duration {
        self.update_interval.saturating_sub(self.timeout)
    }
}

/// A duration where zero or a negative value switches the feature off. `None` when unset,
/// `Some(None)` when off.
fn duration_or_off(
    properties: &Properties,
    name: &str,
    aliases: &[&str],
) -> Result<Option<Option<Duration>>, ResolveError> {
    if properties
        .text(name, aliases)
        .is_some_and(|text| text.trim_start().starts_with('-'))
    {
        return Ok(Some(None));
    }
    let duration = properties
        .duration(name, aliases)
        .map_err(|error| invalid(error.to_string()))?;
    Ok(duration.map(|duration| (!duration.is_zero()).then_some(duration)))
}

/// ASCII letters, digits and `_` only, as upstream allows for table names.
fn valid_identifier(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_')
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
        assert_eq!(config.timeout, Duration::from_secs(1));
        assert_eq!(config.busy_timeout, Duration::from_millis(800));
        assert_eq!(config.update_interval, Duration::from_secs(5));
        assert_eq!(config.cleanup_interval, Some(Duration::from_secs(3600)));
        assert_eq!(config.heartbeat_interval(), Duration::from_secs(4));
        assert_eq!(
            (
                config.table_name.as_str(),
                config.metadata_table_name.as_str()
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
        assert_eq!(config.connection_string, "file:x.db");
        assert_eq!(config.timeout, Duration::from_secs(2));
        assert_eq!(config.busy_timeout, Duration::from_millis(250));
        assert!(config.disable_wal);
        assert_eq!(config.table_name, "nr_hosts");
        assert_eq!(config.metadata_table_name, "nr_meta");
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
        assert_eq!(config.busy_timeout, Duration::ZERO);
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

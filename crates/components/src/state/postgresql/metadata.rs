//! The component's settings, with upstream's names and defaults for each version:
//! table names (`tableName` for v1, `tablePrefix` for v2), `metadataTableName`,
//! `timeout`, `cleanupInterval`, the pool knobs (`maxConns`, `connectionMaxIdleTime`,
//! `queryExecMode`) and the cloud sign-in flags this build refuses. The connection and
//! pool part ([`pool_options`], [`timeout`]) is shared with `bindings.postgresql`.

use std::time::Duration;

use crate::metadata::Properties;
use crate::state::StateError;

use super::PostgresVersion;
use super::connection;
use super::pool::{ExecMode, PoolOptions};

/// Upstream's default `timeout`.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);
/// Upstream's default `cleanupInterval`.
const DEFAULT_CLEANUP_INTERVAL: Duration = Duration::from_secs(3600);
/// v1's default `tableName`.
const DEFAULT_TABLE_NAME: &str = "state";
/// The default `metadataTableName` (both versions).
const DEFAULT_METADATA_TABLE_NAME: &str = "dapr_metadata";

/// Everything `open` needs, resolved from the component's metadata.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Connection and pool settings.
    pub pool: PoolOptions,
    /// The state table, possibly schema-qualified (`public.state`).
    pub state_table: String,
    /// The metadata table, possibly schema-qualified.
    pub metadata_table: String,
    /// The metadata-table key holding the migration level.
    pub migrations_key: String,
    /// The metadata-table key holding the time of the last expired-row cleanup.
    pub last_cleanup_key: String,
    /// Bound on each operation.
    pub timeout: Duration,
    /// How often expired rows are deleted; `None` disables the cleanup.
    pub cleanup_interval: Option<Duration>,
}

impl Settings {
    /// Reads and validates the settings for `version`.
    pub(crate) fn parse(
        properties: &Properties,
        version: PostgresVersion,
    ) -> Result<Self, StateError> {
        let pool = pool_options(properties)?;

        let (state_table, migrations_key, last_cleanup_key) = match version {
            PostgresVersion::V1 => (
                non_empty(properties, "tableName")
                    .unwrap_or(DEFAULT_TABLE_NAME)
                    .to_owned(),
                "migrations".to_owned(),
                "last-cleanup".to_owned(),
            ),
            PostgresVersion::V2 => {
                if non_empty(properties, "tableName").is_some() {
                    tracing::warn!("state.postgresql v2 ignores 'tableName': use 'tablePrefix'");
                }
                let prefix = properties.text("tablePrefix", &[]).unwrap_or_default();
                (
                    format!("{prefix}state"),
                    format!("migrations-state-v2-{prefix}"),
                    format!("last-cleanup-state-v2-{prefix}"),
                )
            }
        };
        validate_table_name("tableName", &state_table)?;
        let metadata_table = non_empty(properties, "metadataTableName")
            .unwrap_or(DEFAULT_METADATA_TABLE_NAME)
            .to_owned();
        validate_table_name("metadataTableName", &metadata_table)?;

        let timeout = timeout(properties)?;

        Ok(Self {
            pool,
            state_table,
            metadata_table,
            migrations_key,
            last_cleanup_key,
            timeout,
            cleanup_interval: cleanup_interval(properties)?,
        })
    }
}

/// The connection and pool settings every PostgreSQL component shares (upstream's
/// `PostgresAuthMetadata`): the connection string and its overrides, `maxConns`,
/// `connectionMaxIdleTime` and `queryExecMode`, refusing the cloud sign-in flags.
pub(crate) fn pool_options(properties: &Properties) -> Result<PoolOptions, StateError> {
    refuse_cloud_sign_in(properties)?;
    let connection =
        connection::from_properties(properties).map_err(StateError::InvalidMetadata)?;

    let max_conns = match non_empty(properties, "maxConns") {
        Some(text) => {
            let max: i64 = text.parse().map_err(|_| {
                StateError::InvalidMetadata(format!(
                    "invalid value for 'maxConns': {text:?} is not a whole number"
                ))
            })?;
            usize::try_from(max).ok().filter(|max| *max > 0)
        }
        None => None,
    }
    .or(connection.max_conns)
    .unwrap_or_else(default_max_conns);

    let max_idle_time = properties
        .duration("connectionMaxIdleTime", &[])
        .map_err(|error| StateError::InvalidMetadata(error.to_string()))?
        .filter(|idle| !idle.is_zero())
        .or(connection.max_idle_time);

    let mode_text = non_empty(properties, "queryExecMode")
        .map(str::to_owned)
        .or(connection.exec_mode)
        .unwrap_or_default();
    let exec_mode = ExecMode::parse(&mode_text).ok_or_else(|| {
        StateError::InvalidMetadata(format!("invalid queryExecMode metadata value: {mode_text}"))
    })?;

    Ok(PoolOptions {
        config: connection.config,
        tls: connection.tls,
        max_conns,
        max_idle_time,
        exec_mode,
    })
}

/// `timeout` (alias `timeoutInSeconds`): 20s unless set, and at least one second.
pub(crate) fn timeout(properties: &Properties) -> Result<Duration, StateError> {
    let timeout = properties
        .duration("timeout", &["timeoutInSeconds"])
        .map_err(|error| StateError::InvalidMetadata(error.to_string()))?
        .unwrap_or(DEFAULT_TIMEOUT);
    if timeout < Duration::from_secs(1) {
        return Err(StateError::InvalidMetadata(
            "invalid value for 'timeout': must be greater than 1s".into(),
        ));
    }
    Ok(timeout)
}

fn non_empty<'a>(properties: &'a Properties, name: &str) -> Option<&'a str> {
    properties
        .text(name, &[])
        .map(str::trim)
        .filter(|text| !text.is_empty())
}

/// Azure AD and AWS IAM sign-in need token providers this build does not have.
fn refuse_cloud_sign_in(properties: &Properties) -> Result<(), StateError> {
    for (flag, what) in [("useAzureAD", "Azure AD"), ("useAWSIAM", "AWS IAM")] {
        let enabled = properties
            .bool(flag, &[])
            .map_err(|error| StateError::InvalidMetadata(error.to_string()))?;
        if enabled == Some(true) {
            return Err(StateError::InvalidMetadata(format!(
                "'{flag}' is set but {what} authentication is not supported by this build: use a connection string with a user and password"
            )));
        }
    }
    Ok(())
}

/// `cleanupInterval`: unset or empty means one hour; zero or negative disables the cleanup.
fn cleanup_interval(properties: &Properties) -> Result<Option<Duration>, StateError> {
    let Some(text) = properties
        .text("cleanupInterval", &["cleanupIntervalInSeconds"])
        .map(str::trim)
        .filter(|text| !text.is_empty())
    else {
        return Ok(Some(DEFAULT_CLEANUP_INTERVAL));
    };
    if let Ok(seconds) = text.parse::<i64>() {
        return Ok(u64::try_from(seconds)
            .ok()
            .filter(|seconds| *seconds > 0)
            .map(Duration::from_secs));
    }
    match dapr_kit::duration::parse(text) {
        Ok(interval) => Ok(Some(interval).filter(|interval| !interval.is_zero())),
        Err(dapr_kit::duration::DurationError::Negative(_)) => Ok(None),
        Err(error) => Err(StateError::InvalidMetadata(format!(
            "invalid value for 'cleanupInterval': {error}"
        ))),
    }
}

/// pgxpool's default: the greater of 4 and the number of CPUs.
fn default_max_conns() -> usize {
    std::thread::available_parallelism()
        .map(|cpus| cpus.get())
        .unwrap_or(1)
        .max(4)
}

/// Table names are pasted into SQL (PostgreSQL cannot bind identifiers), so only plain
/// identifiers are accepted: `table` or `schema.table`, each part either unquoted
/// (`[A-Za-z_][A-Za-z0-9_$]*`) or double-quoted without quotes inside.
fn validate_table_name(setting: &str, name: &str) -> Result<(), StateError> {
    let valid_part = |part: &str| {
        if let Some(quoted) = part
            .strip_prefix('"')
            .and_then(|rest| rest.strip_suffix('"'))
        {
            return !quoted.is_empty() && !quoted.contains('"') && !quoted.contains('\0');
        }
        let mut chars = part.chars();
        chars
            .next()
            .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
    };
    let parts = split_name(name);
    if (1..=2).contains(&parts.len()) && parts.iter().all(|part| valid_part(part)) {
        Ok(())
    } else {
        Err(StateError::InvalidMetadata(format!(
            "invalid value for '{setting}': {name:?} is not a table name (use table or schema.table)"
        )))
    }
}

/// Splits `a.b` on dots outside double quotes.
fn split_name(name: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    for (index, c) in name.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '.' if !quoted => {
                parts.push(&name[start..index]);
                start = index + 1;
            }
            _ => {}
        }
    }
    parts.push(&name[start..]);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(version: PostgresVersion, value: serde_json::Value) -> Result<Settings, StateError> {
        Settings::parse(&Properties::from_json(&value).unwrap(), version)
    }

    fn error(version: PostgresVersion, value: serde_json::Value) -> String {
        parse(version, value).unwrap_err().to_string()
    }

    #[test]
    fn defaults_follow_upstream() {
        let v1 = parse(
            PostgresVersion::V1,
            json!({"connectionString": "host=h user=u"}),
        )
        .unwrap();
        assert_eq!(v1.state_table, "state");
        assert_eq!(v1.metadata_table, "dapr_metadata");
        assert_eq!(v1.migrations_key, "migrations");
        assert_eq!(v1.last_cleanup_key, "last-cleanup");
        assert_eq!(v1.timeout, Duration::from_secs(20));
        assert_eq!(v1.cleanup_interval, Some(Duration::from_secs(3600)));
        assert_eq!(v1.pool.exec_mode, ExecMode::Cached);
        assert!(v1.pool.max_conns >= 4);

        let v2 = parse(
            PostgresVersion::V2,
            json!({"connectionString": "host=h", "tablePrefix": "app_", "tableName": "ignored"}),
        )
        .unwrap();
        assert_eq!(v2.state_table, "app_state");
        assert_eq!(v2.migrations_key, "migrations-state-v2-app_");
        assert_eq!(v2.last_cleanup_key, "last-cleanup-state-v2-app_");
    }

    #[test]
    fn names_aliases_and_pool_settings_are_read() {
        let settings = parse(
            PostgresVersion::V1,
            json!({
                "url": "host=h",
                "tableName": "my_schema.\"My State\"",
                "metadataTableName": "meta",
                "timeoutInSeconds": "7",
                "cleanupIntervalInSeconds": "90",
                "maxConns": 3,
                "connectionMaxIdleTime": "5m",
                "queryExecMode": "exec",
            }),
        )
        .unwrap();
        assert_eq!(settings.state_table, "my_schema.\"My State\"");
        assert_eq!(settings.metadata_table, "meta");
        assert_eq!(settings.timeout, Duration::from_secs(7));
        assert_eq!(settings.cleanup_interval, Some(Duration::from_secs(90)));
        assert_eq!(settings.pool.max_conns, 3);
        assert_eq!(settings.pool.max_idle_time, Some(Duration::from_secs(300)));
        assert_eq!(settings.pool.exec_mode, ExecMode::Unnamed);
    }

    #[test]
    fn cleanup_interval_zero_or_negative_disables_and_empty_means_default() {
        for disabled in ["0", "-1", "-5m", "0s"] {
            let settings = parse(
                PostgresVersion::V2,
                json!({"connectionString": "host=h", "cleanupInterval": disabled}),
            )
            .unwrap();
            assert_eq!(settings.cleanup_interval, None, "{disabled}");
        }
        let settings = parse(
            PostgresVersion::V2,
            json!({"connectionString": "host=h", "cleanupInterval": ""}),
        )
        .unwrap();
        assert_eq!(settings.cleanup_interval, Some(DEFAULT_CLEANUP_INTERVAL));
    }

    #[test]
    fn bad_settings_are_invalid_metadata() {
        let v1 = PostgresVersion::V1;
        assert_eq!(
            error(
                v1,
                json!({"connectionString": "host=h", "timeout": "500ms"})
            ),
            "invalid metadata: invalid value for 'timeout': must be greater than 1s"
        );
        assert_eq!(
            error(
                v1,
                json!({"connectionString": "host=h", "queryExecMode": "fast"})
            ),
            "invalid metadata: invalid queryExecMode metadata value: fast"
        );
        assert!(
            error(
                v1,
                json!({"connectionString": "host=h", "tableName": "state; DROP TABLE x"})
            )
            .contains("is not a table name")
        );
        assert!(
            error(
                v1,
                json!({"connectionString": "host=h", "metadataTableName": "a.b.c"})
            )
            .contains("is not a table name")
        );
        assert!(
            error(
                PostgresVersion::V2,
                json!({"connectionString": "host=h", "tablePrefix": "x'"})
            )
            .contains("is not a table name")
        );
        assert!(
            error(
                v1,
                json!({"connectionString": "host=h", "useAzureAD": "true"})
            )
            .contains("Azure AD authentication is not supported")
        );
        assert!(
            error(v1, json!({"connectionString": "host=h", "useAWSIAM": true}))
                .contains("AWS IAM authentication is not supported")
        );
        assert!(
            error(
                v1,
                json!({"connectionString": "host=h", "maxConns": "many"})
            )
            .contains("'maxConns'")
        );
        assert!(
            error(
                v1,
                json!({"connectionString": "host=h", "cleanupInterval": "often"})
            )
            .contains("'cleanupInterval'")
        );
        assert!(
            parse(
                v1,
                json!({"connectionString": "host=h", "useAzureAD": "false"})
            )
            .is_ok()
        );
    }
}

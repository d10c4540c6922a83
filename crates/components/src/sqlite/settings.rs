//! The settings every SQLite component reads the same way: upstream's connection
//! settings (`connectionString`, `timeout`, `busyTimeout`, `disableWAL`) and the names of
//! the component's two tables, with upstream's aliases and checks. Defaults and two rules
//! differ between components: each passes its own [`SettingsProfile`].

use std::time::Duration;

use crate::metadata::Properties;

/// The settings every SQLite component reads; each component's configuration holds them
/// next to its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteSettings {
    /// `connectionString` (alias `url`): a file path or a `file:` URI, optionally with
    /// query options (`mode`, `immutable`, `cache`, `_txlock`, `_pragma=name(value)`,
    /// ...), or `:memory:`. Required.
    pub connection_string: String,
    /// `timeout` (alias `timeoutInSeconds`): the time limit on database work (each
    /// component says how it applies it); at least 1s.
    pub timeout: Duration,
    /// `busyTimeout`: how long SQLite waits on a lock held by another connection; zero (or
    /// a negative value) waits not at all. Truncated to milliseconds.
    pub busy_timeout: Duration,
    /// `disableWAL`: use the rollback journal instead of WAL (for network file systems).
    pub disable_wal: bool,
    /// `tableName`: the component's own table.
    pub table_name: String,
    /// `metadataTableName`: the table holding the schema level and last cleanup time.
    pub metadata_table_name: String,
}

/// What one SQLite component does its own way when reading [`SqliteSettings`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SettingsProfile {
    /// Default `timeout`.
    pub timeout: Duration,
    /// Default `busyTimeout`.
    pub busy_timeout: Duration,
    /// Default `tableName`.
    pub table_name: &'static str,
    /// Default `metadataTableName`.
    pub metadata_table_name: &'static str,
    /// How a negative duration that switches a feature off is recognised.
    pub negative_durations: NegativeDurations,
    /// Whether a bad table name's message says which table (`invalid identifier for
    /// table name: …`, `… for metadata table name: …`) or not (`invalid identifier: …`).
    pub say_which_table: bool,
}

/// How [`duration_or_off`] recognises a negative value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NegativeDurations {
    /// Any text whose first non-blank character is `-`, whatever follows.
    AnyAfterMinus,
    /// `-` followed by a Go duration or a whole number of seconds; anything else after
    /// the `-` is refused.
    WellFormed,
}

impl SqliteSettings {
    /// `profile`'s defaults for everything but the connection string.
    pub(crate) fn new(connection_string: impl Into<String>, profile: &SettingsProfile) -> Self {
        Self {
            connection_string: connection_string.into(),
            timeout: profile.timeout,
            busy_timeout: profile.busy_timeout,
            disable_wal: false,
            table_name: profile.table_name.to_owned(),
            metadata_table_name: profile.metadata_table_name.to_owned(),
        }
    }

    /// Reads the settings over `profile`'s defaults, in upstream's order; the reason
    /// when a value cannot be read. Does not check them: see [`Self::validate`].
    pub(crate) fn read(properties: &Properties, profile: &SettingsProfile) -> Result<Self, String> {
        let metadata_error = |error: crate::metadata::MetadataError| error.to_string();
        let mut settings = Self::new(
            properties
                .text("connectionString", &["url"])
                .unwrap_or_default(),
            profile,
        );
        if let Some(timeout) = properties
            .duration("timeout", &["timeoutInSeconds"])
            .map_err(metadata_error)?
        {
            settings.timeout = timeout;
        }
        if let Some(busy_timeout) =
            duration_or_off(properties, "busyTimeout", &[], profile.negative_durations)?
        {
            settings.busy_timeout = busy_timeout.unwrap_or(Duration::ZERO);
        }
        if let Some(disable_wal) = properties.bool("disableWAL", &[]).map_err(metadata_error)? {
            settings.disable_wal = disable_wal;
        }
        if let Some(name) = properties
            .text("tableName", &[])
            .filter(|name| !name.is_empty())
        {
            settings.table_name = name.to_owned();
        }
        if let Some(name) = properties
            .text("metadataTableName", &[])
            .filter(|name| !name.is_empty())
        {
            settings.metadata_table_name = name.to_owned();
        }
        Ok(settings)
    }

    /// Upstream's checks, with upstream's messages (table names as `profile` says), and
    /// truncates `busy_timeout` to milliseconds; the reason when a check fails.
    pub(crate) fn validate(&mut self, profile: &SettingsProfile) -> Result<(), String> {
        if self.connection_string.is_empty() {
            return Err("missing connection string".to_owned());
        }
        if self.timeout < Duration::from_secs(1) {
            return Err("invalid value for 'timeout': must be greater than 1s".to_owned());
        }
        self.busy_timeout =
            Duration::from_millis(u64::try_from(self.busy_timeout.as_millis()).unwrap_or(u64::MAX));
        for (name, which) in [
            (&self.table_name, "table name"),
            (&self.metadata_table_name, "metadata table name"),
        ] {
            if !valid_identifier(name) {
                return Err(if profile.say_which_table {
                    format!("invalid identifier for {which}: {name}")
                } else {
                    format!("invalid identifier: {name}")
                });
            }
        }
        Ok(())
    }
}

/// A duration where zero or a negative value switches the feature off: `None` when
/// unset, `Some(None)` when off; the reason when the value cannot be read.
pub(crate) fn duration_or_off(
    properties: &Properties,
    name: &str,
    aliases: &[&str],
    negative: NegativeDurations,
) -> Result<Option<Option<Duration>>, String> {
    let text = properties.text(name, aliases);
    match negative {
        NegativeDurations::AnyAfterMinus => {
            if text.is_some_and(|text| text.trim_start().starts_with('-')) {
                return Ok(Some(None));
            }
        }
        NegativeDurations::WellFormed => {
            if let Some(magnitude) = text.and_then(|text| text.trim().strip_prefix('-')) {
                let well_formed = dapr_kit::duration::parse(magnitude).is_ok()
                    || magnitude.parse::<u64>().is_ok();
                return if well_formed {
                    Ok(Some(None))
                } else {
                    Err(format!(
                        "invalid value for '{name}': invalid duration \"-{magnitude}\""
                    ))
                };
            }
        }
    }
    let duration = properties
        .duration(name, aliases)
        .map_err(|error| error.to_string())?;
    Ok(duration.map(|duration| (!duration.is_zero()).then_some(duration)))
}

/// ASCII letters, digits and `_` only, as upstream allows for table names.
fn valid_identifier(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn negative_durations_follow_the_profile() {
        let properties = |value: &str| Properties::from_json(&json!({"every": value})).unwrap();
        let read =
            |value: &str, negative| duration_or_off(&properties(value), "every", &[], negative);
        for negative in [
            NegativeDurations::AnyAfterMinus,
            NegativeDurations::WellFormed,
        ] {
            assert_eq!(read(" -1m", negative), Ok(Some(None)), "{negative:?}");
            assert_eq!(read("0", negative), Ok(Some(None)), "{negative:?}");
            assert_eq!(
                read("90s", negative),
                Ok(Some(Some(Duration::from_secs(90))))
            );
        }
        assert_eq!(
            read("-soon", NegativeDurations::AnyAfterMinus),
            Ok(Some(None))
        );
        assert_eq!(
            read("-soon", NegativeDurations::WellFormed),
            Err("invalid value for 'every': invalid duration \"-soon\"".to_owned())
        );
        assert_eq!(
            duration_or_off(
                &Properties::default(),
                "every",
                &[],
                NegativeDurations::WellFormed
            ),
            Ok(None)
        );
    }
}

//! Component settings the way upstream decodes them: a flat map of names to text, looked
//! up without regard to case, with optional alias names, Go durations (or a bare number
//! of seconds) and "truthy" booleans.
//!
//! Upstream turns every value into a string before decoding, so `timeout: 5` and
//! `timeout: "5"` both mean five seconds; this module does the same.

use std::collections::HashMap;
use std::time::Duration;

/// Why a component's settings could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    /// The settings are not a map of names to values.
    #[error("configuration must be a map of names to values, found {found}")]
    NotAnObject {
        /// The JSON kind that was found instead (string, array, ...).
        found: &'static str,
    },
    /// A value is a list or a map where a single value is expected.
    #[error("value of '{key}' must be a string, number or boolean, found {found}")]
    NotAScalar {
        /// The setting's name as written.
        key: String,
        /// The JSON kind that was found.
        found: &'static str,
    },
    /// Two names differ only in case.
    #[error("key {key} is duplicate in the metadata")]
    DuplicateKey {
        /// The name, lowercased.
        key: String,
    },
    /// A value does not parse as the type the setting needs.
    #[error("invalid value for '{key}': {reason}")]
    InvalidValue {
        /// The setting's name.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// A component's settings, decoded from the JSON value given in a resource.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Properties {
    /// Lowercased name -> value as text.
    values: HashMap<String, String>,
}

impl Properties {
    /// Reads settings from a JSON object; `null` means no settings. Scalar values become
    /// text the way upstream converts them (`5` -> `"5"`, `true` -> `"true"`).
    pub fn from_json(value: &serde_json::Value) -> Result<Self, MetadataError> {
        let object = match value {
            serde_json::Value::Null => return Ok(Self::default()),
            serde_json::Value::Object(object) => object,
            other => {
                return Err(MetadataError::NotAnObject {
                    found: json_kind(other),
                });
            }
        };
        let mut values = HashMap::with_capacity(object.len());
        for (key, value) in object {
            let text = match value {
                serde_json::Value::Null => String::new(),
                serde_json::Value::String(text) => text.clone(),
                serde_json::Value::Bool(flag) => flag.to_string(),
                serde_json::Value::Number(number) => number.to_string(),
                other => {
                    return Err(MetadataError::NotAScalar {
                        key: key.clone(),
                        found: json_kind(other),
                    });
                }
            };
            let lowercased = key.to_lowercase();
            if values.insert(lowercased.clone(), text).is_some() {
                return Err(MetadataError::DuplicateKey { key: lowercased });
            }
        }
        Ok(Self { values })
    }

    /// Every setting as (lower-cased name, text), in no particular order.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
    }

    /// The text of the first of `name` and then `aliases` that is set.
    pub fn text(&self, name: &str, aliases: &[&str]) -> Option<&str> {
        std::iter::once(&name)
            .chain(aliases)
            .find_map(|key| self.values.get(&key.to_lowercase()))
            .map(String::as_str)
    }

    /// A duration: Go duration text (`1m30s`) or a whole number of seconds (`90`).
    /// Unset or empty means `None`; negative values are rejected.
    pub fn duration(
        &self,
        name: &str,
        aliases: &[&str],
    ) -> Result<Option<Duration>, MetadataError> {
        let Some(text) = self.non_empty(name, aliases) else {
            return Ok(None);
        };
        parse_duration(text)
            .map(Some)
            .map_err(|reason| MetadataError::InvalidValue {
                key: name.to_owned(),
                reason,
            })
    }

    /// A boolean: `y`, `yes`, `true`, `t`, `on`, `1` are true and `n`, `no`, `false`, `f`,
    /// `off`, `0` are false (any case). Unset or empty means `None`.
    pub fn bool(&self, name: &str, aliases: &[&str]) -> Result<Option<bool>, MetadataError> {
        let Some(text) = self.non_empty(name, aliases) else {
            return Ok(None);
        };
        match text.to_lowercase().as_str() {
            "y" | "yes" | "true" | "t" | "on" | "1" => Ok(Some(true)),
            "n" | "no" | "false" | "f" | "off" | "0" => Ok(Some(false)),
            _ => Err(MetadataError::InvalidValue {
                key: name.to_owned(),
                reason: format!("{text:?} is not a boolean (use true or false)"),
            }),
        }
    }

    fn non_empty(&self, name: &str, aliases: &[&str]) -> Option<&str> {
        self.text(name, aliases)
            .map(str::trim)
            .filter(|text| !text.is_empty())
    }
}

/// A setting's text, trimmed; `None` when it is unset or blank.
pub fn non_empty<'a>(properties: &'a Properties, name: &str) -> Option<&'a str> {
    properties.non_empty(name, &[])
}

/// Upstream's lenient booleans (`dapr/kit` `IsTruthy`): `y`, `yes`, `true`, `t`, `on` and
/// `1` in any case are true, anything else is false.
pub fn is_truthy(text: &str) -> bool {
    matches!(
        text.trim().to_ascii_lowercase().as_str(),
        "y" | "yes" | "true" | "t" | "on" | "1"
    )
}

/// Go duration text, or else a whole number of seconds, as upstream's decoder accepts.
fn parse_duration(text: &str) -> Result<Duration, String> {
    match dapr_kit::duration::parse(text) {
        Ok(duration) => Ok(duration),
        Err(duration_error) => match text.parse::<u64>() {
            Ok(seconds) => Ok(Duration::from_secs(seconds)),
            Err(_) => Err(duration_error.to_string()),
        },
    }
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "a map",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_match_without_case_and_aliases_apply_in_order() {
        let properties =
            Properties::from_json(&json!({"ConnectionString": "a.db", "URL": "b.db"})).unwrap();
        assert_eq!(properties.text("connectionString", &["url"]), Some("a.db"));
        let properties = Properties::from_json(&json!({"url": "b.db"})).unwrap();
        assert_eq!(properties.text("connectionString", &["url"]), Some("b.db"));
        assert_eq!(properties.text("missing", &[]), None);
    }

    #[test]
    fn scalars_become_text_and_containers_are_rejected() {
        let properties = Properties::from_json(&json!({"n": 5, "b": true, "z": null})).unwrap();
        assert_eq!(properties.text("n", &[]), Some("5"));
        assert_eq!(properties.text("b", &[]), Some("true"));
        assert_eq!(properties.text("z", &[]), Some(""));
        let error = Properties::from_json(&json!({"nested": {"a": 1}})).unwrap_err();
        assert_eq!(
            error.to_string(),
            "value of 'nested' must be a string, number or boolean, found a map"
        );
        let error = Properties::from_json(&json!("text")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "configuration must be a map of names to values, found a string"
        );
        assert_eq!(
            Properties::from_json(&serde_json::Value::Null).unwrap(),
            Properties::default()
        );
    }

    #[test]
    fn keys_differing_only_in_case_are_an_error() {
        let error = Properties::from_json(&json!({"timeout": "1s", "Timeout": "2s"})).unwrap_err();
        assert_eq!(
            error,
            MetadataError::DuplicateKey {
                key: "timeout".into()
            }
        );
    }

    #[test]
    fn durations_accept_go_text_or_seconds() {
        let properties =
            Properties::from_json(&json!({"a": "1m30s", "b": 7, "c": "7", "d": "soon", "e": ""}))
                .unwrap();
        assert_eq!(
            properties.duration("a", &[]).unwrap(),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            properties.duration("b", &[]).unwrap(),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            properties.duration("c", &[]).unwrap(),
            Some(Duration::from_secs(7))
        );
        assert_eq!(properties.duration("e", &[]).unwrap(), None);
        let error = properties.duration("d", &[]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid value for 'd': invalid duration \"soon\""
        );
    }

    #[test]
    fn booleans_accept_truthy_words_and_reject_others() {
        let properties =
            Properties::from_json(&json!({"a": "Yes", "b": "off", "c": true, "d": "maybe"}))
                .unwrap();
        assert_eq!(properties.bool("a", &[]).unwrap(), Some(true));
        assert_eq!(properties.bool("b", &[]).unwrap(), Some(false));
        assert_eq!(properties.bool("c", &[]).unwrap(), Some(true));
        assert!(
            properties
                .bool("d", &[])
                .unwrap_err()
                .to_string()
                .contains("\"maybe\" is not a boolean")
        );
    }
}

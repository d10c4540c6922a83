//! How a state store's keys are prefixed (`keyPrefix` metadata), as upstream lays them out
//! so data written by upstream daprd stays readable: `appid||key` by default, or the
//! store name, `namespace.appid`, nothing, or a fixed text before `||`.

/// The separator between a prefix and the app's key.
pub const SEPARATOR: &str = "||";
/// The metadata name choosing the strategy.
pub const KEY_PREFIX_METADATA: &str = "keyPrefix";

/// A store's prefixing rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyPrefix {
    /// `appid` (the default): `<app-id>||key`.
    AppId,
    /// `name`: `<store-name>||key`.
    StoreName,
    /// `namespace`: `<namespace>.<app-id>||key` (`<app-id>||key` without a namespace).
    Namespace,
    /// `none`: the key as given.
    None,
    /// Any other value: `<value>||key`.
    Custom(String),
}

/// A key or prefix containing the separator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("input key/keyPrefix '{0}' can't contain '||'")]
pub struct IllegalKey(pub String);

impl KeyPrefix {
    /// Reads the strategy from a `keyPrefix` value (compared without case, as upstream
    /// lowercases it; so are custom prefixes).
    pub fn parse(value: Option<&str>) -> Result<Self, IllegalKey> {
        let Some(value) = value.map(str::to_lowercase) else {
            return Ok(Self::AppId);
        };
        check_legal(&value)?;
        Ok(match value.as_str() {
            "" | "appid" => Self::AppId,
            "name" => Self::StoreName,
            "namespace" => Self::Namespace,
            "none" => Self::None,
            _ => Self::Custom(value),
        })
    }

    /// The prefix (including the separator) this rule puts before keys of `store` for
    /// `app_id` in `namespace`; empty when keys are stored as given.
    pub fn prefix(&self, store: &str, app_id: &str, namespace: &str) -> String {
        match self {
            Self::None => String::new(),
            Self::StoreName => format!("{store}{SEPARATOR}"),
            Self::AppId | Self::Namespace if app_id.is_empty() => String::new(),
            Self::AppId => format!("{app_id}{SEPARATOR}"),
            Self::Namespace if namespace.is_empty() => format!("{app_id}{SEPARATOR}"),
            Self::Namespace => format!("{namespace}.{app_id}{SEPARATOR}"),
            Self::Custom(prefix) => format!("{prefix}{SEPARATOR}"),
        }
    }

    /// The stored form of the app's `key`.
    pub fn apply(
        &self,
        key: &str,
        store: &str,
        app_id: &str,
        namespace: &str,
    ) -> Result<String, IllegalKey> {
        check_legal(key)?;
        Ok(format!("{}{key}", self.prefix(store, app_id, namespace)))
    }
}

/// The app's key of a stored key: the part after the first separator (upstream's
/// `GetOriginalStateKey`).
pub fn original_key(stored: &str) -> &str {
    let mut parts = stored.splitn(3, SEPARATOR);
    match (parts.next(), parts.next()) {
        (Some(_), Some(key)) => key,
        _ => stored,
    }
}

fn check_legal(key: &str) -> Result<(), IllegalKey> {
    if key.contains(SEPARATOR) {
        return Err(IllegalKey(key.to_owned()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_strategy_lays_keys_out_like_upstream() {
        let cases = [
            (None, "myapp||k"),
            (Some("appid"), "myapp||k"),
            (Some("name"), "store||k"),
            (Some("namespace"), "prod.myapp||k"),
            (Some("none"), "k"),
            (Some("Shared"), "shared||k"),
        ];
        for (value, expected) in cases {
            let prefix = KeyPrefix::parse(value).unwrap();
            assert_eq!(
                prefix.apply("k", "store", "myapp", "prod").unwrap(),
                expected,
                "{value:?}"
            );
        }
        let namespace = KeyPrefix::parse(Some("namespace")).unwrap();
        assert_eq!(
            namespace.apply("k", "store", "myapp", "").unwrap(),
            "myapp||k"
        );
        assert_eq!(KeyPrefix::AppId.apply("k", "store", "", "").unwrap(), "k");
    }

    #[test]
    fn separators_in_keys_and_prefixes_are_refused() {
        let error = KeyPrefix::AppId.apply("a||b", "s", "app", "").unwrap_err();
        assert_eq!(
            error.to_string(),
            "input key/keyPrefix 'a||b' can't contain '||'"
        );
        assert!(KeyPrefix::parse(Some("x||y")).is_err());
    }

    #[test]
    fn original_keys_are_the_part_after_the_prefix() {
        assert_eq!(original_key("myapp||k"), "k");
        assert_eq!(original_key("k"), "k");
        assert_eq!(original_key("a||b||c"), "b");
    }
}

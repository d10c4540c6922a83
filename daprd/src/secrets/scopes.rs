//! Which secrets the app may read, per secret store: the Configuration's
//! `spec.secrets.scopes`, validated and indexed once at start.
//!
//! The rules follow upstream: a store with no scope allows everything; a non-empty
//! `allowedSecrets` list allows exactly its names; otherwise a name in `deniedSecrets` is
//! denied, and any other name gets `defaultAccess` (`allow` unless it says `deny`, in any
//! case).

use std::collections::{BTreeSet, HashMap};

use dapr_resources::configuration::SecretsSpec;

/// `defaultAccess` value granting access to unlisted secrets.
const ALLOW: &str = "allow";
/// `defaultAccess` value refusing access to unlisted secrets.
const DENY: &str = "deny";

/// Why the secrets configuration is invalid (the sidecar does not start).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopesError {
    /// Two scopes name the same store.
    #[error("{0} storeName is repeated in secrets configuration")]
    RepeatedStore(String),
    /// `defaultAccess` is neither `allow` nor `deny`.
    #[error("defaultAccess {0} can be either allow or deny")]
    InvalidDefaultAccess(String),
}

/// The access rules of one secret store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct StoreScope {
    /// Whether `defaultAccess` is `deny`.
    deny_by_default: bool,
    /// `allowedSecrets`: when not empty, the only names allowed.
    allowed: BTreeSet<String>,
    /// `deniedSecrets`.
    denied: BTreeSet<String>,
}

impl StoreScope {
    fn allows(&self, key: &str) -> bool {
        if !self.allowed.is_empty() {
            return self.allowed.contains(key);
        }
        if self.denied.contains(key) {
            return false;
        }
        !self.deny_by_default
    }
}

/// The secret access rules of every secret store, by store name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretScopes {
    by_store: HashMap<String, StoreScope>,
}

impl SecretScopes {
    /// Validates and indexes `spec` (the Configuration's `spec.secrets`, if any).
    pub fn from_spec(spec: Option<&SecretsSpec>) -> Result<Self, ScopesError> {
        let mut by_store = HashMap::new();
        for scope in spec.map(|spec| spec.scopes.as_slice()).unwrap_or_default() {
            if by_store.contains_key(&scope.store_name) {
                return Err(ScopesError::RepeatedStore(scope.store_name.clone()));
            }
            let access = scope.default_access.as_str();
            if !access.is_empty()
                && !access.eq_ignore_ascii_case(ALLOW)
                && !access.eq_ignore_ascii_case(DENY)
            {
                return Err(ScopesError::InvalidDefaultAccess(access.to_owned()));
            }
            let rules = StoreScope {
                deny_by_default: access.eq_ignore_ascii_case(DENY),
                allowed: scope.allowed_secrets.iter().cloned().collect(),
                denied: scope.denied_secrets.iter().cloned().collect(),
            };
            by_store.insert(scope.store_name.clone(), rules);
        }
        Ok(Self { by_store })
    }

    /// Whether the app may read secret `key` from store `store_name`.
    pub fn is_allowed(&self, store_name: &str, key: &str) -> bool {
        self.by_store
            .get(store_name)
            .is_none_or(|scope| scope.allows(key))
    }
}

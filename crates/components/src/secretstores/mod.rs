//! Secret stores: the contract every `secretstores.*` component implements and the
//! built-in local stores.
//!
//! A secret is a map of names to values. Stores that keep one value per secret return a
//! one-entry map keyed by the secret's own name, as upstream does.

mod catalog;
pub mod local_env;
pub mod local_file;

pub use catalog::{OpenError, SECRET_STORE_TYPES, open};

use std::collections::{BTreeMap, HashMap};

/// A secret: value names to values, ordered so JSON output is stable.
pub type Secret = BTreeMap<String, String>;

/// An optional capability a secret store advertises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Feature {
    /// A secret can hold several named values (`MULTIPLE_KEY_VALUES_PER_SECRET`).
    MultipleKeyValuesPerSecret,
}

impl Feature {
    /// Upstream's name for the feature.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MultipleKeyValuesPerSecret => "MULTIPLE_KEY_VALUES_PER_SECRET",
        }
    }
}

/// A failed secret operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// No secret has this name.
    #[error("secret {0} not found")]
    NotFound(String),
    /// The component's metadata is wrong; the component cannot start.
    #[error("invalid metadata: {0}")]
    InvalidMetadata(String),
    /// The backing source failed or could not be read.
    #[error("{0}")]
    Backend(String),
}

/// A secret store component.
#[async_trait::async_trait]
pub trait SecretStore: Send + Sync {
    /// The optional capabilities this store has.
    fn features(&self) -> &[Feature];

    /// Fetches one secret by name; request metadata is passed through from the caller.
    async fn get_secret(
        &self,
        name: &str,
        metadata: &HashMap<String, String>,
    ) -> Result<Secret, SecretError>;

    /// Fetches every secret the store holds, by name.
    async fn bulk_get_secret(
        &self,
        metadata: &HashMap<String, String>,
    ) -> Result<BTreeMap<String, Secret>, SecretError>;
}

//! Configuration stores: the contract every `configuration.*` component implements
//! (upstream's `configuration.Store`) and the built-in stores. A store answers items by
//! key, each with a value, a version and metadata.

mod catalog;
pub mod redis;

use std::collections::{BTreeMap, HashMap};

pub use catalog::{CONFIGURATION_TYPES, OpenError, open};

/// A failed configuration operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigurationError {
    /// The component's metadata is wrong; the component cannot start.
    #[error("{0}")]
    InvalidMetadata(String),
    /// The store failed or could not be reached.
    #[error("{0}")]
    Backend(String),
}

/// One configuration item.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigurationItem {
    /// The value.
    pub value: String,
    /// The value's version (empty when the store keeps none).
    pub version: String,
    /// Metadata about the item.
    pub metadata: HashMap<String, String>,
}

/// A configuration store component.
#[async_trait::async_trait]
pub trait ConfigurationStore: Send + Sync {
    /// The items of `keys` (every item when `keys` is empty); missing keys are left out.
    async fn get(
        &self,
        keys: &[String],
        metadata: &HashMap<String, String>,
    ) -> Result<BTreeMap<String, ConfigurationItem>, ConfigurationError>;

    /// Releases connections.
    async fn close(&self) -> Result<(), ConfigurationError> {
        Ok(())
    }
}

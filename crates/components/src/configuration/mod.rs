//! Configuration stores: the contract every `configuration.*` component implements
//! (upstream's `configuration.Store`) and the built-in stores. A store answers items by
//! key, each with a value, a version and metadata, and tells subscribers about changes.

mod catalog;
pub mod postgresql;
pub mod redis;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

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

/// What a subscription watches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscribeRequest {
    /// The keys; empty watches every key.
    pub keys: Vec<String>,
    /// Request metadata, passed to the store.
    pub metadata: HashMap<String, String>,
}

/// Items that changed, for one subscription.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdateEvent {
    /// The subscription's id.
    pub id: String,
    /// The changed items by key; a deleted item has an empty value.
    pub items: BTreeMap<String, ConfigurationItem>,
}

/// Receives a subscription's updates, one at a time, in the order the store saw them.
#[async_trait::async_trait]
pub trait UpdateHandler: Send + Sync {
    /// Handles one update.
    async fn update(&self, event: UpdateEvent);
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

    /// Starts watching `request`'s keys; returns the new subscription's id.
    async fn subscribe(
        &self,
        request: SubscribeRequest,
        handler: Arc<dyn UpdateHandler>,
    ) -> Result<String, ConfigurationError>;

    /// Stops subscription `id`; an unknown id is an error.
    async fn unsubscribe(&self, id: &str) -> Result<(), ConfigurationError>;

    /// Releases connections.
    async fn close(&self) -> Result<(), ConfigurationError> {
        Ok(())
    }
}

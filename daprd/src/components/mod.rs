//! The sidecar's components: created from Component resources at start (secret stores
//! first, so other components can read `secretKeyRef`s through them), held in one
//! snapshot that the API edges read without locking, and replaced whole when resources
//! change.
//!
//! [`load`] builds a [`ComponentSet`]; [`Components`] publishes the current one.

mod key_prefix;
mod load;
pub mod reload;
mod secret_refs;
#[cfg(test)]
mod tests;

pub use key_prefix::{IllegalKey, KEY_PREFIX_METADATA, KeyPrefix, SEPARATOR, original_key};
pub use load::{ComponentError, LoadContext, load};

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use tokio::sync::watch;

use dapr_components::pubsub::PubSub;
use dapr_components::secretstores::SecretStore;
use dapr_components::state::StateStore;
use dapr_resources::Component;

use crate::pubsub::TopicScopes;

pub use crate::bindings::BindingHandle;
pub use crate::configuration::ConfigurationStoreHandle;
pub use crate::crypto::CryptoProviderHandle;
pub use crate::lock::LockStoreHandle;

/// A state store and how the sidecar uses it.
pub struct StateStoreHandle {
    /// The component's name (`metadata.name`).
    pub name: String,
    /// Its `spec.type` (`state.redis`).
    pub component_type: String,
    /// Its `spec.version`.
    pub version: String,
    /// The store.
    pub store: Arc<dyn StateStore>,
    /// How keys are prefixed.
    pub key_prefix: KeyPrefix,
    /// Whether `actorStateStore: "true"` marks it as the actor state store.
    pub actor_state_store: bool,
}

impl std::fmt::Debug for StateStoreHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateStoreHandle")
            .field("name", &self.name)
            .field("component_type", &self.component_type)
            .finish_non_exhaustive()
    }
}

/// A secret store and its name.
pub struct SecretStoreHandle {
    /// The component's name.
    pub name: String,
    /// Its `spec.type`.
    pub component_type: String,
    /// The store.
    pub store: Arc<dyn SecretStore>,
}

impl std::fmt::Debug for SecretStoreHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretStoreHandle")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// A pub/sub broker and the rules for using it.
pub struct PubSubHandle {
    /// The component's name.
    pub name: String,
    /// Its `spec.type`.
    pub component_type: String,
    /// The broker.
    pub broker: Arc<dyn PubSub>,
    /// Which topics this app may use.
    pub scopes: TopicScopes,
    /// Whether a metadata value contains `{namespace}`: topics are then prefixed with
    /// the namespace on the broker, as upstream does.
    pub namespace_scoped: bool,
}

impl std::fmt::Debug for PubSubHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PubSubHandle")
            .field("name", &self.name)
            .field("component_type", &self.component_type)
            .finish_non_exhaustive()
    }
}

/// What the metadata API reports about one component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentStatus {
    /// The component's name.
    pub name: String,
    /// Its `spec.type`.
    pub component_type: String,
    /// Its `spec.version`.
    pub version: String,
    /// Upstream's capability names (`ETAG`, `TRANSACTIONAL`, ...).
    pub capabilities: Vec<String>,
    /// Why it failed to start (kept only for `ignoreErrors` components), or `None`.
    pub error: Option<String>,
}

/// One consistent set of started components.
#[derive(Debug, Default)]
pub struct ComponentSet {
    /// State stores by name.
    pub state_stores: BTreeMap<String, Arc<StateStoreHandle>>,
    /// Secret stores by name.
    pub secret_stores: BTreeMap<String, Arc<SecretStoreHandle>>,
    /// Pub/sub brokers by name.
    pub pubsubs: BTreeMap<String, Arc<PubSubHandle>>,
    /// Bindings by name.
    pub bindings: BTreeMap<String, Arc<BindingHandle>>,
    /// Lock stores by name.
    pub locks: BTreeMap<String, Arc<LockStoreHandle>>,
    /// Configuration stores by name.
    pub configurations: BTreeMap<String, Arc<ConfigurationStoreHandle>>,
    /// Crypto components by name.
    pub crypto_providers: BTreeMap<String, Arc<CryptoProviderHandle>>,
    /// HTTP middleware by name.
    pub middlewares: BTreeMap<String, Arc<crate::middleware::MiddlewareHandle>>,
    /// Every component that was given, started or failed, in load order.
    pub statuses: Vec<ComponentStatus>,
    /// The resource each started component was created from, by name.
    pub definitions: BTreeMap<String, Component>,
}

impl ComponentSet {
    /// The state store called `name`.
    pub fn state_store(&self, name: &str) -> Option<&Arc<StateStoreHandle>> {
        self.state_stores.get(name)
    }

    /// The secret store called `name`.
    pub fn secret_store(&self, name: &str) -> Option<&Arc<SecretStoreHandle>> {
        self.secret_stores.get(name)
    }

    /// The pub/sub component called `name`.
    pub fn pubsub(&self, name: &str) -> Option<&Arc<PubSubHandle>> {
        self.pubsubs.get(name)
    }

    /// The binding called `name`.
    pub fn binding(&self, name: &str) -> Option<&Arc<BindingHandle>> {
        self.bindings.get(name)
    }

    /// Closes every store (at shutdown, or when a start-up fails half-way).
    pub async fn close(&self) {
        self.close_unless_in(&ComponentSet::default()).await;
    }

    /// Closes the stores of this set that `successor` does not carry on (after a reload).
    pub async fn close_unless_in(&self, successor: &ComponentSet) {
        for handle in self.state_stores.values() {
            let kept = successor
                .state_stores
                .values()
                .any(|next| Arc::ptr_eq(next, handle));
            if kept {
                continue;
            }
            tracing::info!("closing state store {}", handle.name);
            if let Err(error) = handle.store.close().await {
                tracing::warn!("failed to close state store {}: {error}", handle.name);
            }
        }
        for handle in self.pubsubs.values() {
            if successor
                .pubsubs
                .values()
                .any(|next| Arc::ptr_eq(next, handle))
            {
                continue;
            }
            tracing::info!("closing pubsub {}", handle.name);
            if let Err(error) = handle.broker.close().await {
                tracing::warn!("failed to close pubsub {}: {error}", handle.name);
            }
        }
        for handle in self.bindings.values() {
            if !successor
                .bindings
                .values()
                .any(|next| Arc::ptr_eq(next, handle))
            {
                handle.close().await;
            }
        }
        for handle in self.configurations.values() {
            if successor
                .configurations
                .values()
                .any(|next| Arc::ptr_eq(next, handle))
            {
                continue;
            }
            tracing::info!("closing configuration store {}", handle.name);
            if let Err(error) = handle.store.close().await {
                tracing::warn!(
                    "failed to close configuration store {}: {error}",
                    handle.name
                );
            }
        }
        for handle in self.locks.values() {
            if successor
                .locks
                .values()
                .any(|next| Arc::ptr_eq(next, handle))
            {
                continue;
            }
            tracing::info!("closing lock store {}", handle.name);
            if let Err(error) = handle.store.close().await {
                tracing::warn!("failed to close lock store {}: {error}", handle.name);
            }
        }
        for handle in self.crypto_providers.values() {
            if successor
                .crypto_providers
                .values()
                .any(|next| Arc::ptr_eq(next, handle))
            {
                continue;
            }
            tracing::info!("closing crypto provider {}", handle.name);
            if let Err(error) = handle.provider.close().await {
                tracing::warn!("failed to close crypto provider {}: {error}", handle.name);
            }
        }
    }
}

/// The current [`ComponentSet`]; readers take a snapshot, reloads swap it.
#[derive(Debug, Default)]
pub struct Components {
    current: RwLock<Arc<ComponentSet>>,
    /// How many times the set was replaced; watched by those following reloads.
    replacements: watch::Sender<u64>,
}

impl Components {
    /// Publishes `set` as the first set.
    pub fn new(set: ComponentSet) -> Self {
        Self {
            current: RwLock::new(Arc::new(set)),
            replacements: watch::Sender::default(),
        }
    }

    /// A receiver that sees every replacement of the set.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.replacements.subscribe()
    }

    /// The current set.
    pub fn snapshot(&self) -> Arc<ComponentSet> {
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Publishes `set`, returning the one it replaces.
    pub fn replace(&self, set: ComponentSet) -> Arc<ComponentSet> {
        let replaced = {
            let mut current = self
                .current
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            std::mem::replace(&mut *current, Arc::new(set))
        };
        self.replacements.send_modify(|count| *count += 1);
        replaced
    }
}

//! Starting components from resources: secret stores first (in file order), then the
//! rest; each within its `initTimeout` (default 5 s); a failure stops the sidecar unless
//! the component sets `ignoreErrors`, in which case it is logged, counted and reported
//! by the metadata API.
//!
//! As upstream, metadata values have their placeholders replaced before a component
//! starts: each `{uuid}` by a new UUID, `{podName}` by the pod's name (an error when it
//! is unknown), `{namespace}` by `<namespace>.<app-id>` and `{appID}` by the app id.

use std::sync::Arc;
use std::time::Duration;

use std::collections::BTreeMap;

use dapr_components::metadata::Properties;
use dapr_components::{bindings, pubsub, secretstores, state};
use dapr_resources::Component;
use dapr_resources::loader::Loaded;

use super::secret_refs;
use super::{
    BindingHandle, ComponentSet, ComponentStatus, KEY_PREFIX_METADATA, KeyPrefix, PubSubHandle,
    SecretStoreHandle, StateStoreHandle,
};
use crate::config::Mode;
use crate::configuration::ConfigurationStoreHandle;
use crate::crypto::CryptoProviderHandle;
use crate::lock::{self, LockKeyPrefix, LockStoreHandle};
use crate::middleware::MiddlewareHandle;
use crate::observability::metrics::SidecarMetrics;
use crate::pubsub::TopicScopes;

/// How long a component may take to start when it sets no `initTimeout`.
const DEFAULT_INIT_TIMEOUT: Duration = Duration::from_secs(5);

/// Building blocks this build does not provide yet: their components are skipped with a
/// warning instead of stopping the sidecar.
const NOT_YET_BUILT: &[&str] = &["workflow", "conversation"];

/// What the loader needs to know about the sidecar.
#[derive(Debug, Clone, Copy)]
pub struct LoadContext<'a> {
    /// Standalone or Kubernetes (decides the default secret store).
    pub mode: Mode,
    /// Where component start-ups and failures are counted.
    pub metrics: &'a SidecarMetrics,
    /// The app id (`{appID}` in metadata, the default `consumerID`, topic scopes).
    pub app_id: &'a str,
    /// The namespace (`{namespace}` in metadata).
    pub namespace: &'a str,
    /// The pod's name (`{podName}` in metadata), empty when unknown.
    pub pod_name: &'a str,
}

/// A component that failed to start and does not ignore errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "process component {name} error: [INIT_COMPONENT_FAILURE]: initialization error occurred for {name} ({component_type}/{version}): {reason}"
)]
pub struct ComponentError {
    /// The component's name.
    pub name: String,
    /// Its `spec.type`.
    pub component_type: String,
    /// Its `spec.version`.
    pub version: String,
    /// Why it failed.
    pub reason: String,
}

/// A started component, of one kind or another.
enum Started {
    State(Arc<StateStoreHandle>),
    Secret(Arc<SecretStoreHandle>),
    PubSub(Arc<PubSubHandle>),
    Binding(Arc<BindingHandle>),
    Lock(Arc<LockStoreHandle>),
    Configuration(Arc<ConfigurationStoreHandle>),
    Crypto(Arc<CryptoProviderHandle>),
    Middleware(Arc<MiddlewareHandle>),
    Skipped,
}

/// Starts `components` (already filtered to this app's scope) into a new set. Components
/// whose resource is unchanged from `previous` (a reload) are carried over as they are,
/// with their data and connections; only new and changed ones start.
pub async fn load(
    components: &[Loaded<Component>],
    context: LoadContext<'_>,
    previous: Option<&ComponentSet>,
) -> Result<ComponentSet, ComponentError> {
    let mut set = ComponentSet::default();
    let (secret_stores, others): (Vec<_>, Vec<_>) = components
        .iter()
        .map(|loaded| &loaded.resource)
        .partition(|component| component.spec.building_block() == "secretstores");
    for component in secret_stores.into_iter().chain(others) {
        let name = component.metadata.name.clone().unwrap_or_default();
        if let Some(previous) = previous
            && carry_over(previous, &mut set, &name, component)
        {
            continue;
        }
        let spec = &component.spec;
        let timeout = dapr_kit::duration::parse(&spec.init_timeout)
            .ok()
            .filter(|timeout| !timeout.is_zero())
            .unwrap_or(DEFAULT_INIT_TIMEOUT);
        let started = tokio::time::timeout(timeout, start(component, &name, &set, context))
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "init timeout for component {name} exceeded after {}",
                    dapr_kit::duration::format(timeout)
                ))
            });
        let mut status = ComponentStatus {
            name: name.clone(),
            component_type: spec.type_.clone(),
            version: spec.version.clone(),
            capabilities: Vec::new(),
            error: None,
        };
        match started {
            Ok(Started::State(handle)) => {
                status.capabilities = handle
                    .store
                    .features()
                    .iter()
                    .map(|feature| feature.as_str().to_owned())
                    .chain(handle.actor_state_store.then(|| "ACTOR".to_owned()))
                    .collect();
                set.state_stores.insert(name.clone(), handle);
                set.definitions.insert(name.clone(), component.clone());
            }
            Ok(Started::Secret(handle)) => {
                status.capabilities = handle
                    .store
                    .features()
                    .iter()
                    .map(|feature| feature.as_str().to_owned())
                    .collect();
                set.secret_stores.insert(name.clone(), handle);
                set.definitions.insert(name.clone(), component.clone());
            }
            Ok(Started::PubSub(handle)) => {
                status.capabilities = handle
                    .broker
                    .features()
                    .iter()
                    .map(|feature| feature.as_str().to_owned())
                    .collect();
                set.pubsubs.insert(name.clone(), handle);
                set.definitions.insert(name.clone(), component.clone());
            }
            Ok(Started::Binding(handle)) => {
                status.capabilities = handle.capabilities();
                set.bindings.insert(name.clone(), handle);
                set.definitions.insert(name.clone(), component.clone());
            }
            Ok(Started::Lock(handle)) => {
                set.locks.insert(name.clone(), handle);
                set.definitions.insert(name.clone(), component.clone());
            }
            Ok(Started::Configuration(handle)) => {
                set.configurations.insert(name.clone(), handle);
                set.definitions.insert(name.clone(), component.clone());
            }
            Ok(Started::Crypto(handle)) => {
                set.crypto_providers.insert(name.clone(), handle);
                set.definitions.insert(name.clone(), component.clone());
            }
            Ok(Started::Middleware(handle)) => {
                set.middlewares.insert(name.clone(), handle);
                set.definitions.insert(name.clone(), component.clone());
            }
            Ok(Started::Skipped) => continue,
            Err(reason) => {
                context
                    .metrics
                    .record_component_init_failed(&spec.type_, "init", &name);
                let error = ComponentError {
                    name: name.clone(),
                    component_type: spec.type_.clone(),
                    version: spec.version.clone(),
                    reason,
                };
                if !spec.ignore_errors {
                    set.close().await;
                    return Err(error);
                }
                tracing::error!("ignoring error processing component: {error}");
                status.error = Some(error.to_string());
                set.statuses.push(status);
                continue;
            }
        }
        context.metrics.record_component_loaded();
        tracing::info!("Component loaded: {name} ({}/{})", spec.type_, spec.version);
        set.statuses.push(status);
    }
    Ok(set)
}

/// Moves `name` from `previous` into `set` when it was started from exactly `component`;
/// returns whether it did.
fn carry_over(
    previous: &ComponentSet,
    set: &mut ComponentSet,
    name: &str,
    component: &Component,
) -> bool {
    if previous.definitions.get(name) != Some(component) {
        return false;
    }
    let Some(status) = previous.statuses.iter().find(|status| status.name == name) else {
        return false;
    };
    if let Some(handle) = previous.state_stores.get(name) {
        set.state_stores.insert(name.to_owned(), Arc::clone(handle));
    } else if let Some(handle) = previous.secret_stores.get(name) {
        set.secret_stores
            .insert(name.to_owned(), Arc::clone(handle));
    } else if let Some(handle) = previous.pubsubs.get(name) {
        set.pubsubs.insert(name.to_owned(), Arc::clone(handle));
    } else if let Some(handle) = previous.bindings.get(name) {
        set.bindings.insert(name.to_owned(), Arc::clone(handle));
    } else if let Some(handle) = previous.configurations.get(name) {
        set.configurations
            .insert(name.to_owned(), Arc::clone(handle));
    } else if let Some(handle) = previous.locks.get(name) {
        set.locks.insert(name.to_owned(), Arc::clone(handle));
    } else if let Some(handle) = previous.crypto_providers.get(name) {
        set.crypto_providers
            .insert(name.to_owned(), Arc::clone(handle));
    } else if let Some(handle) = previous.middlewares.get(name) {
        set.middlewares.insert(name.to_owned(), Arc::clone(handle));
    } else {
        return false;
    }
    set.definitions.insert(name.to_owned(), component.clone());
    set.statuses.push(status.clone());
    true
}

/// Starts one component.
async fn start(
    component: &Component,
    name: &str,
    set: &ComponentSet,
    context: LoadContext<'_>,
) -> Result<Started, String> {
    let spec = &component.spec;
    let block = spec.building_block();
    if NOT_YET_BUILT.contains(&block) {
        tracing::warn!(
            "component {name} ({}/{}) is skipped: the {block} building block is not available in this build yet",
            spec.type_,
            spec.version
        );
        return Ok(Started::Skipped);
    }
    let mut settings = secret_refs::resolve(component, &set.secret_stores, context.mode).await?;
    let namespace_scoped = settings.values().any(|value| value.contains("{namespace}"));
    for (name, value) in &mut settings {
        *value = expand_placeholders(name, value, context)?;
    }
    if block == "pubsub" {
        let consumer_id = settings
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(pubsub::CONSUMER_ID_METADATA_KEY))
            .map(|(_, value)| value.trim().to_owned())
            .filter(|value| !value.is_empty())
            .unwrap_or_else(|| context.app_id.to_owned());
        settings.retain(|key, _| !key.eq_ignore_ascii_case(pubsub::CONSUMER_ID_METADATA_KEY));
        settings.insert(pubsub::CONSUMER_ID_METADATA_KEY.to_owned(), consumer_id);
    }
    let properties = properties(&settings)?;
    match block {
        "state" => {
            let key_prefix = KeyPrefix::parse(properties.text(KEY_PREFIX_METADATA, &[]))
                .map_err(|error| error.to_string())?;
            let actor_state_store = properties
                .bool(state::ACTOR_STATE_STORE_METADATA_KEY, &[])
                .map_err(|error| error.to_string())?
                .unwrap_or(false);
            let store = state::open(&spec.type_, &spec.version, &properties)
                .await
                .map_err(|error| error.to_string())?;
            Ok(Started::State(Arc::new(StateStoreHandle {
                name: name.to_owned(),
                component_type: spec.type_.clone(),
                version: spec.version.clone(),
                store,
                key_prefix,
                actor_state_store,
            })))
        }
        "secretstores" => {
            let store = secretstores::open(&spec.type_, &spec.version, &properties)
                .map_err(|error| error.to_string())?;
            Ok(Started::Secret(Arc::new(SecretStoreHandle {
                name: name.to_owned(),
                component_type: spec.type_.clone(),
                store,
            })))
        }
        "pubsub" => {
            let broker = pubsub::open(&spec.type_, &spec.version, &properties)
                .await
                .map_err(|error| error.to_string())?;
            Ok(Started::PubSub(Arc::new(PubSubHandle {
                name: name.to_owned(),
                component_type: spec.type_.clone(),
                broker,
                scopes: TopicScopes::from_settings(&settings, context.app_id),
                namespace_scoped,
            })))
        }
        "bindings" => {
            let binding = bindings::open(&spec.type_, &spec.version, &properties)
                .await
                .map_err(|error| error.to_string())?;
            Ok(Started::Binding(Arc::new(BindingHandle::new(
                name,
                &spec.type_,
                binding,
                &settings,
            ))))
        }
        "configuration" => {
            let store =
                dapr_components::configuration::open(&spec.type_, &spec.version, &properties)
                    .await
                    .map_err(|error| error.to_string())?;
            Ok(Started::Configuration(Arc::new(ConfigurationStoreHandle {
                name: name.to_owned(),
                component_type: spec.type_.clone(),
                store,
            })))
        }
        "lock" => {
            let key_prefix = LockKeyPrefix::parse(properties.text(lock::KEY_PREFIX_METADATA, &[]))?;
            let store = dapr_components::lock::open(&spec.type_, &spec.version, &properties)
                .await
                .map_err(|error| error.to_string())?;
            Ok(Started::Lock(Arc::new(LockStoreHandle {
                name: name.to_owned(),
                component_type: spec.type_.clone(),
                store,
                key_prefix,
            })))
        }
        "crypto" => {
            let provider = dapr_components::crypto::open(&spec.type_, &spec.version, &properties)
                .await
                .map_err(|error| error.to_string())?;
            Ok(Started::Crypto(Arc::new(CryptoProviderHandle {
                name: name.to_owned(),
                component_type: spec.type_.clone(),
                provider,
            })))
        }
        "middleware" => {
            let middleware =
                dapr_components::middleware::open(&spec.type_, &spec.version, &properties)
                    .await
                    .map_err(|error| error.to_string())?;
            Ok(Started::Middleware(Arc::new(MiddlewareHandle {
                name: name.to_owned(),
                component_type: spec.type_.clone(),
                version: spec.version.clone(),
                middleware,
            })))
        }
        _ => Err(format!("incorrect type {}", spec.type_)),
    }
}

/// `value` of setting `name` with upstream's placeholders replaced.
fn expand_placeholders(
    name: &str,
    value: &str,
    context: LoadContext<'_>,
) -> Result<String, String> {
    let mut value = value.to_owned();
    while value.contains("{uuid}") {
        value = value.replacen("{uuid}", &uuid::Uuid::new_v4().to_string(), 1);
    }
    if value.contains("{podName}") {
        if context.pod_name.is_empty() {
            return Err(format!(
                "failed to parse metadata: property {name} refers to {{podName}} but podName is not set"
            ));
        }
        value = value.replace("{podName}", context.pod_name);
    }
    Ok(value
        .replace(
            "{namespace}",
            &format!("{}.{}", context.namespace, context.app_id),
        )
        .replace("{appID}", context.app_id))
}

/// The settings as the component reads them.
fn properties(settings: &BTreeMap<String, String>) -> Result<Properties, String> {
    let object = settings
        .iter()
        .map(|(name, value)| (name.clone(), serde_json::Value::String(value.clone())))
        .collect();
    Properties::from_json(&serde_json::Value::Object(object)).map_err(|error| error.to_string())
}

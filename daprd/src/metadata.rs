//! The metadata API's core: what the sidecar reports about itself (`GET /v1.0/metadata`,
//! gRPC `GetMetadata`) and the extended attributes apps set (`PUT /v1.0/metadata/{key}`,
//! gRPC `SetMetadata`). Both edges render the same [`runtime::GetMetadataResponse`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use dapr_proto::runtime;
use dapr_resources::DaprResource;
use dapr_resources::loader::LoadedResources;

use crate::components::Components;
use crate::config::{AppProtocol, RuntimeConfig};
use crate::pubsub::subscriptions::{self, Subscription};

/// Extended-metadata key holding the runtime version, as upstream sets it.
const RUNTIME_VERSION_KEY: &str = "daprRuntimeVersion";

/// Extended-metadata key prefix naming a component that failed to start (with
/// `ignoreErrors`): `componentError.<name>` holds the reason.
pub const COMPONENT_ERROR_KEY_PREFIX: &str = "componentError.";

/// The runtime version reported to apps.
pub const RUNTIME_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Static facts about the sidecar plus the mutable extended attributes.
#[derive(Debug)]
pub struct MetadataStore {
    app_id: String,
    app_connection: runtime::AppConnectionProperties,
    components: Arc<Components>,
    http_endpoints: Vec<runtime::MetadataHttpEndpoint>,
    resiliencies: Vec<runtime::MetadataResiliency>,
    subscriptions: RwLock<Vec<runtime::PubsubSubscription>>,
    /// Open streaming subscriptions by connection id, listed after the others.
    streams: RwLock<Vec<(u64, runtime::PubsubSubscription)>>,
    next_stream: AtomicU64,
    enabled_features: Vec<String>,
    extended: RwLock<BTreeMap<String, String>>,
}

impl MetadataStore {
    /// Describes the sidecar started with `config` and `resources`.
    pub fn new(
        config: &RuntimeConfig,
        resources: &LoadedResources,
        enabled_features: Vec<String>,
        components: Arc<Components>,
    ) -> Self {
        let app_connection = match &config.app {
            Some(app) => runtime::AppConnectionProperties {
                port: i32::from(app.port),
                protocol: app.protocol.as_str().to_string(),
                channel_address: app.address.clone(),
                max_concurrency: i32::try_from(config.app_max_concurrency).unwrap_or(i32::MAX),
                health: config.app_health.as_ref().map(|health| {
                    runtime::AppConnectionHealthProperties {
                        health_check_path: if matches!(
                            app.protocol,
                            AppProtocol::Grpc | AppProtocol::Grpcs
                        ) {
                            String::new()
                        } else {
                            health.path.clone()
                        },
                        health_probe_interval: dapr_kit::duration::format(health.interval),
                        health_probe_timeout: dapr_kit::duration::format(health.timeout),
                        health_threshold: i32::try_from(health.threshold).unwrap_or(i32::MAX),
                    }
                }),
            },
            None => runtime::AppConnectionProperties {
                channel_address: config.app_channel_address.clone(),
                ..Default::default()
            },
        };
        let http_endpoints = resources
            .http_endpoints
            .iter()
            .map(|loaded| runtime::MetadataHttpEndpoint {
                name: loaded.resource.name().to_string(),
            })
            .collect();
        let resiliencies = resources
            .resiliencies
            .iter()
            .map(|loaded| runtime::MetadataResiliency {
                name: loaded.resource.name().to_string(),
            })
            .collect();
        let declarative = subscriptions::declarative(
            resources
                .subscriptions
                .iter()
                .map(|loaded| &loaded.resource),
            &config.app_id,
        );
        let subscriptions = subscriptions::merge(&declarative, &[])
            .iter()
            .map(Subscription::to_metadata)
            .collect();
        Self {
            app_id: config.app_id.clone(),
            app_connection,
            components,
            http_endpoints,
            resiliencies,
            subscriptions: RwLock::new(subscriptions),
            streams: RwLock::new(Vec::new()),
            next_stream: AtomicU64::new(1),
            enabled_features,
            extended: RwLock::new(BTreeMap::new()),
        }
    }

    /// Replaces the reported subscriptions (declarative and programmatic, merged) once
    /// the app's own are known.
    pub fn set_subscriptions(&self, subscriptions: &[Subscription]) {
        let mut reported = self
            .subscriptions
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *reported = subscriptions
            .iter()
            .map(Subscription::to_metadata)
            .collect();
    }

    /// Lists an opened streaming subscription; returns its connection id.
    pub fn add_stream_subscription(&self, subscription: &Subscription) -> u64 {
        let id = self.next_stream.fetch_add(1, Ordering::Relaxed);
        self.streams
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push((id, subscription.to_metadata()));
        id
    }

    /// Removes the streaming subscription of connection `id` from the list.
    pub fn remove_stream_subscription(&self, id: u64) {
        self.streams
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .retain(|(stream, _)| *stream != id);
    }

    /// Sets an extended attribute; an empty key is ignored, as upstream does.
    pub fn set(&self, key: &str, value: String) {
        if key.is_empty() {
            return;
        }
        let mut extended = self
            .extended
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        extended.insert(key.to_string(), value);
    }

    /// The full metadata response.
    pub fn get(&self) -> runtime::GetMetadataResponse {
        let mut extended: std::collections::HashMap<String, String> = self
            .extended
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
            .into_iter()
            .collect();
        extended.insert(RUNTIME_VERSION_KEY.to_string(), RUNTIME_VERSION.to_string());
        let components = self.components.snapshot();
        for failed in components
            .statuses
            .iter()
            .filter(|status| status.error.is_some())
        {
            extended.insert(
                format!("{COMPONENT_ERROR_KEY_PREFIX}{}", failed.name),
                failed.error.clone().unwrap_or_default(),
            );
        }
        let registered_components = components
            .statuses
            .iter()
            .filter(|status| status.error.is_none())
            .map(|status| runtime::RegisteredComponents {
                name: status.name.clone(),
                r#type: status.component_type.clone(),
                version: status.version.clone(),
                capabilities: status.capabilities.clone(),
            })
            .collect();
        #[allow(deprecated)]
        runtime::GetMetadataResponse {
            id: self.app_id.clone(),
            active_actors_count: Vec::new(),
            registered_components,
            extended_metadata: extended,
            subscriptions: self
                .subscriptions
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .iter()
                .cloned()
                .chain(
                    self.streams
                        .read()
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .iter()
                        .map(|(_, subscription)| subscription.clone()),
                )
                .collect(),
            http_endpoints: self.http_endpoints.clone(),
            app_connection_properties: Some(self.app_connection.clone()),
            runtime_version: RUNTIME_VERSION.to_string(),
            enabled_features: self.enabled_features.clone(),
            actor_runtime: Some(runtime::ActorRuntime {
                runtime_status: runtime::actor_runtime::ActorRuntimeStatus::Disabled as i32,
                active_actors: Vec::new(),
                host_ready: false,
                placement: String::new(),
            }),
            resiliencies: self.resiliencies.clone(),
            ..Default::default()
        }
    }
}

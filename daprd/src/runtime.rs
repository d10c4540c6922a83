//! The running sidecar's shared state: what every API edge hands to the core operations.

use dapr_kit::healthz::Health;
use dapr_kit::shutdown::Shutdown;

use std::sync::Arc;

use crate::components::Components;
use crate::config::RuntimeConfig;
use crate::invoke::Invoker;
use crate::metadata::MetadataStore;
use crate::observability::api_log::HttpApiLogSettings;
use crate::observability::metrics::SidecarMetrics;
use crate::observability::trace::Tracing;
use crate::resiliency::Resiliency;
use crate::secrets::SecretScopes;

/// Everything the API edges share, behind one `Arc`.
pub struct Runtime {
    /// The resolved start-up configuration.
    pub config: RuntimeConfig,
    /// Readiness of the sidecar's parts (`/v1.0/healthz`).
    pub health: Health,
    /// Readiness to serve calls from the app (`/v1.0/healthz/outbound`).
    pub outbound_health: Health,
    /// The metadata API's store.
    pub metadata: MetadataStore,
    /// Starts the sidecar's graceful shutdown (the shutdown API uses it).
    pub shutdown: Shutdown,
    /// Service invocation, shared by every edge.
    pub invoker: Arc<Invoker>,
    /// The started components (state stores, secret stores, ...).
    pub components: Arc<Components>,
    /// The compiled resiliency policies.
    pub resiliency: Arc<Resiliency>,
    /// The `httpPipeline` requests into the HTTP API pass through.
    pub http_pipeline: Option<Arc<crate::middleware::Pipeline>>,
    /// Which public APIs the app may call (`spec.api`).
    pub api_access: Arc<crate::api::api_access::ApiAccess>,
    /// Access control of calls from other sidecars, when the configuration sets it.
    pub access_control: Option<Arc<crate::acl::AccessControl>>,
    /// The running gRPC configuration subscription streams.
    pub configuration_streams: crate::configuration::subscribe::StreamSubscriptions,
    /// Which secrets the app may read from each secret store.
    pub secret_scopes: SecretScopes,
    /// Upstream's metric families.
    pub metrics: SidecarMetrics,
    /// Span creation and export.
    pub tracing: Tracing,
    /// API logging settings, when API logging is on.
    pub api_logging: Option<HttpApiLogSettings>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("app_id", &self.config.app_id)
            .finish_non_exhaustive()
    }
}

/// Metadata key and header asking the shutdown API to exit at once.
pub const FORCE_SHUTDOWN_KEY: &str = "dapr-force-shutdown";

impl Runtime {
    /// Core of the shutdown API (HTTP `POST /v1.0/shutdown`, gRPC `Shutdown`): starts a
    /// graceful shutdown, or, when the caller's headers (or gRPC metadata) carry
    /// `dapr-force-shutdown: true`, exits the process with code 1 right after the reply
    /// has had a moment to leave, as upstream does.
    pub fn request_shutdown(&self, headers: &http::HeaderMap) {
        let force = headers
            .get(FORCE_SHUTDOWN_KEY)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.eq_ignore_ascii_case("true"));
        if force {
            tracing::warn!(
                "Force shutdown requested, exiting immediately without graceful shutdown"
            );
            tokio::spawn(async {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                std::process::exit(1);
            });
        } else {
            tracing::info!("Shutdown requested via API");
            self.shutdown.trigger();
        }
    }
}

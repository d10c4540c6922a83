//! Picks and starts the name resolver: Configuration `spec.nameResolution` when given,
//! else mDNS in standalone mode and Kubernetes DNS in Kubernetes mode, as upstream does.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use dapr_components::nameresolution::{self, Instance, NameResolver, ResolveError};
use dapr_resources::Configuration;

use crate::config::{Mode, RuntimeConfig};

/// Environment variable naming the address other sidecars reach this one at.
pub const HOST_IP_ENV: &str = "DAPR_HOST_IP";

/// The address this sidecar announces: `DAPR_HOST_IP`, else the first non-loopback IPv4
/// address of the host (without sending any traffic), else loopback.
pub fn host_address() -> String {
    if let Some(ip) = std::env::var(HOST_IP_ENV).ok().filter(|ip| !ip.is_empty()) {
        return ip;
    }
    if_addrs::get_if_addrs()
        .ok()
        .into_iter()
        .flatten()
        .map(|interface| interface.ip())
        .find(|ip| matches!(ip, IpAddr::V4(v4) if !v4.is_loopback() && !v4.is_link_local()))
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
        .to_string()
}

/// Builds the resolver for this sidecar, registering it where the resolver registers.
pub async fn start(
    config: &RuntimeConfig,
    configuration: Option<&Configuration>,
) -> Result<Arc<dyn NameResolver>, ResolveError> {
    let spec = configuration.and_then(|configuration| configuration.spec.name_resolution.as_ref());
    let default = match config.mode {
        Mode::Standalone => nameresolution::DEFAULT_STANDALONE_COMPONENT,
        Mode::Kubernetes => nameresolution::DEFAULT_KUBERNETES_COMPONENT,
    };
    let (component, version, settings) = match spec {
        Some(spec) if !spec.component.is_empty() => (
            spec.component.as_str(),
            spec.version.as_str(),
            spec.configuration
                .as_ref()
                .map_or(serde_json::Value::Null, |value| value.0.clone()),
        ),
        _ => (default, "v1", serde_json::Value::Null),
    };
    let instance = Instance {
        app_id: config.app_id.clone(),
        namespace: config.namespace.clone(),
        host_address: host_address(),
        internal_grpc_port: config.internal_grpc_port,
        dapr_http_port: Some(config.http_port),
        app_port: config.app.as_ref().map(|app| app.port),
    };
    let resolver = nameresolution::build(component, version, &settings, instance).await?;
    tracing::info!("Initialized name resolution to {component}");
    Ok(Arc::from(resolver))
}

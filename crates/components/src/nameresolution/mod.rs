//! Name resolution: how a sidecar finds the internal gRPC address (`host:port`) of another
//! app's sidecar for service invocation, and how it announces its own.
//!
//! The resolver is chosen by the Configuration's `spec.nameResolution` (`component`,
//! `version`, `configuration`); when it names none, upstream daprd uses
//! [`DEFAULT_STANDALONE_COMPONENT`] or [`DEFAULT_KUBERNETES_COMPONENT`]. [`build`] creates
//! it and registers this sidecar's [`Instance`] where the resolver keeps registrations.

mod error;
pub mod kubernetes;
pub mod mdns;
pub mod sqlite;

pub use error::ResolveError;

/// The resolver upstream daprd uses in standalone mode when the Configuration names none.
pub const DEFAULT_STANDALONE_COMPONENT: &str = "mdns";
/// The resolver upstream daprd uses in Kubernetes mode when the Configuration names none.
pub const DEFAULT_KUBERNETES_COMPONENT: &str = "kubernetes";

/// What a sidecar announces about itself (upstream's instance metadata given to `Init`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Instance {
    /// This sidecar's app id.
    pub app_id: String,
    /// The app's namespace (empty in standalone mode unless `NAMESPACE` is set).
    pub namespace: String,
    /// The address other sidecars reach this one at: an IP, or `localhost`/`127.0.0.1`
    /// when the internal gRPC server listens on loopback only.
    pub host_address: String,
    /// The internal (sidecar-to-sidecar) gRPC port.
    pub internal_grpc_port: u16,
    /// The Dapr HTTP API port, if served.
    pub dapr_http_port: Option<u16>,
    /// The port the app listens on, if it has one.
    pub app_port: Option<u16>,
}

impl Instance {
    /// `host:port` of this sidecar's internal gRPC server, with IPv6 hosts in brackets.
    pub fn internal_address(&self) -> String {
        join_host_port(&self.host_address, self.internal_grpc_port)
    }

    /// Checks what registering resolvers need, with upstream's messages.
    fn check_registrable(&self, component: &'static str) -> Result<(), ResolveError> {
        let reason = if self.app_id.is_empty() {
            "name is missing"
        } else if self.host_address.is_empty() {
            "address is missing"
        } else if self.internal_grpc_port == 0 {
            "port is missing or invalid"
        } else {
            return Ok(());
        };
        Err(ResolveError::InvalidInstance {
            component,
            reason: reason.to_owned(),
        })
    }
}

/// The lookup key: which app's sidecar to find.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolveRequest {
    /// The target app id.
    pub app_id: String,
    /// The target app's namespace.
    pub namespace: String,
    /// The internal gRPC port to assume when the resolver only finds a host (the DNS-based
    /// `kubernetes` resolver); registering resolvers return the port that was registered.
    pub port: u16,
}

/// A name resolver: finds other sidecars and, if it registers, announces this one.
#[async_trait::async_trait]
pub trait NameResolver: Send + Sync {
    /// The resolver's component name (`sqlite`, `mdns`, `kubernetes`).
    fn component(&self) -> &'static str;

    /// `host:port` of one healthy instance of the app's sidecar; with several instances
    /// the choice rotates (mDNS) or is random (SQLite), as upstream does.
    async fn resolve(&self, request: &ResolveRequest) -> Result<String, ResolveError>;

    /// Stops announcing this instance (deregisters, stops heartbeats). Calling it again
    /// does nothing.
    async fn close(&self) -> Result<(), ResolveError>;
}

/// Builds the resolver named by the Configuration's `spec.nameResolution` and registers
/// `instance` where the resolver registers (`sqlite`, `mdns`). Names are matched without
/// regard to case; the version may be empty, `v0` or `v1`. An unknown component is an
/// error naming it.
pub async fn build(
    component: &str,
    version: &str,
    configuration: &serde_json::Value,
    instance: Instance,
) -> Result<Box<dyn NameResolver>, ResolveError> {
    let unknown = || ResolveError::UnknownComponent {
        component: component.to_owned(),
        version: version.to_owned(),
    };
    if !matches!(version.to_lowercase().as_str(), "" | "v0" | "v1") {
        return Err(unknown());
    }
    match component.to_lowercase().as_str() {
        sqlite::COMPONENT => {
            let config = sqlite::SqliteConfig::from_json(configuration)?;
            Ok(Box::new(
                sqlite::SqliteResolver::start(config, instance).await?,
            ))
        }
        mdns::COMPONENT => {
            let config = mdns::MdnsConfig::from_json(configuration)?;
            Ok(Box::new(mdns::MdnsResolver::start(config, instance).await?))
        }
        kubernetes::COMPONENT => {
            let config = kubernetes::KubernetesConfig::from_json(configuration)?;
            Ok(Box::new(kubernetes::KubernetesResolver::new(config)))
        }
        _ => Err(unknown()),
    }
}

/// `host:port`, bracketing IPv6 literals the way Go's `net.JoinHostPort` does.
fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn unknown_components_and_versions_are_named_in_the_error() {
        let error = build("consul", "v1", &json!(null), Instance::default())
            .await
            .err()
            .unwrap();
        assert_eq!(error.to_string(), "couldn't find name resolver consul/v1");
        let error = build("kubernetes", "v2", &json!(null), Instance::default())
            .await
            .err()
            .unwrap();
        assert_eq!(
            error.to_string(),
            "couldn't find name resolver kubernetes/v2"
        );
    }

    #[tokio::test]
    async fn component_names_ignore_case_and_kubernetes_needs_no_instance() {
        let resolver = build("Kubernetes", "", &json!(null), Instance::default())
            .await
            .unwrap();
        assert_eq!(resolver.component(), "kubernetes");
        resolver.close().await.unwrap();
    }

    #[tokio::test]
    async fn registering_resolvers_reject_an_incomplete_instance_with_upstream_texts() {
        let complete = Instance {
            app_id: "app".into(),
            host_address: "127.0.0.1".into(),
            internal_grpc_port: 50001,
            ..Instance::default()
        };
        let cases = [
            (
                Instance {
                    app_id: String::new(),
                    ..complete.clone()
                },
                "name is missing",
            ),
            (
                Instance {
                    host_address: String::new(),
                    ..complete.clone()
                },
                "address is missing",
            ),
            (
                Instance {
                    internal_grpc_port: 0,
                    ..complete.clone()
                },
                "port is missing or invalid",
            ),
        ];
        for (instance, reason) in cases {
            let error = build(
                "sqlite",
                "v1",
                &json!({"connectionString": ":memory:"}),
                instance,
            )
            .await
            .err()
            .unwrap();
            assert_eq!(error.to_string(), format!("name resolver sqlite: {reason}"));
        }
    }

    #[test]
    fn internal_address_brackets_ipv6() {
        let mut instance = Instance {
            host_address: "10.0.0.7".into(),
            internal_grpc_port: 50002,
            ..Instance::default()
        };
        assert_eq!(instance.internal_address(), "10.0.0.7:50002");
        instance.host_address = "fd00::2".into();
        assert_eq!(instance.internal_address(), "[fd00::2]:50002");
    }
}

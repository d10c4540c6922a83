//! The `kubernetes` resolver: the operator gives every Dapr app a `<app-id>-dapr` Service,
//! so the address is a DNS name, `<app-id>-dapr.<namespace>.svc.<clusterDomain>:<port>`,
//! and cluster DNS does the lookup. Nothing is registered.
//!
//! Settings (upstream's): `clusterDomain` (default `cluster.local`) and `template`, which
//! replaces the whole address. Templates use Go template syntax limited to the request
//! fields `{{.ID}}`, `{{.Namespace}}` and `{{.Port}}`; anything else is rejected when the
//! resolver is built.
//!
//! An empty namespace gives `<app-id>-dapr:<port>`, which the pod's DNS search path
//! resolves in its own namespace (upstream would produce a name with an empty label).

use super::{NameResolver, ResolveError, ResolveRequest};
use crate::metadata::Properties;

/// The component name in `spec.nameResolution.component`.
pub const COMPONENT: &str = "kubernetes";
/// Upstream's default cluster domain.
pub const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";

/// The `kubernetes` resolver's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubernetesConfig {
    /// `clusterDomain`: the cluster's DNS suffix.
    pub cluster_domain: String,
    /// `template`: a custom address format, parsed.
    pub template: Option<AddressTemplate>,
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        Self {
            cluster_domain: DEFAULT_CLUSTER_DOMAIN.to_owned(),
            template: None,
        }
    }
}

impl KubernetesConfig {
    /// Reads `clusterDomain` and `template` from `spec.nameResolution.configuration`.
    pub fn from_json(configuration: &serde_json::Value) -> Result<Self, ResolveError> {
        let invalid = |reason: String| ResolveError::InvalidConfiguration {
            component: COMPONENT,
            reason,
        };
        let properties =
            Properties::from_json(configuration).map_err(|error| invalid(error.to_string()))?;
        let mut config = Self::default();
        if let Some(domain) = properties
            .text("clusterDomain", &[])
            .filter(|domain| !domain.is_empty())
        {
            config.cluster_domain = domain.trim_matches('.').to_owned();
        }
        if let Some(template) = properties
            .text("template", &[])
            .filter(|template| !template.is_empty())
        {
            config.template = Some(AddressTemplate::parse(template).map_err(invalid)?);
        }
        Ok(config)
    }
}

/// One piece of a parsed address template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Text(String),
    AppId,
    Namespace,
    Port,
}

/// A parsed `template` setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressTemplate {
    segments: Vec<Segment>,
}

impl AddressTemplate {
    /// Parses Go template text using only `{{.ID}}`, `{{.Namespace}}` and `{{.Port}}`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut segments = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                segments.push(Segment::Text(rest[..start].to_owned()));
            }
            let after_open = &rest[start + 2..];
            let Some(end) = after_open.find("}}") else {
                return Err(format!("template {text:?} has an unclosed action"));
            };
            let action = after_open[..end].trim();
            segments.push(match action {
                ".ID" => Segment::AppId,
                ".Namespace" => Segment::Namespace,
                ".Port" => Segment::Port,
                other => {
                    return Err(format!(
                        "template {text:?} uses {{{{{other}}}}}: only {{{{.ID}}}}, {{{{.Namespace}}}} and {{{{.Port}}}} are supported"
                    ));
                }
            });
            rest = &after_open[end + 2..];
        }
        if !rest.is_empty() {
            segments.push(Segment::Text(rest.to_owned()));
        }
        Ok(Self { segments })
    }

    fn render(&self, request: &ResolveRequest) -> String {
        let mut address = String::new();
        for segment in &self.segments {
            match segment {
                Segment::Text(text) => address.push_str(text),
                Segment::AppId => address.push_str(&request.app_id),
                Segment::Namespace => address.push_str(&request.namespace),
                Segment::Port => address.push_str(&request.port.to_string()),
            }
        }
        address
    }
}

/// The `kubernetes` resolver.
#[derive(Debug, Clone, Default)]
pub struct KubernetesResolver {
    config: KubernetesConfig,
}

impl KubernetesResolver {
    /// A resolver with the given settings.
    pub fn new(config: KubernetesConfig) -> Self {
        Self { config }
    }

    /// The address for a request; never fails.
    pub fn address(&self, request: &ResolveRequest) -> String {
        if let Some(template) = &self.config.template {
            return template.render(request);
        }
        if request.namespace.is_empty() {
            format!("{}-dapr:{}", request.app_id, request.port)
        } else {
            format!(
                "{}-dapr.{}.svc.{}:{}",
                request.app_id, request.namespace, self.config.cluster_domain, request.port
            )
        }
    }
}

#[async_trait::async_trait]
impl NameResolver for KubernetesResolver {
    fn component(&self) -> &'static str {
        COMPONENT
    }

    async fn resolve(&self, request: &ResolveRequest) -> Result<String, ResolveError> {
        Ok(self.address(request))
    }

    async fn close(&self) -> Result<(), ResolveError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(namespace: &str) -> ResolveRequest {
        ResolveRequest {
            app_id: "myid".into(),
            namespace: namespace.into(),
            port: 1234,
        }
    }

    fn resolver(configuration: serde_json::Value) -> KubernetesResolver {
        KubernetesResolver::new(KubernetesConfig::from_json(&configuration).unwrap())
    }

    #[test]
    fn default_address_uses_the_dapr_service_and_cluster_local() {
        assert_eq!(
            resolver(json!(null)).address(&request("abc")),
            "myid-dapr.abc.svc.cluster.local:1234"
        );
    }

    #[test]
    fn custom_cluster_domain_replaces_cluster_local() {
        let custom = resolver(json!({"clusterDomain": "mydomain.com"}));
        assert_eq!(
            custom.address(&request("abc")),
            "myid-dapr.abc.svc.mydomain.com:1234"
        );
        let empty = resolver(json!({"clusterDomain": ""}));
        assert_eq!(
            empty.address(&request("abc")),
            "myid-dapr.abc.svc.cluster.local:1234"
        );
    }

    #[test]
    fn empty_namespace_leaves_the_namespace_to_the_dns_search_path() {
        assert_eq!(
            resolver(json!(null)).address(&request("")),
            "myid-dapr:1234"
        );
        let custom = resolver(json!({"clusterDomain": "mydomain.com"}));
        assert_eq!(custom.address(&request("")), "myid-dapr:1234");
    }

    #[test]
    fn template_replaces_the_whole_address() {
        let resolver = resolver(json!({"template": "{{.ID}}-{{ .Namespace }}.internal:{{.Port}}"}));
        assert_eq!(resolver.address(&request("abc")), "myid-abc.internal:1234");
    }

    #[tokio::test]
    async fn resolve_returns_the_address() {
        let resolver = resolver(json!(null));
        assert_eq!(
            resolver.resolve(&request("prod")).await.unwrap(),
            "myid-dapr.prod.svc.cluster.local:1234"
        );
        resolver.close().await.unwrap();
        resolver.close().await.unwrap();
    }

    #[test]
    fn bad_settings_are_clear_errors() {
        let error = KubernetesConfig::from_json(&json!({"template": "{{.Data.region}}:{{.Port}}"}))
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "name resolver kubernetes: invalid configuration: template \"{{.Data.region}}:{{.Port}}\" uses \
             {{.Data.region}}: only {{.ID}}, {{.Namespace}} and {{.Port}} are supported"
        );
        let error = KubernetesConfig::from_json(&json!({"template": "{{.ID"})).unwrap_err();
        assert!(
            error.to_string().ends_with("has an unclosed action"),
            "{error}"
        );
        let error = KubernetesConfig::from_json(&json!({"clusterDomain": ["a"]})).unwrap_err();
        assert_eq!(
            error.to_string(),
            "name resolver kubernetes: invalid configuration: value of 'clusterDomain' must be a string, number or boolean, found a list"
        );
        let error = KubernetesConfig::from_json(&json!("cluster.local")).unwrap_err();
        assert!(error.to_string().contains("must be a map"), "{error}");
    }
}

//! `HTTPEndpoint` (`dapr.io/v1alpha1`): a non-Dapr HTTP service that apps
//! call through service invocation, with headers and client TLS to use.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{NameValuePair, SecretStoreAuth, TlsConfig};
use crate::resource::{DaprResource, dapr_custom_resource};
use crate::serde_support::{is_default, null_as_default, object_meta_schema};

/// An external HTTP service reachable through service invocation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpEndpoint {
    /// API version of the resource; `dapr.io/v1alpha1`.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub api_version: String,
    /// Kind of the resource; `HTTPEndpoint`.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub kind: String,
    /// Standard object metadata; `name` is the app ID callers invoke.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_default"
    )]
    #[schemars(schema_with = "object_meta_schema")]
    pub metadata: ObjectMeta,
    /// Address, headers and TLS of the service.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_default"
    )]
    pub spec: HttpEndpointSpec,
    /// Secret store used to resolve the `secretKeyRef`s of this endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<SecretStoreAuth>,
    /// App IDs allowed to call this endpoint; empty means every app.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub scopes: Vec<String>,
}

dapr_custom_resource!(
    HttpEndpoint,
    HttpEndpointSpec,
    version = "v1alpha1",
    kind = "HTTPEndpoint",
    plural = "httpendpoints",
    extra = [auth, scopes]
);

impl DaprResource for HttpEndpoint {
    fn scopes(&self) -> &[String] {
        &self.scopes
    }
}

/// Address, headers and TLS of an external HTTP service.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpEndpointSpec {
    /// Base URL requests are sent to, e.g. `https://api.example.com`.
    pub base_url: String,
    /// Headers added to every request.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub headers: Vec<NameValuePair>,
    /// TLS settings of the client connection.
    #[serde(rename = "clientTLS", default, skip_serializing_if = "Option::is_none")]
    pub client_tls: Option<TlsConfig>,
}

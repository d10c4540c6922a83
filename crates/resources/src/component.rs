//! `Component` (`dapr.io/v1alpha1`): one instance of a building block
//! implementation (state store, pub/sub, binding, secret store, ...).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{NameValuePair, SecretStoreAuth};
use crate::resource::{DaprResource, dapr_custom_resource};
use crate::serde_support::{is_default, null_as_default, object_meta_schema};

/// A Dapr component: which implementation to run and how to configure it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Component {
    /// API version of the resource; `dapr.io/v1alpha1`.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub api_version: String,
    /// Kind of the resource; `Component`.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub kind: String,
    /// Standard object metadata; `name` identifies the component.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_default"
    )]
    #[schemars(schema_with = "object_meta_schema")]
    pub metadata: ObjectMeta,
    /// What to run and its configuration.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_default"
    )]
    pub spec: ComponentSpec,
    /// Secret store used to resolve the `secretKeyRef`s of this component.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<SecretStoreAuth>,
    /// App IDs allowed to load this component; empty means every app.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub scopes: Vec<String>,
}

dapr_custom_resource!(
    Component,
    ComponentSpec,
    version = "v1alpha1",
    kind = "Component",
    plural = "components",
    extra = [auth, scopes]
);

impl DaprResource for Component {
    fn scopes(&self) -> &[String] {
        &self.scopes
    }
}

/// Implementation and configuration of a component.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComponentSpec {
    /// Implementation, as `<building block>.<implementation>`, e.g. `state.redis`.
    #[serde(rename = "type")]
    pub type_: String,
    /// Version of the implementation, e.g. `v1`.
    pub version: String,
    /// Keep the sidecar running when this component fails to initialise.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_default"
    )]
    pub ignore_errors: bool,
    /// Configuration entries handed to the implementation.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    #[schemars(extend("x-crd-required" = true))]
    pub metadata: Vec<NameValuePair>,
    /// How long initialisation may take, as a Go duration (`5s`, `1m30s`).
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_default"
    )]
    pub init_timeout: String,
}

impl ComponentSpec {
    /// The building block part of `type`: `state` for `state.redis`.
    pub fn building_block(&self) -> &str {
        self.type_
            .split_once('.')
            .map_or(self.type_.as_str(), |(block, _)| block)
    }
}

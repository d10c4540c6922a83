//! `Subscription` `dapr.io/v1alpha1`: one topic delivered to one route.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::BulkSubscribe;
use crate::resource::{DaprResource, dapr_custom_resource};
use crate::serde_support::{is_default, null_as_default, object_meta_schema};

/// A pub/sub subscription delivering every message to one route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    /// API version of the resource; `dapr.io/v1alpha1`.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub api_version: String,
    /// Kind of the resource; `Subscription`.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub kind: String,
    /// Standard object metadata; `name` identifies the subscription.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_default"
    )]
    #[schemars(schema_with = "object_meta_schema")]
    pub metadata: ObjectMeta,
    /// What to subscribe to and where to deliver it.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_default"
    )]
    pub spec: SubscriptionSpec,
    /// App IDs that subscribe; empty means every app.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub scopes: Vec<String>,
}

dapr_custom_resource!(
    Subscription,
    SubscriptionSpec,
    version = "v1alpha1",
    kind = "Subscription",
    plural = "subscriptions",
    extra = [scopes]
);

impl DaprResource for Subscription {
    fn scopes(&self) -> &[String] {
        &self.scopes
    }
}

/// Topic, pub/sub component and delivery route of a subscription.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionSpec {
    /// Topic to subscribe to.
    pub topic: String,
    /// Name of the pub/sub component.
    #[serde(rename = "pubsubname")]
    pub pubsubname: String,
    /// Subscription metadata passed to the pub/sub component.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub metadata: BTreeMap<String, String>,
    /// App path messages are delivered to.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_default"
    )]
    #[schemars(extend("x-crd-required" = true))]
    pub route: String,
    /// Bulk delivery settings.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_default"
    )]
    pub bulk_subscribe: BulkSubscribe,
    /// Topic that receives messages the app failed to process.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_default"
    )]
    pub dead_letter_topic: String,
}

//! `Subscription` `dapr.io/v2alpha1`: one topic routed to app paths by
//! CEL rules, with a default path.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::BulkSubscribe;
use crate::resource::{DaprResource, dapr_custom_resource};
use crate::serde_support::{is_default, null_as_default, object_meta_schema};

/// A pub/sub subscription with rule-based routing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    /// API version of the resource; `dapr.io/v2alpha1`.
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
    /// What to subscribe to and how to route it.
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
    version = "v2alpha1",
    kind = "Subscription",
    plural = "subscriptions",
    extra = [scopes]
);

impl DaprResource for Subscription {
    fn scopes(&self) -> &[String] {
        &self.scopes
    }
}

/// Topic, pub/sub component and routing of a subscription.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionSpec {
    /// Name of the pub/sub component.
    #[serde(rename = "pubsubname")]
    pub pubsubname: String,
    /// Topic to subscribe to.
    pub topic: String,
    /// Subscription metadata passed to the pub/sub component.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub metadata: BTreeMap<String, String>,
    /// Where messages are delivered.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_default"
    )]
    #[schemars(extend("x-crd-required" = true))]
    pub routes: Routes,
    /// Topic that receives messages the app failed to process.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_default"
    )]
    pub dead_letter_topic: String,
    /// Bulk delivery settings.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_default"
    )]
    pub bulk_subscribe: BulkSubscribe,
}

/// Routing of a subscription: rules tried in order, then the default path.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Routes {
    /// Rules, most specific first.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub rules: Vec<Rule>,
    /// Path for messages no rule matches.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_default"
    )]
    pub default: String,
}

/// A routing rule: messages matching the expression go to the path.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    /// CEL expression over the CloudEvent, e.g. `event.type == "order"`;
    /// empty matches every message.
    #[serde(
        rename = "match",
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_default"
    )]
    #[schemars(extend("x-crd-required" = true))]
    pub match_expression: String,
    /// App path for matching messages.
    pub path: String,
}

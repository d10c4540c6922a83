//! `Subscription`: a declarative pub/sub subscription, in its two served
//! versions. `v2alpha1` is the stored version and the one the loader hands
//! out; `v1alpha1` documents are converted to it.

pub mod v1alpha1;
pub mod v2alpha1;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::serde_support::{is_default, null_as_default};

/// Bulk delivery settings of a subscription (same in both versions).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BulkSubscribe {
    /// Deliver messages to the app in batches.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_default"
    )]
    #[schemars(extend("x-crd-required" = true))]
    pub enabled: bool,
    /// Largest batch; 0 uses the pub/sub default.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_default"
    )]
    pub max_messages_count: i32,
    /// Longest wait for a batch to fill, in milliseconds; 0 uses the default.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_default"
    )]
    pub max_await_duration_ms: i32,
}

impl From<v1alpha1::Subscription> for v2alpha1::Subscription {
    /// `route` becomes `routes.default`; everything else carries over.
    fn from(old: v1alpha1::Subscription) -> Self {
        Self {
            api_version: Self::API_VERSION.to_owned(),
            kind: Self::KIND.to_owned(),
            metadata: old.metadata,
            spec: v2alpha1::SubscriptionSpec {
                pubsubname: old.spec.pubsubname,
                topic: old.spec.topic,
                metadata: old.spec.metadata,
                routes: v2alpha1::Routes {
                    rules: Vec::new(),
                    default: old.spec.route,
                },
                dead_letter_topic: old.spec.dead_letter_topic,
                bulk_subscribe: old.spec.bulk_subscribe,
            },
            scopes: old.scopes,
        }
    }
}

impl From<v2alpha1::Subscription> for v1alpha1::Subscription {
    /// `routes.default` becomes `route`; routing rules have no `v1alpha1`
    /// equivalent and are dropped.
    fn from(new: v2alpha1::Subscription) -> Self {
        Self {
            api_version: Self::API_VERSION.to_owned(),
            kind: Self::KIND.to_owned(),
            metadata: new.metadata,
            spec: v1alpha1::SubscriptionSpec {
                topic: new.spec.topic,
                pubsubname: new.spec.pubsubname,
                metadata: new.spec.metadata,
                route: new.spec.routes.default,
                bulk_subscribe: new.spec.bulk_subscribe,
                dead_letter_topic: new.spec.dead_letter_topic,
            },
            scopes: new.scopes,
        }
    }
}

//! `Resiliency` (`dapr.io/v1alpha1`): named timeout, retry and circuit
//! breaker policies, and which apps, actors and components they apply to.
//!
//! Durations and the circuit breaker `trip` expression stay as written;
//! checking them, and checking that targets name existing policies, is left
//! to the resiliency runtime (upstream does the same).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::resource::{DaprResource, dapr_custom_resource};
use crate::serde_support::{is_default, null_as_default, object_meta_schema};

/// Resiliency policies and their targets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Resiliency {
    /// API version of the resource; `dapr.io/v1alpha1`.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub api_version: String,
    /// Kind of the resource; `Resiliency`.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub kind: String,
    /// Standard object metadata; `name` identifies the resiliency.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_default"
    )]
    #[schemars(schema_with = "object_meta_schema")]
    pub metadata: ObjectMeta,
    /// Policies and targets.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_default"
    )]
    pub spec: ResiliencySpec,
    /// App IDs this resiliency applies to; empty means every app.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub scopes: Vec<String>,
}

dapr_custom_resource!(
    Resiliency,
    ResiliencySpec,
    version = "v1alpha1",
    kind = "Resiliency",
    plural = "resiliencies",
    extra = [scopes]
);

impl DaprResource for Resiliency {
    fn scopes(&self) -> &[String] {
        &self.scopes
    }
}

/// Policies and the targets they apply to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResiliencySpec {
    /// Named policies.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_default"
    )]
    #[schemars(extend("x-crd-required" = true))]
    pub policies: Policies,
    /// Which policies apply where.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_default"
    )]
    #[schemars(extend("x-crd-required" = true))]
    pub targets: Targets,
}

/// Named policies, referenced by name from the targets.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Policies {
    /// Timeouts: name to Go duration.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub timeouts: BTreeMap<String, String>,
    /// Retry policies by name.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub retries: BTreeMap<String, Retry>,
    /// Circuit breakers by name.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub circuit_breakers: BTreeMap<String, CircuitBreaker>,
}

/// A retry policy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Retry {
    /// `constant` or `exponential`.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_default"
    )]
    pub policy: String,
    /// Delay between attempts of a `constant` policy (Go duration).
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_default"
    )]
    pub duration: String,
    /// Upper bound of the delay of an `exponential` policy (Go duration).
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_default"
    )]
    pub max_interval: String,
    /// First delay of an `exponential` policy (Go duration, default 500ms). Not in
    /// upstream's CRD, which always starts at 500ms; accepted here as an extension.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_default"
    )]
    pub initial_interval: String,
    /// Growth factor of an `exponential` policy (default 1.5); an extension as
    /// `initialInterval` is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multiplier: Option<f64>,
    /// Jitter of an `exponential` policy, 0 to 1 (default 0.5); an extension as
    /// `initialInterval` is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub randomization_factor: Option<f64>,
    /// Attempts after the first; -1 retries forever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<i64>,
    /// Restricts retries to some failures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matching: Option<RetryMatching>,
}

/// Status codes that trigger a retry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetryMatching {
    /// HTTP status codes and ranges, comma separated (`500,502-504`).
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_default"
    )]
    pub http_status_codes: String,
    /// gRPC status codes and ranges, comma separated (`1-4,8`).
    #[serde(
        rename = "gRPCStatusCodes",
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_default"
    )]
    pub grpc_status_codes: String,
}

/// A circuit breaker.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CircuitBreaker {
    /// Requests let through while half-open.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_default"
    )]
    pub max_requests: i64,
    /// Period after which the failure counts reset while closed (Go duration).
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_default"
    )]
    pub interval: String,
    /// Time spent open before trying half-open (Go duration).
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_default"
    )]
    pub timeout: String,
    /// Expression that opens the breaker, e.g. `consecutiveFailures > 5`.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_default"
    )]
    pub trip: String,
}

/// Targets of the policies.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Targets {
    /// Service invocation targets, by app ID.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub apps: BTreeMap<String, EndpointPolicyNames>,
    /// Actor targets, by actor type.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub actors: BTreeMap<String, ActorPolicyNames>,
    /// Component targets, by component name.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub components: BTreeMap<String, ComponentPolicyNames>,
}

/// Policies of a component, per direction.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComponentPolicyNames {
    /// Calls from the component into the app (input bindings, pub/sub deliveries).
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_default"
    )]
    pub inbound: PolicyNames,
    /// Calls from the sidecar to the component.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_default"
    )]
    pub outbound: PolicyNames,
}

/// Names of the policies applied to a target; empty means none.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyNames {
    /// Timeout policy name.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_default"
    )]
    pub timeout: String,
    /// Retry policy name.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_default"
    )]
    pub retry: String,
    /// Circuit breaker name.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_default"
    )]
    pub circuit_breaker: String,
}

/// Policies of a service invocation target.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointPolicyNames {
    /// Timeout policy name.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_default"
    )]
    pub timeout: String,
    /// Retry policy name.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_default"
    )]
    pub retry: String,
    /// Circuit breaker name.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_default"
    )]
    pub circuit_breaker: String,
    /// Circuit breakers kept per target (one per endpoint).
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_default"
    )]
    pub circuit_breaker_cache_size: i64,
}

/// Policies of an actor type.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActorPolicyNames {
    /// Timeout policy name.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_default"
    )]
    pub timeout: String,
    /// Retry policy name.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_default"
    )]
    pub retry: String,
    /// Circuit breaker name.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_default"
    )]
    pub circuit_breaker: String,
    /// `type`, `id` or `both`: whether a breaker covers the whole actor type,
    /// each actor ID, or both.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_default"
    )]
    pub circuit_breaker_scope: String,
    /// Per-ID circuit breakers kept.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_default"
    )]
    pub circuit_breaker_cache_size: i64,
}

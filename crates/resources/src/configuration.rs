//! `Configuration` (`dapr.io/v1alpha1`): sidecar-wide settings (tracing,
//! metrics, mTLS, access control, API allow/deny lists, middleware
//! pipelines, name resolution, feature flags, logging, workflow limits).
//!
//! Durations are kept as the strings written in the manifest (Go duration
//! syntax); the code that uses a duration parses and validates it.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{DynamicValue, NameValuePair};
use crate::resource::{DaprResource, dapr_custom_resource};
use crate::serde_support::{
    free_form_object_schema, is_default, null_as_default, object_meta_schema,
};

/// Sidecar configuration, selected by name with `--config` or the
/// `dapr.io/config` annotation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Configuration {
    /// API version of the resource; `dapr.io/v1alpha1`.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub api_version: String,
    /// Kind of the resource; `Configuration`.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub kind: String,
    /// Standard object metadata; `name` identifies the configuration.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_default"
    )]
    #[schemars(schema_with = "object_meta_schema")]
    pub metadata: ObjectMeta,
    /// The settings.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_default"
    )]
    pub spec: ConfigurationSpec,
}

dapr_custom_resource!(
    Configuration,
    ConfigurationSpec,
    version = "v1alpha1",
    kind = "Configuration",
    plural = "configurations",
    extra = []
);

impl DaprResource for Configuration {
    /// Configurations are never scoped to apps.
    fn scopes(&self) -> &[String] {
        &[]
    }
}

/// All sidecar settings; every section is optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigurationSpec {
    /// Middleware applied to calls the sidecar makes to its app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_http_pipeline: Option<PipelineSpec>,
    /// Middleware applied to HTTP requests the sidecar receives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_pipeline: Option<PipelineSpec>,
    /// Distributed tracing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracing: Option<TracingSpec>,
    /// Metrics (older spelling of `metrics`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = {"enabled": true}))]
    pub metric: Option<MetricSpec>,
    /// Metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = {"enabled": true}))]
    pub metrics: Option<MetricSpec>,
    /// Mutual TLS between sidecars and with the control plane.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtls: Option<MtlsSpec>,
    /// Which secrets each secret store exposes to the app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets: Option<SecretsSpec>,
    /// Which apps may invoke this app, and which operations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_control: Option<AccessControlSpec>,
    /// Name resolution component used for service invocation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_resolution: Option<NameResolutionSpec>,
    /// Preview features switched on or off.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub features: Vec<FeatureSpec>,
    /// Dapr APIs the app may or may not use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<ApiSpec>,
    /// Component types this sidecar refuses to load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub components: Option<ComponentsSpec>,
    /// Logging.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logging: Option<LoggingSpec>,
    /// WebAssembly sandboxing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wasm: Option<WasmSpec>,
    /// Workflow engine limits and retention.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<WorkflowSpec>,
}

/// Workflow engine limits and retention.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowSpec {
    /// Workflows one sidecar runs at once; further ones wait. 0 = no limit.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_default"
    )]
    pub max_concurrent_workflow_invocations: i32,
    /// Activities one sidecar runs at once; further ones wait. 0 = no limit.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_default"
    )]
    pub max_concurrent_activity_invocations: i32,
    /// Workflows running at once across all replicas (enforced by the scheduler).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global_max_concurrent_workflow_invocations: Option<i32>,
    /// Activities running at once across all replicas (enforced by the scheduler).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global_max_concurrent_activity_invocations: Option<i32>,
    /// Limits per workflow name, across all replicas.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub workflow_concurrency_limits: Vec<NamedConcurrencyLimit>,
    /// Limits per activity name, across all replicas.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub activity_concurrency_limits: Vec<NamedConcurrencyLimit>,
    /// When finished workflow instances are purged; unset keeps them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_retention_policy: Option<WorkflowStateRetentionPolicy>,
}

/// Concurrency limit for one workflow or activity name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NamedConcurrencyLimit {
    /// Workflow or activity name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Invocations of that name running at once across all replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<i32>,
}

/// Time to keep a finished workflow instance before purging it, per final
/// state (Go durations; `0s` purges at once). A specific state wins over
/// `anyTerminal`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowStateRetentionPolicy {
    /// Any final state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub any_terminal: Option<String>,
    /// Completed instances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed: Option<String>,
    /// Failed instances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
    /// Terminated instances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminated: Option<String>,
}

/// Allow and deny lists of Dapr APIs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiSpec {
    /// APIs the app may use; when non-empty, every other API is refused.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub allowed: Vec<ApiAccessRule>,
    /// APIs the app may not use.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub denied: Vec<ApiAccessRule>,
}

/// WebAssembly sandboxing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WasmSpec {
    /// Run every Wasm component in strict sandbox mode (no real clock, no
    /// real randomness), whatever the component asks for.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_default"
    )]
    pub strict_sandbox: bool,
}

/// One Dapr API, as named in an allow or deny list.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiAccessRule {
    /// API name, e.g. `state` or `invoke`.
    pub name: String,
    /// API version, e.g. `v1.0`.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_default"
    )]
    #[schemars(extend("x-crd-required" = true))]
    pub version: String,
    /// `http` or `grpc`; empty means both.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_default"
    )]
    pub protocol: String,
}

/// Name resolution component used for service invocation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NameResolutionSpec {
    /// Implementation name, e.g. `mdns`, `kubernetes`, `consul`.
    pub component: String,
    /// Implementation version.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_default"
    )]
    #[schemars(extend("x-crd-required" = true))]
    pub version: String,
    /// Implementation-specific settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form_object_schema", extend("x-crd-required" = true))]
    pub configuration: Option<DynamicValue>,
}

/// Secret access rules, per secret store.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretsSpec {
    /// One rule set per secret store.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_default"
    )]
    #[schemars(extend("x-crd-required" = true))]
    pub scopes: Vec<SecretsScope>,
}

/// Secret access rules of one secret store.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretsScope {
    /// Name of the secret store component.
    pub store_name: String,
    /// `allow` or `deny`: access to secrets not listed below.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_default"
    )]
    pub default_access: String,
    /// Secrets the app may read.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub allowed_secrets: Vec<String>,
    /// Secrets the app may not read.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub denied_secrets: Vec<String>,
}

/// An ordered list of middleware.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PipelineSpec {
    /// Middleware, applied in this order.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_default"
    )]
    #[schemars(extend("x-crd-required" = true))]
    pub handlers: Vec<HandlerSpec>,
}

/// One middleware of a pipeline.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HandlerSpec {
    /// Name of the middleware component.
    pub name: String,
    /// Type of the middleware component, e.g. `middleware.http.uppercase`.
    #[serde(rename = "type")]
    pub type_: String,
    /// Restricts the middleware to matching requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<SelectorSpec>,
}

/// Request selector of a middleware.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SelectorSpec {
    /// Field/value pairs a request must match.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_default"
    )]
    #[schemars(extend("x-crd-required" = true))]
    pub fields: Vec<SelectorField>,
}

/// One field/value pair of a selector.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SelectorField {
    /// Request field.
    pub field: String,
    /// Value the field must have.
    pub value: String,
}

/// Mutual TLS settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MtlsSpec {
    /// Whether mTLS is on; unset means on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-crd-required" = true))]
    pub enabled: Option<bool>,
    /// Lifetime of workload certificates (Go duration).
    #[serde(
        rename = "workloadCertTTL",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub workload_cert_ttl: Option<String>,
    /// Clock skew tolerated when checking certificates (Go duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_clock_skew: Option<String>,
    /// Address of the sentry (certificate authority) service.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_default"
    )]
    #[schemars(extend("x-crd-required" = true))]
    pub sentry_address: String,
    /// Trust domain of the control plane.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_default"
    )]
    #[schemars(extend("x-crd-required" = true))]
    pub control_plane_trust_domain: String,
    /// Extra validators for the identity tokens sentry accepts.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub token_validators: Vec<ValidatorSpec>,
}

impl MtlsSpec {
    /// Whether mTLS is on: true unless `enabled` is explicitly false.
    pub fn is_enabled(&self) -> bool {
        self.enabled.unwrap_or(true)
    }
}

/// An identity-token validator of sentry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValidatorSpec {
    /// Validator name; only `jwks` exists.
    #[schemars(extend("enum" = ["jwks"]))]
    pub name: String,
    /// Validator settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form_object_schema")]
    pub options: Option<DynamicValue>,
}

/// Distributed tracing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TracingSpec {
    /// Fraction of requests sampled, as a decimal string (`"1"` = all).
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_default"
    )]
    #[schemars(extend("x-crd-required" = true))]
    pub sampling_rate: String,
    /// Also write spans to standard output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout: Option<bool>,
    /// Zipkin exporter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zipkin: Option<ZipkinSpec>,
    /// OpenTelemetry (OTLP) exporter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otel: Option<OtelSpec>,
}

/// OpenTelemetry (OTLP) trace exporter.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OtelSpec {
    /// `http` or `grpc`.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_default"
    )]
    #[schemars(extend("x-crd-required" = true))]
    pub protocol: String,
    /// Collector address.
    pub endpoint_address: String,
    /// Whether the collector connection uses TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-crd-required" = true))]
    pub is_secure: Option<bool>,
    /// Headers sent with every export request.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub headers: Vec<NameValuePair>,
    /// Timeout of one export request (Go duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}

/// Zipkin trace exporter.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ZipkinSpec {
    /// Span collection URL, e.g. `http://localhost:9411/api/v2/spans`.
    pub endpoint_address: String,
}

/// Metrics.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricSpec {
    /// Whether metrics are collected; unset means on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-crd-required" = true))]
    pub enabled: Option<bool>,
    /// Count errors by error code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_error_codes: Option<bool>,
    /// HTTP server metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<MetricHttp>,
    /// Label value filters per metric.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub rules: Vec<MetricsRule>,
    /// Histogram bucket bounds for latencies, in milliseconds; unset or
    /// empty uses the built-in buckets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_distribution_buckets: Option<Vec<i64>>,
    /// Workflow and activity metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<WorkflowMetrics>,
}

impl MetricSpec {
    /// Whether metrics are on: true unless `enabled` is explicitly false.
    pub fn is_enabled(&self) -> bool {
        self.enabled.unwrap_or(true)
    }
}

/// Workflow and activity metrics.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowMetrics {
    /// Histogram bucket bounds for workflow and activity latencies, in
    /// `latencyDistributionUnits`; unset falls back to the shared buckets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_distribution_buckets: Option<Vec<i64>>,
    /// Unit of the bucket bounds as a Go duration (`1ms`, `1s`); default `1ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_distribution_units: Option<String>,
}

/// HTTP server metrics.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricHttp {
    /// Label HTTP metrics with full paths (high cardinality) rather than
    /// matched routes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub increased_cardinality: Option<bool>,
    /// Path patterns used as the path label of HTTP metrics.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub path_matching: Vec<String>,
    /// Leave the HTTP method out of HTTP metric labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude_verbs: Option<bool>,
}

/// Label value filters of one metric.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricsRule {
    /// Metric name.
    pub name: String,
    /// Filters, one per label.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_default"
    )]
    #[schemars(extend("x-crd-required" = true))]
    pub labels: Vec<MetricLabel>,
}

/// Rewrites the values of one metric label.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricLabel {
    /// Label name.
    pub name: String,
    /// Replacement value to regular expression: a label value matching the
    /// expression is recorded as the replacement.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_default"
    )]
    #[schemars(extend("x-crd-required" = true))]
    pub regex: BTreeMap<String, String>,
}

/// Access policy of one calling app.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppPolicySpec {
    /// App ID of the caller.
    #[serde(rename = "appId")]
    pub app_id: String,
    /// `allow` or `deny`: what happens to operations not listed.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_default"
    )]
    pub default_action: String,
    /// Trust domain of the caller.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_default"
    )]
    pub trust_domain: String,
    /// Namespace of the caller.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_default"
    )]
    pub namespace: String,
    /// Rules per operation (path).
    #[serde(
        rename = "operations",
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub operations: Vec<AppOperationAction>,
}

/// Access rule of one operation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppOperationAction {
    /// Operation path; may end in `*` or `**`.
    pub name: String,
    /// `allow` or `deny`.
    pub action: String,
    /// HTTP methods the rule applies to; `*` for all.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub http_verb: Vec<String>,
}

/// Service invocation access control.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessControlSpec {
    /// `allow` or `deny`: what happens to callers without a policy.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_default"
    )]
    pub default_action: String,
    /// Trust domain of this app.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_default"
    )]
    pub trust_domain: String,
    /// One policy per calling app.
    #[serde(
        rename = "policies",
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub policies: Vec<AppPolicySpec>,
}

/// A preview feature switched on or off.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FeatureSpec {
    /// Feature name.
    pub name: String,
    /// Whether the feature is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-crd-required" = true))]
    pub enabled: Option<bool>,
}

/// Component loading restrictions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComponentsSpec {
    /// Component types that may not be loaded, as `type` or `type/version`
    /// (e.g. `bindings.smtp`, `secretstores.local.file/v1`).
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub deny: Vec<String>,
}

/// Logging.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoggingSpec {
    /// Logging of calls to the Dapr APIs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_logging: Option<ApiLoggingSpec>,
}

/// Logging of calls to the Dapr APIs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiLoggingSpec {
    /// Default of `--enable-api-logging` (the flag, when given, wins); default off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Log the matched route instead of the full URL; default off.
    #[serde(
        rename = "obfuscateURLs",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub obfuscate_urls: Option<bool>,
    /// Leave health checks out of the API log; default off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub omit_health_checks: Option<bool>,
}

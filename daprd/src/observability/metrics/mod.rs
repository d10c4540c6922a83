//! The sidecar's Prometheus metrics, named, labelled and bucketed as upstream exports them
//! (OpenCensus views under the `dapr` namespace: `http/server/latency` becomes
//! `dapr_http_server_latency`). Count views are counters, last-value views gauges and
//! distributions histograms; a label upstream leaves unset is exported empty.
//!
//! [`SidecarMetrics`] registers every family once on a [`MetricsRegistry`] and is a cheap
//! clone handed to whatever records; a disabled one (metrics off in the Configuration)
//! records nothing. The layers in this module record the server side of each API call.

mod component;
mod grpc;
mod grpc_layer;
mod http;
mod http_layer;
mod http_path;
mod resiliency;
mod service;

use std::sync::Arc;
use std::time::Duration;

use dapr_kit::metrics::MetricsRegistry;
use dapr_resources::configuration::{ConfigurationSpec, MetricSpec};
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts};

pub use component::{OperationKind, operation};
pub use grpc::APP_HEALTH_CHECK_METHOD;
pub use grpc_layer::{GrpcServerMetrics, GrpcServerMetricsFuture, GrpcServerMetricsLayer};
pub use http_layer::{HttpServerMetrics, HttpServerMetricsFuture, HttpServerMetricsLayer};
pub use resiliency::{
    CircuitBreakerState, PolicyFlowDirection, PolicyRef, PolicyType, actor_target, app_target,
    component_target,
};
pub use service::InvocationKind;

/// Upstream's latency histogram bounds, in milliseconds.
pub const DEFAULT_LATENCY_BUCKETS_MS: [f64; 34] = [
    1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 13.0, 16.0, 20.0, 25.0, 30.0, 40.0, 50.0, 65.0, 80.0,
    100.0, 130.0, 160.0, 200.0, 250.0, 300.0, 400.0, 500.0, 650.0, 800.0, 1_000.0, 2_000.0,
    5_000.0, 10_000.0, 20_000.0, 50_000.0, 100_000.0,
];

/// Upstream's size histogram bounds, in bytes (1 KiB to 4 GiB).
pub const SIZE_BUCKETS_BYTES: [f64; 13] = [
    (1u64 << 10) as f64,
    (2u64 << 10) as f64,
    (4u64 << 10) as f64,
    (16u64 << 10) as f64,
    (64u64 << 10) as f64,
    (256u64 << 10) as f64,
    (1u64 << 20) as f64,
    (4u64 << 20) as f64,
    (16u64 << 20) as f64,
    (64u64 << 20) as f64,
    (256u64 << 20) as f64,
    (1u64 << 30) as f64,
    (4u64 << 30) as f64,
];

/// A metric family could not be registered.
#[derive(Debug, thiserror::Error)]
#[error("failed to register metric {name}: {source}")]
pub struct MetricsError {
    /// The metric's full name.
    pub name: String,
    /// The registry's reason (a duplicate name, an invalid bucket list, ...).
    pub source: prometheus::Error,
}

/// How HTTP server and client metrics label paths and methods
/// (`spec.metrics.http` of the Configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpMetricsSettings {
    /// Label with (lightly normalised) request paths: upstream's legacy, high-cardinality
    /// mode and its default. When false, only `path_matching` patterns become labels.
    pub increased_cardinality: bool,
    /// Path patterns (Go `ServeMux` syntax, e.g. `/orders/{id}`) whose pattern is the path
    /// label of matching requests; each also matches under `/v1.0/invoke/{app_id}/method`.
    pub path_matching: Vec<String>,
    /// Leave the method label empty.
    pub exclude_verbs: bool,
}

impl Default for HttpMetricsSettings {
    fn default() -> Self {
        HttpMetricsSettings {
            increased_cardinality: true,
            path_matching: Vec::new(),
            exclude_verbs: false,
        }
    }
}

/// Everything the families need: constant labels, buckets and the HTTP label rules.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsSettings {
    /// This sidecar's app id (the `app_id` label).
    pub app_id: String,
    /// This sidecar's namespace (the `namespace` label of component metrics).
    pub namespace: String,
    /// Latency histogram bounds in milliseconds.
    pub latency_buckets_ms: Vec<f64>,
    /// HTTP path and method labelling.
    pub http: HttpMetricsSettings,
}

impl MetricsSettings {
    /// Upstream's defaults for `app_id` in `namespace`.
    pub fn new(app_id: impl Into<String>, namespace: impl Into<String>) -> Self {
        MetricsSettings {
            app_id: app_id.into(),
            namespace: namespace.into(),
            latency_buckets_ms: DEFAULT_LATENCY_BUCKETS_MS.to_vec(),
            http: HttpMetricsSettings::default(),
        }
    }

    /// The settings a `spec.metric(s)` section asks for; unset fields keep the defaults.
    pub fn from_spec(
        app_id: impl Into<String>,
        namespace: impl Into<String>,
        spec: &MetricSpec,
    ) -> Self {
        let mut settings = MetricsSettings::new(app_id, namespace);
        if let Some(buckets) = spec
            .latency_distribution_buckets
            .as_ref()
            .filter(|b| !b.is_empty())
        {
            settings.latency_buckets_ms = buckets.iter().map(|bound| *bound as f64).collect();
        }
        let http = spec.http.clone().unwrap_or_default();
        match http.increased_cardinality {
            Some(increased) => settings.http.increased_cardinality = increased,
            None => tracing::warn!(
                target: "dapr.runtime.diagnostics",
                "spec.metric.http.increasedCardinality is not set: HTTP metrics are labelled with request paths; set it to false to keep only matched path patterns"
            ),
        }
        settings.http.path_matching = http.path_matching;
        settings.http.exclude_verbs = http.exclude_verbs.unwrap_or(false);
        settings
    }
}

/// The effective metrics section of a Configuration: `spec.metric`, with every field that
/// `spec.metrics` sets taking precedence (upstream's rule for the two spellings).
pub fn effective_metric_spec(spec: &ConfigurationSpec) -> MetricSpec {
    let mut merged = spec.metric.clone().unwrap_or_default();
    if let Some(newer) = &spec.metrics {
        if newer.enabled.is_some() {
            merged.enabled = newer.enabled;
        }
        if !newer.rules.is_empty() {
            merged.rules = newer.rules.clone();
        }
        if newer.http.is_some() {
            merged.http = newer.http.clone();
        }
        if newer.latency_distribution_buckets.is_some() {
            merged.latency_distribution_buckets = newer.latency_distribution_buckets.clone();
        }
        if newer.workflow.is_some() {
            merged.workflow = newer.workflow.clone();
        }
        if newer.record_error_codes.is_some() {
            merged.record_error_codes = newer.record_error_codes;
        }
    }
    merged
}

/// Every metric family of the sidecar; clones share them. See the methods for what each
/// records; all of them are no-ops on a [`SidecarMetrics::disabled`] handle.
#[derive(Debug, Clone, Default)]
pub struct SidecarMetrics {
    families: Option<Arc<Families>>,
}

#[derive(Debug)]
struct Families {
    app_id: String,
    namespace: String,
    paths: http_path::HttpPathLabels,
    http: http::HttpFamilies,
    grpc: grpc::GrpcFamilies,
    service: service::ServiceFamilies,
    component: component::ComponentFamilies,
    resiliency: resiliency::ResiliencyFamilies,
}

impl SidecarMetrics {
    /// Registers every family on `registry`.
    pub fn register(
        registry: &MetricsRegistry,
        settings: &MetricsSettings,
    ) -> Result<Self, MetricsError> {
        let mut latency = settings.latency_buckets_ms.clone();
        latency.sort_by(f64::total_cmp);
        latency.dedup();
        let registrar = Registrar {
            registry,
            latency: &latency,
        };
        let families = Families {
            app_id: settings.app_id.clone(),
            namespace: settings.namespace.clone(),
            paths: http_path::HttpPathLabels::new(&settings.http),
            http: http::HttpFamilies::register(&registrar, settings.http.increased_cardinality)?,
            grpc: grpc::GrpcFamilies::register(&registrar)?,
            service: service::ServiceFamilies::register(&registrar)?,
            component: component::ComponentFamilies::register(&registrar)?,
            resiliency: resiliency::ResiliencyFamilies::register(&registrar)?,
        };
        Ok(SidecarMetrics {
            families: Some(Arc::new(families)),
        })
    }

    /// A handle that records nothing (metrics disabled).
    pub fn disabled() -> Self {
        SidecarMetrics { families: None }
    }

    /// Whether this handle records.
    pub fn is_enabled(&self) -> bool {
        self.families.is_some()
    }

    fn families(&self) -> Option<&Families> {
        self.families.as_deref()
    }
}

/// Registers families with the shared bucket lists.
struct Registrar<'a> {
    registry: &'a MetricsRegistry,
    latency: &'a [f64],
}

impl Registrar<'_> {
    fn counter(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> Result<IntCounterVec, MetricsError> {
        let failed = |source| MetricsError {
            name: name.to_string(),
            source,
        };
        let counter = IntCounterVec::new(Opts::new(name, help), labels).map_err(failed)?;
        self.registry.register(counter.clone()).map_err(failed)?;
        Ok(counter)
    }

    fn gauge(&self, name: &str, help: &str, labels: &[&str]) -> Result<IntGaugeVec, MetricsError> {
        let failed = |source| MetricsError {
            name: name.to_string(),
            source,
        };
        let gauge = IntGaugeVec::new(Opts::new(name, help), labels).map_err(failed)?;
        self.registry.register(gauge.clone()).map_err(failed)?;
        Ok(gauge)
    }

    fn histogram(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
        buckets: &[f64],
    ) -> Result<HistogramVec, MetricsError> {
        let failed = |source| MetricsError {
            name: name.to_string(),
            source,
        };
        let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
        let histogram = HistogramVec::new(opts, labels).map_err(failed)?;
        self.registry.register(histogram.clone()).map_err(failed)?;
        Ok(histogram)
    }

    fn latency(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> Result<HistogramVec, MetricsError> {
        self.histogram(name, help, labels, self.latency)
    }

    fn size(&self, name: &str, help: &str, labels: &[&str]) -> Result<HistogramVec, MetricsError> {
        self.histogram(name, help, labels, &SIZE_BUCKETS_BYTES)
    }
}

/// Whole milliseconds, as upstream's HTTP and gRPC measurements truncate them.
fn whole_millis(elapsed: Duration) -> f64 {
    elapsed.as_millis() as f64
}

/// Fractional milliseconds, as upstream's component and invocation latencies are.
fn fractional_millis(elapsed: Duration) -> f64 {
    elapsed.as_secs_f64() * 1_000.0
}

/// `true` / `false`, as Go formats a boolean label.
fn bool_label(value: bool) -> &'static str {
    if value { "true" } else { "false" }
}

/// Formats an integer label without allocating.
struct IntLabel {
    buffer: [u8; 12],
    start: usize,
}

impl IntLabel {
    fn new(value: i32) -> Self {
        let mut buffer = [0u8; 12];
        let mut start = buffer.len();
        let mut rest = i64::from(value).unsigned_abs();
        loop {
            start -= 1;
            buffer[start] = b'0' + (rest % 10) as u8;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        if value < 0 {
            start -= 1;
            buffer[start] = b'-';
        }
        IntLabel { buffer, start }
    }

    fn as_str(&self) -> &str {
        // Only ASCII digits and '-' were written.
        std::str::from_utf8(&self.buffer[self.start..]).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_labels_format_like_go() {
        for value in [0, 7, 200, 503, -1, i32::MAX, i32::MIN] {
            assert_eq!(IntLabel::new(value).as_str(), value.to_string());
        }
    }

    #[test]
    fn metrics_overrides_metric_field_by_field() {
        let spec: ConfigurationSpec = serde_json::from_value(serde_json::json!({
            "metric": {"enabled": true, "latencyDistributionBuckets": [5, 10]},
            "metrics": {"enabled": false, "http": {"increasedCardinality": false}},
        }))
        .unwrap();
        let merged = effective_metric_spec(&spec);
        assert!(!merged.is_enabled());
        assert_eq!(merged.latency_distribution_buckets, Some(vec![5, 10]));
        let settings = MetricsSettings::from_spec("app", "default", &merged);
        assert_eq!(settings.latency_buckets_ms, vec![5.0, 10.0]);
        assert!(!settings.http.increased_cardinality);
    }

    #[test]
    fn registering_twice_on_one_registry_fails_with_the_name() {
        let registry = MetricsRegistry::new();
        let settings = MetricsSettings::new("app", "default");
        SidecarMetrics::register(&registry, &settings).unwrap();
        let error = SidecarMetrics::register(&registry, &settings).unwrap_err();
        assert!(error.name.starts_with("dapr_"), "{error}");
    }
}

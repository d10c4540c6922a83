//! Distributed tracing as upstream does it: every API call continues the caller's trace
//! (W3C `traceparent` / `tracestate` over HTTP, OpenCensus `grpc-trace-bin` or
//! `traceparent` over gRPC) or starts one, gets a server span, and hands its context to
//! the handler so outgoing calls carry it on. Sampled spans are exported to the
//! Configuration's exporters (`spec.tracing`: stdout, Zipkin, OTLP over gRPC or HTTP).
//!
//! [`Tracing`] owns the OpenTelemetry pipeline; the layers ([`HttpServerTraceLayer`],
//! [`GrpcServerTraceLayer`]) put a [`ServerSpan`] (and its [`TraceContext`]) into each
//! request's extensions; [`inject_into`] / [`inject_grpc_into`] write a context into an
//! outgoing call.

mod baggage;
mod binary_header;
mod context;
mod env;
mod export;
mod grpc_layer;
mod http_layer;
mod sampler;
mod span;
mod zipkin;

use std::sync::Arc;

use dapr_resources::configuration::TracingSpec;
use opentelemetry::trace::{SpanKind, TraceContextExt, Tracer, TracerProvider};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::resource::EnvResourceDetector;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};

pub use baggage::BAGGAGE;
pub use context::{
    GRPC_TRACE_BIN, MAX_TRACESTATE_LEN, TRACEPARENT, TRACESTATE, TraceContext, TraceState,
    inject_grpc_into, inject_grpc_metadata, inject_into,
};
pub use env::apply_otel_environment;
pub use grpc_layer::{GrpcServerTrace, GrpcServerTraceFuture, GrpcServerTraceLayer};
pub use http_layer::{HttpServerTrace, HttpServerTraceFuture, HttpServerTraceLayer};
pub use sampler::{DEFAULT_SAMPLING_RATE, is_tracing_enabled, sampler, sampling_rate};
pub use span::ServerSpan;

/// Name of the tracer spans are created with (the instrumentation scope).
const TRACER_NAME: &str = "dapr-diagnostics";

/// Why tracing could not be set up from `spec.tracing`.
#[derive(Debug, thiserror::Error)]
pub enum TracingError {
    /// `otel.protocol` is neither `http` nor `grpc`.
    #[error("invalid protocol {0} provided for Otel endpoint")]
    Protocol(String),
    /// `otel.timeout` is not a duration.
    #[error("invalid otel timeout {value:?}: {reason}")]
    Timeout {
        /// The configured value.
        value: String,
        /// Why it does not parse.
        reason: String,
    },
    /// An `OTEL_EXPORTER_OTLP_*` variable does not parse.
    #[error("invalid {variable}: {reason}")]
    Environment {
        /// The variable.
        variable: &'static str,
        /// Why it does not parse.
        reason: String,
    },
    /// The exporter library refused the configuration.
    #[error("failed to create the {exporter} trace exporter: {reason}")]
    Exporter {
        /// Which exporter.
        exporter: &'static str,
        /// The library's reason.
        reason: String,
    },
}

/// The sidecar's tracing pipeline; clones share it. A disabled one (sampling rate 0)
/// creates no spans and propagates nothing, as upstream installs no tracing then.
#[derive(Debug, Clone, Default)]
pub struct Tracing {
    pipeline: Option<Arc<Pipeline>>,
}

#[derive(Debug)]
struct Pipeline {
    app_id: String,
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    exports: export::ExportControl,
}

impl Tracing {
    /// Sets tracing up from `spec` (or upstream's defaults when there is no tracing
    /// section: a 1 in 10,000 sampling rate and no exporter). Spans are named after the
    /// service `app_id` unless `OTEL_SERVICE_NAME` says otherwise; `OTEL_RESOURCE_ATTRIBUTES`
    /// adds resource attributes. Must be called within a Tokio runtime (the export task is
    /// spawned on it).
    pub fn start(app_id: &str, spec: Option<&TracingSpec>) -> Result<Self, TracingError> {
        Self::start_trusting(app_id, spec, &crate::outbound_tls::system_roots)
    }

    /// [`Tracing::start`], verifying secure collectors against the certificates `roots`
    /// returns instead of the system's.
    pub fn start_trusting(
        app_id: &str,
        spec: Option<&TracingSpec>,
        roots: &dyn Fn() -> rustls::RootCertStore,
    ) -> Result<Self, TracingError> {
        let default_spec = TracingSpec::default();
        let spec = spec.unwrap_or(&default_spec);
        if !is_tracing_enabled(&spec.sampling_rate) {
            return Ok(Tracing::disabled());
        }
        let service_name = std::env::var("OTEL_SERVICE_NAME")
            .ok()
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| app_id.to_string());
        let resource = Resource::builder_empty()
            .with_detector(Box::new(EnvResourceDetector::new()))
            .with_service_name(service_name)
            .build();
        let exporters = export::exporters_for(spec, &resource, roots)?;
        let (processor, exports) = export::spawn(exporters);
        let provider = SdkTracerProvider::builder()
            .with_sampler(sampler(&spec.sampling_rate))
            .with_resource(resource)
            .with_span_processor(processor)
            .build();
        let tracer = provider.tracer(TRACER_NAME);
        tracing::info!(
            target: "dapr.runtime",
            "tracing enabled: parent-based sampling, rate {} for new traces",
            sampling_rate(&spec.sampling_rate)
        );
        Ok(Tracing {
            pipeline: Some(Arc::new(Pipeline {
                app_id: app_id.to_string(),
                provider,
                tracer,
                exports,
            })),
        })
    }

    /// Tracing switched off.
    pub fn disabled() -> Self {
        Tracing { pipeline: None }
    }

    /// Whether spans are created and contexts propagated.
    pub fn is_enabled(&self) -> bool {
        self.pipeline.is_some()
    }

    /// Returns once every span that ended before this call has been handed to every
    /// exporter (and each export call returned).
    pub async fn flush(&self) {
        if let Some(pipeline) = &self.pipeline {
            pipeline.exports.flush().await;
        }
    }

    /// Exports what is pending and stops the exporters; spans ended later are dropped.
    pub async fn shutdown(&self) {
        if let Some(pipeline) = &self.pipeline {
            pipeline.exports.shutdown().await;
            if let Err(error) = pipeline.provider.shutdown() {
                tracing::debug!("tracer provider shutdown: {error}");
            }
        }
    }

    /// This sidecar's app id, when enabled.
    fn app_id(&self) -> Option<&str> {
        self.pipeline
            .as_deref()
            .map(|pipeline| pipeline.app_id.as_str())
    }

    /// Starts a span named `name` continuing `parent` (or a new trace).
    fn start_span(
        &self,
        name: String,
        kind: SpanKind,
        parent: Option<&TraceContext>,
    ) -> Option<span::ActiveSpan> {
        let pipeline = self.pipeline.as_deref()?;
        let parent_context = match parent {
            Some(parent) => {
                opentelemetry::Context::new().with_remote_span_context(parent.to_otel())
            }
            None => opentelemetry::Context::new(),
        };
        let sdk_span = pipeline
            .tracer
            .span_builder(name)
            .with_kind(kind)
            .start_with_context(&pipeline.tracer, &parent_context);
        span::ActiveSpan::new(sdk_span, parent)
    }
}

impl TraceContext {
    /// The OpenTelemetry span context of this (remote) context.
    fn to_otel(&self) -> opentelemetry::trace::SpanContext {
        opentelemetry::trace::SpanContext::new(
            opentelemetry::trace::TraceId::from_bytes(self.trace_id()),
            opentelemetry::trace::SpanId::from_bytes(self.span_id()),
            opentelemetry::trace::TraceFlags::new(self.flags()),
            true,
            self.trace_state().as_str().parse().unwrap_or_default(),
        )
    }
}

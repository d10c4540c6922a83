//! The sidecar's own telemetry: Prometheus metrics with upstream's metric families, labels
//! and buckets ([`metrics`]), distributed tracing with W3C / OpenCensus propagation and
//! OTLP / Zipkin export ([`trace`]), and the `--enable-api-logging` access log
//! ([`api_log`]).
//!
//! Everything that sits on the request path is a tower layer, generic over the request
//! body, so the same layers wrap the axum HTTP API and the tonic gRPC servers:
//!
//! | layer | what it does |
//! | --- | --- |
//! | [`metrics::HttpServerMetricsLayer`] | `dapr_http_server_*` per request |
//! | [`metrics::GrpcServerMetricsLayer`] | `dapr_grpc_io_server_*` per RPC |
//! | [`trace::HttpServerTraceLayer`] | continues or starts a trace, one server span per call |
//! | [`trace::GrpcServerTraceLayer`] | the same for gRPC (`grpc-trace-bin` / `traceparent`) |
//! | [`api_log::HttpApiLogLayer`] / [`api_log::GrpcApiLogLayer`] | one info line per call |
//!
//! Upstream applies them outermost first in this order: tracing, metrics, then API logging.

pub mod api_log;
pub mod metrics;
pub mod trace;

mod body;
mod grpc_status;

#[cfg(test)]
mod tests;

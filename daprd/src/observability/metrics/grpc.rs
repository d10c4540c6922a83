//! `dapr_grpc_io_*`: RPCs the gRPC servers handled, calls to the app over gRPC, and gRPC
//! app health probes. Status labels use upstream's code names (`OK`, `NotFound`, ...).

use std::time::Duration;

use prometheus::{HistogramVec, IntCounterVec};

use super::{MetricsError, Registrar, SidecarMetrics, whole_millis};
use crate::observability::grpc_status::code_name;

const APP_ID: &str = "app_id";
const SERVER_METHOD: &str = "grpc_server_method";
const SERVER_STATUS: &str = "grpc_server_status";
const CLIENT_METHOD: &str = "grpc_client_method";
const CLIENT_STATUS: &str = "grpc_client_status";

/// The method of the app's health check; its calls count as health probes.
pub const APP_HEALTH_CHECK_METHOD: &str =
    "/dapr.proto.runtime.v1.AppCallbackHealthCheck/HealthCheck";

/// The gRPC families.
#[derive(Debug)]
pub(super) struct GrpcFamilies {
    server_received_bytes: HistogramVec,
    server_sent_bytes: HistogramVec,
    server_latency: HistogramVec,
    server_completed: IntCounterVec,
    client_sent_bytes: HistogramVec,
    client_received_bytes: HistogramVec,
    client_roundtrip_latency: HistogramVec,
    client_completed: IntCounterVec,
    health_probe_completed_count: IntCounterVec,
    health_probe_roundtrip_latency: HistogramVec,
}

impl GrpcFamilies {
    pub(super) fn register(registrar: &Registrar<'_>) -> Result<Self, MetricsError> {
        let server = [APP_ID, SERVER_METHOD, SERVER_STATUS];
        let client = [APP_ID, CLIENT_METHOD, CLIENT_STATUS];
        Ok(GrpcFamilies {
            server_received_bytes: registrar.size(
                "dapr_grpc_io_server_received_bytes_per_rpc",
                "Request message bytes received per RPC.",
                &[APP_ID, SERVER_METHOD],
            )?,
            server_sent_bytes: registrar.size(
                "dapr_grpc_io_server_sent_bytes_per_rpc",
                "Response message bytes sent per RPC.",
                &[APP_ID, SERVER_METHOD],
            )?,
            server_latency: registrar.latency(
                "dapr_grpc_io_server_server_latency",
                "Time to serve an RPC, in milliseconds.",
                &server,
            )?,
            server_completed: registrar.counter(
                "dapr_grpc_io_server_completed_rpcs",
                "RPCs served, by method and status.",
                &server,
            )?,
            client_sent_bytes: registrar.size(
                "dapr_grpc_io_client_sent_bytes_per_rpc",
                "Request message bytes sent to the app per RPC.",
                &[APP_ID, CLIENT_METHOD],
            )?,
            client_received_bytes: registrar.size(
                "dapr_grpc_io_client_received_bytes_per_rpc",
                "Response message bytes received from the app per RPC.",
                &[APP_ID, CLIENT_METHOD],
            )?,
            client_roundtrip_latency: registrar.latency(
                "dapr_grpc_io_client_roundtrip_latency",
                "Round trip time of RPCs to the app, in milliseconds.",
                &client,
            )?,
            client_completed: registrar.counter(
                "dapr_grpc_io_client_completed_rpcs",
                "Completed RPCs to the app, by method and status.",
                &client,
            )?,
            health_probe_completed_count: registrar.counter(
                "dapr_grpc_io_healthprobes_completed_count",
                "Completed gRPC health probes of the app, by status.",
                &[APP_ID, CLIENT_STATUS],
            )?,
            health_probe_roundtrip_latency: registrar.latency(
                "dapr_grpc_io_healthprobes_roundtrip_latency",
                "Round trip time of gRPC health probes of the app, in milliseconds.",
                &[APP_ID, CLIENT_STATUS],
            )?,
        })
    }
}

impl SidecarMetrics {
    /// Records an RPC a gRPC server handled (the [`super::GrpcServerMetricsLayer`] calls
    /// this). `message_bytes` are the request and response payload sizes, for unary calls
    /// only (upstream records no sizes for streams).
    pub fn record_grpc_server(
        &self,
        method: &str,
        code: i32,
        message_bytes: Option<(u64, u64)>,
        elapsed: Duration,
    ) {
        let Some(families) = self.families() else {
            return;
        };
        let grpc = &families.grpc;
        let status = code_name(code);
        let labels = [families.app_id.as_str(), method, &status];
        grpc.server_completed.with_label_values(&labels).inc();
        grpc.server_latency
            .with_label_values(&labels)
            .observe(whole_millis(elapsed));
        if let Some((received, sent)) = message_bytes {
            let labels = [families.app_id.as_str(), method];
            grpc.server_received_bytes
                .with_label_values(&labels)
                .observe(received as f64);
            grpc.server_sent_bytes
                .with_label_values(&labels)
                .observe(sent as f64);
        }
    }

    /// Records a completed unary RPC to the app (`method` is the full `/pkg.Service/Method`
    /// path, `code` the gRPC status code, the byte counts the message sizes). Calls to
    /// [`APP_HEALTH_CHECK_METHOD`] are recorded as health probes instead.
    pub fn record_grpc_client(
        &self,
        method: &str,
        code: i32,
        sent_bytes: u64,
        received_bytes: u64,
        elapsed: Duration,
    ) {
        let Some(families) = self.families() else {
            return;
        };
        if method == APP_HEALTH_CHECK_METHOD {
            self.record_grpc_health_probe(code, elapsed);
            return;
        }
        let grpc = &families.grpc;
        self.record_grpc_client_completion(method, code, elapsed);
        let labels = [families.app_id.as_str(), method];
        grpc.client_sent_bytes
            .with_label_values(&labels)
            .observe(sent_bytes as f64);
        grpc.client_received_bytes
            .with_label_values(&labels)
            .observe(received_bytes as f64);
    }

    /// Records a completed streaming RPC proxied to another sidecar or the app: count and
    /// latency only, as upstream.
    pub fn record_grpc_client_stream(&self, method: &str, code: i32, elapsed: Duration) {
        self.record_grpc_client_completion(method, code, elapsed);
    }

    fn record_grpc_client_completion(&self, method: &str, code: i32, elapsed: Duration) {
        let Some(families) = self.families() else {
            return;
        };
        let status = code_name(code);
        let labels = [families.app_id.as_str(), method, &status];
        families
            .grpc
            .client_completed
            .with_label_values(&labels)
            .inc();
        families
            .grpc
            .client_roundtrip_latency
            .with_label_values(&labels)
            .observe(whole_millis(elapsed));
    }

    /// Records a gRPC health probe of the app with its status code.
    pub fn record_grpc_health_probe(&self, code: i32, elapsed: Duration) {
        let Some(families) = self.families() else {
            return;
        };
        let status = code_name(code);
        let labels = [families.app_id.as_str(), &*status];
        families
            .grpc
            .health_probe_completed_count
            .with_label_values(&labels)
            .inc();
        families
            .grpc
            .health_probe_roundtrip_latency
            .with_label_values(&labels)
            .observe(whole_millis(elapsed));
    }
}

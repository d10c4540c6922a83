//! `dapr_http_*`: requests the HTTP API served, calls to the app over HTTP, and HTTP app
//! health probes.

use std::time::Duration;

use http::Method;
use prometheus::{HistogramVec, IntCounterVec};

use super::{IntLabel, MetricsError, Registrar, SidecarMetrics, whole_millis};

const APP_ID: &str = "app_id";
const METHOD: &str = "method";
const PATH: &str = "path";
const STATUS: &str = "status";

/// The HTTP families.
#[derive(Debug)]
pub(super) struct HttpFamilies {
    server_request_count: IntCounterVec,
    server_latency: HistogramVec,
    server_request_bytes: HistogramVec,
    server_response_bytes: HistogramVec,
    /// Only in upstream's legacy (increased cardinality) mode.
    server_response_count: Option<IntCounterVec>,
    client_sent_bytes: HistogramVec,
    client_received_bytes: HistogramVec,
    client_roundtrip_latency: HistogramVec,
    client_completed_count: IntCounterVec,
    health_probe_completed_count: IntCounterVec,
    health_probe_roundtrip_latency: HistogramVec,
}

impl HttpFamilies {
    pub(super) fn register(registrar: &Registrar<'_>, legacy: bool) -> Result<Self, MetricsError> {
        let call = [APP_ID, METHOD, PATH, STATUS];
        Ok(HttpFamilies {
            server_request_count: registrar.counter(
                "dapr_http_server_request_count",
                "HTTP requests served, by method, path and status.",
                &call,
            )?,
            server_latency: registrar.latency(
                "dapr_http_server_latency",
                "Time to serve an HTTP request, in milliseconds.",
                &call,
            )?,
            server_request_bytes: registrar.size(
                "dapr_http_server_request_bytes",
                "Declared (Content-Length) size of HTTP request bodies, in bytes.",
                &[APP_ID],
            )?,
            server_response_bytes: registrar.size(
                "dapr_http_server_response_bytes",
                "Size of HTTP response bodies sent, in bytes.",
                &[APP_ID],
            )?,
            server_response_count: legacy
                .then(|| {
                    registrar.counter(
                        "dapr_http_server_response_count",
                        "HTTP responses sent, by method, path and status.",
                        &call,
                    )
                })
                .transpose()?,
            client_sent_bytes: registrar.size(
                "dapr_http_client_sent_bytes",
                "Size of request bodies sent to the app, in bytes.",
                &call,
            )?,
            client_received_bytes: registrar.size(
                "dapr_http_client_received_bytes",
                "Size of response bodies received from the app, in bytes.",
                &[APP_ID],
            )?,
            client_roundtrip_latency: registrar.latency(
                "dapr_http_client_roundtrip_latency",
                "Time from sending a request to the app to its complete response, in milliseconds.",
                &call,
            )?,
            client_completed_count: registrar.counter(
                "dapr_http_client_completed_count",
                "Completed HTTP requests to the app, by method, path and status.",
                &call,
            )?,
            health_probe_completed_count: registrar.counter(
                "dapr_http_healthprobes_completed_count",
                "Completed HTTP health probes of the app, by status.",
                &[APP_ID, STATUS],
            )?,
            health_probe_roundtrip_latency: registrar.latency(
                "dapr_http_healthprobes_roundtrip_latency",
                "Round trip time of HTTP health probes of the app, in milliseconds.",
                &[APP_ID, STATUS],
            )?,
        })
    }
}

impl SidecarMetrics {
    /// Records a request the HTTP API served (the [`super::HttpServerMetricsLayer`] calls
    /// this; call it directly only for requests served outside the layer).
    pub fn record_http_server(
        &self,
        method: &Method,
        path: &str,
        status: u16,
        request_bytes: u64,
        response_bytes: u64,
        elapsed: Duration,
    ) {
        let Some(families) = self.families() else {
            return;
        };
        let method = families.paths.method(method);
        let path = families.paths.server_path(path);
        let status = IntLabel::new(i32::from(status));
        let labels = [families.app_id.as_str(), method, &path, status.as_str()];
        let http = &families.http;
        http.server_request_count.with_label_values(&labels).inc();
        http.server_latency
            .with_label_values(&labels)
            .observe(whole_millis(elapsed));
        if let Some(responses) = &http.server_response_count {
            responses.with_label_values(&labels).inc();
        }
        let app = [families.app_id.as_str()];
        http.server_request_bytes
            .with_label_values(&app)
            .observe(request_bytes as f64);
        http.server_response_bytes
            .with_label_values(&app)
            .observe(response_bytes as f64);
    }

    /// Records a completed HTTP call to the app: `path` is the path called (or the invoked
    /// method), `status` its HTTP status (upstream records 500 when the call failed without
    /// a response), the byte counts those of the request and response bodies.
    pub fn record_http_client(
        &self,
        method: &Method,
        path: &str,
        status: u16,
        sent_bytes: u64,
        received_bytes: u64,
        elapsed: Duration,
    ) {
        let Some(families) = self.families() else {
            return;
        };
        let method = families.paths.method(method);
        let path = families.paths.client_path(path);
        let app_id = families.app_id.as_str();
        let http = &families.http;
        http.client_sent_bytes
            .with_label_values(&[app_id, method, &path, ""])
            .observe(sent_bytes as f64);
        let status = IntLabel::new(i32::from(status));
        let labels = [app_id, method, &path, status.as_str()];
        http.client_completed_count.with_label_values(&labels).inc();
        http.client_roundtrip_latency
            .with_label_values(&labels)
            .observe(whole_millis(elapsed));
        http.client_received_bytes
            .with_label_values(&[app_id])
            .observe(received_bytes as f64);
    }

    /// Records an HTTP health probe of the app and its status (500 when it failed without a
    /// response).
    pub fn record_http_health_probe(&self, status: u16, elapsed: Duration) {
        let Some(families) = self.families() else {
            return;
        };
        let status = IntLabel::new(i32::from(status));
        let labels = [families.app_id.as_str(), status.as_str()];
        families
            .http
            .health_probe_completed_count
            .with_label_values(&labels)
            .inc();
        families
            .http
            .health_probe_roundtrip_latency
            .with_label_values(&labels)
            .observe(whole_millis(elapsed));
    }
}

//! The Prometheus registry every binary records into, and the HTTP server that exposes it.
//!
//! Metric names are passed in full (for example `dapr_http_server_request_count`): nothing
//! is prefixed, so names stay exactly upstream's. As upstream's exporter does, the server
//! answers on every path (so both `/` and `/metrics` work) on port 9090 by default.

use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use prometheus::{Encoder, TextEncoder};
use tokio::net::TcpListener;

use crate::shutdown::ShutdownSignal;

/// Upstream's default `--metrics-port`.
pub const DEFAULT_METRICS_PORT: u16 = 9090;

/// Upstream's default `--metrics-listen-address`.
pub const DEFAULT_METRICS_LISTEN_ADDRESS: &str = "0.0.0.0";

/// The `Content-Type` of the exposition: Prometheus text format 0.0.4 in UTF-8.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A shared Prometheus registry; clones record into the same metrics.
#[derive(Debug, Clone, Default)]
pub struct MetricsRegistry {
    registry: prometheus::Registry,
}

impl MetricsRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        MetricsRegistry::default()
    }

    /// The underlying registry, for registering collectors directly.
    pub fn registry(&self) -> &prometheus::Registry {
        &self.registry
    }

    /// Registers a metric (counters, gauges, histograms and their vectors are cheap
    /// clones, so keep one and register a clone). Errors on a duplicate name or an
    /// inconsistent description.
    pub fn register<C>(&self, collector: C) -> Result<(), prometheus::Error>
    where
        C: prometheus::core::Collector + 'static,
    {
        self.registry.register(Box::new(collector))
    }

    /// Every registered metric in Prometheus text format. A metric family that fails to
    /// encode is left out (and logged) so the rest is still exported.
    pub fn encode_text(&self) -> String {
        let encoder = TextEncoder::new();
        let mut text = String::new();
        for family in self.registry.gather() {
            let mut encoded = Vec::new();
            match encoder.encode(std::slice::from_ref(&family), &mut encoded) {
                Ok(()) => text.push_str(&String::from_utf8_lossy(&encoded)),
                Err(error) => tracing::warn!(
                    metric = family.name(),
                    "failed to encode metric family: {error}"
                ),
            }
        }
        text
    }
}

/// A router answering `GET` on every path with the registry in text format.
pub fn router(registry: MetricsRegistry) -> axum::Router {
    let exposition = axum::routing::get(move || {
        let registry = registry.clone();
        async move {
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, TEXT_CONTENT_TYPE)],
                registry.encode_text(),
            )
                .into_response()
        }
    });
    axum::Router::new().fallback_service(exposition)
}

/// Serves the registry on `listener` (`GET /metrics`, `GET /` and any other path) until
/// `shutdown` resolves, then returns once in-flight requests finished.
pub async fn serve(
    listener: TcpListener,
    registry: MetricsRegistry,
    shutdown: ShutdownSignal,
) -> std::io::Result<()> {
    if let Ok(address) = listener.local_addr() {
        tracing::info!("metrics server started on {address}/");
    }
    crate::http_server::serve_router(listener, router(registry), shutdown).await
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use prometheus::{IntCounter, IntCounterVec, Opts};

    use super::*;
    use crate::shutdown::Shutdown;
    use crate::test_http::request;

    #[test]
    fn encodes_registered_metrics_with_their_full_names() {
        let registry = MetricsRegistry::new();
        let requests = IntCounterVec::new(
            Opts::new("dapr_http_server_request_count", "Count of HTTP requests"),
            &["app_id", "method"],
        )
        .unwrap();
        registry.register(requests.clone()).unwrap();
        requests.with_label_values(&["myapp", "GET"]).inc_by(3);

        let text = registry.encode_text();
        assert!(
            text.contains("# TYPE dapr_http_server_request_count counter"),
            "{text}"
        );
        assert!(
            text.contains("dapr_http_server_request_count{app_id=\"myapp\",method=\"GET\"} 3"),
            "{text}"
        );

        let duplicate = IntCounter::new("dapr_http_server_request_count", "again").unwrap();
        assert!(registry.register(duplicate).is_err());
    }

    #[tokio::test]
    async fn serves_metrics_over_http_until_shutdown() {
        let registry = MetricsRegistry::new();
        let counter = IntCounter::new("dapr_test_served_total", "A test counter").unwrap();
        registry.register(counter.clone()).unwrap();
        counter.inc_by(42);

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let shutdown = Shutdown::new();
        let server = tokio::spawn(serve(listener, registry.clone(), shutdown.signal()));

        for path in ["/metrics", "/"] {
            let response = request(address, "GET", path).await;
            assert_eq!(response.status, 200, "GET {path}");
            assert!(
                response
                    .headers
                    .contains("content-type: text/plain; version=0.0.4"),
                "{}",
                response.headers
            );
            assert!(
                response.body.contains("dapr_test_served_total 42"),
                "{}",
                response.body
            );
        }

        counter.inc();
        let response = request(address, "GET", "/metrics").await;
        assert!(response.body.contains("dapr_test_served_total 43"));

        let response = request(address, "POST", "/metrics").await;
        assert_eq!(response.status, 405);

        shutdown.trigger();
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("server stops after shutdown")
            .unwrap()
            .unwrap();
        assert!(tokio::net::TcpStream::connect(address).await.is_err());
    }
}

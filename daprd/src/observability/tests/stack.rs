//! The layers composed the way the servers use them: tracing outermost, then metrics,
//! then API logging.

use axum::Router;
use axum::routing::get;
use dapr_kit::metrics::MetricsRegistry;
use dapr_resources::configuration::TracingSpec;
use tower::ServiceBuilder;

use super::{
    capture_logs, echo_client, eventually, http_call, invoke_request, serve_echo_app, serve_router,
};
use crate::observability::api_log::{GrpcApiLogLayer, HttpApiLogLayer, HttpApiLogSettings};
use crate::observability::metrics::{
    GrpcServerMetricsLayer, HttpServerMetricsLayer, MetricsSettings, SidecarMetrics,
};
use crate::observability::trace::{
    GRPC_TRACE_BIN, GrpcServerTraceLayer, HttpServerTraceLayer, TRACEPARENT, Tracing,
};

fn pipeline() -> (MetricsRegistry, SidecarMetrics, Tracing) {
    let registry = MetricsRegistry::new();
    let metrics =
        SidecarMetrics::register(&registry, &MetricsSettings::new("myapp", "default")).unwrap();
    let spec = TracingSpec {
        sampling_rate: "1".to_string(),
        ..TracingSpec::default()
    };
    (
        registry,
        metrics,
        Tracing::start("myapp", Some(&spec)).unwrap(),
    )
}

#[tokio::test]
async fn the_http_stack_traces_meters_and_logs_each_call() {
    let (logs, _guard) = capture_logs();
    let (registry, metrics, tracing) = pipeline();
    let router = Router::new()
        .route("/v1.0/metadata", get(|| async { "{}" }))
        .layer(
            ServiceBuilder::new()
                .layer(HttpServerTraceLayer::new(tracing))
                .layer(HttpServerMetricsLayer::new(metrics))
                .layer(HttpApiLogLayer::new(HttpApiLogSettings::default())),
        );
    let address = serve_router(router).await;

    let response = http_call(address, "GET", "/v1.0/metadata", &[], "").await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key(TRACEPARENT));
    eventually("the call metered and logged", || {
        let metered = registry.encode_text().contains(
            r#"dapr_http_server_request_count{app_id="myapp",method="GET",path="/v1.0/metadata",status="200"} 1"#,
        );
        let logged = logs.lines_with_message("HTTP API Called").len() == 1;
        async move { metered && logged }
    })
    .await;
}

#[tokio::test]
async fn the_grpc_stack_traces_meters_and_logs_each_call() {
    let (logs, _guard) = capture_logs();
    let (registry, metrics, tracing) = pipeline();
    let address = serve_echo_app!(
        ServiceBuilder::new()
            .layer(GrpcServerTraceLayer::new(tracing))
            .layer(GrpcServerMetricsLayer::new(metrics))
            .layer(GrpcApiLogLayer::new())
    );
    let mut client = echo_client(address).await;

    let response = client
        .on_invoke(invoke_request("echo", b"x"))
        .await
        .unwrap();
    assert!(response.metadata().get_bin(GRPC_TRACE_BIN).is_some());
    eventually("the call metered and logged", || {
        let metered = registry.encode_text().contains(
            r#"dapr_grpc_io_server_completed_rpcs{app_id="myapp",grpc_server_method="/dapr.proto.runtime.v1.AppCallback/OnInvoke",grpc_server_status="OK"} 1"#,
        );
        let logged = logs.lines_with_message("gRPC API Called").len() == 1;
        async move { metered && logged }
    })
    .await;
}

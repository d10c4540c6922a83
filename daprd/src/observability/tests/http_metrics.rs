//! `HttpServerMetricsLayer` on a real axum server, and the recording helpers the rest of
//! the sidecar calls.

use std::time::Duration;

use axum::Router;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::{get, post};
use dapr_kit::metrics::MetricsRegistry;
use http::Method;

use super::{eventually, http_call, serve_router};
use crate::observability::metrics::{
    CircuitBreakerState, HttpMetricsSettings, HttpServerMetricsLayer, InvocationKind,
    MetricsSettings, PolicyFlowDirection, PolicyRef, PolicyType, SidecarMetrics, app_target,
};

fn api() -> Router {
    Router::new()
        .route("/v1.0/state/{store}/{key}", get(|| async { "hello" }))
        .route(
            "/v1.0/invoke/{app}/method/{*method}",
            post(
                |Path((_, _)): Path<(String, String)>, body: String| async move {
                    (StatusCode::CREATED, body)
                },
            ),
        )
        .fallback(|| async { (StatusCode::NOT_FOUND, "nope") })
}

async fn metered_api(settings: MetricsSettings) -> (MetricsRegistry, std::net::SocketAddr) {
    let registry = MetricsRegistry::new();
    let metrics = SidecarMetrics::register(&registry, &settings).unwrap();
    let address = serve_router(api().layer(HttpServerMetricsLayer::new(metrics))).await;
    (registry, address)
}

#[tokio::test]
async fn records_requests_with_upstreams_legacy_labels() {
    let (registry, address) = metered_api(MetricsSettings::new("myapp", "default")).await;

    for key in ["k1", "k2"] {
        let response =
            http_call(address, "GET", &format!("/v1.0/state/store/{key}"), &[], "").await;
        assert_eq!(response.status(), 200);
    }
    let response = http_call(
        address,
        "POST",
        "/v1.0/invoke/app/method/orders",
        &[],
        "12345678",
    )
    .await;
    assert_eq!(response.status(), 201);
    let response = http_call(address, "GET", "/missing", &[], "").await;
    assert_eq!(response.status(), 404);

    let expected = [
        r#"dapr_http_server_request_count{app_id="myapp",method="GET",path="/v1.0/state/store",status="200"} 2"#,
        r#"dapr_http_server_request_count{app_id="myapp",method="POST",path="/v1.0/invoke/app/method/orders",status="201"} 1"#,
        r#"dapr_http_server_request_count{app_id="myapp",method="GET",path="/missing",status="404"} 1"#,
        r#"dapr_http_server_response_count{app_id="myapp",method="GET",path="/v1.0/state/store",status="200"} 2"#,
        r#"dapr_http_server_latency_count{app_id="myapp",method="GET",path="/v1.0/state/store",status="200"} 2"#,
        r#"dapr_http_server_latency_bucket{app_id="myapp",method="GET",path="/v1.0/state/store",status="200",le="100000"} 2"#,
        r#"dapr_http_server_request_bytes_count{app_id="myapp"} 4"#,
        r#"dapr_http_server_request_bytes_sum{app_id="myapp"} 8"#,
        r#"dapr_http_server_request_bytes_bucket{app_id="myapp",le="1024"} 4"#,
        r#"dapr_http_server_response_bytes_sum{app_id="myapp"} 22"#,
        "# TYPE dapr_http_server_request_count counter",
        "# TYPE dapr_http_server_latency histogram",
    ];
    eventually("all four requests recorded", || {
        let text = registry.encode_text();
        async move { text.contains(r#"dapr_http_server_response_bytes_count{app_id="myapp"} 4"#) }
    })
    .await;
    let text = registry.encode_text();
    for line in expected {
        assert!(text.contains(line), "missing {line}\n{text}");
    }
    // Upstream's latency buckets, in milliseconds.
    for bound in ["1", "2", "13", "650", "5000", "100000"] {
        let bucket = format!(
            r#"dapr_http_server_latency_bucket{{app_id="myapp",method="GET",path="/v1.0/state/store",status="200",le="{bound}"}}"#
        );
        assert!(text.contains(&bucket), "missing {bucket}");
    }
}

#[tokio::test]
async fn low_cardinality_mode_labels_only_matched_patterns() {
    let mut settings = MetricsSettings::new("myapp", "default");
    settings.http = HttpMetricsSettings {
        increased_cardinality: false,
        path_matching: vec!["/orders/{id}".to_string()],
        exclude_verbs: false,
    };
    let (registry, address) = metered_api(settings).await;

    http_call(
        address,
        "POST",
        "/v1.0/invoke/shop/method/orders/7",
        &[],
        "x",
    )
    .await;
    http_call(
        address,
        "POST",
        "/v1.0/invoke/shop/method/orders/8",
        &[],
        "x",
    )
    .await;
    http_call(address, "GET", "/v1.0/state/store/secret-key", &[], "").await;

    let matched = r#"dapr_http_server_request_count{app_id="myapp",method="POST",path="/v1.0/invoke/{app_id}/method/orders/{id}",status="201"} 2"#;
    let unmatched =
        r#"dapr_http_server_request_count{app_id="myapp",method="GET",path="",status="200"} 1"#;
    eventually("both series", || {
        let text = registry.encode_text();
        async move { text.contains(matched) && text.contains(unmatched) }
    })
    .await;
    let text = registry.encode_text();
    assert!(!text.contains("secret-key"), "{text}");
    assert!(!text.contains("dapr_http_server_response_count"), "{text}");
}

#[test]
fn helpers_record_client_invocation_and_runtime_metrics() {
    let registry = MetricsRegistry::new();
    let metrics =
        SidecarMetrics::register(&registry, &MetricsSettings::new("myapp", "prod")).unwrap();

    metrics.record_http_client(
        &Method::POST,
        "orders",
        200,
        10,
        20,
        Duration::from_millis(3),
    );
    metrics.record_http_health_probe(503, Duration::from_millis(1));
    metrics.record_grpc_client("/pkg.Service/Method", 5, 7, 9, Duration::from_millis(2));
    metrics.record_grpc_client(
        crate::observability::metrics::APP_HEALTH_CHECK_METHOD,
        0,
        0,
        0,
        Duration::from_millis(1),
    );
    metrics.record_invocation_request_sent("target", InvocationKind::Unary);
    metrics.record_invocation_request_received("caller");
    metrics.record_invocation_response_sent("caller", 200);
    metrics.record_invocation_response_received(
        "target",
        500,
        InvocationKind::Unary,
        Duration::from_micros(2500),
    );
    metrics.record_invocation_response_received(
        "target",
        14,
        InvocationKind::Streaming,
        Duration::ZERO,
    );
    metrics.record_component_loaded();
    metrics.record_component_init_failed("state.redis", "init", "store");
    metrics.record_component_operation(
        crate::observability::metrics::OperationKind::State,
        "store",
        crate::observability::metrics::operation::GET,
        true,
        Duration::from_millis(4),
    );
    metrics.record_component_operation(
        crate::observability::metrics::OperationKind::State,
        "store",
        crate::observability::metrics::operation::SET,
        false,
        Duration::ZERO,
    );
    let target = app_target("target");
    metrics.record_resiliency_executed(
        PolicyRef {
            resiliency: "res",
            namespace: "prod",
            policy: PolicyType::CircuitBreaker,
            direction: PolicyFlowDirection::Outbound,
            target: &target,
        },
        Some(CircuitBreakerState::Open),
    );

    let text = registry.encode_text();
    let expected = [
        r#"dapr_http_client_completed_count{app_id="myapp",method="POST",path="/orders",status="200"} 1"#,
        r#"dapr_http_client_sent_bytes_sum{app_id="myapp",method="POST",path="/orders",status=""} 10"#,
        r#"dapr_http_client_received_bytes_sum{app_id="myapp"} 20"#,
        r#"dapr_http_client_roundtrip_latency_sum{app_id="myapp",method="POST",path="/orders",status="200"} 3"#,
        r#"dapr_http_healthprobes_completed_count{app_id="myapp",status="503"} 1"#,
        r#"dapr_grpc_io_client_completed_rpcs{app_id="myapp",grpc_client_method="/pkg.Service/Method",grpc_client_status="NotFound"} 1"#,
        r#"dapr_grpc_io_client_sent_bytes_per_rpc_sum{app_id="myapp",grpc_client_method="/pkg.Service/Method"} 7"#,
        r#"dapr_grpc_io_healthprobes_completed_count{app_id="myapp",grpc_client_status="OK"} 1"#,
        r#"dapr_runtime_service_invocation_req_sent_total{app_id="myapp",dst_app_id="target",type="unary"} 1"#,
        r#"dapr_runtime_service_invocation_req_recv_total{app_id="myapp",src_app_id="caller"} 1"#,
        r#"dapr_runtime_service_invocation_res_sent_total{app_id="myapp",dst_app_id="caller",status="200"} 1"#,
        r#"dapr_runtime_service_invocation_res_recv_total{app_id="myapp",src_app_id="target",status="500",type="unary"} 1"#,
        r#"dapr_runtime_service_invocation_res_recv_total{app_id="myapp",src_app_id="target",status="14",type="streaming"} 1"#,
        r#"dapr_runtime_service_invocation_res_recv_latency_ms_sum{app_id="myapp",src_app_id="target",status="500"} 2.5"#,
        r#"dapr_runtime_component_loaded{app_id="myapp"} 1"#,
        r#"dapr_runtime_component_init_fail_total{app_id="myapp",component="state.redis",componentName="store",reason="init"} 1"#,
        r#"dapr_component_state_count{app_id="myapp",component="store",namespace="prod",operation="get",success="true"} 1"#,
        r#"dapr_component_state_count{app_id="myapp",component="store",namespace="prod",operation="set",success="false"} 1"#,
        r#"dapr_component_state_latencies_sum{app_id="myapp",component="store",namespace="prod",operation="get",success="true"} 4"#,
        r#"dapr_resiliency_count{app_id="myapp",flow_direction="outbound",name="res",namespace="prod",policy="circuitbreaker",status="open",target="app_target"} 1"#,
        r#"dapr_resiliency_cb_state{app_id="myapp",flow_direction="outbound",name="res",namespace="prod",policy="circuitbreaker",status="open",target="app_target"} 1"#,
        r#"dapr_resiliency_cb_state{app_id="myapp",flow_direction="outbound",name="res",namespace="prod",policy="circuitbreaker",status="closed",target="app_target"} 0"#,
    ];
    for line in expected {
        assert!(text.contains(line), "missing {line}\n{text}");
    }
    // A failed state call without measurable time records no latency.
    assert!(!text.contains(r#"dapr_component_state_latencies_count{app_id="myapp",component="store",namespace="prod",operation="set""#));
    // No latency for streaming responses.
    assert!(
        !text.contains(
            r#"res_recv_latency_ms_count{app_id="myapp",src_app_id="target",status="14"}"#
        )
    );

    let disabled = SidecarMetrics::disabled();
    disabled.record_invocation_request_sent("target", InvocationKind::Unary);
    assert!(!disabled.is_enabled());
}

//! Trace context propagation through the HTTP and gRPC trace layers on real servers.

use axum::Router;
use axum::extract::Extension;
use axum::routing::get;
use dapr_resources::configuration::TracingSpec;
use http::HeaderMap;

use super::{echo_client, http_call, invoke_request, serve_echo_app, serve_router};
use crate::observability::trace::{
    GRPC_TRACE_BIN, GrpcServerTraceLayer, HttpServerTraceLayer, ServerSpan, TRACEPARENT,
    TRACESTATE, TraceContext, Tracing, inject_into,
};

const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const UNSAMPLED_PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";

fn tracing_with_rate(rate: &str) -> Tracing {
    let spec = TracingSpec {
        sampling_rate: rate.to_string(),
        ..TracingSpec::default()
    };
    Tracing::start("myapp", Some(&spec)).unwrap()
}

/// Answers with the `traceparent` / `tracestate` an outgoing call would carry.
async fn outgoing_context(span: Option<Extension<ServerSpan>>) -> String {
    let Some(Extension(span)) = span else {
        return "none".to_string();
    };
    let mut headers = HeaderMap::new();
    inject_into(&mut headers, span.context());
    let state = headers
        .get(TRACESTATE)
        .map(|value| value.to_str().unwrap().to_string())
        .unwrap_or_default();
    format!("{} {state}", headers[TRACEPARENT].to_str().unwrap())
}

async fn traced_api(tracing: Tracing) -> std::net::SocketAddr {
    let router = Router::new()
        .route("/v1.0/state/{store}", get(outgoing_context))
        .route("/v1.0/healthz", get(outgoing_context))
        .layer(HttpServerTraceLayer::new(tracing));
    serve_router(router).await
}

fn response_context(response: &http::Response<bytes::Bytes>) -> TraceContext {
    let header = response.headers()[TRACEPARENT].to_str().unwrap();
    TraceContext::from_traceparent(header).unwrap()
}

#[tokio::test]
async fn http_calls_continue_the_callers_trace() {
    let address = traced_api(tracing_with_rate("1")).await;
    let parent = TraceContext::from_traceparent(PARENT).unwrap();

    let response = http_call(
        address,
        "GET",
        "/v1.0/state/store",
        &[(TRACEPARENT, PARENT), (TRACESTATE, "vendor=1, other=two")],
        "",
    )
    .await;
    assert_eq!(response.status(), 200);
    let child = response_context(&response);
    assert_eq!(child.trace_id(), parent.trace_id());
    assert_ne!(child.span_id(), parent.span_id());
    assert!(child.is_sampled());
    assert_eq!(response.headers()[TRACESTATE], "vendor=1,other=two");

    // The handler propagates exactly the server span's context.
    let outgoing = String::from_utf8(response.body().to_vec()).unwrap();
    assert_eq!(
        outgoing,
        format!("{} vendor=1,other=two", child.traceparent())
    );
}

#[tokio::test]
async fn http_calls_without_context_start_a_trace_and_unsampled_parents_are_followed() {
    let address = traced_api(tracing_with_rate("1")).await;

    let fresh = http_call(address, "GET", "/v1.0/state/store", &[], "").await;
    let started = response_context(&fresh);
    assert!(started.is_sampled());
    assert!(!fresh.headers().contains_key(TRACESTATE));

    let garbage = http_call(
        address,
        "GET",
        "/v1.0/state/store",
        &[(TRACEPARENT, "00-zz")],
        "",
    )
    .await;
    assert!(response_context(&garbage).is_sampled());
    assert_ne!(response_context(&garbage).trace_id(), started.trace_id());

    let unsampled = http_call(
        address,
        "GET",
        "/v1.0/state/store",
        &[(TRACEPARENT, UNSAMPLED_PARENT)],
        "",
    )
    .await;
    let child = response_context(&unsampled);
    assert!(!child.is_sampled());
    assert_eq!(child.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");

    let health = http_call(
        address,
        "GET",
        "/v1.0/healthz",
        &[(TRACEPARENT, PARENT)],
        "",
    )
    .await;
    assert!(!health.headers().contains_key(TRACEPARENT));
    assert_eq!(health.body().as_ref(), b"none");
}

#[tokio::test]
async fn baggage_is_echoed_or_refused() {
    let address = traced_api(tracing_with_rate("1")).await;

    let valid = http_call(
        address,
        "GET",
        "/v1.0/state/store",
        &[("baggage", "user=alice;ttl=1")],
        "",
    )
    .await;
    assert_eq!(valid.status(), 200);
    assert_eq!(valid.headers()["baggage"], "user=alice;ttl=1");

    let invalid = http_call(
        address,
        "GET",
        "/v1.0/state/store",
        &[("baggage", "not baggage")],
        "",
    )
    .await;
    assert_eq!(invalid.status(), 400);
    assert!(String::from_utf8_lossy(invalid.body()).starts_with("invalid baggage header"));
}

#[tokio::test]
async fn a_zero_sampling_rate_turns_tracing_off() {
    let tracing = tracing_with_rate("0");
    assert!(!tracing.is_enabled());
    let address = traced_api(tracing).await;
    let response = http_call(
        address,
        "GET",
        "/v1.0/state/store",
        &[(TRACEPARENT, PARENT)],
        "",
    )
    .await;
    assert!(!response.headers().contains_key(TRACEPARENT));
    assert_eq!(response.body().as_ref(), b"none");
}

fn binary_context(metadata: &tonic::metadata::MetadataMap) -> TraceContext {
    let binary = metadata
        .get_bin(GRPC_TRACE_BIN)
        .unwrap()
        .to_bytes()
        .unwrap();
    TraceContext::from_binary(&binary).unwrap()
}

#[tokio::test]
async fn grpc_calls_continue_grpc_trace_bin_and_traceparent() {
    let address = serve_echo_app!(GrpcServerTraceLayer::new(tracing_with_rate("1")));
    let mut client = echo_client(address).await;
    let parent = TraceContext::from_traceparent(PARENT).unwrap();

    // grpc-trace-bin, binary metadata.
    let mut request = tonic::Request::new(invoke_request("echo", b"x"));
    request.metadata_mut().insert_bin(
        GRPC_TRACE_BIN,
        tonic::metadata::MetadataValue::from_bytes(&parent.to_binary()),
    );
    let response = client.on_invoke(request).await.unwrap();
    let child = binary_context(response.metadata());
    assert_eq!(child.trace_id(), parent.trace_id());
    assert_ne!(child.span_id(), parent.span_id());
    assert!(child.is_sampled());
    // The handler saw the same span context the response carries.
    assert_eq!(response.get_ref().content_type, child.traceparent());

    // traceparent only, as OpenTelemetry gRPC clients send.
    let mut request = tonic::Request::new(invoke_request("echo", b"x"));
    request
        .metadata_mut()
        .insert(TRACEPARENT, UNSAMPLED_PARENT.parse().unwrap());
    let response = client.on_invoke(request).await.unwrap();
    let child = binary_context(response.metadata());
    assert_eq!(child.trace_id(), parent.trace_id());
    assert!(!child.is_sampled());

    // Invalid binary context: a new trace.
    let mut request = tonic::Request::new(invoke_request("echo", b"x"));
    request.metadata_mut().insert_bin(
        GRPC_TRACE_BIN,
        tonic::metadata::MetadataValue::from_bytes(b"\x01garbage"),
    );
    let response = client.on_invoke(request).await.unwrap();
    assert_ne!(
        binary_context(response.metadata()).trace_id(),
        parent.trace_id()
    );

    // Errors still carry the context back.
    let error = client
        .on_invoke(invoke_request("missing", b""))
        .await
        .unwrap_err();
    assert_eq!(error.code(), tonic::Code::NotFound);
    assert!(error.metadata().get_bin(GRPC_TRACE_BIN).is_some());

    // Malformed baggage is refused.
    let mut request = tonic::Request::new(invoke_request("echo", b"x"));
    request
        .metadata_mut()
        .insert("baggage", "bad baggage".parse().unwrap());
    let error = client.on_invoke(request).await.unwrap_err();
    assert_eq!(error.code(), tonic::Code::InvalidArgument);
    assert!(
        error.message().starts_with("invalid baggage header"),
        "{}",
        error.message()
    );
}

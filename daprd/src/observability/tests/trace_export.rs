//! Span export to real collectors: Zipkin v2 JSON and OTLP over HTTP/protobuf and gRPC.

use std::time::Duration;

use axum::Router;
use axum::extract::Extension;
use axum::http::StatusCode;
use axum::routing::{get, post};
use dapr_resources::configuration::{OtelSpec, TracingSpec, ZipkinSpec};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;

use super::collector::{grpc_collector, grpcs_collector, http_collector, https_collector};
use super::{echo_client, http_call, invoke_request, serve_echo_app, serve_router};
use crate::observability::trace::{
    GRPC_TRACE_BIN, GrpcServerTraceLayer, HttpServerTraceLayer, ServerSpan, TRACEPARENT,
    TraceContext, Tracing, TracingError,
};
use crate::test_support;

const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const UNSAMPLED_PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";

fn spec(rate: &str, zipkin: Option<String>, otel: Option<(&str, String)>) -> TracingSpec {
    TracingSpec {
        sampling_rate: rate.to_string(),
        stdout: None,
        zipkin: zipkin.map(|endpoint_address| ZipkinSpec { endpoint_address }),
        otel: otel.map(|(protocol, endpoint_address)| OtelSpec {
            protocol: protocol.to_string(),
            endpoint_address,
            is_secure: Some(false),
            ..OtelSpec::default()
        }),
    }
}

/// An API whose invoke route names its span the way upstream names invocations.
async fn traced_api(tracing: Tracing) -> std::net::SocketAddr {
    let router = Router::new()
        .route(
            "/v1.0/invoke/target/method/orders",
            post(|Extension(span): Extension<ServerSpan>| async move {
                span.set_name("CallLocal/target/orders");
                span.set_attribute("net.peer.name", "target");
                "ok"
            }),
        )
        .route(
            "/v1.0/state/broken",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
        )
        .layer(HttpServerTraceLayer::new(tracing));
    serve_router(router).await
}

#[tokio::test]
async fn http_spans_reach_zipkin_and_otlp_http_collectors() {
    let (collector, received) = http_collector().await;
    let tracing = Tracing::start(
        "myapp",
        Some(&spec(
            "1",
            Some(format!("http://{collector}/api/v2/spans")),
            Some(("http", collector.to_string())),
        )),
    )
    .unwrap();
    let address = traced_api(tracing.clone()).await;
    let parent = TraceContext::from_traceparent(PARENT).unwrap();

    let response = http_call(
        address,
        "POST",
        "/v1.0/invoke/target/method/orders",
        &[(TRACEPARENT, PARENT)],
        "",
    )
    .await;
    assert_eq!(response.status(), 200);
    let server_span =
        TraceContext::from_traceparent(response.headers()[TRACEPARENT].to_str().unwrap()).unwrap();
    let broken = http_call(address, "GET", "/v1.0/state/broken", &[], "").await;
    assert_eq!(broken.status(), 500);
    let broken_span =
        TraceContext::from_traceparent(broken.headers()[TRACEPARENT].to_str().unwrap()).unwrap();

    tracing.flush().await;

    let zipkin = received.zipkin();
    assert_eq!(zipkin.len(), 2, "{zipkin:#?}");
    let invoke = zipkin
        .iter()
        .find(|span| span["id"] == server_span.span_id_hex())
        .expect("the invoke span");
    assert_eq!(invoke["traceId"], parent.trace_id_hex());
    assert_eq!(invoke["parentId"], parent.span_id_hex());
    assert_eq!(invoke["name"], "CallLocal/target/orders");
    assert_eq!(invoke["kind"], "CLIENT");
    assert_eq!(invoke["localEndpoint"]["serviceName"], "myapp");
    assert_eq!(
        invoke["tags"]["dapr.api"],
        "POST /v1.0/invoke/target/method/orders"
    );
    assert_eq!(invoke["tags"]["dapr.protocol"], "http");
    assert_eq!(invoke["tags"]["dapr.status_code"], "200");
    assert_eq!(invoke["tags"]["net.peer.name"], "target");
    assert_eq!(invoke["tags"]["server.address"], "127.0.0.1");
    assert!(invoke["tags"].get("error").is_none());
    assert!(invoke["timestamp"].as_u64().unwrap() > 0);

    let failed = zipkin
        .iter()
        .find(|span| span["id"] == broken_span.span_id_hex())
        .expect("the failed span");
    assert_eq!(failed["traceId"], broken_span.trace_id_hex());
    assert!(failed.get("parentId").is_none());
    assert_eq!(failed["name"], "/v1.0/state/broken");
    assert_eq!(failed["tags"]["error"], "Code(500): Internal Server Error");
    assert_eq!(failed["tags"]["otel.status_code"], "ERROR");

    let otlp = received.otlp();
    assert_eq!(otlp.len(), 2, "{otlp:#?}");
    let invoke = otlp
        .iter()
        .find(|span| span.span.span_id == server_span.span_id())
        .expect("the invoke span over OTLP");
    assert_eq!(invoke.span.trace_id, parent.trace_id());
    assert_eq!(invoke.span.parent_span_id, parent.span_id());
    assert_eq!(invoke.span.name, "CallLocal/target/orders");
    assert_eq!(invoke.span.kind, SpanKind::Client as i32);
    assert_eq!(invoke.service_name, "myapp");

    let content_types = received.content_types();
    assert!(
        content_types.iter().any(|c| c == "application/json"),
        "{content_types:?}"
    );
    assert!(
        content_types.iter().any(|c| c == "application/x-protobuf"),
        "{content_types:?}"
    );
    tracing.shutdown().await;
}

#[tokio::test]
async fn grpc_spans_reach_an_otlp_grpc_collector() {
    let (collector, received) = grpc_collector().await;
    let tracing = Tracing::start(
        "myapp",
        Some(&spec("1", None, Some(("grpc", collector.to_string())))),
    )
    .unwrap();
    let address = serve_echo_app!(GrpcServerTraceLayer::new(tracing.clone()));
    let mut client = echo_client(address).await;
    let parent = TraceContext::from_traceparent(PARENT).unwrap();

    let mut request = tonic::Request::new(invoke_request("echo", b"payload"));
    request.metadata_mut().insert_bin(
        GRPC_TRACE_BIN,
        tonic::metadata::MetadataValue::from_bytes(&parent.to_binary()),
    );
    let response = client.on_invoke(request).await.unwrap();
    let server_span = TraceContext::from_traceparent(&response.get_ref().content_type).unwrap();
    let error = client
        .on_invoke(invoke_request("missing", b""))
        .await
        .unwrap_err();
    assert_eq!(error.code(), tonic::Code::NotFound);

    // The span ends when the response body has been sent, just after the client has it.
    super::eventually("both spans exported", || {
        let tracing = tracing.clone();
        let received = received.clone();
        async move {
            tracing.flush().await;
            received.otlp().len() == 2
        }
    })
    .await;

    let spans = received.otlp();
    let echo = spans
        .iter()
        .find(|span| span.span.span_id == server_span.span_id())
        .expect("the echo span");
    assert_eq!(echo.span.trace_id, parent.trace_id());
    assert_eq!(echo.span.parent_span_id, parent.span_id());
    assert_eq!(echo.span.name, "CallLocal/app/echo");
    assert_eq!(echo.span.kind, SpanKind::Client as i32);
    assert_eq!(echo.service_name, "myapp");
    let attribute = |span: &opentelemetry_proto::tonic::trace::v1::Span, key: &str| {
        span.attributes
            .iter()
            .find(|attribute| attribute.key == key)
            .and_then(|attribute| attribute.value.clone())
            .map(|value| format!("{:?}", value.value.unwrap()))
    };
    assert_eq!(
        attribute(&echo.span, "dapr.api").unwrap(),
        r#"StringValue("/dapr.proto.runtime.v1.AppCallback/OnInvoke")"#
    );
    assert_eq!(
        attribute(&echo.span, "dapr.invoke_method").unwrap(),
        r#"StringValue("echo")"#
    );

    let failed = spans
        .iter()
        .find(|span| span.span.span_id != server_span.span_id())
        .expect("the failed span");
    assert_eq!(
        failed.span.name,
        "/dapr.proto.runtime.v1.AppCallback/OnInvoke"
    );
    let status = failed.span.status.clone().unwrap();
    assert_eq!(status.message, "no method missing");
    tracing.shutdown().await;
}

#[tokio::test]
async fn sampling_decides_what_is_exported() {
    let (collector, received) = http_collector().await;
    let zipkin = Some(format!("http://{collector}/api/v2/spans"));

    // Rate 0: tracing is off, nothing is exported.
    let off = Tracing::start("myapp", Some(&spec("0", zipkin.clone(), None))).unwrap();
    let address = traced_api(off.clone()).await;
    for _ in 0..3 {
        http_call(
            address,
            "GET",
            "/v1.0/state/broken",
            &[(TRACEPARENT, PARENT)],
            "",
        )
        .await;
    }
    off.flush().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(received.zipkin().is_empty());

    // Rate 1: every new trace is exported; an unsampled parent still wins.
    let on = Tracing::start("myapp", Some(&spec("1", zipkin, None))).unwrap();
    let address = traced_api(on.clone()).await;
    for _ in 0..3 {
        http_call(address, "GET", "/v1.0/state/broken", &[], "").await;
    }
    http_call(
        address,
        "GET",
        "/v1.0/state/broken",
        &[(TRACEPARENT, UNSAMPLED_PARENT)],
        "",
    )
    .await;
    on.flush().await;
    let exported = received.zipkin();
    assert_eq!(exported.len(), 3, "{exported:#?}");
    assert!(
        exported
            .iter()
            .all(|span| span["traceId"] != "4bf92f3577b34da6a3ce929d0e0e4736")
    );
    on.shutdown().await;
}

#[tokio::test]
async fn unsupported_exporter_settings_are_errors() {
    let bad_protocol = spec("1", None, Some(("udp", "collector:4317".to_string())));
    let error = Tracing::start("myapp", Some(&bad_protocol)).unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid protocol udp provided for Otel endpoint"
    );
    let bad_timeout = {
        let mut spec = spec("1", None, Some(("grpc", "collector:4317".to_string())));
        spec.otel.as_mut().unwrap().timeout = Some("soon".into());
        spec
    };
    assert!(matches!(
        Tracing::start("myapp", Some(&bad_timeout)),
        Err(TracingError::Timeout { .. })
    ));
    // No tracing section at all: upstream's default 1/10,000 rate, tracing on.
    assert!(Tracing::start("myapp", None).unwrap().is_enabled());
}

/// Serves a traced API, makes one call to it (continuing a sampled trace) and flushes
/// the exporters.
async fn export_one_call(tracing: &Tracing) {
    let address = traced_api(tracing.clone()).await;
    let response = http_call(
        address,
        "POST",
        "/v1.0/invoke/target/method/orders",
        &[(TRACEPARENT, PARENT)],
        "",
    )
    .await;
    assert_eq!(response.status(), 200);
    tracing.flush().await;
}

/// Exports one call's span through `tracing` and waits until `count` reports it arrived,
/// or returns false after a few seconds.
async fn one_span_arrives(tracing: &Tracing, count: impl Fn() -> usize) -> bool {
    export_one_call(tracing).await;
    for _ in 0..50 {
        if count() > 0 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        tracing.flush().await;
    }
    false
}

#[tokio::test]
async fn secure_collectors_are_reached_over_verified_tls() {
    let trusted = || test_support::roots_of(test_support::TEST_CA);
    let (https, received_https) = https_collector().await;
    let (grpcs, received_grpcs) = grpcs_collector().await;

    // isSecure unset means TLS, as upstream; the address has no scheme.
    let mut otel_grpc = spec("1", None, Some(("grpc", grpcs.to_string())));
    otel_grpc.otel.as_mut().unwrap().is_secure = None;
    let tracing = Tracing::start_trusting("myapp", Some(&otel_grpc), &trusted).unwrap();
    assert!(one_span_arrives(&tracing, || received_grpcs.otlp().len()).await);
    tracing.shutdown().await;

    let mut otel_http = spec("1", None, Some(("http", https.to_string())));
    otel_http.otel.as_mut().unwrap().is_secure = Some(true);
    let tracing = Tracing::start_trusting("myapp", Some(&otel_http), &trusted).unwrap();
    assert!(one_span_arrives(&tracing, || received_https.otlp().len()).await);
    tracing.shutdown().await;

    let zipkin = spec("1", Some(format!("https://{https}/api/v2/spans")), None);
    let tracing = Tracing::start_trusting("myapp", Some(&zipkin), &trusted).unwrap();
    assert!(one_span_arrives(&tracing, || received_https.zipkin().len()).await);
    tracing.shutdown().await;
}

#[tokio::test]
async fn collectors_with_untrusted_certificates_get_nothing() {
    let untrusted = rustls::RootCertStore::empty;
    let (https, received) = https_collector().await;
    let zipkin = spec("1", Some(format!("https://{https}/api/v2/spans")), None);
    let tracing = Tracing::start_trusting("myapp", Some(&zipkin), &untrusted).unwrap();
    export_one_call(&tracing).await;
    assert!(received.zipkin().is_empty());

    let (grpcs, received) = grpcs_collector().await;
    let otel = spec("1", None, Some(("grpc", format!("https://{grpcs}"))));
    let tracing = Tracing::start_trusting("myapp", Some(&otel), &untrusted).unwrap();
    export_one_call(&tracing).await;
    assert!(received.otlp().is_empty());
    tracing.shutdown().await;
}

#[tokio::test]
async fn the_stdout_exporter_logs_each_span() {
    let (logs, _guard) = super::capture_logs();
    let mut stdout = spec("1", None, None);
    stdout.stdout = Some(true);
    let tracing = Tracing::start("myapp", Some(&stdout)).unwrap();
    let address = traced_api(tracing.clone()).await;

    let response = http_call(
        address,
        "GET",
        "/v1.0/state/broken",
        &[(TRACEPARENT, PARENT)],
        "",
    )
    .await;
    let span =
        TraceContext::from_traceparent(response.headers()[TRACEPARENT].to_str().unwrap()).unwrap();
    tracing.flush().await;

    let lines: Vec<serde_json::Value> = logs
        .lines()
        .into_iter()
        .filter(|line| line["scope"] == "dapr.runtime.trace")
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let message = lines[0]["msg"].as_str().unwrap();
    let expected = format!(
        "[/v1.0/state/broken] Trace: 4bf92f3577b34da6a3ce929d0e0e4736 Span: 00f067aa0ba902b7/{} Time: [",
        span.span_id_hex()
    );
    assert!(message.starts_with(&expected), "{message}");
    assert_eq!(lines[0]["level"], "info");
}

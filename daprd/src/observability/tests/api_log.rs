//! `--enable-api-logging` lines from real HTTP and gRPC calls, captured through the
//! process's log format.

use axum::Router;
use axum::extract::Extension;
use axum::http::StatusCode;
use axum::routing::get;

use super::{
    capture_logs as capture, echo_client, eventually, http_call, invoke_request, serve_echo_app,
    serve_router,
};
use crate::observability::api_log::{
    EndpointName, GrpcApiLogLayer, HttpApiLogLayer, HttpApiLogSettings,
};

fn api(settings: HttpApiLogSettings) -> Router {
    Router::new()
        .route(
            "/v1.0/state/{store}/{key}",
            get(|| async { (Extension(EndpointName::from("GetState")), "value") }),
        )
        .route("/v1.0/healthz", get(|| async { StatusCode::NO_CONTENT }))
        .layer(HttpApiLogLayer::new(settings))
}

#[tokio::test]
async fn http_calls_are_logged_with_upstreams_fields() {
    let (captured, _guard) = capture();
    let address = serve_router(api(HttpApiLogSettings::default())).await;

    http_call(
        address,
        "GET",
        "/v1.0/state/store/key",
        &[("user-agent", "test-agent/1.0")],
        "",
    )
    .await;
    http_call(address, "GET", "/v1.0/healthz", &[], "").await;

    eventually("two lines", || {
        let count = captured.lines_with_message("HTTP API Called").len();
        async move { count == 2 }
    })
    .await;
    let lines = captured.lines_with_message("HTTP API Called");
    let state = &lines[0];
    assert_eq!(state["scope"], "dapr.runtime.http-info");
    assert_eq!(state["level"], "info");
    assert_eq!(state["method"], "GET /v1.0/state/store/key");
    assert_eq!(state["code"], 200);
    assert_eq!(state["size"], 5);
    assert_eq!(state["useragent"], "test-agent/1.0");
    assert!(state["duration"].is_u64(), "{state}");
    assert_eq!(lines[1]["method"], "GET /v1.0/healthz");
    assert_eq!(lines[1]["code"], 204);
}

#[tokio::test]
async fn obfuscated_urls_and_omitted_health_checks() {
    let (captured, _guard) = capture();
    let address = serve_router(api(HttpApiLogSettings {
        obfuscate_urls: true,
        omit_health_checks: true,
    }))
    .await;

    http_call(address, "GET", "/v1.0/healthz", &[], "").await;
    http_call(address, "GET", "/v1.0/state/store/secret-key", &[], "").await;

    eventually("the state line", || {
        let count = captured.lines_with_message("HTTP API Called").len();
        async move { count >= 1 }
    })
    .await;
    let lines = captured.lines_with_message("HTTP API Called");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["method"], "GetState");
    assert!(lines[0].get("useragent").is_none(), "{}", lines[0]);
}

#[tokio::test]
async fn grpc_calls_are_logged_with_their_code() {
    let (captured, _guard) = capture();
    let address = serve_echo_app!(GrpcApiLogLayer::new());
    let mut client = echo_client(address).await;

    client
        .on_invoke(invoke_request("echo", b"x"))
        .await
        .unwrap();
    client
        .on_invoke(invoke_request("missing", b""))
        .await
        .unwrap_err();

    eventually("two lines", || {
        let count = captured.lines_with_message("gRPC API Called").len();
        async move { count == 2 }
    })
    .await;
    let lines = captured.lines_with_message("gRPC API Called");
    for line in &lines {
        assert_eq!(line["scope"], "dapr.runtime.grpc.api-info");
        assert_eq!(
            line["method"],
            "/dapr.proto.runtime.v1.AppCallback/OnInvoke"
        );
        assert!(
            line["useragent"].as_str().unwrap().starts_with("tonic/"),
            "{line}"
        );
        assert!(line["duration"].is_u64());
    }
    let mut codes: Vec<i64> = lines
        .iter()
        .map(|line| line["code"].as_i64().unwrap())
        .collect();
    codes.sort();
    assert_eq!(codes, vec![0, 5]);
}

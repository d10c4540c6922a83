//! `bindings.http` against a real local HTTP server (axum) that records what it receives.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request as AxumRequest, State};
use axum::http::{HeaderMap as AxumHeaders, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::*;

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path_and_query: String,
    headers: AxumHeaders,
    body: Bytes,
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// Answers by path: `/status/N` with status N, `/big` with 10 KiB, `/slow` after two
/// seconds, `/cookies` with a header sent twice; anything else echoes the body with
/// `X-Echo-Method`.
async fn answer(State(log): State<Log>, request: AxumRequest) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let path = parts.uri.path().to_owned();
    log.lock().unwrap().push(Seen {
        method: parts.method.to_string(),
        path_and_query: parts
            .uri
            .path_and_query()
            .map(ToString::to_string)
            .unwrap_or_default(),
        headers: parts.headers.clone(),
        body: body.clone(),
    });
    if let Some(code) = path.strip_prefix("/status/") {
        let status = StatusCode::from_u16(code.parse().unwrap()).unwrap();
        return (status, format!("status {code}")).into_response();
    }
    match path.as_str() {
        "/big" => vec![b'x'; 10 * 1024].into_response(),
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(2)).await;
            "late".into_response()
        }
        "/cookies" => Response::builder()
            .header("set-cookie", "a=1")
            .header("set-cookie", "b=2")
            .header("x-custom-header", "custom")
            .body(Body::from("cookies"))
            .unwrap(),
        _ => Response::builder()
            .header("x-echo-method", parts.method.as_str())
            .header("content-type", "text/plain")
            .body(Body::from(body))
            .unwrap(),
    }
}

async fn server() -> (SocketAddr, Log) {
    let log: Log = Arc::default();
    let app = Router::new().fallback(answer).with_state(log.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (address, log)
}

fn binding(settings: serde_json::Value) -> HttpBinding {
    open(&Properties::from_json(&settings).unwrap()).unwrap()
}

fn request(operation: &str, data: &str, metadata: &[(&str, &str)]) -> InvokeRequest {
    InvokeRequest {
        operation: operation.to_owned(),
        data: Bytes::copy_from_slice(data.as_bytes()),
        metadata: metadata
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect(),
    }
}

fn last(log: &Log) -> Seen {
    log.lock().unwrap().last().cloned().unwrap()
}

#[tokio::test]
async fn get_appends_the_path_and_sends_uppercase_metadata_as_headers() {
    let (address, log) = server().await;
    let binding = binding(json!({ "url": format!("http://{address}/api/") }));
    let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let response = binding
        .invoke(request(
            "get",
            "ignored",
            &[
                ("path", "/items/1?full=true"),
                ("X-Custom", "value"),
                ("lowercase", "not a header"),
                ("Host", "elsewhere.example"),
                ("traceparent", traceparent),
            ],
        ))
        .await
        .unwrap();

    let seen = last(&log);
    assert_eq!(seen.method, "GET");
    assert_eq!(seen.path_and_query, "/api/items/1?full=true");
    assert_eq!(seen.headers["x-custom"], "value");
    assert_eq!(seen.headers["accept"], JSON_UTF8);
    assert_eq!(seen.headers["traceparent"], traceparent);
    assert_eq!(seen.headers["host"], address.to_string());
    assert!(!seen.headers.contains_key("lowercase"));
    assert!(!seen.headers.contains_key("content-type"));
    assert!(seen.body.is_empty());

    assert!(response.data.is_empty());
    assert_eq!(response.content_type, None);
    assert_eq!(response.metadata[STATUS_CODE_METADATA_KEY], "200");
    assert_eq!(response.metadata[STATUS_METADATA_KEY], "200 OK");
    assert_eq!(response.metadata["X-Echo-Method"], "GET");
    assert_eq!(response.metadata["Content-Type"], "text/plain");
    assert_eq!(response.metadata["Content-Length"], "0");
    assert!(response.metadata.contains_key("Date"));
}

#[tokio::test]
async fn create_posts_the_data_with_json_defaults_and_the_security_token() {
    let (address, log) = server().await;
    let binding = binding(json!({
        "url": format!("http://{address}"),
        "securityToken": "s3cret",
        "securityTokenHeader": "X-Token",
    }));
    let response = binding
        .invoke(request("create", r#"{"a":1}"#, &[]))
        .await
        .unwrap();
    let seen = last(&log);
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.path_and_query, "/");
    assert_eq!(seen.body, r#"{"a":1}"#);
    assert_eq!(seen.headers["content-type"], JSON_UTF8);
    assert_eq!(seen.headers["accept"], JSON_UTF8);
    assert_eq!(seen.headers["x-token"], "s3cret");
    assert_eq!(response.data, r#"{"a":1}"#);
    assert_eq!(response.metadata["X-Echo-Method"], "POST");

    // Metadata overrides the defaults.
    binding
        .invoke(request(
            "post",
            "plain",
            &[("Content-Type", "text/plain"), ("Accept", "text/html")],
        ))
        .await
        .unwrap();
    let seen = last(&log);
    assert_eq!(seen.headers["content-type"], "text/plain");
    assert_eq!(seen.headers["accept"], "text/html");
    assert_eq!(seen.body, "plain");
}

#[tokio::test]
async fn every_method_reaches_the_server_and_only_some_carry_the_body() {
    let (address, log) = server().await;
    let binding = binding(json!({ "url": format!("http://{address}/m") }));
    for (operation, method, carries_body) in [
        ("get", "GET", false),
        ("head", "HEAD", false),
        ("post", "POST", true),
        ("put", "PUT", true),
        ("patch", "PATCH", true),
        ("delete", "DELETE", false),
        ("options", "OPTIONS", false),
        ("trace", "TRACE", false),
        ("PUT", "PUT", true),
    ] {
        let response = binding
            .invoke(request(operation, "payload", &[]))
            .await
            .unwrap();
        let seen = last(&log);
        assert_eq!(seen.method, method, "{operation}");
        assert_eq!(seen.path_and_query, "/m", "{operation}");
        let expected_body = if carries_body { "payload" } else { "" };
        assert_eq!(seen.body, expected_body, "{operation}");
        assert_eq!(response.metadata["X-Echo-Method"], method, "{operation}");
        if method == "HEAD" {
            assert!(response.data.is_empty());
        }
    }
    let error = binding
        .invoke(request("connect", "", &[]))
        .await
        .unwrap_err();
    assert_eq!(error, BindingError::UnsupportedOperation("connect".into()));
    assert_eq!(
        binding.operations(),
        [
            "create", "get", "head", "post", "put", "patch", "delete", "options", "trace"
        ]
    );
}

#[tokio::test]
async fn statuses_outside_2xx_fail_unless_told_otherwise() {
    let (address, _log) = server().await;
    let strict = binding(json!({ "url": format!("http://{address}") }));
    let error = strict
        .invoke(request("get", "", &[("path", "status/404")]))
        .await
        .unwrap_err();
    assert_eq!(error.to_string(), "received status code 404");
    let response = strict
        .invoke(request("get", "", &[("path", "status/201")]))
        .await
        .unwrap();
    assert_eq!(response.metadata[STATUS_METADATA_KEY], "201 Created");

    // Per request...
    let response = strict
        .invoke(request(
            "get",
            "",
            &[("path", "status/503"), ("errorIfNot2XX", "false")],
        ))
        .await
        .unwrap();
    assert_eq!(response.metadata[STATUS_CODE_METADATA_KEY], "503");
    assert_eq!(
        response.metadata[STATUS_METADATA_KEY],
        "503 Service Unavailable"
    );
    assert_eq!(response.data, "status 503");

    // ... or for the component, which a request can turn back on.
    let lenient = binding(json!({ "url": format!("http://{address}"), "errorIfNot2XX": "false" }));
    let response = lenient
        .invoke(request("get", "", &[("path", "status/404")]))
        .await
        .unwrap();
    assert_eq!(response.metadata[STATUS_CODE_METADATA_KEY], "404");
    let error = lenient
        .invoke(request(
            "get",
            "",
            &[("path", "status/404"), ("errorIfNot2XX", "true")],
        ))
        .await
        .unwrap_err();
    assert_eq!(error.to_string(), "received status code 404");
}

#[tokio::test]
async fn repeated_headers_are_joined_and_bodies_cut_at_the_limit() {
    let (address, _log) = server().await;
    let binding = binding(json!({
        "url": format!("http://{address}"),
        "maxResponseBodySize": "1Ki",
    }));
    let response = binding
        .invoke(request("get", "", &[("path", "cookies")]))
        .await
        .unwrap();
    assert_eq!(response.metadata["Set-Cookie"], "a=1, b=2");
    assert_eq!(response.metadata["X-Custom-Header"], "custom");
    let response = binding
        .invoke(request("get", "", &[("path", "big")]))
        .await
        .unwrap();
    assert_eq!(response.data.len(), 1024);
    assert_eq!(response.metadata["Content-Length"], "10240");

    let unlimited = self::binding(json!({
        "url": format!("http://{address}"),
        "maxResponseBodySize": "0",
    }));
    let response = unlimited
        .invoke(request("get", "", &[("path", "big")]))
        .await
        .unwrap();
    assert_eq!(response.data.len(), 10 * 1024);
}

#[tokio::test]
async fn response_timeout_and_connection_failures_are_reported_like_go() {
    let (address, _log) = server().await;
    let binding = binding(json!({
        "url": format!("http://{address}"),
        "responseTimeout": "200ms",
    }));
    let started = std::time::Instant::now();
    let error = binding
        .invoke(request("get", "", &[("path", "slow")]))
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(
        error.to_string(),
        format!("Get \"http://{address}/slow\": context deadline exceeded")
    );

    // A port nothing listens on.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed_address = closed.local_addr().unwrap();
    drop(closed);
    let binding = self::binding(json!({ "url": format!("http://{closed_address}") }));
    let error = binding.invoke(request("post", "", &[])).await.unwrap_err();
    let text = error.to_string();
    assert!(
        text.starts_with(&format!("Post \"http://{closed_address}\": ")),
        "{text}"
    );
    assert!(matches!(error, BindingError::Backend(_)));
}

#[tokio::test]
async fn invalid_headers_are_refused_before_sending() {
    let (address, log) = server().await;
    let binding = binding(json!({ "url": format!("http://{address}") }));
    let error = binding
        .invoke(request("get", "", &[("Bad Header", "x")]))
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "net/http: invalid header field name \"Bad Header\""
    );
    let error = binding
        .invoke(request("get", "", &[("X-Line", "a\nb")]))
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "net/http: invalid header field value for \"X-Line\""
    );
    assert!(log.lock().unwrap().is_empty());
}

#[test]
fn urls_headers_and_operations_are_spelled_like_go() {
    let path = |path: &str| Some(path.to_owned());
    assert_eq!(
        target_url("http://a/api/", path("/x").as_ref()),
        "http://a/api/x"
    );
    assert_eq!(
        target_url("http://a/api", path("x").as_ref()),
        "http://a/api/x"
    );
    assert_eq!(
        target_url("http://a/api", path("").as_ref()),
        "http://a/api"
    );
    assert_eq!(target_url("http://a/api", None), "http://a/api");
    assert_eq!(canonical_header_name("content-type"), "Content-Type");
    assert_eq!(canonical_header_name("x-b3-traceid"), "X-B3-Traceid");
    assert_eq!(canonical_header_name("etag"), "Etag");
    assert_eq!(go_operation(&Method::OPTIONS), "Options");
}

#[tokio::test]
async fn the_catalog_opens_the_output_half() {
    let properties = Properties::from_json(&json!({"url": "http://localhost:1"})).unwrap();
    for version in ["v1", "V1", ""] {
        let binding = crate::bindings::open("bindings.http", version, &properties)
            .await
            .unwrap();
        assert!(binding.output.is_some() && binding.input.is_none());
    }
    let error = crate::bindings::open("bindings.http", "v2", &properties)
        .await
        .unwrap_err();
    assert_eq!(error.to_string(), "couldn't find binding bindings.http/v2");
    let error = crate::bindings::open("bindings.http", "v1", &Properties::default())
        .await
        .unwrap_err();
    assert_eq!(error.to_string(), "invalid metadata: url is required");
}

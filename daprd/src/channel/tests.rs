//! The app channel against real apps on loopback: HTTP/1.1, h2c and HTTPS apps served by
//! axum, and gRPC (clear and TLS) apps implementing `AppCallback` with tonic.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use clap::Parser;

use crate::options::Options;
use dapr_kit::shutdown::Shutdown;
use dapr_proto::common;
use dapr_proto::google::rpc;
use dapr_proto::runtime::HealthCheckResponse;
use dapr_proto::runtime::app_callback_health_check_server::{
    AppCallbackHealthCheck, AppCallbackHealthCheckServer,
};
use dapr_proto::runtime::app_callback_server::{AppCallback, AppCallbackServer};
use http_body_util::BodyExt;
use hyper::body::{Bytes, Frame};
use prost::Message;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;

use super::*;
use crate::invoke::{InvokeRequest, InvokeResponse};
use crate::test_support::{APP_CERT, APP_KEY, TlsListener};

// ---------------------------------------------------------------------------------------
// Test apps
// ---------------------------------------------------------------------------------------

/// What the test apps record and how they behave.
#[derive(Default)]
struct AppState {
    unhealthy: AtomicBool,
    failed_probes: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

impl AppState {
    /// Counts a call in flight for as long as the returned guard lives.
    fn enter(self: &Arc<Self>) -> InFlight {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(Arc::clone(self))
    }

    /// Answers a health probe, counting failures.
    fn probe(&self) -> bool {
        let healthy = !self.unhealthy.load(Ordering::SeqCst);
        if !healthy {
            self.failed_probes.fetch_add(1, Ordering::SeqCst);
        }
        healthy
    }
}

struct InFlight(Arc<AppState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The HTTP app: `/healthz`, `/stream` (echoes the body as it arrives), `/slow`, and
/// anything else describes the request as JSON, answering `x-reply-status` if asked.
async fn http_app(State(state): State<Arc<AppState>>, request: Request) -> Response {
    match request.uri().path() {
        "/healthz" => {
            let status = if state.probe() {
                StatusCode::NO_CONTENT
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            let mut response = Response::new(Body::empty());
            *response.status_mut() = status;
            response
        }
        "/stream" => Response::new(request.into_body()),
        "/slow" => {
            let _guard = state.enter();
            tokio::time::sleep(Duration::from_millis(200)).await;
            Response::new(Body::from("done"))
        }
        _ => {
            let (parts, body) = request.into_parts();
            let body = body.collect().await.unwrap().to_bytes();
            let headers: BTreeMap<String, String> = parts
                .headers
                .keys()
                .map(|name| {
                    let values: Vec<&str> = parts
                        .headers
                        .get_all(name)
                        .iter()
                        .map(|value| value.to_str().unwrap())
                        .collect();
                    (name.to_string(), values.join(", "))
                })
                .collect();
            let described = json!({
                "method": parts.method.as_str(),
                "path": parts.uri.path(),
                "query": parts.uri.query().unwrap_or_default(),
                "version": format!("{:?}", parts.version),
                "headers": headers,
                "body": String::from_utf8_lossy(&body),
            });
            let status = parts
                .headers
                .get("x-reply-status")
                .map(|value| value.to_str().unwrap().parse::<u16>().unwrap())
                .unwrap_or(200);
            Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .header("x-app", "yes")
                .body(Body::from(described.to_string()))
                .unwrap()
        }
    }
}

fn http_router(state: &Arc<AppState>) -> Router {
    Router::new()
        .fallback(http_app)
        .with_state(Arc::clone(state))
}

fn tls_acceptor(alpn: &[&[u8]]) -> TlsAcceptor {
    crate::test_support::tls_acceptor(APP_CERT, APP_KEY, alpn)
}

/// Serves `router` on a fresh loopback port, in clear text or TLS.
async fn serve(router: Router, tls: Option<TlsAcceptor>) -> u16 {
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = tcp.local_addr().unwrap().port();
    match tls {
        None => {
            tokio::spawn(async move { axum::serve(tcp, router).await });
        }
        Some(acceptor) => {
            let listener = TlsListener { tcp, acceptor };
            tokio::spawn(async move { axum::serve(listener, router).await });
        }
    }
    port
}

async fn start_http_app(tls: bool) -> (u16, Arc<AppState>) {
    let state = Arc::new(AppState::default());
    let port = serve(http_router(&state), tls.then(|| tls_acceptor(&[]))).await;
    (port, state)
}

/// The gRPC app: `OnInvoke` describes the call as JSON; method `fail` answers NotFound
/// with an `ErrorInfo` and metadata, `typed` answers data with a type URL, `slow` waits.
struct GrpcApp(Arc<AppState>);

#[tonic::async_trait]
impl AppCallback for GrpcApp {
    async fn on_invoke(
        &self,
        request: tonic::Request<common::InvokeRequest>,
    ) -> Result<tonic::Response<common::InvokeResponse>, tonic::Status> {
        let metadata = request.metadata().clone();
        let message = request.into_inner();
        match message.method.as_str() {
            "fail" => {
                let info = rpc::ErrorInfo {
                    reason: "GONE".into(),
                    domain: "test".into(),
                    metadata: Default::default(),
                };
                let details = rpc::Status {
                    code: tonic::Code::NotFound as i32,
                    message: "nope".into(),
                    details: vec![prost_types::Any {
                        type_url: "type.googleapis.com/google.rpc.ErrorInfo".into(),
                        value: info.encode_to_vec(),
                    }],
                };
                let mut extra = tonic::metadata::MetadataMap::new();
                extra.insert("x-why", "because".parse().unwrap());
                return Err(tonic::Status::with_details_and_metadata(
                    tonic::Code::NotFound,
                    "nope",
                    details.encode_to_vec().into(),
                    extra,
                ));
            }
            "typed" => {
                return Ok(tonic::Response::new(common::InvokeResponse {
                    data: Some(prost_types::Any {
                        type_url: "type.googleapis.com/test.Thing".into(),
                        value: vec![8, 1],
                    }),
                    content_type: String::new(),
                }));
            }
            "slow" => {
                let _guard = self.0.enter();
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            _ => {}
        }
        let mut seen = BTreeMap::new();
        for entry in metadata.iter() {
            match entry {
                tonic::metadata::KeyAndValueRef::Ascii(key, value) => {
                    seen.insert(key.to_string(), json!(value.to_str().unwrap()));
                }
                tonic::metadata::KeyAndValueRef::Binary(key, value) => {
                    seen.insert(key.to_string(), json!(value.to_bytes().unwrap().to_vec()));
                }
            }
        }
        let data = message.data.unwrap_or_default();
        let has_extension = message.http_extension.is_some();
        let extension = message.http_extension.unwrap_or_default();
        let described = json!({
            "method": message.method,
            "has_extension": has_extension,
            "verb": extension.verb,
            "query": extension.querystring,
            "content_type": message.content_type,
            "type_url": data.type_url,
            "data": String::from_utf8_lossy(&data.value),
            "metadata": seen,
        });
        let mut response = tonic::Response::new(common::InvokeResponse {
            data: Some(prost_types::Any {
                type_url: String::new(),
                value: described.to_string().into_bytes(),
            }),
            content_type: "application/json".into(),
        });
        response
            .metadata_mut()
            .insert("x-reply", "yes".parse().unwrap());
        Ok(response)
    }
}

struct GrpcHealth(Arc<AppState>);

#[tonic::async_trait]
impl AppCallbackHealthCheck for GrpcHealth {
    async fn health_check(
        &self,
        _request: tonic::Request<()>,
    ) -> Result<tonic::Response<HealthCheckResponse>, tonic::Status> {
        if self.0.probe() {
            Ok(tonic::Response::new(HealthCheckResponse {}))
        } else {
            Err(tonic::Status::unavailable("not yet"))
        }
    }
}

async fn start_grpc_app(tls: bool) -> (u16, Arc<AppState>) {
    let state = Arc::new(AppState::default());
    let router = tonic::service::Routes::new(AppCallbackServer::new(GrpcApp(Arc::clone(&state))))
        .add_service(AppCallbackHealthCheckServer::new(GrpcHealth(Arc::clone(
            &state,
        ))))
        .into_axum_router();
    let port = serve(router, tls.then(|| tls_acceptor(&[b"h2"]))).await;
    (port, state)
}

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

fn connection(port: u16, protocol: AppProtocol) -> AppConnection {
    AppConnection {
        address: "127.0.0.1".into(),
        port,
        protocol,
    }
}

fn channel(port: u16, protocol: AppProtocol, options: ChannelOptions) -> AppChannel {
    AppChannel::new(connection(port, protocol), 4 << 20, options).unwrap()
}

fn request(verb: Method, method: &str, query: &str, body: impl Into<Body>) -> InvokeRequest {
    InvokeRequest {
        method: method.into(),
        http_verb: Some(verb),
        query: query.into(),
        headers: HeaderMap::new(),
        content_type: None,
        data_type_url: None,
        body: body.into(),
    }
}

fn header_map(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        headers.append(
            axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    headers
}

async fn json_body(response: InvokeResponse) -> Value {
    let bytes = response.body.collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

/// A port nothing listens on.
async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

/// A request body fed chunk by chunk from the test.
struct ChunkBody(mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChunkBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.get_mut()
            .0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|bytes| Ok(Frame::data(bytes))))
    }
}

const WAIT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------
// HTTP apps
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn http_verbs_paths_query_headers_and_body_arrive_intact() {
    let (port, _) = start_http_app(false).await;
    let app = channel(port, AppProtocol::Http, ChannelOptions::default());

    for verb in [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
        Method::OPTIONS,
    ] {
        let response = app
            .invoke(request(verb.clone(), "orders/42", "a=1&b=two", "payload"))
            .await
            .unwrap();
        assert_eq!(response.status, StatusCode::OK);
        let seen = json_body(response).await;
        assert_eq!(seen["method"], verb.as_str());
        assert_eq!(seen["path"], "/orders/42");
        assert_eq!(seen["query"], "a=1&b=two");
        assert_eq!(seen["version"], "HTTP/1.1");
        assert_eq!(seen["body"], "payload");
    }

    let mut call = request(Method::POST, "orders/../admin/./x", "", "{}");
    call.content_type = Some("application/json; charset=utf-8".into());
    call.headers = header_map(&[
        ("x-user", "alice"),
        ("x-multi", "1"),
        ("x-multi", "2"),
        ("connection", "x-secret"),
        ("x-secret", "1"),
        ("keep-alive", "timeout=5"),
        ("grpc-foo", "bar"),
        ("x-data-bin", "AQID"),
        ("destination-app-id", "me"),
        ("content-type", "text/plain"),
    ]);
    let seen = json_body(app.invoke(call).await.unwrap()).await;
    let headers = &seen["headers"];
    assert_eq!(seen["path"], "/admin/x");
    assert_eq!(headers["x-user"], "alice");
    assert_eq!(headers["x-multi"], "1, 2");
    assert_eq!(headers["content-type"], "application/json; charset=utf-8");
    assert_eq!(headers["dapr-grpc-foo"], "bar");
    for absent in [
        "x-secret",
        "keep-alive",
        "connection",
        "grpc-foo",
        "x-data-bin",
        "destination-app-id",
        "dapr-api-token",
    ] {
        assert!(headers.get(absent).is_none(), "{absent} reached the app");
    }
}

#[tokio::test]
async fn http_non_2xx_status_and_headers_come_back_unchanged() {
    let (port, _) = start_http_app(false).await;
    let app = channel(port, AppProtocol::Http, ChannelOptions::default());
    let mut call = request(Method::GET, "teapot", "", Body::empty());
    call.headers = header_map(&[("x-reply-status", "418")]);
    let response = app.invoke(call).await.unwrap();
    assert_eq!(response.status, StatusCode::IM_A_TEAPOT);
    assert_eq!(response.grpc_code, None);
    assert_eq!(response.headers["x-app"], "yes");
    assert_eq!(response.content_type.as_deref(), Some("application/json"));
    assert!(response.headers.get("content-type").is_none());
    assert!(response.headers.get("content-length").is_none());
    assert_eq!(json_body(response).await["path"], "/teapot");

    let mut call = request(Method::GET, "missing", "", Body::empty());
    call.headers = header_map(&[("x-reply-status", "503")]);
    assert_eq!(
        app.invoke(call).await.unwrap().status,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test]
async fn connect_is_not_a_verb_for_http_apps() {
    let (port, _) = start_http_app(false).await;
    let app = channel(port, AppProtocol::Http, ChannelOptions::default());
    let err = app
        .invoke(request(Method::CONNECT, "x", "", Body::empty()))
        .await
        .unwrap_err();
    assert_eq!(err.message, "invalid HTTP verb");
    assert_eq!(err.grpc_code, tonic::Code::InvalidArgument);
}

#[tokio::test]
async fn calls_without_a_verb_are_refused_by_http_apps() {
    let (port, _) = start_http_app(false).await;
    let app = channel(port, AppProtocol::Http, ChannelOptions::default());
    let mut call = request(Method::GET, "x", "", Body::empty());
    call.http_verb = None;
    let err = app.invoke(call).await.unwrap_err();
    assert_eq!(err.message, "missing HTTP extension field");
    assert_eq!(err.grpc_code, tonic::Code::InvalidArgument);
}

#[tokio::test]
async fn calls_without_a_verb_reach_grpc_apps_without_an_extension() {
    let (port, _) = start_grpc_app(false).await;
    let app = channel(port, AppProtocol::Grpc, ChannelOptions::default());
    let mut call = request(Method::GET, "m", "", Body::from("x"));
    call.http_verb = None;
    let seen = json_body(app.invoke(call).await.unwrap()).await;
    assert_eq!(seen["has_extension"], false);
    assert_eq!(seen["data"], "x");
}

#[tokio::test]
async fn the_app_api_token_is_sent() {
    let (port, _) = start_http_app(false).await;
    let options = ChannelOptions {
        api_token: Some("s3cret".into()),
        ..ChannelOptions::default()
    };
    let app = channel(port, AppProtocol::Http, options);
    let mut call = request(Method::GET, "x", "", Body::empty());
    call.headers = header_map(&[("dapr-api-token", "from-caller")]);
    let seen = json_body(app.invoke(call).await.unwrap()).await;
    assert_eq!(seen["headers"]["dapr-api-token"], "s3cret");
}

/// Sends 50 MiB in 64 KiB chunks through the channel to an app that echoes as it reads.
/// The first echoed bytes must come back while the test has produced only the first
/// chunk: a channel that collected the body would wait forever for the rest.
async fn streams_through(protocol: AppProtocol) {
    const CHUNK: usize = 64 << 10;
    const TOTAL: usize = 50 << 20;
    let (port, _) = start_http_app(false).await;
    let app = channel(port, protocol, ChannelOptions::default());

    let (sender, receiver) = mpsc::channel::<Bytes>(1);
    let chunk = |index: usize| Bytes::from(vec![(index % 251) as u8; CHUNK]);
    sender.send(chunk(0)).await.unwrap();
    let call = request(Method::POST, "stream", "", Body::new(ChunkBody(receiver)));
    let response = tokio::time::timeout(WAIT, app.invoke(call))
        .await
        .expect("no response headers while the body was still being produced")
        .unwrap();
    assert_eq!(response.status, StatusCode::OK);

    let mut body = response.body;
    let mut received = 0usize;
    while received < CHUNK {
        let frame = tokio::time::timeout(WAIT, body.frame())
            .await
            .expect("the first chunk did not come back before the rest was produced")
            .unwrap()
            .unwrap();
        if let Ok(data) = frame.into_data() {
            assert!(data.iter().all(|byte| *byte == 0));
            received += data.len();
        }
    }

    let producer = tokio::spawn(async move {
        for index in 1..TOTAL / CHUNK {
            sender.send(chunk(index)).await.unwrap();
        }
    });
    while let Some(frame) = tokio::time::timeout(WAIT, body.frame()).await.unwrap() {
        if let Ok(data) = frame.unwrap().into_data() {
            let first = received / CHUNK;
            let last = (received + data.len() - 1) / CHUNK;
            if first == last {
                assert!(data.iter().all(|byte| *byte == (first % 251) as u8));
            }
            received += data.len();
        }
    }
    producer.await.unwrap();
    assert_eq!(received, TOTAL);
}

#[tokio::test]
async fn a_50_mib_body_streams_through_an_http_app() {
    streams_through(AppProtocol::Http).await;
}

#[tokio::test]
async fn a_50_mib_body_streams_through_an_h2c_app() {
    streams_through(AppProtocol::H2c).await;
}

#[tokio::test]
async fn h2c_apps_are_spoken_to_in_http2() {
    let (port, _) = start_http_app(false).await;
    let app = channel(port, AppProtocol::H2c, ChannelOptions::default());
    let seen = json_body(
        app.invoke(request(Method::PUT, "h2", "q=1", "x"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(seen["version"], "HTTP/2.0");
    assert_eq!(seen["method"], "PUT");
    assert_eq!(seen["query"], "q=1");
}

#[tokio::test]
async fn https_apps_with_self_signed_certificates_are_accepted() {
    let (port, _) = start_http_app(true).await;
    let app = channel(port, AppProtocol::Https, ChannelOptions::default());
    tokio::time::timeout(WAIT, app.wait_for_app())
        .await
        .unwrap();
    let response = app
        .invoke(request(Method::POST, "secure", "k=v", "over tls"))
        .await
        .unwrap();
    assert_eq!(response.status, StatusCode::OK);
    let seen = json_body(response).await;
    assert_eq!(seen["path"], "/secure");
    assert_eq!(seen["body"], "over tls");
    assert_eq!(seen["version"], "HTTP/1.1");
}

async fn peak_concurrency(
    protocol: AppProtocol,
    port: u16,
    state: &AppState,
    limit: Option<usize>,
) -> usize {
    state.max_in_flight.store(0, Ordering::SeqCst);
    let options = ChannelOptions {
        max_concurrency: limit,
        ..ChannelOptions::default()
    };
    let app = channel(port, protocol, options);
    let call = |app: AppChannel| async move {
        let response = app
            .invoke(request(Method::GET, "slow", "", Body::empty()))
            .await
            .unwrap();
        response.body.collect().await.unwrap();
    };
    tokio::join!(call(app.clone()), call(app.clone()));
    state.max_in_flight.load(Ordering::SeqCst)
}

#[tokio::test]
async fn max_concurrency_one_serialises_calls() {
    let (port, state) = start_http_app(false).await;
    assert_eq!(
        peak_concurrency(AppProtocol::Http, port, &state, Some(1)).await,
        1
    );
    assert_eq!(
        peak_concurrency(AppProtocol::Http, port, &state, None).await,
        2
    );

    let (port, state) = start_grpc_app(false).await;
    assert_eq!(
        peak_concurrency(AppProtocol::Grpc, port, &state, Some(1)).await,
        1
    );
    assert_eq!(
        peak_concurrency(AppProtocol::Grpc, port, &state, None).await,
        2
    );
}

#[tokio::test]
async fn an_unreachable_http_app_is_an_api_error() {
    let port = closed_port().await;
    let app = channel(port, AppProtocol::Http, ChannelOptions::default());
    let err = app
        .invoke(request(Method::POST, "method", "", "x"))
        .await
        .unwrap_err();
    assert_eq!(err.code, "ERR_DIRECT_INVOKE");
    assert_eq!(err.http_status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        err.message,
        format!(
            "Post \"http://127.0.0.1:{port}/method\": dial tcp 127.0.0.1:{port}: connect: connection refused"
        )
    );
}

// ---------------------------------------------------------------------------------------
// gRPC apps
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn grpc_on_invoke_carries_method_extension_metadata_and_data() {
    let (port, _) = start_grpc_app(false).await;
    let options = ChannelOptions {
        api_token: Some("tok".into()),
        ..ChannelOptions::default()
    };
    let app = channel(port, AppProtocol::Grpc, options);
    let mut call = request(Method::PUT, "orders/42", "a=1&b=2", r#"{"n":1}"#);
    call.content_type = Some("application/json".into());
    call.headers = header_map(&[
        ("x-user", "alice"),
        ("accept", "text/plain"),
        ("destination-app-id", "me"),
        ("x-data-bin", "AQID"),
    ]);
    let response = app.invoke(call).await.unwrap();
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.grpc_code, Some(tonic::Code::Ok));
    assert_eq!(response.content_type.as_deref(), Some("application/json"));
    assert_eq!(response.headers["x-reply"], "yes");
    assert!(response.headers.get("content-type").is_none());

    let seen = json_body(response).await;
    assert_eq!(seen["method"], "orders/42");
    assert_eq!(seen["verb"], common::http_extension::Verb::Put as i32);
    assert_eq!(seen["query"], "a=1&b=2");
    assert_eq!(seen["content_type"], "application/json");
    assert_eq!(seen["type_url"], "");
    assert_eq!(seen["data"], r#"{"n":1}"#);
    let metadata = &seen["metadata"];
    assert_eq!(metadata["x-user"], "alice");
    assert_eq!(metadata["dapr-accept"], "text/plain");
    assert_eq!(metadata["x-data-bin"], json!([1, 2, 3]));
    assert_eq!(metadata["dapr-api-token"], "tok");
    assert!(metadata.get("destination-app-id").is_none());
    assert!(metadata.get("accept").is_none());
}

#[tokio::test]
async fn grpc_callers_metadata_is_not_renamed() {
    let (port, _) = start_grpc_app(false).await;
    let app = channel(port, AppProtocol::Grpc, ChannelOptions::default());
    let mut call = request(Method::POST, "m", "", Body::empty());
    call.headers = header_map(&[("content-type", "application/grpc"), ("accept", "x/y")]);
    let seen = json_body(app.invoke(call).await.unwrap()).await;
    assert_eq!(seen["metadata"]["accept"], "x/y");
    assert_eq!(seen["verb"], common::http_extension::Verb::Post as i32);
}

#[tokio::test]
async fn grpc_error_statuses_map_to_http_and_keep_their_details() {
    let (port, _) = start_grpc_app(false).await;
    let app = channel(port, AppProtocol::Grpc, ChannelOptions::default());
    let response = app
        .invoke(request(Method::POST, "fail", "", Body::empty()))
        .await
        .unwrap();
    assert_eq!(response.status, StatusCode::NOT_FOUND);
    assert_eq!(response.grpc_code, Some(tonic::Code::NotFound));
    let status = tonic::Status::from_header_map(&response.trailers).unwrap();
    assert_eq!(status.code(), tonic::Code::NotFound);
    assert_eq!(status.message(), "nope");
    assert!(!status.details().is_empty());
    assert_eq!(response.trailers["x-why"], "because");
    assert_eq!(
        json_body(response).await,
        json!({
            "code": 5,
            "message": "nope",
            "details": [{
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "GONE",
                "domain": "test",
            }],
        })
    );
}

#[tokio::test]
async fn grpc_typed_data_keeps_its_type_url() {
    let (port, _) = start_grpc_app(false).await;
    let app = channel(port, AppProtocol::Grpc, ChannelOptions::default());
    let response = app
        .invoke(request(Method::POST, "typed", "", Body::empty()))
        .await
        .unwrap();
    assert_eq!(
        response.data_type_url.as_deref(),
        Some("type.googleapis.com/test.Thing")
    );
    assert_eq!(response.content_type, None);
    assert_eq!(
        response.body.collect().await.unwrap().to_bytes().as_ref(),
        &[8, 1]
    );
}

#[tokio::test]
async fn grpc_bodies_over_the_limit_are_refused() {
    let (port, _) = start_grpc_app(false).await;
    let app = AppChannel::new(
        connection(port, AppProtocol::Grpc),
        1024,
        ChannelOptions::default(),
    )
    .unwrap();
    let err = app
        .invoke(request(Method::POST, "m", "", vec![7u8; 2048]))
        .await
        .unwrap_err();
    assert_eq!(err.code, "ERR_BODY_READ");
    assert!(err.message.contains("1024"), "{}", err.message);

    let response = app
        .invoke(request(Method::POST, "m", "", vec![b'a'; 512]))
        .await
        .unwrap();
    assert_eq!(response.status, StatusCode::OK);
}

#[tokio::test]
async fn grpcs_apps_are_reached_over_tls() {
    let (port, _) = start_grpc_app(true).await;
    let app = channel(port, AppProtocol::Grpcs, ChannelOptions::default());
    tokio::time::timeout(WAIT, app.wait_for_app())
        .await
        .unwrap();
    let seen = json_body(
        app.invoke(request(Method::GET, "secure", "", "sealed"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(seen["method"], "secure");
    assert_eq!(seen["data"], "sealed");
}

#[tokio::test]
async fn an_unreachable_grpc_app_answers_unavailable() {
    let port = closed_port().await;
    let app = channel(port, AppProtocol::Grpc, ChannelOptions::default());
    let response = app
        .invoke(request(Method::POST, "m", "", "x"))
        .await
        .unwrap();
    assert_eq!(response.grpc_code, Some(tonic::Code::Unavailable));
    assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE);
    let body = json_body(response).await;
    assert_eq!(body["code"], 14);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("connection refused"),
        "{body}"
    );
}

// ---------------------------------------------------------------------------------------
// Health checks and start-up
// ---------------------------------------------------------------------------------------

/// Runs health checks against an app and flips it sick and well again.
async fn health_flips(protocol: AppProtocol, port: u16, state: &AppState) {
    let options = ChannelOptions {
        health_check: Some(AppHealthConfig {
            path: "/healthz".into(),
            interval: Duration::from_millis(50),
            timeout: Duration::from_millis(40),
            threshold: 3,
        }),
        ..ChannelOptions::default()
    };
    let app = channel(port, protocol, options);
    let health = app.health();
    assert!(
        !health.is_healthy(),
        "the app starts unhealthy until probed"
    );
    let err = app
        .invoke(request(Method::GET, "x", "", Body::empty()))
        .await
        .unwrap_err();
    assert_eq!(err.message, "app is not in a healthy state");

    let shutdown = Shutdown::new();
    let checks = tokio::spawn({
        let app = app.clone();
        let signal = shutdown.signal();
        async move { app.run_health_checks(signal).await }
    });
    let mut changes = health.subscribe();
    tokio::time::timeout(WAIT, changes.wait_for(|healthy| *healthy))
        .await
        .unwrap()
        .unwrap();
    app.invoke(request(Method::GET, "x", "", Body::empty()))
        .await
        .unwrap();

    state.unhealthy.store(true, Ordering::SeqCst);
    tokio::time::timeout(WAIT, changes.wait_for(|healthy| !*healthy))
        .await
        .unwrap()
        .unwrap();
    let failures = state.failed_probes.load(Ordering::SeqCst);
    assert!(failures >= 3, "unhealthy after {failures} failed probes");
    assert!(!health.is_healthy());

    state.unhealthy.store(false, Ordering::SeqCst);
    tokio::time::timeout(WAIT, changes.wait_for(|healthy| *healthy))
        .await
        .unwrap()
        .unwrap();

    shutdown.trigger();
    tokio::time::timeout(WAIT, checks).await.unwrap().unwrap();
}

#[tokio::test]
async fn http_health_checks_flip_after_the_threshold_and_recover() {
    let (port, state) = start_http_app(false).await;
    health_flips(AppProtocol::Http, port, &state).await;
}

#[tokio::test]
async fn grpc_health_checks_flip_after_the_threshold_and_recover() {
    let (port, state) = start_grpc_app(false).await;
    health_flips(AppProtocol::Grpc, port, &state).await;
}

#[tokio::test]
async fn without_health_checks_the_app_is_healthy() {
    let app = channel(
        closed_port().await,
        AppProtocol::Http,
        ChannelOptions::default(),
    );
    assert!(app.health().is_healthy());
    let shutdown = Shutdown::new();
    tokio::time::timeout(WAIT, app.run_health_checks(shutdown.signal()))
        .await
        .unwrap();
}

#[tokio::test]
async fn waiting_for_the_app_ends_when_its_port_opens() {
    let port = closed_port().await;
    let app = channel(port, AppProtocol::Http, ChannelOptions::default());
    let waiting = tokio::spawn({
        let app = app.clone();
        async move { app.wait_for_app().await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "returned before the app listened");
    let _listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    tokio::time::timeout(WAIT, waiting).await.unwrap().unwrap();
}

// ---------------------------------------------------------------------------------------
// Construction and conversion rules
// ---------------------------------------------------------------------------------------

#[test]
fn client_only_sidecars_have_no_channel() {
    let options = Options::try_parse_from(["daprd", "--app-id", "a"]).unwrap();
    let config = RuntimeConfig::from_options(&options).unwrap();
    let channel = AppChannel::from_config(&config, ChannelOptions::from_config(&config));
    assert!(channel.unwrap().is_none());
}

#[tokio::test]
async fn options_become_channel_settings() {
    let options = Options::try_parse_from([
        "daprd",
        "--app-id",
        "a",
        "--app-port",
        "3000",
        "--app-max-concurrency",
        "2",
        "--enable-app-health-check",
        "--app-health-check-path",
        "ready",
        "--app-health-probe-interval",
        "0",
        "--app-health-threshold=-4",
    ])
    .unwrap();
    let config = RuntimeConfig::from_options(&options).unwrap();
    let settings = ChannelOptions::from_config(&config);
    assert_eq!(settings.max_concurrency, Some(2));
    assert_eq!(
        settings.health_check,
        Some(AppHealthConfig {
            path: "/ready".into(),
            interval: Duration::from_secs(5),
            timeout: Duration::from_millis(500),
            threshold: 3,
        })
    );
    let app = AppChannel::from_config(&config, settings).unwrap().unwrap();
    assert_eq!(app.app().port, 3000);
    assert!(!app.health().is_healthy());

    let defaults = Options::try_parse_from(["daprd", "--app-id", "a"]).unwrap();
    let settings = ChannelOptions::from_config(&RuntimeConfig::from_options(&defaults).unwrap());
    assert_eq!(settings, ChannelOptions::default());
}

#[test]
fn method_paths_cannot_climb_above_the_root() {
    for (method, path) in [
        ("", "/"),
        ("orders", "/orders"),
        ("/orders/42", "/orders/42"),
        ("orders/", "/orders"),
        ("a//b/./c", "/a/b/c"),
        ("orders/../admin", "/admin"),
        ("../../etc/passwd", "/etc/passwd"),
        ("..", "/"),
    ] {
        assert_eq!(http::clean_path(method), path, "{method}");
    }
}

#[test]
fn status_mappings_follow_upstream() {
    use tonic::Code;
    for (code, status) in [
        (Code::Ok, 200),
        (Code::Cancelled, 408),
        (Code::Unknown, 500),
        (Code::InvalidArgument, 400),
        (Code::DeadlineExceeded, 504),
        (Code::NotFound, 404),
        (Code::AlreadyExists, 409),
        (Code::PermissionDenied, 403),
        (Code::Unauthenticated, 401),
        (Code::ResourceExhausted, 429),
        (Code::FailedPrecondition, 400),
        (Code::Aborted, 409),
        (Code::OutOfRange, 400),
        (Code::Unimplemented, 501),
        (Code::Internal, 500),
        (Code::Unavailable, 503),
        (Code::DataLoss, 500),
    ] {
        assert_eq!(
            http_status_from_grpc_code(code).as_u16(),
            status,
            "{code:?}"
        );
    }
    for (status, code) in [
        (200, Code::Ok),
        (204, Code::Ok),
        (400, Code::Internal),
        (401, Code::Unauthenticated),
        (403, Code::PermissionDenied),
        (404, Code::NotFound),
        (408, Code::Cancelled),
        (409, Code::AlreadyExists),
        (429, Code::ResourceExhausted),
        (500, Code::Unknown),
        (501, Code::Unimplemented),
        (503, Code::Unavailable),
        (504, Code::DeadlineExceeded),
        (418, Code::Unknown),
        (302, Code::Unknown),
    ] {
        let status = StatusCode::from_u16(status).unwrap();
        assert_eq!(grpc_code_from_http_status(status), code, "{status}");
    }
}

#[test]
fn app_response_headers_lose_hop_by_hop_ones() {
    let headers = header_map(&[
        ("connection", "x-hop"),
        ("x-hop", "1"),
        ("keep-alive", "timeout=5"),
        ("transfer-encoding", "chunked"),
        ("content-length", "12"),
        ("content-type", "text/plain"),
        ("set-cookie", "a=1"),
        ("set-cookie", "b=2"),
        ("x-app", "yes"),
    ]);
    let kept = headers::from_http_app(headers);
    assert_eq!(kept.len(), 3);
    assert_eq!(kept.get_all("set-cookie").iter().count(), 2);
    assert_eq!(kept["x-app"], "yes");
}

/// A gRPC client of a proxy (1 KiB message limit) in front of `app`, whose id is `me`.
async fn proxy_client(
    app: AppChannel,
    app_api_token: Option<&str>,
) -> dapr_proto::runtime::app_callback_client::AppCallbackClient<tonic::transport::Channel> {
    let config = crate::invoke::InvokerConfig {
        app_id: "me".to_string(),
        namespace: "default".to_string(),
        internal_grpc_port: 1,
        host_address: Some("127.0.0.1".to_string()),
        host_name: "test-host".to_string(),
    };
    let invoker = Arc::new(crate::invoke::Invoker::new(config, None, Some(app)));
    let proxy = crate::api::grpc::proxy::GrpcProxy::new(
        invoker,
        app_api_token.map(str::to_string),
        1 << 10,
    );
    let proxy_port = serve(proxy.router(), None).await;
    dapr_proto::runtime::app_callback_client::AppCallbackClient::connect(format!(
        "http://127.0.0.1:{proxy_port}"
    ))
    .await
    .unwrap()
}

#[tokio::test]
async fn grpc_calls_are_proxied_to_grpcs_apps_over_the_channel() {
    let (port, _) = start_grpc_app(true).await;
    let app = channel(port, AppProtocol::Grpcs, ChannelOptions::default());
    let mut client = proxy_client(app, Some("app-token")).await;
    let mut call = tonic::Request::new(common::InvokeRequest {
        method: "proxied".into(),
        ..Default::default()
    });
    call.metadata_mut()
        .insert("dapr-app-id", "me".parse().unwrap());
    let reply = client.on_invoke(call).await.unwrap().into_inner();
    let seen: Value = serde_json::from_slice(&reply.data.unwrap().value).unwrap();
    assert_eq!(seen["method"], "proxied");
    assert_eq!(seen["metadata"]["dapr-api-token"], "app-token");
}

#[tokio::test]
async fn proxied_messages_over_the_size_limit_are_refused() {
    let (port, _) = start_grpc_app(false).await;
    let app = channel(port, AppProtocol::Grpc, ChannelOptions::default());
    let mut client = proxy_client(app, None).await;
    let call = |data: Vec<u8>| {
        let mut call = tonic::Request::new(common::InvokeRequest {
            method: "sized".into(),
            data: Some(prost_types::Any {
                type_url: String::new(),
                value: data,
            }),
            ..Default::default()
        });
        call.metadata_mut()
            .insert("dapr-app-id", "me".parse().unwrap());
        call
    };
    client.on_invoke(call(vec![1; 100])).await.unwrap();
    // The app echoes what it got, so a large request fails on the way in and a reply
    // cannot be larger than what was allowed in.
    let status = client.on_invoke(call(vec![1; 4 << 10])).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert!(
        status
            .message()
            .contains("received message larger than max")
    );
}

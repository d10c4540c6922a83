//! End-to-end tests of service invocation: real sidecar servers (the internal API, the
//! public HTTP API and the public gRPC API, each with the gRPC proxy where upstream has it)
//! and real apps (HTTP and gRPC) on 127.0.0.1, found through a fixed name resolver.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use bytes::Bytes;
use dapr_components::nameresolution::{NameResolver, ResolveError, ResolveRequest};
use dapr_proto::common::{self, HttpExtension, StreamPayload, http_extension::Verb};
use dapr_proto::dapr::proto::placement::v1::placement_client::PlacementClient;
use dapr_proto::dapr::proto::placement::v1::placement_server::{Placement, PlacementServer};
use dapr_proto::dapr::proto::placement::v1::{Host, PlacementOrder};
use dapr_proto::google::rpc;
use dapr_proto::internals::service_invocation_client::ServiceInvocationClient;
use dapr_proto::internals::{InternalInvokeRequest, InternalInvokeRequestStream, ListStringValue};
use dapr_proto::runtime::InvokeServiceRequest;
use dapr_proto::runtime::app_callback_client::AppCallbackClient;
use dapr_proto::runtime::app_callback_server::{AppCallback, AppCallbackServer};
use dapr_proto::runtime::dapr_client::DaprClient;
use dapr_proto::runtime::dapr_server::{Dapr, DaprServer};
use futures::{SinkExt, StreamExt};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use prost::Message;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tonic::codegen::BoxStream;
use tonic::transport::Channel;

use super::{Invoker, InvokerConfig};
use crate::api::grpc::invoke::invoke_service;
use crate::api::grpc::proxy::GrpcProxy;
use crate::api::internal::InternalService;
use crate::channel::{AppChannel, ChannelOptions};
use crate::config::{AppConnection, AppProtocol};
use crate::resiliency::Resiliency;

/// A limit for anything that would hang if a body were buffered instead of streamed.
const PATIENCE: Duration = Duration::from_secs(20);

/// Our own name resolution contract, answered from a table the test fills.
#[derive(Default)]
struct FixedResolver {
    addresses: Mutex<HashMap<(String, String), String>>,
}

impl FixedResolver {
    fn set(&self, id: &str, namespace: &str, address: &str) {
        self.addresses
            .lock()
            .unwrap()
            .insert((id.to_string(), namespace.to_string()), address.to_string());
    }
}

#[async_trait::async_trait]
impl NameResolver for FixedResolver {
    fn component(&self) -> &'static str {
        "fixed"
    }

    async fn resolve(&self, request: &ResolveRequest) -> Result<String, ResolveError> {
        let key = (request.app_id.clone(), request.namespace.clone());
        self.addresses
            .lock()
            .unwrap()
            .get(&key)
            .cloned()
            .ok_or_else(|| ResolveError::ServiceNotFound {
                app_id: request.app_id.clone(),
            })
    }

    async fn close(&self) -> Result<(), ResolveError> {
        Ok(())
    }
}

async fn serve_on(listener: TcpListener, router: axum::Router) {
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
}

async fn serve(router: axum::Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    serve_on(listener, router).await;
    address
}

/// A port nothing listens on.
/// A port nothing listens on. Port 1 is privileged: it is never handed out as an
/// ephemeral port, so no test running alongside can start listening on it while a test
/// still expects connections to it to be refused.
async fn closed_port() -> u16 {
    1
}

// ---------------------------------------------------------------------------------------
// The HTTP app

/// Lets a test and the HTTP app take turns, to prove bodies stream.
#[derive(Default)]
struct Turns {
    first_chunk_seen: Notify,
    release: Notify,
}

fn header_map_json(headers: &HeaderMap) -> Value {
    let mut object = serde_json::Map::new();
    for (name, value) in headers {
        object.insert(
            name.as_str().to_string(),
            json!(value.to_str().unwrap_or_default()),
        );
    }
    Value::Object(object)
}

/// Answers with what it received, as JSON.
async fn echo(request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    let seen = json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query().unwrap_or_default(),
        "headers": header_map_json(&parts.headers),
        "body": String::from_utf8_lossy(&body),
    });
    ([("x-app", "http")], Json(seen)).into_response()
}

/// Answers with the status it is asked for.
async fn status(Path(code): Path<u16>) -> Response {
    let status = StatusCode::from_u16(code).unwrap();
    (
        status,
        [("x-app-error", "yes"), ("content-type", "text/plain")],
        format!("app says {code}"),
    )
        .into_response()
}

/// A reply whose second part is only produced once the test read the first.
async fn stream_out(State(turns): State<Arc<Turns>>) -> Response {
    let parts = futures::stream::unfold(0, move |step| {
        let turns = Arc::clone(&turns);
        async move {
            match step {
                0 => Some((Ok::<_, std::io::Error>(Bytes::from(vec![b'a'; 100_000])), 1)),
                1 => {
                    turns.release.notified().await;
                    Some((Ok(Bytes::from_static(b"second")), 2))
                }
                _ => None,
            }
        }
    });
    Body::from_stream(parts).into_response()
}

/// Reads a request body as it arrives, telling the test when the first chunk is in.
async fn stream_in(State(turns): State<Arc<Turns>>, body: Body) -> String {
    let mut stream = body.into_data_stream();
    let mut total = 0;
    let mut first = true;
    while let Some(chunk) = stream.next().await {
        total += chunk.unwrap().len();
        if first {
            first = false;
            turns.first_chunk_seen.notify_one();
        }
    }
    format!("received {total}")
}

async fn start_http_app() -> (u16, Arc<Turns>) {
    let turns = Arc::new(Turns::default());
    let router = axum::Router::new()
        .route("/status/{code}", any(status))
        .route("/stream-out", any(stream_out))
        .route("/stream-in", any(stream_in))
        .fallback(echo)
        .with_state(Arc::clone(&turns));
    (serve(router).await.port(), turns)
}

// ---------------------------------------------------------------------------------------
// The gRPC app

#[derive(Clone, Default)]
struct GrpcApp {
    /// Calls of method `fail` received.
    failed_calls: Arc<std::sync::atomic::AtomicU32>,
}

fn metadata_text(metadata: &tonic::metadata::MetadataMap, key: &str) -> String {
    metadata
        .get(key)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

#[tonic::async_trait]
impl AppCallback for GrpcApp {
    async fn on_invoke(
        &self,
        request: tonic::Request<common::InvokeRequest>,
    ) -> Result<tonic::Response<common::InvokeResponse>, tonic::Status> {
        let caller = metadata_text(request.metadata(), "dapr-caller-app-id");
        let custom = metadata_text(request.metadata(), "x-custom");
        let message = request.into_inner();
        if message.method == "fail" {
            self.failed_calls
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            return Err(tonic::Status::not_found("no such order"));
        }
        let extension = message.http_extension.unwrap_or_default();
        let data = message.data.map(|any| any.value).unwrap_or_default();
        let text = format!(
            "{}|{}|{}|{}|{}|{}",
            message.method,
            caller,
            extension.verb().as_str_name(),
            extension.querystring,
            custom,
            String::from_utf8_lossy(&data)
        );
        let mut response = tonic::Response::new(common::InvokeResponse {
            data: Some(prost_types::Any {
                type_url: String::new(),
                value: text.into_bytes(),
            }),
            content_type: "text/plain".to_string(),
        });
        response
            .metadata_mut()
            .insert("x-app", "grpc".parse().unwrap());
        Ok(response)
    }
}

#[tonic::async_trait]
impl Placement for GrpcApp {
    /// Answers every message as it arrives, naming who called whom.
    async fn report_dapr_status(
        &self,
        request: tonic::Request<tonic::Streaming<Host>>,
    ) -> Result<tonic::Response<BoxStream<PlacementOrder>>, tonic::Status> {
        let route = format!(
            "{}->{}",
            metadata_text(request.metadata(), "dapr-caller-app-id"),
            metadata_text(request.metadata(), "dapr-callee-app-id")
        );
        let replies = request.into_inner().map(move |host| {
            let host = host?;
            if host.name == "fail" {
                return Err(tonic::Status::aborted("told to fail"));
            }
            Ok(PlacementOrder {
                tables: None,
                operation: format!("{}@{route}", host.name),
                version: u64::try_from(host.port).unwrap_or_default(),
            })
        });
        let mut response = tonic::Response::new(replies.boxed());
        response
            .metadata_mut()
            .insert("x-app", "grpc".parse().unwrap());
        Ok(response)
    }
}

async fn start_grpc_app() -> u16 {
    start_counted_grpc_app(GrpcApp::default()).await
}

async fn start_counted_grpc_app(app: GrpcApp) -> u16 {
    let router = tonic::service::Routes::new(AppCallbackServer::new(app.clone()))
        .add_service(PlacementServer::new(app))
        .into_axum_router();
    serve(router).await.port()
}

// ---------------------------------------------------------------------------------------
// The sidecars

struct TestDapr {
    invoker: Arc<Invoker>,
}

#[tonic::async_trait]
impl Dapr for TestDapr {
    async fn invoke_service(
        &self,
        request: tonic::Request<InvokeServiceRequest>,
    ) -> Result<tonic::Response<common::InvokeResponse>, tonic::Status> {
        invoke_service(&self.invoker, request).await
    }
}

struct Sidecar {
    invoker: Arc<Invoker>,
    http: SocketAddr,
    grpc: SocketAddr,
}

/// Starts a sidecar for `app_id` (its app on `app`, if any) and registers its internal
/// API with `resolver`.
async fn start_sidecar(
    app_id: &str,
    app: Option<(u16, AppProtocol)>,
    resolver: &Arc<FixedResolver>,
) -> Sidecar {
    start_resilient_sidecar(app_id, app, resolver, Resiliency::default()).await
}

/// [`start_sidecar`] applying `resiliency`'s policies.
async fn start_resilient_sidecar(
    app_id: &str,
    app: Option<(u16, AppProtocol)>,
    resolver: &Arc<FixedResolver>,
    resiliency: Resiliency,
) -> Sidecar {
    let internal_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let internal = internal_listener.local_addr().unwrap();
    resolver.set(app_id, "default", &internal.to_string());
    let config = InvokerConfig {
        app_id: app_id.to_string(),
        namespace: "default".to_string(),
        internal_grpc_port: internal.port(),
        host_address: Some("127.0.0.1".to_string()),
        host_name: "test-host".to_string(),
    };
    let channel = app.map(|(port, protocol)| {
        let connection = AppConnection {
            address: "127.0.0.1".to_string(),
            port,
            protocol,
        };
        AppChannel::new(connection, 4 << 20, ChannelOptions::default()).unwrap()
    });
    let resolver: Arc<dyn NameResolver> = resolver.clone();
    let invoker = Arc::new(
        Invoker::new(config, Some(resolver), channel).with_resiliency(Arc::new(resiliency)),
    );
    let proxy = GrpcProxy::new(Arc::clone(&invoker), None, 4 << 20);

    let internal_router =
        tonic::service::Routes::new(InternalService::new(Arc::clone(&invoker)).into_server())
            .into_axum_router()
            .fallback_service(proxy.clone().router());
    serve_on(internal_listener, internal_router).await;
    let http = serve(crate::api::http::invoke::router(Arc::clone(&invoker))).await;
    let dapr = DaprServer::new(TestDapr {
        invoker: Arc::clone(&invoker),
    });
    let grpc = serve(
        tonic::service::Routes::new(dapr)
            .into_axum_router()
            .fallback_service(proxy.router()),
    )
    .await;
    Sidecar {
        invoker,
        http,
        grpc,
    }
}

/// Sidecars `a` and `b` with HTTP apps, and `c` with a gRPC app (reached through the
/// others).
struct World {
    resolver: Arc<FixedResolver>,
    a: Sidecar,
    b: Sidecar,
    a_turns: Arc<Turns>,
    b_app: u16,
    b_turns: Arc<Turns>,
}

async fn world() -> World {
    let resolver = Arc::new(FixedResolver::default());
    let (a_app, a_turns) = start_http_app().await;
    let (b_app, b_turns) = start_http_app().await;
    let c_app = start_grpc_app().await;
    let a = start_sidecar("a", Some((a_app, AppProtocol::Http)), &resolver).await;
    let b = start_sidecar("b", Some((b_app, AppProtocol::Http)), &resolver).await;
    start_sidecar("c", Some((c_app, AppProtocol::Grpc)), &resolver).await;
    World {
        resolver,
        a,
        b,
        a_turns,
        b_app,
        b_turns,
    }
}

// ---------------------------------------------------------------------------------------
// Clients

fn http_client() -> Client<HttpConnector, Body> {
    Client::builder(TokioExecutor::new()).build_http()
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|err| panic!("not JSON ({err}): {:?}", self.body))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

async fn send(request: axum::http::Request<Body>) -> Reply {
    let response = tokio::time::timeout(PATIENCE, http_client().request(request))
        .await
        .expect("no reply in time")
        .unwrap();
    let (parts, body) = response.into_parts();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

fn request(method: Method, url: String, body: impl Into<Body>) -> axum::http::Request<Body> {
    axum::http::Request::builder()
        .method(method)
        .uri(url)
        .body(body.into())
        .unwrap()
}

async fn dapr_client(sidecar: &Sidecar) -> DaprClient<Channel> {
    DaprClient::connect(format!("http://{}", sidecar.grpc))
        .await
        .unwrap()
}

fn invoke_request(
    id: &str,
    method: &str,
    data: &str,
    verb: Verb,
    query: &str,
) -> InvokeServiceRequest {
    InvokeServiceRequest {
        id: id.to_string(),
        message: Some(common::InvokeRequest {
            method: method.to_string(),
            data: Some(prost_types::Any {
                type_url: String::new(),
                value: data.as_bytes().to_vec(),
            }),
            content_type: "text/plain".to_string(),
            http_extension: Some(HttpExtension {
                verb: verb as i32,
                querystring: query.to_string(),
            }),
        }),
    }
}

// ---------------------------------------------------------------------------------------
// HTTP caller

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_to_http_passes_method_query_headers_and_body() {
    let world = world().await;
    let mut call = request(
        Method::PUT,
        format!(
            "http://{}/v1.0/invoke/b/method/orders/42?x=1&y=two%20words",
            world.a.http
        ),
        "order body",
    );
    let headers = call.headers_mut();
    headers.insert("content-type", HeaderValue::from_static("text/plain"));
    headers.insert("x-custom", HeaderValue::from_static("custom value"));
    headers.insert(
        "traceparent",
        HeaderValue::from_static("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
    );
    headers.insert("connection", HeaderValue::from_static("x-private"));
    headers.insert("x-private", HeaderValue::from_static("hop"));
    headers.insert("dapr-caller-app-id", HeaderValue::from_static("spoofed"));
    let reply = send(call).await;

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.headers["x-app"], "http");
    assert_eq!(reply.headers["content-type"], "application/json");
    let seen = reply.json();
    assert_eq!(seen["method"], "PUT");
    assert_eq!(seen["path"], "/orders/42");
    assert_eq!(seen["query"], "x=1&y=two%20words");
    assert_eq!(seen["body"], "order body");
    let headers = &seen["headers"];
    assert_eq!(headers["content-type"], "text/plain");
    assert_eq!(headers["x-custom"], "custom value");
    assert_eq!(
        headers["traceparent"],
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    );
    assert_eq!(headers["dapr-caller-app-id"], "a");
    assert_eq!(headers["dapr-caller-namespace"], "default");
    assert_eq!(headers["dapr-callee-app-id"], "b");
    assert_eq!(headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(headers["x-forwarded-host"], "test-host");
    assert_eq!(
        headers["forwarded"],
        "for=127.0.0.1;by=127.0.0.1;host=test-host"
    );
    assert!(
        headers.get("x-private").is_none(),
        "hop-by-hop header leaked: {headers}"
    );
    assert!(headers.get("destination-app-id").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_2xx_replies_pass_through_unchanged() {
    let world = world().await;
    for code in [404, 500, 503] {
        let reply = send(request(
            Method::GET,
            format!("http://{}/v1.0/invoke/b/method/status/{code}", world.a.http),
            Body::empty(),
        ))
        .await;
        assert_eq!(reply.status.as_u16(), code);
        assert_eq!(reply.text(), format!("app says {code}"));
        assert_eq!(reply.headers["x-app-error"], "yes");
        assert_eq!(reply.headers["content-type"], "text/plain");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_form_namespaces_and_the_own_app() {
    let world = world().await;
    let mut call = request(
        Method::POST,
        format!("http://{}/shop/cart?id=7", world.a.http),
        "x",
    );
    call.headers_mut()
        .insert("dapr-app-id", HeaderValue::from_static("b"));
    let seen = send(call).await.json();
    assert_eq!(seen["path"], "/shop/cart");
    assert_eq!(seen["query"], "id=7");
    assert!(seen["headers"].get("dapr-app-id").is_none());

    let reply = send(request(
        Method::GET,
        format!("http://{}/v1.0/invoke/b.default/method/hello", world.a.http),
        Body::empty(),
    ))
    .await;
    assert_eq!(reply.json()["headers"]["dapr-callee-app-id"], "b");

    // Another namespace is another app to the resolver.
    world.resolver.set(
        "b",
        "prod",
        &world
            .resolver
            .resolve(&ResolveRequest {
                app_id: "b".into(),
                namespace: "default".into(),
                port: 0,
            })
            .await
            .unwrap(),
    );
    let reply = send(request(
        Method::GET,
        format!("http://{}/v1.0/invoke/b.prod/method/hello", world.a.http),
        Body::empty(),
    ))
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = send(request(
        Method::GET,
        format!("http://{}/v1.0/invoke/b.staging/method/hello", world.a.http),
        Body::empty(),
    ))
    .await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        reply.json()["message"],
        "failed to invoke, id: b.staging, err: couldn't find service: b"
    );

    // The own app is called directly, caller and callee both itself.
    let reply = send(request(
        Method::GET,
        format!("http://{}/v1.0/invoke/a/method/self", world.a.http),
        Body::empty(),
    ))
    .await;
    let seen = reply.json();
    assert_eq!(seen["path"], "/self");
    assert_eq!(seen["headers"]["dapr-caller-app-id"], "a");
    assert_eq!(seen["headers"]["dapr-callee-app-id"], "a");
    assert!(seen["headers"].get("x-forwarded-host").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn urls_and_http_endpoints_are_called_directly() {
    let world = world().await;
    let url = format!("http%3A%2F%2F127.0.0.1%3A{}", world.b_app);
    let reply = send(request(
        Method::POST,
        format!(
            "http://{}/v1.0/invoke/{url}/method/direct/call?q=1",
            world.a.http
        ),
        "to a url",
    ))
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let seen = reply.json();
    assert_eq!(seen["path"], "/direct/call");
    assert_eq!(seen["query"], "q=1");
    assert_eq!(seen["body"], "to a url");
    assert!(seen["headers"].get("dapr-caller-app-id").is_none());

    let endpoints = [
        json!({"apiVersion": "dapr.io/v1alpha1", "kind": "HTTPEndpoint",
               "metadata": {"name": "ext"},
               "spec": {"baseUrl": format!("http://127.0.0.1:{}/base", world.b_app),
                        "headers": [{"name": "x-endpoint", "value": "configured"}]}}),
        json!({"apiVersion": "dapr.io/v1alpha1", "kind": "HTTPEndpoint",
               "metadata": {"name": "secretive"},
               "spec": {"baseUrl": format!("http://127.0.0.1:{}", world.b_app),
                        "headers": [{"name": "x-key", "secretKeyRef": {"name": "s", "key": "k"}}]}}),
    ];
    world.a.invoker.set_http_endpoints(
        endpoints
            .into_iter()
            .map(|endpoint| serde_json::from_value(endpoint).unwrap()),
    );
    let reply = send(request(
        Method::GET,
        format!("http://{}/v1.0/invoke/ext/method/items", world.a.http),
        Body::empty(),
    ))
    .await;
    let seen = reply.json();
    assert_eq!(seen["path"], "/base/items");
    assert_eq!(seen["headers"]["x-endpoint"], "configured");

    let reply = send(request(
        Method::GET,
        format!("http://{}/v1.0/invoke/secretive/method/items", world.a.http),
        Body::empty(),
    ))
    .await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        reply.json()["message"]
            .as_str()
            .unwrap()
            .contains("references a secret")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_to_grpc_maps_status_to_http() {
    let world = world().await;
    let mut call = request(
        Method::POST,
        format!("http://{}/v1.0/invoke/c/method/echo?k=v", world.a.http),
        "hello grpc",
    );
    call.headers_mut()
        .insert("x-custom", HeaderValue::from_static("c1"));
    let reply = send(call).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.text(), "echo|a|POST|k=v|c1|hello grpc");
    assert_eq!(reply.headers["content-type"], "text/plain");
    assert_eq!(reply.headers["x-app"], "grpc");

    let reply = send(request(
        Method::POST,
        format!("http://{}/v1.0/invoke/c/method/fail", world.a.http),
        Body::empty(),
    ))
    .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.json(), json!({"code": 5, "message": "no such order"}));
}

/// Starts the echo app over TLS; with `client_auth` it demands a client certificate
/// signed by the test CA.
async fn start_https_app(client_auth: bool) -> u16 {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_slice_iter(crate::test_support::SERVER_CERT)
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(crate::test_support::SERVER_KEY).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = if client_auth {
        let mut roots = rustls::RootCertStore::empty();
        for certificate in CertificateDer::pem_slice_iter(crate::test_support::TEST_CA) {
            roots.add(certificate.unwrap()).unwrap();
        }
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .unwrap();
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let mut config = builder.with_single_cert(chain, key).unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = tcp.local_addr().unwrap().port();
    let listener = crate::test_support::TlsListener {
        tcp,
        acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
    };
    tokio::spawn(async move { axum::serve(listener, axum::Router::new().fallback(echo)).await });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_endpoints_are_verified_against_their_root_ca() {
    let world = world().await;
    let port = start_https_app(false).await;
    let mutual_port = start_https_app(true).await;
    let root_ca = std::str::from_utf8(crate::test_support::TEST_CA).unwrap();
    let endpoint = |name: &str, host: &str, port: u16, client_tls: Value| {
        serde_json::from_value(json!({
            "apiVersion": "dapr.io/v1alpha1", "kind": "HTTPEndpoint",
            "metadata": {"name": name},
            "spec": {"baseUrl": format!("https://{host}:{port}"), "clientTLS": client_tls},
        }))
        .unwrap()
    };
    world.a.invoker.set_http_endpoints([
        endpoint(
            "secure",
            "127.0.0.1",
            port,
            json!({"rootCA": {"value": root_ca}}),
        ),
        endpoint(
            "named",
            "localhost",
            port,
            json!({"rootCA": {"value": root_ca}}),
        ),
        endpoint("untrusted", "127.0.0.1", port, Value::Null),
        endpoint(
            "half",
            "127.0.0.1",
            port,
            json!({"certificate": {"value": root_ca}}),
        ),
        endpoint(
            "mutual",
            "127.0.0.1",
            mutual_port,
            json!({"rootCA": {"value": root_ca},
                   "certificate": {"value": std::str::from_utf8(crate::test_support::CLIENT_CERT).unwrap()},
                   "privateKey": {"value": std::str::from_utf8(crate::test_support::CLIENT_KEY).unwrap()}}),
        ),
        endpoint(
            "anonymous",
            "127.0.0.1",
            mutual_port,
            json!({"rootCA": {"value": root_ca}}),
        ),
    ]);
    let call = |target: &str| {
        send(request(
            Method::POST,
            format!(
                "http://{}/v1.0/invoke/{target}/method/items?page=2",
                world.a.http
            ),
            "over tls",
        ))
    };

    for target in ["secure", "named", "mutual"] {
        let reply = call(target).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        let seen = reply.json();
        assert_eq!(seen["path"], "/items");
        assert_eq!(seen["query"], "page=2");
        assert_eq!(seen["body"], "over tls");
    }

    for target in [
        "untrusted".to_string(),
        format!("https%3A%2F%2F127.0.0.1%3A{port}"),
    ] {
        let reply = call(&target).await;
        assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
        let message = reply.json()["message"].as_str().unwrap().to_string();
        assert!(message.contains("invalid peer certificate"), "{message}");
    }

    // A server that demands a client certificate turns away an endpoint without one.
    let reply = call("anonymous").await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);

    let reply = call("half").await;
    assert_eq!(
        reply.json()["message"],
        "failed to invoke, id: half, err: clientTLS of HTTPEndpoint half needs both certificate and privateKey"
    );
}

// ---------------------------------------------------------------------------------------
// gRPC caller

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_to_http_reports_the_http_status() {
    let world = world().await;
    let mut client = dapr_client(&world.a).await;
    let mut call =
        tonic::Request::new(invoke_request("b", "orders", "grpc body", Verb::Put, "a=b"));
    call.metadata_mut()
        .insert("x-custom", "from-grpc".parse().unwrap());
    let reply = client.invoke_service(call).await.unwrap();
    assert_eq!(reply.metadata().get("dapr-http-status").unwrap(), "200");
    assert!(reply.metadata().get("dapr-content-type").is_some());
    let message = reply.into_inner();
    assert_eq!(message.content_type, "application/json");
    let seen: Value = serde_json::from_slice(&message.data.unwrap().value).unwrap();
    assert_eq!(seen["method"], "PUT");
    assert_eq!(seen["path"], "/orders");
    assert_eq!(seen["query"], "a=b");
    assert_eq!(seen["body"], "grpc body");
    assert_eq!(seen["headers"]["x-custom"], "from-grpc");
    assert_eq!(seen["headers"]["dapr-caller-app-id"], "a");
    assert!(seen["headers"].get("te").is_none());

    let status = client
        .invoke_service(invoke_request("b", "status/404", "", Verb::Get, ""))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound);
    assert_eq!(status.message(), "Not Found");
    assert_eq!(status.metadata().get("dapr-http-status").unwrap(), "404");
    let details = rpc::Status::decode(status.details()).unwrap();
    let info = rpc::ErrorInfo::decode(details.details[0].value.as_slice()).unwrap();
    assert_eq!(info.domain, "dapr.io");
    assert_eq!(info.metadata["http.code"], "404");
    assert_eq!(info.metadata["http.error_message"], "app says 404");

    let status = client
        .invoke_service(invoke_request("b", "status/400", "", Verb::Get, ""))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Internal);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_calls_without_an_http_extension_are_refused_by_http_apps() {
    let world = world().await;
    let mut client = dapr_client(&world.a).await;
    let mut request = invoke_request("b", "echo", "x", Verb::Get, "");
    if let Some(message) = request.message.as_mut() {
        message.http_extension = None;
    }
    let status = client.invoke_service(request).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Internal, "{status:?}");
    assert!(
        status.message().contains("missing HTTP extension field"),
        "{status:?}"
    );
    let status = client
        .invoke_service(invoke_request("b", "echo", "x", Verb::None, ""))
        .await
        .unwrap_err();
    assert!(
        status.message().contains("missing HTTP extension field"),
        "{status:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_to_grpc_returns_the_apps_status() {
    let world = world().await;
    let mut client = dapr_client(&world.a).await;
    let reply = client
        .invoke_service(invoke_request("c", "echo", "payload", Verb::None, ""))
        .await
        .unwrap();
    assert_eq!(reply.metadata().get("x-app").unwrap(), "grpc");
    assert!(reply.metadata().get("dapr-http-status").is_none());
    let message = reply.into_inner();
    assert_eq!(message.content_type, "text/plain");
    assert_eq!(
        String::from_utf8(message.data.unwrap().value).unwrap(),
        "echo|a|NONE|||payload"
    );

    let status = client
        .invoke_service(invoke_request("c", "fail", "", Verb::None, ""))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound);
    assert_eq!(status.message(), "no such order");

    let status = client
        .invoke_service(invoke_request("nobody", "x", "", Verb::None, ""))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Internal);
    assert_eq!(
        status.message(),
        "failed to invoke, id: nobody, err: couldn't find service: nobody"
    );
}

// ---------------------------------------------------------------------------------------
// Streaming

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_bodies_stream_while_the_app_produces() {
    let world = world().await;
    let response = tokio::time::timeout(
        PATIENCE,
        http_client().request(request(
            Method::GET,
            format!("http://{}/v1.0/invoke/b/method/stream-out", world.a.http),
            Body::empty(),
        )),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body().into_data_stream();
    let mut received = Vec::new();
    // The app only produces its last part after the first one reached this client.
    while received.len() < 100_000 {
        let chunk = tokio::time::timeout(PATIENCE, body.next())
            .await
            .expect("the first part did not arrive while the app was still producing")
            .unwrap()
            .unwrap();
        received.extend_from_slice(&chunk);
    }
    world.b_turns.release.notify_one();
    while let Some(chunk) = tokio::time::timeout(PATIENCE, body.next()).await.unwrap() {
        received.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(received.len(), 100_006);
    assert!(received.ends_with(b"second"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_stream_while_the_caller_produces() {
    let world = world().await;
    for (sidecar, turns, target) in [
        (&world.a, &world.b_turns, "b"),
        (&world.b, &world.a_turns, "a"),
    ] {
        let (mut sender, receiver) =
            futures::channel::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
        let call = request(
            Method::POST,
            format!(
                "http://{}/v1.0/invoke/{target}/method/stream-in",
                sidecar.http
            ),
            Body::from_stream(receiver),
        );
        let reply = tokio::spawn(send(call));
        sender
            .send(Ok(Bytes::from(vec![b'x'; 300_000])))
            .await
            .unwrap();
        // The rest is only produced once the app has seen the first part.
        tokio::time::timeout(PATIENCE, turns.first_chunk_seen.notified())
            .await
            .expect("the app did not see the first part while the caller was still producing");
        sender
            .send(Ok(Bytes::from(vec![b'y'; 1000])))
            .await
            .unwrap();
        drop(sender);
        let reply = reply.await.unwrap();
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.text(), "received 301000");
    }
}

// ---------------------------------------------------------------------------------------
// gRPC proxying

async fn proxied_placement(sidecar: &Sidecar) -> PlacementClient<Channel> {
    PlacementClient::connect(format!("http://{}", sidecar.grpc))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bidi_streams_are_proxied_through_two_sidecars() {
    let world = world().await;
    let mut client = proxied_placement(&world.a).await;
    let (mut sender, receiver) = futures::channel::mpsc::unbounded::<Host>();
    let mut call = tonic::Request::new(receiver);
    call.metadata_mut()
        .insert("dapr-app-id", "c".parse().unwrap());
    sender
        .send(Host {
            name: "one".into(),
            port: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    let response = tokio::time::timeout(PATIENCE, client.report_dapr_status(call))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.metadata().get("x-app").unwrap(), "grpc");
    let mut replies = response.into_inner();
    let first = tokio::time::timeout(PATIENCE, replies.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.operation, "one@a->c");
    assert_eq!(first.version, 1);
    // The second message is sent only after the first reply came back.
    sender
        .send(Host {
            name: "two".into(),
            port: 2,
            ..Default::default()
        })
        .await
        .unwrap();
    let second = tokio::time::timeout(PATIENCE, replies.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(second.operation, "two@a->c");
    sender
        .send(Host {
            name: "fail".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let status = tokio::time::timeout(PATIENCE, replies.message())
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Aborted);
    assert_eq!(status.message(), "told to fail");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unary_calls_are_proxied_and_failures_are_grpc_errors() {
    let world = world().await;
    let channel = Channel::from_shared(format!("http://{}", world.b.grpc))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = AppCallbackClient::new(channel);
    let message = common::InvokeRequest {
        method: "echo".into(),
        data: Some(prost_types::Any {
            type_url: String::new(),
            value: b"proxied".to_vec(),
        }),
        content_type: String::new(),
        http_extension: None,
    };
    let mut call = tonic::Request::new(message.clone());
    call.metadata_mut()
        .insert("dapr-app-id", "c".parse().unwrap());
    call.metadata_mut()
        .insert("x-custom", "kept".parse().unwrap());
    let reply = client.on_invoke(call).await.unwrap().into_inner();
    assert_eq!(
        String::from_utf8(reply.data.unwrap().value).unwrap(),
        "echo|b|NONE||kept|proxied"
    );

    let status = client
        .on_invoke(tonic::Request::new(message.clone()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unknown);
    assert_eq!(
        status.message(),
        "failed to proxy request: required metadata dapr-callee-app-id or dapr-app-id not found"
    );

    let mut call = tonic::Request::new(message.clone());
    call.metadata_mut()
        .insert("dapr-app-id", "nobody".parse().unwrap());
    let status = client.on_invoke(call).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unknown);
    assert_eq!(status.message(), "couldn't find service: nobody");

    let dead_sidecar = closed_port().await;
    world
        .resolver
        .set("gone", "default", &format!("127.0.0.1:{dead_sidecar}"));
    let mut call = tonic::Request::new(message);
    call.metadata_mut()
        .insert("dapr-app-id", "gone".parse().unwrap());
    let status = client.on_invoke(call).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert_eq!(
        status.message(),
        format!(
            "connection error: desc = \"transport: Error while dialing: dial tcp 127.0.0.1:{dead_sidecar}: connect: connection refused\""
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_api_serves_unary_calls_and_checks_streams() {
    let world = world().await;
    let address = world
        .resolver
        .resolve(&ResolveRequest {
            app_id: "b".into(),
            namespace: "default".into(),
            port: 0,
        })
        .await
        .unwrap();
    let mut client = ServiceInvocationClient::connect(format!("http://{address}"))
        .await
        .unwrap();
    let metadata: HashMap<String, ListStringValue> = [(
        "X-Custom".to_string(),
        ListStringValue {
            values: vec!["unary".to_string()],
        },
    )]
    .into_iter()
    .collect();
    let request = InternalInvokeRequest {
        ver: 1,
        metadata: metadata.clone(),
        message: Some(common::InvokeRequest {
            method: "status/418".into(),
            data: None,
            content_type: String::new(),
            http_extension: Some(HttpExtension {
                verb: Verb::Get as i32,
                querystring: String::new(),
            }),
        }),
        actor: None,
    };
    let reply = client
        .call_local(request.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.status.unwrap().code, 418);
    assert_eq!(reply.headers["X-App-Error"].values, ["yes"]);
    let message = reply.message.unwrap();
    assert_eq!(message.content_type, "text/plain");
    assert_eq!(message.data.unwrap().value, b"app says 418");

    let mut echo = request.clone();
    echo.message.as_mut().unwrap().method = "echo".into();
    let reply = client.call_local(echo).await.unwrap().into_inner();
    let seen: Value = serde_json::from_slice(&reply.message.unwrap().data.unwrap().value).unwrap();
    assert_eq!(seen["headers"]["x-custom"], "unary");

    // A leading chunk without metadata is refused, as upstream refuses it.
    let mut bare = request.clone();
    bare.metadata.clear();
    let chunks = futures::stream::iter([InternalInvokeRequestStream {
        request: Some(bare),
        payload: None,
    }]);
    let status = client.call_local_stream(chunks).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);

    // Chunks out of sequence break the body the app reads.
    let mut upload = request;
    upload.message.as_mut().unwrap().method = "stream-in".into();
    upload.message.as_mut().unwrap().http_extension = Some(HttpExtension {
        verb: Verb::Post as i32,
        querystring: String::new(),
    });
    let chunk = |seq| InternalInvokeRequestStream {
        request: None,
        payload: Some(StreamPayload {
            data: b"data".to_vec(),
            seq,
        }),
    };
    let chunks = futures::stream::iter([
        InternalInvokeRequestStream {
            request: Some(upload.clone()),
            payload: Some(StreamPayload {
                data: b"first".to_vec(),
                seq: 0,
            }),
        },
        chunk(1),
        chunk(2),
    ]);
    let mut replies = client.call_local_stream(chunks).await.unwrap().into_inner();
    let head = replies.message().await.unwrap().unwrap().response.unwrap();
    assert_eq!(head.status.unwrap().code, 200);
    let mut body = Vec::new();
    while let Some(message) = replies.message().await.unwrap() {
        body.extend(message.payload.unwrap().data);
    }
    assert_eq!(body, b"received 13");
}

// ---------------------------------------------------------------------------------------
// Failures

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_get_upstreams_codes_and_messages() {
    let world = world().await;
    let dead_app = closed_port().await;
    let _d = start_sidecar("d", Some((dead_app, AppProtocol::Http)), &world.resolver).await;
    let get = |path: String| {
        send(request(
            Method::GET,
            format!("http://{}{path}", world.a.http),
            Body::empty(),
        ))
    };

    let reply = get("/not/an/api".into()).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(
        reply.json(),
        json!({"errorCode": "ERR_DIRECT_INVOKE",
               "message": "failed getting app id either from the URL path or the header dapr-app-id"})
    );

    let reply = get("/v1.0/invoke/nobody/method/x".into()).await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        reply.json(),
        json!({"errorCode": "ERR_DIRECT_INVOKE",
               "message": "failed to invoke, id: nobody, err: couldn't find service: nobody"})
    );

    let reply = get("/v1.0/invoke/a.b.c/method/x".into()).await;
    assert_eq!(
        reply.json()["message"],
        "failed to invoke, id: a.b.c, err: invalid app id a.b.c"
    );

    let reply = get("/v1.0/invoke/b/method/a%01b".into()).await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        reply.json()["message"]
            .as_str()
            .unwrap()
            .starts_with("failed to invoke, id: b, err: rpc error: code = InvalidArgument desc = invalid method: method contains control character at position 1"),
        "{}",
        reply.text()
    );

    // The target's app is down: the target sidecar answers, the app channel fails.
    let reply = get("/v1.0/invoke/d/method/m".into()).await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    let message = reply.json()["message"].as_str().unwrap().to_string();
    let expected = format!(
        "failed to invoke, id: d, err: rpc error: code = Internal desc = error invoking app channel: Get \"http://127.0.0.1:{dead_app}/m\": "
    );
    assert_eq!(
        message,
        format!("{expected}dial tcp 127.0.0.1:{dead_app}: connect: connection refused")
    );

    // The target's sidecar is down: retried, then reported as unavailable.
    let dead_sidecar = closed_port().await;
    world
        .resolver
        .set("gone", "default", &format!("127.0.0.1:{dead_sidecar}"));
    let started = std::time::Instant::now();
    let reply = get("/v1.0/invoke/gone/method/m".into()).await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    let message = reply.json()["message"].as_str().unwrap().to_string();
    assert_eq!(
        message,
        format!(
            "failed to invoke, id: gone, err: failed to invoke target gone after 3 retries. Error: rpc error: code = Unavailable desc = connection error: desc = \"transport: Error while dialing: dial tcp 127.0.0.1:{dead_sidecar}: connect: connection refused\""
        )
    );
    assert!(started.elapsed() >= Duration::from_secs(3));

    // A client-only sidecar has no app to call for its own id.
    let lonely = start_sidecar("lonely", None, &world.resolver).await;
    let reply = send(request(
        Method::GET,
        format!("http://{}/v1.0/invoke/lonely/method/m", lonely.http),
        Body::empty(),
    ))
    .await;
    assert_eq!(
        reply.json()["message"],
        "failed to invoke, id: lonely, err: cannot invoke local endpoint: app channel not initialized"
    );
    // ... and its internal API says so to callers.
    let reply = get("/v1.0/invoke/lonely/method/m".into()).await;
    assert_eq!(
        reply.json()["message"],
        "failed to invoke, id: lonely, err: rpc error: code = Internal desc = app channel is not initialized"
    );
}

// ---------------------------------------------------------------------------------------
// Client metrics of calls the sidecar makes itself

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_invocations_and_url_calls_are_measured_as_client_calls() {
    let (app, _) = start_http_app().await;
    let registry = dapr_kit::metrics::MetricsRegistry::new();
    let metrics = crate::observability::metrics::SidecarMetrics::register(
        &registry,
        &crate::observability::metrics::MetricsSettings::new("self", "default"),
    )
    .unwrap();
    let config = InvokerConfig {
        app_id: "self".to_string(),
        namespace: "default".to_string(),
        internal_grpc_port: 1,
        host_address: Some("127.0.0.1".to_string()),
        host_name: "test-host".to_string(),
    };
    let connection = AppConnection {
        address: "127.0.0.1".to_string(),
        port: app,
        protocol: AppProtocol::Http,
    };
    let channel = AppChannel::new(connection, 4 << 20, ChannelOptions::default()).unwrap();
    let invoker = Invoker::new(config, None, Some(channel)).with_metrics(metrics);
    let call = |method: &str, verb: Method| crate::invoke::InvokeRequest {
        method: method.to_string(),
        http_verb: Some(verb),
        query: String::new(),
        headers: HeaderMap::new(),
        content_type: None,
        data_type_url: None,
        body: Body::from("ping"),
    };

    let reply = invoker
        .invoke("self", call("orders", Method::PUT))
        .await
        .unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    let url = format!("http://127.0.0.1:{app}");
    let reply = invoker
        .invoke(&url, call("status/404", Method::GET))
        .await
        .unwrap();
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let dead = format!("http://127.0.0.1:{}", closed_port().await);
    invoker
        .invoke(&dead, call("gone", Method::POST))
        .await
        .unwrap_err();

    let text = registry.encode_text();
    for line in [
        r#"dapr_http_client_completed_count{app_id="self",method="PUT",path="/orders",status="200"} 1"#,
        r#"dapr_http_client_completed_count{app_id="self",method="GET",path="/status/404",status="404"} 1"#,
        r#"dapr_http_client_completed_count{app_id="self",method="POST",path="/gone",status="500"} 1"#,
    ] {
        assert!(text.contains(line), "missing {line}\n{text}");
    }
}

// ---------------------------------------------------------------------------------------
// Peers without CallLocalStream

/// A sidecar from before streaming invocation: only unary `CallLocal`, answering with the
/// method and body it received. With `read_first`, it refuses `CallLocalStream` only
/// after reading the whole request, so the body cannot be replayed.
struct UnaryOnlyPeer {
    read_first: bool,
}

#[tonic::async_trait]
impl dapr_proto::internals::service_invocation_server::ServiceInvocation for UnaryOnlyPeer {
    async fn call_local(
        &self,
        request: tonic::Request<InternalInvokeRequest>,
    ) -> Result<tonic::Response<dapr_proto::internals::InternalInvokeResponse>, tonic::Status> {
        let message = request.into_inner().message.unwrap_or_default();
        let data = message.data.unwrap_or_default().value;
        let text = format!("{}|{}", message.method, String::from_utf8_lossy(&data));
        Ok(tonic::Response::new(
            dapr_proto::internals::InternalInvokeResponse {
                status: Some(dapr_proto::internals::Status {
                    code: 200,
                    ..Default::default()
                }),
                message: Some(common::InvokeResponse {
                    data: Some(prost_types::Any {
                        type_url: String::new(),
                        value: text.into_bytes(),
                    }),
                    content_type: "text/plain".to_string(),
                }),
                ..Default::default()
            },
        ))
    }

    async fn call_local_stream(
        &self,
        request: tonic::Request<tonic::Streaming<InternalInvokeRequestStream>>,
    ) -> Result<
        tonic::Response<BoxStream<dapr_proto::internals::InternalInvokeResponseStream>>,
        tonic::Status,
    > {
        if self.read_first {
            let mut incoming = request.into_inner();
            while incoming.message().await?.is_some() {}
        }
        Err(tonic::Status::unimplemented("CallLocalStream"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_without_streaming_get_a_unary_call_with_the_whole_body() {
    let world = world().await;
    for (id, read_first) in [("old", false), ("old-slow", true)] {
        let server = dapr_proto::internals::service_invocation_server::ServiceInvocationServer::new(
            UnaryOnlyPeer { read_first },
        );
        let address = serve(tonic::service::Routes::new(server).into_axum_router()).await;
        world.resolver.set(id, "default", &address.to_string());
    }

    let payload = "x".repeat(100_000);
    let reply = send(request(
        Method::POST,
        format!("http://{}/v1.0/invoke/old/method/orders", world.a.http),
        payload.clone(),
    ))
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.text(), format!("orders|{payload}"));

    // A body too long to keep for a replay cannot be sent again: upstream's error.
    let reply = send(request(
        Method::POST,
        format!("http://{}/v1.0/invoke/old-slow/method/orders", world.a.http),
        vec![b'y'; crate::invoke::body_slot::REPLAY_LIMIT + (1 << 20)],
    ))
    .await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        reply
            .text()
            .contains("target app 'old-slow' is running a version of Dapr that does not support streaming-based service invocation"),
        "{}",
        reply.text()
    );
}

// ---------------------------------------------------------------------------------------
// Resiliency of proxied calls

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxied_unary_calls_are_retried_by_the_target_apps_policy() {
    let resolver = Arc::new(FixedResolver::default());
    let app = GrpcApp::default();
    let port = start_counted_grpc_app(app.clone()).await;
    start_sidecar("c", Some((port, AppProtocol::Grpc)), &resolver).await;
    let policies = dapr_resources::loader::parse_str(
        std::path::Path::new("resiliency.yaml"),
        r#"
apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata: {name: proxied}
spec:
  policies:
    retries:
      notFoundTwice:
        policy: constant
        duration: 10ms
        maxRetries: 2
        matching: {gRPCStatusCodes: "5"}
  targets:
    apps:
      c: {retry: notFoundTwice}
"#,
    )
    .unwrap()
    .resiliencies;
    let resiliency = Resiliency::compile(&policies, Default::default()).unwrap();
    let caller = start_resilient_sidecar("r", None, &resolver, resiliency).await;
    let channel = Channel::from_shared(format!("http://{}", caller.grpc))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = AppCallbackClient::new(channel);
    let call = |method: &str| {
        let mut call = tonic::Request::new(common::InvokeRequest {
            method: method.into(),
            data: Some(prost_types::Any {
                type_url: String::new(),
                value: b"again".to_vec(),
            }),
            content_type: String::new(),
            http_extension: None,
        });
        call.metadata_mut()
            .insert("dapr-app-id", "c".parse().unwrap());
        call
    };

    // NotFound matches the policy: 1 call + 2 retries, then the app's own status.
    let status = client.on_invoke(call("fail")).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound);
    assert_eq!(status.message(), "no such order");
    assert_eq!(
        app.failed_calls.load(std::sync::atomic::Ordering::SeqCst),
        3
    );

    // Successful calls pass once, the buffered request arriving whole.
    let reply = client.on_invoke(call("echo")).await.unwrap();
    assert_eq!(reply.metadata().get("x-app").unwrap(), "grpc");
    assert_eq!(
        String::from_utf8(reply.into_inner().data.unwrap().value).unwrap(),
        "echo|r|NONE|||again"
    );
}

//! End-to-end tests of the observability layers: real axum and tonic servers on loopback,
//! driven by real HTTP and gRPC clients, exporting to in-test collectors.

mod api_log;
mod collector;
mod grpc_metrics;
mod http_metrics;
mod stack;
mod trace_export;
mod trace_propagation;

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use dapr_kit::logging::{LogOptions, build_subscriber};
use dapr_proto::dapr::proto::common::v1::{InvokeRequest, InvokeResponse};
use dapr_proto::dapr::proto::runtime::v1::app_callback_server::AppCallback;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpListener;
use tracing_subscriber::fmt::MakeWriter;

/// Binds a loopback listener on a free port.
async fn loopback() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    (listener, address)
}

/// Serves `router` on loopback (with the peer address in the extensions).
async fn serve_router(router: axum::Router) -> SocketAddr {
    let (listener, address) = loopback().await;
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    address
}

/// Sends one HTTP/1.1 request and reads the whole response.
async fn http_call(
    address: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &'static str,
) -> http::Response<Bytes> {
    let mut request = http::Request::builder()
        .method(method)
        .uri(format!("http://{address}{path}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap();
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let response = client.request(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    http::Response::from_parts(parts, body)
}

/// Waits up to five seconds for `check` to hold (layers record when the server drops the
/// response body, which can be just after the client read it).
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    for _ in 0..100 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

/// The app side of service invocation over gRPC: echoes the data of method `echo`,
/// answers `NotFound` for anything else, and reports the trace context it was called with
/// in the response's content type.
#[derive(Debug, Default)]
struct EchoApp;

#[tonic::async_trait]
impl AppCallback for EchoApp {
    async fn on_invoke(
        &self,
        request: tonic::Request<InvokeRequest>,
    ) -> Result<tonic::Response<InvokeResponse>, tonic::Status> {
        let span = request
            .extensions()
            .get::<crate::observability::trace::ServerSpan>()
            .cloned();
        let invoke = request.into_inner();
        if invoke.method != "echo" {
            return Err(tonic::Status::not_found(format!(
                "no method {}",
                invoke.method
            )));
        }
        if let Some(span) = &span {
            span.set_name(format!("CallLocal/app/{}", invoke.method));
            span.set_attribute("dapr.invoke_method", invoke.method.clone());
        }
        Ok(tonic::Response::new(InvokeResponse {
            data: invoke.data,
            content_type: span
                .map(|span| span.context().traceparent())
                .unwrap_or_default(),
        }))
    }
}

/// Serves [`EchoApp`] with tonic on loopback, wrapped in `$layer`.
macro_rules! serve_echo_app {
    ($layer:expr) => {{
        let (listener, address) = $crate::observability::tests::loopback().await;
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        let server = tonic::transport::Server::builder()
            .layer($layer)
            .add_service(
                dapr_proto::dapr::proto::runtime::v1::app_callback_server::AppCallbackServer::new(
                    $crate::observability::tests::EchoApp,
                ),
            );
        tokio::spawn(async move { server.serve_with_incoming(incoming).await.unwrap() });
        address
    }};
}
use serve_echo_app;

/// A gRPC client of [`EchoApp`].
async fn echo_client(
    address: SocketAddr,
) -> dapr_proto::dapr::proto::runtime::v1::app_callback_client::AppCallbackClient<
    tonic::transport::Channel,
> {
    dapr_proto::dapr::proto::runtime::v1::app_callback_client::AppCallbackClient::connect(format!(
        "http://{address}"
    ))
    .await
    .unwrap()
}

/// An invocation of `method` carrying `data`.
fn invoke_request(method: &str, data: &[u8]) -> InvokeRequest {
    InvokeRequest {
        method: method.to_string(),
        data: Some(prost_types::Any {
            type_url: String::new(),
            value: data.to_vec(),
        }),
        ..InvokeRequest::default()
    }
}

/// Log lines written in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn lines(&self) -> Vec<serde_json::Value> {
        let bytes = self.0.lock().unwrap().clone();
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    fn lines_with_message(&self, message: &str) -> Vec<serde_json::Value> {
        self.lines()
            .into_iter()
            .filter(|line| line["msg"] == message)
            .collect()
    }
}

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'writer> MakeWriter<'writer> for Captured {
    type Writer = Captured;

    fn make_writer(&'writer self) -> Captured {
        self.clone()
    }
}

/// Captures this thread's log lines as JSON (the test runtime runs every task on it).
fn capture_logs() -> (Captured, tracing::subscriber::DefaultGuard) {
    let captured = Captured::default();
    let options = LogOptions {
        level: "info".to_string(),
        json: true,
    };
    let subscriber = build_subscriber("daprd", Some("myapp"), &options, captured.clone()).unwrap();
    (captured, tracing::subscriber::set_default(subscriber))
}

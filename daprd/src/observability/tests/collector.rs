//! A span collector run inside the tests: Zipkin v2 JSON (`POST /api/v2/spans`), OTLP over
//! HTTP/protobuf (`POST /v1/traces`) and OTLP over gRPC (`TraceService/Export`).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value;
use prost::Message;

use super::{loopback, serve_router};
use crate::test_support;

/// One span as an OTLP collector received it.
#[derive(Debug, Clone)]
pub(super) struct OtlpSpan {
    pub(super) service_name: String,
    pub(super) span: opentelemetry_proto::tonic::trace::v1::Span,
}

/// Everything received so far.
#[derive(Debug, Clone, Default)]
pub(super) struct Received {
    zipkin: Arc<Mutex<Vec<serde_json::Value>>>,
    otlp: Arc<Mutex<Vec<OtlpSpan>>>,
    content_types: Arc<Mutex<Vec<String>>>,
}

impl Received {
    pub(super) fn zipkin(&self) -> Vec<serde_json::Value> {
        self.zipkin.lock().unwrap().clone()
    }

    pub(super) fn otlp(&self) -> Vec<OtlpSpan> {
        self.otlp.lock().unwrap().clone()
    }

    pub(super) fn content_types(&self) -> Vec<String> {
        self.content_types.lock().unwrap().clone()
    }

    fn add_otlp(&self, request: ExportTraceServiceRequest) {
        let mut otlp = self.otlp.lock().unwrap();
        for resource_spans in request.resource_spans {
            let service_name = resource_spans
                .resource
                .iter()
                .flat_map(|resource| &resource.attributes)
                .find(|attribute| attribute.key == "service.name")
                .and_then(|attribute| attribute.value.as_ref()?.value.as_ref())
                .map(|value| match value {
                    any_value::Value::StringValue(name) => name.clone(),
                    other => format!("{other:?}"),
                })
                .unwrap_or_default();
            for scope_spans in resource_spans.scope_spans {
                for span in scope_spans.spans {
                    otlp.push(OtlpSpan {
                        service_name: service_name.clone(),
                        span,
                    });
                }
            }
        }
    }
}

async fn zipkin_spans(
    State(received): State<Received>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> StatusCode {
    if let Some(content_type) = headers.get(header::CONTENT_TYPE) {
        received
            .content_types
            .lock()
            .unwrap()
            .push(content_type.to_str().unwrap().to_string());
    }
    let spans: Vec<serde_json::Value> = serde_json::from_slice(&body).unwrap();
    received.zipkin.lock().unwrap().extend(spans);
    StatusCode::ACCEPTED
}

async fn otlp_traces(
    State(received): State<Received>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> impl axum::response::IntoResponse {
    if let Some(content_type) = headers.get(header::CONTENT_TYPE) {
        received
            .content_types
            .lock()
            .unwrap()
            .push(content_type.to_str().unwrap().to_string());
    }
    received.add_otlp(ExportTraceServiceRequest::decode(body).unwrap());
    (
        [(header::CONTENT_TYPE, "application/x-protobuf")],
        ExportTraceServiceResponse::default().encode_to_vec(),
    )
}

fn http_router(received: &Received) -> Router {
    Router::new()
        .route("/api/v2/spans", post(zipkin_spans))
        .route("/v1/traces", post(otlp_traces))
        .with_state(received.clone())
}

/// Starts the HTTP collector (Zipkin and OTLP/HTTP).
pub(super) async fn http_collector() -> (SocketAddr, Received) {
    let received = Received::default();
    (serve_router(http_router(&received)).await, received)
}

/// Serves `router` over TLS with the CA-signed collector certificate.
async fn serve_tls(router: Router, alpn: &[&[u8]]) -> SocketAddr {
    let (tcp, address) = loopback().await;
    let acceptor =
        test_support::tls_acceptor(test_support::SERVER_CERT, test_support::SERVER_KEY, alpn);
    let listener = test_support::TlsListener { tcp, acceptor };
    tokio::spawn(async move { axum::serve(listener, router).await });
    address
}

/// Starts the HTTP collector behind TLS.
pub(super) async fn https_collector() -> (SocketAddr, Received) {
    let received = Received::default();
    (
        serve_tls(http_router(&received), &[b"http/1.1"]).await,
        received,
    )
}

/// Starts the OTLP/gRPC collector behind TLS.
pub(super) async fn grpcs_collector() -> (SocketAddr, Received) {
    let received = Received::default();
    let router =
        tonic::service::Routes::new(TraceServiceServer::new(received.clone())).into_axum_router();
    (serve_tls(router, &[b"h2"]).await, received)
}

#[tonic::async_trait]
impl TraceService for Received {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.add_otlp(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// Starts the OTLP/gRPC collector.
pub(super) async fn grpc_collector() -> (SocketAddr, Received) {
    let received = Received::default();
    let (listener, address) = loopback().await;
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    let server =
        tonic::transport::Server::builder().add_service(TraceServiceServer::new(received.clone()));
    tokio::spawn(async move { server.serve_with_incoming(incoming).await.unwrap() });
    (address, received)
}

//! The apps behind the sidecars under test, kept minimal so the numbers are the sidecars':
//! an HTTP echo server, a gRPC `AppCallback` echo server, and an HTTP pub/sub subscriber
//! that records each delivery's end-to-end latency.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Result;
use bytes::Bytes;
use dapr_proto::common::{InvokeRequest, InvokeResponse};
use dapr_proto::runtime::app_callback_server::{AppCallback, AppCallbackServer};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

/// Microseconds since the Unix epoch.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_micros() as u64)
        .unwrap_or_default()
}

/// Serves `handler` over HTTP/1.1 and HTTP/2 on a free loopback port; returns the port.
async fn serve_http<H, Fut>(handler: H) -> Result<u16>
where
    H: Fn(hyper::Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = hyper::Response<Full<Bytes>>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            let handler = handler.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let handler = handler.clone();
                    async move { Ok::<_, Infallible>(handler(request).await) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(port)
}

/// An HTTP app answering every request with its body.
pub async fn http_echo() -> Result<u16> {
    serve_http(|request: hyper::Request<Incoming>| async move {
        let body = request
            .into_body()
            .collect()
            .await
            .map(|collected| collected.to_bytes())
            .unwrap_or_default();
        hyper::Response::new(Full::new(body))
    })
    .await
}

/// A gRPC app whose `OnInvoke` answers with the request's data.
#[derive(Debug, Clone, Copy)]
struct GrpcEcho;

#[tonic::async_trait]
impl AppCallback for GrpcEcho {
    async fn on_invoke(
        &self,
        request: tonic::Request<InvokeRequest>,
    ) -> Result<tonic::Response<InvokeResponse>, tonic::Status> {
        let request = request.into_inner();
        Ok(tonic::Response::new(InvokeResponse {
            data: request.data,
            content_type: request.content_type,
        }))
    }
}

/// Starts the gRPC echo app; returns its port.
pub async fn grpc_echo() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address: SocketAddr = listener.local_addr()?;
    let incoming = tokio_stream_of(listener);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(AppCallbackServer::new(GrpcEcho))
            .serve_with_incoming(incoming),
    );
    Ok(address.port())
}

/// The accepted connections of `listener` as the stream tonic serves.
fn tokio_stream_of(
    listener: TcpListener,
) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures::stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.map(|(stream, _)| {
            let _ = stream.set_nodelay(true);
            stream
        });
        Some((accepted, listener))
    })
}

/// What a subscriber saw: delivery latencies in microseconds and when the last one came.
#[derive(Debug, Default)]
pub struct Deliveries {
    /// One latency per delivered event.
    pub latencies_us: Vec<u64>,
    /// When the last delivery arrived (microseconds since the epoch).
    pub last_us: u64,
}

/// An HTTP subscriber: answers `GET /dapr/subscribe` with no subscriptions (they are
/// declarative) and records, for each event POSTed, the time since the `sent_us` its
/// data carries.
pub async fn subscriber() -> Result<(u16, Arc<Mutex<Deliveries>>)> {
    let deliveries = Arc::new(Mutex::new(Deliveries::default()));
    let seen = deliveries.clone();
    let port = serve_http(move |request: hyper::Request<Incoming>| {
        let seen = seen.clone();
        async move {
            if request.method() == hyper::Method::GET {
                return hyper::Response::new(Full::new(Bytes::from_static(b"[]")));
            }
            let body = request
                .into_body()
                .collect()
                .await
                .map(|collected| collected.to_bytes())
                .unwrap_or_default();
            let sent = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|event| event["data"]["sent_us"].as_u64());
            if let Some(sent) = sent {
                let now = now_us();
                let mut deliveries = seen
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                deliveries.latencies_us.push(now.saturating_sub(sent));
                deliveries.last_us = now;
            }
            hyper::Response::new(Full::new(Bytes::new()))
        }
    })
    .await?;
    Ok((port, deliveries))
}

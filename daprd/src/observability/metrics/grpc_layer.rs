//! The tower layer recording `dapr_grpc_io_server_*` for every RPC a gRPC server handles.
//! The method is the request's `:path` (`/package.Service/Method`), the status the
//! `grpc-status` of the response headers (trailers-only responses) or trailers, and the
//! sizes are the message payloads of unary calls.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, Uri};
use http_body::Body;
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use super::SidecarMetrics;
use crate::observability::body::{BodyEnd, BodyObserver, ObservedBody};
use crate::observability::grpc_status::{self, MessageTally};

/// Wraps a gRPC service (a tonic server's routes, or anything speaking gRPC over HTTP/2)
/// so each RPC is counted and timed by method and status. Streams (more than one message
/// either way) are counted and timed but not sized, as upstream.
///
/// The inner service receives the request with its body wrapped (to count the request
/// messages); tonic's `Server::builder().layer(..)` and a whole axum `Router` accept any
/// body type.
#[derive(Debug, Clone)]
pub struct GrpcServerMetricsLayer {
    metrics: SidecarMetrics,
}

impl GrpcServerMetricsLayer {
    /// Records into `metrics`.
    pub fn new(metrics: SidecarMetrics) -> Self {
        GrpcServerMetricsLayer { metrics }
    }
}

impl<S> Layer<S> for GrpcServerMetricsLayer {
    type Service = GrpcServerMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcServerMetrics {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// The service [`GrpcServerMetricsLayer`] produces.
#[derive(Debug, Clone)]
pub struct GrpcServerMetrics<S> {
    inner: S,
    metrics: SidecarMetrics,
}

/// Request message totals, shared between the request and response observers.
#[derive(Debug, Default)]
struct RequestTotals {
    payload_bytes: AtomicU64,
    messages: AtomicU64,
}

/// Counts the request's messages.
#[derive(Debug)]
pub struct GrpcRequestObserver {
    tally: MessageTally,
    totals: Arc<RequestTotals>,
}

impl BodyObserver for GrpcRequestObserver {
    fn on_data(&mut self, data: &Bytes) {
        self.tally.feed(data);
        self.totals
            .payload_bytes
            .store(self.tally.payload_bytes, Ordering::Relaxed);
        self.totals
            .messages
            .store(self.tally.messages, Ordering::Relaxed);
    }

    fn on_end(self, _end: BodyEnd) {}
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for GrpcServerMetrics<S>
where
    S: Service<Request<ObservedBody<ReqBody, GrpcRequestObserver>>, Response = Response<ResBody>>,
    ReqBody: Body<Data = Bytes>,
    ResBody: Body<Data = Bytes>,
{
    type Response = Response<ObservedBody<ResBody, GrpcCallObserver>>;
    type Error = S::Error;
    type Future = GrpcServerMetricsFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let totals = Arc::new(RequestTotals::default());
        let call = self.metrics.is_enabled().then(|| GrpcCall {
            metrics: self.metrics.clone(),
            uri: request.uri().clone(),
            request: totals.clone(),
            started: Instant::now(),
        });
        let request = request.map(|body| {
            ObservedBody::new(
                body,
                GrpcRequestObserver {
                    tally: MessageTally::default(),
                    totals,
                },
            )
        });
        GrpcServerMetricsFuture {
            inner: self.inner.call(request),
            call,
        }
    }
}

/// What is known of an RPC before its response.
#[derive(Debug)]
struct GrpcCall {
    metrics: SidecarMetrics,
    uri: Uri,
    request: Arc<RequestTotals>,
    started: Instant,
}

pin_project! {
    /// The response future of [`GrpcServerMetrics`].
    pub struct GrpcServerMetricsFuture<F> {
        #[pin]
        inner: F,
        call: Option<GrpcCall>,
    }
}

impl<F, ResBody, E> Future for GrpcServerMetricsFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
    ResBody: Body<Data = Bytes>,
{
    type Output = Result<Response<ObservedBody<ResBody, GrpcCallObserver>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = ready!(this.inner.poll(cx))?;
        let observer = GrpcCallObserver {
            call: this.call.take(),
            code: grpc_status::status_in(response.headers()),
            response: MessageTally::default(),
        };
        Poll::Ready(Ok(response.map(|body| ObservedBody::new(body, observer))))
    }
}

/// Records the RPC when its response body ends.
#[derive(Debug)]
pub struct GrpcCallObserver {
    call: Option<GrpcCall>,
    code: Option<i32>,
    response: MessageTally,
}

impl BodyObserver for GrpcCallObserver {
    fn on_data(&mut self, data: &Bytes) {
        self.response.feed(data);
    }

    fn on_trailers(&mut self, trailers: &HeaderMap) {
        if self.code.is_none() {
            self.code = grpc_status::status_in(trailers);
        }
    }

    fn on_end(self, end: BodyEnd) {
        let Some(call) = self.call else {
            return;
        };
        let code = self.code.unwrap_or(match end {
            BodyEnd::Abandoned => grpc_status::CODE_CANCELLED,
            BodyEnd::Complete | BodyEnd::Failed => grpc_status::CODE_UNKNOWN,
        });
        let request_messages = call.request.messages.load(Ordering::Relaxed);
        let sizes = (request_messages <= 1 && self.response.messages <= 1).then(|| {
            (
                call.request.payload_bytes.load(Ordering::Relaxed),
                self.response.payload_bytes,
            )
        });
        call.metrics
            .record_grpc_server(call.uri.path(), code, sizes, call.started.elapsed());
    }
}

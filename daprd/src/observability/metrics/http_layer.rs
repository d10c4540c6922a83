//! The tower layer recording `dapr_http_server_*` for every request an HTTP server
//! answers, once its response body has been sent (or abandoned).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, Uri, header};
use http_body::Body;
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use super::SidecarMetrics;
use crate::observability::body::{BodyEnd, BodyObserver, ObservedBody};

/// Wraps an HTTP service so each request is counted, timed and sized with upstream's
/// labels (`app_id`, `method`, `path`, `status`). The request size is its declared
/// `Content-Length`, as upstream; the response size is what was actually sent.
#[derive(Debug, Clone)]
pub struct HttpServerMetricsLayer {
    metrics: SidecarMetrics,
}

impl HttpServerMetricsLayer {
    /// Records into `metrics`.
    pub fn new(metrics: SidecarMetrics) -> Self {
        HttpServerMetricsLayer { metrics }
    }
}

impl<S> Layer<S> for HttpServerMetricsLayer {
    type Service = HttpServerMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpServerMetrics {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// The service [`HttpServerMetricsLayer`] produces.
#[derive(Debug, Clone)]
pub struct HttpServerMetrics<S> {
    inner: S,
    metrics: SidecarMetrics,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for HttpServerMetrics<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Body<Data = Bytes>,
{
    type Response = Response<ObservedBody<ResBody, HttpCallObserver>>;
    type Error = S::Error;
    type Future = HttpServerMetricsFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let call = self.metrics.is_enabled().then(|| HttpCall {
            metrics: self.metrics.clone(),
            method: request.method().clone(),
            uri: request.uri().clone(),
            request_bytes: declared_length(&request),
            started: Instant::now(),
        });
        HttpServerMetricsFuture {
            inner: self.inner.call(request),
            call,
        }
    }
}

fn declared_length<B>(request: &Request<B>) -> u64 {
    request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<i64>().ok())
        .map_or(0, |length| length.max(0) as u64)
}

/// What is known of a request before its response.
#[derive(Debug)]
struct HttpCall {
    metrics: SidecarMetrics,
    method: Method,
    uri: Uri,
    request_bytes: u64,
    started: Instant,
}

pin_project! {
    /// The response future of [`HttpServerMetrics`].
    pub struct HttpServerMetricsFuture<F> {
        #[pin]
        inner: F,
        call: Option<HttpCall>,
    }
}

impl<F, ResBody, E> Future for HttpServerMetricsFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
    ResBody: Body<Data = Bytes>,
{
    type Output = Result<Response<ObservedBody<ResBody, HttpCallObserver>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = ready!(this.inner.poll(cx))?;
        let observer = HttpCallObserver {
            call: this.call.take(),
            status: response.status(),
            response_bytes: 0,
        };
        Poll::Ready(Ok(response.map(|body| ObservedBody::new(body, observer))))
    }
}

/// Records the call when its response body ends.
#[derive(Debug)]
pub struct HttpCallObserver {
    call: Option<HttpCall>,
    status: StatusCode,
    response_bytes: u64,
}

impl BodyObserver for HttpCallObserver {
    fn on_data(&mut self, data: &Bytes) {
        self.response_bytes += data.len() as u64;
    }

    fn on_end(self, _end: BodyEnd) {
        if let Some(call) = self.call {
            call.metrics.record_http_server(
                &call.method,
                call.uri.path(),
                self.status.as_u16(),
                call.request_bytes,
                self.response_bytes,
                call.started.elapsed(),
            );
        }
    }
}

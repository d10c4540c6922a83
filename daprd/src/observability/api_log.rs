//! `--enable-api-logging`: one info line per API call once its response is complete,
//! with upstream's loggers and fields.
//!
//! HTTP (`dapr.runtime.http-info`, "HTTP API Called"): `method` (`GET /v1.0/state/x`, or
//! the endpoint name when URLs are obfuscated), `useragent` (when sent), `code` (the HTTP
//! status), `size` (response body bytes), `duration` (milliseconds).
//!
//! gRPC (`dapr.runtime.grpc.api-info`, "gRPC API Called"): `method` (the full method),
//! `useragent` (when sent), `code` (the numeric gRPC status), `duration` (milliseconds).

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, header};
use http_body::Body;
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use super::body::{BodyEnd, BodyObserver, ObservedBody};
use super::grpc_status;

/// The logger (target) of HTTP API lines.
pub const HTTP_TARGET: &str = "dapr.runtime.http-info";
/// The logger (target) of gRPC API lines.
pub const GRPC_TARGET: &str = "dapr.runtime.grpc.api-info";

/// Paths of the sidecar's own health endpoints.
const HEALTH_PATHS: [&str; 2] = ["/v1.0/healthz", "/v1.0/healthz/outbound"];

/// The name of the API a request reached (`GetState`, `InvokeService/orders`, ...),
/// logged instead of the URL when URLs are obfuscated. Handlers put it into the
/// response's extensions (with axum, return `Extension(EndpointName::from("GetState"))`
/// as part of the response).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointName(pub Cow<'static, str>);

impl From<&'static str> for EndpointName {
    fn from(name: &'static str) -> Self {
        EndpointName(Cow::Borrowed(name))
    }
}

impl From<String> for EndpointName {
    fn from(name: String) -> Self {
        EndpointName(Cow::Owned(name))
    }
}

/// The `spec.logging.apiLogging` options of the Configuration.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HttpApiLogSettings {
    /// Log the endpoint name instead of the method and path.
    pub obfuscate_urls: bool,
    /// Leave calls to the health endpoints out.
    pub omit_health_checks: bool,
}

/// Logs every HTTP API call.
#[derive(Debug, Clone, Default)]
pub struct HttpApiLogLayer {
    settings: HttpApiLogSettings,
}

impl HttpApiLogLayer {
    /// Logs with `settings`.
    pub fn new(settings: HttpApiLogSettings) -> Self {
        HttpApiLogLayer { settings }
    }
}

impl<S> Layer<S> for HttpApiLogLayer {
    type Service = HttpApiLog<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpApiLog {
            inner,
            settings: self.settings,
        }
    }
}

/// The service [`HttpApiLogLayer`] produces.
#[derive(Debug, Clone)]
pub struct HttpApiLog<S> {
    inner: S,
    settings: HttpApiLogSettings,
}

fn user_agent(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::USER_AGENT)
        .and_then(|value| value.to_str().ok())
        .filter(|agent| !agent.is_empty())
        .map(str::to_string)
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for HttpApiLog<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Body<Data = Bytes>,
{
    type Response = Response<ObservedBody<ResBody, HttpLogLine>>;
    type Error = S::Error;
    type Future = HttpApiLogFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let path = request.uri().path();
        let skip = self.settings.omit_health_checks && HEALTH_PATHS.contains(&path);
        let pending = (!skip).then(|| PendingHttpLine {
            method: (!self.settings.obfuscate_urls)
                .then(|| format!("{} {}", request.method(), path)),
            user_agent: user_agent(request.headers()),
            started: Instant::now(),
        });
        HttpApiLogFuture {
            inner: self.inner.call(request),
            pending,
        }
    }
}

/// What the line needs from the request.
#[derive(Debug)]
struct PendingHttpLine {
    /// `METHOD /path`, or `None` to log the endpoint name.
    method: Option<String>,
    user_agent: Option<String>,
    started: Instant,
}

pin_project! {
    /// The response future of [`HttpApiLog`].
    pub struct HttpApiLogFuture<F> {
        #[pin]
        inner: F,
        pending: Option<PendingHttpLine>,
    }
}

impl<F, ResBody, E> Future for HttpApiLogFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
    ResBody: Body<Data = Bytes>,
{
    type Output = Result<Response<ObservedBody<ResBody, HttpLogLine>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = ready!(this.inner.poll(cx))?;
        let line = HttpLogLine {
            pending: this.pending.take().map(|mut pending| {
                if pending.method.is_none() {
                    let name = response.extensions().get::<EndpointName>();
                    pending.method = Some(name.map(|name| name.0.to_string()).unwrap_or_default());
                }
                pending
            }),
            code: response.status().as_u16(),
            size: 0,
        };
        Poll::Ready(Ok(response.map(|body| ObservedBody::new(body, line))))
    }
}

/// Writes the HTTP line when the response body ends.
#[derive(Debug)]
pub struct HttpLogLine {
    pending: Option<PendingHttpLine>,
    code: u16,
    size: u64,
}

impl BodyObserver for HttpLogLine {
    fn on_data(&mut self, data: &Bytes) {
        self.size += data.len() as u64;
    }

    fn on_end(self, _end: BodyEnd) {
        let Some(pending) = self.pending else {
            return;
        };
        tracing::info!(
            target: HTTP_TARGET,
            duration = pending.started.elapsed().as_millis() as u64,
            method = %pending.method.unwrap_or_default(),
            useragent = pending.user_agent.as_deref(),
            code = self.code,
            size = self.size,
            "HTTP API Called"
        );
    }
}

/// Logs every gRPC API call.
#[derive(Debug, Clone, Default)]
pub struct GrpcApiLogLayer;

impl GrpcApiLogLayer {
    /// A layer.
    pub fn new() -> Self {
        GrpcApiLogLayer
    }
}

impl<S> Layer<S> for GrpcApiLogLayer {
    type Service = GrpcApiLog<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcApiLog { inner }
    }
}

/// The service [`GrpcApiLogLayer`] produces.
#[derive(Debug, Clone)]
pub struct GrpcApiLog<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for GrpcApiLog<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Body<Data = Bytes>,
{
    type Response = Response<ObservedBody<ResBody, GrpcLogLine>>;
    type Error = S::Error;
    type Future = GrpcApiLogFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let pending = PendingGrpcLine {
            method: request.uri().path().to_string(),
            user_agent: user_agent(request.headers()),
            started: Instant::now(),
        };
        GrpcApiLogFuture {
            inner: self.inner.call(request),
            pending: Some(pending),
        }
    }
}

/// What the line needs from the request.
#[derive(Debug)]
struct PendingGrpcLine {
    method: String,
    user_agent: Option<String>,
    started: Instant,
}

pin_project! {
    /// The response future of [`GrpcApiLog`].
    pub struct GrpcApiLogFuture<F> {
        #[pin]
        inner: F,
        pending: Option<PendingGrpcLine>,
    }
}

impl<F, ResBody, E> Future for GrpcApiLogFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
    ResBody: Body<Data = Bytes>,
{
    type Output = Result<Response<ObservedBody<ResBody, GrpcLogLine>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = ready!(this.inner.poll(cx))?;
        let line = GrpcLogLine {
            pending: this.pending.take(),
            code: grpc_status::status_in(response.headers()),
        };
        Poll::Ready(Ok(response.map(|body| ObservedBody::new(body, line))))
    }
}

/// Writes the gRPC line when the response body ends.
#[derive(Debug)]
pub struct GrpcLogLine {
    pending: Option<PendingGrpcLine>,
    code: Option<i32>,
}

impl BodyObserver for GrpcLogLine {
    fn on_trailers(&mut self, trailers: &HeaderMap) {
        if self.code.is_none() {
            self.code = grpc_status::status_in(trailers);
        }
    }

    fn on_end(self, end: BodyEnd) {
        let Some(pending) = self.pending else {
            return;
        };
        let code = self.code.unwrap_or(match end {
            BodyEnd::Abandoned => grpc_status::CODE_CANCELLED,
            BodyEnd::Complete | BodyEnd::Failed => grpc_status::CODE_UNKNOWN,
        });
        tracing::info!(
            target: GRPC_TARGET,
            method = %pending.method,
            useragent = pending.user_agent.as_deref(),
            duration = pending.started.elapsed().as_millis() as u64,
            code,
            "gRPC API Called"
        );
    }
}

//! The tower layer tracing HTTP API calls as upstream's HTTP tracing middleware does:
//! the span continues the caller's `traceparent` (or starts a trace), is named after the
//! path, ends when the response head is ready, and its context goes back to the caller
//! in the response's `traceparent` / `tracestate` unless the handler set them. Health
//! checks are not traced. Malformed `baggage` is refused with 400; valid baggage is echoed.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{Either, Full};
use opentelemetry::KeyValue;
use opentelemetry::trace::{SpanKind, Status};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use super::span::ActiveSpan;
use super::{BAGGAGE, TRACEPARENT, TRACESTATE, TraceContext, Tracing, baggage, inject_into};

/// Headers with this prefix become span attributes.
const DAPR_HEADER_PREFIX: &str = "dapr-";

/// The response body of a traced HTTP call: the handler's, or the refusal of bad baggage.
pub type HttpTraceBody<B> = Either<B, Full<Bytes>>;

/// Traces every HTTP API call (see the module docs). Handlers find a
/// [`super::ServerSpan`] and a [`TraceContext`] in the request extensions.
#[derive(Debug, Clone)]
pub struct HttpServerTraceLayer {
    tracing: Tracing,
}

impl HttpServerTraceLayer {
    /// Traces through `tracing` (a disabled one makes the layer a pass-through).
    pub fn new(tracing: Tracing) -> Self {
        HttpServerTraceLayer { tracing }
    }
}

impl<S> Layer<S> for HttpServerTraceLayer {
    type Service = HttpServerTrace<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpServerTrace {
            inner,
            tracing: self.tracing.clone(),
        }
    }
}

/// The service [`HttpServerTraceLayer`] produces.
#[derive(Debug, Clone)]
pub struct HttpServerTrace<S> {
    inner: S,
    tracing: Tracing,
}

/// What the span needs from the request, captured only for sampled spans.
#[derive(Debug)]
struct RequestFacts {
    attributes: Vec<KeyValue>,
}

impl RequestFacts {
    fn capture<B>(request: &Request<B>) -> Self {
        let mut dapr_headers = BTreeMap::new();
        for (name, value) in request.headers() {
            let name = name.as_str();
            if name.len() > "-bin".len()
                && name.starts_with(DAPR_HEADER_PREFIX)
                && let Ok(value) = value.to_str()
            {
                dapr_headers.insert(name.to_string(), value.to_string());
            }
        }
        let mut attributes: Vec<KeyValue> = dapr_headers
            .into_iter()
            .map(|(name, value)| KeyValue::new(name, value))
            .collect();
        let method = request.method().as_str().to_string();
        let path = request.uri().path();
        let target = request
            .uri()
            .path_and_query()
            .map_or(path, |target| target.as_str());
        attributes.extend([
            KeyValue::new("dapr.protocol", "http"),
            KeyValue::new("dapr.api", format!("{method} {path}")),
            KeyValue::new("http.request.method", method),
            KeyValue::new("url.full", target.to_string()),
        ]);
        if let Some(peer) = peer_address(request.extensions()) {
            attributes.push(KeyValue::new("server.address", peer.ip().to_string()));
            attributes.push(KeyValue::new("server.port", peer.port().to_string()));
        }
        RequestFacts { attributes }
    }
}

/// The caller's address, when the server recorded it (axum `ConnectInfo` or tonic's).
pub(super) fn peer_address(extensions: &http::Extensions) -> Option<SocketAddr> {
    extensions
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|info| info.0)
        .or_else(|| {
            extensions
                .get::<tonic::transport::server::TcpConnectInfo>()
                .and_then(|info| info.remote_addr)
        })
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for HttpServerTrace<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<HttpTraceBody<ResBody>>;
    type Error = S::Error;
    type Future = HttpServerTraceFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        if !self.tracing.is_enabled() || request.uri().path().contains("/healthz") {
            return HttpServerTraceFuture {
                state: CallState::Passthrough {
                    inner: self.inner.call(request),
                },
            };
        }
        let baggage = match baggage::from_headers(request.headers()) {
            Ok(baggage) => baggage,
            Err(reason) => {
                return HttpServerTraceFuture {
                    state: CallState::Refused {
                        response: Some(refusal(&reason)),
                    },
                };
            }
        };
        let parent = TraceContext::from_http_headers(request.headers());
        let span = self.tracing.start_span(
            request.uri().path().to_string(),
            SpanKind::Client,
            parent.as_ref(),
        );
        let facts = span
            .as_ref()
            .filter(|span| span.is_sampled())
            .map(|_| RequestFacts::capture(&request));
        if let Some(span) = &span {
            request.extensions_mut().insert(span.handle().clone());
            request
                .extensions_mut()
                .insert(span.handle().context().clone());
        }
        HttpServerTraceFuture {
            state: CallState::Traced {
                inner: self.inner.call(request),
                span,
                facts,
                baggage,
            },
        }
    }
}

fn refusal(reason: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(format!(
        "invalid baggage header: {reason}\n"
    ))));
    *response.status_mut() = StatusCode::BAD_REQUEST;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

pin_project! {
    /// The response future of [`HttpServerTrace`].
    pub struct HttpServerTraceFuture<F> {
        #[pin]
        state: CallState<F>,
    }
}

pin_project! {
    #[project = CallStateProjection]
    enum CallState<F> {
        Passthrough {
            #[pin]
            inner: F,
        },
        Traced {
            #[pin]
            inner: F,
            span: Option<ActiveSpan>,
            facts: Option<RequestFacts>,
            baggage: Option<String>,
        },
        Refused {
            response: Option<Response<Full<Bytes>>>,
        },
    }
}

impl<F, ResBody, E> Future for HttpServerTraceFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = Result<Response<HttpTraceBody<ResBody>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            CallStateProjection::Passthrough { inner } => {
                let response = ready!(inner.poll(cx))?;
                Poll::Ready(Ok(response.map(Either::Left)))
            }
            CallStateProjection::Refused { response } => {
                let response = response
                    .take()
                    .unwrap_or_else(|| refusal("already answered"));
                Poll::Ready(Ok(response.map(Either::Right)))
            }
            CallStateProjection::Traced {
                inner,
                span,
                facts,
                baggage,
            } => {
                let mut response = ready!(inner.poll(cx))?;
                let status = response.status();
                if let Some(baggage) = baggage.take()
                    && let Ok(value) = HeaderValue::from_str(&baggage)
                {
                    response.headers_mut().entry(BAGGAGE).or_insert(value);
                }
                if let Some(span) = span.take() {
                    add_trace_headers(response.headers_mut(), span.handle().context());
                    let mut attributes = facts
                        .take()
                        .map(|facts| facts.attributes)
                        .unwrap_or_default();
                    attributes.push(KeyValue::new(
                        "dapr.status_code",
                        status.as_u16().to_string(),
                    ));
                    span.finish(attributes, span_status(status));
                }
                Poll::Ready(Ok(response.map(Either::Left)))
            }
        }
    }
}

/// Sets `traceparent` / `tracestate` unless the handler already set a `traceparent`.
fn add_trace_headers(headers: &mut HeaderMap, context: &TraceContext) {
    if headers.contains_key(TRACEPARENT) {
        return;
    }
    let state = headers.remove(TRACESTATE);
    inject_into(headers, context);
    if let (Some(state), false) = (state, headers.contains_key(TRACESTATE)) {
        headers.insert(TRACESTATE, state);
    }
}

/// 4xx and 5xx are errors described as `Code(404): Not Found`; the rest leaves the status
/// unset.
fn span_status(status: StatusCode) -> Status {
    if status.as_u16() >= 400 {
        let reason = status.canonical_reason().unwrap_or("Unknown");
        Status::error(format!("Code({}): {reason}", status.as_u16()))
    } else {
        Status::Unset
    }
}

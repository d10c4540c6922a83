//! The tower layer tracing gRPC calls as upstream's gRPC tracing interceptors do: the
//! span continues the caller's `grpc-trace-bin` (or `traceparent`), is named after the
//! full method, and ends with the call's status. Its kind follows the method: server for
//! sidecar-to-sidecar (`dapr.proto.internals`) and workflow calls, client for the Dapr
//! API, and for proxied calls server only when this sidecar is the callee. Except for
//! proxied calls and `InvokeService`, the span context goes back in the response's
//! `grpc-trace-bin` header. Malformed `baggage` is refused with `InvalidArgument`.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, header};
use http_body::Body;
use http_body_util::{Either, Full};
use opentelemetry::KeyValue;
use opentelemetry::trace::{SpanKind, Status};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use super::span::ActiveSpan;
use super::{BAGGAGE, GRPC_TRACE_BIN, TraceContext, Tracing, baggage, binary_header};
use crate::observability::body::{BodyEnd, BodyObserver, ObservedBody};
use crate::observability::grpc_status;

const INTERNAL_PREFIX: &str = "/dapr.proto.internals.";
const RUNTIME_PREFIX: &str = "/dapr.proto.runtime.";
const WORKFLOW_PREFIX: &str = "/TaskHubSidecarService";
const INVOKE_SERVICE: &str = "/dapr.proto.runtime.v1.Dapr/InvokeService";
/// Metadata naming the target of a proxied call.
const PROXY_CALLEE: &str = "dapr-callee-app-id";
/// Older metadata naming the target of a proxied call.
const PROXY_APP_ID: &str = "dapr-app-id";
/// Metadata keys with this prefix (not binary ones) become span attributes.
const DAPR_METADATA_PREFIX: &str = "dapr-";
/// gRPC `INVALID_ARGUMENT`.
const CODE_INVALID_ARGUMENT: i32 = 3;

/// The response body of a traced gRPC call: the handler's, or the refusal of bad baggage.
pub type GrpcTraceBody<B> = Either<ObservedBody<B, GrpcSpanEnd>, Full<Bytes>>;

/// Traces every gRPC call (see the module docs). Handlers find a
/// [`super::ServerSpan`] and a [`TraceContext`] in the request extensions (tonic keeps
/// them in `tonic::Request::extensions()`).
#[derive(Debug, Clone)]
pub struct GrpcServerTraceLayer {
    tracing: Tracing,
}

impl GrpcServerTraceLayer {
    /// Traces through `tracing` (a disabled one makes the layer a pass-through).
    pub fn new(tracing: Tracing) -> Self {
        GrpcServerTraceLayer { tracing }
    }
}

impl<S> Layer<S> for GrpcServerTraceLayer {
    type Service = GrpcServerTrace<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcServerTrace {
            inner,
            tracing: self.tracing.clone(),
        }
    }
}

/// The service [`GrpcServerTraceLayer`] produces.
#[derive(Debug, Clone)]
pub struct GrpcServerTrace<S> {
    inner: S,
    tracing: Tracing,
}

/// How upstream treats a method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MethodClass {
    /// Sidecar-to-sidecar or workflow: a server span.
    Served,
    /// The Dapr API: a client span.
    Api,
    /// Anything else is proxied to an app.
    Proxied,
}

fn classify(method: &str) -> MethodClass {
    if method.starts_with(INTERNAL_PREFIX) || method.starts_with(WORKFLOW_PREFIX) {
        MethodClass::Served
    } else if method.starts_with(RUNTIME_PREFIX) {
        MethodClass::Api
    } else {
        MethodClass::Proxied
    }
}

fn first_value<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for GrpcServerTrace<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Body<Data = Bytes>,
{
    type Response = Response<GrpcTraceBody<ResBody>>;
    type Error = S::Error;
    type Future = GrpcServerTraceFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let Some(app_id) = self.tracing.app_id() else {
            return GrpcServerTraceFuture {
                state: CallState::Traced {
                    inner: self.inner.call(request),
                    pending: None,
                },
            };
        };
        let baggage = match baggage::from_headers(request.headers()) {
            Ok(baggage) => baggage,
            Err(reason) => {
                return GrpcServerTraceFuture {
                    state: CallState::Refused {
                        response: Some(refusal(&format!("invalid baggage header: {reason}"))),
                    },
                };
            }
        };
        let method = request.uri().path().to_string();
        let class = classify(&method);
        let kind = match class {
            MethodClass::Served => SpanKind::Server,
            MethodClass::Api => SpanKind::Client,
            MethodClass::Proxied => {
                let callee = first_value(request.headers(), PROXY_CALLEE)
                    .or_else(|| first_value(request.headers(), PROXY_APP_ID));
                if callee == Some(app_id) {
                    SpanKind::Server
                } else {
                    SpanKind::Client
                }
            }
        };
        let parent = TraceContext::from_grpc_metadata(request.headers());
        let span = self
            .tracing
            .start_span(method.clone(), kind, parent.as_ref());
        let attributes = span
            .as_ref()
            .filter(|span| span.is_sampled())
            .map(|_| span_attributes(request.headers(), &method, class))
            .unwrap_or_default();
        if let Some(span) = &span {
            request.extensions_mut().insert(span.handle().clone());
            request
                .extensions_mut()
                .insert(span.handle().context().clone());
        }
        let returns_context = class != MethodClass::Proxied && method != INVOKE_SERVICE;
        GrpcServerTraceFuture {
            state: CallState::Traced {
                inner: self.inner.call(request),
                pending: span.map(|span| PendingSpan {
                    span,
                    attributes,
                    returns_context,
                    baggage,
                }),
            },
        }
    }
}

/// `dapr-*` metadata, then (for non-proxied calls) the protocol and API attributes.
fn span_attributes(headers: &HeaderMap, method: &str, class: MethodClass) -> Vec<KeyValue> {
    let mut metadata = BTreeMap::new();
    for (name, value) in headers {
        let name = name.as_str();
        if name.starts_with(DAPR_METADATA_PREFIX)
            && !name.ends_with("-bin")
            && let Ok(value) = value.to_str()
        {
            metadata
                .entry(name.to_string())
                .or_insert_with(|| value.to_string());
        }
    }
    let mut attributes: Vec<KeyValue> = metadata
        .into_iter()
        .map(|(name, value)| KeyValue::new(name, value))
        .collect();
    if class != MethodClass::Proxied {
        attributes.push(KeyValue::new("dapr.protocol", "grpc"));
        attributes.push(KeyValue::new("dapr.api", method.to_string()));
    }
    attributes
}

/// A trailers-only gRPC response with `INVALID_ARGUMENT`.
fn refusal(message: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert(
        grpc_status::GRPC_STATUS,
        HeaderValue::from(CODE_INVALID_ARGUMENT),
    );
    if let Ok(message) = HeaderValue::from_str(&grpc_status::percent_encode(message)) {
        headers.insert(grpc_status::GRPC_MESSAGE, message);
    }
    response
}

/// A started span waiting for the response.
#[derive(Debug)]
struct PendingSpan {
    span: ActiveSpan,
    attributes: Vec<KeyValue>,
    returns_context: bool,
    baggage: Option<String>,
}

pin_project! {
    /// The response future of [`GrpcServerTrace`].
    pub struct GrpcServerTraceFuture<F> {
        #[pin]
        state: CallState<F>,
    }
}

pin_project! {
    #[project = CallStateProjection]
    enum CallState<F> {
        Traced {
            #[pin]
            inner: F,
            pending: Option<PendingSpan>,
        },
        Refused {
            response: Option<Response<Full<Bytes>>>,
        },
    }
}

impl<F, ResBody, E> Future for GrpcServerTraceFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
    ResBody: Body<Data = Bytes>,
{
    type Output = Result<Response<GrpcTraceBody<ResBody>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            CallStateProjection::Refused { response } => {
                let response = response
                    .take()
                    .unwrap_or_else(|| refusal("already answered"));
                Poll::Ready(Ok(response.map(Either::Right)))
            }
            CallStateProjection::Traced { inner, pending } => {
                let mut response = ready!(inner.poll(cx))?;
                let mut pending = pending.take();
                if let Some(pending) = &mut pending {
                    let headers = response.headers_mut();
                    if let Some(baggage) = pending.baggage.take()
                        && let Ok(value) = HeaderValue::from_str(&baggage)
                    {
                        headers.entry(BAGGAGE).or_insert(value);
                    }
                    if pending.returns_context {
                        let binary =
                            binary_header::encode(&pending.span.handle().context().to_binary());
                        if let Ok(value) = HeaderValue::from_str(&binary) {
                            headers.insert(GRPC_TRACE_BIN, value);
                        }
                    }
                }
                let end = GrpcSpanEnd {
                    code: grpc_status::status_in(response.headers()),
                    message: grpc_status::message_in(response.headers()),
                    pending,
                };
                Poll::Ready(Ok(
                    response.map(|body| Either::Left(ObservedBody::new(body, end)))
                ))
            }
        }
    }
}

/// Ends the span with the call's status when the response body ends.
#[derive(Debug)]
pub struct GrpcSpanEnd {
    code: Option<i32>,
    message: String,
    pending: Option<PendingSpan>,
}

impl BodyObserver for GrpcSpanEnd {
    fn on_trailers(&mut self, trailers: &HeaderMap) {
        if self.code.is_none() {
            self.code = grpc_status::status_in(trailers);
            self.message = grpc_status::message_in(trailers);
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
        let status = if code == grpc_status::CODE_OK {
            Status::Unset
        } else {
            Status::error(self.message)
        };
        pending.span.finish(pending.attributes, status);
    }
}

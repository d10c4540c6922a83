//! The core of service invocation, shared by the HTTP and gRPC APIs: find the target,
//! then call it. The sidecar's own app goes through the app channel; another app goes
//! through its sidecar's internal API (`CallLocalStream`, bodies streamed both ways over a
//! pooled HTTP/2 connection); `HTTPEndpoint` resources and URLs are called directly.

use super::app_call::{AppCallMeter, CalleeProtocol};
use crate::observability::metrics::{InvocationKind, SidecarMetrics};
use crate::observability::trace::{TraceContext, inject_grpc_metadata};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use dapr_components::nameresolution::{NameResolver, ResolveRequest};
use dapr_proto::internals::service_invocation_client::ServiceInvocationClient;
use dapr_resources::HttpEndpoint;
use http_body_util::BodyExt;
use tokio::sync::watch;
use tonic::Code;

use super::body_slot::BodySlot;
use super::endpoint::HttpEndpoints;
use super::message::{InvokeRequest, InvokeResponse};
use super::metadata::{
    self, CALLEE_APP_ID_HEADER, CALLER_APP_ID_HEADER, CALLER_NAMESPACE_HEADER,
    DESTINATION_APP_ID_HEADER,
};
use super::peers::{PeerPool, dial_failure};
use super::status::status_error_text;
use super::stream::{self, aborted};
use super::target::Target;
use crate::channel::AppChannel;
use crate::error::ApiError;
use crate::resiliency::{Resiliency, RetryPolicy};

/// Lookups of a name that resolves to an empty address before giving up.
const RESOLVE_ATTEMPTS: u32 = 5;
/// Pause between those lookups.
const RESOLVE_BACKOFF: Duration = Duration::from_millis(100);
/// Environment variable that overrides the address this host reports.
pub const HOST_IP_ENV: &str = "DAPR_HOST_IP";

/// Who this sidecar is, for invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvokerConfig {
    /// This sidecar's app id.
    pub app_id: String,
    /// This sidecar's namespace (`NAMESPACE`), for ids given without one.
    pub namespace: String,
    /// The internal gRPC port; name resolvers that only find hosts assume peers use it.
    pub internal_grpc_port: u16,
    /// The address this host is known by (`DAPR_HOST_IP`), for `X-Forwarded-For` and
    /// `Forwarded`; `None` leaves it out.
    pub host_address: Option<String>,
    /// This host's name, for `X-Forwarded-Host` and `Forwarded`.
    pub host_name: String,
}

impl InvokerConfig {
    /// The identity of an app, with the host's address from `DAPR_HOST_IP` and its name
    /// from the system.
    pub fn new(app_id: &str, namespace: &str, internal_grpc_port: u16) -> Self {
        Self {
            app_id: app_id.to_string(),
            namespace: namespace.to_string(),
            internal_grpc_port,
            host_address: std::env::var(HOST_IP_ENV).ok().filter(|ip| !ip.is_empty()),
            host_name: dapr_kit::process::hostname(),
        }
    }
}

/// Where a target lives.
#[derive(Debug)]
pub enum Route {
    /// This sidecar's own app.
    Local,
    /// An app behind another sidecar.
    Remote {
        /// The target app id.
        id: String,
        /// The target's namespace.
        namespace: String,
        /// `host:port` of the target sidecar's internal API.
        address: String,
    },
    /// An `HTTPEndpoint` resource.
    Endpoint(Arc<HttpEndpoint>),
    /// A URL given as the target.
    Url(String),
}

/// A failed call to a peer sidecar.
enum PeerFailure {
    /// The peer or the transport answered with an error status.
    Status(tonic::Status),
    /// The caller's request body broke while it was being sent.
    Body(String),
}

/// Service invocation for one sidecar; shared (`Arc`) by every API edge.
pub struct Invoker {
    config: InvokerConfig,
    resolver: Option<Arc<dyn NameResolver>>,
    app_channel: Option<AppChannel>,
    peers: PeerPool,
    endpoints: HttpEndpoints,
    metrics: SidecarMetrics,
    /// The resiliency policies applied to invocations.
    pub(super) resiliency: Arc<Resiliency>,
}

impl std::fmt::Debug for Invoker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invoker")
            .field("config", &self.config)
            .field("resolver", &self.resolver.as_ref().map(|r| r.component()))
            .field("app_channel", &self.app_channel)
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}

impl Invoker {
    /// Invocation for the app `config` describes. Without a `resolver` only the own app,
    /// `HTTPEndpoint`s and URLs can be called; without an `app_channel` (no `--app-port`)
    /// calls for the own app fail.
    pub fn new(
        config: InvokerConfig,
        resolver: Option<Arc<dyn NameResolver>>,
        app_channel: Option<AppChannel>,
    ) -> Self {
        Self {
            config,
            resolver,
            app_channel,
            peers: PeerPool::new(),
            endpoints: HttpEndpoints::new(),
            metrics: SidecarMetrics::disabled(),
            resiliency: Arc::new(Resiliency::default()),
        }
    }

    /// Applies `resiliency`'s app policies (and its built-in service retries).
    pub fn with_resiliency(mut self, resiliency: Arc<Resiliency>) -> Self {
        self.resiliency = resiliency;
        self
    }

    /// Records upstream's service-invocation metrics in `metrics`.
    pub fn with_metrics(mut self, metrics: SidecarMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// The metrics invocations are recorded in.
    pub fn metrics(&self) -> &SidecarMetrics {
        &self.metrics
    }

    /// This sidecar's identity.
    pub fn config(&self) -> &InvokerConfig {
        &self.config
    }

    /// The channel to this sidecar's app, if it has one.
    pub fn app_channel(&self) -> Option<&AppChannel> {
        self.app_channel.as_ref()
    }

    /// The resiliency policies applied to invocations.
    pub fn resiliency(&self) -> &Resiliency {
        &self.resiliency
    }

    /// The pooled connections to peers (and to the app, for proxied gRPC calls).
    pub fn peers(&self) -> &PeerPool {
        &self.peers
    }

    /// Replaces the `HTTPEndpoint` resources targets may name.
    pub fn set_http_endpoints(&self, endpoints: impl IntoIterator<Item = HttpEndpoint>) {
        self.endpoints.replace(endpoints);
    }

    /// Finds where `target` lives: parses it, then checks URLs, `HTTPEndpoint`s and the
    /// own app before asking the name resolver. Errors are upstream's reasons.
    pub async fn route(&self, target: &str) -> Result<Route, String> {
        let (id, namespace) = match Target::parse(target, &self.config.namespace) {
            Err(err) => return Err(err.to_string()),
            Ok(Target::Url(url)) => return Ok(Route::Url(url)),
            Ok(Target::App { id, namespace }) => (id, namespace),
        };
        if let Some(endpoint) = self.endpoints.get(&id) {
            return Ok(Route::Endpoint(endpoint));
        }
        if id == self.config.app_id && namespace == self.config.namespace {
            return Ok(Route::Local);
        }
        let address = self.resolve(&id, &namespace).await?;
        Ok(Route::Remote {
            id,
            namespace,
            address,
        })
    }

    /// `host:port` of the sidecar of app `id` in `namespace`.
    pub async fn resolve(&self, id: &str, namespace: &str) -> Result<String, String> {
        let Some(resolver) = &self.resolver else {
            return Err("name resolver not initialized".to_string());
        };
        let request = ResolveRequest {
            app_id: id.to_string(),
            namespace: namespace.to_string(),
            port: self.config.internal_grpc_port,
        };
        for attempt in 1..=RESOLVE_ATTEMPTS {
            let address = resolver
                .resolve(&request)
                .await
                .map_err(|err| err.to_string())?;
            if !address.is_empty() {
                return Ok(address);
            }
            if attempt < RESOLVE_ATTEMPTS {
                tokio::time::sleep(RESOLVE_BACKOFF).await;
            }
        }
        Err(format!(
            "resolver returned empty address for app id {namespace}/{id}"
        ))
    }

    /// One call of `request.method` (already normalized) on `target` (an app id,
    /// `id.namespace`, an `HTTPEndpoint` name or a URL), returning the reply as soon as its
    /// status and headers are known; the body streams after. A reply with any status is a
    /// success: only failures to get one are errors (`ERR_DIRECT_INVOKE`, as upstream words
    /// them). `service_retries` repeats calls that never reached the peer sidecar.
    pub(super) async fn invoke_once(
        &self,
        target: &str,
        request: InvokeRequest,
        service_retries: Option<&RetryPolicy>,
    ) -> Result<InvokeResponse, ApiError> {
        let fail = |reason: String| ApiError::direct_invoke(target, reason);
        match self.route(target).await.map_err(fail)? {
            Route::Url(url) => {
                let meter = AppCallMeter::start(&request, CalleeProtocol::Http);
                let reply = self.endpoints.invoke_url(&url, request).await;
                meter.finish(&self.metrics, reply.as_ref().ok());
                reply.map_err(fail)
            }
            Route::Endpoint(endpoint) => {
                let meter = AppCallMeter::start(&request, CalleeProtocol::Http);
                let reply = self.endpoints.invoke_endpoint(&endpoint, request).await;
                meter.finish(&self.metrics, reply.as_ref().ok());
                reply.map_err(fail)
            }
            Route::Local => self.invoke_local(target, request).await,
            Route::Remote {
                id,
                namespace,
                address,
            } => {
                tracing::debug!("invoking {id}.{namespace} at {address}");
                self.metrics
                    .record_invocation_request_sent(&id, InvocationKind::Streaming);
                let started = std::time::Instant::now();
                let reply = self
                    .invoke_remote(target, &id, &address, request, service_retries)
                    .await;
                let status = match &reply {
                    Ok(response) => response.status_label(),
                    Err(err) => i32::from(err.http_status.as_u16()),
                };
                self.metrics.record_invocation_response_received(
                    &id,
                    status,
                    InvocationKind::Streaming,
                    started.elapsed(),
                );
                reply
            }
        }
    }

    /// Calls the own app, with the caller and callee both this app.
    async fn invoke_local(
        &self,
        target: &str,
        mut request: InvokeRequest,
    ) -> Result<InvokeResponse, ApiError> {
        let Some(channel) = &self.app_channel else {
            return Err(ApiError::direct_invoke(
                target,
                "cannot invoke local endpoint: app channel not initialized",
            ));
        };
        let own = self.config.app_id.clone();
        self.stamp_identity(&mut request.headers, &own);
        let meter = AppCallMeter::start(&request, CalleeProtocol::of(channel.app().protocol));
        let reply = channel.invoke(request).await;
        meter.finish(&self.metrics, reply.as_ref().ok());
        reply.map_err(|err| {
            if err.code == "ERR_DIRECT_INVOKE" {
                ApiError::direct_invoke(target, err.message)
            } else {
                err
            }
        })
    }

    /// Sets the caller and callee headers, replacing whatever the caller sent.
    fn stamp_identity(&self, headers: &mut HeaderMap, callee: &str) {
        let stamps = [
            (CALLER_NAMESPACE_HEADER, self.config.namespace.as_str()),
            (CALLER_APP_ID_HEADER, self.config.app_id.as_str()),
            (CALLEE_APP_ID_HEADER, callee),
        ];
        for (name, value) in stamps {
            match HeaderValue::from_str(value) {
                Ok(value) => {
                    headers.insert(HeaderName::from_static(name), value);
                }
                Err(_) => {
                    headers.remove(name);
                }
            }
        }
    }

    /// Appends this host to `X-Forwarded-For`, `X-Forwarded-Host` and `Forwarded`.
    fn add_forwarded(&self, headers: &mut HeaderMap) {
        let mut forwarded = String::new();
        if let Some(address) = &self.config.host_address {
            append_header(headers, "x-forwarded-for", address);
            let quoted = if address.contains(':') {
                format!("\"[{address}]\"")
            } else {
                address.clone()
            };
            forwarded = format!("for={quoted};by={quoted}");
        }
        if !self.config.host_name.is_empty() {
            append_header(headers, "x-forwarded-host", &self.config.host_name);
            if !forwarded.is_empty() {
                forwarded.push(';');
            }
            forwarded.push_str("host=");
            forwarded.push_str(&self.config.host_name);
        }
        append_header(headers, "forwarded", &forwarded);
    }

    /// Calls app `id` through its sidecar at `address`. A peer that cannot be reached is
    /// tried again by `service_retries` while the request body is still unsent.
    async fn invoke_remote(
        &self,
        target: &str,
        id: &str,
        address: &str,
        mut request: InvokeRequest,
        service_retries: Option<&RetryPolicy>,
    ) -> Result<InvokeResponse, ApiError> {
        self.add_forwarded(&mut request.headers);
        if let Ok(value) = HeaderValue::from_str(id) {
            request
                .headers
                .insert(HeaderName::from_static(DESTINATION_APP_ID_HEADER), value);
        }
        self.stamp_identity(&mut request.headers, id);
        let head = stream::request_head(&request, metadata::to_internal(&request.headers));
        let slot = BodySlot::new(request.body);

        let mut delays = service_retries.map(RetryPolicy::delays);
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let status = match self.call_peer(address, head.clone(), slot.clone()).await {
                Ok(response) => return Ok(response),
                Err(PeerFailure::Body(reason)) => {
                    return Err(ApiError::direct_invoke(target, reason));
                }
                Err(PeerFailure::Status(status)) if status.code() == Code::Unimplemented => {
                    return self.call_peer_unary(target, id, address, head, &slot).await;
                }
                Err(PeerFailure::Status(status)) => status,
            };
            let text = status_error_text(status.code(), status.message());
            if !matches!(status.code(), Code::Unavailable | Code::Unauthenticated) {
                let mut error = ApiError::direct_invoke(target, text);
                if status.code() == Code::PermissionDenied {
                    error.http_status = StatusCode::FORBIDDEN;
                }
                return Err(error);
            }
            self.peers.forget(address);
            let delay = delays.as_mut().and_then(Iterator::next);
            if let Some(delay) = delay.filter(|_| slot.is_untouched()) {
                tracing::debug!("retrying the call to {id} at {address}: {text}");
                tokio::time::sleep(delay).await;
                continue;
            }
            return Err(ApiError::direct_invoke(
                target,
                format!(
                    "failed to invoke target {id} after {} retries. Error: {text}",
                    attempt - 1
                ),
            ));
        }
    }

    /// One `CallLocalStream` call: sends the leading message, then the body from `slot`,
    /// and returns the reply once its leading message arrived.
    async fn call_peer(
        &self,
        address: &str,
        head: dapr_proto::internals::InternalInvokeRequest,
        slot: BodySlot,
    ) -> Result<InvokeResponse, PeerFailure> {
        let channel = self
            .peers
            .channel(address)
            .map_err(|reason| PeerFailure::Status(tonic::Status::unavailable(reason)))?;
        let mut client = ServiceInvocationClient::new(channel);
        let (abort, mut aborted_by) = watch::channel(None);
        let trace = trace_context_of(&head);
        let mut outgoing = tonic::Request::new(stream::outgoing_request(head, slot.clone(), abort));
        // The peer's server span continues the caller's trace (gRPC metadata carries it).
        if let Some(context) = trace {
            inject_grpc_metadata(outgoing.metadata_mut(), &context);
        }
        let replies = tokio::select! {
            reply = client.call_local_stream(outgoing) => reply.map_err(|status| {
                PeerFailure::Status(transport_status(address, status))
            })?,
            reason = aborted(&mut aborted_by) => return Err(PeerFailure::Body(reason)),
        };
        let response_abort = aborted_by.clone();
        let response = tokio::select! {
            response = stream::incoming_response(replies.into_inner(), response_abort) => {
                response.map_err(PeerFailure::Status)
            }
            reason = aborted(&mut aborted_by) => Err(PeerFailure::Body(reason)),
        };
        if !matches!(&response, Err(PeerFailure::Status(status)) if status.code() == Code::Unimplemented)
        {
            slot.settle();
        }
        response
    }

    /// Sends the call again as one unary `CallLocal` to a peer that refused
    /// `CallLocalStream` (a sidecar older than streaming invocation), when the body can be
    /// replayed; otherwise fails with upstream's message.
    async fn call_peer_unary(
        &self,
        target: &str,
        id: &str,
        address: &str,
        mut head: dapr_proto::internals::InternalInvokeRequest,
        slot: &BodySlot,
    ) -> Result<InvokeResponse, ApiError> {
        let fail = |reason: String| ApiError::direct_invoke(target, reason);
        let Some(body) = slot.replay().await else {
            tracing::error!(
                "app {id} does not support streaming-based service invocation and the request cannot be replayed; upgrade the Dapr sidecar of the target app"
            );
            return Err(fail(format!(
                "target app '{id}' is running a version of Dapr that does not support streaming-based service invocation"
            )));
        };
        tracing::warn!(
            "app {id} does not support streaming-based service invocation (most likely an older Dapr version); falling back to unary calls"
        );
        let data = body
            .collect()
            .await
            .map_err(|err| fail(err.to_string()))?
            .to_bytes();
        if let Some(message) = head.message.as_mut() {
            let any = message.data.get_or_insert_with(prost_types::Any::default);
            any.value = data.to_vec();
        }
        let trace = trace_context_of(&head);
        let channel = self.peers.channel(address).map_err(fail)?;
        let mut outgoing = tonic::Request::new(head);
        if let Some(context) = trace {
            inject_grpc_metadata(outgoing.metadata_mut(), &context);
        }
        let mut reply = ServiceInvocationClient::new(channel)
            .call_local(outgoing)
            .await
            .map_err(|status| {
                let status = transport_status(address, status);
                fail(status_error_text(status.code(), status.message()))
            })?
            .into_inner();
        let data = reply
            .message
            .as_mut()
            .and_then(|message| message.data.as_mut())
            .map(|any| std::mem::take(&mut any.value))
            .unwrap_or_default();
        stream::response_from_head(reply, Body::from(data))
            .ok_or_else(|| fail("the peer's reply has no status".to_string()))
    }
}

/// A status from the transport (not the peer) reworded to say which address failed how.
fn transport_status(address: &str, status: tonic::Status) -> tonic::Status {
    let from_transport = std::error::Error::source(&status).is_some();
    if status.code() == Code::Unavailable && from_transport {
        tonic::Status::unavailable(dial_failure(address, &status))
    } else {
        status
    }
}

/// Appends `value` to header `name`, when it is a valid header value.
fn append_header(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.append(HeaderName::from_static(name), value);
    }
}

/// The trace context the call carries in its metadata (`traceparent`/`tracestate`, in
/// whatever letter case the caller's headers used).
fn trace_context_of(head: &dapr_proto::internals::InternalInvokeRequest) -> Option<TraceContext> {
    let mut headers = http::HeaderMap::new();
    for name in ["traceparent", "tracestate"] {
        let value = head
            .metadata
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .and_then(|(_, list)| list.values.first());
        if let Some(value) = value.and_then(|value| http::HeaderValue::from_str(value).ok()) {
            headers.insert(name, value);
        }
    }
    TraceContext::from_http_headers(&headers)
}

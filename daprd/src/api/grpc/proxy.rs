//! gRPC proxying: an app's own gRPC client calls any service on its sidecar with the
//! metadata `dapr-app-id: <target>`, and the call reaches the target app's gRPC server
//! unchanged (every streaming kind, headers and trailers), through the target's sidecar.
//!
//! The proxy forwards raw HTTP/2 requests: on the public gRPC server it sends the call to
//! the target sidecar's internal server with `dapr-caller-app-id`/`dapr-callee-app-id`
//! (or straight to the own app when the target is this app); on the internal server the
//! callee id names this app, so the call goes to the app. Both servers mount the same
//! handler as the fallback for services they do not serve themselves.

use crate::api::middleware::API_TOKEN_HEADER;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use tonic::Status;
use tower::ServiceExt;

use super::message_limit::{LimitedMessages, Tripwire};
use crate::acl::{AccessControl, CallerIdentity};
use crate::config::AppProtocol;
use crate::invoke::metadata::{
    APP_ID_HEADER, CALLEE_APP_ID_HEADER, CALLER_APP_ID_HEADER, CALLER_NAMESPACE_HEADER,
    is_hop_by_hop,
};
use crate::invoke::peers::dial_failure;
use crate::invoke::target::{Target, normalize_method};
use crate::invoke::{Invoker, Route};

/// The proxy of one sidecar.
#[derive(Debug, Clone)]
pub struct GrpcProxy {
    invoker: Arc<Invoker>,
    app_api_token: Option<HeaderValue>,
    max_message_size: usize,
    /// Checks calls arriving from other sidecars (internal server only).
    access_control: Option<Arc<AccessControl>>,
}

/// Where a proxied call goes.
enum Destination {
    /// This sidecar's app.
    App(AppRoute),
    /// The sidecar of app `id`, at `host:port`.
    Peer {
        /// The target app id.
        id: String,
        /// The peer's internal API address.
        address: String,
    },
}

impl GrpcProxy {
    /// The proxy for `invoker`'s app; `app_api_token` (`APP_API_TOKEN`) is presented to
    /// the app as `dapr-api-token`. Messages larger than `max_message_size` bytes
    /// (`--max-body-size`) stop the call in either direction.
    pub fn new(
        invoker: Arc<Invoker>,
        app_api_token: Option<String>,
        max_message_size: usize,
    ) -> Self {
        let app_api_token = app_api_token.and_then(|token| HeaderValue::from_str(&token).ok());
        Self {
            invoker,
            app_api_token,
            max_message_size,
            access_control: None,
        }
    }

    /// Checks calls from other sidecars against `access_control` (the operation is the
    /// gRPC method path, without a verb), before they reach the app.
    pub fn with_access_control(mut self, access_control: Option<Arc<AccessControl>>) -> Self {
        self.access_control = access_control;
        self
    }

    /// Sends `parts` and `body` over `channel`, checking message sizes both ways. A
    /// failure is the transport's error, or `ResourceExhausted` when the request carried
    /// a message over the limit.
    async fn send(
        &self,
        channel: tonic::transport::Channel,
        parts: axum::http::request::Parts,
        body: Body,
    ) -> Result<Response, SendFailure> {
        let limit = self.max_message_size;
        let tripwire = Tripwire::default();
        let body = tonic::body::Body::new(LimitedMessages::new(body, limit, tripwire.clone()));
        match channel
            .oneshot(axum::http::Request::from_parts(parts, body))
            .await
        {
            Ok(response) => Ok(response
                .map(|body| Body::new(LimitedMessages::new(body, limit, Tripwire::default())))),
            Err(error) => Err(match tripwire.get() {
                Some(too_large) => {
                    SendFailure::TooLarge(Status::resource_exhausted(too_large.to_string()))
                }
                None => SendFailure::Transport(error),
            }),
        }
    }

    /// An axum router whose fallback proxies every request; mount it as the fallback of
    /// a gRPC server's routes (`routes.into_axum_router().fallback_service(proxy.router())`).
    pub fn router(self) -> axum::Router {
        let proxy = Arc::new(self);
        axum::Router::new().fallback(move |request: Request| {
            let proxy = Arc::clone(&proxy);
            async move { proxy.forward(request).await }
        })
    }

    /// Forwards one call and returns the destination's reply as it streams back, or a
    /// gRPC error when the call cannot be forwarded.
    pub async fn forward(&self, request: Request) -> Response {
        let outcome = match self.app_policy(request.headers()) {
            Some(policy) => self.forward_under(policy, request).await,
            None => self.try_forward(request).await,
        };
        match outcome {
            Ok(response) => response,
            Err(status) => status.into_http::<Body>().into_response(),
        }
    }

    /// The target app's resiliency policy, for calls from the own app (the caller's
    /// sidecar applies it); `None` when there is none or the call came from a peer.
    fn app_policy(&self, headers: &HeaderMap) -> Option<crate::resiliency::Policy> {
        if headers.contains_key(CALLEE_APP_ID_HEADER) {
            return None;
        }
        let target = header_text(headers, APP_ID_HEADER)?;
        Some(self.invoker.resiliency().app_policy(&target)).filter(|policy| !policy.is_empty())
    }

    pub(super) async fn try_forward(&self, request: Request) -> Result<Response, Status> {
        let (mut parts, body) = request.into_parts();
        let target = header_text(&parts.headers, CALLEE_APP_ID_HEADER)
            .or_else(|| header_text(&parts.headers, APP_ID_HEADER))
            .ok_or_else(|| {
                Status::unknown(format!(
                    "failed to proxy request: required metadata {CALLEE_APP_ID_HEADER} or {APP_ID_HEADER} not found"
                ))
            })?;
        let destination = self.destination(&target, parts.uri.path()).await?;
        // Every call reaching the internal server's proxy for this app is checked, on its
        // normalized method, whatever headers it carries.
        if let (Some(access_control), Destination::App(_)) = (&self.access_control, &destination) {
            let operation = normalize_method(parts.uri.path())
                .map_err(|reason| Status::invalid_argument(format!("invalid method: {reason}")))?;
            let caller = CallerIdentity::of_internal_call(&parts.headers);
            access_control.authorize(caller.as_ref(), &operation, None)?;
        }

        let headers = &mut parts.headers;
        headers.remove(APP_ID_HEADER);
        headers.remove(axum::http::header::HOST);
        let doomed: Vec<HeaderName> = headers
            .keys()
            .filter(|name| is_hop_by_hop(name.as_str()) && name.as_str() != "te")
            .cloned()
            .collect();
        for name in doomed {
            headers.remove(name);
        }
        let address = match destination {
            Destination::App(route) => {
                headers.remove(API_TOKEN_HEADER);
                if let Some(token) = &self.app_api_token {
                    headers.insert(API_TOKEN_HEADER, token.clone());
                }
                match route {
                    AppRoute::Channel(channel) => {
                        return self.send(channel, parts, body).await.map_err(
                            |failure| match failure {
                                SendFailure::TooLarge(status) => status,
                                SendFailure::Transport(err) => {
                                    Status::unavailable(format!("failed to reach the app: {err}"))
                                }
                            },
                        );
                    }
                    AppRoute::Dial(address) => address,
                }
            }
            Destination::Peer { id, address } => {
                let own = self.invoker.config();
                for (name, value) in [
                    (CALLER_APP_ID_HEADER, own.app_id.as_str()),
                    (CALLER_NAMESPACE_HEADER, own.namespace.as_str()),
                    (CALLEE_APP_ID_HEADER, id.as_str()),
                ] {
                    let value = HeaderValue::from_str(value).map_err(|_| {
                        Status::invalid_argument(format!("invalid app id {value:?}"))
                    })?;
                    headers.insert(HeaderName::from_static(name), value);
                }
                address
            }
        };

        let channel = self
            .invoker
            .peers()
            .channel(&address)
            .map_err(Status::unavailable)?;
        match self.send(channel, parts, body).await {
            Ok(response) => Ok(response),
            Err(SendFailure::TooLarge(status)) => Err(status),
            Err(SendFailure::Transport(err)) => {
                self.invoker.peers().forget(&address);
                Err(Status::unavailable(dial_failure(&address, &err)))
            }
        }
    }

    /// Decides where a call for `target` goes: the own app when the id is this app's
    /// (whatever the namespace, as upstream decides), else the target's sidecar.
    async fn destination(&self, target: &str, path: &str) -> Result<Destination, Status> {
        let own = &self.invoker.config().app_id;
        let local = matches!(
            Target::parse(target, &self.invoker.config().namespace),
            Ok(Target::App { ref id, .. }) if id == own
        );
        if local {
            normalize_method(path)
                .map_err(|reason| Status::invalid_argument(format!("invalid method: {reason}")))?;
            return self.app_route().map(Destination::App);
        }
        match self.invoker.route(target).await.map_err(Status::unknown)? {
            Route::Remote { id, address, .. } => Ok(Destination::Peer { id, address }),
            Route::Local => self.app_route().map(Destination::App),
            Route::Endpoint(_) | Route::Url(_) => Err(Status::unknown(format!(
                "failed to proxy request: {target} is not an app that serves gRPC"
            ))),
        }
    }

    /// How to reach the own app: its gRPC channel (`grpc`/`grpcs`), or a clear-text
    /// HTTP/2 connection to its port for apps declared as HTTP.
    fn app_route(&self) -> Result<AppRoute, Status> {
        let channel = self
            .invoker
            .app_channel()
            .ok_or_else(|| Status::internal("app channel is not initialized"))?;
        if let Some(transport) = channel.grpc_transport() {
            return Ok(AppRoute::Channel(transport));
        }
        let app = channel.app();
        if app.protocol == AppProtocol::Https {
            return Err(Status::unimplemented(
                "the app is served over HTTPS (app protocol https), not gRPC; gRPC calls cannot be proxied to it",
            ));
        }
        let host = app.address.trim_start_matches('[').trim_end_matches(']');
        Ok(AppRoute::Dial(if host.contains(':') {
            format!("[{host}]:{}", app.port)
        } else {
            format!("{host}:{}", app.port)
        }))
    }
}

/// How a call for the own app travels.
enum AppRoute {
    /// Over the app channel's HTTP/2 connection.
    Channel(tonic::transport::Channel),
    /// Over a pooled clear-text connection to `host:port`.
    Dial(String),
}

/// Why a forwarded call got no reply.
enum SendFailure {
    /// The caller sent a message over the size limit (`ResourceExhausted`).
    TooLarge(Status),
    /// The destination could not be reached.
    Transport(tonic::transport::Error),
}

/// The first value of header `name`, when it is non-empty text.
fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .filter(|value| !value.is_empty())
        .map(str::to_string)
}

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

use crate::config::AppProtocol;
use crate::invoke::metadata::{
    APP_ID_HEADER, CALLEE_APP_ID_HEADER, CALLER_APP_ID_HEADER, is_hop_by_hop,
};
use crate::invoke::peers::dial_failure;
use crate::invoke::target::{Target, normalize_method};
use crate::invoke::{Invoker, Route};

/// The proxy of one sidecar.
#[derive(Debug, Clone)]
pub struct GrpcProxy {
    invoker: Arc<Invoker>,
    app_api_token: Option<HeaderValue>,
}

/// Where a proxied call goes.
enum Destination {
    /// This sidecar's app, at `host:port`.
    App(String),
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
    /// the app as `dapr-api-token`.
    pub fn new(invoker: Arc<Invoker>, app_api_token: Option<String>) -> Self {
        let app_api_token = app_api_token.and_then(|token| HeaderValue::from_str(&token).ok());
        Self {
            invoker,
            app_api_token,
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
        match self.try_forward(request).await {
            Ok(response) => response,
            Err(status) => status.into_http::<Body>().into_response(),
        }
    }

    async fn try_forward(&self, request: Request) -> Result<Response, Status> {
        let (mut parts, body) = request.into_parts();
        let target = header_text(&parts.headers, CALLEE_APP_ID_HEADER)
            .or_else(|| header_text(&parts.headers, APP_ID_HEADER))
            .ok_or_else(|| {
                Status::unknown(format!(
                    "failed to proxy request: required metadata {CALLEE_APP_ID_HEADER} or {APP_ID_HEADER} not found"
                ))
            })?;
        let destination = self.destination(&target, parts.uri.path()).await?;

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
            Destination::App(address) => {
                headers.remove(API_TOKEN_HEADER);
                if let Some(token) = &self.app_api_token {
                    headers.insert(API_TOKEN_HEADER, token.clone());
                }
                address
            }
            Destination::Peer { id, address } => {
                let caller = &self.invoker.config().app_id;
                for (name, value) in [
                    (CALLER_APP_ID_HEADER, caller.as_str()),
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
        let outgoing = axum::http::Request::from_parts(parts, tonic::body::Body::new(body));
        match channel.oneshot(outgoing).await {
            Ok(response) => Ok(response.map(Body::new)),
            Err(err) => {
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
            return self.app_address().map(Destination::App);
        }
        match self.invoker.route(target).await.map_err(Status::unknown)? {
            Route::Remote { id, address, .. } => Ok(Destination::Peer { id, address }),
            Route::Local => self.app_address().map(Destination::App),
            Route::Endpoint(_) | Route::Url(_) => Err(Status::unknown(format!(
                "failed to proxy request: {target} is not an app that serves gRPC"
            ))),
        }
    }

    /// `host:port` of the own app's gRPC server.
    fn app_address(&self) -> Result<String, Status> {
        let channel = self
            .invoker
            .app_channel()
            .ok_or_else(|| Status::internal("app channel is not initialized"))?;
        let app = channel.app();
        if matches!(app.protocol, AppProtocol::Https | AppProtocol::Grpcs) {
            return Err(Status::unimplemented(
                "proxying gRPC calls to an app served over TLS is not supported yet",
            ));
        }
        let host = app.address.trim_start_matches('[').trim_end_matches(']');
        Ok(if host.contains(':') {
            format!("[{host}]:{}", app.port)
        } else {
            format!("{host}:{}", app.port)
        })
    }
}

/// The first value of header `name`, when it is non-empty text.
fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .filter(|value| !value.is_empty())
        .map(str::to_string)
}

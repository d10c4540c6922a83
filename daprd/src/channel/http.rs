//! Calling an HTTP app (`http`, `https`, `h2c`) through one pooled client. Request and
//! response bodies stream through; nothing is buffered.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::BodyExt;
use hyper::body::{Frame, SizeHint};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::sync::OwnedSemaphorePermit;

use super::connect::AppConnector;
use super::{errors, headers};
use crate::api::middleware::API_TOKEN_HEADER;
use crate::error::ApiError;
use crate::invoke::{InvokeRequest, InvokeResponse};
use crate::middleware::Pipeline;

/// Idle connections kept to the app, as upstream's transport keeps.
const MAX_IDLE_CONNECTIONS: usize = 64;

/// The HTTP side of the app channel.
pub(super) struct HttpChannel {
    client: Client<AppConnector, Body>,
    /// `http://host:port` or `https://host:port`.
    base_url: String,
    /// Value of `dapr-api-token` for every call, from `APP_API_TOKEN`.
    api_token: Option<HeaderValue>,
}

impl HttpChannel {
    /// A channel to `base_url`; `http2_only` for `h2c` apps (prior knowledge).
    pub(super) fn new(
        connector: AppConnector,
        base_url: String,
        http2_only: bool,
        api_token: Option<HeaderValue>,
    ) -> Self {
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_max_idle_per_host(MAX_IDLE_CONNECTIONS)
            .http2_only(http2_only)
            .build(connector);
        Self {
            client,
            base_url,
            api_token,
        }
    }

    /// `<base>/<method>?<query>`, the method path normalised so it cannot climb above `/`.
    fn url(&self, method: &str, query: &str) -> String {
        let mut url = String::with_capacity(self.base_url.len() + method.len() + query.len() + 2);
        url.push_str(&self.base_url);
        url.push_str(&clean_path(method));
        if !query.is_empty() {
            url.push('?');
            url.push_str(query);
        }
        url
    }

    /// Sends the request and returns as soon as the app's status and headers arrive; the
    /// body follows as the caller reads it. `permit` (the app concurrency slot) is held
    /// until the response body is finished or dropped, as upstream holds it.
    pub(super) async fn invoke(
        &self,
        request: InvokeRequest,
        permit: Option<OwnedSemaphorePermit>,
        pipeline: Option<&Pipeline>,
    ) -> Result<InvokeResponse, ApiError> {
        let verb = match request.http_verb {
            None => return Err(errors::missing_http_extension()),
            Some(Method::CONNECT) => return Err(errors::invalid_verb()),
            Some(verb) => verb,
        };
        let url = self.url(&request.method, &request.query);
        let uri = Uri::try_from(url.as_str()).map_err(|err| errors::invalid_url(&url, err))?;

        let mut headers = headers::to_http_app(&request.headers);
        if let Some(content_type) = request
            .content_type
            .as_deref()
            .filter(|value| !value.is_empty())
            .and_then(|value| HeaderValue::from_str(value).ok())
        {
            headers.insert(CONTENT_TYPE, content_type);
        }
        if let Some(token) = &self.api_token {
            headers.insert(API_TOKEN_HEADER, token.clone());
        }
        let mut outgoing = Request::new(request.body);
        *outgoing.method_mut() = verb.clone();
        *outgoing.uri_mut() = uri;
        *outgoing.headers_mut() = headers;

        let send = |outgoing| async move {
            self.client
                .request(outgoing)
                .await
                .map(|response| response.map(Body::new))
        };
        let sent = match pipeline {
            Some(pipeline) => pipeline.run(outgoing, send).await,
            None => send(outgoing).await,
        };
        let response =
            sent.map_err(|err| errors::app_unreachable(verb.as_str(), &url, root_cause(&err)))?;
        let (parts, body) = response.into_parts();
        let content_type = parts
            .headers
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(str::to_string);
        Ok(InvokeResponse {
            status: parts.status,
            grpc_code: None,
            headers: headers::from_http_app(parts.headers),
            trailers: HeaderMap::new(),
            content_type,
            data_type_url: None,
            body: Body::new(HoldPermit {
                body,
                _permit: permit,
            }),
        })
    }

    /// One health probe: `GET <base><path>`, healthy on any 2xx. The reply body is drained
    /// so the connection returns to the pool.
    pub(super) async fn probe(&self, path: &str, timeout: Duration) -> Result<(), String> {
        let url = format!("{}{}", self.base_url, path);
        let uri = Uri::try_from(url.as_str())
            .map_err(|err| format!("Failed to create request: {err}"))?;
        // Like upstream, probes carry no `dapr-api-token`.
        let mut request = Request::new(Body::empty());
        *request.uri_mut() = uri;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|err| format!("Network error: Get {url:?}: {}", root_cause(&err)))?;
            let status = response.status();
            // Draining errors do not change the verdict: the status already arrived.
            let _ = response.into_body().collect().await;
            Ok::<StatusCode, String>(status)
        };
        match tokio::time::timeout(timeout, exchange).await {
            Err(_) => Err(format!(
                "Network error: Get {url:?}: context deadline exceeded"
            )),
            Ok(Err(reason)) => Err(reason),
            Ok(Ok(status)) if status.is_success() => Ok(()),
            Ok(Ok(status)) => Err(format!(
                "Health check failed with status code: {}",
                status.as_u16()
            )),
        }
    }
}

/// The innermost error of a chain: the part that says what actually went wrong.
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut current = err;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}

/// `/` + `method` with `.`, `..` and empty segments resolved (like Go's `path.Clean` on an
/// absolute path): `orders/../admin` becomes `/admin`, `../../x` becomes `/x`.
pub(super) fn clean_path(method: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in method.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    let mut path = String::with_capacity(method.len() + 1);
    if segments.is_empty() {
        path.push('/');
    }
    for segment in segments {
        path.push('/');
        path.push_str(segment);
    }
    path
}

/// The app's response body, holding the concurrency slot until it ends or is dropped.
struct HoldPermit {
    body: Body,
    _permit: Option<OwnedSemaphorePermit>,
}

impl hyper::body::Body for HoldPermit {
    type Data = hyper::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

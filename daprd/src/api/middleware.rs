//! Cross-cutting request checks shared by the public API servers: the `dapr-api-token`
//! check and the request body size limit.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::Limited;

/// The header (HTTP) and metadata key (gRPC) carrying the API token.
pub const API_TOKEN_HEADER: &str = "dapr-api-token";

/// The message of a body that outgrew `--max-body-size`, as upstream words it (dapr/kit
/// `streams.ErrStreamTooLarge`).
pub const BODY_TOO_LARGE: &str = "stream too large";

/// Health checks stay open without a token, as upstream keeps them.
fn is_exempt_from_token(method: &Method, path: &str) -> bool {
    method == Method::GET
        && matches!(
            path.trim_matches('/'),
            "v1.0/healthz" | "v1.0/healthz/outbound"
        )
}

/// HTTP API: rejects calls without the configured `dapr-api-token` (401, upstream's
/// plain-text body) and removes the header before anything else sees it.
pub async fn require_api_token_http(
    State(token): State<Option<String>>,
    mut request: Request,
    next: Next,
) -> Response {
    if let Some(expected) = token.as_deref() {
        let presented = request
            .headers()
            .get(API_TOKEN_HEADER)
            .map(HeaderValue::as_bytes);
        if presented != Some(expected.as_bytes())
            && !is_exempt_from_token(request.method(), request.uri().path())
        {
            return (StatusCode::UNAUTHORIZED, "invalid api token\n").into_response();
        }
        request.headers_mut().remove(API_TOKEN_HEADER);
    }
    next.run(request).await
}

/// gRPC API: the same check, answered with an `Unauthenticated` gRPC status.
pub async fn require_api_token_grpc(
    State(token): State<Option<String>>,
    mut request: Request,
    next: Next,
) -> Response {
    if let Some(expected) = token.as_deref() {
        let message = match request.headers().get(API_TOKEN_HEADER) {
            None => Some("missing api token in request metadata"),
            Some(value) if value.as_bytes() != expected.as_bytes() => {
                Some("authentication error: api token mismatch")
            }
            Some(_) => None,
        };
        if let Some(message) = message {
            return tonic::Status::unauthenticated(message).into_http();
        }
        request.headers_mut().remove(API_TOKEN_HEADER);
    }
    next.run(request).await
}

/// HTTP API: cuts off request bodies that grow past `limit`, as upstream's limited reader
/// does, so no handler ever holds more than `limit` bytes of one request. Each handler
/// reports the cut-off the way its upstream counterpart does (a body read error, a
/// malformed JSON document, a failed invocation).
pub async fn limit_body(State(limit): State<u64>, request: Request, next: Next) -> Response {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    next.run(request.map(|body| Body::new(Limited::new(body, limit))))
        .await
}

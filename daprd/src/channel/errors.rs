//! The ways a call into the app can fail before the app answers, as [`ApiError`]s.
//!
//! Each carries upstream's `ERR_DIRECT_INVOKE` code and the bare reason as its message; the
//! invoke API wraps that reason into `failed to invoke, id: <app>, err: <reason>`.

use axum::http::StatusCode;
use tonic::Code;

use crate::error::ApiError;

const CODE: &str = "ERR_DIRECT_INVOKE";

/// The app failed its health checks, so the sidecar does not call it.
pub(super) fn app_unhealthy() -> ApiError {
    ApiError::new(
        CODE,
        "app is not in a healthy state",
        StatusCode::INTERNAL_SERVER_ERROR,
        Code::Internal,
    )
}

/// An HTTP app cannot be called without a verb (a gRPC caller sent no HTTP extension).
pub(super) fn missing_http_extension() -> ApiError {
    ApiError::new(
        CODE,
        "missing HTTP extension field",
        StatusCode::INTERNAL_SERVER_ERROR,
        Code::InvalidArgument,
    )
}

/// An HTTP app cannot be called with this verb.
pub(super) fn invalid_verb() -> ApiError {
    ApiError::new(
        CODE,
        "invalid HTTP verb",
        StatusCode::INTERNAL_SERVER_ERROR,
        Code::InvalidArgument,
    )
}

/// The method and query do not form a valid URL.
pub(super) fn invalid_url(url: &str, reason: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        CODE,
        format!("parse {url:?}: {reason}"),
        StatusCode::INTERNAL_SERVER_ERROR,
        Code::Internal,
    )
}

/// The request never got an answer from an HTTP app (refused, reset, TLS failure), worded
/// as upstream's HTTP client words it: `Post "http://127.0.0.1:3000/m": <reason>`.
pub(super) fn app_unreachable(verb: &str, url: &str, reason: impl std::fmt::Display) -> ApiError {
    let mut verb_name = verb.to_ascii_lowercase();
    if let Some(first) = verb_name.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    ApiError::new(
        CODE,
        format!("{verb_name} {url:?}: {reason}"),
        StatusCode::INTERNAL_SERVER_ERROR,
        Code::Internal,
    )
}

/// A body bound for a gRPC app is larger than `--max-body-size`.
pub(super) fn body_too_large(limit: usize) -> ApiError {
    ApiError::body_read(format!(
        "request body is larger than the limit of {limit} bytes"
    ))
}

/// The caller's body stream broke while it was being read.
pub(super) fn body_unreadable(reason: impl std::fmt::Display) -> ApiError {
    ApiError::body_read(reason)
}

/// The sidecar could not set the channel up (an address that cannot be dialled or a TLS
/// configuration that cannot be built).
pub(super) fn setup(reason: impl std::fmt::Display) -> ApiError {
    ApiError::internal(format!("failed to create the app channel: {reason}"))
}

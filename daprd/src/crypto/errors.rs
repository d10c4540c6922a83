//! The crypto API's errors, with upstream's codes, texts and statuses.

use axum::http::StatusCode;
use tonic::Code;

use crate::error::ApiError;

/// No crypto component is loaded.
pub fn providers_not_configured() -> ApiError {
    ApiError::new(
        "ERR_CRYPTO_PROVIDERS_NOT_CONFIGURED",
        "crypto providers not configured",
        StatusCode::INTERNAL_SERVER_ERROR,
        Code::Internal,
    )
}

/// No crypto component has this name.
pub fn provider_not_found(name: &str) -> ApiError {
    ApiError::new(
        "ERR_CRYPTO_PROVIDER_NOT_FOUND",
        format!("crypto provider {name} not found"),
        StatusCode::BAD_REQUEST,
        Code::InvalidArgument,
    )
}

/// The key could not be read or encoded.
pub fn get_key(name: &str, reason: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        "ERR_CRYPTO_KEY",
        format!("failed to retrieve key {name}: {reason}"),
        StatusCode::INTERNAL_SERVER_ERROR,
        Code::Internal,
    )
}

/// A crypto operation failed.
pub fn operation(reason: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        "ERR_CRYPTO",
        format!("failed to perform operation: {reason}"),
        StatusCode::INTERNAL_SERVER_ERROR,
        Code::Internal,
    )
}

/// A stream that broke after its output began, over HTTP: upstream's generic `ERROR`
/// (its handler gathers the output and reports the reader's error as it is).
pub fn stream_broken(reason: impl Into<String>) -> ApiError {
    ApiError::new(
        "ERROR",
        reason,
        StatusCode::INTERNAL_SERVER_ERROR,
        Code::Internal,
    )
}

/// Logs `error` at debug level (as upstream logs API errors) and returns it.
pub fn logged(error: ApiError) -> ApiError {
    tracing::debug!("{error}");
    error
}

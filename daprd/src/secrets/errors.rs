//! The secrets API's failures as upstream reports them: its error codes, messages, HTTP
//! statuses and gRPC codes (no rich details, as upstream attaches none).

use axum::http::StatusCode;

use crate::error::ApiError;

/// `ERR_SECRET_STORES_NOT_CONFIGURED`: the sidecar has no secret store at all.
pub fn not_configured() -> ApiError {
    ApiError::new(
        "ERR_SECRET_STORES_NOT_CONFIGURED",
        "secret store is not configured",
        StatusCode::INTERNAL_SERVER_ERROR,
        tonic::Code::FailedPrecondition,
    )
}

/// `ERR_SECRET_STORE_NOT_FOUND`: no secret store is called `store_name` (upstream answers
/// HTTP 401 here).
pub fn store_not_found(store_name: &str) -> ApiError {
    ApiError::new(
        "ERR_SECRET_STORE_NOT_FOUND",
        format!("failed finding secret store with key {store_name}"),
        StatusCode::UNAUTHORIZED,
        tonic::Code::InvalidArgument,
    )
}

/// `ERR_PERMISSION_DENIED`: the secrets scope of `store_name` does not let the app read
/// `key`. Names are quoted as Go's `%q` quotes printable text.
pub fn permission_denied(key: &str, store_name: &str) -> ApiError {
    ApiError::new(
        "ERR_PERMISSION_DENIED",
        format!("access denied by policy to get {key:?} from {store_name:?}"),
        StatusCode::FORBIDDEN,
        tonic::Code::PermissionDenied,
    )
}

/// `ERR_SECRET_GET`: the store failed to return secret `key`.
pub fn get_failed(key: &str, store_name: &str, reason: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        "ERR_SECRET_GET",
        format!("failed getting secret with key {key} from secret store {store_name}: {reason}"),
        StatusCode::INTERNAL_SERVER_ERROR,
        tonic::Code::Internal,
    )
}

/// `ERR_SECRET_GET`: the store failed to list its secrets.
pub fn bulk_get_failed(store_name: &str, reason: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        "ERR_SECRET_GET",
        format!("failed getting secrets from secret store {store_name}: {reason}"),
        StatusCode::INTERNAL_SERVER_ERROR,
        tonic::Code::Internal,
    )
}

//! The lock API's errors, with upstream's codes, texts and statuses.

use axum::http::StatusCode;
use tonic::Code;

use crate::error::ApiError;

/// No lock store is loaded.
pub fn not_configured() -> ApiError {
    ApiError::new(
        "ERR_LOCK_STORE_NOT_CONFIGURED",
        "lock store is not configured",
        StatusCode::INTERNAL_SERVER_ERROR,
        Code::FailedPrecondition,
    )
}

/// The request names no resource.
pub fn resource_id_empty(store: &str) -> ApiError {
    malformed(format!("ResourceId is empty in lock store {store}"))
}

/// The request names no owner.
pub fn owner_empty(store: &str) -> ApiError {
    malformed(format!("LockOwner is empty in lock store {store}"))
}

/// The expiry is zero or negative.
pub fn expiry_not_positive(store: &str) -> ApiError {
    malformed(format!(
        "ExpiryInSeconds is not positive in lock store {store}"
    ))
}

/// No lock store has this name.
pub fn store_not_found(store: &str) -> ApiError {
    ApiError::new(
        "ERR_LOCK_STORE_NOT_FOUND",
        format!("lock store {store} not found"),
        StatusCode::BAD_REQUEST,
        Code::InvalidArgument,
    )
}

/// Acquiring failed.
pub fn try_lock_failed(reason: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        "ERR_TRY_LOCK",
        format!("failed to try acquiring lock: {reason}"),
        StatusCode::INTERNAL_SERVER_ERROR,
        Code::Internal,
    )
}

/// Releasing failed.
pub fn unlock_failed(reason: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        "ERR_UNLOCK",
        format!("failed to release lock: {reason}"),
        StatusCode::INTERNAL_SERVER_ERROR,
        Code::Internal,
    )
}

fn malformed(message: String) -> ApiError {
    ApiError::new(
        "ERR_MALFORMED_REQUEST",
        message,
        StatusCode::BAD_REQUEST,
        Code::InvalidArgument,
    )
}

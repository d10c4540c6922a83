//! The state API's failures as upstream reports them: error codes, messages, HTTP statuses,
//! gRPC codes and rich details.
//!
//! Upstream's two edges differ in small ways and both are kept: store lookups over HTTP
//! name the app in their `ErrorInfo`; failures of a store call carry an `ErrorInfo` whose
//! reason is the error code over gRPC only; an illegal key's message over HTTP is wrapped
//! in the text of the gRPC error it was first built as. ETag failures answer 409/`Aborted`
//! (mismatch) or 400/`InvalidArgument` (invalid); other store failures 500/`Internal`.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use dapr_components::state::{EtagErrorKind, StateError};

use super::Protocol;
use crate::components::IllegalKey;
use crate::error::ApiError;

/// The `resource_type` of the `ResourceInfo` details.
const RESOURCE_TYPE: &str = "state";

/// `ERR_STATE_STORE_NOT_CONFIGURED`: the sidecar has no state store at all.
pub fn not_configured(store: &str, app_id: Option<&str>) -> ApiError {
    ApiError::new(
        "ERR_STATE_STORE_NOT_CONFIGURED",
        format!("state store {store} is not configured"),
        StatusCode::INTERNAL_SERVER_ERROR,
        tonic::Code::FailedPrecondition,
    )
    .with_info("DAPR_STATE_NOT_CONFIGURED", app_metadata(app_id))
}

/// `ERR_STATE_STORE_NOT_FOUND`: no state store has this name.
pub fn not_found(store: &str, app_id: Option<&str>) -> ApiError {
    ApiError::new(
        "ERR_STATE_STORE_NOT_FOUND",
        format!("state store {store} is not found"),
        StatusCode::BAD_REQUEST,
        tonic::Code::InvalidArgument,
    )
    .with_info("DAPR_STATE_NOT_FOUND", app_metadata(app_id))
}

/// `ERR_MALFORMED_REQUEST` (`DAPR_STATE_ILLEGAL_KEY`): a key contains `||`.
pub fn illegal_key(store: &str, key: &str, error: &IllegalKey, protocol: Protocol) -> ApiError {
    let message = match protocol {
        Protocol::Grpc => error.to_string(),
        Protocol::Http => format!("api error: code = InvalidArgument desc = {error}"),
    };
    ApiError::new(
        "ERR_MALFORMED_REQUEST",
        message.clone(),
        StatusCode::BAD_REQUEST,
        tonic::Code::InvalidArgument,
    )
    .with_field_violation(key, message)
    .with_resource(RESOURCE_TYPE, store, "")
    .with_info("DAPR_STATE_ILLEGAL_KEY", BTreeMap::new())
}

/// A saved item without a key.
pub fn empty_key(protocol: Protocol) -> ApiError {
    match protocol {
        Protocol::Http => ApiError::new(
            "ERR_MALFORMED_REQUEST",
            "\"key\" is a required field",
            StatusCode::BAD_REQUEST,
            tonic::Code::InvalidArgument,
        ),
        Protocol::Grpc => basic(
            "ERR_STATE_SAVE",
            "state key cannot be empty".to_owned(),
            StatusCode::BAD_REQUEST,
            tonic::Code::InvalidArgument,
            protocol,
        ),
    }
}

/// `ERR_STATE_STORE_NOT_SUPPORTED` (`DAPR_STATE_TRANSACTIONS_NOT_SUPPORTED`).
pub fn transactions_not_supported(store: &str) -> ApiError {
    ApiError::new(
        "ERR_STATE_STORE_NOT_SUPPORTED",
        format!("state store {store} doesn't support transactions"),
        StatusCode::INTERNAL_SERVER_ERROR,
        tonic::Code::Unimplemented,
    )
    .with_resource(RESOURCE_TYPE, store, "")
    .with_info("DAPR_STATE_TRANSACTIONS_NOT_SUPPORTED", BTreeMap::new())
}

/// `ERR_NOT_SUPPORTED_STATE_OPERATION`: a transaction operation other than upsert or delete.
pub fn unsupported_operation(operation: &str, protocol: Protocol) -> ApiError {
    basic(
        "ERR_NOT_SUPPORTED_STATE_OPERATION",
        format!("operation type {operation} not supported"),
        StatusCode::BAD_REQUEST,
        tonic::Code::Unimplemented,
        protocol,
    )
}

/// `ERR_STATE_STORE_NOT_SUPPORTED` (`DAPR_STATE_QUERYING_NOT_SUPPORTED`).
pub fn query_unsupported(store: &str) -> ApiError {
    ApiError::new(
        "ERR_STATE_STORE_NOT_SUPPORTED",
        "state store does not support querying",
        StatusCode::INTERNAL_SERVER_ERROR,
        tonic::Code::Internal,
    )
    .with_resource(RESOURCE_TYPE, store, "")
    .with_info("DAPR_STATE_QUERYING_NOT_SUPPORTED", BTreeMap::new())
}

/// `ERR_STATE_QUERY` (`DAPR_STATE_QUERY_FAILED`).
pub fn query_failed(store: &str, detail: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        "ERR_STATE_QUERY",
        format!("state store {store} query failed: {detail}"),
        StatusCode::INTERNAL_SERVER_ERROR,
        tonic::Code::Internal,
    )
    .with_resource(RESOURCE_TYPE, store, "")
    .with_info("DAPR_STATE_QUERY_FAILED", BTreeMap::new())
}

/// `ERR_STATE_GET`: the store failed to read `key`.
pub fn get_failed(store: &str, key: &str, error: &StateError, protocol: Protocol) -> ApiError {
    basic(
        "ERR_STATE_GET",
        format!("fail to get {key} from state store {store}: {error}"),
        StatusCode::INTERNAL_SERVER_ERROR,
        tonic::Code::Internal,
        protocol,
    )
}

/// `ERR_STATE_SAVE`: the store failed to write.
pub fn save_failed(store: &str, error: &StateError, protocol: Protocol) -> ApiError {
    let (http_status, grpc_code) = store_failure(error);
    basic(
        "ERR_STATE_SAVE",
        format!("failed saving state in state store {store}: {error}"),
        http_status,
        grpc_code,
        protocol,
    )
}

/// `ERR_STATE_DELETE`: the store failed to delete `key`.
pub fn delete_failed(key: &str, error: &StateError, protocol: Protocol) -> ApiError {
    let (http_status, grpc_code) = store_failure(error);
    basic(
        "ERR_STATE_DELETE",
        format!("failed deleting state with key {key}: {error}"),
        http_status,
        grpc_code,
        protocol,
    )
}

/// `ERR_STATE_BULK_DELETE`: the store failed to delete several keys.
pub fn bulk_delete_failed(store: &str, error: &StateError, protocol: Protocol) -> ApiError {
    let (http_status, grpc_code) = store_failure(error);
    basic(
        "ERR_STATE_BULK_DELETE",
        format!("failed deleting state in state store {store}: {error}"),
        http_status,
        grpc_code,
        protocol,
    )
}

/// `ERR_STATE_TRANSACTION`: the transaction failed (ETag failures included, as upstream).
pub fn transaction_failed(error: &StateError, protocol: Protocol) -> ApiError {
    basic(
        "ERR_STATE_TRANSACTION",
        format!("error while executing state transaction: {error}"),
        StatusCode::INTERNAL_SERVER_ERROR,
        tonic::Code::Internal,
        protocol,
    )
}

/// The HTTP status and gRPC code of a failed store call.
fn store_failure(error: &StateError) -> (StatusCode, tonic::Code) {
    match error {
        StateError::Etag {
            kind: EtagErrorKind::Mismatch,
            ..
        } => (StatusCode::CONFLICT, tonic::Code::Aborted),
        StateError::Etag {
            kind: EtagErrorKind::Invalid,
            ..
        } => (StatusCode::BAD_REQUEST, tonic::Code::InvalidArgument),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, tonic::Code::Internal),
    }
}

/// An error that gRPC callers receive with an `ErrorInfo` naming the code (upstream's
/// `apierrors.Basic`) and HTTP callers receive without details.
fn basic(
    code: &'static str,
    message: String,
    http_status: StatusCode,
    grpc_code: tonic::Code,
    protocol: Protocol,
) -> ApiError {
    let error = ApiError::new(code, message, http_status, grpc_code);
    match protocol {
        Protocol::Http => error,
        Protocol::Grpc => error.with_info(code, BTreeMap::new()),
    }
}

fn app_metadata(app_id: Option<&str>) -> BTreeMap<String, String> {
    app_id
        .filter(|app_id| !app_id.is_empty())
        .map(|app_id| BTreeMap::from([("appID".to_owned(), app_id.to_owned())]))
        .unwrap_or_default()
}

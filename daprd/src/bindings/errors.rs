//! The output binding API's failures as upstream reports them: every failure (no such
//! binding, no operation, an operation the binding does not have, the binding's own
//! error) is `ERR_INVOKE_OUTPUT_BINDING`, HTTP 500 / gRPC `Internal`, with the reason in
//! the message; gRPC callers also get an `ErrorInfo` whose reason is the code.

use std::collections::BTreeMap;

use axum::http::StatusCode;

use crate::error::ApiError;
use crate::state::Protocol;

/// The error code of every output binding failure.
pub const INVOKE_OUTPUT_BINDING: &str = "ERR_INVOKE_OUTPUT_BINDING";

/// `ERR_INVOKE_OUTPUT_BINDING`: invoking binding `name` failed for `reason`.
pub fn invoke_failed(name: &str, reason: &str, protocol: Protocol) -> ApiError {
    let error = ApiError::new(
        INVOKE_OUTPUT_BINDING,
        format!("error invoking output binding {name}: {reason}"),
        StatusCode::INTERNAL_SERVER_ERROR,
        tonic::Code::Internal,
    );
    match protocol {
        Protocol::Http => error,
        Protocol::Grpc => error.with_info(INVOKE_OUTPUT_BINDING, BTreeMap::new()),
    }
}

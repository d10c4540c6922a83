//! The one error type of the sidecar's APIs.
//!
//! Every core operation fails with an [`ApiError`]: upstream's error code (the `errorCode`
//! of HTTP bodies, e.g. `ERR_DIRECT_INVOKE`), a message, the HTTP status and gRPC code
//! upstream uses for that failure, and optional rich details (`google.rpc.ErrorInfo`,
//! `ResourceInfo`, `BadRequest`). Each edge renders it: HTTP as a JSON body, gRPC as a
//! status carrying a `google.rpc.Status` in its details.

use std::collections::BTreeMap;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dapr_proto::google::rpc;
use prost::Message;
use serde_json::{Map, Value, json};

/// The domain of every `ErrorInfo` the sidecar emits.
pub const ERROR_DOMAIN: &str = "dapr.io";

/// Structured detail attached to an error, as in Google's rich error model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorDetail {
    /// `google.rpc.ErrorInfo`: a machine-readable reason.
    Info {
        /// UPPER_SNAKE_CASE reason, e.g. `DAPR_STATE_NOT_FOUND`.
        reason: String,
        /// Extra facts.
        metadata: BTreeMap<String, String>,
    },
    /// `google.rpc.ResourceInfo`: the resource concerned.
    Resource {
        /// Kind of resource, e.g. `state`.
        resource_type: String,
        /// Its name.
        resource_name: String,
        /// Its owner, often empty.
        owner: String,
        /// What went wrong.
        description: String,
    },
    /// `google.rpc.BadRequest`: invalid fields as (field, description).
    BadRequest(Vec<(String, String)>),
}

/// A failed API call, rendered per protocol by the edges.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// Upstream's error code (`ERR_...`), the `errorCode` of HTTP bodies.
    pub code: &'static str,
    /// Human-readable message.
    pub message: String,
    /// HTTP status for the HTTP API.
    pub http_status: StatusCode,
    /// gRPC status code for the gRPC API.
    pub grpc_code: tonic::Code,
    /// Rich details, in order.
    pub details: Vec<ErrorDetail>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "api error: code = {:?} desc = {}",
            self.grpc_code, self.message
        )
    }
}

impl std::error::Error for ApiError {}

impl ApiError {
    /// An error with no details.
    pub fn new(
        code: &'static str,
        message: impl Into<String>,
        http_status: StatusCode,
        grpc_code: tonic::Code,
    ) -> Self {
        Self {
            code,
            message: message.into(),
            http_status,
            grpc_code,
            details: Vec::new(),
        }
    }

    /// Adds an `ErrorInfo` detail.
    pub fn with_info(
        mut self,
        reason: impl Into<String>,
        metadata: BTreeMap<String, String>,
    ) -> Self {
        self.details.push(ErrorDetail::Info {
            reason: reason.into(),
            metadata,
        });
        self
    }

    /// Adds a `ResourceInfo` detail.
    pub fn with_resource(
        mut self,
        resource_type: &str,
        resource_name: &str,
        description: impl Into<String>,
    ) -> Self {
        self.details.push(ErrorDetail::Resource {
            resource_type: resource_type.to_string(),
            resource_name: resource_name.to_string(),
            owner: String::new(),
            description: description.into(),
        });
        self
    }

    /// Adds a `BadRequest` detail with one field violation.
    pub fn with_field_violation(mut self, field: &str, description: impl Into<String>) -> Self {
        self.details.push(ErrorDetail::BadRequest(vec![(
            field.to_string(),
            description.into(),
        )]));
        self
    }

    /// `ERR_BAD_REQUEST`: the request is invalid.
    pub fn bad_request(reason: impl std::fmt::Display) -> Self {
        Self::new(
            "ERR_BAD_REQUEST",
            format!("invalid request: {reason}"),
            StatusCode::BAD_REQUEST,
            tonic::Code::InvalidArgument,
        )
    }

    /// `ERR_MALFORMED_REQUEST`: the body could not be decoded.
    pub fn malformed_request(reason: impl std::fmt::Display) -> Self {
        Self::new(
            "ERR_MALFORMED_REQUEST",
            format!("failed deserializing HTTP body: {reason}"),
            StatusCode::BAD_REQUEST,
            tonic::Code::InvalidArgument,
        )
    }

    /// `ERR_BODY_READ`: the body could not be read (too large, connection lost).
    pub fn body_read(reason: impl std::fmt::Display) -> Self {
        Self::new(
            "ERR_BODY_READ",
            format!("failed to read request body: {reason}"),
            StatusCode::BAD_REQUEST,
            tonic::Code::InvalidArgument,
        )
    }

    /// `ERR_API_UNIMPLEMENTED`: the API exists upstream but not in this build.
    pub fn unimplemented() -> Self {
        Self::new(
            "ERR_API_UNIMPLEMENTED",
            "this API is currently not implemented",
            StatusCode::NOT_IMPLEMENTED,
            tonic::Code::Unimplemented,
        )
    }

    /// `ERR_INTERNAL`: an unexpected failure inside the sidecar.
    pub fn internal(reason: impl std::fmt::Display) -> Self {
        Self::new(
            "ERR_INTERNAL",
            reason.to_string(),
            StatusCode::INTERNAL_SERVER_ERROR,
            tonic::Code::Internal,
        )
    }

    /// `ERR_DIRECT_INVOKE`: invoking `app_id` failed.
    pub fn direct_invoke(app_id: &str, reason: impl std::fmt::Display) -> Self {
        Self::new(
            "ERR_DIRECT_INVOKE",
            format!("failed to invoke, id: {app_id}, err: {reason}"),
            StatusCode::INTERNAL_SERVER_ERROR,
            tonic::Code::Internal,
        )
    }

    /// `ERR_DIRECT_INVOKE` (404): neither the URL nor `dapr-app-id` names a target.
    pub fn direct_invoke_no_app_id() -> Self {
        Self::new(
            "ERR_DIRECT_INVOKE",
            "failed getting app id either from the URL path or the header dapr-app-id",
            StatusCode::NOT_FOUND,
            tonic::Code::NotFound,
        )
    }

    /// `ERR_APP_CHANNEL_NIL`: the sidecar has no app to call.
    pub fn app_channel_nil() -> Self {
        Self::new(
            "ERR_APP_CHANNEL_NIL",
            "app channel is not initialized",
            StatusCode::INTERNAL_SERVER_ERROR,
            tonic::Code::Internal,
        )
    }

    /// `ERR_HEALTH_NOT_READY`.
    pub fn health_not_ready(parts: &[String]) -> Self {
        Self::new(
            "ERR_HEALTH_NOT_READY",
            format!("dapr is not ready: {parts:?}"),
            StatusCode::INTERNAL_SERVER_ERROR,
            tonic::Code::Internal,
        )
    }

    /// `ERR_HEALTH_APPID_NOT_MATCH`: `?appid=` names another app.
    pub fn health_app_id_mismatch() -> Self {
        Self::new(
            "ERR_HEALTH_APPID_NOT_MATCH",
            "dapr app-id does not match",
            StatusCode::INTERNAL_SERVER_ERROR,
            tonic::Code::Internal,
        )
    }

    /// `ERR_OUTBOUND_HEALTH_NOT_READY`.
    pub fn outbound_not_ready() -> Self {
        Self::new(
            "ERR_OUTBOUND_HEALTH_NOT_READY",
            "dapr outbound is not ready",
            StatusCode::INTERNAL_SERVER_ERROR,
            tonic::Code::Internal,
        )
    }

    /// The HTTP body: `{"errorCode": ..., "message": ..., "details": [...]}` (details only
    /// when there are any, each with its `@type` as protobuf's JSON mapping writes it).
    pub fn http_body(&self) -> Value {
        let mut body = Map::new();
        body.insert("errorCode".into(), Value::String(self.code.to_string()));
        body.insert("message".into(), Value::String(self.message.clone()));
        if !self.details.is_empty() {
            let details = self.details.iter().map(detail_json).collect();
            body.insert("details".into(), Value::Array(details));
        }
        Value::Object(body)
    }

    /// The gRPC status, with the details encoded as a `google.rpc.Status`.
    pub fn to_status(&self) -> tonic::Status {
        if self.details.is_empty() {
            return tonic::Status::new(self.grpc_code, self.message.clone());
        }
        let status = rpc::Status {
            code: self.grpc_code as i32,
            message: self.message.clone(),
            details: self.details.iter().map(detail_any).collect(),
        };
        tonic::Status::with_details(
            self.grpc_code,
            self.message.clone(),
            status.encode_to_vec().into(),
        )
    }
}

fn detail_json(detail: &ErrorDetail) -> Value {
    match detail {
        ErrorDetail::Info { reason, metadata } => json!({
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": reason,
            "domain": ERROR_DOMAIN,
            "metadata": metadata,
        }),
        ErrorDetail::Resource {
            resource_type,
            resource_name,
            owner,
            description,
        } => json!({
            "@type": "type.googleapis.com/google.rpc.ResourceInfo",
            "resource_type": resource_type,
            "resource_name": resource_name,
            "owner": owner,
            "description": description,
        }),
        ErrorDetail::BadRequest(violations) => json!({
            "@type": "type.googleapis.com/google.rpc.BadRequest",
            "field_violations": violations
                .iter()
                .map(|(field, description)| json!({ "field": field, "description": description }))
                .collect::<Vec<_>>(),
        }),
    }
}

fn detail_any(detail: &ErrorDetail) -> prost_types::Any {
    let (type_url, value) = match detail {
        ErrorDetail::Info { reason, metadata } => (
            "type.googleapis.com/google.rpc.ErrorInfo",
            rpc::ErrorInfo {
                reason: reason.clone(),
                domain: ERROR_DOMAIN.to_string(),
                metadata: metadata
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            }
            .encode_to_vec(),
        ),
        ErrorDetail::Resource {
            resource_type,
            resource_name,
            owner,
            description,
        } => (
            "type.googleapis.com/google.rpc.ResourceInfo",
            rpc::ResourceInfo {
                resource_type: resource_type.clone(),
                resource_name: resource_name.clone(),
                owner: owner.clone(),
                description: description.clone(),
            }
            .encode_to_vec(),
        ),
        ErrorDetail::BadRequest(violations) => (
            "type.googleapis.com/google.rpc.BadRequest",
            rpc::BadRequest {
                field_violations: violations
                    .iter()
                    .map(|(field, description)| rpc::bad_request::FieldViolation {
                        field: field.clone(),
                        description: description.clone(),
                    })
                    .collect(),
            }
            .encode_to_vec(),
        ),
    };
    prost_types::Any {
        type_url: type_url.to_string(),
        value,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = self.http_body().to_string();
        let mut response = (self.http_status, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }
}

impl From<ApiError> for tonic::Status {
    fn from(error: ApiError) -> Self {
        error.to_status()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_body_has_upstreams_shape() {
        let plain = ApiError::direct_invoke("orders", "connection refused");
        assert_eq!(
            plain.http_body(),
            json!({"errorCode": "ERR_DIRECT_INVOKE", "message": "failed to invoke, id: orders, err: connection refused"})
        );
        let rich = ApiError::bad_request("empty key")
            .with_info(
                "DAPR_STATE_ILLEGAL_KEY",
                BTreeMap::from([("key".to_string(), "a||b".to_string())]),
            )
            .with_field_violation("key", "must not contain ||");
        let body = rich.http_body();
        assert_eq!(
            body["details"][0]["@type"],
            "type.googleapis.com/google.rpc.ErrorInfo"
        );
        assert_eq!(body["details"][0]["domain"], "dapr.io");
        assert_eq!(body["details"][0]["metadata"]["key"], "a||b");
        assert_eq!(body["details"][1]["field_violations"][0]["field"], "key");
    }

    #[test]
    fn grpc_status_carries_decodable_details() {
        let error = ApiError::bad_request("x")
            .with_info("REASON", BTreeMap::new())
            .with_resource("state", "store", "gone");
        let status = error.to_status();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert_eq!(status.message(), "invalid request: x");
        let decoded = rpc::Status::decode(status.details()).unwrap();
        assert_eq!(decoded.details.len(), 2);
        let info = rpc::ErrorInfo::decode(decoded.details[0].value.as_slice()).unwrap();
        assert_eq!(
            (info.reason.as_str(), info.domain.as_str()),
            ("REASON", "dapr.io")
        );
        let resource = rpc::ResourceInfo::decode(decoded.details[1].value.as_slice()).unwrap();
        assert_eq!(resource.resource_name, "store");
    }

    #[test]
    fn http_response_is_json_with_the_status() {
        let response = ApiError::unimplemented().into_response();
        assert_eq!(response.status(), StatusCode::NOT_IMPLEMENTED);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    }
}

//! Upstream's mappings between gRPC codes and HTTP statuses, and the JSON an HTTP caller
//! sees when a gRPC app answers with an error.

use axum::http::StatusCode;
use dapr_proto::google::rpc;
use prost::Message;
use serde_json::{Map, Value, json};
use tonic::Code;

/// The HTTP status upstream reports for a gRPC code (grpc-gateway's table).
pub fn http_status_from_grpc_code(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::REQUEST_TIMEOUT,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
            StatusCode::BAD_REQUEST
        }
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// The gRPC code upstream reports for an HTTP app's status (gRPC's HTTP mapping as
/// upstream applies it: any 2xx is OK, unknown statuses are `Unknown`).
pub fn grpc_code_from_http_status(status: StatusCode) -> Code {
    if status.is_success() {
        return Code::Ok;
    }
    match status {
        StatusCode::REQUEST_TIMEOUT => Code::Cancelled,
        StatusCode::BAD_REQUEST => Code::Internal,
        StatusCode::GATEWAY_TIMEOUT => Code::DeadlineExceeded,
        StatusCode::NOT_FOUND => Code::NotFound,
        StatusCode::CONFLICT => Code::AlreadyExists,
        StatusCode::FORBIDDEN => Code::PermissionDenied,
        StatusCode::UNAUTHORIZED => Code::Unauthenticated,
        StatusCode::TOO_MANY_REQUESTS => Code::ResourceExhausted,
        StatusCode::NOT_IMPLEMENTED => Code::Unimplemented,
        StatusCode::SERVICE_UNAVAILABLE => Code::Unavailable,
        _ => Code::Unknown,
    }
}

/// A gRPC app's error status in protobuf's JSON form, the body upstream gives HTTP callers:
/// `{"code": 5, "message": "...", "details": [...]}`, empty fields omitted. Details of the
/// `google.rpc` types the sidecar knows are rendered field by field; others by type only.
pub(super) fn status_json(status: &tonic::Status) -> Value {
    let mut body = Map::new();
    body.insert("code".into(), json!(status.code() as i32));
    if !status.message().is_empty() {
        body.insert("message".into(), json!(status.message()));
    }
    let details = rpc::Status::decode(status.details())
        .map(|decoded| decoded.details)
        .unwrap_or_default();
    if !details.is_empty() {
        let details = details.iter().map(detail_json).collect();
        body.insert("details".into(), Value::Array(details));
    }
    Value::Object(body)
}

/// Inserts `value` under `key` unless it is protobuf's default (empty string).
fn put(object: &mut Map<String, Value>, key: &str, value: &str) {
    if !value.is_empty() {
        object.insert(key.into(), json!(value));
    }
}

fn detail_json(detail: &prost_types::Any) -> Value {
    let mut object = Map::new();
    object.insert("@type".into(), json!(detail.type_url));
    let name = detail.type_url.rsplit('/').next().unwrap_or_default();
    let value = detail.value.as_slice();
    match name {
        "google.rpc.ErrorInfo" => {
            if let Ok(info) = rpc::ErrorInfo::decode(value) {
                put(&mut object, "reason", &info.reason);
                put(&mut object, "domain", &info.domain);
                if !info.metadata.is_empty() {
                    object.insert("metadata".into(), json!(info.metadata));
                }
            }
        }
        "google.rpc.ResourceInfo" => {
            if let Ok(info) = rpc::ResourceInfo::decode(value) {
                put(&mut object, "resourceType", &info.resource_type);
                put(&mut object, "resourceName", &info.resource_name);
                put(&mut object, "owner", &info.owner);
                put(&mut object, "description", &info.description);
            }
        }
        "google.rpc.BadRequest" => {
            if let Ok(bad_request) = rpc::BadRequest::decode(value) {
                let violations: Vec<Value> = bad_request
                    .field_violations
                    .iter()
                    .map(|violation| {
                        let mut entry = Map::new();
                        put(&mut entry, "field", &violation.field);
                        put(&mut entry, "description", &violation.description);
                        Value::Object(entry)
                    })
                    .collect();
                if !violations.is_empty() {
                    object.insert("fieldViolations".into(), Value::Array(violations));
                }
            }
        }
        _ => {}
    }
    Value::Object(object)
}

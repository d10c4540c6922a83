//! `POST /v1.0-alpha1/lock/{store}` and `POST /v1.0-alpha1/unlock/{store}`: the lock API
//! over HTTP. Bodies are read as upstream's protojson decoder reads them (camelCase or
//! proto field names, unknown fields ignored, an empty body is an empty request); the
//! answers are `{"success": bool}` and `{"status": <number>}`.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::routing::post;
use serde::Deserialize;
use serde_json::{Value, json};

use super::ApiState;
use crate::error::ApiError;
use crate::lock::{self, LockRequest};

/// The lock routes.
pub fn router() -> Router<ApiState> {
    Router::new()
        .route("/v1.0-alpha1/lock/{store}", post(try_lock))
        .route("/v1.0-alpha1/unlock/{store}", post(unlock))
}

/// The body of both calls.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct LockBody {
    #[serde(alias = "resource_id", rename = "resourceId")]
    resource_id: String,
    #[serde(alias = "lock_owner", rename = "lockOwner")]
    lock_owner: String,
    #[serde(
        alias = "expiry_in_seconds",
        rename = "expiryInSeconds",
        deserialize_with = "proto_int32"
    )]
    expiry_in_seconds: i32,
}

/// An `int32` as protojson accepts it: a JSON number or a decimal string.
fn proto_int32<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<i32, D::Error> {
    let value = Value::deserialize(deserializer)?;
    let number = match &value {
        Value::Null => return Ok(0),
        Value::Number(number) => number.as_i64(),
        Value::String(text) => text.trim().parse::<i64>().ok(),
        _ => None,
    };
    number
        .and_then(|number| i32::try_from(number).ok())
        .ok_or_else(|| {
            serde::de::Error::custom(format!(
                "invalid value for int32 field expiryInSeconds: {value}"
            ))
        })
}

/// Reads a body as a [`LockRequest`] for `store`.
fn request(store: String, body: &[u8]) -> Result<LockRequest, ApiError> {
    let body: LockBody = if body.iter().all(u8::is_ascii_whitespace) {
        LockBody::default()
    } else {
        serde_json::from_slice(body).map_err(ApiError::malformed_request)?
    };
    Ok(LockRequest {
        store_name: store,
        resource_id: body.resource_id,
        lock_owner: body.lock_owner,
        expiry_in_seconds: body.expiry_in_seconds,
    })
}

/// `POST /v1.0-alpha1/lock/{store}`.
async fn try_lock(
    State(runtime): State<ApiState>,
    Path(store): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let request = request(store, &body)?;
    let success = lock::try_lock(&runtime, request).await?;
    Ok(Json(json!({ "success": success })))
}

/// `POST /v1.0-alpha1/unlock/{store}`.
async fn unlock(
    State(runtime): State<ApiState>,
    Path(store): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let request = request(store, &body)?;
    let status = lock::unlock(&runtime, request).await?;
    Ok(Json(json!({ "status": status as i32 })))
}

//! `GET /v1.0/healthz` and `GET /v1.0/healthz/outbound`.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::ApiState;
use crate::error::ApiError;

/// Query of the health check: `?appid=` asks whether this sidecar serves that app.
#[derive(Debug, Deserialize)]
pub struct HealthQuery {
    appid: Option<String>,
}

/// 204 once every part is ready (and the app id matches when asked), else upstream's error.
pub async fn healthz(
    State(runtime): State<ApiState>,
    Query(query): Query<HealthQuery>,
) -> Response {
    if !runtime.health.is_ready() {
        return ApiError::health_not_ready(&runtime.health.not_ready_parts()).into_response();
    }
    if query
        .appid
        .is_some_and(|app_id| app_id != runtime.config.app_id)
    {
        return ApiError::health_app_id_mismatch().into_response();
    }
    StatusCode::NO_CONTENT.into_response()
}

/// 204 once the sidecar can serve calls from its app.
pub async fn outbound(State(runtime): State<ApiState>) -> Response {
    if runtime.outbound_health.is_ready() {
        StatusCode::NO_CONTENT.into_response()
    } else {
        ApiError::outbound_not_ready().into_response()
    }
}

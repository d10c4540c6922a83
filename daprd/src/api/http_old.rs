//! The public HTTP API (`/v1.0/...`), served with axum.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use dapr_kit::healthz::Health;

/// What the HTTP handlers share.
#[derive(Clone)]
pub struct ApiState {
    /// Readiness of the runtime's parts.
    pub health: Health,
}

/// The HTTP API routes.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/v1.0/healthz", get(healthz))
        .route("/v1.0/healthz/outbound", get(healthz_outbound))
        .with_state(state)
}

/// `GET /v1.0/healthz`: 204 once every part of the runtime is ready.
async fn healthz(State(state): State<ApiState>) -> Response {
    if state.health.is_ready() {
        StatusCode::NO_CONTENT.into_response()
    } else {
        let message = format!("dapr is not ready: {:?}", state.health.not_ready_parts());
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(
                serde_json::json!({ "errorCode": "ERR_HEALTH_NOT_READY", "message": message }),
            ),
        )
            .into_response()
    }
}

/// `GET /v1.0/healthz/outbound`: 204 once the sidecar can serve calls from its app.
async fn healthz_outbound(State(state): State<ApiState>) -> Response {
    if state.health.is_ready() {
        StatusCode::NO_CONTENT.into_response()
    } else {
        let body = serde_json::json!({ "errorCode": "ERR_OUTBOUND_HEALTH_NOT_READY", "message": "dapr outbound is not ready" });
        (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(body)).into_response()
    }
}

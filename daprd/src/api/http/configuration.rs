//! The configuration API over HTTP (each route also under `v1.0-alpha1`):
//!
//! - `GET /v1.0/configuration/{store}`: each `key` query parameter names an item (none:
//!   every item), `metadata.<name>` parameters go to the store; the answer is upstream's
//!   JSON object of items by key (`value`, `version`, `metadata`, each left out when
//!   empty), or 204 when there are none;
//! - `GET /v1.0/configuration/{store}/subscribe`: the same parameters; answers
//!   `{"id": ...}` and posts every later change to the app
//!   (`POST /configuration/{store}/{key}`);
//! - `GET /v1.0/configuration/{store}/{id}/unsubscribe`: answers `{"ok": true}`, or 500
//!   with `{"message": ...}` when the store refuses.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, Value, json};

use super::{ApiState, request_metadata};
use crate::configuration::{self, subscribe};
use crate::error::ApiError;

/// The configuration routes.
pub fn router() -> Router<ApiState> {
    let mut router = Router::new();
    for version in ["v1.0", "v1.0-alpha1"] {
        router = router
            .route(
                &format!("/{version}/configuration/{{store}}"),
                get(get_configuration),
            )
            .route(
                &format!("/{version}/configuration/{{store}}/subscribe"),
                get(subscribe_configuration),
            )
            .route(
                &format!("/{version}/configuration/{{store}}/{{id}}/unsubscribe"),
                get(unsubscribe_configuration),
            );
    }
    router
}

/// The `key` parameters, in order.
fn keys(query: &[(String, String)]) -> Vec<String> {
    query
        .iter()
        .filter(|(name, _)| name == "key")
        .map(|(_, value)| value.clone())
        .collect()
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        crate::go_json::encode_value(body),
    )
        .into_response()
}

async fn get_configuration(
    State(runtime): State<ApiState>,
    Path(store): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let keys = keys(&query);
    let metadata = request_metadata(query);
    let items = configuration::get(&runtime, &store, &keys, &metadata).await?;
    if items.is_empty() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let body: Map<String, Value> = items
        .iter()
        .map(|(key, item)| (key.clone(), subscribe::item_json(item)))
        .collect();
    Ok(json_response(StatusCode::OK, &Value::Object(body)))
}

async fn subscribe_configuration(
    State(runtime): State<ApiState>,
    Path(store): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    configuration::store(&runtime, &store)?;
    let Some(app) = runtime.invoker.app_channel().cloned() else {
        return Ok(json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            &json!({
                "errorCode": "ERR_APP_CHANNEL_NIL",
                "message": "app channel is not initialized. cannot subscribe to configuration updates",
            }),
        ));
    };
    let keys = keys(&query);
    let metadata = request_metadata(query);
    let handler = Arc::new(subscribe::AppUpdates::new(&runtime, app, &store));
    let id = subscribe::subscribe(&runtime, &store, keys, metadata, handler).await?;
    Ok(json_response(StatusCode::OK, &json!({ "id": id })))
}

async fn unsubscribe_configuration(
    State(runtime): State<ApiState>,
    Path((store, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    configuration::store(&runtime, &store)?;
    match subscribe::unsubscribe(&runtime, &store, &id).await {
        Ok(()) => Ok(json_response(StatusCode::OK, &json!({ "ok": true }))),
        Err(reason) => {
            tracing::debug!("failed to unsubscribe to configuration request {id}: {reason}");
            Ok(json_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                &json!({
                    "message": format!("failed to unsubscribe to configuration request {id}: {reason}"),
                }),
            ))
        }
    }
}

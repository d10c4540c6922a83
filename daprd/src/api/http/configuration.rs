//! `GET /v1.0/configuration/{store}` (and its `v1.0-alpha1` alias): the configuration API
//! over HTTP. Each `key` query parameter names an item (none: every item),
//! `metadata.<name>` parameters go to the store; the answer is upstream's JSON object of
//! items by key (`value`, `version`, `metadata`, each left out when empty), or 204 when
//! there are none.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, Value};

use super::{ApiState, request_metadata};
use crate::configuration;
use crate::error::ApiError;

/// The configuration routes.
pub fn router() -> Router<ApiState> {
    Router::new()
        .route("/v1.0/configuration/{store}", get(get_configuration))
        .route("/v1.0-alpha1/configuration/{store}", get(get_configuration))
}

async fn get_configuration(
    State(runtime): State<ApiState>,
    Path(store): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let keys: Vec<String> = query
        .iter()
        .filter(|(name, _)| name == "key")
        .map(|(_, value)| value.clone())
        .collect();
    let metadata = request_metadata(query);
    let items = configuration::get(&runtime, &store, &keys, &metadata).await?;
    if items.is_empty() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let mut body = Map::new();
    for (key, item) in items {
        let mut fields = Map::new();
        if !item.value.is_empty() {
            fields.insert("value".into(), Value::String(item.value));
        }
        if !item.version.is_empty() {
            fields.insert("version".into(), Value::String(item.version));
        }
        if !item.metadata.is_empty() {
            let metadata = item
                .metadata
                .into_iter()
                .map(|(name, value)| (name, Value::String(value)))
                .collect();
            fields.insert("metadata".into(), Value::Object(metadata));
        }
        body.insert(key, Value::Object(fields));
    }
    let body = crate::go_json::encode_value(&Value::Object(body));
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

//! `GET /v1.0/secrets/{store}/{key}` and `GET /v1.0/secrets/{store}/bulk`: the secrets
//! API over HTTP. `metadata.<name>` query parameters (first value of each) go to the store
//! as `<name>`; answers are upstream's JSON shapes: a secret's values by name, or for bulk
//! every secret by name. A secret literally called `bulk` is not reachable, as upstream.

use std::collections::BTreeMap;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use dapr_components::secretstores::Secret;

use super::{ApiState, request_metadata};
use crate::error::ApiError;
use crate::secrets;

/// The secrets routes; merged into the API router before its fallbacks are set, so an
/// unsupported verb is tried as an invocation like on every other route.
pub fn router() -> Router<ApiState> {
    Router::new()
        .route("/v1.0/secrets/{store}/bulk", get(bulk_get_secret))
        .route("/v1.0/secrets/{store}/{key}", get(get_secret))
}

/// `GET /v1.0/secrets/{store}/{key}`: `{"<name>": "<value>", ...}`.
async fn get_secret(
    State(runtime): State<ApiState>,
    Path((store, key)): Path<(String, String)>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Json<Secret>, ApiError> {
    let metadata = request_metadata(query);
    secrets::get_secret(&runtime, &store, &key, &metadata)
        .await
        .map(Json)
}

/// `GET /v1.0/secrets/{store}/bulk`: `{"<secret>": {"<name>": "<value>", ...}, ...}`.
async fn bulk_get_secret(
    State(runtime): State<ApiState>,
    Path(store): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Json<BTreeMap<String, Secret>>, ApiError> {
    let metadata = request_metadata(query);
    secrets::bulk_get_secret(&runtime, &store, &metadata)
        .await
        .map(Json)
}

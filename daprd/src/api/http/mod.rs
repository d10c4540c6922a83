//! The public HTTP API (`/v1.0/...`), served with axum. Handlers decode, call the core and
//! encode; errors are [`ApiError`]s rendered as upstream's JSON bodies.

mod bindings;
mod configuration;
mod crypto;
mod healthz;
pub mod invoke;
mod lock;
mod metadata;
mod pubsub;
mod secrets;
mod state;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post, put};

use crate::api::{api_access, middleware};
use crate::observability::api_log::HttpApiLogLayer;
use crate::observability::metrics::HttpServerMetricsLayer;
use crate::observability::trace::HttpServerTraceLayer;
use crate::runtime::Runtime;

/// What the HTTP handlers share.
pub type ApiState = Arc<Runtime>;

/// The HTTP API routes with the API-token and body-size checks applied, traced,
/// measured and (when enabled) logged.
pub fn router(runtime: ApiState) -> Router {
    let observed = runtime.clone();
    let token = runtime.config.api_token.clone();
    let max_body_size = runtime.config.max_body_size;
    let router = Router::new()
        .route("/v1.0/healthz", get(healthz::healthz))
        .route("/v1.0/healthz/outbound", get(healthz::outbound))
        .route("/v1.0/metadata", get(metadata::get_metadata))
        .route("/v1.0/metadata/{key}", put(metadata::put_metadata))
        .route("/v1.0/shutdown", post(shutdown))
        .merge(bindings::router())
        .merge(configuration::router())
        .merge(crypto::router())
        .merge(lock::router())
        .merge(pubsub::router())
        .merge(secrets::router())
        .merge(state::router())
        // As upstream, a known path with another verb is tried as an invocation
        // (`dapr-app-id` header form).
        .method_not_allowed_fallback(
            |axum::extract::State(runtime): axum::extract::State<ApiState>,
             request: axum::extract::Request| async move {
                invoke::invoke(axum::extract::State(runtime.invoker.clone()), request).await
            },
        )
        .with_state(runtime.clone())
        .merge(invoke::router(runtime.invoker.clone()))
        .layer(axum::middleware::from_fn_with_state(
            api_access::HttpAccess::new(runtime.api_access.clone(), runtime.invoker.clone()),
            api_access::http_layer,
        ))
        .layer(axum::middleware::from_fn_with_state(
            runtime.http_pipeline.clone(),
            crate::middleware::server_layer,
        ))
        .layer(axum::middleware::from_fn_with_state(
            max_body_size,
            middleware::limit_body,
        ))
        .layer(axum::middleware::from_fn_with_state(
            token,
            middleware::require_api_token_http,
        ));
    let router = match observed.api_logging {
        Some(settings) => router.layer(HttpApiLogLayer::new(settings)),
        None => router,
    };
    router
        .layer(HttpServerMetricsLayer::new(observed.metrics.clone()))
        .layer(HttpServerTraceLayer::new(observed.tracing.clone()))
}

/// Reads a whole request body (already capped by [`middleware::limit_body`]), turning a
/// cut-off or oversize stream into upstream's `ERR_BODY_READ`.
pub(crate) async fn read_body(
    body: axum::body::Body,
) -> Result<axum::body::Bytes, crate::error::ApiError> {
    read_whole(body)
        .await
        .map_err(crate::error::ApiError::body_read)
}

/// Reads a whole request body; the error is upstream's text for why it could not be read
/// (a body past `--max-body-size`, or the transport's reason).
pub(crate) async fn read_whole(body: axum::body::Body) -> Result<axum::body::Bytes, String> {
    axum::body::to_bytes(body, usize::MAX).await.map_err(|err| {
        let oversize =
            std::iter::successors(Some(&err as &(dyn std::error::Error + 'static)), |error| {
                error.source()
            })
            .any(|error| error.is::<http_body_util::LengthLimitError>());
        if oversize {
            middleware::BODY_TOO_LARGE.to_owned()
        } else {
            err.to_string()
        }
    })
}

/// Prefix of query parameters (and response headers) carrying request metadata.
pub(crate) const METADATA_PREFIX: &str = "metadata.";

/// The `metadata.*` query parameters without their prefix; the first of repeated ones
/// wins, as Go's `URL.Query().Get`.
pub(crate) fn request_metadata(
    query: impl IntoIterator<Item = (String, String)>,
) -> std::collections::HashMap<String, String> {
    let mut metadata = std::collections::HashMap::new();
    for (name, value) in query {
        if let Some(name) = name.strip_prefix(METADATA_PREFIX) {
            metadata.entry(name.to_owned()).or_insert(value);
        }
    }
    metadata
}

/// `POST /v1.0/shutdown`: 204, then a graceful (or with `dapr-force-shutdown: true`,
/// immediate) stop.
async fn shutdown(
    axum::extract::State(runtime): axum::extract::State<ApiState>,
    headers: axum::http::HeaderMap,
) -> axum::http::StatusCode {
    runtime.request_shutdown(&headers);
    axum::http::StatusCode::NO_CONTENT
}

//! `GET /v1.0/metadata` and `PUT /v1.0/metadata/{key}`, in upstream's JSON shape.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use dapr_proto::runtime;
use serde::Serialize;

use super::ApiState;
use crate::error::ApiError;

/// The JSON document upstream's HTTP API returns for the metadata call.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MetadataDocument {
    #[serde(skip_serializing_if = "String::is_empty")]
    id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    runtime_version: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    enabled_features: Vec<String>,
    #[serde(rename = "components", skip_serializing_if = "Vec::is_empty")]
    components: Vec<ComponentEntry>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    extended: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    subscriptions: Vec<SubscriptionEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    http_endpoints: Vec<NameEntry>,
    app_connection_properties: AppConnectionEntry,
    actor_runtime: ActorRuntimeEntry,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    resiliencies: Vec<NameEntry>,
}

#[derive(Debug, Serialize)]
struct ComponentEntry {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    version: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    capabilities: Vec<String>,
}

#[derive(Debug, Serialize)]
struct NameEntry {
    name: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SubscriptionEntry {
    pubsubname: String,
    topic: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    metadata: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    rules: Vec<RuleEntry>,
    dead_letter_topic: String,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Debug, Serialize)]
struct RuleEntry {
    #[serde(rename = "match", skip_serializing_if = "String::is_empty")]
    match_expression: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    path: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct AppConnectionEntry {
    #[serde(skip_serializing_if = "is_zero")]
    port: i32,
    #[serde(skip_serializing_if = "String::is_empty")]
    protocol: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    channel_address: String,
    #[serde(skip_serializing_if = "is_zero")]
    max_concurrency: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    health: Option<AppHealthEntry>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct AppHealthEntry {
    #[serde(skip_serializing_if = "String::is_empty")]
    health_check_path: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    health_probe_interval: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    health_probe_timeout: String,
    #[serde(skip_serializing_if = "is_zero")]
    health_threshold: i32,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ActorRuntimeEntry {
    runtime_status: String,
    host_ready: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    placement: String,
}

fn is_zero(value: &i32) -> bool {
    *value == 0
}

impl From<runtime::GetMetadataResponse> for MetadataDocument {
    fn from(response: runtime::GetMetadataResponse) -> Self {
        let connection = response.app_connection_properties.unwrap_or_default();
        let actor_runtime = response.actor_runtime.unwrap_or_default();
        let status =
            runtime::actor_runtime::ActorRuntimeStatus::try_from(actor_runtime.runtime_status)
                .map(|status| status.as_str_name().to_string())
                .unwrap_or_default();
        Self {
            id: response.id,
            runtime_version: response.runtime_version,
            enabled_features: response.enabled_features,
            components: response
                .registered_components
                .into_iter()
                .map(|c| ComponentEntry {
                    name: c.name,
                    kind: c.r#type,
                    version: c.version,
                    capabilities: c.capabilities,
                })
                .collect(),
            extended: response.extended_metadata.into_iter().collect(),
            subscriptions: response
                .subscriptions
                .into_iter()
                .map(|s| SubscriptionEntry {
                    pubsubname: s.pubsub_name,
                    topic: s.topic,
                    metadata: s.metadata.into_iter().collect(),
                    rules: s
                        .rules
                        .map(|rules| rules.rules)
                        .unwrap_or_default()
                        .into_iter()
                        .map(|r| RuleEntry {
                            match_expression: r.r#match,
                            path: r.path,
                        })
                        .collect(),
                    dead_letter_topic: s.dead_letter_topic,
                    kind: runtime::PubsubSubscriptionType::try_from(s.r#type)
                        .map(|kind| kind.as_str_name().to_string())
                        .unwrap_or_default(),
                })
                .collect(),
            http_endpoints: response
                .http_endpoints
                .into_iter()
                .map(|e| NameEntry { name: e.name })
                .collect(),
            app_connection_properties: AppConnectionEntry {
                port: connection.port,
                protocol: connection.protocol,
                channel_address: connection.channel_address,
                max_concurrency: connection.max_concurrency,
                health: connection.health.map(|h| AppHealthEntry {
                    health_check_path: h.health_check_path,
                    health_probe_interval: h.health_probe_interval,
                    health_probe_timeout: h.health_probe_timeout,
                    health_threshold: h.health_threshold,
                }),
            },
            actor_runtime: ActorRuntimeEntry {
                runtime_status: status,
                host_ready: actor_runtime.host_ready,
                placement: actor_runtime.placement,
            },
            resiliencies: response
                .resiliencies
                .into_iter()
                .map(|r| NameEntry { name: r.name })
                .collect(),
        }
    }
}

/// `GET /v1.0/metadata`.
pub async fn get_metadata(State(runtime): State<ApiState>) -> Json<MetadataDocument> {
    Json(runtime.metadata.get().into())
}

/// `PUT /v1.0/metadata/{key}`: the raw body becomes the value.
pub async fn put_metadata(
    State(runtime): State<ApiState>,
    Path(key): Path<String>,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let value = super::read_body(body).await?;
    runtime
        .metadata
        .set(&key, String::from_utf8_lossy(&value).into_owned());
    Ok(StatusCode::NO_CONTENT)
}

//! The publish API's failures as upstream reports them: error codes, messages, HTTP
//! statuses, gRPC codes and rich details (a `ResourceInfo` naming the component, except
//! for a missing component, then an `ErrorInfo` whose metadata is the request's metadata
//! or the facts of the failure).

use std::collections::{BTreeMap, HashMap};

use axum::http::StatusCode;

use crate::error::ApiError;

/// The `resource_type` of the `ResourceInfo` details.
const RESOURCE_TYPE: &str = "pubsub";

/// Request metadata as `ErrorInfo` metadata.
pub type InfoMetadata = BTreeMap<String, String>;

/// Request metadata as `ErrorInfo` metadata.
pub fn info_metadata(metadata: &HashMap<String, String>) -> InfoMetadata {
    metadata
        .iter()
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect()
}

/// `ERR_PUBSUB_NOT_FOUND`: no pub/sub component has this name.
pub fn not_found(pubsub: &str, metadata: InfoMetadata) -> ApiError {
    ApiError::new(
        "ERR_PUBSUB_NOT_FOUND",
        format!("pubsub {pubsub} is not found"),
        StatusCode::NOT_FOUND,
        tonic::Code::InvalidArgument,
    )
    .with_info("DAPR_PUBSUB_NOT_FOUND", metadata)
}

/// `ERR_PUBSUB_EMPTY`: the request names no component.
pub fn name_empty(metadata: InfoMetadata) -> ApiError {
    described(
        "ERR_PUBSUB_EMPTY",
        "DAPR_PUBSUB_NAME_EMPTY",
        "",
        "pubsub name is empty".to_owned(),
        (StatusCode::NOT_FOUND, tonic::Code::InvalidArgument),
        metadata,
    )
}

/// `ERR_TOPIC_NAME_EMPTY`: the request names no topic.
pub fn topic_empty(pubsub: &str, metadata: InfoMetadata) -> ApiError {
    described(
        "ERR_TOPIC_NAME_EMPTY",
        "DAPR_PUBSUB_TOPIC_NAME_EMPTY",
        pubsub,
        format!("topic is empty in pubsub {pubsub}"),
        (StatusCode::NOT_FOUND, tonic::Code::InvalidArgument),
        metadata,
    )
}

/// `ERR_PUBSUB_REQUEST_METADATA`: request metadata (`rawPayload`) is invalid.
pub fn request_metadata(pubsub: &str, reason: &str, metadata: InfoMetadata) -> ApiError {
    described(
        "ERR_PUBSUB_REQUEST_METADATA",
        "DAPR_PUBSUB_METADATA_DESERIALIZATION",
        pubsub,
        format!("failed deserializing metadata. Error: {reason}"),
        (StatusCode::BAD_REQUEST, tonic::Code::InvalidArgument),
        metadata,
    )
}

/// `ERR_PUBSUB_CLOUD_EVENTS_SER`: a CloudEvent payload could not be read.
pub fn cloud_event_creation(pubsub: &str, app_id: &str, reason: &str) -> ApiError {
    described(
        "ERR_PUBSUB_CLOUD_EVENTS_SER",
        "DAPR_PUBSUB_CLOUD_EVENT_CREATION",
        pubsub,
        "cannot create cloudevent".to_owned(),
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            tonic::Code::InvalidArgument,
        ),
        app_error(app_id, Some(reason)),
    )
}

/// `ERR_PUBSUB_EVENTS_SER` (`DAPR_PUBSUB_MARSHAL_ENVELOPE`): a bulk entry's event does not
/// fit its content type.
pub fn marshal_envelope(pubsub: &str, topic: &str, app_id: &str, reason: &str) -> ApiError {
    described(
        "ERR_PUBSUB_EVENTS_SER",
        "DAPR_PUBSUB_MARSHAL_ENVELOPE",
        pubsub,
        format!(
            "error when marshalling cloud event envelope for topic {topic} pubsub {pubsub}: {reason}"
        ),
        (StatusCode::BAD_REQUEST, tonic::Code::InvalidArgument),
        app_error(app_id, Some(reason)),
    )
}

/// `ERR_PUBSUB_EVENTS_SER` (`DAPR_PUBSUB_MARSHAL_EVENTS`): a bulk entry's id is missing
/// or repeated.
pub fn entry_id_invalid(pubsub: &str, topic: &str, app_id: &str) -> ApiError {
    let reason = "entryId is duplicated or not present for entry";
    described(
        "ERR_PUBSUB_EVENTS_SER",
        "DAPR_PUBSUB_MARSHAL_EVENTS",
        pubsub,
        format!(
            "error marshaling events to bytes for topic {topic} pubsub {pubsub}. error: {reason}"
        ),
        (StatusCode::BAD_REQUEST, tonic::Code::InvalidArgument),
        app_error(app_id, Some(reason)),
    )
}

/// `ERR_PUBSUB_EVENTS_SER` (`DAPR_PUBSUB_UNMARSHAL_EVENTS`): a bulk body is not a list of
/// entries.
pub fn unmarshal_events(pubsub: &str, topic: &str, app_id: &str, reason: &str) -> ApiError {
    described(
        "ERR_PUBSUB_EVENTS_SER",
        "DAPR_PUBSUB_UNMARSHAL_EVENTS",
        pubsub,
        format!("error when unmarshaling the request for topic {topic} pubsub {pubsub}: {reason}"),
        (StatusCode::BAD_REQUEST, tonic::Code::InvalidArgument),
        app_error(app_id, None),
    )
}

/// `ERR_PUBSUB_FORBIDDEN`: the component's scopes do not let this app publish to `topic`.
pub fn forbidden(pubsub: &str, topic: &str, app_id: &str) -> ApiError {
    let message = format!("topic {topic} is not allowed for app id {app_id}");
    described(
        "ERR_PUBSUB_FORBIDDEN",
        "DAPR_PUBSUB_FORBIDDEN",
        pubsub,
        message.clone(),
        (StatusCode::FORBIDDEN, tonic::Code::PermissionDenied),
        topic_error(topic, &message),
    )
}

/// `ERR_PUBSUB_PUBLISH_MESSAGE`: the broker (or reading the body) failed.
pub fn publish_message(pubsub: &str, topic: &str, reason: &str) -> ApiError {
    described(
        "ERR_PUBSUB_PUBLISH_MESSAGE",
        "DAPR_PUBSUB_PUBLISH_MESSAGE",
        pubsub,
        format!("error when publishing to topic {topic} in pubsub {pubsub}: {reason}"),
        (StatusCode::INTERNAL_SERVER_ERROR, tonic::Code::Internal),
        topic_error(topic, reason),
    )
}

fn app_error(app_id: &str, reason: Option<&str>) -> InfoMetadata {
    let mut metadata = InfoMetadata::from([("appID".to_owned(), app_id.to_owned())]);
    if let Some(reason) = reason {
        metadata.insert("error".to_owned(), reason.to_owned());
    }
    metadata
}

fn topic_error(topic: &str, reason: &str) -> InfoMetadata {
    InfoMetadata::from([
        ("topic".to_owned(), topic.to_owned()),
        ("error".to_owned(), reason.to_owned()),
    ])
}

/// An error with a `ResourceInfo` naming `pubsub` (described by the message) and an
/// `ErrorInfo`.
fn described(
    code: &'static str,
    reason: &str,
    pubsub: &str,
    message: String,
    (http_status, grpc_code): (StatusCode, tonic::Code),
    metadata: InfoMetadata,
) -> ApiError {
    ApiError::new(code, message.clone(), http_status, grpc_code)
        .with_resource(RESOURCE_TYPE, pubsub, message)
        .with_info(reason, metadata)
}

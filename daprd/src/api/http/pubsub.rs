//! `POST|PUT /v1.0/publish/{pubsub}/{topic...}` and the bulk publish routes
//! (`/v1.0-alpha1/publish/bulk/...` and `/v1.0/publish/bulk/...`): the publish API over
//! HTTP. The topic is the rest of the path and may contain slashes; `metadata.<name>`
//! query parameters (first value of each) are the request metadata; the body's
//! `Content-Type` is the payload's. Success is 204 with no body. A bulk publish the
//! broker partly refused answers 500 with `{"failedEntries":[...],"errorCode":...}`,
//! also given in the `metadata.responseData` and `metadata.error` headers, as upstream.

use std::collections::HashMap;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;

use super::{ApiState, read_whole, request_metadata};
use crate::error::ApiError;
use crate::go_json::{self, GoValue};
use crate::observability::trace::TraceContext;
use crate::pubsub::{self, BulkEntry, BulkPublishError, Publisher, errors};
use crate::state::Protocol;

/// The publish routes; merged into the API router before its fallbacks are set.
pub fn router() -> Router<ApiState> {
    Router::new()
        .route("/v1.0/publish/{*path}", post(publish).put(publish))
        .route(
            "/v1.0/publish/bulk/{*path}",
            post(bulk_publish).put(bulk_publish),
        )
        .route(
            "/v1.0-alpha1/publish/bulk/{*path}",
            post(bulk_publish).put(bulk_publish),
        )
}

/// `POST /v1.0/publish/{pubsub}/{topic...}`.
async fn publish(
    State(runtime): State<ApiState>,
    Path(path): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
    trace: Option<axum::Extension<TraceContext>>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let metadata = request_metadata(query);
    let publisher = Publisher::new(&runtime, Protocol::Http, call_trace(trace, &headers));
    let (pubsub_name, topic) = split_path(&path);
    let target = publisher.target(pubsub_name, topic, &metadata)?;
    let data = read_whole(body)
        .await
        .map_err(|reason| errors::publish_message(&target.pubsub_name, &target.topic, &reason))?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    publisher
        .publish(&target, data, content_type, metadata)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1.0-alpha1/publish/bulk/{pubsub}/{topic...}`: a JSON list of
/// `{"entryId", "event", "contentType", "metadata"}`.
async fn bulk_publish(
    State(runtime): State<ApiState>,
    Path(path): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
    trace: Option<axum::Extension<TraceContext>>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, Response> {
    let metadata = request_metadata(query);
    let publisher = Publisher::new(&runtime, Protocol::Http, call_trace(trace, &headers));
    let (pubsub_name, topic) = split_path(&path);
    let app_id = &runtime.config.app_id;
    let target = publisher
        .target(pubsub_name, topic, &metadata)
        .map_err(IntoResponse::into_response)?;
    let raw = publisher
        .raw_payload(&target, &metadata)
        .map_err(IntoResponse::into_response)?;
    let unmarshal = |reason: &str| {
        errors::unmarshal_events(&target.pubsub_name, &target.topic, app_id, reason).into_response()
    };
    let body = read_whole(body)
        .await
        .map_err(|reason| unmarshal(&reason))?;
    let listed = go_json::decode_precise(&body).map_err(|error| unmarshal(&error.to_string()))?;
    let entries = decode_entries(listed).map_err(|reason| unmarshal(&reason))?;
    let mut seen = std::collections::HashSet::new();
    let mut converted = Vec::with_capacity(entries.len());
    for entry in entries {
        let event = event_bytes(&entry.event, &entry.content_type).map_err(|reason| {
            errors::marshal_envelope(&target.pubsub_name, &target.topic, app_id, &reason)
                .into_response()
        })?;
        if entry.entry_id.is_empty() || !seen.insert(entry.entry_id.clone()) {
            return Err(
                errors::entry_id_invalid(&target.pubsub_name, &target.topic, app_id)
                    .into_response(),
            );
        }
        converted.push(BulkEntry {
            entry_id: entry.entry_id,
            event: event.into(),
            content_type: entry.content_type,
            metadata: entry.metadata,
        });
    }
    match publisher
        .bulk_publish(&target, raw, converted, &metadata)
        .await
    {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(BulkPublishError::Refused(error)) => Err(error.into_response()),
        Err(BulkPublishError::Partial {
            error,
            failed_entries,
        }) => Err(partial_failure(&error, &failed_entries)),
    }
}

/// The answer to a bulk publish the broker partly refused.
fn partial_failure(error: &ApiError, failed: &[pubsub::FailedEntry]) -> Response {
    let mut body = Vec::new();
    body.extend_from_slice(b"{\"failedEntries\":[");
    for (index, entry) in failed.iter().enumerate() {
        if index > 0 {
            body.push(b',');
        }
        body.extend_from_slice(b"{\"entryId\":");
        go_json::write_string(&mut body, &entry.entry_id);
        if !entry.error.is_empty() {
            body.extend_from_slice(b",\"error\":");
            go_json::write_string(&mut body, &entry.error);
        }
        body.push(b'}');
    }
    body.extend_from_slice(b"],\"errorCode\":");
    go_json::write_string(&mut body, error.code);
    body.push(b'}');
    let mut response = (error.http_status, body.clone()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    for (name, value) in [
        ("metadata.responsedata", body),
        ("metadata.error", error.to_string().into_bytes()),
    ] {
        if let Ok(value) = HeaderValue::from_bytes(&value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
    response
}

/// One entry of a bulk body, as upstream's decoder reads it.
struct Entry {
    entry_id: String,
    event: GoValue,
    content_type: String,
    metadata: Option<HashMap<String, String>>,
}

/// The entries of a bulk body; the error is Go's unmarshal error text.
fn decode_entries(listed: GoValue) -> Result<Vec<Entry>, String> {
    const ENTRY_TYPE: &str = "http.bulkPublishMessageEntry";
    let GoValue::Array(items) = listed else {
        if listed == GoValue::Null {
            return Ok(Vec::new());
        }
        return Err(format!(
            "json: cannot unmarshal {} into Go value of type []{ENTRY_TYPE}",
            listed.kind()
        ));
    };
    let mut entries = Vec::with_capacity(items.len());
    for item in items {
        let fields = match item {
            GoValue::Object(fields) => fields,
            GoValue::Null => Default::default(),
            other => {
                return Err(format!(
                    "json: cannot unmarshal {} into Go value of type {ENTRY_TYPE}",
                    other.kind()
                ));
            }
        };
        let field = |name: &str| {
            fields
                .get(name)
                .or_else(|| {
                    fields
                        .iter()
                        .find(|(key, _)| key.eq_ignore_ascii_case(name))
                        .map(|(_, value)| value)
                })
                .cloned()
        };
        let text = |name: &str| match field(name) {
            None | Some(GoValue::Null) => Ok(String::new()),
            Some(GoValue::String(text)) => Ok(text),
            Some(other) => Err(format!(
                "json: cannot unmarshal {} into Go struct field bulkPublishMessageEntry.{name} of type string",
                other.kind()
            )),
        };
        let metadata = match field("metadata") {
            None | Some(GoValue::Null) => None,
            Some(GoValue::Object(values)) => {
                let mut metadata = HashMap::with_capacity(values.len());
                for (key, value) in values {
                    match value {
                        GoValue::String(text) => {
                            metadata.insert(key, text);
                        }
                        GoValue::Null => {
                            metadata.insert(key, String::new());
                        }
                        other => {
                            return Err(format!(
                                "json: cannot unmarshal {} into Go struct field bulkPublishMessageEntry.metadata of type string",
                                other.kind()
                            ));
                        }
                    }
                }
                Some(metadata)
            }
            Some(other) => {
                return Err(format!(
                    "json: cannot unmarshal {} into Go struct field bulkPublishMessageEntry.metadata of type map[string]string",
                    other.kind()
                ));
            }
        };
        entries.push(Entry {
            entry_id: text("entryId")?,
            event: field("event").unwrap_or(GoValue::Null),
            content_type: text("contentType")?,
            metadata,
        });
    }
    Ok(entries)
}

/// An entry's event as bytes (upstream's `ConvertEventToBytes`): base64 text for binary
/// content, text for text content, JSON for JSON and CloudEvents content.
fn event_bytes(event: &GoValue, content_type: &str) -> Result<Vec<u8>, String> {
    const MISMATCH: &str = "error: mismatch between contentType and event";
    if pubsub::is_binary(content_type) {
        let GoValue::String(text) = event else {
            return Err(MISMATCH.to_owned());
        };
        return base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|error| {
                format!(
                    "error: unable to decode base64 application/octect-stream data: {}",
                    go_base64_error(&error)
                )
            });
    }
    if pubsub::is_string(content_type) {
        return match event {
            GoValue::String(text) => Ok(text.clone().into_bytes()),
            _ => Err(MISMATCH.to_owned()),
        };
    }
    if pubsub::is_json(content_type) || pubsub::is_cloud_event(content_type) {
        return Ok(go_json::encode_value(&event.to_float_value()));
    }
    Err(MISMATCH.to_owned())
}

/// Go's words for a bad base64 text.
fn go_base64_error(error: &base64::DecodeError) -> String {
    match error {
        base64::DecodeError::InvalidByte(offset, _)
        | base64::DecodeError::InvalidLastSymbol(offset, _) => {
            format!("illegal base64 data at input byte {offset}")
        }
        base64::DecodeError::InvalidLength(length) => {
            format!("illegal base64 data at input byte {length}")
        }
        base64::DecodeError::InvalidPadding => "illegal base64 data at input byte 0".to_owned(),
    }
}

/// `{pubsub}/{topic...}`: the component is the first segment, the topic the rest.
fn split_path(path: &str) -> (&str, &str) {
    path.split_once('/').unwrap_or((path, ""))
}

/// The call's trace: the server span's, else the caller's `traceparent`.
fn call_trace(
    span: Option<axum::Extension<TraceContext>>,
    headers: &HeaderMap,
) -> Option<TraceContext> {
    span.map(|axum::Extension(context)| context)
        .or_else(|| TraceContext::from_http_headers(headers))
}

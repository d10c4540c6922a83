//! `POST|PUT /v1.0/bindings/{name}`: the output binding API over HTTP, as upstream
//! serves it.
//!
//! The body is `{"operation": ..., "data": ..., "metadata": {...}}`, read up to its first
//! JSON value with Go's rules (field names in any case; `null` leaves a field empty).
//! `data` goes to the binding as the JSON text of the value (a JSON string arrives with
//! its quotes; no `data` is `null`), written as Go writes it; the request metadata is the
//! body's only (`metadata.*` query parameters are not read, as upstream). The call's
//! trace (`traceparent`, `tracestate`) and the caller's `baggage` are added to the
//! metadata. The answer is the binding's data with status 200 and
//! `Content-Type: application/json`, or 204 when the binding answers nothing; each
//! response metadata entry is a `metadata.<key>` header.

use std::collections::{BTreeMap, HashMap};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use dapr_components::bindings::{InvokeRequest, InvokeResponse};

use super::{ApiState, METADATA_PREFIX, read_whole};
use crate::bindings;
use crate::error::ApiError;
use crate::go_json::{self, GoValue};
use crate::observability::trace::{BAGGAGE, TRACEPARENT, TRACESTATE, TraceContext};
use crate::state::Protocol;

/// Go's name of the request type, as its decoding errors give it.
const REQUEST_TYPE: &str = "OutputBindingRequest";

/// The bindings route; merged into the API router before its fallbacks are set.
pub fn router() -> Router<ApiState> {
    Router::new().route("/v1.0/bindings/{name}", post(invoke).put(invoke))
}

/// `POST|PUT /v1.0/bindings/{name}`.
async fn invoke(
    State(runtime): State<ApiState>,
    Path(name): Path<String>,
    trace: Option<axum::Extension<TraceContext>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let body = read_whole(body)
        .await
        .map_err(ApiError::malformed_request)?;
    let mut request = decode(&body).map_err(ApiError::malformed_request)?;
    let trace = trace
        .map(|axum::Extension(context)| context)
        .or_else(|| TraceContext::from_http_headers(&headers));
    if let Some(trace) = trace {
        request
            .metadata
            .insert(TRACEPARENT.to_owned(), trace.traceparent());
        if !trace.trace_state().is_empty() {
            request.metadata.insert(
                TRACESTATE.to_owned(),
                trace.trace_state().as_str().to_owned(),
            );
        }
    }
    let baggage: Vec<&str> = headers
        .get_all(BAGGAGE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .collect();
    if !baggage.is_empty() {
        request
            .metadata
            .insert(BAGGAGE.to_owned(), baggage.join(","));
    }
    let response = bindings::invoke(&runtime, Protocol::Http, &name, request).await?;
    Ok(answer(response))
}

/// The HTTP answer to a binding's response.
fn answer(response: InvokeResponse) -> Response {
    let nothing =
        response.data.is_empty() && response.metadata.is_empty() && response.content_type.is_none();
    let mut answer = if nothing {
        StatusCode::NO_CONTENT.into_response()
    } else {
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            response.data,
        )
            .into_response()
    };
    let headers = answer.headers_mut();
    for (key, value) in response.metadata {
        let name = format!("{METADATA_PREFIX}{key}").to_ascii_lowercase();
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            headers.append(name, value);
        }
    }
    answer
}

/// The request in `body`; the error is Go's decoding error text.
fn decode(body: &[u8]) -> Result<InvokeRequest, String> {
    let fields = match go_json::decode_precise(body).map_err(|error| error.0)? {
        GoValue::Object(fields) => fields,
        GoValue::Null => BTreeMap::new(),
        other => {
            return Err(format!(
                "json: cannot unmarshal {} into Go value of type http.{REQUEST_TYPE}",
                other.kind()
            ));
        }
    };
    let field = |name: &str| {
        fields.get(name).or_else(|| {
            fields
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(name))
                .map(|(_, value)| value)
        })
    };
    let mismatch = |value: &GoValue, field: &str, go_type: &str| {
        format!(
            "json: cannot unmarshal {} into Go struct field {REQUEST_TYPE}.{field} of type {go_type}",
            value.kind()
        )
    };
    let operation = match field("operation") {
        None | Some(GoValue::Null) => String::new(),
        Some(GoValue::String(operation)) => operation.clone(),
        Some(other) => return Err(mismatch(other, "operation", "string")),
    };
    let metadata = match field("metadata") {
        None | Some(GoValue::Null) => HashMap::new(),
        Some(GoValue::Object(entries)) => entries
            .iter()
            .map(|(key, value)| match value {
                GoValue::String(text) => Ok((key.clone(), text.clone())),
                GoValue::Null => Ok((key.clone(), String::new())),
                other => Err(mismatch(other, "metadata", "string")),
            })
            .collect::<Result<_, _>>()?,
        Some(other) => return Err(mismatch(other, "metadata", "map[string]string")),
    };
    let data = field("data").unwrap_or(&GoValue::Null).to_float_value();
    Ok(InvokeRequest {
        operation,
        data: Bytes::from(go_json::encode_value(&data)),
        metadata,
    })
}

//! `InvokeBinding` on the `Dapr` service: decode, call the output binding core, encode.
//!
//! As upstream, the binding's metadata is the request's plus the call's: the trace
//! (`traceparent`, `tracestate`) unless the request sets it, the caller's `baggage`, and
//! every incoming gRPC metadata entry (first value) the request does not set, with
//! `grpc-*` keys renamed `dapr-grpc-*` (the caller's `traceparent` and `tracestate`
//! entries win over the request's). Transport headers and the caller's
//! `dapr-api-token` are not passed on. The response metadata is in the answer and also
//! sent as `metadata.<key>` header metadata.

use dapr_components::bindings::InvokeRequest;
use dapr_proto::runtime;
use tonic::metadata::{AsciiMetadataValue, KeyAndValueRef, MetadataKey, MetadataMap};
use tonic::{Request, Response, Status};

use crate::api::middleware::API_TOKEN_HEADER;
use crate::bindings;
use crate::observability::trace::{BAGGAGE, TRACEPARENT, TRACESTATE, TraceContext};
use crate::runtime::Runtime;
use crate::state::Protocol;

/// Incoming metadata the gRPC transport uses itself: never passed to a binding.
const TRANSPORT_KEYS: [&str; 8] = [
    "te",
    "grpc-timeout",
    "grpc-encoding",
    "grpc-message-type",
    "grpc-message",
    "grpc-status",
    "grpc-status-details-bin",
    API_TOKEN_HEADER,
];

/// Prefix of the header metadata carrying response metadata.
const METADATA_PREFIX: &str = "metadata.";

/// `InvokeBinding`: one operation on an output binding.
pub async fn invoke_binding(
    runtime: &Runtime,
    request: Request<runtime::InvokeBindingRequest>,
) -> Result<Response<runtime::InvokeBindingResponse>, Status> {
    let trace = request
        .extensions()
        .get::<TraceContext>()
        .cloned()
        .or_else(|| TraceContext::from_grpc_metadata(request.metadata().as_ref()));
    let incoming = request.metadata().clone();
    let request = request.into_inner();
    let mut metadata = request.metadata;
    if let Some(trace) = trace {
        metadata
            .entry(TRACEPARENT.to_owned())
            .or_insert_with(|| trace.traceparent());
        if !trace.trace_state().is_empty() {
            metadata
                .entry(TRACESTATE.to_owned())
                .or_insert_with(|| trace.trace_state().as_str().to_owned());
        }
    }
    let baggage: Vec<&str> = incoming
        .get_all(BAGGAGE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .collect();
    if !baggage.is_empty() {
        metadata.insert(BAGGAGE.to_owned(), baggage.join(","));
    }
    for (key, value) in first_values(&incoming) {
        let overriding = key == TRACEPARENT || key == TRACESTATE;
        let key = sanitized(&key);
        if overriding || !metadata.contains_key(&key) {
            metadata.insert(key, value);
        }
    }
    let answer = bindings::invoke(
        runtime,
        Protocol::Grpc,
        &request.name,
        InvokeRequest {
            operation: request.operation,
            data: request.data.into(),
            metadata,
        },
    )
    .await?;
    let mut headers = MetadataMap::new();
    for (key, value) in &answer.metadata {
        let key = format!("{METADATA_PREFIX}{key}").to_ascii_lowercase();
        if let (Ok(key), Ok(value)) = (
            MetadataKey::from_bytes(key.as_bytes()),
            AsciiMetadataValue::try_from(value.as_str()),
        ) {
            headers.append(key, value);
        }
    }
    let mut response = Response::new(runtime::InvokeBindingResponse {
        data: answer.data.to_vec(),
        metadata: answer.metadata.into_iter().collect(),
    });
    *response.metadata_mut() = headers;
    Ok(response)
}

/// The first value of each incoming metadata key (binary values decoded), without the
/// transport's own keys; values that are not text are left out.
fn first_values(incoming: &MetadataMap) -> Vec<(String, String)> {
    let mut values: Vec<(String, String)> = Vec::new();
    for entry in incoming.iter() {
        let (key, value) = match entry {
            KeyAndValueRef::Ascii(key, value) => {
                (key.as_str(), value.to_str().ok().map(str::to_owned))
            }
            KeyAndValueRef::Binary(key, value) => (
                key.as_str(),
                value
                    .to_bytes()
                    .ok()
                    .and_then(|bytes| String::from_utf8(bytes.to_vec()).ok()),
            ),
        };
        if TRANSPORT_KEYS.contains(&key) || values.iter().any(|(seen, _)| seen == key) {
            continue;
        }
        if let Some(value) = value {
            values.push((key.to_owned(), value));
        }
    }
    values
}

/// Upstream's name for an incoming key in binding metadata: `grpc-*` becomes
/// `dapr-grpc-*`.
fn sanitized(key: &str) -> String {
    if key.starts_with("grpc-") {
        format!("dapr-{key}")
    } else {
        key.to_owned()
    }
}

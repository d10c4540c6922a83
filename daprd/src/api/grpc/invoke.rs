//! `Dapr/InvokeService` on the public gRPC API: the caller's message and metadata become an
//! invocation, the reply comes back as one `InvokeResponse`. An HTTP app's status travels
//! in the `dapr-http-status` header; a non-2xx one becomes a gRPC error (upstream's mapping,
//! with an `ErrorInfo` naming the HTTP code and the start of the body). A gRPC app's error
//! status is returned as it is.

use crate::observability::trace::{TraceContext, inject_into};
use axum::body::Body;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use dapr_proto::common;
use dapr_proto::google::rpc;
use dapr_proto::runtime::InvokeServiceRequest;
use http_body_util::BodyExt;
use prost::Message;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Code, Request, Response, Status};

use crate::channel::grpc_code_from_http_status;
use crate::error::{ApiError, ERROR_DOMAIN};
use crate::invoke::metadata::{HTTP_STATUS_HEADER, to_grpc_reply};
use crate::invoke::status::status_text;
use crate::invoke::{InvokeRequest, Invoker, verb};

/// The HTTP app's `Content-Type`, as upstream's header conversion names it for gRPC.
const HTTP_CONTENT_TYPE_HEADER: &str = "dapr-content-type";
/// Longest HTTP error body quoted in the `ErrorInfo` of a failed call, as upstream.
const MAX_QUOTED_ERROR: usize = 63;

/// Transport headers of the incoming call that are not the caller's metadata.
const TRANSPORT_HEADERS: [&str; 6] = [
    "te",
    "grpc-timeout",
    "grpc-encoding",
    "grpc-accept-encoding",
    "grpc-message-type",
    "content-length",
];

/// The gRPC error for an HTTP app's non-2xx `status` with response `body`, or `None`
/// for a success.
pub(crate) fn http_error(status: StatusCode, body: &[u8]) -> Option<Status> {
    let code = grpc_code_from_http_status(status);
    if code == Code::Ok {
        return None;
    }
    let reason = status_text(status.as_u16());
    let text = String::from_utf8_lossy(body);
    let mut end = text.len().min(MAX_QUOTED_ERROR);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let info = rpc::ErrorInfo {
        reason: reason.to_string(),
        domain: ERROR_DOMAIN.to_string(),
        metadata: [
            ("http.code".to_string(), status.as_u16().to_string()),
            ("http.error_message".to_string(), text[..end].to_string()),
        ]
        .into_iter()
        .collect(),
    };
    let details = rpc::Status {
        code: code as i32,
        message: reason.to_string(),
        details: vec![prost_types::Any {
            type_url: "type.googleapis.com/google.rpc.ErrorInfo".to_string(),
            value: info.encode_to_vec(),
        }],
    };
    Some(Status::with_details(
        code,
        reason,
        details.encode_to_vec().into(),
    ))
}

/// Adds every entry of `extra` to `metadata`.
fn merge(metadata: &mut MetadataMap, extra: MetadataMap) {
    let mut headers = std::mem::take(metadata).into_headers();
    headers.extend(extra.into_headers());
    *metadata = MetadataMap::from_headers(headers);
}

/// Handles `InvokeService`: invokes `message.method` on app `id` with the caller's
/// metadata as headers and returns the whole reply.
pub async fn invoke_service(
    invoker: &Invoker,
    request: Request<InvokeServiceRequest>,
) -> Result<Response<common::InvokeResponse>, Status> {
    let (metadata, extensions, request) = request.into_parts();
    let mut headers: HeaderMap = metadata.into_headers();
    for name in TRANSPORT_HEADERS {
        headers.remove(name);
    }
    // The callee continues the trace from this sidecar's server span.
    if let Some(context) = extensions.get::<TraceContext>() {
        inject_into(&mut headers, context);
    }
    let target = request.id;
    let message = request.message.unwrap_or_default();
    let http_verb = verb::from_extension(message.http_extension.as_ref());
    let query = message
        .http_extension
        .map(|extension| extension.querystring)
        .unwrap_or_default();
    let (data_type_url, data) = message
        .data
        .map(|any| (any.type_url, any.value))
        .unwrap_or_default();
    let invocation = InvokeRequest {
        method: message.method,
        http_verb,
        query,
        headers,
        content_type: Some(message.content_type).filter(|value| !value.is_empty()),
        data_type_url: Some(data_type_url).filter(|url| !url.is_empty()),
        body: Body::from(data),
    };

    let reply = invoker
        .invoke(&target, invocation)
        .await
        .map_err(|err| err.to_status())?;
    let data = reply
        .body
        .collect()
        .await
        .map_err(|err| ApiError::direct_invoke(&target, err).to_status())?
        .to_bytes();
    let content_type = reply.content_type.unwrap_or_default();
    let reply_type_url = reply.data_type_url.unwrap_or_default();

    let (mut metadata, error) = match reply.grpc_code {
        None => {
            let mut metadata = to_grpc_reply(&reply.headers, true);
            if let Some(value) = content_type
                .parse()
                .ok()
                .filter(|_| !content_type.is_empty())
            {
                metadata.insert(HTTP_CONTENT_TYPE_HEADER, value);
            }
            metadata.insert(
                HTTP_STATUS_HEADER,
                MetadataValue::from(reply.status.as_u16()),
            );
            (metadata, http_error(reply.status, &data))
        }
        Some(code) => {
            let mut metadata = to_grpc_reply(&reply.headers, false);
            merge(&mut metadata, to_grpc_reply(&reply.trailers, false));
            let status =
                Status::from_header_map(&reply.trailers).unwrap_or_else(|| Status::new(code, ""));
            let error = (status.code() != Code::Ok).then_some(status);
            (metadata, error)
        }
    };
    metadata.remove(CONTENT_TYPE.as_str());
    if let Some(mut status) = error {
        merge(status.metadata_mut(), metadata);
        return Err(status);
    }
    let mut response = Response::new(common::InvokeResponse {
        data: Some(prost_types::Any {
            type_url: reply_type_url,
            value: data.to_vec(),
        }),
        content_type,
    });
    *response.metadata_mut() = metadata;
    Ok(response)
}

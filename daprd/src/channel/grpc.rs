//! Calling a gRPC app (`grpc`, `grpcs`): `AppCallback/OnInvoke` over one HTTP/2 channel.
//! The request body is collected (a unary call carries one message), within the
//! `--max-body-size` limit; an error status from the app is an answer, not a failure.

use std::time::Duration;

use axum::body::Body;
use axum::http::HeaderMap;
use axum::http::header::CONTENT_TYPE;
use axum::http::uri::PathAndQuery;
use dapr_proto::common;
use dapr_proto::runtime::app_callback_health_check_client::AppCallbackHealthCheckClient;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tonic::Code;
use tonic::metadata::{AsciiMetadataValue, MetadataMap};
use tonic::transport::Channel;

use super::status::{http_status_from_grpc_code, status_json};
use super::{errors, headers};
use crate::api::middleware::API_TOKEN_HEADER;
use crate::error::ApiError;
use crate::invoke::{InvokeRequest, InvokeResponse, verb};

/// Path of `AppCallback/OnInvoke`.
pub(crate) const ON_INVOKE: &str = "/dapr.proto.runtime.v1.AppCallback/OnInvoke";

/// The gRPC side of the app channel.
pub(super) struct GrpcChannel {
    channel: Channel,
    /// Largest message sent to or accepted from the app, `--max-body-size`.
    max_message_size: usize,
    /// Value of `dapr-api-token` for every call, from `APP_API_TOKEN`.
    api_token: Option<AsciiMetadataValue>,
}

impl GrpcChannel {
    /// The underlying HTTP/2 channel (TLS included for `grpcs`).
    pub(super) fn transport(&self) -> &Channel {
        &self.channel
    }

    /// A channel over `channel` (connected lazily, reconnecting as needed).
    pub(super) fn new(
        channel: Channel,
        max_message_size: usize,
        api_token: Option<AsciiMetadataValue>,
    ) -> Self {
        Self {
            channel,
            max_message_size,
            api_token,
        }
    }

    /// Calls `OnInvoke`. Transport failures and error statuses come back as responses
    /// carrying the gRPC code, as upstream reports them; only a body that cannot be read
    /// or is too large fails the call.
    pub(super) async fn invoke(&self, request: InvokeRequest) -> Result<InvokeResponse, ApiError> {
        let data = match Limited::new(request.body, self.max_message_size)
            .collect()
            .await
        {
            Ok(collected) => collected.to_bytes().to_vec(),
            Err(err) if err.downcast_ref::<LengthLimitError>().is_some() => {
                return Err(errors::body_too_large(self.max_message_size));
            }
            Err(err) => return Err(errors::body_unreadable(err)),
        };
        let message = common::InvokeRequest {
            method: request.method,
            data: Some(prost_types::Any {
                type_url: request.data_type_url.unwrap_or_default(),
                value: data,
            }),
            content_type: request.content_type.unwrap_or_default(),
            http_extension: verb::to_extension(request.http_verb.as_ref(), &request.query),
        };
        let mut metadata = headers::to_grpc_app(&request.headers);
        if let Some(token) = &self.api_token {
            metadata.insert(API_TOKEN_HEADER, token.clone());
        }
        let mut call = tonic::Request::new(message);
        *call.metadata_mut() = metadata;

        let mut client = tonic::client::Grpc::new(self.channel.clone())
            .max_decoding_message_size(self.max_message_size)
            .max_encoding_message_size(self.max_message_size);
        if let Err(err) = client.ready().await {
            return Ok(error_response(
                tonic::Status::from_error(Box::new(err)),
                MetadataMap::new(),
            ));
        }
        // A unary call made as a server-streaming one: identical on the wire, but it keeps
        // the app's header metadata apart from its trailers.
        let response = match client
            .server_streaming(
                call,
                PathAndQuery::from_static(ON_INVOKE),
                tonic_prost::ProstCodec::<common::InvokeRequest, common::InvokeResponse>::default(),
            )
            .await
        {
            Ok(response) => response,
            Err(status) => return Ok(error_response(status, MetadataMap::new())),
        };
        let (header_metadata, mut stream, _) = response.into_parts();
        let reply = match stream.message().await {
            Ok(Some(reply)) => reply,
            Ok(None) => {
                let status = tonic::Status::internal("Missing response message.");
                return Ok(error_response(status, header_metadata));
            }
            Err(status) => return Ok(error_response(status, header_metadata)),
        };
        let trailers = match stream.trailers().await {
            Ok(trailers) => trailers.unwrap_or_default(),
            Err(status) => return Ok(error_response(status, header_metadata)),
        };
        Ok(ok_response(reply, header_metadata, trailers))
    }

    /// One health probe: `AppCallbackHealthCheck/HealthCheck` answering OK.
    pub(super) async fn probe(&self, timeout: Duration) -> Result<(), String> {
        let mut client = AppCallbackHealthCheckClient::new(self.channel.clone());
        match tokio::time::timeout(timeout, client.health_check(())).await {
            Err(_) => Err("Health check failed: context deadline exceeded".to_string()),
            Ok(Err(status)) => Err(format!(
                "Health check failed: rpc error: code = {:?} desc = {}",
                status.code(),
                status.message()
            )),
            Ok(Ok(_)) => Ok(()),
        }
    }
}

/// The `HTTPExtension` verb for an HTTP method; verbs outside the enum travel as `POST`.
/// Header metadata as response headers, without the transport's content type.
fn metadata_headers(metadata: MetadataMap) -> HeaderMap {
    let mut headers = metadata.into_headers();
    headers.remove(CONTENT_TYPE);
    headers
}

/// An `OnInvoke` reply: the data is the body, the content type the reply's, and the
/// data's type URL kept for callers that unpack it.
fn ok_response(
    reply: common::InvokeResponse,
    header_metadata: MetadataMap,
    trailers: MetadataMap,
) -> InvokeResponse {
    let (type_url, data) = reply
        .data
        .map(|any| (any.type_url, any.value))
        .unwrap_or_default();
    // The app's own content type stays as it sent it; a packed message is marked by its
    // type URL, and the HTTP edge presents it as protobuf.
    let data_type_url = Some(type_url).filter(|url| !url.is_empty());
    let content_type = Some(reply.content_type).filter(|value| !value.is_empty());
    let mut trailers = trailers.into_headers();
    for reserved in ["grpc-status", "grpc-message", "grpc-status-details-bin"] {
        trailers.remove(reserved);
    }
    InvokeResponse {
        status: http_status_from_grpc_code(Code::Ok),
        grpc_code: Some(Code::Ok),
        headers: metadata_headers(header_metadata),
        trailers,
        content_type,
        data_type_url,
        body: Body::from(data),
    }
}

/// An error status from the app (or from reaching it): the gRPC code and its HTTP status;
/// the status itself in the trailers as on the wire (`grpc-status`, `grpc-message`,
/// `grpc-status-details-bin`, so `tonic::Status::from_header_map` restores it for gRPC
/// callers); and the body HTTP callers get from upstream, the status as JSON.
fn error_response(status: tonic::Status, header_metadata: MetadataMap) -> InvokeResponse {
    let mut trailers = HeaderMap::new();
    if status.add_header(&mut trailers).is_err() {
        // Only the message or details can be unencodable; the code always is.
        trailers = HeaderMap::new();
        let bare = tonic::Status::new(status.code(), "");
        let _ = bare.add_header(&mut trailers);
    }
    InvokeResponse {
        status: http_status_from_grpc_code(status.code()),
        grpc_code: Some(status.code()),
        headers: metadata_headers(header_metadata),
        trailers,
        content_type: None,
        data_type_url: None,
        body: Body::from(status_json(&status).to_string()),
    }
}

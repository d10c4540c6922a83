//! The chunked invocation protocol of the internal API (`CallLocalStream`), both ends.
//!
//! Each side sends one leading message with everything but the body (the request, or the
//! response with its status and headers), then the body as `StreamPayload` chunks numbered
//! from 0, then closes its half. Nothing is buffered beyond one chunk: the leading message
//! leaves before the first body byte exists, and chunks flow as the body produces them.
//!
//! An app's status travels in `Status.code`: an HTTP status (>= 100) or a gRPC code. In an
//! [`InvokeResponse`] a gRPC status's message and details ride in the trailers under the
//! gRPC transport's own names (`grpc-status`, `grpc-message`, `grpc-status-details-bin`).

use std::collections::HashMap;

use axum::body::{Body, BodyDataStream};
use axum::http::StatusCode;
use bytes::Bytes;
use dapr_proto::common::{self, StreamPayload};
use dapr_proto::google::rpc;
use dapr_proto::internals::{
    self, ApiVersion, InternalInvokeRequest, InternalInvokeRequestStream, InternalInvokeResponse,
    InternalInvokeResponseStream, ListStringValue,
};
use futures::{Stream, StreamExt};
use prost::Message;
use tokio::sync::watch;

use super::body_slot::BodySlot;
use super::message::{InvokeRequest, InvokeResponse};
use super::{metadata, verb};
use crate::channel::http_status_from_grpc_code;

/// Largest body chunk put in one message.
const CHUNK_SIZE: usize = 16 << 10;

/// Reports a failure of the caller's request body to whoever waits on the reply, which
/// then abandons the call (the peer sees the stream reset, never a short body).
pub type AbortSender = watch::Sender<Option<String>>;
/// The receiving end of an [`AbortSender`].
pub type AbortReceiver = watch::Receiver<Option<String>>;

/// Resolves with the reason once the request body failed; never, if it did not.
pub async fn aborted(abort: &mut AbortReceiver) -> String {
    let reason = match abort.wait_for(Option::is_some).await {
        Ok(reason) => reason.clone(),
        Err(_) => None,
    };
    match reason {
        Some(reason) => reason,
        None => std::future::pending().await,
    }
}

/// The leading message of `request` (everything but its body), with `metadata` as the
/// caller's headers.
pub fn request_head(
    request: &InvokeRequest,
    metadata: HashMap<String, ListStringValue>,
) -> InternalInvokeRequest {
    InternalInvokeRequest {
        ver: ApiVersion::V1 as i32,
        metadata,
        message: Some(common::InvokeRequest {
            method: request.method.clone(),
            // The payload streams in chunks; a protobuf type travels in the head.
            data: request
                .data_type_url
                .clone()
                .map(|type_url| prost_types::Any {
                    type_url,
                    value: Vec::new(),
                }),
            content_type: request.content_type.clone().unwrap_or_default(),
            http_extension: verb::to_extension(request.http_verb.as_ref(), &request.query),
        }),
        actor: None,
    }
}

/// Rebuilds a request from its leading message and a body.
pub fn request_from_head(head: InternalInvokeRequest, body: Body) -> Option<InvokeRequest> {
    let message = head.message?;
    let http_verb = verb::from_extension(message.http_extension.as_ref());
    let query = message
        .http_extension
        .map(|extension| extension.querystring)
        .unwrap_or_default();
    Some(InvokeRequest {
        method: message.method,
        http_verb,
        query,
        headers: metadata::from_internal(&head.metadata),
        content_type: Some(message.content_type).filter(|value| !value.is_empty()),
        data_type_url: message
            .data
            .map(|any| any.type_url)
            .filter(|url| !url.is_empty()),
        body,
    })
}

/// Where a [`Chunker`] reads from.
enum ChunkSource {
    /// A caller's request body, kept replayable.
    Slot(BodySlot),
    /// A reply body, read once.
    Body(BodyDataStream),
}

impl ChunkSource {
    async fn next_data(&mut self) -> Option<Result<Bytes, String>> {
        match self {
            Self::Slot(slot) => slot.next_data().await,
            Self::Body(body) => Some(body.next().await?.map_err(|err| err.to_string())),
        }
    }
}

/// Sends a body as numbered chunks of at most [`CHUNK_SIZE`] bytes.
struct Chunker {
    source: ChunkSource,
    pending: Bytes,
    seq: u64,
}

impl Chunker {
    fn new(source: ChunkSource) -> Self {
        Self {
            source,
            pending: Bytes::new(),
            seq: 0,
        }
    }

    /// The next chunk, `None` at the end, or the body's error.
    async fn next(&mut self) -> Option<Result<StreamPayload, String>> {
        while self.pending.is_empty() {
            match self.source.next_data().await? {
                Ok(data) => self.pending = data,
                Err(err) => return Some(Err(err)),
            }
        }
        let data = self.pending.split_to(self.pending.len().min(CHUNK_SIZE));
        let seq = self.seq;
        self.seq += 1;
        Some(Ok(StreamPayload {
            data: data.to_vec(),
            seq,
        }))
    }
}

/// Caller side: the messages of a call, the leading one first. The body is taken from
/// `slot` only after the leading message went out; if it fails, `abort` learns why and the
/// stream stalls until the caller drops the call.
pub fn outgoing_request(
    head: InternalInvokeRequest,
    slot: BodySlot,
    abort: AbortSender,
) -> impl Stream<Item = InternalInvokeRequestStream> + Send + 'static {
    struct State {
        head: Option<InternalInvokeRequest>,
        slot: BodySlot,
        chunker: Option<Chunker>,
        abort: AbortSender,
    }
    let state = State {
        head: Some(head),
        slot,
        chunker: None,
        abort,
    };
    futures::stream::unfold(state, |mut state| async move {
        if let Some(head) = state.head.take() {
            let message = InternalInvokeRequestStream {
                request: Some(head),
                payload: None,
            };
            return Some((message, state));
        }
        let slot = &state.slot;
        let chunker = state
            .chunker
            .get_or_insert_with(|| Chunker::new(ChunkSource::Slot(slot.clone())));
        match chunker.next().await? {
            Ok(payload) => {
                let message = InternalInvokeRequestStream {
                    request: None,
                    payload: Some(payload),
                };
                Some((message, state))
            }
            Err(reason) => {
                state.abort.send_replace(Some(reason));
                std::future::pending().await
            }
        }
    })
}

/// Reassembles a body from payload chunks: the one the leading message may carry, then
/// those of the following messages, checking the sequence numbers. `payload_of` rejects
/// a message that repeats leading fields.
fn payload_body<M, S>(
    first: Option<StreamPayload>,
    rest: S,
    payload_of: fn(M) -> Result<Option<StreamPayload>, &'static str>,
    abort: Option<AbortReceiver>,
) -> Body
where
    M: Send + 'static,
    S: Stream<Item = Result<M, tonic::Status>> + Send + Unpin + 'static,
{
    struct State<S> {
        first: Option<StreamPayload>,
        rest: S,
        expect: u64,
        abort: Option<AbortReceiver>,
        failed: bool,
    }
    let state = State {
        first,
        rest,
        expect: 0,
        abort,
        failed: false,
    };
    let stream = futures::stream::unfold(state, move |mut state| async move {
        if state.failed {
            return None;
        }
        loop {
            let payload = match state.first.take() {
                Some(payload) => payload,
                None => {
                    let next = match state.abort.as_mut() {
                        Some(abort) => tokio::select! {
                            next = state.rest.next() => next,
                            reason = aborted(abort) => Some(Err(tonic::Status::cancelled(reason))),
                        },
                        None => state.rest.next().await,
                    };
                    let outcome = match next? {
                        Ok(message) => payload_of(message).map_err(str::to_string),
                        Err(status) => {
                            Err(format!("error receiving message: {}", status.message()))
                        }
                    };
                    match outcome {
                        Ok(Some(payload)) => payload,
                        Ok(None) => continue,
                        Err(reason) => {
                            state.failed = true;
                            return Some((Err(std::io::Error::other(reason)), state));
                        }
                    }
                }
            };
            if payload.seq != state.expect {
                let reason = format!(
                    "invalid sequence number received: {} (expected: {})",
                    payload.seq, state.expect
                );
                state.failed = true;
                return Some((Err(std::io::Error::other(reason)), state));
            }
            state.expect += 1;
            if !payload.data.is_empty() {
                return Some((Ok(Bytes::from(payload.data)), state));
            }
        }
    });
    Body::from_stream(stream)
}

/// Callee side: reads the leading message of an incoming call and returns the request,
/// whose body streams the remaining chunks as they arrive.
pub async fn incoming_request<S>(mut stream: S) -> Result<InvokeRequest, tonic::Status>
where
    S: Stream<Item = Result<InternalInvokeRequestStream, tonic::Status>> + Send + Unpin + 'static,
{
    let first = stream
        .next()
        .await
        .ok_or_else(|| tonic::Status::cancelled("the caller closed the stream"))??;
    let invalid = || {
        tonic::Status::invalid_argument(
            "parsing InternalInvokeRequest error: request does not contain the required fields in the leading chunk",
        )
    };
    let head = first.request.ok_or_else(invalid)?;
    if head.metadata.is_empty() || head.message.is_none() {
        return Err(invalid());
    }
    let body = payload_body(
        first.payload,
        stream,
        |message: InternalInvokeRequestStream| {
            if message.request.is_some() {
                return Err("request metadata found in non-leading chunk");
            }
            Ok(message.payload)
        },
        None,
    );
    request_from_head(head, body).ok_or_else(invalid)
}

/// The status an app's reply carries on the internal API.
fn reply_status(response: &InvokeResponse) -> internals::Status {
    match response.grpc_code {
        None => internals::Status {
            code: i32::from(response.status.as_u16()),
            message: String::new(),
            details: Vec::new(),
        },
        Some(code) => {
            let (message, details) = match tonic::Status::from_header_map(&response.trailers) {
                Some(status) => (
                    status.message().to_string(),
                    rpc::Status::decode(status.details())
                        .map(|decoded| decoded.details)
                        .unwrap_or_default(),
                ),
                None => (String::new(), Vec::new()),
            };
            internals::Status {
                code: code as i32,
                message,
                details,
            }
        }
    }
}

/// The leading message of an app's reply (everything but its body).
pub fn response_head(response: &InvokeResponse) -> InternalInvokeResponse {
    let mut trailers = response.trailers.clone();
    for reserved in ["grpc-status", "grpc-message", "grpc-status-details-bin"] {
        trailers.remove(reserved);
    }
    InternalInvokeResponse {
        status: Some(reply_status(response)),
        headers: metadata::to_internal(&response.headers),
        trailers: metadata::to_internal(&trailers),
        message: Some(common::InvokeResponse {
            data: response
                .data_type_url
                .clone()
                .map(|type_url| prost_types::Any {
                    type_url,
                    value: Vec::new(),
                }),
            content_type: response.content_type.clone().unwrap_or_default(),
        }),
    }
}

/// Rebuilds an app's reply from its leading message and a body.
pub fn response_from_head(head: InternalInvokeResponse, body: Body) -> Option<InvokeResponse> {
    let status = head.status?;
    let headers = metadata::from_internal(&head.headers);
    let mut trailers = metadata::from_internal(&head.trailers);
    let (content_type, data_type_url) = head
        .message
        .map(|message| {
            (
                message.content_type,
                message.data.map(|any| any.type_url).unwrap_or_default(),
            )
        })
        .unwrap_or_default();
    let content_type = Some(content_type).filter(|value| !value.is_empty());
    let data_type_url = Some(data_type_url).filter(|url| !url.is_empty());
    let (status_code, grpc_code) = if status.code >= 100 {
        let http = u16::try_from(status.code)
            .ok()
            .and_then(|code| StatusCode::from_u16(code).ok())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (http, None)
    } else {
        let code = tonic::Code::from(status.code);
        let details = if status.details.is_empty() {
            Bytes::new()
        } else {
            rpc::Status {
                code: status.code,
                message: status.message.clone(),
                details: status.details,
            }
            .encode_to_vec()
            .into()
        };
        if let Err(err) =
            tonic::Status::with_details(code, status.message, details).add_header(&mut trailers)
        {
            tracing::debug!("app status not representable as trailers: {err}");
        }
        (http_status_from_grpc_code(code), Some(code))
    };
    Some(InvokeResponse {
        status: status_code,
        grpc_code,
        headers,
        trailers,
        content_type,
        data_type_url,
        body,
    })
}

/// Callee side: the messages of a reply, the leading one first, then the body's chunks.
/// A body that fails mid-way ends the call with an `Internal` status.
pub fn outgoing_response(
    response: InvokeResponse,
) -> impl Stream<Item = Result<InternalInvokeResponseStream, tonic::Status>> + Send + 'static {
    let head = response_head(&response);
    let chunker = Chunker::new(ChunkSource::Body(response.body.into_data_stream()));
    futures::stream::unfold((Some(head), Some(chunker)), |(head, chunker)| async move {
        if let Some(head) = head {
            let message = InternalInvokeResponseStream {
                response: Some(head),
                payload: None,
            };
            return Some((Ok(message), (None, chunker)));
        }
        let mut chunker = chunker?;
        match chunker.next().await? {
            Ok(payload) => {
                let message = InternalInvokeResponseStream {
                    response: None,
                    payload: Some(payload),
                };
                Some((Ok(message), (None, Some(chunker))))
            }
            Err(reason) => {
                let status = tonic::Status::internal(format!("error reading response: {reason}"));
                Some((Err(status), (None, None)))
            }
        }
    })
}

/// Caller side: reads the leading message of a reply and returns the reply, whose body
/// streams the remaining chunks as they arrive (and fails if `abort` fires first).
pub async fn incoming_response<S>(
    mut stream: S,
    abort: AbortReceiver,
) -> Result<InvokeResponse, tonic::Status>
where
    S: Stream<Item = Result<InternalInvokeResponseStream, tonic::Status>> + Send + Unpin + 'static,
{
    let missing = || {
        tonic::Status::internal(
            "response does not contain the required fields in the leading chunk",
        )
    };
    let first = stream.next().await.ok_or_else(missing)??;
    let head = first
        .response
        .filter(|head| head.status.is_some())
        .ok_or_else(missing)?;
    let body = payload_body(
        first.payload,
        stream,
        |message: InternalInvokeResponseStream| {
            let repeated = message.response.is_some_and(|response| {
                response.status.is_some()
                    || !response.headers.is_empty()
                    || response.message.is_some()
            });
            if repeated {
                return Err("response metadata found in non-leading chunk");
            }
            Ok(message.payload)
        },
        Some(abort),
    );
    response_from_head(head, body).ok_or_else(missing)
}

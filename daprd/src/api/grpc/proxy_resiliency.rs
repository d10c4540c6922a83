//! Resiliency for proxied gRPC calls, as upstream applies it: the caller's sidecar looks
//! up the target app's policy. A unary call (the default) is one attempt from request to
//! final status: its request is buffered when the policy can retry, its reply always, so
//! that a non-OK `grpc-status` counts as a failure (matched against the retry policy's
//! `gRPCStatusCodes`) and the last reply still reaches the caller as the app sent it. A
//! call marked `dapr-stream: true` is long-lived: the policy only covers getting the
//! reply's head, and the body is never replayed.

use std::sync::Mutex;

use axum::body::Body;
use axum::extract::Request;
use axum::http::HeaderMap;
use axum::response::Response;
use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::StreamBody;
use hyper::body::Frame;
use tonic::Status;

use super::proxy::GrpcProxy;
use crate::resiliency::{Failure, Policy, PolicyError};

/// Metadata marking a proxied call as a stream (upstream's `dapr-stream`).
const STREAM_METADATA: &str = "dapr-stream";

/// A failed attempt.
enum AttemptFailure {
    /// The destination answered with a non-OK `grpc-status`; the reply is buffered.
    Reply(Response),
    /// No reply.
    Status(Status),
}

impl std::fmt::Display for AttemptFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AttemptFailure::Reply(reply) => match grpc_status(reply.headers(), None) {
                Some(code) => write!(f, "the app answered grpc-status {code}"),
                None => f.write_str("the app answered with an error"),
            },
            AttemptFailure::Status(status) => write!(f, "{status}"),
        }
    }
}

/// The `grpc-status` of a reply: from its trailers, or its headers (trailers-only reply).
fn grpc_status(headers: &HeaderMap, trailers: Option<&HeaderMap>) -> Option<i32> {
    trailers
        .and_then(|trailers| trailers.get("grpc-status"))
        .or_else(|| headers.get("grpc-status"))
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse().ok())
}

fn is_stream(headers: &HeaderMap) -> bool {
    headers
        .get(STREAM_METADATA)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            matches!(
                value.trim().to_ascii_lowercase().as_str(),
                "true" | "1" | "yes" | "on" | "y"
            )
        })
}

/// Reads a reply whole; `Err` when its body broke.
async fn buffered(reply: Response) -> Result<(Response, Option<i32>), Status> {
    let (parts, body) = reply.into_parts();
    let collected = body
        .collect()
        .await
        .map_err(|error| Status::unavailable(format!("failed to read the reply: {error}")))?;
    let trailers = collected.trailers().cloned();
    let status = grpc_status(&parts.headers, trailers.as_ref());
    let data = collected.to_bytes();
    let mut frames: Vec<Result<Frame<Bytes>, std::convert::Infallible>> =
        vec![Ok(Frame::data(data))];
    if let Some(trailers) = trailers {
        frames.push(Ok(Frame::trailers(trailers)));
    }
    let body = Body::new(StreamBody::new(futures::stream::iter(frames)));
    Ok((Response::from_parts(parts, body), status))
}

/// Where each attempt's request body comes from.
enum RequestBody {
    Buffered(Bytes),
    Once(Mutex<Option<Body>>),
}

impl RequestBody {
    fn next(&self) -> Body {
        match self {
            RequestBody::Buffered(bytes) => Body::from(bytes.clone()),
            RequestBody::Once(body) => body
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take()
                .unwrap_or_else(Body::empty),
        }
    }
}

impl GrpcProxy {
    /// Forwards `request` under `policy` (the target app's, not empty).
    pub(super) async fn forward_under(
        &self,
        policy: Policy,
        request: Request,
    ) -> Result<Response, Status> {
        let (parts, body) = request.into_parts();
        let stream = is_stream(&parts.headers);
        let body = if !stream && policy.has_retries() {
            let bytes = body
                .collect()
                .await
                .map_err(|error| Status::internal(format!("failed to read the request: {error}")))?
                .to_bytes();
            RequestBody::Buffered(bytes)
        } else {
            RequestBody::Once(Mutex::new(Some(body)))
        };
        let outcome = policy
            .run(|| {
                let request = Request::from_parts(parts.clone(), body.next());
                async move {
                    let reply = self.try_forward(request).await.map_err(|status| {
                        let code = status.code() as i32;
                        Failure::with_status(AttemptFailure::Status(status), code)
                    })?;
                    if stream {
                        return Ok(reply);
                    }
                    let (reply, status) = buffered(reply)
                        .await
                        .map_err(|status| Failure::transient(AttemptFailure::Status(status)))?;
                    match status {
                        Some(code) if code != 0 => {
                            Err(Failure::with_status(AttemptFailure::Reply(reply), code))
                        }
                        _ => Ok(reply),
                    }
                }
            })
            .await;
        match outcome {
            Ok(reply) | Err(PolicyError::Failed(AttemptFailure::Reply(reply))) => Ok(reply),
            Err(PolicyError::Failed(AttemptFailure::Status(status))) => Err(status),
            Err(PolicyError::TimedOut) => {
                Err(Status::deadline_exceeded("context deadline exceeded"))
            }
            Err(refused) => Err(Status::unavailable(refused.to_string())),
        }
    }
}

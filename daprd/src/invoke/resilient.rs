//! Service invocation under the target app's resiliency policy, as upstream applies it at
//! the API edge: each attempt is one whole call (bounded by the timeout, counted by the
//! app's circuit breaker); a reply with an error status (HTTP outside 200-399, a gRPC
//! code other than OK) is a failure the retry policy may repeat, matched against its
//! status lists. The request body is buffered only when the policy can retry; the last
//! error reply goes back to the caller as the app sent it.

use std::sync::Mutex;

use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use http_body_util::BodyExt;
use tonic::Code;

use super::invoker::Invoker;
use super::message::{InvokeRequest, InvokeResponse};
use super::status::status_error_text;
use super::target::normalize_method;
use crate::error::ApiError;
use crate::resiliency::{Failure, PolicyError};

/// A failed attempt: an error reply from the app, or no reply.
enum AttemptFailure {
    /// The app answered with an error status; its body is buffered.
    Reply(InvokeResponse),
    /// No reply.
    Error(ApiError),
}

impl std::fmt::Display for AttemptFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AttemptFailure::Reply(reply) => write!(f, "the app answered {}", reply.status),
            AttemptFailure::Error(error) => f.write_str(&error.message),
        }
    }
}

/// The status a failed reply is matched with: its gRPC code (apps reached over gRPC) or
/// HTTP status; `None` for a successful reply.
fn failure_status(reply: &InvokeResponse) -> Option<i32> {
    match reply.grpc_code {
        Some(Code::Ok) => None,
        Some(code) => Some(code as i32),
        None => {
            let status = reply.status.as_u16();
            (!(200..=399).contains(&status)).then_some(i32::from(status))
        }
    }
}

/// A request's parts other than its body, to build each attempt from.
struct RequestHead {
    method: String,
    http_verb: Option<axum::http::Method>,
    query: String,
    headers: axum::http::HeaderMap,
    content_type: Option<String>,
    data_type_url: Option<String>,
}

impl RequestHead {
    fn split(request: InvokeRequest) -> (Self, Body) {
        let head = RequestHead {
            method: request.method,
            http_verb: request.http_verb,
            query: request.query,
            headers: request.headers,
            content_type: request.content_type,
            data_type_url: request.data_type_url,
        };
        (head, request.body)
    }

    fn with_body(&self, body: Body) -> InvokeRequest {
        InvokeRequest {
            method: self.method.clone(),
            http_verb: self.http_verb.clone(),
            query: self.query.clone(),
            headers: self.headers.clone(),
            content_type: self.content_type.clone(),
            data_type_url: self.data_type_url.clone(),
            body,
        }
    }
}

/// Where each attempt's body comes from.
enum BodySource {
    /// Buffered, for policies that retry.
    Buffered(Bytes),
    /// Streamed once; later attempts (only after a breaker or timeout refusal) send none.
    Once(Mutex<Option<Body>>),
}

impl BodySource {
    fn next(&self) -> Body {
        match self {
            BodySource::Buffered(bytes) => Body::from(bytes.clone()),
            BodySource::Once(body) => body
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take()
                .unwrap_or_else(Body::empty),
        }
    }
}

impl Invoker {
    /// Invokes `request.method` on `target` (an app id, `id.namespace`, an `HTTPEndpoint`
    /// name or a URL) under the target's resiliency policy, returning the reply once its
    /// status and headers are known. Replies with any status are returned as replies;
    /// errors are failures to get one (`ERR_DIRECT_INVOKE`, as upstream words them),
    /// including a policy's timeout or open circuit breaker.
    pub async fn invoke(
        &self,
        target: &str,
        mut request: InvokeRequest,
    ) -> Result<InvokeResponse, ApiError> {
        request.method = normalize_method(&request.method).map_err(|reason| {
            ApiError::direct_invoke(
                target,
                status_error_text(Code::InvalidArgument, &format!("invalid method: {reason}")),
            )
        })?;
        let policy = self.resiliency.app_policy(target);
        // As upstream, the built-in retries stay for apps covered only by defaults.
        let service_retries =
            (!self.resiliency.has_app_policy(target)).then(|| self.resiliency.service_retries());
        if policy.is_empty() {
            return self
                .invoke_once(target, request, service_retries.as_deref())
                .await;
        }
        let (head, body) = RequestHead::split(request);
        let source = if policy.has_retries() {
            let bytes = body
                .collect()
                .await
                .map_err(|error| ApiError::direct_invoke(target, error))?
                .to_bytes();
            BodySource::Buffered(bytes)
        } else {
            BodySource::Once(Mutex::new(Some(body)))
        };
        let outcome = policy
            .run(|| {
                let request = head.with_body(source.next());
                let service_retries = service_retries.clone();
                async move {
                    match self
                        .invoke_once(target, request, service_retries.as_deref())
                        .await
                    {
                        Ok(reply) => match failure_status(&reply) {
                            None => Ok(reply),
                            Some(status) => Err(Failure::with_status(
                                AttemptFailure::Reply(buffered(reply).await),
                                status,
                            )),
                        },
                        Err(error) if is_final(&error) => {
                            Err(Failure::permanent(AttemptFailure::Error(error)))
                        }
                        Err(error) => Err(Failure::transient(AttemptFailure::Error(error))),
                    }
                }
            })
            .await;
        match outcome {
            Ok(reply) | Err(PolicyError::Failed(AttemptFailure::Reply(reply))) => Ok(reply),
            Err(PolicyError::Failed(AttemptFailure::Error(error))) => Err(error),
            Err(refused) => Err(ApiError::direct_invoke(target, refused)),
        }
    }
}

/// Failures another attempt cannot fix: the callee's access control refused the call, or
/// the request is malformed.
fn is_final(error: &ApiError) -> bool {
    matches!(
        error.http_status,
        StatusCode::FORBIDDEN | StatusCode::BAD_REQUEST
    )
}

/// The reply with its body read, so it can be dropped for a retry or returned later.
async fn buffered(reply: InvokeResponse) -> InvokeResponse {
    let InvokeResponse {
        status,
        grpc_code,
        headers,
        trailers,
        content_type,
        data_type_url,
        body,
    } = reply;
    let body = match body.collect().await {
        Ok(collected) => Body::from(collected.to_bytes()),
        Err(error) => {
            tracing::debug!("the app's error reply could not be read: {error}");
            Body::empty()
        }
    };
    InvokeResponse {
        status,
        grpc_code,
        headers,
        trailers,
        content_type,
        data_type_url,
        body,
    }
}

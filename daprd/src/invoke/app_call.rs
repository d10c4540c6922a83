//! Client metrics of one call the sidecar makes to an app over the app channel or to an
//! HTTPEndpoint service: measured the same way wherever the call starts (an invocation
//! from another sidecar, a self-invocation, a call to a non-Dapr service).

use std::time::Instant;

use axum::http::Method;
use axum::http::header::CONTENT_LENGTH;

use super::{InvokeRequest, InvokeResponse};
use crate::channel::ON_INVOKE;
use crate::config::AppProtocol;
use crate::observability::metrics::SidecarMetrics;

/// HTTP status upstream records for an HTTP call that got no response.
const NO_RESPONSE_STATUS: u16 = 500;

/// How the callee is spoken to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CalleeProtocol {
    /// HTTP (the app over `http`/`https`/`h2c`, or an HTTPEndpoint).
    Http,
    /// gRPC (`AppCallback/OnInvoke`).
    Grpc,
}

impl CalleeProtocol {
    /// How an app reached over `protocol` is spoken to.
    pub fn of(protocol: AppProtocol) -> Self {
        match protocol {
            AppProtocol::Grpc | AppProtocol::Grpcs => Self::Grpc,
            AppProtocol::Http | AppProtocol::Https | AppProtocol::H2c => Self::Http,
        }
    }
}

/// A call being measured: started before the request leaves, finished with the reply.
#[derive(Debug)]
pub struct AppCallMeter {
    protocol: CalleeProtocol,
    verb: Option<Method>,
    path: String,
    sent: u64,
    started: Instant,
}

impl AppCallMeter {
    /// Starts measuring `request`, about to be sent over `protocol`.
    pub fn start(request: &InvokeRequest, protocol: CalleeProtocol) -> Self {
        Self {
            protocol,
            verb: request.http_verb.clone(),
            path: format!("/{}", request.method.trim_start_matches('/')),
            sent: content_length(&request.headers),
            started: Instant::now(),
        }
    }

    /// Records the call in `metrics`: `reply` is the callee's answer, or `None` when the
    /// call failed without one.
    pub fn finish(self, metrics: &SidecarMetrics, reply: Option<&InvokeResponse>) {
        let elapsed = self.started.elapsed();
        match self.protocol {
            CalleeProtocol::Grpc => {
                let code = reply.map_or(tonic::Code::Unavailable as i32, |response| {
                    response.grpc_code.map_or(0, |code| code as i32)
                });
                let received = reply.map_or(0, |response| content_length(&response.headers));
                metrics.record_grpc_client(ON_INVOKE, code, self.sent, received, elapsed);
            }
            // A call without a verb never reaches an HTTP callee.
            CalleeProtocol::Http => {
                if let Some(verb) = &self.verb {
                    let (status, received) = reply.map_or((NO_RESPONSE_STATUS, 0), |response| {
                        (response.status.as_u16(), content_length(&response.headers))
                    });
                    metrics
                        .record_http_client(verb, &self.path, status, self.sent, received, elapsed);
                }
            }
        }
    }
}

/// The announced body size, or 0 when the body streams without one.
fn content_length(headers: &http::HeaderMap) -> u64 {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
        .unwrap_or(0)
}

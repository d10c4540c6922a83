//! A method call on an app and its reply, as they travel through the sidecar: from a
//! public API edge, over the internal sidecar-to-sidecar hop, into the app channel and
//! back. Bodies are streams end to end; nothing here buffers a payload.

use axum::body::Body;
use axum::http::{HeaderMap, Method, StatusCode};

/// A call to a method of the target app.
#[derive(Debug)]
pub struct InvokeRequest {
    /// The method path after `/method/`, without a leading slash (`orders/42`).
    pub method: String,
    /// The HTTP verb the caller used; `None` when a gRPC caller sent no HTTP extension (or
    /// verb `NONE`), which only gRPC apps accept.
    pub http_verb: Option<Method>,
    /// The raw query string, without `?`; empty when there is none.
    pub query: String,
    /// Headers (HTTP) or metadata (gRPC) to pass to the app, hop-by-hop headers removed.
    pub headers: HeaderMap,
    /// Media type of the body, when known.
    pub content_type: Option<String>,
    /// `type_url` of a packed protobuf payload (gRPC callers), carried to gRPC apps.
    pub data_type_url: Option<String>,
    /// The payload, streamed.
    pub body: Body,
}

/// The app's reply.
#[derive(Debug)]
pub struct InvokeResponse {
    /// The HTTP status (apps reached over gRPC map their status code to HTTP).
    pub status: StatusCode,
    /// The gRPC status code when the app was reached over gRPC.
    pub grpc_code: Option<tonic::Code>,
    /// Response headers (or gRPC header metadata).
    pub headers: HeaderMap,
    /// Trailers (gRPC trailing metadata), sent after the body.
    pub trailers: HeaderMap,
    /// Media type of the body, when known.
    pub content_type: Option<String>,
    /// `type_url` of a packed protobuf payload (gRPC apps), carried back to gRPC callers.
    pub data_type_url: Option<String>,
    /// The payload, streamed.
    pub body: Body,
}

impl InvokeResponse {
    /// The reply's status as upstream's invocation metrics label it: the gRPC code for
    /// apps reached over gRPC, the HTTP status otherwise.
    pub fn status_label(&self) -> i32 {
        self.grpc_code
            .map_or(i32::from(self.status.as_u16()), |code| code as i32)
    }
}

//! HTTP middleware components (`middleware.http.*`): the contract a pipeline stage
//! implements and the built-in stages. A stage sees each request on its way in and may
//! change it or answer it itself; it then sees the response on its way out. Stages are
//! chained by daprd in the order a Configuration's pipeline lists them.

mod bearer;
mod catalog;
mod ratelimit;
mod routeralias;
mod routerchecker;
mod uppercase;

use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;

pub use catalog::{MIDDLEWARE_TYPES, OpenError, open};

/// The error type of middleware bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// A request or response body passing through middleware.
pub type MiddlewareBody = UnsyncBoxBody<Bytes, BoxError>;
/// A request passing through middleware.
pub type Request = http::Request<MiddlewareBody>;
/// A response passing through middleware.
pub type Response = http::Response<MiddlewareBody>;

/// A middleware component that cannot start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MiddlewareError {
    /// The component's metadata is wrong.
    #[error("{0}")]
    InvalidMetadata(String),
    /// A resource the component needs at start (a key set) could not be fetched.
    #[error("{0}")]
    Unavailable(String),
}

/// One stage of an HTTP pipeline.
#[async_trait::async_trait]
pub trait HttpMiddleware: Send + Sync {
    /// Runs on a request: `Ok` passes it (possibly changed) on, `Err` answers it here.
    async fn on_request(&self, request: Request) -> Result<Request, Response>;

    /// Runs on the response on its way back (by default, it passes unchanged).
    async fn on_response(&self, response: Response) -> Response {
        response
    }
}

/// `bytes` as a middleware body.
pub fn full_body(bytes: impl Into<Bytes>) -> MiddlewareBody {
    http_body_util::Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A plain-text response with `status`, as upstream's middleware answer errors.
pub fn text_response(status: http::StatusCode, message: &str) -> Response {
    let mut response = http::Response::new(full_body(message.to_owned()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Answers with `status` and its standard reason as the body.
pub fn status_response(status: http::StatusCode) -> Response {
    text_response(status, status.canonical_reason().unwrap_or_default())
}

#[cfg(test)]
mod tests;

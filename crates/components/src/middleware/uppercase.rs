//! `middleware.http.uppercase`: upstream's test middleware. It upper-cases request bodies
//! (`direction: request`, the default), response bodies (`response`) or both (`both`).

use http_body_util::BodyExt;

use super::{HttpMiddleware, MiddlewareBody, Request, Response, full_body, status_response};
use crate::metadata::Properties;

/// The uppercase middleware.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uppercase {
    requests: bool,
    responses: bool,
}

/// Reads `direction`.
pub fn open(properties: &Properties) -> Uppercase {
    let direction = properties
        .text("direction", &[])
        .unwrap_or_default()
        .to_ascii_lowercase();
    match direction.as_str() {
        "response" => Uppercase {
            requests: false,
            responses: true,
        },
        "both" => Uppercase {
            requests: true,
            responses: true,
        },
        _ => Uppercase {
            requests: true,
            responses: false,
        },
    }
}

/// The body read whole and upper-cased (ASCII letters, as Go's `bytes.ToUpper` on text).
async fn uppercased(body: MiddlewareBody) -> Result<MiddlewareBody, ()> {
    let bytes = body.collect().await.map_err(|_| ())?.to_bytes();
    Ok(full_body(String::from_utf8_lossy(&bytes).to_uppercase()))
}

#[async_trait::async_trait]
impl HttpMiddleware for Uppercase {
    async fn on_request(&self, request: Request) -> Result<Request, Response> {
        if !self.requests {
            return Ok(request);
        }
        let (mut parts, body) = request.into_parts();
        let body = uppercased(body)
            .await
            .map_err(|()| status_response(http::StatusCode::BAD_REQUEST))?;
        parts.headers.remove(http::header::CONTENT_LENGTH);
        Ok(http::Request::from_parts(parts, body))
    }

    async fn on_response(&self, response: Response) -> Response {
        if !self.responses {
            return response;
        }
        let (mut parts, body) = response.into_parts();
        match uppercased(body).await {
            Ok(body) => {
                parts.headers.remove(http::header::CONTENT_LENGTH);
                http::Response::from_parts(parts, body)
            }
            Err(()) => status_response(http::StatusCode::INTERNAL_SERVER_ERROR),
        }
    }
}

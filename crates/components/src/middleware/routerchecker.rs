//! `middleware.http.routerchecker`: requests whose URI (escaped path and query) does not
//! match the `rule` regular expression are answered `400 invalid router`, as upstream.

use regex::Regex;

use super::{HttpMiddleware, MiddlewareError, Request, Response, text_response};
use crate::metadata::Properties;

/// The router checker.
#[derive(Debug, Clone)]
pub struct RouterChecker {
    rule: Regex,
}

/// Compiles `rule` (an empty rule matches everything).
pub fn open(properties: &Properties) -> Result<RouterChecker, MiddlewareError> {
    let rule = properties.text("rule", &[]).unwrap_or_default();
    let rule = Regex::new(rule).map_err(|error| {
        MiddlewareError::InvalidMetadata(format!("failed to compile rule regexp: {error}"))
    })?;
    Ok(RouterChecker { rule })
}

/// The request's path and query as sent (`/path?query`).
fn request_uri(request: &Request) -> String {
    let uri = request.uri();
    let mut text = match uri.path() {
        "" => "/".to_owned(),
        path => path.to_owned(),
    };
    if let Some(query) = uri.query() {
        text.push('?');
        text.push_str(query);
    }
    text
}

#[async_trait::async_trait]
impl HttpMiddleware for RouterChecker {
    async fn on_request(&self, request: Request) -> Result<Request, Response> {
        if self.rule.is_match(&request_uri(&request)) {
            Ok(request)
        } else {
            Err(text_response(
                http::StatusCode::BAD_REQUEST,
                "invalid router",
            ))
        }
    }
}

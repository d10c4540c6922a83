//! Service invocation on the HTTP API: `/v1.0/invoke/{id}/method/{method...}` with any
//! verb, and the `dapr-app-id` header (or `Authorization: Basic` with user `dapr-app-id`)
//! on any path no other route takes. The app's reply comes back as it is, status, headers
//! and streamed body, whatever its status; only failures to reach the app become
//! `ERR_DIRECT_INVOKE` errors.

use crate::observability::trace::{TraceContext, inject_into};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use base64::Engine;
use percent_encoding::percent_decode_str;

use crate::error::ApiError;
use crate::invoke::metadata::{APP_ID_HEADER, to_http_headers};
use crate::invoke::target::clean_path;
use crate::invoke::{InvokeRequest, InvokeResponse, Invoker};

/// The invocation routes: `/v1.0/invoke/...` for every verb, and a fallback that serves
/// the header form on every path the rest of the API leaves unmatched (merge it into the
/// API router before the API-token and body-size layers).
pub fn router(invoker: Arc<Invoker>) -> Router {
    Router::new()
        .route("/v1.0/invoke/{*rest}", any(invoke))
        .fallback(invoke)
        .with_state(invoker)
}

/// Handles one invocation request.
pub async fn invoke(State(invoker): State<Arc<Invoker>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let mut headers = parts.headers;
    // The callee continues the trace from this sidecar's server span.
    if let Some(context) = parts.extensions.get::<TraceContext>() {
        inject_into(&mut headers, context);
    }
    let path = percent_decode_str(parts.uri.path())
        .decode_utf8()
        .map(|path| path.into_owned())
        .unwrap_or_else(|_| parts.uri.path().to_string());
    let Some((target, method)) = find_target_and_method(&path, &mut headers) else {
        return ApiError::direct_invoke_no_app_id().into_response();
    };
    headers.remove(HOST);
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(str::to_string);
    let request = InvokeRequest {
        method,
        http_verb: Some(parts.method),
        query: parts.uri.query().unwrap_or_default().to_string(),
        headers,
        content_type,
        data_type_url: None,
        body,
    };
    match invoker.invoke(&target, request).await {
        Ok(reply) => reply_response(reply),
        Err(err) => err.into_response(),
    }
}

/// Content type of protobuf payloads, as upstream names it.
const PROTOBUF_CONTENT_TYPE: &str = "application/x-protobuf";

/// The app's reply as the HTTP caller gets it.
fn reply_response(reply: InvokeResponse) -> Response {
    let mut response = Response::new(Body::new(reply.body));
    *response.status_mut() = reply.status;
    *response.headers_mut() = to_http_headers(&reply.headers);
    // A packed protobuf reply without its own content type is protobuf to HTTP callers.
    let content_type = reply
        .content_type
        .as_deref()
        .or(reply.data_type_url.as_ref().map(|_| PROTOBUF_CONTENT_TYPE));
    if let Some(content_type) = content_type.and_then(|value| HeaderValue::from_str(value).ok()) {
        response.headers_mut().insert(CONTENT_TYPE, content_type);
    }
    response
}

/// The method: the cleaned path without its leading slash.
fn method_from_path(path: &str) -> String {
    let cleaned = clean_path(path);
    let method = cleaned.trim_start_matches('/');
    if method == "." {
        String::new()
    } else {
        method.to_string()
    }
}

/// Finds the target and method of a request as upstream does: from the `dapr-app-id`
/// header (removed from the request; the path is the method), from basic authentication
/// with user `dapr-app-id` (the password is the target), or from the URL
/// `/v1.0/invoke/<target>/method/<method>`.
fn find_target_and_method(path: &str, headers: &mut HeaderMap) -> Option<(String, String)> {
    let from_header = headers
        .get(APP_ID_HEADER)
        .and_then(|value| value.to_str().ok())
        .filter(|value| !value.is_empty())
        .map(str::to_string);
    if let Some(target) = from_header {
        headers.remove(APP_ID_HEADER);
        return Some((target, method_from_path(path)));
    }

    let credentials = headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Basic "))
        .and_then(|encoded| {
            base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .ok()
        })
        .and_then(|decoded| String::from_utf8(decoded).ok());
    if let Some(credentials) = credentials {
        let pair: Vec<&str> = credentials.split(':').collect();
        if let [user, target] = pair.as_slice()
            && user.eq_ignore_ascii_case(APP_ID_HEADER)
        {
            return Some((target.to_string(), method_from_path(path)));
        }
    }

    let rest = &path[after_prefix(path, &["v1.0", "invoke"])?..];
    let split = rest.find("/method/").filter(|index| *index > 0)?;
    let raw_target = &rest[..split];
    let method = clean_path(&rest[split + "/method/".len()..]);
    let method = if method == "." { String::new() } else { method };
    let target = percent_decode_str(&raw_target.replace('+', " "))
        .decode_utf8()
        .ok()
        .map(|target| target.into_owned())
        .filter(|target| !target.is_empty())
        .unwrap_or_else(|| raw_target.to_string());
    Some((target, method))
}

/// When `path`'s first segments (ignoring empty ones) are `prefix`, the index of the first
/// byte after them and the slashes that follow.
fn after_prefix(path: &str, prefix: &[&str]) -> Option<usize> {
    let bytes = path.as_bytes();
    let mut index = 0;
    for expected in prefix {
        while bytes.get(index) == Some(&b'/') {
            index += 1;
        }
        let start = index;
        while index < bytes.len() && bytes[index] != b'/' {
            index += 1;
        }
        if &path[start..index] != *expected {
            return None;
        }
    }
    if bytes.get(index) != Some(&b'/') && index < bytes.len() {
        return None;
    }
    while bytes.get(index) == Some(&b'/') {
        index += 1;
    }
    Some(index)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(path: &str, pairs: &[(&str, &str)]) -> Option<(String, String)> {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(
                axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        find_target_and_method(path, &mut headers)
    }

    fn pair(target: &str, method: &str) -> Option<(String, String)> {
        Some((target.to_string(), method.to_string()))
    }

    #[test]
    fn url_forms_follow_upstream() {
        assert_eq!(
            find("/v1.0/invoke/orders/method/a/b", &[]),
            pair("orders", "a/b")
        );
        assert_eq!(
            find("//v1.0//invoke/orders/method/a//b/", &[]),
            pair("orders", "a/b")
        );
        assert_eq!(
            find("/v1.0/invoke/orders.prod/method/x", &[]),
            pair("orders.prod", "x")
        );
        assert_eq!(
            find("/v1.0/invoke/http://h:1/method/x", &[]),
            pair("http://h:1", "x")
        );
        assert_eq!(find("/v1.0/invoke/orders/method/", &[]), pair("orders", ""));
        assert_eq!(find("/v1.0/invoke/orders", &[]), None);
        assert_eq!(find("/v1.0/invoked/orders/method/x", &[]), None);
        assert_eq!(find("/v1.0/state/x", &[]), None);
    }

    #[test]
    fn header_and_basic_auth_forms_take_the_path_as_method() {
        assert_eq!(
            find("/orders/42", &[("dapr-app-id", "orders")]),
            pair("orders", "orders/42")
        );
        let credentials = base64::engine::general_purpose::STANDARD.encode("dapr-app-id:billing");
        assert_eq!(
            find(
                "/pay",
                &[("authorization", &format!("Basic {credentials}"))]
            ),
            pair("billing", "pay")
        );
    }

    #[test]
    fn prefix_matching_skips_empty_segments() {
        assert_eq!(
            after_prefix("/v1.0/invoke/x", &["v1.0", "invoke"]),
            Some(13)
        );
        assert_eq!(after_prefix("/v1.0/invoke", &["v1.0", "invoke"]), Some(12));
        assert_eq!(after_prefix("/v1.0/invokes/x", &["v1.0", "invoke"]), None);
        assert_eq!(after_prefix("/v1.0", &["v1.0", "invoke"]), None);
    }
}

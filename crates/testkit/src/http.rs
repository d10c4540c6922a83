//! A tiny HTTP/1.1 client for tests, on hyper-util's legacy client.
//!
//! A fresh client per request: tests run on many short-lived tokio runtimes, and a pooled
//! connection must not outlive the runtime that opened it.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use ::http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};

use crate::error::{Result, TestkitError};

/// Bound on one request, including reading the whole response body.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A fully read HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

impl Response {
    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }

    /// A header's value as text, if present and valid.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }
}

/// Sends one request and reads the whole response (bounded by [`REQUEST_TIMEOUT`]).
pub async fn request(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Result<Response> {
    let failure = |reason: String| TestkitError::Http {
        method: method.to_string(),
        url: url.to_owned(),
        reason,
    };
    let mut builder = Request::builder().method(method.clone()).uri(url);
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|err| failure(format!("header name {name:?}: {err}")))?;
        let value = HeaderValue::from_str(value)
            .map_err(|err| failure(format!("header value {value:?}: {err}")))?;
        builder = builder.header(name, value);
    }
    let request = builder
        .body(Full::new(body.into()))
        .map_err(|err| failure(err.to_string()))?;
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let exchange = async {
        let response = client
            .request(request)
            .await
            .map_err(|err| failure(error_chain(&err)))?;
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|err| failure(format!("reading body: {err}")))?
            .to_bytes();
        Ok(Response {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .map_err(|_| failure(format!("no complete response within {REQUEST_TIMEOUT:?}")))?
}

/// `GET url`.
pub async fn get(url: &str) -> Result<Response> {
    request(Method::GET, url, &[], Bytes::new()).await
}

/// `POST url` with a JSON body and `content-type: application/json`.
pub async fn post_json(url: &str, body: &serde_json::Value) -> Result<Response> {
    request(
        Method::POST,
        url,
        &[("content-type", "application/json")],
        body.to_string(),
    )
    .await
}

/// The error and its sources, joined (hyper's top-level messages are terse).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

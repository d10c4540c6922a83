//! `bindings.http`: an output binding that sends an HTTP request to its `url` per call,
//! like upstream's.
//!
//! The operation is the method (`get`, `head`, `post`, `put`, `patch`, `delete`,
//! `options`, `trace`; `create` is `post`); only `post`, `put` and `patch` carry the data
//! as body. Request metadata `path` is appended to the URL after a `/`; every other
//! metadata key starting with an uppercase ASCII letter is sent as a header, and
//! `traceparent`, `tracestate` and `baggage` are sent as the tracing headers. Defaults:
//! `Accept: application/json; charset=utf-8`, and the same `Content-Type` for requests
//! with a body, unless the metadata sets them. The answer carries the response body (cut
//! at `maxResponseBodySize`) and metadata `statusCode`, `status` (`200 OK`) and every
//! response header (Go's canonical names, several values joined by `, `). A status
//! outside 2xx fails with `received status code N` unless `errorIfNot2XX` (setting or
//! request metadata) is false.
//!
//! TLS renegotiation (`MTLSRenegotiation` other than `RenegotiateNever`) is refused:
//! rustls never renegotiates.

pub(crate) mod settings;
pub(crate) mod tls;

use std::collections::HashMap;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, TRANSFER_ENCODING};
use http::{Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use settings::Settings;

use super::{BindingError, InvokeRequest, InvokeResponse, Operation, OutputBinding};
use crate::metadata::Properties;

/// The request metadata appended to the URL.
pub const PATH_METADATA_KEY: &str = "path";
/// The request metadata overriding `errorIfNot2XX`.
pub const ERROR_IF_NOT_2XX_METADATA_KEY: &str = "errorIfNot2XX";
/// The response metadata with the status code (`200`).
pub const STATUS_CODE_METADATA_KEY: &str = "statusCode";
/// The response metadata with the status line's code and reason (`200 OK`).
pub const STATUS_METADATA_KEY: &str = "status";

/// The default `Accept` and (for requests with a body) `Content-Type`.
const JSON_UTF8: &str = "application/json; charset=utf-8";
/// How long opening a TCP connection may take, as upstream's dialer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Request metadata sent as tracing headers under the same (lowercase) names.
const TRACE_METADATA_KEYS: [&str; 3] = ["traceparent", "tracestate", "baggage"];
/// Headers the request line and body framing own; Go's client ignores them too.
const IGNORED_HEADERS: [&str; 4] = ["host", "content-length", "transfer-encoding", "trailer"];

/// An HTTP client for `http` and `https` URLs.
type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A configured HTTP binding.
pub struct HttpBinding {
    settings: Settings,
    client: HttpClient,
}

impl std::fmt::Debug for HttpBinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The settings hold the security token and the client key: only the URL is shown.
        f.debug_struct("HttpBinding")
            .field("url", &self.settings.url)
            .finish_non_exhaustive()
    }
}

/// Reads the settings and prepares the pooled client (no connection is opened yet).
pub fn open(properties: &Properties) -> Result<HttpBinding, BindingError> {
    let settings = Settings::from_properties(properties)?;
    let tls = tls::client_config(&settings.tls).map_err(BindingError::InvalidMetadata)?;
    let mut connector = HttpConnector::new();
    connector.enforce_http(false);
    connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
    let connector = HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(connector);
    let client = Client::builder(TokioExecutor::new()).build(connector);
    Ok(HttpBinding { settings, client })
}

#[async_trait::async_trait]
impl OutputBinding for HttpBinding {
    fn operations(&self) -> Vec<Operation> {
        [
            "create", "get", "head", "post", "put", "patch", "delete", "options", "trace",
        ]
        .map(str::to_owned)
        .to_vec()
    }

    async fn invoke(&self, request: InvokeRequest) -> Result<InvokeResponse, BindingError> {
        let InvokeRequest {
            operation,
            data,
            metadata,
        } = request;
        let (method, has_body) = match operation.to_ascii_uppercase().as_str() {
            "CREATE" | "POST" => (Method::POST, true),
            "PUT" => (Method::PUT, true),
            "PATCH" => (Method::PATCH, true),
            "GET" => (Method::GET, false),
            "HEAD" => (Method::HEAD, false),
            "DELETE" => (Method::DELETE, false),
            "OPTIONS" => (Method::OPTIONS, false),
            "TRACE" => (Method::TRACE, false),
            _ => return Err(BindingError::UnsupportedOperation(operation)),
        };
        let url = target_url(&self.settings.url, metadata.get(PATH_METADATA_KEY));
        let uri: Uri = url
            .parse()
            .map_err(|err| BindingError::InvalidRequest(format!("parse {url:?}: {err}")))?;
        let error_if_not_2xx = metadata
            .get(ERROR_IF_NOT_2XX_METADATA_KEY)
            .filter(|value| !value.is_empty())
            .map_or(self.settings.error_if_not_2xx, |value| {
                settings::is_truthy(value)
            });
        let headers = request_headers(&self.settings, &metadata, has_body)?;
        let body = if has_body {
            Full::new(data)
        } else {
            Full::new(Bytes::new())
        };
        let mut outgoing = Request::new(body);
        *outgoing.method_mut() = method.clone();
        *outgoing.uri_mut() = uri;
        *outgoing.headers_mut() = headers;

        let limit = self.settings.max_response_body_size;
        let exchange = async {
            let response = self
                .client
                .request(outgoing)
                .await
                .map_err(|err| error_chain(&err))?;
            let (parts, body) = response.into_parts();
            let data = read_body(body, limit).await?;
            Ok::<_, String>((parts, data))
        };
        let outcome = match self.settings.response_timeout {
            Some(timeout) => tokio::time::timeout(timeout, exchange)
                .await
                .unwrap_or_else(|_| Err("context deadline exceeded".to_owned())),
            None => exchange.await,
        };
        let (parts, data) = outcome.map_err(|reason| {
            BindingError::Backend(format!("{} {url:?}: {reason}", go_operation(&method)))
        })?;

        let status = parts.status.as_u16();
        if error_if_not_2xx && !parts.status.is_success() {
            return Err(BindingError::Backend(format!(
                "received status code {status}"
            )));
        }
        Ok(InvokeResponse {
            data,
            metadata: response_metadata(&parts),
            content_type: None,
        })
    }
}

/// The base URL with `path` appended after exactly one `/`.
fn target_url(base: &str, path: Option<&String>) -> String {
    match path.filter(|path| !path.is_empty()) {
        Some(path) => format!(
            "{}/{}",
            base.trim_end_matches('/'),
            path.trim_start_matches('/')
        ),
        None => base.to_owned(),
    }
}

/// The request headers: defaults, the security token, uppercase metadata keys, then the
/// tracing headers, each replacing what came before under the same name.
fn request_headers(
    settings: &Settings,
    metadata: &HashMap<String, String>,
    has_body: bool,
) -> Result<HeaderMap, BindingError> {
    let mut headers = HeaderMap::new();
    if has_body && !metadata.contains_key("Content-Type") {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(JSON_UTF8));
    }
    if !metadata.contains_key("Accept") {
        headers.insert(ACCEPT, HeaderValue::from_static(JSON_UTF8));
    }
    if let Some((token, header)) = &settings.security_token {
        set_header(&mut headers, header, token)?;
    }
    for (key, value) in metadata {
        let is_header = key.as_bytes().first().is_some_and(u8::is_ascii_uppercase);
        if is_header && !IGNORED_HEADERS.contains(&key.to_ascii_lowercase().as_str()) {
            set_header(&mut headers, key, value)?;
        }
    }
    for key in TRACE_METADATA_KEYS {
        if let Some(value) = metadata.get(key).filter(|value| !value.is_empty()) {
            if headers.contains_key(key) {
                tracing::warn!(
                    "Tracing is enabled. A custom {key} request header cannot be specified and is ignored."
                );
            }
            set_header(&mut headers, key, value)?;
        }
    }
    Ok(headers)
}

/// Sets `name` to `value`, refusing what HTTP cannot carry with Go's wording.
fn set_header(headers: &mut HeaderMap, name: &str, value: &str) -> Result<(), BindingError> {
    let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
        BindingError::InvalidRequest(format!("net/http: invalid header field name {name:?}"))
    })?;
    let value = HeaderValue::from_bytes(value.as_bytes()).map_err(|_| {
        BindingError::InvalidRequest(format!("net/http: invalid header field value for {name:?}"))
    })?;
    headers.insert(header, value);
    Ok(())
}

/// Reads the response body, keeping at most `limit` bytes.
async fn read_body(mut body: Incoming, limit: Option<u64>) -> Result<Bytes, String> {
    let limit = limit.map(|limit| usize::try_from(limit).unwrap_or(usize::MAX));
    let mut data = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|err| error_chain(&err))?;
        let Ok(chunk) = frame.into_data() else {
            continue;
        };
        data.extend_from_slice(&chunk);
        if let Some(limit) = limit
            && data.len() >= limit
        {
            data.truncate(limit);
            break;
        }
    }
    Ok(data.freeze())
}

/// `statusCode`, `status` and the response headers under Go's canonical names.
fn response_metadata(parts: &http::response::Parts) -> HashMap<String, String> {
    let mut metadata = HashMap::with_capacity(parts.headers.keys_len() + 2);
    let code = parts.status.as_u16();
    metadata.insert(STATUS_CODE_METADATA_KEY.to_owned(), code.to_string());
    let reason = parts
        .extensions
        .get::<hyper::ext::ReasonPhrase>()
        .map(|phrase| String::from_utf8_lossy(phrase.as_bytes()).into_owned())
        .or_else(|| parts.status.canonical_reason().map(str::to_owned));
    let status = match reason {
        Some(reason) => format!("{code} {reason}"),
        None => code.to_string(),
    };
    metadata.insert(STATUS_METADATA_KEY.to_owned(), status);
    for name in parts.headers.keys() {
        // Go's client takes the framing header out of the response headers.
        if name == TRANSFER_ENCODING {
            continue;
        }
        let values: Vec<String> = parts
            .headers
            .get_all(name)
            .iter()
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
            .collect();
        metadata.insert(canonical_header_name(name.as_str()), values.join(", "));
    }
    metadata
}

/// Go's canonical form of a header name: `content-type` → `Content-Type`.
fn canonical_header_name(name: &str) -> String {
    let mut upper = true;
    name.chars()
        .map(|character| {
            let mapped = if upper {
                character.to_ascii_uppercase()
            } else {
                character.to_ascii_lowercase()
            };
            upper = character == '-';
            mapped
        })
        .collect()
}

/// `GET` → `Get`: the operation name Go's HTTP client puts before a URL in its errors.
fn go_operation(method: &Method) -> String {
    let lower = method.as_str().to_ascii_lowercase();
    let mut characters = lower.chars();
    characters
        .next()
        .map(|first| first.to_ascii_uppercase().to_string() + characters.as_str())
        .unwrap_or_default()
}

/// An error with its chain of causes, `outer: inner: innermost`.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests;

//! Which caller headers reach the app, and under which names, following upstream's rules
//! for HTTP apps (headers) and gRPC apps (metadata); and which app headers come back.

use std::collections::HashSet;

use axum::http::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderName};
use tonic::metadata::MetadataMap;

/// Prefix upstream gives headers it must rename to keep them apart from reserved ones.
const DAPR_PREFIX: &str = "dapr-";
/// Carries the target app id between sidecars; never forwarded to the app.
const DESTINATION_ID: &str = "destination-app-id";
/// Suffix of binary gRPC metadata keys (values are base64 in header form).
const BINARY_SUFFIX: &str = "-bin";

/// Hop-by-hop headers (RFC 7230 section 6.1) that a proxy must not forward.
fn is_hop_by_hop(name: &str) -> bool {
    matches!(
        name,
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "upgrade"
            | "http2-settings"
            | "te"
            | "trailer"
            | "proxy-authorization"
            | "proxy-authenticate"
    )
}

/// Headers named in `Connection`, which are hop-by-hop too.
fn nominated_by_connection(headers: &HeaderMap) -> HashSet<String> {
    headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|token| token.trim().to_ascii_lowercase())
        .filter(|token| !token.is_empty())
        .collect()
}

/// IANA's permanent HTTP request headers: an HTTP caller's copies of these reach a gRPC
/// app prefixed with `dapr-`, so they cannot clash with the gRPC transport's own.
fn is_permanent_http_header(name: &str) -> bool {
    matches!(
        name,
        "accept"
            | "accept-charset"
            | "accept-language"
            | "accept-ranges"
            | "connection"
            | "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "upgrade"
            | "cache-control"
            | "content-type"
            | "content-length"
            | "cookie"
            | "date"
            | "expect"
            | "from"
            | "host"
            | "if-match"
            | "if-modified-since"
            | "if-none-match"
            | "if-schedule-tag-match"
            | "if-unmodified-since"
            | "max-forwards"
            | "origin"
            | "pragma"
            | "referer"
            | "via"
            | "warning"
    )
}

fn prefixed(name: &str) -> Option<HeaderName> {
    HeaderName::try_from(format!("{DAPR_PREFIX}{name}")).ok()
}

/// The caller's headers as an HTTP app receives them: without hop-by-hop headers, binary
/// metadata, the content type (set from the request's own field) and the destination id;
/// `grpc-*` metadata renamed to `dapr-grpc-*`. `content-length` is kept so a streamed body
/// of known size is not sent chunked.
pub(super) fn to_http_app(headers: &HeaderMap) -> HeaderMap {
    let nominated = nominated_by_connection(headers);
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let key = name.as_str();
        if key == DESTINATION_ID
            || key == CONTENT_TYPE.as_str()
            || key.ends_with(BINARY_SUFFIX)
            || is_hop_by_hop(key)
            || nominated.contains(key)
        {
            continue;
        }
        let name = if key.starts_with("grpc-") {
            match prefixed(key) {
                Some(name) => name,
                None => continue,
            }
        } else {
            name.clone()
        };
        out.append(name, value.clone());
    }
    out
}

/// The caller's headers as gRPC metadata for a gRPC app. A caller that came in over HTTP
/// (its content type is not `application/grpc`) has its permanent HTTP headers prefixed
/// with `dapr-`; binary (`-bin`) values pass through in their base64 form; the destination
/// id is dropped. Reserved gRPC headers are left for the transport to drop.
pub(super) fn to_grpc_app(headers: &HeaderMap) -> MetadataMap {
    let from_grpc_caller = headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/grpc"));
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let key = name.as_str();
        if key == DESTINATION_ID {
            continue;
        }
        let name = if !from_grpc_caller && is_permanent_http_header(key) {
            match prefixed(key) {
                Some(name) => name,
                None => continue,
            }
        } else {
            name.clone()
        };
        out.append(name, value.clone());
    }
    MetadataMap::from_headers(out)
}

/// The app's HTTP response headers as the caller gets them: hop-by-hop headers dropped,
/// and `content-length`/`content-type` dropped because the response carries them itself
/// (the body's exact size hint and the `content_type` field).
pub(super) fn from_http_app(mut headers: HeaderMap) -> HeaderMap {
    let nominated = nominated_by_connection(&headers);
    headers.remove(CONTENT_LENGTH);
    headers.remove(CONTENT_TYPE);
    if nominated.is_empty() && !headers.keys().any(|name| is_hop_by_hop(name.as_str())) {
        return headers;
    }
    let mut out = HeaderMap::with_capacity(headers.len());
    let mut current: Option<HeaderName> = None;
    for (name, value) in headers {
        // `HeaderMap::into_iter` names only the first value of each header.
        if let Some(name) = name {
            current = Some(name);
        }
        let Some(name) = &current else { continue };
        if is_hop_by_hop(name.as_str()) || nominated.contains(name.as_str()) {
            continue;
        }
        out.append(name.clone(), value);
    }
    out
}

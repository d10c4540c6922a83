//! Headers on the invocation path: the map of string lists the internal protocol carries
//! (`map<string, ListStringValue>`) to and from [`HeaderMap`], and the filters upstream
//! applies when headers leave the sidecar (hop-by-hop headers, gRPC-reserved keys, the
//! `dapr-` prefix for HTTP headers that would clash in gRPC metadata).

use std::collections::{HashMap, HashSet};

use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use dapr_proto::internals::ListStringValue;

/// Names the target app in the HTTP header form of invocation and in gRPC proxying.
pub const APP_ID_HEADER: &str = "dapr-app-id";
/// App id of the calling app, stamped by the calling sidecar.
pub const CALLER_APP_ID_HEADER: &str = "dapr-caller-app-id";
/// Namespace of the calling app, stamped by the calling sidecar.
pub const CALLER_NAMESPACE_HEADER: &str = "dapr-caller-namespace";
/// App id of the called app, stamped by the calling sidecar.
pub const CALLEE_APP_ID_HEADER: &str = "dapr-callee-app-id";
/// App id the caller asked for, carried sidecar to sidecar and never given to an app.
pub const DESTINATION_APP_ID_HEADER: &str = "destination-app-id";
/// gRPC header carrying an HTTP app's status to a gRPC caller.
pub const HTTP_STATUS_HEADER: &str = "dapr-http-status";
/// The prefix upstream gives headers that would otherwise clash with reserved names.
const DAPR_PREFIX: &str = "dapr-";
/// Suffix of binary gRPC metadata keys, whose values travel base64-encoded.
const BINARY_SUFFIX: &str = "-bin";

/// Whether `name` is a hop-by-hop header, which a proxy must not forward (RFC 7230 6.1).
pub fn is_hop_by_hop(name: &str) -> bool {
    [
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "upgrade",
        "http2-settings",
        "te",
        "trailer",
        "proxy-authorization",
        "proxy-authenticate",
    ]
    .iter()
    .any(|hop| name.eq_ignore_ascii_case(hop))
}

/// Header names listed in `Connection`, which are hop-by-hop for this message only.
fn connection_nominated(headers: &HeaderMap) -> HashSet<String> {
    headers
        .get_all("connection")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|token| token.trim().to_ascii_lowercase())
        .filter(|token| !token.is_empty())
        .collect()
}

/// Removes hop-by-hop headers, including those `Connection` nominates.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let nominated = connection_nominated(headers);
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|name| is_hop_by_hop(name.as_str()) || nominated.contains(name.as_str()))
        .cloned()
        .collect();
    for name in doomed {
        headers.remove(name);
    }
}

/// Whether the headers describe a gRPC call (upstream tells the two apart by the
/// `content-type` the call arrived with).
pub fn is_grpc_origin(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/grpc"))
}

/// `content-type` → `Content-Type`: the spelling Go gives HTTP header names, which
/// upstream sidecars expect for headers that came from an HTTP caller.
pub fn canonical_name(name: &str) -> String {
    let mut upper = true;
    name.chars()
        .map(|c| {
            let mapped = if upper {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            };
            upper = c == '-';
            mapped
        })
        .collect()
}

/// Pads unpadded base64 (as gRPC may send binary metadata) to the padded form upstream
/// stores in internal metadata.
fn padded_base64(value: &str) -> String {
    let mut padded = value.trim_end_matches('=').to_string();
    while !padded.len().is_multiple_of(4) {
        padded.push('=');
    }
    padded
}

/// Headers as the internal protocol's metadata map. Names keep gRPC's lowercase for gRPC
/// calls and take Go's canonical spelling for HTTP calls, as upstream's maps have them.
pub fn to_internal(headers: &HeaderMap) -> HashMap<String, ListStringValue> {
    let grpc = is_grpc_origin(headers);
    let mut metadata: HashMap<String, ListStringValue> = HashMap::with_capacity(headers.keys_len());
    for name in headers.keys() {
        let key = if grpc {
            name.as_str().to_string()
        } else {
            canonical_name(name.as_str())
        };
        let binary = name.as_str().ends_with(BINARY_SUFFIX);
        let values = headers.get_all(name).iter().map(|value| {
            let text = String::from_utf8_lossy(value.as_bytes());
            if binary {
                padded_base64(&text)
            } else {
                text.into_owned()
            }
        });
        metadata.entry(key).or_default().values.extend(values);
    }
    metadata
}

/// The internal protocol's metadata map as headers. Pseudo-header keys (`:authority`)
/// become `dapr-` headers; names or values HTTP cannot carry are dropped.
pub fn from_internal(metadata: &HashMap<String, ListStringValue>) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(metadata.len());
    for (key, list) in metadata {
        let key = key.to_ascii_lowercase();
        let key = match key.strip_prefix(':') {
            Some(pseudo) => format!("{DAPR_PREFIX}{pseudo}"),
            None => key,
        };
        let Ok(name) = HeaderName::from_bytes(key.as_bytes()) else {
            tracing::debug!("dropping metadata key {key:?}: not a valid header name");
            continue;
        };
        for value in &list.values {
            match HeaderValue::from_str(value) {
                Ok(value) => {
                    headers.append(name.clone(), value);
                }
                Err(_) => tracing::debug!("dropping a value of {key:?}: not a valid header value"),
            }
        }
    }
    headers
}

/// Headers as they leave the sidecar over HTTP, to an HTTP caller or an external HTTP
/// service (upstream's conversion of internal metadata to HTTP headers): hop-by-hop
/// headers, binary metadata, `content-type`/`content-length` (set separately) and the
/// destination id are dropped, and gRPC-reserved names get the `dapr-` prefix.
pub fn to_http_headers(headers: &HeaderMap) -> HeaderMap {
    let nominated = connection_nominated(headers);
    let mut reply = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let key = name.as_str();
        if key == DESTINATION_APP_ID_HEADER
            || key.ends_with(BINARY_SUFFIX)
            || name == CONTENT_TYPE
            || name == CONTENT_LENGTH
            || is_hop_by_hop(key)
            || nominated.contains(key)
        {
            continue;
        }
        if key.starts_with("grpc-") {
            if let Ok(prefixed) = HeaderName::from_bytes(format!("{DAPR_PREFIX}{key}").as_bytes()) {
                reply.append(prefixed, value.clone());
            }
        } else {
            reply.append(name.clone(), value.clone());
        }
    }
    reply
}

/// HTTP header names upstream renames with the `dapr-` prefix when they become gRPC
/// metadata, as they mean something else (or are forbidden) in HTTP/2.
fn is_permanent_http_header(name: &str) -> bool {
    [
        "accept",
        "accept-charset",
        "accept-language",
        "accept-ranges",
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "upgrade",
        "cache-control",
        "content-type",
        "content-length",
        "cookie",
        "date",
        "expect",
        "from",
        "host",
        "if-match",
        "if-modified-since",
        "if-none-match",
        "if-schedule-tag-match",
        "if-unmodified-since",
        "max-forwards",
        "origin",
        "pragma",
        "referer",
        "via",
        "warning",
    ]
    .contains(&name)
}

/// Keys the gRPC transport owns; a server never sends them as metadata.
fn is_grpc_reserved(name: &str) -> bool {
    matches!(name, "content-type" | "user-agent" | "te")
        || (name.starts_with("grpc-") && name != "grpc-trace-bin")
}

/// Headers or trailers of an app's reply as gRPC metadata for a gRPC caller (upstream's
/// conversion of internal metadata to gRPC metadata). With `http_conversion` (the reply
/// came from an HTTP app), HTTP header names that clash with gRPC get the `dapr-` prefix.
pub fn to_grpc_reply(headers: &HeaderMap, http_conversion: bool) -> tonic::metadata::MetadataMap {
    let mut metadata = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let key = name.as_str();
        if key == DESTINATION_APP_ID_HEADER {
            continue;
        }
        if http_conversion && is_permanent_http_header(key) {
            if let Ok(prefixed) = HeaderName::from_bytes(format!("{DAPR_PREFIX}{key}").as_bytes()) {
                metadata.append(prefixed, value.clone());
            }
            continue;
        }
        if is_grpc_reserved(key) || is_hop_by_hop(key) {
            continue;
        }
        metadata.append(name.clone(), value.clone());
    }
    tonic::metadata::MetadataMap::from_headers(metadata)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn http_headers_take_gos_spelling_and_keep_every_value() {
        let md = to_internal(&headers(&[
            ("content-type", "text/plain"),
            ("x-multi", "a"),
            ("x-multi", "b"),
        ]));
        assert_eq!(md["Content-Type"].values, ["text/plain"]);
        assert_eq!(md["X-Multi"].values, ["a", "b"]);
        let back = from_internal(&md);
        assert_eq!(back.get_all("x-multi").iter().count(), 2);
        assert_eq!(back["content-type"], "text/plain");
    }

    #[test]
    fn grpc_metadata_stays_lowercase_and_binary_values_get_padded() {
        let md = to_internal(&headers(&[
            ("content-type", "application/grpc"),
            ("trace-bin", "AAE"),
        ]));
        assert_eq!(md["content-type"].values, ["application/grpc"]);
        assert_eq!(md["trace-bin"].values, ["AAE="]);
    }

    #[test]
    fn pseudo_headers_and_bad_names_do_not_break_conversion() {
        let mut md = HashMap::new();
        md.insert(
            ":authority".to_string(),
            ListStringValue {
                values: vec!["x:1".into()],
            },
        );
        md.insert(
            "bad name".to_string(),
            ListStringValue {
                values: vec!["v".into()],
            },
        );
        let headers = from_internal(&md);
        assert_eq!(headers["dapr-authority"], "x:1");
        assert_eq!(headers.len(), 1);
    }

    #[test]
    fn http_reply_drops_hop_by_hop_and_prefixes_grpc_names() {
        let reply = to_http_headers(&headers(&[
            ("connection", "x-private"),
            ("x-private", "1"),
            ("transfer-encoding", "chunked"),
            ("content-length", "3"),
            ("grpc-status", "0"),
            ("destination-app-id", "b"),
            ("x-kept", "yes"),
        ]));
        assert_eq!(reply.len(), 2);
        assert_eq!(reply["x-kept"], "yes");
        assert_eq!(reply["dapr-grpc-status"], "0");
    }

    #[test]
    fn grpc_reply_prefixes_http_names_and_drops_reserved_ones() {
        let source = headers(&[
            ("content-type", "text/plain"),
            ("x-app", "1"),
            ("te", "trailers"),
        ]);
        let converted = to_grpc_reply(&source, true);
        assert_eq!(converted.get("dapr-content-type").unwrap(), "text/plain");
        assert_eq!(converted.get("x-app").unwrap(), "1");
        assert!(converted.get("te").is_none());
        let plain = to_grpc_reply(&source, false);
        assert!(plain.get("content-type").is_none());
        assert!(plain.get("dapr-content-type").is_none());
    }
}

//! gRPC's size-limit errors in grpc-go's words. tonic refuses a message over
//! `--max-body-size` with `OutOfRange` ("Error, decoded message length too large: ...");
//! upstream's Go server answers `ResourceExhausted` ("grpc: received message larger than
//! max (N vs. M)"), which clients and SDKs check for. This layer rewrites the status of
//! such refusals, sent before any reply message (in the response headers).

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use percent_encoding::percent_decode_str;

/// tonic's message prefix for an incoming message over the limit.
const TONIC_DECODE_LIMIT: &str = "Error, decoded message length too large: found ";

/// Rewrites a size refusal in `response`'s headers to grpc-go's status and message.
pub async fn grpc_go_size_status(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let out_of_range = headers
        .get("grpc-status")
        .is_some_and(|status| status == HeaderValue::from(tonic::Code::OutOfRange as i32));
    if !out_of_range {
        return response;
    }
    let Some(message) = headers
        .get("grpc-message")
        .and_then(|value| value.to_str().ok())
        .map(|value| percent_decode_str(value).decode_utf8_lossy().into_owned())
    else {
        return response;
    };
    if let Some((found, limit)) = sizes(&message) {
        let text = format!("grpc: received message larger than max ({found} vs. {limit})");
        headers.insert(
            "grpc-status",
            HeaderValue::from(tonic::Code::ResourceExhausted as i32),
        );
        // The text is plain ASCII: digits and punctuation only.
        if let Ok(value) = HeaderValue::from_str(&text) {
            headers.insert("grpc-message", value);
        }
    }
    response
}

/// The found and limit sizes of tonic's decode-limit message.
fn sizes(message: &str) -> Option<(u64, u64)> {
    let rest = message.strip_prefix(TONIC_DECODE_LIMIT)?;
    let (found, rest) = rest.split_once(" bytes, the limit is: ")?;
    let limit = rest.strip_suffix(" bytes")?;
    Some((found.parse().ok()?, limit.parse().ok()?))
}

#[cfg(test)]
mod tests {
    #[test]
    fn tonic_decode_limit_messages_give_their_sizes() {
        assert_eq!(
            super::sizes(
                "Error, decoded message length too large: found 2097160 bytes, the limit is: 1048576 bytes"
            ),
            Some((2_097_160, 1_048_576))
        );
        assert_eq!(super::sizes("something else"), None);
    }
}

//! `middleware.http.ratelimit`: at most `maxRequestsPerSecond` (default 100) requests per
//! second per client address and path, as upstream's limiter counts them (a token bucket
//! holding one second's worth, refilled continuously); requests over the limit are
//! answered `429` with upstream's message. The client address is the peer's, else the
//! first `X-Forwarded-For` entry, else `X-Real-IP`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Instant;

use super::{HttpMiddleware, MiddlewareError, Request, Response, text_response};
use crate::metadata::Properties;

/// Requests per second when the metadata sets none.
const DEFAULT_MAX_REQUESTS_PER_SECOND: f64 = 100.0;
/// Buckets kept before idle ones are dropped.
const MAX_BUCKETS: usize = 10_000;
/// Upstream's answer to a limited request.
const LIMITED_MESSAGE: &str = "You have reached maximum request limit.";

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// The rate limiter.
#[derive(Debug)]
pub struct RateLimit {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<(String, String), Bucket>>,
}

/// Reads `maxRequestsPerSecond`.
pub fn open(properties: &Properties) -> Result<RateLimit, MiddlewareError> {
    let per_second = match properties.text("maxRequestsPerSecond", &[]) {
        None | Some("") => DEFAULT_MAX_REQUESTS_PER_SECOND,
        Some(text) => text.trim().parse::<f64>().map_err(|_| {
            MiddlewareError::InvalidMetadata(format!(
                "metadata property maxRequestsPerSecond must be a number, not {text:?}"
            ))
        })?,
    };
    if !(per_second.is_finite() && per_second > 0.0) {
        return Err(MiddlewareError::InvalidMetadata(
            "metadata property maxRequestsPerSecond must be a positive value".to_owned(),
        ));
    }
    Ok(RateLimit {
        per_second,
        burst: per_second.max(1.0).floor(),
        buckets: Mutex::new(HashMap::new()),
    })
}

/// The client's address: the connection's peer, else the forwarding headers.
fn client_address(request: &Request) -> String {
    if let Some(peer) = request.extensions().get::<SocketAddr>() {
        return peer.ip().to_string();
    }
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(|value| {
                value
                    .split(',')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_owned()
            })
            .filter(|value| !value.is_empty())
    };
    header("x-forwarded-for")
        .or_else(|| header("x-real-ip"))
        .unwrap_or_else(|| "0.0.0.0".to_owned())
}

impl RateLimit {
    /// Takes a token from the bucket of `key`; false when it is empty.
    fn take(&self, key: (String, String), now: Instant) -> bool {
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(&key) {
            let full = self.burst;
            let per_second = self.per_second;
            buckets.retain(|_, bucket| {
                bucket.tokens + now.duration_since(bucket.updated).as_secs_f64() * per_second < full
            });
        }
        let bucket = buckets.entry(key).or_insert(Bucket {
            tokens: self.burst,
            updated: now,
        });
        let refill = now.duration_since(bucket.updated).as_secs_f64() * self.per_second;
        bucket.tokens = (bucket.tokens + refill).min(self.burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[async_trait::async_trait]
impl HttpMiddleware for RateLimit {
    async fn on_request(&self, request: Request) -> Result<Request, Response> {
        let key = (client_address(&request), request.uri().path().to_owned());
        if self.take(key, Instant::now()) {
            Ok(request)
        } else {
            Err(text_response(
                http::StatusCode::TOO_MANY_REQUESTS,
                LIMITED_MESSAGE,
            ))
        }
    }
}

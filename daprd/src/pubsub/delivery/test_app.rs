//! Test fixtures the delivery, bulk and streaming tests share: the resources they load,
//! a recording HTTP app behind a real app channel, and app channels to test apps.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use bytes::Bytes;
use serde_json::Value;

use crate::channel::{AppChannel, ChannelOptions};
use crate::config::{AppConnection, AppProtocol};
use crate::test_support;

/// Resources: two in-memory brokers (`scoped` lets the app subscribe only to `open`) and
/// an inbound retry policy for `bus` of three quick retries.
pub const RESOURCES: &str = r#"
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: bus}
spec:
  type: pubsub.in-memory
  version: v1
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: scoped}
spec:
  type: pubsub.in-memory
  version: v1
  metadata:
  - {name: subscriptionScopes, value: "myapp=open"}
---
apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata: {name: quick}
spec:
  policies:
    retries:
      three: {policy: constant, duration: 10ms, maxRetries: 3}
  targets:
    components:
      bus: {inbound: {retry: three}}
"#;

/// What the HTTP app saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The request path.
    pub path: String,
    /// The request headers.
    pub headers: HeaderMap,
    /// The body as JSON (`null` when it is not JSON).
    pub body: Value,
}

/// How the HTTP app answers a POST to a path with a body.
pub type Answer = Arc<dyn Fn(&str, &Value) -> (StatusCode, String) + Send + Sync>;

/// An HTTP app answering every POST with what `answer` says, behind an app channel;
/// returns the channel and what the app saw.
pub async fn http_app(answer: Answer) -> (AppChannel, Arc<Mutex<Vec<Seen>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let recorder = seen.clone();
    let app = Router::new().route(
        "/{*path}",
        post(
            move |uri: axum::http::Uri, headers: HeaderMap, body: Bytes| {
                let recorder = recorder.clone();
                let answer = answer.clone();
                async move {
                    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let path = uri.path().to_owned();
                    let (status, reply) = answer(&path, &body);
                    recorder.lock().unwrap().push(Seen {
                        path,
                        headers,
                        body,
                    });
                    (status, reply)
                }
            },
        ),
    );
    let address = test_support::serve(app).await;
    (channel(address.port(), AppProtocol::Http), seen)
}

/// An app channel to the test app on `port` speaking `protocol`.
pub fn channel(port: u16, protocol: AppProtocol) -> AppChannel {
    AppChannel::new(
        AppConnection {
            address: "127.0.0.1".into(),
            port,
            protocol,
        },
        4 << 20,
        ChannelOptions::default(),
    )
    .unwrap()
}

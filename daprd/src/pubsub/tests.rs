//! The publish API through both edges, against real `pubsub.in-memory` brokers started by
//! the component loader behind the sidecar's own HTTP router and gRPC service: what the
//! broker receives (captured by subscribing on the broker itself) for JSON, text, binary
//! and CloudEvent payloads, `cloudevent.*` overrides, raw payloads, TTLs and traces;
//! topic scopes; every error body and status; bulk publishes; metrics.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;
use dapr_components::pubsub::{
    Message, MessageHandler, NotAcknowledged, SubscribeRequest, Subscription,
};
use dapr_kit::metrics::MetricsRegistry;
use dapr_proto::google::rpc;
use dapr_proto::runtime::dapr_client::DaprClient;
use dapr_proto::runtime::{BulkPublishRequest, BulkPublishRequestEntry, PublishEventRequest};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use prost::Message as _;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tonic::transport::Channel;

use super::scopes::TopicScopes;
use crate::observability::metrics::{MetricsSettings, SidecarMetrics};
use crate::runtime::Runtime;
use crate::secrets::SecretScopes;
use crate::test_support::{self, PublicApis};

const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

/// A Component resource in YAML.
fn component(name: &str, metadata: &[(&str, &str)]) -> String {
    let metadata: String = metadata
        .iter()
        .map(|(name, value)| format!("  - name: {name}\n    value: '{value}'\n"))
        .collect();
    format!(
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: {name}\nspec:\n  type: pubsub.in-memory\n  version: v1\n  metadata:\n{metadata}"
    )
}

/// The brokers: plain, and with each kind of topic rule.
fn brokers() -> String {
    [
        component("mypubsub", &[("unused", "x")]),
        component("allowed", &[("allowedTopics", "a, b")]),
        component(
            "protected",
            &[("protectedTopics", "p"), ("publishingScopes", "other=p")],
        ),
        component(
            "granted",
            &[
                ("PROTECTEDTOPICS", "p"),
                ("publishingScopes", "myapp=p;other=q"),
            ],
        ),
        component("spaced", &[("consumerID", "{namespace}")]),
    ]
    .join("---\n")
}

struct Sidecar {
    runtime: Arc<Runtime>,
    http: SocketAddr,
    grpc: DaprClient<Channel>,
    registry: MetricsRegistry,
}

async fn start() -> Sidecar {
    let registry = MetricsRegistry::new();
    let metrics =
        SidecarMetrics::register(&registry, &MetricsSettings::new("myapp", "default")).unwrap();
    let set = test_support::load_yaml(&brokers(), &metrics).await;
    let mut config = test_support::default_config();
    config.namespace = "default".to_owned();
    let PublicApis {
        runtime,
        http,
        grpc,
    } = test_support::serve_public_apis(config, set, SecretScopes::default(), metrics).await;
    Sidecar {
        runtime,
        http,
        grpc,
        registry,
    }
}

/// Hands every delivered message to a channel.
struct Capture(mpsc::UnboundedSender<Message>);

#[async_trait::async_trait]
impl MessageHandler for Capture {
    async fn handle(&self, message: Message) -> Result<(), NotAcknowledged> {
        let _ = self.0.send(message);
        Ok(())
    }
}

/// Messages published to one topic of one broker, read from the broker itself.
struct Captured {
    _subscription: Subscription,
    messages: mpsc::UnboundedReceiver<Message>,
}

impl Captured {
    async fn next(&mut self) -> Message {
        tokio::time::timeout(Duration::from_secs(5), self.messages.recv())
            .await
            .expect("a message was published")
            .unwrap()
    }

    /// The next message's CloudEvent, with its raw bytes.
    async fn event(&mut self) -> (Value, String) {
        let message = self.next().await;
        let text = String::from_utf8(message.data.to_vec()).unwrap();
        (serde_json::from_str(&text).unwrap(), text)
    }

    fn is_empty(&mut self) -> bool {
        self.messages.try_recv().is_err()
    }
}

/// An HTTP reply.
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|error| panic!("{error}: {:?}", self.body))
    }

    fn no_content(&self) {
        assert_eq!(self.status, StatusCode::NO_CONTENT, "{:?}", self.body);
        assert!(self.body.is_empty());
    }

    /// Asserts an upstream error body and returns it.
    fn error(&self, status: StatusCode, code: &str, message: &str) -> Value {
        assert_eq!(self.status, status, "{:?}", self.body);
        assert_eq!(self.headers[http::header::CONTENT_TYPE], "application/json");
        let body = self.json();
        assert_eq!(body["errorCode"], code, "{body}");
        assert_eq!(body["message"], message, "{body}");
        body
    }
}

impl Sidecar {
    async fn capture(&self, pubsub: &str, topic: &str) -> Captured {
        let components = self.runtime.components.snapshot();
        let (sender, messages) = mpsc::unbounded_channel();
        let subscription = components
            .pubsub(pubsub)
            .unwrap()
            .broker
            .subscribe(
                SubscribeRequest {
                    topic: topic.to_owned(),
                    metadata: HashMap::new(),
                },
                Arc::new(Capture(sender)),
            )
            .await
            .unwrap();
        Captured {
            _subscription: subscription,
            messages,
        }
    }

    async fn call(&self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let mut request = http::Request::builder()
            .method("POST")
            .uri(format!("http://{}{path}", self.http));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Full::new(Bytes::copy_from_slice(body)))
            .unwrap();
        let response = client.request(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            headers,
            body,
        }
    }

    async fn publish(&self, path: &str, content_type: Option<&str>, body: &str) -> Reply {
        let headers: Vec<(&str, &str)> = content_type
            .map(|value| vec![("content-type", value)])
            .unwrap_or_default();
        self.call(path, &headers, body.as_bytes()).await
    }

    async fn grpc_publish(&self, request: PublishEventRequest) -> Result<(), tonic::Status> {
        self.grpc.clone().publish_event(request).await.map(drop)
    }
}

fn grpc_request(pubsub: &str, topic: &str, content_type: &str, data: &[u8]) -> PublishEventRequest {
    PublishEventRequest {
        pubsub_name: pubsub.to_owned(),
        topic: topic.to_owned(),
        data: data.to_vec(),
        data_content_type: content_type.to_owned(),
        metadata: HashMap::new(),
    }
}

/// Asserts `event` is a fresh envelope (uuid id, current time) and returns the JSON Go
/// would write for it with `fields` (sorted, compact) plus its `id` and `time`.
fn with_identity(event: &Value, fields: &str) -> String {
    let id = event["id"].as_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    let time = event["time"].as_str().unwrap();
    let format = dapr_components::state::format_expire_time;
    let now = SystemTime::now();
    let (earliest, latest) = (format(now - Duration::from_secs(5)), format(now));
    assert!(
        earliest.as_str() <= time && time <= latest.as_str(),
        "{time}"
    );
    fields.replace("{id}", id).replace("{time}", time)
}

#[tokio::test]
async fn payloads_are_wrapped_in_cloudevents_as_upstream_writes_them() {
    let sidecar = start().await;
    let mut orders = sidecar.capture("mypubsub", "orders/eu").await;

    // JSON: data decoded with its numbers as written, keys sorted, Go's escapes.
    sidecar
        .publish(
            "/v1.0/publish/mypubsub/orders/eu",
            Some("application/json"),
            r#"{"b": 1.50, "a": "<x>", "n": 12345678901234567890}"#,
        )
        .await
        .no_content();
    let (event, text) = orders.event().await;
    assert_eq!(
        text,
        with_identity(
            &event,
            r#"{"data":{"a":"\u003cx\u003e","b":1.50,"n":12345678901234567890},"datacontenttype":"application/json","expiration":"EXP","id":"{id}","pubsubname":"mypubsub","source":"myapp","specversion":"1.0","time":"{time}","topic":"orders/eu","traceid":"","traceparent":"","tracestate":"","type":"com.dapr.event.sent"}"#
        )
        .replace(r#""expiration":"EXP","#, "")
    );

    // No content type: text.
    sidecar
        .publish("/v1.0/publish/mypubsub/orders/eu", None, "hello <world>")
        .await
        .no_content();
    let (event, text) = orders.event().await;
    assert_eq!(
        text,
        with_identity(
            &event,
            r#"{"data":"hello \u003cworld\u003e","datacontenttype":"text/plain","id":"{id}","pubsubname":"mypubsub","source":"myapp","specversion":"1.0","time":"{time}","topic":"orders/eu","traceid":"","traceparent":"","tracestate":"","type":"com.dapr.event.sent"}"#
        )
    );

    // JSON content that is not JSON is given as text.
    sidecar
        .publish(
            "/v1.0/publish/mypubsub/orders/eu",
            Some("application/json; charset=utf-8"),
            "{oops",
        )
        .await
        .no_content();
    let (event, _) = orders.event().await;
    assert_eq!(event["data"], "{oops");
    assert_eq!(event["datacontenttype"], "application/json; charset=utf-8");

    // Binary over gRPC: base64 in data_base64.
    sidecar
        .grpc_publish(grpc_request(
            "mypubsub",
            "orders/eu",
            "application/octet-stream",
            &[0, 255, 1],
        ))
        .await
        .unwrap();
    let (event, text) = orders.event().await;
    assert_eq!(
        text,
        with_identity(
            &event,
            r#"{"data_base64":"AP8B","datacontenttype":"application/octet-stream","id":"{id}","pubsubname":"mypubsub","source":"myapp","specversion":"1.0","time":"{time}","topic":"orders/eu","traceid":"","traceparent":"","tracestate":"","type":"com.dapr.event.sent"}"#
        )
    );
    sidecar
        .grpc_publish(grpc_request(
            "mypubsub",
            "orders/eu",
            "application/cloudevents+protobuf",
            b"pb",
        ))
        .await
        .unwrap();
    assert_eq!(orders.event().await.0["data_base64"], "cGI=");

    // JSON over gRPC; the broker gets no content type for single publishes.
    sidecar
        .grpc_publish(grpc_request(
            "mypubsub",
            "orders/eu",
            "application/json",
            b"[1, 2.0]",
        ))
        .await
        .unwrap();
    let message = orders.next().await;
    assert_eq!(message.content_type, None);
    assert!(String::from_utf8_lossy(&message.data).starts_with(r#"{"data":[1,2.0],"#));
    assert!(orders.is_empty());
}

#[tokio::test]
async fn cloudevent_payloads_are_completed_not_replaced() {
    let sidecar = start().await;
    let mut topic = sidecar.capture("mypubsub", "t").await;
    let given = r#"{"id": "abc", "source": "billing", "specversion": null, "data": {"n": 1.0}, "custom": "v", "topic": "elsewhere"}"#;
    sidecar
        .publish(
            "/v1.0/publish/mypubsub/t?metadata.cloudevent.id=ignored",
            Some("application/cloudevents+json"),
            given,
        )
        .await
        .no_content();
    let (event, text) = topic.event().await;
    let time = event["time"].as_str().unwrap();
    assert_eq!(
        text,
        format!(
            r#"{{"custom":"v","data":{{"n":1.0}},"id":"abc","pubsubname":"mypubsub","source":"billing","specversion":"1.0","time":"{time}","topic":"t","traceid":"","traceparent":"","tracestate":"","type":"com.dapr.event.sent"}}"#
        )
    );

    // A given time and trace are kept; over gRPC the same rules apply.
    let given = br#"{"time": "2020-01-01T00:00:00Z", "traceid": "mine", "type": "custom.type"}"#;
    sidecar
        .grpc_publish(grpc_request(
            "mypubsub",
            "t",
            "application/cloudevents+json",
            given,
        ))
        .await
        .unwrap();
    let (event, _) = topic.event().await;
    assert_eq!(event["time"], "2020-01-01T00:00:00Z");
    assert_eq!(event["traceid"], "mine");
    assert!(event.get("traceparent").is_none(), "{event}");
    assert_eq!(event["type"], "custom.type");
    assert_eq!(event["specversion"], "1.0");
}

#[tokio::test]
async fn cloudevent_metadata_overrides_the_envelope() {
    let sidecar = start().await;
    let mut topic = sidecar.capture("mypubsub", "t").await;
    let query = "metadata.cloudevent.ID=my-id&metadata.cloudevent.source=src&metadata.cloudevent.type=my.type&metadata.cloudevent.subject=subj&metadata.cloudevent.traceid=tid&metadata.cloudevent.traceparent=tp&metadata.cloudevent.tracestate=ts&metadata.other=kept";
    sidecar
        .publish(
            &format!("/v1.0/publish/mypubsub/t?{query}"),
            Some("text/plain"),
            "x",
        )
        .await
        .no_content();
    let message = topic.next().await;
    let event: Value = serde_json::from_slice(&message.data).unwrap();
    for (field, value) in [
        ("id", "my-id"),
        ("source", "src"),
        ("type", "my.type"),
        ("subject", "subj"),
        ("traceid", "tp"),
        ("traceparent", "tp"),
        ("tracestate", "ts"),
    ] {
        assert_eq!(event[field], value, "{field}: {event}");
    }
    assert_eq!(message.metadata["other"], "kept");

    // Without a traceparent override, traceid sets both; empty overrides fall back.
    let request = PublishEventRequest {
        metadata: HashMap::from([
            ("cloudevent.traceid".to_owned(), "tid".to_owned()),
            ("cloudevent.id".to_owned(), String::new()),
            ("cloudevent.source".to_owned(), String::new()),
        ]),
        ..grpc_request("mypubsub", "t", "", b"x")
    };
    sidecar.grpc_publish(request).await.unwrap();
    let (event, _) = topic.event().await;
    assert_eq!(
        (event["traceid"].as_str(), event["traceparent"].as_str()),
        (Some("tid"), Some("tid"))
    );
    assert!(uuid::Uuid::parse_str(event["id"].as_str().unwrap()).is_ok());
    assert_eq!(event["source"], "Dapr");
    assert!(event.get("subject").is_none());
}

#[tokio::test]
async fn raw_payloads_ttls_and_traces() {
    let sidecar = start().await;
    let mut topic = sidecar.capture("mypubsub", "t").await;

    // rawPayload: the body as it is, the metadata passed on.
    sidecar
        .publish(
            "/v1.0/publish/mypubsub/t?metadata.rawPayload=true",
            Some("application/json"),
            r#"{"raw": 1.0}"#,
        )
        .await
        .no_content();
    let message = topic.next().await;
    assert_eq!(&message.data[..], br#"{"raw": 1.0}"#);
    assert_eq!(
        message.metadata,
        HashMap::from([("rawPayload".to_owned(), "true".to_owned())])
    );

    // Over gRPC the call's trace is added to the metadata.
    let request = PublishEventRequest {
        metadata: HashMap::from([("rawPayload".to_owned(), "T".to_owned())]),
        ..grpc_request("mypubsub", "t", "", b"\xff raw")
    };
    let mut call = tonic::Request::new(request);
    call.metadata_mut()
        .insert("traceparent", TRACEPARENT.parse().unwrap());
    call.metadata_mut()
        .insert("tracestate", "congo=t61rcWkgMzE".parse().unwrap());
    sidecar.grpc.clone().publish_event(call).await.unwrap();
    let message = topic.next().await;
    assert_eq!(&message.data[..], b"\xff raw");
    assert_eq!(message.metadata["traceid"], TRACEPARENT);
    assert_eq!(message.metadata["tracestate"], "congo=t61rcWkgMzE");

    // A TTL the broker cannot honour becomes the envelope's expiration.
    let before = SystemTime::now();
    sidecar
        .publish(
            "/v1.0/publish/mypubsub/t?metadata.ttlInSeconds=100",
            None,
            "x",
        )
        .await
        .no_content();
    let message = topic.next().await;
    let event: Value = serde_json::from_slice(&message.data).unwrap();
    let expiration = event["expiration"].as_str().unwrap().to_owned();
    let format = dapr_components::state::format_expire_time;
    assert!(format(before + Duration::from_secs(99)) <= expiration);
    assert!(
        expiration <= format(SystemTime::now() + Duration::from_secs(101)),
        "{expiration}"
    );
    assert_eq!(message.metadata["ttlInSeconds"], "100");
    for (ttl, expected) in [
        ("1m", Some(60)),
        ("0", Some(0)),
        ("-5s", Some(0)),
        ("soon", None),
        ("-3", None),
    ] {
        sidecar
            .publish(
                &format!("/v1.0/publish/mypubsub/t?metadata.TTL={ttl}"),
                None,
                "x",
            )
            .await
            .no_content();
        let (event, _) = topic.event().await;
        match expected {
            None => assert!(event.get("expiration").is_none(), "{ttl}: {event}"),
            Some(seconds) => {
                let expiration = event["expiration"].as_str().unwrap();
                let low = format(
                    SystemTime::now() + Duration::from_secs(seconds) - Duration::from_secs(2),
                );
                assert!(low.as_str() <= expiration, "{ttl}: {expiration}");
            }
        }
    }

    // The caller's trace is the envelope's.
    let reply = sidecar
        .call(
            "/v1.0/publish/mypubsub/t",
            &[
                ("traceparent", TRACEPARENT),
                ("tracestate", "congo=t61rcWkgMzE"),
            ],
            b"x",
        )
        .await;
    reply.no_content();
    let (event, _) = topic.event().await;
    assert_eq!(event["traceid"], TRACEPARENT);
    assert_eq!(event["traceparent"], TRACEPARENT);
    assert_eq!(event["tracestate"], "congo=t61rcWkgMzE");
    assert!(topic.is_empty());
}

#[test]
fn topic_scopes_follow_upstreams_rules() {
    let settings = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect()
    };
    type Settings<'a> = &'a [(&'a str, &'a str)];
    type Expected<'a> = &'a [(&'a str, bool)];
    let cases: &[(Settings, Expected)] = &[
        (&[], &[("any", true)]),
        (
            &[("allowedTopics", "a, b,a")],
            &[("a", true), ("b", true), ("c", false)],
        ),
        (&[("protectedTopics", "p")], &[("p", false), ("q", true)]),
        (
            &[("protectedTopics", "p"), ("publishingScopes", "myapp=p")],
            &[("p", true), ("q", false)],
        ),
        (
            &[("publishingScopes", "other=x;myapp=")],
            &[("x", false), ("", true)],
        ),
        (
            &[("publishingScopes", "myapp=a,b; other=c")],
            &[("a", true), ("b", true), ("c", false)],
        ),
        (
            &[("allowedTopics", "a"), ("publishingScopes", "myapp=a,b")],
            &[("a", true), ("b", false)],
        ),
        (&[("subscriptionScopes", "myapp=s")], &[("x", true)]),
    ];
    for (pairs, topics) in cases {
        let scopes = TopicScopes::from_settings(&settings(pairs), "myapp");
        for (topic, allowed) in *topics {
            assert_eq!(scopes.may_publish(topic), *allowed, "{pairs:?} {topic}");
        }
    }
    let scopes =
        TopicScopes::from_settings(&settings(&[("SubscriptionScopes", "myapp=s,t")]), "myapp");
    assert_eq!(scopes.subscription_scopes, ["s", "t"]);
}

#[tokio::test]
async fn scopes_refuse_topics_over_both_edges() {
    let sidecar = start().await;
    let mut allowed = sidecar.capture("allowed", "a").await;
    let mut granted = sidecar.capture("granted", "p").await;
    let cases = [
        ("allowed", "a", true),
        ("allowed", "c", false),
        ("protected", "p", false),
        ("protected", "q", true),
        ("granted", "p", true),
        ("granted", "q", false),
    ];
    for (pubsub, topic, ok) in cases {
        let reply = sidecar
            .publish(&format!("/v1.0/publish/{pubsub}/{topic}"), None, "x")
            .await;
        let status = sidecar
            .grpc_publish(grpc_request(pubsub, topic, "", b"x"))
            .await;
        if ok {
            reply.no_content();
            status.unwrap();
            continue;
        }
        let message = format!("topic {topic} is not allowed for app id myapp");
        let body = reply.error(StatusCode::FORBIDDEN, "ERR_PUBSUB_FORBIDDEN", &message);
        assert_eq!(
            body["details"],
            json!([
                {"@type": "type.googleapis.com/google.rpc.ResourceInfo", "resource_type": "pubsub", "resource_name": pubsub, "owner": "", "description": message},
                {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "DAPR_PUBSUB_FORBIDDEN", "domain": "dapr.io", "metadata": {"topic": topic, "error": message}},
            ])
        );
        let status = status.unwrap_err();
        assert_eq!(status.code(), tonic::Code::PermissionDenied);
        assert_eq!(status.message(), message);
    }
    for _ in 0..2 {
        allowed.next().await;
        granted.next().await;
    }
    assert!(allowed.is_empty() && granted.is_empty());

    // A `{namespace}` in the metadata puts the namespace before the broker's topics.
    let mut spaced = sidecar.capture("spaced", "defaultt").await;
    sidecar
        .publish("/v1.0/publish/spaced/t", None, "x")
        .await
        .no_content();
    let (event, _) = spaced.event().await;
    assert_eq!(event["topic"], "t");
}

/// The `ErrorInfo` (and `ResourceInfo`) of a gRPC status.
fn status_details(status: &tonic::Status) -> Vec<String> {
    let decoded = rpc::Status::decode(status.details()).unwrap();
    decoded
        .details
        .iter()
        .map(|detail| match detail.type_url.as_str() {
            "type.googleapis.com/google.rpc.ErrorInfo" => {
                let info = rpc::ErrorInfo::decode(detail.value.as_slice()).unwrap();
                let mut metadata: Vec<_> = info.metadata.into_iter().collect();
                metadata.sort();
                format!("info {} {metadata:?}", info.reason)
            }
            "type.googleapis.com/google.rpc.ResourceInfo" => {
                let resource = rpc::ResourceInfo::decode(detail.value.as_slice()).unwrap();
                format!(
                    "resource {} {}",
                    resource.resource_type, resource.resource_name
                )
            }
            other => other.to_owned(),
        })
        .collect()
}

#[tokio::test]
async fn errors_match_upstream_over_http() {
    let sidecar = start().await;
    let body = sidecar
        .publish("/v1.0/publish/nope/t?metadata.k=v", None, "x")
        .await
        .error(
            StatusCode::NOT_FOUND,
            "ERR_PUBSUB_NOT_FOUND",
            "pubsub nope is not found",
        );
    assert_eq!(
        body["details"],
        json!([{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "DAPR_PUBSUB_NOT_FOUND", "domain": "dapr.io", "metadata": {"k": "v"}}])
    );
    let body = sidecar
        .publish("/v1.0/publish/mypubsub/", None, "x")
        .await
        .error(
            StatusCode::NOT_FOUND,
            "ERR_TOPIC_NAME_EMPTY",
            "topic is empty in pubsub mypubsub",
        );
    assert_eq!(body["details"][1]["reason"], "DAPR_PUBSUB_TOPIC_NAME_EMPTY");
    assert_eq!(body["details"][0]["resource_name"], "mypubsub");
    sidecar
        .publish("/v1.0/publish/mypubsub", None, "x")
        .await
        .error(
            StatusCode::NOT_FOUND,
            "ERR_TOPIC_NAME_EMPTY",
            "topic is empty in pubsub mypubsub",
        );
    sidecar.publish("/v1.0/publish//t", None, "x").await.error(
        StatusCode::NOT_FOUND,
        "ERR_PUBSUB_EMPTY",
        "pubsub name is empty",
    );
    let body = sidecar
        .publish("/v1.0/publish/mypubsub/t?metadata.rawPayload=invalidBooleanValue", None, "")
        .await
        .error(
            StatusCode::BAD_REQUEST,
            "ERR_PUBSUB_REQUEST_METADATA",
            "failed deserializing metadata. Error: rawPayload value must be a valid boolean: actual is 'invalidBooleanValue'",
        );
    assert_eq!(
        body["details"][1]["reason"],
        "DAPR_PUBSUB_METADATA_DESERIALIZATION"
    );
    assert_eq!(
        body["details"][1]["metadata"],
        json!({"rawPayload": "invalidBooleanValue"})
    );
    let body = sidecar
        .publish(
            "/v1.0/publish/mypubsub/t?metadata.rawPayload=false",
            Some("application/cloudevents+json"),
            r#"{"}"#,
        )
        .await
        .error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ERR_PUBSUB_CLOUD_EVENTS_SER",
            "cannot create cloudevent",
        );
    assert_eq!(
        body["details"][1],
        json!({"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "DAPR_PUBSUB_CLOUD_EVENT_CREATION", "domain": "dapr.io", "metadata": {"appID": "myapp", "error": "unexpected EOF"}})
    );
    sidecar
        .publish(
            "/v1.0/publish/mypubsub/t",
            Some("application/cloudevents+json"),
            "[1]",
        )
        .await
        .error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ERR_PUBSUB_CLOUD_EVENTS_SER",
            "cannot create cloudevent",
        );

    // A broker failure.
    sidecar
        .runtime
        .components
        .snapshot()
        .pubsub("mypubsub")
        .unwrap()
        .broker
        .close()
        .await
        .unwrap();
    let body = sidecar
        .publish("/v1.0/publish/mypubsub/t", None, "x")
        .await
        .error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ERR_PUBSUB_PUBLISH_MESSAGE",
            "error when publishing to topic t in pubsub mypubsub: pubsub shutdown",
        );
    assert_eq!(
        body["details"][1]["metadata"],
        json!({"topic": "t", "error": "pubsub shutdown"})
    );
}

#[tokio::test]
async fn errors_match_upstream_over_grpc() {
    let sidecar = start().await;
    let with_metadata = |mut request: PublishEventRequest, key: &str, value: &str| {
        request.metadata.insert(key.to_owned(), value.to_owned());
        request
    };
    let cases = [
        (
            with_metadata(grpc_request("nope", "t", "", b"x"), "k", "v"),
            tonic::Code::InvalidArgument,
            "pubsub nope is not found",
            vec!["info DAPR_PUBSUB_NOT_FOUND []".to_owned()],
        ),
        (
            grpc_request("", "t", "", b"x"),
            tonic::Code::InvalidArgument,
            "pubsub name is empty",
            vec!["resource pubsub ".to_owned(), "info DAPR_PUBSUB_NAME_EMPTY []".to_owned()],
        ),
        (
            grpc_request("mypubsub", "", "", b"x"),
            tonic::Code::InvalidArgument,
            "topic is empty in pubsub mypubsub",
            vec!["resource pubsub mypubsub".to_owned(), "info DAPR_PUBSUB_TOPIC_NAME_EMPTY []".to_owned()],
        ),
        (
            with_metadata(grpc_request("mypubsub", "t", "", b"x"), "rawPayload", "yes"),
            tonic::Code::InvalidArgument,
            "failed deserializing metadata. Error: rawPayload value must be a valid boolean: actual is 'yes'",
            vec![
                "resource pubsub mypubsub".to_owned(),
                "info DAPR_PUBSUB_METADATA_DESERIALIZATION [(\"rawPayload\", \"yes\")]".to_owned(),
            ],
        ),
        (
            grpc_request("mypubsub", "t", "application/cloudevents+json", b"nope"),
            tonic::Code::InvalidArgument,
            "cannot create cloudevent",
            vec![
                "resource pubsub mypubsub".to_owned(),
                "info DAPR_PUBSUB_CLOUD_EVENT_CREATION [(\"appID\", \"myapp\"), (\"error\", \"invalid character 'o' in literal null (expecting 'u')\")]".to_owned(),
            ],
        ),
    ];
    for (request, code, message, details) in cases {
        let status = sidecar.grpc_publish(request).await.unwrap_err();
        assert_eq!((status.code(), status.message()), (code, message));
        assert_eq!(status_details(&status), details, "{message}");
    }
    sidecar
        .runtime
        .components
        .snapshot()
        .pubsub("mypubsub")
        .unwrap()
        .broker
        .close()
        .await
        .unwrap();
    let status = sidecar
        .grpc_publish(grpc_request("mypubsub", "t", "", b"x"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Internal);
    assert_eq!(
        status.message(),
        "error when publishing to topic t in pubsub mypubsub: pubsub shutdown"
    );
}

#[tokio::test]
async fn bulk_publishes_wrap_every_entry() {
    let sidecar = start().await;
    let mut topic = sidecar.capture("mypubsub", "orders/eu").await;
    let entries = json!([
        {"entryId": "1", "event": {"b": 1.50, "a": "<x>"}, "contentType": "application/json"},
        {"entryId": "2", "event": "hello", "contentType": "text/plain", "metadata": {"cloudevent.id": "two"}},
        {"entryId": "3", "event": "AP8B", "contentType": "application/octet-stream", "metadata": {}},
    ]);
    for route in [
        "/v1.0-alpha1/publish/bulk/mypubsub/orders/eu",
        "/v1.0/publish/bulk/mypubsub/orders/eu",
    ] {
        let reply = sidecar
            .call(
                &format!("{route}?metadata.ttlInSeconds=60"),
                &[("traceparent", TRACEPARENT)],
                entries.to_string().as_bytes(),
            )
            .await;
        reply.no_content();
        let first = topic.next().await;
        let event: Value = serde_json::from_slice(&first.data).unwrap();
        // JSON events are decoded as Go decodes into `any`: numbers become float64.
        assert!(
            String::from_utf8_lossy(&first.data)
                .starts_with(r#"{"data":{"a":"\u003cx\u003e","b":1.5},"#)
        );
        assert_eq!(first.content_type.as_deref(), Some("application/json"));
        // An entry without metadata gets none, not even the request's.
        assert!(first.metadata.is_empty());
        assert!(event.get("expiration").is_none());
        let traceparent = event["traceparent"].as_str().unwrap();
        assert!(
            traceparent.starts_with("00-0af7651916cd43dd8448eb211c80319c-"),
            "{traceparent}"
        );
        assert_ne!(traceparent, TRACEPARENT, "each entry has its own span");

        let (second, _) = topic.event().await;
        assert_eq!(
            (second["id"].as_str(), second["data"].as_str()),
            (Some("two"), Some("hello"))
        );
        assert!(second.get("expiration").is_some());
        let third = topic.next().await;
        assert_eq!(third.metadata["ttlInSeconds"], "60");
        let third: Value = serde_json::from_slice(&third.data).unwrap();
        assert_eq!(third["data_base64"], "AP8B");
    }

    // Raw payloads and gRPC.
    let request = BulkPublishRequest {
        pubsub_name: "mypubsub".into(),
        topic: "orders/eu".into(),
        entries: vec![
            BulkPublishRequestEntry {
                entry_id: "a".into(),
                event: b"raw-a".to_vec(),
                content_type: "text/plain".into(),
                metadata: HashMap::from([("k".to_owned(), "entry".to_owned())]),
            },
            BulkPublishRequestEntry {
                entry_id: "b".into(),
                event: br#"{"x":1}"#.to_vec(),
                content_type: "application/json".into(),
                metadata: HashMap::new(),
            },
        ],
        metadata: HashMap::from([
            ("rawPayload".to_owned(), "true".to_owned()),
            ("k".to_owned(), "request".to_owned()),
            ("r".to_owned(), "request".to_owned()),
        ]),
    };
    let response = sidecar
        .grpc
        .clone()
        .bulk_publish_event(request.clone())
        .await
        .unwrap();
    assert!(response.into_inner().failed_entries.is_empty());
    let message = topic.next().await;
    assert_eq!(&message.data[..], b"raw-a");
    assert_eq!(
        message.metadata,
        HashMap::from([
            ("rawPayload".to_owned(), "true".to_owned()),
            ("k".to_owned(), "entry".to_owned()),
            ("r".to_owned(), "request".to_owned()),
        ])
    );
    assert_eq!(&topic.next().await.data[..], br#"{"x":1}"#);
    let mut wrapped = request;
    wrapped.metadata.clear();
    let mut client = sidecar.grpc.clone();
    #[allow(deprecated)]
    let alpha = client.bulk_publish_event_alpha1(wrapped);
    alpha.await.unwrap();
    assert_eq!(topic.event().await.0["data"], "raw-a");
    assert_eq!(topic.event().await.0["data"], json!({"x": 1}));
    assert!(topic.is_empty());

    let text = sidecar.registry.encode_text();
    let count = |name: &str| -> u64 {
        text.lines()
            .filter(|line| line.starts_with(&format!("{name}{{")))
            .filter(|line| {
                line.contains("component=\"mypubsub\"")
                    && line.contains("success=\"true\"")
                    && line.contains("topic=\"orders/eu\"")
            })
            .map(|line| line.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
            .sum()
    };
    assert_eq!(
        count("dapr_component_pubsub_egress_bulk_count"),
        4,
        "{text}"
    );
    assert_eq!(
        count("dapr_component_pubsub_egress_bulk_event_count"),
        4,
        "{text}"
    );
}

#[tokio::test]
async fn bulk_publish_errors_match_upstream() {
    let sidecar = start().await;
    let path = "/v1.0-alpha1/publish/bulk/mypubsub/t";
    let body = sidecar.call(path, &[], br#"{"entryID": "}"#).await.error(
        StatusCode::BAD_REQUEST,
        "ERR_PUBSUB_EVENTS_SER",
        "error when unmarshaling the request for topic t pubsub mypubsub: unexpected EOF",
    );
    assert_eq!(body["details"][1]["reason"], "DAPR_PUBSUB_UNMARSHAL_EVENTS");
    assert_eq!(body["details"][1]["metadata"], json!({"appID": "myapp"}));
    sidecar
        .call(path, &[], br#"{"entryId": "1"}"#)
        .await
        .error(
            StatusCode::BAD_REQUEST,
            "ERR_PUBSUB_EVENTS_SER",
            "error when unmarshaling the request for topic t pubsub mypubsub: json: cannot unmarshal object into Go value of type []http.bulkPublishMessageEntry",
        );
    let mismatch = json!([{"entryId": "1", "event": {"a": 1}, "contentType": "text/plain"}]);
    let body = sidecar
        .call(path, &[], mismatch.to_string().as_bytes())
        .await
        .error(
            StatusCode::BAD_REQUEST,
            "ERR_PUBSUB_EVENTS_SER",
            "error when marshalling cloud event envelope for topic t pubsub mypubsub: error: mismatch between contentType and event",
        );
    assert_eq!(body["details"][1]["reason"], "DAPR_PUBSUB_MARSHAL_ENVELOPE");
    let bad_base64 =
        json!([{"entryId": "1", "event": "!!", "contentType": "application/octet-stream"}]);
    sidecar
        .call(path, &[], bad_base64.to_string().as_bytes())
        .await
        .error(
            StatusCode::BAD_REQUEST,
            "ERR_PUBSUB_EVENTS_SER",
            "error when marshalling cloud event envelope for topic t pubsub mypubsub: error: unable to decode base64 application/octect-stream data: illegal base64 data at input byte 0",
        );
    let duplicated = json!([
        {"entryId": "1", "event": "a", "contentType": "text/plain"},
        {"entryId": "1", "event": "b", "contentType": "text/plain"},
    ]);
    let message = "error marshaling events to bytes for topic t pubsub mypubsub. error: entryId is duplicated or not present for entry";
    let body = sidecar
        .call(path, &[], duplicated.to_string().as_bytes())
        .await
        .error(StatusCode::BAD_REQUEST, "ERR_PUBSUB_EVENTS_SER", message);
    assert_eq!(body["details"][1]["reason"], "DAPR_PUBSUB_MARSHAL_EVENTS");
    let missing = BulkPublishRequest {
        pubsub_name: "mypubsub".into(),
        topic: "t".into(),
        entries: vec![BulkPublishRequestEntry::default()],
        metadata: HashMap::new(),
    };
    let status = sidecar
        .grpc
        .clone()
        .bulk_publish_event(missing)
        .await
        .unwrap_err();
    assert_eq!(
        (status.code(), status.message()),
        (tonic::Code::InvalidArgument, message)
    );
    sidecar
        .call("/v1.0/publish/bulk/allowed/zzz", &[], b"[]")
        .await
        .error(
            StatusCode::FORBIDDEN,
            "ERR_PUBSUB_FORBIDDEN",
            "topic zzz is not allowed for app id myapp",
        );
    sidecar
        .call("/v1.0/publish/bulk/nope/t", &[], b"[]")
        .await
        .error(
            StatusCode::NOT_FOUND,
            "ERR_PUBSUB_NOT_FOUND",
            "pubsub nope is not found",
        );

    // Entries the broker refuses are listed, with upstream's body and headers.
    sidecar
        .runtime
        .components
        .snapshot()
        .pubsub("mypubsub")
        .unwrap()
        .broker
        .close()
        .await
        .unwrap();
    let entries = json!([
        {"entryId": "1", "event": "a", "contentType": "text/plain"},
        {"entryId": "2", "event": "b", "contentType": "text/plain"},
    ]);
    let reply = sidecar
        .call(path, &[], entries.to_string().as_bytes())
        .await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        reply.headers[http::header::CONTENT_TYPE],
        "application/json"
    );
    let expected = r#"{"failedEntries":[{"entryId":"1","error":"pubsub shutdown"},{"entryId":"2","error":"pubsub shutdown"}],"errorCode":"ERR_PUBSUB_PUBLISH_MESSAGE"}"#;
    assert_eq!(&reply.body[..], expected.as_bytes());
    assert_eq!(reply.headers["metadata.responsedata"], expected);
    assert_eq!(
        reply.headers["metadata.error"],
        "api error: code = Internal desc = error when publishing to topic t in pubsub mypubsub: pubsub shutdown"
    );
    let request = BulkPublishRequest {
        pubsub_name: "mypubsub".into(),
        topic: "t".into(),
        entries: vec![BulkPublishRequestEntry {
            entry_id: "1".into(),
            event: b"a".to_vec(),
            content_type: "text/plain".into(),
            metadata: HashMap::new(),
        }],
        metadata: HashMap::new(),
    };
    let status = sidecar
        .grpc
        .clone()
        .bulk_publish_event(request)
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Internal);
    assert_eq!(
        status.message(),
        "error when publishing to topic t in pubsub mypubsub: pubsub shutdown"
    );

    let text = sidecar.registry.encode_text();
    assert!(
        text.lines().any(
            |line| line.starts_with("dapr_component_pubsub_egress_bulk_count{")
                && line.contains("success=\"false\"")
                && line.contains("topic=\"zzz\"")
        ),
        "{text}"
    );
}

#[tokio::test]
async fn single_publishes_are_counted() {
    let sidecar = start().await;
    sidecar
        .publish("/v1.0/publish/mypubsub/t", None, "x")
        .await
        .no_content();
    sidecar
        .publish("/v1.0/publish/allowed/zzz", None, "x")
        .await;
    let text = sidecar.registry.encode_text();
    let has = |success: &str, component: &str, topic: &str| {
        text.lines().any(|line| {
            line.starts_with("dapr_component_pubsub_egress_count{")
                && line.contains(&format!("success=\"{success}\""))
                && line.contains(&format!("component=\"{component}\""))
                && line.contains(&format!("topic=\"{topic}\""))
                && line.contains("app_id=\"myapp\"")
                && line.ends_with(" 1")
        })
    };
    assert!(has("true", "mypubsub", "t"), "{text}");
    assert!(has("false", "allowed", "zzz"), "{text}");
}

//! Tests against a real Mosquitto broker: the shared pub/sub suite, persistent-session
//! redelivery, wildcards, retained messages and settings errors.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use dapr_testkit::servers::Mosquitto;
use futures::FutureExt;
use serde_json::json;

use super::settings::parse_url;
use super::*;
use crate::pubsub::conformance::{self, Expectations};
use crate::pubsub::{Message, NotAcknowledged};

const DEADLINE: Duration = Duration::from_secs(10);
const QUIET: Duration = Duration::from_millis(500);

fn properties(value: serde_json::Value) -> Properties {
    Properties::from_json(&value).unwrap()
}

async fn open_with(broker: &Mosquitto, consumer_id: &str, extra: serde_json::Value) -> Mqtt3PubSub {
    let mut settings = json!({"url": broker.url(), "consumerID": consumer_id});
    if let (Some(settings), Some(extra)) = (settings.as_object_mut(), extra.as_object()) {
        settings.extend(extra.clone());
    }
    open(&properties(settings)).await.unwrap()
}

/// Records deliveries; refuses every message while `refuse` is set.
#[derive(Default)]
struct Recorder {
    refuse: bool,
    messages: Mutex<Vec<Message>>,
}

impl Recorder {
    fn accepting() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn refusing() -> Arc<Self> {
        Arc::new(Self {
            refuse: true,
            ..Self::default()
        })
    }

    fn messages(&self) -> Vec<Message> {
        self.messages.lock().unwrap().clone()
    }

    fn payloads(&self) -> Vec<Bytes> {
        let mut payloads: Vec<Bytes> = self.messages().into_iter().map(|m| m.data).collect();
        payloads.sort();
        payloads
    }

    async fn wait_for(&self, count: usize) {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        while self.messages.lock().unwrap().len() < count {
            assert!(
                tokio::time::Instant::now() < deadline,
                "expected {count} messages, got {:?}",
                self.messages()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[async_trait::async_trait]
impl MessageHandler for Recorder {
    async fn handle(&self, message: Message) -> Result<(), NotAcknowledged> {
        self.messages.lock().unwrap().push(message);
        if self.refuse {
            return Err(NotAcknowledged("refused".into()));
        }
        Ok(())
    }
}

async fn publish(
    broker: &Mqtt3PubSub,
    topic: &str,
    data: &'static [u8],
    metadata: &[(&str, &str)],
) {
    broker
        .publish(PublishRequest {
            topic: topic.to_owned(),
            data: Bytes::from_static(data),
            metadata: metadata
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            content_type: None,
        })
        .await
        .unwrap();
}

async fn subscribe(
    broker: &Mqtt3PubSub,
    topic: &str,
    recorder: &Arc<Recorder>,
    metadata: &[(&str, &str)],
) -> Subscription {
    broker
        .subscribe(
            SubscribeRequest {
                topic: topic.to_owned(),
                metadata: metadata
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            },
            recorder.clone(),
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn conformance_suite() {
    let broker = Mosquitto::start().await.unwrap();
    let url = broker.url();
    let open_broker = move |consumer_id: String| {
        let settings = json!({"url": url, "consumerID": consumer_id});
        async move { Arc::new(open(&properties(settings)).await.unwrap()) as Arc<dyn PubSub> }
            .boxed()
    };
    conformance::run_all(
        &open_broker,
        Expectations {
            // Handlers run concurrently (upstream turns paho's ordering off).
            ordered: false,
            carries_content_type: false,
            // MQTT 3 redelivers an unacknowledged message only when the session resumes
            // (see `an_unacknowledged_message_comes_back_when_the_session_resumes`).
            redelivery: None,
            delivers_earlier_messages: false,
            // One client id is one session: a second connection takes it over.
            consumer_groups: false,
        },
    )
    .await;
}

#[tokio::test]
async fn an_unacknowledged_message_comes_back_when_the_session_resumes() {
    let broker = Mosquitto::start().await.unwrap();
    let publisher = open_with(&broker, "publisher", json!({})).await;

    let first = open_with(&broker, "worker", json!({})).await;
    let refusing = Recorder::refusing();
    let subscription = subscribe(&first, "orders/new", &refusing, &[]).await;
    publish(&publisher, "orders/new", b"refused", &[]).await;
    refusing.wait_for(1).await;
    subscription.unsubscribe().await;
    first.close().await.unwrap();

    // Published while the worker is away: the persistent session keeps it.
    publish(&publisher, "orders/new", b"while away", &[]).await;

    let second = open_with(&broker, "worker", json!({})).await;
    let accepting = Recorder::accepting();
    let subscription = subscribe(&second, "orders/new", &accepting, &[]).await;
    accepting.wait_for(2).await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(
        accepting.payloads(),
        vec![
            Bytes::from_static(b"refused"),
            Bytes::from_static(b"while away")
        ]
    );
    subscription.unsubscribe().await;
    second.close().await.unwrap();

    // Both were acknowledged this time: nothing comes back.
    let third = open_with(&broker, "worker", json!({})).await;
    let quiet = Recorder::accepting();
    let subscription = subscribe(&third, "orders/new", &quiet, &[]).await;
    tokio::time::sleep(QUIET).await;
    assert!(quiet.messages().is_empty(), "{:?}", quiet.messages());
    subscription.unsubscribe().await;
    third.close().await.unwrap();
    publisher.close().await.unwrap();
}

#[tokio::test]
async fn unsubscribe_on_close_and_clean_sessions_drop_the_broker_subscription() {
    let broker = Mosquitto::start().await.unwrap();
    let publisher = open_with(&broker, "publisher", json!({})).await;
    for (consumer_id, extra, metadata) in [
        (
            "dynamic",
            json!({}),
            &[(UNSUBSCRIBE_ON_CLOSE_METADATA_KEY, "true")][..],
        ),
        ("clean", json!({"cleanSession": "true"}), &[][..]),
    ] {
        let worker = open_with(&broker, consumer_id, extra.clone()).await;
        let recorder = Recorder::accepting();
        let subscription = subscribe(&worker, "jobs", &recorder, metadata).await;
        subscription.unsubscribe().await;
        // The UNSUBSCRIBE is on its way before the disconnect.
        tokio::time::sleep(Duration::from_millis(100)).await;
        worker.close().await.unwrap();
        publish(&publisher, "jobs", b"nobody listens", &[]).await;
        let worker = open_with(&broker, consumer_id, extra).await;
        let late = Recorder::accepting();
        let subscription = subscribe(&worker, "jobs", &late, &[]).await;
        tokio::time::sleep(QUIET).await;
        assert!(
            late.messages().is_empty(),
            "{consumer_id}: {:?}",
            late.messages()
        );
        subscription.unsubscribe().await;
        worker.close().await.unwrap();
    }
    publisher.close().await.unwrap();
}

#[tokio::test]
async fn wildcard_subscriptions_receive_matching_topics() {
    let broker = Mosquitto::start().await.unwrap();
    let pubsub = open_with(&broker, "wildcards", json!({"qos": 2})).await;
    assert_eq!(pubsub.features(), &[Feature::SubscribeWildcards]);
    let temperatures = Recorder::accepting();
    let logs = Recorder::accepting();
    let first = subscribe(&pubsub, "sensors/+/temp", &temperatures, &[]).await;
    let second = subscribe(&pubsub, "logs/#", &logs, &[]).await;
    publish(&pubsub, "sensors/kitchen/temp", b"21", &[]).await;
    publish(&pubsub, "sensors/kitchen/humidity", b"40", &[]).await;
    publish(&pubsub, "sensors/kitchen/oven/temp", b"180", &[]).await;
    publish(&pubsub, "logs/app/error", b"boom", &[]).await;
    publish(&pubsub, "logs", b"root", &[]).await;
    temperatures.wait_for(1).await;
    logs.wait_for(2).await;
    tokio::time::sleep(QUIET).await;
    let topics = |recorder: &Recorder| {
        let mut topics: Vec<String> = recorder.messages().into_iter().map(|m| m.topic).collect();
        topics.sort();
        topics
    };
    assert_eq!(topics(&temperatures), vec!["sensors/kitchen/temp"]);
    assert_eq!(topics(&logs), vec!["logs", "logs/app/error"]);
    first.unsubscribe().await;
    second.unsubscribe().await;
    pubsub.close().await.unwrap();
}

#[tokio::test]
async fn a_late_subscriber_sees_only_the_retained_message() {
    let broker = Mosquitto::start().await.unwrap();
    let publisher = open_with(&broker, "publisher", json!({})).await;
    publish(
        &publisher,
        "status/a",
        b"retained",
        &[(RETAIN_METADATA_KEY, "true")],
    )
    .await;
    publish(&publisher, "status/b", b"not retained", &[]).await;
    // The component-level setting retains by default; a request can opt out.
    let retaining = open_with(&broker, "retaining", json!({"retain": true})).await;
    publish(&retaining, "status/c", b"retained by default", &[]).await;
    publish(
        &retaining,
        "status/d",
        b"opted out",
        &[(RETAIN_METADATA_KEY, "false")],
    )
    .await;

    let late = open_with(&broker, "late", json!({})).await;
    let recorder = Recorder::accepting();
    let subscription = subscribe(&late, "status/+", &recorder, &[]).await;
    recorder.wait_for(2).await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(
        recorder.payloads(),
        vec![
            Bytes::from_static(b"retained"),
            Bytes::from_static(b"retained by default")
        ]
    );
    for message in recorder.messages() {
        assert_eq!(
            message
                .metadata
                .get(RETAINED_METADATA_KEY)
                .map(String::as_str),
            Some("true")
        );
    }
    // A live message is not flagged as retained.
    publish(&publisher, "status/e", b"live", &[]).await;
    recorder.wait_for(3).await;
    let live = recorder
        .messages()
        .into_iter()
        .find(|m| m.topic == "status/e")
        .unwrap();
    assert_eq!(
        live.metadata.get(RETAINED_METADATA_KEY).map(String::as_str),
        Some("false")
    );

    let error = publisher
        .publish(PublishRequest {
            topic: "status/a".into(),
            data: Bytes::from_static(b"x"),
            metadata: HashMap::from([(RETAIN_METADATA_KEY.to_owned(), "maybe".to_owned())]),
            content_type: None,
        })
        .await
        .unwrap_err();
    assert_eq!(
        error,
        PubSubError::InvalidRequest("mqtt invalid retain maybe".into())
    );
    subscription.unsubscribe().await;
    for pubsub in [publisher, retaining, late] {
        pubsub.close().await.unwrap();
    }
}

#[tokio::test]
async fn bad_requests_and_closed_components_are_refused() {
    let broker = Mosquitto::start().await.unwrap();
    let pubsub = open_with(&broker, "requests", json!({})).await;
    let wildcard = pubsub
        .publish(PublishRequest {
            topic: "a/+".into(),
            ..PublishRequest::default()
        })
        .await
        .unwrap_err();
    assert!(
        matches!(wildcard, PubSubError::InvalidRequest(_)),
        "{wildcard}"
    );
    let empty = pubsub.publish(PublishRequest::default()).await.unwrap_err();
    assert_eq!(
        empty,
        PubSubError::InvalidRequest("topic name is empty".into())
    );
    let bad_filter = pubsub
        .subscribe(
            SubscribeRequest {
                topic: "a/#/b".into(),
                ..SubscribeRequest::default()
            },
            Recorder::accepting(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(bad_filter, PubSubError::InvalidRequest(_)),
        "{bad_filter}"
    );
    pubsub.close().await.unwrap();
    let closed = pubsub
        .publish(PublishRequest {
            topic: "a".into(),
            ..PublishRequest::default()
        })
        .await
        .unwrap_err();
    assert_eq!(closed, PubSubError::Closed);
}

#[tokio::test]
async fn bad_settings_are_rejected() {
    let cases = [
        (json!({"consumerID": "c"}), "missing url"),
        (json!({"url": "tcp://127.0.0.1:1883"}), "missing consumerID"),
        (
            json!({"url": "http://127.0.0.1", "consumerID": "c"}),
            "the scheme must be",
        ),
        (
            json!({"url": "ws://127.0.0.1", "consumerID": "c"}),
            "websockets",
        ),
        (
            json!({"url": "127.0.0.1:1883", "consumerID": "c"}),
            "expected scheme",
        ),
        (
            json!({"url": "tcp://host:port", "consumerID": "c"}),
            "bad host or port",
        ),
        (
            json!({"url": "tcp://h", "consumerID": "c", "qos": 3}),
            "invalid qos 3",
        ),
        (
            json!({"url": "tcp://h", "consumerID": "c", "qos": "high"}),
            "invalid qos high",
        ),
        (
            json!({"url": "tcp://h", "consumerID": "c", "retain": "maybe"}),
            "retain",
        ),
        (
            json!({"url": "tcp://h", "consumerID": "c", "cleanSession": "x"}),
            "cleanSession",
        ),
        (
            json!({"url": "ssl://h", "consumerID": "c", "caCert": "not pem"}),
            "invalid caCert",
        ),
    ];
    for (settings, expected) in cases {
        let error = open(&properties(settings.clone())).await.unwrap_err();
        assert!(
            matches!(&error, PubSubError::InvalidMetadata(text) if text.contains(expected)),
            "{settings}: {error}"
        );
    }
    // Nothing listens on the port: the broker is unreachable.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("tcp://127.0.0.1:{port}");
    let error = open(&properties(json!({"url": url, "consumerID": "c"})))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, PubSubError::Backend(text) if text.contains("failed to establish connection")),
        "{error}"
    );
}

#[test]
fn settings_follow_upstream_defaults() {
    let settings =
        Settings::parse(&properties(json!({"url": "mqtt://h", "consumerID": "app"}))).unwrap();
    assert_eq!(settings.qos, rumqttc::QoS::AtLeastOnce);
    assert!(!settings.retain && !settings.clean_session);
    assert_eq!(settings.client_id, "app");
    assert_eq!(settings.broker.port, 1883);
    let settings = Settings::parse(&properties(json!({
        "url": "mqtts://h", "consumerID": "app", "qos": "0", "retain": "true", "cleanSession": "true"
    })))
    .unwrap();
    assert_eq!(settings.qos, rumqttc::QoS::AtMostOnce);
    assert!(settings.retain && settings.clean_session && settings.broker.tls);
    assert_eq!(settings.broker.port, 8883);
}

#[test]
fn urls_carry_scheme_credentials_and_address() {
    let broker = parse_url("tcp://user:p%40ss@broker.local:1884/ignored").unwrap();
    assert_eq!(
        broker,
        BrokerAddress {
            host: "broker.local".into(),
            port: 1884,
            tls: false,
            username: Some("user".into()),
            password: Some("p@ss".into()),
        }
    );
    for scheme in ["ssl", "mqtts", "tcps", "tls"] {
        assert!(
            parse_url(&format!("{scheme}://h:1")).unwrap().tls,
            "{scheme}"
        );
    }
    let v6 = parse_url("tcp://[::1]:1999").unwrap();
    assert_eq!((v6.host.as_str(), v6.port), ("::1", 1999));
    let user_only = parse_url("tcp://user@h").unwrap();
    assert_eq!(
        (user_only.username.as_deref(), user_only.password),
        (Some("user"), None)
    );
}

//! Tests against a real Mosquitto broker: publishing, reading, retries of refused events,
//! redelivery when the session resumes, stopping, and settings errors.

use std::sync::Mutex;
use std::sync::atomic::AtomicUsize;

use bytes::Bytes;
use dapr_testkit::servers::Mosquitto;
use serde_json::json;

use super::*;
use crate::bindings::{EventRejected, InputEvent};
use crate::pubsub::mqtt3::RETAINED_METADATA_KEY;
use crate::pubsub::{Message, MessageHandler, NotAcknowledged, Subscription};

const DEADLINE: Duration = Duration::from_secs(10);
const QUIET: Duration = Duration::from_millis(500);

fn properties(value: serde_json::Value) -> Properties {
    Properties::from_json(&value).unwrap()
}

/// A binding on `broker` reading and writing `topic`, with `extra` settings.
fn binding(broker: &Mosquitto, topic: &str, extra: serde_json::Value) -> Mqtt3Binding {
    let mut settings = json!({"url": broker.url(), "topic": topic, "consumerID": "binding"});
    if let (Some(settings), Some(extra)) = (settings.as_object_mut(), extra.as_object()) {
        settings.extend(extra.clone());
    }
    open(&properties(settings)).unwrap()
}

/// A plain pub/sub client on `broker`.
async fn client(broker: &Mosquitto, consumer_id: &str) -> Mqtt3PubSub {
    let settings = json!({"url": broker.url(), "consumerID": consumer_id});
    crate::pubsub::mqtt3::open(&properties(settings))
        .await
        .unwrap()
}

async fn publish(client: &Mqtt3PubSub, topic: &str, data: &'static [u8]) {
    client
        .publish(PublishRequest {
            topic: topic.to_owned(),
            data: Bytes::from_static(data),
            ..PublishRequest::default()
        })
        .await
        .unwrap();
}

fn create(data: &'static [u8], metadata: &[(&str, &str)]) -> InvokeRequest {
    InvokeRequest {
        operation: "create".into(),
        data: Bytes::from_static(data),
        metadata: metadata
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    }
}

/// Waits until `count()` reaches `expected`.
async fn wait_until(expected: usize, count: impl Fn() -> usize) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while count() < expected {
        assert!(
            tokio::time::Instant::now() < deadline,
            "expected {expected}, got {}",
            count()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Records what a plain subscriber receives.
#[derive(Default)]
struct Watcher(Mutex<Vec<Message>>);

impl Watcher {
    fn messages(&self) -> Vec<Message> {
        self.0.lock().unwrap().clone()
    }
}

#[async_trait::async_trait]
impl MessageHandler for Watcher {
    async fn handle(&self, message: Message) -> Result<(), NotAcknowledged> {
        self.0.lock().unwrap().push(message);
        Ok(())
    }
}

async fn watch(client: &Mqtt3PubSub, topic: &str, watcher: &Arc<Watcher>) -> Subscription {
    client
        .subscribe(
            SubscribeRequest {
                topic: topic.to_owned(),
                ..SubscribeRequest::default()
            },
            watcher.clone(),
        )
        .await
        .unwrap()
}

/// An app: records every event, refuses while `refuse` is set, takes `delay` per event.
#[derive(Default)]
struct App {
    refuse: bool,
    delay: Duration,
    events: Mutex<Vec<InputEvent>>,
    finished: AtomicUsize,
}

impl App {
    fn accepting() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn refusing() -> Arc<Self> {
        Arc::new(Self {
            refuse: true,
            ..Self::default()
        })
    }

    fn events(&self) -> Vec<InputEvent> {
        self.events.lock().unwrap().clone()
    }

    fn count(&self) -> usize {
        self.events.lock().unwrap().len()
    }
}

#[async_trait::async_trait]
impl EventHandler for App {
    async fn handle(&self, event: InputEvent) -> Result<Bytes, EventRejected> {
        self.events.lock().unwrap().push(event);
        tokio::time::sleep(self.delay).await;
        self.finished.fetch_add(1, Ordering::SeqCst);
        if self.refuse {
            return Err(EventRejected("refused".into()));
        }
        Ok(Bytes::new())
    }
}

#[tokio::test]
async fn create_publishes_to_the_topic_or_the_one_requested() {
    let broker = Mosquitto::start().await.unwrap();
    let plain = client(&broker, "watcher").await;
    let watcher = Arc::new(Watcher::default());
    let orders = watch(&plain, "orders", &watcher).await;
    let other = watch(&plain, "other", &watcher).await;

    let binding = binding(&broker, "orders", json!({}));
    assert_eq!(
        OutputBinding::operations(&binding),
        vec!["create".to_owned()]
    );
    let response = binding.invoke(create(b"first", &[])).await.unwrap();
    assert_eq!(response, InvokeResponse::default());
    binding
        .invoke(create(b"second", &[("topic", "other")]))
        .await
        .unwrap();
    wait_until(2, || watcher.messages().len()).await;
    let mut received: Vec<(String, Bytes)> = watcher
        .messages()
        .into_iter()
        .map(|message| (message.topic, message.data))
        .collect();
    received.sort();
    assert_eq!(
        received,
        vec![
            ("orders".to_owned(), Bytes::from_static(b"first")),
            ("other".to_owned(), Bytes::from_static(b"second")),
        ]
    );

    let unsupported = binding
        .invoke(InvokeRequest {
            operation: "get".into(),
            ..InvokeRequest::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        unsupported,
        BindingError::UnsupportedOperation("get".into())
    );
    let wildcard = binding
        .invoke(create(b"x", &[("topic", "orders/#")]))
        .await
        .unwrap_err();
    assert!(
        matches!(wildcard, BindingError::InvalidRequest(_)),
        "{wildcard}"
    );

    orders.unsubscribe().await;
    other.unsubscribe().await;
    OutputBinding::close(&binding).await.unwrap();
    let closed = binding.invoke(create(b"late", &[])).await.unwrap_err();
    assert_eq!(closed, BindingError::Closed);
    plain.close().await.unwrap();
}

#[tokio::test]
async fn retain_applies_to_every_publish() {
    let broker = Mosquitto::start().await.unwrap();
    let binding = binding(&broker, "status", json!({"retain": "true"}));
    binding.invoke(create(b"online", &[])).await.unwrap();

    // A subscriber arriving later still gets the retained message.
    let plain = client(&broker, "late").await;
    let watcher = Arc::new(Watcher::default());
    let subscription = watch(&plain, "status", &watcher).await;
    wait_until(1, || watcher.messages().len()).await;
    let message = &watcher.messages()[0];
    assert_eq!(message.data, Bytes::from_static(b"online"));
    assert_eq!(message.metadata[RETAINED_METADATA_KEY], "true");
    subscription.unsubscribe().await;
    plain.close().await.unwrap();
    OutputBinding::close(&binding).await.unwrap();
}

#[tokio::test]
async fn a_reading_hands_each_message_to_the_app_with_its_topic() {
    let broker = Mosquitto::start().await.unwrap();
    let binding = binding(&broker, "sensors/#", json!({}));
    let app = App::accepting();
    let reading = binding.read(app.clone()).await.unwrap();

    let plain = client(&broker, "device").await;
    publish(&plain, "sensors/kitchen", b"21.5").await;
    publish(&plain, "sensors/hall", b"19.0").await;
    wait_until(2, || app.count()).await;
    let mut events: Vec<(String, Bytes)> = app
        .events()
        .into_iter()
        .map(|event| {
            assert_eq!(event.metadata.len(), 1, "{:?}", event.metadata);
            (event.metadata["topic"].clone(), event.data)
        })
        .collect();
    events.sort();
    assert_eq!(
        events,
        vec![
            ("sensors/hall".to_owned(), Bytes::from_static(b"19.0")),
            ("sensors/kitchen".to_owned(), Bytes::from_static(b"21.5")),
        ]
    );
    reading.unsubscribe().await;

    // Both were acknowledged: a new reading on the resumed session gets nothing back.
    let quiet = App::accepting();
    let reading = binding.read(quiet.clone()).await.unwrap();
    tokio::time::sleep(QUIET).await;
    assert!(quiet.events().is_empty(), "{:?}", quiet.events());
    reading.unsubscribe().await;
    InputBinding::close(&binding).await.unwrap();
    plain.close().await.unwrap();
}

#[tokio::test]
async fn a_refused_event_is_retried_then_comes_back_when_the_session_resumes() {
    let broker = Mosquitto::start().await.unwrap();
    let mut settings = Settings::parse(&properties(json!({
        "url": broker.url(), "topic": "jobs", "consumerID": "worker", "backOffMaxRetries": "2"
    })))
    .unwrap();
    settings.retry_wait = Duration::from_millis(50);
    let binding = Mqtt3Binding::new(settings);

    let refusing = App::refusing();
    let reading = binding.read(refusing.clone()).await.unwrap();
    let plain = client(&broker, "scheduler").await;
    publish(&plain, "jobs", b"job-1").await;
    // The first attempt and two retries, then the message is left unacknowledged.
    wait_until(3, || refusing.count()).await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(refusing.count(), 3);
    reading.unsubscribe().await;

    let accepting = App::accepting();
    let reading = binding.read(accepting.clone()).await.unwrap();
    wait_until(1, || accepting.count()).await;
    assert_eq!(accepting.events()[0].data, Bytes::from_static(b"job-1"));
    reading.unsubscribe().await;

    let quiet = App::accepting();
    let reading = binding.read(quiet.clone()).await.unwrap();
    tokio::time::sleep(QUIET).await;
    assert!(quiet.events().is_empty(), "{:?}", quiet.events());
    reading.unsubscribe().await;
    InputBinding::close(&binding).await.unwrap();
    plain.close().await.unwrap();
}

#[tokio::test]
async fn stopping_lets_handlers_finish_and_ends_endless_retries() {
    let broker = Mosquitto::start().await.unwrap();
    let binding = binding(&broker, "slow", json!({"backOffMaxRetries": "-1"}));
    assert_eq!(binding.settings().retries, Retries::Unlimited);
    let app = Arc::new(App {
        delay: Duration::from_millis(300),
        ..App::default()
    });
    let reading = binding.read(app.clone()).await.unwrap();

    // One reading at a time.
    let second = binding.read(App::accepting()).await.unwrap_err();
    assert_eq!(
        second,
        BindingError::InvalidRequest("the subscription is already active".into())
    );

    let plain = client(&broker, "producer").await;
    publish(&plain, "slow", b"slow work").await;
    wait_until(1, || app.count()).await;
    reading.unsubscribe().await;
    assert_eq!(app.finished.load(Ordering::SeqCst), 1);

    // Unlimited retries of a refused event end when the reading stops.
    let refusing = App::refusing();
    let reading = binding.read(refusing.clone()).await.unwrap();
    publish(&plain, "slow", b"never accepted").await;
    wait_until(1, || refusing.count()).await;
    let started = tokio::time::Instant::now();
    reading.unsubscribe().await;
    assert!(started.elapsed() < Duration::from_secs(2));

    // Closing the binding refuses new readings.
    InputBinding::close(&binding).await.unwrap();
    let closed = binding.read(App::accepting()).await.unwrap_err();
    assert_eq!(closed, BindingError::Closed);
    plain.close().await.unwrap();
}

#[tokio::test]
async fn an_unreachable_broker_fails_publishing_and_reading() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("tcp://127.0.0.1:{port}");
    let binding = open(&properties(
        json!({"url": url, "topic": "t", "consumerID": "c"}),
    ))
    .unwrap();
    let error = binding.invoke(create(b"x", &[])).await.unwrap_err();
    assert!(
        matches!(&error, BindingError::Backend(text) if text.starts_with("failed to create producer connection")),
        "{error}"
    );
    let error = binding.read(App::accepting()).await.unwrap_err();
    assert!(
        matches!(&error, BindingError::Backend(text) if text.starts_with("failed to connect")),
        "{error}"
    );
    // The failed reading let go of its claim.
    assert!(!binding.reading.load(Ordering::SeqCst));
}

#[test]
fn bad_settings_are_rejected() {
    let cases = [
        (json!({"topic": "t", "consumerID": "c"}), "missing url"),
        (
            json!({"url": "tcp://h", "consumerID": "c"}),
            "missing topic",
        ),
        (
            json!({"url": "tcp://h", "topic": "t"}),
            "missing consumerID",
        ),
        (
            json!({"url": "http://h", "topic": "t", "consumerID": "c"}),
            "the scheme must be",
        ),
        (
            json!({"url": "tcp://h", "topic": "a/#/b", "consumerID": "c"}),
            "invalid topic",
        ),
        (
            json!({"url": "tcp://h", "topic": "t", "consumerID": "c", "backOffMaxRetries": "x"}),
            "invalid backOffMaxRetries",
        ),
        (
            json!({"url": "ssl://h", "topic": "t", "consumerID": "c", "caCert": "not pem"}),
            "invalid ca certificate",
        ),
        (
            json!({"url": "ssl://h", "topic": "t", "consumerID": "c", "clientCert": "x"}),
            "invalid client certificate",
        ),
        (
            json!({"url": "ssl://h", "topic": "t", "consumerID": "c", "clientKey": "x"}),
            "invalid client certificate key",
        ),
    ];
    for (settings, expected) in cases {
        let error = open(&properties(settings.clone())).unwrap_err();
        assert!(
            matches!(&error, BindingError::InvalidMetadata(text) if text.contains(expected)),
            "{settings}: {error}"
        );
    }
}

#[test]
fn settings_follow_upstream_defaults() {
    let settings = Settings::parse(&properties(json!({
        "url": "mqtt://user:secret@h", "topic": "t", "consumerID": "app"
    })))
    .unwrap();
    assert!(!settings.retain && !settings.clean_session);
    assert_eq!(settings.retries, Retries::AtMost(0));
    assert_eq!(settings.retry_wait, Duration::from_secs(5));
    assert_eq!(settings.broker.port, 1883);
    assert_eq!(settings.broker.username.as_deref(), Some("user"));
    let producer = settings.producer();
    assert_eq!(producer.client_id, "app-producer");
    assert_eq!(producer.qos, rumqttc::QoS::AtLeastOnce);
    assert_eq!(settings.consumer().client_id, "app-consumer");

    // Booleans are lenient and `qos` is ignored, as upstream decodes them.
    let settings = Settings::parse(&properties(json!({
        "url": "tcp://h", "topic": "t", "consumerID": "app",
        "retain": "yes", "cleanSession": "randomString", "qos": "0", "backOffMaxRetries": 4
    })))
    .unwrap();
    assert!(settings.retain && !settings.clean_session);
    assert_eq!(settings.retries, Retries::AtMost(4));
    assert_eq!(settings.producer().qos, rumqttc::QoS::AtLeastOnce);
}

#[tokio::test]
async fn the_catalog_opens_both_halves_as_one_object() {
    let settings = json!({"url": "tcp://127.0.0.1:1", "topic": "t", "consumerID": "c"});
    let binding = crate::bindings::open("bindings.mqtt3", "v1", &properties(settings))
        .await
        .unwrap();
    let (Some(input), Some(output)) = (binding.input, binding.output) else {
        panic!("both halves expected");
    };
    assert!(std::ptr::addr_eq(Arc::as_ptr(&input), Arc::as_ptr(&output)));
}

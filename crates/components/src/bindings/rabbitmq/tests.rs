//! `bindings.rabbitmq` against a real RabbitMQ (one broker shared by every test): the queue
//! as upstream declares it, published messages as a plain client sees them, reading with
//! acks and requeues, stopping, reconnecting, and settings errors.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use dapr_testkit::servers::RabbitMq;
use lapin::options::{BasicGetOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use serde_json::json;

use super::*;
use crate::bindings::{EventRejected, InputEvent};
use crate::pubsub::rabbitmq::tests::Relay;

const DEADLINE: Duration = Duration::from_secs(10);
const QUIET: Duration = Duration::from_millis(500);

async fn broker_url() -> String {
    RabbitMq::shared().await.unwrap().url()
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

fn properties(value: serde_json::Value) -> Properties {
    Properties::from_json(&value).unwrap()
}

/// A binding on the shared broker for `queue`, with `extra` settings.
async fn open_binding(queue: &str, extra: serde_json::Value) -> RabbitMqBinding {
    let mut settings = json!({"host": broker_url().await, "queueName": queue});
    for (key, value) in extra.as_object().unwrap() {
        settings[key] = value.clone();
    }
    open(&properties(settings)).await.unwrap()
}

/// A raw channel for looking at the broker directly.
async fn raw_channel() -> (Connection, Channel) {
    let connection = Connection::connect(&broker_url().await, ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    (connection, channel)
}

/// Whether the broker accepts a declaration of `queue` with these flags and arguments (one
/// that differs from the existing queue is refused).
async fn queue_matches(queue: &str, options: QueueDeclareOptions, arguments: FieldTable) -> bool {
    let (connection, channel) = raw_channel().await;
    let matches = channel
        .queue_declare(queue.into(), options, arguments)
        .await
        .is_ok();
    let _ = connection.close(200, "OK".into()).await;
    matches
}

/// The messages waiting in `queue`, taken off it.
async fn drain(queue: &str) -> Vec<(Bytes, BasicProperties)> {
    let (connection, channel) = raw_channel().await;
    let mut taken = Vec::new();
    while let Some(message) = channel
        .basic_get(queue.into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
    {
        let delivery = &message.delivery;
        taken.push((
            Bytes::from(delivery.data.clone()),
            delivery.properties.clone(),
        ));
    }
    let _ = connection.close(200, "OK".into()).await;
    taken
}

/// Publishes straight to `queue` through the default exchange.
async fn publish_raw(queue: &str, data: &[u8], headers: FieldTable) {
    let (connection, channel) = raw_channel().await;
    channel
        .basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions::default(),
            data,
            BasicProperties::default().with_headers(headers),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    let _ = connection.close(200, "OK".into()).await;
}

fn create(data: &[u8], metadata: &[(&str, &str)]) -> InvokeRequest {
    InvokeRequest {
        operation: "create".into(),
        data: Bytes::copy_from_slice(data),
        metadata: metadata
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    }
}

/// An app: records every event, refuses the first `refusals`, takes `delay` per event.
#[derive(Default)]
struct App {
    refusals: usize,
    delay: Duration,
    events: Mutex<Vec<InputEvent>>,
    finished: AtomicUsize,
}

impl App {
    fn with(refusals: usize, delay: Duration) -> Arc<Self> {
        Arc::new(Self {
            refusals,
            delay,
            ..Self::default()
        })
    }

    fn events(&self) -> Vec<InputEvent> {
        self.events.lock().unwrap().clone()
    }

    fn count(&self) -> usize {
        self.events.lock().unwrap().len()
    }

    async fn wait_for(&self, count: usize) {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        while self.count() < count {
            assert!(
                tokio::time::Instant::now() < deadline,
                "expected {count} events, got {:?}",
                self.events()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[async_trait::async_trait]
impl EventHandler for App {
    async fn handle(&self, event: InputEvent) -> Result<Bytes, EventRejected> {
        let seen = {
            let mut events = self.events.lock().unwrap();
            events.push(event);
            events.len()
        };
        tokio::time::sleep(self.delay).await;
        self.finished.fetch_add(1, Ordering::SeqCst);
        if seen <= self.refusals {
            return Err(EventRejected("refused".into()));
        }
        Ok(Bytes::from_static(b"ok"))
    }
}

#[tokio::test]
async fn declares_the_queue_as_upstream_does() {
    let queue = unique("declared");
    let binding = open_binding(
        &queue,
        json!({"durable": "true", "ttlInSeconds": 60, "maxPriority": "5"}),
    )
    .await;
    let upstream = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    let mut arguments = FieldTable::default();
    arguments.insert("x-message-ttl".into(), AMQPValue::LongLongInt(60_000));
    arguments.insert("x-max-priority".into(), AMQPValue::ShortShortUInt(5));
    assert!(queue_matches(&queue, upstream, arguments.clone()).await);
    assert!(!queue_matches(&queue, upstream, FieldTable::default()).await);
    let transient = QueueDeclareOptions::default();
    assert!(!queue_matches(&queue, transient, arguments).await);
    OutputBinding::close(&binding).await.unwrap();

    // The defaults: neither durable nor auto-deleted, no arguments.
    let queue = unique("plain");
    let binding = open_binding(&queue, json!({"deleteWhenUnused": "true"})).await;
    let auto_delete = QueueDeclareOptions {
        auto_delete: true,
        ..QueueDeclareOptions::default()
    };
    assert!(queue_matches(&queue, auto_delete, FieldTable::default()).await);
    OutputBinding::close(&binding).await.unwrap();
}

#[tokio::test]
async fn create_publishes_persistent_messages_with_upstreams_properties() {
    let queue = unique("published");
    let binding = open_binding(&queue, json!({"maxPriority": 10})).await;
    assert_eq!(
        OutputBinding::operations(&binding),
        vec!["create".to_owned()]
    );
    let response = binding
        .invoke(create(
            b"{\"id\":1}",
            &[
                ("contentType", "application/json"),
                ("ttlInSeconds", "30"),
                ("priority", "300"),
                ("messageID", "m-1"),
                ("CorrelationID", "c-1"),
                ("type", "order"),
                ("tenant", "acme"),
            ],
        ))
        .await
        .unwrap();
    assert_eq!(response, InvokeResponse::default());
    binding.invoke(create(b"plain", &[])).await.unwrap();

    let messages = drain(&queue).await;
    assert_eq!(messages.len(), 2);
    let (data, first) = &messages[0];
    assert_eq!(data, &Bytes::from_static(b"{\"id\":1}"));
    assert_eq!(*first.delivery_mode(), Some(2));
    assert_eq!(
        first.content_type().as_ref().map(ToString::to_string),
        Some("application/json".to_owned())
    );
    assert_eq!(
        first.expiration().as_ref().map(ToString::to_string),
        Some("30000".to_owned())
    );
    assert_eq!(*first.priority(), Some(255));
    assert_eq!(
        first.message_id().as_ref().map(ToString::to_string),
        Some("m-1".to_owned())
    );
    assert_eq!(
        first.correlation_id().as_ref().map(ToString::to_string),
        Some("c-1".to_owned())
    );
    assert_eq!(
        first.kind().as_ref().map(ToString::to_string),
        Some("order".to_owned())
    );
    let headers = first.headers().clone().unwrap();
    assert_eq!(
        headers.inner().get("tenant"),
        Some(&AMQPValue::LongString("acme".into()))
    );
    assert_eq!(headers.inner().len(), 7);
    let (data, second) = &messages[1];
    assert_eq!(data, &Bytes::from_static(b"plain"));
    assert_eq!(*second.delivery_mode(), Some(2));
    assert_eq!(
        second.content_type().as_ref().map(ToString::to_string),
        Some("text/plain".to_owned())
    );
    assert_eq!(*second.expiration(), None);

    let bad_ttl = binding
        .invoke(create(b"x", &[("ttl", "soon")]))
        .await
        .unwrap_err();
    assert!(
        matches!(&bad_ttl, BindingError::InvalidRequest(text) if text.starts_with("failed to get TTL")),
        "{bad_ttl}"
    );
    let bad_priority = binding
        .invoke(create(b"x", &[("priority", "high")]))
        .await
        .unwrap_err();
    assert_eq!(
        bad_priority,
        BindingError::InvalidRequest(
            "priority value must be a valid integer: actual is 'high'".into()
        )
    );
    let unsupported = binding
        .invoke(InvokeRequest {
            operation: "delete".into(),
            ..InvokeRequest::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        unsupported,
        BindingError::UnsupportedOperation("delete".into())
    );

    OutputBinding::close(&binding).await.unwrap();
    let closed = binding.invoke(create(b"late", &[])).await.unwrap_err();
    assert_eq!(closed, BindingError::Closed);
    let closed = binding
        .read(App::with(0, Duration::ZERO))
        .await
        .unwrap_err();
    assert_eq!(closed, BindingError::Closed);
}

#[tokio::test]
async fn a_reading_acks_accepted_messages_and_requeues_refused_ones() {
    let queue = unique("read");
    let binding = open_binding(&queue, json!({})).await;
    let app = App::with(1, Duration::ZERO);
    let reading = binding.read(app.clone()).await.unwrap();

    let mut headers = FieldTable::default();
    headers.insert("my key".into(), AMQPValue::LongString("v".into()));
    headers.insert("count".into(), AMQPValue::LongLongInt(3));
    publish_raw(&queue, b"event", headers).await;
    // Refused once, requeued, delivered again and accepted.
    app.wait_for(2).await;
    tokio::time::sleep(QUIET).await;
    let events = app.events();
    assert_eq!(events.len(), 2, "{events:?}");
    for event in &events {
        assert_eq!(event.data, Bytes::from_static(b"event"));
        assert_eq!(
            event.metadata,
            HashMap::from([("my+key".to_owned(), "v".to_owned())])
        );
    }
    reading.unsubscribe().await;
    assert!(drain(&queue).await.is_empty());

    // What the output half publishes, the input half reads.
    let app = App::with(0, Duration::ZERO);
    let reading = binding.read(app.clone()).await.unwrap();
    binding
        .invoke(create(b"round trip", &[("source", "test")]))
        .await
        .unwrap();
    app.wait_for(1).await;
    let event = &app.events()[0];
    assert_eq!(event.data, Bytes::from_static(b"round trip"));
    assert_eq!(event.metadata["source"], "test");
    reading.unsubscribe().await;
    InputBinding::close(&binding).await.unwrap();
}

#[tokio::test]
async fn stopping_lets_the_event_in_hand_finish_and_returns_the_rest() {
    let queue = unique("stop");
    let binding = open_binding(&queue, json!({"prefetchCount": 10})).await;
    for data in [b"one", b"two", b"six"] {
        binding.invoke(create(data, &[])).await.unwrap();
    }
    let app = App::with(0, Duration::from_millis(300));
    let reading = binding.read(app.clone()).await.unwrap();
    app.wait_for(1).await;
    reading.unsubscribe().await;
    // One at a time: the event in hand finished and was acknowledged; the rest went back.
    assert_eq!(app.finished.load(Ordering::SeqCst), 1);
    assert_eq!(app.events()[0].data, Bytes::from_static(b"one"));
    let left: Vec<Bytes> = drain(&queue)
        .await
        .into_iter()
        .map(|(data, _)| data)
        .collect();
    assert_eq!(
        left,
        vec![Bytes::from_static(b"two"), Bytes::from_static(b"six")]
    );
    InputBinding::close(&binding).await.unwrap();
}

#[tokio::test]
async fn reconnects_after_losing_the_broker() {
    let server = RabbitMq::shared().await.unwrap();
    let relay = Relay::start(server.port()).await;
    let queue = unique("reconnect");
    let binding = open(&properties(json!({
        "host": format!("amqp://guest:guest@127.0.0.1:{}", relay.port),
        "queueName": queue,
        "durable": true,
        "reconnectWaitInSeconds": "1",
    })))
    .await
    .unwrap();
    let app = App::with(0, Duration::ZERO);
    let reading = binding.read(app.clone()).await.unwrap();
    binding.invoke(create(b"before", &[])).await.unwrap();
    app.wait_for(1).await;

    relay.cut_connections();
    // Publishing reconnects by itself; the reading comes back after its wait. An event
    // whose acknowledgement was lost with the connection may come again first (delivery
    // is at least once), so wait for one published after the cut.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut attempt = 0;
    let after_cut = |app: &App| {
        app.events()
            .iter()
            .any(|event| event.data.starts_with(b"after"))
    };
    while !after_cut(&app) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no event after the connection was lost"
        );
        attempt += 1;
        let _ = binding
            .invoke(create(format!("after {attempt}").as_bytes(), &[]))
            .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        app.events()
            .iter()
            .all(|event| event.data.starts_with(b"before") || event.data.starts_with(b"after"))
    );
    reading.unsubscribe().await;
    InputBinding::close(&binding).await.unwrap();
}

#[tokio::test]
async fn an_unreachable_broker_fails_opening() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let error = open(&properties(json!({
        "host": format!("amqp://127.0.0.1:{port}"),
        "queueName": "q",
    })))
    .await
    .unwrap_err();
    assert!(matches!(error, BindingError::Backend(_)), "{error}");
}

#[test]
fn bad_settings_are_rejected() {
    let cases = [
        (json!({"queueName": "q"}), "missing host address"),
        (json!({"host": "amqp://h"}), "missing queue Name"),
        (
            json!({"host": "http://h", "queueName": "q"}),
            "AMQP scheme must be either 'amqp://' or 'amqps://'",
        ),
        (
            json!({"host": "amqp://h", "queueName": "q", "maxPriority": "-1"}),
            "can't parse maxPriority field",
        ),
        (
            json!({"host": "amqp://h", "queueName": "q", "prefetchCount": "many"}),
            "invalid prefetchCount",
        ),
        (
            json!({"host": "amqp://h", "queueName": "q", "reconnectWaitInSeconds": "later"}),
            "reconnectWaitInSeconds",
        ),
        (
            json!({"host": "amqp://h", "queueName": "q", "ttlInSeconds": "-5"}),
            "failed to parse TTL: ttl value must be higher than zero",
        ),
        (
            json!({"host": "amqp://h", "queueName": "q", "caCert": "x"}),
            "invalid ca certificate",
        ),
        (
            json!({"host": "amqp://h", "queueName": "q", "clientCert": "x"}),
            "invalid client certificate",
        ),
        (
            json!({"host": "amqp://h", "queueName": "q", "clientKey": "x"}),
            "invalid client certificate key",
        ),
    ];
    for (settings, expected) in cases {
        let error = Settings::parse(&properties(settings.clone())).unwrap_err();
        assert!(
            matches!(&error, BindingError::InvalidMetadata(text) if text.contains(expected)),
            "{settings}: {error}"
        );
    }
}

#[test]
fn settings_follow_upstreams_defaults() {
    let settings = Settings::parse(&properties(json!({
        "host": "amqp://user:secret@h:5673/vhost", "queueName": "q"
    })))
    .unwrap();
    assert!(!settings.durable && !settings.delete_when_unused && !settings.exclusive);
    assert_eq!(settings.prefetch_count, 0);
    assert_eq!(settings.max_priority, None);
    assert_eq!(settings.default_ttl, None);
    assert_eq!(settings.reconnect_wait, Duration::from_secs(5));
    assert_eq!(settings.uri.authority.port, 5673);
    assert_eq!(settings.uri.vhost, "vhost");
    assert_eq!(settings.uri.query.heartbeat, Some(10));
    assert!(settings.queue_arguments().inner().is_empty());

    // Lenient booleans, clamped priorities, durations in either form.
    let settings = Settings::parse(&properties(json!({
        "host": "amqps://h?heartbeat=30", "queueName": "q", "durable": "yes",
        "exclusive": "maybe", "maxPriority": 300, "ttl": "1m",
        "reconnectWaitInSeconds": 2, "prefetchCount": "7"
    })))
    .unwrap();
    assert!(settings.durable && !settings.exclusive);
    assert_eq!(settings.max_priority, Some(255));
    assert_eq!(settings.default_ttl, Some(Duration::from_secs(60)));
    assert_eq!(settings.reconnect_wait, Duration::from_secs(2));
    assert_eq!(settings.prefetch_count, 7);
    assert_eq!(settings.uri.query.heartbeat, Some(30));
    let arguments = settings.queue_arguments();
    assert_eq!(
        arguments.inner().get("x-message-ttl"),
        Some(&AMQPValue::LongLongInt(60_000))
    );
    assert_eq!(
        arguments.inner().get("x-max-priority"),
        Some(&AMQPValue::ShortShortUInt(255))
    );
}

#[tokio::test]
async fn the_catalog_opens_both_halves_as_one_object() {
    let settings = json!({"host": broker_url().await, "queueName": unique("catalog")});
    let binding = crate::bindings::open("bindings.rabbitmq", "", &properties(settings))
        .await
        .unwrap();
    let (Some(input), Some(output)) = (binding.input, binding.output) else {
        panic!("both halves expected");
    };
    assert!(std::ptr::addr_eq(Arc::as_ptr(&input), Arc::as_ptr(&output)));
    output.close().await.unwrap();
}

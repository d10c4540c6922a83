//! `pubsub.rabbitmq` against a real RabbitMQ (one broker shared by every test): the
//! shared behaviour suite, then what the broker itself shows of the names, durability,
//! requeueing, dead-lettering, time to live and reconnecting.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::FutureExt;
use lapin::options::{BasicGetOptions, ExchangeDeclareOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::settings::Settings;
use super::*;
use crate::pubsub::conformance::{self, Expectations};
use crate::pubsub::{Message, NotAcknowledged};
use dapr_testkit::servers::RabbitMq;

const DEADLINE: Duration = Duration::from_secs(10);

async fn broker_url() -> String {
    RabbitMq::shared().await.unwrap().url()
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

fn properties(value: serde_json::Value) -> Properties {
    Properties::from_json(&value).unwrap()
}

/// Opens an instance on the shared broker with `extra` settings.
async fn open_with(consumer_id: &str, extra: serde_json::Value) -> RabbitMqPubSub {
    let mut settings = json!({
        "connectionString": broker_url().await,
        "consumerID": consumer_id,
    });
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

/// Whether the broker accepts a declaration of `queue` with these properties (a
/// declaration that differs from the existing queue is refused and closes the channel).
async fn queue_matches(
    queue: &str,
    durable: bool,
    auto_delete: bool,
    arguments: FieldTable,
) -> bool {
    let (connection, channel) = raw_channel().await;
    let options = QueueDeclareOptions {
        durable,
        auto_delete,
        ..QueueDeclareOptions::default()
    };
    let matches = channel
        .queue_declare(queue.into(), options, arguments)
        .await
        .is_ok();
    let _ = connection.close(200, "OK".into()).await;
    matches
}

async fn queue_exists(queue: &str) -> bool {
    let (connection, channel) = raw_channel().await;
    let options = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    let exists = channel
        .queue_declare(queue.into(), options, FieldTable::default())
        .await
        .is_ok();
    let _ = connection.close(200, "OK".into()).await;
    exists
}

async fn exchange_matches(
    exchange: &str,
    kind: ExchangeKind,
    durable: bool,
    auto_delete: bool,
) -> bool {
    let (connection, channel) = raw_channel().await;
    let options = ExchangeDeclareOptions {
        durable,
        auto_delete,
        ..ExchangeDeclareOptions::default()
    };
    let matches = channel
        .exchange_declare(exchange.into(), kind, options, FieldTable::default())
        .await
        .is_ok();
    let _ = connection.close(200, "OK".into()).await;
    matches
}

/// The payloads waiting in `queue`, taken off it, with their expirations.
async fn drain(queue: &str) -> Vec<(Bytes, Option<String>)> {
    let (connection, channel) = raw_channel().await;
    let mut taken = Vec::new();
    while let Some(message) = channel
        .basic_get(queue.into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
    {
        let expiration = message
            .delivery
            .properties
            .expiration()
            .as_ref()
            .map(ToString::to_string);
        taken.push((Bytes::from(message.delivery.data.clone()), expiration));
    }
    let _ = connection.close(200, "OK".into()).await;
    taken
}

/// Forwards every message to a channel; refuses all of them when `refuse` is set.
struct Forward {
    sender: mpsc::UnboundedSender<Message>,
    refuse: bool,
    calls: AtomicUsize,
}

#[async_trait::async_trait]
impl MessageHandler for Forward {
    async fn handle(&self, message: Message) -> Result<(), NotAcknowledged> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let _ = self.sender.send(message);
        if self.refuse {
            Err(NotAcknowledged("refused by the test".to_owned()))
        } else {
            Ok(())
        }
    }
}

fn forward(refuse: bool) -> (Arc<Forward>, mpsc::UnboundedReceiver<Message>) {
    let (sender, receiver) = mpsc::unbounded_channel();
    let handler = Arc::new(Forward {
        sender,
        refuse,
        calls: AtomicUsize::new(0),
    });
    (handler, receiver)
}

async fn next(receiver: &mut mpsc::UnboundedReceiver<Message>) -> Message {
    tokio::time::timeout(DEADLINE, receiver.recv())
        .await
        .expect("a delivery in time")
        .unwrap()
}

fn request(topic: &str, data: &'static [u8]) -> PublishRequest {
    PublishRequest {
        topic: topic.to_owned(),
        data: Bytes::from_static(data),
        ..PublishRequest::default()
    }
}

fn subscription(topic: &str) -> SubscribeRequest {
    SubscribeRequest {
        topic: topic.to_owned(),
        metadata: HashMap::new(),
    }
}

fn opener(
    extra: serde_json::Value,
) -> impl Fn(String) -> futures::future::BoxFuture<'static, Arc<dyn PubSub>> + Send + Sync {
    move |consumer_id| {
        let extra = extra.clone();
        async move { Arc::new(open_with(&consumer_id, extra).await) as Arc<dyn PubSub> }.boxed()
    }
}

#[tokio::test]
async fn passes_the_shared_suite() {
    // Default settings: parallel handlers (no order promised) and a refused message is
    // nacked without requeueing, so it does not come back.
    conformance::run_all(
        &opener(json!({})),
        Expectations {
            ordered: false,
            carries_content_type: false,
            redelivery: None,
            delivers_earlier_messages: false,
            consumer_groups: true,
        },
    )
    .await;
}

#[tokio::test]
async fn single_concurrency_keeps_order_and_requeueing_redelivers() {
    let expectations = Expectations {
        ordered: true,
        carries_content_type: false,
        redelivery: Some(Duration::from_secs(1)),
        delivers_earlier_messages: false,
        consumer_groups: true,
    };
    let single = opener(json!({"concurrencyMode": "single"}));
    let requeue = opener(json!({"requeueInFailure": "true"}));
    futures::join!(
        conformance::ordering(&single, expectations),
        conformance::redelivery(&requeue, expectations),
    );
}

#[tokio::test]
async fn declares_upstreams_names_and_durability() {
    let consumer_id = unique("names");
    let topic = unique("topic");
    let queue = format!("{consumer_id}-{topic}");
    let broker = open_with(&consumer_id, json!({})).await;
    let (handler, _receiver) = forward(false);
    let running = broker
        .subscribe(subscription(&topic), handler)
        .await
        .unwrap();

    let classic = || {
        let mut arguments = FieldTable::default();
        arguments.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("classic".into()),
        );
        arguments
    };
    assert!(exchange_matches(&topic, ExchangeKind::Fanout, true, true).await);
    assert!(!exchange_matches(&topic, ExchangeKind::Fanout, false, true).await);
    assert!(!exchange_matches(&topic, ExchangeKind::Topic, true, true).await);
    assert!(queue_matches(&queue, true, true, classic()).await);
    assert!(!queue_matches(&queue, false, true, classic()).await);
    assert!(!queue_matches(&queue, true, false, classic()).await);
    assert!(!queue_exists(&format!("dlq-{queue}")).await);

    // deletedWhenUnused (default true): the queue goes with its last consumer.
    running.unsubscribe().await;
    broker.close().await.unwrap();
    assert!(!queue_exists(&queue).await);
}

#[tokio::test]
async fn honours_durable_exchange_kind_queue_name_and_routing_keys() {
    let topic = unique("routed");
    let queue = unique("named-queue");
    let broker = open_with(
        "unused",
        json!({"durable": "false", "deletedWhenUnused": "false", "exchangeKind": "direct", "maxLen": 5}),
    )
    .await;
    let (handler, mut receiver) = forward(false);
    let mut request = subscription(&topic);
    request.metadata.insert("queueName".into(), queue.clone());
    request
        .metadata
        .insert("routingKey".into(), "red,green".into());
    let running = broker.subscribe(request, handler).await.unwrap();

    let mut arguments = FieldTable::default();
    arguments.insert("x-max-length".into(), AMQPValue::LongLongInt(5));
    arguments.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("classic".into()),
    );
    assert!(queue_matches(&queue, false, false, arguments).await);
    assert!(exchange_matches(&topic, ExchangeKind::Direct, false, false).await);

    for (key, data) in [("blue", &b"blue"[..]), ("green", b"green"), ("red", b"red")] {
        let mut message = request_with(&topic, data);
        message.metadata.insert("routingKey".into(), key.into());
        broker.publish(message).await.unwrap();
    }
    let mut received = vec![
        next(&mut receiver).await.data,
        next(&mut receiver).await.data,
    ];
    received.sort();
    assert_eq!(
        received,
        vec![Bytes::from_static(b"green"), Bytes::from_static(b"red")]
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        receiver.try_recv().is_err(),
        "an unbound routing key is not delivered"
    );

    running.unsubscribe().await;
    broker.close().await.unwrap();
    let (connection, channel) = raw_channel().await;
    channel
        .queue_delete(
            queue.as_str().into(),
            lapin::options::QueueDeleteOptions::default(),
        )
        .await
        .unwrap();
    channel
        .exchange_delete(
            topic.as_str().into(),
            lapin::options::ExchangeDeleteOptions::default(),
        )
        .await
        .unwrap();
    let _ = connection.close(200, "OK".into()).await;
}

fn request_with(topic: &str, data: &[u8]) -> PublishRequest {
    PublishRequest {
        topic: topic.to_owned(),
        data: Bytes::copy_from_slice(data),
        ..PublishRequest::default()
    }
}

#[tokio::test]
async fn a_refused_message_is_dropped_without_requeue_and_dead_lettered_when_enabled() {
    // Without requeueInFailure and without a dead letter queue it is gone.
    let topic = unique("dropped");
    let broker = open_with(&unique("drop"), json!({})).await;
    let (handler, mut receiver) = forward(true);
    let running = broker
        .subscribe(subscription(&topic), handler.clone())
        .await
        .unwrap();
    broker.publish(request(&topic, b"refused")).await.unwrap();
    assert_eq!(
        next(&mut receiver).await.data,
        Bytes::from_static(b"refused")
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(handler.calls.load(Ordering::SeqCst), 1, "not requeued");
    running.unsubscribe().await;
    broker.close().await.unwrap();

    // With enableDeadLetter it lands in dlq-<queue> through dlx-<queue>.
    let consumer_id = unique("dead");
    let topic = unique("dead-lettered");
    let queue = format!("{consumer_id}-{topic}");
    let broker = open_with(
        &consumer_id,
        json!({"enableDeadLetter": "true", "deletedWhenUnused": "false"}),
    )
    .await;
    let (handler, mut receiver) = forward(true);
    let running = broker
        .subscribe(subscription(&topic), handler.clone())
        .await
        .unwrap();
    let mut lazy = FieldTable::default();
    lazy.insert("x-queue-mode".into(), AMQPValue::LongString("lazy".into()));
    assert!(queue_matches(&format!("dlq-{queue}"), true, false, lazy).await);
    assert!(exchange_matches(&format!("dlx-{queue}"), ExchangeKind::Fanout, true, false).await);
    broker
        .publish(request(&topic, b"to the dead letters"))
        .await
        .unwrap();
    assert_eq!(
        next(&mut receiver).await.data,
        Bytes::from_static(b"to the dead letters")
    );
    running.unsubscribe().await;
    let deadline = Instant::now() + DEADLINE;
    let dead = loop {
        let dead = drain(&format!("dlq-{queue}")).await;
        if !dead.is_empty() || Instant::now() > deadline {
            break dead;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].0, Bytes::from_static(b"to the dead letters"));
    assert_eq!(handler.calls.load(Ordering::SeqCst), 1);
    broker.close().await.unwrap();
    let (connection, channel) = raw_channel().await;
    for name in [queue.clone(), format!("dlq-{queue}")] {
        channel
            .queue_delete(
                name.as_str().into(),
                lapin::options::QueueDeleteOptions::default(),
            )
            .await
            .unwrap();
    }
    let _ = connection.close(200, "OK".into()).await;
}

#[tokio::test]
async fn messages_expire_by_their_own_ttl_or_the_components() {
    let consumer_id = unique("ttl");
    let topic = unique("ttl-topic");
    let queue = format!("{consumer_id}-{topic}");
    let broker = open_with(&consumer_id, json!({"deletedWhenUnused": "false"})).await;
    let defaulted = open_with(
        &consumer_id,
        json!({"ttlInSeconds": "1", "deletedWhenUnused": "false"}),
    )
    .await;
    let (handler, _receiver) = forward(false);
    // Declare the queue, then stop consuming so messages wait in it.
    broker
        .subscribe(subscription(&topic), handler)
        .await
        .unwrap()
        .unsubscribe()
        .await;

    let mut short = request(&topic, b"short");
    short.metadata.insert("ttlInSeconds".into(), "1".into());
    broker.publish(short).await.unwrap();
    broker.publish(request(&topic, b"kept")).await.unwrap();
    defaulted
        .publish(request(&topic, b"component ttl"))
        .await
        .unwrap();
    let mut own = request(&topic, b"kept by its own ttl");
    own.metadata.insert("ttl".into(), "1m".into());
    defaulted.publish(own).await.unwrap();

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let left = drain(&queue).await;
    assert_eq!(
        left,
        vec![
            (Bytes::from_static(b"kept"), None),
            (
                Bytes::from_static(b"kept by its own ttl"),
                Some("60000".to_owned())
            ),
        ]
    );
    broker.close().await.unwrap();
    defaulted.close().await.unwrap();
    let (connection, channel) = raw_channel().await;
    channel
        .queue_delete(
            queue.as_str().into(),
            lapin::options::QueueDeleteOptions::default(),
        )
        .await
        .unwrap();
    let _ = connection.close(200, "OK".into()).await;
}

#[tokio::test]
async fn unsubscribe_waits_for_handlers_and_settles_their_messages() {
    struct Slow(AtomicUsize);
    #[async_trait::async_trait]
    impl MessageHandler for Slow {
        async fn handle(&self, _message: Message) -> Result<(), NotAcknowledged> {
            tokio::time::sleep(Duration::from_millis(300)).await;
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }
    let consumer_id = unique("slow");
    let topic = unique("slow-topic");
    let queue = format!("{consumer_id}-{topic}");
    let broker = open_with(
        &consumer_id,
        json!({"deletedWhenUnused": "false", "prefetchCount": 2}),
    )
    .await;
    let handler = Arc::new(Slow(AtomicUsize::new(0)));
    let running = broker
        .subscribe(subscription(&topic), handler.clone())
        .await
        .unwrap();
    for data in [&b"one"[..], b"two", b"three", b"four"] {
        broker.publish(request_with(&topic, data)).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    running.unsubscribe().await;
    let handled = handler.0.load(Ordering::SeqCst);
    assert_eq!(
        handled, 2,
        "the prefetched deliveries were handled to the end"
    );
    // The handled ones were acknowledged; the rest wait in the queue.
    let left = drain(&queue).await;
    assert_eq!(left.len(), 4 - handled);
    broker.close().await.unwrap();
    let (connection, channel) = raw_channel().await;
    channel
        .queue_delete(
            queue.as_str().into(),
            lapin::options::QueueDeleteOptions::default(),
        )
        .await
        .unwrap();
    let _ = connection.close(200, "OK".into()).await;
}

/// A TCP relay to the broker whose connections can be cut, as a broker restart cuts them
/// (the `bindings.rabbitmq` tests use it too).
pub(crate) struct Relay {
    /// The port the relay listens on.
    pub(crate) port: u16,
    cut: tokio::sync::watch::Sender<u64>,
}

impl Relay {
    pub(crate) async fn start(target: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (cut, watcher) = tokio::sync::watch::channel(0u64);
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let mut watcher = watcher.clone();
                watcher.mark_unchanged();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(("127.0.0.1", target)).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = watcher.changed() => {}
                    }
                });
            }
        });
        Self { port, cut }
    }

    pub(crate) fn cut_connections(&self) {
        self.cut.send_modify(|generation| *generation += 1);
    }
}

#[tokio::test]
async fn reconnects_after_losing_the_broker() {
    let server = RabbitMq::shared().await.unwrap();
    let relay = Relay::start(server.port()).await;
    let broker = open(&properties(json!({
        "connectionString": format!("amqp://guest:guest@127.0.0.1:{}", relay.port),
        "consumerID": unique("reconnect"),
        "reconnectWaitSeconds": "1",
    })))
    .await
    .unwrap();
    let topic = unique("reconnect-topic");
    let (handler, mut receiver) = forward(false);
    let running = broker
        .subscribe(subscription(&topic), handler)
        .await
        .unwrap();
    broker.publish(request(&topic, b"before")).await.unwrap();
    assert_eq!(
        next(&mut receiver).await.data,
        Bytes::from_static(b"before")
    );

    relay.cut_connections();
    // Publishing reconnects by itself; the subscription comes back after its wait.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut attempt = 0;
    let received = loop {
        assert!(
            Instant::now() < deadline,
            "no delivery after the connection was lost"
        );
        attempt += 1;
        let _ = broker
            .publish(request_with(&topic, format!("after {attempt}").as_bytes()))
            .await;
        if let Ok(Some(message)) =
            tokio::time::timeout(Duration::from_millis(500), receiver.recv()).await
        {
            break message;
        }
    };
    assert!(received.data.starts_with(b"after"));
    broker.ping().await.unwrap();
    running.unsubscribe().await;
    broker.close().await.unwrap();
    assert!(matches!(
        broker.publish(request(&topic, b"closed")).await,
        Err(PubSubError::Closed)
    ));
}

#[tokio::test]
async fn a_subscription_without_consumer_id_or_with_bad_metadata_is_refused() {
    let broker = open_with("", json!({})).await;
    let (handler, _receiver) = forward(false);
    let refused = broker.subscribe(subscription("t"), handler.clone()).await;
    assert!(matches!(refused, Err(PubSubError::InvalidRequest(_))));
    let mut request = subscription("t");
    request.metadata.insert("queueName".into(), unique("q"));
    request
        .metadata
        .insert("queueType".into(), "stream-ish".into());
    let refused = broker.subscribe(request, handler).await;
    assert!(
        matches!(refused, Err(PubSubError::InvalidRequest(reason)) if reason.contains("invalid queue type"))
    );
    let mut invalid_ttl = request_with("t", b"x");
    invalid_ttl
        .metadata
        .insert("ttlInSeconds".into(), "soon".into());
    assert!(matches!(
        broker.publish(invalid_ttl).await,
        Err(PubSubError::InvalidRequest(_))
    ));
    broker.close().await.unwrap();
}

fn settings(value: serde_json::Value) -> Result<Settings, PubSubError> {
    Settings::from_properties(&properties(value))
}

#[test]
fn settings_follow_upstreams_defaults() {
    let settings = settings(json!({"consumerID": "app"})).unwrap();
    assert_eq!(settings.uri.authority.host, "localhost");
    assert_eq!(settings.uri.authority.port, 5672);
    assert_eq!(settings.uri.query.heartbeat, Some(10));
    assert!(settings.durable);
    assert!(settings.delete_when_unused);
    assert!(!settings.auto_ack && !settings.requeue_in_failure && !settings.enable_dead_letter);
    assert_eq!(settings.delivery_mode, 0);
    assert_eq!(settings.prefetch_count, 0);
    assert_eq!(settings.reconnect_wait, Duration::from_secs(3));
    assert_eq!(settings.exchange_kind, ExchangeKind::Fanout);
    assert_eq!(settings.concurrency, super::settings::Concurrency::Parallel);
    assert_eq!(settings.default_ttl, None);
}

#[test]
fn settings_build_the_uri_and_check_values() {
    let built = settings(json!({
        "hostname": "rabbit:5673", "username": "us er", "password": "p@ss", "heartBeat": "30s",
        "reconnectWaitSeconds": "7", "deliveryMode": 2, "prefetchCount": 10, "ttlInSeconds": 5,
    }))
    .unwrap();
    assert_eq!(built.uri.authority.host, "rabbit");
    assert_eq!(built.uri.authority.port, 5673);
    assert_eq!(built.uri.authority.userinfo.username, "us er");
    assert_eq!(built.uri.authority.userinfo.password, "p@ss");
    assert_eq!(built.uri.query.heartbeat, Some(30));
    assert_eq!(built.reconnect_wait, Duration::from_secs(7));
    assert_eq!(built.default_ttl, Some(Duration::from_secs(5)));
    let host = settings(json!({"host": "amqp://h:1"})).unwrap();
    assert_eq!(
        (host.uri.authority.host.as_str(), host.uri.authority.port),
        ("h", 1)
    );
    let refused = [
        json!({"connectionString": "amqp://h", "protocol": "amqps"}),
        json!({"connectionString": "http://h"}),
        json!({"deliveryMode": 3}),
        json!({"prefetchCount": 256}),
        json!({"exchangeKind": "fan"}),
        json!({"concurrencyMode": "Single"}),
        json!({"ttlInSeconds": "-5"}),
        json!({"caCert": "not pem"}),
        json!({"saslExternal": "true"}),
    ];
    for value in refused {
        assert!(
            matches!(
                settings(value.clone()),
                Err(PubSubError::InvalidMetadata(_))
            ),
            "{value} must be refused"
        );
    }
}

#[test]
fn publish_ttl_and_properties_follow_upstream() {
    let settings = settings(json!({"deliveryMode": 2})).unwrap();
    let mut request = request_with("t", b"x");
    request.metadata.insert("TTLInSeconds".into(), "2".into());
    request
        .metadata
        .insert("contenttype".into(), "application/json".into());
    request.metadata.insert("messageID".into(), "m-1".into());
    request.metadata.insert("priority".into(), "300".into());
    let properties = super::publish_properties(&settings, &request).unwrap();
    assert_eq!(
        properties.expiration().as_ref().map(|e| e.as_str()),
        Some("2000")
    );
    assert_eq!(
        properties.content_type().as_ref().map(|c| c.as_str()),
        Some("application/json")
    );
    assert_eq!(
        properties.message_id().as_ref().map(|m| m.as_str()),
        Some("m-1")
    );
    assert_eq!(*properties.priority(), Some(255));
    assert_eq!(*properties.delivery_mode(), Some(2));
    let plain = super::publish_properties(&settings, &request_with("t", b"x")).unwrap();
    assert_eq!(
        plain.content_type().as_ref().map(|c| c.as_str()),
        Some("text/plain")
    );
    assert_eq!(*plain.expiration(), None);
}

//! The behaviour suite every broker's tests run: each check exercises one promise of
//! [`PubSub`] against a live broker and panics with a description when it is broken.
//!
//! Checks open their own broker instances through an [`Open`] closure that takes the
//! `consumerID` to use, so a check can open two instances sharing a consumer group. Every
//! check uses fresh topics named `conformance.<check>.<uuid>` (one prefix, so a broker
//! that needs topics declared up front, like a JetStream stream over `conformance.>`, can
//! cover them all) and a fresh consumer id, so suites for different brokers, or several
//! runs, can share one server.
//!
//! A subscription must be live when `subscribe` returns: messages published afterwards
//! are delivered. Where upstream's brokers legitimately differ, [`Expectations`] says
//! which behaviour a broker promises and the suite checks exactly that one. Waits for
//! deliveries are bounded; the only fixed waits are short quiet periods proving that
//! something did not happen.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::BoxFuture;

use super::{
    Feature, Message, MessageHandler, NotAcknowledged, PubSub, PubSubError, PublishRequest,
    SubscribeRequest, Subscription, TTL_METADATA_KEY,
};

/// How long a message may take to arrive.
const DELIVERY_DEADLINE: Duration = Duration::from_secs(10);
/// How long the suite watches for a delivery that must not happen.
const QUIET: Duration = Duration::from_millis(300);
/// Pause between polls while waiting for deliveries.
const POLL: Duration = Duration::from_millis(10);
/// How many messages the ordering, bulk and consumer-group checks send.
const BATCH: usize = 20;

/// Opens a fresh, initialized broker instance with the given `consumerID`.
pub(crate) type Open<'a> =
    &'a (dyn Fn(String) -> BoxFuture<'static, Arc<dyn PubSub>> + Send + Sync);

/// The behaviours on which upstream's brokers differ, each a promise the suite checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Expectations {
    /// Messages from one publisher on one topic arrive in publish order. When false, the
    /// suite only checks that they all arrive, once each.
    pub ordered: bool,
    /// Messages keep the content type they were published with.
    pub carries_content_type: bool,
    /// A message whose handler failed comes back within this long (at-least-once). `None`
    /// means the broker drops it (upstream's in-memory broker): it must not come back.
    pub redelivery: Option<Duration>,
    /// A new subscription receives messages published to its topic before it subscribed
    /// (a stream or log read from its start). When false, they must not arrive.
    pub delivers_earlier_messages: bool,
    /// Instances opened with one `consumerID` share the work (each message is handled by
    /// one of them) while an instance with another `consumerID` gets every message.
    pub consumer_groups: bool,
}

/// Runs every check that applies to the broker's advertised features, concurrently.
pub(crate) async fn run_all(open: Open<'_>, expectations: Expectations) {
    let probe = open(consumer_id()).await;
    probe.ping().await.unwrap();
    probe.close().await.unwrap();
    futures::join!(
        publish_and_receive(open, expectations),
        ordering(open, expectations),
        redelivery(open, expectations),
        isolation(open),
        unsubscribe(open),
        bulk_publish(open),
        earlier_messages(open, expectations),
        async {
            if expectations.consumer_groups {
                consumer_groups(open).await;
            }
        },
        async {
            if probe.features().contains(&Feature::MessageTtl) {
                ttl(open).await;
            }
        },
    );
}

/// Text, binary and non-UTF-8 payloads arrive byte-identical on the topic they were
/// published to, with their content type when the broker carries it.
pub(crate) async fn publish_and_receive(open: Open<'_>, expectations: Expectations) {
    let broker = open(consumer_id()).await;
    let topic = unique_topic("receive");
    let recorder = Recorder::new();
    let subscription = subscribe(&*broker, &topic, &recorder).await;
    let cases: [(Bytes, Option<&str>); 3] = [
        (
            Bytes::from_static(br#"{"specversion":"1.0","data":{"n":1,"s":"caf\u00e9"}}"#),
            Some("application/cloudevents+json"),
        ),
        ((0..=255u8).collect(), Some("application/octet-stream")),
        (
            Bytes::from_static(&[0xff, 0x00, 0xfe, b'{', 0xc3]),
            Some("text/plain"),
        ),
    ];
    for (data, content_type) in &cases {
        broker
            .publish(PublishRequest {
                topic: topic.clone(),
                data: data.clone(),
                metadata: HashMap::new(),
                content_type: content_type.map(str::to_owned),
            })
            .await
            .unwrap();
    }
    recorder.wait_for_count(cases.len(), &topic).await;
    for (data, content_type) in &cases {
        let delivered = recorder.deliveries_of(data);
        assert_eq!(
            delivered.len(),
            1,
            "{topic}: payload {data:?} must arrive exactly once"
        );
        let message = &delivered[0];
        assert_eq!(message.topic, topic, "a message carries its topic");
        if expectations.carries_content_type {
            assert_eq!(
                message.content_type.as_deref(),
                *content_type,
                "{topic}: the content type must survive"
            );
        }
    }
    finish(&*broker, subscription).await;
}

/// Messages from one publisher arrive once each, in publish order where the broker
/// orders them.
pub(crate) async fn ordering(open: Open<'_>, expectations: Expectations) {
    let broker = open(consumer_id()).await;
    let topic = unique_topic("ordering");
    let recorder = Recorder::new();
    let subscription = subscribe(&*broker, &topic, &recorder).await;
    let sent = numbered("ordered", BATCH);
    for data in &sent {
        publish(&*broker, &topic, data.clone()).await;
    }
    recorder.wait_for_count(sent.len(), &topic).await;
    tokio::time::sleep(QUIET).await;
    let mut received = recorder.payloads();
    if !expectations.ordered {
        received.sort();
    }
    assert_eq!(received, sent, "{topic}: every message once, in order");
    finish(&*broker, subscription).await;
}

/// A message whose handler failed comes back (or, for a broker that does not redeliver,
/// never does); an acknowledged message is not delivered again.
pub(crate) async fn redelivery(open: Open<'_>, expectations: Expectations) {
    let broker = open(consumer_id()).await;
    let topic = unique_topic("redelivery");
    let refused = Bytes::from_static(b"refused the first time");
    let accepted = Bytes::from_static(b"accepted at once");
    let recorder = Recorder {
        refuse_first: vec![refused.clone()],
        ..Recorder::default()
    };
    let recorder = Arc::new(recorder);
    let subscription = subscribe(&*broker, &topic, &recorder).await;
    publish(&*broker, &topic, refused.clone()).await;
    publish(&*broker, &topic, accepted.clone()).await;
    let expected_refused = match expectations.redelivery {
        Some(within) => {
            let deadline = within + DELIVERY_DEADLINE;
            recorder
                .wait_until(deadline, "the refused message to come back", |deliveries| {
                    count(deliveries, &refused) >= 2 && count(deliveries, &accepted) >= 1
                })
                .await;
            2
        }
        None => {
            recorder.wait_for_count(2, &topic).await;
            1
        }
    };
    tokio::time::sleep(QUIET).await;
    let deliveries = recorder.deliveries();
    assert_eq!(
        count(&deliveries, &refused),
        expected_refused,
        "{topic}: a refused message is delivered {expected_refused} times in all"
    );
    assert_eq!(
        count(&deliveries, &accepted),
        1,
        "{topic}: an acknowledged message is not delivered again"
    );
    finish(&*broker, subscription).await;
}

/// Two subscriptions on different topics each get only their own topic's messages.
pub(crate) async fn isolation(open: Open<'_>) {
    let broker = open(consumer_id()).await;
    let first_topic = unique_topic("isolation-a");
    let second_topic = unique_topic("isolation-b");
    let first = Recorder::new();
    let second = Recorder::new();
    let first_subscription = subscribe(&*broker, &first_topic, &first).await;
    let second_subscription = subscribe(&*broker, &second_topic, &second).await;
    publish(&*broker, &first_topic, Bytes::from_static(b"for a")).await;
    publish(&*broker, &second_topic, Bytes::from_static(b"for b")).await;
    first.wait_for_count(1, &first_topic).await;
    second.wait_for_count(1, &second_topic).await;
    tokio::time::sleep(QUIET).await;
    for (recorder, topic, data) in [
        (&first, &first_topic, &b"for a"[..]),
        (&second, &second_topic, &b"for b"[..]),
    ] {
        let deliveries = recorder.deliveries();
        assert_eq!(deliveries.len(), 1, "{topic} only gets its own message");
        assert_eq!(deliveries[0].data, data);
        assert_eq!(&deliveries[0].topic, topic);
    }
    first_subscription.unsubscribe().await;
    finish(&*broker, second_subscription).await;
}

/// `unsubscribe` waits for the handler in progress, and nothing arrives afterwards.
pub(crate) async fn unsubscribe(open: Open<'_>) {
    let broker = open(consumer_id()).await;
    let topic = unique_topic("unsubscribe");
    let recorder = Arc::new(Recorder {
        delay: Duration::from_millis(400),
        ..Recorder::default()
    });
    let subscription = subscribe(&*broker, &topic, &recorder).await;
    publish(&*broker, &topic, Bytes::from_static(b"slow")).await;
    recorder.wait_for_count(1, &topic).await;
    subscription.unsubscribe().await;
    let started = recorder.started.load(Ordering::SeqCst);
    assert!(started >= 1);
    assert_eq!(
        recorder.finished.load(Ordering::SeqCst),
        started,
        "{topic}: unsubscribe must wait for the handler in progress"
    );
    publish(&*broker, &topic, Bytes::from_static(b"after unsubscribe")).await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(
        recorder.payloads(),
        vec![Bytes::from_static(b"slow")],
        "{topic}: nothing is delivered after unsubscribe"
    );
    broker.close().await.unwrap();
}

/// `bulk_publish` reports no failures and every entry arrives once.
pub(crate) async fn bulk_publish(open: Open<'_>) {
    let broker = open(consumer_id()).await;
    let topic = unique_topic("bulk");
    let recorder = Recorder::new();
    let subscription = subscribe(&*broker, &topic, &recorder).await;
    let sent = numbered("bulk", BATCH);
    let requests = sent
        .iter()
        .map(|data| PublishRequest {
            topic: topic.clone(),
            data: data.clone(),
            metadata: HashMap::new(),
            content_type: Some("text/plain".to_owned()),
        })
        .collect();
    let failed = broker.bulk_publish(requests).await;
    assert!(
        failed.is_empty(),
        "{topic}: bulk publish failed: {failed:?}"
    );
    recorder.wait_for_count(sent.len(), &topic).await;
    tokio::time::sleep(QUIET).await;
    let mut received = recorder.payloads();
    received.sort();
    assert_eq!(received, sent, "{topic}: every bulk entry once");
    finish(&*broker, subscription).await;
}

/// A message published before anyone subscribed reaches a later subscription only on a
/// broker that keeps its topics' history.
pub(crate) async fn earlier_messages(open: Open<'_>, expectations: Expectations) {
    let broker = open(consumer_id()).await;
    let topic = unique_topic("earlier");
    let early = Bytes::from_static(b"published before subscribing");
    let marker = Bytes::from_static(b"published after subscribing");
    publish(&*broker, &topic, early.clone()).await;
    let recorder = Recorder::new();
    let subscription = subscribe(&*broker, &topic, &recorder).await;
    publish(&*broker, &topic, marker.clone()).await;
    if expectations.delivers_earlier_messages {
        recorder
            .wait_until(DELIVERY_DEADLINE, "both messages", |deliveries| {
                count(deliveries, &early) == 1 && count(deliveries, &marker) == 1
            })
            .await;
    } else {
        recorder.wait_for_count(1, &topic).await;
        tokio::time::sleep(QUIET).await;
        assert_eq!(
            recorder.payloads(),
            vec![marker],
            "{topic}: a message published before subscribing is not delivered"
        );
    }
    finish(&*broker, subscription).await;
}

/// Two instances sharing a `consumerID` handle each message once between them; an
/// instance with another `consumerID` gets every message.
pub(crate) async fn consumer_groups(open: Open<'_>) {
    let group = consumer_id();
    let first = open(group.clone()).await;
    let second = open(group).await;
    let other = open(consumer_id()).await;
    let topic = unique_topic("groups");
    let recorders: Vec<_> = (0..3)
        .map(|_| {
            Arc::new(Recorder {
                delay: Duration::from_millis(5),
                ..Recorder::default()
            })
        })
        .collect();
    let mut subscriptions = Vec::new();
    for (broker, recorder) in [&first, &second, &other].into_iter().zip(&recorders) {
        subscriptions.push(subscribe(&**broker, &topic, recorder).await);
    }
    let sent = numbered("grouped", BATCH);
    for data in &sent {
        publish(&*first, &topic, data.clone()).await;
    }
    let deadline = Instant::now() + DELIVERY_DEADLINE;
    let shared = || {
        let mut payloads = recorders[0].payloads();
        payloads.extend(recorders[1].payloads());
        payloads.sort();
        payloads
    };
    while shared().len() < sent.len() || recorders[2].deliveries().len() < sent.len() {
        assert!(
            Instant::now() < deadline,
            "{topic}: every message must reach both consumer groups"
        );
        tokio::time::sleep(POLL).await;
    }
    tokio::time::sleep(QUIET).await;
    assert_eq!(
        shared(),
        sent,
        "{topic}: instances sharing a consumer group handle each message once"
    );
    let mut separate = recorders[2].payloads();
    separate.sort();
    assert_eq!(
        separate, sent,
        "{topic}: another consumer group gets every message"
    );
    for subscription in subscriptions {
        subscription.unsubscribe().await;
    }
    for broker in [first, second, other] {
        broker.close().await.unwrap();
    }
}

/// A broker that advertises `MESSAGE_TTL` refuses a TTL that is not a whole number and
/// delivers a message with a valid one.
pub(crate) async fn ttl(open: Open<'_>) {
    let broker = open(consumer_id()).await;
    let topic = unique_topic("ttl");
    let with_ttl = |ttl: &str| PublishRequest {
        topic: topic.clone(),
        data: Bytes::from(format!("ttl {ttl}")),
        metadata: HashMap::from([(TTL_METADATA_KEY.to_owned(), ttl.to_owned())]),
        content_type: None,
    };
    let refused = broker.publish(with_ttl("soon")).await;
    assert!(
        matches!(refused, Err(PubSubError::InvalidRequest(_))),
        "an invalid ttlInSeconds must be refused as an invalid request: {refused:?}"
    );
    let recorder = Recorder::new();
    let subscription = subscribe(&*broker, &topic, &recorder).await;
    broker.publish(with_ttl("60")).await.unwrap();
    recorder.wait_for_count(1, &topic).await;
    assert_eq!(recorder.payloads(), vec![Bytes::from_static(b"ttl 60")]);
    finish(&*broker, subscription).await;
}

/// A handler that records every delivery, optionally taking its time or refusing the
/// first delivery of some payloads.
#[derive(Default)]
struct Recorder {
    /// Every delivery, in arrival order.
    deliveries: Mutex<Vec<Message>>,
    /// Payloads whose first delivery is refused.
    refuse_first: Vec<Bytes>,
    /// How long each delivery takes to handle.
    delay: Duration,
    /// Handlings begun.
    started: AtomicUsize,
    /// Handlings completed.
    finished: AtomicUsize,
}

impl Recorder {
    fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn deliveries(&self) -> Vec<Message> {
        self.deliveries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn payloads(&self) -> Vec<Bytes> {
        self.deliveries()
            .into_iter()
            .map(|message| message.data)
            .collect()
    }

    fn deliveries_of(&self, data: &Bytes) -> Vec<Message> {
        self.deliveries()
            .into_iter()
            .filter(|message| message.data == *data)
            .collect()
    }

    async fn wait_for_count(&self, expected: usize, topic: &str) {
        self.wait_until(
            DELIVERY_DEADLINE,
            &format!("{expected} deliveries on {topic}"),
            |deliveries| deliveries.len() >= expected,
        )
        .await;
    }

    async fn wait_until(&self, within: Duration, what: &str, done: impl Fn(&[Message]) -> bool) {
        let deadline = Instant::now() + within;
        loop {
            let deliveries = self.deliveries();
            if done(&deliveries) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {within:?} waiting for {what}; delivered so far: {:?}",
                tally(&deliveries)
            );
            tokio::time::sleep(POLL).await;
        }
    }
}

#[async_trait::async_trait]
impl MessageHandler for Recorder {
    async fn handle(&self, message: Message) -> Result<(), NotAcknowledged> {
        self.started.fetch_add(1, Ordering::SeqCst);
        let refuse = {
            let mut deliveries = self
                .deliveries
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let first = count(&deliveries, &message.data) == 0;
            let refuse = first && self.refuse_first.contains(&message.data);
            deliveries.push(message);
            refuse
        };
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        self.finished.fetch_add(1, Ordering::SeqCst);
        if refuse {
            Err(NotAcknowledged(
                "refused by the conformance suite".to_owned(),
            ))
        } else {
            Ok(())
        }
    }
}

fn count(deliveries: &[Message], data: &Bytes) -> usize {
    deliveries
        .iter()
        .filter(|message| message.data == *data)
        .count()
}

/// Payload -> times delivered, readable in failure messages.
fn tally(deliveries: &[Message]) -> BTreeMap<String, usize> {
    let mut tally = BTreeMap::new();
    for message in deliveries {
        *tally
            .entry(String::from_utf8_lossy(&message.data).into_owned())
            .or_default() += 1;
    }
    tally
}

fn numbered(label: &str, n: usize) -> Vec<Bytes> {
    (0..n)
        .map(|index| Bytes::from(format!("{label}-{index:03}")))
        .collect()
}

fn unique_topic(check: &str) -> String {
    format!("conformance.{check}.{}", uuid::Uuid::new_v4().simple())
}

fn consumer_id() -> String {
    format!("conformance-{}", uuid::Uuid::new_v4().simple())
}

async fn publish(broker: &dyn PubSub, topic: &str, data: Bytes) {
    broker
        .publish(PublishRequest {
            topic: topic.to_owned(),
            data,
            metadata: HashMap::new(),
            content_type: None,
        })
        .await
        .unwrap_or_else(|error| panic!("publish to {topic} failed: {error}"));
}

async fn subscribe(broker: &dyn PubSub, topic: &str, recorder: &Arc<Recorder>) -> Subscription {
    broker
        .subscribe(
            SubscribeRequest {
                topic: topic.to_owned(),
                metadata: HashMap::new(),
            },
            recorder.clone(),
        )
        .await
        .unwrap_or_else(|error| panic!("subscribe to {topic} failed: {error}"))
}

async fn finish(broker: &dyn PubSub, subscription: Subscription) {
    subscription.unsubscribe().await;
    broker.close().await.unwrap();
}

//! `pubsub.jetstream` against a real `nats-server` with JetStream: the shared behaviour
//! suite plus what is particular to JetStream (durable consumers, NAK and `maxDeliver`,
//! deliver groups, deduplication, parallel delivery).
//!
//! Each test creates the stream its topics need, as upstream's documentation tells users
//! to do before using the component.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dapr_testkit::servers::Nats;
use futures::FutureExt;
use serde_json::json;

use super::*;
use crate::pubsub::conformance::{self, Expectations};
use crate::pubsub::{Message, NotAcknowledged};

const DEADLINE: Duration = Duration::from_secs(10);
const QUIET: Duration = Duration::from_millis(500);

/// Starts NATS and creates a stream named `name` over `subjects`.
async fn server_with_stream(name: &str, subjects: &[&str]) -> Nats {
    let nats = Nats::start().await.unwrap();
    let client = async_nats::connect(nats.url()).await.unwrap();
    jetstream::new(client)
        .create_stream(jetstream::stream::Config {
            name: name.to_owned(),
            subjects: subjects
                .iter()
                .map(|subject| (*subject).to_owned())
                .collect(),
            ..Default::default()
        })
        .await
        .unwrap();
    nats
}

async fn open_with(nats: &Nats, extra: serde_json::Value) -> JetStreamPubSub {
    let mut settings = json!({"natsURL": nats.url()});
    if let (Some(settings), serde_json::Value::Object(extra)) = (settings.as_object_mut(), extra) {
        settings.extend(extra);
    }
    open(&Properties::from_json(&settings).unwrap())
        .await
        .unwrap()
}

/// Records deliveries; refuses the first `refusals` deliveries of every payload.
#[derive(Default)]
struct Recorder {
    deliveries: Mutex<Vec<(Message, Instant)>>,
    refusals: usize,
    delay: Duration,
    running: AtomicUsize,
    most_running: AtomicUsize,
}

impl Recorder {
    fn refusing(refusals: usize) -> Arc<Self> {
        Arc::new(Self {
            refusals,
            ..Self::default()
        })
    }

    fn payloads(&self) -> Vec<Bytes> {
        let deliveries = self.deliveries.lock().unwrap();
        deliveries
            .iter()
            .map(|(message, _)| message.data.clone())
            .collect()
    }

    fn times(&self) -> Vec<Instant> {
        let deliveries = self.deliveries.lock().unwrap();
        deliveries.iter().map(|(_, at)| *at).collect()
    }

    async fn wait_for(&self, count: usize) {
        let deadline = Instant::now() + DEADLINE;
        while self.payloads().len() < count {
            assert!(
                Instant::now() < deadline,
                "waited for {count} deliveries, got {:?}",
                self.payloads()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[async_trait::async_trait]
impl MessageHandler for Recorder {
    async fn handle(&self, message: Message) -> Result<(), NotAcknowledged> {
        let running = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_running.fetch_max(running, Ordering::SeqCst);
        let earlier = {
            let mut deliveries = self.deliveries.lock().unwrap();
            let earlier = deliveries
                .iter()
                .filter(|(seen, _)| seen.data == message.data)
                .count();
            deliveries.push((message, Instant::now()));
            earlier
        };
        tokio::time::sleep(self.delay).await;
        self.running.fetch_sub(1, Ordering::SeqCst);
        if earlier < self.refusals {
            Err(NotAcknowledged("refused by the test".into()))
        } else {
            Ok(())
        }
    }
}

async fn publish(broker: &JetStreamPubSub, topic: &str, data: &'static str) {
    broker
        .publish(PublishRequest {
            topic: topic.to_owned(),
            data: Bytes::from_static(data.as_bytes()),
            ..Default::default()
        })
        .await
        .unwrap();
}

async fn try_subscribe(
    broker: &JetStreamPubSub,
    recorder: &Arc<Recorder>,
    topic: &str,
) -> Result<Subscription, PubSubError> {
    broker
        .subscribe(
            SubscribeRequest {
                topic: topic.to_owned(),
                metadata: HashMap::new(),
            },
            recorder.clone(),
        )
        .await
}

async fn subscribe(
    broker: &JetStreamPubSub,
    topic: &str,
    recorder: &Arc<Recorder>,
) -> Subscription {
    try_subscribe(broker, recorder, topic).await.unwrap()
}

#[tokio::test]
async fn conformance_suite() {
    let nats = server_with_stream("conformance", &["conformance.>"]).await;
    let url = nats.url();
    // Upstream's component ignores `consumerID`: every subscription gets its own
    // ephemeral consumer, so there are no consumer groups to check here (deliver groups
    // are checked below).
    let open_broker = move |_consumer_id: String| {
        let settings = json!({"natsURL": url});
        async move {
            let properties = Properties::from_json(&settings).unwrap();
            Arc::new(open(&properties).await.unwrap()) as Arc<dyn PubSub>
        }
        .boxed()
    };
    conformance::run_all(
        &open_broker,
        Expectations {
            ordered: true,
            carries_content_type: false,
            redelivery: Some(Duration::from_secs(1)),
            delivers_earlier_messages: true,
            consumer_groups: false,
        },
    )
    .await;
}

#[tokio::test]
async fn a_durable_consumer_resumes_where_it_left_off() {
    let nats = server_with_stream("orders", &["orders.>"]).await;
    let broker = open_with(&nats, json!({"durableName": "billing"})).await;
    let first = Arc::new(Recorder::default());
    let subscription = subscribe(&broker, "orders.created", &first).await;
    publish(&broker, "orders.created", "one").await;
    first.wait_for(1).await;
    subscription.unsubscribe().await;

    publish(&broker, "orders.created", "two").await;
    publish(&broker, "orders.created", "three").await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(first.payloads(), vec![Bytes::from_static(b"one")]);

    // A new instance with the same durable name picks up the messages published meanwhile.
    let again = open_with(&nats, json!({"durableName": "billing"})).await;
    let second = Arc::new(Recorder::default());
    let subscription = subscribe(&again, "orders.created", &second).await;
    second.wait_for(2).await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(
        second.payloads(),
        vec![Bytes::from_static(b"two"), Bytes::from_static(b"three")]
    );
    subscription.unsubscribe().await;
    broker.close().await.unwrap();
    again.close().await.unwrap();
}

#[tokio::test]
async fn a_refused_message_is_redelivered_after_the_ack_wait() {
    let nats = server_with_stream("refusals", &["refusals.>"]).await;
    let broker = open_with(&nats, json!({"ackWait": "1s"})).await;
    let recorder = Recorder::refusing(1);
    let subscription = subscribe(&broker, "refusals.once", &recorder).await;
    publish(&broker, "refusals.once", "retry me").await;
    recorder.wait_for(2).await;
    let times = recorder.times();
    // The NAK asks for a delay of `ackWait` before the redelivery.
    assert!(
        times[1] - times[0] >= Duration::from_millis(900),
        "redelivered after {:?}",
        times[1] - times[0]
    );
    tokio::time::sleep(QUIET).await;
    assert_eq!(recorder.payloads().len(), 2, "accepted the second time");
    subscription.unsubscribe().await;
    broker.close().await.unwrap();
}

#[tokio::test]
async fn max_deliver_stops_redelivery() {
    let nats = server_with_stream("poison", &["poison.>"]).await;
    let broker = open_with(&nats, json!({"maxDeliver": 3})).await;
    let recorder = Recorder::refusing(usize::MAX);
    let subscription = subscribe(&broker, "poison.pill", &recorder).await;
    publish(&broker, "poison.pill", "never accepted").await;
    recorder.wait_for(3).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(recorder.payloads().len(), 3, "delivered maxDeliver times");
    subscription.unsubscribe().await;
    broker.close().await.unwrap();
}

#[tokio::test]
async fn instances_in_one_queue_group_share_the_messages() {
    let nats = server_with_stream("work", &["work.>"]).await;
    let settings = json!({"durableName": "workers", "queueGroupName": "workers"});
    let first = open_with(&nats, settings.clone()).await;
    let second = open_with(&nats, settings).await;
    let recorders = [Arc::new(Recorder::default()), Arc::new(Recorder::default())];
    let subscriptions = [
        subscribe(&first, "work.items", &recorders[0]).await,
        subscribe(&second, "work.items", &recorders[1]).await,
    ];
    let sent: Vec<String> = (0..40).map(|n| format!("item-{n:02}")).collect();
    for data in &sent {
        first
            .publish(PublishRequest {
                topic: "work.items".into(),
                data: Bytes::from(data.clone()),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let deadline = Instant::now() + DEADLINE;
    let received = || {
        let mut all: Vec<Bytes> = recorders.iter().flat_map(|r| r.payloads()).collect();
        all.sort();
        all
    };
    while received().len() < sent.len() {
        assert!(Instant::now() < deadline, "got only {:?}", received());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(QUIET).await;
    let expected: Vec<Bytes> = sent.into_iter().map(Bytes::from).collect();
    assert_eq!(received(), expected, "each message handled once in all");
    for recorder in &recorders {
        assert!(
            !recorder.payloads().is_empty(),
            "both instances take a share"
        );
    }
    for subscription in subscriptions {
        subscription.unsubscribe().await;
    }
    first.close().await.unwrap();
    second.close().await.unwrap();
}

#[tokio::test]
async fn cloud_event_ids_deduplicate_and_the_subject_is_reported() {
    let nats = server_with_stream("events", &["events.>"]).await;
    let broker = open_with(&nats, json!({})).await;
    let recorder = Arc::new(Recorder::default());
    let subscription = subscribe(&broker, "events.>", &recorder).await;
    let event = Bytes::from_static(br#"{"specversion":"1.0","id":"evt-1","data":1}"#);
    for _ in 0..2 {
        broker
            .publish(PublishRequest {
                topic: "events.created".into(),
                data: event.clone(),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    publish(&broker, "events.created", "not a cloud event").await;
    recorder.wait_for(2).await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(
        recorder.payloads(),
        vec![event, Bytes::from_static(b"not a cloud event")]
    );
    let deliveries = recorder.deliveries.lock().unwrap().clone();
    assert_eq!(deliveries[0].0.topic, "events.>");
    assert_eq!(deliveries[0].0.metadata["Topic"], "events.created");
    subscription.unsubscribe().await;
    broker.close().await.unwrap();
}

#[tokio::test]
async fn parallel_delivery_handles_messages_together_and_unsubscribe_waits() {
    let nats = server_with_stream("batch", &["batch.>"]).await;
    let broker = open_with(&nats, json!({"concurrencyMode": "parallel"})).await;
    let recorder = Arc::new(Recorder {
        delay: Duration::from_millis(300),
        ..Recorder::default()
    });
    let subscription = subscribe(&broker, "batch.jobs", &recorder).await;
    for data in ["a", "b", "c", "d"] {
        publish(&broker, "batch.jobs", data).await;
    }
    recorder.wait_for(4).await;
    subscription.unsubscribe().await;
    assert_eq!(
        recorder.running.load(Ordering::SeqCst),
        0,
        "all handlers done"
    );
    assert!(recorder.most_running.load(Ordering::SeqCst) > 1);
    broker.close().await.unwrap();
}

#[tokio::test]
async fn streams_and_servers_must_exist() {
    let nats = server_with_stream("known", &["known.>"]).await;
    let broker = open_with(&nats, json!({})).await;
    let recorder = Arc::new(Recorder::default());
    let missing = try_subscribe(&broker, &recorder, "unknown.topic").await;
    assert!(matches!(missing, Err(PubSubError::Backend(_))));
    let unstored = broker
        .publish(PublishRequest {
            topic: "unknown.topic".into(),
            data: Bytes::from_static(b"x"),
            ..Default::default()
        })
        .await;
    assert!(matches!(unstored, Err(PubSubError::Backend(_))));
    broker.ping().await.unwrap();
    broker.close().await.unwrap();
    assert_eq!(
        publish_closed(&broker).await,
        Err(PubSubError::Closed),
        "a closed broker refuses work"
    );

    let port = nats.port();
    drop(nats);
    let properties =
        Properties::from_json(&json!({"natsURL": format!("nats://127.0.0.1:{port}")})).unwrap();
    assert!(matches!(
        open(&properties).await,
        Err(PubSubError::Backend(_))
    ));
}

async fn publish_closed(broker: &JetStreamPubSub) -> Result<(), PubSubError> {
    broker
        .publish(PublishRequest {
            topic: "known.topic".into(),
            data: Bytes::from_static(b"x"),
            ..Default::default()
        })
        .await
}

#[tokio::test]
async fn an_existing_durable_consumer_must_fit_the_subscription() {
    let nats = server_with_stream("fit", &["fit.>"]).await;
    let broker = open_with(&nats, json!({"durableName": "one", "ackWait": "5s"})).await;
    let recorder = Arc::new(Recorder::default());
    let subscription = subscribe(&broker, "fit.a", &recorder).await;
    // One durable consumer cannot serve a second topic, nor a second plain subscriber.
    let error = try_subscribe(&broker, &recorder, "fit.b")
        .await
        .unwrap_err();
    assert_eq!(error.to_string(), "nats: subject does not match consumer");
    let error = try_subscribe(&broker, &recorder, "fit.a")
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "consumer is already bound to a subscription"
    );
    subscription.unsubscribe().await;
    // Settings that contradict the existing consumer are refused.
    let other = open_with(&nats, json!({"durableName": "one", "ackWait": "9s"})).await;
    let error = try_subscribe(&other, &recorder, "fit.a").await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "nats: consumer name is already in use: creating consumer \"one\" on stream \"fit\""
    );
    let grouped = open_with(&nats, json!({"durableName": "one", "queueGroupName": "g"})).await;
    let error = try_subscribe(&grouped, &recorder, "fit.a")
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "cannot create a queue subscription for a consumer without a deliver group"
    );
    // The same settings bind to it again.
    let subscription = try_subscribe(&broker, &recorder, "fit.a").await.unwrap();
    subscription.unsubscribe().await;
    for broker in [broker, other, grouped] {
        broker.close().await.unwrap();
    }
}

#[test]
fn cloud_event_ids_are_read_from_json_objects_only() {
    assert_eq!(
        cloud_event_id(br#"{"id":"abc","data":1}"#),
        Some("abc".into())
    );
    assert_eq!(cloud_event_id(br#"{"id":7}"#), None);
    assert_eq!(cloud_event_id(b"[1,2]"), None);
    assert_eq!(cloud_event_id(b"\xff"), None);
}

#[test]
fn server_lists_are_split_on_commas() {
    let addresses = server_addresses("nats://a:4222, nats://b:4223").unwrap();
    assert_eq!(addresses.len(), 2);
    assert!(server_addresses("nats://bad url").is_err());
}

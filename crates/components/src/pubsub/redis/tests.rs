//! `pubsub.redis` against a real Redis: the shared behaviour suite, the on-stream layout
//! upstream reads and writes, consumer groups, redelivery and trimming.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dapr_testkit::servers::Redis as RedisServer;
use futures::FutureExt;
use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;
use serde_json::json;

use super::*;
use crate::pubsub::conformance::{self, Expectations};
use crate::pubsub::{Message, NotAcknowledged};

const DEADLINE: Duration = Duration::from_secs(10);

/// An `XRANGE` reply: entry ids with their field/value pairs.
type Entries = Vec<(String, Vec<(String, Vec<u8>)>)>;

fn properties(server: &RedisServer, extra: serde_json::Value) -> Properties {
    let mut settings = json!({
        "redisHost": server.host(),
        "consumerID": "tests",
        "processingTimeout": "300ms",
        "redeliverInterval": "100ms",
    });
    if let (Some(settings), Some(extra)) = (settings.as_object_mut(), extra.as_object()) {
        settings.extend(extra.clone());
    }
    Properties::from_json(&settings).unwrap()
}

async fn raw(server: &RedisServer) -> MultiplexedConnection {
    redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Records deliveries; refuses the first delivery of payloads listed in `refuse_once`.
#[derive(Default)]
struct Recorder {
    deliveries: Mutex<Vec<Message>>,
    refuse_once: Mutex<Vec<Bytes>>,
}

impl Recorder {
    fn deliveries(&self) -> Vec<Message> {
        self.deliveries.lock().unwrap().clone()
    }

    async fn wait_for(&self, count: usize) -> Vec<Message> {
        let started = Instant::now();
        loop {
            let deliveries = self.deliveries();
            if deliveries.len() >= count {
                return deliveries;
            }
            assert!(
                started.elapsed() < DEADLINE,
                "expected {count} deliveries, got {deliveries:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[async_trait::async_trait]
impl MessageHandler for Recorder {
    async fn handle(&self, message: Message) -> Result<(), NotAcknowledged> {
        let refuse = {
            let mut refuse_once = self.refuse_once.lock().unwrap();
            let position = refuse_once.iter().position(|data| *data == message.data);
            position.map(|index| refuse_once.remove(index)).is_some()
        };
        self.deliveries.lock().unwrap().push(message);
        if refuse {
            Err(NotAcknowledged("refused once".into()))
        } else {
            Ok(())
        }
    }
}

fn publish_request(topic: &str, data: &'static [u8]) -> PublishRequest {
    PublishRequest {
        topic: topic.to_owned(),
        data: Bytes::from_static(data),
        metadata: HashMap::new(),
        content_type: None,
    }
}

/// `XADD topic id field value ...` on a raw connection.
async fn xadd(
    connection: &mut MultiplexedConnection,
    topic: &str,
    id: &str,
    fields: &[(&str, &[u8])],
) -> String {
    let mut add = redis::cmd("XADD");
    add.arg(topic).arg(id);
    for (name, value) in fields {
        add.arg(*name).arg(*value);
    }
    add.query_async(connection).await.unwrap()
}

async fn pending_count(connection: &mut MultiplexedConnection, topic: &str, group: &str) -> i64 {
    let summary: Vec<redis::Value> = redis::cmd("XPENDING")
        .arg(topic)
        .arg(group)
        .query_async(connection)
        .await
        .unwrap();
    match summary.first() {
        Some(redis::Value::Int(count)) => *count,
        other => panic!("unexpected XPENDING summary {other:?}"),
    }
}

#[tokio::test]
async fn conformance() {
    let server = Arc::new(RedisServer::start().await.unwrap());
    let opener = move |consumer_id: String| {
        let server = server.clone();
        async move {
            // Longer than the suite's slow handler, which must not be cut short.
            let properties = properties(
                &server,
                json!({"consumerID": consumer_id, "processingTimeout": "1s"}),
            );
            Arc::new(open(&properties).await.unwrap()) as Arc<dyn PubSub>
        }
        .boxed()
    };
    conformance::run_all(
        &opener,
        Expectations {
            ordered: false,
            carries_content_type: false,
            redelivery: Some(Duration::from_millis(1100)),
            delivers_earlier_messages: true,
            consumer_groups: true,
        },
    )
    .await;
}

#[tokio::test]
async fn entries_use_upstreams_fields() {
    let server = RedisServer::start().await.unwrap();
    let broker = open(&properties(&server, json!({}))).await.unwrap();
    let mut request = publish_request("layout", b"{\"hello\":\"world\"}");
    request.metadata = HashMap::from([
        ("b".to_owned(), "<2>".to_owned()),
        ("a".to_owned(), "1".to_owned()),
    ]);
    broker.publish(request).await.unwrap();
    broker
        .publish(publish_request("layout", b"plain"))
        .await
        .unwrap();

    let mut connection = raw(&server).await;
    let entries: Entries = redis::cmd("XRANGE")
        .arg("layout")
        .arg("-")
        .arg("+")
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(
        entries[0].1,
        vec![
            ("data".to_owned(), b"{\"hello\":\"world\"}".to_vec()),
            (
                "metadata".to_owned(),
                br#"{"a":"1","b":"\u003c2\u003e"}"#.to_vec()
            ),
        ]
    );
    assert_eq!(
        entries[1].1,
        vec![
            ("data".to_owned(), b"plain".to_vec()),
            ("metadata".to_owned(), b"{}".to_vec()),
        ]
    );
    assert_eq!(broker.features(), &[] as &[Feature]);
}

#[tokio::test]
async fn entries_written_like_upstream_are_delivered() {
    let server = RedisServer::start().await.unwrap();
    let mut connection = raw(&server).await;
    // Written before anyone subscribed: the group starts at the stream's beginning.
    xadd(
        &mut connection,
        "handwritten",
        "*",
        &[("data", b"first"), ("metadata", br#"{"key":"value"}"#)],
    )
    .await;
    let broker = open(&properties(&server, json!({}))).await.unwrap();
    let recorder = Arc::new(Recorder::default());
    let subscription = broker
        .subscribe(
            SubscribeRequest {
                topic: "handwritten".into(),
                metadata: HashMap::new(),
            },
            recorder.clone(),
        )
        .await
        .unwrap();
    xadd(
        &mut connection,
        "handwritten",
        "*",
        &[("data", b"\xffbinary")],
    )
    .await;
    let deliveries = recorder.wait_for(2).await;
    subscription.unsubscribe().await;

    let first = deliveries
        .iter()
        .find(|message| message.data.as_ref() == b"first")
        .unwrap();
    assert_eq!(first.topic, "handwritten");
    assert_eq!(
        first.metadata,
        HashMap::from([("key".to_owned(), "value".to_owned())])
    );
    let second = deliveries
        .iter()
        .find(|message| message.data.as_ref() == b"\xffbinary")
        .unwrap();
    assert!(second.metadata.is_empty());
    assert_eq!(
        pending_count(&mut connection, "handwritten", "tests").await,
        0
    );

    // The stopped subscription's blocking read is gone: it takes nothing more.
    broker
        .publish(publish_request("handwritten", b"later"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        pending_count(&mut connection, "handwritten", "tests").await,
        0
    );
    assert_eq!(recorder.deliveries().len(), 2);
}

/// Sleeps through its first delivery, then accepts at once.
#[derive(Default)]
struct SlowOnce {
    calls: std::sync::atomic::AtomicUsize,
    finished: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl MessageHandler for SlowOnce {
    async fn handle(&self, _message: Message) -> Result<(), NotAcknowledged> {
        use std::sync::atomic::Ordering::SeqCst;
        if self.calls.fetch_add(1, SeqCst) == 0 {
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        self.finished.fetch_add(1, SeqCst);
        Ok(())
    }
}

#[tokio::test]
async fn handlers_are_cut_off_at_the_processing_timeout_and_redelivered() {
    use std::sync::atomic::Ordering::SeqCst;
    let server = RedisServer::start().await.unwrap();
    let broker = open(&properties(&server, json!({}))).await.unwrap();
    let handler = Arc::new(SlowOnce::default());
    let subscription = broker
        .subscribe(
            SubscribeRequest {
                topic: "slow".into(),
                metadata: HashMap::new(),
            },
            handler.clone(),
        )
        .await
        .unwrap();
    broker.publish(publish_request("slow", b"x")).await.unwrap();
    let started = Instant::now();
    while handler.finished.load(SeqCst) == 0 {
        assert!(started.elapsed() < DEADLINE, "never redelivered");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "the slow first attempt was cut off"
    );
    subscription.unsubscribe().await;
    assert_eq!(handler.calls.load(SeqCst), 2);
    assert_eq!(handler.finished.load(SeqCst), 1);
    let mut connection = raw(&server).await;
    assert_eq!(pending_count(&mut connection, "slow", "tests").await, 0);
}

#[tokio::test]
async fn instances_sharing_a_consumer_id_share_the_messages() {
    let server = RedisServer::start().await.unwrap();
    let first = open(&properties(&server, json!({}))).await.unwrap();
    let second = open(&properties(&server, json!({}))).await.unwrap();
    let recorders = [Arc::new(Recorder::default()), Arc::new(Recorder::default())];
    let mut subscriptions = Vec::new();
    for (broker, recorder) in [&first, &second].into_iter().zip(&recorders) {
        let request = SubscribeRequest {
            topic: "shared".into(),
            metadata: HashMap::new(),
        };
        subscriptions.push(broker.subscribe(request, recorder.clone()).await.unwrap());
    }
    for index in 0..40 {
        let mut request = publish_request("shared", b"");
        request.data = Bytes::from(format!("message {index}"));
        first.publish(request).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let started = Instant::now();
    let total = || recorders[0].deliveries().len() + recorders[1].deliveries().len();
    while total() < 40 {
        assert!(started.elapsed() < DEADLINE, "only {} arrived", total());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for subscription in subscriptions {
        subscription.unsubscribe().await;
    }
    assert_eq!(total(), 40, "each message is handled once");
    assert!(
        !recorders[0].deliveries().is_empty(),
        "the first instance got some"
    );
    assert!(
        !recorders[1].deliveries().is_empty(),
        "the second instance got some"
    );
    let mut connection = raw(&server).await;
    let groups: Vec<redis::Value> = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg("shared")
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(groups.len(), 1, "one consumer group, named by consumerID");
}

#[tokio::test]
async fn refused_messages_are_reclaimed_and_redelivered() {
    let server = RedisServer::start().await.unwrap();
    let broker = open(&properties(&server, json!({}))).await.unwrap();
    let recorder = Arc::new(Recorder {
        refuse_once: Mutex::new(vec![Bytes::from_static(b"retry me")]),
        ..Recorder::default()
    });
    let subscription = broker
        .subscribe(
            SubscribeRequest {
                topic: "retries".into(),
                metadata: HashMap::new(),
            },
            recorder.clone(),
        )
        .await
        .unwrap();
    let published = Instant::now();
    broker
        .publish(publish_request("retries", b"retry me"))
        .await
        .unwrap();
    let deliveries = recorder.wait_for(2).await;
    assert!(
        published.elapsed() >= Duration::from_millis(300),
        "redelivered only after processingTimeout"
    );
    assert!(
        deliveries
            .iter()
            .all(|message| message.data.as_ref() == b"retry me")
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        recorder.deliveries().len(),
        2,
        "acknowledged after the retry"
    );
    subscription.unsubscribe().await;
    let mut connection = raw(&server).await;
    assert_eq!(pending_count(&mut connection, "retries", "tests").await, 0);
}

#[tokio::test]
async fn zero_redeliver_interval_leaves_refused_messages_pending() {
    let server = RedisServer::start().await.unwrap();
    let broker = open(&properties(&server, json!({"redeliverInterval": "0"})))
        .await
        .unwrap();
    let recorder = Arc::new(Recorder {
        refuse_once: Mutex::new(vec![Bytes::from_static(b"once")]),
        ..Recorder::default()
    });
    let subscription = broker
        .subscribe(
            SubscribeRequest {
                topic: "no-retries".into(),
                metadata: HashMap::new(),
            },
            recorder.clone(),
        )
        .await
        .unwrap();
    broker
        .publish(publish_request("no-retries", b"once"))
        .await
        .unwrap();
    recorder.wait_for(1).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    subscription.unsubscribe().await;
    assert_eq!(recorder.deliveries().len(), 1);
    let mut connection = raw(&server).await;
    assert_eq!(
        pending_count(&mut connection, "no-retries", "tests").await,
        1
    );
}

#[tokio::test]
async fn deleted_pending_entries_are_dropped_by_the_reclaimer() {
    let server = RedisServer::start().await.unwrap();
    let broker = open(&properties(&server, json!({}))).await.unwrap();
    let recorder = Arc::new(Recorder {
        refuse_once: Mutex::new(vec![Bytes::from_static(b"deleted")]),
        ..Recorder::default()
    });
    let subscription = broker
        .subscribe(
            SubscribeRequest {
                topic: "deleted".into(),
                metadata: HashMap::new(),
            },
            recorder.clone(),
        )
        .await
        .unwrap();
    broker
        .publish(publish_request("deleted", b"deleted"))
        .await
        .unwrap();
    let first = recorder.wait_for(1).await;
    let mut connection = raw(&server).await;
    let ids: Entries = redis::cmd("XRANGE")
        .arg("deleted")
        .arg("-")
        .arg("+")
        .query_async(&mut connection)
        .await
        .unwrap();
    let _: i64 = redis::cmd("XDEL")
        .arg("deleted")
        .arg(&ids[0].0)
        .query_async(&mut connection)
        .await
        .unwrap();
    let started = Instant::now();
    while pending_count(&mut connection, "deleted", "tests").await > 0 {
        assert!(
            started.elapsed() < DEADLINE,
            "the deleted entry stays pending"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    subscription.unsubscribe().await;
    assert_eq!(
        recorder.deliveries(),
        first,
        "a deleted entry is not redelivered"
    );
}

#[tokio::test]
async fn a_lost_consumer_group_is_recreated() {
    let server = RedisServer::start().await.unwrap();
    let broker = open(&properties(&server, json!({"readTimeout": "200ms"})))
        .await
        .unwrap();
    let recorder = Arc::new(Recorder::default());
    let subscription = broker
        .subscribe(
            SubscribeRequest {
                topic: "lost".into(),
                metadata: HashMap::new(),
            },
            recorder.clone(),
        )
        .await
        .unwrap();
    let mut connection = raw(&server).await;
    let _: i64 = connection.del("lost").await.unwrap();
    broker
        .publish(publish_request("lost", b"after loss"))
        .await
        .unwrap();
    let deliveries = recorder.wait_for(1).await;
    subscription.unsubscribe().await;
    assert_eq!(deliveries[0].data.as_ref(), b"after loss");
}

#[tokio::test]
async fn max_len_approx_trims_the_stream() {
    let server = RedisServer::start().await.unwrap();
    let mut connection = raw(&server).await;
    // Small stream nodes make approximate trimming (whole nodes only) nearly exact.
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("stream-node-max-entries")
        .arg(2)
        .query_async(&mut connection)
        .await
        .unwrap();
    let broker = open(&properties(&server, json!({"maxLenApprox": 10})))
        .await
        .unwrap();
    for _ in 0..50 {
        broker
            .publish(publish_request("trimmed", b"x"))
            .await
            .unwrap();
    }
    let length: usize = redis::cmd("XLEN")
        .arg("trimmed")
        .query_async(&mut connection)
        .await
        .unwrap();
    assert!((10..=12).contains(&length), "stream length {length}");
}

#[tokio::test]
async fn stream_ttl_trims_old_entries() {
    let server = RedisServer::start().await.unwrap();
    let mut connection = raw(&server).await;
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("stream-node-max-entries")
        .arg(1)
        .query_async(&mut connection)
        .await
        .unwrap();
    xadd(&mut connection, "aged", "1000-0", &[("data", b"ancient")]).await;
    let broker = open(&properties(&server, json!({"streamTTL": "1h"})))
        .await
        .unwrap();
    broker
        .publish(publish_request("aged", b"fresh"))
        .await
        .unwrap();
    let entries: Entries = redis::cmd("XRANGE")
        .arg("aged")
        .arg("-")
        .arg("+")
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].1[0], ("data".to_owned(), b"fresh".to_vec()));
}

#[tokio::test]
async fn closed_brokers_refuse_work_and_bad_hosts_fail_to_open() {
    let server = RedisServer::start().await.unwrap();
    let broker = open(&properties(&server, json!({}))).await.unwrap();
    broker.ping().await.unwrap();
    broker.close().await.unwrap();
    assert_eq!(
        broker.publish(publish_request("closed", b"x")).await,
        Err(PubSubError::Closed)
    );

    let unreachable = Properties::from_json(&json!({
        "redisHost": "127.0.0.1:1",
        "consumerID": "tests",
        "redisMaxRetries": "0",
        "dialTimeout": "200ms",
    }))
    .unwrap();
    match open(&unreachable).await {
        Err(PubSubError::Backend(message)) => {
            assert!(message.starts_with("redis streams: error connecting to redis at 127.0.0.1:1"));
        }
        other => panic!("expected a connection error, got {other:?}"),
    }
}

//! At-least-once delivery across an app crash, once per broker (redis-server, RabbitMQ,
//! NATS JetStream): the SDK publishes events 0..999 while the subscriber app, which
//! records each event before answering 200, is SIGKILLed part-way and restarted on the
//! same port a moment later. Every event must be recorded in the end (duplicates are
//! allowed). Each broker is configured to hand failed messages back quickly.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use dapr_testkit::python::{self, Script};
use dapr_testkit::{Daprd, Nats, RabbitMq, Redis};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use super::{SubscriberApp, TestDir, WAIT, programmatic, read_events, wait_subscribed};
use crate::support::TIMEOUT;

/// Events published.
const MESSAGES: u64 = 1000;
/// Events recorded before the app is killed.
const KILL_AFTER: usize = 200;
/// How long the app stays down.
const DOWN_FOR: Duration = Duration::from_secs(1);
/// Bound on every event arriving after the restart.
const ALL_ARRIVE: Duration = Duration::from_secs(120);
/// The topic.
const TOPIC: &str = "work";

/// The SDK script publishing `{"id": 0}` .. `{"id": $COUNT - 1}` to `$TOPIC` in order.
const PUBLISHER: &str = r#"
import json, os
from dapr.clients import DaprClient

with DaprClient() as client:
    for index in range(int(os.environ['COUNT'])):
        client.publish_event(
            pubsub_name='pubsub',
            topic_name=os.environ['TOPIC'],
            data=json.dumps({'id': index}),
            data_content_type='application/json',
        )
print('published')
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_delivers_every_event_across_an_app_crash() {
    let redis = Redis::start().await.unwrap();
    every_event_arrives_across_a_crash(
        "pubsub.redis",
        &[
            ("redisHost", redis.host()),
            ("processingTimeout", "2s".to_owned()),
            ("redeliverInterval", "1s".to_owned()),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_delivers_every_event_across_an_app_crash() {
    let rabbitmq = RabbitMq::shared().await.unwrap();
    every_event_arrives_across_a_crash(
        "pubsub.rabbitmq",
        &[
            ("connectionString", rabbitmq.url()),
            ("requeueInFailure", "true".to_owned()),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_delivers_every_event_across_an_app_crash() {
    let nats = Nats::start().await.unwrap();
    create_stream(&nats, TOPIC, TOPIC).await;
    every_event_arrives_across_a_crash(
        "pubsub.jetstream",
        &[("natsURL", nats.url()), ("ackWait", "1s".to_owned())],
    )
    .await;
}

/// The ids recorded in `events` (each event's data is `{"id": n}`).
fn recorded_ids(events: &Path) -> BTreeSet<u64> {
    read_events(events)
        .iter()
        .filter_map(|delivery| delivery.event["data"]["id"].as_u64())
        .collect()
}

/// The shared body of the per-broker tests: `component_type` with `metadata`.
async fn every_event_arrives_across_a_crash(component_type: &str, metadata: &[(&str, String)]) {
    let dir = TestDir::new();
    dir.pubsub(component_type, metadata);
    let events = dir.events_file("worker");
    let subscriptions = json!([programmatic(TOPIC, "/work")]).to_string();
    let mut app = SubscriberApp::start(
        "subscriber_http.py",
        &events,
        &[("SUBSCRIPTIONS", subscriptions)],
    )
    .await;
    let daprd = Daprd::builder("worker")
        .app_port(app.port())
        .app_protocol("http")
        .resources_path(dir.resources())
        .start()
        .await
        .unwrap();
    wait_subscribed(&daprd, TOPIC).await;

    let mut env: Vec<(String, String)> = daprd.sdk_env().to_vec();
    env.push(("COUNT".into(), MESSAGES.to_string()));
    env.push(("TOPIC".into(), TOPIC.into()));
    let python = python::sdk_python().unwrap();
    let publisher =
        tokio::spawn(
            async move { python::run(&python, Script::Source(PUBLISHER), env, TIMEOUT).await },
        );

    let deadline = Instant::now() + WAIT;
    while recorded_ids(&events).len() < KILL_AFTER {
        assert!(
            Instant::now() < deadline,
            "only {} events arrived before the crash\nsidecar log:\n{}",
            recorded_ids(&events).len(),
            daprd.log_tail(40)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    app.kill().await;
    tokio::time::sleep(DOWN_FOR).await;
    app.restart().await;

    let output = publisher.await.unwrap().unwrap();
    assert!(
        output.status.success() && output.stdout.trim() == "published",
        "the publisher failed:\n{}\n{}\nsidecar log:\n{}",
        output.stdout,
        output.stderr,
        daprd.log_tail(40)
    );
    let deadline = Instant::now() + ALL_ARRIVE;
    loop {
        let recorded = recorded_ids(&events);
        let missing: Vec<u64> = (0..MESSAGES).filter(|id| !recorded.contains(id)).collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {MESSAGES} events never arrived over {component_type} (first: {:?})\n\
             sidecar log:\n{}\napp log:\n{}",
            missing.len(),
            &missing[..missing.len().min(20)],
            daprd.log_tail(40),
            app.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Creates the JetStream stream `name` over `subject` with a raw NATS request to
/// `$JS.API.STREAM.CREATE` (the component requires the stream to exist, as upstream's).
async fn create_stream(nats: &Nats, name: &str, subject: &str) {
    let request = json!({"name": name, "subjects": [subject]}).to_string();
    let exchange = async {
        let socket = tokio::net::TcpStream::connect(("127.0.0.1", nats.port()))
            .await
            .unwrap();
        let mut socket = BufReader::new(socket);
        let mut line = String::new();
        socket.read_line(&mut line).await.unwrap();
        assert!(line.starts_with("INFO "), "{line}");
        let commands = format!(
            "CONNECT {{\"verbose\":false,\"pedantic\":false}}\r\nSUB _INBOX.create 1\r\n\
             PUB $JS.API.STREAM.CREATE.{name} _INBOX.create {}\r\n{request}\r\n",
            request.len()
        );
        socket
            .get_mut()
            .write_all(commands.as_bytes())
            .await
            .unwrap();
        loop {
            line.clear();
            assert!(
                socket.read_line(&mut line).await.unwrap() > 0,
                "NATS closed"
            );
            if line.starts_with("PING") {
                socket.get_mut().write_all(b"PONG\r\n").await.unwrap();
            } else if line.starts_with("-ERR") {
                panic!("NATS refused the request: {line}");
            } else if line.starts_with("MSG ") {
                let mut reply = String::new();
                socket.read_line(&mut reply).await.unwrap();
                assert!(
                    !reply.contains("\"error\""),
                    "creating stream {name}: {reply}"
                );
                return;
            }
        }
    };
    tokio::time::timeout(WAIT, exchange)
        .await
        .expect("the stream was created in time");
}

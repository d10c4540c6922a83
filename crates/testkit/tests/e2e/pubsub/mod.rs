//! Pub/sub delivery across processes: real `daprd` sidecars over real brokers (redis-server,
//! RabbitMQ, NATS JetStream), events published with the official Python SDK, and
//! subscriber apps (`apps/subscriber_http.py`, `apps/subscriber_grpc.py`) that append every
//! delivery they answer to a JSON-lines file, which the tests read back.
//!
//! This module owns the shared plumbing: the resources directory (components,
//! subscriptions, resiliency), the restartable subscriber app, the events file, SDK
//! publishing and bounded waits. The submodules own one concern each: plain delivery to
//! HTTP and gRPC apps, CEL routing, dead-lettering, at-least-once delivery across an app
//! crash, and app-health gating.

mod at_least_once;
mod dead_letter;
mod delivery;
mod health;
mod routing;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dapr_testkit::process::GuardedProcess;
use dapr_testkit::python::{self, Script};
use dapr_testkit::{Daprd, ports};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::support::TIMEOUT;

/// The name of the pub/sub component in every test here.
pub const PUBSUB: &str = "pubsub";

/// Bound on waiting for deliveries or log lines in the simple tests.
pub const WAIT: Duration = Duration::from_secs(60);

/// A test's temp dir: `resources/` for `--resources-path`, plus the apps' events files.
pub struct TestDir {
    dir: TempDir,
}

impl TestDir {
    /// A fresh temp dir with an empty `resources/`.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("resources")).unwrap();
        Self { dir }
    }

    /// The `--resources-path` directory.
    pub fn resources(&self) -> PathBuf {
        self.dir.path().join("resources")
    }

    /// `<dir>/<name>.jsonl`, where an app records its deliveries.
    pub fn events_file(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.jsonl"))
    }

    /// Writes `resources/<file>`.
    pub fn write(&self, file: &str, yaml: &str) {
        std::fs::write(self.resources().join(file), yaml).unwrap();
    }

    /// Writes the pub/sub Component `pubsub` of `component_type` with `metadata`.
    pub fn pubsub(&self, component_type: &str, metadata: &[(&str, String)]) {
        let mut yaml = format!(
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: {PUBSUB}\nspec:\n  \
             type: {component_type}\n  version: v1\n  metadata:\n"
        );
        for (name, value) in metadata {
            yaml.push_str(&format!("  - name: {name}\n    value: \"{value}\"\n"));
        }
        self.write("pubsub.yaml", &yaml);
    }

    /// Writes a declarative `v2alpha1` Subscription of `topic` with default route `path`,
    /// scoped to `app_id`.
    pub fn subscription(&self, name: &str, topic: &str, path: &str, app_id: &str) {
        self.write(
            &format!("{name}.yaml"),
            &format!(
                "apiVersion: dapr.io/v2alpha1\nkind: Subscription\nmetadata:\n  name: {name}\nspec:\n  \
                 pubsubname: {PUBSUB}\n  topic: {topic}\n  routes:\n    default: {path}\nscopes:\n- {app_id}\n"
            ),
        );
    }
}

/// A programmatic subscription entry of `GET /dapr/subscribe` (v1 form, one route).
pub fn programmatic(topic: &str, route: &str) -> Value {
    json!({"pubsubname": PUBSUB, "topic": topic, "route": route})
}

/// A subscriber app under test: a Python script from `apps/` on a fixed port, which can
/// be SIGKILLed and started again on the same port.
pub struct SubscriberApp {
    script: PathBuf,
    port: u16,
    env: Vec<(String, String)>,
    process: Option<GuardedProcess>,
}

impl SubscriberApp {
    /// Starts `apps/<script>` on a free port, recording deliveries to `events`, with
    /// extra environment `env`.
    pub async fn start(script: &str, events: &Path, env: &[(&str, String)]) -> Self {
        let port = ports::free_port();
        let mut vars = vec![
            ("APP_PORT".to_owned(), port.to_string()),
            ("EVENTS_FILE".to_owned(), events.display().to_string()),
        ];
        vars.extend(env.iter().map(|(k, v)| (k.to_string(), v.clone())));
        let mut app = Self {
            script: Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/e2e/apps")
                .join(script),
            port,
            env: vars,
            process: None,
        };
        app.restart().await;
        app
    }

    /// The port the app listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Starts the app (again) on its port; returns once the port accepts connections.
    pub async fn restart(&mut self) {
        assert!(self.process.is_none(), "the app is running");
        let process = python::spawn_app(
            &python::sdk_python().unwrap(),
            Script::File(&self.script),
            self.env.clone(),
            Some(self.port),
            TIMEOUT,
        )
        .await
        .unwrap();
        self.process = Some(process);
    }

    /// SIGKILLs the app and waits until it is gone.
    pub async fn kill(&mut self) {
        let process = self.process.take().expect("the app is running");
        process.kill().await.unwrap();
    }

    /// The last lines of the app's log (empty when it is not running).
    pub fn log_tail(&self) -> String {
        self.process
            .as_ref()
            .map(|process| process.log_tail(20))
            .unwrap_or_default()
    }
}

/// One delivery an app recorded: the route (HTTP path or gRPC handler) and the event.
#[derive(Debug, Clone)]
pub struct Received {
    /// The HTTP path, or the SDK handler's name for the gRPC app.
    pub path: String,
    /// The CloudEvent as the app saw it.
    pub event: Value,
}

/// Every complete line of the events file `file` (missing file: none).
pub fn read_events(file: &Path) -> Vec<Received> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    text.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .map(|mut line| Received {
            path: line["path"].as_str().unwrap_or_default().to_owned(),
            event: line["event"].take(),
        })
        .collect()
}

/// Waits (at most `timeout`) until the deliveries in `file` satisfy `done`; returns them.
/// On timeout, fails with `what`, the deliveries so far and the sidecar's log tail.
pub async fn wait_for_events(
    file: &Path,
    daprd: &Daprd,
    what: &str,
    timeout: Duration,
    done: impl Fn(&[Received]) -> bool,
) -> Vec<Received> {
    let deadline = Instant::now() + timeout;
    loop {
        let events = read_events(file);
        if done(&events) {
            return events;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; received {} deliveries: {:#?}\nsidecar log:\n{}",
            events.len(),
            events.iter().take(20).collect::<Vec<_>>(),
            daprd.log_tail(40)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The deliveries on `path`.
pub fn on_path<'a>(events: &'a [Received], path: &str) -> Vec<&'a Received> {
    events.iter().filter(|event| event.path == path).collect()
}

/// How often the sidecar's log holds `needle`.
pub fn log_count(daprd: &Daprd, needle: &str) -> usize {
    let log = std::fs::read_to_string(daprd.process().log_path()).unwrap_or_default();
    log.matches(needle).count()
}

/// Waits (at most [`WAIT`]) until the sidecar's log holds `needle` at least `count` times.
pub async fn wait_for_log(daprd: &Daprd, needle: &str, count: usize) {
    let deadline = Instant::now() + WAIT;
    loop {
        if log_count(daprd, needle) >= count {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the sidecar never logged {needle:?} {count} time(s):\n{}",
            daprd.log_tail(40)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the sidecar has subscribed to `topic` (its broker subscription is live).
pub async fn wait_subscribed(daprd: &Daprd, topic: &str) {
    wait_for_log(
        daprd,
        &format!("subscribed to topic {topic} on pubsub {PUBSUB}"),
        1,
    )
    .await;
}

/// One event to publish with the SDK.
pub struct Publish<'a> {
    /// The topic.
    pub topic: &'a str,
    /// The data, serialized as JSON.
    pub data: Value,
    /// The `data_content_type` passed to the SDK.
    pub content_type: &'a str,
}

impl<'a> Publish<'a> {
    /// JSON `data` to `topic` as `application/json`.
    pub fn json(topic: &'a str, data: Value) -> Self {
        Self {
            topic,
            data,
            content_type: "application/json",
        }
    }

    /// A whole CloudEvent to `topic` as `application/cloudevents+json`.
    pub fn cloud_event(topic: &'a str, event: Value) -> Self {
        Self {
            topic,
            data: event,
            content_type: "application/cloudevents+json",
        }
    }
}

/// The SDK script behind [`publish`]: publishes each entry of `$EVENTS` in order.
const PUBLISH_SCRIPT: &str = r#"
import json, os
from dapr.clients import DaprClient

with DaprClient() as client:
    for entry in json.loads(os.environ['EVENTS']):
        client.publish_event(
            pubsub_name=os.environ['PUBSUB'],
            topic_name=entry['topic'],
            data=json.dumps(entry['data']),
            data_content_type=entry['content_type'],
        )
print('published')
"#;

/// Publishes `events` in order through `daprd` with the SDK's `publish_event`.
pub async fn publish(daprd: &Daprd, events: &[Publish<'_>]) {
    let entries: Vec<Value> = events
        .iter()
        .map(|event| json!({"topic": event.topic, "data": event.data, "content_type": event.content_type}))
        .collect();
    let entries = Value::Array(entries).to_string();
    let out = crate::support::run_sdk(
        daprd,
        PUBLISH_SCRIPT,
        &[("EVENTS", &entries), ("PUBSUB", PUBSUB)],
    )
    .await;
    assert_eq!(out.trim(), "published");
}

//! Bulk delivery against real apps: an axum HTTP app and tonic gRPC apps reached through
//! a real app channel, real `pubsub.in-memory` brokers (for dead-letter topics and a
//! broker that delivers one message at a time) and a real Redis streams broker (one that
//! hands over messages concurrently and redelivers what is not acknowledged).
//!
//! Most tests drive a [`BulkDelivery`] the way a concurrent broker does, calling
//! `handle` for several messages at once, so batches form deterministically; the
//! end-to-end tests run the [`Subscriber`] over the brokers with the sidecar's publish API.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use bytes::Bytes;
use dapr_components::pubsub::{
    Message, MessageHandler, NotAcknowledged, SubscribeRequest, Subscription as BrokerSubscription,
};
use dapr_kit::metrics::MetricsRegistry;
use dapr_kit::shutdown::Shutdown;
use dapr_proto::runtime::app_callback_alpha_server::{AppCallbackAlpha, AppCallbackAlphaServer};
use dapr_proto::runtime::app_callback_server::{AppCallback, AppCallbackServer};
use dapr_proto::runtime::topic_event_bulk_request_entry::Event;
use dapr_proto::runtime::topic_event_response::TopicEventResponseStatus;
use dapr_proto::runtime::{self as rt};
use serde_json::Value;
use tokio::sync::{mpsc, watch};

use super::super::{AppTarget, Subscriber};
use super::*;
use crate::channel::AppChannel;
use crate::components::{ComponentSet, Components};
use crate::config::AppProtocol;
use crate::observability::metrics::{MetricsSettings, SidecarMetrics};
use crate::pubsub::delivery::test_app::{Answer, RESOURCES, Seen, channel, http_app};
use crate::pubsub::routing::Routes;
use crate::pubsub::subscriptions::{Rule, Subscription, SubscriptionType};
use crate::secrets::SecretScopes;
use crate::test_support;

/// The loaded [`RESOURCES`] and the metrics they record in.
struct Bus {
    components: Arc<ComponentSet>,
    resiliencies: Vec<dapr_resources::loader::Loaded<dapr_resources::resiliency::Resiliency>>,
    metrics: SidecarMetrics,
    registry: MetricsRegistry,
}

async fn bus() -> Bus {
    let registry = MetricsRegistry::new();
    let metrics =
        SidecarMetrics::register(&registry, &MetricsSettings::new("myapp", "default")).unwrap();
    let resources =
        dapr_resources::loader::parse_str(std::path::Path::new("resources.yaml"), RESOURCES)
            .unwrap();
    let set = test_support::load_yaml(RESOURCES, &metrics).await;
    Bus {
        components: Components::new(set).snapshot(),
        resiliencies: resources.resiliencies,
        metrics,
        registry,
    }
}

/// A bulk handler of topic `topic` on `bus`, delivering to `path` of `app`, with the
/// switches that stop it.
struct Handler {
    bulk: BulkDelivery,
    stopping: Arc<AtomicBool>,
    stop: watch::Sender<bool>,
}

impl Handler {
    /// Handles `data` (each a text CloudEvent) at once, as a concurrent broker does.
    async fn handle_all(&self, data: &[&str]) -> Vec<Result<(), NotAcknowledged>> {
        futures::future::join_all(data.iter().map(|data| self.bulk.handle(message(data)))).await
    }

    /// Stops the handler as the subscriber does.
    fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        let _ = self.stop.send(true);
    }
}

fn bulk_handler(
    bus: &Bus,
    app: &AppChannel,
    topic: &str,
    path: &str,
    dead_letter_topic: &str,
    settings: BatchSettings,
) -> Handler {
    let stopping = Arc::new(AtomicBool::new(false));
    let (stop, stop_signal) = watch::channel(false);
    let delivery = Delivery {
        handle: bus.components.pubsub("bus").cloned().unwrap(),
        topic: topic.into(),
        namespace_prefix: String::new(),
        routes: Routes::compile(&route(path)).unwrap(),
        raw_payload: Ok(false),
        dead_letter_topic: dead_letter_topic.into(),
        policy: crate::resiliency::Resiliency::compile(&bus.resiliencies, bus.metrics.clone())
            .unwrap()
            .component_policy(
                "bus",
                crate::resiliency::ComponentKind::PubSub,
                crate::resiliency::Direction::Inbound,
            ),
        app: AppTarget::new(app, None),
        metrics: bus.metrics.clone(),
        stopping: stopping.clone(),
        stop_signal,
    };
    Handler {
        bulk: BulkDelivery::start(delivery, settings),
        stopping,
        stop,
    }
}

fn settings(max_messages: usize, max_await_ms: u64) -> BatchSettings {
    BatchSettings {
        max_messages,
        max_await: Duration::from_millis(max_await_ms),
        immediate: false,
    }
}

/// A CloudEvent with text `data`, as the sidecar publishes it.
fn message(data: &str) -> Message {
    let event = serde_json::json!({
        "specversion": "1.0",
        "id": format!("id-{data}"),
        "source": "myapp",
        "type": "com.dapr.event.sent",
        "datacontenttype": "text/plain",
        "data": data,
        "topic": "orders",
        "pubsubname": "bus",
    });
    Message {
        topic: "orders".into(),
        data: Bytes::from(event.to_string()),
        metadata: HashMap::from([("origin".to_owned(), "test".to_owned())]),
        content_type: Some("application/cloudevents+json".into()),
    }
}

fn route(path: &str) -> Vec<Rule> {
    vec![Rule {
        match_expression: String::new(),
        path: path.into(),
    }]
}

/// Forwards what reaches a topic of the broker to a channel.
struct Forward(mpsc::UnboundedSender<Message>);

#[async_trait::async_trait]
impl MessageHandler for Forward {
    async fn handle(&self, message: Message) -> Result<(), NotAcknowledged> {
        let _ = self.0.send(message);
        Ok(())
    }
}

/// Subscribes to `topic` on `bus` to watch what is dead-lettered there.
async fn watch_topic(
    bus: &Bus,
    topic: &str,
) -> (BrokerSubscription, mpsc::UnboundedReceiver<Message>) {
    let (sender, receiver) = mpsc::unbounded_channel();
    let subscription = bus
        .components
        .pubsub("bus")
        .unwrap()
        .broker
        .subscribe(
            SubscribeRequest {
                topic: topic.into(),
                metadata: HashMap::new(),
            },
            Arc::new(Forward(sender)),
        )
        .await
        .unwrap();
    (subscription, receiver)
}

/// The `data` of every message that reached a watched topic so far.
async fn dead_lettered(receiver: &mut mpsc::UnboundedReceiver<Message>) -> Vec<String> {
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut data = Vec::new();
    while let Ok(message) = receiver.try_recv() {
        let event: Value = serde_json::from_slice(&message.data).unwrap();
        data.push(event["data"].as_str().unwrap_or_default().to_owned());
    }
    data.sort();
    data
}

impl Seen {
    /// The `data` of the CloudEvent of each entry.
    fn data(&self) -> Vec<String> {
        self.body["entries"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|entry| {
                entry["event"]["data"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect()
    }
}

/// The status an app gives an entry by its data: `ok`, `retry`, `drop`, `missing` (no
/// status at all).
fn status_for(data: &str) -> Option<&'static str> {
    match data {
        "retry" => Some("RETRY"),
        "drop" => Some("DROP"),
        "missing" => None,
        _ => Some("SUCCESS"),
    }
}

/// Answers each entry of a bulk envelope by [`status_for`].
fn by_entry() -> Answer {
    Arc::new(|_: &str, body: &Value| {
        let statuses: Vec<Value> = body["entries"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|entry| {
                let status = status_for(entry["event"]["data"].as_str().unwrap_or_default())?;
                Some(serde_json::json!({"entryId": entry["entryId"], "status": status}))
            })
            .collect();
        (
            StatusCode::OK,
            serde_json::json!({ "statuses": statuses }).to_string(),
        )
    })
}

fn requests_to<'a>(seen: &'a [Seen], path: &str) -> Vec<&'a Seen> {
    seen.iter().filter(|seen| seen.path == path).collect()
}

#[tokio::test]
async fn concurrent_messages_form_one_batch_in_upstreams_envelope() {
    let bus = bus().await;
    let (app, seen) = http_app(by_entry()).await;
    let handler = bulk_handler(&bus, &app, "orders", "/bulk", "", settings(4, 10_000));
    let started = Instant::now();
    let verdicts = handler.handle_all(&["a", "b", "c", "d"]).await;
    // The batch was full: it did not wait for maxAwaitDurationMs.
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(verdicts.iter().all(Result::is_ok), "{verdicts:?}");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    let request = &seen[0];
    assert_eq!(request.path, "/bulk");
    assert_eq!(request.headers["content-type"], "application/json");
    assert_eq!(request.headers["pubsubname"], "bus");
    let body = &request.body;
    assert_eq!(body["type"], "com.dapr.event.sent.bulk");
    assert_eq!(body["topic"], "orders");
    assert_eq!(body["pubsubname"], "bus");
    assert_eq!(body["metadata"], serde_json::json!({"pubsubName": "bus"}));
    assert!(!body["id"].as_str().unwrap().is_empty());
    assert_eq!(request.data(), ["a", "b", "c", "d"]);
    let entries = body["entries"].as_array().unwrap();
    let mut ids: Vec<&str> = entries
        .iter()
        .map(|entry| entry["entryId"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 4);
    let first = &entries[0];
    assert_eq!(first["event"]["id"], "id-a");
    assert_eq!(first["event"]["source"], "myapp");
    assert_eq!(first["contentType"], "application/cloudevents+json");
    assert_eq!(first["metadata"], serde_json::json!({"origin": "test"}));

    let text = bus.registry.encode_text();
    let line = |prefix: &str, status: &str| {
        text.lines().any(|line| {
            line.starts_with(prefix) && line.contains("topic=\"orders\"") && line.contains(status)
        })
    };
    assert!(
        line(
            "dapr_component_pubsub_ingress_bulk_count{",
            "component=\"bus\""
        ),
        "{text}"
    );
    assert!(
        line(
            "dapr_component_pubsub_ingress_bulk_event_count{",
            "process_status=\"SUCCESS\""
        ),
        "{text}"
    );
    // Bulk deliveries are not counted as single deliveries.
    assert!(
        !text.contains("dapr_component_pubsub_ingress_count{"),
        "{text}"
    );
}

#[tokio::test]
async fn entry_statuses_settle_each_message_with_retries_and_dead_letters() {
    let bus = bus().await;
    let (_dead, mut dead) = watch_topic(&bus, "dead").await;
    let (app, seen) = http_app(by_entry()).await;
    let with_dead_letters =
        bulk_handler(&bus, &app, "orders", "/bulk", "dead", settings(4, 10_000));
    let verdicts = with_dead_letters
        .handle_all(&["ok", "drop", "retry", "missing"])
        .await;
    // Delivered, dropped, or forwarded to the dead-letter topic: all acknowledged.
    assert!(verdicts.iter().all(Result::is_ok), "{verdicts:?}");
    let requests: Vec<Vec<String>> = requests_to(&seen.lock().unwrap(), "/bulk")
        .iter()
        .map(|seen| seen.data())
        .collect();
    // One delivery, then three retries of only the entries still failing.
    assert_eq!(
        requests,
        [
            vec!["ok", "drop", "retry", "missing"],
            vec!["retry", "missing"],
            vec!["retry", "missing"],
            vec!["retry", "missing"],
        ]
    );
    assert_eq!(dead_lettered(&mut dead).await, ["drop", "missing", "retry"]);

    let (app, seen) = http_app(by_entry()).await;
    let without = bulk_handler(&bus, &app, "plain", "/plain", "", settings(4, 10_000));
    let verdicts = without
        .handle_all(&["ok", "drop", "retry", "missing"])
        .await;
    assert!(verdicts[0].is_ok());
    assert!(verdicts[1].is_ok());
    // Without a dead-letter topic the failures go back to the broker.
    assert!(
        verdicts[2]
            .as_ref()
            .unwrap_err()
            .0
            .contains("RETRY required")
    );
    assert!(
        verdicts[3]
            .as_ref()
            .unwrap_err()
            .0
            .contains("response not received")
    );
    assert_eq!(seen.lock().unwrap().len(), 4);
    assert!(dead_lettered(&mut dead).await.is_empty());

    let text = bus.registry.encode_text();
    for status in ["SUCCESS", "DROP", "RETRY"] {
        assert!(
            text.lines().any(|line| line
                .starts_with("dapr_component_pubsub_ingress_bulk_event_count{")
                && line.contains(&format!("process_status=\"{status}\""))
                && line.contains("topic=\"plain\"")),
            "{status}: {text}"
        );
    }
}

#[tokio::test]
async fn whole_batch_answers_apply_to_every_entry() {
    let bus = bus().await;
    let (_dead, mut dead) = watch_topic(&bus, "dead").await;
    let (app, seen) = http_app(Arc::new(|path: &str, _: &Value| match path {
        "/gone" => (StatusCode::NOT_FOUND, "no".to_owned()),
        "/broken" => (StatusCode::INTERNAL_SERVER_ERROR, "boom".to_owned()),
        _ => (StatusCode::OK, "not json".to_owned()),
    }))
    .await;

    // 404: every entry is dropped, once, without dead-lettering.
    let gone = bulk_handler(&bus, &app, "a", "/gone", "dead", settings(2, 10_000));
    let verdicts = gone.handle_all(&["one", "two"]).await;
    assert!(verdicts.iter().all(Result::is_ok), "{verdicts:?}");
    assert_eq!(requests_to(&seen.lock().unwrap(), "/gone").len(), 1);
    assert!(dead_lettered(&mut dead).await.is_empty());

    // Another status: every entry is retried, then dead-lettered.
    let broken = bulk_handler(&bus, &app, "b", "/broken", "dead", settings(2, 10_000));
    let verdicts = broken.handle_all(&["three", "four"]).await;
    assert!(verdicts.iter().all(Result::is_ok), "{verdicts:?}");
    let requests = requests_to(&seen.lock().unwrap(), "/broken")
        .iter()
        .map(|seen| seen.data().len())
        .collect::<Vec<_>>();
    assert_eq!(requests, [2, 2, 2, 2]);
    assert_eq!(dead_lettered(&mut dead).await, ["four", "three"]);

    // An unreadable 2xx answer: retried, then left with the broker.
    let garbled = bulk_handler(&bus, &app, "c", "/garbled", "", settings(2, 10_000));
    let verdicts = garbled.handle_all(&["five", "six"]).await;
    for verdict in &verdicts {
        assert!(
            verdict
                .as_ref()
                .unwrap_err()
                .0
                .contains("failed unmarshalling app response for bulk subscribe"),
            "{verdict:?}"
        );
    }
    assert_eq!(requests_to(&seen.lock().unwrap(), "/garbled").len(), 4);
}

#[tokio::test]
async fn entries_are_grouped_by_route() {
    let bus = bus().await;
    let (app, seen) = http_app(by_entry()).await;
    let stopping = Arc::new(AtomicBool::new(false));
    let (_stop, stop_signal) = watch::channel(false);
    let rules = vec![
        Rule {
            match_expression: r#"event.data == "b""#.into(),
            path: "/second".into(),
        },
        Rule {
            match_expression: r#"event.data != "none""#.into(),
            path: "/first".into(),
        },
    ];
    let delivery = Delivery {
        handle: bus.components.pubsub("bus").cloned().unwrap(),
        topic: "orders".into(),
        namespace_prefix: String::new(),
        routes: Routes::compile(&rules).unwrap(),
        raw_payload: Ok(false),
        dead_letter_topic: String::new(),
        policy: crate::resiliency::Policy::none(),
        app: AppTarget::new(&app, None),
        metrics: bus.metrics.clone(),
        stopping,
        stop_signal,
    };
    let bulk = BulkDelivery::start(delivery, settings(5, 10_000));
    let verdicts = futures::future::join_all(
        ["a", "b", "c", "b", "none"]
            .iter()
            .map(|data| bulk.handle(message(data))),
    )
    .await;
    // "none" matches no route: acknowledged without delivery.
    assert!(verdicts.iter().all(Result::is_ok), "{verdicts:?}");
    let seen = seen.lock().unwrap().clone();
    let batches: Vec<(String, Vec<String>)> = seen
        .iter()
        .map(|seen| (seen.path.clone(), seen.data()))
        .collect();
    assert_eq!(
        batches,
        [
            ("/first".to_owned(), vec!["a".to_owned(), "c".to_owned()]),
            ("/second".to_owned(), vec!["b".to_owned(), "b".to_owned()]),
        ]
    );
}

#[tokio::test]
async fn stopping_flushes_the_gathered_batch_and_settles_nothing_else() {
    let bus = bus().await;
    let (_dead, mut dead) = watch_topic(&bus, "dead").await;
    let (app, seen) = http_app(by_entry()).await;
    let handler = Arc::new(bulk_handler(
        &bus,
        &app,
        "orders",
        "/bulk",
        "dead",
        settings(100, 60_000),
    ));
    let waiting = {
        let handler = handler.clone();
        tokio::spawn(async move { handler.handle_all(&["ok", "retry"]).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(seen.lock().unwrap().is_empty());
    handler.stop();
    let verdicts = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("the gathered batch is flushed at once")
        .unwrap();
    assert!(verdicts[0].is_ok());
    // A failure while stopping is neither retried nor dead-lettered.
    assert!(verdicts[1].is_err());
    assert_eq!(seen.lock().unwrap().len(), 1);
    assert!(dead_lettered(&mut dead).await.is_empty());
    // Nothing is taken once the subscription stops.
    let late = handler.handle_all(&["late"]).await;
    assert_eq!(
        late[0].as_ref().unwrap_err().0,
        "the subscription is stopping"
    );
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn immediate_brokers_get_their_messages_flushed_on_arrival() {
    let bus = bus().await;
    let (app, seen) = http_app(by_entry()).await;
    let mut immediate = settings(100, 60_000);
    immediate.immediate = true;
    let handler = bulk_handler(&bus, &app, "orders", "/bulk", "", immediate);
    let verdicts = tokio::time::timeout(Duration::from_secs(5), handler.handle_all(&["ok"]))
        .await
        .expect("no wait for more messages");
    assert!(verdicts[0].is_ok());
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[test]
fn batch_settings_take_upstreams_defaults() {
    use dapr_components::pubsub::Feature;
    let unset = BulkSubscribe {
        enabled: true,
        ..BulkSubscribe::default()
    };
    assert_eq!(
        BatchSettings::new(&unset, &[], "orders"),
        BatchSettings {
            max_messages: 100,
            max_await: Duration::from_secs(1),
            immediate: false,
        }
    );
    let set = BulkSubscribe {
        enabled: true,
        max_messages_count: 7,
        max_await_duration_ms: 250,
    };
    let settings = BatchSettings::new(&set, &[Feature::BulkSubscribeImmediate], "orders");
    assert_eq!(settings.max_messages, 7);
    assert_eq!(settings.max_await, Duration::from_millis(250));
    assert!(settings.immediate);
    let negative = BulkSubscribe {
        enabled: true,
        max_messages_count: -1,
        max_await_duration_ms: -5,
    };
    assert_eq!(
        BatchSettings::new(&negative, &[], "orders"),
        BatchSettings::new(&unset, &[], "orders")
    );
}

/// A gRPC app answering each bulk entry by [`status_for`] on `OnBulkTopicEvent` (when
/// `bulk` is set) and recording the bulk requests; it never implements the alpha call.
#[derive(Clone, Default)]
struct GrpcApp {
    bulk: bool,
    seen: Arc<Mutex<Vec<rt::TopicEventBulkRequest>>>,
}

/// Answers each entry of `request` by [`status_for`].
fn answer_entries(request: &rt::TopicEventBulkRequest) -> rt::TopicEventBulkResponse {
    let statuses = request
        .entries
        .iter()
        .filter_map(|entry| {
            let data = match &entry.event {
                Some(Event::CloudEvent(event)) => String::from_utf8_lossy(&event.data).into_owned(),
                Some(Event::Bytes(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
                None => String::new(),
            };
            let status = match status_for(&data)? {
                "RETRY" => TopicEventResponseStatus::Retry,
                "DROP" => TopicEventResponseStatus::Drop,
                _ => TopicEventResponseStatus::Success,
            };
            Some(rt::TopicEventBulkResponseEntry {
                entry_id: entry.entry_id.clone(),
                status: status as i32,
            })
        })
        .collect();
    rt::TopicEventBulkResponse { statuses }
}

#[tonic::async_trait]
impl AppCallback for GrpcApp {
    async fn on_bulk_topic_event(
        &self,
        request: tonic::Request<rt::TopicEventBulkRequest>,
    ) -> Result<tonic::Response<rt::TopicEventBulkResponse>, tonic::Status> {
        if !self.bulk {
            return Err(tonic::Status::unimplemented("no bulk"));
        }
        let request = request.into_inner();
        let response = answer_entries(&request);
        self.seen.lock().unwrap().push(request);
        Ok(tonic::Response::new(response))
    }
}

/// An app that only knows the alpha bulk call.
#[derive(Clone, Default)]
struct AlphaApp {
    seen: Arc<Mutex<Vec<rt::TopicEventBulkRequest>>>,
}

#[tonic::async_trait]
impl AppCallbackAlpha for AlphaApp {
    async fn on_bulk_topic_event_alpha1(
        &self,
        request: tonic::Request<rt::TopicEventBulkRequest>,
    ) -> Result<tonic::Response<rt::TopicEventBulkResponse>, tonic::Status> {
        let request = request.into_inner();
        let response = answer_entries(&request);
        self.seen.lock().unwrap().push(request);
        Ok(tonic::Response::new(response))
    }
}

fn data_of(request: &rt::TopicEventBulkRequest) -> Vec<String> {
    request
        .entries
        .iter()
        .map(|entry| match &entry.event {
            Some(Event::CloudEvent(event)) => String::from_utf8_lossy(&event.data).into_owned(),
            _ => String::new(),
        })
        .collect()
}

#[tokio::test]
async fn grpc_apps_receive_bulk_requests_and_answer_per_entry() {
    let bus = bus().await;
    let (_dead, mut dead) = watch_topic(&bus, "dead").await;
    let app = GrpcApp {
        bulk: true,
        ..GrpcApp::default()
    };
    let address = test_support::serve(
        tonic::service::Routes::new(AppCallbackServer::new(app.clone())).into_axum_router(),
    )
    .await;
    let channel = channel(address.port(), AppProtocol::Grpc);
    let handler = bulk_handler(
        &bus,
        &channel,
        "orders",
        "/bulk",
        "dead",
        settings(4, 10_000),
    );
    let verdicts = handler
        .handle_all(&["ok", "drop", "retry", "missing"])
        .await;
    assert!(verdicts.iter().all(Result::is_ok), "{verdicts:?}");
    let seen = app.seen.lock().unwrap().clone();
    let batches: Vec<Vec<String>> = seen.iter().map(data_of).collect();
    assert_eq!(
        batches,
        [
            vec!["ok", "drop", "retry", "missing"],
            vec!["retry", "missing"],
            vec!["retry", "missing"],
            vec!["retry", "missing"],
        ]
    );
    assert_eq!(dead_lettered(&mut dead).await, ["drop", "missing", "retry"]);
    let request = &seen[0];
    assert_eq!(request.r#type, "com.dapr.event.sent.bulk");
    assert_eq!(request.topic, "orders");
    assert_eq!(request.pubsub_name, "bus");
    assert_eq!(request.path, "/bulk");
    assert_eq!(request.metadata["pubsubName"], "bus");
    assert!(!request.id.is_empty());
    let entry = &request.entries[0];
    assert_eq!(entry.content_type, "application/cloudevents+json");
    assert_eq!(entry.metadata["origin"], "test");
    let Some(Event::CloudEvent(event)) = &entry.event else {
        panic!("{entry:?}");
    };
    assert_eq!(event.id, "id-ok");
    assert_eq!(event.source, "myapp");
    assert_eq!(event.data_content_type, "text/plain");
    assert!(
        event
            .extensions
            .as_ref()
            .unwrap()
            .fields
            .contains_key("topic")
    );
}

#[tokio::test]
async fn grpc_apps_without_on_bulk_topic_event_get_the_alpha_call_or_drop_the_batch() {
    let bus = bus().await;
    let (_dead, mut dead) = watch_topic(&bus, "dead").await;

    let alpha = AlphaApp::default();
    let routes = tonic::service::Routes::new(AppCallbackServer::new(GrpcApp::default()))
        .add_service(AppCallbackAlphaServer::new(alpha.clone()));
    let address = test_support::serve(routes.into_axum_router()).await;
    let channel_to_alpha = channel(address.port(), AppProtocol::Grpc);
    let handler = bulk_handler(
        &bus,
        &channel_to_alpha,
        "orders",
        "/bulk",
        "dead",
        settings(2, 10_000),
    );
    let verdicts = handler.handle_all(&["ok", "drop"]).await;
    assert!(verdicts.iter().all(Result::is_ok), "{verdicts:?}");
    let seen = alpha.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(data_of(&seen[0]), ["ok", "drop"]);
    assert_eq!(dead_lettered(&mut dead).await, ["drop"]);

    // Neither call implemented: the batch is dropped without dead-lettering.
    let neither = test_support::serve(
        tonic::service::Routes::new(AppCallbackServer::new(GrpcApp::default())).into_axum_router(),
    )
    .await;
    let channel_to_neither = channel(neither.port(), AppProtocol::Grpc);
    let handler = bulk_handler(
        &bus,
        &channel_to_neither,
        "orders",
        "/bulk",
        "dead",
        settings(2, 10_000),
    );
    let verdicts = handler.handle_all(&["ok", "retry"]).await;
    assert!(verdicts.iter().all(Result::is_ok), "{verdicts:?}");
    assert!(dead_lettered(&mut dead).await.is_empty());
}

/// A sidecar publishing through its HTTP API and running `subscriptions` of `resources`
/// against `app`.
struct Sidecar {
    apis: test_support::PublicApis,
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<()>,
}

impl Sidecar {
    async fn start(resources: &str, app: &AppChannel, subscriptions: Vec<Subscription>) -> Self {
        let metrics = SidecarMetrics::disabled();
        let loaded =
            dapr_resources::loader::parse_str(std::path::Path::new("resources.yaml"), resources)
                .unwrap();
        let set = test_support::load_yaml(resources, &metrics).await;
        let apis = test_support::serve_public_apis_with_resiliencies(
            test_support::default_config(),
            set,
            SecretScopes::default(),
            metrics,
            loaded.resiliencies.clone(),
        )
        .await;
        let subscriber = Subscriber::new(
            apis.runtime.clone(),
            AppTarget::new(app, None),
            subscriptions,
        );
        let shutdown = Shutdown::new();
        let stop = shutdown.signal();
        let health = app.health().subscribe();
        let task = tokio::spawn(async move { subscriber.run(health, stop).await });
        // Subscribing happens in the task; give it a moment before publishing.
        tokio::time::sleep(Duration::from_millis(200)).await;
        Self {
            apis,
            shutdown,
            task,
        }
    }

    async fn publish(&self, pubsub: &str, topic: &str, data: &str) {
        let status = test_support::post(
            self.apis.http,
            &format!("/v1.0/publish/{pubsub}/{topic}"),
            "text/plain",
            data.to_owned(),
        )
        .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
    }

    async fn stop(self) {
        self.shutdown.trigger();
        self.task.await.unwrap();
    }
}

fn bulk_subscription(
    pubsub: &str,
    topic: &str,
    max_messages: i32,
    max_await_ms: i32,
) -> Subscription {
    Subscription {
        pubsub_name: pubsub.into(),
        topic: topic.into(),
        metadata: BTreeMap::new(),
        rules: route("/bulk"),
        dead_letter_topic: String::new(),
        bulk_subscribe: Some(BulkSubscribe {
            enabled: true,
            max_messages_count: max_messages,
            max_await_duration_ms: max_await_ms,
        }),
        scopes: Vec::new(),
        kind: SubscriptionType::Programmatic,
    }
}

/// Waits until `seen` holds `count` requests (bounded), returning them.
async fn wait_for(seen: &Arc<Mutex<Vec<Seen>>>, count: usize, within: Duration) -> Vec<Seen> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline && seen.lock().unwrap().len() < count {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    seen.lock().unwrap().clone()
}

#[tokio::test]
async fn a_one_at_a_time_broker_gets_partial_batches_after_max_await() {
    let (app, seen) = http_app(by_entry()).await;
    let sidecar = Sidecar::start(
        RESOURCES,
        &app,
        vec![bulk_subscription("bus", "orders", 10, 300)],
    )
    .await;
    let started = Instant::now();
    sidecar.publish("bus", "orders", "first").await;
    sidecar.publish("bus", "orders", "second").await;
    let seen = wait_for(&seen, 2, Duration::from_secs(10)).await;
    // pubsub.in-memory waits for each message's acknowledgement before handing over the
    // next, so each batch holds one message and is flushed after maxAwaitDurationMs.
    assert!(
        started.elapsed() >= Duration::from_millis(600),
        "{:?}",
        started.elapsed()
    );
    let batches: Vec<Vec<String>> = seen.iter().map(Seen::data).collect();
    assert_eq!(batches, [vec!["first"], vec!["second"]]);
    assert_eq!(seen[0].body["entries"][0]["event"]["topic"], "orders");
    sidecar.stop().await;
}

#[tokio::test]
async fn a_concurrent_broker_fills_batches_and_redelivers_what_failed() {
    let redis = dapr_testkit::servers::Redis::start().await.unwrap();
    let resources = format!(
        r#"
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {{name: streams}}
spec:
  type: pubsub.redis
  version: v1
  metadata:
  - {{name: redisHost, value: "{}"}}
  - {{name: processingTimeout, value: 2s}}
  - {{name: redeliverInterval, value: 200ms}}
"#,
        redis.host()
    );
    // The app asks for "again" to be retried the first time it sees it.
    let retried = Arc::new(AtomicBool::new(false));
    let answer: Answer = Arc::new(move |_: &str, body: &Value| {
        let statuses: Vec<Value> = body["entries"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|entry| {
                let again = entry["event"]["data"] == "again";
                let status = if again && !retried.swap(true, Ordering::SeqCst) {
                    "RETRY"
                } else {
                    "SUCCESS"
                };
                serde_json::json!({"entryId": entry["entryId"], "status": status})
            })
            .collect();
        (
            StatusCode::OK,
            serde_json::json!({ "statuses": statuses }).to_string(),
        )
    });
    let (app, seen) = http_app(answer).await;
    let sidecar = Sidecar::start(
        &resources,
        &app,
        vec![bulk_subscription("streams", "orders", 5, 1_000)],
    )
    .await;
    for data in ["one", "two", "three", "four", "again"] {
        sidecar.publish("streams", "orders", data).await;
    }
    let seen = wait_for(&seen, 2, Duration::from_secs(20)).await;
    let batches: Vec<Vec<String>> = seen
        .iter()
        .map(|seen| {
            let mut data = seen.data();
            data.sort();
            data
        })
        .collect();
    // Redis streams hands messages to several workers at once: one full batch. The entry
    // the app asked to retry was not acknowledged, so the broker delivered it again.
    assert_eq!(
        batches,
        [vec!["again", "four", "one", "three", "two"], vec!["again"],]
    );
    sidecar.stop().await;
}

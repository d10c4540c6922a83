//! Delivery end to end inside one process: events published through the sidecar's HTTP
//! publish API on real `pubsub.in-memory` brokers reach a real axum HTTP app or tonic gRPC
//! app through a real app channel; the app's answers (SUCCESS, RETRY, DROP, 404, 500,
//! gRPC statuses) settle them, with inbound retries, dead-letter topics, raw payloads,
//! routing rules, scopes and ingress metrics checked.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use dapr_kit::metrics::MetricsRegistry;
use dapr_kit::shutdown::Shutdown;
use dapr_proto::runtime::app_callback_server::{AppCallback, AppCallbackServer};
use dapr_proto::runtime::{self as rt, topic_event_response::TopicEventResponseStatus};
use serde_json::Value;

use super::test_app::{RESOURCES, Seen, channel, http_app};
use super::*;
use crate::config::AppProtocol;
use crate::observability::metrics::{MetricsSettings, SidecarMetrics};
use crate::pubsub::subscriptions::{Rule, SubscriptionType};
use crate::secrets::SecretScopes;
use crate::test_support::{self, PublicApis};

struct Sidecar {
    apis: PublicApis,
    registry: MetricsRegistry,
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<()>,
}

impl Sidecar {
    async fn publish(&self, pubsub: &str, topic: &str, body: &str, content_type: &str) {
        let status = test_support::post(
            self.apis.http,
            &format!("/v1.0/publish/{pubsub}/{topic}"),
            content_type,
            body.to_owned(),
        )
        .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
    }

    async fn stop(self) {
        self.shutdown.trigger();
        self.task.await.unwrap();
    }
}

fn subscription(pubsub: &str, topic: &str, rules: Vec<Rule>) -> Subscription {
    Subscription {
        pubsub_name: pubsub.into(),
        topic: topic.into(),
        metadata: BTreeMap::new(),
        rules,
        dead_letter_topic: String::new(),
        bulk_subscribe: None,
        scopes: Vec::new(),
        kind: SubscriptionType::Programmatic,
    }
}

fn route(path: &str) -> Vec<Rule> {
    vec![Rule {
        match_expression: String::new(),
        path: path.into(),
    }]
}

/// A sidecar over [`RESOURCES`] delivering `subscriptions` to the app on `app`.
async fn sidecar(app: AppChannel, subscriptions: Vec<Subscription>) -> Sidecar {
    let registry = MetricsRegistry::new();
    let metrics =
        SidecarMetrics::register(&registry, &MetricsSettings::new("myapp", "default")).unwrap();
    let resources =
        dapr_resources::loader::parse_str(std::path::Path::new("resources.yaml"), RESOURCES)
            .unwrap();
    let set = crate::components::load(
        &resources.components,
        test_support::load_context(&metrics),
        None,
    )
    .await
    .unwrap();
    let apis = test_support::serve_public_apis_with_resiliencies(
        test_support::default_config(),
        set,
        SecretScopes::default(),
        metrics,
        resources.resiliencies.clone(),
    )
    .await;
    let subscriber = Subscriber::new(
        apis.runtime.clone(),
        AppTarget::new(&app, None),
        subscriptions,
    );
    let shutdown = Shutdown::new();
    let stop = shutdown.signal();
    let health = app.health().subscribe();
    let task = tokio::spawn(async move { subscriber.run(health, stop).await });
    // Subscribing happens in the task; give it a moment before publishing.
    tokio::time::sleep(Duration::from_millis(100)).await;
    Sidecar {
        apis,
        registry,
        shutdown,
        task,
    }
}

/// Waits until `seen` holds `count` deliveries (bounded), returning them.
async fn wait_for(seen: &Arc<Mutex<Vec<Seen>>>, count: usize) -> Vec<Seen> {
    for _ in 0..200 {
        if seen.lock().unwrap().len() >= count {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    seen.lock().unwrap().clone()
}

fn ok(_: &str, _: &Value) -> (StatusCode, String) {
    (StatusCode::OK, String::new())
}

#[tokio::test]
async fn http_apps_receive_cloud_events_on_their_route() {
    let (app, seen) = http_app(Arc::new(ok)).await;
    let sidecar = sidecar(app, vec![subscription("bus", "orders", route("/orders"))]).await;
    sidecar
        .publish("bus", "orders", r#"{"amount":7}"#, "application/json")
        .await;
    let seen = wait_for(&seen, 1).await;
    assert_eq!(seen.len(), 1);
    let delivery = &seen[0];
    assert_eq!(delivery.path, "/orders");
    assert_eq!(
        delivery.headers["content-type"],
        "application/cloudevents+json"
    );
    assert_eq!(delivery.headers["pubsubname"], "bus");
    assert_eq!(delivery.body["data"]["amount"], 7);
    assert_eq!(delivery.body["topic"], "orders");
    assert_eq!(delivery.body["pubsubname"], "bus");
    assert_eq!(delivery.body["source"], "myapp");
    let text = sidecar.registry.encode_text();
    assert!(
        text.lines().any(
            |line| line.starts_with("dapr_component_pubsub_ingress_count{")
                && line.contains("process_status=\"success\"")
                && line.contains("topic=\"orders\"")
        ),
        "{text}"
    );
    sidecar.stop().await;
}

fn always_retry(path: &str, _: &Value) -> (StatusCode, String) {
    if path == "/poison" {
        (StatusCode::OK, String::new())
    } else {
        (StatusCode::OK, r#"{"status":"RETRY"}"#.to_owned())
    }
}

#[tokio::test]
async fn failing_events_are_retried_by_policy_then_dead_lettered() {
    let (app, seen) = http_app(Arc::new(always_retry)).await;
    let mut failing = subscription("bus", "orders", route("/orders"));
    failing.dead_letter_topic = "poison".into();
    let sidecar = sidecar(
        app,
        vec![failing, subscription("bus", "poison", route("/poison"))],
    )
    .await;
    sidecar
        .publish("bus", "orders", r#"{"n":1}"#, "application/json")
        .await;
    let seen = wait_for(&seen, 5).await;
    let attempts = seen.iter().filter(|seen| seen.path == "/orders").count();
    // One attempt and three retries, then the dead-letter topic.
    assert_eq!(attempts, 4, "{seen:?}");
    let poisoned: Vec<_> = seen.iter().filter(|seen| seen.path == "/poison").collect();
    assert_eq!(poisoned.len(), 1);
    assert_eq!(poisoned[0].body["data"]["n"], 1);
    // The dead-lettered event is the original message.
    assert_eq!(poisoned[0].body["topic"], "orders");
    sidecar.stop().await;
}

fn by_path(path: &str, _: &Value) -> (StatusCode, String) {
    match path {
        "/missing" => (StatusCode::NOT_FOUND, "no".to_owned()),
        "/dropping" => (StatusCode::OK, r#"{"status":"DROP"}"#.to_owned()),
        _ => (StatusCode::OK, String::new()),
    }
}

#[tokio::test]
async fn dropped_and_not_found_events_go_to_the_dead_letter_topic_without_retries() {
    let (app, seen) = http_app(Arc::new(by_path)).await;
    let mut missing = subscription("bus", "a", route("/missing"));
    missing.dead_letter_topic = "dead".into();
    let mut dropping = subscription("bus", "b", route("/dropping"));
    dropping.dead_letter_topic = "dead".into();
    let sidecar = sidecar(
        app,
        vec![
            missing,
            dropping,
            subscription("bus", "dead", route("/dead")),
        ],
    )
    .await;
    sidecar.publish("bus", "a", "one", "text/plain").await;
    sidecar.publish("bus", "b", "two", "text/plain").await;
    let seen = wait_for(&seen, 4).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let count = |path: &str| seen.iter().filter(|seen| seen.path == path).count();
    assert_eq!(count("/missing"), 1);
    assert_eq!(count("/dropping"), 1);
    let mut dead: Vec<String> = seen
        .iter()
        .filter(|seen| seen.path == "/dead")
        .map(|seen| seen.body["data"].as_str().unwrap_or_default().to_owned())
        .collect();
    dead.sort();
    assert_eq!(dead, ["one", "two"]);
    sidecar.stop().await;
}

#[tokio::test]
async fn raw_payload_subscriptions_receive_a_made_cloud_event() {
    let (app, seen) = http_app(Arc::new(ok)).await;
    let mut raw = subscription("bus", "raw", route("/raw"));
    raw.metadata.insert("rawPayload".into(), "true".into());
    let sidecar = sidecar(app, vec![raw]).await;
    let status = test_support::post(
        sidecar.apis.http,
        "/v1.0/publish/bus/raw?metadata.rawPayload=true",
        "text/plain",
        "plain bytes".to_owned(),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let seen = wait_for(&seen, 1).await;
    assert_eq!(seen[0].body["data_base64"], "cGxhaW4gYnl0ZXM=");
    assert_eq!(seen[0].body["datacontenttype"], "application/octet-stream");
    sidecar.stop().await;
}

#[tokio::test]
async fn routing_rules_pick_the_first_matching_path() {
    let (app, seen) = http_app(Arc::new(ok)).await;
    let rules = vec![
        Rule {
            match_expression: r#"event.type == "widget""#.into(),
            path: "/widgets".into(),
        },
        Rule {
            match_expression: "event.data.amount > 100".into(),
            path: "/large".into(),
        },
        Rule {
            match_expression: String::new(),
            path: "/other".into(),
        },
    ];
    let sidecar = sidecar(app, vec![subscription("bus", "routed", rules)]).await;
    let widget = r#"{"specversion":"1.0","id":"w","source":"s","type":"widget","datacontenttype":"application/json","data":{"amount":500}}"#;
    sidecar
        .publish("bus", "routed", widget, "application/cloudevents+json")
        .await;
    sidecar
        .publish("bus", "routed", r#"{"amount":150}"#, "application/json")
        .await;
    sidecar
        .publish("bus", "routed", r#"{"amount":5}"#, "application/json")
        .await;
    let seen = wait_for(&seen, 3).await;
    let paths: Vec<&str> = seen.iter().map(|seen| seen.path.as_str()).collect();
    assert_eq!(paths, ["/widgets", "/large", "/other"]);
    sidecar.stop().await;
}

#[tokio::test]
async fn subscription_scopes_keep_the_app_off_forbidden_topics() {
    let (app, seen) = http_app(Arc::new(ok)).await;
    let sidecar = sidecar(
        app,
        vec![
            subscription("scoped", "open", route("/open")),
            subscription("scoped", "closed", route("/closed")),
        ],
    )
    .await;
    sidecar.publish("scoped", "closed", "x", "text/plain").await;
    sidecar.publish("scoped", "open", "y", "text/plain").await;
    let seen = wait_for(&seen, 1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let paths: Vec<&str> = seen.iter().map(|seen| seen.path.as_str()).collect();
    assert_eq!(paths, ["/open"]);
    sidecar.stop().await;
}

/// A gRPC app answering events on `orders` by their data: `retry`, `drop`, `fail` (an
/// error status) or anything else (success); it accepts every dead-lettered event and
/// records the requests.
#[derive(Clone, Default)]
struct GrpcApp {
    seen: Arc<Mutex<Vec<rt::TopicEventRequest>>>,
}

#[tonic::async_trait]
impl AppCallback for GrpcApp {
    async fn on_invoke(
        &self,
        _: tonic::Request<dapr_proto::common::InvokeRequest>,
    ) -> Result<tonic::Response<dapr_proto::common::InvokeResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("no"))
    }

    async fn list_topic_subscriptions(
        &self,
        _: tonic::Request<()>,
    ) -> Result<tonic::Response<rt::ListTopicSubscriptionsResponse>, tonic::Status> {
        Ok(tonic::Response::new(Default::default()))
    }

    async fn on_topic_event(
        &self,
        request: tonic::Request<rt::TopicEventRequest>,
    ) -> Result<tonic::Response<rt::TopicEventResponse>, tonic::Status> {
        let request = request.into_inner();
        let data = String::from_utf8_lossy(&request.data).into_owned();
        let dead_letter = request.topic == "dead";
        self.seen.lock().unwrap().push(request);
        if dead_letter {
            return Ok(tonic::Response::new(rt::TopicEventResponse::default()));
        }
        let status = match data.as_str() {
            "retry" => TopicEventResponseStatus::Retry,
            "drop" => TopicEventResponseStatus::Drop,
            "fail" => return Err(tonic::Status::internal("broken")),
            _ => TopicEventResponseStatus::Success,
        };
        Ok(tonic::Response::new(rt::TopicEventResponse {
            status: status as i32,
        }))
    }

    async fn list_input_bindings(
        &self,
        _: tonic::Request<()>,
    ) -> Result<tonic::Response<rt::ListInputBindingsResponse>, tonic::Status> {
        Ok(tonic::Response::new(Default::default()))
    }

    async fn on_binding_event(
        &self,
        _: tonic::Request<rt::BindingEventRequest>,
    ) -> Result<tonic::Response<rt::BindingEventResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("no"))
    }
}

async fn grpc_app(app: GrpcApp) -> SocketAddr {
    let router = tonic::service::Routes::new(AppCallbackServer::new(app)).into_axum_router();
    test_support::serve(router).await
}

#[tokio::test]
async fn grpc_apps_receive_topic_events_and_their_statuses_count() {
    let app = GrpcApp::default();
    let address = grpc_app(app.clone()).await;
    let mut orders = subscription("bus", "orders", route("/orders"));
    orders.dead_letter_topic = "dead".into();
    let sidecar = sidecar(
        channel(address.port(), AppProtocol::Grpc),
        vec![orders, subscription("bus", "dead", route("/dead"))],
    )
    .await;
    for data in ["ok", "retry", "drop", "fail"] {
        sidecar.publish("bus", "orders", data, "text/plain").await;
    }
    // ok: 1; retry: 4 then dead; drop: 1 then dead; fail: 4 then dead.
    let expected = 1 + 4 + 1 + 4 + 3;
    for _ in 0..200 {
        if app.seen.lock().unwrap().len() >= expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let seen = app.seen.lock().unwrap().clone();
    let count = |topic: &str, data: &str| {
        seen.iter()
            .filter(|request| request.topic == topic && request.data == data.as_bytes())
            .count()
    };
    assert_eq!(count("orders", "ok"), 1);
    assert_eq!(count("orders", "retry"), 4);
    assert_eq!(count("orders", "drop"), 1);
    assert_eq!(count("orders", "fail"), 4);
    for data in ["retry", "drop", "fail"] {
        assert_eq!(count("dead", data), 1, "{data}");
    }
    assert_eq!(count("dead", "ok"), 0);
    let first = seen
        .iter()
        .find(|request| request.topic == "orders")
        .unwrap();
    assert_eq!(first.path, "/orders");
    assert_eq!(first.pubsub_name, "bus");
    assert_eq!(first.data_content_type, "text/plain");
    assert_eq!(first.source, "myapp");
    sidecar.stop().await;
}

#[tokio::test]
async fn stopping_unsubscribes_so_later_events_are_not_delivered() {
    let (app, seen) = http_app(Arc::new(ok)).await;
    let sidecar = sidecar(app, vec![subscription("bus", "orders", route("/orders"))]).await;
    sidecar.shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(5), &mut { sidecar.task })
        .await
        .expect("stopping is prompt")
        .unwrap();
    let status = test_support::post(
        sidecar.apis.http,
        "/v1.0/publish/bus/orders",
        "text/plain",
        "late".to_owned(),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_reloaded_component_is_subscribed_again() {
    let (app, seen) = http_app(Arc::new(ok)).await;
    let sidecar = sidecar(app, vec![subscription("bus", "orders", route("/orders"))]).await;
    sidecar
        .publish("bus", "orders", "before", "text/plain")
        .await;
    wait_for(&seen, 1).await;
    // A reload replaces every broker with a new one: publishes now reach the new broker.
    let metrics = SidecarMetrics::disabled();
    let resources =
        dapr_resources::loader::parse_str(std::path::Path::new("resources.yaml"), RESOURCES)
            .unwrap();
    let replacement = crate::components::load(
        &resources.components,
        test_support::load_context(&metrics),
        None,
    )
    .await
    .unwrap();
    let replaced = sidecar.apis.runtime.components.replace(replacement);
    tokio::time::sleep(Duration::from_millis(200)).await;
    replaced.close().await;
    sidecar
        .publish("bus", "orders", "after", "text/plain")
        .await;
    let seen = wait_for(&seen, 2).await;
    let data: Vec<&str> = seen
        .iter()
        .map(|seen| seen.body["data"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(data, ["before", "after"]);
    sidecar.stop().await;
}

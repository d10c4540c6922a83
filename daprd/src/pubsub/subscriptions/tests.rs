//! Subscription discovery: parsing the app's `/dapr/subscribe` document and gRPC answer,
//! declarative resources and their scopes, upstream's merge rule, and discovery through a
//! real app channel against an axum HTTP app and a tonic gRPC app on loopback.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use dapr_proto::common;
use dapr_proto::runtime::app_callback_server::{AppCallback, AppCallbackServer};
use dapr_resources::subscription::{v1alpha1, v2alpha1};
use serde_json::json;

use super::*;
use crate::channel::ChannelOptions;
use crate::config::{AppConnection, AppProtocol};

fn rule(match_expression: &str, path: &str) -> Rule {
    Rule {
        match_expression: match_expression.into(),
        path: path.into(),
    }
}

fn parse(document: serde_json::Value) -> Vec<Subscription> {
    parse_app_document(document.to_string().as_bytes()).unwrap()
}

fn programmatic(pubsub: &str, topic: &str, path: &str) -> Subscription {
    Subscription {
        pubsub_name: pubsub.into(),
        topic: topic.into(),
        metadata: BTreeMap::new(),
        rules: vec![rule("", path)],
        dead_letter_topic: String::new(),
        bulk_subscribe: None,
        scopes: Vec::new(),
        kind: SubscriptionType::Programmatic,
    }
}

fn declared(pubsub: &str, topic: &str, path: &str) -> Subscription {
    Subscription {
        kind: SubscriptionType::Declarative,
        ..programmatic(pubsub, topic, path)
    }
}

// ---------------------------------------------------------------------------------------
// The /dapr/subscribe document
// ---------------------------------------------------------------------------------------

#[test]
fn v1_route_becomes_the_default_rule_with_everything_else_kept() {
    let subscriptions = parse(json!([{
        "pubsubname": "pubsub",
        "topic": "orders",
        "route": "/orders",
        "deadLetterTopic": "poison",
        "metadata": {"rawPayload": "true"},
        "bulkSubscribe": {"enabled": true, "maxMessagesCount": 10, "maxAwaitDurationMs": 500}
    }]));
    assert_eq!(
        subscriptions,
        [Subscription {
            pubsub_name: "pubsub".into(),
            topic: "orders".into(),
            metadata: BTreeMap::from([("rawPayload".into(), "true".into())]),
            rules: vec![rule("", "/orders")],
            dead_letter_topic: "poison".into(),
            bulk_subscribe: Some(BulkSubscribe {
                enabled: true,
                max_messages_count: 10,
                max_await_duration_ms: 500,
            }),
            scopes: Vec::new(),
            kind: SubscriptionType::Programmatic,
        }]
    );
}

#[test]
fn v2_rules_keep_their_order_and_the_default_comes_last() {
    let subscriptions = parse(json!([{
        "pubsubname": "pubsub",
        "topic": "orders",
        "route": "/ignored",
        "routes": {
            "rules": [
                {"match": "  event.type == \"big\" ", "path": "/big"},
                {"match": "event.type == \"small\"", "path": "/small"}
            ],
            "default": "/other"
        }
    }]));
    assert_eq!(
        subscriptions[0].rules,
        [
            rule("event.type == \"big\"", "/big"),
            rule("event.type == \"small\"", "/small"),
            rule("", "/other"),
        ]
    );
    assert_eq!(
        subscriptions[0].bulk_subscribe,
        Some(BulkSubscribe::default())
    );
}

#[test]
fn v2_rules_without_default_fall_back_to_the_v1_route() {
    let subscriptions = parse(json!([{
        "pubsubname": "pubsub",
        "topic": "orders",
        "route": "/fallback",
        "routes": {"rules": [{"match": "event.type == \"a\"", "path": "/a"}]}
    }]));
    assert_eq!(
        subscriptions[0].rules,
        [rule("event.type == \"a\"", "/a"), rule("", "/fallback")]
    );
}

#[test]
fn entries_without_any_route_are_dropped_and_the_rest_kept() {
    let subscriptions = parse(json!([
        {"pubsubname": "pubsub", "topic": "lost"},
        null,
        {"pubsubname": "pubsub", "topic": "kept", "routes": {"default": "/kept"}},
        {"pubsubname": "pubsub", "topic": "empty", "routes": {"rules": [], "default": ""}}
    ]));
    assert_eq!(subscriptions.len(), 1);
    assert_eq!(subscriptions[0].topic, "kept");
}

#[test]
fn field_names_match_case_insensitively_and_unknown_fields_are_ignored() {
    let subscriptions = parse(json!([{
        "pubsubName": "pubsub",
        "Topic": "orders",
        "ROUTE": "/orders",
        "DeadLetterTopic": "poison",
        "somethingElse": {"nested": [1, 2]}
    }]));
    assert_eq!(subscriptions[0].pubsub_name, "pubsub");
    assert_eq!(subscriptions[0].topic, "orders");
    assert_eq!(subscriptions[0].rules, [rule("", "/orders")]);
    assert_eq!(subscriptions[0].dead_letter_topic, "poison");
}

#[test]
fn empty_and_null_documents_mean_no_subscriptions() {
    for document in ["", "  \n", "null", "[]", "[] trailing text"] {
        assert_eq!(
            parse_app_document(document.as_bytes()).unwrap(),
            [],
            "{document:?}"
        );
    }
}

#[test]
fn malformed_documents_fail_whole() {
    for document in [
        "{",
        "[{\"pubsubname\": \"p\",",
        "{\"pubsubname\": \"p\"}",
        "[{\"pubsubname\": \"p\", \"topic\": 5, \"route\": \"/a\"}]",
        "[{\"pubsubname\": \"p\", \"topic\": \"t\", \"route\": \"/a\", \"metadata\": {\"k\": 1}}]",
        "[{\"pubsubname\": \"p\", \"topic\": \"t\", \"routes\": {\"rules\": {}}}]",
        "[{\"pubsubname\": \"p\", \"topic\": \"t\", \"route\": \"/a\", \"bulkSubscribe\": {\"maxMessagesCount\": 1.5}}]",
        "[{\"pubsubname\": \"p\", \"topic\": \"t\", \"route\": \"/a\", \"bulkSubscribe\": {\"enabled\": \"yes\"}}]",
        "[\"orders\"]",
    ] {
        let error = parse_app_document(document.as_bytes()).unwrap_err();
        assert!(!error.is_empty(), "{document}");
    }
    assert_eq!(
        parse_app_document(b"[{\"topic\": 5}]").unwrap_err(),
        "json: cannot unmarshal number into Go value of type string"
    );
}

// ---------------------------------------------------------------------------------------
// gRPC answers
// ---------------------------------------------------------------------------------------

#[test]
fn grpc_routes_become_rules_with_an_implicit_empty_default() {
    let topic = |name: &str, routes: Option<runtime::TopicRoutes>| runtime::TopicSubscription {
        pubsub_name: "pubsub".into(),
        topic: name.into(),
        routes,
        ..Default::default()
    };
    let subscriptions = app_grpc::from_response(runtime::ListTopicSubscriptionsResponse {
        subscriptions: vec![
            topic("none", None),
            topic("empty", Some(runtime::TopicRoutes::default())),
            topic(
                "routed",
                Some(runtime::TopicRoutes {
                    rules: vec![runtime::TopicRule {
                        r#match: " event.type == \"a\" ".into(),
                        path: "a".into(),
                    }],
                    default: "other".into(),
                }),
            ),
            runtime::TopicSubscription {
                bulk_subscribe: Some(runtime::BulkSubscribeConfig {
                    enabled: true,
                    max_messages_count: 5,
                    max_await_duration_ms: 50,
                }),
                dead_letter_topic: "poison".into(),
                metadata: [("k".to_string(), "v".to_string())].into(),
                ..topic("bulk", None)
            },
        ],
    });
    let rules: Vec<_> = subscriptions.iter().map(|s| s.rules.clone()).collect();
    assert_eq!(
        rules,
        [
            vec![rule("", "")],
            vec![rule("", "")],
            vec![rule("event.type == \"a\"", "a"), rule("", "other")],
            vec![rule("", "")],
        ]
    );
    assert_eq!(subscriptions[0].bulk_subscribe, None);
    assert_eq!(
        subscriptions[3].bulk_subscribe,
        Some(BulkSubscribe {
            enabled: true,
            max_messages_count: 5,
            max_await_duration_ms: 50,
        })
    );
    assert_eq!(subscriptions[3].dead_letter_topic, "poison");
    assert_eq!(subscriptions[3].metadata["k"], "v");
    assert!(
        subscriptions
            .iter()
            .all(|s| s.kind == SubscriptionType::Programmatic)
    );
}

// ---------------------------------------------------------------------------------------
// Declarative resources, merging and the metadata view
// ---------------------------------------------------------------------------------------

fn v2(value: serde_json::Value) -> v2alpha1::Subscription {
    serde_json::from_value(value).unwrap()
}

#[test]
fn declarative_resources_in_scope_become_subscriptions() {
    let old: v1alpha1::Subscription = serde_json::from_value(json!({
        "apiVersion": "dapr.io/v1alpha1",
        "kind": "Subscription",
        "metadata": {"name": "old"},
        "spec": {"pubsubname": "pubsub", "topic": "v1", "route": "/v1", "deadLetterTopic": "dl"},
        "scopes": ["myapp", "other"]
    }))
    .unwrap();
    let resources = [
        old.into(),
        v2(json!({
            "apiVersion": "dapr.io/v2alpha1",
            "kind": "Subscription",
            "metadata": {"name": "new"},
            "spec": {
                "pubsubname": "pubsub",
                "topic": "v2",
                "metadata": {"k": "v"},
                "routes": {
                    "rules": [{"match": "event.type == \"x\"", "path": "/x"}],
                    "default": "/rest"
                },
                "bulkSubscribe": {"enabled": true, "maxMessagesCount": 3}
            }
        })),
        v2(json!({
            "apiVersion": "dapr.io/v2alpha1",
            "kind": "Subscription",
            "metadata": {"name": "elsewhere"},
            "spec": {"pubsubname": "pubsub", "topic": "theirs", "routes": {"default": "/t"}},
            "scopes": ["other"]
        })),
    ];
    let subscriptions = declarative(&resources, "myapp");
    assert_eq!(subscriptions.len(), 2);
    assert_eq!(subscriptions[0].topic, "v1");
    assert_eq!(subscriptions[0].rules, [rule("", "/v1")]);
    assert_eq!(subscriptions[0].dead_letter_topic, "dl");
    assert_eq!(subscriptions[0].scopes, ["myapp", "other"]);
    assert_eq!(subscriptions[1].topic, "v2");
    assert_eq!(
        subscriptions[1].rules,
        [rule("event.type == \"x\"", "/x"), rule("", "/rest")]
    );
    assert_eq!(subscriptions[1].metadata["k"], "v");
    assert_eq!(
        subscriptions[1].bulk_subscribe,
        Some(BulkSubscribe {
            enabled: true,
            max_messages_count: 3,
            max_await_duration_ms: 0,
        })
    );
    assert!(
        subscriptions
            .iter()
            .all(|s| s.kind == SubscriptionType::Declarative)
    );
    assert_eq!(declarative(&resources, "other").len(), 3);
}

#[test]
fn merge_keeps_the_first_declarative_and_lets_programmatic_replace_in_place() {
    let merged = merge(
        &[
            declared("pubsub", "a", "/declared-a"),
            declared("pubsub", "b", "/declared-b"),
            declared("pubsub", "a", "/second-a"),
            declared("other", "a", "/other-a"),
        ],
        &[
            programmatic("pubsub", "b", "/app-b"),
            programmatic("pubsub", "c", "/app-c"),
            programmatic("pubsub", "c", "/app-c2"),
        ],
    );
    let listed: Vec<_> = merged
        .iter()
        .map(|s| {
            (
                s.pubsub_name.as_str(),
                s.topic.as_str(),
                s.rules[0].path.as_str(),
                s.kind,
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            ("pubsub", "a", "/declared-a", SubscriptionType::Declarative),
            ("pubsub", "b", "/app-b", SubscriptionType::Programmatic),
            ("other", "a", "/other-a", SubscriptionType::Declarative),
            ("pubsub", "c", "/app-c2", SubscriptionType::Programmatic),
        ]
    );
}

#[test]
fn metadata_view_carries_rules_type_and_dead_letter_topic() {
    let mut subscription = programmatic("pubsub", "orders", "/rest");
    subscription
        .rules
        .insert(0, rule("event.type == \"a\"", "/a"));
    subscription.dead_letter_topic = "poison".into();
    subscription.metadata.insert("k".into(), "v".into());
    let view = subscription.to_metadata();
    assert_eq!(view.pubsub_name, "pubsub");
    assert_eq!(view.topic, "orders");
    assert_eq!(view.dead_letter_topic, "poison");
    assert_eq!(view.metadata["k"], "v");
    assert_eq!(
        view.r#type,
        runtime::PubsubSubscriptionType::Programmatic as i32
    );
    let rules: Vec<_> = view
        .rules
        .unwrap()
        .rules
        .into_iter()
        .map(|r| (r.r#match, r.path))
        .collect();
    assert_eq!(
        rules,
        [
            ("event.type == \"a\"".to_string(), "/a".to_string()),
            (String::new(), "/rest".to_string())
        ]
    );
}

// ---------------------------------------------------------------------------------------
// Discovery through a real app channel
// ---------------------------------------------------------------------------------------

fn app_channel(port: u16, protocol: AppProtocol) -> AppChannel {
    AppChannel::new(
        AppConnection {
            address: "127.0.0.1".into(),
            port,
            protocol,
        },
        4 << 20,
        ChannelOptions::default(),
    )
    .unwrap()
}

/// An HTTP app answering `/dapr/subscribe` with `status` and `body`, recording the
/// `dapr-app-id` header it received.
async fn http_app(status: StatusCode, body: &'static str) -> (u16, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let recorder = Arc::clone(&seen);
    let router = Router::new().route(
        "/dapr/subscribe",
        get(move |headers: HeaderMap| async move {
            let app_id = headers
                .get("dapr-app-id")
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default()
                .to_string();
            recorder.lock().unwrap().push(app_id);
            (status, [("content-type", "application/json")], body)
        }),
    );
    let address = crate::test_support::serve(router).await;
    (address.port(), seen)
}

#[tokio::test]
async fn http_app_subscriptions_are_read_through_the_channel() {
    let (port, seen) = http_app(
        StatusCode::OK,
        r#"[{"pubsubname":"pubsub","topic":"orders","routes":{"rules":[{"match":"event.type == \"big\"","path":"/big"}],"default":"/orders"}},
            {"pubsubname":"pubsub","topic":"legacy","route":"/legacy"}]"#,
    )
    .await;
    let subscriptions = discover(&app_channel(port, AppProtocol::Http), "myapp", None)
        .await
        .unwrap();
    assert_eq!(seen.lock().unwrap().as_slice(), ["myapp"]);
    assert_eq!(subscriptions.len(), 2);
    assert_eq!(
        subscriptions[0].rules,
        [rule("event.type == \"big\"", "/big"), rule("", "/orders")]
    );
    assert_eq!(subscriptions[1].rules, [rule("", "/legacy")]);
}

#[tokio::test]
async fn http_app_without_the_endpoint_or_failing_has_no_subscriptions() {
    for status in [StatusCode::NOT_FOUND, StatusCode::INTERNAL_SERVER_ERROR] {
        let (port, seen) =
            http_app(status, r#"[{"pubsubname":"p","topic":"t","route":"/t"}]"#).await;
        let subscriptions = discover(&app_channel(port, AppProtocol::Http), "myapp", None)
            .await
            .unwrap();
        assert_eq!(subscriptions, [], "{status}");
        assert_eq!(
            seen.lock().unwrap().len(),
            1,
            "a status is an answer, not retried"
        );
    }
}

#[tokio::test]
async fn http_app_with_a_malformed_document_fails_discovery() {
    let (port, _) = http_app(StatusCode::OK, r#"{"pubsubname":"p"}"#).await;
    let error = discover(&app_channel(port, AppProtocol::Http), "myapp", None)
        .await
        .unwrap_err();
    assert!(matches!(error, DiscoveryError::Document(_)), "{error}");
    assert!(
        error
            .to_string()
            .starts_with("error getting topics from app: "),
        "{error}"
    );
}

#[tokio::test]
async fn unreachable_http_app_fails_after_the_initialization_retries() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let started = std::time::Instant::now();
    let error = discover(&app_channel(port, AppProtocol::Http), "myapp", None)
        .await
        .unwrap_err();
    assert!(matches!(error, DiscoveryError::App(_)), "{error}");
    // Three retries: at least 0.25 + 0.375 + 0.5 s of waiting with full jitter.
    assert!(started.elapsed() >= std::time::Duration::from_millis(1100));
}

/// A gRPC app; with `subscriptions` it implements `ListTopicSubscriptions`, recording the
/// `dapr-api-token` it received.
struct GrpcApp {
    subscriptions: Option<Vec<runtime::TopicSubscription>>,
    tokens: Arc<Mutex<Vec<String>>>,
}

#[tonic::async_trait]
impl AppCallback for GrpcApp {
    async fn on_invoke(
        &self,
        _request: tonic::Request<common::InvokeRequest>,
    ) -> Result<tonic::Response<common::InvokeResponse>, tonic::Status> {
        Ok(tonic::Response::new(common::InvokeResponse::default()))
    }

    async fn list_topic_subscriptions(
        &self,
        request: tonic::Request<()>,
    ) -> Result<tonic::Response<runtime::ListTopicSubscriptionsResponse>, tonic::Status> {
        let token = request
            .metadata()
            .get("dapr-api-token")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_string();
        self.tokens.lock().unwrap().push(token);
        match &self.subscriptions {
            Some(subscriptions) => Ok(tonic::Response::new(
                runtime::ListTopicSubscriptionsResponse {
                    subscriptions: subscriptions.clone(),
                },
            )),
            None => Err(tonic::Status::unimplemented("not here")),
        }
    }
}

async fn grpc_app(
    subscriptions: Option<Vec<runtime::TopicSubscription>>,
) -> (u16, Arc<Mutex<Vec<String>>>) {
    let tokens = Arc::new(Mutex::new(Vec::new()));
    let router = tonic::service::Routes::new(AppCallbackServer::new(GrpcApp {
        subscriptions,
        tokens: Arc::clone(&tokens),
    }))
    .into_axum_router();
    let address = crate::test_support::serve(router).await;
    (address.port(), tokens)
}

#[tokio::test]
async fn grpc_app_subscriptions_are_listed_with_the_api_token() {
    let (port, tokens) = grpc_app(Some(vec![runtime::TopicSubscription {
        pubsub_name: "pubsub".into(),
        topic: "orders".into(),
        routes: Some(runtime::TopicRoutes {
            rules: vec![runtime::TopicRule {
                r#match: "event.type == \"a\"".into(),
                path: "a".into(),
            }],
            default: "rest".into(),
        }),
        dead_letter_topic: "poison".into(),
        ..Default::default()
    }]))
    .await;
    let subscriptions = discover(
        &app_channel(port, AppProtocol::Grpc),
        "myapp",
        Some("s3cret"),
    )
    .await
    .unwrap();
    assert_eq!(tokens.lock().unwrap().as_slice(), ["s3cret"]);
    assert_eq!(subscriptions.len(), 1);
    assert_eq!(subscriptions[0].topic, "orders");
    assert_eq!(subscriptions[0].dead_letter_topic, "poison");
    assert_eq!(
        subscriptions[0].rules,
        [rule("event.type == \"a\"", "a"), rule("", "rest")]
    );
}

#[tokio::test]
async fn grpc_app_without_list_topic_subscriptions_has_none() {
    let (port, tokens) = grpc_app(None).await;
    let subscriptions = discover(&app_channel(port, AppProtocol::Grpc), "myapp", None)
        .await
        .unwrap();
    assert_eq!(subscriptions, []);
    assert_eq!(
        tokens.lock().unwrap().len(),
        1,
        "Unimplemented is not retried"
    );
}

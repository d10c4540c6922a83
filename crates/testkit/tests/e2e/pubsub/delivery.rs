//! Plain delivery over `pubsub.redis`: events published with the SDK through one sidecar
//! reach the subscriber app behind another, as the CloudEvents upstream builds, on HTTP
//! (programmatic and declarative subscriptions side by side) and on gRPC (an app written
//! with the SDK's `dapr.ext.grpc.App`, with a routing rule).

use dapr_testkit::{Daprd, Redis};
use serde_json::{Value, json};

use super::{
    PUBSUB, Publish, SubscriberApp, TestDir, WAIT, on_path, programmatic, publish, wait_for_events,
    wait_subscribed,
};

/// A directory with `pubsub.redis` on `redis`.
fn redis_dir(redis: &Redis) -> TestDir {
    let dir = TestDir::new();
    dir.pubsub("pubsub.redis", &[("redisHost", redis.host())]);
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_app_receives_programmatic_and_declarative_subscriptions() {
    let redis = Redis::start().await.unwrap();
    let dir = redis_dir(&redis);
    dir.subscription("audit", "audit", "/audit", "subscriber");
    let events = dir.events_file("subscriber");
    let subscriptions = json!([programmatic("orders", "/orders")]).to_string();
    let app = SubscriberApp::start(
        "subscriber_http.py",
        &events,
        &[("SUBSCRIPTIONS", subscriptions)],
    )
    .await;
    let subscriber = Daprd::builder("subscriber")
        .app_port(app.port())
        .app_protocol("http")
        .resources_path(dir.resources())
        .start()
        .await
        .unwrap();
    wait_subscribed(&subscriber, "orders").await;
    wait_subscribed(&subscriber, "audit").await;
    let publisher = Daprd::builder("publisher")
        .resources_path(dir.resources())
        .start()
        .await
        .unwrap();

    publish(
        &publisher,
        &[
            Publish::json("orders", json!({"order": 1, "item": "book"})),
            Publish::json("audit", json!({"entry": "login"})),
        ],
    )
    .await;
    let received = wait_for_events(&events, &subscriber, "both events", WAIT, |events| {
        !on_path(events, "/orders").is_empty() && !on_path(events, "/audit").is_empty()
    })
    .await;

    for (path, topic, data) in [
        ("/orders", "orders", json!({"order": 1, "item": "book"})),
        ("/audit", "audit", json!({"entry": "login"})),
    ] {
        let delivered = on_path(&received, path);
        assert_eq!(delivered.len(), 1, "{path}: {received:#?}");
        let event = &delivered[0].event;
        assert_eq!(event["data"], data, "{event:#}");
        assert_eq!(event["topic"], topic, "{event:#}");
        assert_eq!(event["pubsubname"], PUBSUB, "{event:#}");
        assert_eq!(event["source"], "publisher", "{event:#}");
        assert_eq!(event["type"], "com.dapr.event.sent", "{event:#}");
        assert_eq!(event["specversion"], "1.0", "{event:#}");
        assert_eq!(event["datacontenttype"], "application/json", "{event:#}");
        assert!(
            event["id"].as_str().is_some_and(|id| !id.is_empty()),
            "{event:#}"
        );
    }
}

/// A CloudEvent for the gRPC test, published as `application/cloudevents+json`.
fn order(id: &str, kind: &str, total: u32) -> Value {
    json!({
        "specversion": "1.0",
        "id": id,
        "source": "shop",
        "type": kind,
        "datacontenttype": "application/json",
        "data": {"total": total},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_sdk_app_receives_events_by_route_and_rule() {
    let redis = Redis::start().await.unwrap();
    let dir = redis_dir(&redis);
    let events = dir.events_file("grpc-subscriber");
    let app = SubscriberApp::start("subscriber_grpc.py", &events, &[]).await;
    let daprd = Daprd::builder("grpc-subscriber")
        .app_port(app.port())
        .app_protocol("grpc")
        .resources_path(dir.resources())
        .start()
        .await
        .unwrap();
    wait_subscribed(&daprd, "plain").await;
    wait_subscribed(&daprd, "orders").await;

    publish(
        &daprd,
        &[
            Publish::json("plain", json!({"n": 1})),
            Publish::cloud_event("orders", order("big-1", "big", 1000)),
            Publish::cloud_event("orders", order("small-1", "small", 5)),
        ],
    )
    .await;
    let received = wait_for_events(&events, &daprd, "three events", WAIT, |events| {
        events.len() >= 3
    })
    .await;

    let plain = on_path(&received, "plain");
    assert_eq!(plain.len(), 1, "{received:#?}");
    assert_eq!(plain[0].event["data"], json!({"n": 1}));
    assert_eq!(plain[0].event["topic"], "plain");
    assert_eq!(plain[0].event["pubsubname"], PUBSUB);
    assert_eq!(plain[0].event["source"], "grpc-subscriber");
    assert_eq!(plain[0].event["type"], "com.dapr.event.sent");

    for (handler, id, kind, total) in [
        ("big_orders", "big-1", "big", 1000),
        ("orders", "small-1", "small", 5),
    ] {
        let delivered = on_path(&received, handler);
        assert_eq!(delivered.len(), 1, "{handler}: {received:#?}");
        let event = &delivered[0].event;
        assert_eq!(event["id"], id, "{event:#}");
        assert_eq!(event["type"], kind, "{event:#}");
        assert_eq!(event["source"], "shop", "{event:#}");
        assert_eq!(event["topic"], "orders", "{event:#}");
        assert_eq!(event["pubsubname"], PUBSUB, "{event:#}");
        assert_eq!(event["data"], json!({"total": total}), "{event:#}");
    }
}

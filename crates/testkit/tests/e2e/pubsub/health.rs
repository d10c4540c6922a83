//! App-health gating over `pubsub.redis`, with `--enable-app-health-check` probing every
//! second:
//! - killing the app stops the subscriptions, so events published meanwhile stay in the
//!   stream, and they are all delivered once the restarted app is healthy again.
//!   Redelivery of pending messages is switched off (`redeliverInterval: 0`), so an event
//!   the sidecar had taken while the app was down would never arrive;
//! - the app's programmatic subscriptions are read once it is healthy, as upstream's
//!   subscriber reads them when it starts the app's subscriptions.

use std::collections::BTreeSet;

use dapr_testkit::{Daprd, Redis};
use serde_json::json;

use super::{
    PUBSUB, Publish, Received, SubscriberApp, TestDir, WAIT, log_count, programmatic, publish,
    wait_for_events, wait_for_log, wait_subscribed,
};

/// Events published while the app is down.
const WHILE_DOWN: u64 = 20;

/// The ids of the events in `received` (their data is `{"id": n}`).
fn ids(received: &[Received]) -> BTreeSet<u64> {
    received
        .iter()
        .filter_map(|delivery| delivery.event["data"]["id"].as_u64())
        .collect()
}

/// Redis without redelivery, a subscriber app (with `subscriptions` as its programmatic
/// ones) and its sidecar probing the app's health every second.
async fn gated(dir: &TestDir, redis: &Redis, subscriptions: &str) -> (SubscriberApp, Daprd) {
    dir.pubsub(
        "pubsub.redis",
        &[
            ("redisHost", redis.host()),
            ("redeliverInterval", "0".to_owned()),
        ],
    );
    let app = SubscriberApp::start(
        "subscriber_http.py",
        &dir.events_file("gated"),
        &[("SUBSCRIPTIONS", subscriptions.to_owned())],
    )
    .await;
    let daprd = Daprd::builder("gated")
        .app_port(app.port())
        .app_protocol("http")
        .resources_path(dir.resources())
        .args([
            "--enable-app-health-check",
            "--app-health-probe-interval",
            "1",
            "--app-health-threshold",
            "1",
        ])
        .start()
        .await
        .unwrap();
    (app, daprd)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_pause_while_the_app_is_unhealthy() {
    let redis = Redis::start().await.unwrap();
    let dir = TestDir::new();
    dir.subscription("orders", "orders", "/orders", "gated");
    let (mut app, daprd) = gated(&dir, &redis, "[]").await;
    let events = dir.events_file("gated");
    wait_subscribed(&daprd, "orders").await;
    publish(&daprd, &[Publish::json("orders", json!({"id": 1000}))]).await;
    wait_for_events(&events, &daprd, "the first event", WAIT, |received| {
        ids(received).contains(&1000)
    })
    .await;

    app.kill().await;
    wait_for_log(&daprd, "App entered un-healthy status", 1).await;
    wait_for_log(
        &daprd,
        &format!("unsubscribing from topic orders on pubsub {PUBSUB}"),
        1,
    )
    .await;
    let while_down: Vec<Publish> = (0..WHILE_DOWN)
        .map(|id| Publish::json("orders", json!({"id": id})))
        .collect();
    publish(&daprd, &while_down).await;

    let healthy = "App entered healthy status";
    let subscribed = format!("subscribed to topic orders on pubsub {PUBSUB}");
    let (healthy_before, subscribed_before) =
        (log_count(&daprd, healthy), log_count(&daprd, &subscribed));
    app.restart().await;
    wait_for_log(&daprd, healthy, healthy_before + 1).await;
    wait_for_log(&daprd, &subscribed, subscribed_before + 1).await;
    let received = wait_for_events(
        &events,
        &daprd,
        "every event published while the app was down",
        WAIT,
        |received| (0..WHILE_DOWN).all(|id| ids(received).contains(&id)),
    )
    .await;
    assert_eq!(
        ids(&received),
        (0..WHILE_DOWN).chain([1000]).collect::<BTreeSet<_>>(),
        "{}",
        app.log_tail()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn programmatic_subscriptions_are_read_once_the_app_is_healthy() {
    let redis = Redis::start().await.unwrap();
    let dir = TestDir::new();
    let subscriptions = json!([programmatic("orders", "/orders")]).to_string();
    let (_app, daprd) = gated(&dir, &redis, &subscriptions).await;
    wait_subscribed(&daprd, "orders").await;
    publish(&daprd, &[Publish::json("orders", json!({"id": 7}))]).await;
    wait_for_events(
        &dir.events_file("gated"),
        &daprd,
        "the event",
        WAIT,
        |received| ids(received).contains(&7),
    )
    .await;
}

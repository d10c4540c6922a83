//! CEL routing rules of a programmatic `v2` routes document: each event goes to the path
//! of the first rule it matches (on `event.type` or on a field of `event.data`), or to the
//! default path, over `pubsub.redis`.

use std::collections::BTreeMap;

use dapr_testkit::{Daprd, Redis};
use serde_json::json;

use super::{
    PUBSUB, Publish, SubscriberApp, TestDir, WAIT, publish, wait_for_events, wait_subscribed,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_route_each_event_to_the_first_matching_path() {
    let redis = Redis::start().await.unwrap();
    let dir = TestDir::new();
    dir.pubsub("pubsub.redis", &[("redisHost", redis.host())]);
    let events = dir.events_file("router");
    let subscriptions = json!([{
        "pubsubname": PUBSUB,
        "topic": "payments",
        "routes": {
            "rules": [
                {"match": "event.type == \"refund\"", "path": "/refunds"},
                {"match": "event.data.amount > 100", "path": "/large"},
            ],
            "default": "/small",
        },
    }])
    .to_string();
    let app = SubscriberApp::start(
        "subscriber_http.py",
        &events,
        &[("SUBSCRIPTIONS", subscriptions)],
    )
    .await;
    let daprd = Daprd::builder("router")
        .app_port(app.port())
        .app_protocol("http")
        .resources_path(dir.resources())
        .start()
        .await
        .unwrap();
    wait_subscribed(&daprd, "payments").await;

    let refund = |reference: &str, amount: u32| {
        Publish::cloud_event(
            "payments",
            json!({
                "specversion": "1.0",
                "id": reference,
                "source": "bank",
                "type": "refund",
                "datacontenttype": "application/json",
                "data": {"ref": reference, "amount": amount},
            }),
        )
    };
    let payment = |reference: &str, amount: u32| {
        Publish::json("payments", json!({"ref": reference, "amount": amount}))
    };
    publish(
        &daprd,
        &[
            refund("refund-large", 500),
            refund("refund-small", 5),
            payment("large", 500),
            payment("boundary", 100),
            payment("small", 5),
        ],
    )
    .await;
    let received = wait_for_events(&events, &daprd, "five events", WAIT, |events| {
        events.len() >= 5
    })
    .await;

    let routed: BTreeMap<String, String> = received
        .iter()
        .map(|delivery| {
            (
                delivery.event["data"]["ref"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                delivery.path.clone(),
            )
        })
        .collect();
    let expected: BTreeMap<String, String> = [
        ("refund-large", "/refunds"),
        ("refund-small", "/refunds"),
        ("large", "/large"),
        ("boundary", "/small"),
        ("small", "/small"),
    ]
    .into_iter()
    .map(|(reference, path)| (reference.to_owned(), path.to_owned()))
    .collect();
    assert_eq!(routed, expected, "{received:#?}\n{}", daprd.log_tail(20));
    assert_eq!(received.len(), 5, "{received:#?}");
}

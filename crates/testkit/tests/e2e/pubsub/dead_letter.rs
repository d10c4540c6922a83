//! Dead-lettering after inbound retries: a route that always answers 500, a Resiliency
//! resource giving the component an inbound retry policy (constant 50ms, 2 retries) and a
//! `deadLetterTopic`: the event reaches the failing route three times, then the
//! dead-letter topic's route once, over `pubsub.redis`.

use std::time::Duration;

use dapr_testkit::{Daprd, Redis};
use serde_json::json;

use super::{
    PUBSUB, Publish, SubscriberApp, TestDir, WAIT, on_path, programmatic, publish, read_events,
    wait_for_events, wait_subscribed,
};

/// The inbound retry policy of the component `pubsub`.
const RESILIENCY: &str = "apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata:
  name: inbound
spec:
  policies:
    retries:
      quick:
        policy: constant
        duration: 50ms
        maxRetries: 2
  targets:
    components:
      pubsub:
        inbound:
          retry: quick
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_deliveries_are_retried_then_dead_lettered() {
    let redis = Redis::start().await.unwrap();
    let dir = TestDir::new();
    dir.pubsub("pubsub.redis", &[("redisHost", redis.host())]);
    dir.write("resiliency.yaml", RESILIENCY);
    let events = dir.events_file("failing");
    let mut jobs = programmatic("jobs", "/jobs");
    jobs["deadLetterTopic"] = json!("jobs-dead");
    let subscriptions = json!([jobs, programmatic("jobs-dead", "/dead")]).to_string();
    let app = SubscriberApp::start(
        "subscriber_http.py",
        &events,
        &[
            ("SUBSCRIPTIONS", subscriptions),
            ("FAIL_PATHS", "/jobs".to_owned()),
        ],
    )
    .await;
    let daprd = Daprd::builder("failing")
        .app_port(app.port())
        .app_protocol("http")
        .resources_path(dir.resources())
        .start()
        .await
        .unwrap();
    wait_subscribed(&daprd, "jobs").await;
    wait_subscribed(&daprd, "jobs-dead").await;

    publish(&daprd, &[Publish::json("jobs", json!({"job": 7}))]).await;
    let received = wait_for_events(&events, &daprd, "the dead letter", WAIT, |events| {
        !on_path(events, "/dead").is_empty()
    })
    .await;

    let attempts = on_path(&received, "/jobs");
    assert_eq!(attempts.len(), 3, "{received:#?}\n{}", daprd.log_tail(30));
    let id = attempts[0].event["id"].clone();
    for attempt in &attempts {
        assert_eq!(attempt.event["id"], id, "{received:#?}");
        assert_eq!(attempt.event["data"], json!({"job": 7}), "{received:#?}");
        assert_eq!(attempt.event["topic"], "jobs", "{received:#?}");
    }
    let dead = on_path(&received, "/dead");
    assert_eq!(dead.len(), 1, "{received:#?}");
    assert_eq!(dead[0].event["id"], id, "{received:#?}");
    assert_eq!(dead[0].event["data"], json!({"job": 7}), "{received:#?}");
    assert_eq!(dead[0].event["pubsubname"], PUBSUB, "{received:#?}");

    // The dead-lettered message was settled: nothing more arrives.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = read_events(&events);
    assert_eq!(after.len(), 4, "{after:#?}\n{}", daprd.log_tail(30));
}

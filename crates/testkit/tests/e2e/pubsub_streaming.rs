//! Streaming subscriptions through the official Python SDK against the real sidecar and a
//! real redis-server: `DaprClient.subscribe` (pull with `next_message`, answering
//! success, retry and drop) and `subscribe_with_handler`; a retried event comes back from
//! the broker with the same id; the metadata API lists the stream while it is open.

use dapr_testkit::{Daprd, Redis};

use crate::support::run_sdk;

/// A `pubsub.redis` component whose unacknowledged entries come back after 1 s.
fn resources(dir: &std::path::Path, redis: &Redis) -> std::path::PathBuf {
    let resources = dir.join("resources");
    std::fs::create_dir(&resources).unwrap();
    std::fs::write(
        resources.join("bus.yaml"),
        format!(
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: bus\nspec:\n  \
             type: pubsub.redis\n  version: v1\n  metadata:\n  - name: redisHost\n    value: \
             \"{}\"\n  - name: processingTimeout\n    value: \"1s\"\n  - name: redeliverInterval\n    \
             value: \"500ms\"\n",
            redis.host()
        ),
    )
    .unwrap();
    resources
}

const SCRIPT: &str = r#"
import json, os, time, urllib.request
from dapr.clients import DaprClient
from dapr.clients.grpc._response import TopicEventResponse

def metadata_types():
    url = "http://127.0.0.1:%s/v1.0/metadata" % os.environ["DAPR_HTTP_PORT"]
    doc = json.loads(urllib.request.urlopen(url).read())
    return [(s["topic"], s.get("type")) for s in doc.get("subscriptions", [])]

with DaprClient() as client:
    sub = client.subscribe(pubsub_name="bus", topic="orders")
    assert ("orders", "STREAMING") in metadata_types(), metadata_types()

    client.publish_event(pubsub_name="bus", topic_name="orders",
                         data=json.dumps({"n": 1}), data_content_type="application/json")
    first = sub.next_message()
    assert first.topic() == "orders", first.topic()
    assert first.pubsub_name() == "bus", first.pubsub_name()
    assert first.data() == {"n": 1}, first.data()
    # Ask for a retry: without a retry policy or dead-letter topic the entry stays
    # pending and redis hands it back after the processing timeout, with the same id.
    sub.respond_retry(first)
    again = sub.next_message()
    assert again.id() == first.id(), (again.id(), first.id())
    sub.respond_success(again)
    print("retried", again.id())
    time.sleep(0.5)
    sub.close()

    dropping = client.subscribe(pubsub_name="bus", topic="drops", dead_letter_topic="dead")
    client.publish_event(pubsub_name="bus", topic_name="drops",
                         data="two", data_content_type="text/plain")
    second = dropping.next_message()
    assert second.data() == "two", second.data()
    dropping.respond_drop(second)
    time.sleep(0.5)
    dropping.close()

    # The dropped event went to the dead-letter topic; read it with a handler.
    seen = []
    def handler(message):
        seen.append(message.data())
        return TopicEventResponse("success")
    close = client.subscribe_with_handler(pubsub_name="bus", topic="dead", handler_fn=handler)
    for _ in range(100):
        if seen:
            break
        time.sleep(0.1)
    close()
    print("dead", seen)
    assert seen == ["two"], seen
    for _ in range(50):
        if not [t for t in metadata_types() if t[1] == "STREAMING"]:
            break
        time.sleep(0.1)
    assert not [t for t in metadata_types() if t[1] == "STREAMING"], metadata_types()
"#;

#[tokio::test]
async fn sdk_streaming_subscribers_receive_answer_and_unsubscribe() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start().await.unwrap();
    let daprd = Daprd::builder("streamer")
        .resources_path(resources(dir.path(), &redis))
        .start()
        .await
        .unwrap();
    let output = run_sdk(&daprd, SCRIPT, &[]).await;
    assert!(output.contains("retried"), "{output}");
    assert!(output.contains("dead ['two']"), "{output}");
}

//! Subscription discovery across processes: a sidecar in front of the Python HTTP test
//! app (whose `GET /dapr/subscribe` returns a `v2` routes document) with a pub/sub
//! component and declarative `Subscription` files, read back through the metadata API.

use dapr_testkit::{Daprd, http};
use serde_json::{Value, json};

use crate::support::start_app;

const RESOURCES: &[(&str, &str)] = &[
    (
        "pubsub.yaml",
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: pubsub\nspec:\n  type: pubsub.in-memory\n  version: v1\n",
    ),
    (
        "audit.yaml",
        "apiVersion: dapr.io/v1alpha1\nkind: Subscription\nmetadata:\n  name: audit\nspec:\n  pubsubname: pubsub\n  topic: audit\n  route: /audit\nscopes:\n- subscriber\n",
    ),
    (
        "theirs.yaml",
        "apiVersion: dapr.io/v2alpha1\nkind: Subscription\nmetadata:\n  name: theirs\nspec:\n  pubsubname: pubsub\n  topic: theirs\n  routes:\n    default: /theirs\nscopes:\n- someone-else\n",
    ),
];

#[tokio::test]
async fn metadata_lists_declarative_and_programmatic_subscriptions() {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in RESOURCES {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let (port, _app) = start_app("http_app.py").await;
    let daprd = Daprd::builder("subscriber")
        .app_port(port)
        .app_protocol("http")
        .resources_path(dir.path())
        .start()
        .await
        .unwrap();

    let doc: Value = http::get(&format!("{}/v1.0/metadata", daprd.base_url()))
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        doc["subscriptions"],
        json!([
            {
                "pubsubname": "pubsub",
                "topic": "audit",
                "rules": [{"path": "/audit"}],
                "deadLetterTopic": "",
                "type": "DECLARATIVE"
            },
            {
                "pubsubname": "pubsub",
                "topic": "orders",
                "metadata": {"rawPayload": "true"},
                "rules": [
                    {"match": "event.type == \"order.big\"", "path": "/orders/big"},
                    {"path": "/orders"}
                ],
                "deadLetterTopic": "poison",
                "type": "PROGRAMMATIC"
            }
        ]),
        "{}",
        daprd.log_tail(20)
    );
}

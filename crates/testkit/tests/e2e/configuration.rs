//! The configuration API's get through the official Python SDK against the real sidecar
//! and a real redis-server holding items in upstream's `value||version` layout.

use std::process::Command;

use dapr_testkit::{Daprd, Redis};

use crate::support::run_sdk;

const SCRIPT: &str = r#"
from dapr.clients import DaprClient

with DaprClient() as client:
    response = client.get_configuration("config", ["color", "missing"])
    assert list(response.items) == ["color"], list(response.items)
    assert response.items["color"].value == "blue", response.items["color"].value
    assert response.items["color"].version == "3"
    everything = client.get_configuration("config", [])
    assert sorted(everything.items) == ["color", "size"], list(everything.items)
    assert everything.items["size"].value == "large"
    assert everything.items["size"].version == ""
    try:
        client.get_configuration("nope", ["color"])
        raise SystemExit("an unknown store answered")
    except Exception as error:
        assert "configuration store nope not found" in str(error), error
    print("configuration ok")
"#;

#[tokio::test]
async fn sdk_reads_configuration_items_from_redis() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start().await.unwrap();
    for (key, value) in [("color", "blue||3"), ("size", "large")] {
        let output = Command::new("redis-cli")
            .args(["-p", &redis.port().to_string(), "SET", key, value])
            .output()
            .unwrap();
        assert!(output.status.success());
    }
    std::fs::write(
        dir.path().join("config.yaml"),
        format!(
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: config\nspec:\n  \
             type: configuration.redis\n  version: v1\n  metadata:\n  - name: redisHost\n    \
             value: \"{}\"\n",
            redis.host()
        ),
    )
    .unwrap();
    let daprd = Daprd::builder("configured")
        .resources_path(dir.path())
        .start()
        .await
        .unwrap();
    let output = run_sdk(&daprd, SCRIPT, &[]).await;
    assert!(output.contains("configuration ok"), "{output}");
}

//! The configuration API through the official Python SDK against the real sidecar: get
//! and subscribe (seeing a live update, then unsubscribing) over `configuration.redis`
//! (items in upstream's `value||version` layout, changes by keyspace notifications) and
//! `configuration.postgresql` (upstream's table and notification trigger), and HTTP
//! subscriptions delivered to an HTTP app's `/configuration/<store>/<key>` route.

use std::path::Path;
use std::time::Duration;

use dapr_testkit::{Daprd, Postgres, Redis, http};
use serde_json::Value;

use crate::support::{run_sdk, start_app, tool};

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

/// Subscribes to `color`, runs `$CHANGE` (a shell command changing it to `$EXPECTED`),
/// waits for the update, then unsubscribes.
const SUBSCRIBE_SCRIPT: &str = r#"
import json, os, subprocess, threading
from dapr.clients import DaprClient

received = []
seen = threading.Event()

def handler(subscription, response):
    for key, item in response.items.items():
        received.append([subscription, key, item.value, item.version])
        if key == "color" and item.value == os.environ["EXPECTED"]:
            seen.set()

with DaprClient() as client:
    metadata = json.loads(os.environ.get("SUBSCRIBE_METADATA", "{}"))
    subscription = client.subscribe_configuration("config", ["color"], handler, metadata)
    assert subscription, "no subscription id"
    subprocess.run(os.environ["CHANGE"], shell=True, check=True)
    assert seen.wait(20), received
    assert all(entry[0] == subscription for entry in received), received
    assert client.unsubscribe_configuration("config", subscription)
    assert not client.unsubscribe_configuration("config", subscription)
    print("subscription ok " + json.dumps(received))
"#;

fn write_component(dir: &Path, component_type: &str, metadata: &[(&str, &str)]) {
    let metadata: String = metadata
        .iter()
        .map(|(name, value)| format!("  - name: {name}\n    value: \"{value}\"\n"))
        .collect();
    std::fs::write(
        dir.join("config.yaml"),
        format!(
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: config\nspec:\n  \
             type: {component_type}\n  version: v1\n  metadata:\n{metadata}"
        ),
    )
    .unwrap();
}

async fn redis_cli(redis: &Redis, args: &[&str]) -> String {
    let port = redis.port().to_string();
    let mut all = vec!["-h", "127.0.0.1", "-p", &port];
    all.extend_from_slice(args);
    tool("redis-cli", "redis-tools", &all).await
}

#[tokio::test]
async fn sdk_reads_and_watches_configuration_items_on_redis() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start().await.unwrap();
    redis_cli(&redis, &["SET", "color", "blue||3"]).await;
    redis_cli(&redis, &["SET", "size", "large"]).await;
    write_component(
        dir.path(),
        "configuration.redis",
        &[("redisHost", &redis.host())],
    );
    let daprd = Daprd::builder("configured")
        .resources_path(dir.path())
        .start()
        .await
        .unwrap();
    let output = run_sdk(&daprd, SCRIPT, &[]).await;
    assert!(output.contains("configuration ok"), "{output}");

    let redis_cli_path = dapr_testkit::programs::find("redis-cli", "redis-tools").unwrap();
    let change = format!(
        "{} -h 127.0.0.1 -p {} SET color 'green||4'",
        redis_cli_path.display(),
        redis.port()
    );
    let output = run_sdk(
        &daprd,
        SUBSCRIBE_SCRIPT,
        &[("CHANGE", &change), ("EXPECTED", "green")],
    )
    .await;
    assert!(output.contains("subscription ok"), "{output}");
    assert!(output.contains(r#""color", "green", "4"]"#), "{output}");
}

/// Upstream's documented table and trigger, notifying channel `config`.
const POSTGRES_SETUP: &str = "
CREATE TABLE configtable (KEY VARCHAR NOT NULL, VALUE VARCHAR NOT NULL, VERSION VARCHAR NOT NULL, METADATA JSON);
CREATE OR REPLACE FUNCTION notify_event() RETURNS TRIGGER AS $$
    DECLARE
        data json;
        notification json;
    BEGIN
        IF (TG_OP = 'DELETE') THEN
            data = row_to_json(OLD);
        ELSE
            data = row_to_json(NEW);
        END IF;
        notification = json_build_object('table', TG_TABLE_NAME, 'action', TG_OP, 'data', data);
        PERFORM pg_notify('config', notification::text);
        RETURN NULL;
    END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER config AFTER INSERT OR UPDATE OR DELETE ON configtable
    FOR EACH ROW EXECUTE PROCEDURE notify_event();
INSERT INTO configtable VALUES ('color', 'blue', '3', NULL), ('size', 'large', '', NULL);
";

#[tokio::test]
async fn sdk_reads_and_watches_configuration_items_on_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let postgres = Postgres::start().await.unwrap();
    let port = postgres.port().to_string();
    let psql = |sql: &str| {
        [
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ]
        .map(str::to_owned)
    };
    let setup = psql(POSTGRES_SETUP);
    let setup: Vec<&str> = setup.iter().map(String::as_str).collect();
    tool("psql", "postgresql-client", &setup).await;
    write_component(
        dir.path(),
        "configuration.postgresql",
        &[
            ("connectionString", &postgres.connection_string()),
            ("table", "configtable"),
        ],
    );
    let daprd = Daprd::builder("configured-pg")
        .resources_path(dir.path())
        .start()
        .await
        .unwrap();
    let output = run_sdk(&daprd, SCRIPT, &[]).await;
    assert!(output.contains("configuration ok"), "{output}");

    let psql_path = dapr_testkit::programs::find("psql", "postgresql-client").unwrap();
    let change = format!(
        "{} -h 127.0.0.1 -p {port} -U postgres -d postgres -c \"INSERT INTO configtable VALUES ('color', 'purple', '5', NULL)\"",
        psql_path.display()
    );
    let output = run_sdk(
        &daprd,
        SUBSCRIBE_SCRIPT,
        &[
            ("CHANGE", &change),
            ("EXPECTED", "purple"),
            ("SUBSCRIBE_METADATA", r#"{"pgNotifyChannel": "config"}"#),
        ],
    )
    .await;
    assert!(output.contains("subscription ok"), "{output}");
    assert!(output.contains(r#""color", "purple", "5"]"#), "{output}");
}

/// The HTTP app's record of the configuration updates it received.
async fn app_updates(app_port: u16) -> Vec<Value> {
    let response = http::get(&format!("http://127.0.0.1:{app_port}/received"))
        .await
        .unwrap();
    response.json().unwrap()
}

#[tokio::test]
async fn http_subscriptions_post_updates_to_the_app() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start().await.unwrap();
    write_component(
        dir.path(),
        "configuration.redis",
        &[("redisHost", &redis.host())],
    );
    let (app_port, _app) = start_app("configuration_app.py").await;
    let daprd = Daprd::builder("watched")
        .app_port(app_port)
        .resources_path(dir.path())
        .start()
        .await
        .unwrap();
    let response = http::get(&format!(
        "{}/v1.0/configuration/config/subscribe?key=color&key=size",
        daprd.base_url()
    ))
    .await
    .unwrap();
    assert_eq!(response.status, 200, "{}", response.text());
    let body: Value = response.json().unwrap();
    let id = body["id"].as_str().unwrap().to_owned();

    redis_cli(&redis, &["SET", "color", "amber||2"]).await;
    let mut updates = Vec::new();
    for _ in 0..100 {
        updates = app_updates(app_port).await;
        if !updates.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        updates,
        vec![serde_json::json!({
            "path": "/configuration/config/color",
            "body": {"id": id, "items": {"color": {"value": "amber", "version": "2"}}},
        })]
    );

    let response = http::get(&format!(
        "{}/v1.0/configuration/config/{id}/unsubscribe",
        daprd.base_url()
    ))
    .await
    .unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(
        response.json::<Value>().unwrap(),
        serde_json::json!({"ok": true})
    );
    redis_cli(&redis, &["SET", "size", "small"]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        app_updates(app_port).await.len(),
        1,
        "no updates after unsubscribing"
    );
}

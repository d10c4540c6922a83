//! Starting components from resources: order, failures, timeouts, skipped building
//! blocks, and hot reload carrying unchanged components over.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use dapr_components::state::{GetRequest, SetRequest};
use dapr_resources::loader::{self, LoadedResources};

use super::reload::{Watch, reload};
use super::*;
use crate::observability::metrics::SidecarMetrics;

fn parse(yaml: &str) -> LoadedResources {
    loader::parse_str(Path::new("components.yaml"), yaml).unwrap()
}

fn context(metrics: &SidecarMetrics) -> LoadContext<'_> {
    crate::test_support::load_context(metrics)
}

fn component(name: &str, kind: &str, extra_spec: &str, metadata: &str) -> String {
    format!(
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: {name}\nspec:\n  type: {kind}\n  version: v1\n{extra_spec}  metadata:\n{metadata}"
    )
}

#[tokio::test]
async fn stores_start_with_their_capabilities_and_blocks_not_built_are_skipped() {
    let yaml = [
        component(
            "cache",
            "state.in-memory",
            "",
            "  - name: keyPrefix\n    value: name\n",
        ),
        component(
            "actors",
            "state.in-memory",
            "",
            "  - name: actorStateStore\n    value: \"true\"\n",
        ),
        component(
            "events",
            "pubsub.in-memory",
            "",
            "  - name: x\n    value: y\n",
        ),
        component("ticks", "workflow.dapr", "", "  - name: x\n    value: y\n"),
    ]
    .join("---\n");
    let metrics = SidecarMetrics::disabled();
    let set = load(&parse(&yaml).components, context(&metrics), None)
        .await
        .unwrap();
    assert_eq!(set.state_stores.len(), 2);
    assert_eq!(
        set.state_store("cache").unwrap().key_prefix,
        KeyPrefix::StoreName
    );
    let actors = set
        .statuses
        .iter()
        .find(|status| status.name == "actors")
        .unwrap();
    assert!(actors.capabilities.contains(&"ETAG".to_string()));
    assert!(actors.capabilities.contains(&"ACTOR".to_string()));
    let events = set.pubsub("events").unwrap();
    assert_eq!(events.component_type, "pubsub.in-memory");
    assert!(!events.namespace_scoped);
    let status = set
        .statuses
        .iter()
        .find(|status| status.name == "events")
        .unwrap();
    assert_eq!(status.capabilities, ["SUBSCRIBE_WILDCARDS"]);
    assert!(set.statuses.iter().all(|status| status.name != "ticks"));
}

#[tokio::test]
async fn crypto_components_start_and_refuse_bad_metadata() {
    let keys = tempfile::tempdir().unwrap();
    let yaml = component(
        "keys",
        "crypto.dapr.localstorage",
        "",
        &format!("  - name: path\n    value: {}\n", keys.path().display()),
    );
    let metrics = SidecarMetrics::disabled();
    let set = load(&parse(&yaml).components, context(&metrics), None)
        .await
        .unwrap();
    assert_eq!(
        set.crypto_providers["keys"].component_type,
        "crypto.dapr.localstorage"
    );
    assert!(set.statuses.iter().any(|status| status.name == "keys"));

    let missing = keys.path().join("missing");
    let yaml = component(
        "keys",
        "crypto.dapr.localstorage",
        "",
        &format!("  - name: path\n    value: {}\n", missing.display()),
    );
    let error = load(&parse(&yaml).components, context(&metrics), None)
        .await
        .unwrap_err();
    assert!(
        error
            .reason
            .starts_with("failed to load metadata: could not stat path"),
        "{}",
        error.reason
    );
    let yaml = component(
        "keys",
        "crypto.dapr.nothing",
        "",
        "  - name: x\n    value: y\n",
    );
    let error = load(&parse(&yaml).components, context(&metrics), None)
        .await
        .unwrap_err();
    assert_eq!(
        error.reason,
        "couldn't find crypto provider crypto.dapr.nothing/v1"
    );
}

#[tokio::test]
async fn metadata_placeholders_are_replaced_as_upstream_does() {
    let yaml = component(
        "events",
        "pubsub.in-memory",
        "",
        "  - name: consumerID\n    value: \"{namespace}-{appID}-{uuid}\"\n  - name: publishingScopes\n    value: \"{appID}=t\"\n",
    );
    let metrics = SidecarMetrics::disabled();
    let set = load(&parse(&yaml).components, context(&metrics), None)
        .await
        .unwrap();
    let events = set.pubsub("events").unwrap();
    assert!(events.namespace_scoped, "a value mentions {{namespace}}");
    assert_eq!(
        events.scopes.publishing_scopes,
        ["t"],
        "{{appID}} was replaced"
    );

    let yaml = component(
        "events",
        "pubsub.in-memory",
        "",
        "  - name: consumerID\n    value: \"{podName}\"\n",
    );
    let error = load(&parse(&yaml).components, context(&metrics), None)
        .await
        .unwrap_err();
    assert_eq!(
        error.reason,
        "failed to parse metadata: property consumerID refers to {podName} but podName is not set"
    );
    let with_pod = LoadContext {
        pod_name: "pod-1",
        ..context(&metrics)
    };
    assert!(load(&parse(&yaml).components, with_pod, None).await.is_ok());
}

#[tokio::test]
async fn a_failing_component_stops_the_start_unless_it_ignores_errors() {
    let unknown = component("broken", "state.nope", "", "  - name: a\n    value: b\n");
    let metrics = SidecarMetrics::disabled();
    let error = load(&parse(&unknown).components, context(&metrics), None)
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "process component broken error: [INIT_COMPONENT_FAILURE]: initialization error occurred for broken (state.nope/v1): couldn't find state store state.nope/v1"
    );

    let ignored = component(
        "broken",
        "state.nope",
        "  ignoreErrors: true\n",
        "  - name: a\n    value: b\n",
    );
    let set = load(&parse(&ignored).components, context(&metrics), None)
        .await
        .unwrap();
    assert!(set.state_stores.is_empty());
    let status = &set.statuses[0];
    assert_eq!(status.name, "broken");
    assert!(
        status
            .error
            .as_deref()
            .unwrap()
            .contains("couldn't find state store")
    );
}

#[tokio::test]
async fn a_component_that_hangs_at_start_fails_at_its_init_timeout() {
    // A server that accepts connections and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = silent.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((connection, _)) = silent.accept().await {
            held.push(connection);
        }
    });
    let yaml = component(
        "slow",
        "state.redis",
        "  initTimeout: 300ms\n",
        &format!("  - name: redisHost\n    value: \"{address}\"\n"),
    );
    let metrics = SidecarMetrics::disabled();
    let started = std::time::Instant::now();
    let error = load(&parse(&yaml).components, context(&metrics), None)
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(
        error.reason.contains("init timeout for component slow"),
        "{error}"
    );
}

#[tokio::test]
async fn secret_references_need_a_named_store() {
    let yaml = component(
        "cache",
        "state.in-memory",
        "",
        "  - name: password\n    secretKeyRef:\n      name: db\n      key: password\n",
    );
    let metrics = SidecarMetrics::disabled();
    let error = load(&parse(&yaml).components, context(&metrics), None)
        .await
        .unwrap_err();
    assert!(error.reason.contains("names no secret store"), "{error}");
}

async fn write_and_reload(dir: &Path, file: &str, yaml: &str, watch: &Watch) {
    std::fs::write(dir.join(file), yaml).unwrap();
    reload(watch).await;
}

#[tokio::test]
async fn hot_reload_keeps_unchanged_stores_and_swaps_changed_ones() {
    let dir = tempfile::tempdir().unwrap();
    let kept = component(
        "kept",
        "state.in-memory",
        "",
        "  - name: a\n    value: \"1\"\n",
    );
    let changed = component(
        "changed",
        "state.in-memory",
        "",
        "  - name: a\n    value: \"1\"\n",
    );
    std::fs::write(dir.path().join("kept.yaml"), &kept).unwrap();
    std::fs::write(dir.path().join("changed.yaml"), &changed).unwrap();
    let metrics = SidecarMetrics::disabled();
    let resources = loader::load_dirs(&[dir.path()]).unwrap();
    let components = Arc::new(Components::new(
        load(&resources.components, context(&metrics), None)
            .await
            .unwrap(),
    ));
    let watch = Watch {
        paths: vec![dir.path().to_path_buf()],
        app_id: "myapp".into(),
        namespace: "default".into(),
        pod_name: String::new(),
        components: components.clone(),
        metrics: metrics.clone(),
    };
    let before = components.snapshot();
    let kept_store = before.state_store("kept").unwrap().store.clone();
    kept_store
        .set(SetRequest {
            key: "k".into(),
            value: "v".into(),
            ..SetRequest::default()
        })
        .await
        .unwrap();
    let changed_before = before.state_store("changed").unwrap().clone();

    // Change one component, add another, keep the first.
    let changed_again = changed.replace("value: \"1\"", "value: \"2\"");
    write_and_reload(dir.path(), "changed.yaml", &changed_again, &watch).await;
    write_and_reload(
        dir.path(),
        "added.yaml",
        &component(
            "added",
            "state.in-memory",
            "",
            "  - name: a\n    value: \"1\"\n",
        ),
        &watch,
    )
    .await;
    let after = components.snapshot();
    assert!(Arc::ptr_eq(
        after.state_stores.get("kept").unwrap(),
        before.state_stores.get("kept").unwrap()
    ));
    let data = after
        .state_store("kept")
        .unwrap()
        .store
        .get(GetRequest {
            key: "k".into(),
            ..GetRequest::default()
        })
        .await
        .unwrap();
    assert_eq!(&data.data[..], b"v", "the unchanged store kept its data");
    assert!(!Arc::ptr_eq(
        after.state_store("changed").unwrap(),
        &changed_before
    ));
    assert!(after.state_store("added").is_some());

    // A broken file keeps the current set; removing a file removes its component.
    write_and_reload(dir.path(), "bad.yaml", "kind: [", &watch).await;
    assert!(components.snapshot().state_store("added").is_some());
    std::fs::remove_file(dir.path().join("bad.yaml")).unwrap();
    std::fs::remove_file(dir.path().join("added.yaml")).unwrap();
    reload(&watch).await;
    assert!(components.snapshot().state_store("added").is_none());
    assert!(components.snapshot().state_store("kept").is_some());
}

#[tokio::test]
async fn a_replaced_store_stays_open_until_calls_holding_it_finish() {
    let redis = dapr_testkit::servers::Redis::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let yaml = |db: u8| {
        component(
            "cache",
            "state.redis",
            "",
            &format!(
                "  - name: redisHost\n    value: \"{}\"\n  - name: redisDB\n    value: \"{db}\"\n",
                redis.host()
            ),
        )
    };
    std::fs::write(dir.path().join("cache.yaml"), yaml(0)).unwrap();
    let metrics = SidecarMetrics::disabled();
    let resources = loader::load_dirs(&[dir.path()]).unwrap();
    let components = Arc::new(Components::new(
        load(&resources.components, context(&metrics), None)
            .await
            .unwrap(),
    ));
    let watch = Watch {
        paths: vec![dir.path().to_path_buf()],
        app_id: "myapp".into(),
        namespace: "default".into(),
        pod_name: String::new(),
        components: components.clone(),
        metrics: metrics.clone(),
    };
    // A call in flight holds the current set while the component is changed.
    let in_flight = components.snapshot();
    let old_store = in_flight.state_store("cache").unwrap().store.clone();
    write_and_reload(dir.path(), "cache.yaml", &yaml(1), &watch).await;
    assert!(!Arc::ptr_eq(
        components.snapshot().state_store("cache").unwrap(),
        in_flight.state_store("cache").unwrap()
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let request = || SetRequest {
        key: "k".into(),
        value: "v".into(),
        ..SetRequest::default()
    };
    old_store
        .set(request())
        .await
        .expect("the in-flight call's store is still open");

    // Once the call is done, the replaced store is closed.
    drop(in_flight);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while old_store.set(request()).await.is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "the replaced store was never closed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

//! The distributed lock API through the official Python SDK against the real sidecar and
//! a real redis-server: two owners contend for a resource, only the holder releases it,
//! the `with` form releases on exit, and an expired lock is free again.

use dapr_testkit::{Daprd, Redis};

use crate::support::run_sdk;

const SCRIPT: &str = r#"
import time
from dapr.clients import DaprClient
from dapr.clients.grpc._response import UnlockResponseStatus

with DaprClient() as client:
    first = client.try_lock("locks", "order-1", "alice", 60)
    assert first.success, "alice takes the free lock"
    second = client.try_lock("locks", "order-1", "bob", 60)
    assert not second.success, "bob cannot take alice's lock"
    assert client.unlock("locks", "order-1", "bob").status == UnlockResponseStatus.lock_belongs_to_others
    assert client.unlock("locks", "order-1", "alice").status == UnlockResponseStatus.success
    assert client.unlock("locks", "order-1", "alice").status == UnlockResponseStatus.lock_does_not_exist

    with client.try_lock("locks", "order-2", "alice", 60) as held:
        assert held.success
        assert not client.try_lock("locks", "order-2", "bob", 60).success
    # Leaving the block released it.
    assert client.try_lock("locks", "order-2", "bob", 60).success

    assert client.try_lock("locks", "order-3", "alice", 1).success
    time.sleep(1.5)
    assert client.try_lock("locks", "order-3", "bob", 60).success, "expiry released it"

    try:
        client.try_lock("locks", "order-4", "alice", 0)
        raise SystemExit("a zero expiry was accepted")
    except ValueError as error:
        print("client-side check:", error)
    print("locks ok")
"#;

#[tokio::test]
async fn sdk_lock_owners_contend_release_and_expire_on_redis() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start().await.unwrap();
    std::fs::write(
        dir.path().join("locks.yaml"),
        format!(
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: locks\nspec:\n  \
             type: lock.redis\n  version: v1\n  metadata:\n  - name: redisHost\n    value: \"{}\"\n",
            redis.host()
        ),
    )
    .unwrap();
    let daprd = Daprd::builder("locker")
        .resources_path(dir.path())
        .start()
        .await
        .unwrap();
    let output = run_sdk(&daprd, SCRIPT, &[]).await;
    assert!(output.contains("locks ok"), "{output}");
}

//! The lock API through both edges of an in-process sidecar, over `lock.in-memory` and a
//! real redis-server: two owners contending, upstream's unlock statuses, expiry, the
//! stored key layout per `keyPrefix`, and every error with its code and status.

use std::net::SocketAddr;

use axum::http::StatusCode;
use bytes::Bytes;
use dapr_proto::runtime::{TryLockRequest, UnlockRequest};
use dapr_testkit::Redis;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

use super::*;
use crate::observability::metrics::SidecarMetrics;
use crate::secrets::SecretScopes;
use crate::test_support::{self, PublicApis};

/// `locks` (in memory), `shared` (redis, default prefix) and `named` (redis, prefix by
/// store name).
fn resources(redis: &Redis) -> String {
    let host = redis.host();
    format!(
        r#"
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {{name: locks}}
spec: {{type: lock.in-memory, version: v1}}
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {{name: shared}}
spec:
  type: lock.redis
  version: v1
  metadata:
  - {{name: redisHost, value: "{host}"}}
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {{name: named}}
spec:
  type: lock.redis
  version: v1
  metadata:
  - {{name: redisHost, value: "{host}"}}
  - {{name: keyPrefix, value: name}}
"#
    )
}

async fn sidecar(yaml: &str) -> PublicApis {
    let metrics = SidecarMetrics::disabled();
    let set = if yaml.is_empty() {
        crate::components::ComponentSet::default()
    } else {
        test_support::load_yaml(yaml, &metrics).await
    };
    test_support::serve_public_apis(
        test_support::default_config(),
        set,
        SecretScopes::default(),
        metrics,
    )
    .await
}

async fn post(address: SocketAddr, path: &str, body: Value) -> (StatusCode, Value) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let request = axum::http::Request::post(format!("http://{address}{path}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let response = client.request(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

fn lock_body(resource: &str, owner: &str, expiry: i64) -> Value {
    json!({"resourceId": resource, "lockOwner": owner, "expiryInSeconds": expiry})
}

#[tokio::test]
async fn owners_contend_over_http_on_every_store() {
    let redis = Redis::start().await.unwrap();
    let apis = sidecar(&resources(&redis)).await;
    for store in ["locks", "shared", "named"] {
        let lock = format!("/v1.0-alpha1/lock/{store}");
        let unlock = format!("/v1.0-alpha1/unlock/{store}");
        let taken = post(apis.http, &lock, lock_body("order-1", "a", 30)).await;
        assert_eq!(taken, (StatusCode::OK, json!({"success": true})), "{store}");
        let refused = post(apis.http, &lock, lock_body("order-1", "b", 30)).await;
        assert_eq!(
            refused,
            (StatusCode::OK, json!({"success": false})),
            "{store}"
        );
        let others = json!({"resourceId": "order-1", "lockOwner": "b"});
        assert_eq!(
            post(apis.http, &unlock, others).await,
            (StatusCode::OK, json!({"status": 2})),
            "{store}"
        );
        let mine = json!({"resource_id": "order-1", "lock_owner": "a"});
        assert_eq!(
            post(apis.http, &unlock, mine.clone()).await,
            (StatusCode::OK, json!({"status": 0})),
            "{store}"
        );
        assert_eq!(
            post(apis.http, &unlock, mine).await,
            (StatusCode::OK, json!({"status": 1})),
            "{store}"
        );
    }
}

#[tokio::test]
async fn keys_are_stored_with_upstreams_prefixes_and_expire() {
    let redis = Redis::start().await.unwrap();
    let apis = sidecar(&resources(&redis)).await;
    let mut grpc = apis.grpc.clone();
    for store in ["shared", "named"] {
        let response = grpc
            .try_lock_alpha1(TryLockRequest {
                store_name: store.into(),
                resource_id: "invoice".into(),
                lock_owner: "worker".into(),
                expiry_in_seconds: 1,
            })
            .await
            .unwrap()
            .into_inner();
        assert!(response.success, "{store}");
    }
    let listed = std::process::Command::new("redis-cli")
        .args(["-p", &redis.port().to_string(), "--raw", "KEYS", "lock||*"])
        .output()
        .unwrap();
    let mut keys: Vec<String> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    keys.sort();
    assert_eq!(keys, ["lock||myapp||invoice", "lock||named||invoice"]);
    // After the expiry the lock is free again and there is nothing to release.
    tokio::time::sleep(std::time::Duration::from_millis(1_300)).await;
    let status = grpc
        .unlock_alpha1(UnlockRequest {
            store_name: "shared".into(),
            resource_id: "invoice".into(),
            lock_owner: "worker".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status;
    assert_eq!(status, 1);
}

#[tokio::test]
async fn bad_requests_get_upstreams_errors_on_both_edges() {
    let redis = Redis::start().await.unwrap();
    let apis = sidecar(&resources(&redis)).await;
    let cases: [(&str, Value, StatusCode, &str, &str); 7] = [
        (
            "/v1.0-alpha1/lock/locks",
            lock_body("", "a", 5),
            StatusCode::BAD_REQUEST,
            "ERR_MALFORMED_REQUEST",
            "ResourceId is empty in lock store locks",
        ),
        (
            "/v1.0-alpha1/lock/locks",
            lock_body("r", "", 5),
            StatusCode::BAD_REQUEST,
            "ERR_MALFORMED_REQUEST",
            "LockOwner is empty in lock store locks",
        ),
        (
            "/v1.0-alpha1/lock/locks",
            lock_body("r", "a", -1),
            StatusCode::BAD_REQUEST,
            "ERR_MALFORMED_REQUEST",
            "ExpiryInSeconds is not positive in lock store locks",
        ),
        (
            "/v1.0-alpha1/lock/nope",
            lock_body("r", "a", 5),
            StatusCode::BAD_REQUEST,
            "ERR_LOCK_STORE_NOT_FOUND",
            "lock store nope not found",
        ),
        (
            "/v1.0-alpha1/unlock/nope",
            lock_body("r", "a", 0),
            StatusCode::BAD_REQUEST,
            "ERR_LOCK_STORE_NOT_FOUND",
            "lock store nope not found",
        ),
        (
            "/v1.0-alpha1/lock/locks",
            lock_body("a||b", "a", 5),
            StatusCode::INTERNAL_SERVER_ERROR,
            "ERR_TRY_LOCK",
            "failed to try acquiring lock: input key/keyPrefix 'a||b' can't contain '||'",
        ),
        (
            "/v1.0-alpha1/lock/locks",
            json!({"resourceId": "r", "lockOwner": "a", "expiryInSeconds": "soon"}),
            StatusCode::BAD_REQUEST,
            "ERR_MALFORMED_REQUEST",
            "failed deserializing HTTP body: ",
        ),
    ];
    for (path, body, status, code, message) in cases {
        let (answered, error) = post(apis.http, path, body.clone()).await;
        assert_eq!(answered, status, "{path} {body}");
        assert_eq!(error["errorCode"], code, "{path} {body}");
        let text = error["message"].as_str().unwrap_or_default();
        assert!(text.starts_with(message), "{path} {body}: {text}");
    }
    let mut grpc = apis.grpc.clone();
    let error = grpc
        .try_lock_alpha1(TryLockRequest {
            store_name: "locks".into(),
            resource_id: "r".into(),
            lock_owner: "a".into(),
            expiry_in_seconds: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        error.message(),
        "ExpiryInSeconds is not positive in lock store locks"
    );
    let error = grpc
        .unlock_alpha1(UnlockRequest {
            store_name: "nope".into(),
            resource_id: "r".into(),
            lock_owner: "a".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), tonic::Code::InvalidArgument);
    assert_eq!(error.message(), "lock store nope not found");

    // Without any lock store.
    let bare = sidecar("").await;
    let (status, error) = post(bare.http, "/v1.0-alpha1/lock/locks", lock_body("r", "a", 5)).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(error["errorCode"], "ERR_LOCK_STORE_NOT_CONFIGURED");
    let mut grpc = bare.grpc.clone();
    let error = grpc
        .unlock_alpha1(UnlockRequest {
            store_name: "locks".into(),
            resource_id: "r".into(),
            lock_owner: "a".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), tonic::Code::FailedPrecondition);
    assert_eq!(error.message(), "lock store is not configured");
}

#[test]
fn key_prefixes_follow_upstreams_strategies() {
    let key = |prefix: Option<&str>| {
        LockKeyPrefix::parse(prefix)
            .unwrap()
            .key("res", "store", "app")
            .unwrap()
    };
    assert_eq!(key(None), "lock||app||res");
    assert_eq!(key(Some("AppID")), "lock||app||res");
    assert_eq!(key(Some("name")), "lock||store||res");
    assert_eq!(key(Some("none")), "lock||res");
    assert_eq!(key(Some("team")), "lock||team||res");
    assert!(LockKeyPrefix::parse(Some("a||b")).is_err());
}

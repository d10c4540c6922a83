//! The configuration API through both edges of an in-process sidecar over a real
//! redis-server: items by key and all items, over HTTP (`v1.0` and `v1.0-alpha1`) and
//! gRPC (`GetConfiguration` and its alpha1 alias), gRPC subscription streams and their
//! end, and upstream's errors.

use std::net::SocketAddr;
use std::process::Command;

use axum::http::StatusCode;
use bytes::Bytes;
use dapr_proto::runtime::GetConfigurationRequest;
use dapr_testkit::Redis;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

use crate::observability::metrics::SidecarMetrics;
use crate::secrets::SecretScopes;
use crate::test_support::{self, PublicApis};

async fn sidecar(redis: Option<&Redis>) -> PublicApis {
    let metrics = SidecarMetrics::disabled();
    let set = match redis {
        Some(redis) => {
            let yaml = format!(
                "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {{name: config}}\nspec:\n  \
                 type: configuration.redis\n  version: v1\n  metadata:\n  - {{name: redisHost, value: \"{}\"}}\n",
                redis.host()
            );
            test_support::load_yaml(&yaml, &metrics).await
        }
        None => crate::components::ComponentSet::default(),
    };
    test_support::serve_public_apis(
        test_support::default_config(),
        set,
        SecretScopes::default(),
        metrics,
    )
    .await
}

fn redis_cli(redis: &Redis, args: &[&str]) {
    let status = Command::new("redis-cli")
        .arg("-p")
        .arg(redis.port().to_string())
        .args(args)
        .output()
        .unwrap()
        .status;
    assert!(status.success());
}

async fn get(address: SocketAddr, path: &str) -> (StatusCode, Value) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let response = client
        .get(format!("http://{address}{path}").parse().unwrap())
        .await
        .unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

#[tokio::test]
async fn items_are_read_over_http_and_grpc() {
    let redis = Redis::start().await.unwrap();
    redis_cli(&redis, &["SET", "color", "blue||3"]);
    redis_cli(&redis, &["SET", "size", "large"]);
    let apis = sidecar(Some(&redis)).await;
    for version in ["v1.0", "v1.0-alpha1"] {
        let (status, body) = get(
            apis.http,
            &format!("/{version}/configuration/config?key=color&key=missing"),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, json!({"color": {"value": "blue", "version": "3"}}));
        let (status, body) = get(apis.http, &format!("/{version}/configuration/config")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            body,
            json!({"color": {"value": "blue", "version": "3"}, "size": {"value": "large"}})
        );
    }
    let (status, _) = get(apis.http, "/v1.0/configuration/config?key=missing").await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let mut grpc = apis.grpc.clone();
    let request = GetConfigurationRequest {
        store_name: "config".into(),
        keys: vec!["color".into(), "size".into()],
        metadata: Default::default(),
    };
    let items = grpc
        .get_configuration(request.clone())
        .await
        .unwrap()
        .into_inner()
        .items;
    assert_eq!(items["color"].value, "blue");
    assert_eq!(items["color"].version, "3");
    assert_eq!(items["size"].version, "");
    let alpha = grpc
        .get_configuration_alpha1(request)
        .await
        .unwrap()
        .into_inner()
        .items;
    assert_eq!(alpha.len(), 2);
}

#[tokio::test]
async fn unknown_and_missing_stores_get_upstreams_errors() {
    let redis = Redis::start().await.unwrap();
    let apis = sidecar(Some(&redis)).await;
    let (status, body) = get(apis.http, "/v1.0/configuration/nope?key=a").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errorCode"], "ERR_CONFIGURATION_STORE_NOT_FOUND");
    assert_eq!(body["message"], "configuration store nope not found");
    let mut grpc = apis.grpc.clone();
    let error = grpc
        .get_configuration(GetConfigurationRequest {
            store_name: "nope".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), tonic::Code::InvalidArgument);

    let bare = sidecar(None).await;
    let (status, body) = get(bare.http, "/v1.0/configuration/config").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["errorCode"], "ERR_CONFIGURATION_STORE_NOT_CONFIGURED");
    assert_eq!(body["message"], "configuration stores not configured");
    let mut grpc = bare.grpc.clone();
    let error = grpc
        .get_configuration(GetConfigurationRequest {
            store_name: "config".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), tonic::Code::FailedPrecondition);

    // A store whose server went away: upstream's get error, the sidecar stays up.
    drop(redis);
    let (status, body) = get(apis.http, "/v1.0/configuration/config?key=a").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert_eq!(body["errorCode"], "ERR_CONFIGURATION_GET");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("failed to get [a] from Configuration store config: "),
        "{message}"
    );
}

#[tokio::test]
async fn grpc_subscriptions_stream_updates_until_unsubscribed() {
    use dapr_proto::runtime::{SubscribeConfigurationRequest, UnsubscribeConfigurationRequest};
    let redis = Redis::start().await.unwrap();
    let apis = sidecar(Some(&redis)).await;
    let mut grpc = apis.grpc.clone();
    let mut stream = grpc
        .subscribe_configuration(SubscribeConfigurationRequest {
            store_name: "config".into(),
            keys: vec!["color".into()],
            metadata: Default::default(),
        })
        .await
        .unwrap()
        .into_inner();
    let patience = std::time::Duration::from_secs(10);
    let first = tokio::time::timeout(patience, stream.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(!first.id.is_empty());
    assert!(
        first.items.is_empty(),
        "the first message only names the subscription"
    );

    redis_cli(&redis, &["SET", "color", "teal||9"]);
    let update = tokio::time::timeout(patience, stream.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(update.id, first.id);
    assert_eq!(update.items["color"].value, "teal");
    assert_eq!(update.items["color"].version, "9");

    // The alpha1 alias streams the same way.
    let mut alpha = grpc
        .subscribe_configuration_alpha1(SubscribeConfigurationRequest {
            store_name: "config".into(),
            keys: vec![],
            metadata: Default::default(),
        })
        .await
        .unwrap()
        .into_inner();
    let alpha_first = tokio::time::timeout(patience, alpha.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_ne!(alpha_first.id, first.id);

    // Unsubscribing ends the stream; a second time the id is unknown.
    let reply = grpc
        .unsubscribe_configuration(UnsubscribeConfigurationRequest {
            store_name: "config".into(),
            id: first.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(reply.ok, "{reply:?}");
    let ended = tokio::time::timeout(patience, stream.message())
        .await
        .unwrap();
    assert!(matches!(ended, Ok(None)), "{ended:?}");
    let again = grpc
        .unsubscribe_configuration_alpha1(UnsubscribeConfigurationRequest {
            store_name: "config".into(),
            id: first.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!again.ok);
    assert_eq!(
        again.message,
        format!(
            "failed to unsubscribe to configuration request {}: subscription does not exist",
            first.id
        )
    );
    // The store stopped the subscription too: HTTP unsubscribe no longer finds it.
    let (status, body) = get(
        apis.http,
        &format!("/v1.0/configuration/config/{}/unsubscribe", first.id),
    )
    .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        body,
        json!({"message": format!(
            "failed to unsubscribe to configuration request {0}: subscription with id {0} does not exist",
            first.id
        )})
    );

    // A client that goes away is unsubscribed as well.
    drop(alpha);
    let mut unsubscribed = false;
    for _ in 0..50 {
        let (status, _) = get(
            apis.http,
            &format!("/v1.0/configuration/config/{}/unsubscribe", alpha_first.id),
        )
        .await;
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            unsubscribed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(unsubscribed, "the dropped stream's subscription must end");
}

#[tokio::test]
async fn subscribing_without_an_app_or_store_gets_upstreams_errors() {
    use dapr_proto::runtime::SubscribeConfigurationRequest;
    let redis = Redis::start().await.unwrap();
    let apis = sidecar(Some(&redis)).await;
    // This sidecar has no app: HTTP subscriptions have nowhere to go.
    let (status, body) = get(apis.http, "/v1.0/configuration/config/subscribe?key=a").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        body,
        json!({"errorCode": "ERR_APP_CHANNEL_NIL", "message": "app channel is not initialized. cannot subscribe to configuration updates"})
    );
    let (status, body) = get(apis.http, "/v1.0-alpha1/configuration/nope/subscribe").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errorCode"], "ERR_CONFIGURATION_STORE_NOT_FOUND");
    let (status, body) = get(apis.http, "/v1.0/configuration/nope/some-id/unsubscribe").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errorCode"], "ERR_CONFIGURATION_STORE_NOT_FOUND");

    let mut grpc = apis.grpc.clone();
    let error = grpc
        .subscribe_configuration(SubscribeConfigurationRequest {
            store_name: "nope".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), tonic::Code::InvalidArgument);
    assert_eq!(error.message(), "configuration store nope not found");

    // The store's server is gone: upstream's subscribe error.
    drop(redis);
    let error = grpc
        .subscribe_configuration(SubscribeConfigurationRequest {
            store_name: "config".into(),
            keys: vec!["a".into(), "b".into()],
            metadata: Default::default(),
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), tonic::Code::InvalidArgument);
    assert!(
        error
            .message()
            .starts_with("failed to subscribe [a b] from Configuration store config: "),
        "{}",
        error.message()
    );
}

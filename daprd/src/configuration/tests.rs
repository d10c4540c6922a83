//! The configuration API through both edges of an in-process sidecar over a real
//! redis-server: items by key and all items, over HTTP (`v1.0` and `v1.0-alpha1`) and
//! gRPC (`GetConfiguration` and its alpha1 alias), and upstream's errors.

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

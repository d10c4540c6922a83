//! `bindings.redis` against a real `redis-server`, checking what each operation stored
//! with a separate client.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use dapr_testkit::servers::Redis as RedisServer;
use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;
use serde_json::json;

use super::*;

async fn server() -> RedisServer {
    RedisServer::start().await.unwrap()
}

async fn binding_with(settings: serde_json::Value) -> Result<RedisBinding, BindingError> {
    open(&Properties::from_json(&settings).unwrap()).await
}

async fn binding(server: &RedisServer) -> RedisBinding {
    binding_with(json!({"redisHost": server.host()}))
        .await
        .unwrap()
}

async fn raw(url: String) -> MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

fn request(operation: &str, key: &str, data: &str, extra: &[(&str, &str)]) -> InvokeRequest {
    let mut metadata = HashMap::from([(KEY_METADATA_KEY.to_owned(), key.to_owned())]);
    for (name, value) in extra {
        metadata.insert((*name).to_owned(), (*value).to_owned());
    }
    InvokeRequest {
        operation: operation.to_owned(),
        data: Bytes::from(data.to_owned()),
        metadata,
    }
}

#[tokio::test]
async fn create_get_and_delete_plain_string_keys() {
    let server = server().await;
    let binding = binding(&server).await;
    let mut raw = raw(server.url()).await;

    let created = binding
        .invoke(request("create", "k1", "{\"a\":1}", &[]))
        .await
        .unwrap();
    assert_eq!(created, InvokeResponse::default());
    let stored: String = raw.get("k1").await.unwrap();
    assert_eq!(stored, "{\"a\":1}");
    let ttl: i64 = raw.ttl("k1").await.unwrap();
    assert_eq!(ttl, -1, "no TTL unless asked");

    // Binary data is stored byte for byte.
    let bytes = InvokeRequest {
        data: Bytes::from_static(&[0, 159, 146, 150]),
        ..request("create", "bin", "", &[])
    };
    binding.invoke(bytes).await.unwrap();
    let stored: Vec<u8> = raw.get("bin").await.unwrap();
    assert_eq!(stored, vec![0, 159, 146, 150]);

    // A value written by someone else reads back as is.
    let _: () = raw.set("other", "written elsewhere").await.unwrap();
    let got = binding
        .invoke(request("get", "other", "", &[]))
        .await
        .unwrap();
    assert_eq!(got.data, Bytes::from("written elsewhere"));

    binding
        .invoke(request("delete", "k1", "", &[]))
        .await
        .unwrap();
    let exists: bool = raw.exists("k1").await.unwrap();
    assert!(!exists);
    // A missing key reads as empty data, not an error; deleting it again is fine.
    let missing = binding.invoke(request("get", "k1", "", &[])).await.unwrap();
    assert_eq!(missing, InvokeResponse::default());
    binding
        .invoke(request("delete", "k1", "", &[]))
        .await
        .unwrap();
}

#[tokio::test]
async fn get_with_delete_removes_the_key_it_returns() {
    let server = server().await;
    let binding = binding(&server).await;
    let mut raw = raw(server.url()).await;
    binding
        .invoke(request("create", "once", "read me once", &[]))
        .await
        .unwrap();

    // Only the exact text "true" deletes.
    let kept = binding
        .invoke(request("get", "once", "", &[("delete", "yes")]))
        .await
        .unwrap();
    assert_eq!(kept.data, Bytes::from("read me once"));
    assert!(raw.exists::<_, bool>("once").await.unwrap());

    let taken = binding
        .invoke(request("get", "once", "", &[("delete", "true")]))
        .await
        .unwrap();
    assert_eq!(taken.data, Bytes::from("read me once"));
    assert!(!raw.exists::<_, bool>("once").await.unwrap());
}

#[tokio::test]
async fn ttl_metadata_sets_an_expiry_in_whole_seconds() {
    let server = server().await;
    let binding = binding(&server).await;
    let mut raw = raw(server.url()).await;

    binding
        .invoke(request("create", "secs", "v", &[("ttlInSeconds", "100")]))
        .await
        .unwrap();
    let ttl: i64 = raw.ttl("secs").await.unwrap();
    assert!((99..=100).contains(&ttl), "{ttl}");

    // Go duration text under the `ttl` name, which wins over `ttlInSeconds`.
    binding
        .invoke(request(
            "create",
            "text",
            "v",
            &[("ttl", "2m"), ("ttlInSeconds", "5")],
        ))
        .await
        .unwrap();
    let ttl: i64 = raw.ttl("text").await.unwrap();
    assert!((119..=120).contains(&ttl), "{ttl}");

    // The key expires.
    binding
        .invoke(request("create", "short", "v", &[("ttlInSeconds", "1")]))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let gone = binding
        .invoke(request("get", "short", "", &[]))
        .await
        .unwrap();
    assert!(gone.data.is_empty());

    // Bad TTLs are refused with upstream's words, before anything is written.
    for (ttl, message) in [
        (
            "soon",
            "ttl value must be a valid integer: actual is 'soon'",
        ),
        ("-5", "ttl value must be higher than zero: actual is '-5'"),
    ] {
        let error = binding
            .invoke(request("create", "bad", "v", &[("ttlInSeconds", ttl)]))
            .await
            .unwrap_err();
        assert_eq!(error, BindingError::InvalidRequest(message.into()));
    }
    assert!(!raw.exists::<_, bool>("bad").await.unwrap());
}

#[tokio::test]
async fn increment_counts_and_can_expire() {
    let server = server().await;
    let binding = binding(&server).await;
    let mut raw = raw(server.url()).await;

    for _ in 0..3 {
        let response = binding
            .invoke(request("increment", "counter", "", &[]))
            .await
            .unwrap();
        assert_eq!(response, InvokeResponse::default());
    }
    let count: i64 = raw.get("counter").await.unwrap();
    assert_eq!(count, 3);
    let got = binding
        .invoke(request("get", "counter", "", &[]))
        .await
        .unwrap();
    assert_eq!(got.data, Bytes::from("3"));

    binding
        .invoke(request(
            "increment",
            "counter",
            "",
            &[("ttlInSeconds", "50")],
        ))
        .await
        .unwrap();
    let count: i64 = raw.get("counter").await.unwrap();
    assert_eq!(count, 4);
    let ttl: i64 = raw.ttl("counter").await.unwrap();
    assert!((49..=50).contains(&ttl), "{ttl}");

    // Incrementing a value that is not a number is the server's error.
    binding
        .invoke(request("create", "word", "hello", &[]))
        .await
        .unwrap();
    let error = binding
        .invoke(request("increment", "word", "", &[]))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, BindingError::Backend(text) if text.contains("not an integer")),
        "{error}"
    );
}

#[tokio::test]
async fn requests_without_a_key_or_with_another_operation_are_refused() {
    let server = server().await;
    let binding = binding(&server).await;
    assert_eq!(
        binding.operations(),
        vec!["create", "delete", "get", "increment"]
    );

    for metadata in [
        HashMap::new(),
        HashMap::from([("key".into(), String::new())]),
    ] {
        let error = binding
            .invoke(InvokeRequest {
                operation: "get".into(),
                data: Bytes::new(),
                metadata,
            })
            .await
            .unwrap_err();
        assert_eq!(
            error,
            BindingError::InvalidRequest("redis binding: missing key in request metadata".into())
        );
    }
    let error = binding
        .invoke(request("list", "k", "", &[]))
        .await
        .unwrap_err();
    assert_eq!(error, BindingError::UnsupportedOperation("list".into()));

    // A key of another type is the server's error.
    let mut raw = raw(server.url()).await;
    let _: () = raw.hset("hash", "field", "value").await.unwrap();
    let error = binding
        .invoke(request("get", "hash", "", &[]))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, BindingError::Backend(text) if text.contains("WRONGTYPE")),
        "{error}"
    );

    binding.close().await.unwrap();
    let error = binding
        .invoke(request("get", "k", "", &[]))
        .await
        .unwrap_err();
    assert_eq!(error, BindingError::Closed);
}

#[tokio::test]
async fn connection_settings_are_the_shared_redis_ones() {
    let server = server().await;
    // redisDB selects the database.
    let binding = binding_with(json!({"redisHost": server.host(), "redisDB": "3"}))
        .await
        .unwrap();
    binding
        .invoke(request("create", "in-db-3", "v", &[]))
        .await
        .unwrap();
    let mut db3 = raw(format!("{}/3", server.url())).await;
    let stored: String = db3.get("in-db-3").await.unwrap();
    assert_eq!(stored, "v");
    let mut db0 = raw(server.url()).await;
    assert!(!db0.exists::<_, bool>("in-db-3").await.unwrap());

    // A password the server does not expect, and an unreachable server, fail at open.
    let error = binding_with(json!({"redisHost": server.host(), "redisPassword": "nope"}))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, BindingError::Backend(text)
            if text.starts_with(&format!("redis binding: error connecting to redis at {}", server.host()))),
        "{error}"
    );
    drop(server);
    let error = binding_with(json!({
        "redisHost": "127.0.0.1:1",
        "redisMaxRetries": "-1",
    }))
    .await
    .unwrap_err();
    assert!(
        matches!(&error, BindingError::Backend(text)
            if text.starts_with("redis binding: error connecting to redis at 127.0.0.1:1")),
        "{error}"
    );

    let error = binding_with(json!({})).await.unwrap_err();
    assert_eq!(
        error,
        BindingError::InvalidMetadata("redisHost is required".into())
    );
}

#[test]
fn retry_defaults_are_go_redis_ones_without_the_state_store_aliases() {
    let parse = |value: serde_json::Value| settings(&Properties::from_json(&value).unwrap());
    let metadata =
        parse(json!({"redisHost": "h", "maxRetries": 9, "maxRetryBackoff": 1_000_000})).unwrap();
    assert_eq!(metadata.max_retries, 3);
    assert_eq!(metadata.min_retry_interval, Some(Duration::from_millis(8)));
    let metadata = parse(json!({
        "redisHost": "h",
        "redisMaxRetries": 5,
        "redisMinRetryInterval": "100ms",
    }))
    .unwrap();
    assert_eq!(metadata.max_retries, 5);
    assert_eq!(
        metadata.min_retry_interval,
        Some(Duration::from_millis(100))
    );
}

#[test]
fn ttl_text_is_read_as_upstream_reads_it() {
    let ttl = |name: &str, value: &str| {
        requested_ttl(&HashMap::from([(name.to_owned(), value.to_owned())]))
    };
    assert_eq!(ttl("ttlInSeconds", "30"), Ok(Some(Duration::from_secs(30))));
    assert_eq!(
        ttl("TTLINSECONDS", "1h"),
        Ok(Some(Duration::from_secs(3600)))
    );
    assert_eq!(ttl("ttl", "1.5s"), Ok(Some(Duration::from_millis(1500))));
    // "0" is a valid Go duration; a negative duration counts as zero.
    assert_eq!(ttl("ttl", "0"), Ok(Some(Duration::ZERO)));
    assert_eq!(ttl("ttl", "-3s"), Ok(Some(Duration::ZERO)));
    assert_eq!(ttl("ttl", ""), Ok(None));
    assert_eq!(ttl("other", "5"), Ok(None));
    assert!(ttl("ttl", "-1").is_err());
    assert!(ttl("ttl", "5x").is_err());
}

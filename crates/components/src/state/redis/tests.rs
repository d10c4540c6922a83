//! `state.redis` against real `redis-server` processes: upstream's on-store layout, ETag,
//! first-write, TTL and transaction rules, legacy keys, settings, cluster and Sentinel.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use dapr_testkit::servers::Redis as RedisServer;
use dapr_testkit::{GuardedProcess, Launch};
use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;
use serde_json::json;

use super::*;
use crate::state::conformance::{self, Expectations};
use crate::state::{EtagErrorKind, StateStore, TTL_METADATA_KEY};

/// Upstream's Redis semantics where stores differ: an ETag for a missing key passes, a
/// write without a TTL keeps the expiry, a first-write conflict is a plain error.
const UPSTREAM_REDIS: Expectations = Expectations {
    etag_requires_existing_key: false,
    write_without_ttl_clears_expiry: false,
    first_write_conflict_is_mismatch: false,
};

async fn server() -> RedisServer {
    RedisServer::start().await.unwrap()
}

async fn store_with(settings: serde_json::Value) -> Result<RedisStateStore, StateError> {
    open(&Properties::from_json(&settings).unwrap()).await
}

async fn store(server: &RedisServer) -> RedisStateStore {
    store_with(json!({"redisHost": server.host()}))
        .await
        .unwrap()
}

async fn raw(server: &RedisServer) -> MultiplexedConnection {
    redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

fn set(key: &str, value: &str) -> SetRequest {
    SetRequest {
        key: key.to_owned(),
        value: Bytes::from(value.to_owned()),
        ..SetRequest::default()
    }
}

fn set_with_etag(key: &str, value: &str, etag: &str) -> SetRequest {
    SetRequest {
        etag: Some(etag.to_owned()),
        ..set(key, value)
    }
}

fn with_ttl(mut request: SetRequest, ttl: &str) -> SetRequest {
    request
        .metadata
        .insert(TTL_METADATA_KEY.to_owned(), ttl.to_owned());
    request
}

fn get(key: &str) -> GetRequest {
    GetRequest {
        key: key.to_owned(),
        ..GetRequest::default()
    }
}

fn delete(key: &str, etag: Option<&str>) -> DeleteRequest {
    DeleteRequest {
        key: key.to_owned(),
        etag: etag.map(str::to_owned),
        ..DeleteRequest::default()
    }
}

async fn hash(connection: &mut MultiplexedConnection, key: &str) -> HashMap<String, String> {
    connection.hgetall(key).await.unwrap()
}

fn etag_kind(error: &StateError) -> Option<EtagErrorKind> {
    match error {
        StateError::Etag { kind, .. } => Some(*kind),
        _ => None,
    }
}

#[tokio::test]
async fn behaviour_suite() {
    let server = server().await;
    let store = store(&server).await;
    conformance::run_all_with(&store, UPSTREAM_REDIS).await;
}

#[tokio::test]
async fn values_are_stored_in_upstreams_hash_layout() {
    let server = server().await;
    let store = store(&server).await;
    let mut raw = raw(&server).await;

    store.set(set("app||layout", r#"{"a":1}"#)).await.unwrap();
    assert_eq!(
        hash(&mut raw, "app||layout").await,
        HashMap::from([
            ("data".to_owned(), r#"{"a":1}"#.to_owned()),
            ("version".to_owned(), "1".to_owned()),
        ])
    );
    store.set(set("app||layout", "second")).await.unwrap();
    assert_eq!(hash(&mut raw, "app||layout").await["version"], "2");
    let response = store.get(get("app||layout")).await.unwrap();
    assert_eq!(response.data, Bytes::from_static(b"second"));
    assert_eq!(response.etag.as_deref(), Some("2"));
    assert!(response.metadata.is_empty());

    // Raw bytes are kept exactly.
    let binary = SetRequest {
        value: Bytes::from_static(&[0, 159, 146, 150, 255]),
        ..set("app||binary", "")
    };
    store.set(binary).await.unwrap();
    let stored: Vec<u8> = raw.hget("app||binary", "data").await.unwrap();
    assert_eq!(stored, vec![0, 159, 146, 150, 255]);

    // First-write concurrency marks the hash as upstream does.
    let first = SetRequest {
        concurrency: Concurrency::FirstWrite,
        ..set("app||marked", "v")
    };
    store.set(first).await.unwrap();
    assert_eq!(
        hash(&mut raw, "app||marked").await,
        HashMap::from([
            ("data".to_owned(), "v".to_owned()),
            ("version".to_owned(), "1".to_owned()),
            ("first-write".to_owned(), "0".to_owned()),
        ])
    );

    // No expiry unless asked for.
    let ttl: i64 = raw.ttl("app||layout").await.unwrap();
    assert_eq!(ttl, -1);
}

#[tokio::test]
async fn keys_written_by_upstream_read_back_with_their_etag() {
    let server = server().await;
    let store = store(&server).await;
    let mut raw = raw(&server).await;

    let _: () = raw
        .hset_multiple("app||upstream", &[("data", r#""hello""#), ("version", "7")])
        .await
        .unwrap();
    let response = store.get(get("app||upstream")).await.unwrap();
    assert_eq!(response.data, Bytes::from_static(br#""hello""#));
    assert_eq!(response.etag.as_deref(), Some("7"));

    store
        .set(set_with_etag("app||upstream", r#""next""#, "7"))
        .await
        .unwrap();
    assert_eq!(hash(&mut raw, "app||upstream").await["version"], "8");
    let error = store
        .set(set_with_etag("app||upstream", "stale", "7"))
        .await
        .unwrap_err();
    assert_eq!(etag_kind(&error), Some(EtagErrorKind::Mismatch), "{error}");

    // A plain string from before ETags: read without an ETag, replaced by the next write.
    let _: () = raw.set("app||legacy", "plain").await.unwrap();
    let response = store.get(get("app||legacy")).await.unwrap();
    assert_eq!(response.data, Bytes::from_static(b"plain"));
    assert_eq!(response.etag, None);
    store.set(set("app||legacy", "hashed")).await.unwrap();
    assert_eq!(
        hash(&mut raw, "app||legacy").await,
        HashMap::from([
            ("data".to_owned(), "hashed".to_owned()),
            ("version".to_owned(), "1".to_owned()),
        ])
    );

    // A hash without the required fields is an error, as upstream reports it.
    let _: () = raw.hset("app||broken", "other", "x").await.unwrap();
    let error = store.get(get("app||broken")).await.unwrap_err();
    assert!(error.to_string().contains("'data' or 'version'"), "{error}");

    // Missing keys are empty responses.
    assert!(store.get(get("app||missing")).await.unwrap().is_missing());
}

#[tokio::test]
async fn etags_follow_upstreams_rules() {
    let server = server().await;
    let store = store(&server).await;
    let mut raw = raw(&server).await;

    store.set(set("app||k", "v1")).await.unwrap();
    let error = store
        .set(set_with_etag("app||k", "v", "9"))
        .await
        .unwrap_err();
    assert_eq!(etag_kind(&error), Some(EtagErrorKind::Mismatch));
    let error = store
        .set(set_with_etag("app||k", "v", "not-a-number"))
        .await
        .unwrap_err();
    assert_eq!(etag_kind(&error), Some(EtagErrorKind::Invalid));
    assert_eq!(store.get(get("app||k")).await.unwrap().data, "v1");

    // Last-write concurrency ignores the ETag (upstream's parseETag).
    let last_write = SetRequest {
        concurrency: Concurrency::LastWrite,
        ..set_with_etag("app||k", "v2", "9")
    };
    store.set(last_write).await.unwrap();
    assert_eq!(hash(&mut raw, "app||k").await["version"], "2");
    store.set(set_with_etag("app||k", "v3", "2")).await.unwrap();

    // An empty ETag is no ETag.
    store.set(set_with_etag("app||k", "v4", "")).await.unwrap();
    assert_eq!(
        store.get(get("app||k")).await.unwrap().etag.as_deref(),
        Some("4")
    );

    // Deletes: a wrong ETag is refused; the right one, or none, deletes.
    let error = store.delete(delete("app||k", Some("1"))).await.unwrap_err();
    assert_eq!(etag_kind(&error), Some(EtagErrorKind::Mismatch));
    store.delete(delete("app||k", Some("4"))).await.unwrap();
    assert!(store.get(get("app||k")).await.unwrap().is_missing());
    store.delete(delete("app||k", None)).await.unwrap();

    // An ETag for a missing key passes, as in upstream's scripts: the delete removes
    // nothing and the set creates the key at version 1.
    store.delete(delete("app||k", Some("3"))).await.unwrap();
    store
        .set(set_with_etag("app||fresh", "v", "5"))
        .await
        .unwrap();
    let response = store.get(get("app||fresh")).await.unwrap();
    assert_eq!(
        (response.data.as_ref(), response.etag.as_deref()),
        (&b"v"[..], Some("1"))
    );

    // The ETag "0" is upstream's encoding of "no ETag": it passes on any unmarked key.
    store
        .set(set_with_etag("app||fresh", "v2", "0"))
        .await
        .unwrap();
    assert_eq!(hash(&mut raw, "app||fresh").await["version"], "2");
    store.delete(delete("app||fresh", Some("0"))).await.unwrap();
    assert!(store.get(get("app||fresh")).await.unwrap().is_missing());

    // A plain string from before ETags has no version, so any ETag passes too.
    let _: () = raw.set("app||legacy", "plain").await.unwrap();
    store
        .set(set_with_etag("app||legacy", "v", "7"))
        .await
        .unwrap();
    assert_eq!(
        hash(&mut raw, "app||legacy").await,
        HashMap::from([
            ("data".to_owned(), "v".to_owned()),
            ("version".to_owned(), "1".to_owned()),
        ])
    );
    let _: () = raw.set("app||legacy", "plain").await.unwrap();
    store
        .delete(delete("app||legacy", Some("7")))
        .await
        .unwrap();
    assert!(store.get(get("app||legacy")).await.unwrap().is_missing());

    // ETags are parsed as upstream's strconv.Atoi does: no surrounding spaces.
    store.set(set("app||spaced", "v")).await.unwrap();
    let error = store
        .set(set_with_etag("app||spaced", "v", " 1"))
        .await
        .unwrap_err();
    assert_eq!(etag_kind(&error), Some(EtagErrorKind::Invalid));
}

#[tokio::test]
async fn first_write_refuses_a_second_write_without_the_etag() {
    let server = server().await;
    let store = store(&server).await;
    let first_write = |etag: Option<&str>| SetRequest {
        concurrency: Concurrency::FirstWrite,
        etag: etag.map(str::to_owned),
        ..set("app||fw", "value")
    };

    store.set(first_write(None)).await.unwrap();
    // Without an ETag the refusal is a plain error, as upstream reports it (daprd: 500
    // ERR_STATE_SAVE, not 409).
    let error = store.set(first_write(None)).await.unwrap_err();
    assert_eq!(
        error,
        StateError::Backend("failed to set key app||fw: ERR failed to set key app||fw".to_owned())
    );
    let error = store.set(first_write(Some(""))).await.unwrap_err();
    assert!(matches!(error, StateError::Backend(_)), "{error}");
    // Once marked, even a plain write without an ETag is refused (upstream's script).
    let error = store.set(set("app||fw", "other")).await.unwrap_err();
    assert!(matches!(error, StateError::Backend(_)), "{error}");
    assert_eq!(store.get(get("app||fw")).await.unwrap().data, "value");
    // With the current ETag it passes; the old ETag then fails as a mismatch.
    store.set(first_write(Some("1"))).await.unwrap();
    let error = store.set(first_write(Some("1"))).await.unwrap_err();
    assert_eq!(etag_kind(&error), Some(EtagErrorKind::Mismatch));
    assert_eq!(
        error.to_string(),
        "possible etag mismatch. error from state store: ERR failed to set key app||fw"
    );
    // A last-write request with an ETag ignores it, but the refusal is still reported
    // as a mismatch (upstream checks whether the request had an ETag).
    let last_write = SetRequest {
        concurrency: Concurrency::LastWrite,
        ..set_with_etag("app||fw", "other", "2")
    };
    let error = store.set(last_write).await.unwrap_err();
    assert_eq!(etag_kind(&error), Some(EtagErrorKind::Mismatch));

    // A value written with last-write first accepts a first-write without an ETag
    // exactly once more, as upstream's script does.
    store.set(set("app||fw2", "a")).await.unwrap();
    let second = SetRequest {
        key: "app||fw2".to_owned(),
        ..first_write(None)
    };
    store.set(second.clone()).await.unwrap();
    assert!(store.set(second).await.is_err());
}

#[tokio::test]
async fn ttls_expire_values_and_report_the_expiry() {
    let server = server().await;
    let store = store(&server).await;
    let mut raw = raw(&server).await;

    store
        .set(with_ttl(set("app||short", "v"), "1"))
        .await
        .unwrap();
    let response = store.get(get("app||short")).await.unwrap();
    assert_eq!(response.data, "v");
    let expiry = &response.metadata[TTL_EXPIRE_TIME_METADATA_KEY];
    assert!(expiry.ends_with('Z') && expiry.len() == 20, "{expiry}");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(store.get(get("app||short")).await.unwrap().is_missing());

    // -1 (or 0) removes an expiry; a later write without a TTL keeps it.
    store
        .set(with_ttl(set("app||kept", "v"), "100"))
        .await
        .unwrap();
    let ttl: i64 = raw.ttl("app||kept").await.unwrap();
    assert!((90..=100).contains(&ttl), "{ttl}");
    store
        .set(with_ttl(set("app||kept", "v2"), "-1"))
        .await
        .unwrap();
    let ttl: i64 = raw.ttl("app||kept").await.unwrap();
    assert_eq!(ttl, -1);
    let response = store.get(get("app||kept")).await.unwrap();
    assert!(!response.metadata.contains_key(TTL_EXPIRE_TIME_METADATA_KEY));
    store
        .set(with_ttl(set("app||kept", "v3"), "100"))
        .await
        .unwrap();
    store.set(set("app||kept", "v4")).await.unwrap();
    let ttl: i64 = raw.ttl("app||kept").await.unwrap();
    assert!((90..=100).contains(&ttl), "{ttl}");
    let response = store.get(get("app||kept")).await.unwrap();
    assert_eq!(response.data, "v4");
    assert!(response.metadata.contains_key(TTL_EXPIRE_TIME_METADATA_KEY));
    // An empty ttlInSeconds is no TTL, as upstream reads it.
    store
        .set(with_ttl(set("app||kept", "v5"), ""))
        .await
        .unwrap();
    let ttl: i64 = raw.ttl("app||kept").await.unwrap();
    assert!((90..=100).contains(&ttl), "{ttl}");
    store
        .set(with_ttl(set("app||kept", "v6"), "0"))
        .await
        .unwrap();
    let ttl: i64 = raw.ttl("app||kept").await.unwrap();
    assert_eq!(ttl, -1);

    let error = store
        .set(with_ttl(set("app||bad", "v"), "soon"))
        .await
        .unwrap_err();
    assert!(matches!(error, StateError::InvalidRequest(_)), "{error}");

    // The component-wide default applies (and is renewed) on every write that does not
    // set its own TTL; a request's own TTL overrides it.
    let defaulted = store_with(json!({"redisHost": server.host(), "ttlInSeconds": 50}))
        .await
        .unwrap();
    store
        .set(with_ttl(set("app||default", "v"), "1000"))
        .await
        .unwrap();
    defaulted.set(set("app||default", "v")).await.unwrap();
    let ttl: i64 = raw.ttl("app||default").await.unwrap();
    assert!((40..=50).contains(&ttl), "{ttl}");
    defaulted
        .set(with_ttl(set("app||override", "v"), "-1"))
        .await
        .unwrap();
    let ttl: i64 = raw.ttl("app||override").await.unwrap();
    assert_eq!(ttl, -1);
    // A default of zero or less makes every write without a TTL permanent.
    let permanent = store_with(json!({"redisHost": server.host(), "ttlInSeconds": -1}))
        .await
        .unwrap();
    permanent.set(set("app||default", "v2")).await.unwrap();
    let ttl: i64 = raw.ttl("app||default").await.unwrap();
    assert_eq!(ttl, -1);
}

#[tokio::test]
async fn transactions_apply_everything_or_nothing() {
    let server = server().await;
    let store = store(&server).await;
    let mut raw = raw(&server).await;
    assert!(store.features().contains(&Feature::Transactional));

    store.set(set("app||a", "a1")).await.unwrap();
    store.set(set("app||doomed", "d1")).await.unwrap();

    // The last operation's ETag is wrong: nothing of the transaction is applied.
    let failing = TransactionRequest {
        operations: vec![
            TransactionOperation::Upsert(set("app||a", "a2")),
            TransactionOperation::Upsert(set("app||new", "n1")),
            TransactionOperation::Delete(delete("app||doomed", Some("99"))),
        ],
        metadata: HashMap::new(),
    };
    let error = store.transact(failing).await.unwrap_err();
    assert_eq!(etag_kind(&error), Some(EtagErrorKind::Mismatch), "{error}");
    assert!(error.to_string().contains("app||doomed"), "{error}");
    assert_eq!(
        hash(&mut raw, "app||a").await,
        HashMap::from([
            ("data".to_owned(), "a1".to_owned()),
            ("version".to_owned(), "1".to_owned()),
        ])
    );
    let exists: bool = raw.exists("app||new").await.unwrap();
    assert!(!exists);
    assert_eq!(store.get(get("app||doomed")).await.unwrap().data, "d1");

    // An invalid ETag is refused before anything runs.
    let invalid = TransactionRequest {
        operations: vec![
            TransactionOperation::Upsert(set("app||a", "a2")),
            TransactionOperation::Upsert(set_with_etag("app||new", "n1", "x")),
        ],
        metadata: HashMap::new(),
    };
    let error = store.transact(invalid).await.unwrap_err();
    assert_eq!(etag_kind(&error), Some(EtagErrorKind::Invalid));
    assert_eq!(store.get(get("app||a")).await.unwrap().data, "a1");

    // Checks see the earlier operations of the same transaction.
    let passing = TransactionRequest {
        operations: vec![
            TransactionOperation::Upsert(set_with_etag("app||a", "a2", "1")),
            TransactionOperation::Upsert(set_with_etag("app||a", "a3", "2")),
            TransactionOperation::Upsert(with_ttl(set("app||new", "n1"), "100")),
            TransactionOperation::Delete(delete("app||doomed", Some("1"))),
        ],
        metadata: HashMap::new(),
    };
    store.transact(passing).await.unwrap();
    assert_eq!(
        hash(&mut raw, "app||a").await,
        HashMap::from([
            ("data".to_owned(), "a3".to_owned()),
            ("version".to_owned(), "3".to_owned()),
        ])
    );
    assert_eq!(hash(&mut raw, "app||new").await["version"], "1");
    let ttl: i64 = raw.ttl("app||new").await.unwrap();
    assert!(ttl > 0);
    assert!(store.get(get("app||doomed")).await.unwrap().is_missing());

    // A stale ETag inside one transaction (the second write expects the old version).
    let stale = TransactionRequest {
        operations: vec![
            TransactionOperation::Upsert(set_with_etag("app||a", "a4", "3")),
            TransactionOperation::Upsert(set_with_etag("app||a", "a5", "3")),
        ],
        metadata: HashMap::new(),
    };
    assert!(store.transact(stale).await.is_err());
    assert_eq!(store.get(get("app||a")).await.unwrap().data, "a3");

    // A first-write-marked key refuses a transactional write without an ETag.
    let marked = SetRequest {
        concurrency: Concurrency::FirstWrite,
        ..set("app||marked", "m")
    };
    store.set(marked).await.unwrap();
    let refused = TransactionRequest {
        operations: vec![
            TransactionOperation::Upsert(set("app||a", "a6")),
            TransactionOperation::Upsert(set("app||marked", "m2")),
        ],
        metadata: HashMap::new(),
    };
    let error = store.transact(refused).await.unwrap_err();
    assert_eq!(
        error,
        StateError::Backend("ERR failed to set key app||marked".to_owned())
    );
    assert_eq!(store.get(get("app||a")).await.unwrap().data, "a3");

    // An ETag for a missing key passes here too; a write without a TTL keeps the
    // expiry, as upstream's pipeline leaves it.
    store
        .transact(TransactionRequest {
            operations: vec![
                TransactionOperation::Upsert(set_with_etag("app||absent", "x", "4")),
                TransactionOperation::Delete(delete("app||gone", Some("2"))),
                TransactionOperation::Upsert(set("app||new", "n2")),
            ],
            metadata: HashMap::new(),
        })
        .await
        .unwrap();
    assert_eq!(hash(&mut raw, "app||absent").await["version"], "1");
    let ttl: i64 = raw.ttl("app||new").await.unwrap();
    assert!(ttl > 0, "{ttl}");

    // Legacy plain strings are replaced inside transactions too.
    let _: () = raw.set("app||legacy", "plain").await.unwrap();
    store
        .transact(TransactionRequest {
            operations: vec![TransactionOperation::Upsert(set("app||legacy", "h"))],
            metadata: HashMap::new(),
        })
        .await
        .unwrap();
    assert_eq!(hash(&mut raw, "app||legacy").await["version"], "1");
    store.transact(TransactionRequest::default()).await.unwrap();
}

#[tokio::test]
async fn every_script_compiles_on_the_server() {
    // The RedisJSON scripts cannot run without the module; loading still checks the Lua.
    let server = server().await;
    let mut raw = raw(&server).await;
    for script in [
        &scripts::SET,
        &scripts::DELETE,
        &scripts::SET_JSON,
        &scripts::DELETE_JSON,
        &scripts::TRANSACTION,
    ] {
        let hash = script.load_async(&mut raw).await.unwrap();
        assert_eq!(hash, script.get_hash());
    }
}

#[tokio::test]
async fn bulk_get_reads_every_key() {
    let server = server().await;
    let store = store(&server).await;
    store.set(set("app||b1", "1")).await.unwrap();
    store.set(set("app||b2", "2")).await.unwrap();
    store.set(set("app||b2", "22")).await.unwrap();
    let items = store
        .bulk_get(vec![get("app||b1"), get("app||b2"), get("app||b3")], 2)
        .await;
    assert_eq!(items.len(), 3);
    assert_eq!(
        (items[0].data.as_ref(), items[0].etag.as_deref()),
        (&b"1"[..], Some("1"))
    );
    assert_eq!(
        (items[1].data.as_ref(), items[1].etag.as_deref()),
        (&b"22"[..], Some("2"))
    );
    assert!(items[2].data.is_empty() && items[2].etag.is_none() && items[2].error.is_none());
}

#[tokio::test]
async fn json_content_type_keeps_the_hash_layout_without_redisjson() {
    let server = server().await;
    let store = store(&server).await;
    let mut raw = raw(&server).await;
    let mut request = set("app||json", r#"{"n":1}"#);
    request
        .metadata
        .insert("contentType".to_owned(), "application/json".to_owned());
    store.set(request).await.unwrap();
    assert_eq!(hash(&mut raw, "app||json").await["data"], r#"{"n":1}"#);
}

#[tokio::test]
async fn query_needs_indexes_and_the_search_modules() {
    let server = server().await;
    let store = store(&server).await;
    assert!(!store.features().contains(&Feature::QueryApi));
    assert_eq!(
        store.features(),
        &[Feature::Etag, Feature::Transactional, Feature::Ttl]
    );
    let error = store
        .query(Query::default(), HashMap::new())
        .await
        .unwrap_err();
    assert_eq!(error, StateError::NotSupported("query"));

    // Declaring indexes on a server without RediSearch fails like upstream's Init.
    let indexes = r#"[{"name": "idx", "indexes": [{"key": "person.org", "type": "TEXT"}]}]"#;
    let error = store_with(json!({"redisHost": server.host(), "queryIndexes": indexes}))
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, StateError::InvalidMetadata(_)), "{text}");
    assert!(text.contains("error registering query schemas"), "{text}");
    assert!(text.contains("unknown command"), "{text}");

    let error = store_with(json!({"redisHost": server.host(), "queryIndexes": "[{"}))
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("error parsing query index schema"),
        "{error}"
    );
}

#[tokio::test]
async fn bad_settings_fail_to_open_with_a_named_reason() {
    let server = server().await;
    let host = server.host();
    for (settings, expected) in [
        (json!({}), "redisHost is required"),
        (json!({"redisHost": host, "redisType": "ring"}), "redisType"),
        (
            json!({"redisHost": host, "failover": true}),
            "sentinelMasterName",
        ),
        (json!({"redisHost": host, "useEntraID": true}), "useEntraID"),
        (json!({"redisHost": host, "useOIDC": "true"}), "useOIDC"),
        (json!({"redisHost": host, "redisDB": "first"}), "redisDB"),
        (
            json!({"redisHost": host, "dialTimeout": "quick"}),
            "dialTimeout",
        ),
        (
            json!({"redisHost": host, "ttlInSeconds": "1h"}),
            "ttlInSeconds",
        ),
        (
            json!({"redisHost": host, "enableTLS": "perhaps"}),
            "enableTLS",
        ),
    ] {
        let error = store_with(settings).await.unwrap_err();
        assert!(matches!(error, StateError::InvalidMetadata(_)), "{error}");
        assert!(error.to_string().contains(expected), "{expected}: {error}");
    }

    // Nothing listens: a backend error naming the address.
    let closed = dapr_testkit::ports::free_port();
    let error = store_with(json!({
        "redisHost": format!("127.0.0.1:{closed}"),
        "redisMaxRetries": -1,
        "dialTimeout": "1s",
    }))
    .await
    .unwrap_err();
    assert!(matches!(error, StateError::Backend(_)), "{error}");
    assert!(
        error
            .to_string()
            .contains(&format!("error connecting to redis at 127.0.0.1:{closed}")),
        "{error}"
    );

    // Pool settings of go-redis are accepted.
    let store = store_with(json!({"redisHost": host, "poolSize": 20, "idleTimeout": "5m"}))
        .await
        .unwrap();
    store.ping().await.unwrap();
}

#[tokio::test]
async fn authentication_and_database_selection_apply() {
    let server = server().await;
    let mut raw = raw(&server).await;
    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", "dapr", "on", ">s3cret", "~*", "+@all"][..])
        .query_async(&mut raw)
        .await
        .unwrap();
    let store = store_with(json!({
        "redisHost": server.host(),
        "redisUsername": "dapr",
        "redisPassword": "s3cret",
        "redisDB": 3,
    }))
    .await
    .unwrap();
    store.set(set("app||db", "three")).await.unwrap();
    let _: () = redis::cmd("SELECT")
        .arg(3)
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(hash(&mut raw, "app||db").await["data"], "three");

    let error = store_with(json!({
        "redisHost": server.host(),
        "redisUsername": "dapr",
        "redisPassword": "wrong",
        "redisMaxRetries": -1,
    }))
    .await
    .unwrap_err();
    assert!(matches!(error, StateError::Backend(_)), "{error}");
}

#[tokio::test]
async fn ping_and_close() {
    let server = server().await;
    let store = store(&server).await;
    store.ping().await.unwrap();
    store.close().await.unwrap();
    assert!(store.ping().await.is_err());
    assert!(store.get(get("app||x")).await.is_err());
    store.close().await.unwrap();
}

#[tokio::test]
async fn reconnects_after_the_server_drops_the_connection() {
    let server = server().await;
    let store = store_with(json!({
        "redisHost": server.host(),
        "redisMinRetryInterval": "20ms",
    }))
    .await
    .unwrap();
    store.set(set("app||r", "1")).await.unwrap();
    let mut raw = raw(&server).await;
    let _: () = redis::cmd("CLIENT")
        .arg(&["KILL", "TYPE", "normal", "SKIPME", "yes"][..])
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(store.get(get("app||r")).await.unwrap().data, "1");
}

/// A plain `redis-server` on `port` without persistence, once it answers `PING`.
async fn redis_on(port: u16, name: &str, extra_args: &[&str]) -> GuardedProcess {
    let program = dapr_testkit::programs::find("redis-server", "redis-server").unwrap();
    let dir = dapr_testkit::process::temp_dir(name).unwrap();
    let launch = Launch::new(name, program)
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
        .args(extra_args)
        .arg("--dir")
        .arg(dir.path());
    let process = GuardedProcess::spawn(launch, dir).unwrap();
    dapr_testkit::ready::wait_until_ready(&process, Duration::from_secs(30), || {
        dapr_testkit::probe::redis_ping(port)
    })
    .await
    .unwrap();
    process
}

#[tokio::test]
async fn a_stopped_server_is_a_backend_error_and_a_restarted_one_is_used_again() {
    let server = server().await;
    let port = server.port();
    // Upstream's default retries and backoff, and no retries at all.
    let store = store(&server).await;
    let no_retries = store_with(json!({"redisHost": server.host(), "redisMaxRetries": -1}))
        .await
        .unwrap();
    store.set(set("app||down", "before")).await.unwrap();
    no_retries.ping().await.unwrap();
    server.process().kill().await.unwrap();

    let (read, write, delete_with_etag, ping, unretried) = tokio::join!(
        store.get(get("app||down")),
        store.set(set("app||down", "during")),
        store.delete(delete("app||down", Some("1"))),
        store.ping(),
        no_retries.get(get("app||down")),
    );
    for error in [
        read.unwrap_err(),
        write.unwrap_err(),
        delete_with_etag.unwrap_err(),
        ping.unwrap_err(),
        unretried.unwrap_err(),
    ] {
        // A lost server is a backend error, never an ETag mismatch.
        assert!(matches!(error, StateError::Backend(_)), "{error}");
        assert_eq!(etag_kind(&error), None, "{error}");
    }

    // A new (empty) server on the same port: the next call dials it, even without retries.
    let _restarted = redis_on(port, "redis-restarted", &[]).await;
    no_retries.ping().await.unwrap();
    assert!(
        no_retries
            .get(get("app||down"))
            .await
            .unwrap()
            .data
            .is_empty()
    );
    store.set(set("app||down", "after")).await.unwrap();
    assert_eq!(store.get(get("app||down")).await.unwrap().data, "after");
}

/// A one-node Redis Cluster that owns every slot.
async fn cluster_node() -> (GuardedProcess, u16) {
    let port = dapr_testkit::ports::free_port();
    let process = redis_on(
        port,
        "redis-cluster",
        &[
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
        ],
    )
    .await;
    let mut raw = redis::Client::open(format!("redis://127.0.0.1:{port}"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::cmd("CLUSTER")
        .arg(&["ADDSLOTSRANGE", "0", "16383"][..])
        .query_async(&mut raw)
        .await
        .unwrap();
    for _ in 0..100 {
        let info: String = redis::cmd("CLUSTER")
            .arg("INFO")
            .query_async(&mut raw)
            .await
            .unwrap();
        if info.contains("cluster_state:ok") {
            return (process, port);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the one-node cluster never reached cluster_state:ok");
}

#[tokio::test]
async fn cluster_mode_reads_writes_and_transacts_per_slot() {
    let (_process, port) = cluster_node().await;
    let store = store_with(json!({
        "redisHost": format!("127.0.0.1:{port}"),
        "redisType": "cluster",
    }))
    .await
    .unwrap();
    store.set(set("app||c1", "1")).await.unwrap();
    let response = store.get(get("app||c1")).await.unwrap();
    assert_eq!(
        (response.data.as_ref(), response.etag.as_deref()),
        (&b"1"[..], Some("1"))
    );
    assert_ne!(slot::of(b"app||c1"), slot::of(b"app||c2"));

    // Keys on different slots: each slot's group applies as one script.
    store
        .transact(TransactionRequest {
            operations: vec![
                TransactionOperation::Upsert(set_with_etag("app||c1", "2", "1")),
                TransactionOperation::Upsert(set("app||c2", "x")),
                TransactionOperation::Delete(delete("app||c1", Some("2"))),
            ],
            metadata: HashMap::new(),
        })
        .await
        .unwrap();
    assert!(store.get(get("app||c1")).await.unwrap().is_missing());
    assert_eq!(store.get(get("app||c2")).await.unwrap().data, "x");

    // Keys sharing a hash tag form one group.
    store
        .transact(TransactionRequest {
            operations: vec![
                TransactionOperation::Upsert(set("app||{t}1", "a")),
                TransactionOperation::Upsert(set("app||{t}2", "b")),
            ],
            metadata: HashMap::new(),
        })
        .await
        .unwrap();
    // A group that fails its check applies nothing of that group.
    let error = store
        .transact(TransactionRequest {
            operations: vec![
                TransactionOperation::Upsert(set("app||{t}1", "a2")),
                TransactionOperation::Upsert(set_with_etag("app||{t}2", "b2", "5")),
            ],
            metadata: HashMap::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(etag_kind(&error), Some(EtagErrorKind::Mismatch));
    assert_eq!(store.get(get("app||{t}1")).await.unwrap().data, "a");
    store.ping().await.unwrap();
}

#[tokio::test]
async fn failover_finds_the_master_through_sentinel() {
    let master = server().await;
    let program = dapr_testkit::programs::find("redis-server", "redis-server").unwrap();
    let port = dapr_testkit::ports::free_port();
    let dir = dapr_testkit::process::temp_dir("redis-sentinel").unwrap();
    let config = dir.path().join("sentinel.conf");
    std::fs::write(
        &config,
        format!(
            "port {port}\nbind 127.0.0.1\ndaemonize no\n\
             sentinel monitor mymaster 127.0.0.1 {} 1\n",
            master.port()
        ),
    )
    .unwrap();
    let launch = Launch::new("redis-sentinel", program)
        .arg(&config)
        .arg("--sentinel");
    let sentinel = GuardedProcess::spawn(launch, dir).unwrap();
    dapr_testkit::ready::wait_until_ready(&sentinel, Duration::from_secs(30), || {
        dapr_testkit::probe::redis_ping(port)
    })
    .await
    .unwrap();

    let store = store_with(json!({
        "redisHost": format!("127.0.0.1:{port}"),
        "failover": true,
        "sentinelMasterName": "mymaster",
    }))
    .await
    .unwrap();
    store.set(set("app||s", "via-sentinel")).await.unwrap();
    let mut raw = raw(&master).await;
    assert_eq!(hash(&mut raw, "app||s").await["data"], "via-sentinel");

    let error = store_with(json!({
        "redisHost": format!("127.0.0.1:{port}"),
        "failover": true,
        "sentinelMasterName": "unknown",
        "redisMaxRetries": -1,
    }))
    .await
    .unwrap_err();
    assert!(matches!(error, StateError::Backend(_)), "{error}");
}

/// A TLS-only Redis with a self-signed certificate, which it also trusts for client
/// certificates when `mutual` is set; returns the process, port, certificate and key.
async fn tls_server(mutual: bool) -> (GuardedProcess, u16, String, String) {
    let redis = dapr_testkit::programs::find("redis-server", "redis-server").unwrap();
    let openssl = dapr_testkit::programs::find("openssl", "openssl").unwrap();
    let port = dapr_testkit::ports::free_port();
    let dir = dapr_testkit::process::temp_dir("redis-tls").unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    let status = std::process::Command::new(openssl)
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(status.status.success(), "{status:?}");
    let launch = Launch::new("redis-tls", redis)
        .args([
            "--port",
            "0",
            "--bind",
            "127.0.0.1",
            "--tls-port",
            &port.to_string(),
        ])
        .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
        .arg("--tls-cert-file")
        .arg(&cert)
        .arg("--tls-key-file")
        .arg(&key)
        .arg("--tls-ca-cert-file")
        .arg(&cert)
        .args(["--tls-auth-clients", if mutual { "yes" } else { "no" }])
        .arg("--dir")
        .arg(dir.path());
    let cert = std::fs::read_to_string(&cert).unwrap();
    let key = std::fs::read_to_string(&key).unwrap();
    let process = GuardedProcess::spawn(launch, dir).unwrap();
    dapr_testkit::ready::wait_until_ready(&process, Duration::from_secs(30), || {
        dapr_testkit::probe::tcp_accepts(port)
    })
    .await
    .unwrap();
    (process, port, cert, key)
}

#[tokio::test]
async fn tls_connections_verify_the_server_unless_told_not_to() {
    let (_process, port, cert, key) = tls_server(false).await;
    let host = format!("127.0.0.1:{port}");
    let store = store_with(json!({
        "redisHost": host,
        "enableTLS": true,
        "insecureSkipTLSVerify": true,
    }))
    .await
    .unwrap();
    store.set(set("app||tls", "secret")).await.unwrap();
    assert_eq!(store.get(get("app||tls")).await.unwrap().data, "secret");

    // A self-signed certificate is not trusted when verification is on.
    let error = store_with(json!({
        "redisHost": host,
        "enableTLS": true,
        "redisMaxRetries": -1,
    }))
    .await
    .unwrap_err();
    assert!(matches!(error, StateError::Backend(_)), "{error}");

    // Mutual TLS: the server requires the client certificate.
    let (_process, port, cert_two, key_two) = tls_server(true).await;
    let host = format!("127.0.0.1:{port}");
    let store = store_with(json!({
        "redisHost": host,
        "enableTLS": true,
        "insecureSkipTLSVerify": true,
        "clientCert": cert_two,
        "clientKey": key_two,
    }))
    .await
    .unwrap();
    store.set(set("app||mtls", "ok")).await.unwrap();
    let error = store_with(json!({
        "redisHost": host,
        "enableTLS": true,
        "insecureSkipTLSVerify": true,
        "clientCert": cert,
        "clientKey": key,
        "redisMaxRetries": -1,
    }))
    .await
    .unwrap_err();
    assert!(matches!(error, StateError::Backend(_)), "{error}");
}

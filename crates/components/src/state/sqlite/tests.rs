//! The SQLite store against real database files: the shared behaviour suite, several
//! stores on one file, upstream's on-disk layout both ways, and the periodic cleanup.

use std::path::Path;
use std::time::SystemTime;

use bytes::Bytes;
use rusqlite::{Connection, OptionalExtension};
use serde_json::json;

use super::*;
use crate::state::{EtagErrorKind, TTL_METADATA_KEY};

async fn open(settings: serde_json::Value) -> SqliteStateStore {
    SqliteStateStore::open(&Properties::from_json(&settings).unwrap())
        .await
        .unwrap()
}

async fn open_file(path: &Path) -> SqliteStateStore {
    open(json!({"connectionString": path.to_str().unwrap()})).await
}

fn set_request(key: &str, value: &[u8]) -> SetRequest {
    SetRequest {
        key: key.to_owned(),
        value: Bytes::copy_from_slice(value),
        ..SetRequest::default()
    }
}

async fn get(store: &SqliteStateStore, key: &str) -> GetResponse {
    store
        .get(GetRequest {
            key: key.to_owned(),
            ..GetRequest::default()
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn passes_the_conformance_suite_on_a_file() {
    let directory = tempfile::tempdir().unwrap();
    let store = open_file(&directory.path().join("state.db")).await;
    crate::state::conformance::run_all(&store).await;
    store.close().await.unwrap();
}

#[tokio::test]
async fn passes_the_conformance_suite_in_memory() {
    let store = open(json!({"connectionString": ":memory:"})).await;
    crate::state::conformance::run_all(&store).await;
}

#[tokio::test]
async fn in_memory_stores_are_private_to_their_component() {
    let first = open(json!({"connectionString": ":memory:"})).await;
    let second = open(json!({"connectionString": "file::memory:"})).await;
    first.set(set_request("app||k", b"\"one\"")).await.unwrap();
    assert!(get(&second, "app||k").await.is_missing());
}

#[tokio::test]
async fn advertises_upstreams_features() {
    let store = open(json!({"connectionString": ":memory:"})).await;
    let names: Vec<&str> = store.features().iter().map(|f| f.as_str()).collect();
    assert_eq!(names, ["ETAG", "TRANSACTIONAL", "TTL"]);
}

#[tokio::test]
async fn stores_sharing_a_file_see_each_others_writes_and_etags() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("shared.db");
    let (first, second) = tokio::join!(open_file(&path), open_file(&path));

    first
        .set(set_request("app||k", b"{\"v\":1}"))
        .await
        .unwrap();
    let seen = get(&second, "app||k").await;
    assert_eq!(seen.data, &b"{\"v\":1}"[..]);
    let etag = seen.etag.clone().unwrap();
    assert_eq!(get(&first, "app||k").await.etag, seen.etag);

    // The second store writes with the ETag it read; the first store's copy is now stale.
    second
        .set(SetRequest {
            etag: Some(etag.clone()),
            ..set_request("app||k", b"{\"v\":2}")
        })
        .await
        .unwrap();
    let error = first
        .set(SetRequest {
            etag: Some(etag),
            ..set_request("app||k", b"{\"v\":3}")
        })
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            StateError::Etag {
                kind: EtagErrorKind::Mismatch,
                ..
            }
        ),
        "{error}"
    );
    assert_eq!(get(&first, "app||k").await.data, &b"{\"v\":2}"[..]);

    // Racing first-writes from both stores: exactly one creates each key.
    let first_write = |key: String, value: &'static [u8]| SetRequest {
        concurrency: Concurrency::FirstWrite,
        ..set_request(&key, value)
    };
    let races = (0..20).map(|index| {
        let key = format!("app||race-{index}");
        let (a, b) = (&first, &second);
        async move {
            let (one, two) = tokio::join!(
                a.set(first_write(key.clone(), b"\"a\"")),
                b.set(first_write(key.clone(), b"\"b\""))
            );
            (key, one, two)
        }
    });
    for (key, one, two) in futures::future::join_all(races).await {
        let winner = match (&one, &two) {
            (Ok(()), Err(StateError::Etag { .. })) => &b"\"a\""[..],
            (Err(StateError::Etag { .. }), Ok(())) => &b"\"b\""[..],
            other => panic!("{key}: exactly one first-write must win: {other:?}"),
        };
        assert_eq!(get(&second, &key).await.data, winner);
    }

    // A transaction in one store is atomic for the other too.
    let stale = get(&first, "app||k").await.etag.unwrap();
    second
        .set(set_request("app||k", b"{\"v\":4}"))
        .await
        .unwrap();
    let result = first
        .transact(TransactionRequest {
            operations: vec![
                TransactionOperation::Upsert(set_request("app||tx-new", b"1")),
                TransactionOperation::Upsert(SetRequest {
                    etag: Some(stale),
                    ..set_request("app||k", b"{\"v\":5}")
                }),
            ],
            metadata: HashMap::new(),
        })
        .await;
    assert!(matches!(result, Err(StateError::Etag { .. })), "{result:?}");
    assert!(get(&second, "app||tx-new").await.is_missing());
    assert_eq!(get(&second, "app||k").await.data, &b"{\"v\":4}"[..]);
}

/// Creates the file the way upstream's daprd leaves it, with rows it wrote.
fn write_upstream_file(path: &Path) {
    let connection = Connection::open(path).unwrap();
    connection
        .execute_batch(
            "CREATE TABLE metadata (key text NOT NULL PRIMARY KEY, value text NOT NULL);
             INSERT INTO metadata (key, value) VALUES ('migrations', '1');
             CREATE TABLE state (
                 key TEXT NOT NULL PRIMARY KEY,
                 value TEXT NOT NULL,
                 is_binary BOOLEAN NOT NULL,
                 etag TEXT NOT NULL,
                 expiration_time TIMESTAMP DEFAULT NULL,
                 update_time TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
             );
             INSERT INTO state VALUES
                 ('myapp||json', '{\"name\":\"upstream\",\"n\":[1,2]}', 0,
                  'a3f1c2de-0000-4000-8000-000000000001', NULL, CURRENT_TIMESTAMP),
                 ('myapp||binary', '/wBoaQ==', 1,
                  'a3f1c2de-0000-4000-8000-000000000002',
                  DATETIME(CURRENT_TIMESTAMP, '+3600 seconds'), CURRENT_TIMESTAMP),
                 ('myapp||expired', '\"old\"', 0,
                  'a3f1c2de-0000-4000-8000-000000000003',
                  DATETIME(CURRENT_TIMESTAMP, '-10 seconds'), CURRENT_TIMESTAMP);",
        )
        .unwrap();
}

#[tokio::test]
async fn rows_written_by_upstream_read_back() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("upstream.db");
    write_upstream_file(&path);
    let store = open_file(&path).await;

    let json_row = get(&store, "myapp||json").await;
    assert_eq!(json_row.data, &b"{\"name\":\"upstream\",\"n\":[1,2]}"[..]);
    assert_eq!(
        json_row.etag.as_deref(),
        Some("a3f1c2de-0000-4000-8000-000000000001")
    );
    assert!(json_row.metadata.is_empty());

    let binary_row = get(&store, "myapp||binary").await;
    assert_eq!(binary_row.data, &[0xff, 0x00, b'h', b'i'][..]);
    let now = SystemTime::now();
    let earliest = format_expire_time(now + Duration::from_secs(3600 - 60));
    let latest = format_expire_time(now + Duration::from_secs(3600));
    let expiry = &binary_row.metadata[TTL_EXPIRE_TIME_METADATA_KEY];
    assert!(earliest <= *expiry && *expiry <= latest, "{expiry}");

    assert!(get(&store, "myapp||expired").await.is_missing());
    let bulk = store
        .bulk_get(
            [
                "myapp||expired",
                "myapp||binary",
                "myapp||json",
                "myapp||binary",
            ]
            .into_iter()
            .map(|key| GetRequest {
                key: key.to_owned(),
                ..GetRequest::default()
            })
            .collect(),
            0,
        )
        .await;
    let keys: Vec<&str> = bulk.iter().map(|item| item.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "myapp||expired",
            "myapp||binary",
            "myapp||json",
            "myapp||binary"
        ]
    );
    assert!(bulk[0].data.is_empty() && bulk[0].etag.is_none());
    assert_eq!(bulk[1].data, binary_row.data);
    assert_eq!(bulk[3].data, binary_row.data);
    assert_eq!(bulk[2].data, json_row.data);

    // Upstream's ETag is honoured for writes.
    store
        .set(SetRequest {
            etag: Some("a3f1c2de-0000-4000-8000-000000000001".to_owned()),
            ..set_request("myapp||json", b"{\"name\":\"rust\"}")
        })
        .await
        .unwrap();
    // An expired row does not block a first-write.
    store
        .set(SetRequest {
            concurrency: Concurrency::FirstWrite,
            ..set_request("myapp||expired", b"\"new\"")
        })
        .await
        .unwrap();
    assert_eq!(get(&store, "myapp||expired").await.data, &b"\"new\""[..]);

    // A broken base64 row fails alone: in a bulk get as that item's error.
    let raw = Connection::open(&path).unwrap();
    raw.execute(
        "INSERT INTO state (key, value, is_binary, etag) VALUES ('myapp||broken', '***', 1, 'e')",
        [],
    )
    .unwrap();
    let error = store
        .get(GetRequest {
            key: "myapp||broken".to_owned(),
            ..GetRequest::default()
        })
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("failed to decode binary data"),
        "{error}"
    );
    let bulk = store
        .bulk_get(
            ["myapp||broken", "myapp||json"]
                .into_iter()
                .map(|key| GetRequest {
                    key: key.to_owned(),
                    ..GetRequest::default()
                })
                .collect(),
            0,
        )
        .await;
    assert!(
        bulk[0]
            .error
            .as_deref()
            .is_some_and(|error| error.contains("base64") || error.contains("decode"))
    );
    assert_eq!(bulk[1].data, &b"{\"name\":\"rust\"}"[..]);
}

#[tokio::test]
async fn writes_use_upstreams_layout() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("layout.db");
    let store = open_file(&path).await;
    store
        .set(set_request("myapp||json", b"{\"a\": 1}"))
        .await
        .unwrap();
    store
        .set(set_request("myapp||binary", &[0xff, 0x00, b'h', b'i']))
        .await
        .unwrap();
    let mut with_ttl = set_request("myapp||ttl", b"\"soon\"");
    with_ttl
        .metadata
        .insert(TTL_METADATA_KEY.to_owned(), "60".to_owned());
    store.set(with_ttl).await.unwrap();

    let raw = Connection::open(&path).unwrap();
    let row = |key: &str| -> (String, String, i64, String, Option<String>, String) {
        raw.query_row(
            "SELECT value, typeof(is_binary), is_binary, etag, expiration_time, update_time
             FROM state WHERE key = ?1",
            [key],
            |row| {
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                    row.get(5)?,
                ))
            },
        )
        .unwrap()
    };
    let (value, kind, is_binary, etag, expiration, updated) = row("myapp||json");
    assert_eq!(
        (value.as_str(), kind.as_str(), is_binary),
        ("{\"a\": 1}", "integer", 0)
    );
    assert_eq!(uuid::Uuid::parse_str(&etag).unwrap().get_version_num(), 4);
    assert_eq!(expiration, None);
    assert_eq!(updated.len(), "2025-01-01 00:00:00".len());
    let (value, _, is_binary, ..) = row("myapp||binary");
    assert_eq!((value.as_str(), is_binary), ("/wBoaQ==", 1));
    let (_, _, _, _, expiration, updated) = row("myapp||ttl");
    let expiration = expiration.unwrap();
    assert_eq!(expiration.len(), updated.len(), "{expiration} / {updated}");
    let lifetime: i64 = raw
        .query_row(
            "SELECT unixepoch(expiration_time) - unixepoch(update_time) FROM state WHERE key = 'myapp||ttl'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert!((60..=61).contains(&lifetime), "{lifetime}");
    let level: String = raw
        .query_row(
            "SELECT value FROM metadata WHERE key = 'migrations'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(level, "1");
    let journal: String = raw
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .unwrap();
    assert_eq!(journal, "wal");

    // Opening the file again keeps the data and the schema level.
    drop(store);
    let store = open_file(&path).await;
    assert_eq!(get(&store, "myapp||json").await.data, &b"{\"a\": 1}"[..]);
}

#[tokio::test]
async fn custom_table_names_are_used() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("custom.db");
    let store = open(json!({
        "connectionString": format!("file:{}?_txlock=immediate", path.display()),
        "tableName": "dapr_state",
        "metadataTableName": "dapr_meta",
        "disableWAL": true,
    }))
    .await;
    store.set(set_request("app||k", b"1")).await.unwrap();
    let raw = Connection::open(&path).unwrap();
    let count: i64 = raw
        .query_row("SELECT count(*) FROM dapr_state", [], |row| row.get(0))
        .unwrap();
    assert_eq!(count, 1);
    let level: String = raw
        .query_row(
            "SELECT value FROM dapr_meta WHERE key = 'migrations'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(level, "1");
    let journal: String = raw
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .unwrap();
    assert_eq!(journal, "delete");
}

#[tokio::test]
async fn expired_rows_are_removed_by_the_periodic_cleanup() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("cleanup.db");
    let store = open(json!({
        "connectionString": path.to_str().unwrap(),
        "cleanupInterval": "1s",
    }))
    .await;
    let mut request = set_request("app||short", b"\"short\"");
    request
        .metadata
        .insert(TTL_METADATA_KEY.to_owned(), "1".to_owned());
    store.set(request).await.unwrap();
    store
        .set(set_request("app||kept", b"\"kept\""))
        .await
        .unwrap();

    let raw = Connection::open(&path).unwrap();
    let rows = || -> i64 {
        raw.query_row("SELECT count(*) FROM state", [], |row| row.get(0))
            .unwrap()
    };
    assert_eq!(rows(), 2);
    let deadline = std::time::Instant::now() + Duration::from_secs(8);
    while rows() != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the expired row was not cleaned up"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let last_cleanup: Option<String> = raw
        .query_row(
            "SELECT value FROM metadata WHERE key = 'last-cleanup'",
            [],
            |row| row.get(0),
        )
        .optional()
        .unwrap();
    assert!(last_cleanup.is_some());
    assert_eq!(get(&store, "app||kept").await.data, &b"\"kept\""[..]);
}

#[tokio::test]
async fn bad_settings_and_requests_are_refused() {
    let error = SqliteStateStore::open(
        &Properties::from_json(&json!({"connectionString": "s.db?_pragma=journal_mode(WAL)"}))
            .unwrap(),
    )
    .await
    .err()
    .unwrap();
    assert!(matches!(error, StateError::InvalidMetadata(_)), "{error}");

    let store = open(json!({"connectionString": ":memory:"})).await;
    let mut forever = set_request("app||forever", b"1");
    forever
        .metadata
        .insert(TTL_METADATA_KEY.to_owned(), i64::MAX.to_string());
    store.set(forever).await.unwrap();
    let read = get(&store, "app||forever").await;
    assert_eq!(
        read.data,
        &b"1"[..],
        "a TTL beyond the calendar means no expiry"
    );
    let error = store.set(set_request("", b"1")).await.unwrap_err();
    assert_eq!(error.to_string(), "missing key in set option");
    let mut request = set_request("app||k", b"1");
    request
        .metadata
        .insert(TTL_METADATA_KEY.to_owned(), "soon".to_owned());
    assert!(matches!(
        store.set(request).await,
        Err(StateError::InvalidRequest(_))
    ));
    store.ping().await.unwrap();

    // As upstream: an ETag for a key that does not exist is a mismatch.
    let error = store
        .set(SetRequest {
            etag: Some("an-etag".to_owned()),
            ..set_request("app||missing", b"1")
        })
        .await
        .unwrap_err();
    assert!(matches!(error, StateError::Etag { .. }), "{error}");
    let error = store
        .delete(DeleteRequest {
            key: "app||missing".to_owned(),
            etag: Some("an-etag".to_owned()),
            ..DeleteRequest::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(error, StateError::Etag { .. }), "{error}");
    assert!(get(&store, "app||missing").await.is_missing());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_stores_opening_one_new_file_at_once_all_start() {
    for _ in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shared.db");
        let openings = (0..8).map(|_| {
            let settings = json!({"connectionString": path.to_str().unwrap()});
            tokio::spawn(async move {
                SqliteStateStore::open(&Properties::from_json(&settings).unwrap()).await
            })
        });
        for opening in futures::future::join_all(openings).await {
            opening.unwrap().unwrap();
        }
    }
}

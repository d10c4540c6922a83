//! Tests against a real PostgreSQL server (one per test function, a fresh table per
//! case): the shared behaviour suite for both versions, upstream's on-store layout read
//! with raw SQL, rows written in upstream's layout, migrations from an older upstream
//! schema, the TTL cleanup, the query translation, hostile keys and settings.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dapr_testkit::Postgres;
use serde_json::{Value, json};
use tokio_postgres::{Client, NoTls};

use super::{PostgresStateStore, PostgresVersion, open};
use crate::metadata::Properties;
use crate::state::query::{Filter, Order, Query, Sorting};
use crate::state::{
    Concurrency, DeleteRequest, EtagErrorKind, Feature, GetRequest, QUERY_KEY_PREFIX_METADATA,
    SetRequest, StateError, StateStore, TTL_EXPIRE_TIME_METADATA_KEY, TTL_METADATA_KEY,
    TransactionOperation, TransactionRequest, conformance,
};

fn unique(name: &str) -> String {
    format!("{name}_{}", uuid::Uuid::new_v4().simple())
}

async fn raw_client(server: &Postgres) -> Client {
    let (client, connection) = tokio_postgres::connect(&server.connection_string(), NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

fn properties(server: &Postgres, extra: Value) -> Properties {
    let mut settings = json!({"connectionString": server.connection_string()});
    if let (Value::Object(settings), Value::Object(extra)) = (&mut settings, extra) {
        settings.extend(extra);
    }
    Properties::from_json(&settings).unwrap()
}

async fn open_store(
    server: &Postgres,
    version: PostgresVersion,
    extra: Value,
) -> PostgresStateStore {
    open(&properties(server, extra), version).await.unwrap()
}

fn set_request(key: &str, value: &[u8]) -> SetRequest {
    SetRequest {
        key: key.to_owned(),
        value: Bytes::copy_from_slice(value),
        ..SetRequest::default()
    }
}

fn get_request(key: &str) -> GetRequest {
    GetRequest {
        key: key.to_owned(),
        ..GetRequest::default()
    }
}

fn delete_request(key: &str) -> DeleteRequest {
    DeleteRequest {
        key: key.to_owned(),
        ..DeleteRequest::default()
    }
}

async fn columns(client: &Client, table: &str) -> Vec<(String, String, String, String)> {
    client
        .query(
            "SELECT column_name::text, data_type::text, is_nullable::text, is_identity::text \
             FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position",
            &[&table],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3)))
        .collect()
}

fn expected_columns(list: &[(&str, &str, &str, &str)]) -> Vec<(String, String, String, String)> {
    list.iter()
        .map(|(a, b, c, d)| ((*a).into(), (*b).into(), (*c).into(), (*d).into()))
        .collect()
}

async fn metadata_value(client: &Client, table: &str, key: &str) -> Option<String> {
    client
        .query_opt(
            &format!("SELECT value FROM {table} WHERE key = $1"),
            &[&key],
        )
        .await
        .unwrap()
        .map(|row| row.get(0))
}

async fn count(client: &Client, table: &str) -> i64 {
    client
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .unwrap()
        .get(0)
}

/// Keys shaped like SQL injection round-trip as plain keys and harm nothing.
async fn hostile_keys_are_plain_keys(store: &PostgresStateStore, client: &Client, table: &str) {
    let prefix = format!("{}||", unique("hostile"));
    let keys: Vec<String> = [
        format!("'; DROP TABLE {table}; --"),
        "' OR '1'='1".to_owned(),
        "\\'; SELECT pg_sleep(10); --".to_owned(),
        "%_*?[]".to_owned(),
        "\"quoted\" $1 $$x$$".to_owned(),
        "ключ🔑".to_owned(),
    ]
    .iter()
    .map(|suffix| format!("{prefix}{suffix}"))
    .collect();
    for (index, key) in keys.iter().enumerate() {
        store
            .set(set_request(
                key,
                format!("{{\"index\": {index}}}").as_bytes(),
            ))
            .await
            .unwrap();
    }
    for (index, key) in keys.iter().enumerate() {
        let read = store.get(get_request(key)).await.unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&read.data).unwrap(),
            json!({"index": index}),
            "{key}"
        );
    }
    let near_miss = format!("{prefix}' OR '1'='1' --");
    assert!(
        store
            .get(get_request(&near_miss))
            .await
            .unwrap()
            .is_missing()
    );
    let items = store
        .bulk_get(keys.iter().map(|key| get_request(key)).collect(), 0)
        .await;
    assert!(
        items
            .iter()
            .all(|item| item.error.is_none() && !item.data.is_empty())
    );
    store
        .transact(TransactionRequest {
            operations: keys
                .iter()
                .map(|key| TransactionOperation::Delete(delete_request(key)))
                .chain([TransactionOperation::Upsert(set_request(
                    &keys[0],
                    b"\"back\"",
                ))])
                .collect(),
            metadata: HashMap::new(),
        })
        .await
        .unwrap();
    assert_eq!(
        &store.get(get_request(&keys[0])).await.unwrap().data[..],
        b"\"back\""
    );
    assert!(store.get(get_request(&keys[1])).await.unwrap().is_missing());
    // The table is still there and holds exactly the one key left under the prefix.
    let left: i64 = client
        .query_one(
            &format!("SELECT count(*) FROM {table} WHERE starts_with(key, $1)"),
            &[&prefix],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 1);
    store.delete(delete_request(&keys[0])).await.unwrap();
}

#[tokio::test]
async fn v1_passes_the_suite_and_keeps_upstreams_layout() {
    let server = Postgres::start().await.unwrap();
    let client = raw_client(&server).await;
    let table = unique("state_v1");
    let meta = unique("meta");
    let store = open_store(
        &server,
        PostgresVersion::V1,
        json!({"tableName": table, "metadataTableName": meta}),
    )
    .await;
    assert_eq!(
        store.features(),
        &[
            Feature::Etag,
            Feature::Transactional,
            Feature::Ttl,
            Feature::QueryApi
        ]
    );

    conformance::run_all(&store).await;

    // Upstream's table, created by upstream's three migrations, recorded as level 3.
    assert_eq!(
        columns(&client, &table).await,
        expected_columns(&[
            ("key", "text", "NO", "NO"),
            ("value", "jsonb", "NO", "NO"),
            ("isbinary", "boolean", "NO", "NO"),
            ("insertdate", "timestamp with time zone", "NO", "NO"),
            ("updatedate", "timestamp with time zone", "YES", "NO"),
            ("expiredate", "timestamp with time zone", "YES", "NO"),
            ("row_id", "bigint", "NO", "YES"),
        ])
    );
    assert_eq!(
        columns(&client, &meta).await,
        expected_columns(&[("key", "text", "NO", "NO"), ("value", "text", "NO", "NO")])
    );
    assert_eq!(
        metadata_value(&client, &meta, "migrations")
            .await
            .as_deref(),
        Some("3")
    );
    assert_eq!(
        metadata_value(&client, &meta, "lock").await.as_deref(),
        Some("lock")
    );

    // JSON is jsonb with isbinary = false; bytes are a base64 JSON string with isbinary = true;
    // the ETag is xmin.
    store
        .set(set_request("app||json", br#"{"b": 2, "a": [1, "x"]}"#))
        .await
        .unwrap();
    store
        .set(set_request("app||bin", &[0x00, 0xff, 0x01]))
        .await
        .unwrap();
    let stored = |key: &'static str| {
        let client = &client;
        let table = &table;
        async move {
            let row = client
                .query_one(
                    &format!("SELECT value::text, isbinary, xmin::text, expiredate IS NULL FROM {table} WHERE key = $1"),
                    &[&key],
                )
                .await
                .unwrap();
            (
                row.get::<_, String>(0),
                row.get::<_, bool>(1),
                row.get::<_, String>(2),
                row.get::<_, bool>(3),
            )
        }
    };
    let (value, binary, xmin, no_expiry) = stored("app||json").await;
    assert_eq!(
        serde_json::from_str::<Value>(&value).unwrap(),
        json!({"a": [1, "x"], "b": 2})
    );
    assert!(!binary && no_expiry);
    assert_eq!(
        store.get(get_request("app||json")).await.unwrap().etag,
        Some(xmin)
    );
    let (value, binary, xmin, _) = stored("app||bin").await;
    assert_eq!(value, "\"AP8B\"");
    assert!(binary);
    let read = store.get(get_request("app||bin")).await.unwrap();
    assert_eq!(
        (&read.data[..], read.etag),
        (&[0x00, 0xff, 0x01][..], Some(xmin))
    );

    // A TTL lands in expiredate and comes back as ttlExpireTime.
    let mut with_ttl = set_request("app||ttl", b"1");
    with_ttl
        .metadata
        .insert(TTL_METADATA_KEY.into(), "100".into());
    store.set(with_ttl).await.unwrap();
    let seconds_left: f64 = client
        .query_one(
            &format!("SELECT extract(epoch FROM expiredate - now())::float8 FROM {table} WHERE key = 'app||ttl'"),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!((95.0..=101.0).contains(&seconds_left), "{seconds_left}");
    assert!(
        store.get(get_request("app||ttl")).await.unwrap().metadata[TTL_EXPIRE_TIME_METADATA_KEY]
            .ends_with('Z')
    );
    let mut bad_ttl = set_request("app||ttl", b"1");
    bad_ttl
        .metadata
        .insert(TTL_METADATA_KEY.into(), "-2".into());
    assert!(matches!(
        store.set(bad_ttl).await,
        Err(StateError::InvalidRequest(_))
    ));

    // Rows written in upstream's layout read back with their xmin as the ETag, and that
    // ETag guards writes.
    let inserted = client
        .query(
            &format!(
                "INSERT INTO {table} (key, value, isbinary) VALUES \
                 ('app||up-json', '{{\"from\": \"upstream\"}}', false), ('app||up-bin', '\"aGVsbG8=\"', true) \
                 RETURNING key, xmin::text"
            ),
            &[],
        )
        .await
        .unwrap();
    for row in inserted {
        let key: String = row.get(0);
        let xmin: String = row.get(1);
        let read = store.get(get_request(&key)).await.unwrap();
        assert_eq!(read.etag.as_deref(), Some(xmin.as_str()), "{key}");
        let expected: &[u8] = if key.ends_with("bin") {
            b"hello"
        } else {
            br#"{"from": "upstream"}"#
        };
        assert_eq!(&read.data[..], expected, "{key}");
    }
    let etag = store
        .get(get_request("app||up-json"))
        .await
        .unwrap()
        .etag
        .unwrap();
    store
        .set(SetRequest {
            etag: Some(etag.clone()),
            ..set_request("app||up-json", b"\"mine\"")
        })
        .await
        .unwrap();
    let (value, _, xmin, _) = stored("app||up-json").await;
    assert_eq!(value, "\"mine\"");
    assert_ne!(xmin, etag);

    // ETags that are not transaction ids are invalid, not mismatched.
    for result in [
        store
            .set(SetRequest {
                etag: Some("not-a-number".into()),
                ..set_request("app||json", b"1")
            })
            .await,
        store
            .delete(DeleteRequest {
                etag: Some("-1".into()),
                ..delete_request("app||json")
            })
            .await,
    ] {
        assert!(
            matches!(
                result,
                Err(StateError::Etag {
                    kind: EtagErrorKind::Invalid,
                    ..
                })
            ),
            "{result:?}"
        );
    }

    // A first-write without an ETag may replace a row that has expired but is not yet
    // cleaned up, and the expired row is invisible meanwhile.
    client
        .execute(
            &format!("UPDATE {table} SET expiredate = now() - interval '1 minute' WHERE key = 'app||json'"),
            &[],
        )
        .await
        .unwrap();
    assert!(
        store
            .get(get_request("app||json"))
            .await
            .unwrap()
            .is_missing()
    );
    store
        .set(SetRequest {
            concurrency: Concurrency::FirstWrite,
            ..set_request("app||json", b"\"reborn\"")
        })
        .await
        .unwrap();
    assert_eq!(
        &store.get(get_request("app||json")).await.unwrap().data[..],
        b"\"reborn\""
    );

    hostile_keys_are_plain_keys(&store, &client, &table).await;
    query_specifics(&store, &client, &table).await;
    store.close().await.unwrap();
    assert!(
        store.get(get_request("app||json")).await.is_err(),
        "a closed store refuses work"
    );
}

/// Query translation details beyond the suite: numeric comparison, type-strict ranges,
/// NEQ on missing fields, hostile values and paths, binary and expired rows, scoping.
async fn query_specifics(store: &PostgresStateStore, client: &Client, table: &str) {
    let prefix = format!("{}||", unique("q"));
    let documents = [
        (
            "n100",
            json!({"n": 100, "name": "x' OR '1'='1", "a'b": {"c": 1}}),
        ),
        ("n30", json!({"n": 30, "name": "plain"})),
        ("n200text", json!({"n": "200", "name": "text number"})),
        ("nameless", json!({"n": 5})),
    ];
    for (name, document) in &documents {
        store
            .set(set_request(
                &format!("{prefix}{name}"),
                document.to_string().as_bytes(),
            ))
            .await
            .unwrap();
    }
    store
        .set(set_request(&format!("{prefix}binary"), &[0x00, 0xff, 0x01]))
        .await
        .unwrap();
    store
        .set(set_request(&format!("{prefix}expired"), br#"{"n": 1000}"#))
        .await
        .unwrap();
    client
        .execute(
            &format!("UPDATE {table} SET expiredate = now() - interval '1 second' WHERE key = $1"),
            &[&format!("{prefix}expired")],
        )
        .await
        .unwrap();

    let run = |filter: Option<Filter>, sort: Vec<Sorting>| {
        let prefix = prefix.clone();
        async move {
            let query = Query {
                filter,
                sort,
                ..Query::default()
            };
            let metadata = HashMap::from([(QUERY_KEY_PREFIX_METADATA.to_owned(), prefix.clone())]);
            let response = store.query(query, metadata).await.unwrap();
            response
                .results
                .into_iter()
                .map(|item| {
                    let name = item.key.strip_prefix(&prefix).unwrap().to_owned();
                    (name, item.data)
                })
                .collect::<Vec<_>>()
        }
    };
    let names = |results: Vec<(String, Bytes)>| {
        results
            .into_iter()
            .map(|(name, _)| name)
            .collect::<Vec<_>>()
    };

    // 100 > 50 numerically (as text "100" < "50"); the string "200" is not a number.
    assert_eq!(
        names(run(Some(Filter::Gt("n".into(), json!(50))), vec![]).await),
        ["n100"]
    );
    assert_eq!(
        names(run(Some(Filter::Lte("n".into(), json!(30.0))), vec![]).await),
        ["n30", "nameless"]
    );
    // NEQ matches documents without the field.
    assert_eq!(
        names(run(Some(Filter::Neq("name".into(), json!("plain"))), vec![]).await),
        ["binary", "n100", "n200text", "nameless"]
    );
    // Hostile values and paths are data.
    assert_eq!(
        names(
            run(
                Some(Filter::Eq("name".into(), json!("x' OR '1'='1"))),
                vec![]
            )
            .await
        ),
        ["n100"]
    );
    assert_eq!(
        names(run(Some(Filter::Eq("a'b.c".into(), json!(1))), vec![]).await),
        ["n100"]
    );
    assert!(
        run(
            Some(Filter::Eq(
                format!("x'); DROP TABLE {table}; --"),
                json!("1")
            )),
            vec![]
        )
        .await
        .is_empty()
    );
    // Numbers sort numerically (after strings, in jsonb's order of types), missing last.
    let sorted = run(
        None,
        vec![Sorting {
            key: "n".into(),
            order: Order::Asc,
        }],
    )
    .await;
    assert_eq!(
        names(sorted.clone()),
        ["n200text", "nameless", "n30", "n100", "binary"]
    );
    // Binary rows come back as the stored JSON (their base64 string).

    assert_eq!(&sorted[4].1[..], b"\"AP8B\"");
    // Sorting by a hostile path is harmless.
    let hostile_sort = run(
        None,
        vec![Sorting {
            key: format!("n'); DROP TABLE {table}; --"),
            order: Order::Desc,
        }],
    )
    .await;
    assert_eq!(hostile_sort.len(), 5);
    assert!(count(client, table).await > 0);
    // A query without a prefix sees the whole table, as upstream's does.
    let everything = store.query(Query::default(), HashMap::new()).await.unwrap();
    assert!(everything.results.len() >= 5);
    assert!(everything.token.is_empty());
    // A bad token is refused.
    let bad_page = Query {
        limit: 2,
        token: "1; DROP TABLE x".into(),
        ..Query::default()
    };
    assert!(matches!(
        store.query(bad_page, HashMap::new()).await,
        Err(StateError::InvalidRequest(_))
    ));
}

#[tokio::test]
async fn v2_passes_the_suite_and_keeps_upstreams_layout() {
    let server = Postgres::start().await.unwrap();
    let client = raw_client(&server).await;
    let prefix = format!("{}_", unique("p"));
    let table = format!("{prefix}state");
    let meta = unique("meta");
    let store = open_store(
        &server,
        PostgresVersion::V2,
        json!({"tablePrefix": prefix, "metadataTableName": meta}),
    )
    .await;
    assert_eq!(
        store.features(),
        &[Feature::Etag, Feature::Transactional, Feature::Ttl]
    );

    conformance::run_all(&store).await;

    assert_eq!(
        columns(&client, &table).await,
        expected_columns(&[
            ("key", "text", "NO", "NO"),
            ("value", "bytea", "NO", "NO"),
            ("etag", "uuid", "NO", "NO"),
            ("created_at", "timestamp with time zone", "NO", "NO"),
            ("updated_at", "timestamp with time zone", "YES", "NO"),
            ("expires_at", "timestamp with time zone", "YES", "NO"),
            ("row_id", "bigint", "NO", "YES"),
        ])
    );
    assert_eq!(
        metadata_value(&client, &meta, &format!("migrations-state-v2-{prefix}"))
            .await
            .as_deref(),
        Some("2")
    );

    // Values are kept byte for byte (JSON is not normalised); the ETag is the etag column.
    let value = br#"{"b":  2, "a": 1}"#;
    store.set(set_request("app||exact", value)).await.unwrap();
    let row = client
        .query_one(
            &format!("SELECT value, etag::text FROM {table} WHERE key = 'app||exact'"),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, Vec<u8>>(0), value.to_vec());
    let read = store.get(get_request("app||exact")).await.unwrap();
    assert_eq!(&read.data[..], value);
    assert_eq!(read.etag, Some(row.get::<_, String>(1)));

    // A row written in upstream's layout keeps its ETag.
    let etag: String = client
        .query_one(
            &format!("INSERT INTO {table} (key, value) VALUES ('app||up', '\\x0102'::bytea) RETURNING etag::text"),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let read = store.get(get_request("app||up")).await.unwrap();
    assert_eq!(
        (&read.data[..], read.etag.as_deref()),
        (&[1u8, 2][..], Some(etag.as_str()))
    );

    // An ETag that is not a UUID is a mismatch, as upstream says.
    let result = store
        .delete(DeleteRequest {
            etag: Some("12".into()),
            ..delete_request("app||up")
        })
        .await;
    assert!(
        matches!(
            result,
            Err(StateError::Etag {
                kind: EtagErrorKind::Mismatch,
                ..
            })
        ),
        "{result:?}"
    );

    hostile_keys_are_plain_keys(&store, &client, &table).await;
}

#[tokio::test]
async fn migrations_cleanup_exec_modes_and_settings() {
    let server = Postgres::start().await.unwrap();
    let client = raw_client(&server).await;

    // A database left by an older upstream (v1 at level 2, no row_id) is upgraded in place.
    let table = unique("old_state");
    let meta = unique("meta");
    client
        .batch_execute(&format!(
            "CREATE TABLE {meta} (key text NOT NULL PRIMARY KEY, value text NOT NULL); \
             INSERT INTO {meta} VALUES ('migrations', '2'); \
             CREATE TABLE {table} (key text NOT NULL PRIMARY KEY, value jsonb NOT NULL, isbinary boolean NOT NULL, \
               insertdate TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(), updatedate TIMESTAMP WITH TIME ZONE NULL, \
               expiredate TIMESTAMP WITH TIME ZONE); \
             INSERT INTO {table} (key, value, isbinary, insertdate) VALUES \
               ('app||b', '\"second\"', false, now() - interval '1 hour'), \
               ('app||a', '\"first\"', false, now() - interval '2 hours');"
        ))
        .await
        .unwrap();
    let v1_settings = properties(
        &server,
        json!({"tableName": table, "metadataTableName": meta}),
    );
    let (first, second, third) = tokio::join!(
        open(&v1_settings, PostgresVersion::V1),
        open(&v1_settings, PostgresVersion::V1),
        open(&v1_settings, PostgresVersion::V1),
    );
    let store = first.unwrap();
    second.unwrap();
    third.unwrap();
    assert_eq!(
        metadata_value(&client, &meta, "migrations")
            .await
            .as_deref(),
        Some("3")
    );
    let row_ids: Vec<(String, i64)> = client
        .query(
            &format!("SELECT key, row_id FROM {table} ORDER BY row_id"),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_eq!(
        row_ids,
        [("app||a".to_owned(), 1), ("app||b".to_owned(), 2)]
    );
    assert_eq!(
        &store.get(get_request("app||a")).await.unwrap().data[..],
        b"\"first\""
    );
    store.set(set_request("app||c", b"3")).await.unwrap();
    let new_row_id: i64 = client
        .query_one(
            &format!("SELECT row_id FROM {table} WHERE key = 'app||c'"),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        new_row_id, 3,
        "the identity continues after the backfilled rows"
    );

    // v1 and v2 share one metadata table under their own keys.
    let prefix = format!("{}_", unique("shared"));
    open_store(
        &server,
        PostgresVersion::V2,
        json!({"tablePrefix": prefix, "metadataTableName": meta}),
    )
    .await;
    assert_eq!(
        metadata_value(&client, &meta, &format!("migrations-state-v2-{prefix}"))
            .await
            .as_deref(),
        Some("2")
    );
    assert_eq!(
        metadata_value(&client, &meta, "migrations")
            .await
            .as_deref(),
        Some("3")
    );

    periodic_cleanup_deletes_expired_rows(&server, &client).await;
    manual_cleanup_honours_the_last_run(&server, &client).await;
    every_exec_mode_works(&server).await;
    bad_settings_fail_to_open(&server).await;
}

async fn periodic_cleanup_deletes_expired_rows(server: &Postgres, client: &Client) {
    let table = unique("ttl_state");
    let meta = unique("meta");
    let store = open_store(
        server,
        PostgresVersion::V1,
        json!({"tableName": table, "metadataTableName": meta, "cleanupInterval": "1s"}),
    )
    .await;
    let mut short = set_request("app||short", b"1");
    short.metadata.insert(TTL_METADATA_KEY.into(), "1".into());
    store.set(short).await.unwrap();
    store.set(set_request("app||forever", b"2")).await.unwrap();
    client
        .execute(
            &format!("INSERT INTO {table} (key, value, isbinary, expiredate) VALUES ('app||old', '1', false, now() - interval '1 day')"),
            &[],
        )
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while count(client, &table).await > 1 {
        assert!(
            Instant::now() < deadline,
            "expired rows were not cleaned up"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        !store
            .get(get_request("app||forever"))
            .await
            .unwrap()
            .is_missing()
    );
    let last_cleanup_is_a_timestamp: bool = client
        .query_one(
            &format!("SELECT value::timestamptz > now() - interval '1 minute' FROM {meta} WHERE key = 'last-cleanup'"),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(last_cleanup_is_a_timestamp);
    store.close().await.unwrap();
}

async fn manual_cleanup_honours_the_last_run(server: &Postgres, client: &Client) {
    let prefix = format!("{}_", unique("gc"));
    let table = format!("{prefix}state");
    let meta = unique("meta");
    let store = open_store(
        server,
        PostgresVersion::V2,
        json!({"tablePrefix": prefix, "metadataTableName": meta}),
    )
    .await;
    let expire_one = || async {
        client
            .execute(
                &format!("INSERT INTO {table} (key, value, expires_at) VALUES ($1, '\\x00'::bytea, now() - interval '1 second')"),
                &[&unique("app||expired")],
            )
            .await
            .unwrap();
    };
    expire_one().await;
    assert_eq!(store.cleanup_expired().await.unwrap(), 1);
    assert!(
        metadata_value(client, &meta, &format!("last-cleanup-state-v2-{prefix}"))
            .await
            .is_some()
    );
    expire_one().await;
    assert_eq!(
        store.cleanup_expired().await.unwrap(),
        0,
        "the last run is less than an hour old"
    );
    assert_eq!(count(client, &table).await, 1);

    let disabled = open_store(
        server,
        PostgresVersion::V2,
        json!({"tablePrefix": prefix, "metadataTableName": meta, "cleanupInterval": "0"}),
    )
    .await;
    assert_eq!(disabled.cleanup_expired().await.unwrap(), 0);
    assert_eq!(count(client, &table).await, 1);
}

async fn every_exec_mode_works(server: &Postgres) {
    for mode in ["exec", "simple_protocol", "describe_exec", "cache_describe"] {
        let store = open_store(
            server,
            PostgresVersion::V1,
            json!({"tableName": unique("modes"), "queryExecMode": mode, "maxConns": 2}),
        )
        .await;
        futures::join!(
            conformance::crud(&store),
            conformance::binary_values(&store),
            conformance::etags(&store),
            conformance::transactions(&store),
            conformance::query(&store),
        );
        store.close().await.unwrap();
    }
}

async fn bad_settings_fail_to_open(server: &Postgres) {
    let refused = |extra: Value, version: PostgresVersion| {
        let properties = properties(server, extra);
        async move {
            match open(&properties, version).await {
                Ok(_) => panic!("opening must fail"),
                Err(error) => error,
            }
        }
    };
    let unused_port = dapr_testkit::ports::free_port();
    let error = refused(
        json!({"connectionString": format!("host=127.0.0.1 port={unused_port} user=postgres"), "timeout": "2s"}),
        PostgresVersion::V1,
    )
    .await;
    assert!(
        matches!(&error, StateError::Backend(message) if message.contains("failed to connect")),
        "{error:?}"
    );

    for (extra, expected) in [
        (
            json!({"tableName": "state; DROP TABLE x"}),
            "is not a table name",
        ),
        (json!({"metadataTableName": "x'y"}), "is not a table name"),
        (
            json!({"useAzureAD": "true"}),
            "Azure AD authentication is not supported",
        ),
        (
            json!({"useAWSIAM": "true"}),
            "AWS IAM authentication is not supported",
        ),
        (json!({"timeout": "10ms"}), "must be greater than 1s"),
        (json!({"queryExecMode": "turbo"}), "invalid queryExecMode"),
        (json!({"connectionString": ""}), "missing connectionString"),
        (
            json!({"connectionString": format!("{} sslmode=verify-all", server.connection_string().replace("sslmode=disable", ""))}),
            "unknown sslmode",
        ),
    ] {
        let error = refused(extra.clone(), PostgresVersion::V1).await;
        assert!(
            matches!(&error, StateError::InvalidMetadata(message) if message.contains(expected)),
            "{extra}: {error:?}"
        );
    }
    let error = refused(json!({"tablePrefix": "bad-prefix"}), PostgresVersion::V2).await;
    assert!(matches!(error, StateError::InvalidMetadata(_)), "{error:?}");
    assert!(PostgresVersion::from_component_version("v3").is_err());
    assert_eq!(
        PostgresVersion::from_component_version("").unwrap(),
        PostgresVersion::V1
    );
    assert_eq!(
        PostgresVersion::from_component_version("v2").unwrap(),
        PostgresVersion::V2
    );

    // The URL form and separate settings reach the same server.
    let url = format!(
        "postgres://postgres@127.0.0.1:{}/postgres?sslmode=disable&application_name=dapr",
        server.port()
    );
    let store = open(
        &Properties::from_json(&json!({"connectionString": url, "tableName": unique("url")}))
            .unwrap(),
        PostgresVersion::V1,
    )
    .await
    .unwrap();
    store.ping().await.unwrap();
    let store = open(
        &Properties::from_json(&json!({
            "host": "127.0.0.1", "port": server.port().to_string(), "user": "postgres",
            "database": "postgres", "tableName": unique("split")
        }))
        .unwrap(),
        PostgresVersion::V2,
    )
    .await
    .unwrap();
    store.ping().await.unwrap();
}

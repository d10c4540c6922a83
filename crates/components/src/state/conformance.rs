//! The behaviour suite every state store's tests run: each check exercises one promise of
//! [`StateStore`] against a live store and panics with a description when it is broken.
//! Checks for optional capabilities run only when the store advertises the [`Feature`]
//! (and otherwise check that the call is refused).
//!
//! Every check writes under its own `conformance-<uuid>-<name>||` prefix, so suites for
//! different stores, or several runs, can share one server.
//!
//! Where upstream's own stores legitimately differ (its conformance test lets Redis skip
//! or loosen these cases), [`Expectations`] says which behaviour a store promises; the
//! suite then checks exactly that one. [`run_all`] holds a store to the strict side.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use serde_json::{Value, json};

use super::query::{Filter, Order, Query, Sorting};
use super::{
    Concurrency, DeleteRequest, EtagErrorKind, Feature, GetRequest, GetResponse,
    QUERY_KEY_PREFIX_METADATA, QueryResponse, SetRequest, StateError, StateStore,
    TTL_EXPIRE_TIME_METADATA_KEY, TTL_METADATA_KEY, TransactionOperation, TransactionRequest,
    format_expire_time,
};

/// How long a value with a short TTL may take to disappear.
const EXPIRY_DEADLINE: Duration = Duration::from_secs(6);
/// Pause between polls while waiting for a value to expire.
const POLL: Duration = Duration::from_millis(100);

/// The behaviours on which upstream's stores differ, each a promise the suite checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Expectations {
    /// An ETag never matches a missing key: a set or delete carrying one fails with a
    /// mismatch and changes nothing. When false, both succeed and the set creates the
    /// key (upstream's Redis).
    pub etag_requires_existing_key: bool,
    /// A write without `ttlInSeconds` makes the value permanent. When false, the value
    /// keeps the expiry an earlier write gave it (upstream's Redis).
    pub write_without_ttl_clears_expiry: bool,
    /// A first-write refused because the key exists fails with an ETag mismatch. When
    /// false, with a backend error (upstream's Redis; daprd answers 500, not 409).
    pub first_write_conflict_is_mismatch: bool,
}

impl Expectations {
    /// The strict side of every difference.
    pub(crate) const STRICT: Self = Self {
        etag_requires_existing_key: true,
        write_without_ttl_clears_expiry: true,
        first_write_conflict_is_mismatch: true,
    };
}

/// Runs every check that applies to the store's advertised features, holding the store
/// to [`Expectations::STRICT`].
pub(crate) async fn run_all(store: &dyn StateStore) {
    run_all_with(store, Expectations::STRICT).await;
}

/// Runs every check that applies to the store's advertised features, the independent ones
/// concurrently, expecting the given behaviour where stores differ.
pub(crate) async fn run_all_with(store: &dyn StateStore, expectations: Expectations) {
    let features = store.features();
    let has = |feature| features.contains(&feature);
    store.ping().await.unwrap();
    futures::join!(
        async {
            crud(store).await;
            binary_values(store).await;
            bulk(store).await;
        },
        async {
            if has(Feature::Etag) {
                etags_with(store, expectations).await;
                first_write(store, expectations).await;
                bulk_etags(store).await;
            }
        },
        async {
            if has(Feature::Transactional) {
                transactions(store).await;
            } else {
                unsupported_transactions(store).await;
            }
        },
        async {
            if has(Feature::Ttl) {
                ttl(store, expectations).await;
            }
        },
        async {
            if has(Feature::QueryApi) {
                query(store).await;
            } else {
                unsupported_query(store).await;
            }
        },
        async {
            if has(Feature::DeleteWithPrefix) {
                delete_with_prefix(store).await;
            } else {
                unsupported_delete_with_prefix(store).await;
            }
        },
    );
}

/// Get of a missing key, JSON round trips, overwrite, delete, delete of a missing key.
pub(crate) async fn crud(store: &dyn StateStore) {
    let prefix = unique_prefix("crud");
    let key = format!("{prefix}item");
    let has_etag = store.features().contains(&Feature::Etag);

    let missing = get(store, &format!("{prefix}never-written")).await;
    assert!(
        missing.is_missing(),
        "a missing key must read as missing: {missing:?}"
    );
    assert!(!missing.metadata.contains_key(TTL_EXPIRE_TIME_METADATA_KEY));

    let first = json!({"name": "alice", "nested": {"n": 1, "list": [1, "two", null, 2.5]}});
    set(store, &key, &first).await;
    let read = get(store, &key).await;
    assert_json(&read.data, &first, &key);
    assert!(
        !read.metadata.contains_key(TTL_EXPIRE_TIME_METADATA_KEY),
        "a value without a TTL has no ttlExpireTime: {:?}",
        read.metadata
    );
    if has_etag {
        assert!(
            read.etag.as_deref().is_some_and(|etag| !etag.is_empty()),
            "a stored value must carry an ETag: {read:?}"
        );
    }

    let second = json!({"name": "bob"});
    set(store, &key, &second).await;
    let overwritten = get(store, &key).await;
    assert_json(&overwritten.data, &second, &key);
    if has_etag {
        assert_ne!(
            overwritten.etag, read.etag,
            "an overwrite must change the ETag"
        );
    }

    let text_key = format!("{prefix}text");
    set(store, &text_key, &json!("just a JSON string")).await;
    assert_json(
        &get(store, &text_key).await.data,
        &json!("just a JSON string"),
        &text_key,
    );
    let number_key = format!("{prefix}number");
    set(store, &number_key, &json!(42)).await;
    assert_json(&get(store, &number_key).await.data, &json!(42), &number_key);

    // An empty ETag is no ETag: the write is unconditional.
    let empty_etag_key = format!("{prefix}empty-etag");
    store
        .set(SetRequest {
            etag: Some(String::new()),
            ..set_request(&empty_etag_key, json_bytes(&first))
        })
        .await
        .unwrap();
    assert_json(
        &get(store, &empty_etag_key).await.data,
        &first,
        &empty_etag_key,
    );

    for key in [&key, &text_key, &number_key, &empty_etag_key] {
        delete(store, key).await;
        let gone = get(store, key).await;
        assert!(
            gone.is_missing(),
            "{key} must be gone after delete: {gone:?}"
        );
    }
    delete(store, &format!("{prefix}never-written")).await;
}

/// Raw bytes (not JSON, not UTF-8) come back byte-identical, and a key can switch between
/// raw and JSON values.
pub(crate) async fn binary_values(store: &dyn StateStore) {
    let prefix = unique_prefix("binary");
    let cases: Vec<(String, Bytes)> = vec![
        (
            format!("{prefix}not-utf8"),
            Bytes::from_static(&[0xff, 0x00, 0xfe, 0x80, b'{', 0x01, 0xc3]),
        ),
        (format!("{prefix}all-bytes"), (0..=255u8).collect()),
        (
            format!("{prefix}plain-text"),
            Bytes::from_static(b"plain text, not JSON"),
        ),
        (
            format!("{prefix}proto-like"),
            Bytes::from_static(&[0x08, 0xff, 0xff, 0xff, 0xff, 0x0f]),
        ),
    ];
    for (key, value) in &cases {
        store.set(set_request(key, value.clone())).await.unwrap();
        let read = get(store, key).await;
        assert_eq!(read.data, *value, "{key} must come back byte-identical");
    }

    let key = &cases[0].0;
    set(store, key, &json!({"now": "json"})).await;
    assert_json(&get(store, key).await.data, &json!({"now": "json"}), key);
    store
        .set(set_request(key, cases[1].1.clone()))
        .await
        .unwrap();
    assert_eq!(get(store, key).await.data, cases[1].1);

    for (key, _) in &cases {
        delete(store, key).await;
    }
}

/// Bulk set, bulk get (every parallelism, per-item results, missing keys), bulk delete.
pub(crate) async fn bulk(store: &dyn StateStore) {
    let prefix = unique_prefix("bulk");
    let has_etag = store.features().contains(&Feature::Etag);
    let stored: Vec<(String, Bytes)> = (0..5)
        .map(|index| {
            let value = if index % 2 == 0 {
                json_bytes(&json!({"index": index, "even": true}))
            } else {
                Bytes::from(vec![0xfe, index, 0x00, 0xff])
            };
            (format!("{prefix}key-{index}"), value)
        })
        .collect();
    store
        .bulk_set(
            stored
                .iter()
                .map(|(key, value)| set_request(key, value.clone()))
                .collect(),
        )
        .await
        .unwrap();

    let missing = [format!("{prefix}missing-a"), format!("{prefix}missing-b")];
    let mut requested: Vec<String> = stored.iter().map(|(key, _)| key.clone()).collect();
    requested.insert(2, missing[0].clone());
    requested.push(missing[1].clone());
    for parallelism in [0, 1, 3] {
        let items = store
            .bulk_get(
                requested.iter().map(|key| get_request(key)).collect(),
                parallelism,
            )
            .await;
        assert_eq!(
            items
                .iter()
                .map(|item| item.key.clone())
                .collect::<BTreeSet<_>>(),
            requested.iter().cloned().collect::<BTreeSet<_>>(),
            "bulk get (parallelism {parallelism}) must answer every requested key once"
        );
        assert_eq!(items.len(), requested.len());
        for item in &items {
            assert_eq!(item.error, None, "bulk get item {item:?}");
            match stored.iter().find(|(key, _)| *key == item.key) {
                Some((_, value)) => {
                    assert_value(&item.data, value, &item.key);
                    if has_etag {
                        assert!(
                            item.etag.as_deref().is_some_and(|etag| !etag.is_empty()),
                            "bulk get items carry ETags: {item:?}"
                        );
                    }
                }
                None => {
                    assert!(item.data.is_empty(), "missing key has no data: {item:?}");
                    assert_eq!(item.etag, None, "missing key has no ETag: {item:?}");
                }
            }
        }
    }
    assert!(store.bulk_get(Vec::new(), 0).await.is_empty());

    let (deleted, kept) = stored.split_at(3);
    store
        .bulk_delete(deleted.iter().map(|(key, _)| delete_request(key)).collect())
        .await
        .unwrap();
    for (key, _) in deleted {
        assert!(get(store, key).await.is_missing(), "{key} was bulk deleted");
    }
    for (key, value) in kept {
        assert_value(&get(store, key).await.data, value, key);
        delete(store, key).await;
    }
}

/// [`etags_with`] under [`Expectations::STRICT`].
pub(crate) async fn etags(store: &dyn StateStore) {
    etags_with(store, Expectations::STRICT).await;
}

/// ETags change on every write; writes and deletes with the current ETag succeed, with a
/// stale one fail with a mismatch and change nothing. An ETag for a missing key behaves
/// as `expectations` says.
pub(crate) async fn etags_with(store: &dyn StateStore, expectations: Expectations) {
    let prefix = unique_prefix("etag");
    let key = format!("{prefix}item");

    set(store, &key, &json!("v1")).await;
    let first = current_etag(store, &key).await;
    set(store, &key, &json!("v2")).await;
    let second = current_etag(store, &key).await;
    assert_ne!(first, second, "every write must change the ETag");

    store
        .set(with_etag(
            set_request(&key, json_bytes(&json!("v3"))),
            &second,
        ))
        .await
        .unwrap();
    let third = current_etag(store, &key).await;
    assert_ne!(third, second);
    assert_json(&get(store, &key).await.data, &json!("v3"), &key);

    let bulk = store.bulk_get(vec![get_request(&key)], 0).await;
    assert_eq!(
        bulk[0].etag.as_deref(),
        Some(third.as_str()),
        "bulk get reports the same ETag as get"
    );

    for stale in [&first, &second] {
        expect_mismatch(
            store
                .set(with_etag(
                    set_request(&key, json_bytes(&json!("lost"))),
                    stale,
                ))
                .await,
            "set with a stale ETag",
        );
        expect_mismatch(
            store
                .delete(DeleteRequest {
                    etag: Some(stale.clone()),
                    ..delete_request(&key)
                })
                .await,
            "delete with a stale ETag",
        );
    }
    let unchanged = get(store, &key).await;
    assert_json(&unchanged.data, &json!("v3"), &key);
    assert_eq!(unchanged.etag.as_deref(), Some(third.as_str()));

    // An ETag this store never produced fails as mismatch or invalid, never succeeds.
    match store
        .set(with_etag(
            set_request(&key, json_bytes(&json!("lost"))),
            "not-an-etag",
        ))
        .await
    {
        Err(StateError::Etag { .. }) => {}
        other => panic!("set with a made-up ETag must fail with an ETag error: {other:?}"),
    }

    store
        .delete(DeleteRequest {
            etag: Some(third.clone()),
            ..delete_request(&key)
        })
        .await
        .unwrap();
    assert!(get(store, &key).await.is_missing());

    // An ETag for a key that no longer exists.
    let set_result = store
        .set(with_etag(
            set_request(&key, json_bytes(&json!("v4"))),
            &third,
        ))
        .await;
    let recreated = get(store, &key).await;
    if expectations.etag_requires_existing_key {
        expect_mismatch(set_result, "set with an ETag of a deleted key");
        assert!(recreated.is_missing(), "a refused write changes nothing");
    } else {
        set_result.unwrap_or_else(|error| {
            panic!("set with an ETag of a deleted key must create it: {error}")
        });
        assert_json(&recreated.data, &json!("v4"), &key);
        assert!(
            recreated.etag.is_some_and(|etag| !etag.is_empty()),
            "the recreated value has an ETag"
        );
    }
    delete(store, &key).await;
    let delete_result = store
        .delete(DeleteRequest {
            etag: Some(third.clone()),
            ..delete_request(&key)
        })
        .await;
    if expectations.etag_requires_existing_key {
        expect_mismatch(delete_result, "delete with an ETag of a deleted key");
    } else {
        delete_result.unwrap_or_else(|error| {
            panic!("delete with an ETag of a deleted key must succeed: {error}")
        });
    }
    assert!(get(store, &key).await.is_missing());
}

/// First-write concurrency: without an ETag a write only creates (a refusal is the error
/// `expectations` says); with one it must match.
pub(crate) async fn first_write(store: &dyn StateStore, expectations: Expectations) {
    let prefix = unique_prefix("first-write");
    for (name, etag) in [("no-etag", None), ("empty-etag", Some(String::new()))] {
        let key = format!("{prefix}{name}");
        let request = |value: &Value| SetRequest {
            etag: etag.clone(),
            concurrency: Concurrency::FirstWrite,
            ..set_request(&key, json_bytes(value))
        };
        store.set(request(&json!("first"))).await.unwrap();
        let what = "a first-write without an ETag on an existing key";
        let result = store.set(request(&json!("second"))).await;
        if expectations.first_write_conflict_is_mismatch {
            expect_mismatch(result, what);
        } else {
            match result {
                Err(StateError::Backend(_)) => {}
                other => panic!("{what} must fail with a backend error, got {other:?}"),
            }
        }
        assert_json(&get(store, &key).await.data, &json!("first"), &key);
        delete(store, &key).await;
        store.set(request(&json!("recreated"))).await.unwrap();
        assert_json(&get(store, &key).await.data, &json!("recreated"), &key);
        delete(store, &key).await;
    }

    let key = format!("{prefix}with-etag");
    set(store, &key, &json!("first")).await;
    let first = current_etag(store, &key).await;
    let request = |value: &Value, etag: &str| SetRequest {
        etag: Some(etag.to_owned()),
        concurrency: Concurrency::FirstWrite,
        ..set_request(&key, json_bytes(value))
    };
    store.set(request(&json!("second"), &first)).await.unwrap();
    let second = current_etag(store, &key).await;
    assert_ne!(first, second);
    expect_mismatch(
        store.set(request(&json!("third"), &first)).await,
        "a first-write with a stale ETag",
    );
    assert_json(&get(store, &key).await.data, &json!("second"), &key);
    delete(store, &key).await;
}

/// Bulk writes report an ETag failure of any item.
pub(crate) async fn bulk_etags(store: &dyn StateStore) {
    let prefix = unique_prefix("bulk-etag");
    let keys = [format!("{prefix}a"), format!("{prefix}b")];
    for key in &keys {
        set(store, key, &json!("v1")).await;
    }
    let stale = current_etag(store, &keys[0]).await;
    set(store, &keys[0], &json!("v2")).await;
    let fresh = current_etag(store, &keys[1]).await;

    let result = store
        .bulk_set(vec![
            with_etag(set_request(&keys[1], json_bytes(&json!("v3"))), &fresh),
            with_etag(set_request(&keys[0], json_bytes(&json!("v3"))), &stale),
        ])
        .await;
    expect_mismatch(result, "bulk set with one stale ETag");
    assert_json(&get(store, &keys[0]).await.data, &json!("v2"), &keys[0]);

    let result = store
        .bulk_delete(vec![DeleteRequest {
            etag: Some(stale.clone()),
            ..delete_request(&keys[0])
        }])
        .await;
    expect_mismatch(result, "bulk delete with a stale ETag");
    assert!(!get(store, &keys[0]).await.is_missing());
    store
        .bulk_delete(keys.iter().map(|key| delete_request(key)).collect())
        .await
        .unwrap();
}

/// Transactions apply in order and atomically: a failing operation leaves every earlier
/// one unapplied.
pub(crate) async fn transactions(store: &dyn StateStore) {
    let prefix = unique_prefix("transaction");
    let features = store.features();
    let key = |name: &str| format!("{prefix}{name}");

    // Order: delete an existing key, create one, delete it again, create another.
    set(store, &key("existing"), &json!("old")).await;
    transact(
        store,
        vec![
            delete_op(&key("existing")),
            upsert_op(&key("created-then-deleted"), json_bytes(&json!("tmp"))),
            delete_op(&key("created-then-deleted")),
            upsert_op(
                &key("created"),
                json_bytes(&json!({"made": "in a transaction"})),
            ),
            upsert_op(&key("binary"), Bytes::from_static(&[0x00, 0xff, 0x10])),
        ],
    )
    .await
    .unwrap();
    assert!(get(store, &key("existing")).await.is_missing());
    assert!(get(store, &key("created-then-deleted")).await.is_missing());
    assert_json(
        &get(store, &key("created")).await.data,
        &json!({"made": "in a transaction"}),
        &key("created"),
    );
    assert_eq!(
        get(store, &key("binary")).await.data,
        &[0x00, 0xff, 0x10][..]
    );

    transact(store, Vec::new()).await.unwrap();
    transact(store, vec![delete_op(&key("never-written"))])
        .await
        .unwrap();

    if features.contains(&Feature::Etag) {
        // Atomicity: the last operation fails on its ETag, so nothing applies.
        set(store, &key("guarded"), &json!("guarded v1")).await;
        let stale = current_etag(store, &key("guarded")).await;
        set(store, &key("guarded"), &json!("guarded v2")).await;
        let current = current_etag(store, &key("guarded")).await;
        set(store, &key("kept"), &json!("kept")).await;

        for failing in [
            TransactionOperation::Upsert(with_etag(
                set_request(&key("guarded"), json_bytes(&json!("lost"))),
                &stale,
            )),
            TransactionOperation::Delete(DeleteRequest {
                etag: Some(stale.clone()),
                ..delete_request(&key("guarded"))
            }),
        ] {
            let result = transact(
                store,
                vec![
                    upsert_op(&key("new-a"), json_bytes(&json!("a"))),
                    upsert_op(&key("created"), json_bytes(&json!("overwritten"))),
                    delete_op(&key("kept")),
                    failing,
                ],
            )
            .await;
            expect_mismatch(result, "a transaction with a stale ETag");
            assert!(
                get(store, &key("new-a")).await.is_missing(),
                "a failed transaction must not create keys"
            );
            assert_json(
                &get(store, &key("created")).await.data,
                &json!({"made": "in a transaction"}),
                &key("created"),
            );
            assert_json(
                &get(store, &key("kept")).await.data,
                &json!("kept"),
                &key("kept"),
            );
            let guarded = get(store, &key("guarded")).await;
            assert_json(&guarded.data, &json!("guarded v2"), &key("guarded"));
            assert_eq!(guarded.etag.as_deref(), Some(current.as_str()));
        }

        // The current ETag passes, inside a transaction too.
        transact(
            store,
            vec![TransactionOperation::Upsert(with_etag(
                set_request(&key("guarded"), json_bytes(&json!("guarded v3"))),
                &current,
            ))],
        )
        .await
        .unwrap();
        let guarded = get(store, &key("guarded")).await;
        assert_json(&guarded.data, &json!("guarded v3"), &key("guarded"));
        assert_ne!(guarded.etag.as_deref(), Some(current.as_str()));
    }

    if features.contains(&Feature::Ttl) {
        let mut request = set_request(&key("with-ttl"), json_bytes(&json!("expiring")));
        request
            .metadata
            .insert(TTL_METADATA_KEY.to_owned(), "3600".to_owned());
        transact(store, vec![TransactionOperation::Upsert(request)])
            .await
            .unwrap();
        assert_expire_time_near(&get(store, &key("with-ttl")).await, 3600, &key("with-ttl"));
    }

    for name in ["created", "binary", "guarded", "kept", "with-ttl"] {
        delete(store, &key(name)).await;
    }
}

/// Time to live: values expire, report `ttlExpireTime` while alive, and `-1` on a later
/// write removes the expiry; a later write without a TTL removes or keeps it as
/// `expectations` says.
pub(crate) async fn ttl(store: &dyn StateStore, expectations: Expectations) {
    let prefix = unique_prefix("ttl");
    let key = |name: &str| format!("{prefix}{name}");
    let with_ttl = |name: &str, ttl: &str| {
        let mut request = set_request(&key(name), json_bytes(&json!(name)));
        request
            .metadata
            .insert(TTL_METADATA_KEY.to_owned(), ttl.to_owned());
        request
    };

    match store.set(with_ttl("bad", "soon")).await {
        Err(StateError::InvalidRequest(_)) => {}
        other => panic!("a non-numeric ttlInSeconds must be an invalid request: {other:?}"),
    }

    store.set(with_ttl("hour", "3600")).await.unwrap();
    assert_expire_time_near(&get(store, &key("hour")).await, 3600, &key("hour"));
    let bulk = store.bulk_get(vec![get_request(&key("hour"))], 0).await;
    assert!(
        bulk[0].metadata.contains_key(TTL_EXPIRE_TIME_METADATA_KEY),
        "bulk get reports ttlExpireTime too: {:?}",
        bulk[0]
    );

    store.set(with_ttl("one-second", "1")).await.unwrap();
    store.set(with_ttl("two-seconds", "2")).await.unwrap();
    let alive = get(store, &key("two-seconds")).await;
    assert_json(&alive.data, &json!("two-seconds"), &key("two-seconds"));
    assert_expire_time_near(&alive, 2, &key("two-seconds"));

    // A later write with `-1` makes the value permanent again; one without a TTL does
    // too, or keeps the earlier expiry.
    store.set(with_ttl("minus-one", "2")).await.unwrap();
    store.set(with_ttl("minus-one", "-1")).await.unwrap();
    store.set(with_ttl("rewritten", "2")).await.unwrap();
    set(store, &key("rewritten"), &json!("rewritten")).await;
    let overridden_at = Instant::now();
    let (permanent, expiring): (&[&str], &[&str]) = if expectations.write_without_ttl_clears_expiry
    {
        (&["minus-one", "rewritten"], &["one-second", "two-seconds"])
    } else {
        let kept = get(store, &key("rewritten")).await;
        assert_json(&kept.data, &json!("rewritten"), &key("rewritten"));
        assert_expire_time_near(&kept, 2, &key("rewritten"));
        (&["minus-one"], &["one-second", "two-seconds", "rewritten"])
    };
    for &name in permanent {
        let read = get(store, &key(name)).await;
        assert_json(&read.data, &json!(name), &key(name));
        assert!(
            !read.metadata.contains_key(TTL_EXPIRE_TIME_METADATA_KEY),
            "{name}: removing the TTL removes ttlExpireTime: {:?}",
            read.metadata
        );
    }

    let deadline = Instant::now() + EXPIRY_DEADLINE;
    for &name in expiring {
        loop {
            if get(store, &key(name)).await.is_missing() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{name}: the value did not expire within {EXPIRY_DEADLINE:?}"
            );
            tokio::time::sleep(POLL).await;
        }
        let bulk = store.bulk_get(vec![get_request(&key(name))], 0).await;
        assert!(
            bulk[0].data.is_empty(),
            "expired values are missing from bulk get too"
        );
    }

    tokio::time::sleep(Duration::from_secs(3).saturating_sub(overridden_at.elapsed())).await;
    for &name in permanent {
        assert_json(&get(store, &key(name)).await.data, &json!(name), &key(name));
    }
    for &name in permanent.iter().chain(&["hour"]) {
        delete(store, &key(name)).await;
    }
}

/// The alpha1 query API: filters on nested fields, sorting, paging, and key scoping.
pub(crate) async fn query(store: &dyn StateStore) {
    let prefix = unique_prefix("query");
    let other_prefix = unique_prefix("query-other");
    let documents = [
        (
            "k1",
            json!({"person": {"org": "Dev Ops", "id": 1036}, "city": "Seattle", "state": "WA"}),
        ),
        (
            "k2",
            json!({"person": {"org": "Hardware", "id": 1028}, "city": "Portland", "state": "OR"}),
        ),
        (
            "k3",
            json!({"person": {"org": "Finance", "id": 1071}, "city": "Sacramento", "state": "CA"}),
        ),
        (
            "k4",
            json!({"person": {"org": "Dev Ops", "id": 1042}, "city": "Spokane", "state": "WA"}),
        ),
        (
            "k5",
            json!({"person": {"org": "Dev Ops", "id": 1007}, "city": "San Francisco", "state": "CA"}),
        ),
        (
            "k6",
            json!({"person": {"org": "Finance", "id": 1094}, "city": "New York", "state": "NY"}),
        ),
    ];
    for (name, document) in &documents {
        set(store, &format!("{prefix}{name}"), document).await;
    }
    let outsider =
        json!({"person": {"org": "Dev Ops", "id": 1001}, "city": "Tacoma", "state": "WA"});
    set(store, &format!("{other_prefix}k1"), &outsider).await;
    let has_etag = store.features().contains(&Feature::Etag);

    let run = |query: Query, scope: String| async move {
        let metadata = HashMap::from([(QUERY_KEY_PREFIX_METADATA.to_owned(), scope)]);
        store.query(query, metadata).await.unwrap()
    };
    let names = |keys: &[&str]| -> Vec<String> {
        keys.iter().map(|name| format!("{prefix}{name}")).collect()
    };
    let filtered = |filter: Filter| Query {
        filter: Some(filter),
        ..Query::default()
    };
    let sorted = |sort: Vec<(&str, Order)>| Query {
        sort: sort
            .into_iter()
            .map(|(key, order)| Sorting {
                key: key.to_owned(),
                order,
            })
            .collect(),
        ..Query::default()
    };

    let filters = [
        (
            Filter::Eq("person.org".into(), json!("Dev Ops")),
            vec!["k1", "k4", "k5"],
        ),
        (
            Filter::In("state".into(), vec![json!("CA"), json!("WA")]),
            vec!["k1", "k3", "k4", "k5"],
        ),
        (
            Filter::And(vec![
                Filter::Eq("person.org".into(), json!("Dev Ops")),
                Filter::In("state".into(), vec![json!("WA"), json!("NY")]),
            ]),
            vec!["k1", "k4"],
        ),
        (
            Filter::Or(vec![
                Filter::Eq("state".into(), json!("NY")),
                Filter::Eq("person.id".into(), json!(1028)),
            ]),
            vec!["k2", "k6"],
        ),
        (Filter::Eq("value.state".into(), json!("OR")), vec!["k2"]),
        (Filter::Eq("person.org".into(), json!("Nobody")), vec![]),
    ];
    for (filter, expected) in filters {
        let response = run(filtered(filter.clone()), prefix.clone()).await;
        let found: BTreeSet<String> = response
            .results
            .iter()
            .map(|item| item.key.clone())
            .collect();
        assert_eq!(
            found,
            names(&expected).into_iter().collect::<BTreeSet<_>>(),
            "query {filter:?} must return exactly these keys (prefix included)"
        );
        for item in &response.results {
            let name = item.key.strip_prefix(&prefix).unwrap_or_default();
            let (_, document) = documents
                .iter()
                .find(|(candidate, _)| *candidate == name)
                .unwrap();
            assert_json(&item.data, document, &item.key);
            assert_eq!(item.error, None);
            if has_etag {
                assert_eq!(
                    item.etag,
                    get(store, &item.key).await.etag,
                    "query results carry the value's ETag"
                );
            }
        }
    }

    let by_id = ["k5", "k2", "k1", "k4", "k3", "k6"];
    let keys_of = |response: QueryResponse| -> Vec<String> {
        response.results.into_iter().map(|item| item.key).collect()
    };
    assert_eq!(
        keys_of(run(sorted(vec![("person.id", Order::Asc)]), prefix.clone()).await),
        names(&by_id),
        "sort ASC on a nested number"
    );
    let mut reversed = by_id;
    reversed.reverse();
    assert_eq!(
        keys_of(run(sorted(vec![("person.id", Order::Desc)]), prefix.clone()).await),
        names(&reversed),
        "sort DESC on a nested number"
    );
    assert_eq!(
        keys_of(
            run(
                sorted(vec![("state", Order::Asc), ("person.id", Order::Desc)]),
                prefix.clone()
            )
            .await
        ),
        names(&["k3", "k5", "k6", "k2", "k4", "k1"]),
        "sort on two keys"
    );
    let mut sorted_filtered = sorted(vec![("city", Order::Desc)]);
    sorted_filtered.filter = Some(Filter::Eq("person.org".into(), json!("Dev Ops")));
    assert_eq!(
        keys_of(run(sorted_filtered, prefix.clone()).await),
        names(&["k4", "k1", "k5"]),
        "filter and sort together"
    );

    for limit in [2, 4, 5, 6] {
        let mut collected = Vec::new();
        let mut token = String::new();
        for page_number in 0.. {
            assert!(page_number < 10, "paging with limit {limit} does not end");
            let mut query = sorted(vec![("person.id", Order::Asc)]);
            query.limit = limit;
            query.token = token;
            let response = run(query, prefix.clone()).await;
            assert!(
                response.results.len() <= limit,
                "a page holds at most the limit"
            );
            if page_number == 0 {
                assert_eq!(response.results.len(), limit, "the first page is full");
            }
            if collected.len() + limit < documents.len() {
                assert!(
                    !response.token.is_empty(),
                    "a page with more to come has a token"
                );
            }
            let page_len = response.results.len();
            token = response.token.clone();
            collected.extend(keys_of(response));
            if token.is_empty() || page_len == 0 {
                break;
            }
        }
        assert_eq!(
            collected,
            names(&by_id),
            "pages of {limit} cover every result once, in order"
        );
    }

    let dev_ops = filtered(Filter::Eq("person.org".into(), json!("Dev Ops")));
    let outside = run(dev_ops.clone(), other_prefix.clone()).await;
    assert_eq!(
        keys_of(outside),
        vec![format!("{other_prefix}k1")],
        "a query sees only keys under its prefix"
    );
    let parsed = Query::from_value(&json!({
        "filter": {"AND": [{"EQ": {"person.org": "Dev Ops"}}, {"GT": {"person.id": 1010}}]},
        "sort": [{"key": "person.id", "order": "DESC"}]
    }))
    .unwrap();
    assert_eq!(
        keys_of(run(parsed, prefix.clone()).await),
        names(&["k4", "k1"]),
        "a parsed query document with GT"
    );

    for (name, _) in &documents {
        delete(store, &format!("{prefix}{name}")).await;
    }
    delete(store, &format!("{other_prefix}k1")).await;
}

/// Delete with prefix: completes the `||`, keeps nested prefixes and other prefixes,
/// refuses an empty prefix.
pub(crate) async fn delete_with_prefix(store: &dyn StateStore) {
    let base = uuid::Uuid::new_v4().simple().to_string();
    let prefix = format!("conformance-{base}-dwp||");
    let other = format!("conformance-{base}-dwp-other||");
    let keys = [
        format!("{prefix}key1"),
        format!("{prefix}key2"),
        format!("{prefix}nested||key3"),
        format!("{other}key1"),
        format!("conformance-{base}-dwp-no-separator"),
    ];
    for key in &keys {
        store
            .set(set_request(key, Bytes::from_static(b"some bytes")))
            .await
            .unwrap();
    }

    assert_eq!(store.delete_with_prefix(&prefix).await.unwrap(), 2);
    assert_present(store, &keys, [false, false, true, true, true]).await;

    let without_separator = other.trim_end_matches("||");
    assert_eq!(
        store.delete_with_prefix(without_separator).await.unwrap(),
        1
    );
    assert_present(store, &keys, [false, false, true, false, true]).await;

    for empty in ["", "||"] {
        match store.delete_with_prefix(empty).await {
            Err(StateError::InvalidRequest(_)) => {}
            other => panic!("delete with prefix {empty:?} must be refused: {other:?}"),
        }
    }
    assert_eq!(
        store
            .delete_with_prefix(&format!("{prefix}nested||"))
            .await
            .unwrap(),
        1
    );
    delete(store, &keys[4]).await;
}

async fn assert_present(store: &dyn StateStore, keys: &[String], expected: [bool; 5]) {
    for (key, expected) in keys.iter().zip(expected) {
        let present = !get(store, key).await.is_missing();
        assert_eq!(present, expected, "{key} present after delete with prefix");
    }
}

async fn unsupported_transactions(store: &dyn StateStore) {
    let request = TransactionRequest {
        operations: vec![delete_op(&format!("{}x", unique_prefix("no-tx")))],
        metadata: HashMap::new(),
    };
    assert!(
        matches!(
            store.transact(request).await,
            Err(StateError::NotSupported(_))
        ),
        "a store without TRANSACTIONAL refuses transactions"
    );
}

async fn unsupported_query(store: &dyn StateStore) {
    assert!(
        matches!(
            store.query(Query::default(), HashMap::new()).await,
            Err(StateError::NotSupported(_))
        ),
        "a store without QUERY_API refuses queries"
    );
}

async fn unsupported_delete_with_prefix(store: &dyn StateStore) {
    assert!(
        matches!(
            store.delete_with_prefix(&unique_prefix("no-dwp")).await,
            Err(StateError::NotSupported(_))
        ),
        "a store without DELETE_WITH_PREFIX refuses it"
    );
}

fn unique_prefix(name: &str) -> String {
    format!("conformance-{}-{name}||", uuid::Uuid::new_v4().simple())
}

fn json_bytes(value: &Value) -> Bytes {
    Bytes::from(serde_json::to_vec(value).unwrap())
}

fn get_request(key: &str) -> GetRequest {
    GetRequest {
        key: key.to_owned(),
        ..GetRequest::default()
    }
}

fn set_request(key: &str, value: Bytes) -> SetRequest {
    SetRequest {
        key: key.to_owned(),
        value,
        ..SetRequest::default()
    }
}

fn with_etag(request: SetRequest, etag: &str) -> SetRequest {
    SetRequest {
        etag: Some(etag.to_owned()),
        ..request
    }
}

fn delete_request(key: &str) -> DeleteRequest {
    DeleteRequest {
        key: key.to_owned(),
        ..DeleteRequest::default()
    }
}

fn upsert_op(key: &str, value: Bytes) -> TransactionOperation {
    TransactionOperation::Upsert(set_request(key, value))
}

fn delete_op(key: &str) -> TransactionOperation {
    TransactionOperation::Delete(delete_request(key))
}

async fn transact(
    store: &dyn StateStore,
    operations: Vec<TransactionOperation>,
) -> Result<(), StateError> {
    store
        .transact(TransactionRequest {
            operations,
            metadata: HashMap::new(),
        })
        .await
}

async fn get(store: &dyn StateStore, key: &str) -> GetResponse {
    store
        .get(get_request(key))
        .await
        .unwrap_or_else(|error| panic!("get {key}: {error}"))
}

async fn set(store: &dyn StateStore, key: &str, value: &Value) {
    store
        .set(set_request(key, json_bytes(value)))
        .await
        .unwrap_or_else(|error| panic!("set {key}: {error}"));
}

async fn delete(store: &dyn StateStore, key: &str) {
    store
        .delete(delete_request(key))
        .await
        .unwrap_or_else(|error| panic!("delete {key}: {error}"));
}

async fn current_etag(store: &dyn StateStore, key: &str) -> String {
    let response = get(store, key).await;
    response
        .etag
        .filter(|etag| !etag.is_empty())
        .unwrap_or_else(|| panic!("{key} has no ETag: {:?}", response.data))
}

fn expect_mismatch(result: Result<(), StateError>, what: &str) {
    match result {
        Err(StateError::Etag {
            kind: EtagErrorKind::Mismatch,
            ..
        }) => {}
        other => panic!("{what} must fail with an ETag mismatch, got {other:?}"),
    }
}

/// JSON values compare by meaning: a store may normalise whitespace or key order.
fn assert_json(data: &[u8], expected: &Value, key: &str) {
    let actual: Value = serde_json::from_slice(data).unwrap_or_else(|error| {
        panic!(
            "{key}: stored JSON came back unparsable ({error}): {:?}",
            String::from_utf8_lossy(data)
        )
    });
    assert_eq!(&actual, expected, "{key}: value read back");
}

/// A JSON value compares by meaning, any other value byte for byte.
fn assert_value(data: &[u8], expected: &[u8], key: &str) {
    match serde_json::from_slice::<Value>(expected) {
        Ok(expected) => assert_json(data, &expected, key),
        Err(_) => assert_eq!(data, expected, "{key}: raw value read back"),
    }
}

/// `ttlExpireTime` is RFC 3339 in UTC, about `seconds` from now.
fn assert_expire_time_near(response: &GetResponse, seconds: u64, key: &str) {
    let Some(expire) = response.metadata.get(TTL_EXPIRE_TIME_METADATA_KEY) else {
        panic!("{key}: a value with a TTL reports ttlExpireTime: {response:?}");
    };
    let now = SystemTime::now();
    let earliest = format_expire_time(now + Duration::from_secs(seconds) - Duration::from_secs(60));
    let latest = format_expire_time(now + Duration::from_secs(seconds) + Duration::from_secs(60));
    assert!(
        expire.len() == earliest.len() && expire.ends_with('Z'),
        "{key}: ttlExpireTime {expire:?} is not RFC 3339 UTC like {earliest:?}"
    );
    assert!(
        earliest <= *expire && *expire <= latest,
        "{key}: ttlExpireTime {expire} is not about {seconds}s from now"
    );
}

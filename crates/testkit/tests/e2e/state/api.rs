//! The state API surface on every store: save, get, bulk get, delete, transactions, ETags,
//! TTL metadata and queries, first over plain HTTP, then through the Python SDK's state
//! calls (gRPC), with values crossing between the two protocols.

use ::http::Method;
use bytes::Bytes;
use dapr_testkit::{Daprd, http};
use serde_json::{Value, json};

use super::{Kind, STORE, StoreUnderTest, error_info_reason, http_error, sdk_failures, state_url};

per_store!(suite:
    sqlite => Sqlite,
    in_memory => InMemory,
    redis => Redis,
    postgresql_v1 => PostgresV1,
    postgresql_v2 => PostgresV2,
);

async fn suite(kind: Kind) {
    let store = StoreUnderTest::start(kind).await;
    let daprd = store.sidecar("state-app", &[]).await;
    over_http(&daprd).await;
    query_over_http(&daprd, kind).await;
    let query = match kind {
        _ if kind.queries() => "supported",
        Kind::Redis => "redis",
        _ => "unsupported",
    };
    let failures = sdk_failures(&daprd, SDK_SCRIPT, &[("STORE", STORE), ("QUERY", query)]).await;
    assert!(failures.is_empty(), "{failures:#?}");

    // The SDK saved raw bytes; HTTP hands them back untouched.
    let from_sdk = http::get(&state_url(&daprd, "/from-sdk")).await.unwrap();
    assert_eq!(from_sdk.status.as_u16(), 200, "{}", from_sdk.text());
    assert_eq!(from_sdk.text(), "plain bytes");
    assert!(daprd.process().exited().is_none(), "{}", daprd.log_tail(30));
}

async fn post(url: &str, body: Value) -> http::Response {
    http::post_json(url, &body).await.unwrap()
}

async fn get_json(daprd: &Daprd, key: &str) -> (Value, String) {
    let response = http::get(&state_url(daprd, &format!("/{key}")))
        .await
        .unwrap();
    assert_eq!(
        response.status.as_u16(),
        200,
        "GET {key}: {}",
        response.text()
    );
    let etag = response
        .header("etag")
        .unwrap_or_else(|| panic!("GET {key}: no ETag header"))
        .to_owned();
    assert!(!etag.is_empty(), "GET {key}: empty ETag");
    (response.json().unwrap(), etag)
}

async fn assert_missing(daprd: &Daprd, key: &str) {
    let response = http::get(&state_url(daprd, &format!("/{key}")))
        .await
        .unwrap();
    assert_eq!(
        (response.status.as_u16(), response.text()),
        (204, String::new()),
        "GET {key} of a missing key"
    );
}

async fn over_http(daprd: &Daprd) {
    let saved = post(
        &state_url(daprd, ""),
        json!([{"key": "h1", "value": {"a": 1, "b": "x"}}, {"key": "h2", "value": "text"}]),
    )
    .await;
    assert_eq!(saved.status.as_u16(), 204, "{}", saved.text());
    let (value, etag1) = get_json(daprd, "h1").await;
    assert_eq!(value, json!({"a": 1, "b": "x"}));
    let text = http::get(&state_url(daprd, "/h2")).await.unwrap();
    assert_eq!(text.text(), "\"text\"");
    assert_missing(daprd, "never-saved").await;

    // The current ETag lets a write through and changes; the old one is refused.
    let update = post(
        &state_url(daprd, ""),
        json!([{"key": "h1", "value": {"a": 2}, "etag": etag1}]),
    )
    .await;
    assert_eq!(update.status.as_u16(), 204, "{}", update.text());
    let (value, etag2) = get_json(daprd, "h1").await;
    assert_eq!(value, json!({"a": 2}));
    assert_ne!(etag1, etag2, "the ETag must change on every write");
    for options in [json!({}), json!({"concurrency": "first-write"})] {
        let stale = post(
            &state_url(daprd, ""),
            json!([{"key": "h1", "value": {"a": 3}, "etag": etag1, "options": options}]),
        )
        .await;
        let (status, code, message) = http_error(&stale);
        assert_eq!(
            (status, code.as_str()),
            (409, "ERR_STATE_SAVE"),
            "{message}"
        );
        assert!(
            message.starts_with(&format!(
                "failed saving state in state store {STORE}: possible etag mismatch"
            )),
            "{message}"
        );
    }
    assert_eq!(get_json(daprd, "h1").await.0, json!({"a": 2}));

    // Deletes honour If-Match the same way.
    let stale_delete = http::request(
        Method::DELETE,
        &state_url(daprd, "/h1"),
        &[("if-match", &etag1)],
        Bytes::new(),
    )
    .await
    .unwrap();
    let (status, code, message) = http_error(&stale_delete);
    assert_eq!(
        (status, code.as_str()),
        (409, "ERR_STATE_DELETE"),
        "{message}"
    );
    assert!(
        message.starts_with("failed deleting state with key h1: possible etag mismatch"),
        "{message}"
    );
    assert_eq!(get_json(daprd, "h1").await.0, json!({"a": 2}));
    let delete = http::request(
        Method::DELETE,
        &state_url(daprd, "/h1"),
        &[("if-match", &etag2)],
        Bytes::new(),
    )
    .await
    .unwrap();
    assert_eq!(delete.status.as_u16(), 204, "{}", delete.text());
    assert_missing(daprd, "h1").await;
    let again = http::request(Method::DELETE, &state_url(daprd, "/h1"), &[], Bytes::new())
        .await
        .unwrap();
    assert_eq!(
        again.status.as_u16(),
        204,
        "deleting a missing key: {}",
        again.text()
    );

    // A TTL is reported back as the value's expiry.
    let ttl = post(
        &state_url(daprd, ""),
        json!([{"key": "ttl", "value": "soon", "metadata": {"ttlInSeconds": "100"}}]),
    )
    .await;
    assert_eq!(ttl.status.as_u16(), 204, "{}", ttl.text());
    let response = http::get(&state_url(daprd, "/ttl")).await.unwrap();
    let expiry = response
        .header("metadata.ttlExpireTime")
        .unwrap_or_else(|| panic!("no metadata.ttlExpireTime header: {:?}", response.headers))
        .to_owned();
    assert!(
        expiry.len() >= 20 && expiry.as_bytes()[4] == b'-' && expiry.as_bytes()[10] == b'T',
        "ttlExpireTime {expiry:?} is not RFC 3339"
    );

    // Bulk get: one entry per key, missing keys without data or ETag.
    let bulk = post(
        &state_url(daprd, "/bulk"),
        json!({"keys": ["h2", "ttl", "absent"], "parallelism": 2}),
    )
    .await;
    assert_eq!(bulk.status.as_u16(), 200, "{}", bulk.text());
    let items: Vec<Value> = bulk.json().unwrap();
    let item = |key: &str| {
        items
            .iter()
            .find(|item| item["key"] == key)
            .unwrap_or_else(|| panic!("bulk get lacks {key}: {items:?}"))
    };
    assert_eq!(items.len(), 3, "{items:?}");
    assert_eq!(item("h2")["data"], "text");
    assert_eq!(item("ttl")["data"], "soon");
    for key in ["h2", "ttl"] {
        assert!(
            item(key)["etag"]
                .as_str()
                .is_some_and(|etag| !etag.is_empty()),
            "{items:?}"
        );
    }
    let absent = item("absent").as_object().unwrap();
    assert_eq!(
        absent.keys().collect::<Vec<_>>(),
        ["key"],
        "a missing key carries only its name: {absent:?}"
    );

    // A transaction upserts and deletes together.
    let transaction = post(
        &state_url(daprd, "/transaction"),
        json!({"operations": [
            {"operation": "upsert", "request": {"key": "t1", "value": {"n": 1}}},
            {"operation": "delete", "request": {"key": "h2"}},
        ]}),
    )
    .await;
    assert_eq!(transaction.status.as_u16(), 204, "{}", transaction.text());
    assert_eq!(get_json(daprd, "t1").await.0, json!({"n": 1}));
    assert_missing(daprd, "h2").await;
}

async fn query_over_http(daprd: &Daprd, kind: Kind) {
    let url = format!("{}/v1.0-alpha1/state/{STORE}/query", daprd.base_url());
    let query = json!({
        "filter": {"EQ": {"city": "Seattle"}},
        "sort": [{"key": "n", "order": "DESC"}],
    });
    if !kind.queries() {
        let refused = post(&url, query).await;
        let (status, code, message) = http_error(&refused);
        if kind == Kind::Redis {
            // Upstream's redis store fails the query itself without RediSearch/RedisJSON.
            assert_eq!(status, 500, "{message}");
            assert!(
                ["ERR_STATE_STORE_NOT_SUPPORTED", "ERR_STATE_QUERY"].contains(&code.as_str()),
                "{code}: {message}"
            );
        } else {
            assert_eq!(
                (status, code.as_str(), message.as_str()),
                (
                    500,
                    "ERR_STATE_STORE_NOT_SUPPORTED",
                    "state store does not support querying"
                )
            );
            assert_eq!(
                error_info_reason(&refused).as_deref(),
                Some("DAPR_STATE_QUERYING_NOT_SUPPORTED")
            );
        }
        return;
    }
    let saved = post(
        &state_url(daprd, ""),
        json!([
            {"key": "hq1", "value": {"city": "Seattle", "n": 1}},
            {"key": "hq2", "value": {"city": "Seattle", "n": 2}},
            {"key": "hq3", "value": {"city": "Portland", "n": 3}},
        ]),
    )
    .await;
    assert_eq!(saved.status.as_u16(), 204, "{}", saved.text());
    let response = post(&url, query).await;
    assert_eq!(response.status.as_u16(), 200, "{}", response.text());
    let body: Value = response.json().unwrap();
    let results = body["results"].as_array().unwrap();
    let keys: Vec<&str> = results
        .iter()
        .map(|result| result["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["hq2", "hq1"], "{body}");
    assert_eq!(results[0]["data"], json!({"city": "Seattle", "n": 2}));
    assert!(
        results
            .iter()
            .all(|result| result["etag"].as_str().is_some_and(|etag| !etag.is_empty())),
        "{body}"
    );
}

/// The SDK's state calls on `$STORE`; `$QUERY` says how the store answers queries.
const SDK_SCRIPT: &str = r#"
import datetime
from dapr.clients import DaprClient
from dapr.clients.grpc._state import StateItem, StateOptions, Concurrency
from dapr.clients.grpc._request import TransactionalStateOperation, TransactionOperationType
from dapr.proto import api_v1

STORE = os.environ['STORE']
QUERY = os.environ['QUERY']

with DaprClient() as d:
    # Save and get: text, bytes that are not UTF-8, JSON documents, a missing key.
    d.save_state(STORE, 'k1', 'v1')
    r = d.get_state(STORE, 'k1')
    check('get k1', r.data, b'v1')
    e1 = r.etag
    check('k1 has an etag', bool(e1), True)
    blob = bytes(range(256))
    d.save_state(STORE, 'bin', blob)
    check('binary round trip', d.get_state(STORE, 'bin').data, blob)
    d.save_state(STORE, 'doc', json.dumps({'a': 1, 'b': [1, 2]}),
                 state_metadata={'contentType': 'application/json'})
    check('json round trip', json.loads(d.get_state(STORE, 'doc').data), {'a': 1, 'b': [1, 2]})
    r = d.get_state(STORE, 'missing')
    check('missing data', r.data, b'')
    check('missing etag', r.etag, '')
    # Written over HTTP as JSON.
    check('value saved over HTTP', json.loads(d.get_state(STORE, 't1').data), {'n': 1})

    # ETags: the current one writes, a stale one is refused with upstream's codes.
    d.save_state(STORE, 'k1', 'v2', etag=e1)
    r = d.get_state(STORE, 'k1')
    check('k1 after etag write', r.data, b'v2')
    e2 = r.etag
    check('etag changed', e2 != e1, True)
    for options in [None, StateOptions(concurrency=Concurrency.first_write)]:
        err = grpc_error('stale save', lambda: d.save_state(STORE, 'k1', 'v3', etag=e1, options=options))
        expect_error('stale save', err, 'ABORTED', 'ERR_STATE_SAVE',
                     prefix=f'failed saving state in state store {STORE}: possible etag mismatch')
    check('k1 after stale save', d.get_state(STORE, 'k1').data, b'v2')
    err = grpc_error('stale delete', lambda: d.delete_state(STORE, 'k1', etag=e1))
    expect_error('stale delete', err, 'ABORTED', 'ERR_STATE_DELETE',
                 prefix='failed deleting state with key k1: possible etag mismatch')
    check('k1 after stale delete', d.get_state(STORE, 'k1').data, b'v2')
    d.delete_state(STORE, 'k1', etag=e2)
    check('k1 deleted', d.get_state(STORE, 'k1').data, b'')
    d.delete_state(STORE, 'never-existed')

    # Metadata: a TTL comes back as ttlExpireTime (RFC 3339, about 100 s ahead).
    d.save_state(STORE, 'ttl-sdk', 'short-lived', state_metadata={'ttlInSeconds': '100'})
    raw = d._stub.GetState(api_v1.GetStateRequest(store_name=STORE, key='ttl-sdk'))
    check('ttl value', raw.data, b'short-lived')
    expiry = raw.metadata.get('ttlExpireTime', '')
    try:
        left = (datetime.datetime.fromisoformat(expiry)
                - datetime.datetime.now(datetime.timezone.utc)).total_seconds()
        check('ttl about 100 s ahead', 80 < left <= 101, True)
    except ValueError:
        failures.append(f'ttlExpireTime {expiry!r} is not RFC 3339')

    # Bulk save and bulk get.
    d.save_bulk_state(STORE, [StateItem(key='b1', value='one'), StateItem(key='b2', value=b'two')])
    items = {i.key: i for i in d.get_bulk_state(STORE, ['b1', 'b2', 'b3'], parallelism=2).items}
    check('bulk keys', sorted(items), ['b1', 'b2', 'b3'])
    if sorted(items) == ['b1', 'b2', 'b3']:
        check('bulk data', {k: i.data for k, i in items.items()}, {'b1': b'one', 'b2': b'two', 'b3': b''})
        check('bulk etags', {k: bool(i.etag) for k, i in items.items()}, {'b1': True, 'b2': True, 'b3': False})
        check('bulk errors', {k: i.error for k, i in items.items()}, {'b1': '', 'b2': '', 'b3': ''})
    b1 = items.get('b1')
    if b1 is not None:
        err = grpc_error('stale bulk save', lambda: d.save_bulk_state(STORE, [
            StateItem(key='b1', value='uno', etag='1' + b1.etag),
        ]))
        if err is not None:
            check('stale bulk save code', err.code().name in ('ABORTED', 'INVALID_ARGUMENT'), True)
            check('stale bulk save reason', err.error_code(), 'ERR_STATE_SAVE')
        check('b1 after stale bulk save', d.get_state(STORE, 'b1').data, b'one')

    # Transactions apply all or nothing.
    d.save_state(STORE, 'tx-del', 'doomed')
    d.execute_state_transaction(STORE, [
        TransactionalStateOperation(key='tx1', data='t1'),
        TransactionalStateOperation(key='tx2', data=b'\x00t2'),
        TransactionalStateOperation(key='tx-del', operation_type=TransactionOperationType.delete),
    ])
    check('tx1', d.get_state(STORE, 'tx1').data, b't1')
    check('tx2', d.get_state(STORE, 'tx2').data, b'\x00t2')
    check('tx-del', d.get_state(STORE, 'tx-del').data, b'')
    stale = d.get_state(STORE, 'tx1').etag
    d.save_state(STORE, 'tx1', 't1b')
    err = grpc_error('stale transaction', lambda: d.execute_state_transaction(STORE, [
        TransactionalStateOperation(key='tx3', data='t3'),
        TransactionalStateOperation(key='tx1', data='t1c', etag=stale),
    ]))
    expect_error('stale transaction', err, 'INTERNAL', 'ERR_STATE_TRANSACTION',
                 prefix='error while executing state transaction: ')
    check('tx3 after failed transaction', d.get_state(STORE, 'tx3').data, b'')
    check('tx1 after failed transaction', d.get_state(STORE, 'tx1').data, b't1b')

    # Queries.
    query = {'filter': {'EQ': {'city': 'Seattle'}}, 'sort': [{'key': 'n', 'order': 'DESC'}]}
    if QUERY == 'supported':
        for key, doc in [('q1', {'city': 'Seattle', 'n': 1}), ('q2', {'city': 'Seattle', 'n': 2}),
                         ('q3', {'city': 'Portland', 'n': 3})]:
            d.save_state(STORE, key, json.dumps(doc), state_metadata={'contentType': 'application/json'})
        resp = d.query_state(STORE, json.dumps(query))
        found = [(r.key, json.loads(r.value)) for r in resp.results if r.key.startswith('q')]
        check('query results', found, [('q2', {'city': 'Seattle', 'n': 2}), ('q1', {'city': 'Seattle', 'n': 1})])
        check('query etags', all(r.etag for r in resp.results), True)
        pages, token = [], ''
        for _ in range(6):
            page = dict(query, page={'limit': 1, **({'token': token} if token else {})})
            resp = d.query_state(STORE, json.dumps(page))
            pages.append([r.key for r in resp.results])
            token = resp.token
            if not token or not resp.results:
                break
        check('query pages', [key for page in pages for key in page if key.startswith('q')][:2], ['q2', 'q1'])
        check('query page size', all(len(page) <= 1 for page in pages), True)
        err = grpc_error('bad query', lambda: d.query_state(STORE, '{not json'))
        expect_error('bad query', err, 'INTERNAL', 'DAPR_STATE_QUERY_FAILED',
                     prefix=f'state store {STORE} query failed: failed to parse JSON query body: ')
    else:
        err = grpc_error('unsupported query', lambda: d.query_state(STORE, json.dumps(query)))
        if QUERY == 'redis':
            check('redis query code', err and err.code().name, 'INTERNAL')
        else:
            expect_error('unsupported query', err, 'INTERNAL', 'DAPR_STATE_QUERYING_NOT_SUPPORTED',
                         message='state store does not support querying')

    # Left for the HTTP side to read.
    d.save_state(STORE, 'from-sdk', b'plain bytes')

finish()
"#;

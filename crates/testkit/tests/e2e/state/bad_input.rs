//! Bad input and a failing store, over HTTP and gRPC (the SDK): unknown stores, malformed
//! bodies, empty and `||` keys, bad and stale ETags, unknown transaction operations, values
//! past `--max-body-size`, and redis-server dying under the sidecar. Every failure carries
//! upstream's status, error code and message; none of them writes anything; the sidecar
//! stays up.

use std::time::{Duration, Instant};

use ::http::Method;
use bytes::Bytes;
use dapr_testkit::{Daprd, http};
use serde_json::{Value, json};

use super::{Kind, STORE, StoreUnderTest, error_info_reason, http_error, sdk_failures, state_url};
use crate::wire;

/// The sidecar's body limit, and a value comfortably past it.
const LIMIT: &str = "1Mi";
const OVERSIZE: usize = 2 * 1024 * 1024;

/// What an error message must look like.
#[derive(Debug, Clone, Copy)]
enum Text {
    Exact(&'static str),
    Prefix(&'static str),
    Contains(&'static str),
    NonEmpty,
}

impl Text {
    fn matches(self, message: &str) -> bool {
        match self {
            Self::Exact(text) => message == text,
            Self::Prefix(text) => message.starts_with(text),
            Self::Contains(text) => message.contains(text),
            Self::NonEmpty => !message.is_empty(),
        }
    }
}

/// One bad HTTP call and upstream's answer.
struct Row {
    what: &'static str,
    method: Method,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Bytes,
    status: u16,
    code: &'static str,
    message: Text,
    reason: Option<&'static str>,
}

fn row(what: &'static str, method: Method, path: &str, body: impl Into<Bytes>) -> Row {
    Row {
        what,
        method,
        path: path.to_owned(),
        headers: vec![("content-type", "application/json".to_owned())],
        body: body.into(),
        status: 400,
        code: "ERR_MALFORMED_REQUEST",
        message: Text::NonEmpty,
        reason: None,
    }
}

impl Row {
    fn expect(mut self, status: u16, code: &'static str, message: Text) -> Self {
        self.status = status;
        self.code = code;
        self.message = message;
        self
    }

    fn reason(mut self, reason: &'static str) -> Self {
        self.reason = Some(reason);
        self
    }

    fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }

    /// Sends the call; describes every way the answer differs from upstream's.
    async fn run(&self, daprd: &Daprd) -> Vec<String> {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(name, value)| (*name, value.as_str()))
            .collect();
        let url = format!("{}{}", daprd.base_url(), self.path);
        let response = http::request(self.method.clone(), &url, &headers, self.body.clone())
            .await
            .unwrap_or_else(|err| panic!("{}: {err}\n{}", self.what, daprd.log_tail(20)));
        let (status, code, message) = http_error(&response);
        let mut failures = Vec::new();
        if (status, code.as_str()) != (self.status, self.code) {
            failures.push(format!(
                "{}: got {status} {code}, expected {} {} ({message:?})",
                self.what, self.status, self.code
            ));
        }
        if !self.message.matches(&message) {
            failures.push(format!(
                "{}: message {message:?} does not match {:?}",
                self.what, self.message
            ));
        }
        if let Some(reason) = self.reason {
            let found = error_info_reason(&response);
            if found.as_deref() != Some(reason) {
                failures.push(format!(
                    "{}: ErrorInfo reason {found:?}, expected {reason:?} in {}",
                    self.what,
                    response.text()
                ));
            }
        }
        failures
    }
}

fn json_body(value: Value) -> Bytes {
    Bytes::from(value.to_string())
}

fn table(guarded_etag: &str) -> Vec<Row> {
    let state = |suffix: &str| format!("/v1.0/state/{STORE}{suffix}");
    let not_found = Text::Exact("state store nope is not found");
    let illegal = Text::Contains("input key/keyPrefix 'a||b' can't contain '||'");
    let one = || json_body(json!([{"key": "k", "value": 1}]));
    let oversize = json_body(json!([{"key": "big-http", "value": "x".repeat(OVERSIZE)}]));
    vec![
        row("unknown store: get", Method::GET, "/v1.0/state/nope/k", "")
            .expect(400, "ERR_STATE_STORE_NOT_FOUND", not_found)
            .reason("DAPR_STATE_NOT_FOUND"),
        row(
            "unknown store: save",
            Method::POST,
            "/v1.0/state/nope",
            one(),
        )
        .expect(400, "ERR_STATE_STORE_NOT_FOUND", not_found)
        .reason("DAPR_STATE_NOT_FOUND"),
        row(
            "unknown store: delete",
            Method::DELETE,
            "/v1.0/state/nope/k",
            "",
        )
        .expect(400, "ERR_STATE_STORE_NOT_FOUND", not_found),
        row(
            "unknown store: bulk get",
            Method::POST,
            "/v1.0/state/nope/bulk",
            json_body(json!({"keys": ["k"]})),
        )
        .expect(400, "ERR_STATE_STORE_NOT_FOUND", not_found),
        row(
            "unknown store: transaction",
            Method::POST,
            "/v1.0/state/nope/transaction",
            json_body(json!({"operations": []})),
        )
        .expect(400, "ERR_STATE_STORE_NOT_FOUND", not_found),
        row(
            "unknown store: query",
            Method::POST,
            "/v1.0-alpha1/state/nope/query",
            json_body(json!({"filter": {}})),
        )
        .expect(400, "ERR_STATE_STORE_NOT_FOUND", not_found),
        row(
            "malformed JSON: save",
            Method::POST,
            &state(""),
            r#"[{"key": "malformed", "value": "#,
        ),
        row(
            "not an array: save",
            Method::POST,
            &state(""),
            json_body(json!({"key": "object", "value": 1})),
        ),
        row(
            "malformed JSON: bulk get",
            Method::POST,
            &state("/bulk"),
            r#"{"keys": ["#,
        )
        .expect(
            400,
            "ERR_MALFORMED_REQUEST",
            Text::Prefix("failed deserializing HTTP body: "),
        ),
        row(
            "malformed JSON: transaction",
            Method::POST,
            &state("/transaction"),
            r#"{"operations": [{"operation": "upsert", "request": {"key": "tx-malformed""#,
        )
        .expect(
            400,
            "ERR_MALFORMED_REQUEST",
            Text::Prefix("failed deserializing HTTP body: "),
        ),
        row(
            "empty key: save",
            Method::POST,
            &state(""),
            json_body(json!([{"key": "ok-1", "value": 1}, {"key": "", "value": 2}])),
        )
        .expect(
            400,
            "ERR_MALFORMED_REQUEST",
            Text::Exact(r#""key" is a required field"#),
        ),
        row(
            "'||' key: save",
            Method::POST,
            &state(""),
            json_body(json!([{"key": "ok-2", "value": 1}, {"key": "a||b", "value": 2}])),
        )
        .expect(400, "ERR_MALFORMED_REQUEST", illegal),
        row("'||' key: get", Method::GET, &state("/a%7C%7Cb"), "")
            .expect(400, "ERR_MALFORMED_REQUEST", illegal)
            .reason("DAPR_STATE_ILLEGAL_KEY"),
        row("'||' key: delete", Method::DELETE, &state("/a%7C%7Cb"), "").expect(
            400,
            "ERR_MALFORMED_REQUEST",
            illegal,
        ),
        row(
            "'||' key: bulk get",
            Method::POST,
            &state("/bulk"),
            json_body(json!({"keys": ["guarded", "a||b"]})),
        )
        .expect(400, "ERR_MALFORMED_REQUEST", illegal),
        row(
            "'||' key: transaction",
            Method::POST,
            &state("/transaction"),
            json_body(json!({"operations": [
                {"operation": "upsert", "request": {"key": "ok-3", "value": 1}},
                {"operation": "upsert", "request": {"key": "a||b", "value": 1}},
            ]})),
        )
        .expect(400, "ERR_MALFORMED_REQUEST", illegal),
        row(
            "unknown transaction operation",
            Method::POST,
            &state("/transaction"),
            json_body(json!({"operations": [
                {"operation": "upsert", "request": {"key": "ok-4", "value": 1}},
                {"operation": "increment", "request": {"key": "counter"}},
            ]})),
        )
        .expect(
            400,
            "ERR_NOT_SUPPORTED_STATE_OPERATION",
            Text::Exact("operation type increment not supported"),
        ),
        row(
            "malformed ETag: save",
            Method::POST,
            &state(""),
            json_body(json!([{"key": "guarded", "value": {"v": 2}, "etag": "not-a-number"}])),
        )
        .expect(
            400,
            "ERR_STATE_SAVE",
            Text::Prefix("failed saving state in state store store: invalid etag value"),
        ),
        row(
            "stale ETag: save",
            Method::POST,
            &state(""),
            json_body(json!([{"key": "guarded", "value": {"v": 2}, "etag": "999999"}])),
        )
        .expect(
            409,
            "ERR_STATE_SAVE",
            Text::Prefix("failed saving state in state store store: possible etag mismatch"),
        ),
        row(
            "malformed ETag: delete",
            Method::DELETE,
            &state("/guarded"),
            "",
        )
        .header("if-match", "not-a-number")
        .expect(
            409,
            "ERR_STATE_DELETE",
            Text::Prefix("failed deleting state with key guarded: possible etag mismatch"),
        ),
        row(
            "stale ETag: transaction",
            Method::POST,
            &state("/transaction"),
            json_body(json!({"operations": [
                {"operation": "upsert", "request": {"key": "ok-5", "value": 1}},
                {"operation": "upsert", "request": {
                    "key": "guarded", "value": {"v": 3}, "etag": format!("{guarded_etag}0")}},
            ]})),
        )
        .expect(
            500,
            "ERR_STATE_TRANSACTION",
            Text::Prefix("error while executing state transaction: "),
        ),
        // Upstream cuts the body at the limit; the JSON decoder's read error becomes a
        // malformed request.
        row(
            "value past --max-body-size",
            Method::POST,
            &state(""),
            oversize,
        ),
    ]
}

/// Keys the failed calls above (and the SDK's below) would have written.
const NEVER_WRITTEN: &[&str] = &[
    "k",
    "malformed",
    "object",
    "tx-malformed",
    "ok-1",
    "ok-2",
    "ok-3",
    "ok-4",
    "ok-5",
    "big-http",
    "ok-g1",
    "ok-g2",
    "ok-g3",
    "big-grpc",
];

async fn redis_keys(store: &StoreUnderTest) -> String {
    let mut redis = wire::connect(store.redis().port()).await;
    wire::redis_command(&mut redis, &["DBSIZE"]).await
}

async fn guarded(daprd: &Daprd) -> (Value, String) {
    let response = http::get(&state_url(daprd, "/guarded")).await.unwrap();
    assert_eq!(response.status.as_u16(), 200, "{}", response.text());
    (
        response.json().unwrap(),
        response.header("etag").unwrap().to_owned(),
    )
}

async fn healthy(daprd: &Daprd) {
    let health = http::get(&format!("{}/v1.0/healthz", daprd.base_url()))
        .await
        .unwrap();
    assert_eq!(health.status.as_u16(), 204, "{}", daprd.log_tail(30));
    let metadata = http::get(&format!("{}/v1.0/metadata", daprd.base_url()))
        .await
        .unwrap();
    assert_eq!(metadata.status.as_u16(), 200, "{}", daprd.log_tail(30));
    assert!(daprd.process().exited().is_none(), "{}", daprd.log_tail(30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_with_upstreams_errors_and_writes_nothing() {
    // No retries: with redis' defaults every call to a dead server takes seconds.
    let store = StoreUnderTest::start_with(Kind::Redis, &[("redisMaxRetries", "0")]).await;
    let daprd = store.sidecar("bad-app", &["--max-body-size", LIMIT]).await;
    let saved = http::post_json(
        &state_url(&daprd, ""),
        &json!([{"key": "guarded", "value": {"v": 1}}]),
    )
    .await
    .unwrap();
    assert_eq!(saved.status.as_u16(), 204, "{}", saved.text());
    let (_, etag) = guarded(&daprd).await;
    let keys_before = redis_keys(&store).await;

    let mut failures = Vec::new();
    for row in table(&etag) {
        failures.extend(row.run(&daprd).await);
    }
    let grpc_failures = sdk_failures(
        &daprd,
        GRPC_SCRIPT,
        &[
            ("STORE", STORE),
            ("ETAG", &etag),
            ("OVERSIZE", &OVERSIZE.to_string()),
        ],
    )
    .await;
    failures.extend(
        grpc_failures
            .into_iter()
            .map(|failure| format!("gRPC {failure}")),
    );

    // Nothing was written: not one key more in redis, the guarded value untouched.
    assert_eq!(redis_keys(&store).await, keys_before, "{failures:#?}");
    assert_eq!(
        guarded(&daprd).await,
        (json!({"v": 1}), etag),
        "{failures:#?}"
    );
    for key in NEVER_WRITTEN {
        let response = http::get(&state_url(&daprd, &format!("/{key}")))
            .await
            .unwrap();
        assert_eq!(
            response.status.as_u16(),
            204,
            "{key} was written; {failures:#?}"
        );
    }
    healthy(&daprd).await;

    // The store goes away under the sidecar: upstream's 500s, promptly, and no crash.
    store.redis().process().kill().await.unwrap();
    let calls = [
        (
            Method::GET,
            state_url(&daprd, "/guarded"),
            Bytes::new(),
            "ERR_STATE_GET",
            "fail to get guarded from state store store: ",
        ),
        (
            Method::POST,
            state_url(&daprd, ""),
            json_body(json!([{"key": "while-down", "value": 1}])),
            "ERR_STATE_SAVE",
            "failed saving state in state store store: ",
        ),
        (
            Method::POST,
            state_url(&daprd, "/transaction"),
            json_body(
                json!({"operations": [{"operation": "upsert", "request": {"key": "tx-down", "value": 1}}]}),
            ),
            "ERR_STATE_TRANSACTION",
            "error while executing state transaction: ",
        ),
    ];
    for (method, url, body, code, prefix) in calls {
        let started = Instant::now();
        let response = http::request(
            method.clone(),
            &url,
            &[("content-type", "application/json")],
            body,
        )
        .await
        .unwrap_or_else(|err| panic!("{method} {url} with the store down: {err}"));
        let (status, error_code, message) = http_error(&response);
        if (status, error_code.as_str()) != (500, code) || !message.starts_with(prefix) {
            failures.push(format!(
                "store down: {method} {url}: got {status} {error_code} {message:?}, \
                 expected 500 {code} {prefix:?}..."
            ));
        }
        if started.elapsed() > Duration::from_secs(15) {
            failures.push(format!(
                "store down: {method} {url} took {:?}",
                started.elapsed()
            ));
        }
    }
    let down_failures = sdk_failures(&daprd, GRPC_DOWN_SCRIPT, &[("STORE", STORE)]).await;
    failures.extend(
        down_failures
            .into_iter()
            .map(|failure| format!("gRPC store down: {failure}")),
    );
    healthy(&daprd).await;
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test]
async fn without_state_stores_every_call_says_not_configured() {
    let daprd = Daprd::builder("no-stores-app").start().await.unwrap();
    let mut failures = row("no stores: get", Method::GET, "/v1.0/state/any/k", "")
        .expect(
            500,
            "ERR_STATE_STORE_NOT_CONFIGURED",
            Text::Exact("state store any is not configured"),
        )
        .reason("DAPR_STATE_NOT_CONFIGURED")
        .run(&daprd)
        .await;
    failures.extend(
        row(
            "no stores: save",
            Method::POST,
            "/v1.0/state/any",
            json_body(json!([{"key": "k", "value": 1}])),
        )
        .expect(
            500,
            "ERR_STATE_STORE_NOT_CONFIGURED",
            Text::Exact("state store any is not configured"),
        )
        .run(&daprd)
        .await,
    );
    failures.extend(sdk_failures(&daprd, NOT_CONFIGURED_SCRIPT, &[]).await);
    assert!(failures.is_empty(), "{failures:#?}");
}

/// The gRPC rows of the table, through the SDK (and its raw stub where the SDK cannot
/// express the bad request).
const GRPC_SCRIPT: &str = r#"
from dapr.clients import DaprClient
from dapr.clients.grpc._state import StateItem
from dapr.clients.grpc._request import TransactionalStateOperation
from dapr.proto import api_v1, common_v1

STORE = os.environ['STORE']
ETAG = os.environ['ETAG']
OVERSIZE = int(os.environ['OVERSIZE'])

with DaprClient(max_grpc_message_length=4 * OVERSIZE) as d:
    for what, call in [
        ('get', lambda: d.get_state('nope', 'k')),
        ('save', lambda: d.save_state('nope', 'k', 'v')),
        ('delete', lambda: d.delete_state('nope', 'k')),
        ('bulk get', lambda: d.get_bulk_state('nope', ['k'])),
        ('transaction', lambda: d.execute_state_transaction('nope', [TransactionalStateOperation(key='k', data='v')])),
        ('query', lambda: d.query_state('nope', '{}')),
    ]:
        expect_error(f'unknown store: {what}', grpc_error(what, call), 'INVALID_ARGUMENT',
                     'DAPR_STATE_NOT_FOUND', message='state store nope is not found')

    expect_error('empty key', grpc_error('empty key', lambda: d.save_state(STORE, '', 'v')),
                 'INVALID_ARGUMENT', 'ERR_STATE_SAVE', message='state key cannot be empty')
    expect_error('empty key in bulk', grpc_error('empty key in bulk', lambda: d.save_bulk_state(STORE, [
        StateItem(key='ok-g1', value='v'), StateItem(key='', value='v')])),
        'INVALID_ARGUMENT', 'ERR_STATE_SAVE', message='state key cannot be empty')

    illegal = "input key/keyPrefix 'a||b' can't contain '||'"
    for what, call in [
        ('get', lambda: d.get_state(STORE, 'a||b')),
        ('save', lambda: d.save_bulk_state(STORE, [StateItem(key='ok-g2', value='v'), StateItem(key='a||b', value='v')])),
        ('delete', lambda: d.delete_state(STORE, 'a||b')),
        ('bulk get', lambda: d.get_bulk_state(STORE, ['guarded', 'a||b'])),
        ('transaction', lambda: d.execute_state_transaction(STORE, [
            TransactionalStateOperation(key='ok-g3', data='v'), TransactionalStateOperation(key='a||b', data='v')])),
    ]:
        expect_error(f"'||' key: {what}", grpc_error(what, call), 'INVALID_ARGUMENT',
                     'DAPR_STATE_ILLEGAL_KEY', message=illegal)

    request = api_v1.ExecuteStateTransactionRequest(storeName=STORE, operations=[
        api_v1.TransactionalStateOperation(operationType='increment', request=common_v1.StateItem(key='counter')),
    ])
    expect_error('unknown operation', grpc_error('unknown operation', lambda: d._stub.ExecuteStateTransaction(request)),
                 'UNIMPLEMENTED', 'ERR_NOT_SUPPORTED_STATE_OPERATION',
                 message='operation type increment not supported')

    expect_error('malformed etag', grpc_error('malformed etag', lambda: d.save_state(STORE, 'guarded', 'x', etag='not-a-number')),
                 'INVALID_ARGUMENT', 'ERR_STATE_SAVE',
                 prefix=f'failed saving state in state store {STORE}: invalid etag value')
    expect_error('stale etag', grpc_error('stale etag', lambda: d.save_state(STORE, 'guarded', 'x', etag=ETAG + '0')),
                 'ABORTED', 'ERR_STATE_SAVE',
                 prefix=f'failed saving state in state store {STORE}: possible etag mismatch')
    expect_error('stale etag delete', grpc_error('stale etag delete', lambda: d.delete_state(STORE, 'guarded', etag=ETAG + '0')),
                 'ABORTED', 'ERR_STATE_DELETE',
                 prefix='failed deleting state with key guarded: possible etag mismatch')

    err = grpc_error('oversize', lambda: d.save_state(STORE, 'big-grpc', 'x' * OVERSIZE))
    expect_error('oversize', err, 'RESOURCE_EXHAUSTED', None)

finish()
"#;

/// The gRPC calls with redis-server gone.
const GRPC_DOWN_SCRIPT: &str = r#"
from dapr.clients import DaprClient
STORE = os.environ['STORE']
with DaprClient() as d:
    expect_error('get while down', grpc_error('get', lambda: d.get_state(STORE, 'guarded')),
                 'INTERNAL', 'ERR_STATE_GET', prefix=f'fail to get guarded from state store {STORE}: ')
    expect_error('save while down', grpc_error('save', lambda: d.save_state(STORE, 'while-down', 'v')),
                 'INTERNAL', 'ERR_STATE_SAVE', prefix=f'failed saving state in state store {STORE}: ')
finish()
"#;

/// The gRPC calls of a sidecar without state stores.
const NOT_CONFIGURED_SCRIPT: &str = r#"
from dapr.clients import DaprClient
with DaprClient() as d:
    for call in [lambda: d.get_state('any', 'k'), lambda: d.save_state('any', 'k', 'v')]:
        expect_error('no stores', grpc_error('no stores', call), 'FAILED_PRECONDITION',
                     'DAPR_STATE_NOT_CONFIGURED', message='state store any is not configured')
finish()
"#;

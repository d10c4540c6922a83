//! Bindings across processes: the official Python SDK's `invoke_binding` (gRPC) and the
//! HTTP API against every built-in output binding, each effect checked on the real server
//! with a separate client (`redis-cli`, `psql`, the file system, the target HTTP server,
//! a subscriber sidecar); input bindings (`bindings.cron`, `bindings.mqtt3`,
//! `bindings.rabbitmq`) delivering to an HTTP app (`apps/bindings_http.py`, which answers
//! daprd's `OPTIONS` probe) and to a gRPC app written with the SDK's `dapr.ext.grpc.App`
//! (`apps/bindings_grpc.py`); and upstream's `ERR_INVOKE_OUTPUT_BINDING` failures.
//!
//! The apps append every request or event to a JSON-lines file, read back with the
//! pub/sub tests' helpers.

use std::time::Duration;

use dapr_testkit::{Daprd, Mosquitto, Postgres, RabbitMq, Redis, http};
use serde_json::{Value, json};

use crate::pubsub::{Received, SubscriberApp, TestDir, on_path, wait_for_events, wait_for_log};
use crate::state::{http_error, sdk_failures};
use crate::support::{run_sdk, tool};

/// Bound on waiting for input events.
const WAIT: Duration = Duration::from_secs(60);

/// Writes `resources/<name>.yaml`: a Component `name` of type `bindings.<kind>` with
/// `metadata` (values written as YAML double-quoted strings).
fn component(dir: &TestDir, name: &str, kind: &str, metadata: &[(&str, &str)]) {
    let mut yaml = format!(
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: {name}\nspec:\n  \
         type: bindings.{kind}\n  version: v1\n  metadata:\n"
    );
    for (key, value) in metadata {
        yaml.push_str(&format!(
            "  - name: {key}\n    value: {}\n",
            serde_json::to_string(value).unwrap()
        ));
    }
    dir.write(&format!("{name}.yaml"), &yaml);
}

/// A sidecar without an app over `dir`'s resources.
async fn sidecar(app_id: &str, dir: &TestDir) -> Daprd {
    Daprd::builder(app_id)
        .resources_path(dir.resources())
        .start()
        .await
        .unwrap()
}

/// A sidecar over `dir`'s resources for the app on `port` speaking `protocol`.
async fn sidecar_for(app_id: &str, dir: &TestDir, port: u16, protocol: &str) -> Daprd {
    Daprd::builder(app_id)
        .resources_path(dir.resources())
        .app_port(port)
        .app_protocol(protocol)
        .start()
        .await
        .unwrap()
}

/// Runs `script` with the SDK (see [`sdk_failures`]) and fails the test on any failed check.
async fn sdk_checks(daprd: &Daprd, script: &str, env: &[(&str, &str)]) {
    let failures = sdk_failures(daprd, script, env).await;
    assert!(
        failures.is_empty(),
        "{failures:#?}\nsidecar log:\n{}",
        daprd.log_tail(30)
    );
}

/// `POST /v1.0/bindings/{name}` with `body`.
async fn invoke_over_http(daprd: &Daprd, name: &str, body: Value) -> http::Response {
    http::post_json(&format!("{}/v1.0/bindings/{name}", daprd.base_url()), &body)
        .await
        .unwrap()
}

/// One `redis-cli` command against `redis`.
async fn redis_cli(redis: &Redis, args: &[&str]) -> String {
    let port = redis.port().to_string();
    let mut all = vec!["-h", "127.0.0.1", "-p", &port, "--raw"];
    all.extend_from_slice(args);
    tool("redis-cli", "redis-tools", &all).await
}

/// The events an app recorded on `path`, by method.
fn requests<'a>(events: &'a [Received], path: &str, method: &str) -> Vec<&'a Received> {
    on_path(events, path)
        .into_iter()
        .filter(|event| event.event["method"] == method)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_output_binding_writes_reads_deletes_and_increments_keys() {
    let redis = Redis::start().await.unwrap();
    let dir = TestDir::new();
    component(&dir, "cache", "redis", &[("redisHost", &redis.host())]);
    let daprd = sidecar("bindings-redis", &dir).await;
    redis_cli(&redis, &["SET", "written-by-cli", "from cli"]).await;

    sdk_checks(&daprd, REDIS_SCRIPT, &[]).await;

    assert_eq!(redis_cli(&redis, &["GET", "k1"]).await, "v1");
    let ttl: i64 = redis_cli(&redis, &["TTL", "k1"]).await.parse().unwrap();
    assert!((1..=100).contains(&ttl), "TTL of k1: {ttl}");
    assert_eq!(redis_cli(&redis, &["TTL", "plain"]).await, "-1");
    assert_eq!(redis_cli(&redis, &["EXISTS", "k2"]).await, "0");
    assert_eq!(redis_cli(&redis, &["EXISTS", "k3"]).await, "0");
    assert_eq!(redis_cli(&redis, &["GET", "counter"]).await, "3");
    let ttl: i64 = redis_cli(&redis, &["TTL", "counter"])
        .await
        .parse()
        .unwrap();
    assert!((1..=60).contains(&ttl), "TTL of counter: {ttl}");

    // Over HTTP the data is the JSON text of the value: a string keeps its quotes.
    let created = invoke_over_http(
        &daprd,
        "cache",
        json!({"operation": "create", "data": "over http", "metadata": {"key": "k4"}}),
    )
    .await;
    assert_eq!(created.status.as_u16(), 204, "{}", created.text());
    assert_eq!(redis_cli(&redis, &["GET", "k4"]).await, "\"over http\"");
    let got = invoke_over_http(
        &daprd,
        "cache",
        json!({"operation": "get", "metadata": {"key": "k4"}}),
    )
    .await;
    assert_eq!(
        (got.status.as_u16(), got.text()),
        (200, "\"over http\"".to_owned())
    );
}

const REDIS_SCRIPT: &str = r#"
from dapr.clients import DaprClient

with DaprClient() as d:
    r = d.invoke_binding('cache', 'create', b'v1', {'key': 'k1', 'ttlInSeconds': '100'})
    check('create answers nothing', r.data, b'')
    check('get', d.invoke_binding('cache', 'get', '', {'key': 'k1'}).data, b'v1')
    d.invoke_binding('cache', 'create', b'no ttl', {'key': 'plain'})
    check('get without ttl', d.invoke_binding('cache', 'get', '', {'key': 'plain'}).data, b'no ttl')
    check('get missing', d.invoke_binding('cache', 'get', '', {'key': 'never'}).data, b'')
    check('get written by redis-cli',
          d.invoke_binding('cache', 'get', '', {'key': 'written-by-cli'}).data, b'from cli')

    d.invoke_binding('cache', 'create', b'short-lived', {'key': 'k2'})
    d.invoke_binding('cache', 'delete', '', {'key': 'k2'})
    check('get deleted', d.invoke_binding('cache', 'get', '', {'key': 'k2'}).data, b'')

    d.invoke_binding('cache', 'create', b'once', {'key': 'k3'})
    check('get and delete',
          d.invoke_binding('cache', 'get', '', {'key': 'k3', 'delete': 'true'}).data, b'once')

    for _ in range(3):
        r = d.invoke_binding('cache', 'increment', '', {'key': 'counter', 'ttlInSeconds': '60'})
        check('increment answers nothing', r.data, b'')
    check('counter', d.invoke_binding('cache', 'get', '', {'key': 'counter'}).data, b'3')

finish()
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_output_binding_executes_and_queries() {
    let postgres = Postgres::start().await.unwrap();
    let dir = TestDir::new();
    component(
        &dir,
        "db",
        "postgresql",
        &[("connectionString", &postgres.connection_string())],
    );
    let daprd = sidecar("bindings-postgres", &dir).await;

    sdk_checks(&daprd, POSTGRES_SCRIPT, &[]).await;

    let port = postgres.port().to_string();
    let rows = tool(
        "psql",
        "postgresql-client",
        &[
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-At",
            "-c",
            "SELECT id, name, tags->>'a' FROM items ORDER BY id",
        ],
    )
    .await;
    assert_eq!(rows, "1|one|1\n2|two|");

    // The same over HTTP: the answer is the rows, the metadata comes as headers.
    let response = invoke_over_http(
        &daprd,
        "db",
        json!({"operation": "query", "metadata": {"sql": "SELECT count(*) FROM items"}}),
    )
    .await;
    assert_eq!(response.status.as_u16(), 200, "{}", response.text());
    assert_eq!(response.json::<Value>().unwrap(), json!([[2]]));
    assert_eq!(response.header("metadata.operation"), Some("query"));
}

const POSTGRES_SCRIPT: &str = r#"
from dapr.clients import DaprClient

INSERT = 'INSERT INTO items (id, name, tags) VALUES ($1, $2, $3)'
with DaprClient() as d:
    d.invoke_binding('db', 'exec', '', {
        'sql': 'CREATE TABLE items (id integer PRIMARY KEY, name text NOT NULL, tags jsonb)'})
    r = d.invoke_binding('db', 'exec', '', {'sql': INSERT,
                                            'params': json.dumps([1, 'one', '{"b": 2, "a": 1}'])})
    check('rows affected', r.binding_metadata.get('rows-affected'), '1')
    check('exec operation', r.binding_metadata.get('operation'), 'exec')
    check('exec sql', r.binding_metadata.get('sql'), INSERT)
    for key in ['start-time', 'end-time', 'duration']:
        if not r.binding_metadata.get(key):
            failures.append(f'exec metadata lacks {key}: {r.binding_metadata}')
    r = d.invoke_binding('db', 'exec', '', {'sql': INSERT, 'params': json.dumps([2, 'two', None])})
    check('second insert', r.binding_metadata.get('rows-affected'), '1')

    r = d.invoke_binding('db', 'query', '', {'sql': 'SELECT id, name, tags FROM items ORDER BY id'})
    check('query rows', json.loads(r.data), [[1, 'one', {'a': 1, 'b': 2}], [2, 'two', None]])
    check('query operation', r.binding_metadata.get('operation'), 'query')
    r = d.invoke_binding('db', 'query', '', {'sql': 'SELECT name FROM items WHERE id = $1',
                                             'params': '[2]'})
    check('query with params', json.loads(r.data), [['two']])

    expect_error('duplicate key', grpc_error('duplicate key', lambda: d.invoke_binding(
        'db', 'exec', '', {'sql': INSERT, 'params': json.dumps([1, 'again', None])})),
        'INTERNAL', 'ERR_INVOKE_OUTPUT_BINDING', prefix='error invoking output binding db: ',
        contains='duplicate key')
    expect_error('no sql', grpc_error('no sql', lambda: d.invoke_binding('db', 'query', '', {})),
        'INTERNAL', 'ERR_INVOKE_OUTPUT_BINDING', prefix='error invoking output binding db: ',
        contains='sql')

finish()
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn localstorage_output_binding_stays_inside_its_root() {
    let dir = TestDir::new();
    let outside = tempfile::tempdir().unwrap();
    let outside = outside.path().canonicalize().unwrap();
    let root = outside.join("root");
    std::fs::create_dir(&root).unwrap();
    let root_text = root.display().to_string();
    component(&dir, "files", "localstorage", &[("rootPath", &root_text)]);
    let daprd = sidecar("bindings-files", &dir).await;

    sdk_checks(&daprd, LOCALSTORAGE_SCRIPT, &[("ROOT", &root_text)]).await;

    assert_eq!(
        std::fs::read_to_string(root.join("kept/note.txt")).unwrap(),
        "kept note"
    );
    assert!(!root.join("a/b.txt").exists());
    let mut names: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names.len(), 3, "{names:?}");
    let generated = names.iter().find(|name| name.len() == 36).unwrap();
    assert_eq!(
        std::fs::read_to_string(root.join(generated)).unwrap(),
        "anonymous"
    );
    // Nothing escaped the root.
    let mut beside: Vec<String> = std::fs::read_dir(&outside)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    beside.sort();
    assert_eq!(beside, ["root"]);

    // Over HTTP: a JSON string is unquoted, and base64 text is decoded.
    let created = invoke_over_http(
        &daprd,
        "files",
        json!({"operation": "create", "data": "aGVsbG8=", "metadata": {"fileName": "b64.txt"}}),
    )
    .await;
    assert_eq!(created.status.as_u16(), 200, "{}", created.text());
    assert_eq!(
        created.json::<Value>().unwrap(),
        json!({"fileName": "b64.txt"})
    );
    assert_eq!(
        std::fs::read_to_string(root.join("b64.txt")).unwrap(),
        "hello"
    );
    let escape = invoke_over_http(
        &daprd,
        "files",
        json!({"operation": "create", "data": "x", "metadata": {"fileName": "a/../../up.txt"}}),
    )
    .await;
    assert_eq!(
        http_error(&escape),
        (
            500,
            "ERR_INVOKE_OUTPUT_BINDING".to_owned(),
            "error invoking output binding files: error getting absolute path for file \
             a/../../up.txt: the file name points outside rootPath"
                .to_owned()
        )
    );
    assert!(!outside.join("up.txt").exists());
}

const LOCALSTORAGE_SCRIPT: &str = r#"
from dapr.clients import DaprClient

ROOT = os.environ['ROOT']
OUTSIDE = 'error invoking output binding files: error getting absolute path for file {}: the file name points outside rootPath'
with DaprClient() as d:
    r = d.invoke_binding('files', 'create', b'hello world', {'fileName': 'a/b.txt'})
    check('create', json.loads(r.data), {'fileName': 'a/b.txt'})
    d.invoke_binding('files', 'create', b'kept note', {'fileName': 'kept/note.txt'})
    generated = json.loads(d.invoke_binding('files', 'create', b'anonymous').data)['fileName']
    if len(generated) != 36:
        failures.append(f'generated name {generated!r} is not a UUID')
    check('get', d.invoke_binding('files', 'get', '', {'fileName': 'a/b.txt'}).data, b'hello world')

    everything = sorted([f'{ROOT}/a/b.txt', f'{ROOT}/kept/note.txt', f'{ROOT}/{generated}'])
    listed = json.loads(d.invoke_binding('files', 'list').data)
    check('list', sorted(listed), everything)
    check('list order', listed, sorted(listed))
    check('list a directory', json.loads(d.invoke_binding('files', 'list', '', {'fileName': 'kept'}).data),
          [f'{ROOT}/kept/note.txt'])

    d.invoke_binding('files', 'delete', '', {'fileName': 'a/b.txt'})
    expect_error('get deleted', grpc_error('get deleted', lambda: d.invoke_binding(
        'files', 'get', '', {'fileName': 'a/b.txt'})), 'INTERNAL', 'ERR_INVOKE_OUTPUT_BINDING',
        message=f'error invoking output binding files: file not found: {ROOT}/a/b.txt')

    for name in ['../escape.txt', 'kept/../../escape.txt']:
        for op in ['create', 'get', 'delete', 'list']:
            expect_error(f'{op} {name}', grpc_error(f'{op} {name}', lambda: d.invoke_binding(
                'files', op, b'escaped', {'fileName': name})), 'INTERNAL', 'ERR_INVOKE_OUTPUT_BINDING',
                message=OUTSIDE.format(name))
    expect_error('absolute', grpc_error('absolute', lambda: d.invoke_binding(
        'files', 'create', b'escaped', {'fileName': '/tmp/escape.txt'})), 'INTERNAL',
        'ERR_INVOKE_OUTPUT_BINDING',
        message='error invoking output binding files: error getting absolute path for file '
                '/tmp/escape.txt: absolute file names are not allowed; names are relative to rootPath')
    expect_error('unsupported operation', grpc_error('append', lambda: d.invoke_binding(
        'files', 'append', b'x', {'fileName': 'kept/note.txt'})), 'INTERNAL', 'ERR_INVOKE_OUTPUT_BINDING',
        message='error invoking output binding files: binding files does not support operation append. '
                'supported operations:create get list delete')

finish()
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_output_binding_sends_requests_and_returns_the_answer() {
    let dir = TestDir::new();
    let events = dir.events_file("target");
    let target = SubscriberApp::start("bindings_http.py", &events, &[]).await;
    let url = format!("http://127.0.0.1:{}/base", target.port());
    component(&dir, "web", "http", &[("url", &url)]);
    let daprd = sidecar("bindings-http", &dir).await;

    sdk_checks(&daprd, HTTP_SCRIPT, &[]).await;

    let response = invoke_over_http(
        &daprd,
        "web",
        json!({"operation": "put", "data": {"a": 1}, "metadata": {"path": "over-http"}}),
    )
    .await;
    assert_eq!(response.status.as_u16(), 200, "{}", response.text());
    assert_eq!(
        response.json::<Value>().unwrap(),
        json!({"method": "PUT", "path": "/base/over-http"})
    );
    assert_eq!(response.header("metadata.statuscode"), Some("200"));
    assert_eq!(response.header("metadata.x-reply"), Some("from-app"));

    let seen = crate::pubsub::read_events(&events);
    let posted = requests(&seen, "/base/items/7", "POST");
    assert_eq!(posted.len(), 1, "{seen:#?}");
    let request = &posted[0].event;
    assert_eq!(request["body"], r#"{"n": 1}"#);
    assert_eq!(request["headers"]["x-trace-me"], "yes");
    assert_eq!(request["headers"]["x-api-key"], "k1");
    assert_eq!(
        request["headers"]["content-type"],
        "application/json; charset=utf-8"
    );
    assert_eq!(
        request["headers"]["accept"],
        "application/json; charset=utf-8"
    );
    assert!(
        request["headers"].get("lowercase").is_none(),
        "metadata starting in lower case is not a header: {request}"
    );
    let got = requests(&seen, "/base/q", "GET");
    assert_eq!(got.len(), 1, "{seen:#?}");
    assert_eq!(got[0].event["body"], "", "GET carries no body");
    assert_eq!(
        requests(&seen, "/base/created", "POST").len(),
        1,
        "{seen:#?}"
    );
    assert_eq!(
        requests(&seen, "/base/removed", "DELETE").len(),
        1,
        "{seen:#?}"
    );
    let put = requests(&seen, "/base/over-http", "PUT");
    assert_eq!(put.len(), 1, "{seen:#?}");
    assert_eq!(put[0].event["body"], r#"{"a":1}"#);
}

const HTTP_SCRIPT: &str = r#"
from dapr.clients import DaprClient

with DaprClient() as d:
    r = d.invoke_binding('web', 'post', b'{"n": 1}', {
        'path': 'items/7', 'X-Trace-Me': 'yes', 'X-Api-Key': 'k1', 'lowercase': 'no'})
    check('post answer', json.loads(r.data), {'method': 'POST', 'path': '/base/items/7'})
    check('statusCode', r.binding_metadata.get('statusCode'), '200')
    check('status', r.binding_metadata.get('status'), '200 OK')
    check('response header', r.binding_metadata.get('X-Reply'), 'from-app')
    check('content type header', r.binding_metadata.get('Content-Type'), 'application/json')

    r = d.invoke_binding('web', 'get', b'ignored', {'path': 'q'})
    check('get answer', json.loads(r.data), {'method': 'GET', 'path': '/base/q'})
    r = d.invoke_binding('web', 'create', b'{}', {'path': 'created'})
    check('create is post', json.loads(r.data), {'method': 'POST', 'path': '/base/created'})
    r = d.invoke_binding('web', 'delete', b'', {'path': 'removed'})
    check('delete', json.loads(r.data), {'method': 'DELETE', 'path': '/base/removed'})

    expect_error('404', grpc_error('404', lambda: d.invoke_binding('web', 'get', '', {'path': 'status/404'})),
                 'INTERNAL', 'ERR_INVOKE_OUTPUT_BINDING',
                 message='error invoking output binding web: received status code 404')
    r = d.invoke_binding('web', 'get', '', {'path': 'status/404', 'errorIfNot2XX': 'false'})
    check('404 allowed', (r.data, r.binding_metadata.get('statusCode')), (b'status page', '404'))

finish()
"#;

/// The SDK script of the MQTT test: publishes `msg-<n>` through `mqtt-out` until the
/// receiving app recorded an event (the subscriber may not be subscribed yet), then one
/// final `last`; prints every message sent as JSON.
const MQTT_SCRIPT: &str = r#"
import json, os, time
from dapr.clients import DaprClient

def received():
    try:
        with open(os.environ['EVENTS_FILE'], encoding='utf-8') as f:
            return any(json.loads(line)['event']['method'] == 'POST' for line in f if line.strip())
    except FileNotFoundError:
        return False

sent = []
with DaprClient() as d:
    for n in range(60):
        message = f'msg-{n}'
        d.invoke_binding('mqtt-out', 'create', message.encode())
        sent.append(message)
        deadline = time.monotonic() + 1
        while time.monotonic() < deadline and not received():
            time.sleep(0.05)
        if received():
            break
    d.invoke_binding('mqtt-out', 'create', b'last')
    sent.append('last')
print(json.dumps(sent))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt3_output_reaches_an_input_binding_on_another_sidecar() {
    let mosquitto = Mosquitto::start().await.unwrap();
    let url = mosquitto.url();
    let sender_dir = TestDir::new();
    component(
        &sender_dir,
        "mqtt-out",
        "mqtt3",
        &[
            ("url", &url),
            ("topic", "e2e/bindings"),
            ("consumerID", "sender"),
            ("direction", "output"),
        ],
    );
    let receiver_dir = TestDir::new();
    component(
        &receiver_dir,
        "mqtt-in",
        "mqtt3",
        &[
            ("url", &url),
            ("topic", "e2e/bindings"),
            ("consumerID", "receiver"),
            ("direction", "input"),
            ("route", "/mqtt-events"),
        ],
    );
    let events = receiver_dir.events_file("receiver");
    let app = SubscriberApp::start("bindings_http.py", &events, &[]).await;
    let receiver = sidecar_for("bindings-mqtt-receiver", &receiver_dir, app.port(), "http").await;
    wait_for_log(&receiver, "reading from input binding mqtt-in", 1).await;
    let sender = sidecar("bindings-mqtt-sender", &sender_dir).await;

    let events_text = events.display().to_string();
    let out = run_sdk(&sender, MQTT_SCRIPT, &[("EVENTS_FILE", &events_text)]).await;
    let sent: Vec<String> = serde_json::from_str(out.trim()).unwrap();
    let received = wait_for_events(&events, &receiver, "the last message", WAIT, |events| {
        requests(events, "/mqtt-events", "POST")
            .iter()
            .any(|event| event.event["body"] == "last")
    })
    .await;
    let posts = requests(&received, "/mqtt-events", "POST");
    for post in &posts {
        let body = post.event["body"].as_str().unwrap();
        assert!(
            sent.iter().any(|message| message == body),
            "{body:?} was never sent: {sent:?}"
        );
        assert_eq!(post.event["headers"]["topic"], "e2e/bindings");
        assert_eq!(post.event["headers"]["content-type"], "application/json");
    }
    // The direction declared input: the app was not asked.
    assert!(
        requests(&received, "/mqtt-events", "OPTIONS").is_empty(),
        "{received:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_output_to_input_round_trip_with_redelivery() {
    let rabbitmq = RabbitMq::shared().await.unwrap();
    let dir = TestDir::new();
    let queue = format!("e2e-bindings-{}", std::process::id());
    component(
        &dir,
        "rabbit",
        "rabbitmq",
        &[
            ("host", &rabbitmq.url()),
            ("queueName", &queue),
            ("route", "/rabbit-events"),
        ],
    );
    let events = dir.events_file("app");
    let app = SubscriberApp::start(
        "bindings_http.py",
        &events,
        &[("FAIL_FIRST", "/rabbit-events".to_owned())],
    )
    .await;
    let daprd = sidecar_for("bindings-rabbit", &dir, app.port(), "http").await;
    wait_for_log(&daprd, "reading from input binding rabbit", 1).await;

    sdk_checks(&daprd, RABBIT_SCRIPT, &[]).await;

    // The first delivery is refused by the app, so the message is requeued and delivered
    // again; the second one is accepted.
    let received = wait_for_events(&events, &daprd, "the redelivery", WAIT, |events| {
        requests(events, "/rabbit-events", "POST").len() >= 2
    })
    .await;
    let posts = requests(&received, "/rabbit-events", "POST");
    for post in &posts {
        assert_eq!(post.event["body"], r#"{"order": 42}"#, "{received:#?}");
        assert_eq!(
            post.event["headers"]["custom-header"], "v1",
            "{received:#?}"
        );
    }
    assert!(
        !requests(&received, "/rabbit-events", "OPTIONS").is_empty(),
        "the app was asked whether it listens: {received:#?}"
    );
    // Once accepted, the message is gone: no third delivery.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let again = crate::pubsub::read_events(&events);
    assert_eq!(
        requests(&again, "/rabbit-events", "POST").len(),
        2,
        "{again:#?}"
    );
}

const RABBIT_SCRIPT: &str = r#"
from dapr.clients import DaprClient

with DaprClient() as d:
    r = d.invoke_binding('rabbit', 'create', b'{"order": 42}', {'custom-header': 'v1'})
    check('create answers nothing', r.data, b'')
finish()
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cron_delivers_to_an_http_app_that_listens() {
    let dir = TestDir::new();
    component(&dir, "ticker", "cron", &[("schedule", "@every 1s")]);
    component(
        &dir,
        "routed",
        "cron",
        &[("schedule", "@every 1s"), ("route", "/custom-route")],
    );
    component(&dir, "ignored", "cron", &[("schedule", "@every 1s")]);
    let events = dir.events_file("app");
    let app = SubscriberApp::start(
        "bindings_http.py",
        &events,
        &[("NOT_LISTENING", "/ignored".to_owned())],
    )
    .await;
    let daprd = sidecar_for("bindings-cron-http", &dir, app.port(), "http").await;

    let received = wait_for_events(
        &events,
        &daprd,
        "three ticks on each route",
        WAIT,
        |events| {
            requests(events, "/ticker", "POST").len() >= 3
                && requests(events, "/custom-route", "POST").len() >= 3
        },
    )
    .await;
    for path in ["/ticker", "/custom-route"] {
        let first = received
            .iter()
            .position(|event| event.path == path)
            .unwrap();
        assert_eq!(
            received[first].event["method"], "OPTIONS",
            "the app is asked first: {received:#?}"
        );
        for post in requests(&received, path, "POST") {
            let headers = &post.event["headers"];
            assert_eq!(post.event["body"], "", "{post:?}");
            assert_eq!(headers["content-type"], "application/json", "{post:?}");
            assert_eq!(headers["timezone"], "Local", "{post:?}");
            assert!(
                headers["readtimeutc"]
                    .as_str()
                    .is_some_and(|time| time.ends_with(" +0000 UTC")),
                "{post:?}"
            );
        }
    }
    assert!(requests(&received, "/routed", "OPTIONS").is_empty());
    wait_for_log(&daprd, "app has not subscribed to binding ignored.", 1).await;
    let seen = crate::pubsub::read_events(&events);
    assert_eq!(requests(&seen, "/ignored", "OPTIONS").len(), 1, "{seen:#?}");
    assert!(requests(&seen, "/ignored", "POST").is_empty(), "{seen:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cron_delivers_to_a_grpc_app_built_with_the_sdk() {
    let dir = TestDir::new();
    component(&dir, "ticker", "cron", &[("schedule", "@every 1s")]);
    component(&dir, "unlisted", "cron", &[("schedule", "@every 1s")]);
    let events = dir.events_file("app");
    let app = SubscriberApp::start(
        "bindings_grpc.py",
        &events,
        &[("BINDINGS", "ticker".to_owned())],
    )
    .await;
    let daprd = sidecar_for("bindings-cron-grpc", &dir, app.port(), "grpc").await;

    let received = wait_for_events(&events, &daprd, "three ticks", WAIT, |events| {
        on_path(events, "ticker").len() >= 3
    })
    .await;
    for tick in &received {
        assert_eq!(tick.path, "ticker", "{received:#?}");
        assert_eq!(tick.event["data"], "", "{tick:?}");
        assert_eq!(tick.event["metadata"]["timeZone"], "Local", "{tick:?}");
        assert!(
            tick.event["metadata"]["readTimeUTC"]
                .as_str()
                .is_some_and(|time| time.ends_with(" +0000 UTC")),
            "{tick:?}"
        );
    }
    wait_for_log(&daprd, "app has not subscribed to binding unlisted.", 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_binding_errors_over_http_and_the_sdk() {
    let dir = TestDir::new();
    let root = tempfile::tempdir().unwrap();
    component(
        &dir,
        "files",
        "localstorage",
        &[("rootPath", &root.path().display().to_string())],
    );
    component(&dir, "ticker", "cron", &[("schedule", "@every 1h")]);
    let daprd = sidecar("bindings-errors", &dir).await;

    let cases = [
        (
            "nope",
            json!({"operation": "create", "data": "x"}),
            "error invoking output binding nope: couldn't find output binding nope",
        ),
        (
            "files",
            json!({"data": "x", "metadata": {"fileName": "f"}}),
            "error invoking output binding files: operation field is missing from request",
        ),
        (
            "ticker",
            json!({"operation": "create"}),
            "error invoking output binding ticker: couldn't find output binding ticker",
        ),
        (
            "files",
            json!({"operation": "append"}),
            "error invoking output binding files: binding files does not support operation \
             append. supported operations:create get list delete",
        ),
    ];
    for (name, body, message) in cases {
        let response = invoke_over_http(&daprd, name, body).await;
        assert_eq!(
            http_error(&response),
            (
                500,
                "ERR_INVOKE_OUTPUT_BINDING".to_owned(),
                message.to_owned()
            ),
            "{name}"
        );
    }
    assert!(!root.path().join("f").exists());

    sdk_checks(&daprd, ERRORS_SCRIPT, &[]).await;
    assert!(
        std::fs::read_dir(root.path()).unwrap().next().is_none(),
        "nothing was written"
    );
}

const ERRORS_SCRIPT: &str = r#"
from dapr.clients import DaprClient

with DaprClient() as d:
    cases = [
        ('unknown binding', lambda: d.invoke_binding('nope', 'create', b'x'),
         "error invoking output binding nope: couldn't find output binding nope"),
        ('missing operation', lambda: d.invoke_binding('files', '', b'x', {'fileName': 'f'}),
         'error invoking output binding files: operation field is missing from request'),
        ('input-only binding', lambda: d.invoke_binding('ticker', 'create'),
         "error invoking output binding ticker: couldn't find output binding ticker"),
    ]
    for what, call, message in cases:
        expect_error(what, grpc_error(what, call), 'INTERNAL', 'ERR_INVOKE_OUTPUT_BINDING',
                     message=message)
finish()
"#;

//! Bad input and a failing broker for the publish API, across processes: a real `daprd` over
//! real redis-servers, driven over HTTP and over gRPC (the official Python SDK and its raw
//! stub). Unknown and empty component and topic names, topics the component's scopes
//! forbid, payloads that claim to be CloudEvents and are not, bad `rawPayload` and
//! `ttlInSeconds` metadata, bodies past `--max-body-size`, malformed bulk bodies, and
//! redis-server dying under the sidecar all get upstream's status, error code and message,
//! write nothing, and leave the sidecar up. Nothing is lost silently either: every publish
//! that was acknowledged while the broker came and went reaches the subscriber, and a
//! message that is not a CloudEvent ends in the subscription's dead-letter topic.
//!
//! Expected answers are upstream's: `pkg/api/http/http.go` (`onPublish`, `onBulkPublish`),
//! `pkg/api/grpc/grpc.go` (`PublishEvent`, `bulkPublishEvent`), the texts of
//! `pkg/api/errors/pubsub.go` and the codes of `pkg/messages/errorcodes`.

use std::time::{Duration, Instant};

use ::http::Method;
use bytes::Bytes;
use dapr_testkit::{Daprd, Redis, http};
use serde_json::{Value, json};

use crate::pubsub::{
    PUBSUB, Received, SubscriberApp, TestDir, WAIT, on_path, programmatic, wait_for_events,
    wait_subscribed,
};
use crate::state::{error_info_reason, http_error, sdk_failures};
use crate::support::DurableRedis;
use crate::wire;

/// The app id of the sidecars here (the forbidden-topic messages name it).
const APP_ID: &str = "pubsub-bad";
/// The sidecar's body limit, and a payload comfortably past it.
const LIMIT: &str = "1Mi";
const OVERSIZE: usize = 2 * 1024 * 1024;
/// Bound on one publish while the broker is down: it must fail, not hang.
const DOWN_BOUND: Duration = Duration::from_secs(10);

/// What an error message must look like.
#[derive(Debug, Clone, Copy)]
enum Text {
    Exact(&'static str),
    Prefix(&'static str),
}

impl Text {
    fn matches(self, message: &str) -> bool {
        match self {
            Self::Exact(text) => message == text,
            Self::Prefix(text) => message.starts_with(text),
        }
    }
}

/// Upstream's answer to a bad call: HTTP status, `errorCode`, message, ErrorInfo reason.
type Expected = (u16, &'static str, Text, &'static str);

/// One bad HTTP publish and upstream's answer.
struct Row {
    what: &'static str,
    path: String,
    content_type: &'static str,
    body: Bytes,
    status: u16,
    code: &'static str,
    message: Text,
    reason: &'static str,
}

impl Row {
    /// The same call with `content_type` instead of `application/json`.
    fn content_type(mut self, content_type: &'static str) -> Self {
        self.content_type = content_type;
        self
    }

    /// Sends the call; describes every way the answer differs from upstream's.
    async fn run(&self, daprd: &Daprd) -> Vec<String> {
        let url = format!("{}{}", daprd.base_url(), self.path);
        let response = http::request(
            Method::POST,
            &url,
            &[("content-type", self.content_type)],
            self.body.clone(),
        )
        .await
        .unwrap_or_else(|err| panic!("{}: {err}\n{}", self.what, daprd.log_tail(20)));
        let Ok(Value::Object(_)) = response.json::<Value>() else {
            return vec![format!(
                "{}: got {} with a body that is not a JSON error: {:?}",
                self.what,
                response.status,
                response.text()
            )];
        };
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
        let reason = error_info_reason(&response);
        if reason.as_deref() != Some(self.reason) {
            failures.push(format!(
                "{}: ErrorInfo reason {reason:?}, expected {:?} in {}",
                self.what,
                self.reason,
                response.text()
            ));
        }
        failures
    }
}

/// A publish (`bulk` false) or bulk publish of `body` to `target` (`{pubsub}/{topic}`,
/// then any query) expecting `status`, `code`, `message` and ErrorInfo `reason`.
fn row(
    what: &'static str,
    bulk: bool,
    target: &str,
    body: impl Into<Bytes>,
    (status, code, message, reason): Expected,
) -> Row {
    let prefix = if bulk {
        "/v1.0-alpha1/publish/bulk/"
    } else {
        "/v1.0/publish/"
    };
    Row {
        what,
        path: format!("{prefix}{target}"),
        content_type: "application/json",
        body: body.into(),
        status,
        code,
        message,
        reason,
    }
}

/// One valid bulk body.
fn one_entry() -> String {
    json!([{"entryId": "1", "event": {"n": 1}, "contentType": "application/json"}]).to_string()
}

/// The bad HTTP publishes and bulk publishes, each with upstream's answer.
fn http_table() -> Vec<Row> {
    let not_found = (
        404,
        "ERR_PUBSUB_NOT_FOUND",
        Text::Exact("pubsub nope is not found"),
        "DAPR_PUBSUB_NOT_FOUND",
    );
    let name_empty = (
        404,
        "ERR_PUBSUB_EMPTY",
        Text::Exact("pubsub name is empty"),
        "DAPR_PUBSUB_NAME_EMPTY",
    );
    let topic_empty = (
        404,
        "ERR_TOPIC_NAME_EMPTY",
        Text::Exact("topic is empty in pubsub pubsub"),
        "DAPR_PUBSUB_TOPIC_NAME_EMPTY",
    );
    let forbidden = |text| {
        (
            403,
            "ERR_PUBSUB_FORBIDDEN",
            Text::Exact(text),
            "DAPR_PUBSUB_FORBIDDEN",
        )
    };
    let secret = forbidden("topic secret is not allowed for app id pubsub-bad");
    let other = forbidden("topic other is not allowed for app id pubsub-bad");
    let cloud_event = (
        500,
        "ERR_PUBSUB_CLOUD_EVENTS_SER",
        Text::Exact("cannot create cloudevent"),
        "DAPR_PUBSUB_CLOUD_EVENT_CREATION",
    );
    let raw_payload = (
        400,
        "ERR_PUBSUB_REQUEST_METADATA",
        Text::Exact(
            "failed deserializing metadata. Error: rawPayload value must be a valid boolean: \
             actual is 'maybe'",
        ),
        "DAPR_PUBSUB_METADATA_DESERIALIZATION",
    );
    let unmarshal = |text| {
        (
            400,
            "ERR_PUBSUB_EVENTS_SER",
            text,
            "DAPR_PUBSUB_UNMARSHAL_EVENTS",
        )
    };
    let entry_id = (
        400,
        "ERR_PUBSUB_EVENTS_SER",
        Text::Exact(
            "error marshaling events to bytes for topic orders pubsub pubsub. error: entryId is \
             duplicated or not present for entry",
        ),
        "DAPR_PUBSUB_MARSHAL_EVENTS",
    );
    let envelope = |text| {
        (
            400,
            "ERR_PUBSUB_EVENTS_SER",
            text,
            "DAPR_PUBSUB_MARSHAL_ENVELOPE",
        )
    };
    let cloud_events = "application/cloudevents+json";
    let entry = |id: Value, event: Value, content_type: &str| json!({"entryId": id, "event": event, "contentType": content_type});
    let json_entry = |id: &str| entry(json!(id), json!({"n": id}), "application/json");
    let bulk_body = |entries: Vec<Value>| Value::Array(entries).to_string();
    vec![
        row("unknown pubsub", false, "nope/orders", "{}", not_found),
        row(
            "unknown pubsub: bulk",
            true,
            "nope/orders",
            one_entry(),
            not_found,
        ),
        // The component is looked up before the topic is checked.
        row("unknown pubsub, no topic", false, "nope/", "{}", not_found),
        row("empty pubsub name", false, "/orders", "{}", name_empty),
        row(
            "empty pubsub name: bulk",
            true,
            "/orders",
            one_entry(),
            name_empty,
        ),
        row("empty topic", false, "pubsub/", "{}", topic_empty),
        row(
            "empty topic: bulk",
            true,
            "pubsub/",
            one_entry(),
            topic_empty,
        ),
        row("allowedTopics", false, "limited/secret", "{}", secret),
        row(
            "allowedTopics: bulk",
            true,
            "limited/secret",
            one_entry(),
            secret,
        ),
        row("publishingScopes", false, "scoped/other", "{}", other),
        row(
            "publishingScopes: bulk",
            true,
            "scoped/other",
            one_entry(),
            other,
        ),
        row(
            "CloudEvent: not JSON",
            false,
            "pubsub/orders",
            "not json",
            cloud_event,
        )
        .content_type(cloud_events),
        row(
            "CloudEvent: cut off",
            false,
            "pubsub/orders",
            r#"{"id": "#,
            cloud_event,
        )
        .content_type(cloud_events),
        row(
            "CloudEvent: an array",
            false,
            "pubsub/orders",
            "[1, 2]",
            cloud_event,
        )
        .content_type(cloud_events),
        row(
            "CloudEvent: a string",
            false,
            "pubsub/orders",
            r#""text""#,
            cloud_event,
        )
        .content_type(cloud_events),
        row("CloudEvent: empty", false, "pubsub/orders", "", cloud_event)
            .content_type(cloud_events),
        row(
            "CloudEvent: bulk entry",
            true,
            "pubsub/orders",
            bulk_body(vec![
                json_entry("ok-1"),
                entry(json!("2"), json!("not an object"), cloud_events),
            ]),
            cloud_event,
        ),
        row(
            "rawPayload not a boolean",
            false,
            "pubsub/orders?metadata.rawPayload=maybe",
            "{}",
            raw_payload,
        ),
        row(
            "rawPayload not a boolean: bulk",
            true,
            "pubsub/orders?metadata.rawPayload=maybe",
            one_entry(),
            raw_payload,
        ),
        // Upstream's limited reader fails the body read: a publish error, and for a bulk
        // body the JSON decoder's error. The reader's own words follow the prefix; the
        // sidecar API tests pin them.
        row(
            "body past --max-body-size",
            false,
            "pubsub/orders",
            json!({"big": "x".repeat(OVERSIZE)}).to_string(),
            (
                500,
                "ERR_PUBSUB_PUBLISH_MESSAGE",
                Text::Prefix("error when publishing to topic orders in pubsub pubsub: "),
                "DAPR_PUBSUB_PUBLISH_MESSAGE",
            ),
        ),
        row(
            "body past --max-body-size: bulk",
            true,
            "pubsub/orders",
            bulk_body(vec![entry(
                json!("1"),
                json!("x".repeat(OVERSIZE)),
                "text/plain",
            )]),
            unmarshal(Text::Prefix(
                "error when unmarshaling the request for topic orders pubsub pubsub: ",
            )),
        ),
        row(
            "bulk: not JSON",
            true,
            "pubsub/orders",
            "not json",
            unmarshal(Text::Exact(
                "error when unmarshaling the request for topic orders pubsub pubsub: invalid \
                 character 'o' in literal null (expecting 'u')",
            )),
        ),
        row(
            "bulk: cut off",
            true,
            "pubsub/orders",
            r#"[{"entryId": "1""#,
            unmarshal(Text::Exact(
                "error when unmarshaling the request for topic orders pubsub pubsub: unexpected EOF",
            )),
        ),
        row(
            "bulk: an object",
            true,
            "pubsub/orders",
            json!({"entryId": "1", "event": 1}).to_string(),
            unmarshal(Text::Exact(
                "error when unmarshaling the request for topic orders pubsub pubsub: json: cannot \
                 unmarshal object into Go value of type []http.bulkPublishMessageEntry",
            )),
        ),
        row(
            "bulk: entryId not a string",
            true,
            "pubsub/orders",
            bulk_body(vec![entry(json!(1), json!({}), "application/json")]),
            unmarshal(Text::Exact(
                "error when unmarshaling the request for topic orders pubsub pubsub: json: cannot \
                 unmarshal number into Go struct field bulkPublishMessageEntry.entryId of type \
                 string",
            )),
        ),
        row(
            "bulk: duplicate entryId",
            true,
            "pubsub/orders",
            bulk_body(vec![json_entry("ok-2"), json_entry("ok-2")]),
            entry_id,
        ),
        row(
            "bulk: missing entryId",
            true,
            "pubsub/orders",
            bulk_body(vec![
                json_entry("ok-3"),
                json!({"event": {"n": 2}, "contentType": "application/json"}),
            ]),
            entry_id,
        ),
        row(
            "bulk: empty entryId",
            true,
            "pubsub/orders",
            bulk_body(vec![json_entry("ok-4"), json_entry("")]),
            entry_id,
        ),
        row(
            "bulk: event does not fit its content type",
            true,
            "pubsub/orders",
            bulk_body(vec![
                json_entry("ok-5"),
                entry(json!("2"), json!({"n": 2}), "text/plain"),
            ]),
            envelope(Text::Exact(
                "error when marshalling cloud event envelope for topic orders pubsub pubsub: \
                 error: mismatch between contentType and event",
            )),
        ),
        // Upstream converts an entry's event before it checks the entry's id.
        row(
            "bulk: event does not fit, and no entryId",
            true,
            "pubsub/orders",
            bulk_body(vec![
                json!({"event": {"n": 2}, "contentType": "text/plain"}),
            ]),
            envelope(Text::Exact(
                "error when marshalling cloud event envelope for topic orders pubsub pubsub: \
                 error: mismatch between contentType and event",
            )),
        ),
        row(
            "bulk: a null entry",
            true,
            "pubsub/orders",
            "[null]",
            envelope(Text::Exact(
                "error when marshalling cloud event envelope for topic orders pubsub pubsub: \
                 error: mismatch between contentType and event",
            )),
        ),
        row(
            "bulk: binary event not base64",
            true,
            "pubsub/orders",
            bulk_body(vec![
                json_entry("ok-6"),
                entry(json!("2"), json!("!!!"), "application/octet-stream"),
            ]),
            envelope(Text::Exact(
                "error when marshalling cloud event envelope for topic orders pubsub pubsub: \
                 error: unable to decode base64 application/octect-stream data: illegal base64 \
                 data at input byte 0",
            )),
        ),
    ]
}

/// The gRPC rows, through the SDK's raw stub (the SDK's helpers cannot express most of
/// these requests).
const GRPC_SCRIPT: &str = r#"
from dapr.clients import DaprClient
from dapr.proto import api_v1

APP = os.environ['APP_ID']
OVERSIZE = int(os.environ['OVERSIZE'])
CE = 'application/cloudevents+json'

def entry(entry_id, event=b'{"n": 1}', content_type='application/json'):
    return api_v1.BulkPublishRequestEntry(entry_id=entry_id, event=event, content_type=content_type)

def publish(pubsub, topic, data=b'{}', content_type='application/json', metadata=None):
    request = api_v1.PublishEventRequest(pubsub_name=pubsub, topic=topic, data=data,
                                         data_content_type=content_type, metadata=metadata or {})
    return lambda: d._stub.PublishEvent(request)

def bulk(pubsub, topic, entries=None, metadata=None):
    request = api_v1.BulkPublishRequest(pubsub_name=pubsub, topic=topic,
                                        entries=entries or [entry('1')], metadata=metadata or {})
    return lambda: d._stub.BulkPublishEvent(request)

not_found = ('INVALID_ARGUMENT', 'DAPR_PUBSUB_NOT_FOUND', 'pubsub nope is not found')
name_empty = ('INVALID_ARGUMENT', 'DAPR_PUBSUB_NAME_EMPTY', 'pubsub name is empty')
topic_empty = ('INVALID_ARGUMENT', 'DAPR_PUBSUB_TOPIC_NAME_EMPTY', 'topic is empty in pubsub pubsub')
secret = ('PERMISSION_DENIED', 'DAPR_PUBSUB_FORBIDDEN', f'topic secret is not allowed for app id {APP}')
other = ('PERMISSION_DENIED', 'DAPR_PUBSUB_FORBIDDEN', f'topic other is not allowed for app id {APP}')
cloud_event = ('INVALID_ARGUMENT', 'DAPR_PUBSUB_CLOUD_EVENT_CREATION', 'cannot create cloudevent')
raw_payload = ('INVALID_ARGUMENT', 'DAPR_PUBSUB_METADATA_DESERIALIZATION',
               "failed deserializing metadata. Error: rawPayload value must be a valid boolean: actual is 'maybe'")
bad_id = ('INVALID_ARGUMENT', 'DAPR_PUBSUB_MARSHAL_EVENTS',
          'error marshaling events to bytes for topic orders pubsub pubsub. error: entryId is duplicated or not present for entry')

with DaprClient(max_grpc_message_length=4 * OVERSIZE) as d:
    rows = [
        ('unknown pubsub', publish('nope', 'orders'), not_found),
        ('unknown pubsub: bulk', bulk('nope', 'orders'), not_found),
        ('unknown pubsub, no topic', publish('nope', ''), not_found),
        ('empty pubsub name', publish('', 'orders'), name_empty),
        ('empty pubsub name: bulk', bulk('', 'orders'), name_empty),
        ('empty topic', publish('pubsub', ''), topic_empty),
        ('empty topic: bulk', bulk('pubsub', ''), topic_empty),
        ('allowedTopics', publish('limited', 'secret'), secret),
        ('allowedTopics: bulk', bulk('limited', 'secret'), secret),
        ('publishingScopes', publish('scoped', 'other'), other),
        ('publishingScopes: bulk', bulk('scoped', 'other'), other),
        ('CloudEvent: not JSON', publish('pubsub', 'orders', b'not json', CE), cloud_event),
        ('CloudEvent: cut off', publish('pubsub', 'orders', b'{"id": ', CE), cloud_event),
        ('CloudEvent: an array', publish('pubsub', 'orders', b'[1, 2]', CE), cloud_event),
        ('CloudEvent: empty', publish('pubsub', 'orders', b'', CE), cloud_event),
        ('CloudEvent: bulk entry', bulk('pubsub', 'orders', [entry('ok-g1'), entry('2', b'not json', CE)]), cloud_event),
        ('rawPayload not a boolean', publish('pubsub', 'orders', metadata={'rawPayload': 'maybe'}), raw_payload),
        ('rawPayload not a boolean: bulk', bulk('pubsub', 'orders', metadata={'rawPayload': 'maybe'}), raw_payload),
        ('bulk: duplicate entry_id', bulk('pubsub', 'orders', [entry('ok-g2'), entry('ok-g2')]), bad_id),
        ('bulk: empty entry_id', bulk('pubsub', 'orders', [entry('ok-g3'), entry('')]), bad_id),
        # Unlike HTTP, upstream's gRPC edge checks an entry's id before its event.
        ('bulk: no entry_id, and not a CloudEvent', bulk('pubsub', 'orders', [entry('', b'not json', CE)]), bad_id),
        ('bulk: not a CloudEvent, then a repeated entry_id',
         bulk('pubsub', 'orders', [entry('1', b'not json', CE), entry('1')]), cloud_event),
    ]
    for what, call, (code, reason, message) in rows:
        expect_error(what, grpc_error(what, call), code, reason, message=message)

    too_large = 'grpc: received message larger than max ('
    expect_error('message past --max-body-size',
                 grpc_error('oversize', publish('pubsub', 'orders', b'x' * OVERSIZE, 'text/plain')),
                 'RESOURCE_EXHAUSTED', None, prefix=too_large)
    expect_error('message past --max-body-size: bulk',
                 grpc_error('oversize bulk', bulk('pubsub', 'orders', [entry('1', b'x' * OVERSIZE, 'text/plain')])),
                 'RESOURCE_EXHAUSTED', None, prefix=too_large)
finish()
"#;

/// A Component of `component_type` named `name` with `metadata`.
fn component(name: &str, component_type: &str, metadata: &[(&str, &str)]) -> String {
    let mut yaml = format!(
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: {name}\nspec:\n  \
         type: {component_type}\n  version: v1\n  metadata:\n"
    );
    for (key, value) in metadata {
        yaml.push_str(&format!("  - name: {key}\n    value: \"{value}\"\n"));
    }
    yaml
}

/// `GET /v1.0/healthz` and `/v1.0/metadata` answer and the process is still running.
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

/// `POST /v1.0/publish/{target}` with a JSON body; the response.
async fn publish_http(daprd: &Daprd, target: &str, body: &Value) -> http::Response {
    http::post_json(&format!("{}/v1.0/publish/{target}", daprd.base_url()), body)
        .await
        .unwrap_or_else(|err| panic!("publishing to {target}: {err}\n{}", daprd.log_tail(20)))
}

/// The first line of redis-server's reply to `args`, on a connection of its own.
async fn redis_reply(redis: &Redis, args: &[&str]) -> String {
    let mut connection = wire::connect(redis.port()).await;
    wire::redis_command(&mut connection, args).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_publishes_get_upstreams_errors_and_publish_nothing() {
    let redis = Redis::start().await.unwrap();
    let dir = TestDir::new();
    let host = redis.host();
    dir.write(
        "pubsub.yaml",
        &component(PUBSUB, "pubsub.redis", &[("redisHost", &host)]),
    );
    dir.write(
        "limited.yaml",
        &component(
            "limited",
            "pubsub.redis",
            &[("redisHost", &host), ("allowedTopics", "allowed")],
        ),
    );
    dir.write(
        "scoped.yaml",
        &component(
            "scoped",
            "pubsub.redis",
            &[
                ("redisHost", &host),
                ("publishingScopes", "pubsub-bad=granted;someone-else=other"),
            ],
        ),
    );
    let daprd = Daprd::builder(APP_ID)
        .resources_path(dir.resources())
        .args(["--max-body-size", LIMIT])
        .start()
        .await
        .unwrap();
    let keys_before = redis_reply(&redis, &["DBSIZE"]).await;

    let mut failures = Vec::new();
    for row in http_table() {
        failures.extend(row.run(&daprd).await);
    }
    healthy(&daprd).await;
    let grpc = sdk_failures(
        &daprd,
        GRPC_SCRIPT,
        &[("APP_ID", APP_ID), ("OVERSIZE", &OVERSIZE.to_string())],
    )
    .await;
    failures.extend(grpc.into_iter().map(|failure| format!("gRPC {failure}")));
    healthy(&daprd).await;

    // Not one stream was written, not even the valid entries in front of a bad one.
    assert_eq!(
        redis_reply(&redis, &["DBSIZE"]).await,
        keys_before,
        "{failures:#?}"
    );
    assert!(failures.is_empty(), "{failures:#?}");

    // The same components take the publishes their scopes allow: the refusals above were
    // for the reasons given.
    for target in ["pubsub/orders", "limited/allowed", "scoped/granted"] {
        let response = publish_http(&daprd, target, &json!({"ok": true})).await;
        assert_eq!(
            response.status.as_u16(),
            204,
            "{target}: {}",
            response.text()
        );
    }
    for stream in ["orders", "allowed", "granted"] {
        assert_eq!(
            redis_reply(&redis, &["XLEN", stream]).await,
            ":1",
            "{stream}"
        );
    }

    // A JSON `null` CloudEvent: upstream decodes it into a nil map and then panics writing
    // to it (the HTTP server drops the connection; on gRPC the process dies). Here it is an
    // empty CloudEvent, completed and published. A `null` bulk body is an empty bulk.
    let response = http::request(
        Method::POST,
        &format!("{}/v1.0/publish/{PUBSUB}/nulls", daprd.base_url()),
        &[("content-type", "application/cloudevents+json")],
        "null",
    )
    .await
    .unwrap();
    assert_eq!(response.status.as_u16(), 204, "{}", response.text());
    let out = crate::support::run_sdk(
        &daprd,
        r#"
from dapr.clients import DaprClient
with DaprClient() as d:
    d.publish_event('pubsub', 'nulls', b'null', data_content_type='application/cloudevents+json')
print('published')
"#,
        &[],
    )
    .await;
    assert_eq!(out.trim(), "published");
    assert_eq!(redis_reply(&redis, &["XLEN", "nulls"]).await, ":2");
    let response = http::request(
        Method::POST,
        &format!(
            "{}/v1.0-alpha1/publish/bulk/{PUBSUB}/orders",
            daprd.base_url()
        ),
        &[("content-type", "application/json")],
        "null",
    )
    .await
    .unwrap();
    assert_eq!(response.status.as_u16(), 204, "{}", response.text());
    assert_eq!(redis_reply(&redis, &["XLEN", "orders"]).await, ":1");
    healthy(&daprd).await;
}

/// Publishes `{"n": id}` to `orders` for each of `$IDS` with the SDK, then (if `$BULK` is
/// not empty) those ids in one bulk publish; prints one JSON line per call with its
/// outcome and duration.
const GRPC_PUBLISH_SCRIPT: &str = r#"
import json, os, time, warnings
warnings.simplefilter('ignore')
from dapr.clients import DaprClient
from dapr.clients.exceptions import DaprGrpcError

def attempt(ids, call):
    started = time.monotonic()
    outcome = {'ids': ids, 'ok': True}
    try:
        response = call()
        failed = [entry.entry_id for entry in getattr(response, 'failed_entries', [])]
        if failed:
            outcome = {'ids': ids, 'ok': False, 'failed': failed}
    except DaprGrpcError as err:
        outcome = {'ids': ids, 'ok': False, 'code': err.code().name,
                   'reason': err.error_code(), 'message': err.details()}
    outcome['seconds'] = time.monotonic() - started
    print(json.dumps(outcome), flush=True)

with DaprClient() as d:
    for ident in json.loads(os.environ['IDS']):
        attempt([ident], lambda: d.publish_event('pubsub', 'orders', json.dumps({'n': ident}),
                                                 data_content_type='application/json'))
    bulk = json.loads(os.environ['BULK'])
    if bulk:
        attempt(bulk, lambda: d.publish_events('pubsub', 'orders', [json.dumps({'n': i}) for i in bulk],
                                               data_content_type='application/json'))
"#;

/// The outcome of one SDK call of [`GRPC_PUBLISH_SCRIPT`].
#[derive(Debug)]
struct GrpcOutcome {
    /// The ids the call published.
    ids: Vec<String>,
    /// The script's line for the call.
    line: Value,
}

impl GrpcOutcome {
    /// Whether the call succeeded for every id.
    fn ok(&self) -> bool {
        self.line["ok"] == true
    }
}

/// Runs [`GRPC_PUBLISH_SCRIPT`] for `ids` and `bulk`; the outcome of each call.
async fn publish_grpc(daprd: &Daprd, ids: &[&str], bulk: &[&str]) -> Vec<GrpcOutcome> {
    let ids_json = json!(ids).to_string();
    let bulk_json = json!(bulk).to_string();
    let out = crate::support::run_sdk(
        daprd,
        GRPC_PUBLISH_SCRIPT,
        &[("IDS", &ids_json), ("BULK", &bulk_json)],
    )
    .await;
    out.lines()
        .map(|line| {
            let line: Value = serde_json::from_str(line).unwrap();
            let ids = line["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|id| id.as_str().unwrap().to_owned())
                .collect();
            GrpcOutcome { ids, line }
        })
        .collect()
}

/// A bulk publish of `{"n": id}` for each of `ids` over HTTP; the response.
async fn bulk_http(daprd: &Daprd, ids: &[&str]) -> http::Response {
    let entries: Vec<Value> = ids
        .iter()
        .map(|id| json!({"entryId": id, "event": {"n": id}, "contentType": "application/json"}))
        .collect();
    http::post_json(
        &format!(
            "{}/v1.0-alpha1/publish/bulk/{PUBSUB}/orders",
            daprd.base_url()
        ),
        &Value::Array(entries),
    )
    .await
    .unwrap()
}

/// The `n` of every event delivered on `/orders`.
fn delivered(events: &[Received]) -> Vec<String> {
    on_path(events, "/orders")
        .iter()
        .filter_map(|event| event.event["data"]["n"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_broker_fails_publishes_promptly_and_loses_no_acknowledged_event() {
    let mut redis = DurableRedis::start().await;
    let dir = TestDir::new();
    dir.pubsub("pubsub.redis", &[("redisHost", redis.host())]);
    let events = dir.events_file("orders");
    let subscriptions = json!([programmatic("orders", "/orders")]).to_string();
    let app = SubscriberApp::start(
        "subscriber_http.py",
        &events,
        &[("SUBSCRIPTIONS", subscriptions)],
    )
    .await;
    let daprd = Daprd::builder(APP_ID)
        .app_port(app.port())
        .app_protocol("http")
        .resources_path(dir.resources())
        .start()
        .await
        .unwrap();
    wait_subscribed(&daprd, "orders").await;

    // Every publish that was acknowledged, by the id in its data.
    let mut acknowledged: Vec<String> = Vec::new();
    let mut failures = Vec::new();
    for id in ["up-h1", "up-h2"] {
        let response = publish_http(&daprd, &format!("{PUBSUB}/orders"), &json!({"n": id})).await;
        assert_eq!(response.status.as_u16(), 204, "{}", response.text());
        acknowledged.push(id.to_owned());
    }
    for outcome in publish_grpc(&daprd, &["up-g1", "up-g2"], &["up-b1", "up-b2"]).await {
        assert!(outcome.ok(), "{outcome:?}\n{}", daprd.log_tail(20));
        acknowledged.extend(outcome.ids);
    }

    redis.kill().await;

    // Over HTTP: upstream's 500, promptly, for a publish and for a bulk publish.
    let started = Instant::now();
    let response = publish_http(
        &daprd,
        &format!("{PUBSUB}/orders"),
        &json!({"n": "down-h1"}),
    )
    .await;
    let elapsed = started.elapsed();
    if elapsed > DOWN_BOUND {
        failures.push(format!("HTTP publish with redis down took {elapsed:?}"));
    }
    let (status, code, message) = http_error(&response);
    if (status, code.as_str()) != (500, "ERR_PUBSUB_PUBLISH_MESSAGE")
        || !message.starts_with(
            "error when publishing to topic orders in pubsub pubsub: redis streams: error from \
             publish: ",
        )
    {
        failures.push(format!(
            "HTTP publish with redis down: {status} {code} {message:?}"
        ));
    }
    let started = Instant::now();
    let response = bulk_http(&daprd, &["down-hb1", "down-hb2"]).await;
    let elapsed = started.elapsed();
    if elapsed > DOWN_BOUND {
        failures.push(format!(
            "HTTP bulk publish with redis down took {elapsed:?}"
        ));
    }
    let body: Value = response.json().unwrap_or_default();
    let mut failed: Vec<&str> = body["failedEntries"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .filter_map(|entry| entry["entryId"].as_str())
                .collect()
        })
        .unwrap_or_default();
    failed.sort_unstable();
    if response.status.as_u16() != 500
        || body["errorCode"] != "ERR_PUBSUB_PUBLISH_MESSAGE"
        || failed != ["down-hb1", "down-hb2"]
    {
        failures.push(format!(
            "HTTP bulk publish with redis down: {} {}",
            response.status,
            response.text()
        ));
    }
    healthy(&daprd).await;

    // Over gRPC: Internal, promptly.
    for outcome in publish_grpc(&daprd, &["down-g1"], &["down-gb1", "down-gb2"]).await {
        let line = &outcome.line;
        let message = line["message"].as_str().unwrap_or_default();
        if line["code"] != "INTERNAL"
            || line["reason"] != "DAPR_PUBSUB_PUBLISH_MESSAGE"
            || !message.starts_with(
                "error when publishing to topic orders in pubsub pubsub: redis streams: error \
                 from publish: ",
            )
        {
            failures.push(format!("gRPC publish with redis down: {line}"));
        }
        if line["seconds"].as_f64().unwrap_or(f64::MAX) > DOWN_BOUND.as_secs_f64() {
            failures.push(format!("gRPC publish with redis down was slow: {line}"));
        }
    }
    healthy(&daprd).await;

    // The broker comes back on the same port: publishing works again, without a restart
    // of the sidecar.
    redis.restart().await;
    let deadline = Instant::now() + WAIT;
    loop {
        let response = publish_http(
            &daprd,
            &format!("{PUBSUB}/orders"),
            &json!({"n": "back-h1"}),
        )
        .await;
        if response.status.as_u16() == 204 {
            acknowledged.push("back-h1".to_owned());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "publishing never recovered after redis-server came back: {} {}\n{}",
            response.status,
            response.text(),
            daprd.log_tail(30)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let response = bulk_http(&daprd, &["back-hb1", "back-hb2"]).await;
    assert_eq!(response.status.as_u16(), 204, "{}", response.text());
    acknowledged.extend(["back-hb1".to_owned(), "back-hb2".to_owned()]);
    for outcome in publish_grpc(&daprd, &["back-g1"], &["back-gb1"]).await {
        assert!(outcome.ok(), "{outcome:?}\n{}", daprd.log_tail(20));
        acknowledged.extend(outcome.ids);
    }

    // Every acknowledged publish reaches the subscriber; the refused ones never do.
    let received = wait_for_events(
        &events,
        &daprd,
        "every acknowledged event",
        WAIT,
        |events| {
            let seen = delivered(events);
            acknowledged.iter().all(|id| seen.contains(id))
        },
    )
    .await;
    let seen = delivered(&received);
    let leaked: Vec<&String> = seen.iter().filter(|id| id.starts_with("down-")).collect();
    assert!(
        leaked.is_empty(),
        "refused publishes were delivered: {leaked:?}"
    );
    healthy(&daprd).await;
    assert!(failures.is_empty(), "{failures:#?}\n{}", daprd.log_tail(30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_that_are_not_cloud_events_are_dead_lettered_and_bad_ttls_drop_nothing() {
    let redis = Redis::start().await.unwrap();
    let dir = TestDir::new();
    dir.pubsub("pubsub.redis", &[("redisHost", redis.host())]);
    let events = dir.events_file("subscriber");
    let mut raw_in = programmatic("raw-in", "/raw-in");
    raw_in["deadLetterTopic"] = json!("raw-dead");
    let mut raw_dead = programmatic("raw-dead", "/raw-dead");
    raw_dead["metadata"] = json!({"rawPayload": "true"});
    let subscriptions = json!([raw_in, raw_dead, programmatic("ttl", "/ttl")]).to_string();
    let app = SubscriberApp::start(
        "subscriber_http.py",
        &events,
        &[("SUBSCRIPTIONS", subscriptions)],
    )
    .await;
    let daprd = Daprd::builder(APP_ID)
        .app_port(app.port())
        .app_protocol("http")
        .resources_path(dir.resources())
        .start()
        .await
        .unwrap();
    for topic in ["raw-in", "raw-dead", "ttl"] {
        wait_subscribed(&daprd, topic).await;
    }

    // Raw payloads to a subscription that expects CloudEvents: over HTTP and over gRPC.
    let http_payload = "not a cloud event";
    let response = http::request(
        Method::POST,
        &format!(
            "{}/v1.0/publish/{PUBSUB}/raw-in?metadata.rawPayload=true",
            daprd.base_url()
        ),
        &[("content-type", "text/plain")],
        Bytes::from_static(http_payload.as_bytes()),
    )
    .await
    .unwrap();
    assert_eq!(response.status.as_u16(), 204, "{}", response.text());
    let out = crate::support::run_sdk(
        &daprd,
        r#"
import os
from dapr.clients import DaprClient
with DaprClient() as d:
    d.publish_event('pubsub', 'raw-in', b'\x00\x01 binary, not JSON',
                    publish_metadata={'rawPayload': 'true'},
                    data_content_type='application/octet-stream')
print('published')
"#,
        &[],
    )
    .await;
    assert_eq!(out.trim(), "published");

    // Bad TTLs are ignored, as upstream's ApplyMetadata ignores them: the events are
    // delivered without an expiration (a valid TTL sets one).
    let ttl_url = |ttl: &str| {
        format!(
            "{}/v1.0/publish/{PUBSUB}/ttl?metadata.ttlInSeconds={ttl}",
            daprd.base_url()
        )
    };
    for (ttl, id) in [
        ("abc", "ttl-abc"),
        ("-5", "ttl-negative"),
        ("3600", "ttl-hour"),
    ] {
        let response = http::post_json(&ttl_url(ttl), &json!({"n": id}))
            .await
            .unwrap();
        assert_eq!(
            response.status.as_u16(),
            204,
            "ttl {ttl}: {}",
            response.text()
        );
    }
    let out = crate::support::run_sdk(
        &daprd,
        r#"
import json
from dapr.clients import DaprClient
with DaprClient() as d:
    d.publish_event('pubsub', 'ttl', json.dumps({'n': 'ttl-grpc'}),
                    publish_metadata={'ttlInSeconds': 'soon'},
                    data_content_type='application/json')
print('published')
"#,
        &[],
    )
    .await;
    assert_eq!(out.trim(), "published");

    // Both payloads, base64-encoded as a raw-payload subscription delivers them.
    let expected_dead = ["bm90IGEgY2xvdWQgZXZlbnQ=", "AAEgYmluYXJ5LCBub3QgSlNPTg=="];
    let received = wait_for_events(
        &events,
        &daprd,
        "the dead letters and the TTL events",
        WAIT,
        |events| {
            let dead: Vec<&str> = on_path(events, "/raw-dead")
                .iter()
                .filter_map(|event| event.event["data_base64"].as_str())
                .collect();
            expected_dead.iter().all(|payload| dead.contains(payload))
                && on_path(events, "/ttl").len() >= 4
        },
    )
    .await;
    for dead in on_path(&received, "/raw-dead") {
        assert_eq!(dead.event["topic"], "raw-dead", "{received:#?}");
        assert_eq!(dead.event["pubsubname"], PUBSUB, "{received:#?}");
    }
    assert!(
        on_path(&received, "/raw-in").is_empty(),
        "a raw payload reached the CloudEvent route: {received:#?}"
    );
    for delivery in on_path(&received, "/ttl") {
        let id = delivery.event["data"]["n"].as_str().unwrap_or_default();
        let expires = delivery.event.get("expiration").is_some();
        assert_eq!(expires, id == "ttl-hour", "{id}: {:#?}", delivery.event);
    }
    healthy(&daprd).await;
}

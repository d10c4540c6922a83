//! The state API through both edges, against real `state.in-memory` and `state.sqlite`
//! (temp file) stores started by the component loader, behind the sidecar's own HTTP
//! router and gRPC service served on loopback: every route, status, header and error body,
//! ETag flows, first-write, atomic transactions, bulk get with JSON and binary values,
//! query, key prefix layouts (read back from the stores directly), bad input, metrics.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;
use dapr_components::state::{
    EtagErrorKind, GetRequest, SetRequest, StateError, TTL_EXPIRE_TIME_METADATA_KEY,
};
use dapr_kit::metrics::MetricsRegistry;
use dapr_proto::common::{Etag, StateItem, StateOptions, state_options};
use dapr_proto::google::rpc;
use dapr_proto::runtime::dapr_client::DaprClient;
use dapr_proto::runtime::{
    DeleteBulkStateRequest, DeleteStateRequest, ExecuteStateTransactionRequest,
    GetBulkStateRequest, GetStateRequest, QueryStateRequest, SaveStateRequest,
    TransactionalStateOperation,
};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use prost::Message;
use serde_json::{Value, json};
use tempfile::TempDir;
use tonic::transport::Channel;

use super::{Protocol, errors};
use crate::observability::metrics::{MetricsSettings, SidecarMetrics};
use crate::runtime::Runtime;
use crate::secrets::SecretScopes;
use crate::test_support::{self, PublicApis};

/// The two stores every behaviour is checked on.
const STORES: [&str; 2] = ["memory", "sqlite"];

/// A Component resource in YAML.
fn component(name: &str, kind: &str, metadata: &[(&str, &str)]) -> String {
    let metadata: String = metadata
        .iter()
        .map(|(name, value)| format!("  - name: {name}\n    value: '{value}'\n"))
        .collect();
    format!(
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: {name}\nspec:\n  type: {kind}\n  version: v1\n  metadata:\n{metadata}"
    )
}

/// `memory` and `sqlite` (default prefixes), plus in-memory stores with the `name`,
/// `namespace` and `none` key prefixes.
fn stores(dir: &Path) -> String {
    let database = dir.join("state.db");
    [
        component("memory", "state.in-memory", &[("unused", "x")]),
        component(
            "sqlite",
            "state.sqlite",
            &[("connectionString", database.to_str().unwrap())],
        ),
        component("named", "state.in-memory", &[("keyPrefix", "name")]),
        component("spaced", "state.in-memory", &[("keyPrefix", "namespace")]),
        component("bare", "state.in-memory", &[("keyPrefix", "none")]),
    ]
    .join("---\n")
}

/// A sidecar serving its public APIs on loopback.
struct Sidecar {
    runtime: Arc<Runtime>,
    http: SocketAddr,
    grpc: DaprClient<Channel>,
    registry: MetricsRegistry,
    _dir: TempDir,
}

/// Starts a sidecar for app `myapp` (namespace `default`) with `yaml`'s components.
async fn start_with(yaml: impl FnOnce(&Path) -> String) -> Sidecar {
    let dir = tempfile::tempdir().unwrap();
    let registry = MetricsRegistry::new();
    let metrics =
        SidecarMetrics::register(&registry, &MetricsSettings::new("myapp", "default")).unwrap();
    let set = test_support::load_yaml(&yaml(dir.path()), &metrics).await;
    let mut config = test_support::default_config();
    config.namespace = "default".to_owned();
    config.max_body_size = 64 << 10;
    let PublicApis {
        runtime,
        http,
        grpc,
    } = test_support::serve_public_apis(config, set, SecretScopes::default(), metrics).await;
    Sidecar {
        runtime,
        http,
        grpc,
        registry,
        _dir: dir,
    }
}

async fn start() -> Sidecar {
    start_with(stores).await
}

/// An HTTP reply.
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|error| panic!("{error}: {:?}", self.body))
    }

    fn content_type(&self) -> &str {
        self.headers
            .get(http::header::CONTENT_TYPE)
            .map(|value| value.to_str().unwrap())
            .unwrap_or_default()
    }

    fn etag(&self) -> String {
        self.headers[http::header::ETAG]
            .to_str()
            .unwrap()
            .to_owned()
    }

    /// Asserts an upstream error body and returns it.
    fn error(&self, status: StatusCode, code: &str) -> Value {
        assert_eq!(self.status, status, "{:?}", self.body);
        assert_eq!(self.content_type(), "application/json");
        let body = self.json();
        assert_eq!(body["errorCode"], code, "{body}");
        body
    }

    fn no_content(&self) {
        assert_eq!(self.status, StatusCode::NO_CONTENT, "{:?}", self.body);
        assert!(self.body.is_empty());
    }
}

impl Sidecar {
    async fn call(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let mut request = http::Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.http));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Full::new(Bytes::copy_from_slice(body.as_bytes())))
            .unwrap();
        let response = client.request(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            headers,
            body,
        }
    }

    async fn post(&self, path: &str, body: &str) -> Reply {
        self.call("POST", path, &[], body).await
    }

    async fn get(&self, path: &str) -> Reply {
        self.call("GET", path, &[], "").await
    }

    async fn save(&self, store: &str, items: Value) -> Reply {
        self.post(&format!("/v1.0/state/{store}"), &items.to_string())
            .await
    }

    /// The bytes `store` holds under its stored key `stored` (read from the store itself).
    async fn stored(&self, store: &str, stored: &str) -> Option<Bytes> {
        let components = self.runtime.components.snapshot();
        let handle = components.state_store(store).unwrap();
        let response = handle
            .store
            .get(GetRequest {
                key: stored.to_owned(),
                ..GetRequest::default()
            })
            .await
            .unwrap();
        (!response.is_missing()).then_some(response.data)
    }

    /// Writes bytes under a stored key directly into `store`.
    async fn store_directly(&self, store: &str, stored: &str, value: &str) {
        let components = self.runtime.components.snapshot();
        let handle = components.state_store(store).unwrap();
        handle
            .store
            .set(SetRequest {
                key: stored.to_owned(),
                value: Bytes::copy_from_slice(value.as_bytes()),
                ..SetRequest::default()
            })
            .await
            .unwrap();
    }

    fn grpc(&self) -> DaprClient<Channel> {
        self.grpc.clone()
    }

    async fn grpc_save(&self, store: &str, items: Vec<StateItem>) -> Result<(), tonic::Status> {
        self.grpc()
            .save_state(SaveStateRequest {
                store_name: store.to_owned(),
                states: items,
            })
            .await
            .map(|_| ())
    }

    async fn grpc_get(&self, store: &str, key: &str) -> Result<(Vec<u8>, String), tonic::Status> {
        let response = self
            .grpc()
            .get_state(GetStateRequest {
                store_name: store.to_owned(),
                key: key.to_owned(),
                ..GetStateRequest::default()
            })
            .await?
            .into_inner();
        Ok((response.data, response.etag))
    }
}

fn item(key: &str, value: &[u8]) -> StateItem {
    StateItem {
        key: key.to_owned(),
        value: value.to_vec(),
        ..StateItem::default()
    }
}

/// The `google.rpc` details of a gRPC error, as (type name, message bytes).
fn details(status: &tonic::Status) -> Vec<(String, Vec<u8>)> {
    rpc::Status::decode(status.details())
        .unwrap()
        .details
        .into_iter()
        .map(|any| {
            let name = any.type_url.rsplit('.').next().unwrap().to_owned();
            (name, any.value)
        })
        .collect()
}

fn error_info(status: &tonic::Status) -> rpc::ErrorInfo {
    let (_, value) = details(status)
        .into_iter()
        .find(|(name, _)| name == "ErrorInfo")
        .unwrap();
    rpc::ErrorInfo::decode(value.as_slice()).unwrap()
}

#[tokio::test]
async fn http_save_get_and_delete_on_both_stores() {
    let sidecar = start().await;
    for store in STORES {
        let saved = sidecar
            .save(
                store,
                json!([
                    {"key": "doc", "value": {"b": 1.0, "a": "x<y"}},
                    {"key": "text", "value": "hello"},
                    {"key": "nothing"}
                ]),
            )
            .await;
        saved.no_content();

        let doc = sidecar.get(&format!("/v1.0/state/{store}/doc")).await;
        assert_eq!(doc.status, StatusCode::OK);
        assert_eq!(doc.content_type(), "application/json");
        assert_eq!(doc.body, r#"{"a":"x\u003cy","b":1}"#);
        assert!(!doc.etag().is_empty());
        let text = sidecar.get(&format!("/v1.0/state/{store}/text")).await;
        assert_eq!(text.body, r#""hello""#);
        let nothing = sidecar.get(&format!("/v1.0/state/{store}/nothing")).await;
        assert_eq!(nothing.body, "null");
        sidecar
            .get(&format!("/v1.0/state/{store}/missing"))
            .await
            .no_content();

        // The stored layout is upstream's `appid||key`, readable by the store itself.
        assert_eq!(
            sidecar.stored(store, "myapp||text").await.unwrap(),
            r#""hello""#
        );
        assert_eq!(sidecar.stored(store, "text").await, None);

        let path = format!("/v1.0/state/{store}/doc");
        let stale = "00000000-0000-0000-0000-000000000000";
        let refused = sidecar
            .call("DELETE", &path, &[("If-Match", stale)], "")
            .await;
        let body = refused.error(StatusCode::CONFLICT, "ERR_STATE_DELETE");
        let message = body["message"].as_str().unwrap();
        assert!(
            message.starts_with("failed deleting state with key doc: possible etag mismatch. error from state store: "),
            "{message}"
        );
        assert!(body.get("details").is_none());
        sidecar
            .call("DELETE", &path, &[("If-Match", &doc.etag())], "")
            .await
            .no_content();
        sidecar.get(&path).await.no_content();
        sidecar
            .call("DELETE", &format!("/v1.0/state/{store}/text"), &[], "")
            .await
            .no_content();
        // Deleting what is not there succeeds.
        sidecar
            .call("DELETE", &format!("/v1.0/state/{store}/text"), &[], "")
            .await
            .no_content();
        assert_eq!(sidecar.stored(store, "myapp||text").await, None);
    }
}

#[tokio::test]
async fn http_etags_first_write_and_options() {
    let sidecar = start().await;
    for store in STORES {
        let path = format!("/v1.0/state/{store}/counter");
        sidecar
            .save(store, json!([{"key": "counter", "value": 1}]))
            .await
            .no_content();
        let first = sidecar.get(&path).await.etag();
        sidecar
            .save(
                store,
                json!([{"key": "counter", "value": 2, "etag": first}]),
            )
            .await
            .no_content();
        let second = sidecar.get(&path).await;
        assert_eq!(second.body, "2");
        assert_ne!(second.etag(), first);

        let stale = sidecar
            .save(
                store,
                json!([{"key": "counter", "value": 3, "etag": first}]),
            )
            .await;
        let body = stale.error(StatusCode::CONFLICT, "ERR_STATE_SAVE");
        assert!(
            body["message"].as_str().unwrap().starts_with(&format!(
                "failed saving state in state store {store}: possible etag mismatch"
            )),
            "{body}"
        );
        assert_eq!(sidecar.get(&path).await.body, "2");

        // first-write: without an ETag only a new key can be written.
        let first_write = json!([{"key": "once", "value": "a", "options": {"concurrency": "first-write", "consistency": "strong"}}]);
        sidecar.save(store, first_write.clone()).await.no_content();
        sidecar
            .save(store, first_write)
            .await
            .error(StatusCode::CONFLICT, "ERR_STATE_SAVE");
        // last-write: the same write again is fine.
        let last_write =
            json!([{"key": "once", "value": "b", "options": {"concurrency": "last-write"}}]);
        sidecar.save(store, last_write).await.no_content();

        let unknown = sidecar
            .save(
                store,
                json!([{"key": "k", "value": 1, "options": {"concurrency": "sometimes"}}]),
            )
            .await;
        let body = unknown.error(StatusCode::INTERNAL_SERVER_ERROR, "ERR_STATE_SAVE");
        assert_eq!(
            body["message"],
            format!(
                "failed saving state in state store {store}: unrecognized concurrency model 'sometimes'"
            )
        );
        let unknown = sidecar
            .call("DELETE", &format!("{path}?consistency=maybe"), &[], "")
            .await;
        let body = unknown.error(StatusCode::INTERNAL_SERVER_ERROR, "ERR_STATE_DELETE");
        assert_eq!(
            body["message"],
            "failed deleting state with key counter: unrecognized consistency model 'maybe'"
        );
        // Reads ignore an unknown consistency, as upstream's stores do.
        assert_eq!(
            sidecar.get(&format!("{path}?consistency=maybe")).await.body,
            "2"
        );
    }
}

#[tokio::test]
async fn http_metadata_reaches_the_store_and_comes_back_as_headers() {
    let sidecar = start().await;
    for store in STORES {
        sidecar
            .save(
                store,
                json!([{"key": "short", "value": 1, "metadata": {"ttlInSeconds": "100"}}]),
            )
            .await
            .no_content();
        sidecar
            .post(
                &format!("/v1.0/state/{store}?metadata.ttlInSeconds=200"),
                r#"[{"key": "shorter", "value": 1}]"#,
            )
            .await
            .no_content();
        for key in ["short", "shorter"] {
            let reply = sidecar.get(&format!("/v1.0/state/{store}/{key}")).await;
            let header = format!("metadata.{TTL_EXPIRE_TIME_METADATA_KEY}");
            let expiry = reply.headers[header.as_str()].to_str().unwrap();
            assert!(expiry.ends_with('Z') && expiry.len() == 20, "{expiry}");
        }
        sidecar
            .save(
                store,
                json!([{"key": "bad", "value": 1, "metadata": {"ttlInSeconds": "soon"}}]),
            )
            .await
            .error(StatusCode::INTERNAL_SERVER_ERROR, "ERR_STATE_SAVE");
    }
}

#[tokio::test]
async fn bulk_get_returns_json_binary_missing_and_prefix_free_keys() {
    let sidecar = start().await;
    for store in STORES {
        sidecar
            .save(store, json!([{"key": "json", "value": {"a": [1, "<"]}}]))
            .await
            .no_content();
        sidecar
            .grpc_save(
                store,
                vec![
                    item("binary", &[0xff, 0x00, b'h', b'i']),
                    item("spaced", b" { \"z\" : 1 } "),
                ],
            )
            .await
            .unwrap();
        let path = format!("/v1.0/state/{store}/bulk?metadata.partitionKey=p");
        let reply = sidecar
            .post(
                &path,
                r#"{"keys": ["json", "binary", "missing", "spaced"], "parallelism": 2}"#,
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.content_type(), "application/json");
        assert!(reply.body.ends_with(b"]\n"));
        let items = reply.json();
        let items = items.as_array().unwrap();
        assert_eq!(items.len(), 4);
        assert_eq!(items[0]["key"], "json");
        assert_eq!(items[0]["data"], json!({"a": [1, "<"]}));
        assert!(
            items[0]["etag"]
                .as_str()
                .is_some_and(|etag| !etag.is_empty())
        );
        assert_eq!(items[1]["key"], "binary");
        assert_eq!(items[1]["data"], "/wBoaQ==");
        assert_eq!(items[2], json!({"key": "missing"}));
        assert_eq!(items[3]["data"], json!({"z": 1}));
        let text = String::from_utf8(reply.body.to_vec()).unwrap();
        assert!(text.contains(r#""data":{"a":[1,"\u003c"]}"#), "{text}");
        assert!(text.contains(r#""data":{"z":1}"#), "{text}");

        let empty = sidecar
            .post(&format!("/v1.0/state/{store}/bulk"), r#"{"keys": []}"#)
            .await;
        assert_eq!(
            (empty.status, &empty.body[..]),
            (StatusCode::OK, &b"[]\n"[..])
        );
        let illegal = sidecar
            .post(
                &format!("/v1.0/state/{store}/bulk"),
                r#"{"keys": ["ok", "a||b"]}"#,
            )
            .await;
        illegal.error(StatusCode::BAD_REQUEST, "ERR_MALFORMED_REQUEST");
        let malformed = sidecar
            .post(&format!("/v1.0/state/{store}/bulk"), r#"{"keys": "json"}"#)
            .await;
        let body = malformed.error(StatusCode::BAD_REQUEST, "ERR_MALFORMED_REQUEST");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .starts_with("failed deserializing HTTP body: "),
            "{body}"
        );

        // gRPC gives the raw bytes.
        let response = sidecar
            .grpc()
            .get_bulk_state(GetBulkStateRequest {
                store_name: store.to_owned(),
                keys: vec!["binary".into(), "missing".into(), "json".into()],
                parallelism: 0,
                metadata: HashMap::new(),
            })
            .await
            .unwrap()
            .into_inner();
        let keys: Vec<_> = response
            .items
            .iter()
            .map(|item| item.key.as_str())
            .collect();
        assert_eq!(keys, ["binary", "missing", "json"]);
        assert_eq!(response.items[0].data, [0xff, 0x00, b'h', b'i']);
        assert!(!response.items[0].etag.is_empty());
        assert!(response.items[1].data.is_empty() && response.items[1].etag.is_empty());
        assert_eq!(response.items[2].data, br#"{"a":[1,"\u003c"]}"#);
    }
}

#[tokio::test]
async fn http_transactions_apply_all_or_nothing() {
    let sidecar = start().await;
    for store in STORES {
        sidecar
            .save(store, json!([{"key": "old", "value": "o"}]))
            .await
            .no_content();
        let etag = sidecar
            .get(&format!("/v1.0/state/{store}/old"))
            .await
            .etag();
        let path = format!("/v1.0/state/{store}/transaction");
        let body = json!({
            "operations": [
                {"operation": "upsert", "request": {"key": "new", "value": {"n": 1}}},
                {"operation": "delete", "request": {"key": "old", "etag": etag}}
            ],
            "metadata": {"partitionKey": "p"}
        });
        sidecar.post(&path, &body.to_string()).await.no_content();
        assert_eq!(
            sidecar.stored(store, "myapp||new").await.unwrap(),
            r#"{"n":1}"#
        );
        assert_eq!(sidecar.stored(store, "myapp||old").await, None);

        // A failing operation leaves every other one undone.
        let body = json!({"operations": [
            {"operation": "upsert", "request": {"key": "third", "value": 3}},
            {"operation": "delete", "request": {"key": "new", "etag": "00000000-0000-0000-0000-000000000000"}}
        ]});
        let failed = sidecar.post(&path, &body.to_string()).await;
        let body = failed.error(StatusCode::INTERNAL_SERVER_ERROR, "ERR_STATE_TRANSACTION");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .starts_with("error while executing state transaction: possible etag mismatch"),
            "{body}"
        );
        assert_eq!(sidecar.stored(store, "myapp||third").await, None);
        assert!(sidecar.stored(store, "myapp||new").await.is_some());

        let unknown = json!({"operations": [{"operation": "merge", "request": {"key": "x"}}]});
        let body = sidecar
            .post(&path, &unknown.to_string())
            .await
            .error(StatusCode::BAD_REQUEST, "ERR_NOT_SUPPORTED_STATE_OPERATION");
        assert_eq!(body["message"], "operation type merge not supported");
        let illegal = json!({"operations": [{"operation": "upsert", "request": {"key": "a||b"}}]});
        sidecar
            .post(&path, &illegal.to_string())
            .await
            .error(StatusCode::BAD_REQUEST, "ERR_MALFORMED_REQUEST");
        let wrong = json!({"operations": [{"operation": "upsert", "request": "key"}]});
        let body = sidecar
            .post(&path, &wrong.to_string())
            .await
            .error(StatusCode::BAD_REQUEST, "ERR_MALFORMED_REQUEST");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .starts_with("failed deserializing HTTP body: ")
        );
        sidecar
            .post(&path, "{oops")
            .await
            .error(StatusCode::BAD_REQUEST, "ERR_MALFORMED_REQUEST");
        sidecar
            .post(&path, r#"{"operations": []}"#)
            .await
            .no_content();
    }
}

#[tokio::test]
async fn query_sees_only_this_apps_keys_and_pages() {
    let sidecar = start().await;
    let people: Vec<Value> = (1..=4)
        .map(|id| {
            let state = if id == 3 { "WA" } else { "CA" };
            json!({"key": format!("p{id}"), "value": {"person": {"id": id}, "state": state}})
        })
        .collect();
    sidecar
        .save("memory", Value::Array(people))
        .await
        .no_content();
    // Another app's value in the same store is never visible, whatever the caller asks.
    sidecar
        .store_directly(
            "memory",
            "otherapp||p9",
            r#"{"person":{"id":9},"state":"CA"}"#,
        )
        .await;

    let query = json!({
        "filter": {"EQ": {"state": "CA"}},
        "sort": [{"key": "person.id", "order": "DESC"}]
    });
    let path = "/v1.0-alpha1/state/memory/query?metadata.queryKeyPrefix=otherapp||";
    let reply = sidecar.post(path, &query.to_string()).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.content_type(), "application/json");
    let results = reply.json()["results"].clone();
    let keys: Vec<_> = results
        .as_array()
        .unwrap()
        .iter()
        .map(|result| result["key"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(keys, ["p4", "p2", "p1"]);
    assert_eq!(
        results[0]["data"],
        json!({"person": {"id": 4}, "state": "CA"})
    );
    assert!(results[0]["etag"].is_string());

    // Paging.
    let first = json!({"filter": {"EQ": {"state": "CA"}}, "sort": [{"key": "person.id"}], "page": {"limit": 2}});
    let page = sidecar
        .post("/v1.0-alpha1/state/memory/query", &first.to_string())
        .await
        .json();
    assert_eq!(page["results"].as_array().unwrap().len(), 2);
    let token = page["token"].as_str().unwrap().to_owned();
    let next = json!({"filter": {"EQ": {"state": "CA"}}, "sort": [{"key": "person.id"}], "page": {"limit": 2, "token": token}});
    let page = sidecar
        .post("/v1.0-alpha1/state/memory/query", &next.to_string())
        .await
        .json();
    assert_eq!(page["results"][0]["key"], "p4");

    // Nothing matching is 204.
    sidecar
        .post(
            "/v1.0-alpha1/state/memory/query",
            r#"{"filter": {"EQ": {"state": "NY"}}}"#,
        )
        .await
        .no_content();

    let bad = sidecar
        .post(
            "/v1.0-alpha1/state/memory/query",
            r#"{"filter": {"LIKE": {"state": "C%"}}}"#,
        )
        .await;
    let body = bad.error(StatusCode::INTERNAL_SERVER_ERROR, "ERR_STATE_QUERY");
    assert_eq!(
        body["message"],
        "state store memory query failed: failed to parse JSON query body: unsupported filter \"LIKE\""
    );
    assert_eq!(body["details"][0]["resource_name"], "memory");
    assert_eq!(body["details"][1]["reason"], "DAPR_STATE_QUERY_FAILED");

    let unsupported = sidecar
        .post("/v1.0-alpha1/state/sqlite/query", &query.to_string())
        .await;
    let body = unsupported.error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "ERR_STATE_STORE_NOT_SUPPORTED",
    );
    assert_eq!(body["message"], "state store does not support querying");
    assert_eq!(body["details"].as_array().unwrap().len(), 2);
    assert_eq!(
        body["details"][0]["@type"],
        "type.googleapis.com/google.rpc.ResourceInfo"
    );
    assert_eq!(body["details"][0]["resource_type"], "state");
    assert_eq!(
        body["details"][1]["reason"],
        "DAPR_STATE_QUERYING_NOT_SUPPORTED"
    );

    // gRPC: the same query, raw bytes back.
    let response = sidecar
        .grpc()
        .query_state_alpha1(QueryStateRequest {
            store_name: "memory".into(),
            query: query.to_string(),
            metadata: HashMap::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let keys: Vec<_> = response
        .results
        .iter()
        .map(|result| result.key.as_str())
        .collect();
    assert_eq!(keys, ["p4", "p2", "p1"]);
    assert_eq!(
        response.results[2].data,
        br#"{"person":{"id":1},"state":"CA"}"#
    );
    let none = sidecar
        .grpc()
        .query_state_alpha1(QueryStateRequest {
            store_name: "memory".into(),
            query: r#"{"filter": {"EQ": {"state": "NY"}}}"#.into(),
            metadata: HashMap::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(none, Default::default());
    let status = sidecar
        .grpc()
        .query_state_alpha1(QueryStateRequest {
            store_name: "sqlite".into(),
            query: "{}".into(),
            metadata: HashMap::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Internal);
    assert_eq!(
        error_info(&status).reason,
        "DAPR_STATE_QUERYING_NOT_SUPPORTED"
    );
}

#[tokio::test]
async fn key_prefix_strategies_lay_keys_out_like_upstream() {
    let sidecar = start().await;
    let layouts = [
        ("memory", "myapp||k"),
        ("named", "named||k"),
        ("spaced", "default.myapp||k"),
        ("bare", "k"),
    ];
    for (store, stored) in layouts {
        sidecar
            .save(store, json!([{"key": "k", "value": store}]))
            .await
            .no_content();
        assert_eq!(
            sidecar.stored(store, stored).await.unwrap(),
            format!("\"{store}\""),
            "{store}"
        );
        let items = sidecar
            .post(&format!("/v1.0/state/{store}/bulk"), r#"{"keys": ["k"]}"#)
            .await
            .json();
        assert_eq!(items[0]["key"], "k", "{store}");
        let (data, _) = sidecar.grpc_get(store, "k").await.unwrap();
        assert_eq!(data, format!("\"{store}\"").as_bytes());
    }
}

#[tokio::test]
async fn path_parameters_are_unescaped_like_upstream() {
    let sidecar = start().await;
    sidecar
        .save(
            "memory",
            json!([
                {"key": "a/b c+d", "value": 1},
                {"key": "x y", "value": 2},
                {"key": "bulk", "value": 3},
                {"key": "transaction", "value": 4}
            ]),
        )
        .await
        .no_content();
    assert_eq!(
        sidecar.get("/v1.0/state/memory/a%2Fb%20c%2Bd").await.body,
        "1"
    );
    assert_eq!(sidecar.get("/v1.0/state/memory/x+y").await.body, "2");
    assert_eq!(sidecar.get("/v1.0/state/memory/bulk").await.body, "3");
    assert_eq!(
        sidecar.get("/v1.0/state/memory/transaction").await.body,
        "4"
    );
    sidecar
        .call("DELETE", "/v1.0/state/memory/bulk", &[], "")
        .await
        .no_content();
    sidecar.get("/v1.0/state/memory/bulk").await.no_content();
    let bad = sidecar.get("/v1.0/state/memory/a%zz").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.content_type(), "text/plain; charset=utf-8");
    assert_eq!(
        bad.body,
        "failed to unescape request parameter \"key\". Error: invalid URL escape \"%zz\"\n"
    );
    // PUT is accepted wherever upstream takes POST.
    let reply = sidecar
        .call(
            "PUT",
            "/v1.0/state/memory",
            &[],
            r#"[{"key": "put", "value": 5}]"#,
        )
        .await;
    reply.no_content();
    assert_eq!(sidecar.get("/v1.0/state/memory/put").await.body, "5");
}

#[tokio::test]
async fn bad_http_input_is_refused_with_upstreams_errors() {
    let sidecar = start().await;
    // Upstream's own table of malformed save bodies.
    for body in [
        "",
        "{}",
        "foobar",
        "[{}]",
        r#"[{"key": "key1", "value": "value1"},]"#,
        r#"[{"key": "key1", "value": "value1"},{"key": "key2", "value": "value1"},]"#,
        r#"[{"key": "key1", "value": "value1", "etag": 123}]"#,
        r#"[{"ey": "key0", "value": "value1"}]"#,
    ] {
        let reply = sidecar.post("/v1.0/state/memory", body).await;
        let error = reply.error(StatusCode::BAD_REQUEST, "ERR_MALFORMED_REQUEST");
        assert!(error.get("details").is_none(), "{body}: {error}");
    }
    let empty_key = sidecar
        .post("/v1.0/state/memory", r#"[{"value": 1}]"#)
        .await;
    assert_eq!(
        empty_key.error(StatusCode::BAD_REQUEST, "ERR_MALFORMED_REQUEST")["message"],
        "\"key\" is a required field"
    );
    for body in [
        "[]",
        "null",
        r#"[{"key": "key1", "vae": "value1"}]"#,
        r#"[{"key": "key1", "value": "value1"},{"key": "key2", "value": "value1"},  {"key": "key1", "value": "value1"},{"key": "key2", "value": "value1"}]"#,
        r#"[{"key": "key1", "value": "value1"}] trailing"#,
    ] {
        sidecar.post("/v1.0/state/memory", body).await.no_content();
    }

    let illegal = sidecar
        .post(
            "/v1.0/state/memory",
            r#"[{"key": "ke||y1", "value": "value1"}]"#,
        )
        .await;
    let body = illegal.error(StatusCode::BAD_REQUEST, "ERR_MALFORMED_REQUEST");
    let message =
        "api error: code = InvalidArgument desc = input key/keyPrefix 'ke||y1' can't contain '||'";
    assert_eq!(body["message"], message);
    assert_eq!(
        body["details"],
        json!([
            {"@type": "type.googleapis.com/google.rpc.BadRequest",
             "field_violations": [{"field": "ke||y1", "description": message}]},
            {"@type": "type.googleapis.com/google.rpc.ResourceInfo",
             "resource_type": "state", "resource_name": "memory", "owner": "", "description": ""},
            {"@type": "type.googleapis.com/google.rpc.ErrorInfo",
             "reason": "DAPR_STATE_ILLEGAL_KEY", "domain": "dapr.io", "metadata": {}}
        ])
    );
    sidecar
        .get("/v1.0/state/memory/a%7C%7Cb")
        .await
        .error(StatusCode::BAD_REQUEST, "ERR_MALFORMED_REQUEST");
    sidecar
        .call("DELETE", "/v1.0/state/memory/a%7C%7Cb", &[], "")
        .await
        .error(StatusCode::BAD_REQUEST, "ERR_MALFORMED_REQUEST");

    // An unknown store, on every route (checked before the body is read).
    for (method, path) in [
        ("POST", "/v1.0/state/nope"),
        ("GET", "/v1.0/state/nope/k"),
        ("DELETE", "/v1.0/state/nope/k"),
        ("POST", "/v1.0/state/nope/bulk"),
        ("POST", "/v1.0/state/nope/transaction"),
    ] {
        let reply = sidecar.call(method, path, &[], "").await;
        let body = reply.error(StatusCode::BAD_REQUEST, "ERR_STATE_STORE_NOT_FOUND");
        assert_eq!(body["message"], "state store nope is not found");
        assert_eq!(
            body["details"],
            json!([{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "DAPR_STATE_NOT_FOUND", "domain": "dapr.io",
                    "metadata": {"appID": "myapp"}}]),
            "{method} {path}"
        );
    }
    // The query route looks stores up without naming the app, as upstream's.
    let body = sidecar
        .post("/v1.0-alpha1/state/nope/query", "{}")
        .await
        .error(StatusCode::BAD_REQUEST, "ERR_STATE_STORE_NOT_FOUND");
    assert_eq!(body["details"][0]["metadata"], json!({}));

    // Bodies over --max-body-size are refused by the body limit.
    let huge = format!(r#"[{{"key": "big", "value": "{}"}}]"#, "x".repeat(70 << 10));
    let body = sidecar
        .post("/v1.0/state/memory", &huge)
        .await
        .error(StatusCode::BAD_REQUEST, "ERR_MALFORMED_REQUEST");
    assert_eq!(body["message"], crate::api::middleware::BODY_TOO_LARGE);
    sidecar.get("/v1.0/state/memory/big").await.no_content();

    // Over gRPC, a message past the limit is ResourceExhausted, as grpc-go says it.
    let status = sidecar
        .grpc_save("memory", vec![item("big", &vec![b'x'; 70 << 10])])
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert!(
        status
            .message()
            .starts_with("grpc: received message larger than max ("),
        "{status:?}"
    );
    sidecar.get("/v1.0/state/memory/big").await.no_content();
}

#[tokio::test]
async fn without_state_stores_every_call_is_not_configured() {
    let sidecar = start_with(|_| String::new()).await;
    let reply = sidecar.post("/v1.0/state/mystore", "").await;
    let body = reply.error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "ERR_STATE_STORE_NOT_CONFIGURED",
    );
    assert_eq!(body["message"], "state store mystore is not configured");
    assert_eq!(body["details"][0]["reason"], "DAPR_STATE_NOT_CONFIGURED");
    assert_eq!(body["details"][0]["metadata"]["appID"], "myapp");
    sidecar.get("/v1.0/state/mystore/k").await.error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "ERR_STATE_STORE_NOT_CONFIGURED",
    );
    let status = sidecar.grpc_get("mystore", "k").await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    assert_eq!(status.message(), "state store mystore is not configured");
    let info = error_info(&status);
    assert_eq!(info.reason, "DAPR_STATE_NOT_CONFIGURED");
    assert!(info.metadata.is_empty());
}

#[tokio::test]
async fn grpc_state_round_trips_and_reports_upstreams_errors() {
    let sidecar = start().await;
    for store in STORES {
        sidecar
            .grpc_save(store, vec![item("raw", b"\x00bytes\xff")])
            .await
            .unwrap();
        let (data, etag) = sidecar.grpc_get(store, "raw").await.unwrap();
        assert_eq!(data, b"\x00bytes\xff");
        assert!(!etag.is_empty());
        assert_eq!(
            sidecar.stored(store, "myapp||raw").await.unwrap(),
            &b"\x00bytes\xff"[..]
        );
        let (missing, missing_etag) = sidecar.grpc_get(store, "missing").await.unwrap();
        assert!(missing.is_empty() && missing_etag.is_empty());

        // JSON content is stored as upstream re-encodes it.
        let mut json_item = item("json", br#" { "b" : 1.0, "a" : "&" } "#);
        json_item
            .metadata
            .insert("contentType".into(), "application/json".into());
        sidecar
            .grpc_save(store, vec![json_item.clone()])
            .await
            .unwrap();
        assert_eq!(
            sidecar.grpc_get(store, "json").await.unwrap().0,
            br#"{"a":"\u0026","b":1}"#
        );
        json_item.value = b"{not json".to_vec();
        let status = sidecar.grpc_save(store, vec![json_item]).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unknown);

        // ETags: a stale one is Aborted, with upstream's ErrorInfo.
        let mut stale = item("raw", b"new");
        stale.etag = Some(Etag {
            value: "00000000-0000-0000-0000-000000000000".into(),
        });
        let status = sidecar.grpc_save(store, vec![stale]).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Aborted);
        assert!(status.message().starts_with(&format!(
            "failed saving state in state store {store}: possible etag mismatch"
        )));
        assert_eq!(error_info(&status).reason, "ERR_STATE_SAVE");
        let mut fresh = item("raw", b"new");
        fresh.etag = Some(Etag {
            value: etag.clone(),
        });
        sidecar.grpc_save(store, vec![fresh]).await.unwrap();

        // first-write through the proto options.
        let mut once = item("once", b"1");
        once.options = Some(StateOptions {
            concurrency: state_options::StateConcurrency::ConcurrencyFirstWrite as i32,
            consistency: state_options::StateConsistency::ConsistencyStrong as i32,
        });
        sidecar.grpc_save(store, vec![once.clone()]).await.unwrap();
        let status = sidecar.grpc_save(store, vec![once]).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Aborted);

        // Empty and illegal keys.
        let status = sidecar
            .grpc_save(store, vec![item("ok", b"1"), item("", b"1")])
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert_eq!(status.message(), "state key cannot be empty");
        assert_eq!(error_info(&status).reason, "ERR_STATE_SAVE");
        let status = sidecar.grpc_get(store, "a||b").await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert_eq!(
            status.message(),
            "input key/keyPrefix 'a||b' can't contain '||'"
        );
        let names: Vec<_> = details(&status).into_iter().map(|(name, _)| name).collect();
        assert_eq!(names, ["BadRequest", "ResourceInfo", "ErrorInfo"]);
        assert_eq!(error_info(&status).reason, "DAPR_STATE_ILLEGAL_KEY");

        // Deletes: one with a stale ETag, then several at once.
        let status = sidecar
            .grpc()
            .delete_state(DeleteStateRequest {
                store_name: store.into(),
                key: "raw".into(),
                etag: Some(Etag { value: etag }),
                ..DeleteStateRequest::default()
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::Aborted);
        assert!(
            status
                .message()
                .starts_with("failed deleting state with key raw: ")
        );
        assert_eq!(error_info(&status).reason, "ERR_STATE_DELETE");
        sidecar
            .grpc()
            .delete_bulk_state(DeleteBulkStateRequest {
                store_name: store.into(),
                states: vec![item("raw", b""), item("json", b""), item("once", b"")],
            })
            .await
            .unwrap();
        for key in ["raw", "json", "once"] {
            assert!(sidecar.grpc_get(store, key).await.unwrap().0.is_empty());
        }

        // Transactions.
        let operation = |kind: &str, item: StateItem| TransactionalStateOperation {
            operation_type: kind.into(),
            request: Some(item),
        };
        sidecar
            .grpc()
            .execute_state_transaction(ExecuteStateTransactionRequest {
                store_name: store.into(),
                operations: vec![
                    operation("upsert", item("t1", b"\x01")),
                    operation("upsert", item("t2", b"\x02")),
                    operation("delete", item("t1", b"")),
                ],
                metadata: HashMap::new(),
            })
            .await
            .unwrap();
        assert!(sidecar.grpc_get(store, "t1").await.unwrap().0.is_empty());
        assert_eq!(sidecar.grpc_get(store, "t2").await.unwrap().0, b"\x02");
        let status = sidecar
            .grpc()
            .execute_state_transaction(ExecuteStateTransactionRequest {
                store_name: store.into(),
                operations: vec![operation("merge", item("t3", b""))],
                metadata: HashMap::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unimplemented);
        assert_eq!(status.message(), "operation type merge not supported");
        assert_eq!(
            error_info(&status).reason,
            "ERR_NOT_SUPPORTED_STATE_OPERATION"
        );
        let mut stale = item("t2", b"");
        stale.etag = Some(Etag {
            value: "00000000-0000-0000-0000-000000000000".into(),
        });
        let status = sidecar
            .grpc()
            .execute_state_transaction(ExecuteStateTransactionRequest {
                store_name: store.into(),
                operations: vec![
                    operation("upsert", item("t3", b"3")),
                    operation("delete", stale),
                ],
                metadata: HashMap::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::Internal);
        assert!(
            status
                .message()
                .starts_with("error while executing state transaction: ")
        );
        assert!(sidecar.grpc_get(store, "t3").await.unwrap().0.is_empty());
    }

    let status = sidecar.grpc_get("nope", "k").await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(status.message(), "state store nope is not found");
    let info = error_info(&status);
    assert_eq!(info.reason, "DAPR_STATE_NOT_FOUND");
    assert!(info.metadata.is_empty());
}

#[tokio::test]
async fn store_calls_are_counted_in_the_component_metrics() {
    let sidecar = start().await;
    sidecar
        .save("memory", json!([{"key": "k", "value": 1}]))
        .await
        .no_content();
    sidecar.get("/v1.0/state/memory/k").await;
    sidecar
        .save("memory", json!([{"key": "k", "value": 2, "etag": "stale"}]))
        .await
        .error(StatusCode::CONFLICT, "ERR_STATE_SAVE");
    sidecar
        .post("/v1.0/state/memory/bulk", r#"{"keys": ["k"]}"#)
        .await;
    sidecar
        .post(
            "/v1.0/state/memory/transaction",
            r#"{"operations": [{"operation": "delete", "request": {"key": "k"}}]}"#,
        )
        .await
        .no_content();
    sidecar
        .post("/v1.0-alpha1/state/memory/query", "{}")
        .await
        .no_content();
    // Refused before reaching the store: not counted.
    sidecar
        .get("/v1.0/state/memory/a%7C%7Cb")
        .await
        .error(StatusCode::BAD_REQUEST, "ERR_MALFORMED_REQUEST");

    let text = sidecar.registry.encode_text();
    let count = |operation: &str, success: &str| -> u64 {
        text.lines()
            .filter(|line| line.starts_with("dapr_component_state_count{"))
            .filter(|line| {
                line.contains(&format!("operation=\"{operation}\""))
                    && line.contains(&format!("success=\"{success}\""))
                    && line.contains("component=\"memory\"")
                    && line.contains("app_id=\"myapp\"")
            })
            .map(|line| line.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
            .sum()
    };
    assert_eq!(count("set", "true"), 1, "{text}");
    assert_eq!(count("set", "false"), 1, "{text}");
    assert_eq!(count("get", "true"), 1, "{text}");
    assert_eq!(count("bulk_get", "true"), 1, "{text}");
    assert_eq!(count("transaction", "true"), 1, "{text}");
    assert_eq!(count("query", "true"), 1, "{text}");
    assert!(text.contains("dapr_component_state_latencies"), "{text}");
}

#[test]
fn store_failures_map_to_upstreams_statuses_per_edge() {
    let mismatch = StateError::Etag {
        kind: EtagErrorKind::Mismatch,
        message: "gone".into(),
    };
    let invalid = StateError::etag_invalid("not a number");
    let backend = StateError::backend("connection refused");
    let cases = [
        (&mismatch, StatusCode::CONFLICT, tonic::Code::Aborted),
        (
            &invalid,
            StatusCode::BAD_REQUEST,
            tonic::Code::InvalidArgument,
        ),
        (
            &backend,
            StatusCode::INTERNAL_SERVER_ERROR,
            tonic::Code::Internal,
        ),
    ];
    for (error, http_status, grpc_code) in cases {
        let http = errors::save_failed("s", error, Protocol::Http);
        assert_eq!(
            (http.http_status, http.code),
            (http_status, "ERR_STATE_SAVE")
        );
        assert!(http.details.is_empty());
        let grpc = errors::delete_failed("k", error, Protocol::Grpc);
        assert_eq!(grpc.grpc_code, grpc_code);
        assert_eq!(
            grpc.details,
            [crate::error::ErrorDetail::Info {
                reason: "ERR_STATE_DELETE".into(),
                metadata: BTreeMap::new(),
            }]
        );
    }
    assert_eq!(
        errors::save_failed("s", &invalid, Protocol::Http).message,
        "failed saving state in state store s: invalid etag value: not a number"
    );
    // Transactions are 500/Internal whatever failed.
    let failed = errors::transaction_failed(&mismatch, Protocol::Http);
    assert_eq!(
        (failed.http_status, failed.grpc_code),
        (StatusCode::INTERNAL_SERVER_ERROR, tonic::Code::Internal)
    );
    let unsupported = errors::transactions_not_supported("s");
    assert_eq!(unsupported.code, "ERR_STATE_STORE_NOT_SUPPORTED");
    assert_eq!(
        unsupported.message,
        "state store s doesn't support transactions"
    );
    assert_eq!(unsupported.grpc_code, tonic::Code::Unimplemented);
}

//! Bindings through the sidecar's own edges, with components started by the loader from
//! YAML: output calls to `bindings.localstorage` over HTTP and gRPC (a file's whole life,
//! refusals, errors, metrics), and input events from `bindings.cron` delivered to real
//! HTTP and gRPC apps (the app asked first or not per `direction`, routes, the app's
//! verdict reaching the binding, `to` answers, stopping).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use bytes::Bytes;
use dapr_components::bindings::InputEvent;
use dapr_kit::metrics::MetricsRegistry;
use dapr_kit::shutdown::Shutdown;
use dapr_proto::google::rpc;
use dapr_proto::runtime as rt;
use dapr_proto::runtime::app_callback_server::{AppCallback, AppCallbackServer};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use prost::Message as _;
use serde_json::{Value, json};

use super::InputBindings;
use crate::channel::{AppChannel, ChannelOptions};
use crate::config::{AppConnection, AppProtocol};
use crate::observability::metrics::{MetricsSettings, SidecarMetrics};
use crate::secrets::SecretScopes;
use crate::test_support::{self, PublicApis};

const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

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

/// A `bindings.localstorage` component writing under `root`.
fn files(name: &str, root: &Path) -> String {
    component(
        name,
        "bindings.localstorage",
        &[("rootPath", root.to_str().unwrap())],
    )
}

/// A `bindings.cron` component firing every second, with extra metadata.
fn ticks(name: &str, extra: &[(&str, &str)]) -> String {
    let mut metadata = vec![("schedule", "@every 1s")];
    metadata.extend_from_slice(extra);
    component(name, "bindings.cron", &metadata)
}

struct Sidecar {
    apis: PublicApis,
    registry: MetricsRegistry,
}

async fn sidecar(yaml: &[String]) -> Sidecar {
    let registry = MetricsRegistry::new();
    let metrics =
        SidecarMetrics::register(&registry, &MetricsSettings::new("myapp", "default")).unwrap();
    let set = test_support::load_yaml(&yaml.join("---\n"), &metrics).await;
    let apis = test_support::serve_public_apis(
        test_support::default_config(),
        set,
        SecretScopes::default(),
        metrics,
    )
    .await;
    Sidecar { apis, registry }
}

/// An HTTP reply.
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }

    /// Asserts upstream's error body.
    fn error(&self, status: StatusCode, code: &str, message: &str) {
        assert_eq!(self.status, status, "{}", self.text());
        assert_eq!(self.headers["content-type"], "application/json");
        let body: Value = serde_json::from_slice(&self.body).unwrap();
        assert_eq!(body, json!({"errorCode": code, "message": message}));
    }
}

impl Sidecar {
    async fn post(&self, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
        self.call(Method::POST, path, headers, body).await
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Reply {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let mut request = http::Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.apis.http));
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

    /// Calls `InvokeBinding`.
    async fn invoke(
        &self,
        name: &str,
        operation: &str,
        data: &[u8],
        metadata: &[(&str, &str)],
    ) -> Result<tonic::Response<rt::InvokeBindingResponse>, tonic::Status> {
        let request = rt::InvokeBindingRequest {
            name: name.to_owned(),
            data: data.to_vec(),
            metadata: metadata
                .iter()
                .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
                .collect(),
            operation: operation.to_owned(),
        };
        self.apis.grpc.clone().invoke_binding(request).await
    }

    /// The sum of the samples of `family` whose labels contain every one of `labels`.
    fn metric(&self, family: &str, labels: &[&str]) -> u64 {
        self.registry
            .encode_text()
            .lines()
            .filter(|line| line.starts_with(&format!("{family}{{")))
            .filter(|line| labels.iter().all(|label| line.contains(label)))
            .map(|line| line.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
            .sum()
    }
}

/// The error a gRPC caller gets for a failed binding call: `Internal`, the message, and
/// an `ErrorInfo` naming the code.
fn assert_grpc_failure(status: &tonic::Status, message: &str) {
    assert_eq!(status.code(), tonic::Code::Internal);
    assert_eq!(status.message(), message);
    let details = rpc::Status::decode(status.details()).unwrap();
    let info = rpc::ErrorInfo::decode(details.details[0].value.as_slice()).unwrap();
    assert_eq!(info.reason, "ERR_INVOKE_OUTPUT_BINDING");
    assert_eq!(info.domain, "dapr.io");
}

#[tokio::test]
async fn http_callers_create_read_list_and_delete_files() {
    let root = tempfile::tempdir().unwrap();
    let sidecar = sidecar(&[files("files", root.path())]).await;

    let created = sidecar
        .post(
            "/v1.0/bindings/files",
            &[],
            r#"{"operation":"create","data":{"b":2,"a":"<1>"},"metadata":{"fileName":"notes/a.json"}}"#,
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text());
    assert_eq!(created.headers["content-type"], "application/json");
    // The data is the JSON text of the value, written as Go writes it.
    let stored = std::fs::read(root.path().join("notes/a.json")).unwrap();
    assert_eq!(stored, br#"{"a":"\u003c1\u003e","b":2}"#);

    // A JSON string's quotes come off in the file (upstream's localstorage unquotes).
    let text = sidecar
        .call(
            Method::PUT,
            "/v1.0/bindings/files",
            &[],
            r#"{"OPERATION":"create","data":"plain","metadata":{"fileName":"b.txt"}}"#,
        )
        .await;
    assert_eq!(text.status, StatusCode::OK, "{}", text.text());
    assert_eq!(std::fs::read(root.path().join("b.txt")).unwrap(), b"plain");

    let read = sidecar
        .post(
            "/v1.0/bindings/files",
            &[],
            r#"{"operation":"get","metadata":{"fileName":"notes/a.json"}}"#,
        )
        .await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.text(), r#"{"a":"\u003c1\u003e","b":2}"#);

    let listed = sidecar
        .post("/v1.0/bindings/files", &[], r#"{"operation":"list"}"#)
        .await;
    assert_eq!(listed.status, StatusCode::OK);
    let mut names: Vec<String> = serde_json::from_slice(&listed.body).unwrap();
    names.sort();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names[0].ends_with("b.txt") && names[1].ends_with("notes/a.json"));

    let deleted = sidecar
        .post(
            "/v1.0/bindings/files",
            &[],
            r#"{"operation":"delete","metadata":{"fileName":"b.txt"}}"#,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert!(deleted.body.is_empty());
    assert!(!root.path().join("b.txt").exists());

    let gone = sidecar
        .post(
            "/v1.0/bindings/files",
            &[],
            r#"{"operation":"get","metadata":{"fileName":"b.txt"}}"#,
        )
        .await;
    assert_eq!(gone.status, StatusCode::INTERNAL_SERVER_ERROR);
    let body: Value = serde_json::from_slice(&gone.body).unwrap();
    assert_eq!(body["errorCode"], "ERR_INVOKE_OUTPUT_BINDING");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("error invoking output binding files: "),
        "{body}"
    );

    assert_eq!(
        sidecar.metric(
            "dapr_component_output_binding_count",
            &[
                "component=\"files\"",
                "operation=\"create\"",
                "success=\"true\""
            ]
        ),
        2
    );
    assert_eq!(
        sidecar.metric(
            "dapr_component_output_binding_count",
            &[
                "component=\"files\"",
                "operation=\"get\"",
                "success=\"false\""
            ]
        ),
        1
    );
}

#[tokio::test]
async fn grpc_callers_create_read_list_and_delete_files() {
    let root = tempfile::tempdir().unwrap();
    let sidecar = sidecar(&[files("files", root.path())]).await;

    let created = sidecar
        .invoke("files", "create", b"raw bytes", &[("fileName", "c.bin")])
        .await
        .unwrap()
        .into_inner();
    assert!(!created.data.is_empty());
    assert_eq!(
        std::fs::read(root.path().join("c.bin")).unwrap(),
        b"raw bytes"
    );

    let read = sidecar
        .invoke("files", "get", b"", &[("fileName", "c.bin")])
        .await
        .unwrap()
        .into_inner();
    assert_eq!(read.data, b"raw bytes");

    let listed = sidecar.invoke("files", "list", b"", &[]).await.unwrap();
    let names: Vec<String> = serde_json::from_slice(&listed.get_ref().data).unwrap();
    assert_eq!(names.len(), 1);
    assert!(names[0].ends_with("c.bin"));

    let deleted = sidecar
        .invoke("files", "delete", b"", &[("fileName", "c.bin")])
        .await
        .unwrap()
        .into_inner();
    assert!(deleted.data.is_empty() && deleted.metadata.is_empty());
    assert!(!root.path().join("c.bin").exists());

    let status = sidecar
        .invoke("files", "get", b"", &[("fileName", "c.bin")])
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Internal);
    assert!(
        status
            .message()
            .starts_with("error invoking output binding files: "),
        "{status:?}"
    );
}

#[tokio::test]
async fn paths_outside_the_root_are_refused() {
    let root = tempfile::tempdir().unwrap();
    let store = root.path().join("store");
    std::fs::create_dir(&store).unwrap();
    std::fs::write(root.path().join("secret.txt"), "s").unwrap();
    let sidecar = sidecar(&[files("files", &store)]).await;

    sidecar
        .post(
            "/v1.0/bindings/files",
            &[],
            r#"{"operation":"create","data":"x","metadata":{"fileName":"../outside.txt"}}"#,
        )
        .await
        .error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ERR_INVOKE_OUTPUT_BINDING",
            "error invoking output binding files: error getting absolute path for file ../outside.txt: the file name points outside rootPath",
        );
    assert!(!root.path().join("outside.txt").exists());

    let status = sidecar
        .invoke("files", "get", b"", &[("fileName", "a/../../secret.txt")])
        .await
        .unwrap_err();
    assert_grpc_failure(
        &status,
        "error invoking output binding files: error getting absolute path for file a/../../secret.txt: the file name points outside rootPath",
    );
}

#[tokio::test]
async fn failures_are_upstreams_invoke_output_binding_errors() {
    let root = tempfile::tempdir().unwrap();
    let sidecar = sidecar(&[files("files", root.path()), ticks("ticks", &[])]).await;
    let http = "/v1.0/bindings";
    let error = StatusCode::INTERNAL_SERVER_ERROR;
    let code = "ERR_INVOKE_OUTPUT_BINDING";

    sidecar
        .post(&format!("{http}/nothing"), &[], r#"{"operation":"get"}"#)
        .await
        .error(
            error,
            code,
            "error invoking output binding nothing: couldn't find output binding nothing",
        );
    // An input-only binding has no output half.
    sidecar
        .post(&format!("{http}/ticks"), &[], r#"{"operation":"create"}"#)
        .await
        .error(
            error,
            code,
            "error invoking output binding ticks: couldn't find output binding ticks",
        );
    // The operation is checked first, even for a binding that does not exist.
    sidecar
        .post(&format!("{http}/nothing"), &[], r#"{"data":1}"#)
        .await
        .error(
            error,
            code,
            "error invoking output binding nothing: operation field is missing from request",
        );
    let supported = {
        let components = sidecar.apis.runtime.components.snapshot();
        components
            .binding("files")
            .unwrap()
            .output
            .as_ref()
            .unwrap()
            .operations()
            .join(" ")
    };
    sidecar
        .post(&format!("{http}/files"), &[], r#"{"operation":"exec"}"#)
        .await
        .error(
            error,
            code,
            &format!(
                "error invoking output binding files: binding files does not support operation exec. supported operations:{supported}"
            ),
        );

    // Bodies that are not the request are malformed.
    let malformed = "ERR_MALFORMED_REQUEST";
    sidecar.post(&format!("{http}/files"), &[], "").await.error(
        StatusCode::BAD_REQUEST,
        malformed,
        "failed deserializing HTTP body: EOF",
    );
    sidecar
        .post(&format!("{http}/files"), &[], r#"{"operation":1}"#)
        .await
        .error(
            StatusCode::BAD_REQUEST,
            malformed,
            "failed deserializing HTTP body: json: cannot unmarshal number into Go struct field OutputBindingRequest.operation of type string",
        );
    sidecar
        .post(&format!("{http}/files"), &[], r#"["create"]"#)
        .await
        .error(
            StatusCode::BAD_REQUEST,
            malformed,
            "failed deserializing HTTP body: json: cannot unmarshal array into Go value of type http.OutputBindingRequest",
        );
    sidecar
        .post(&format!("{http}/files"), &[], r#"{"metadata":{"a":true}}"#)
        .await
        .error(
            StatusCode::BAD_REQUEST,
            malformed,
            "failed deserializing HTTP body: json: cannot unmarshal bool into Go struct field OutputBindingRequest.metadata of type string",
        );

    let status = sidecar
        .invoke("nothing", "get", b"", &[])
        .await
        .unwrap_err();
    assert_grpc_failure(
        &status,
        "error invoking output binding nothing: couldn't find output binding nothing",
    );
    let status = sidecar.invoke("files", "", b"", &[]).await.unwrap_err();
    assert_grpc_failure(
        &status,
        "error invoking output binding files: operation field is missing from request",
    );

    assert_eq!(
        sidecar.metric(
            "dapr_component_output_binding_count",
            &[
                "component=\"nothing\"",
                "operation=\"get\"",
                "success=\"false\""
            ]
        ),
        2
    );
}

#[tokio::test]
async fn the_metadata_api_reports_the_halves_in_use() {
    let root = tempfile::tempdir().unwrap();
    let sidecar = sidecar(&[
        files("files", root.path()),
        ticks("ticks", &[]),
        ticks("silent", &[("direction", "output")]),
    ])
    .await;
    let metadata = sidecar.apis.runtime.metadata.get();
    let capabilities = |name: &str| {
        metadata
            .registered_components
            .iter()
            .find(|component| component.name == name)
            .unwrap()
            .capabilities
            .clone()
    };
    assert_eq!(capabilities("files"), ["OUTPUT_BINDING"]);
    assert_eq!(capabilities("ticks"), ["INPUT_BINDING"]);
    assert!(capabilities("silent").is_empty());
}

/// One request the test app received.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

/// An HTTP app recording every request. It answers `OPTIONS` with 200, except on paths
/// starting `/deaf` (404); `POST` with 200 and `ok`, except on `/failing` (500, `boom`).
#[derive(Clone, Default)]
struct HttpApp {
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl HttpApp {
    fn requests(&self, method: &Method, path: &str) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|seen| seen.method == method && seen.path == path)
            .cloned()
            .collect()
    }

    async fn serve(&self) -> AppChannel {
        async fn answer(
            State(app): State<HttpApp>,
            method: Method,
            uri: Uri,
            headers: HeaderMap,
            body: Body,
        ) -> axum::response::Response {
            let body = body.collect().await.unwrap().to_bytes();
            let path = uri.path().to_owned();
            app.seen.lock().unwrap().push(Seen {
                method: method.clone(),
                path: path.clone(),
                headers,
                body,
            });
            match (method, path.as_str()) {
                (Method::OPTIONS, path) if path.starts_with("/deaf") => {
                    StatusCode::NOT_FOUND.into_response()
                }
                (Method::POST, "/failing") => {
                    (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response()
                }
                (Method::POST, _) => (StatusCode::OK, "ok").into_response(),
                _ => StatusCode::OK.into_response(),
            }
        }
        let router = axum::Router::new()
            .fallback(answer)
            .with_state(self.clone());
        let address = test_support::serve(router).await;
        channel(address, AppProtocol::Http)
    }
}

fn channel(address: SocketAddr, protocol: AppProtocol) -> AppChannel {
    AppChannel::new(
        AppConnection {
            address: "127.0.0.1".into(),
            port: address.port(),
            protocol,
        },
        4 << 20,
        ChannelOptions::default(),
    )
    .unwrap()
}

/// Input readings of `sidecar` into `app`, running until the returned shutdown fires.
fn read_into(sidecar: &Sidecar, app: AppChannel) -> (Shutdown, tokio::task::JoinHandle<()>) {
    let shutdown = Shutdown::new();
    let readings = InputBindings::new(sidecar.apis.runtime.clone(), app);
    let task = tokio::spawn(readings.run(shutdown.signal()));
    (shutdown, task)
}

/// Waits until `done` holds, at most 8 s.
async fn eventually(what: &str, done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn cron_events_reach_an_http_app_that_listens() {
    let sidecar = sidecar(&[
        ticks("ticks", &[]),
        ticks("routed", &[("route", "/custom/path")]),
        ticks("deaf", &[]),
        ticks("outbound", &[("direction", "output")]),
        ticks(
            "declared",
            &[("direction", "output, Input"), ("route", "/deaf-declared")],
        ),
        ticks("failing", &[]),
    ])
    .await;
    let app = HttpApp::default();
    let (shutdown, task) = read_into(&sidecar, app.serve().await);

    eventually("two events on each listened binding", || {
        ["/ticks", "/custom/path", "/deaf-declared", "/failing"]
            .iter()
            .all(|path| app.requests(&Method::POST, path).len() >= 2)
    })
    .await;
    let event = &app.requests(&Method::POST, "/ticks")[0];
    assert_eq!(event.headers["content-type"], "application/json");
    assert!(
        event.headers.contains_key("readtimeutc"),
        "{:?}",
        event.headers
    );
    assert_eq!(event.headers["timezone"], "Local");
    assert!(event.body.is_empty());

    // Asked first: the app's OPTIONS answer decides; 404 means it does not listen.
    assert_eq!(app.requests(&Method::OPTIONS, "/ticks").len(), 1);
    assert_eq!(app.requests(&Method::OPTIONS, "/custom/path").len(), 1);
    assert_eq!(app.requests(&Method::OPTIONS, "/deaf").len(), 1);
    assert!(app.requests(&Method::POST, "/deaf").is_empty());
    // `direction: input` needs no question; `direction: output` has no input half.
    assert!(app.requests(&Method::OPTIONS, "/deaf-declared").is_empty());
    assert!(app.requests(&Method::OPTIONS, "/outbound").is_empty());
    assert!(app.requests(&Method::POST, "/outbound").is_empty());

    let accepted = ["component=\"ticks\"", "success=\"true\""];
    assert!(sidecar.metric("dapr_component_input_binding_count", &accepted) >= 2);
    let rejected = ["component=\"failing\"", "success=\"false\""];
    assert!(sidecar.metric("dapr_component_input_binding_count", &rejected) >= 2);

    // Stopping stops the readings: no event arrives afterwards.
    shutdown.trigger();
    task.await.unwrap();
    let delivered = app.seen.lock().unwrap().len();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(app.seen.lock().unwrap().len(), delivered);
}

#[tokio::test]
async fn the_apps_verdict_reaches_the_binding() {
    let sidecar = sidecar(&[ticks("ticks", &[]), ticks("failing", &[])]).await;
    let app = HttpApp::default();
    let readings = InputBindings::new(sidecar.apis.runtime.clone(), app.serve().await);
    let components = sidecar.apis.runtime.components.snapshot();
    let event = || InputEvent {
        data: Bytes::from_static(b"{\"n\":1}"),
        metadata: [
            ("Custom-Key".to_owned(), "v".to_owned()),
            ("traceparent".to_owned(), TRACEPARENT.to_owned()),
        ]
        .into(),
        content_type: Some("text/plain".to_owned()),
    };

    let accepted = readings
        .handler(components.binding("ticks").unwrap())
        .handle(event())
        .await
        .unwrap();
    assert_eq!(accepted, "ok");
    let delivered = &app.requests(&Method::POST, "/ticks")[0];
    assert_eq!(delivered.body, "{\"n\":1}");
    assert_eq!(delivered.headers["custom-key"], "v");
    assert_eq!(delivered.headers["traceparent"], TRACEPARENT);
    assert_eq!(delivered.headers["content-type"], "application/json");

    let rejected = readings
        .handler(components.binding("failing").unwrap())
        .handle(event())
        .await
        .unwrap_err();
    assert_eq!(
        rejected.0,
        "fails to send binding event to http app channel, status code: 500 body: boom"
    );
}

/// A gRPC app listening to the bindings in `listed`: it records each event and answers
/// with `to` naming `files` (data `{"n": 1.50}`), or fails events of `failing`.
#[derive(Clone, Default)]
struct GrpcApp {
    listed: Vec<String>,
    seen: Arc<Mutex<Vec<(rt::BindingEventRequest, HeaderMap)>>>,
}

#[tonic::async_trait]
impl AppCallback for GrpcApp {
    async fn list_input_bindings(
        &self,
        _: tonic::Request<()>,
    ) -> Result<tonic::Response<rt::ListInputBindingsResponse>, tonic::Status> {
        Ok(tonic::Response::new(rt::ListInputBindingsResponse {
            bindings: self.listed.clone(),
        }))
    }

    async fn on_binding_event(
        &self,
        request: tonic::Request<rt::BindingEventRequest>,
    ) -> Result<tonic::Response<rt::BindingEventResponse>, tonic::Status> {
        let headers = request.metadata().clone().into_headers();
        let request = request.into_inner();
        let failing = request.name == "failing";
        self.seen.lock().unwrap().push((request, headers));
        if failing {
            return Err(tonic::Status::internal("broken"));
        }
        Ok(tonic::Response::new(rt::BindingEventResponse {
            to: vec!["files".to_owned()],
            data: br#"{"n": 1.50}"#.to_vec(),
            ..Default::default()
        }))
    }
}

impl GrpcApp {
    fn events(&self, name: &str) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(event, _)| event.name == name)
            .count()
    }

    async fn serve(&self) -> AppChannel {
        let router =
            tonic::service::Routes::new(AppCallbackServer::new(self.clone())).into_axum_router();
        channel(test_support::serve(router).await, AppProtocol::Grpc)
    }
}

#[tokio::test]
async fn cron_events_reach_a_grpc_app_and_its_answers_reach_output_bindings() {
    let root = tempfile::tempdir().unwrap();
    let sidecar = sidecar(&[
        files("files", root.path()),
        ticks("ticks", &[]),
        ticks("unlisted", &[]),
        ticks("declared", &[("direction", "input")]),
    ])
    .await;
    let app = GrpcApp {
        listed: vec!["ticks".to_owned(), "failing".to_owned()],
        ..Default::default()
    };
    let (shutdown, task) = read_into(&sidecar, app.serve().await);

    eventually("two events on ticks and declared", || {
        app.events("ticks") >= 2 && app.events("declared") >= 2
    })
    .await;
    assert_eq!(app.events("unlisted"), 0);
    {
        let seen = app.seen.lock().unwrap();
        let (event, _) = seen
            .iter()
            .find(|(event, _)| event.name == "ticks")
            .unwrap();
        assert!(event.data.is_empty());
        assert_eq!(event.metadata["timeZone"], "Local");
        assert!(event.metadata.contains_key("readTimeUTC"));
    }
    // Each answer's data went to `files` with `create`, re-encoded as JSON.
    eventually("files written from the answers", || {
        std::fs::read_dir(root.path()).unwrap().count() >= 2
    })
    .await;
    let written = std::fs::read_dir(root.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(std::fs::read(written.path()).unwrap(), br#"{"n":1.5}"#);

    shutdown.trigger();
    task.await.unwrap();

    // A failed call is the binding's error; trace metadata travels as gRPC metadata.
    let readings = InputBindings::new(sidecar.apis.runtime.clone(), app.serve().await);
    let failing = crate::components::BindingHandle::new(
        "failing",
        "bindings.cron",
        dapr_components::bindings::Binding::default(),
        &Default::default(),
    );
    let rejected = readings
        .handler(&failing)
        .handle(InputEvent {
            data: Bytes::from_static(b"x"),
            metadata: [("traceparent".to_owned(), TRACEPARENT.to_owned())].into(),
            content_type: None,
        })
        .await
        .unwrap_err();
    assert_eq!(
        rejected.0,
        "error invoking app: rpc error: code = Internal desc = broken"
    );
    let seen = app.seen.lock().unwrap();
    let (event, headers) = seen
        .iter()
        .find(|(event, _)| event.name == "failing")
        .unwrap();
    assert_eq!(event.data, b"x");
    assert_eq!(headers["traceparent"], TRACEPARENT);
}

/// A web server for `bindings.http`: it records each request and answers 201 with
/// `pong` and an `X-Reply` header.
async fn web_server() -> (SocketAddr, Arc<Mutex<Vec<Seen>>>) {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let record = seen.clone();
    let router = axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Body| {
            let record = record.clone();
            async move {
                let body = body.collect().await.unwrap().to_bytes();
                record.lock().unwrap().push(Seen {
                    method,
                    path: uri.path().to_owned(),
                    headers,
                    body,
                });
                (StatusCode::CREATED, [("x-reply", "r")], "pong")
            }
        },
    );
    (test_support::serve(router).await, seen)
}

#[tokio::test]
async fn metadata_and_trace_reach_the_binding_and_response_metadata_the_caller() {
    let (web, seen) = web_server().await;
    let sidecar = sidecar(&[component(
        "web",
        "bindings.http",
        &[("url", &format!("http://{web}/base"))],
    )])
    .await;

    // Over HTTP: the body's metadata (the query's is not read), the caller's trace and
    // baggage; the answer's metadata as `metadata.*` headers.
    let reply = sidecar
        .post(
            "/v1.0/bindings/web?metadata.X-Query=1",
            &[("traceparent", TRACEPARENT), ("baggage", "k=v")],
            r#"{"operation":"post","data":{"q":1},"metadata":{"path":"items","X-Custom":"c"}}"#,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.text(), "pong");
    assert_eq!(reply.headers["content-type"], "application/json");
    assert_eq!(reply.headers["metadata.statuscode"], "201");
    assert_eq!(reply.headers["metadata.x-reply"], "r");
    {
        let seen = seen.lock().unwrap();
        let request = &seen[0];
        assert_eq!(
            (request.method.as_str(), request.path.as_str()),
            ("POST", "/base/items")
        );
        assert_eq!(request.body, r#"{"q":1}"#);
        assert_eq!(request.headers["x-custom"], "c");
        assert_eq!(request.headers["traceparent"], TRACEPARENT);
        assert_eq!(request.headers["baggage"], "k=v");
        assert!(!request.headers.contains_key("x-query"));
    }

    // Over gRPC: the request's metadata, the caller's trace; the answer's metadata in the
    // reply and as header metadata.
    let mut request = tonic::Request::new(rt::InvokeBindingRequest {
        name: "web".to_owned(),
        data: b"raw".to_vec(),
        metadata: [
            ("path".to_owned(), "grpc".to_owned()),
            ("X-Custom".to_owned(), "g".to_owned()),
        ]
        .into(),
        operation: "put".to_owned(),
    });
    request
        .metadata_mut()
        .insert("traceparent", TRACEPARENT.parse().unwrap());
    let response = sidecar
        .apis
        .grpc
        .clone()
        .invoke_binding(request)
        .await
        .unwrap();
    assert_eq!(
        response.metadata().get("metadata.statuscode").unwrap(),
        "201"
    );
    let answer = response.into_inner();
    assert_eq!(answer.data, b"pong");
    assert_eq!(answer.metadata["statusCode"], "201");
    let seen = seen.lock().unwrap();
    let request = &seen[1];
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("PUT", "/base/grpc")
    );
    assert_eq!(request.body, "raw");
    assert_eq!(request.headers["x-custom"], "g");
    assert_eq!(request.headers["traceparent"], TRACEPARENT);
}

#[tokio::test]
async fn readings_follow_reloads_and_closed_bindings_stay_closed() {
    let resources = tempfile::tempdir().unwrap();
    let file = resources.path().join("ticks.yaml");
    std::fs::write(&file, ticks("ticks", &[("route", "/first")])).unwrap();
    let sidecar = sidecar(&[std::fs::read_to_string(&file).unwrap()]).await;
    let app = HttpApp::default();
    let (shutdown, task) = read_into(&sidecar, app.serve().await);
    eventually("an event on the first route", || {
        !app.requests(&Method::POST, "/first").is_empty()
    })
    .await;
    let replaced = sidecar
        .apis
        .runtime
        .components
        .snapshot()
        .binding("ticks")
        .unwrap()
        .clone();

    // A changed resource replaces the binding: the old one stops reading and is closed,
    // the new one is asked about and read from.
    std::fs::write(&file, ticks("ticks", &[("route", "/second")])).unwrap();
    let watch = crate::components::reload::Watch {
        paths: vec![resources.path().to_path_buf()],
        app_id: "myapp".to_owned(),
        namespace: "default".to_owned(),
        pod_name: String::new(),
        components: sidecar.apis.runtime.components.clone(),
        metrics: SidecarMetrics::disabled(),
    };
    crate::components::reload::reload(&watch).await;
    eventually("an event on the second route", || {
        !app.requests(&Method::POST, "/second").is_empty()
    })
    .await;
    assert_eq!(app.requests(&Method::OPTIONS, "/second").len(), 1);
    let first = app.requests(&Method::POST, "/first").len();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(app.requests(&Method::POST, "/first").len(), first);

    // Once closed, a binding cannot read again.
    replaced.close().await;
    replaced.stop_reading().await;
    let readings = InputBindings::new(sidecar.apis.runtime.clone(), app.serve().await);
    let handler = readings.handler(&replaced);
    let started = replaced
        .start_reading(|input| async move { input.read(handler).await.map_err(|e| e.to_string()) })
        .await;
    assert_eq!(started, Ok(false));

    shutdown.trigger();
    task.await.unwrap();
}

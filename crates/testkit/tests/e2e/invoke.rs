//! Service invocation across two real sidecars: an HTTP app and a gRPC app (the official
//! SDK's `dapr.ext.grpc.App`), each with its own daprd, found through the sqlite name
//! resolver. Calls go through plain HTTP and through the SDK's `invoke_method` over both
//! of its transports, in all four caller/callee protocol combinations.

use std::path::Path;

use ::http::Method;
use bytes::Bytes;
use dapr_testkit::process::GuardedProcess;

use crate::support::{run_sdk, sqlite_config, start_app as start_app_process};
use dapr_testkit::{Daprd, http};
use serde_json::Value;

/// One app with its sidecar.
struct AppWithSidecar {
    daprd: Daprd,
    _app: GuardedProcess,
}

async fn start_app(script: &str, app_id: &str, protocol: &str, config: &Path) -> AppWithSidecar {
    let (port, app) = start_app_process(script).await;
    let daprd = Daprd::builder(app_id)
        .app_port(port)
        .app_protocol(protocol)
        .config(config)
        .start()
        .await
        .unwrap();
    AppWithSidecar { daprd, _app: app }
}

/// Two sidecars: `http-app` (plain HTTP app) and `grpc-app` (SDK gRPC app).
async fn two_apps(dir: &Path) -> (AppWithSidecar, AppWithSidecar) {
    let config = sqlite_config(dir, "");
    let http_app = start_app("http_app.py", "http-app", "http", &config).await;
    let grpc_app = start_app("grpc_app.py", "grpc-app", "grpc", &config).await;
    (http_app, grpc_app)
}

fn json(response: &http::Response) -> Value {
    response
        .json()
        .unwrap_or_else(|err| panic!("not JSON ({err}): {}", response.text()))
}

#[tokio::test]
async fn http_api_reaches_an_http_app_with_everything_intact() {
    let dir = tempfile::tempdir().unwrap();
    let (http_app, grpc_app) = two_apps(dir.path()).await;
    let caller = grpc_app.daprd.base_url();

    let reply = http::request(
        Method::PUT,
        &format!("{caller}/v1.0/invoke/http-app/method/orders/42?expand=items&x=1"),
        &[("content-type", "text/plain"), ("x-custom", "kept")],
        Bytes::from_static(b"hello"),
    )
    .await
    .unwrap();
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.text());
    assert_eq!(reply.header("x-app"), Some("http-app"));
    let echo = json(&reply);
    assert_eq!(echo["method"], "PUT");
    assert_eq!(echo["path"], "/orders/42");
    assert_eq!(echo["query"], "expand=items&x=1");
    assert_eq!(echo["body"], "hello");
    assert_eq!(echo["headers"]["content-type"], "text/plain");
    assert_eq!(echo["headers"]["x-custom"], "kept");
    assert_eq!(echo["headers"]["dapr-caller-app-id"], "grpc-app");
    assert_eq!(echo["headers"]["dapr-callee-app-id"], "http-app");

    // A non-2xx reply from the app reaches the caller unchanged.
    let failed = http::get(&format!("{caller}/v1.0/invoke/http-app/method/status/418"))
        .await
        .unwrap();
    assert_eq!(failed.status.as_u16(), 418);
    assert_eq!(failed.header("x-reply"), Some("418"));
    assert_eq!(json(&failed)["path"], "/status/418");

    // The dapr-app-id header form, on any path.
    let by_header = http::request(
        Method::POST,
        &format!("{caller}/checkout/7"),
        &[("dapr-app-id", "http-app")],
        Bytes::from_static(b"x"),
    )
    .await
    .unwrap();
    assert_eq!(by_header.status.as_u16(), 200, "{}", by_header.text());
    assert_eq!(json(&by_header)["path"], "/checkout/7");

    // Namespaced ids.
    let namespaced = http::get(&format!(
        "{caller}/v1.0/invoke/http-app.default/method/ping"
    ))
    .await
    .unwrap();
    assert_eq!(namespaced.status.as_u16(), 200, "{}", namespaced.text());

    drop(http_app);
}

#[tokio::test]
async fn http_api_reaches_a_grpc_app() {
    let dir = tempfile::tempdir().unwrap();
    let (http_app, _grpc_app) = two_apps(dir.path()).await;
    let caller = http_app.daprd.base_url();

    let reply = http::request(
        Method::POST,
        &format!("{caller}/v1.0/invoke/grpc-app/method/echo?a=b"),
        &[("content-type", "application/json")],
        Bytes::from_static(br#"{"n":1}"#),
    )
    .await
    .unwrap();
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.text());
    let echo = json(&reply);
    assert_eq!(echo["data"], r#"{"n":1}"#);
    assert_eq!(echo["content_type"], "application/json");
    assert_eq!(echo["metadata"]["dapr-caller-app-id"], "http-app");
    assert_eq!(echo["metadata"]["dapr-callee-app-id"], "grpc-app");

    let failed = http::post_json(
        &format!("{caller}/v1.0/invoke/grpc-app/method/fail"),
        &serde_json::json!({}),
    )
    .await
    .unwrap();
    assert_eq!(failed.status.as_u16(), 500, "{}", failed.text());
}

#[tokio::test]
async fn the_sdk_invokes_both_apps_over_both_transports() {
    let dir = tempfile::tempdir().unwrap();
    let (http_app, grpc_app) = two_apps(dir.path()).await;
    let script = "import json\n\
                  from dapr.clients import DaprClient\n\
                  with DaprClient() as client:\n\
                  \x20   r = client.invoke_method('http-app', 'items/1', data='{\"q\":2}', content_type='application/json', http_verb='POST')\n\
                  \x20   echo = json.loads(r.text())\n\
                  \x20   print(echo['method'], echo['path'], echo['body'])\n\
                  \x20   r = client.invoke_method('grpc-app', 'echo', data='ping', content_type='text/plain', http_verb='PUT')\n\
                  \x20   echo = json.loads(r.text())\n\
                  \x20   print(echo['data'], echo['content_type'])\n";
    for transport in ["http", "grpc"] {
        for caller in [&http_app.daprd, &grpc_app.daprd] {
            let stdout = run_sdk(
                caller,
                script,
                &[("DAPR_API_METHOD_INVOCATION_PROTOCOL", transport)],
            )
            .await;
            assert_eq!(
                stdout,
                "POST /items/1 {\"q\":2}\nping text/plain\n",
                "transport {transport}, caller {}",
                caller.app_id()
            );
        }
    }
}

#[tokio::test]
async fn packed_protobuf_messages_keep_their_type_across_sidecars() {
    let dir = tempfile::tempdir().unwrap();
    let (http_app, _grpc_app) = two_apps(dir.path()).await;
    let script = "from dapr.clients import DaprClient\n\
                  from google.protobuf import wrappers_pb2\n\
                  with DaprClient() as client:\n\
                  \x20   r = client.invoke_method('grpc-app', 'proto', data=wrappers_pb2.StringValue(value='hi'))\n\
                  \x20   reply = wrappers_pb2.StringValue()\n\
                  \x20   r.unpack(reply)\n\
                  \x20   print(r.is_proto(), reply.value)\n";
    assert_eq!(
        run_sdk(
            &http_app.daprd,
            script,
            &[("DAPR_API_METHOD_INVOCATION_PROTOCOL", "grpc")]
        )
        .await,
        "True proto=True text=hi\n"
    );
}

#[tokio::test]
async fn bad_invocations_get_upstreams_errors_and_the_sidecar_stays_up() {
    let dir = tempfile::tempdir().unwrap();
    let (http_app, grpc_app) = two_apps(dir.path()).await;
    let caller = http_app.daprd.base_url();

    let unknown = http::get(&format!("{caller}/v1.0/invoke/no-such-app/method/x"))
        .await
        .unwrap();
    assert_eq!(unknown.status.as_u16(), 500, "{}", unknown.text());
    assert_eq!(json(&unknown)["errorCode"], "ERR_DIRECT_INVOKE");

    let no_id = http::get(&format!("{caller}/v1.0/invoke//method/x"))
        .await
        .unwrap();
    assert_eq!(no_id.status.as_u16(), 404, "{}", no_id.text());
    assert_eq!(json(&no_id)["errorCode"], "ERR_DIRECT_INVOKE");

    // The target sidecar is gone.
    let grpc_caller = grpc_app.daprd.base_url();
    http_app.daprd.kill().await.unwrap();
    let gone = http::get(&format!("{grpc_caller}/v1.0/invoke/http-app/method/x"))
        .await
        .unwrap();
    assert_eq!(gone.status.as_u16(), 500, "{}", gone.text());
    assert_eq!(json(&gone)["errorCode"], "ERR_DIRECT_INVOKE");
    assert_eq!(
        http::get(&format!("{grpc_caller}/v1.0/healthz"))
            .await
            .unwrap()
            .status
            .as_u16(),
        204
    );
}

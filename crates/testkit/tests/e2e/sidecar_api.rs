//! The sidecar's own APIs over real HTTP and through the official Python SDK (gRPC):
//! metadata, the API token, the body size limit and the shutdown API.

use std::time::Duration;

use ::http::Method;
use bytes::Bytes;
use dapr_testkit::python::{self, Script};
use dapr_testkit::{Daprd, http};
use serde_json::Value;

use crate::support::run_sdk;

fn write(dir: &std::path::Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// The names of the components the metadata API lists, and the failed ones it reports.
async fn component_names(daprd: &Daprd) -> (Vec<String>, Vec<String>) {
    let doc: Value = http::get(&format!("{}/v1.0/metadata", daprd.base_url()))
        .await
        .unwrap()
        .json()
        .unwrap();
    let mut started: Vec<String> = doc["components"]
        .as_array()
        .map(|components| {
            components
                .iter()
                .map(|component| component["name"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default();
    started.sort();
    let mut failed: Vec<String> = doc["extended"]
        .as_object()
        .map(|extended| {
            extended
                .keys()
                .filter_map(|key| key.strip_prefix("componentError."))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    failed.sort();
    (started, failed)
}

/// Waits until the metadata API lists exactly `expected` started components.
async fn await_components(daprd: &Daprd, expected: &[&str]) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (started, _) = component_names(daprd).await;
        if started == expected {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "components {started:?}, expected {expected:?}\n{}",
            daprd.log_tail(20)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn state_component(name: &str, extra_spec: &str) -> String {
    format!(
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: {name}\nspec:\n  type: state.in-memory\n  version: v1\n{extra_spec}"
    )
}

#[tokio::test]
async fn hot_reload_adds_changes_and_removes_components_while_running() {
    let dir = tempfile::tempdir().unwrap();
    let resources = dir.path().join("resources");
    std::fs::create_dir(&resources).unwrap();
    write(&resources, "first.yaml", &state_component("first", ""));
    let config = write(
        dir.path(),
        "config.yaml",
        "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: cfg\nspec:\n  features:\n    - name: HotReload\n      enabled: true\n",
    );
    let daprd = Daprd::builder("reload-app")
        .resources_path(&resources)
        .config(&config)
        .start()
        .await
        .unwrap();
    await_components(&daprd, &["first"]).await;

    write(&resources, "second.yaml", &state_component("second", ""));
    await_components(&daprd, &["first", "second"]).await;

    // A component that fails with ignoreErrors is reported, not started.
    write(
        &resources,
        "broken.yaml",
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: broken\nspec:\n  type: state.nope\n  version: v1\n  ignoreErrors: true\n",
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while component_names(&daprd).await.1 != ["broken"] {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            daprd.log_tail(20)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Malformed YAML keeps what runs; removing files removes their components.
    write(&resources, "garbage.yaml", "kind: [");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(component_names(&daprd).await.0, ["first", "second"]);
    for file in ["garbage.yaml", "broken.yaml", "first.yaml"] {
        std::fs::remove_file(resources.join(file)).unwrap();
    }
    await_components(&daprd, &["second"]).await;
    assert!(component_names(&daprd).await.1.is_empty());
    assert!(
        daprd
            .terminate(Duration::from_secs(15))
            .await
            .unwrap()
            .success()
    );
}

#[tokio::test]
async fn without_hot_reload_new_files_are_ignored_until_restart() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "first.yaml", &state_component("first", ""));
    let daprd = Daprd::builder("static-app")
        .resources_path(dir.path())
        .start()
        .await
        .unwrap();
    await_components(&daprd, &["first"]).await;
    write(dir.path(), "second.yaml", &state_component("second", ""));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(component_names(&daprd).await.0, ["first"]);
}

#[tokio::test]
async fn metadata_reports_the_sidecar_over_http_and_the_sdk() {
    let dir = tempfile::tempdir().unwrap();
    let resources = dir.path().join("resources");
    std::fs::create_dir(&resources).unwrap();
    write(
        &resources,
        "store.yaml",
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: store\nspec:\n  type: state.in-memory\n  version: v1\n",
    );
    let config = write(
        dir.path(),
        "config.yaml",
        "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: cfg\nspec:\n  features:\n    - name: Feature1\n      enabled: true\n    - name: Off\n      enabled: false\n",
    );
    let daprd = Daprd::builder("meta-app")
        .resources_path(&resources)
        .config(&config)
        .start()
        .await
        .unwrap();
    let base = daprd.base_url();

    let put = http::request(
        Method::PUT,
        &format!("{base}/v1.0/metadata/team"),
        &[],
        Bytes::from_static(b"payments"),
    )
    .await
    .unwrap();
    assert_eq!(put.status.as_u16(), 204);

    let response = http::get(&format!("{base}/v1.0/metadata")).await.unwrap();
    assert_eq!(response.status.as_u16(), 200);
    let doc: Value = response.json().unwrap();
    assert_eq!(doc["id"], "meta-app");
    assert_eq!(doc["runtimeVersion"], env!("CARGO_PKG_VERSION"));
    assert_eq!(doc["enabledFeatures"], serde_json::json!(["Feature1"]));
    assert_eq!(
        doc["components"],
        serde_json::json!([{"name": "store", "type": "state.in-memory", "version": "v1",
            "capabilities": ["ETAG", "TRANSACTIONAL", "TTL", "DELETE_WITH_PREFIX", "QUERY_API"]}])
    );
    assert_eq!(doc["extended"]["team"], "payments");
    assert_eq!(
        doc["extended"]["daprRuntimeVersion"],
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(
        doc["appConnectionProperties"]["channelAddress"],
        "127.0.0.1"
    );
    assert_eq!(doc["actorRuntime"]["runtimeStatus"], "DISABLED");

    let stdout = run_sdk(
        &daprd,
        "from dapr.clients import DaprClient\n\
         with DaprClient() as client:\n\
         \x20   client.set_metadata('owner', 'sdk')\n\
         \x20   meta = client.get_metadata()\n\
         \x20   print(meta.application_id)\n\
         \x20   print(meta.extended_metadata['owner'], meta.extended_metadata['team'])\n\
         \x20   print(','.join(c.name + ':' + c.type for c in meta.registered_components))\n",
        &[],
    )
    .await;
    assert_eq!(stdout, "meta-app\nsdk payments\nstore:state.in-memory\n");
}

#[tokio::test]
async fn the_api_token_guards_every_api_but_health() {
    let daprd = Daprd::builder("token-app")
        .env("DAPR_API_TOKEN", "s3cret")
        .start()
        .await
        .unwrap();
    let base = daprd.base_url();

    assert_eq!(
        http::get(&format!("{base}/v1.0/healthz"))
            .await
            .unwrap()
            .status
            .as_u16(),
        204
    );
    let denied = http::get(&format!("{base}/v1.0/metadata")).await.unwrap();
    assert_eq!(denied.status.as_u16(), 401);
    assert_eq!(denied.text().trim(), "invalid api token");
    let wrong = http::request(
        Method::GET,
        &format!("{base}/v1.0/metadata"),
        &[("dapr-api-token", "nope")],
        Bytes::new(),
    )
    .await
    .unwrap();
    assert_eq!(wrong.status.as_u16(), 401);
    let allowed = http::request(
        Method::GET,
        &format!("{base}/v1.0/metadata"),
        &[("dapr-api-token", "s3cret")],
        Bytes::new(),
    )
    .await
    .unwrap();
    assert_eq!(allowed.status.as_u16(), 200);

    let script = "from dapr.clients import DaprClient\n\
                  import grpc\n\
                  with DaprClient() as client:\n\
                  \x20   try:\n\
                  \x20       print(client.get_metadata().application_id)\n\
                  \x20   except grpc.RpcError as err:\n\
                  \x20       print(err.code().name, err.details())\n";
    assert_eq!(
        run_sdk(&daprd, script, &[("DAPR_API_TOKEN", "s3cret")]).await,
        "token-app\n"
    );
    assert_eq!(
        run_sdk(&daprd, script, &[("DAPR_API_TOKEN", "wrong")]).await,
        "UNAUTHENTICATED authentication error: api token mismatch\n"
    );
}

#[tokio::test]
async fn bodies_over_the_limit_get_upstreams_error_and_the_sidecar_stays_up() {
    let daprd = Daprd::builder("limit-app")
        .args(["--max-body-size", "1Ki"])
        .start()
        .await
        .unwrap();
    let url = format!("{}/v1.0/metadata/big", daprd.base_url());

    let rejected = http::request(Method::PUT, &url, &[], Bytes::from(vec![b'x'; 4096]))
        .await
        .unwrap();
    assert_eq!(rejected.status.as_u16(), 400);
    let body: Value = rejected.json().unwrap();
    assert_eq!(body["errorCode"], "ERR_BODY_READ");
    assert_eq!(
        body["message"],
        "failed to read request body: stream too large"
    );

    let accepted = http::request(Method::PUT, &url, &[], Bytes::from(vec![b'x'; 512]))
        .await
        .unwrap();
    assert_eq!(accepted.status.as_u16(), 204);
    assert_eq!(
        http::get(&format!("{}/v1.0/healthz", daprd.base_url()))
            .await
            .unwrap()
            .status
            .as_u16(),
        204
    );
}

#[tokio::test]
async fn the_shutdown_api_stops_the_sidecar_gracefully() {
    let daprd = Daprd::builder("stop-http").start().await.unwrap();
    let reply = http::request(
        Method::POST,
        &format!("{}/v1.0/shutdown", daprd.base_url()),
        &[],
        Bytes::new(),
    )
    .await
    .unwrap();
    assert_eq!(reply.status.as_u16(), 204);
    let exit = daprd
        .process()
        .wait_exit(Duration::from_secs(15))
        .await
        .unwrap();
    assert!(exit.success(), "{exit:?}\n{}", daprd.log_tail(20));
    assert!(
        daprd.log_tail(20).contains("Shutdown requested via API"),
        "{}",
        daprd.log_tail(20)
    );

    let daprd = Daprd::builder("stop-sdk").start().await.unwrap();
    run_sdk(
        &daprd,
        "from dapr.clients import DaprClient\nwith DaprClient() as c:\n    c.shutdown()\n",
        &[],
    )
    .await;
    let exit = daprd
        .process()
        .wait_exit(Duration::from_secs(15))
        .await
        .unwrap();
    assert!(exit.success(), "{exit:?}\n{}", daprd.log_tail(20));
}

#[tokio::test]
async fn unix_domain_sockets_carry_both_public_apis() {
    let dir = tempfile::tempdir().unwrap();
    let [metrics_port] = dapr_testkit::ports::free_ports(1)[..] else {
        unreachable!()
    };
    let socket_dir = dir.path().display().to_string();
    let daprd = dapr_testkit::ControlPlane::builder(
        "daprd",
        format!("http://127.0.0.1:{metrics_port}/metrics"),
    )
    .args([
        "--app-id",
        "uds-app",
        "--unix-domain-socket",
        &socket_dir,
        "--metrics-port",
        &metrics_port.to_string(),
        "--metrics-listen-address",
        "127.0.0.1",
        "--dapr-internal-grpc-listen-address",
        "127.0.0.1",
    ])
    .env("DAPR_MDNS_INTERFACE", "lo")
    .env("DAPR_HOST_IP", "127.0.0.1")
    .start()
    .await
    .unwrap();
    let http_socket = dir.path().join("dapr-uds-app-http.socket");
    let grpc_socket = dir.path().join("dapr-uds-app-grpc.socket");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !(http_socket.exists() && grpc_socket.exists()) {
        assert!(
            std::time::Instant::now() < deadline,
            "sockets never appeared:\n{}",
            daprd.log_tail(20)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // grpc-core (under the Python SDK) sends the socket path, percent-encoded, as
    // `:authority`; the sidecar must accept it as upstream's does, on the first call and on
    // later ones that refer to the header by its HPACK index. (The SDK's DaprClient itself
    // cannot run over sockets alone: it health-checks over TCP HTTP first.)
    let script = format!(
        "import http.client, json, socket, grpc\n\
         from dapr.proto.runtime.v1 import dapr_pb2_grpc, metadata_pb2\n\
         class UnixConnection(http.client.HTTPConnection):\n\
         \x20   def connect(self):\n\
         \x20       self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n\
         \x20       self.sock.connect({http:?})\n\
         conn = UnixConnection('localhost')\n\
         conn.request('GET', '/v1.0/healthz')\n\
         print(conn.getresponse().status)\n\
         conn = UnixConnection('localhost')\n\
         conn.request('GET', '/v1.0/metadata')\n\
         print(json.loads(conn.getresponse().read())['id'])\n\
         stub = dapr_pb2_grpc.DaprStub(grpc.insecure_channel('unix://{grpc}'))\n\
         print(stub.GetMetadata(metadata_pb2.GetMetadataRequest()).id)\n\
         print(stub.GetMetadata(metadata_pb2.GetMetadataRequest()).id)\n",
        http = http_socket.display().to_string(),
        grpc = grpc_socket.display(),
    );
    let output = python::run(
        &python::sdk_python().unwrap(),
        Script::Source(&script),
        Vec::<(String, String)>::new(),
        crate::support::TIMEOUT,
    )
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "{}\n{}\n{}",
        output.stdout,
        output.stderr,
        daprd.log_tail(20)
    );
    assert_eq!(output.stdout, "204\nuds-app\nuds-app\nuds-app\n");

    let exit = daprd.terminate(Duration::from_secs(15)).await.unwrap();
    assert!(exit.success(), "{exit:?}");
    assert!(
        !http_socket.exists() && !grpc_socket.exists(),
        "socket files must be removed at exit"
    );
}

#[tokio::test]
async fn slow_or_oversized_request_headers_are_refused() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let daprd = Daprd::builder("headers-app").start().await.unwrap();

    // Headers that never finish: the sidecar closes the connection (upstream's
    // ReadHeaderTimeout) instead of holding it forever.
    let mut slow = tokio::net::TcpStream::connect(("127.0.0.1", daprd.http_port()))
        .await
        .unwrap();
    slow.write_all(b"GET /v1.0/healthz HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let mut reply = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), slow.read_to_end(&mut reply)).await;
    assert!(read.is_ok(), "the connection was still open after 30 s");

    // Headers larger than the read buffer.
    let huge = "x".repeat(64 * 1024);
    let mut big = tokio::net::TcpStream::connect(("127.0.0.1", daprd.http_port()))
        .await
        .unwrap();
    big.write_all(
        format!("GET /v1.0/healthz HTTP/1.1\r\nhost: x\r\nx-big: {huge}\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), big.read_to_end(&mut reply)).await;
    let status_line = String::from_utf8_lossy(&reply)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    assert!(
        status_line.contains("431"),
        "oversized headers: {status_line:?}"
    );

    assert_eq!(
        http::get(&format!("{}/v1.0/healthz", daprd.base_url()))
            .await
            .unwrap()
            .status
            .as_u16(),
        204
    );
}

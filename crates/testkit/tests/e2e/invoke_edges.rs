//! Service invocation at its edges, across real sidecars: a 200 MB body streamed through
//! two sidecars in bounded memory, mDNS routing on loopback, gRPC proxying from an app's
//! own gRPC client, failures mid-call, and the graceful drain of in-flight calls.

use std::time::Duration;

use ::http::Method;
use bytes::Bytes;
use dapr_testkit::python::{self, Script};
use dapr_testkit::{Daprd, http};
use serde_json::Value;

use crate::support::{TIMEOUT, sqlite_config, start_app};

/// Peak resident memory of a process in KiB (`VmHWM`).
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test]
async fn a_200_megabyte_body_streams_through_two_sidecars_in_bounded_memory() {
    const PAYLOAD: usize = 200 * 1024 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let config = sqlite_config(dir.path(), "");
    let (port, _app) = start_app("http_app.py").await;
    let callee = Daprd::builder("big-callee")
        .config(&config)
        .app_port(port)
        .args(["--max-body-size", "300Mi"])
        .start()
        .await
        .unwrap();
    let caller = Daprd::builder("big-caller")
        .config(&config)
        .args(["--max-body-size", "300Mi"])
        .start()
        .await
        .unwrap();
    let before = (peak_rss_kib(caller.pid()), peak_rss_kib(callee.pid()));

    let reply = http::request(
        Method::POST,
        &format!("{}/v1.0/invoke/big-callee/method/count", caller.base_url()),
        &[("content-type", "application/octet-stream")],
        Bytes::from(vec![7u8; PAYLOAD]),
    )
    .await
    .unwrap();
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.text());
    let counted: Value = reply.json().unwrap();
    assert_eq!(counted["bytes"], PAYLOAD, "the app must receive every byte");

    let after = (peak_rss_kib(caller.pid()), peak_rss_kib(callee.pid()));
    println!(
        "200 MiB through two sidecars: peak RSS caller {} -> {} MiB, callee {} -> {} MiB",
        before.0 / 1024,
        after.0 / 1024,
        before.1 / 1024,
        after.1 / 1024
    );
    // Streaming means neither sidecar holds the payload: each grows by far less than it.
    let limit_kib = (PAYLOAD / 1024 / 4) as u64;
    assert!(
        after.0 < before.0 + limit_kib,
        "caller grew from {} to {} KiB",
        before.0,
        after.0
    );
    assert!(
        after.1 < before.1 + limit_kib,
        "callee grew from {} to {} KiB",
        before.1,
        after.1
    );
}

#[tokio::test]
async fn mdns_on_loopback_routes_between_sidecars() {
    // No nameResolution in the configuration: mDNS, the standalone default; the test
    // harness pins it to the loopback interface.
    let (port, _app) = start_app("http_app.py").await;
    let callee = Daprd::builder("mdns-callee")
        .app_port(port)
        .start()
        .await
        .unwrap();
    let caller = Daprd::builder("mdns-caller").start().await.unwrap();
    let reply = http::get(&format!(
        "{}/v1.0/invoke/mdns-callee/method/hello",
        caller.base_url()
    ))
    .await
    .unwrap();
    assert_eq!(
        reply.status.as_u16(),
        200,
        "{}\ncaller:\n{}",
        reply.text(),
        caller.log_tail(20)
    );
    assert_eq!(reply.json::<Value>().unwrap()["path"], "/hello");
    drop(callee);
}

#[tokio::test]
async fn the_kubernetes_resolver_routes_by_its_address_template() {
    // In a cluster every sidecar serves the internal API on the same port and the
    // resolver names the peer's Service; here the two sidecars share a port on
    // 127.0.0.1 and 127.0.0.2, and the resolver's `template` names the callee's host
    // (cluster DNS is not available on a test machine; the DNS form is unit-tested).
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: k8s\nspec:\n  \
         nameResolution:\n    component: kubernetes\n    configuration:\n      \
         template: \"127.0.0.1:{{.Port}}\"\n",
    )
    .unwrap();
    let shared_port = dapr_testkit::ports::free_port();
    let (port, _app) = start_app("http_app.py").await;
    let _callee = Daprd::builder("k8s-callee")
        .config(&config)
        .app_port(port)
        .internal_grpc("127.0.0.1", shared_port)
        .start()
        .await
        .unwrap();
    let caller = Daprd::builder("k8s-caller")
        .config(&config)
        .internal_grpc("127.0.0.2", shared_port)
        .start()
        .await
        .unwrap();
    let reply = http::get(&format!(
        "{}/v1.0/invoke/k8s-callee/method/hello",
        caller.base_url()
    ))
    .await
    .unwrap();
    assert_eq!(
        reply.status.as_u16(),
        200,
        "{}\ncaller:\n{}",
        reply.text(),
        caller.log_tail(20)
    );
    let body = reply.json::<Value>().unwrap();
    assert_eq!(body["path"], "/hello");
    assert_eq!(
        body["headers"]["dapr-caller-app-id"], "k8s-caller",
        "{body}"
    );
}

#[tokio::test]
async fn an_apps_own_grpc_client_reaches_another_app_through_the_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let config = sqlite_config(dir.path(), "");
    let (port, _app) = start_app("grpc_app.py").await;
    let _callee = Daprd::builder("proxy-callee")
        .config(&config)
        .app_port(port)
        .app_protocol("grpc")
        .start()
        .await
        .unwrap();
    let caller = Daprd::builder("proxy-caller")
        .config(&config)
        .start()
        .await
        .unwrap();

    // Any gRPC service: here the target app's own AppCallback.OnInvoke, called with the
    // app's generated stub on the caller's sidecar, routed by dapr-app-id metadata.
    let script = format!(
        "import grpc, json\n\
         from dapr.proto.runtime.v1 import appcallback_pb2_grpc\n\
         from dapr.proto.common.v1 import common_pb2\n\
         from google.protobuf import any_pb2\n\
         channel = grpc.insecure_channel('127.0.0.1:{}')\n\
         stub = appcallback_pb2_grpc.AppCallbackStub(channel)\n\
         request = common_pb2.InvokeRequest(method='echo', data=any_pb2.Any(value=b'proxied'), content_type='text/plain')\n\
         reply, call = stub.OnInvoke.with_call(request, metadata=(('dapr-app-id', 'proxy-callee'),))\n\
         echo = json.loads(reply.data.value)\n\
         print(echo['data'], echo['metadata'].get('dapr-caller-app-id'))\n\
         print(dict(call.initial_metadata()).get('x-app'))\n",
        caller.grpc_port()
    );
    let output = python::run(
        &python::sdk_python().unwrap(),
        Script::Source(&script),
        Vec::<(String, String)>::new(),
        TIMEOUT,
    )
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "{}\n{}\n{}",
        output.stdout,
        output.stderr,
        caller.log_tail(20)
    );
    assert_eq!(output.stdout, "proxied proxy-caller\ngrpc-app\n");
}

#[tokio::test]
async fn failures_mid_call_get_upstreams_error_and_the_caller_stays_up() {
    let dir = tempfile::tempdir().unwrap();
    let config = sqlite_config(dir.path(), "");
    let (port, app) = start_app("http_app.py").await;
    let callee = Daprd::builder("fragile-callee")
        .config(&config)
        .app_port(port)
        .start()
        .await
        .unwrap();
    let caller = Daprd::builder("steady-caller")
        .config(&config)
        .start()
        .await
        .unwrap();
    let invoke = |method: &str| {
        format!(
            "{}/v1.0/invoke/fragile-callee/method/{method}",
            caller.base_url()
        )
    };

    // Malformed paths.
    for path in [
        "/v1.0/invoke/fragile-callee/method",
        "/v1.0/invoke/fragile-callee",
        "/v1.0/invoke/a.b.c/method/x",
    ] {
        let reply = http::get(&format!("{}{path}", caller.base_url()))
            .await
            .unwrap();
        assert!(
            reply.status.is_client_error() || reply.status.is_server_error(),
            "{path}: {}",
            reply.status
        );
        assert!(
            reply
                .json()
                .map(|body: Value| body["errorCode"].is_string())
                .unwrap_or(false),
            "{path}: {}",
            reply.text()
        );
    }

    // The target sidecar is killed while the app is still working on the call.
    let url = invoke("sleep/3");
    let slow = tokio::spawn(async move { http::get(&url).await });
    tokio::time::sleep(Duration::from_millis(800)).await;
    callee.kill().await.unwrap();
    let reply = slow.await.unwrap().unwrap();
    assert_eq!(reply.status.as_u16(), 500, "{}", reply.text());
    assert_eq!(
        reply.json::<Value>().unwrap()["errorCode"],
        "ERR_DIRECT_INVOKE"
    );

    // The target app is down behind a live sidecar.
    let callee = Daprd::builder("fragile-callee")
        .config(&config)
        .app_port(port)
        .start()
        .await
        .unwrap();
    app.kill().await.unwrap();
    let reply = http::get(&invoke("x")).await.unwrap();
    assert_eq!(reply.status.as_u16(), 500, "{}", reply.text());
    assert_eq!(
        reply.json::<Value>().unwrap()["errorCode"],
        "ERR_DIRECT_INVOKE"
    );

    assert_eq!(
        http::get(&format!("{}/v1.0/healthz", caller.base_url()))
            .await
            .unwrap()
            .status
            .as_u16(),
        204
    );
    assert_eq!(
        http::get(&format!("{}/v1.0/healthz", callee.base_url()))
            .await
            .unwrap()
            .status
            .as_u16(),
        204
    );
}

#[tokio::test]
async fn sigterm_drains_in_flight_calls_before_exit() {
    let dir = tempfile::tempdir().unwrap();
    let config = sqlite_config(dir.path(), "");
    let (port, _app) = start_app("http_app.py").await;
    let callee = Daprd::builder("draining-callee")
        .config(&config)
        .app_port(port)
        .start()
        .await
        .unwrap();
    let caller = Daprd::builder("drain-caller")
        .config(&config)
        .start()
        .await
        .unwrap();

    let url = format!(
        "{}/v1.0/invoke/draining-callee/method/sleep/2",
        caller.base_url()
    );
    let call = tokio::spawn(async move { http::get(&url).await });
    tokio::time::sleep(Duration::from_millis(700)).await;
    callee.process().signal("TERM").unwrap();
    let reply = call.await.unwrap().unwrap();
    assert_eq!(
        reply.status.as_u16(),
        200,
        "the in-flight call must finish: {}",
        reply.text()
    );
    let exit = callee
        .process()
        .wait_exit(Duration::from_secs(15))
        .await
        .unwrap();
    assert!(exit.success(), "{exit:?}\n{}", callee.log_tail(20));
}

#[tokio::test]
async fn http_endpoints_and_urls_reach_non_dapr_services() {
    let dir = tempfile::tempdir().unwrap();
    let (port, _service) = start_app("http_app.py").await;
    let resources = dir.path().join("resources");
    std::fs::create_dir(&resources).unwrap();
    std::fs::write(
        resources.join("endpoint.yaml"),
        format!(
            "apiVersion: dapr.io/v1alpha1\nkind: HTTPEndpoint\nmetadata:\n  name: external\nspec:\n  baseUrl: http://127.0.0.1:{port}\n  \
             headers:\n    - name: x-endpoint\n      value: from-resource\n"
        ),
    )
    .unwrap();
    let caller = Daprd::builder("endpoint-caller")
        .resources_path(&resources)
        .arg("--enable-api-logging")
        .start()
        .await
        .unwrap();

    let by_name = http::get(&format!(
        "{}/v1.0/invoke/external/method/items?id=3",
        caller.base_url()
    ))
    .await
    .unwrap();
    assert_eq!(by_name.status.as_u16(), 200, "{}", by_name.text());
    let echo: Value = by_name.json().unwrap();
    assert_eq!(echo["path"], "/items");
    assert_eq!(echo["query"], "id=3");
    assert_eq!(echo["headers"]["x-endpoint"], "from-resource");

    let by_url = http::get(&format!(
        "{}/v1.0/invoke/http://127.0.0.1:{port}/method/status/202",
        caller.base_url()
    ))
    .await
    .unwrap();
    assert_eq!(by_url.status.as_u16(), 202, "{}", by_url.text());
    assert_eq!(by_url.json::<Value>().unwrap()["path"], "/status/202");

    let metadata: Value = http::get(&format!("{}/v1.0/metadata", caller.base_url()))
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        metadata["httpEndpoints"],
        serde_json::json!([{"name": "external"}])
    );

    // --enable-api-logging: one line per API call.
    let log = caller.log_tail(40);
    assert!(
        log.lines()
            .filter(|line| line.contains("HTTP API Called"))
            .count()
            >= 3,
        "{log}"
    );
}

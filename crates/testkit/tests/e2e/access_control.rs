//! Access control across real sidecars: a Configuration with `accessControl` on the
//! callees (an HTTP app and an SDK gRPC app), calls from an app with a policy
//! (`frontend`) and from one without (`stranger`), over HTTP invocation, the SDK's gRPC
//! `invoke_method` and gRPC proxying; the callee's ACL metrics count every decision.

use ::http::Method;
use dapr_testkit::process::GuardedProcess;
use dapr_testkit::{Daprd, http};
use serde_json::Value;

use crate::support::{run_sdk, sample, sqlite_config, start_app};

/// `frontend` may call `/open/**` with any verb, `/readonly` with GET and gRPC method
/// `echo`; everything else is denied, for everyone else too.
const ACCESS_CONTROL: &str = "  accessControl:
    defaultAction: deny
    trustDomain: public
    policies:
    - appId: frontend
      defaultAction: deny
      trustDomain: public
      namespace: default
      operations:
      - name: /open/**
        httpVerb: ['*']
        action: allow
      - name: /readonly
        httpVerb: ['GET']
        action: allow
      - name: /echo
        action: allow
";

/// Calls through the SDK's gRPC client (`InvokeService`) and a plain gRPC client
/// proxied by the sidecar (`dapr-app-id`), printing each outcome.
const GRPC_SCRIPT: &str = r#"
import json, os, warnings
warnings.simplefilter("ignore")
import grpc
from dapr.clients import DaprClient
from dapr.proto.common.v1 import common_pb2
from dapr.proto.runtime.v1 import appcallback_pb2_grpc

with DaprClient() as client:
    for method in ["echo", "proto"]:
        try:
            reply = client.invoke_method("grpc-app", method, data="ping", content_type="text/plain")
            print(method, "allowed", reply.text())
        except Exception as error:
            denied = "access control policy has denied access" in str(error)
            print(method, "denied" if denied else "failed", str(error).replace("\n", " "))

channel = grpc.insecure_channel("127.0.0.1:" + os.environ["DAPR_GRPC_PORT"])
stub = appcallback_pb2_grpc.AppCallbackStub(channel)
try:
    stub.OnInvoke(common_pb2.InvokeRequest(method="echo"), metadata=(("dapr-app-id", "grpc-app"),))
    print("proxy allowed")
except grpc.RpcError as error:
    print("proxy", error.code().name, error.details())
"#;

struct Callee {
    daprd: Daprd,
    _app: GuardedProcess,
}

async fn callee(script: &str, app_id: &str, protocol: &str, config: &std::path::Path) -> Callee {
    let (port, app) = start_app(script).await;
    let daprd = Daprd::builder(app_id)
        .app_port(port)
        .app_protocol(protocol)
        .config(config)
        .start()
        .await
        .unwrap();
    Callee { daprd, _app: app }
}

async fn invoke(caller: &Daprd, method: Method, path: &str) -> http::Response {
    http::request(
        method,
        &format!("{}/v1.0/invoke/http-app/method/{path}", caller.base_url()),
        &[],
        "",
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn callees_allow_and_deny_calls_by_policy_in_both_protocols() {
    let dir = tempfile::tempdir().unwrap();
    let config = sqlite_config(dir.path(), ACCESS_CONTROL);
    let http_app = callee("http_app.py", "http-app", "http", &config).await;
    let grpc_app = callee("grpc_app.py", "grpc-app", "grpc", &config).await;
    let mut callers = Vec::new();
    for app_id in ["frontend", "stranger"] {
        callers.push(
            Daprd::builder(app_id)
                .config(&config)
                .start()
                .await
                .unwrap(),
        );
    }
    let (frontend, stranger) = (&callers[0], &callers[1]);

    // HTTP invocation of the HTTP app.
    for (caller, method, path, expected) in [
        (frontend, Method::GET, "open/a", 200),
        (frontend, Method::POST, "open/a/b", 200),
        (frontend, Method::GET, "readonly", 200),
        (frontend, Method::GET, "READONLY", 200),
        (frontend, Method::POST, "readonly", 403),
        (frontend, Method::GET, "closed", 403),
        (stranger, Method::GET, "open/a", 403),
    ] {
        let response = invoke(caller, method.clone(), path).await;
        assert_eq!(
            response.status,
            expected,
            "{} {method} {path}: {}",
            caller.app_id(),
            response.text()
        );
        if expected == 403 {
            let body: Value = response.json().unwrap();
            assert_eq!(body["errorCode"], "ERR_DIRECT_INVOKE");
            let message = body["message"].as_str().unwrap();
            assert!(
                message.starts_with("failed to invoke, id: http-app, err: ")
                    && message.contains(&format!(
                        "access control policy has denied access to id: spiffe://public/ns/default/{} operation: {path} verb: {method}",
                        caller.app_id()
                    )),
                "{message}"
            );
        } else {
            let body: Value = response.json().unwrap();
            assert_eq!(body["method"], method.as_str());
        }
    }
    let metrics = http::get(&format!(
        "http://127.0.0.1:{}/metrics",
        http_app.daprd.metrics_port()
    ))
    .await
    .unwrap()
    .text();
    for (family, app_id, count) in [
        (
            "dapr_runtime_acl_app_policy_action_blocked_total",
            "frontend",
            2.0,
        ),
        (
            "dapr_runtime_acl_global_policy_action_blocked_total",
            "stranger",
            1.0,
        ),
    ] {
        assert_eq!(
            sample(&metrics, family, &[&format!("app_id=\"{app_id}\"")]),
            Some(count),
            "{family} {app_id}: {metrics}"
        );
    }

    // gRPC: the SDK's InvokeService and a proxied call to the gRPC app.
    let output = run_sdk(frontend, GRPC_SCRIPT, &[]).await;
    let lines: Vec<&str> = output.lines().collect();
    assert!(lines[0].starts_with("echo allowed "), "{output}");
    assert!(lines[1].starts_with("proto denied "), "{output}");
    assert!(
        lines[2].starts_with("proxy PERMISSION_DENIED access control policy has denied access to id: spiffe://public/ns/default/frontend operation: /dapr.proto.runtime.v1.AppCallback/OnInvoke"),
        "{output}"
    );
    let output = run_sdk(stranger, GRPC_SCRIPT, &[]).await;
    assert!(output.starts_with("echo denied "), "{output}");
    let metrics = http::get(&format!(
        "http://127.0.0.1:{}/metrics",
        grpc_app.daprd.metrics_port()
    ))
    .await
    .unwrap()
    .text();
    assert_eq!(
        sample(
            &metrics,
            "dapr_runtime_acl_app_policy_action_allowed_total",
            &["app_id=\"frontend\""]
        ),
        Some(1.0),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_bad_access_control_section_stops_the_sidecar() {
    let dir = tempfile::tempdir().unwrap();
    let config = sqlite_config(
        dir.path(),
        "  accessControl:\n    defaultAction: maybe\n    trustDomain: public\n",
    );
    let error = Daprd::builder("misconfigured")
        .config(&config)
        .start()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains(
            "error loading configuration: invalid access control spec: accessControl.defaultAction: invalid action \\\"maybe\\\": use allow or deny"
        ),
        "{error}"
    );
}

/// Over HTTP only `state` v1 is allowed; over gRPC only `metadata` v1.
const API_LISTS: &str = "  api:
    allowed:
    - {name: state, version: v1, protocol: http}
    - {name: metadata, version: v1, protocol: grpc}
";

const API_SCRIPT: &str = r#"
from dapr.clients import DaprClient
from dapr.clients.exceptions import DaprGrpcError

with DaprClient() as client:
    print("metadata", client.get_metadata().application_id)
    try:
        client.save_state("store", "k", "v")
        print("save allowed")
    except DaprGrpcError as error:
        print("save", error.code().name, error.details())
"#;

#[tokio::test]
async fn api_allowlists_restrict_each_protocol_and_keep_health_checks_open() {
    let dir = tempfile::tempdir().unwrap();
    let config = sqlite_config(dir.path(), API_LISTS);
    let resources = dir.path().join("resources");
    std::fs::create_dir_all(&resources).unwrap();
    std::fs::write(
        resources.join("store.yaml"),
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: store\nspec:\n  type: state.in-memory\n  version: v1\n",
    )
    .unwrap();
    let daprd = Daprd::builder("listed")
        .config(&config)
        .resources_path(&resources)
        .start()
        .await
        .unwrap();
    let base = daprd.base_url();

    let saved = http::post_json(
        &format!("{base}/v1.0/state/store"),
        &serde_json::json!([{"key": "k", "value": "v"}]),
    )
    .await
    .unwrap();
    assert_eq!(saved.status, 204, "{}", saved.text());
    let read = http::get(&format!("{base}/v1.0/state/store/k"))
        .await
        .unwrap();
    assert_eq!(read.text(), "\"v\"");
    // Everything else is as if it did not exist (invocation is not allowed either).
    for path in [
        "/v1.0/metadata",
        "/v1.0/publish/bus/topic",
        "/v1.0-alpha1/state/store/query",
        "/v1.0/invoke/x/method/y",
    ] {
        let response = http::get(&format!("{base}{path}")).await.unwrap();
        assert_eq!(response.status, 404, "{path}");
        assert_eq!(response.text(), "404 page not found\n", "{path}");
    }
    let health = http::get(&format!("{base}/v1.0/healthz")).await.unwrap();
    assert_eq!(health.status, 204);

    let output = run_sdk(&daprd, API_SCRIPT, &[]).await;
    assert_eq!(
        output, "metadata listed\nsave UNIMPLEMENTED Not Implemented\n",
        "{output}"
    );
}

#[tokio::test]
async fn a_bad_api_rule_stops_the_sidecar() {
    let dir = tempfile::tempdir().unwrap();
    let config = sqlite_config(
        dir.path(),
        "  api:\n    denied:\n    - {name: state, version: v1, protocol: websocket}\n",
    );
    let error = Daprd::builder("misconfigured")
        .config(&config)
        .start()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains(
            "api.denied[0].protocol: invalid protocol \\\"websocket\\\": use http or grpc"
        ),
        "{error}"
    );
}

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

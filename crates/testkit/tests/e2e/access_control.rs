//! Access control across real sidecars: a Configuration with `accessControl` on the
//! callees (an HTTP app and an SDK gRPC app), calls from an app with a policy
//! (`frontend`), from one whose policy has no default action (`auditor`) and from one
//! without (`stranger`), over HTTP invocation, the SDK's gRPC `invoke_method` and gRPC
//! proxying, and straight to the callee's internal port without any identity; the
//! callee's ACL metrics count every decision, refused calls are not counted as
//! received invocations. Then the API allowlist and denylist over real HTTP and gRPC.

use ::http::Method;
use dapr_testkit::process::GuardedProcess;
use dapr_testkit::{Daprd, http};
use serde_json::Value;

use crate::support::{run_sdk, sample, sqlite_config, start_app};

/// `frontend` may call `/open/**` with any verb, `/readonly` with GET and gRPC method
/// `echo`; `auditor` may GET `/open/*` (decided with the global action, its policy having
/// none); everything else is denied, for everyone else too.
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
    - appId: auditor
      trustDomain: public
      namespace: default
      operations:
      - name: /open/*
        httpVerb: ['GET']
        action: allow
";

/// Calls through the SDK's `invoke_method` (over HTTP, or gRPC `InvokeService` with
/// `DAPR_API_METHOD_INVOCATION_PROTOCOL=grpc`) and a plain gRPC client proxied by the
/// sidecar (`dapr-app-id`), printing each outcome.
const GRPC_SCRIPT: &str = r#"
import os, warnings
warnings.simplefilter("ignore")
import grpc
from dapr.clients import DaprClient
from dapr.clients.exceptions import DaprHttpError
from dapr.proto.common.v1 import common_pb2
from dapr.proto.runtime.v1 import appcallback_pb2_grpc

with DaprClient() as client:
    for method in ["echo", "proto"]:
        try:
            reply = client.invoke_method("grpc-app", method, data="ping", content_type="text/plain")
            print(method, "allowed")
        except DaprHttpError as error:
            print(method, error.status_code, error.error_code, error.message)
        except grpc.RpcError as error:
            print(method, error.code().name, error.details())

channel = grpc.insecure_channel("127.0.0.1:" + os.environ["DAPR_GRPC_PORT"])
stub = appcallback_pb2_grpc.AppCallbackStub(channel)
try:
    stub.OnInvoke(common_pb2.InvokeRequest(method="echo"), metadata=(("dapr-app-id", "grpc-app"),))
    print("proxy allowed")
except grpc.RpcError as error:
    print("proxy", error.code().name, error.details())
"#;

/// A call straight to a sidecar's internal port (as another sidecar would make it) that
/// names no caller: the proxy judges it by the global default.
const ANONYMOUS_SCRIPT: &str = r#"
import os, warnings
warnings.simplefilter("ignore")
import grpc
from dapr.proto.common.v1 import common_pb2
from dapr.proto.runtime.v1 import appcallback_pb2_grpc

channel = grpc.insecure_channel("127.0.0.1:" + os.environ["INTERNAL_PORT"])
stub = appcallback_pb2_grpc.AppCallbackStub(channel)
try:
    stub.OnInvoke(common_pb2.InvokeRequest(method="echo"), metadata=(("dapr-app-id", "grpc-app"),))
    print("anonymous allowed")
except grpc.RpcError as error:
    print("anonymous", error.code().name, error.details())
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
    for app_id in ["frontend", "stranger", "auditor"] {
        callers.push(
            Daprd::builder(app_id)
                .config(&config)
                .start()
                .await
                .unwrap(),
        );
    }
    let (frontend, stranger, auditor) = (&callers[0], &callers[1], &callers[2]);

    // HTTP invocation of the HTTP app.
    for (caller, method, path, expected) in [
        (frontend, Method::GET, "open/a", 200),
        (frontend, Method::POST, "open/a/b", 200),
        (frontend, Method::GET, "readonly", 200),
        (frontend, Method::GET, "READONLY", 200),
        (frontend, Method::POST, "readonly", 403),
        (frontend, Method::GET, "closed", 403),
        (stranger, Method::GET, "open/a", 403),
        (auditor, Method::GET, "open/a", 200),
        (auditor, Method::POST, "open/a", 403),
        (auditor, Method::GET, "closed", 403),
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
    // Labelled with the caller's identity, as upstream.
    for (family, app_id, count) in [
        (
            "dapr_runtime_acl_app_policy_action_allowed_total",
            "frontend",
            Some(4.0),
        ),
        (
            "dapr_runtime_acl_app_policy_action_blocked_total",
            "frontend",
            Some(2.0),
        ),
        (
            "dapr_runtime_acl_global_policy_action_blocked_total",
            "stranger",
            Some(1.0),
        ),
        (
            "dapr_runtime_acl_global_policy_action_allowed_total",
            "auditor",
            Some(1.0),
        ),
        (
            "dapr_runtime_acl_global_policy_action_blocked_total",
            "auditor",
            Some(2.0),
        ),
        (
            "dapr_runtime_acl_app_policy_action_allowed_total",
            "auditor",
            None,
        ),
    ] {
        assert_eq!(
            sample(
                &metrics,
                family,
                &[
                    &format!("app_id=\"{app_id}\""),
                    "namespace=\"default\"",
                    "trustDomain=\"public\""
                ]
            ),
            count,
            "{family} {app_id}: {metrics}"
        );
    }
    // Refused calls never reached the app: not counted as received invocations.
    for (source, count) in [
        ("frontend", Some(4.0)),
        ("auditor", Some(1.0)),
        ("stranger", None),
    ] {
        assert_eq!(
            sample(
                &metrics,
                "dapr_runtime_service_invocation_req_recv_total",
                &[&format!("src_app_id=\"{source}\"")]
            ),
            count,
            "{source}: {metrics}"
        );
    }

    // gRPC: the SDK's InvokeService and a proxied call to the gRPC app.
    let denial = |caller: &str, operation: &str| {
        format!(
            "access control policy has denied access to id: spiffe://public/ns/default/{caller} operation: {operation} verb: NONE"
        )
    };
    let over_http = |caller: &str, operation: &str| {
        format!(
            "403 ERR_DIRECT_INVOKE failed to invoke, id: grpc-app, err: rpc error: code = PermissionDenied desc = {}",
            denial(caller, operation)
        )
    };
    let proxied = format!(
        "proxy PERMISSION_DENIED {}",
        denial("frontend", "/dapr.proto.runtime.v1.AppCallback/OnInvoke")
    );
    // The app speaks gRPC: judged and reported without a verb, whatever the caller sent.
    // As upstream, the calling sidecar wraps the callee's status into ERR_DIRECT_INVOKE:
    // HTTP 403 over HTTP, INTERNAL over gRPC `InvokeService`; proxied calls get it as is.
    let output = run_sdk(frontend, GRPC_SCRIPT, &[]).await;
    assert_eq!(
        output,
        format!(
            "echo allowed\nproto {}\n{proxied}\n",
            over_http("frontend", "proto")
        )
    );
    let output = run_sdk(
        frontend,
        GRPC_SCRIPT,
        &[("DAPR_API_METHOD_INVOCATION_PROTOCOL", "grpc")],
    )
    .await;
    assert_eq!(
        output,
        format!(
            "echo allowed\nproto INTERNAL failed to invoke, id: grpc-app, err: rpc error: code = PermissionDenied desc = {}\n{proxied}\n",
            denial("frontend", "proto")
        )
    );
    let output = run_sdk(stranger, GRPC_SCRIPT, &[]).await;
    assert!(
        output.starts_with(&format!("echo {}\n", over_http("stranger", "echo"))),
        "{output}"
    );
    let internal_port = grpc_app.daprd.internal_grpc_port().to_string();
    let output = run_sdk(
        stranger,
        ANONYMOUS_SCRIPT,
        &[("INTERNAL_PORT", internal_port.as_str())],
    )
    .await;
    assert_eq!(
        output,
        "anonymous PERMISSION_DENIED access control policy has denied access to id:  operation: /dapr.proto.runtime.v1.AppCallback/OnInvoke verb: NONE\n",
        "{output}"
    );
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
        Some(2.0),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_bad_access_control_section_stops_the_sidecar() {
    for (section, expected) in [
        (
            "  accessControl:\n    defaultAction: maybe\n    trustDomain: public\n",
            "error loading configuration: invalid access control spec: accessControl.defaultAction: invalid action \\\"maybe\\\": use allow or deny",
        ),
        (
            "  accessControl:\n    defaultAction: deny\n    policies:\n    - appId: a\n      trustDomain: public\n      namespace: default\n      operations:\n      - {name: /x, httpVerb: [get], action: allow}\n",
            "error loading configuration: invalid access control spec: accessControl.policies[0].operations[0].httpVerb[0]: invalid verb \\\"get\\\"",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let config = sqlite_config(dir.path(), section);
        let error = Daprd::builder("misconfigured")
            .config(&config)
            .start()
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains(expected), "{error}");
    }
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
    // No way around it: neither the `dapr-app-id` header form nor another verb reaches
    // the invocation fallback.
    let header_form = http::request(
        Method::GET,
        &format!("{base}/orders"),
        &[("dapr-app-id", "x")],
        "",
    )
    .await
    .unwrap();
    assert_eq!(header_form.status, 404);
    assert_eq!(header_form.text(), "404 page not found\n");
    // Another verb of a served path: chi's 405, naming the served verbs.
    let patch = http::request(
        Method::PATCH,
        &format!("{base}/v1.0/state/store"),
        &[("dapr-app-id", "x")],
        "",
    )
    .await
    .unwrap();
    assert_eq!(patch.status, 405);
    assert_eq!(
        patch.headers.get_all("allow").iter().collect::<Vec<_>>(),
        ["POST", "PUT"]
    );
    assert!(patch.body.is_empty());
    for path in ["/v1.0/healthz", "/v1.0/healthz/outbound"] {
        let health = http::get(&format!("{base}{path}")).await.unwrap();
        assert_eq!(health.status, 204, "{path}");
    }

    let output = run_sdk(&daprd, API_SCRIPT, &[]).await;
    assert_eq!(
        output, "metadata listed\nsave UNIMPLEMENTED Not Implemented\n",
        "{output}"
    );
}

/// Over HTTP `state` and `invoke` are allowed but `state` is denied again (in upstream's
/// older `v1.0` form); over gRPC `state`, `publish` and `invoke` are allowed and
/// `publish` denied.
const API_DENYLIST: &str = "  api:
    allowed:
    - {name: state, version: v1, protocol: http}
    - {name: invoke, version: v1, protocol: http}
    - {name: state, version: v1, protocol: grpc}
    - {name: publish, version: v1, protocol: grpc}
    - {name: invoke, version: v1, protocol: grpc}
    denied:
    - {name: state, version: v1.0, protocol: http}
    - {name: publish, version: v1, protocol: grpc}
";

const DENYLIST_SCRIPT: &str = r#"
import json
from dapr.clients import DaprClient
from dapr.clients.exceptions import DaprGrpcError

with DaprClient() as client:
    client.save_state("store", "k", "v")
    print("state", client.get_state("store", "k").data.decode())
    reply = client.invoke_method("denylisted", "hello", data="hi", http_verb="POST")
    print("invoke", json.loads(reply.text())["path"])
    for name, call in [
        ("publish", lambda: client.publish_event("bus", "topic", "x")),
        ("metadata", lambda: client.get_metadata()),
    ]:
        try:
            call()
            print(name, "allowed")
        except DaprGrpcError as error:
            info = error.status_details().error_info
            print(name, error.code().name, error.details(), info["reason"], info["domain"],
                  info["metadata"]["http.code"], info["metadata"]["http.error_message"])
"#;

#[tokio::test]
async fn api_denylists_win_and_refused_http_endpoints_fall_back_to_invocation() {
    let dir = tempfile::tempdir().unwrap();
    let config = sqlite_config(dir.path(), API_DENYLIST);
    let resources = dir.path().join("resources");
    std::fs::create_dir_all(&resources).unwrap();
    std::fs::write(
        resources.join("store.yaml"),
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: store\nspec:\n  type: state.in-memory\n  version: v1\n",
    )
    .unwrap();
    let (port, _app) = start_app("http_app.py").await;
    let daprd = Daprd::builder("denylisted")
        .app_port(port)
        .config(&config)
        .resources_path(&resources)
        .start()
        .await
        .unwrap();
    let base = daprd.base_url();

    // The state API is gone: its paths are handled by the invocation fallback, which
    // finds no app id in them...
    for (method, path) in [
        (Method::POST, "/v1.0/state/store"),
        (Method::GET, "/v1.0/state/store/k"),
        (Method::GET, "/v1.0/metadata"),
    ] {
        let response = http::request(method.clone(), &format!("{base}{path}"), &[], "[]")
            .await
            .unwrap();
        assert_eq!(response.status, 404, "{method} {path}: {}", response.text());
        let body: Value = response.json().unwrap();
        assert_eq!(body["errorCode"], "ERR_DIRECT_INVOKE", "{path}");
        assert_eq!(
            body["message"],
            "failed getting app id either from the URL path or the header dapr-app-id"
        );
    }
    // ... or invokes the app named by the header with the whole path as the method.
    let fallback = http::request(
        Method::GET,
        &format!("{base}/v1.0/state/store/k"),
        &[("dapr-app-id", "denylisted")],
        "",
    )
    .await
    .unwrap();
    assert_eq!(fallback.status, 200, "{}", fallback.text());
    let echo: Value = fallback.json().unwrap();
    assert_eq!(echo["path"], "/v1.0/state/store/k");
    let invoked = http::get(&format!("{base}/v1.0/invoke/denylisted/method/hello"))
        .await
        .unwrap();
    assert_eq!(invoked.status, 200, "{}", invoked.text());
    for path in ["/v1.0/healthz", "/v1.0/healthz/outbound"] {
        let health = http::get(&format!("{base}{path}")).await.unwrap();
        assert_eq!(health.status, 204, "{path}");
    }

    let output = run_sdk(
        &daprd,
        DENYLIST_SCRIPT,
        &[("DAPR_API_METHOD_INVOCATION_PROTOCOL", "grpc")],
    )
    .await;
    assert_eq!(
        output,
        "state v\ninvoke /hello\n\
         publish UNIMPLEMENTED Not Implemented Not Implemented dapr.io 501 requested endpoint is not available\n\
         metadata UNIMPLEMENTED Not Implemented Not Implemented dapr.io 501 requested endpoint is not available\n",
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

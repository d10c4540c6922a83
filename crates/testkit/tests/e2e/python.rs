//! Python helpers: one-shot scripts with env and timeout, guarded long-lived apps, and the
//! official SDK's descriptor dump used by proto-check.

use std::time::Duration;

use dapr_testkit::python::{self, Script};
use dapr_testkit::{TestkitError, http, ports, programs, proto_check};

use crate::servers::assert_stopped;

fn system_python() -> std::path::PathBuf {
    programs::find("python3", "python3").unwrap()
}

#[tokio::test]
async fn a_script_sees_its_env_and_reports_output_and_status() {
    let output = python::run(
        &system_python(),
        Script::Source(
            "import os, sys\nprint(os.environ['DAPR_HTTP_PORT'], os.environ['DAPR_GRPC_PORT'])\n\
             print('oops', file=sys.stderr)\nsys.exit(4)",
        ),
        [("DAPR_HTTP_PORT", "3500"), ("DAPR_GRPC_PORT", "50001")],
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    assert_eq!(output.stdout, "3500 50001\n");
    assert_eq!(output.stderr, "oops\n");
    assert_eq!(output.status.code(), Some(4));
}

#[tokio::test]
async fn a_script_file_that_hangs_is_killed_at_its_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("hang.py");
    std::fs::write(&script, "import time\nprint('started')\ntime.sleep(60)\n").unwrap();
    let started = std::time::Instant::now();
    let err = python::run(
        &system_python(),
        Script::File(&script),
        std::iter::empty::<(&str, &str)>(),
        Duration::from_millis(1500),
    )
    .await
    .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(matches!(err, TestkitError::Timeout { .. }), "{err}");
    assert!(err.to_string().contains("started"), "{err}");
}

#[tokio::test]
async fn a_long_lived_app_is_guarded() {
    let port = ports::free_port();
    let app = python::spawn_app(
        &system_python(),
        Script::Source(
            "import http.server, os\n\
             http.server.HTTPServer(('127.0.0.1', int(os.environ['APP_PORT'])), \
             http.server.SimpleHTTPRequestHandler).serve_forever()",
        ),
        [("APP_PORT", port.to_string())],
        Some(port),
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    let response = http::get(&format!("http://127.0.0.1:{port}/"))
        .await
        .unwrap();
    assert_eq!(response.status, 200);
    let pid = app.pid();
    drop(app);
    assert_stopped(pid, port).await;
}

/// Needs the SDK venv (`cargo xtask test` creates it; or set `DAPR_SDK_PYTHON`).
#[test]
fn the_sdk_descriptor_dump_holds_the_runtime_api() {
    let python = python::sdk_python().unwrap_or_else(|err| panic!("{err}"));
    let sdk = proto_check::sdk_descriptor_set(&python).unwrap();
    let runtime = sdk
        .file
        .iter()
        .filter(|file| file.package() == "dapr.proto.runtime.v1")
        .flat_map(|file| &file.service)
        .find(|service| service.name() == "Dapr")
        .expect("service dapr.proto.runtime.v1.Dapr in the SDK");
    let get_state = runtime
        .method
        .iter()
        .find(|method| method.name() == "GetState")
        .expect("Dapr.GetState");
    assert_eq!(
        get_state.input_type(),
        ".dapr.proto.runtime.v1.GetStateRequest"
    );
    assert_eq!(proto_check::compare(&sdk, &sdk, None), vec![]);
}

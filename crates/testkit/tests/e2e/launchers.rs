//! The daprd and control-plane launchers' mechanics (ports, flags, readiness, stop), run
//! with small Python HTTP servers standing in for our binaries, plus their failure reports.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use dapr_testkit::{ControlPlane, Daprd, TestkitError, http, ports, programs};

use crate::servers::assert_stopped;

/// An executable Python script that serves `GET /v1.0/healthz/outbound` with 204 on the
/// port given as `--dapr-http-port` and echoes its command line at `GET /args`.
const SIDECAR_STAND_IN: &str = r#"
import http.server, json, sys
args = sys.argv[1:]
port = int(args[args.index("--dapr-http-port") + 1])
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/v1.0/healthz/outbound":
            self.send_response(204)
            self.end_headers()
        else:
            body = json.dumps(args).encode()
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
"#;

fn write_executable(dir: &Path, name: &str, body: &str) -> PathBuf {
    let python = programs::find("python3", "python3").unwrap();
    let path = dir.join(name);
    std::fs::write(&path, format!("#!{}\n{body}", python.display())).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[tokio::test]
async fn daprd_launcher_passes_upstream_flags_and_waits_for_outbound_health() {
    let scripts = tempfile::tempdir().unwrap();
    let binary = write_executable(scripts.path(), "daprd", SIDECAR_STAND_IN);
    let daprd = Daprd::builder("orders")
        .binary(&binary)
        .resources_path("/tmp/resources")
        .app_port(7000)
        .app_protocol("http")
        .start()
        .await
        .unwrap();
    let ports = daprd.ports();
    assert_eq!(daprd.base_url(), format!("http://127.0.0.1:{}", ports.http));
    let args: Vec<String> = http::get(&format!("{}/args", daprd.base_url()))
        .await
        .unwrap()
        .json()
        .unwrap();
    let expected = format!(
        "--app-id orders --dapr-http-port {} --dapr-grpc-port {} --dapr-internal-grpc-port {} \
         --metrics-port {} --dapr-listen-addresses 127.0.0.1 --metrics-listen-address 127.0.0.1 \
         --dapr-internal-grpc-listen-address 127.0.0.1 \
         --resources-path /tmp/resources --app-port 7000 --app-protocol http \
         --log-level info",
        ports.http, ports.grpc, ports.internal_grpc, ports.metrics
    );
    assert_eq!(args.join(" "), expected);
    assert_eq!(
        daprd.sdk_env(),
        [
            ("DAPR_HTTP_PORT".to_owned(), ports.http.to_string()),
            ("DAPR_GRPC_PORT".to_owned(), ports.grpc.to_string()),
        ]
    );
    let exit = daprd.terminate(Duration::from_secs(10)).await.unwrap();
    assert_eq!(exit.signal(), Some(15), "{exit}");
    let (pid, port) = (daprd.pid(), ports.http);
    drop(daprd);
    assert_stopped(pid, port).await;
}

#[tokio::test]
async fn control_plane_launcher_waits_for_its_readiness_url_and_can_be_killed() {
    let port = ports::free_port();
    let python = programs::find("python3", "python3").unwrap();
    let placement = ControlPlane::builder("placement", format!("http://127.0.0.1:{port}/"))
        .binary(&python)
        .args([
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            &port.to_string(),
        ])
        .start()
        .await
        .unwrap();
    assert_eq!(placement.name(), "placement");
    let response = http::get(&format!("http://127.0.0.1:{port}/"))
        .await
        .unwrap();
    assert_eq!(response.status, 200);
    let exit = placement.kill().await.unwrap();
    assert_eq!(exit.signal(), Some(9), "{exit}");
    assert_stopped(placement.pid(), port).await;
}

#[tokio::test]
async fn a_binary_that_exits_early_is_reported_with_its_log() {
    let scripts = tempfile::tempdir().unwrap();
    let binary = write_executable(
        scripts.path(),
        "sentry",
        "import sys\nprint('cannot load the trust bundle', file=sys.stderr)\nsys.exit(3)\n",
    );
    let err = ControlPlane::builder("sentry", "http://127.0.0.1:1/healthz")
        .binary(&binary)
        .start()
        .await
        .unwrap_err();
    assert!(matches!(err, TestkitError::ExitedEarly { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains("sentry exited (exit code 3)"), "{message}");
    assert!(
        message.contains("cannot load the trust bundle"),
        "{message}"
    );
}

#[tokio::test]
async fn a_binary_that_never_gets_ready_times_out_with_the_last_probe() {
    let port = ports::free_port();
    let err = ControlPlane::builder("scheduler", format!("http://127.0.0.1:{port}/healthz"))
        .binary("/bin/sh")
        .args(["-c", "echo still booting; exec sleep 60"])
        .ready_timeout(Duration::from_secs(1))
        .start()
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, TestkitError::NotReady { .. }), "{message}");
    assert!(
        message.contains("scheduler was not ready within 1s"),
        "{message}"
    );
    assert!(message.contains("Connection refused"), "{message}");
    assert!(message.contains("still booting"), "{message}");
}

#[tokio::test]
async fn a_missing_built_binary_says_how_to_build_it() {
    let err = ControlPlane::builder("no-such-control-plane", "http://127.0.0.1:1/")
        .start()
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("run `cargo build --bins` (cargo xtask test does)"),
        "{err}"
    );
}

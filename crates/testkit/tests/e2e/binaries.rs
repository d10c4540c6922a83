//! Our six binaries as processes: they start with upstream's flags, serve healthz and
//! metrics, reject bad input with upstream's messages, and exit 0 on SIGTERM.

use std::process::Command;
use std::time::Duration;

use dapr_testkit::{ControlPlane, Daprd, TestkitError, binaries, http, ports};

const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// Runs a built binary to completion with `args`, returning (exit code, stdout + stderr).
fn run_to_exit(binary: &str, args: &[&str]) -> (Option<i32>, String) {
    let output = Command::new(binaries::path(binary).unwrap())
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code(), text)
}

#[tokio::test]
async fn daprd_serves_healthz_and_metrics_and_stops_cleanly_on_sigterm() {
    let daprd = Daprd::builder("binaries-app")
        .arg("--enable-mtls")
        .start()
        .await
        .unwrap();

    let healthz = http::get(&format!("{}/v1.0/healthz", daprd.base_url()))
        .await
        .unwrap();
    assert_eq!(healthz.status.as_u16(), 204);
    let outbound = http::get(&format!("{}/v1.0/healthz/outbound", daprd.base_url()))
        .await
        .unwrap();
    assert_eq!(outbound.status.as_u16(), 204);
    let metrics = http::get(&format!(
        "http://127.0.0.1:{}/metrics",
        daprd.metrics_port()
    ))
    .await
    .unwrap();
    assert_eq!(metrics.status.as_u16(), 200);
    assert!(
        metrics
            .header("content-type")
            .unwrap_or_default()
            .starts_with("text/plain"),
        "metrics content type: {:?}",
        metrics.header("content-type")
    );

    let log = daprd.log_tail(50);
    assert!(
        log.contains("flag --enable-mtls is accepted but not implemented yet"),
        "{log}"
    );

    let exit = daprd.terminate(STOP_TIMEOUT).await.unwrap();
    assert!(
        exit.success(),
        "daprd exit {exit:?}\n{}",
        daprd.log_tail(20)
    );
    assert!(
        daprd.log_tail(5).contains("stopped"),
        "{}",
        daprd.log_tail(5)
    );
}

#[tokio::test]
async fn daprd_loads_in_scope_resources_and_its_config_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("components.yaml"),
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: mine\nspec:\n  type: state.in-memory\n  version: v1\n\
         scopes: [scoped-app]\n---\napiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: theirs\nspec:\n  \
         type: state.in-memory\n  version: v1\nscopes: [other-app]\n",
    )
    .unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: appconfig\nspec: {}\n")
        .unwrap();
    let resources = dir.path().join("resources");
    std::fs::create_dir(&resources).unwrap();
    std::fs::rename(
        dir.path().join("components.yaml"),
        resources.join("components.yaml"),
    )
    .unwrap();

    let daprd = Daprd::builder("scoped-app")
        .resources_path(&resources)
        .config(&config)
        .start()
        .await
        .unwrap();
    let log = daprd.log_tail(50);
    assert!(
        log.contains("found component mine (state.in-memory/v1)"),
        "{log}"
    );
    assert!(
        !log.contains("theirs"),
        "out-of-scope component was loaded:\n{log}"
    );
    assert!(log.contains("loaded configuration appconfig"), "{log}");
    assert!(daprd.terminate(STOP_TIMEOUT).await.unwrap().success());
}

#[tokio::test]
async fn daprd_refuses_a_malformed_resource_naming_file_document_and_field() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("broken.yaml"),
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: ok\nspec:\n  type: state.in-memory\n  version: v1\n\
         ---\napiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: bad\nspec:\n  type: state.redis\n  version: v1\n  \
         metadata:\n    - name: [not, a, string]\n",
    )
    .unwrap();
    let err = match Daprd::builder("broken-app")
        .resources_path(dir.path())
        .start()
        .await
    {
        Err(err) => err,
        Ok(daprd) => panic!(
            "daprd started with a malformed resource:\n{}",
            daprd.log_tail(30)
        ),
    };
    let report = err.to_string();
    assert!(matches!(err, TestkitError::ExitedEarly { .. }), "{report}");
    assert!(report.contains("broken.yaml"), "{report}");
    assert!(report.contains("document 2"), "{report}");
    assert!(report.contains("spec.metadata[0].name"), "{report}");
}

#[test]
fn daprd_rejects_bad_flags_with_upstreams_messages() {
    let cases: &[(&[&str], i32, &str)] = &[
        (&[], 1, "parameter app-id cannot be empty"),
        (
            &["--app-id", "a.b"],
            1,
            "parameter app-id cannot contain dots",
        ),
        (
            &["--app-id", "x", "--app-protocol", "ftp", "--app-port", "1"],
            1,
            "invalid value for 'app-protocol': ftp",
        ),
        (
            &["--app-id", "x", "--max-body-size", "lots"],
            1,
            "invalid value for 'max-body-size' option",
        ),
        (&["--app-id", "x", "--no-such-flag"], 2, "--no-such-flag"),
        (
            &["--app-id", "x", "--dapr-http-port"],
            2,
            "--dapr-http-port",
        ),
    ];
    for (args, code, message) in cases {
        let (exit, output) = run_to_exit("daprd", args);
        assert_eq!(exit, Some(*code), "{args:?}: {output}");
        assert!(output.contains(message), "{args:?}: {output}");
        assert!(!output.contains("panicked"), "{args:?}: {output}");
    }
}

#[test]
fn daprd_help_lists_upstreams_flags() {
    let (exit, help) = run_to_exit("daprd", &["--help"]);
    assert_eq!(exit, Some(0), "{help}");
    for flag in [
        "--app-id",
        "--app-port",
        "--app-protocol",
        "--app-channel-address",
        "--app-max-concurrency",
        "--dapr-http-port",
        "--dapr-grpc-port",
        "--dapr-internal-grpc-port",
        "--dapr-listen-addresses",
        "--metrics-port",
        "--enable-metrics",
        "--resources-path",
        "--components-path",
        "--config",
        "--mode",
        "--placement-host-address",
        "--scheduler-host-address",
        "--sentry-address",
        "--control-plane-address",
        "--enable-mtls",
        "--log-level",
        "--log-as-json",
        "--enable-api-logging",
        "--enable-app-health-check",
        "--app-health-check-path",
        "--app-health-probe-interval",
        "--app-health-probe-timeout",
        "--app-health-threshold",
        "--dapr-graceful-shutdown-seconds",
        "--max-body-size",
        "--unix-domain-socket",
    ] {
        assert!(help.contains(flag), "daprd --help lacks {flag}");
    }
}

#[tokio::test]
async fn control_plane_binaries_serve_healthz_and_metrics_and_stop_cleanly() {
    for binary in ["operator", "placement", "sentry", "scheduler", "injector"] {
        let [healthz_port, metrics_port] = ports::free_ports(2)[..] else {
            unreachable!()
        };
        let healthz_url = format!("http://127.0.0.1:{healthz_port}/healthz");
        let service = ControlPlane::builder(binary, healthz_url.clone())
            .args([
                "--healthz-port",
                &healthz_port.to_string(),
                "--healthz-listen-address",
                "127.0.0.1",
                "--metrics-port",
                &metrics_port.to_string(),
                "--metrics-listen-address",
                "127.0.0.1",
                "-log-as-json",
            ])
            .start()
            .await
            .unwrap_or_else(|err| panic!("{binary} did not start: {err}"));

        assert_eq!(
            http::get(&healthz_url).await.unwrap().status.as_u16(),
            200,
            "{binary} healthz"
        );
        let metrics = http::get(&format!("http://127.0.0.1:{metrics_port}/metrics"))
            .await
            .unwrap();
        assert_eq!(metrics.status.as_u16(), 200, "{binary} metrics");

        let first_line = service
            .log_tail(50)
            .lines()
            .next()
            .unwrap_or_default()
            .to_string();
        let entry: serde_json::Value = serde_json::from_str(&first_line)
            .unwrap_or_else(|err| panic!("{binary}: log line is not JSON ({err}): {first_line}"));
        assert_eq!(entry["type"], "log", "{binary}: {entry}");
        assert!(
            entry["msg"].is_string() && entry["time"].is_string(),
            "{binary}: {entry}"
        );

        let exit = service.terminate(STOP_TIMEOUT).await.unwrap();
        assert!(
            exit.success(),
            "{binary} exit {exit:?}\n{}",
            service.log_tail(20)
        );
        assert!(
            http::get(&healthz_url).await.is_err(),
            "{binary} still serves after exit"
        );
    }
}

#[test]
fn control_plane_binaries_reject_bad_flags_without_panicking() {
    for binary in ["operator", "placement", "sentry", "scheduler", "injector"] {
        let (exit, output) = run_to_exit(binary, &["--healthz-port", "not-a-port"]);
        assert_eq!(exit, Some(2), "{binary}: {output}");
        assert!(output.contains("--healthz-port"), "{binary}: {output}");
        assert!(!output.contains("panicked"), "{binary}: {output}");
    }
}

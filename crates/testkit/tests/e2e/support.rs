//! Helpers the cross-process tests share: the Python test apps, sidecar configurations
//! and scripts run with the official SDK.

use std::path::{Path, PathBuf};
use std::time::Duration;

use dapr_testkit::process::{self, GuardedProcess, Launch};
use dapr_testkit::python::{self, Script};
use dapr_testkit::{Daprd, ports, probe, programs, ready};
use tempfile::TempDir;

/// Bound on starting a test app and on one SDK script.
pub const TIMEOUT: Duration = Duration::from_secs(120);

/// Starts `tests/e2e/apps/<script>` on a free loopback port; returns the port and the app.
pub async fn start_app(script: &str) -> (u16, GuardedProcess) {
    let port = ports::free_port();
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/e2e/apps")
        .join(script);
    let app = python::spawn_app(
        &python::sdk_python().unwrap(),
        Script::File(&path),
        [("APP_PORT", port.to_string())],
        Some(port),
        TIMEOUT,
    )
    .await
    .unwrap();
    (port, app)
}

/// Writes `dir/config.yaml`: a Configuration using the sqlite name resolver on a file in
/// `dir` (shared by every sidecar given this config), plus `extra_spec`, YAML lines
/// already indented under `spec:`.
pub fn sqlite_config(dir: &Path, extra_spec: &str) -> PathBuf {
    let path = dir.join("config.yaml");
    std::fs::write(
        &path,
        format!(
            "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: e2e\nspec:\n  nameResolution:\n    \
             component: sqlite\n    version: v1\n    configuration:\n      connectionString: \"{}\"\n{extra_spec}",
            dir.join("nameresolution.db").display()
        ),
    )
    .unwrap();
    path
}

/// Runs `source` with the SDK's Python against `daprd` (plus `extra_env`), asserts it
/// succeeded, and returns its stdout.
pub async fn run_sdk(daprd: &Daprd, source: &str, extra_env: &[(&str, &str)]) -> String {
    let mut env: Vec<(String, String)> = daprd.sdk_env().to_vec();
    env.extend(
        extra_env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let output = python::run(
        &python::sdk_python().unwrap(),
        Script::Source(source),
        env,
        TIMEOUT,
    )
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "SDK script failed:\n{}\n{}\nsidecar log:\n{}",
        output.stdout,
        output.stderr,
        daprd.log_tail(40)
    );
    output.stdout
}

/// A redis-server whose append-only file is fsynced before every reply, on a fixed port,
/// that can be SIGKILLed and started again over the same data: what it acknowledged
/// survives.
pub struct DurableRedis {
    port: u16,
    data: TempDir,
    process: Option<GuardedProcess>,
}

impl DurableRedis {
    /// Starts redis-server on a free port over a fresh data dir.
    pub async fn start() -> Self {
        let mut redis = Self {
            port: ports::free_port(),
            data: tempfile::tempdir().unwrap(),
            process: None,
        };
        redis.restart().await;
        redis
    }

    /// `127.0.0.1:PORT`, the `redisHost` metadata.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts redis-server on its port and data; returns once it answers `PING`.
    pub async fn restart(&mut self) {
        assert!(self.process.is_none(), "redis-server is running");
        let program = programs::find("redis-server", "redis-server").unwrap();
        let launch = Launch::new("redis-durable", program)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--daemonize", "no"])
            .args(["--appendonly", "yes", "--appendfsync", "always"])
            .arg("--dir")
            .arg(self.data.path());
        let process =
            GuardedProcess::spawn(launch, process::temp_dir("redis-durable").unwrap()).unwrap();
        let port = self.port;
        ready::wait_until_ready(&process, Duration::from_secs(30), || {
            probe::redis_ping(port)
        })
        .await
        .unwrap();
        self.process = Some(process);
    }

    /// SIGKILLs redis-server and waits until it is gone.
    pub async fn kill(&mut self) {
        let process = self.process.take().expect("redis-server is running");
        process.kill().await.unwrap();
    }
}

/// The value of the first sample of `family` whose labels contain every `needle`.
pub fn sample(text: &str, family: &str, needles: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|line| line.starts_with(&format!("{family}{{")))
        .find(|line| needles.iter().all(|needle| line.contains(needle)))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

/// Runs a system tool (`redis-cli`, `psql`) and returns its stdout without the final
/// newline.
pub async fn tool(program: &str, package: &str, args: &[&str]) -> String {
    let output = tokio::process::Command::new(programs::find(program, package).unwrap())
        .args(args)
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .trim_end_matches('\n')
        .to_owned()
}

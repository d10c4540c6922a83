//! `startup`: time from exec to a ready health endpoint (`/v1.0/healthz` 204 for daprd,
//! `/healthz` 200 for the control plane), and the resident memory one second later, for
//! every binary.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use dapr_testkit::ports;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::procs::rss_mib;
use super::{Bench, Spread};

/// Longest wait for a binary to be ready.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a binary idles before its memory is read.
const IDLE: Duration = Duration::from_secs(1);

/// One line of the startup table.
#[derive(Debug, Clone)]
pub struct StartupRow {
    /// The binary.
    pub binary: String,
    /// Exec to ready, ms.
    pub ready_ms: Spread,
    /// Resident memory when idle, MiB.
    pub idle_rss_mib: Spread,
}

/// Starts `binary` once: (ms to ready, idle RSS MiB).
async fn start_once(bench: &Bench, binary: &str) -> Result<(f64, f64)> {
    let [http, grpc, internal, metrics] = ports::try_free_ports(4)?[..] else {
        bail!("no free ports");
    };
    let mut command = tokio::process::Command::new(bench.binary(binary));
    let (url, ready_status) = if binary == "daprd" {
        let empty = bench.resources("startup-resources", &[])?;
        command
            .args(["--app-id", "bench-startup", "--log-level", "warn"])
            .args(["--dapr-http-port", &http.to_string()])
            .args(["--dapr-grpc-port", &grpc.to_string()])
            .args(["--dapr-internal-grpc-port", &internal.to_string()])
            .args(["--metrics-port", &metrics.to_string()])
            .arg("--config")
            .arg(bench.config()?)
            .arg("--resources-path")
            .arg(empty);
        (format!("http://127.0.0.1:{http}/v1.0/healthz"), 204)
    } else {
        command
            .args([
                "--healthz-port",
                &http.to_string(),
                "--healthz-listen-address",
                "127.0.0.1",
            ])
            .args([
                "--metrics-port",
                &metrics.to_string(),
                "--metrics-listen-address",
                "127.0.0.1",
            ])
            .args(["--log-level", "warn"]);
        (format!("http://127.0.0.1:{http}/healthz"), 200)
    };
    let client: Client<HttpConnector, Empty<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let uri: hyper::Uri = url.parse()?;
    let started = Instant::now();
    let mut child = command
        .env("DAPR_HOST_IP", "127.0.0.1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {binary}"))?;
    loop {
        if let Ok(response) = client.get(uri.clone()).await
            && response.status().as_u16() == ready_status
        {
            break;
        }
        if started.elapsed() > READY_TIMEOUT {
            bail!("{binary} was not ready within {READY_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let ready = started.elapsed().as_secs_f64() * 1000.0;
    tokio::time::sleep(IDLE).await;
    let rss = child.id().map_or(f64::NAN, rss_mib);
    child.kill().await.ok();
    Ok((ready, rss))
}

/// Runs the startup scenario.
pub async fn run(bench: &Bench) -> Result<Vec<StartupRow>> {
    let mut rows = Vec::new();
    for binary in [
        "daprd",
        "operator",
        "placement",
        "sentry",
        "scheduler",
        "injector",
    ] {
        let mut ready = Vec::new();
        let mut rss = Vec::new();
        for _ in 0..bench.rounds {
            match start_once(bench, binary).await {
                Ok((ms, mib)) => {
                    ready.push(ms);
                    rss.push(mib);
                }
                Err(error) => println!("xtask bench:   {binary}: {error:#}"),
            }
        }
        rows.push(StartupRow {
            binary: binary.to_owned(),
            ready_ms: Spread::of(ready),
            idle_rss_mib: Spread::of(rss),
        });
    }
    Ok(rows)
}

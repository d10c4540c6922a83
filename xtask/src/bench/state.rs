//! `state`: saves and gets of 1 KiB values through daprd on `state.redis` and
//! `state.sqlite`, against the same operations sent straight to redis by
//! `redis-benchmark`, each at 16 calls in flight.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::load::{self, Sample};
use super::{Bench, Spread};

/// Calls in flight.
const CONCURRENCY: usize = 16;
/// Keys read by the get runs.
const KEYS: usize = 100;
/// Value size.
const VALUE_SIZE: usize = 1024;

/// One line of the state table.
#[derive(Debug, Clone)]
pub struct StateRow {
    /// The path (`daprd → state.redis`, `redis-benchmark`).
    pub path: String,
    /// `save` or `get`.
    pub operation: &'static str,
    /// Operations a second.
    pub throughput: Spread,
    /// Median latency, ms.
    pub p50: Spread,
    /// 99th percentile latency, ms.
    pub p99: Spread,
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

fn value() -> String {
    "x".repeat(VALUE_SIZE)
}

async fn send(client: &HttpClient, request: hyper::Request<Full<Bytes>>) -> bool {
    match client.request(request).await {
        Ok(response) => {
            let ok = response.status().is_success();
            ok && response.into_body().collect().await.is_ok()
        }
        Err(_) => false,
    }
}

async fn save(client: HttpClient, url: std::sync::Arc<str>, key: String) -> bool {
    let body = format!("[{{\"key\":\"{key}\",\"value\":\"{}\"}}]", value());
    let Ok(request) = hyper::Request::post(&*url)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
    else {
        return false;
    };
    send(&client, request).await
}

async fn get(client: HttpClient, url: String) -> bool {
    let Ok(request) = hyper::Request::get(url).body(Full::new(Bytes::new())) else {
        return false;
    };
    send(&client, request).await
}

/// The save and get samples of store `store` through `base`.
async fn daprd_round(
    client: &HttpClient,
    base: &str,
    store: &str,
    window: Duration,
) -> (Sample, Sample) {
    let url: std::sync::Arc<str> = format!("{base}/v1.0/state/{store}").into();
    let counter = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (save_client, save_url, save_counter) = (client.clone(), url.clone(), counter.clone());
    let saves = load::closed_loop(CONCURRENCY, window, move || {
        let index = save_counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % KEYS;
        save(save_client.clone(), save_url.clone(), format!("k{index}"))
    })
    .await;
    let get_client = client.clone();
    let gets = load::closed_loop(CONCURRENCY, window, move || {
        let index = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % KEYS;
        get(get_client.clone(), format!("{url}/k{index}"))
    })
    .await;
    (saves, gets)
}

/// `redis-benchmark` SET and GET of 1 KiB values: (ops/s, p50 ms, p99 ms) for each.
fn redis_benchmark(port: u16, requests: u64) -> Result<[(f64, f64, f64); 2]> {
    let program = which::which("redis-benchmark").context("redis-benchmark is not installed")?;
    let output = std::process::Command::new(program)
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-t", "set,get"])
        .args([
            "-d",
            &VALUE_SIZE.to_string(),
            "-c",
            &CONCURRENCY.to_string(),
        ])
        .args([
            "-n",
            &requests.to_string(),
            "-r",
            &KEYS.to_string(),
            "--csv",
        ])
        .output()
        .context("running redis-benchmark")?;
    let text = String::from_utf8_lossy(&output.stdout);
    let row = |test: &str| -> Result<(f64, f64, f64)> {
        let line = text
            .lines()
            .find(|line| line.starts_with(&format!("\"{test}\"")))
            .with_context(|| format!("redis-benchmark printed no {test} line: {text}"))?;
        let fields: Vec<f64> = line
            .split(',')
            .skip(1)
            .map(|field| field.trim_matches('"').parse().unwrap_or(f64::NAN))
            .collect();
        // rps, avg, min, p50, p95, p99, max
        match fields.as_slice() {
            [rps, _, _, p50, _, p99, ..] => Ok((*rps, *p50, *p99)),
            _ => bail!("unexpected redis-benchmark line {line}"),
        }
    };
    Ok([row("SET")?, row("GET")?])
}

fn row(path: &str, operation: &'static str, samples: &[Sample]) -> StateRow {
    StateRow {
        path: path.to_owned(),
        operation,
        throughput: Spread::of(samples.iter().map(Sample::throughput)),
        p50: Spread::of(samples.iter().map(|sample| sample.percentile_ms(0.5))),
        p99: Spread::of(samples.iter().map(|sample| sample.percentile_ms(0.99))),
    }
}

/// Runs the state scenario.
pub async fn run(bench: &Bench) -> Result<Vec<StateRow>> {
    let redis = dapr_testkit::Redis::start().await?;
    let sqlite = bench.scratch.path().join("state.db");
    let components = vec![
        format!(
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: redis\nspec:\n  type: state.redis\n  \
             version: v1\n  metadata:\n  - name: redisHost\n    value: \"{}\"\n",
            redis.host()
        ),
        format!(
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: sqlite\nspec:\n  type: state.sqlite\n  \
             version: v1\n  metadata:\n  - name: connectionString\n    value: \"{}\"\n",
            sqlite.display()
        ),
    ];
    let resources = bench.resources("state-resources", &components)?;
    let daprd = bench.sidecar("bench-state", None, Some(&resources)).await?;
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: HttpClient = Client::builder(TokioExecutor::new()).build(connector);
    let base = daprd.base_url();
    // Warm up and fill the keys the gets read.
    for store in ["redis", "sqlite"] {
        daprd_round(&client, &base, store, Duration::from_secs(1)).await;
    }
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); 4];
    let mut direct: Vec<[(f64, f64, f64); 2]> = Vec::new();
    for round in 0..bench.rounds {
        println!("xtask bench:   round {}/{}", round + 1, bench.rounds);
        for (index, store) in ["redis", "sqlite"].iter().enumerate() {
            let (saves, gets) = daprd_round(&client, &base, store, bench.window).await;
            samples[index * 2].push(saves);
            samples[index * 2 + 1].push(gets);
        }
        let port = redis.port();
        let requests = 20_000 * bench.window.as_secs().max(1);
        direct.push(tokio::task::spawn_blocking(move || redis_benchmark(port, requests)).await??);
    }
    let mut rows = vec![
        row("daprd → state.redis", "save", &samples[0]),
        row("daprd → state.redis", "get", &samples[1]),
    ];
    for (index, operation) in [(0, "save"), (1, "get")] {
        rows.push(StateRow {
            path: "redis-benchmark → redis (baseline)".into(),
            operation,
            throughput: Spread::of(direct.iter().map(|round| round[index].0)),
            p50: Spread::of(direct.iter().map(|round| round[index].1)),
            p99: Spread::of(direct.iter().map(|round| round[index].2)),
        });
    }
    rows.push(row("daprd → state.sqlite", "save", &samples[2]));
    rows.push(row("daprd → state.sqlite", "get", &samples[3]));
    Ok(rows)
}

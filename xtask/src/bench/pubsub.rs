//! `pubsub`: publish-to-delivery throughput and end-to-end latency through one sidecar
//! to an HTTP subscriber, on `pubsub.in-memory` and `pubsub.redis`; messages are
//! published over HTTP with 16 in flight and carry their send time.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::apps::{self, now_us};
use super::{Bench, Spread};

/// Messages per round.
const MESSAGES: usize = 3000;
/// Publishes in flight.
const CONCURRENCY: usize = 16;
/// Longest wait for the last delivery.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(60);

/// One line of the pub/sub table.
#[derive(Debug, Clone)]
pub struct PubSubRow {
    /// The broker.
    pub broker: String,
    /// Messages delivered a second (first publish to last delivery).
    pub throughput: Spread,
    /// Median publish-to-delivery latency, ms.
    pub p50: Spread,
    /// 99th percentile, ms.
    pub p99: Spread,
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

async fn publish(client: &HttpClient, url: &str) -> bool {
    let body = format!("{{\"sent_us\":{}}}", now_us());
    let Ok(request) = hyper::Request::post(url)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
    else {
        return false;
    };
    match client.request(request).await {
        Ok(response) => {
            let ok = response.status().is_success();
            ok && response.into_body().collect().await.is_ok()
        }
        Err(_) => false,
    }
}

/// Publishes `MESSAGES` messages; returns when the first was sent.
async fn publish_all(client: &HttpClient, url: Arc<str>) -> u64 {
    let first = now_us();
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..CONCURRENCY {
        let (client, url, next) = (client.clone(), url.clone(), next.clone());
        workers.spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < MESSAGES {
                publish(&client, &url).await;
            }
        });
    }
    while workers.join_next().await.is_some() {}
    first
}

/// Runs the pub/sub scenario.
pub async fn run(bench: &Bench) -> Result<Vec<PubSubRow>> {
    let redis = dapr_testkit::Redis::start().await?;
    let brokers = [
        ("pubsub.in-memory", String::new()),
        (
            "pubsub.redis",
            format!(
                "  metadata:\n  - name: redisHost\n    value: \"{}\"\n",
                redis.host()
            ),
        ),
    ];
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: HttpClient = Client::builder(TokioExecutor::new()).build(connector);
    let mut rows = Vec::new();
    for (broker, metadata) in brokers {
        println!("xtask bench:   {broker}");
        let (app, deliveries) = apps::subscriber().await?;
        let documents = vec![
            format!(
                "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: bus\nspec:\n  type: {broker}\n  version: v1\n{metadata}"
            ),
            "apiVersion: dapr.io/v2alpha1\nkind: Subscription\nmetadata:\n  name: orders\nspec:\n  pubsubname: bus\n  \
             topic: orders\n  routes:\n    default: /orders\n"
                .to_owned(),
        ];
        let resources = bench.resources(&format!("pubsub-{broker}"), &documents)?;
        let daprd = bench
            .sidecar("bench-pubsub", Some((app, "http")), Some(&resources))
            .await?;
        let url: Arc<str> = format!("{}/v1.0/publish/bus/orders", daprd.base_url()).into();
        let (mut throughputs, mut p50s, mut p99s) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..=bench.rounds {
            if let Ok(mut seen) = deliveries.lock() {
                *seen = apps::Deliveries::default();
            }
            let first = publish_all(&client, url.clone()).await;
            let waiting = Instant::now();
            loop {
                let count = deliveries.lock().map_or(0, |seen| seen.latencies_us.len());
                if count >= MESSAGES || waiting.elapsed() > DELIVERY_TIMEOUT {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            // Round 0 warms the path up and is not counted.
            if round == 0 {
                continue;
            }
            let Ok(seen) = deliveries.lock() else {
                continue;
            };
            let mut latencies = seen.latencies_us.clone();
            latencies.sort_unstable();
            let elapsed = seen.last_us.saturating_sub(first).max(1) as f64 / 1e6;
            throughputs.push(latencies.len() as f64 / elapsed);
            let percentile = |quantile: f64| {
                latencies
                    .get(((latencies.len().max(1) - 1) as f64 * quantile) as usize)
                    .map_or(f64::NAN, |micros| *micros as f64 / 1000.0)
            };
            p50s.push(percentile(0.5));
            p99s.push(percentile(0.99));
            println!(
                "xtask bench:   round {round}: {} of {MESSAGES} delivered",
                latencies.len()
            );
        }
        rows.push(PubSubRow {
            broker: broker.to_owned(),
            throughput: Spread::of(throughputs),
            p50: Spread::of(p50s),
            p99: Spread::of(p99s),
        });
    }
    Ok(rows)
}

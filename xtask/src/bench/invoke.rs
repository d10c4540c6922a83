//! `invoke-http`, `invoke-grpc` and the `invoke-proxy-peer` reference: the load generator
//! (app A) calls app B with 1 KiB payloads directly, through two sidecars (daprd A, then
//! daprd B), and (HTTP) through one nginx hop; at a fixed 1000 requests a second and at
//! maximum throughput, the variants interleaved round by round.

use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use dapr_proto::common::InvokeRequest;
use dapr_proto::runtime::InvokeServiceRequest;
use dapr_proto::runtime::app_callback_client::AppCallbackClient;
use dapr_proto::runtime::dapr_client::DaprClient;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::load::{self, Sample};
use super::procs::{CpuMeter, peak_rss_mib};
use super::{Bench, Nginx, VariantResult};

/// The payload of every call.
const PAYLOAD_SIZE: usize = 1024;
/// The fixed rate.
const FIXED_RATE: u32 = 1000;
/// Calls in flight at maximum throughput.
const MAX_CONCURRENCY: usize = 32;

type HttpClient = Client<HttpConnector, Full<Bytes>>;

fn http_client() -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(1024)
        .build(connector)
}

/// One HTTP call of `url` with the payload; true when it answered 200 with it.
async fn http_call(client: HttpClient, url: std::sync::Arc<str>, payload: Bytes) -> bool {
    let Ok(request) = hyper::Request::post(&*url)
        .header("content-type", "application/octet-stream")
        .body(Full::new(payload))
    else {
        return false;
    };
    match client.request(request).await {
        Ok(response) => {
            let ok = response.status() == hyper::StatusCode::OK;
            let body = response.into_body().collect().await;
            ok && body.is_ok_and(|body| body.to_bytes().len() == PAYLOAD_SIZE)
        }
        Err(_) => false,
    }
}

/// A way of reaching app B.
#[derive(Clone)]
enum Target {
    Http(std::sync::Arc<str>),
    GrpcSidecar(DaprClient<tonic::transport::Channel>),
    GrpcDirect(AppCallbackClient<tonic::transport::Channel>),
}

fn invoke_message(payload: &Bytes) -> InvokeRequest {
    InvokeRequest {
        method: "echo".into(),
        data: Some(prost_types::Any {
            type_url: String::new(),
            value: payload.to_vec(),
        }),
        content_type: "application/octet-stream".into(),
        http_extension: None,
    }
}

async fn call(target: Target, client: HttpClient, payload: Bytes) -> bool {
    match target {
        Target::Http(url) => http_call(client, url, payload).await,
        Target::GrpcSidecar(mut dapr) => dapr
            .invoke_service(InvokeServiceRequest {
                id: "bench-b".into(),
                message: Some(invoke_message(&payload)),
            })
            .await
            .is_ok_and(|reply| {
                reply
                    .into_inner()
                    .data
                    .is_some_and(|data| data.value.len() == PAYLOAD_SIZE)
            }),
        Target::GrpcDirect(mut app) => {
            app.on_invoke(invoke_message(&payload))
                .await
                .is_ok_and(|reply| {
                    reply
                        .into_inner()
                        .data
                        .is_some_and(|data| data.value.len() == PAYLOAD_SIZE)
                })
        }
    }
}

async fn fixed(target: &Target, client: &HttpClient, window: Duration) -> Sample {
    let (target, client) = (target.clone(), client.clone());
    let payload = Bytes::from(vec![b'x'; PAYLOAD_SIZE]);
    load::open_loop(FIXED_RATE, window, move || {
        call(target.clone(), client.clone(), payload.clone())
    })
    .await
}

async fn maximum(target: &Target, client: &HttpClient, window: Duration) -> Sample {
    let (target, client) = (target.clone(), client.clone());
    let payload = Bytes::from(vec![b'x'; PAYLOAD_SIZE]);
    load::closed_loop(MAX_CONCURRENCY, window, move || {
        call(target.clone(), client.clone(), payload.clone())
    })
    .await
}

/// Runs one protocol's variants; `sidecar_pids` are daprd A and B.
async fn measure(
    bench: &Bench,
    variants: &[(&str, Target)],
    sidecar_pids: [u32; 2],
) -> Result<Vec<VariantResult>> {
    let client = http_client();
    let mut results: Vec<VariantResult> = variants
        .iter()
        .map(|(name, _)| VariantResult::new(name))
        .collect();
    for (_, target) in variants {
        fixed(target, &client, Duration::from_secs(1)).await;
    }
    for round in 0..bench.rounds {
        println!("xtask bench:   round {}/{}", round + 1, bench.rounds);
        for ((name, target), result) in variants.iter().zip(&mut results) {
            let is_sidecar = name.contains("sidecars");
            let meter = CpuMeter::start(&sidecar_pids);
            let sample = fixed(target, &client, bench.window).await;
            if is_sidecar {
                result.cores_per_1000.push(meter.cores());
            }
            result.fixed.push(sample);
            let sample = maximum(target, &client, bench.window).await;
            result.maximum.push(sample);
        }
    }
    for result in &mut results {
        if result.name.contains("sidecars") {
            result.peak_rss_mib = sidecar_pids.iter().map(|pid| peak_rss_mib(*pid)).collect();
        }
    }
    Ok(results)
}

/// `invoke-http` (with the nginx reference when nginx is installed).
pub async fn http(bench: &Bench) -> Result<Vec<VariantResult>> {
    let app = super::apps::http_echo().await?;
    let callee = bench.sidecar("bench-b", Some((app, "http")), None).await?;
    let caller = bench.sidecar("bench-a", None, None).await?;
    let mut variants = vec![
        (
            "direct",
            Target::Http(format!("http://127.0.0.1:{app}/echo").into()),
        ),
        (
            "two sidecars",
            Target::Http(format!("{}/v1.0/invoke/bench-b/method/echo", caller.base_url()).into()),
        ),
    ];
    let nginx = match Nginx::start(bench, app).await {
        Ok(nginx) => {
            variants.push((
                "one nginx hop",
                Target::Http(format!("http://127.0.0.1:{}/echo", nginx.port).into()),
            ));
            Some(nginx)
        }
        Err(error) => {
            println!("xtask bench: the nginx reference is skipped: {error:#}");
            None
        }
    };
    let results = measure(bench, &variants, [caller.pid(), callee.pid()]).await;
    drop(nginx);
    results
}

/// `invoke-grpc`: `InvokeService` through two sidecars to a gRPC app, against calling
/// the app's `OnInvoke` directly.
pub async fn grpc(bench: &Bench) -> Result<Vec<VariantResult>> {
    let app = super::apps::grpc_echo().await?;
    let callee = bench.sidecar("bench-b", Some((app, "grpc")), None).await?;
    let caller = bench.sidecar("bench-a", None, None).await?;
    let direct = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{app}"))?
        .tcp_nodelay(true)
        .connect()
        .await
        .context("connecting to the gRPC app")?;
    let sidecar = tonic::transport::Endpoint::from_shared(caller.grpc_endpoint())?
        .tcp_nodelay(true)
        .connect()
        .await
        .context("connecting to daprd A")?;
    let variants = vec![
        ("direct", Target::GrpcDirect(AppCallbackClient::new(direct))),
        (
            "two sidecars",
            Target::GrpcSidecar(DaprClient::new(sidecar)),
        ),
    ];
    measure(bench, &variants, [caller.pid(), callee.pid()]).await
}

//! Metrics and a distributed trace across two real sidecars: a caller sends a
//! `traceparent`, sidecar A forwards the call to sidecar B and its HTTP app, and both
//! sidecars export their spans to a Zipkin collector run by this test.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ::http::{Method, Request, Response};
use bytes::Bytes;
use dapr_testkit::{Daprd, http};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;

use crate::support::{sample, sqlite_config, start_app};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN_ID: &str = "00f067aa0ba902b7";

/// A Zipkin v2 collector on loopback that keeps every span POSTed to it.
async fn start_collector() -> (u16, Arc<Mutex<Vec<Value>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let spans = Arc::new(Mutex::new(Vec::new()));
    let store = spans.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let store = store.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                    let store = store.clone();
                    async move {
                        let body = request
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        if let Ok(Value::Array(batch)) = serde_json::from_slice::<Value>(&body) {
                            store.lock().unwrap().extend(batch);
                        }
                        Ok::<_, Infallible>(
                            Response::builder()
                                .status(202)
                                .body(Full::new(Bytes::new()))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (port, spans)
}

/// The spans of `service` in `TRACE_ID`.
fn spans_of(spans: &[Value], service: &str) -> Vec<Value> {
    spans
        .iter()
        .filter(|span| {
            span["traceId"] == TRACE_ID && span["localEndpoint"]["serviceName"] == service
        })
        .cloned()
        .collect()
}

#[tokio::test]
async fn a_trace_and_metrics_span_two_sidecars() {
    let dir = tempfile::tempdir().unwrap();
    let (collector_port, collected) = start_collector().await;
    let config = sqlite_config(
        dir.path(),
        &format!(
            "  tracing:\n    samplingRate: \"1\"\n    zipkin:\n      endpointAddress: \"http://127.0.0.1:{collector_port}/api/v2/spans\"\n"
        ),
    );

    let (app_port, _app) = start_app("http_app.py").await;
    let callee = Daprd::builder("traced-b")
        .app_port(app_port)
        .config(&config)
        .start()
        .await
        .unwrap();
    let caller = Daprd::builder("traced-a")
        .config(&config)
        .start()
        .await
        .unwrap();

    let traceparent = format!("00-{TRACE_ID}-{CALLER_SPAN_ID}-01");
    let reply = http::request(
        Method::POST,
        &format!("{}/v1.0/invoke/traced-b/method/orders", caller.base_url()),
        &[("traceparent", &traceparent), ("tracestate", "vendor=kept")],
        Bytes::from_static(b"{}"),
    )
    .await
    .unwrap();
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.text());
    let echo: Value = reply.json().unwrap();
    let seen = echo["headers"]["traceparent"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let parts: Vec<&str> = seen.split('-').collect();
    assert_eq!(parts.len(), 4, "the app got no traceparent: {echo}");
    assert_eq!(parts[1], TRACE_ID, "the trace id must survive both hops");
    assert_ne!(
        parts[2], CALLER_SPAN_ID,
        "the app's parent must be a sidecar span"
    );
    assert_eq!(parts[3], "01");
    assert_eq!(echo["headers"]["tracestate"], "vendor=kept");

    // Both sidecars export a span of this trace; the callee's continues the caller's.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (caller_spans, callee_spans) = loop {
        let spans = collected.lock().unwrap().clone();
        let (a, b) = (spans_of(&spans, "traced-a"), spans_of(&spans, "traced-b"));
        if !a.is_empty() && !b.is_empty() {
            break (a, b);
        }
        assert!(
            Instant::now() < deadline,
            "spans never arrived; collected: {spans:?}\ncallee log:\n{}",
            callee.log_tail(60)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        caller_spans
            .iter()
            .any(|span| span["parentId"] == CALLER_SPAN_ID),
        "the caller's sidecar span must be a child of the caller: {caller_spans:?}"
    );
    let caller_ids: Vec<&Value> = caller_spans.iter().map(|span| &span["id"]).collect();
    assert!(
        callee_spans
            .iter()
            .any(|span| caller_ids.contains(&&span["parentId"])),
        "the callee's span must be a child of the caller's sidecar span: {caller_spans:?} / {callee_spans:?}"
    );

    // Metrics with upstream's names and labels on both sidecars.
    let caller_metrics = http::get(&format!(
        "http://127.0.0.1:{}/metrics",
        caller.metrics_port()
    ))
    .await
    .unwrap()
    .text();
    let requests = sample(
        &caller_metrics,
        "dapr_http_server_request_count",
        &["app_id=\"traced-a\"", "status=\"200\""],
    );
    assert!(
        requests.is_some_and(|count| count >= 1.0),
        "{caller_metrics}"
    );
    let callee_metrics = http::get(&format!(
        "http://127.0.0.1:{}/metrics",
        callee.metrics_port()
    ))
    .await
    .unwrap()
    .text();
    let rpcs = sample(
        &callee_metrics,
        "dapr_grpc_io_server_completed_rpcs",
        &[
            "app_id=\"traced-b\"",
            "CallLocalStream",
            "grpc_server_status=\"OK\"",
        ],
    );
    assert_eq!(rpcs, Some(1.0), "{callee_metrics}");

    // Service invocation metrics: sent by the caller, received and answered by the callee.
    let sent = sample(
        &caller_metrics,
        "dapr_runtime_service_invocation_req_sent_total",
        &["dst_app_id=\"traced-b\""],
    );
    assert_eq!(sent, Some(1.0), "{caller_metrics}");
    let answered = sample(
        &caller_metrics,
        "dapr_runtime_service_invocation_res_recv_total",
        &["src_app_id=\"traced-b\"", "status=\"200\""],
    );
    assert_eq!(answered, Some(1.0), "{caller_metrics}");
    let received = sample(
        &callee_metrics,
        "dapr_runtime_service_invocation_req_recv_total",
        &["src_app_id=\"traced-a\""],
    );
    assert_eq!(received, Some(1.0), "{callee_metrics}");
}

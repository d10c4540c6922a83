//! Resiliency policies applied by a real sidecar: a caller invokes an app that fails on
//! purpose (`apps/faulty_app.py`) through two callee sidecars, so retries, timeouts and a
//! circuit breaker are seen from both ends (the app counts the calls it received, the
//! caller's metrics count activations); a state store keeps answering while its redis is
//! killed and restarted under load; a bad policy file stops the sidecar naming the file and
//! field.

use std::path::Path;
use std::time::{Duration, Instant};

use ::http::Method;
use dapr_testkit::{Daprd, http};
use serde_json::Value;

use crate::support::{DurableRedis, sample, sqlite_config, start_app};

/// The caller's resiliency policies: `faulty` retries server errors 3 times with a 500 ms
/// timeout per attempt; `fragile` has a breaker opening after 2 failures in a row.
const POLICIES: &str = "apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata:
  name: faults
spec:
  policies:
    timeouts:
      fast: 500ms
    retries:
      serverErrors:
        policy: constant
        duration: 50ms
        maxRetries: 3
        matching:
          httpStatusCodes: \"500-599\"
    circuitBreakers:
      twoStrikes:
        maxRequests: 1
        timeout: 2s
        trip: consecutiveFailures >= 2
  targets:
    apps:
      faulty:
        timeout: fast
        retry: serverErrors
      fragile:
        circuitBreaker: twoStrikes
";

async fn call(caller: &Daprd, app_id: &str, path: &str) -> http::Response {
    http::request(
        Method::POST,
        &format!("{}/v1.0/invoke/{app_id}/method/{path}", caller.base_url()),
        &[("content-type", "application/json")],
        "{}",
    )
    .await
    .unwrap()
}

fn json(response: &http::Response) -> Value {
    response
        .json()
        .unwrap_or_else(|error| panic!("not JSON ({error}): {}", response.text()))
}

/// How many calls the app received for `key`.
async fn calls(app_port: u16, key: &str) -> u64 {
    let response = http::get(&format!("http://127.0.0.1:{app_port}/calls/{key}"))
        .await
        .unwrap();
    json(&response)["calls"].as_u64().unwrap()
}

async fn metrics(daprd: &Daprd) -> String {
    http::get(&format!(
        "http://127.0.0.1:{}/metrics",
        daprd.metrics_port()
    ))
    .await
    .unwrap()
    .text()
}

fn resources_dir(dir: &Path, name: &str, documents: &[&str]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::create_dir_all(&path).unwrap();
    for (index, document) in documents.iter().enumerate() {
        std::fs::write(path.join(format!("{index}.yaml")), document).unwrap();
    }
    path
}

#[tokio::test]
async fn invocation_retries_timeouts_and_breakers_follow_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    let config = sqlite_config(dir.path(), "");
    let (app_port, _app) = start_app("faulty_app.py").await;
    let mut callees = Vec::new();
    for app_id in ["faulty", "fragile"] {
        callees.push(
            Daprd::builder(app_id)
                .app_port(app_port)
                .config(&config)
                .start()
                .await
                .unwrap(),
        );
    }
    let caller = Daprd::builder("caller")
        .config(&config)
        .resources_path(resources_dir(dir.path(), "caller", &[POLICIES]))
        .start()
        .await
        .unwrap();

    // Two failures, then success: the caller sees the success; the app saw 3 calls.
    let response = call(&caller, "faulty", "flaky/a/2").await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(json(&response)["call"], 3);
    assert_eq!(calls(app_port, "a").await, 3);

    // Always failing: 1 call + 3 retries, then the app's own last answer comes back.
    let response = call(&caller, "faulty", "fail/b/503").await;
    assert_eq!(response.status, 503, "{}", response.text());
    assert_eq!(json(&response)["call"], 4);
    assert_eq!(calls(app_port, "b").await, 4);

    // A status outside the matching list is not retried.
    let response = call(&caller, "faulty", "fail/c/404").await;
    assert_eq!(response.status, 404);
    assert_eq!(calls(app_port, "c").await, 1);

    // Each attempt is cut at 500 ms and retried; the caller gets upstream's error.
    let started = Instant::now();
    let response = call(&caller, "faulty", "sleep/d/5").await;
    assert_eq!(response.status, 500, "{}", response.text());
    let body = json(&response);
    assert_eq!(body["errorCode"], "ERR_DIRECT_INVOKE");
    assert_eq!(
        body["message"],
        "failed to invoke, id: faulty, err: context deadline exceeded"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "4 attempts of a 5 s call must have been cut short"
    );
    assert_eq!(calls(app_port, "d").await, 4);

    // The breaker: two failures open it, the third call never reaches the app.
    call(&caller, "fragile", "set/e/fail").await;
    for expected in 1..=2 {
        let response = call(&caller, "fragile", "switch/e").await;
        assert_eq!(response.status, 500);
        assert_eq!(json(&response)["call"], expected);
    }
    let response = call(&caller, "fragile", "switch/e").await;
    assert_eq!(response.status, 500);
    assert_eq!(
        json(&response)["message"],
        "failed to invoke, id: fragile, err: circuit breaker is open"
    );
    assert_eq!(calls(app_port, "e").await, 2);
    let text = metrics(&caller).await;
    let breaker = |status: &str| {
        sample(
            &text,
            "dapr_resiliency_cb_state",
            &["target=\"app_fragile\"", &format!("status=\"{status}\"")],
        )
    };
    assert_eq!(breaker("open"), Some(1.0), "{text}");
    assert_eq!(breaker("closed"), Some(0.0), "{text}");
    // The faulty target has no breaker: retry and timeout policies were activated.
    let activated = |policy: &str| {
        sample(
            &text,
            "dapr_resiliency_activations_total",
            &["target=\"app_faulty\"", &format!("policy=\"{policy}\"")],
        )
    };
    assert_eq!(activated("retry"), Some(3.0), "{text}");
    assert_eq!(activated("timeout"), Some(1.0), "{text}");
    assert_eq!(
        sample(&text, "dapr_resiliency_loaded", &["name=\"faults\""]),
        Some(1.0)
    );

    // After the breaker's timeout it half-opens: a successful trial call closes it.
    call(&caller, "faulty", "set/e/ok").await;
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let response = call(&caller, "fragile", "switch/e").await;
    assert_eq!(response.status, 200, "{}", response.text());
    let response = call(&caller, "fragile", "switch/e").await;
    assert_eq!(response.status, 200);
    assert_eq!(calls(app_port, "e").await, 4);
    let text = metrics(&caller).await;
    for (status, value) in [("closed", 1.0), ("open", 0.0), ("half-open", 0.0)] {
        assert_eq!(
            sample(
                &text,
                "dapr_resiliency_cb_state",
                &["target=\"app_fragile\"", &format!("status=\"{status}\"")],
            ),
            Some(value),
            "{status}: {text}"
        );
    }
    for status in ["open", "half-open", "closed"] {
        assert_eq!(
            sample(
                &text,
                "dapr_resiliency_activations_total",
                &[
                    "target=\"app_fragile\"",
                    "policy=\"circuitbreaker\"",
                    &format!("status=\"{status}\""),
                ],
            ),
            Some(1.0),
            "{status}: {text}"
        );
    }
}

#[tokio::test]
async fn state_calls_ride_out_a_redis_restart_under_load() {
    let dir = tempfile::tempdir().unwrap();
    let mut redis = DurableRedis::start().await;
    let component = format!(
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: store\nspec:\n  \
         type: state.redis\n  version: v1\n  metadata:\n  - name: redisHost\n    value: \"{}\"\n  \
         - name: redisMaxRetries\n    value: \"-1\"\n",
        redis.host()
    );
    // The component's own reconnection retries are off: the policy alone rides it out.
    let policy = "apiVersion: dapr.io/v1alpha1\nkind: Resiliency\nmetadata:\n  name: store-retries\n\
                  spec:\n  policies:\n    retries:\n      patient:\n        policy: constant\n        \
                  duration: 100ms\n        maxRetries: 100\n  targets:\n    components:\n      store:\n        \
                  outbound:\n          retry: patient\n";
    let daprd = Daprd::builder("stateful")
        .resources_path(resources_dir(
            dir.path(),
            "resources",
            &[&component, policy],
        ))
        .start()
        .await
        .unwrap();
    let base = daprd.base_url();

    let load = tokio::spawn(async move {
        let mut failures = Vec::new();
        for index in 0..120 {
            let body = format!("[{{\"key\":\"k{index}\",\"value\":{index}}}]");
            let saved = http::request(
                Method::POST,
                &format!("{base}/v1.0/state/store"),
                &[("content-type", "application/json")],
                body,
            )
            .await
            .unwrap();
            if saved.status != 204 {
                failures.push(format!("save k{index}: {} {}", saved.status, saved.text()));
            }
            let read = http::get(&format!("{base}/v1.0/state/store/k{index}"))
                .await
                .unwrap();
            if read.status != 200 || read.text() != index.to_string() {
                failures.push(format!("get k{index}: {} {}", read.status, read.text()));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        failures
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    redis.kill().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    redis.restart().await;
    let failures = load.await.unwrap();
    assert!(failures.is_empty(), "{failures:#?}\n{}", daprd.log_tail(30));

    let text = metrics(&daprd).await;
    let retried = sample(
        &text,
        "dapr_resiliency_activations_total",
        &["target=\"Statestore_store\"", "policy=\"retry\""],
    );
    assert!(retried.is_some_and(|count| count >= 1.0), "{text}");
}

#[tokio::test]
async fn a_bad_policy_file_stops_the_sidecar_naming_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "timeouts:\n      slow: soon\n  targets: {}\n",
            "spec.policies.timeouts.slow: invalid duration \\\"soon\\\"",
        ),
        (
            "circuitBreakers:\n      cb:\n        trip: consecutiveFailures >\n  targets: {}\n",
            "spec.policies.circuitBreakers.cb.trip: invalid expression",
        ),
        (
            "retries: {}\n  targets:\n    apps:\n      orders:\n        retry: missing\n",
            "spec.targets.apps.orders.retry: retry policy \\\"missing\\\" is not defined",
        ),
    ];
    for (index, (policies, expected)) in cases.iter().enumerate() {
        let document = format!(
            "apiVersion: dapr.io/v1alpha1\nkind: Resiliency\nmetadata:\n  name: broken\nspec:\n  policies:\n    {policies}"
        );
        let resources = resources_dir(dir.path(), &format!("case{index}"), &[&document]);
        let error = Daprd::builder("broken")
            .resources_path(&resources)
            .ready_timeout(Duration::from_secs(20))
            .start()
            .await
            .unwrap_err()
            .to_string();
        let file = resources.join("0.yaml");
        assert!(
            error.contains(&format!(
                "resiliency broken in {}: {expected}",
                file.display()
            )),
            "{error}"
        );
    }
}

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use dapr_kit::metrics::MetricsRegistry;
use dapr_resources::loader::{Loaded, parse_str};
use dapr_resources::resiliency::Resiliency as ResiliencyResource;

use super::breaker::{BreakerTemplate, CircuitBreaker, Rejection};
use super::*;
use crate::observability::metrics::{CircuitBreakerState, MetricsSettings, SidecarMetrics};

fn resources(yaml: &str) -> Vec<Loaded<ResiliencyResource>> {
    parse_str(Path::new("/etc/dapr/resiliency.yaml"), yaml)
        .unwrap()
        .resiliencies
}

fn compile(yaml: &str) -> Result<Resiliency, ResiliencyError> {
    Resiliency::compile(&resources(yaml), SidecarMetrics::disabled())
}

fn resource(spec: &str) -> String {
    format!(
        "apiVersion: dapr.io/v1alpha1\nkind: Resiliency\nmetadata: {{name: res}}\nspec:\n{spec}"
    )
}

/// An operation failing its first `failures` attempts (with `status`), counting calls.
fn flaky(
    calls: &Arc<AtomicU32>,
    failures: u32,
    status: Option<i32>,
) -> impl FnMut() -> std::future::Ready<Result<u32, Failure<String>>> {
    let calls = calls.clone();
    move || {
        let call = calls.fetch_add(1, Ordering::SeqCst) + 1;
        std::future::ready(if call <= failures {
            Err(Failure {
                error: format!("failure {call}"),
                status,
                permanent: false,
            })
        } else {
            Ok(call)
        })
    }
}

const POLICIES: &str = r#"  policies:
    timeouts:
      quick: 50ms
      general: "1000"
    retries:
      three: {policy: constant, duration: 1ms, maxRetries: 3}
      onlyServerErrors:
        policy: constant
        duration: 1ms
        maxRetries: 5
        matching: {httpStatusCodes: "500,502-504", gRPCStatusCodes: "14"}
      DefaultRetryPolicy: {policy: constant, duration: 1ms, maxRetries: 1}
      DefaultStatestoreComponentOutboundRetryPolicy: {policy: constant, duration: 1ms, maxRetries: 2}
    circuitBreakers:
      tripTwo: {maxRequests: 1, timeout: 100ms, trip: consecutiveFailures >= 2}
  targets:
    apps:
      orders: {timeout: quick, retry: three, circuitBreaker: tripTwo}
      matched: {retry: onlyServerErrors}
    components:
      store: {outbound: {retry: three}, inbound: {timeout: general}}
"#;

#[tokio::test]
async fn retries_are_counted_exactly_per_policy() {
    let resiliency = compile(&resource(POLICIES)).unwrap();
    let policy =
        resiliency.component_policy("store", ComponentKind::StateStore, Direction::Outbound);
    assert!(policy.has_retries());

    let calls = Arc::new(AtomicU32::new(0));
    assert_eq!(policy.run(flaky(&calls, 3, None)).await.unwrap(), 4);
    assert_eq!(calls.load(Ordering::SeqCst), 4);

    let calls = Arc::new(AtomicU32::new(0));
    let error = policy.run(flaky(&calls, 10, None)).await.unwrap_err();
    assert_eq!(error.to_string(), "failure 4");
    assert_eq!(calls.load(Ordering::SeqCst), 4, "1 attempt + 3 retries");
}

#[tokio::test]
async fn matching_lists_decide_which_statuses_are_retried() {
    let resiliency = compile(&resource(POLICIES)).unwrap();
    let policy = resiliency.app_policy("matched");
    for (status, attempts) in [(503, 6), (500, 6), (501, 1), (404, 1), (14, 6), (2, 1)] {
        let calls = Arc::new(AtomicU32::new(0));
        policy
            .run(flaky(&calls, 100, Some(status)))
            .await
            .unwrap_err();
        assert_eq!(calls.load(Ordering::SeqCst), attempts, "status {status}");
    }
    // Failures without a status are always retried.
    let calls = Arc::new(AtomicU32::new(0));
    policy.run(flaky(&calls, 100, None)).await.unwrap_err();
    assert_eq!(calls.load(Ordering::SeqCst), 6);
    // Permanent failures never are.
    let calls = Arc::new(AtomicU32::new(0));
    let counted = calls.clone();
    policy
        .run(|| {
            counted.fetch_add(1, Ordering::SeqCst);
            std::future::ready(Err::<(), _>(Failure::permanent("bad input".to_owned())))
        })
        .await
        .unwrap_err();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn timeouts_bound_each_attempt() {
    let resiliency = compile(&resource(POLICIES)).unwrap();
    let policy = resiliency.app_policy("orders");
    let calls = Arc::new(AtomicU32::new(0));
    let counted = calls.clone();
    let started = std::time::Instant::now();
    let error = policy
        .run(|| {
            counted.fetch_add(1, Ordering::SeqCst);
            async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                Ok::<_, Failure<String>>(())
            }
        })
        .await
        .unwrap_err();
    // Two timed-out attempts trip the breaker (consecutiveFailures >= 2): the third is
    // refused without running.
    assert!(matches!(error, PolicyError::BreakerOpen), "{error}");
    assert_eq!(error.to_string(), "circuit breaker is open");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn breakers_open_half_open_and_close_again() {
    let resiliency = compile(&resource(POLICIES)).unwrap();
    let calls = Arc::new(AtomicU32::new(0));
    let failing = || {
        let calls = calls.clone();
        move || {
            calls.fetch_add(1, Ordering::SeqCst);
            std::future::ready(Err::<(), _>(Failure::permanent("down".to_owned())))
        }
    };
    let policy = resiliency.app_policy("orders");
    policy.run(failing()).await.unwrap_err();
    policy.run(failing()).await.unwrap_err();
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    // Open: refused without calling, for every later lookup of the same app.
    let error = resiliency
        .app_policy("orders")
        .run(failing())
        .await
        .unwrap_err();
    assert!(matches!(error, PolicyError::BreakerOpen));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    // Another app has its own breaker.
    let calls_before = calls.load(Ordering::SeqCst);
    resiliency
        .app_policy("matched")
        .run(failing())
        .await
        .unwrap_err();
    assert_eq!(calls.load(Ordering::SeqCst), calls_before + 1);

    tokio::time::sleep(Duration::from_millis(150)).await;
    // Half-open: one trial call; its success closes the breaker.
    let trial = resiliency.app_policy("orders");
    assert_eq!(
        trial
            .run(|| std::future::ready(Ok::<_, Failure<String>>(7)))
            .await
            .unwrap(),
        7
    );
    let again = resiliency.app_policy("orders");
    assert_eq!(
        again
            .run(|| std::future::ready(Ok::<_, Failure<String>>(8)))
            .await
            .unwrap(),
        8
    );
}

#[test]
fn half_open_breakers_let_max_requests_through_and_reopen_on_failure() {
    let spec = dapr_resources::resiliency::CircuitBreaker {
        max_requests: 2,
        interval: String::new(),
        timeout: "20ms".into(),
        trip: "consecutiveFailures > 0".into(),
    };
    let breaker = CircuitBreaker::new(Arc::new(BreakerTemplate::compile(&spec).unwrap()));
    let (ticket, _) = breaker.admit();
    let transition = breaker.record(ticket.unwrap(), false).unwrap();
    assert_eq!(transition.to, CircuitBreakerState::Open);
    assert_eq!(breaker.admit().0.unwrap_err(), Rejection::Open);
    std::thread::sleep(Duration::from_millis(30));
    let (first, transition) = breaker.admit();
    assert_eq!(transition.unwrap().to, CircuitBreakerState::HalfOpen);
    let (second, _) = breaker.admit();
    assert_eq!(breaker.admit().0.unwrap_err(), Rejection::TooManyRequests);
    assert!(breaker.record(first.unwrap(), true).is_none());
    assert_eq!(
        breaker.record(second.unwrap(), true).unwrap().to,
        CircuitBreakerState::Closed
    );
    // A failure while half-open reopens at once.
    let (ticket, _) = breaker.admit();
    breaker.record(ticket.unwrap(), false);
    std::thread::sleep(Duration::from_millis(30));
    let (ticket, _) = breaker.admit();
    assert_eq!(
        breaker.record(ticket.unwrap(), false).unwrap().to,
        CircuitBreakerState::Open
    );
}

#[test]
fn closed_breaker_counts_restart_every_interval() {
    let spec = dapr_resources::resiliency::CircuitBreaker {
        max_requests: 1,
        interval: "30ms".into(),
        timeout: "1s".into(),
        trip: "totalFailures >= 2".into(),
    };
    let breaker = CircuitBreaker::new(Arc::new(BreakerTemplate::compile(&spec).unwrap()));
    let (ticket, _) = breaker.admit();
    assert!(breaker.record(ticket.unwrap(), false).is_none());
    std::thread::sleep(Duration::from_millis(40));
    let (ticket, _) = breaker.admit();
    assert!(
        breaker.record(ticket.unwrap(), false).is_none(),
        "counts restarted"
    );
    let (ticket, _) = breaker.admit();
    assert_eq!(
        breaker.record(ticket.unwrap(), false).unwrap().to,
        CircuitBreakerState::Open
    );
}

#[tokio::test]
async fn defaults_apply_to_targets_without_policies() {
    let resiliency = compile(&resource(POLICIES)).unwrap();
    // DefaultStatestoreComponentOutboundRetryPolicy (2 retries) for other state stores.
    let calls = Arc::new(AtomicU32::new(0));
    resiliency
        .component_policy("other", ComponentKind::StateStore, Direction::Outbound)
        .run(flaky(&calls, 100, None))
        .await
        .unwrap_err();
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    // DefaultRetryPolicy (1 retry) for pub/sub and apps.
    for policy in [
        resiliency.component_policy("bus", ComponentKind::PubSub, Direction::Outbound),
        resiliency.app_policy("unknown"),
    ] {
        let calls = Arc::new(AtomicU32::new(0));
        policy.run(flaky(&calls, 100, None)).await.unwrap_err();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }
    // A component target replaces the defaults: inbound has only a timeout.
    let inbound =
        resiliency.component_policy("store", ComponentKind::StateStore, Direction::Inbound);
    assert!(!inbound.has_retries());
    assert!(!inbound.is_empty());
    assert!(resiliency.has_app_policy("orders"));
    assert!(!resiliency.has_app_policy("unknown"));
}

#[test]
fn built_in_service_retries_can_be_raised_but_not_lowered() {
    let default = compile(&resource("  policies: {}\n  targets: {}\n")).unwrap();
    let delays: Vec<Duration> = default.service_retries().delays().collect();
    assert_eq!(delays, vec![Duration::from_secs(1); 3]);

    let lowered = compile(&resource(
        "  policies:\n    retries:\n      DaprBuiltInServiceRetries: {policy: constant, duration: 5ms, maxRetries: 1}\n  targets: {}\n",
    ))
    .unwrap();
    let delays: Vec<Duration> = lowered.service_retries().delays().collect();
    assert_eq!(delays, vec![Duration::from_millis(5); 3]);

    let raised = compile(&resource(
        "  policies:\n    retries:\n      DaprBuiltInServiceRetries: {policy: constant, duration: 5ms, maxRetries: 6}\n  targets: {}\n",
    ))
    .unwrap();
    assert_eq!(raised.service_retries().delays().count(), 6);
}

#[test]
fn bad_policies_are_refused_naming_file_and_field() {
    let cases = [
        (
            "  policies: {timeouts: {slow: soon}}\n  targets: {}\n",
            "spec.policies.timeouts.slow",
            "invalid duration",
        ),
        (
            "  policies: {retries: {r: {policy: constant, duration: 5 parsecs}}}\n  targets: {}\n",
            "spec.policies.retries.r.duration",
            "invalid duration",
        ),
        (
            "  policies: {retries: {r: {policy: fibonacci}}}\n  targets: {}\n",
            "spec.policies.retries.r.policy",
            "unexpected back off policy type: fibonacci",
        ),
        (
            "  policies: {retries: {r: {matching: {httpStatusCodes: \"500-\"}}}}\n  targets: {}\n",
            "spec.policies.retries.r.matching.httpStatusCodes",
            "invalid pattern 500-",
        ),
        (
            "  policies: {retries: {r: {matching: {gRPCStatusCodes: \"20\"}}}}\n  targets: {}\n",
            "spec.policies.retries.r.matching.gRPCStatusCodes",
            "code 20 is not valid",
        ),
        (
            "  policies: {circuitBreakers: {cb: {trip: \"consecutiveFailures >\"}}}\n  targets: {}\n",
            "spec.policies.circuitBreakers.cb.trip",
            "invalid expression",
        ),
        (
            "  policies: {circuitBreakers: {cb: {trip: \"failures > 3\"}}}\n  targets: {}\n",
            "spec.policies.circuitBreakers.cb.trip",
            "cannot be evaluated",
        ),
        (
            "  policies: {circuitBreakers: {cb: {trip: \"consecutiveFailures + 1\"}}}\n  targets: {}\n",
            "spec.policies.circuitBreakers.cb.trip",
            "not a boolean",
        ),
        (
            "  policies: {circuitBreakers: {cb: {interval: 1y}}}\n  targets: {}\n",
            "spec.policies.circuitBreakers.cb.interval",
            "invalid duration",
        ),
        (
            "  policies: {}\n  targets: {apps: {orders: {retry: missing}}}\n",
            "spec.targets.apps.orders.retry",
            "retry policy \"missing\" is not defined",
        ),
        (
            "  policies: {}\n  targets: {components: {store: {outbound: {circuitBreaker: gone}}}}\n",
            "spec.targets.components.store.outbound.circuitBreaker",
            "circuit breaker policy \"gone\" is not defined",
        ),
        (
            "  policies: {circuitBreakers: {cb: {}}}\n  targets: {actors: {cart: {circuitBreaker: cb}}}\n",
            "spec.targets.actors.cart.circuitBreakerScope",
            "must include scope",
        ),
    ];
    for (spec, field, message) in cases {
        let error = compile(&resource(spec)).unwrap_err();
        assert_eq!(error.field, field, "{spec}");
        assert!(error.message.contains(message), "{spec}: {}", error.message);
        assert_eq!(error.file, Path::new("/etc/dapr/resiliency.yaml"));
        assert!(
            error.to_string().starts_with(&format!(
                "resiliency res in /etc/dapr/resiliency.yaml: {field}: "
            )),
            "{error}"
        );
    }
}

#[test]
fn policies_may_reference_names_defined_in_another_resource() {
    let yaml = format!(
        "{}---\n{}",
        resource("  policies: {}\n  targets: {apps: {orders: {retry: shared}}}\n"),
        resource(
            "  policies: {retries: {shared: {maxRetries: 2, duration: 1ms}}}\n  targets: {}\n"
        )
        .replace("name: res", "name: shared"),
    );
    let resiliency = compile(&yaml).unwrap();
    assert!(resiliency.app_policy("orders").has_retries());
}

#[tokio::test]
async fn metrics_count_loads_applications_and_activations() {
    let registry = MetricsRegistry::new();
    let metrics = SidecarMetrics::register(
        &registry,
        &MetricsSettings::from_spec("myapp", "default", &Default::default()),
    )
    .unwrap();
    let resiliency = Resiliency::compile(&resources(&resource(POLICIES)), metrics).unwrap();
    let policy = resiliency.app_policy("orders");
    let calls = Arc::new(AtomicU32::new(0));
    policy.run(flaky(&calls, 1, None)).await.unwrap();
    let text = registry.encode_text();
    let line = |prefix: &str| {
        text.lines()
            .find(|line| line.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
            .to_owned()
    };
    assert!(line("dapr_resiliency_loaded{").ends_with(" 1"));
    let retry_count = line(
        "dapr_resiliency_count{app_id=\"myapp\",flow_direction=\"outbound\",name=\"res\",namespace=\"\",policy=\"retry\",status=\"\",target=\"app_orders\"}",
    );
    assert!(retry_count.ends_with(" 1"), "{retry_count}");
    let retry_activated = line(
        "dapr_resiliency_activations_total{app_id=\"myapp\",flow_direction=\"outbound\",name=\"res\",namespace=\"\",policy=\"retry\",status=\"\",target=\"app_orders\"}",
    );
    assert!(retry_activated.ends_with(" 1"), "{retry_activated}");
    let closed = line(
        "dapr_resiliency_cb_state{app_id=\"myapp\",flow_direction=\"outbound\",name=\"res\",namespace=\"\",policy=\"circuitbreaker\",status=\"closed\",target=\"app_orders\"}",
    );
    assert!(closed.ends_with(" 1"), "{closed}");
}

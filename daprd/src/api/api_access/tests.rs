use super::*;

fn rule(name: &str, version: &str, protocol: &str) -> ApiAccessRule {
    ApiAccessRule {
        name: name.into(),
        version: version.into(),
        protocol: protocol.into(),
    }
}

fn access(allowed: Vec<ApiAccessRule>, denied: Vec<ApiAccessRule>) -> ApiAccess {
    ApiAccess::compile(Some(&ApiSpec { allowed, denied })).unwrap()
}

use HttpVerdict::{Invoke, NotFound, Serve};

fn verdicts(access: &ApiAccess, cases: &[(Method, &str, HttpVerdict)]) {
    for (method, path, expected) in cases {
        assert_eq!(
            &access.http_verdict(method, path),
            expected,
            "{method} {path}"
        );
    }
}

#[test]
fn an_http_allowlist_serves_only_its_groups() {
    let only_state = access(vec![rule("state", "v1", "http")], vec![]);
    verdicts(
        &only_state,
        &[
            (Method::GET, "/v1.0/state/store/key", Serve),
            (Method::POST, "/v1.0/state/store", Serve),
            (Method::POST, "/v1.0/state/store/bulk", Serve),
            (Method::GET, "/v1.0/state/store/bulk", Serve),
            (Method::DELETE, "/v1.0/state/store/key", Serve),
            // state v1alpha1 is another group
            (Method::POST, "/v1.0-alpha1/state/store/query", NotFound),
            (Method::POST, "/v1.0/publish/bus/topic", NotFound),
            (Method::GET, "/v1.0/metadata", NotFound),
            (Method::POST, "/v1.0/invoke/app/method/x", NotFound),
            // header invocation and unknown paths are the invocation fallback's
            (Method::GET, "/orders", NotFound),
            (Method::GET, "/v1.0/actors/t/i/state/k", NotFound),
            // another verb of a served path: chi's 405
            (
                Method::PATCH,
                "/v1.0/state/store",
                HttpVerdict::MethodNotAllowed(vec![Method::POST, Method::PUT]),
            ),
            // health checks are always open, with their own verbs
            (Method::GET, "/v1.0/healthz", Serve),
            (Method::GET, "/v1.0/healthz/outbound", Serve),
            (
                Method::POST,
                "/v1.0/healthz",
                HttpVerdict::MethodNotAllowed(vec![Method::GET]),
            ),
        ],
    );
}

#[test]
fn refused_http_endpoints_fall_back_to_allowed_invocation() {
    let with_invoke = access(
        vec![rule("state", "v1", "http"), rule("invoke", "v1", "http")],
        vec![],
    );
    verdicts(
        &with_invoke,
        &[
            (Method::GET, "/v1.0/invoke/app/method/x", Serve),
            (Method::DELETE, "/v1.0/invoke/app/method/x", Serve),
            (Method::GET, "/v1.0/metadata", Invoke),
            (Method::GET, "/orders", Invoke),
            (Method::PATCH, "/v1.0/state/store", Invoke),
            (Method::GET, "/v1.0/state/store/k", Serve),
        ],
    );
}

#[test]
fn http_rules_match_by_group_or_route_prefix_as_upstream() {
    // The older form: `version/name` as a prefix of the endpoint's route template.
    let by_route = access(vec![rule("state", "v1.0", "http")], vec![]);
    verdicts(
        &by_route,
        &[
            (Method::GET, "/v1.0/state/store/k", Serve),
            (Method::POST, "/v1.0-alpha1/state/store/query", NotFound),
        ],
    );
    let alpha_by_route = access(vec![rule("state", "v1.0-alpha1", "http")], vec![]);
    verdicts(
        &alpha_by_route,
        &[
            (Method::POST, "/v1.0-alpha1/state/store/query", Serve),
            (Method::GET, "/v1.0/state/store/k", NotFound),
        ],
    );
    // The prefix is matched against the template, not the request path: a rule naming
    // an app under `invoke` matches no endpoint.
    let one_app = access(vec![rule("invoke/orders", "v1.0", "http")], vec![]);
    verdicts(
        &one_app,
        &[(Method::GET, "/v1.0/invoke/orders/method/x", NotFound)],
    );
    let bulk_by_route = access(vec![rule("publish/bulk", "v1.0", "http")], vec![]);
    verdicts(
        &bulk_by_route,
        &[
            (Method::POST, "/v1.0/publish/bulk/bus/topic", Serve),
            (Method::POST, "/v1.0/publish/bus/topic", NotFound),
        ],
    );
    // Alpha groups by their own names.
    let lock = access(vec![rule("lock", "v1alpha1", "http")], vec![]);
    verdicts(
        &lock,
        &[
            (Method::POST, "/v1.0-alpha1/lock/store", Serve),
            (Method::POST, "/v1.0-alpha1/unlock/store", NotFound),
        ],
    );
    let bulk_alpha = access(vec![rule("publish", "v1alpha1", "http")], vec![]);
    verdicts(
        &bulk_alpha,
        &[
            (Method::POST, "/v1.0-alpha1/publish/bulk/bus/topic", Serve),
            (Method::POST, "/v1.0/publish/bulk/bus/topic", NotFound),
        ],
    );
    let configuration = access(vec![rule("configuration", "v1", "http")], vec![]);
    verdicts(
        &configuration,
        &[
            (Method::GET, "/v1.0/configuration/store", Serve),
            (
                Method::GET,
                "/v1.0/configuration/store/id/unsubscribe",
                Serve,
            ),
            (Method::GET, "/v1.0-alpha1/configuration/store", NotFound),
        ],
    );
}

#[test]
fn an_http_denylist_wins_and_leaves_the_rest_open() {
    let deny_wins = access(
        vec![rule("state", "v1", "http"), rule("publish", "v1", "http")],
        vec![rule("state", "v1", "http")],
    );
    verdicts(
        &deny_wins,
        &[
            (Method::GET, "/v1.0/state/store/k", NotFound),
            (Method::POST, "/v1.0/publish/bus/topic", Serve),
        ],
    );
    let denied_only = access(vec![], vec![rule("secrets", "v1", "http")]);
    verdicts(
        &denied_only,
        &[
            (Method::GET, "/v1.0/secrets/store/key", Invoke),
            (Method::GET, "/v1.0/metadata", Serve),
            (Method::GET, "/orders", Invoke),
        ],
    );
    // Denying invocation also closes the fallback behind unknown paths and verbs.
    let no_invoke = access(vec![], vec![rule("invoke", "v1", "http")]);
    verdicts(
        &no_invoke,
        &[
            (Method::GET, "/v1.0/invoke/app/method/x", NotFound),
            (Method::GET, "/orders", NotFound),
            (Method::GET, "/v1.0/state/store/k", Serve),
            (
                Method::DELETE,
                "/v1.0/metadata",
                HttpVerdict::MethodNotAllowed(vec![Method::GET]),
            ),
        ],
    );
    // Health checks cannot be denied.
    let no_health = access(vec![], vec![rule("healthz", "v1", "http")]);
    verdicts(&no_health, &[(Method::GET, "/v1.0/healthz", Serve)]);
}

#[test]
fn grpc_rules_leave_http_alone_and_the_reverse() {
    let grpc_only = access(vec![rule("state", "v1", "grpc")], vec![]);
    verdicts(&grpc_only, &[(Method::GET, "/v1.0/metadata", Serve)]);
    let http_only = access(vec![rule("state", "v1", "http")], vec![]);
    assert!(!http_only.restricts_grpc());
    assert!(http_only.grpc_allows("/dapr.proto.runtime.v1.Dapr/GetMetadata"));
}

#[test]
fn grpc_methods_match_upstreams_groups() {
    let only_state = access(vec![rule("state", "v1", "GRPC")], vec![]);
    for (method, allowed) in [
        ("GetState", true),
        ("ExecuteStateTransaction", true),
        ("QueryStateAlpha1", false),
        ("GetMetadata", false),
        ("InvokeService", false),
    ] {
        assert_eq!(
            only_state.grpc_allows(&format!("/dapr.proto.runtime.v1.Dapr/{method}")),
            allowed,
            "{method}"
        );
    }
    // Other services (proxied calls, health) are never restricted.
    assert!(only_state.grpc_allows("/grpc.health.v1.Health/Check"));
    assert!(only_state.grpc_allows("/my.Service/Method"));

    let denied = access(vec![], vec![rule("publish", "v1", "grpc")]);
    assert!(!denied.grpc_allows("/dapr.proto.runtime.v1.Dapr/PublishEvent"));
    assert!(!denied.grpc_allows("/dapr.proto.runtime.v1.Dapr/BulkPublishEvent"));
    assert!(denied.grpc_allows("/dapr.proto.runtime.v1.Dapr/BulkPublishEventAlpha1"));

    let both = access(
        vec![
            rule("state", "v1", "grpc"),
            rule("lock", "v1alpha1", "grpc"),
            rule("unlock", "v1alpha1", "grpc"),
        ],
        vec![rule("unlock", "v1alpha1", "grpc")],
    );
    assert!(both.grpc_allows("/dapr.proto.runtime.v1.Dapr/TryLockAlpha1"));
    assert!(!both.grpc_allows("/dapr.proto.runtime.v1.Dapr/UnlockAlpha1"));

    // An unknown group restricts nothing by itself (upstream ignores it).
    let unknown = access(vec![rule("nope", "v1", "grpc")], vec![]);
    assert!(!unknown.restricts_grpc());
}

#[test]
fn bad_rules_are_refused_naming_the_field() {
    let error = ApiAccess::compile(Some(&ApiSpec {
        allowed: vec![
            rule("state", "v1", "http"),
            rule("state", "v1", "websocket"),
        ],
        denied: vec![],
    }))
    .unwrap_err();
    assert_eq!(error.field, "api.allowed[1].protocol");
    assert_eq!(
        error.message,
        "invalid protocol \"websocket\": use http or grpc"
    );
    assert_eq!(
        error.to_string(),
        "invalid API access rule: api.allowed[1].protocol: invalid protocol \"websocket\": use http or grpc"
    );
    let error = ApiAccess::compile(Some(&ApiSpec {
        allowed: vec![],
        denied: vec![rule("state", "v1", "")],
    }))
    .unwrap_err();
    assert_eq!(error.field, "api.denied[0].protocol");
    for (bad, field) in [
        (rule("", "v1", "grpc"), "api.denied[0].name"),
        (rule("state", "", "http"), "api.denied[0].version"),
    ] {
        let error = ApiAccess::compile(Some(&ApiSpec {
            allowed: vec![],
            denied: vec![bad],
        }))
        .unwrap_err();
        assert_eq!(error.field, field);
        assert_eq!(error.message, "missing");
    }
}

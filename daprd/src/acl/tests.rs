use dapr_kit::metrics::MetricsRegistry;
use dapr_resources::configuration::Configuration;

use super::*;
use crate::observability::metrics::MetricsSettings;

fn spec(yaml: &str) -> AccessControlSpec {
    let configuration: Configuration =
        dapr_resources::loader::parse_str(std::path::Path::new("config.yaml"), yaml)
            .unwrap()
            .configurations
            .remove(0)
            .resource;
    configuration.spec.access_control.unwrap()
}

fn compile(yaml: &str) -> Result<Option<AccessControl>, AclError> {
    AccessControl::compile(Some(&spec(yaml)), true, SidecarMetrics::disabled())
}

fn caller(app_id: &str, namespace: &str) -> CallerIdentity {
    CallerIdentity {
        app_id: app_id.into(),
        namespace: namespace.into(),
        trust_domain: "public".into(),
    }
}

const POLICY: &str = r#"
apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata: {name: acl}
spec:
  accessControl:
    defaultAction: deny
    trustDomain: public
    policies:
    - appId: frontend
      defaultAction: allow
      trustDomain: public
      namespace: default
      operations:
      - {name: /admin/**, httpVerb: ['*'], action: deny}
      - {name: /orders, httpVerb: [POST], action: deny}
      - {name: /orders, httpVerb: ['GET'], action: allow}
      - {name: /Reports/*, httpVerb: ['GET'], action: allow}
    - appId: batch
      defaultAction: deny
      trustDomain: public
      namespace: jobs
      operations:
      - {name: /import, httpVerb: ['POST', 'PUT'], action: allow}
      - {name: /pkg.Importer/Run, action: allow}
    - appId: auditor
      trustDomain: other
      namespace: default
      defaultAction: allow
"#;

#[test]
fn calls_are_judged_with_upstreams_precedence() {
    let acl = compile(POLICY).unwrap().unwrap();
    let grpc_acl = AccessControl::compile(Some(&spec(POLICY)), false, SidecarMetrics::disabled())
        .unwrap()
        .unwrap();
    let frontend = caller("frontend", "default");
    let batch = caller("batch", "jobs");
    // caller, operation, verb, app speaks HTTP, allowed, decided by the app policy
    type Case<'a> = (
        Option<&'a CallerIdentity>,
        &'a str,
        Option<&'a str>,
        bool,
        bool,
        bool,
    );
    let cases: [Case<'_>; 14] = [
        // app policy: default allow, rules by verb
        (Some(&frontend), "cart", Some("GET"), true, true, true),
        (Some(&frontend), "orders", Some("POST"), true, false, true),
        (Some(&frontend), "orders", Some("GET"), true, true, true),
        (
            Some(&frontend),
            "orders/42",
            Some("POST"),
            true,
            false,
            true,
        ),
        (
            Some(&frontend),
            "admin/users/1",
            Some("GET"),
            true,
            false,
            true,
        ),
        // HTTP operations are case-insensitive
        (Some(&frontend), "ADMIN/x", Some("GET"), true, false, true),
        (Some(&frontend), "reports/q1", Some("GET"), true, true, true),
        // a listed operation without a verb falls back to the app default action
        (Some(&frontend), "orders", None, true, true, true),
        // another namespace for the same app id: no policy, the global default
        (
            Some(&caller("frontend", "other")),
            "cart",
            Some("GET"),
            true,
            false,
            false,
        ),
        (Some(&batch), "import", Some("PUT"), true, true, true),
        (Some(&batch), "import", Some("DELETE"), true, false, true),
        // gRPC apps: the rule's action, verbs ignored
        (Some(&batch), "pkg.Importer/Run", None, false, true, true),
        // a trust domain that does not match: the global default
        (
            Some(&caller("auditor", "default")),
            "x",
            Some("GET"),
            true,
            false,
            false,
        ),
        // no identity: the global default
        (None, "cart", Some("GET"), true, false, false),
    ];
    for (caller, operation, verb, app_is_http, allowed, by_app_policy) in cases {
        let acl = if app_is_http { &acl } else { &grpc_acl };
        assert_eq!(
            acl.decide(caller, operation, verb),
            Decision {
                allowed,
                by_app_policy
            },
            "{caller:?} {operation} {verb:?}"
        );
    }
}

#[test]
fn denials_carry_upstreams_message_and_are_counted() {
    let registry = MetricsRegistry::new();
    let metrics = SidecarMetrics::register(
        &registry,
        &MetricsSettings::from_spec("backend", "default", &Default::default()),
    )
    .unwrap();
    let acl = AccessControl::compile(Some(&spec(POLICY)), true, metrics)
        .unwrap()
        .unwrap();
    let frontend = caller("frontend", "default");
    let status = acl
        .authorize(Some(&frontend), "orders", Some("POST"))
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
    assert_eq!(
        status.message(),
        "access control policy has denied access to id: spiffe://public/ns/default/frontend operation: orders verb: POST"
    );
    acl.authorize(Some(&frontend), "cart", Some("GET")).unwrap();
    acl.authorize(Some(&caller("stranger", "default")), "cart", Some("GET"))
        .unwrap_err();
    let text = registry.encode_text();
    for (family, labels) in [
        (
            "dapr_runtime_acl_app_policy_action_blocked_total",
            "app_id=\"frontend\",namespace=\"default\",trustDomain=\"public\"",
        ),
        (
            "dapr_runtime_acl_app_policy_action_allowed_total",
            "app_id=\"frontend\",namespace=\"default\",trustDomain=\"public\"",
        ),
        (
            "dapr_runtime_acl_global_policy_action_blocked_total",
            "app_id=\"stranger\",namespace=\"default\",trustDomain=\"public\"",
        ),
    ] {
        assert!(
            text.contains(&format!("{family}{{{labels}}} 1")),
            "{family} {labels} in\n{text}"
        );
    }
}

#[test]
fn empty_or_missing_sections_mean_no_access_control() {
    assert!(
        AccessControl::compile(None, true, SidecarMetrics::disabled())
            .unwrap()
            .is_none()
    );
    assert!(
        AccessControl::compile(
            Some(&AccessControlSpec::default()),
            true,
            SidecarMetrics::disabled()
        )
        .unwrap()
        .is_none()
    );
    // A trust domain alone turns it on, denying by default as upstream.
    let acl = compile(
        "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata: {name: a}\nspec:\n  accessControl:\n    trustDomain: public\n",
    )
    .unwrap()
    .unwrap();
    assert!(
        !acl.decide(Some(&caller("any", "default")), "x", Some("GET"))
            .allowed
    );
}

#[test]
fn bad_sections_are_refused_naming_the_field() {
    let cases = [
        (
            "    defaultAction: maybe\n",
            "accessControl.defaultAction",
            "invalid action \"maybe\": use allow or deny",
        ),
        (
            "    policies:\n    - {appId: a, trustDomain: public, defaultAction: allow}\n",
            "accessControl.policies[0].namespace",
            "missing",
        ),
        (
            "    policies:\n    - appId: a\n      trustDomain: public\n      namespace: default\n      operations:\n      - {name: /x, httpVerb: ['*'], action: permit}\n",
            "accessControl.policies[0].operations[0].action",
            "invalid action \"permit\"",
        ),
        (
            "    policies:\n    - {appId: a, trustDomain: public, namespace: default, defaultAction: yes}\n",
            "accessControl.policies[0].defaultAction",
            "invalid action",
        ),
        (
            "    policies:\n    - appId: a\n      trustDomain: public\n      namespace: default\n      operations:\n      - {name: /x, httpVerb: ['GET'], action: allow}\n      - {name: /y, httpVerb: ['POST', 'get'], action: allow}\n",
            "accessControl.policies[0].operations[1].httpVerb[1]",
            "invalid verb \"get\": use one of GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE, PATCH, * (upper case)",
        ),
        (
            "    policies:\n    - appId: a\n      trustDomain: public\n      namespace: default\n      operations:\n      - {name: '', action: allow}\n",
            "accessControl.policies[0].operations[0].name",
            "missing operation name",
        ),
        (
            "    policies:\n    - {appId: '', trustDomain: public, namespace: default}\n",
            "accessControl.policies[0].appId",
            "missing",
        ),
    ];
    for (section, field, message) in cases {
        let yaml = format!(
            "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata: {{name: a}}\nspec:\n  accessControl:\n    trustDomain: public\n{section}"
        );
        let error = compile(&yaml).unwrap_err();
        assert_eq!(error.field, field, "{section}");
        assert!(error.message.contains(message), "{}", error.message);
    }
}

#[test]
fn grpc_apps_deny_without_a_verb_in_the_message() {
    let acl = AccessControl::compile(Some(&spec(POLICY)), false, SidecarMetrics::disabled())
        .unwrap()
        .unwrap();
    // The calling sidecar sent a verb, but a gRPC app is judged (and told) without one.
    let status = acl
        .authorize(
            Some(&caller("batch", "jobs")),
            "/pkg.Importer/Stop",
            Some("POST"),
        )
        .unwrap_err();
    assert_eq!(
        status.message(),
        "access control policy has denied access to id: spiffe://public/ns/jobs/batch operation: /pkg.Importer/Stop verb: NONE"
    );
    // Without an identity the id is empty, as upstream's missing SPIFFE id.
    let status = acl.authorize(None, "x", None).unwrap_err();
    assert_eq!(
        status.message(),
        "access control policy has denied access to id:  operation: x verb: NONE"
    );
}

#[test]
fn the_last_policy_for_an_app_and_namespace_wins() {
    let acl = compile(
        "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata: {name: a}\nspec:\n  accessControl:\n    defaultAction: deny\n    policies:\n    - {appId: a, trustDomain: public, namespace: default, defaultAction: deny}\n    - {appId: a, trustDomain: public, namespace: default, defaultAction: allow}\n",
    )
    .unwrap()
    .unwrap();
    assert_eq!(
        acl.decide(Some(&caller("a", "default")), "x", Some("GET")),
        Decision {
            allowed: true,
            by_app_policy: true
        }
    );
}

#[test]
fn a_policy_without_a_default_action_decides_in_the_global_policys_name() {
    let acl = compile(
        "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata: {name: a}\nspec:\n  accessControl:\n    defaultAction: deny\n    policies:\n    - appId: a\n      trustDomain: public\n      namespace: default\n      operations:\n      - {name: /open/*, httpVerb: ['GET'], action: allow}\n",
    )
    .unwrap()
    .unwrap();
    let a = caller("a", "default");
    // caller's rule allows: still counted as the global policy's decision, as upstream
    for (operation, verb, allowed) in [
        ("open/x", Some("GET"), true),
        // a verb the rule does not list keeps the global action
        ("open/x", Some("POST"), false),
        // no rule: the global action
        ("closed", Some("GET"), false),
        // a listed operation without a verb takes the (empty) app default: denied
        ("open/x", None, false),
    ] {
        assert_eq!(
            acl.decide(Some(&a), operation, verb),
            Decision {
                allowed,
                by_app_policy: false
            },
            "{operation} {verb:?}"
        );
    }
}

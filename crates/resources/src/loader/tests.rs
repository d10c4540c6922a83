use std::fs;
use std::path::{Path, PathBuf};

use serde_json::json;

use super::*;
use crate::common::{DynamicValue, Renegotiation, SecretKeyRef};

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, text).unwrap();
    path
}

fn names<T: DaprResource>(loaded: &[Loaded<T>]) -> Vec<&str> {
    loaded.iter().map(|item| item.resource.name()).collect()
}

const REDIS_COMPONENT: &str = "\
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: statestore
spec:
  type: state.redis
  version: v1
  metadata:
  - name: redisHost
    value: localhost:6379
";

#[test]
fn loads_every_kind_from_the_fixtures() {
    let loaded = load_dirs(&[fixtures_dir()]).unwrap();

    let [component] = loaded.components.as_slice() else {
        panic!("expected one component, got {:?}", loaded.components);
    };
    assert_eq!(
        component.source.file,
        fixtures_dir().join("statestore.yaml")
    );
    assert_eq!(component.source.document, 1);
    let component = &component.resource;
    assert_eq!(component.name(), "statestore");
    assert_eq!(component.metadata.namespace.as_deref(), Some("production"));
    assert_eq!(component.spec.type_, "state.redis");
    assert_eq!(component.spec.building_block(), "state");
    assert_eq!(component.spec.version, "v1");
    assert_eq!(component.spec.init_timeout, "1m");
    assert!(component.spec.ignore_errors);
    assert_eq!(component.auth.as_ref().unwrap().secret_store, "vault");
    assert_eq!(component.scopes, ["checkout", "orders"]);
    let metadata = &component.spec.metadata;
    assert_eq!(metadata.len(), 6);
    assert_eq!(
        metadata[0].value,
        Some(DynamicValue(json!("localhost:6379")))
    );
    assert_eq!(
        metadata[1].secret_key_ref,
        Some(SecretKeyRef {
            name: "redis-secret".into(),
            key: "redis-password".into()
        })
    );
    assert_eq!(metadata[1].value, None);
    assert_eq!(
        metadata[2].value.as_ref().unwrap().to_plain_string(),
        "true"
    );
    assert_eq!(metadata[3].value, Some(DynamicValue(json!(3))));
    assert_eq!(metadata[3].value.as_ref().unwrap().to_plain_string(), "3");
    assert_eq!(metadata[4].env_ref, "STATE_TTL");
    assert_eq!(
        metadata[5].value.as_ref().unwrap().to_plain_string(),
        r#"{"indexes":[{"key":"person.org","type":"TEXT"}]}"#
    );

    let [configuration] = loaded.configurations.as_slice() else {
        panic!("expected one configuration");
    };
    let spec = &configuration.resource.spec;
    assert_eq!(configuration.resource.name(), "appconfig");
    let tracing = spec.tracing.as_ref().unwrap();
    assert_eq!(tracing.sampling_rate, "1");
    assert_eq!(tracing.stdout, Some(true));
    assert_eq!(
        tracing.zipkin.as_ref().unwrap().endpoint_address,
        "http://localhost:9411/api/v2/spans"
    );
    let otel = tracing.otel.as_ref().unwrap();
    assert_eq!(
        (otel.protocol.as_str(), otel.is_secure),
        ("grpc", Some(false))
    );
    assert_eq!(otel.timeout.as_deref(), Some("10s"));
    assert_eq!(
        otel.headers[0].secret_key_ref.as_ref().unwrap().name,
        "otel-secret"
    );
    let metric = spec.metric.as_ref().unwrap();
    assert!(metric.is_enabled());
    assert_eq!(
        metric.latency_distribution_buckets,
        Some(vec![5, 50, 500, 5000])
    );
    assert_eq!(metric.http.as_ref().unwrap().exclude_verbs, Some(true));
    assert_eq!(metric.rules[0].labels[0].regex["orders/"], "orders/.+");
    assert!(spec.metrics.is_none());
    let mtls = spec.mtls.as_ref().unwrap();
    assert!(mtls.is_enabled());
    assert_eq!(mtls.workload_cert_ttl.as_deref(), Some("24h"));
    assert_eq!(mtls.control_plane_trust_domain, "cluster.local");
    assert_eq!(
        spec.secrets.as_ref().unwrap().scopes[0].allowed_secrets,
        ["redis-password"]
    );
    let access = spec.access_control.as_ref().unwrap();
    assert_eq!(access.default_action, "deny");
    let policy = &access.policies[0];
    assert_eq!(
        (policy.app_id.as_str(), policy.namespace.as_str()),
        ("app1", "default")
    );
    assert_eq!(policy.operations[0].http_verb, ["POST", "GET"]);
    assert_eq!(policy.operations[1].action, "allow");
    let api = spec.api.as_ref().unwrap();
    assert_eq!(api.allowed[0].protocol, "http");
    assert_eq!(api.denied[0].name, "invoke");
    let handler = &spec.http_pipeline.as_ref().unwrap().handlers[0];
    assert_eq!(handler.type_, "middleware.http.uppercase");
    assert_eq!(handler.selector.as_ref().unwrap().fields[0].value, "/upper");
    assert_eq!(
        spec.app_http_pipeline.as_ref().unwrap().handlers[0].name,
        "oauth2"
    );
    let name_resolution = spec.name_resolution.as_ref().unwrap();
    assert_eq!(name_resolution.component, "consul");
    assert_eq!(name_resolution.version, "");
    assert_eq!(
        name_resolution.configuration,
        Some(DynamicValue(
            json!({"selfRegister": true, "checks": [{"interval": "15s"}]})
        ))
    );
    assert_eq!(spec.features.len(), 2);
    assert_eq!(spec.features[1].enabled, Some(false));
    assert_eq!(
        spec.components.as_ref().unwrap().deny,
        ["bindings.smtp", "secretstores.local.file/v1"]
    );
    let api_logging = spec.logging.as_ref().unwrap().api_logging.as_ref().unwrap();
    assert_eq!(api_logging.obfuscate_urls, Some(true));
    assert!(spec.wasm.as_ref().unwrap().strict_sandbox);
    let workflow = spec.workflow.as_ref().unwrap();
    assert_eq!(workflow.max_concurrent_activity_invocations, 1000);
    assert_eq!(
        workflow.global_max_concurrent_workflow_invocations,
        Some(500)
    );
    assert_eq!(
        workflow.workflow_concurrency_limits[0].max_concurrent,
        Some(10)
    );
    let retention = workflow.state_retention_policy.as_ref().unwrap();
    assert_eq!(retention.failed.as_deref(), Some("0s"));

    let [resiliency] = loaded.resiliencies.as_slice() else {
        panic!("expected one resiliency");
    };
    let spec = &resiliency.resource.spec;
    assert_eq!(resiliency.resource.scopes, ["checkout"]);
    assert_eq!(spec.policies.timeouts["important"], "60s");
    assert_eq!(spec.policies.retries["retryForever"].max_retries, Some(-1));
    assert_eq!(spec.policies.retries["retryForever"].policy, "exponential");
    let matching = spec.policies.retries["important"]
        .matching
        .as_ref()
        .unwrap();
    assert_eq!(matching.grpc_status_codes, "1-4,8-11,13,14");
    assert_eq!(
        spec.policies.circuit_breakers["simpleCB"].trip,
        "consecutiveFailures >= 5"
    );
    assert_eq!(spec.policies.circuit_breakers["simpleCB"].max_requests, 1);
    assert_eq!(spec.targets.apps["appB"].circuit_breaker_cache_size, 100);
    assert_eq!(
        spec.targets.actors["myActorType"].circuit_breaker_scope,
        "both"
    );
    assert_eq!(
        spec.targets.components["statestore"].outbound.retry,
        "retryForever"
    );
    assert_eq!(
        spec.targets.components["pubsub"].inbound.retry,
        "pubsubRetry"
    );
    assert_eq!(spec.targets.components["pubsub"].outbound.retry, "");

    let [endpoint] = loaded.http_endpoints.as_slice() else {
        panic!("expected one HTTP endpoint");
    };
    assert_eq!(
        endpoint.source.file,
        fixtures_dir().join("httpendpoint.yml")
    );
    let endpoint = &endpoint.resource;
    assert_eq!(endpoint.spec.base_url, "https://api.github.com");
    assert_eq!(
        endpoint.spec.headers[1]
            .secret_key_ref
            .as_ref()
            .unwrap()
            .key,
        "token"
    );
    let tls = endpoint.spec.client_tls.as_ref().unwrap();
    assert_eq!(tls.renegotiation, Some(Renegotiation::OnceAsClient));
    assert_eq!(
        tls.root_ca
            .as_ref()
            .unwrap()
            .secret_key_ref
            .as_ref()
            .unwrap()
            .key,
        "ca.crt"
    );
    assert!(
        tls.certificate
            .as_ref()
            .unwrap()
            .value
            .as_ref()
            .unwrap()
            .to_plain_string()
            .starts_with("-----BEGIN CERTIFICATE-----\n")
    );
    assert_eq!(endpoint.auth.as_ref().unwrap().secret_store, "vault");

    assert_eq!(
        names(&loaded.subscriptions),
        ["order-pub-sub", "inventory-subscription"]
    );
    let v2 = &loaded.subscriptions[0];
    assert_eq!(v2.source.document, 1);
    assert_eq!(v2.resource.api_version, "dapr.io/v2alpha1");
    let routes = &v2.resource.spec.routes;
    assert_eq!(
        routes.rules[0].match_expression,
        r#"event.type == "order.v2""#
    );
    assert_eq!(routes.rules[1].path, "/orders/urgent");
    assert_eq!(routes.default, "/orders");
    assert_eq!(v2.resource.spec.dead_letter_topic, "poisonMessages");
    assert!(v2.resource.spec.bulk_subscribe.enabled);
    assert_eq!(v2.resource.spec.bulk_subscribe.max_await_duration_ms, 40);
    let converted = &loaded.subscriptions[1];
    assert_eq!(converted.source.document, 2);
    assert_eq!(converted.resource.api_version, "dapr.io/v2alpha1");
    assert_eq!(converted.resource.spec.routes.default, "/inventory");
    assert!(converted.resource.spec.routes.rules.is_empty());
    assert_eq!(converted.resource.spec.metadata["rawPayload"], "true");
    assert_eq!(converted.resource.scopes, ["checkout"]);
}

#[test]
fn multi_document_files_skip_empty_foreign_and_unsupported_documents() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "mixed.yaml",
        &format!(
            "---\n{REDIS_COMPONENT}---\n# nothing but a comment\n---\n\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
---
apiVersion: dapr.io/v1alpha1
kind: MCPServer
metadata:
  name: tools
---
apiVersion: dapr.io/v9
kind: Component
metadata:
  name: from-the-future
---
just: a mapping without apiVersion or kind
---
apiVersion: dapr.io/v1alpha1
kind: Subscription
metadata:
  name: orders
spec:
  pubsubname: pubsub
  topic: orders
  route: /orders
"
        ),
    );

    let loaded = load_dirs(&[dir.path()]).unwrap();

    assert_eq!(names(&loaded.components), ["statestore"]);
    assert_eq!(
        loaded.components[0].source,
        Source {
            file: file.clone(),
            document: 1
        }
    );
    assert_eq!(names(&loaded.subscriptions), ["orders"]);
    assert_eq!(loaded.subscriptions[0].source, Source { file, document: 7 });
    assert!(loaded.configurations.is_empty());
}

#[test]
fn reads_yaml_files_in_name_order_without_recursing() {
    let first = tempfile::tempdir().unwrap();
    let second = tempfile::tempdir().unwrap();
    let component =
        |name: &str| REDIS_COMPONENT.replace("name: statestore", &format!("name: {name}"));
    write(first.path(), "b.yaml", &component("b"));
    write(first.path(), "a.yml", &component("a"));
    write(first.path(), "C.YAML", &component("c-upper"));
    write(first.path(), "notes.txt", &component("from-txt"));
    write(first.path(), "d.yaml.bak", &component("from-backup"));
    fs::create_dir(first.path().join("nested.yaml")).unwrap();
    write(
        &first.path().join("nested.yaml"),
        "e.yaml",
        &component("nested"),
    );
    write(second.path(), "0.yaml", &component("second-dir"));

    let loaded = load_dirs(&[first.path(), second.path()]).unwrap();

    assert_eq!(
        names(&loaded.components),
        ["c-upper", "a", "b", "second-dir"]
    );
}

#[test]
fn scope_filter_keeps_unscoped_and_matching_resources() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "resources.yaml",
        "\
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: everyone}
spec: {type: pubsub.redis, version: v1}
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: checkout-only}
spec: {type: pubsub.redis, version: v1}
scopes: [checkout]
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: orders-only}
spec: {type: pubsub.redis, version: v1}
scopes: [orders]
---
apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata: {name: orders-resiliency}
spec: {policies: {}, targets: {}}
scopes: [orders]
---
apiVersion: dapr.io/v1alpha1
kind: HTTPEndpoint
metadata: {name: checkout-endpoint}
spec: {baseUrl: 'http://127.0.0.1:1'}
scopes: [checkout, orders]
---
apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata: {name: orders-subscription}
spec: {pubsubname: everyone, topic: t, routes: {default: /t}}
scopes: [orders]
---
apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata: {name: config}
",
    );
    let all = load_dirs(&[dir.path()]).unwrap();

    let mut checkout = all.clone();
    checkout.retain_in_scope("checkout");
    assert_eq!(names(&checkout.components), ["everyone", "checkout-only"]);
    assert!(checkout.resiliencies.is_empty());
    assert_eq!(names(&checkout.http_endpoints), ["checkout-endpoint"]);
    assert!(checkout.subscriptions.is_empty());
    assert_eq!(names(&checkout.configurations), ["config"]);

    let mut orders = all.clone();
    orders.retain_in_scope("orders");
    assert_eq!(names(&orders.components), ["everyone", "orders-only"]);
    assert_eq!(names(&orders.resiliencies), ["orders-resiliency"]);
    assert_eq!(names(&orders.subscriptions), ["orders-subscription"]);

    let mut stranger = all;
    stranger.retain_in_scope("stranger");
    assert_eq!(names(&stranger.components), ["everyone"]);
    assert!(stranger.http_endpoints.is_empty());
}

#[test]
fn namespace_filter_keeps_resources_without_or_with_that_namespace() {
    let text = "\
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: anywhere}
spec: {type: state.in-memory, version: v1}
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: in-prod, namespace: prod}
spec: {type: state.in-memory, version: v1}
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: in-dev, namespace: dev}
spec: {type: state.in-memory, version: v1}
";
    let mut loaded = parse_str(Path::new("inline.yaml"), text).unwrap();
    loaded.retain_namespace("prod");
    assert_eq!(names(&loaded.components), ["anywhere", "in-prod"]);
}

#[test]
fn empty_and_comment_only_files_hold_no_resources() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "empty.yaml", "");
    write(dir.path(), "comments.yaml", "# nothing here yet\n");
    write(dir.path(), "separators.yaml", "---\n---\n");
    let loaded = load_dirs(&[dir.path()]).unwrap();
    assert_eq!(loaded, LoadedResources::default());
}

#[test]
fn unknown_fields_are_ignored_and_nulls_mean_absent() {
    let text = "\
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: pubsub
  someFutureField: 1
spec:
  type: pubsub.in-memory
  version: v1
  metadata:
  initTimeout:
  somethingNew: {a: b}
auth:
scopes:
status: {ready: true}
";
    let loaded = parse_str(Path::new("inline.yaml"), text).unwrap();
    let component = &loaded.components[0].resource;
    assert!(component.spec.metadata.is_empty());
    assert_eq!(component.spec.init_timeout, "");
    assert!(component.auth.is_none());
    assert!(component.scopes.is_empty());
}

#[test]
fn yaml_anchors_and_merge_keys_are_resolved() {
    let text = "\
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: primary
spec: &redis
  type: state.redis
  version: v1
  metadata:
  - name: redisHost
    value: localhost:6379
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: secondary
spec:
  <<: {type: state.redis, version: v1}
  ignoreErrors: true
";
    let loaded = parse_str(Path::new("inline.yaml"), text).unwrap();
    assert_eq!(
        loaded.components[0].resource.spec.metadata[0].name,
        "redisHost"
    );
    let secondary = &loaded.components[1].resource.spec;
    assert_eq!(
        (secondary.type_.as_str(), secondary.ignore_errors),
        ("state.redis", true)
    );
}

#[test]
fn loaded_resources_serialize_back_to_equal_resources() {
    let loaded = load_dirs(&[fixtures_dir()]).unwrap();
    let component = &loaded.components[0].resource;
    let yaml = serde_yaml::to_string(component).unwrap();
    assert!(
        yaml.starts_with("apiVersion: dapr.io/v1alpha1\nkind: Component\n"),
        "{yaml}"
    );
    let reparsed = parse_str(Path::new("roundtrip.yaml"), &yaml).unwrap();
    assert_eq!(&reparsed.components[0].resource, component);

    let configuration = &loaded.configurations[0].resource;
    let yaml = serde_yaml::to_string(configuration).unwrap();
    let reparsed = parse_str(Path::new("roundtrip.yaml"), &yaml).unwrap();
    assert_eq!(&reparsed.configurations[0].resource, configuration);
}

#[test]
fn missing_directory_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let error = load_dirs(&[&missing]).unwrap_err();
    assert!(matches!(&error, LoadError::ReadDir { dir, .. } if *dir == missing));
    assert!(
        error.to_string().contains(&missing.display().to_string()),
        "{error}"
    );
}

#[test]
fn unreadable_file_is_a_problem_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("binary.yaml");
    fs::write(&file, [0xff, 0xfe, 0x00, 0x41]).unwrap();
    let error = load_dirs(&[dir.path()]).unwrap_err();
    let LoadError::Invalid { problems } = &error else {
        panic!("unexpected error {error}");
    };
    assert_eq!(problems.len(), 1);
    assert_eq!((&problems[0].file, problems[0].document), (&file, None));
    assert!(
        error.to_string().contains("binary.yaml: cannot read file"),
        "{error}"
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "a.yaml",
        "\
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: one}
spec: {type: bad, version: v1}
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: two}
spec: {type: state.redis, version: ''}
",
    );
    write(dir.path(), "b.yaml", "[not, a, mapping]\n");
    let error = load_dirs(&[dir.path()]).unwrap_err();
    let LoadError::Invalid { problems } = &error else {
        panic!("unexpected error {error}");
    };
    let found: Vec<_> = problems
        .iter()
        .map(|problem| {
            (
                problem.file.file_name().unwrap().to_str().unwrap(),
                problem.document,
                problem.field.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            ("a.yaml", Some(1), Some("spec.type")),
            ("a.yaml", Some(2), Some("spec.version")),
            ("b.yaml", Some(1), None),
        ]
    );
    assert!(
        error.to_string().starts_with("3 invalid resources:\n  - "),
        "{error}"
    );
}

/// One malformed input: the files to write, and where its (first) problem
/// must be reported.
struct Malformed {
    case: &'static str,
    files: &'static [(&'static str, &'static str)],
    file: &'static str,
    document: Option<usize>,
    field: Option<&'static str>,
    message: &'static str,
}

#[test]
fn malformed_inputs_are_reported_with_file_document_and_field() {
    let cases = [
        Malformed {
            case: "YAML syntax error",
            files: &[(
                "broken.yaml",
                "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: a\n",
            )],
            file: "broken.yaml",
            document: Some(1),
            field: None,
            message: "invalid YAML",
        },
        Malformed {
            case: "YAML syntax error in a later document",
            files: &[(
                "broken.yaml",
                "apiVersion: v1\nkind: ConfigMap\n---\nkey: [unclosed\n",
            )],
            file: "broken.yaml",
            document: Some(2),
            field: None,
            message: "invalid YAML",
        },
        Malformed {
            case: "document is a list",
            files: &[(
                "list.yaml",
                "- apiVersion: dapr.io/v1alpha1\n- kind: Component\n",
            )],
            file: "list.yaml",
            document: Some(1),
            field: None,
            message: "expected a mapping with `apiVersion` and `kind`, found a list",
        },
        Malformed {
            case: "document is a scalar",
            files: &[("scalar.yaml", "---\nhello\n")],
            file: "scalar.yaml",
            document: Some(1),
            field: None,
            message: "found a string",
        },
        Malformed {
            case: "apiVersion is not a string",
            files: &[(
                "typemeta.yaml",
                "apiVersion: [dapr.io/v1alpha1]\nkind: Component\n",
            )],
            file: "typemeta.yaml",
            document: Some(1),
            field: Some("apiVersion"),
            message: "expected a string, found a list",
        },
        Malformed {
            case: "metadata entry name of the wrong type",
            files: &[(
                "types.yaml",
                "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: s}\nspec:\n  type: state.redis\n  version: v1\n  metadata:\n  - {name: a, value: b}\n  - {name: b, value: c}\n  - {name: [x], value: d}\n",
            )],
            file: "types.yaml",
            document: Some(1),
            field: Some("spec.metadata[2].name"),
            message: "invalid type: sequence, expected a string",
        },
        Malformed {
            case: "boolean field given a string",
            files: &[(
                "types.yaml",
                "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: s}\nspec: {type: state.redis, version: v1, ignoreErrors: sometimes}\n",
            )],
            file: "types.yaml",
            document: Some(1),
            field: Some("spec.ignoreErrors"),
            message: "expected a boolean",
        },
        Malformed {
            case: "missing component type",
            files: &[(
                "missing.yaml",
                "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: s}\nspec: {version: v1}\n",
            )],
            file: "missing.yaml",
            document: Some(1),
            field: Some("spec.type"),
            message: "missing field `type`",
        },
        Malformed {
            case: "missing component version",
            files: &[(
                "missing.yaml",
                "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: s}\nspec: {type: state.redis}\n",
            )],
            file: "missing.yaml",
            document: Some(1),
            field: Some("spec.version"),
            message: "missing field `version`",
        },
        Malformed {
            case: "missing spec",
            files: &[(
                "missing.yaml",
                "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: s}\n",
            )],
            file: "missing.yaml",
            document: Some(1),
            field: Some("spec.type"),
            message: "a component type is required",
        },
        Malformed {
            case: "missing name",
            files: &[(
                "noname.yaml",
                "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nspec: {}\n",
            )],
            file: "noname.yaml",
            document: Some(1),
            field: Some("metadata.name"),
            message: "a name is required",
        },
        Malformed {
            case: "name with a slash",
            files: &[(
                "badname.yaml",
                "apiVersion: dapr.io/v1alpha1\nkind: Resiliency\nmetadata: {name: a/b}\n",
            )],
            file: "badname.yaml",
            document: Some(1),
            field: Some("metadata.name"),
            message: "may not contain '/' or '%'",
        },
        Malformed {
            case: "component type without a building block",
            files: &[(
                "type.yaml",
                "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: s}\nspec: {type: redis, version: v1}\n",
            )],
            file: "type.yaml",
            document: Some(1),
            field: Some("spec.type"),
            message: "component type \"redis\" is not of the form `<building block>.<implementation>`",
        },
        Malformed {
            case: "component type with an empty implementation",
            files: &[(
                "type.yaml",
                "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: s}\nspec: {type: 'state.', version: v1}\n",
            )],
            file: "type.yaml",
            document: Some(1),
            field: Some("spec.type"),
            message: "is not of the form",
        },
        Malformed {
            case: "metadata entry with an empty name",
            files: &[(
                "entry.yaml",
                "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: s}\nspec: {type: state.redis, version: v1, metadata: [{name: '', value: x}]}\n",
            )],
            file: "entry.yaml",
            document: Some(1),
            field: Some("spec.metadata[0].name"),
            message: "must not be empty",
        },
        Malformed {
            case: "secretKeyRef without a name",
            files: &[(
                "entry.yaml",
                "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: s}\nspec: {type: state.redis, version: v1, metadata: [{name: p, secretKeyRef: {key: k}}]}\n",
            )],
            file: "entry.yaml",
            document: Some(1),
            field: Some("spec.metadata[0].secretKeyRef.name"),
            message: "missing field `name`",
        },
        Malformed {
            case: "duplicate component names across files",
            files: &[("a.yaml", REDIS_COMPONENT), ("b.yaml", REDIS_COMPONENT)],
            file: "b.yaml",
            document: Some(1),
            field: Some("metadata.name"),
            message: "duplicate Component name \"statestore\", first defined in",
        },
        Malformed {
            case: "duplicate subscription names across versions",
            files: &[(
                "subs.yaml",
                "apiVersion: dapr.io/v1alpha1\nkind: Subscription\nmetadata: {name: s}\nspec: {pubsubname: p, topic: t, route: /r}\n---\napiVersion: dapr.io/v2alpha1\nkind: Subscription\nmetadata: {name: s}\nspec: {pubsubname: p, topic: t, routes: {default: /r}}\n",
            )],
            file: "subs.yaml",
            document: Some(2),
            field: Some("metadata.name"),
            message: "duplicate Subscription name \"s\"",
        },
        Malformed {
            case: "retry count that is not a number",
            files: &[(
                "resiliency.yaml",
                "apiVersion: dapr.io/v1alpha1\nkind: Resiliency\nmetadata: {name: r}\nspec:\n  policies:\n    retries:\n      pubsubRetry: {policy: constant, maxRetries: ten}\n  targets: {}\n",
            )],
            file: "resiliency.yaml",
            document: Some(1),
            field: Some("spec.policies.retries.pubsubRetry.maxRetries"),
            message: "invalid type: string \"ten\", expected i64",
        },
        Malformed {
            case: "routing rule without a path",
            files: &[(
                "sub.yaml",
                "apiVersion: dapr.io/v2alpha1\nkind: Subscription\nmetadata: {name: s}\nspec:\n  pubsubname: p\n  topic: t\n  routes:\n    rules:\n    - {match: 'event.type == \"a\"'}\n",
            )],
            file: "sub.yaml",
            document: Some(1),
            field: Some("spec.routes.rules[0].path"),
            message: "missing field `path`",
        },
        Malformed {
            case: "subscription without a topic",
            files: &[(
                "sub.yaml",
                "apiVersion: dapr.io/v1alpha1\nkind: Subscription\nmetadata: {name: s}\nspec: {pubsubname: p, topic: '', route: /r}\n",
            )],
            file: "sub.yaml",
            document: Some(1),
            field: Some("spec.topic"),
            message: "must not be empty",
        },
        Malformed {
            case: "subscription metadata value that is not a string",
            files: &[(
                "sub.yaml",
                "apiVersion: dapr.io/v1alpha1\nkind: Subscription\nmetadata: {name: s}\nspec: {pubsubname: p, topic: t, route: /r, metadata: {rawPayload: true}}\n",
            )],
            file: "sub.yaml",
            document: Some(1),
            field: Some("spec.metadata.rawPayload"),
            message: "invalid type: boolean `true`, expected a string",
        },
        Malformed {
            case: "endpoint with an empty base URL",
            files: &[(
                "endpoint.yaml",
                "apiVersion: dapr.io/v1alpha1\nkind: HTTPEndpoint\nmetadata: {name: e}\nspec: {baseUrl: ''}\n",
            )],
            file: "endpoint.yaml",
            document: Some(1),
            field: Some("spec.baseUrl"),
            message: "must not be empty",
        },
        Malformed {
            case: "unknown TLS renegotiation policy",
            files: &[(
                "endpoint.yaml",
                "apiVersion: dapr.io/v1alpha1\nkind: HTTPEndpoint\nmetadata: {name: e}\nspec: {baseUrl: 'http://x', clientTLS: {renegotiation: Sometimes}}\n",
            )],
            file: "endpoint.yaml",
            document: Some(1),
            field: Some("spec.clientTLS.renegotiation"),
            message: "unknown variant `Sometimes`",
        },
        Malformed {
            case: "feature flag of the wrong type",
            files: &[(
                "config.yaml",
                "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata: {name: c}\nspec:\n  features:\n  - {name: A, enabled: true}\n  - {name: B, enabled: maybe}\n",
            )],
            file: "config.yaml",
            document: Some(1),
            field: Some("spec.features[1].enabled"),
            message: "expected a boolean",
        },
        Malformed {
            case: "access control policy without an app ID",
            files: &[(
                "config.yaml",
                "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata: {name: c}\nspec: {accessControl: {policies: [{defaultAction: deny}]}}\n",
            )],
            file: "config.yaml",
            document: Some(1),
            field: Some("spec.accessControl.policies[0].appId"),
            message: "missing field `appId`",
        },
        Malformed {
            case: "labels that are not a mapping",
            files: &[(
                "labels.yaml",
                "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata: {name: c, labels: [a]}\n",
            )],
            file: "labels.yaml",
            document: Some(1),
            field: Some("metadata.labels"),
            message: "invalid type: sequence",
        },
    ];

    for case in cases {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in case.files {
            write(dir.path(), name, text);
        }
        let error = match load_dirs(&[dir.path()]) {
            Ok(loaded) => panic!("{}: loaded {loaded:?}", case.case),
            Err(error) => error,
        };
        let LoadError::Invalid { problems } = &error else {
            panic!("{}: unexpected error {error}", case.case);
        };
        // The first problem is the one the case is about (a missing spec,
        // for one, also leaves the version empty).
        let Some(problem) = problems.first() else {
            panic!("{}: no problem reported", case.case);
        };
        let file = dir.path().join(case.file);
        assert_eq!(problem.file, file, "{}", case.case);
        assert_eq!(problem.document, case.document, "{}: {problem}", case.case);
        assert_eq!(
            problem.field.as_deref(),
            case.field,
            "{}: {problem}",
            case.case
        );
        assert!(
            problem.message.contains(case.message),
            "{}: {problem}",
            case.case
        );

        let text = error.to_string();
        assert!(
            text.contains(&file.display().to_string()),
            "{}: {text}",
            case.case
        );
        if let Some(document) = case.document {
            assert!(
                text.contains(&format!(": document {document}")),
                "{}: {text}",
                case.case
            );
        }
        if let Some(field) = case.field {
            assert!(
                text.contains(&format!(": field `{field}`: ")),
                "{}: {text}",
                case.case
            );
        }
    }
}

#[test]
fn parse_str_reports_the_given_file_name() {
    let error = parse_str(
        Path::new("/etc/dapr/config.yaml"),
        "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata: {name: a/b}\n",
    )
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid resource: /etc/dapr/config.yaml: document 1: field `metadata.name`: name \"a/b\" may not contain '/' or '%'"
    );
}

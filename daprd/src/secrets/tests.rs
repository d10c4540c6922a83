//! The secrets API through both edges: real `secretstores.local.file` (flat and
//! multi-valued JSON files) and `secretstores.local.env` stores, started by the component
//! loader, behind the sidecar's own HTTP router and gRPC service served on loopback.
//! Also: secret scopes (upstream's rules, table-driven), metadata passthrough, metrics,
//! and `secretKeyRef`s resolved through `auth.secretStore` when components load.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use bytes::Bytes;
use dapr_components::secretstores::{Feature, Secret, SecretError, SecretStore};
use dapr_kit::metrics::MetricsRegistry;
use dapr_proto::runtime::dapr_client::DaprClient;
use dapr_proto::runtime::{GetBulkSecretRequest, GetSecretRequest};
use dapr_resources::loader::{self, LoadedResources};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tempfile::TempDir;
use tonic::transport::Channel;

use super::{ScopesError, SecretScopes};
use crate::components::{ComponentSet, KeyPrefix, SecretStoreHandle, load};
use crate::observability::metrics::{MetricsSettings, SidecarMetrics};
use crate::test_support::{self, PublicApis};

/// Nested values, flattened into one secret per leaf (`db:user`, `list:0`, ...).
const FLAT_FILE: &str =
    r#"{"db": {"user": "admin", "password": "s3cret"}, "apiKey": "k1", "list": ["a", "b"]}"#;
/// Every top-level key is one secret; objects hold several values.
const MULTI_VALUED_FILE: &str =
    r#"{"db": {"user": "admin", "password": "s3cret"}, "apiKey": "k1"}"#;
/// The secret names the flat file holds.
const FLAT_NAMES: [&str; 5] = ["apiKey", "db:password", "db:user", "list:0", "list:1"];
/// The `local.env` store's prefix: it serves `PATH` (present in every test process) as `H`.
const ENV_PREFIX: &str = "PAT";

/// A Component resource in YAML.
fn component(name: &str, kind: &str, top_level: &str, metadata: &[(&str, &str)]) -> String {
    let metadata: String = metadata
        .iter()
        .map(|(name, value)| format!("  - name: {name}\n    value: '{value}'\n"))
        .collect();
    format!(
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: {name}\n{top_level}spec:\n  type: {kind}\n  version: v1\n  metadata:\n{metadata}"
    )
}

/// The three test stores: `files` (flat file), `vault` (multi-valued file) and `env`.
fn stores(dir: &Path) -> String {
    let flat = dir.join("flat.json");
    let multi = dir.join("multi.json");
    std::fs::write(&flat, FLAT_FILE).unwrap();
    std::fs::write(&multi, MULTI_VALUED_FILE).unwrap();
    [
        component(
            "files",
            "secretstores.local.file",
            "",
            &[("secretsFile", flat.to_str().unwrap())],
        ),
        component(
            "vault",
            "secretstores.local.file",
            "",
            &[
                ("secretsFile", multi.to_str().unwrap()),
                ("multiValued", "true"),
            ],
        ),
        component(
            "env",
            "secretstores.local.env",
            "",
            &[("prefix", ENV_PREFIX)],
        ),
    ]
    .join("---\n")
}

fn parse(yaml: &str) -> LoadedResources {
    loader::parse_str(Path::new("resources.yaml"), yaml).unwrap()
}

/// Starts `yaml`'s components with the component loader.
async fn load_components(yaml: &str, metrics: &SidecarMetrics) -> ComponentSet {
    test_support::load_yaml(yaml, metrics).await
}

/// The secret scopes of a Configuration resource's `spec.secrets`.
fn scopes_of(configuration_yaml: &str) -> Result<SecretScopes, ScopesError> {
    let resources = parse(configuration_yaml);
    let configuration = &resources.configurations[0].resource;
    SecretScopes::from_spec(configuration.spec.secrets.as_ref())
}

/// A Configuration whose `spec.secrets.scopes` is `scopes` (YAML list items).
fn configuration(scopes: &str) -> String {
    format!(
        "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: config\nspec:\n  secrets:\n    scopes:\n{scopes}"
    )
}

/// A sidecar serving only its public APIs, over `set` with `scopes`.
struct Sidecar {
    http: SocketAddr,
    grpc: DaprClient<Channel>,
    registry: MetricsRegistry,
}

async fn start(set: ComponentSet, scopes: SecretScopes, registry: MetricsRegistry) -> Sidecar {
    let metrics =
        SidecarMetrics::register(&registry, &MetricsSettings::new("myapp", "default")).unwrap();
    let PublicApis { http, grpc, .. } =
        test_support::serve_public_apis(test_support::default_config(), set, scopes, metrics).await;
    Sidecar {
        http,
        grpc,
        registry,
    }
}

/// A sidecar with the three test stores and `scopes`; the temp dir holds their files.
async fn start_with_stores(scopes: SecretScopes) -> (Sidecar, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let registry = MetricsRegistry::new();
    let set = load_components(&stores(dir.path()), &SidecarMetrics::disabled()).await;
    (start(set, scopes, registry).await, dir)
}

/// Sends `method path` to the HTTP API; returns the status and the JSON body (checking
/// it is declared as JSON).
async fn call(address: SocketAddr, method: &str, path: &str) -> (StatusCode, Value) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let request = http::Request::builder()
        .method(method)
        .uri(format!("http://{address}{path}"))
        .body(Empty::new())
        .unwrap();
    let response = client.request(request).await.unwrap();
    let status = response.status();
    assert_eq!(
        response.headers()[http::header::CONTENT_TYPE],
        "application/json",
        "{method} {path}"
    );
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap())
}

async fn get(sidecar: &Sidecar, path: &str) -> (StatusCode, Value) {
    call(sidecar.http, "GET", path).await
}

async fn grpc_get(sidecar: &Sidecar, store: &str, key: &str) -> Result<Secret, tonic::Status> {
    let request = GetSecretRequest {
        store_name: store.into(),
        key: key.into(),
        metadata: HashMap::new(),
    };
    let response = sidecar.grpc.clone().get_secret(request).await?;
    Ok(response.into_inner().data.into_iter().collect())
}

async fn grpc_bulk(
    sidecar: &Sidecar,
    store: &str,
) -> Result<BTreeMap<String, Secret>, tonic::Status> {
    let request = GetBulkSecretRequest {
        store_name: store.into(),
        metadata: HashMap::new(),
    };
    let response = sidecar.grpc.clone().get_bulk_secret(request).await?;
    Ok(response
        .into_inner()
        .data
        .into_iter()
        .map(|(name, secret)| (name, secret.secrets.into_iter().collect()))
        .collect())
}

fn secret(pairs: &[(&str, &str)]) -> Secret {
    pairs
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

fn path_variable() -> String {
    std::env::var("PATH").unwrap()
}

#[tokio::test]
async fn get_reads_flat_multi_valued_and_environment_secrets_on_both_edges() {
    let (sidecar, _dir) = start_with_stores(SecretScopes::default()).await;
    let cases = [
        ("files", "db:user", secret(&[("db:user", "admin")])),
        ("files", "list:1", secret(&[("list:1", "b")])),
        ("files", "apiKey", secret(&[("apiKey", "k1")])),
        (
            "vault",
            "db",
            secret(&[("password", "s3cret"), ("user", "admin")]),
        ),
        ("vault", "apiKey", secret(&[("apiKey", "k1")])),
        ("env", "H", secret(&[("H", &path_variable())])),
    ];
    for (store, key, expected) in cases {
        let (status, body) = get(&sidecar, &format!("/v1.0/secrets/{store}/{key}")).await;
        assert_eq!(status, StatusCode::OK, "{store}/{key}: {body}");
        assert_eq!(body, json!(expected), "{store}/{key}");
        assert_eq!(grpc_get(&sidecar, store, key).await.unwrap(), expected);
    }
}

#[tokio::test]
async fn bulk_reads_every_secret_of_a_store_on_both_edges() {
    let (sidecar, _dir) = start_with_stores(SecretScopes::default()).await;
    let flat: BTreeMap<String, Secret> = [
        ("apiKey", "k1"),
        ("db:password", "s3cret"),
        ("db:user", "admin"),
        ("list:0", "a"),
        ("list:1", "b"),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_string(), secret(&[(name, value)])))
    .collect();
    let multi_valued: BTreeMap<String, Secret> = BTreeMap::from([
        ("apiKey".to_string(), secret(&[("apiKey", "k1")])),
        (
            "db".to_string(),
            secret(&[("password", "s3cret"), ("user", "admin")]),
        ),
    ]);
    for (store, expected) in [("files", flat), ("vault", multi_valued)] {
        let (status, body) = get(&sidecar, &format!("/v1.0/secrets/{store}/bulk")).await;
        assert_eq!(status, StatusCode::OK, "{store}: {body}");
        assert_eq!(body, json!(expected), "{store}");
        assert_eq!(grpc_bulk(&sidecar, store).await.unwrap(), expected);
    }

    let (status, body) = get(&sidecar, "/v1.0/secrets/env/bulk").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["H"], json!({ "H": path_variable() }));
    let environment = grpc_bulk(&sidecar, "env").await.unwrap();
    assert_eq!(environment["H"], secret(&[("H", &path_variable())]));
    for (name, values) in &environment {
        let variable = std::env::var(format!("{ENV_PREFIX}{name}")).unwrap();
        assert_eq!(values, &secret(&[(name, &variable)]));
    }
}

/// Checks an HTTP error body and the gRPC status of the same failure.
fn assert_failure(
    (status, body): (StatusCode, Value),
    grpc: tonic::Status,
    expected: (StatusCode, &str, tonic::Code, &str),
) {
    let (http_status, code, grpc_code, message) = expected;
    assert_eq!(status, http_status, "{body}");
    assert_eq!(body, json!({ "errorCode": code, "message": message }));
    assert_eq!(grpc.code(), grpc_code, "{grpc:?}");
    assert_eq!(grpc.message(), message);
}

#[tokio::test]
async fn a_missing_secret_is_upstreams_secret_get_error() {
    let (sidecar, _dir) = start_with_stores(SecretScopes::default()).await;
    assert_failure(
        get(&sidecar, "/v1.0/secrets/files/nope").await,
        grpc_get(&sidecar, "files", "nope").await.unwrap_err(),
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "ERR_SECRET_GET",
            tonic::Code::Internal,
            "failed getting secret with key nope from secret store files: secret nope not found",
        ),
    );
    // The environment store answers an empty value for a variable it does not have.
    let (status, body) = get(&sidecar, "/v1.0/secrets/env/NO_SUCH_VARIABLE").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({ "NO_SUCH_VARIABLE": "" }));
}

#[tokio::test]
async fn an_unknown_store_is_not_found_for_get_and_bulk() {
    let (sidecar, _dir) = start_with_stores(SecretScopes::default()).await;
    let expected = (
        StatusCode::UNAUTHORIZED,
        "ERR_SECRET_STORE_NOT_FOUND",
        tonic::Code::InvalidArgument,
        "failed finding secret store with key nope",
    );
    assert_failure(
        get(&sidecar, "/v1.0/secrets/nope/apiKey").await,
        grpc_get(&sidecar, "nope", "apiKey").await.unwrap_err(),
        expected,
    );
    assert_failure(
        get(&sidecar, "/v1.0/secrets/nope/bulk").await,
        grpc_bulk(&sidecar, "nope").await.unwrap_err(),
        expected,
    );
}

#[tokio::test]
async fn a_sidecar_without_secret_stores_says_none_are_configured() {
    let set = load_components(
        &component("cache", "state.in-memory", "", &[("a", "b")]),
        &SidecarMetrics::disabled(),
    )
    .await;
    let sidecar = start(set, SecretScopes::default(), MetricsRegistry::new()).await;
    let expected = (
        StatusCode::INTERNAL_SERVER_ERROR,
        "ERR_SECRET_STORES_NOT_CONFIGURED",
        tonic::Code::FailedPrecondition,
        "secret store is not configured",
    );
    assert_failure(
        get(&sidecar, "/v1.0/secrets/cache/apiKey").await,
        grpc_get(&sidecar, "cache", "apiKey").await.unwrap_err(),
        expected,
    );
    assert_failure(
        get(&sidecar, "/v1.0/secrets/cache/bulk").await,
        grpc_bulk(&sidecar, "cache").await.unwrap_err(),
        expected,
    );
}

/// One scope configuration and the secrets of `files` it lets the app read.
struct ScopeCase {
    name: &'static str,
    /// `spec.secrets.scopes` items, or empty for a Configuration without scopes.
    scopes: &'static str,
    /// The names of [`FLAT_NAMES`] the app may read.
    visible: &'static [&'static str],
}

const SCOPE_CASES: &[ScopeCase] = &[
    ScopeCase {
        name: "a store without a scope allows everything",
        scopes: "",
        visible: &FLAT_NAMES,
    },
    ScopeCase {
        name: "a scope for another store does not apply",
        scopes: "    - storeName: vault\n      defaultAccess: deny\n",
        visible: &FLAT_NAMES,
    },
    ScopeCase {
        name: "default allow",
        scopes: "    - storeName: files\n      defaultAccess: allow\n",
        visible: &FLAT_NAMES,
    },
    ScopeCase {
        name: "default access unset means allow",
        scopes: "    - storeName: files\n",
        visible: &FLAT_NAMES,
    },
    ScopeCase {
        name: "default deny",
        scopes: "    - storeName: files\n      defaultAccess: deny\n",
        visible: &[],
    },
    ScopeCase {
        name: "default access compares without case",
        scopes: "    - storeName: files\n      defaultAccess: DeNy\n",
        visible: &[],
    },
    ScopeCase {
        name: "default deny with an allowed list",
        scopes: "    - storeName: files\n      defaultAccess: deny\n      allowedSecrets: [\"apiKey\", \"db:user\"]\n",
        visible: &["apiKey", "db:user"],
    },
    ScopeCase {
        name: "an allowed list wins over default allow",
        scopes: "    - storeName: files\n      defaultAccess: allow\n      allowedSecrets: [\"list:0\"]\n",
        visible: &["list:0"],
    },
    ScopeCase {
        name: "an allowed list wins over the denied list",
        scopes: "    - storeName: files\n      allowedSecrets: [\"apiKey\"]\n      deniedSecrets: [\"apiKey\", \"db:user\"]\n",
        visible: &["apiKey"],
    },
    ScopeCase {
        name: "default allow with a denied list",
        scopes: "    - storeName: files\n      defaultAccess: allow\n      deniedSecrets: [\"db:password\", \"db:user\"]\n",
        visible: &["apiKey", "list:0", "list:1"],
    },
    ScopeCase {
        name: "default deny with a denied list",
        scopes: "    - storeName: files\n      defaultAccess: deny\n      deniedSecrets: [\"apiKey\"]\n",
        visible: &[],
    },
    ScopeCase {
        name: "names match exactly",
        scopes: "    - storeName: files\n      allowedSecrets: [\"APIKEY\", \"db\"]\n",
        visible: &[],
    },
];

#[tokio::test]
async fn secret_scopes_decide_what_get_and_bulk_return() {
    for case in SCOPE_CASES {
        let scopes = if case.scopes.is_empty() {
            SecretScopes::from_spec(None).unwrap()
        } else {
            scopes_of(&configuration(case.scopes)).unwrap()
        };
        let (sidecar, _dir) = start_with_stores(scopes).await;
        for name in FLAT_NAMES {
            let http = get(&sidecar, &format!("/v1.0/secrets/files/{name}")).await;
            let grpc = grpc_get(&sidecar, "files", name).await;
            if case.visible.contains(&name) {
                assert_eq!(http.0, StatusCode::OK, "{}: {name}", case.name);
                assert!(grpc.is_ok(), "{}: {name}: {grpc:?}", case.name);
            } else {
                assert_failure(
                    http,
                    grpc.unwrap_err(),
                    (
                        StatusCode::FORBIDDEN,
                        "ERR_PERMISSION_DENIED",
                        tonic::Code::PermissionDenied,
                        &format!("access denied by policy to get \"{name}\" from \"files\""),
                    ),
                );
            }
        }
        let (status, body) = get(&sidecar, "/v1.0/secrets/files/bulk").await;
        assert_eq!(status, StatusCode::OK, "{}", case.name);
        let listed: Vec<&str> = body
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(listed, case.visible, "{}", case.name);
        let listed = grpc_bulk(&sidecar, "files").await.unwrap();
        assert!(
            listed.keys().eq(case.visible.iter().copied()),
            "{}: {listed:?}",
            case.name
        );
        // Other stores are not affected by the `files` scope.
        let vault_scoped = case.scopes.contains("storeName: vault");
        let vault = get(&sidecar, "/v1.0/secrets/vault/apiKey").await.0;
        assert_eq!(vault == StatusCode::OK, !vault_scoped, "{}", case.name);
    }
}

#[test]
fn invalid_secret_scopes_are_refused_with_upstreams_errors() {
    let repeated = configuration(
        "    - storeName: files\n      defaultAccess: allow\n    - storeName: files\n      defaultAccess: deny\n",
    );
    assert_eq!(
        scopes_of(&repeated).unwrap_err().to_string(),
        "files storeName is repeated in secrets configuration"
    );
    let invalid = configuration("    - storeName: files\n      defaultAccess: sometimes\n");
    assert_eq!(
        scopes_of(&invalid).unwrap_err().to_string(),
        "defaultAccess sometimes can be either allow or deny"
    );
    let run_error = crate::RuntimeError::from(scopes_of(&invalid).unwrap_err());
    assert_eq!(
        run_error.to_string(),
        "error loading configuration: defaultAccess sometimes can be either allow or deny"
    );
}

/// A real local-file store that remembers the request metadata of every call.
struct Recording {
    inner: Arc<dyn SecretStore>,
    seen: Arc<Mutex<Vec<HashMap<String, String>>>>,
}

#[async_trait::async_trait]
impl SecretStore for Recording {
    fn features(&self) -> &[Feature] {
        self.inner.features()
    }

    async fn get_secret(
        &self,
        name: &str,
        metadata: &HashMap<String, String>,
    ) -> Result<Secret, SecretError> {
        self.seen.lock().unwrap().push(metadata.clone());
        self.inner.get_secret(name, metadata).await
    }

    async fn bulk_get_secret(
        &self,
        metadata: &HashMap<String, String>,
    ) -> Result<BTreeMap<String, Secret>, SecretError> {
        self.seen.lock().unwrap().push(metadata.clone());
        self.inner.bulk_get_secret(metadata).await
    }
}

fn metadata(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

#[tokio::test]
async fn request_metadata_reaches_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let mut set = load_components(&stores(dir.path()), &SidecarMetrics::disabled()).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let files = set.secret_store("files").unwrap().store.clone();
    set.secret_stores.insert(
        "recorded".into(),
        Arc::new(SecretStoreHandle {
            name: "recorded".into(),
            component_type: "secretstores.local.file".into(),
            store: Arc::new(Recording {
                inner: files,
                seen: seen.clone(),
            }),
        }),
    );
    let mut sidecar = start(set, SecretScopes::default(), MetricsRegistry::new()).await;

    let (status, _) = get(
        &sidecar,
        "/v1.0/secrets/recorded/apiKey?metadata.version=2&metadata.version=3&other=x&metadata.a%20b=c%2Bd+e",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = get(&sidecar, "/v1.0/secrets/recorded/bulk?metadata.page=1").await;
    assert_eq!(status, StatusCode::OK);
    sidecar
        .grpc
        .get_secret(GetSecretRequest {
            store_name: "recorded".into(),
            key: "apiKey".into(),
            metadata: metadata(&[("version", "7")]),
        })
        .await
        .unwrap();
    sidecar
        .grpc
        .get_bulk_secret(GetBulkSecretRequest {
            store_name: "recorded".into(),
            metadata: metadata(&[("page", "2")]),
        })
        .await
        .unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        vec![
            metadata(&[("version", "2"), ("a b", "c+d e")]),
            metadata(&[("page", "1")]),
            metadata(&[("version", "7")]),
            metadata(&[("page", "2")]),
        ]
    );
}

#[tokio::test]
async fn store_calls_are_counted_but_refusals_before_the_store_are_not() {
    let scopes = scopes_of(&configuration(
        "    - storeName: files\n      deniedSecrets: [\"list:0\"]\n",
    ))
    .unwrap();
    let (sidecar, _dir) = start_with_stores(scopes).await;
    get(&sidecar, "/v1.0/secrets/files/apiKey").await;
    grpc_get(&sidecar, "files", "apiKey").await.unwrap();
    get(&sidecar, "/v1.0/secrets/files/nope").await;
    get(&sidecar, "/v1.0/secrets/files/list:0").await;
    get(&sidecar, "/v1.0/secrets/files/bulk").await;
    get(&sidecar, "/v1.0/secrets/nope/apiKey").await;
    let text = sidecar.registry.encode_text();
    let count = |operation: &str, success: &str| {
        let line = format!(
            "dapr_component_secret_count{{app_id=\"myapp\",component=\"files\",namespace=\"default\",operation=\"{operation}\",success=\"{success}\"}}"
        );
        text.lines()
            .find_map(|found| found.strip_prefix(line.as_str()))
            .map(|value| value.trim().to_string())
    };
    assert_eq!(count("get", "true").as_deref(), Some("2"), "{text}");
    assert_eq!(count("get", "false").as_deref(), Some("1"), "{text}");
    assert_eq!(count("bulk_get", "true").as_deref(), Some("1"), "{text}");
    assert!(!text.contains("component=\"nope\""), "{text}");
}

#[tokio::test]
async fn another_verb_on_a_secrets_route_is_tried_as_an_invocation() {
    let (sidecar, _dir) = start_with_stores(SecretScopes::default()).await;
    let (status, body) = call(sidecar.http, "POST", "/v1.0/secrets/files/apiKey").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["errorCode"], "ERR_DIRECT_INVOKE");
}

/// A `state.in-memory` component whose `keyPrefix` comes from secret `secret`'s value
/// `key`, read through the store `auth.secretStore` names.
fn state_store_with_secret_ref(secret: &str, key: &str) -> String {
    format!(
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: cache\nauth:\n  secretStore: vault\nspec:\n  type: state.in-memory\n  version: v1\n  metadata:\n  - name: keyPrefix\n    secretKeyRef:\n      name: {secret}\n      key: {key}\n"
    )
}

#[tokio::test]
async fn a_secret_key_ref_resolves_through_the_components_secret_store_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("settings.json");
    std::fs::write(
        &file,
        r#"{"settings": {"prefix": "tenant-a", "other": "x"}}"#,
    )
    .unwrap();
    let vault = component(
        "vault",
        "secretstores.local.file",
        "",
        &[
            ("secretsFile", file.to_str().unwrap()),
            ("multiValued", "true"),
        ],
    );
    // The state store comes first in the file: secret stores still start before it.
    let yaml = [
        state_store_with_secret_ref("settings", "prefix"),
        vault.clone(),
    ]
    .join("---\n");
    let set = load_components(&yaml, &SidecarMetrics::disabled()).await;
    assert_eq!(
        set.state_store("cache").unwrap().key_prefix,
        KeyPrefix::Custom("tenant-a".into())
    );

    let metrics = SidecarMetrics::disabled();
    let context = test_support::load_context(&metrics);
    for (secret, key, reason) in [
        (
            "missing",
            "prefix",
            "failed to read secret missing from secret store vault: secret missing not found",
        ),
        (
            "settings",
            "absent",
            "secret settings in secret store vault has no key absent",
        ),
    ] {
        let yaml = [state_store_with_secret_ref(secret, key), vault.clone()].join("---\n");
        let error = load(&parse(&yaml).components, context, None)
            .await
            .unwrap_err();
        assert_eq!(error.name, "cache");
        assert_eq!(error.reason, reason);
        assert!(
            error
                .to_string()
                .starts_with("process component cache error: [INIT_COMPONENT_FAILURE]"),
            "{error}"
        );
    }
}

//! The secrets API (HTTP `/v1.0/secrets/...`, the SDK's `get_secret` and `get_bulk_secret`
//! over gRPC) on the local file store (flat and multi-valued) and the local environment
//! store, with upstream's errors and the Configuration's secret scopes.

use std::path::{Path, PathBuf};

use dapr_testkit::{Daprd, http};
use serde_json::{Value, json};

use crate::state::sdk_failures;

const SECRETS: &str = r#"{"api-key": "k3y", "db": {"user": "admin", "password": "pa:ss"}}"#;

/// Writes the secrets file and four secret stores into `dir/resources`: `localsecrets`
/// (flattened with `:`), `multisecrets` (multi-valued), `envsecrets` (variables starting
/// with `E2E_SECRET_`) and `allenv` (every variable).
fn resources(dir: &Path) -> PathBuf {
    let file = dir.join("secrets.json");
    std::fs::write(&file, SECRETS).unwrap();
    let resources = dir.join("resources");
    std::fs::create_dir(&resources).unwrap();
    let component = |name: &str, kind: &str, metadata: &[(&str, &str)]| {
        let mut yaml = format!(
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: {name}\nspec:\n  \
             type: secretstores.{kind}\n  version: v1\n"
        );
        if !metadata.is_empty() {
            yaml.push_str("  metadata:\n");
        }
        for (key, value) in metadata {
            yaml.push_str(&format!("  - name: {key}\n    value: \"{value}\"\n"));
        }
        std::fs::write(resources.join(format!("{name}.yaml")), yaml).unwrap();
    };
    let file = file.display().to_string();
    component("localsecrets", "local.file", &[("secretsFile", &file)]);
    component(
        "multisecrets",
        "local.file",
        &[("secretsFile", &file), ("multiValued", "true")],
    );
    component("envsecrets", "local.env", &[("prefix", "E2E_SECRET_")]);
    component("allenv", "local.env", &[]);
    resources
}

async fn sidecar(dir: &Path, config: Option<PathBuf>) -> Daprd {
    let mut builder = Daprd::builder("secrets-app")
        .resources_path(resources(dir))
        .env("E2E_SECRET_TOKEN", "t0ken")
        .env("E2E_SECRET_OTHER", "other")
        .env("APP_API_TOKEN", "app-token");
    if let Some(config) = config {
        builder = builder.config(config);
    }
    builder.start().await.unwrap()
}

async fn get(daprd: &Daprd, path: &str) -> (u16, Value) {
    let response = http::get(&format!("{}/v1.0/secrets/{path}", daprd.base_url()))
        .await
        .unwrap();
    let body = response
        .json()
        .unwrap_or_else(|err| panic!("{path}: not JSON ({err}): {}", response.text()));
    (response.status.as_u16(), body)
}

fn error(code: &str, message: &str) -> Value {
    json!({"errorCode": code, "message": message})
}

#[tokio::test]
async fn secrets_over_http_and_the_sdk() {
    let dir = tempfile::tempdir().unwrap();
    let daprd = sidecar(dir.path(), None).await;

    assert_eq!(
        get(&daprd, "localsecrets/api-key").await,
        (200, json!({"api-key": "k3y"}))
    );
    assert_eq!(
        get(&daprd, "localsecrets/db:user").await,
        (200, json!({"db:user": "admin"}))
    );
    assert_eq!(
        get(&daprd, "localsecrets/bulk").await,
        (
            200,
            json!({"api-key": {"api-key": "k3y"}, "db:user": {"db:user": "admin"},
                   "db:password": {"db:password": "pa:ss"}})
        )
    );
    assert_eq!(
        get(&daprd, "multisecrets/db").await,
        (200, json!({"user": "admin", "password": "pa:ss"}))
    );
    assert_eq!(
        get(&daprd, "multisecrets/bulk").await,
        (
            200,
            json!({"api-key": {"api-key": "k3y"}, "db": {"user": "admin", "password": "pa:ss"}})
        )
    );
    assert_eq!(
        get(&daprd, "envsecrets/TOKEN").await,
        (200, json!({"TOKEN": "t0ken"}))
    );
    assert_eq!(
        get(&daprd, "envsecrets/bulk").await,
        (
            200,
            json!({"TOKEN": {"TOKEN": "t0ken"}, "OTHER": {"OTHER": "other"}})
        )
    );
    // The sidecar's own credentials are never handed out.
    assert_eq!(
        get(&daprd, "allenv/APP_API_TOKEN").await,
        (200, json!({"APP_API_TOKEN": ""}))
    );
    assert_eq!(
        get(&daprd, "allenv/DAPR_HOST_IP").await,
        (200, json!({"DAPR_HOST_IP": ""}))
    );
    let (status, all) = get(&daprd, "allenv/bulk").await;
    assert_eq!(status, 200);
    let all = all.as_object().unwrap();
    assert_eq!(
        all["E2E_SECRET_TOKEN"],
        json!({"E2E_SECRET_TOKEN": "t0ken"})
    );
    assert!(
        all.keys()
            .all(|name| !name.to_uppercase().starts_with("DAPR_") && name != "APP_API_TOKEN"),
        "{:?}",
        all.keys().collect::<Vec<_>>()
    );

    assert_eq!(
        get(&daprd, "nope/key").await,
        (
            401,
            error(
                "ERR_SECRET_STORE_NOT_FOUND",
                "failed finding secret store with key nope"
            )
        )
    );
    assert_eq!(
        get(&daprd, "nope/bulk").await,
        (
            401,
            error(
                "ERR_SECRET_STORE_NOT_FOUND",
                "failed finding secret store with key nope"
            )
        )
    );
    assert_eq!(
        get(&daprd, "localsecrets/missing").await,
        (
            500,
            error(
                "ERR_SECRET_GET",
                "failed getting secret with key missing from secret store localsecrets: \
                 secret missing not found"
            )
        )
    );

    let failures = sdk_failures(&daprd, SDK_SCRIPT, &[]).await;
    assert!(failures.is_empty(), "{failures:#?}");
}

const SDK_SCRIPT: &str = r#"
from dapr.clients import DaprClient

with DaprClient() as d:
    check('get', d.get_secret('localsecrets', 'api-key').secret, {'api-key': 'k3y'})
    check('get with metadata', d.get_secret('localsecrets', 'db:user', {'unused': 'x'}).secret,
          {'db:user': 'admin'})
    check('bulk', d.get_bulk_secret('localsecrets').secrets,
          {'api-key': {'api-key': 'k3y'}, 'db:user': {'db:user': 'admin'},
           'db:password': {'db:password': 'pa:ss'}})
    check('multi-valued', d.get_secret('multisecrets', 'db').secret, {'user': 'admin', 'password': 'pa:ss'})
    check('multi-valued bulk', d.get_bulk_secret('multisecrets').secrets,
          {'api-key': {'api-key': 'k3y'}, 'db': {'user': 'admin', 'password': 'pa:ss'}})
    check('env', d.get_secret('envsecrets', 'TOKEN').secret, {'TOKEN': 't0ken'})
    check('env missing', d.get_secret('envsecrets', 'MISSING').secret, {'MISSING': ''})
    check('env bulk', d.get_bulk_secret('envsecrets').secrets,
          {'TOKEN': {'TOKEN': 't0ken'}, 'OTHER': {'OTHER': 'other'}})
    check('env forbidden', d.get_secret('allenv', 'DAPR_HOST_IP').secret, {'DAPR_HOST_IP': ''})

    expect_error('unknown store', grpc_error('unknown store', lambda: d.get_secret('nope', 'k')),
                 'INVALID_ARGUMENT', None, message='failed finding secret store with key nope')
    expect_error('unknown store bulk', grpc_error('unknown store bulk', lambda: d.get_bulk_secret('nope')),
                 'INVALID_ARGUMENT', None, message='failed finding secret store with key nope')
    expect_error('missing secret', grpc_error('missing', lambda: d.get_secret('localsecrets', 'missing')),
                 'INTERNAL', None,
                 message='failed getting secret with key missing from secret store localsecrets: secret missing not found')

finish()
"#;

#[tokio::test]
async fn secret_scopes_in_the_configuration_deny_and_filter() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: scoped\nspec:\n  \
         secrets:\n    scopes:\n    - storeName: localsecrets\n      defaultAccess: deny\n      \
         allowedSecrets: [\"api-key\"]\n    - storeName: multisecrets\n      defaultAccess: allow\n      \
         deniedSecrets: [\"db\"]\n",
    )
    .unwrap();
    let daprd = sidecar(dir.path(), Some(config)).await;

    assert_eq!(
        get(&daprd, "localsecrets/api-key").await,
        (200, json!({"api-key": "k3y"}))
    );
    assert_eq!(
        get(&daprd, "localsecrets/db:user").await,
        (
            403,
            error(
                "ERR_PERMISSION_DENIED",
                r#"access denied by policy to get "db:user" from "localsecrets""#
            )
        )
    );
    assert_eq!(
        get(&daprd, "localsecrets/bulk").await,
        (200, json!({"api-key": {"api-key": "k3y"}}))
    );
    assert_eq!(
        get(&daprd, "multisecrets/db").await,
        (
            403,
            error(
                "ERR_PERMISSION_DENIED",
                r#"access denied by policy to get "db" from "multisecrets""#
            )
        )
    );
    assert_eq!(
        get(&daprd, "multisecrets/bulk").await,
        (200, json!({"api-key": {"api-key": "k3y"}}))
    );
    // Stores without a scope stay open.
    assert_eq!(
        get(&daprd, "envsecrets/TOKEN").await,
        (200, json!({"TOKEN": "t0ken"}))
    );

    let failures = sdk_failures(&daprd, SCOPED_SCRIPT, &[]).await;
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test]
async fn without_secret_stores_every_call_says_not_configured() {
    let daprd = Daprd::builder("no-secrets-app").start().await.unwrap();
    assert_eq!(
        get(&daprd, "any/key").await,
        (
            500,
            error(
                "ERR_SECRET_STORES_NOT_CONFIGURED",
                "secret store is not configured"
            )
        )
    );
    assert_eq!(
        get(&daprd, "any/bulk").await,
        (
            500,
            error(
                "ERR_SECRET_STORES_NOT_CONFIGURED",
                "secret store is not configured"
            )
        )
    );
    let failures = sdk_failures(&daprd, NOT_CONFIGURED_SCRIPT, &[]).await;
    assert!(failures.is_empty(), "{failures:#?}");
}

const SCOPED_SCRIPT: &str = r#"
from dapr.clients import DaprClient
with DaprClient() as d:
    check('allowed', d.get_secret('localsecrets', 'api-key').secret, {'api-key': 'k3y'})
    check('filtered bulk', d.get_bulk_secret('localsecrets').secrets, {'api-key': {'api-key': 'k3y'}})
    expect_error('denied', grpc_error('denied', lambda: d.get_secret('localsecrets', 'db:user')),
                 'PERMISSION_DENIED', None,
                 message='access denied by policy to get "db:user" from "localsecrets"')
finish()
"#;

const NOT_CONFIGURED_SCRIPT: &str = r#"
from dapr.clients import DaprClient
with DaprClient() as d:
    for call in [lambda: d.get_secret('any', 'key'), lambda: d.get_bulk_secret('any')]:
        expect_error('not configured', grpc_error('not configured', call),
                     'FAILED_PRECONDITION', None, message='secret store is not configured')
finish()
"#;

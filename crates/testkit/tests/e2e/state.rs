//! The state API against real sidecars and real stores: every built-in store (sqlite on a
//! temp file, in-memory, a real redis-server, a real PostgreSQL with the v1 and v2 layouts)
//! behind a Component named `store`, driven over HTTP and through the official Python SDK.
//! The submodules own one concern each: the API surface, ETag contention, durability across
//! a SIGKILL, and the bad-input table.
//!
//! Expected errors are upstream's: codes from `pkg/messages/errorcodes`, texts from
//! `pkg/messages/predefined.go` and `pkg/api/errors/state.go`.

/// One `#[tokio::test]` per named store kind, each running `$suite(kind)`.
macro_rules! per_store {
    ($suite:ident: $($name:ident => $kind:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            $suite(crate::state::Kind::$kind).await
        }
    )*};
}

mod api;
mod bad_input;
mod contention;
mod durability;

use std::path::PathBuf;

use dapr_testkit::python::{self, Script};
use dapr_testkit::{Daprd, Postgres, Redis, http};
use serde_json::Value;
use tempfile::TempDir;

/// The name of the state store component in every test here.
pub const STORE: &str = "store";

/// Which built-in store backs the component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `state.sqlite` on a file in the test's temp dir.
    Sqlite,
    /// `state.in-memory` (lives and dies with the sidecar).
    InMemory,
    /// `state.redis` on a real redis-server.
    Redis,
    /// `state.postgresql` v1 (JSONB values, query support).
    PostgresV1,
    /// `state.postgresql` v2 (bytea values, no query).
    PostgresV2,
}

impl Kind {
    /// Whether the store answers the alpha1 query API.
    pub fn queries(self) -> bool {
        matches!(self, Self::InMemory | Self::PostgresV1)
    }

    /// Whether the data outlives the sidecar process.
    pub fn durable(self) -> bool {
        self != Self::InMemory
    }
}

/// A store under test: its backing server (if any) and a resources dir holding the
/// Component. Sidecars started from it share the data (except in-memory).
pub struct StoreUnderTest {
    dir: TempDir,
    redis: Option<Redis>,
    _postgres: Option<Postgres>,
}

impl StoreUnderTest {
    /// Starts the backing server (if any) and writes `resources/store.yaml`.
    pub async fn start(kind: Kind) -> Self {
        Self::start_with(kind, &[]).await
    }

    /// [`StoreUnderTest::start`] with `extra` component metadata.
    pub async fn start_with(kind: Kind, extra: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (redis, postgres) = match kind {
            Kind::Redis => (Some(Redis::start().await.unwrap()), None),
            Kind::PostgresV1 | Kind::PostgresV2 => (None, Some(Postgres::start().await.unwrap())),
            Kind::Sqlite | Kind::InMemory => (None, None),
        };
        let (component_type, version, mut metadata) = match kind {
            Kind::Sqlite => (
                "state.sqlite",
                "v1",
                vec![(
                    "connectionString",
                    dir.path().join("state.db").display().to_string(),
                )],
            ),
            Kind::InMemory => ("state.in-memory", "v1", vec![]),
            Kind::Redis => (
                "state.redis",
                "v1",
                vec![("redisHost", redis.as_ref().unwrap().host())],
            ),
            Kind::PostgresV1 | Kind::PostgresV2 => (
                "state.postgresql",
                if kind == Kind::PostgresV1 { "v1" } else { "v2" },
                vec![(
                    "connectionString",
                    postgres.as_ref().unwrap().connection_string(),
                )],
            ),
        };
        let mut yaml = format!(
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: {STORE}\nspec:\n  \
             type: {component_type}\n  version: {version}\n"
        );
        metadata.extend(extra.iter().map(|(name, value)| (*name, value.to_string())));
        if !metadata.is_empty() {
            yaml.push_str("  metadata:\n");
        }
        for (name, value) in metadata {
            yaml.push_str(&format!("  - name: {name}\n    value: \"{value}\"\n"));
        }
        let resources = dir.path().join("resources");
        std::fs::create_dir(&resources).unwrap();
        std::fs::write(resources.join("store.yaml"), yaml).unwrap();
        Self {
            dir,
            redis,
            _postgres: postgres,
        }
    }

    /// The `--resources-path` directory.
    pub fn resources(&self) -> PathBuf {
        self.dir.path().join("resources")
    }

    /// The redis-server behind a [`Kind::Redis`] store.
    pub fn redis(&self) -> &Redis {
        self.redis.as_ref().expect("a redis store")
    }

    /// A sidecar for `app_id` over this store, with extra command-line `args`.
    pub async fn sidecar(&self, app_id: &str, args: &[&str]) -> Daprd {
        Daprd::builder(app_id)
            .resources_path(self.resources())
            .args(args)
            .start()
            .await
            .unwrap()
    }
}

/// `{base}/v1.0/state/{STORE}{suffix}`.
pub fn state_url(daprd: &Daprd, suffix: &str) -> String {
    format!("{}/v1.0/state/{STORE}{suffix}", daprd.base_url())
}

/// An upstream HTTP error body: `(status, errorCode, message)`.
pub fn http_error(response: &http::Response) -> (u16, String, String) {
    let body: Value = response
        .json()
        .unwrap_or_else(|err| panic!("error body is not JSON ({err}): {:?}", response.text()));
    (
        response.status.as_u16(),
        body["errorCode"].as_str().unwrap_or_default().to_owned(),
        body["message"].as_str().unwrap_or_default().to_owned(),
    )
}

/// The `reason` of the `google.rpc.ErrorInfo` detail of an upstream HTTP error body.
pub fn error_info_reason(response: &http::Response) -> Option<String> {
    let body: Value = response.json().ok()?;
    body["details"]
        .as_array()?
        .iter()
        .find(|detail| detail["@type"] == "type.googleapis.com/google.rpc.ErrorInfo")
        .and_then(|detail| detail["reason"].as_str())
        .map(str::to_owned)
}

/// Runs `script` (Python using the helpers of [`PY_CHECKS`], ending with `finish()`) with
/// the SDK against `daprd`, plus `env`; returns the failed checks. A script that crashes
/// fails the test.
pub async fn sdk_failures(daprd: &Daprd, script: &str, env: &[(&str, &str)]) -> Vec<String> {
    let mut vars: Vec<(String, String)> = daprd.sdk_env().to_vec();
    vars.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let output = python::run(
        &python::sdk_python().unwrap(),
        Script::Source(&format!("{PY_CHECKS}{script}")),
        vars,
        crate::support::TIMEOUT,
    )
    .await
    .unwrap();
    let failures: Vec<String> = output
        .stdout
        .lines()
        .filter_map(|line| line.strip_prefix("FAIL "))
        .map(str::to_owned)
        .collect();
    assert!(
        output
            .stdout
            .ends_with(&format!("{} failed checks\n", failures.len())),
        "the SDK script crashed:\n{}\n{}\nsidecar log:\n{}",
        output.stdout,
        output.stderr,
        daprd.log_tail(30)
    );
    failures
}

/// Python helpers every SDK script here starts with: `check` records a failed expectation,
/// `grpc_error` runs a call that must fail and returns the SDK's error, `expect_error`
/// compares its gRPC code, ErrorInfo reason and message, and `finish` prints every
/// failure and exits non-zero if there was one.
const PY_CHECKS: &str = r#"
import json, os, sys, warnings
warnings.simplefilter('ignore')
import grpc
from dapr.clients.exceptions import DaprGrpcError

failures = []

def check(what, actual, expected):
    if actual != expected:
        failures.append(f'{what}: got {actual!r}, expected {expected!r}')

def grpc_error(what, call):
    try:
        call()
    except DaprGrpcError as err:
        return err
    except grpc.RpcError as err:
        return DaprGrpcError(err)
    failures.append(f'{what}: no error was raised')
    return None

def expect_error(what, err, code, reason, message=None, prefix=None, contains=None):
    if err is None:
        return
    check(f'{what}: code', err.code().name, code)
    if reason is not None:
        check(f'{what}: reason', err.error_code(), reason)
    details = err.details() or ''
    if message is not None:
        check(f'{what}: message', details, message)
    if prefix is not None and not details.startswith(prefix):
        failures.append(f'{what}: message {details!r} does not start with {prefix!r}')
    if contains is not None and contains not in details:
        failures.append(f'{what}: message {details!r} does not contain {contains!r}')

def finish():
    for failure in failures:
        print('FAIL', failure)
    print(f'{len(failures)} failed checks')
    sys.exit(1 if failures else 0)
"#;

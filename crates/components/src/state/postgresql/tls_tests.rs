//! TLS against real PostgreSQL servers, with certificates made by the `openssl` CLI for
//! each test: every `sslmode` against a TLS-only server and a plain one, root
//! certificates from the connection string, the URL and the `sslRootCert` metadata,
//! mutual TLS, and the behaviour suite over a verified connection.

use std::path::PathBuf;
use std::process::Command;

use dapr_testkit::Postgres;
use serde_json::{Value, json};
use tempfile::TempDir;

use super::metadata::Settings;
use super::pool::Pool;
use super::{PostgresVersion, open};
use crate::metadata::Properties;
use crate::state::{StateError, StateStore, conformance};

/// A CA, a server certificate for `localhost` only (no IP address, so the host name
/// check is visible), a client certificate for user `postgres`, and an unrelated CA.
struct Certificates {
    dir: TempDir,
}

impl Certificates {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let certificates = Self { dir };
        certificates.authority("ca");
        certificates.authority("other_ca");
        certificates.leaf(
            "server",
            "localhost",
            "subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n",
        );
        certificates.leaf(
            "client",
            "postgres",
            "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n",
        );
        certificates.openssl(&[
            "pkey",
            "-in",
            "client.key",
            "-aes256",
            "-passout",
            "pass:secret",
            "-out",
            "client_encrypted.key",
        ]);
        certificates
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A path for a connection string.
    fn arg(&self, name: &str) -> String {
        self.path(name).to_str().unwrap().to_owned()
    }

    fn pem(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap()
    }

    fn openssl(&self, args: &[&str]) {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("the openssl CLI runs");
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn authority(&self, name: &str) {
        self.openssl(&[
            "req",
            "-x509",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.crt"),
            "-days",
            "2",
            "-subj",
            &format!("/CN=dapr test {name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
    }

    fn leaf(&self, name: &str, common_name: &str, extensions: &str) {
        let extension_file = format!("{name}.ext");
        std::fs::write(self.path(&extension_file), extensions).unwrap();
        self.openssl(&[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={common_name}"),
        ]);
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &format!("{name}.crt"),
            "-days",
            "2",
            "-extfile",
            &extension_file,
        ]);
    }

    async fn server(&self, client_ca: bool) -> Postgres {
        let ca = self.pem("ca.crt");
        Postgres::start_with_tls(
            &self.pem("server.crt"),
            &self.pem("server.key"),
            client_ca.then_some(ca.as_str()),
        )
        .await
        .unwrap()
    }
}

fn connection_string(server: &Postgres, host: &str, tls: &str) -> String {
    format!(
        "host={host} port={} user=postgres dbname=postgres {tls}",
        server.port()
    )
}

fn settings(connection_string: &str, extra: Value) -> Result<Settings, StateError> {
    let mut value = json!({ "connectionString": connection_string });
    if let (Value::Object(value), Value::Object(extra)) = (&mut value, extra) {
        value.extend(extra);
    }
    Settings::parse(&Properties::from_json(&value).unwrap(), PostgresVersion::V2)
}

/// Connects as the store's pool would and reports whether the session is encrypted,
/// as the server sees it.
async fn session_uses_tls(connection_string: &str, extra: Value) -> Result<bool, StateError> {
    let pool = Pool::new(settings(connection_string, extra)?.pool);
    let mut lease = pool.get().await?;
    let rows = lease
        .query(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await?;
    Ok(rows[0].get(0))
}

async fn encrypted(connection_string: &str) -> bool {
    session_uses_tls(connection_string, json!({}))
        .await
        .unwrap_or_else(|error| panic!("{connection_string}: {error}"))
}

async fn backend_error(connection_string: &str, extra: Value) -> String {
    match session_uses_tls(connection_string, extra).await {
        Err(StateError::Backend(message)) => message,
        other => panic!("{connection_string}: expected a connection error, got {other:?}"),
    }
}

fn metadata_error(connection_string: &str) -> String {
    match settings(connection_string, json!({})) {
        Err(StateError::InvalidMetadata(message)) => message,
        other => panic!("{connection_string}: expected invalid metadata, got {other:?}"),
    }
}

#[tokio::test]
async fn every_sslmode_against_a_tls_only_server() {
    let certificates = Certificates::new();
    let server = certificates.server(false).await;
    let ca = certificates.arg("ca.crt");
    let other_ca = certificates.arg("other_ca.crt");
    let local = |tls: &str| connection_string(&server, "localhost", tls);
    let ip = |tls: &str| connection_string(&server, "127.0.0.1", tls);

    // Unverified encryption: require, and prefer (the default) and allow, which fall back
    // to TLS here because the server refuses plain connections.
    assert!(encrypted(&ip("sslmode=require")).await);
    assert!(encrypted(&ip("")).await);
    assert!(encrypted(&ip("sslmode=prefer")).await);
    assert!(encrypted(&ip("sslmode=allow")).await);

    // verify-full checks the chain and the name.
    assert!(encrypted(&local(&format!("sslmode=verify-full sslrootcert={ca}"))).await);
    let error = backend_error(
        &local(&format!("sslmode=verify-full sslrootcert={other_ca}")),
        json!({}),
    )
    .await;
    assert!(
        error.contains("failed to connect to the database")
            && error.contains("invalid peer certificate")
            && error.contains("UnknownIssuer")
            && error.contains("check sslrootcert"),
        "{error}"
    );
    let error = backend_error(
        &ip(&format!("sslmode=verify-full sslrootcert={ca}")),
        json!({}),
    )
    .await;
    assert!(
        error.contains("certificate not valid for name") || error.contains("NotValidForName"),
        "{error}"
    );
    // The test CA is not among the system's roots.
    let error = backend_error(&local("sslmode=verify-full sslrootcert=system"), json!({})).await;
    assert!(error.contains("UnknownIssuer"), "{error}");

    // verify-ca checks the chain only, so an address the certificate does not name works.
    assert!(encrypted(&ip(&format!("sslmode=verify-ca sslrootcert={ca}"))).await);
    let error = backend_error(
        &ip(&format!("sslmode=verify-ca sslrootcert={other_ca}")),
        json!({}),
    )
    .await;
    assert!(error.contains("UnknownIssuer"), "{error}");

    // require with a root certificate behaves as verify-ca, whichever way it is given.
    assert!(encrypted(&ip(&format!("sslmode=require sslrootcert={ca}"))).await);
    let error = backend_error(
        &ip(&format!("sslmode=require sslrootcert={other_ca}")),
        json!({}),
    )
    .await;
    assert!(error.contains("UnknownIssuer"), "{error}");
    assert!(
        session_uses_tls(&ip("sslmode=require"), json!({ "sslRootCert": ca }))
            .await
            .unwrap()
    );
    let error = backend_error(&ip("sslmode=require"), json!({ "sslRootCert": other_ca })).await;
    assert!(error.contains("UnknownIssuer"), "{error}");

    // The URL form carries the same keys as query parameters.
    let url = format!(
        "postgres://postgres@localhost:{}/postgres?sslmode=verify-full&sslrootcert={ca}",
        server.port()
    );
    assert!(encrypted(&url).await);

    // disable cannot get past a hostssl-only pg_hba.conf.
    let error = backend_error(&ip("sslmode=disable"), json!({})).await;
    assert!(
        error.contains("failed to connect to the database")
            && error.contains("no pg_hba.conf entry")
            && error.contains("no encryption"),
        "{error}"
    );

    // Files that cannot be used are refused when the component is initialised.
    let missing = certificates.arg("missing.crt");
    assert!(
        metadata_error(&ip(&format!("sslmode=verify-full sslrootcert={missing}")))
            .contains("cannot read sslrootcert")
    );
    let client_cert = certificates.arg("client.crt");
    assert!(
        metadata_error(&ip(&format!("sslmode=require sslcert={client_cert}")))
            .contains(r#"both "sslcert" and "sslkey" are required"#)
    );
}

#[tokio::test]
async fn prefer_and_allow_fall_back_to_plain_text_and_require_does_not() {
    let server = Postgres::start().await.unwrap();
    let plain = |tls: &str| connection_string(&server, "127.0.0.1", tls);
    assert!(!encrypted(&plain("")).await);
    assert!(!encrypted(&plain("sslmode=prefer")).await);
    assert!(!encrypted(&plain("sslmode=allow")).await);
    for mode in ["require", "verify-ca", "verify-full"] {
        let error = backend_error(&plain(&format!("sslmode={mode}")), json!({})).await;
        assert!(
            error.contains("server does not support TLS"),
            "{mode}: {error}"
        );
    }
}

#[tokio::test]
async fn mutual_tls_presents_the_client_certificate() {
    let certificates = Certificates::new();
    let server = certificates.server(true).await;
    let ca = certificates.arg("ca.crt");
    let cert = certificates.arg("client.crt");
    let key = certificates.arg("client.key");
    let local = |tls: &str| connection_string(&server, "localhost", tls);

    let with_client = local(&format!(
        "sslmode=verify-full sslrootcert={ca} sslcert={cert} sslkey={key}"
    ));
    assert!(encrypted(&with_client).await);
    let pool = Pool::new(settings(&with_client, json!({})).unwrap().pool);
    let rows = pool
        .get()
        .await
        .unwrap()
        .query(
            "SELECT client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        rows[0].get::<_, Option<String>>(0).as_deref(),
        Some("/CN=postgres")
    );

    let error = backend_error(
        &local(&format!("sslmode=verify-full sslrootcert={ca}")),
        json!({}),
    )
    .await;
    assert!(
        error.contains("failed to connect to the database"),
        "{error}"
    );

    let encrypted_key = certificates.arg("client_encrypted.key");
    let error = metadata_error(&local(&format!(
        "sslmode=require sslcert={cert} sslkey={encrypted_key} sslpassword=secret"
    )));
    assert!(
        error.contains("encrypted keys and sslpassword are not supported"),
        "{error}"
    );
    let server_key = certificates.arg("server.key");
    let error = metadata_error(&local(&format!(
        "sslmode=require sslcert={cert} sslkey={server_key}"
    )));
    assert!(error.contains("do not form a usable pair"), "{error}");
}

#[tokio::test]
async fn both_versions_pass_the_suite_over_verified_tls() {
    let certificates = Certificates::new();
    let server = certificates.server(false).await;
    let connection_string = connection_string(
        &server,
        "localhost",
        &format!(
            "sslmode=verify-full sslrootcert={}",
            certificates.arg("ca.crt")
        ),
    );
    let unique = uuid::Uuid::new_v4().simple().to_string();
    for (version, extra) in [
        (
            PostgresVersion::V2,
            json!({ "tablePrefix": format!("tls_{unique}_") }),
        ),
        (
            PostgresVersion::V1,
            json!({ "tableName": format!("tls_{unique}") }),
        ),
    ] {
        let mut properties = json!({ "connectionString": connection_string });
        if let (Value::Object(properties), Value::Object(extra)) = (&mut properties, extra) {
            properties.extend(extra);
        }
        let store = open(&Properties::from_json(&properties).unwrap(), version)
            .await
            .unwrap();
        conformance::run_all(&store).await;
        store.close().await.unwrap();
    }
}

//! TLS to the server with libpq's `sslmode` semantics, as pgx applies them, on rustls with
//! the ring provider:
//!
//! - `disable`: plain connections only.
//! - `allow`: plain first, TLS if the plain attempt fails; `prefer` (the default): TLS
//!   first, plain if the server has no TLS or the TLS attempt fails. Neither verifies the
//!   server's certificate.
//! - `require`: TLS without verifying the certificate, unless a root certificate is
//!   configured, which makes it `verify-ca`.
//! - `verify-ca`: TLS with the chain verified against `sslrootcert` (or the system's root
//!   certificates), whatever names the certificate carries.
//! - `verify-full`: the chain and the host name. `sslrootcert=system` means the system's
//!   root certificates and `verify-full`, as in libpq.
//!
//! `sslcert` and `sslkey` (PEM files, the key unencrypted) give the client certificate for
//! mutual TLS; `sslsni=0` turns Server Name Indication off. Files are read once, when
//! the component is initialised. Servers reached over Unix sockets never use TLS.

use std::fmt;
use std::sync::Arc;

use dapr_security::tls::AcceptAnyServerCertificate;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres::config::SslMode as DriverSslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum SslMode {
    /// No TLS.
    Disable,
    /// Plain, then unverified TLS.
    Allow,
    /// Unverified TLS, then plain (libpq's and pgx's default).
    #[default]
    Prefer,
    /// TLS; the certificate verified only when a root certificate is configured.
    Require,
    /// TLS with the chain verified, not the host name.
    VerifyCa,
    /// TLS with the chain and the host name verified.
    VerifyFull,
}

impl SslMode {
    /// Reads libpq's names; `None` for an unknown one.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        match text {
            "disable" => Some(Self::Disable),
            "allow" => Some(Self::Allow),
            "prefer" => Some(Self::Prefer),
            "require" => Some(Self::Require),
            "verify-ca" => Some(Self::VerifyCa),
            "verify-full" => Some(Self::VerifyFull),
            _ => None,
        }
    }
}

/// The TLS keys of a connection string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TlsSettings {
    /// `sslmode`.
    pub mode: SslMode,
    /// `sslrootcert`: a PEM file of trusted roots, or `system`.
    pub root_cert: Option<String>,
    /// `sslcert`: the client certificate chain (PEM file).
    pub cert: Option<String>,
    /// `sslkey`: the client private key (unencrypted PEM file).
    pub key: Option<String>,
    /// `sslsni`: whether to send Server Name Indication.
    pub sni: bool,
}

impl Default for TlsSettings {
    fn default() -> Self {
        Self {
            mode: SslMode::default(),
            root_cert: None,
            cert: None,
            key: None,
            sni: true,
        }
    }
}

/// One connection attempt.
#[derive(Clone)]
pub(crate) enum Attempt {
    /// No TLS.
    Plain,
    /// TLS as the driver's mode says (`Prefer` goes on in plain text on the same socket
    /// when the server answers that it has no TLS).
    Tls {
        /// The driver's mode for this attempt.
        mode: DriverSslMode,
        /// The rustls connector.
        connector: MakeRustlsConnect,
    },
}

impl fmt::Display for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Plain => f.write_str("without TLS"),
            Self::Tls { .. } => f.write_str("with TLS"),
        }
    }
}

impl fmt::Debug for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Plain => f.write_str("Plain"),
            Self::Tls { mode, .. } => f.debug_struct("Tls").field("mode", mode).finish(),
        }
    }
}

/// How the pool connects: the attempts to make in order until one succeeds.
#[derive(Debug, Clone)]
pub(crate) struct Tls {
    attempts: Vec<Attempt>,
}

impl Tls {
    /// Plain connections only.
    pub(crate) fn plain() -> Self {
        Self {
            attempts: vec![Attempt::Plain],
        }
    }

    /// Prepares the TLS configuration `settings` ask for, reading the certificate files.
    pub(crate) fn new(settings: &TlsSettings) -> Result<Self, String> {
        let system_roots = settings.root_cert.as_deref() == Some("system");
        let mode = match settings.mode {
            SslMode::Disable => return Ok(Self::plain()),
            _ if system_roots => SslMode::VerifyFull,
            SslMode::Require if settings.root_cert.is_some() => SslMode::VerifyCa,
            mode => mode,
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier: Arc<dyn ServerCertVerifier> = match mode {
            SslMode::VerifyCa | SslMode::VerifyFull => {
                let roots = match settings.root_cert.as_deref() {
                    Some(path) if !system_roots => file_roots(path)?,
                    _ => native_roots(),
                };
                let chain = WebPkiServerVerifier::builder_with_provider(
                    Arc::new(roots),
                    Arc::clone(&provider),
                )
                .build()
                .map_err(|error| {
                    format!("cannot verify the server's certificate ({error}): set sslrootcert to a CA file")
                })?;
                if mode == SslMode::VerifyFull {
                    chain
                } else {
                    Arc::new(ChainOnly { chain })
                }
            }
            // `require` without a root certificate (and `allow`/`prefer`).
            _ => Arc::new(AcceptAnyServerCertificate::new(&provider)),
        };
        let builder = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|error| format!("cannot set up TLS: {error}"))?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut config = match (settings.cert.as_deref(), settings.key.as_deref()) {
            (Some(cert), Some(key)) => builder
                .with_client_auth_cert(client_chain(cert)?, client_key(key)?)
                .map_err(|error| {
                    format!(
                        "sslcert {cert:?} and sslkey {key:?} do not form a usable pair: {error}"
                    )
                })?,
            (None, None) => builder.with_no_client_auth(),
            _ => return Err("both \"sslcert\" and \"sslkey\" are required".into()),
        };
        config.enable_sni = settings.sni;
        let connector = MakeRustlsConnect::new(config);
        let tls = |mode| Attempt::Tls {
            mode,
            connector: connector.clone(),
        };
        let attempts = match mode {
            SslMode::Allow => vec![Attempt::Plain, tls(DriverSslMode::Require)],
            SslMode::Prefer => vec![tls(DriverSslMode::Prefer), Attempt::Plain],
            _ => vec![tls(DriverSslMode::Require)],
        };
        Ok(Self { attempts })
    }

    /// The attempts to make, in order, until one connects.
    pub(crate) fn attempts(&self) -> &[Attempt] {
        &self.attempts
    }
}

/// The roots in a PEM file (`sslrootcert`).
fn file_roots(path: &str) -> Result<RootCertStore, String> {
    let certs = read_certs("sslrootcert", path)?;
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots.add(cert).map_err(|error| {
            format!("sslrootcert {path:?} holds an unusable certificate: {error}")
        })?;
    }
    Ok(roots)
}

/// The system's root certificates; unreadable stores are skipped with a debug log.
fn native_roots() -> RootCertStore {
    let native = rustls_native_certs::load_native_certs();
    for error in &native.errors {
        tracing::debug!("skipping a system root certificate store: {error}");
    }
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(native.certs);
    roots
}

/// The client certificate chain (`sslcert`).
fn client_chain(path: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    read_certs("sslcert", path)
}

/// The client key (`sslkey`): PKCS#8, PKCS#1 (RSA) or SEC1 (EC), unencrypted.
fn client_key(path: &str) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path).map_err(|error| match error {
        rustls::pki_types::pem::Error::Io(error) => format!("cannot read sslkey {path:?}: {error}"),
        rustls::pki_types::pem::Error::NoItemsFound => format!(
            "sslkey {path:?} holds no unencrypted PEM private key (encrypted keys and sslpassword are not supported)"
        ),
        other => format!("sslkey {path:?} is not valid PEM: {other}"),
    })
}

/// Every certificate in a PEM file; at least one.
fn read_certs(setting: &str, path: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let unreadable = |error: rustls::pki_types::pem::Error| match error {
        rustls::pki_types::pem::Error::Io(error) => {
            format!("cannot read {setting} {path:?}: {error}")
        }
        other => format!("{setting} {path:?} is not valid PEM: {other}"),
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(unreadable)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(unreadable)?;
    if certs.is_empty() {
        return Err(format!("{setting} {path:?} holds no PEM certificate"));
    }
    Ok(certs)
}

/// `verify-ca`: the full WebPKI check, except that a certificate issued for another name
/// is accepted. The chain (and validity period) is checked before the name, so a name
/// mismatch is only ever reported for a certificate whose chain is trusted.
#[derive(Debug)]
struct ChainOnly {
    chain: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.chain.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.chain.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.chain.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.chain.supported_verify_schemes()
    }
}

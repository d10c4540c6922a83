//! TLS for connections the sidecar opens to services it must verify (HTTPEndpoint
//! targets, trace collectors): TLS 1.2 or newer with the ring provider, and servers
//! checked against the system's root certificates. Like Go's, the system store honours
//! `SSL_CERT_FILE` and `SSL_CERT_DIR`.

use std::sync::Arc;

use rustls::client::WantsClientCert;
use rustls::{ClientConfig, ConfigBuilder, RootCertStore};

/// The system's root certificates; unreadable stores are skipped with a debug log.
pub fn system_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for error in &native.errors {
        tracing::debug!("skipping a system root certificate store: {error}");
    }
    roots.add_parsable_certificates(native.certs);
    roots
}

/// A client configuration builder verifying servers against `roots`, ready for a client
/// certificate or none.
pub fn verified_client_builder(
    roots: RootCertStore,
) -> Result<ConfigBuilder<ClientConfig, WantsClientCert>, rustls::Error> {
    // The provider is named explicitly so that a second rustls provider enabled by another
    // crate cannot make the choice ambiguous.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_root_certificates(roots))
}

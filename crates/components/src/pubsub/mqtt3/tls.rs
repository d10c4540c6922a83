//! The rustls (ring) client configuration for `ssl://` brokers: the `caCert` roots (or the
//! system's), and the `clientCert`/`clientKey` pair when both are given.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

use super::settings::TlsPem;
use crate::pubsub::PubSubError;

/// Builds the TLS client configuration from the PEM settings.
pub fn client_config(pem: &TlsPem) -> Result<Arc<ClientConfig>, PubSubError> {
    let invalid = |what: &str, error: &dyn std::fmt::Display| {
        PubSubError::InvalidMetadata(format!("invalid TLS configuration: {what}: {error}"))
    };
    let mut roots = RootCertStore::empty();
    match &pem.ca_cert {
        Some(ca_cert) => {
            for certificate in CertificateDer::pem_slice_iter(ca_cert.as_bytes()) {
                let certificate = certificate
                    .map_err(|error| invalid("unable to load CA certificate", &error))?;
                roots
                    .add(certificate)
                    .map_err(|error| invalid("unable to load CA certificate", &error))?;
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            for error in &native.errors {
                tracing::warn!("mqtt3: could not load a system root certificate: {error}");
            }
            let (added, ignored) = roots.add_parsable_certificates(native.certs);
            tracing::debug!("mqtt3: {added} system root certificates loaded, {ignored} ignored");
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| invalid("protocol versions", &error))?
        .with_root_certificates(roots);
    let config = match (&pem.client_cert, &pem.client_key) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_slice_iter(cert.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|error| invalid("unable to load client certificate", &error))?;
            let key = PrivateKeyDer::from_pem_slice(key.as_bytes())
                .map_err(|error| invalid("unable to load client key", &error))?;
            builder.with_client_auth_cert(chain, key).map_err(|error| {
                invalid("unable to load client certificate and key pair", &error)
            })?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

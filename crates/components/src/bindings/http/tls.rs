//! The TLS client configuration of `bindings.http`: TLS 1.2 or newer on the ring
//! provider, servers verified against `MTLSRootCA` when set (instead of the system's
//! roots, as upstream replaces Go's root pool) and a client certificate when
//! `MTLSClientCert` and `MTLSClientKey` are both set.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

use super::settings::TlsSettings;

/// Builds the client configuration; the error names the setting at fault.
pub fn client_config(settings: &TlsSettings) -> Result<ClientConfig, String> {
    let roots = match &settings.root_ca {
        Some(pem) => {
            let mut roots = RootCertStore::empty();
            for certificate in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                let certificate = certificate
                    .map_err(|err| format!("failed to add root certificate to certpool: {err}"))?;
                roots
                    .add(certificate)
                    .map_err(|err| format!("failed to add root certificate to certpool: {err}"))?;
            }
            if roots.is_empty() {
                return Err("failed to add root certificate to certpool".into());
            }
            roots
        }
        None => system_roots(),
    };
    // The provider is named so that another rustls provider in the build cannot make the
    // choice ambiguous.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|err| err.to_string())?
        .with_root_certificates(roots);
    match &settings.client_identity {
        None => Ok(builder.with_no_client_auth()),
        Some((chain, key)) => {
            let load =
                |err: &dyn std::fmt::Display| format!("failed to load client certificate: {err}");
            let chain = CertificateDer::pem_slice_iter(chain.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|err| load(&err))?;
            if chain.is_empty() {
                return Err(load(&"no certificate found in MTLSClientCert"));
            }
            let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).map_err(|err| load(&err))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|err| load(&err))
        }
    }
}

/// The system's root certificates; unreadable stores are skipped with a debug log.
fn system_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for error in &native.errors {
        tracing::debug!("skipping a system root certificate store: {error}");
    }
    roots.add_parsable_certificates(native.certs);
    roots
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusable_pem_is_refused() {
        let garbage = "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n";
        let error = client_config(&TlsSettings {
            root_ca: Some(garbage.into()),
            client_identity: None,
        })
        .unwrap_err();
        assert!(
            error.starts_with("failed to add root certificate to certpool"),
            "{error}"
        );
        let error = client_config(&TlsSettings {
            root_ca: None,
            client_identity: Some((garbage.into(), garbage.into())),
        })
        .unwrap_err();
        assert!(
            error.starts_with("failed to load client certificate: "),
            "{error}"
        );
        assert!(client_config(&TlsSettings::default()).is_ok());
    }
}

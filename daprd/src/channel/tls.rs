//! TLS to the app (`https`, `grpcs`): like upstream, the sidecar encrypts the hop to its own
//! app but does not verify the app's certificate (the app is local and commonly uses a
//! self-signed one). Handshake signatures are still checked against the presented key.

use std::sync::Arc;

use dapr_security::tls::AcceptAnyServerCertificate;
use rustls::ClientConfig;
use rustls::crypto::CryptoProvider;

/// A client configuration for the app: TLS 1.2 or newer (upstream's minimum), no
/// certificate verification, and the given ALPN protocols (`h2` for gRPC, none for HTTP,
/// which upstream speaks as HTTP/1.1 over TLS).
pub(super) fn app_client_config(alpn: &[&[u8]]) -> Result<Arc<ClientConfig>, rustls::Error> {
    // The provider is named explicitly so that another crate enabling a second rustls
    // provider cannot make the choice ambiguous.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(AcceptAnyServerCertificate::new(&provider));
    let mut config =
        ClientConfig::builder_with_provider(Arc::clone(&provider) as Arc<CryptoProvider>)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
    Ok(Arc::new(config))
}

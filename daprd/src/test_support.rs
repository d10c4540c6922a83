//! Helpers shared by the in-process tests: TLS servers with the certificates in
//! `testdata/`.

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// The self-signed certificate test apps serve.
pub const APP_CERT: &[u8] = include_bytes!("testdata/app-cert.pem");
/// The key of [`APP_CERT`].
pub const APP_KEY: &[u8] = include_bytes!("testdata/app-key.pem");
/// The test CA that signed [`SERVER_CERT`] and [`CLIENT_CERT`].
pub const TEST_CA: &[u8] = include_bytes!("testdata/ca.pem");
/// A CA-signed server certificate for `localhost` and `127.0.0.1`.
pub const SERVER_CERT: &[u8] = include_bytes!("testdata/server.pem");
/// The key of [`SERVER_CERT`].
pub const SERVER_KEY: &[u8] = include_bytes!("testdata/server-key.pem");
/// A CA-signed client certificate.
pub const CLIENT_CERT: &[u8] = include_bytes!("testdata/client.pem");
/// The key of [`CLIENT_CERT`].
pub const CLIENT_KEY: &[u8] = include_bytes!("testdata/client-key.pem");

/// A TLS acceptor serving `cert_pem` with `key_pem`, offering the `alpn` protocols.
pub fn tls_acceptor(cert_pem: &[u8], key_pem: &[u8], alpn: &[&[u8]]) -> TlsAcceptor {
    let certificates: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(key_pem).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certificates, key)
        .unwrap();
    config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
    TlsAcceptor::from(Arc::new(config))
}

/// A root store holding only `ca_pem`'s certificates.
pub fn roots_of(ca_pem: &[u8]) -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(certificate.unwrap()).unwrap();
    }
    roots
}

/// A TLS listener for axum; failed handshakes are skipped.
pub struct TlsListener {
    /// The TCP listener.
    pub tcp: TcpListener,
    /// The TLS server side.
    pub acceptor: TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            if let Ok((tcp, address)) = self.tcp.accept().await
                && let Ok(tls) = self.acceptor.accept(tcp).await
            {
                return (tls, address);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

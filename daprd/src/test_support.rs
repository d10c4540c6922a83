//! Helpers shared by the in-process tests: TLS servers with the certificates in
//! `testdata/`, and a sidecar serving its public APIs over a given component set.

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

/// Serves `router` on a fresh loopback port (with the peer address in the extensions).
pub async fn serve(router: axum::Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    address
}

/// POSTs `body` as `content_type` to `path` on `address`; returns the status.
pub async fn post(
    address: SocketAddr,
    path: &str,
    content_type: &str,
    body: String,
) -> axum::http::StatusCode {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let request = axum::http::Request::post(format!("http://{address}{path}"))
        .header("content-type", content_type)
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .unwrap();
    client.request(request).await.unwrap().status()
}

/// A sidecar for app `myapp` serving only its public APIs.
pub struct PublicApis {
    /// The shared runtime.
    pub runtime: Arc<crate::runtime::Runtime>,
    /// The HTTP API's address.
    pub http: SocketAddr,
    /// A client of the gRPC API.
    pub grpc: dapr_proto::runtime::dapr_client::DaprClient<tonic::transport::Channel>,
}

/// Serves the public APIs of a sidecar configured by `config`, over the components
/// `set`, with secret `scopes`, recording in `metrics`.
pub async fn serve_public_apis(
    config: crate::config::RuntimeConfig,
    set: crate::components::ComponentSet,
    scopes: crate::secrets::SecretScopes,
    metrics: crate::observability::metrics::SidecarMetrics,
) -> PublicApis {
    serve_public_apis_with_resiliencies(config, set, scopes, metrics, Vec::new()).await
}

/// [`serve_public_apis`] with the resiliency resources `resiliencies`.
pub async fn serve_public_apis_with_resiliencies(
    config: crate::config::RuntimeConfig,
    set: crate::components::ComponentSet,
    scopes: crate::secrets::SecretScopes,
    metrics: crate::observability::metrics::SidecarMetrics,
    resiliencies: Vec<dapr_resources::loader::Loaded<dapr_resources::resiliency::Resiliency>>,
) -> PublicApis {
    let components = Arc::new(crate::components::Components::new(set));
    let metadata = crate::metadata::MetadataStore::new(
        &config,
        &dapr_resources::loader::LoadedResources::default(),
        Vec::new(),
        components.clone(),
    );
    let invoker = Arc::new(crate::invoke::Invoker::new(
        crate::invoke::InvokerConfig::new(
            &config.app_id,
            &config.namespace,
            config.internal_grpc_port,
        ),
        None,
        None,
    ));
    let runtime = Arc::new(crate::runtime::Runtime {
        config,
        health: dapr_kit::healthz::Health::new(),
        outbound_health: dapr_kit::healthz::Health::new(),
        metadata,
        shutdown: dapr_kit::shutdown::Shutdown::new(),
        invoker,
        components,
        resiliency: Arc::new(
            crate::resiliency::Resiliency::compile(&resiliencies, metrics.clone()).unwrap(),
        ),
        http_pipeline: None,
        api_access: Default::default(),
        access_control: None,
        configuration_streams: Default::default(),
        secret_scopes: scopes,
        metrics,
        tracing: crate::observability::trace::Tracing::disabled(),
        api_logging: None,
    });
    let http = serve(crate::api::http::router(runtime.clone())).await;
    let grpc_address = serve(crate::api::grpc::router(runtime.clone())).await;
    let grpc =
        dapr_proto::runtime::dapr_client::DaprClient::connect(format!("http://{grpc_address}"))
            .await
            .unwrap();
    PublicApis {
        runtime,
        http,
        grpc,
    }
}

/// The start-up configuration of app `myapp`, with upstream's defaults.
pub fn default_config() -> crate::config::RuntimeConfig {
    use clap::Parser;
    crate::config::RuntimeConfig::from_options(
        &crate::options::Options::try_parse_from(["daprd", "--app-id", "myapp"]).unwrap(),
    )
    .unwrap()
}

/// How the loader starts components for app `myapp` in namespace `default`, standalone.
pub fn load_context(
    metrics: &crate::observability::metrics::SidecarMetrics,
) -> crate::components::LoadContext<'_> {
    crate::components::LoadContext {
        mode: crate::config::Mode::Standalone,
        metrics,
        app_id: "myapp",
        namespace: "default",
        pod_name: "",
    }
}

/// Starts the components of the resource document `yaml` with [`load_context`].
pub async fn load_yaml(
    yaml: &str,
    metrics: &crate::observability::metrics::SidecarMetrics,
) -> crate::components::ComponentSet {
    let resources =
        dapr_resources::loader::parse_str(std::path::Path::new("resources.yaml"), yaml).unwrap();
    crate::components::load(&resources.components, load_context(metrics), None)
        .await
        .unwrap()
}

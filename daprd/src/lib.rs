//! daprd, the Dapr sidecar: it owns the public HTTP and gRPC APIs an application calls, the
//! channel back to the application, and the components behind every building block. This
//! crate is the runtime as a library; `main.rs` only parses flags and calls [`run`].

pub mod config;
pub mod options;

mod api;
mod quantity;
pub mod resources;

use std::net::SocketAddr;

use dapr_kit::healthz::Health;
use dapr_kit::metrics::MetricsRegistry;
use dapr_kit::shutdown::ShutdownSignal;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

pub use config::RuntimeConfig;

/// Why the sidecar could not run.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A listener could not be opened.
    #[error("failed to listen on {address}: {source}")]
    Bind {
        /// The address that was asked for.
        address: SocketAddr,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The resources or configuration file are invalid.
    #[error(transparent)]
    Resources(#[from] resources::ResourcesError),
    /// A server stopped with an I/O error.
    #[error("{server} server failed: {source}")]
    Serve {
        /// Which server.
        server: &'static str,
        /// The underlying error.
        source: std::io::Error,
    },
}

async fn bind(address: SocketAddr) -> Result<TcpListener, RuntimeError> {
    TcpListener::bind(address)
        .await
        .map_err(|source| RuntimeError::Bind { address, source })
}

/// Runs the sidecar until `shutdown` fires, then stops its servers.
pub async fn run(config: RuntimeConfig, shutdown: ShutdownSignal) -> Result<(), RuntimeError> {
    let startup = resources::load(&config)?;
    tracing::debug!(
        components = startup.resources.components.len(),
        subscriptions = startup.resources.subscriptions.len(),
        configuration = startup.configuration.is_some(),
        "resources loaded"
    );
    let metrics = MetricsRegistry::new();
    let health = Health::new();
    let runtime_ready = health.register("runtime");
    let mut servers: JoinSet<Result<(), RuntimeError>> = JoinSet::new();

    if let Some(address) = config.metrics_address {
        let listener = bind(address).await?;
        let registry = metrics.clone();
        let stop = shutdown.clone();
        servers.spawn(async move {
            dapr_kit::metrics::serve(listener, registry, stop)
                .await
                .map_err(|source| RuntimeError::Serve {
                    server: "metrics",
                    source,
                })
        });
    }

    let router = api::http::router(api::http::ApiState {
        health: health.clone(),
    });
    for ip in &config.listen_addresses {
        let listener = bind(SocketAddr::new(*ip, config.http_port)).await?;
        tracing::info!(
            "HTTP API server is listening on {}",
            SocketAddr::new(*ip, config.http_port)
        );
        let router = router.clone();
        let stop = shutdown.clone();
        servers.spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move { stop.wait().await })
                .await
                .map_err(|source| RuntimeError::Serve {
                    server: "HTTP API",
                    source,
                })
        });
    }

    runtime_ready.set_ready(true);
    tracing::info!("dapr initialized, status: Running");

    let mut outcome = Ok(());
    while let Some(joined) = servers.join_next().await {
        match joined {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                tracing::error!("{err}");
                if outcome.is_ok() {
                    outcome = Err(err);
                }
            }
            Err(join_error) => tracing::error!("server task ended abnormally: {join_error}"),
        }
    }
    outcome
}

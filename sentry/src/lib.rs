//! Sentry, the control plane's certificate authority. Today this crate owns the `sentry`
//! binary's command line (every upstream flag with upstream's default, and upstream's checks
//! across flags), its healthz server (`GET /healthz` on `--healthz-port`) and its Prometheus
//! metrics server, and a clean exit on SIGTERM. Flags whose behaviour is not built yet are
//! accepted and logged when set. It will own the CA: loading or generating the root and
//! issuer credentials, signing workload certificates (and optionally JWTs) over the gRPC API
//! on `--port`, reloading when the issuer files change, and the optional OIDC server.

mod options;
use dapr_kit::control_plane as servers;

use std::time::Duration;

use dapr_kit::healthz::Health;
use dapr_kit::metrics::MetricsRegistry;
use dapr_kit::shutdown::ShutdownSignal;

pub use options::{Options, OptionsError};
pub use servers::Error as ServerError;

/// The component name Sentry logs under.
pub const COMPONENT: &str = "dapr-sentry";

/// How long Sentry may take to stop once SIGTERM or SIGINT arrived.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Why Sentry could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The flags break one of the rules across flags.
    #[error("invalid options: {0}")]
    Options(#[from] OptionsError),
    /// The healthz or metrics server could not start or failed.
    #[error(transparent)]
    Server(#[from] ServerError),
}

/// Runs Sentry with `options` until `shutdown` fires and every server has stopped.
pub async fn run(options: Options, shutdown: ShutdownSignal) -> Result<(), Error> {
    options.validate()?;
    tracing::info!(
        "Starting Dapr Sentry certificate authority -- version {}",
        env!("CARGO_PKG_VERSION")
    );
    tracing::info!("Log level set to: {}", options.log.log_level);
    dapr_kit::cli::warn_unimplemented(COMPONENT, &options.unimplemented_flags());
    let endpoints = servers::Endpoints {
        healthz_host: options.healthz_listen_address,
        healthz_port: options.healthz_port,
        metrics: options.metrics.listen_address(),
    };
    Ok(servers::serve(endpoints, Health::new(), MetricsRegistry::new(), shutdown).await?)
}

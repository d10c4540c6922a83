//! The scheduler. Today this crate owns the `scheduler` binary's command line (every upstream
//! flag with upstream's default, and upstream's checks across flags), its healthz server
//! (`GET /healthz` on `--healthz-port`) and its Prometheus metrics server, and a clean exit on
//! SIGTERM. Flags whose behaviour is not built yet are accepted and logged when set. It will
//! own durable jobs, actor reminders and workflow timers: storing them in etcd (embedded or
//! external), partitioning them across scheduler replicas and workers, and triggering them
//! on connected sidecars over the gRPC API on `--port`.

mod options;
use dapr_kit::control_plane as servers;

use std::time::Duration;

use dapr_kit::healthz::Health;
use dapr_kit::metrics::MetricsRegistry;
use dapr_kit::shutdown::ShutdownSignal;

pub use options::{Options, OptionsError};
pub use servers::Error as ServerError;

/// The component name the scheduler logs under.
pub const COMPONENT: &str = "dapr-scheduler";

/// How long the scheduler may take to stop once SIGTERM or SIGINT arrived.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Why the scheduler could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The flags break one of the rules across flags.
    #[error("invalid options: {0}")]
    Options(#[from] OptionsError),
    /// The healthz or metrics server could not start or failed.
    #[error(transparent)]
    Server(#[from] ServerError),
}

/// Runs the scheduler with `options` until `shutdown` fires and every server has stopped.
pub async fn run(options: Options, shutdown: ShutdownSignal) -> Result<(), Error> {
    options.validate()?;
    tracing::info!(
        "Starting Dapr Scheduler Service -- version {}",
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
